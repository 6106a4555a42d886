/*
 * export.h - the encoder in PyTorch's names and layout, out (export) and in (model.init_from).
 *
 * Export writes the encoder rows of the parameter table (not the projection head, not the
 * optimizer state) as a safetensors file that torchvision's ResNet loads with
 * load_state_dict(strict=True) once its `fc` is replaced by nn.Identity():
 *   - names are torchvision's state_dict keys ("layer1.0.bn1.running_var"), which simclr uses
 *     already; for ResNets timm's keys are the same, so --format timm differs only in metadata;
 *   - convolution filters are transposed from simclr's KRSC to PyTorch's OIHW; all F32;
 *   - every BN gets "<bn>.num_batches_tracked" (I64 scalar) = the training step count;
 *   - metadata (strings): format "pt", architecture, stem, width, in_channels, input_size,
 *     feature_dim, normalize/mean/std (the per-channel input normalisation), how to build the
 *     matching module (conv1, maxpool, fc), source checkpoint, step, simclr version; with
 *     --format timm also "pretrained_cfg", a JSON object in timm's pretrained-config names.
 *   The CIFAR stem is conv1 = Conv2d(in, C, 3, stride 1, padding 1, bias=False) and maxpool =
 *   Identity on the PyTorch side; a width other than 1 needs torchvision's blocks with the
 *   scaled plane counts (metadata "planes").
 *
 * Import (model.init_from) reads such a file, or any torchvision-format ResNet state_dict saved
 * as safetensors (e.g. ImageNet weights), into the encoder rows of a model: every encoder key
 * must be present with its shape (OIHW for filters) and F32 or F64 values; `fc.*` and
 * `*.num_batches_tracked` are ignored, any other key is an error, as with strict loading. A
 * common prefix ("backbone.", "encoder.", "module.", ...) in front of every encoder key is
 * detected and used. A 1-channel model given RGB weights gets conv1 summed over its three
 * input channels (exactly what the RGB network computes on a gray image replicated to RGB);
 * a 3-channel model given 1-channel weights gets them divided by 3 on every channel.
 */
#ifndef SIMCLR_EXPORT_H
#define SIMCLR_EXPORT_H

#include "simclr/checkpoint.h"
#include "simclr/config.h"
#include "simclr/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sc_export_format { SC_EXPORT_TORCHVISION = 0, SC_EXPORT_TIMM = 1 } sc_export_format;

/* Write m's encoder to `path` (atomically). cfg is the model's config (architecture, stem,
 * width, normalisation); ts gives the step (num_batches_tracked), in_channels and image_size;
 * `source` names the checkpoint in the metadata. */
sc_status sc_export_encoder(sc_model *m, const sc_config *cfg, const sc_train_state *ts, const char *source,
                            sc_export_format fmt, const char *path);

/* Overwrite m's encoder rows with the tensors of a torchvision-format file (see above). The
 * head and the optimizer state are left as they are. */
sc_status sc_import_encoder(sc_model *m, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_EXPORT_H */
