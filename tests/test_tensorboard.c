/*
 * test_tensorboard.c - the event files and the projector, read back by the real TensorBoard
 * (the `tensorboard` package in <build>/tb-venv, made by WITH_TEST_DEPS=1 tools/setup.sh):
 *
 *  1. writer level: known scalars, an RGB and a gray image, a histogram and a projector are
 *     written with the C writer; tests/python/check_tensorboard.py --unit compares every value,
 *     step, image size and histogram statistic with the expectation written here;
 *  2. trainer level: a 2-epoch run on a 320-image copy of Fashion-MNIST with TensorBoard, the kNN
 *     monitor every epoch and the projector; --run checks that every scalar of metrics.jsonl, the
 *     view-pair images, the weight/gradient histograms of every trained tensor and the final
 *     evaluation are in the event file at the right steps, and that the projector loads.
 *
 * Skips (77) only when the TensorBoard environment or Fashion-MNIST is missing.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "simclr/tensorboard.h"
#include "simclr/train.h"
#include "tiny_data.h"

static char tmp[256], python[1024];

static int run_checker(const char *mode, const char *dir) {
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/python/check_tensorboard.py' %s '%s'", python, SC_SOURCE_DIR, mode, dir);
    int rc = system(cmd);
    return rc == 0;
}

static void test_writer_read_by_tensorboard(void) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/unit", tmp);
    CHECK(mkdir(dir, 0755) == 0);
    sc_tb_writer *w;
    CHECK(sc_tb_open(dir, &w) == SC_OK);
    if (!w) return;
    CHECK(strstr(sc_tb_path(w), "/events.out.tfevents.") != NULL);
    for (int i = 0; i < 10; i++) CHECK(sc_tb_scalar(w, "test/a", i, 0.5 * i) == SC_OK);
    CHECK(sc_tb_scalar(w, "test/b", 100, 1.25) == SC_OK);
    sc_image8 rgb, gray;
    CHECK(sc_image8_alloc(&rgb, 5, 4, 3, 0) == SC_OK && sc_image8_alloc(&gray, 7, 3, 1, 200) == SC_OK);
    for (int i = 0; i < 5 * 4 * 3; i++) rgb.pixels[i] = (uint8_t)(i * 4);
    CHECK(sc_tb_image(w, "test/img", 3, &rgb) == SC_OK);
    CHECK(sc_tb_image(w, "test/gray", 4, &gray) == SC_OK);
    float values[100];
    for (int i = 0; i < 100; i++) values[i] = (float)i;
    values[50] = NAN; /* skipped */
    CHECK(sc_tb_histogram(w, "test/h", 7, values, 100, 10) == SC_OK);
    float constant[3] = {2.0f, 2.0f, 2.0f};
    CHECK(sc_tb_histogram(w, "test/const", 8, constant, 3, 10) == SC_OK);
    sc_tb_close(w);
    float feats[20 * 3];
    int32_t labels[20];
    for (int i = 0; i < 20; i++) {
        labels[i] = i % 3;
        for (int j = 0; j < 3; j++) feats[i * 3 + j] = (float)(i * 3 + j) * 0.25f;
    }
    sc_image8 sprite;
    CHECK(sc_image8_alloc(&sprite, 5 * 4, 5 * 4, 1, 128) == SC_OK);
    const char *names[3] = {"zero", "one", "two"};
    CHECK(sc_tb_write_projector(dir, "emb", feats, 20, 3, labels, names, &sprite, 4) == SC_OK);
    sc_image8_free(&sprite);
    sc_image8_free(&rgb);
    sc_image8_free(&gray);
    CHECKF(run_checker("--unit", dir), "check_tensorboard.py --unit failed (output above)");
}

static void test_training_run_read_by_tensorboard(void) {
    char data[300];
    snprintf(data, sizeof data, "%s/data", tmp);
    CHECK(mkdir(data, 0755) == 0);
    CHECK(sc_tiny_fashion_mnist(data, 320, 200));
    sc_config cfg;
    sc_config_defaults(&cfg);
    CHECK(sc_config_load_string(&cfg, sc_default_config_yaml, "<embedded>") == SC_OK);
    char d1[400], d2[400];
    snprintf(d1, sizeof d1, "run.dir=%s/runs", tmp);
    snprintf(d2, sizeof d2, "data.path=%s", data);
    const char *sets[] = {d1, d2, "run.name=tb", "run.device=cpu", "run.progress=never", "run.log_every=5",
                          "model.width=0.0625", "train.batch_size=32", "train.epochs=2", "train.warmup_epochs=0.1",
                          "data.workers=2", "eval.every=1", "eval.knn_k=20", "eval.probe_train_samples=0",
                          "eval.probe_test_samples=0", "eval.batch_size=100", "tensorboard.image_every=10",
                          "tensorboard.histogram_every=10", "tensorboard.projector_samples=50"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) CHECKF(sc_config_set(&cfg, sets[i]) == SC_OK, "%s: %s", sets[i], sc_last_error());
    sc_train_result r;
    sc_status rc = sc_train(&cfg, &r);
    CHECKF(rc == SC_OK, "%s", sc_last_error());
    if (rc != SC_OK) return;
    CHECK(r.steps == 20 && r.probed);
    CHECKF(run_checker("--run", r.run_dir), "check_tensorboard.py --run failed (output above)");
}

int main(void) {
    snprintf(python, sizeof python, "%s/tb-venv/bin/python", SC_BINARY_DIR);
    if (access(python, X_OK) != 0)
        sc_test_skip("the TensorBoard test environment is missing: WITH_TEST_DEPS=1 tools/setup.sh makes "
                     "<build>/tb-venv with the pinned tensorboard package");
    char probe[1200];
    snprintf(probe, sizeof probe, "'%s' -c 'import tensorboard.backend.event_processing.event_accumulator' 2>/dev/null", python);
    if (system(probe) != 0) sc_test_skip("<build>/tb-venv cannot import tensorboard: rerun WITH_TEST_DEPS=1 tools/setup.sh");
    if (access(SC_TINY_FASHION_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0)
        sc_test_skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)");
    snprintf(tmp, sizeof tmp, "/tmp/simclr_tb_XXXXXX");
    if (!mkdtemp(tmp)) sc_test_skip("cannot create a temporary directory");
    SC_RUN(test_writer_read_by_tensorboard);
    SC_RUN(test_training_run_read_by_tensorboard);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (sc_test_checks_failed == 0 && system(cmd) != 0) printf("note: could not remove %s\n", tmp);
    return sc_test_summary();
}
