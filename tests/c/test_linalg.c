/* test_linalg.c — the GEMM precision ladder, cov_gemm, gram_gemm, cholqr2
 * and split_basis on the CPU backend (and on a GPU when one is present),
 * against float64 references computed here with plain loops.
 *
 * Each variant's error is checked against a bound derived from its
 * arithmetic (bits kept per operand, accumulation precision), and the
 * ladder's order is checked too: a variant with more parts must be
 * clearly more accurate than its one-part version on the same data. */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "flashlib.h"

static const char *const VARIANTS[] = {"fp64", "fp32",   "tf32",   "3xtf32",       "bf16",   "3xbf16",
                                       "fp16", "3xfp16", "fp16x9", "fp16x3_kahan", "tf32x6", "ozaki_int8"};
enum { NV = 12 };

static double *rand_mat(int64_t r, int64_t c, double scale)
{
    double *a = malloc(sizeof(double) * (size_t)(r * c));
    for (int64_t i = 0; i < r * c; i++)
        a[i] = scale * (2 * test_uniform() - 1);
    return a;
}

static float *to_f32(const double *a, int64_t n)
{
    float *f = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)a[i];
    return f;
}

/* C = op(A) op(B), row-major, in long double. */
static void ref_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const double *A, int64_t lda,
                     const double *B, int64_t ldb, double *C)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            long double s = 0;
            for (int64_t q = 0; q < k; q++)
                s += (long double)(ta ? A[q * lda + i] : A[i * lda + q]) *
                     (tb ? B[j * ldb + q] : B[q * ldb + j]);
            C[i * n + j] = (double)s;
        }
}

static double rel_err_f(const float *c, const double *ref, int64_t n)
{
    double e = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)c[i] - ref[i]) * ((double)c[i] - ref[i]);
        r += ref[i] * ref[i];
    }
    return sqrt(e / r);
}
static double rel_err_d(const double *c, const double *ref, int64_t n)
{
    double e = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        e += (c[i] - ref[i]) * (c[i] - ref[i]);
        r += ref[i] * ref[i];
    }
    return sqrt(e / r);
}

/* Bound on the relative Frobenius error of each variant on uniform data
 * with K = 96: the operand rounding (2^-bits per part kept) plus float32
 * accumulation, with a safety factor of ~4. */
static double bound_f32(const char *v)
{
    if (!strcmp(v, "tf32") || !strcmp(v, "fp16"))
        return 4 * 0x1p-11;
    if (!strcmp(v, "bf16"))
        return 4 * 0x1p-8;
    if (!strcmp(v, "3xbf16")) /* hi + lo keep 16 bits; lo*lo is left out */
        return 4 * 0x1p-16;
    /* the others keep >= 16 bits per operand: float32 accumulation rules */
    return 40 * 0x1p-24;
}

static void test_gemm_variants(fl_ctx *ctx, const char *where)
{
    const int64_t m = 37, k = 96, n = 29;
    double *A = rand_mat(m, k, 1.0), *B = rand_mat(k, n, 3.0), *R = malloc(sizeof(double) * (size_t)(m * n));
    /* some tiny entries: fp16's scaling must keep them */
    A[5] *= 1e-6;
    B[7] *= 1e-6;
    ref_gemm(0, 0, m, n, k, A, k, B, n, R);
    float *Af = to_f32(A, m * k), *Bf = to_f32(B, k * n), *Cf = malloc(sizeof(float) * (size_t)(m * n));
    double *Cd = malloc(sizeof(double) * (size_t)(m * n));
    /* the float32 data's own exact product: the reference of f32 variants */
    double *Ad = malloc(sizeof(double) * (size_t)(m * k)), *Bd = malloc(sizeof(double) * (size_t)(k * n));
    for (int64_t i = 0; i < m * k; i++)
        Ad[i] = Af[i];
    for (int64_t i = 0; i < k * n; i++)
        Bd[i] = Bf[i];
    double *Rf = malloc(sizeof(double) * (size_t)(m * n));
    ref_gemm(0, 0, m, n, k, Ad, k, Bd, n, Rf);
    double err[NV];
    for (int v = 0; v < NV; v++) {
        fl_array a = fl_array_host(Af, FL_DTYPE_F32, m, k), b = fl_array_host(Bf, FL_DTYPE_F32, k, n),
                 c = fl_array_host(Cf, FL_DTYPE_F32, m, n);
        fl_linalg_report rep;
        for (int64_t i = 0; i < m * n; i++)
            Cf[i] = NAN; /* beta = 0 must not read C */
        CHECK_OK(ctx, fl_gemm(ctx, VARIANTS[v], 0, 0, 0, 0, 1.0, &a, &b, 0.0, &c, &rep));
        err[v] = rel_err_f(Cf, Rf, m * n);
        CHECK_MSG(err[v] < bound_f32(VARIANTS[v]), "%s f32 %s: error %.3g >= %.3g", where, VARIANTS[v],
                  err[v], bound_f32(VARIANTS[v]));
        CHECK(!strcmp(rep.variant, VARIANTS[v]));
    }
    /* the ladder's order: splitting buys accuracy */
    CHECK_MSG(err[3] < err[2] / 30, "%s: 3xtf32 %.3g vs tf32 %.3g", where, err[3], err[2]);
    CHECK_MSG(err[5] < err[4] / 30, "%s: 3xbf16 %.3g vs bf16 %.3g", where, err[5], err[4]);
    CHECK_MSG(err[7] < err[6] / 30, "%s: 3xfp16 %.3g vs fp16 %.3g", where, err[7], err[6]);
    CHECK_MSG(err[2] > 1e-5 && err[4] > 1e-4, "%s: tf32 %.3g / bf16 %.3g look unrounded", where, err[2],
              err[4]);

    /* float64 data: fp64, tf32x6 and ozaki_int8 against the exact product */
    for (int v = 0; v < NV; v++) {
        fl_array a = fl_array_host(A, FL_DTYPE_F64, m, k), b = fl_array_host(B, FL_DTYPE_F64, k, n),
                 c = fl_array_host(Cd, FL_DTYPE_F64, m, n);
        CHECK_OK(ctx, fl_gemm(ctx, VARIANTS[v], 0, 0, 0, 0, 1.0, &a, &b, 0.0, &c, NULL));
        const double e = rel_err_d(Cd, R, m * n);
        double bound = bound_f32(VARIANTS[v]);
        if (!strcmp(VARIANTS[v], "fp64") || !strcmp(VARIANTS[v], "ozaki_int8"))
            bound = 1e-14;
        CHECK_MSG(e < bound, "%s f64 %s: error %.3g >= %.3g", where, VARIANTS[v], e, bound);
        if (!strcmp(VARIANTS[v], "fp32"))
            CHECK_MSG(e > 1e-9, "%s: f64 data through fp32 products must show float32 error (%.3g)", where,
                      e);
    }
    /* Ozaki with fewer moduli keeps fewer bits: error grows, stays bounded */
    {
        fl_array a = fl_array_host(A, FL_DTYPE_F64, m, k), b = fl_array_host(B, FL_DTYPE_F64, k, n),
                 c = fl_array_host(Cd, FL_DTYPE_F64, m, n);
        CHECK_OK(ctx, fl_gemm(ctx, "ozaki_int8", 0, 6, 0, 0, 1.0, &a, &b, 0.0, &c, NULL));
        const double e6 = rel_err_d(Cd, R, m * n);
        CHECK_MSG(e6 > 1e-12 && e6 < 1e-5, "%s ozaki 6 moduli: error %.3g", where, e6);
        CHECK_OK(ctx, fl_gemm(ctx, "ozaki_int8", 0, 10, 0, 0, 1.0, &a, &b, 0.0, &c, NULL));
        const double e10 = rel_err_d(Cd, R, m * n);
        CHECK_MSG(e10 < e6 / 1000, "%s ozaki 10 moduli: error %.3g vs 6 moduli %.3g", where, e10, e6);
    }
    free(A), free(B), free(R), free(Af), free(Bf), free(Cf), free(Cd), free(Ad), free(Bd), free(Rf);
}

/* Transposes, alpha/beta and padded leading dimensions, on two variants. */
static void test_gemm_layouts(fl_ctx *ctx)
{
    const int64_t m = 13, k = 21, n = 8, pad = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int vv = 0; vv < 2; vv++) {
                const int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
                double *A = rand_mat(ar, ac + pad, 1), *B = rand_mat(br, bc + pad, 1);
                double *C0 = rand_mat(m, n + pad, 1), *C = malloc(sizeof(double) * (size_t)(m * (n + pad)));
                memcpy(C, C0, sizeof(double) * (size_t)(m * (n + pad)));
                double *R = malloc(sizeof(double) * (size_t)(m * n));
                ref_gemm(ta, tb, m, n, k, A, ac + pad, B, bc + pad, R);
                fl_array a = fl_array_host(A, FL_DTYPE_F64, ar, ac),
                         b = fl_array_host(B, FL_DTYPE_F64, br, bc), c = fl_array_host(C, FL_DTYPE_F64, m, n);
                a.ld = ac + pad;
                b.ld = bc + pad;
                c.ld = n + pad;
                const char *v = vv ? "3xtf32" : "fp64";
                /* beta 0 with the second pair: C only written, its padding
                 * still untouched (a GPU context copies C's whole span back) */
                const double beta = ta == tb ? 0.5 : 0.0;
                CHECK_OK(ctx, fl_gemm(ctx, v, 0, 0, ta, tb, -2.0, &a, &b, beta, &c, NULL));
                double worst = 0;
                for (int64_t i = 0; i < m; i++) {
                    for (int64_t j = 0; j < n; j++) {
                        const double want = -2.0 * R[i * n + j] + beta * C0[i * (n + pad) + j];
                        const double e = fabs(C[i * (n + pad) + j] - want);
                        worst = e > worst ? e : worst;
                    }
                    for (int64_t j = n; j < n + pad; j++) /* padding untouched */
                        CHECK(C[i * (n + pad) + j] == C0[i * (n + pad) + j]);
                }
                CHECK_MSG(worst < (vv ? 1e-5 : 1e-12), "ta=%d tb=%d %s: worst %.3g", ta, tb, v, worst);
                free(A), free(B), free(C0), free(C), free(R);
            }
}

static void test_gemm_tol_and_errors(fl_ctx *ctx)
{
    const int64_t m = 16, k = 64, n = 16;
    double *A = rand_mat(m, k, 1), *B = rand_mat(k, n, 1), *C = malloc(sizeof(double) * (size_t)(m * n));
    float *Af = to_f32(A, m * k), *Bf = to_f32(B, k * n), *Cf = malloc(sizeof(float) * (size_t)(m * n));
    fl_array a = fl_array_host(Af, FL_DTYPE_F32, m, k), b = fl_array_host(Bf, FL_DTYPE_F32, k, n),
             c = fl_array_host(Cf, FL_DTYPE_F32, m, n);
    fl_linalg_report rep;
    /* tol: the cost model's choice, whose expected residual meets it */
    const double tols[] = {1e-2, 1e-4, 1e-6};
    for (int t = 0; t < 3; t++) {
        CHECK_OK(ctx, fl_gemm(ctx, NULL, tols[t], 0, 0, 0, 1.0, &a, &b, 0.0, &c, &rep));
        CHECK_MSG(rep.expected_residual > 0 && rep.expected_residual <= tols[t], "tol %g: %s expects %.3g",
                  tols[t], rep.variant, rep.expected_residual);
    }
    CHECK_OK(ctx, fl_gemm(ctx, "auto", 0, 0, 0, 0, 1.0, &a, &b, 0.0, &c, &rep));
    CHECK(!strcmp(rep.variant, "fp32"));
    for (int64_t i = 0; i < m * n; i++)
        Cf[i] = 7.0f;
    fl_array bad = fl_array_host(Bf, FL_DTYPE_F32, k - 1, n);
    CHECK_ERR(ctx, fl_gemm(ctx, "fp32", 0, 0, 0, 0, 1.0, &a, &bad, 0.0, &c, NULL), FL_STATUS_INVALID_ARG,
              "inner dimensions");
    fl_array badc = fl_array_host(Cf, FL_DTYPE_F32, m, n - 1);
    CHECK_ERR(ctx, fl_gemm(ctx, "fp32", 0, 0, 0, 0, 1.0, &a, &b, 0.0, &badc, NULL), FL_STATUS_INVALID_ARG,
              "expected 16 x 16");
    CHECK_ERR(ctx, fl_gemm(ctx, "fp8", 0, 0, 0, 0, 1.0, &a, &b, 0.0, &c, NULL), FL_STATUS_INVALID_ARG,
              "unknown variant 'fp8'");
    CHECK_ERR(ctx, fl_gemm(ctx, "tf32", 1e-3, 0, 0, 0, 1.0, &a, &b, 0.0, &c, NULL), FL_STATUS_INVALID_ARG,
              "not both");
    CHECK_ERR(ctx, fl_gemm(ctx, NULL, 1e-30, 0, 0, 0, 1.0, &a, &b, 0.0, &c, NULL), FL_STATUS_INVALID_ARG,
              "tol");
    CHECK_ERR(ctx, fl_gemm(ctx, "ozaki_int8", 0, 99, 0, 0, 1.0, &a, &b, 0.0, &c, NULL), FL_STATUS_INVALID_ARG,
              "moduli=99");
    fl_array dd = fl_array_host(C, FL_DTYPE_F64, m, n);
    CHECK_ERR(ctx, fl_gemm(ctx, "fp32", 0, 0, 0, 0, 1.0, &a, &b, 0.0, &dd, NULL), FL_STATUS_INVALID_ARG,
              "dtype f64, expected f32");
    Af[3] = NAN;
    CHECK_ERR(ctx, fl_gemm(ctx, "fp32", 0, 0, 0, 0, 1.0, &a, &b, 0.0, &c, NULL), FL_STATUS_INVALID_ARG, "A");
    int untouched = 1;
    for (int64_t i = 0; i < m * n; i++)
        untouched &= Cf[i] == 7.0f;
    CHECK(untouched);
    free(A), free(B), free(C), free(Af), free(Bf), free(Cf);
}

static void test_cov_gram(fl_ctx *ctx)
{
    const int64_t n = 500, d = 7;
    /* far from the origin: plain sums would cancel in float32 */
    double *X = rand_mat(n, d, 1);
    for (int64_t i = 0; i < n * d; i++)
        X[i] += 1000.0 + (double)(i % d);
    float *Xf = to_f32(X, n * d);
    double mu[7] = {0}, S[49] = {0};
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++)
            mu[j] += (double)Xf[i * d + j] / (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = 0; p < d; p++)
            for (int64_t q = 0; q < d; q++)
                S[p * d + q] += ((double)Xf[i * d + p] - mu[p]) * ((double)Xf[i * d + q] - mu[q]);
    float Cf[49], mf[7];
    fl_array x = fl_array_host(Xf, FL_DTYPE_F32, n, d), c = fl_array_host(Cf, FL_DTYPE_F32, d, d),
             mm = fl_array_host(mf, FL_DTYPE_F32, 1, d);
    CHECK_OK(ctx, fl_cov_gemm(ctx, NULL, &x, 1, &c, &mm, NULL));
    double e = 0, r = 0;
    for (int i = 0; i < 49; i++) {
        e += (Cf[i] - S[i]) * (Cf[i] - S[i]);
        r += S[i] * S[i];
    }
    CHECK_MSG(sqrt(e / r) < 1e-5, "cov_gemm f32 offset data: error %.3g", sqrt(e / r));
    for (int j = 0; j < d; j++)
        CHECK_MSG(fabs(mf[j] - mu[j]) < 1e-3, "mean %d: %g vs %g", j, mf[j], mu[j]);
    /* uncentred: X^T X */
    CHECK_OK(ctx, fl_cov_gemm(ctx, "fp32", &x, 0, &c, NULL, NULL));
    double s01 = 0;
    for (int64_t i = 0; i < n; i++)
        s01 += (double)Xf[i * d + 0] * Xf[i * d + 1];
    CHECK_MSG(fabs(Cf[1] - s01) / s01 < 1e-6, "X^T X (0,1): %g vs %g", Cf[1], s01);
    /* gram: X X^T of a small block */
    fl_array x5 = fl_array_host(Xf, FL_DTYPE_F32, 5, d);
    float G[25];
    fl_array g = fl_array_host(G, FL_DTYPE_F32, 5, 5);
    CHECK_OK(ctx, fl_gram_gemm(ctx, NULL, &x5, &g, NULL));
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            double s = 0;
            for (int q = 0; q < d; q++)
                s += (double)Xf[i * d + q] * Xf[j * d + q];
            CHECK(fabs(G[i * 5 + j] - s) / s < 1e-6);
        }
    fl_array c6 = fl_array_host(Cf, FL_DTYPE_F32, 6, 6);
    CHECK_ERR(ctx, fl_cov_gemm(ctx, NULL, &x, 1, &c6, NULL, NULL), FL_STATUS_INVALID_ARG, "expected 7 x 7");
    free(X), free(Xf);
}

static void test_cholqr2(fl_ctx *ctx)
{
    for (int dt = 0; dt < 2; dt++)
        for (int ill = 0; ill < 2; ill++) {
            const int64_t m = 300, n = 12;
            double *X = rand_mat(m, n, 1);
            if (ill) { /* singular values over 5 (f64: 12) orders of magnitude, mixed by a dense matrix
                          so that no column scaling undoes them */
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++)
                        X[i * n + j] *= pow(10.0, -(dt ? 12.0 : 5.0) * (double)j / (double)(n - 1));
                double *M = rand_mat(n, n, 0.5), *Y = malloc(sizeof(double) * (size_t)(m * n));
                for (int64_t j = 0; j < n; j++)
                    M[j * n + j] += 1.0;
                ref_gemm(0, 0, m, n, n, X, n, M, n, Y);
                memcpy(X, Y, sizeof(double) * (size_t)(m * n));
                free(M), free(Y);
            }
            double Q[3600], R[144];
            float Qf[3600], Rf[144];
            float *Xf = to_f32(X, m * n);
            double Xr[3600];
            for (int i = 0; i < 3600; i++)
                Xr[i] = dt ? X[i] : Xf[i];
            fl_array x = dt ? fl_array_host(X, FL_DTYPE_F64, m, n) : fl_array_host(Xf, FL_DTYPE_F32, m, n);
            fl_array q = dt ? fl_array_host(Q, FL_DTYPE_F64, m, n) : fl_array_host(Qf, FL_DTYPE_F32, m, n);
            fl_array r = dt ? fl_array_host(R, FL_DTYPE_F64, n, n) : fl_array_host(Rf, FL_DTYPE_F32, n, n);
            fl_linalg_report rep;
            CHECK_OK(ctx, fl_cholqr2(ctx, &x, &q, &r, &rep));
            if (!dt)
                for (int i = 0; i < 3600; i++)
                    Q[i] = Qf[i];
            if (!dt)
                for (int i = 0; i < 144; i++)
                    R[i] = Rf[i];
            double orth = 0, rec = 0, nx = 0, low = 0;
            for (int64_t a = 0; a < n; a++)
                for (int64_t b = 0; b < n; b++) {
                    double s = 0;
                    for (int64_t i = 0; i < m; i++)
                        s += Q[i * n + a] * Q[i * n + b];
                    orth += (s - (a == b)) * (s - (a == b));
                    if (a > b)
                        low += R[a * n + b] * R[a * n + b];
                }
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    double s = 0;
                    for (int64_t q2 = 0; q2 < n; q2++)
                        s += Q[i * n + q2] * R[q2 * n + j];
                    rec += (s - Xr[i * n + j]) * (s - Xr[i * n + j]);
                    nx += Xr[i * n + j] * Xr[i * n + j];
                }
            const double eps = dt ? 1e-15 : 1e-6;
            CHECK_MSG(sqrt(orth) < 50 * eps, "cholqr2 dt=%d ill=%d: orthogonality %.3g", dt, ill, sqrt(orth));
            CHECK_MSG(sqrt(rec / nx) < 50 * eps, "cholqr2 dt=%d ill=%d: X - QR %.3g", dt, ill,
                      sqrt(rec / nx));
            CHECK(low == 0);
            /* float64 at condition 1e12: the Gram matrix (1e24) breaks a
             * plain Cholesky, so the shifted pass must have run */
            /* 2 passes when well conditioned; the shifted path adds one or
             * two (when a later pass breaks down) */
            CHECK_MSG(ill ? rep.iterations >= 3 && rep.iterations <= 4 : rep.iterations == 2,
                      "cholqr2 dt=%d ill=%d: %d passes", dt, ill, rep.iterations);
            free(X), free(Xf);
        }
    /* rank deficient (two equal columns): the shifted pass still gives an
     * orthonormal Q and X = QR, with a near-zero pivot in R */
    double X[60], Q[60], R[9];
    for (int i = 0; i < 20; i++) {
        X[i * 3] = test_uniform();
        X[i * 3 + 1] = X[i * 3];
        X[i * 3 + 2] = test_uniform();
    }
    fl_array x = fl_array_host(X, FL_DTYPE_F64, 20, 3), q = fl_array_host(Q, FL_DTYPE_F64, 20, 3),
             r = fl_array_host(R, FL_DTYPE_F64, 3, 3);
    fl_linalg_report rep;
    CHECK_OK(ctx, fl_cholqr2(ctx, &x, &q, &r, &rep));
    /* the shifted path unless the first Cholesky's pivots stay within
     * u^-1/2 (cuBLAS's Gram matrix can keep them there): X = QR and the
     * orthogonality below are what counts */
    CHECK_MSG(rep.iterations >= 2 && rep.iterations <= 4, "rank deficient: %d passes", rep.iterations);
    double orth = 0, rec = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            double s = 0;
            for (int i = 0; i < 20; i++)
                s += Q[i * 3 + a] * Q[i * 3 + b];
            orth += (s - (a == b)) * (s - (a == b));
        }
    for (int i = 0; i < 20; i++)
        for (int j = 0; j < 3; j++) {
            double s = 0;
            for (int q2 = 0; q2 < 3; q2++)
                s += Q[i * 3 + q2] * R[q2 * 3 + j];
            rec += (s - X[i * 3 + j]) * (s - X[i * 3 + j]);
        }
    CHECK_MSG(sqrt(orth) < 1e-13 && sqrt(rec) < 1e-13, "rank deficient: orth %.3g, X - QR %.3g", sqrt(orth),
              sqrt(rec));
    CHECK_MSG(fabs(R[4]) < 1e-6 * fabs(R[0]), "rank deficient: R(1,1) = %g", R[4]);
    /* zero: no Gram matrix to factor */
    double Z[60] = {0};
    for (int i = 0; i < 60; i++)
        Q[i] = -1;
    fl_array z = fl_array_host(Z, FL_DTYPE_F64, 20, 3);
    CHECK_ERR(ctx, fl_cholqr2(ctx, &z, &q, NULL, NULL), FL_STATUS_NUMERICAL, "not positive definite");
    int untouched = 1;
    for (int i = 0; i < 60; i++)
        untouched &= Q[i] == -1;
    CHECK(untouched);
    fl_array wide = fl_array_host(X, FL_DTYPE_F64, 3, 20);
    CHECK_ERR(ctx, fl_cholqr2(ctx, &wide, &q, NULL, NULL), FL_STATUS_INVALID_ARG, "m >= n");
}

static void test_split(fl_ctx *ctx)
{
    float x[64], p[3][64];
    for (int i = 0; i < 64; i++)
        x[i] = (float)((2 * test_uniform() - 1) * pow(10.0, (double)(i % 9) - 4));
    const char *fmts[] = {"tf32", "bf16", "fp16"};
    const int mant[] = {10, 7, 10};
    for (int f = 0; f < 3; f++) {
        fl_array xa = fl_array_host(x, FL_DTYPE_F32, 8, 8);
        fl_array o[3] = {fl_array_host(p[0], FL_DTYPE_F32, 8, 8), fl_array_host(p[1], FL_DTYPE_F32, 8, 8),
                         fl_array_host(p[2], FL_DTYPE_F32, 8, 8)};
        CHECK_OK(ctx, fl_split_basis(ctx, &xa, fmts[f], 3, o));
        for (int i = 0; i < 64; i++) {
            for (int q = 0; q < 3; q++) { /* each part has at most mant+1 significant bits */
                int e;
                const double fr = frexp(p[q][i], &e);
                const double scaled = ldexp(fr, mant[f] + 1);
                CHECK_MSG(scaled == floor(scaled), "%s part %d of %g: %a", fmts[f], q, x[i], p[q][i]);
            }
            const double sum = (double)p[0][i] + p[1][i] + p[2][i];
            /* three parts keep ~24 bits, down to fp16's subnormal quantum */
            const double tolr = f == 1 ? 0x1p-22 : 0x1p-23, tola = f == 2 ? 0x1p-25 : 0;
            CHECK_MSG(fabs(sum - x[i]) <= tolr * fabs(x[i]) + tola, "%s: %g -> %g", fmts[f], x[i], sum);
        }
    }
    fl_array xa = fl_array_host(x, FL_DTYPE_F32, 8, 8), o = fl_array_host(p[0], FL_DTYPE_F32, 8, 8);
    CHECK_ERR(ctx, fl_split_basis(ctx, &xa, "fp8", 1, &o), FL_STATUS_INVALID_ARG, "format 'fp8'");
    CHECK_ERR(ctx, fl_split_basis(ctx, &xa, "bf16", 4, &o), FL_STATUS_INVALID_ARG, "parts=4");
}

/* Tiny and odd shapes, every variant and transpose: the GPU's result
 * against the CPU's (the same arithmetic, so they agree to the variant's
 * accumulation error). Tensor-core paths pad K; this is where a padding
 * or layout slip would show. */
static void test_gemm_tiny_vs_cpu(fl_ctx *cpu, fl_ctx *gpu)
{
    const int64_t shapes[][3] = {{1, 1, 1}, {2, 2, 2}, {3, 2, 5}, {2, 7, 3}, {17, 1, 33}};
    for (int sh = 0; sh < 5; sh++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int v = 0; v < NV; v++) {
                    const int64_t m = shapes[sh][0], n = shapes[sh][1], k = shapes[sh][2];
                    double *A = rand_mat(m, k, 1), *B = rand_mat(k, n, 1);
                    float *Af = to_f32(A, m * k), *Bf = to_f32(B, k * n);
                    float Cc[1024], Cg[1024];
                    fl_array a =
                        ta ? fl_array_host(Af, FL_DTYPE_F32, k, m) : fl_array_host(Af, FL_DTYPE_F32, m, k);
                    fl_array b =
                        tb ? fl_array_host(Bf, FL_DTYPE_F32, n, k) : fl_array_host(Bf, FL_DTYPE_F32, k, n);
                    fl_array cc = fl_array_host(Cc, FL_DTYPE_F32, m, n),
                             cg = fl_array_host(Cg, FL_DTYPE_F32, m, n);
                    CHECK_OK(cpu, fl_gemm(cpu, VARIANTS[v], 0, 0, ta, tb, 1.0, &a, &b, 0.0, &cc, NULL));
                    CHECK_OK(gpu, fl_gemm(gpu, VARIANTS[v], 0, 0, ta, tb, 1.0, &a, &b, 0.0, &cg, NULL));
                    double e = 0, r = 0;
                    for (int64_t i = 0; i < m * n; i++) {
                        e += ((double)Cc[i] - Cg[i]) * ((double)Cc[i] - Cg[i]);
                        r += (double)Cc[i] * Cc[i];
                    }
                    CHECK_MSG(sqrt(e) <= 1e-5 * sqrt(r) + 1e-30,
                              "%s %lldx%lldx%lld ta=%d tb=%d: GPU vs CPU %.3g", VARIANTS[v], (long long)m,
                              (long long)n, (long long)k, ta, tb, sqrt(e / (r + 1e-300)));
                    free(A), free(B), free(Af), free(Bf);
                }
}

int main(void)
{
    fl_ctx *ctx = NULL;
    if (fl_ctx_create("cpu", &ctx, NULL, 0) != FL_STATUS_OK)
        return 1;
    test_gemm_variants(ctx, "cpu");
    test_gemm_layouts(ctx);
    test_gemm_tol_and_errors(ctx);
    test_cov_gram(ctx);
    test_cholqr2(ctx);
    test_split(ctx);
    fl_ctx_free(ctx);

    /* the same on a GPU when there is one (host arrays: the GPU path
     * uploads, computes and downloads) */
    fl_ctx *g = NULL;
    if (fl_ctx_create("cuda", &g, NULL, 0) == FL_STATUS_OK && fl_ctx_cuda_check(g) == FL_STATUS_OK) {
        printf("GPU section\n");
        test_gemm_variants(g, "cuda");
        test_gemm_layouts(g);
        test_gemm_tol_and_errors(g);
        test_cov_gram(g);
        test_cholqr2(g);
        fl_ctx *c2 = NULL;
        if (fl_ctx_create("cpu", &c2, NULL, 0) == FL_STATUS_OK)
            test_gemm_tiny_vs_cpu(c2, g);
        fl_ctx_free(c2);
    } else {
        printf("GPU section skipped: no usable GPU\n");
    }
    fl_ctx_free(g);
    TEST_MAIN_END();
}
