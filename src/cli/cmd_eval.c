/*
 * cmd_eval.c - `simclr eval linear RUN_OR_CHECKPOINT`: rebuild the model from the config
 * stored in a checkpoint, load its weights, and run the linear probe beside the same encoder
 * at random initialisation.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "simclr/backend.h"
#include "simclr/checkpoint.h"
#include "simclr/data.h"
#include "simclr/eval.h"
#include "simclr/log.h"

static const char eval_usage[] =
    "usage: simclr eval linear RUN_DIR|CHECKPOINT [--set KEY=VALUE]... [--device DEV]\n"
    "\n"
    "Linear probe: logistic regression on the frozen encoder features of the train split,\n"
    "scored on the test split, printed beside the same encoder at random initialisation.\n"
    "RUN_DIR picks <RUN_DIR>/checkpoints/final.safetensors, else the newest step_*.safetensors.\n"
    "The config stored in the checkpoint is used; --set overrides keys such as\n"
    "eval.probe_train_samples, eval.probe_l2 or data.path.\n"
    "\n"
    "config keys:\n";

/* The checkpoint a run directory's evaluation should use. */
static sc_status resolve_checkpoint(const char *arg, char *out, size_t cap) {
    struct stat sb;
    if (stat(arg, &sb) != 0) return sc_errorf(SC_ERR_IO, "%s: no such run directory or checkpoint", arg);
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(out, cap, "%s", arg);
        return SC_OK;
    }
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/checkpoints", arg);
    snprintf(out, cap, "%s/final.safetensors", dir);
    if (stat(out, &sb) == 0) return SC_OK;
    DIR *d = opendir(dir);
    if (!d) return sc_errorf(SC_ERR_IO, "%s: no checkpoints directory", arg);
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "step_", 5) == 0 && n > 12 && strcmp(e->d_name + n - 12, ".safetensors") == 0 &&
            strcmp(e->d_name, best) > 0 && n < sizeof best)
            snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(d);
    if (!best[0]) return sc_errorf(SC_ERR_IO, "%s: no checkpoint found in %s", arg, dir);
    snprintf(out, cap, "%s/%s", dir, best);
    return SC_OK;
}

int sc_cmd_eval(int argc, char **argv) {
    sc_cli_opts opts;
    int code = sc_cli_parse(argc, argv, &opts, eval_usage);
    if (code >= 0) return code;
    if (opts.npos != 2 || strcmp(opts.pos[0], "linear") != 0 || opts.config_file) {
        fputs(eval_usage, stderr);
        return SC_EXIT_USAGE;
    }
    char ckpt[1200];
    char *yaml = NULL;
    sc_status st = resolve_checkpoint(opts.pos[1], ckpt, sizeof ckpt);
    if (st == SC_OK) st = sc_checkpoint_read_config(ckpt, &yaml);
    sc_config cfg;
    if (st == SC_OK) st = sc_cli_build_config(&opts, yaml, ckpt, &cfg);
    free(yaml);
    if (st != SC_OK) return sc_cli_fail(st);

    sc_backend *be = NULL;
    sc_model *model = NULL;
    sc_dataset probe_data = {0};
    sc_probe_report rep;
    sc_backend_options bo = {.threads = cfg.run.threads};
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
        st = sc_checkpoint_load(ckpt, model, NULL, NULL);
    }
    if (st == SC_OK) st = sc_linear_probe(model, &cfg, &rep);
    if (st == SC_OK) {
        printf("checkpoint: %s\n", ckpt);
        printf("linear probe (%lld train / %lld test images, %d features, l2 %g, %.1f s):\n",
               (long long)rep.train_samples, (long long)rep.test_samples, rep.feature_dim, cfg.eval.probe_l2, rep.seconds);
        printf("  pretrained encoder:  %6.2f %% test accuracy  (train %6.2f %%)\n", 100.0 * rep.pretrained.test_accuracy,
               100.0 * rep.pretrained.train_accuracy);
        printf("  random init:         %6.2f %% test accuracy  (train %6.2f %%)\n", 100.0 * rep.random_init.test_accuracy,
               100.0 * rep.random_init.train_accuracy);
    }
    sc_dataset_free(&probe_data);
    sc_model_destroy(model);
    sc_backend_destroy(be);
    return st == SC_OK ? SC_EXIT_OK : sc_cli_fail(st);
}
