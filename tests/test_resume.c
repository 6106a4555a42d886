/*
 * test_resume.c - exact resume, through sc_train / sc_train_resume: on the CPU path, and with the
 * argument `cuda` (ctest's test_gpu_resume) on GPU 0 in deterministic mode with step graphs,
 * where the resumed run must equal the unbroken one bit for bit too (exit 77 without a GPU).
 *
 * A run of 30 steps straight is compared with the same run stopped twice (at step 10, inside a
 * metrics window, and at step 24, exactly at an epoch boundary; 12 steps per epoch), resumed
 * each time from its newest checkpoint with another loader thread count: weights, BN
 * statistics and momentum must be bit-identical (memcmp), and so must every metrics record
 * (step, epoch, loss, accuracy, learning rate). A control run resumed with another seed must
 * differ (the comparison can fail). Also: a config that changes the model is refused without
 * touching the run; a finished run resumes as a no-op; --resume auto starts a missing run in
 * <run.dir>/<run.name> itself; a stop requested before training starts is honoured.
 */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "simclr/checkpoint.h"
#include "simclr/log.h"
#include "simclr/safetensors.h"
#include "simclr/train.h"
#include "tiny_data.h"

static char dir[256];
static const char *device = "cpu"; /* "cpu", or "cuda" (deterministic) */

/* Stop the run when a log line contains this text (NULL: never). */
static const char *stop_at;
static void sink(void *user, sc_log_level level, const char *line) {
    (void)user;
    if (stop_at && strstr(line, stop_at)) sc_train_request_stop();
    if (level >= SC_LOG_WARN) printf("  log: %s\n", line);
}

static void config(sc_config *cfg, const char *name) {
    sc_config_defaults(cfg);
    char sets[4][400];
    snprintf(sets[0], sizeof sets[0], "run.dir=%s/runs", dir);
    snprintf(sets[1], sizeof sets[1], "data.path=%s/data", dir);
    snprintf(sets[2], sizeof sets[2], "run.name=%s", name);
    snprintf(sets[3], sizeof sets[3], "run.device=%s", device);
    const char *fixed[] = {"model.arch=resnet18", "model.stem=cifar", "model.width=0.0625", "model.head.out_dim=16",
                           "data.image_size=16", "train.batch_size=16", "train.epochs=3", "train.max_steps=30",
                           "train.warmup_epochs=0.5", "train.checkpoint_every=5", "run.log_every=4",
                           "run.progress=never", "run.deterministic=true", "run.threads=1", "run.seed=3", "data.workers=2",
                           "eval.linear_probe=false", "optim.lr=2.0", "loss.temperature=0.2"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) CHECKF(sc_config_set(cfg, fixed[i]) == SC_OK, "%s", fixed[i]);
    for (int i = 0; i < 4; i++) CHECKF(sc_config_set(cfg, sets[i]) == SC_OK, "%s: %s", sets[i], sc_last_error());
}

static sc_status resume(const sc_config *cfg, const char *what, sc_train_result *r) {
    sc_resume_point rp;
    sc_status rc = sc_resume_locate(cfg, what, &rp);
    if (rc != SC_OK) return rc;
    return sc_train_resume(cfg, &rp, r);
}

/* Parameters and optimizer state of a checkpoint, bit for bit. */
static int same_state(const sc_config *cfg, const char *a, const char *b) {
    sc_backend *be;
    if (sc_backend_create("cpu", NULL, &be) != SC_OK) return 0;
    sc_model_config mc = sc_model_config_from(cfg, 1);
    sc_model *ma, *mb;
    int same = 0;
    if (sc_model_create(&mc, be, SC_F32, &ma) == SC_OK && sc_model_create(&mc, be, SC_F32, &mb) == SC_OK) {
        sc_status ra = sc_checkpoint_load(a, ma, NULL, NULL, NULL), rb = sc_checkpoint_load(b, mb, NULL, NULL, NULL);
        CHECKF(ra == SC_OK && rb == SC_OK, "%s", sc_last_error());
        sc_tensor pa = sc_model_param_buffer(ma), pb = sc_model_param_buffer(mb);
        sc_tensor sa = sc_model_state_buffer(ma), sb = sc_model_state_buffer(mb);
        same = ra == SC_OK && rb == SC_OK && memcmp(pa.data, pb.data, sc_tensor_nbytes(&pa)) == 0 &&
               memcmp(sa.data, sb.data, sc_tensor_nbytes(&sa)) == 0;
        sc_model_destroy(ma);
        sc_model_destroy(mb);
    }
    sc_backend_destroy(be);
    return same;
}

/* metrics.jsonl records cut to their deterministic fields (step, epoch, loss, acc, lr). */
static int read_records(const char *run, char out[][160], int cap) {
    char p[1200], line[1024];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    FILE *f = fopen(p, "r");
    int n = 0;
    while (f && n < cap && fgets(line, sizeof line, f)) {
        char *cut = strstr(line, ", \"images_per_s\"");
        if (cut) *cut = '\0';
        snprintf(out[n++], 160, "%s", line);
    }
    if (f) fclose(f);
    return n;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = calloc(1, 1 << 20);
    size_t n = fread(b, 1, (1 << 20) - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

static void test_exact_resume(void) {
    sc_config a, b;
    sc_train_result ra, rb;
    config(&a, "straight");
    config(&b, "stopped");
    sc_status rc = sc_train(&a, &ra);
    CHECKF(rc == SC_OK && ra.steps == 30, "%s", sc_last_error());

    stop_at = "(step 10,"; /* the checkpoint line of step 10: stop there, inside a metrics window */
    rc = sc_train(&b, &rb);
    CHECKF(rc == SC_ERR_INTERRUPTED && rb.steps == 10 && rb.interrupted, "%d %lld", rc, (long long)rb.steps);
    stop_at = "step 24/30"; /* the progress line of step 24 = the end of epoch 2 */
    b.data.workers = 3;     /* free to change: batches do not depend on it */
    rc = resume(&b, "auto", &rb);
    CHECKF(rc == SC_ERR_INTERRUPTED && rb.steps == 24 && rb.resumed_from == 10, "%d %lld", rc, (long long)rb.steps);
    sc_train_state ts;
    CHECK(sc_checkpoint_verify(rb.checkpoint, &ts) == SC_OK && ts.step == 24 && ts.epoch == 2 && ts.batch_in_epoch == 0);
    stop_at = NULL;
    b.data.workers = 1;
    rc = resume(&b, "auto", &rb);
    CHECKF(rc == SC_OK && rb.steps == 30 && rb.resumed_from == 24, "%s", sc_last_error());
    CHECKF(same_state(&a, ra.checkpoint, rb.checkpoint), "30 steps straight and 10 + 14 + 6 resumed differ");

    static char ma[64][160], mb[64][160];
    int na = read_records(ra.run_dir, ma, 64), nb = read_records(rb.run_dir, mb, 64);
    CHECKF(na == 8 && nb == na, "%d and %d metrics records", na, nb);
    for (int i = 0; i < na && i < nb; i++) CHECKF(strcmp(ma[i], mb[i]) == 0, "record %d:\n    %s\n    %s", i, ma[i], mb[i]);

    /* control: the same resume with another seed (warned about) must not match */
    char control[1200], src[1200];
    snprintf(src, sizeof src, "%s/checkpoints/step_00000020.safetensors", rb.run_dir);
    snprintf(control, sizeof control, "%s/step20_copy.safetensors", dir);
    char cmd[2600];
    snprintf(cmd, sizeof cmd, "cp %s %s", src, control);
    CHECK(system(cmd) == 0);
    sc_config c;
    config(&c, "control");
    c.run.seed = 4;
    sc_train_result rcr;
    rc = resume(&c, control, &rcr);
    CHECKF(rc == SC_OK && rcr.steps == 30 && strstr(rcr.run_dir, "control"), "%s", sc_last_error());
    CHECK(!same_state(&a, ra.checkpoint, rcr.checkpoint));
    /* the same copy with the same seed, in a new run directory, matches again */
    config(&c, "copy");
    rc = resume(&c, control, &rcr);
    CHECK(rc == SC_OK && same_state(&a, ra.checkpoint, rcr.checkpoint));

    /* a changed model is refused and the run directory is left as it was */
    char mpath[1200];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", rb.run_dir);
    char *before = slurp(mpath);
    sc_config w = b;
    w.model.width = 0.125;
    rc = resume(&w, "auto", &rb);
    CHECKF(rc == SC_ERR_CONFIG && strstr(sc_last_error(), "model.width 0.0625 -> 0.125"), "%s", sc_last_error());
    char *after = slurp(mpath);
    CHECK(before && after && strcmp(before, after) == 0);
    free(before);
    free(after);
    /* a finished run resumes as a no-op */
    rc = resume(&b, "auto", &rb);
    CHECK(rc == SC_OK && rb.already_complete && rb.steps == 30);
}

/* The tensor bytes of a checkpoint (parameters, momentum and AdamW's second moment), as the
 * CRC-32 of its data section recorded in the metadata. */
static unsigned long data_crc(const char *path) {
    sc_safetensors st;
    if (sc_safetensors_open(path, &st) != SC_OK) return 0;
    const char *v = sc_safetensors_meta(&st, "data_crc32");
    unsigned long crc = v ? strtoul(v, NULL, 16) : 0;
    sc_safetensors_close(&st);
    return crc;
}

/* AdamW keeps a second moment beside the momentum: a resumed run must restore it too. */
static void test_exact_resume_adamw(void) {
    sc_config a, b;
    sc_train_result ra, rb;
    config(&a, "adamw_straight");
    config(&b, "adamw_stopped");
    const char *adamw[] = {"optim.name=adamw", "optim.lr=0.001", "optim.weight_decay=0.05", "train.max_steps=12"};
    for (int i = 0; i < 4; i++) CHECK(sc_config_set(&a, adamw[i]) == SC_OK && sc_config_set(&b, adamw[i]) == SC_OK);
    CHECKF(sc_train(&a, &ra) == SC_OK && ra.steps == 12, "%s", sc_last_error());
    stop_at = "(step 5,";
    sc_status rc = sc_train(&b, &rb);
    CHECKF(rc == SC_ERR_INTERRUPTED && rb.steps == 5, "%d %lld", rc, (long long)rb.steps);
    stop_at = NULL;
    rc = resume(&b, "auto", &rb);
    CHECKF(rc == SC_OK && rb.steps == 12 && rb.resumed_from == 5, "%s", sc_last_error());
    unsigned long ca = data_crc(ra.checkpoint), cb = data_crc(rb.checkpoint);
    CHECKF(ca != 0 && ca == cb, "AdamW: 12 steps straight and 5 + 7 resumed differ (data CRC %08lx vs %08lx)", ca, cb);
}

static void test_auto_starts_and_stop_before_start(void) {
    sc_config c;
    config(&c, "fresh");
    c.train.max_steps = 3;
    sc_resume_point rp;
    CHECK(sc_resume_locate(&c, "auto", &rp) == SC_OK && rp.checkpoint[0] == '\0' && strstr(rp.run_dir, "/runs/fresh"));
    sc_train_result r;
    CHECK(sc_train_resume(&c, &rp, &r) == SC_OK && r.steps == 3);
    CHECKF(strcmp(r.run_dir, rp.run_dir) == 0, "%s", r.run_dir); /* exactly <run.dir>/<run.name> */
    CHECK(sc_train(&c, &r) == SC_OK && strstr(r.run_dir, "fresh-2")); /* a new run never reuses it */
    /* a stop requested before training is honoured at the first step boundary */
    config(&c, "early");
    sc_train_request_stop();
    sc_status rc = sc_train(&c, &r);
    CHECK(rc == SC_ERR_INTERRUPTED && r.steps == 0 && strstr(r.checkpoint, "step_00000000"));
    c.train.max_steps = 2;
    CHECK(resume(&c, "auto", &r) == SC_OK && r.steps == 2); /* the request was consumed */
    /* an explicit run directory without checkpoints is an error, not a new run */
    char empty[600];
    snprintf(empty, sizeof empty, "%s/runs/empty", dir);
    mkdir(empty, 0755);
    CHECK(sc_resume_locate(&c, empty, &rp) == SC_ERR_IO && strstr(sc_last_error(), "no checkpoint"));
}

int main(int argc, char **argv) {
    if (argc > 1) device = argv[1];
    if (strcmp(device, "cuda") == 0 && sc_cuda_device_count() <= 0) sc_test_skip("no GPU");
    snprintf(dir, sizeof dir, "/tmp/simclr_resume_XXXXXX");
    if (!mkdtemp(dir)) sc_test_skip("cannot create a temporary directory");
    char data[400];
    snprintf(data, sizeof data, "%s/data", dir);
    mkdir(data, 0755);
    if (!sc_tiny_fashion_mnist(data, 200, 64))
        sc_test_skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)");
    sc_log_set_sink(sink, NULL);
    SC_RUN(test_exact_resume);
    SC_RUN(test_exact_resume_adamw);
    if (strcmp(device, "cpu") == 0) SC_RUN(test_auto_starts_and_stop_before_start); /* device-independent */
    sc_log_set_sink(NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return sc_test_summary();
}
