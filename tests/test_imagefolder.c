/*
 * test_imagefolder.c - encoded datasets end to end, on a corpus generated here: the ImageFolder
 * index (sorted classes, recursive walk, hidden names ignored, unlabeled mode, the file-list
 * cache and its invalidation), WebDataset tar shards written with libarchive giving the same
 * batches as the folder, one bad file per category (zero-byte, truncated, corrupt, not an
 * image, huge dimensions, unreadable path) skipped, counted and named, the max_bad_fraction
 * error, identical bytes for 1 and 8 workers (views and uint8 crops), and the exact resume
 * position. The loader part also runs under ThreadSanitizer (SIMCLR_TSAN=ON builds).
 */
#include <archive.h>
#include <archive_entry.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/file_index.h"
#include "harness.h"
#include "image_files.h"
#include "simclr/data.h"
#include "simclr/status.h"

static char tmpdir[] = "/tmp/simclr_test_imagefolder_XXXXXX";
enum { GOOD_PER_CLASS = 30 };

static void mkdir_in(const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
    CHECK(mkdir(p, 0755) == 0);
}

/* Image k of the corpus: JPEG (k % 3 != 2) or PNG, sizes vary. */
static void write_good(const char *rel, int k) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
    const int w = 60 + (k * 7) % 50, h = 50 + (k * 11) % 40;
    uint8_t *px = sc_test_picture(w, h, k);
    if (k % 3 == 2)
        CHECK(sc_test_write_png(p, px, w, h, PNG_COLOR_TYPE_RGB, 8, NULL, 0));
    else
        CHECK(sc_test_write_jpeg(p, px, w, h, 3, 85 + k % 10, k % 5 == 0));
    free(px);
}

/* root/cat: 30 good + 3 bad; root/dog/{,deep/}: 30 good + 3 bad; root/.hidden, notes.txt. */
static void make_corpus(void) {
    mkdir_in("train");
    mkdir_in("train/cat");
    mkdir_in("train/dog");
    mkdir_in("train/dog/deep");
    mkdir_in("train/.hidden");
    char rel[256];
    for (int i = 0; i < GOOD_PER_CLASS; i++) {
        snprintf(rel, sizeof rel, "train/cat/c%02d.%s", i, i % 3 == 2 ? "png" : i % 2 ? "JPG" : "jpeg");
        write_good(rel, i);
        snprintf(rel, sizeof rel, "train/dog/%sd%02d.%s", i < 10 ? "deep/" : "", i, i % 3 == 2 ? "png" : "jpg");
        write_good(rel, 100 + i);
    }
    write_good("train/.hidden/x.jpg", 1);
    write_good("train/cat/._apple.jpg", 1);
    char p[512];
    snprintf(p, sizeof p, "%s/train/cat/notes.txt", tmpdir);
    CHECK(sc_test_write_file(p, "not listed", 10));
    /* the bad files, one per category */
    snprintf(p, sizeof p, "%s/train/cat/bad_empty.jpg", tmpdir);
    CHECK(sc_test_write_file(p, "", 0));
    snprintf(p, sizeof p, "%s/train/cat/bad_text.jpg", tmpdir);
    CHECK(sc_test_write_file(p, "this is a text file named .jpg\n", 31));
    size_t n;
    char src[512];
    snprintf(src, sizeof src, "%s/train/cat/c00.jpeg", tmpdir);
    uint8_t *jpg = sc_test_read_file(src, &n);
    snprintf(p, sizeof p, "%s/train/cat/bad_truncated.jpg", tmpdir);
    CHECK(sc_test_write_file(p, jpg, n / 2));
    uint8_t *bad = malloc(n);
    memcpy(bad, jpg, n);
    for (size_t i = n / 3; i < n - 2; i += 5) bad[i] ^= 0xA5;
    snprintf(p, sizeof p, "%s/train/dog/bad_corrupt.jpg", tmpdir);
    CHECK(sc_test_write_file(p, bad, n));
    memcpy(bad, jpg, n);
    for (size_t i = 2; i + 8 < n; i++)
        if (bad[i] == 0xFF && (bad[i + 1] == 0xC0 || bad[i + 1] == 0xC2)) {
            bad[i + 5] = bad[i + 6] = bad[i + 7] = bad[i + 8] = 0xFF; /* 65535 x 65535 */
            break;
        }
    snprintf(p, sizeof p, "%s/train/dog/bad_huge.jpg", tmpdir);
    CHECK(sc_test_write_file(p, bad, n));
    snprintf(p, sizeof p, "%s/train/dog/bad_missing.jpg", tmpdir); /* a dangling symlink */
    CHECK(symlink("/nonexistent/simclr/x.jpg", p) == 0);
    free(bad);
    free(jpg);
}

static sc_augment_params make_params(int side) {
    sc_augment_params p;
    memset(&p, 0, sizeof p);
    p.out_size = side;
    p.out_channels = 3;
    p.crop_scale_min = 0.08;
    p.crop_scale_max = 1.0;
    p.crop_ratio_min = 0.75;
    p.crop_ratio_max = 4.0 / 3.0;
    p.flip_p = 0.5;
    p.jitter_p = 0.8;
    p.brightness = p.contrast = p.saturation = 0.4;
    p.hue = 0.1;
    p.gray_p = 0.2;
    p.blur_p = 0.5;
    p.blur_sigma_min = 0.1;
    p.blur_sigma_max = 2.0;
    return p;
}

/* Bytes of one epoch (views or crops), sample ids, image ids, labels, bad counts. */
typedef struct run_out {
    uint8_t *data;
    size_t n;
    int64_t ids[256], images[256];
    int32_t labels[256];
    int rows, replaced;
    int64_t bad[SC_BAD_REASONS];
    sc_status st;
    char error[600];
} run_out;

static void run_epochs(const sc_dataset *ds, int workers, sc_loader_output output, int epochs, run_out *o) {
    memset(o, 0, sizeof *o);
    sc_loader_options lo;
    memset(&lo, 0, sizeof lo);
    lo.dataset = ds;
    lo.aug = make_params(24);
    lo.mode = SC_LOADER_TRAIN;
    lo.batch_size = 8;
    lo.workers = workers;
    lo.prefetch = 3;
    lo.seed = 42;
    lo.world_size = 1;
    lo.output = output;
    sc_loader *l;
    o->st = sc_loader_create(&lo, &l);
    CHECKF(o->st == SC_OK, "%s", sc_last_error());
    if (o->st != SC_OK) return;
    for (int e = 0; e < epochs && o->st == SC_OK; e++) {
        o->st = sc_loader_start_epoch(l, e, 0);
        for (;;) {
            sc_batch *b = NULL;
            o->st = sc_loader_next(l, &b, NULL);
            if (o->st != SC_OK) {
                snprintf(o->error, sizeof o->error, "%s", sc_last_error());
                break;
            }
            if (!b) break;
            const size_t elems = (size_t)2 * b->samples * b->height * b->width * b->channels;
            const size_t bytes = output == SC_LOADER_CROPS ? elems : elems * sizeof(float);
            o->data = realloc(o->data, o->n + bytes);
            memcpy(o->data + o->n, output == SC_LOADER_CROPS ? (void *)b->crops : (void *)b->views, bytes);
            o->n += bytes;
            for (int j = 0; j < b->samples && o->rows < 256; j++, o->rows++) {
                o->ids[o->rows] = b->sample_ids[j];
                o->images[o->rows] = b->image_ids[j];
                o->labels[o->rows] = b->labels[j];
                if (b->keys) CHECK(b->keys[j] == (uint32_t)b->sample_ids[j]);
            }
            o->replaced += b->replaced;
            sc_loader_release(l, b);
        }
    }
    sc_loader_bad_counts(l, o->bad);
    sc_loader_destroy(l);
}

static void test_index(void) {
    char root[512], desc[600];
    snprintf(root, sizeof root, "%s/train", tmpdir);
    sc_dataset ds;
    CHECKF(sc_dataset_open_imagefolder(root, 1, "off", &ds) == SC_OK, "%s", sc_last_error());
    CHECK(ds.count == 2 * GOOD_PER_CLASS + 6 && ds.num_classes == 2 && ds.labels && ds.channels == 3);
    CHECK(!sc_dataset_resident(&ds) && ds.index->from_cache == 0);
    /* cat first (sorted), its files in name order; "._apple.jpg", .hidden and .txt absent */
    sc_dataset_describe(&ds, 0, desc, sizeof desc);
    CHECKF(strstr(desc, "/train/cat/bad_empty.jpg"), "%s", desc);
    int cats = 0, deep_first = -1, ok_order = 1;
    for (int64_t i = 0; i < ds.count; i++) {
        sc_dataset_describe(&ds, i, desc, sizeof desc);
        CHECKF(!strstr(desc, "apple") && !strstr(desc, ".hidden") && !strstr(desc, ".txt"), "%s", desc);
        cats += ds.labels[i] == 0;
        if (i > 0) ok_order &= ds.labels[i] >= ds.labels[i - 1];
        if (deep_first < 0 && strstr(desc, "/dog/deep/")) deep_first = (int)i;
    }
    CHECK(cats == GOOD_PER_CLASS + 3 && ok_order);
    /* like sorted(os.walk()): dog's own files come before those of dog/deep */
    sc_dataset_describe(&ds, deep_first - 1, desc, sizeof desc);
    CHECKF(strstr(desc, "/dog/d29.png"), "%s", desc);
    sc_dataset_free(&ds);

    /* unlabeled: every image below root, no labels */
    CHECK(sc_dataset_open_imagefolder(root, 0, "off", &ds) == SC_OK);
    CHECK(ds.count == 2 * GOOD_PER_CLASS + 6 && ds.labels == NULL && ds.num_classes == 0);
    sc_dataset_free(&ds);

    /* the cache: built once, then reused; a new file invalidates it */
    char cache[512];
    snprintf(cache, sizeof cache, "%s/cache", tmpdir);
    CHECK(sc_dataset_open_imagefolder(root, 1, cache, &ds) == SC_OK && ds.index->from_cache == 0);
    sc_dataset_free(&ds);
    CHECK(sc_dataset_open_imagefolder(root, 1, cache, &ds) == SC_OK && ds.index->from_cache == 1);
    CHECK(ds.count == 2 * GOOD_PER_CLASS + 6);
    sc_dataset_free(&ds);
    write_good("train/dog/new.jpg", 7);
    CHECK(sc_dataset_open_imagefolder(root, 1, cache, &ds) == SC_OK && ds.index->from_cache == 0);
    CHECK(ds.count == 2 * GOOD_PER_CLASS + 7);
    sc_dataset_free(&ds);
    char p[512];
    snprintf(p, sizeof p, "%s/train/dog/new.jpg", tmpdir);
    CHECK(unlink(p) == 0);

    /* errors name the path */
    snprintf(p, sizeof p, "%s/nope", tmpdir);
    CHECK(sc_dataset_open_imagefolder(p, 1, "off", &ds) == SC_ERR_IO && strstr(sc_last_error(), "nope"));
    mkdir_in("emptyroot");
    mkdir_in("emptyroot/a");
    snprintf(p, sizeof p, "%s/emptyroot", tmpdir);
    CHECK(sc_dataset_open_imagefolder(p, 1, "off", &ds) == SC_ERR_DATA && strstr(sc_last_error(), "'a'"));
}

static void test_bad_files(void) {
    char root[512];
    snprintf(root, sizeof root, "%s/train", tmpdir);
    sc_dataset ds;
    CHECK(sc_dataset_open_imagefolder(root, 1, "off", &ds) == SC_OK);
    ds.max_bad_fraction = 0.1; /* 6 bad of 66 fit */
    run_out a;
    run_epochs(&ds, 2, SC_LOADER_VIEWS, 1, &a);
    CHECKF(a.st == SC_OK, "%s", a.error);
    CHECK(a.bad[SC_BAD_EMPTY] == 1 && a.bad[SC_BAD_NOT_IMAGE] == 1 && a.bad[SC_BAD_TRUNCATED] == 1);
    CHECKF(a.bad[SC_BAD_CORRUPT] == 1 && a.bad[SC_BAD_TOO_LARGE] == 1 && a.bad[SC_BAD_UNREADABLE] == 1,
           "corrupt %lld, too large %lld, unreadable %lld", (long long)a.bad[SC_BAD_CORRUPT],
           (long long)a.bad[SC_BAD_TOO_LARGE], (long long)a.bad[SC_BAD_UNREADABLE]);
    /* rows that met a bad image show the next good one, keep their own sample id and label */
    int replaced = 0;
    for (int i = 0; i < a.rows; i++) {
        if (a.images[i] == a.ids[i]) continue;
        replaced++;
        char desc[600];
        sc_dataset_describe(&ds, a.ids[i], desc, sizeof desc);
        CHECKF(strstr(desc, "bad_"), "%s was replaced", desc);
        CHECK(a.labels[i] == ds.labels[a.images[i]]);
    }
    CHECK(replaced == a.replaced);
    /* all views finite and in range (no normalisation: [0, 1]) */
    const float *v = (const float *)a.data;
    int in_range = 1;
    for (size_t i = 0; i < a.n / sizeof(float); i++) in_range &= v[i] >= 0.0f && v[i] <= 1.0f;
    CHECK(in_range);
    free(a.data);

    /* the default 1 % allows none of 66: the error names the first bad file and the setting */
    ds.max_bad_fraction = 0.01;
    run_epochs(&ds, 2, SC_LOADER_VIEWS, 1, &a);
    CHECK(a.st == SC_ERR_DATA);
    CHECKF(strstr(a.error, "data.max_bad_fraction") && strstr(a.error, "/bad_"), "%s", a.error);
    free(a.data);
    sc_dataset_free(&ds);
}

static void test_worker_identity_and_resume(void) {
    char root[512];
    snprintf(root, sizeof root, "%s/train", tmpdir);
    sc_dataset ds;
    CHECK(sc_dataset_open_imagefolder(root, 1, "off", &ds) == SC_OK);
    ds.max_bad_fraction = 0.1;
    for (int out = 0; out < 2; out++) {
        run_out one, eight;
        run_epochs(&ds, 1, (sc_loader_output)out, 2, &one);
        run_epochs(&ds, 8, (sc_loader_output)out, 2, &eight);
        CHECK(one.st == SC_OK && eight.st == SC_OK);
        CHECKF(one.n == eight.n && one.n > 0 && memcmp(one.data, eight.data, one.n) == 0,
               "%s differ between 1 and 8 workers", out ? "crops" : "views");
        CHECK(memcmp(one.images, eight.images, sizeof one.images) == 0);
        CHECK(memcmp(one.bad, eight.bad, sizeof one.bad) == 0);
        free(one.data);
        free(eight.data);
    }
    /* resume: the position after k batches restarts a fresh loader (other worker count) on
     * the very same bytes */
    sc_loader_options lo;
    memset(&lo, 0, sizeof lo);
    lo.dataset = &ds;
    lo.aug = make_params(24);
    lo.mode = SC_LOADER_TRAIN;
    lo.batch_size = 8;
    lo.workers = 3;
    lo.prefetch = 2;
    lo.seed = 42;
    lo.world_size = 1;
    sc_loader *l;
    CHECK(sc_loader_create(&lo, &l) == SC_OK);
    CHECK(sc_loader_start_epoch(l, 1, 0) == SC_OK);
    const size_t per_batch = (size_t)2 * 8 * 24 * 24 * 3;
    float *first = malloc(8 * per_batch * sizeof(float));
    int64_t nb = 0, epoch = -1, pos = -1;
    for (sc_batch *b = NULL; sc_loader_next(l, &b, NULL) == SC_OK && b; nb++) {
        memcpy(first + (size_t)nb * per_batch, b->views, per_batch * sizeof(float));
        sc_loader_release(l, b);
        if (nb == 2) sc_loader_position(l, &epoch, &pos);
    }
    CHECK(epoch == 1 && pos == 3 && nb == 8);
    sc_loader_destroy(l);
    lo.workers = 1;
    CHECK(sc_loader_create(&lo, &l) == SC_OK);
    CHECK(sc_loader_start_epoch(l, epoch, pos) == SC_OK);
    int64_t k = pos, same = 1;
    for (sc_batch *b = NULL; sc_loader_next(l, &b, NULL) == SC_OK && b; k++) {
        same &= b->index == k && memcmp(first + (size_t)k * per_batch, b->views, per_batch * sizeof(float)) == 0;
        sc_loader_release(l, b);
    }
    CHECK(same && k == nb);
    sc_loader_destroy(l);
    free(first);
    sc_dataset_free(&ds);
}

/* Add a member with `n` bytes of `data` to a tar archive. */
static void tar_add(struct archive *a, const char *name, const void *data, size_t n) {
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)n);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    CHECK(archive_write_header(a, e) == ARCHIVE_OK);
    if (n) CHECK(archive_write_data(a, data, n) == (la_ssize_t)n);
    archive_entry_free(e);
}

/* The good images of the folder, in its order, as two shards (key.jpg/png + key.cls; pax
 * long names for some keys); the loader must produce the same batches from either. */
static void test_shards_match_folder(void) {
    char root[512], shards[512];
    snprintf(root, sizeof root, "%s/good", tmpdir);
    snprintf(shards, sizeof shards, "%s/shards", tmpdir);
    mkdir_in("good");
    mkdir_in("good/a");
    mkdir_in("good/b");
    mkdir_in("shards");
    char rel[256];
    for (int i = 0; i < 24; i++) {
        snprintf(rel, sizeof rel, "good/%c/%02d.%s", i < 12 ? 'a' : 'b', i, i % 3 == 2 ? "png" : "jpg");
        write_good(rel, i);
    }
    sc_dataset folder;
    CHECK(sc_dataset_open_imagefolder(root, 1, "off", &folder) == SC_OK && folder.count == 24);
    for (int s = 0; s < 2; s++) {
        char tar[600];
        snprintf(tar, sizeof tar, "%s/train-%06d.tar", shards, s);
        struct archive *a = archive_write_new();
        archive_write_set_format_pax_restricted(a);
        CHECK(archive_write_open_filename(a, tar) == ARCHIVE_OK);
        for (int i = 12 * s; i < 12 * s + 12; i++) {
            char path[600], name[300];
            sc_dataset_describe(&folder, i, path, sizeof path);
            size_t n;
            uint8_t *bytes = sc_test_read_file(path, &n);
            const char *ext = strrchr(path, '.');
            const char *key = i == 5 ? "a-rather-long-directory-name-for-a-pax-header/and-more-of-it-to-pass-100-"
                                       "characters-of-ustar/sample"
                                     : "sample";
            snprintf(name, sizeof name, "%s%03d%s", key, i, ext);
            tar_add(a, name, bytes, n);
            char cls[8];
            snprintf(cls, sizeof cls, "%d", folder.labels[i]);
            snprintf(name, sizeof name, "%s%03d.cls", key, i);
            tar_add(a, name, cls, strlen(cls));
            free(bytes);
        }
        CHECK(archive_write_close(a) == ARCHIVE_OK);
        archive_write_free(a);
    }
    sc_dataset sh;
    CHECKF(sc_dataset_open_shards(shards, "off", &sh) == SC_OK, "%s", sc_last_error());
    CHECK(sh.count == 24 && sh.labels && sh.num_classes == 2);
    int labels_equal = 1;
    for (int i = 0; i < 24 && sh.labels; i++) labels_equal &= sh.labels[i] == folder.labels[i];
    CHECK(labels_equal);
    char desc[600];
    sc_dataset_describe(&sh, 13, desc, sizeof desc);
    CHECKF(strstr(desc, "train-000001.tar:sample013."), "%s", desc);
    run_out f, t;
    run_epochs(&folder, 2, SC_LOADER_VIEWS, 1, &f);
    run_epochs(&sh, 2, SC_LOADER_VIEWS, 1, &t);
    CHECK(f.st == SC_OK && t.st == SC_OK && f.n == t.n && memcmp(f.data, t.data, f.n) == 0);
    free(f.data);
    free(t.data);
    sc_dataset_free(&sh);
    /* a glob pattern and a single file work too */
    char pattern[600];
    snprintf(pattern, sizeof pattern, "%s/train-*.tar", shards);
    CHECK(sc_dataset_open_shards(pattern, "off", &sh) == SC_OK && sh.count == 24);
    sc_dataset_free(&sh);
    snprintf(pattern, sizeof pattern, "%s/train-000000.tar", shards);
    CHECK(sc_dataset_open_shards(pattern, "off", &sh) == SC_OK && sh.count == 12);
    sc_dataset_free(&sh);
    sc_dataset_free(&folder);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        printf("cannot create %s\n", tmpdir);
        return 1;
    }
    make_corpus();
    SC_RUN(test_index);
    SC_RUN(test_bad_files);
    SC_RUN(test_worker_identity_and_resume);
    SC_RUN(test_shards_match_folder);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("could not remove %s\n", tmpdir);
    return sc_test_summary();
}
