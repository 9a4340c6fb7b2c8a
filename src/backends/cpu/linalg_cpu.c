/*
 * linalg_cpu.c — the CPU implementation of the dense-operation interface
 * (algo/linalg.h): BLAS and LAPACK (the OpenMP OpenBLAS, see lapack.h) on
 * column-major host matrices, float32 or float64.
 *
 * The GEMM variants run with the arithmetic their names promise, not with
 * the CPU's best: operands are split and rounded exactly as the GPU splits
 * them (fli_round_mant / fli_round_fp16), the partial products accumulate
 * in float32 where tensor cores would, and Ozaki scheme II multiplies
 * residues whose products are exact. So a variant's error measured here is
 * the variant's error, and the CPU is an oracle for the GPU's. Only fp32
 * and fp64 are fast here; the others cost their product count in SGEMMs.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "algo/linalg.h"
#include "algo/linalg_ozaki.h"
#include "backends/cpu/lapack.h"
#include "core/internal.h"

void ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda, float *w,
             float *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len,
             size_t uplo_len);
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);

#define CTX(la) ((fl_ctx *)(la)->impl)
#define IS64(la) ((la)->dt == FL_DTYPE_F64)

static inline double ld_at(const fli_la *la, const void *p, int64_t i)
{
    return IS64(la) ? ((const double *)p)[i] : (double)((const float *)p)[i];
}
static inline void st_at(const fli_la *la, void *p, int64_t i, double v)
{
    if (IS64(la))
        ((double *)p)[i] = v;
    else
        ((float *)p)[i] = (float)v;
}

static fl_status fits_int(fli_la *la, const char *op, int64_t a, int64_t b)
{
    if (a > 2147483647 || b > 2147483647)
        return fli_fail(CTX(la), FL_STATUS_UNSUPPORTED, "%s: %lld x %lld exceeds LAPACK's 32-bit sizes", op,
                        (long long)a, (long long)b);
    return FL_STATUS_OK;
}

static fl_status c_alloc(fli_la *la, size_t bytes, void **p)
{
    *p = fli_malloc(CTX(la), bytes ? bytes : 1, "linear-algebra scratch");
    return *p ? FL_STATUS_OK : FL_STATUS_OUT_OF_MEMORY;
}
static void c_release(fli_la *la, void *p)
{
    fli_free(CTX(la), p);
}
static fl_status c_copy(fli_la *la, void *dst, const void *src, size_t bytes)
{
    (void)la;
    if (bytes)
        memmove(dst, src, bytes);
    return FL_STATUS_OK;
}

/* ---- GEMM variants -------------------------------------------------------- */

/* op(X) (r x c) of a column-major X, as a dense column-major double matrix. */
static void op_to_f64(const fli_la *la, int t, int64_t r, int64_t c, const void *X, int64_t ldx, double *out)
{
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < c; j++)
        for (int64_t i = 0; i < r; i++)
            out[i + j * r] = ld_at(la, X, t ? j + i * ldx : i + j * ldx);
}

typedef enum { SPLIT_TF32, SPLIT_BF16, SPLIT_FP16 } split_fmt;

static inline float round_fmt(split_fmt f, float x)
{
    return f == SPLIT_FP16 ? fli_round_fp16(x) : fli_round_mant(x, f == SPLIT_BF16 ? 7 : 10);
}

/* The parts of a dense double matrix (len entries): part[p][i] float, each
 * the rounding of what the earlier parts left. */
static void split_parts(const double *x, int64_t len, split_fmt f, int parts, float **part)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < len; i++) {
        double rest = x[i];
        for (int p = 0; p < parts; p++) {
            const float v = round_fmt(f, (float)rest);
            part[p][i] = v;
            rest -= v;
        }
    }
}

/* Power-of-two scales that bring each row (rows = 1) or column (rows = 0)
 * of the dense r x c matrix X to a maximum magnitude in [2^14, 2^15): the
 * fp16 variants' guard against overflow and subnormals. X is scaled in
 * place; e[] receives the exponents added. */
static void fp16_scale(double *X, int64_t r, int64_t c, int rows, int *e)
{
    const int64_t ne = rows ? r : c;
#pragma omp parallel for schedule(static)
    for (int64_t a = 0; a < ne; a++) {
        double mx = 0;
        const int64_t len = rows ? c : r;
        for (int64_t b = 0; b < len; b++) {
            const double v = fabs(rows ? X[a + b * r] : X[b + a * r]);
            mx = v > mx ? v : mx;
        }
        int s = 0;
        if (mx > 0 && isfinite(mx)) {
            int ex;
            frexp(mx, &ex); /* mx in [2^(ex-1), 2^ex) */
            s = 15 - ex;
        }
        e[a] = s;
        for (int64_t b = 0; b < len; b++) {
            double *v = rows ? &X[a + b * r] : &X[b + a * r];
            *v = ldexp(*v, s);
        }
    }
}

/* P (m x n, float) (+)= Ap (m x k) Bp (k x n), all dense column-major. */
static void sgemm_acc(int64_t m, int64_t n, int64_t k, const float *Ap, const float *Bp, float beta, float *P)
{
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, Ap, (int)m, Bp,
                (int)k, beta, P, (int)m);
}

/* Pairs (i, j) of parts multiplied by each split variant, smallest first
 * (the order the float32 accumulation adds them in). */
typedef struct split_plan {
    split_fmt fmt;
    int parts;
    int npairs;
    int pair[9][2];
    int separate; /* 1: each product in its own buffer (Kahan / float64 sum) */
} split_plan;

static int plan_of(int variant, split_plan *p)
{
    static const split_plan plans[] = {
        [FLI_GEMM_TF32] = {SPLIT_TF32, 1, 1, {{0, 0}}, 0},
        [FLI_GEMM_3XTF32] = {SPLIT_TF32, 2, 3, {{1, 0}, {0, 1}, {0, 0}}, 0},
        [FLI_GEMM_BF16] = {SPLIT_BF16, 1, 1, {{0, 0}}, 0},
        [FLI_GEMM_3XBF16] = {SPLIT_BF16, 2, 3, {{1, 0}, {0, 1}, {0, 0}}, 0},
        [FLI_GEMM_FP16] = {SPLIT_FP16, 1, 1, {{0, 0}}, 0},
        [FLI_GEMM_3XFP16] = {SPLIT_FP16, 2, 3, {{1, 0}, {0, 1}, {0, 0}}, 0},
        [FLI_GEMM_FP16X9] =
            {SPLIT_FP16, 3, 9, {{2, 2}, {2, 1}, {1, 2}, {2, 0}, {1, 1}, {0, 2}, {1, 0}, {0, 1}, {0, 0}}, 0},
        [FLI_GEMM_FP16X3_KAHAN] = {SPLIT_FP16, 2, 3, {{0, 0}, {0, 1}, {1, 0}}, 1},
        [FLI_GEMM_TF32X6] = {SPLIT_TF32, 3, 6, {{2, 0}, {1, 1}, {0, 2}, {1, 0}, {0, 1}, {0, 0}}, 1},
    };
    if (variant < FLI_GEMM_TF32 || variant > FLI_GEMM_TF32X6)
        return 0;
    *p = plans[variant];
    return 1;
}

/* T (m x n, double, dense) = op(A) op(B) by a split variant. */
static fl_status split_product(fli_la *la, int variant, int64_t m, int64_t n, int64_t k, double *a64,
                               double *b64, double *T)
{
    split_plan pl;
    if (!plan_of(variant, &pl))
        return fli_fail(CTX(la), FL_STATUS_INTERNAL, "gemm: variant %d has no split plan", variant);
    int *ea = NULL, *eb = NULL;
    float *pa[3] = {0}, *pb[3] = {0}, *P = NULL, *Q = NULL;
    fl_status st = FL_STATUS_OK;
    const size_t fl = sizeof(float);
    if (pl.fmt == SPLIT_FP16) {
        ea = fli_malloc(CTX(la), sizeof(int) * (size_t)m, "fp16 row scales");
        eb = fli_malloc(CTX(la), sizeof(int) * (size_t)n, "fp16 column scales");
        if (!ea || !eb) {
            st = FL_STATUS_OUT_OF_MEMORY;
            goto done;
        }
        fp16_scale(a64, m, k, 1, ea);
        fp16_scale(b64, k, n, 0, eb);
    }
    for (int p = 0; p < pl.parts; p++) {
        pa[p] = fli_malloc(CTX(la), fl * (size_t)(m * k), "operand parts");
        pb[p] = fli_malloc(CTX(la), fl * (size_t)(k * n), "operand parts");
        if (!pa[p] || !pb[p]) {
            st = FL_STATUS_OUT_OF_MEMORY;
            goto done;
        }
    }
    P = fli_malloc(CTX(la), fl * (size_t)(m * n), "partial products");
    if (pl.separate)
        Q = fli_malloc(CTX(la), fl * (size_t)(m * n), "partial products");
    if (!P || (pl.separate && !Q)) {
        st = FL_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    split_parts(a64, m * k, pl.fmt, pl.parts, pa);
    split_parts(b64, k * n, pl.fmt, pl.parts, pb);
    if (!pl.separate) {
        /* one float32 accumulator, smallest products first */
        for (int q = 0; q < pl.npairs; q++)
            sgemm_acc(m, n, k, pa[pl.pair[q][0]], pb[pl.pair[q][1]], q ? 1.0f : 0.0f, P);
        for (int64_t i = 0; i < m * n; i++)
            T[i] = P[i];
    } else if (variant == FLI_GEMM_FP16X3_KAHAN) {
        /* each product alone, then s = hh + hl + lh with Kahan's
         * compensation in float32 */
        float *C = fli_malloc(CTX(la), fl * (size_t)(m * n), "Kahan compensation");
        if (!C) {
            st = FL_STATUS_OUT_OF_MEMORY;
            goto done;
        }
        sgemm_acc(m, n, k, pa[0], pb[0], 0.0f, P);
        memset(C, 0, fl * (size_t)(m * n));
        for (int q = 1; q < 3; q++) {
            sgemm_acc(m, n, k, pa[pl.pair[q][0]], pb[pl.pair[q][1]], 0.0f, Q);
            for (int64_t i = 0; i < m * n; i++) {
                volatile float y = Q[i] - C[i];
                volatile float t = P[i] + y;
                volatile float d = t - P[i];
                C[i] = d - y;
                P[i] = t;
            }
        }
        for (int64_t i = 0; i < m * n; i++)
            T[i] = P[i];
        fli_free(CTX(la), C);
    } else {
        /* tf32x6: products in float32, their sum in float64 */
        memset(T, 0, sizeof(double) * (size_t)(m * n));
        for (int q = 0; q < pl.npairs; q++) {
            sgemm_acc(m, n, k, pa[pl.pair[q][0]], pb[pl.pair[q][1]], 0.0f, P);
            for (int64_t i = 0; i < m * n; i++)
                T[i] += P[i];
        }
    }
    if (ea) {
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < m; i++)
                T[i + j * m] = ldexp(T[i + j * m], -(ea[i] + eb[j]));
    }
done:
    for (int p = 0; p < 3; p++) {
        fli_free(CTX(la), pa[p]);
        fli_free(CTX(la), pb[p]);
    }
    fli_free(CTX(la), P);
    fli_free(CTX(la), Q);
    fli_free(CTX(la), ea);
    fli_free(CTX(la), eb);
    return st;
}

/* Ozaki scheme II (algo/linalg_ozaki.h): T = op(A) op(B) from a64 (m x k)
 * and b64 (k x n), dense double. */
static fl_status ozaki_product(fli_la *la, int nmod, int64_t m, int64_t n, int64_t k, const double *a64,
                               const double *b64, double *T)
{
    const int p = fli_ozaki_bits(k, nmod);
    if (p < 2)
        return fli_fail(CTX(la), FL_STATUS_INVALID_ARG,
                        "gemm ozaki_int8: %d moduli leave no bits for K=%lld: use more moduli", nmod,
                        (long long)k);
    fl_status st = FL_STATUS_OK;
    int *ea = fli_malloc(CTX(la), sizeof(int) * (size_t)m, "Ozaki row scales");
    int *eb = fli_malloc(CTX(la), sizeof(int) * (size_t)n, "Ozaki column scales");
    int64_t *ia = fli_malloc(CTX(la), sizeof(int64_t) * (size_t)(m * k), "Ozaki integers");
    int64_t *ib = fli_malloc(CTX(la), sizeof(int64_t) * (size_t)(k * n), "Ozaki integers");
    double *ra = fli_malloc(CTX(la), sizeof(double) * (size_t)(m * k), "Ozaki residues");
    double *rb = fli_malloc(CTX(la), sizeof(double) * (size_t)(k * n), "Ozaki residues");
    double *R = fli_malloc(CTX(la), sizeof(double) * (size_t)(m * n), "Ozaki products");
    int16_t *dig = fli_malloc(CTX(la), sizeof(int16_t) * (size_t)(m * n) * (size_t)nmod, "Ozaki digits");
    if (!ea || !eb || !ia || !ib || !ra || !rb || !R || !dig) {
        st = FL_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    /* integers with at most p bits: row i of A scaled by 2^ea[i] */
    for (int side = 0; side < 2; side++) {
        const int64_t ne = side ? n : m, len = k;
        const double *X = side ? b64 : a64;
        int64_t *Iv = side ? ib : ia;
        int *E = side ? eb : ea;
#pragma omp parallel for schedule(static)
        for (int64_t a = 0; a < ne; a++) {
            double mx = 0;
            for (int64_t b = 0; b < len; b++) {
                const double v = fabs(side ? X[b + a * k] : X[a + b * m]);
                mx = v > mx ? v : mx;
            }
            int ex = 0;
            if (mx > 0)
                frexp(mx, &ex); /* mx < 2^ex */
            E[a] = mx > 0 ? p - ex : 0;
            for (int64_t b = 0; b < len; b++) {
                const int64_t idx = side ? b + a * k : a + b * m;
                Iv[idx] = (int64_t)nearbyint(ldexp(X[idx], E[a]));
            }
        }
    }
    /* one exact product of residues per modulus; keep the residue of each
     * output entry */
    for (int t = 0; t < nmod; t++) {
        const int64_t mt = fli_ozaki_moduli[t];
        for (int side = 0; side < 2; side++) {
            const int64_t len = side ? k * n : m * k;
            const int64_t *Iv = side ? ib : ia;
            double *Rr = side ? rb : ra;
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < len; i++) {
                int64_t r = Iv[i] % mt;
                if (r > (mt - 1) / 2)
                    r -= mt;
                if (r < -(mt / 2))
                    r += mt;
                Rr[i] = (double)r; /* int8: [-128, 127] */
            }
        }
        /* |sum| <= k 2^14 < 2^53: exact in double */
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0, ra, (int)m, rb,
                    (int)k, 0.0, R, (int)m);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < m * n; i++) {
            int64_t r = (int64_t)R[i] % mt;
            dig[(size_t)i * (size_t)nmod + (size_t)t] = (int16_t)(r < 0 ? r + mt : r);
        }
    }
    /* Garner: balanced mixed-radix digits v_t, then Horner in double */
    int32_t inv[FLI_OZAKI_MAX_MODULI][FLI_OZAKI_MAX_MODULI];
    for (int i = 0; i < nmod; i++)
        for (int j = 0; j < i; j++) {
            const int32_t mi = fli_ozaki_moduli[i], mj = fli_ozaki_moduli[j] % mi;
            int32_t x = 1;
            while ((int64_t)mj * x % mi != 1)
                x++;
            inv[j][i] = x; /* m_j^-1 mod m_i */
        }
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < m * n; e++) {
        const int16_t *r = dig + (size_t)e * (size_t)nmod;
        int32_t v[FLI_OZAKI_MAX_MODULI] = {0};
        for (int i = 0; i < nmod; i++) {
            const int32_t mi = fli_ozaki_moduli[i];
            int64_t t = r[i];
            for (int j = 0; j < i; j++) {
                t = ((t - v[j]) % mi + mi) % mi;
                t = t * inv[j][i] % mi;
            }
            v[i] = (int32_t)(t > mi / 2 ? t - mi : t);
        }
        double x = v[nmod - 1];
        for (int i = nmod - 2; i >= 0; i--)
            x = x * fli_ozaki_moduli[i] + v[i];
        const int64_t i = e % m, j = e / m;
        T[e] = ldexp(x, -(ea[i] + eb[j]));
    }
done:
    fli_free(CTX(la), ea);
    fli_free(CTX(la), eb);
    fli_free(CTX(la), ia);
    fli_free(CTX(la), ib);
    fli_free(CTX(la), ra);
    fli_free(CTX(la), rb);
    fli_free(CTX(la), R);
    fli_free(CTX(la), dig);
    return st;
}

static fl_status c_gemm(fli_la *la, int variant, int moduli, int ta, int tb, int64_t m, int64_t n, int64_t k,
                        double alpha, const void *A, int64_t lda, const void *B, int64_t ldb, double beta,
                        void *C, int64_t ldc)
{
    fl_status st = fits_int(la, "gemm", m > n ? m : n, k);
    if (st)
        return st;
    if (m == 0 || n == 0)
        return FL_STATUS_OK;
    const CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    /* native paths: the data's own precision through BLAS */
    if (variant == FLI_GEMM_FP32 && la->dt == FL_DTYPE_F32 && k > 0) {
        cblas_sgemm(CblasColMajor, opa, opb, (int)m, (int)n, (int)k, (float)alpha, A, (int)lda, B, (int)ldb,
                    (float)beta, C, (int)ldc);
        return FL_STATUS_OK;
    }
    if (variant == FLI_GEMM_FP64 && la->dt == FL_DTYPE_F64 && k > 0) {
        cblas_dgemm(CblasColMajor, opa, opb, (int)m, (int)n, (int)k, alpha, A, (int)lda, B, (int)ldb, beta, C,
                    (int)ldc);
        return FL_STATUS_OK;
    }
    double *a64 = fli_malloc(CTX(la), sizeof(double) * (size_t)(m * k + 1), "gemm operands");
    double *b64 = fli_malloc(CTX(la), sizeof(double) * (size_t)(k * n + 1), "gemm operands");
    double *T = fli_malloc(CTX(la), sizeof(double) * (size_t)(m * n), "gemm product");
    if (!a64 || !b64 || !T) {
        st = FL_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    op_to_f64(la, ta, m, k, A, lda, a64);
    op_to_f64(la, tb, k, n, B, ldb, b64);
    if (k == 0) {
        memset(T, 0, sizeof(double) * (size_t)(m * n));
    } else if (variant == FLI_GEMM_FP64) { /* float32 data, float64 products */
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0, a64, (int)m, b64,
                    (int)k, 0.0, T, (int)m);
    } else if (variant == FLI_GEMM_FP32) {            /* float64 data, float32 products */
        float *af = (float *)a64, *bf = (float *)b64; /* in place: floats are narrower */
        for (int64_t i = 0; i < m * k; i++)
            af[i] = (float)a64[i];
        for (int64_t i = 0; i < k * n; i++)
            bf[i] = (float)b64[i];
        float *P = fli_malloc(CTX(la), sizeof(float) * (size_t)(m * n), "gemm product");
        if (!P) {
            st = FL_STATUS_OUT_OF_MEMORY;
            goto done;
        }
        sgemm_acc(m, n, k, af, bf, 0.0f, P);
        for (int64_t i = 0; i < m * n; i++)
            T[i] = P[i];
        fli_free(CTX(la), P);
    } else if (variant == FLI_GEMM_OZAKI_INT8) {
        st = ozaki_product(la, moduli, m, n, k, a64, b64, T);
    } else {
        st = split_product(la, variant, m, n, k, a64, b64, T);
    }
    if (st)
        goto done;
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++) {
            const int64_t c = i + j * ldc;
            const double v = alpha * T[i + j * m];
            st_at(la, C, c, beta == 0 ? v : v + beta * ld_at(la, C, c));
        }
done:
    fli_free(CTX(la), a64);
    fli_free(CTX(la), b64);
    fli_free(CTX(la), T);
    return st;
}

/* ---- element-wise and reductions -------------------------------------------- */

static fl_status c_geam(fli_la *la, int ta, int tb, int64_t m, int64_t n, double alpha, const void *A,
                        int64_t lda, double beta, const void *B, int64_t ldb, void *C, int64_t ldc)
{
    /* a transposed operand that aliases C would be overwritten as read */
    if ((ta && alpha != 0 && A == C) || (tb && beta != 0 && B == C))
        return fli_fail(CTX(la), FL_STATUS_INTERNAL, "geam: a transposed operand may not be the output");
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++) {
            double v = 0;
            if (alpha != 0)
                v = alpha * ld_at(la, A, ta ? j + i * lda : i + j * lda);
            if (beta != 0)
                v += beta * ld_at(la, B, tb ? j + i * ldb : i + j * ldb);
            st_at(la, C, i + j * ldc, v);
        }
    return FL_STATUS_OK;
}

static fl_status c_fill(fli_la *la, int64_t m, int64_t n, void *A, int64_t lda, double offdiag, double diag)
{
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++)
            st_at(la, A, i + j * lda, i == j ? diag : offdiag);
    return FL_STATUS_OK;
}

static fl_status c_shift_diag(fli_la *la, int64_t n, void *A, int64_t lda, double v)
{
    for (int64_t i = 0; i < n; i++)
        st_at(la, A, i + i * lda, ld_at(la, A, i + i * lda) + v);
    return FL_STATUS_OK;
}

static fl_status c_fro(fli_la *la, int64_t m, int64_t n, const void *A, int64_t lda, double *out)
{
    /* scaled sum of squares in double: no overflow for float data, and
     * float64 data near the overflow threshold is scaled by the max */
    double mx = 0;
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++) {
            const double v = fabs(ld_at(la, A, i + j * lda));
            mx = v > mx ? v : mx;
        }
    if (mx == 0 || !isfinite(mx)) {
        *out = mx;
        return FL_STATUS_OK;
    }
    double s = 0;
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++) {
            const double v = ld_at(la, A, i + j * lda) / mx;
            s += v * v;
        }
    *out = mx * sqrt(s);
    return FL_STATUS_OK;
}

static fl_status c_diag(fli_la *la, int64_t n, const void *A, int64_t lda, double *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = ld_at(la, A, i + i * lda);
    return FL_STATUS_OK;
}

/* ---- factorisations ------------------------------------------------------------ */

static fl_status c_potrf(fli_la *la, int64_t n, void *A, int64_t lda, int *info)
{
    fl_status st = fits_int(la, "potrf", n, lda);
    if (st)
        return st;
    const int nn = (int)n, l = (int)lda;
    *info = 0;
    if (n == 0)
        return FL_STATUS_OK;
    if (IS64(la))
        dpotrf_("L", &nn, A, &l, info, 1);
    else
        spotrf_("L", &nn, A, &l, info, 1);
    if (*info < 0)
        return fli_fail(CTX(la), FL_STATUS_INTERNAL, "potrf: argument %d was invalid", -*info);
    return FL_STATUS_OK;
}

/* Host memory: the info is known at once; stored where the caller reads it. */
static fl_status c_potrf_dev(fli_la *la, int64_t n, void *A, int64_t lda, void *info_la)
{
    int info = 0;
    fl_status st = c_potrf(la, n, A, lda, &info);
    if (!st)
        memcpy(info_la, &info, sizeof info);
    return st;
}

static fl_status c_trsm(fli_la *la, int trans, int64_t m, int64_t n, const void *L, int64_t ldl, void *B,
                        int64_t ldb)
{
    fl_status st = fits_int(la, "trsm", m, n);
    if (st)
        return st;
    if (m == 0 || n == 0)
        return FL_STATUS_OK;
    const CBLAS_TRANSPOSE t = trans ? CblasTrans : CblasNoTrans;
    if (IS64(la))
        cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, t, CblasNonUnit, (int)m, (int)n, 1.0, L, (int)ldl,
                    B, (int)ldb);
    else
        cblas_strsm(CblasColMajor, CblasRight, CblasLower, t, CblasNonUnit, (int)m, (int)n, 1.0f, L, (int)ldl,
                    B, (int)ldb);
    return FL_STATUS_OK;
}

static fl_status c_qr(fli_la *la, int64_t m, int64_t n, void *A, int64_t lda, void *R, int64_t ldr)
{
    fl_status st = fits_int(la, "qr", m, lda);
    if (st)
        return st;
    if (m < n)
        return fli_fail(CTX(la), FL_STATUS_INTERNAL, "qr: needs m >= n (got %lld x %lld)", (long long)m,
                        (long long)n);
    if (n == 0)
        return FL_STATUS_OK;
    const int mm = (int)m, nn = (int)n, l = (int)lda, q = -1;
    int info = 0;
    const size_t es = fli_la_esize(la);
    double wq = 0;
    float wqf = 0;
    if (IS64(la))
        dgeqrf_(&mm, &nn, A, &l, NULL, &wq, &q, &info);
    else
        sgeqrf_(&mm, &nn, A, &l, NULL, &wqf, &q, &info);
    int lwork = (int)(IS64(la) ? wq : wqf) + 1;
    {
        double wq2 = 0;
        float wq2f = 0;
        if (IS64(la))
            dorgqr_(&mm, &nn, &nn, A, &l, NULL, &wq2, &q, &info);
        else
            sorgqr_(&mm, &nn, &nn, A, &l, NULL, &wq2f, &q, &info);
        const int w2 = (int)(IS64(la) ? wq2 : wq2f) + 1;
        lwork = w2 > lwork ? w2 : lwork;
    }
    void *tau = fli_malloc(CTX(la), es * (size_t)n, "QR factors");
    void *work = fli_malloc(CTX(la), es * (size_t)lwork, "QR workspace");
    if (!tau || !work) {
        st = FL_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    if (IS64(la))
        dgeqrf_(&mm, &nn, A, &l, tau, work, &lwork, &info);
    else
        sgeqrf_(&mm, &nn, A, &l, tau, work, &lwork, &info);
    if (info) {
        st = fli_fail(CTX(la), FL_STATUS_INTERNAL, "qr: geqrf info %d", info);
        goto done;
    }
    if (R)
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < n; i++)
                st_at(la, R, i + j * ldr, i <= j ? ld_at(la, A, i + j * lda) : 0.0);
    if (IS64(la))
        dorgqr_(&mm, &nn, &nn, A, &l, tau, work, &lwork, &info);
    else
        sorgqr_(&mm, &nn, &nn, A, &l, tau, work, &lwork, &info);
    if (info)
        st = fli_fail(CTX(la), FL_STATUS_INTERNAL, "qr: orgqr info %d", info);
done:
    fli_free(CTX(la), tau);
    fli_free(CTX(la), work);
    return st;
}

static fl_status c_syevd(fli_la *la, int64_t n, void *A, int64_t lda, double *w)
{
    fl_status st = fits_int(la, "syevd", n, lda);
    if (st)
        return st;
    if (n == 0)
        return FL_STATUS_OK;
    const int nn = (int)n, l = (int)lda, q = -1;
    int info = 0, iwq = 0;
    const size_t es = fli_la_esize(la);
    double wq = 0;
    float wqf = 0;
    if (IS64(la))
        dsyevd_("V", "L", &nn, A, &l, w, &wq, &q, &iwq, &q, &info, 1, 1);
    else
        ssyevd_("V", "L", &nn, A, &l, NULL, &wqf, &q, &iwq, &q, &info, 1, 1);
    int lwork = (int)(IS64(la) ? wq : wqf) + 1, liwork = iwq + 1;
    void *work = fli_malloc(CTX(la), es * (size_t)lwork, "eigh workspace");
    int *iwork = fli_malloc(CTX(la), sizeof(int) * (size_t)liwork, "eigh workspace");
    float *wf = IS64(la) ? NULL : fli_malloc(CTX(la), sizeof(float) * (size_t)n, "eigenvalues");
    if (!work || !iwork || (!IS64(la) && !wf)) {
        st = FL_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    if (IS64(la))
        dsyevd_("V", "L", &nn, A, &l, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    else
        ssyevd_("V", "L", &nn, A, &l, wf, work, &lwork, iwork, &liwork, &info, 1, 1);
    if (info) {
        st = fli_fail(CTX(la), FL_STATUS_NUMERICAL, "syevd did not converge (info %d)", info);
        goto done;
    }
    if (wf)
        for (int64_t i = 0; i < n; i++)
            w[i] = wf[i];
done:
    fli_free(CTX(la), work);
    fli_free(CTX(la), iwork);
    fli_free(CTX(la), wf);
    return st;
}

/* Cyclic Jacobi in the matrix's precision (rotations by Rutishauser's
 * formulas), sweeps until the off-diagonal norm is below tol times the
 * matrix's norm; eigenvalues sorted ascending with their vectors. */
static fl_status c_syevj(fli_la *la, int64_t n, void *A, int64_t lda, double tol, int max_sweeps, double *w,
                         int *sweeps)
{
    const size_t nn = (size_t)n;
    double *a = fli_malloc(CTX(la), sizeof(double) * nn * nn + 8, "Jacobi matrix");
    double *v = fli_malloc(CTX(la), sizeof(double) * nn * nn + 8, "Jacobi vectors");
    int64_t *ord = fli_malloc(CTX(la), sizeof(int64_t) * nn + 8, "Jacobi order");
    fl_status st = FL_STATUS_OK;
    if (!a || !v || !ord) {
        st = FL_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    /* work in double on the symmetrised lower triangle, rounding every
     * rotation's result to the data's precision when it is float32 */
    const int f32 = !IS64(la);
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < n; i++) {
            const double x = i >= j ? ld_at(la, A, i + j * lda) : ld_at(la, A, j + i * lda);
            a[i + j * n] = x;
            v[i + j * n] = i == j;
        }
    double total = 0;
    for (size_t i = 0; i < nn * nn; i++)
        total += a[i] * a[i];
    total = sqrt(total);
    int sw = 0;
    for (; sw < max_sweeps; sw++) {
        double off = 0;
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = j + 1; i < n; i++)
                off += 2 * a[i + j * n] * a[i + j * n];
        if (sqrt(off) <= tol * total)
            break;
        for (int64_t p = 0; p < n - 1; p++)
            for (int64_t q = p + 1; q < n; q++) {
                const double apq = a[p + q * n];
                if (apq == 0)
                    continue;
                const double app = a[p + p * n], aqq = a[q + q * n];
                const double theta = (aqq - app) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                const double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int64_t r = 0; r < n; r++) { /* columns p, q */
                    double x = a[r + p * n], y = a[r + q * n];
                    double nx = c * x - s * y, ny = s * x + c * y;
                    a[r + p * n] = f32 ? (float)nx : nx;
                    a[r + q * n] = f32 ? (float)ny : ny;
                }
                for (int64_t r = 0; r < n; r++) { /* rows p, q */
                    double x = a[p + r * n], y = a[q + r * n];
                    double nx = c * x - s * y, ny = s * x + c * y;
                    a[p + r * n] = f32 ? (float)nx : nx;
                    a[q + r * n] = f32 ? (float)ny : ny;
                }
                a[p + q * n] = a[q + p * n] = 0;
                for (int64_t r = 0; r < n; r++) {
                    double x = v[r + p * n], y = v[r + q * n];
                    double nx = c * x - s * y, ny = s * x + c * y;
                    v[r + p * n] = f32 ? (float)nx : nx;
                    v[r + q * n] = f32 ? (float)ny : ny;
                }
            }
    }
    if (sweeps)
        *sweeps = sw;
    for (int64_t i = 0; i < n; i++)
        ord[i] = i;
    for (int64_t i = 1; i < n; i++) { /* insertion sort by eigenvalue */
        const int64_t o = ord[i];
        int64_t j = i - 1;
        while (j >= 0 && a[ord[j] + ord[j] * n] > a[o + o * n]) {
            ord[j + 1] = ord[j];
            j--;
        }
        ord[j + 1] = o;
    }
    for (int64_t j = 0; j < n; j++) {
        w[j] = a[ord[j] + ord[j] * n];
        for (int64_t i = 0; i < n; i++)
            st_at(la, A, i + j * lda, v[i + ord[j] * n]);
    }
done:
    fli_free(CTX(la), a);
    fli_free(CTX(la), v);
    fli_free(CTX(la), ord);
    return st;
}

static fl_status c_split(fli_la *la, int64_t m, int64_t n, const void *A, int64_t lda, int mant_bits,
                         int fp16, int parts, void *const *out, const int64_t *ldo)
{
    if (IS64(la) || parts < 1 || parts > 3)
        return fli_fail(CTX(la), FL_STATUS_INTERNAL, "split: float32 data and 1..3 parts only");
#pragma omp parallel for schedule(static) if (m * n >= (1 << 16))
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++) {
            float rest = ((const float *)A)[i + j * lda];
            for (int p = 0; p < parts; p++) {
                const float v = fp16 ? fli_round_fp16(rest) : fli_round_mant(rest, mant_bits);
                ((float *)out[p])[i + j * ldo[p]] = v;
                rest -= v;
            }
        }
    return FL_STATUS_OK;
}

static fl_status c_randn(fli_la *la, int64_t m, int64_t n, void *A, int64_t lda, uint64_t seed)
{
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++)
            st_at(la, A, i + j * lda, fli_la_normal(seed, (uint64_t)(i + j * m)));
    return FL_STATUS_OK;
}

static const fli_la_ops cpu_ops = {
    .alloc = c_alloc,
    .release = c_release,
    .put = c_copy,
    .get = c_copy,
    .gemm = c_gemm,
    .geam = c_geam,
    .fill = c_fill,
    .shift_diag = c_shift_diag,
    .fro = c_fro,
    .diag = c_diag,
    .potrf = c_potrf,
    .potrf_dev = c_potrf_dev,
    .trsm = c_trsm,
    .qr = c_qr,
    .syevd = c_syevd,
    .syevj = c_syevj,
    .randn = c_randn,
    .split = c_split,
};

void fli_la_cpu_init(fli_la *la, fl_ctx *ctx, fl_dtype dt)
{
    memset(la, 0, sizeof *la);
    la->ops = &cpu_ops;
    la->dt = dt;
    la->device_id = -1;
    la->impl = ctx;
    la->err = ctx->err;
    la->err_len = sizeof ctx->err;
}
