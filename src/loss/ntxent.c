/*
 * ntxent.c - host side of the contrastive loss: the config mapping, buffer planning and the
 * single call of the fused normalise + loss (+ backward) op (see include/simclr/loss.h).
 */
#include "simclr/loss.h"

#include "simclr/arena.h"

sc_contrastive_desc sc_loss_desc_from_config(const sc_config *cfg) {
    sc_contrastive_desc d = sc_contrastive_ntxent(cfg->loss.temperature);
    d.kind = cfg->loss.name == SC_LOSS_NT_LOGISTIC ? SC_CONTRASTIVE_NT_LOGISTIC
             : cfg->loss.name == SC_LOSS_MARGIN    ? SC_CONTRASTIVE_MARGIN
                                                   : SC_CONTRASTIVE_NTXENT;
    d.margin = cfg->loss.margin;
    d.semi_hard = d.kind != SC_CONTRASTIVE_NTXENT && cfg->loss.semi_hard;
    return d;
}

static sc_status plan(sc_loss *l, sc_arena *a, size_t ws_bytes) {
    int64_t mat[2] = {l->max_rows, l->dim}, one[1] = {1}, ws[1] = {(int64_t)ws_bytes};
    sc_dtype out = l->dtype == SC_BF16 ? SC_F32 : l->dtype;
    SC_TRY(sc_arena_tensor(a, l->dtype, 2, mat, &l->dz));
    if (l->comm) {
        int64_t cols[2] = {(int64_t)l->comm->world_size * l->max_rows, l->dim};
        SC_TRY(sc_arena_tensor(a, l->dtype, 2, cols, &l->z_cols));
        SC_TRY(sc_arena_tensor(a, l->dtype, 2, cols, &l->d_cols));
        SC_TRY(sc_arena_tensor(a, l->dtype, 2, mat, &l->d_own));
    }
    SC_TRY(sc_arena_tensor(a, out, 1, one, &l->loss));
    SC_TRY(sc_arena_tensor(a, out, 1, one, &l->acc));
    if (ws_bytes) SC_TRY(sc_arena_tensor(a, SC_U8, 1, ws, &l->ws));
    return SC_OK;
}

static sc_status init(sc_loss *l, sc_backend *be, const sc_contrastive_desc *desc, int max_rows, int dim,
                      sc_dtype dt, sc_comm *comm) {
    if (max_rows < 2 || max_rows % 2) return sc_errorf(SC_ERR_ARG, "the loss needs an even number of rows >= 2, not %d", max_rows);
    if (desc->kind != SC_CONTRASTIVE_MARGIN && !(desc->tau > 0))
        return sc_errorf(SC_ERR_ARG, "the temperature must be positive, not %g", desc->tau);
    *l = (sc_loss){.be = be, .desc = *desc, .dtype = dt, .max_rows = max_rows, .dim = dim, .comm = comm};
    l->desc.normalize = 1;
    l->desc.row_offset = 0;
    l->desc.pair_block = 0;
    const int64_t cols = (int64_t)(comm ? comm->world_size : 1) * max_rows;
    if (comm) { /* the workspace of the largest call: the last rank's rows */
        l->desc.pair_block = max_rows;
        l->desc.row_offset = cols - max_rows;
    }
    size_t ws = sc_op_contrastive_workspace(be, &l->desc, max_rows, cols, dim, dt);
    sc_arena a;
    sc_arena_measure(&a, "loss (planning)");
    SC_TRY(plan(l, &a, ws));
    SC_TRY(sc_backend_alloc(be, a.used, "the loss buffers", &l->block));
    size_t bytes = a.used;
    sc_arena_init(&a, "loss", l->block, bytes);
    return plan(l, &a, ws);
}

sc_status sc_loss_init(sc_loss *l, sc_backend *be, const sc_contrastive_desc *desc, int max_rows, int dim,
                       sc_dtype dt) {
    return init(l, be, desc, max_rows, dim, dt, NULL);
}

sc_status sc_loss_init_dist(sc_loss *l, sc_backend *be, const sc_contrastive_desc *desc, int max_rows, int dim,
                            sc_dtype dt, sc_comm *comm) {
    return init(l, be, desc, max_rows, dim, dt, comm);
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
    sc_tensor *ws = l->ws.data ? &l->ws : NULL;
    if (!dz) {
        sc_op_contrastive(l->be, &l->desc, z, z, &l->loss, &l->acc, NULL, NULL, ws);
        return;
    }
    *dz = sc_tensor_slice0(&l->dz, 0, rows);
    sc_op_contrastive(l->be, &l->desc, z, z, &l->loss, &l->acc, dz, dz, ws);
}

sc_status sc_loss_compute_dist(sc_loss *l, const sc_tensor *z, sc_tensor *dz) {
    SC_CHECK(l->comm != NULL, "sc_loss_compute_dist on a loss made by sc_loss_init");
    const int64_t rows = z->shape[0], d = l->dim, world = l->comm->world_size;
    SC_CHECK(rows <= l->max_rows && z->ndim == 2 && z->shape[1] == d,
             "cross-replica loss input [%lld, %lld] does not fit the plan [<=%d, %d]", (long long)rows,
             (long long)z->shape[1], l->max_rows, l->dim);
    sc_tensor cols = sc_tensor_slice0(&l->z_cols, 0, world * rows), dcols = sc_tensor_slice0(&l->d_cols, 0, world * rows);
    sc_tensor own = sc_tensor_slice0(&l->d_own, 0, rows);
    *dz = sc_tensor_slice0(&l->dz, 0, rows);
    /* z [2n, D] of every rank -> cols [W 2n, D], rank r's block at r 2n */
    SC_TRY(sc_comm_allgather(l->comm, z->data, cols.data, rows * d, l->dtype));
    sc_contrastive_desc desc = l->desc;
    desc.row_offset = (int64_t)l->comm->rank * rows;
    desc.pair_block = rows;
    sc_op_contrastive(l->be, &desc, z, &cols, &l->loss, &l->acc, dz, &dcols, l->ws.data ? &l->ws : NULL);
    /* dcols [W 2n, D] of every rank -> own [2n, D]: block r summed over ranks, to rank r */
    SC_TRY(sc_comm_reduce_scatter_sum(l->comm, dcols.data, own.data, rows * d, l->dtype));
    sc_op_add(l->be, dz, &own, dz);
    return SC_OK;
}

void sc_loss_read(sc_loss *l, double *loss, double *accuracy) {
    if (loss) *loss = sc_tensor_read_scalar(l->be, &l->loss);
    if (accuracy) *accuracy = sc_tensor_read_scalar(l->be, &l->acc);
}
