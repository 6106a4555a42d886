/*
 * data.h - datasets, SimCLR augmentation and the multi-threaded batch loader.
 *
 * Data flows one way: a dataset yields uint8 images (HWC); the augmentation turns one image
 * into one float view in [0, 1] (then optionally normalised); the loader runs augmentation on
 * worker threads and hands the trainer whole batches of 2B views: rows 0..B-1 are the first
 * view of each sample, rows B..2B-1 the second view in the same order.
 *
 * Two kinds of dataset: resident ones (IDX, CIFAR) hold every image in memory at one size;
 * encoded ones (an ImageFolder of JPEG/PNG files, WebDataset tar shards) hold a file index and
 * are decoded by the loader's workers, each view decoding only its crop (src/data/decode.h).
 * A file that cannot be decoded is skipped with a counted warning and replaced by the next
 * valid image in dataset order, so batches never depend on timing; more than the dataset's
 * max_bad_fraction bad stops the run with an error naming the first bad file.
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

/* The file index of an encoded dataset (src/data/file_index.h). */
typedef struct sc_file_index sc_file_index;

/* Pillow's decompression-bomb limit, the default of data.max_image_pixels. */
#define SC_DEFAULT_MAX_IMAGE_PIXELS 89478485LL
/* The default of data.max_bad_fraction. */
#define SC_DEFAULT_MAX_BAD_FRACTION 0.01

/* A dataset: resident (pixels, every image height x width) or encoded (index != NULL,
 * height = width = 0 because images differ in size, channels = 3: decoded to RGB). */
typedef struct sc_dataset {
    char name[64];      /* "fashion_mnist/train", "imagefolder:/data/train" */
    int64_t count;
    int height, width, channels;
    int num_classes;    /* 0 when unlabeled */
    uint8_t *pixels;    /* [count, height, width, channels]; NULL when encoded */
    int32_t *labels;    /* [count]; NULL when unlabeled */
    sc_file_index *index; /* encoded datasets: where each image's bytes are */
    /* How every loader reads an encoded dataset (data.max_bad_fraction, data.max_image_pixels;
     * the openers set the defaults, sc_dataset_open the config's values): more than
     * floor(max_bad_fraction x count) distinct bad images is an error, and images with more
     * than max_image_pixels pixels are bad. */
    double max_bad_fraction;
    int64_t max_image_pixels;
} sc_dataset;

typedef enum sc_split { SC_SPLIT_TRAIN = 0, SC_SPLIT_TEST = 1 } sc_split;

/* Why an encoded image was skipped. */
typedef enum sc_bad_reason {
    SC_BAD_NONE = 0,
    SC_BAD_UNREADABLE, /* missing, no permission, a directory, an I/O error */
    SC_BAD_EMPTY,      /* zero bytes */
    SC_BAD_NOT_IMAGE,  /* neither JPEG nor PNG by content (the name does not matter) */
    SC_BAD_TRUNCATED,  /* the data ends before the image does */
    SC_BAD_CORRUPT,    /* the decoder failed: corrupt data, 12-bit JPEG, too many scans */
    SC_BAD_TOO_LARGE,  /* width x height above data.max_image_pixels (checked on the header) */
    SC_BAD_REASONS
} sc_bad_reason;

/* "truncated", "not an image", ... */
const char *sc_bad_reason_name(sc_bad_reason r);

/* Open the split of the dataset named by the config (data.dataset, data.path; for
 * imagefolder and shards the test split is data.test_path). */
sc_status sc_dataset_open(const sc_config *cfg, sc_split split, sc_dataset *out);
/* An ImageFolder: `root`/<class>/.../<image>, classes = the sorted subdirectory names, images
 * found by a recursive walk that follows symlinks, sorted, extensions .jpg .jpeg .png (any
 * case). `labeled` 0 treats every image under root as unlabeled (no class level needed).
 * `cache` is data.cache: "auto", "off" or a directory for the file-list cache. */
sc_status sc_dataset_open_imagefolder(const char *root, int labeled, const char *cache,
                                      sc_dataset *out);
/* WebDataset tar shards: `path` is a directory (every *.tar in it, sorted), one .tar file or
 * a glob pattern. A sample is the files sharing a key; its image is the .jpg/.jpeg/.png member
 * and its label the integer in the .cls member (unlabeled when no sample has one). */
sc_status sc_dataset_open_shards(const char *path, const char *cache, sc_dataset *out);
/* Whether images are stored decoded in memory (IDX, CIFAR) or as files (folders, shards). */
static inline int sc_dataset_resident(const sc_dataset *ds) { return ds->index == NULL; }
/* A name for image `index` in messages: its path, "shard.tar:member" or "name[index]". */
void sc_dataset_describe(const sc_dataset *ds, int64_t index, char *buf, size_t cap);
/* IDX image + label files, gzip-compressed or not (Fashion-MNIST, MNIST). */
sc_status sc_dataset_load_idx(const char *images_path, const char *labels_path, const char *name,
                              sc_dataset *out);
/* CIFAR-10 (data_batch_1..5.bin / test_batch.bin) or CIFAR-100 (train.bin / test.bin)
 * binary files from `dir`. */
sc_status sc_dataset_load_cifar(const char *dir, int cifar100, sc_split split, sc_dataset *out);
/* Image `index` of a resident dataset. */
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

/* Build the parameters from the config for the images of `ds`. The view size is
 * data.image_size, or the stored size of a resident dataset when that is 0; a dataset whose
 * images differ in size (folders, shards) requires data.image_size. */
sc_status sc_augment_params_from_config(const sc_config *cfg, const sc_dataset *ds,
                                        sc_augment_params *out);

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

/* What a TRAIN batch carries (data.augment_on). */
typedef enum sc_loader_output {
    SC_LOADER_VIEWS = 0, /* float views augmented on the CPU (augment_on: cpu) */
    SC_LOADER_CROPS = 1, /* uint8 crops resized to the view size, for the device to finish
                          * (flip, jitter, gray, blur, normalise; augment_on: gpu) */
} sc_loader_output;

/* Where batch buffers come from, e.g. pinned host memory so that uploads are asynchronous.
 * alloc NULL means malloc/free. alloc returns NULL when out of memory. */
typedef struct sc_host_allocator {
    void *(*alloc)(void *ctx, size_t bytes);
    void (*free)(void *ctx, void *ptr);
    void *ctx;
} sc_host_allocator;

typedef struct sc_loader_options {
    const sc_dataset *dataset;  /* not owned; must outlive the loader */
    sc_augment_params aug;
    sc_loader_mode mode;
    int batch_size;             /* samples per batch (views per batch = 2x in TRAIN mode) */
    int workers;                /* >= 1 threads */
    int prefetch;               /* batches in flight, >= 1 */
    uint64_t seed;
    int rank, world_size;       /* this rank's shard of every global batch (1 process: 0, 1) */
    sc_loader_output output;    /* TRAIN only; EVAL batches are always views */
    sc_host_allocator allocator;
} sc_loader_options;

typedef struct sc_batch {
    int64_t epoch, index;  /* batch `index` of `epoch` */
    int samples;           /* B in this batch */
    int views_per_sample;  /* 2 in TRAIN mode, 1 in EVAL mode */
    int height, width, channels;
    float *views;          /* [views_per_sample * B, height, width, channels]; NULL for crops */
    uint8_t *crops;        /* SC_LOADER_CROPS: [2B, height, width, channels] in 0..255 */
    uint32_t *keys;        /* SC_LOADER_CROPS: [B] sample_ids as 32-bit Philox keys */
    int64_t *sample_ids;   /* [B] the sampler's indices; the views' Philox keys */
    int64_t *image_ids;    /* [B] the image shown: sample_ids[j], or the next valid image in
                            * dataset order when that one could not be decoded */
    int32_t *labels;       /* [B] labels of image_ids; -1 when unlabeled */
    int replaced;          /* rows whose image was replaced */
} sc_batch;

typedef struct sc_loader sc_loader;

sc_status sc_loader_create(const sc_loader_options *opt, sc_loader **out);
/* Batches per epoch for this rank. */
int64_t sc_loader_batches_per_epoch(const sc_loader *l);
/* Start producing `epoch` from batch `first_batch` (0, or the resume position). */
sc_status sc_loader_start_epoch(sc_loader *l, int64_t epoch, int64_t first_batch);
/* The next batch in order; *out = NULL at the end of the epoch. The batch stays valid until
 * it is released. Waiting time is added to *wait_seconds when that is not NULL. Fails with
 * SC_ERR_DATA when too many images are bad (the message names them). */
sc_status sc_loader_next(sc_loader *l, sc_batch **out, double *wait_seconds);
void sc_loader_release(sc_loader *l, sc_batch *b);
void sc_loader_destroy(sc_loader *l);
/* The exact sampler position: the epoch being produced and the index of the next batch
 * sc_loader_next will return. Restarting with sc_loader_start_epoch(epoch, batch) on a loader
 * with the same options (any worker count) continues with the same bytes. */
void sc_loader_position(const sc_loader *l, int64_t *epoch, int64_t *next_batch);
/* Distinct bad images met in the batches handed out so far, per reason. */
void sc_loader_bad_counts(const sc_loader *l, int64_t counts[SC_BAD_REASONS]);

/* The sample order of an epoch (a permutation of [0, count)), as the loader uses it. */
void sc_epoch_permutation(uint64_t seed, int64_t epoch, int64_t count, int64_t *perm);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_DATA_H */
