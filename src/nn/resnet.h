/*
 * resnet.h - the ResNet encoder f(.) (internal to src/nn; the public API is model.h).
 */
#ifndef SIMCLR_NN_RESNET_H
#define SIMCLR_NN_RESNET_H

#include "layers.h"
#include "simclr/model.h"

typedef struct sc_resnet sc_resnet;

/* Register every encoder parameter (torchvision names) in `t`. */
sc_status sc_resnet_build(const sc_model_config *mc, sc_param_table *t, sc_resnet **out);
void sc_resnet_free(sc_resnet *r);
int sc_resnet_feature_dim(const sc_resnet *r);

/* Plan activations for inputs [n, h, w, in_channels] in arena `a`; report the largest conv
 * workspace and the largest activation (elements), which sizes the shared gradient buffers,
 * and the forward multiply-adds of one image (convolutions only). */
sc_status sc_resnet_plan(sc_resnet *r, sc_backend *be, int n, int h, int w, sc_dtype dt, sc_arena *a,
                         size_t *ws_bytes, int64_t *max_act, double *macs);

/* x [n, h, w, c] -> h [n, F] (a view of the encoder's buffer). x must stay valid until the
 * backward pass, which needs it for the stem's weight gradient. */
void sc_resnet_forward(sc_resnet *r, const sc_nn_ctx *ctx, const sc_tensor *x, int train, sc_tensor *h);

/* dh [n, F] -> every encoder gradient. `scratch` are 4 buffers of at least max_act elements. */
void sc_resnet_backward(sc_resnet *r, const sc_nn_ctx *ctx, const sc_tensor *dh, void *const scratch[4]);

#endif /* SIMCLR_NN_RESNET_H */
