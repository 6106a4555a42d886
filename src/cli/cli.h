/*
 * cli.h - the subcommands of the `simclr` binary and what they share.
 *
 * Exit codes: 0 success (also: stopped by SIGTERM or SIGUSR1 after saving a checkpoint, the
 * preemption signals, so that a scheduler requeues the job), 1 runtime failure (I/O, data,
 * device), 2 usage or configuration error, 130 stopped by Ctrl-C after saving a checkpoint,
 * 128 + signal when a second signal ends the process at once.
 */
#ifndef SIMCLR_CLI_H
#define SIMCLR_CLI_H

#include "simclr/checkpoint.h"
#include "simclr/config.h"
#include "simclr/status.h"

enum { SC_EXIT_OK = 0, SC_EXIT_FAIL = 1, SC_EXIT_USAGE = 2, SC_EXIT_INTERRUPTED = 130 };

int sc_cmd_train(int argc, char **argv);
int sc_cmd_eval(int argc, char **argv);
int sc_cmd_info(int argc, char **argv);
int sc_cmd_bench(int argc, char **argv);
int sc_cmd_export(int argc, char **argv);
int sc_cmd_embed(int argc, char **argv);
int sc_cmd_finetune(int argc, char **argv);
int sc_cmd_preview(int argc, char **argv);

/* Benchmarks, one per file (src/cli/bench_<name>.c), dispatched by cmd_bench.c. */
int sc_bench_step(int argc, char **argv);
int sc_bench_ntxent(int argc, char **argv);
int sc_bench_lars(int argc, char **argv);
int sc_bench_loader(int argc, char **argv);
int sc_bench_allreduce(int argc, char **argv);

/* bench_util.c: shared by the benchmarks */
typedef struct sc_bench_stats {
    double median, p10, p90;
} sc_bench_stats;
double sc_bench_now(void);                            /* seconds, monotonic */
sc_bench_stats sc_bench_summarise(double *ms, int n); /* sorts ms */
void sc_bench_stamp(char date[32], char host[64]);    /* UTC date, host name */

/* Print "simclr: error: <last error>" and map the status to an exit code. */
int sc_cli_fail(sc_status st);
/* Install SIGINT/SIGTERM/SIGUSR1 handlers: the first signal asks the trainer to stop at the
 * next step boundary (it saves a checkpoint), a second one exits at once (128 + signal). */
void sc_cli_install_stop_handlers(void);
/* The first stop signal received (0 when none). */
int sc_cli_stop_signal(void);

/* Options shared by the subcommands that take a config. */
#define SC_CLI_MAX_SETS 128
typedef struct sc_cli_opts {
    const char *config_file;           /* --config */
    char sets[SC_CLI_MAX_SETS][600];   /* --set, --device, --name as "key=value", in order */
    int nsets;
    const char *pos[4];                /* positional arguments */
    int npos;
    int print_config;                  /* --print-config */
    const char *extra[8];              /* values of the command's own options (sc_cli_parse_ex) */
} sc_cli_opts;

/* Parse argv[1..]. On --help prints usage_text and the config keys. Returns an exit code,
 * or -1 to continue. */
int sc_cli_parse(int argc, char **argv, sc_cli_opts *o, const char *usage_text);
/* The same, also accepting the value-taking options named in `extra` (NULL-terminated, at
 * most 8, e.g. {"--out", "--format", NULL}); o->extra[i] receives the value of extra[i]. */
int sc_cli_parse_ex(int argc, char **argv, sc_cli_opts *o, const char *usage_text, const char *const *extra);
/* defaults -> base YAML (if any) -> --config file (if any) -> --set overrides -> validate. */
sc_status sc_cli_build_config(const sc_cli_opts *o, const char *base_yaml, const char *base_name, sc_config *cfg);

/* A RUN_DIR|CHECKPOINT argument: a run directory gives its newest valid checkpoint (falling
 * back past corrupt ones with a warning), a file is validated. ts (may be NULL) receives its state;
 * run_dir (may be NULL) the run the checkpoint belongs to (the parent of its checkpoints/
 * directory, else its own directory). */
sc_status sc_cli_resolve_checkpoint(const char *arg, char *out, size_t cap, sc_train_state *ts, char *run_dir,
                                    size_t run_cap);
/* The checkpoint's stored config with the --set overrides of `o` applied. */
sc_status sc_cli_checkpoint_config(const sc_cli_opts *o, const char *ckpt, sc_config *cfg);
/* "final" for ".../final.safetensors". */
void sc_cli_checkpoint_stem(const char *ckpt, char *out, size_t cap);

#endif /* SIMCLR_CLI_H */
