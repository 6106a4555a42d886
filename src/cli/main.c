/*
 * main.c - entry point of the `simclr` binary: dispatches to a subcommand.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "simclr/version.h"
#include "simclr/train.h"

static const char usage[] =
    "usage: simclr <command> [options]\n"
    "\n"
    "SimCLR self-supervised pretraining of image encoders (C + CUDA).\n"
    "\n"
    "commands:\n"
    "  train          pretrain an encoder (default: Fashion-MNIST, a small ResNet-18, then a linear probe);\n"
    "                 --resume auto|PATH continues a stopped run exactly\n"
    "  eval linear    linear evaluation protocol of a trained encoder beside its random initialisation\n"
    "  eval knn       weighted kNN evaluation (k 200, t 0.1, cosine) beside the random initialisation\n"
    "  finetune       fine-tune encoder + linear classifier on a fraction of the labels\n"
    "  export         the encoder as a safetensors file in torchvision's (or timm's) names, OIHW fp32\n"
    "  embed          encoder features of a dataset split, to a safetensors file\n"
    "  preview        a PNG grid of the two augmented views of a few samples (what the model sees)\n"
    "  bench          benchmarks: simclr bench step | ntxent | lars | loader\n"
    "  info           devices and library versions (for bug reports)\n"
    "  help           this text; `simclr <command> --help` for a command's options\n"
    "\n"
    "examples:\n"
    "  simclr train                                   # the embedded Fashion-MNIST quickstart\n"
    "  simclr train --config configs/cifar10_resnet18.yaml --set data.path=/data/cifar10\n"
    "  simclr train --set train.epochs=5 --set optim.lr=0.5\n"
    "  simclr train --resume auto                     # continue runs/<run.name> (or start it)\n"
    "  simclr eval linear runs/fashion_mnist\n"
    "  simclr export runs/fashion_mnist --out encoder.safetensors\n"
    "  simclr finetune runs/fashion_mnist --label-fraction 0.1\n"
    "  python3 tools/plot_run.py runs/fashion_mnist     # loss, lr, kNN, throughput curves as PNG\n";

int sc_cli_fail(sc_status st) {
    fprintf(stderr, "simclr: error: %s\n", sc_last_error()[0] ? sc_last_error() : sc_status_name(st));
    switch (st) {
    case SC_OK: return SC_EXIT_OK;
    case SC_ERR_CONFIG:
    case SC_ERR_ARG: return SC_EXIT_USAGE;
    case SC_ERR_INTERRUPTED: return SC_EXIT_INTERRUPTED;
    default: return SC_EXIT_FAIL;
    }
}

static volatile sig_atomic_t stop_signals = 0, first_stop_signal = 0;

/* SIGINT is the user's Ctrl-C (exit 130 after the checkpoint); SIGTERM and SIGUSR1 are what
 * cluster schedulers send before preemption (exit 0 after the checkpoint, so the job is
 * requeued and continues with --resume auto). Only async-signal-safe calls here. */
static void on_stop_signal(int sig) {
    if (stop_signals++ > 0) _exit(128 + sig);
    first_stop_signal = sig;
    static const char ctrl_c[] = "\nsimclr: stopping at the next step boundary and saving a checkpoint "
                                 "(press Ctrl-C again to quit at once)\n";
    static const char term[] = "\nsimclr: SIGTERM/SIGUSR1: saving a checkpoint at the next step boundary, then "
                               "exiting with status 0 (a second signal exits at once)\n";
    ssize_t w = sig == SIGINT ? write(STDERR_FILENO, ctrl_c, sizeof ctrl_c - 1) : write(STDERR_FILENO, term, sizeof term - 1);
    (void)w;
    sc_train_request_stop();
}

void sc_cli_install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int sc_cli_stop_signal(void) { return first_stop_signal; }

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage, stderr);
        return SC_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "train") == 0) return sc_cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0) return sc_cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0) return sc_cmd_info(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) return sc_cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0) return sc_cmd_export(argc - 1, argv + 1);
    if (strcmp(cmd, "embed") == 0) return sc_cmd_embed(argc - 1, argv + 1);
    if (strcmp(cmd, "finetune") == 0) return sc_cmd_finetune(argc - 1, argv + 1);
    if (strcmp(cmd, "preview") == 0) return sc_cmd_preview(argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage, stdout);
        return SC_EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("simclr %s\n", sc_version);
        return SC_EXIT_OK;
    }
    fprintf(stderr, "simclr: unknown command '%s'\n\n%s", cmd, usage);
    return SC_EXIT_USAGE;
}
