/*
 * metrics.c - classification metrics of a scored test split (see include/simclr/eval.h):
 * top-1/top-5, the confusion matrix, per-class precision/recall/F1 with macro and weighted
 * averages, and their JSON, text and PNG heat-map renderings.
 *
 * Definitions (scikit-learn's, with zero_division = 0):
 *   prediction      the first class of maximal score
 *   top-k correct   fewer than k classes rank above the label, where c ranks above y when
 *                   score[c] > score[y], or score[c] == score[y] and c < y (so top-1 agrees
 *                   with the prediction)
 *   precision_c     TP_c / (TP_c + FP_c), 0 when class c is never predicted
 *   recall_c        TP_c / support_c, 0 when class c has no samples
 *   F1_c            2 P R / (P + R), 0 when P + R = 0
 *   macro           the unweighted mean over classes; weighted: weighted by support
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simclr/eval.h"
#include "simclr/image.h"

sc_status sc_class_metrics_compute(const float *scores, const int32_t *labels, int64_t n, int classes,
                                   sc_class_metrics *m) {
    memset(m, 0, sizeof *m);
    if (classes < 1 || n < 0) return sc_errorf(SC_ERR_ARG, "metrics need classes >= 1 (got %d)", classes);
    m->classes = classes;
    m->samples = n;
    size_t c = (size_t)classes;
    m->confusion = calloc(c * c, sizeof *m->confusion);
    m->support = calloc(c, sizeof *m->support);
    m->precision = calloc(c, sizeof *m->precision);
    m->recall = calloc(c, sizeof *m->recall);
    m->f1 = calloc(c, sizeof *m->f1);
    if (!m->confusion || !m->support || !m->precision || !m->recall || !m->f1) {
        sc_class_metrics_free(m);
        return sc_errorf(SC_ERR_NOMEM, "out of memory for a %d-class confusion matrix", classes);
    }
    int64_t top1 = 0, top5 = 0;
    int kk = classes < 5 ? classes : 5;
    for (int64_t i = 0; i < n; i++) {
        const float *s = scores + i * classes;
        int32_t y = labels[i];
        if (y < 0 || y >= classes) {
            sc_class_metrics_free(m);
            return sc_errorf(SC_ERR_DATA, "label %d of sample %lld is outside [0, %d)", y, (long long)i, classes);
        }
        int pred = 0, above = 0;
        for (int k = 0; k < classes; k++) {
            if (s[k] > s[pred]) pred = k;
            if (s[k] > s[y] || (s[k] == s[y] && k < y)) above++;
        }
        m->confusion[(size_t)y * c + (size_t)pred]++;
        m->support[y]++;
        top1 += above == 0;
        top5 += above < kk;
    }
    m->top1 = n ? (double)top1 / (double)n : 0.0;
    m->top5 = n ? (double)top5 / (double)n : 0.0;
    for (int k = 0; k < classes; k++) {
        int64_t tp = m->confusion[(size_t)k * c + (size_t)k], predicted = 0;
        for (int r = 0; r < classes; r++) predicted += m->confusion[(size_t)r * c + (size_t)k];
        m->precision[k] = predicted ? (double)tp / (double)predicted : 0.0;
        m->recall[k] = m->support[k] ? (double)tp / (double)m->support[k] : 0.0;
        double pr = m->precision[k] + m->recall[k];
        m->f1[k] = pr > 0 ? 2.0 * m->precision[k] * m->recall[k] / pr : 0.0;
        m->macro_precision += m->precision[k] / classes;
        m->macro_recall += m->recall[k] / classes;
        m->macro_f1 += m->f1[k] / classes;
        double w = n ? (double)m->support[k] / (double)n : 0.0;
        m->weighted_precision += w * m->precision[k];
        m->weighted_recall += w * m->recall[k];
        m->weighted_f1 += w * m->f1[k];
    }
    return SC_OK;
}

void sc_class_metrics_free(sc_class_metrics *m) {
    free(m->confusion);
    free(m->support);
    free(m->precision);
    free(m->recall);
    free(m->f1);
    memset(m, 0, sizeof *m);
}

static const char *const fashion_mnist_names[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
static const char *const cifar10_names[] = {"airplane", "automobile", "bird", "cat", "deer",
                                            "dog", "frog", "horse", "ship", "truck"};

const char *const *sc_class_names(const sc_config *cfg, int classes) {
    if (classes == 10 && cfg->data.dataset == SC_DATASET_FASHION_MNIST) return fashion_mnist_names;
    if (classes == 10 && cfg->data.dataset == SC_DATASET_CIFAR10) return cifar10_names;
    return NULL;
}

void sc_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* Class k's display name into buf. */
static const char *class_name(const char *const *names, int k, char *buf, size_t cap) {
    if (names) return names[k];
    snprintf(buf, cap, "%d", k);
    return buf;
}

void sc_class_metrics_write_json(FILE *f, const sc_class_metrics *m, const char *const *names, const char *indent) {
    char nb[16];
    int c = m->classes;
    fprintf(f, "{\n%s  \"samples\": %lld, \"top1\": %.6f, \"top5\": %.6f,\n", indent, (long long)m->samples, m->top1, m->top5);
    fprintf(f, "%s  \"macro\": {\"precision\": %.6f, \"recall\": %.6f, \"f1\": %.6f},\n", indent, m->macro_precision,
            m->macro_recall, m->macro_f1);
    fprintf(f, "%s  \"weighted\": {\"precision\": %.6f, \"recall\": %.6f, \"f1\": %.6f},\n", indent, m->weighted_precision,
            m->weighted_recall, m->weighted_f1);
    fprintf(f, "%s  \"per_class\": [\n", indent);
    for (int k = 0; k < c; k++) {
        fprintf(f, "%s    {\"class\": %d, \"name\": ", indent, k);
        sc_json_string(f, class_name(names, k, nb, sizeof nb));
        fprintf(f, ", \"precision\": %.6f, \"recall\": %.6f, \"f1\": %.6f, \"support\": %lld}%s\n", m->precision[k],
                m->recall[k], m->f1[k], (long long)m->support[k], k + 1 < c ? "," : "");
    }
    fprintf(f, "%s  ],\n%s  \"confusion_matrix_rows_true_cols_predicted\": [\n", indent, indent);
    for (int r = 0; r < c; r++) {
        fprintf(f, "%s    [", indent);
        for (int k = 0; k < c; k++) fprintf(f, "%s%lld", k ? ", " : "", (long long)m->confusion[(size_t)r * (size_t)c + (size_t)k]);
        fprintf(f, "]%s\n", r + 1 < c ? "," : "");
    }
    fprintf(f, "%s  ]\n%s}", indent, indent);
}

void sc_class_metrics_write_text(FILE *f, const sc_class_metrics *m, const char *const *names) {
    char nb[16];
    int c = m->classes, name_w = 5, cell_w = 5;
    for (int k = 0; k < c; k++) {
        int len = (int)strlen(class_name(names, k, nb, sizeof nb));
        name_w = len > name_w ? len : name_w;
        char num[32];
        for (int r = 0; r < c; r++) {
            int w = snprintf(num, sizeof num, "%lld", (long long)m->confusion[(size_t)r * (size_t)c + (size_t)k]) + 1;
            cell_w = w > cell_w ? w : cell_w;
        }
    }
    fprintf(f, "confusion matrix (rows: true class, columns: predicted class), %lld samples\n", (long long)m->samples);
    fprintf(f, "%*s ", name_w, "");
    for (int k = 0; k < c; k++) fprintf(f, "%*d", cell_w, k);
    fprintf(f, "\n");
    for (int r = 0; r < c; r++) {
        fprintf(f, "%*s ", name_w, class_name(names, r, nb, sizeof nb));
        for (int k = 0; k < c; k++) fprintf(f, "%*lld", cell_w, (long long)m->confusion[(size_t)r * (size_t)c + (size_t)k]);
        fprintf(f, "\n");
    }
    fprintf(f, "\n%*s %9s %9s %9s %9s\n", name_w, "class", "precision", "recall", "f1", "support");
    for (int k = 0; k < c; k++)
        fprintf(f, "%*s %9.4f %9.4f %9.4f %9lld\n", name_w, class_name(names, k, nb, sizeof nb), m->precision[k],
                m->recall[k], m->f1[k], (long long)m->support[k]);
    fprintf(f, "%*s %9.4f %9.4f %9.4f %9lld\n", name_w, "macro", m->macro_precision, m->macro_recall, m->macro_f1,
            (long long)m->samples);
    fprintf(f, "%*s %9.4f %9.4f %9.4f %9lld\n", name_w, "weighted", m->weighted_precision, m->weighted_recall,
            m->weighted_f1, (long long)m->samples);
    fprintf(f, "top-1 %.4f  top-5 %.4f\n", m->top1, m->top5);
}

/* Heat-map colour of a fraction in [0, 1]: white -> dark blue. */
static void heat_colour(double v, uint8_t rgb[3]) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    rgb[0] = (uint8_t)(255.0 - v * (255.0 - 8.0));
    rgb[1] = (uint8_t)(255.0 - v * (255.0 - 48.0));
    rgb[2] = (uint8_t)(255.0 - v * (255.0 - 107.0));
}

sc_status sc_class_metrics_write_png(const char *path, const sc_class_metrics *m) {
    int c = m->classes;
    long long biggest = 1;
    for (size_t i = 0; i < (size_t)c * (size_t)c; i++) biggest = m->confusion[i] > biggest ? m->confusion[i] : biggest;
    /* cells wide enough for the largest count at scale 2, at least 24 px; a margin for indices */
    int scale = 2, cell = sc_image8_number_width(biggest, scale) + 8;
    cell = cell < 24 ? 24 : cell;
    int margin = sc_image8_number_width(c - 1, scale) + 12;
    int side = margin + c * cell + 4;
    sc_image8 img;
    SC_TRY(sc_image8_alloc(&img, side, side, 3, 255));
    const uint8_t black[3] = {0, 0, 0}, white[3] = {255, 255, 255}, grid[3] = {200, 200, 200};
    for (int k = 0; k < c; k++) {
        /* column indices on top (predicted), row indices on the left (true) */
        int w = sc_image8_number_width(k, scale);
        sc_image8_draw_number(&img, margin + k * cell + (cell - w) / 2, (margin - 5 * scale) / 2, k, scale, black);
        sc_image8_draw_number(&img, (margin - w) / 2, margin + k * cell + (cell - 5 * scale) / 2, k, scale, black);
    }
    for (int r = 0; r < c; r++) {
        int64_t support = m->support[r];
        for (int k = 0; k < c; k++) {
            long long v = m->confusion[(size_t)r * (size_t)c + (size_t)k];
            double frac = support ? (double)v / (double)support : 0.0; /* row-normalised: recall on the diagonal */
            uint8_t rgb[3];
            heat_colour(frac, rgb);
            int x = margin + k * cell, y = margin + r * cell;
            sc_image8_fill_rect(&img, x, y, cell, cell, grid);
            sc_image8_fill_rect(&img, x + 1, y + 1, cell - 1, cell - 1, rgb);
            int w = sc_image8_number_width(v, scale);
            sc_image8_draw_number(&img, x + (cell - w) / 2, y + (cell - 5 * scale) / 2, v, scale, frac > 0.5 ? white : black);
        }
    }
    sc_status rc = sc_png_write(path, &img);
    sc_image8_free(&img);
    return rc;
}
