/*
 * tensor.c - helpers for the non-owning views of include/simclr/tensor.h.
 */
#include "simclr/tensor.h"

#include <stdio.h>
#include <string.h>

#include "simclr/status.h"

size_t sc_dtype_size(sc_dtype dt) {
    switch (dt) {
    case SC_F32: return 4;
    case SC_F64: return 8;
    case SC_BF16: return 2;
    case SC_F16: return 2;
    case SC_I64: return 8;
    case SC_I32: return 4;
    case SC_U8: return 1;
    }
    SC_FATAL("unknown dtype %d", (int)dt);
}

const char *sc_dtype_name(sc_dtype dt) {
    switch (dt) {
    case SC_F32: return "F32";
    case SC_F64: return "F64";
    case SC_BF16: return "BF16";
    case SC_F16: return "F16";
    case SC_I64: return "I64";
    case SC_I32: return "I32";
    case SC_U8: return "U8";
    }
    return "?";
}

uint16_t sc_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float sc_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

sc_tensor sc_tensor_make(void *data, sc_dtype dt, int ndim, const int64_t *shape) {
    SC_CHECK(ndim >= 0 && ndim <= SC_MAX_DIMS, "tensor rank %d out of range", ndim);
    sc_tensor t = {.data = data, .dtype = dt, .ndim = ndim, .shape = {0}};
    for (int i = 0; i < ndim; i++) {
        SC_CHECK(shape[i] >= 0, "negative extent %lld", (long long)shape[i]);
        t.shape[i] = shape[i];
    }
    return t;
}

sc_tensor sc_tensor_1d(void *data, sc_dtype dt, int64_t n0) {
    int64_t s[1] = {n0};
    return sc_tensor_make(data, dt, 1, s);
}

sc_tensor sc_tensor_2d(void *data, sc_dtype dt, int64_t n0, int64_t n1) {
    int64_t s[2] = {n0, n1};
    return sc_tensor_make(data, dt, 2, s);
}

sc_tensor sc_tensor_4d(void *data, sc_dtype dt, int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
    int64_t s[4] = {n0, n1, n2, n3};
    return sc_tensor_make(data, dt, 4, s);
}

int64_t sc_tensor_numel(const sc_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t sc_tensor_nbytes(const sc_tensor *t) {
    return (size_t)sc_tensor_numel(t) * sc_dtype_size(t->dtype);
}

sc_tensor sc_tensor_reshape(const sc_tensor *t, int ndim, const int64_t *shape) {
    sc_tensor r = sc_tensor_make(t->data, t->dtype, ndim, shape);
    SC_CHECK(sc_tensor_numel(&r) == sc_tensor_numel(t), "reshape changes the element count");
    return r;
}

sc_tensor sc_tensor_slice0(const sc_tensor *t, int64_t start, int64_t count) {
    SC_CHECK(t->ndim >= 1 && start >= 0 && count >= 0 && start + count <= t->shape[0],
             "slice [%lld, %lld) outside dim 0 of size %lld", (long long)start,
             (long long)(start + count), (long long)(t->ndim ? t->shape[0] : 0));
    sc_tensor r = *t;
    int64_t row = 1;
    for (int i = 1; i < t->ndim; i++) row *= t->shape[i];
    r.data = (char *)t->data + (size_t)(start * row) * sc_dtype_size(t->dtype);
    r.shape[0] = count;
    return r;
}

int sc_tensor_same_shape(const sc_tensor *a, const sc_tensor *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char *sc_tensor_describe(const sc_tensor *t, char *buf, size_t cap) {
    size_t used = 0;
    used += (size_t)snprintf(buf + used, cap - used, "[");
    for (int i = 0; i < t->ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "] %s", sc_dtype_name(t->dtype));
    return buf;
}
