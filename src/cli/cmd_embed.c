/*
 * cmd_embed.c - `simclr embed RUN_OR_CKPT --out FILE [--split train|test] [--limit N]`: the
 * encoder features h of a dataset split, in evaluation mode (BN running statistics, the eval
 * transform: whole image resized to the view size, no augmentation), for downstream use.
 *
 * The output is a safetensors file: "features" F32 [N, F] in dataset order, "labels" I32 [N]
 * when the dataset is labelled, and metadata (checkpoint, step, dataset, split, count,
 * feature_dim, image_size, transform).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "simclr/backend.h"
#include "simclr/eval.h"
#include "simclr/safetensors.h"
#include "simclr/train.h"

static const char embed_usage[] =
    "usage: simclr embed RUN_DIR|CHECKPOINT --out FILE [--split train|test] [--limit N] [--set KEY=VALUE]... "
    "[--device DEV]\n"
    "\n"
    "Encoder features (evaluation mode, no augmentation) of the first N images (default: all) of a\n"
    "split (default: test) of the checkpoint's dataset, written as safetensors: features F32 [N, F],\n"
    "labels I32 [N]. --set changes keys such as data.path, eval.batch_size or data.workers.\n"
    "\n"
    "config keys:\n";

int sc_cmd_embed(int argc, char **argv) {
    static const char *const own[] = {"--out", "--split", "--limit", NULL};
    sc_cli_opts opts;
    int code = sc_cli_parse_ex(argc, argv, &opts, embed_usage, own);
    if (code >= 0) return code;
    const char *out = opts.extra[0], *split_s = opts.extra[1] ? opts.extra[1] : "test";
    if (opts.npos != 1 || !out || opts.config_file) {
        fputs(embed_usage, stderr);
        return SC_EXIT_USAGE;
    }
    sc_split split;
    if (!strcmp(split_s, "train")) split = SC_SPLIT_TRAIN;
    else if (!strcmp(split_s, "test")) split = SC_SPLIT_TEST;
    else return sc_cli_fail(sc_errorf(SC_ERR_ARG, "--split %s: expected train or test", split_s));
    long long limit = 0;
    if (opts.extra[2]) {
        char *end;
        limit = strtoll(opts.extra[2], &end, 10);
        if (*opts.extra[2] == '\0' || *end != '\0' || limit < 1)
            return sc_cli_fail(sc_errorf(SC_ERR_ARG, "--limit %s: expected a positive integer", opts.extra[2]));
    }

    char ckpt[1200];
    sc_train_state ts;
    sc_config cfg;
    sc_status st = sc_cli_resolve_checkpoint(opts.pos[0], ckpt, sizeof ckpt, &ts, NULL, 0);
    if (st == SC_OK) st = sc_cli_checkpoint_config(&opts, ckpt, &cfg);
    if (st != SC_OK) return sc_cli_fail(st);

    sc_backend *be = NULL;
    sc_model *model = NULL;
    sc_dataset ds = {0};
    float *features = NULL;
    int64_t count = 0;
    sc_backend_options bo = sc_train_backend_options(&cfg);
    st = sc_backend_create(cfg.run.device, &bo, &be);
    if (st == SC_OK) st = sc_dataset_open(&cfg, split, &ds);
    sc_augment_params aug;
    if (st == SC_OK) st = sc_augment_params_from_config(&cfg, &ds, &aug);
    if (st == SC_OK) {
        sc_model_config mc = sc_model_config_from(&cfg, aug.out_channels);
        st = sc_model_create(&mc, be, SC_F32, &model);
    }
    if (st == SC_OK) st = sc_checkpoint_load(ckpt, model, NULL, NULL, NULL);
    if (st == SC_OK)
        st = sc_extract_features(model, &ds, &aug, cfg.eval.batch_size, cfg.data.workers, limit, &features, &count);
    if (st == SC_OK) {
        int f = sc_model_feature_dim(model);
        sc_st_entry e[2] = {{.name = "features", .dtype = SC_F32, .ndim = 2, .shape = {count, f}, .data = features},
                            {.name = "labels", .dtype = SC_I32, .ndim = 1, .shape = {count}, .data = ds.labels}};
        char step[32], n[32], fdim[16], size[16];
        snprintf(step, sizeof step, "%" PRId64, ts.step);
        snprintf(n, sizeof n, "%" PRId64, count);
        snprintf(fdim, sizeof fdim, "%d", f);
        snprintf(size, sizeof size, "%d", aug.out_size);
        sc_st_meta meta[] = {
            {"format", "simclr-embed"}, {"checkpoint", ckpt}, {"step", step}, {"dataset", ds.name},
            {"split", split_s}, {"count", n}, {"feature_dim", fdim}, {"image_size", size},
            {"transform", "whole image resized to image_size (bilinear), / 255, channels converted, normalised "
                          "with data.mean/std; encoder in evaluation mode (BN running statistics)"},
        };
        st = sc_safetensors_write(out, e, ds.labels ? 2 : 1, meta, (int)(sizeof meta / sizeof meta[0]));
        if (st == SC_OK)
            printf("wrote %lld x %d features of %s (checkpoint %s, step %lld) to %s\n", (long long)count, f, ds.name,
                   ckpt, (long long)ts.step, out);
    }
    free(features);
    sc_dataset_free(&ds);
    sc_model_destroy(model);
    sc_backend_destroy(be);
    return st == SC_OK ? SC_EXIT_OK : sc_cli_fail(st);
}
