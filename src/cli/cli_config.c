/*
 * cli_config.c - command-line options shared by the subcommands that take a config:
 * --config FILE, --set KEY=VALUE (repeatable), --device DEV, --name NAME, --print-config,
 * plus each command's own value-taking options; and the RUN_DIR|CHECKPOINT argument of the
 * commands that read a checkpoint (eval, export, embed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

int sc_cli_parse(int argc, char **argv, sc_cli_opts *o, const char *usage_text) {
    return sc_cli_parse_ex(argc, argv, o, usage_text, NULL);
}

int sc_cli_parse_ex(int argc, char **argv, sc_cli_opts *o, const char *usage_text, const char *const *extra) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int own = -1;
        for (int k = 0; extra && extra[k] && k < 8; k++)
            if (!strcmp(a, extra[k])) own = k;
        if (own >= 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "simclr: error: %s needs a value\n", a);
                return SC_EXIT_USAGE;
            }
            o->extra[own] = argv[++i];
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            sc_config_print_help(stdout);
            return SC_EXIT_OK;
        }
        if (!strcmp(a, "--print-config")) {
            o->print_config = 1;
            continue;
        }
        if (!strcmp(a, "--config") || !strcmp(a, "--set") || !strcmp(a, "--device") || !strcmp(a, "--name")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "simclr: error: %s needs a value\n", a);
                return SC_EXIT_USAGE;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--config")) {
                o->config_file = v;
                continue;
            }
            if (o->nsets == SC_CLI_MAX_SETS) {
                fprintf(stderr, "simclr: error: more than %d overrides\n", SC_CLI_MAX_SETS);
                return SC_EXIT_USAGE;
            }
            const char *key = !strcmp(a, "--device") ? "run.device=" : !strcmp(a, "--name") ? "run.name=" : "";
            int n = snprintf(o->sets[o->nsets], sizeof o->sets[0], "%s%s", key, v);
            if (n < 0 || n >= (int)sizeof o->sets[0]) {
                fprintf(stderr, "simclr: error: %s value too long\n", a);
                return SC_EXIT_USAGE;
            }
            o->nsets++;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "simclr: error: unknown option '%s' (see --help)\n", a);
            return SC_EXIT_USAGE;
        }
        if (o->npos == (int)(sizeof o->pos / sizeof o->pos[0])) {
            fprintf(stderr, "simclr: error: unexpected argument '%s' (see --help)\n", a);
            return SC_EXIT_USAGE;
        }
        o->pos[o->npos++] = a;
    }
    return -1;
}

sc_status sc_cli_build_config(const sc_cli_opts *o, const char *base_yaml, const char *base_name, sc_config *cfg) {
    sc_config_defaults(cfg);
    if (base_yaml) SC_TRY(sc_config_load_string(cfg, base_yaml, base_name));
    if (o->config_file) SC_TRY(sc_config_load_file(cfg, o->config_file));
    for (int i = 0; i < o->nsets; i++) SC_TRY(sc_config_set(cfg, o->sets[i]));
    return sc_config_validate(cfg);
}

sc_status sc_cli_checkpoint_config(const sc_cli_opts *o, const char *ckpt, sc_config *cfg) {
    char *yaml = NULL;
    SC_TRY(sc_checkpoint_read_config(ckpt, &yaml));
    sc_status st = sc_cli_build_config(o, yaml, ckpt, cfg);
    free(yaml);
    return st;
}
