/*
 * decomp_la.c — PCA / TruncatedSVD with the randomized solver, written
 * once over the dense-operation interface (algo/linalg.h): the GPU path of
 * svd_solver='randomized' and of TruncatedSVD (and runnable on the CPU's
 * fli_la, which is how it is tested on machines without a GPU).
 *
 * Halko, Martinsson and Tropp's range finder as scikit-learn runs it:
 *   Y = M Omega (Omega d x l standard normal, l = k + n_oversamples);
 *   n_iter times: Y <- orth(Y); Z <- orth(M^T Y); Y <- M Z;
 *   Q = orth(Y); B^T = M^T Q (d x l); B^T = Q_b R_b (Householder QR);
 *   R_b^T = U_r S V_r^T (float64 SVD on the host, l x l);
 *   components = the first k columns of Q_b V_r, singular values S.
 * M = X - 1 mu^T for PCA, X for TruncatedSVD. orth() is CholeskyQR2
 * (shifted CholeskyQR3 when Y is ill-conditioned or rank deficient,
 * Householder QR when it is zero): an orthonormal basis of
 * the same span as scikit-learn's QR or LU normaliser, so the subspace and
 * the result agree to rounding (power_iteration_normalizer picks among
 * bases of one span; 'none' would let the span lose its small directions,
 * and is treated like the others here).
 *
 * The centred copy: Xc = X - 1 s^T with s the first row, mu' = mean of
 * Xc, Xc -= 1 mu'^T, mu = s + mu' (shifted sums: data far from the origin
 * keeps its precision). It also gives the total variance (||Xc||_F^2) and,
 * for TruncatedSVD, the variance of each projected column.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/decomp_la.h"
#include "algo/linalg.h"
#include "backends/cpu/lapack.h"
#include "core/internal.h"

/* dgesdd of the l x l R_b^T (host, column-major double): S and V_r. */
static fl_status small_svd(fl_ctx *ctx, int l, double *A, double *S, double *U, double *VT)
{
    int info = 0, lwork = -1;
    double wq;
    int *iw = fli_malloc(ctx, sizeof(int) * 8 * (size_t)l, "svd iwork");
    if (!iw)
        return FL_STATUS_OUT_OF_MEMORY;
    dgesdd_("A", &l, &l, A, &l, S, U, &l, VT, &l, &wq, &lwork, iw, &info, 1);
    lwork = (int)wq + 1;
    double *w = fli_malloc(ctx, sizeof(double) * (size_t)lwork, "svd workspace");
    fl_status st = w ? FL_STATUS_OK : FL_STATUS_OUT_OF_MEMORY;
    if (!st)
        dgesdd_("A", &l, &l, A, &l, S, U, &l, VT, &l, w, &lwork, iw, &info, 1);
    if (!st && info)
        st = fli_fail(ctx, FL_STATUS_NUMERICAL, "randomized: the small SVD did not converge (info %d)", info);
    fli_free(ctx, w);
    fli_free(ctx, iw);
    return st;
}

/* Host doubles from an la buffer of n elements. */
static fl_status get_doubles(fli_la *la, const void *src, int64_t n, double *out)
{
    const size_t es = fli_la_esize(la);
    void *t = malloc(es * (size_t)n + 8);
    if (!t)
        return FL_STATUS_OUT_OF_MEMORY;
    fl_status st = la->ops->get(la, t, src, es * (size_t)n);
    for (int64_t i = 0; !st && i < n; i++)
        out[i] = es == 8 ? ((double *)t)[i] : (double)((float *)t)[i];
    free(t);
    return st;
}

static fl_status put_doubles(fli_la *la, void *dst, const double *in, int64_t n)
{
    const size_t es = fli_la_esize(la);
    void *t = malloc(es * (size_t)n + 8);
    if (!t)
        return FL_STATUS_OUT_OF_MEMORY;
    for (int64_t i = 0; i < n; i++) {
        if (es == 8)
            ((double *)t)[i] = in[i];
        else
            ((float *)t)[i] = (float)in[i];
    }
    fl_status st = la->ops->put(la, dst, t, es * (size_t)n);
    free(t);
    return st;
}

/* An orthonormal basis of A's columns in place: CholeskyQR2 (shifted when
 * A is ill-conditioned or rank deficient); a zero A, which has no Gram
 * matrix to factor, goes to Householder QR. */
static fl_status orth(fl_ctx *ctx, fli_la *la, int64_t m, int64_t n, void *A, int64_t lda)
{
    fl_status st = fli_la_cholqr2(la, m, n, A, lda, NULL, 0, NULL);
    if (st == FL_STATUS_NUMERICAL) {
        fli_clear_error(ctx);
        st = la->ops->qr(la, m, n, A, lda, NULL, 0);
    }
    return st;
}

fl_status fli_decomp_randomized_la(fl_ctx *ctx, fli_la *la, const fl_array *X, fli_decomp_job *job,
                                   double *proj_var)
{
    const int64_t n = X->rows, d = X->cols, k = job->k;
    int64_t l = k + job->n_oversamples;
    const int64_t mn = n < d ? n : d;
    if (l > mn)
        l = mn;
    const size_t es = fli_la_esize(la);
    const int prec = la->dt == FL_DTYPE_F64 ? FLI_GEMM_FP64 : FLI_GEMM_FP32;
    const fli_la_ops *o = la->ops;
    void *ownx = NULL, *Xc = NULL, *Y = NULL, *Z = NULL, *ones = NULL, *vec = NULL, *R = NULL, *V = NULL;
    double *h = NULL;
    const void *px;
    fl_status st = fli_la_borrow(la, X, &px, &ownx);
    /* column-major views: X's buffer is X^T (d x n, ld); so is Xc's (ld d) */
    if (!st)
        st = o->alloc(la, es * (size_t)(n * d), &Xc);
    if (!st)
        st = o->alloc(la, es * (size_t)(n > d ? n : d) + es * (size_t)(2 * d), &ones);
    if (!st)
        st = o->alloc(la, es * (size_t)(n * l), &Y);
    if (!st)
        st = o->alloc(la, es * (size_t)(d * l), &Z);
    if (!st)
        st = o->alloc(la, es * (size_t)(l * l), &R);
    if (!st)
        st = o->alloc(la, es * (size_t)(d * l), &V);
    if (st)
        goto done;
    vec = (char *)ones + es * (size_t)(n > d ? n : d);
    void *mu1 = (char *)vec + es * (size_t)d;
    h = fli_malloc(ctx, sizeof(double) * (size_t)(3 * l * l + 3 * d + l + 8), "randomized host buffers");
    if (!h) {
        st = FL_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    double *hs = h + 3 * l * l, *hmean = hs + l;
    /* Xc = X - 1 s^T - 1 mu'^T */
    if ((st = o->fill(la, n, 1, ones, n, 1.0, 1.0)) ||
        (st = o->geam(la, 0, 0, d, n, 1.0, px, fli_ld(X), 0.0, NULL, 1, Xc, d)) ||
        (st = o->geam(la, 0, 0, d, 1, 1.0, px, fli_ld(X), 0.0, NULL, 1, vec, d)) ||
        (st = o->gemm(la, prec, 0, 0, 1, d, n, 1, -1.0, vec, d, ones, n, 1.0, Xc, d)) ||
        (st = o->gemm(la, prec, 0, 0, 0, d, 1, n, 1.0 / (double)n, Xc, d, ones, n, 0.0, mu1, d)) ||
        (st = o->gemm(la, prec, 0, 0, 1, d, n, 1, -1.0, mu1, d, ones, n, 1.0, Xc, d)))
        goto done;
    {
        double *s0 = hmean + d, *m1 = s0 + d;
        if ((st = get_doubles(la, vec, d, s0)) || (st = get_doubles(la, mu1, d, m1)))
            goto done;
        for (int64_t j = 0; j < d; j++)
            hmean[j] = s0[j] + m1[j];
        memcpy(job->mean, hmean, sizeof(double) * (size_t)d);
        double fro;
        if ((st = o->fro(la, d, n, Xc, d, &fro)))
            goto done;
        job->total_ss = fro * fro;
    }
    /* M: the centred copy for PCA, X itself for TruncatedSVD */
    const void *M = job->center ? Xc : px;
    const int64_t ldm = job->center ? d : fli_ld(X);
    /* Y = M Omega */
    if ((st = o->randn(la, d, l, Z, d, job->seed)) ||
        (st = o->gemm(la, prec, 0, 1, 0, n, l, d, 1.0, M, ldm, Z, d, 0.0, Y, n)))
        goto done;
    for (int64_t it = 0; it < job->n_iter; it++) {
        if ((st = orth(ctx, la, n, l, Y, n)) ||
            (st = o->gemm(la, prec, 0, 0, 0, d, l, n, 1.0, M, ldm, Y, n, 0.0, Z, d)) ||
            (st = orth(ctx, la, d, l, Z, d)) ||
            (st = o->gemm(la, prec, 0, 1, 0, n, l, d, 1.0, M, ldm, Z, d, 0.0, Y, n)))
            goto done;
        if ((st = fli_progress(ctx, "randomized power iterations", it + 1, job->n_iter)))
            goto done;
    }
    /* Q = orth(Y); B^T = M^T Q = Q_b R_b */
    if ((st = orth(ctx, la, n, l, Y, n)) ||
        (st = o->gemm(la, prec, 0, 0, 0, d, l, n, 1.0, M, ldm, Y, n, 0.0, Z, d)) ||
        (st = o->qr(la, d, l, Z, d, R, l)))
        goto done;
    {
        /* R_b^T = U_r S V_r^T on the host; B = U_r S (Q_b V_r)^T */
        double *Rt = h, *U = h + l * l, *VT = h + 2 * l * l, *S = hs;
        double *Rh = fli_malloc(ctx, sizeof(double) * (size_t)(l * l), "R");
        if (!Rh) {
            st = FL_STATUS_OUT_OF_MEMORY;
            goto done;
        }
        st = get_doubles(la, R, l * l, Rh);
        for (int64_t j = 0; !st && j < l; j++)
            for (int64_t i = 0; i < l; i++)
                Rt[i + j * l] = Rh[j + i * l];
        fli_free(ctx, Rh);
        if (st || (st = small_svd(ctx, (int)l, Rt, S, U, VT)))
            goto done;
        /* V_r = VT^T (l x l, column-major), uploaded into R's buffer */
        for (int64_t j = 0; j < l; j++)
            for (int64_t i = 0; i < l; i++)
                U[i + j * l] = VT[j + i * l];
        if ((st = put_doubles(la, R, U, l * l)) ||
            (st = o->gemm(la, prec, 0, 0, 0, d, k, l, 1.0, Z, d, R, l, 0.0, V, d)))
            goto done;
        for (int64_t i = 0; i < k; i++)
            job->sv[i] = S[i];
        /* components (k x d row-major) = V (d x k column-major) */
        double *comp = fli_malloc(ctx, sizeof(double) * (size_t)(d * k), "components");
        if (!comp) {
            st = FL_STATUS_OUT_OF_MEMORY;
            goto done;
        }
        st = get_doubles(la, V, d * k, comp);
        if (!st)
            memcpy(job->components, comp, sizeof(double) * (size_t)(d * k));
        fli_free(ctx, comp);
        if (st)
            goto done;
    }
    if (proj_var) {
        /* TruncatedSVD's explained_variance_: var of (X V)'s columns = the
         * squared norms of Xc V's columns / n (the centred copy makes the
         * column means exactly the projections' means) */
        void *P = Y; /* n x l >= n x k: reuse */
        if ((st = o->gemm(la, prec, 0, 1, 0, n, k, d, 1.0, Xc, d, V, d, 0.0, P, n)) ||
            (st = o->gemm(la, prec, 0, 1, 0, k, k, n, 1.0 / (double)n, P, n, P, n, 0.0, R, l)) ||
            (st = o->diag(la, k, R, l, proj_var)))
            goto done;
    }
    job->n_out = k;
done:
    o->release(la, ownx);
    o->release(la, Xc);
    o->release(la, Y);
    o->release(la, Z);
    o->release(la, ones);
    o->release(la, R);
    o->release(la, V);
    fli_free(ctx, h);
    return st;
}
