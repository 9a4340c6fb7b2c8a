/*
 * linalg_small.c — every eigenpair of a small symmetric matrix on the host
 * (see linalg_small.h for why it is not LAPACK's dsyevd).
 *
 * Three passes over column-major storage, each inner loop a contiguous
 * column (so -O3 vectorises it):
 *   1. Householder reduction of the scaled matrix to tridiagonal form T =
 *      Q^T A Q, one reflector H_k = I - tau_k v_k v_k^T per column, the
 *      trailing block updated as a full symmetric matrix (rank-2 update
 *      by columns);
 *   2. Z = H_0 H_1 ... H_{n-3}, formed from the last reflector back;
 *   3. implicit QL steps with Wilkinson shifts on T's diagonal d and
 *      off-diagonal e, each plane rotation applied to two adjacent columns
 *      of Z; Z's columns end as A's eigenvectors.
 */
#include "algo/linalg_small.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "core/internal.h" /* FLI_VECTOR_CLONES */

#define QL_MAX_STEPS 60 /* per eigenvalue; two or three is usual */

/* c0 <- c c0 - s c1, c1 <- s c0 + c c1 over n entries */
static void rotate_cols(int64_t n, double *restrict c0, double *restrict c1, double c, double s)
{
    for (int64_t i = 0; i < n; i++) {
        const double a = c0[i], b = c1[i];
        c0[i] = c * a - s * b;
        c1[i] = s * a + c * b;
    }
}

/* Reduces the full symmetric n x n matrix S (leading dimension n) to
 * tridiagonal d, e; reflector k's vector is left in S's column k below
 * the subdiagonal (its leading 1 implied), its tau in tau[k]. pw: n. */
FLI_VECTOR_CLONES static void tridiagonalise(int64_t n, double *S, double *d, double *e, double *tau,
                                             double *pw)
{
    for (int64_t k = 0; k + 2 < n; k++) {
        const int64_t m = n - k - 1; /* the reflector's length */
        double *x = S + (k + 1) + k * n;
        double sigma = 0;
        for (int64_t i = 1; i < m; i++)
            sigma += x[i] * x[i];
        d[k] = S[k + k * n];
        if (sigma == 0) { /* already reduced: H_k = I */
            e[k] = x[0];
            tau[k] = 0;
            continue;
        }
        const double alpha = x[0], norm = sqrt(alpha * alpha + sigma);
        const double beta = alpha > 0 ? -norm : norm; /* H x = beta e_1, no cancellation */
        const double v0 = alpha - beta, t = (beta - alpha) / beta;
        for (int64_t i = 1; i < m; i++)
            x[i] /= v0;
        x[0] = 1.0;
        e[k] = beta;
        tau[k] = t;
        /* trailing block B (m x m at (k+1, k+1)): B <- H B H = B - v w^T -
         * w v^T with p = t B v, w = p - (t / 2)(p^T v) v */
        double *B = S + (k + 1) + (k + 1) * n;
        memset(pw, 0, sizeof(double) * (size_t)m);
        for (int64_t j = 0; j < m; j++) {
            const double vj = t * x[j];
            const double *bj = B + j * n;
            for (int64_t i = 0; i < m; i++)
                pw[i] += bj[i] * vj;
        }
        double pv = 0;
        for (int64_t i = 0; i < m; i++)
            pv += pw[i] * x[i];
        const double kk = 0.5 * t * pv;
        for (int64_t i = 0; i < m; i++)
            pw[i] -= kk * x[i];
        for (int64_t j = 0; j < m; j++) {
            const double vj = x[j], wj = pw[j];
            double *bj = B + j * n;
            for (int64_t i = 0; i < m; i++)
                bj[i] -= x[i] * wj + pw[i] * vj;
        }
    }
    if (n >= 2) {
        d[n - 2] = S[(n - 2) + (n - 2) * n];
        e[n - 2] = S[(n - 1) + (n - 2) * n];
    }
    d[n - 1] = S[(n - 1) + (n - 1) * n];
    e[n - 1] = 0;
}

/* Z (n x n, leading dimension ldz) <- H_0 ... H_{n-3} from the reflectors in
 * S's columns. H_k touches rows and columns k+1 .. n-1 only, and the
 * product of the later ones is the identity outside them, so applying H_k
 * from the left needs columns k+1 .. n-1 alone. */
FLI_VECTOR_CLONES static void form_q(int64_t n, const double *S, const double *tau, double *Z, int64_t ldz)
{
    for (int64_t j = 0; j < n; j++) {
        memset(Z + j * ldz, 0, sizeof(double) * (size_t)n);
        Z[j + j * ldz] = 1.0;
    }
    for (int64_t k = n - 3; k >= 0; k--) {
        if (tau[k] == 0)
            continue;
        const int64_t m = n - k - 1;
        const double *v = S + (k + 1) + k * n; /* v[0] == 1 was stored there */
        for (int64_t j = k + 1; j < n; j++) {
            double *z = Z + (k + 1) + j * ldz;
            double s = 0;
            for (int64_t i = 0; i < m; i++)
                s += v[i] * z[i];
            s *= tau[k];
            for (int64_t i = 0; i < m; i++)
                z[i] -= s * v[i];
        }
    }
}

/* Implicit QL with Wilkinson shifts on the tridiagonal (d, e), rotating
 * Z's columns along. Values are at most ~1 (A was scaled), so the plain
 * sqrt(f^2 + g^2) is safe. Returns 0, or -1 past QL_MAX_STEPS. */
FLI_VECTOR_CLONES static int tridiagonal_ql(int64_t n, double *d, double *e, double *Z, int64_t ldz)
{
    for (int64_t l = 0; l < n; l++) {
        for (int steps = 0;; steps++) {
            int64_t m = l;
            for (; m + 1 < n; m++)
                if (fabs(e[m]) <= DBL_EPSILON * (fabs(d[m]) + fabs(d[m + 1])))
                    break;
            if (m == l)
                break; /* d[l] is an eigenvalue */
            if (steps == QL_MAX_STEPS)
                return -1;
            /* the shift: the eigenvalue of T's leading 2 x 2 at l nearer d[l] */
            double g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            double r = sqrt(g * g + 1.0);
            g = d[m] - d[l] + e[l] / (g + copysign(r, g));
            double s = 1.0, c = 1.0, p = 0.0;
            int64_t i = m - 1;
            int split = 0;
            for (; i >= l; i--) {
                const double f = s * e[i], b = c * e[i];
                r = sqrt(f * f + g * g);
                e[i + 1] = r;
                if (r == 0) { /* the rotation vanished: T split at i + 1 */
                    d[i + 1] -= p;
                    e[m] = 0;
                    split = 1;
                    break;
                }
                const double ir = 1.0 / r;
                s = f * ir;
                c = g * ir;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
                rotate_cols(n, Z + i * ldz, Z + (i + 1) * ldz, c, s);
            }
            if (split)
                continue;
            d[l] -= p;
            e[l] = g;
            e[m] = 0;
        }
    }
    return 0;
}

int fli_small_syev(int64_t n, double *A, int64_t lda, double *w, double *work)
{
    if (n <= 0)
        return 0;
    double amax = 0;
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = j; i < n; i++) {
            const double a = fabs(A[i + j * lda]);
            if (!(a <= DBL_MAX))
                return -1; /* NaN or infinity */
            amax = a > amax ? a : amax;
        }
    double *S = work, *e = work + n * n, *tau = e + n, *pw = tau + n;
    /* S = the full symmetric matrix / amax; w holds T's diagonal */
    const double scale = amax > 0 ? 1.0 / amax : 1.0;
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = j; i < n; i++)
            S[i + j * n] = S[j + i * n] = A[i + j * lda] * scale;
    tridiagonalise(n, S, w, e, tau, pw);
    double *Z = A; /* S keeps the reflectors, so Z can take A's storage */
    form_q(n, S, tau, Z, lda);
    if (tridiagonal_ql(n, w, e, Z, lda))
        return -1;
    /* ascending, columns along; then undo the scaling */
    for (int64_t i = 0; i + 1 < n; i++) {
        int64_t lo = i;
        for (int64_t j = i + 1; j < n; j++)
            lo = w[j] < w[lo] ? j : lo;
        if (lo != i) {
            const double t = w[i];
            w[i] = w[lo];
            w[lo] = t;
            double *a = Z + i * lda, *b = Z + lo * lda;
            for (int64_t r = 0; r < n; r++) {
                const double u = a[r];
                a[r] = b[r];
                b[r] = u;
            }
        }
    }
    for (int64_t i = 0; i < n; i++)
        w[i] *= amax > 0 ? amax : 1.0;
    return 0;
}
