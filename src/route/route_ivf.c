/*
 * route_ivf.c — the search routing rules of the approximate indexes
 * (IVF-Flat, IVF-PQ, CAGRA). Pure C on libc alone: execution
 * (algo/ivf_flat.c, ivf_pq.c, cagra.c), `flashlib route` and the cost
 * model call the same functions.
 */
#include <string.h>

#include "route/route.h"

/* Below this many multiply-adds per search (queries x (centres + probed
 * rows) x features) the CPU answers before the GPU has started: a single
 * query against a million rows with the default probes is ~5e6, a few
 * milliseconds of one core, while the GPU's dozen launches and copies cost
 * ~0.1 ms but its first search also uploads the lists. */
#define FLI_IVF_GPU_MIN_WORK 1e8

/*
 * IVF-Flat search.
 *  - No GPU, k > FLI_IVF_GPU_MAX_K (the GPU keeps pools of at most 256 =
 *    k + 8 candidates) or 2^31 rows or more: the CPU backend (BLAS-blocked
 *    coarse step and list scans, exact float64 re-rank).
 *  - Device 'cuda', or at least FLI_IVF_GPU_MIN_WORK multiply-adds: the
 *    GPU: cuBLAS coarse GEMM, radix-select of the probes, lists scanned
 *    in fp32 tiles shared by the queries that probe them, pools re-ranked
 *    in float64 as the CPU does (same results). The lists stay on the
 *    device between searches of the same index.
 *  - Otherwise (small batches on 'auto'): the CPU.
 */
fl_status fli_route_ivf_flat(const fl_hw_props *hw, int64_t n, int64_t n_lists, int64_t n_probes, int64_t n_q,
                             int64_t d, int64_t k, int force_gpu, fl_route *out)
{
    const double probed =
        n_lists > 0 ? (double)n * (double)(n_probes < n_lists ? n_probes : n_lists) / n_lists : 0;
    const double work = (double)n_q * ((double)n_lists + probed) * (double)d;
    const int have = hw && hw->sm_major != 0;
    const int fits = k <= FLI_IVF_GPU_MAX_K && n < ((int64_t)1 << 31);
    fli_route_set_variant(out, FLI_PREC_FP32);
    if (have && fits && (force_gpu || work >= FLI_IVF_GPU_MIN_WORK)) {
        out->backend = FL_BACKEND_CUDA;
        fli_join(out->reason, sizeof out->reason,
                 (const char *const[]){"IVF-Flat on ", hw->tag,
                                       ": cuBLAS coarse GEMM + radix-selected probes, lists scanned in fp32 "
                                       "tiles shared by the queries probing them, candidates re-ranked in "
                                       "float64 (the CPU's results); lists kept on the device between "
                                       "searches; the build's coarse k-means runs where KMeans would",
                                       NULL});
        return FL_STATUS_OK;
    }
    out->backend = FL_BACKEND_CPU;
    const char *why = !have   ? "CPU backend (no GPU in use: none found, or device cpu chosen): "
                      : !fits ? "CPU backend (k > 248 or 2^31 rows: beyond the GPU search's pools): "
                              : "CPU backend (under 1e8 multiply-adds: the batch is too small to pay for "
                                "the GPU): ";
    fli_join(out->reason, sizeof out->reason,
             (const char *const[]){why,
                                   "BLAS-blocked coarse step and list scans over float32 lists, exact "
                                   "float64 re-rank of the candidates; the build's coarse k-means runs "
                                   "where KMeans would",
                                   NULL});
    return FL_STATUS_OK;
}

/*
 * IVF-PQ search.
 *  - No GPU, a pool (refine x k) over FLI_IVFPQ_GPU_MAX_POOL, a look-up
 *    table over FLI_IVFPQ_GPU_MAX_LUT floats (128 KB of shared memory) or
 *    2^31 rows: the CPU backend.
 *  - Device 'cuda', or at least FLI_IVF_GPU_MIN_WORK operations (coarse
 *    step, tables, code reads): the GPU: the coarse step IVF-Flat's GPU
 *    search uses, blocks per query and group of probes building the tables in shared
 *    memory and scanning the list's codes, the pool re-ranked in float64.
 *  - Otherwise (small batches on 'auto'): the CPU.
 */
fl_status fli_route_ivf_pq(const fl_hw_props *hw, int64_t n, int64_t n_lists, int64_t n_probes, int64_t n_q,
                           int64_t d, int64_t M, int64_t ksub, int64_t pool, int force_gpu, fl_route *out)
{
    const double P = (double)(n_probes < n_lists ? n_probes : n_lists);
    const double probed = n_lists > 0 ? (double)n * P / (double)n_lists : 0;
    const double work =
        (double)n_q * ((double)n_lists * (double)d + P * (double)ksub * (double)d + probed * M);
    const int have = hw && hw->sm_major != 0;
    const int fits =
        pool <= FLI_IVFPQ_GPU_MAX_POOL && M * ksub <= FLI_IVFPQ_GPU_MAX_LUT && n < ((int64_t)1 << 31);
    memcpy(out->variant, "pq", 3);
    if (have && fits && (force_gpu || work >= FLI_IVF_GPU_MIN_WORK)) {
        out->backend = FL_BACKEND_CUDA;
        fli_join(out->reason, sizeof out->reason,
                 (const char *const[]){"IVF-PQ on ", hw->tag,
                                       ": cuBLAS coarse GEMM + radix-selected probes, a block per query and "
                                       "probes, look-up tables in shared memory scanning the codes, pool of "
                                       "refine x k re-ranked in float64; index kept on the device",
                                       NULL});
        return FL_STATUS_OK;
    }
    out->backend = FL_BACKEND_CPU;
    const char *why = !have   ? "CPU backend (no GPU in use: none found, or device cpu chosen): "
                      : !fits ? "CPU backend (refine x k > 1024, pq_dim x 2^pq_bits > 32768 or 2^31 rows: "
                                "beyond the GPU search): "
                              : "CPU backend (under 1e8 operations: the batch is too small to pay for the "
                                "GPU): ";
    fli_join(out->reason, sizeof out->reason,
             (const char *const[]){why,
                                   "BLAS coarse step, a look-up table per probe, code scans, exact float64 "
                                   "re-rank of the pool",
                                   NULL});
    return FL_STATUS_OK;
}

/*
 * CAGRA search.
 *  - No GPU, itopk_size over FLI_CAGRA_GPU_MAX_ITOPK, search_width x
 *    graph_degree over FLI_CAGRA_GPU_MAX_CAND or 2^31 nodes: the CPU.
 *  - Device 'cuda', or at least FLI_IVF_GPU_MIN_WORK multiply-adds (the
 *    entry nodes plus about itopk x degree / 2 distances per query): the
 *    GPU, a thread block per query with its buffer and visited hash in
 *    shared memory, the k best re-ranked in float64.
 *  - Otherwise (small batches on 'auto'): the CPU.
 */
fl_status fli_route_cagra(const fl_hw_props *hw, int64_t n, int64_t d, int64_t degree, int64_t n_entries,
                          int64_t itopk, int64_t width, int64_t n_q, int force_gpu, fl_route *out)
{
    const double work = (double)n_q * ((double)n_entries + (double)itopk * (double)degree * 0.5) * (double)d;
    const int have = hw && hw->sm_major != 0;
    const int fits = itopk <= FLI_CAGRA_GPU_MAX_ITOPK && width * degree <= FLI_CAGRA_GPU_MAX_CAND &&
                     n < ((int64_t)1 << 31);
    memcpy(out->variant, "graph", 6);
    if (have && fits && (force_gpu || work >= FLI_IVF_GPU_MIN_WORK)) {
        out->backend = FL_BACKEND_CUDA;
        fli_join(
            out->reason, sizeof out->reason,
            (const char *const[]){"CAGRA on ", hw->tag,
                                  ": a thread block per query, its itopk buffer and visited hash in shared "
                                  "memory, search_width parents a step, warp-cooperative distances, the k "
                                  "best re-ranked in float64; graph kept on the device",
                                  NULL});
        return FL_STATUS_OK;
    }
    out->backend = FL_BACKEND_CPU;
    const char *why = !have   ? "CPU backend (no GPU in use: none found, or device cpu chosen): "
                      : !fits ? "CPU backend (itopk_size > 512, search_width x graph_degree > 1024 or 2^31 "
                                "nodes: beyond the GPU search): "
                              : "CPU backend (under 1e8 multiply-adds: the batch is too small to pay for the "
                                "GPU): ";
    fli_join(
        out->reason, sizeof out->reason,
        (const char *const[]){why, "best-first graph walk a query per thread, exact float64 re-rank", NULL});
    return FL_STATUS_OK;
}
