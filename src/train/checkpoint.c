/*
 * checkpoint.c - training state <-> safetensors file, checkpoint discovery, retention and the
 * resume compatibility rules (see include/simclr/checkpoint.h).
 */
#include "simclr/checkpoint.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "simclr/log.h"
#include "simclr/safetensors.h"
#include "simclr/version.h"

#define MOMENTUM_PREFIX "optimizer.momentum."
#define MOMENT2_PREFIX "optimizer.moment2." /* AdamW's second moment (no longer than the momentum prefix) */
#define RNG_DESCRIPTION                                                                            \
    "philox4x32-10 keyed (seed, epoch, sample, view, purpose): init 1, shuffle 2, augment 3, blur 4, " \
    "eval 5; no generator state besides the seed"

/* ---- saving ---------------------------------------------------------------------------------- */

/* CRC-32 of the metadata as "key\0value\0" pairs sorted by key, without "meta_crc32" itself:
 * a corrupted metadata value (a step, the config) is detected like corrupted tensor bytes. */
static unsigned long meta_crc(const char *const *keys, const char *const *values, int n) {
    int idx[64], m = 0;
    for (int i = 0; i < n && m < 64; i++) { /* insertion sort by key: at most 64 entries */
        if (strcmp(keys[i], "meta_crc32") == 0) continue;
        int j = m++;
        for (; j > 0 && strcmp(keys[idx[j - 1]], keys[i]) > 0; j--) idx[j] = idx[j - 1];
        idx[j] = i;
    }
    uLong crc = crc32_z(0L, Z_NULL, 0);
    for (int i = 0; i < m; i++) {
        crc = crc32_z(crc, (const Bytef *)keys[idx[i]], strlen(keys[idx[i]]) + 1);
        crc = crc32_z(crc, (const Bytef *)values[idx[i]], strlen(values[idx[i]]) + 1);
    }
    return (unsigned long)crc;
}

static void *download_all(sc_model *m, sc_tensor (*which)(sc_model *)) {
    sc_tensor t = which(m);
    void *host = malloc(sc_tensor_nbytes(&t) ? sc_tensor_nbytes(&t) : 1);
    if (host) sc_tensor_download(sc_model_backend(m), host, &t);
    return host;
}

static int model_in_channels(const sc_model *m) {
    const sc_param_table *t = sc_model_params(m);
    int row = sc_params_find(t, "conv1.weight");
    return row >= 0 ? (int)t->rows[row].shape[3] : 0; /* KRSC */
}

sc_status sc_checkpoint_save(const char *path, sc_model *m, const sc_tensor *moment2, const sc_config *cfg,
                             const sc_train_state *ts) {
    const sc_param_table *t = sc_model_params(m);
    sc_dtype dt = sc_model_dtype(m);
    size_t es = sc_dtype_size(dt);
    void *params = download_all(m, sc_model_param_buffer);
    void *state = download_all(m, sc_model_state_buffer);
    void *state2 = NULL;
    if (moment2 && (state2 = malloc(sc_tensor_nbytes(moment2) ? sc_tensor_nbytes(moment2) : 1)))
        sc_tensor_download(sc_model_backend(m), state2, moment2);
    sc_st_entry *entries = calloc((size_t)(3 * t->count), sizeof *entries);
    char (*names)[SC_PARAM_NAME_CAP + sizeof MOMENTUM_PREFIX] = calloc((size_t)(2 * t->count), sizeof *names);
    char *yaml = sc_config_to_yaml(cfg);
    sc_status rc = SC_OK;
    if (!params || !state || (moment2 && !state2) || !entries || !names || !yaml) {
        rc = sc_errorf(SC_ERR_NOMEM, "%s: out of memory preparing the checkpoint", path);
        goto done;
    }
    int n = 0;
    for (int i = 0; i < t->count; i++) {
        const sc_param *p = &t->rows[i];
        entries[n++] = (sc_st_entry){.name = p->name, .dtype = dt, .ndim = p->ndim,
                                     .data = (char *)params + (size_t)p->offset * es};
        memcpy(entries[n - 1].shape, p->shape, sizeof p->shape);
    }
    for (int i = 0; i < t->count; i++) {
        const sc_param *p = &t->rows[i];
        if (p->flags & SC_PARAM_BN_STAT) continue;
        snprintf(names[i], sizeof names[i], MOMENTUM_PREFIX "%s", p->name);
        entries[n++] = (sc_st_entry){.name = names[i], .dtype = dt, .ndim = p->ndim,
                                     .data = (char *)state + (size_t)p->offset * es};
        memcpy(entries[n - 1].shape, p->shape, sizeof p->shape);
        if (!state2) continue;
        snprintf(names[t->count + i], sizeof names[i], MOMENT2_PREFIX "%s", p->name);
        entries[n++] = (sc_st_entry){.name = names[t->count + i], .dtype = dt, .ndim = p->ndim,
                                     .data = (char *)state2 + (size_t)p->offset * es};
        memcpy(entries[n - 1].shape, p->shape, sizeof p->shape);
    }
    /* the data section is the entries in order: its CRC is their running CRC */
    uLong crc = crc32_z(0L, Z_NULL, 0);
    for (int i = 0; i < n; i++) {
        size_t bytes = sc_dtype_size(entries[i].dtype);
        for (int d = 0; d < entries[i].ndim; d++) bytes *= (size_t)entries[i].shape[d];
        crc = crc32_z(crc, entries[i].data, bytes);
    }
    char step[32], epoch[32], batch[32], seed[32], version[16], crc_s[16], wsteps[32], wloss[48], wacc[48];
    char elapsed[48], inch[16], isize[16], skipped[32], versions[512];
    snprintf(step, sizeof step, "%" PRId64, ts->step);
    snprintf(epoch, sizeof epoch, "%" PRId64, ts->epoch);
    snprintf(batch, sizeof batch, "%" PRId64, ts->batch_in_epoch);
    snprintf(seed, sizeof seed, "%" PRId64, cfg->run.seed);
    snprintf(version, sizeof version, "%d", SC_CHECKPOINT_VERSION);
    snprintf(crc_s, sizeof crc_s, "%08lx", (unsigned long)crc);
    snprintf(wsteps, sizeof wsteps, "%" PRId64, ts->window_steps);
    snprintf(wloss, sizeof wloss, "%a", ts->window_loss);
    snprintf(wacc, sizeof wacc, "%a", ts->window_acc);
    snprintf(elapsed, sizeof elapsed, "%a", ts->elapsed_s);
    snprintf(inch, sizeof inch, "%d", model_in_channels(m));
    snprintf(isize, sizeof isize, "%d", ts->image_size);
    snprintf(skipped, sizeof skipped, "%" PRId64, ts->skipped_steps);
    snprintf(versions, sizeof versions, "simclr %s; libfyaml %s; zlib %s; OpenBLAS %s", sc_version,
             fy_library_version(), zlibVersion(), openblas_get_config());
    sc_st_meta meta[] = {
        {"format", SC_CHECKPOINT_FORMAT}, {"format_version", version}, {"step", step},
        {"epoch", epoch}, {"batch_in_epoch", batch}, {"seed", seed}, {"rng", RNG_DESCRIPTION},
        {"world_size", "1"}, {"in_channels", inch}, {"image_size", isize}, {"window_steps", wsteps},
        {"window_loss", wloss}, {"window_acc", wacc}, {"elapsed_s", elapsed}, {"skipped_steps", skipped},
        {"dtype", sc_dtype_name(dt)}, {"layout", "activations NHWC, conv filters KRSC"},
        {"git_sha", sc_git_sha}, {"versions", versions}, {"data_crc32", crc_s}, {"config", yaml},
        {"meta_crc32", ""},
    };
    enum { NMETA = sizeof meta / sizeof meta[0] };
    const char *keys[NMETA], *values[NMETA];
    for (int i = 0; i < NMETA; i++) {
        keys[i] = meta[i].key;
        values[i] = meta[i].value;
    }
    char mcrc[16];
    snprintf(mcrc, sizeof mcrc, "%08lx", meta_crc(keys, values, NMETA));
    meta[NMETA - 1].value = mcrc;
    rc = sc_safetensors_write(path, entries, n, meta, NMETA);
done:
    free(yaml);
    free(names);
    free(entries);
    free(state2);
    free(state);
    free(params);
    return rc;
}

/* ---- reading and validating -------------------------------------------------------------------- */

static sc_status parse_i64(const sc_safetensors *st, const char *key, int64_t *out) {
    const char *v = sc_safetensors_meta(st, key);
    char *end;
    if (!v) return sc_errorf(SC_ERR_FORMAT, "%s: metadata lacks '%s'", st->path, key);
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno == ERANGE)
        return sc_errorf(SC_ERR_FORMAT, "%s: metadata '%s' is not an integer: '%.40s'", st->path, key, v);
    *out = x;
    return SC_OK;
}

static sc_status parse_f64(const sc_safetensors *st, const char *key, double *out) {
    const char *v = sc_safetensors_meta(st, key);
    char *end;
    if (!v) return sc_errorf(SC_ERR_FORMAT, "%s: metadata lacks '%s'", st->path, key);
    *out = strtod(v, &end);
    if (*v == '\0' || *end != '\0') return sc_errorf(SC_ERR_FORMAT, "%s: metadata '%s' is not a number: '%.40s'", st->path, key, v);
    return SC_OK;
}

/* Format, version, CRC and the run-state metadata of an open file. */
static sc_status check_open(sc_safetensors *st, sc_train_state *out) {
    const char *path = st->path;
    const char *fmt = sc_safetensors_meta(st, "format");
    if (!fmt || strcmp(fmt, SC_CHECKPOINT_FORMAT) != 0)
        return sc_errorf(SC_ERR_FORMAT, "%s: not a simclr checkpoint (metadata format is '%.40s')", path, fmt ? fmt : "missing");
    int64_t version = 0;
    SC_TRY(parse_i64(st, "format_version", &version));
    if (version < 1 || version > SC_CHECKPOINT_VERSION)
        return sc_errorf(SC_ERR_FORMAT, "%s: checkpoint format version %lld, this build reads versions 1 to %d", path,
                         (long long)version, SC_CHECKPOINT_VERSION);
    if (!sc_safetensors_meta(st, "config")) return sc_errorf(SC_ERR_FORMAT, "%s: metadata lacks 'config'", path);
    sc_train_state s = {0};
    SC_TRY(parse_i64(st, "step", &s.step));
    SC_TRY(parse_i64(st, "epoch", &s.epoch));
    SC_TRY(parse_i64(st, "batch_in_epoch", &s.batch_in_epoch));
    if (s.step < 0 || s.epoch < 0 || s.batch_in_epoch < 0)
        return sc_errorf(SC_ERR_FORMAT, "%s: negative step, epoch or batch_in_epoch in the metadata", path);
    /* every tensor has the recorded dtype; every momentum belongs to a tensor of its shape */
    const char *dtype = sc_safetensors_meta(st, "dtype");
    for (int i = 0; i < st->count && version >= 2; i++) {
        const sc_st_tensor *t = &st->tensors[i];
        if (!dtype || strcmp(sc_dtype_name(t->dtype), dtype) != 0)
            return sc_errorf(SC_ERR_FORMAT, "%s: tensor '%s' is %s, the checkpoint's dtype is %.8s", path, t->name,
                             sc_dtype_name(t->dtype), dtype ? dtype : "missing");
        size_t skip = strncmp(t->name, MOMENTUM_PREFIX, sizeof MOMENTUM_PREFIX - 1) == 0  ? sizeof MOMENTUM_PREFIX - 1
                      : strncmp(t->name, MOMENT2_PREFIX, sizeof MOMENT2_PREFIX - 1) == 0 ? sizeof MOMENT2_PREFIX - 1
                                                                                          : 0;
        if (!skip) continue;
        const sc_st_tensor *p = sc_safetensors_find(st, t->name + skip);
        int same = p && p->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = p->shape[d] == t->shape[d];
        if (!same)
            return sc_errorf(SC_ERR_FORMAT, "%s: tensor '%s' has no parameter '%s' of its shape", path, t->name,
                             t->name + skip);
    }
    const sc_st_tensor *c1 = sc_safetensors_find(st, "conv1.weight");
    if (!c1 || c1->ndim != 4) return sc_errorf(SC_ERR_FORMAT, "%s: tensor 'conv1.weight' is missing or not 4-D", path);
    s.in_channels = (int)c1->shape[3];
    if (version >= 2) {
        int64_t image_size = 0;
        SC_TRY(parse_i64(st, "window_steps", &s.window_steps));
        SC_TRY(parse_f64(st, "window_loss", &s.window_loss));
        SC_TRY(parse_f64(st, "window_acc", &s.window_acc));
        SC_TRY(parse_f64(st, "elapsed_s", &s.elapsed_s));
        SC_TRY(parse_i64(st, "image_size", &image_size));
        if (s.window_steps < 0 || image_size < 0 || image_size > 1 << 20)
            return sc_errorf(SC_ERR_FORMAT, "%s: window_steps or image_size out of range in the metadata", path);
        s.image_size = (int)image_size;
        if (sc_safetensors_meta(st, "skipped_steps")) { /* absent in files of earlier builds: none skipped */
            SC_TRY(parse_i64(st, "skipped_steps", &s.skipped_steps));
            if (s.skipped_steps < 0 || s.skipped_steps > s.step)
                return sc_errorf(SC_ERR_FORMAT, "%s: skipped_steps %lld is out of range in the metadata", path,
                                 (long long)s.skipped_steps);
        }
        const char *want = sc_safetensors_meta(st, "data_crc32");
        if (!want) return sc_errorf(SC_ERR_FORMAT, "%s: metadata lacks 'data_crc32'", path);
        uLong crc = crc32_z(crc32_z(0L, Z_NULL, 0), st->file + st->data_start, st->size - st->data_start);
        char got[16];
        snprintf(got, sizeof got, "%08lx", (unsigned long)crc);
        if (strcmp(got, want) != 0)
            return sc_errorf(SC_ERR_FORMAT, "%s: data section CRC-32 is %s, the metadata says %.16s: the tensor bytes "
                             "are corrupt", path, got, want);
        const char *mwant = sc_safetensors_meta(st, "meta_crc32");
        if (!mwant) return sc_errorf(SC_ERR_FORMAT, "%s: metadata lacks 'meta_crc32'", path);
        if (st->meta_count > 64) return sc_errorf(SC_ERR_FORMAT, "%s: %d metadata entries (at most 64)", path, st->meta_count);
        snprintf(got, sizeof got, "%08lx",
                 meta_crc((const char *const *)st->meta_keys, (const char *const *)st->meta_values, st->meta_count));
        if (strcmp(got, mwant) != 0)
            return sc_errorf(SC_ERR_FORMAT, "%s: metadata CRC-32 is %s, the file says %.16s: the metadata is corrupt",
                             path, got, mwant);
    }
    if (out) *out = s;
    return SC_OK;
}

static sc_status open_checked(const char *path, sc_safetensors *st, sc_train_state *ts) {
    SC_TRY(sc_safetensors_open(path, st));
    sc_status rc = check_open(st, ts);
    if (rc != SC_OK) sc_safetensors_close(st);
    return rc;
}

sc_status sc_checkpoint_verify(const char *path, sc_train_state *ts) {
    sc_safetensors st;
    SC_TRY(open_checked(path, &st, ts));
    sc_safetensors_close(&st);
    return SC_OK;
}

sc_status sc_checkpoint_read_config(const char *path, char **config_yaml) {
    sc_safetensors st;
    SC_TRY(open_checked(path, &st, NULL));
    *config_yaml = strdup(sc_safetensors_meta(&st, "config"));
    sc_safetensors_close(&st);
    return *config_yaml ? SC_OK : sc_errorf(SC_ERR_NOMEM, "out of memory");
}

/* Copy tensor `name` (dtype and shape of row p) into host buffer at p's offset. */
static sc_status take(const sc_safetensors *st, const char *name, const sc_param *p, sc_dtype dt, void *host) {
    const sc_st_tensor *t = sc_safetensors_find(st, name);
    if (!t) return sc_errorf(SC_ERR_FORMAT, "%s: tensor '%s' is missing", st->path, name);
    int same = t->dtype == dt && t->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
    if (!same) {
        char want[96], got[96];
        sc_tensor w = sc_tensor_make(NULL, dt, p->ndim, p->shape), g = sc_tensor_make(NULL, t->dtype, t->ndim, t->shape);
        return sc_errorf(SC_ERR_FORMAT, "%s: tensor '%s' is %s, the model needs %s", st->path, name,
                         sc_tensor_describe(&g, got, sizeof got), sc_tensor_describe(&w, want, sizeof want));
    }
    memcpy((char *)host + (size_t)p->offset * sc_dtype_size(dt), sc_safetensors_data(st, t), t->end - t->begin);
    return SC_OK;
}

sc_status sc_checkpoint_load(const char *path, sc_model *m, sc_tensor *moment2, sc_train_state *ts, char **config_yaml) {
    sc_safetensors st;
    sc_train_state s;
    SC_TRY(open_checked(path, &st, &s));
    const sc_param_table *t = sc_model_params(m);
    sc_dtype dt = sc_model_dtype(m);
    size_t bytes = (size_t)t->total * sc_dtype_size(dt);
    void *params = calloc(1, bytes ? bytes : 1), *state = calloc(1, bytes ? bytes : 1);
    void *state2 = moment2 ? calloc(1, bytes ? bytes : 1) : NULL;
    sc_status rc = params && state && (!moment2 || state2) ? SC_OK : sc_errorf(SC_ERR_NOMEM, "%s: out of memory", path);
    char name[SC_PARAM_NAME_CAP + sizeof MOMENTUM_PREFIX];
    /* a checkpoint of another optimizer has no second moment: it then starts at zero */
    int have2 = 0;
    for (int i = 0; moment2 && i < t->count && !have2; i++) {
        snprintf(name, sizeof name, MOMENT2_PREFIX "%s", t->rows[i].name);
        have2 = sc_safetensors_find(&st, name) != NULL;
    }
    if (moment2 && !have2) SC_WARN("%s holds no AdamW second moment: it starts at zero", path);
    for (int i = 0; i < t->count && rc == SC_OK; i++) {
        const sc_param *p = &t->rows[i];
        rc = take(&st, p->name, p, dt, params);
        if (rc == SC_OK && !(p->flags & SC_PARAM_BN_STAT)) {
            snprintf(name, sizeof name, MOMENTUM_PREFIX "%s", p->name);
            rc = take(&st, name, p, dt, state);
        }
        if (rc == SC_OK && have2 && !(p->flags & SC_PARAM_BN_STAT)) {
            snprintf(name, sizeof name, MOMENT2_PREFIX "%s", p->name);
            rc = take(&st, name, p, dt, state2);
        }
    }
    if (rc == SC_OK && config_yaml) {
        *config_yaml = strdup(sc_safetensors_meta(&st, "config"));
        if (!*config_yaml) rc = sc_errorf(SC_ERR_NOMEM, "out of memory");
    }
    if (rc == SC_OK) {
        sc_tensor pb = sc_model_param_buffer(m), sb = sc_model_state_buffer(m);
        sc_tensor_upload(sc_model_backend(m), &pb, params);
        sc_tensor_upload(sc_model_backend(m), &sb, state);
        if (moment2) sc_tensor_upload(sc_model_backend(m), moment2, state2);
        if (ts) *ts = s;
    }
    free(params);
    free(state);
    free(state2);
    sc_safetensors_close(&st);
    return rc;
}

/* ---- the checkpoints of a run directory ------------------------------------------------------- */

typedef struct candidate {
    char name[256];
    int64_t step; /* from the name; final's from its metadata */
    int final;
    sc_train_state ts; /* final only: verified while listing */
} candidate;

/* The step of "step_<digits>.safetensors", or -1 for any other name. */
static int64_t step_of_name(const char *name) {
    static const char prefix[] = "step_", suffix[] = ".safetensors";
    size_t n = strlen(name), p = sizeof prefix - 1, s = sizeof suffix - 1;
    if (n <= p + s || n - p - s > 18 || strncmp(name, prefix, p) != 0 || strcmp(name + n - s, suffix) != 0) return -1;
    int64_t v = 0;
    for (size_t i = p; i < n - s; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static int cmp_newest_first(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->step != y->step) return x->step > y->step ? -1 : 1;
    return y->final - x->final; /* final first on a tie */
}

/* The step_<N> and final files of ckpt_dir; *out is malloc'ed, sorted newest first. Final's step
 * comes from verifying it (an invalid final is dropped from the list with a warning). */
static sc_status list_candidates(const char *ckpt_dir, candidate **out, int *count, int *seen) {
    *out = NULL;
    *count = *seen = 0;
    DIR *d = opendir(ckpt_dir);
    if (!d) {
        if (errno == ENOENT) return SC_OK;
        return sc_errorf(SC_ERR_IO, "%s: cannot list: %s", ckpt_dir, strerror(errno));
    }
    int cap = 0;
    candidate *c = NULL;
    struct dirent *e;
    sc_status rc = SC_OK;
    while ((e = readdir(d)) != NULL && rc == SC_OK) {
        int64_t step = step_of_name(e->d_name);
        int final = strcmp(e->d_name, SC_CHECKPOINT_FINAL) == 0;
        if (step < 0 && !final) continue;
        (*seen)++;
        sc_train_state ts = {0};
        if (final) {
            char path[1400];
            snprintf(path, sizeof path, "%s/%s", ckpt_dir, e->d_name);
            if (sc_checkpoint_verify(path, &ts) != SC_OK) {
                SC_WARN("skipping a corrupt checkpoint: %s", sc_last_error());
                continue;
            }
            step = ts.step;
        }
        if (*count == cap) {
            cap = cap ? 2 * cap : 16;
            candidate *grown = realloc(c, (size_t)cap * sizeof *c);
            if (!grown) {
                rc = sc_errorf(SC_ERR_NOMEM, "out of memory listing %s", ckpt_dir);
                break;
            }
            c = grown;
        }
        snprintf(c[*count].name, sizeof c[*count].name, "%s", e->d_name);
        c[*count].step = step;
        c[*count].final = final;
        c[*count].ts = ts;
        (*count)++;
    }
    closedir(d);
    if (rc != SC_OK) {
        free(c);
        return rc;
    }
    if (*count > 1) qsort(c, (size_t)*count, sizeof *c, cmp_newest_first);
    *out = c;
    return SC_OK;
}

sc_status sc_checkpoint_find_latest(const char *run_dir, char *out, size_t cap, int *candidates, sc_train_state *ts) {
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    candidate *c;
    int count, seen;
    SC_TRY(list_candidates(dir, &c, &count, &seen));
    if (candidates) *candidates = seen;
    sc_status rc = SC_ERR_FORMAT;
    for (int i = 0; i < count; i++) {
        snprintf(out, cap, "%s/%s", dir, c[i].name);
        if (c[i].final) { /* verified while listing */
            if (ts) *ts = c[i].ts;
            rc = SC_OK;
            break;
        }
        rc = sc_checkpoint_verify(out, ts);
        if (rc == SC_OK) break;
        SC_WARN("skipping a corrupt checkpoint: %s", sc_last_error());
    }
    free(c);
    if (rc == SC_OK) return SC_OK;
    out[0] = '\0';
    if (seen == 0) return sc_errorf(SC_ERR_IO, "%s: no checkpoint (no step_<N>.safetensors or final.safetensors)", dir);
    return sc_errorf(SC_ERR_FORMAT, "%s: none of the %d checkpoint files is valid (see the warnings above)", dir, seen);
}

int sc_checkpoint_clean_temp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *tmp = strstr(e->d_name, ".tmp");
        if (!tmp || e->d_name[0] == '.') continue;
        /* "<name>.tmp.<pid>" (safetensors writer) or "<name>.tmp" (config and metrics) */
        const char *rest = tmp + 4;
        int ok = *rest == '\0';
        if (*rest == '.') {
            ok = rest[1] != '\0';
            for (const char *p = rest + 1; *p && ok; p++) ok = *p >= '0' && *p <= '9';
        }
        if (!ok) continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0) {
            SC_INFO("removed %s (left by an interrupted save)", path);
            removed++;
        }
    }
    closedir(d);
    return removed;
}

int sc_checkpoint_prune(const char *ckpt_dir, int keep_last, int64_t keep_every) {
    DIR *d = opendir(ckpt_dir);
    if (!d) return 0;
    int64_t *steps = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t s = step_of_name(e->d_name);
        if (s < 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *grown = realloc(steps, (size_t)cap * sizeof *steps);
            if (!grown) break; /* pruning is best effort: keep everything */
            steps = grown;
        }
        steps[n++] = s;
    }
    closedir(d);
    int deleted = 0;
    for (int i = 0; i < n; i++) {
        int newer = 0; /* checkpoints newer than steps[i] */
        for (int j = 0; j < n; j++) newer += steps[j] > steps[i];
        if (newer < keep_last || (keep_every > 0 && steps[i] % keep_every == 0)) continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/step_%08" PRId64 ".safetensors", ckpt_dir, steps[i]);
        if (unlink(path) == 0) deleted++;
    }
    free(steps);
    return deleted;
}

int sc_checkpoint_set_aside(const char *ckpt_dir, int64_t step) {
    candidate *c;
    int count, seen, moved = 0;
    if (list_candidates(ckpt_dir, &c, &count, &seen) != SC_OK) return -1;
    char aside[1100];
    snprintf(aside, sizeof aside, "%s/superseded", ckpt_dir);
    for (int i = 0; i < count && moved >= 0; i++) {
        if (c[i].step <= step) continue;
        char from[1400], to[1400];
        snprintf(from, sizeof from, "%s/%s", ckpt_dir, c[i].name);
        snprintf(to, sizeof to, "%s/%s", aside, c[i].name);
        if ((mkdir(aside, 0755) != 0 && errno != EEXIST) || rename(from, to) != 0) {
            sc_errorf(SC_ERR_IO, "%s: cannot move it to %s: %s", from, aside, strerror(errno));
            moved = -1;
            break;
        }
        SC_WARN("moved %s (step %" PRId64 ", after the resumed step %" PRId64 ") to %s/", from, c[i].step, step, aside);
        moved++;
    }
    free(c);
    return moved;
}

/* ---- resume compatibility ------------------------------------------------------------------- */

static int key_in(const char *key, const char *const *list) {
    for (; *list; list++) {
        size_t n = strlen(*list);
        if ((*list)[n - 1] == '.' ? strncmp(key, *list, n) == 0 : strcmp(key, *list) == 0) return 1;
    }
    return 0;
}

sc_status sc_checkpoint_check_config(const char *what, const sc_config *saved, const sc_config *now) {
    /* entries ending in '.' name a whole section */
    static const char *const model_keys[] = {"model.", "data.dataset", "data.channels", "data.image_size", NULL};
    static const char *const free_model_keys[] = {"model.init_from", NULL};
    static const char *const trajectory_keys[] = {"optim.", "loss.", "augment.", "run.seed", "data.mean", "data.std",
                                                  "train.batch_size", "train.epochs", "train.warmup_epochs", NULL};
    int n;
    const sc_config_entry *s = sc_config_schema(&n);
    char refused[2048] = "";
    size_t used = 0;
    int nrefused = 0;
    for (int i = 0; i < n; i++) {
        char a[300], b[300];
        sc_config_format_value(saved, &s[i], a, sizeof a);
        sc_config_format_value(now, &s[i], b, sizeof b);
        if (strcmp(a, b) == 0) continue;
        if (key_in(s[i].key, model_keys) && !key_in(s[i].key, free_model_keys)) {
            int w = snprintf(refused + used, sizeof refused - used, "%s%s %s -> %s", nrefused ? ", " : "", s[i].key, a, b);
            if (w > 0 && (size_t)w < sizeof refused - used) used += (size_t)w;
            nrefused++;
        } else if (key_in(s[i].key, trajectory_keys)) {
            SC_WARN("resuming %s with %s changed from %s to %s: the run continues, but no longer as the "
                    "uninterrupted run would have", what, s[i].key, a, b);
        }
    }
    if (nrefused)
        return sc_errorf(SC_ERR_CONFIG,
                         "cannot resume %s: %d key%s that define the model or its input differ from the checkpoint: %s "
                         "(start a new run instead, e.g. with model.init_from set to an export of this one)",
                         what, nrefused, nrefused > 1 ? "s" : "", refused);
    return SC_OK;
}

/* ---- the encoder alone (fine-tuning) -------------------------------------------------------- */

sc_status sc_checkpoint_load_encoder(const char *path, sc_model *m) {
    sc_safetensors st;
    SC_TRY(open_checked(path, &st, NULL));
    const sc_param_table *t = sc_model_params(m);
    sc_dtype dt = sc_model_dtype(m);
    sc_tensor pb = sc_model_param_buffer(m);
    void *params = malloc(sc_tensor_nbytes(&pb) ? sc_tensor_nbytes(&pb) : 1);
    sc_status rc = params ? SC_OK : sc_errorf(SC_ERR_NOMEM, "%s: out of memory", path);
    if (rc == SC_OK) sc_tensor_download(sc_model_backend(m), params, &pb); /* keep the non-encoder rows */
    for (int i = 0; i < t->count && rc == SC_OK; i++)
        if (t->rows[i].flags & SC_PARAM_ENCODER) rc = take(&st, t->rows[i].name, &t->rows[i], dt, params);
    if (rc == SC_OK) sc_tensor_upload(sc_model_backend(m), &pb, params);
    free(params);
    sc_safetensors_close(&st);
    return rc;
}
