/*
 * tensor.h - non-owning tensor views.
 *
 * An sc_tensor is a pointer plus a dtype and a shape; it never owns memory. The memory belongs
 * to an arena or to one of the model's flat buffers, and may live on the host or on a device:
 * only the backend that receives the view dereferences it. Tensors are dense and row-major
 * (the last dimension is contiguous). Activations are NHWC, convolution filters KRSC.
 */
#ifndef SIMCLR_TENSOR_H
#define SIMCLR_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sc_dtype {
    SC_F32 = 0, /* the compute type of the reference path */
    SC_F64,     /* CPU only: gradient checks run the same ops in double precision */
    SC_BF16,
    SC_F16,
    SC_I64,
    SC_I32,
    SC_U8,
} sc_dtype;

#define SC_MAX_DIMS 4

typedef struct sc_tensor {
    void *data;
    sc_dtype dtype;
    int ndim;
    int64_t shape[SC_MAX_DIMS];
} sc_tensor;

/* Bytes per element of `dt`. */
size_t sc_dtype_size(sc_dtype dt);
/* "F32", "F64", ... (the safetensors spelling). */
const char *sc_dtype_name(sc_dtype dt);
/* bfloat16 bits of a float, rounded to nearest even (what a bf16 tensor on the device holds),
 * and the float a bf16 value stands for. */
uint16_t sc_f32_to_bf16(float f);
float sc_bf16_to_f32(uint16_t h);

/* A view of `data` with the given shape (ndim <= SC_MAX_DIMS). */
sc_tensor sc_tensor_make(void *data, sc_dtype dt, int ndim, const int64_t *shape);
sc_tensor sc_tensor_1d(void *data, sc_dtype dt, int64_t n0);
sc_tensor sc_tensor_2d(void *data, sc_dtype dt, int64_t n0, int64_t n1);
sc_tensor sc_tensor_4d(void *data, sc_dtype dt, int64_t n0, int64_t n1, int64_t n2, int64_t n3);

int64_t sc_tensor_numel(const sc_tensor *t);
size_t sc_tensor_nbytes(const sc_tensor *t);
/* Same data viewed with another shape of equal element count (checked). */
sc_tensor sc_tensor_reshape(const sc_tensor *t, int ndim, const int64_t *shape);
/* Rows [start, start+count) of the first dimension. */
sc_tensor sc_tensor_slice0(const sc_tensor *t, int64_t start, int64_t count);
/* True when dtype and shape match. */
int sc_tensor_same_shape(const sc_tensor *a, const sc_tensor *b);
/* Writes "[2, 32, 32, 3] F32" into buf. */
const char *sc_tensor_describe(const sc_tensor *t, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_TENSOR_H */
