/*
 * test_finetune.c - the fine-tuning protocol end to end on a 600-image copy of Fashion-MNIST:
 * the recorded label subset is the class-balanced one sc_label_subset picks, the classifier
 * learns (test accuracy well above chance), the report, confusion matrix and metrics exist,
 * the saved model reloads as encoder + classifier, and the same config gives the same result.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "simclr/checkpoint.h"
#include "simclr/eval.h"
#include "simclr/train.h"
#include "tiny_data.h"

static char tmp[256];

static void base_config(sc_config *cfg, const char *data) {
    sc_config_defaults(cfg);
    CHECK(sc_config_load_string(cfg, sc_default_config_yaml, "<embedded>") == SC_OK);
    char d[400];
    snprintf(d, sizeof d, "data.path=%s", data);
    const char *sets[] = {d, "run.device=cpu", "run.progress=never", "run.log_every=5", "model.width=0.0625",
                          "data.workers=2", "finetune.label_fraction=0.5", "finetune.epochs=20", "finetune.batch_size=50",
                          "finetune.lr=1.0", "finetune.baseline=false", "eval.batch_size=100"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) CHECKF(sc_config_set(cfg, sets[i]) == SC_OK, "%s: %s", sets[i], sc_last_error());
}

static void test_finetune_end_to_end(void) {
    char data[300], ckpt[400], out[400], out2[400];
    snprintf(data, sizeof data, "%s/data", tmp);
    CHECK(mkdir(data, 0755) == 0);
    CHECK(sc_tiny_fashion_mnist(data, 600, 300));
    sc_config cfg;
    base_config(&cfg, data);
    /* a "pretrained" checkpoint: the initialised SimCLR model (projection head and all) */
    sc_backend *be;
    CHECK(sc_backend_create("cpu", NULL, &be) == SC_OK);
    sc_model_config mc = sc_model_config_from(&cfg, 1);
    sc_model *m;
    CHECK(sc_model_create(&mc, be, SC_F32, &m) == SC_OK);
    sc_model_init_params(m, 5);
    snprintf(ckpt, sizeof ckpt, "%s/pre.safetensors", tmp);
    sc_train_state ts = {0};
    CHECK(sc_checkpoint_save(ckpt, m, NULL, &cfg, &ts) == SC_OK);
    sc_model_destroy(m);

    snprintf(out, sizeof out, "%s/ft", tmp);
    CHECK(mkdir(out, 0755) == 0);
    sc_finetune_result r;
    sc_status rc = sc_finetune(&cfg, ckpt, out, &r);
    CHECKF(rc == SC_OK, "%s", sc_last_error());
    if (rc != SC_OK) return;
    printf("  %lld labelled, %lld steps: loss %.3f -> %.3f, test top-1 %.3f top-5 %.3f\n", (long long)r.labelled,
           (long long)r.steps, r.first_loss, r.final_loss, r.test_top1, r.test_top5);
    CHECK(r.labelled == 300 && r.steps == 120); /* 30 per class; 6 batches of 50 x 20 epochs */
    CHECKF(r.final_loss < r.first_loss, "loss %.4f -> %.4f", r.first_loss, r.final_loss);
    CHECKF(r.test_top1 > 0.4, "test top-1 %.3f (chance 0.1)", r.test_top1);
    CHECK(isnan(r.random_init_top1));

    /* the recorded subset is sc_label_subset's */
    char p[600], line[128];
    snprintf(p, sizeof p, "%s/label_subset.txt", out);
    FILE *f = fopen(p, "r");
    CHECK(f != NULL);
    sc_dataset train;
    CHECK(sc_dataset_open(&cfg, SC_SPLIT_TRAIN, &train) == SC_OK);
    int64_t *idx, n, k = 0;
    CHECK(sc_label_subset(train.labels, train.count, 10, 0.5, 0, &idx, &n) == SC_OK && n == 300);
    int same = 1, per[10] = {0};
    while (f && fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        long long v = atoll(line);
        same = same && k < n && v == idx[k];
        if (v >= 0 && v < train.count) per[train.labels[v]]++;
        k++;
    }
    if (f) fclose(f);
    CHECK(same && k == n);
    for (int c = 0; c < 10; c++) CHECK(per[c] == 30);
    free(idx);
    sc_dataset_free(&train);

    const char *files[] = {"config.yaml", "log.txt", "metrics.jsonl", "report.json", "confusion.txt", "confusion.png",
                           "checkpoints/final.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        CHECKF(access(p, R_OK) == 0, "%s missing", files[i]);
    }
    /* the saved model is encoder + classifier, described by its own config */
    snprintf(p, sizeof p, "%s/checkpoints/final.safetensors", out);
    char *yaml = NULL;
    CHECK(sc_checkpoint_read_config(p, &yaml) == SC_OK);
    sc_config back;
    sc_config_defaults(&back);
    CHECK(yaml && sc_config_load_string(&back, yaml, "ckpt") == SC_OK);
    free(yaml);
    CHECK(back.model.head.layers == 1 && back.model.head.out_dim == 10 && back.model.head.bias == 1);
    mc = sc_model_config_from(&back, 1);
    CHECK(sc_model_create(&mc, be, SC_F32, &m) == SC_OK);
    CHECKF(sc_checkpoint_load(p, m, NULL, &ts, NULL) == SC_OK, "%s", sc_last_error());
    CHECK(ts.step == 120 && sc_params_find(sc_model_params(m), "head.0.bias") >= 0);
    sc_model_destroy(m);
    sc_backend_destroy(be);

    /* deterministic: the same run again gives the same accuracy */
    snprintf(out2, sizeof out2, "%s/ft2", tmp);
    CHECK(mkdir(out2, 0755) == 0);
    sc_finetune_result r2;
    CHECK(sc_finetune(&cfg, ckpt, out2, &r2) == SC_OK);
    CHECK(r2.test_top1 == r.test_top1 && r2.final_loss == r.final_loss);
}

int main(void) {
    if (access(SC_TINY_FASHION_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0)
        sc_test_skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)");
    snprintf(tmp, sizeof tmp, "/tmp/simclr_ft_XXXXXX");
    if (!mkdtemp(tmp)) sc_test_skip("cannot create a temporary directory");
    SC_RUN(test_finetune_end_to_end);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (sc_test_checks_failed == 0 && system(cmd) != 0) printf("note: could not remove %s\n", tmp);
    return sc_test_summary();
}
