/*
 * kmeans_estep.cu — KMeans assignment (E-step) and transform kernels.
 *
 * Contract
 *   X: m x d fp32 rows, row stride ldx (any alignment; cp.async only when
 *      16-byte aligned), or for bf16/fp16 a converted copy m x dh (dh = d
 *      rounded up to 64, zero padded).
 *   C: centres kp x dp fp32 (kp = k rounded to 128, dp = d rounded to 32),
 *      zero past k rows and d columns; the tensor-core copy Ctc has the same
 *      rows (tf32: stride dp, rounded to tf32; 16-bit: stride dh).
 *   cnorm: kp floats, ||c||^2 (euclidean) or 0 (dot, cosine), +inf past k.
 *   labels[i] = argmin_c cnorm[c] - alpha * <x_i, c>, ties to the lower c.
 *
 * No n x k matrix ever exists: a block owns BM rows, streams every centre
 * tile through shared memory, and folds each tile's scores into a running
 * (best score, index) per row held in registers — the online argmin, as
 * FlashAttention folds tiles into an online softmax. ||x||^2 is never
 * needed for the argmin (the x^2-free score); exact distances of the
 * winners are computed later from the rows themselves (kmeans_mstep.cu).
 *
 * Tensor-core kernel (sm_80+, mma.sync): block 128 rows x 128 centres,
 * 8 warps as 2 (rows) x 4 (centres), warp tile 64 x 32 = 4 x 4 mma tiles
 * (m16n8k8 tf32 / m16n8k16 bf16, fp16), fp32 accumulators. The K loop runs
 * over (centre tile, 32-word chunk of d) pairs with a 3-stage cp.async
 * pipeline; a 32-bit word holds one tf32 or two 16-bit values, so both
 * precisions share one shared-memory layout: rows of 32 words padded to 36,
 * which makes the fragment loads (row g, word t) conflict-free.
 * FP32 kernel: SIMT, 64 x 64 tile, 4 x 4 per thread, exact fp32 FMA.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <string.h>

#include "backends/cuda/kmeans_cuda.cuh"
#include "backends/cuda/kmeans_dev.cuh"

#define MMA_BM 256 /* rows per block: 4 warps x 64                        */
#define MMA_BN FLI_KM_BN /* centres per tile: 2 warps x 64                */
#define MMA_LDS 36 /* words per shared row of a streamed chunk: 32 + 4 */
#define MMA_STAGES 3
#define MMA_SMEM (MMA_STAGES * (MMA_BM + MMA_BN) * MMA_LDS * 4)
#define MMA_SMEM_MAX (220 * 1024)

/* ------------------------------------------------------------------------ */
/* Centre operands                                                          */
/* ------------------------------------------------------------------------ */

/* One warp per centre row: cnorm and the tensor-core copy. cnorm is the
 * squared norm of the copy the tensor cores read (round(c)), so that a
 * score is a distance between rounded points up to fp32 error (the
 * near-tie bound in kmeans_dev.cuh relies on it); cb gets max |round(c) -
 * c| and max |round(c)| over the k rows. */
__global__ void k_prep_centers(const float *__restrict__ C, int k, int kp, int d, int dp, int dh,
                               int euclid, int prec, void *ctc, float *__restrict__ cnorm, int img,
                               float *cb, const int32_t *done) {
    if (done && *done) return;
    int lane = threadIdx.x & 31;
    int64_t c = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (c >= kp) return;
    const float *row = C + c * dp;
    float ss = 0.f, rr = 0.f;
    for (int j = lane; j < d; j += 32) {
        const float v = row[j], q = km_round(v, prec);
        ss = fmaf(q, q, ss);
        rr = fmaf(q - v, q - v, rr);
    }
    for (int o = 16; o; o >>= 1) {
        ss += __shfl_xor_sync(0xffffffffu, ss, o);
        rr += __shfl_xor_sync(0xffffffffu, rr, o);
    }
    if (prec == FLI_PREC_TF32) {
        uint32_t *o = (uint32_t *)ctc + c * dp;
        for (int j = lane; j < dp; j += 32) o[j] = to_tf32(row[j]);
    } else if (prec == FLI_PREC_BF16 || prec == FLI_PREC_FP16) {
        for (int j = lane; j < dh; j += 32) {
            float v = j < d ? row[j] : 0.f;
            int64_t at = img ? sm90_img_index(c, j, dh, FLI_KM_BN) : c * dh + j;
            if (prec == FLI_PREC_BF16)
                ((__nv_bfloat16 *)ctc)[at] = __float2bfloat16_rn(v);
            else
                ((__half *)ctc)[at] = __float2half_rn(v);
        }
    }
    if (lane == 0) {
        cnorm[c] = c < k ? (euclid ? ss : 0.f) : INFINITY;
        if (cb && c < k) {
            km_atomic_fmax(cb, sqrtf(rr));
            km_atomic_fmax(cb + 1, sqrtf(ss));
        }
    }
}

fl_status km_prep_centers(fli_cuda_env *env, cudaStream_t s, const float *C, int64_t k,
                          int64_t kp, int64_t d, int64_t dp, int64_t dh, fli_metric metric,
                          fli_precision prec, void *ctc, float *cnorm, int img, float *cb,
                          const int32_t *done) {
    if (cb) FLI_CUDA_TRY(env, cudaMemsetAsync(cb, 0, 2 * sizeof(float), s));
    int blocks = (int)fli_ceil_div(kp * 32, 256);
    k_prep_centers<<<blocks, 256, 0, s>>>(C, (int)k, (int)kp, (int)d, (int)dp, (int)dh,
                                          metric == FLI_METRIC_EUCLIDEAN, (int)prec, ctc, cnorm, img,
                                          cb, done);
    FLI_LAUNCH_TRY(env, "k_prep_centers");
    return FL_STATUS_OK;
}

/* Per-row statistics of the rounding the E-step sees: (||round(x)||^2,
 * ||round(x) - x||), summed over a row's lanes in a fixed order. */
static __device__ __forceinline__ void row_stat_add(float v, float q, float &nn, float &rr) {
    nn = fmaf(q, q, nn);
    rr = fmaf(q - v, q - v, rr);
}

/* 16-bit copy, one warp per row (pairs of columns per lane), and the row
 * statistics. */
template <int PREC>
__global__ void k_convert_rows(const float *__restrict__ x, int64_t ldx, int64_t m, int d, int dh,
                               uint32_t *__restrict__ xh, float2 *__restrict__ xst) {
    const int lane = threadIdx.x & 31;
    const int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; i < m; i += nw) {
        float nn = 0.f, rr = 0.f;
        for (int j = 2 * lane; j < dh; j += 64) {
            const float a = j < d ? x[i * ldx + j] : 0.f, b = j + 1 < d ? x[i * ldx + j + 1] : 0.f;
            uint32_t w;
            float qa, qb;
            if (PREC == FLI_PREC_BF16) {
                __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
                w = *(uint32_t *)&h;
                qa = __low2float(h);
                qb = __high2float(h);
            } else {
                __half2 h = __floats2half2_rn(a, b);
                w = *(uint32_t *)&h;
                qa = __low2float(h);
                qb = __high2float(h);
            }
            xh[(i * dh + j) >> 1] = w;
            row_stat_add(a, qa, nn, rr);
            row_stat_add(b, qb, nn, rr);
        }
        for (int o = 16; o; o >>= 1) {
            nn += __shfl_xor_sync(0xffffffffu, nn, o);
            rr += __shfl_xor_sync(0xffffffffu, rr, o);
        }
        if (lane == 0 && xst) xst[i] = make_float2(nn, sqrtf(rr));
    }
}

/* Transposed sum over the warp of 32 per-lane partials s[r]: lane r ends
 * with row r's total (31 shuffles for 32 rows; the same additions in the
 * same order on every call). s is overwritten. */
template <int H>
static __device__ __forceinline__ void km_tr_level(float (&s)[32], int lane) {
    const bool up = lane & H;
#pragma unroll
    for (int i = 0; i < H; i++) {
        const float send = up ? s[i] : s[i + H], keep = up ? s[i + H] : s[i];
        s[i] = keep + __shfl_xor_sync(0xffffffffu, send, H);
    }
}
static __device__ __forceinline__ float km_tr_reduce32(float (&s)[32], int lane) {
    km_tr_level<16>(s, lane);
    km_tr_level<8>(s, lane);
    km_tr_level<4>(s, lane);
    km_tr_level<2>(s, lane);
    km_tr_level<1>(s, lane);
    return s[0];
}

/* Row statistics only (tf32: the E-step rounds the fp32 rows itself). A
 * warp takes 32 rows: lane j adds columns j, j + 32, ... of each, then a
 * transposed reduction gives lane r row r's sums. (One row per warp with
 * a 10-shuffle reduction each ran at ~1 TB/s: 240 us for 2M x 32.) */
template <int PREC>
__global__ void __launch_bounds__(256)
    k_row_stats(const float *__restrict__ x, int64_t ldx, int64_t m, int d, float2 *__restrict__ xst) {
    const int lane = threadIdx.x & 31;
    const int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r0 = (((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5) * 32; r0 < m; r0 += nw * 32) {
        float nn[32], rr[32];
#pragma unroll
        for (int r = 0; r < 32; r++) nn[r] = rr[r] = 0.f;
        const bool full = r0 + 32 <= m; /* no row bound to test: the 32 loads go out at once */
        for (int j = lane; j < d; j += 32) {
            float v[32];
            if (full) {
#pragma unroll
                for (int r = 0; r < 32; r++) v[r] = __ldg(x + (r0 + r) * ldx + j);
            } else {
#pragma unroll
                for (int r = 0; r < 32; r++) v[r] = r0 + r < m ? x[(r0 + r) * ldx + j] : 0.f;
            }
#pragma unroll
            for (int r = 0; r < 32; r++) row_stat_add(v[r], km_round(v[r], PREC), nn[r], rr[r]);
        }
        const float tn = km_tr_reduce32(nn, lane), tr = km_tr_reduce32(rr, lane);
        if (r0 + lane < m) xst[r0 + lane] = make_float2(tn, sqrtf(tr));
    }
}

/* Hopper operand image: one thread per 16-byte chunk (8 values) of the
 * padded rows; rows past m are zero. The cpr = dh/8 threads of a row are
 * consecutive lanes of one warp (cpr divides 32, every warp is whole), so
 * the row statistics are a segmented shuffle sum. */
template <int PREC>
__global__ void k_convert_rows_img(const float *__restrict__ x, int64_t ldx, int64_t m, int64_t mp,
                                   int d, int dh, uint4 *__restrict__ xh, float2 *__restrict__ xst) {
    const int cpr = dh >> 3;
    const int64_t total = mp * cpr;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e / cpr;
        const int j0 = (int)(e - i * cpr) * 8;
        uint32_t w[4];
        float nn = 0.f, rr = 0.f;
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int j = j0 + 2 * u;
            float a = (i < m && j < d) ? x[i * ldx + j] : 0.f;
            float b = (i < m && j + 1 < d) ? x[i * ldx + j + 1] : 0.f;
            if (PREC == FLI_PREC_BF16) {
                __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
                w[u] = *(uint32_t *)&h;
                row_stat_add(a, __low2float(h), nn, rr);
                row_stat_add(b, __high2float(h), nn, rr);
            } else {
                __half2 h = __floats2half2_rn(a, b);
                w[u] = *(uint32_t *)&h;
                row_stat_add(a, __low2float(h), nn, rr);
                row_stat_add(b, __high2float(h), nn, rr);
            }
        }
        xh[sm90_img_index(i, j0, dh, FLI_KM_XH_ROWS) >> 3] = make_uint4(w[0], w[1], w[2], w[3]);
        for (int o = 1; o < cpr; o <<= 1) {
            nn += __shfl_xor_sync(0xffffffffu, nn, o);
            rr += __shfl_xor_sync(0xffffffffu, rr, o);
        }
        if (xst && j0 == 0 && i < m) xst[i] = make_float2(nn, sqrtf(rr));
    }
}

fl_status km_convert_rows(fli_cuda_env *env, cudaStream_t s, const float *x, int64_t ldx, int64_t m,
                          int64_t d, int64_t dh, fli_precision prec, void *xh, int img, float2 *xst) {
    if (img) {
        const int64_t mp = fli_ceil_div(m, FLI_KM_XH_ROWS) * FLI_KM_XH_ROWS;
        int64_t blocks = fli_ceil_div(mp * (dh / 8), 256);
        if (blocks > 65536) blocks = 65536;
        if (prec == FLI_PREC_BF16)
            k_convert_rows_img<FLI_PREC_BF16><<<(int)blocks, 256, 0, s>>>(x, ldx, m, mp, (int)d, (int)dh,
                                                                         (uint4 *)xh, xst);
        else
            k_convert_rows_img<FLI_PREC_FP16><<<(int)blocks, 256, 0, s>>>(x, ldx, m, mp, (int)d, (int)dh,
                                                                         (uint4 *)xh, xst);
        FLI_LAUNCH_TRY(env, "k_convert_rows_img");
        return FL_STATUS_OK;
    }
    int64_t blocks = fli_ceil_div(m, 8);
    if (blocks > 16384) blocks = 16384;
    if (prec == FLI_PREC_BF16)
        k_convert_rows<FLI_PREC_BF16><<<(int)blocks, 256, 0, s>>>(x, ldx, m, (int)d, (int)dh, (uint32_t *)xh, xst);
    else
        k_convert_rows<FLI_PREC_FP16><<<(int)blocks, 256, 0, s>>>(x, ldx, m, (int)d, (int)dh, (uint32_t *)xh, xst);
    FLI_LAUNCH_TRY(env, "k_convert_rows");
    return FL_STATUS_OK;
}

fl_status km_row_stats(fli_cuda_env *env, cudaStream_t s, const float *x, int64_t ldx, int64_t m,
                       int64_t d, fli_precision prec, int trunc, float2 *xst) {
    if (m <= 0 || !xst) return FL_STATUS_OK;
    int64_t blocks = fli_ceil_div(m, 8 * 32); /* 8 warps of 32 rows */
    if (blocks > 16384) blocks = 16384;
    if (prec == FLI_PREC_TF32 && trunc)
        k_row_stats<KM_TF32_TRUNC><<<(int)blocks, 256, 0, s>>>(x, ldx, m, (int)d, xst);
    else if (prec == FLI_PREC_TF32)
        k_row_stats<FLI_PREC_TF32><<<(int)blocks, 256, 0, s>>>(x, ldx, m, (int)d, xst);
    else if (prec == FLI_PREC_BF16)
        k_row_stats<FLI_PREC_BF16><<<(int)blocks, 256, 0, s>>>(x, ldx, m, (int)d, xst);
    else
        k_row_stats<FLI_PREC_FP16><<<(int)blocks, 256, 0, s>>>(x, ldx, m, (int)d, xst);
    FLI_LAUNCH_TRY(env, "k_row_stats");
    return FL_STATUS_OK;
}

/* KM_RS_G lanes per listed row: the exact winner of its two candidates
 * (km_rescore_group). The last block to finish empties the list for the
 * next E-step. */
__global__ void __launch_bounds__(256)
    k_tie_rescore(const km_tie T, int32_t *__restrict__ labels, int32_t *n_changed, const int32_t *done) {
    if (done && *done) return;
    __shared__ int last;
    const int cnt = *(volatile int32_t *)T.count;
    const int per_block = blockDim.x / KM_RS_G, g = threadIdx.x & (KM_RS_G - 1);
    /* blocks beyond the list's needs leave at once (no atomic): the grid is
     * sized for the longest lists, most E-steps list few rows */
    const int64_t need = ((int64_t)cnt + per_block - 1) / per_block;
    const int nwork = need < (int64_t)gridDim.x ? (int)need : (int)gridDim.x;
    if ((int)blockIdx.x >= nwork) return;
    for (int64_t b0 = (int64_t)blockIdx.x * per_block; b0 < cnt; b0 += (int64_t)gridDim.x * per_block) {
        const int64_t q = b0 + threadIdx.x / KM_RS_G;
        int changed = 0;
        /* every lane runs the group's shuffles: past the list's end a group
         * re-scores the last entry again and keeps nothing */
        const int4 e = T.list[q < cnt ? q : cnt - 1];
        const int f = km_rescore_group(T.x + (int64_t)e.x * T.ldx, T.C + (int64_t)e.y * T.ldc,
                                       T.C + (int64_t)e.z * T.ldc, T.d, T.xvec, T.euclid, e.y, e.z);
        if (q < cnt && g == 0) {
            labels[e.x] = f;
            changed = f != e.w;
        }
        count_changes(changed, n_changed);
    }
    if (blockIdx.x == 0 && threadIdx.x == 0 && T.n_rescored && cnt > 0)
        atomicAdd(T.n_rescored, (unsigned long long)cnt);
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        last = atomicAdd(T.blocks_done, 1) == nwork - 1;
    }
    __syncthreads();
    if (last && threadIdx.x == 0) {
        *(volatile int32_t *)T.count = 0;
        *(volatile int32_t *)T.blocks_done = 0;
    }
}

fl_status km_tie_rescore(fli_cuda_env *env, cudaStream_t s, const km_tie *tie, int32_t *labels,
                         int32_t *n_changed, int64_t m, fli_precision prec, const int32_t *done) {
    if (!tie || !tie->on) return FL_STATUS_OK;
    /* The list's length is known only on the device. Its expected work
     * (measured shares of listed rows: bf16 13-27%, tf32 and fp16 2-4%)
     * sizes the grid: a full SM of groups where it is long (1M x 128 bf16:
     * 8 blocks per SM, 24.5 vs 25.1 ms), 2 blocks per SM elsewhere (100K x
     * 64: 2.00 vs 2.05 ms with 8; blocks past the list's end leave at
     * once, but their launch is not free). env->km_tune bit 9 forces 2. */
    const double share = prec == FLI_PREC_BF16 ? 0.2 : 0.03;
    const int big = share * (double)m * tie->d > 16e6 && !(env->km_tune & 512);
    const int grid = (big ? 8 : 2) * fli_state(env)->sm_count;
    k_tie_rescore<<<grid, 256, 0, s>>>(*tie, labels, n_changed, done);
    FLI_LAUNCH_TRY(env, "k_tie_rescore");
    return FL_STATUS_OK;
}

km_tie km_tie_args(const km_rows *r, const float *C, int64_t dp, int64_t d, fli_metric metric,
                   fli_precision prec, int64_t kdim, km_scalars *sc, int4 *list, int on) {
    km_tie t;
    memset(&t, 0, sizeof t);
    t.x = r->x;
    t.ldx = r->ldx;
    t.xvec = r->x_aligned;
    t.xst = r->xst;
    t.C = C;
    t.ldc = dp;
    t.d = (int)d;
    t.euclid = metric == FLI_METRIC_EUCLIDEAN;
    t.on = on && prec != FLI_PREC_FP32 && r->xst != NULL && list != NULL;
    t.ekd = (float)ldexp((double)(kdim + 8), -22);
    t.cb = sc->cb;
    t.n_rescored = (unsigned long long *)&sc->n_rescored;
    t.list = list;
    t.count = &sc->tie_count;
    t.blocks_done = &sc->tie_done;
    return t;
}

/* ------------------------------------------------------------------------ */
/* Shared epilogue helpers                                                  */
/* ------------------------------------------------------------------------ */

/* Writes the label, counts a change; returns 1 when the label changed. */
__device__ __forceinline__ int store_label(int32_t *labels, int64_t i, int ix) {
    int old = labels[i];
    labels[i] = ix;
    return old != ix;
}


/* ------------------------------------------------------------------------ */
/* FP32 SIMT E-step and transform                                           */
/* ------------------------------------------------------------------------ */
#define S_BM 64
#define S_BN 64
#define S_BK 16

/* MODE 0: argmin of cnorm - alpha*dot; 1: transform with dot products;
 * 2: transform with squared differences (euclidean). */
template <int MODE>
__global__ void __launch_bounds__(256)
    k_simt(const float *__restrict__ X, int64_t ldx, int64_t m, int d, const float *__restrict__ C,
           int64_t ldc, const float *__restrict__ cnorm, int kp, int k, float alpha,
           int32_t *__restrict__ labels, int32_t *n_changed, const int32_t *done,
           float *__restrict__ out, int64_t ldo, int metric) {
    if (done && *done) return;
    __shared__ __align__(16) float As[S_BK][S_BM + 4];
    __shared__ __align__(16) float Bs[S_BK][S_BN + 4];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int64_t row0 = (int64_t)blockIdx.x * S_BM;
    float best[4];
    int bidx[4];
    for (int i = 0; i < 4; i++) {
        best[i] = INFINITY;
        bidx[i] = 0;
    }
    for (int j0 = 0; j0 < kp; j0 += S_BN) {
        if (MODE != 0 && j0 >= k) break;
        float acc[4][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) acc[i][j] = 0.f;
        for (int kc = 0; kc < d; kc += S_BK) {
            for (int q = 0; q < 4; q++) {
                int e = tid + 256 * q, r = e >> 4, kk = e & 15;
                int64_t gr = row0 + r;
                As[kk][r] = (gr < m && kc + kk < d) ? X[gr * ldx + kc + kk] : 0.f;
                Bs[kk][r] = C[(int64_t)(j0 + r) * ldc + kc + kk];
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < S_BK; kk++) {
                float4 a = *(const float4 *)&As[kk][ty * 4];
                float4 b = *(const float4 *)&Bs[kk][tx * 4];
                float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        if (MODE == 2) {
                            float t = av[i] - bv[j];
                            acc[i][j] = fmaf(t, t, acc[i][j]);
                        } else {
                            acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
                        }
                    }
            }
            __syncthreads();
        }
        if (MODE == 0) {
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int col = j0 + tx * 4 + j;
                float cn = cnorm[col];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    float sc = cn - alpha * acc[i][j];
                    if (sc < best[i]) {
                        best[i] = sc;
                        bidx[i] = col;
                    }
                }
            }
        } else {
            for (int i = 0; i < 4; i++) {
                int64_t gr = row0 + ty * 4 + i;
                if (gr >= m) continue;
                for (int j = 0; j < 4; j++) {
                    int col = j0 + tx * 4 + j;
                    if (col >= k) continue;
                    float v = acc[i][j];
                    if (MODE == 2)
                        v = sqrtf(fmaxf(v, 0.f));
                    else if (metric == FLI_METRIC_COSINE)
                        v = 1.f - v;
                    else
                        v = -v;
                    out[gr * ldo + col] = v;
                }
            }
        }
    }
    if (MODE != 0) return;
    /* the 16 threads of a row group are lanes tx of one half warp */
    int changed = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float v = best[i];
        int ix = bidx[i];
        for (int o = 8; o; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, v, o);
            int oi = __shfl_xor_sync(0xffffffffu, ix, o);
            argmin_merge(v, ix, ov, oi);
        }
        int64_t gr = row0 + ty * 4 + i;
        if (tx == 0 && gr < m) changed += store_label(labels, gr, ix);
    }
    count_changes(changed, n_changed);
}

/* ------------------------------------------------------------------------ */
/* Tensor-core E-step                                                       */
/* ------------------------------------------------------------------------ */


/* One 16-byte piece of A (row gr, words w0..w0+3) into shared memory:
 * cp.async with zero fill when aligned, else guarded scalar loads. TF32
 * values loaded by the scalar path are rounded on the way (the cp.async
 * path rounds in place after the copy lands). */
template <int PREC>
__device__ __forceinline__ void load_a16(uint32_t *dst, const uint32_t *__restrict__ A, int64_t lda,
                                         int a_words, int a_aligned, int64_t gr, int64_t m, int w0) {
    if (a_aligned) {
        int valid = gr < m ? a_words - w0 : 0;
        valid = valid < 0 ? 0 : (valid > 4 ? 4 : valid);
        const uint32_t *src = valid ? A + gr * lda + w0 : A;
        cp_async16(dst, src, valid * 4);
    } else {
#pragma unroll
        for (int t = 0; t < 4; t++) {
            uint32_t v = (gr < m && w0 + t < a_words) ? A[gr * lda + w0 + t] : 0u;
            dst[t] = PREC == FLI_PREC_TF32 ? to_tf32(__uint_as_float(v)) : v;
        }
    }
}

/* Rows row0 .. row0 + rows - 1 of A (kw words each, per_row 16-byte pieces)
 * into shared memory with row stride ls, by the block's 256 threads. The
 * piece's (row, column) advance by a fixed step instead of being divided
 * out of its index: a division by the run-time per_row cost ~50
 * instructions a piece, a quarter of the k <= 64 E-step's instructions. */
template <int PREC>
__device__ __forceinline__ void load_a_rows(uint32_t *dst, int ls, const uint32_t *__restrict__ A, int64_t lda,
                                            int a_words, int a_aligned, int64_t row0, int rows, int64_t m,
                                            int per_row) {
    const int qr = 256 / per_row, qc = 256 - qr * per_row;
    int r = threadIdx.x / per_row, c = threadIdx.x - r * per_row;
    if (a_aligned && qc == 0 && row0 + rows <= m && a_words >= 4 * per_row) {
        /* every row in range, every piece whole: a fixed stride per thread
         * (~5 instructions a piece instead of ~40 with the bounds) */
        const uint32_t *src = A + (row0 + r) * lda + 4 * c;
        uint32_t *d = dst + r * ls + 4 * c;
        for (; r < rows; r += qr, src += qr * lda, d += qr * ls) cp_async16(d, src, 16);
        return;
    }
    for (; r < rows; r += qr) {
        load_a16<PREC>(dst + r * ls + 4 * c, A, lda, a_words, a_aligned, row0 + r, m, 4 * c);
        c += qc;
        if (c >= per_row) {
            c -= per_row;
            r++;
        }
    }
}

/* ---- the warp tile: 64 rows x 64 centres, 4 x 8 mma tiles ------------- */
/* Warp w of 8: rows (w >> 1) * 64, centres (w & 1) * 64 of the block tile.
 * Per row slot (mt, h) of a thread: the best two (score, centre) over the
 * columns it has seen, ordered by score then index. */
template <int MT>
struct warp_argmin_t {
    float b1[MT][2], b2[MT][2];
    int i1[MT][2], i2[MT][2];
};
typedef warp_argmin_t<4> warp_argmin;

/* acc += A[64 rows, nsteps*8 words] . B[64 centres, same words]^T from
 * shared memory (row strides lda_s, ldb_s words; rows padded by 4 words so
 * every ldmatrix phase hits 32 distinct banks). */
template <int PREC, bool CVT_A, int MT>
__device__ __forceinline__ void warp_mma(float (&acc)[MT][8][4], const uint32_t *sA, int lda_s,
                                         const uint32_t *sB, int ldb_s, int nsteps) {
    const int lane = threadIdx.x & 31;
    const int ra = (lane & 7) + ((lane >> 3) & 1) * 8, ca = (lane >> 4) * 4;
    const int rb = (lane & 7) + (lane >> 4) * 8, cb = ((lane >> 3) & 1) * 4;
#pragma unroll 2
    for (int ks = 0; ks < nsteps; ks++) {
        const int ko = ks * 8;
        uint32_t af[MT][4], bf[8][2];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            ldsm_x4(af[mt], sA + (mt * 16 + ra) * lda_s + ko + ca);
            if (CVT_A) {
#pragma unroll
                for (int e = 0; e < 4; e++) af[mt][e] = to_tf32(__uint_as_float(af[mt][e]));
            }
        }
#pragma unroll
        for (int np = 0; np < 4; np++) {
            uint32_t q[4];
            ldsm_x4(q, sB + (np * 16 + rb) * ldb_s + ko + cb);
            bf[2 * np][0] = q[0];
            bf[2 * np][1] = q[1];
            bf[2 * np + 1][0] = q[2];
            bf[2 * np + 1][1] = q[3];
        }
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nt = 0; nt < 8; nt++) mma_tile<PREC>(acc[mt][nt], af[mt], bf[nt]);
    }
}

/* Folds a finished centre tile (warp columns from col0) into the running
 * top-2 and clears the accumulators. Per row slot: the tile's two smallest
 * scores first (one FFMA + three FMNMX per score); only when they enter the
 * running top-2 are the first columns holding them looked up, so the result
 * equals a strict ascending scan (ties to the lower index). */
template <int MT>
__device__ __forceinline__ void acc_zero(float (&acc)[MT][8][4]) {
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[mt][nt][e] = 0.f;
}

template <int MT>
__device__ __forceinline__ void warp_fold(float (&acc)[MT][8][4], warp_argmin_t<MT> &wa, int col0,
                                          const float *__restrict__ cnorm, float alpha) {
    const int t = threadIdx.x & 3;
    float cn[8][2];
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        cn[nt][0] = cnorm[col0 + nt * 8 + 2 * t];
        cn[nt][1] = cnorm[col0 + nt * 8 + 2 * t + 1];
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float sc[8][2], m1 = INFINITY, m2 = INFINITY;
#pragma unroll
            for (int nt = 0; nt < 8; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float v = fmaf(-alpha, acc[mt][nt][2 * h + e], cn[nt][e]);
                    sc[nt][e] = v;
                    m2 = fminf(m2, fmaxf(m1, v));
                    m1 = fminf(m1, v);
                }
            const int need = km_top2_need(m1, m2, wa.b1[mt][h], wa.b2[mt][h]);
            if (need) {
                int j1 = 0, j2 = 0;
#pragma unroll
                for (int nt = 7; nt >= 0; nt--)
#pragma unroll
                    for (int e = 1; e >= 0; e--)
                        if (sc[nt][e] == m1) j1 = col0 + nt * 8 + 2 * t + e;
                if (need == 2) {
#pragma unroll
                    for (int nt = 7; nt >= 0; nt--)
#pragma unroll
                        for (int e = 1; e >= 0; e--) {
                            const int col = col0 + nt * 8 + 2 * t + e;
                            if (sc[nt][e] == m2 && col != j1) j2 = col;
                        }
                }
                km_top2_update(wa.b1[mt][h], wa.i1[mt][h], wa.b2[mt][h], wa.i2[mt][h], m1, j1, m2, j2, need);
            }
        }
    acc_zero(acc);
}

template <int MT>
__device__ __forceinline__ void warp_reset(float (&acc)[MT][8][4], warp_argmin_t<MT> &wa) {
    acc_zero(acc);
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            wa.b1[mt][h] = wa.b2[mt][h] = INFINITY;
            wa.i1[mt][h] = wa.i2[mt][h] = 0;
        }
}

/* The quad's four lanes hold disjoint columns of the same rows: after this
 * every lane of the quad has the rows' top-2. */
template <int MT>
__device__ __forceinline__ void warp_quad_merge(warp_argmin_t<MT> &wa) {
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int o = 1; o < 4; o <<= 1)
                km_shfl_merge2(wa.b1[mt][h], wa.i1[mt][h], wa.b2[mt][h], wa.i2[mt][h], o);
}

/* Shared memory of block_labels: 8 * MMA_BM words. */
#define RED_WORDS (8 * MMA_BM)

/* Per row: the 4 lanes of a quad, then the 2 warps along centres (through
 * red, RED_WORDS words), then the near-tie test (km_row_done) by one
 * thread per row; writes labels of rows row0.. < m (chunk-local). Must be
 * called by the whole block; leaves red free for reuse. */
__device__ __forceinline__ void block_labels(warp_argmin &wa, uint32_t *red, int64_t row0, int64_t m,
                                             int32_t *labels, int32_t *n_changed, int old, float2 xs,
                                             const km_tie &T, float rho_c, float cmax) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 1, wn = warp & 1, g = lane >> 2, t = lane & 3;
    float *rv1 = (float *)red, *rv2 = rv1 + 2 * MMA_BM;
    int *ri1 = (int *)(rv2 + 2 * MMA_BM), *ri2 = ri1 + 2 * MMA_BM;
    warp_quad_merge(wa);
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++)
            if (t == 0) {
                int r = wn * MMA_BM + wm * 64 + mt * 16 + h * 8 + g;
                rv1[r] = wa.b1[mt][h];
                rv2[r] = wa.b2[mt][h];
                ri1[r] = wa.i1[mt][h];
                ri2[r] = wa.i2[mt][h];
            }
    __syncthreads();
    float v1 = rv1[tid], v2 = rv2[tid];
    int i1 = ri1[tid], i2 = ri2[tid];
    km_merge2(v1, i1, v2, i2, rv1[MMA_BM + tid], ri1[MMA_BM + tid], rv2[MMA_BM + tid], ri2[MMA_BM + tid]);
    int64_t gr = row0 + tid;
    const int changed = km_row_done(T, gr < m, gr, xs, rho_c, cmax, v1, i1, v2, i2, old, labels);
    count_changes(changed, n_changed);
    __syncthreads();
}

/* Tensor-core E-step, X-stationary. Block: MMA_BM rows x all centres.
 * RES: the block's rows (kw words each) stay resident in shared memory
 * (loaded once, tf32-rounded once) and only centre chunks (MMA_BN x 32
 * words) stream through a 3-stage cp.async pipeline, so X is read from
 * memory once and each centre chunk feeds 256 rows. !RES (large d): row
 * chunks stream with the centre chunks. */
template <int PREC, bool RES>
__global__ void __launch_bounds__(256, 1)
    k_estep_mma(const uint32_t *__restrict__ A, int64_t lda, int a_words, int a_aligned, int64_t m,
                int kw, const uint32_t *__restrict__ B, int64_t ldb, const float *__restrict__ cnorm,
                int kp, float alpha, int32_t *__restrict__ labels, int32_t *n_changed,
                const km_tie T, const int32_t *done) {
    if (done && *done) return;
    extern __shared__ __align__(16) uint32_t smem[];
    const int tid = threadIdx.x, warp = tid >> 5;
    const int wm = warp >> 1, wn = warp & 1;
    const int64_t row0 = (int64_t)blockIdx.x * MMA_BM;
    const float rho_c = T.on ? T.cb[0] : 0.f, cmax = T.on ? T.cb[1] : 0.f;
    const int nkc = kw / 32;
    const int total = (kp / MMA_BN) * nkc;
    const int lda_s = RES ? kw + 4 : MMA_LDS;
    uint32_t *sAres = smem;
    uint32_t *sB0 = RES ? smem + MMA_BM * lda_s : smem;
    const int stage_words = RES ? MMA_BN * MMA_LDS : (MMA_BM + MMA_BN) * MMA_LDS;

    if (RES) load_a_rows<PREC>(sAres, lda_s, A, lda, a_words, a_aligned, row0, MMA_BM, m, kw / 4);
    /* the old label is read now, its latency hidden behind the mma work */
    const int old = row0 + tid < m ? labels[row0 + tid] : 0;
    const float2 xs = km_row_stat(T, row0 + tid < m, row0 + tid);
    float acc[4][8][4];
    warp_argmin wa;
    warp_reset(acc, wa);

#define LOAD_STAGE(stg, it_)                                                                  \
    do {                                                                                      \
        const int j_ = (it_) / nkc, wc_ = ((it_) - j_ * nkc) * 32;                            \
        uint32_t *st_ = sB0 + (stg) * stage_words;                                            \
        uint32_t *sb_ = RES ? st_ : st_ + MMA_BM * MMA_LDS;                                   \
        if (!RES)                                                                             \
            for (int e = tid; e < MMA_BM * 8; e += 256)                                       \
                load_a16<PREC>(st_ + (e >> 3) * MMA_LDS + (e & 7) * 4, A, lda, a_words,       \
                               a_aligned, row0 + (e >> 3), m, wc_ + (e & 7) * 4);             \
        for (int e = tid; e < MMA_BN * 8; e += 256)                                           \
            cp_async16(sb_ + (e >> 3) * MMA_LDS + (e & 7) * 4,                                \
                       B + (int64_t)(j_ * MMA_BN + (e >> 3)) * ldb + wc_ + (e & 7) * 4, 16);  \
    } while (0)

#pragma unroll
    for (int s = 0; s < MMA_STAGES - 1; s++) {
        if (s < total) LOAD_STAGE(s, s);
        cp_async_commit();
    }
    if (RES && PREC == FLI_PREC_TF32 && a_aligned) {
        /* round the resident rows to tf32 once, each thread its own pieces */
        cp_async_wait<0>();
        const int per_row = kw / 4, pieces = MMA_BM * per_row;
        for (int e = tid; e < pieces; e += 256) {
            int r = e / per_row, cw = (e - r * per_row) * 4;
            uint32_t *p = sAres + r * lda_s + cw;
#pragma unroll
            for (int q = 0; q < 4; q++) p[q] = to_tf32(__uint_as_float(p[q]));
        }
    }

    for (int it = 0; it < total; it++) {
        cp_async_wait<MMA_STAGES - 2>();
        __syncthreads();
        int nxt = it + MMA_STAGES - 1;
        if (nxt < total) LOAD_STAGE(nxt % MMA_STAGES, nxt);
        cp_async_commit();
        const uint32_t *st = sB0 + (it % MMA_STAGES) * stage_words;
        const uint32_t *sA = (RES ? sAres + (it % nkc) * 32 : st) + wm * 64 * lda_s;
        const uint32_t *sB = (RES ? st : st + MMA_BM * MMA_LDS) + wn * 64 * MMA_LDS;
        warp_mma<PREC, PREC == FLI_PREC_TF32 && !RES>(acc, sA, lda_s, sB, MMA_LDS, 4);
        if (it % nkc == nkc - 1) warp_fold(acc, wa, (it / nkc) * MMA_BN + wn * 64, cnorm, alpha);
    }
#undef LOAD_STAGE
    cp_async_wait<0>();
    __syncthreads();
    block_labels(wa, smem, row0, m, labels, n_changed, old, xs, T, rho_c, cmax);
}

/* Tensor-core E-step, centre-stationary, for small k*d: every centre stays
 * resident in shared memory; a persistent grid walks row tiles of MMA_BM
 * rows, double-buffered (the next tile's copy overlaps this tile's mma).
 * X is read once, the centres once per block. */
template <int PREC>
__global__ void __launch_bounds__(256, 1)
    k_estep_mma_cres(const uint32_t *__restrict__ A, int64_t lda, int a_words, int a_aligned,
                     int64_t m, int kw, const uint32_t *__restrict__ B, int64_t ldb,
                     const float *__restrict__ cnorm, int kp, float alpha,
                     int32_t *__restrict__ labels, int32_t *n_changed, const km_tie T,
                     const int32_t *done) {
    if (done && *done) return;
    extern __shared__ __align__(16) uint32_t smem[];
    const int tid = threadIdx.x, warp = tid >> 5;
    const int wm = warp >> 1, wn = warp & 1;
    const int ls = kw + 4;
    const float rho_c = T.on ? T.cb[0] : 0.f, cmax = T.on ? T.cb[1] : 0.f;
    uint32_t *sB = smem;                     /* kp x ls           */
    uint32_t *sA0 = smem + kp * ls;          /* 2 x MMA_BM x ls   */
    uint32_t *red = sA0 + 2 * MMA_BM * ls;   /* RED_WORDS         */
    const int per_row = kw / 4;
    for (int e = tid; e < kp * per_row; e += 256) {
        int r = e / per_row, cw = (e - r * per_row) * 4;
        cp_async16(sB + r * ls + cw, B + (int64_t)r * ldb + cw, 16);
    }
    const int64_t tiles = (m + MMA_BM - 1) / MMA_BM;
    int64_t tile = blockIdx.x;
    if (tile < tiles)
        load_a_rows<PREC>(sA0, ls, A, lda, a_words, a_aligned, tile * MMA_BM, MMA_BM, m, per_row);
    cp_async_commit();
    float acc[4][8][4];
    warp_argmin wa;
    for (int buf = 0; tile < tiles; tile += gridDim.x, buf ^= 1) {
        const int64_t nt_ = tile + gridDim.x;
        cp_async_wait<0>();
        __syncthreads();
        if (nt_ < tiles) {
            uint32_t *dst = sA0 + (buf ^ 1) * MMA_BM * ls;
            load_a_rows<PREC>(dst, ls, A, lda, a_words, a_aligned, nt_ * MMA_BM, MMA_BM, m, per_row);
        }
        cp_async_commit();
        const int old = tile * MMA_BM + tid < m ? labels[tile * MMA_BM + tid] : 0;
        const float2 xs = km_row_stat(T, tile * MMA_BM + tid < m, tile * MMA_BM + tid);
        warp_reset(acc, wa);
        const uint32_t *sA = sA0 + buf * MMA_BM * ls + wm * 64 * ls;
        for (int j0 = 0; j0 < kp; j0 += MMA_BN) {
            warp_mma<PREC, PREC == FLI_PREC_TF32>(acc, sA, ls, sB + (j0 + wn * 64) * ls, ls, kw / 8);
            warp_fold(acc, wa, j0 + wn * 64, cnorm, alpha);
        }
        block_labels(wa, red, tile * MMA_BM, m, labels, n_changed, old, xs, T, rho_c, cmax);
    }
    cp_async_wait<0>();
}

/* k <= 64, every centre in one tile (k_estep_mma_c64): per row slot
 * (mt, h) of this lane, the scores replace the accumulators, then the
 * values of the row's best two over the quad's 64 columns (merged with
 * multiplicity: a repeated best is also the second), then the lowest
 * column holding the best. The second's column is looked up apart
 * (c64_second), only in warps where a row needs it: only the near-tie
 * re-scoring uses it. Finding both columns per lane and merging (score,
 * index) pairs across the quad (warp_fold + warp_quad_merge) took ~60% of
 * this kernel's instructions (ncu, 2M x 32, k = 64). Same result: the
 * best is the lowest index of the lowest score, the second the next pair
 * in (score, index) order. */
template <int MT>
__device__ __forceinline__ void c64_fold(float (&acc)[MT][8][4], const float *__restrict__ cnorm, float alpha,
                                         float (&v1)[MT][2], float (&v2)[MT][2], int (&j1)[MT][2]) {
    const int t = threadIdx.x & 3;
    float cn[8][2];
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        cn[nt][0] = cnorm[nt * 8 + 2 * t];
        cn[nt][1] = cnorm[nt * 8 + 2 * t + 1];
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float m1 = INFINITY, m2 = INFINITY;
#pragma unroll
            for (int nt = 0; nt < 8; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float v = fmaf(-alpha, acc[mt][nt][2 * h + e], cn[nt][e]);
                    acc[mt][nt][2 * h + e] = v;
                    m2 = fminf(m2, fmaxf(m1, v));
                    m1 = fminf(m1, v);
                }
#pragma unroll
            for (int o = 1; o < 4; o <<= 1) {
                const float p1 = __shfl_xor_sync(KM_FULL, m1, o), p2 = __shfl_xor_sync(KM_FULL, m2, o);
                m2 = fminf(fmaxf(m1, p1), fminf(m2, p2));
                m1 = fminf(m1, p1);
            }
            int j = INT_MAX;
#pragma unroll
            for (int nt = 7; nt >= 0; nt--)
#pragma unroll
                for (int e = 1; e >= 0; e--)
                    if (acc[mt][nt][2 * h + e] == m1) j = nt * 8 + 2 * t + e;
#pragma unroll
            for (int o = 1; o < 4; o <<= 1) j = min(j, __shfl_xor_sync(KM_FULL, j, o));
            v1[mt][h] = m1;
            v2[mt][h] = m2;
            j1[mt][h] = j;
        }
}

/* The column of slot (mt, h)'s second: the lowest column other than the
 * best's holding the second's value (quad-wide). */
template <int MT>
__device__ __forceinline__ int c64_second(const float (&acc)[MT][8][4], int mt, int h, float v2, int j1) {
    const int t = threadIdx.x & 3;
    int j = INT_MAX;
#pragma unroll
    for (int nt = 7; nt >= 0; nt--)
#pragma unroll
        for (int e = 1; e >= 0; e--) {
            const int col = nt * 8 + 2 * t + e;
            if (acc[mt][nt][2 * h + e] == v2 && col != j1) j = col;
        }
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) j = min(j, __shfl_xor_sync(KM_FULL, j, o));
    return j;
}

/* After c64_fold the quad of a row holds its top-2: lane L takes the
 * warp's rows L + 32 q (row r of the warp is slot (r >> 4, (r >> 3) & 1)
 * of quad r & 7), their two best values and the best's column. */
template <int MT>
__device__ __forceinline__ void c64_rows(const float (&f1)[MT][2], const float (&f2)[MT][2],
                                         const int (&g1)[MT][2], float (&v1)[MT / 2], float (&v2)[MT / 2],
                                         int (&i1)[MT / 2]) {
    const int lane = threadIdx.x & 31, src = (lane & 7) * 4, hq = (lane >> 3) & 1, mq = lane >> 4;
#pragma unroll
    for (int q = 0; q < MT / 2; q++) {
        v1[q] = v2[q] = 0.f;
        i1[q] = 0;
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const float a1 = __shfl_sync(KM_FULL, f1[mt][h], src);
            const float a2 = __shfl_sync(KM_FULL, f2[mt][h], src);
            const int j1 = __shfl_sync(KM_FULL, g1[mt][h], src);
            if (h == hq && (mt & 1) == mq) {
                v1[mt >> 1] = a1;
                v2[mt >> 1] = a2;
                i1[mt >> 1] = j1;
            }
        }
}

/* The seconds' columns of the lane's rows (as c64_rows), for the near-tie
 * list: the whole warp runs it, in warps where some row needs it. */
template <int MT>
__device__ __forceinline__ void c64_rows_second(const float (&acc)[MT][8][4], const float (&f2)[MT][2],
                                                const int (&g1)[MT][2], int (&i2)[MT / 2]) {
    const int lane = threadIdx.x & 31, src = (lane & 7) * 4, hq = (lane >> 3) & 1, mq = lane >> 4;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int j2 = __shfl_sync(KM_FULL, c64_second<MT>(acc, mt, h, f2[mt][h], g1[mt][h]), src);
            if (h == hq && (mt & 1) == mq) i2[mt >> 1] = j2;
        }
}

/* Centre-stationary E-step for k <= 64: the 64 centre rows stay in shared
 * memory and each of the 8 warps owns 16*MT rows x all 64 centres of an
 * 8 x 16*MT-row tile, so no centre padding is computed (k_estep_mma_cres
 * pads k to 128 and would spend half its mma and fold work on padding)
 * and each warp finishes its rows' argmin itself (quad shuffles, no block
 * merge). MT = 2 (the default): 32-row warp tiles, about 127 registers, two
 * blocks (16 warps) per SM — the fold and near-tie test are latency-bound
 * chains with little tensor work per score, so more warps per scheduler
 * hide more of it; MT = 4: 64-row warp tiles, one 8-warp block per SM. */
#define C64_WARP_ROWS(MT) (16 * (MT))
#define C64_BM(MT) (8 * C64_WARP_ROWS(MT))
template <int PREC, int MT>
__global__ void __launch_bounds__(256, MT == 2 ? 2 : 1)
    k_estep_mma_c64(const uint32_t *__restrict__ A, int64_t lda, int a_words, int a_aligned, int64_t m,
                    int kw, const uint32_t *__restrict__ B, int64_t ldb,
                    const float *__restrict__ cnorm, float alpha, int32_t *__restrict__ labels,
                    int32_t *n_changed, const km_tie T, const int32_t *done) {
    if (done && *done) return;
    constexpr int BM = C64_BM(MT), WR = C64_WARP_ROWS(MT), RPL = WR / 32; /* rows per lane */
    extern __shared__ __align__(16) uint32_t smem[];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int ls = kw + 4;
    const float rho_c = T.on ? T.cb[0] : 0.f, cmax = T.on ? T.cb[1] : 0.f;
    uint32_t *sB = smem;            /* 64 x ls      */
    uint32_t *sA0 = smem + 64 * ls; /* 2 x BM x ls  */
    const int per_row = kw / 4;
    for (int e = tid; e < 64 * per_row; e += 256) {
        int r = e / per_row, cw = (e - r * per_row) * 4;
        cp_async16(sB + r * ls + cw, B + (int64_t)r * ldb + cw, 16);
    }
    const int64_t tiles = (m + BM - 1) / BM;
    int64_t tile = blockIdx.x;
    if (tile < tiles)
        load_a_rows<PREC>(sA0, ls, A, lda, a_words, a_aligned, tile * BM, BM, m, per_row);
    cp_async_commit();
    float acc[MT][8][4];
    for (int buf = 0; tile < tiles; tile += gridDim.x, buf ^= 1) {
        const int64_t nt_ = tile + gridDim.x;
        cp_async_wait<0>();
        __syncthreads();
        if (nt_ < tiles) {
            uint32_t *dst = sA0 + (buf ^ 1) * BM * ls;
            load_a_rows<PREC>(dst, ls, A, lda, a_words, a_aligned, nt_ * BM, BM, m, per_row);
        }
        cp_async_commit();
        const int64_t rbase = tile * BM + warp * WR + lane;
        int old[RPL];
        float2 xs[RPL];
#pragma unroll
        for (int q = 0; q < RPL; q++) {
            old[q] = rbase + 32 * q < m ? labels[rbase + 32 * q] : 0;
            xs[q] = km_row_stat(T, rbase + 32 * q < m, rbase + 32 * q);
        }
        acc_zero(acc);
        warp_mma<PREC, PREC == FLI_PREC_TF32>(acc, sA0 + buf * BM * ls + warp * WR * ls, ls, sB, ls, kw / 8);
        float f1[MT][2], f2[MT][2];
        int g1[MT][2];
        c64_fold<MT>(acc, cnorm, alpha, f1, f2, g1);
        float v1[RPL], v2[RPL];
        int i1[RPL], i2[RPL];
        bool tie[RPL];
        c64_rows<MT>(f1, f2, g1, v1, v2, i1);
#pragma unroll
        for (int q = 0; q < RPL; q++) i2[q] = 0;
        bool any = false;
#pragma unroll
        for (int q = 0; q < RPL; q++) {
            const int64_t row = rbase + 32 * q;
            tie[q] = row < m && T.on && km_near_tie(T, xs[q], rho_c, cmax, v1[q], v2[q]);
            any |= tie[q];
        }
        if (__any_sync(KM_FULL, any)) c64_rows_second<MT>(acc, f2, g1, i2);
        int changed = 0;
#pragma unroll
        for (int q = 0; q < RPL; q++) {
            const int64_t row = rbase + 32 * q;
            changed += km_row_done_tie(T, row < m, tie[q], row, i1[q], i2[q], old[q], labels);
        }
        count_changes(changed, n_changed);
    }
    cp_async_wait<0>();
}

/* ---- the k <= 64 E-step with the M-step's sums (tf32, d <= 32) ---------- */
/* The M-step's half folded into the tf32 k <= 64 E-step: X is read from
 * memory once per iteration instead of twice (2M x 32, k = 64: the
 * separate lane-per-column M-step re-read 256 MB, ~145 of ~350 us per
 * iteration). Each warp owns its 32 rows of a tile from load to sums, so
 * the loop has no block barrier: the warp waits for its own rows, runs the
 * products, then at once starts the copy of its rows of the next tile into
 * the same shared rows (one buffer: the per-warp sums take the second's
 * room, and two blocks per SM still fit), folds, settles near ties in the
 * warp (c64_rescore_warp), and adds its rows into its copy of the k x d
 * sums, reading them again from global memory (an L2 hit: fetched moments
 * ago). */
typedef struct km_c64_acc {
    const float *w;  /* row weights or NULL (all 1)                           */
    float *acc_part; /* per block: k x (d+2) (sums, weight, 0), as k_acc_lane */
    double *part;    /* per block: objective partial (0: not computed here)  */
    int d, k;
} km_c64_acc;

#define C64A_BM 256 /* rows per block tile: 8 warps x 32 */

/* Near-tied rows of a warp (each lane holds one row, i1 its approximate
 * winner): re-scored here exactly as k_tie_rescore does (km_rescore_group,
 * groups of KM_RS_G lanes, 32 / KM_RS_G rows a pass), so labels leave the
 * kernel final and the sums can be taken at once. */
__device__ __forceinline__ int c64_rescore_warp(const km_tie &T, bool tie, int64_t row0, int i1, int i2) {
    const unsigned tm = __ballot_sync(KM_FULL, tie);
    int lab = i1;
    if (!tm) return lab;
    constexpr int RPP = 32 / KM_RS_G; /* rows per pass */
    const int lane = threadIdx.x & 31, grp = lane / KM_RS_G, n = __popc(tm);
    const int rank = __popc(tm & ((1u << lane) - 1u));
    if (lane == 0 && T.n_rescored) atomicAdd(T.n_rescored, (unsigned long long)n);
    for (int p = 0; p < n; p += RPP) {
        /* group grp takes the tied lane of rank p + grp (past the last:
         * the first tied lane again, its result unused) */
        unsigned rem = tm;
        for (int q = 0; q < p + grp && rem; q++) rem &= rem - 1u;
        const int sl = rem ? __ffs(rem) - 1 : __ffs(tm) - 1;
        const int a = __shfl_sync(KM_FULL, i1, sl), b = __shfl_sync(KM_FULL, i2, sl);
        const int f = km_rescore_group(T.x + (row0 + sl) * T.ldx, T.C + (int64_t)a * T.ldc,
                                       T.C + (int64_t)b * T.ldc, T.d, T.xvec, T.euclid, a, b);
        const int got = __shfl_sync(KM_FULL, f, ((rank - p) & (RPP - 1)) * KM_RS_G);
        if (tie && rank >= p && rank < p + RPP) lab = got;
    }
    return lab;
}

/* A warp's 32 rows (d <= 32 words each, zero to 32) into its shared rows.
 * D = 8, 16 or 32: rows of D words, 16-byte aligned (a_aligned and a_words
 * == D), whole tiles at a fixed pattern: piece q = lane + 32 i of the
 * tile's 32 x D / 4 pieces; the words from D to 32 are zero from the start
 * and never written. D = 0: any layout, piece by piece with bounds. */
template <int D>
__device__ __forceinline__ void c64a_load_rows(uint32_t *dst, int ls, const uint32_t *__restrict__ A, int64_t lda,
                                               int a_words, int a_aligned, int64_t row0, int64_t m) {
    const int lane = threadIdx.x & 31;
    if (D && row0 + 32 <= m) {
        constexpr int P = D ? D / 4 : 1; /* pieces per row */
#pragma unroll
        for (int i = 0; i < P; i++) {
            const int q = lane + 32 * i, r = q / P, c = (q % P) * 4;
            cp_async16(dst + r * ls + c, A + (row0 + r) * lda + c, 16);
        }
        return;
    }
    const int c = (lane & 7) * 4;
#pragma unroll
    for (int r = lane >> 3; r < 32; r += 4)
        load_a16<FLI_PREC_TF32>(dst + r * ls + c, A, lda, a_words, a_aligned, row0 + r, m, c);
}

template <int D>
__global__ void __launch_bounds__(256, 2)
    k_estep_c64_acc(const uint32_t *__restrict__ A, int64_t lda, int a_words, int a_aligned, int64_t m,
                    const uint32_t *__restrict__ B, int64_t ldb, const float *__restrict__ cnorm, float alpha,
                    int32_t *__restrict__ labels, int32_t *n_changed, const km_tie T, const int32_t *done,
                    const km_c64_acc Q) {
    if (done && *done) return;
    constexpr int ls = 36; /* 32 words + 4 */
    extern __shared__ __align__(16) uint32_t smem[];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const float rho_c = T.on ? T.cb[0] : 0.f, cmax = T.on ? T.cb[1] : 0.f;
    uint32_t *sB = smem;                               /* 64 x ls                   */
    uint32_t *sA = smem + 64 * ls + warp * 32 * ls;    /* this warp's 32 x ls rows  */
    float *sacc = (float *)(smem + 64 * ls + C64A_BM * ls);
    const int d = Q.d, k = Q.k, kd = k * 32;
    /* 8 copies of k x 32 (columns past d unused), then 8 of k */
    float *sw = sacc + warp * kd, *swt = sacc + 8 * kd + warp * k;
    /* dense rows (lda == D): the sums' loads at fixed offsets */
    const bool dense = D && lda == D;
    for (int e = tid; e < 8 * (kd + k); e += 256) sacc[e] = 0.f;
    if (D && D < 32)
        for (int e = lane; e < 32 * (ls - D); e += 32) sA[(e / (ls - D)) * ls + D + e % (ls - D)] = 0u;
    for (int e = tid; e < 64 * 8; e += 256) {
        const int r = e >> 3, cw = (e & 7) * 4;
        cp_async16(sB + r * ls + cw, B + (int64_t)r * ldb + cw, 16);
    }
    const int64_t tiles = (m + C64A_BM - 1) / C64A_BM;
    int64_t tile = blockIdx.x;
    if (tile < tiles) c64a_load_rows<D>(sA, ls, A, lda, a_words, a_aligned, tile * C64A_BM + warp * 32, m);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads(); /* the centres (and the zeroed sums) */
    const int col = lane < d ? lane : 0;
    float acc[2][8][4];
    for (; tile < tiles; tile += gridDim.x) {
        const int64_t row0 = tile * C64A_BM + warp * 32, row = row0 + lane;
        cp_async_wait<0>();
        __syncwarp();
        const int old = row < m ? labels[row] : 0;
        const float2 xs = km_row_stat(T, row < m, row);
        const float wl = row < m ? (Q.w ? Q.w[row] : 1.f) : 0.f;
        acc_zero(acc);
        warp_mma<FLI_PREC_TF32, true>(acc, sA, ls, sB, ls, 4);
        __syncwarp(); /* every lane's fragment loads done: the rows may go */
        if (tile + gridDim.x < tiles)
            c64a_load_rows<D>(sA, ls, A, lda, a_words, a_aligned, row0 + (int64_t)gridDim.x * C64A_BM, m);
        cp_async_commit();
        float f1[2][2], f2[2][2];
        int g1[2][2];
        c64_fold<2>(acc, cnorm, alpha, f1, f2, g1);
        /* lane L: the warp's row L */
        float v1[1], v2[1];
        int i1[1], i2[1] = {0};
        c64_rows<2>(f1, f2, g1, v1, v2, i1);
        const bool tie = row < m && T.on && km_near_tie(T, xs, rho_c, cmax, v1[0], v2[0]);
        if (__any_sync(KM_FULL, tie)) c64_rows_second<2>(acc, f2, g1, i2);
        /* the rows again for the sums (lane j: column j, 0 past d and m),
         * in flight while the ties are settled: dense full tiles at fixed
         * offsets from one address */
        float xv[32];
        if (dense && row0 + 32 <= m) {
            const uint32_t *p = A + row0 * D + (lane < D ? lane : 0);
#pragma unroll
            for (int r = 0; r < 32; r++) xv[r] = lane < D ? __uint_as_float(__ldcg(p + r * D)) : 0.f;
        } else {
            const uint32_t *p = A + row0 * lda + col;
            const int nr = m - row0 < 32 ? (int)(m - row0) : 32;
#pragma unroll
            for (int r = 0; r < 32; r++, p += lda) xv[r] = r < nr && lane < d ? __uint_as_float(__ldcg(p)) : 0.f;
        }
        const int lab = c64_rescore_warp(T, tie, row0, i1[0], i2[0]);
        int changed = 0;
        if (row < m) {
            labels[row] = lab;
            changed = old != lab;
        }
        count_changes(changed, n_changed);
        /* sums: lane j adds column j of the warp's rows in row order (rows
         * past m add x 0 and weight 0; lanes past d add 0 to a pad column).
         * Each lane shuffles its row's cluster row offset, not the label.
         * Unweighted, w * x is x (fmaf(1, x, s) == x + s) and the weights
         * are counts, exact in any order: one add per distinct cluster. */
        const int coff = lab * 32;
        if (Q.w) {
#pragma unroll
            for (int r = 0; r < 32; r++) {
                const int o = __shfl_sync(KM_FULL, coff, r);
                const float wr = __shfl_sync(KM_FULL, wl, r);
                sw[o + lane] = fmaf(wr, xv[r], sw[o + lane]);
                if (lane == 31) swt[o >> 5] += wr;
            }
        } else {
#pragma unroll
            for (int r = 0; r < 32; r++) {
                const int o = __shfl_sync(KM_FULL, coff, r);
                sw[o + lane] += xv[r];
            }
            const unsigned peers = __match_any_sync(KM_FULL, lab);
            if (row < m && lane == __ffs(peers) - 1) {
                /* rows past m are the tile's last lanes: count this lane's
                 * valid peers only */
                const unsigned valid = m - row0 >= 32 ? KM_FULL : (1u << (m - row0)) - 1u;
                swt[lab] += (float)__popc(peers & valid);
            }
        }
    }
    cp_async_wait<0>();
    /* the block's partial: warp copies added in warp order. Rows meet warps
     * and blocks as in k_acc_lane (tile t of 256 rows: block t % grid, warp
     * w its rows 32w..32w+31; the same grid, min(tiles, FLI_KM_ACC_BLOCKS)
     * where the lane M-step fits two blocks per SM) and every sum is taken
     * in the same order, so a fit matches the separate kernels' bit for bit
     * (module_check case_tune checks it) */
    __syncthreads();
    const int ld = d + 2;
    float *dst = Q.acc_part + (int64_t)blockIdx.x * k * ld;
    for (int e = tid; e < k * ld; e += 256) {
        const int c = e / ld, j = e - c * ld;
        float v = 0.f;
        if (j < d) {
            v = sacc[c * 32 + j];
            for (int q = 1; q < 8; q++) v += sacc[q * kd + c * 32 + j];
        } else if (j == d) {
            v = sacc[8 * kd + c];
            for (int q = 1; q < 8; q++) v += sacc[8 * kd + q * k + c];
        }
        dst[e] = v;
    }
    if (tid == 0) Q.part[blockIdx.x] = 0.0;
}

int km_estep_acc_ok(fli_cuda_env *env, const fli_kmeans_cuda_plan *p, fli_precision prec) {
    return fli_kmeans_eacc(p, prec, fli_state(env)->smem_per_sm) &&
           !(env->km_tune & (1 | 2 | 256 | 1024 | 2048));
}

fl_status km_estep_acc(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d, int64_t dp,
                       const void *ctc, const float *cnorm, int64_t k, fli_metric metric, int32_t *labels,
                       int32_t *n_changed, const km_tie *tie, float *acc_part, double *part, int *nblk,
                       const int32_t *done) {
    *nblk = 0;
    if (r->m <= 0) return FL_STATUS_OK;
    km_tie T;
    memset(&T, 0, sizeof T);
    if (tie) T = *tie;
    const km_c64_acc Q = {r->w, acc_part, part, (int)d, (int)k};
    const size_t smem = (size_t)FLI_KM_EACC_SMEM(k);
    int64_t grid = fli_ceil_div(r->m, C64A_BM);
    if (grid > 2 * fli_state(env)->sm_count) grid = 2 * fli_state(env)->sm_count;
    if (grid > FLI_KM_ACC_BLOCKS) grid = FLI_KM_ACC_BLOCKS; /* acc_part's slices */
    /* the fixed-pattern row loads for 16-byte aligned rows of 32 words (any
     * stride), or of 16 or 8 words packed (lda == d) */
    const int D = !r->x_aligned ? 0 : d == 32 ? 32 : (d == 16 || d == 8) && r->ldx == d ? (int)d : 0;
    const void *fn = D == 32   ? (const void *)k_estep_c64_acc<32>
                     : D == 16 ? (const void *)k_estep_c64_acc<16>
                     : D == 8  ? (const void *)k_estep_c64_acc<8>
                               : (const void *)k_estep_c64_acc<0>;
    const uint32_t *A = (const uint32_t *)r->x, *Bc = (const uint32_t *)ctc;
    int64_t lda = r->ldx, m = r->m, ldb = dp;
    int a_words = (int)d, a_aligned = r->x_aligned;
    float alpha = km_alpha(metric);
    int32_t *lab = labels + r->row0;
    void *args[] = {(void *)&A,     (void *)&lda, (void *)&a_words,   (void *)&a_aligned, (void *)&m,
                    (void *)&Bc,    (void *)&ldb, (void *)&cnorm,     (void *)&alpha,     (void *)&lab,
                    (void *)&n_changed, (void *)&T, (void *)&done, (void *)&Q};
    FLI_CUDA_TRY(env, cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    FLI_CUDA_TRY(env, cudaLaunchKernel(fn, dim3((unsigned)grid), dim3(256), args, smem, s));
    *nblk = (int)grid;
    return FL_STATUS_OK;
}

/* Largest resident row (words) of the X-stationary kernel. */
#define MMA_RES_MAX_KW 160

template <int PREC>
static fl_status launch_mma(fli_cuda_env *env, cudaStream_t s, const uint32_t *A, int64_t lda,
                            int a_words, int a_aligned, int64_t m, int kw, const uint32_t *B,
                            int64_t ldb, const float *cnorm, int k, int kp, float alpha, int32_t *lab,
                            int32_t *n_changed, const km_tie &T, const int32_t *done) {
    const int64_t tiles = fli_ceil_div(m, MMA_BM);
    const size_t cres = ((size_t)(kp + 2 * MMA_BM) * (kw + 4) + RED_WORDS) * 4;
    const size_t c64 = (size_t)(64 + 2 * C64_BM(4)) * (kw + 4) * 4;
    const size_t c64s = (size_t)(64 + 2 * C64_BM(2)) * (kw + 4) * 4;
    /* two blocks per SM need 2 x c64s within the SM's shared memory */
    if (k <= 64 && !(env->km_tune & 256) && 2 * (c64s + 1024) <= (size_t)fli_state(env)->smem_per_sm) {
        int sms = fli_state(env)->sm_count;
        int64_t t64 = fli_ceil_div(m, C64_BM(2));
        int64_t grid = t64 < 2 * sms ? t64 : 2 * sms;
        FLI_CUDA_TRY(env, cudaFuncSetAttribute(k_estep_mma_c64<PREC, 2>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, (int)c64s));
        k_estep_mma_c64<PREC, 2><<<(unsigned)grid, 256, c64s, s>>>(A, lda, a_words, a_aligned, m, kw, B, ldb,
                                                                   cnorm, alpha, lab, n_changed, T, done);
    } else if (k <= 64 && c64 <= MMA_SMEM_MAX) {
        int sms = fli_state(env)->sm_count;
        int64_t t64 = fli_ceil_div(m, C64_BM(4));
        int64_t grid = t64 < sms ? t64 : sms;
        FLI_CUDA_TRY(env, cudaFuncSetAttribute(k_estep_mma_c64<PREC, 4>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, (int)c64));
        k_estep_mma_c64<PREC, 4><<<(unsigned)grid, 256, c64, s>>>(A, lda, a_words, a_aligned, m, kw, B, ldb,
                                                                   cnorm, alpha, lab, n_changed, T, done);
    } else if (cres <= MMA_SMEM_MAX && kp * (int64_t)kw <= 512 * 64) {
        int sms = fli_state(env)->sm_count;
        int64_t grid = tiles < sms ? tiles : sms;
        FLI_CUDA_TRY(env, cudaFuncSetAttribute(k_estep_mma_cres<PREC>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, (int)cres));
        k_estep_mma_cres<PREC><<<(unsigned)grid, 256, cres, s>>>(A, lda, a_words, a_aligned, m, kw, B,
                                                                 ldb, cnorm, kp, alpha, lab, n_changed,
                                                                 T, done);
    } else if (kw <= MMA_RES_MAX_KW) {
        int smem = (MMA_BM * (kw + 4) + MMA_STAGES * MMA_BN * MMA_LDS) * 4;
        FLI_CUDA_TRY(env, cudaFuncSetAttribute(k_estep_mma<PREC, true>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        k_estep_mma<PREC, true><<<(unsigned)tiles, 256, smem, s>>>(A, lda, a_words, a_aligned, m, kw, B,
                                                                   ldb, cnorm, kp, alpha, lab,
                                                                   n_changed, T, done);
    } else {
        FLI_CUDA_TRY(env, cudaFuncSetAttribute(k_estep_mma<PREC, false>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, MMA_SMEM));
        k_estep_mma<PREC, false><<<(unsigned)tiles, 256, MMA_SMEM, s>>>(
            A, lda, a_words, a_aligned, m, kw, B, ldb, cnorm, kp, alpha, lab, n_changed, T, done);
    }
    FLI_LAUNCH_TRY(env, "k_estep_mma");
    return km_tie_rescore(env, s, &T, lab, n_changed, m, (fli_precision)PREC, done);
}

fl_status km_estep(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d, const float *C,
                   int64_t dp, const void *ctc, int64_t dh, const float *cnorm, int64_t k,
                   int64_t kp, fli_metric metric, fli_precision prec, int32_t *labels,
                   int32_t *n_changed, const km_tie *tie, const int32_t *done) {
    if (r->m <= 0) return FL_STATUS_OK;
    float alpha = km_alpha(metric);
    int32_t *lab = labels + r->row0;
    km_tie T;
    memset(&T, 0, sizeof T);
    if (tie) T = *tie;
    if (prec == FLI_PREC_FP32) {
        int64_t blocks = fli_ceil_div(r->m, S_BM);
        k_simt<0><<<(unsigned)blocks, 256, 0, s>>>(r->x, r->ldx, r->m, (int)d, C, dp, cnorm,
                                                   (int)kp, (int)k, alpha, lab, n_changed, done,
                                                   NULL, 0, (int)metric);
        FLI_LAUNCH_TRY(env, "k_simt<argmin>");
        return FL_STATUS_OK;
    }
    if (prec == FLI_PREC_TF32)
        return launch_mma<FLI_PREC_TF32>(env, s, (const uint32_t *)r->x, r->ldx, (int)d, r->x_aligned,
                                         r->m, (int)dp, (const uint32_t *)ctc, dp, cnorm, (int)k, (int)kp,
                                         alpha, lab, n_changed, T, done);
    if (prec != FLI_PREC_BF16 && prec != FLI_PREC_FP16)
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "km_estep", "precision not supported on CUDA");
    if (!r->xh) return FLI_FAIL(env, FL_STATUS_INTERNAL, "km_estep", "no 16-bit copy of X");
    if (prec == FLI_PREC_BF16)
        return launch_mma<FLI_PREC_BF16>(env, s, (const uint32_t *)r->xh, dh / 2, (int)(dh / 2), 1,
                                         r->m, (int)(dh / 2), (const uint32_t *)ctc, dh / 2, cnorm,
                                         (int)k, (int)kp, alpha, lab, n_changed, T, done);
    return launch_mma<FLI_PREC_FP16>(env, s, (const uint32_t *)r->xh, dh / 2, (int)(dh / 2), 1, r->m,
                                     (int)(dh / 2), (const uint32_t *)ctc, dh / 2, cnorm, (int)k, (int)kp,
                                     alpha, lab, n_changed, T, done);
}

fl_status km_transform(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d,
                       const float *C, int64_t dp, int64_t k, fli_metric metric, float *out,
                       int64_t ldo) {
    if (r->m <= 0) return FL_STATUS_OK;
    int64_t blocks = fli_ceil_div(r->m, S_BM);
    int64_t kp = fli_ceil_div(k, S_BN) * S_BN;
    if (metric == FLI_METRIC_EUCLIDEAN)
        k_simt<2><<<(unsigned)blocks, 256, 0, s>>>(r->x, r->ldx, r->m, (int)d, C, dp, NULL, (int)kp,
                                                   (int)k, 1.f, NULL, NULL, NULL, out, ldo,
                                                   (int)metric);
    else
        k_simt<1><<<(unsigned)blocks, 256, 0, s>>>(r->x, r->ldx, r->m, (int)d, C, dp, NULL, (int)kp,
                                                   (int)k, 1.f, NULL, NULL, NULL, out, ldo,
                                                   (int)metric);
    FLI_LAUNCH_TRY(env, "k_simt<transform>");
    return FL_STATUS_OK;
}

#ifndef FL_HAVE_SM90
/* Built without the sm_90a kernels: the Hopper E-step is never chosen. */
int km_sm90_built(void) { return 0; }
int km_sm90_tf32_ok(const km_rows *r) { return 0; }
fl_status km_estep_sm90(fli_cuda_env *env, cudaStream_t s, const km_rows *r, const void *ctc, int64_t d,
                        int64_t dh, int64_t dp, const float *cnorm, int64_t kp, fli_metric metric,
                        fli_precision prec, int32_t *labels, int32_t *n_changed,
                        const km_tie *tie, const int32_t *done) {
    return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "km_estep_sm90", "built without sm_90a kernels");
}
#endif
