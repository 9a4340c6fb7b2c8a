/*
 * kmeans_cpu.c — the CPU backend of KMeans: OpenMP across blocks of rows,
 * BLAS for the block dot products, float32 and float64. The kernels are in
 * kmeans_cpu_impl.inc, instantiated once per element type.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "algo/kmeans_cpu_plan.h"
#include "backends/cpu/cpu.h"
#include "core/internal.h"

/* Rows per block: CHUNK x k scores stay in L2 for k up to a few thousand. */
#define CHUNK FLI_KM_CPU_CHUNK
/* Up to this many centres the scores are computed without BLAS. */
#define SMALL_K FLI_KM_CPU_SMALL_K
#define FLI_BIG 1e30

#define T float
#define ITYPE int32_t
#define SFX f32
#define GEMM cblas_sgemm
#include "backends/cpu/kmeans_cpu_impl.inc"
#undef T
#undef ITYPE
#undef SFX
#undef GEMM

#define T double
#define ITYPE int64_t
#define SFX f64
#define GEMM cblas_dgemm
#include "backends/cpu/kmeans_cpu_impl.inc"
#undef T
#undef ITYPE
#undef SFX
#undef GEMM

int fli_cpu_threads(const fl_ctx *ctx)
{
    return ctx->threads > 0 ? ctx->threads : omp_get_max_threads();
}

fl_status fli_cpu_kmeans_fit(fl_ctx *ctx, fli_kmeans_job *job)
{
    const int nt = fli_cpu_threads(ctx);
    return job->dtype == FL_DTYPE_F64 ? kmeans_fit_f64(ctx, job, nt) : kmeans_fit_f32(ctx, job, nt);
}

fl_status fli_cpu_kmeans_assign(fl_ctx *ctx, fli_kmeans_assign_job *job)
{
    const int nt = fli_cpu_threads(ctx);
    return job->dtype == FL_DTYPE_F64 ? kmeans_assign_f64(ctx, job, nt) : kmeans_assign_f32(ctx, job, nt);
}
