/*
 * model.h - the SimCLR network: a ResNet encoder f(.) and a projection head g(.).
 *
 *   x [B, H, W, C]  --encoder-->  h [B, F]  --head-->  z [B, D]
 *
 * The encoder follows torchvision's ResNet-18/34/50 topology (BasicBlock / Bottleneck with
 * the stride on the 3x3 conv, 1x1 conv + BN downsample when shape changes) with two stems:
 * ImageNet (7x7/2 conv + 3x3/2 max pool) and CIFAR (3x3/1 conv, no pool), and a width
 * multiplier on every channel count. The head is an MLP: `layers` linear layers, BN + ReLU
 * after each hidden one (BN optional), optionally BN without beta after the last.
 *
 * All parameters live in the flat buffers of one parameter table with torchvision names
 * (encoder) and nn.Sequential-style names "head.<i>.*" (head), so that a PyTorch module built
 * the same way loads them directly. The model owns its buffers on one backend; activations
 * are planned once for the largest batch (sc_model_plan) and nothing is allocated per step.
 */
#ifndef SIMCLR_MODEL_H
#define SIMCLR_MODEL_H

#include "simclr/backend.h"
#include "simclr/config.h"
#include "simclr/dist.h"
#include "simclr/params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SC_BN_EPS 1e-5
#define SC_BN_MOMENTUM 0.1 /* PyTorch momentum; TensorFlow's decay 0.9 */

typedef struct sc_model_config {
    sc_arch arch;
    sc_stem stem;
    double width;          /* channel multiplier */
    int in_channels;
    int zero_init_residual;
    int head_layers;       /* >= 1 */
    int head_hidden;       /* 0 = the encoder's feature dimension */
    int head_out;
    int head_bn_hidden;
    int head_bn_last;
    int head_bias;         /* bias on linear layers that are not followed by BN */
} sc_model_config;

sc_model_config sc_model_config_from(const sc_config *cfg, int in_channels);

typedef struct sc_model sc_model;

/* Build the parameter table and allocate zeroed parameter, gradient and optimizer-state
 * buffers of `dtype` on `be`. Call sc_model_init_params (or load a checkpoint) next. */
sc_status sc_model_create(const sc_model_config *mc, sc_backend *be, sc_dtype dtype, sc_model **out);
void sc_model_destroy(sc_model *m);

/* Initialise every parameter from `seed` (see sc_params_init_values). The optimizer state is
 * left as it is (zero after sc_model_create). */
void sc_model_init_params(sc_model *m, uint64_t seed);

/* Plan activation, gradient and workspace memory for batches of up to `max_batch` images of
 * height x width (allocates once on the backend; may be called again to grow). */
sc_status sc_model_plan(sc_model *m, int max_batch, int height, int width);

const sc_param_table *sc_model_params(const sc_model *m);
sc_backend *sc_model_backend(const sc_model *m);
sc_dtype sc_model_dtype(const sc_model *m);
int sc_model_feature_dim(const sc_model *m); /* F */
int sc_model_out_dim(const sc_model *m);     /* D */
/* Flat 1-D buffers of table->total elements, on the backend. */
sc_tensor sc_model_param_buffer(sc_model *m);
sc_tensor sc_model_grad_buffer(sc_model *m);
sc_tensor sc_model_state_buffer(sc_model *m);
/* Bytes of activation + workspace memory planned. */
size_t sc_model_activation_bytes(const sc_model *m);
/* Forward multiply-adds of one image through encoder and head at the planned size (a
 * training step costs about 3x this, times 2 FLOPs per multiply-add). */
double sc_model_forward_macs(const sc_model *m);

/* Forward pass of a batch x [B, H, W, C] (B <= max_batch) in training mode (batch statistics,
 * running statistics updated, activations kept for backward) or evaluation mode (running
 * statistics). *h and *z are set to views of the model's buffers: [B, F] and [B, D]; either
 * pointer may be NULL. With z == NULL the head is skipped. */
/* Global (cross-replica) batch norm: while a sync is set, every training-mode BN sums its
 * per-channel statistics (forward: sum x, sum x^2; backward: sum dy, sum dy (x - mean)) over
 * the ranks of sync->comm, which all hold batches of the same size, and normalises with the
 * statistics of their union. local and global are F64 scratch tensors of at least
 * 2 * sc_model_bn_max_channels elements in backend memory. A communicator failure is kept in
 * sync->status (the first one; the pass then finishes on this rank's statistics alone), so
 * the caller checks it after each forward and backward. NULL (the default) normalises over
 * this process's batch. */
typedef struct sc_bn_sync {
    sc_comm *comm;
    sc_tensor local, global;
    sc_status status;
} sc_bn_sync;
void sc_model_set_bn_sync(sc_model *m, sc_bn_sync *sync);
int sc_model_bn_max_channels(const sc_model *m);

/* Gradient-ready hook (the data-parallel gradient sync, include/simclr/grad_sync.h): while one
 * is set, sc_model_backward calls ready(arg, offset) each time every gradient from `offset`
 * to the end of the gradient buffer is final for this pass: after each head layer, after
 * each residual block, and last after the stem with offset 0; the same calls in the same order
 * on every rank. Parameters are laid out in forward order (stem, blocks, head) and each of
 * these steps writes only the gradient rows of its own parameters, so the offsets fall. On a
 * device backend "final" means on the backend's stream: the work is enqueued, maybe not done.
 * NULL (the default) makes no calls. */
typedef void (*sc_grad_ready_fn)(void *arg, int64_t offset);
void sc_model_set_grad_ready(sc_model *m, sc_grad_ready_fn ready, void *arg);

void sc_model_forward(sc_model *m, const sc_tensor *x, int train, sc_tensor *h, sc_tensor *z);

/* Backward pass after a training-mode forward: dz [B, D] -> every gradient in the gradient
 * buffer (overwritten; BN running-statistic rows are zero). */
void sc_model_backward(sc_model *m, const sc_tensor *dz);


#ifdef __cplusplus
}
#endif

#endif /* SIMCLR_MODEL_H */
