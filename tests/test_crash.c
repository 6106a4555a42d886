/*
 * test_crash.c - checkpoints that survive SIGKILL and a full disk, through the real binary.
 *
 * Crash: `simclr train --resume auto` of a tiny model that checkpoints every step (1.7 MB, so
 * that saves take a good share of the time) is killed with SIGKILL at a random moment, over and
 * over (200 times: 1 in 8 during start-up, the others 0-60 ms after the set-up is logged, when
 * steps and saves alternate; the test counts the temporary files left behind as evidence of
 * kills inside a save). After every kill each committed
 * checkpoint must be valid (layout and CRCs), the newest valid one must be found and must never
 * go back in steps. Then the run is allowed to finish: its weights, momentum and metrics must
 * equal those of the same number of steps trained without interruption, and the temporary
 * files of killed saves must have been removed at start-up.
 *
 * Full disk: a run on a small tmpfs (mounted here; needs CAP_SYS_ADMIN) and a run under an
 * LD_PRELOAD shim that makes writes to checkpoint files fail with ENOSPC once a byte budget is
 * spent (works anywhere): both must fail with a clear "No space left on device" error, leave
 * no temporary file, and keep the previous checkpoint valid; the shim run then resumes from it.
 *
 * Usage: test_crash path/to/simclr
 */
#include <errno.h>
#include <dirent.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "simclr/checkpoint.h"
#include "simclr/log.h"
#include "simclr/rng.h"
#include "simclr/train.h"
#include "tiny_data.h"

#define KILLS 200

static const char *simclr;
static char dir[256];

/* The config of every run here, as --set assignments (also applied in-process). */
static const char *const tiny_sets[] = {
    "model.arch=resnet18", "model.stem=cifar", "model.width=0.0625", "model.head.out_dim=16",
    "model.head.hidden_dim=4096", "data.image_size=16",
    "train.batch_size=16", "train.epochs=1000", "train.warmup_epochs=1", "train.checkpoint_every=1",
    "checkpoint.keep_last=2", "run.log_every=1", "run.progress=never", "run.device=cpu", "run.threads=1",
    "data.workers=1", "eval.linear_probe=false", "eval.every=0", "run.seed=11"};
#define NTINY (int)(sizeof tiny_sets / sizeof tiny_sets[0])

/* Start `simclr train` of run <runs>/<name> with the tiny config plus `extra` assignments,
 * output to `log`; with `preload`, under the ENOSPC shim with a byte budget. */
static pid_t spawn(const char *runs, const char *name, int resume, const char *const *extra, int nextra,
                   const char *log, const char *preload, const char *budget) {
    char *argv[2 * (NTINY + 16) + 8];
    char sets[8][600];
    int n = 0;
    argv[n++] = (char *)simclr;
    argv[n++] = "train";
    if (resume) {
        argv[n++] = "--resume";
        argv[n++] = "auto";
    }
    snprintf(sets[0], sizeof sets[0], "run.dir=%s", runs);
    snprintf(sets[1], sizeof sets[1], "data.path=%s/data", dir);
    snprintf(sets[2], sizeof sets[2], "run.name=%s", name);
    for (int i = 0; i < 3; i++) {
        argv[n++] = "--set";
        argv[n++] = sets[i];
    }
    for (int i = 0; i < NTINY; i++) {
        argv[n++] = "--set";
        argv[n++] = (char *)tiny_sets[i];
    }
    for (int i = 0; i < nextra && i < 16; i++) {
        argv[n++] = "--set";
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        if (f) dup2(fileno(stdout), STDERR_FILENO);
        if (preload) {
            setenv("LD_PRELOAD", preload, 1);
            setenv("SC_TEST_ENOSPC_AFTER", budget, 1);
        }
        execv(simclr, argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

typedef struct dir_report {
    int committed, invalid, temps;
    int64_t newest; /* step of the newest valid checkpoint, -1 when none */
} dir_report;

/* Every committed checkpoint of a run must be valid; count the temporary files. */
static dir_report inspect(const char *run) {
    dir_report r = {0, 0, 0, -1};
    char ckdir[800];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", run);
    DIR *d = opendir(ckdir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strstr(e->d_name, ".tmp")) {
            r.temps++;
            continue;
        }
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0) continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", ckdir, e->d_name);
        r.committed++;
        if (sc_checkpoint_verify(p, NULL) != SC_OK) {
            r.invalid++;
            printf("  INVALID committed checkpoint: %s\n", sc_last_error());
        }
    }
    if (d) closedir(d);
    if (r.committed > 0) {
        char found[1200];
        sc_train_state ts;
        if (sc_checkpoint_find_latest(run, found, sizeof found, NULL, &ts) == SC_OK) r.newest = ts.step;
    }
    return r;
}

/* What the binary runs: the embedded default config, then the same assignments. */
static void in_process_config(sc_config *cfg, const char *name, int64_t max_steps) {
    sc_config_defaults(cfg);
    CHECK(sc_config_load_string(cfg, sc_default_config_yaml, "<embedded>") == SC_OK);
    char s[600];
    for (int i = 0; i < NTINY; i++) CHECK(sc_config_set(cfg, tiny_sets[i]) == SC_OK);
    snprintf(s, sizeof s, "run.dir=%s/runs", dir);
    CHECK(sc_config_set(cfg, s) == SC_OK);
    snprintf(s, sizeof s, "data.path=%s/data", dir);
    CHECK(sc_config_set(cfg, s) == SC_OK);
    snprintf(s, sizeof s, "run.name=%s", name);
    CHECK(sc_config_set(cfg, s) == SC_OK);
    cfg->train.max_steps = max_steps;
}

static int same_state(const sc_config *cfg, const char *a, const char *b) {
    sc_backend *be;
    if (sc_backend_create("cpu", NULL, &be) != SC_OK) return 0;
    sc_model_config mc = sc_model_config_from(cfg, 1);
    sc_model *ma = NULL, *mb = NULL;
    int same = sc_model_create(&mc, be, SC_F32, &ma) == SC_OK && sc_model_create(&mc, be, SC_F32, &mb) == SC_OK &&
               sc_checkpoint_load(a, ma, NULL, NULL, NULL) == SC_OK && sc_checkpoint_load(b, mb, NULL, NULL, NULL) == SC_OK;
    if (same) {
        sc_tensor pa = sc_model_param_buffer(ma), pb = sc_model_param_buffer(mb);
        sc_tensor sa = sc_model_state_buffer(ma), sb = sc_model_state_buffer(mb);
        same = memcmp(pa.data, pb.data, sc_tensor_nbytes(&pa)) == 0 && memcmp(sa.data, sb.data, sc_tensor_nbytes(&sa)) == 0;
    }
    sc_model_destroy(ma);
    sc_model_destroy(mb);
    sc_backend_destroy(be);
    return same;
}

/* The deterministic part (step .. lr) of every step record (event records such as the kNN
 * monitor's carry timings and are left out). */
static int records(const char *run, char out[][160], int cap) {
    char p[800], line[1024];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    FILE *f = fopen(p, "r");
    int n = 0;
    while (f && n < cap && fgets(line, sizeof line, f)) {
        if (strncmp(line, "{\"event\"", 8) == 0) continue;
        char *cut = strstr(line, ", \"images_per_s\"");
        if (cut) *cut = '\0';
        snprintf(out[n++], 160, "%s", line);
    }
    if (f) fclose(f);
    return n;
}

static int log_says(const char *log, const char *text) {
    FILE *f = fopen(log, "r");
    char line[2048];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f)) found = strstr(line, text) != NULL;
    if (f) fclose(f);
    return found;
}

static off_t checkpoint_bytes;

static void test_sigkill(void) {
    char run[600], log[600];
    snprintf(run, sizeof run, "%s/runs/crash", dir);
    snprintf(log, sizeof log, "%s/crash.log", dir);
    sc_rng rng = sc_rng_make((uint64_t)time(NULL), 0, 0, 0, SC_RNG_TEST);
    int killed = 0, exited = 0, invalid = 0, with_temps = 0, went_back = 0, lost = 0;
    int64_t newest = -1;
    char runs[600];
    snprintf(runs, sizeof runs, "%s/runs", dir);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int k = 0; k < KILLS; k++) {
        pid_t pid = spawn(runs, "crash", 1, NULL, 0, log, NULL, NULL);
        if (k % 8 == 0) {
            usleep((useconds_t)(sc_rng_uniform(&rng) * 150000.0f)); /* during start-up */
        } else {
            for (int w = 0; w < 5000 && !log_says(log, "INFO  optimizer "); w++) usleep(2000);
            usleep((useconds_t)(sc_rng_uniform(&rng) * 60000.0f)); /* among steps and saves */
        }
        kill(pid, SIGKILL);
        int code = wait_exit(pid);
        if (code == 128 + SIGKILL) killed++;
        else {
            exited++;
            printf("  run %d exited with %d before the kill (see %s)\n", k, code, log);
        }
        dir_report r = inspect(run);
        invalid += r.invalid;
        with_temps += r.temps > 0;
        if (r.committed > 0 && r.newest < 0) lost++;
        if (r.newest >= 0 && r.newest < newest) went_back++;
        if (r.newest > newest) newest = r.newest;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("  %d SIGKILLs in %.1f s: the run reached step %lld; %d kills left a temporary file (a save in progress), "
           "%d invalid committed checkpoints, %d times no valid checkpoint found, %d times the newest went back\n",
           killed, (double)(end.tv_sec - start.tv_sec) + 1e-9 * (double)(end.tv_nsec - start.tv_nsec), (long long)newest,
           with_temps, invalid, lost, went_back);
    CHECK(killed == KILLS && exited == 0);
    CHECK(invalid == 0 && lost == 0 && went_back == 0);
    CHECKF(newest >= 20, "only %lld steps in %d runs", (long long)newest, KILLS);
    CHECKF(with_temps >= KILLS / 20, "only %d of %d kills hit a save", with_temps, KILLS);

    /* let it finish a few steps later; compare with the same steps trained straight */
    int64_t total = newest + 3;
    char extra[64];
    snprintf(extra, sizeof extra, "train.max_steps=%lld", (long long)total);
    const char *ex[1] = {extra};
    int code = wait_exit(spawn(runs, "crash", 1, ex, 1, log, NULL, NULL));
    CHECKF(code == 0, "the final resume exited with %d (see %s)", code, log);
    dir_report r = inspect(run);
    CHECKF(r.temps == 0 && r.invalid == 0, "%d temporary files left after a clean start", r.temps);
    CHECK(r.committed <= 3); /* keep_last 2 + final */
    sc_config cfg;
    in_process_config(&cfg, "straight", total);
    sc_train_result res;
    sc_log_level saved = sc_log_threshold;
    sc_log_set_level(SC_LOG_WARN);
    sc_status rc = sc_train(&cfg, &res);
    sc_log_set_level(saved);
    CHECKF(rc == SC_OK && res.steps == total, "%s", sc_last_error());
    char final[800];
    snprintf(final, sizeof final, "%s/checkpoints/final.safetensors", run);
    CHECKF(same_state(&cfg, final, res.checkpoint), "after %d kills the weights differ from a straight run", KILLS);
    static char a[4096][160], b[4096][160];
    int na = records(run, a, 4096), nb = records(res.run_dir, b, 4096);
    CHECKF(na == total && nb == total, "%d and %d records for %lld steps", na, nb, (long long)total);
    int differ = 0;
    for (int i = 0; i < na && i < nb; i++) differ += strcmp(a[i], b[i]) != 0;
    CHECKF(differ == 0, "%d metrics records differ", differ);
    struct stat sb;
    if (stat(final, &sb) == 0) checkpoint_bytes = sb.st_size;
}

/* A run that hits ENOSPC at its second checkpoint: clear error, previous checkpoint intact. */
static void check_full_disk(const char *what, const char *run, const char *log, int code) {
    CHECKF(code == 1, "%s: exit %d (see %s)", what, code, log);
    CHECKF(log_says(log, "No space left on device"), "%s: the error does not say the disk is full (see %s)", what, log);
    dir_report r = inspect(run);
    CHECKF(r.committed >= 1 && r.invalid == 0 && r.temps == 0 && r.newest >= 1,
           "%s: %d committed, %d invalid, %d temporary files, newest %lld", what, r.committed, r.invalid, r.temps,
           (long long)r.newest);
    printf("  %s: failed cleanly at the save after step %lld, which stays valid\n", what, (long long)r.newest);
}

static void test_full_disk(void) {
    CHECK(checkpoint_bytes > 0);
    if (checkpoint_bytes <= 0) return;
    char mnt[600], run[700], log[700], budget[32], extra[64];
    const char *ex[1] = {"train.max_steps=50"};

    /* a small tmpfs: room for one checkpoint and the run's small files, not for a second */
    snprintf(mnt, sizeof mnt, "%s/tmpfs", dir);
    mkdir(mnt, 0755);
    snprintf(extra, sizeof extra, "size=%lldk", (long long)(checkpoint_bytes * 3 / 2 + 96 * 1024) / 1024);
    if (mount("tmpfs", mnt, "tmpfs", 0, extra) == 0) {
        snprintf(run, sizeof run, "%s/full", mnt);
        snprintf(log, sizeof log, "%s/full_tmpfs.log", dir);
        int code = wait_exit(spawn(mnt, "full", 0, ex, 1, log, NULL, NULL));
        check_full_disk("tmpfs", run, log, code);
        if (umount2(mnt, MNT_DETACH) != 0) printf("  note: umount %s: %s\n", mnt, strerror(errno));
    } else {
        printf("  note: cannot mount a tmpfs here (%s): the ENOSPC shim below stands in for it\n", strerror(errno));
    }

    /* the shim: writes to checkpoint files fail once 1.5 checkpoints are written */
    char runs[600];
    snprintf(runs, sizeof runs, "%s/runs", dir);
    snprintf(run, sizeof run, "%s/shim", runs);
    snprintf(log, sizeof log, "%s/full_shim.log", dir);
    snprintf(budget, sizeof budget, "%lld", (long long)(checkpoint_bytes * 3 / 2));
    int code = wait_exit(spawn(runs, "shim", 0, ex, 1, log, SC_ENOSPC_SHIM, budget));
    check_full_disk("ENOSPC shim", run, log, code);
    /* with space again, --resume auto continues from the kept checkpoint */
    const char *ex3[1] = {"train.max_steps=3"};
    code = wait_exit(spawn(runs, "shim", 1, ex3, 1, log, NULL, NULL));
    CHECKF(code == 0 && log_says(log, "resuming from"), "resume after the full disk: exit %d (see %s)", code, log);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        printf("usage: test_crash path/to/simclr\n");
        return 1;
    }
    simclr = argv[1];
    snprintf(dir, sizeof dir, "/tmp/simclr_crash_XXXXXX");
    if (!mkdtemp(dir)) sc_test_skip("cannot create a temporary directory");
    char data[400];
    snprintf(data, sizeof data, "%s/data", dir);
    mkdir(data, 0755);
    if (!sc_tiny_fashion_mnist(data, 200, 64))
        sc_test_skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)");
    SC_RUN(test_sigkill);
    SC_RUN(test_full_disk);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (sc_test_checks_failed == 0 && system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return sc_test_summary();
}
