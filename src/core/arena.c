/*
 * arena.c - bump allocation over a caller-provided block (include/simclr/arena.h).
 */
#include "simclr/arena.h"

#include <stdint.h>

void sc_arena_init(sc_arena *a, const char *name, void *base, size_t size) {
    SC_CHECK(base != NULL || size == 0, "arena %s: NULL block of %zu bytes", name, size);
    SC_CHECK(((uintptr_t)base % SC_ARENA_ALIGN) == 0, "arena %s: block not %d-byte aligned", name,
             SC_ARENA_ALIGN);
    a->base = base;
    a->size = size;
    a->used = 0;
    a->peak = 0;
    a->name = name;
}

void sc_arena_measure(sc_arena *a, const char *name) {
    a->base = NULL;
    a->size = SIZE_MAX;
    a->used = 0;
    a->peak = 0;
    a->name = name;
}

int sc_arena_is_measuring(const sc_arena *a) { return a->base == NULL && a->size == SIZE_MAX; }

sc_status sc_arena_alloc(sc_arena *a, size_t bytes, void **out) {
    size_t rounded = (bytes + SC_ARENA_ALIGN - 1) / SC_ARENA_ALIGN * SC_ARENA_ALIGN;
    if (rounded < bytes || a->size - a->used < rounded) {
        *out = NULL;
        return sc_errorf(SC_ERR_NOMEM, "arena '%s' is full: %zu bytes requested, %zu of %zu used",
                         a->name, bytes, a->used, a->size);
    }
    *out = a->base ? a->base + a->used : NULL;
    a->used += rounded;
    if (a->used > a->peak) a->peak = a->used;
    return SC_OK;
}

sc_status sc_arena_tensor(sc_arena *a, sc_dtype dt, int ndim, const int64_t *shape, sc_tensor *out) {
    sc_tensor t = sc_tensor_make(NULL, dt, ndim, shape);
    void *p;
    SC_TRY(sc_arena_alloc(a, sc_tensor_nbytes(&t), &p));
    t.data = p;
    *out = t;
    return SC_OK;
}

size_t sc_arena_mark(const sc_arena *a) { return a->used; }

void sc_arena_release(sc_arena *a, size_t mark) {
    SC_CHECK(mark <= a->used, "arena %s: release past the top", a->name);
    a->used = mark;
}

void sc_arena_reset(sc_arena *a) { a->used = 0; }
