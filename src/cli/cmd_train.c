/*
 * cmd_train.c - `simclr train`: build the config (embedded default or --config, then --set
 * overrides), run the trainer (a new run, or --resume auto|PATH), print a summary with the
 * linear-probe result. Resuming without --config starts from the checkpoint's stored config,
 * so `simclr train --resume auto` alone continues the run exactly as it was configured.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "simclr/train.h"

static const char train_usage[] =
    "usage: simclr train [--config FILE] [--set KEY=VALUE]... [--device DEV] [--name NAME] [--resume auto|PATH]\n"
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
    "  --resume auto|PATH continue a run where it stopped, bit for bit: auto = <run.dir>/<run.name>\n"
    "                     (its newest valid checkpoint; a new run there when it has none), or a run\n"
    "                     directory, or a checkpoint file. Without --config the checkpoint's config is\n"
    "                     used (--set still applies); keys that define the model must not change.\n"
    "  --print-config     print the resolved config and exit\n"
    "  -h, --help         this text\n"
    "\n"
    "Ctrl-C stops at the next step, saves a checkpoint and exits with 130; SIGTERM or SIGUSR1 (sent by\n"
    "schedulers before preemption) do the same and exit with 0. A second signal quits at once.\n"
    "\n"
    "config keys:\n";

static void print_summary(const sc_train_result *r) {
    printf("\nrun:        %s\n", r->run_dir);
    if (r->resumed_from > 0) printf("resumed:    from step %lld\n", (long long)r->resumed_from);
    if (r->already_complete) {
        printf("training:   already complete at step %lld: nothing to do\n", (long long)r->steps);
        return;
    }
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
    static const char *const own[] = {"--resume", NULL};
    sc_cli_opts opts;
    int code = sc_cli_parse_ex(argc, argv, &opts, train_usage, own);
    if (code >= 0) return code;
    const char *resume = opts.extra[0];
    if (opts.npos > 0) {
        fprintf(stderr, "simclr: error: unexpected argument '%s' (see simclr train --help)\n", opts.pos[0]);
        return SC_EXIT_USAGE;
    }
    sc_config cfg;
    sc_status st = sc_cli_build_config(&opts, opts.config_file ? NULL : sc_default_config_yaml,
                                       "<embedded configs/fashion_mnist.yaml>", &cfg);
    if (st != SC_OK) return sc_cli_fail(st);
    sc_resume_point rp;
    if (resume) {
        st = sc_resume_locate(&cfg, resume, &rp);
        if (st == SC_OK && !opts.config_file && rp.checkpoint[0]) st = sc_cli_checkpoint_config(&opts, rp.checkpoint, &cfg);
        if (st != SC_OK) return sc_cli_fail(st);
    }
    if (opts.print_config) {
        char *yaml = sc_config_to_yaml(&cfg);
        if (!yaml) return sc_cli_fail(sc_errorf(SC_ERR_NOMEM, "out of memory"));
        fputs(yaml, stdout);
        free(yaml);
        return SC_EXIT_OK;
    }
    sc_cli_install_stop_handlers();
    sc_train_result res;
    st = resume ? sc_train_resume(&cfg, &rp, &res) : sc_train(&cfg, &res);
    if (st == SC_OK || st == SC_ERR_INTERRUPTED) print_summary(&res);
    int sig = sc_cli_stop_signal();
    if (st == SC_ERR_INTERRUPTED && (sig == SIGTERM || sig == SIGUSR1)) {
        fprintf(stderr, "simclr: %s; exiting with status 0 (continue with: simclr train --resume auto ...)\n",
                sc_last_error());
        return SC_EXIT_OK;
    }
    return st == SC_OK ? SC_EXIT_OK : sc_cli_fail(st);
}
