/*
 * ivfpq_cuda.cu — the IVF-PQ search on the GPU (algo/ivfpq_job.h).
 *
 * Contract: the index (coarse centres, codebooks, u8 codes in list order,
 * original ids, and the raw float32 rows when the index keeps them for
 * refine) and the queries come from the host; results go back to the host
 * as ivfpq_cpu.c writes them (float64 distances, int64 indices, n_q x k,
 * padded with -1 / +inf, -inf for the inner product).
 *
 * Agreement with the CPU: the probes come from the same coarse rule as
 * IVF-Flat's GPU search (ivf_cuda.cuh: float32 keys, ties by list number;
 * the scores come from cuBLAS instead of the CPU's BLAS, so a probe can
 * differ where two centres tie to rounding). Except for the residual L2
 * tables of large batches (step 3: the same distances summed in another
 * order), each look-up-table entry and each code's key are computed in
 * the CPU's order of operations with round-to-nearest intrinsics (no
 * contraction), so for the same probe the keys are the CPU's bit for bit;
 * the pool is the `pool` smallest keys, ties by original index, as the
 * CPU's heap keeps them, and the re-rank computes float64 distances as
 * the CPU's exact_dist does. Differences therefore come only from
 * near-ties: of the coarse GEMM (and, for the inner product with residual
 * codes, the list's base score <q, c>, which is cuBLAS's product), and of
 * the keys of the decomposed residual tables; with refine the distances
 * returned are exact either way, without it (refine 1) they are the keys'
 * and differ from the CPU's by rounding.
 *
 * Pipeline, per chunk of queries (all stages on the context's stream):
 *   1. coarse step (fli_ivf_probe_step, shared with IVF-Flat): cuBLAS
 *      SGEMM of queries x centres, keys, a block radix select of the
 *      n_probes nearest lists per query.
 *   2. segments: each query's candidate space is its probed lists laid
 *      end to end (a fixed stride per query: the n_probes longest lists).
 *   3. LUT scan: the look-up table of a query and list holds pq_dim x
 *      2^pq_bits float32 entries in shared memory, each the squared
 *      distance (or product) of the query's residual sub-vector (q - the
 *      list's centre, or q itself for the inner product / without
 *      residuals) to a centroid; the list's codes are streamed, a thread
 *      per row summing pq_dim table reads, each row's key written to the
 *      pair's segment. Small batches: a block per (query, probe) building
 *      its table as the CPU does (pq_scan). Large batches: a block per
 *      query and 8 probes (pq_group): the table built once when it does
 *      not depend on the list (inner product, no residuals), else from
 *      per-list terms precomputed at upload (FAISS's decomposition,
 *      ||q - c - b||^2 = ||q - c||^2 + (||b||^2 + 2 <c, b>) - 2 <q, b>),
 *      so a probe costs a 32 KB stream instead of 8192 x 4 multiply-adds
 *      (pq_scan<true>, codebooks staged in shared memory, when the terms
 *      would take more than 2 GiB or half the free memory).
 *   4. pool (fli_ivf_pool_step, shared): the `pool` (= ceil(refine k), or
 *      k without raw rows) smallest keys per query, ties by original index.
 *   5. re-rank (pq_rerank): a block per query computes the pool's float64
 *      exact distances from the raw rows (or the distances the keys stand
 *      for when the index keeps no raw rows), ranks them by (distance,
 *      index) and writes k.
 *
 * Device-resident index: the context keeps the last IVF-PQ index it
 * searched (state->ivfpq), keyed by job->index_key (the model's generation,
 * which add() changes) and its sizes; later searches upload the queries
 * only. Released by ctx_free (fli_cuda_ivfpq_release).
 *
 * Limits (the algo layer routes other cases to the CPU): pool <= 1024, a
 * table of at most what the device's shared memory holds (pq_dim x
 * 2^pq_bits x 4 bytes plus the residual), fewer than 2^31 rows and
 * candidates per query.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/ivfpq_job.h"
#include "backends/cuda/fl_cuda_util.cuh"
#include "backends/cuda/ivf_cuda.cuh"

#define PQ_MAX_POOL 1024
#define PQ_SCAN_THREADS 512
#define PQ_RERANK_THREADS 128

typedef struct pq_dev {
    uint64_t key;
    int64_t n, L, d, d4, M, ks, ds;
    int metric, by_residual, has_data;
    float *centers;   /* L x d4 (zero padded) */
    float *cn;        /* L squared centre norms, float32 of the float64 sums */
    float *codebooks; /* M x ks x ds */
    uint8_t *codes;   /* n x M */
    float *data;      /* n x d raw rows, or NULL */
    int64_t *off;     /* L + 1 */
    int64_t *ids;     /* n */
    int64_t *top;     /* host, L + 1: top[p] = rows of the p longest lists */
    /* L x M x ks: ||b||^2 + 2 <c_lj, b> for every list l and centroid b of
     * sub-space j (residual L2 tables without the query: pq_group<1>);
     * NULL when not used (inner product, no residuals) or too large */
    float *T;
    void *ws;
    size_t ws_bytes;
    int64_t pool_smem;
    int64_t scan_smem[2]; /* the scans' shared-memory attributes as last set (unstaged, staged) */
    int64_t group_smem[2]; /* pq_group<0>'s and pq_group<1>'s, likewise */
} pq_dev;

static void pq_dev_free_arrays(fli_cuda_env *env, pq_dev *c)
{
    fli_dev_free(env, c->centers);
    fli_dev_free(env, c->cn);
    fli_dev_free(env, c->codebooks);
    fli_dev_free(env, c->codes);
    fli_dev_free(env, c->data);
    fli_dev_free(env, c->off);
    fli_dev_free(env, c->ids);
    fli_dev_free(env, c->T);
    free(c->top);
    c->centers = c->cn = c->codebooks = c->data = c->T = NULL;
    c->codes = NULL;
    c->off = c->ids = c->top = NULL;
    c->key = 0;
    c->n = c->L = c->d = c->d4 = c->M = c->ks = c->ds = 0;
}

extern "C" void fli_cuda_ivfpq_release(fli_cuda_env *env)
{
    if (!env || !env->state) return;
    fli_cuda_state *s = fli_state(env);
    pq_dev *c = (pq_dev *)s->ivfpq;
    if (!c) return;
    pq_dev_free_arrays(env, c);
    fli_dev_free(env, c->ws);
    free(c);
    s->ivfpq = NULL;
}

static int cmp_desc_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x > y ? -1 : x < y;
}

__global__ void pq_terms(const float *centers, int64_t d4, const float *codebooks, int64_t M, int64_t ks,
                         int64_t ds, int kbits, float *T);

static fl_status pq_upload(fli_cuda_env *env, const fli_ivfpq_index *ix, uint64_t key, pq_dev **out)
{
    fli_cuda_state *s = fli_state(env);
    pq_dev *c = (pq_dev *)s->ivfpq;
    if (!c) {
        c = (pq_dev *)calloc(1, sizeof *c);
        if (!c) return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "ivfpq cache", "host allocation failed");
        c->pool_smem = -1;
        c->scan_smem[0] = c->scan_smem[1] = -1;
        c->group_smem[0] = c->group_smem[1] = -1;
        s->ivfpq = c;
    }
    *out = c;
    const int has_data = ix->data != NULL;
    if (key != 0 && c->key == key && c->n == ix->n && c->L == ix->n_lists && c->d == ix->d && c->M == ix->M &&
        c->ks == ix->ksub && c->metric == (int)ix->metric && c->by_residual == ix->by_residual &&
        c->has_data == has_data)
        return FL_STATUS_OK;
    pq_dev_free_arrays(env, c);
    const int64_t n = ix->n, L = ix->n_lists, d = ix->d, d4 = fli_ceil_div(d, 4) * 4, M = ix->M, ks = ix->ksub,
                  ds = ix->dsub;
    cudaStream_t st = s->stream;
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(L * d4), (void **)&c->centers));
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)L, (void **)&c->cn));
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(M * ks * ds), (void **)&c->codebooks));
    FLI_TRY(fli_dev_alloc(env, (size_t)(n * M), (void **)&c->codes));
    if (has_data) FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(n * d), (void **)&c->data));
    FLI_TRY(fli_dev_alloc(env, sizeof(int64_t) * (size_t)(L + 1), (void **)&c->off));
    FLI_TRY(fli_dev_alloc(env, sizeof(int64_t) * (size_t)n, (void **)&c->ids));
    c->top = (int64_t *)malloc(sizeof(int64_t) * (size_t)(L + 1));
    float *cn = (float *)malloc(sizeof(float) * (size_t)L);
    if (!c->top || !cn) {
        free(cn);
        return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "ivfpq upload", "host allocation failed");
    }
    /* the centre norms as ivfpq_cpu.c computes them (float64 sum, rounded) */
    for (int64_t l = 0; l < L; l++) {
        double a = 0;
        for (int64_t j = 0; j < d; j++) a += (double)ix->centers[l * d + j] * ix->centers[l * d + j];
        cn[l] = (float)a;
    }
    for (int64_t l = 0; l < L; l++) c->top[l + 1] = ix->offsets[l + 1] - ix->offsets[l];
    qsort(c->top + 1, (size_t)L, sizeof(int64_t), cmp_desc_i64);
    c->top[0] = 0;
    for (int64_t l = 0; l < L; l++) c->top[l + 1] += c->top[l];
    cudaError_t e = cudaSuccess;
    if (d4 != d) e = cudaMemsetAsync(c->centers, 0, sizeof(float) * (size_t)(L * d4), st);
    if (e == cudaSuccess)
        e = cudaMemcpy2DAsync(c->centers, sizeof(float) * d4, ix->centers, sizeof(float) * d, sizeof(float) * d,
                              (size_t)L, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess) e = cudaMemcpyAsync(c->cn, cn, sizeof(float) * L, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(c->codebooks, ix->codebooks, sizeof(float) * (size_t)(M * ks * ds),
                            cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess) e = cudaMemcpyAsync(c->codes, ix->codes, (size_t)(n * M), cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess && has_data)
        e = cudaMemcpyAsync(c->data, ix->data, sizeof(float) * (size_t)(n * d), cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(c->off, ix->offsets, sizeof(int64_t) * (L + 1), cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(c->ids, ix->ids, sizeof(int64_t) * n, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(st); /* cn is freed below */
    fl_status rc = e != cudaSuccess ? fli_cuda_fail(env, __FILE__, __LINE__, "ivfpq upload", e) : FL_STATUS_OK;
    free(cn);
    if (rc) {
        pq_dev_free_arrays(env, c);
        return rc;
    }
    /* the per-list terms of residual L2 tables, when they take at most
     * 2 GiB and the device has the room (else the per-probe tables) */
    const size_t t_bytes = sizeof(float) * (size_t)(L * M * ks);
    if (ix->by_residual && ix->metric != FLI_KNN_INNER && t_bytes <= ((size_t)2 << 30)) {
        size_t free_b = 0, total_b = 0;
        /* optional: a refused allocation only means the per-probe tables */
        if (fli_dev_mem_info(env, &free_b, &total_b) == cudaSuccess && t_bytes < free_b / 2 &&
            fli_dev_alloc(env, t_bytes, (void **)&c->T) == FL_STATUS_OK) {
            int kbits = 0;
            while (((int64_t)1 << kbits) < ks) kbits++;
            pq_terms<<<(unsigned)L, 256, 0, st>>>(c->centers, d4, c->codebooks, M, ks, ds, kbits, c->T);
            e = cudaGetLastError();
            if (e == cudaSuccess) e = cudaStreamSynchronize(st);
            if (e != cudaSuccess) {
                rc = fli_cuda_fail(env, __FILE__, __LINE__, "pq_terms", e);
                pq_dev_free_arrays(env, c);
                return rc;
            }
        } else {
            (void)cudaGetLastError();
            c->T = NULL;
            if (env->err && env->err_len) env->err[0] = 0;
        }
    }
    c->n = n, c->L = L, c->d = d, c->d4 = d4, c->M = M, c->ks = ks, c->ds = ds;
    c->metric = (int)ix->metric, c->by_residual = ix->by_residual, c->has_data = has_data;
    c->key = key;
    return FL_STATUS_OK;
}

/* The per-list terms of residual L2 tables: ||q - c - b||^2 = ||q - c||^2 +
 * (||b||^2 + 2 <c_j, b>) - 2 <q_j, b>, the middle term per (list, sub-space,
 * centroid), as FAISS's IVF-PQ precomputes it. Block = list. */
__global__ void pq_terms(const float *centers, int64_t d4, const float *codebooks, int64_t M, int64_t ks,
                         int64_t ds, int kbits, float *T)
{
    const int64_t l = blockIdx.x;
    const float *c = centers + l * d4;
    for (int64_t e = threadIdx.x; e < M * ks; e += blockDim.x) {
        const float *b = codebooks + e * ds, *cj = c + (e >> kbits) * ds;
        float s = 0.f;
        for (int64_t f = 0; f < ds; f++) s += b[f] * b[f] + 2.f * cj[f] * b[f];
        T[l * M * ks + e] = s;
    }
}

/* ---- the grouped scan -------------------------------------------------------
 *
 * Block = (query q, group g of G probes), blockIdx.x = q NG + g. MODE 0
 * (inner product, or codes of the rows themselves): the table does not
 * depend on the list, so it is built once per block, in ivfpq_cpu.c's
 * arithmetic (the CPU's keys bit for bit), and each probe only scans.
 * MODE 1 (L2 / cosine with residual codes): the block builds the query's
 * term -2 <q_j, b> once; each probe's table is T[l] + that term (a stream
 * of the list's 32 KB of terms instead of 8192 x ds multiply-adds) and the
 * key is ||q - c||^2 + the codes' table sum. The same distances in another
 * order of operations: keys differ from the CPU's by rounding, so only
 * near-ties can rank differently.
 */
template <int MODE>
__global__ void __launch_bounds__(PQ_SCAN_THREADS)
    pq_group(const float *q32, int64_t d4, const uint32_t *Skeys, int64_t L, const int32_t *probes, int64_t P,
             int64_t G, const int32_t *pre, int64_t stride, const float *centers, const float *codebooks,
             const float *T, const uint8_t *codes, const int64_t *off, const int64_t *ids, const int64_t *self,
             int64_t d, int64_t M, int64_t ks, int64_t ds, int kbits, int ip, int by_residual, uint32_t *buf)
{
    extern __shared__ __align__(16) float smem[];
    float *lut = smem;                                   /* M x ks */
    float *cq = smem + M * ks;                           /* M x ks (MODE 1) */
    float *rq = smem + (MODE == 1 ? 2 : 1) * M * ks;     /* d */
    __shared__ float s_A;
    const int64_t NG = (P + G - 1) / G, q = blockIdx.x / NG, g = blockIdx.x - q * NG;
    const int tid = threadIdx.x, lane = tid & 31;
    const float *qq = q32 + q * d4;
    const int64_t n_e = M * ks;
    for (int64_t f = tid; f < d; f += blockDim.x) rq[f] = qq[f]; /* q - 0.0f == q: the CPU's residual too */
    __syncthreads();
    for (int64_t e = tid; e < n_e; e += blockDim.x) {
        const float *cb = codebooks + e * ds, *rj = rq + (e >> kbits) * ds;
        float s = 0.0f;
        if (MODE == 0) {
            if (ip) {
                for (int64_t f = 0; f < ds; f++) s = __fadd_rn(s, __fmul_rn(rj[f], cb[f]));
            } else {
                for (int64_t f = 0; f < ds; f++) {
                    const float v = __fsub_rn(rj[f], cb[f]);
                    s = __fadd_rn(s, __fmul_rn(v, v));
                }
            }
            lut[e] = s;
        } else {
            for (int64_t f = 0; f < ds; f++) s += rj[f] * cb[f];
            cq[e] = -2.f * s;
        }
    }
    __syncthreads(); /* the table (MODE 0) or the query's term (MODE 1) */
    const int64_t me = self ? self[q] : -1;
    const int words = (M & 3) == 0;
    const int64_t j1 = (g + 1) * G < P ? (g + 1) * G : P;
    for (int64_t pj = g * G; pj < j1; pj++) {
        const int64_t pair = q * P + pj;
        const int32_t l = probes[pair];
        const int64_t o = off[l], len = off[l + 1] - o;
        if (len == 0) continue; /* uniform across the block */
        float base = 0.f;
        if (MODE == 1) {
            __syncthreads(); /* the previous probe's table is no longer read; cq is written */
            const float4 *t4 = (const float4 *)(T + (int64_t)l * n_e);
            const float4 *c4 = (const float4 *)cq;
            float4 *l4 = (float4 *)lut;
            for (int64_t e = tid; e < (n_e >> 2); e += blockDim.x) {
                const float4 a = t4[e], b = c4[e];
                l4[e] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
            }
            if (tid < 32) { /* ||q - c||^2, directly: the coarse key would lose digits */
                const float *c = centers + (int64_t)l * d4;
                float a = 0.f;
                for (int64_t f = lane; f < d; f += 32) {
                    const float v = qq[f] - c[f];
                    a += v * v;
                }
                for (int sh = 16; sh > 0; sh >>= 1) a += __shfl_xor_sync(0xffffffffu, a, sh);
                if (lane == 0) s_A = a;
            }
            __syncthreads();
            base = s_A;
        } else {
            /* the inner product's list base: the coarse score <q, c> (key = -s) */
            base = ip && by_residual ? -key_float(Skeys[q * L + l]) : 0.0f;
        }
        uint32_t *dst = buf + q * stride + pre[pair];
        for (int64_t r = tid; r < len; r += blockDim.x) {
            if (me >= 0 && ids[o + r] == me) {
                dst[r] = KEY_EXCLUDED;
                continue;
            }
            const uint8_t *code = codes + (o + r) * M;
            float s = 0.0f;
            if (words) {
                const uint32_t *w = (const uint32_t *)code;
                for (int64_t j = 0; j < M; j += 4) {
                    const uint32_t v = w[j >> 2];
                    s = __fadd_rn(s, lut[(j + 0) * ks + (v & 255u)]);
                    s = __fadd_rn(s, lut[(j + 1) * ks + ((v >> 8) & 255u)]);
                    s = __fadd_rn(s, lut[(j + 2) * ks + ((v >> 16) & 255u)]);
                    s = __fadd_rn(s, lut[(j + 3) * ks + (v >> 24)]);
                }
            } else {
                for (int64_t j = 0; j < M; j++) s = __fadd_rn(s, lut[j * ks + code[j]]);
            }
            dst[r] = ord_key(MODE == 1 ? __fadd_rn(base, s) : ip ? -__fadd_rn(base, s) : s);
        }
    }
}

/* ---- the look-up-table scan ------------------------------------------------
 *
 * Block = (query q, group g of G probes): blockIdx.x = q NG + g, probes
 * j = g G .. min(P, g G + G) - 1 in turn. Shared: the table (M x ks
 * float32), the residual (d float32) and, when STAGE, the codebooks
 * (M x ks x ds float32), loaded once per block: every table entry reads a
 * centroid, and reading the 128 KB codebooks of d = 128, 256 centroids
 * from L2 for every (query, probe) is what staging saves (it did not make
 * the scan faster on the H100: the table build is bound by its
 * instructions). Used for residual L2 tables of large batches when the
 * per-list terms of pq_group<1> are not kept (G = 8, staged), and for
 * small batches (G = 1, unstaged).
 *
 * The table entries follow ivfpq_cpu.c's loop exactly: s = 0; s += v * v
 * over the sub-space's features (v = r - centroid; or s += r * centroid
 * for the inner product), each step rounded; a row's key is s = 0;
 * s += lut[j][code[j]] over the sub-spaces in order, and -(base + s) for
 * the inner product (base = <q, c> with residual codes, else 0).
 */
template <bool STAGE>
__global__ void __launch_bounds__(PQ_SCAN_THREADS)
    pq_scan(const float *q32, int64_t d4, const uint32_t *Skeys, int64_t L, const int32_t *probes, int64_t P,
            int64_t G, const int32_t *pre, int64_t stride, const float *centers, const float *codebooks,
            const uint8_t *codes, const int64_t *off, const int64_t *ids, const int64_t *self, int64_t d, int64_t M,
            int64_t ks, int64_t ds, int kbits, int ip, int by_residual, uint32_t *buf)
{
    extern __shared__ __align__(16) float smem[];
    float *lut = smem;         /* M x ks */
    float *rq = smem + M * ks; /* d      */
    float *cbs = rq + ((d + 3) & ~(int64_t)3);
    const int64_t NG = (P + G - 1) / G, q = blockIdx.x / NG, g = blockIdx.x - q * NG;
    const int tid = threadIdx.x;
    const float *qq = q32 + q * d4;
    if (STAGE) {
        const int64_t nf = M * ks * ds;
        for (int64_t i = tid; i < nf; i += blockDim.x) cbs[i] = codebooks[i];
    }
    const float *cb0 = STAGE ? cbs : codebooks;
    const int64_t me = self ? self[q] : -1;
    const int words = (M & 3) == 0;
    const int64_t j1 = (g + 1) * G < P ? (g + 1) * G : P;
    for (int64_t pj = g * G; pj < j1; pj++) {
        const int64_t pair = q * P + pj;
        const int32_t l = probes[pair];
        const int64_t o = off[l], len = off[l + 1] - o;
        if (len == 0) continue; /* uniform across the block */
        const float *c = centers + (int64_t)l * d4;
        __syncthreads(); /* the previous probe's table is no longer read */
        for (int64_t f = tid; f < d; f += blockDim.x)
            rq[f] = (!ip && by_residual) ? __fsub_rn(qq[f], c[f]) : qq[f];
        /* the inner product's list base: the coarse score <q, c> (key = -s) */
        const float base = ip && by_residual ? -key_float(Skeys[q * L + l]) : 0.0f;
        __syncthreads();
        for (int64_t e = tid; e < M * ks; e += blockDim.x) {
            const int64_t j = e >> kbits;
            const float *cb = cb0 + e * ds, *rj = rq + j * ds;
            float s = 0.0f;
            if (ds == 4) { /* one 16-byte read of the centroid, same arithmetic */
                const float4 v4 = *(const float4 *)cb;
                const float cv[4] = {v4.x, v4.y, v4.z, v4.w};
#pragma unroll
                for (int f = 0; f < 4; f++) {
                    const float v = ip ? rj[f] : __fsub_rn(rj[f], cv[f]);
                    s = __fadd_rn(s, ip ? __fmul_rn(v, cv[f]) : __fmul_rn(v, v));
                }
            } else if (ip) {
                for (int64_t f = 0; f < ds; f++) s = __fadd_rn(s, __fmul_rn(rj[f], cb[f]));
            } else {
                for (int64_t f = 0; f < ds; f++) {
                    const float v = __fsub_rn(rj[f], cb[f]);
                    s = __fadd_rn(s, __fmul_rn(v, v));
                }
            }
            lut[e] = s;
        }
        __syncthreads();
        uint32_t *dst = buf + q * stride + pre[pair];
        for (int64_t r = tid; r < len; r += blockDim.x) {
            if (me >= 0 && ids[o + r] == me) {
                dst[r] = KEY_EXCLUDED;
                continue;
            }
            const uint8_t *code = codes + (o + r) * M;
            float s = 0.0f;
            if (words) {
                const uint32_t *w = (const uint32_t *)code;
                for (int64_t j = 0; j < M; j += 4) {
                    const uint32_t v = w[j >> 2];
                    s = __fadd_rn(s, lut[(j + 0) * ks + (v & 255u)]);
                    s = __fadd_rn(s, lut[(j + 1) * ks + ((v >> 8) & 255u)]);
                    s = __fadd_rn(s, lut[(j + 2) * ks + ((v >> 16) & 255u)]);
                    s = __fadd_rn(s, lut[(j + 3) * ks + (v >> 24)]);
                }
            } else {
                for (int64_t j = 0; j < M; j++) s = __fadd_rn(s, lut[j * ks + code[j]]);
            }
            dst[r] = ord_key(ip ? -__fadd_rn(base, s) : s);
        }
    }
}

/* ---- the re-rank ------------------------------------------------------------
 *
 * A block per query. Each pool entry's distance: with the raw rows, the
 * float64 exact distance in ivfpq_cpu.c's exact_dist order (dimension
 * order, no fused multiply-add); without them, the distance the key stands
 * for (approx_dist). Entries are ranked by (distance, index), the inner
 * product largest first; k are written, padded with -1 and +inf (-inf). */
__global__ void __launch_bounds__(PQ_RERANK_THREADS)
    pq_rerank(const uint32_t *buf, int64_t stride, const int32_t *pool, const int32_t *pool_n, int64_t cap,
              const int32_t *pre, const int32_t *probes, int64_t P, const int64_t *off, const int64_t *ids,
              const float *data, int64_t d, int64_t d4, const float *qraw, const double *qs64, int metric,
              int64_t k, double *out_d, int64_t *out_i)
{
    __shared__ double sd[PQ_MAX_POOL];
    __shared__ int64_t sid[PQ_MAX_POOL];
    const int64_t q = blockIdx.x;
    const int tid = threadIdx.x;
    const int ip = metric == 3;
    const int64_t n = pool_n[q];
    const float *qq = qraw + q * d4;
    const double qs = qs64[q];
    for (int64_t c = tid; c < n; c += blockDim.x) {
        const int32_t pos = pool[q * cap + c];
        const uint32_t key = buf[q * stride + pos];
        double dist = ip ? -INFINITY : INFINITY;
        int64_t id = -1;
        if (key != KEY_EXCLUDED) {
            const int64_t row = seg_row(pre + q * P, probes + q * P, P, off, pos);
            id = ids[row];
            if (data) {
                const float *x = data + row * d;
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
            } else {
                const double kf = (double)key_float(key);
                dist = metric == 1 ? sqrt(fmax(kf, 0.0)) : metric == 2 ? 0.5 * fmax(kf, 0.0) : ip ? -kf : fmax(kf, 0.0);
            }
        }
        sd[c] = dist;
        sid[c] = id;
    }
    for (int64_t c = tid; c < k; c += blockDim.x) {
        out_d[q * k + c] = ip ? -INFINITY : INFINITY;
        out_i[q * k + c] = -1;
    }
    __syncthreads();
    for (int64_t c = tid; c < n; c += blockDim.x) {
        const double dc = sd[c];
        const int64_t ic = sid[c];
        if (ic < 0) continue;
        int64_t rank = 0;
        for (int64_t e = 0; e < n; e++) {
            const double de = sd[e];
            const int64_t ie = sid[e];
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

/* ---- the driver ------------------------------------------------------------ */

static size_t a256(size_t b) { return (b + 255) & ~(size_t)255; }

typedef struct pq_bufs {
    float *qraw, *q32, *qsf, *S;
    double *qs64, *out_d;
    int64_t *self, *out_i;
    int32_t *probes, *pre, *tot, *pool, *pool_n;
    uint32_t *buf;
} pq_bufs;

static size_t pq_carve(int64_t qc, int64_t L, int64_t d4, int64_t P, int64_t stride, int64_t cap, int64_t k,
                       int self, char *base, pq_bufs *b)
{
    size_t at = 0;
#define CARVE(field, type, count)                   \
    do {                                            \
        if (base) b->field = (type *)(base + at);   \
        at += a256(sizeof(type) * (size_t)(count)); \
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
    CARVE(pre, int32_t, qc * P);
    CARVE(tot, int32_t, qc);
    CARVE(pool, int32_t, qc * cap);
    CARVE(pool_n, int32_t, qc);
    CARVE(buf, uint32_t, qc * stride);
#undef CARVE
    if (base && !self) b->self = NULL;
    return at;
}

extern "C" fl_status fli_cuda_ivfpq_search(fli_cuda_env *env, const fli_ivfpq_search_job *job)
{
    fli_cuda_state *st = fli_state(env);
    const fli_ivfpq_index *ix = &job->ix;
    const int64_t L = ix->n_lists, d = ix->d, k = job->k, n_q = job->n_q, M = ix->M, ks = ix->ksub;
    const int64_t P = job->n_probes < L ? job->n_probes : L;
    const int64_t cap = job->pool > k ? job->pool : k;
    const int metric = (int)ix->metric;
    const size_t scan_smem = sizeof(float) * (size_t)(M * ks + ((d + 3) & ~(int64_t)3));
    const size_t staged_smem = scan_smem + sizeof(float) * (size_t)(M * ks * ix->dsub);
    int kbits = 0;
    while (((int64_t)1 << kbits) < ks) kbits++;
    if (cap > PQ_MAX_POOL || ix->n >= ((int64_t)1 << 31) || P < 1 || k < 1 || ks > 256 || ks != ((int64_t)1 << kbits))
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "ivfpq_search",
                        "the GPU search takes pools (refine x k) of at most 1024, n_probes >= 1, 2^pq_bits "
                        "centroids (at most 256) and fewer than 2^31 rows");
    if (scan_smem > (size_t)st->smem_optin)
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "ivfpq_search",
                        "the look-up table (pq_dim x 2^pq_bits floats) exceeds the device's shared memory");
    if (n_q == 0) return FL_STATUS_OK;
    FLI_CUDA_TRY(env, cudaSetDevice(env->device_id));
    pq_dev *c = NULL;
    FLI_TRY(pq_upload(env, ix, job->index_key, &c));
    const int64_t d4 = c->d4, stride = c->top[P] > 0 ? c->top[P] : 1;
    if (stride >= ((int64_t)1 << 31))
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "ivfpq_search", "more than 2^31 candidates per query");
    cudaStream_t s = st->stream;

    /* queries per chunk, as ivf_cuda.cu sizes them */
    const int self = job->self_ids != NULL;
    int64_t qc = n_q;
    if (pq_carve(qc, L, d4, P, stride, cap, k, self, NULL, NULL) > c->ws_bytes || qc * P >= ((int64_t)1 << 31) ||
        qc * stride >= ((int64_t)1 << 40)) {
        size_t free_b = 0, total_b = 0;
        FLI_CUDA_TRY(env, fli_dev_mem_info(env, &free_b, &total_b));
        const double budget = 0.85 * (double)(free_b + c->ws_bytes) - 64.0 * (1 << 20);
        while (qc > 1 && ((double)pq_carve(qc, L, d4, P, stride, cap, k, self, NULL, NULL) > budget ||
                          qc * P >= ((int64_t)1 << 31) || qc * stride >= ((int64_t)1 << 40)))
            qc = (qc + 1) / 2;
    }
    const size_t need = pq_carve(qc, L, d4, P, stride, cap, k, self, NULL, NULL);
    if (need > c->ws_bytes) {
        fli_dev_free(env, c->ws);
        c->ws = NULL;
        c->ws_bytes = 0;
        FLI_TRY(fli_dev_alloc(env, need, &c->ws));
        c->ws_bytes = need;
    }
    pq_bufs b;
    memset(&b, 0, sizeof b);
    pq_carve(qc, L, d4, P, stride, cap, k, self, (char *)c->ws, &b);
    /* Large batches (pairs enough to fill the device with blocks of 8
     * probes): the grouped scan when its table can be shared (inner
     * product, no residuals: MODE 0) or the per-list terms exist (MODE 1);
     * else the staged scan (codebooks in shared memory, a table per
     * probe). Small batches: a block per (query, probe). */
    const int mode = (metric == 3 || !c->by_residual) ? 0 : 1;
    const size_t group_smem = sizeof(float) * (size_t)((mode == 1 ? 2 : 1) * M * ks + d4);
    const int64_t big = 16 * (int64_t)st->sm_count;
    const int grouped = (mode == 0 || c->T) && group_smem <= (size_t)st->smem_optin && qc * P >= big;
    const int staged = !grouped && staged_smem <= (size_t)st->smem_optin && qc * P >= big;
    if (grouped && group_smem > 48 * 1024 && (int64_t)group_smem > c->group_smem[mode]) {
        if (mode == 1)
            FLI_CUDA_TRY(env, cudaFuncSetAttribute(pq_group<1>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   (int)group_smem));
        else
            FLI_CUDA_TRY(env, cudaFuncSetAttribute(pq_group<0>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   (int)group_smem));
        c->group_smem[mode] = (int64_t)group_smem;
    }
    if (scan_smem > 48 * 1024 && (int64_t)scan_smem > c->scan_smem[0]) {
        FLI_CUDA_TRY(env, cudaFuncSetAttribute(pq_scan<false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)scan_smem));
        c->scan_smem[0] = (int64_t)scan_smem;
    }
    if (staged && staged_smem > 48 * 1024 && (int64_t)staged_smem > c->scan_smem[1]) {
        FLI_CUDA_TRY(env, cudaFuncSetAttribute(pq_scan<true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)staged_smem));
        c->scan_smem[1] = (int64_t)staged_smem;
    }

    for (int64_t q0 = 0; q0 < n_q; q0 += qc) {
        const int64_t m = n_q - q0 < qc ? n_q - q0 : qc;
        if (d4 != d) FLI_CUDA_TRY(env, cudaMemsetAsync(b.qraw, 0, sizeof(float) * (size_t)(m * d4), s));
        FLI_CUDA_TRY(env, cudaMemcpy2DAsync(b.qraw, sizeof(float) * d4, job->q + q0 * job->q_ld,
                                            sizeof(float) * job->q_ld, sizeof(float) * d, (size_t)m,
                                            cudaMemcpyHostToDevice, s));
        if (b.self)
            FLI_CUDA_TRY(env, cudaMemcpyAsync(b.self, job->self_ids + q0, sizeof(int64_t) * m,
                                              cudaMemcpyHostToDevice, s));
        FLI_TRY(fli_ivf_probe_step(env, c->centers, c->cn, L, d, d4, b.qraw, m, metric, P, b.q32, b.qs64, b.qsf,
                                   b.S, b.probes));
        FLI_TRY(fli_ivf_segments_step(env, b.probes, m, P, c->off, b.pre, b.tot));
        /* the last chunk may be small: it keeps the chunk's choice (the
         * attribute was set for it) unless it has too few pairs */
        const int gr8 = grouped && m * P >= big, st8 = staged && m * P >= big;
        const int64_t G = gr8 || st8 ? 8 : 1, NG = (P + G - 1) / G;
        if (gr8 && mode == 1)
            pq_group<1><<<(unsigned)(m * NG), PQ_SCAN_THREADS, group_smem, s>>>(
                b.q32, d4, (const uint32_t *)b.S, L, b.probes, P, G, b.pre, stride, c->centers, c->codebooks, c->T,
                c->codes, c->off, c->ids, b.self, d, M, ks, c->ds, kbits, metric == 3, c->by_residual, b.buf);
        else if (gr8)
            pq_group<0><<<(unsigned)(m * NG), PQ_SCAN_THREADS, group_smem, s>>>(
                b.q32, d4, (const uint32_t *)b.S, L, b.probes, P, G, b.pre, stride, c->centers, c->codebooks, c->T,
                c->codes, c->off, c->ids, b.self, d, M, ks, c->ds, kbits, metric == 3, c->by_residual, b.buf);
        else if (st8)
            pq_scan<true><<<(unsigned)(m * NG), PQ_SCAN_THREADS, staged_smem, s>>>(
                b.q32, d4, (const uint32_t *)b.S, L, b.probes, P, G, b.pre, stride, c->centers, c->codebooks,
                c->codes, c->off, c->ids, b.self, d, M, ks, c->ds, kbits, metric == 3, c->by_residual, b.buf);
        else
            pq_scan<false><<<(unsigned)(m * NG), PQ_SCAN_THREADS, scan_smem, s>>>(
                b.q32, d4, (const uint32_t *)b.S, L, b.probes, P, G, b.pre, stride, c->centers, c->codebooks,
                c->codes, c->off, c->ids, b.self, d, M, ks, c->ds, kbits, metric == 3, c->by_residual, b.buf);
        FLI_LAUNCH_TRY(env, "pq_scan");
        FLI_TRY(fli_ivf_pool_step(env, b.buf, stride, b.tot, m, cap, b.pool, b.pool_n, b.pre, b.probes, P, c->off,
                                  c->ids, &c->pool_smem));
        pq_rerank<<<(unsigned)m, PQ_RERANK_THREADS, 0, s>>>(b.buf, stride, b.pool, b.pool_n, cap, b.pre, b.probes,
                                                            P, c->off, c->ids, c->data, d, d4, b.qraw, b.qs64,
                                                            metric, k, b.out_d, b.out_i);
        FLI_LAUNCH_TRY(env, "pq_rerank");
        FLI_CUDA_TRY(env, cudaMemcpyAsync(job->dist + q0 * k, b.out_d, sizeof(double) * (size_t)(m * k),
                                          cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaMemcpyAsync(job->idx + q0 * k, b.out_i, sizeof(int64_t) * (size_t)(m * k),
                                          cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
        if (env->progress && env->progress(env->progress_user, "ivf_pq.search", q0 + m, n_q))
            return FLI_FAIL(env, FL_STATUS_CANCELLED, "ivfpq_search", "cancelled by the progress callback");
    }
    return FL_STATUS_OK;
}
