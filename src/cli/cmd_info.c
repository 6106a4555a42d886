/*
 * cmd_info.c - `simclr info`: version, build options, CPU, library versions and GPUs.
 */
#include <cblas.h>
#include <libfyaml.h>
#include <stdio.h>
#include <unistd.h>
#include <zlib.h>

#include "cli.h"
#include "simclr/version.h"
#include "simclr/backend.h"

int sc_cmd_info(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        printf("usage: simclr info\n\nPrint the version, build options, CPU, library versions and visible GPUs.\n");
        return SC_EXIT_OK;
    }
    char devices[4096];
    sc_backend_describe(devices, sizeof devices);
    printf("simclr %s (git %s)\n", sc_version, sc_git_sha);
    printf("CPU cores:    %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    printf("OpenBLAS:     %s\n", openblas_get_config());
    printf("libfyaml:     %s\n", fy_library_version());
    printf("zlib:         %s\n", zlibVersion());
    fputs(devices, stdout);
    return SC_EXIT_OK;
}
