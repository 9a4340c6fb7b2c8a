/*
 * pca_tf3.cu — PCA's covariance product as one kernel: the shifted rows'
 * Z^T Z on tf32 tensor cores at float32-level accuracy (3xtf32), with the
 * split into tf32 parts done in registers (variant 6 of pca_cuda.cu).
 *
 * Variant 4 splits Z = X - 1 s^T into [hi | lo] in memory and multiplies
 * with cuBLAS: the split writes 8 bytes per element and the GEMM reads
 * them back, 10 GB of traffic at 1,000,000 x 512 for 2 GB of X, and the
 * batched GEMMs of 2048-row slices have a short main loop. Here each block
 * owns one 128 x 128 tile of the lower triangle of the d x d product and a
 * range of rows: it streams X's two 128-column panels through shared
 * memory (cp.async, three stages), subtracts the shift while it loads the
 * mma.sync fragments, splits each value into hi = tf32(z) and lo =
 * tf32(z - hi) and issues hi_a hi_b + lo_a hi_b + hi_a lo_b (lo lo, 2^-22
 * relative, dropped, as variant 4 does). X is read from HBM about once: the
 * blocks of one row range run side by side and share it through L2.
 *
 * Accuracy as variant 4: the tensor cores' float32 accumulation truncates,
 * so the float32 accumulators are added into a float64 partial (the
 * block's own, in global memory) every TF3F_FLUSH row steps (2048 rows,
 * variant 4's depth), and pca_cuda.cu scales S so that its diagonal is the
 * exact float64 sum of z^2, which the diagonal tiles' blocks accumulate
 * here (with the column sums of z) from the same shared-memory panels.
 *
 * Layouts: a block's partial is 128 x 128 doubles in register order
 * (element r of thread t at r * 256 + t: coalesced), which
 * pca_tf3_fold_kernel maps back to (row, column) of the tile. The pair of
 * block b is b / splits (tiles (I, J), I >= J, numbered I (I + 1) / 2 + J),
 * its row range the (b % splits)-th of `splits` equal ranges of 32-row steps.
 */
#include <stdint.h>

#include "backends/cuda/pca_tf3.cuh"

#define TF3F_BK 32     /* rows per pipeline step                  */
#define TF3F_LDS 132   /* shared-memory row stride (floats): 128 + 4 keeps the
                          fragment loads free of bank conflicts     */
#define TF3F_STAGES 3
#define TF3F_FLUSH 64  /* row steps between float64 flushes (2048 rows) */

static __device__ __forceinline__ uint32_t to_tf32(float x)
{
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

static __device__ __forceinline__ void mma_tf32(float *c, const uint32_t *a, const uint32_t *b)
{
    /* not volatile: the compiler may interleave independent products */
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

static __device__ __forceinline__ void cp_async16(float *dst, const float *src, int bytes)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(src), "r"(bytes));
}
static __device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;"); }
template <int N> static __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N)); }

/* One 32 x 128 panel of X (rows row0.., columns col0..) into shared memory;
 * rows >= rows and columns >= d read as zero. 256 threads, 4 vectors each. */
static __device__ __forceinline__ void load_panel(float *sm, const float *__restrict__ X, int64_t ld, int64_t row0,
                                                  int64_t rows, int col0, int d)
{
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int v = threadIdx.x + 256 * i, r = v >> 5, c = col0 + (v & 31) * 4;
        const int64_t row = row0 + r;
        int bytes = (d - c) * 4;
        bytes = bytes > 16 ? 16 : bytes < 0 ? 0 : bytes;
        if (row >= rows) bytes = 0;
        cp_async16(sm + r * TF3F_LDS + (v & 31) * 4, bytes ? X + row * ld + c : X, bytes);
    }
}

__global__ void __launch_bounds__(256, 1)
    pca_tf3_kernel(const float *__restrict__ X, int64_t ld, int64_t rows, int d, const float *__restrict__ shift,
                   int splits, double *__restrict__ partial, double *__restrict__ colsum,
                   double *__restrict__ colsq)
{
    extern __shared__ float4 smem4[];
    float *smem = (float *)smem4;
    const int pair = blockIdx.x / splits, sp = blockIdx.x % splits;
    int I = 0;
    while ((I + 1) * (I + 2) / 2 <= pair) I++;
    const int J = pair - I * (I + 1) / 2, diag = I == J;
    const int colA = I * 128, colB = J * 128;
    const int64_t steps = (rows + TF3F_BK - 1) / TF3F_BK;
    const int64_t s0 = steps * sp / splits, s1 = steps * (sp + 1) / splits;
    const int panel = TF3F_BK * TF3F_LDS;
    float *As = smem, *Bs = smem + TF3F_STAGES * panel;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int wm = warp >> 2, wn = warp & 3; /* warp tile: rows wm*64.., columns wn*32.. */
    /* the shift of each fragment row / column this thread touches */
    float sa[8], sb[4];
#pragma unroll
    for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int c = colA + wm * 64 + mi * 16 + h * 8 + g;
            sa[mi * 2 + h] = c < d ? shift[c] : 0.f;
        }
#pragma unroll
    for (int ni = 0; ni < 4; ni++) {
        const int c = colB + wn * 32 + ni * 8 + g;
        sb[ni] = c < d ? shift[c] : 0.f;
    }
    /* the diagonal blocks' column statistics: thread -> column tid % 128,
     * rows (tid / 128) * 16 .. + 16 of each step */
    const int sc = threadIdx.x & 127, sh = threadIdx.x >> 7;
    const float ss = colA + sc < d ? shift[colA + sc] : 0.f;
    double sum = 0, sq = 0;

    float acc[64];
#pragma unroll
    for (int r = 0; r < 64; r++) acc[r] = 0.f;
    double *part = partial + (int64_t)blockIdx.x * 16384 + threadIdx.x;

#pragma unroll
    for (int st = 0; st < TF3F_STAGES - 1; st++) {
        if (s0 + st < s1) {
            load_panel(As + st * panel, X, ld, (s0 + st) * TF3F_BK, rows, colA, d);
            if (!diag) load_panel(Bs + st * panel, X, ld, (s0 + st) * TF3F_BK, rows, colB, d);
        }
        cp_commit();
    }
    int since = 0;
    for (int64_t s = s0; s < s1; s++) {
        cp_wait<TF3F_STAGES - 2>();
        __syncthreads();
        {
            const int64_t nx = s + TF3F_STAGES - 1;
            if (nx < s1) {
                const int slot = (int)((nx - s0) % TF3F_STAGES);
                load_panel(As + slot * panel, X, ld, nx * TF3F_BK, rows, colA, d);
                if (!diag) load_panel(Bs + slot * panel, X, ld, nx * TF3F_BK, rows, colB, d);
            }
            cp_commit();
        }
        const int slot = (int)((s - s0) % TF3F_STAGES);
        const float *A = As + slot * panel, *B = diag ? A : Bs + slot * panel;
        const int64_t lim = rows - s * TF3F_BK; /* rows of this step that exist */
#pragma unroll
        for (int k0 = 0; k0 < TF3F_BK; k0 += 8) {
            const bool v0 = k0 + t < lim, v1 = k0 + t + 4 < lim;
            uint32_t ah[4][4], al[4][4], bh[4][2], bl[4][2];
#pragma unroll
            for (int mi = 0; mi < 4; mi++) {
                const int m = wm * 64 + mi * 16 + g;
                const float z[4] = {v0 ? A[(k0 + t) * TF3F_LDS + m] - sa[mi * 2] : 0.f,
                                    v0 ? A[(k0 + t) * TF3F_LDS + m + 8] - sa[mi * 2 + 1] : 0.f,
                                    v1 ? A[(k0 + t + 4) * TF3F_LDS + m] - sa[mi * 2] : 0.f,
                                    v1 ? A[(k0 + t + 4) * TF3F_LDS + m + 8] - sa[mi * 2 + 1] : 0.f};
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    ah[mi][e] = to_tf32(z[e]);
                    al[mi][e] = to_tf32(z[e] - __uint_as_float(ah[mi][e]));
                }
            }
#pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                const int n = wn * 32 + ni * 8 + g;
                const float z[2] = {v0 ? B[(k0 + t) * TF3F_LDS + n] - sb[ni] : 0.f,
                                    v1 ? B[(k0 + t + 4) * TF3F_LDS + n] - sb[ni] : 0.f};
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    bh[ni][e] = to_tf32(z[e]);
                    bl[ni][e] = to_tf32(z[e] - __uint_as_float(bh[ni][e]));
                }
            }
            /* the three products as three passes over the 16 accumulator
             * tiles: back-to-back products into one accumulator would wait
             * on each other's latency */
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) mma_tf32(acc + (mi * 4 + ni) * 4, al[mi], bh[ni]);
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) mma_tf32(acc + (mi * 4 + ni) * 4, ah[mi], bl[ni]);
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) mma_tf32(acc + (mi * 4 + ni) * 4, ah[mi], bh[ni]);
        }
        if (diag) {
#pragma unroll 4
            for (int r = sh * 16; r < sh * 16 + 16; r++)
                if (r < lim) {
                    const double z = (double)(A[r * TF3F_LDS + sc] - ss);
                    sum += z;
                    sq += z * z;
                }
        }
        if (++since == TF3F_FLUSH || s + 1 == s1) {
            since = 0;
#pragma unroll
            for (int r = 0; r < 64; r++) {
                part[r * 256] += (double)acc[r];
                acc[r] = 0.f;
            }
        }
    }
    if (diag) {
        /* the two halves' sums, in a fixed order */
        __syncthreads();
        double *red = (double *)smem;
        if (sh) {
            red[sc] = sum;
            red[128 + sc] = sq;
        }
        __syncthreads();
        if (!sh && colA + sc < d) {
            colsum[(int64_t)sp * d + colA + sc] += sum + red[sc];
            colsq[(int64_t)sp * d + colA + sc] += sq + red[128 + sc];
        }
    }
}

/* F(i, j) = F(j, i) = C(i, j) / 2 for the product C (d x d, column-major S,
 * the convention of pca_finish_kernel's symmetric case: F + F^T = C), from
 * the blocks' partials summed in split order; C(i, j) for i < j is read
 * from the lower tile (C(j, i)), so S is exactly symmetric. */
__global__ void pca_tf3_fold_kernel(const double *__restrict__ partial, int splits, int d, double *__restrict__ S)
{
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)d * d) return;
    const int i = (int)(idx % d), j = (int)(idx / d);
    const int a = i > j ? i : j, b = i > j ? j : i;
    const int I = a / 128, J = b / 128, m = a % 128, n = b % 128;
    const int pair = I * (I + 1) / 2 + J;
    /* (m, n) -> (thread, register) of pca_tf3_kernel's accumulators */
    const int wm = m / 64, wn = n / 32, mi = (m % 64) / 16, ni = (n % 32) / 8;
    const int g = m % 8, h = (m % 16) / 8, tq = (n % 8) / 2, odd = n % 2;
    const int tid = (wm * 4 + wn) * 32 + g * 4 + tq, r = (mi * 4 + ni) * 4 + h * 2 + odd;
    double acc = 0;
    for (int sp = 0; sp < splits; sp++) acc += partial[((int64_t)pair * splits + sp) * 16384 + r * 256 + tid];
    S[idx] = 0.5 * acc;
}

extern "C" size_t fli_pca_tf3_smem(void) { return sizeof(float) * 2 * TF3F_STAGES * TF3F_BK * TF3F_LDS; }

extern "C" cudaError_t fli_pca_tf3_launch(const float *X, int64_t ld, int64_t rows, int d, const float *shift,
                                          int splits, double *partial, double *colsum, double *colsq,
                                          cudaStream_t s)
{
    const int nb = (d + 127) / 128, pairs = nb * (nb + 1) / 2;
    const size_t smem = fli_pca_tf3_smem();
    cudaError_t e = cudaFuncSetAttribute(pca_tf3_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    pca_tf3_kernel<<<pairs * splits, 256, smem, s>>>(X, ld, rows, d, shift, splits, partial, colsum, colsq);
    return cudaGetLastError();
}

extern "C" cudaError_t fli_pca_tf3_fold(const double *partial, int splits, int d, double *S, cudaStream_t s)
{
    const int64_t n = (int64_t)d * d;
    pca_tf3_fold_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(partial, splits, d, S);
    return cudaGetLastError();
}
