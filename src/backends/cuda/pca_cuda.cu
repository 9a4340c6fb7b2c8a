/*
 * pca_cuda.cu — PCA's covariance_eigh path and a fitted decomposition's
 * transform on the GPU.
 *
 * Contract (algo/decomp_job.h): X is n x d float32, row-major with row
 * stride ld, on the host or on the context's device. Outputs are float64
 * host buffers, written only on success. Device memory comes from the
 * context's allocator hooks, host scratch from its host allocator.
 *
 * The scatter, one pass over X, never materialising a centred copy of it:
 *
 *   1. shift s = the column means of the first min(n, 4096) rows;
 *   2. per chunk of R rows: z = fl(X - s), written as the product's operand
 *      (variant 4: its tf32 parts [hi | lo]; 1-3: z itself, padded to dp
 *      columns, rows past n zeroed), its column sums t (and, variant 4, the
 *      sums of z^2) into per-block partials that each block row keeps
 *      across chunks (summed once at the end in a fixed order: the result
 *      is deterministic);
 *   3. the chunk's product accumulated by cuBLAS in float32 over the
 *      chunks of a group (B row slices side by side so that the small
 *      d x d product fills the GPU), the group's partials then added into
 *      a float64 scatter;
 *   4. S = Z^T Z - t t^T / n, mean = s + t / n (float64).
 *
 * Step 4 is exact algebra for the shifted data Z, and because s is already
 * close to the mean, t is small: the correction cancels almost nothing,
 * unlike X^T X - n m m^T, whose float32 products lose the variance under
 * the mean's square when |mean| >> std (the shifted-data algorithm, Chan,
 * Golub and LeVeque, "Algorithms for computing the sample variance").
 *
 * Product variants (job->variant, 0 = default 4):
 *   4 3xtf32: Z = hi + lo, both exact tf32 (fli_round_mant, the GEMM
 *     ladder's rounding), one strided-batched TF32 GEMM per chunk gives
 *     [hi | lo]^T hi = [hi^T hi; lo^T hi], and S = hi^T hi + lo^T hi +
 *     hi^T lo (lo^T lo, 2^-22 relative, dropped): float32-level products at
 *     tensor-core speed. The tensor cores' float32 sums truncate, shrinking
 *     the product by a factor that grows with the rows one GEMM sums
 *     (1.3e-5 at 2048) and is nearly the same for every entry; S is scaled
 *     symmetrically so that its diagonal is the exact float64 sum of z^2,
 *     which removes it. With X on the device, the next chunk's split runs
 *     on a second stream while this chunk's GEMM runs (double-buffered).
 *     H100, 1,000,000 x 512: 8.4 ms before the rescaling (bench_pca
 *     5329628-wip), see TF3_ROWS;
 *   5 3xbf16: the same with bf16 parts (fli_round_mant at 7 bits, ~16
 *     bits of z instead of ~22): half the bytes per part and twice the
 *     tensor-core rate. The dropped L^T L is a bias on the diagonal
 *     (2^-18 of z^2 on average, uncorrelated between columns) that matters
 *     at 16 bits: the split kernel also sums l^2 in float64 and S gets it
 *     on its diagonal before the rescaling (bench/gpu/pca_split_sim.py at
 *     20,000 x 128, k = 16, low-rank heavy-tailed data: explained
 *     variance off by 2.4e-3 without it, 9.6e-5 with it, 3xtf32 1.0e-4).
 *     H100, 1,000,000 x 512 (bench_pca 099cffc): 4.45 ms (3xtf32 8.52),
 *     explained variance 3.6e-8 from float64 (3xtf32 2.1e-9; 2.1e-4
 *     without the rescaling), 1 - |cos| 3.6e-11 (3xtf32 1.4e-13, torch's
 *     float32 path 1.5e-12). Not the default for that angle error: see
 *     PCA_NOTES.md;
 *   6 3xtf32 fused: the same three products in one kernel that splits z
 *     once per stage in shared memory (pca_tf3.cu; on Hopper the wgmma
 *     kernel of sm90/pca_tf3_sm90.cu): no [hi | lo] buffer, X read about
 *     once; float64 partials per block every 2048 rows, the same
 *     rescaling; 7 the same with the mma.sync kernel on any GPU (A/B);
 *   1 float32: the lower triangle in tiles of bs x bs (one batched GEMM over
 *     every (slice, tile) pair per chunk): 11.9 ms (bs 128, 32k-row chunks;
 *     14.5 ms before the column sums were reduced once instead of per
 *     chunk);
 *   2 float32: the full d x d product per slice (strided batched GEMM);
 *   3 cublasSsyrk per chunk: 90 ms (cuBLAS's fp32 SYRK is not tuned for
 *     a short, deep product).
 *
 * Eigh (job->eigh): none (the scatter stays on the device for the algo
 * layer's top-k solver over fli_la, the default for few components: see
 * algo/linalg_topk.c), cuSOLVER's float64 syevd (all pairs) or syevdx (top
 * k) on the device, or the scatter back to the host for the CPU's dsyevd;
 * float32 syevd/syevdx of the rounded scatter for A/B. At d = 512 on the
 * H100: syevd 5.6 ms, syevdx top 32 5.1 ms (but 3e-7 from syevd's values:
 * it stops at a float32-like tolerance), float32 5.1-6.0 ms (no faster),
 * the host's dsyevd 39-44 ms plus the copy. Eigenvectors are returned
 * largest first; the algo layer flips signs.
 *
 * Buffers, cuBLAS workspace and events stay in the context's state between
 * fits (see pca_cache).
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cusolverDn.h>
#include <math.h>
#include <string.h>

#include "algo/linalg.h"
#include "backends/cuda/fl_cuda_util.cuh"
#include "backends/cuda/pca_tf3.cuh"

/* ---- error plumbing for the two libraries ---------------------------------- */

static fl_status blas_fail(fli_cuda_env *env, const char *file, int line, const char *what, cublasStatus_t s)
{
    (void)cudaGetLastError();
    char why[64];
    snprintf(why, sizeof why, "cuBLAS status %d", (int)s);
    return fli_set_err(env, s == CUBLAS_STATUS_ALLOC_FAILED ? FL_STATUS_DEVICE_OOM : FL_STATUS_CUDA_ERROR,
                       file, line, what, why);
}
static fl_status solver_fail(fli_cuda_env *env, const char *file, int line, const char *what,
                             cusolverStatus_t s)
{
    (void)cudaGetLastError();
    char why[64];
    snprintf(why, sizeof why, "cuSOLVER status %d", (int)s);
    return fli_set_err(env, s == CUSOLVER_STATUS_ALLOC_FAILED ? FL_STATUS_DEVICE_OOM : FL_STATUS_CUDA_ERROR,
                       file, line, what, why);
}
#define BLAS_TRY(env, call)                                                              \
    do {                                                                                 \
        cublasStatus_t b_ = (call);                                                      \
        if (b_ != CUBLAS_STATUS_SUCCESS) return blas_fail((env), __FILE__, __LINE__, #call, b_); \
    } while (0)
#define SOLVER_TRY(env, call)                                                              \
    do {                                                                                   \
        cusolverStatus_t c_ = (call);                                                      \
        if (c_ != CUSOLVER_STATUS_SUCCESS) return solver_fail((env), __FILE__, __LINE__, #call, c_); \
    } while (0)

extern "C" void fli_cuda_linalg_release(fli_cuda_state *s)
{
    if (s->blas) cublasDestroy((cublasHandle_t)s->blas);
    if (s->solver) cusolverDnDestroy((cusolverDnHandle_t)s->solver);
    s->blas = s->solver = NULL;
}

/* The context's cuBLAS handle on its stream; the workspace is the caller's
 * (from the allocator hooks), detached again by unbind(). */
static fl_status blas_bind(fli_cuda_env *env, void *ws, size_t ws_bytes, int tf32, cublasHandle_t *h)
{
    fli_cuda_state *st = fli_state(env);
    if (!st->blas) {
        cublasHandle_t b;
        BLAS_TRY(env, cublasCreate(&b));
        st->blas = b;
    }
    *h = (cublasHandle_t)st->blas;
    BLAS_TRY(env, cublasSetStream(*h, st->stream));
    BLAS_TRY(env, cublasSetWorkspace(*h, ws, ws_bytes));
    BLAS_TRY(env, cublasSetMathMode(*h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    BLAS_TRY(env, cublasSetPointerMode(*h, CUBLAS_POINTER_MODE_HOST));
    return FL_STATUS_OK;
}
static void blas_unbind(fli_cuda_env *env)
{
    fli_cuda_state *st = fli_state(env);
    if (st->blas) cublasSetWorkspace((cublasHandle_t)st->blas, NULL, 0);
}
static fl_status solver_get(fli_cuda_env *env, cusolverDnHandle_t *h)
{
    fli_cuda_state *st = fli_state(env);
    if (!st->solver) {
        cusolverDnHandle_t c;
        SOLVER_TRY(env, cusolverDnCreate(&c));
        st->solver = c;
    }
    *h = (cusolverDnHandle_t)st->solver;
    SOLVER_TRY(env, cusolverDnSetStream(*h, st->stream));
    return FL_STATUS_OK;
}

/* ---- kernels ------------------------------------------------------------------ */

/* s[j] = mean of column j over rows [0, r0). Block (32, 32): a warp reads 32
 * adjacent columns of one row; the 32 warps split the rows, then reduce. */
__global__ void pca_shift_kernel(const float *__restrict__ X, int64_t ld, int64_t r0, int d, float *s)
{
    __shared__ double red[32][33];
    const int j = blockIdx.x * 32 + threadIdx.x;
    double acc = 0;
    if (j < d) {
#pragma unroll 8
        for (int64_t i = threadIdx.y; i < r0; i += 32) acc += X[i * ld + j];
    }
    red[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < d) {
        double t = 0;
        for (int r = 0; r < 32; r++) t += red[r][threadIdx.x];
        s[j] = (float)(t / (double)r0);
    }
}

/* A part as the product reads it: float (tf32 parts, or z itself) or bf16
 * (exact: the value was rounded to 7 mantissa bits already). */
static __device__ __forceinline__ void put_part(float *p, float v) { *p = v; }
static __device__ __forceinline__ void put_part(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

#define CENTER_THREADS 256
#define CENTER_ROWS 64
#define SPLIT_ROWS 32

/* Z[i][j] = X[i][j] - s[j] for i < rows (0 beyond, up to rows_pad), j < d
 * (0 for d <= j < dp); part[blockIdx.y][j] += the block's column sums of Z
 * in float64 (each block row owns its partial across the chunks, which run
 * in stream order: deterministic, and one reduction at the end instead of
 * a latency-bound one per chunk). Grid: (ceil(dp / 256), ceil(rows_pad /
 * ROWS)); each thread walks ROWS rows of one column, so loads and stores
 * are coalesced.
 *
 * SPLIT (variant 4's operand): z written as its tf32 parts, Z[i][j] = hi =
 * z rounded to tf32 and Z[i][dp + j] = lo = tf32(z - hi) (fli_round_mant,
 * the rounding of the GEMM ladder's 3xtf32: both parts are exact tf32
 * numbers, so the tensor cores' own conversion changes nothing; z - hi is
 * exact), rows of 2 dp floats; the sums of z^2 into part2 (the exact
 * diagonal, see pca_rescale_kernel). With bf16 parts (P, variant 5) the
 * same at 7 mantissa bits, and the sums of lo^2 into part3 (the diagonal
 * of the dropped lo^T lo). */
template <typename P, bool SPLIT, int ROWS>
__global__ void pca_center_kernel(const float *__restrict__ X, int64_t ld, int64_t rows, int64_t rows_pad, int d,
                                  int dp, const float *__restrict__ s, P *__restrict__ Z,
                                  double *__restrict__ part, double *__restrict__ part2,
                                  double *__restrict__ part3)
{
    constexpr int MANT = sizeof(P) == 2 ? 7 : 10;
    constexpr bool LL = SPLIT && sizeof(P) == 2;
    const int j = blockIdx.x * CENTER_THREADS + threadIdx.x;
    if (j >= dp) return;
    const int64_t i0 = (int64_t)blockIdx.y * ROWS;
    const float sj = j < d ? s[j] : 0.f;
    double acc = 0, acc2 = 0, acc3 = 0;
#pragma unroll 8
    for (int r = 0; r < ROWS; r++) {
        const int64_t i = i0 + r;
        if (i >= rows_pad) break;
        float z = 0.f;
        if (j < d && i < rows) z = X[i * ld + j] - sj;
        if (SPLIT) {
            const float hi = fli_round_mant(z, MANT), lo = fli_round_mant(z - hi, MANT);
            put_part(Z + i * 2 * dp + j, hi);
            put_part(Z + i * 2 * dp + dp + j, lo);
            acc2 += (double)z * z;
            if (LL) acc3 += (double)lo * lo;
        } else {
            put_part(Z + i * dp + j, z);
        }
        acc += z;
    }
    if (j < d) {
        part[(int64_t)blockIdx.y * d + j] += acc;
        if (SPLIT) part2[(int64_t)blockIdx.y * d + j] += acc2;
        if (LL) part3[(int64_t)blockIdx.y * d + j] += acc3;
    }
}

/* f[j] = sqrt(e[j] / g[j]): e the exact diagonal sum_i z_ij^2 (float64,
 * from the centring kernel), g the product's (F(j, j) + F(j, j) + q[j], q
 * variant 5's sums of lo^2 or NULL); 1 where either is not positive.
 * Overwrites e. */
__global__ void pca_rescale_kernel(const double *__restrict__ F, const double *__restrict__ q, int d, double *e)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    const double g = 2.0 * F[(int64_t)j * d + j] + (q ? q[j] : 0.0), x = e[j];
    e[j] = g > 0 && x > 0 && isfinite(g) && isfinite(x) ? sqrt(x / g) : 1.0;
}

/* t[j] += sum over nb block rows of part[b][j], in block order. */
__global__ void pca_colsum_kernel(const double *__restrict__ part, int nb, int d, double *t)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    double acc = 0;
    for (int b = 0; b < nb; b++) acc += part[(int64_t)b * d + j];
    t[j] += acc;
}

/* Adds a group's float32 partial products into the float64 scatter S (d x d,
 * column-major, lower triangle i >= j). Layouts by variant:
 *   1 P[b][tile(I, J)] bs x bs column-major, tiles of the lower triangle in
 *     block-column order; 2 P[b] dp x dp; 3 one dp x dp (lower);
 *   4, 5 P[b] 2dp x dp = [hi^T hi; lo^T hi]: S then accumulates, for every
 *     (i, j), F = hi^T hi / 2 + lo^T hi (reads coalesced; halving is
 *     exact), and pca_finish_kernel forms F + F^T = hi^T hi + lo^T hi +
 *     hi^T lo. */
__global__ void pca_fold_kernel(const float *__restrict__ P, int variant, int64_t B, int bs, int nbk, int dp,
                                int d, double *__restrict__ S)
{
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)d * d) return;
    const int i = (int)(idx % d), j = (int)(idx / d);
    double acc = 0;
    if (variant >= 4) {
        const int64_t mat = (int64_t)2 * dp * dp, off = (int64_t)j * 2 * dp + i;
        for (int64_t b = 0; b < B; b++) acc += 0.5 * (double)P[b * mat + off] + (double)P[b * mat + off + dp];
        S[idx] += acc;
        return;
    }
    if (i < j) return;
    if (variant == 1) {
        const int I = i / bs, J = j / bs;
        const int64_t t = (int64_t)J * nbk - (int64_t)J * (J - 1) / 2 + (I - J);
        const int64_t T = (int64_t)nbk * (nbk + 1) / 2, tile = (int64_t)bs * bs;
        const int64_t off = (int64_t)(j - J * bs) * bs + (i - I * bs);
        for (int64_t b = 0; b < B; b++) acc += P[(b * T + t) * tile + off];
    } else {
        const int64_t off = (int64_t)j * dp + i, mat = (int64_t)dp * dp;
        for (int64_t b = 0; b < B; b++) acc += P[b * mat + off];
    }
    S[idx] += acc;
}

/* S(i, j) = S(j, i) = S_lower(i, j) - t_i t_j / n (sym: f_i f_j (F(i, j) +
 * F(j, i) + [i = j] q_i) - t_i t_j / n, variants 4 and 5, f = NULL for 1,
 * q = NULL but for 5); mean = s + t / n. */
__global__ void pca_finish_kernel(double *S, const double *__restrict__ t, const float *__restrict__ s,
                                  int d, double n, int sym, const double *__restrict__ f,
                                  const double *__restrict__ q, double *mean)
{
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)d * d) return;
    const int i = (int)(idx % d), j = (int)(idx / d);
    if (idx < d) mean[idx] = (double)s[idx] + t[idx] / n;
    if (i < j) return;
    const double prod =
        sym ? (S[idx] + S[(int64_t)i * d + j] + (q && i == j ? q[i] : 0.0)) * (f ? f[i] * f[j] : 1.0) : S[idx];
    const double v = prod - t[i] * t[j] / n;
    S[idx] = v;
    S[(int64_t)i * d + j] = v;
}

__global__ void pca_d2s_kernel(const double *__restrict__ a, float *__restrict__ b, int64_t len)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) b[i] = (float)a[i];
}

/* out[i][j] = in[i][j] - v[j] (pre) and, after the product, o[i][j] += v[j]. */
__global__ void pca_sub_kernel(const float *__restrict__ in, int64_t ld_in, int64_t rows, int cols,
                               const float *__restrict__ v, float *__restrict__ out)
{
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= rows * cols) return;
    const int64_t i = idx / cols;
    const int j = (int)(idx % cols);
    out[i * cols + j] = in[i * ld_in + j] - (v ? v[j] : 0.f);
}
__global__ void pca_add_kernel(float *o, int64_t ld, int64_t rows, int cols, const float *__restrict__ v)
{
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= rows * cols) return;
    o[(idx / cols) * ld + idx % cols] += v[idx % cols];
}

/* ---- buffers kept between fits ------------------------------------------------ */

/* The covariance pass's device buffers and events live in the context's
 * state (st->pca) between fits, grown when a fit needs more: allocating and
 * freeing them on every call cost ~1.2 ms of a fit (bench_pca, n = 4096,
 * 90c8c7c), and cudaFree synchronises the device. Through the allocator
 * hooks like every device buffer; ctx_free releases them
 * (fli_cuda_pca_release). What they hold after a fit: the chunk buffers
 * (2 x 32 MiB at d = 512), the partial products, the scatter (which the
 * algo layer's top-k eigensolver reads after pca_cov returns, see
 * FLI_COV_EIGH_DEVICE), cuBLAS's 32 MiB workspace. */
enum {
    SL_Z0, SL_Z1, SL_P, SL_S, SL_T, SL_T2, SL_T3, SL_PART, SL_MEAN, SL_SHIFT, SL_WS, SL_PTRS,
    SL_STAGE0, SL_STAGE1, SL_EIGW, SL_INFO, SL_WORK, SL_A32, SL_N
};
#define PCA_EVENTS 6
typedef struct pca_cache {
    void *p[SL_N];
    size_t cap[SL_N];
    cudaEvent_t ev[PCA_EVENTS];
    int have_ev;
} pca_cache;

extern "C" void fli_cuda_pca_release(fli_cuda_env *env)
{
    fli_cuda_state *st = fli_state(env);
    if (!st || !st->pca) return;
    pca_cache *c = (pca_cache *)st->pca;
    for (int i = 0; i < SL_N; i++) fli_dev_free(env, c->p[i]);
    for (int i = 0; c->have_ev && i < PCA_EVENTS; i++) cudaEventDestroy(c->ev[i]);
    free(c);
    st->pca = NULL;
}

static fl_status cache_get(fli_cuda_env *env, pca_cache **out)
{
    fli_cuda_state *st = fli_state(env);
    if (!st->pca && !(st->pca = calloc(1, sizeof(pca_cache))))
        return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "pca_cov", "host allocation failed");
    pca_cache *c = (pca_cache *)st->pca;
    for (int i = 0; !c->have_ev && i < PCA_EVENTS; i++) {
        cudaError_t e = cudaEventCreateWithFlags(&c->ev[i], cudaEventDisableTiming);
        if (e != cudaSuccess) {
            for (int j = 0; j < i; j++) cudaEventDestroy(c->ev[j]);
            return fli_cuda_fail(env, __FILE__, __LINE__, "cudaEventCreateWithFlags", e);
        }
        if (i == PCA_EVENTS - 1) c->have_ev = 1;
    }
    *out = c;
    return FL_STATUS_OK;
}

/* Slot i with at least `bytes` (its contents are lost when it grows; the
 * old buffer is idle: every fit ends synchronised, and a slot serves one
 * purpose within a fit). */
template <typename T> static fl_status slot(fli_cuda_env *env, pca_cache *c, int i, size_t bytes, T **p)
{
    if (bytes < 256) bytes = 256;
    if (c->cap[i] < bytes) {
        fli_dev_free(env, c->p[i]);
        c->p[i] = NULL;
        c->cap[i] = 0;
        FLI_TRY(fli_dev_alloc(env, bytes, &c->p[i]));
        c->cap[i] = bytes;
    }
    *p = (T *)c->p[i];
    return FL_STATUS_OK;
}

/* ---- the covariance pass ---------------------------------------------------- */

typedef struct cov_plan {
    int variant;
    int64_t R, B, rs; /* chunk rows, slices per chunk, rows per slice (R = B rs) */
    int bs, nbk, dp;  /* tile edge, tiles per side, padded width */
    int64_t T;        /* GEMMs per slice (tiles; 1 for the others) */
    int64_t G;        /* chunks per group before the float64 fold */
    int64_t wcols;    /* parts per row of a chunk buffer (dp; 2 dp for variants 4, 5) */
    int esize;        /* bytes per part: 4 (float), 2 (variant 5's bf16) */
    int64_t brows;    /* rows of a centring / split block */
    int streams;      /* variant 4 with X on the device: 2 (split || product) */
    size_t p_elems;   /* floats of the partial products (variant 6: doubles) */
    int64_t part_rows; /* rows of the column-sum partials */
} cov_plan;

/* Variant 4's shape, chosen by bench_pca at 1,000,000 x 512 on the H100
 * (5329628-wip, scatter alone; explained variance against the CPU
 * backend's float32-blocks-in-float64 fit, before the rescaling below):
 *   slices x rows  8 x 2048  4 x 4096  16 x 1024  8 x 1024  1 x 8192  16 x 512
 *   ms              8.42      8.73      9.08       9.54      9.91      11.38
 *   ev rel error    1.3e-5    2.7e-5    5.9e-6     5.9e-6    1.3e-5    2.7e-6
 * (the float32 products: 1.3e-7 in 11.9 ms; torch's float32 path: 1.2e-5
 * against float64). The error grows with the depth of one tensor-core
 * accumulation (their float32 additions truncate; the GEMM ladder saw the
 * same, linalg_cuda.cu's tf6_chunks) and is a factor common to the whole
 * product, which the rescaling to the exact diagonal takes out. So: 2048
 * rows deep, and slices for about two output tiles of 128 x 128 per SM. */
#define TF3_ROWS 2048
/* The product when the job names none and the fused one cannot run on
 * Hopper's wgmma (see plan_cov): 4 (3xtf32); see PCA_NOTES.md for why not
 * 5 (3xbf16). */
#define PCA_DEFAULT_VARIANT 4
#define TF3_MAX_SLICES 32

/* p->rs = `want` rows per slice as a multiple of 32, no more than n rows
 * need over p->B slices; p->R = the chunk's rows. */
static void slice_rows(int64_t want, int64_t n, cov_plan *p)
{
    int64_t rs = want < 32 ? 32 : want / 32 * 32;
    const int64_t need = fli_ceil_div(n, p->B);
    if (rs > need) rs = (need + 31) / 32 * 32;
    p->rs = rs;
    p->R = rs * p->B;
}

/* The Hopper kernel of the fused product can run: built (FL_HAVE_SM90), a
 * compute capability 9.0 device, FL_DISABLE_SM90 unset (sm90_enabled). */
static int pca_sm90(fli_cuda_env *env)
{
#ifdef FL_HAVE_SM90
    const fli_cuda_state *st = fli_state(env);
    return env->sm90_enabled && st->cc_major == 9 && st->cc_minor == 0;
#else
    (void)env;
    return 0;
#endif
}

/* Variant 6 reads X in place with 16-byte vector loads: device X 16-byte
 * aligned with ld % 4 == 0, host X staged at d floats a row (d % 4 == 0). */
static int tf3f_fits(const fli_pca_cov_job *job)
{
    if (job->x_dev < 0) return job->d % 4 == 0;
    return ((uintptr_t)job->X & 15) == 0 && job->ld % 4 == 0;
}

static void plan_cov(const fli_pca_cov_job *job, int sm_count, int sm90, cov_plan *p)
{
    const int64_t d = job->d;
    /* the default: the fused product on Hopper with X on the device (its
     * wgmma kernel: 4.84 ms against variant 4's 8.55 at 1M x 512 on the
     * H100, bench_pca 2380279, the same accuracy), variant 4 elsewhere
     * (the fused kernel's mma.sync form and host X unmeasured against it) */
    p->variant = job->variant               ? job->variant
                 : sm90 && job->x_dev >= 0 && tf3f_fits(job) ? 6
                                                              : PCA_DEFAULT_VARIANT;
    if ((p->variant == 6 || p->variant == 7) && !tf3f_fits(job)) p->variant = 4;
    p->esize = p->variant == 5 ? 2 : 4;
    p->streams = 1;
    p->brows = CENTER_ROWS;
    p->G = 1;
    if (p->variant >= 6) {
        /* one block per SM (its shared memory and 255 registers a thread);
         * splits of the rows per tile pair so that the blocks fill the SMs'
         * slots best within two waves (ties: two waves, whose second lets
         * SMs freed by the cheaper diagonal tiles take more rows: at 1M x
         * 512 on the H100, 26 splits 5.94 ms, 13 splits 6.11), at least one
         * 32-row step each */
        const int64_t nb = (d + 127) / 128, pairs = nb * (nb + 1) / 2, steps = (job->n + 31) / 32;
        int64_t best = 1;
        double be = 0;
        for (int64_t sp = 1; sp <= 512 && sp <= steps; sp++) {
            const int64_t b = pairs * sp, waves = (b + sm_count - 1) / sm_count;
            if (waves > 2) break;
            const double e = (double)b / (double)(waves * sm_count);
            if (e > be - 1e-9) be = e > be ? e : be, best = sp;
        }
        p->B = job->slices > 0 ? job->slices : best;
        p->dp = (int)(nb * 128);
        p->bs = 128, p->nbk = (int)nb, p->T = pairs;
        p->wcols = 0, p->rs = 0;
        /* X on the device: one pass over all rows; host X: staged chunks */
        p->R = job->x_dev >= 0 ? job->n : job->chunk_rows > 0 ? job->chunk_rows : 32768;
        if (p->R > job->n) p->R = job->n;
        p->G = INT64_MAX;
        p->p_elems = (size_t)(pairs * p->B) * 16384;
        p->part_rows = p->B;
        return;
    }
    if (p->variant >= 4) {
        /* [hi | lo] rows, one strided-batched TF32 (variant 5: bf16) GEMM
         * per chunk over B slices of rs rows (see TF3_ROWS for the
         * choice; variant 5 takes the same shape until measured apart) */
        p->dp = (int)((d + 31) / 32 * 32);
        p->bs = p->nbk = 0;
        p->T = 1;
        p->wcols = 2 * (int64_t)p->dp;
        p->brows = SPLIT_ROWS;
        const int64_t tiles = ((p->wcols + 127) / 128) * ((p->dp + 127) / 128);
        int64_t B = 1;
        while (B < TF3_MAX_SLICES && B * tiles * 3 < 4 * (int64_t)sm_count) B *= 2;
        p->B = job->slices > 0 ? job->slices : B;
        slice_rows(job->chunk_rows > 0 ? job->chunk_rows / p->B : TF3_ROWS, job->n, p);
        /* the chunks' float32 sums (beta = 1, rounded to nearest) go to
         * float64 every ~16k rows per slice */
        p->G = (16384 + p->rs - 1) / p->rs;
        p->streams = job->x_dev >= 0 && !job->one_stream ? 2 : 1;
        p->p_elems = (size_t)p->B * (size_t)p->wcols * (size_t)p->dp;
        p->part_rows = fli_ceil_div(p->R, p->brows);
        return;
    }
    p->bs = job->tile > 0 ? (int)job->tile : 128;
    if (p->variant == 1 && d <= 64) p->bs = 32 * (int)((d + 31) / 32); /* one tile */
    if (p->variant == 1 && d > 64 && d <= 128) p->bs = 64;
    const int align = p->variant == 1 ? p->bs : 32;
    p->dp = (int)((d + align - 1) / align * align);
    p->wcols = p->dp;
    p->nbk = p->dp / p->bs;
    p->T = p->variant == 1 ? (int64_t)p->nbk * (p->nbk + 1) / 2 : 1;
    /* enough independent 128 x 128 output tiles to fill every SM once */
    const int64_t tiles_per_slice = p->variant == 1 ? p->T * ((p->bs + 127) / 128) * ((p->bs + 127) / 128)
                                                    : ((p->dp + 127) / 128) * ((p->dp + 127) / 128);
    p->B = job->slices > 0 ? job->slices : fli_ceil_div(sm_count, tiles_per_slice);
    if (p->variant == 3) p->B = 1;
    if (p->B < 1) p->B = 1;
    /* rows per slice: the chunk Z (R x dp floats) near 64 MiB. Measured on
     * the H100 at 1,000,000 x 512 (bench_pca): 8k-row chunks, which stay in
     * L2, took 17.3 ms; 32k rows 14.5 ms, 128k rows 14.6 ms: the products'
     * depth (rows per slice) matters more than the L2 residency of Z. */
    slice_rows(job->chunk_rows > 0 ? job->chunk_rows / p->B : ((int64_t)16 << 20) / p->dp / p->B, job->n, p);
    /* fold float32 partials into float64 every ~32k rows per partial */
    p->G = (32768 + p->rs - 1) / p->rs;
    p->p_elems = p->variant == 1   ? (size_t)(p->B * p->T) * (size_t)p->bs * (size_t)p->bs
                 : p->variant == 2 ? (size_t)p->B * (size_t)p->dp * (size_t)p->dp
                                   : (size_t)p->dp * (size_t)p->dp;
    p->part_rows = fli_ceil_div(p->R, p->brows);
}

/* One covariance pass's device buffers (slots of the cache). */
typedef struct cov_bufs {
    float *Z[2], *P, *s, *stage[2];
    double *S, *t, *t2, *t3, *part, *mean, *W, *work; /* t2, t3: the z^2, lo^2 sums (their partials at
                                                         part + nbk_rows d, part + 2 nbk_rows d) */
    const void **ptrs; /* variant 1: A, B, C pointer arrays */
    void *blas_ws;
    int *info;
    cudaEvent_t ready[2], done[2], split[2], prod[2];
} cov_bufs;

#define BLAS_WS_BYTES ((size_t)32 << 20)

/* One chunk's product into the partials (beta 0 starts a group); Z is the
 * chunk buffer it reads. */
static fl_status chunk_product(fli_cuda_env *env, cublasHandle_t h, const cov_plan *p, const cov_bufs *b,
                               const void *Z, float beta, int tf32)
{
    const float one = 1.f;
    const cublasComputeType_t ct = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    if (p->variant >= 4) {
        /* column-major view: the chunk is W^T (2dp x R); per slice
         * C (2dp x dp) = W_s^T hi_s, hi_s the first dp columns of W_s;
         * variant 5: bf16 parts, float32 accumulation */
        const int64_t m = p->wcols, sa = p->rs * p->wcols;
        const int bf = p->variant == 5;
        const cudaDataType_t at = bf ? CUDA_R_16BF : CUDA_R_32F;
        BLAS_TRY(env, cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_T, (int)m, p->dp, (int)p->rs, &one, Z, at,
                                                 (int)m, sa, Z, at, (int)m, sa, &beta, b->P, CUDA_R_32F, (int)m,
                                                 m * p->dp, (int)p->B,
                                                 bf ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32,
                                                 CUBLAS_GEMM_DEFAULT));
    } else if (p->variant == 1) {
        const int64_t nb = p->B * p->T;
        BLAS_TRY(env, cublasGemmBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_T, p->bs, p->bs, (int)p->rs, &one,
                                          (const void *const *)b->ptrs, CUDA_R_32F, p->dp,
                                          (const void *const *)(b->ptrs + nb), CUDA_R_32F, p->dp, &beta,
                                          (void *const *)(b->ptrs + 2 * nb), CUDA_R_32F, p->bs, (int)nb, ct,
                                          CUBLAS_GEMM_DEFAULT));
    } else if (p->variant == 2) {
        BLAS_TRY(env, cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_T, p->dp, p->dp, (int)p->rs, &one, Z,
                                                 CUDA_R_32F, p->dp, p->rs * p->dp, Z, CUDA_R_32F, p->dp,
                                                 p->rs * p->dp, &beta, b->P, CUDA_R_32F, p->dp,
                                                 (int64_t)p->dp * p->dp, (int)p->B, ct, CUBLAS_GEMM_DEFAULT));
    } else {
        BLAS_TRY(env, cublasSsyrk(h, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, p->dp, (int)p->R, &one, (const float *)Z,
                                  p->dp, &beta, b->P, p->dp));
    }
    return FL_STATUS_OK;
}

/* The eigendecomposition of the scatter b->S on the device (job->eigh one
 * of the cuSOLVER modes); results into job, hS / hW host scratch (d x d and
 * 2d doubles). */
static fl_status cov_eigh(fli_cuda_env *env, pca_cache *c, fli_pca_cov_job *job, cov_bufs *b, double *hS,
                          double *hW)
{
    cudaStream_t s = fli_state(env)->stream;
    const int64_t d = job->d;
    cusolverDnHandle_t sh = NULL;
    FLI_TRY(solver_get(env, &sh));
    const int nn = (int)d;
    int lwork = 0, meig = nn;
    const int top = job->eigh == FLI_COV_EIGH_SYEVDX || job->eigh == FLI_COV_EIGH_SYEVDX32;
    const int f32 = job->eigh == FLI_COV_EIGH_SYEVD32 || job->eigh == FLI_COV_EIGH_SYEVDX32;
    const int64_t k = top ? (job->k < 1 ? 1 : job->k > d ? d : job->k) : d;
    const int il = (int)(d - k + 1);
    FLI_TRY(slot(env, c, SL_EIGW, sizeof(double) * (size_t)d, &b->W));
    FLI_TRY(slot(env, c, SL_INFO, sizeof(int), &b->info));
    float *A32 = NULL;
    if (f32) {
        /* the float32 solvers work on a rounded copy of the scatter */
        float *W = (float *)b->W;
        FLI_TRY(slot(env, c, SL_A32, sizeof(float) * (size_t)(d * d), &A32));
        pca_d2s_kernel<<<(unsigned)fli_ceil_div(d * d, 256), 256, 0, s>>>(b->S, A32, d * d);
        FLI_LAUNCH_TRY(env, "pca_d2s_kernel");
        if (top)
            SOLVER_TRY(env, cusolverDnSsyevdx_bufferSize(sh, CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I,
                                                         CUBLAS_FILL_MODE_LOWER, nn, A32, nn, 0.f, 0.f, il, nn,
                                                         &meig, W, &lwork));
        else
            SOLVER_TRY(env, cusolverDnSsyevd_bufferSize(sh, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, nn,
                                                        A32, nn, W, &lwork));
        FLI_TRY(slot(env, c, SL_WORK, sizeof(float) * (size_t)(lwork > 0 ? lwork : 1), &b->work));
        if (top)
            SOLVER_TRY(env, cusolverDnSsyevdx(sh, CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I,
                                              CUBLAS_FILL_MODE_LOWER, nn, A32, nn, 0.f, 0.f, il, nn, &meig, W,
                                              (float *)b->work, lwork, b->info));
        else
            SOLVER_TRY(env, cusolverDnSsyevd(sh, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, nn, A32, nn, W,
                                             (float *)b->work, lwork, b->info));
    } else if (top) {
        SOLVER_TRY(env, cusolverDnDsyevdx_bufferSize(sh, CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I,
                                                     CUBLAS_FILL_MODE_LOWER, nn, b->S, nn, 0.0, 0.0, il, nn,
                                                     &meig, b->W, &lwork));
        FLI_TRY(slot(env, c, SL_WORK, sizeof(double) * (size_t)(lwork > 0 ? lwork : 1), &b->work));
        SOLVER_TRY(env, cusolverDnDsyevdx(sh, CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I,
                                          CUBLAS_FILL_MODE_LOWER, nn, b->S, nn, 0.0, 0.0, il, nn, &meig, b->W,
                                          b->work, lwork, b->info));
    } else {
        SOLVER_TRY(env, cusolverDnDsyevd_bufferSize(sh, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, nn,
                                                    b->S, nn, b->W, &lwork));
        FLI_TRY(slot(env, c, SL_WORK, sizeof(double) * (size_t)(lwork > 0 ? lwork : 1), &b->work));
        SOLVER_TRY(env, cusolverDnDsyevd(sh, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, nn, b->S, nn,
                                         b->W, b->work, lwork, b->info));
    }
    int info = 0;
    FLI_CUDA_TRY(env, cudaMemcpyAsync(&info, b->info, sizeof(int), cudaMemcpyDeviceToHost, s));
    if (f32) {
        /* float32 vectors and values land in the front of hS / hW + d, then
         * widen in place from the back */
        float *vS = (float *)hS, *vW = (float *)(hW + d);
        FLI_CUDA_TRY(env, cudaMemcpyAsync(vS, A32, sizeof(float) * (size_t)(d * meig), cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaMemcpyAsync(vW, b->W, sizeof(float) * (size_t)meig, cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
        for (int64_t i = d * meig - 1; i >= 0; i--) hS[i] = (double)vS[i];
        for (int64_t i = meig - 1; i >= 0; i--) hW[d + i] = (double)vW[i];
    } else {
        /* only the k columns that are kept come back */
        const int64_t skip = meig - k;
        FLI_CUDA_TRY(env, cudaMemcpyAsync(hS + skip * d, b->S + skip * d, sizeof(double) * (size_t)(d * k),
                                          cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaMemcpyAsync(hW + d, b->W, sizeof(double) * (size_t)meig, cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
    }
    if (info != 0 || meig < (int)k) {
        char why[96];
        snprintf(why, sizeof why, "info %d, %d of %lld eigenpairs", info, meig, (long long)k);
        return FLI_FAIL(env, FL_STATUS_INTERNAL, "the eigensolver did not converge", why);
    }
    /* columns ascending -> rows descending, as the CPU path returns them */
    for (int64_t i = 0; i < k; i++) {
        const int64_t j = meig - 1 - i;
        const double w = hW[d + j];
        job->sv[i] = w > 0 ? sqrt(w) : 0.0;
        memcpy(job->components + i * d, hS + j * d, sizeof(double) * (size_t)d);
    }
    job->n_out = k;
    return FL_STATUS_OK;
}

static fl_status cov_body(fli_cuda_env *env, pca_cache *c, fli_pca_cov_job *job, const cov_plan *p,
                          cov_bufs *b, double *hbuf)
{
    fli_cuda_state *st = fli_state(env);
    cudaStream_t s = st->stream;
    const int64_t n = job->n, d = job->d, ld = job->ld;
    const int host = job->x_dev < 0, two = p->streams == 2;
    /* the split / centring kernels run on ss: with two streams the next
     * chunk's split overlaps this chunk's product */
    cudaStream_t ss = two ? st->copy_stream : s;
    const int64_t nbk_rows = p->part_rows;
    const int fused = p->variant >= 6;
    /* variant 6 on Hopper: the wgmma kernel; 7 (A/B) forces mma.sync */
    const int sm90 = p->variant == 6 && pca_sm90(env);
    const size_t zbytes = (size_t)p->esize * (size_t)(p->R * p->wcols);
    if (!fused) {
        FLI_TRY(slot(env, c, SL_Z0, zbytes, &b->Z[0]));
        b->Z[1] = b->Z[0];
        if (two) FLI_TRY(slot(env, c, SL_Z1, zbytes, &b->Z[1]));
    }
    FLI_TRY(slot(env, c, SL_P, (fused ? sizeof(double) : sizeof(float)) * p->p_elems, &b->P));
    FLI_TRY(slot(env, c, SL_SHIFT, sizeof(float) * (size_t)d, &b->s));
    FLI_TRY(slot(env, c, SL_S, sizeof(double) * (size_t)(d * d), &b->S));
    FLI_TRY(slot(env, c, SL_T, sizeof(double) * (size_t)d, &b->t));
    FLI_TRY(slot(env, c, SL_T2, sizeof(double) * (size_t)d, &b->t2));
    FLI_TRY(slot(env, c, SL_T3, sizeof(double) * (size_t)d, &b->t3));
    FLI_TRY(slot(env, c, SL_MEAN, sizeof(double) * (size_t)d, &b->mean));
    FLI_TRY(slot(env, c, SL_PART, sizeof(double) * (size_t)(3 * nbk_rows * d), &b->part));
    FLI_TRY(slot(env, c, SL_WS, BLAS_WS_BYTES, &b->blas_ws));
    b->ready[0] = c->ev[0], b->ready[1] = c->ev[1], b->done[0] = c->ev[2], b->done[1] = c->ev[3];
    b->split[0] = c->ev[0], b->split[1] = c->ev[1], b->prod[0] = c->ev[2], b->prod[1] = c->ev[3];
    if (host) {
        FLI_TRY(slot(env, c, SL_STAGE0, sizeof(float) * (size_t)(p->R * d), &b->stage[0]));
        FLI_TRY(slot(env, c, SL_STAGE1, sizeof(float) * (size_t)(p->R * d), &b->stage[1]));
    }
    if (p->variant == 1) {
        /* the (slice, tile) pointer arrays: Z lives at one address, so one set
         * serves every chunk */
        const int64_t nb = p->B * p->T;
        const void **hp = (const void **)fli_host_alloc(env, sizeof(void *) * (size_t)(3 * nb));
        if (!hp) return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "pca_cov", "host allocation failed");
        fl_status rc = slot(env, c, SL_PTRS, sizeof(void *) * (size_t)(3 * nb), &b->ptrs);
        if (!rc) {
            for (int64_t sl = 0; sl < p->B; sl++)
                for (int J = 0, t = 0; J < p->nbk; J++)
                    for (int I = J; I < p->nbk; I++, t++) {
                        const int64_t q = sl * p->T + t;
                        hp[q] = b->Z[0] + sl * p->rs * p->dp + (int64_t)I * p->bs;
                        hp[nb + q] = b->Z[0] + sl * p->rs * p->dp + (int64_t)J * p->bs;
                        hp[2 * nb + q] = b->P + q * p->bs * p->bs;
                    }
            cudaError_t e = cudaMemcpyAsync(b->ptrs, hp, sizeof(void *) * (size_t)(3 * nb),
                                            cudaMemcpyHostToDevice, s);
            if (e == cudaSuccess) e = cudaStreamSynchronize(s);
            if (e != cudaSuccess) rc = fli_cuda_fail(env, __FILE__, __LINE__, "pointer arrays", e);
        }
        fli_host_free(env, hp);
        FLI_TRY(rc);
    }
    cublasHandle_t h = NULL;
    FLI_TRY(blas_bind(env, b->blas_ws, BLAS_WS_BYTES, job->tf32, &h));
    FLI_CUDA_TRY(env, cudaMemsetAsync(b->S, 0, sizeof(double) * (size_t)(d * d), s));
    FLI_CUDA_TRY(env, cudaMemsetAsync(b->t, 0, sizeof(double) * (size_t)d, s));
    FLI_CUDA_TRY(env, cudaMemsetAsync(b->t2, 0, sizeof(double) * (size_t)d, s));
    FLI_CUDA_TRY(env, cudaMemsetAsync(b->part, 0, sizeof(double) * (size_t)(3 * nbk_rows * d), s));
    if (fused) FLI_CUDA_TRY(env, cudaMemsetAsync(b->P, 0, sizeof(double) * p->p_elems, s));

    const int64_t nchunks = fli_ceil_div(n, p->R);
    const int64_t r0 = n < 4096 ? (n < p->R ? n : p->R) : (p->R < 4096 ? p->R : 4096);
    /* host data: chunk c is copied into stage[c % 2] on the copy stream while
     * chunk c - 1 is centred and multiplied */
    auto copy_chunk = [&](int64_t ci) -> fl_status {
        const int64_t row = ci * p->R, rows = row + p->R <= n ? p->R : n - row;
        const int k = (int)(ci & 1);
        FLI_CUDA_TRY(env, cudaStreamWaitEvent(st->copy_stream, b->done[k], 0));
        FLI_TRY(fli_h2d(env, b->stage[k], sizeof(float) * (size_t)d, job->X + row * ld, sizeof(float) * (size_t)ld,
                        sizeof(float) * (size_t)d, (size_t)rows, st->copy_stream));
        FLI_CUDA_TRY(env, cudaEventRecord(b->ready[k], st->copy_stream));
        return FL_STATUS_OK;
    };
    if (host) {
        for (int i = 0; i < 2; i++) FLI_CUDA_TRY(env, cudaEventRecord(b->done[i], s));
        FLI_TRY(copy_chunk(0));
        FLI_CUDA_TRY(env, cudaStreamWaitEvent(s, b->ready[0], 0));
        pca_shift_kernel<<<(int)fli_ceil_div(d, 32), dim3(32, 32), 0, s>>>(b->stage[0], d, r0, (int)d, b->s);
    } else {
        pca_shift_kernel<<<(int)fli_ceil_div(d, 32), dim3(32, 32), 0, s>>>(job->X, ld, r0, (int)d, b->s);
    }
    FLI_LAUNCH_TRY(env, "pca_shift_kernel");
    if (two) {
        /* the split stream starts after the shift and the zeroing; each
         * chunk buffer is free once the product that read it is done */
        for (int i = 0; i < 2; i++) FLI_CUDA_TRY(env, cudaEventRecord(b->prod[i], s));
    }
    const int64_t fold_blocks = fli_ceil_div(d * d, 256);
    for (int64_t ci = 0; ci < nchunks; ci++) {
        const int64_t row = ci * p->R, rows = row + p->R <= n ? p->R : n - row;
        const int kb = two ? (int)(ci & 1) : 0;
        const float *src = job->X + row * ld;
        int64_t sld = ld;
        if (host) {
            if (ci + 1 < nchunks) FLI_TRY(copy_chunk(ci + 1));
            FLI_CUDA_TRY(env, cudaStreamWaitEvent(s, b->ready[ci & 1], 0));
            src = b->stage[ci & 1];
            sld = d;
        }
        if (fused) {
            double *part2 = b->part + nbk_rows * d;
            FLI_CUDA_TRY(env, fli_pca_tf3_launch(src, sld, rows, (int)d, b->s, (int)p->B, sm90, (double *)b->P,
                                                 b->part, part2, s));
            if (host) FLI_CUDA_TRY(env, cudaEventRecord(b->done[ci & 1], s));
            if (env->progress && (ci & 63) == 63) {
                FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
                if (env->progress(env->progress_user, "pca.covariance", ci + 1, nchunks))
                    return FLI_FAIL(env, FL_STATUS_CANCELLED, "pca_cov", "cancelled by the progress callback");
            }
            continue;
        }
        if (two) FLI_CUDA_TRY(env, cudaStreamWaitEvent(ss, b->prod[kb], 0));
        /* the last chunk may be short: its slices read zero rows past n */
        const int64_t rows_pad = ci == nchunks - 1 ? p->R : rows;
        dim3 grid((unsigned)fli_ceil_div(p->dp, CENTER_THREADS), (unsigned)fli_ceil_div(rows_pad, p->brows));
        double *part2 = b->part + nbk_rows * d, *part3 = b->part + 2 * nbk_rows * d;
        if (p->variant == 5)
            pca_center_kernel<__nv_bfloat16, true, SPLIT_ROWS><<<grid, CENTER_THREADS, 0, ss>>>(
                src, sld, rows, rows_pad, (int)d, p->dp, b->s, (__nv_bfloat16 *)b->Z[kb], b->part, part2, part3);
        else if (p->variant == 4)
            pca_center_kernel<float, true, SPLIT_ROWS><<<grid, CENTER_THREADS, 0, ss>>>(
                src, sld, rows, rows_pad, (int)d, p->dp, b->s, b->Z[kb], b->part, part2, NULL);
        else
            pca_center_kernel<float, false, CENTER_ROWS><<<grid, CENTER_THREADS, 0, ss>>>(
                src, sld, rows, rows_pad, (int)d, p->dp, b->s, b->Z[kb], b->part, NULL, NULL);
        FLI_LAUNCH_TRY(env, "pca_center_kernel");
        if (two) {
            FLI_CUDA_TRY(env, cudaEventRecord(b->split[kb], ss));
            FLI_CUDA_TRY(env, cudaStreamWaitEvent(s, b->split[kb], 0));
        }
        if (host) FLI_CUDA_TRY(env, cudaEventRecord(b->done[ci & 1], s));
        const int64_t g = ci % p->G;
        FLI_TRY(chunk_product(env, h, p, b, b->Z[kb], g == 0 ? 0.f : 1.f, job->tf32));
        if (two) FLI_CUDA_TRY(env, cudaEventRecord(b->prod[kb], s));
        if (g == p->G - 1 || ci == nchunks - 1) {
            pca_fold_kernel<<<(unsigned)fold_blocks, 256, 0, s>>>(b->P, p->variant, p->variant == 3 ? 1 : p->B,
                                                                 p->bs, p->nbk, p->dp, (int)d, b->S);
            FLI_LAUNCH_TRY(env, "pca_fold_kernel");
        }
        if (env->progress && (ci & 63) == 63) {
            FLI_CUDA_TRY(env, cudaStreamSynchronize(ss));
            FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
            if (env->progress(env->progress_user, "pca.covariance", ci + 1, nchunks))
                return FLI_FAIL(env, FL_STATUS_CANCELLED, "pca_cov", "cancelled by the progress callback");
        }
    }
    if (two) {
        /* the column sums were written on the split stream */
        FLI_CUDA_TRY(env, cudaEventRecord(c->ev[4], ss));
        FLI_CUDA_TRY(env, cudaStreamWaitEvent(s, c->ev[4], 0));
    }
    if (fused) FLI_CUDA_TRY(env, fli_pca_tf3_fold((const double *)b->P, (int)p->B, (int)d, sm90, b->S, s));
    pca_colsum_kernel<<<(int)fli_ceil_div(d, 128), 128, 0, s>>>(b->part, (int)nbk_rows, (int)d, b->t);
    FLI_LAUNCH_TRY(env, "pca_colsum_kernel");
    /* variant 4: the tensor cores' float32 accumulation truncates, which
     * shrinks the product by a nearly uniform factor (1.3e-5 at 2048-row
     * depth, bench_pca 5329628-wip: the same on every eigenvalue, the
     * eigenvectors untouched); scaling S symmetrically so that its
     * diagonal is the exact sum of z^2 (float64, from the split) removes
     * that factor */
    const int rescale = p->variant >= 4 && !job->no_rescale;
    /* variant 5: lo^T lo's diagonal, which the product leaves out */
    const double *q = p->variant == 5 ? b->t3 : NULL;
    if (q) {
        pca_colsum_kernel<<<(int)fli_ceil_div(d, 128), 128, 0, s>>>(b->part + 2 * nbk_rows * d, (int)nbk_rows,
                                                                    (int)d, b->t3);
        FLI_LAUNCH_TRY(env, "pca_colsum_kernel");
    }
    if (rescale) {
        pca_colsum_kernel<<<(int)fli_ceil_div(d, 128), 128, 0, s>>>(b->part + nbk_rows * d, (int)nbk_rows,
                                                                    (int)d, b->t2);
        FLI_LAUNCH_TRY(env, "pca_colsum_kernel");
        pca_rescale_kernel<<<(int)fli_ceil_div(d, 128), 128, 0, s>>>(b->S, q, (int)d, b->t2);
        FLI_LAUNCH_TRY(env, "pca_rescale_kernel");
    }
    pca_finish_kernel<<<(unsigned)fold_blocks, 256, 0, s>>>(b->S, b->t, b->s, (int)d, (double)n, p->variant >= 4,
                                                           rescale ? b->t2 : NULL, q, b->mean);
    FLI_LAUNCH_TRY(env, "pca_finish_kernel");
    blas_unbind(env);

    /* means and the diagonal (the trace) back: a NaN/Inf anywhere in X
     * makes its column's sum non-finite, so this is the finiteness check
     * of the whole pass */
    double *hS = hbuf + d, *hW = hS + d * d;
    FLI_CUDA_TRY(env, cudaMemcpyAsync(hbuf, b->mean, sizeof(double) * (size_t)d, cudaMemcpyDeviceToHost, s));
    FLI_CUDA_TRY(env, cudaMemcpy2DAsync(hW, sizeof(double), b->S, sizeof(double) * (size_t)(d + 1),
                                        sizeof(double), (size_t)d, cudaMemcpyDeviceToHost, s));
    FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
    for (int64_t j = 0; j < d; j++)
        if (!isfinite(hbuf[j])) {
            job->nonfinite = 1;
            char why[96];
            snprintf(why, sizeof why, "X holds NaN or Inf (column %lld)", (long long)j);
            return FLI_FAIL(env, FL_STATUS_INVALID_ARG, "pca_cov", why);
        }
    double tr = 0;
    for (int64_t i = 0; i < d; i++) tr += hW[i];
    if (job->eigh == FLI_COV_EIGH_HOST) {
        FLI_CUDA_TRY(env, cudaMemcpyAsync(hS, b->S, sizeof(double) * (size_t)(d * d), cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
        memcpy(job->scatter, hS, sizeof(double) * (size_t)(d * d));
        job->n_out = 0;
    } else if (job->eigh == FLI_COV_EIGH_DEVICE) {
        job->scatter_dev = b->S;
        job->n_out = 0;
    } else {
        FLI_TRY(cov_eigh(env, c, job, b, hS, hW));
    }
    memcpy(job->mean, hbuf, sizeof(double) * (size_t)d);
    job->total_ss = tr;
    return FL_STATUS_OK;
}

extern "C" fl_status fli_cuda_pca_cov(fli_cuda_env *env, fli_pca_cov_job *job)
{
    job->nonfinite = 0;
    job->scatter_dev = NULL;
    if (job->n < 1 || job->d < 1 || job->ld < job->d || job->d > 46340)
        return FLI_FAIL(env, FL_STATUS_INVALID_ARG, "pca_cov", "bad shape (n, d >= 1, ld >= d, d <= 46340)");
    if (job->variant < 0 || job->variant > 7 || (job->tile > 0 && job->tile % 32) || job->eigh < 0 ||
        job->eigh > FLI_COV_EIGH_DEVICE)
        return FLI_FAIL(env, FL_STATUS_INVALID_ARG, "pca_cov", "variant in 0..7, tile a multiple of 32");
    FLI_CUDA_TRY(env, cudaSetDevice(env->device_id));
    cov_plan p;
    plan_cov(job, fli_state(env)->sm_count, pca_sm90(env), &p);
    if (p.rs > 2147483647 || p.dp > 46368)
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "pca_cov", "shape beyond 32-bit BLAS sizes");
    pca_cache *c = NULL;
    FLI_TRY(cache_get(env, &c));
    const int64_t d = job->d;
    double *hbuf = (double *)fli_host_alloc(env, sizeof(double) * (size_t)(d + d * d + 2 * d));
    if (!hbuf) return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "pca_cov", "host allocation failed");
    cov_bufs b;
    memset(&b, 0, sizeof b);
    fl_status rc = cov_body(env, c, job, &p, &b, hbuf);
    if (rc) {
        blas_unbind(env);
        cudaStreamSynchronize(fli_state(env)->stream);
        cudaStreamSynchronize(fli_state(env)->copy_stream);
        (void)cudaGetLastError();
        job->scatter_dev = NULL;
    }
    fli_host_free(env, hbuf);
    return rc;
}

/* ---- transform / inverse_transform -------------------------------------------- */

/*
 * out = (in - pre) M + post, row chunks at a time: forward M = C^T / scale,
 * pre = mean (centred before the product, as the CPU does, so a large mean
 * costs no accuracy); inverse M = diag(scale) C, post = mean. M is formed in
 * float64 on the host and rounded once to float32.
 */
typedef struct apply_bufs {
    float *M, *v, *in, *out;
    void *blas_ws;
} apply_bufs;

static fl_status apply_body(fli_cuda_env *env, const fli_decomp_apply_job *job, apply_bufs *b, float *hM)
{
    cudaStream_t s = fli_state(env)->stream;
    const int64_t n = job->n, din = job->inverse ? job->k : job->d, dout = job->inverse ? job->d : job->k;
    for (int64_t j = 0; j < job->k; j++) {
        const double f = !job->scale ? 1.0 : job->inverse ? job->scale[j] : 1.0 / job->scale[j];
        for (int64_t c = 0; c < job->d; c++) {
            const float v = (float)(job->components[j * job->d + c] * f);
            if (job->inverse)
                hM[j * dout + c] = v; /* din = k rows, dout = d cols */
            else
                hM[c * dout + j] = v; /* din = d rows, dout = k cols */
        }
    }
    float *hv = hM + din * dout;
    const int has_v = job->mean != NULL;
    for (int64_t c = 0; c < job->d && has_v; c++) hv[c] = (float)job->mean[c];
    const int64_t R0 = ((int64_t)64 << 20) / (int64_t)sizeof(float) / (din + dout);
    const int64_t R = n < R0 ? n : (R0 < 1 ? 1 : R0);
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(din * dout), (void **)&b->M));
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)job->d, (void **)&b->v));
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(R * din), (void **)&b->in));
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(R * dout), (void **)&b->out));
    FLI_TRY(fli_dev_alloc(env, BLAS_WS_BYTES, &b->blas_ws));
    FLI_CUDA_TRY(env, cudaMemcpyAsync(b->M, hM, sizeof(float) * (size_t)(din * dout), cudaMemcpyHostToDevice, s));
    if (has_v)
        FLI_CUDA_TRY(env, cudaMemcpyAsync(b->v, hv, sizeof(float) * (size_t)job->d, cudaMemcpyHostToDevice, s));
    cublasHandle_t h = NULL;
    FLI_TRY(blas_bind(env, b->blas_ws, BLAS_WS_BYTES, 0, &h));
    const float one = 1.f, zero = 0.f;
    const float *in = (const float *)job->in;
    float *out = (float *)job->out;
    for (int64_t row = 0; row < n; row += R) {
        const int64_t rows = row + R <= n ? R : n - row;
        const float *src = in + row * job->in_ld;
        int64_t sld = job->in_ld;
        if (job->in_dev < 0) {
            FLI_TRY(fli_h2d(env, b->in, sizeof(float) * (size_t)din, src, sizeof(float) * (size_t)job->in_ld,
                            sizeof(float) * (size_t)din, (size_t)rows, s));
            src = b->in;
            sld = din;
        }
        if (!job->inverse && has_v) {
            const int64_t tot = rows * din;
            pca_sub_kernel<<<(unsigned)fli_ceil_div(tot, 256), 256, 0, s>>>(src, sld, rows, (int)din, b->v, b->in);
            FLI_LAUNCH_TRY(env, "pca_sub_kernel");
            src = b->in;
            sld = din;
        }
        float *dst = job->out_dev >= 0 ? out + row * job->out_ld : b->out;
        const int64_t dld = job->out_dev >= 0 ? job->out_ld : dout;
        /* row-major out (rows x dout) = src (rows x din) M (din x dout), in
         * cuBLAS's column-major view: out^T = M^T src^T */
        BLAS_TRY(env, cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, (int)dout, (int)rows, (int)din, &one, b->M,
                                  (int)dout, src, (int)sld, &zero, dst, (int)dld));
        if (job->inverse && has_v) {
            const int64_t tot = rows * dout;
            pca_add_kernel<<<(unsigned)fli_ceil_div(tot, 256), 256, 0, s>>>(dst, dld, rows, (int)dout, b->v);
            FLI_LAUNCH_TRY(env, "pca_add_kernel");
        }
        if (job->out_dev < 0)
            FLI_CUDA_TRY(env, cudaMemcpy2DAsync(out + row * job->out_ld, sizeof(float) * (size_t)job->out_ld, dst,
                                                sizeof(float) * (size_t)dout, sizeof(float) * (size_t)dout,
                                                (size_t)rows, cudaMemcpyDeviceToHost, s));
    }
    FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
    return FL_STATUS_OK;
}

extern "C" fl_status fli_cuda_decomp_apply(fli_cuda_env *env, const fli_decomp_apply_job *job)
{
    if (job->dtype != FL_DTYPE_F32)
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "decomp_apply", "the GPU path takes float32");
    FLI_CUDA_TRY(env, cudaSetDevice(env->device_id));
    const int64_t din = job->inverse ? job->k : job->d, dout = job->inverse ? job->d : job->k;
    float *hM = (float *)fli_host_alloc(env, sizeof(float) * (size_t)(din * dout + job->d));
    if (!hM) return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "decomp_apply", "host allocation failed");
    apply_bufs b;
    memset(&b, 0, sizeof b);
    fl_status rc = apply_body(env, job, &b, hM);
    if (rc) {
        cudaStreamSynchronize(fli_state(env)->stream);
        (void)cudaGetLastError();
    }
    blas_unbind(env);
    fli_dev_free(env, b.M);
    fli_dev_free(env, b.v);
    fli_dev_free(env, b.in);
    fli_dev_free(env, b.out);
    fli_dev_free(env, b.blas_ws);
    fli_host_free(env, hM);
    return rc;
}
