/*
 * safetensors.h - reading and writing the safetensors format (checkpoints and exports).
 *
 * Layout: u64 little-endian N | N bytes of JSON header | raw little-endian tensor data.
 * The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)}
 * (offsets relative to the data section) and may hold "__metadata__", a string->string map.
 *
 * The reader trusts nothing: the header size is capped (100 MB), the JSON must parse, every
 * entry must have a known dtype, a non-negative shape and offsets whose length equals
 * prod(shape) * dtype size (checked for overflow), the tensors must tile the data section
 * exactly (sorted by offset, contiguous from 0, no holes, no overlap) and the data section
 * must end at the end of the file. Every failure returns SC_ERR_FORMAT naming the file and
 * the defect (and the byte offset where one applies).
 *
 * The writer orders tensors as given, pads the header with spaces to a multiple of 8 bytes,
 * puts "__metadata__" first, and writes atomically: a temporary file in the same directory,
 * fsync, rename over the target, fsync of the directory. A failure at any point leaves the
 * previous file at `path` untouched.
 */
#ifndef SIMCLR_SAFETENSORS_H
#define SIMCLR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "simclr/status.h"
#include "simclr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SC_ST_MAX_HEADER 100000000ull
#define SC_ST_NAME_CAP 256

typedef struct sc_st_entry {
    const char *name;
    sc_dtype dtype;
    int ndim;
    int64_t shape[SC_MAX_DIMS];
    const void *data; /* host memory, prod(shape) elements */
} sc_st_entry;

typedef struct sc_st_meta {
    const char *key;
    const char *value;
} sc_st_meta;

sc_status sc_safetensors_write(const char *path, const sc_st_entry *entries, int count,
                               const sc_st_meta *meta, int meta_count);

typedef struct sc_st_tensor {
    char name[SC_ST_NAME_CAP];
    sc_dtype dtype;
    int ndim;
    int64_t shape[SC_MAX_DIMS];
    uint64_t begin, end; /* byte offsets in the data section */
} sc_st_tensor;

typedef struct sc_safetensors {
    char path[1024];
    uint8_t *file;    /* the whole file */
    size_t size;
    size_t data_start; /* 8 + header length */
    sc_st_tensor *tensors;
    int count;
    char **meta_keys, **meta_values;
    int meta_count;
} sc_safetensors;

sc_status sc_safetensors_open(const char *path, sc_safetensors *out);
/* The same checks on a buffer already in memory (the reader's core; used by fuzz tests).
 * `label` names the source in errors. Takes ownership of `file` (freed by close). */
sc_status sc_safetensors_parse(uint8_t *file, size_t size, const char *label, sc_safetensors *out);
void sc_safetensors_close(sc_safetensors *st);

const sc_st_tensor *sc_safetensors_find(const sc_safetensors *st, const char *name);
const void *sc_safetensors_data(const sc_safetensors *st, const sc_st_tensor *t);
/* A metadata value, or NULL. */
const char *sc_safetensors_meta(const sc_safetensors *st, const char *key);

/* Write the concatenation of `nparts` buffers to `path` atomically (temp file in the same
 * directory, fsync, rename, directory fsync); on failure the old file is untouched. */
sc_status sc_write_file_atomic(const char *path, const void *const *parts, const size_t *sizes, int nparts);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_SAFETENSORS_H */
