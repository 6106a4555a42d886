/*
 * arena.h - bump allocators for activations, workspaces and scratch memory.
 *
 * An arena hands out aligned slices of one block and frees them all at once. It does not
 * allocate the block itself, so the same code manages host memory and device memory:
 * the caller obtains the block from a backend and wraps it.
 *
 * Planning: an arena created with sc_arena_measure() has no block; allocations succeed,
 * return NULL data and only advance the offset. Running the same allocation sequence once
 * in measure mode and once for real gives an exact size with no allocation inside the step.
 */
#ifndef SIMCLR_ARENA_H
#define SIMCLR_ARENA_H

#include <stddef.h>

#include "simclr/status.h"
#include "simclr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SC_ARENA_ALIGN 256 /* bytes: enough for any vector load and cuDNN's alignment needs */

typedef struct sc_arena {
    char *base;  /* NULL in measure mode */
    size_t size; /* capacity in bytes (SIZE_MAX in measure mode) */
    size_t used; /* bytes handed out so far */
    size_t peak; /* highest `used` seen */
    const char *name;
} sc_arena;

/* An arena over [base, base+size). */
void sc_arena_init(sc_arena *a, const char *name, void *base, size_t size);
/* A measuring arena: counts bytes, hands out NULL. */
void sc_arena_measure(sc_arena *a, const char *name);
int sc_arena_is_measuring(const sc_arena *a);

/* `bytes` rounded up to SC_ARENA_ALIGN. Returns SC_ERR_NOMEM (with a message naming the
 * arena, the request and the capacity) when the arena is full. */
sc_status sc_arena_alloc(sc_arena *a, size_t bytes, void **out);
/* Allocate and wrap as a tensor of the given shape. */
sc_status sc_arena_tensor(sc_arena *a, sc_dtype dt, int ndim, const int64_t *shape, sc_tensor *out);

/* Marks allow stack-like release of temporaries. */
size_t sc_arena_mark(const sc_arena *a);
void sc_arena_release(sc_arena *a, size_t mark);
void sc_arena_reset(sc_arena *a);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_ARENA_H */
