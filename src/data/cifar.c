/*
 * cifar.c - the CIFAR-10 and CIFAR-100 binary versions (cs.toronto.edu/~kriz/cifar.html).
 *
 * CIFAR-10: data_batch_1..5.bin (train) and test_batch.bin (test); a record is one label byte
 * (0-9) then 1024 R, 1024 G and 1024 B bytes of a 32x32 image, row-major.
 * CIFAR-100: train.bin and test.bin; a record is a coarse label (0-19), a fine label (0-99)
 * and the same 3072 pixel bytes. We keep the fine label.
 *
 * The official files hold 10,000 (CIFAR-10) or 50,000/10,000 (CIFAR-100) records, but any
 * whole number of records is accepted so that small files work. Sizes are checked before
 * anything is allocated; the planes are converted to the [H, W, C] layout of sc_dataset.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "simclr/data.h"
#include "simclr/status.h"

#define CIFAR_SIDE 32
#define CIFAR_PLANE (CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_PIXELS (3 * CIFAR_PLANE)
/* Records converted per read. */
#define CIFAR_CHUNK 1024
#define CIFAR_MAX_FILES 5

typedef struct cifar_layout {
    const char *title;        /* "CIFAR-10" */
    const char *subdir;       /* the directory the archive unpacks to */
    int label_bytes;          /* 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine) */
    int num_classes;          /* of the label we keep (the last label byte) */
    int coarse_classes;       /* CIFAR-100's coarse label range; 0 when absent */
    const char *files[2][CIFAR_MAX_FILES + 1]; /* [split] NULL-terminated */
} cifar_layout;

static const cifar_layout cifar_layouts[2] = {
    {"CIFAR-10", "cifar-10-batches-bin", 1, 10, 0,
     {{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
       "data_batch_5.bin", NULL},
      {"test_batch.bin", NULL}}},
    {"CIFAR-100", "cifar-100-binary", 2, 100, 20, {{"train.bin", NULL}, {"test.bin", NULL}}},
};

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Where the files are: `dir` itself or its usual archive subdirectory. */
static sc_status cifar_find_dir(const cifar_layout *L, const char *dir, sc_split split,
                                char *found, size_t cap) {
    const char *first = L->files[split][0];
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/%s", dir, first);
    if (file_exists(probe)) {
        snprintf(found, cap, "%s", dir);
        return SC_OK;
    }
    snprintf(probe, sizeof probe, "%s/%s/%s", dir, L->subdir, first);
    if (file_exists(probe)) {
        snprintf(found, cap, "%s/%s", dir, L->subdir);
        return SC_OK;
    }
    char list[512] = "";
    for (int i = 0; L->files[split][i]; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", L->files[split][i]);
    }
    return sc_errorf(SC_ERR_IO,
                     "%s %s files not found: expected %s in %s or in %s/%s (the binary version "
                     "from https://www.cs.toronto.edu/~kriz/cifar.html)",
                     L->title, split == SC_SPLIT_TRAIN ? "train" : "test", list, dir, dir,
                     L->subdir);
}

/* Read every record of one open file into pixels [n, 32, 32, 3] and labels [n]. */
static sc_status cifar_read_file(const cifar_layout *L, const char *path, FILE *fp, int64_t n,
                                 uint8_t *pixels, int32_t *labels, uint8_t *chunk) {
    const size_t rec = (size_t)L->label_bytes + CIFAR_PIXELS;
    for (int64_t done = 0; done < n;) {
        size_t want = (size_t)(n - done < CIFAR_CHUNK ? n - done : CIFAR_CHUNK);
        size_t got = fread(chunk, rec, want, fp);
        if (got < want) {
            if (ferror(fp))
                return sc_errorf(SC_ERR_IO, "%s: byte %llu: read error: %s", path,
                                 (unsigned long long)((done + (int64_t)got) * (int64_t)rec),
                                 strerror(errno));
            return sc_errorf(SC_ERR_FORMAT, "%s: truncated at byte %llu of %llu expected", path,
                             (unsigned long long)((done + (int64_t)got) * (int64_t)rec),
                             (unsigned long long)(n * (int64_t)rec));
        }
        for (size_t r = 0; r < want; r++) {
            const uint8_t *src = chunk + r * rec;
            int64_t index = done + (int64_t)r;
            unsigned long long at = (unsigned long long)index * rec;
            if (L->coarse_classes && src[0] >= L->coarse_classes)
                return sc_errorf(SC_ERR_FORMAT,
                                 "%s: byte %llu: coarse label %u of record %lld is out of range 0..%d",
                                 path, at, src[0], (long long)index, L->coarse_classes - 1);
            uint8_t label = src[L->label_bytes - 1];
            if (label >= L->num_classes)
                return sc_errorf(SC_ERR_FORMAT,
                                 "%s: byte %llu: label %u of record %lld is out of range 0..%d",
                                 path, at + (unsigned)L->label_bytes - 1, label, (long long)index,
                                 L->num_classes - 1);
            labels[index] = label;
            /* planes R[1024] G[1024] B[1024] -> [32, 32, 3] */
            const uint8_t *plane = src + L->label_bytes;
            uint8_t *dst = pixels + (size_t)index * CIFAR_PIXELS;
            for (int p = 0; p < CIFAR_PLANE; p++) {
                dst[3 * p + 0] = plane[p];
                dst[3 * p + 1] = plane[CIFAR_PLANE + p];
                dst[3 * p + 2] = plane[2 * CIFAR_PLANE + p];
            }
        }
        done += (int64_t)want;
    }
    return SC_OK;
}

sc_status sc_dataset_load_cifar(const char *dir, int cifar100, sc_split split, sc_dataset *out) {
    memset(out, 0, sizeof *out);
    const cifar_layout *L = &cifar_layouts[cifar100 ? 1 : 0];
    const size_t rec = (size_t)L->label_bytes + CIFAR_PIXELS;
    char base[4096];
    SC_TRY(cifar_find_dir(L, dir, split, base, sizeof base));

    /* Open every file and check its size before allocating anything. */
    FILE *fps[CIFAR_MAX_FILES] = {0};
    char paths[CIFAR_MAX_FILES][4200];
    int64_t counts[CIFAR_MAX_FILES] = {0}, total = 0;
    int nfiles = 0;
    sc_status st = SC_OK;
    uint8_t *chunk = NULL;
    for (; L->files[split][nfiles]; nfiles++) {
        char *path = paths[nfiles];
        snprintf(path, sizeof paths[nfiles], "%s/%s", base, L->files[split][nfiles]);
        FILE *fp = fopen(path, "rb");
        if (!fp) {
            st = sc_errorf(SC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
            goto done;
        }
        fps[nfiles] = fp;
        struct stat sb;
        if (fstat(fileno(fp), &sb) != 0) {
            st = sc_errorf(SC_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
            goto done;
        }
        uint64_t size = (uint64_t)sb.st_size;
        if (size == 0) {
            st = sc_errorf(SC_ERR_FORMAT, "%s: empty file (0 bytes), expected %s records of %zu bytes",
                           path, L->title, rec);
            goto done;
        }
        if (size % rec != 0) {
            st = sc_errorf(SC_ERR_FORMAT,
                           "%s: size %llu bytes is not a whole number of %zu-byte %s records "
                           "(%llu records + %llu bytes)",
                           path, (unsigned long long)size, rec, L->title,
                           (unsigned long long)(size / rec), (unsigned long long)(size % rec));
            goto done;
        }
        counts[nfiles] = (int64_t)(size / rec);
        total += counts[nfiles];
    }

    out->pixels = malloc((size_t)total * CIFAR_PIXELS);
    out->labels = malloc((size_t)total * sizeof *out->labels);
    chunk = malloc(CIFAR_CHUNK * rec);
    if (!out->pixels || !out->labels || !chunk) {
        st = sc_errorf(SC_ERR_NOMEM, "%s: cannot allocate %lld images", base, (long long)total);
        goto done;
    }
    int64_t at = 0;
    for (int i = 0; i < nfiles; i++) {
        st = cifar_read_file(L, paths[i], fps[i], counts[i], out->pixels + at * CIFAR_PIXELS,
                             out->labels + at, chunk);
        if (st != SC_OK) goto done;
        at += counts[i];
    }

    snprintf(out->name, sizeof out->name, "%s/%s", cifar100 ? "cifar100" : "cifar10",
             split == SC_SPLIT_TRAIN ? "train" : "test");
    out->count = total;
    out->height = out->width = CIFAR_SIDE;
    out->channels = 3;
    out->num_classes = L->num_classes;
done:
    free(chunk);
    for (int i = 0; i < CIFAR_MAX_FILES; i++)
        if (fps[i]) fclose(fps[i]);
    if (st != SC_OK) sc_dataset_free(out);
    return st;
}
