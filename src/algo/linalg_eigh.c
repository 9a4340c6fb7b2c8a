/*
 * linalg_eigh.c — the symmetric eigendecomposition ("eigh") and its
 * variants, written once over fli_la (the CPU is an exact oracle of what
 * the GPU runs, step for step).
 *
 *   cusolver  la->ops->syevd (LAPACK on the CPU, cuSOLVER on the GPU).
 *   jacobi    la->ops->syevj (sweeping in double on both backends) to a
 *             relative off-diagonal norm of 2u, at most 100 sweeps;
 *             report->iterations = sweeps.
 *   qdwh      spectral divide and conquer (Nakatsukasa & Higham's QDWH-eig):
 *             shift by sigma = the median of the diagonal, U = polar factor
 *             of (A - sigma I) / ||A - sigma I||_F by QDWH (the matrix sign
 *             function, as A - sigma I is symmetric), P = (U + U^T)/4 + I/2
 *             the projector on the eigenvectors above sigma, of rank
 *             k1 = round(trace P). Orthonormal bases of range(P) and of its
 *             complement by one step of subspace iteration from a random
 *             start (P G and (I - P) G, CholeskyQR2), refined by a second
 *             step; then A1 = Q1^T A Q1 and A2 = Q2^T A Q2 are solved the
 *             same way down to DC_CUTOFF, where syevd takes over. When a
 *             split finds nothing to split (every eigenvalue on one side, or
 *             A = sigma I to rounding), that block goes to syevd.
 *             report->iterations = polar steps summed over the splits.
 *   qdwh_ns   the same divide and conquer with GEMM-only polar steps: Polar
 *             Express quintics (linalg_polar.c) in the data's precision,
 *             run until the tracked singular-value interval has converged
 *             from l_0 = u (eigenvalues within u ||A|| of sigma may stay
 *             unresolved: they move the split by no more than that).
 *   halko     randomized subspace iteration for the top k: G (n x (k + 10))
 *             from la->ops->randn with the context's seed, Y = A G, four
 *             power iterations orthonormalised by CholeskyQR2 (Householder
 *             QR when Y is numerically rank deficient), B = Q^T A Q, syevd
 *             of B, V = Q V_B, the k largest kept. n_components 0 means
 *             ceil(n / 10) (what the cost model assumes).
 * With n_components k > 0 the other variants compute all n pairs and return
 * the k largest, ascending.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/linalg_iter.h"
#include "core/internal.h"

/* Blocks of at most this size go to syevd in the divide and conquer. */
#define DC_CUTOFF 256
#define HALKO_OVERSAMPLE 10
#define HALKO_POWER_ITERS 4

typedef enum eigh_variant { EV_CUSOLVER = 0, EV_JACOBI, EV_QDWH, EV_QDWH_NS, EV_HALKO, EV_N } eigh_variant;
static const char *const eigh_names[EV_N] = {"cusolver", "jacobi", "qdwh", "qdwh_ns", "halko"};

static int eigh_parse(const char *s)
{
    if (!s || !strcmp(s, "auto"))
        return EV_CUSOLVER;
    if (!strncmp(s, "eigh_", 5))
        s += 5;
    for (int i = 0; i < EV_N; i++)
        if (!strcmp(s, eigh_names[i]))
            return i;
    return -1;
}

/* Q (m x n) <- an orthonormal basis of its range: CholeskyQR2, or
 * Householder QR when the columns are numerically dependent. */
static fl_status orth(fli_la *la, int64_t m, int64_t n, void *Q, int64_t ldq)
{
    if (n == 0)
        return FL_STATUS_OK;
    int passes = 0;
    fl_status st = fli_la_cholqr2(la, m, n, Q, ldq, NULL, n, &passes);
    if (st == FL_STATUS_NUMERICAL) {
        st = la->ops->qr(la, m, n, Q, ldq, NULL, 1);
        if (!st && la->err && la->err_len)
            la->err[0] = '\0'; /* recovered: no stale message on success */
    }
    return st;
}

/* ---- spectral divide and conquer ------------------------------------------------- */

typedef struct dc_state {
    fli_la *la;
    int ns;           /* Polar Express instead of QDWH */
    uint64_t seed;    /* the context's seed */
    uint64_t counter; /* one random start per split */
    int iters;        /* polar steps, summed */
    double nrm0;      /* ||A||_F of the whole problem */
} dc_state;

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* V (n x n) and w: the eigenpairs of A (n x n, full symmetric, ld n) by
 * syevd. */
static fl_status leaf(fli_la *la, int64_t n, const void *A, void *V, double *w)
{
    fl_status st = fli_la_copy(la, n, n, A, n, V, n);
    return st ? st : la->ops->syevd(la, n, V, n, w);
}

/* C (k x k) = sym(Q^T A Q), Q n x k; T (n x k) and R (k x k) scratch. */
static fl_status project(fli_la *la, int64_t n, int64_t k, const void *A, const void *Q, void *T, void *R,
                         void *C)
{
    const int v = fli_la_native(la);
    fl_status st = la->ops->gemm(la, v, 0, 0, 0, n, k, n, 1.0, A, n, Q, n, 0.0, T, n);
    if (!st)
        st = la->ops->gemm(la, v, 0, 1, 0, k, k, n, 1.0, Q, n, T, n, 0.0, R, k);
    if (!st)
        st = la->ops->geam(la, 0, 1, k, k, 0.5, R, k, 0.5, R, k, C, k);
    return st;
}

static fl_status dc_eig(dc_state *S, int64_t n, const void *A, void *V, double *w, int depth)
{
    fli_la *la = S->la;
    const fli_la_ops *op = la->ops;
    const double uu = fli_la_unit(la);
    const int v = fli_la_native(la);
    if (n <= DC_CUTOFF || depth >= 48)
        return leaf(la, n, A, V, w);
    void *X = NULL, *P = NULL, *Q = NULL, *T = NULL, *R = NULL, *A1 = NULL, *A2 = NULL, *V1 = NULL,
         *V2 = NULL;
    double *d = malloc(sizeof(double) * (size_t)n);
    fl_status st = d ? FL_STATUS_OK : fli_la_failf(la, FL_STATUS_OUT_OF_MEMORY, "eigh: out of host memory");
    double nrm = 0, alpha = 0, sigma = 0;
    int split = 0;
    int64_t k1 = 0, k2 = 0;
    /* the split point: the median of the diagonal */
    if (!st)
        st = op->diag(la, n, A, n, d);
    if (!st) {
        qsort(d, (size_t)n, sizeof *d, cmp_double);
        sigma = n % 2 ? d[n / 2] : 0.5 * (d[n / 2 - 1] + d[n / 2]);
        st = op->fro(la, n, n, A, n, &nrm);
    }
    if (!st)
        st = fli_la_mat(la, n, n, &X);
    if (!st)
        st = fli_la_copy(la, n, n, A, n, X, n);
    if (!st)
        st = op->shift_diag(la, n, X, n, -sigma);
    if (!st)
        st = op->fro(la, n, n, X, n, &alpha);
    /* a block within rounding of sigma I (relative to the whole problem:
     * the zero eigenvalues of a low-rank matrix) has nothing to split */
    if (!st && alpha > 100 * uu * fmax(nrm, S->nrm0)) {
        /* sign(A - sigma I) */
        int it = 0;
        st = op->geam(la, 0, 0, n, n, 1 / alpha, X, n, 0.0, NULL, n, X, n);
        if (!st && S->ns) {
            const fli_pe_opts o = {-1, uu, 1.0, 1, 200};
            st = fli_polar_pe(la, n, n, X, n, &o, &it, NULL);
        } else if (!st)
            st = fli_polar_qdwh(la, n, n, X, n, uu, 40, &it);
        S->iters += it;
        /* P = (U + U^T)/4 + I/2 and its rank */
        if (!st)
            st = fli_la_mat(la, n, n, &P);
        if (!st)
            st = op->geam(la, 0, 1, n, n, 0.25, X, n, 0.25, X, n, P, n);
        if (!st)
            st = op->shift_diag(la, n, P, n, 0.5);
        if (!st)
            st = op->diag(la, n, P, n, d);
        if (!st) {
            double tr = 0;
            for (int64_t i = 0; i < n; i++)
                tr += d[i];
            k1 = (int64_t)llround(tr);
            k2 = n - k1;
            split = k1 > 0 && k2 > 0;
        }
    }
    if (!st && !split) {
        st = leaf(la, n, A, V, w);
        goto done;
    }
    /* bases: Q = [Q2 Q1], Q1 = orth(P G1) (above sigma), Q2 = orth((I - P) G2);
     * X is free again and holds the random start, then the refined bases */
    if (!st)
        st = fli_la_mat(la, n, n, &Q);
    if (!st)
        st = op->randn(la, n, n, X, n, S->seed ^ fli_la_mix(0x5eed0000u + S->counter++));
    for (int pass = 0; !st && pass < 2; pass++) {
        void *src = pass ? Q : X, *dst = pass ? X : Q;
        st = op->gemm(la, v, 0, 0, 0, n, k1, n, 1.0, P, n, fli_la_at(la, src, 0, k2, n), n, 0.0,
                      fli_la_at(la, dst, 0, k2, n), n);
        if (!st)
            st = fli_la_copy(la, n, k2, src, n, dst, n);
        if (!st)
            st = op->gemm(la, v, 0, 0, 0, n, k2, n, -1.0, P, n, src, n, 1.0, dst, n);
        if (!st)
            st = orth(la, n, k1, fli_la_at(la, dst, 0, k2, n), n);
        if (!st)
            st = orth(la, n, k2, dst, n);
    }
    /* after two passes the bases are in X */
    op->release(la, P);
    P = NULL;
    if (!st)
        st = fli_la_mat(la, n, n, &T);
    if (!st)
        st = fli_la_mat(la, k1 > k2 ? k1 : k2, k1 > k2 ? k1 : k2, &R);
    if (!st)
        st = fli_la_mat(la, k1, k1, &A1);
    if (!st)
        st = fli_la_mat(la, k2, k2, &A2);
    if (!st)
        st = project(la, n, k2, A, X, T, R, A2);
    if (!st)
        st = project(la, n, k1, A, fli_la_at(la, X, 0, k2, n), T, R, A1);
    op->release(la, T);
    op->release(la, R);
    T = R = NULL;
    if (!st)
        st = fli_la_mat(la, k2, k2, &V2);
    if (!st)
        st = dc_eig(S, k2, A2, V2, w, depth + 1);
    op->release(la, A2);
    A2 = NULL;
    if (!st)
        st = fli_la_mat(la, k1, k1, &V1);
    if (!st)
        st = dc_eig(S, k1, A1, V1, w + k2, depth + 1);
    op->release(la, A1);
    A1 = NULL;
    if (!st)
        st = op->gemm(la, v, 0, 0, 0, n, k2, k2, 1.0, X, n, V2, k2, 0.0, V, n);
    if (!st)
        st = op->gemm(la, v, 0, 0, 0, n, k1, k1, 1.0, fli_la_at(la, X, 0, k2, n), n, V1, k1, 0.0,
                      fli_la_at(la, V, 0, k2, n), n);
done:
    op->release(la, X);
    op->release(la, P);
    op->release(la, Q);
    op->release(la, T);
    op->release(la, R);
    op->release(la, A1);
    op->release(la, A2);
    op->release(la, V1);
    op->release(la, V2);
    free(d);
    return st;
}

/* Sorts the pairs (w[j], column j of V, n x k) ascending when they are not
 * (the halves of a split are ordered up to the split's rounding). */
static fl_status sort_pairs(fli_la *la, int64_t n, int64_t k, void *V, double *w)
{
    int sorted = 1;
    for (int64_t j = 1; j < k; j++)
        sorted &= w[j - 1] <= w[j];
    if (sorted)
        return FL_STATUS_OK;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)k);
    double *ws = malloc(sizeof(double) * (size_t)k);
    void *T = NULL;
    fl_status st =
        idx && ws ? FL_STATUS_OK : fli_la_failf(la, FL_STATUS_OUT_OF_MEMORY, "eigh: out of host memory");
    if (!st) {
        /* insertion sort: nearly sorted input */
        for (int64_t j = 0; j < k; j++) {
            int64_t i = j;
            while (i > 0 && w[idx[i - 1]] > w[j]) {
                idx[i] = idx[i - 1];
                i--;
            }
            idx[i] = j;
        }
        st = fli_la_mat(la, n, k, &T);
    }
    for (int64_t j = 0; !st && j < k; j++) {
        ws[j] = w[idx[j]];
        st = fli_la_copy(la, n, 1, fli_la_at(la, V, 0, idx[j], n), n, fli_la_at(la, T, 0, j, n), n);
    }
    if (!st) {
        st = fli_la_copy(la, n, k, T, n, V, n);
        memcpy(w, ws, sizeof(double) * (size_t)k);
    }
    la->ops->release(la, T);
    free(idx);
    free(ws);
    return st;
}

/* ---- randomized subspace iteration ---------------------------------------------------- */

static fl_status halko(fli_la *la, int64_t n, const void *A, int64_t k, uint64_t seed, void *V, double *w,
                       int *iters)
{
    const fli_la_ops *op = la->ops;
    const int v = fli_la_native(la);
    const int64_t q = k + HALKO_OVERSAMPLE < n ? k + HALKO_OVERSAMPLE : n;
    void *Q = NULL, *Y = NULL, *B = NULL, *Bs = NULL;
    double *wb = malloc(sizeof(double) * (size_t)q);
    fl_status st = wb ? FL_STATUS_OK : fli_la_failf(la, FL_STATUS_OUT_OF_MEMORY, "eigh: out of host memory");
    if (!st)
        st = fli_la_mat(la, n, q, &Q);
    if (!st)
        st = fli_la_mat(la, n, q, &Y);
    if (!st)
        st = fli_la_mat(la, q, q, &B);
    if (!st)
        st = fli_la_mat(la, q, q, &Bs);
    if (!st)
        st = op->randn(la, n, q, Q, n, seed);
    int it = 0;
    for (; !st && it <= HALKO_POWER_ITERS; it++) {
        st = op->gemm(la, v, 0, 0, 0, n, q, n, 1.0, A, n, Q, n, 0.0, Y, n);
        if (!st)
            st = orth(la, n, q, Y, n);
        void *t = Q;
        Q = Y;
        Y = t;
    }
    /* B = Q^T A Q (Y = A Q as scratch), its eigenpairs, V = Q V_B (top k) */
    if (!st)
        st = project(la, n, q, A, Q, Y, B, Bs);
    if (!st)
        st = op->syevd(la, q, Bs, q, wb);
    if (!st)
        st = op->gemm(la, v, 0, 0, 0, n, k, q, 1.0, Q, n, fli_la_at(la, Bs, 0, q - k, q), q, 0.0, V, n);
    if (!st)
        memcpy(w, wb + (q - k), sizeof(double) * (size_t)k);
    op->release(la, Q);
    op->release(la, Y);
    op->release(la, B);
    op->release(la, Bs);
    free(wb);
    *iters = HALKO_POWER_ITERS;
    return st;
}

/* ---- fl_eigh ------------------------------------------------------------------------------ */

/* The symmetric matrix whose lower triangle A holds, column-major (ld n)
 * in fresh la scratch *out; NaN/Inf in the lower triangle is an error. */
static fl_status load_symmetric(fli_la *la, fl_ctx *ctx, const fl_array *A, void **out)
{
    const int64_t n = A->rows, ld = fli_ld(A);
    const size_t es = fli_la_esize(la), bytes = es * (size_t)n * (size_t)n;
    const int f64 = la->dt == FL_DTYPE_F64;
    void *h = fli_malloc(ctx, bytes, "eigh: host copy of A");
    if (!h)
        return FL_STATUS_OUT_OF_MEMORY;
    void *m = NULL;
    fl_status st = FL_STATUS_OK;
    const void *src = A->data; /* row-major: (i, j) at i * ld + j */
    int64_t ri = ld, rj = 1;
    if (A->mem != FL_MEM_HOST) {
        /* the column-major copy in la's memory, read back: (i, j) at i + j n */
        fl_array Ar = *A;
        Ar.ld = ld;
        st = fli_la_load(la, ctx, &Ar, &m);
        if (!st)
            st = la->ops->get(la, h, m, bytes);
        src = h;
        ri = 1;
        rj = n;
    }
    for (int64_t j = 0; !st && j < n; j++)
        for (int64_t i = j; i < n; i++) {
            const double x =
                f64 ? ((const double *)src)[i * ri + j * rj] : (double)((const float *)src)[i * ri + j * rj];
            if (!isfinite(x)) {
                st = fli_fail(ctx, FL_STATUS_INVALID_ARG,
                              "A[%lld, %lld] is %s: the lower triangle of A must be finite (no NaN or Inf)",
                              (long long)i, (long long)j, isnan(x) ? "NaN" : "Inf");
                break;
            }
            /* in the device case src == h: (i, j) i >= j is read before
             * (j, i) is written, and (j, i) is never read again */
            if (f64) {
                ((double *)h)[i + j * n] = x;
                ((double *)h)[j + i * n] = x;
            } else {
                ((float *)h)[i + j * n] = (float)x;
                ((float *)h)[j + i * n] = (float)x;
            }
        }
    if (!st && !m)
        st = la->ops->alloc(la, bytes, &m);
    if (!st)
        st = la->ops->put(la, m, h, bytes);
    fli_free(ctx, h);
    if (st) {
        la->ops->release(la, m);
        return st;
    }
    *out = m;
    return FL_STATUS_OK;
}

static fl_status check_out_array(fl_ctx *ctx, const fl_array *A, const fl_array *a, const char *what,
                                 int64_t r1, int64_t c1, int64_t r2, int64_t c2)
{
    fl_status st = fli_check_array(ctx, a, what);
    if (st)
        return st;
    if (a->dtype != A->dtype || !((a->rows == r1 && a->cols == c1) || (a->rows == r2 && a->cols == c2))) {
        if (r1 == r2 && c1 == c2)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s is %s %lld x %lld: expected %s %lld x %lld", what,
                            fl_dtype_name(a->dtype), (long long)a->rows, (long long)a->cols,
                            fl_dtype_name(A->dtype), (long long)r1, (long long)c1);
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "%s is %s %lld x %lld: expected %s %lld x %lld (or %lld x %lld)", what,
                        fl_dtype_name(a->dtype), (long long)a->rows, (long long)a->cols,
                        fl_dtype_name(A->dtype), (long long)r1, (long long)c1, (long long)r2, (long long)c2);
    }
    if (fli_array_device(a) != fli_array_device(A))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "%s is in another memory space than A: all arrays on the host or all on one GPU",
                        what);
    return FL_STATUS_OK;
}

fl_status fl_eigh(fl_ctx *ctx, const char *variant, const fl_array *A, int64_t n_components, fl_array *w,
                  fl_array *V, fl_linalg_report *report)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    const int ev = eigh_parse(variant);
    if (ev < 0)
        return fli_fail(
            ctx, FL_STATUS_INVALID_ARG,
            "eigh: unknown variant \"%s\": expected cusolver, jacobi, qdwh, qdwh_ns, halko or NULL", variant);
    fl_status st = fli_check_array(ctx, A, "A");
    if (st)
        return st;
    if (A->dtype != FL_DTYPE_F32 && A->dtype != FL_DTYPE_F64)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "A has dtype %s: expected f32 or f64",
                        fl_dtype_name(A->dtype));
    if (A->rows != A->cols || A->rows < 1)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "eigh: A is %lld x %lld: expected a square n x n matrix, n >= 1", (long long)A->rows,
                        (long long)A->cols);
    const int64_t n = A->rows;
    if (n_components < 0 || n_components > n)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "eigh: n_components=%lld: must be in [0, n=%lld] (0 = all; halko: ceil(n / 10))",
                        (long long)n_components, (long long)n);
    const int64_t k = n_components ? n_components : ev == EV_HALKO ? (n + 9) / 10 : n;
    if (!w)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "eigh: w is NULL: expected a 1 x %lld array",
                        (long long)k);
    if ((st = check_out_array(ctx, A, w, "w", 1, k, k, 1)) ||
        (V && (st = check_out_array(ctx, A, V, "V", n, k, n, k))))
        return st;

    fli_la la;
    fl_backend backend;
    if ((st = fli_la_open(ctx, A->dtype, fli_array_device(A), &la, &backend)))
        return st;
    const int prev_threads = omp_get_max_threads();
    omp_set_num_threads(ctx->threads > 0 ? ctx->threads : prev_threads);
    const fli_la_ops *op = la.ops;
    const double uu = fli_la_unit(&la);
    void *S = NULL, *Vm = NULL, *wm = NULL;
    double *wall = malloc(sizeof(double) * (size_t)n);
    int iters = 0;
    double tol = 0;
    const int64_t kcols = ev == EV_HALKO ? k : n; /* columns the variant computes */
    if (!wall)
        st = fli_fail(ctx, FL_STATUS_OUT_OF_MEMORY, "eigh: out of host memory (%lld eigenvalues)",
                      (long long)n);
    if (!st)
        st = load_symmetric(&la, ctx, A, &S);
    if (!st)
        st = fli_la_mat(&la, n, kcols, &Vm);
    if (!st) {
        switch (ev) {
        case EV_CUSOLVER: st = leaf(&la, n, S, Vm, wall); break;
        case EV_JACOBI:
            tol = 2 * uu;
            st = fli_la_copy(&la, n, n, S, n, Vm, n);
            if (!st)
                st = op->syevj(&la, n, Vm, n, tol, 100, wall, &iters);
            break;
        case EV_QDWH:
        case EV_QDWH_NS: {
            dc_state ds = {&la, ev == EV_QDWH_NS, ctx->seed, 0, 0, 0};
            tol = ev == EV_QDWH ? cbrt(5 * uu) : 64 * uu;
            st = op->fro(&la, n, n, S, n, &ds.nrm0);
            if (!st)
                st = dc_eig(&ds, n, S, Vm, wall, 0);
            if (!st)
                st = sort_pairs(&la, n, n, Vm, wall);
            iters = ds.iters;
            break;
        }
        case EV_HALKO: st = halko(&la, n, S, k, ctx->seed, Vm, wall, &iters); break;
        default: st = fli_fail(ctx, FL_STATUS_INTERNAL, "eigh: variant %d", ev);
        }
    }
    /* outputs: the k largest, ascending */
    const int64_t off = kcols - k;
    if (!st && V) {
        fl_array Vr = *V;
        Vr.ld = fli_ld(V);
        st = fli_la_store(&la, ctx, fli_la_at(&la, Vm, 0, off, n), &Vr);
    }
    if (!st) {
        const size_t es = fli_la_esize(&la);
        void *h = fli_malloc(ctx, es * (size_t)k, "eigh: eigenvalues");
        st = h ? FL_STATUS_OK : FL_STATUS_OUT_OF_MEMORY;
        for (int64_t j = 0; !st && j < k; j++) {
            if (es == 8)
                ((double *)h)[j] = wall[off + j];
            else
                ((float *)h)[j] = (float)wall[off + j];
        }
        if (!st)
            st = op->alloc(&la, es * (size_t)k, &wm);
        if (!st)
            st = op->put(&la, wm, h, es * (size_t)k);
        fli_free(ctx, h);
        fl_array wr = *w;
        wr.ld = fli_ld(w);
        if (!st)
            st = fli_la_store(&la, ctx, wm, &wr);
    }
    op->release(&la, S);
    op->release(&la, Vm);
    op->release(&la, wm);
    free(wall);
    omp_set_num_threads(prev_threads);
    if (!st && report) {
        memset(report, 0, sizeof *report);
        snprintf(report->variant, sizeof report->variant, "%s", eigh_names[ev]);
        report->backend = backend;
        report->iterations = iters;
        report->expected_residual = tol;
    }
    return st;
}
