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
    "  train          pretrain an encoder (default: Fashion-MNIST, a small ResNet-18, then a linear probe)\n"
    "  eval linear    linear probe of a trained encoder beside its random initialisation\n"
    "  preview        a PNG grid of the two augmented views of a few samples (what the model sees)\n"
    "  bench          benchmarks: simclr bench step | loader\n"
    "  info           devices, library versions and build options\n"
    "  help           this text; `simclr <command> --help` for a command's options\n"
    "\n"
    "examples:\n"
    "  simclr train                                   # the embedded Fashion-MNIST quickstart\n"
    "  simclr train --config configs/cifar10_resnet18.yaml --set data.path=/data/cifar10\n"
    "  simclr train --set train.epochs=5 --set optim.lr=0.5\n"
    "  simclr eval linear runs/fashion_mnist\n";

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

static volatile sig_atomic_t stop_signals = 0;

static void on_stop_signal(int sig) {
    (void)sig;
    if (stop_signals++ > 0) _exit(SC_EXIT_INTERRUPTED);
    static const char msg[] = "\nsimclr: stopping at the next step boundary and saving a checkpoint "
                              "(press Ctrl-C again to quit at once)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    sc_train_request_stop();
}

void sc_cli_install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

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
