/*
 * file_index.c - building, caching and reading the index of an encoded dataset.
 *
 * ImageFolder (torchvision's datasets/folder.py): classes are root's subdirectories sorted by
 * name (strcmp, which is Python's order for UTF-8 names), labelled 0..C-1. Within a class,
 * like `sorted(os.walk(class_dir, followlinks=True))`, every directory below it is visited in
 * the order of its full path and its files in name order; files ending .jpg .jpeg .png in any
 * case are images. Symlinks are followed (a directory reached twice along one path is a cycle
 * and is not entered again). Unlike torchvision, names starting with '.' are ignored: hidden
 * directories such as .ipynb_checkpoints are not classes, and
 * AppleDouble "._x.jpg" files are not images. An unlabeled folder is one walk from the root.
 *
 * Shards (WebDataset): every member of a sample shares the key (the path up to the first '.'
 * of its basename) and members of one sample are consecutive. The image is the .jpg/.jpeg/.png
 * member, the label the integer in .cls. Random access needs uncompressed tar, so a compressed
 * shard is an error that says so. libarchive finds each member's data offset (the bytes it has
 * consumed once the member's headers are read, pax and GNU long names included).
 *
 * Cache: the index is written to a binary file (atomically: temporary file, then rename) and
 * reused while it is valid. Validity: the same kind, root and labelling, a matching checksum,
 * and every recorded stamp unchanged: for folders the modification time of every directory
 * walked (adding, removing or renaming an entry changes its directory's mtime; the files'
 * contents are read fresh at every access anyway), for shards the same list of shard files
 * with the same sizes and mtimes (member offsets depend on their contents). data.cache picks
 * the place: "auto" = $XDG_CACHE_HOME/simclr (~/.cache/simclr), never inside the dataset (a
 * hidden directory there would be taken for a class by torchvision's ImageFolder); "off" =
 * never; anything else = that directory.
 */
#include "data/file_index.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "simclr/log.h"

/* ---- growable arrays and the string blob ------------------------------------------------ */

typedef struct u64vec {
    uint64_t *v;
    size_t n, cap;
} u64vec;

static int u64_push(u64vec *a, uint64_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 256;
        uint64_t *p = realloc(a->v, cap * sizeof *p);
        if (!p) return 0;
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 1;
}

typedef struct blob {
    char *p;
    size_t n, cap;
} blob;

/* Append s (with its NUL); returns its offset, or UINT64_MAX when out of memory. */
static uint64_t blob_add(blob *b, const char *s) {
    size_t len = strlen(s) + 1;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + len) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return UINT64_MAX;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    return b->n - len;
}

/* Modification stamps checked when a cache file is loaded. */
typedef struct stamp {
    uint64_t path;   /* offset into the stamp blob */
    int64_t mtime_s, mtime_ns, size;
} stamp;

typedef struct stampvec {
    stamp *v;
    size_t n, cap;
    blob names;
} stampvec;

static int stamp_add(stampvec *s, const char *path, const struct stat *st) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        stamp *p = realloc(s->v, cap * sizeof *p);
        if (!p) return 0;
        s->v = p;
        s->cap = cap;
    }
    uint64_t off = blob_add(&s->names, path);
    if (off == UINT64_MAX) return 0;
    s->v[s->n++] = (stamp){off, (int64_t)st->st_mtim.tv_sec, (int64_t)st->st_mtim.tv_nsec, (int64_t)st->st_size};
    return 1;
}

static void stamps_free(stampvec *s) {
    free(s->v);
    free(s->names.p);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Frees the file, member, label and class arrays and empties the index (kind, labeled, root and
 * cache_path stay). */
static void clear_entries(sc_file_index *ix) {
    free(ix->strings);
    free(ix->file_name);
    free(ix->member_shard);
    free(ix->member_offset);
    free(ix->member_size);
    free(ix->member_name);
    free(ix->labels);
    free(ix->class_name);
    ix->strings = NULL;
    ix->file_name = ix->member_offset = ix->member_size = ix->member_name = ix->class_name = NULL;
    ix->member_shard = NULL;
    ix->labels = NULL;
    ix->count = ix->nfiles = 0;
    ix->num_classes = 0;
    ix->strings_len = 0;
}

void sc_file_index_free(sc_file_index *ix) {
    if (!ix) return;
    clear_entries(ix);
    free(ix->root);
    free(ix);
}

static sc_status oom(const char *what) { return sc_errorf(SC_ERR_NOMEM, "out of memory while indexing %s", what); }

/* ---- paths -------------------------------------------------------------------------------- */

static int join(char *out, size_t cap, const char *a, const char *b) {
    int n = b[0] ? snprintf(out, cap, "%s/%s", a, b) : snprintf(out, cap, "%s", a);
    return n >= 0 && (size_t)n < cap;
}

/* ext equals `want` (lowercase) in any case. */
static int ext_is(const char *ext, const char *want) {
    for (; *ext && *want; ext++, want++)
        if (tolower((unsigned char)*ext) != *want) return 0;
    return *ext == '\0' && *want == '\0';
}

static int image_ext(const char *ext) { return ext_is(ext, "jpg") || ext_is(ext, "jpeg") || ext_is(ext, "png"); }

/* The last extension of a file name is an image one (torchvision's rule). */
static int has_image_extension(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && image_ext(dot + 1);
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

#define FNV_SEED 1469598103934665603ull

/* mkdir -p for the cache directory; 1 when it exists afterwards and is writable. */
static int ensure_dir(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return 0;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return 0;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return 0;
    return access(buf, W_OK) == 0;
}

/* Where the cache file of (kind, root, labeled) lives, or "" when caching is off or no place
 * is writable. */
static void cache_file_path(const char *cache, sc_index_kind kind, const char *root, int labeled, char *out,
                            size_t cap) {
    out[0] = '\0';
    if (!strcmp(cache, "off")) return;
    char abs_root[PATH_MAX];
    if (!realpath(root, abs_root)) snprintf(abs_root, sizeof abs_root, "%s", root);
    uint64_t h = fnv1a(FNV_SEED, abs_root, strlen(abs_root));
    h = fnv1a(h, &kind, sizeof kind);
    h = fnv1a(h, &labeled, sizeof labeled);
    char dir[4096];
    if (strcmp(cache, "auto") != 0) {
        snprintf(dir, sizeof dir, "%s", cache);
        if (!ensure_dir(dir)) {
            SC_WARN("data.cache: cannot create or write %s; the file list is not cached", dir);
            return;
        }
    } else {
        const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        if (xdg && xdg[0])
            snprintf(dir, sizeof dir, "%s/simclr", xdg);
        else if (home && home[0])
            snprintf(dir, sizeof dir, "%s/.cache/simclr", home);
        else
            return;
        if (!ensure_dir(dir)) return;
    }
    snprintf(out, cap, "%s/filelist-%016llx.bin", dir, (unsigned long long)h);
}

/* ---- the cache file ------------------------------------------------------------------------ */

static const char cache_magic[8] = {'S', 'C', 'F', 'I', 'L', 'E', 'S', '1'};

typedef struct writer {
    FILE *f;
    uint64_t hash;
    int ok;
} writer;

static void put(writer *w, const void *p, size_t n) {
    if (!w->ok || n == 0) return;
    w->hash = fnv1a(w->hash, p, n);
    w->ok = fwrite(p, 1, n, w->f) == n;
}

static void put_u64(writer *w, uint64_t v) { put(w, &v, sizeof v); }

static void save_cache(const sc_file_index *ix, const stampvec *st) {
    if (!ix->cache_path[0]) return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", ix->cache_path, (long)getpid());
    writer w = {fopen(tmp, "wb"), FNV_SEED, 1};
    if (!w.f) {
        SC_WARN("file list cache %s: cannot create: %s", tmp, strerror(errno));
        return;
    }
    put(&w, cache_magic, sizeof cache_magic);
    put_u64(&w, (uint64_t)ix->kind);
    put_u64(&w, (uint64_t)ix->labeled);
    put_u64(&w, strlen(ix->root));
    put(&w, ix->root, strlen(ix->root));
    put_u64(&w, st->n);
    put(&w, st->v, st->n * sizeof *st->v);
    put_u64(&w, st->names.n);
    put(&w, st->names.p, st->names.n);
    put_u64(&w, ix->strings_len);
    put(&w, ix->strings, ix->strings_len);
    put_u64(&w, (uint64_t)ix->count);
    put_u64(&w, (uint64_t)ix->nfiles);
    put(&w, ix->file_name, (size_t)ix->nfiles * sizeof *ix->file_name);
    if (ix->kind == SC_INDEX_SHARDS) {
        put(&w, ix->member_shard, (size_t)ix->count * sizeof *ix->member_shard);
        put(&w, ix->member_offset, (size_t)ix->count * sizeof *ix->member_offset);
        put(&w, ix->member_size, (size_t)ix->count * sizeof *ix->member_size);
        put(&w, ix->member_name, (size_t)ix->count * sizeof *ix->member_name);
    }
    put_u64(&w, ix->labels != NULL);
    if (ix->labels) put(&w, ix->labels, (size_t)ix->count * sizeof *ix->labels);
    put_u64(&w, (uint64_t)ix->num_classes);
    put(&w, ix->class_name, (size_t)ix->num_classes * sizeof *ix->class_name);
    uint64_t h = w.hash;
    put(&w, &h, sizeof h);
    int ok = w.ok && fflush(w.f) == 0;
    ok = fclose(w.f) == 0 && ok;
    if (ok && rename(tmp, ix->cache_path) == 0) return;
    SC_WARN("file list cache %s: write failed: %s", ix->cache_path, strerror(errno));
    unlink(tmp);
}

typedef struct reader {
    const uint8_t *p;
    size_t n, pos;
    int ok;
} reader;

static const void *take(reader *r, size_t n) {
    if (!r->ok || n > r->n - r->pos) {
        r->ok = 0;
        return NULL;
    }
    const void *p = r->p + r->pos;
    r->pos += n;
    return p;
}

static uint64_t take_u64(reader *r) {
    const void *p = take(r, 8);
    uint64_t v = 0;
    if (p) memcpy(&v, p, 8);
    return v;
}

/* A copy of n * size bytes from the reader (NULL when short, out of memory or n is absurd). */
static void *take_copy(reader *r, uint64_t n, size_t size) {
    if (!r->ok || n > (r->n - r->pos) / (size ? size : 1)) {
        r->ok = 0;
        return NULL;
    }
    size_t bytes = (size_t)n * size;
    void *dst = malloc(bytes ? bytes : 1);
    const void *src = take(r, bytes);
    if (!dst || !src) {
        free(dst);
        r->ok = 0;
        return NULL;
    }
    memcpy(dst, src, bytes);
    return dst;
}

static int offsets_ok(const uint64_t *off, uint64_t n, size_t len) {
    for (uint64_t i = 0; i < n; i++)
        if (off[i] >= len) return 0;
    return 1;
}

/* Stamps still true of the file system? Folder stamps are relative to `base` (the root);
 * with base NULL (shards) they are paths as found. */
static int stamps_hold(const stamp *s, uint64_t n, const char *names, const char *base) {
    for (uint64_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        const char *name = names + s[i].path;
        if (!(base ? join(path, sizeof path, base, name) : join(path, sizeof path, name, ""))) return 0;
        struct stat st;
        if (stat(path, &st) != 0 || st.st_mtim.tv_sec != s[i].mtime_s || st.st_mtim.tv_nsec != s[i].mtime_ns ||
            (!S_ISDIR(st.st_mode) && st.st_size != s[i].size))
            return 0;
    }
    return 1;
}

/* Load ix->cache_path into ix when it describes ix->kind/root/labeled and its stamps hold. For
 * shards, `shards` lists the shard files found now, which must be the cached ones. */
static int load_cache(sc_file_index *ix, char **shards, size_t nshards) {
    if (!ix->cache_path[0]) return 0;
    FILE *f = fopen(ix->cache_path, "rb");
    if (!f) return 0;
    uint8_t *data = NULL;
    size_t n = 0;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && st.st_size > 16 && (data = malloc((size_t)st.st_size)) != NULL)
        n = fread(data, 1, (size_t)st.st_size, f);
    fclose(f);
    if (!data || n != (size_t)st.st_size) {
        free(data);
        return 0;
    }
    uint64_t stored;
    memcpy(&stored, data + n - 8, 8);
    reader r = {data, n - 8, 0, fnv1a(FNV_SEED, data, n - 8) == stored};
    const void *magic = take(&r, sizeof cache_magic);
    int ok = r.ok && !memcmp(magic, cache_magic, sizeof cache_magic);
    ok = ok && take_u64(&r) == (uint64_t)ix->kind && take_u64(&r) == (uint64_t)ix->labeled;
    uint64_t root_len = take_u64(&r);
    const char *root = ok ? take(&r, root_len) : NULL;
    ok = ok && root && root_len == strlen(ix->root) && !memcmp(root, ix->root, root_len);
    uint64_t nst = ok ? take_u64(&r) : 0;
    stamp *stamps = ok ? take_copy(&r, nst, sizeof *stamps) : NULL;
    uint64_t names_len = take_u64(&r);
    char *names = take_copy(&r, names_len, 1);
    ok = ok && r.ok && names_len > 0 && names[names_len - 1] == '\0';
    for (uint64_t i = 0; ok && i < nst; i++) ok = stamps[i].path < names_len;
    ok = ok && stamps_hold(stamps, nst, names, ix->kind == SC_INDEX_FOLDER ? ix->root : NULL);
    free(stamps);
    free(names);
    if (ok) {
        ix->strings_len = (size_t)take_u64(&r);
        ix->strings = take_copy(&r, ix->strings_len, 1);
        ok = r.ok && ix->strings_len > 0 && ix->strings[ix->strings_len - 1] == '\0';
        ix->count = (int64_t)take_u64(&r);
        ix->nfiles = (int64_t)take_u64(&r);
        ix->file_name = take_copy(&r, (uint64_t)ix->nfiles, sizeof *ix->file_name);
        if (ix->kind == SC_INDEX_SHARDS) {
            ix->member_shard = take_copy(&r, (uint64_t)ix->count, sizeof *ix->member_shard);
            ix->member_offset = take_copy(&r, (uint64_t)ix->count, sizeof *ix->member_offset);
            ix->member_size = take_copy(&r, (uint64_t)ix->count, sizeof *ix->member_size);
            ix->member_name = take_copy(&r, (uint64_t)ix->count, sizeof *ix->member_name);
        }
        if (take_u64(&r)) ix->labels = take_copy(&r, (uint64_t)ix->count, sizeof *ix->labels);
        ix->num_classes = (int)take_u64(&r);
        ix->class_name = take_copy(&r, (uint64_t)ix->num_classes, sizeof *ix->class_name);
        ok = ok && r.ok && r.pos == r.n && ix->count > 0 && ix->num_classes >= 0 &&
             offsets_ok(ix->file_name, (uint64_t)ix->nfiles, ix->strings_len) &&
             offsets_ok(ix->class_name, (uint64_t)ix->num_classes, ix->strings_len);
        if (ok && ix->kind == SC_INDEX_FOLDER) ok = ix->nfiles == ix->count;
        if (ok && ix->kind == SC_INDEX_SHARDS) {
            ok = offsets_ok(ix->member_name, (uint64_t)ix->count, ix->strings_len) && (size_t)ix->nfiles == nshards;
            for (int64_t i = 0; ok && i < ix->count; i++) ok = ix->member_shard[i] < (uint64_t)ix->nfiles;
            for (size_t i = 0; ok && i < nshards; i++) ok = !strcmp(ix->strings + ix->file_name[i], shards[i]);
        }
        for (int64_t i = 0; ok && ix->labels && i < ix->count; i++)
            ok = ix->labels[i] >= 0 && ix->labels[i] < ix->num_classes;
    }
    free(data);
    if (!ok) { /* leave ix as it was: only kind, labeled, root and cache_path set */
        clear_entries(ix);
        return 0;
    }
    ix->from_cache = 1;
    return 1;
}

/* ---- ImageFolder walk ---------------------------------------------------------------------- */

/* One directory found by the walk: its path relative to the root, and its image file names. */
typedef struct dir_entry {
    char *rel;
    char **files;
    size_t nfiles, cap;
} dir_entry;

typedef struct walk {
    const char *root;
    dir_entry *dirs;
    size_t ndirs, cap;
    stampvec *stamps;
    int64_t ignored;          /* files without an image extension */
    char ignored_example[256];
    struct { dev_t dev; ino_t ino; } stack[256]; /* directories on the current path */
    int depth;
    sc_status st;
} walk;

static int dir_push(walk *w, const char *rel) {
    if (w->ndirs == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        dir_entry *p = realloc(w->dirs, cap * sizeof *p);
        if (!p) return 0;
        w->dirs = p;
        w->cap = cap;
    }
    dir_entry *d = &w->dirs[w->ndirs];
    memset(d, 0, sizeof *d);
    if (!(d->rel = strdup(rel))) return 0;
    w->ndirs++;
    return 1;
}

static int file_push(dir_entry *d, const char *name) {
    if (d->nfiles == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        char **p = realloc(d->files, cap * sizeof *p);
        if (!p) return 0;
        d->files = p;
        d->cap = cap;
    }
    return (d->files[d->nfiles++] = strdup(name)) != NULL;
}

static void walk_free(walk *w) {
    for (size_t i = 0; i < w->ndirs; i++) {
        for (size_t j = 0; j < w->dirs[i].nfiles; j++) free(w->dirs[i].files[j]);
        free(w->dirs[i].files);
        free(w->dirs[i].rel);
    }
    free(w->dirs);
}

/* Visit `rel` (relative to the root): record it and its images, then its subdirectories. */
static void walk_dir(walk *w, const char *rel) {
    char path[PATH_MAX];
    if (!join(path, sizeof path, w->root, rel)) {
        SC_WARN("%s/%s: path too long; skipped", w->root, rel);
        return;
    }
    DIR *dir = opendir(path);
    if (!dir) {
        SC_WARN("%s: cannot list: %s; skipped", path, strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(dirfd(dir), &st) != 0) {
        closedir(dir);
        return;
    }
    for (int i = 0; i < w->depth; i++)
        if (w->stack[i].dev == st.st_dev && w->stack[i].ino == st.st_ino) {
            SC_WARN("%s: symlink cycle; not entered again", path);
            closedir(dir);
            return;
        }
    if (w->depth == (int)(sizeof w->stack / sizeof w->stack[0])) {
        SC_WARN("%s: deeper than %d directories; skipped", path, w->depth);
        closedir(dir);
        return;
    }
    if (!dir_push(w, rel) || !stamp_add(w->stamps, rel, &st)) {
        w->st = oom(w->root);
        closedir(dir);
        return;
    }
    size_t me = w->ndirs - 1;
    char **subdirs = NULL;
    size_t nsub = 0, subcap = 0;
    struct dirent *e;
    while (w->st == SC_OK && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') continue; /* ., .., and hidden names */
        int is_dir = e->d_type == DT_DIR;
        if (e->d_type == DT_LNK || e->d_type == DT_UNKNOWN) {
            char full[PATH_MAX];
            struct stat es;
            is_dir = join(full, sizeof full, path, e->d_name) && stat(full, &es) == 0 && S_ISDIR(es.st_mode);
        }
        if (is_dir) {
            if (nsub == subcap) {
                subcap = subcap ? 2 * subcap : 16;
                char **p = realloc(subdirs, subcap * sizeof *p);
                if (!p) {
                    w->st = oom(w->root);
                    break;
                }
                subdirs = p;
            }
            char sub[PATH_MAX];
            if (!join(sub, sizeof sub, rel, e->d_name) || !(subdirs[nsub] = strdup(sub))) {
                w->st = oom(w->root);
                break;
            }
            nsub++;
        } else if (has_image_extension(e->d_name)) {
            if (!file_push(&w->dirs[me], e->d_name)) w->st = oom(w->root);
        } else {
            if (w->ignored++ == 0) snprintf(w->ignored_example, sizeof w->ignored_example, "%s", e->d_name);
        }
    }
    closedir(dir);
    w->stack[w->depth].dev = st.st_dev;
    w->stack[w->depth].ino = st.st_ino;
    w->depth++;
    for (size_t i = 0; i < nsub; i++) {
        if (w->st == SC_OK) walk_dir(w, subdirs[i]);
        free(subdirs[i]);
    }
    w->depth--;
    free(subdirs);
}

static int cmp_dir(const void *a, const void *b) {
    return strcmp(((const dir_entry *)a)->rel, ((const dir_entry *)b)->rel);
}

/* Append the images under `start` (relative, "" = root) in torchvision's order with `label`.
 * Returns how many were added. */
static int64_t add_tree(walk *w, const char *start, int32_t label, blob *names, u64vec *files, int32_t **labels,
                        size_t *labels_cap) {
    size_t first_dir = w->ndirs;
    walk_dir(w, start);
    if (w->st != SC_OK) return 0;
    qsort(w->dirs + first_dir, w->ndirs - first_dir, sizeof *w->dirs, cmp_dir);
    int64_t added = 0;
    for (size_t i = first_dir; i < w->ndirs && w->st == SC_OK; i++) {
        dir_entry *d = &w->dirs[i];
        qsort(d->files, d->nfiles, sizeof *d->files, cmp_str);
        for (size_t j = 0; j < d->nfiles; j++) {
            char rel[PATH_MAX];
            uint64_t off;
            if (!join(rel, sizeof rel, d->rel, d->files[j]) || (off = blob_add(names, rel)) == UINT64_MAX ||
                !u64_push(files, off)) {
                w->st = oom(w->root);
                break;
            }
            if (labels) {
                if (files->n > *labels_cap) {
                    size_t cap = *labels_cap ? 2 * *labels_cap : 1024;
                    int32_t *p = realloc(*labels, cap * sizeof *p);
                    if (!p) {
                        w->st = oom(w->root);
                        break;
                    }
                    *labels = p;
                    *labels_cap = cap;
                }
                (*labels)[files->n - 1] = label;
            }
            added++;
        }
    }
    return added;
}

static sc_status build_folder(sc_file_index *ix, stampvec *stamps) {
    walk w;
    memset(&w, 0, sizeof w);
    w.root = ix->root;
    w.stamps = stamps;
    blob names = {0};
    u64vec files = {0}, classes = {0};
    int32_t *labels = NULL;
    size_t labels_cap = 0;
    if (!ix->labeled) {
        add_tree(&w, "", 0, &names, &files, NULL, NULL);
    } else {
        /* Classes: the root's subdirectories (symlinks followed), sorted. */
        DIR *dir = opendir(ix->root);
        struct stat st;
        if (!dir) {
            w.st = sc_errorf(SC_ERR_IO, "%s: cannot list the ImageFolder root: %s", ix->root, strerror(errno));
        } else if (fstat(dirfd(dir), &st) != 0 || !stamp_add(stamps, "", &st)) {
            w.st = oom(ix->root);
        }
        char **cls = NULL;
        size_t ncls = 0, cap = 0;
        struct dirent *e;
        while (dir && w.st == SC_OK && (e = readdir(dir)) != NULL) {
            char full[PATH_MAX];
            struct stat es;
            if (e->d_name[0] == '.' || !join(full, sizeof full, ix->root, e->d_name) || stat(full, &es) != 0 ||
                !S_ISDIR(es.st_mode))
                continue;
            if (ncls == cap) {
                cap = cap ? 2 * cap : 64;
                char **p = realloc(cls, cap * sizeof *p);
                if (!p) {
                    w.st = oom(ix->root);
                    break;
                }
                cls = p;
            }
            if (!(cls[ncls] = strdup(e->d_name))) w.st = oom(ix->root);
            else ncls++;
        }
        if (dir) closedir(dir);
        qsort(cls, ncls, sizeof *cls, cmp_str);
        if (w.st == SC_OK && ncls == 0)
            w.st = sc_errorf(SC_ERR_DATA,
                             "%s: no class directories: an ImageFolder is <root>/<class>/<images>; set "
                             "data.labeled: false for a folder of unlabeled images",
                             ix->root);
        for (size_t c = 0; c < ncls && w.st == SC_OK; c++) {
            uint64_t off = blob_add(&names, cls[c]);
            if (off == UINT64_MAX || !u64_push(&classes, off)) {
                w.st = oom(ix->root);
                break;
            }
            int64_t added = add_tree(&w, cls[c], (int32_t)c, &names, &files, &labels, &labels_cap);
            if (w.st == SC_OK && added == 0)
                w.st = sc_errorf(SC_ERR_DATA, "%s/%s: class '%s' has no .jpg, .jpeg or .png file", ix->root,
                                 cls[c], cls[c]);
        }
        for (size_t c = 0; c < ncls; c++) free(cls[c]);
        free(cls);
    }
    if (w.st == SC_OK && files.n == 0)
        w.st = sc_errorf(SC_ERR_DATA, "%s: no .jpg, .jpeg or .png file found", ix->root);
    if (w.st == SC_OK && w.ignored > 0)
        SC_INFO("%s: %lld files without a .jpg/.jpeg/.png extension ignored (e.g. %s)", ix->root,
                (long long)w.ignored, w.ignored_example);
    walk_free(&w);
    if (w.st != SC_OK) {
        free(names.p);
        free(files.v);
        free(classes.v);
        free(labels);
        return w.st;
    }
    ix->strings = names.p;
    ix->strings_len = names.n;
    ix->count = ix->nfiles = (int64_t)files.n;
    ix->file_name = files.v;
    ix->labels = labels;
    ix->num_classes = (int)classes.n;
    ix->class_name = classes.v;
    return SC_OK;
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

sc_status sc_file_index_folder(const char *root, int labeled, const char *cache, sc_file_index **out) {
    *out = NULL;
    struct stat st;
    if (stat(root, &st) != 0)
        return sc_errorf(SC_ERR_IO, "%s: cannot open the image folder: %s", root, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return sc_errorf(SC_ERR_IO, "%s: not a directory (data.path of an imagefolder)", root);
    sc_file_index *ix = calloc(1, sizeof *ix);
    if (!ix || !(ix->root = strdup(root))) {
        free(ix);
        return oom(root);
    }
    ix->kind = SC_INDEX_FOLDER;
    ix->labeled = labeled;
    cache_file_path(cache, ix->kind, root, labeled, ix->cache_path, sizeof ix->cache_path);
    double t0 = seconds_now();
    if (load_cache(ix, NULL, 0)) {
        SC_INFO("%s: %lld images, %d classes (file list from %s)", root, (long long)ix->count, ix->num_classes,
                ix->cache_path);
        *out = ix;
        return SC_OK;
    }
    stampvec stamps = {0};
    sc_status rc = build_folder(ix, &stamps);
    if (rc == SC_OK) {
        save_cache(ix, &stamps);
        SC_INFO("%s: %lld images, %d classes (listed in %.2f s%s%s)", root, (long long)ix->count, ix->num_classes,
                seconds_now() - t0, ix->cache_path[0] ? ", cached in " : "", ix->cache_path);
    }
    stamps_free(&stamps);
    if (rc != SC_OK) {
        sc_file_index_free(ix);
        return rc;
    }
    *out = ix;
    return SC_OK;
}

/* ---- shards ------------------------------------------------------------------------------ */

/* The shard files of `path` (a directory: its *.tar files; else a glob pattern or one file),
 * sorted. */
static sc_status list_shards(const char *path, char ***out, size_t *n, char *dir, size_t dir_cap) {
    *out = NULL;
    *n = 0;
    struct stat st;
    char pattern[PATH_MAX];
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(pattern, sizeof pattern, "%s/*.tar", path);
        snprintf(dir, dir_cap, "%s", path);
    } else {
        snprintf(pattern, sizeof pattern, "%s", path);
        const char *slash = strrchr(path, '/');
        if (slash)
            snprintf(dir, dir_cap, "%.*s", (int)(slash - path), path);
        else
            snprintf(dir, dir_cap, ".");
    }
    glob_t g;
    int rc = glob(pattern, GLOB_ERR, NULL, &g);
    if (rc == GLOB_NOMATCH)
        return sc_errorf(SC_ERR_IO, "%s: no tar shards found (expected a directory of .tar files, a .tar file or "
                         "a pattern such as /data/train-*.tar)", path);
    if (rc != 0) return sc_errorf(SC_ERR_IO, "%s: cannot list the shards: %s", path, strerror(errno));
    char **list = calloc(g.gl_pathc, sizeof *list);
    for (size_t i = 0; list && i < g.gl_pathc; i++)
        if (!(list[i] = strdup(g.gl_pathv[i]))) {
            for (size_t j = 0; j < i; j++) free(list[j]);
            free(list);
            list = NULL;
        }
    *n = list ? g.gl_pathc : 0;
    globfree(&g);
    if (!list) return oom(path);
    qsort(list, *n, sizeof *list, cmp_str);
    *out = list;
    return SC_OK;
}

/* A sample being assembled from consecutive members. */
typedef struct pending {
    char key[PATH_MAX];
    int have_key;
    int have_image;
    char image_name[PATH_MAX];
    uint64_t offset, size;
    int have_label;
    int64_t label;
} pending;

typedef struct shard_build {
    blob names;
    u64vec offsets, sizes, member_names, shard_of;
    int32_t *labels;
    size_t labels_cap;
    int64_t with_label, without_label, without_image;
    char first_unlabeled[PATH_MAX + 64];
    int64_t max_label;
} shard_build;

static sc_status flush_sample(shard_build *b, pending *p, uint32_t shard, const char *shard_path) {
    if (!p->have_key) return SC_OK;
    p->have_key = 0;
    if (!p->have_image) {
        b->without_image++;
        return SC_OK;
    }
    uint64_t name = blob_add(&b->names, p->image_name);
    if (name == UINT64_MAX || !u64_push(&b->offsets, p->offset) || !u64_push(&b->sizes, p->size) ||
        !u64_push(&b->member_names, name) || !u64_push(&b->shard_of, shard))
        return oom(shard_path);
    if (b->offsets.n > b->labels_cap) {
        size_t cap = b->labels_cap ? 2 * b->labels_cap : 1024;
        int32_t *q = realloc(b->labels, cap * sizeof *q);
        if (!q) return oom(shard_path);
        b->labels = q;
        b->labels_cap = cap;
    }
    b->labels[b->offsets.n - 1] = p->have_label ? (int32_t)p->label : -1;
    if (p->have_label) {
        b->with_label++;
        if (p->label > b->max_label) b->max_label = p->label;
    } else if (b->without_label++ == 0) {
        snprintf(b->first_unlabeled, sizeof b->first_unlabeled, "%s:%s", shard_path, p->image_name);
    }
    return SC_OK;
}

/* Index the members of one shard. */
static sc_status index_shard(shard_build *b, const char *path, uint32_t shard) {
    struct archive *a = archive_read_new();
    if (!a) return oom(path);
    archive_read_support_format_tar(a);
    archive_read_support_filter_all(a); /* only to recognise, and refuse, compressed shards */
    sc_status rc = SC_OK;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        rc = sc_errorf(SC_ERR_FORMAT, "%s: cannot read as a tar shard: %s", path, archive_error_string(a));
        archive_read_free(a);
        return rc;
    }
    pending p;
    memset(&p, 0, sizeof p);
    struct archive_entry *e;
    int r;
    while (rc == SC_OK && ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN)) {
        if (archive_filter_code(a, 0) != ARCHIVE_FILTER_NONE) {
            rc = sc_errorf(SC_ERR_FORMAT,
                           "%s: compressed (%s); samples are read by offset, so shards must be uncompressed .tar",
                           path, archive_filter_name(a, 0));
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG) continue;
        const char *name = archive_entry_pathname(e);
        if (!name) continue;
        const char *base = strrchr(name, '/');
        base = base ? base + 1 : name;
        const char *dot = strchr(base, '.');
        if (!dot || base[0] == '.') continue; /* no extension: not part of a sample */
        size_t keylen = (size_t)(dot - name);
        if (keylen >= sizeof p.key) continue;
        if (!p.have_key || strncmp(p.key, name, keylen) != 0 || p.key[keylen] != '\0') {
            rc = flush_sample(b, &p, shard, path);
            memset(&p, 0, sizeof p);
            memcpy(p.key, name, keylen);
            p.key[keylen] = '\0';
            p.have_key = 1;
        }
        const char *ext = dot + 1;
        if (!p.have_image && image_ext(ext)) {
            p.have_image = 1;
            snprintf(p.image_name, sizeof p.image_name, "%s", name);
            p.offset = (uint64_t)archive_filter_bytes(a, 0);
            p.size = (uint64_t)archive_entry_size(e);
        } else if (ext_is(ext, "cls")) {
            char text[32];
            la_ssize_t got = archive_read_data(a, text, sizeof text - 1);
            char *end = NULL;
            long long v = -1;
            if (got > 0) {
                text[got] = '\0';
                v = strtoll(text, &end, 10);
                while (end && isspace((unsigned char)*end)) end++;
            }
            if (got <= 0 || !end || *end || v < 0 || v > INT32_MAX - 1)
                rc = sc_errorf(SC_ERR_FORMAT, "%s:%s: a .cls member must hold one non-negative integer", path, name);
            p.have_label = 1;
            p.label = v;
        }
    }
    if (rc == SC_OK && r != ARCHIVE_EOF)
        rc = sc_errorf(SC_ERR_FORMAT, "%s: tar read failed: %s", path, archive_error_string(a));
    if (rc == SC_OK) rc = flush_sample(b, &p, shard, path);
    archive_read_free(a);
    return rc;
}

static sc_status build_shards(sc_file_index *ix, char **shards, size_t nshards, stampvec *stamps) {
    shard_build b;
    memset(&b, 0, sizeof b);
    b.max_label = -1;
    u64vec files = {0};
    sc_status rc = SC_OK;
    for (size_t s = 0; s < nshards && rc == SC_OK; s++) {
        struct stat st;
        uint64_t off = blob_add(&b.names, shards[s]);
        if (off == UINT64_MAX || !u64_push(&files, off)) rc = oom(shards[s]);
        else if (stat(shards[s], &st) != 0) rc = sc_errorf(SC_ERR_IO, "%s: %s", shards[s], strerror(errno));
        else if (!stamp_add(stamps, shards[s], &st)) rc = oom(shards[s]);
        if (rc == SC_OK) rc = index_shard(&b, shards[s], (uint32_t)s);
    }
    if (rc == SC_OK && b.offsets.n == 0)
        rc = sc_errorf(SC_ERR_DATA, "%s: the shards hold no sample with a .jpg, .jpeg or .png member", ix->root);
    if (rc == SC_OK && b.with_label > 0 && b.without_label > 0)
        rc = sc_errorf(SC_ERR_DATA, "%s: %lld samples have a .cls label but %lld do not (first: %s)", ix->root,
                       (long long)b.with_label, (long long)b.without_label, b.first_unlabeled);
    if (rc == SC_OK && b.without_image > 0)
        SC_WARN("%s: %lld samples without a .jpg/.jpeg/.png member ignored", ix->root, (long long)b.without_image);
    if (rc != SC_OK) {
        free(b.names.p);
        free(b.offsets.v);
        free(b.sizes.v);
        free(b.member_names.v);
        free(b.shard_of.v);
        free(b.labels);
        free(files.v);
        return rc;
    }
    ix->strings = b.names.p;
    ix->strings_len = b.names.n;
    ix->count = (int64_t)b.offsets.n;
    ix->nfiles = (int64_t)files.n;
    ix->file_name = files.v;
    ix->member_offset = b.offsets.v;
    ix->member_size = b.sizes.v;
    ix->member_name = b.member_names.v;
    ix->member_shard = malloc((size_t)ix->count * sizeof *ix->member_shard);
    if (!ix->member_shard) {
        free(b.shard_of.v);
        free(b.labels);
        return oom(ix->root);
    }
    for (int64_t i = 0; i < ix->count; i++) ix->member_shard[i] = (uint32_t)b.shard_of.v[i];
    free(b.shard_of.v);
    if (b.with_label > 0) {
        ix->labels = b.labels;
        ix->num_classes = (int)(b.max_label + 1);
    } else {
        free(b.labels);
    }
    return SC_OK;
}

sc_status sc_file_index_shards(const char *path, const char *cache, sc_file_index **out) {
    *out = NULL;
    char **shards = NULL, dir[PATH_MAX];
    size_t nshards = 0;
    SC_TRY(list_shards(path, &shards, &nshards, dir, sizeof dir));
    if (nshards > UINT32_MAX) return sc_errorf(SC_ERR_DATA, "%s: more than 2^32 shards", path);
    sc_file_index *ix = calloc(1, sizeof *ix);
    sc_status rc = SC_OK;
    if (!ix || !(ix->root = strdup(path))) rc = oom(path);
    if (rc == SC_OK) {
        ix->kind = SC_INDEX_SHARDS;
        ix->labeled = 1;
        cache_file_path(cache, ix->kind, path, 1, ix->cache_path, sizeof ix->cache_path);
        double t0 = seconds_now();
        if (load_cache(ix, shards, nshards)) {
            SC_INFO("%s: %lld samples in %lld shards (index from %s)", path, (long long)ix->count,
                    (long long)ix->nfiles, ix->cache_path);
        } else {
            stampvec stamps = {0};
            rc = build_shards(ix, shards, nshards, &stamps);
            if (rc == SC_OK) {
                save_cache(ix, &stamps);
                SC_INFO("%s: %lld samples in %lld shards (indexed in %.2f s%s%s)", path, (long long)ix->count,
                        (long long)ix->nfiles, seconds_now() - t0, ix->cache_path[0] ? ", cached in " : "",
                        ix->cache_path);
            }
            stamps_free(&stamps);
        }
    }
    for (size_t i = 0; i < nshards; i++) free(shards[i]);
    free(shards);
    if (rc != SC_OK) {
        sc_file_index_free(ix);
        return rc;
    }
    *out = ix;
    return SC_OK;
}

/* ---- reading samples ------------------------------------------------------------------------ */

void sc_file_index_describe(const sc_file_index *ix, int64_t i, char *buf, size_t cap) {
    if (ix->kind == SC_INDEX_FOLDER)
        snprintf(buf, cap, "%s/%s", ix->root, ix->strings + ix->file_name[i]);
    else
        snprintf(buf, cap, "%s:%s", ix->strings + ix->file_name[ix->member_shard[i]], ix->strings + ix->member_name[i]);
}

sc_bad_reason sc_file_index_read(const sc_file_index *ix, int64_t i, uint8_t **buf, size_t *cap, size_t *len,
                                 char *msg, size_t msg_cap) {
    char path[PATH_MAX];
    uint64_t offset = 0, size = 0;
    *len = 0;
    msg[0] = '\0';
    if (ix->kind == SC_INDEX_FOLDER) {
        if (!join(path, sizeof path, ix->root, ix->strings + ix->file_name[i])) {
            snprintf(msg, msg_cap, "path too long");
            return SC_BAD_UNREADABLE;
        }
    } else {
        snprintf(path, sizeof path, "%s", ix->strings + ix->file_name[ix->member_shard[i]]);
        offset = ix->member_offset[i];
        size = ix->member_size[i];
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, msg_cap, "cannot open: %s", strerror(errno));
        return SC_BAD_UNREADABLE;
    }
    struct stat st;
    sc_bad_reason why = SC_BAD_NONE;
    if (fstat(fd, &st) != 0) {
        snprintf(msg, msg_cap, "cannot stat: %s", strerror(errno));
        why = SC_BAD_UNREADABLE;
    } else if (S_ISDIR(st.st_mode)) {
        snprintf(msg, msg_cap, "is a directory");
        why = SC_BAD_UNREADABLE;
    } else if (ix->kind == SC_INDEX_FOLDER) {
        size = (uint64_t)st.st_size;
    } else if (offset + size > (uint64_t)st.st_size) {
        snprintf(msg, msg_cap, "the shard is shorter (%lld bytes) than its index says; delete the index cache",
                 (long long)st.st_size);
        why = SC_BAD_TRUNCATED;
    }
    if (why == SC_BAD_NONE && size == 0) {
        snprintf(msg, msg_cap, "the file is empty");
        why = SC_BAD_EMPTY;
    }
    if (why == SC_BAD_NONE && size > SC_MAX_IMAGE_FILE_BYTES) {
        snprintf(msg, msg_cap, "%llu bytes; files above %llu bytes are not read", (unsigned long long)size,
                 (unsigned long long)SC_MAX_IMAGE_FILE_BYTES);
        why = SC_BAD_TOO_LARGE;
    }
    if (why == SC_BAD_NONE && size > *cap) {
        uint8_t *p = realloc(*buf, (size_t)size);
        if (!p) {
            snprintf(msg, msg_cap, "out of memory for %llu bytes", (unsigned long long)size);
            why = SC_BAD_TOO_LARGE;
        } else {
            *buf = p;
            *cap = (size_t)size;
        }
    }
    size_t got = 0;
    while (why == SC_BAD_NONE && got < size) {
        ssize_t n = pread(fd, *buf + got, (size_t)size - got, (off_t)(offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            snprintf(msg, msg_cap, "read failed: %s", strerror(errno));
            why = SC_BAD_UNREADABLE;
        } else if (n == 0) {
            snprintf(msg, msg_cap, "the file ended after %zu of %llu bytes", got, (unsigned long long)size);
            why = SC_BAD_TRUNCATED;
        } else {
            got += (size_t)n;
        }
    }
    close(fd);
    if (why == SC_BAD_NONE) *len = got;
    return why;
}
