/*
 * test_config.c - the config system: the schema table against the specification, the
 * embedded default config, YAML files (nested, dotted, empty), every load error with its
 * file:line:col and full key path, --set overrides and their errors, cross-field
 * validation, the YAML round trip (bit-exact, tricky floats and strings), atomic writes,
 * --help, and that the library prints nothing itself.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "simclr/config.h"
#include "simclr/status.h"

static char tmpdir[] = "/tmp/simclr_test_config_XXXXXX";

/* ---- helpers ------------------------------------------------------------------------------ */

/* Bytes a schema row occupies in sc_config (values plus, for lists, the count). */
static size_t field_bytes(const sc_config_entry *e) {
    switch (e->type) {
    case SC_CFG_INT: return e->size;
    case SC_CFG_FLOAT: return sizeof(double);
    case SC_CFG_BOOL:
    case SC_CFG_ENUM: return sizeof(int);
    case SC_CFG_STRING: return e->size;
    case SC_CFG_FLOAT_LIST: return e->size * sizeof(double);
    }
    return 0;
}

/* The first key whose field bytes differ between a and b, or NULL when all are equal. */
static const char *first_difference(const sc_config *a, const sc_config *b) {
    int n;
    const sc_config_entry *s = sc_config_schema(&n);
    for (int i = 0; i < n; i++) {
        const char *pa = (const char *)a, *pb = (const char *)b;
        if (memcmp(pa + s[i].offset, pb + s[i].offset, field_bytes(&s[i]))) return s[i].key;
        if (s[i].type == SC_CFG_FLOAT_LIST && memcmp(pa + s[i].count_offset, pb + s[i].count_offset, sizeof(int)))
            return s[i].key;
    }
    return NULL;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        printf("  cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static void set_string(char *field, size_t cap, const char *value) {
    memset(field, 0, cap);
    snprintf(field, cap, "%s", value);
}

/* Write `yaml` to <tmpdir>/<name>.yaml, load it over defaults and expect `code` with a
 * message that starts "<path>:<loc>: " and contains `want` (and `want2` when given). The
 * config must be left as it was. */
static void expect_load_error(const char *name, const char *yaml, const char *loc, const char *want,
                              const char *want2) {
    char path[512], prefix[600];
    snprintf(path, sizeof path, "%s/%s.yaml", tmpdir, name);
    write_text(path, yaml);
    sc_config cfg, before;
    sc_config_defaults(&cfg);
    sc_config_defaults(&before);
    sc_error_clear();
    sc_status st = sc_config_load_file(&cfg, path);
    const char *msg = sc_last_error();
    snprintf(prefix, sizeof prefix, "%s:%s: ", path, loc);
    CHECKF(st == SC_ERR_CONFIG, "case %s: status %d (%s)", name, st, msg);
    CHECKF(strncmp(msg, prefix, strlen(prefix)) == 0, "case %s: want prefix '%s', got '%s'", name, prefix, msg);
    CHECKF(strstr(msg, want) != NULL, "case %s: want '%s' in '%s'", name, want, msg);
    if (want2) CHECKF(strstr(msg, want2) != NULL, "case %s: want '%s' in '%s'", name, want2, msg);
    CHECKF(first_difference(&cfg, &before) == NULL, "case %s: a failed load changed %s", name,
           first_difference(&cfg, &before));
}

/* Apply --set `assignment` over defaults and expect exactly `want` as the message. */
static void expect_set_error(const char *assignment, const char *want) {
    sc_config cfg, before;
    sc_config_defaults(&cfg);
    sc_config_defaults(&before);
    sc_status st = sc_config_set(&cfg, assignment);
    CHECKF(st == SC_ERR_CONFIG, "--set %s: status %d", assignment, st);
    CHECKF(strcmp(sc_last_error(), want) == 0, "--set %s:\n    want '%s'\n    got  '%s'", assignment, want,
           sc_last_error());
    CHECKF(first_difference(&cfg, &before) == NULL, "--set %s: a failed set changed %s", assignment,
           first_difference(&cfg, &before));
}

static void expect_set_ok(sc_config *cfg, const char *assignment) {
    sc_status st = sc_config_set(cfg, assignment);
    CHECKF(st == SC_OK, "--set %s: %s", assignment, sc_last_error());
}

static void expect_invalid(const sc_config *cfg, const char *want, const char *want2) {
    sc_status st = sc_config_validate(cfg);
    CHECKF(st == SC_ERR_CONFIG, "validate accepted a config that should fail with '%s'", want);
    CHECKF(strstr(sc_last_error(), want) != NULL, "want '%s' in '%s'", want, sc_last_error());
    if (want2) CHECKF(strstr(sc_last_error(), want2) != NULL, "want '%s' in '%s'", want2, sc_last_error());
}

/* to_yaml -> load over defaults must give back every field bit for bit. */
static void check_round_trip(const sc_config *cfg, const char *what) {
    char *yaml = sc_config_to_yaml(cfg);
    CHECK(yaml != NULL);
    if (!yaml) return;
    sc_config back;
    sc_config_defaults(&back);
    sc_status st = sc_config_load_string(&back, yaml, what);
    CHECKF(st == SC_OK, "%s: reloading failed: %s\n%s", what, sc_last_error(), yaml);
    const char *diff = first_difference(cfg, &back);
    CHECKF(diff == NULL, "%s: %s differs after the round trip\n%s", what, diff, yaml);
    char *again = sc_config_to_yaml(&back);
    CHECKF(again && strcmp(again, yaml) == 0, "%s: writing the reloaded config gives different YAML", what);
    free(again);
    free(yaml);
}

/* ---- the schema ----------------------------------------------------------------------------- */

static void test_schema_table(void) {
    int n;
    const sc_config_entry *s = sc_config_schema(&n);
    CHECKF(n == 105, "%d rows; sc_config has 105 settings", n);
    for (int i = 0; i < n; i++) {
        const sc_config_entry *e = &s[i];
        CHECKF(sc_config_find(e->key) == e, "%s: find", e->key);
        CHECKF(e->def && e->help && strlen(e->help) > 20 && e->help[strlen(e->help) - 1] == '.',
               "%s: needs a default and a one-sentence help text", e->key);
        if (i > 0) /* struct order, no overlap */
            CHECKF(s[i - 1].offset + field_bytes(&s[i - 1]) <= e->offset, "%s overlaps or is out of order", e->key);
        CHECKF(e->offset + field_bytes(e) <= sizeof(sc_config), "%s: outside sc_config", e->key);
        switch (e->type) {
        case SC_CFG_INT: CHECKF(e->size == 4 || e->size == 8, "%s: size %zu", e->key, e->size); break;
        case SC_CFG_FLOAT: CHECKF(e->size == sizeof(double), "%s: size %zu", e->key, e->size); break;
        case SC_CFG_BOOL:
        case SC_CFG_ENUM:
            CHECKF(e->size == sizeof(int), "%s: size %zu", e->key, e->size);
            CHECKF(e->type == SC_CFG_BOOL || (e->choices && e->choices[0]), "%s: no choices", e->key);
            break;
        case SC_CFG_STRING: CHECKF(e->size >= 32, "%s: capacity %zu", e->key, e->size); break;
        case SC_CFG_FLOAT_LIST:
            CHECKF(e->size == SC_CFG_LIST, "%s: capacity %zu", e->key, e->size);
            CHECKF(e->count_offset == e->offset + SC_CFG_LIST * sizeof(double), "%s: count_offset", e->key);
            break;
        }
        if (e->type == SC_CFG_INT || e->type == SC_CFG_FLOAT || e->type == SC_CFG_FLOAT_LIST)
            CHECKF(e->min <= e->max, "%s: empty range", e->key);
    }
    CHECK(sc_config_find("model.head.out_dim") && sc_config_find("model.head.out_dim")->type == SC_CFG_INT);
    CHECK(sc_config_find("model") == NULL);
    CHECK(sc_config_find("model.head") == NULL);
    CHECK(sc_config_find("model.head.out_dimm") == NULL);
    CHECK(sc_config_find("run.seed")->size == 8 && sc_config_find("train.max_steps")->size == 8);
}

static void test_defaults_match_spec(void) {
    sc_config c;
    memset(&c, 0x5a, sizeof c);
    sc_config_defaults(&c);
    CHECK(!strcmp(c.run.name, "simclr") && !strcmp(c.run.dir, "runs") && !strcmp(c.run.device, "auto"));
    CHECK(c.run.seed == 0 && c.run.threads == 0 && c.run.log_every == 50 && c.run.progress == SC_PROGRESS_AUTO);
    CHECK(!c.run.deterministic && c.run.tf32 && c.run.cuda_graph && !c.run.cudnn_autotune &&
          c.run.cudnn_workspace_mb == 512);
    CHECK(c.model.arch == SC_ARCH_RESNET50 && c.model.stem == SC_STEM_IMAGENET && c.model.width == 1.0);
    CHECK(c.model.zero_init_residual == 1);
    CHECK(c.model.head.layers == 2 && c.model.head.hidden_dim == 0 && c.model.head.out_dim == 128);
    CHECK(c.model.head.bn_hidden == 1 && c.model.head.bn_last == 0 && c.model.head.bias == 1);
    CHECK(c.data.dataset == SC_DATASET_FASHION_MNIST && c.data.path[0] == '\0');
    CHECK(c.data.workers == 4 && c.data.prefetch == 4 && c.data.image_size == 0 && c.data.channels == 0);
    CHECK(c.data.mean_count == 0 && c.data.std_count == 0);
    CHECK(c.augment.crop_scale_min == 0.08 && c.augment.crop_scale_max == 1.0);
    CHECK(c.augment.crop_ratio_min == 0.75 && c.augment.crop_ratio_max == 4.0 / 3.0);
    CHECK(c.augment.flip_p == 0.5 && c.augment.jitter_p == 0.8 && c.augment.jitter_strength == 1.0);
    CHECK(c.augment.gray_p == 0.2 && c.augment.blur_p == 0.5);
    CHECK(c.augment.blur_sigma_min == 0.1 && c.augment.blur_sigma_max == 2.0);
    CHECK(c.loss.name == SC_LOSS_NTXENT && c.loss.temperature == 0.1);
    CHECK(c.optim.name == SC_OPT_LARS && c.optim.lr == 0.3 && c.optim.lr_scaling == SC_LR_LINEAR);
    CHECK(c.optim.momentum == 0.9 && c.optim.weight_decay == 1e-6 && c.optim.trust_coef == 0.001);
    CHECK(c.optim.nesterov == 0);
    CHECK(c.loss.margin == 0.5 && c.loss.semi_hard == 0);
    CHECK(c.optim.beta1 == 0.9 && c.optim.beta2 == 0.999 && c.optim.eps == 1e-8 && c.optim.clip_grad_norm == 0);
    CHECK(c.train.batch_size == 256 && c.train.epochs == 100.0 && c.train.max_steps == 0);
    CHECK(c.train.warmup_epochs == 10.0 && c.train.checkpoint_every == 0);
    CHECK(c.eval.linear_probe == 1 && c.eval.batch_size == 512 && c.eval.probe_train_samples == 0);
    CHECK(c.eval.probe_test_samples == 0 && c.eval.probe_l2 == 1e-4 && c.eval.probe_max_iters == 200);
    CHECKF(sc_config_validate(&c) == SC_OK, "%s", sc_last_error());

    /* Defaults do not depend on what the struct held before. */
    sc_config z;
    memset(&z, 0, sizeof z);
    sc_config_defaults(&z);
    CHECK(first_difference(&c, &z) == NULL);
}

static void test_enum_names(void) {
    CHECK(!strcmp(sc_config_enum_name("model.arch", SC_ARCH_RESNET50), "resnet50"));
    CHECK(!strcmp(sc_config_enum_name("model.arch", SC_ARCH_RESNET18), "resnet18"));
    CHECK(!strcmp(sc_config_enum_name("model.stem", SC_STEM_CIFAR), "cifar"));
    CHECK(!strcmp(sc_config_enum_name("data.dataset", SC_DATASET_CIFAR100), "cifar100"));
    CHECK(!strcmp(sc_config_enum_name("optim.lr_scaling", SC_LR_SQRT), "sqrt"));
    CHECK(!strcmp(sc_config_enum_name("run.progress", SC_PROGRESS_NEVER), "never"));
    CHECK(!strcmp(sc_config_enum_name("loss.name", SC_LOSS_NTXENT), "ntxent"));
    CHECK(!strcmp(sc_config_enum_name("optim.name", SC_OPT_SGD), "sgd"));
    CHECK(!strcmp(sc_config_enum_name("optim.name", SC_OPT_ADAMW), "adamw"));
    CHECK(!strcmp(sc_config_enum_name("loss.name", SC_LOSS_NT_LOGISTIC), "nt_logistic"));
    CHECK(!strcmp(sc_config_enum_name("loss.name", SC_LOSS_MARGIN), "margin"));
    CHECK(sc_config_enum_name("model.arch", 3) == NULL);
    CHECK(sc_config_enum_name("model.arch", -1) == NULL);
    CHECK(sc_config_enum_name("model.width", 0) == NULL);
    CHECK(sc_config_enum_name("no.such.key", 0) == NULL);
}

/* ---- loading -------------------------------------------------------------------------------- */

static void test_embedded_default(void) {
    sc_config c;
    sc_config_defaults(&c);
    sc_status st = sc_config_load_string(&c, sc_default_config_yaml, "<embedded>");
    CHECKF(st == SC_OK, "%s", sc_last_error());
    CHECK(!strcmp(c.run.name, "fashion_mnist") && c.run.log_every == 20);
    CHECK(c.model.arch == SC_ARCH_RESNET18 && c.model.stem == SC_STEM_CIFAR && c.model.width == 0.125);
    CHECK(c.model.head.out_dim == 64 && c.data.workers == 2 && c.augment.crop_scale_min == 0.2);
    CHECK(c.augment.blur_p == 0.0 && c.loss.temperature == 0.2 && c.optim.lr == 1.0);
    CHECK(c.optim.weight_decay == 1e-6 && c.train.epochs == 3.0 && c.train.warmup_epochs == 0.1);
    CHECKF(sc_config_validate(&c) == SC_OK, "%s", sc_last_error());
}

static void test_nested_dotted_and_empty(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/nested.yaml", tmpdir);
    write_text(path, "# a comment\n"
                     "run:\n"
                     "  name: 'exp: 1'   # quoted because of the colon\n"
                     "  seed: 9223372036854775807\n"
                     "model:\n"
                     "  head: {out_dim: 32, bn_last: true}\n"
                     "  arch: resnet34\n"
                     "model.head.layers: 3\n"
                     "data:\n"
                     "  mean:\n"
                     "    - 0.5\n"
                     "    - 0.25\n"
                     "  std: [0.1, 0.2]\n"
                     "  path: \"/data/x y\"\n"
                     "optim: {name: sgd, nesterov: True}\n"
                     "train:\n"
                     "  epochs: 2          # an integer for a float key\n"
                     "  batch_size: +64\n"
                     "augment:\n"
                     "  crop_scale_min: 1e-6\n"
                     "eval:\n");
    sc_config c;
    sc_config_defaults(&c);
    sc_status st = sc_config_load_file(&c, path);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    CHECK(!strcmp(c.run.name, "exp: 1") && c.run.seed == INT64_MAX);
    CHECK(c.model.head.out_dim == 32 && c.model.head.bn_last == 1 && c.model.arch == SC_ARCH_RESNET34);
    CHECK(c.model.head.layers == 3 && c.model.head.hidden_dim == 0);
    CHECK(c.data.mean_count == 2 && c.data.mean[0] == 0.5 && c.data.mean[1] == 0.25);
    CHECK(c.data.std_count == 2 && c.data.std[1] == 0.2 && !strcmp(c.data.path, "/data/x y"));
    CHECK(c.optim.name == SC_OPT_SGD && c.optim.nesterov == 1);
    CHECK(c.train.epochs == 2.0 && c.train.batch_size == 64 && c.augment.crop_scale_min == 1e-6);
    CHECK(c.eval.batch_size == 512); /* an empty section changes nothing */

    /* Files that set nothing: empty, comments only, an empty document. */
    const char *empties[] = {"", "# nothing here\n\n", "---\n", "~\n"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/empty%d.yaml", tmpdir, i);
        write_text(path, empties[i]);
        sc_config d, ref;
        sc_config_defaults(&d);
        sc_config_defaults(&ref);
        st = sc_config_load_file(&d, path);
        CHECKF(st == SC_OK, "empty file %d: %s", i, sc_last_error());
        CHECK(first_difference(&d, &ref) == NULL);
    }

    /* Layers: a later file overrides an earlier one key by key. */
    sc_config l;
    sc_config_defaults(&l);
    CHECK(sc_config_load_string(&l, "model: {width: 2.0}\n", "a") == SC_OK);
    CHECK(sc_config_load_string(&l, "model: {arch: resnet18}\n", "b") == SC_OK);
    CHECK(l.model.width == 2.0 && l.model.arch == SC_ARCH_RESNET18);
}

static void test_load_errors(void) {
    char long_name[400] = "run:\n  name: ";
    size_t used = strlen(long_name);
    memset(long_name + used, 'x', 300);
    strcpy(long_name + used + 300, "\n");

    /* Unknown keys, with suggestions. */
    expect_load_error("unknown_nested", "model:\n  head:\n    out_dimm: 3\n", "3:5",
                      "unknown key 'model.head.out_dimm' (did you mean 'model.head.out_dim'?)", NULL);
    expect_load_error("unknown_section", "modle:\n  width: 2\n", "1:1", "unknown key 'modle' (did you mean 'model'?)",
                      NULL);
    expect_load_error("wrong_section", "model:\n  temperature: 0.5\n", "2:3",
                      "unknown key 'model.temperature' (did you mean 'loss.temperature'?)", NULL);
    expect_load_error("ambiguous", "batch_size: 8\n", "1:1", "unknown key 'batch_size'",
                      "'train.batch_size' or 'eval.batch_size'");
    expect_load_error("unknown_far", "run:\n  zzzzzzzz: 1\n", "2:3", "unknown key 'run.zzzzzzzz'", NULL);
    expect_load_error("transposed", "optim:\n  nesterov: false\n  mometnum: 0.9\n", "3:3",
                      "unknown key 'optim.mometnum' (did you mean 'optim.momentum'?)", NULL);

    /* Sections and leaves in each other's place. */
    expect_load_error("scalar_for_section", "run:\n  seed: 1\nmodel: resnet50\n", "3:8",
                      "model: is a section; expected a mapping of its keys (arch, stem, width, zero_init_residual, "
                      "head, init_from), got 'resnet50'",
                      NULL);
    expect_load_error("list_for_section", "augment: [1, 2]\n", "1:10", "augment: is a section",
                      "got a sequence");
    expect_load_error("mapping_for_leaf", "model:\n  width:\n    x: 1\n", "3:5",
                      "model.width: expected a number, got a mapping", NULL);
    expect_load_error("list_for_leaf", "train:\n  batch_size: [1]\n", "2:15",
                      "train.batch_size: expected an integer, got a sequence", NULL);
    expect_load_error("scalar_for_list", "data:\n  mean: 0.5\n", "2:9",
                      "data.mean: expected a list of numbers such as [0.5, 0.5, 0.5], got '0.5'", NULL);

    /* Wrong types. */
    expect_load_error("int_fraction", "train:\n  batch_size: 1.5\n", "2:15",
                      "train.batch_size: expected an integer, got '1.5'", NULL);
    expect_load_error("int_word", "train:\n  batch_size: abc\n", "2:15",
                      "train.batch_size: expected an integer, got 'abc'", NULL);
    expect_load_error("int_exponent", "eval:\n  batch_size: 1e3\n", "2:15",
                      "eval.batch_size: expected an integer, got '1e3'", NULL);
    expect_load_error("float_word", "model:\n  width: wide\n", "2:10", "model.width: expected a number, got 'wide'",
                      NULL);
    expect_load_error("float_trailing", "model:\n  width: 1.5x\n", "2:10",
                      "model.width: expected a number, got '1.5x'", NULL);
    expect_load_error("float_hex", "model:\n  width: 0x1p1\n", "2:10", "model.width: expected a number, got '0x1p1'",
                      NULL);
    expect_load_error("float_inf", "loss:\n  temperature: .inf\n", "2:16",
                      "loss.temperature: expected a finite number, got '.inf'", NULL);
    expect_load_error("float_nan", "loss:\n  temperature: NaN\n", "2:16",
                      "loss.temperature: expected a finite number, got 'NaN'", NULL);
    expect_load_error("bool_yes", "model:\n  zero_init_residual: yes\n", "2:23",
                      "model.zero_init_residual: expected true or false, got 'yes'", NULL);
    expect_load_error("bool_one", "eval:\n  linear_probe: 1\n", "2:17",
                      "eval.linear_probe: expected true or false, got '1'", NULL);
    expect_load_error("enum_bad", "optim:\n  name: adam\n", "2:9", "optim.name: 'adam' is not one of: lars, sgd",
                      NULL);
    expect_load_error("string_mapping", "run:\n  name: {a: b}\n", "2:9", "run.name: expected a string, got a mapping",
                      NULL);

    /* Out of range. */
    expect_load_error("int_range", "train:\n  batch_size: 0\n", "2:15",
                      "train.batch_size: 0 is out of range [2, 1048576]", NULL);
    expect_load_error("int64_range", "run:\n  seed: 99999999999999999999\n", "2:9",
                      "run.seed: 99999999999999999999 is out of range [0, 9223372036854775807]", NULL);
    expect_load_error("int64_negative", "train:\n  max_steps: -1\n", "2:14",
                      "train.max_steps: -1 is out of range [0, 1000000000000000]", NULL);
    expect_load_error("float_range", "model:\n  width: 16\n", "2:10", "model.width: 16 is out of range [0.015625, 8]",
                      NULL);
    expect_load_error("float_negative", "optim:\n  lr: -0.1\n", "2:7", "optim.lr: -0.1 is out of range [0, 1000]",
                      NULL);
    expect_load_error("float_small", "augment:\n  crop_scale_min: 0\n", "2:19",
                      "augment.crop_scale_min: 0 is out of range [1e-06, 1]", NULL);

    /* Empty and null values. */
    expect_load_error("empty_value", "model:\n  width:\n", "2:3", "model.width: missing value", NULL);
    expect_load_error("tilde_value", "model:\n  width: ~\n", "2:10", "model.width: missing value", NULL);
    expect_load_error("null_string", "run:\n  name: null\n", "2:9", "run.name: missing value",
                      "write \"\" for an empty string");

    /* Duplicates. */
    expect_load_error("dup_leaf", "model:\n  width: 1\n  arch: resnet18\n  width: 2\n", "4:3",
                      "duplicate key 'model.width' (first set at line 2, column 3)", NULL);
    expect_load_error("dup_section", "model:\n  width: 1\nrun:\n  seed: 1\nmodel:\n  arch: resnet18\n", "5:1",
                      "duplicate key 'model' (first set at line 1, column 1)", NULL);
    expect_load_error("dup_dotted", "model:\n  width: 1\nmodel.width: 2\n", "3:1",
                      "duplicate key 'model.width' (first set at line 2, column 3)", NULL);

    /* Strings and lists that do not fit. */
    expect_load_error("long_string", long_name, "2:9", "run.name: 'xxxx", "is 300 bytes long; the limit is 255");
    expect_load_error("long_device", "run:\n  device: cuda:00000000000000000000000000000000\n", "2:11", "run.device:",
                      "is 37 bytes long; the limit is 31");
    expect_load_error("list_too_long", "data:\n  mean: [1, 2, 3, 4, 5]\n", "2:22",
                      "data.mean: too many values; at most 4 are allowed", NULL);
    expect_load_error("list_bad_element", "data:\n  std: [0.5, big]\n", "2:14",
                      "data.std[1]: expected a number, got 'big'", NULL);
    expect_load_error("list_block_element", "data:\n  mean:\n    - 1\n    - x\n", "4:7",
                      "data.mean[1]: expected a number, got 'x'", NULL);
    expect_load_error("list_element_range", "data:\n  mean: [2000000]\n", "2:10",
                      "data.mean[0]: 2000000 is out of range [-1000000, 1000000]", NULL);
    expect_load_error("list_nested", "data:\n  mean: [[1]]\n", "2:10",
                      "data.mean[0]: expected a number, got a sequence", NULL);

    /* Rules on single fields. */
    expect_load_error("std_zero", "data:\n  std: [1, 0]\n", "2:8",
                      "data.std[1] is 0; standard deviations must be > 0", NULL);
    expect_load_error("channels", "data:\n  channels: 2\n", "2:13",
                      "data.channels: 2 is not allowed; use 0 (as stored), 1 or 3", NULL);
    expect_load_error("device_word", "run:\n  device: gpu\n", "2:11",
                      "run.device: 'gpu' is not a device; use auto, cpu, cuda or cuda:N", NULL);
    expect_load_error("device_negative", "run:\n  device: cuda:-1\n", "2:11", "run.device: 'cuda:-1' is not a device",
                      NULL);

    /* YAML syntax, with libfyaml's diagnostic and position. */
    expect_load_error("syntax_indent", "model:\n  width: 1\n arch: resnet18\n", "3:2",
                      "invalid YAML: invalid indentation in mapping", NULL);
    expect_load_error("syntax_tab", "model:\n\twidth: 1\n", "2:1", "invalid YAML: tab character", NULL);
    expect_load_error("syntax_quote", "run:\n  name: \"unterminated\n", "2:10",
                      "invalid YAML: double-quoted scalar without closing quote", NULL);
    expect_load_error("syntax_bracket", "model:\n  width: 1\ndata:\n  mean: [1, 2\n", "5:1",
                      "invalid YAML: flow sequence without a closing bracket", NULL);

    /* Document shape and YAML features a config does not use. */
    expect_load_error("root_scalar", "hello\n", "1:1",
                      "the top level must be a mapping of sections (run, model, data, augment, loss, optim, train, "
                      "checkpoint, eval, tensorboard, finetune, dist), got 'hello'",
                      NULL);
    expect_load_error("root_list", "- 1\n- 2\n", "1:1", "the top level must be a mapping of sections",
                      "got a sequence");
    expect_load_error("two_documents", "model:\n  width: 1\n---\nmodel:\n  width: 2\n", "3:1",
                      "a config file holds one YAML document", NULL);
    expect_load_error("alias", "model: &m\n  width: 1\naugment: *m\n", "3:11", "augment: YAML aliases (*name) are not supported", NULL);
    expect_load_error("tag", "model:\n  width: !!str 1\n", "2:16", "model.width: YAML tags are not supported",
                      NULL);
    expect_load_error("complex_key", "? [a]\n: 1\n", "1:3", "keys must be plain names", NULL);

    expect_load_error("nul_in_string", "run:\n  name: \"a\\0b\"\n", "2:10", "run.name: strings may not contain NUL",
                      NULL);

    /* Files that cannot be read, or are not text. */
    char path[512];
    sc_config c;
    sc_config_defaults(&c);
    snprintf(path, sizeof path, "%s/binary.yaml", tmpdir);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite("run:\n  seed: 1\0\n", 1, 17, f) == 17);
    if (f) fclose(f);
    CHECK(sc_config_load_file(&c, path) == SC_ERR_CONFIG);
    CHECKF(strstr(sc_last_error(), "contains a NUL byte") != NULL, "%s", sc_last_error());
    snprintf(path, sizeof path, "%s/does_not_exist.yaml", tmpdir);
    sc_status st = sc_config_load_file(&c, path);
    CHECK(st == SC_ERR_IO);
    CHECKF(strstr(sc_last_error(), path) && strstr(sc_last_error(), "No such file or directory"), "%s",
           sc_last_error());
    st = sc_config_load_file(&c, tmpdir);
    CHECK(st == SC_ERR_IO);
    CHECKF(strstr(sc_last_error(), tmpdir) && strstr(sc_last_error(), "Is a directory"), "%s", sc_last_error());
}

/* ---- --set ---------------------------------------------------------------------------------- */

static void test_set(void) {
    sc_config c;
    sc_config_defaults(&c);
    expect_set_ok(&c, "run.seed=123456789012345");
    expect_set_ok(&c, "run.threads=8");
    expect_set_ok(&c, "model.width=0.5");
    expect_set_ok(&c, "model.zero_init_residual=false");
    expect_set_ok(&c, "model.arch=resnet18");
    expect_set_ok(&c, "run.name=plain words");
    expect_set_ok(&c, "run.dir='a: b'");
    expect_set_ok(&c, "data.path=\"\"");
    expect_set_ok(&c, "data.mean=[0.5, 0.25,0.125]");
    expect_set_ok(&c, "data.std=[1,2,3]");
    expect_set_ok(&c, " model.head.out_dim = 256");
    expect_set_ok(&c, "run.device=cuda:1");
    expect_set_ok(&c, "optim.weight_decay=1e-4");
    CHECK(c.run.seed == 123456789012345LL && c.run.threads == 8 && c.model.width == 0.5);
    CHECK(c.model.zero_init_residual == 0 && c.model.arch == SC_ARCH_RESNET18);
    CHECK(!strcmp(c.run.name, "plain words") && !strcmp(c.run.dir, "a: b") && c.data.path[0] == '\0');
    CHECK(c.data.mean_count == 3 && c.data.mean[2] == 0.125 && c.data.std_count == 3 && c.data.std[2] == 3.0);
    CHECK(c.model.head.out_dim == 256 && !strcmp(c.run.device, "cuda:1") && c.optim.weight_decay == 1e-4);
    expect_set_ok(&c, "data.mean=[]");
    CHECK(c.data.mean_count == 0 && c.data.mean[0] == 0.0);

    expect_set_error("model.width=abc", "--set model.width=abc: model.width: expected a number, got 'abc'");
    expect_set_error("model.widht=2", "--set model.widht=2: unknown key 'model.widht' (did you mean 'model.width'?)");
    expect_set_error("model=resnet18",
                     "--set model=resnet18: 'model' is a section; set one of its keys (arch, stem, width, "
                     "zero_init_residual, head, init_from)");
    expect_set_error("model.width", "--set model.width: expected key=value, e.g. --set model.width=0.5");
    expect_set_error("train.batch_size=1", "--set train.batch_size=1: train.batch_size: 1 is out of range [2, 1048576]");
    expect_set_error("train.batch_size=64.5",
                     "--set train.batch_size=64.5: train.batch_size: expected an integer, got '64.5'");
    expect_set_error("model.width=", "--set model.width=: model.width: missing value");
    expect_set_error("run.name=", "--set run.name=: run.name: missing value (write \"\" for an empty string)");
    expect_set_error("optim.name=adam", "--set optim.name=adam: optim.name: 'adam' is not one of: lars, sgd, adamw");
    expect_set_error("optim.nesterov=yes", "--set optim.nesterov=yes: optim.nesterov: expected true or false, got 'yes'");
    expect_set_error("model.width={a: 1}", "--set model.width={a: 1}: model.width: expected a number, got a mapping");
    expect_set_error("data.mean=[1,2,3,4,5]",
                     "--set data.mean=[1,2,3,4,5]: data.mean: too many values; at most 4 are allowed");
    expect_set_error("data.mean=0.5",
                     "--set data.mean=0.5: data.mean: expected a list of numbers such as [0.5, 0.5, 0.5], got '0.5'");
    expect_set_error("data.std=[1,-1]", "--set data.std=[1,-1]: data.std[1] is -1; standard deviations must be > 0");
    expect_set_error("run.device=tpu", "--set run.device=tpu: run.device: 'tpu' is not a device; use auto, cpu, cuda or cuda:N");
    expect_set_error("augment.flip_p=.nan", "--set augment.flip_p=.nan: augment.flip_p: expected a finite number, got '.nan'");
    expect_set_error("model.width=1 ---", "--set model.width=1 ---: model.width: expected a number, got '1 ---'");
    expect_set_error("model.width=*x", "--set model.width=*x: model.width: YAML aliases (*name) are not supported");

    /* A YAML syntax error in the value carries libfyaml's explanation. */
    sc_config d;
    sc_config_defaults(&d);
    CHECK(sc_config_set(&d, "data.mean=[0.5,") == SC_ERR_CONFIG);
    CHECKF(!strncmp(sc_last_error(), "--set data.mean=[0.5,: invalid YAML value: ", 43), "%s", sc_last_error());
}

/* ---- validation ----------------------------------------------------------------------------- */

static void test_validate(void) {
    sc_config base, c;
    sc_config_defaults(&base);
    CHECK(sc_config_validate(&base) == SC_OK);

    /* Each field is fine alone; the pair is not. */
    c = base;
    expect_set_ok(&c, "augment.crop_scale_min=0.9");
    expect_set_ok(&c, "augment.crop_scale_max=0.5");
    expect_invalid(&c, "augment.crop_scale_min (0.9) must not exceed augment.crop_scale_max (0.5)", NULL);
    c = base;
    c.augment.crop_ratio_min = 2.0;
    expect_invalid(&c, "augment.crop_ratio_min (2) must not exceed augment.crop_ratio_max", NULL);
    c = base;
    c.augment.blur_sigma_min = 3.0;
    expect_invalid(&c, "augment.blur_sigma_min (3) must not exceed augment.blur_sigma_max (2)", NULL);
    c = base;
    expect_set_ok(&c, "data.mean=[0.5, 0.5, 0.5]");
    expect_invalid(&c, "data.mean has 3 values but data.std has 0", NULL);
    expect_set_ok(&c, "data.std=[0.2, 0.2, 0.2]");
    CHECKF(sc_config_validate(&c) == SC_OK, "%s", sc_last_error());

    /* Rules on single fields, for configs built in code. */
    c.data.std[1] = 0.0;
    expect_invalid(&c, "data.std[1] is 0; standard deviations must be > 0", NULL);
    c = base;
    c.data.channels = 2;
    expect_invalid(&c, "data.channels: 2 is not allowed", NULL);
    c = base;
    set_string(c.run.device, sizeof c.run.device, "cuda:");
    expect_invalid(&c, "run.device: 'cuda:' is not a device", NULL);
    c = base;
    set_string(c.run.name, sizeof c.run.name, "");
    expect_invalid(&c, "run.name: must not be empty", NULL);

    /* Schema ranges and types, for configs built in code. */
    c = base;
    c.train.batch_size = 1;
    expect_invalid(&c, "train.batch_size: 1 is out of range [2, 1048576]", NULL);
    c = base;
    c.model.width = NAN;
    expect_invalid(&c, "model.width: nan is out of range", NULL);
    c = base;
    c.model.arch = 7;
    expect_invalid(&c, "model.arch: 7 is not a valid choice", NULL);
    c = base;
    c.model.head.bias = 2;
    expect_invalid(&c, "model.head.bias: 2 is not a valid boolean", NULL);
    c = base;
    c.data.mean_count = 5;
    c.data.std_count = 5;
    expect_invalid(&c, "data.mean: holds 5 values", NULL);
    c = base;
    memset(c.run.dir, 'x', sizeof c.run.dir);
    expect_invalid(&c, "run.dir: the string is not terminated", NULL);
}

/* ---- writing -------------------------------------------------------------------------------- */

static void test_round_trip(void) {
    sc_config c;
    sc_config_defaults(&c);
    check_round_trip(&c, "defaults");
    CHECK(sc_config_load_string(&c, sc_default_config_yaml, "<embedded>") == SC_OK);
    check_round_trip(&c, "embedded");

    /* Every field away from its default, with awkward floats and strings. */
    sc_config_defaults(&c);
    set_string(c.run.name, sizeof c.run.name, "quote \" colon: x # hash \\ backslash\ttab\nnewline \x01 caf\xc3\xa9");
    set_string(c.run.dir, sizeof c.run.dir, "  spaces around  ");
    set_string(c.run.device, sizeof c.run.device, "cuda:3");
    set_string(c.data.path, sizeof c.data.path, "'single' and \"double\" - [not, a, list]: {x}");
    c.run.seed = INT64_MAX;
    c.run.threads = 1024;
    c.run.log_every = 1;
    c.run.progress = SC_PROGRESS_NEVER;
    c.model.arch = SC_ARCH_RESNET34;
    c.model.stem = SC_STEM_CIFAR;
    c.model.width = 0.1;
    c.model.zero_init_residual = 0;
    c.model.head.layers = 3;
    c.model.head.hidden_dim = 4096;
    c.model.head.out_dim = 1;
    c.model.head.bn_hidden = 0;
    c.model.head.bn_last = 1;
    c.model.head.bias = 0;
    c.data.dataset = SC_DATASET_CIFAR100;
    c.data.workers = 256;
    c.data.prefetch = 1;
    c.data.image_size = 4096;
    c.data.channels = 3;
    c.data.mean[0] = -0.0;
    c.data.mean[1] = 0.485;
    c.data.mean[2] = 1e6;
    c.data.mean[3] = -1e6;
    c.data.mean_count = 4;
    c.data.std[0] = 0.229;
    c.data.std[1] = 5e-324;
    c.data.std[2] = 1.0 / 3.0;
    c.data.std_count = 3;
    c.augment.crop_scale_min = 1e-6;
    c.augment.crop_scale_max = 0.9999999999999999;
    c.augment.crop_ratio_min = 0.01;
    c.augment.crop_ratio_max = 1.3333333333333333;
    c.augment.flip_p = 0.1;
    c.augment.jitter_p = 0.30000000000000004;
    c.augment.jitter_strength = 10;
    c.augment.gray_p = 2.2250738585072014e-308;
    c.augment.blur_p = 1.0;
    c.augment.blur_sigma_min = 1e-6;
    c.augment.blur_sigma_max = 99.99999999999999;
    c.loss.temperature = 0.07;
    c.optim.name = SC_OPT_SGD;
    c.optim.lr = 4.8;
    c.optim.lr_scaling = SC_LR_SQRT;
    c.optim.momentum = 0.999999;
    c.optim.weight_decay = 1e-6;
    c.optim.trust_coef = 1e-9;
    c.optim.nesterov = 1;
    c.train.batch_size = 1048576;
    c.train.epochs = 1e-6;
    c.train.max_steps = 1000000000000000LL;
    c.train.warmup_epochs = 123456.789;
    c.train.checkpoint_every = 1000000000;
    c.eval.linear_probe = 0;
    c.eval.batch_size = 1;
    c.eval.probe_train_samples = 50000;
    c.eval.probe_test_samples = 10000;
    c.eval.probe_l2 = 1e3;
    c.eval.probe_max_iters = 100000;
    check_round_trip(&c, "non-default");

    /* Many random doubles through one float key: the shortest form must still be exact. */
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    int exact = 1;
    sc_config defaults;
    sc_config_defaults(&defaults);
    for (int i = 0; i < 2000 && exact; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        double v = ldexp((double)(state >> 11), -53 - (int)(state % 40)) * 1000.0; /* [0, 1000) */
        sc_config r = defaults, back = defaults;
        r.optim.lr = v;
        char *yaml = sc_config_to_yaml(&r);
        exact = yaml && sc_config_load_string(&back, yaml, "random") == SC_OK && back.optim.lr == v;
        CHECKF(exact, "optim.lr = %.17g does not survive the round trip", v);
        free(yaml);
    }

    /* The YAML itself: nested sections, quoted strings, floats that read as floats. */
    sc_config_defaults(&c);
    char *yaml = sc_config_to_yaml(&c);
    CHECK(yaml && strstr(yaml, "\nmodel:\n  arch: resnet50\n"));
    CHECK(yaml && strstr(yaml, "\n  head:\n    layers: 2\n"));
    CHECK(yaml && strstr(yaml, "\n  name: \"simclr\"\n"));
    CHECK(yaml && strstr(yaml, "\n  weight_decay: 1.0e-06\n"));
    CHECK(yaml && strstr(yaml, "\n  crop_ratio_max: 1.3333333333333333\n"));
    CHECK(yaml && strstr(yaml, "\n  epochs: 100.0\n"));
    CHECK(yaml && strstr(yaml, "\n  mean: []\n"));
    free(yaml);
}

static void test_write_file(void) {
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s/resolved.yaml", tmpdir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    sc_config c, back;
    sc_config_defaults(&c);
    expect_set_ok(&c, "run.name=written");
    expect_set_ok(&c, "data.mean=[0.1, 0.2]");
    write_text(path, "stale contents\n");
    sc_status st = sc_config_write_file(&c, path);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    CHECK(access(tmp, F_OK) != 0); /* renamed into place */
    sc_config_defaults(&back);
    st = sc_config_load_file(&back, path);
    CHECKF(st == SC_OK, "%s", sc_last_error());
    CHECK(first_difference(&c, &back) == NULL);

    snprintf(path, sizeof path, "%s/no_such_dir/resolved.yaml", tmpdir);
    st = sc_config_write_file(&c, path);
    CHECK(st == SC_ERR_IO);
    CHECKF(strstr(sc_last_error(), "no_such_dir") != NULL, "%s", sc_last_error());
}

static void test_print_help(void) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    CHECK(f != NULL);
    if (!f) return;
    sc_config_print_help(f);
    fclose(f);
    int n;
    const sc_config_entry *s = sc_config_schema(&n);
    for (int i = 0; i < n; i++) {
        char line_start[300];
        snprintf(line_start, sizeof line_start, "\n%s ", s[i].key);
        CHECKF(strstr(text, line_start) != NULL, "help does not list %s", s[i].key);
        CHECKF(strstr(text, s[i].help) != NULL, "help lacks the text of %s", s[i].key);
    }
    CHECK(strstr(text, "resnet18|resnet34|resnet50") != NULL);
    CHECK(strncmp(text, "key ", 4) == 0);
    /* Aligned: the help column starts at the same offset on every line. */
    const char *h1 = strstr(text, "Name of the run"), *l1 = strstr(text, "\nrun.name ");
    const char *h2 = strstr(text, "Maximum L-BFGS"), *l2 = strstr(text, "\neval.probe_max_iters ");
    CHECK(h1 && l1 && h2 && l2 && h1 - l1 == h2 - l2);
    free(text);
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(void) {
    if (!mkdtemp(tmpdir)) {
        printf("FAIL: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    /* The library must return errors, never print them: capture stderr while the tests run. */
    char err_path[600];
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", tmpdir);
    fflush(stderr);
    int saved_stderr = dup(2);
    FILE *err = freopen(err_path, "w", stderr);

    SC_RUN(test_schema_table);
    SC_RUN(test_defaults_match_spec);
    SC_RUN(test_enum_names);
    SC_RUN(test_embedded_default);
    SC_RUN(test_nested_dotted_and_empty);
    SC_RUN(test_load_errors);
    SC_RUN(test_set);
    SC_RUN(test_validate);
    SC_RUN(test_round_trip);
    SC_RUN(test_write_file);
    SC_RUN(test_print_help);

    fflush(stderr);
    struct stat st;
    int quiet = err && stat(err_path, &st) == 0 && st.st_size == 0;
    dup2(saved_stderr, 2);
    close(saved_stderr);
    sc_test_current = "library output";
    CHECKF(quiet, "the config code wrote to stderr (see %s)", err_path);

    if (sc_test_checks_failed == 0) { /* leave the files behind only when they explain a failure */
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        CHECK(system(cmd) == 0);
    }
    return sc_test_summary();
}
