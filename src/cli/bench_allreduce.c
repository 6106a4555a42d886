/*
 * bench_allreduce.c - `simclr bench allreduce`: the gradient all-reduce of data-parallel
 * training, measured, and a model of its cost at 8 GPUs per node and on several nodes.
 *
 * Measurement: the mean all-reduce of --count fp32 values (default 25,557,032: the ResNet-50
 * gradient buffer), in --bucket-mb buckets as the trainer issues it. With a GPU (--device
 * cuda or auto) it runs on a 1-rank NCCL communicator (one GPU: it measures the call and
 * launch overhead, not a link); otherwise on the TCP communicator with --ranks local
 * processes. The result is validated first: every element must equal the mean of the ranks'
 * values.
 *
 * Overlap: the trainer all-reduces each bucket as soon as the backward pass has finished it
 * (include/simclr/grad_sync.h), so part of the all-reduce hides behind the pass. Each rank
 * builds a model (--arch, --stem, --width, --size, --channels; --batch views per rank; its
 * gradient buffer, "params", holds the head and the BN statistics too: 28.0 M values for the
 * default ResNet-50) and times, per iteration after an untimed forward pass (a fixed random
 * dz): the backward pass alone (t_b), the bucketed all-reduce of its gradient buffer alone
 * (t_a, as the trainer's sync issues it with nothing to overlap), and the backward pass with
 * the overlapped sync, up to the optimizer's wait (t_o); medians over --overlap-iters.
 *   hidden = (t_b + t_a - t_o) / t_a, clamped to [0, 1]
 * goes into the main line (null with one rank: nothing to hide) and, with the times, into an
 * "allreduce_overlap" line. On the CPU every rank computes with --threads threads besides its
 * all-reduce thread, so on a machine with fewer cores than ranks x (threads + 1) the two
 * compete for cores and little can hide. With a GPU it runs on the 1-rank NCCL communicator
 * (the fork/join path, not a link). --overlap 0 skips it.
 *
 * Model (one JSON line per configuration): a ring all-reduce moves 2 (k - 1) / k of the buffer
 * through each rank's link, so  t(k) = 2 (k - 1) / k * bytes / busbw,  with busbw the NCCL
 * bus bandwidth (REFERENCE.md: 8 x H100 480 GB/s with NVLS, 370 with NCCL_ALGO=Ring; across
 * nodes --inter-busbw, an assumption to set from nccl-tests on the target cluster). With a
 * per-GPU step time T (--step-ms, measured by `simclr bench step`) and a fixed per-GPU batch,
 * scaling efficiency = T / (T + (1 - hidden) t(k)), given for hidden = 0 (no overlap) and
 * for full overlap (the bound of bucketed overlap with the backward pass).
 *
 *   simclr bench allreduce --ranks 2
 *   simclr bench allreduce --device cuda --step-ms 180
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "simclr/backend.h"
#include "simclr/dist.h"
#include "simclr/grad_sync.h"
#include "simclr/model.h"
#include "simclr/rng.h"
#include "simclr/version.h"

typedef struct args {
    const char *device, *arch, *stem;
    long long count;
    int ranks, iters, warmup;
    double bucket_mb, step_ms, busbw, busbw_ring, inter_busbw;
    /* the overlap measurement */
    int overlap, overlap_iters, size, channels, batch, threads;
    double width;
} args;

/* The overlap measurement of one rank: medians in ms and the hidden fraction. */
typedef struct overlap_result {
    double backward_ms, allreduce_ms, overlapped_ms, hidden;
    int64_t params;
    int buckets;
} overlap_result;

static const char usage[] =
    "usage: simclr bench allreduce [--device auto|cpu|cuda] [--count N] [--ranks K] [--bucket-mb M]\n"
    "                              [--iters N] [--warmup N] [--step-ms T] [--busbw GB/s] [--busbw-ring GB/s]\n"
    "                              [--inter-busbw GB/s] [--overlap 0|1] [--overlap-iters N] [--arch A]\n"
    "                              [--stem cifar|imagenet] [--width W] [--size S] [--channels C] [--batch B]\n"
    "                              [--threads T]\n"
    "  --count        fp32 values reduced (default 25557032, the ResNet-50 gradients)\n"
    "  --ranks        local CPU ranks of the TCP measurement (default 2)\n"
    "  --bucket-mb    bucket size in MiB, fractions allowed (default 25, as dist.bucket_mb)\n"
    "  --overlap      measure the fraction of the all-reduce hidden behind the backward pass (default 1)\n"
    "  --arch ... --batch  the model of that measurement (default resnet50, cifar stem, width 1, 32x32x3,\n"
    "                 4 views per rank); --threads: CPU threads per rank (default 1)\n"
    "  --step-ms      per-GPU step time for the scaling model (default 0: no model)\n"
    "  --busbw        intra-node NCCL bus bandwidth (default 480, 8 x H100 NVLS)\n"
    "  --busbw-ring   the same with NCCL_ALGO=Ring, the deterministic algorithm (default 370)\n"
    "  --inter-busbw  bus bandwidth across nodes (default 45: an assumption, ~400 Gb/s per GPU)\n";

static int parse(int argc, char **argv, args *a) {
    *a = (args){.device = "auto", .arch = "resnet50", .stem = "cifar", .count = 25557032, .ranks = 2, .iters = 10,
                .warmup = 2, .bucket_mb = 25, .busbw = 480, .busbw_ring = 370, .inter_busbw = 45, .overlap = 1,
                .overlap_iters = 5, .size = 32, .channels = 3, .batch = 4, .threads = 1, .width = 1.0};
    if (argc % 2 == 0) return 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--device")) a->device = v;
        else if (!strcmp(k, "--count")) a->count = atoll(v);
        else if (!strcmp(k, "--ranks")) a->ranks = atoi(v);
        else if (!strcmp(k, "--iters")) a->iters = atoi(v);
        else if (!strcmp(k, "--warmup")) a->warmup = atoi(v);
        else if (!strcmp(k, "--bucket-mb")) a->bucket_mb = atof(v);
        else if (!strcmp(k, "--step-ms")) a->step_ms = atof(v);
        else if (!strcmp(k, "--busbw")) a->busbw = atof(v);
        else if (!strcmp(k, "--busbw-ring")) a->busbw_ring = atof(v);
        else if (!strcmp(k, "--inter-busbw")) a->inter_busbw = atof(v);
        else if (!strcmp(k, "--overlap")) a->overlap = atoi(v);
        else if (!strcmp(k, "--overlap-iters")) a->overlap_iters = atoi(v);
        else if (!strcmp(k, "--arch")) a->arch = v;
        else if (!strcmp(k, "--stem")) a->stem = v;
        else if (!strcmp(k, "--width")) a->width = atof(v);
        else if (!strcmp(k, "--size")) a->size = atoi(v);
        else if (!strcmp(k, "--channels")) a->channels = atoi(v);
        else if (!strcmp(k, "--batch")) a->batch = atoi(v);
        else if (!strcmp(k, "--threads")) a->threads = atoi(v);
        else return 0;
    }
    const int arch_ok = !strcmp(a->arch, "resnet18") || !strcmp(a->arch, "resnet34") || !strcmp(a->arch, "resnet50");
    const int stem_ok = !strcmp(a->stem, "cifar") || !strcmp(a->stem, "imagenet");
    return a->count > 0 && a->ranks >= 1 && a->ranks <= 64 && a->iters >= 1 && a->warmup >= 0 && a->bucket_mb >= 0.001 &&
           a->busbw > 0 && a->busbw_ring > 0 && a->inter_busbw > 0 && (a->overlap == 0 || a->overlap == 1) &&
           a->overlap_iters >= 1 && arch_ok && stem_ok && a->width > 0 && a->size >= 8 && a->channels >= 1 &&
           a->batch >= 2 && a->batch % 2 == 0 && a->threads >= 1;
}

/* Elements of a bucket of bucket_mb MiB (at least one), as the trainer counts them. */
static long long bucket_elems(double bucket_mb) {
    const long long n = (long long)(bucket_mb * (double)(1 << 20)) / (long long)sizeof(float);
    return n > 0 ? n : 1;
}

/* One bucketed mean all-reduce of buf [count]. */
static sc_status reduce_all(sc_comm *c, float *buf, long long count, double bucket_mb) {
    const long long bucket = bucket_elems(bucket_mb);
    for (long long at = 0; at < count; at += bucket)
        SC_TRY(sc_comm_allreduce_mean(c, buf + at, count - at < bucket ? count - at : bucket, SC_F32));
    return SC_OK;
}

/* Validate once, then time; times[iters] in ms. Returns 0 on success. */
static int measure(sc_comm *c, sc_backend *be, float *dev, float *host, const args *a, double *times) {
    const int k = c->world_size;
    for (long long i = 0; i < a->count; i++) host[i] = (float)((c->rank + 1) * (i % 1000));
    if (be) be->ops->upload(be, dev, host, (size_t)a->count * sizeof(float));
    sc_status st = reduce_all(c, dev, a->count, a->bucket_mb);
    if (st == SC_OK && be) be->ops->download(be, host, dev, (size_t)a->count * sizeof(float));
    long long bad = 0;
    for (long long i = 0; st == SC_OK && i < a->count; i++) {
        float want = (float)((double)(k + 1) / 2.0 * (double)(i % 1000));
        bad += host[i] != want;
    }
    if (st != SC_OK || bad) {
        fprintf(stderr, "simclr bench allreduce: %s\n", st != SC_OK ? sc_last_error() : "wrong sums");
        return 1;
    }
    for (int it = -a->warmup; it < a->iters; it++) {
        if (sc_comm_barrier(c) != SC_OK) return 1;
        if (be) be->ops->synchronize(be);
        double t0 = sc_bench_now();
        if (reduce_all(c, dev, a->count, a->bucket_mb) != SC_OK) return 1;
        if (be) be->ops->synchronize(be);
        if (it >= 0) times[it] = 1e3 * (sc_bench_now() - t0);
    }
    return 0;
}

/* Each rank's part of the overlap measurement (see the header) on backend be, whose memory
 * the communicator c reduces. Returns 0 on success. */
static int measure_overlap(sc_comm *c, sc_backend *be, const args *a, overlap_result *out) {
    sc_model_config mc = {.arch = !strcmp(a->arch, "resnet50") ? SC_ARCH_RESNET50
                                  : !strcmp(a->arch, "resnet34") ? SC_ARCH_RESNET34 : SC_ARCH_RESNET18,
                          .stem = !strcmp(a->stem, "imagenet") ? SC_STEM_IMAGENET : SC_STEM_CIFAR,
                          .width = a->width, .in_channels = a->channels, .head_layers = 2, .head_out = 128,
                          .head_bn_hidden = 1, .head_bias = 1};
    sc_model *m = NULL;
    sc_comm *g = NULL;
    sc_grad_sync *sync = NULL;
    void *dev = NULL;
    const int64_t nx = (int64_t)a->batch * a->size * a->size * a->channels;
    sc_status st = sc_model_create(&mc, be, SC_F32, &m);
    if (st == SC_OK) st = sc_model_plan(m, a->batch, a->size, a->size);
    const int64_t nz = m ? (int64_t)a->batch * sc_model_out_dim(m) : 0;
    if (st == SC_OK) st = sc_backend_alloc(be, (size_t)(nx + nz) * sizeof(float), "the benchmark's input and dz", &dev);
    if (st == SC_OK) st = sc_comm_dup(c, &g);
    sc_tensor grads = st == SC_OK ? sc_model_grad_buffer(m) : (sc_tensor){0};
    if (st == SC_OK) st = sc_grad_sync_create(g, grads.data, grads.shape[0], SC_F32, bucket_elems(a->bucket_mb), &sync);
    double *ms = malloc(3 * (size_t)a->overlap_iters * sizeof *ms);
    float *host = malloc((size_t)(nx + nz) * sizeof *host);
    if (st == SC_OK && (!ms || !host)) st = sc_errorf(SC_ERR_NOMEM, "out of memory for the overlap measurement");
    if (st == SC_OK) {
        sc_model_init_params(m, 1);
        sc_rng r = sc_rng_make(7, (uint64_t)c->rank, 0, 0, SC_RNG_TEST);
        for (int64_t i = 0; i < nx + nz; i++) host[i] = (float)(sc_rng_uniform_f64(&r) - 0.5);
        be->ops->upload(be, dev, host, (size_t)(nx + nz) * sizeof(float));
    }
    sc_tensor x = sc_tensor_4d(dev, SC_F32, a->batch, a->size, a->size, a->channels); /* [B, S, S, C] */
    sc_tensor dz = sc_tensor_2d((float *)dev + nx, SC_F32, a->batch, m ? sc_model_out_dim(m) : 1); /* [B, D] */
    sc_tensor z; /* [B, D], unused: dz stands for the loss gradient */
    /* per iteration, interleaved: 0 backward alone, 1 all-reduce alone, 2 backward with the sync */
    for (int it = -1; st == SC_OK && it < a->overlap_iters; it++) {
        for (int mode = 0; mode < 3 && st == SC_OK; mode++) {
            sc_model_forward(m, &x, 1, NULL, &z);
            be->ops->synchronize(be);
            st = sc_comm_barrier(c);
            if (st != SC_OK) break;
            be->ops->synchronize(be);
            const double t0 = sc_bench_now();
            if (mode == 2) sc_model_set_grad_ready(m, sc_grad_sync_ready, sync);
            if (mode != 1) sc_model_backward(m, &dz);
            if (mode != 0) st = sc_grad_sync_finish(sync);
            sc_model_set_grad_ready(m, NULL, NULL);
            be->ops->synchronize(be);
            if (it >= 0) ms[mode * a->overlap_iters + it] = 1e3 * (sc_bench_now() - t0);
        }
    }
    if (st == SC_OK) {
        *out = (overlap_result){.params = grads.shape[0], .buckets = sc_grad_sync_buckets(sync)};
        double *med[3] = {&out->backward_ms, &out->allreduce_ms, &out->overlapped_ms};
        for (int mode = 0; mode < 3; mode++) *med[mode] = sc_bench_summarise(ms + mode * a->overlap_iters, a->overlap_iters).median;
        const double h = out->allreduce_ms > 0 ? (out->backward_ms + out->allreduce_ms - out->overlapped_ms) / out->allreduce_ms : 0;
        out->hidden = h < 0 ? 0 : h > 1 ? 1 : h;
    } else {
        fprintf(stderr, "simclr bench allreduce: overlap: %s\n", sc_last_error());
    }
    free(ms);
    free(host);
    sc_grad_sync_destroy(sync);
    sc_comm_destroy(g);
    sc_backend_free(be, dev);
    sc_model_destroy(m);
    return st != SC_OK;
}

static void print_line(const args *a, const char *impl, const char *device, int ranks, double *times,
                       const overlap_result *ov) {
    const sc_bench_stats t = sc_bench_summarise(times, a->iters);
    const double ms = t.median, bytes = (double)a->count * sizeof(float);
    const double algbw = bytes / (ms * 1e-3) / 1e9, busbw = ranks > 1 ? algbw * 2.0 * (ranks - 1) / ranks : 0.0;
    char date[32], host[64];
    sc_bench_stamp(date, host);
    char hidden[32] = "null"; /* not measured, or one rank: nothing to hide */
    if (ov && ranks > 1) snprintf(hidden, sizeof hidden, "%.3f", ov->hidden);
    printf("{\"bench\": \"allreduce\", \"impl\": \"%s\", \"date\": \"%s\", \"git\": \"%s\", \"device\": \"%s\", \"ranks\": %d, "
           "\"count\": %lld, \"bytes\": %.0f, \"bucket_mb\": %g, \"ms_median\": %.3f, \"ms_p10\": %.3f, \"ms_p90\": %.3f, "
           "\"algbw_gbs\": %.3f, \"busbw_gbs\": %.3f, \"hidden_fraction\": %s, \"validated\": \"mean of the ranks\"}\n",
           impl, date, sc_git_sha, device, ranks, a->count, bytes, a->bucket_mb, ms, t.p10, t.p90, algbw, busbw, hidden);
    if (!ov) return;
    printf("{\"bench\": \"allreduce_overlap\", \"impl\": \"%s\", \"date\": \"%s\", \"git\": \"%s\", \"device\": \"%s\", "
           "\"ranks\": %d, \"threads\": %d, \"arch\": \"%s\", \"stem\": \"%s\", \"width\": %g, \"size\": %d, \"channels\": %d, "
           "\"batch\": %d, \"params\": %lld, \"bucket_mb\": %g, \"buckets\": %d, \"iters\": %d, \"backward_ms\": %.3f, "
           "\"allreduce_ms\": %.3f, \"overlapped_ms\": %.3f, \"hidden_fraction\": %.3f}\n",
           impl, date, sc_git_sha, device, ranks, a->threads, a->arch, a->stem, a->width, a->size, a->channels, a->batch,
           (long long)ov->params, a->bucket_mb, ov->buckets, a->overlap_iters, ov->backward_ms, ov->allreduce_ms,
           ov->overlapped_ms, ov->hidden);
}

/* The scaling model of the header, for 8 GPUs per node and 1..64 nodes. */
static void print_model(const args *a) {
    const double bytes = (double)a->count * sizeof(float);
    static const int gpus[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    for (size_t i = 0; i < sizeof gpus / sizeof gpus[0]; i++) {
        const int k = gpus[i], nodes = k > 8 ? k / 8 : 1;
        const double bw = nodes > 1 ? a->inter_busbw : a->busbw, bw_ring = nodes > 1 ? a->inter_busbw : a->busbw_ring;
        const double t = k > 1 ? 2.0 * (k - 1) / k * bytes / (bw * 1e9) * 1e3 : 0.0;
        const double t_ring = k > 1 ? 2.0 * (k - 1) / k * bytes / (bw_ring * 1e9) * 1e3 : 0.0;
        printf("{\"bench\": \"allreduce_model\", \"gpus\": %d, \"nodes\": %d, \"busbw_gbs\": %g, \"allreduce_ms\": %.3f, "
               "\"allreduce_ring_ms\": %.3f, \"step_ms\": %g, \"efficiency_no_overlap\": %.4f, "
               "\"efficiency_ring_no_overlap\": %.4f, \"efficiency_full_overlap\": %.4f}\n",
               k, nodes, bw, t, t_ring, a->step_ms, a->step_ms / (a->step_ms + t), a->step_ms / (a->step_ms + t_ring),
               t <= a->step_ms ? 1.0 : a->step_ms / t);
    }
}

static int run_cpu(const args *a) {
    sc_dist_env env = {.world_size = a->ranks, .master_addr = "127.0.0.1", .source = "bench"};
    env.master_port = sc_dist_free_port();
    fflush(stdout);
    pid_t pid[64];
    for (int r = 0; r < a->ranks; r++) {
        pid[r] = fork();
        if (pid[r] != 0) continue;
        env.rank = env.local_rank = r;
        sc_comm *c;
        if (sc_comm_tcp_create(&env, 60.0, &c) != SC_OK) {
            fprintf(stderr, "simclr bench allreduce: %s\n", sc_last_error());
            _exit(1);
        }
        float *buf = malloc((size_t)a->count * sizeof(float));
        double *times = malloc((size_t)a->iters * sizeof(double));
        int rc = !buf || !times || measure(c, NULL, buf, buf, a, times);
        free(buf);
        overlap_result ov;
        const int with_overlap = a->overlap && a->ranks > 1;
        if (rc == 0 && with_overlap) {
            sc_backend_options bo = {.threads = a->threads};
            sc_backend *be = NULL;
            rc = sc_backend_create("cpu", &bo, &be) != SC_OK || measure_overlap(c, be, a, &ov);
            if (!be) fprintf(stderr, "simclr bench allreduce: %s\n", sc_last_error());
            sc_backend_destroy(be);
        }
        if (rc == 0 && r == 0) {
            char dev[64];
            snprintf(dev, sizeof dev, "cpu (%d local processes)", a->ranks);
            print_line(a, "tcp", dev, a->ranks, times, with_overlap ? &ov : NULL);
        }
        free(times);
        fflush(stdout);
        sc_comm_destroy(c);
        _exit(rc);
    }
    int bad = 0;
    for (int r = 0; r < a->ranks; r++) {
        int status;
        waitpid(pid[r], &status, 0);
        bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    return bad ? SC_EXIT_FAIL : SC_EXIT_OK;
}

static int run_cuda(const args *a) {
    sc_backend *be;
    sc_status st = sc_backend_create("cuda", NULL, &be);
    if (st != SC_OK) return sc_cli_fail(st);
    sc_dist_env env = {.world_size = 1, .master_addr = "127.0.0.1", .master_port = 1, .source = "bench"};
    sc_comm *oob = NULL, *c = NULL;
    void *dev = NULL;
    float *host = malloc((size_t)a->count * sizeof(float));
    double *times = malloc((size_t)a->iters * sizeof(double));
    int rc = SC_EXIT_FAIL;
    st = sc_comm_tcp_create(&env, 60.0, &oob);
    if (st == SC_OK) st = sc_comm_nccl_create(oob, be, 60.0, &c);
    if (st == SC_OK) st = sc_backend_alloc(be, (size_t)a->count * sizeof(float), "the all-reduce buffer", &dev);
    overlap_result ov;
    if (st == SC_OK && host && times && measure(c, be, dev, host, a, times) == 0 &&
        (!a->overlap || measure_overlap(c, be, a, &ov) == 0)) {
        char name[64];
        snprintf(name, sizeof name, "cuda:%d (1 rank)", be->device);
        print_line(a, "nccl", name, 1, times, a->overlap ? &ov : NULL);
        rc = SC_EXIT_OK;
    } else if (st != SC_OK) {
        rc = sc_cli_fail(st);
    }
    sc_backend_free(be, dev);
    sc_comm_destroy(c);
    sc_comm_destroy(oob);
    sc_backend_destroy(be);
    free(host);
    free(times);
    return rc;
}

int sc_bench_allreduce(int argc, char **argv) {
    args a;
    if (!parse(argc, argv, &a)) {
        fputs(usage, argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? stdout : stderr);
        return argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? SC_EXIT_OK : SC_EXIT_USAGE;
    }
    int gpu = strcmp(a.device, "cuda") == 0 || (strcmp(a.device, "auto") == 0 && sc_cuda_device_count() > 0);
    int rc = gpu ? run_cuda(&a) : run_cpu(&a);
    if (rc == SC_EXIT_OK && a.step_ms > 0) print_model(&a);
    return rc;
}
