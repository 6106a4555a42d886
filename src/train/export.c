/*
 * export.c - the encoder to and from torchvision's state_dict names and OIHW layout
 * (see include/simclr/export.h).
 */
#include "simclr/export.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/log.h"
#include "simclr/safetensors.h"
#include "simclr/version.h"

#define BN_VAR_SUFFIX ".running_var"
#define NBT_SUFFIX ".num_batches_tracked"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* One encoder row of a host parameter buffer as F32, filters KRSC [k, r, s, c] -> OIHW [k, c, r, s]. */
static void row_to_torch(const sc_param *p, const void *host, sc_dtype dt, float *out) {
    const float *f32 = dt == SC_F32 ? (const float *)host + p->offset : NULL;
    const double *f64 = dt == SC_F64 ? (const double *)host + p->offset : NULL;
    if (!(p->flags & SC_PARAM_CONV)) {
        for (int64_t i = 0; i < p->numel; i++) out[i] = f32 ? f32[i] : (float)f64[i];
        return;
    }
    int64_t K = p->shape[0], R = p->shape[1], S = p->shape[2], C = p->shape[3];
    for (int64_t k = 0; k < K; k++)
        for (int64_t y = 0; y < R; y++)
            for (int64_t x = 0; x < S; x++)
                for (int64_t c = 0; c < C; c++) {
                    int64_t src = ((k * R + y) * S + x) * C + c, dst = ((k * C + c) * R + y) * S + x;
                    out[dst] = f32 ? f32[src] : (float)f64[src];
                }
}

/* Writer order: 8-byte-aligned I64 scalars first, then F32, each by name (safetensors' own
 * convention, so every tensor is aligned to its element size). */
static int cmp_entry(const void *a, const void *b) {
    const sc_st_entry *x = a, *y = b;
    size_t ax = sc_dtype_size(x->dtype), ay = sc_dtype_size(y->dtype);
    if (ax != ay) return ax > ay ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int stage_planes(const sc_param_table *t, int stage) {
    char name[64];
    snprintf(name, sizeof name, "layer%d.0.conv1.weight", stage);
    int row = sc_params_find(t, name);
    return row >= 0 ? (int)t->rows[row].shape[0] : 0;
}

sc_status sc_export_encoder(sc_model *m, const sc_config *cfg, const sc_train_state *ts, const char *source,
                            sc_export_format fmt, const char *path) {
    const sc_param_table *t = sc_model_params(m);
    sc_dtype dt = sc_model_dtype(m);
    sc_tensor pb = sc_model_param_buffer(m);
    int nrows = 0, nbn = 0;
    int64_t floats = 0;
    for (int i = 0; i < t->count; i++) {
        if (!(t->rows[i].flags & SC_PARAM_ENCODER)) continue;
        nrows++;
        floats += t->rows[i].numel;
        nbn += ends_with(t->rows[i].name, BN_VAR_SUFFIX);
    }
    void *host = malloc(sc_tensor_nbytes(&pb) ? sc_tensor_nbytes(&pb) : 1);
    float *data = malloc((size_t)(floats ? floats : 1) * sizeof *data);
    int64_t *nbt = calloc((size_t)(nbn ? nbn : 1), sizeof *nbt);
    sc_st_entry *e = calloc((size_t)(nrows + nbn), sizeof *e);
    char (*nbt_names)[SC_PARAM_NAME_CAP + sizeof NBT_SUFFIX] = calloc((size_t)(nbn ? nbn : 1), sizeof *nbt_names);
    sc_status rc = SC_OK;
    if (!host || !data || !nbt || !e || !nbt_names) {
        rc = sc_errorf(SC_ERR_NOMEM, "%s: out of memory preparing the export", path);
        goto done;
    }
    sc_tensor_download(sc_model_backend(m), host, &pb);
    int n = 0, b = 0;
    float *cursor = data;
    for (int i = 0; i < t->count; i++) {
        const sc_param *p = &t->rows[i];
        if (!(p->flags & SC_PARAM_ENCODER)) continue;
        row_to_torch(p, host, dt, cursor);
        e[n] = (sc_st_entry){.name = p->name, .dtype = SC_F32, .ndim = p->ndim, .data = cursor};
        memcpy(e[n].shape, p->shape, sizeof p->shape);
        if (p->flags & SC_PARAM_CONV) { /* [k, r, s, c] -> [k, c, r, s] */
            e[n].shape[1] = p->shape[3];
            e[n].shape[2] = p->shape[1];
            e[n].shape[3] = p->shape[2];
        }
        n++;
        cursor += p->numel;
        if (ends_with(p->name, BN_VAR_SUFFIX)) {
            snprintf(nbt_names[b], sizeof nbt_names[b], "%.*s" NBT_SUFFIX,
                     (int)(strlen(p->name) - strlen(BN_VAR_SUFFIX)), p->name);
            nbt[b] = ts->step; /* PyTorch counts one per training forward: one per step here */
            e[n++] = (sc_st_entry){.name = nbt_names[b], .dtype = SC_I64, .ndim = 0, .data = &nbt[b]};
            b++;
        }
    }
    qsort(e, (size_t)n, sizeof *e, cmp_entry);

    const char *arch = sc_config_enum_name("model.arch", cfg->model.arch);
    int cifar = cfg->model.stem == SC_STEM_CIFAR, stem_c = 0, feat = sc_model_feature_dim(m);
    int conv1 = sc_params_find(t, "conv1.weight");
    if (conv1 >= 0) stem_c = (int)t->rows[conv1].shape[0];
    int C = ts->in_channels;
    char width[32], inch[16], size[16], fdim[16], step[32], mean[96] = "[", stdv[96] = "[", planes[64], conv1_s[160];
    char cfg_json[1024];
    snprintf(width, sizeof width, "%.17g", cfg->model.width);
    snprintf(inch, sizeof inch, "%d", C);
    snprintf(size, sizeof size, "%d", ts->image_size);
    snprintf(fdim, sizeof fdim, "%d", feat);
    snprintf(step, sizeof step, "%" PRId64, ts->step);
    /* the augmentation's rule: a missing mean is 0, a missing std 1, a single value for every channel */
    int nm = cfg->data.mean_count, ns = cfg->data.std_count;
    for (int c = 0; c < C && c < 3; c++) {
        size_t lm = strlen(mean), ls = strlen(stdv);
        snprintf(mean + lm, sizeof mean - lm, "%s%.15g", c ? ", " : "", nm > 0 ? cfg->data.mean[c < nm ? c : nm - 1] : 0.0);
        snprintf(stdv + ls, sizeof stdv - ls, "%s%.15g", c ? ", " : "", ns > 0 ? cfg->data.std[c < ns ? c : ns - 1] : 1.0);
    }
    strncat(mean, "]", sizeof mean - strlen(mean) - 1);
    strncat(stdv, "]", sizeof stdv - strlen(stdv) - 1);
    snprintf(planes, sizeof planes, "[%d, %d, %d, %d]", stage_planes(t, 1), stage_planes(t, 2), stage_planes(t, 3),
             stage_planes(t, 4));
    snprintf(conv1_s, sizeof conv1_s, "Conv2d(%d, %d, kernel_size=%d, stride=%d, padding=%d, bias=False)", C, stem_c,
             cifar ? 3 : 7, cifar ? 1 : 2, cifar ? 1 : 3);
    snprintf(cfg_json, sizeof cfg_json,
             "{\"architecture\": \"%s\", \"input_size\": [%d, %d, %d], \"mean\": %s, \"std\": %s, \"num_classes\": 0, "
             "\"num_features\": %d, \"first_conv\": \"conv1\", \"classifier\": \"fc\", \"interpolation\": \"bilinear\", "
             "\"crop_pct\": 1.0}",
             arch, C, ts->image_size, ts->image_size, mean, stdv, feat);
    sc_st_meta meta[] = {
        {"format", "pt"},
        {"simclr_export", fmt == SC_EXPORT_TIMM ? "timm" : "torchvision"},
        {"architecture", arch},
        {"stem", cifar ? "cifar" : "imagenet"},
        {"width", width},
        {"planes", planes},
        {"in_channels", inch},
        {"input_size", size},
        {"feature_dim", fdim},
        {"normalize", nm > 0 || ns > 0 ? "true" : "false"},
        {"mean", mean},
        {"std", stdv},
        {"input", "pixels / 255 in [0, 1], then (x - mean) / std per channel when normalize is true; NCHW"},
        {"conv1", conv1_s},
        {"maxpool", cifar ? "Identity" : "MaxPool2d(kernel_size=3, stride=2, padding=1)"},
        {"fc", "absent: replace fc by nn.Identity(); the output is the average-pooled feature vector"},
        {"layout", "PyTorch: conv filters OIHW, all tensors F32; num_batches_tracked I64 = training steps"},
        {"source", source},
        {"step", step},
        {"simclr_version", sc_version},
        {"git_sha", sc_git_sha},
        {fmt == SC_EXPORT_TIMM ? "pretrained_cfg" : "timm_note",
         fmt == SC_EXPORT_TIMM ? cfg_json : "for ResNets timm's state_dict keys equal torchvision's"},
    };
    rc = sc_safetensors_write(path, e, n, meta, (int)(sizeof meta / sizeof meta[0]));
done:
    free(nbt_names);
    free(e);
    free(nbt);
    free(data);
    free(host);
    return rc;
}

/* ---- import (model.init_from) ------------------------------------------------------------------ */

/* The prefix in front of the encoder keys: the shortest P ("" or ending in '.') such that
 * both P + "conv1.weight" and P + "layer1.0.conv1.weight" exist. */
static int find_prefix(const sc_safetensors *st, char *prefix, size_t cap) {
    static const char stem[] = "conv1.weight";
    size_t best = (size_t)-1, m = sizeof stem - 1;
    for (int i = 0; i < st->count; i++) {
        const char *name = st->tensors[i].name;
        size_t n = strlen(name), plen = n - m;
        if (n < m || strcmp(name + plen, stem) != 0 || (plen > 0 && name[plen - 1] != '.')) continue;
        if (plen >= best || plen >= cap) continue;
        char probe[SC_ST_NAME_CAP + 32];
        snprintf(probe, sizeof probe, "%.*slayer1.0.conv1.weight", (int)plen, name);
        if (!sc_safetensors_find(st, probe)) continue;
        best = plen;
        memcpy(prefix, name, plen);
        prefix[plen] = '\0';
    }
    return best != (size_t)-1;
}

static double value_at(const sc_st_tensor *t, const void *data, int64_t i) {
    return t->dtype == SC_F32 ? (double)((const float *)data)[i] : ((const double *)data)[i];
}

sc_status sc_import_encoder(sc_model *m, const char *path) {
    sc_safetensors st;
    SC_TRY(sc_safetensors_open(path, &st));
    const sc_param_table *t = sc_model_params(m);
    sc_dtype dt = sc_model_dtype(m);
    sc_tensor pb = sc_model_param_buffer(m);
    void *host = malloc(sc_tensor_nbytes(&pb) ? sc_tensor_nbytes(&pb) : 1);
    sc_status rc = host ? SC_OK : sc_errorf(SC_ERR_NOMEM, "%s: out of memory", path);
    char prefix[SC_ST_NAME_CAP];
    if (rc == SC_OK && !find_prefix(&st, prefix, sizeof prefix))
        rc = sc_errorf(SC_ERR_FORMAT, "%s: no 'conv1.weight' with 'layer1.0.conv1.weight' (under any prefix): not a "
                       "ResNet encoder in torchvision's names", path);
    if (rc == SC_OK) sc_tensor_download(sc_model_backend(m), host, &pb);
    size_t plen = strlen(prefix);
    const char *adapted = "";
    int loaded = 0;
    for (int i = 0; i < t->count && rc == SC_OK; i++) {
        const sc_param *p = &t->rows[i];
        if (!(p->flags & SC_PARAM_ENCODER)) continue;
        char name[SC_ST_NAME_CAP + SC_PARAM_NAME_CAP];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        const sc_st_tensor *x = sc_safetensors_find(&st, name);
        if (!x) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor '%s' is missing (every encoder key is required)", path, name);
            break;
        }
        if (x->dtype != SC_F32 && x->dtype != SC_F64) {
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor '%s' is %s; F32 or F64 expected", path, name, sc_dtype_name(x->dtype));
            break;
        }
        int conv = (p->flags & SC_PARAM_CONV) != 0;
        int64_t want[SC_MAX_DIMS];
        memcpy(want, p->shape, sizeof want);
        if (conv) { /* KRSC row, OIHW file */
            want[1] = p->shape[3];
            want[2] = p->shape[1];
            want[3] = p->shape[2];
        }
        int same = x->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = x->shape[d] == want[d];
        int64_t file_c = conv && x->ndim == 4 ? x->shape[1] : 0;
        int stem_adapt = same ? 0 : conv && strcmp(p->name, "conv1.weight") == 0 && x->ndim == 4 &&
                                        x->shape[0] == want[0] && x->shape[2] == want[2] && x->shape[3] == want[3] &&
                                        ((want[1] == 1 && file_c == 3) || (want[1] == 3 && file_c == 1));
        if (!same && !stem_adapt) {
            char a[96], b2[96];
            sc_tensor g = sc_tensor_make(NULL, x->dtype, x->ndim, x->shape), w = sc_tensor_make(NULL, SC_F32, p->ndim, want);
            rc = sc_errorf(SC_ERR_FORMAT, "%s: tensor '%s' is %s, the model needs %s%s", path, name,
                           sc_tensor_describe(&g, a, sizeof a), sc_tensor_describe(&w, b2, sizeof b2),
                           conv ? " (OIHW)" : "");
            break;
        }
        const void *src = sc_safetensors_data(&st, x);
        int64_t K = p->ndim == 4 ? p->shape[0] : p->numel, R = conv ? p->shape[1] : 1, S = conv ? p->shape[2] : 1;
        int64_t C = conv ? p->shape[3] : 1;
        for (int64_t k = 0; k < K; k++)
            for (int64_t y = 0; y < R; y++)
                for (int64_t xx = 0; xx < S; xx++)
                    for (int64_t c = 0; c < C; c++) {
                        double v;
                        if (!conv) {
                            v = value_at(x, src, k);
                        } else if (!stem_adapt) {
                            v = value_at(x, src, ((k * C + c) * R + y) * S + xx);
                        } else if (C == 1) { /* 3 -> 1: sum over the input channels */
                            v = 0.0;
                            for (int64_t fc = 0; fc < 3; fc++) v += value_at(x, src, ((k * 3 + fc) * R + y) * S + xx);
                        } else { /* 1 -> 3: the single channel's filter, a third on each */
                            v = value_at(x, src, (k * R + y) * S + xx) / 3.0;
                        }
                        int64_t dst = p->offset + ((k * R + y) * S + xx) * C + c;
                        if (dt == SC_F32)
                            ((float *)host)[dst] = (float)v;
                        else
                            ((double *)host)[dst] = v;
                    }
        if (stem_adapt)
            adapted = C == 1 ? " (conv1 summed over the file's 3 input channels for this 1-channel model)"
                             : " (conv1's single input channel spread over 3 channels, divided by 3)";
        loaded++;
    }
    /* strict: nothing under the prefix but encoder keys, fc.* and num_batches_tracked */
    for (int i = 0; i < st.count && rc == SC_OK; i++) {
        const char *name = st.tensors[i].name;
        if (strncmp(name, prefix, plen) != 0) continue;
        const char *key = name + plen;
        if (strncmp(key, "fc.", 3) == 0 || ends_with(key, NBT_SUFFIX)) continue;
        int row = sc_params_find(t, key);
        if (row < 0 || !(t->rows[row].flags & SC_PARAM_ENCODER))
            rc = sc_errorf(SC_ERR_FORMAT, "%s: unexpected tensor '%s': not a key of this model's encoder (another "
                           "architecture?)", path, name);
    }
    if (rc == SC_OK) {
        sc_tensor_upload(sc_model_backend(m), &pb, host);
        SC_INFO("model.init_from: %d encoder tensors from %s%s%s%s", loaded, path, plen ? " under '" : "",
                plen ? prefix : "", plen ? "'" : "");
        if (adapted[0]) SC_INFO("model.init_from:%s", adapted);
    }
    free(host);
    sc_safetensors_close(&st);
    return rc;
}
