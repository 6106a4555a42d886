/*
 * config_schema.c - the schema table: one row per field of sc_config, in struct order.
 *
 * Each row gives the dotted key, type, location (offsetof), range or choices, default and a
 * one-sentence help text. Everything else in the config system (defaults, YAML loading,
 * --set, validation, writing, --help) is driven by this table, so adding a setting means
 * adding a struct field and one row here. The key is the stringified field path, so a
 * row's key can never disagree with the field it describes. Defaults are YAML text and
 * are applied through the same parser as files and --set, so they obey the same rules.
 */
#include <stddef.h>

#include "simclr/config.h"

#define FIELD_SIZE(field) sizeof(((sc_config *)0)->field)

/* Integers: size 4 (int) or 8 (int64_t), inclusive range. */
#define INT(field, lo, hi, def, help)                                                          \
    { #field, SC_CFG_INT, offsetof(sc_config, field), FIELD_SIZE(field), 0, lo, hi, NULL, def, help }
#define FLOAT(field, lo, hi, def, help)                                                        \
    { #field, SC_CFG_FLOAT, offsetof(sc_config, field), FIELD_SIZE(field), 0, lo, hi, NULL, def, help }
#define BOOL(field, def, help)                                                                 \
    { #field, SC_CFG_BOOL, offsetof(sc_config, field), FIELD_SIZE(field), 0, 0, 1, NULL, def, help }
/* Strings: size is the buffer capacity in bytes, including the terminating NUL. */
#define STRING(field, def, help)                                                               \
    { #field, SC_CFG_STRING, offsetof(sc_config, field), FIELD_SIZE(field), 0, 0, 0, NULL, def, help }
#define ENUM(field, choices, def, help)                                                        \
    { #field, SC_CFG_ENUM, offsetof(sc_config, field), FIELD_SIZE(field), 0, 0, 0, choices, def, help }
/* Float lists: size is the capacity in elements; the element count lives at count_offset. */
#define FLOAT_LIST(field, lo, hi, def, help)                                                   \
    { #field, SC_CFG_FLOAT_LIST, offsetof(sc_config, field),                                   \
      FIELD_SIZE(field) / sizeof(double), offsetof(sc_config, field##_count), lo, hi, NULL, def, help }

/* Enum spellings, indexed by the C enumerators of config.h. */
static const char *const progress_choices[] = {"auto", "always", "never", NULL};
static const char *const arch_choices[] = {"resnet18", "resnet34", "resnet50", NULL};
static const char *const stem_choices[] = {"cifar", "imagenet", NULL};
static const char *const dataset_choices[] = {"fashion_mnist", "cifar10", "cifar100", "imagefolder", "shards", NULL};
static const char *const augment_on_choices[] = {"cpu", "gpu", NULL};
static const char *const loss_choices[] = {"ntxent", "nt_logistic", "margin", NULL};
static const char *const opt_choices[] = {"lars", "sgd", "adamw", NULL};
static const char *const lr_scaling_choices[] = {"linear", "sqrt", "none", NULL};

/* The spellings above must stay in step with the enumerators. */
_Static_assert(SC_PROGRESS_NEVER == 2, "progress_choices");
_Static_assert(SC_ARCH_RESNET50 == 2, "arch_choices");
_Static_assert(SC_STEM_IMAGENET == 1, "stem_choices");
_Static_assert(SC_DATASET_SHARDS == 4, "dataset_choices");
_Static_assert(SC_AUGMENT_ON_GPU == 1, "augment_on_choices");
_Static_assert(SC_LOSS_MARGIN == 2, "loss_choices");
_Static_assert(SC_OPT_ADAMW == 2, "opt_choices");
_Static_assert(SC_LR_NONE == 2, "lr_scaling_choices");

static const sc_config_entry schema[] = {
    /* run */
    STRING(run.name, "\"simclr\"", "Name of the run; its outputs go to <run.dir>/<run.name>/."),
    STRING(run.dir, "\"runs\"", "Directory that holds the run directories."),
    INT(run.seed, 0, 9223372036854775807.0, "0",
        "Seed of every random stream (initialisation, shuffling, augmentation); results do not "
        "depend on the worker count."),
    STRING(run.device, "\"auto\"",
           "Compute device: auto (the first GPU if there is one, else the CPU), cpu, cuda or cuda:N."),
    INT(run.threads, 0, 1024, "0", "CPU compute threads; 0 uses every core."),
    INT(run.log_every, 1, 1000000000, "50", "Steps between log lines and metrics records."),
    ENUM(run.progress, progress_choices, "auto",
         "Progress bar: auto (only when writing to a terminal), always or never."),
    BOOL(run.deterministic, "false",
         "GPU: only deterministic cuDNN engines and fixed reduction orders, so two runs give identical "
         "bits (on the same GPU model and library versions); disables autotuning."),
    BOOL(run.tf32, "true",
         "GPU: allow TF32 tensor-core math (10-bit mantissa inputs, fp32 accumulation) in convolutions "
         "and matrix products; false computes in full fp32."),
    BOOL(run.cuda_graph, "true",
         "GPU: record the training step once and replay it as a CUDA graph (no per-kernel launch cost)."),
    BOOL(run.cudnn_autotune, "false",
         "GPU: time several cuDNN engines per convolution on the first step and keep the fastest "
         "(instead of the heuristic's first choice)."),
    INT(run.cudnn_workspace_mb, 1, 1048576, "512",
        "GPU: most MiB of scratch memory a convolution engine may use."),

    /* model */
    ENUM(model.arch, arch_choices, "resnet50", "Encoder backbone (the SimCLR paper uses resnet50)."),
    ENUM(model.stem, stem_choices, "imagenet",
         "ResNet stem: imagenet (7x7 stride-2 conv and max-pool) or cifar (3x3 stride-1 conv, no "
         "pool) for small images."),
    FLOAT(model.width, 0.015625, 8, "1.0",
          "Channel multiplier of the encoder: 1 gives the standard 64-128-256-512 base widths "
          "(SimCLR also trains 2x and 4x)."),
    BOOL(model.zero_init_residual, "true",
         "Start the gamma of the last batch norm in each residual block at zero, as SimCLR does."),
    INT(model.head.layers, 1, 8, "2",
        "Linear layers in the projection head (SimCLR v1: 2, v2: 3)."),
    INT(model.head.hidden_dim, 0, 65536, "0",
        "Width of the head's hidden layers; 0 uses the encoder's feature dimension (2048 for "
        "ResNet-50)."),
    INT(model.head.out_dim, 1, 65536, "128",
        "Dimension of the projection z that the loss sees (SimCLR: 128)."),
    BOOL(model.head.bn_hidden, "true", "Batch norm after each hidden linear layer of the head."),
    BOOL(model.head.bn_last, "false",
         "Batch norm without beta after the head's output layer, as in the official SimCLR code."),
    BOOL(model.head.bias, "true", "Bias on the head's linear layers that batch norm does not follow."),
    STRING(model.init_from, "\"\"",
           "A torchvision-format safetensors file (e.g. ImageNet weights or a simclr export) whose "
           "tensors initialise the encoder of a new run; empty starts from random weights."),

    /* data */
    ENUM(data.dataset, dataset_choices, "fashion_mnist",
         "Dataset to pretrain on: fashion_mnist, cifar10, cifar100 (held in memory), imagefolder (a "
         "directory of JPEG/PNG files, one subdirectory per class) or shards (WebDataset tar files)."),
    STRING(data.path, "\"\"",
           "Dataset directory or file; empty uses the dataset's standard location. shards: a directory "
           "of .tar files, one .tar file or a pattern such as /data/train-*.tar."),
    STRING(data.test_path, "\"\"",
           "imagefolder and shards: the held-out split scored by the linear probe, in the same form as "
           "data.path; empty means none (then set eval.linear_probe: false)."),
    BOOL(data.labeled, "true",
         "imagefolder: the subdirectories of data.path are the classes; false takes every image under "
         "data.path, recursively, as unlabeled."),
    STRING(data.cache, "\"auto\"",
           "Where the file list of imagefolder/shards is cached: auto ($XDG_CACHE_HOME/simclr, "
           "~/.cache/simclr; never inside the dataset), off, or a directory."),
    ENUM(data.augment_on, augment_on_choices, "cpu",
         "Where flip, colour jitter, grayscale, blur and normalisation run: cpu (loader threads) or gpu "
         "(the loader ships uint8 crops and the device finishes the views)."),
    FLOAT(data.max_bad_fraction, 0, 1, "0.01",
          "Fraction of the images that may fail to decode (each is skipped with a warning and replaced "
          "by the next valid image) before the run stops with an error."),
    INT(data.max_image_pixels, 1, 1e12, "89478485",
        "Images with more pixels (width x height, read from the header) are skipped as bad; the "
        "default is Pillow's decompression-bomb limit."),
    INT(data.workers, 1, 256, "4", "Threads that decode and augment images."),
    INT(data.prefetch, 1, 64, "4", "Batches prepared ahead of the training step."),
    INT(data.image_size, 0, 4096, "0",
        "Side in pixels of each augmented view; 0 keeps the stored size (28 for Fashion-MNIST, "
        "32 for CIFAR); required for imagefolder and shards, whose images differ in size."),
    INT(data.channels, 0, 3, "0",
        "Channels fed to the encoder: 0 as stored, 1 (gray) or 3 (gray replicated to RGB)."),
    FLOAT_LIST(data.mean, -1e6, 1e6, "[]",
               "Per-channel mean subtracted from augmented views, e.g. [0.485, 0.456, 0.406]; "
               "empty means no normalisation, as in SimCLR."),
    FLOAT_LIST(data.std, -1e6, 1e6, "[]",
               "Per-channel standard deviation divided out after the mean; as many values as "
               "data.mean, each > 0."),

    /* augment */
    FLOAT(augment.crop_scale_min, 1e-6, 1, "0.08",
          "Smallest area fraction kept by the random resized crop (SimCLR: 0.08)."),
    FLOAT(augment.crop_scale_max, 1e-6, 1, "1.0",
          "Largest area fraction kept by the random resized crop (SimCLR: 1)."),
    FLOAT(augment.crop_ratio_min, 0.01, 100, "0.75",
          "Smallest aspect ratio of the crop, sampled log-uniformly (SimCLR: 3/4)."),
    FLOAT(augment.crop_ratio_max, 0.01, 100, "1.3333333333333333",
          "Largest aspect ratio of the crop (SimCLR: 4/3)."),
    FLOAT(augment.flip_p, 0, 1, "0.5", "Probability of a horizontal flip (SimCLR: 0.5)."),
    FLOAT(augment.jitter_p, 0, 1, "0.8", "Probability of applying colour jitter (SimCLR: 0.8)."),
    FLOAT(augment.jitter_strength, 0, 10, "1.0",
          "Colour jitter strength s: brightness, contrast and saturation 0.8s, hue 0.2s (SimCLR: "
          "1 on ImageNet, 0.5 on CIFAR-10)."),
    FLOAT(augment.gray_p, 0, 1, "0.2", "Probability of converting a view to grayscale (SimCLR: 0.2)."),
    FLOAT(augment.blur_p, 0, 1, "0.5",
          "Probability of a Gaussian blur (SimCLR: 0.5 on ImageNet, 0 on CIFAR-10)."),
    FLOAT(augment.blur_sigma_min, 1e-6, 100, "0.1",
          "Smallest Gaussian blur sigma in pixels (SimCLR: 0.1)."),
    FLOAT(augment.blur_sigma_max, 1e-6, 100, "2.0",
          "Largest Gaussian blur sigma in pixels (SimCLR: 2.0)."),

    /* loss */
    ENUM(loss.name, loss_choices, "ntxent",
         "Contrastive loss: ntxent (normalised temperature-scaled cross entropy, SimCLR's), "
         "nt_logistic or margin (triplet), the alternatives of the SimCLR paper's Table 2."),
    FLOAT(loss.temperature, 1e-4, 100, "0.1",
          "Temperature tau of ntxent and nt_logistic (SimCLR: 0.1 on ImageNet at batch 4096, 0.5 on "
          "CIFAR-10)."),
    FLOAT(loss.margin, 0, 4, "0.5",
          "Margin of the margin triplet loss, in cosine-similarity units: max(0, s_neg - s_pos + margin)."),
    BOOL(loss.semi_hard, "false",
         "nt_logistic and margin: use only each anchor's semi-hard negative (the most similar negative "
         "that is less similar than the positive), as in the SimCLR paper's Table 4."),

    /* optim */
    ENUM(optim.name, opt_choices, "lars",
         "Optimizer: lars (SimCLR's choice for large batches), sgd with momentum, or adamw."),
    FLOAT(optim.lr, 0, 1000, "0.3",
          "Base learning rate before batch-size scaling (SimCLR: 0.3 with linear scaling, "
          "0.075 with sqrt)."),
    ENUM(optim.lr_scaling, lr_scaling_choices, "linear",
         "How the learning rate grows with batch size B: linear (lr*B/256), sqrt (lr*sqrt(B)) "
         "or none."),
    FLOAT(optim.momentum, 0, 0.999999, "0.9", "Momentum coefficient (SimCLR: 0.9)."),
    FLOAT(optim.weight_decay, 0, 1, "1.0e-6", "L2 weight decay coefficient (SimCLR paper: 1e-6)."),
    FLOAT(optim.trust_coef, 1e-9, 1, "0.001",
          "LARS trust coefficient eta, which scales each layer's step by ||w||/||g|| (SimCLR: "
          "0.001)."),
    BOOL(optim.nesterov, "false", "Nesterov momentum (sgd only)."),
    FLOAT(optim.beta1, 0, 0.999999, "0.9", "AdamW decay rate of the first moment."),
    FLOAT(optim.beta2, 0, 0.999999999, "0.999", "AdamW decay rate of the second moment."),
    FLOAT(optim.eps, 1e-12, 1, "1.0e-8", "AdamW term added to the denominator."),
    FLOAT(optim.clip_grad_norm, 0, 1e9, "0",
          "Clip the global gradient norm to this value before the update; 0 turns clipping off."),

    /* train */
    INT(train.batch_size, 2, 1048576, "256",
        "Images per optimisation step over all ranks (each rank takes batch_size / world size), each giving "
        "two augmented views (SimCLR: 4096)."),
    FLOAT(train.epochs, 1e-6, 1e6, "100",
          "Training length in passes over the dataset; fractions are allowed (SimCLR: 100 to 800)."),
    INT(train.max_steps, 0, 1e15, "0",
        "Stop after this many steps while the schedule still spans train.epochs; 0 means no limit."),
    FLOAT(train.warmup_epochs, 0, 1e6, "10",
          "Epochs of linear learning-rate warmup before the cosine decay (SimCLR: 10)."),
    INT(train.checkpoint_every, 0, 1e9, "0",
        "Steps between checkpoints; 0 writes one only at the end."),

    /* checkpoint */
    INT(checkpoint.keep_last, 1, 1000000, "3",
        "Newest step checkpoints kept in the run's checkpoints/ directory; older ones are deleted "
        "after each save (final.safetensors is always kept)."),
    INT(checkpoint.keep_every, 0, 1e15, "0",
        "Also keep forever every checkpoint whose step is a multiple of this; 0 keeps only the "
        "newest checkpoint.keep_last."),

    /* eval */
    BOOL(eval.linear_probe, "true",
         "After training, fit a linear classifier on frozen features of the trained encoder and of "
         "the same encoder at random initialisation."),
    INT(eval.batch_size, 1, 1048576, "512", "Images per batch when extracting features for evaluation."),
    INT(eval.probe_train_samples, 0, 1e9, "0",
        "Training images used to fit the probe; 0 uses the whole train split."),
    INT(eval.probe_test_samples, 0, 1e9, "0",
        "Test images used to score the probe; 0 uses the whole test split."),
    FLOAT(eval.probe_l2, 0, 1e3, "1.0e-4", "L2 penalty of the probe's logistic regression."),
    INT(eval.probe_max_iters, 1, 100000, "200", "Maximum L-BFGS iterations when fitting the probe."),
    FLOAT(eval.probe_holdout, 0, 0.5, "0.1",
          "Fraction of the probe's train images held out to choose the L2 penalty from the grid "
          "(then refit on all of them); 0 uses eval.probe_l2."),
    FLOAT(eval.probe_l2_min, 1e-12, 1e3, "1.0e-6", "Smallest L2 penalty of the probe's grid."),
    FLOAT(eval.probe_l2_max, 1e-12, 1e3, "0.1", "Largest L2 penalty of the probe's grid."),
    INT(eval.probe_l2_points, 1, 32, "6", "L2 penalties in the grid, log-spaced from probe_l2_min to probe_l2_max."),
    INT(eval.every, 0, 1000000, "0",
        "Epochs between kNN evaluations of the encoder during pretraining; 0 turns the monitor off."),
    INT(eval.knn_k, 1, 100000, "200", "Neighbours that vote in the kNN evaluation (InstDisc and lightly: 200)."),
    FLOAT(eval.knn_temperature, 1e-4, 100, "0.1", "Temperature t of the kNN votes exp(cosine / t)."),
    INT(eval.knn_train_samples, 0, 1e9, "0",
        "Train images in the kNN monitor's feature bank; 0 uses the whole train split."),
    INT(eval.knn_test_samples, 0, 1e9, "0", "Test images the kNN monitor classifies; 0 uses the whole test split."),

    /* tensorboard */
    BOOL(tensorboard.enabled, "true",
         "Write TensorBoard event files (scalars, images, histograms, projector) into the run directory."),
    INT(tensorboard.image_every, 0, 1e9, "500",
        "Steps between images of augmented view pairs; 0 writes only the first step's."),
    INT(tensorboard.image_pairs, 1, 64, "8", "View pairs shown in each image."),
    INT(tensorboard.histogram_every, 0, 1e9, "200", "Steps between weight and gradient histograms; 0 turns them off."),
    INT(tensorboard.projector_samples, 0, 100000, "1000",
        "Test images whose encoder features go to the embedding projector at the end; 0 turns it off."),

    /* finetune */
    FLOAT(finetune.label_fraction, 0.0001, 1, "0.1",
          "Fraction of the train split whose labels fine-tuning uses, equal per class (SimCLR: 0.01 and 0.1)."),
    INT(finetune.subset_seed, 0, 9223372036854775807.0, "0",
        "Seed that picks the labelled subset; its indices are recorded in the fine-tuning directory."),
    FLOAT(finetune.epochs, 1e-6, 1e6, "30", "Fine-tuning epochs over the labelled subset (SimCLR: 60 at 1%, 30 at 10%)."),
    INT(finetune.batch_size, 2, 1048576, "256", "Images per fine-tuning step."),
    FLOAT(finetune.lr, 0, 1000, "0.05",
          "Base fine-tuning learning rate, multiplied by batch_size/256 (SimCLR: 0.05, i.e. 0.8 at 4096)."),
    FLOAT(finetune.momentum, 0, 0.999999, "0.9", "Momentum of the fine-tuning SGD."),
    FLOAT(finetune.weight_decay, 0, 1, "0", "Weight decay while fine-tuning (SimCLR: none)."),
    BOOL(finetune.nesterov, "true", "Nesterov momentum while fine-tuning (SimCLR: yes)."),
    BOOL(finetune.baseline, "true",
         "Also fine-tune the same encoder at its random initialisation (supervised training from "
         "scratch on the same labels) as the baseline."),
    /* dist */
    BOOL(dist.global_bn, "true",
         "With several ranks: batch norm over the union of the batches of a BN group (SimCLR's global BN), "
         "not over each rank's batch."),
    INT(dist.bn_group, 0, 1048576, "0",
        "Ranks per global-BN group (consecutive ranks; must divide the world size); 0 = all ranks."),
    BOOL(dist.cross_replica, "true",
         "With several ranks: every rank's embeddings are negatives for every anchor (all-gathered), as in "
         "SimCLR; false uses only the rank's own batch."),
    FLOAT(dist.timeout_s, 0.1, 86400, "300",
          "A collective fails when a peer sends nothing for this long (a dead rank fails the others at once)."),
    FLOAT(dist.bucket_mb, 0.001, 4096, "25",
          "Gradient all-reduce bucket size in MiB (fractions allowed). Buckets are cut from the top of the "
          "gradient buffer and each one is all-reduced as soon as the backward pass has finished it, while "
          "the pass goes on."),
    BOOL(dist.overlap, "true",
         "Start each gradient bucket's all-reduce during the backward pass, as soon as its gradients are "
         "final; false starts them all after the pass (the same result: for CPU ranks that already fill every "
         "core, where overlapping only adds contention)."),
};

const sc_config_entry *sc_config_schema(int *count) {
    if (count) *count = (int)(sizeof schema / sizeof schema[0]);
    return schema;
}
