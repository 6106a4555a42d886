/*
 * cli_checkpoint.c - which checkpoint a RUN_DIR|CHECKPOINT argument names, and which run
 * directory it belongs to (shared by `simclr eval` and `simclr finetune`).
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

sc_status sc_cli_resolve_checkpoint(const char *arg, char *ckpt, size_t cap, char *run_dir, size_t run_cap) {
    struct stat sb;
    if (stat(arg, &sb) != 0) return sc_errorf(SC_ERR_IO, "%s: no such run directory or checkpoint", arg);
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(ckpt, cap, "%s", arg);
        /* <run>/checkpoints/<file>: the run is two levels up; any other file: its directory */
        char dir[1200];
        snprintf(dir, sizeof dir, "%s", arg);
        char *slash = strrchr(dir, '/');
        if (!slash) {
            snprintf(run_dir, run_cap, ".");
            return SC_OK;
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
        return SC_OK;
    }
    snprintf(run_dir, run_cap, "%s", arg);
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/checkpoints", arg);
    snprintf(ckpt, cap, "%s/final.safetensors", dir);
    if (stat(ckpt, &sb) == 0) return SC_OK;
    DIR *d = opendir(dir);
    if (!d) return sc_errorf(SC_ERR_IO, "%s: no checkpoints directory", arg);
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "step_", 5) == 0 && n > 12 && strcmp(e->d_name + n - 12, ".safetensors") == 0 &&
            strcmp(e->d_name, best) > 0 && n < sizeof best)
            snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(d);
    if (!best[0]) return sc_errorf(SC_ERR_IO, "%s: no checkpoint found in %s", arg, dir);
    snprintf(ckpt, cap, "%s/%s", dir, best);
    return SC_OK;
}

void sc_cli_checkpoint_stem(const char *ckpt, char *out, size_t cap) {
    const char *base = strrchr(ckpt, '/') ? strrchr(ckpt, '/') + 1 : ckpt;
    snprintf(out, cap, "%s", base);
    char *dot = strstr(out, ".safetensors");
    if (dot && dot != out) *dot = '\0';
}
