/*
 * checkpoint.c - training state <-> safetensors file (see include/simclr/checkpoint.h).
 */
#include "simclr/checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/safetensors.h"
#include "simclr/version.h"


#define MOMENTUM_PREFIX "optimizer.momentum."

static void *download_all(sc_model *m, sc_tensor (*which)(sc_model *)) {
    sc_tensor t = which(m);
    void *host = malloc(sc_tensor_nbytes(&t) ? sc_tensor_nbytes(&t) : 1);
    if (host) sc_tensor_download(sc_model_backend(m), host, &t);
    return host;
}

sc_status sc_checkpoint_save(const char *path, sc_model *m, const sc_config *cfg, const sc_train_state *ts) {
    const sc_param_table *t = sc_model_params(m);
    sc_dtype dt = sc_model_dtype(m);
    size_t es = sc_dtype_size(dt);
    void *params = download_all(m, sc_model_param_buffer);
    void *state = download_all(m, sc_model_state_buffer);
    sc_st_entry *entries = calloc((size_t)(2 * t->count), sizeof *entries);
    char (*names)[SC_PARAM_NAME_CAP + sizeof MOMENTUM_PREFIX] = calloc((size_t)t->count, sizeof *names);
    char *yaml = sc_config_to_yaml(cfg);
    sc_status rc = SC_OK;
    if (!params || !state || !entries || !names || !yaml) {
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
    }
    char step[32], epoch[32], batch[32], seed[32], version[16];
    snprintf(step, sizeof step, "%" PRId64, ts->step);
    snprintf(epoch, sizeof epoch, "%" PRId64, ts->epoch);
    snprintf(batch, sizeof batch, "%" PRId64, ts->batch_in_epoch);
    snprintf(seed, sizeof seed, "%" PRId64, cfg->run.seed);
    snprintf(version, sizeof version, "%d", SC_CHECKPOINT_VERSION);
    sc_st_meta meta[] = {
        {"format", SC_CHECKPOINT_FORMAT}, {"format_version", version}, {"step", step},
        {"epoch", epoch}, {"batch_in_epoch", batch}, {"seed", seed}, {"world_size", "1"},
        {"dtype", sc_dtype_name(dt)}, {"layout", "activations NHWC, conv filters KRSC"},
        {"git_sha", sc_git_sha}, {"config", yaml},
    };
    rc = sc_safetensors_write(path, entries, n, meta, (int)(sizeof meta / sizeof meta[0]));
done:
    free(yaml);
    free(names);
    free(entries);
    free(state);
    free(params);
    return rc;
}

static sc_status parse_i64(const sc_safetensors *st, const char *key, int64_t *out) {
    const char *v = sc_safetensors_meta(st, key);
    char *end;
    if (!v) return sc_errorf(SC_ERR_FORMAT, "%s: metadata lacks '%s'", st->path, key);
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0') return sc_errorf(SC_ERR_FORMAT, "%s: metadata '%s' is not an integer: '%s'", st->path, key, v);
    *out = x;
    return SC_OK;
}

static sc_status open_checked(const char *path, sc_safetensors *st) {
    SC_TRY(sc_safetensors_open(path, st));
    const char *fmt = sc_safetensors_meta(st, "format");
    if (!fmt || strcmp(fmt, SC_CHECKPOINT_FORMAT) != 0) {
        sc_safetensors_close(st);
        return sc_errorf(SC_ERR_FORMAT, "%s: not a simclr checkpoint (metadata format is '%s')", path, fmt ? fmt : "missing");
    }
    int64_t version = 0;
    sc_status rc = parse_i64(st, "format_version", &version);
    if (rc == SC_OK && version != SC_CHECKPOINT_VERSION)
        rc = sc_errorf(SC_ERR_FORMAT, "%s: checkpoint format version %lld, this build reads version %d", path,
                       (long long)version, SC_CHECKPOINT_VERSION);
    if (rc == SC_OK && !sc_safetensors_meta(st, "config")) rc = sc_errorf(SC_ERR_FORMAT, "%s: metadata lacks 'config'", path);
    if (rc != SC_OK) sc_safetensors_close(st);
    return rc;
}

sc_status sc_checkpoint_read_config(const char *path, char **config_yaml) {
    sc_safetensors st;
    SC_TRY(open_checked(path, &st));
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

sc_status sc_checkpoint_load(const char *path, sc_model *m, sc_train_state *ts, char **config_yaml) {
    sc_safetensors st;
    SC_TRY(open_checked(path, &st));
    const sc_param_table *t = sc_model_params(m);
    sc_dtype dt = sc_model_dtype(m);
    size_t bytes = (size_t)t->total * sc_dtype_size(dt);
    void *params = calloc(1, bytes ? bytes : 1), *state = calloc(1, bytes ? bytes : 1);
    sc_status rc = params && state ? SC_OK : sc_errorf(SC_ERR_NOMEM, "%s: out of memory", path);
    char name[SC_PARAM_NAME_CAP + sizeof MOMENTUM_PREFIX];
    for (int i = 0; i < t->count && rc == SC_OK; i++) {
        const sc_param *p = &t->rows[i];
        rc = take(&st, p->name, p, dt, params);
        if (rc == SC_OK && !(p->flags & SC_PARAM_BN_STAT)) {
            snprintf(name, sizeof name, MOMENTUM_PREFIX "%s", p->name);
            rc = take(&st, name, p, dt, state);
        }
    }
    sc_train_state s = {0};
    if (rc == SC_OK) rc = parse_i64(&st, "step", &s.step);
    if (rc == SC_OK) rc = parse_i64(&st, "epoch", &s.epoch);
    if (rc == SC_OK) rc = parse_i64(&st, "batch_in_epoch", &s.batch_in_epoch);
    if (rc == SC_OK && config_yaml) {
        *config_yaml = strdup(sc_safetensors_meta(&st, "config"));
        if (!*config_yaml) rc = sc_errorf(SC_ERR_NOMEM, "out of memory");
    }
    if (rc == SC_OK) {
        sc_tensor pb = sc_model_param_buffer(m), sb = sc_model_state_buffer(m);
        sc_tensor_upload(sc_model_backend(m), &pb, params);
        sc_tensor_upload(sc_model_backend(m), &sb, state);
        if (ts) *ts = s;
    }
    free(params);
    free(state);
    sc_safetensors_close(&st);
    return rc;
}

sc_status sc_checkpoint_load_encoder(const char *path, sc_model *m) {
    sc_safetensors st;
    SC_TRY(open_checked(path, &st));
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
