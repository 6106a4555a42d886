/*
 * test_checkpoint.c - checkpoint files and the checkpoints of a run directory: the state round
 * trip, one corrupt file per defect class (each rejected with a message naming the file and
 * the defect), random byte mutations (rejected or loaded identically, never a crash), newest
 * valid checkpoint discovery with fallback past corrupt files, temporary-file cleanup,
 * retention, setting aside newer checkpoints, and the resume compatibility rules.
 */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "simclr/backend.h"
#include "simclr/checkpoint.h"
#include "simclr/log.h"
#include "simclr/rng.h"
#include "simclr/safetensors.h"

static char dir[256];
static sc_backend *be;
static sc_config cfg;

/* A path in the test directory; valid until the fourth next call. */
static const char *tmp_path(const char *name) {
    static char p[4][512];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static sc_model *tiny_model(void) {
    sc_model_config mc = sc_model_config_from(&cfg, 1);
    sc_model *m = NULL;
    CHECK(sc_model_create(&mc, be, SC_F32, &m) == SC_OK);
    return m;
}

/* A model with random parameters and momentum (seeded), saved at `step`. */
static void save_random(const char *path, int64_t step, uint64_t seed) {
    sc_model *m = tiny_model();
    sc_model_init_params(m, seed);
    sc_tensor st = sc_model_state_buffer(m);
    float *s = st.data;
    sc_rng rng = sc_rng_make(seed, 0, 0, 0, SC_RNG_TEST);
    for (int64_t i = 0; i < st.shape[0]; i++) s[i] = sc_rng_uniform(&rng);
    sc_train_state ts = {.step = step, .epoch = step / 7, .batch_in_epoch = step % 7, .window_steps = 3,
                         .window_loss = 12.345678901234, .window_acc = 0.1 / 3.0, .elapsed_s = 98.7654321,
                         .image_size = 28};
    sc_status rc = sc_checkpoint_save(path, m, NULL, &cfg, &ts);
    CHECKF(rc == SC_OK, "%s", sc_last_error());
    sc_model_destroy(m);
}

static uint8_t *read_all(const char *path, size_t *size) {
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*size ? *size : 1);
    if (fread(b, 1, *size, f) != *size) *size = 0;
    fclose(f);
    return b;
}

static void write_all(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (size) fwrite(data, 1, size, f);
    fclose(f);
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    uint8_t *b = read_all(from, &n);
    write_all(to, b, n);
    free(b);
}

static void test_round_trip(void) {
    const char *path = tmp_path("rt.safetensors");
    save_random(path, 12, 5);
    sc_train_state ts;
    sc_status rc = sc_checkpoint_verify(path, &ts);
    CHECKF(rc == SC_OK, "%s", sc_last_error());
    CHECK(ts.step == 12 && ts.epoch == 1 && ts.batch_in_epoch == 5 && ts.window_steps == 3);
    CHECK(ts.window_loss == 12.345678901234 && ts.window_acc == 0.1 / 3.0 && ts.elapsed_s == 98.7654321); /* exact */
    CHECK(ts.in_channels == 1 && ts.image_size == 28);

    sc_model *a = tiny_model(), *b = tiny_model();
    sc_model_init_params(a, 5);
    sc_tensor sa = sc_model_state_buffer(a);
    sc_rng rng = sc_rng_make(5, 0, 0, 0, SC_RNG_TEST);
    for (int64_t i = 0; i < sa.shape[0]; i++) ((float *)sa.data)[i] = sc_rng_uniform(&rng);
    char *yaml = NULL;
    rc = sc_checkpoint_load(path, b, NULL, &ts, &yaml);
    CHECKF(rc == SC_OK, "%s", sc_last_error());
    sc_tensor pa = sc_model_param_buffer(a), pb = sc_model_param_buffer(b), sb = sc_model_state_buffer(b);
    /* the momentum of BN statistics is not saved: compare the trained rows only */
    const sc_param_table *t = sc_model_params(a);
    int same_params = memcmp(pa.data, pb.data, sc_tensor_nbytes(&pa)) == 0, same_state = 1;
    for (int i = 0; i < t->count; i++)
        if (!(t->rows[i].flags & SC_PARAM_BN_STAT))
            same_state &= memcmp((float *)sa.data + t->rows[i].offset, (float *)sb.data + t->rows[i].offset,
                                 (size_t)t->rows[i].numel * sizeof(float)) == 0;
    CHECK(same_params && same_state);
    sc_config back;
    sc_config_defaults(&back);
    CHECK(yaml && sc_config_load_string(&back, yaml, "stored") == SC_OK && back.model.width == cfg.model.width);
    free(yaml);
    sc_model_destroy(a);
    sc_model_destroy(b);
}

/* The header text of a file and the byte where its data starts. */
static char *header_of(const uint8_t *file, size_t *data_start) {
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)file[i] << (8 * i);
    char *h = malloc((size_t)n + 1);
    memcpy(h, file + 8, (size_t)n);
    h[n] = '\0';
    *data_start = 8 + (size_t)n;
    return h;
}

/* Copy `src` to `name` with the first `old` of the header replaced by `new_text` (the header
 * length is rewritten, padded to 8). */
static const char *with_header_edit(const char *src, const char *name, const char *old, const char *new_text) {
    size_t size, start;
    uint8_t *file = read_all(src, &size);
    char *h = header_of(file, &start);
    char *at = strstr(h, old);
    CHECKF(at != NULL, "'%s' not in the header", old);
    const char *out = tmp_path(name);
    if (at) {
        size_t hl = strlen(h), ol = strlen(old), nl = strlen(new_text);
        size_t len = hl - ol + nl, padded = (len + 7) / 8 * 8;
        char *nh = malloc(padded + 1);
        memcpy(nh, h, (size_t)(at - h));
        memcpy(nh + (at - h), new_text, nl);
        memcpy(nh + (at - h) + nl, at + ol, hl - (size_t)(at - h) - ol);
        memset(nh + len, ' ', padded - len);
        FILE *f = fopen(out, "wb");
        uint8_t le[8];
        for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)padded >> (8 * i));
        fwrite(le, 1, 8, f);
        fwrite(nh, 1, padded, f);
        fwrite(file + start, 1, size - start, f);
        fclose(f);
        free(nh);
    }
    free(h);
    free(file);
    return out;
}

/* The exact header text of tensor `name` as the writer emits it. */
static void entry_text(const char *path, const char *name, char *buf, size_t cap, uint64_t *begin, uint64_t *end) {
    sc_safetensors st;
    CHECK(sc_safetensors_open(path, &st) == SC_OK);
    const sc_st_tensor *t = sc_safetensors_find(&st, name);
    CHECK(t != NULL);
    if (t) {
        int n = snprintf(buf, cap, "\"%s\":{\"dtype\":\"%s\",\"shape\":[", name, sc_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) n += snprintf(buf + n, cap - (size_t)n, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        snprintf(buf + n, cap - (size_t)n, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)t->begin,
                 (unsigned long long)t->end);
        *begin = t->begin;
        *end = t->end;
    }
    sc_safetensors_close(&st);
}

static void expect_rejected(const char *path, const char *defect) {
    sc_model *m = tiny_model();
    sc_status rc = sc_checkpoint_load(path, m, NULL, NULL, NULL);
    CHECKF(rc == SC_ERR_FORMAT || rc == SC_ERR_IO, "%s: loaded (status %d)", path, rc);
    const char *base = strrchr(path, '/') + 1;
    CHECKF(strstr(sc_last_error(), base) != NULL, "message lacks the file name: %s", sc_last_error());
    CHECKF(strstr(sc_last_error(), defect) != NULL, "message '%s' lacks '%s'", sc_last_error(), defect);
    printf("  %s\n", sc_last_error());
    rc = sc_checkpoint_verify(path, NULL);
    CHECKF(rc == SC_ERR_FORMAT || rc == SC_ERR_IO, "%s: verify accepted it", path);
    sc_model_destroy(m);
}

static void test_corruption(void) {
    char good[512];
    snprintf(good, sizeof good, "%s", tmp_path("good.safetensors"));
    save_random(good, 40, 9);
    size_t size, start;
    uint8_t *file = read_all(good, &size);
    char *h = header_of(file, &start);

    /* truncations: inside the length, the header, the data, one byte short */
    size_t cuts[] = {0, 5, start / 2, start, start + (size - start) / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "trunc_%zu.safetensors", cuts[i]);
        write_all(tmp_path(name), file, cuts[i]);
        expect_rejected(tmp_path(name), cuts[i] < 8 ? "too short" : cuts[i] < start ? "runs past the end" : "truncated?");
    }
    /* header length: past the file, past the 100 MB cap */
    uint8_t *bad = malloc(size);
    memcpy(bad, file, size);
    uint64_t lens[2] = {size, 1ull << 40};
    const char *why[2] = {"runs past the end", "exceeds the"};
    for (int i = 0; i < 2; i++) {
        for (int b = 0; b < 8; b++) bad[b] = (uint8_t)(lens[i] >> (8 * b));
        const char *p = tmp_path(i ? "hlen_cap.safetensors" : "hlen_long.safetensors");
        write_all(p, bad, size);
        expect_rejected(p, why[i]);
    }
    /* bad JSON */
    memcpy(bad, file, size);
    bad[9] = '!';
    write_all(tmp_path("bad_json.safetensors"), bad, size);
    expect_rejected(tmp_path("bad_json.safetensors"), "bad JSON header: line 1, column 2");

    char entry[512], edited[512];
    uint64_t b0 = 0, e0 = 0;
    entry_text(good, "bn1.weight", entry, sizeof entry, &b0, &e0);
    /* offsets out of range: the tensor's bytes lie past the end of the file */
    snprintf(edited, sizeof edited, "%.*s%llu,%llu]}", (int)(strstr(entry, "data_offsets") - entry + 15), entry,
             (unsigned long long)(size - start), (unsigned long long)(size - start) + (e0 - b0));
    expect_rejected(with_header_edit(good, "offsets.safetensors", entry, edited), "ends past the");
    /* a length that disagrees with dtype and shape */
    snprintf(edited, sizeof edited, "%.*s%llu,%llu]}", (int)(strstr(entry, "data_offsets") - entry + 15), entry,
             (unsigned long long)b0, (unsigned long long)e0 + 4);
    expect_rejected(with_header_edit(good, "length.safetensors", entry, edited), "covers 8 bytes but dtype and shape need 4");
    /* overlapping tensors: the same bytes as its neighbour */
    snprintf(edited, sizeof edited, "%.*s%llu,%llu]}", (int)(strstr(entry, "data_offsets") - entry + 15), entry,
             (unsigned long long)b0 - 4, (unsigned long long)e0 - 4);
    expect_rejected(with_header_edit(good, "overlap.safetensors", entry, edited), "overlaps");
    /* dtype and shape inconsistent with the byte size */
    char old_dt[128], new_dt[128];
    snprintf(old_dt, sizeof old_dt, "\"bn1.weight\":{\"dtype\":\"F32\"");
    snprintf(new_dt, sizeof new_dt, "\"bn1.weight\":{\"dtype\":\"F64\"");
    expect_rejected(with_header_edit(good, "size.safetensors", old_dt, new_dt), "need");
    /* a wrong dtype of the right size */
    snprintf(new_dt, sizeof new_dt, "\"bn1.weight\":{\"dtype\":\"I32\"");
    expect_rejected(with_header_edit(good, "dtype.safetensors", old_dt, new_dt), "tensor 'bn1.weight' is I32");
    /* a missing tensor */
    expect_rejected(with_header_edit(good, "missing.safetensors", "\"bn1.weight\":", "\"bn1.weighx\":"), "bn1.weight");
    /* metadata: a changed step, a newer version, not a checkpoint, no config */
    expect_rejected(with_header_edit(good, "meta.safetensors", "\"step\":\"40\"", "\"step\":\"41\""), "metadata CRC-32");
    expect_rejected(with_header_edit(good, "version.safetensors", "\"format_version\":\"2\"", "\"format_version\":\"9\""),
                    "format version 9");
    expect_rejected(with_header_edit(good, "format.safetensors", "\"format\":\"simclr-checkpoint\"", "\"format\":\"pt\""),
                    "not a simclr checkpoint");
    expect_rejected(with_header_edit(good, "noconfig.safetensors", "\"config\":", "\"konfig\":"), "lacks 'config'");
    /* one flipped bit in the tensor bytes */
    memcpy(bad, file, size);
    bad[start + (size - start) / 3] ^= 0x10;
    write_all(tmp_path("bitflip.safetensors"), bad, size);
    expect_rejected(tmp_path("bitflip.safetensors"), "CRC-32");
    /* not a file */
    expect_rejected(tmp_path("nothing.safetensors"), "cannot open");
    mkdir(tmp_path("adir.safetensors"), 0755);
    expect_rejected(tmp_path("adir.safetensors"), "not a regular file");
    free(bad);
    free(h);
    free(file);
}

/* Random byte mutations: every mutated file is rejected or loads exactly the original state. */
static void test_mutations(void) {
    char good[512], path[512];
    snprintf(good, sizeof good, "%s", tmp_path("fuzz_src.safetensors"));
    snprintf(path, sizeof path, "%s", tmp_path("fuzz.safetensors"));
    save_random(good, 77, 13);
    size_t size, start;
    uint8_t *file = read_all(good, &size);
    free(header_of(file, &start));
    sc_model *ref = tiny_model(), *m = tiny_model();
    sc_train_state want, got;
    CHECK(sc_checkpoint_load(good, ref, NULL, &want, NULL) == SC_OK);
    sc_tensor rp = sc_model_param_buffer(ref), rs = sc_model_state_buffer(ref);
    uint8_t *bad = malloc(size);
    sc_rng rng = sc_rng_make(2024, 0, 0, 0, SC_RNG_TEST);
    int rejected = 0, identical = 0, wrong = 0;
    for (int it = 0; it < 300; it++) {
        memcpy(bad, file, size);
        size_t len = size;
        int kind = it % 4;
        int flips = 1 + (int)(sc_rng_uniform(&rng) * 4);
        for (int k = 0; k < flips; k++) {
            /* half of the mutations hit the length and the header, where parsing happens */
            size_t span = kind < 2 ? start : size;
            size_t at = (size_t)(sc_rng_uniform(&rng) * (float)span) % size;
            bad[at] = kind == 3 ? (uint8_t)(bad[at] ^ (1u << (it % 8))) : (uint8_t)(sc_rng_uniform(&rng) * 256.0f);
        }
        if (it % 10 == 9) len = (size_t)(sc_rng_uniform(&rng) * (float)size); /* and some truncations */
        write_all(path, bad, len);
        sc_model_init_params(m, 1);
        sc_status rc = sc_checkpoint_load(path, m, NULL, &got, NULL);
        if (rc != SC_OK) {
            rejected++;
            continue;
        }
        sc_tensor mp = sc_model_param_buffer(m), ms = sc_model_state_buffer(m);
        if (memcmp(mp.data, rp.data, sc_tensor_nbytes(&rp)) == 0 && memcmp(ms.data, rs.data, sc_tensor_nbytes(&rs)) == 0 &&
            got.step == want.step && got.epoch == want.epoch && got.batch_in_epoch == want.batch_in_epoch)
            identical++;
        else
            wrong++;
    }
    printf("  300 mutated files: %d rejected, %d loaded identically (harmless bytes), %d loaded wrongly\n", rejected,
           identical, wrong);
    CHECK(wrong == 0);
    CHECK(rejected > 250);
    free(bad);
    free(file);
    sc_model_destroy(ref);
    sc_model_destroy(m);
}

static void make_run(const char *run) {
    char p[600];
    snprintf(p, sizeof p, "%s", run);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/checkpoints", run);
    mkdir(p, 0755);
}

static void test_find_latest(void) {
    char run[512];
    snprintf(run, sizeof run, "%s", tmp_path("run"));
    make_run(run);
    char p[700], found[1200];
    int seen = -1;
    sc_train_state ts;
    sc_status rc = sc_checkpoint_find_latest(run, found, sizeof found, &seen, &ts);
    CHECK(rc == SC_ERR_IO && seen == 0 && strstr(sc_last_error(), "no checkpoint"));
    int64_t steps[3] = {10, 20, 100};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/checkpoints/step_%08lld.safetensors", run, (long long)steps[i]);
        save_random(p, steps[i], (uint64_t)i);
    }
    snprintf(p, sizeof p, "%s/checkpoints/final.safetensors", run);
    save_random(p, 30, 7); /* a final older than step 100: a finished run that was extended */
    snprintf(p, sizeof p, "%s/checkpoints/step_00000200.safetensors.tmp.4242", run); /* a killed save */
    write_all(p, "junk", 4);
    snprintf(p, sizeof p, "%s/checkpoints/notes.txt", run);
    write_all(p, "keep me", 7);
    rc = sc_checkpoint_find_latest(run, found, sizeof found, &seen, &ts);
    CHECKF(rc == SC_OK && strstr(found, "step_00000100") && ts.step == 100 && seen == 4, "%s %s", found, sc_last_error());

    /* the newest is corrupt: fall back to final (step 30), then to step 20 */
    snprintf(p, sizeof p, "%s/checkpoints/step_00000100.safetensors", run);
    truncate(p, 1000);
    sc_log_level saved = sc_log_threshold;
    sc_log_set_level(SC_LOG_ERROR); /* the expected warnings */
    rc = sc_checkpoint_find_latest(run, found, sizeof found, &seen, &ts);
    CHECKF(rc == SC_OK && strstr(found, "final.safetensors") && ts.step == 30, "%s", found);
    snprintf(p, sizeof p, "%s/checkpoints/final.safetensors", run);
    size_t n;
    uint8_t *b = read_all(p, &n);
    b[n - 3] ^= 1;
    write_all(p, b, n);
    free(b);
    rc = sc_checkpoint_find_latest(run, found, sizeof found, &seen, &ts);
    CHECKF(rc == SC_OK && strstr(found, "step_00000020") && ts.step == 20, "%s", found);
    /* nothing valid */
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/checkpoints/step_%08lld.safetensors", run, (long long)steps[i]);
        truncate(p, 7);
    }
    rc = sc_checkpoint_find_latest(run, found, sizeof found, &seen, &ts);
    CHECK(rc == SC_ERR_FORMAT && seen == 4 && strstr(sc_last_error(), "none of the 4"));
    sc_log_set_level(saved);

    /* start-up cleanup removes the killed save's file and nothing else */
    snprintf(p, sizeof p, "%s/checkpoints", run);
    CHECK(sc_checkpoint_clean_temp(p) == 1);
    snprintf(p, sizeof p, "%s/checkpoints/step_00000200.safetensors.tmp.4242", run);
    CHECK(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s/checkpoints/notes.txt", run);
    CHECK(access(p, F_OK) == 0);
}

static void test_prune_and_set_aside(void) {
    char run[512];
    snprintf(run, sizeof run, "%s", tmp_path("prune"));
    make_run(run);
    char src[700], p[700];
    snprintf(src, sizeof src, "%s/src.safetensors", run);
    save_random(src, 1, 1);
    for (int s = 1; s <= 10; s++) {
        snprintf(p, sizeof p, "%s/checkpoints/step_%08d.safetensors", run, s);
        copy_file(src, p);
    }
    snprintf(p, sizeof p, "%s/checkpoints/final.safetensors", run);
    copy_file(src, p);
    snprintf(p, sizeof p, "%s/checkpoints", run);
    CHECK(sc_checkpoint_prune(p, 3, 4) == 6); /* keeps 8, 9, 10 (newest 3) and 4, 8 (multiples of 4) */
    int left[11] = {0};
    for (int s = 1; s <= 10; s++) {
        snprintf(p, sizeof p, "%s/checkpoints/step_%08d.safetensors", run, s);
        left[s] = access(p, F_OK) == 0;
    }
    CHECK(left[4] && left[8] && left[9] && left[10] && !left[1] && !left[2] && !left[3] && !left[5] && !left[6] && !left[7]);
    snprintf(p, sizeof p, "%s/checkpoints/final.safetensors", run);
    CHECK(access(p, F_OK) == 0);

    /* resuming from step 8 sets aside steps 9 and 10 (final says step 1: it stays) */
    snprintf(p, sizeof p, "%s/checkpoints", run);
    sc_log_level saved = sc_log_threshold;
    sc_log_set_level(SC_LOG_ERROR);
    CHECK(sc_checkpoint_set_aside(p, 8) == 2);
    sc_log_set_level(saved);
    snprintf(p, sizeof p, "%s/checkpoints/superseded/step_00000010.safetensors", run);
    CHECK(access(p, F_OK) == 0);
    snprintf(p, sizeof p, "%s/checkpoints/step_00000009.safetensors", run);
    CHECK(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s/checkpoints/step_00000008.safetensors", run);
    CHECK(access(p, F_OK) == 0);
}

static char captured[8192];
static void capture(void *user, sc_log_level level, const char *line) {
    (void)user;
    if (level >= SC_LOG_WARN) strncat(captured, line, sizeof captured - strlen(captured) - 1);
}

static void test_check_config(void) {
    sc_config now = cfg;
    sc_log_set_sink(capture, NULL);
    captured[0] = '\0';
    /* free keys: no message */
    snprintf(now.data.path, sizeof now.data.path, "/elsewhere");
    now.data.workers = 7;
    now.train.max_steps = 99;
    now.checkpoint.keep_last = 9;
    snprintf(now.model.init_from, sizeof now.model.init_from, "x.safetensors");
    CHECK(sc_checkpoint_check_config("ck", &cfg, &now) == SC_OK && captured[0] == '\0');
    /* schedule and trajectory keys: allowed, one warning each */
    now.optim.lr = 0.7;
    now.train.epochs = 5;
    CHECK(sc_checkpoint_check_config("ck", &cfg, &now) == SC_OK);
    CHECKF(strstr(captured, "optim.lr changed from") && strstr(captured, "train.epochs changed from"), "%s", captured);
    /* model keys: refused, every one named with both values */
    now.model.width = 0.5;
    now.model.head.out_dim = 64;
    now.data.channels = 3;
    sc_status rc = sc_checkpoint_check_config("ck", &cfg, &now);
    CHECK(rc == SC_ERR_CONFIG);
    CHECKF(strstr(sc_last_error(), "3 keys") && strstr(sc_last_error(), "model.width 0.015625 -> 0.5") &&
               strstr(sc_last_error(), "model.head.out_dim 8 -> 64") && strstr(sc_last_error(), "data.channels 0 -> 3"),
           "%s", sc_last_error());
    sc_log_set_sink(NULL, NULL);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/simclr_ckpt_XXXXXX");
    if (!mkdtemp(dir)) sc_test_skip("cannot create a temporary directory");
    sc_backend_options bo = {.threads = 1};
    if (sc_backend_create("cpu", &bo, &be) != SC_OK) sc_test_skip("no CPU backend");
    sc_config_defaults(&cfg);
    const char *sets[] = {"model.arch=resnet18", "model.stem=cifar", "model.width=0.015625", "model.head.out_dim=8"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) CHECK(sc_config_set(&cfg, sets[i]) == SC_OK);
    SC_RUN(test_round_trip);
    SC_RUN(test_corruption);
    SC_RUN(test_mutations);
    SC_RUN(test_find_latest);
    SC_RUN(test_prune_and_set_aside);
    SC_RUN(test_check_config);
    sc_backend_destroy(be);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return sc_test_summary();
}
