/* Temporary: ops under construction on helper branches. Deleted before the foundation lands. */
#include "cpu_ops.h"
#define PENDING SC_FATAL("op pending")
void sc_cpu_ntxent(sc_backend *be, const sc_tensor *z, double tau, sc_tensor *loss, sc_tensor *accuracy, sc_tensor *dz) { (void)be; (void)z; (void)tau; (void)loss; (void)accuracy; (void)dz; PENDING; }
void sc_cpu_optim_step(sc_backend *be, const sc_optim_hparams *hp, const sc_param_table *table, sc_tensor *params, const sc_tensor *grads, sc_tensor *state, const sc_tensor *lr) { (void)be; (void)hp; (void)table; (void)params; (void)grads; (void)state; (void)lr; PENDING; }
