/*
 * safetensors.c - a defensive safetensors reader and an atomic writer
 * (format and guarantees in include/simclr/safetensors.h).
 *
 * The JSON header is parsed with libfyaml in JSON mode; its diagnostics are collected, not
 * printed, and turned into an error naming the file and the line:column inside the header.
 */
#include "simclr/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <libfyaml.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------ */
/* atomic file writing                                                                  */

static sc_status write_all(int fd, const void *buf, size_t n, const char *path) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return sc_errorf(SC_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return SC_OK;
}

sc_status sc_write_file_atomic(const char *path, const void *const *parts, const size_t *sizes, int nparts) {
    char tmp[1100];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return sc_errorf(SC_ERR_IO, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return sc_errorf(SC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    sc_status st = SC_OK;
    for (int i = 0; i < nparts && st == SC_OK; i++) st = write_all(fd, parts[i], sizes[i], tmp);
    if (st == SC_OK && fsync(fd) != 0) st = sc_errorf(SC_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == SC_OK) st = sc_errorf(SC_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (st == SC_OK && rename(tmp, path) != 0)
        st = sc_errorf(SC_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (st != SC_OK) {
        unlink(tmp);
        return st;
    }
    /* make the rename durable */
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return sc_errorf(SC_ERR_IO, "%s: cannot open its directory to sync: %s", path, strerror(errno));
    int rc = fsync(dfd);
    int saved = errno;
    close(dfd);
    if (rc != 0) return sc_errorf(SC_ERR_IO, "%s: directory fsync failed: %s", path, strerror(saved));
    return SC_OK;
}

/* ------------------------------------------------------------------------------------ */
/* writer                                                                               */

typedef struct strbuf {
    char *p;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof tmp) {
        b->failed = 1;
        return;
    }
    sb_put(b, tmp, (size_t)n);
}

/* A JSON string literal (RFC 8259 escapes; bytes >= 0x80 pass through as UTF-8). */
static void sb_json_string(strbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (c < 0x20)
                sb_printf(b, "\\u%04x", c);
            else
                sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static uint64_t entry_bytes(const sc_st_entry *e) {
    uint64_t n = sc_dtype_size(e->dtype);
    for (int d = 0; d < e->ndim; d++) n *= (uint64_t)e->shape[d];
    return n;
}

sc_status sc_safetensors_write(const char *path, const sc_st_entry *entries, int count,
                               const sc_st_meta *meta, int meta_count) {
    strbuf h = {0};
    sb_put(&h, "{", 1);
    if (meta_count > 0) {
        sb_json_string(&h, "__metadata__");
        sb_put(&h, ":{", 2);
        for (int i = 0; i < meta_count; i++) {
            if (i) sb_put(&h, ",", 1);
            sb_json_string(&h, meta[i].key);
            sb_put(&h, ":", 1);
            sb_json_string(&h, meta[i].value);
        }
        sb_put(&h, "}", 1);
    }
    uint64_t offset = 0;
    for (int i = 0; i < count; i++) {
        const sc_st_entry *e = &entries[i];
        if (meta_count > 0 || i) sb_put(&h, ",", 1);
        sb_json_string(&h, e->name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", sc_dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++) sb_printf(&h, d ? ",%lld" : "%lld", (long long)e->shape[d]);
        uint64_t n = entry_bytes(e);
        sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                  (unsigned long long)(offset + n));
        offset += n;
    }
    sb_put(&h, "}", 1);
    while (!h.failed && h.len % 8) sb_put(&h, " ", 1);
    if (h.failed) {
        free(h.p);
        return sc_errorf(SC_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    uint8_t len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (uint8_t)((uint64_t)h.len >> (8 * i));

    int nparts = 2 + count;
    const void **parts = malloc((size_t)nparts * sizeof *parts);
    size_t *sizes = malloc((size_t)nparts * sizeof *sizes);
    if (!parts || !sizes) {
        free(parts);
        free(sizes);
        free(h.p);
        return sc_errorf(SC_ERR_NOMEM, "%s: out of memory", path);
    }
    parts[0] = len_le;
    sizes[0] = 8;
    parts[1] = h.p;
    sizes[1] = h.len;
    for (int i = 0; i < count; i++) {
        parts[2 + i] = entries[i].data;
        sizes[2 + i] = (size_t)entry_bytes(&entries[i]);
    }
    sc_status st = sc_write_file_atomic(path, parts, sizes, nparts);
    free(parts);
    free(sizes);
    free(h.p);
    return st;
}

/* ------------------------------------------------------------------------------------ */
/* reader                                                                               */

static int dtype_from_name(const char *s, size_t n, sc_dtype *out) {
    static const sc_dtype all[] = {SC_F32, SC_F64, SC_BF16, SC_F16, SC_I64, SC_I32, SC_U8};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *name = sc_dtype_name(all[i]);
        if (strlen(name) == n && memcmp(name, s, n) == 0) {
            *out = all[i];
            return 1;
        }
    }
    return 0;
}

/* A JSON non-negative integer scalar. */
static int scalar_u64(struct fy_node *n, uint64_t *out) {
    size_t len;
    const char *s = n && fy_node_is_scalar(n) ? fy_node_get_scalar(n, &len) : NULL;
    if (!s || len == 0 || len > 20) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

/* The first collected parser error, with its position inside the header. */
static void first_diag(char *buf, size_t cap, struct fy_diag *diag) {
    void *it = NULL;
    struct fy_diag_error *err = fy_diag_errors_iterate(diag, &it);
    if (err)
        snprintf(buf, cap, "line %d, column %d of the header: %s", err->line, err->column, err->msg); /* 1-based */
    else
        snprintf(buf, cap, "the header is not valid JSON");
}

static int cmp_begin(const void *a, const void *b) {
    const sc_st_tensor *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const sc_st_tensor *)a)->name, ((const sc_st_tensor *)b)->name);
}

/* Parse one tensor entry `key: value` into t. Returns a non-NULL message on a defect. */
static const char *parse_entry(struct fy_node *value, sc_st_tensor *t, char *why, size_t cap) {
    if (!fy_node_is_mapping(value)) return "is not a JSON object";
    struct fy_node *dt = fy_node_mapping_lookup_by_string(value, "dtype", FY_NT);
    struct fy_node *shape = fy_node_mapping_lookup_by_string(value, "shape", FY_NT);
    struct fy_node *offs = fy_node_mapping_lookup_by_string(value, "data_offsets", FY_NT);
    if (!dt || !shape || !offs) return "lacks one of dtype, shape, data_offsets";
    if (fy_node_mapping_item_count(value) != 3) return "has keys other than dtype, shape, data_offsets";
    size_t len;
    const char *s = fy_node_is_scalar(dt) ? fy_node_get_scalar(dt, &len) : NULL;
    if (!s || !dtype_from_name(s, len, &t->dtype)) {
        snprintf(why, cap, "has unsupported dtype '%.*s'", s ? (int)(len > 16 ? 16 : len) : 0, s ? s : "");
        return why;
    }
    if (!fy_node_is_sequence(shape)) return "has a shape that is not a list";
    int nd = fy_node_sequence_item_count(shape);
    if (nd > SC_MAX_DIMS) {
        snprintf(why, cap, "has %d dimensions (at most %d supported)", nd, SC_MAX_DIMS);
        return why;
    }
    t->ndim = nd;
    uint64_t bytes = sc_dtype_size(t->dtype);
    for (int d = 0; d < nd; d++) {
        uint64_t v;
        if (!scalar_u64(fy_node_sequence_get_by_index(shape, d), &v) || v > (uint64_t)INT64_MAX)
            return "has a shape entry that is not a non-negative integer";
        t->shape[d] = (int64_t)v;
        if (v != 0 && bytes > UINT64_MAX / v) return "has a shape whose byte size overflows";
        bytes *= v;
    }
    if (!fy_node_is_sequence(offs) || fy_node_sequence_item_count(offs) != 2 ||
        !scalar_u64(fy_node_sequence_get_by_index(offs, 0), &t->begin) ||
        !scalar_u64(fy_node_sequence_get_by_index(offs, 1), &t->end))
        return "has data_offsets that are not two non-negative integers";
    if (t->end < t->begin) return "has data_offsets with end before begin";
    if (t->end - t->begin != bytes) {
        snprintf(why, cap, "covers %llu bytes but dtype and shape need %llu",
                 (unsigned long long)(t->end - t->begin), (unsigned long long)bytes);
        return why;
    }
    return NULL;
}

static sc_status parse_metadata(struct fy_node *value, sc_safetensors *st, const char *label) {
    if (!fy_node_is_mapping(value)) return sc_errorf(SC_ERR_FORMAT, "%s: __metadata__ is not a JSON object", label);
    int n = fy_node_mapping_item_count(value);
    st->meta_keys = calloc((size_t)(n ? n : 1), sizeof *st->meta_keys);
    st->meta_values = calloc((size_t)(n ? n : 1), sizeof *st->meta_values);
    if (!st->meta_keys || !st->meta_values) return sc_errorf(SC_ERR_NOMEM, "%s: out of memory", label);
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(value, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(pair), *v = fy_node_pair_value(pair);
        size_t kl, vl;
        const char *ks = fy_node_is_scalar(k) ? fy_node_get_scalar(k, &kl) : NULL;
        const char *vs = v && fy_node_is_scalar(v) ? fy_node_get_scalar(v, &vl) : NULL;
        if (!ks || !vs) return sc_errorf(SC_ERR_FORMAT, "%s: __metadata__ values must be strings", label);
        st->meta_keys[st->meta_count] = strndup(ks, kl);
        st->meta_values[st->meta_count] = strndup(vs, vl);
        if (!st->meta_keys[st->meta_count] || !st->meta_values[st->meta_count])
            return sc_errorf(SC_ERR_NOMEM, "%s: out of memory", label);
        st->meta_count++;
    }
    return SC_OK;
}

static sc_status parse_header(sc_safetensors *st, const char *json, size_t len, const char *label) {
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = NULL;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    if (!diag) return sc_errorf(SC_ERR_NOMEM, "%s: cannot create a JSON parser", label);
    fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET | FYPCF_JSON_FORCE, .diag = diag};
    struct fy_document *doc = fy_document_build_from_string(&pcfg, json, len);
    sc_status rc = SC_OK;
    char why[512];
    if (!doc) {
        first_diag(why, sizeof why, diag);
        rc = sc_errorf(SC_ERR_FORMAT, "%s: bad JSON header: %s", label, why);
        goto done;
    }
    struct fy_node *root = fy_document_root(doc);
    if (!root || !fy_node_is_mapping(root)) {
        rc = sc_errorf(SC_ERR_FORMAT, "%s: the header is not a JSON object", label);
        goto done;
    }
    int n = fy_node_mapping_item_count(root);
    st->tensors = calloc((size_t)(n ? n : 1), sizeof *st->tensors);
    if (!st->tensors) {
        rc = sc_errorf(SC_ERR_NOMEM, "%s: out of memory for %d header entries", label, n);
        goto done;
    }
    void *it = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(root, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(pair), *v = fy_node_pair_value(pair);
        size_t kl;
        const char *ks = fy_node_is_scalar(k) ? fy_node_get_scalar(k, &kl) : NULL;
        if (!ks) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: a header key is not a string", label);
            goto done;
        }
        if (kl == 12 && memcmp(ks, "__metadata__", 12) == 0) {
            if (st->meta_keys) {
                rc = sc_errorf(SC_ERR_FORMAT, "%s: duplicate __metadata__", label);
                goto done;
            }
            if ((rc = parse_metadata(v, st, label)) != SC_OK) goto done;
            continue;
        }
        sc_st_tensor *t = &st->tensors[st->count];
        if (kl == 0 || kl >= sizeof t->name) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor name of %zu bytes (1..%zu allowed)", label, kl, sizeof t->name - 1);
            goto done;
        }
        memcpy(t->name, ks, kl);
        t->name[kl] = '\0';
        const char *defect = v ? parse_entry(v, t, why, sizeof why) : "has no value";
        if (defect) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor '%s' %s", label, t->name, defect);
            goto done;
        }
        st->count++;
    }
done:
    if (doc) fy_document_destroy(doc);
    fy_diag_destroy(diag);
    return rc;
}

/* Names unique; tensors tile [0, data size) exactly. */
static sc_status check_layout(sc_safetensors *st, const char *label) {
    uint64_t data_size = st->size - st->data_start;
    for (int i = 0; i < st->count; i++)
        if (st->tensors[i].end > data_size)
            return sc_errorf(SC_ERR_FORMAT, "%s: tensor '%s' at data bytes [%llu, %llu) ends past the %llu-byte data section "
                             "(file size %zu: truncated?)", label, st->tensors[i].name, (unsigned long long)st->tensors[i].begin,
                             (unsigned long long)st->tensors[i].end, (unsigned long long)data_size, st->size);
    sc_st_tensor *sorted = malloc((size_t)(st->count ? st->count : 1) * sizeof *sorted);
    if (!sorted) return sc_errorf(SC_ERR_NOMEM, "%s: out of memory", label);
    memcpy(sorted, st->tensors, (size_t)st->count * sizeof *sorted);
    qsort(sorted, (size_t)st->count, sizeof *sorted, cmp_name);
    for (int i = 1; i < st->count; i++)
        if (strcmp(sorted[i - 1].name, sorted[i].name) == 0) {
            sc_status rc = sc_errorf(SC_ERR_FORMAT, "%s: duplicate tensor '%s'", label, sorted[i].name);
            free(sorted);
            return rc;
        }
    qsort(sorted, (size_t)st->count, sizeof *sorted, cmp_begin);
    uint64_t expect = 0;
    sc_status rc = SC_OK;
    for (int i = 0; i < st->count && rc == SC_OK; i++) {
        if (sorted[i].begin < expect)
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor '%s' at data bytes [%llu, %llu) overlaps the previous tensor",
                           label, sorted[i].name, (unsigned long long)sorted[i].begin, (unsigned long long)sorted[i].end);
        else if (sorted[i].begin > expect)
            rc = sc_errorf(SC_ERR_FORMAT, "%s: hole in the data section at bytes [%llu, %llu) before tensor '%s'",
                           label, (unsigned long long)expect, (unsigned long long)sorted[i].begin, sorted[i].name);
        expect = sorted[i].end;
    }
    if (rc == SC_OK && expect != data_size)
        rc = sc_errorf(SC_ERR_FORMAT, "%s: tensors cover %llu data bytes but the file has %llu (file size %zu, data starts at byte %zu)",
                       label, (unsigned long long)expect, (unsigned long long)data_size, st->size, st->data_start);
    free(sorted);
    return rc;
}

sc_status sc_safetensors_parse(uint8_t *file, size_t size, const char *label, sc_safetensors *st) {
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", label);
    st->file = file;
    st->size = size;
    sc_status rc;
    if (size < 8) {
        rc = sc_errorf(SC_ERR_FORMAT, "%s: file of %zu bytes is too short for a safetensors header", label, size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)file[i] << (8 * i);
    if (hlen > SC_ST_MAX_HEADER) {
        rc = sc_errorf(SC_ERR_FORMAT, "%s: byte 0: header length %llu exceeds the %llu-byte limit", label,
                       (unsigned long long)hlen, (unsigned long long)SC_ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > size - 8) {
        rc = sc_errorf(SC_ERR_FORMAT, "%s: byte 0: header length %llu runs past the end of the %zu-byte file",
                       label, (unsigned long long)hlen, size);
        goto fail;
    }
    if (hlen < 2 || file[8] != '{') {
        rc = sc_errorf(SC_ERR_FORMAT, "%s: byte 8: the header does not start with '{'", label);
        goto fail;
    }
    st->data_start = 8 + (size_t)hlen;
    if ((rc = parse_header(st, (const char *)file + 8, (size_t)hlen, label)) != SC_OK) goto fail;
    if ((rc = check_layout(st, label)) != SC_OK) goto fail;
    return SC_OK;
fail:
    sc_safetensors_close(st);
    return rc;
}

sc_status sc_safetensors_open(const char *path, sc_safetensors *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return sc_errorf(SC_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return sc_errorf(SC_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size);
    }
    size_t got = fread(buf, 1, size, f);
    int err = ferror(f);
    fclose(f);
    if (got != size || err) {
        free(buf);
        return sc_errorf(SC_ERR_IO, "%s: read %zu of %zu bytes", path, got, size);
    }
    return sc_safetensors_parse(buf, size, path, out);
}

void sc_safetensors_close(sc_safetensors *st) {
    free(st->file);
    free(st->tensors);
    for (int i = 0; i < st->meta_count; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    memset(st, 0, sizeof *st);
}

const sc_st_tensor *sc_safetensors_find(const sc_safetensors *st, const char *name) {
    for (int i = 0; i < st->count; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const void *sc_safetensors_data(const sc_safetensors *st, const sc_st_tensor *t) {
    return st->file + st->data_start + t->begin;
}

const char *sc_safetensors_meta(const sc_safetensors *st, const char *key) {
    for (int i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}
