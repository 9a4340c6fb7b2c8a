/*
 * route_knn.c — the exact nearest-neighbour routing rule. Pure C on libc
 * alone: execution calls it and the cost model links it, so an estimate
 * describes the search that would run.
 */
#include <string.h>

#include "route/route.h"

/* Below this many multiply-adds (n_q x n_db x d) a search the caller keeps
 * in host memory stays on the CPU: moving the database to the GPU costs
 * more than the CPU spends (2 GFLOP is ~10 ms on 16 cores; 1M x 128 float32
 * rows take ~25 ms to cross PCIe). */
#define FLI_KNN_GPU_MIN_WORK 1e9

/*
 * Exact kNN.
 *  - No GPU, or data on the host and less than FLI_KNN_GPU_MIN_WORK
 *    multiply-adds (unless device 'cuda' was asked for): the CPU backend,
 *    BLAS-blocked distances and per-query heaps in the data's precision.
 *  - On the GPU, precision=auto: squared/plain euclidean, cosine and inner
 *    product scan on tf32 tensor cores (the distance is a GEMM away from the
 *    norms); the candidates are re-ranked in exact fp32, so the distances
 *    returned are fp32's. manhattan and minkowski have no product form: an
 *    fp32 SIMT scan.
 *  - The scan: on Hopper with the sm90 paths enabled, tf32/bf16/fp16, at
 *    least 1024 queries, rows of at most 512 bytes at the scan precision
 *    and a pool (max(2k, k + 16)) of at most 256 — at most 64 for 512-byte
 *    rows — the sm_90a wgmma kernel (knn_cuda.cu's plan applies the same
 *    rule); else the portable mma.sync kernel (sm_80+).
 */
fl_status fli_route_knn(const fl_hw_props *hw, int64_t n_db, int64_t n_q, int64_t d, fl_dtype dtype,
                        int64_t k, fli_knn_metric metric, int precision_word, int on_device, int force_gpu,
                        fl_route *out, fli_precision *prec_out)
{
    const int gemm_form = metric == FLI_KNN_SQEUCLIDEAN || metric == FLI_KNN_EUCLIDEAN ||
                          metric == FLI_KNN_COSINE || metric == FLI_KNN_INNER;
    const double work = (double)n_q * (double)n_db * (double)d;
    const int gpu = hw && hw->sm_major != 0 && (on_device || force_gpu || work >= FLI_KNN_GPU_MIN_WORK);
    if (!gpu) {
        fli_precision p = dtype == FL_DTYPE_F64 ? FLI_PREC_F64 : FLI_PREC_FP32;
        out->backend = FL_BACKEND_CPU;
        fli_route_set_variant(out, p);
        const char *why =
            !hw || hw->sm_major == 0
                ? "CPU backend (no GPU in use: none found, or device cpu chosen): "
                : "CPU backend (data on the host and under 1e9 multiply-adds, less than moving it to "
                  "the GPU costs): ";
        fli_join(out->reason, sizeof out->reason,
                 (const char *const[]){why,
                                       gemm_form ? "BLAS-blocked distances with per-query heaps in "
                                                 : "blocked direct distances with per-query heaps in ",
                                       dtype == FL_DTYPE_F64 ? "float64" : "float32", NULL});
        if (prec_out)
            *prec_out = p;
        return FL_STATUS_OK;
    }
    fli_precision p;
    const char *why;
    if (!gemm_form) {
        p = FLI_PREC_FP32;
        why = precision_word >= 2 ? "manhattan/minkowski have no tensor-core form: fp32 SIMT scan on "
                                  : "manhattan/minkowski: fp32 SIMT scan on ";
    } else {
        switch (precision_word) {
        case 1: p = FLI_PREC_FP32, why = "precision=fp32 requested: fp32 SIMT scan on "; break;
        case 2: p = FLI_PREC_TF32, why = "precision=tf32 requested: tf32 scan, exact fp32 re-rank on "; break;
        case 3: p = FLI_PREC_BF16, why = "precision=bf16 requested: bf16 scan, exact fp32 re-rank on "; break;
        case 4: p = FLI_PREC_FP16, why = "precision=fp16 requested: fp16 scan, exact fp32 re-rank on "; break;
        default:
            p = FLI_PREC_TF32;
            why = "precision=auto: tf32 tensor-core scan, candidates re-ranked in exact fp32, on ";
        }
    }
    int sm90 = 0;
    if (hw->sm90_enabled && p != FLI_PREC_FP32 && n_q >= 1024) {
        const int64_t rowb = p == FLI_PREC_TF32 ? (d + 31) / 32 * 128 : (d + 63) / 64 * 128;
        const int64_t kp = 2 * k > k + 16 ? 2 * k : k + 16;
        sm90 = rowb <= 512 && kp <= 256 && !(rowb > 256 && kp > 64);
    }
    out->backend = FL_BACKEND_CUDA;
    fli_route_set_variant(out, p);
    fli_join(out->reason, sizeof out->reason,
             (const char *const[]){
                 why, hw->tag, on_device ? "; data in device memory" : "; data streamed from the host",
                 sm90 ? "; Hopper wgmma scan (sm_90a)" : "; portable CUDA kernels (mma.sync, sm_80+)", NULL});
    if (prec_out)
        *prec_out = p;
    return FL_STATUS_OK;
}
