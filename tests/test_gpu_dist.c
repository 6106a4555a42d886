/*
 * test_gpu_dist.c - the distributed pieces on one GPU (skipped without one):
 *  - a 1-rank NCCL communicator: all-reduce (sum and mean), all-gather, reduce-scatter and
 *    broadcast of device buffers give their input back bit for bit, and so do asynchronous
 *    all-reduces on a duplicate (its own stream, after the backend's);
 *  - global batch norm on the CUDA backend with one rank's sums as the global ones
 *    (bn_sums + bn_fwd_from_sums, bn_sums + bn_bwd_from_sums) equals the fused single-GPU
 *    BN ops bit for bit (the same kernels and formulas); the trainer with one rank never
 *    takes the distributed path, so a 1-rank run is the non-distributed run.
 */
#include "gpu_test_util.h"
#include "harness.h"
#include "simclr/dist.h"

static sc_backend *be;

static void fill(float *x, int64_t n, uint32_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) % 2000) / 1000.0f - 0.7f;
    }
}

static void test_nccl_one_rank(void) {
    sc_dist_env env = {.world_size = 1, .master_port = 1, .master_addr = "127.0.0.1"};
    sc_comm *oob, *c;
    CHECK(sc_comm_tcp_create(&env, 10.0, &oob) == SC_OK);
    sc_status st = sc_comm_nccl_create(oob, be, 10.0, &c);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    if (st != SC_OK) return;
    enum { N = 4099 };
    static float h[N], back[N];
    fill(h, N, 7);
    void *d, *e;
    CHECK(sc_backend_alloc(be, N * sizeof(float), "a", &d) == SC_OK && sc_backend_alloc(be, N * sizeof(float), "b", &e) == SC_OK);
    be->ops->upload(be, d, h, sizeof h);
    CHECK(sc_comm_allreduce_sum(c, d, N, SC_F32) == SC_OK && sc_comm_allreduce_mean(c, d, N, SC_F32) == SC_OK);
    CHECK(sc_comm_allgather(c, d, e, N, SC_F32) == SC_OK && sc_comm_reduce_scatter_sum(c, e, d, N, SC_F32) == SC_OK);
    CHECK(sc_comm_broadcast(c, d, N, SC_F32, 0) == SC_OK && sc_comm_barrier(c) == SC_OK);
    be->ops->download(be, back, d, sizeof back);
    CHECK(memcmp(h, back, sizeof h) == 0);
    /* asynchronous all-reduces on a duplicate, after a copy enqueued on the backend's stream */
    sc_comm *dup;
    st = sc_comm_dup(c, &dup);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    if (st == SC_OK) {
        be->ops->zero(be, d, N * sizeof(float));
        be->ops->copy(be, d, e, N * sizeof(float)); /* e holds h after the reduce-scatter above */
        CHECK(sc_comm_iallreduce_mean(dup, (float *)d + N / 2, N - N / 2, SC_F32) == SC_OK);
        CHECK(sc_comm_iallreduce_mean(dup, d, N / 2, SC_F32) == SC_OK);
        CHECKF(sc_comm_wait_all(dup) == SC_OK, "%s", sc_last_error());
        be->ops->download(be, back, d, sizeof back);
        CHECK(memcmp(h, back, sizeof h) == 0);
        sc_comm_destroy(dup);
    }
    sc_backend_free(be, d);
    sc_backend_free(be, e);
    sc_comm_destroy(c);
    sc_comm_destroy(oob);
}

static void test_global_bn_one_rank(void) {
    enum { M = 300, C = 24 };
    static float hx[M * C], hdy[M * C], hg[C], hb[C], ones[C], zeros[C];
    fill(hx, M * C, 1);
    fill(hdy, M * C, 2);
    fill(hg, C, 3);
    fill(hb, C, 4);
    for (int i = 0; i < C; i++) ones[i] = 1.0f, zeros[i] = 0.0f;
    int64_t xs[2] = {M, C}, cs[1] = {C};
    sc_tensor x = gpu_tensor(be, "x", 2, xs, hx), dy = gpu_tensor(be, "dy", 2, xs, hdy);
    sc_tensor g = gpu_tensor(be, "gamma", 1, cs, hg), b = gpu_tensor(be, "beta", 1, cs, hb);
    sc_tensor y[2], dx[2], dg[2], db[2], mean[2], inv[2], rm[2], rv[2];
    for (int k = 0; k < 2; k++) {
        y[k] = gpu_tensor(be, "y", 2, xs, NULL);
        dx[k] = gpu_tensor(be, "dx", 2, xs, NULL);
        dg[k] = gpu_tensor(be, "dgamma", 1, cs, NULL);
        db[k] = gpu_tensor(be, "dbeta", 1, cs, NULL);
        mean[k] = gpu_tensor(be, "mean", 1, cs, NULL);
        inv[k] = gpu_tensor(be, "invstd", 1, cs, NULL);
        rm[k] = gpu_tensor(be, "running_mean", 1, cs, zeros);
        rv[k] = gpu_tensor(be, "running_var", 1, cs, ones);
    }
    void *sums_mem;
    CHECK(sc_backend_alloc(be, 2 * C * sizeof(double), "sums", &sums_mem) == SC_OK);
    sc_tensor sums = sc_tensor_2d(sums_mem, SC_F64, 2, C);
    sc_op_bn_fwd_train(be, &x, &g, &b, &y[0], &mean[0], &inv[0], &rm[0], &rv[0], 0.1, 1e-5);
    sc_op_bn_bwd(be, &x, &dy, &g, &mean[0], &inv[0], &dx[0], &dg[0], &db[0]);
    sc_op_bn_sums(be, &x, NULL, NULL, &sums);
    sc_op_bn_fwd_from_sums(be, &x, &g, &b, &sums, M, &y[1], &mean[1], &inv[1], &rm[1], &rv[1], 0.1, 1e-5);
    sc_op_bn_sums(be, &x, &dy, &mean[1], &sums);
    sc_op_bn_bwd_from_sums(be, &x, &dy, &g, &mean[1], &inv[1], &sums, &sums, M, &dx[1], &dg[1], &db[1]);
    const sc_tensor *pairs[][2] = {{&y[0], &y[1]}, {&dx[0], &dx[1]}, {&dg[0], &dg[1]}, {&db[0], &db[1]},
                                   {&rm[0], &rm[1]}, {&rv[0], &rv[1]}};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        size_t n = sc_tensor_nbytes(pairs[p][0]);
        float *u = malloc(n), *v = malloc(n);
        sc_tensor_download(be, u, pairs[p][0]);
        sc_tensor_download(be, v, pairs[p][1]);
        CHECKF(memcmp(u, v, n) == 0, "output %zu differs between fused and global BN", p);
        free(u);
        free(v);
    }
    sc_backend_free(be, sums_mem);
}

int main(void) {
    if (sc_cuda_device_count() == 0) sc_test_skip("no CUDA device");
    be = gpu_backend(0, 1);
    SC_RUN(test_nccl_one_rank);
    SC_RUN(test_global_bn_one_rank);
    sc_backend_destroy(be);
    return sc_test_summary();
}
