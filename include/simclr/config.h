/*
 * config.h - the run configuration: one C struct, one schema table, YAML in and out.
 *
 * Every setting is a field of sc_config and a row of the schema (src/core/config_schema.c):
 * dotted key, type, range or choices, default and help text. Values are layered:
 *   schema defaults  ->  a YAML file (--config, or the embedded configs/fashion_mnist.yaml)
 *                    ->  --set key=value overrides, in command-line order.
 * Files are read with libfyaml. Unknown keys, wrong types and out-of-range values are errors
 * that name file:line:col and the full key path ("model.head.out_dim"). The resolved config
 * is written back as YAML into the run directory and every checkpoint.
 */
#ifndef SIMCLR_CONFIG_H
#define SIMCLR_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "simclr/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SC_CFG_STR 256
#define SC_CFG_LIST 4

/* Enumerations; the schema maps each to its YAML spelling (shown in comments). */
typedef enum { SC_ARCH_RESNET18, SC_ARCH_RESNET34, SC_ARCH_RESNET50 } sc_arch;  /* resnet18 resnet34 resnet50 */
typedef enum { SC_STEM_CIFAR, SC_STEM_IMAGENET } sc_stem;                      /* cifar imagenet */
typedef enum {
    SC_DATASET_FASHION_MNIST, SC_DATASET_CIFAR10, SC_DATASET_CIFAR100, SC_DATASET_IMAGEFOLDER, SC_DATASET_SHARDS
} sc_dataset_kind; /* fashion_mnist cifar10 cifar100 imagefolder shards */
typedef enum { SC_AUGMENT_ON_CPU, SC_AUGMENT_ON_GPU } sc_augment_on;            /* cpu gpu */
typedef enum { SC_LOSS_NTXENT, SC_LOSS_NT_LOGISTIC, SC_LOSS_MARGIN } sc_loss_kind; /* ntxent nt_logistic margin */
typedef enum { SC_OPT_LARS, SC_OPT_SGD, SC_OPT_ADAMW } sc_opt_name;          /* lars sgd adamw */
typedef enum { SC_LR_LINEAR, SC_LR_SQRT, SC_LR_NONE } sc_lr_scaling;          /* linear sqrt none */
typedef enum { SC_PROGRESS_AUTO, SC_PROGRESS_ALWAYS, SC_PROGRESS_NEVER } sc_progress_mode; /* auto always never */

typedef struct sc_config {
    struct {
        char name[SC_CFG_STR];   /* run directory is <dir>/<name> */
        char dir[SC_CFG_STR];
        int64_t seed;
        char device[32];         /* auto | cpu | cuda | cuda:N */
        int threads;             /* CPU compute threads, 0 = all cores */
        int log_every;           /* steps between plain log lines / metrics records */
        int progress;            /* sc_progress_mode */
        /* GPU execution (ignored on the CPU, which is always deterministic fp32) */
        int deterministic;       /* deterministic cuDNN engines, fixed reductions: repeatable bits */
        int tf32;                /* TF32 tensor-core math for fp32 convolutions and products */
        int cuda_graph;          /* replay each training step as one captured CUDA graph */
        int cudnn_autotune;      /* time candidate convolution engines on first use */
        int cudnn_workspace_mb;  /* convolution workspace budget */
    } run;
    struct {
        int arch;                /* sc_arch */
        int stem;                /* sc_stem */
        double width;            /* channel multiplier: 64*width, 128*width, ... */
        int zero_init_residual;  /* zero gamma of the last BN in each block */
        struct {
            int layers;          /* linear layers in the projection MLP (>= 1) */
            int hidden_dim;      /* 0 = the encoder's feature dimension */
            int out_dim;         /* z dimension */
            int bn_hidden;       /* BN after each hidden linear layer */
            int bn_last;         /* BN (without beta) after the output layer, as SimCLR v1/v2 */
            int bias;            /* bias on linear layers not followed by BN */
        } head;
        char init_from[SC_CFG_STR]; /* "" or a torchvision-format safetensors file for the encoder */
    } model;
    struct {
        int dataset;             /* sc_dataset_kind */
        char path[SC_CFG_STR];   /* "" = the dataset's standard location */
        char test_path[SC_CFG_STR]; /* imagefolder/shards: the test split ("" = none) */
        int labeled;             /* imagefolder: subdirectories are classes */
        char cache[SC_CFG_STR];  /* file-list cache: auto | off | a directory */
        int augment_on;          /* sc_augment_on: where flip/jitter/gray/blur/normalise run */
        double max_bad_fraction; /* images that may fail to decode before the run stops */
        int64_t max_image_pixels; /* larger images are skipped as bad */
        int workers;             /* augmentation threads */
        int prefetch;            /* batches prepared ahead */
        int image_size;          /* side of the augmented views; 0 = the stored size */
        int channels;            /* 0 = as stored; 3 replicates gray to RGB */
        double mean[SC_CFG_LIST]; int mean_count; /* per-channel normalisation; empty = none */
        double std[SC_CFG_LIST];  int std_count;
    } data;
    struct {
        double crop_scale_min, crop_scale_max; /* random resized crop area fraction */
        double crop_ratio_min, crop_ratio_max; /* aspect ratio (log-uniform) */
        double flip_p;
        double jitter_p;          /* probability of applying colour jitter */
        double jitter_strength;   /* s: brightness/contrast/saturation 0.8s, hue 0.2s */
        double gray_p;
        double blur_p;
        double blur_sigma_min, blur_sigma_max;
    } augment;
    struct {
        int name;                 /* sc_loss_kind */
        double temperature;       /* ntxent, nt_logistic */
        double margin;            /* margin triplet, cosine-similarity units */
        int semi_hard;            /* nt_logistic, margin: semi-hard negative mining */
    } loss;
    struct {
        int name;                 /* sc_opt_name */
        double lr;                /* base learning rate before scaling */
        int lr_scaling;           /* sc_lr_scaling: lr * B/256, lr * sqrt(B), or lr */
        double momentum;
        double weight_decay;
        double trust_coef;        /* LARS eeta */
        int nesterov;             /* SGD */
        double beta1, beta2, eps; /* AdamW */
        double clip_grad_norm;    /* > 0: clip the global gradient norm to this; 0 = off */
    } optim;
    struct {
        int batch_size;           /* images per step (2x views) */
        double epochs;
        int64_t max_steps;        /* > 0: stop after this many steps (schedule still spans epochs) */
        double warmup_epochs;
        int checkpoint_every;     /* steps; 0 = only at the end */
    } train;
    struct {
        int keep_last;            /* newest step_<N> checkpoints kept (final is always kept) */
        int64_t keep_every;       /* > 0: checkpoints at multiples of this step are never pruned */
    } checkpoint;
    struct {
        int linear_probe;         /* probe the encoder (and its random init) after training */
        int batch_size;           /* feature extraction batch */
        int probe_train_samples;  /* 0 = the whole train split */
        int probe_test_samples;   /* 0 = the whole test split */
        double probe_l2;          /* L2 penalty of the logistic regression (no grid search) */
        int probe_max_iters;      /* L-BFGS iterations */
        double probe_holdout;     /* train fraction held out to choose the L2 penalty; 0 = probe_l2 */
        double probe_l2_min, probe_l2_max; /* the log-spaced L2 grid */
        int probe_l2_points;
        int every;                /* epochs between kNN evaluations during pretraining; 0 = off */
        int knn_k;
        double knn_temperature;
        int knn_train_samples;    /* kNN monitor bank size; 0 = the whole train split */
        int knn_test_samples;     /* kNN monitor queries; 0 = the whole test split */
    } eval;
    struct {
        int enabled;              /* write events.out.tfevents.* into the run directory */
        int image_every;          /* steps between grids of augmented view pairs; 0 = first step only */
        int image_pairs;
        int histogram_every;      /* steps between weight/gradient histograms; 0 = off */
        int projector_samples;    /* test images in the embedding projector; 0 = off */
    } tensorboard;
    struct {
        double label_fraction;    /* labelled fraction of the train split (class-balanced) */
        int64_t subset_seed;      /* picks the labelled subset */
        double epochs;
        int batch_size;
        double lr;                /* base rate, scaled by batch_size / 256 */
        double momentum;
        double weight_decay;
        int nesterov;
        int baseline;             /* also fine-tune the random initialisation with the same recipe */
    } finetune;
    struct {                      /* data-parallel training over several processes (src/dist) */
        int global_bn;            /* batch-norm statistics over the ranks of a BN group */
        int bn_group;             /* ranks per global-BN group (consecutive ranks); 0 = all */
        int cross_replica;        /* negatives from every rank's batch (all-gathered z) */
        double timeout_s;         /* a collective fails when a peer is silent this long */
        double bucket_mb;         /* gradient all-reduce bucket size (MiB; fractions for small models) */
        int overlap;              /* all-reduce buckets during the backward pass (else after it) */
    } dist;
} sc_config;

typedef enum sc_cfg_type {
    SC_CFG_INT,        /* int (or int64_t when size == 8) */
    SC_CFG_FLOAT,      /* double */
    SC_CFG_BOOL,       /* int 0/1; YAML true/false */
    SC_CFG_STRING,     /* char[size] */
    SC_CFG_ENUM,       /* int index into choices */
    SC_CFG_FLOAT_LIST, /* double[size] plus an int count at count_offset */
} sc_cfg_type;

typedef struct sc_config_entry {
    const char *key;            /* full dotted path */
    sc_cfg_type type;
    size_t offset;              /* offsetof(sc_config, field) */
    size_t size;                /* bytes for INT (4 or 8), capacity for STRING and FLOAT_LIST */
    size_t count_offset;        /* FLOAT_LIST only */
    double min, max;            /* inclusive range for INT, FLOAT and list elements */
    const char *const *choices; /* ENUM: NULL-terminated spellings */
    const char *def;            /* default value as YAML text */
    const char *help;
} sc_config_entry;

/* The schema table and its length. */
const sc_config_entry *sc_config_schema(int *count);
const sc_config_entry *sc_config_find(const char *key);

/* Fill every field with its schema default. */
void sc_config_defaults(sc_config *cfg);
/* Apply a YAML file or string on top of cfg. `name` labels errors (a path or "<embedded>"). */
sc_status sc_config_load_file(sc_config *cfg, const char *path);
sc_status sc_config_load_string(sc_config *cfg, const char *yaml, const char *name);
/* Apply one "a.b.c=value" override (value parsed as a YAML scalar or flow sequence). */
sc_status sc_config_set(sc_config *cfg, const char *assignment);
/* Checks across fields (ranges that depend on each other). */
sc_status sc_config_validate(const sc_config *cfg);
/* The resolved config as YAML (nested mappings, schema order). Caller frees. */
char *sc_config_to_yaml(const sc_config *cfg);
sc_status sc_config_write_file(const sc_config *cfg, const char *path);
/* One field's value as YAML text (the spelling sc_config_to_yaml writes), into buf. */
void sc_config_format_value(const sc_config *cfg, const sc_config_entry *e, char *buf, size_t cap);
/* Spelling of an enum field's value, e.g. sc_config_enum_name("model.arch", 2) = "resnet50". */
const char *sc_config_enum_name(const char *key, int value);
/* Every key with type, default and help, for `simclr train --help`. */
void sc_config_print_help(FILE *f);

/* The embedded default config (configs/fashion_mnist.yaml, generated at build time). */
extern const char sc_default_config_yaml[];

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_CONFIG_H */
