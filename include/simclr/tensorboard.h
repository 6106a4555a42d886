/*
 * tensorboard.h - TensorBoard event files and the embedding projector, written directly.
 *
 * An event file is a sequence of TFRecords, each holding one serialised `Event` protobuf:
 *   record  = u64 length (LE) | u32 masked CRC-32C of the length bytes | data | u32 masked CRC-32C of data
 *   masked  = ((crc >> 15) | (crc << 17)) + 0xA282EAD8, CRC-32C = Castagnoli, reflected 0x82F63B78
 * The first record carries file_version "brain.Event:2"; then every record is
 *   Event { wall_time = 1 (double), step = 2 (int64), summary = 5 { value = 1 { tag = 1, ... } } }
 * with the value one of simple_value = 2 (float), image = 4 { height 1, width 2, colorspace 3,
 * encoded_image_string 4 (PNG) } or histo = 5 { min 1, max 2, num 3, sum 4, sum_squares 5,
 * bucket_limit 6 (packed double), bucket 7 (packed double) }. The file is named
 * events.out.tfevents.<10-digit seconds>.<host>.<pid> inside the run directory, so
 * `tensorboard --logdir runs` shows every run. Only rank 0 writes one.
 *
 * The projector is a projector_config.pbtxt in the run directory naming a TSV tensor file,
 * a metadata TSV (one row per point) and a sprite image of the points' thumbnails.
 */
#ifndef SIMCLR_TENSORBOARD_H
#define SIMCLR_TENSORBOARD_H

#include <stddef.h>
#include <stdint.h>

#include "simclr/image.h"
#include "simclr/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CRC-32C (Castagnoli) of n bytes, and its TFRecord mask. */
uint32_t sc_crc32c(const void *data, size_t n);
uint32_t sc_crc32c_masked(const void *data, size_t n);

typedef struct sc_tb_writer sc_tb_writer;

/* Create a new event file in `dir` (which must exist) and write its file_version record. */
sc_status sc_tb_open(const char *dir, sc_tb_writer **out);
/* The event file's path. */
const char *sc_tb_path(const sc_tb_writer *w);
/* One scalar. */
sc_status sc_tb_scalar(sc_tb_writer *w, const char *tag, int64_t step, double value);
/* One image, PNG-encoded. */
sc_status sc_tb_image(sc_tb_writer *w, const char *tag, int64_t step, const sc_image8 *img);
/* A histogram of n values (non-finite values are skipped) in `buckets` equal-width buckets
 * between the smallest and the largest value. */
sc_status sc_tb_histogram(sc_tb_writer *w, const char *tag, int64_t step, const float *values, int64_t n,
                          int buckets);
/* Push buffered records to the file (each call above already ends with a flush). */
void sc_tb_close(sc_tb_writer *w);

/* The embedding projector in `dir`: projector_config.pbtxt, and in <dir>/projector/
 * <name>.tsv (features [n, dim]), <name>_metadata.tsv (header "label<TAB>class", one row per
 * point) and, when sprite != NULL, <name>_sprite.png (thumbnails of thumb x thumb pixels in
 * row-major order, ceil(sqrt(n)) per row). class_names may be NULL (numbers are shown). */
sc_status sc_tb_write_projector(const char *dir, const char *name, const float *features, int64_t n, int dim,
                                const int32_t *labels, const char *const *class_names, const sc_image8 *sprite,
                                int thumb);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_TENSORBOARD_H */
