/*
 * test_dist.c - the TCP communicator on 2 to 4 forked local processes: every collective gives
 * the rank-order sum with identical bits on every rank, groups, large buffers, the launch
 * environment, and the fault paths (a peer that exits fails the others at once, a hung one
 * after dist.timeout_s, each naming the rank).
 */
#include <stdlib.h>
#include <string.h>

#include "dist_test_util.h"

/* A value whose float sum depends on the order of addition. */
static float val(int rank, int64_t i) { return (float)((rank + 1) * 1e-3 + (double)(i % 97) * 0.37 + (rank == 2 ? 1e4 : 0.0)); }

static int ops_rank(const sc_dist_env *env, void *arg) {
    sc_comm *c;
    sc_status st = sc_comm_tcp_create(env, 10.0, &c);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    if (st != SC_OK) return 1;
    const int n = env->world_size, me = env->rank;
    const int64_t count = *(int64_t *)arg;
    float *buf = malloc((size_t)count * sizeof(float));
    for (int64_t i = 0; i < count; i++) buf[i] = val(me, i);
    CHECKF(sc_comm_allreduce_sum(c, buf, count, SC_F32) == SC_OK, "%s", sc_last_error());
    int64_t bad = 0;
    for (int64_t i = 0; i < count; i++) {
        float want = val(0, i);
        for (int r = 1; r < n; r++) want += val(r, i);
        bad += memcmp(&want, &buf[i], sizeof want) != 0;
    }
    CHECKF(bad == 0, "%lld elements differ from the rank-order sum", (long long)bad);
    double mean[2] = {me, 1.0};
    CHECK(sc_comm_allreduce_mean(c, mean, 2, SC_F64) == SC_OK && mean[0] == (n - 1) / 2.0 && mean[1] == 1.0);

    /* all-gather, reduce-scatter (F64), broadcast (I32), barrier */
    double mine[3] = {me, me * 10.0, me * 100.0}, all[3 * 8], rs[3];
    CHECK(sc_comm_allgather(c, mine, all, 3, SC_F64) == SC_OK);
    for (int r = 0; r < n; r++) CHECK(all[3 * r] == r && all[3 * r + 1] == 10.0 * r && all[3 * r + 2] == 100.0 * r);
    double blocks[3 * 8];
    for (int r = 0; r < n; r++)
        for (int k = 0; k < 3; k++) blocks[3 * r + k] = (double)(me + 1) * (r * 3 + k);
    CHECK(sc_comm_reduce_scatter_sum(c, blocks, rs, 3, SC_F64) == SC_OK);
    double tri = (double)n * (n + 1) / 2;
    for (int k = 0; k < 3; k++) CHECK(rs[k] == tri * (me * 3 + k));
    int32_t b[2] = {me == n - 1 ? 42 : -1, me == n - 1 ? 7 : -1};
    CHECK(sc_comm_broadcast(c, b, 2, SC_I32, n - 1) == SC_OK && b[0] == 42 && b[1] == 7);
    CHECK(sc_comm_barrier(c) == SC_OK);

    /* groups of 2: sums stay within the group */
    if (n % 2 == 0) {
        sc_comm *g;
        CHECKF(sc_comm_split(c, 2, &g) == SC_OK, "%s", sc_last_error());
        int32_t v = me;
        CHECK(g->world_size == 2 && g->rank == me % 2);
        CHECK(sc_comm_allreduce_sum(g, &v, 1, SC_I32) == SC_OK && v == (me / 2 * 2) * 2 + 1);
        v = 1;
        CHECK(sc_comm_allreduce_sum(c, &v, 1, SC_I32) == SC_OK && v == n); /* the world still works */
        sc_comm_destroy(g);
    }
    free(buf);
    sc_comm_destroy(c);
    return 0;
}

static void test_collectives(void) {
    int64_t small = 1001, large = 3 << 20; /* 12 MiB: more than the socket buffers hold */
    CHECK(sc_test_run_ranks(2, ops_rank, &small, 60) == 0);
    CHECK(sc_test_run_ranks(3, ops_rank, &small, 60) == 0);
    CHECK(sc_test_run_ranks(4, ops_rank, &large, 120) == 0);
}

static void test_single_rank(void) {
    sc_dist_env env = {.world_size = 1, .master_port = 1, .master_addr = "127.0.0.1"};
    sc_comm *c;
    CHECK(sc_comm_tcp_create(&env, 1.0, &c) == SC_OK);
    float x[2] = {1.5f, 2.5f}, y[2];
    CHECK(sc_comm_allreduce_sum(c, x, 2, SC_F32) == SC_OK && x[0] == 1.5f);
    CHECK(sc_comm_allgather(c, x, y, 2, SC_F32) == SC_OK && y[1] == 2.5f);
    CHECK(sc_comm_reduce_scatter_sum(c, x, y, 2, SC_F32) == SC_OK && y[0] == 1.5f);
    CHECK(sc_comm_allreduce_sum(c, x, 2, SC_U8) == SC_ERR_ARG);
    sc_comm *g;
    CHECK(sc_comm_split(c, 2, &g) == SC_ERR_CONFIG && strstr(sc_last_error(), "does not divide"));
    sc_comm_destroy(c);
}

/* rank 1 leaves (exit, or hangs when *arg), rank 0's all-reduce must fail naming it */
static int fault_rank(const sc_dist_env *env, void *arg) {
    const int hang = *(int *)arg;
    sc_comm *c;
    sc_status st = sc_comm_tcp_create(env, hang ? 1.0 : 20.0, &c);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    if (st != SC_OK) return 1;
    if (env->rank == 1) {
        if (hang) sleep(5);
        _exit(0); /* no goodbye: like a crash */
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    float x[1000] = {0};
    st = sc_comm_allreduce_sum(c, x, 1000, SC_F32);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    CHECK(st == SC_ERR_IO);
    CHECKF(strstr(sc_last_error(), "rank 1") && strstr(sc_last_error(), "rank 0: all-reduce"), "%s", sc_last_error());
    if (hang) {
        CHECKF(strstr(sc_last_error(), "dist.timeout_s") && s >= 0.9 && s < 4.0, "%.2f s: %s", s, sc_last_error());
    } else {
        CHECKF(strstr(sc_last_error(), "closed its connection") && s < 4.0, "%.2f s: %s", s, sc_last_error());
    }
    printf("  rank 0 after %.2f s: %s\n", s, sc_last_error());
    sc_comm_abort(c);
    sc_comm_destroy(c);
    return 0;
}

static void test_faults(void) {
    int hang = 0;
    CHECK(sc_test_run_ranks(2, fault_rank, &hang, 30) == 0);
    hang = 1;
    CHECK(sc_test_run_ranks(2, fault_rank, &hang, 30) == 0);
}

/* rank 0 never comes: the others fail within the timeout, naming MASTER_ADDR */
static void test_no_master(void) {
    sc_dist_env env = {.rank = 1, .world_size = 2, .master_port = sc_test_free_port(), .master_addr = "127.0.0.1"};
    sc_comm *c;
    CHECK(sc_comm_tcp_create(&env, 0.5, &c) == SC_ERR_IO);
    CHECKF(strstr(sc_last_error(), "rank 1 of 2") && strstr(sc_last_error(), "MASTER_ADDR"), "%s", sc_last_error());
}

static void test_env(void) {
    static const char *const vars[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                       "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
                                       "MASTER_ADDR", "MASTER_PORT"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
    sc_dist_env e;
    CHECK(sc_dist_env_read(&e) == SC_OK && e.world_size == 1 && e.rank == 0 && strcmp(e.source, "none") == 0 &&
          e.master_port == 29500 && strcmp(e.master_addr, "127.0.0.1") == 0);
    setenv("SLURM_PROCID", "5", 1);
    setenv("SLURM_NTASKS", "8", 1);
    setenv("SLURM_LOCALID", "1", 1);
    CHECK(sc_dist_env_read(&e) == SC_OK && e.rank == 5 && e.world_size == 8 && e.local_rank == 1 &&
          strcmp(e.source, "SLURM_PROCID") == 0);
    setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    CHECK(sc_dist_env_read(&e) == SC_OK && e.rank == 2 && e.world_size == 4 && e.local_rank == 0);
    setenv("RANK", "3", 1);
    setenv("WORLD_SIZE", "4", 1);
    setenv("LOCAL_RANK", "3", 1);
    setenv("MASTER_ADDR", "node7", 1);
    setenv("MASTER_PORT", "1234", 1);
    CHECK(sc_dist_env_read(&e) == SC_OK && e.rank == 3 && e.local_rank == 3 && strcmp(e.source, "RANK") == 0 &&
          strcmp(e.master_addr, "node7") == 0 && e.master_port == 1234);
    setenv("RANK", "4", 1);
    CHECK(sc_dist_env_read(&e) == SC_ERR_CONFIG && strstr(sc_last_error(), "RANK=4") && strstr(sc_last_error(), "WORLD_SIZE=4"));
    setenv("RANK", "x", 1);
    CHECK(sc_dist_env_read(&e) == SC_ERR_CONFIG && strstr(sc_last_error(), "RANK='x'"));
    unsetenv("WORLD_SIZE");
    setenv("RANK", "0", 1);
    CHECK(sc_dist_env_read(&e) == SC_ERR_CONFIG && strstr(sc_last_error(), "WORLD_SIZE"));
    setenv("WORLD_SIZE", "1", 1);
    setenv("MASTER_PORT", "70000", 1);
    CHECK(sc_dist_env_read(&e) == SC_ERR_CONFIG && strstr(sc_last_error(), "MASTER_PORT"));
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    SC_RUN(test_env);
    SC_RUN(test_single_rank);
    SC_RUN(test_collectives);
    SC_RUN(test_faults);
    SC_RUN(test_no_master);
    return sc_test_summary();
}
