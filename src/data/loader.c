/*
 * loader.c - the multi-threaded batch loader: worker threads augment whole batches ahead of
 * the trainer into a ring of `prefetch` buffers allocated once.
 *
 * Batch b of an epoch always lives in ring slot b % prefetch. Workers take the lowest batch
 * index not yet handed out whose slot is free, fill it without holding the lock, and mark it
 * ready; sc_loader_next hands batches out strictly in index order. Because every random
 * number comes from a Philox stream keyed by (seed, epoch, sample, view), the bytes of a batch
 * do not depend on the number of workers, on timing, or on where an epoch was resumed.
 *
 * TRAIN: global batch g is entries [g B W, (g+1) B W) of the epoch permutation (W = world
 * size); rank r takes the B entries starting at g B W + r B. Sample s in row j gives view 0
 * in row j and view 1 in row B + j. Only whole global batches are used.
 * EVAL: the same sharding over dataset order, one eval view per sample; the last global
 * batch may be partial, so the last batch of a rank may be short, and a rank with nothing
 * left in the last global batch has one batch fewer than rank 0.
 *
 * Threading contract: one consumer thread calls start_epoch / next / release / destroy.
 * In-memory datasets cannot fail inside a worker (all parameters are checked in
 * sc_loader_create), so workers report nothing; sc_loader_next reports misuse.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/augment_ops.h"
#include "simclr/data.h"
#include "simclr/rng.h"
#include "simclr/status.h"

typedef enum slot_state {
    SLOT_FREE,    /* may be filled */
    SLOT_FILLING, /* a worker is writing it */
    SLOT_READY,   /* filled, waiting for sc_loader_next */
    SLOT_HELD,    /* handed to the consumer, until sc_loader_release */
} slot_state;

typedef struct loader_slot {
    sc_batch batch; /* views [vps * B, S, S, C], sample_ids [B], labels [B] */
    slot_state state;
} loader_slot;

typedef struct loader_worker {
    sc_loader *loader;
    float *scratch; /* [sc_augment_scratch_floats] */
} loader_worker;

struct sc_loader {
    sc_loader_options opt;
    int64_t batches;       /* per epoch for this rank */
    size_t view_floats;    /* S * S * C */
    int views_per_sample;  /* 2 TRAIN, 1 EVAL */
    int64_t *perm;         /* [count] the epoch order (TRAIN only) */
    loader_slot *slots;    /* [prefetch] */
    loader_worker *workers; /* [opt.workers] */
    pthread_t *threads;    /* [opt.workers] */
    int threads_started;

    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers: a slot became free, an epoch started, or stop */
    pthread_cond_t done_cv; /* consumer: a slot became ready, or a fill finished */
    /* Guarded by mu: */
    int active;             /* an epoch is being produced */
    int stop;
    int filling;            /* slots in SLOT_FILLING */
    int64_t epoch;
    int64_t next_fill;      /* next batch index to hand to a worker */
    int64_t next_out;       /* next batch index for sc_loader_next */
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

/* Fill slot `s` with batch `b` of `epoch` (no lock held; only this worker touches s). */
static void fill_batch(const sc_loader *l, loader_slot *s, int64_t epoch, int64_t b,
                       float *scratch) {
    const sc_loader_options *o = &l->opt;
    const sc_dataset *ds = o->dataset;
    const int B = o->batch_size;
    const int64_t first = (b * o->world_size + o->rank) * (int64_t)B;
    sc_batch *bt = &s->batch;
    bt->epoch = epoch;
    bt->index = b;
    if (o->mode == SC_LOADER_TRAIN) {
        bt->samples = B;
        for (int j = 0; j < B; j++) {
            int64_t id = l->perm[first + j];
            sc_image img = sc_dataset_image(ds, id);
            bt->sample_ids[j] = id;
            bt->labels[j] = ds->labels ? ds->labels[id] : -1;
            for (int v = 0; v < 2; v++) {
                sc_rng rng = sc_rng_make(o->seed, (uint32_t)epoch, (uint32_t)id, (uint32_t)v,
                                         SC_RNG_AUGMENT);
                sc_augment_view(&o->aug, &img, &rng,
                                bt->views + (size_t)(v * B + j) * l->view_floats, scratch, NULL);
            }
        }
    } else {
        int64_t left = ds->count - first;
        bt->samples = left < B ? (int)left : B;
        for (int j = 0; j < bt->samples; j++) {
            int64_t id = first + j;
            sc_image img = sc_dataset_image(ds, id);
            bt->sample_ids[j] = id;
            bt->labels[j] = ds->labels ? ds->labels[id] : -1;
            sc_augment_eval(&o->aug, &img, bt->views + (size_t)j * l->view_floats, scratch);
        }
    }
}

static void *worker_main(void *arg) {
    loader_worker *w = arg;
    sc_loader *l = w->loader;
    const int P = l->opt.prefetch;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && !(l->active && l->next_fill < l->batches &&
                             l->slots[l->next_fill % P].state == SLOT_FREE))
            pthread_cond_wait(&l->work_cv, &l->mu);
        if (l->stop) break;
        int64_t b = l->next_fill++;
        int64_t epoch = l->epoch;
        loader_slot *s = &l->slots[b % P];
        s->state = SLOT_FILLING;
        l->filling++;
        pthread_mutex_unlock(&l->mu);

        fill_batch(l, s, epoch, b, w->scratch);

        pthread_mutex_lock(&l->mu);
        s->state = SLOT_READY;
        l->filling--;
        pthread_cond_broadcast(&l->done_cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

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
    return sc_augment_params_check(&o->aug, o->dataset->channels);
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
    l->view_floats = (size_t)opt->aug.out_size * opt->aug.out_size * opt->aug.out_channels;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work_cv, NULL);
    pthread_cond_init(&l->done_cv, NULL);

    const int B = opt->batch_size, P = opt->prefetch, NW = opt->workers;
    sc_image first = sc_dataset_image(ds, 0);
    const size_t scratch_floats = sc_augment_scratch_floats(&opt->aug, &first);
    int ok = 1;
    if (opt->mode == SC_LOADER_TRAIN) ok &= (l->perm = malloc((size_t)ds->count * sizeof *l->perm)) != NULL;
    ok &= (l->slots = calloc((size_t)P, sizeof *l->slots)) != NULL;
    ok &= (l->workers = calloc((size_t)NW, sizeof *l->workers)) != NULL;
    ok &= (l->threads = calloc((size_t)NW, sizeof *l->threads)) != NULL;
    for (int i = 0; ok && i < P; i++) {
        sc_batch *bt = &l->slots[i].batch;
        bt->views_per_sample = l->views_per_sample;
        bt->height = bt->width = opt->aug.out_size;
        bt->channels = opt->aug.out_channels;
        ok &= (bt->views = malloc((size_t)l->views_per_sample * B * l->view_floats * sizeof(float))) != NULL;
        ok &= (bt->sample_ids = malloc((size_t)B * sizeof *bt->sample_ids)) != NULL;
        ok &= (bt->labels = malloc((size_t)B * sizeof *bt->labels)) != NULL;
    }
    for (int i = 0; ok && i < NW; i++) {
        l->workers[i].loader = l;
        ok &= (l->workers[i].scratch = malloc(scratch_floats * sizeof(float))) != NULL;
    }
    if (!ok) {
        sc_loader_destroy(l);
        return sc_errorf(SC_ERR_NOMEM, "loader: cannot allocate %d batches of %d x %d views",
                         P, l->views_per_sample, B);
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

sc_status sc_loader_start_epoch(sc_loader *l, int64_t epoch, int64_t first_batch) {
    if (epoch < 0 || epoch > UINT32_MAX)
        return sc_errorf(SC_ERR_ARG, "loader: epoch %lld is outside 0..2^32-1", (long long)epoch);
    if (first_batch < 0 || first_batch > l->batches)
        return sc_errorf(SC_ERR_ARG, "loader: first batch %lld is outside 0..%lld",
                         (long long)first_batch, (long long)l->batches);
    /* Stop handing out work and let in-flight fills finish: they read the permutation. */
    pthread_mutex_lock(&l->mu);
    l->active = 0;
    while (l->filling > 0) pthread_cond_wait(&l->done_cv, &l->mu);
    pthread_mutex_unlock(&l->mu);

    if (l->opt.mode == SC_LOADER_TRAIN)
        sc_epoch_permutation(l->opt.seed, epoch, l->opt.dataset->count, l->perm);

    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->opt.prefetch; i++)
        if (l->slots[i].state == SLOT_READY) l->slots[i].state = SLOT_FREE;
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
    if (s->state != SLOT_READY) {
        double t0 = now_seconds();
        while (s->state != SLOT_READY) pthread_cond_wait(&l->done_cv, &l->mu);
        if (wait_seconds) *wait_seconds += now_seconds() - t0;
    }
    SC_CHECK(s->batch.index == b && s->batch.epoch == l->epoch,
             "slot holds batch %lld of epoch %lld, expected %lld of %lld",
             (long long)s->batch.index, (long long)s->batch.epoch, (long long)b,
             (long long)l->epoch);
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

void sc_loader_destroy(sc_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
    /* A worker in the middle of a batch finishes it, then sees stop. */
    for (int i = 0; i < l->threads_started; i++) pthread_join(l->threads[i], NULL);
    if (l->slots)
        for (int i = 0; i < l->opt.prefetch; i++) {
            free(l->slots[i].batch.views);
            free(l->slots[i].batch.sample_ids);
            free(l->slots[i].batch.labels);
        }
    if (l->workers)
        for (int i = 0; i < l->opt.workers; i++) free(l->workers[i].scratch);
    free(l->slots);
    free(l->workers);
    free(l->threads);
    free(l->perm);
    pthread_cond_destroy(&l->work_cv);
    pthread_cond_destroy(&l->done_cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
