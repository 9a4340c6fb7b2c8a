/*
 * linalg_topk.c — the k largest eigenpairs of a symmetric positive
 * semidefinite matrix by Chebyshev-filtered subspace iteration (ChFSI:
 * Zhou, Saad, Tiago and Chelikowsky, "Self-consistent-field calculations
 * using Chebyshev-filtered subspace iteration", J. Comput. Phys. 2006),
 * written once over fli_la.
 *
 * Why: PCA keeps a few components of a d x d covariance. A full
 * eigensolver reduces the whole matrix to tridiagonal form first, a chain
 * of d dependent matrix-vector steps that leaves a GPU idle (cuSOLVER's
 * float64 syevd: 5.6 ms at d = 512 on the H100, as long as the covariance
 * product of a million rows). The subspace iteration works on a block of
 * p = fli_topk_block(k) vectors with d x d x p products only, a few dozen of
 * them, and a p x p eigenproblem on the host per step.
 *
 * One step, on an orthonormal block Q with Ritz values t_0 >= ... >= t_{p-1}:
 *   filter  Y = T_m((A - c I) / e) Q D, T_m the Chebyshev polynomial of
 *           degree m (three-term recurrence on a shifted copy of A, one
 *           gemm per degree),
 *           [a, b] = [0, t_{p-1}] the interval it damps (|T_m| <= 1 there:
 *           A is semidefinite, and t_{p-1} bounds the unwanted part from
 *           above once the block has converged), c and e its centre and
 *           half width; D = diag(1 / T_m(x_j)), x_j = (t_j - c) / e,
 *           keeps every column near unit size. m is what the k-th pair
 *           still needs at the rate 1 / T_m(x_{k-1}), capped so that the
 *           filter amplifies nothing by more than FILTER_GAIN (the
 *           orthonormalisation keeps what is above u times the largest
 *           amplification);
 *   orth    CholeskyQR2, not waiting on its Choleskys (orth_spec; redone
 *           from a saved copy, shifted, when they broke down);
 *   RR      W = A Q, H = Q^T W, E = W - Q H, G = E^T E; H and G come to
 *           the host in one copy with orth's outcome (the step's one
 *           synchronisation), H = U diag(t) U^T there (fli_small_syev), Q =
 *           Q U; the Ritz pairs' squared residuals are diag(U^T G U)
 *           (A Q U - Q U diag(t) = E U), so the rotated residual block
 *           is never formed.
 * It stops when the k wanted residuals are below tol t_0, and gives up
 * (FL_STATUS_NUMERICAL) when the rate predicts more than the budget, or a
 * step gained less than a factor 10: a flat spectrum around the k-th
 * eigenvalue (noise) needs the full eigensolver.
 */
#include "algo/linalg_topk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/linalg_iter.h"
#include "algo/linalg_small.h"

#define MAX_STEPS 12     /* filter + Rayleigh-Ritz steps */
#define MAX_DEGREE 24    /* one filter's degree */
#define TOTAL_DEGREE 120 /* the filter degrees summed */
#define FILTER_GAIN 1e10 /* the most one filter may amplify a column */

typedef struct topk {
    fli_la *la, *hl;
    int64_t n, p;
    const void *A;
    void *Q, *Y0, *Y1, *W, *R, *Ys; /* la: n x p six times */
    void *Hd, *Gd, *As;             /* la: p x (2p + 2), p x p, n x n */
    double *Hh, *Uh, *t, *res, *gu; /* host: p x (2p + 2), p x p, p, p, p */
    double *ework;                  /* host: fli_small_syev's workspace */
    double ms_host;                 /* the host's share of the Rayleigh-Ritz steps */
    int redone;                     /* orthonormalisations redone the careful way */
    int orth;                       /* FLI_TOPK_ORTH_* */
    int host_lapack;                /* FLI_TOPK_HOST_LAPACK: the p x p steps by hl's syevd */
} topk;

#define wall_ms fli_wall_ms

static void swap_ptr(void **a, void **b)
{
    void *t = *a;
    *a = *b;
    *b = t;
}

/* CholeskyQR2 of Q that does not wait on its Choleskys: Q is saved to Ys
 * first, and both Choleskys' info and the first's pivots (L's diagonal)
 * land behind [H | G] in Hd, where the Rayleigh-Ritz step's one get brings
 * them (fli_la_cholqr2 waits for each Cholesky and for the pivots: three
 * host round trips a step; at d = 512, k = 32 on the H100 the
 * orthonormalisations and Rayleigh-Ritz steps took ~0.65 ms a fit besides
 * the host's p x p work that way, ~0.42 this way). When they show a
 * breakdown, orth_rr redoes the step from Ys with fli_la_cholqr2, which
 * shifts where it must. */
static fl_status orth_spec(topk *s)
{
    fli_la *la = s->la;
    const fli_la_ops *op = la->ops;
    const int v = fli_la_native(la);
    const int64_t n = s->n, p = s->p;
    double *tail = (double *)s->Hd + 2 * p * p; /* L's diagonal (p), the two infos */
    fl_status st = fli_la_copy(la, n, p, s->Q, n, s->Ys, n);
    for (int pass = 0; !st && pass < 2; pass++) {
        st = op->gemm(la, v, 0, 1, 0, p, p, n, 1.0, s->Q, n, s->Q, n, 0.0, s->Gd, p);
        if (!st)
            st = op->potrf_dev(la, p, s->Gd, p, tail + p + pass);
        if (!st && pass == 0)
            st = fli_la_copy(la, 1, p, s->Gd, p + 1, tail, 1);
        if (!st)
            st = op->trsm(la, 1, n, p, s->Gd, p, s->Q, n);
    }
    return st;
}

/* Whether orth_spec's factorisations held (its outcome, fetched in Hh):
 * both Choleskys succeeded and the first one's pivots spread by less than
 * u^-1/2 (fli_la_cholqr2's test). */
static int spec_held(const topk *s)
{
    const int64_t p = s->p;
    const double *tail = s->Hh + 2 * p * p;
    int info[2];
    memcpy(&info[0], tail + p, sizeof(int));
    memcpy(&info[1], tail + p + 1, sizeof(int));
    double lo = INFINITY, hi = 0;
    for (int64_t j = 0; j < p; j++) {
        lo = fmin(lo, fabs(tail[j]));
        hi = fmax(hi, fabs(tail[j]));
    }
    return info[0] == 0 && info[1] == 0 && lo > sqrt(0x1p-53) * hi;
}

/* Rayleigh-Ritz on the orthonormal block Q: Q becomes the Ritz vectors, t
 * the Ritz values (descending), res the squared residual norms. Hd holds
 * [H | G] (p x 2p): H = Q^T A Q, G = E^T E with E = A Q - Q H, both
 * fetched by one get (with orth_spec's outcome behind them when spec);
 * U^T G U is the Gram matrix of the Ritz vectors' residuals A Q U - Q U
 * diag(t) = E U (H = U diag(t) U^T). spec and orth_spec's factorisations
 * broke down: *broke = 1, nothing else done. */
static fl_status rayleigh_ritz(topk *s, int spec, int *broke)
{
    fli_la *la = s->la;
    const fli_la_ops *op = la->ops;
    const int v = fli_la_native(la);
    const int64_t n = s->n, p = s->p;
    const size_t es = sizeof(double);
    void *G = (char *)s->Hd + es * (size_t)(p * p);
    fl_status st = op->gemm(la, v, 0, 0, 0, n, p, n, 1.0, s->A, n, s->Q, n, 0.0, s->W, n);
    if (!st)
        st = op->gemm(la, v, 0, 1, 0, p, p, n, 1.0, s->Q, n, s->W, n, 0.0, s->Hd, p);
    if (!st)
        st = fli_la_copy(la, n, p, s->W, n, s->R, n);
    if (!st)
        st = op->gemm(la, v, 0, 0, 0, n, p, p, -1.0, s->Q, n, s->Hd, p, 1.0, s->R, n);
    if (!st)
        st = op->gemm(la, v, 0, 1, 0, p, p, n, 1.0, s->R, n, s->R, n, 0.0, G, p);
    if (!st)
        st = op->get(la, s->Hh, s->Hd, es * (size_t)(2 * p * p + (spec ? 2 * p : 0)));
    if (st)
        return st;
    if (spec && (!spec_held(s) || s->orth == FLI_TOPK_ORTH_REDO)) {
        *broke = 1;
        return FL_STATUS_OK;
    }
    const double h0 = wall_ms();
    for (int64_t j = 0; j < p; j++)
        for (int64_t i = j + 1; i < p; i++) {
            const double m = 0.5 * (s->Hh[i + j * p] + s->Hh[j + i * p]);
            s->Hh[i + j * p] = s->Hh[j + i * p] = m;
        }
    if (s->host_lapack)
        st = s->hl->ops->syevd(s->hl, p, s->Hh, p, s->res);
    else if (fli_small_syev(p, s->Hh, p, s->res, s->ework))
        st = fli_la_failf(la, FL_STATUS_NUMERICAL,
                          "topk eigh: the %lld x %lld Rayleigh-Ritz eigenproblem did not converge",
                          (long long)p, (long long)p);
    if (st)
        return st;
    /* ascending -> descending; res_j = u_j^T G u_j */
    const double *Gh = s->Hh + p * p;
    for (int64_t j = 0; j < p; j++) {
        s->t[j] = s->res[p - 1 - j];
        memcpy(s->Uh + j * p, s->Hh + (p - 1 - j) * p, es * (size_t)p);
    }
    for (int64_t j = 0; j < p; j++) {
        /* G u as a sum of G's columns: independent lanes, not one long
         * chain of dependent additions (on the H100 machine's host the
         * p = 64 steps of a fit went 3.0 -> 1.7 ms) */
        const double *u = s->Uh + j * p;
        double *gu = s->gu, r = 0;
        memset(gu, 0, es * (size_t)p);
        for (int64_t c = 0; c < p; c++) {
            const double uc = u[c];
            const double *gc = Gh + c * p;
            for (int64_t i = 0; i < p; i++)
                gu[i] += gc[i] * uc;
        }
        for (int64_t i = 0; i < p; i++)
            r += u[i] * gu[i];
        s->res[j] = r;
    }
    s->ms_host += wall_ms() - h0;
    st = op->put(la, s->Hd, s->Uh, es * (size_t)(p * p));
    if (!st)
        st = op->gemm(la, v, 0, 0, 0, n, p, p, 1.0, s->Q, n, s->Hd, p, 0.0, s->Y0, n);
    if (!st)
        swap_ptr(&s->Q, &s->Y0);
    return st;
}

/* Orthonormalises Q and takes its Ritz pairs: orth_spec and one round
 * trip, or, when its factorisations broke down, the careful way from the
 * saved block: fli_la_cholqr2, then Rayleigh-Ritz again. FLI_TOPK_ORTH_WAIT
 * goes the careful way at once (A/B); FLI_TOPK_ORTH_REDO always redoes. */
static fl_status orth_rr(topk *s)
{
    int broke = 0, passes = 0;
    fl_status st = FL_STATUS_OK;
    if (s->orth == FLI_TOPK_ORTH_WAIT) {
        st = fli_la_cholqr2(s->la, s->n, s->p, s->Q, s->n, NULL, s->p, &passes);
        return st ? st : rayleigh_ritz(s, 0, NULL);
    }
    st = orth_spec(s);
    if (!st)
        st = rayleigh_ritz(s, 1, &broke);
    if (!st && broke) {
        s->redone++;
        st = fli_la_copy(s->la, s->n, s->p, s->Ys, s->n, s->Q, s->n);
        if (!st)
            st = fli_la_cholqr2(s->la, s->n, s->p, s->Q, s->n, NULL, s->p, &passes);
        if (!st)
            st = rayleigh_ritz(s, 0, NULL);
    }
    return st;
}

/* T_m(x) for |x| >= 1 (its magnitude; |T_m| <= 1 inside). */
static double cheb_abs(int m, double x)
{
    const double ax = fabs(x);
    return ax <= 1 ? 1.0 : cosh((double)m * acosh(ax));
}

/* Q <- T_m((A - c I) / e) Q D, D = diag(1 / max(1, |T_m(x_j)|)). The
 * recurrence runs on As = A - c I (a copy: the caller's A stays intact for
 * a fallback), so a degree costs one gemm (it cost a gemm and a geam). */
static fl_status filter(topk *s, int m, double c, double e)
{
    fli_la *la = s->la;
    const fli_la_ops *op = la->ops;
    const int v = fli_la_native(la);
    const int64_t n = s->n, p = s->p;
    memset(s->Uh, 0, sizeof(double) * (size_t)(p * p));
    for (int64_t j = 0; j < p; j++)
        s->Uh[j + j * p] = 1.0 / cheb_abs(m, (s->t[j] - c) / e);
    /* As = A - c I; Y0 = Q D (T_0), Y1 = As Y0 / e (T_1) */
    fl_status st = op->put(la, s->Hd, s->Uh, sizeof(double) * (size_t)(p * p));
    if (!st)
        st = fli_la_copy(la, n, n, s->A, n, s->As, n);
    if (!st)
        st = op->shift_diag(la, n, s->As, n, -c);
    if (!st)
        st = op->gemm(la, v, 0, 0, 0, n, p, p, 1.0, s->Q, n, s->Hd, p, 0.0, s->Y0, n);
    if (!st)
        st = op->gemm(la, v, 0, 0, 0, n, p, n, 1.0 / e, s->As, n, s->Y0, n, 0.0, s->Y1, n);
    /* T_{j+1} = 2 As T_j / e - T_{j-1}, into T_{j-1}'s buffer */
    for (int j = 1; !st && j < m; j++) {
        st = op->gemm(la, v, 0, 0, 0, n, p, n, 2.0 / e, s->As, n, s->Y1, n, -1.0, s->Y0, n);
        swap_ptr(&s->Y0, &s->Y1);
    }
    if (!st)
        swap_ptr(&s->Q, &s->Y1);
    return st;
}

static double max_res(const topk *s, int64_t k)
{
    double r = 0;
    for (int64_t j = 0; j < k; j++)
        r = fmax(r, sqrt(fmax(s->res[j], 0.0)));
    return r;
}

fl_status fli_la_topk_eigh(fli_la *la, fli_la *hl, int64_t n, const void *A, int64_t k, double tol,
                           uint64_t seed, int mode, void *V, double *w, fli_topk_report *report)
{
    const int64_t p = fli_topk_block(k);
    if (report)
        memset(report, 0, sizeof *report);
    if (la->dt != FL_DTYPE_F64 || hl->dt != FL_DTYPE_F64)
        return fli_la_failf(la, FL_STATUS_INVALID_ARG, "topk eigh: float64 only");
    if (k < 1 || 2 * p > n)
        return fli_la_failf(la, FL_STATUS_UNSUPPORTED,
                            "topk eigh: k=%lld needs a block of %lld > n/2 = %lld: use a full eigensolver",
                            (long long)k, (long long)p, (long long)(n / 2));
    topk s;
    memset(&s, 0, sizeof s);
    s.la = la, s.hl = hl, s.n = n, s.p = p, s.A = A, s.orth = mode & 3;
    s.host_lapack = (mode & FLI_TOPK_HOST_LAPACK) != 0;
    s.Hh = malloc(sizeof(double) * (size_t)(3 * p * p + 5 * p + fli_small_syev_work(p)));
    fl_status st =
        s.Hh ? FL_STATUS_OK : fli_la_failf(la, FL_STATUS_OUT_OF_MEMORY, "topk eigh: out of host memory");
    if (!st) {
        s.Uh = s.Hh + 2 * p * p + 2 * p;
        s.t = s.Uh + p * p;
        s.res = s.t + p;
        s.gu = s.res + p;
        s.ework = s.gu + p;
    }
    void **bufs[] = {&s.Q, &s.Y0, &s.Y1, &s.W, &s.R, &s.Ys};
    for (int i = 0; i < 6 && !st; i++)
        st = fli_la_mat(la, n, p, bufs[i]);
    if (!st)
        st = fli_la_mat(la, p, 2 * p + 2, &s.Hd);
    if (!st)
        st = fli_la_mat(la, p, p, &s.Gd);
    if (!st)
        st = fli_la_mat(la, n, n, &s.As);
    /* a random orthonormal start and its Ritz pairs */
    int steps = 0, degree = 0;
    double w0 = wall_ms(), ms_fo = 0, ms_rr = 0;
    if (!st)
        st = la->ops->randn(la, n, p, s.Q, n, seed);
    if (!st)
        st = orth_rr(&s);
    const double ms_start = wall_ms() - w0;
    double r = 0, r_prev = 0;
    while (!st) {
        const double t0 = s.t[0];
        r_prev = r;
        r = max_res(&s, k);
        if (!(t0 > 0) || r <= tol * t0)
            break; /* converged (a zero matrix converges at once) */
        /* the damped interval [0, b] and the k-th pair's rate per degree */
        const double b = fmax(s.t[p - 1], 1e-12 * t0), c = 0.5 * b, e = 0.5 * b;
        const double xk = (s.t[k - 1] - c) / e, x0 = (t0 - c) / e;
        const double rate = xk > 1 ? acosh(xk) : 0; /* log of the gain per degree */
        const double need = log(10 * r / (tol * t0));
        int m = rate > 0 ? (int)ceil(need / rate) : MAX_DEGREE;
        const int cap = (int)floor(acosh(FILTER_GAIN) / acosh(fmax(x0, 1.0 + 1e-12)));
        m = m > cap ? cap : m;
        m = m > MAX_DEGREE ? MAX_DEGREE : m < 1 ? 1 : m;
        /* what the rest of the budget can still buy: give up early rather
         * than spend it and then pay for the full eigensolver too */
        const int left = TOTAL_DEGREE - degree;
        const int stalled = steps >= 2 && r > 0.1 * r_prev; /* the rate was an illusion */
        if (steps >= MAX_STEPS || left < m || rate * (double)left < need - log(10.0) || stalled) {
            st = fli_la_failf(la, FL_STATUS_NUMERICAL,
                              "topk eigh: no convergence (k=%lld, residual %.2g of %.2g wanted, eigenvalue "
                              "ratio t_k / t_p = %.4g after %d steps)",
                              (long long)k, r / t0, tol, s.t[k - 1] / fmax(s.t[p - 1], 1e-300), steps);
            break;
        }
        w0 = wall_ms();
        st = filter(&s, m, c, e);
        const double w1 = wall_ms();
        if (!st)
            st = orth_rr(&s);
        ms_fo += w1 - w0;
        ms_rr += wall_ms() - w1;
        degree += m;
        steps++;
    }
    if (!st)
        st = fli_la_copy(la, n, k, s.Q, n, V, n);
    if (!st)
        memcpy(w, s.t, sizeof(double) * (size_t)k);
    if (report) {
        report->iterations = steps;
        report->degree = degree;
        report->residual = s.t && s.t[0] > 0 ? r / s.t[0] : 0;
        report->ms_start = ms_start;
        report->ms_filter_orth = ms_fo;
        report->ms_rr = ms_rr;
        report->ms_host = s.ms_host;
        report->redone = s.redone;
    }
    for (int i = 0; i < 6; i++)
        la->ops->release(la, *bufs[i]);
    la->ops->release(la, s.Hd);
    la->ops->release(la, s.Gd);
    la->ops->release(la, s.As);
    free(s.Hh);
    return st;
}
