/*
 * test_train_e2e.c - a real 20-step SimCLR run on Fashion-MNIST through sc_train: the loss
 * falls, the run directory holds the resolved config, metrics and checkpoints, a checkpoint
 * reloads bit-exactly, and the linear probe reports both the pretrained and the random-init
 * encoder.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "simclr/checkpoint.h"
#include "simclr/train.h"

static char dir[256];

static void small_config(sc_config *cfg) {
    sc_config_defaults(cfg);
    CHECK(sc_config_load_string(cfg, sc_default_config_yaml, "<embedded>") == SC_OK);
    const char *sets[] = {"model.width=0.0625", "train.batch_size=64", "train.max_steps=20", "train.epochs=1",
                          "train.warmup_epochs=0.01", "train.checkpoint_every=10", "run.log_every=5",
                          "run.progress=never", "run.name=e2e", "data.workers=2", "eval.probe_train_samples=2000",
                          "eval.probe_test_samples=1000", "eval.batch_size=256", "run.device=cpu"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) CHECKF(sc_config_set(cfg, sets[i]) == SC_OK, "%s: %s", sets[i], sc_last_error());
    char d[300];
    snprintf(d, sizeof d, "run.dir=%s", dir);
    CHECK(sc_config_set(cfg, d) == SC_OK);
}

static int exists(const char *run, const char *file) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", run, file);
    return access(p, F_OK) == 0;
}

static void test_twenty_steps(void) {
    sc_config cfg;
    small_config(&cfg);
    sc_train_result r;
    sc_status rc = sc_train(&cfg, &r);
    CHECKF(rc == SC_OK, "%s", sc_last_error());
    if (rc != SC_OK) return;
    printf("  20 steps: loss %.4f -> %.4f, %.0f images/s; probe %.3f (random init %.3f)\n", r.first_loss, r.final_loss,
           r.images_per_second, r.probe.pretrained.test_accuracy, r.probe.random_init.test_accuracy);
    CHECK(r.steps == 20);
    CHECKF(r.final_loss < r.first_loss - 0.05, "loss did not fall: %.4f -> %.4f", r.first_loss, r.final_loss);
    CHECK(exists(r.run_dir, "config.yaml") && exists(r.run_dir, "log.txt") && exists(r.run_dir, "run_info.txt"));
    CHECK(exists(r.run_dir, "checkpoints/step_00000010.safetensors"));
    CHECK(exists(r.run_dir, "checkpoints/final.safetensors"));
    /* 4 windows of 5 steps + the probe line */
    char p[1200];
    snprintf(p, sizeof p, "%s/metrics.jsonl", r.run_dir);
    FILE *f = fopen(p, "r");
    int lines = 0, probe_lines = 0;
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        lines++;
        probe_lines += strstr(line, "\"linear_probe\"") != NULL;
    }
    if (f) fclose(f);
    CHECK(lines == 5 && probe_lines == 1);
    /* the resolved config reloads to the same values */
    sc_config back;
    sc_config_defaults(&back);
    snprintf(p, sizeof p, "%s/config.yaml", r.run_dir);
    CHECK(sc_config_load_file(&back, p) == SC_OK);
    CHECK(back.train.max_steps == 20 && back.model.width == 0.0625 && strcmp(back.run.name, "e2e") == 0);
    /* the probe ran on both encoders */
    CHECK(r.probed && r.probe.train_samples == 2000 && r.probe.test_samples == 1000 && r.probe.feature_dim == 32);
    CHECK(r.probe.pretrained.test_accuracy > 0.3 && r.probe.random_init.test_accuracy > 0.1);

    /* a checkpoint reloads into a fresh model bit for bit, with the step recorded */
    char *yaml = NULL;
    CHECK(sc_checkpoint_read_config(r.checkpoint, &yaml) == SC_OK && yaml && strstr(yaml, "max_steps: 20"));
    free(yaml);
    sc_backend *be;
    CHECK(sc_backend_create("cpu", NULL, &be) == SC_OK);
    sc_model_config mc = sc_model_config_from(&cfg, 1);
    sc_model *m;
    CHECK(sc_model_create(&mc, be, SC_F32, &m) == SC_OK);
    sc_train_state ts;
    CHECKF(sc_checkpoint_load(r.checkpoint, m, NULL, &ts, NULL) == SC_OK, "%s", sc_last_error());
    CHECK(ts.step == 20 && ts.epoch == 0 && ts.batch_in_epoch == 20);
    sc_model *m2;
    CHECK(sc_model_create(&mc, be, SC_F32, &m2) == SC_OK);
    snprintf(p, sizeof p, "%s/checkpoints/step_00000010.safetensors", r.run_dir);
    CHECK(sc_checkpoint_load(p, m2, NULL, &ts, NULL) == SC_OK && ts.step == 10);
    sc_tensor a = sc_model_param_buffer(m), b = sc_model_param_buffer(m2);
    CHECK(memcmp(a.data, b.data, sc_tensor_nbytes(&a)) != 0); /* 10 more steps changed the weights */
    sc_model_destroy(m2);
    /* a model of another width refuses the checkpoint and names the tensor */
    mc.width = 0.125;
    CHECK(sc_model_create(&mc, be, SC_F32, &m2) == SC_OK);
    CHECK(sc_checkpoint_load(r.checkpoint, m2, NULL, NULL, NULL) == SC_ERR_FORMAT && strstr(sc_last_error(), "conv1.weight"));
    sc_model_destroy(m2);
    sc_model_destroy(m);
    sc_backend_destroy(be);

    /* the same name again gets a fresh directory */
    cfg.eval.linear_probe = 0;
    cfg.train.max_steps = 2;
    sc_train_result r2;
    CHECK(sc_train(&cfg, &r2) == SC_OK);
    CHECKF(strstr(r2.run_dir, "e2e-2") != NULL, "%s", r2.run_dir);
}

int main(void) {
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0)
        sc_test_skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist; tools/setup.sh installs it)");
    snprintf(dir, sizeof dir, "/tmp/simclr_e2e_XXXXXX");
    if (!mkdtemp(dir)) sc_test_skip("cannot create a temporary directory");
    SC_RUN(test_twenty_steps);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return sc_test_summary();
}
