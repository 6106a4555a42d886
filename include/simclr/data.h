/*
 * data.h - datasets, SimCLR augmentation and the multi-threaded batch loader.
 *
 * Data flows one way: a dataset yields uint8 images (HWC); the augmentation turns one image
 * into one float view in [0, 1] (then optionally normalised); the loader runs augmentation on
 * worker threads and hands the trainer whole batches of 2B views: rows 0..B-1 are the first
 * view of each sample, rows B..2B-1 the second view in the same order.
 *
 * Every random choice for (sample i, view v) in epoch e comes from the Philox stream keyed
 * (seed, e, i, v, SC_RNG_AUGMENT), and the epoch order from (seed, e, SC_RNG_SHUFFLE), so a
 * batch is bit-identical for any number of workers and after a resume.
 */
#ifndef SIMCLR_DATA_H
#define SIMCLR_DATA_H

#include <stdint.h>

#include "simclr/config.h"
#include "simclr/rng.h"
#include "simclr/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- datasets ---------------------------------------------------------------------------- */

/* A read-only image view: [height, width, channels] uint8, rows contiguous. */
typedef struct sc_image {
    int height, width, channels;
    const uint8_t *pixels;
} sc_image;

/* A dataset held in memory: every image has the same size. */
typedef struct sc_dataset {
    char name[64];      /* "fashion_mnist/train" */
    int64_t count;
    int height, width, channels;
    int num_classes;    /* 0 when unlabeled */
    uint8_t *pixels;    /* [count, height, width, channels] */
    int32_t *labels;    /* [count]; NULL when unlabeled */
} sc_dataset;

typedef enum sc_split { SC_SPLIT_TRAIN = 0, SC_SPLIT_TEST = 1 } sc_split;

/* Open the split of the dataset named by the config (data.dataset, data.path). */
sc_status sc_dataset_open(const sc_config *cfg, sc_split split, sc_dataset *out);
/* IDX image + label files, gzip-compressed or not (Fashion-MNIST, MNIST). */
sc_status sc_dataset_load_idx(const char *images_path, const char *labels_path, const char *name,
                              sc_dataset *out);
/* CIFAR-10 (data_batch_1..5.bin / test_batch.bin) or CIFAR-100 (train.bin / test.bin)
 * binary files from `dir`. */
sc_status sc_dataset_load_cifar(const char *dir, int cifar100, sc_split split, sc_dataset *out);
sc_image sc_dataset_image(const sc_dataset *ds, int64_t index);
/* Keep only the first `count` images (count <= ds->count). */
void sc_dataset_truncate(sc_dataset *ds, int64_t count);
void sc_dataset_free(sc_dataset *ds);

/* ---- augmentation ------------------------------------------------------------------------ */

typedef struct sc_augment_params {
    int out_size;      /* views are out_size x out_size */
    int out_channels;  /* 1 or 3; a 1-channel image is replicated when 3 */
    double crop_scale_min, crop_scale_max;
    double crop_ratio_min, crop_ratio_max;
    double flip_p;
    double jitter_p, brightness, contrast, saturation, hue; /* already multiplied by s */
    double gray_p;
    double blur_p, blur_sigma_min, blur_sigma_max;
    int normalize;     /* subtract mean / divide by std per channel */
    float mean[3], std[3];
} sc_augment_params;

/* Build the parameters from the config for images with `in_channels` channels. */
sc_augment_params sc_augment_params_from_config(const sc_config *cfg, int in_channels, int in_size);

/* What one view drew; filled by sc_augment_view for tests and previews. */
typedef struct sc_augment_record {
    int crop_x, crop_y, crop_w, crop_h;
    int flipped;
    int jittered;
    int jitter_order[4];   /* 0 brightness, 1 contrast, 2 saturation, 3 hue */
    float brightness_factor, contrast_factor, saturation_factor, hue_shift;
    int grayscaled;
    int blurred;
    float blur_sigma;
} sc_augment_record;

/* One SimCLR view of `src`: crop -> flip -> jitter (p) -> grayscale (p) -> blur (p) ->
 * clip to [0, 1] -> normalise. `out` is [out_size, out_size, out_channels]; `scratch` must
 * hold sc_augment_scratch_floats(p, src) floats. `rec` may be NULL. */
void sc_augment_view(const sc_augment_params *p, const sc_image *src, sc_rng *rng, float *out,
                     float *scratch, sc_augment_record *rec);
size_t sc_augment_scratch_floats(const sc_augment_params *p, const sc_image *src);

/* The evaluation transform: resize the whole image to out_size (bilinear, no randomness),
 * convert channels, normalise. */
void sc_augment_eval(const sc_augment_params *p, const sc_image *src, float *out, float *scratch);

/* ---- loader ------------------------------------------------------------------------------ */

typedef enum sc_loader_mode {
    SC_LOADER_TRAIN = 0, /* shuffled, two augmented views per sample, drops the last partial batch */
    SC_LOADER_EVAL = 1,  /* dataset order, one eval view per sample, keeps the last partial batch */
} sc_loader_mode;

typedef struct sc_loader_options {
    const sc_dataset *dataset;  /* not owned; must outlive the loader */
    sc_augment_params aug;
    sc_loader_mode mode;
    int batch_size;             /* samples per batch (views per batch = 2x in TRAIN mode) */
    int workers;                /* >= 1 threads */
    int prefetch;               /* batches in flight, >= 1 */
    uint64_t seed;
    int rank, world_size;       /* this rank's shard of every global batch (1 process: 0, 1) */
} sc_loader_options;

typedef struct sc_batch {
    int64_t epoch, index;  /* batch `index` of `epoch` */
    int samples;           /* B in this batch */
    int views_per_sample;  /* 2 in TRAIN mode, 1 in EVAL mode */
    int height, width, channels;
    float *views;          /* [views_per_sample * B, height, width, channels] */
    int64_t *sample_ids;   /* [B] dataset indices */
    int32_t *labels;       /* [B]; -1 when unlabeled */
} sc_batch;

typedef struct sc_loader sc_loader;

sc_status sc_loader_create(const sc_loader_options *opt, sc_loader **out);
/* Batches per epoch for this rank. */
int64_t sc_loader_batches_per_epoch(const sc_loader *l);
/* Start producing `epoch` from batch `first_batch` (0, or the resume position). */
sc_status sc_loader_start_epoch(sc_loader *l, int64_t epoch, int64_t first_batch);
/* The next batch in order; *out = NULL at the end of the epoch. The batch stays valid until
 * it is released. Waiting time is added to *wait_seconds when that is not NULL. */
sc_status sc_loader_next(sc_loader *l, sc_batch **out, double *wait_seconds);
void sc_loader_release(sc_loader *l, sc_batch *b);
void sc_loader_destroy(sc_loader *l);

/* The sample order of an epoch (a permutation of [0, count)), as the loader uses it. */
void sc_epoch_permutation(uint64_t seed, int64_t epoch, int64_t count, int64_t *perm);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_DATA_H */
