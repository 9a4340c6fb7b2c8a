/*
 * knn_dev.cuh — device pieces shared by the exact kNN kernels: 64-bit
 * candidate keys, the warp-held sorted list, the exact fp32 distance and
 * the block's per-query candidate state (threshold, append buffer, top
 * list) with its fold of a finished 128 x 128 score tile.
 *
 * Keys. A candidate is one uint64: the high word is the score's float bits
 * made order-preserving as unsigned (ord()), the low word the database
 * index. Comparing keys as integers orders by score, then by ascending
 * index — exactly the contract's order — so every merge and sort below is
 * one integer compare, and no two candidates of a query share a key.
 * KNN_EMPTY (all ones) sorts after every real key (the module needs n_db <
 * 2^32 - 1, checked on the host).
 */
#ifndef FL_KNN_DEV_CUH
#define FL_KNN_DEV_CUH

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "algo/knn_job.h"

#define KNN_FULL 0xffffffffu
#define KNN_EMPTY 0xffffffffffffffffull
#define KNN_BM 128 /* queries per block                              */
#define KNN_BN 128 /* database rows per tile                         */
#define KNN_CB 32  /* per-query append buffer of a block (candidates) */

static __device__ __forceinline__ uint32_t knn_ord(float f) {
    const uint32_t u = __float_as_uint(f);
    return u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u);
}
static __device__ __forceinline__ float knn_unord(uint32_t u) {
    return __uint_as_float((u & 0x80000000u) ? (u ^ 0x80000000u) : ~u);
}
static __device__ __forceinline__ uint64_t knn_key(float s, uint32_t idx) {
    return ((uint64_t)knn_ord(s) << 32) | idx;
}
static __device__ __forceinline__ float knn_key_score(uint64_t k) { return knn_unord((uint32_t)(k >> 32)); }

/* ---- the warp-held sorted list ----------------------------------------- */
/* 32 R keys, ascending, lane l holds positions l R .. l R + R - 1. Insert x
 * (smaller than the current last, distinct from every key held): position
 * p = first key above x takes x, every key from p on moves up one slot
 * (the last falls off). Keys from lane l - 1 arrive by one shuffle. */
template <int R>
static __device__ __forceinline__ void wl_insert(uint64_t (&reg)[R], uint64_t x) {
    const int lane = threadIdx.x & 31;
    const uint64_t prev = __shfl_up_sync(KNN_FULL, reg[R - 1], 1);
#pragma unroll
    for (int i = R - 1; i >= 0; i--) {
        const uint64_t below = i > 0 ? reg[i - 1] : prev;
        const bool first = i == 0 && lane == 0;
        if (reg[i] > x) reg[i] = (first || below < x) ? x : below;
    }
}
template <int R>
static __device__ __forceinline__ uint64_t wl_last(const uint64_t (&reg)[R]) {
    return __shfl_sync(KNN_FULL, reg[R - 1], 31);
}
/* Inserts the n keys src[0..n) (any order, any memory) that beat the list's
 * last; 32 are read at a time, one per lane, and only those below `last`
 * are walked one by one. Whole warp. */
template <int R>
static __device__ __forceinline__ void wl_insert_all(uint64_t (&reg)[R], uint64_t &last, const uint64_t *src,
                                                     int n) {
    const int lane = threadIdx.x & 31;
    for (int e0 = 0; e0 < n; e0 += 32) {
        const uint64_t v = e0 + lane < n ? src[e0 + lane] : KNN_EMPTY;
        unsigned m = __ballot_sync(KNN_FULL, v < last);
        while (m) {
            const int s = __ffs(m) - 1;
            m &= m - 1;
            const uint64_t x = __shfl_sync(KNN_FULL, v, s);
            if (x < last) {
                wl_insert<R>(reg, x);
                last = wl_last<R>(reg);
            }
        }
    }
}

/* ---- exact fp32 distance ------------------------------------------------ */
/* The value a result is ranked and reported by, from the fp32 rows
 * themselves (direct differences, never the GEMM form), accumulated in
 * element order so the same pair always gives the same bits. For INNER the
 * rank value is -<q, x> (the caller negates it back). */
static __device__ __forceinline__ float knn_exact(const float *__restrict__ q, const float *__restrict__ x, int d,
                                                  int vec, int metric, float p) {
    float s = 0.f, qq = 0.f, xx = 0.f;
    int j = 0;
#define KNN_ACC(a, b)                                             \
    do {                                                          \
        const float a_ = (a), b_ = (b);                           \
        if (metric == FLI_KNN_SQEUCLIDEAN || metric == FLI_KNN_EUCLIDEAN) { \
            const float t_ = a_ - b_;                             \
            s = fmaf(t_, t_, s);                                  \
        } else if (metric == FLI_KNN_MANHATTAN) {                 \
            s += fabsf(a_ - b_);                                  \
        } else if (metric == FLI_KNN_MINKOWSKI) {                 \
            s += powf(fabsf(a_ - b_), p);                         \
        } else {                                                  \
            s = fmaf(a_, b_, s);                                  \
            qq = fmaf(a_, a_, qq);                                \
            xx = fmaf(b_, b_, xx);                                \
        }                                                         \
    } while (0)
    if (vec) {
        for (; j + 4 <= d; j += 4) {
            const float4 a = *(const float4 *)(q + j), b = __ldg((const float4 *)(x + j));
            KNN_ACC(a.x, b.x);
            KNN_ACC(a.y, b.y);
            KNN_ACC(a.z, b.z);
            KNN_ACC(a.w, b.w);
        }
    }
    for (; j < d; j++) KNN_ACC(q[j], __ldg(x + j));
#undef KNN_ACC
    switch (metric) {
    case FLI_KNN_EUCLIDEAN: return sqrtf(s);
    case FLI_KNN_INNER: return -s;
    case FLI_KNN_COSINE: return (qq > 0.f && xx > 0.f) ? 1.f - s / (sqrtf(qq) * sqrtf(xx)) : 1.f;
    case FLI_KNN_MINKOWSKI: return powf(s, 1.f / p);
    default: return s;
    }
}

/* ---- per-block candidate state ------------------------------------------ */
/* For each of the block's KNN_BM queries: thr (the score a new candidate
 * must beat: the top list's last, +inf while it has fewer than KP, -inf for
 * rows past the end), cnt + buf (candidates appended since the last merge)
 * and the top list itself (KP sorted keys, in shared memory when it fits,
 * else in this block's slice of the output). */
struct knn_block_state {
    float *thr;
    int *cnt;
    uint64_t *buf; /* KNN_BM x KNN_CB */
    uint64_t *top; /* KNN_BM rows, stride top_ld */
    int64_t top_ld;
};

/* Merges row r's buffer into its top list and resets the buffer. Whole
 * warp. */
template <int R>
static __device__ __forceinline__ void knn_merge_row(const knn_block_state &S, int r) {
    const int lane = threadIdx.x & 31;
    uint64_t *top = S.top + (int64_t)r * S.top_ld;
    uint64_t reg[R];
#pragma unroll
    for (int i = 0; i < R; i++) reg[i] = top[lane * R + i];
    uint64_t last = wl_last<R>(reg);
    const int n = min(S.cnt[r], KNN_CB);
    wl_insert_all<R>(reg, last, S.buf + r * KNN_CB, n);
#pragma unroll
    for (int i = 0; i < R; i++) top[lane * R + i] = reg[i];
    __syncwarp();
    if (lane == 0) {
        S.cnt[r] = 0;
        if (S.thr[r] != -INFINITY) S.thr[r] = last == KNN_EMPTY ? INFINITY : knn_key_score(last);
    }
}

/* Folds a finished tile into the block's candidate state. v[i][j]: this
 * thread's dot products (or SIMT distances) for block rows rr[i] and tile
 * columns cc[j]; the score is ab.x * v + ab.y (ab per database row: the
 * GEMM form's -2 and ||x||^2, the cosine's -1/||x||, or 1 and 0), +inf for
 * padding rows. Most scores fail the threshold test in registers; the rest
 * are appended to their query's buffer with a shared atomic. A full buffer
 * is merged (whole block, after a barrier) and the leftovers retried
 * against the new threshold, so nothing is lost and the result equals a
 * sequential scan. Whole block; ends with the thresholds reloaded. */
template <int R>
static __device__ __forceinline__ void knn_fold(float (&v)[8][8], const int (&rr)[8], const int (&cc)[8],
                                                float (&thr)[8], const uint32_t (&selfc)[8], int col0,
                                                const float2 *__restrict__ ab, uint32_t base,
                                                const knn_block_state &S) {
    float2 abv[8];
#pragma unroll
    for (int j = 0; j < 8; j++) abv[j] = __ldg(ab + col0 + cc[j]);
    /* the common case: one FFMA and one compare per score, no mask kept;
     * appended (or excluded) scores are set to +inf in place */
    bool any = false;
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const float s = fmaf(abv[j].x, v[i][j], abv[j].y);
            v[i][j] = s;
            any |= s < thr[i];
        }
    for (;;) {
        bool ovf = false;
        if (any) {
            any = false;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const int r = rr[i];
                const float t = S.thr[r];
#pragma unroll
                for (int j = 0; j < 8; j++)
                    if (v[i][j] < t) {
                        const uint32_t col = base + (uint32_t)(col0 + cc[j]);
                        if (col == selfc[i]) {
                            v[i][j] = INFINITY;
                            continue;
                        }
                        const int pos = atomicAdd(S.cnt + r, 1);
                        if (pos < KNN_CB) {
                            S.buf[r * KNN_CB + pos] = knn_key(v[i][j], col);
                            v[i][j] = INFINITY;
                        } else {
                            ovf = true;
                        }
                    }
            }
            any = ovf;
        }
        if (!__syncthreads_or(ovf)) break;
        const int warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
        for (int r = warp; r < KNN_BM; r += nw)
            if (S.cnt[r] >= KNN_CB) knn_merge_row<R>(S, r);
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 8; i++) thr[i] = S.thr[rr[i]];
}

/* Block start: empty lists, thresholds (-inf past the m valid rows). */
template <int R>
static __device__ __forceinline__ void knn_state_init(const knn_block_state &S, int64_t row0, int64_t m) {
    for (int r = threadIdx.x; r < KNN_BM; r += blockDim.x) {
        S.cnt[r] = 0;
        S.thr[r] = row0 + r < m ? INFINITY : -INFINITY;
    }
    for (int e = threadIdx.x; e < KNN_BM * 32 * R; e += blockDim.x) {
        const int r = e / (32 * R), c = e - r * 32 * R;
        S.top[(int64_t)r * S.top_ld + c] = KNN_EMPTY;
    }
    __syncthreads();
}

/* Block end: the buffers merged; the lists copied to out (rows stride
 * out_ld) when they were kept in shared memory. */
template <int R>
static __device__ __forceinline__ void knn_state_finish(const knn_block_state &S, uint64_t *out, int64_t out_ld,
                                                        bool top_in_smem) {
    __syncthreads();
    const int warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int r = warp; r < KNN_BM; r += nw)
        if (S.cnt[r] > 0) knn_merge_row<R>(S, r);
    __syncthreads();
    if (top_in_smem)
        for (int e = threadIdx.x; e < KNN_BM * 32 * R; e += blockDim.x) {
            const int r = e / (32 * R), c = e - r * 32 * R;
            out[(int64_t)r * out_ld + c] = S.top[(int64_t)r * S.top_ld + c];
        }
}

#endif
