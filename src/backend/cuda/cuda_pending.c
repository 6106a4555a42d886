/* Temporary until the CUDA op table lands (issue #4). */
#include "../backend_internal.h"
sc_status sc_cuda_backend_create(int ordinal, const sc_backend_options *opt, sc_backend **out) {
    (void)ordinal; (void)opt; *out = NULL;
    return sc_errorf(SC_ERR_UNSUPPORTED, "CUDA backend pending");
}
void sc_cuda_backend_destroy(sc_backend *be) { (void)be; }
