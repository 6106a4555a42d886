/*
 * rng.h - counter-based random numbers (Philox4x32-10) keyed by what they are for.
 *
 * Every random draw in simclr is a pure function of (seed, epoch, sample, view, purpose) and
 * a draw index. Nothing depends on which thread or device made the draw or on how many draws
 * happened before, so augmentation is identical for any worker count, on the CPU or the GPU,
 * and after a resume. The block function is header-only and usable from CUDA kernels.
 *
 * Counter layout of a stream (128 bits):
 *   ctr[0] = block index within the stream (4 words per block)
 *   ctr[1] = purpose << 24 | view          (view < 2^24)
 *   ctr[2] = sample index                   (< 2^32)
 *   ctr[3] = epoch
 * key = the run's 64-bit seed.
 */
#ifndef SIMCLR_RNG_H
#define SIMCLR_RNG_H

#include <stdint.h>

#ifdef __CUDACC__
#define SC_HD __host__ __device__ __forceinline__
#else
#define SC_HD static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* What a stream is used for; part of the counter, so streams never overlap. */
typedef enum sc_rng_purpose {
    SC_RNG_INIT = 1,      /* parameter initialisation; sample = parameter index */
    SC_RNG_SHUFFLE = 2,   /* epoch permutation; sample = 0 */
    SC_RNG_AUGMENT = 3,   /* per-sample, per-view augmentation parameters */
    SC_RNG_BLUR = 4,      /* per-batch blur parameters where drawn per batch */
    SC_RNG_EVAL = 5,      /* evaluation subsets and probe initialisation */
    SC_RNG_TEST = 6,      /* test data */
} sc_rng_purpose;

/* One Philox4x32 round-10 block: out = philox(ctr, key). */
SC_HD void sc_philox4x32_10(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4]) {
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* A sequential reader over one keyed stream. */
typedef struct sc_rng {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t buf[4];
    int left; /* words left in buf */
} sc_rng;

SC_HD sc_rng sc_rng_make(uint64_t seed, uint32_t epoch, uint32_t sample, uint32_t view,
                         uint32_t purpose) {
    sc_rng r;
    r.key[0] = (uint32_t)seed;
    r.key[1] = (uint32_t)(seed >> 32);
    r.ctr[0] = 0;
    r.ctr[1] = (purpose << 24) | (view & 0xFFFFFFu);
    r.ctr[2] = sample;
    r.ctr[3] = epoch;
    r.buf[0] = r.buf[1] = r.buf[2] = r.buf[3] = 0;
    r.left = 0;
    return r;
}

SC_HD uint32_t sc_rng_u32(sc_rng *r) {
    if (r->left == 0) {
        sc_philox4x32_10(r->ctr, r->key, r->buf);
        r->ctr[0]++;
        r->left = 4;
    }
    return r->buf[4 - r->left--];
}

/* Uniform in [0, 1) with 24 random bits. */
SC_HD float sc_rng_uniform(sc_rng *r) { return (float)(sc_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

/* Uniform in [0, 1) with 53 random bits. */
SC_HD double sc_rng_uniform_f64(sc_rng *r) {
    uint64_t a = sc_rng_u32(r) >> 5, b = sc_rng_u32(r) >> 6;
    return (double)(a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

/* Uniform in [lo, hi). */
SC_HD float sc_rng_range(sc_rng *r, float lo, float hi) { return lo + (hi - lo) * sc_rng_uniform(r); }

/* Uniform integer in [0, n) (n > 0), without modulo bias: values below 2^32 mod n are
 * rejected so that the accepted range is a whole number of copies of [0, n). */
SC_HD uint32_t sc_rng_below(sc_rng *r, uint32_t n) {
    uint32_t threshold = (0u - n) % n;
    for (;;) {
        uint32_t x = sc_rng_u32(r);
        if (x >= threshold) return x % n;
    }
}

/* Bernoulli(p). */
SC_HD int sc_rng_bernoulli(sc_rng *r, float p) { return sc_rng_uniform(r) < p; }

/* Standard normal (Box-Muller in double precision; one value per two uniforms). */
double sc_rng_normal(sc_rng *r);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_RNG_H */
