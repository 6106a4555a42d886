/*
 * cmd_train.c - `simclr train`: build the config (embedded default or --config, then --set
 * overrides), run the trainer (a new run, or --resume auto|PATH), print a summary with the
 * linear-probe result. Resuming without --config starts from the checkpoint's stored config,
 * so `simclr train --resume auto` alone continues the run exactly as it was configured.
 *
 * Several ranks: `--gpus N` makes this process a launcher that forks N ranks on this node
 * (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set for each), forwards stop
 * signals to them, and when one fails stops the others and exits non-zero naming it. A rank
 * (launched so, or by torchrun, mpirun or srun: see sc_dist_env_read) connects to the others
 * over TCP, takes CUDA device LOCAL_RANK when run.device is auto or cuda, and trains its
 * shard; only rank 0 prints the summary.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "simclr/dist.h"
#include "simclr/log.h"
#include "simclr/train.h"

static const char train_usage[] =
    "usage: simclr train [--config FILE] [--set KEY=VALUE]... [--device DEV] [--name NAME] [--resume auto|PATH]\n"
    "                    [--gpus N]\n"
    "\n"
    "Pretrain an encoder with SimCLR. Without --config, runs the embedded default\n"
    "(configs/fashion_mnist.yaml): a width-1/8 ResNet-18 on Fashion-MNIST, then a linear probe\n"
    "of the pretrained encoder beside the same encoder at random initialisation.\n"
    "\n"
    "options:\n"
    "  --config FILE      YAML config; keys not given keep their defaults (listed below)\n"
    "  --set KEY=VALUE    override one key, e.g. --set train.epochs=5 (repeatable, applied in order)\n"
    "  --device DEV       auto | cpu | cuda | cuda:N   (same as --set run.device=DEV)\n"
    "  --name NAME        run name under run.dir      (same as --set run.name=NAME)\n"
    "  --resume auto|PATH continue a run where it stopped, bit for bit: auto = <run.dir>/<run.name>\n"
    "                     (its newest valid checkpoint; a new run there when it has none), or a run\n"
    "                     directory, or a checkpoint file. Without --config the checkpoint's config is\n"
    "                     used (--set still applies); keys that define the model must not change.\n"
    "  --gpus N           data-parallel training on N ranks of this node, one process per GPU (rank r on\n"
    "                     cuda:r); with --device cpu, N CPU processes. train.batch_size is the global\n"
    "                     batch. Under torchrun, mpirun or srun leave --gpus out: the ranks are read from\n"
    "                     RANK/WORLD_SIZE/LOCAL_RANK, OMPI_COMM_WORLD_*, or SLURM_PROCID/NTASKS/LOCALID,\n"
    "                     with rank 0 at MASTER_ADDR:MASTER_PORT (default 127.0.0.1:29500)\n"
    "  --print-config     print the resolved config and exit\n"
    "  -h, --help         this text\n"
    "\n"
    "Ctrl-C stops at the next step, saves a checkpoint and exits with 130; SIGTERM or SIGUSR1 (sent by\n"
    "schedulers before preemption) do the same and exit with 0. A second signal quits at once.\n"
    "\n"
    "config keys:\n";

static void print_summary(const sc_train_result *r) {
    printf("\nrun:        %s\n", r->run_dir);
    if (r->resumed_from > 0) printf("resumed:    from step %lld\n", (long long)r->resumed_from);
    if (r->already_complete) {
        printf("training:   already complete at step %lld: nothing to do\n", (long long)r->steps);
        return;
    }
    printf("training:   %lld steps in %.1f s, %.0f images/s, loss %.4f -> %.4f\n", (long long)r->steps, r->seconds,
           r->images_per_second, r->first_loss, r->final_loss);
    if (r->checkpoint[0]) printf("checkpoint: %s\n", r->checkpoint);
    if (r->probed) {
        const sc_probe_report *p = &r->probe;
        printf("linear probe (%lld train / %lld test images, %d features):\n", (long long)p->train_samples,
               (long long)p->test_samples, p->feature_dim);
        printf("  pretrained encoder:  %6.2f %% test accuracy  (train %6.2f %%)\n", 100.0 * p->pretrained.test_accuracy,
               100.0 * p->pretrained.train_accuracy);
        printf("  random init:         %6.2f %% test accuracy  (train %6.2f %%)\n", 100.0 * p->random_init.test_accuracy,
               100.0 * p->random_init.train_accuracy);
        printf("kNN (k %d, t %g):\n", p->knn_pretrained.k, p->knn_pretrained.temperature);
        printf("  pretrained encoder:  %6.2f %% test accuracy\n", 100.0 * p->knn_pretrained.top1);
        printf("  random init:         %6.2f %% test accuracy\n", 100.0 * p->knn_random_init.top1);
        printf("reports:    %s/eval/final/ (linear.json, knn.json, confusion matrices)\n", r->run_dir);
    }
}

/* ---- the launcher of --gpus N ---------------------------------------------------------------- */

static pid_t launched[1024];
static int nlaunched;

static void forward_signal(int sig) {
    for (int r = 0; r < nlaunched; r++)
        if (launched[r] > 0) kill(launched[r], sig);
}

/* Fork n ranks that return to train; the parent waits for them and returns its exit code
 * (>= 0), a rank returns -1. */
static int launch_ranks(int n) {
    char port[16], num[16];
    if (!getenv("MASTER_ADDR")) setenv("MASTER_ADDR", "127.0.0.1", 1);
    if (!getenv("MASTER_PORT")) {
        snprintf(port, sizeof port, "%d", sc_dist_free_port());
        setenv("MASTER_PORT", port, 1);
    }
    snprintf(num, sizeof num, "%d", n);
    setenv("WORLD_SIZE", num, 1);
    fflush(NULL);
    for (int r = 0; r < n; r++) {
        pid_t p = fork();
        if (p < 0) {
            fprintf(stderr, "simclr: error: cannot start rank %d: %s\n", r, strerror(errno));
            forward_signal(SIGKILL);
            return SC_EXIT_FAIL;
        }
        if (p == 0) {
            setpgid(0, 0); /* the terminal's Ctrl-C reaches the launcher only, which forwards it once */
            snprintf(num, sizeof num, "%d", r);
            setenv("RANK", num, 1);
            setenv("LOCAL_RANK", num, 1);
            return -1;
        }
        launched[nlaunched++] = p;
    }
    struct sigaction sa = {.sa_handler = forward_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    int code = SC_EXIT_OK, failed = -1, left = n;
    double failed_at = 0;
    while (left > 0) {
        int status;
        pid_t p = waitpid(-1, &status, failed >= 0 ? WNOHANG : 0);
        if (p < 0 && errno == EINTR) continue;
        if (p < 0) break;
        if (p == 0) { /* the others were told to stop; give them 10 s to save and leave */
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((double)now.tv_sec - failed_at > 10.0) forward_signal(SIGKILL);
            continue;
        }
        int r = 0;
        while (r < n && launched[r] != p) r++;
        launched[r] = 0;
        left--;
        int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (ok || failed >= 0) continue;
        failed = r;
        if (WIFSIGNALED(status)) {
            fprintf(stderr, "simclr: rank %d was killed by signal %d; stopping the other ranks\n", r, WTERMSIG(status));
            code = SC_EXIT_FAIL;
        } else {
            code = WEXITSTATUS(status);
            fprintf(stderr, "simclr: rank %d exited with status %d; stopping the other ranks\n", r, code);
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        failed_at = (double)now.tv_sec;
        forward_signal(SIGTERM);
    }
    return code;
}

/* Device of a rank: cuda:LOCAL_RANK when the config asks for a GPU without naming one. */
static void rank_device(sc_config *cfg, const sc_dist_env *env) {
    int want_gpu = strcmp(cfg->run.device, "cuda") == 0 || (strcmp(cfg->run.device, "auto") == 0 && sc_cuda_device_count() > 0);
    if (want_gpu) snprintf(cfg->run.device, sizeof cfg->run.device, "cuda:%d", env->local_rank);
}

int sc_cmd_train(int argc, char **argv) {
    static const char *const own[] = {"--resume", "--gpus", NULL};
    sc_cli_opts opts;
    int code = sc_cli_parse_ex(argc, argv, &opts, train_usage, own);
    if (code >= 0) return code;
    const char *resume = opts.extra[0];
    int gpus = 0;
    if (opts.extra[1]) {
        char *end;
        long g = strtol(opts.extra[1], &end, 10);
        if (*end || g < 1 || g > 1024) {
            fprintf(stderr, "simclr: error: --gpus '%s' must be a number of ranks from 1 to 1024\n", opts.extra[1]);
            return SC_EXIT_USAGE;
        }
        gpus = (int)g;
    }
    if (opts.npos > 0) {
        fprintf(stderr, "simclr: error: unexpected argument '%s' (see simclr train --help)\n", opts.pos[0]);
        return SC_EXIT_USAGE;
    }
    sc_config cfg;
    sc_status st = sc_cli_build_config(&opts, opts.config_file ? NULL : sc_default_config_yaml,
                                       "<embedded configs/fashion_mnist.yaml>", &cfg);
    if (st != SC_OK) return sc_cli_fail(st);
    sc_resume_point rp;
    if (resume) {
        st = sc_resume_locate(&cfg, resume, &rp);
        if (st == SC_OK && !opts.config_file && rp.checkpoint[0]) st = sc_cli_checkpoint_config(&opts, rp.checkpoint, &cfg);
        if (st != SC_OK) return sc_cli_fail(st);
    }
    if (opts.print_config) {
        char *yaml = sc_config_to_yaml(&cfg);
        if (!yaml) return sc_cli_fail(sc_errorf(SC_ERR_NOMEM, "out of memory"));
        fputs(yaml, stdout);
        free(yaml);
        return SC_EXIT_OK;
    }
    if (gpus > 1) {
        int launcher_code = launch_ranks(gpus);
        if (launcher_code >= 0) return launcher_code;
    }
    sc_dist_env env;
    st = sc_dist_env_read(&env);
    if (st != SC_OK) return sc_cli_fail(st);
    sc_comm *comm = NULL;
    if (env.world_size > 1) {
        sc_log_set_rank(env.rank);
        rank_device(&cfg, &env);
        st = sc_comm_tcp_create(&env, cfg.dist.timeout_s, &comm);
        if (st != SC_OK) return sc_cli_fail(st);
    }
    sc_cli_install_stop_handlers();
    sc_train_result res;
    st = sc_train_run(&cfg, resume ? &rp : NULL, comm, &res);
    if (st != SC_OK && comm && !strstr(sc_last_error(), "rank "))
        sc_error_wrap(st, "rank %d", env.rank); /* every multi-rank error names its rank */
    sc_comm_destroy(comm);
    if ((st == SC_OK || st == SC_ERR_INTERRUPTED) && env.rank == 0) print_summary(&res);
    int sig = sc_cli_stop_signal();
    if (st == SC_ERR_INTERRUPTED && (sig == SIGTERM || sig == SIGUSR1)) {
        fprintf(stderr, "simclr: %s; exiting with status 0 (continue with: simclr train --resume auto ...)\n",
                sc_last_error());
        return SC_EXIT_OK;
    }
    return st == SC_OK ? SC_EXIT_OK : sc_cli_fail(st);
}
