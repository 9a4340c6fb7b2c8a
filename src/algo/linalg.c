/*
 * linalg.c — the linear-algebra entry points that are not eigensolvers:
 * fl_gemm (the precision ladder, with the cost model's tolerance rule),
 * fl_cov_gemm, fl_gram_gemm, fl_cholqr2, fl_split_basis; and what every
 * linear-algebra entry point shares: choosing the fli_la of a context,
 * moving public row-major arrays in and out of it, CholeskyQR2.
 *
 * Public arrays are row-major; fli_la works column-major. A row-major
 * m x n buffer read column-major is the n x m transpose, so a product is
 * handed over with its operands swapped (C^T = op(B)^T op(A)^T) and no copy.
 */
#include <ctype.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "algo/linalg.h"
#include "algo/linalg_ozaki.h"
#include "backends/cuda/fl_cuda_module.h"
#include "core/internal.h"
#include "flashlib_info.h"

const char *const fli_gemm_variant_names[FLI_GEMM_NVARIANTS] = {
    "fp64", "fp32",   "tf32",   "3xtf32",       "bf16",   "3xbf16",
    "fp16", "3xfp16", "fp16x9", "fp16x3_kahan", "tf32x6", "ozaki_int8"};

int fli_gemm_variant_parse(const char *s)
{
    if (!s)
        return -1;
    if (!strncasecmp(s, "gemm_", 5))
        s += 5;
    for (int i = 0; i < FLI_GEMM_NVARIANTS; i++)
        if (!strcasecmp(s, fli_gemm_variant_names[i]))
            return i;
    return -1;
}

/* ---- choosing the backend and moving arrays ------------------------------------ */

fl_status fli_la_open(fl_ctx *ctx, fl_dtype dt, int32_t data_dev, fli_la *la, fl_backend *backend)
{
    fl_hw_props hw;
    int gpu = 0;
    fl_status st = fli_ctx_gpu(ctx, &hw, &gpu);
    if (st)
        return st;
    if (!gpu) {
        if (data_dev >= 0)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                            "the data is on GPU %d but the context computes on the CPU: use a context on "
                            "device \"cuda\" or pass host arrays",
                            (int)data_dev);
        fli_la_cpu_init(la, ctx, dt);
        if (backend)
            *backend = FL_BACKEND_CPU;
        return FL_STATUS_OK;
    }
    const struct fli_cuda_api *api;
    struct fli_cuda_env *env;
    st = fli_cuda_acquire(ctx, &api, &env);
    if (st)
        return st;
    if (data_dev >= 0 && data_dev != env->device_id)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "the data is on GPU %d but the context computes on GPU %d", (int)data_dev,
                        (int)env->device_id);
    if (!api->la_open)
        return fli_fail(ctx, FL_STATUS_UNSUPPORTED, "this CUDA module has no linear-algebra operations");
    memset(la, 0, sizeof *la);
    la->err = ctx->err;
    la->err_len = sizeof ctx->err;
    st = api->la_open(env, dt, la);
    if (st)
        return st;
    la->err = ctx->err;
    la->err_len = sizeof ctx->err;
    if (backend)
        *backend = FL_BACKEND_CUDA;
    return FL_STATUS_OK;
}

/* Bytes a row-major descriptor spans: (rows - 1) ld + cols elements. */
static size_t span_bytes(const fl_array *a)
{
    if (a->rows == 0 || a->cols == 0)
        return 0;
    return ((size_t)(a->rows - 1) * (size_t)a->ld + (size_t)a->cols) * fl_dtype_size(a->dtype);
}

fl_status fli_la_borrow(fli_la *la, const fl_array *a, const void **p, void **owned)
{
    *owned = NULL;
    if (fli_array_device(a) == la->device_id) {
        *p = a->data;
        return FL_STATUS_OK;
    }
    const size_t b = span_bytes(a);
    fl_status st = la->ops->alloc(la, b, owned);
    if (!st)
        st = la->ops->put(la, *owned, a->data, b);
    if (st) {
        la->ops->release(la, *owned);
        *owned = NULL;
        return st;
    }
    *p = *owned;
    return FL_STATUS_OK;
}

fl_status fli_la_load(fli_la *la, fl_ctx *ctx, const fl_array *a, void **out)
{
    (void)ctx;
    const void *src;
    void *owned, *m = NULL;
    fl_status st = fli_la_borrow(la, a, &src, &owned);
    if (st)
        return st;
    st = la->ops->alloc(la, fli_la_esize(la) * (size_t)(a->rows * a->cols), &m);
    /* the buffer read column-major is a^T (cols x rows, ld): transpose it */
    if (!st && a->rows && a->cols)
        st = la->ops->geam(la, 1, 0, a->rows, a->cols, 1.0, src, a->ld, 0.0, NULL, 1, m, a->rows);
    la->ops->release(la, owned);
    if (st) {
        la->ops->release(la, m);
        return st;
    }
    *out = m;
    return FL_STATUS_OK;
}

fl_status fli_la_store(fli_la *la, fl_ctx *ctx, const void *m, fl_array *a)
{
    (void)ctx;
    if (!a->rows || !a->cols)
        return FL_STATUS_OK;
    if (fli_array_device(a) == la->device_id)
        return la->ops->geam(la, 1, 0, a->cols, a->rows, 1.0, m, a->rows, 0.0, NULL, 1, a->data, a->ld);
    /* host array, device la: transpose on the device, then one copy per
     * row when the host array has padding */
    void *t = NULL;
    const size_t es = fli_la_esize(la);
    fl_status st = la->ops->alloc(la, es * (size_t)(a->rows * a->cols), &t);
    if (!st)
        st = la->ops->geam(la, 1, 0, a->cols, a->rows, 1.0, m, a->rows, 0.0, NULL, 1, t, a->cols);
    if (!st && a->ld == a->cols)
        st = la->ops->get(la, a->data, t, es * (size_t)(a->rows * a->cols));
    for (int64_t i = 0; !st && a->ld != a->cols && i < a->rows; i++)
        st = la->ops->get(la, (char *)a->data + (size_t)(i * a->ld) * es,
                          (char *)t + (size_t)(i * a->cols) * es, es * (size_t)a->cols);
    la->ops->release(la, t);
    return st;
}

/* Writes the la-memory buffer `src` (a's layout: rows x cols, a->ld) into
 * a, whichever memory a lives in. */
static fl_status copy_out_raw(fli_la *la, const void *src, fl_array *a)
{
    if (fli_array_device(a) == la->device_id)
        return la->ops->geam(la, 0, 0, a->cols, a->rows, 1.0, src, a->ld, 0.0, NULL, 1, a->data, a->ld);
    return la->ops->get(la, a->data, src, span_bytes(a));
}

/* ---- threads of the CPU backend ------------------------------------------------- */

/* BLAS and LAPACK size their teams from the calling thread's OpenMP
 * setting: the context's thread count for the call, restored after. */
typedef struct omp_guard {
    int prev;
} omp_guard;
static omp_guard threads_enter(fl_ctx *ctx)
{
    omp_guard g = {omp_get_max_threads()};
    omp_set_num_threads(ctx->threads > 0 ? ctx->threads : g.prev);
    return g;
}
static void threads_leave(omp_guard g)
{
    omp_set_num_threads(g.prev);
}

/* ---- checks shared by the entry points ------------------------------------------ */

static fl_status check_matrix(fl_ctx *ctx, const fl_array *a, const char *what, int out)
{
    if (!a)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s is NULL", what);
    if (a->dtype != FL_DTYPE_F32 && a->dtype != FL_DTYPE_F64)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s: dtype %s, expected f32 or f64", what,
                        fl_dtype_name(a->dtype));
    if (a->rows < 0 || a->cols < 0 || (a->rows > 0 && a->ld < a->cols) || (a->rows * a->cols > 0 && !a->data))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s: invalid descriptor (%lld x %lld, ld %lld)", what,
                        (long long)a->rows, (long long)a->cols, (long long)a->ld);
    if (!out && fli_array_device(a) < 0 && a->rows * a->cols > 0)
        return fli_check_finite(ctx, a, what);
    return FL_STATUS_OK;
}

/* All arrays in one memory space and of one dtype. */
static fl_status check_same(fl_ctx *ctx, const fl_array *ref, const fl_array *a, const char *what)
{
    if (!a)
        return FL_STATUS_OK;
    if (a->dtype != ref->dtype)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s has dtype %s, expected %s like the input", what,
                        fl_dtype_name(a->dtype), fl_dtype_name(ref->dtype));
    if (fli_array_device(a) != fli_array_device(ref))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "%s is in another memory space than the input (all host or all on one GPU)", what);
    return FL_STATUS_OK;
}

static fl_status check_shape(fl_ctx *ctx, const fl_array *a, int64_t rows, int64_t cols, const char *what)
{
    if (a->rows != rows || a->cols != cols)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s is %lld x %lld, expected %lld x %lld", what,
                        (long long)a->rows, (long long)a->cols, (long long)rows, (long long)cols);
    return FL_STATUS_OK;
}

static void report_fill(fl_linalg_report *r, const char *variant, fl_backend b, int iters, double res)
{
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    snprintf(r->variant, sizeof r->variant, "%s", variant);
    r->backend = b;
    r->iterations = iters;
    r->expected_residual = res;
}

/* ---- GEMM ------------------------------------------------------------------------ */

/* The cost model's view of a GEMM on this context's device: the variant
 * the tolerance rule picks (*variant; -1 when none is accurate enough)
 * and the expected residual of `given` (when >= 0). */
static fl_status cost_model(fl_ctx *ctx, fl_backend b, int64_t M, int64_t K, int64_t N, fl_dtype dt,
                            double tol, int given, int moduli, int *variant, double *residual)
{
    const int64_t shape[3] = {M, K, N};
    char params[96], err[256];
    if (given >= 0)
        snprintf(params, sizeof params, "variant=gemm_%s num_moduli=%d", fli_gemm_variant_names[given],
                 moduli);
    else
        snprintf(params, sizeof params, "tol=%.17g num_moduli=%d", tol, moduli);
    fl_hw_props hw;
    const char *devs[3] = {"cpu", NULL, NULL};
    if (b != FL_BACKEND_CPU && fli_ctx_hw(ctx, &hw)) {
        devs[0] = hw.name;
        devs[1] = hw.tag;
    }
    fl_info_result r;
    int rc = -1;
    for (int i = 0; i < 3 && devs[i] && rc; i++)
        rc = fl_info_estimate("gemm", shape, 3, params, dt == FL_DTYPE_F64 ? "f64" : "f32", devs[i], &r, err,
                              sizeof err);
    if (rc)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "gemm: the cost model cannot rank the variants here (%s): "
                        "name a variant",
                        err);
    if (variant)
        *variant = fli_gemm_variant_parse(r.variant);
    if (residual)
        *residual = r.expected_residual;
    return FL_STATUS_OK;
}

fl_status fl_gemm(fl_ctx *ctx, const char *variant, double tol, int moduli, int trans_a, int trans_b,
                  double alpha, const fl_array *A, const fl_array *B, double beta, fl_array *C,
                  fl_linalg_report *report)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    fl_status st;
    if ((st = check_matrix(ctx, A, "A", 0)) || (st = check_matrix(ctx, B, "B", 0)) ||
        (st = check_matrix(ctx, C, "C", 1)) || (st = check_same(ctx, A, B, "B")) ||
        (st = check_same(ctx, A, C, "C")))
        return st;
    if (!isfinite(alpha) || !isfinite(beta))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "gemm: alpha=%g, beta=%g: must be finite", alpha, beta);
    if (!isfinite(tol))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "gemm: tol=%g: must be finite (<= 0 for no tolerance)",
                        tol);
    if (moduli == 0)
        moduli = FLI_OZAKI_DEFAULT_MODULI;
    if (moduli < FLI_OZAKI_MIN_MODULI || moduli > FLI_OZAKI_MAX_MODULI)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "gemm: moduli=%d, expected %d..%d (0 = %d)", moduli,
                        FLI_OZAKI_MIN_MODULI, FLI_OZAKI_MAX_MODULI, FLI_OZAKI_DEFAULT_MODULI);
    const int64_t m = trans_a ? A->cols : A->rows, k = trans_a ? A->rows : A->cols;
    const int64_t kb = trans_b ? B->cols : B->rows, n = trans_b ? B->rows : B->cols;
    if (k != kb)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "gemm: op(A) is %lld x %lld and op(B) is %lld x %lld: inner dimensions differ",
                        (long long)m, (long long)k, (long long)kb, (long long)n);
    if ((st = check_shape(ctx, C, m, n, "C")))
        return st;
    int v = -1;
    const int autov = !variant || !strcasecmp(variant, "auto");
    if (!autov && (v = fli_gemm_variant_parse(variant)) < 0)
        return fli_fail(
            ctx, FL_STATUS_INVALID_ARG,
            "gemm: unknown variant '%s' (expected auto, fp64, fp32, tf32, 3xtf32, bf16, 3xbf16, fp16, "
            "3xfp16, fp16x9, fp16x3_kahan, tf32x6 or ozaki_int8)",
            variant);
    if (!autov && tol > 0)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "gemm: give a variant or a tol, not both (variant '%s', tol=%g)", variant, tol);
    fli_la la;
    fl_backend b;
    if ((st = fli_la_open(ctx, A->dtype, fli_array_device(A), &la, &b)))
        return st;
    double res = 0;
    if (autov && tol > 0) {
        if ((st = cost_model(ctx, b, m, k, n, A->dtype, tol, -1, moduli, &v, NULL)))
            return st;
        if (v < 0)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG, "gemm: no variant reaches tol=%g at K=%lld", tol,
                            (long long)k);
    } else if (autov) {
        v = A->dtype == FL_DTYPE_F64 ? FLI_GEMM_FP64 : FLI_GEMM_FP32;
    }
    if (report &&
        cost_model(ctx, b, m > 0 ? m : 1, k > 0 ? k : 1, n > 0 ? n : 1, A->dtype, 0, v, moduli, NULL, &res))
        fli_clear_error(ctx); /* no model for this device: the report says 0 */
    if (v == FLI_GEMM_OZAKI_INT8 && k > 0 && fli_ozaki_bits(k, moduli) < 2)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "gemm ozaki_int8: %d moduli leave no bits for K=%lld",
                        moduli, (long long)k);
    const omp_guard g = threads_enter(ctx);
    const void *pa, *pb;
    void *oa = NULL, *ob = NULL, *oc = NULL, *pc = C->data;
    if (!(st = fli_la_borrow(&la, A, &pa, &oa)) && !(st = fli_la_borrow(&la, B, &pb, &ob))) {
        if (fli_array_device(C) != la.device_id) {
            /* host C, GPU context: C's buffer on the device (read when beta != 0) */
            st = la.ops->alloc(&la, span_bytes(C) + 8, &oc);
            /* the copy back covers C's whole span: its padding between rows
             * must come back as it went (and C itself when beta != 0) */
            if (!st && (beta != 0 || C->ld != C->cols))
                st = la.ops->put(&la, oc, C->data, span_bytes(C));
            pc = oc;
        }
        /* C^T (n x m) = op(B)^T op(A)^T in column-major terms */
        if (!st && m > 0 && n > 0)
            st = la.ops->gemm(&la, v, moduli, trans_b, trans_a, n, m, k, alpha, pb, B->ld, pa, A->ld, beta,
                              pc, C->ld);
        if (!st && oc)
            st = copy_out_raw(&la, oc, C);
    }
    la.ops->release(&la, oa);
    la.ops->release(&la, ob);
    la.ops->release(&la, oc);
    threads_leave(g);
    if (st)
        return st;
    report_fill(report, fli_gemm_variant_names[v], b, 0, res);
    return FL_STATUS_OK;
}

/* ---- covariance and Gram products ------------------------------------------------ */

fl_status fl_cov_gemm(fl_ctx *ctx, const char *variant, const fl_array *X, int center, fl_array *C,
                      fl_array *mean, fl_linalg_report *report)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    fl_status st;
    if ((st = check_matrix(ctx, X, "X", 0)) || (st = check_matrix(ctx, C, "C", 1)) ||
        (st = check_same(ctx, X, C, "C")) ||
        (mean && ((st = check_matrix(ctx, mean, "mean", 1)) || (st = check_same(ctx, X, mean, "mean")))))
        return st;
    const int64_t n = X->rows, d = X->cols;
    if (n < 1 || d < 1)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "cov_gemm: X is %lld x %lld, expected at least 1 x 1",
                        (long long)n, (long long)d);
    if ((st = check_shape(ctx, C, d, d, "C")) || (mean && (st = check_shape(ctx, mean, 1, d, "mean"))))
        return st;
    int v = FLI_GEMM_NVARIANTS;
    if (variant && strcasecmp(variant, "auto") && (v = fli_gemm_variant_parse(variant)) < 0)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "cov_gemm: unknown variant '%s'", variant);
    if (v == FLI_GEMM_NVARIANTS)
        v = X->dtype == FL_DTYPE_F64 ? FLI_GEMM_FP64 : FLI_GEMM_FP32;
    fli_la la;
    fl_backend b;
    if ((st = fli_la_open(ctx, X->dtype, fli_array_device(X), &la, &b)))
        return st;
    const omp_guard g = threads_enter(ctx);
    const size_t es = fli_la_esize(&la);
    const void *px;
    void *ox = NULL, *ones = NULL, *mu = NULL, *S = NULL;
    /* shifted sums: with s = the first row, X^T X - n m m^T computed as
     * (X - 1 s^T)^T (X - 1 s^T) - n (m - s)(m - s)^T, whose terms are small
     * when the data sit far from the origin (no cancellation of big sums) */
    st = fli_la_borrow(&la, X, &px, &ox);
    if (!st)
        st = la.ops->alloc(&la, es * (size_t)(d * d), &S);
    if (!st)
        st = la.ops->alloc(&la, es * (size_t)(n > d ? n : d) + es * (size_t)d * 2, &ones);
    void *Xs = NULL;
    if (!st && center) {
        /* the shifted copy costs one pass and n x d scratch; the product
         * dominates */
        st = la.ops->alloc(&la, es * (size_t)(n * d), &Xs);
        if (!st)
            st = la.ops->fill(&la, n, 1, ones, n, 1.0, 1.0);
        /* Xs (d x n column-major, i.e. X row-major) = X - s 1^T, s = X's first row */
        if (!st)
            st = la.ops->geam(&la, 0, 0, d, n, 1.0, px, X->ld, 0.0, NULL, 1, Xs, d);
        if (!st) {
            void *s = (char *)ones + es * (size_t)(n > d ? n : d);
            st = la.ops->geam(&la, 0, 0, d, 1, 1.0, px, X->ld, 0.0, NULL, 1, s, d);
            /* Xs -= s 1^T via a rank-1 GEMM in the data's precision */
            if (!st)
                st = la.ops->gemm(&la, X->dtype == FL_DTYPE_F64 ? FLI_GEMM_FP64 : FLI_GEMM_FP32, 0, 0, 1, d,
                                  n, 1, -1.0, s, d, ones, n, 1.0, Xs, d);
            /* mu_s = Xs 1 / n (d x 1) */
            mu = (char *)s + es * (size_t)d;
            if (!st)
                st = la.ops->gemm(&la, X->dtype == FL_DTYPE_F64 ? FLI_GEMM_FP64 : FLI_GEMM_FP32, 0, 0, 0, d,
                                  1, n, 1.0 / (double)n, Xs, d, ones, n, 0.0, mu, d);
            /* S = Xs Xs^T (d x d) - n mu_s mu_s^T */
            if (!st)
                st = la.ops->gemm(&la, v, FLI_OZAKI_DEFAULT_MODULI, 0, 1, d, d, n, 1.0, Xs, d, Xs, d, 0.0, S,
                                  d);
            if (!st)
                st = la.ops->gemm(&la, X->dtype == FL_DTYPE_F64 ? FLI_GEMM_FP64 : FLI_GEMM_FP32, 0, 0, 1, d,
                                  d, 1, -(double)n, mu, d, mu, d, 1.0, S, d);
            /* mean = s + mu_s */
            if (!st && mean)
                st = la.ops->geam(&la, 0, 0, d, 1, 1.0, s, d, 1.0, mu, d, mu, d);
        }
    } else if (!st) {
        st = la.ops->gemm(&la, v, FLI_OZAKI_DEFAULT_MODULI, 0, 1, d, d, n, 1.0, px, X->ld, px, X->ld, 0.0, S,
                          d);
        if (!st && mean) { /* the column means all the same */
            mu = (char *)ones + es * (size_t)(n > d ? n : d);
            st = la.ops->fill(&la, n, 1, ones, n, 1.0, 1.0);
            if (!st)
                st = la.ops->gemm(&la, X->dtype == FL_DTYPE_F64 ? FLI_GEMM_FP64 : FLI_GEMM_FP32, 0, 0, 0, d,
                                  1, n, 1.0 / (double)n, px, X->ld, ones, n, 0.0, mu, d);
        }
    }
    /* S is symmetric: its column-major form is the row-major C */
    if (!st)
        st = C->ld == d ? copy_out_raw(&la, S, C) : fli_la_store(&la, ctx, S, C);
    if (!st && mean) {
        fl_array mv = *mean;
        mv.ld = d;
        st = copy_out_raw(&la, mu, &mv);
    }
    la.ops->release(&la, ox);
    la.ops->release(&la, S);
    la.ops->release(&la, ones);
    la.ops->release(&la, Xs);
    threads_leave(g);
    if (st)
        return st;
    report_fill(report, fli_gemm_variant_names[v], b, 0, 0);
    return FL_STATUS_OK;
}

fl_status fl_gram_gemm(fl_ctx *ctx, const char *variant, const fl_array *X, fl_array *G,
                       fl_linalg_report *report)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    fl_status st;
    if ((st = check_matrix(ctx, X, "X", 0)) || (st = check_matrix(ctx, G, "G", 1)) ||
        (st = check_same(ctx, X, G, "G")) || (st = check_shape(ctx, G, X->rows, X->rows, "G")))
        return st;
    /* G = X X^T is fl_gemm with B = X, transposed */
    return fl_gemm(ctx, variant, 0, 0, 0, 1, 1.0, X, X, 0.0, G, report);
}

/* ---- CholeskyQR2 ----------------------------------------------------------------- */

/* One Cholesky QR pass on A (m x n): G = A^T A + shift I = L L^T, A <- A L^-T.
 * L (n x n, lower; the strict upper triangle holds G's) is left in G.
 * *broke = 1 (A untouched) when G is not numerically positive definite:
 * the Cholesky fails, or, with check_pivots, succeeds with pivots spread
 * by more than u^-1/2 (their ratio bounds cond(A) from below, and
 * CholeskyQR2 needs cond(A) below about u^-1/2: beyond, a Cholesky that
 * happens to succeed, as cuBLAS's more accurate Gram matrix lets it where
 * OpenBLAS's fails, gives a Q the second pass cannot repair). */
static fl_status chol_pass(fli_la *la, int64_t m, int64_t n, void *A, int64_t lda, void *G, double shift,
                           int check_pivots, int *broke)
{
    const int v = la->dt == FL_DTYPE_F64 ? FLI_GEMM_FP64 : FLI_GEMM_FP32;
    fl_status st = la->ops->gemm(la, v, 0, 1, 0, n, n, m, 1.0, A, lda, A, lda, 0.0, G, n);
    if (!st && shift > 0)
        st = la->ops->shift_diag(la, n, G, n, shift);
    int info = 0;
    if (!st)
        st = la->ops->potrf(la, n, G, n, &info);
    *broke = info != 0;
    if (!st && !info && check_pivots) {
        double *dg = malloc(sizeof(double) * (size_t)n);
        st = dg ? la->ops->diag(la, n, G, n, dg) : FL_STATUS_OUT_OF_MEMORY;
        double lo = INFINITY, hi = 0;
        for (int64_t i = 0; !st && i < n; i++) {
            lo = fabs(dg[i]) < lo ? fabs(dg[i]) : lo;
            hi = fabs(dg[i]) > hi ? fabs(dg[i]) : hi;
        }
        const double u = la->dt == FL_DTYPE_F64 ? 0x1p-53 : 0x1p-24;
        *broke = !st && !(lo > sqrt(u) * hi);
        free(dg);
    }
    if (!st && !*broke)
        st = la->ops->trsm(la, 1, m, n, G, n, A, lda);
    return st;
}

/* R <- L^T R on the host (n x n column-major, R upper, L in the lower
 * triangle of Lm): accumulates the passes' factors, R = L_k^T ... L_1^T.
 * Top-down in place: entry (i, j) reads R(q, j) for q >= i only. */
static void host_lt_times(const double *Lm, int64_t n, double *R)
{
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i <= j; i++) {
            double s = 0;
            for (int64_t q = i; q <= j; q++)
                s += Lm[q + i * n] * R[q + j * n];
            R[i + j * n] = s;
        }
}

/* Lm (host doubles) <- the n x n factor G in la's memory. */
static fl_status host_factor(fli_la *la, fl_ctx *ctx, const void *G, int64_t n, double *Lm, void *stage)
{
    const size_t es = fli_la_esize(la);
    fl_status st = la->ops->get(la, stage, G, es * (size_t)(n * n));
    (void)ctx;
    for (int64_t i = 0; !st && i < n * n; i++)
        Lm[i] = es == 8 ? ((double *)stage)[i] : (double)((float *)stage)[i];
    return st;
}

fl_status fli_la_cholqr2(fli_la *la, int64_t m, int64_t n, void *A, int64_t lda, void *R, int64_t ldr,
                         int *passes)
{
    const size_t es = fli_la_esize(la);
    void *G = NULL;
    double *Lm = NULL, *Rh = NULL;
    void *stage = NULL;
    int np = 0, target = 2, broke = 0;
    fl_status st = la->ops->alloc(la, es * (size_t)(n * n), &G);
    if (!st && R) {
        Lm = malloc(sizeof(double) * (size_t)(n * n) * 2 + es * (size_t)(n * n));
        if (!Lm)
            st = FL_STATUS_OUT_OF_MEMORY;
        else {
            Rh = Lm + n * n;
            stage = Rh + n * n;
            for (int64_t i = 0; i < n * n; i++)
                Rh[i] = (i % (n + 1)) == 0;
        }
    }
    while (!st && np < target) {
        st = chol_pass(la, m, n, A, lda, G, 0, np == 0, &broke);
        if (!st && broke && np == 0) {
            /* G is not numerically positive definite: a shifted pass first
             * (A is untouched when the Cholesky breaks), then two plain
             * ones (shifted CholeskyQR3) */
            double fro = 0;
            st = la->ops->fro(la, m, n, A, lda, &fro);
            const double u = la->dt == FL_DTYPE_F64 ? 0x1p-53 : 0x1p-24;
            const double shift = 11.0 * ((double)m * (double)n + (double)n * (double)(n + 1)) * u * fro * fro;
            if (!st)
                st = chol_pass(la, m, n, A, lda, G, shift, 0, &broke);
            target = 3;
        }
        if (!st && broke && np > 0 && target < 4) {
            /* a later pass broke down (the first left Q too ill-conditioned
             * although its pivots looked fine): one shifted pass on Q, then
             * a plain one */
            double fro = 0;
            st = la->ops->fro(la, m, n, A, lda, &fro);
            const double u = la->dt == FL_DTYPE_F64 ? 0x1p-53 : 0x1p-24;
            const double shift = 11.0 * ((double)m * (double)n + (double)n * (double)(n + 1)) * u * fro * fro;
            if (!st)
                st = chol_pass(la, m, n, A, lda, G, shift, 0, &broke);
            target++;
        }
        if (!st && broke)
            st = FL_STATUS_NUMERICAL;
        if (!st) {
            np++;
            if (Lm && !(st = host_factor(la, NULL, G, n, Lm, stage)))
                host_lt_times(Lm, n, Rh);
        }
    }
    if (st == FL_STATUS_NUMERICAL)
        snprintf(la->err, la->err_len,
                 "cholqr2: the %lld x %lld matrix has no usable Gram matrix (not positive definite even "
                 "shifted: all zero, or overflowing)",
                 (long long)m, (long long)n);
    if (!st && R) {
        for (int64_t j = 0; j < n * n; j++) {
            if (es == 8)
                ((double *)stage)[j] = Rh[j];
            else
                ((float *)stage)[j] = (float)Rh[j];
        }
        for (int64_t j = 0; !st && j < n; j++) /* R's leading dimension may exceed n */
            st = la->ops->put(la, (char *)R + (size_t)(j * ldr) * es, (char *)stage + (size_t)(j * n) * es,
                              es * (size_t)n);
    }
    if (passes)
        *passes = np;
    la->ops->release(la, G);
    free(Lm);
    return st;
}

fl_status fl_cholqr2(fl_ctx *ctx, const fl_array *X, fl_array *Q, fl_array *R, fl_linalg_report *report)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    fl_status st;
    if ((st = check_matrix(ctx, X, "X", 0)) || (st = check_matrix(ctx, Q, "Q", 1)) ||
        (st = check_same(ctx, X, Q, "Q")) ||
        (R && ((st = check_matrix(ctx, R, "R", 1)) || (st = check_same(ctx, X, R, "R")))))
        return st;
    const int64_t m = X->rows, n = X->cols;
    if (n < 1 || m < n)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "cholqr2: X is %lld x %lld, expected m >= n >= 1 (tall)",
                        (long long)m, (long long)n);
    if ((st = check_shape(ctx, Q, m, n, "Q")) || (R && (st = check_shape(ctx, R, n, n, "R"))))
        return st;
    fli_la la;
    fl_backend b;
    if ((st = fli_la_open(ctx, X->dtype, fli_array_device(X), &la, &b)))
        return st;
    const omp_guard g = threads_enter(ctx);
    void *A = NULL, *Rm = NULL;
    int passes = 0;
    st = fli_la_load(&la, ctx, X, &A);
    if (!st && R)
        st = la.ops->alloc(&la, fli_la_esize(&la) * (size_t)(n * n), &Rm);
    if (!st)
        st = fli_la_cholqr2(&la, m, n, A, m, Rm, n, &passes);
    if (!st)
        st = fli_la_store(&la, ctx, A, Q);
    if (!st && R)
        st = fli_la_store(&la, ctx, Rm, R);
    la.ops->release(&la, A);
    la.ops->release(&la, Rm);
    threads_leave(g);
    if (st)
        return st;
    report_fill(report, "cholqr2", b, passes, 0);
    return FL_STATUS_OK;
}

/* ---- split_basis ------------------------------------------------------------------ */

/* X and the parts on the context's GPU: one kernel (la->ops->split), after
 * a finiteness check (its Frobenius norm: the scaled sum is finite for
 * every finite matrix) so that bad input writes nothing. */
static fl_status split_on_device(fl_ctx *ctx, const fl_array *X, int mant, int fp16, int parts,
                                 void *const *po, const int64_t *ld)
{
    fli_la la;
    fl_status st = fli_la_open(ctx, FL_DTYPE_F32, fli_array_device(X), &la, NULL);
    double nrm = 0;
    if (!st)
        st = la.ops->fro(&la, X->cols, X->rows, X->data, X->ld, &nrm);
    if (!st && !isfinite(nrm))
        st = fli_fail(ctx, FL_STATUS_INVALID_ARG, "split_basis: X holds NaN or Inf: input must be finite");
    if (!st)
        st = la.ops->split(&la, X->cols, X->rows, X->data, X->ld, mant, fp16, parts, po, ld);
    return st;
}

fl_status fl_split_basis(fl_ctx *ctx, const fl_array *X, const char *format, int parts, fl_array *out)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    fl_status st;
    if ((st = check_matrix(ctx, X, "X", 0)))
        return st;
    if (X->dtype != FL_DTYPE_F32)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "split_basis: X has dtype %s, expected f32",
                        fl_dtype_name(X->dtype));
    int mant = -1, fp16 = 0;
    if (format && !strcasecmp(format, "tf32"))
        mant = 10;
    else if (format && !strcasecmp(format, "bf16"))
        mant = 7;
    else if (format && !strcasecmp(format, "fp16"))
        mant = 10, fp16 = 1;
    if (mant < 0)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "split_basis: format '%s', expected tf32, bf16 or fp16",
                        format ? format : "(null)");
    if (parts < 1 || parts > 3)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "split_basis: parts=%d, expected 1, 2 or 3", parts);
    if (!out)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "split_basis: out is NULL");
    for (int p = 0; p < parts; p++) {
        char what[16];
        snprintf(what, sizeof what, "out[%d]", p);
        if ((st = check_matrix(ctx, &out[p], what, 1)) || (st = check_same(ctx, X, &out[p], what)) ||
            (st = check_shape(ctx, &out[p], X->rows, X->cols, what)))
            return st;
    }
    if (X->rows * X->cols == 0)
        return FL_STATUS_OK;
    /* row-major X read column-major is X^T (cols x rows, ld): the split is
     * element-wise, so the parts come out in X's layout */
    void *po[3] = {0};
    int64_t ld[3] = {0};
    for (int p = 0; p < parts; p++)
        po[p] = out[p].data, ld[p] = out[p].ld;
    if (fli_array_device(X) >= 0)
        return split_on_device(ctx, X, mant, fp16, parts, po, ld);
    /* host arrays: the CPU's op, whatever device the context computes on */
    fli_la la;
    fli_la_cpu_init(&la, ctx, FL_DTYPE_F32);
    const omp_guard g = threads_enter(ctx);
    st = la.ops->split(&la, X->cols, X->rows, X->data, X->ld, mant, fp16, parts, po, ld);
    threads_leave(g);
    return st;
}
