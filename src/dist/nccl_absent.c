/*
 * nccl_absent.c - the NCCL communicator entry of a build without CUDA (compiled instead of
 * src/dist/nccl/nccl_comm.c): it reports that this build cannot create one, so the
 * distributed trainer needs no build-dependent branches.
 */
#include "simclr/dist.h"

sc_status sc_comm_nccl_create(sc_comm *oob, sc_backend *be, double timeout_s, sc_comm **out) {
    *out = NULL;
    return sc_errorf(SC_ERR_UNSUPPORTED, "rank %d: this simclr was built without CUDA, so it has no NCCL communicator",
                     oob ? oob->global_rank : 0);
}
