/*
 * route_kmeans.c — the KMeans routing rule. Pure C that depends on nothing
 * but libc (no context, no core): execution calls it through fl_route_query
 * and the cost model links it directly, so both describe the same choice.
 */
#include <stdio.h>
#include <string.h>

#include "route/route.h"

/* Bounded concatenation of NULL-terminated pieces into dst: the cost model
 * routes on every estimate, and snprintf alone cost it ~15% of a call. */
void fli_join(char *dst, size_t cap, const char *const *parts)
{
    size_t len = 0;
    for (; *parts && len + 1 < cap; parts++) {
        size_t l = strlen(*parts);
        if (l > cap - 1 - len)
            l = cap - 1 - len;
        memcpy(dst + len, *parts, l);
        len += l;
    }
    dst[len] = '\0';
}

const char *fl_backend_name(fl_backend b)
{
    switch (b) {
    case FL_BACKEND_CPU: return "cpu";
    case FL_BACKEND_CUDA: return "cuda";
    case FL_BACKEND_CUDA_SM90: return "cuda-sm90";
    }
    return "?";
}

/* The variant is the precision's name: a fixed-size copy, no strlen. */
void fli_route_set_variant(fl_route *out, fli_precision p)
{
    static const char names[][8] = {[FLI_PREC_FP32] = "fp32",
                                    [FLI_PREC_TF32] = "tf32",
                                    [FLI_PREC_BF16] = "bf16",
                                    [FLI_PREC_FP16] = "fp16",
                                    [FLI_PREC_F64] = "fp64"};
    _Static_assert(sizeof out->variant >= sizeof names[0], "variant field");
    if ((unsigned)p < sizeof names / sizeof *names && names[p][0])
        memcpy(out->variant, names[p], sizeof names[p]);
    else
        memcpy(out->variant, "?", 2);
}

/*
 * KMeans.
 *  - No GPU: the CPU backend in the data's precision.
 *  - precision=auto on the GPU: the assignment costs 2*k*d flops per 4*d
 *    bytes of X, so with k < 32 it is bound by memory even at fp32 SIMT
 *    speed (51 TFLOP/s vs 3 TB/s balance at k ~ 34): exact fp32 costs
 *    nothing there. From k >= 32 the tensor cores pay, and tf32 is the
 *    default because it keeps fp32's range and ~1e-3 relative error in the
 *    scores, while the winner's distance (inertia) is recomputed exactly.
 *    bf16/fp16 are opt-in: they can move points that sit near a boundary.
 *  - The Hopper path (wgmma + TMA) takes over for large k and d, where the
 *    assignment is compute-bound enough for warp specialisation to matter,
 *    on compute capability 9.0 unless FL_DISABLE_SM90 is set.
 */
fl_status fli_route_kmeans(const fl_hw_props *hw, int64_t n, int64_t d, fl_dtype dtype, int64_t k,
                           int precision_word, fl_route *out, fli_precision *prec_out)
{
    out->backend = FL_BACKEND_CPU;
    if (!hw || hw->sm_major == 0) {
        fli_precision p = dtype == FL_DTYPE_F64 ? FLI_PREC_F64 : FLI_PREC_FP32;
        out->backend = FL_BACKEND_CPU;
        fli_route_set_variant(out, p);
        fli_join(out->reason, sizeof out->reason,
                 (const char *const[]){"CPU backend (no GPU in use: none found, or device cpu chosen): "
                                       "BLAS-blocked distances with fused argmin in ",
                                       dtype == FL_DTYPE_F64 ? "float64" : "float32", NULL});
        if (prec_out)
            *prec_out = p;
        return FL_STATUS_OK;
    }
    /* precision words: auto|fp32|tf32|bf16|fp16. The reason is joined from
     * three pieces (why; precision on tag; path), each carrying its own
     * separators: the cost model routes on every estimate. */
    fli_precision p;
    const char *why;
    switch (precision_word) {
    case 1: p = FLI_PREC_FP32, why = "precision=fp32 requested; fp32 on "; break;
    case 2: p = FLI_PREC_TF32, why = "precision=tf32 requested; tf32 on "; break;
    case 3: p = FLI_PREC_BF16, why = "precision=bf16 requested; bf16 on "; break;
    case 4: p = FLI_PREC_FP16, why = "precision=fp16 requested; fp16 on "; break;
    default:
        if (k < 32) {
            p = FLI_PREC_FP32;
            why = "precision=auto and n_clusters < 32: memory-bound, exact fp32 costs nothing; fp32 on ";
        } else {
            p = FLI_PREC_TF32;
            why = "precision=auto and n_clusters >= 32: compute-bound, tf32 tensor cores; tf32 on ";
        }
    }
    /* The wgmma E-step (n_features padded to 64 or 128) measured 2.5x
     * faster than mma.sync at 1M x 128, k=1024 on an H100 in bf16
     * (bench/gpu/NOTES.md); below ~1024 centres the portable kernel's
     * shorter setup wins. tf32 reads X through TMA (same rule). */
    const int ptc = p == FLI_PREC_BF16 || p == FLI_PREC_FP16 || p == FLI_PREC_TF32;
    int sm90 = hw->sm90_enabled && ptc && k >= 1024 && d >= 33 && d <= 128;
    out->backend = sm90 ? FL_BACKEND_CUDA_SM90 : FL_BACKEND_CUDA;
    fli_route_set_variant(out, p);
    const char *path;
    if (sm90)
        path = "; Hopper wgmma E-step (sm_90a): tf32/bf16/fp16, n_clusters >= 1024, 33 <= n_features <= 128";
    else if (hw->is_hopper && !hw->sm90_enabled)
        path = "; portable CUDA kernels (Hopper path disabled by FL_DISABLE_SM90)";
    else if (hw->is_hopper)
        path = "; portable CUDA kernels (the Hopper path needs tf32/bf16/fp16, n_clusters >= 1024 and "
               "33 <= n_features <= 128)";
    else
        path = "; portable CUDA kernels (mma.sync, sm_80+)";
    fli_join(out->reason, sizeof out->reason, (const char *const[]){why, hw->tag, path, NULL});
    (void)n;
    if (prec_out)
        *prec_out = p;
    return FL_STATUS_OK;
}
