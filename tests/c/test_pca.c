/* test_pca.c — PCA and TruncatedSVD on the CPU backend against an
 * independent float64 reference written here (cyclic Jacobi eigen of the
 * covariance, a Cholesky for the Gaussian likelihood), for every solver and
 * both dtypes; plus properties (orthonormal components, scikit-learn's sign
 * rule, inverse round trip), edge shapes, bad input and save/load. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "flashlib.h"

enum { N = 240, D = 9 };

/* Cyclic Jacobi on a symmetric d x d matrix A (destroyed): eigenvalues in
 * w, eigenvectors in the rows of V, sorted by decreasing eigenvalue. */
static void ref_eigh(double *A, int d, double *w, double *V)
{
    double *Q = malloc(sizeof(double) * (size_t)(d * d));
    for (int i = 0; i < d * d; i++)
        Q[i] = (i / d == i % d);
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++)
                off += A[p * d + q] * A[p * d + q];
        if (off < 1e-30)
            break;
        for (int p = 0; p < d; p++)
            for (int q = p + 1; q < d; q++) {
                if (fabs(A[p * d + q]) < 1e-300)
                    continue;
                const double th = (A[q * d + q] - A[p * d + p]) / (2 * A[p * d + q]);
                const double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
                const double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < d; k++) { /* columns p, q */
                    const double akp = A[k * d + p], akq = A[k * d + q];
                    A[k * d + p] = c * akp - s * akq;
                    A[k * d + q] = s * akp + c * akq;
                }
                for (int k = 0; k < d; k++) { /* rows p, q */
                    const double apk = A[p * d + k], aqk = A[q * d + k];
                    A[p * d + k] = c * apk - s * aqk;
                    A[q * d + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < d; k++) { /* Q's columns are the eigenvectors */
                    const double qkp = Q[k * d + p], qkq = Q[k * d + q];
                    Q[k * d + p] = c * qkp - s * qkq;
                    Q[k * d + q] = s * qkp + c * qkq;
                }
            }
    }
    int *idx = malloc(sizeof(int) * (size_t)d);
    for (int i = 0; i < d; i++)
        idx[i] = i;
    for (int i = 0; i < d; i++)
        for (int j = i + 1; j < d; j++)
            if (A[idx[j] * d + idx[j]] > A[idx[i] * d + idx[i]]) {
                int t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
            }
    for (int i = 0; i < d; i++) {
        w[i] = A[idx[i] * d + idx[i]];
        for (int k = 0; k < d; k++)
            V[i * d + k] = Q[k * d + idx[i]];
    }
    free(idx);
    free(Q);
}

/* Data with a decaying spectrum and a large offset (tests the centring). */
static void make_data(double *X, int n, int d)
{
    double *M = malloc(sizeof(double) * (size_t)(d * d));
    for (int i = 0; i < d * d; i++)
        M[i] = test_normal();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            X[i * d + j] = 100.0 + j;
    for (int i = 0; i < n; i++) {
        double z[64];
        for (int q = 0; q < d; q++)
            z[q] = test_normal() * pow(0.6, q);
        for (int j = 0; j < d; j++)
            for (int q = 0; q < d; q++)
                X[i * d + j] += z[q] * M[q * d + j];
    }
    free(M);
}

/* Reference: mean, covariance (ddof 1), its eigenpairs. */
static void ref_pca(const double *X, int n, int d, double *mean, double *w, double *V)
{
    double *C = calloc((size_t)(d * d), sizeof(double));
    for (int j = 0; j < d; j++) {
        mean[j] = 0;
        for (int i = 0; i < n; i++)
            mean[j] += X[i * d + j];
        mean[j] /= n;
    }
    for (int i = 0; i < n; i++)
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++)
                C[a * d + b] += (X[i * d + a] - mean[a]) * (X[i * d + b] - mean[b]) / (n - 1);
    ref_eigh(C, d, w, V);
    free(C);
}

static fl_model *fit(fl_ctx *ctx, const char *algo, const fl_array *X, const char *const *kv)
{
    fl_params *p;
    fl_params_create(ctx, algo, &p);
    for (; kv && *kv; kv += 2)
        CHECK_OK(ctx, fl_params_set(ctx, p, kv[0], kv[1]));
    fl_model *m = NULL;
    fl_status st = !strcmp(algo, "pca") ? fl_pca_fit(ctx, X, p, &m) : fl_truncated_svd_fit(ctx, X, p, &m);
    CHECK_MSG(st == FL_STATUS_OK, "%s fit: %s", algo, fl_ctx_last_error(ctx));
    fl_params_free(p);
    return m;
}

/* attribute as doubles (rows x cols), malloc'd */
static double *attr(fl_model *m, const char *name, int64_t *rows, int64_t *cols)
{
    fl_dtype dt;
    int64_t r = 0, c = 0;
    if (fl_model_attr_info(m, name, &dt, &r, &c))
        return NULL;
    void *buf = malloc(fl_dtype_size(dt) * (size_t)(r * c));
    fl_array a = fl_array_host(buf, dt, r, c);
    fl_model_attr_copy(m, name, &a);
    double *out = malloc(sizeof(double) * (size_t)(r * c));
    for (int64_t i = 0; i < r * c; i++)
        out[i] = dt == FL_DTYPE_F32 ? ((float *)buf)[i] : ((double *)buf)[i];
    free(buf);
    if (rows)
        *rows = r;
    if (cols)
        *cols = c;
    return out;
}

/* Every solver, both dtypes: components (with scikit-learn's signs),
 * explained variance and its ratio, mean, noise variance, transform and
 * inverse_transform against the reference. */
static void test_against_reference(fl_ctx *ctx)
{
    static double X[N * D], mean[D], w[D], V[D * D];
    static float Xf[N * D];
    make_data(X, N, D);
    for (int i = 0; i < N * D; i++)
        Xf[i] = (float)X[i];
    ref_pca(X, N, D, mean, w, V);
    double total = 0;
    for (int i = 0; i < D; i++)
        total += w[i];
    const char *solvers[] = {"full", "covariance_eigh", "arpack", "randomized", "auto"};
    for (int dt = 0; dt < 2; dt++) {
        const double tol = dt ? 1e-9 : 2e-3;
        fl_array xa = dt ? fl_array_host(X, FL_DTYPE_F64, N, D) : fl_array_host(Xf, FL_DTYPE_F32, N, D);
        for (int s = 0; s < 5; s++) {
            const int K = 4;
            const char *kv[] = {"n_components", "4", "svd_solver", solvers[s], "random_state", "3", NULL};
            fl_model *m = fit(ctx, "pca", &xa, kv);
            if (!m)
                continue;
            int64_t k, d;
            double *C = attr(m, "components_", &k, &d), *ev = attr(m, "explained_variance_", NULL, NULL);
            double *ratio = attr(m, "explained_variance_ratio_", NULL, NULL);
            double *mu = attr(m, "mean_", NULL, NULL), *sv = attr(m, "singular_values_", NULL, NULL);
            double nv = -1, nc = -1;
            fl_model_attr_scalar(m, "noise_variance_", &nv);
            fl_model_attr_scalar(m, "n_components_", &nc);
            CHECK(k == K && d == D && nc == K);
            double ce = 0, ee = 0, me = 0, se = 0;
            int signs_ok = 1;
            for (int i = 0; i < K; i++) {
                /* the reference's sign by scikit-learn's rule */
                int b = 0;
                for (int j = 1; j < D; j++)
                    b = fabs(V[i * D + j]) > fabs(V[i * D + b]) ? j : b;
                const double sg = V[i * D + b] < 0 ? -1 : 1;
                for (int j = 0; j < D; j++)
                    ce = fmax(ce, fabs(C[i * D + j] - sg * V[i * D + j]));
                int bc = 0;
                for (int j = 1; j < D; j++)
                    bc = fabs(C[i * D + j]) > fabs(C[i * D + bc]) ? j : bc;
                signs_ok &= C[i * D + bc] > 0;
                ee = fmax(ee, fabs(ev[i] - w[i]) / w[0]);
                se = fmax(se, fabs(sv[i] - sqrt(w[i] * (N - 1))) / sqrt(w[0] * (N - 1)));
                CHECK(fabs(ratio[i] - w[i] / total) < tol);
            }
            for (int j = 0; j < D; j++)
                me = fmax(me, fabs(mu[j] - mean[j]) / fabs(mean[j]));
            double ref_nv = 0;
            for (int i = K; i < D; i++)
                ref_nv += w[i] / (D - K);
            /* randomized: an approximation (7 power iterations) */
            const double ctol = s == 3 ? fmax(tol, 1e-4) : tol;
            CHECK_MSG(ce < ctol * 10, "%s %s: components off by %g", solvers[s], dt ? "f64" : "f32", ce);
            CHECK_MSG(ee < ctol && se < ctol, "%s: explained variance off by %g, singular values by %g",
                      solvers[s], ee, se);
            CHECK_MSG(me < 1e-6, "%s: mean off by %g", solvers[s], me);
            CHECK_MSG(fabs(nv - ref_nv) < ctol * w[0], "%s: noise_variance_ %g, reference %g", solvers[s], nv,
                      ref_nv);
            CHECK(signs_ok);
            /* orthonormal rows */
            double orth = 0;
            for (int a = 0; a < K; a++)
                for (int b = 0; b < K; b++) {
                    double dot = 0;
                    for (int j = 0; j < D; j++)
                        dot += C[a * D + j] * C[b * D + j];
                    orth = fmax(orth, fabs(dot - (a == b)));
                }
            CHECK_MSG(orth < (dt ? 1e-12 : 1e-5), "%s: |C C^T - I| = %g", solvers[s], orth);
            /* transform = (X - mean) V^T */
            double Y[N * 4], te = 0, scale = 0;
            float Yf[N * 4];
            fl_array ya = dt ? fl_array_host(Y, FL_DTYPE_F64, N, K) : fl_array_host(Yf, FL_DTYPE_F32, N, K);
            CHECK_OK(ctx, fl_model_transform(m, &xa, &ya));
            for (int i = 0; i < N; i++)
                for (int c = 0; c < K; c++) {
                    double r = 0;
                    for (int j = 0; j < D; j++)
                        r += (X[i * D + j] - mean[j]) * C[c * D + j];
                    const double y = dt ? Y[i * K + c] : Yf[i * K + c];
                    te = fmax(te, fabs(y - r));
                    scale = fmax(scale, fabs(r));
                }
            CHECK_MSG(te < tol * scale * 10, "%s: transform off by %g (scale %g)", solvers[s], te, scale);
            free(C), free(ev), free(ratio), free(mu), free(sv);
            fl_model_free(m);
        }
    }
}

/* n_components as a fraction, none, whiten, and the exact inverse with all
 * components; TruncatedSVD against the eigenpairs of X^T X. */
static void test_forms_and_tsvd(fl_ctx *ctx)
{
    static double X[N * D], mean[D], w[D], V[D * D], G[D * D], gw[D], GV[D * D];
    make_data(X, N, D);
    ref_pca(X, N, D, mean, w, V);
    double total = 0, cum = 0;
    for (int i = 0; i < D; i++)
        total += w[i];
    int kref = 0;
    while (kref < D && cum + w[kref] / total <= 0.85)
        cum += w[kref++] / total;
    kref = kref + 1 < D ? kref + 1 : D;
    fl_array xa = fl_array_host(X, FL_DTYPE_F64, N, D);
    const char *kv1[] = {"n_components", "0.85", NULL};
    fl_model *m = fit(ctx, "pca", &xa, kv1);
    double nc = 0;
    fl_model_attr_scalar(m, "n_components_", &nc);
    CHECK_MSG(nc == kref, "fraction 0.85: n_components_ %g, reference %d", nc, kref);
    fl_model_free(m);

    /* all components, whitened: transform has unit variance; inverse is exact */
    const char *kv2[] = {"whiten", "true", NULL};
    m = fit(ctx, "pca", &xa, kv2);
    static double Y[N * D], Z[N * D];
    fl_array ya = fl_array_host(Y, FL_DTYPE_F64, N, D), za = fl_array_host(Z, FL_DTYPE_F64, N, D);
    CHECK_OK(ctx, fl_model_transform(m, &xa, &ya));
    CHECK_OK(ctx, fl_model_inverse_transform(m, &ya, &za));
    double var0 = 0, rt = 0;
    for (int i = 0; i < N; i++)
        var0 += Y[i * D] * Y[i * D] / (N - 1);
    for (int i = 0; i < N * D; i++)
        rt = fmax(rt, fabs(Z[i] - X[i]));
    CHECK_MSG(fabs(var0 - 1) < 1e-9, "whitened variance %g", var0);
    CHECK_MSG(rt < 1e-9, "inverse_transform round trip off by %g", rt);

    /* score_samples with every component = the Gaussian of the sample
     * covariance: reference log-density through a Cholesky written here */
    double C[D * D] = {0}, L[D * D] = {0};
    for (int i = 0; i < N; i++)
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++)
                C[a * D + b] += (X[i * D + a] - mean[a]) * (X[i * D + b] - mean[b]) / (N - 1);
    for (int j = 0; j < D; j++) {
        double s = C[j * D + j];
        for (int k = 0; k < j; k++)
            s -= L[j * D + k] * L[j * D + k];
        L[j * D + j] = sqrt(s);
        for (int i = j + 1; i < D; i++) {
            double t = C[i * D + j];
            for (int k = 0; k < j; k++)
                t -= L[i * D + k] * L[j * D + k];
            L[i * D + j] = t / L[j * D + j];
        }
    }
    double logdet = 0;
    for (int j = 0; j < D; j++)
        logdet += 2 * log(L[j * D + j]);
    static double ll[N];
    fl_array la = fl_array_host(ll, FL_DTYPE_F64, N, 1);
    fl_model_free(m);
    m = fit(ctx, "pca", &xa, NULL);
    CHECK_OK(ctx, fl_model_score_samples(m, &xa, &la));
    double lle = 0, mean_ll = 0, score = 0;
    for (int i = 0; i < N; i++) {
        double z[D];
        for (int j = 0; j < D; j++) {
            double t = X[i * D + j] - mean[j];
            for (int k = 0; k < j; k++)
                t -= L[j * D + k] * z[k];
            z[j] = t / L[j * D + j];
        }
        double q = 0;
        for (int j = 0; j < D; j++)
            q += z[j] * z[j];
        const double ref = -0.5 * q - 0.5 * (D * log(2 * M_PI) + logdet);
        lle = fmax(lle, fabs(ll[i] - ref));
        mean_ll += ref / N;
    }
    CHECK_MSG(lle < 1e-8, "score_samples off by %g", lle);
    CHECK_OK(ctx, fl_model_score(m, &xa, NULL, NULL, &score));
    CHECK(fabs(score - mean_ll) < 1e-8);
    fl_model_free(m);

    /* TruncatedSVD: singular values sqrt(eig(X^T X)), no centring */
    for (int a = 0; a < D; a++)
        for (int b = 0; b < D; b++) {
            G[a * D + b] = 0;
            for (int i = 0; i < N; i++)
                G[a * D + b] += X[i * D + a] * X[i * D + b];
        }
    ref_eigh(G, D, gw, GV);
    const char *algs[] = {"arpack", "randomized"};
    for (int a = 0; a < 2; a++) {
        const char *kv[] = {"n_components", "3", "algorithm", algs[a], "random_state", "1", NULL};
        m = fit(ctx, "truncated_svd", &xa, kv);
        int64_t k;
        double *sv = attr(m, "singular_values_", &k, NULL), *Cm = attr(m, "components_", NULL, NULL);
        double *ev = attr(m, "explained_variance_", NULL, NULL);
        CHECK(k == 3);
        for (int i = 0; i < 3; i++) {
            CHECK_MSG(fabs(sv[i] - sqrt(gw[i])) < 1e-6 * sqrt(gw[0]), "%s: sv[%d] %g vs %g", algs[a], i,
                      sv[i], sqrt(gw[i]));
            double dot = 0;
            for (int j = 0; j < D; j++)
                dot += Cm[i * D + j] * GV[i * D + j];
            CHECK_MSG(fabs(fabs(dot) - 1) < 1e-6, "%s: component %d |dot| %g", algs[a], i, dot);
            /* explained variance = var(X v) (ddof 0) */
            double m1 = 0, m2 = 0;
            for (int r = 0; r < N; r++) {
                double y = 0;
                for (int j = 0; j < D; j++)
                    y += X[r * D + j] * Cm[i * D + j];
                m1 += y / N;
                m2 += y * y / N;
            }
            CHECK(fabs(ev[i] - (m2 - m1 * m1)) < 1e-6 * fabs(ev[i]) + 1e-9);
        }
        free(sv), free(Cm), free(ev);
        fl_model_free(m);
    }
}

/* Constant columns, duplicate columns, n = 2, d = 1, wide data: finite. */
static void test_edges(fl_ctx *ctx)
{
    static double X[60 * 5], W[6 * 40];
    for (int i = 0; i < 60; i++) {
        X[i * 5 + 0] = 7.0;               /* constant */
        X[i * 5 + 1] = test_normal();     /* */
        X[i * 5 + 2] = X[i * 5 + 1];      /* duplicate */
        X[i * 5 + 3] = 2 * X[i * 5 + 1];  /* rank deficient */
        X[i * 5 + 4] = test_normal() * 3; /* */
    }
    const char *solvers[] = {"full", "covariance_eigh", "randomized", "arpack"};
    for (int s = 0; s < 4; s++) {
        fl_array xa = fl_array_host(X, FL_DTYPE_F64, 60, 5);
        const char *kv[] = {"svd_solver", solvers[s], "n_components", s >= 2 ? "4" : "none", "whiten",
                            "true",       NULL};
        fl_model *m = fit(ctx, "pca", &xa, kv);
        if (!m)
            continue;
        int64_t k;
        double *ev = attr(m, "explained_variance_", &k, NULL), *C = attr(m, "components_", NULL, NULL);
        int finite = 1;
        for (int i = 0; i < k; i++)
            finite &= isfinite(ev[i]) && ev[i] >= 0;
        for (int i = 0; i < k * 5; i++)
            finite &= isfinite(C[i]);
        static double Y[60 * 5];
        fl_array ya = fl_array_host(Y, FL_DTYPE_F64, 60, k);
        CHECK_OK(ctx, fl_model_transform(m, &xa, &ya));
        for (int i = 0; i < 60 * k; i++)
            finite &= isfinite(Y[i]);
        CHECK_MSG(finite, "%s: non-finite output on rank-deficient data", solvers[s]);
        free(ev), free(C);
        fl_model_free(m);
    }
    /* n = 2, d = 1 */
    double two[2] = {1, 3};
    fl_array ta = fl_array_host(two, FL_DTYPE_F64, 2, 1);
    fl_model *m = fit(ctx, "pca", &ta, NULL);
    double ev = 0;
    int64_t r, c;
    double *e = attr(m, "explained_variance_", &r, &c);
    if (e)
        ev = e[0];
    CHECK(r == 1 && fabs(ev - 2.0) < 1e-12);
    free(e);
    fl_model_free(m);
    /* wide (n < d): every solver, randomized takes the transposed side */
    for (int i = 0; i < 6 * 40; i++)
        W[i] = test_normal();
    for (int s = 0; s < 4; s++) {
        fl_array wa = fl_array_host(W, FL_DTYPE_F64, 6, 40);
        const char *kv[] = {"svd_solver", solvers[s], "n_components", "3", "random_state", "0", NULL};
        m = fit(ctx, "pca", &wa, kv);
        double *sv = attr(m, "singular_values_", &r, NULL);
        CHECK(r == 3 && sv && sv[0] >= sv[1] && sv[1] >= sv[2] && sv[2] > 0);
        free(sv);
        fl_model_free(m);
    }
}

static void test_bad_input(fl_ctx *ctx)
{
    static double X[20 * 4];
    for (int i = 0; i < 80; i++)
        X[i] = test_normal();
    fl_array xa = fl_array_host(X, FL_DTYPE_F64, 20, 4);
    fl_params *p;
    fl_params_create(ctx, "pca", &p);
    fl_model *m = (fl_model *)0x1;
    fl_params_set(ctx, p, "n_components", "5");
    CHECK_ERR(ctx, fl_pca_fit(ctx, &xa, p, &m), FL_STATUS_INVALID_ARG, "n_components=5: must be in [1, min(");
    CHECK(m == (fl_model *)0x1);
    fl_params_set(ctx, p, "n_components", "0.5");
    fl_params_set(ctx, p, "svd_solver", "randomized");
    CHECK_ERR(ctx, fl_pca_fit(ctx, &xa, p, &m), FL_STATUS_INVALID_ARG, "variance fraction");
    CHECK_ERR(ctx, fl_params_set(ctx, p, "n_components", "1.5"), FL_STATUS_OK, "");
    fl_params_set(ctx, p, "svd_solver", "full");
    CHECK_ERR(ctx, fl_pca_fit(ctx, &xa, p, &m), FL_STATUS_INVALID_ARG, "whole number");
    CHECK_ERR(ctx, fl_params_set(ctx, p, "svd_solver", "lapack"), FL_STATUS_INVALID_ARG, "must be one of");
    fl_params_set(ctx, p, "n_components", "2");
    X[13] = NAN;
    CHECK_ERR(ctx, fl_pca_fit(ctx, &xa, p, &m), FL_STATUS_INVALID_ARG, "NaN");
    X[13] = INFINITY;
    CHECK_ERR(ctx, fl_pca_fit(ctx, &xa, p, &m), FL_STATUS_INVALID_ARG, "Inf");
    /* the covariance pass checks finiteness as it reads X */
    fl_params_set(ctx, p, "svd_solver", "covariance_eigh");
    X[13] = NAN;
    CHECK_ERR(ctx, fl_pca_fit(ctx, &xa, p, &m), FL_STATUS_INVALID_ARG, "X[3, 1] is NaN");
    X[13] = -INFINITY;
    CHECK_ERR(ctx, fl_pca_fit(ctx, &xa, p, &m), FL_STATUS_INVALID_ARG, "X[3, 1] is Inf");
    float big[8] = {3e38f, 1, 3e38f, 2, 3e38f, 3, 3e38f, 4};
    fl_array ba = fl_array_host(big, FL_DTYPE_F32, 4, 2);
    fl_params_set(ctx, p, "n_components", "1");
    /* one thread: the rows meet in one float32 block sum (with 16 threads
     * each row had a block of its own and nothing overflowed) */
    const int threads = fl_ctx_get_threads(ctx);
    fl_ctx_set_threads(ctx, 1);
    CHECK_ERR(ctx, fl_pca_fit(ctx, &ba, p, &m), FL_STATUS_INVALID_ARG, "overflows f32");
    fl_ctx_set_threads(ctx, threads);
    fl_params_set(ctx, p, "n_components", "2");
    fl_params_set(ctx, p, "svd_solver", "auto");
    X[13] = 0.5;
    fl_array one = fl_array_host(X, FL_DTYPE_F64, 1, 4);
    CHECK_ERR(ctx, fl_pca_fit(ctx, &one, p, &m), FL_STATUS_INVALID_ARG, "n_samples=1");
    CHECK(m == (fl_model *)0x1);

    /* a fitted model: wrong widths and outputs leave the output untouched */
    CHECK_OK(ctx, fl_pca_fit(ctx, &xa, p, &m));
    double out[20 * 2];
    for (int i = 0; i < 40; i++)
        out[i] = -7;
    fl_array oa = fl_array_host(out, FL_DTYPE_F64, 20, 2), narrow = fl_array_host(X, FL_DTYPE_F64, 20, 3);
    narrow.ld = 4;
    CHECK_ERR(ctx, fl_model_transform(m, &narrow, &oa), FL_STATUS_INVALID_ARG, "X has 3 features");
    fl_array bad_out = fl_array_host(out, FL_DTYPE_F64, 20, 3);
    CHECK_ERR(ctx, fl_model_transform(m, &xa, &bad_out), FL_STATUS_INVALID_ARG, "out: expected f64 20 x 2");
    CHECK_ERR(ctx, fl_model_inverse_transform(m, &xa, &oa), FL_STATUS_INVALID_ARG, "X has 4 components");
    CHECK(out[0] == -7 && out[39] == -7);
    /* a singular covariance: score_samples is a clear error */
    fl_array sa = fl_array_host(out, FL_DTYPE_F64, 20, 1);
    fl_model *full;
    fl_params_set(ctx, p, "n_components", "none");
    fl_array few = fl_array_host(X, FL_DTYPE_F64, 3, 4); /* rank 2 < 4 features, noise 0 */
    CHECK_OK(ctx, fl_pca_fit(ctx, &few, p, &full));
    fl_array sa3 = fl_array_host(out, FL_DTYPE_F64, 3, 1);
    CHECK_ERR(ctx, fl_model_score_samples(full, &few, &sa3), FL_STATUS_INVALID_ARG, "singular");
    CHECK(out[0] == -7);
    (void)sa;
    fl_model_free(full);

    /* save / load round trip, and a corrupted buffer */
    void *buf;
    size_t len;
    CHECK_OK(ctx, fl_model_save_buffer(m, &buf, &len));
    fl_model *back;
    CHECK_OK(ctx, fl_model_load_buffer(ctx, buf, len, &back));
    double o1[40], o2[40];
    fl_array a1 = fl_array_host(o1, FL_DTYPE_F64, 20, 2), a2 = fl_array_host(o2, FL_DTYPE_F64, 20, 2);
    CHECK_OK(ctx, fl_model_transform(m, &xa, &a1));
    CHECK_OK(ctx, fl_model_transform(back, &xa, &a2));
    CHECK(!memcmp(o1, o2, sizeof o1));
    ((unsigned char *)buf)[len / 2] ^= 0x5a;
    fl_model *bad = NULL;
    CHECK_ERR(ctx, fl_model_load_buffer(ctx, buf, len, &bad), FL_STATUS_CORRUPT, "");
    CHECK(bad == NULL);
    fl_buffer_free(buf);
    fl_model_free(back);
    fl_model_free(m);

    /* TruncatedSVD bounds */
    fl_params *t;
    fl_params_create(ctx, "truncated_svd", &t);
    fl_params_set(ctx, t, "n_components", "4");
    fl_params_set(ctx, t, "algorithm", "arpack");
    CHECK_ERR(ctx, fl_truncated_svd_fit(ctx, &xa, t, &m), FL_STATUS_INVALID_ARG,
              "n_components=4: must be in");
    fl_array col = fl_array_host(X, FL_DTYPE_F64, 20, 1);
    col.ld = 4;
    CHECK_ERR(ctx, fl_truncated_svd_fit(ctx, &col, t, &m), FL_STATUS_INVALID_ARG, "at least 2 features");
    fl_params_free(t);
    fl_params_free(p);

    /* an explicit CUDA device: solvers without a CUDA path say so clearly
     * (with or without a GPU) */
    fl_ctx *cuda;
    if (fl_ctx_create("cuda", &cuda, NULL, 0) == FL_STATUS_OK) {
        fl_model *cm = NULL;
        fl_params *full;
        fl_params_create(cuda, "pca", &full);
        fl_params_set(cuda, full, "svd_solver", "full");
        CHECK_ERR(cuda, fl_pca_fit(cuda, &xa, full, &cm), FL_STATUS_UNSUPPORTED, "has no CUDA path yet");
        CHECK(cm == NULL);
        fl_params_free(full);
        /* TruncatedSVD's randomized solver has one: no GPU usable here, or
         * it fits there */
        fl_status st = fl_truncated_svd_fit(cuda, &xa, NULL, &cm);
        CHECK_MSG(st == FL_STATUS_OK ? cm != NULL : (st == FL_STATUS_NO_DEVICE && cm == NULL), "%s: %s",
                  fl_status_str(st), fl_ctx_last_error(cuda));
        fl_model_free(cm);
        cm = NULL;
        fl_params *arp;
        fl_params_create(cuda, "truncated_svd", &arp);
        fl_params_set(cuda, arp, "algorithm", "arpack");
        CHECK_ERR(cuda, fl_truncated_svd_fit(cuda, &xa, arp, &cm), FL_STATUS_UNSUPPORTED,
                  "has no CUDA path yet");
        CHECK(cm == NULL);
        fl_params_free(arp);
        fl_ctx_free(cuda);
    }
}

/* Every allocation of a fit, transform, inverse_transform and
 * score_samples fails in turn: each time FL_STATUS_OUT_OF_MEMORY with its
 * message, an unfitted model and nothing leaked. */
static void test_alloc_failure_injection(void)
{
    static double X[80 * 6];
    for (int i = 0; i < 80 * 6; i++)
        X[i] = test_normal() + (i % 6);
    fl_array xa = fl_array_host(X, FL_DTYPE_F64, 80, 6);
    const char *solvers[] = {"full", "covariance_eigh", "randomized"};
    for (int s = 0; s < 3; s++) {
        int all_clean = 1, attempts = 0;
        for (long fail_at = 1; fail_at < 10000; fail_at++) {
            fl_ctx *ctx;
            fl_ctx_create("cpu", &ctx, NULL, 0);
            failing_alloc fa = {0, fail_at, 0};
            fl_host_allocator ha = {fa_alloc, fa_free, &fa};
            fl_ctx_set_host_allocator(ctx, &ha);
            fl_params *p;
            fl_params_create(ctx, "pca", &p);
            fl_params_set(ctx, p, "svd_solver", solvers[s]);
            fl_params_set(ctx, p, "n_components", "3");
            fl_model *m;
            fl_model_create(ctx, "pca", p, &m);
            double Y[80 * 3], Z[80 * 6], ll[80];
            fl_array ya = fl_array_host(Y, FL_DTYPE_F64, 80, 3), za = fl_array_host(Z, FL_DTYPE_F64, 80, 6);
            fl_array la = fl_array_host(ll, FL_DTYPE_F64, 80, 1);
            fl_status st = fl_model_fit(m, &xa, NULL, NULL);
            const int fitted = st == FL_STATUS_OK;
            if (!st)
                st = fl_model_transform(m, &xa, &ya);
            if (!st)
                st = fl_model_inverse_transform(m, &ya, &za);
            if (!st)
                st = fl_model_score_samples(m, &xa, &la);
            attempts++;
            if (st != FL_STATUS_OK &&
                (st != FL_STATUS_OUT_OF_MEMORY || !strstr(fl_ctx_last_error(ctx), "out of host memory") ||
                 fl_model_is_fitted(m) != fitted)) {
                all_clean = 0;
                fprintf(stderr, "%s fail_at=%ld: %s: %s\n", solvers[s], fail_at, fl_status_str(st),
                        fl_ctx_last_error(ctx));
            }
            fl_model_free(m);
            fl_params_free(p);
            if (fa.live != 0) {
                all_clean = 0;
                fprintf(stderr, "%s fail_at=%ld: %ld allocations leaked\n", solvers[s], fail_at, fa.live);
            }
            fl_ctx_free(ctx);
            if (st == FL_STATUS_OK)
                break;
        }
        CHECK_MSG(all_clean, "%s", solvers[s]);
        CHECK_MSG(attempts > 10, "%s: only %d attempts", solvers[s], attempts);
    }
}

/* ---- the GPU path (covariance_eigh on the CUDA module) ------------------ */

/* n x d float32, row stride ld >= d: offsets of 5 plus columns of decaying
 * scale mixed by a fixed rotation of the first 3, so the leading
 * components are not the axes and every eigenvalue is distinct. */
static float *gpu_data(int64_t n, int64_t d, int64_t ld)
{
    float *X = malloc(sizeof(float) * (size_t)(n * ld));
    for (int64_t i = 0; i < n; i++) {
        double z[3];
        for (int64_t j = 0; j < d; j++) {
            const double v = test_normal() / (1.0 + 0.3 * (double)j);
            if (j < 3)
                z[j] = v;
            X[i * ld + j] = (float)(5.0 + v);
        }
        if (d >= 3) {
            X[i * ld + 0] = (float)(5.0 + 0.8 * z[0] + 0.6 * z[1]);
            X[i * ld + 1] = (float)(5.0 - 0.6 * z[0] + 0.8 * z[1] + 0.1 * z[2]);
        }
        for (int64_t j = d; j < ld; j++)
            X[i * ld + j] = 1e30f; /* never read */
    }
    return X;
}

static double max_rel(const double *a, const double *b, int64_t len)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < len; i++) {
        num = fmax(num, fabs(a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    return den > 0 ? num / den : num;
}

/* PCA parameters: covariance_eigh, k components */
static fl_params *eigh_params(fl_ctx *ctx, int64_t k)
{
    fl_params *p = NULL;
    fl_params_create(ctx, "pca", &p);
    fl_params_set(ctx, p, "svd_solver", "covariance_eigh");
    fl_params_set_int(ctx, p, "n_components", k);
    return p;
}

/* log lines of a context, concatenated (the top-k path says how it ended) */
static void keep_log(void *user, fl_log_level level, const char *msg)
{
    (void)level;
    char *buf = user;
    const size_t n = strlen(buf);
    snprintf(buf + n, 4096 - n, "%s\n", msg);
}

/* top-k eigen step cases: a decaying spectrum (converges), a flat one
 * (gives up, the full eigh takes over), a rank-deficient one; expect is
 * what the log must say */
typedef struct topk_case {
    int64_t n, d, k;
    int kind; /* 0 decaying, 1 flat, 2 rank d / 2, 3 rank 12 */
    const char *expect;
} topk_case;

/* Fits each case with t (the top-k path) and c (the CPU's full dsyevd) on
 * the same data and compares every attribute. */
static void run_topk_cases(const char *dev, fl_ctx *t, fl_ctx *c, const topk_case *cases, size_t ncases)
{
    static char log[4096];
    fl_ctx_set_log(t, keep_log, log);
    fl_ctx_set_verbosity(t, FL_LOG_INFO);
    for (size_t ci = 0; ci < ncases; ci++) {
        const int64_t n = cases[ci].n, d = cases[ci].d, k = cases[ci].k;
        float *X = malloc(sizeof(float) * (size_t)(n * d));
        double *G = malloc(sizeof(double) * (size_t)(n * d));
        for (int64_t i = 0; i < n * d; i++)
            G[i] = test_normal();
        if (cases[ci].kind == 1) {
            /* columns centred and orthonormalised (Gram-Schmidt): the
             * scatter is exactly diag(sigma^2), eigenvalues 1e-4 apart
             * past the fourth, far too flat to separate the 16th from the
             * block's last */
            for (int64_t j = 0; j < d; j++) {
                double m = 0, nr = 0;
                for (int64_t i = 0; i < n; i++)
                    m += G[i * d + j] / (double)n;
                for (int64_t i = 0; i < n; i++)
                    G[i * d + j] -= m;
                for (int64_t q = 0; q < j; q++) {
                    double dot = 0;
                    for (int64_t i = 0; i < n; i++)
                        dot += G[i * d + q] * G[i * d + j];
                    for (int64_t i = 0; i < n; i++)
                        G[i * d + j] -= dot * G[i * d + q];
                }
                for (int64_t i = 0; i < n; i++)
                    nr += G[i * d + j] * G[i * d + j];
                for (int64_t i = 0; i < n; i++)
                    G[i * d + j] /= sqrt(nr);
            }
        }
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < d; j++) {
                double v = G[i * d + j] / (1.0 + 0.1 * (double)j);
                if (cases[ci].kind == 1)
                    v = G[i * d + j] * (j < 4 ? 10.0 : sqrt(1.0 + 1e-4 * (double)(d - j)));
                if (cases[ci].kind == 2 && j >= d / 2)
                    v = G[i * d + j % 4]; /* copies of four columns: rank d / 2 */
                if (cases[ci].kind == 3 && j >= 12)
                    v = G[i * d + j % 12] / (1.0 + 0.1 * (double)(j % 12)); /* rank 12 */
                X[i * d + j] = (float)(5.0 + v);
            }
        free(G);
        fl_array xa = fl_array_host(X, FL_DTYPE_F32, n, d);
        fl_params *pt = eigh_params(t, k), *pc = eigh_params(c, k);
        fl_model *mt = NULL, *mc = NULL;
        log[0] = 0;
        CHECK_OK(t, fl_pca_fit(t, &xa, pt, &mt));
        CHECK_OK(c, fl_pca_fit(c, &xa, pc, &mc));
        CHECK_MSG(strstr(log, cases[ci].expect) != NULL, "%s case %zu: expected \"%s\" in the log:\n%s", dev,
                  ci, cases[ci].expect, log);
        /* the unwaited orthonormalisations read their Choleskys' outcome
         * right: none broke down on the decaying spectra */
        CHECK_MSG(strcmp(dev, "cuda") || cases[ci].kind != 0 ||
                      strstr(log, "; 0 orthonormalisations redone") != NULL,
                  "%s case %zu: an orthonormalisation was redone:\n%s", dev, ci, log);
        /* FL_TOPK_ORTH=redo: every orthonormalisation redone the careful way */
        CHECK_MSG(strcmp(dev, "redo") || strstr(log, "; 0 orthonormalisations redone") == NULL,
                  "%s case %zu: expected redone orthonormalisations:\n%s", dev, ci, log);
        if (mt && mc) {
            const char *names[] = {"components_", "explained_variance_", "explained_variance_ratio_", "mean_",
                                   "noise_variance_"};
            /* float64 eigensolvers on one scatter: the pairs agree to the
             * residual over the eigenvalue gap (components), far better
             * for the values. Rank deficient: the full path clamps the
             * rounding's negative eigenvalues to 0 in its total, the top-k
             * path takes the trace (6e-8 apart here) */
            const double loose = cases[ci].kind >= 2 ? 1e-6 : 1e-10;
            const double tol[] = {1e-6, 1e-10, loose, 1e-12, loose * 10};
            for (int a = 0; a < 5; a++) {
                int64_t r1, c1, r2, c2;
                double *vt = attr(mt, names[a], &r1, &c1), *vc = attr(mc, names[a], &r2, &c2);
                CHECK(vt && vc && r1 == r2 && c1 == c2);
                if (vt && vc && r1 == r2 && c1 == c2) {
                    const double e = max_rel(vt, vc, r1 * c1);
                    CHECK_MSG(e <= tol[a], "%s case %zu (%lld x %lld, k %lld): %s differs by %.3g", dev, ci,
                              (long long)n, (long long)d, (long long)k, names[a], e);
                }
                free(vt);
                free(vc);
            }
        }
        fl_model_free(mt);
        fl_model_free(mc);
        fl_params_free(pt);
        fl_params_free(pc);
        free(X);
    }
}

/* The top-k eigen step that the GPU runs for few components (Chebyshev-
 * filtered subspace iteration over fli_la) on the CPU's BLAS
 * (FL_DECOMP_LA=1), against the CPU's full dsyevd on the same data, k = 1
 * and the largest k the block allows among the cases. */
static void test_topk_eigh_cpu(void)
{
    setenv("FL_DECOMP_LA", "1", 1);
    fl_ctx *t, *c;
    fl_ctx_create("cpu", &t, NULL, 0);
    unsetenv("FL_DECOMP_LA");
    fl_ctx_create("cpu", &c, NULL, 0);
    const topk_case cases[] = {{3000, 96, 8, 0, "converged"},  {4000, 64, 16, 0, "converged"},
                               {5000, 150, 1, 0, "converged"}, {2000, 128, 16, 1, "full eigh instead"},
                               {3000, 80, 4, 2, "converged"},  {3000, 80, 4, 3, "converged"}};
    run_topk_cases("cpu", t, c, cases, sizeof cases / sizeof *cases);
    fl_ctx_free(t);
    /* the careful path after every unwaited orthonormalisation
     * (FL_TOPK_ORTH=redo) and in place of it (=wait), and the p x p
     * eigenproblems by LAPACK (FL_TOPK_HOST=lapack): the same answers */
    const char *modes[] = {"redo", "wait", "lapack"};
    for (int mi = 0; mi < 3; mi++) {
        setenv("FL_DECOMP_LA", "1", 1);
        setenv(mi < 2 ? "FL_TOPK_ORTH" : "FL_TOPK_HOST", modes[mi], 1);
        fl_ctx_create("cpu", &t, NULL, 0);
        unsetenv("FL_TOPK_ORTH");
        unsetenv("FL_TOPK_HOST");
        unsetenv("FL_DECOMP_LA");
        run_topk_cases(modes[mi], t, c, cases, 2);
        fl_ctx_free(t);
    }
    fl_ctx_free(c);
}

/* The same solver on the GPU (d >= 8 p, fli_topk_on_gpu) against
 * cuSOLVER's full float64 syevd of the same scatter (FL_PCA_FULL_EIGH=1):
 * an odd block (k = 3: p = 19), the blocks of k + ceil(k / 2) (k = 48: p =
 * 72) and the largest the GPU takes (k = 85: p = 128). Skipped without a
 * GPU. */
static void test_topk_eigh_gpu(void)
{
    fl_ctx *t, *c;
    fl_ctx_create("cuda", &t, NULL, 0);
    if (fl_cuda_device_count(t, NULL) == 0) {
        fl_ctx_free(t);
        return;
    }
    setenv("FL_PCA_FULL_EIGH", "1", 1);
    fl_ctx_create("cuda", &c, NULL, 0);
    unsetenv("FL_PCA_FULL_EIGH");
    const topk_case cases[] = {{20000, 200, 8, 0, "converged"},  {20000, 160, 3, 0, "converged"},
                               {20000, 200, 4, 2, "converged"},  {8000, 256, 16, 1, "full eigh instead"},
                               {20000, 768, 48, 0, "converged"}, {20000, 1024, 85, 0, "converged"}};
    run_topk_cases("cuda", t, c, cases, sizeof cases / sizeof *cases);
    fl_ctx_free(t);
    /* every unwaited orthonormalisation redone the careful way */
    setenv("FL_TOPK_ORTH", "redo", 1);
    fl_ctx_create("cuda", &t, NULL, 0);
    unsetenv("FL_TOPK_ORTH");
    run_topk_cases("redo", t, c, cases, 3);
    fl_ctx_free(t);
    fl_ctx_free(c);
}

/* GPU PCA against the CPU backend on several shapes (d not a multiple of
 * 32, ld > d, many row chunks): components (same signs, both use svd_flip),
 * explained variance (and ratio), singular values, mean, noise variance,
 * transform and inverse_transform. Skipped without a GPU. */
static void test_gpu_vs_cpu(void)
{
    fl_ctx *g, *c;
    fl_ctx_create("cuda", &g, NULL, 0);
    fl_ctx_create("cpu", &c, NULL, 0);
    if (fl_cuda_device_count(g, NULL) == 0) {
        float X[40 * 3];
        for (int i = 0; i < 40 * 3; i++)
            X[i] = (float)test_normal();
        fl_array xa = fl_array_host(X, FL_DTYPE_F32, 40, 3);
        fl_params *p;
        fl_params_create(g, "pca", &p);
        fl_params_set(g, p, "svd_solver", "covariance_eigh");
        fl_model *m = NULL;
        CHECK_ERR(g, fl_pca_fit(g, &xa, p, &m), FL_STATUS_NO_DEVICE, "needs a CUDA GPU");
        CHECK(m == NULL);
        fl_params_free(p);
        fprintf(stderr, "test_pca: no GPU, GPU comparisons skipped\n");
        fl_ctx_free(g);
        fl_ctx_free(c);
        return;
    }
    const struct {
        int64_t n, d, ld, k;
    } shapes[] = {{3000, 37, 37, 5},
                  {5000, 64, 70, 10},
                  {2000, 129, 129, 20},
                  {10000, 5, 5, 3},
                  {4096, 300, 301, 8},
                  {200000, 40, 40, 40},
                  {50, 33, 33, 33},
                  /* the top-k solver on the GPU (block p <= 128, d >= 8 p): 300 x k=8 above, here p = 64 */
                  {20000, 512, 515, 32}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int64_t n = shapes[si].n, d = shapes[si].d, ld = shapes[si].ld, k = shapes[si].k;
        float *X = gpu_data(n, d, ld);
        fl_array xa = fl_array_host(X, FL_DTYPE_F32, n, d);
        xa.ld = ld;
        fl_model *mg = NULL, *mc = NULL;
        fl_params *pg = eigh_params(g, k), *pc = eigh_params(c, k);
        CHECK_OK(g, fl_pca_fit(g, &xa, pg, &mg));
        CHECK_OK(c, fl_pca_fit(c, &xa, pc, &mc));
        if (mg && mc) {
            const char *names[] = {
                "components_", "explained_variance_", "explained_variance_ratio_", "singular_values_",
                "mean_",       "noise_variance_"};
            /* float32 products summed in float64 on both sides: the scatter
             * agrees to ~1e-6; a component to its eigenvalue gap */
            const double tol[] = {1e-3, 1e-5, 1e-5, 1e-5, 1e-6, 1e-4};
            for (int a = 0; a < 6; a++) {
                int64_t r1, c1, r2, c2;
                double *vg = attr(mg, names[a], &r1, &c1), *vc = attr(mc, names[a], &r2, &c2);
                CHECK(vg && vc && r1 == r2 && c1 == c2);
                if (vg && vc && r1 == r2 && c1 == c2) {
                    const double e = max_rel(vg, vc, r1 * c1);
                    CHECK_MSG(e <= tol[a], "%lld x %lld: %s differs by %.3g (tol %.1g)", (long long)n,
                              (long long)d, names[a], e, tol[a]);
                }
                free(vg);
                free(vc);
            }
            /* transform on the GPU (host in and out) vs the CPU's */
            float *Yg = malloc(sizeof(float) * (size_t)(n * k)),
                  *Yc = malloc(sizeof(float) * (size_t)(n * k));
            float *Zg = malloc(sizeof(float) * (size_t)(n * d));
            fl_array yg = fl_array_host(Yg, FL_DTYPE_F32, n, k), yc = fl_array_host(Yc, FL_DTYPE_F32, n, k);
            fl_array zg = fl_array_host(Zg, FL_DTYPE_F32, n, d);
            CHECK_OK(g, fl_model_transform(mg, &xa, &yg));
            CHECK_OK(c, fl_model_transform(mc, &xa, &yc));
            double num = 0, den = 0;
            for (int64_t i = 0; i < n * k; i++) {
                num += ((double)Yg[i] - Yc[i]) * ((double)Yg[i] - Yc[i]);
                den += (double)Yc[i] * Yc[i];
            }
            CHECK_MSG(sqrt(num / den) < 1e-4, "%lld x %lld: transform differs by %.3g", (long long)n,
                      (long long)d, sqrt(num / den));
            /* inverse_transform on the GPU: the full-rank round trip gives X back */
            CHECK_OK(g, fl_model_inverse_transform(mg, &yg, &zg));
            if (k == d) {
                double e = 0;
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < d; j++)
                        e = fmax(e, fabs((double)Zg[i * d + j] - X[i * ld + j]));
                CHECK_MSG(e < 1e-3, "%lld x %lld: round trip error %.3g", (long long)n, (long long)d, e);
            }
            free(Yg);
            free(Yc);
            free(Zg);
        }
        fl_model_free(mg);
        fl_model_free(mc);
        fl_params_free(pg);
        fl_params_free(pc);
        /* a NaN anywhere in X: a clear error, no model */
        X[(n - 1) * ld + d / 2] = NAN;
        fl_model *bad = NULL;
        fl_params *pb;
        fl_params_create(g, "pca", &pb);
        fl_params_set(g, pb, "svd_solver", "covariance_eigh");
        CHECK_ERR(g, fl_pca_fit(g, &xa, pb, &bad), FL_STATUS_INVALID_ARG, "");
        CHECK(bad == NULL);
        fl_params_free(pb);
        free(X);
    }
    /* a variance fraction (every eigenvalue needed) matches too */
    {
        float *X = gpu_data(3000, 50, 50);
        fl_array xa = fl_array_host(X, FL_DTYPE_F32, 3000, 50);
        fl_params *pg, *pc;
        fl_params_create(g, "pca", &pg);
        fl_params_create(c, "pca", &pc);
        fl_params_set(g, pg, "svd_solver", "covariance_eigh");
        fl_params_set(c, pc, "svd_solver", "covariance_eigh");
        fl_params_set(g, pg, "n_components", "0.9");
        fl_params_set(c, pc, "n_components", "0.9");
        fl_model *mg = NULL, *mc = NULL;
        CHECK_OK(g, fl_pca_fit(g, &xa, pg, &mg));
        CHECK_OK(c, fl_pca_fit(c, &xa, pc, &mc));
        double kg = -1, kc = -2;
        if (mg && mc) {
            fl_model_attr_scalar(mg, "n_components_", &kg);
            fl_model_attr_scalar(mc, "n_components_", &kc);
        }
        CHECK_MSG(kg == kc, "n_components_ %g on the GPU, %g on the CPU", kg, kc);
        fl_model_free(mg);
        fl_model_free(mc);
        fl_params_free(pg);
        fl_params_free(pc);
        free(X);
    }
    fl_ctx_free(g);
    fl_ctx_free(c);
}

/* The GPU's split products (FL_PCA_PRODUCT: 3xtf32, the default, its
 * fused kernel 3xtf32-fused (wgmma on Hopper) and that kernel on mma.sync
 * (3xtf32-fused-mma, the fused kernel elsewhere), and 3xbf16, ~16 bits of
 * the shifted data)
 * against the CPU backend (float32 blocks summed in float64) on data far
 * from the origin with a large dynamic range: column scales 1e-3 .. 1e3,
 * offsets 1e3 times the scale (the CPU simulation,
 * bench/gpu/pca_split_sim.py, puts both products at ~1e-8 of float64 on
 * such data; the tolerances leave two decades). Two shapes: d = 48 (one
 * padded column block) and d = 260 (three blocks, the last mostly
 * padding), n not a multiple of 32 and above the fused kernel's 32768-row
 * host chunks. Skipped without a GPU. */
static void test_gpu_products(void)
{
    const char *prods[] = {"3xtf32", "3xtf32-fused", "3xtf32-fused-mma", "3xbf16"};
    const int64_t shapes[2][3] = {{60000, 48, 6}, {40001, 260, 5}};
    for (int si = 0; si < 2; si++) {
        const int64_t n = shapes[si][0], d = shapes[si][1], k = shapes[si][2];
        float *X = gpu_data(n, d, d);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < d; j++) {
                const double sc = pow(10.0, -3.0 + 6.0 * (double)((j * 7) % d) / (double)(d - 1));
                X[i * d + j] = (float)((1e3 + ((double)X[i * d + j] - 5.0)) * sc);
            }
        fl_array xa = fl_array_host(X, FL_DTYPE_F32, n, d);
        fl_ctx *c;
        fl_ctx_create("cpu", &c, NULL, 0);
        fl_params *pc = eigh_params(c, k);
        fl_model *mc = NULL;
        CHECK_OK(c, fl_pca_fit(c, &xa, pc, &mc));
        for (int pi = 0; pi < 4 && mc; pi++) {
            setenv("FL_PCA_PRODUCT", prods[pi], 1);
            fl_ctx *g;
            fl_ctx_create("cuda", &g, NULL, 0);
            unsetenv("FL_PCA_PRODUCT");
            if (fl_cuda_device_count(g, NULL) == 0) {
                fl_ctx_free(g);
                break;
            }
            fl_params *pg = eigh_params(g, k);
            fl_model *mg = NULL;
            CHECK_OK(g, fl_pca_fit(g, &xa, pg, &mg));
            const char *names[] = {"components_", "explained_variance_", "mean_"};
            const double tol[] = {1e-4, 1e-5, 1e-6};
            for (int a = 0; a < 3 && mg; a++) {
                int64_t r1, c1, r2, c2;
                double *vg = attr(mg, names[a], &r1, &c1), *vc = attr(mc, names[a], &r2, &c2);
                CHECK(vg && vc && r1 == r2 && c1 == c2);
                if (vg && vc && r1 == r2 && c1 == c2) {
                    const double e = max_rel(vg, vc, r1 * c1);
                    CHECK_MSG(e <= tol[a],
                              "%s product, dynamic-range data %lld x %lld: %s differs by %.3g (tol %.1g)",
                              prods[pi], (long long)n, (long long)d, names[a], e, tol[a]);
                }
                free(vg);
                free(vc);
            }
            fl_model_free(mg);
            fl_params_free(pg);
            fl_ctx_free(g);
        }
        fl_model_free(mc);
        fl_params_free(pc);
        fl_ctx_free(c);
        free(X);
    }
}

/* The GPU fit's host allocations fail in turn: OUT_OF_MEMORY each time,
 * no model, nothing leaked; then it succeeds. */
static void test_gpu_host_alloc_failure(void)
{
    fl_ctx *probe;
    fl_ctx_create("cuda", &probe, NULL, 0);
    const int have = fl_cuda_device_count(probe, NULL) > 0;
    fl_ctx_free(probe);
    if (!have)
        return;
    float *X = gpu_data(2000, 24, 24);
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, 2000, 24);
    int ok = 0, clean = 1, attempts = 0;
    for (long fail_at = 1; fail_at < 500 && !ok; fail_at++) {
        fl_ctx *ctx;
        fl_ctx_create("cuda", &ctx, NULL, 0);
        failing_alloc fa = {0, fail_at, 0};
        fl_host_allocator ha = {fa_alloc, fa_free, &fa};
        fl_ctx_set_host_allocator(ctx, &ha);
        fl_params *p;
        fl_params_create(ctx, "pca", &p);
        fl_params_set(ctx, p, "svd_solver", "covariance_eigh");
        fl_params_set(ctx, p, "n_components", "4");
        fl_model *m = NULL;
        fl_status st = fl_pca_fit(ctx, &xa, p, &m);
        attempts++;
        if (st == FL_STATUS_OK)
            ok = 1;
        else if (st != FL_STATUS_OUT_OF_MEMORY || m) {
            clean = 0;
            fprintf(stderr, "fail_at=%ld: status %d (%s)\n", fail_at, (int)st, fl_ctx_last_error(ctx));
        }
        fl_model_free(m);
        fl_params_free(p);
        fl_ctx_free(ctx);
        if (fa.live != 0) {
            clean = 0;
            fprintf(stderr, "fail_at=%ld: %ld host allocations leaked\n", fail_at, (long)fa.live);
        }
    }
    CHECK(ok);
    CHECK(clean);
    CHECK(attempts >= 2);
    free(X);
}

int main(void)
{
    (void)make_blobs;
    fl_ctx *ctx;
    fl_ctx_create("cpu", &ctx, NULL, 0);
    test_against_reference(ctx);
    test_forms_and_tsvd(ctx);
    test_edges(ctx);
    test_alloc_failure_injection();
    CHECK_MSG(!fl_cuda_loaded(), "a CPU decomposition loaded CUDA");
    /* after the check: its "cuda" context fits TruncatedSVD on a GPU */
    test_bad_input(ctx);
    fl_ctx_free(ctx);
    test_topk_eigh_cpu();
    test_topk_eigh_gpu();
    test_gpu_vs_cpu();
    test_gpu_products();
    test_gpu_host_alloc_failure();
    TEST_MAIN_END();
}
