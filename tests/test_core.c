/*
 * test_core.c - the core module: Philox known answers, keyed streams, arenas, tensor views,
 * the parameter table and its initialisers, and error messages.
 */
#include <math.h>
#include <stdint.h>

#include "harness.h"
#include "simclr/arena.h"
#include "simclr/params.h"
#include "simclr/rng.h"
#include "simclr/status.h"
#include "simclr/tensor.h"

/* Random123's kat_vectors for philox4x32 with 10 rounds: counter, key, expected output. */
static void test_philox_known_answers(void) {
    static const uint32_t cases[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        sc_philox4x32_10(cases[i], cases[i] + 4, out);
        for (int j = 0; j < 4; j++) CHECKF(out[j] == cases[i][6 + j], "case %d word %d: %08x", i, j, out[j]);
    }
}

static void test_streams_are_keyed(void) {
    /* The same key gives the same numbers; any key component changes them. */
    sc_rng a = sc_rng_make(42, 3, 1000, 1, SC_RNG_AUGMENT);
    sc_rng b = sc_rng_make(42, 3, 1000, 1, SC_RNG_AUGMENT);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= sc_rng_u32(&a) == sc_rng_u32(&b);
    CHECK(same);
    uint32_t first[6];
    sc_rng variants[6] = {
        sc_rng_make(42, 3, 1000, 1, SC_RNG_AUGMENT), sc_rng_make(43, 3, 1000, 1, SC_RNG_AUGMENT),
        sc_rng_make(42, 4, 1000, 1, SC_RNG_AUGMENT), sc_rng_make(42, 3, 1001, 1, SC_RNG_AUGMENT),
        sc_rng_make(42, 3, 1000, 0, SC_RNG_AUGMENT), sc_rng_make(42, 3, 1000, 1, SC_RNG_SHUFFLE),
    };
    for (int i = 0; i < 6; i++) first[i] = sc_rng_u32(&variants[i]);
    for (int i = 1; i < 6; i++) CHECKF(first[i] != first[0], "variant %d collides", i);
}

static void test_uniform_and_normal_moments(void) {
    sc_rng r = sc_rng_make(7, 0, 0, 0, SC_RNG_TEST);
    const int n = 200000;
    double s = 0, s2 = 0, ns = 0, ns2 = 0, ns4 = 0;
    float lo = 1, hi = 0;
    for (int i = 0; i < n; i++) {
        float u = sc_rng_uniform(&r);
        if (u < lo) lo = u;
        if (u > hi) hi = u;
        s += u;
        s2 += (double)u * u;
        double z = sc_rng_normal(&r);
        ns += z;
        ns2 += z * z;
        ns4 += z * z * z * z;
    }
    CHECK(lo >= 0.0f && hi < 1.0f);
    CHECK_CLOSE(s / n, 0.5, 0.005, 0);
    CHECK_CLOSE(s2 / n - (s / n) * (s / n), 1.0 / 12.0, 0.002, 0);
    CHECK_CLOSE(ns / n, 0.0, 0.01, 0);
    CHECK_CLOSE(ns2 / n, 1.0, 0.015, 0);
    CHECK_CLOSE(ns4 / n, 3.0, 0.1, 0); /* kurtosis of a normal */
}

static void test_below_is_uniform(void) {
    sc_rng r = sc_rng_make(1, 0, 0, 0, SC_RNG_TEST);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint32_t v = sc_rng_below(&r, 7);
        CHECK(v < 7);
        counts[v]++;
    }
    for (int i = 0; i < 7; i++) CHECK_CLOSE(counts[i], 10000, 400, 0);
}

static void test_arena(void) {
    sc_arena m;
    sc_arena_measure(&m, "plan");
    void *p;
    CHECK(sc_arena_alloc(&m, 10, &p) == SC_OK && p == NULL);
    CHECK(sc_arena_alloc(&m, 300, &p) == SC_OK);
    CHECK(m.used == 256 + 512);
    static _Alignas(256) char block[1024];
    sc_arena a;
    sc_arena_init(&a, "acts", block, sizeof block);
    void *x, *y;
    CHECK(sc_arena_alloc(&a, 10, &x) == SC_OK && x == block);
    size_t mark = sc_arena_mark(&a);
    CHECK(sc_arena_alloc(&a, 300, &y) == SC_OK && y == block + 256);
    sc_arena_release(&a, mark);
    CHECK(a.used == 256 && a.peak == 768);
    CHECK(sc_arena_alloc(&a, 2000, &y) == SC_ERR_NOMEM && y == NULL);
    CHECKF(strstr(sc_last_error(), "acts") != NULL, "message: %s", sc_last_error());
    int64_t shape[4] = {2, 3, 4, 5};
    sc_tensor t;
    sc_arena_reset(&a);
    CHECK(sc_arena_tensor(&a, SC_F32, 4, shape, &t) == SC_OK && t.data == block);
    CHECK(sc_tensor_numel(&t) == 120 && sc_tensor_nbytes(&t) == 480);
}

static void test_tensor_views(void) {
    float buf[24];
    sc_tensor t = sc_tensor_4d(buf, SC_F32, 2, 3, 2, 2);
    sc_tensor s = sc_tensor_slice0(&t, 1, 1);
    CHECK(s.data == buf + 12 && s.shape[0] == 1 && sc_tensor_numel(&s) == 12);
    int64_t flat[2] = {6, 4};
    sc_tensor r = sc_tensor_reshape(&t, 2, flat);
    CHECK(r.ndim == 2 && r.shape[1] == 4 && r.data == buf);
    char desc[64];
    CHECK(strcmp(sc_tensor_describe(&t, desc, sizeof desc), "[2, 3, 2, 2] F32") == 0);
}

static void test_param_table(void) {
    sc_param_table t;
    sc_params_init_table(&t);
    int64_t conv[4] = {16, 3, 3, 8}, vec[1] = {16};
    int a = sc_params_add(&t, "conv1.weight", 4, conv, SC_PARAM_CONV | SC_PARAM_ENCODER,
                          SC_INIT_KAIMING_FAN_OUT, 72, 144);
    int b = sc_params_add(&t, "bn1.weight", 1, vec, SC_PARAM_BN | SC_PARAM_NO_WD, SC_INIT_ONES, 0, 0);
    int c = sc_params_add(&t, "bn1.running_mean", 1, vec, SC_PARAM_BN_STAT, SC_INIT_ZEROS, 0, 0);
    CHECK(a == 0 && b == 1 && c == 2);
    CHECK(sc_params_add(&t, "bn1.weight", 1, vec, 0, SC_INIT_ONES, 0, 0) == -1);
    CHECK(strstr(sc_last_error(), "duplicate") != NULL);
    CHECK(t.rows[1].offset == 1152 && t.rows[2].offset == 1168 && t.total == 1184);
    CHECK(sc_params_trainable(&t) == 1152 + 16);
    CHECK(sc_params_find(&t, "bn1.running_mean") == 2 && sc_params_find(&t, "nope") == -1);

    static float v1[1184], v2[1184];
    static double vd[1184];
    sc_params_init_values(&t, 5, v1, SC_F32);
    sc_params_init_values(&t, 5, v2, SC_F32);
    sc_params_init_values(&t, 5, vd, SC_F64);
    CHECK(memcmp(v1, v2, sizeof v1) == 0);
    CHECK(v1[1152] == 1.0f && v1[1168] == 0.0f && v1[1183] == 0.0f);
    double s2 = 0;
    for (int i = 0; i < 1152; i++) {
        s2 += (double)v1[i] * v1[i];
        CHECK_CLOSE(v1[i], vd[i], 1e-6, 1e-6);
    }
    CHECK_CLOSE(s2 / 1152, 2.0 / 144.0, 0.002, 0); /* Kaiming fan_out variance */

    /* A tensor's initial value depends on its name and the seed only. */
    sc_param_table u;
    sc_params_init_table(&u);
    sc_params_add(&u, "extra.weight", 1, vec, 0, SC_INIT_KAIMING_FAN_OUT, 16, 16);
    sc_params_add(&u, "conv1.weight", 4, conv, SC_PARAM_CONV, SC_INIT_KAIMING_FAN_OUT, 72, 144);
    static float w[1184 + 16];
    sc_params_init_values(&u, 5, w, SC_F32);
    CHECK(memcmp(w + u.rows[1].offset, v1, 1152 * sizeof(float)) == 0);
    sc_params_free(&u);
    sc_params_free(&t);
}

static void test_error_messages(void) {
    sc_error_clear();
    CHECK(sc_last_error()[0] == '\0');
    CHECK(sc_errorf(SC_ERR_IO, "%s: cannot open", "x.bin") == SC_ERR_IO);
    CHECK(sc_error_wrap(SC_ERR_IO, "loading dataset") == SC_ERR_IO);
    CHECK(strcmp(sc_last_error(), "loading dataset: x.bin: cannot open") == 0);
    CHECK(strcmp(sc_status_name(SC_ERR_CONFIG), "config error") == 0);
}

int main(void) {
    SC_RUN(test_philox_known_answers);
    SC_RUN(test_streams_are_keyed);
    SC_RUN(test_uniform_and_normal_moments);
    SC_RUN(test_below_is_uniform);
    SC_RUN(test_arena);
    SC_RUN(test_tensor_views);
    SC_RUN(test_param_table);
    SC_RUN(test_error_messages);
    return sc_test_summary();
}
