/*
 * test_op_tables.c - every backend's op table is complete (runs without a GPU).
 *
 * The CUDA table is read through sc_cuda_ops_table(), so a CUDA build checks it on a machine
 * with no GPU: an entry left NULL would otherwise only abort (a NULL call) when that op first
 * runs on a GPU. Required entries must be set in every table; the optional ones (backend.h:
 * the fused batch-norm entries, which backend.c composes when NULL, and the step-graph
 * entries) may be NULL, but the four step-graph entries come together, and the CUDA backend,
 * which records its training steps as graphs, must have them.
 *
 * The entries are listed explicitly (OP_ENTRIES) so a failure names the missing one; a
 * static assertion on the struct's size catches an entry added to backend.h but not here.
 */
#include "backend/backend_internal.h"
#include "harness.h"

/* X(entry, optional) for every function pointer of sc_backend_ops, in declaration order. */
#define OP_ENTRIES(X)                                                                          \
    X(alloc, 0)                                                                                \
    X(free, 0)                                                                                 \
    X(upload, 0)                                                                               \
    X(download, 0)                                                                             \
    X(copy, 0)                                                                                 \
    X(zero, 0)                                                                                 \
    X(synchronize, 0)                                                                          \
    X(conv2d_workspace, 0)                                                                     \
    X(conv2d_fwd, 0)                                                                           \
    X(conv2d_bwd_data, 0)                                                                      \
    X(conv2d_bwd_filter, 0)                                                                    \
    X(bn_fwd_train, 0)                                                                         \
    X(bn_fwd_eval, 0)                                                                          \
    X(bn_bwd, 0)                                                                               \
    X(bn_sums, 0)                                                                              \
    X(bn_fwd_from_sums, 0)                                                                     \
    X(bn_bwd_from_sums, 0)                                                                     \
    X(bn_act_fwd_train, 1)                                                                     \
    X(bn_act_fwd_eval, 1)                                                                      \
    X(bn_relu_bwd, 1)                                                                          \
    X(relu_fwd, 0)                                                                             \
    X(relu_bwd, 0)                                                                             \
    X(add, 0)                                                                                  \
    X(maxpool_fwd, 0)                                                                          \
    X(maxpool_bwd, 0)                                                                          \
    X(avgpool_fwd, 0)                                                                          \
    X(avgpool_bwd, 0)                                                                          \
    X(linear_fwd, 0)                                                                           \
    X(linear_bwd, 0)                                                                           \
    X(l2norm_fwd, 0)                                                                           \
    X(l2norm_bwd, 0)                                                                           \
    X(contrastive_workspace, 0)                                                                \
    X(contrastive, 0)                                                                          \
    X(optim_step, 0)                                                                           \
    X(softmax_xent, 0)                                                                         \
    X(knn_scores, 0)                                                                           \
    X(capture_begin, 1)                                                                        \
    X(capture_end, 1)                                                                          \
    X(graph_launch, 1)                                                                         \
    X(graph_free, 1)                                                                           \
    X(host_alloc, 0)                                                                           \
    X(host_free, 0)                                                                            \
    X(event_create, 1)                                                                         \
    X(event_destroy, 1)                                                                        \
    X(event_record, 1)                                                                         \
    X(event_sync, 1)                                                                           \
    X(upload_async, 0)                                                                         \
    X(augment_workspace, 0)                                                                    \
    X(augment_crops, 0)

#define COUNT_ENTRY(entry, optional) +1
enum { N_ENTRIES = 0 OP_ENTRIES(COUNT_ENTRY) };
_Static_assert(sizeof(sc_backend_ops) == sizeof(const char *) + N_ENTRIES * sizeof(void (*)(void)),
               "sc_backend_ops has an entry that OP_ENTRIES does not list");

/* Every required entry of `ops` is set; the step-graph entries are all set or all NULL. */
static void check_table(const char *backend, const sc_backend_ops *ops) {
    CHECKF(ops->name != NULL, "the %s table has no name", backend);
#define CHECK_ENTRY(entry, optional)                                                           \
    CHECKF((optional) || ops->entry != NULL, "the %s op table leaves the required entry `%s` NULL", backend, #entry);
    OP_ENTRIES(CHECK_ENTRY)
#undef CHECK_ENTRY
    const int graphs = (ops->capture_begin != NULL) + (ops->capture_end != NULL) + (ops->graph_launch != NULL) +
                       (ops->graph_free != NULL);
    CHECKF(graphs == 0 || graphs == 4, "the %s op table sets %d of the 4 step-graph entries", backend, graphs);
    const int events = (ops->event_create != NULL) + (ops->event_destroy != NULL) + (ops->event_record != NULL) +
                       (ops->event_sync != NULL);
    CHECKF(events == 0 || events == 4, "the %s op table sets %d of the 4 event entries", backend, events);
}

static void test_cpu_table(void) {
    sc_backend_options o = {.threads = 1};
    sc_backend *be = NULL;
    CHECK(sc_backend_create("cpu", &o, &be) == SC_OK);
    if (!be) return;
    check_table("cpu", be->ops);
    sc_backend_destroy(be);
}

static void test_cuda_table(void) {
    const sc_backend_ops *ops = sc_cuda_ops_table();
    CHECKF((ops != NULL) == (sc_cuda_compiled() != 0), "sc_cuda_ops_table() is %s in a build %s CUDA",
           ops ? "set" : "NULL", sc_cuda_compiled() ? "with" : "without");
    if (!ops) {
        printf("     (CUDA not compiled in: only the CPU table is checked)\n");
        return;
    }
    check_table("cuda", ops);
    /* a device backend orders its asynchronous uploads with events */
    CHECKF(ops->event_create != NULL, "the cuda op table has no events (event_create is NULL)");
    CHECKF(ops->capture_begin != NULL, "the cuda op table has no step graphs (capture_begin is NULL)");
}

int main(void) {
    SC_RUN(test_cpu_table);
    SC_RUN(test_cuda_table);
    return sc_test_summary();
}
