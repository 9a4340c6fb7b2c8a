/*
 * ivf_cuda.cuh — what the IVF searches of the CUDA module share (the
 * IVF-Flat search in ivf_cuda.cu, the IVF-PQ search in ivfpq_cuda.cu):
 * the order-preserving float keys, the layout of a query's candidate space
 * (its probed lists laid end to end, one segment per probe), and the three
 * stages that do not depend on how a list is stored: the coarse step (the
 * probes of each query), the segments of the candidate spaces, and the
 * pool select. The stages run on the context's stream and are defined in
 * ivf_cuda.cu.
 */
#ifndef FL_IVF_CUDA_CUH
#define FL_IVF_CUDA_CUH

#include <stdint.h>

#include "backends/cuda/fl_cuda_util.cuh"

#define KEY_EXCLUDED 0xFFFFFFFFu /* the query's own row (X=None) */

/* float -> uint32 with the same order (-0 taken as +0, so equal floats give
 * equal keys, as the CPU's float comparisons see them) */
static __device__ __forceinline__ uint32_t ord_key(float f)
{
    uint32_t u = __float_as_uint(__fadd_rn(f, 0.0f));
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* The float a key stands for (the inverse of ord_key; -0 comes back +0). */
static __device__ __forceinline__ float key_float(uint32_t k)
{
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}

/* Segment holding candidate pos of a query (pre ascending): the last j with
 * pre[j] <= pos, which is the non-empty segment that contains pos; returns
 * the stored row (list order). */
static __device__ __forceinline__ int64_t seg_row(const int32_t *pre, const int32_t *probes, int64_t P,
                                                  const int64_t *off, int32_t pos)
{
    int64_t lo = 0, hi = P - 1;
    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) >> 1;
        if (pre[mid] <= pos)
            lo = mid;
        else
            hi = mid - 1;
    }
    return off[probes[lo]] + (pos - pre[lo]);
}

/* The coarse step of m queries (qraw: m x d4 float32, zero padded) against
 * L centres (L x d4, zero padded; cn their squared norms as the CPU rounds
 * them): q32 = the queries as the scans use them (normalised for cosine,
 * metric 2), qs64 / qsf the cosine scales, S (m x L) the scores turned into
 * keys (S's float32 products with the centres recoverable by key_float:
 * -key for the inner product, metric 3), probes (m x P) the n_probes
 * nearest lists of each query (ties by list number), as ivf_cpu.c picks
 * them. */
fl_status fli_ivf_probe_step(fli_cuda_env *env, const float *centers, const float *cn, int64_t L, int64_t d,
                             int64_t d4, const float *qraw, int64_t m, int metric, int64_t P, float *q32,
                             double *qs64, float *qsf, float *S, int32_t *probes);

/* The candidate space of each query: segment j (probe j's list) starts at
 * pre[q P + j]; tot[q] candidates in all. */
fl_status fli_ivf_segments_step(fli_cuda_env *env, const int32_t *probes, int64_t m, int64_t P,
                                const int64_t *off, int32_t *pre, int32_t *tot);

/* Per query: the positions (pool, m x need; pool_n[q] of them) of the
 * `need` smallest keys of buf (row q at q * stride, tot[q] long), ties by
 * the original index ids[row]. *smem_set caches the shared-memory size
 * last allowed for the select (start at -1). */
fl_status fli_ivf_pool_step(fli_cuda_env *env, const uint32_t *buf, int64_t stride, const int32_t *tot,
                            int64_t m, int64_t need, int32_t *pool, int32_t *pool_n, const int32_t *pre,
                            const int32_t *probes, int64_t P, const int64_t *off, const int64_t *ids,
                            int64_t *smem_set);

#endif
