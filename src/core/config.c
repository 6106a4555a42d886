/*
 * config.c - the run configuration: defaults, YAML files, --set overrides, validation,
 * YAML output and --help (see include/simclr/config.h; the table is in config_schema.c).
 *
 * YAML is read with libfyaml's event parser rather than its document tree, because every
 * event carries a mark: errors can then name file:line:col for keys, values, list elements
 * and sections alike. The walk is driven by the schema: a key is joined to its parent's
 * dotted path, a known section recurses, a known leaf is parsed by its schema type, and
 * anything else is an error that names the full key path and, where one is close, the key
 * the user probably meant. libfyaml's own diagnostics (syntax errors) are collected rather
 * than printed, and turned into the same kind of message. Loading works on a copy, so a
 * failed load or --set leaves the caller's config untouched.
 *
 * Writing is done by hand (not with libfyaml's emitter) so that the output is fixed: schema
 * order, floats in the shortest form that reads back to the same double, strings always
 * double-quoted. Loading that output over defaults reproduces the struct bit for bit.
 */
#include "simclr/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libfyaml.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Longest dotted path handled; longer keys cannot be config keys. */
#define PATH_CAP 256
/* Room for one reason ("model.width: expected a number, got '...'"). */
#define WHY_CAP 512

/* ---- the schema ------------------------------------------------------------------------- */

static int schema_count(void) {
    int n;
    sc_config_schema(&n);
    return n;
}

const sc_config_entry *sc_config_find(const char *key) {
    int n;
    const sc_config_entry *s = sc_config_schema(&n);
    for (int i = 0; i < n; i++)
        if (strcmp(s[i].key, key) == 0) return &s[i];
    return NULL;
}

/* Index of the first schema row inside section `path` ("model.head"), or -1 when `path`
 * is not a section. This index also identifies the section. */
static int section_index(const char *path) {
    int n;
    const sc_config_entry *s = sc_config_schema(&n);
    size_t len = strlen(path);
    for (int i = 0; i < n; i++)
        if (len > 0 && strncmp(s[i].key, path, len) == 0 && s[i].key[len] == '.') return i;
    return -1;
}

/* "arch, stem, width, zero_init_residual, head": the direct children of a section. Rows of a
 * section are contiguous (struct order), so skipping repeats of the last name suffices. */
static void section_children(const char *section, char *buf, size_t cap) {
    int n;
    const sc_config_entry *s = sc_config_schema(&n);
    size_t len = strlen(section), used = 0;
    const char *last = NULL;
    size_t last_len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *key = s[i].key;
        if (len && (strncmp(key, section, len) != 0 || key[len] != '.')) continue;
        const char *child = len ? key + len + 1 : key;
        size_t clen = strcspn(child, ".");
        if (last && clen == last_len && strncmp(child, last, clen) == 0) continue;
        int w = snprintf(buf + used, cap - used, "%s%.*s", used ? ", " : "", (int)clen, child);
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
        last = child;
        last_len = clen;
    }
}

static int choice_count(const sc_config_entry *e) {
    int n = 0;
    while (e->choices[n]) n++;
    return n;
}

/* "lars, sgd" */
static void choice_list(const sc_config_entry *e, const char *sep, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; e->choices[i]; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? sep : "", e->choices[i]);
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
    }
}

/* What a value of this entry looks like, for "expected ..., got ..." messages. */
static const char *expected_what(const sc_config_entry *e, char *buf, size_t cap) {
    switch (e->type) {
    case SC_CFG_INT: return "an integer";
    case SC_CFG_FLOAT: return "a number";
    case SC_CFG_BOOL: return "true or false";
    case SC_CFG_STRING: return "a string";
    case SC_CFG_FLOAT_LIST: return "a list of numbers such as [0.5, 0.5, 0.5]";
    case SC_CFG_ENUM: {
        char list[WHY_CAP];
        choice_list(e, ", ", list, sizeof list);
        snprintf(buf, cap, "one of: %s", list);
        return buf;
    }
    }
    return "a value";
}

const char *sc_config_enum_name(const char *key, int value) {
    const sc_config_entry *e = sc_config_find(key);
    if (!e || e->type != SC_CFG_ENUM || value < 0 || value >= choice_count(e)) return NULL;
    return e->choices[value];
}

/* ---- did-you-mean ----------------------------------------------------------------------- */

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la >= PATH_CAP || lb >= PATH_CAP) return PATH_CAP;
    int rows[3][PATH_CAP + 1];
    int *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = prev[j - 1] + cost;
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < best)
                best = pp[j - 2] + 1;
            cur[j] = best;
        }
        int *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

/* " (did you mean 'model.head.out_dim'?)" or "". Looks first for a key or section spelled
 * nearly the same, then for keys with the same last name in another section
 * ("model.temperature" -> "loss.temperature"). */
static void suggest(const char *path, char *buf, size_t cap) {
    int n;
    const sc_config_entry *s = sc_config_schema(&n);
    const char *dot = strrchr(path, '.');
    const char *leaf = dot ? dot + 1 : path;
    int limit = 1 + (int)strlen(leaf) / 4;
    if (limit > 3) limit = 3;

    char best[PATH_CAP] = "";
    int best_d = limit + 1;
    for (int i = 0; i < n; i++) {
        /* The key itself and each section above it ("model", "model.head"). */
        const char *key = s[i].key;
        for (const char *end = key;; end++) {
            if (*end == '.' || *end == '\0') {
                char cand[PATH_CAP];
                snprintf(cand, sizeof cand, "%.*s", (int)(end - key), key);
                int d = edit_distance(path, cand);
                if (d < best_d) {
                    best_d = d;
                    memcpy(best, cand, sizeof best);
                }
            }
            if (*end == '\0') break;
        }
    }
    if (best[0]) {
        snprintf(buf, cap, " (did you mean '%s'?)", best);
        return;
    }

    char list[WHY_CAP] = "";
    size_t used = 0;
    int found = 0;
    for (int i = 0; i < n; i++) {
        const char *kdot = strrchr(s[i].key, '.');
        if (strcmp(kdot ? kdot + 1 : s[i].key, leaf) != 0) continue;
        int w = snprintf(list + used, sizeof list - used, "%s'%s'", found ? " or " : "", s[i].key);
        if (w < 0 || (size_t)w >= sizeof list - used) break;
        used += (size_t)w;
        found++;
    }
    if (found) snprintf(buf, cap, " (did you mean %s?)", list);
    else buf[0] = '\0';
}

/* ---- scalar values ---------------------------------------------------------------------- */

/* A scalar's text for messages: at most 40 characters, control characters shown as '?'. */
static void quote_text(const char *text, size_t len, char *buf, size_t cap) {
    size_t shown = len > 40 ? 40 : len, o = 0;
    for (size_t i = 0; i < shown && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)text[i];
        buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    buf[o] = '\0';
    if (shown < len && o + 4 < cap) strcat(buf, "...");
}

/* A bound for messages: integers exactly, floats in their shortest exact form. */
static void format_bound(const sc_config_entry *e, double v, char *buf, size_t cap) {
    if (e->type == SC_CFG_INT && v >= 9223372036854775807.0) snprintf(buf, cap, "%lld", (long long)INT64_MAX);
    else if (e->type == SC_CFG_INT) snprintf(buf, cap, "%lld", (long long)v);
    else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, cap, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
    }
}

static int range_why(const sc_config_entry *e, const char *shown, char *why, size_t cap) {
    char lo[40], hi[40];
    format_bound(e, e->min, lo, sizeof lo);
    format_bound(e, e->max, hi, sizeof hi);
    snprintf(why, cap, "%s is out of range [%s, %s]", shown, lo, hi);
    return 0;
}

static int is_null_word(const char *t, size_t len) {
    return len == 0 || (len == 1 && t[0] == '~') ||
           (len == 4 && (!memcmp(t, "null", 4) || !memcmp(t, "Null", 4) || !memcmp(t, "NULL", 4)));
}

/* Copy a scalar (not NUL-terminated) into buf; 0 when it does not fit. */
static int copy_text(const char *text, size_t len, char *buf, size_t cap) {
    if (len >= cap) return 0;
    memcpy(buf, text, len);
    buf[len] = '\0';
    return 1;
}

/* Parse a finite number that is in range; the text must be a plain decimal number. */
static int parse_number(const sc_config_entry *e, const char *text, size_t len, double *out, char *why,
                        size_t cap) {
    char shown[64], buf[128];
    quote_text(text, len, shown, sizeof shown);
    if (!copy_text(text, len, buf, sizeof buf) || len == 0 || strspn(buf, "0123456789+-.eE") < len) {
        /* Name the real problem for spellings of infinity and NaN. */
        const char *t = buf;
        if (len >= sizeof buf) buf[0] = '\0';
        if (*t == '+' || *t == '-') t++;
        if (*t == '.') t++;
        if (!strcasecmp(t, "inf") || !strcasecmp(t, "infinity") || !strcasecmp(t, "nan"))
            snprintf(why, cap, "expected a finite number, got '%s'", shown);
        else snprintf(why, cap, "expected a number, got '%s'", shown);
        return 0;
    }
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + len) {
        snprintf(why, cap, "expected a number, got '%s'", shown);
        return 0;
    }
    if (!isfinite(v)) {
        snprintf(why, cap, "expected a finite number, got '%s'", shown);
        return 0;
    }
    if (!(v >= e->min && v <= e->max)) return range_why(e, shown, why, cap);
    *out = v;
    return 1;
}

static int parse_integer(const sc_config_entry *e, const char *text, size_t len, int64_t *out, char *why,
                         size_t cap) {
    char shown[64], buf[128];
    quote_text(text, len, shown, sizeof shown);
    size_t from = (len > 0 && (text[0] == '+' || text[0] == '-')) ? 1 : 0;
    if (!copy_text(text, len, buf, sizeof buf) || len == from || strspn(buf + from, "0123456789") < len - from) {
        snprintf(why, cap, "expected an integer, got '%s'", shown);
        return 0;
    }
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    if (errno == ERANGE || (double)v < e->min || (double)v > e->max) return range_why(e, shown, why, cap);
    *out = v;
    return 1;
}

/* Store one scalar into the entry's field. Returns 1, or 0 with the reason in `why`. */
static int set_scalar(sc_config *cfg, const sc_config_entry *e, const char *text, size_t len, char *why,
                      size_t cap) {
    char *field = (char *)cfg + e->offset;
    char shown[64], what[WHY_CAP];
    quote_text(text, len, shown, sizeof shown);
    switch (e->type) {
    case SC_CFG_INT: {
        int64_t v = 0;
        if (!parse_integer(e, text, len, &v, why, cap)) return 0;
        if (e->size == sizeof(int64_t)) memcpy(field, &v, sizeof v);
        else {
            int iv = (int)v;
            memcpy(field, &iv, sizeof iv);
        }
        return 1;
    }
    case SC_CFG_FLOAT: {
        double v;
        if (!parse_number(e, text, len, &v, why, cap)) return 0;
        memcpy(field, &v, sizeof v);
        return 1;
    }
    case SC_CFG_BOOL: {
        static const char *const spell[2][3] = {{"false", "False", "FALSE"}, {"true", "True", "TRUE"}};
        for (int b = 0; b < 2; b++)
            for (int k = 0; k < 3; k++)
                if (strlen(spell[b][k]) == len && !memcmp(spell[b][k], text, len)) {
                    memcpy(field, &b, sizeof b);
                    return 1;
                }
        snprintf(why, cap, "expected true or false, got '%s'", shown);
        return 0;
    }
    case SC_CFG_ENUM: {
        for (int i = 0; e->choices[i]; i++)
            if (strlen(e->choices[i]) == len && !memcmp(e->choices[i], text, len)) {
                memcpy(field, &i, sizeof i);
                return 1;
            }
        choice_list(e, ", ", what, sizeof what);
        snprintf(why, cap, "'%s' is not one of: %s", shown, what);
        return 0;
    }
    case SC_CFG_STRING:
        if (memchr(text, '\0', len)) {
            snprintf(why, cap, "strings may not contain NUL characters");
            return 0;
        }
        if (len >= e->size) {
            snprintf(why, cap, "'%s' is %zu bytes long; the limit is %zu", shown, len, e->size - 1);
            return 0;
        }
        memset(field, 0, e->size); /* no stale bytes after the terminator: configs compare with memcmp */
        memcpy(field, text, len);
        return 1;
    case SC_CFG_FLOAT_LIST: break;
    }
    snprintf(why, cap, "expected %s, got '%s'", expected_what(e, what, sizeof what), shown);
    return 0;
}

/* ---- rules on single fields, checked at load time and again by sc_config_validate ------ */

static int device_ok(const char *d) {
    if (!strcmp(d, "auto") || !strcmp(d, "cpu") || !strcmp(d, "cuda")) return 1;
    if (strncmp(d, "cuda:", 5) != 0) return 0;
    size_t digits = strspn(d + 5, "0123456789");
    return digits >= 1 && digits <= 4 && d[5 + digits] == '\0';
}

/* Returns 1 when the field obeys its special rule, else 0 with a message naming the key. */
static int field_rule(const sc_config *cfg, const sc_config_entry *e, char *why, size_t cap) {
    if (e->offset == offsetof(sc_config, run.device) && !device_ok(cfg->run.device)) {
        snprintf(why, cap, "run.device: '%s' is not a device; use auto, cpu, cuda or cuda:N", cfg->run.device);
        return 0;
    }
    if (e->offset == offsetof(sc_config, data.channels) && cfg->data.channels != 0 &&
        cfg->data.channels != 1 && cfg->data.channels != 3) {
        snprintf(why, cap, "data.channels: %d is not allowed; use 0 (as stored), 1 or 3", cfg->data.channels);
        return 0;
    }
    if (e->offset == offsetof(sc_config, data.std)) {
        for (int i = 0; i < cfg->data.std_count && i < SC_CFG_LIST; i++)
            if (!(cfg->data.std[i] > 0)) {
                snprintf(why, cap, "data.std[%d] is %g; standard deviations must be > 0", i, cfg->data.std[i]);
                return 0;
            }
    }
    return 1;
}

/* ---- the YAML walk ---------------------------------------------------------------------- */

typedef struct pos {
    int line, col; /* 0-based; -1 when unknown */
} pos;

typedef struct seen_mark {
    int seen;
    pos at;
} seen_mark;

typedef struct loader {
    struct fy_parser *fyp;
    struct fy_diag *diag;
    const char *name;       /* file label for file:line:col */
    const char *assignment; /* set for --set: errors start "--set <assignment>: " */
    sc_config *cfg;         /* the working copy */
    seen_mark *seen;        /* [count] leaves, then [count] sections by section_index */
    int count;
} loader;

static pos event_pos(struct fy_event *ev) {
    const struct fy_mark *m = fy_event_start_mark(ev);
    pos p = {-1, -1};
    if (m && m->line >= 0) {
        p.line = m->line;
        p.col = m->column;
    }
    return p;
}

__attribute__((format(printf, 3, 4))) static sc_status fail(const loader *L, pos p, const char *fmt, ...) {
    char msg[WHY_CAP * 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (L->assignment) return sc_errorf(SC_ERR_CONFIG, "--set %s: %s", L->assignment, msg);
    if (p.line >= 0) return sc_errorf(SC_ERR_CONFIG, "%s:%d:%d: %s", L->name, p.line + 1, p.col + 1, msg);
    return sc_errorf(SC_ERR_CONFIG, "%s: %s", L->name, msg);
}

static sc_status loader_open(loader *L, const char *text, size_t len) {
    struct fy_diag_cfg dc;
    fy_diag_cfg_default(&dc);
    dc.fp = NULL; /* never print: errors are collected and returned */
    dc.output_fn = NULL;
    dc.level = FYET_ERROR;
    dc.colorize = false;
    L->diag = fy_diag_create(&dc);
    if (!L->diag) return sc_errorf(SC_ERR_NOMEM, "%s: cannot create a YAML diagnostic object", L->name);
    fy_diag_set_collect_errors(L->diag, true);
    struct fy_parse_cfg pc = {.flags = FYPCF_QUIET, .diag = L->diag};
    L->fyp = fy_parser_create(&pc);
    if (!L->fyp || fy_parser_set_string(L->fyp, text, len) != 0)
        return sc_errorf(SC_ERR_NOMEM, "%s: cannot create a YAML parser", L->name);
    return SC_OK;
}

static void loader_close(loader *L) {
    if (L->fyp) fy_parser_destroy(L->fyp);
    if (L->diag) fy_diag_destroy(L->diag);
    free(L->seen);
}

/* The next event, or the parser's first collected error ("file:line:col: <libfyaml text>"). */
static sc_status next_event(loader *L, struct fy_event **out) {
    *out = fy_parser_parse(L->fyp);
    if (*out) return SC_OK;
    void *iter = NULL;
    struct fy_diag_error *de = fy_diag_errors_iterate(L->diag, &iter);
    if (!de) return fail(L, (pos){-1, -1}, "invalid YAML (the input ended unexpectedly)");
    if (L->assignment) /* a short one-line value: a column would add nothing */
        return fail(L, (pos){-1, -1}, "invalid YAML value: %s", de->msg);
    return fail(L, (pos){de->line - 1, de->column - 1}, "invalid YAML: %s", de->msg);
}

static void drop(loader *L, struct fy_event *ev) { fy_parser_event_free(L->fyp, ev); }

static const char *node_kind(struct fy_event *ev) {
    switch (ev->type) {
    case FYET_MAPPING_START: return "a mapping";
    case FYET_SEQUENCE_START: return "a sequence";
    case FYET_ALIAS: return "an alias";
    default: return "a scalar";
    }
}

/* Reject YAML features a config has no use for: aliases and explicit tags. */
static sc_status plain_node(loader *L, struct fy_event *ev, const char *path) {
    struct fy_token *tag = NULL;
    if (ev->type == FYET_ALIAS)
        return fail(L, event_pos(ev), "%s: YAML aliases (*name) are not supported", path);
    if (ev->type == FYET_SCALAR) tag = ev->scalar.tag;
    if (ev->type == FYET_MAPPING_START) tag = ev->mapping_start.tag;
    if (ev->type == FYET_SEQUENCE_START) tag = ev->sequence_start.tag;
    if (tag) {
        size_t len;
        const char *t = fy_token_get_text(tag, &len);
        return fail(L, event_pos(ev), "%s: YAML tags are not supported (found %.*s)", path, (int)len, t ? t : "?");
    }
    return SC_OK;
}

static int scalar_is_null(struct fy_event *ev, const char **text, size_t *len) {
    *text = fy_token_get_text(ev->scalar.value, len);
    if (!*text) {
        *text = "";
        *len = 0;
    }
    return fy_token_scalar_style(ev->scalar.value) == FYSS_PLAIN && is_null_word(*text, *len);
}

/* The elements of a flow or block sequence of numbers, up to its end event, into a FLOAT_LIST
 * entry; `at` locates the sequence. */
static sc_status read_list(loader *L, const sc_config_entry *e, pos at) {
    double vals[SC_CFG_LIST];
    char why[WHY_CAP];
    size_t n = 0;
    for (;;) {
        struct fy_event *ev;
        SC_TRY(next_event(L, &ev));
        if (ev->type == FYET_SEQUENCE_END) {
            drop(L, ev);
            break;
        }
        pos p = event_pos(ev);
        if (p.line < 0) p = at;
        char elem[PATH_CAP + 16];
        snprintf(elem, sizeof elem, "%s[%zu]", e->key, n);
        sc_status st = plain_node(L, ev, elem);
        const char *text;
        size_t len;
        if (st == SC_OK && ev->type != FYET_SCALAR)
            st = fail(L, p, "%s: expected a number, got %s", elem, node_kind(ev));
        else if (st == SC_OK && scalar_is_null(ev, &text, &len))
            st = fail(L, p, "%s: missing value", elem);
        else if (st == SC_OK && n == e->size)
            st = fail(L, p, "%s: too many values; at most %zu are allowed", e->key, e->size);
        else if (st == SC_OK && !parse_number(e, text, len, &vals[n], why, sizeof why))
            st = fail(L, p, "%s: %s", elem, why);
        drop(L, ev);
        if (st != SC_OK) return st;
        n++;
    }
    double *list = (double *)((char *)L->cfg + e->offset);
    memset(list, 0, e->size * sizeof(double));
    memcpy(list, vals, n * sizeof(double));
    int count = (int)n;
    memcpy((char *)L->cfg + e->count_offset, &count, sizeof count);
    return SC_OK;
}

/* The value of leaf `e`, starting at event `ev` (consumed). `key_at` locates the key, for
 * values that have no position of their own (an empty value). */
static sc_status apply_leaf(loader *L, const sc_config_entry *e, struct fy_event *ev, pos key_at) {
    char why[WHY_CAP], what[WHY_CAP];
    pos p = event_pos(ev);
    if (p.line < 0) p = key_at;
    sc_status st = plain_node(L, ev, e->key);
    int is_list = ev->type == FYET_SEQUENCE_START && e->type == SC_CFG_FLOAT_LIST;
    const char *text;
    size_t len;
    if (st == SC_OK && !is_list) {
        if (ev->type != FYET_SCALAR)
            st = fail(L, p, "%s: expected %s, got %s", e->key, expected_what(e, what, sizeof what), node_kind(ev));
        else if (scalar_is_null(ev, &text, &len))
            st = fail(L, p, "%s: missing value%s", e->key,
                      e->type == SC_CFG_STRING ? " (write \"\" for an empty string)" : "");
        else if (!set_scalar(L->cfg, e, text, len, why, sizeof why))
            st = fail(L, p, "%s: %s", e->key, why);
    }
    drop(L, ev);
    if (st == SC_OK && is_list) st = read_list(L, e, p);
    if (st == SC_OK && !field_rule(L->cfg, e, why, sizeof why)) st = fail(L, p, "%s", why);
    return st;
}

static sc_status walk_mapping(loader *L, const char *prefix);

/* The value of section `path` ("" for the document root): a mapping, or null for an empty
 * section. `ev` is consumed. */
static sc_status apply_section(loader *L, const char *path, struct fy_event *ev, pos key_at) {
    pos p = event_pos(ev);
    if (p.line < 0) p = key_at;
    sc_status st = plain_node(L, ev, path[0] ? path : "the document");
    int is_map = ev->type == FYET_MAPPING_START;
    const char *text = "";
    size_t len = 0;
    int is_null = ev->type == FYET_SCALAR && scalar_is_null(ev, &text, &len);
    if (st == SC_OK && !is_map && !is_null) {
        char children[WHY_CAP], shown[64], got[80];
        section_children(path, children, sizeof children);
        quote_text(text, len, shown, sizeof shown);
        if (ev->type == FYET_SCALAR) snprintf(got, sizeof got, "'%s'", shown);
        else snprintf(got, sizeof got, "%s", node_kind(ev));
        if (path[0])
            st = fail(L, p, "%s: is a section; expected a mapping of its keys (%s), got %s", path, children, got);
        else st = fail(L, p, "the top level must be a mapping of sections (%s), got %s", children, got);
    }
    drop(L, ev);
    if (st == SC_OK && is_map) st = walk_mapping(L, path);
    return st;
}

/* Remember where a key was set; a second setting in the same input is an error. */
static sc_status mark_seen(loader *L, int slot, const char *path, pos at) {
    seen_mark *m = &L->seen[slot];
    if (m->seen)
        return fail(L, at, "duplicate key '%s' (first set at line %d, column %d)", path, m->at.line + 1,
                    m->at.col + 1);
    m->seen = 1;
    m->at = at;
    return SC_OK;
}

/* The keys of a mapping whose dotted path is `prefix` ("" at the top). */
static sc_status walk_mapping(loader *L, const char *prefix) {
    for (;;) {
        struct fy_event *kev;
        SC_TRY(next_event(L, &kev));
        if (kev->type == FYET_MAPPING_END) {
            drop(L, kev);
            return SC_OK;
        }
        pos kat = event_pos(kev);
        char where[PATH_CAP + 16];
        if (prefix[0]) snprintf(where, sizeof where, "section '%s'", prefix);
        else snprintf(where, sizeof where, "the top level");
        sc_status st = plain_node(L, kev, where);
        const char *text;
        size_t len;
        char path[PATH_CAP], shown[64];
        if (st == SC_OK && kev->type != FYET_SCALAR)
            st = fail(L, kat, "keys must be plain names; found %s as a key in %s", node_kind(kev), where);
        else if (st == SC_OK && scalar_is_null(kev, &text, &len))
            st = fail(L, kat, "empty key in %s", where);
        else if (st == SC_OK) {
            quote_text(text, len, shown, sizeof shown);
            int w = snprintf(path, sizeof path, "%s%s%.*s", prefix, prefix[0] ? "." : "", (int)len, text);
            if (w < 0 || (size_t)w >= sizeof path || memchr(text, '\0', len))
                st = fail(L, kat, "unknown key '%s' in %s", shown, where);
        }
        drop(L, kev);
        if (st != SC_OK) return st;

        const sc_config_entry *e = sc_config_find(path);
        int section = e ? -1 : section_index(path);
        if (!e && section < 0) {
            char hint[WHY_CAP];
            suggest(path, hint, sizeof hint);
            return fail(L, kat, "unknown key '%s'%s", path, hint);
        }
        SC_TRY(mark_seen(L, e ? (int)(e - sc_config_schema(NULL)) : L->count + section, path, kat));

        struct fy_event *vev;
        SC_TRY(next_event(L, &vev));
        SC_TRY(e ? apply_leaf(L, e, vev, kat) : apply_section(L, path, vev, kat));
    }
}

/* A whole config document: empty, null, or a mapping of sections. */
static sc_status load_document(loader *L) {
    struct fy_event *ev;
    SC_TRY(next_event(L, &ev)); /* stream start */
    drop(L, ev);
    SC_TRY(next_event(L, &ev));
    int empty = ev->type == FYET_STREAM_END; /* an empty file, or only comments */
    drop(L, ev);                             /* else the document start */
    if (empty) return SC_OK;

    SC_TRY(next_event(L, &ev));
    SC_TRY(apply_section(L, "", ev, (pos){-1, -1}));

    SC_TRY(next_event(L, &ev)); /* document end */
    drop(L, ev);
    SC_TRY(next_event(L, &ev));
    pos at = event_pos(ev);
    int more = ev->type == FYET_DOCUMENT_START;
    drop(L, ev);
    if (more) return fail(L, at, "a config file holds one YAML document; a second one starts here");
    return SC_OK;
}

sc_status sc_config_load_string(sc_config *cfg, const char *yaml, const char *name) {
    sc_config work = *cfg;
    loader L = {.name = name ? name : "<string>", .cfg = &work, .count = schema_count()};
    L.seen = calloc(2 * (size_t)L.count, sizeof *L.seen);
    sc_status st = L.seen ? loader_open(&L, yaml, strlen(yaml))
                          : sc_errorf(SC_ERR_NOMEM, "%s: out of memory", L.name);
    if (st == SC_OK) st = load_document(&L);
    loader_close(&L);
    if (st == SC_OK) *cfg = work;
    return st;
}

sc_status sc_config_load_file(sc_config *cfg, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return sc_errorf(SC_ERR_IO, "%s: cannot open config file: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int err = 0;
    while (buf) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (ferror(f)) {
            err = errno;
            break;
        }
        if (feof(f)) break;
        char *grown = realloc(buf, cap * 2);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    fclose(f);
    if (!buf) return sc_errorf(SC_ERR_NOMEM, "%s: out of memory reading the config file", path);
    if (err) {
        free(buf);
        return sc_errorf(SC_ERR_IO, "%s: cannot read config file: %s", path, strerror(err));
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        free(buf);
        return sc_errorf(SC_ERR_CONFIG, "%s: contains a NUL byte; a config file must be YAML text", path);
    }
    sc_status st = sc_config_load_string(cfg, buf, path);
    free(buf);
    return st;
}

/* One value for leaf `e` from YAML text (a scalar or a flow sequence), as --set reads it. */
static sc_status apply_value_text(sc_config *cfg, const sc_config_entry *e, const char *value,
                                  const char *assignment) {
    sc_config work = *cfg;
    loader L = {.name = "--set", .assignment = assignment, .cfg = &work};
    sc_status st = loader_open(&L, value, strlen(value));
    struct fy_event *ev = NULL;
    if (st == SC_OK) st = next_event(&L, &ev); /* stream start */
    if (ev) drop(&L, ev);
    if (st == SC_OK) st = next_event(&L, &ev);
    if (st == SC_OK) {
        int empty = ev->type == FYET_STREAM_END;
        drop(&L, ev);
        if (empty) st = fail(&L, (pos){-1, -1}, "%s: missing value%s", e->key,
                             e->type == SC_CFG_STRING ? " (write \"\" for an empty string)" : "");
    }
    if (st == SC_OK) st = next_event(&L, &ev);
    if (st == SC_OK) st = apply_leaf(&L, e, ev, (pos){-1, -1});
    if (st == SC_OK) st = next_event(&L, &ev); /* document end */
    if (st == SC_OK) {
        drop(&L, ev);
        st = next_event(&L, &ev);
    }
    if (st == SC_OK) {
        int more = ev->type != FYET_STREAM_END;
        drop(&L, ev);
        if (more) st = fail(&L, (pos){-1, -1}, "%s: expected a single value", e->key);
    }
    loader_close(&L);
    if (st == SC_OK) *cfg = work;
    return st;
}

sc_status sc_config_set(sc_config *cfg, const char *assignment) {
    const char *eq = strchr(assignment, '=');
    if (!eq) return sc_errorf(SC_ERR_CONFIG, "--set %s: expected key=value, e.g. --set model.width=0.5", assignment);
    const char *k = assignment, *kend = eq;
    while (k < kend && isspace((unsigned char)*k)) k++;
    while (kend > k && isspace((unsigned char)kend[-1])) kend--;
    char key[PATH_CAP];
    if ((size_t)(kend - k) >= sizeof key)
        return sc_errorf(SC_ERR_CONFIG, "--set %s: unknown key (too long to be a config key)", assignment);
    memcpy(key, k, (size_t)(kend - k));
    key[kend - k] = '\0';

    const sc_config_entry *e = sc_config_find(key);
    if (!e) {
        char hint[WHY_CAP];
        if (section_index(key) >= 0) {
            section_children(key, hint, sizeof hint);
            return sc_errorf(SC_ERR_CONFIG, "--set %s: '%s' is a section; set one of its keys (%s)", assignment,
                             key, hint);
        }
        suggest(key, hint, sizeof hint);
        return sc_errorf(SC_ERR_CONFIG, "--set %s: unknown key '%s'%s", assignment, key, hint);
    }
    return apply_value_text(cfg, e, eq + 1, assignment);
}

void sc_config_defaults(sc_config *cfg) {
    int n;
    const sc_config_entry *s = sc_config_schema(&n);
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < n; i++) {
        sc_status st = apply_value_text(cfg, &s[i], s[i].def, s[i].key);
        SC_CHECK(st == SC_OK, "schema default of %s is invalid: %s", s[i].key, sc_last_error());
    }
}

/* ---- validation ------------------------------------------------------------------------- */

/* Does the stored value of `e` obey the schema (a config built in code can break it)? */
static int stored_value_ok(const sc_config *cfg, const sc_config_entry *e, char *why, size_t cap) {
    const char *field = (const char *)cfg + e->offset;
    char shown[64];
    switch (e->type) {
    case SC_CFG_INT: {
        int64_t v;
        if (e->size == sizeof(int64_t)) memcpy(&v, field, sizeof v);
        else {
            int iv;
            memcpy(&iv, field, sizeof iv);
            v = iv;
        }
        snprintf(shown, sizeof shown, "%lld", (long long)v);
        if ((double)v < e->min || (double)v > e->max) {
            range_why(e, shown, why, cap);
            return 0;
        }
        return 1;
    }
    case SC_CFG_FLOAT: {
        double v;
        memcpy(&v, field, sizeof v);
        format_bound(e, v, shown, sizeof shown);
        if (!(v >= e->min && v <= e->max)) { /* also catches NaN */
            range_why(e, shown, why, cap);
            return 0;
        }
        return 1;
    }
    case SC_CFG_BOOL:
    case SC_CFG_ENUM: {
        int v;
        memcpy(&v, field, sizeof v);
        int n = e->type == SC_CFG_BOOL ? 2 : choice_count(e);
        if (v < 0 || v >= n) {
            snprintf(why, cap, "%d is not a valid %s value", v, e->type == SC_CFG_BOOL ? "boolean" : "choice");
            return 0;
        }
        return 1;
    }
    case SC_CFG_STRING:
        if (!memchr(field, '\0', e->size)) {
            snprintf(why, cap, "the string is not terminated within its %zu bytes", e->size);
            return 0;
        }
        return 1;
    case SC_CFG_FLOAT_LIST: {
        int count;
        memcpy(&count, (const char *)cfg + e->count_offset, sizeof count);
        if (count < 0 || (size_t)count > e->size) {
            snprintf(why, cap, "holds %d values; at most %zu are allowed", count, e->size);
            return 0;
        }
        for (int i = 0; i < count; i++) {
            double v;
            memcpy(&v, field + (size_t)i * sizeof(double), sizeof v);
            format_bound(e, v, shown, sizeof shown);
            if (!(v >= e->min && v <= e->max)) {
                char inner[256];
                range_why(e, shown, inner, sizeof inner);
                snprintf(why, cap, "element %d: %s", i, inner);
                return 0;
            }
        }
        return 1;
    }
    }
    return 1;
}

static sc_status ordered(const char *lo_key, double lo, const char *hi_key, double hi) {
    if (lo <= hi) return SC_OK;
    return sc_errorf(SC_ERR_CONFIG, "%s (%g) must not exceed %s (%g)", lo_key, lo, hi_key, hi);
}

sc_status sc_config_validate(const sc_config *cfg) {
    int n;
    const sc_config_entry *s = sc_config_schema(&n);
    char why[WHY_CAP];
    for (int i = 0; i < n; i++) {
        if (!stored_value_ok(cfg, &s[i], why, sizeof why)) return sc_errorf(SC_ERR_CONFIG, "%s: %s", s[i].key, why);
        if (!field_rule(cfg, &s[i], why, sizeof why)) return sc_errorf(SC_ERR_CONFIG, "%s", why);
    }
    SC_TRY(ordered("augment.crop_scale_min", cfg->augment.crop_scale_min, "augment.crop_scale_max",
                   cfg->augment.crop_scale_max));
    SC_TRY(ordered("augment.crop_ratio_min", cfg->augment.crop_ratio_min, "augment.crop_ratio_max",
                   cfg->augment.crop_ratio_max));
    SC_TRY(ordered("augment.blur_sigma_min", cfg->augment.blur_sigma_min, "augment.blur_sigma_max",
                   cfg->augment.blur_sigma_max));
    SC_TRY(ordered("eval.probe_l2_min", cfg->eval.probe_l2_min, "eval.probe_l2_max", cfg->eval.probe_l2_max));
    if (cfg->data.mean_count != cfg->data.std_count)
        return sc_errorf(SC_ERR_CONFIG,
                         "data.mean has %d values but data.std has %d; give both, one value per channel, "
                         "or neither",
                         cfg->data.mean_count, cfg->data.std_count);
    if (cfg->run.name[0] == '\0') return sc_errorf(SC_ERR_CONFIG, "run.name: must not be empty");
    const int encoded = cfg->data.dataset == SC_DATASET_IMAGEFOLDER || cfg->data.dataset == SC_DATASET_SHARDS;
    if (encoded) {
        const char *kind = sc_config_enum_name("data.dataset", cfg->data.dataset);
        if (!cfg->data.path[0])
            return sc_errorf(SC_ERR_CONFIG, "data.path is required for data.dataset: %s", kind);
        if (cfg->data.image_size == 0)
            return sc_errorf(SC_ERR_CONFIG,
                             "data.image_size is required for data.dataset: %s: its images differ in size, so "
                             "the side of the augmented views must be given (e.g. 224)",
                             kind);
        if (cfg->eval.linear_probe && !cfg->data.test_path[0])
            return sc_errorf(SC_ERR_CONFIG,
                             "eval.linear_probe needs a labelled test split: set data.test_path for "
                             "data.dataset: %s, or eval.linear_probe: false",
                             kind);
        if (cfg->eval.linear_probe && cfg->data.dataset == SC_DATASET_IMAGEFOLDER && !cfg->data.labeled)
            return sc_errorf(SC_ERR_CONFIG,
                             "eval.linear_probe needs labels, but data.labeled is false; set "
                             "eval.linear_probe: false");
    }
    return SC_OK;
}

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct strbuf {
    char *p;
    size_t len, cap;
    int oom;
} strbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(strbuf *b, const char *fmt, ...) {
    for (;;) {
        if (b->oom) return;
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && (size_t)w < b->cap - b->len) {
            b->len += (size_t)w;
            return;
        }
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + (size_t)w + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* The shortest of %.15g, %.16g, %.17g that reads back exactly, with a decimal point so that
 * every YAML reader (1.1 ones included) sees a float: 1e-06 -> 1.0e-06, 100 -> 100.0. */
static void format_float(double v, char *buf, size_t cap) {
    char tmp[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    if (strchr(tmp, '.')) {
        snprintf(buf, cap, "%s", tmp);
        return;
    }
    char *exp = strchr(tmp, 'e');
    if (exp) snprintf(buf, cap, "%.*s.0%s", (int)(exp - tmp), tmp, exp);
    else snprintf(buf, cap, "%s.0", tmp);
}

static void sb_quoted(strbuf *b, const char *s) {
    sb_printf(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') sb_printf(b, "\\%c", *c);
        else if (*c == '\n') sb_printf(b, "\\n");
        else if (*c == '\t') sb_printf(b, "\\t");
        else if (*c == '\r') sb_printf(b, "\\r");
        else if (*c < 0x20 || *c == 0x7f) sb_printf(b, "\\x%02x", *c);
        else sb_printf(b, "%c", *c); /* UTF-8 passes through unchanged */
    }
    sb_printf(b, "\"");
}

static void sb_value(strbuf *b, const sc_config *cfg, const sc_config_entry *e) {
    const char *field = (const char *)cfg + e->offset;
    char num[48];
    int iv;
    switch (e->type) {
    case SC_CFG_INT:
        if (e->size == sizeof(int64_t)) {
            int64_t v;
            memcpy(&v, field, sizeof v);
            sb_printf(b, "%lld", (long long)v);
        } else {
            memcpy(&iv, field, sizeof iv);
            sb_printf(b, "%d", iv);
        }
        return;
    case SC_CFG_FLOAT: {
        double v;
        memcpy(&v, field, sizeof v);
        format_float(v, num, sizeof num);
        sb_printf(b, "%s", num);
        return;
    }
    case SC_CFG_BOOL:
        memcpy(&iv, field, sizeof iv);
        sb_printf(b, "%s", iv ? "true" : "false");
        return;
    case SC_CFG_ENUM:
        memcpy(&iv, field, sizeof iv);
        sb_printf(b, "%s", iv >= 0 && iv < choice_count(e) ? e->choices[iv] : "~");
        return;
    case SC_CFG_STRING: {
        char str[SC_CFG_STR + 1];
        size_t cap = e->size < sizeof str ? e->size : sizeof str - 1;
        memcpy(str, field, cap);
        str[cap] = '\0';
        sb_quoted(b, str);
        return;
    }
    case SC_CFG_FLOAT_LIST: {
        int count;
        memcpy(&count, (const char *)cfg + e->count_offset, sizeof count);
        sb_printf(b, "[");
        for (int i = 0; i < count && (size_t)i < e->size; i++) {
            double v;
            memcpy(&v, field + (size_t)i * sizeof(double), sizeof v);
            format_float(v, num, sizeof num);
            sb_printf(b, "%s%s", i ? ", " : "", num);
        }
        sb_printf(b, "]");
        return;
    }
    }
}

void sc_config_format_value(const sc_config *cfg, const sc_config_entry *e, char *buf, size_t cap) {
    strbuf b = {0};
    sb_value(&b, cfg, e);
    snprintf(buf, cap, "%s", b.oom || !b.p ? "?" : b.p);
    free(b.p);
}

char *sc_config_to_yaml(const sc_config *cfg) {
    int n;
    const sc_config_entry *s = sc_config_schema(&n);
    strbuf b = {0};
    sb_printf(&b, "# simclr resolved configuration: every key, in schema order\n");
    const char *prev = "";
    for (int i = 0; i < n; i++) {
        const char *key = s[i].key;
        /* Sections shared with the previous key are open already; open the rest. */
        int depth = 0;
        size_t start = 0;
        for (size_t j = 0;; j++) {
            if (key[j] == '\0') break;
            if (key[j] != '.') continue;
            int open = strncmp(key, prev, j + 1) == 0;
            if (!open) sb_printf(&b, "%*s%.*s:\n", 2 * depth, "", (int)(j - start), key + start);
            depth++;
            start = j + 1;
        }
        sb_printf(&b, "%*s%s: ", 2 * depth, "", key + start);
        sb_value(&b, cfg, &s[i]);
        sb_printf(&b, "\n");
        prev = key;
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static sc_status write_all(int fd, const char *data, size_t len, const char *path) {
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return sc_errorf(SC_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        data += w;
        len -= (size_t)w;
    }
    return SC_OK;
}

/* Make a rename inside the directory of `path` durable. */
static sc_status sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sc_errorf(SC_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0) return sc_errorf(SC_ERR_IO, "%s: cannot sync directory: %s", dir, strerror(err));
    return SC_OK;
}

sc_status sc_config_write_file(const sc_config *cfg, const char *path) {
    char *yaml = sc_config_to_yaml(cfg);
    size_t tlen = strlen(path) + 5;
    char *tmp = malloc(tlen);
    if (!yaml || !tmp) {
        free(yaml);
        free(tmp);
        return sc_errorf(SC_ERR_NOMEM, "%s: out of memory writing the config", path);
    }
    snprintf(tmp, tlen, "%s.tmp", path);
    sc_status st = SC_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) st = sc_errorf(SC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    if (st == SC_OK) st = write_all(fd, yaml, strlen(yaml), tmp);
    if (st == SC_OK && fsync(fd) != 0) st = sc_errorf(SC_ERR_IO, "%s: cannot sync: %s", tmp, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && st == SC_OK)
        st = sc_errorf(SC_ERR_IO, "%s: cannot close: %s", tmp, strerror(errno));
    if (st == SC_OK && rename(tmp, path) != 0)
        st = sc_errorf(SC_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (st != SC_OK && fd >= 0) unlink(tmp);
    if (st == SC_OK) st = sync_parent_dir(path);
    free(yaml);
    free(tmp);
    return st;
}

/* ---- help ------------------------------------------------------------------------------- */

/* "int 2..1048576", "float 1e-06..1", "bool", "string", "lars|sgd", "floats (<= 4)". */
static void type_column(const sc_config_entry *e, char *buf, size_t cap) {
    char lo[40], hi[40];
    format_bound(e, e->min, lo, sizeof lo);
    format_bound(e, e->max, hi, sizeof hi);
    switch (e->type) {
    case SC_CFG_INT:
        if (e->max >= 9223372036854775807.0) snprintf(buf, cap, "int >= %s", lo);
        else snprintf(buf, cap, "int %s..%s", lo, hi);
        return;
    case SC_CFG_FLOAT: snprintf(buf, cap, "float %s..%s", lo, hi); return;
    case SC_CFG_BOOL: snprintf(buf, cap, "bool"); return;
    case SC_CFG_STRING: snprintf(buf, cap, "string"); return;
    case SC_CFG_ENUM: choice_list(e, "|", buf, cap); return;
    case SC_CFG_FLOAT_LIST: snprintf(buf, cap, "[float] (<= %zu)", e->size); return;
    }
}

void sc_config_print_help(FILE *f) {
    int n;
    const sc_config_entry *s = sc_config_schema(&n);
    int wkey = (int)strlen("key"), wtype = (int)strlen("type"), wdef = (int)strlen("default");
    char type[WHY_CAP];
    for (int i = 0; i < n; i++) {
        type_column(&s[i], type, sizeof type);
        if ((int)strlen(s[i].key) > wkey) wkey = (int)strlen(s[i].key);
        if ((int)strlen(type) > wtype) wtype = (int)strlen(type);
        if ((int)strlen(s[i].def) > wdef) wdef = (int)strlen(s[i].def);
    }
    fprintf(f, "%-*s  %-*s  %-*s  %s\n", wkey, "key", wtype, "type", wdef, "default", "description");
    for (int i = 0; i < n; i++) {
        type_column(&s[i], type, sizeof type);
        fprintf(f, "%-*s  %-*s  %-*s  %s\n", wkey, s[i].key, wtype, type, wdef, s[i].def, s[i].help);
    }
}
