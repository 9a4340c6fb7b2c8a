/*
 * decomp_cpu.c — the CPU backend of PCA and TruncatedSVD: BLAS for the
 * products over X, LAPACK (through the OpenMP OpenBLAS, see lapack.h) for
 * the factorisations, OpenMP across blocks of rows, float32 and float64.
 * The per-dtype kernels are in decomp_cpu_impl.inc.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/lapack.h"
#include "core/internal.h"

#define T float
#define SFX f32
#define P s
#define CBLAS_GEMM cblas_sgemm
#define CBLAS_SYRK cblas_ssyrk
#include "backends/cpu/decomp_cpu_impl.inc"
#undef T
#undef SFX
#undef P
#undef CBLAS_GEMM
#undef CBLAS_SYRK

#define T double
#define SFX f64
#define P d
#define CBLAS_GEMM cblas_dgemm
#define CBLAS_SYRK cblas_dsyrk
#include "backends/cpu/decomp_cpu_impl.inc"
#undef T
#undef SFX
#undef P
#undef CBLAS_GEMM
#undef CBLAS_SYRK

/* All eigenpairs of the d x d scatter S (float64, symmetric, overwritten)
 * by divide and conquer, largest first, into the job's outputs; also its
 * trace (total_ss). The CUDA path hands its scatter here too. */
fl_status fli_cpu_eigh_scatter(fl_ctx *ctx, fli_decomp_job *job, double *S)
{
    const int64_t d = job->d;
    double *w = fli_malloc(ctx, sizeof(double) * (size_t)d, "eigenvalues");
    double *work = NULL;
    int *iwork = NULL;
    fl_status st = !w ? FL_STATUS_OUT_OF_MEMORY : FL_STATUS_OK;
    if (st)
        goto done;
    job->total_ss = 0;
    for (int64_t i = 0; i < d; i++)
        job->total_ss += S[i * d + i];
    {
        const int nn = (int)d;
        int info = 0, lwork = -1, liwork = -1, iwq;
        double wq;
        dsyevd_("V", "U", &nn, S, &nn, w, &wq, &lwork, &iwq, &liwork, &info, 1, 1);
        lwork = (int)wq + 1;
        liwork = iwq + 1;
        work = fli_malloc(ctx, sizeof(double) * (size_t)lwork, "eigh workspace");
        iwork = fli_malloc(ctx, sizeof(int) * (size_t)liwork, "eigh iwork");
        if (info || !work || !iwork) {
            st = info ? fli_fail(ctx, FL_STATUS_INTERNAL, "eigh workspace query failed (info %d)", info)
                      : FL_STATUS_OUT_OF_MEMORY;
            goto done;
        }
        /* a small eigh is little work in many BLAS calls: threaded, each
         * call waits for every core, and on a shared machine one stolen
         * core turned 2 ms into 2 s (d = 128); single-threaded it cannot
         * stall. Large ones keep the threads. */
        const int prev = omp_get_max_threads();
        if (d <= 512)
            omp_set_num_threads(1);
        dsyevd_("V", "U", &nn, S, &nn, w, work, &lwork, iwork, &liwork, &info, 1, 1);
        omp_set_num_threads(prev);
        if (info) {
            st = fli_fail(ctx, FL_STATUS_INTERNAL, "the eigensolver did not converge (dsyevd info %d)", info);
            goto done;
        }
    }
    /* column j of S (column-major) is the eigenvector of w[j], ascending */
    for (int64_t i = 0; i < d; i++) {
        const int64_t j = d - 1 - i;
        job->sv[i] = w[j] > 0 ? sqrt(w[j]) : 0.0;
        memcpy(job->components + i * d, S + j * d, sizeof(double) * (size_t)d);
    }
    job->n_out = d;
done:
    fli_free(ctx, w);
    fli_free(ctx, work);
    fli_free(ctx, iwork);
    return st;
}

fl_status fli_cpu_pca_scatter(fl_ctx *ctx, fli_decomp_job *job, double *S)
{
    const int nt = fli_cpu_threads(ctx);
    const int prev = omp_get_max_threads();
    omp_set_num_threads(nt);
    fl_status st = job->dtype == FL_DTYPE_F32
                       ? scatter_f32(ctx, job->X, job->n, job->d, job->ld, nt, job->mean, S, &job->nonfinite)
                       : scatter_f64(ctx, job->X, job->n, job->d, job->ld, nt, job->mean, S, &job->nonfinite);
    omp_set_num_threads(prev);
    return st;
}

/* covariance_eigh: the scatter matrix in one fused pass, then all of its
 * eigenpairs in float64 (divide and conquer), largest first. */
static fl_status eigh_fit(fl_ctx *ctx, fli_decomp_job *job, int nt)
{
    const int64_t d = job->d;
    if (d > 46340)
        return fli_fail(ctx, FL_STATUS_UNSUPPORTED,
                        "svd_solver=covariance_eigh: n_features=%lld is too large for a d x d eigh",
                        (long long)d);
    double *S = fli_malloc(ctx, sizeof(double) * (size_t)(d * d), "covariance");
    if (!S)
        return FL_STATUS_OUT_OF_MEMORY;
    fl_status st = job->dtype == FL_DTYPE_F32
                       ? scatter_f32(ctx, job->X, job->n, d, job->ld, nt, job->mean, S, &job->nonfinite)
                       : scatter_f64(ctx, job->X, job->n, d, job->ld, nt, job->mean, S, &job->nonfinite);
    if (!st)
        st = fli_cpu_eigh_scatter(ctx, job, S);
    fli_free(ctx, S);
    return st;
}

static fl_status cpu_decomp_fit(fl_ctx *ctx, fli_decomp_job *job)
{
    const int nt = fli_cpu_threads(ctx);
    if (job->solver != FLI_DECOMP_EIGH && (job->n > 2147483647 || job->n * job->d > 2147483647LL * 64))
        return fli_fail(ctx, FL_STATUS_UNSUPPORTED,
                        "%lld x %lld is too large for the LAPACK solvers (32-bit sizes): use "
                        "svd_solver=covariance_eigh",
                        (long long)job->n, (long long)job->d);
    /* BLAS and LAPACK called outside flashlib's own parallel regions (the
     * randomized products, the QR) size their OpenMP teams from this
     * thread's nthreads setting: make it the context's for the call. */
    const int prev = omp_get_max_threads();
    omp_set_num_threads(nt);
    fl_status st = job->solver == FLI_DECOMP_EIGH ? eigh_fit(ctx, job, nt)
                   : job->dtype == FL_DTYPE_F32   ? decomp_fit_f32(ctx, job, nt)
                                                  : decomp_fit_f64(ctx, job, nt);
    omp_set_num_threads(prev);
    return st;
}

static fl_status cpu_decomp_apply(fl_ctx *ctx, const fli_decomp_apply_job *job)
{
    const int nt = fli_cpu_threads(ctx);
    return job->dtype == FL_DTYPE_F32 ? apply_f32(ctx, job, nt) : apply_f64(ctx, job, nt);
}

const fli_decomp_backend fli_cpu_decomp = {"cpu", cpu_decomp_fit, cpu_decomp_apply};

fl_status fli_cpu_cholesky(fl_ctx *ctx, double *A, int64_t d)
{
    /* row-major lower == column-major upper */
    const int nn = (int)d;
    int info = 0;
    dpotrf_("U", &nn, A, &nn, &info, 1);
    if (info)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "the covariance is not positive definite (pivot %d)",
                        info);
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = i + 1; j < d; j++)
            A[i * d + j] = 0;
    return FL_STATUS_OK;
}

fl_status fli_cpu_gauss_loglik(fl_ctx *ctx, const fl_array *X, const double *mean, const double *L, double c,
                               fl_array *out)
{
    const int nt = fli_cpu_threads(ctx);
    if (X->dtype == FL_DTYPE_F32)
        return gauss_loglik_f32(ctx, X->data, X->rows, X->cols, fli_ld(X), mean, L, c, out->data, fli_ld(out),
                                nt);
    return gauss_loglik_f64(ctx, X->data, X->rows, X->cols, fli_ld(X), mean, L, c, out->data, fli_ld(out),
                            nt);
}
