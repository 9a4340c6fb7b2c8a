/*
 * linalg_small.h — every eigenpair of a small symmetric matrix on the host
 * (algo/linalg_small.c), for the p x p Rayleigh-Ritz steps of the top-k
 * eigensolver (algo/linalg_topk.c).
 *
 * Why not LAPACK's dsyevd: at p = 48 it took ~200 us a call on this
 * project's machines, most of it in the tridiagonal solver's scalar
 * rotations and per-call BLAS dispatch; PCA's top-k solve makes four such
 * calls a fit, and the GPU waits on each. This solver is plain C over
 * contiguous columns (the compiler vectorises every inner loop), depends on
 * nothing and allocates nothing.
 */
#ifndef FL_ALGO_LINALG_SMALL_H
#define FL_ALGO_LINALG_SMALL_H

#include <stdint.h>

/* Doubles of workspace fli_small_syev needs for an n x n matrix. */
static inline int64_t fli_small_syev_work(int64_t n)
{
    return n * n + 3 * n;
}

/* All eigenpairs of the symmetric n x n matrix A (column-major, leading
 * dimension lda >= n; the lower triangle is read): eigenvalues ascending in
 * w, the orthonormal eigenvectors in A's columns, in the same order.
 * Householder reduction to tridiagonal form, then implicit QL with
 * Wilkinson shifts on the explicitly formed reflector product; the matrix
 * is scaled to unit largest entry first, so no square root over- or
 * underflows. Backward stable like LAPACK's dsteqr path: residual and
 * orthogonality ~n eps ||A||. work: fli_small_syev_work(n) doubles.
 * Returns 0, or -1 when an eigenvalue took more than 60 QL steps (A and w
 * then hold no result) or A holds a NaN or infinity (A untouched). */
int fli_small_syev(int64_t n, double *A, int64_t lda, double *w, double *work);

#endif
