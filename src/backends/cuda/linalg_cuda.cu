/*
 * linalg_cuda.cu — the dense-operation interface of algo/linalg.h on the
 * context's GPU: cuBLAS for products and triangular solves, cuSOLVER for
 * the factorisations, small kernels for the rest. Everything runs on the
 * context's stream; only fro, diag, get, syevd, syevj and potrf (its info)
 * synchronise.
 *
 * Matrices are column-major in device memory, float32 or float64 (la->dt).
 *
 * The GEMM ladder. Every variant but the native ones (fp32 on float32 data,
 * fp64 on float64 data: one cuBLAS call) runs as
 *   1. views of op(A) (m x k) and op(B)^T (n x k) as "rows r, depth l"
 *      with strides (sr, sl), so transposes cost nothing extra;
 *   2. for fp16 and Ozaki: the max magnitude of every row of op(A) and
 *      column of op(B) (tiled, atomicMax on the bits of non-negative
 *      doubles) and a power-of-two exponent per row / column;
 *   3. a split kernel that reads 32 x 32 tiles (coalesced along whichever
 *      of r, l is contiguous in the source) and writes the parts in the
 *      canonical "TN" layout: row r of the parts at r * kp, depth l
 *      contiguous, kp = k rounded up to 16 with zeros;
 *   4. cublasGemmEx on the parts (transa = T, transb = N) with the
 *      variant's input type and compute type into float32 (int32 for
 *      Ozaki) buffers, the pairs of parts in the CPU backend's order;
 *   5. an epilogue kernel: sums / Kahan / CRT, undoes the scales, and
 *      writes C = alpha T + beta C in double, rounded once to C's type.
 * The rounding of the parts (fli_round_mant, fli_round_fp16 from
 * linalg.h), the scale exponents, the pair order, the Kahan recurrence,
 * the float64 sum of tf32x6 (over K chunks of 2048, see tf6_chunks) and
 * every step of Ozaki II follow
 * backends/cpu/linalg_cpu.c operation for operation (no FMA contraction
 * where the CPU has none), so the parts and the Ozaki result are
 * bit-identical to the CPU's; the float32 products differ only by the
 * two BLAS libraries' summation orders.
 *
 * Scratch: through the context's device allocator when it has one (then
 * gemm synchronises before returning its scratch, since the allocator's
 * free is not stream-ordered); else from a stream-ordered memory pool
 * owned by the context (cudaMallocFromPoolAsync), so nothing synchronises.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cusolverDn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "algo/linalg.h"
#include "algo/linalg_ozaki.h"
#include "backends/cuda/fl_cuda_util.cuh"

/* ---- state and errors --------------------------------------------------------- */

#define LA_BLAS_WS (32u << 20) /* cuBLAS workspace (Hopper's recommended 32 MiB) */

/* What the context keeps for linear algebra between calls (state->la). */
typedef struct la_cache {
    cudaMemPool_t pool; /* NULL when the context has a device allocator */
    void *ws;           /* cuBLAS workspace */
} la_cache;

#define ENV(la) ((fli_cuda_env *)(la)->impl)
#define STATE(la) fli_state(ENV(la))
#define IS64(la) ((la)->dt == FL_DTYPE_F64)

/* A call's text up to its argument list: "cublasGemmEx(h, ...)" -> "cublasGemmEx". */
#define FNAME(s) (int)strcspn((s), "("), (s)

static fl_status la_fail(fli_la *la, fl_status st, int line, const char *op, const char *fmt, ...)
{
    if (la->err && la->err_len) {
        int n = snprintf(la->err, la->err_len, "%s (linalg_cuda.cu:%d): ", op, line);
        if (n >= 0 && (size_t)n < la->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(la->err + n, la->err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return st;
}
#define FAIL(st, op, ...) la_fail(la, (st), __LINE__, (op), __VA_ARGS__)

static fl_status cuda_st(fli_la *la, int line, const char *op, const char *what, cudaError_t e)
{
    (void)cudaGetLastError();
    return la_fail(la, e == cudaErrorMemoryAllocation ? FL_STATUS_DEVICE_OOM : FL_STATUS_CUDA_ERROR, line, op,
                   "%.*s: %s", FNAME(what), cudaGetErrorString(e));
}
#define CU(op, call)                                                 \
    do {                                                             \
        cudaError_t e_ = (call);                                     \
        if (e_ != cudaSuccess) return cuda_st(la, __LINE__, op, #call, e_); \
    } while (0)
#define LAUNCHED(op, what)                                                   \
    do {                                                                     \
        cudaError_t e_ = cudaGetLastError();                                 \
        if (e_ != cudaSuccess) return cuda_st(la, __LINE__, op, what, e_); \
    } while (0)
#define BL(op, call)                                                                          \
    do {                                                                                      \
        cublasStatus_t b_ = (call);                                                           \
        if (b_ != CUBLAS_STATUS_SUCCESS)                                                      \
            return la_fail(la, b_ == CUBLAS_STATUS_ALLOC_FAILED ? FL_STATUS_DEVICE_OOM : FL_STATUS_CUDA_ERROR, \
                           __LINE__, op, "%.*s: %s", FNAME(#call), cublasGetStatusString(b_));        \
    } while (0)
#define SO(op, call)                                                                               \
    do {                                                                                           \
        cusolverStatus_t c_ = (call);                                                              \
        if (c_ != CUSOLVER_STATUS_SUCCESS)                                                         \
            return la_fail(la, c_ == CUSOLVER_STATUS_ALLOC_FAILED ? FL_STATUS_DEVICE_OOM : FL_STATUS_CUDA_ERROR, \
                           __LINE__, op, "%.*s: cusolver status %d", FNAME(#call), (int)c_);               \
    } while (0)
#define TRY(expr)                          \
    do {                                   \
        fl_status s_ = (expr);             \
        if (s_ != FL_STATUS_OK) return s_; \
    } while (0)

static fl_status fits32(fli_la *la, const char *op, int64_t a, int64_t b, int64_t c)
{
    if (a > INT_MAX || b > INT_MAX || c > INT_MAX)
        return FAIL(FL_STATUS_UNSUPPORTED, op, "sizes %lld, %lld, %lld exceed the 32-bit sizes of cuBLAS/cuSOLVER",
                    (long long)a, (long long)b, (long long)c);
    return FL_STATUS_OK;
}

static fl_status dev_alloc(fli_la *la, const char *op, size_t bytes, void **p)
{
    fli_cuda_env *env = ENV(la);
    la_cache *lc = (la_cache *)STATE(la)->la;
    *p = NULL;
    if (bytes == 0) bytes = 16;
    if (!lc->pool) {
        if (env->dalloc->alloc(env->dalloc->user, env->device_id, bytes, p) != 0 || !*p) {
            *p = NULL;
            return FAIL(FL_STATUS_DEVICE_OOM, op, "the device allocator refused %zu bytes", bytes);
        }
        return FL_STATUS_OK;
    }
    cudaError_t e = cudaMallocFromPoolAsync(p, bytes, lc->pool, STATE(la)->stream);
    if (e != cudaSuccess) {
        *p = NULL;
        (void)cudaGetLastError();
        return FAIL(FL_STATUS_DEVICE_OOM, op, "%zu bytes of device scratch: %s", bytes, cudaGetErrorString(e));
    }
    return FL_STATUS_OK;
}

static void dev_free(fli_la *la, void *p)
{
    if (!p) return;
    fli_cuda_env *env = ENV(la);
    la_cache *lc = (la_cache *)STATE(la)->la;
    if (!lc->pool) {
        /* the allocator's free is not stream-ordered */
        cudaStreamSynchronize(STATE(la)->stream);
        env->dalloc->free(env->dalloc->user, env->device_id, p);
    } else {
        cudaFreeAsync(p, STATE(la)->stream);
    }
}

/* Released by the module's ctx_free (the stream is idle then). */
extern "C" void fli_cuda_la_release(fli_cuda_env *env)
{
    fli_cuda_state *s = fli_state(env);
    if (!s || !s->la) return;
    la_cache *lc = (la_cache *)s->la;
    if (lc->ws) {
        if (lc->pool) {
            cudaFreeAsync(lc->ws, s->stream);
            cudaStreamSynchronize(s->stream);
        } else {
            env->dalloc->free(env->dalloc->user, env->device_id, lc->ws);
        }
    }
    if (lc->pool) cudaMemPoolDestroy(lc->pool);
    free(lc);
    s->la = NULL;
}

static fl_status blas_get(fli_la *la, const char *op, cublasHandle_t *h)
{
    fli_cuda_state *st = STATE(la);
    if (!st->blas) {
        cublasHandle_t b;
        BL(op, cublasCreate(&b));
        st->blas = b;
    }
    *h = (cublasHandle_t)st->blas;
    la_cache *lc = (la_cache *)st->la;
    BL(op, cublasSetStream(*h, st->stream));
    BL(op, cublasSetWorkspace(*h, lc->ws, LA_BLAS_WS));
    BL(op, cublasSetMathMode(*h, CUBLAS_DEFAULT_MATH));
    BL(op, cublasSetPointerMode(*h, CUBLAS_POINTER_MODE_HOST));
    return FL_STATUS_OK;
}

static fl_status solver_get(fli_la *la, const char *op, cusolverDnHandle_t *h)
{
    fli_cuda_state *st = STATE(la);
    if (!st->solver) {
        cusolverDnHandle_t c;
        SO(op, cusolverDnCreate(&c));
        st->solver = c;
    }
    *h = (cusolverDnHandle_t)st->solver;
    SO(op, cusolverDnSetStream(*h, st->stream));
    return FL_STATUS_OK;
}

#define SETDEV(op) CU(op, cudaSetDevice(ENV(la)->device_id))

static inline unsigned grid1(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : b > 65535 * 16 ? 65535 * 16 : b);
}

/* ---- element-wise kernels ----------------------------------------------------- */

template <typename T> __device__ __forceinline__ double ldv(const T *p, int64_t i) { return (double)p[i]; }
template <typename T> __device__ __forceinline__ void stv(T *p, int64_t i, double v) { p[i] = (T)v; }

/* 2-D launch over an m x n column-major matrix: x over rows, y over columns. */
#define FOR_MN(m, n)                                                                                  \
    for (int64_t j = blockIdx.y; j < (n); j += gridDim.y)                                             \
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (m); i += (int64_t)gridDim.x * blockDim.x)

static inline dim3 grid_mn(int64_t m, int64_t n)
{
    int64_t gx = (m + 255) / 256;
    if (gx > 4096) gx = 4096;
    if (gx < 1) gx = 1;
    int64_t gy = n < 1 ? 1 : n > 65535 ? 65535 : n;
    return dim3((unsigned)gx, (unsigned)gy);
}

/* C = alpha op(A) + beta op(B), in double without contraction (the CPU's
 * arithmetic); alpha == 0 / beta == 0 leave A / B unread. */
template <typename T>
__global__ void k_geam(int ta, int tb, int64_t m, int64_t n, double alpha, const T *A, int64_t lda, double beta,
                       const T *B, int64_t ldb, T *C, int64_t ldc)
{
    FOR_MN(m, n)
    {
        double v = 0;
        if (alpha != 0) v = __dmul_rn(alpha, ldv(A, ta ? j + i * lda : i + j * lda));
        if (beta != 0) v = __dadd_rn(v, __dmul_rn(beta, ldv(B, tb ? j + i * ldb : i + j * ldb)));
        stv(C, i + j * ldc, v);
    }
}

template <typename T> __global__ void k_fill(int64_t m, int64_t n, T *A, int64_t lda, double off, double dg)
{
    FOR_MN(m, n) stv(A, i + j * lda, i == j ? dg : off);
}

template <typename T> __global__ void k_shift(int64_t n, T *A, int64_t lda, double v)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        stv(A, i + i * lda, ldv(A, i + i * lda) + v);
}

template <typename T> __global__ void k_diag(int64_t n, const T *A, int64_t lda, double *out)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = ldv(A, i + i * lda);
}

template <typename T> __global__ void k_randn(int64_t m, int64_t n, T *A, int64_t lda, uint64_t seed)
{
    FOR_MN(m, n) stv(A, i + j * lda, fli_la_normal(seed, (uint64_t)(i + j * m)));
}

/* R (n x n) = the upper triangle of A's leading n x n block, zeros below. */
template <typename T> __global__ void k_upper(int64_t n, const T *A, int64_t lda, T *R, int64_t ldr)
{
    FOR_MN(n, n) R[i + j * ldr] = i <= j ? A[i + j * lda] : (T)0;
}

/* The float32 split of A into up to 3 parts (the CPU's c_split, element
 * for element: the same rounding function, the same subtraction order). */
struct split_out {
    float *p[3];
    int64_t ld[3];
};
__global__ void k_split_basis(int64_t m, int64_t n, const float *A, int64_t lda, int mant, int fp16, int parts,
                              split_out o)
{
    FOR_MN(m, n)
    {
        float rest = A[i + j * lda];
        for (int p = 0; p < parts; p++) {
            const float v = fp16 ? fli_round_fp16(rest) : fli_round_mant(rest, mant);
            o.p[p][i + j * o.ld[p]] = v;
            rest = __fsub_rn(rest, v);
        }
    }
}

/* D (m x n) = S converted element by element (float <-> double). */
template <typename TS, typename TD>
__global__ void k_cast(int64_t m, int64_t n, const TS *S, int64_t lds, TD *D, int64_t ldd)
{
    FOR_MN(m, n) D[i + j * ldd] = (TD)S[i + j * lds];
}

/* Frobenius norm, deterministically: FRO_BLOCKS partials in a fixed grid,
 * then one block reduces them in a fixed order. Pass 0: max |a|; pass 1:
 * sum (a / max)^2 (the CPU's scaled formula). */
#define FRO_BLOCKS 264
template <typename T>
__global__ void k_fro_part(int pass, int64_t m, int64_t n, const T *A, int64_t lda, const double *mx, double *part)
{
    __shared__ double sh[256];
    double acc = 0;
    const double s = pass ? mx[0] : 1;
    const int64_t total = m * n;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e % m, j = e / m;
        const double v = ldv(A, i + j * lda);
        if (pass == 0) {
            const double a = fabs(v);
            acc = a > acc ? a : acc; /* NaN ignored, as on the CPU */
        } else {
            const double q = v / s;
            acc += q * q;
        }
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int w = 128; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) {
            const double a = sh[threadIdx.x], b = sh[threadIdx.x + w];
            sh[threadIdx.x] = pass == 0 ? (b > a ? b : a) : a + b;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

__global__ void k_fro_final(int pass, const double *part, double *res)
{
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double acc = 0;
    for (int b = 0; b < FRO_BLOCKS; b++) acc = pass == 0 ? (part[b] > acc ? part[b] : acc) : acc + part[b];
    if (pass == 0)
        res[0] = acc;
    else
        res[1] = res[0] * sqrt(acc);
}

/* ---- GEMM: views, scales, parts ------------------------------------------------- */

enum { FMT_F32 = 0, FMT_F64, FMT_TF32, FMT_BF16, FMT_F16 };

/* A 32 x 32 tile of the view x(r, l) = src[r sr + l sl] (zero outside
 * R x L) into shared memory, read along whichever index is contiguous. */
template <typename TS>
__device__ __forceinline__ void load_tile(double (*tile)[33], const TS *src, int64_t sr, int64_t sl, int64_t R,
                                          int64_t L, int64_t r0, int64_t l0)
{
    const int tx = threadIdx.x, ty = threadIdx.y;
    if (sl == 1) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int rr = ty + 8 * q;
            const int64_t r = r0 + rr, l = l0 + tx;
            tile[rr][tx] = (r < R && l < L) ? (double)src[r * sr + l] : 0.0;
        }
    } else {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int ll = ty + 8 * q;
            const int64_t r = r0 + tx, l = l0 + ll;
            tile[tx][ll] = (r < R && l < L) ? (double)src[r * sr + l * sl] : 0.0;
        }
    }
}

/* max |x(r, l)| over l, as the bits of a non-negative double (atomicMax
 * orders them as the doubles); NaN counts as 0, as on the CPU. Each block
 * walks many depth tiles with running maxima in registers and issues one
 * atomic per row at the end: one atomic per tile made the rows of a deep
 * operand (512 x 1M) a serial queue of 32768 atomics each. */
template <typename TS>
__global__ void k_rowmax(const TS *src, int64_t sr, int64_t sl, int64_t R, int64_t L, unsigned long long *mx)
{
    __shared__ double tile[32][33];
    for (int64_t r0 = (int64_t)blockIdx.y * 32; r0 < R; r0 += (int64_t)gridDim.y * 32) {
        double acc[4] = {0, 0, 0, 0};
        for (int64_t l0 = (int64_t)blockIdx.x * 32; l0 < L; l0 += (int64_t)gridDim.x * 32) {
            __syncthreads();
            load_tile(tile, src, sr, sl, R, L, r0, l0);
            __syncthreads();
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const double v = fabs(tile[threadIdx.y + 8 * q][threadIdx.x]);
                acc[q] = v > acc[q] ? v : acc[q]; /* NaN never wins */
            }
        }
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int rr = threadIdx.y + 8 * q;
            double v = acc[q];
            for (int o = 16; o > 0; o >>= 1) {
                const double w = __shfl_xor_sync(0xffffffffu, v, o);
                v = w > v ? w : v;
            }
            if (threadIdx.x == 0 && r0 + rr < R && v > 0)
                atomicMax(&mx[r0 + rr], (unsigned long long)__double_as_longlong(v));
        }
    }
}

/* Exponents from the maxima: fp16 (target 15): 15 - ex with mx in
 * [2^(ex-1), 2^ex), 0 for 0 or non-finite; Ozaki (target p): p - ex, 0 for 0. */
__global__ void k_exps(const unsigned long long *mx, int64_t R, int fp16, int target, int *e)
{
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < R; r += (int64_t)gridDim.x * blockDim.x) {
        const double v = __longlong_as_double((long long)mx[r]);
        int ex = 0, s = 0;
        if (v > 0 && (!fp16 || isfinite(v))) {
            frexp(v, &ex);
            s = target - ex;
        }
        e[r] = s;
    }
}

template <int FMT> __device__ __forceinline__ float round_part(float x)
{
    return FMT == FMT_TF32 ? fli_round_mant(x, 10) : FMT == FMT_BF16 ? fli_round_mant(x, 7) : fli_round_fp16(x);
}

/* The parts of the view, scaled by 2^e[r] when e is given: part p of x(r, l)
 * at dst[p * plane + r * Lp + l] (TN layout, zeros for L <= l < Lp), each
 * part the rounding of what the earlier ones left (the CPU's split_parts). */
template <typename TS, int FMT>
__global__ void k_split(const TS *src, int64_t sr, int64_t sl, int64_t R, int64_t L, int64_t Lp, const int *e,
                        int nparts, void *dst, int64_t plane)
{
    __shared__ double tile[32][33];
    const int64_t l0 = (int64_t)blockIdx.x * 32;
    for (int64_t r0 = (int64_t)blockIdx.y * 32; r0 < R; r0 += (int64_t)gridDim.y * 32) {
        __syncthreads();
        load_tile(tile, src, sr, sl, R, L, r0, l0);
        __syncthreads();
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int rr = threadIdx.y + 8 * q;
            const int64_t r = r0 + rr, l = l0 + threadIdx.x;
            if (r >= R || l >= Lp) continue;
            double x = tile[rr][threadIdx.x];
            if (e) x = ldexp(x, e[r]);
            const int64_t o = r * Lp + l;
            if (FMT == FMT_F64) {
                ((double *)dst)[o] = x;
            } else if (FMT == FMT_F32) {
                ((float *)dst)[o] = (float)x;
            } else {
                double rest = x;
                for (int p = 0; p < nparts; p++) {
                    const float v = round_part<FMT>((float)rest);
                    rest -= (double)v;
                    if (FMT == FMT_TF32)
                        ((float *)dst)[p * plane + o] = v;
                    else if (FMT == FMT_BF16)
                        ((__nv_bfloat16 *)dst)[p * plane + o] = __float2bfloat16_rn(v); /* exact */
                    else
                        ((__half *)dst)[p * plane + o] = __float2half_rn(v); /* exact */
                }
            }
        }
    }
}

/* Ozaki: the integers rint(x 2^e[r]) (|.| <= 2^p, exact in double for
 * p <= 53 and already integers beyond) and their residues modulo moduli
 * t0 .. t0+G-1, centred into [-(m/2), (m-1)/2] (int8), plane per modulus. */
struct oz_mods {
    double m[FLI_OZAKI_MAX_MODULI], rcp[FLI_OZAKI_MAX_MODULI];
};

template <typename TS>
__global__ void k_oz_residues(const TS *src, int64_t sr, int64_t sl, int64_t R, int64_t L, int64_t Lp, const int *e,
                              int t0, int G, oz_mods mods, int8_t *dst, int64_t plane)
{
    __shared__ double tile[32][33];
    const int64_t l0 = (int64_t)blockIdx.x * 32;
    for (int64_t r0 = (int64_t)blockIdx.y * 32; r0 < R; r0 += (int64_t)gridDim.y * 32) {
        __syncthreads();
        load_tile(tile, src, sr, sl, R, L, r0, l0);
        __syncthreads();
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int rr = threadIdx.y + 8 * q;
            const int64_t r = r0 + rr, l = l0 + threadIdx.x;
            if (r >= R || l >= Lp) continue;
            const double I = rint(ldexp(tile[rr][threadIdx.x], e[r]));
            for (int g = 0; g < G; g++) {
                const double m = mods.m[t0 + g], rc = mods.rcp[t0 + g];
                /* two exact reduction steps (fma of integers with an
                 * integer result below 2^53), then a final correction */
                double x = fma(-floor(I * rc), m, I);
                x = fma(-floor(x * rc), m, x);
                if (x < 0) x += m;
                if (x >= m) x -= m;
                if (x > floor((m - 1) * 0.5)) x -= m;
                dst[g * plane + r * Lp + l] = (int8_t)(int)x;
            }
        }
    }
}

/* dig (one modulus' plane, m x n, ld m) = (sum of the nb int32 planes S_b,
 * each m x n with ld lds, plane stride ps) mod md, in [0, md). */
__global__ void k_oz_acc(const int32_t *S, int64_t lds, int64_t ps, int nb, int64_t m, int64_t n, int md,
                         uint8_t *dig)
{
    FOR_MN(m, n)
    {
        int r = 0;
        for (int b = 0; b < nb; b++) r = (r + S[b * ps + i + j * lds] % md) % md; /* |r| < md */
        if (r < 0) r += md;
        dig[i + j * m] = (uint8_t)r;
    }
}

struct oz_crt {
    int n;
    int32_t m[FLI_OZAKI_MAX_MODULI];
    uint32_t magic[FLI_OZAKI_MAX_MODULI];
    int16_t inv[FLI_OZAKI_MAX_MODULI][FLI_OZAKI_MAX_MODULI]; /* inv[j][i] = m_j^-1 mod m_i */
};

/* x mod md for 0 <= x < 2^24, md <= 256, by Barrett's reduction with
 * magic = ceil(2^32 / md): the quotient's error x (magic - 2^32/md) / 2^32
 * < x / 2^32 < 1 / md never crosses an integer, so it is exact. */
__device__ __forceinline__ int mod_small(int x, int md, uint32_t magic)
{
    return x - md * (int)__umulhi((uint32_t)x, magic);
}

/* Garner's mixed-radix digits in balanced form, Horner in double (no
 * contraction: the CPU's arithmetic), the scales undone, then the epilogue. */
template <typename TC, int NM>
__global__ void k_oz_crt(const uint8_t *dig, int64_t plane, oz_crt P, const int *ea, const int *eb, double alpha,
                         double beta, TC *C, int64_t ldc, int64_t m, int64_t n)
{
    /* NM > 0: the modulus count fixed at compile time, so the digits stay
     * in registers and the table offsets are constants */
    const int nm = NM > 0 ? NM : P.n;
    FOR_MN(m, n)
    {
        int v[FLI_OZAKI_MAX_MODULI];
        const int64_t e = i + j * m;
#pragma unroll
        for (int a = 0; a < (NM > 0 ? NM : FLI_OZAKI_MAX_MODULI); a++) {
            if (NM == 0 && a >= nm) break;
            const int mi = P.m[a];
            int t = dig[a * plane + e];
#pragma unroll
            for (int b = 0; b < a; b++) t = mod_small((t - v[b] + 2 * mi) * P.inv[b][a], mi, P.magic[a]);
            v[a] = t > mi / 2 ? t - mi : t;
        }
        double x = v[nm - 1];
#pragma unroll
        for (int a = (NM > 0 ? NM : FLI_OZAKI_MAX_MODULI) - 2; a >= 0; a--) {
            if (NM == 0 && a > nm - 2) continue;
            x = __dadd_rn(__dmul_rn(x, (double)P.m[a]), (double)v[a]);
        }
        const double T = ldexp(x, -(ea[i] + eb[j]));
        const double w = __dmul_rn(alpha, T);
        const int64_t c = i + j * ldc;
        stv(C, c, beta == 0 ? w : __dadd_rn(w, __dmul_rn(beta, ldv(C, c))));
    }
}

/* C = alpha T + beta C with T = P (float) or D (double) or 0 (both NULL),
 * scaled by 2^-(ea[i] + eb[j]) when the scales are given. */
template <typename TC>
__global__ void k_epi(const float *P, const double *D, const int *ea, const int *eb, double alpha, double beta,
                      TC *C, int64_t ldc, int64_t m, int64_t n)
{
    FOR_MN(m, n)
    {
        const int64_t e = i + j * m;
        double T = P ? (double)P[e] : D ? D[e] : 0.0;
        if (ea) T = ldexp(T, -(ea[i] + eb[j]));
        const double w = __dmul_rn(alpha, T);
        const int64_t c = i + j * ldc;
        stv(C, c, beta == 0 ? w : __dadd_rn(w, __dmul_rn(beta, ldv(C, c))));
    }
}

/* fp16x3_kahan: P += Q with Kahan's compensation K (the CPU's recurrence). */
__global__ void k_kahan(float *P, const float *Q, float *K, int64_t len, int first)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += (int64_t)gridDim.x * blockDim.x) {
        const float c = first ? 0.0f : K[i];
        const float y = __fsub_rn(Q[i], c);
        const float t = __fadd_rn(P[i], y);
        const float d = __fsub_rn(t, P[i]);
        K[i] = __fsub_rn(d, y);
        P[i] = t;
    }
}

/* tf32x6: D (double) = (first ? 0 : D) + P_0 + ... + P_{nb-1}, the float32
 * products of the K chunks (planes of len), added in order. */
__global__ void k_addf64(double *D, const float *P, int nb, int64_t len, int first)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += (int64_t)gridDim.x * blockDim.x) {
        double d = first ? 0.0 : D[i];
        for (int b = 0; b < nb; b++) d = __dadd_rn(d, (double)P[b * len + i]);
        D[i] = d;
    }
}

/* ---- GEMM driver ------------------------------------------------------------------ */

/* op(A) as rows r < m, depth l < k; op(B)^T as rows r < n, depth l < k. */
typedef struct view {
    const void *p;
    int64_t sr, sl, R;
} view;

static inline int64_t round_up(int64_t x, int64_t q) { return (x + q - 1) / q * q; }
static inline size_t al256(size_t b) { return (b + 255) & ~(size_t)255; }

static dim3 grid_tiles(int64_t R, int64_t Lp)
{
    int64_t gx = (Lp + 31) / 32, gy = (R + 31) / 32;
    if (gy > 65535) gy = 65535;
    return dim3((unsigned)(gx < 1 ? 1 : gx), (unsigned)(gy < 1 ? 1 : gy));
}

static fl_status launch_rowmax(fli_la *la, const view *v, int64_t k, unsigned long long *mx, int fp16, int target,
                               int *e)
{
    cudaStream_t s = STATE(la)->stream;
    CU("gemm", cudaMemsetAsync(mx, 0, sizeof(unsigned long long) * (size_t)v->R, s));
    if (k > 0) {
        /* about 2048 blocks: rows tiles first, depth tiles to fill the rest */
        const int64_t gy = (v->R + 31) / 32 > 65535 ? 65535 : (v->R + 31) / 32, lt = (k + 31) / 32;
        int64_t gx = (2048 + gy - 1) / gy;
        gx = gx > lt ? lt : gx < 1 ? 1 : gx;
        const dim3 g((unsigned)gx, (unsigned)gy), b(32, 8);
        if (IS64(la))
            k_rowmax<double><<<g, b, 0, s>>>((const double *)v->p, v->sr, v->sl, v->R, k, mx);
        else
            k_rowmax<float><<<g, b, 0, s>>>((const float *)v->p, v->sr, v->sl, v->R, k, mx);
        LAUNCHED("gemm", "row maxima kernel");
    }
    k_exps<<<grid1(v->R, 256), 256, 0, s>>>(mx, v->R, fp16, target, e);
    LAUNCHED("gemm", "scale exponents kernel");
    return FL_STATUS_OK;
}

template <typename TS>
static void launch_split_t(int fmt, const view *v, int64_t k, int64_t kp, const int *e, int nparts, void *dst,
                           cudaStream_t s)
{
    const dim3 g = grid_tiles(v->R, kp), b(32, 8);
    const TS *src = (const TS *)v->p;
    const int64_t plane = v->R * kp;
    switch (fmt) {
    case FMT_F32: k_split<TS, FMT_F32><<<g, b, 0, s>>>(src, v->sr, v->sl, v->R, k, kp, e, nparts, dst, plane); break;
    case FMT_F64: k_split<TS, FMT_F64><<<g, b, 0, s>>>(src, v->sr, v->sl, v->R, k, kp, e, nparts, dst, plane); break;
    case FMT_TF32: k_split<TS, FMT_TF32><<<g, b, 0, s>>>(src, v->sr, v->sl, v->R, k, kp, e, nparts, dst, plane); break;
    case FMT_BF16: k_split<TS, FMT_BF16><<<g, b, 0, s>>>(src, v->sr, v->sl, v->R, k, kp, e, nparts, dst, plane); break;
    default: k_split<TS, FMT_F16><<<g, b, 0, s>>>(src, v->sr, v->sl, v->R, k, kp, e, nparts, dst, plane); break;
    }
}

static fl_status launch_split(fli_la *la, int fmt, const view *v, int64_t k, int64_t kp, const int *e, int nparts,
                              void *dst)
{
    cudaStream_t s = STATE(la)->stream;
    if (IS64(la))
        launch_split_t<double>(fmt, v, k, kp, e, nparts, dst, s);
    else
        launch_split_t<float>(fmt, v, k, kp, e, nparts, dst, s);
    LAUNCHED("gemm", "split kernel");
    return FL_STATUS_OK;
}

static fl_status launch_epi(fli_la *la, const float *P, const double *D, const int *ea, const int *eb, double alpha,
                            double beta, void *C, int64_t ldc, int64_t m, int64_t n)
{
    cudaStream_t s = STATE(la)->stream;
    if (IS64(la))
        k_epi<double><<<grid_mn(m, n), 256, 0, s>>>(P, D, ea, eb, alpha, beta, (double *)C, ldc, m, n);
    else
        k_epi<float><<<grid_mn(m, n), 256, 0, s>>>(P, D, ea, eb, alpha, beta, (float *)C, ldc, m, n);
    LAUNCHED("gemm", "epilogue kernel");
    return FL_STATUS_OK;
}

/* A split variant's plan: the parts' format, the pairs (i, j) of parts
 * multiplied, smallest first (linalg_cpu.c's order), and how the products
 * are combined. */
enum { COMB_ACC = 0, COMB_KAHAN, COMB_F64 };
typedef struct gplan {
    int fmt, parts, npairs, comb;
    int pair[9][2];
} gplan;

static int plan_of(int variant, int dt64, gplan *p)
{
    static const gplan plans[FLI_GEMM_NVARIANTS] = {
        /* FP64 (float32 data) */ {FMT_F64, 1, 1, COMB_ACC, {{0, 0}}},
        /* FP32 (float64 data) */ {FMT_F32, 1, 1, COMB_ACC, {{0, 0}}},
        /* TF32 */ {FMT_TF32, 1, 1, COMB_ACC, {{0, 0}}},
        /* 3XTF32 */ {FMT_TF32, 2, 3, COMB_ACC, {{1, 0}, {0, 1}, {0, 0}}},
        /* BF16 */ {FMT_BF16, 1, 1, COMB_ACC, {{0, 0}}},
        /* 3XBF16 */ {FMT_BF16, 2, 3, COMB_ACC, {{1, 0}, {0, 1}, {0, 0}}},
        /* FP16 */ {FMT_F16, 1, 1, COMB_ACC, {{0, 0}}},
        /* 3XFP16 */ {FMT_F16, 2, 3, COMB_ACC, {{1, 0}, {0, 1}, {0, 0}}},
        /* FP16X9 */
        {FMT_F16, 3, 9, COMB_ACC, {{2, 2}, {2, 1}, {1, 2}, {2, 0}, {1, 1}, {0, 2}, {1, 0}, {0, 1}, {0, 0}}},
        /* FP16X3_KAHAN */ {FMT_F16, 2, 3, COMB_KAHAN, {{0, 0}, {0, 1}, {1, 0}}},
        /* TF32X6 */ {FMT_TF32, 3, 6, COMB_F64, {{2, 0}, {1, 1}, {0, 2}, {1, 0}, {0, 1}, {0, 0}}},
        /* OZAKI: not a split plan */ {0, 0, 0, 0, {{0, 0}}},
    };
    (void)dt64;
    if (variant < 0 || variant >= FLI_GEMM_OZAKI_INT8) return 0;
    *p = plans[variant];
    return 1;
}

static fl_status product(fli_la *la, cublasHandle_t h, int fmt, int64_t m, int64_t n, int64_t kp, const void *Ap,
                         const void *Bp, float beta, void *P)
{
    const float one = 1.0f;
    cudaDataType_t t = CUDA_R_32F;
    cublasComputeType_t ct = CUBLAS_COMPUTE_32F;
    if (fmt == FMT_F64) {
        const double done = 1.0, dz = 0.0;
        BL("gemm", cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)kp, &done, Ap, CUDA_R_64F, (int)kp,
                                Bp, CUDA_R_64F, (int)kp, &dz, P, CUDA_R_64F, (int)m, CUBLAS_COMPUTE_64F,
                                CUBLAS_GEMM_DEFAULT));
        return FL_STATUS_OK;
    }
    if (fmt == FMT_TF32) ct = CUBLAS_COMPUTE_32F_FAST_TF32;
    if (fmt == FMT_BF16) t = CUDA_R_16BF;
    if (fmt == FMT_F16) t = CUDA_R_16F;
    BL("gemm", cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)kp, &one, Ap, t, (int)kp, Bp, t, (int)kp,
                            &beta, P, CUDA_R_32F, (int)m, ct, CUBLAS_GEMM_DEFAULT));
    return FL_STATUS_OK;
}

/* tf32x6 accumulates each product in float32 over K chunks of kc and adds
 * the chunks in float64. The tensor cores' float32 accumulation loses more
 * than round-to-nearest would (Fasi, Higham, Mikaitis and Pranesh, 2021,
 * found no round-to-nearest in their adders), and the loss grows with the
 * accumulation's length: bench_linalg on the H100 at 512 x 512 x 2^20 gave
 * tf32x6 in one pass 3.5e-4, as coarse as plain tf32 (4.4e-4), and 4.8e-6
 * in chunks. Chunks of 2048, fewer when their planes would pass 2 GiB. */
#define TF6_KC 2048
static void tf6_chunks(int64_t kp, size_t mn, int64_t *kc, int64_t *full, int64_t *rem)
{
    int64_t c = kp < TF6_KC ? kp : TF6_KC;
    while (c < kp && (size_t)((kp + c - 1) / c) * mn * 4 > ((size_t)2 << 30)) c *= 2;
    if (c > kp) c = kp;
    *kc = c;
    *full = kp / c;
    *rem = kp - *full * c;
}

/* P planes (m x n float32 each) = the products of the K chunks of one pair of
 * TN parts (tf32, float32 accumulation). */
static fl_status product_chunks(fli_la *la, cublasHandle_t h, int64_t m, int64_t n, int64_t kp, int64_t kc,
                                int64_t full, int64_t rem, const float *Ap, const float *Bp, float *P)
{
    const float one = 1.0f, zero = 0.0f;
    const int64_t ps = m * n;
    if (full > 0)
        BL("gemm tf32x6", cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)kc, &one, Ap,
                                                     CUDA_R_32F, (int)kp, kc, Bp, CUDA_R_32F, (int)kp, kc, &zero, P,
                                                     CUDA_R_32F, (int)m, ps, (int)full,
                                                     CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
    if (rem > 0)
        BL("gemm tf32x6", cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)rem, &one, Ap + full * kc,
                                       CUDA_R_32F, (int)kp, Bp + full * kc, CUDA_R_32F, (int)kp, &zero, P + full * ps,
                                       CUDA_R_32F, (int)m, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
    return FL_STATUS_OK;
}

static size_t fmt_size(int fmt) { return fmt == FMT_F64 ? 8 : (fmt == FMT_BF16 || fmt == FMT_F16) ? 2 : 4; }

/* The scratch of one split product, carved from one allocation. */
static fl_status split_gemm(fli_la *la, cublasHandle_t h, const gplan *pl, const view *va, const view *vb, int64_t m,
                            int64_t n, int64_t k, double alpha, double beta, void *C, int64_t ldc, char *buf)
{
    cudaStream_t s = STATE(la)->stream;
    const int64_t kp = round_up(k, 16);
    const size_t fs = fmt_size(pl->fmt), mn = (size_t)m * (size_t)n;
    int64_t kc6 = kp, full6 = 1, rem6 = 0;
    if (pl->comb == COMB_F64) tf6_chunks(kp, mn, &kc6, &full6, &rem6);
    const int64_t nb6 = full6 + (rem6 > 0);
    char *q = buf;
    void *pa = q;
    q += al256(fs * (size_t)pl->parts * (size_t)m * (size_t)kp);
    void *pb = q;
    q += al256(fs * (size_t)pl->parts * (size_t)n * (size_t)kp);
    int *ea = NULL, *eb = NULL;
    if (pl->fmt == FMT_F16) {
        unsigned long long *mx = (unsigned long long *)q;
        q += al256(8 * (size_t)(m + n));
        ea = (int *)q;
        q += al256(sizeof(int) * (size_t)m);
        eb = (int *)q;
        q += al256(sizeof(int) * (size_t)n);
        TRY(launch_rowmax(la, va, k, mx, 1, 15, ea));
        TRY(launch_rowmax(la, vb, k, mx + m, 1, 15, eb));
    }
    float *P = NULL, *Q = NULL, *K = NULL;
    double *D = NULL;
    if (pl->fmt == FMT_F64) {
        D = (double *)q;
        q += al256(8 * mn);
    } else {
        P = (float *)q;
        q += al256(4 * mn * (size_t)nb6);
        if (pl->comb == COMB_KAHAN) {
            Q = (float *)q;
            q += al256(4 * mn);
        }
        if (pl->comb == COMB_KAHAN) {
            K = (float *)q;
            q += al256(4 * mn);
        }
        if (pl->comb == COMB_F64) {
            D = (double *)q;
            q += al256(8 * mn);
        }
    }
    TRY(launch_split(la, pl->fmt, va, k, kp, ea, pl->parts, pa));
    TRY(launch_split(la, pl->fmt, vb, k, kp, eb, pl->parts, pb));
    const size_t sa = fs * (size_t)m * (size_t)kp, sb = fs * (size_t)n * (size_t)kp;
#define PART_A(i) ((const char *)pa + (size_t)(i) * sa)
#define PART_B(j) ((const char *)pb + (size_t)(j) * sb)
    if (pl->fmt == FMT_F64) {
        TRY(product(la, h, FMT_F64, m, n, kp, PART_A(0), PART_B(0), 0.0f, D));
        return launch_epi(la, NULL, D, NULL, NULL, alpha, beta, C, ldc, m, n);
    }
    const unsigned g = grid1((int64_t)mn, 256);
    for (int t = 0; t < pl->npairs; t++) {
        const int i = pl->pair[t][0], j = pl->pair[t][1];
        if (pl->comb == COMB_ACC) {
            TRY(product(la, h, pl->fmt, m, n, kp, PART_A(i), PART_B(j), t ? 1.0f : 0.0f, P));
        } else if (pl->comb == COMB_KAHAN) {
            TRY(product(la, h, pl->fmt, m, n, kp, PART_A(i), PART_B(j), 0.0f, t ? Q : P));
            if (t) {
                k_kahan<<<g, 256, 0, s>>>(P, Q, K, (int64_t)mn, t == 1);
                LAUNCHED("gemm", "Kahan sum kernel");
            }
        } else {
            TRY(product_chunks(la, h, m, n, kp, kc6, full6, rem6, (const float *)PART_A(i), (const float *)PART_B(j),
                               P));
            k_addf64<<<g, 256, 0, s>>>(D, P, (int)nb6, (int64_t)mn, t == 0);
            LAUNCHED("gemm", "float64 sum kernel");
        }
    }
#undef PART_A
#undef PART_B
    if (pl->comb == COMB_F64) return launch_epi(la, NULL, D, ea, eb, alpha, beta, C, ldc, m, n);
    return launch_epi(la, P, NULL, ea, eb, alpha, beta, C, ldc, m, n);
}

static size_t split_bytes(const gplan *pl, int64_t m, int64_t n, int64_t k)
{
    const int64_t kp = round_up(k, 16);
    const size_t fs = fmt_size(pl->fmt), mn = (size_t)m * (size_t)n;
    size_t b = al256(fs * (size_t)pl->parts * (size_t)m * (size_t)kp) +
               al256(fs * (size_t)pl->parts * (size_t)n * (size_t)kp);
    if (pl->fmt == FMT_F16)
        b += al256(8 * (size_t)(m + n)) + al256(sizeof(int) * (size_t)m) + al256(sizeof(int) * (size_t)n);
    if (pl->fmt == FMT_F64) return b + al256(8 * mn);
    int64_t kc6 = kp, full6 = 1, rem6 = 0;
    if (pl->comb == COMB_F64) tf6_chunks(kp, mn, &kc6, &full6, &rem6);
    b += al256(4 * mn * (size_t)(full6 + (rem6 > 0)));
    if (pl->comb == COMB_KAHAN) b += 2 * al256(4 * mn);
    if (pl->comb == COMB_F64) b += al256(8 * mn);
    return b;
}

/* ---- Ozaki scheme II ------------------------------------------------------------ */

/* int8 x int8 -> int32 sums are exact while 128 * 128 * K < 2^31. */
#define OZ_KCHUNK ((int64_t)131056) /* the largest multiple of 16 below 2^17 */
/* residue planes of the operands made in one pass (each pass re-reads op(A)
 * and op(B): 4 GB of float32 at 512 x 512 x 2^20) */
#define OZ_RES_BUDGET ((size_t)4 << 30)

static fl_status ozaki_gemm(fli_la *la, cublasHandle_t h, int nmod, const view *va, const view *vb, int64_t m,
                            int64_t n, int64_t k, double alpha, double beta, void *C, int64_t ldc)
{
    cudaStream_t s = STATE(la)->stream;
    const int p = fli_ozaki_bits(k, nmod);
    if (p < 2)
        return FAIL(FL_STATUS_INVALID_ARG, "gemm ozaki_int8", "%d moduli leave no bits for K=%lld: use more moduli",
                    nmod, (long long)k);
    const int64_t kp = round_up(k, 16), mp = round_up(m, 16);
    const size_t per_mod = (size_t)(m + n) * (size_t)kp;
    int G = (int)(OZ_RES_BUDGET / (per_mod ? per_mod : 1));
    if (G < 1) G = 1;
    if (G > nmod) G = nmod;
    /* K in nb chunks of kc (a multiple of 16, <= OZ_KCHUNK for exact int32
     * sums), one strided-batched GEMM per modulus with a plane per chunk:
     * also the parallelism of a small output (512 x 512 is 16 tiles of
     * 128 x 128 for 132 SMs), so chunks are made until there are about two
     * tiles per SM, down to kc = 4096 */
    const int64_t tiles = ((m + 127) / 128) * ((n + 127) / 128);
    int64_t nb = (kp + OZ_KCHUNK - 1) / OZ_KCHUNK, want = (2 * STATE(la)->sm_count + tiles - 1) / tiles;
    if (want > kp / 4096) want = kp / 4096;
    if (nb < want) nb = want;
    const int64_t kc = round_up((kp + nb - 1) / nb, 16), full = kp / kc, rem = kp - full * kc;
    nb = full + (rem > 0);
    const size_t bytes = al256(8 * (size_t)(m + n)) + al256(sizeof(int) * (size_t)(m + n)) +
                         al256((size_t)G * per_mod) + al256(4 * (size_t)mp * (size_t)n * (size_t)nb) +
                         al256((size_t)nmod * (size_t)m * (size_t)n);
    char *buf = NULL;
    TRY(dev_alloc(la, "gemm ozaki_int8", bytes, (void **)&buf));
    fl_status st = FL_STATUS_OK;
    {
        char *q = buf;
        unsigned long long *mx = (unsigned long long *)q;
        q += al256(8 * (size_t)(m + n));
        int *ea = (int *)q, *eb = ea + m;
        q += al256(sizeof(int) * (size_t)(m + n));
        int8_t *res = (int8_t *)q;
        q += al256((size_t)G * per_mod);
        int32_t *S = (int32_t *)q;
        q += al256(4 * (size_t)mp * (size_t)n * (size_t)nb);
        uint8_t *dig = (uint8_t *)q;
        const int64_t plane_d = m * n;

        oz_mods mods;
        oz_crt crt;
        memset(&crt, 0, sizeof crt);
        crt.n = nmod;
        for (int i = 0; i < FLI_OZAKI_MAX_MODULI; i++) {
            mods.m[i] = fli_ozaki_moduli[i];
            mods.rcp[i] = 1.0 / fli_ozaki_moduli[i];
            crt.m[i] = fli_ozaki_moduli[i];
            crt.magic[i] = (uint32_t)((((uint64_t)1 << 32) + (uint64_t)fli_ozaki_moduli[i] - 1) / (uint64_t)fli_ozaki_moduli[i]);
        }
        for (int i = 0; i < nmod; i++)
            for (int j = 0; j < i; j++) {
                const int32_t mi = fli_ozaki_moduli[i], mj = fli_ozaki_moduli[j] % mi;
                int32_t x = 1;
                while ((int64_t)mj * x % mi != 1) x++;
                crt.inv[j][i] = (int16_t)x;
            }

        if ((st = launch_rowmax(la, va, k, mx, 0, p, ea)) || (st = launch_rowmax(la, vb, k, mx + m, 0, p, eb)))
            goto done;
        for (int t0 = 0; t0 < nmod; t0 += G) {
            const int g = nmod - t0 < G ? nmod - t0 : G;
            /* planes: A's residues for modulus t0+i at res + i * m kp, B's after all of A's */
            int8_t *ra = res, *rb = res + (size_t)g * (size_t)m * (size_t)kp;
            const dim3 b(32, 8);
            if (IS64(la)) {
                k_oz_residues<double><<<grid_tiles(m, kp), b, 0, s>>>((const double *)va->p, va->sr, va->sl, m, k,
                                                                      kp, ea, t0, g, mods, ra, m * kp);
                k_oz_residues<double><<<grid_tiles(n, kp), b, 0, s>>>((const double *)vb->p, vb->sr, vb->sl, n, k,
                                                                      kp, eb, t0, g, mods, rb, n * kp);
            } else {
                k_oz_residues<float><<<grid_tiles(m, kp), b, 0, s>>>((const float *)va->p, va->sr, va->sl, m, k, kp,
                                                                     ea, t0, g, mods, ra, m * kp);
                k_oz_residues<float><<<grid_tiles(n, kp), b, 0, s>>>((const float *)vb->p, vb->sr, vb->sl, n, k, kp,
                                                                     eb, t0, g, mods, rb, n * kp);
            }
            {
                cudaError_t e_ = cudaGetLastError();
                if (e_ != cudaSuccess) {
                    st = cuda_st(la, __LINE__, "gemm ozaki_int8", "residue kernel", e_);
                    goto done;
                }
            }
            for (int i = 0; i < g; i++) {
                const int t = t0 + i;
                const int8_t *a = ra + (size_t)i * (size_t)m * (size_t)kp, *bb = rb + (size_t)i * (size_t)n * (size_t)kp;
                const int32_t one = 1, zero = 0;
                const int64_t ps = mp * n;
                cublasStatus_t bs = CUBLAS_STATUS_SUCCESS;
                if (full > 0)
                    bs = cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)kc, &one, a,
                                                    CUDA_R_8I, (int)kp, kc, bb, CUDA_R_8I, (int)kp, kc, &zero, S,
                                                    CUDA_R_32I, (int)mp, ps, (int)full, CUBLAS_COMPUTE_32I,
                                                    CUBLAS_GEMM_DEFAULT);
                if (bs == CUBLAS_STATUS_SUCCESS && rem > 0)
                    bs = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)rem, &one, a + full * kc,
                                      CUDA_R_8I, (int)kp, bb + full * kc, CUDA_R_8I, (int)kp, &zero, S + full * ps,
                                      CUDA_R_32I, (int)mp, CUBLAS_COMPUTE_32I, CUBLAS_GEMM_DEFAULT);
                if (bs != CUBLAS_STATUS_SUCCESS) {
                    st = FAIL(FL_STATUS_CUDA_ERROR, "gemm ozaki_int8", "cublasGemm*Ex (int8, modulus %d): %s",
                              fli_ozaki_moduli[t], cublasGetStatusString(bs));
                    goto done;
                }
                k_oz_acc<<<grid_mn(m, n), 256, 0, s>>>(S, mp, ps, (int)nb, m, n, fli_ozaki_moduli[t],
                                                       dig + (size_t)t * (size_t)plane_d);
                cudaError_t e_ = cudaGetLastError();
                if (e_ != cudaSuccess) {
                    st = cuda_st(la, __LINE__, "gemm ozaki_int8", "residue sum kernel", e_);
                    goto done;
                }
            }
        }
        const dim3 gm = grid_mn(m, n);
        if (IS64(la) && nmod == FLI_OZAKI_DEFAULT_MODULI)
            k_oz_crt<double, FLI_OZAKI_DEFAULT_MODULI>
                <<<gm, 256, 0, s>>>(dig, plane_d, crt, ea, eb, alpha, beta, (double *)C, ldc, m, n);
        else if (IS64(la))
            k_oz_crt<double, 0><<<gm, 256, 0, s>>>(dig, plane_d, crt, ea, eb, alpha, beta, (double *)C, ldc, m, n);
        else if (nmod == FLI_OZAKI_DEFAULT_MODULI)
            k_oz_crt<float, FLI_OZAKI_DEFAULT_MODULI>
                <<<gm, 256, 0, s>>>(dig, plane_d, crt, ea, eb, alpha, beta, (float *)C, ldc, m, n);
        else
            k_oz_crt<float, 0><<<gm, 256, 0, s>>>(dig, plane_d, crt, ea, eb, alpha, beta, (float *)C, ldc, m, n);
        cudaError_t e_ = cudaGetLastError();
        if (e_ != cudaSuccess) st = cuda_st(la, __LINE__, "gemm ozaki_int8", "CRT kernel", e_);
    }
done:
    dev_free(la, buf);
    return st;
}

static fl_status g_gemm(fli_la *la, int variant, int moduli, int ta, int tb, int64_t m, int64_t n, int64_t k,
                        double alpha, const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
                        int64_t ldc)
{
    if (variant < 0 || variant >= FLI_GEMM_NVARIANTS)
        return FAIL(FL_STATUS_INVALID_ARG, "gemm", "unknown variant %d", variant);
    if (m == 0 || n == 0) return FL_STATUS_OK;
    const int64_t kp = round_up(k, 16);
    TRY(fits32(la, "gemm", m, n, kp));
    TRY(fits32(la, "gemm", lda, ldb, ldc));
    SETDEV("gemm");
    cublasHandle_t h;
    TRY(blas_get(la, "gemm", &h));
    const cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (k > 0 && variant == FLI_GEMM_FP32 && !IS64(la)) {
        const float a = (float)alpha, b = (float)beta;
        BL("gemm fp32", cublasSgemm(h, oa, ob, (int)m, (int)n, (int)k, &a, (const float *)A, (int)lda,
                                    (const float *)B, (int)ldb, &b, (float *)C, (int)ldc));
        return FL_STATUS_OK;
    }
    if (k > 0 && variant == FLI_GEMM_FP64 && IS64(la)) {
        BL("gemm fp64", cublasDgemm(h, oa, ob, (int)m, (int)n, (int)k, &alpha, (const double *)A, (int)lda,
                                    (const double *)B, (int)ldb, &beta, (double *)C, (int)ldc));
        return FL_STATUS_OK;
    }
    if (k == 0) return launch_epi(la, NULL, NULL, NULL, NULL, alpha, beta, C, ldc, m, n);
    view va = {A, ta ? lda : 1, ta ? 1 : lda, m};
    view vb = {B, tb ? 1 : ldb, tb ? ldb : 1, n};
    if (variant == FLI_GEMM_OZAKI_INT8) {
        int nm = moduli <= 0 ? FLI_OZAKI_DEFAULT_MODULI : moduli;
        if (nm < FLI_OZAKI_MIN_MODULI || nm > FLI_OZAKI_MAX_MODULI)
            return FAIL(FL_STATUS_INVALID_ARG, "gemm ozaki_int8", "moduli=%d, expected %d..%d", moduli,
                        FLI_OZAKI_MIN_MODULI, FLI_OZAKI_MAX_MODULI);
        return ozaki_gemm(la, h, nm, &va, &vb, m, n, k, alpha, beta, C, ldc);
    }
    gplan pl;
    if (!plan_of(variant, IS64(la), &pl)) return FAIL(FL_STATUS_INTERNAL, "gemm", "variant %d has no plan", variant);
    char *buf = NULL;
    TRY(dev_alloc(la, "gemm", split_bytes(&pl, m, n, k), (void **)&buf));
    fl_status st = split_gemm(la, h, &pl, &va, &vb, m, n, k, alpha, beta, C, ldc, buf);
    dev_free(la, buf);
    return st;
}

/* ---- the other operations ----------------------------------------------------------- */

static fl_status g_alloc(fli_la *la, size_t bytes, void **p) { return dev_alloc(la, "alloc", bytes, p); }
static void g_release(fli_la *la, void *p) { dev_free(la, p); }

static fl_status g_put(fli_la *la, void *dst, const void *src, size_t bytes)
{
    if (!bytes) return FL_STATUS_OK;
    CU("put", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, STATE(la)->stream));
    return FL_STATUS_OK;
}

static fl_status g_get(fli_la *la, void *dst, const void *src, size_t bytes)
{
    if (!bytes) return FL_STATUS_OK;
    CU("get", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, STATE(la)->stream));
    CU("get", cudaStreamSynchronize(STATE(la)->stream));
    return FL_STATUS_OK;
}

static fl_status g_geam(fli_la *la, int ta, int tb, int64_t m, int64_t n, double alpha, const void *A, int64_t lda,
                        double beta, const void *B, int64_t ldb, void *C, int64_t ldc)
{
    if ((ta && alpha != 0 && A == C) || (tb && beta != 0 && B == C))
        return FAIL(FL_STATUS_INTERNAL, "geam", "a transposed operand may not be the output");
    if (m == 0 || n == 0) return FL_STATUS_OK;
    SETDEV("geam");
    cudaStream_t s = STATE(la)->stream;
    if (IS64(la))
        k_geam<double><<<grid_mn(m, n), 256, 0, s>>>(ta, tb, m, n, alpha, (const double *)A, lda, beta,
                                                     (const double *)B, ldb, (double *)C, ldc);
    else
        k_geam<float><<<grid_mn(m, n), 256, 0, s>>>(ta, tb, m, n, alpha, (const float *)A, lda, beta,
                                                    (const float *)B, ldb, (float *)C, ldc);
    LAUNCHED("geam", "kernel launch");
    return FL_STATUS_OK;
}

static fl_status g_fill(fli_la *la, int64_t m, int64_t n, void *A, int64_t lda, double off, double dg)
{
    if (m == 0 || n == 0) return FL_STATUS_OK;
    SETDEV("fill");
    cudaStream_t s = STATE(la)->stream;
    if (IS64(la))
        k_fill<double><<<grid_mn(m, n), 256, 0, s>>>(m, n, (double *)A, lda, off, dg);
    else
        k_fill<float><<<grid_mn(m, n), 256, 0, s>>>(m, n, (float *)A, lda, off, dg);
    LAUNCHED("fill", "kernel launch");
    return FL_STATUS_OK;
}

static fl_status g_shift_diag(fli_la *la, int64_t n, void *A, int64_t lda, double v)
{
    if (n == 0) return FL_STATUS_OK;
    SETDEV("shift_diag");
    cudaStream_t s = STATE(la)->stream;
    if (IS64(la))
        k_shift<double><<<grid1(n, 256), 256, 0, s>>>(n, (double *)A, lda, v);
    else
        k_shift<float><<<grid1(n, 256), 256, 0, s>>>(n, (float *)A, lda, v);
    LAUNCHED("shift_diag", "kernel launch");
    return FL_STATUS_OK;
}

static fl_status g_fro(fli_la *la, int64_t m, int64_t n, const void *A, int64_t lda, double *out)
{
    *out = 0;
    if (m == 0 || n == 0) return FL_STATUS_OK;
    SETDEV("fro");
    cudaStream_t s = STATE(la)->stream;
    double *w = NULL;
    TRY(dev_alloc(la, "fro", sizeof(double) * (FRO_BLOCKS + 2), (void **)&w));
    double *res = w + FRO_BLOCKS, host[2] = {0, 0};
    fl_status st = FL_STATUS_OK;
    cudaError_t e = cudaSuccess;
    for (int pass = 0; pass < 2 && e == cudaSuccess; pass++) {
        if (IS64(la))
            k_fro_part<double><<<FRO_BLOCKS, 256, 0, s>>>(pass, m, n, (const double *)A, lda, res, w);
        else
            k_fro_part<float><<<FRO_BLOCKS, 256, 0, s>>>(pass, m, n, (const float *)A, lda, res, w);
        k_fro_final<<<1, 32, 0, s>>>(pass, w, res);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaMemcpyAsync(host, res, sizeof host, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    if (e != cudaSuccess) st = cuda_st(la, __LINE__, "fro", "reduction", e);
    dev_free(la, w);
    if (st) return st;
    /* max 0 or not finite: the max is the answer (the CPU's rule) */
    *out = (host[0] == 0 || !isfinite(host[0])) ? host[0] : host[1];
    return FL_STATUS_OK;
}

static fl_status g_diag(fli_la *la, int64_t n, const void *A, int64_t lda, double *out)
{
    if (n == 0) return FL_STATUS_OK;
    SETDEV("diag");
    cudaStream_t s = STATE(la)->stream;
    double *d = NULL;
    TRY(dev_alloc(la, "diag", sizeof(double) * (size_t)n, (void **)&d));
    if (IS64(la))
        k_diag<double><<<grid1(n, 256), 256, 0, s>>>(n, (const double *)A, lda, d);
    else
        k_diag<float><<<grid1(n, 256), 256, 0, s>>>(n, (const float *)A, lda, d);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpyAsync(out, d, sizeof(double) * (size_t)n, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    dev_free(la, d);
    if (e != cudaSuccess) return cuda_st(la, __LINE__, "diag", "copy", e);
    return FL_STATUS_OK;
}

/* cuSOLVER's potrf with its info left in the caller's device int: no copy,
 * no synchronisation (the workspace is freed stream-ordered). */
static fl_status g_potrf_dev(fli_la *la, int64_t n, void *A, int64_t lda, void *info_la)
{
    TRY(fits32(la, "potrf", n, lda, 0));
    SETDEV("potrf");
    if (n == 0) {
        CU("potrf", cudaMemsetAsync(info_la, 0, sizeof(int), STATE(la)->stream));
        return FL_STATUS_OK;
    }
    cusolverDnHandle_t h;
    TRY(solver_get(la, "potrf", &h));
    int lw = 0;
    const int nn = (int)n, l = (int)lda;
    const cublasFillMode_t lo = CUBLAS_FILL_MODE_LOWER;
    if (IS64(la))
        SO("potrf", cusolverDnDpotrf_bufferSize(h, lo, nn, (double *)A, l, &lw));
    else
        SO("potrf", cusolverDnSpotrf_bufferSize(h, lo, nn, (float *)A, l, &lw));
    void *w = NULL;
    TRY(dev_alloc(la, "potrf", fli_la_esize(la) * (size_t)(lw + 1), &w));
    cusolverStatus_t cs = IS64(la) ? cusolverDnDpotrf(h, lo, nn, (double *)A, l, (double *)w, lw, (int *)info_la)
                                   : cusolverDnSpotrf(h, lo, nn, (float *)A, l, (float *)w, lw, (int *)info_la);
    dev_free(la, w);
    if (cs != CUSOLVER_STATUS_SUCCESS)
        return FAIL(FL_STATUS_CUDA_ERROR, "potrf", "cusolverDn?potrf: cusolver status %d", (int)cs);
    return FL_STATUS_OK;
}

/* potrf_dev, then its info brought back (one synchronisation). */
static fl_status g_potrf(fli_la *la, int64_t n, void *A, int64_t lda, int *info)
{
    *info = 0;
    if (n == 0) return FL_STATUS_OK;
    int *dinfo = NULL, hinfo = 0;
    TRY(dev_alloc(la, "potrf", 16, (void **)&dinfo));
    fl_status st = g_potrf_dev(la, n, A, lda, dinfo);
    cudaError_t e = cudaSuccess;
    if (!st) e = cudaMemcpyAsync(&hinfo, dinfo, sizeof(int), cudaMemcpyDeviceToHost, STATE(la)->stream);
    if (!st && e == cudaSuccess) e = cudaStreamSynchronize(STATE(la)->stream);
    dev_free(la, dinfo);
    if (st) return st;
    if (e != cudaSuccess) return cuda_st(la, __LINE__, "potrf", "info copy", e);
    if (hinfo < 0) return FAIL(FL_STATUS_INTERNAL, "potrf", "argument %d was invalid", -hinfo);
    *info = hinfo;
    return FL_STATUS_OK;
}

static fl_status g_trsm(fli_la *la, int trans, int64_t m, int64_t n, const void *L, int64_t ldl, void *B, int64_t ldb)
{
    TRY(fits32(la, "trsm", m, n, ldl > ldb ? ldl : ldb));
    if (m == 0 || n == 0) return FL_STATUS_OK;
    SETDEV("trsm");
    cublasHandle_t h;
    TRY(blas_get(la, "trsm", &h));
    const cublasOperation_t t = trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (IS64(la)) {
        const double one = 1.0;
        BL("trsm", cublasDtrsm(h, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, t, CUBLAS_DIAG_NON_UNIT, (int)m, (int)n,
                               &one, (const double *)L, (int)ldl, (double *)B, (int)ldb));
    } else {
        const float one = 1.0f;
        BL("trsm", cublasStrsm(h, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, t, CUBLAS_DIAG_NON_UNIT, (int)m, (int)n,
                               &one, (const float *)L, (int)ldl, (float *)B, (int)ldb));
    }
    return FL_STATUS_OK;
}

static fl_status g_qr(fli_la *la, int64_t m, int64_t n, void *A, int64_t lda, void *R, int64_t ldr)
{
    if (m < n) return FAIL(FL_STATUS_INTERNAL, "qr", "needs m >= n (got %lld x %lld)", (long long)m, (long long)n);
    TRY(fits32(la, "qr", m, n, lda));
    if (n == 0) return FL_STATUS_OK;
    SETDEV("qr");
    cusolverDnHandle_t h;
    TRY(solver_get(la, "qr", &h));
    const int mm = (int)m, nn = (int)n, l = (int)lda;
    int lw1 = 0, lw2 = 0;
    if (IS64(la)) {
        SO("qr", cusolverDnDgeqrf_bufferSize(h, mm, nn, (double *)A, l, &lw1));
        SO("qr", cusolverDnDorgqr_bufferSize(h, mm, nn, nn, (double *)A, l, (const double *)A, &lw2));
    } else {
        SO("qr", cusolverDnSgeqrf_bufferSize(h, mm, nn, (float *)A, l, &lw1));
        SO("qr", cusolverDnSorgqr_bufferSize(h, mm, nn, nn, (float *)A, l, (const float *)A, &lw2));
    }
    const int lw = (lw1 > lw2 ? lw1 : lw2) + 1;
    const size_t es = fli_la_esize(la);
    char *w = NULL;
    TRY(dev_alloc(la, "qr", al256(es * (size_t)n) + al256(es * (size_t)lw) + 16, (void **)&w));
    void *tau = w, *work = w + al256(es * (size_t)n);
    int *dinfo = (int *)((char *)work + al256(es * (size_t)lw));
    cudaStream_t s = STATE(la)->stream;
    cusolverStatus_t cs;
    if (IS64(la))
        cs = cusolverDnDgeqrf(h, mm, nn, (double *)A, l, (double *)tau, (double *)work, lw, dinfo);
    else
        cs = cusolverDnSgeqrf(h, mm, nn, (float *)A, l, (float *)tau, (float *)work, lw, dinfo);
    const char *what = "geqrf";
    cudaError_t e = cudaSuccess;
    if (cs == CUSOLVER_STATUS_SUCCESS && R) {
        if (IS64(la))
            k_upper<double><<<grid_mn(n, n), 256, 0, s>>>(n, (const double *)A, lda, (double *)R, ldr);
        else
            k_upper<float><<<grid_mn(n, n), 256, 0, s>>>(n, (const float *)A, lda, (float *)R, ldr);
        e = cudaGetLastError();
    }
    if (cs == CUSOLVER_STATUS_SUCCESS && e == cudaSuccess) {
        what = "orgqr";
        if (IS64(la))
            cs = cusolverDnDorgqr(h, mm, nn, nn, (double *)A, l, (const double *)tau, (double *)work, lw, dinfo);
        else
            cs = cusolverDnSorgqr(h, mm, nn, nn, (float *)A, l, (const float *)tau, (float *)work, lw, dinfo);
    }
    dev_free(la, w);
    if (cs != CUSOLVER_STATUS_SUCCESS) return FAIL(FL_STATUS_CUDA_ERROR, "qr", "%s: cusolver status %d", what, (int)cs);
    if (e != cudaSuccess) return cuda_st(la, __LINE__, "qr", "R copy kernel", e);
    return FL_STATUS_OK;
}

/* Eigenvalues of dt in device memory d (n) into host doubles w. */
static fl_status values_out(fli_la *la, const char *op, const void *d, int f64, int64_t n, double *w,
                            const int *dinfo, int *hinfo)
{
    cudaStream_t s = STATE(la)->stream;
    const size_t es = f64 ? sizeof(double) : sizeof(float);
    float *tmp = NULL;
    if (!f64) {
        tmp = (float *)malloc(sizeof(float) * (size_t)n);
        if (!tmp) return FAIL(FL_STATUS_OUT_OF_MEMORY, op, "%lld eigenvalues: host allocation failed", (long long)n);
    }
    cudaError_t e = cudaMemcpyAsync(f64 ? (void *)w : (void *)tmp, d, es * (size_t)n, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaMemcpyAsync(hinfo, dinfo, sizeof(int), cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    if (e == cudaSuccess && tmp)
        for (int64_t i = 0; i < n; i++) w[i] = tmp[i];
    free(tmp);
    if (e != cudaSuccess) return cuda_st(la, __LINE__, op, "eigenvalue copy", e);
    return FL_STATUS_OK;
}

static fl_status g_syevd(fli_la *la, int64_t n, void *A, int64_t lda, double *w)
{
    TRY(fits32(la, "syevd", n, lda, 0));
    if (n == 0) return FL_STATUS_OK;
    SETDEV("syevd");
    cusolverDnHandle_t h;
    TRY(solver_get(la, "syevd", &h));
    const int nn = (int)n, l = (int)lda;
    const cusolverEigMode_t jv = CUSOLVER_EIG_MODE_VECTOR;
    const cublasFillMode_t lo = CUBLAS_FILL_MODE_LOWER;
    int lw = 0;
    const size_t es = fli_la_esize(la);
    if (IS64(la))
        SO("syevd", cusolverDnDsyevd_bufferSize(h, jv, lo, nn, (double *)A, l, (double *)A, &lw));
    else
        SO("syevd", cusolverDnSsyevd_bufferSize(h, jv, lo, nn, (float *)A, l, (float *)A, &lw));
    char *buf = NULL;
    const size_t wb = al256(es * (size_t)n), kb = al256(es * (size_t)(lw + 1));
    TRY(dev_alloc(la, "syevd", wb + kb + 16, (void **)&buf));
    int *dinfo = (int *)(buf + wb + kb);
    cusolverStatus_t cs = IS64(la) ? cusolverDnDsyevd(h, jv, lo, nn, (double *)A, l, (double *)buf,
                                                      (double *)(buf + wb), lw, dinfo)
                                   : cusolverDnSsyevd(h, jv, lo, nn, (float *)A, l, (float *)buf, (float *)(buf + wb),
                                                      lw, dinfo);
    int hinfo = 0;
    fl_status st = cs == CUSOLVER_STATUS_SUCCESS
                       ? values_out(la, "syevd", buf, IS64(la), n, w, dinfo, &hinfo)
                       : FAIL(FL_STATUS_CUDA_ERROR, "syevd", "cusolverDn?syevd: cusolver status %d", (int)cs);
    dev_free(la, buf);
    if (st) return st;
    if (hinfo < 0) return FAIL(FL_STATUS_INTERNAL, "syevd", "argument %d was invalid", -hinfo);
    if (hinfo > 0) return FAIL(FL_STATUS_NUMERICAL, "syevd", "did not converge (info %d)", hinfo);
    return FL_STATUS_OK;
}

/* Jacobi always sweeps in double, as the CPU's does: cuSOLVER's float32
 * syevj stopped after 5-11 sweeps with ||V^T V - I|| ~ 5e-4 at n = 1024 and
 * 6e-3 at 8192 (bench/results/eig_h100_a86faa6.log), far from float32's
 * u sqrt(n); float32 data is widened into a double copy, swept to the same
 * relative off-diagonal tolerance, and V rounded back. */
static fl_status g_syevj(fli_la *la, int64_t n, void *A, int64_t lda, double tol, int max_sweeps, double *w,
                         int *sweeps)
{
    if (sweeps)
        *sweeps = 0;
    TRY(fits32(la, "syevj", n, lda, 0));
    if (n == 0)
        return FL_STATUS_OK;
    SETDEV("syevj");
    cusolverDnHandle_t h;
    TRY(solver_get(la, "syevj", &h));
    syevjInfo_t par = NULL;
    SO("syevj", cusolverDnCreateSyevjInfo(&par));
    fl_status st = FL_STATUS_OK;
    char *buf = NULL;
    int hinfo = 0, lw = 0;
    const int nn = (int)n, f32 = !IS64(la);
    const int l = f32 ? nn : (int)lda;
    const cusolverEigMode_t jv = CUSOLVER_EIG_MODE_VECTOR;
    const cublasFillMode_t lo = CUBLAS_FILL_MODE_LOWER;
    cudaStream_t s = STATE(la)->stream;
    size_t wb = 0, kb = 0, mb = 0;
    double *D = (double *)A; /* the matrix Jacobi sweeps: A itself, or its double copy */
    cusolverStatus_t cs = cusolverDnXsyevjSetTolerance(par, tol > 0 ? tol : 0.0);
    const char *what = "cusolverDnXsyevjSetTolerance";
    if (cs == CUSOLVER_STATUS_SUCCESS) {
        what = "cusolverDnXsyevjSetMaxSweeps";
        cs = cusolverDnXsyevjSetMaxSweeps(par, max_sweeps > 0 ? max_sweeps : 1);
    }
    if (cs == CUSOLVER_STATUS_SUCCESS) {
        what = "cusolverDnDsyevj_bufferSize";
        cs = cusolverDnDsyevj_bufferSize(h, jv, lo, nn, D, l, D, &lw, par);
    }
    if (cs != CUSOLVER_STATUS_SUCCESS) {
        st = FAIL(FL_STATUS_CUDA_ERROR, "syevj", "%s: cusolver status %d", what, (int)cs);
        goto done;
    }
    wb = al256(sizeof(double) * (size_t)n);
    kb = al256(sizeof(double) * (size_t)(lw + 1));
    mb = f32 ? al256(sizeof(double) * (size_t)n * (size_t)n) : 0;
    if ((st = dev_alloc(la, "syevj", wb + kb + mb + 16, (void **)&buf)))
        goto done;
    if (f32) {
        D = (double *)(buf + wb + kb);
        k_cast<float, double><<<grid_mn(n, n), 256, 0, s>>>(n, n, (const float *)A, lda, D, n);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) {
            st = cuda_st(la, __LINE__, "syevj", "widening to double", e);
            goto done;
        }
    }
    cs = cusolverDnDsyevj(h, jv, lo, nn, D, l, (double *)buf, (double *)(buf + wb), lw,
                          (int *)(buf + wb + kb + mb), par);
    if (cs != CUSOLVER_STATUS_SUCCESS) {
        st = FAIL(FL_STATUS_CUDA_ERROR, "syevj", "cusolverDnDsyevj: cusolver status %d", (int)cs);
        goto done;
    }
    if (f32) {
        k_cast<double, float><<<grid_mn(n, n), 256, 0, s>>>(n, n, D, n, (float *)A, lda);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) {
            st = cuda_st(la, __LINE__, "syevj", "rounding V to float", e);
            goto done;
        }
    }
    if ((st = values_out(la, "syevj", buf, 1, n, w, (const int *)(buf + wb + kb + mb), &hinfo)))
        goto done;
    if (hinfo < 0) {
        st = FAIL(FL_STATUS_INTERNAL, "syevj", "argument %d was invalid", -hinfo);
        goto done;
    }
    /* info = n + 1: the sweeps ran out before tol; the answer is still the
     * best reached, as on the CPU (which stops at max_sweeps silently) */
    if (sweeps) {
        int sw = 0;
        cs = cusolverDnXsyevjGetSweeps(h, par, &sw);
        if (cs != CUSOLVER_STATUS_SUCCESS) {
            st =
                FAIL(FL_STATUS_CUDA_ERROR, "syevj", "cusolverDnXsyevjGetSweeps: cusolver status %d", (int)cs);
            goto done;
        }
        *sweeps = sw;
    }
done:
    dev_free(la, buf);
    cusolverDnDestroySyevjInfo(par);
    return st;
}

static fl_status g_split(fli_la *la, int64_t m, int64_t n, const void *A, int64_t lda, int mant_bits, int fp16,
                         int parts, void *const *out, const int64_t *ldo)
{
    if (IS64(la) || parts < 1 || parts > 3) return FAIL(FL_STATUS_INTERNAL, "split", "float32 data and 1..3 parts only");
    if (m == 0 || n == 0) return FL_STATUS_OK;
    SETDEV("split");
    split_out o = {};
    for (int p = 0; p < parts; p++) {
        o.p[p] = (float *)out[p];
        o.ld[p] = ldo[p];
    }
    k_split_basis<<<grid_mn(m, n), 256, 0, STATE(la)->stream>>>(m, n, (const float *)A, lda, mant_bits, fp16, parts,
                                                                o);
    LAUNCHED("split", "k_split_basis");
    return FL_STATUS_OK;
}

static fl_status g_randn(fli_la *la, int64_t m, int64_t n, void *A, int64_t lda, uint64_t seed)
{
    if (m == 0 || n == 0) return FL_STATUS_OK;
    SETDEV("randn");
    cudaStream_t s = STATE(la)->stream;
    if (IS64(la))
        k_randn<double><<<grid_mn(m, n), 256, 0, s>>>(m, n, (double *)A, lda, seed);
    else
        k_randn<float><<<grid_mn(m, n), 256, 0, s>>>(m, n, (float *)A, lda, seed);
    LAUNCHED("randn", "kernel launch");
    return FL_STATUS_OK;
}

static const fli_la_ops g_ops = {
    g_alloc, g_release, g_put,  g_get, g_gemm,  g_geam,  g_fill,  g_shift_diag, g_fro,
    g_diag,  g_potrf,   g_trsm, g_qr,  g_syevd, g_syevj, g_randn, g_split, g_potrf_dev,
};

/* The context's linear-algebra cache: a stream-ordered pool that keeps what
 * it is given (no trimming at synchronisations) unless the context has its
 * own device allocator, and the cuBLAS workspace. */
static fl_status cache_open(fli_cuda_env *env, fli_la *la)
{
    fli_cuda_state *s = fli_state(env);
    if (s->la) return FL_STATUS_OK;
    la_cache *lc = (la_cache *)calloc(1, sizeof *lc);
    if (!lc) return FAIL(FL_STATUS_OUT_OF_MEMORY, "la_open", "host allocation failed");
    const int own = !(env->dalloc && env->dalloc->alloc && env->dalloc->free);
    cudaError_t e = cudaSuccess;
    if (own) {
        e = fli_keeping_pool(env->device_id, &lc->pool);
        if (e == cudaSuccess) e = cudaMallocFromPoolAsync(&lc->ws, LA_BLAS_WS, lc->pool, s->stream);
    } else if (env->dalloc->alloc(env->dalloc->user, env->device_id, LA_BLAS_WS, &lc->ws) != 0 || !lc->ws) {
        lc->ws = NULL;
        free(lc);
        return FAIL(FL_STATUS_DEVICE_OOM, "la_open", "the device allocator refused the cuBLAS workspace");
    }
    if (e != cudaSuccess) {
        if (lc->ws) cudaFreeAsync(lc->ws, s->stream);
        cudaStreamSynchronize(s->stream);
        if (lc->pool) cudaMemPoolDestroy(lc->pool);
        free(lc);
        return cuda_st(la, __LINE__, "la_open", "memory pool", e);
    }
    s->la = lc;
    return FL_STATUS_OK;
}

extern "C" fl_status fli_cuda_la_open(fli_cuda_env *env, fl_dtype dt, fli_la *la)
{
    if (dt != FL_DTYPE_F32 && dt != FL_DTYPE_F64)
        return FAIL(FL_STATUS_UNSUPPORTED, "la_open", "dtype %d: linear algebra runs on float32 or float64", (int)dt);
    la->ops = &g_ops;
    la->dt = dt;
    la->device_id = env->device_id;
    la->impl = env;
    CU("la_open", cudaSetDevice(env->device_id));
    return cache_open(env, la);
}
