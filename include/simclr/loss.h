/*
 * loss.h - the contrastive loss on the head output, as the trainer uses it.
 *
 *   z [2N, D] --L2 normalise--> zn --NT-Xent(tau)--> loss, contrastive accuracy
 *
 * and backward: d loss / d z. Rows 0..N-1 are the first view of each sample and N..2N-1 the
 * second view in the same order. The loss is the paper's L (mean over all 2N anchors; the
 * official TensorFlow code reports 2L). Both steps are backend ops (sc_op_l2norm_*,
 * sc_op_ntxent); this module owns their buffers, planned once for the largest batch.
 */
#ifndef SIMCLR_LOSS_H
#define SIMCLR_LOSS_H

#include "simclr/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sc_loss {
    sc_backend *be;
    double tau;
    sc_dtype dtype;
    int max_rows, dim;
    void *block;      /* one backend allocation for every buffer below */
    sc_tensor zn;     /* [max_rows, D] normalised embeddings */
    sc_tensor norm;   /* [max_rows] */
    sc_tensor dzn;    /* [max_rows, D] gradient of zn */
    sc_tensor dz;     /* [max_rows, D] gradient of z */
    sc_tensor loss;   /* [1] */
    sc_tensor acc;    /* [1] */
} sc_loss;

sc_status sc_loss_init(sc_loss *l, sc_backend *be, double tau, int max_rows, int dim, sc_dtype dt);
void sc_loss_free(sc_loss *l);

/* Forward (and backward when dz != NULL, which then receives a view of d loss / d z).
 * The loss and accuracy stay on the backend until read with sc_loss_read. */
void sc_loss_compute(sc_loss *l, const sc_tensor *z, sc_tensor *dz);
/* Copy the last loss and contrastive accuracy to the host (synchronises). */
void sc_loss_read(sc_loss *l, double *loss, double *accuracy);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_LOSS_H */
