/*
 * linalg_iter.h — the iterative polar solvers that fl_polar and fl_eigh
 * share (algo/linalg_polar.c), written once over fli_la, and the small
 * helpers both files use.
 *
 * Every routine here works on column-major matrices in la's memory, takes
 * its scratch from la->ops->alloc, frees it on every path, and on failure
 * leaves a one-line message in la->err (the context's error buffer).
 */
#ifndef FL_ALGO_LINALG_ITER_H
#define FL_ALGO_LINALG_ITER_H

#include "algo/linalg.h"

/* Unit roundoff of la's dtype (2^-53 or 2^-24). */
static inline double fli_la_unit(const fli_la *la)
{
    return la->dt == FL_DTYPE_F64 ? 0x1p-53 : 0x1p-24;
}

/* The GEMM variant of la's native precision. */
static inline int fli_la_native(const fli_la *la)
{
    return la->dt == FL_DTYPE_F64 ? FLI_GEMM_FP64 : FLI_GEMM_FP32;
}

/* Element (i, j) of a column-major matrix with leading dimension ld. */
static inline void *fli_la_at(const fli_la *la, const void *A, int64_t i, int64_t j, int64_t ld)
{
    return (char *)A + (size_t)(i + j * ld) * fli_la_esize(la);
}

/* Scratch for a rows x cols matrix (at least one element), overflow-checked. */
fl_status fli_la_mat(fli_la *la, int64_t rows, int64_t cols, void **p);
/* Records a message in la->err and returns st. */
fl_status fli_la_failf(fli_la *la, fl_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* C (m x n, ldc) = A (m x n, lda). */
fl_status fli_la_copy(fli_la *la, int64_t m, int64_t n, const void *A, int64_t lda, void *C, int64_t ldc);

/* QDWH (Nakatsukasa, Bai & Gygi 2010) in place: X (m x n, m >= n) scaled so
 * that ||X||_2 <= 1 becomes its polar factor. l is a lower bound on
 * sigma_min(X) (a smaller one is safe and costs at most a step or two).
 * Dynamically weighted Halley steps: QR-based ([sqrt(c) X; I] = QR) while
 * c > 100, Cholesky-based (I + c X^T X = L L^T) after. Stops when
 * ||X_k - X_{k-1}||_F <= (5u)^(1/3) ||X_k||_F and the bound l_k has
 * reached 1 (to 10u), or after max_it steps. *iters: steps done. */
fl_status fli_polar_qdwh(fli_la *la, int64_t m, int64_t n, void *X, int64_t ldx, double l, int max_it,
                         int *iters);

/* Options of the Polar Express iteration. */
typedef struct fli_pe_opts {
    int fast_variant; /* GEMM variant of the first phase (-1: native all along) */
    double l, u;      /* the singular values of X are assumed in [l, u]         */
    int sign_mode;    /* 1: stop when the tracked interval has converged (the
                         matrix-sign use of fl_eigh, where singular values near
                         0 are allowed to stay unresolved); 0: stop when
                         ||X^T X - I||_F has converged (fl_polar)             */
    int max_steps;
} fli_pe_opts;

/* Polar Express (Amsel, Persson, Musco & Gower 2025) in place on X
 * (m x n, m >= n): X <- X (a I + b G + c G^2), G = X^T X, with (a, b, c)
 * minimax on the current interval (fli_pe_coeffs). *steps: steps done;
 * *r (may be NULL): the last measured ||X^T X - I||_F. */
fl_status fli_polar_pe(fli_la *la, int64_t m, int64_t n, void *X, int64_t ldx, const fli_pe_opts *o,
                       int *steps, double *r);

/* The odd quintic p(x) = c[0] x + c[1] x^3 + c[2] x^5 that is the best
 * uniform approximation of 1 on [l, u] (0 < l < u), by a Remez exchange
 * (the interval's left end is cushioned at u / 1000, and a very narrow
 * interval gets the Taylor polynomial of the sign function around its
 * centre). Host only. Returns 0 for a Remez result, 1 for the Taylor
 * fallback. */
int fli_pe_coeffs(double l, double u, double c[3]);
/* min and max of that p over [l, u] (endpoints and critical points). */
void fli_pe_range(const double c[3], double l, double u, double *lo, double *hi);

/* Zolotarev's rational approximation of the sign function of type
 * (2r+1, 2r) on [l, 1] (Nakatsukasa & Freund 2016), r <= 8, normalised so
 * that its maximum over [l, 1] is 1: Z(x) = M x (1 + sum_j a[j] / (x^2 +
 * codd[j])). *lnew receives its minimum over [l, 1]. Host only; Jacobi's
 * elliptic functions by the arithmetic-geometric mean. */
void fli_zolo_coeffs(double l, int r, double *a, double *codd, double *M, double *lnew);

/* Zolotarev polar iteration in place on X (||X||_2 <= 1, sigma_min >= l),
 * r terms per step: each term X (X^T X + c I)^{-1} by a Cholesky solve when
 * X^T X + c I is well conditioned, else by a QR of [X; sqrt(c) I]. Steps
 * until the bound reaches 1 (to 10u), at most max_it. */
fl_status fli_polar_zolo(fli_la *la, int64_t m, int64_t n, void *X, int64_t ldx, double l, int r, int max_it,
                         int *iters);

#endif
