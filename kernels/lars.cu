/*
 * lars.cu - the optimizer step (LARS, SGD with momentum, AdamW) over the flat parameter,
 * gradient and state buffers in two launches, at memory bandwidth. Semantics:
 * src/backend/cpu/cpu_optim.c (the reference), backend.h (the scalars record).
 *
 * A plan, built once from the parameter table, cuts every trainable tensor (BN running
 * statistics excluded) into chunks of at most 8192 elements; chunk starts are multiples of 4
 * elements (tensor offsets are multiples of 16), so the kernels use 16-byte loads.
 *
 * Launch 1 (one block per chunk) sums, in double, w^2, g^2, g.w and (g + wd w)^2 of its chunk
 * (w only for LARS), then the last block to finish (a ticket counter) adds the chunk sums of
 * each tensor in chunk order, the tensors' g^2 in table order (the global gradient norm),
 * evaluates the schedule from the step counter, decides clipping and the non-finite skip, and
 * writes each tensor's trust-scaled rate and the step record. Launch 2 (one block per chunk)
 * applies the update unless the step was skipped. Everything is read from device memory, so
 * the step needs no host synchronisation and can be captured in a CUDA graph; every sum runs
 * in a fixed order, so the same inputs give the same bits on every run.
 *
 * Traffic per parameter with fp32 buffers: LARS 8 + 20 = 28 bytes (24 with bf16 gradients),
 * SGD 4 + 20, AdamW 4 + 28.
 */
#include <cuda_bf16.h>
#include <math.h>
#include <stdlib.h>

#include "common.cuh"
#include "cuda_kernels.h"

namespace {

constexpr int kChunk = 8192;
constexpr int kThreads = 256;

struct Chunk {
    long long start; /* element offset in the flat buffers */
    int len;
    int tensor;      /* index into the plan's tensors */
};

struct Tensor {
    int first_chunk, nchunks;
    unsigned flags;
    int pad_;
};

/* What the last block of launch 1 hands to launch 2. */
struct StepState {
    double lr, clip, step_size, bc2_sqrt;
    int skip;
};

struct Hyper {
    int kind, nesterov, use_schedule;
    double momentum, wd, eeta, beta1, beta2, eps, clip_max;
    sc_schedule schedule;
};

} /* namespace */

struct sc_cuda_optim_plan {
    const sc_param_table *table; /* fingerprint: the table it was built from */
    int count;
    long long total;
    int nchunks, ntensors;
    Chunk *chunks;       /* device [nchunks] */
    Tensor *tensors;     /* device [ntensors] */
    double *partials;    /* device [nchunks][4] */
    double *rate;        /* device [ntensors]: LARS lr * trust */
    StepState *state;    /* device */
    unsigned *ticket;    /* device, zero between launches */
    void *block;         /* the one device allocation holding all of the above */
};

namespace {

__device__ __forceinline__ float load_g(const float *g, long long i) { return g[i]; }
__device__ __forceinline__ float load_g(const __nv_bfloat16 *g, long long i) { return __bfloat162float(g[i]); }
__device__ __forceinline__ void load_g4(const float *g, long long i, float out[4]) {
    const float4 v = *reinterpret_cast<const float4 *>(g + i);
    out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
}
__device__ __forceinline__ void load_g4(const __nv_bfloat16 *g, long long i, float out[4]) {
    const uint2 raw = *reinterpret_cast<const uint2 *>(g + i);
    const __nv_bfloat162 a = *reinterpret_cast<const __nv_bfloat162 *>(&raw.x);
    const __nv_bfloat162 b = *reinterpret_cast<const __nv_bfloat162 *>(&raw.y);
    out[0] = __low2float(a), out[1] = __high2float(a), out[2] = __low2float(b), out[3] = __high2float(b);
}

/* Fixed-order tree sum of 4 doubles over the block; the result is valid in thread 0. */
__device__ void block_sum4(double v[4], double (*sh)[kThreads]) {
    for (int k = 0; k < 4; ++k) sh[k][threadIdx.x] = v[k];
    __syncthreads();
    for (int s = kThreads / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            for (int k = 0; k < 4; ++k) sh[k][threadIdx.x] += sh[k][threadIdx.x + s];
        __syncthreads();
    }
    for (int k = 0; k < 4; ++k) v[k] = sh[k][0];
}

/* Launch 1: per-chunk sums, then (last block) per-tensor norms, the global norm, the step. */
template <typename G>
__global__ void __launch_bounds__(kThreads) norms_kernel(sc_cuda_optim_plan p, Hyper h, const float *w, const G *g,
                                                         double *scalars) {
    __shared__ double sh[4][kThreads];
    __shared__ int last;
    const Chunk c = p.chunks[blockIdx.x];
    const Tensor t = p.tensors[c.tensor];
    const double wd = (t.flags & SC_PARAM_NO_WD) ? 0.0 : h.wd;
    const bool need_w = h.kind == SC_OPTIM_LARS;
    double acc[4] = {0.0, 0.0, 0.0, 0.0}; /* w.w, g.g, g.w, (g + wd w)^2 */
    const int vec = c.len / 4 * 4;
    for (int i = threadIdx.x * 4; i < vec; i += kThreads * 4) {
        float gv[4], wv[4] = {0.f, 0.f, 0.f, 0.f};
        load_g4(g, c.start + i, gv);
        if (need_w) {
            const float4 x = *reinterpret_cast<const float4 *>(w + c.start + i);
            wv[0] = x.x, wv[1] = x.y, wv[2] = x.z, wv[3] = x.w;
        }
        for (int k = 0; k < 4; ++k) {
            const double gd = gv[k], wdv = wv[k], sd = gd + wd * wdv;
            acc[0] += wdv * wdv;
            acc[1] += gd * gd;
            acc[2] += gd * wdv;
            acc[3] += sd * sd;
        }
    }
    for (int i = vec + threadIdx.x; i < c.len; i += kThreads) {
        const double gd = load_g(g, c.start + i), wdv = need_w ? (double)w[c.start + i] : 0.0, sd = gd + wd * wdv;
        acc[0] += wdv * wdv;
        acc[1] += gd * gd;
        acc[2] += gd * wdv;
        acc[3] += sd * sd;
    }
    block_sum4(acc, sh);
    if (threadIdx.x == 0) {
        for (int k = 0; k < 4; ++k) p.partials[blockIdx.x * 4 + k] = acc[k];
        __threadfence();
        last = atomicAdd(p.ticket, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return;

    /* ---- the last block: everything below reads the other blocks' partials ---- */
    __threadfence();
    double gsum = 0.0; /* this thread's tensors' g.g, in table order */
    for (int ti = threadIdx.x; ti < p.ntensors; ti += kThreads) {
        const Tensor u = p.tensors[ti];
        double s1 = 0.0;
        for (int k = 0; k < u.nchunks; ++k) s1 += __ldcg(p.partials + (u.first_chunk + k) * 4 + 1);
        gsum += s1;
    }
    double v4[4] = {gsum, 0.0, 0.0, 0.0};
    block_sum4(v4, sh);
    __shared__ StepState ss;
    if (threadIdx.x == 0) {
        const double total = v4[0], norm = sqrt(total);
        const long long step = (long long)scalars[SC_OPTIM_STEP];
        const double lr = (double)(float)(h.use_schedule ? sc_schedule_lr(&h.schedule, step) : scalars[SC_OPTIM_LR]);
        const int skip = !isfinite(total);
        const double clip = skip ? 0.0 : h.clip_max > 0.0 ? fmin(1.0, h.clip_max / (norm + 1e-6)) : 1.0;
        const long long applied = step - (long long)scalars[SC_OPTIM_SKIP_COUNT] + 1;
        ss.lr = lr;
        ss.clip = clip;
        ss.skip = skip;
        ss.step_size = lr / (1.0 - pow(h.beta1, (double)applied));
        ss.bc2_sqrt = sqrt(1.0 - pow(h.beta2, (double)applied));
        *p.state = ss;
        scalars[SC_OPTIM_STEP] = (double)(step + 1);
        scalars[SC_OPTIM_LR] = lr;
        scalars[SC_OPTIM_GRAD_NORM] = norm;
        scalars[SC_OPTIM_CLIP_COEF] = clip;
        scalars[SC_OPTIM_SKIPPED] = skip ? 1.0 : 0.0;
        if (skip) scalars[SC_OPTIM_SKIP_COUNT] += 1.0;
        *p.ticket = 0; /* ready for the next step */
    }
    __syncthreads();
    if (h.kind != SC_OPTIM_LARS || ss.skip) return;
    for (int ti = threadIdx.x; ti < p.ntensors; ti += kThreads) {
        const Tensor u = p.tensors[ti];
        double trust = 1.0;
        if (!(u.flags & SC_PARAM_NO_LARS)) {
            double sw = 0.0, sg = 0.0, sgw = 0.0, sd = 0.0;
            for (int k = 0; k < u.nchunks; ++k) {
                const double *q = p.partials + (u.first_chunk + k) * 4;
                sw += __ldcg(q);
                sg += __ldcg(q + 1);
                sgw += __ldcg(q + 2);
                sd += __ldcg(q + 3);
            }
            const double uwd = (u.flags & SC_PARAM_NO_WD) ? 0.0 : h.wd, cl = ss.clip;
            /* ||clip g + wd w||^2: summed directly without clipping, expanded with it */
            const double g2 = cl == 1.0 ? sd : cl * cl * sg + 2.0 * cl * uwd * sgw + uwd * uwd * sw;
            const double wn = sqrt(sw), gn = sqrt(fmax(g2, 0.0));
            if (wn > 0.0 && gn > 0.0) trust = h.eeta * wn / gn;
        }
        p.rate[ti] = ss.lr * trust;
    }
}

/* Launch 2: the update of one chunk (nothing when the step was skipped). */
template <typename G>
__global__ void __launch_bounds__(kThreads) update_kernel(sc_cuda_optim_plan p, Hyper h, float *w, const G *g, float *v,
                                                          float *v2) {
    const StepState ss = *p.state;
    if (ss.skip) return;
    const Chunk c = p.chunks[blockIdx.x];
    const Tensor t = p.tensors[c.tensor];
    const double wd = (t.flags & SC_PARAM_NO_WD) ? 0.0 : h.wd, m = h.momentum, clip = ss.clip, lr = ss.lr;
    const double rate = h.kind == SC_OPTIM_LARS ? p.rate[c.tensor] : 0.0;
    const double decay = 1.0 - lr * wd;
    auto one = [&](double gw, double &ww, double &vv, double &v2v) {
        if (h.kind == SC_OPTIM_LARS) {
            const double gg = clip * gw + wd * ww;
            vv = m * vv + rate * gg;
            ww = ww - vv;
        } else if (h.kind == SC_OPTIM_SGD) {
            const double gg = clip * gw + wd * ww;
            vv = m * vv + gg;
            ww = ww - lr * (h.nesterov ? gg + m * vv : vv);
        } else {
            const double gg = clip * gw;
            vv = h.beta1 * vv + (1.0 - h.beta1) * gg;
            v2v = h.beta2 * v2v + (1.0 - h.beta2) * gg * gg;
            ww = ww * decay - ss.step_size * vv / (sqrt(v2v) / ss.bc2_sqrt + h.eps);
        }
    };
    const bool adam = h.kind == SC_OPTIM_ADAMW;
    const int vec = c.len / 4 * 4;
    for (int i = threadIdx.x * 4; i < vec; i += kThreads * 4) {
        const long long at = c.start + i;
        float gv[4];
        load_g4(g, at, gv);
        float4 wv = *reinterpret_cast<float4 *>(w + at), vv = *reinterpret_cast<float4 *>(v + at);
        float4 v2v = adam ? *reinterpret_cast<float4 *>(v2 + at) : make_float4(0.f, 0.f, 0.f, 0.f);
        double ww[4] = {wv.x, wv.y, wv.z, wv.w}, vd[4] = {vv.x, vv.y, vv.z, vv.w}, v2d[4] = {v2v.x, v2v.y, v2v.z, v2v.w};
        for (int k = 0; k < 4; ++k) one(gv[k], ww[k], vd[k], v2d[k]);
        *reinterpret_cast<float4 *>(w + at) = make_float4((float)ww[0], (float)ww[1], (float)ww[2], (float)ww[3]);
        *reinterpret_cast<float4 *>(v + at) = make_float4((float)vd[0], (float)vd[1], (float)vd[2], (float)vd[3]);
        if (adam)
            *reinterpret_cast<float4 *>(v2 + at) = make_float4((float)v2d[0], (float)v2d[1], (float)v2d[2], (float)v2d[3]);
    }
    for (int i = vec + threadIdx.x; i < c.len; i += kThreads) {
        const long long at = c.start + i;
        double ww = w[at], vd = v[at], v2d = adam ? (double)v2[at] : 0.0;
        one(load_g(g, at), ww, vd, v2d);
        w[at] = (float)ww;
        v[at] = (float)vd;
        if (adam) v2[at] = (float)v2d;
    }
}

Hyper make_hyper(const sc_optim_hparams *hp) {
    Hyper h;
    h.kind = hp->kind;
    h.nesterov = hp->nesterov;
    h.use_schedule = hp->use_schedule;
    h.momentum = hp->momentum;
    h.wd = hp->weight_decay;
    h.eeta = hp->trust_coef;
    h.beta1 = hp->beta1;
    h.beta2 = hp->beta2;
    h.eps = hp->eps;
    h.clip_max = hp->clip_grad_norm;
    h.schedule = hp->schedule;
    return h;
}

template <typename G>
void step(sc_cuda_optim_plan *p, const Hyper &h, float *w, const G *g, float *v, float *v2, double *scalars,
          cudaStream_t stream) {
    norms_kernel<G><<<p->nchunks, kThreads, 0, stream>>>(*p, h, w, g, scalars);
    SC_CUDA_CHECK_LAUNCH();
    update_kernel<G><<<p->nchunks, kThreads, 0, stream>>>(*p, h, w, g, v, v2);
    SC_CUDA_CHECK_LAUNCH();
}

} /* namespace */

extern "C" sc_status sc_cuda_optim_plan_create(const sc_param_table *table, sc_cuda_optim_plan **out) {
    *out = NULL;
    int ntensors = 0, nchunks = 0;
    for (int i = 0; i < table->count; i++) {
        const sc_param *r = &table->rows[i];
        if ((r->flags & SC_PARAM_BN_STAT) || r->numel == 0) continue;
        SC_CHECK(r->offset % 4 == 0, "optimizer plan: %s starts at offset %lld, not a multiple of 4", r->name,
                 (long long)r->offset);
        ntensors++;
        nchunks += (int)((r->numel + kChunk - 1) / kChunk);
    }
    if (nchunks == 0) return sc_errorf(SC_ERR_ARG, "optimizer plan: the parameter table has no trainable tensor");
    Chunk *chunks = (Chunk *)malloc((size_t)nchunks * sizeof(Chunk));
    Tensor *tensors = (Tensor *)malloc((size_t)ntensors * sizeof(Tensor));
    sc_cuda_optim_plan *p = (sc_cuda_optim_plan *)calloc(1, sizeof *p);
    if (!chunks || !tensors || !p) {
        free(chunks), free(tensors), free(p);
        return sc_errorf(SC_ERR_NOMEM, "optimizer plan: out of host memory");
    }
    int ti = 0, ci = 0;
    for (int i = 0; i < table->count; i++) {
        const sc_param *r = &table->rows[i];
        if ((r->flags & SC_PARAM_BN_STAT) || r->numel == 0) continue;
        tensors[ti] = Tensor{ci, 0, r->flags, 0};
        for (long long s = 0; s < r->numel; s += kChunk) {
            const long long len = r->numel - s < kChunk ? r->numel - s : kChunk;
            chunks[ci++] = Chunk{r->offset + s, (int)len, ti};
            tensors[ti].nchunks++;
        }
        ti++;
    }
    const size_t off_chunks = 0, off_tensors = off_chunks + (size_t)nchunks * sizeof(Chunk);
    const size_t off_partials = (off_tensors + (size_t)ntensors * sizeof(Tensor) + 255) / 256 * 256;
    const size_t off_rate = off_partials + (size_t)nchunks * 4 * sizeof(double);
    const size_t off_state = (off_rate + (size_t)ntensors * sizeof(double) + 255) / 256 * 256;
    const size_t off_ticket = off_state + 256;
    const size_t bytes = off_ticket + 256;
    cudaError_t e = cudaMalloc(&p->block, bytes);
    if (e != cudaSuccess) {
        free(chunks), free(tensors), free(p);
        return sc_errorf(SC_ERR_NOMEM, "optimizer plan: cannot allocate %zu bytes on the GPU: %s", bytes,
                         cudaGetErrorString(e));
    }
    char *b = (char *)p->block;
    p->table = table;
    p->count = table->count;
    p->total = table->total;
    p->nchunks = nchunks;
    p->ntensors = ntensors;
    p->chunks = (Chunk *)(b + off_chunks);
    p->tensors = (Tensor *)(b + off_tensors);
    p->partials = (double *)(b + off_partials);
    p->rate = (double *)(b + off_rate);
    p->state = (StepState *)(b + off_state);
    p->ticket = (unsigned *)(b + off_ticket);
    SC_CUDA_CHECK(cudaMemset(p->block, 0, bytes));
    SC_CUDA_CHECK(cudaMemcpy(p->chunks, chunks, (size_t)nchunks * sizeof(Chunk), cudaMemcpyHostToDevice));
    SC_CUDA_CHECK(cudaMemcpy(p->tensors, tensors, (size_t)ntensors * sizeof(Tensor), cudaMemcpyHostToDevice));
    free(chunks);
    free(tensors);
    *out = p;
    return SC_OK;
}

extern "C" int sc_cuda_optim_plan_matches(const sc_cuda_optim_plan *p, const sc_param_table *table) {
    return p && p->table == table && p->count == table->count && p->total == table->total;
}

extern "C" void sc_cuda_optim_plan_destroy(sc_cuda_optim_plan *p) {
    if (!p) return;
    SC_CUDA_CHECK(cudaFree(p->block));
    free(p);
}

extern "C" void sc_cuda_optim_step(sc_cuda_optim_plan *p, const sc_optim_hparams *hp, sc_tensor *params,
                                   const sc_tensor *grads, sc_tensor *state, sc_tensor *state2, sc_tensor *scalars,
                                   cudaStream_t stream) {
    SC_CHECK(params->dtype == SC_F32 && state->dtype == SC_F32, "optim_step (CUDA): parameters and state must be F32");
    SC_CHECK(grads->dtype == SC_F32 || grads->dtype == SC_BF16, "optim_step (CUDA): gradients must be F32 or BF16");
    SC_CHECK(scalars->dtype == SC_F64 && sc_tensor_numel(scalars) == SC_OPTIM_NSCALARS,
             "optim_step (CUDA): scalars must be F64 [%d]", SC_OPTIM_NSCALARS);
    SC_CHECK(sc_tensor_numel(params) == p->total && sc_tensor_numel(grads) == p->total,
             "optim_step (CUDA): buffers do not match the plan's table");
    SC_CHECK(hp->kind != SC_OPTIM_ADAMW || (state2 && state2->dtype == SC_F32 && sc_tensor_numel(state2) == p->total),
             "optim_step (CUDA): AdamW needs an F32 second-moment buffer");
    const Hyper h = make_hyper(hp);
    float *v2 = hp->kind == SC_OPTIM_ADAMW ? (float *)state2->data : NULL;
    if (grads->dtype == SC_BF16)
        step<__nv_bfloat16>(p, h, (float *)params->data, (const __nv_bfloat16 *)grads->data, (float *)state->data, v2,
                            (double *)scalars->data, stream);
    else
        step<float>(p, h, (float *)params->data, (const float *)grads->data, (float *)state->data, v2,
                    (double *)scalars->data, stream);
}
