/*
 * params.c - the parameter table and its initialisers (include/simclr/params.h).
 */
#include "simclr/params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/rng.h"

void sc_params_init_table(sc_param_table *t) { memset(t, 0, sizeof *t); }

void sc_params_free(sc_param_table *t) {
    free(t->rows);
    memset(t, 0, sizeof *t);
}

int sc_params_find(const sc_param_table *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->rows[i].name, name) == 0) return i;
    return -1;
}

int sc_params_add(sc_param_table *t, const char *name, int ndim, const int64_t *shape,
                  uint32_t flags, sc_init_kind init, int64_t fan_in, int64_t fan_out) {
    SC_CHECK(strlen(name) < SC_PARAM_NAME_CAP, "parameter name too long: %s", name);
    SC_CHECK(ndim >= 0 && ndim <= SC_MAX_DIMS, "parameter %s: rank %d", name, ndim);
    if (sc_params_find(t, name) >= 0) {
        sc_errorf(SC_ERR_ARG, "duplicate parameter name '%s'", name);
        return -1;
    }
    if (t->count == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        sc_param *rows = realloc(t->rows, (size_t)cap * sizeof *rows);
        SC_CHECK(rows != NULL, "out of host memory for the parameter table");
        t->rows = rows;
        t->cap = cap;
    }
    sc_param *p = &t->rows[t->count];
    memset(p, 0, sizeof *p);
    strcpy(p->name, name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= shape[i];
    }
    p->offset = t->total;
    p->flags = flags;
    p->init = init;
    p->fan_in = fan_in;
    p->fan_out = fan_out;
    t->total += (p->numel + SC_PARAM_ALIGN - 1) / SC_PARAM_ALIGN * SC_PARAM_ALIGN;
    return t->count++;
}

sc_tensor sc_params_view(const sc_param_table *t, int i, void *base, sc_dtype dt) {
    SC_CHECK(i >= 0 && i < t->count, "parameter index %d out of range", i);
    const sc_param *p = &t->rows[i];
    char *data = base ? (char *)base + (size_t)p->offset * sc_dtype_size(dt) : NULL;
    return sc_tensor_make(data, dt, p->ndim, p->shape);
}

int64_t sc_params_trainable(const sc_param_table *t) {
    int64_t n = 0;
    for (int i = 0; i < t->count; i++)
        if (!(t->rows[i].flags & SC_PARAM_BN_STAT)) n += t->rows[i].numel;
    return n;
}

static uint32_t fnv1a(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

void sc_params_init_values(const sc_param_table *t, uint64_t seed, void *host, sc_dtype dt) {
    SC_CHECK(dt == SC_F32 || dt == SC_F64, "parameters must be F32 or F64");
    size_t es = sc_dtype_size(dt);
    memset(host, 0, (size_t)t->total * es);
    for (int i = 0; i < t->count; i++) {
        const sc_param *p = &t->rows[i];
        sc_rng rng = sc_rng_make(seed, 0, fnv1a(p->name), 0, SC_RNG_INIT);
        for (int64_t j = 0; j < p->numel; j++) {
            double v = 0.0;
            switch (p->init) {
            case SC_INIT_ZEROS: v = 0.0; break;
            case SC_INIT_ONES: v = 1.0; break;
            case SC_INIT_KAIMING_FAN_OUT: v = sc_rng_normal(&rng) * sqrt(2.0 / (double)p->fan_out); break;
            case SC_INIT_TORCH_LINEAR: {
                double bound = 1.0 / sqrt((double)p->fan_in);
                v = (2.0 * sc_rng_uniform_f64(&rng) - 1.0) * bound;
                break;
            }
            case SC_INIT_NORMAL: v = sc_rng_normal(&rng) * p->init_arg; break;
            }
            if (dt == SC_F32)
                ((float *)host)[p->offset + j] = (float)v;
            else
                ((double *)host)[p->offset + j] = v;
        }
    }
}
