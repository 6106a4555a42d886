/*
 * test_dist_train.c - data-parallel training on the CPU with the TCP communicator.
 *
 * Equivalence: 3 steps of a tiny ResNet-18 (width 1/16, 16x16 views) with global batch 32 on
 * 1 rank, on 2 ranks of 16 and on 4 ranks of 8 (global BN and cross-replica negatives on):
 * the loss and the gradient norm of every step and the weights after the last step agree
 * within fp32 tolerance (only summation orders differ). A BN group of 2 in 4 ranks trains too
 * and differs from global BN (its statistics are over half the batch). The multi-rank runs use
 * gradient buckets of 0.01 MiB (about 20 for this model), all-reduced while the backward pass
 * goes on; 2 ranks with the same buckets started only after the whole backward pass
 * (dist.overlap: false) must give the same losses and weights bit for bit (the TCP sums are in
 * rank order whenever a bucket starts), so no bucket was reduced before its gradients were final.
 *
 * Fault: `simclr train --gpus 2` through the binary (small gradient buckets, so the kill
 * usually meets some in flight), then rank 1 is SIGKILLed mid-run: rank 0
 * must exit non-zero within dist.timeout_s with a message naming rank 1, the launcher must
 * name the dead rank, and the checkpoint rank 0 wrote before the fault must stay loadable.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dist_test_util.h"
#include "simclr/checkpoint.h"
#include "simclr/log.h"
#include "simclr/train.h"
#include "tiny_data.h"

static char dir[256], data_dir[300];
static const char *simclr_bin;

static void tiny_config(sc_config *cfg, const char *name, int bn_group, double bucket_mb, int overlap) {
    sc_config_defaults(cfg);
    CHECK(sc_config_load_string(cfg, sc_default_config_yaml, "<embedded>") == SC_OK);
    char d[400], p[400], n[128], g[64], b[64], o[64];
    snprintf(d, sizeof d, "run.dir=%s/runs", dir);
    snprintf(p, sizeof p, "data.path=%s", data_dir);
    snprintf(n, sizeof n, "run.name=%s", name);
    snprintf(g, sizeof g, "dist.bn_group=%d", bn_group);
    snprintf(b, sizeof b, "dist.bucket_mb=%g", bucket_mb);
    snprintf(o, sizeof o, "dist.overlap=%s", overlap ? "true" : "false");
    const char *sets[] = {"model.width=0.0625", "data.image_size=16", "train.batch_size=32", "train.max_steps=3",
                          "train.epochs=1", "train.warmup_epochs=0.01", "run.log_every=1", "run.progress=never",
                          "data.workers=1", "run.threads=1", "eval.linear_probe=false", "eval.every=0",
                          "tensorboard.enabled=false", "run.device=cpu", "optim.lr=4", d, p, n, g, b, o};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        CHECKF(sc_config_set(cfg, sets[i]) == SC_OK, "%s: %s", sets[i], sc_last_error());
}

typedef struct job {
    const char *name;
    int bn_group;
    double bucket_mb;
    int overlap;
} job;

static int train_rank(const sc_dist_env *env, void *arg) {
    const job *j = arg;
    sc_config cfg;
    tiny_config(&cfg, j->name, j->bn_group, j->bucket_mb, j->overlap);
    sc_log_set_rank(env->rank);
    sc_comm *c = NULL;
    sc_status st = sc_comm_tcp_create(env, 30.0, &c);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    sc_train_result r;
    st = sc_train_run(&cfg, NULL, c, &r);
    CHECKF(st == SC_OK, "rank %d: %s", env->rank, sc_last_error());
    CHECK(r.steps == 3 && (env->rank == 0) == (r.run_dir[0] != '\0'));
    sc_comm_destroy(c);
    return 0;
}

/* losses and gradient norms of the 3 steps, and the final weights, of run <name> */
typedef struct outcome {
    double loss[3], gnorm[3];
    float *w;
    int64_t n;
} outcome;

static int read_outcome(const char *name, outcome *o) {
    char p[600];
    snprintf(p, sizeof p, "%s/runs/%s/metrics.jsonl", dir, name);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    char line[2048];
    int k = 0;
    while (k < 3 && fgets(line, sizeof line, f)) {
        const char *l = strstr(line, "\"loss\": "), *g = strstr(line, "\"grad_norm\": ");
        if (!l || !g) continue;
        o->loss[k] = atof(l + 8);
        o->gnorm[k] = atof(g + 13);
        k++;
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/runs/%s/checkpoints/final.safetensors", dir, name);
    sc_config cfg;
    tiny_config(&cfg, name, 0, 25, 1);
    sc_backend *be;
    if (sc_backend_create("cpu", NULL, &be) != SC_OK) return 0;
    sc_model_config mc = sc_model_config_from(&cfg, 1);
    sc_model *m;
    int ok = k == 3 && sc_model_create(&mc, be, SC_F32, &m) == SC_OK;
    if (ok) {
        ok = sc_checkpoint_load(p, m, NULL, NULL, NULL) == SC_OK;
        sc_tensor w = sc_model_param_buffer(m);
        o->n = w.shape[0];
        o->w = malloc((size_t)o->n * sizeof(float));
        memcpy(o->w, w.data, (size_t)o->n * sizeof(float));
        sc_model_destroy(m);
    }
    sc_backend_destroy(be);
    return ok;
}

static double max_rel_diff(const outcome *a, const outcome *b) {
    double worst = 0;
    for (int64_t i = 0; i < a->n; i++) {
        double d = fabs((double)a->w[i] - (double)b->w[i]) / (1e-3 + fabs((double)b->w[i]));
        if (d > worst) worst = d;
    }
    return worst;
}

static void test_equivalence(void) {
    static const job one = {"w1", 0, 25, 1}, two = {"w2", 0, 0.01, 1}, four = {"w4", 0, 0.01, 1},
                     grouped = {"w4g2", 2, 0.01, 1}, after = {"w2after", 0, 0.01, 0};
    CHECK(sc_test_run_ranks(1, train_rank, (void *)&one, 120) == 0);
    CHECK(sc_test_run_ranks(2, train_rank, (void *)&two, 120) == 0);
    CHECK(sc_test_run_ranks(4, train_rank, (void *)&four, 120) == 0);
    CHECK(sc_test_run_ranks(4, train_rank, (void *)&grouped, 120) == 0);
    CHECK(sc_test_run_ranks(2, train_rank, (void *)&after, 120) == 0);
    outcome o[5] = {0};
    const char *names[5] = {"w1", "w2", "w4", "w4g2", "w2after"};
    for (int i = 0; i < 5; i++) CHECKF(read_outcome(names[i], &o[i]), "%s: %s", names[i], sc_last_error());
    if (!o[0].w || !o[1].w || !o[2].w || !o[3].w || !o[4].w) return;
    /* buckets during the backward pass vs the same buckets after it: the same bits */
    int64_t differ = 0;
    for (int64_t i = 0; i < o[1].n; i++) differ += memcmp(&o[1].w[i], &o[4].w[i], sizeof(float)) != 0;
    printf("  w2 (0.01 MiB buckets during backward) vs w2after (the same after it): %lld of %lld weights differ, "
           "step-3 loss %.9g vs %.9g\n", (long long)differ, (long long)o[1].n, o[1].loss[2], o[4].loss[2]);
    CHECKF(o[1].n == o[4].n && differ == 0, "%lld weights differ", (long long)differ);
    for (int s = 0; s < 3; s++) CHECK(o[1].loss[s] == o[4].loss[s] && o[1].gnorm[s] == o[4].gnorm[s]);
    for (int i = 1; i <= 2; i++) {
        for (int s = 0; s < 3; s++) {
            CHECK_CLOSE(o[i].loss[s], o[0].loss[s], 1e-6, 1e-5);
            CHECK_CLOSE(o[i].gnorm[s], o[0].gnorm[s], 1e-6, 1e-4);
        }
        double d = max_rel_diff(&o[i], &o[0]);
        printf("  %s vs 1 rank: step-3 loss %.9g vs %.9g, grad norm %.9g vs %.9g, weights max rel diff %.3g\n",
               names[i], o[i].loss[2], o[0].loss[2], o[i].gnorm[2], o[0].gnorm[2], d);
        CHECKF(d < 3e-4, "%s: weights differ by %g", names[i], d);
    }
    /* BN over groups of 2 ranks normalises over half the batch: a different model */
    printf("  bn_group 2: step-1 loss %.9g (global BN %.9g)\n", o[3].loss[0], o[0].loss[0]);
    CHECK(fabs(o[3].loss[0] - o[0].loss[0]) > 1e-5);
    for (int i = 0; i < 5; i++) free(o[i].w);
}

/* ---- fault: SIGKILL rank 1 of `simclr train --gpus 2` ---- */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The pid of the rank-1 child of launcher `parent` (from /proc), or 0. */
static pid_t find_rank1(pid_t parent) {
    char path[64], buf[1 << 14];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", parent, parent);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    long a = 0, b = 0;
    return sscanf(buf, "%ld %ld", &a, &b) == 2 ? (pid_t)b : 0;
}

static void test_fault(void) {
    char log[600], runs[400], datap[400];
    snprintf(log, sizeof log, "%s/fault.log", dir);
    snprintf(runs, sizeof runs, "run.dir=%s/runs", dir);
    snprintf(datap, sizeof datap, "data.path=%s", data_dir);
    pid_t launcher = fork();
    if (launcher == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        unsetenv("MASTER_PORT");
        execl(simclr_bin, simclr_bin, "train", "--gpus", "2", "--device", "cpu", "--name", "fault", "--set", runs, "--set",
              datap, "--set", "model.width=0.0625", "--set", "data.image_size=16", "--set", "train.batch_size=16",
              "--set", "train.max_steps=100000", "--set", "train.checkpoint_every=2", "--set", "eval.linear_probe=false",
              "--set", "eval.every=0", "--set", "tensorboard.enabled=false", "--set", "run.progress=never", "--set",
              "data.workers=1", "--set", "run.threads=1", "--set", "dist.timeout_s=20", "--set", "dist.bucket_mb=0.01",
              (char *)NULL);
        _exit(127);
    }
    /* let it train past its first checkpoints, then kill rank 1 */
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/runs/fault/checkpoints/step_00000004.safetensors", dir);
    double t0 = now_s();
    while (access(ckpt, F_OK) != 0 && now_s() - t0 < 60) usleep(20000);
    CHECKF(access(ckpt, F_OK) == 0, "no checkpoint after %.0f s (see %s)", now_s() - t0, log);
    pid_t r1 = find_rank1(launcher);
    CHECK(r1 > 0);
    if (r1 > 0) kill(r1, SIGKILL);
    double killed = now_s();
    int status = 0;
    pid_t w = 0;
    while ((w = waitpid(launcher, &status, WNOHANG)) == 0 && now_s() - killed < 40) usleep(20000);
    if (w == 0) {
        kill(launcher, SIGKILL);
        waitpid(launcher, &status, 0);
    }
    double took = now_s() - killed;
    printf("  the job ended %.2f s after rank 1 was killed (exit status %d)\n", took,
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    CHECKF(w == launcher && took < 30.0, "took %.1f s", took);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    FILE *f = fopen(log, "r");
    char text[1 << 16] = "";
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = '\0';
    const char *err = strstr(text, "simclr: error: ");
    if (err) printf("  %.*s\n", (int)strcspn(err, "\n"), err);
    CHECKF(strstr(text, "rank 1 closed its connection") != NULL, "rank 0 did not name rank 1:\n%s", text + (n > 3000 ? n - 3000 : 0));
    CHECKF(strstr(text, "rank 1 was killed by signal 9") != NULL, "the launcher did not name rank 1");
    /* the checkpoint from before the fault loads */
    sc_config cfg;
    tiny_config(&cfg, "fault", 0, 25, 1);
    sc_backend *be;
    CHECK(sc_backend_create("cpu", NULL, &be) == SC_OK);
    sc_model_config mc = sc_model_config_from(&cfg, 1);
    sc_model *m;
    CHECK(sc_model_create(&mc, be, SC_F32, &m) == SC_OK);
    sc_train_state ts;
    CHECKF(sc_checkpoint_load(ckpt, m, NULL, &ts, NULL) == SC_OK && ts.step == 4, "%s", sc_last_error());
    sc_model_destroy(m);
    sc_backend_destroy(be);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    simclr_bin = argc > 1 ? argv[1] : NULL;
    snprintf(dir, sizeof dir, "/tmp/simclr_dist_XXXXXX");
    if (!mkdtemp(dir)) sc_test_skip("cannot create a temporary directory");
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    mkdir(data_dir, 0755);
    if (!sc_tiny_fashion_mnist(data_dir, 512, 64))
        sc_test_skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist; tools/setup.sh installs it)");
    SC_RUN(test_equivalence);
    if (simclr_bin) SC_RUN(test_fault);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return sc_test_summary();
}
