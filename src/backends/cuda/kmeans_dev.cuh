/*
 * kmeans_dev.cuh — device helpers shared by the KMeans kernel files:
 * cp.async, tensor-core fragments (mma.sync, ldmatrix), tf32 rounding, the
 * argmin merge rule (ties to the lower index), change counting, the
 * per-element objective and fixed-order block sums.
 */
#ifndef FL_KMEANS_DEV_CUH
#define FL_KMEANS_DEV_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "algo/kmeans_job.h"

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

#endif
