/*
 * linalg_topk.h — the largest eigenpairs of a symmetric positive
 * semidefinite matrix by Chebyshev-filtered subspace iteration
 * (algo/linalg_topk.c), written once over fli_la: the GPU runs it on
 * PCA's covariance, the CPU runs the same steps for the tests.
 */
#ifndef FL_ALGO_LINALG_TOPK_H
#define FL_ALGO_LINALG_TOPK_H

#include "algo/linalg.h"

/* What fli_la_topk_eigh did (for benchmarks and the log). */
typedef struct fli_topk_report {
    int iterations;  /* Rayleigh-Ritz steps after the first */
    int degree;      /* filter degree summed over the iterations */
    double residual; /* max ||A v - w v|| / w_max over the k pairs at exit */
} fli_topk_report;

/* The block (search space) fli_la_topk_eigh uses for k pairs: k + max(k, 16). */
static inline int64_t fli_topk_block(int64_t k)
{
    return k + (k > 16 ? k : 16);
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
 * FL_STATUS_UNSUPPORTED when the block k + max(k, 16) exceeds n / 2 (a
 * full eigensolver is the better tool); FL_STATUS_NUMERICAL when the
 * spectrum leaves too small a gap after the k-th eigenvalue for the
 * iteration to converge within its budget (the caller falls back to a
 * full eigensolver; V and w are unspecified). Both leave a message in
 * la->err. report may be NULL.
 */
fl_status fli_la_topk_eigh(fli_la *la, fli_la *hl, int64_t n, const void *A, int64_t k, double tol,
                           uint64_t seed, void *V, double *w, fli_topk_report *report);

#endif
