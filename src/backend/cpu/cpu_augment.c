/*
 * cpu_augment.c - the device half of the SimCLR augmentation on the CPU backend, and its host
 * staging entries.
 *
 * augment_crops finishes uint8 crops into views with the CPU reference (sc_aug_finish_crop in
 * src/data/augment.c), one view per loop iteration over OpenMP threads; each view is a pure
 * function of its crop and its Philox key, so the result is the same for any thread count.
 * This is what `data.augment_on: gpu` runs on the CPU backend, and what kernels/augment.cu is
 * tested against. Host staging memory is ordinary aligned memory and an "asynchronous" upload
 * is a copy that has finished when it returns, so the CPU needs no events.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "data/augment_ops.h"
#include "simclr/arena.h"
#include "simclr/rng.h"

void *sc_cpu_host_alloc(sc_backend *be, size_t bytes) {
    (void)be;
    size_t rounded = (bytes + SC_ARENA_ALIGN - 1) / SC_ARENA_ALIGN * SC_ARENA_ALIGN;
    return aligned_alloc(SC_ARENA_ALIGN, rounded ? rounded : SC_ARENA_ALIGN);
}

void sc_cpu_host_free(sc_backend *be, void *ptr) {
    (void)be;
    free(ptr);
}

void sc_cpu_upload_async(sc_backend *be, void *dst, const void *host_src, size_t bytes, sc_backend_event *after,
                         sc_backend_event *done) {
    (void)be;
    (void)after; /* CPU work is complete when its call returns */
    (void)done;
    if (bytes) memcpy(dst, host_src, bytes);
}

/* Floats of scratch one view needs. */
static size_t view_scratch(const sc_augment_params *p, int wc) {
    const sc_image shape = {0, 0, wc, NULL};
    return sc_augment_scratch_floats(p, &shape);
}

size_t sc_cpu_augment_workspace(sc_backend *be, const sc_augment_params *p, int samples, int wc) {
    (void)samples;
    return (size_t)be->threads * view_scratch(p, wc) * sizeof(float);
}

void sc_cpu_augment_crops(sc_backend *be, const sc_augment_params *p, uint64_t seed, uint32_t epoch,
                          const uint8_t *crops, const uint32_t *keys, int samples, int wc, float *views,
                          void *workspace) {
    const size_t per_thread = view_scratch(p, wc);
    const size_t in = (size_t)p->out_size * p->out_size * wc;
    const size_t out = (size_t)p->out_size * p->out_size * p->out_channels;
#pragma omp parallel for num_threads(be->threads) schedule(dynamic, 1)
    for (int r = 0; r < 2 * samples; r++) {
        float *scratch = (float *)workspace + (size_t)omp_get_thread_num() * per_thread;
        const int j = r % samples, v = r / samples;
        sc_rng rng = sc_rng_make(seed, epoch, keys[j], (uint32_t)v, SC_RNG_AUGMENT);
        sc_aug_finish_crop(p, crops + (size_t)r * in, wc, &rng, views + (size_t)r * out, scratch);
    }
}
