/*
 * cmd_export.c - `simclr export RUN_OR_CKPT --out FILE [--format torchvision|timm]`: the
 * encoder of a checkpoint in PyTorch's names and OIHW fp32 layout (see include/simclr/export.h).
 * It needs neither the dataset nor a GPU: the model is rebuilt on the CPU from the config and
 * the input shape stored in the checkpoint.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "simclr/backend.h"
#include "simclr/export.h"

static const char export_usage[] =
    "usage: simclr export RUN_DIR|CHECKPOINT --out FILE [--format torchvision|timm]\n"
    "\n"
    "Write the encoder (no projection head, no optimizer state) as safetensors with torchvision's\n"
    "state_dict names, conv filters OIHW, F32, num_batches_tracked I64, and metadata telling how to\n"
    "build the matching module (architecture, stem, width, input channels and size, normalisation).\n"
    "For ResNets timm's key names equal torchvision's: --format timm writes the same tensors with\n"
    "timm's pretrained_cfg in the metadata. RUN_DIR picks its newest valid checkpoint.\n"
    "\n"
    "  Python:  m = torchvision.models.resnet18(); m.fc = torch.nn.Identity()\n"
    "           m.load_state_dict(safetensors.torch.load_file(FILE))   # strict\n"
    "  (CIFAR stem: m.conv1 = nn.Conv2d(C, 64, 3, 1, 1, bias=False); m.maxpool = nn.Identity())\n";

/* The view side of a version-1 checkpoint, which did not record it. */
static int default_image_size(const sc_config *cfg) {
    if (cfg->data.image_size > 0) return cfg->data.image_size;
    return cfg->data.dataset == SC_DATASET_FASHION_MNIST ? 28 : 32;
}

int sc_cmd_export(int argc, char **argv) {
    static const char *const own[] = {"--out", "--format", NULL};
    sc_cli_opts opts;
    int code = sc_cli_parse_ex(argc, argv, &opts, export_usage, own);
    if (code >= 0) return code;
    const char *out = opts.extra[0], *format = opts.extra[1] ? opts.extra[1] : "torchvision";
    if (opts.npos != 1 || !out || opts.config_file || opts.nsets > 0) {
        fputs(export_usage, stderr);
        return SC_EXIT_USAGE;
    }
    sc_export_format fmt;
    if (!strcmp(format, "torchvision")) fmt = SC_EXPORT_TORCHVISION;
    else if (!strcmp(format, "timm")) fmt = SC_EXPORT_TIMM;
    else return sc_cli_fail(sc_errorf(SC_ERR_ARG, "--format %s: expected torchvision or timm", format));

    char ckpt[1200];
    sc_train_state ts;
    sc_config cfg;
    sc_status st = sc_cli_resolve_checkpoint(opts.pos[0], ckpt, sizeof ckpt, &ts, NULL, 0);
    if (st == SC_OK) st = sc_cli_checkpoint_config(&opts, ckpt, &cfg);
    if (st != SC_OK) return sc_cli_fail(st);
    if (ts.image_size == 0) ts.image_size = default_image_size(&cfg);

    sc_backend *be = NULL;
    sc_model *model = NULL;
    st = sc_backend_create("cpu", NULL, &be);
    sc_model_config mc = sc_model_config_from(&cfg, ts.in_channels);
    if (st == SC_OK) st = sc_model_create(&mc, be, SC_F32, &model);
    if (st == SC_OK) st = sc_checkpoint_load(ckpt, model, NULL, NULL, NULL);
    if (st == SC_OK) st = sc_export_encoder(model, &cfg, &ts, ckpt, fmt, out);
    if (st == SC_OK)
        printf("exported the encoder of %s (step %lld, %s %s stem, width %g, %d-channel %dx%d input, %d features) to %s "
               "in %s format\n",
               ckpt, (long long)ts.step, sc_config_enum_name("model.arch", cfg.model.arch),
               sc_config_enum_name("model.stem", cfg.model.stem), cfg.model.width, ts.in_channels, ts.image_size,
               ts.image_size, sc_model_feature_dim(model), out, format);
    sc_model_destroy(model);
    sc_backend_destroy(be);
    return st == SC_OK ? SC_EXIT_OK : sc_cli_fail(st);
}
