/*
 * loss.h - the contrastive loss on the head output, as the trainer uses it.
 *
 *   z [2N, D] --L2 normalise + loss (one backend op)--> loss, contrastive accuracy
 *
 * and backward: d loss / d z. Rows 0..N-1 are the first view of each sample and N..2N-1 the
 * second view in the same order. The loss is NT-Xent (the paper's L: the mean over all 2N
 * anchors; the official TensorFlow code reports 2L), NT-Logistic or the margin triplet loss,
 * the last two optionally with semi-hard negatives (exact definitions in
 * src/backend/cpu/cpu_loss.c). The normalisation and the loss are one backend op
 * (sc_op_contrastive with normalize = 1), which the CUDA backend fuses; this module owns its
 * buffers and workspace, planned once for the largest batch.
 *
 * Cross-replica negatives (sc_loss_init_dist): each rank all-gathers every rank's z into the
 * columns [W * 2N, D] (rank r's block holds its two views, so pair_block = 2N and its rows
 * start at column r * 2N), computes the loss of its own rows against all columns, and the
 * column gradients are reduce-scattered (summed) back to their owners and added to the row
 * gradients, as the official SimCLR code does. Each rank's loss is the mean over its own
 * anchors, and its dz is the gradient of the SUM of all ranks' losses; the data-parallel
 * gradient MEAN over ranks then equals the gradient of the mean over all W * 2N anchors,
 * which is the 1-process loss of the global batch.
 */
#ifndef SIMCLR_LOSS_H
#define SIMCLR_LOSS_H

#include "simclr/backend.h"
#include "simclr/config.h"
#include "simclr/dist.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sc_loss {
    sc_backend *be;
    sc_contrastive_desc desc;
    sc_dtype dtype;
    int max_rows, dim;
    void *block;      /* one backend allocation for every buffer below */
    sc_tensor dz;     /* [max_rows, D] gradient of z */
    sc_tensor loss;   /* [1] */
    sc_tensor acc;    /* [1] */
    sc_tensor ws;     /* the op's workspace for max_rows (bytes, as U8) */
    sc_comm *comm;    /* cross-replica negatives over these ranks; NULL: this process's batch */
    sc_tensor z_cols; /* [W * max_rows, D] every rank's z (cross-replica only) */
    sc_tensor d_cols; /* [W * max_rows, D] gradient through the column role */
    sc_tensor d_own;  /* [max_rows, D] the column gradients of this rank's rows, summed over ranks */
} sc_loss;

/* The loss of the config: loss.name, loss.temperature, loss.margin, loss.semi_hard. */
sc_contrastive_desc sc_loss_desc_from_config(const sc_config *cfg);

/* desc->normalize, row_offset and pair_block are set by the module (single-matrix form). */
sc_status sc_loss_init(sc_loss *l, sc_backend *be, const sc_contrastive_desc *desc, int max_rows, int dim,
                       sc_dtype dt);
/* Cross-replica negatives over `comm` (all ranks pass the same max_rows). */
sc_status sc_loss_init_dist(sc_loss *l, sc_backend *be, const sc_contrastive_desc *desc, int max_rows, int dim,
                            sc_dtype dt, sc_comm *comm);
void sc_loss_free(sc_loss *l);

/* Forward (and backward when dz != NULL, which then receives a view of d loss / d z).
 * The loss and accuracy stay on the backend until read with sc_loss_read. */
void sc_loss_compute(sc_loss *l, const sc_tensor *z, sc_tensor *dz);
/* The cross-replica form (sc_loss_init_dist), forward and backward; every rank passes the
 * same number of rows. Fails (naming the rank) when the communicator does. */
sc_status sc_loss_compute_dist(sc_loss *l, const sc_tensor *z, sc_tensor *dz);
/* Copy the last loss and contrastive accuracy to the host (synchronises). */
void sc_loss_read(sc_loss *l, double *loss, double *accuracy);

#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_LOSS_H */
