/*
 * cli_checkpoint.c - which checkpoint a RUN_DIR|CHECKPOINT argument names and which run directory
 * it belongs to (shared by eval, finetune, export and embed). A run directory gives its newest
 * valid checkpoint, so a run killed mid-save still evaluates; a file is validated before use.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* The run a checkpoint file belongs to: <run>/checkpoints/<file> -> <run>; any other file -> its directory. */
static void run_of_file(const char *path, char *run_dir, size_t run_cap) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        snprintf(run_dir, run_cap, ".");
        return;
    }
    *slash = '\0'; /* dir is the checkpoint's directory */
    char *up = strrchr(dir, '/');
    if (strcmp(up ? up + 1 : dir, "checkpoints") == 0) {
        if (up)
            *up = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    }
    snprintf(run_dir, run_cap, "%s", dir[0] ? dir : "/");
}

sc_status sc_cli_resolve_checkpoint(const char *arg, char *out, size_t cap, sc_train_state *ts, char *run_dir,
                                    size_t run_cap) {
    struct stat sb;
    if (stat(arg, &sb) != 0) return sc_errorf(SC_ERR_IO, "%s: no such run directory or checkpoint", arg);
    if (strlen(arg) >= cap) return sc_errorf(SC_ERR_IO, "%s: path too long", arg);
    if (S_ISDIR(sb.st_mode)) {
        if (run_dir) snprintf(run_dir, run_cap, "%s", arg);
        return sc_checkpoint_find_latest(arg, out, cap, NULL, ts);
    }
    snprintf(out, cap, "%s", arg);
    if (run_dir) run_of_file(arg, run_dir, run_cap);
    return sc_checkpoint_verify(arg, ts);
}

void sc_cli_checkpoint_stem(const char *ckpt, char *out, size_t cap) {
    const char *base = strrchr(ckpt, '/') ? strrchr(ckpt, '/') + 1 : ckpt;
    snprintf(out, cap, "%s", base);
    char *dot = strstr(out, ".safetensors");
    if (dot && dot != out) *dot = '\0';
}
