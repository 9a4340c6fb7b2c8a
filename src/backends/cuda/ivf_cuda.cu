/*
 * ivf_cuda.cu — the IVF-Flat search on the GPU (algo/ivf_job.h), float32.
 *
 * Contract: the index (centres, contiguous lists, row norms, original ids)
 * and the queries come from the host; results go back to the host as the
 * CPU backend writes them (float64 distances, int64 indices, n_q x k).
 * They equal ivf_cpu.c's wherever distances differ by more than rounding:
 * the same coarse rule picks the probes (float32 key cn - 2 s, or -s for
 * the inner product, ties by list number), the same pool of k + 8
 * candidates is kept by float32 keys (ties by original index), and the pool
 * is re-ranked by float64 distances computed exactly as the CPU computes
 * them (same order of operations, no contraction), so the returned values
 * and their order are the CPU's bit for bit once the pools agree.
 *
 * Pipeline, per chunk of queries (all stages on the context's stream):
 *   1. coarse: S = Q C^T (cuBLAS SGEMM, fp32), turned in place into
 *      order-preserving uint32 keys; a block radix select per query keeps
 *      the n_probes smallest (ivf_select, MODE_PROBE).
 *   2. grouping: the (query, probe) pairs are counting-sorted by list, and
 *      each pair gets its segment in the query's candidate space (the
 *      probed lists laid end to end; a fixed stride per query, the length
 *      of the n_probes longest lists).
 *   3. fine scan (ivf_scan): a block per (list, group of TQ pairs) streams
 *      the list's rows through shared memory in 128-row x 32-column tiles
 *      and computes the TQ x 128 dot products with fp32 FMA (register tiles
 *      of QT queries x 4 rows, float4 operands): every list row is read
 *      once per group of queries that probe it, not once per query. Large
 *      batches use TQ = 32 (many queries share a list); small ones (a few
 *      queries per list) TQ = 8, so a single query wastes little. Each key
 *      (norm - 2 dot, or -dot) is written to the pair's segment.
 *   4. pool: a block radix select per query over its candidate space keeps
 *      the k + 8 smallest keys (MODE_POOL, ties by original index), staged
 *      in shared memory when they fit.
 *   5. re-rank (ivf_rerank): a warp per query recomputes the pool's
 *      distances in float64 from the stored rows, ranks them by (distance,
 *      index) (the inner product: largest first) and writes k, padded with
 *      -1 and +inf (-inf).
 *
 * Device-resident index: the context keeps the last index it searched
 * (state->ivf), keyed by job->index_key (the model's generation) and its
 * sizes; a search of the same index uploads only the queries. The search
 * workspace is kept with it and grown when a call needs more. Both are
 * released by ctx_free (fli_cuda_ivf_release) or replaced by the next
 * index.
 *
 * Limits: k + 8 <= IVF_MAX_POOL (256), fewer than 2^31 stored rows and
 * candidates per query (the algo layer routes other cases to the CPU).
 */
#include <cub/device/device_scan.cuh>
#include <cublas_v2.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/ivf_job.h"
#include "backends/cuda/fl_cuda_util.cuh"
#include "backends/cuda/ivf_cuda.cuh"

#define IVF_OVERSAMPLE 8 /* as ivf_cpu.c: the pool is k + 8 */
#define IVF_MAX_POOL 256
#define IVF_DK 32  /* columns of a scan tile */
#define IVF_TR 128 /* rows of a scan tile */
#define IVF_SEL_THREADS 256

enum { MODE_PROBE = 0, MODE_POOL = 1 };

/* ---- the device copy of an index --------------------------------------- */

typedef struct ivf_dev {
    uint64_t key;
    int64_t n, L, d, d4;
    int metric;
    float *centers; /* L x d4 (zero padded)  */
    float *cn;      /* L squared centre norms, float32 of the float64 sums */
    float *data;    /* n x d4                */
    float *norms;   /* n                     */
    int64_t *off;   /* L + 1                 */
    int64_t *ids;   /* n                     */
    int64_t *top;   /* host, L + 1: top[p] = rows of the p longest lists */
    void *ws;       /* search workspace, reused across calls */
    size_t ws_bytes;
    int64_t pool_smem; /* the pool select's shared-memory attribute as last set (-1: never) */
} ivf_dev;

static void ivf_dev_free_arrays(fli_cuda_env *env, ivf_dev *c)
{
    fli_dev_free(env, c->centers);
    fli_dev_free(env, c->cn);
    fli_dev_free(env, c->data);
    fli_dev_free(env, c->norms);
    fli_dev_free(env, c->off);
    fli_dev_free(env, c->ids);
    free(c->top);
    c->centers = c->cn = c->data = c->norms = NULL;
    c->off = c->ids = c->top = NULL;
    c->key = 0;
    c->n = c->L = c->d = c->d4 = 0;
}

extern "C" void fli_cuda_ivf_release(fli_cuda_env *env)
{
    if (!env || !env->state) return;
    fli_cuda_state *s = fli_state(env);
    ivf_dev *c = (ivf_dev *)s->ivf;
    if (!c) return;
    ivf_dev_free_arrays(env, c);
    fli_dev_free(env, c->ws);
    free(c);
    s->ivf = NULL;
}

static int cmp_desc_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x > y ? -1 : x < y;
}

/* Puts the index on the device unless the cached copy is this index. */
static fl_status ivf_upload(fli_cuda_env *env, const fli_ivf_index *ix, uint64_t key, ivf_dev **out)
{
    fli_cuda_state *s = fli_state(env);
    ivf_dev *c = (ivf_dev *)s->ivf;
    if (!c) {
        c = (ivf_dev *)calloc(1, sizeof *c);
        if (!c) return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "ivf cache", "host allocation failed");
        c->pool_smem = -1;
        s->ivf = c;
    }
    *out = c;
    if (key != 0 && c->key == key && c->n == ix->n && c->L == ix->n_lists && c->d == ix->d &&
        c->metric == (int)ix->metric)
        return FL_STATUS_OK;
    ivf_dev_free_arrays(env, c);
    const int64_t n = ix->n, L = ix->n_lists, d = ix->d, d4 = fli_ceil_div(d, 4) * 4;
    cudaStream_t st = s->stream;
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(L * d4), (void **)&c->centers));
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)L, (void **)&c->cn));
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(n * d4), (void **)&c->data));
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)n, (void **)&c->norms));
    FLI_TRY(fli_dev_alloc(env, sizeof(int64_t) * (size_t)(L + 1), (void **)&c->off));
    FLI_TRY(fli_dev_alloc(env, sizeof(int64_t) * (size_t)n, (void **)&c->ids));
    c->top = (int64_t *)malloc(sizeof(int64_t) * (size_t)(L + 1));
    float *cn = (float *)malloc(sizeof(float) * (size_t)L);
    if (!c->top || !cn) {
        free(cn);
        return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "ivf upload", "host allocation failed");
    }
    /* the centre norms as ivf_cpu.c computes them (float64 sum, rounded) */
    for (int64_t l = 0; l < L; l++) {
        double a = 0;
        for (int64_t j = 0; j < d; j++) a += (double)ix->centers[l * d + j] * ix->centers[l * d + j];
        cn[l] = (float)a;
    }
    for (int64_t l = 0; l < L; l++) c->top[l + 1] = ix->offsets[l + 1] - ix->offsets[l];
    qsort(c->top + 1, (size_t)L, sizeof(int64_t), cmp_desc_i64);
    c->top[0] = 0;
    for (int64_t l = 0; l < L; l++) c->top[l + 1] += c->top[l];
    fl_status rc = FL_STATUS_OK;
    cudaError_t e = cudaSuccess;
    if (d4 != d) {
        e = cudaMemsetAsync(c->centers, 0, sizeof(float) * (size_t)(L * d4), st);
        if (e == cudaSuccess) e = cudaMemsetAsync(c->data, 0, sizeof(float) * (size_t)(n * d4), st);
    }
    if (e == cudaSuccess)
        e = cudaMemcpy2DAsync(c->centers, sizeof(float) * d4, ix->centers, sizeof(float) * d, sizeof(float) * d,
                              (size_t)L, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess)
        e = cudaMemcpy2DAsync(c->data, sizeof(float) * d4, ix->data, sizeof(float) * d, sizeof(float) * d,
                              (size_t)n, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess) e = cudaMemcpyAsync(c->cn, cn, sizeof(float) * L, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(c->norms, ix->norms, sizeof(float) * n, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(c->off, ix->offsets, sizeof(int64_t) * (L + 1), cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(c->ids, ix->ids, sizeof(int64_t) * n, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(st); /* cn is freed below */
    if (e != cudaSuccess) rc = fli_cuda_fail(env, __FILE__, __LINE__, "ivf upload", e);
    free(cn);
    if (rc) {
        ivf_dev_free_arrays(env, c);
        return rc;
    }
    c->n = n, c->L = L, c->d = d, c->d4 = d4, c->metric = (int)ix->metric;
    c->key = key;
    return FL_STATUS_OK;
}

/* ---- small kernels ------------------------------------------------------- */

/* Per query: the cosine scale qs = 1 / ||q|| (float64, summed in order as
 * ivf_cpu.c does; 1 for the other metrics or a zero row) and the float32
 * query the scan uses, (float)(q * qs). */
__global__ void ivf_qprep(const float *qraw, int64_t m, int64_t d, int64_t d4, int cosine, float *q32, double *qs64,
                          float *qsf)
{
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= m) return;
    const float *q = qraw + i * d4;
    double qs = 1.0;
    if (cosine) {
        double qn = 0;
        for (int64_t j = 0; j < d; j++) qn = __dadd_rn(qn, __dmul_rn((double)q[j], (double)q[j]));
        if (qn > 0) qs = 1.0 / sqrt(qn);
    }
    for (int64_t j = 0; j < d4; j++) q32[i * d4 + j] = (float)__dmul_rn((double)q[j], qs);
    qs64[i] = qs;
    qsf[i] = (float)qs;
}

/* The coarse keys in place of the scores: s = S * (float)qs; key of
 * cn - 2 s (L2 to the centres, also for cosine) or -s (inner product). */
__global__ void ivf_coarse_keys(float *S, int64_t m, int64_t L, const float *cn, const float *qsf, int ip)
{
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= m * L) return;
    const int64_t q = i / L, l = i - q * L;
    const float s = __fmul_rn(S[i], qsf[q]);
    const float key = ip ? -s : __fsub_rn(cn[l], __fmul_rn(2.0f, s));
    ((uint32_t *)S)[i] = ord_key(key);
}

__global__ void ivf_hist(const int32_t *probes, int64_t npairs, int32_t *hist)
{
    const int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (p < npairs) atomicAdd(&hist[probes[p]], 1);
}

__global__ void ivf_scatter(const int32_t *probes, int64_t npairs, const int32_t *lstart, int32_t *fill,
                            int32_t *sorted)
{
    const int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (p >= npairs) return;
    const int32_t l = probes[p];
    sorted[lstart[l] + atomicAdd(&fill[l], 1)] = (int32_t)p;
}

/* Each query's candidate space: segment j of query q starts at pre[q P + j]
 * (relative to the query's base q * stride); tot[q] candidates in all. */
__global__ void ivf_segments(const int32_t *probes, int64_t m, int64_t P, const int64_t *off, int32_t *pre,
                             int32_t *tot)
{
    const int64_t q = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (q >= m) return;
    int64_t acc = 0;
    for (int64_t j = 0; j < P; j++) {
        const int32_t l = probes[q * P + j];
        pre[q * P + j] = (int32_t)acc;
        acc += off[l + 1] - off[l];
    }
    tot[q] = (int32_t)acc;
}

/* ---- block radix select ---------------------------------------------------
 *
 * A block per query keeps the `need` smallest of m uint32 keys, ties broken
 * by a 64-bit id (MODE_PROBE: the list number = the position; MODE_POOL:
 * the stored row's original index), and writes their positions (in no
 * particular order: the consumers do not depend on it). Four passes of
 * 8-bit digits narrow a prefix to the need-th key T, stopping as soon as
 * the bucket holds exactly the keys still needed; keys below T are taken,
 * and at T the smallest ids, one block-wide minimum at a time (only with
 * exact ties at the boundary, e.g. duplicated rows). Keys are staged in
 * shared memory when `stage` of them fit.
 */
template <int MODE>
__global__ void __launch_bounds__(IVF_SEL_THREADS)
    ivf_select(const uint32_t *keys, int64_t stride, int64_t m_const, const int32_t *m_of, int64_t need_const,
               int32_t *out, int64_t out_stride, int32_t *out_n, int64_t stage, const int32_t *pre,
               const int32_t *probes, int64_t P, const int64_t *off, const int64_t *ids)
{
    extern __shared__ uint32_t sk[];
    __shared__ uint32_t hist[256];
    __shared__ uint32_t s_prefix, s_mask, s_rem, s_eq, s_cnt;
    __shared__ unsigned long long s_best;
    const int64_t q = blockIdx.x;
    const int tid = threadIdx.x;
    const uint32_t *kp = keys + q * stride;
    const int64_t m = m_of ? m_of[q] : m_const;
    const int64_t need = need_const < m ? need_const : m;
    int32_t *o = out + q * out_stride;
    if (out_n && tid == 0) out_n[q] = (int32_t)need;
    if (need == m) {
        for (int64_t i = tid; i < m; i += blockDim.x) o[i] = (int32_t)i;
        return;
    }
    const uint32_t *src = kp;
    if (m <= stage) {
        for (int64_t i = tid; i < m; i += blockDim.x) sk[i] = kp[i];
        src = sk;
    }
    uint32_t prefix = 0, mask = 0, rem = (uint32_t)need;
    int early = 0;
    for (int shift = 24; shift >= 0 && !early; shift -= 8) {
        hist[tid] = 0; /* blockDim == 256 */
        __syncthreads();
        for (int64_t i = tid; i < m; i += blockDim.x) {
            const uint32_t k = src[i];
            if ((k & mask) == prefix) atomicAdd(&hist[(k >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (tid < 32) {
            uint32_t h[8], sum = 0;
            for (int b = 0; b < 8; b++) h[b] = hist[tid * 8 + b], sum += h[b];
            uint32_t inc = sum;
            for (int s = 1; s < 32; s <<= 1) {
                const uint32_t v = __shfl_up_sync(0xffffffffu, inc, s);
                if (tid >= s) inc += v;
            }
            const unsigned ball = __ballot_sync(0xffffffffu, inc >= rem);
            const int lane = __ffs(ball) - 1;
            if (tid == lane) {
                uint32_t before = inc - sum;
                int b = 0;
                while (before + h[b] < rem) before += h[b++];
                s_prefix = prefix | ((uint32_t)(tid * 8 + b) << shift);
                s_mask = mask | (255u << shift);
                s_rem = rem - before;
                s_eq = h[b];
            }
        }
        __syncthreads();
        prefix = s_prefix, mask = s_mask, rem = s_rem;
        early = s_eq == rem;
        __syncthreads(); /* hist and s_* are rewritten by the next pass */
    }
    if (tid == 0) s_cnt = 0;
    __syncthreads();
    /* below the boundary key, and the whole boundary bucket when it is all
     * needed */
    for (int64_t i = tid; i < m; i += blockDim.x) {
        const uint32_t k = src[i] & mask;
        if (k < prefix || (early && k == prefix)) o[atomicAdd(&s_cnt, 1u)] = (int32_t)i;
    }
    if (early) return;
    /* exact ties at T = prefix: the rem smallest ids */
    long long last = -1;
    for (uint32_t t = 0; t < rem; t++) {
        if (tid == 0) s_best = ~0ull;
        __syncthreads();
        for (int64_t i = tid; i < m; i += blockDim.x) {
            if (src[i] != prefix) continue;
            const long long id = MODE == MODE_PROBE ? i : ids[seg_row(pre + q * P, probes + q * P, P, off, (int32_t)i)];
            if (id > last) atomicMin(&s_best, ((unsigned long long)id << 32) | (unsigned long long)i);
        }
        __syncthreads();
        const unsigned long long b = s_best;
        last = (long long)(b >> 32);
        if (tid == 0) o[s_cnt++] = (int32_t)(b & 0xffffffffu);
        __syncthreads();
    }
}

/* ---- the fine scan ------------------------------------------------------- */

/*
 * Block (list l = blockIdx.x, groups blockIdx.y, +gridDim.y, ...): a group
 * is up to TQ = 8 QT (query, probe) pairs of list l (sorted[lstart[l] ..]).
 * 256 threads: thread (tq = tid / 32, tr = tid % 32) owns queries
 * tq QT .. tq QT + QT - 1 and rows 4 tr .. 4 tr + 3 of each 128-row tile.
 * Shared: the queries' and the rows' 32-column slices, transposed so the
 * inner loop reads one float4 of rows and QT broadcast floats per column.
 */
template <int QT>
__global__ void __launch_bounds__(256)
    ivf_scan(const float *data, const float *norms, const int64_t *off, const int64_t *ids, const float *q32,
             int64_t d4, const int32_t *hist, const int32_t *lstart, const int32_t *sorted, const int32_t *pre,
             int64_t P, int64_t stride, const int64_t *self, int l2, uint32_t *buf)
{
    constexpr int TQ = 8 * QT;
    __shared__ __align__(16) float As[IVF_DK][TQ];
    __shared__ __align__(16) float Bs[IVF_DK][IVF_TR + 4];
    __shared__ int64_t s_dst[TQ], s_self[TQ];
    __shared__ int32_t s_q[TQ];
    const int l = blockIdx.x, tid = threadIdx.x, tq = tid >> 5, tr = tid & 31;
    const int cnt = hist[l];
    const int64_t o = off[l], len = off[l + 1] - o;
    if (cnt == 0 || len == 0) return;
    for (int g0 = blockIdx.y * TQ; g0 < cnt; g0 += gridDim.y * TQ) {
        const int ng = cnt - g0 < TQ ? cnt - g0 : TQ;
        __syncthreads(); /* the previous group's s_* are no longer read */
        if (tid < TQ) {
            if (tid < ng) {
                const int32_t p = sorted[lstart[l] + g0 + tid];
                const int64_t q = p / P;
                s_q[tid] = (int32_t)q;
                s_dst[tid] = q * stride + pre[p];
                s_self[tid] = self ? self[q] : -1;
            } else {
                s_q[tid] = -1;
            }
        }
        __syncthreads();
        for (int64_t r0 = 0; r0 < len; r0 += IVF_TR) {
            float acc[QT][4];
#pragma unroll
            for (int a = 0; a < QT; a++)
#pragma unroll
                for (int b = 0; b < 4; b++) acc[a][b] = 0.f;
            for (int64_t k0 = 0; k0 < d4; k0 += IVF_DK) {
                if (tid < TQ * (IVF_DK / 4)) {
                    const int qi = tid >> 3, c4 = tid & 7;
                    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
                    if (s_q[qi] >= 0 && k0 + c4 * 4 < d4)
                        v = *(const float4 *)(q32 + (int64_t)s_q[qi] * d4 + k0 + c4 * 4);
                    As[c4 * 4 + 0][qi] = v.x;
                    As[c4 * 4 + 1][qi] = v.y;
                    As[c4 * 4 + 2][qi] = v.z;
                    As[c4 * 4 + 3][qi] = v.w;
                }
#pragma unroll
                for (int it = 0; it < 4; it++) {
                    const int idx = tid + 256 * it, r = idx >> 3, c4 = idx & 7;
                    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
                    if (r0 + r < len && k0 + c4 * 4 < d4)
                        v = *(const float4 *)(data + (o + r0 + r) * d4 + k0 + c4 * 4);
                    Bs[c4 * 4 + 0][r] = v.x;
                    Bs[c4 * 4 + 1][r] = v.y;
                    Bs[c4 * 4 + 2][r] = v.z;
                    Bs[c4 * 4 + 3][r] = v.w;
                }
                __syncthreads();
#pragma unroll 8
                for (int kk = 0; kk < IVF_DK; kk++) {
                    const float4 b = *(const float4 *)&Bs[kk][tr * 4];
                    float a[QT];
                    if (QT == 4) {
                        const float4 av = *(const float4 *)&As[kk][tq * 4];
                        a[0] = av.x, a[1] = av.y, a[2] = av.z, a[3] = av.w;
                    } else {
#pragma unroll
                        for (int x = 0; x < QT; x++) a[x] = As[kk][tq * QT + x];
                    }
#pragma unroll
                    for (int x = 0; x < QT; x++) {
                        acc[x][0] = fmaf(a[x], b.x, acc[x][0]);
                        acc[x][1] = fmaf(a[x], b.y, acc[x][1]);
                        acc[x][2] = fmaf(a[x], b.z, acc[x][2]);
                        acc[x][3] = fmaf(a[x], b.w, acc[x][3]);
                    }
                }
                __syncthreads();
            }
#pragma unroll
            for (int x = 0; x < QT; x++) {
                const int qi = tq * QT + x;
                if (qi >= ng) continue;
                uint32_t *dst = buf + s_dst[qi];
                const int64_t me = s_self[qi];
#pragma unroll
                for (int b = 0; b < 4; b++) {
                    const int64_t r = r0 + tr * 4 + b;
                    if (r >= len) continue;
                    const float key = l2 ? __fsub_rn(norms[o + r], __fmul_rn(2.0f, acc[x][b])) : -acc[x][b];
                    dst[r] = (me >= 0 && ids[o + r] == me) ? KEY_EXCLUDED : ord_key(key);
                }
            }
        }
    }
}

/* ---- the exact re-rank --------------------------------------------------- */

/* A warp per query: the pool's float64 distances, computed as ivf_cpu.c's
 * exact_dist does (dimension order, no fused multiply-add), ranked by
 * (distance, index), the inner product largest first. */
__global__ void ivf_rerank(const uint32_t *buf, int64_t stride, const int32_t *pool, const int32_t *pool_n,
                           int64_t cap, const int32_t *pre, const int32_t *probes, int64_t P, const int64_t *off,
                           const int64_t *ids, const float *data, int64_t d, int64_t d4, const float *qraw,
                           const double *qs64, int metric, int64_t m, int64_t k, double *out_d, int64_t *out_i)
{
    __shared__ double sd[4][IVF_MAX_POOL];
    __shared__ int64_t sid[4][IVF_MAX_POOL];
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t q = blockIdx.x * 4 + w;
    if (q >= m) return; /* the whole warp */
    const int ip = metric == 3 /* FLI_KNN_INNER */;
    const int64_t n = pool_n[q];
    const float *qq = qraw + q * d4;
    const double qs = qs64[q];
    for (int64_t c = lane; c < n; c += 32) {
        const int32_t pos = pool[q * cap + c];
        double dist;
        int64_t id;
        if (buf[q * stride + pos] == KEY_EXCLUDED) {
            dist = ip ? -INFINITY : INFINITY;
            id = -1;
        } else {
            const int64_t row = seg_row(pre + q * P, probes + q * P, P, off, pos);
            const float *x = data + row * d4;
            double s = 0;
            if (metric == 0 || metric == 1) {
                for (int64_t j = 0; j < d; j++) {
                    const double t = __dsub_rn(__dmul_rn((double)qq[j], qs), (double)x[j]);
                    s = __dadd_rn(s, __dmul_rn(t, t));
                }
                if (metric == 1) s = sqrt(s);
            } else {
                for (int64_t j = 0; j < d; j++)
                    s = __dadd_rn(s, __dmul_rn(__dmul_rn((double)qq[j], qs), (double)x[j]));
                if (metric == 2) s = __dsub_rn(1.0, s);
            }
            dist = s;
            id = ids[row];
        }
        sd[w][c] = dist;
        sid[w][c] = id;
    }
    __syncwarp();
    for (int64_t c = lane; c < k; c += 32) {
        out_d[q * k + c] = ip ? -INFINITY : INFINITY;
        out_i[q * k + c] = -1;
    }
    __syncwarp();
    for (int64_t c = lane; c < n; c += 32) {
        const double dc = sd[w][c];
        const int64_t ic = sid[w][c];
        if (ic < 0) continue;
        int64_t rank = 0;
        for (int64_t e = 0; e < n; e++) {
            const double de = sd[w][e];
            const int64_t ie = sid[w][e];
            if (ie < 0) continue;
            const int better = ip ? (de > dc) : (de < dc);
            rank += better || (de == dc && ie < ic);
        }
        if (rank < k) {
            out_d[q * k + rank] = dc;
            out_i[q * k + rank] = ic;
        }
    }
}

/* ---- the stages shared with the IVF-PQ search (ivf_cuda.cuh) ---------- */

#define BLAS_TRY(env, call)                                                                          \
    do {                                                                                             \
        cublasStatus_t b_ = (call);                                                                  \
        if (b_ != CUBLAS_STATUS_SUCCESS) {                                                           \
            char why_[48];                                                                           \
            snprintf(why_, sizeof why_, "cuBLAS status %d", (int)b_);                                \
            return fli_set_err((env), FL_STATUS_CUDA_ERROR, __FILE__, __LINE__, #call, why_);        \
        }                                                                                            \
    } while (0)

static unsigned grid1(int64_t n, int t) { return (unsigned)fli_ceil_div(n > 0 ? n : 1, t); }

fl_status fli_ivf_probe_step(fli_cuda_env *env, const float *centers, const float *cn, int64_t L, int64_t d,
                             int64_t d4, const float *qraw, int64_t m, int metric, int64_t P, float *q32,
                             double *qs64, float *qsf, float *S, int32_t *probes)
{
    fli_cuda_state *st = fli_state(env);
    cudaStream_t s = st->stream;
    if (!st->blas) {
        cublasHandle_t h;
        BLAS_TRY(env, cublasCreate(&h));
        st->blas = h;
    }
    cublasHandle_t h = (cublasHandle_t)st->blas;
    BLAS_TRY(env, cublasSetStream(h, s));
    BLAS_TRY(env, cublasSetMathMode(h, CUBLAS_DEFAULT_MATH)); /* plain fp32, as the CPU's GEMM */
    BLAS_TRY(env, cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
    const float one = 1.0f, zero = 0.0f;
    ivf_qprep<<<grid1(m, 128), 128, 0, s>>>(qraw, m, d, d4, metric == 2, q32, qs64, qsf);
    FLI_LAUNCH_TRY(env, "ivf_qprep");
    /* coarse scores, row-major m x L: S^T = C Q^T in column-major terms */
    BLAS_TRY(env, cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)L, (int)m, (int)d4, &one, centers, (int)d4, qraw,
                              (int)d4, &zero, S, (int)L));
    ivf_coarse_keys<<<grid1(m * L, 256), 256, 0, s>>>(S, m, L, cn, qsf, metric == 3);
    FLI_LAUNCH_TRY(env, "ivf_coarse_keys");
    const int64_t stage_probe = L * 4 <= 40000 ? L : 0; /* under the default 48 KB */
    ivf_select<MODE_PROBE><<<(unsigned)m, IVF_SEL_THREADS, (size_t)stage_probe * 4, s>>>(
        (const uint32_t *)S, L, L, NULL, P, probes, P, NULL, stage_probe, NULL, NULL, P, NULL, NULL);
    FLI_LAUNCH_TRY(env, "ivf_select (probes)");
    return FL_STATUS_OK;
}

fl_status fli_ivf_segments_step(fli_cuda_env *env, const int32_t *probes, int64_t m, int64_t P,
                                const int64_t *off, int32_t *pre, int32_t *tot)
{
    ivf_segments<<<grid1(m, 128), 128, 0, fli_state(env)->stream>>>(probes, m, P, off, pre, tot);
    FLI_LAUNCH_TRY(env, "ivf_segments");
    return FL_STATUS_OK;
}

fl_status fli_ivf_pool_step(fli_cuda_env *env, const uint32_t *buf, int64_t stride, const int32_t *tot,
                            int64_t m, int64_t need, int32_t *pool, int32_t *pool_n, const int32_t *pre,
                            const int32_t *probes, int64_t P, const int64_t *off, const int64_t *ids,
                            int64_t *smem_set)
{
    fli_cuda_state *st = fli_state(env);
    /* shared memory of the pool select: the candidate keys when they fit */
    int64_t stage = 0;
    const size_t lim = (size_t)st->smem_optin > 16384 ? (size_t)st->smem_optin - 16384 : 0;
    if ((size_t)stride * 4 <= lim) stage = stride;
    if (stage > *smem_set) {
        FLI_CUDA_TRY(env, cudaFuncSetAttribute(ivf_select<MODE_POOL>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)(stage * 4)));
        *smem_set = stage;
    }
    ivf_select<MODE_POOL><<<(unsigned)m, IVF_SEL_THREADS, (size_t)stage * 4, st->stream>>>(
        buf, stride, 0, tot, need, pool, need, pool_n, stage, pre, probes, P, off, ids);
    FLI_LAUNCH_TRY(env, "ivf_select (pool)");
    return FL_STATUS_OK;
}

/* ---- the driver ---------------------------------------------------------- */

static size_t a256(size_t b) { return (b + 255) & ~(size_t)255; }

typedef struct ivf_bufs {
    float *qraw, *q32, *qsf, *S;
    double *qs64, *out_d;
    int64_t *self, *out_i;
    int32_t *probes, *hist, *lstart, *fill, *sorted, *pre, *tot, *pool, *pool_n;
    uint32_t *buf;
    void *cub;
    size_t cub_bytes;
} ivf_bufs;

/* Workspace of a chunk of qc queries; carves `base` when given. */
static size_t ivf_carve(int64_t qc, int64_t L, int64_t d4, int64_t P, int64_t stride, int64_t cap, int64_t k,
                        int self, size_t cub_bytes, char *base, ivf_bufs *b)
{
    size_t at = 0;
#define CARVE(field, type, count)                                     \
    do {                                                              \
        if (base) b->field = (type *)(base + at);                     \
        at += a256(sizeof(type) * (size_t)(count));                   \
    } while (0)
    CARVE(qraw, float, qc * d4);
    CARVE(q32, float, qc * d4);
    CARVE(qsf, float, qc);
    CARVE(S, float, qc * L);
    CARVE(qs64, double, qc);
    CARVE(out_d, double, qc * k);
    CARVE(out_i, int64_t, qc * k);
    if (self) CARVE(self, int64_t, qc);
    CARVE(probes, int32_t, qc * P);
    CARVE(hist, int32_t, L);
    CARVE(lstart, int32_t, L);
    CARVE(fill, int32_t, L);
    CARVE(sorted, int32_t, qc * P);
    CARVE(pre, int32_t, qc * P);
    CARVE(tot, int32_t, qc);
    CARVE(pool, int32_t, qc * cap);
    CARVE(pool_n, int32_t, qc);
    CARVE(buf, uint32_t, qc * stride);
    CARVE(cub, char, cub_bytes);
#undef CARVE
    if (base) {
        if (!self) b->self = NULL;
        b->cub_bytes = cub_bytes;
    }
    return at;
}

extern "C" fl_status fli_cuda_ivf_search(fli_cuda_env *env, const fli_ivf_search_job *job)
{
    fli_cuda_state *st = fli_state(env);
    const fli_ivf_index *ix = &job->ix;
    const int64_t L = ix->n_lists, d = ix->d, k = job->k, n_q = job->n_q;
    const int64_t P = job->n_probes < L ? job->n_probes : L;
    const int64_t cap = k + IVF_OVERSAMPLE;
    const int metric = (int)ix->metric;
    if (cap > IVF_MAX_POOL || ix->n >= ((int64_t)1 << 31) || P < 1 || k < 1)
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "ivf_search",
                        "the GPU search takes k <= 248, n_probes >= 1 and fewer than 2^31 rows");
    if (n_q == 0) return FL_STATUS_OK;
    FLI_CUDA_TRY(env, cudaSetDevice(env->device_id));
    ivf_dev *c;
    FLI_TRY(ivf_upload(env, ix, job->index_key, &c));
    const int64_t d4 = c->d4, stride = c->top[P] > 0 ? c->top[P] : 1;
    if (stride >= ((int64_t)1 << 31))
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "ivf_search", "more than 2^31 candidates per query");
    cudaStream_t s = st->stream;
    size_t cub_bytes = 0;
    FLI_CUDA_TRY(env, cub::DeviceScan::ExclusiveSum(NULL, cub_bytes, (const int32_t *)NULL, (int32_t *)NULL,
                                                    (int)L, s));

    /* queries per chunk: all of them when the cached workspace holds them
     * (no memory query: single-query latency), else the workspace within
     * 85% of the free memory (plus what the cached one holds) */
    const int self = job->self_ids != NULL;
    int64_t qc = n_q;
    if (ivf_carve(qc, L, d4, P, stride, cap, k, self, cub_bytes, NULL, NULL) > c->ws_bytes ||
        qc * P >= ((int64_t)1 << 31) || qc * stride >= ((int64_t)1 << 40)) {
        size_t free_b = 0, total_b = 0;
        FLI_CUDA_TRY(env, fli_dev_mem_info(env, &free_b, &total_b));
        const double budget = 0.85 * (double)(free_b + c->ws_bytes) - 64.0 * (1 << 20);
        while (qc > 1 && ((double)ivf_carve(qc, L, d4, P, stride, cap, k, self, cub_bytes, NULL, NULL) > budget ||
                          qc * P >= ((int64_t)1 << 31) || qc * stride >= ((int64_t)1 << 40)))
            qc = (qc + 1) / 2;
    }
    const size_t need = ivf_carve(qc, L, d4, P, stride, cap, k, self, cub_bytes, NULL, NULL);
    if (need > c->ws_bytes) {
        fli_dev_free(env, c->ws);
        c->ws = NULL;
        c->ws_bytes = 0;
        FLI_TRY(fli_dev_alloc(env, need, &c->ws));
        c->ws_bytes = need;
    }
    ivf_bufs b;
    memset(&b, 0, sizeof b);
    ivf_carve(qc, L, d4, P, stride, cap, k, self, cub_bytes, (char *)c->ws, &b);

    const int l2 = metric == 0 || metric == 1;
    for (int64_t q0 = 0; q0 < n_q; q0 += qc) {
        const int64_t m = n_q - q0 < qc ? n_q - q0 : qc, npairs = m * P;
        if (d4 != d) FLI_CUDA_TRY(env, cudaMemsetAsync(b.qraw, 0, sizeof(float) * (size_t)(m * d4), s));
        FLI_CUDA_TRY(env, cudaMemcpy2DAsync(b.qraw, sizeof(float) * d4, job->q + q0 * job->q_ld,
                                            sizeof(float) * job->q_ld, sizeof(float) * d, (size_t)m,
                                            cudaMemcpyHostToDevice, s));
        if (b.self)
            FLI_CUDA_TRY(env, cudaMemcpyAsync(b.self, job->self_ids + q0, sizeof(int64_t) * m,
                                              cudaMemcpyHostToDevice, s));
        FLI_TRY(fli_ivf_probe_step(env, c->centers, c->cn, L, d, d4, b.qraw, m, metric, P, b.q32, b.qs64, b.qsf,
                                   b.S, b.probes));
        /* pairs grouped by list */
        FLI_CUDA_TRY(env, cudaMemsetAsync(b.hist, 0, sizeof(int32_t) * (size_t)L, s));
        FLI_CUDA_TRY(env, cudaMemsetAsync(b.fill, 0, sizeof(int32_t) * (size_t)L, s));
        ivf_hist<<<grid1(npairs, 256), 256, 0, s>>>(b.probes, npairs, b.hist);
        FLI_LAUNCH_TRY(env, "ivf_hist");
        size_t cb = b.cub_bytes;
        FLI_CUDA_TRY(env, cub::DeviceScan::ExclusiveSum(b.cub, cb, b.hist, b.lstart, (int)L, s));
        ivf_scatter<<<grid1(npairs, 256), 256, 0, s>>>(b.probes, npairs, b.lstart, b.fill, b.sorted);
        FLI_LAUNCH_TRY(env, "ivf_scatter");
        FLI_TRY(fli_ivf_segments_step(env, b.probes, m, P, c->off, b.pre, b.tot));
        /* fine scan: wide groups when lists are shared by many queries */
        const int64_t per_list = fli_ceil_div(npairs, L < npairs ? L : npairs);
        if (per_list >= 16) {
            const int64_t gy = fli_ceil_div(per_list, 32);
            dim3 grid((unsigned)L, (unsigned)(gy < 65535 ? gy : 65535));
            ivf_scan<4><<<grid, 256, 0, s>>>(c->data, c->norms, c->off, c->ids, b.q32, d4, b.hist, b.lstart, b.sorted,
                                             b.pre, P, stride, b.self, l2, b.buf);
        } else {
            const int64_t gy = fli_ceil_div(per_list, 8);
            dim3 grid((unsigned)L, (unsigned)(gy < 65535 ? gy : 65535));
            ivf_scan<1><<<grid, 256, 0, s>>>(c->data, c->norms, c->off, c->ids, b.q32, d4, b.hist, b.lstart, b.sorted,
                                             b.pre, P, stride, b.self, l2, b.buf);
        }
        FLI_LAUNCH_TRY(env, "ivf_scan");
        FLI_TRY(fli_ivf_pool_step(env, b.buf, stride, b.tot, m, cap, b.pool, b.pool_n, b.pre, b.probes, P, c->off,
                                  c->ids, &c->pool_smem));
        ivf_rerank<<<(unsigned)fli_ceil_div(m, 4), 128, 0, s>>>(b.buf, stride, b.pool, b.pool_n, cap, b.pre,
                                                                 b.probes, P, c->off, c->ids, c->data, d, d4,
                                                                 b.qraw, b.qs64, metric, m, k, b.out_d, b.out_i);
        FLI_LAUNCH_TRY(env, "ivf_rerank");
        FLI_CUDA_TRY(env, cudaMemcpyAsync(job->dist + q0 * k, b.out_d, sizeof(double) * (size_t)(m * k),
                                          cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaMemcpyAsync(job->idx + q0 * k, b.out_i, sizeof(int64_t) * (size_t)(m * k),
                                          cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
        if (env->progress && env->progress(env->progress_user, "ivf_flat.search", q0 + m, n_q))
            return FLI_FAIL(env, FL_STATUS_CANCELLED, "ivf_search", "cancelled by the progress callback");
    }
    return FL_STATUS_OK;
}
