/*
 * ntxent.c - host side of the contrastive loss: buffer planning and the
 * normalise -> NT-Xent -> backward sequence (see include/simclr/loss.h).
 */
#include "simclr/loss.h"

#include "simclr/arena.h"

static sc_status plan(sc_loss *l, sc_arena *a) {
    int64_t mat[2] = {l->max_rows, l->dim}, vec[1] = {l->max_rows}, one[1] = {1};
    SC_TRY(sc_arena_tensor(a, l->dtype, 2, mat, &l->zn));
    SC_TRY(sc_arena_tensor(a, l->dtype, 1, vec, &l->norm));
    SC_TRY(sc_arena_tensor(a, l->dtype, 2, mat, &l->dzn));
    SC_TRY(sc_arena_tensor(a, l->dtype, 2, mat, &l->dz));
    SC_TRY(sc_arena_tensor(a, l->dtype, 1, one, &l->loss));
    SC_TRY(sc_arena_tensor(a, l->dtype, 1, one, &l->acc));
    return SC_OK;
}

sc_status sc_loss_init(sc_loss *l, sc_backend *be, double tau, int max_rows, int dim, sc_dtype dt) {
    if (max_rows < 2 || max_rows % 2) return sc_errorf(SC_ERR_ARG, "the loss needs an even number of rows >= 2, not %d", max_rows);
    if (!(tau > 0)) return sc_errorf(SC_ERR_ARG, "the temperature must be positive, not %g", tau);
    *l = (sc_loss){.be = be, .tau = tau, .dtype = dt, .max_rows = max_rows, .dim = dim};
    sc_arena a;
    sc_arena_measure(&a, "loss (planning)");
    SC_TRY(plan(l, &a));
    SC_TRY(sc_backend_alloc(be, a.used, "the loss buffers", &l->block));
    size_t bytes = a.used;
    sc_arena_init(&a, "loss", l->block, bytes);
    return plan(l, &a);
}

void sc_loss_free(sc_loss *l) {
    sc_backend_free(l->be, l->block);
    l->block = NULL;
}

void sc_loss_compute(sc_loss *l, const sc_tensor *z, sc_tensor *dz) {
    int64_t rows = z->shape[0];
    SC_CHECK(rows <= l->max_rows && z->ndim == 2 && z->shape[1] == l->dim,
             "loss input [%lld, %lld] does not fit the plan [<=%d, %d]", (long long)rows,
             (long long)z->shape[1], l->max_rows, l->dim);
    sc_tensor zn = sc_tensor_slice0(&l->zn, 0, rows);
    sc_tensor norm = sc_tensor_slice0(&l->norm, 0, rows);
    sc_op_l2norm_fwd(l->be, z, &zn, &norm);
    if (!dz) {
        sc_op_ntxent(l->be, &zn, l->tau, &l->loss, &l->acc, NULL);
        return;
    }
    sc_tensor dzn = sc_tensor_slice0(&l->dzn, 0, rows);
    sc_op_ntxent(l->be, &zn, l->tau, &l->loss, &l->acc, &dzn);
    *dz = sc_tensor_slice0(&l->dz, 0, rows);
    sc_op_l2norm_bwd(l->be, &zn, &norm, &dzn, dz);
}

void sc_loss_read(sc_loss *l, double *loss, double *accuracy) {
    if (loss) *loss = sc_tensor_read_scalar(l->be, &l->loss);
    if (accuracy) *accuracy = sc_tensor_read_scalar(l->be, &l->acc);
}
