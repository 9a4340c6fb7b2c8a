/*
 * route_ivf.c — the IVF-Flat search routing rule. Pure C on libc alone:
 * execution (algo/ivf_flat.c) and `flashlib route` call the same function.
 */
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
