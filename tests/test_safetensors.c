/*
 * test_safetensors.c - the safetensors writer and the defensive reader: round trip, metadata
 * escaping, and one corrupt file per defect class, each rejected with a message naming it.
 */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "simclr/safetensors.h"

static char dir[256];

static const char *tmp_path(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void write_raw(const char *path, const char *header, const void *data, size_t data_len) {
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(header);
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(n >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, n, f);
    if (data_len) fwrite(data, 1, data_len, f);
    fclose(f);
}

static void test_round_trip(void) {
    float a[6] = {1, 2, 3, 4, 5, 6};
    double b[2] = {-1.5, 1e300};
    int64_t c = 42;
    sc_st_entry e[3] = {
        {.name = "layer1.0.conv1.weight", .dtype = SC_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "with \"quote\"", .dtype = SC_F64, .ndim = 1, .shape = {2}, .data = b},
        {.name = "bn1.num_batches_tracked", .dtype = SC_I64, .ndim = 0, .data = &c},
    };
    sc_st_meta meta[2] = {{"format", "pt"}, {"config", "model:\n  arch: \"resnet50\"\t# tab\\"}};
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("ok.safetensors"));
    CHECK(sc_safetensors_write(path, e, 3, meta, 2) == SC_OK);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0); /* the temporary file is gone */
    sc_safetensors st;
    sc_status rc = sc_safetensors_open(path, &st);
    CHECKF(rc == SC_OK, "%s", sc_last_error());
    if (rc != SC_OK) return;
    CHECK(st.count == 3);
    CHECK(st.data_start % 8 == 0);
    const sc_st_tensor *t = sc_safetensors_find(&st, "layer1.0.conv1.weight");
    CHECK(t && t->dtype == SC_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    CHECK(t && memcmp(sc_safetensors_data(&st, t), a, sizeof a) == 0);
    t = sc_safetensors_find(&st, "with \"quote\"");
    CHECK(t && memcmp(sc_safetensors_data(&st, t), b, sizeof b) == 0);
    t = sc_safetensors_find(&st, "bn1.num_batches_tracked");
    CHECK(t && t->ndim == 0 && *(const int64_t *)sc_safetensors_data(&st, t) == 42);
    CHECK(strcmp(sc_safetensors_meta(&st, "format"), "pt") == 0);
    CHECK(strcmp(sc_safetensors_meta(&st, "config"), meta[1].value) == 0);
    CHECK(sc_safetensors_meta(&st, "missing") == NULL);
    sc_safetensors_close(&st);
}

/* Each corrupt file must fail with SC_ERR_FORMAT and a message containing `expect`. */
static void expect_reject(const char *name, const char *header, const void *data, size_t len, const char *expect) {
    const char *path = tmp_path(name);
    write_raw(path, header, data, len);
    sc_safetensors st;
    sc_status rc = sc_safetensors_open(path, &st);
    CHECKF(rc == SC_ERR_FORMAT, "%s: accepted or wrong code %d", name, rc);
    CHECKF(strstr(sc_last_error(), name) != NULL, "%s: message lacks the file name: %s", name, sc_last_error());
    CHECKF(strstr(sc_last_error(), expect) != NULL, "%s: message '%s' lacks '%s'", name, sc_last_error(), expect);
}

static void test_corrupt_files(void) {
    float d[4] = {0};
    expect_reject("bad_json.st", "{\"a\":{\"dtype\":\"F32\",", d, 16, "bad JSON header");
    expect_reject("not_object.st", "[1,2]   ", d, 0, "does not start with '{'");
    expect_reject("bad_dtype.st", "{\"a\":{\"dtype\":\"Q7\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 16, "unsupported dtype 'Q7'");
    expect_reject("size_mismatch.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", d, 16, "need 12");
    expect_reject("past_end.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", d, 16, "ends past the 16-byte data section");
    expect_reject("overlap.st",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 16, "overlaps");
    expect_reject("hole.st",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", d, 16, "hole");
    expect_reject("negative.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", d, 16, "not a non-negative integer");
    expect_reject("overflow.st", "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}}", d, 16, "overflows");
    expect_reject("reversed.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,0]}}", d, 16, "end before begin");
    expect_reject("extra_key.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],\"x\":1}}", d, 16, "keys other than");
    expect_reject("meta_type.st", "{\"__metadata__\":{\"k\":[1]}}", d, 0, "must be strings");

    /* header length beyond the file, and beyond the cap */
    const char *path = tmp_path("long_header.st");
    FILE *f = fopen(path, "wb");
    uint8_t le[8] = {0x00, 0x10, 0, 0, 0, 0, 0, 0}; /* 4096 */
    fwrite(le, 1, 8, f);
    fwrite("{}", 1, 2, f);
    fclose(f);
    sc_safetensors st;
    CHECK(sc_safetensors_open(path, &st) == SC_ERR_FORMAT && strstr(sc_last_error(), "runs past the end"));
    uint8_t huge[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    uint8_t *copy = malloc(sizeof huge);
    memcpy(copy, huge, sizeof huge);
    CHECK(sc_safetensors_parse(copy, sizeof huge, "huge", &st) == SC_ERR_FORMAT &&
          strstr(sc_last_error(), "exceeds the"));
    uint8_t *tiny = malloc(3);
    memcpy(tiny, "abc", 3);
    CHECK(sc_safetensors_parse(tiny, 3, "tiny", &st) == SC_ERR_FORMAT && strstr(sc_last_error(), "too short"));
    CHECK(sc_safetensors_open(tmp_path("missing.st"), &st) == SC_ERR_IO && strstr(sc_last_error(), "missing.st"));
}

/* Every truncation of a valid file is rejected (never a crash, never accepted). */
static void test_every_truncation(void) {
    float a[5] = {1, 2, 3, 4, 5};
    sc_st_entry e = {.name = "w", .dtype = SC_F32, .ndim = 1, .shape = {5}, .data = a};
    sc_st_meta meta = {"k", "v"};
    const char *path = tmp_path("trunc_src.st");
    CHECK(sc_safetensors_write(path, &e, 1, &meta, 1) == SC_OK);
    FILE *f = fopen(path, "rb");
    uint8_t buf[512];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int rejected = 0;
    for (size_t len = 0; len < n; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        sc_safetensors st;
        if (sc_safetensors_parse(copy, len, "truncated", &st) == SC_ERR_FORMAT) rejected++;
        else sc_safetensors_close(&st);
    }
    CHECKF(rejected == (int)n, "%d of %zu truncations rejected", rejected, n);
}

/* A failed write leaves the previous file intact. */
static void test_failed_write_keeps_old(void) {
    float a[2] = {7, 8};
    sc_st_entry e = {.name = "w", .dtype = SC_F32, .ndim = 1, .shape = {2}, .data = a};
    char sub[512];
    snprintf(sub, sizeof sub, "%s/ro", dir);
    mkdir(sub, 0755);
    char path[600];
    snprintf(path, sizeof path, "%s/ckpt.st", sub);
    CHECK(sc_safetensors_write(path, &e, 1, NULL, 0) == SC_OK);
    chmod(sub, 0555); /* no new files in the directory */
    float b[2] = {9, 9};
    e.data = b;
    int root = geteuid() == 0;
    sc_status rc = sc_safetensors_write(path, &e, 1, NULL, 0);
    if (!root) CHECK(rc == SC_ERR_IO && strstr(sc_last_error(), "cannot create"));
    chmod(sub, 0755);
    if (root) return; /* root ignores directory permissions; the crash tests cover this */
    sc_safetensors st;
    CHECK(sc_safetensors_open(path, &st) == SC_OK);
    CHECK(st.count == 1 && ((const float *)sc_safetensors_data(&st, &st.tensors[0]))[0] == 7);
    sc_safetensors_close(&st);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/simclr_st_XXXXXX");
    if (!mkdtemp(dir)) sc_test_skip("cannot create a temporary directory");
    SC_RUN(test_round_trip);
    SC_RUN(test_corrupt_files);
    SC_RUN(test_every_truncation);
    SC_RUN(test_failed_write_keeps_old);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return sc_test_summary();
}
