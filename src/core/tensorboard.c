/*
 * tensorboard.c - TensorBoard event files and the projector (see include/simclr/tensorboard.h).
 *
 * Protobuf messages are built bottom-up in growable byte buffers: a nested message is encoded
 * into its own buffer and then appended to its parent as a length-delimited field. Only the
 * few wire types the Event schema needs are written: varint (0), fixed64 (1),
 * length-delimited (2) and fixed32 (5), all little-endian.
 */
#include "simclr/tensorboard.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- CRC-32C ------------------------------------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[i] = c;
    }
}

uint32_t sc_crc32c(const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = ~0u;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFFu] ^ (c >> 8);
    return ~c;
}

uint32_t sc_crc32c_masked(const void *data, size_t n) {
    uint32_t c = sc_crc32c(data, n);
    return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

/* ---- protobuf ------------------------------------------------------------------------------- */

typedef struct pb {
    uint8_t *p;
    size_t len, cap;
    int oom;
} pb;

static void pb_put(pb *b, const void *data, size_t n) {
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void pb_varint(pb *b, uint64_t v) {
    uint8_t tmp[10];
    int n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) tmp[n] |= 0x80;
        n++;
    } while (v);
    pb_put(b, tmp, (size_t)n);
}

static void pb_key(pb *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }

static void pb_le(pb *b, uint64_t v, int bytes) {
    uint8_t tmp[8];
    for (int i = 0; i < bytes; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    pb_put(b, tmp, (size_t)bytes);
}

static void pb_double(pb *b, int field, double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    pb_key(b, field, 1);
    pb_le(b, u, 8);
}

static void pb_float(pb *b, int field, float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    pb_key(b, field, 5);
    pb_le(b, u, 4);
}

static void pb_int(pb *b, int field, int64_t v) {
    pb_key(b, field, 0);
    pb_varint(b, (uint64_t)v);
}

static void pb_bytes(pb *b, int field, const void *data, size_t n) {
    pb_key(b, field, 2);
    pb_varint(b, n);
    pb_put(b, data, n);
}

static void pb_message(pb *b, int field, const pb *m) {
    if (m->oom) b->oom = 1;
    pb_bytes(b, field, m->p, m->len);
}

/* A packed repeated double field. */
static void pb_packed_doubles(pb *b, int field, const double *v, int n) {
    pb_key(b, field, 2);
    pb_varint(b, (uint64_t)n * 8);
    for (int i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &v[i], sizeof u);
        pb_le(b, u, 8);
    }
}

static void pb_free(pb *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- the writer ------------------------------------------------------------------------------ */

struct sc_tb_writer {
    FILE *f;
    char path[1200];
};

static double wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Frame one serialised Event as a TFRecord and flush it. */
static sc_status write_record(sc_tb_writer *w, const pb *event) {
    if (event->oom) return sc_errorf(SC_ERR_NOMEM, "%s: out of memory encoding an event", w->path);
    uint8_t head[12], tail[4];
    uint64_t len = event->len;
    for (int i = 0; i < 8; i++) head[i] = (uint8_t)(len >> (8 * i));
    uint32_t lcrc = sc_crc32c_masked(head, 8), dcrc = sc_crc32c_masked(event->p, event->len);
    for (int i = 0; i < 4; i++) {
        head[8 + i] = (uint8_t)(lcrc >> (8 * i));
        tail[i] = (uint8_t)(dcrc >> (8 * i));
    }
    if (fwrite(head, 1, sizeof head, w->f) != sizeof head || fwrite(event->p, 1, event->len, w->f) != event->len ||
        fwrite(tail, 1, sizeof tail, w->f) != sizeof tail || fflush(w->f) != 0)
        return sc_errorf(SC_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    return SC_OK;
}

/* Event { wall_time, step, summary { value { tag, <value field> } } } around an encoded value
 * body (the fields after the tag). */
static sc_status write_value(sc_tb_writer *w, const char *tag, int64_t step, const pb *body) {
    pb value = {0}, summary = {0}, event = {0};
    pb_bytes(&value, 1, tag, strlen(tag));
    pb_put(&value, body->p, body->len);
    if (body->oom) value.oom = 1;
    pb_message(&summary, 1, &value);
    pb_double(&event, 1, wall_time());
    pb_int(&event, 2, step);
    pb_message(&event, 5, &summary);
    sc_status rc = write_record(w, &event);
    pb_free(&value);
    pb_free(&summary);
    pb_free(&event);
    return rc;
}

sc_status sc_tb_open(const char *dir, sc_tb_writer **out) {
    *out = NULL;
    sc_tb_writer *w = calloc(1, sizeof *w);
    if (!w) return sc_errorf(SC_ERR_NOMEM, "out of memory for the TensorBoard writer");
    char host[256] = "localhost";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%010lld.%s.%d", dir, (long long)time(NULL), host,
             (int)getpid());
    w->f = fopen(w->path, "wb");
    if (!w->f) {
        sc_status rc = sc_errorf(SC_ERR_IO, "%s: cannot create: %s", w->path, strerror(errno));
        free(w);
        return rc;
    }
    pb event = {0};
    pb_double(&event, 1, wall_time());
    static const char version[] = "brain.Event:2";
    pb_bytes(&event, 3, version, sizeof version - 1);
    sc_status rc = write_record(w, &event);
    pb_free(&event);
    if (rc != SC_OK) {
        sc_tb_close(w);
        return rc;
    }
    *out = w;
    return SC_OK;
}

const char *sc_tb_path(const sc_tb_writer *w) { return w->path; }

sc_status sc_tb_scalar(sc_tb_writer *w, const char *tag, int64_t step, double value) {
    pb body = {0};
    pb_float(&body, 2, (float)value);
    sc_status rc = write_value(w, tag, step, &body);
    pb_free(&body);
    return rc;
}

sc_status sc_tb_image(sc_tb_writer *w, const char *tag, int64_t step, const sc_image8 *img) {
    uint8_t *png;
    size_t len;
    SC_TRY(sc_png_encode(img, &png, &len));
    pb image = {0}, body = {0};
    pb_int(&image, 1, img->height);
    pb_int(&image, 2, img->width);
    pb_int(&image, 3, img->channels);
    pb_bytes(&image, 4, png, len);
    pb_message(&body, 4, &image);
    sc_status rc = write_value(w, tag, step, &body);
    free(png);
    pb_free(&image);
    pb_free(&body);
    return rc;
}

sc_status sc_tb_histogram(sc_tb_writer *w, const char *tag, int64_t step, const float *values, int64_t n,
                          int buckets) {
    if (buckets < 1) return sc_errorf(SC_ERR_ARG, "a histogram needs at least one bucket");
    double lo = INFINITY, hi = -INFINITY, sum = 0.0, sumsq = 0.0, num = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double v = values[i];
        if (!isfinite(v)) continue;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        sum += v;
        sumsq += v * v;
        num += 1.0;
    }
    if (num == 0.0) lo = hi = 0.0;
    if (hi == lo) buckets = 1;
    double *limit = malloc((size_t)buckets * sizeof *limit), *count = calloc((size_t)buckets, sizeof *count);
    if (!limit || !count) {
        free(limit);
        free(count);
        return sc_errorf(SC_ERR_NOMEM, "out of memory for a histogram");
    }
    /* bucket b covers (limit[b-1], limit[b]]; bucket 0 starts at -DBL_MAX; the last limit is hi */
    for (int b = 0; b < buckets; b++) limit[b] = b + 1 == buckets ? hi : lo + (hi - lo) * (double)(b + 1) / buckets;
    double width = (hi - lo) / buckets;
    for (int64_t i = 0; i < n; i++) {
        double v = values[i];
        if (!isfinite(v)) continue;
        int b = width > 0 ? (int)ceil((v - lo) / width) - 1 : 0;
        b = b < 0 ? 0 : b >= buckets ? buckets - 1 : b;
        while (b > 0 && v <= limit[b - 1]) b--; /* rounding at a boundary: (limit[b-1], limit[b]] */
        while (b + 1 < buckets && v > limit[b]) b++;
        count[b] += 1.0;
    }
    pb histo = {0}, body = {0};
    pb_double(&histo, 1, lo);
    pb_double(&histo, 2, hi);
    pb_double(&histo, 3, num);
    pb_double(&histo, 4, sum);
    pb_double(&histo, 5, sumsq);
    pb_packed_doubles(&histo, 6, limit, buckets);
    pb_packed_doubles(&histo, 7, count, buckets);
    pb_message(&body, 5, &histo);
    sc_status rc = write_value(w, tag, step, &body);
    pb_free(&histo);
    pb_free(&body);
    free(limit);
    free(count);
    return rc;
}

void sc_tb_close(sc_tb_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    free(w);
}

/* ---- projector ------------------------------------------------------------------------------ */

static sc_status close_checked(FILE *f, const char *path) {
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return SC_OK;
}

sc_status sc_tb_write_projector(const char *dir, const char *name, const float *features, int64_t n, int dim,
                                const int32_t *labels, const char *const *class_names, const sc_image8 *sprite,
                                int thumb) {
    char sub[1100], path[1300];
    snprintf(sub, sizeof sub, "%s/projector", dir);
    if (mkdir(sub, 0755) != 0 && errno != EEXIST) return sc_errorf(SC_ERR_IO, "%s: cannot create directory: %s", sub, strerror(errno));

    snprintf(path, sizeof path, "%s/%s.tsv", sub, name);
    FILE *f = fopen(path, "w");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) fprintf(f, "%.7g%c", features[i * dim + j], j + 1 < dim ? '\t' : '\n');
    SC_TRY(close_checked(f, path));

    snprintf(path, sizeof path, "%s/%s_metadata.tsv", sub, name);
    if (!(f = fopen(path, "w"))) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "label\tclass\n");
    for (int64_t i = 0; i < n; i++) {
        if (class_names)
            fprintf(f, "%d\t%s\n", labels[i], class_names[labels[i]]);
        else
            fprintf(f, "%d\t%d\n", labels[i], labels[i]);
    }
    SC_TRY(close_checked(f, path));

    if (sprite) {
        snprintf(path, sizeof path, "%s/%s_sprite.png", sub, name);
        SC_TRY(sc_png_write(path, sprite));
    }

    snprintf(path, sizeof path, "%s/projector_config.pbtxt", dir);
    if (!(f = fopen(path, "w"))) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "embeddings {\n  tensor_name: \"%s\"\n  tensor_path: \"projector/%s.tsv\"\n"
               "  metadata_path: \"projector/%s_metadata.tsv\"\n  tensor_shape: %lld\n  tensor_shape: %d\n",
            name, name, name, (long long)n, dim);
    if (sprite)
        fprintf(f, "  sprite {\n    image_path: \"projector/%s_sprite.png\"\n    single_image_dim: %d\n"
                   "    single_image_dim: %d\n  }\n",
                name, thumb, thumb);
    fprintf(f, "}\n");
    return close_checked(f, path);
}
