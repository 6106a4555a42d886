/*
 * cmd_info.c - `simclr info`: version, CPU, library versions and GPUs (what a bug report needs).
 */
#include <archive.h>
#include <cblas.h>
#include <libfyaml.h>
#include <png.h>
#include <stdio.h>
#include <unistd.h>
#include <zlib.h>

#include <jpeglib.h> /* after stdio.h, which it needs */

#include "cli.h"
#include "simclr/version.h"
#include "simclr/backend.h"

/* libjpeg-turbo has no run-time version query; its header gives the version as bare tokens. */
#define STRINGIFY_TOKENS(x) #x
#define STRINGIFY(x) STRINGIFY_TOKENS(x)

int sc_cmd_info(int argc, char **argv) {
    (void)argv;
    if (argc > 1) {
        printf("usage: simclr info\n\nPrint the version, CPU, library versions and visible GPUs.\n");
        return SC_EXIT_OK;
    }
    char devices[4096];
    sc_backend_describe(devices, sizeof devices);
    printf("simclr %s (git %s)\n", sc_version, sc_git_sha);
    printf("CPU cores:    %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    printf("OpenBLAS:     %s\n", openblas_get_config());
    printf("libfyaml:     %s\n", fy_library_version());
    printf("zlib:         %s\n", zlibVersion());
    printf("libjpeg:      libjpeg-turbo %s (headers; libjpeg API %d)\n", STRINGIFY(LIBJPEG_TURBO_VERSION), JPEG_LIB_VERSION);
    printf("libpng:       %s\n", png_get_libpng_ver(NULL));
    printf("libarchive:   %s\n", archive_version_details());
    fputs(devices, stdout);
    return SC_EXIT_OK;
}
