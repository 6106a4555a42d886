/*
 * test_dist.c - the TCP communicator on 2 to 4 forked local processes: every collective gives
 * the rank-order sum with identical bits on every rank, groups, large buffers, the launch
 * environment, and the fault paths (a peer that exits fails the others at once, a hung one
 * after dist.timeout_s, each naming the rank). Asynchronous all-reduces on a duplicate
 * communicator: the bits of the blocking call while the parent runs blocking collectives from
 * the main thread, and the same fault paths through wait_all. The gradient sync's buckets:
 * which ones a sequence of ready offsets starts, over a recording communicator.
 */
#include <stdlib.h>
#include <string.h>

#include "dist_test_util.h"
#include "simclr/grad_sync.h"

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

/* Several asynchronous mean all-reduces of one buffer, in uneven pieces, on a duplicate,
 * while the main thread runs blocking collectives on the parent: the parent's results are
 * right and the pieces hold exactly the bits of one blocking mean all-reduce. */
static int async_rank(const sc_dist_env *env, void *arg) {
    sc_comm *c, *d;
    sc_status st = sc_comm_tcp_create(env, 10.0, &c);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    if (st != SC_OK) return 1;
    st = sc_comm_dup(c, &d);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    if (st != SC_OK) return 1;
    CHECK(d->rank == c->rank && d->world_size == c->world_size && d->global_rank == c->global_rank);
    const int n = env->world_size, me = env->rank;
    const int64_t count = *(int64_t *)arg;
    float *buf = malloc((size_t)count * sizeof(float)), *want = malloc((size_t)count * sizeof(float));
    for (int64_t i = 0; i < count; i++) buf[i] = want[i] = val(me, i);
    CHECKF(sc_comm_allreduce_mean(c, want, count, SC_F32) == SC_OK, "%s", sc_last_error());
    const int64_t cut[] = {0, count / 7, count / 3, count / 3 + 1, count * 5 / 6, count};
    for (int k = 4; k >= 0; k--) /* from the top, as the gradient sync starts them */
        CHECKF(sc_comm_iallreduce_mean(d, buf + cut[k], cut[k + 1] - cut[k], SC_F32) == SC_OK, "%s", sc_last_error());
    for (int it = 0; it < 20; it++) { /* the parent meanwhile, from this thread */
        int32_t v[3] = {me, 1, it};
        CHECK(sc_comm_allreduce_sum(c, v, 3, SC_I32) == SC_OK && v[0] == n * (n - 1) / 2 && v[1] == n && v[2] == n * it);
        double mine = me + it, all[8];
        CHECK(sc_comm_allgather(c, &mine, all, 1, SC_F64) == SC_OK && all[n - 1] == n - 1 + it);
    }
    st = sc_comm_wait_all(d);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    CHECKF(memcmp(buf, want, (size_t)count * sizeof(float)) == 0, "the asynchronous pieces differ from the blocking all-reduce");
    CHECK(sc_comm_wait_all(d) == SC_OK); /* nothing started: returns at once */
    CHECKF(sc_comm_iallreduce_mean(d, buf, count, SC_F32) == SC_OK && sc_comm_wait_all(d) == SC_OK, "%s", sc_last_error());
    CHECK(buf[count - 1] == want[count - 1]); /* the mean of equal values is that value */
    CHECK(sc_comm_barrier(d) == SC_OK && sc_comm_barrier(c) == SC_OK); /* blocking use after wait_all */
    free(buf);
    free(want);
    sc_comm_destroy(d);
    sc_comm_destroy(c);
    return 0;
}

static void test_async(void) {
    int64_t small = 1001, large = 3 << 20;
    CHECK(sc_test_run_ranks(2, async_rank, &large, 120) == 0);
    CHECK(sc_test_run_ranks(3, async_rank, &small, 60) == 0);
    CHECK(sc_test_run_ranks(4, async_rank, &large, 120) == 0);
}

/* rank 1 leaves (exit, or hangs when *arg) while rank 0 has all-reduces queued: wait_all
 * fails naming it, within the timeout */
static int async_fault_rank(const sc_dist_env *env, void *arg) {
    const int hang = *(int *)arg;
    sc_comm *c, *d;
    sc_status st = sc_comm_tcp_create(env, hang ? 1.0 : 20.0, &c);
    if (st == SC_OK) st = sc_comm_dup(c, &d);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    if (st != SC_OK) return 1;
    if (env->rank == 1) {
        if (hang) sleep(5);
        _exit(0); /* no goodbye: like a crash */
    }
    enum { PIECES = 6, PIECE = 1 << 20 };
    float *x = calloc((size_t)PIECES * PIECE, sizeof(float));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < PIECES; k++) CHECK(sc_comm_iallreduce_mean(d, x + (size_t)k * PIECE, PIECE, SC_F32) == SC_OK);
    st = sc_comm_wait_all(d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    CHECK(st == SC_ERR_IO);
    CHECKF(strstr(sc_last_error(), "rank 1") && strstr(sc_last_error(), "rank 0: asynchronous all-reduce"), "%s",
           sc_last_error());
    if (hang) {
        CHECKF(strstr(sc_last_error(), "dist.timeout_s") && s >= 0.9 && s < 4.0, "%.2f s: %s", s, sc_last_error());
    } else {
        CHECKF(strstr(sc_last_error(), "closed its connection") && s < 4.0, "%.2f s: %s", s, sc_last_error());
    }
    printf("  rank 0 after %.2f s: %s\n", s, sc_last_error());
    /* the failure is kept: a later start fails at once, saying why */
    CHECK(sc_comm_iallreduce_mean(d, x, 4, SC_F32) == SC_ERR_IO && strstr(sc_last_error(), "an earlier all-reduce failed"));
    sc_comm_abort(d);
    sc_comm_destroy(d);
    sc_comm_abort(c);
    sc_comm_destroy(c);
    free(x);
    return 0;
}

static void test_async_faults(void) {
    int hang = 0;
    CHECK(sc_test_run_ranks(2, async_fault_rank, &hang, 30) == 0);
    hang = 1;
    CHECK(sc_test_run_ranks(2, async_fault_rank, &hang, 30) == 0);
}

/* ---- the gradient sync's buckets, over a communicator that records what it is asked ---- */

static float grads[1000];
static struct {
    int64_t begin[64], count[64];
    int started, waits, fail_at; /* fail_at: the start that fails (-1: none) */
} rec;

static sc_status rec_iallreduce(sc_comm *c, void *buf, int64_t count, sc_dtype dt, sc_reduce_op op) {
    (void)c;
    CHECK(dt == SC_F32 && op == SC_REDUCE_MEAN);
    if (rec.started == rec.fail_at) return sc_errorf(SC_ERR_IO, "rank 1 closed its connection (test)");
    rec.begin[rec.started] = (float *)buf - grads;
    rec.count[rec.started++] = count;
    return SC_OK;
}

static sc_status rec_wait_all(sc_comm *c) {
    (void)c;
    rec.waits++;
    return SC_OK;
}

static const sc_comm_ops rec_ops = {.name = "recorder", .iallreduce = rec_iallreduce, .wait_all = rec_wait_all};

/* the buckets started so far are exactly [b0, e0), [b1, e1), ... (pairs, from the top) */
static int started_are(const int64_t *pairs, int n) {
    if (rec.started != n) return 0;
    for (int k = 0; k < n; k++)
        if (rec.begin[k] != pairs[2 * k] || rec.begin[k] + rec.count[k] != pairs[2 * k + 1]) return 0;
    return 1;
}

static void test_grad_sync_buckets(void) {
    sc_comm c = {.ops = &rec_ops, .rank = 0, .world_size = 2, .global_rank = 0, .timeout_s = 1.0};
    sc_grad_sync *s;
    memset(&rec, 0, sizeof rec);
    rec.fail_at = -1;
    /* 1000 elements in buckets of 300 from the top: [700,1000) [400,700) [100,400) [0,100) */
    CHECK(sc_grad_sync_create(&c, grads, 1000, SC_F32, 300, &s) == SC_OK && sc_grad_sync_buckets(s) == 4);
    static const int64_t all[] = {700, 1000, 400, 700, 100, 400, 0, 100};
    sc_grad_sync_ready(s, 950); /* the top bucket is not finished yet */
    CHECK(rec.started == 0);
    sc_grad_sync_ready(s, 700);
    CHECK(started_are(all, 1));
    sc_grad_sync_ready(s, 650);
    CHECK(started_are(all, 1));
    sc_grad_sync_ready(s, 100); /* two at once, in order */
    CHECK(started_are(all, 3));
    CHECK(rec.waits == 0);
    CHECK(sc_grad_sync_finish(s) == SC_OK); /* the last one, then the wait */
    CHECK(started_are(all, 4) && rec.waits == 1);
    /* the next pass starts from the top again; a pass without ready calls starts all in finish */
    rec.started = 0;
    sc_grad_sync_ready(s, 0);
    CHECK(started_are(all, 4) && rec.waits == 1);
    CHECK(sc_grad_sync_finish(s) == SC_OK && started_are(all, 4) && rec.waits == 2);
    rec.started = 0;
    CHECK(sc_grad_sync_finish(s) == SC_OK && started_are(all, 4) && rec.waits == 3);
    /* a failed start: the rest are skipped, finish still waits and returns that failure */
    rec.started = 0;
    rec.fail_at = 1;
    sc_grad_sync_ready(s, 400);
    CHECK(rec.started == 1);
    sc_status st = sc_grad_sync_finish(s);
    CHECKF(st == SC_ERR_IO && strstr(sc_last_error(), "rank 1 closed") && rec.started == 1 && rec.waits == 4, "%s",
           sc_last_error());
    sc_grad_sync_destroy(s);
    /* one bucket larger than the buffer starts only when offset 0 is final */
    rec.started = 0;
    rec.fail_at = -1;
    CHECK(sc_grad_sync_create(&c, grads, 1000, SC_F32, 4096, &s) == SC_OK && sc_grad_sync_buckets(s) == 1);
    sc_grad_sync_ready(s, 1);
    CHECK(rec.started == 0);
    static const int64_t one[] = {0, 1000};
    sc_grad_sync_ready(s, 0);
    CHECK(started_are(one, 1));
    CHECK(sc_grad_sync_finish(s) == SC_OK && started_are(one, 1));
    sc_grad_sync_destroy(s);
    CHECK(sc_grad_sync_create(&c, grads, 1000, SC_F32, 0, &s) == SC_ERR_ARG);
}

static void test_single_rank(void) {
    sc_dist_env env = {.world_size = 1, .master_port = 1, .master_addr = "127.0.0.1"};
    sc_comm *c;
    CHECK(sc_comm_tcp_create(&env, 1.0, &c) == SC_OK);
    float x[2] = {1.5f, 2.5f}, y[2];
    CHECK(sc_comm_allreduce_sum(c, x, 2, SC_F32) == SC_OK && x[0] == 1.5f);
    CHECK(sc_comm_allgather(c, x, y, 2, SC_F32) == SC_OK && y[1] == 2.5f);
    CHECK(sc_comm_reduce_scatter_sum(c, x, y, 2, SC_F32) == SC_OK && y[0] == 1.5f);
    sc_comm *d;
    CHECK(sc_comm_dup(c, &d) == SC_OK && d->world_size == 1);
    CHECK(sc_comm_iallreduce_mean(d, x, 2, SC_F32) == SC_OK && sc_comm_wait_all(d) == SC_OK && x[1] == 2.5f);
    sc_comm_destroy(d);
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
    SC_RUN(test_async);
    SC_RUN(test_async_faults);
    SC_RUN(test_grad_sync_buckets);
    SC_RUN(test_no_master);
    return sc_test_summary();
}
