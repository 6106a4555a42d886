/*
 * cmd_train.c - `simclr train`: build the config (embedded default or --config, then --set
 * overrides), run the trainer, print a summary with the linear-probe result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "simclr/train.h"

static const char train_usage[] =
    "usage: simclr train [--config FILE] [--set KEY=VALUE]... [--device DEV] [--name NAME]\n"
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
    "  --print-config     print the resolved config and exit\n"
    "  -h, --help         this text\n"
    "\n"
    "Ctrl-C (or SIGTERM) stops at the next step and saves a checkpoint; a second Ctrl-C quits at once.\n"
    "\n"
    "config keys:\n";

static void print_summary(const sc_train_result *r) {
    printf("\nrun:        %s\n", r->run_dir);
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

int sc_cmd_train(int argc, char **argv) {
    sc_cli_opts opts;
    int code = sc_cli_parse(argc, argv, &opts, train_usage);
    if (code >= 0) return code;
    if (opts.npos > 0) {
        fprintf(stderr, "simclr: error: unexpected argument '%s' (see simclr train --help)\n", opts.pos[0]);
        return SC_EXIT_USAGE;
    }
    sc_config cfg;
    sc_status st = sc_cli_build_config(&opts, opts.config_file ? NULL : sc_default_config_yaml,
                                       "<embedded configs/fashion_mnist.yaml>", &cfg);
    if (st != SC_OK) return sc_cli_fail(st);
    if (opts.print_config) {
        char *yaml = sc_config_to_yaml(&cfg);
        if (!yaml) return sc_cli_fail(sc_errorf(SC_ERR_NOMEM, "out of memory"));
        fputs(yaml, stdout);
        free(yaml);
        return SC_EXIT_OK;
    }
    sc_cli_install_stop_handlers();
    sc_train_result res;
    st = sc_train(&cfg, &res);
    if (st == SC_OK || st == SC_ERR_INTERRUPTED) print_summary(&res);
    return st == SC_OK ? SC_EXIT_OK : sc_cli_fail(st);
}
