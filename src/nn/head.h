/*
 * head.h - the projection head g(.) (internal to src/nn; the public API is model.h).
 */
#ifndef SIMCLR_NN_HEAD_H
#define SIMCLR_NN_HEAD_H

#include "layers.h"
#include "simclr/model.h"

typedef struct sc_head sc_head;

/* Register the head's parameters ("head.<i>.*", nn.Sequential numbering) for F inputs. */
sc_status sc_head_build(const sc_model_config *mc, int in_dim, sc_param_table *t, sc_head **out);
void sc_head_free(sc_head *h);
int sc_head_out_dim(const sc_head *h);
/* Largest layer width (sizes the head's gradient buffers). */
int sc_head_max_dim(const sc_head *h);
/* Multiply-adds of one sample through the linear layers. */
double sc_head_macs(const sc_head *h);
sc_status sc_head_plan(sc_head *h, int n, sc_dtype dt, sc_arena *a);
/* h [n, F] -> z [n, D] (a view of the head's buffer). h must stay valid until backward. */
void sc_head_forward(sc_head *hd, const sc_nn_ctx *ctx, const sc_tensor *h, int train, sc_tensor *z);
/* dz [n, D] -> head gradients and dh [n, F] written into `dh_buf`; `scratch` are two buffers
 * of n * max_dim elements distinct from dh_buf. */
void sc_head_backward(sc_head *hd, const sc_nn_ctx *ctx, const sc_tensor *dz, void *dh_buf,
                      void *const scratch[2]);

#endif /* SIMCLR_NN_HEAD_H */
