/*
 * loader.c - the multi-threaded batch loader: worker threads decode and augment batches ahead
 * of the trainer into a ring of `prefetch` buffers allocated once.
 *
 * Batch b of an epoch always lives in ring slot b % prefetch. A batch is cut into chunks of
 * consecutive rows; a worker takes the next chunk of the oldest batch still being filled, or
 * starts the next batch when its slot is free, fills the chunk without holding the lock, and
 * the batch becomes ready when its last chunk is done. So two or three buffers keep any number
 * of workers busy, and sc_loader_next hands batches out strictly in index order. Every random
 * number comes from a Philox stream keyed by (seed, epoch, sample, view), so the bytes of a
 * batch do not depend on the number of workers, on timing, or on where an epoch was resumed.
 *
 * TRAIN: global batch g is entries [g B W, (g+1) B W) of the epoch permutation (W = world
 * size); rank r takes the B entries starting at g B W + r B. Sample s in row j gives view 0
 * in row j and view 1 in row B + j. Only whole global batches are used.
 * EVAL: the same sharding over dataset order, one eval view per sample; the last global
 * batch may be partial, so the last batch of a rank may be short, and a rank with nothing
 * left in the last global batch has one batch fewer than rank 0.
 *
 * Encoded datasets: each worker owns a decoder and a read buffer. A row whose image cannot be
 * read or decoded is filled from the next image in dataset order (id + 1, id + 2, ... mod N)
 * that works, with the views still keyed by the row's own sample id; whether an image works is
 * a property of its bytes and its crop, so the replacement is deterministic. Workers record
 * each failure in the batch; the consumer processes a batch's failures in row order when it
 * hands the batch out, so counts, warnings and the max_bad_fraction error happen at the same
 * batch in every run. A row whose search passes more bad images than the budget allows fails
 * the batch instead of scanning the whole dataset.
 *
 * Threading contract: one consumer thread calls start_epoch / next / release / destroy /
 * position / bad_counts.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/augment_ops.h"
#include "data/decode.h"
#include "data/file_index.h"
#include "simclr/data.h"
#include "simclr/log.h"
#include "simclr/rng.h"
#include "simclr/status.h"

typedef enum slot_state {
    SLOT_FREE,    /* may be filled */
    SLOT_FILLING, /* chunks are being handed out or written */
    SLOT_READY,   /* filled, waiting for sc_loader_next */
    SLOT_HELD,    /* handed to the consumer, until sc_loader_release */
} slot_state;

/* One image that failed while filling row `row` (the `step`-th candidate of that row). */
typedef struct bad_note {
    int row, step;
    int64_t id;
    sc_bad_reason reason;
    char message[200];
} bad_note;

typedef struct loader_slot {
    sc_batch batch; /* views or crops [vps * B, S, S, C], keys/ids/labels [B] */
    slot_state state;
    int chunks, next_chunk, chunks_done;
    bad_note *notes; /* guarded by the loader mutex */
    int nnotes, notes_cap;
    int failed_row;  /* lowest row whose search ran out of budget, or -1 */
} loader_slot;

typedef struct loader_worker {
    sc_loader *loader;
    float *scratch;   /* [sc_augment_scratch_floats] */
    sc_decoder *dec;  /* encoded datasets */
    uint8_t *bytes;   /* the encoded image being decoded */
    size_t bytes_cap;
} loader_worker;

struct sc_loader {
    sc_loader_options opt;
    int64_t batches;       /* per epoch for this rank */
    size_t view_elems;     /* S * S * C of one view (floats) or one crop (bytes) */
    int crop_channels;     /* work channels of a crop */
    int views_per_sample;  /* 2 TRAIN, 1 EVAL */
    int chunk_rows;        /* rows per work item */
    int64_t bad_budget;    /* distinct bad images allowed */
    int64_t *perm;         /* [count] the epoch order (TRAIN only) */
    loader_slot *slots;    /* [prefetch] */
    loader_worker *workers; /* [opt.workers] */
    pthread_t *threads;    /* [opt.workers] */
    int threads_started;

    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers: a slot became free, an epoch started, or stop */
    pthread_cond_t done_cv; /* consumer: a slot became ready, or a chunk finished */
    /* Guarded by mu: */
    int active;             /* an epoch is being produced */
    int stop;
    int busy;               /* chunks being written */
    int64_t epoch;
    int64_t next_fill;      /* next batch index to start */
    int64_t next_out;       /* next batch index for sc_loader_next */

    /* Consumer side (one thread): distinct bad images met so far. */
    uint8_t *bad_seen;      /* [count] bitmap, encoded datasets */
    int64_t bad_counts[SC_BAD_REASONS];
    int64_t bad_total;
    char first_bad[600];
};

void sc_epoch_permutation(uint64_t seed, int64_t epoch, int64_t count, int64_t *perm) {
    SC_CHECK(count >= 0 && count <= UINT32_MAX, "permutation of %lld samples", (long long)count);
    sc_rng r = sc_rng_make(seed, (uint32_t)epoch, 0, 0, SC_RNG_SHUFFLE);
    for (int64_t i = 0; i < count; i++) perm[i] = i;
    /* Fisher-Yates from the top: position i takes a uniform pick among [0, i]. */
    for (int64_t i = count - 1; i > 0; i--) {
        int64_t j = sc_rng_below(&r, (uint32_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ---- filling ------------------------------------------------------------------------------- */

/* Sample id of row j of batch b (TRAIN: the permutation; EVAL: dataset order). */
static int64_t row_sample(const sc_loader *l, int64_t b, int j) {
    const sc_loader_options *o = &l->opt;
    const int64_t at = (b * o->world_size + o->rank) * (int64_t)o->batch_size + j;
    return o->mode == SC_LOADER_TRAIN ? l->perm[at] : at;
}

static void add_note(sc_loader *l, loader_slot *s, int row, int step, int64_t id, sc_bad_reason why, const char *msg) {
    pthread_mutex_lock(&l->mu);
    if (s->nnotes == s->notes_cap) {
        int cap = s->notes_cap ? 2 * s->notes_cap : 8;
        bad_note *p = realloc(s->notes, (size_t)cap * sizeof *p);
        if (!p) { /* cannot record it: fail the row so the error is not lost */
            if (s->failed_row < 0 || row < s->failed_row) s->failed_row = row;
            pthread_mutex_unlock(&l->mu);
            return;
        }
        s->notes = p;
        s->notes_cap = cap;
    }
    bad_note *n = &s->notes[s->nnotes++];
    n->row = row;
    n->step = step;
    n->id = id;
    n->reason = why;
    snprintf(n->message, sizeof n->message, "%s", msg);
    pthread_mutex_unlock(&l->mu);
}

/* Row j of an encoded batch from image `image`, keyed by sample `key`. */
static sc_bad_reason encoded_row(sc_loader *l, loader_worker *w, sc_batch *bt, int j, int64_t image, int64_t key,
                                 int64_t epoch, char *msg, size_t cap) {
    const sc_loader_options *o = &l->opt;
    const sc_dataset *ds = o->dataset;
    size_t len;
    sc_bad_reason why = sc_file_index_read(ds->index, image, &w->bytes, &w->bytes_cap, &len, msg, cap);
    int width = 0, height = 0;
    if (why == SC_BAD_NONE) why = sc_decoder_header(w->dec, w->bytes, len, &width, &height);
    if (why == SC_BAD_NONE && o->mode == SC_LOADER_EVAL)
        why = sc_augment_eval_encoded(&o->aug, w->dec, width, height, bt->views + (size_t)j * l->view_elems,
                                      w->scratch);
    for (int v = 0; why == SC_BAD_NONE && o->mode == SC_LOADER_TRAIN && v < 2; v++) {
        sc_rng rng = sc_rng_make(o->seed, (uint32_t)epoch, (uint32_t)key, (uint32_t)v, SC_RNG_AUGMENT);
        const size_t row = (size_t)v * o->batch_size + (size_t)j;
        why = sc_augment_view_encoded(&o->aug, w->dec, width, height, &rng,
                                      bt->views ? bt->views + row * l->view_elems : NULL,
                                      bt->crops ? bt->crops + row * l->view_elems : NULL, w->scratch, NULL);
    }
    if (why != SC_BAD_NONE && !msg[0]) snprintf(msg, cap, "%s", sc_decoder_message(w->dec));
    return why;
}

/* Row j of a resident batch (cannot fail). */
static void resident_row(const sc_loader *l, loader_worker *w, sc_batch *bt, int j, int64_t id, int64_t epoch) {
    const sc_loader_options *o = &l->opt;
    sc_image img = sc_dataset_image(o->dataset, id);
    if (o->mode == SC_LOADER_EVAL) {
        sc_augment_eval(&o->aug, &img, bt->views + (size_t)j * l->view_elems, w->scratch);
        return;
    }
    for (int v = 0; v < 2; v++) {
        sc_rng rng = sc_rng_make(o->seed, (uint32_t)epoch, (uint32_t)id, (uint32_t)v, SC_RNG_AUGMENT);
        const size_t row = (size_t)v * o->batch_size + (size_t)j;
        if (bt->crops)
            sc_augment_crop(&o->aug, &img, &rng, bt->crops + row * l->view_elems, w->scratch);
        else
            sc_augment_view(&o->aug, &img, &rng, bt->views + row * l->view_elems, w->scratch, NULL);
    }
}

/* Rows [j0, j1) of the batch in slot s (no lock held; the rows belong to this worker).
 * Returns how many rows show a replacement image. */
static int fill_rows(sc_loader *l, loader_worker *w, loader_slot *s, int j0, int j1) {
    const sc_dataset *ds = l->opt.dataset;
    sc_batch *bt = &s->batch;
    int replaced = 0;
    for (int j = j0; j < j1; j++) {
        const int64_t key = row_sample(l, bt->index, j);
        bt->sample_ids[j] = key;
        if (bt->keys) bt->keys[j] = (uint32_t)key;
        int64_t image = key;
        if (!sc_dataset_resident(ds)) {
            int step = 0;
            for (;; step++) {
                char msg[200];
                sc_bad_reason why = encoded_row(l, w, bt, j, image, key, bt->epoch, msg, sizeof msg);
                if (why == SC_BAD_NONE) break;
                add_note(l, s, j, step, image, why, msg);
                if (step >= l->bad_budget || step + 1 >= ds->count) {
                    pthread_mutex_lock(&l->mu);
                    if (s->failed_row < 0 || j < s->failed_row) s->failed_row = j;
                    pthread_mutex_unlock(&l->mu);
                    break;
                }
                image = (image + 1) % ds->count;
            }
            replaced += step > 0;
        } else {
            resident_row(l, w, bt, j, key, bt->epoch);
        }
        bt->image_ids[j] = image;
        bt->labels[j] = ds->labels ? ds->labels[image] : -1;
    }
    return replaced;
}

/* Under the lock: a slot being filled with chunks left, oldest batch first, or a new batch
 * started in its free slot. NULL when there is no work. */
static loader_slot *pick_work(sc_loader *l) {
    const int P = l->opt.prefetch;
    for (int64_t b = l->next_out; b < l->next_fill; b++) {
        loader_slot *s = &l->slots[b % P];
        if (s->state == SLOT_FILLING && s->batch.index == b && s->next_chunk < s->chunks) return s;
    }
    if (l->next_fill >= l->batches) return NULL;
    loader_slot *s = &l->slots[l->next_fill % P];
    if (s->state != SLOT_FREE) return NULL;
    const int64_t b = l->next_fill++;
    const sc_loader_options *o = &l->opt;
    sc_batch *bt = &s->batch;
    bt->epoch = l->epoch;
    bt->index = b;
    bt->replaced = 0;
    if (o->mode == SC_LOADER_TRAIN) {
        bt->samples = o->batch_size;
    } else {
        int64_t left = o->dataset->count - (b * o->world_size + o->rank) * (int64_t)o->batch_size;
        bt->samples = left < o->batch_size ? (int)left : o->batch_size;
    }
    s->state = SLOT_FILLING;
    s->chunks = (bt->samples + l->chunk_rows - 1) / l->chunk_rows;
    s->next_chunk = s->chunks_done = 0;
    s->nnotes = 0;
    s->failed_row = -1;
    return s;
}

static void *worker_main(void *arg) {
    loader_worker *w = arg;
    sc_loader *l = w->loader;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        loader_slot *s = NULL;
        while (!l->stop && !(l->active && (s = pick_work(l)) != NULL)) pthread_cond_wait(&l->work_cv, &l->mu);
        if (l->stop) break;
        const int c = s->next_chunk++;
        const int j0 = c * l->chunk_rows;
        const int j1 = j0 + l->chunk_rows < s->batch.samples ? j0 + l->chunk_rows : s->batch.samples;
        l->busy++;
        pthread_mutex_unlock(&l->mu);

        int replaced = fill_rows(l, w, s, j0, j1);

        pthread_mutex_lock(&l->mu);
        s->batch.replaced += replaced;
        l->busy--;
        if (++s->chunks_done == s->chunks) s->state = SLOT_READY;
        pthread_cond_broadcast(&l->done_cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- creation ------------------------------------------------------------------------------ */

static sc_status check_options(const sc_loader_options *o) {
    if (!o->dataset || o->dataset->count <= 0)
        return sc_errorf(SC_ERR_DATA, "loader: the dataset is empty");
    if (o->dataset->count > UINT32_MAX)
        return sc_errorf(SC_ERR_DATA, "loader: %s has %lld images; at most 2^32 are supported",
                         o->dataset->name, (long long)o->dataset->count);
    if (o->batch_size < 1)
        return sc_errorf(SC_ERR_CONFIG, "loader: batch size %d must be >= 1", o->batch_size);
    if (o->workers < 1)
        return sc_errorf(SC_ERR_CONFIG, "data.workers: %d must be >= 1", o->workers);
    if (o->prefetch < 1)
        return sc_errorf(SC_ERR_CONFIG, "data.prefetch: %d must be >= 1", o->prefetch);
    if (o->world_size < 1 || o->rank < 0 || o->rank >= o->world_size)
        return sc_errorf(SC_ERR_ARG, "loader: rank %d of world size %d", o->rank, o->world_size);
    if (o->mode != SC_LOADER_TRAIN && o->mode != SC_LOADER_EVAL)
        return sc_errorf(SC_ERR_ARG, "loader: unknown mode %d", (int)o->mode);
    if (o->output != SC_LOADER_VIEWS && (o->output != SC_LOADER_CROPS || o->mode != SC_LOADER_TRAIN))
        return sc_errorf(SC_ERR_ARG, "loader: crops are produced in TRAIN mode only");
    if (!sc_dataset_resident(o->dataset) &&
        !(o->dataset->max_bad_fraction >= 0 && o->dataset->max_bad_fraction <= 1 && o->dataset->max_image_pixels > 0))
        return sc_errorf(SC_ERR_CONFIG, "%s: max_bad_fraction %g must be in [0, 1] and max_image_pixels %lld > 0",
                         o->dataset->name, o->dataset->max_bad_fraction, (long long)o->dataset->max_image_pixels);
    if ((o->allocator.alloc == NULL) != (o->allocator.free == NULL))
        return sc_errorf(SC_ERR_ARG, "loader: a host allocator needs both alloc and free");
    return sc_augment_params_check(&o->aug, o->dataset->channels);
}

static void *host_alloc(const sc_loader_options *o, size_t bytes) {
    return o->allocator.alloc ? o->allocator.alloc(o->allocator.ctx, bytes) : malloc(bytes);
}

static void host_free(const sc_loader_options *o, void *p) {
    if (!p) return;
    if (o->allocator.free)
        o->allocator.free(o->allocator.ctx, p);
    else
        free(p);
}

int64_t sc_loader_batches_per_epoch(const sc_loader *l) { return l->batches; }

sc_status sc_loader_create(const sc_loader_options *opt, sc_loader **out) {
    *out = NULL;
    SC_TRY(check_options(opt));
    const sc_dataset *ds = opt->dataset;
    const int64_t global = (int64_t)opt->batch_size * opt->world_size;
    int64_t batches;
    if (opt->mode == SC_LOADER_TRAIN) {
        batches = ds->count / global;
        if (batches == 0)
            return sc_errorf(SC_ERR_DATA,
                             "loader: %s has %lld images, fewer than one global batch of %lld "
                             "(batch size %d x world size %d)",
                             ds->name, (long long)ds->count, (long long)global, opt->batch_size,
                             opt->world_size);
    } else {
        /* Global batches in which this rank's slice starts before the end of the data. */
        int64_t start = (int64_t)opt->rank * opt->batch_size;
        batches = ds->count > start ? (ds->count - start + global - 1) / global : 0;
    }

    sc_loader *l = calloc(1, sizeof *l);
    if (!l) return sc_errorf(SC_ERR_NOMEM, "loader: out of memory");
    l->opt = *opt;
    l->batches = batches;
    l->views_per_sample = opt->mode == SC_LOADER_TRAIN ? 2 : 1;
    l->crop_channels = sc_aug_work_channels(&opt->aug, ds->channels);
    const int elem_channels = opt->output == SC_LOADER_CROPS ? l->crop_channels : opt->aug.out_channels;
    l->view_elems = (size_t)opt->aug.out_size * opt->aug.out_size * elem_channels;
    /* About four work items per worker and batch: small enough to spread a batch over every
     * worker, large enough that the lock is rare. */
    int rows = opt->batch_size / (4 * opt->workers);
    l->chunk_rows = rows < 1 ? 1 : rows > 64 ? 64 : rows;
    l->bad_budget = sc_dataset_resident(ds) ? 0 : (int64_t)(ds->max_bad_fraction * (double)ds->count);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work_cv, NULL);
    pthread_cond_init(&l->done_cv, NULL);

    const int B = opt->batch_size, P = opt->prefetch, NW = opt->workers;
    const sc_image shape = {0, 0, ds->channels, NULL};
    const size_t scratch_floats = sc_augment_scratch_floats(&opt->aug, &shape);
    const size_t rows_total = (size_t)l->views_per_sample * B;
    int ok = 1;
    if (opt->mode == SC_LOADER_TRAIN) ok &= (l->perm = malloc((size_t)ds->count * sizeof *l->perm)) != NULL;
    if (!sc_dataset_resident(ds)) ok &= (l->bad_seen = calloc((size_t)ds->count, 1)) != NULL;
    ok &= (l->slots = calloc((size_t)P, sizeof *l->slots)) != NULL;
    ok &= (l->workers = calloc((size_t)NW, sizeof *l->workers)) != NULL;
    ok &= (l->threads = calloc((size_t)NW, sizeof *l->threads)) != NULL;
    for (int i = 0; ok && i < P; i++) {
        sc_batch *bt = &l->slots[i].batch;
        bt->views_per_sample = l->views_per_sample;
        bt->height = bt->width = opt->aug.out_size;
        bt->channels = opt->output == SC_LOADER_CROPS ? l->crop_channels : opt->aug.out_channels;
        if (opt->output == SC_LOADER_CROPS) {
            ok &= (bt->crops = host_alloc(opt, rows_total * l->view_elems)) != NULL;
            ok &= (bt->keys = host_alloc(opt, (size_t)B * sizeof *bt->keys)) != NULL;
        } else {
            ok &= (bt->views = host_alloc(opt, rows_total * l->view_elems * sizeof(float))) != NULL;
        }
        ok &= (bt->sample_ids = malloc((size_t)B * sizeof *bt->sample_ids)) != NULL;
        ok &= (bt->image_ids = malloc((size_t)B * sizeof *bt->image_ids)) != NULL;
        ok &= (bt->labels = malloc((size_t)B * sizeof *bt->labels)) != NULL;
    }
    for (int i = 0; ok && i < NW; i++) {
        l->workers[i].loader = l;
        ok &= (l->workers[i].scratch = malloc(scratch_floats * sizeof(float))) != NULL;
        if (!sc_dataset_resident(ds)) ok &= (l->workers[i].dec = sc_decoder_create(ds->max_image_pixels)) != NULL;
    }
    if (!ok) {
        sc_loader_destroy(l);
        return sc_errorf(SC_ERR_NOMEM, "loader: cannot allocate %d batches of %d x %d views", P,
                         l->views_per_sample, B);
    }
    for (int i = 0; i < NW; i++) {
        int rc = pthread_create(&l->threads[i], NULL, worker_main, &l->workers[i]);
        if (rc != 0) {
            sc_loader_destroy(l);
            return sc_errorf(SC_ERR_NOMEM, "loader: cannot start worker thread %d: %s", i,
                             strerror(rc));
        }
        l->threads_started++;
    }
    *out = l;
    return SC_OK;
}

/* ---- the consumer -------------------------------------------------------------------------- */

sc_status sc_loader_start_epoch(sc_loader *l, int64_t epoch, int64_t first_batch) {
    if (epoch < 0 || epoch > UINT32_MAX)
        return sc_errorf(SC_ERR_ARG, "loader: epoch %lld is outside 0..2^32-1", (long long)epoch);
    if (first_batch < 0 || first_batch > l->batches)
        return sc_errorf(SC_ERR_ARG, "loader: first batch %lld is outside 0..%lld",
                         (long long)first_batch, (long long)l->batches);
    /* Stop handing out work and let chunks in flight finish: they read the permutation. */
    pthread_mutex_lock(&l->mu);
    l->active = 0;
    while (l->busy > 0) pthread_cond_wait(&l->done_cv, &l->mu);
    pthread_mutex_unlock(&l->mu);

    if (l->opt.mode == SC_LOADER_TRAIN)
        sc_epoch_permutation(l->opt.seed, epoch, l->opt.dataset->count, l->perm);

    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->opt.prefetch; i++)
        if (l->slots[i].state == SLOT_READY || l->slots[i].state == SLOT_FILLING) l->slots[i].state = SLOT_FREE;
    l->epoch = epoch;
    l->next_fill = l->next_out = first_batch;
    l->active = 1;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
    return SC_OK;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_note(const void *a, const void *b) {
    const bad_note *x = a, *y = b;
    if (x->row != y->row) return x->row < y->row ? -1 : 1;
    return (x->step > y->step) - (x->step < y->step);
}

/* Count the batch's bad images in row order, warn about new ones (the first 10 by name, then
 * at every power of two), and fail past the budget. Consumer thread, no lock needed: the
 * slot is READY and no worker touches it. */
static sc_status account_bad(sc_loader *l, loader_slot *s) {
    const sc_dataset *ds = l->opt.dataset;
    qsort(s->notes, (size_t)s->nnotes, sizeof *s->notes, cmp_note);
    for (int i = 0; i < s->nnotes; i++) {
        const bad_note *n = &s->notes[i];
        if (l->bad_seen[n->id]) continue;
        l->bad_seen[n->id] = 1;
        l->bad_counts[n->reason]++;
        l->bad_total++;
        char what[512];
        sc_dataset_describe(ds, n->id, what, sizeof what);
        if (l->bad_total == 1)
            snprintf(l->first_bad, sizeof l->first_bad, "%s (%s: %s)", what, sc_bad_reason_name(n->reason), n->message);
        if (l->bad_total <= 10)
            SC_WARN("skipping %s: %s: %s (bad image %lld of at most %lld allowed by data.max_bad_fraction)", what,
                    sc_bad_reason_name(n->reason), n->message, (long long)l->bad_total, (long long)l->bad_budget);
        else if ((l->bad_total & (l->bad_total - 1)) == 0)
            SC_WARN("%lld bad images skipped so far; latest %s: %s: %s", (long long)l->bad_total, what,
                    sc_bad_reason_name(n->reason), n->message);
    }
    if (l->bad_total > l->bad_budget)
        return sc_errorf(SC_ERR_DATA,
                         "%s: %lld of %lld images could not be decoded, more than data.max_bad_fraction = %g "
                         "allows (%lld); the first was %s",
                         ds->name, (long long)l->bad_total, (long long)ds->count, ds->max_bad_fraction,
                         (long long)l->bad_budget, l->first_bad);
    if (s->failed_row >= 0) {
        char what[512];
        sc_dataset_describe(ds, s->batch.sample_ids[s->failed_row], what, sizeof what);
        return sc_errorf(SC_ERR_DATA, "%s: no decodable image found from %s onwards (the search stops at %lld bad images)",
                         ds->name, what, (long long)l->bad_budget + 1);
    }
    return SC_OK;
}

sc_status sc_loader_next(sc_loader *l, sc_batch **out, double *wait_seconds) {
    *out = NULL;
    pthread_mutex_lock(&l->mu);
    if (!l->active) {
        pthread_mutex_unlock(&l->mu);
        return sc_errorf(SC_ERR_ARG, "loader: sc_loader_next before sc_loader_start_epoch");
    }
    if (l->next_out >= l->batches) {
        pthread_mutex_unlock(&l->mu);
        return SC_OK;
    }
    const int64_t b = l->next_out;
    loader_slot *s = &l->slots[b % l->opt.prefetch];
    if (s->state == SLOT_HELD) {
        int64_t held = s->batch.index;
        pthread_mutex_unlock(&l->mu);
        return sc_errorf(SC_ERR_ARG,
                         "loader: batch %lld needs the buffer still held by batch %lld; release "
                         "it first or raise data.prefetch (now %d)",
                         (long long)b, (long long)held, l->opt.prefetch);
    }
    if (s->state != SLOT_READY || s->batch.index != b) {
        double t0 = now_seconds();
        while (s->state != SLOT_READY || s->batch.index != b) pthread_cond_wait(&l->done_cv, &l->mu);
        if (wait_seconds) *wait_seconds += now_seconds() - t0;
    }
    SC_CHECK(s->batch.epoch == l->epoch, "slot holds batch %lld of epoch %lld, expected %lld of %lld",
             (long long)s->batch.index, (long long)s->batch.epoch, (long long)b, (long long)l->epoch);
    pthread_mutex_unlock(&l->mu);
    if (s->nnotes > 0 || s->failed_row >= 0) SC_TRY(account_bad(l, s));
    pthread_mutex_lock(&l->mu);
    s->state = SLOT_HELD;
    l->next_out++;
    pthread_mutex_unlock(&l->mu);
    *out = &s->batch;
    return SC_OK;
}

void sc_loader_release(sc_loader *l, sc_batch *b) {
    pthread_mutex_lock(&l->mu);
    loader_slot *s = NULL;
    for (int i = 0; i < l->opt.prefetch; i++)
        if (&l->slots[i].batch == b) s = &l->slots[i];
    SC_CHECK(s && s->state == SLOT_HELD, "release of a batch this loader did not hand out");
    s->state = SLOT_FREE;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
}

void sc_loader_position(const sc_loader *l, int64_t *epoch, int64_t *next_batch) {
    /* Only the consumer thread writes these two (start_epoch, next), and it is the caller. */
    *epoch = l->epoch;
    *next_batch = l->next_out;
}

void sc_loader_bad_counts(const sc_loader *l, int64_t counts[SC_BAD_REASONS]) {
    memcpy(counts, l->bad_counts, sizeof l->bad_counts);
}

void sc_loader_destroy(sc_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
    /* A worker in the middle of a chunk finishes it, then sees stop. */
    for (int i = 0; i < l->threads_started; i++) pthread_join(l->threads[i], NULL);
    if (l->slots)
        for (int i = 0; i < l->opt.prefetch; i++) {
            sc_batch *bt = &l->slots[i].batch;
            host_free(&l->opt, bt->views);
            host_free(&l->opt, bt->crops);
            host_free(&l->opt, bt->keys);
            free(bt->sample_ids);
            free(bt->image_ids);
            free(bt->labels);
            free(l->slots[i].notes);
        }
    if (l->workers)
        for (int i = 0; i < l->opt.workers; i++) {
            free(l->workers[i].scratch);
            free(l->workers[i].bytes);
            sc_decoder_destroy(l->workers[i].dec);
        }
    free(l->slots);
    free(l->workers);
    free(l->threads);
    free(l->perm);
    free(l->bad_seen);
    pthread_cond_destroy(&l->work_cv);
    pthread_cond_destroy(&l->done_cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
