/*
 * idx.c - IDX image + label files (MNIST, Fashion-MNIST), gzip-compressed or plain.
 *
 * Format (big-endian): a 4-byte magic 00 00 <type> <ndims>, one u32 per dimension, then the
 * data. Images are 0x00000803 (uint8, [count, rows, cols]), labels 0x00000801 (uint8, [count]).
 * zlib's gzopen/gzread read both gzip and plain files, so one path serves both.
 *
 * Every defect is reported, never asserted: the message names the file, the byte offset in
 * the (uncompressed) stream and what is wrong. The pixel buffer grows geometrically as data
 * arrives instead of trusting the header's size up front, so a corrupt header that claims
 * billions of images costs a short read, not a huge allocation.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "simclr/data.h"
#include "simclr/status.h"

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
/* The MNIST family (MNIST, Fashion-MNIST, KMNIST) has ten classes: labels must be 0..9. */
#define IDX_NUM_CLASSES 10
/* Largest side accepted for one image, a sanity bound against corrupt headers. */
#define IDX_MAX_SIDE 65536u
/* First allocation for the data; doubled as bytes arrive. */
#define IDX_INITIAL_CAPACITY ((size_t)16 << 20)

/* An open IDX stream and how far into it we are. */
typedef struct idx_file {
    const char *path;
    gzFile gz;
    uint64_t offset; /* bytes consumed from the uncompressed stream */
    sc_status err;   /* why the last idx_read returned -1 */
} idx_file;

static sc_status idx_open(idx_file *f, const char *path) {
    f->path = path;
    f->offset = 0;
    f->err = SC_OK;
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (!f->gz)
        return sc_errorf(SC_ERR_IO, "%s: cannot open: %s", path,
                         errno ? strerror(errno) : "out of memory in zlib");
    gzbuffer(f->gz, 1u << 17);
    return SC_OK;
}

/* Read up to n bytes; returns the count read (short only at the end of the stream) or -1
 * with the error recorded. */
static int64_t idx_read(idx_file *f, void *dst, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        if (want > (1u << 30)) want = 1u << 30;
        int r = gzread(f->gz, (uint8_t *)dst + got, (unsigned)want);
        if (r < 0) {
            int zerr = 0;
            const char *msg = gzerror(f->gz, &zerr);
            /* zlib prefixes its message with the path; we print the path once. */
            size_t plen = strlen(f->path);
            if (strncmp(msg, f->path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0)
                msg += plen + 2;
            unsigned long long at = (unsigned long long)(f->offset + got);
            if (zerr == Z_ERRNO)
                f->err = sc_errorf(SC_ERR_IO, "%s: byte %llu: read error: %s", f->path, at,
                                   strerror(errno));
            else /* zlib decompresses ahead, so the defect is at or after this byte */
                f->err = sc_errorf(SC_ERR_FORMAT, "%s: corrupt gzip stream at or after byte %llu: %s",
                                   f->path, at, msg);
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    f->offset += got;
    return (int64_t)got;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read the magic and `ndims` dimensions into dims[]; checks the magic. */
static sc_status idx_header(idx_file *f, uint32_t magic, const char *what, int ndims,
                            uint32_t *dims) {
    uint8_t hdr[16];
    size_t len = 4 + 4 * (size_t)ndims;
    int64_t got = idx_read(f, hdr, len);
    if (got < 0) return f->err;
    if (got == 0)
        return sc_errorf(SC_ERR_FORMAT, "%s: empty file (0 bytes), expected an IDX header",
                         f->path);
    if (got >= 4 && be32(hdr) != magic)
        return sc_errorf(SC_ERR_FORMAT, "%s: byte 0: bad magic 0x%08x, expected 0x%08x (%s)",
                         f->path, be32(hdr), magic, what);
    if ((size_t)got < len)
        return sc_errorf(SC_ERR_FORMAT, "%s: truncated at byte %lld of %zu expected (header)",
                         f->path, (long long)got, len);
    for (int d = 0; d < ndims; d++) dims[d] = be32(hdr + 4 + 4 * d);
    return SC_OK;
}

/* Check that nothing follows the data the header described. */
static sc_status idx_expect_end(idx_file *f, uint64_t expected) {
    uint8_t extra;
    int64_t got = idx_read(f, &extra, 1);
    if (got < 0) return f->err;
    if (got > 0)
        return sc_errorf(SC_ERR_FORMAT,
                         "%s: byte %llu: data continues past the %llu bytes the header describes",
                         f->path, (unsigned long long)expected, (unsigned long long)expected);
    return SC_OK;
}

/* [count, rows, cols] uint8 images. On success *pixels is malloc'd. */
static sc_status idx_read_images(idx_file *f, uint32_t dims[3], uint8_t **pixels) {
    *pixels = NULL;
    SC_TRY(idx_header(f, IDX_MAGIC_IMAGES, "IDX uint8 images with 3 dimensions", 3, dims));
    if (dims[0] == 0 || dims[1] == 0 || dims[2] == 0)
        return sc_errorf(SC_ERR_FORMAT, "%s: byte 4: empty dimensions %u x %u x %u", f->path,
                         dims[0], dims[1], dims[2]);
    if (dims[1] > IDX_MAX_SIDE || dims[2] > IDX_MAX_SIDE || dims[0] > INT32_MAX)
        return sc_errorf(SC_ERR_FORMAT, "%s: byte 4: implausible dimensions %u x %u x %u",
                         f->path, dims[0], dims[1], dims[2]);
    uint64_t total = (uint64_t)dims[0] * dims[1] * dims[2];
    uint64_t expected = 16 + total;
    if (total > SIZE_MAX / 2)
        return sc_errorf(SC_ERR_NOMEM, "%s: %llu bytes of images do not fit in memory", f->path,
                         (unsigned long long)total);

    size_t cap = total < IDX_INITIAL_CAPACITY ? (size_t)total : IDX_INITIAL_CAPACITY;
    size_t have = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) return sc_errorf(SC_ERR_NOMEM, "%s: cannot allocate %zu bytes", f->path, cap);
    for (;;) {
        int64_t got = idx_read(f, buf + have, cap - have);
        if (got < 0) {
            free(buf);
            return f->err;
        }
        have += (size_t)got;
        if (have < cap) {
            free(buf);
            return sc_errorf(SC_ERR_FORMAT, "%s: truncated at byte %llu of %llu expected",
                             f->path, (unsigned long long)(16 + have),
                             (unsigned long long)expected);
        }
        if (have == total) break;
        size_t next = cap * 2 < total ? cap * 2 : (size_t)total;
        uint8_t *grown = realloc(buf, next);
        if (!grown) {
            free(buf);
            return sc_errorf(SC_ERR_NOMEM, "%s: cannot allocate %zu bytes", f->path, next);
        }
        buf = grown;
        cap = next;
    }
    sc_status st = idx_expect_end(f, expected);
    if (st != SC_OK) {
        free(buf);
        return st;
    }
    *pixels = buf;
    return SC_OK;
}

/* [count] labels in 0..IDX_NUM_CLASSES-1; count must equal the image count. */
static sc_status idx_read_labels(idx_file *f, uint32_t count, const char *images_path,
                                 int32_t **labels) {
    *labels = NULL;
    uint32_t n = 0;
    SC_TRY(idx_header(f, IDX_MAGIC_LABELS, "IDX uint8 labels with 1 dimension", 1, &n));
    if (n != count)
        return sc_errorf(SC_ERR_FORMAT, "%s: byte 4: %u labels but %s has %u images", f->path,
                         n, images_path, count);
    uint8_t *raw = malloc(n);
    int32_t *out = malloc((size_t)n * sizeof *out);
    sc_status st = SC_OK;
    if (!raw || !out) {
        st = sc_errorf(SC_ERR_NOMEM, "%s: cannot allocate %u labels", f->path, n);
        goto done;
    }
    int64_t got = idx_read(f, raw, n);
    if (got < 0) {
        st = f->err;
        goto done;
    }
    if ((uint64_t)got < n) {
        st = sc_errorf(SC_ERR_FORMAT, "%s: truncated at byte %llu of %llu expected", f->path,
                       (unsigned long long)(8 + got), (unsigned long long)(8 + (uint64_t)n));
        goto done;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (raw[i] >= IDX_NUM_CLASSES) {
            st = sc_errorf(SC_ERR_FORMAT, "%s: byte %llu: label %u of image %u is out of range 0..%d",
                           f->path, 8ull + i, raw[i], i, IDX_NUM_CLASSES - 1);
            goto done;
        }
        out[i] = raw[i];
    }
    st = idx_expect_end(f, 8 + (uint64_t)n);
done:
    free(raw);
    if (st == SC_OK)
        *labels = out;
    else
        free(out);
    return st;
}

sc_status sc_dataset_load_idx(const char *images_path, const char *labels_path, const char *name,
                              sc_dataset *out) {
    memset(out, 0, sizeof *out);
    idx_file f;
    uint32_t dims[3] = {0, 0, 0};
    uint8_t *pixels = NULL;
    int32_t *labels = NULL;

    SC_TRY(idx_open(&f, images_path));
    sc_status st = idx_read_images(&f, dims, &pixels);
    gzclose(f.gz);
    if (st != SC_OK) return st;

    st = idx_open(&f, labels_path);
    if (st != SC_OK) {
        free(pixels);
        return st;
    }
    st = idx_read_labels(&f, dims[0], images_path, &labels);
    gzclose(f.gz);
    if (st != SC_OK) {
        free(pixels);
        return st;
    }

    snprintf(out->name, sizeof out->name, "%s", name);
    out->count = dims[0];
    out->height = (int)dims[1];
    out->width = (int)dims[2];
    out->channels = 1;
    out->num_classes = IDX_NUM_CLASSES;
    out->pixels = pixels;
    out->labels = labels;
    return SC_OK;
}
