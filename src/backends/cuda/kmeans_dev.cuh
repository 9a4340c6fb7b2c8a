/*
 * kmeans_dev.cuh — device helpers shared by the KMeans kernel files:
 * cp.async, tensor-core fragments (mma.sync, ldmatrix), tf32 rounding, the
 * argmin merge rule (ties to the lower index), change counting, the
 * per-element objective and fixed-order block sums.
 */
#ifndef FL_KMEANS_DEV_CUH
#define FL_KMEANS_DEV_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "algo/kmeans_job.h"
#include "backends/cuda/kmeans_cuda.cuh"

#define KM_FULL 0xffffffffu

static __device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

static __device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(src_bytes));
}
static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
static __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

static __device__ __forceinline__ uint32_t to_tf32(float x) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

/* x as the tensor cores see it in precision prec (fp32: x itself).
 * KM_TF32_TRUNC: fp32 bits read as tf32 (the Hopper tf32 E-step's X), the
 * low 13 mantissa bits dropped: its error bounds a rounded one's too. */
#define KM_TF32_TRUNC 100
static __device__ __forceinline__ float km_round(float x, int prec) {
    if (prec == KM_TF32_TRUNC) return __uint_as_float(__float_as_uint(x) & 0xffffe000u);
    if (prec == FLI_PREC_TF32) return __uint_as_float(to_tf32(x));
    if (prec == FLI_PREC_BF16) return __bfloat162float(__float2bfloat16_rn(x));
    if (prec == FLI_PREC_FP16) return __half2float(__float2half_rn(x));
    return x;
}
/* *a = max(*a, v) for v >= 0 (non-negative floats order as their bits):
 * the result does not depend on the order of the calls. */
static __device__ __forceinline__ void km_atomic_fmax(float *a, float v) {
    atomicMax((int *)a, __float_as_int(fmaxf(v, 0.f)));
}

template <int PREC>
static __device__ __forceinline__ void mma_tile(float *c, const uint32_t *a, const uint32_t *b) {
    if (PREC == FLI_PREC_TF32) {
        asm volatile(
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else if (PREC == FLI_PREC_BF16) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
}

static __device__ __forceinline__ void ldsm_x4(uint32_t *r, const uint32_t *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

static __device__ __forceinline__ void argmin_merge(float &v, int &ix, float ov, int oi) {
    if (ov < v || (ov == v && oi < ix)) {
        v = ov;
        ix = oi;
    }
}

/* One atomic per warp with a change, never one per point. The whole warp
 * must call it. */
static __device__ __forceinline__ void count_changes(int changed, int32_t *n_changed) {
    unsigned b = __ballot_sync(KM_FULL, changed);
    if (n_changed && (threadIdx.x & 31) == 0 && b) atomicAdd(n_changed, __popc(b));
}

/* Objective of x against centre c (fp32 accumulation, per lane partial). */
static __device__ __forceinline__ float obj_term(float x, float c, int metric) {
    if (metric == FLI_METRIC_EUCLIDEAN) {
        float t = x - c;
        return t * t;
    }
    return x * c;
}
static __device__ __forceinline__ float obj_final(float s, int metric) {
    if (metric == FLI_METRIC_EUCLIDEAN) return s;
    if (metric == FLI_METRIC_COSINE) return 1.f - s;
    return -s;
}

/* Block sum of one double per thread; result valid in thread 0. */
static __device__ __forceinline__ double block_sum(double v, double *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(KM_FULL, v, o);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    double t = 0;
    if (threadIdx.x == 0)
        for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += sh[w];
    return t;
}

/* Element offset of (row r, column j) in the Hopper operand image of a
 * 16-bit matrix with `cols` columns (a multiple of 64) cut into tiles of R
 * rows: per tile, per 64-column block, R rows of 128 bytes whose 16-byte
 * chunks are XOR-swizzled by (row & 7) — the layout wgmma reads with
 * 128-byte swizzling and that TMA's SWIZZLE_128B writes. */
static __host__ __device__ __forceinline__ int64_t sm90_img_index(int64_t r, int64_t j, int64_t cols,
                                                                  int64_t R) {
    int64_t tile = r / R, rr = r - tile * R;
    int64_t kb = j >> 6, jj = j & 63;
    int64_t chunk = (jj >> 3) ^ (rr & 7);
    return tile * R * cols + kb * R * 64 + rr * 64 + chunk * 8 + (jj & 7);
}

/* ------------------------------------------------------------------------ */
/* Top-2 scores and near-tie re-scoring (low-precision E-steps)             */
/* ------------------------------------------------------------------------ */
/* (a, ia) before (b, ib): smaller score, ties to the lower index. */
static __device__ __forceinline__ bool km_lt(float a, int ia, float b, int ib) {
    return a < b || (a == b && ia < ib);
}
/* (v1, i1) <= (v2, i2) and (w1, j1) <= (w2, j2): the best two of the four
 * into (v1, i1), (v2, i2). */
static __device__ __forceinline__ void km_merge2(float &v1, int &i1, float &v2, int &i2, float w1, int j1,
                                                 float w2, int j2) {
    if (km_lt(w1, j1, v1, i1)) {
        if (km_lt(v1, i1, w2, j2)) {
            v2 = v1;
            i2 = i1;
        } else {
            v2 = w2;
            i2 = j2;
        }
        v1 = w1;
        i1 = j1;
    } else if (km_lt(w1, j1, v2, i2)) {
        v2 = w1;
        i2 = j1;
    }
}
static __device__ __forceinline__ void km_shfl_merge2(float &v1, int &i1, float &v2, int &i2, int o) {
    const float w1 = __shfl_xor_sync(KM_FULL, v1, o), w2 = __shfl_xor_sync(KM_FULL, v2, o);
    const int j1 = __shfl_xor_sync(KM_FULL, i1, o), j2 = __shfl_xor_sync(KM_FULL, i2, o);
    km_merge2(v1, i1, v2, i2, w1, j1, w2, j2);
}
/* Running top-2 of one row slot after a tile whose best two scores are m1 <=
 * m2 (at columns found by the caller only when needed). Every column of the
 * tile is above every column seen before, so equal scores keep the running
 * entries first. Returns 0: tile irrelevant; 1: only m1's column is needed
 * (j1); 2: both (j1, j2). */
static __device__ __forceinline__ int km_top2_need(float m1, float m2, float b1, float b2) {
    return m1 < b2 ? (m1 < b1 && m2 < b1 ? 2 : 1) : 0;
}
static __device__ __forceinline__ void km_top2_update(float &b1, int &i1, float &b2, int &i2, float m1, int j1,
                                                      float m2, int j2, int need) {
    if (need == 0) return;
    if (m1 < b1) {
        if (need == 2) {
            b2 = m2;
            i2 = j2;
        } else {
            b2 = b1;
            i2 = i1;
        }
        b1 = m1;
        i1 = j1;
    } else {
        b2 = m1;
        i2 = j1;
    }
}

/* Does the approximate top-2 (s1 <= s2) of a row leave the exact winner in
 * doubt? The scores are computed from rounded operands, round(x) and
 * round(c_j) (bf16 / fp16 / tf32), with cnorm_j = ||round(c_j)||^2, so up to
 * fp32 accumulation error e they are ||round(x) - round(c_j)||^2 -
 * ||round(x)||^2 (euclidean) or -<round(x), round(c_j)> (dot, cosine).
 *   euclidean: every distance moves by at most r = ||round(x) - x|| +
 *     max_j ||round(c_j) - c_j|| (triangle inequality), so the winner is
 *     certain when the second distance exceeds the first by more than 2r:
 *     sqrt(s2 + |x~|^2 - e) - sqrt(s1 + |x~|^2 + e) > 2r.
 *   dot / cosine: |<x~, c~> - <x, c>| <= |x~ - x| |c~| + |x| |c~ - c|, so
 *     the winner is certain when s2 - s1 > 2 (that + e).
 * e = (K + 8) 2^-22 (max|c~|^2 + 2 |x~| max|c~| + |x~|^2) (dot: |x~| max|c~|) bounds the fp32
 * sums (the tensor cores' products are exact; K accumulation steps, each
 * off by at most one ulp — truncation included — plus cnorm's and |x~|^2's
 * sums) with a factor of 2 to spare. xs = (|x~|^2, |x~ - x|); cb[0] = max
 * |c~ - c|, cb[1] = max |c~|. The Hopper E-steps compare keys, scores
 * whose low 5 mantissa bits hold a column id (km_key): each s is then off
 * by less than 2^-18 |s|, allowed for with 2^-17 |s| per score. */
static __device__ __forceinline__ bool km_near_tie(const km_tie &T, float2 xs, float rho_c, float cmax, float s1,
                                                   float s2) {
    if (!(s2 < INFINITY)) return false; /* no second candidate */
    const float xn = sqrtf(xs.x);
    if (T.euclid) {
        const float e = T.ekd * (cmax * cmax + 2.f * xn * cmax + xs.x);
        const float r = (xs.y + rho_c) * (1.f + 0x1p-10f);
        const float d2 = sqrtf(fmaxf(s2 + xs.x - e - 0x1p-17f * fabsf(s2), 0.f));
        const float d1 = sqrtf(fmaxf(s1 + xs.x + e + 0x1p-17f * fabsf(s1), 0.f));
        return d2 - d1 <= 2.f * r + 0x1p-20f * (d1 + d2);
    }
    const float e = T.ekd * xn * cmax;
    const float b = (xs.y * cmax + (xn + xs.y) * rho_c) * (1.f + 0x1p-10f) + e;
    return s2 - s1 <= 2.f * b + (0x1p-20f + 0x1p-17f) * (fabsf(s1) + fabsf(s2));
}

/* The exact winner of two candidates for a row of T.x: distances (or dot
 * products) from the fp32 row and centres, accumulated in double, ties to
 * the lower index. KM_RS_G lanes share a row (lane g of the group takes
 * elements 4g.. of every 4 KM_RS_G, then the group adds its partials in a
 * fixed butterfly): a row's work is KM_RS_G times shorter than one
 * thread's serial walk, which left most of the list's latency exposed. All
 * lanes of the group get the result. */
#define KM_RS_G 8
static __device__ __forceinline__ int km_rescore_group(const float *__restrict__ x, const float *__restrict__ c1,
                                                       const float *__restrict__ c2, int d, int xvec,
                                                       int euclid, int i1, int i2) {
    const int g = threadIdx.x & (KM_RS_G - 1);
    double a = 0, b = 0;
    int j0 = 0;
    if (xvec) {
        for (int j = 4 * g; j + 4 <= d; j += 4 * KM_RS_G) {
            const float4 xv = __ldg((const float4 *)(x + j));
            const float4 u = __ldg((const float4 *)(c1 + j)), v = __ldg((const float4 *)(c2 + j));
            if (euclid) {
                double t;
                t = (double)xv.x - u.x; a = fma(t, t, a);
                t = (double)xv.y - u.y; a = fma(t, t, a);
                t = (double)xv.z - u.z; a = fma(t, t, a);
                t = (double)xv.w - u.w; a = fma(t, t, a);
                t = (double)xv.x - v.x; b = fma(t, t, b);
                t = (double)xv.y - v.y; b = fma(t, t, b);
                t = (double)xv.z - v.z; b = fma(t, t, b);
                t = (double)xv.w - v.w; b = fma(t, t, b);
            } else {
                a = fma((double)xv.x, (double)u.x, a);
                a = fma((double)xv.y, (double)u.y, a);
                a = fma((double)xv.z, (double)u.z, a);
                a = fma((double)xv.w, (double)u.w, a);
                b = fma((double)xv.x, (double)v.x, b);
                b = fma((double)xv.y, (double)v.y, b);
                b = fma((double)xv.z, (double)v.z, b);
                b = fma((double)xv.w, (double)v.w, b);
            }
        }
        j0 = d & ~3; /* the tail (d % 4 elements) below */
    }
    for (int j = j0 + g; j < d; j += KM_RS_G) {
        const double xv = __ldg(x + j), u = __ldg(c1 + j), v = __ldg(c2 + j);
        if (euclid) {
            a = fma(xv - u, xv - u, a);
            b = fma(xv - v, xv - v, b);
        } else {
            a = fma(xv, u, a);
            b = fma(xv, v, b);
        }
    }
#pragma unroll
    for (int o = 1; o < KM_RS_G; o <<= 1) {
        a += __shfl_xor_sync(KM_FULL, a, o);
        b += __shfl_xor_sync(KM_FULL, b, o);
    }
    if (!euclid) {
        a = -a;
        b = -b;
    }
    return (b < a || (b == a && i2 < i1)) ? i2 : i1;
}

/* The row statistics, loaded when the tile starts (with the old label) so
 * that their latency hides behind the tile's mma work. */
static __device__ __forceinline__ float2 km_row_stat(const km_tie &T, bool valid, int64_t row) {
    return (T.on && valid) ? T.xst[row] : make_float2(0.f, 0.f);
}
/* The end of an E-step row (valid: row < m): a near-tied row goes to the
 * list for k_tie_rescore (label and change left to it), any other gets
 * label i1 here. Returns 1 when the label changed. Whole warp: the list
 * slots are taken with one atomic per warp; their order does not matter
 * (each row is decided on its own), so results stay reproducible.
 * km_row_done_tie takes the near-tie test's outcome (tie implies valid). */
static __device__ __forceinline__ int km_row_done_tie(const km_tie &T, bool valid, bool tie, int64_t row, int i1,
                                                      int i2, int old, int32_t *labels) {
    int changed = 0;
    if (valid && !tie) {
        labels[row] = i1;
        changed = old != i1;
    }
    const unsigned mask = __ballot_sync(KM_FULL, tie);
    if (mask) {
        const int lane = threadIdx.x & 31, leader = __ffs(mask) - 1;
        int base = 0;
        if (lane == leader) base = atomicAdd(T.count, __popc(mask));
        base = __shfl_sync(KM_FULL, base, leader);
        if (tie) T.list[base + __popc(mask & ((1u << lane) - 1u))] = make_int4((int)row, i1, i2, old);
    }
    return changed;
}
static __device__ __forceinline__ int km_row_done(const km_tie &T, bool valid, int64_t row, float2 xs,
                                                  float rho_c, float cmax, float v1, int i1, float v2, int i2,
                                                  int old, int32_t *labels) {
    const bool tie = valid && T.on && km_near_tie(T, xs, rho_c, cmax, v1, v2);
    return km_row_done_tie(T, valid, tie, row, i1, i2, old, labels);
}

#endif
