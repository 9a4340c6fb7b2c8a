/*
 * linalg_topk.h — the largest eigenpairs of a symmetric positive
 * semidefinite matrix by Chebyshev-filtered subspace iteration
 * (algo/linalg_topk.c), written once over fli_la: the GPU runs it on
 * PCA's covariance, the CPU runs the same steps for the tests.
 */
#ifndef FL_ALGO_LINALG_TOPK_H
#define FL_ALGO_LINALG_TOPK_H

#include "algo/linalg.h"
#include <time.h>

/* What fli_la_topk_eigh did (for benchmarks and the log). */
typedef struct fli_topk_report {
    int iterations;  /* Rayleigh-Ritz steps after the first */
    int degree;      /* filter degree summed over the iterations */
    double residual; /* max ||A v - w v|| / w_max over the k pairs at exit */
    /* wall-clock ms: buffers, random start and its first Rayleigh-Ritz;
     * the filters (their launches: a filter runs on while the next phase
     * waits); the orthonormalisations and later Rayleigh-Ritz steps (each
     * ends in its one copy to the host); of those, the host's p x p work */
    double ms_start, ms_filter_orth, ms_rr, ms_host;
    int redone; /* orthonormalisations redone the careful way (a Cholesky broke down) */
} fli_topk_report;

/* Wall-clock milliseconds (C11 timespec_get), for the solver's report. */
static inline double fli_wall_ms(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* The block (search space) fli_la_topk_eigh uses for k pairs: k + 16 up to
 * k = 32, then k + ceil(k / 2). Its host steps cost ~p^3 (an eigensolve of
 * p x p, once a step); a smaller block converges at t_k / t_p, slower per
 * filter degree, but the degrees are GEMMs on the device: at k = 32 (1M x
 * 512 on the H100) p = 48 took the same 3 steps as p = 64 and the host's
 * share fell from 1.7 to ~0.8 ms (bench/gpu/PCA_NOTES.md). */
static inline int64_t fli_topk_block(int64_t k)
{
#if defined(FLI_TOPK_BLOCK_2K) /* A/B builds only (bench/gpu/pca_block_ab.sh): the earlier k + max(k, 16) */
    return k + (k > 16 ? k : 16);
#elif defined(FLI_TOPK_BLOCK_8) /* A/B builds only: k + 8 up to k = 32 (a smaller host eigenproblem) */
    return k + (k > 32 ? (k + 1) / 2 : 8);
#else
    return k + (k > 32 ? (k + 1) / 2 : 16);
#endif
}

/* Whether PCA's covariance_eigh on the GPU solves for k components of the
 * scatter of n x d data with this solver rather than cuSOLVER's syevd
 * (algo/decomp.c runs it, info/op_decomp.c estimates it: both call this).
 * The solver needs n >= d (the noise variance comes from the trace) and a
 * block p within d / 2; it pays only for a block of at most 128 vectors
 * and d >= 8 p. Its cost grows with p (the host's p x p steps: ~1-2 ms at
 * p <= 32, ~5 at 64, ~25 at 128, ~130 at 256), syevd's with d (~1 ms at
 * d = 64, 3 at 256, 9 at 512, 23 at 1024); the rule is where the H100
 * measured it faster on the calibration's data
 * (bench/results/pca_route_ab_h100_d90e446.json: 1M x 512 k=32 13.1 ms
 * against 14.2; 100K x 128 k=32 7.0 against 2.3 and 100K x 512 k=128 136
 * against 9.6, both now syevd). */
static inline int fli_topk_on_gpu(int64_t k, int64_t n, int64_t d)
{
    const int64_t p = fli_topk_block(k);
    return d <= n && p <= 128 && 8 * p <= d;
}

/*
 * The k largest eigenpairs of A (n x n, symmetric positive semidefinite,
 * both triangles stored, column-major, ld n, in la's memory; not
 * modified). hl is a host fli_la of float64 for the small dense steps
 * (the block's Rayleigh-Ritz eigenproblems); with a CPU la it may be la.
 * la->dt must be FL_DTYPE_F64.
 *
 * V (n x k, ld n, la's memory) receives the eigenvectors, w (host) the
 * eigenvalues, largest first. Converged means every pair's residual
 * ||A v - w v||_2 <= tol w_max.
 *
 * FL_STATUS_UNSUPPORTED when the block fli_topk_block(k) exceeds n / 2 (a
 * full eigensolver is the better tool); FL_STATUS_NUMERICAL when the
 * spectrum leaves too small a gap after the k-th eigenvalue for the
 * iteration to converge within its budget (the caller falls back to a
 * full eigensolver; V and w are unspecified). Both leave a message in
 * la->err. report may be NULL.
 *
 * mode: how the block is orthonormalised, FLI_TOPK_ORTH_*: without waiting
 * on the Choleskys (the default), waiting on each (A/B), or without waiting
 * and then always redone the careful way (a test of that path); or'd with
 * FLI_TOPK_HOST_LAPACK, the p x p eigenproblems go to hl's syevd (LAPACK's
 * dsyevd on the CPU: A/B) instead of fli_small_syev.
 */
enum { FLI_TOPK_ORTH_NOWAIT = 0, FLI_TOPK_ORTH_WAIT = 1, FLI_TOPK_ORTH_REDO = 2, FLI_TOPK_HOST_LAPACK = 4 };
fl_status fli_la_topk_eigh(fli_la *la, fli_la *hl, int64_t n, const void *A, int64_t k, double tol,
                           uint64_t seed, int mode, void *V, double *w, fli_topk_report *report);

#endif
