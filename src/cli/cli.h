/*
 * cli.h - the subcommands of the `simclr` binary and what they share.
 *
 * Exit codes: 0 success, 1 runtime failure (I/O, data, device), 2 usage or configuration
 * error, 130 stopped by Ctrl-C / SIGTERM after saving a checkpoint.
 */
#ifndef SIMCLR_CLI_H
#define SIMCLR_CLI_H

#include "simclr/config.h"
#include "simclr/status.h"

enum { SC_EXIT_OK = 0, SC_EXIT_FAIL = 1, SC_EXIT_USAGE = 2, SC_EXIT_INTERRUPTED = 130 };

int sc_cmd_train(int argc, char **argv);
int sc_cmd_eval(int argc, char **argv);
int sc_cmd_info(int argc, char **argv);
int sc_cmd_bench(int argc, char **argv);
int sc_cmd_preview(int argc, char **argv);

/* Benchmarks, one per file (src/cli/bench_<name>.c), dispatched by cmd_bench.c. */
int sc_bench_step(int argc, char **argv);
int sc_bench_loader(int argc, char **argv);

/* Print "simclr: error: <last error>" and map the status to an exit code. */
int sc_cli_fail(sc_status st);
/* Install SIGINT/SIGTERM handlers: the first asks the trainer to stop at the next step
 * boundary (it saves a checkpoint), the second exits at once. */
void sc_cli_install_stop_handlers(void);

/* Options shared by the subcommands that take a config. */
#define SC_CLI_MAX_SETS 128
typedef struct sc_cli_opts {
    const char *config_file;           /* --config */
    char sets[SC_CLI_MAX_SETS][600];   /* --set, --device, --name as "key=value", in order */
    int nsets;
    const char *pos[4];                /* positional arguments */
    int npos;
    int print_config;                  /* --print-config */
} sc_cli_opts;

/* Parse argv[1..]. On --help prints usage_text and the config keys. Returns an exit code,
 * or -1 to continue. */
int sc_cli_parse(int argc, char **argv, sc_cli_opts *o, const char *usage_text);
/* defaults -> base YAML (if any) -> --config file (if any) -> --set overrides -> validate. */
sc_status sc_cli_build_config(const sc_cli_opts *o, const char *base_yaml, const char *base_name, sc_config *cfg);

#endif /* SIMCLR_CLI_H */
