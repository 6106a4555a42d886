/*
 * params.h - the parameter table: one row per named tensor inside the flat buffers.
 *
 * All parameters of a model live in ONE contiguous buffer, all gradients in a second of the
 * same layout and all optimizer state (momentum) in a third. The table says where each named
 * tensor starts (offset in elements), its shape and its flags. It drives initialisation,
 * the LARS exclusions, the fused optimizer kernels, the gradient all-reduce, checkpoints and
 * export names. BN running statistics are rows too (flag SC_PARAM_BN_STAT): they live in the
 * parameter buffer but have no gradient and are never touched by the optimizer.
 *
 * Names are torchvision's state_dict keys ("layer1.0.conv1.weight"); the head uses
 * "head.<i>.<weight|bias>" and "head.<i>.bn.<...>". Convolution weights are stored KRSC
 * ([out, kh, kw, in]); export transposes them to OIHW.
 */
#ifndef SIMCLR_PARAMS_H
#define SIMCLR_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "simclr/status.h"
#include "simclr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SC_PARAM_NO_WD = 1u << 0,   /* excluded from weight decay */
    SC_PARAM_NO_LARS = 1u << 1, /* excluded from the LARS trust ratio (plain momentum SGD) */
    SC_PARAM_ENCODER = 1u << 2, /* part of the encoder f(.) (exported) */
    SC_PARAM_HEAD = 1u << 3,    /* part of the projection head g(.) */
    SC_PARAM_BN_STAT = 1u << 4, /* BN running statistic: not trained */
    SC_PARAM_BN = 1u << 5,      /* BN gamma or beta */
    SC_PARAM_BIAS = 1u << 6,    /* a bias vector */
    SC_PARAM_CONV = 1u << 7,    /* a convolution filter, stored KRSC */
};

/* How a row is initialised by sc_params_init(). */
typedef enum sc_init_kind {
    SC_INIT_ZEROS = 0,
    SC_INIT_ONES,
    SC_INIT_KAIMING_FAN_OUT,   /* N(0, 2/fan_out), torchvision's conv init */
    SC_INIT_TORCH_LINEAR,      /* U(+-1/sqrt(fan_in)), PyTorch's nn.Linear default */
    SC_INIT_NORMAL,            /* N(0, init_arg^2) */
} sc_init_kind;

#define SC_PARAM_NAME_CAP 96
/* Offsets are multiples of this many elements, so vector loads never straddle tensors. */
#define SC_PARAM_ALIGN 16

typedef struct sc_param {
    char name[SC_PARAM_NAME_CAP];
    int ndim;
    int64_t shape[SC_MAX_DIMS];
    int64_t numel;
    int64_t offset; /* in elements from the start of the flat buffer */
    uint32_t flags;
    sc_init_kind init;
    int64_t fan_in, fan_out; /* for the initialisers */
    double init_arg;
} sc_param;

typedef struct sc_param_table {
    sc_param *rows;
    int count, cap;
    int64_t total; /* elements in each flat buffer, including alignment padding */
} sc_param_table;

void sc_params_init_table(sc_param_table *t);
void sc_params_free(sc_param_table *t);

/* Append a row; returns its index or -1 (with sc_last_error set) on a duplicate name. */
int sc_params_add(sc_param_table *t, const char *name, int ndim, const int64_t *shape,
                  uint32_t flags, sc_init_kind init, int64_t fan_in, int64_t fan_out);

/* Index of a name, or -1. */
int sc_params_find(const sc_param_table *t, const char *name);

/* A view of row `i` inside a flat buffer of dtype `dt` starting at `base`. */
sc_tensor sc_params_view(const sc_param_table *t, int i, void *base, sc_dtype dt);

/* Number of trainable elements (rows without SC_PARAM_BN_STAT). */
int64_t sc_params_trainable(const sc_param_table *t);

/* Fill a host buffer of `dt` (F32 or F64, `t->total` elements) with the initial values,
 * drawing from Philox streams keyed by (seed, purpose INIT, FNV-1a hash of the row's name):
 * a tensor's initial value depends only on the seed and its name, not on which other rows
 * exist (so the encoder starts identically whatever head follows it). Padding is zeroed. */
void sc_params_init_values(const sc_param_table *t, uint64_t seed, void *host, sc_dtype dt);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_PARAMS_H */
