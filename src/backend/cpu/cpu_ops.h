/*
 * cpu_ops.h - the CPU reference ops, one function per entry of sc_backend_ops.
 *
 * Every op handles F32 and F64 tensors (F64 exists for the finite-difference gradient
 * checks). Reductions run in a fixed order, so results do not depend on the thread count.
 * Arguments have been validated by src/backend/backend.c.
 */
#ifndef SIMCLR_CPU_OPS_H
#define SIMCLR_CPU_OPS_H

#include "simclr/backend.h"

/* The smaller of two sizes (block bounds in the ops). */
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* cpu_augment.c */
void *sc_cpu_host_alloc(sc_backend *be, size_t bytes);
void sc_cpu_host_free(sc_backend *be, void *ptr);
void sc_cpu_upload_async(sc_backend *be, void *dst, const void *host_src, size_t bytes, sc_backend_event *after,
                         sc_backend_event *done);
size_t sc_cpu_augment_workspace(sc_backend *be, const sc_augment_params *p, int samples, int wc);
void sc_cpu_augment_crops(sc_backend *be, const sc_augment_params *p, uint64_t seed, uint32_t epoch,
                          const uint8_t *crops, const uint32_t *keys, int samples, int wc, float *views,
                          void *workspace);

/* cpu_conv.c */
size_t sc_cpu_conv2d_workspace(sc_backend *be, const sc_conv_desc *d, sc_dtype dt);
void sc_cpu_conv2d_fwd(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x, const sc_tensor *w,
                       sc_tensor *y, sc_tensor *ws);
void sc_cpu_conv2d_bwd_data(sc_backend *be, const sc_conv_desc *d, const sc_tensor *dy,
                            const sc_tensor *w, sc_tensor *dx, sc_tensor *ws);
void sc_cpu_conv2d_bwd_filter(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x,
                              const sc_tensor *dy, sc_tensor *dw, sc_tensor *ws);

/* cpu_norm.c */
void sc_cpu_bn_fwd_train(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                         const sc_tensor *beta, sc_tensor *y, sc_tensor *save_mean,
                         sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var,
                         double momentum, double eps);
void sc_cpu_bn_fwd_eval(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma,
                        const sc_tensor *beta, const sc_tensor *running_mean,
                        const sc_tensor *running_var, double eps, sc_tensor *y);
void sc_cpu_bn_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                   const sc_tensor *save_mean, const sc_tensor *save_invstd, sc_tensor *dx,
                   sc_tensor *dgamma, sc_tensor *dbeta);
void sc_cpu_bn_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *save_mean,
                    sc_tensor *sums);
void sc_cpu_bn_fwd_from_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *gamma, const sc_tensor *beta,
                             const sc_tensor *sums, double count, sc_tensor *y, sc_tensor *save_mean,
                             sc_tensor *save_invstd, sc_tensor *running_mean, sc_tensor *running_var,
                             double momentum, double eps);
void sc_cpu_bn_bwd_from_sums(sc_backend *be, const sc_tensor *x, const sc_tensor *dy, const sc_tensor *gamma,
                             const sc_tensor *save_mean, const sc_tensor *save_invstd, const sc_tensor *local,
                             const sc_tensor *global, double count, sc_tensor *dx, sc_tensor *dgamma,
                             sc_tensor *dbeta);
void sc_cpu_l2norm_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y, sc_tensor *norm);
void sc_cpu_l2norm_bwd(sc_backend *be, const sc_tensor *y, const sc_tensor *norm,
                       const sc_tensor *dy, sc_tensor *dx);

/* cpu_elementwise.c */
void sc_cpu_relu_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y);
void sc_cpu_relu_bwd(sc_backend *be, const sc_tensor *y, const sc_tensor *dy, sc_tensor *dx);
void sc_cpu_add(sc_backend *be, const sc_tensor *a, const sc_tensor *b, sc_tensor *y);
void sc_cpu_maxpool_fwd(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x, sc_tensor *y);
void sc_cpu_maxpool_bwd(sc_backend *be, const sc_pool_desc *d, const sc_tensor *x,
                        const sc_tensor *dy, sc_tensor *dx);
void sc_cpu_avgpool_fwd(sc_backend *be, const sc_tensor *x, sc_tensor *y);
void sc_cpu_avgpool_bwd(sc_backend *be, const sc_tensor *dy, sc_tensor *dx);

/* cpu_linear.c */
void sc_cpu_linear_fwd(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *b,
                       sc_tensor *y);
void sc_cpu_linear_bwd(sc_backend *be, const sc_tensor *x, const sc_tensor *w, const sc_tensor *dy,
                       sc_tensor *dx, sc_tensor *dw, sc_tensor *db);

/* cpu_loss.c */
size_t sc_cpu_contrastive_workspace(sc_backend *be, const sc_contrastive_desc *d, int64_t rows, int64_t cols,
                                    int64_t dim, sc_dtype dt);
void sc_cpu_contrastive(sc_backend *be, const sc_contrastive_desc *d, const sc_tensor *z_rows,
                        const sc_tensor *z_cols, sc_tensor *loss, sc_tensor *accuracy, sc_tensor *d_rows,
                        sc_tensor *d_cols, sc_tensor *ws);
void sc_cpu_softmax_xent(sc_backend *be, const sc_tensor *logits, const sc_tensor *labels,
                         sc_tensor *loss, sc_tensor *accuracy, sc_tensor *dlogits);

/* cpu_knn.c */
void sc_cpu_knn_scores(sc_backend *be, const sc_tensor *queries, const sc_tensor *bank,
                       const sc_tensor *bank_labels, int k, double temperature, sc_tensor *scores);

/* cpu_optim.c */
void sc_cpu_optim_step(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table,
                       sc_tensor *params, const sc_tensor *grads, sc_tensor *state, sc_tensor *state2,
                       sc_tensor *scalars);

#endif /* SIMCLR_CPU_OPS_H */
