/*
 * cmd_eval.c - `simclr eval linear|knn RUN_OR_CHECKPOINT`: rebuild the model from the config
 * stored in a checkpoint, load its weights, and run the linear protocol or the kNN evaluation
 * beside the same encoder at random initialisation. Reports go to <run>/eval/<checkpoint>/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "simclr/backend.h"
#include "simclr/checkpoint.h"
#include "simclr/data.h"
#include "simclr/eval.h"
#include "simclr/train.h"
#include "simclr/log.h"

static const char eval_usage[] =
    "usage: simclr eval linear|knn RUN_DIR|CHECKPOINT [--set KEY=VALUE]... [--device DEV]\n"
    "\n"
    "Judge a pretrained encoder on its frozen features (extracted once, evaluation transform),\n"
    "beside the same encoder at random initialisation:\n"
    "  linear   logistic regression (L-BFGS) on standardised features; the L2 penalty is chosen\n"
    "           on a held-out part of the train split (eval.probe_holdout) from a log-spaced grid\n"
    "           (eval.probe_l2_min/max/points), then refit on the whole train split\n"
    "  knn      weighted kNN: k = eval.knn_k cosine neighbours vote exp(cos / eval.knn_temperature)\n"
    "Both report top-1/top-5 on the test split and write <run>/eval/<checkpoint>/<protocol>.json\n"
    "(per-class precision/recall/F1, macro and weighted averages, confusion matrix),\n"
    "<protocol>_confusion.txt and <protocol>_confusion.png.\n"
    "RUN_DIR picks <RUN_DIR>/checkpoints/final.safetensors, else the newest step_*.safetensors.\n"
    "The config stored in the checkpoint is used; --set overrides keys such as\n"
    "eval.probe_train_samples, eval.knn_k or data.path.\n"
    "\n"
    "config keys:\n";

static void print_linear(const char *who, const sc_logreg_result *r) {
    printf("  %-20s %6.2f %% top-1  %6.2f %% top-5  (train %6.2f %%, l2 %.3g)\n", who, 100.0 * r->test_accuracy,
           100.0 * r->test_top5, 100.0 * r->train_accuracy, r->l2);
}

int sc_cmd_eval(int argc, char **argv) {
    sc_cli_opts opts;
    int code = sc_cli_parse(argc, argv, &opts, eval_usage);
    if (code >= 0) return code;
    unsigned what = 0;
    if (opts.npos == 2 && strcmp(opts.pos[0], "linear") == 0) what = SC_EVAL_LINEAR;
    if (opts.npos == 2 && strcmp(opts.pos[0], "knn") == 0) what = SC_EVAL_KNN;
    if (!what || opts.config_file) {
        fputs(eval_usage, stderr);
        return SC_EXIT_USAGE;
    }
    char ckpt[1200], run_dir[1200], stem[256], report_dir[1600];
    sc_status st = sc_cli_resolve_checkpoint(opts.pos[1], ckpt, sizeof ckpt, NULL, run_dir, sizeof run_dir);
    sc_config cfg;
    if (st == SC_OK) st = sc_cli_checkpoint_config(&opts, ckpt, &cfg);
    if (st != SC_OK) return sc_cli_fail(st);
    sc_cli_checkpoint_stem(ckpt, stem, sizeof stem);
    snprintf(report_dir, sizeof report_dir, "%s/eval/%s", run_dir, stem);

    sc_backend *be = NULL;
    sc_model *model = NULL;
    sc_dataset probe_data = {0};
    sc_probe_report rep;
    sc_backend_options bo = sc_train_backend_options(&cfg);
    st = sc_backend_create(cfg.run.device, &bo, &be);
    /* the input channel count comes from the data, as in training */
    if (st == SC_OK) st = sc_dataset_open(&cfg, SC_SPLIT_TEST, &probe_data);
    sc_augment_params aug;
    if (st == SC_OK) st = sc_augment_params_from_config(&cfg, &probe_data, &aug);
    if (st == SC_OK) {
        sc_model_config mc = sc_model_config_from(&cfg, aug.out_channels);
        st = sc_model_create(&mc, be, SC_F32, &model);
    }
    if (st == SC_OK) {
        SC_INFO("loading %s", ckpt);
        st = sc_checkpoint_load(ckpt, model, NULL, NULL, NULL);
    }
    if (st == SC_OK) st = sc_evaluate_encoder(model, &cfg, what, report_dir, ckpt, &rep);
    if (st == SC_OK) {
        printf("checkpoint: %s\n", ckpt);
        if (what == SC_EVAL_LINEAR) {
            printf("linear evaluation (%lld train / %lld test images, %d features, %.1f s):\n", (long long)rep.train_samples,
                   (long long)rep.test_samples, rep.feature_dim, rep.seconds);
            if (rep.pretrained.grid_count > 0) {
                printf("  l2 chosen on %lld held-out train images from", (long long)rep.pretrained.holdout_samples);
                for (int g = 0; g < rep.pretrained.grid_count; g++)
                    printf(" %.3g (%.2f %%)", rep.pretrained.grid_l2[g], 100.0 * rep.pretrained.grid_holdout_accuracy[g]);
                printf("\n");
            }
            print_linear("pretrained encoder:", &rep.pretrained);
            print_linear("random init:", &rep.random_init);
        } else {
            printf("kNN evaluation (k %d, t %g, %lld train / %lld test images, %d features, %.1f s):\n",
                   rep.knn_pretrained.k, rep.knn_pretrained.temperature, (long long)rep.train_samples,
                   (long long)rep.test_samples, rep.feature_dim, rep.seconds);
            printf("  %-20s %6.2f %% top-1  %6.2f %% top-5\n", "pretrained encoder:", 100.0 * rep.knn_pretrained.top1,
                   100.0 * rep.knn_pretrained.top5);
            printf("  %-20s %6.2f %% top-1  %6.2f %% top-5\n", "random init:", 100.0 * rep.knn_random_init.top1,
                   100.0 * rep.knn_random_init.top5);
        }
        printf("report:     %s/%s.json\n", report_dir, what == SC_EVAL_LINEAR ? "linear" : "knn");
    }
    sc_dataset_free(&probe_data);
    sc_model_destroy(model);
    sc_backend_destroy(be);
    return st == SC_OK ? SC_EXIT_OK : sc_cli_fail(st);
}
