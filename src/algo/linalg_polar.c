/*
 * linalg_polar.c — the polar decomposition A = U H ("polar") and the
 * iterative polar solvers that fl_eigh's spectral divide and conquer reuses,
 * written once over fli_la so the CPU runs exactly what the GPU runs.
 *
 * Variants (A is m x n, m >= n; X_0 = A / alpha with alpha = ||A||_F, an
 * upper bound on ||A||_2):
 *   qdwh_hybrid  QDWH (Nakatsukasa, Bai & Gygi 2010): dynamically weighted
 *                Halley steps, QR-based while the weight c > 100, Cholesky
 *                after; from l_0 = u (any full-rank A converges within the
 *                iteration bound: 6 steps in float64, 5 in float32).
 *   express      Polar Express (Amsel, Persson, Musco & Gower 2025): odd
 *                quintic steps X (a I + b G + c G^2), G = X^T X, (a, b, c)
 *                minimax for the current singular-value interval, computed
 *                here at run time by a Remez exchange (no tables), in the
 *                data's precision until ||U^T U - I||_F stops improving.
 *                fli_polar_pe keeps a bf16 first phase (fast_variant) for
 *                callers that accept its error; fl_polar does not use it:
 *                on the H100 it left backward errors of 1e-2..9e-2 and did
 *                not converge on square Gaussians of n >= 512.
 *   express_warm Polar Express whose scaling and interval come from U0: the
 *                eigenvalues of sym(U0^T A) are, to second order in U0's
 *                error, the singular values of A, so a close U0 gives a tight
 *                interval [sigma_min, sigma_max] and fewer steps. U0 never
 *                changes the answer, only the schedule.
 *   zolo         Zolotarev's best rational approximation of the sign
 *                function (Nakatsukasa & Freund 2016), r = 3 terms per step,
 *                each a Cholesky solve (a QR of [X; sqrt(c) I] while the
 *                shifted Gram matrix is ill conditioned); 2-3 steps.
 * H = sym(U^T A) in the data's precision.
 */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/linalg_iter.h"
#include "core/internal.h"

/* ---- helpers ------------------------------------------------------------------------ */

fl_status fli_la_mat(fli_la *la, int64_t rows, int64_t cols, void **p)
{
    size_t b;
    *p = NULL;
    if (rows < 0 || cols < 0 || fli_mul_overflow((size_t)rows, (size_t)cols, &b) ||
        fli_mul_overflow(b, fli_la_esize(la), &b))
        return fli_la_failf(la, FL_STATUS_INVALID_ARG, "a %lld x %lld scratch matrix overflows 64-bit sizes",
                            (long long)rows, (long long)cols);
    return la->ops->alloc(la, b ? b : fli_la_esize(la), p);
}

fl_status fli_la_failf(fli_la *la, fl_status st, const char *fmt, ...)
{
    if (la->err && la->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(la->err, la->err_len, fmt, ap);
        va_end(ap);
    }
    return st;
}

fl_status fli_la_copy(fli_la *la, int64_t m, int64_t n, const void *A, int64_t lda, void *C, int64_t ldc)
{
    if (m == 0 || n == 0)
        return FL_STATUS_OK;
    return la->ops->geam(la, 0, 0, m, n, 1.0, A, lda, 0.0, NULL, m, C, ldc);
}

/* ---- QDWH ---------------------------------------------------------------------------- */

fl_status fli_polar_qdwh(fli_la *la, int64_t m, int64_t n, void *X, int64_t ldx, double l, int max_it,
                         int *iters)
{
    const fli_la_ops *op = la->ops;
    const double uu = fli_la_unit(la), tol = cbrt(5 * uu);
    const int v = fli_la_native(la);
    const int64_t ldw = m + n;
    void *Xo = NULL, *W = NULL, *Z = NULL, *Y = NULL;
    fl_status st = fli_la_mat(la, m, n, &Xo);
    if (!st)
        st = fli_la_mat(la, ldw, n, &W);
    if (!st)
        st = fli_la_mat(la, n, n, &Z);
    if (!st)
        st = fli_la_mat(la, m, n, &Y);
    int k = 0;
    l = fmin(fmax(l, uu), 1.0);
    while (!st && k < max_it) {
        /* the weights that map [l, 1] best into [l_new, 1] */
        double a = 3, b = 1, c = 3;
        if (l < 1 - 10 * uu) {
            const double l2 = l * l, dd = cbrt(4 * (1 - l2) / (l2 * l2));
            a = sqrt(1 + dd) + 0.5 * sqrt(8 - 4 * dd + 8 * (2 - l2) / (l2 * sqrt(1 + dd)));
            b = (a - 1) * (a - 1) / 4;
            c = a + b - 1;
        }
        l = fmin(1.0, l * (a + b * l * l) / (1 + c * l * l));
        st = fli_la_copy(la, m, n, X, ldx, Xo, m);
        int done = 0;
        if (!st && c <= 100) {
            /* X <- (b/c) X + (a - b/c) X (I + c X^T X)^{-1} */
            int info = 0;
            st = op->fill(la, n, n, Z, n, 0.0, 1.0);
            if (!st)
                st = op->gemm(la, v, 0, 1, 0, n, n, m, c, X, ldx, X, ldx, 1.0, Z, n);
            if (!st)
                st = op->potrf(la, n, Z, n, &info);
            if (!st && info == 0) {
                st = fli_la_copy(la, m, n, X, ldx, Y, m);
                if (!st)
                    st = op->trsm(la, 1, m, n, Z, n, Y, m);
                if (!st)
                    st = op->trsm(la, 0, m, n, Z, n, Y, m);
                if (!st)
                    st = op->geam(la, 0, 0, m, n, b / c, X, ldx, a - b / c, Y, m, X, ldx);
                done = 1;
            }
        }
        if (!st && !done) {
            /* [sqrt(c) X; I] = [Q1; Q2] R: X <- (b/c) X + (a - b/c)/sqrt(c) Q1 Q2^T */
            const double sc = sqrt(c);
            st = op->geam(la, 0, 0, m, n, sc, X, ldx, 0.0, NULL, m, W, ldw);
            if (!st)
                st = op->fill(la, n, n, fli_la_at(la, W, m, 0, ldw), ldw, 0.0, 1.0);
            if (!st)
                st = op->qr(la, ldw, n, W, ldw, NULL, 1);
            if (!st)
                st = op->gemm(la, v, 0, 0, 1, m, n, n, (a - b / c) / sc, W, ldw, fli_la_at(la, W, m, 0, ldw),
                              ldw, b / c, X, ldx);
        }
        if (st)
            break;
        k++;
        double d = 0, nx = 0;
        st = op->geam(la, 0, 0, m, n, 1.0, X, ldx, -1.0, Xo, m, Xo, m);
        if (!st)
            st = op->fro(la, m, n, Xo, m, &d);
        if (!st)
            st = op->fro(la, m, n, X, ldx, &nx);
        if (!st && !(isfinite(d) && isfinite(nx)))
            st = fli_la_failf(la, FL_STATUS_NUMERICAL, "polar (QDWH): the iteration diverged at step %d", k);
        if (st || (d <= tol * nx && l >= 1 - 10 * uu))
            break;
    }
    op->release(la, Xo);
    op->release(la, W);
    op->release(la, Z);
    op->release(la, Y);
    *iters = k;
    return st;
}

/* ---- Polar Express coefficients -------------------------------------------------------- */

static double p5(const double c[3], double x)
{
    const double y = x * x;
    return x * (c[0] + y * (c[1] + y * c[2]));
}

/* Positive roots y of A y^2 + B y + C = 0 into y[], count returned. */
static int quad_roots(double A, double B, double C, double y[2])
{
    int n = 0;
    if (fabs(A) < 1e-300) {
        if (B != 0 && -C / B > 0)
            y[n++] = -C / B;
        return n;
    }
    const double disc = B * B - 4 * A * C;
    if (disc < 0)
        return 0;
    const double q = -0.5 * (B + copysign(sqrt(disc), B));
    double r1 = q / A, r2 = q != 0 ? C / q : r1;
    if (r1 > r2) {
        const double t = r1;
        r1 = r2;
        r2 = t;
    }
    if (r1 > 0)
        y[n++] = r1;
    if (r2 > 0 && r2 != r1)
        y[n++] = r2;
    return n;
}

void fli_pe_range(const double c[3], double l, double u, double *lo, double *hi)
{
    double y[2];
    const int ny = quad_roots(5 * c[2], 3 * c[1], c[0], y);
    double mn = fmin(p5(c, l), p5(c, u)), mx = fmax(p5(c, l), p5(c, u));
    for (int i = 0; i < ny; i++) {
        const double x = sqrt(y[i]);
        if (x > l && x < u) {
            mn = fmin(mn, p5(c, x));
            mx = fmax(mx, p5(c, x));
        }
    }
    *lo = mn;
    *hi = mx;
}

/* Gaussian elimination with partial pivoting on a 4 x 5 augmented system. */
static int solve4(double M[4][5], double x[4])
{
    for (int k = 0; k < 4; k++) {
        int p = k;
        for (int i = k + 1; i < 4; i++)
            if (fabs(M[i][k]) > fabs(M[p][k]))
                p = i;
        if (M[p][k] == 0)
            return -1;
        for (int j = 0; j < 5; j++) {
            const double t = M[k][j];
            M[k][j] = M[p][j];
            M[p][j] = t;
        }
        for (int i = k + 1; i < 4; i++) {
            const double f = M[i][k] / M[k][k];
            for (int j = k; j < 5; j++)
                M[i][j] -= f * M[k][j];
        }
    }
    for (int k = 3; k >= 0; k--) {
        double s = M[k][4];
        for (int j = k + 1; j < 4; j++)
            s -= M[k][j] * x[j];
        x[k] = s / M[k][k];
    }
    return 0;
}

/* Below this width (relative) the interval gets the Taylor polynomial of
 * sign around its centre; below this left end (relative to u) the Remez
 * runs on [u / 1000, u]: the optimal polynomial barely changes below it,
 * its slope at 0 is what moves tiny singular values, and the exchange stays
 * well conditioned. */
#define PE_NARROW 1e-3
#define PE_CUSHION 1e-3

int fli_pe_coeffs(double l, double u, double c[3])
{
    double t = l / u;
    if (!(t > 0))
        t = PE_CUSHION;
    if (1 - t < PE_NARROW) {
        /* q(y) = (15 y - 10 y^3 + 3 y^5) / 8: q(1) = 1, q'(1) = q''(1) = 0 */
        const double s = 2 / (l + u);
        c[0] = 15 * s / 8;
        c[1] = -10 * s * s * s / 8;
        c[2] = 3 * s * s * s * s * s / 8;
        return 1;
    }
    if (t < PE_CUSHION)
        t = PE_CUSHION;
    /* Remez on [t, 1]: 1 - p alternates +E, -E, +E, -E at t < x1 < x2 < 1 */
    double x[4];
    for (int i = 0; i < 4; i++)
        x[i] = 0.5 * (1 + t) - 0.5 * (1 - t) * cos(M_PI * i / 3);
    double s[4] = {0, 0, 0, 0};
    int ok = 0;
    for (int it = 0; it < 100; it++) {
        double M[4][5];
        for (int i = 0; i < 4; i++) {
            const double x2 = x[i] * x[i];
            M[i][0] = x[i];
            M[i][1] = x[i] * x2;
            M[i][2] = x[i] * x2 * x2;
            M[i][3] = (i % 2) ? -1.0 : 1.0;
            M[i][4] = 1.0;
        }
        if (solve4(M, s))
            break;
        double y[2];
        if (quad_roots(5 * s[2], 3 * s[1], s[0], y) != 2)
            break;
        const double x1 = sqrt(y[0]), x2 = sqrt(y[1]);
        if (!(x1 > t && x2 < 1 && x1 < x2))
            break;
        const double move = fmax(fabs(x1 - x[1]), fabs(x2 - x[2]));
        x[1] = x1;
        x[2] = x2;
        if (move < 1e-15) {
            ok = 1;
            break;
        }
    }
    if (ok && !(s[3] > 0 && s[3] < 1))
        ok = 0;
    if (!ok) {
        /* not expected for any t in [1e-3, 1 - 1e-3]; the Taylor step is
         * always valid (it only converges more slowly) */
        const double sc = 2 / (l + u);
        c[0] = 15 * sc / 8;
        c[1] = -10 * sc * sc * sc / 8;
        c[2] = 3 * sc * sc * sc * sc * sc / 8;
        return 1;
    }
    c[0] = s[0] / u;
    c[1] = s[1] / (u * u * u);
    c[2] = s[2] / (u * u * u * u * u);
    return 0;
}

/* ---- Polar Express iteration --------------------------------------------------------- */

fl_status fli_polar_pe(fli_la *la, int64_t m, int64_t n, void *X, int64_t ldx, const fli_pe_opts *o,
                       int *steps, double *r_out)
{
    const fli_la_ops *op = la->ops;
    const double uu = fli_la_unit(la), sqn = sqrt((double)n);
    const int nat = fli_la_native(la);
    /* the low-precision phase only where it can pay: tensor cores gain
     * nothing on small matrices, and there its rounding is a large share
     * of every entry (a 2 x 2 float32 iteration diverged in bf16 on the
     * H100 while the CPU's run of the same arithmetic converged) */
    int fast = o->fast_variant >= 0 && o->fast_variant != nat && n >= 64;
    void *G = NULL, *T = NULL, *P = NULL, *Y = NULL;
    fl_status st = fli_la_mat(la, n, n, &G);
    if (!st)
        st = fli_la_mat(la, n, n, &T);
    if (!st)
        st = fli_la_mat(la, n, n, &P);
    if (!st)
        st = fli_la_mat(la, m, n, &Y);
    void *cur = X, *nxt = Y;
    int64_t ldc = ldx, ldn = m;
    double l = o->l, u = o->u, r = INFINITY, r_prev = INFINITY;
    /* ||X^T X - I||_F of an orthonormal X computed in the native precision */
    const double tol_r = 10 * uu * (double)n;
    int k = 0;
    while (!st) {
        const int v = fast ? o->fast_variant : nat;
        st = op->gemm(la, v, 0, 1, 0, n, n, m, 1.0, cur, ldc, cur, ldc, 0.0, G, n);
        if (!st)
            st = op->shift_diag(la, n, G, n, -1.0);
        if (!st)
            st = op->fro(la, n, n, G, n, &r);
        if (!st)
            st = op->shift_diag(la, n, G, n, 1.0);
        if (st)
            break;
        if (!isfinite(r)) {
            st = fli_la_failf(la, FL_STATUS_NUMERICAL,
                              "polar (Polar Express): the iteration diverged at step %d", k);
            break;
        }
        if (fast && (r <= 0.05 || (r < 1 && r > 0.7 * r_prev))) {
            /* bf16 has done what it can: the native phase starts from here */
            fast = 0;
            r_prev = INFINITY;
            continue;
        }
        const double slack = fast ? 0x1p-7 : 16 * uu;
        if (o->sign_mode) {
            if (l >= 1 - 64 * uu && u <= 1 + 64 * uu)
                break;
        } else if (!fast && (r <= tol_r || (r < 1e-3 && r > 0.25 * r_prev)))
            break;
        if (k >= o->max_steps)
            break;
        /* the interval: what the tracking says, checked against what
         * ||G - I||_F proves (every eigenvalue of G is within r of 1) */
        const double ra = r * (1 + slack) + (fast ? 0.02 : 0);
        const double lr = ra < 1 ? sqrt(1 - ra) : 0, ur = sqrt(1 + ra);
        const double pred = sqn * fmax(1 - l * l, u * u - 1);
        if (!o->sign_mode && ra > 2 * pred + 0.05)
            l = lr > 0 ? lr : fmin(o->l, PE_CUSHION * fmin(u, ur)); /* the tracking was wrong: restart it */
        else
            l = fmax(l, lr);
        u = fmin(u, ur);
        if (u <= l)
            u = l * (1 + 2 * slack);
        double c[3];
        fli_pe_coeffs(l, u, c);
        /* P = a I + b G + c G^2 = a I + G (b I + c G); nxt = cur P */
        st = op->geam(la, 0, 0, n, n, c[2], G, n, 0.0, NULL, n, T, n);
        if (!st)
            st = op->shift_diag(la, n, T, n, c[1]);
        if (!st)
            st = op->gemm(la, v, 0, 0, 0, n, n, n, 1.0, G, n, T, n, 0.0, P, n);
        if (!st)
            st = op->shift_diag(la, n, P, n, c[0]);
        if (!st)
            st = op->gemm(la, v, 0, 0, 0, m, n, n, 1.0, cur, ldc, P, n, 0.0, nxt, ldn);
        if (st)
            break;
        void *tp = cur;
        const int64_t tl = ldc;
        cur = nxt;
        ldc = ldn;
        nxt = tp;
        ldn = tl;
        double lo, hi;
        fli_pe_range(c, l, u, &lo, &hi);
        l = fmax(lo * (1 - slack), 1e-300);
        u = hi * (1 + slack);
        r_prev = r;
        k++;
    }
    if (!st && cur != X)
        st = fli_la_copy(la, m, n, cur, ldc, X, ldx);
    if (!st && !o->sign_mode && !(r < 1e-2))
        st = fli_la_failf(la, FL_STATUS_NUMERICAL,
                          "polar (Polar Express): no convergence in %d steps (||U^T U - I||_F = %.3g): A is "
                          "numerically rank deficient or too ill-conditioned for this variant",
                          k, r);
    op->release(la, G);
    op->release(la, T);
    op->release(la, P);
    op->release(la, Y);
    *steps = k;
    if (r_out)
        *r_out = r;
    return st;
}

/* ---- Zolotarev ------------------------------------------------------------------------ */

/* Arithmetic-geometric mean. */
static double agm(double a, double b)
{
    for (int i = 0; i < 64 && fabs(a - b) > 1e-16 * a; i++) {
        const double t = 0.5 * (a + b);
        b = sqrt(a * b);
        a = t;
    }
    return a;
}

/* Jacobi's sn and cn of x for the modulus k given by its complement
 * kp = sqrt(1 - k^2) (passing kp keeps full accuracy when k is near 1):
 * the descending Landen / AGM scheme of Abramowitz & Stegun 16.4. */
static void ellip_sncn(double x, double kp, double *sn, double *cn)
{
    double a[40], c[40];
    double b = kp;
    a[0] = 1;
    c[0] = sqrt((1 - kp) * (1 + kp));
    int N = 0;
    while (N < 38 && fabs(c[N]) > 1e-17 * a[N]) {
        a[N + 1] = 0.5 * (a[N] + b);
        c[N + 1] = 0.5 * (a[N] - b);
        b = sqrt(a[N] * b);
        N++;
    }
    double phi = ldexp(a[N] * x, N);
    for (int i = N; i > 0; i--)
        phi = 0.5 * (phi + asin(c[i] / a[i] * sin(phi)));
    *sn = sin(phi);
    *cn = cos(phi);
}

/* Zhat(x) = x prod_j (x^2 + ceven_j) / (x^2 + codd_j). */
static double zhat(double x, int r, const double *c)
{
    double v = x;
    for (int j = 0; j < r; j++)
        v *= (x * x + c[2 * j + 1]) / (x * x + c[2 * j]);
    return v;
}

/* Golden-section refinement of an extremum of zhat in [lo, hi]. */
static double golden(double lo, double hi, int r, const double *c, int want_max)
{
    const double g = 0.6180339887498949;
    double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo);
    double f1 = zhat(x1, r, c), f2 = zhat(x2, r, c);
    for (int i = 0; i < 100 && hi - lo > 1e-15 * hi; i++) {
        if (want_max ? f1 > f2 : f1 < f2) {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - g * (hi - lo);
            f1 = zhat(x1, r, c);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + g * (hi - lo);
            f2 = zhat(x2, r, c);
        }
    }
    return zhat(0.5 * (lo + hi), r, c);
}

void fli_zolo_coeffs(double l, int r, double *a, double *codd, double *M, double *lnew)
{
    double c[16];
    /* K' = K(l') with l' = sqrt(1 - l^2): the AGM of 1 and l */
    const double Kp = M_PI / (2 * agm(1.0, l));
    for (int i = 1; i <= 2 * r; i++) {
        double sn, cn;
        ellip_sncn(i * Kp / (2 * r + 1), l, &sn, &cn);
        c[i - 1] = l * l * sn * sn / (cn * cn);
    }
    for (int j = 0; j < r; j++) {
        double num = 1, den = 1;
        for (int k = 0; k < r; k++) {
            num *= c[2 * j] - c[2 * k + 1];
            if (k != j)
                den *= c[2 * j] - c[2 * k];
        }
        a[j] = -num / den;
        codd[j] = c[2 * j];
    }
    /* extremes of zhat over [l, 1]: a log-spaced scan, then golden section */
    enum { NS = 4000 };
    const double ll = log(l);
    double mn = fmin(zhat(l, r, c), zhat(1.0, r, c)), mx = fmax(zhat(l, r, c), zhat(1.0, r, c));
    double prev2 = zhat(l, r, c), prev = zhat(exp(ll * (1 - 1.0 / NS)), r, c);
    for (int i = 2; i <= NS; i++) {
        const double x = exp(ll * (1 - (double)i / NS));
        const double f = zhat(x, r, c);
        const double xa = exp(ll * (1 - (double)(i - 2) / NS));
        if (prev >= prev2 && prev >= f)
            mx = fmax(mx, golden(xa, x, r, c, 1));
        if (prev <= prev2 && prev <= f)
            mn = fmin(mn, golden(xa, x, r, c, 0));
        prev2 = prev;
        prev = f;
    }
    *M = 1 / mx;
    *lnew = mn / mx;
}

fl_status fli_polar_zolo(fli_la *la, int64_t m, int64_t n, void *X, int64_t ldx, double l, int r, int max_it,
                         int *iters)
{
    const fli_la_ops *op = la->ops;
    const double uu = fli_la_unit(la);
    const int v = fli_la_native(la);
    const int64_t ldw = m + n;
    void *G = NULL, *Z = NULL, *Y = NULL, *W = NULL, *Xn = NULL;
    fl_status st = fli_la_mat(la, n, n, &G);
    if (!st)
        st = fli_la_mat(la, n, n, &Z);
    if (!st)
        st = fli_la_mat(la, m, n, &Y);
    if (!st)
        st = fli_la_mat(la, ldw, n, &W);
    if (!st)
        st = fli_la_mat(la, m, n, &Xn);
    int k = 0;
    l = fmin(fmax(l, uu), 1.0);
    while (!st && k < max_it && l < 1 - 10 * uu) {
        double a[8], codd[8], M, lnew;
        fli_zolo_coeffs(l, r, a, codd, &M, &lnew);
        /* Xn = M X + sum_j M a_j X (X^T X + codd_j I)^{-1} */
        st = op->geam(la, 0, 0, m, n, M, X, ldx, 0.0, NULL, m, Xn, m);
        if (!st)
            st = op->gemm(la, v, 0, 1, 0, n, n, m, 1.0, X, ldx, X, ldx, 0.0, G, n);
        for (int j = 0; !st && j < r; j++) {
            const double cj = codd[j];
            int done = 0;
            if ((1 + cj) / (l * l + cj) <= 100) {
                int info = 0;
                st = fli_la_copy(la, n, n, G, n, Z, n);
                if (!st)
                    st = op->shift_diag(la, n, Z, n, cj);
                if (!st)
                    st = op->potrf(la, n, Z, n, &info);
                if (!st && info == 0) {
                    st = fli_la_copy(la, m, n, X, ldx, Y, m);
                    if (!st)
                        st = op->trsm(la, 1, m, n, Z, n, Y, m);
                    if (!st)
                        st = op->trsm(la, 0, m, n, Z, n, Y, m);
                    if (!st)
                        st = op->geam(la, 0, 0, m, n, 1.0, Xn, m, M * a[j], Y, m, Xn, m);
                    done = 1;
                }
            }
            if (!st && !done) {
                /* [X; sqrt(c) I] = [Q1; Q2] R: X (X^T X + c I)^{-1} = Q1 Q2^T / sqrt(c) */
                const double sc = sqrt(cj);
                st = fli_la_copy(la, m, n, X, ldx, W, ldw);
                if (!st)
                    st = op->fill(la, n, n, fli_la_at(la, W, m, 0, ldw), ldw, 0.0, sc);
                if (!st)
                    st = op->qr(la, ldw, n, W, ldw, NULL, 1);
                if (!st)
                    st = op->gemm(la, v, 0, 0, 1, m, n, n, M * a[j] / sc, W, ldw, fli_la_at(la, W, m, 0, ldw),
                                  ldw, 1.0, Xn, m);
            }
        }
        if (!st)
            st = fli_la_copy(la, m, n, Xn, m, X, ldx);
        if (st)
            break;
        k++;
        l = fmin(1.0, lnew);
    }
    op->release(la, G);
    op->release(la, Z);
    op->release(la, Y);
    op->release(la, W);
    op->release(la, Xn);
    *iters = k;
    return st;
}

/* ---- fl_polar ----------------------------------------------------------------------------- */

typedef enum polar_variant { PV_QDWH = 0, PV_EXPRESS, PV_EXPRESS_WARM, PV_ZOLO, PV_N } polar_variant;
static const char *const polar_names[PV_N] = {"qdwh_hybrid", "express", "express_warm", "zolo"};

static int polar_parse(const char *s)
{
    if (!s || !strcmp(s, "auto"))
        return PV_QDWH;
    if (!strncmp(s, "polar_", 6))
        s += 6;
    for (int i = 0; i < PV_N; i++)
        if (!strcmp(s, polar_names[i]))
            return i;
    return -1;
}

/* A descriptor with ld resolved (0 = cols). */
static fl_array resolved(const fl_array *a)
{
    fl_array r = *a;
    r.ld = fli_ld(a);
    return r;
}

static fl_status check_in(fl_ctx *ctx, const fl_array *a, const char *what)
{
    fl_status st = fli_check_array(ctx, a, what);
    if (st)
        return st;
    if (a->dtype != FL_DTYPE_F32 && a->dtype != FL_DTYPE_F64)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s has dtype %s: expected f32 or f64", what,
                        fl_dtype_name(a->dtype));
    if (a->rows < 1 || a->cols < 1)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s is empty (%lld x %lld): expected at least 1 x 1",
                        what, (long long)a->rows, (long long)a->cols);
    if (a->mem == FL_MEM_HOST)
        return fli_check_finite(ctx, a, what);
    return FL_STATUS_OK;
}

static fl_status check_companion(fl_ctx *ctx, const fl_array *A, const fl_array *a, int64_t rows,
                                 int64_t cols, const char *what)
{
    fl_status st = fli_check_array(ctx, a, what);
    if (st)
        return st;
    if (a->dtype != A->dtype || a->rows != rows || a->cols != cols)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s is %s %lld x %lld: expected %s %lld x %lld", what,
                        fl_dtype_name(a->dtype), (long long)a->rows, (long long)a->cols,
                        fl_dtype_name(A->dtype), (long long)rows, (long long)cols);
    if (fli_array_device(a) != fli_array_device(A))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "%s is in another memory space than A: all arrays on the host or all on one GPU",
                        what);
    return FL_STATUS_OK;
}

/* The host BLAS sizes its team from the calling thread's OpenMP setting. */
static int threads_enter(fl_ctx *ctx)
{
    const int prev = omp_get_max_threads();
    omp_set_num_threads(ctx->threads > 0 ? ctx->threads : prev);
    return prev;
}

/* Scaling and interval of express_warm from U0: the extreme eigenvalues of
 * sym(U0^T A) (n x n). */
static fl_status warm_interval(fli_la *la, int64_t m, int64_t n, const void *A, const void *U0, double *alpha,
                               double *l)
{
    const fli_la_ops *op = la->ops;
    void *M = NULL, *S = NULL;
    double *w = malloc(sizeof(double) * (size_t)n);
    fl_status st = w ? FL_STATUS_OK : fli_la_failf(la, FL_STATUS_OUT_OF_MEMORY, "polar: out of host memory");
    if (!st)
        st = fli_la_mat(la, n, n, &M);
    if (!st)
        st = fli_la_mat(la, n, n, &S);
    if (!st)
        st = op->gemm(la, fli_la_native(la), 0, 1, 0, n, n, m, 1.0, U0, m, A, m, 0.0, M, n);
    if (!st)
        st = op->geam(la, 0, 1, n, n, 0.5, M, n, 0.5, M, n, S, n);
    if (!st)
        st = op->syevd(la, n, S, n, w);
    if (!st) {
        *alpha = w[n - 1];
        *l = w[0] / w[n - 1];
    }
    op->release(la, M);
    op->release(la, S);
    free(w);
    return st;
}

fl_status fl_polar(fl_ctx *ctx, const char *variant, const fl_array *A, const fl_array *U0, fl_array *U,
                   fl_array *H, fl_linalg_report *report)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    const int pv = polar_parse(variant);
    if (pv < 0)
        return fli_fail(
            ctx, FL_STATUS_INVALID_ARG,
            "polar: unknown variant \"%s\": expected qdwh_hybrid, express, express_warm, zolo or NULL",
            variant);
    fl_status st = check_in(ctx, A, "A");
    if (st)
        return st;
    const int64_t m = A->rows, n = A->cols;
    if (m < n)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "polar: A is %lld x %lld: expected m >= n (for a wide A, decompose A^T)",
                        (long long)m, (long long)n);
    if (!U)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "polar: U is NULL: expected an %lld x %lld array",
                        (long long)m, (long long)n);
    if ((st = check_companion(ctx, A, U, m, n, "U")) || (H && (st = check_companion(ctx, A, H, n, n, "H"))))
        return st;
    if (pv == PV_EXPRESS_WARM) {
        if (!U0)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                            "polar: variant express_warm needs U0 (%lld x %lld, a nearby polar factor)",
                            (long long)m, (long long)n);
        if ((st = check_companion(ctx, A, U0, m, n, "U0")) || (st = check_in(ctx, U0, "U0")))
            return st;
    } else if (U0)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "polar: U0 is only read by variant express_warm, not %s",
                        polar_names[pv]);

    fli_la la;
    fl_backend backend;
    if ((st = fli_la_open(ctx, A->dtype, fli_array_device(A), &la, &backend)))
        return st;
    const int prev_threads = threads_enter(ctx);
    const fli_la_ops *op = la.ops;
    const double uu = fli_la_unit(&la);
    const fl_array Ar = resolved(A);
    void *Am = NULL, *X = NULL, *Um0 = NULL, *Hm = NULL, *Hs = NULL;
    int iters = 0;
    double alpha = 0, warm_alpha = 0, tol = 0;
    st = fli_la_load(&la, ctx, &Ar, &Am);
    if (!st)
        st = op->fro(&la, m, n, Am, m, &alpha);
    if (!st && !isfinite(alpha))
        st = fli_fail(ctx, FL_STATUS_INVALID_ARG, "A contains NaN or Inf: input must be finite");
    if (!st && alpha == 0)
        st = fli_fail(ctx, FL_STATUS_NUMERICAL, "polar: A is zero: its polar factor is not unique");
    if (!st)
        st = fli_la_mat(&la, m, n, &X);
    if (!st && pv == PV_EXPRESS_WARM) {
        const fl_array Ur = resolved(U0);
        double a = 0, lw = 0;
        st = fli_la_load(&la, ctx, &Ur, &Um0);
        if (!st)
            st = warm_interval(&la, m, n, Am, Um0, &a, &lw);
        if (!st) {
            /* a poor U0 (sym(U0^T A) not positive definite) gives no
             * usable interval: fall back to the cold bounds */
            if (a > 0 && a <= alpha * 1.000001 && lw > 0) {
                warm_alpha = a;
                tol = lw;
            } else
                tol = -1;
        }
    }
    if (!st) {
        switch (pv) {
        case PV_QDWH:
            tol = cbrt(5 * uu);
            st = op->geam(&la, 0, 0, m, n, 1 / alpha, Am, m, 0.0, NULL, m, X, m);
            if (!st)
                st = fli_polar_qdwh(&la, m, n, X, m, uu, 30, &iters);
            break;
        case PV_ZOLO:
            tol = 10 * uu;
            st = op->geam(&la, 0, 0, m, n, 1 / alpha, Am, m, 0.0, NULL, m, X, m);
            if (!st)
                st = fli_polar_zolo(&la, m, n, X, m, uu, 3, 8, &iters);
            break;
        case PV_EXPRESS:
        case PV_EXPRESS_WARM: {
            /* the warm interval gets a 5% margin each side: the eigenvalues of
             * sym(U0^T A) are the singular values only up to U0's error.
             * Should a misleading U0 still make the iteration diverge, the
             * cold schedule runs instead (U0 costs time, never the answer). */
            int warm = pv == PV_EXPRESS_WARM && tol > 0;
            for (int attempt = 0; attempt < 2 && !st; attempt++) {
                const double scale = warm ? warm_alpha * 1.05 : alpha * 1.01;
                fli_pe_opts o = {-1, 0, 1 / 1.01, 0, 60};
                if (warm) {
                    o.l = tol * 0.95 / 1.05;
                    o.u = 1 / 1.05 * 1.0001;
                } else {
                    /* a true lower bound on sigma_min(X0), not the cushion:
                     * X0 = A / ||A||_F puts a square Gaussian's smallest
                     * singular value near 1e-4 at n = 512, and an interval
                     * that leaves it out never converges. Below u relative,
                     * singular values are rounding noise anyway; the
                     * polynomial lifts l by its slope at 0 each step, so a
                     * small bound costs a few steps, not accuracy. */
                    o.l = la.dt == FL_DTYPE_F32 ? 0x1p-24 : 0x1p-53;
                }
                int steps = 0;
                st = op->geam(&la, 0, 0, m, n, 1 / scale, Am, m, 0.0, NULL, m, X, m);
                if (!st)
                    st = fli_polar_pe(&la, m, n, X, m, &o, &steps, NULL);
                iters += steps;
                if (st != FL_STATUS_NUMERICAL || !warm)
                    break;
                st = FL_STATUS_OK;
                warm = 0;
                fli_clear_error(ctx);
            }
            tol = 10 * uu * (double)n;
            break;
        }
        default: st = fli_fail(ctx, FL_STATUS_INTERNAL, "polar: variant %d", pv);
        }
    }
    if (!st && H) {
        st = fli_la_mat(&la, n, n, &Hm);
        if (!st)
            st = fli_la_mat(&la, n, n, &Hs);
        if (!st)
            st = op->gemm(&la, fli_la_native(&la), 0, 1, 0, n, n, m, 1.0, X, m, Am, m, 0.0, Hm, n);
        if (!st)
            st = op->geam(&la, 0, 1, n, n, 0.5, Hm, n, 0.5, Hm, n, Hs, n);
    }
    fl_array Uo = resolved(U), Ho = H ? resolved(H) : Uo;
    if (!st)
        st = fli_la_store(&la, ctx, X, &Uo);
    if (!st && H)
        st = fli_la_store(&la, ctx, Hs, &Ho);
    op->release(&la, Am);
    op->release(&la, X);
    op->release(&la, Um0);
    op->release(&la, Hm);
    op->release(&la, Hs);
    omp_set_num_threads(prev_threads);
    if (!st && report) {
        memset(report, 0, sizeof *report);
        snprintf(report->variant, sizeof report->variant, "%s", polar_names[pv]);
        report->backend = backend;
        report->iterations = iters;
        report->expected_residual = tol;
    }
    return st;
}
