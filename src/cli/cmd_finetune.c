/*
 * cmd_finetune.c - `simclr finetune RUN_OR_CHECKPOINT --label-fraction F`: fine-tune a
 * pretrained encoder plus a linear classifier on a class-balanced fraction of the labels and
 * score it on the test split, beside the same recipe from the random initialisation.
 * Outputs go to <run>/finetune/labels-<percent>pct[-N]/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "simclr/checkpoint.h"
#include "simclr/eval.h"
#include "simclr/train.h"

static const char finetune_usage[] =
    "usage: simclr finetune RUN_DIR|CHECKPOINT [--label-fraction F] [--set KEY=VALUE]... [--device DEV]\n"
    "\n"
    "Fine-tune the whole encoder of a checkpoint plus a new linear classifier on a class-balanced\n"
    "fraction F (0 < F <= 1, default finetune.label_fraction) of the train split's labels, with\n"
    "Nesterov SGD, crop + flip augmentation, no warmup and a cosine schedule (SimCLR's recipe:\n"
    "1% of the labels for 60 epochs, 10% for 30). The subset is chosen by finetune.subset_seed and\n"
    "its indices are recorded. The test split is scored (top-1/top-5, per-class metrics,\n"
    "confusion matrix); with finetune.baseline the same recipe runs from the random init.\n"
    "Outputs: <run>/finetune/labels-<percent>pct/ with config.yaml, log.txt, metrics.jsonl,\n"
    "label_subset.txt, report.json, confusion.txt, confusion.png, checkpoints/final.safetensors.\n"
    "\n"
    "options:\n"
    "  --label-fraction F   same as --set finetune.label_fraction=F\n"
    "  --set KEY=VALUE      override a key of the checkpoint's config (finetune.*, data.path, ...)\n"
    "  --device DEV         auto | cpu | cuda | cuda:N\n"
    "\n"
    "config keys:\n";

int sc_cmd_finetune(int argc, char **argv) {
    /* --label-fraction F is spelled as an override before the shared parser sees argv */
    char **args = calloc((size_t)argc + 1, sizeof *args);
    char frac[600];
    if (!args) return sc_cli_fail(sc_errorf(SC_ERR_NOMEM, "out of memory"));
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--label-fraction") == 0) {
            if (i + 1 >= argc) {
                free(args);
                fprintf(stderr, "simclr: error: --label-fraction needs a value\n");
                return SC_EXIT_USAGE;
            }
            snprintf(frac, sizeof frac, "finetune.label_fraction=%s", argv[++i]);
            args[n++] = "--set";
            args[n++] = frac;
        } else {
            args[n++] = argv[i];
        }
    }
    sc_cli_opts opts;
    int code = sc_cli_parse(n, args, &opts, finetune_usage);
    free(args);
    if (code >= 0) return code;
    if (opts.npos != 1 || opts.config_file) {
        fputs(finetune_usage, stderr);
        return SC_EXIT_USAGE;
    }
    char ckpt[1200], run_dir[1200], base[1300], name[64], out[1400];
    sc_status st = sc_cli_resolve_checkpoint(opts.pos[0], ckpt, sizeof ckpt, NULL, run_dir, sizeof run_dir);
    sc_config cfg;
    if (st == SC_OK) st = sc_cli_checkpoint_config(&opts, ckpt, &cfg);
    if (st != SC_OK) return sc_cli_fail(st);
    snprintf(base, sizeof base, "%s/finetune", run_dir);
    snprintf(name, sizeof name, "labels-%gpct", 100.0 * cfg.finetune.label_fraction);
    st = sc_run_dir_create(base, name, out, sizeof out);
    sc_finetune_result r;
    if (st == SC_OK) st = sc_finetune(&cfg, ckpt, out, &r);
    if (st != SC_OK) return sc_cli_fail(st);
    printf("checkpoint:  %s\n", ckpt);
    printf("fine-tuned:  %lld labelled images (%g of the labels), %lld steps in %.1f s, loss %.4f -> %.4f\n",
           (long long)r.labelled, cfg.finetune.label_fraction, (long long)r.steps, r.seconds, r.first_loss, r.final_loss);
    printf("  pretrained encoder:  %6.2f %% top-1  %6.2f %% top-5\n", 100.0 * r.test_top1, 100.0 * r.test_top5);
    if (cfg.finetune.baseline)
        printf("  random init:         %6.2f %% top-1  %6.2f %% top-5\n", 100.0 * r.random_init_top1,
               100.0 * r.random_init_top5);
    printf("outputs:     %s\n", r.dir);
    return SC_EXIT_OK;
}
