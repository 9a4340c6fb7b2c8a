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
 *   2. per chunk of R rows: Z = fl(X - s) into an L2-sized scratch (padded
 *      to dp columns, rows past n zeroed), its column sums t into per-block
 *      partials (summed in a fixed order: the result is deterministic);
 *   3. Z^T Z accumulated by cuBLAS in float32 over the chunks of a group
 *      (B row slices side by side so that the small d x d product fills the
 *      GPU), the group's partials then added into a float64 scatter;
 *   4. S = Z^T Z - t t^T / n, mean = s + t / n (float64).
 *
 * Step 4 is exact algebra for the shifted data Z, and because s is already
 * close to the mean, t is small: the correction cancels almost nothing,
 * unlike X^T X - n m m^T, whose float32 products lose the variance under
 * the mean's square when |mean| >> std (the shifted-data algorithm, Chan,
 * Golub and LeVeque, "Algorithms for computing the sample variance"). The
 * products are exact float32 (no TF32 unless job->tf32), each partial sums
 * at most one group of rows before it is folded into float64, as the CPU
 * path folds its float32 blocks.
 *
 * Product variants (job->variant, 0 = default 1), measured on the H100 at
 * 1,000,000 x 512 (bench_pca, scatter only):
 *   1 the lower triangle in tiles of bs x bs (one batched GEMM over every
 *     (slice, tile) pair per chunk): SYRK's half of the FLOPs with GEMM
 *     kernels, the padding of d to bs wasted. 14.5 ms (bs 128, 32k-row
 *     chunks; bs 64 was 19.5, bs 256 16.6 at 8k-row chunks vs 17.3);
 *   2 the full d x d product per slice (strided batched GEMM): 15.8 ms;
 *   3 cublasSsyrk per chunk: 90 ms (cuBLAS's fp32 SYRK is not tuned for
 *     a short, deep product).
 *
 * Eigh (job->eigh): cuSOLVER's float64 syevd (all pairs) or syevdx (top k)
 * on the device, or the scatter back to the host for the CPU's dsyevd;
 * float32 syevd/syevdx of the rounded scatter for A/B. At d = 512 on the
 * H100: syevd 5.6 ms, syevdx top 32 5.1 ms (but 3e-7 from syevd's values:
 * it stops at a float32-like tolerance), float32 5.1-6.0 ms (no faster),
 * the host's dsyevd 44 ms plus the copy. The algo layer uses syevd.
 * Eigenvectors are returned largest first; the algo layer flips signs.
 */
#include <cublas_v2.h>
#include <cusolverDn.h>
#include <math.h>
#include <string.h>

#include "backends/cuda/fl_cuda_util.cuh"

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

#define CENTER_THREADS 256
#define CENTER_ROWS 64

/* Z[i][j] = X[i][j] - s[j] for i < rows (0 beyond, up to rows_pad), j < d
 * (0 for d <= j < dp); part[blockIdx.y][j] = the block's column sums of Z
 * in float64. Grid: (ceil(dp / 256), ceil(rows_pad / 64)); each thread
 * walks 64 rows of one column, so loads and stores are coalesced. */
__global__ void pca_center_kernel(const float *__restrict__ X, int64_t ld, int64_t rows, int64_t rows_pad,
                                  int d, int dp, const float *__restrict__ s, float *__restrict__ Z,
                                  double *__restrict__ part)
{
    const int j = blockIdx.x * CENTER_THREADS + threadIdx.x;
    if (j >= dp) return;
    const int64_t i0 = (int64_t)blockIdx.y * CENTER_ROWS;
    const float sj = j < d ? s[j] : 0.f;
    double acc = 0;
#pragma unroll 8
    for (int r = 0; r < CENTER_ROWS; r++) {
        const int64_t i = i0 + r;
        if (i >= rows_pad) break;
        float z = 0.f;
        if (j < d && i < rows) z = X[i * ld + j] - sj;
        Z[i * dp + j] = z;
        acc += z;
    }
    if (j < d) part[(int64_t)blockIdx.y * d + j] = acc;
}

/* t[j] += sum over nb blocks of part[b][j], in block order. */
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
 *     block-column order; 2 P[b] dp x dp; 3 one dp x dp (lower). */
__global__ void pca_fold_kernel(const float *__restrict__ P, int variant, int64_t B, int bs, int nbk, int dp,
                                int d, double *__restrict__ S)
{
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)d * d) return;
    const int i = (int)(idx % d), j = (int)(idx / d);
    if (i < j) return;
    double acc = 0;
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

/* S(i, j) = S(j, i) = S_lower(i, j) - t_i t_j / n; mean = s + t / n. */
__global__ void pca_finish_kernel(double *S, const double *__restrict__ t, const float *__restrict__ s,
                                  int d, double n, double *mean)
{
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)d * d) return;
    const int i = (int)(idx % d), j = (int)(idx / d);
    if (idx < d) mean[idx] = (double)s[idx] + t[idx] / n;
    if (i < j) return;
    const double v = S[idx] - t[i] * t[j] / n;
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

/* ---- the covariance pass ---------------------------------------------------- */

typedef struct cov_plan {
    int variant;
    int64_t R, B, rs; /* chunk rows, slices per chunk, rows per slice (R = B rs) */
    int bs, nbk, dp;  /* tile edge, tiles per side, padded width */
    int64_t T;        /* GEMMs per slice (tiles; 1 for the others) */
    int64_t G;        /* chunks per group before the float64 fold */
    size_t p_elems;   /* floats of the partial products */
} cov_plan;

static void plan_cov(const fli_pca_cov_job *job, int sm_count, cov_plan *p)
{
    const int64_t d = job->d;
    p->variant = job->variant ? job->variant : 1;
    p->bs = job->tile > 0 ? (int)job->tile : 128;
    if (p->variant == 1 && d <= 64) p->bs = 32 * (int)((d + 31) / 32); /* one tile */
    if (p->variant == 1 && d > 64 && d <= 128) p->bs = 64;
    const int align = p->variant == 1 ? p->bs : 32;
    p->dp = (int)((d + align - 1) / align * align);
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
    int64_t rs = job->chunk_rows > 0 ? job->chunk_rows / p->B : ((int64_t)16 << 20) / p->dp / p->B;
    rs = rs < 32 ? 32 : rs / 32 * 32;
    const int64_t need = fli_ceil_div(job->n, p->B);
    if (rs > need) rs = (need + 31) / 32 * 32;
    p->rs = rs;
    p->R = rs * p->B;
    /* fold float32 partials into float64 every ~32k rows per partial */
    p->G = (32768 + rs - 1) / rs;
    p->p_elems = p->variant == 1   ? (size_t)(p->B * p->T) * (size_t)p->bs * (size_t)p->bs
                 : p->variant == 2 ? (size_t)p->B * (size_t)p->dp * (size_t)p->dp
                                   : (size_t)p->dp * (size_t)p->dp;
}

/* Every device buffer of one covariance pass, freed together. */
typedef struct cov_bufs {
    float *Z, *P, *s, *stage[2];
    double *S, *t, *part, *mean, *W, *work;
    const void **ptrs; /* variant 1: A, B, C pointer arrays */
    void *blas_ws;
    int *info;
    cudaEvent_t ready[2], done[2];
} cov_bufs;

static void free_bufs(fli_cuda_env *env, cov_bufs *b)
{
    void *all[] = {b->Z, b->P, b->s, b->stage[0], b->stage[1], b->S, b->t, b->part, b->mean, b->W, b->work,
                   (void *)b->ptrs, b->blas_ws, b->info};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) fli_dev_free(env, all[i]);
    for (int i = 0; i < 2; i++) {
        if (b->ready[i]) cudaEventDestroy(b->ready[i]);
        if (b->done[i]) cudaEventDestroy(b->done[i]);
    }
}

#define BLAS_WS_BYTES ((size_t)32 << 20)

/* One chunk's product into the partials (beta 0 starts a group). */
static fl_status chunk_product(fli_cuda_env *env, cublasHandle_t h, const cov_plan *p, cov_bufs *b, float beta,
                               int tf32)
{
    const float one = 1.f;
    const cublasComputeType_t ct = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    if (p->variant == 1) {
        const int64_t nb = p->B * p->T;
        BLAS_TRY(env, cublasGemmBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_T, p->bs, p->bs, (int)p->rs, &one,
                                          (const void *const *)b->ptrs, CUDA_R_32F, p->dp,
                                          (const void *const *)(b->ptrs + nb), CUDA_R_32F, p->dp, &beta,
                                          (void *const *)(b->ptrs + 2 * nb), CUDA_R_32F, p->bs, (int)nb, ct,
                                          CUBLAS_GEMM_DEFAULT));
    } else if (p->variant == 2) {
        BLAS_TRY(env, cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_T, p->dp, p->dp, (int)p->rs, &one,
                                                 b->Z, CUDA_R_32F, p->dp, p->rs * p->dp, b->Z, CUDA_R_32F, p->dp,
                                                 p->rs * p->dp, &beta, b->P, CUDA_R_32F, p->dp,
                                                 (int64_t)p->dp * p->dp, (int)p->B, ct, CUBLAS_GEMM_DEFAULT));
    } else {
        BLAS_TRY(env, cublasSsyrk(h, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, p->dp, (int)p->R, &one, b->Z, p->dp,
                                  &beta, b->P, p->dp));
    }
    return FL_STATUS_OK;
}

static fl_status cov_body(fli_cuda_env *env, fli_pca_cov_job *job, const cov_plan *p, cov_bufs *b,
                          double *hbuf)
{
    fli_cuda_state *st = fli_state(env);
    cudaStream_t s = st->stream;
    const int64_t n = job->n, d = job->d, ld = job->ld;
    const int host = job->x_dev < 0;
    const int64_t nbk_rows = fli_ceil_div(p->R, CENTER_ROWS);
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(p->R * p->dp), (void **)&b->Z));
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * p->p_elems, (void **)&b->P));
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)d, (void **)&b->s));
    FLI_TRY(fli_dev_alloc(env, sizeof(double) * (size_t)(d * d), (void **)&b->S));
    FLI_TRY(fli_dev_alloc(env, sizeof(double) * (size_t)d, (void **)&b->t));
    FLI_TRY(fli_dev_alloc(env, sizeof(double) * (size_t)d, (void **)&b->mean));
    FLI_TRY(fli_dev_alloc(env, sizeof(double) * (size_t)(nbk_rows * d), (void **)&b->part));
    FLI_TRY(fli_dev_alloc(env, BLAS_WS_BYTES, &b->blas_ws));
    if (host) {
        for (int i = 0; i < 2; i++) {
            FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(p->R * d), (void **)&b->stage[i]));
            FLI_CUDA_TRY(env, cudaEventCreateWithFlags(&b->ready[i], cudaEventDisableTiming));
            FLI_CUDA_TRY(env, cudaEventCreateWithFlags(&b->done[i], cudaEventDisableTiming));
        }
    }
    if (p->variant == 1) {
        /* the (slice, tile) pointer arrays: Z lives at one address, so one set
         * serves every chunk */
        const int64_t nb = p->B * p->T;
        const void **hp = (const void **)fli_host_alloc(env, sizeof(void *) * (size_t)(3 * nb));
        if (!hp) return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "pca_cov", "host allocation failed");
        fl_status rc = fli_dev_alloc(env, sizeof(void *) * (size_t)(3 * nb), (void **)&b->ptrs);
        if (!rc) {
            for (int64_t sl = 0; sl < p->B; sl++)
                for (int J = 0, t = 0; J < p->nbk; J++)
                    for (int I = J; I < p->nbk; I++, t++) {
                        const int64_t q = sl * p->T + t;
                        hp[q] = b->Z + sl * p->rs * p->dp + (int64_t)I * p->bs;
                        hp[nb + q] = b->Z + sl * p->rs * p->dp + (int64_t)J * p->bs;
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

    const int64_t nchunks = fli_ceil_div(n, p->R);
    const int64_t r0 = n < 4096 ? (n < p->R ? n : p->R) : (p->R < 4096 ? p->R : 4096);
    /* host data: chunk c is copied into stage[c % 2] on the copy stream while
     * chunk c - 1 is centred and multiplied */
    auto copy_chunk = [&](int64_t c) -> fl_status {
        const int64_t row = c * p->R, rows = row + p->R <= n ? p->R : n - row;
        const int k = (int)(c & 1);
        FLI_CUDA_TRY(env, cudaStreamWaitEvent(st->copy_stream, b->done[k], 0));
        FLI_CUDA_TRY(env, cudaMemcpy2DAsync(b->stage[k], sizeof(float) * (size_t)d, job->X + row * ld,
                                            sizeof(float) * (size_t)ld, sizeof(float) * (size_t)d, (size_t)rows,
                                            cudaMemcpyHostToDevice, st->copy_stream));
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
    const int64_t fold_blocks = fli_ceil_div(d * d, 256);
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t row = c * p->R, rows = row + p->R <= n ? p->R : n - row;
        const float *src = job->X + row * ld;
        int64_t sld = ld;
        if (host) {
            if (c + 1 < nchunks) FLI_TRY(copy_chunk(c + 1));
            FLI_CUDA_TRY(env, cudaStreamWaitEvent(s, b->ready[c & 1], 0));
            src = b->stage[c & 1];
            sld = d;
        }
        /* the last chunk may be short: its slices read zero rows past n */
        const int64_t rows_pad = c == nchunks - 1 ? p->R : rows;
        dim3 grid((unsigned)fli_ceil_div(p->dp, CENTER_THREADS), (unsigned)fli_ceil_div(rows_pad, CENTER_ROWS));
        pca_center_kernel<<<grid, CENTER_THREADS, 0, s>>>(src, sld, rows, rows_pad, (int)d, p->dp, b->s, b->Z,
                                                          b->part);
        FLI_LAUNCH_TRY(env, "pca_center_kernel");
        if (host) FLI_CUDA_TRY(env, cudaEventRecord(b->done[c & 1], s));
        pca_colsum_kernel<<<(int)fli_ceil_div(d, 128), 128, 0, s>>>(b->part, (int)grid.y, (int)d, b->t);
        FLI_LAUNCH_TRY(env, "pca_colsum_kernel");
        const int64_t g = c % p->G;
        FLI_TRY(chunk_product(env, h, p, b, g == 0 ? 0.f : 1.f, job->tf32));
        if (g == p->G - 1 || c == nchunks - 1) {
            pca_fold_kernel<<<(unsigned)fold_blocks, 256, 0, s>>>(b->P, p->variant, p->variant == 3 ? 1 : p->B,
                                                                 p->bs, p->nbk, p->dp, (int)d, b->S);
            FLI_LAUNCH_TRY(env, "pca_fold_kernel");
        }
        if (env->progress && (c & 63) == 63) {
            FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
            if (env->progress(env->progress_user, "pca.covariance", c + 1, nchunks))
                return FLI_FAIL(env, FL_STATUS_CANCELLED, "pca_cov", "cancelled by the progress callback");
        }
    }
    pca_finish_kernel<<<(unsigned)fold_blocks, 256, 0, s>>>(b->S, b->t, b->s, (int)d, (double)n, b->mean);
    FLI_LAUNCH_TRY(env, "pca_finish_kernel");
    blas_unbind(env);

    /* means back first: a NaN/Inf anywhere in X makes its column's sum
     * non-finite, so this is the finiteness check of the whole pass */
    FLI_CUDA_TRY(env, cudaMemcpyAsync(hbuf, b->mean, sizeof(double) * (size_t)d, cudaMemcpyDeviceToHost, s));
    FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
    for (int64_t j = 0; j < d; j++)
        if (!isfinite(hbuf[j])) {
            job->nonfinite = 1;
            char why[96];
            snprintf(why, sizeof why, "X holds NaN or Inf (column %lld)", (long long)j);
            return FLI_FAIL(env, FL_STATUS_INVALID_ARG, "pca_cov", why);
        }
    double *hS = hbuf + d, *hW = hS + d * d;
    if (job->eigh == FLI_COV_EIGH_HOST) {
        FLI_CUDA_TRY(env, cudaMemcpyAsync(hS, b->S, sizeof(double) * (size_t)(d * d), cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
        double tr = 0;
        for (int64_t i = 0; i < d; i++) tr += hS[i * d + i];
        memcpy(job->mean, hbuf, sizeof(double) * (size_t)d);
        memcpy(job->scatter, hS, sizeof(double) * (size_t)(d * d));
        job->total_ss = tr;
        job->n_out = 0;
        return FL_STATUS_OK;
    }
    /* the trace before the eigensolver overwrites S */
    FLI_CUDA_TRY(env, cudaMemcpy2DAsync(hW, sizeof(double), b->S, sizeof(double) * (size_t)(d + 1),
                                        sizeof(double), (size_t)d, cudaMemcpyDeviceToHost, s));
    cusolverDnHandle_t sh = NULL;
    FLI_TRY(solver_get(env, &sh));
    const int nn = (int)d;
    int lwork = 0, meig = nn;
    const int top = job->eigh == FLI_COV_EIGH_SYEVDX || job->eigh == FLI_COV_EIGH_SYEVDX32;
    const int f32 = job->eigh == FLI_COV_EIGH_SYEVD32 || job->eigh == FLI_COV_EIGH_SYEVDX32;
    const int64_t k = top ? (job->k < 1 ? 1 : job->k > d ? d : job->k) : d;
    const int il = (int)(d - k + 1);
    FLI_TRY(fli_dev_alloc(env, sizeof(double) * (size_t)d, (void **)&b->W));
    FLI_TRY(fli_dev_alloc(env, sizeof(int), (void **)&b->info));
    if (f32) {
        /* the float32 solvers work in place of the float64 scatter's storage */
        float *A = (float *)b->Z, *W = (float *)b->W;
        if ((size_t)(p->R * p->dp) < (size_t)(d * d)) {
            fli_dev_free(env, b->Z);
            b->Z = NULL;
            FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(d * d), (void **)&b->Z));
            A = b->Z;
        }
        pca_d2s_kernel<<<(unsigned)fli_ceil_div(d * d, 256), 256, 0, s>>>(b->S, A, d * d);
        FLI_LAUNCH_TRY(env, "pca_d2s_kernel");
        if (top)
            SOLVER_TRY(env, cusolverDnSsyevdx_bufferSize(sh, CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I,
                                                         CUBLAS_FILL_MODE_LOWER, nn, A, nn, 0.f, 0.f, il, nn,
                                                         &meig, W, &lwork));
        else
            SOLVER_TRY(env, cusolverDnSsyevd_bufferSize(sh, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, nn,
                                                        A, nn, W, &lwork));
        FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(lwork > 0 ? lwork : 1), (void **)&b->work));
        if (top)
            SOLVER_TRY(env, cusolverDnSsyevdx(sh, CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I,
                                              CUBLAS_FILL_MODE_LOWER, nn, A, nn, 0.f, 0.f, il, nn, &meig, W,
                                              (float *)b->work, lwork, b->info));
        else
            SOLVER_TRY(env, cusolverDnSsyevd(sh, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, nn, A, nn, W,
                                             (float *)b->work, lwork, b->info));
    } else if (top) {
        SOLVER_TRY(env, cusolverDnDsyevdx_bufferSize(sh, CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I,
                                                     CUBLAS_FILL_MODE_LOWER, nn, b->S, nn, 0.0, 0.0, il, nn,
                                                     &meig, b->W, &lwork));
        FLI_TRY(fli_dev_alloc(env, sizeof(double) * (size_t)(lwork > 0 ? lwork : 1), (void **)&b->work));
        SOLVER_TRY(env, cusolverDnDsyevdx(sh, CUSOLVER_EIG_MODE_VECTOR, CUSOLVER_EIG_RANGE_I,
                                          CUBLAS_FILL_MODE_LOWER, nn, b->S, nn, 0.0, 0.0, il, nn, &meig, b->W,
                                          b->work, lwork, b->info));
    } else {
        SOLVER_TRY(env, cusolverDnDsyevd_bufferSize(sh, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, nn,
                                                    b->S, nn, b->W, &lwork));
        FLI_TRY(fli_dev_alloc(env, sizeof(double) * (size_t)(lwork > 0 ? lwork : 1), (void **)&b->work));
        SOLVER_TRY(env, cusolverDnDsyevd(sh, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, nn, b->S, nn,
                                         b->W, b->work, lwork, b->info));
    }
    int info = 0;
    FLI_CUDA_TRY(env, cudaMemcpyAsync(&info, b->info, sizeof(int), cudaMemcpyDeviceToHost, s));
    if (f32) {
        /* float32 vectors and values land in the front of hS / hW + d, then
         * widen in place from the back */
        float *vS = (float *)hS, *vW = (float *)(hW + d);
        FLI_CUDA_TRY(env, cudaMemcpyAsync(vS, b->Z, sizeof(float) * (size_t)(d * meig), cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaMemcpyAsync(vW, b->W, sizeof(float) * (size_t)meig, cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
        for (int64_t i = d * meig - 1; i >= 0; i--) hS[i] = (double)vS[i];
        for (int64_t i = meig - 1; i >= 0; i--) hW[d + i] = (double)vW[i];
    } else {
        FLI_CUDA_TRY(env, cudaMemcpyAsync(hS, b->S, sizeof(double) * (size_t)(d * meig), cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaMemcpyAsync(hW + d, b->W, sizeof(double) * (size_t)meig, cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
    }
    if (info != 0 || meig != (int)k) {
        char why[96];
        snprintf(why, sizeof why, "info %d, %d of %lld eigenpairs", info, meig, (long long)k);
        return FLI_FAIL(env, FL_STATUS_INTERNAL, "the eigensolver did not converge", why);
    }
    double tr = 0;
    for (int64_t i = 0; i < d; i++) tr += hW[i];
    /* columns ascending -> rows descending, as the CPU path returns them */
    for (int64_t i = 0; i < k; i++) {
        const int64_t j = meig - 1 - i;
        const double w = hW[d + j];
        job->sv[i] = w > 0 ? sqrt(w) : 0.0;
        memcpy(job->components + i * d, hS + j * d, sizeof(double) * (size_t)d);
    }
    memcpy(job->mean, hbuf, sizeof(double) * (size_t)d);
    job->total_ss = tr;
    job->n_out = k;
    return FL_STATUS_OK;
}

extern "C" fl_status fli_cuda_pca_cov(fli_cuda_env *env, fli_pca_cov_job *job)
{
    job->nonfinite = 0;
    if (job->n < 1 || job->d < 1 || job->ld < job->d || job->d > 46340)
        return FLI_FAIL(env, FL_STATUS_INVALID_ARG, "pca_cov", "bad shape (n, d >= 1, ld >= d, d <= 46340)");
    if (job->variant < 0 || job->variant > 3 || (job->tile > 0 && job->tile % 32) || job->eigh < 0 ||
        job->eigh > FLI_COV_EIGH_SYEVDX32)
        return FLI_FAIL(env, FL_STATUS_INVALID_ARG, "pca_cov", "variant in 0..3, tile a multiple of 32");
    FLI_CUDA_TRY(env, cudaSetDevice(env->device_id));
    cov_plan p;
    plan_cov(job, fli_state(env)->sm_count, &p);
    if (p.rs > 2147483647 || p.dp > 46368)
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "pca_cov", "shape beyond 32-bit BLAS sizes");
    const int64_t d = job->d;
    double *hbuf = (double *)fli_host_alloc(env, sizeof(double) * (size_t)(d + d * d + 2 * d));
    if (!hbuf) return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "pca_cov", "host allocation failed");
    cov_bufs b;
    memset(&b, 0, sizeof b);
    fl_status rc = cov_body(env, job, &p, &b, hbuf);
    if (rc) {
        blas_unbind(env);
        cudaStreamSynchronize(fli_state(env)->stream);
        cudaStreamSynchronize(fli_state(env)->copy_stream);
        (void)cudaGetLastError();
    }
    free_bufs(env, &b);
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
            FLI_CUDA_TRY(env, cudaMemcpy2DAsync(b->in, sizeof(float) * (size_t)din, src,
                                                sizeof(float) * (size_t)job->in_ld, sizeof(float) * (size_t)din,
                                                (size_t)rows, cudaMemcpyHostToDevice, s));
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
