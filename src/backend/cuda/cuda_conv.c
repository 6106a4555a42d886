/*
 * cuda_conv.c - 2-D convolutions (forward, backward data, backward filter) through the cuDNN
 * graph (backend) API, the only place that talks to cuDNN.
 *
 * Layouts are the project's: x/dx [n, h, w, c] (NHWC), w/dw [k, r, s, c] (KRSC), y/dy
 * [n, oh, ow, k]. cuDNN describes every tensor as logical [N, C, H, W] with strides, so NHWC
 * is strides [hwc, 1, wc, c] and KRSC is the same pattern for the filter.
 *
 * Plans. A plan is one operation graph (one convolution node) for one descriptor and
 * direction, plus the engine configurations chosen for it. Plans are built the first time
 * a descriptor is seen, which is normally sc_op_conv2d_workspace at model planning time,
 * and cached in a hash table for the life of the backend. Building one:
 *   1. tensors, convolution descriptor, operation, operation graph (finalized);
 *   2. engine heuristics, mode A first, the fallback list only when A yields nothing usable;
 *   3. each suggested configuration in heuristic order is filtered by its engine's numerical
 *      notes: never DOWN_CONVERT_INPUTS or REDUCED_PRECISION_REDUCTION (fp32 in, fp32 out,
 *      fp32 accumulation), TENSOR_CORE only when TF32 is allowed, NONDETERMINISTIC never in
 *      deterministic mode; then by its workspace against the budget; then the execution
 *      plan must finalize;
 *   4. the first survivor is the engine (heuristics), or, with autotuning, up to
 *      CONV_CANDIDATES survivors are kept and timed on the first real execution (outside a
 *      capture), the fastest is kept and the others released. Autotuning is off in
 *      deterministic mode, where the heuristic order alone decides.
 * No surviving configuration is a clear fatal error naming the shape and why each
 * configuration was rejected.
 *
 * Workspace. The workspace a descriptor needs is the largest of its three directions' plans
 * (every candidate counted, so an autotuned winner always fits). A descriptor that differs
 * from an already planned one only by a smaller batch (the last, partial batch of an
 * evaluation pass, say) is planned under that larger batch's workspace, so a buffer sized
 * at planning time fits every smaller batch too.
 *
 * Execution builds a variant pack (three tensors and the workspace) per call: a few
 * microseconds of host time, which a captured step graph does not pay at all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "simclr/log.h"

#define CONV_CANDIDATES 6
#define CONV_BUCKETS 256
#define CONV_ALIGN 16 /* bytes: the alignment promised to cuDNN for every tensor */
#define UID_X 1       /* x or dx */
#define UID_W 2       /* w or dw */
#define UID_Y 3       /* y or dy */

typedef enum conv_dir { CONV_FWD = 0, CONV_BWD_DATA = 1, CONV_BWD_FILTER = 2 } conv_dir;
static const char *const dir_names[3] = {"forward", "backward-data", "backward-filter"};

typedef struct conv_key {
    int n, h, w, c, k, r, s, stride, pad, dir;
} conv_key;

typedef struct conv_candidate {
    cudnnBackendDescriptor_t cfg, plan;
    int64_t workspace, engine;
    int tensor_core;
} conv_candidate;

typedef struct conv_plan {
    conv_key key;
    cudnnBackendDescriptor_t tensors[3], conv, op, graph; /* kept alive with the plans */
    conv_candidate cand[CONV_CANDIDATES];
    int ncand;
    int tuned;         /* the engine is decided: cand[0] */
    int64_t workspace; /* the largest of the candidates' workspaces */
    struct conv_plan *next;
} conv_plan;

struct cuda_conv_cache {
    conv_plan *buckets[CONV_BUCKETS];
};

sc_status cuda_conv_cache_create(cuda_conv_cache **out) {
    *out = calloc(1, sizeof **out);
    return *out ? SC_OK : sc_errorf(SC_ERR_NOMEM, "cannot allocate the convolution plan cache");
}

static void destroy_desc(cudnnBackendDescriptor_t d) {
    if (d) SC_CUDNN_CHECK(cudnnBackendDestroyDescriptor(d));
}

static void candidate_release(conv_candidate *c) {
    destroy_desc(c->plan);
    destroy_desc(c->cfg);
    memset(c, 0, sizeof *c);
}

static void plan_free(conv_plan *p) {
    for (int i = 0; i < p->ncand; i++) candidate_release(&p->cand[i]);
    destroy_desc(p->graph);
    destroy_desc(p->op);
    destroy_desc(p->conv);
    for (int i = 0; i < 3; i++) destroy_desc(p->tensors[i]);
    free(p);
}

void cuda_conv_cache_free(cuda_conv_cache *cache) {
    if (!cache) return;
    for (int b = 0; b < CONV_BUCKETS; b++)
        for (conv_plan *p = cache->buckets[b], *next; p; p = next) {
            next = p->next;
            plan_free(p);
        }
    free(cache);
}

static conv_key key_of(const sc_conv_desc *d, conv_dir dir) {
    conv_key k = {d->n, d->h, d->w, d->c, d->k, d->r, d->s, d->stride, d->pad, (int)dir};
    return k;
}

static unsigned key_hash(const conv_key *k) {
    const int *v = (const int *)k;
    unsigned h = 2166136261u;
    for (size_t i = 0; i < sizeof *k / sizeof(int); i++) h = (h ^ (unsigned)v[i]) * 16777619u;
    return h % CONV_BUCKETS;
}

static int key_equal(const conv_key *a, const conv_key *b) { return memcmp(a, b, sizeof *a) == 0; }

static conv_plan *cache_find(const cuda_conv_cache *cache, const conv_key *k) {
    for (conv_plan *p = cache->buckets[key_hash(k)]; p; p = p->next)
        if (key_equal(&p->key, k)) return p;
    return NULL;
}

/* The largest workspace among plans of the same shape and direction with a batch >= k's:
 * the budget under which a smaller batch is planned (-1 when there is none). */
static int64_t sibling_workspace(const cuda_conv_cache *cache, const conv_key *k) {
    int64_t best = -1;
    for (int b = 0; b < CONV_BUCKETS; b++)
        for (const conv_plan *p = cache->buckets[b]; p; p = p->next) {
            conv_key a = p->key, want = *k;
            if (a.n < want.n) continue;
            a.n = want.n = 0;
            if (key_equal(&a, &want) && p->workspace > best) best = p->workspace;
        }
    return best;
}

/* ---- descriptor building ----------------------------------------------------------------- */

static void set_attr(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
                     int64_t count, const void *values) {
    SC_CUDNN_CHECK(cudnnBackendSetAttribute(d, name, type, count, values));
}

static cudnnBackendDescriptor_t create_desc(cudnnBackendDescriptorType_t type) {
    cudnnBackendDescriptor_t d = NULL;
    SC_CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d));
    return d;
}

/* A float tensor of logical shape [n, c, h, w] stored channels-last. */
static cudnnBackendDescriptor_t make_tensor(int64_t uid, int64_t n, int64_t c, int64_t h, int64_t w) {
    const int64_t dims[4] = {n, c, h, w}, strides[4] = {h * w * c, 1, w * c, c}, align = CONV_ALIGN;
    const cudnnDataType_t type = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t t = create_desc(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    set_attr(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
    set_attr(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims);
    set_attr(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides);
    set_attr(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    set_attr(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    SC_CUDNN_CHECK(cudnnBackendFinalize(t));
    return t;
}

static cudnnBackendDescriptor_t make_conv_desc(const conv_key *k) {
    const int64_t dims = 2, pad[2] = {k->pad, k->pad}, stride[2] = {k->stride, k->stride}, dil[2] = {1, 1};
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    cudnnBackendDescriptor_t c = create_desc(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
    set_attr(c, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    set_attr(c, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
    set_attr(c, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims);
    set_attr(c, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dil);
    set_attr(c, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, stride);
    set_attr(c, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pad);
    set_attr(c, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pad);
    SC_CUDNN_CHECK(cudnnBackendFinalize(c));
    return c;
}

/* The convolution node of direction k->dir over the plan's tensors. */
static cudnnBackendDescriptor_t make_operation(conv_plan *p) {
    static const cudnnBackendDescriptorType_t types[3] = {
        CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
        CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR};
    /* attribute names per direction: x-like, w-like, y-like, conv, alpha, beta */
    static const cudnnBackendAttributeName_t names[3][6] = {
        {CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
        {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
        {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
         CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA}};
    const int dir = p->key.dir;
    const float alpha = 1.0f, beta = 0.0f; /* outputs are overwritten */
    cudnnBackendDescriptor_t op = create_desc(types[dir]);
    for (int i = 0; i < 3; i++) set_attr(op, names[dir][i], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p->tensors[i]);
    set_attr(op, names[dir][3], CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p->conv);
    set_attr(op, names[dir][4], CUDNN_TYPE_FLOAT, 1, &alpha);
    set_attr(op, names[dir][5], CUDNN_TYPE_FLOAT, 1, &beta);
    SC_CUDNN_CHECK(cudnnBackendFinalize(op));
    return op;
}

/* ---- engine selection -------------------------------------------------------------------- */

/* Why configurations were rejected, for the error message when none is left. */
typedef struct reject_counts {
    int suggested, precision, nondeterministic, tf32, workspace, unsupported;
} reject_counts;

/* Reads the engine of `cfg`: its global index and whether its numerical notes allow it.
 * Returns 1 when the configuration may be used. */
static int engine_allowed(const sc_backend *be, cudnnBackendDescriptor_t cfg, int64_t *engine_index,
                          int *tensor_core, reject_counts *why) {
    cudnnBackendDescriptor_t engine = create_desc(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    int64_t got = 0;
    SC_CUDNN_CHECK(cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got,
                                            &engine));
    SC_CUDNN_CHECK(cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got,
                                            engine_index));
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    int64_t nnotes = 0;
    SC_CUDNN_CHECK(cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                            CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &nnotes, notes));
    destroy_desc(engine);
    int ok = 1;
    *tensor_core = 0;
    for (int64_t i = 0; i < nnotes && ok; i++) {
        switch (notes[i]) {
        case CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS:
        case CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION:
            why->precision++;
            ok = 0;
            break;
        case CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC:
            if (be->deterministic) {
                why->nondeterministic++;
                ok = 0;
            }
            break;
        case CUDNN_NUMERICAL_NOTE_TENSOR_CORE:
            *tensor_core = 1;
            if (!be->allow_tf32) {
                why->tf32++;
                ok = 0;
            }
            break;
        default:
            break;
        }
    }
    return ok;
}

/* Appends usable configurations suggested by heuristic `mode` until `want` candidates exist. */
static void collect_candidates(sc_backend *be, conv_plan *p, cudnnBackendHeurMode_t mode, int want, int64_t budget,
                               reject_counts *why) {
    cuda_impl *im = cuda_of(be);
    cudnnBackendDescriptor_t heur = create_desc(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    set_attr(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p->graph);
    set_attr(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    if (cudnnBackendFinalize(heur) != CUDNN_STATUS_SUCCESS) { /* this mode has nothing for the graph */
        destroy_desc(heur);
        return;
    }
    int64_t count = 0;
    SC_CUDNN_CHECK(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0,
                                            &count, NULL));
    cudnnBackendDescriptor_t *cfgs = count > 0 ? calloc((size_t)count, sizeof *cfgs) : NULL;
    SC_CHECK(count == 0 || cfgs, "out of host memory for %lld engine configurations", (long long)count);
    for (int64_t i = 0; i < count; i++) cfgs[i] = create_desc(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    int64_t got = 0;
    if (count > 0)
        SC_CUDNN_CHECK(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                                count, &got, cfgs));
    for (int64_t i = 0; i < got; i++) {
        cudnnBackendDescriptor_t cfg = cfgs[i];
        cfgs[i] = NULL;
        why->suggested++;
        int64_t engine = -1, ws = 0;
        int tc = 0, dup = 0;
        if (p->ncand >= want || !engine_allowed(be, cfg, &engine, &tc, why)) {
            destroy_desc(cfg);
            continue;
        }
        for (int j = 0; j < p->ncand; j++) dup |= p->cand[j].engine == engine;
        if (dup) { /* the fallback list repeats engines that mode A already offered */
            destroy_desc(cfg);
            continue;
        }
        /* the configuration's workspace is known before the (possibly slow) plan build */
        if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got, &ws) ==
                CUDNN_STATUS_SUCCESS &&
            ws > budget) {
            why->workspace++;
            destroy_desc(cfg);
            continue;
        }
        cudnnBackendDescriptor_t plan = create_desc(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        set_attr(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &im->cudnn);
        set_attr(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
        if (cudnnBackendFinalize(plan) != CUDNN_STATUS_SUCCESS) {
            why->unsupported++;
            destroy_desc(plan);
            destroy_desc(cfg);
            continue;
        }
        SC_CUDNN_CHECK(cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                                                &got, &ws));
        if (ws > budget) {
            why->workspace++;
            destroy_desc(plan);
            destroy_desc(cfg);
            continue;
        }
        p->cand[p->ncand++] = (conv_candidate){.cfg = cfg, .plan = plan, .workspace = ws, .engine = engine,
                                               .tensor_core = tc};
    }
    free(cfgs);
    destroy_desc(heur);
}

static void describe_key(const conv_key *k, char *buf, size_t cap) {
    snprintf(buf, cap, "%s convolution x [%d, %d, %d, %d] (NHWC), w [%d, %d, %d, %d] (KRSC), stride %d, pad %d",
             dir_names[k->dir], k->n, k->h, k->w, k->c, k->k, k->r, k->s, k->c, k->stride, k->pad);
}

static conv_plan *plan_build(sc_backend *be, const conv_key *k, int64_t budget) {
    cuda_impl *im = cuda_of(be);
    cuda_forbid_capture(im, "building a cuDNN convolution plan");
    conv_plan *p = calloc(1, sizeof *p);
    SC_CHECK(p != NULL, "out of host memory for a convolution plan");
    p->key = *k;
    const int oh = (k->h + 2 * k->pad - k->r) / k->stride + 1, ow = (k->w + 2 * k->pad - k->s) / k->stride + 1;
    p->tensors[0] = make_tensor(UID_X, k->n, k->c, k->h, k->w);
    p->tensors[1] = make_tensor(UID_W, k->k, k->c, k->r, k->s);
    p->tensors[2] = make_tensor(UID_Y, k->n, k->k, oh, ow);
    p->conv = make_conv_desc(k);
    p->op = make_operation(p);
    p->graph = create_desc(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    set_attr(p->graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &im->cudnn);
    set_attr(p->graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p->op);
    char what[256];
    describe_key(k, what, sizeof what);
    cudnnStatus_t st = cudnnBackendFinalize(p->graph);
    if (st != CUDNN_STATUS_SUCCESS)
        SC_FATAL("cuDNN cannot describe the %s: %s", what, cudnnGetErrorString(st));

    const int want = be->autotune && !be->deterministic ? CONV_CANDIDATES : 1;
    reject_counts why = {0};
    collect_candidates(be, p, CUDNN_HEUR_MODE_A, want, budget, &why);
    if (p->ncand == 0) collect_candidates(be, p, CUDNN_HEUR_MODE_FALLBACK, want, budget, &why);
    if (p->ncand == 0)
        SC_FATAL("cuDNN has no usable engine for the %s: of %d suggested configurations, %d convert inputs "
                 "or reduce in lower precision, %d are nondeterministic (deterministic mode %s), %d need TF32 "
                 "(TF32 %s), %d need more than the %lld-byte workspace budget, %d failed to build",
                 what, why.suggested, why.precision, why.nondeterministic, be->deterministic ? "on" : "off",
                 why.tf32, be->allow_tf32 ? "allowed" : "off", why.workspace, (long long)budget, why.unsupported);
    p->tuned = p->ncand == 1;
    for (int i = 0; i < p->ncand; i++)
        if (p->cand[i].workspace > p->workspace) p->workspace = p->cand[i].workspace;
    SC_DEBUG("cuDNN %s: %d candidate engine(s), first %lld (%s), workspace up to %lld bytes", what, p->ncand,
             (long long)p->cand[0].engine, p->cand[0].tensor_core ? "tensor cores" : "FMA", (long long)p->workspace);
    return p;
}

/* The plan of (d, dir), built on first use. */
static conv_plan *plan_get(sc_backend *be, const sc_conv_desc *d, conv_dir dir) {
    cuda_impl *im = cuda_of(be);
    conv_key k = key_of(d, dir);
    conv_plan *p = cache_find(im->conv, &k);
    if (p) return p;
    int64_t budget = (int64_t)be->workspace_limit, sibling = sibling_workspace(im->conv, &k);
    if (sibling >= 0 && sibling < budget) budget = sibling;
    p = plan_build(be, &k, budget);
    unsigned b = key_hash(&k);
    p->next = im->conv->buckets[b];
    im->conv->buckets[b] = p;
    return p;
}

size_t cuda_conv2d_workspace(sc_backend *be, const sc_conv_desc *d, sc_dtype dt) {
    SC_CHECK(dt == SC_F32, "CUDA convolutions are F32 only (got %s); F64 runs on the CPU backend", sc_dtype_name(dt));
    int64_t ws = 0;
    for (int dir = 0; dir < 3; dir++) {
        const conv_plan *p = plan_get(be, d, (conv_dir)dir);
        if (p->workspace > ws) ws = p->workspace;
    }
    return (size_t)ws;
}

/* ---- execution --------------------------------------------------------------------------- */

static void execute(sc_backend *be, cudnnBackendDescriptor_t plan, void *const ptrs[3], void *ws) {
    const int64_t uids[3] = {UID_X, UID_W, UID_Y};
    cudnnBackendDescriptor_t pack = create_desc(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    set_attr(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids);
    set_attr(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, ptrs);
    set_attr(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    SC_CUDNN_CHECK(cudnnBackendFinalize(pack));
    SC_CUDNN_CHECK(cudnnBackendExecute(cuda_of(be)->cudnn, plan, pack));
    destroy_desc(pack);
}

/* Times every candidate on the call's own buffers (the outputs are overwritten, never
 * accumulated, so the repeated runs leave a correct result) and keeps the fastest. */
static void autotune(sc_backend *be, conv_plan *p, void *const ptrs[3], void *ws) {
    cuda_impl *im = cuda_of(be);
    cudaEvent_t t0, t1;
    SC_CUDA_CHECK(cudaEventCreate(&t0));
    SC_CUDA_CHECK(cudaEventCreate(&t1));
    int best = 0;
    float best_ms = 0.0f;
    for (int i = 0; i < p->ncand; i++) {
        execute(be, p->cand[i].plan, ptrs, ws); /* warm-up: lazy module loading, caches */
        SC_CUDA_CHECK(cudaEventRecord(t0, im->stream));
        for (int rep = 0; rep < 3; rep++) execute(be, p->cand[i].plan, ptrs, ws);
        SC_CUDA_CHECK(cudaEventRecord(t1, im->stream));
        SC_CUDA_CHECK(cudaEventSynchronize(t1));
        float ms = 0.0f;
        SC_CUDA_CHECK(cudaEventElapsedTime(&ms, t0, t1));
        if (i == 0 || ms < best_ms) {
            best = i;
            best_ms = ms;
        }
    }
    SC_CUDA_CHECK(cudaEventDestroy(t0));
    SC_CUDA_CHECK(cudaEventDestroy(t1));
    char what[256];
    describe_key(&p->key, what, sizeof what);
    SC_DEBUG("cuDNN %s: autotuned engine %lld (%s, %.3f ms) of %d", what, (long long)p->cand[best].engine,
             p->cand[best].tensor_core ? "tensor cores" : "FMA", best_ms / 3.0f, p->ncand);
    conv_candidate keep = p->cand[best];
    for (int i = 0; i < p->ncand; i++)
        if (i != best) candidate_release(&p->cand[i]);
    p->cand[0] = keep;
    p->ncand = 1;
    p->tuned = 1;
}

static void run(sc_backend *be, const sc_conv_desc *d, conv_dir dir, const sc_tensor *xt, const sc_tensor *wt,
                const sc_tensor *yt, sc_tensor *ws) {
    cuda_require_f32(dir_names[dir], xt, wt, yt);
    conv_plan *p = plan_get(be, d, dir);
    void *const ptrs[3] = {xt->data, wt->data, yt->data};
    void *wsp = p->workspace > 0 ? ws->data : NULL;
    for (int i = 0; i < 3; i++)
        SC_CHECK(sc_cuda_aligned(ptrs[i], CONV_ALIGN), "%s convolution: tensor %d at %p is not %d-byte aligned",
                 dir_names[dir], i, ptrs[i], CONV_ALIGN);
    SC_CHECK(!wsp || sc_cuda_aligned(wsp, CONV_ALIGN), "convolution workspace is not %d-byte aligned", CONV_ALIGN);
    if (!p->tuned && !cuda_of(be)->capturing)
        autotune(be, p, ptrs, wsp);
    else
        execute(be, p->cand[0].plan, ptrs, wsp); /* inside a capture an untuned plan runs its first candidate */
}

void cuda_conv2d_fwd(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x, const sc_tensor *w, sc_tensor *y,
                     sc_tensor *ws) {
    run(be, d, CONV_FWD, x, w, y, ws);
}

void cuda_conv2d_bwd_data(sc_backend *be, const sc_conv_desc *d, const sc_tensor *dy, const sc_tensor *w,
                          sc_tensor *dx, sc_tensor *ws) {
    run(be, d, CONV_BWD_DATA, dx, w, dy, ws);
}

void cuda_conv2d_bwd_filter(sc_backend *be, const sc_conv_desc *d, const sc_tensor *x, const sc_tensor *dy,
                            sc_tensor *dw, sc_tensor *ws) {
    run(be, d, CONV_BWD_FILTER, x, dw, dy, ws);
}
