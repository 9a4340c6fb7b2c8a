/*
 * linalg.h — dense linear algebra inside flashlib.
 *
 * Two things live here:
 *
 *   1. The GEMM precision variants ("the ladder"): one enum, one name table,
 *      shared by the public API (fl_gemm), the backends and the tests. The
 *      cost model (src/info/op_linalg.c) names the same variants with a
 *      "gemm_" prefix.
 *
 *   2. fli_la, an interface of dense operations on column-major matrices in
 *      one memory space. The CPU backend implements it with BLAS/LAPACK
 *      (backends/cpu/linalg_cpu.c); the CUDA module with cuBLAS, cuSOLVER
 *      and its own kernels (backends/cuda/linalg_cuda.cu). The iterative
 *      algorithms (eigh and polar variants, CholeskyQR2, randomized range
 *      finders) are written once against it (algo/linalg_*.c), so the CPU
 *      is an exact oracle of what the GPU runs, step for step.
 *
 * Conventions of fli_la:
 *   - Matrices are column-major with a leading dimension (LAPACK's layout),
 *     elements of type la->dt (FL_DTYPE_F32 or FL_DTYPE_F64), in la's memory
 *     (host for the CPU, the context's GPU for CUDA). A row-major m x n
 *     array of the public API is the column-major n x m matrix of its
 *     transpose: the algo layer swaps operands instead of copying.
 *   - Scalars are passed as double whatever la->dt is.
 *   - Results that the host needs (norms, eigenvalues, diagonals) come back
 *     in host doubles; those calls synchronise, nothing else does.
 *   - Every op returns fl_status; on error it writes a one-line message into
 *     la->err (which op, what failed) and leaves its outputs unspecified
 *     (the algo layer works in scratch and copies out only on success).
 *   - Ops never print, abort or exit.
 *   - Sizes are int64_t; an op whose library takes 32-bit sizes checks them
 *     and fails with FL_STATUS_UNSUPPORTED rather than truncating.
 */
#ifndef FL_ALGO_LINALG_H
#define FL_ALGO_LINALG_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "flashlib.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __CUDACC__
#define FLI_LA_HD __host__ __device__
#else
#define FLI_LA_HD
#endif

/* ---- the GEMM ladder --------------------------------------------------- */

/* How C = op(A) op(B) is computed (every variant accumulates in at least
 * fp32; "parts" are the operands split into terms exactly representable in
 * the products' format, x = x1 + x2 + ...):
 *   FP64          native float64 (DGEMM; f64 tensor cores where present)
 *   FP32          native float32, SIMT FMA
 *   TF32          operands rounded to tf32 (10-bit mantissa), one product
 *   3XTF32        2 tf32 parts each, products hi*hi + hi*lo + lo*hi
 *   BF16          operands rounded to bf16 (7-bit mantissa), one product
 *   3XBF16        2 bf16 parts each, 3 products as 3XTF32
 *   FP16          operands rounded to fp16 after a power-of-two scale per
 *                 row of op(A) / column of op(B) (no overflow), one product
 *   3XFP16        2 fp16 parts, 3 products
 *   FP16X9        3 fp16 parts each, all 9 products
 *   FP16X3_KAHAN  2 fp16 parts, 3 products, each into its own fp32 buffer,
 *                 summed with Kahan compensation
 *   TF32X6        3 tf32 parts each, the 6 products of order <= 2, summed
 *                 in float64 (for float64 data)
 *   OZAKI_INT8    the Ozaki scheme II: operands scaled to integers, their
 *                 residues modulo `moduli` pairwise-coprime numbers <= 256
 *                 multiplied on int8 units with exact int32 sums, the
 *                 result rebuilt by the Chinese remainder theorem in
 *                 float64; reaches float64 accuracy with enough moduli */
typedef enum fli_gemm_variant {
    FLI_GEMM_FP64 = 0,
    FLI_GEMM_FP32,
    FLI_GEMM_TF32,
    FLI_GEMM_3XTF32,
    FLI_GEMM_BF16,
    FLI_GEMM_3XBF16,
    FLI_GEMM_FP16,
    FLI_GEMM_3XFP16,
    FLI_GEMM_FP16X9,
    FLI_GEMM_FP16X3_KAHAN,
    FLI_GEMM_TF32X6,
    FLI_GEMM_OZAKI_INT8,
    FLI_GEMM_NVARIANTS
} fli_gemm_variant;

/* "fp64", "fp32", "tf32", "3xtf32", "bf16", "3xbf16", "fp16", "3xfp16",
 * "fp16x9", "fp16x3_kahan", "tf32x6", "ozaki_int8", by enum value. */
extern const char *const fli_gemm_variant_names[FLI_GEMM_NVARIANTS];
/* The variant named `s` (with or without a "gemm_" prefix, any case), or -1. */
int fli_gemm_variant_parse(const char *s);

/* The Ozaki scheme II constants: algo/linalg_ozaki.h. */

/* x rounded to nearest-even with `mant_bits` explicit mantissa bits (tf32
 * 10, bf16 7, fp16 10), float's exponent range (fp16's narrower range is
 * fli_round_fp16's business). The split variants take parts
 * p0 = round(x), p1 = round(x - p0), p2 = round(x - p0 - p1). Every backend
 * rounds with this function, so CPU and GPU parts are bit-identical. */
static inline FLI_LA_HD float fli_round_mant(float x, int mant_bits)
{
    union {
        float f;
        uint32_t u;
    } v = {x};
    const int drop = 23 - mant_bits;
    if (drop <= 0 || (v.u & 0x7f800000u) == 0x7f800000u)
        return x;
    const uint32_t half = 1u << (drop - 1), lsb = (v.u >> drop) & 1u;
    v.u = (v.u + half - 1 + lsb) & ~((1u << drop) - 1);
    return v.f;
}

/* x rounded to IEEE fp16 (nearest-even), subnormals included: the quantum
 * below 2^-14 is 2^-24. Values beyond fp16's range are not expected (the
 * fp16 variants scale rows and columns first) and come back unchanged in
 * exponent. */
static inline FLI_LA_HD float fli_round_fp16(float x)
{
    const float ax = x < 0 ? -x : x;
    if (ax < 6.103515625e-05f) {         /* 2^-14 */
        const float q = x * 16777216.0f; /* exact: a power-of-two scale */
        return nearbyintf(q) * 5.9604644775390625e-08f;
    }
    return fli_round_mant(x, 10);
}

/* ---- the dense-operation interface -------------------------------------- */

typedef struct fli_la fli_la;

typedef struct fli_la_ops {
    /* Scratch in la's memory; release(NULL) is a no-op. */
    fl_status (*alloc)(fli_la *la, size_t bytes, void **p);
    void (*release)(fli_la *la, void *p);
    /* Copies between the host and la's memory (plain bytes). */
    fl_status (*put)(fli_la *la, void *dst, const void *host_src, size_t bytes);
    fl_status (*get)(fli_la *la, void *host_dst, const void *src, size_t bytes);

    /* C (m x n) = alpha op(A) op(B) + beta C, op(A) m x k, op(B) k x n;
     * ta/tb: 0 = as is, 1 = transposed. `variant` is a fli_gemm_variant;
     * moduli is the Ozaki-II modulus count (ignored by other variants).
     * beta == 0 means C is not read (it may hold NaN). */
    fl_status (*gemm)(fli_la *la, int variant, int moduli, int ta, int tb, int64_t m, int64_t n, int64_t k,
                      double alpha, const void *A, int64_t lda, const void *B, int64_t ldb, double beta,
                      void *C, int64_t ldc);
    /* C (m x n) = alpha op(A) + beta op(B). beta == 0: B not read (may be
     * NULL); alpha == 0: A not read. C may be A (ta == 0) or B (tb == 0). */
    fl_status (*geam)(fli_la *la, int ta, int tb, int64_t m, int64_t n, double alpha, const void *A,
                      int64_t lda, double beta, const void *B, int64_t ldb, void *C, int64_t ldc);
    /* A (m x n) = offdiag everywhere, diag on the main diagonal. */
    fl_status (*fill)(fli_la *la, int64_t m, int64_t n, void *A, int64_t lda, double offdiag, double diag);
    /* A(i, i) += v for i < n. */
    fl_status (*shift_diag)(fli_la *la, int64_t n, void *A, int64_t lda, double v);
    /* Frobenius norm of A (m x n) into *out (host). */
    fl_status (*fro)(fli_la *la, int64_t m, int64_t n, const void *A, int64_t lda, double *out);
    /* The n diagonal entries of A into out (host doubles). */
    fl_status (*diag)(fli_la *la, int64_t n, const void *A, int64_t lda, double *out);

    /* Cholesky A = L L^T of the lower triangle (the strict upper triangle is
     * not read and is left as it was). *info = 0, or the 1-based column at
     * which A was found not positive definite (then A is unspecified). */
    fl_status (*potrf)(fli_la *la, int64_t n, void *A, int64_t lda, int *info);
    /* B (m x n) = B inv(L)^T (trans 1) or B inv(L) (trans 0), L lower
     * triangular n x n, non-unit diagonal. */
    fl_status (*trsm)(fli_la *la, int trans, int64_t m, int64_t n, const void *L, int64_t ldl, void *B,
                      int64_t ldb);
    /* Thin QR of A (m x n, m >= n): A is replaced by the explicit Q; R
     * (n x n, upper, may be NULL) receives R. */
    fl_status (*qr)(fli_la *la, int64_t m, int64_t n, void *A, int64_t lda, void *R, int64_t ldr);
    /* Symmetric eigendecomposition of A (n x n, lower triangle read):
     * eigenvalues ascending into w (host doubles), eigenvectors replace A
     * (column j for w[j]). Divide and conquer (syevd). */
    fl_status (*syevd)(fli_la *la, int64_t n, void *A, int64_t lda, double *w);
    /* The same by Jacobi rotations to tolerance tol (relative off-diagonal
     * norm) or max_sweeps; *sweeps receives the sweeps done. */
    fl_status (*syevj)(fli_la *la, int64_t n, void *A, int64_t lda, double tol, int max_sweeps, double *w,
                       int *sweeps);
    /* A (m x n) = independent standard normal entries, a function of
     * (seed, i, j) only: every backend fills the same numbers (to within
     * the last bit of its float32/float64 transcendental functions). */
    fl_status (*randn)(fli_la *la, int64_t m, int64_t n, void *A, int64_t lda, uint64_t seed);
    /* out[p] (m x n, ldo[p]), p < parts (1..3) = the split of the float32
     * A (m x n, lda) into parts exactly representable with mant_bits
     * mantissa bits (fp16: fli_round_fp16): out[0] = round(A),
     * out[p] = round(A - out[0] - ... - out[p-1]). Float32 only. */
    fl_status (*split)(fli_la *la, int64_t m, int64_t n, const void *A, int64_t lda, int mant_bits, int fp16,
                       int parts, void *const *out, const int64_t *ldo);
    /* potrf without waiting for its outcome: info_la (an int in la's
     * memory) receives the info when the factorisation has run; nothing
     * here reads it back (a later get does, with other results). */
    fl_status (*potrf_dev)(fli_la *la, int64_t n, void *A, int64_t lda, void *info_la);
} fli_la_ops;

struct fli_la {
    const fli_la_ops *ops;
    fl_dtype dt;       /* F32 or F64 */
    int32_t device_id; /* -1: host memory (CPU backend); else the GPU */
    void *impl;        /* backend state (BLAS thread count, cuBLAS handle...) */
    char *err;
    size_t err_len;
};

/* Element size of la's matrices. */
static inline size_t fli_la_esize(const fli_la *la)
{
    return la->dt == FL_DTYPE_F64 ? 8 : 4;
}

/* The CPU implementation (backends/cpu/linalg_cpu.c) for matrices of dt
 * (F32 or F64): host scratch through ctx's allocator, messages into ctx's
 * error buffer; BLAS/LAPACK run on the calling thread's OpenMP team size
 * (the entry points set it to the context's threads). Nothing to release. */
void fli_la_cpu_init(fli_la *la, fl_ctx *ctx, fl_dtype dt);

/* ---- shared by the linear-algebra entry points (algo/linalg.c) ----------- */

/* The fli_la that computes for ctx on data of dtype dt that lives in
 * data_dev (-1 host, else a GPU): the CUDA module's when the context
 * computes on a GPU, else the CPU's. Data on a GPU with a CPU context, or
 * on another GPU than the context's, is FL_STATUS_INVALID_ARG; host data
 * with a GPU context is fine (the entry point uploads it). la->err is the
 * context's error buffer, so an op's failure is the call's message.
 * *backend says which (may be NULL). */
fl_status fli_la_open(fl_ctx *ctx, fl_dtype dt, int32_t data_dev, fli_la *la, fl_backend *backend);

/* a's elements in la's memory: *p = a->data when a lives there, else a
 * fresh copy of its span (rows - 1) ld + cols, *owned set (release it).
 * The layout stays a's: read column-major it is a^T (cols x rows, ld). */
fl_status fli_la_borrow(fli_la *la, const fl_array *a, const void **p, void **owned);

/* A matrix in la's memory: the public row-major array `a` (rows x cols,
 * ld) copied as the column-major matrix it represents (rows x cols, ld
 * = rows) into fresh scratch *out. The copy is how the algorithms get
 * LAPACK's layout and a buffer they may overwrite. */
fl_status fli_la_load(fli_la *la, fl_ctx *ctx, const fl_array *a, void **out);
/* The reverse: column-major m (rows x cols, ld rows) in la's memory into
 * the public row-major array `a` (host or device, a->dtype == la->dt). */
fl_status fli_la_store(fli_la *la, fl_ctx *ctx, const void *m, fl_array *a);

/* CholeskyQR2 of A (m x n, m >= n, column-major in la's memory): A becomes
 * Q, R (n x n upper, may be NULL) receives R. Two Cholesky QR passes; when
 * the first Gram matrix is not numerically positive definite (A is
 * ill-conditioned beyond u^-1/2, or rank deficient), a shifted pass (shift
 * 11 (m n + n (n+1)) u ||A||_F^2) runs first and two plain ones follow
 * (shifted CholeskyQR3): Q is then orthonormal and A = QR holds to working
 * precision even for rank-deficient A (R has near-zero pivots). *passes
 * (may be NULL) receives the passes run. FL_STATUS_NUMERICAL when even the
 * shifted Gram matrix fails (A zero, or overflowing). */
fl_status fli_la_cholqr2(fli_la *la, int64_t m, int64_t n, void *A, int64_t lda, void *R, int64_t ldr,
                         int *passes);

/* The counter-based normal generator both backends use for randn:
 * entry (i, j) of an m x n call with `seed` is fli_la_normal(seed, i + j * m)
 * (Box-Muller on two 53-bit uniforms hashed from the seed and the index). */
static inline FLI_LA_HD uint64_t fli_la_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static inline FLI_LA_HD double fli_la_normal(uint64_t seed, uint64_t idx)
{
    const uint64_t a = fli_la_mix(seed ^ fli_la_mix(2 * idx + 1));
    const uint64_t b = fli_la_mix(a + 0x9e3779b97f4a7c15ull);
    const double u1 = ((double)(a >> 11) + 0.5) * 0x1p-53, u2 = (double)(b >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#ifdef __cplusplus
}
#endif
#endif
