/*
 * pca_tf3.cu — PCA's covariance product as one kernel: the shifted rows'
 * Z^T Z on tf32 tensor cores at float32-level accuracy (3xtf32), with the
 * split into tf32 parts done once per stage in shared memory (variant 6 of
 * pca_cuda.cu).
 *
 * Variant 4 splits Z = X - 1 s^T into [hi | lo] in memory and multiplies
 * with cuBLAS: the split writes 8 bytes per element and the GEMM reads
 * them back, 10 GB of traffic at 1,000,000 x 512 for 2 GB of X, and the
 * batched GEMMs of 2048-row slices have a short main loop. Here each block
 * owns one 128 x 128 tile of the lower triangle of the d x d product and a
 * range of rows: it streams X's two 128-column panels through shared
 * memory (cp.async, three stages); each 32-row step, the block splits the
 * panels once into z = x - s's tf32 parts hi = tf32(z) and lo = tf32(z -
 * hi), stored transposed (a column's rows contiguous) so that ldmatrix
 * hands the warps their mma.sync fragments, and the warps issue hi_a hi_b +
 * lo_a hi_b + hi_a lo_b (lo lo, 2^-22 relative, dropped, as variant 4
 * does). X is read from HBM about once: the blocks of one row range run
 * side by side and share it through L2. (The first version split in
 * registers, each value once per warp that reads it: 7.74 ms at 1M x 512
 * on the H100, issue-latency bound at 2 warps a scheduler.)
 *
 * Accuracy as variant 4: the tensor cores' float32 accumulation truncates,
 * so the float32 accumulators are added into a float64 partial (the
 * block's own, in global memory) every TF3_FLUSH row steps (2048 rows,
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
#include "backends/cuda/pca_tf3_dev.cuh"

/* a split part's column stride (floats): 32 rows + 4 keep ldmatrix's 8
 * rows a phase and the 16-byte stores free of bank conflicts */
#define TF3F_LDP 36
#define TF3F_STAGES 3

static __device__ __forceinline__ void mma_tf32(float *c, const uint32_t *a, const uint32_t *b)
{
    /* not volatile: the compiler may interleave independent products */
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

static __device__ __forceinline__ void ldsm_x4(uint32_t *r, const float *p)
{
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

__global__ void __launch_bounds__(256, 1)
    pca_tf3_kernel(const float *__restrict__ X, int64_t ld, int64_t rows, int d,
                   const float *__restrict__ shift, int splits, double *__restrict__ partial,
                   double *__restrict__ colsum, double *__restrict__ colsq)
{
    extern __shared__ float4 smem4[];
    float *smem = (float *)smem4;
    const tf3_block blk = tf3_block_of(splits, rows);
    const int sp = blk.sp, diag = blk.diag, colA = blk.colA, colB = blk.colB;
    const int64_t s0 = blk.s0, s1 = blk.s1;
    const int panel = TF3_PANEL, part = 128 * TF3F_LDP;
    float *As = smem, *Bs = smem + TF3F_STAGES * panel;
    /* the split parts: A's hi, lo, then B's (the diagonal blocks use A's) */
    float *Ph = smem + 2 * TF3F_STAGES * panel, *Pl = Ph + part;
    float *Qh = diag ? Ph : Pl + part, *Ql = diag ? Pl : Pl + 2 * part;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wm = warp >> 2, wn = warp & 3; /* warp tile: rows wm*64.., columns wn*32.. */
    const int m = threadIdx.x & 127;
    const float sA = colA + m < d ? shift[colA + m] : 0.f, sB = colB + m < d ? shift[colB + m] : 0.f;
    double sum = 0, sq = 0;
    /* ldmatrix row addresses: lane -> (matrix j, row r); A: rows of the
     * fragment's 16 x 8 (j & 1: +8 rows, j >> 1: +4 columns); B: two n8
     * tiles (j >> 1) x two column halves (j & 1) */
    const int lj = lane >> 3, lr = lane & 7;
    const int a_off = (wm * 64 + lr + 8 * (lj & 1)) * TF3F_LDP + 4 * (lj >> 1);
    const int b_off = (wn * 32 + 8 * (lj >> 1) + lr) * TF3F_LDP + 4 * (lj & 1);

    float acc[64];
#pragma unroll
    for (int r = 0; r < 64; r++)
        acc[r] = 0.f;
    double *dst = partial + (int64_t)blockIdx.x * 16384 + threadIdx.x;

#pragma unroll
    for (int st = 0; st < TF3F_STAGES - 1; st++) {
        if (s0 + st < s1)
            tf3_load_step(As, Bs, st, s0 + st, X, ld, rows, colA, colB, d, diag, threadIdx.x);
        tf3_commit();
    }
    int since = 0;
    for (int64_t s = s0; s < s1; s++) {
        tf3_wait<TF3F_STAGES - 2>();
        __syncthreads(); /* stage s landed; the last step's fragments are read */
        {
            const int64_t nx = s + TF3F_STAGES - 1;
            if (nx < s1)
                tf3_load_step(As, Bs, (int)((nx - s0) % TF3F_STAGES), nx, X, ld, rows, colA, colB, d, diag,
                              threadIdx.x);
            tf3_commit();
        }
        const int slot = (int)((s - s0) % TF3F_STAGES);
        const int64_t lim = rows - s * TF3_BK; /* rows of this step that exist */
        const float *xa = As + slot * panel, *xb = Bs + slot * panel;
        char *ph = (char *)Ph, *pl = (char *)Pl, *qh = (char *)Qh, *ql = (char *)Ql;
        tf3_split_step<false, TF3F_LDP, 2>(xa, xb, ph, pl, qh, ql, sA, sB, lim, diag, threadIdx.x & 127,
                                           threadIdx.x >> 7, sum, sq);
        __syncthreads();
#pragma unroll
        for (int k0 = 0; k0 < TF3_BK; k0 += 8) {
            uint32_t ah[4][4], al[4][4], bh[4][2], bl[4][2];
#pragma unroll
            for (int mi = 0; mi < 4; mi++) {
                ldsm_x4(ah[mi], Ph + a_off + mi * 16 * TF3F_LDP + k0);
                ldsm_x4(al[mi], Pl + a_off + mi * 16 * TF3F_LDP + k0);
            }
#pragma unroll
            for (int np = 0; np < 2; np++) {
                uint32_t r[4];
                ldsm_x4(r, Qh + b_off + np * 16 * TF3F_LDP + k0);
                bh[2 * np][0] = r[0], bh[2 * np][1] = r[1], bh[2 * np + 1][0] = r[2],
                       bh[2 * np + 1][1] = r[3];
                ldsm_x4(r, Ql + b_off + np * 16 * TF3F_LDP + k0);
                bl[2 * np][0] = r[0], bl[2 * np][1] = r[1], bl[2 * np + 1][0] = r[2],
                       bl[2 * np + 1][1] = r[3];
            }
            /* the three products as three passes over the 16 accumulator
             * tiles: back-to-back products into one accumulator would wait
             * on each other's latency */
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++)
                    mma_tf32(acc + (mi * 4 + ni) * 4, al[mi], bh[ni]);
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++)
                    mma_tf32(acc + (mi * 4 + ni) * 4, ah[mi], bl[ni]);
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++)
                    mma_tf32(acc + (mi * 4 + ni) * 4, ah[mi], bh[ni]);
        }
        if (++since == TF3_FLUSH || s + 1 == s1) {
            since = 0;
            tf3_flush(acc, dst);
        }
    }
    if (diag) {
        tf3_wait<0>(); /* the X stages hold the two halves' sums: no copy is in flight any more */
        tf3_colstats((double *)smem, sum, sq, colA, d, sp, colsum, colsq, threadIdx.x & 127, threadIdx.x >> 7, 0);
    }
}

/* F(i, j) = F(j, i) = C(i, j) / 2 for the product C (d x d, column-major S,
 * the convention of pca_finish_kernel's symmetric case: F + F^T = C), from
 * the blocks' partials summed in split order; C(i, j) for i < j is read
 * from the lower tile (C(j, i)), so S is exactly symmetric. Layout 0: this
 * file's mma.sync warps (2 x 4 warps of 64 x 32); 1: the Hopper kernel's
 * warpgroups (2 x 64 rows x 128 columns, wgmma's register order). */
__global__ void pca_tf3_fold_kernel(const double *__restrict__ partial, int splits, int d, int layout,
                                    double *__restrict__ S)
{
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)d * d)
        return;
    const int i = (int)(idx % d), j = (int)(idx / d);
    const int a = i > j ? i : j, b = i > j ? j : i;
    const int I = a / 128, J = b / 128, m = a % 128, n = b % 128;
    const int pair = I * (I + 1) / 2 + J;
    /* (m, n) -> (thread, register) of the kernel's accumulators */
    const int g = m % 8, h = (m % 16) / 8, tq = (n % 8) / 2, odd = n % 2;
    int tid, r;
    if (layout == 0) {
        const int wm = m / 64, wn = n / 32, mi = (m % 64) / 16, ni = (n % 32) / 8;
        tid = (wm * 4 + wn) * 32 + g * 4 + tq, r = (mi * 4 + ni) * 4 + h * 2 + odd;
    } else {
        const int wg = m / 64, w = (m % 64) / 16;
        tid = wg * 128 + w * 32 + g * 4 + tq, r = (n / 8) * 4 + h * 2 + odd;
    }
    double acc = 0;
    for (int sp = 0; sp < splits; sp++)
        acc += partial[((int64_t)pair * splits + sp) * 16384 + r * 256 + tid];
    S[idx] = 0.5 * acc;
}

extern "C" size_t fli_pca_tf3_smem(void)
{
    return sizeof(float) * (2 * TF3F_STAGES * TF3_PANEL + 4 * 128 * TF3F_LDP);
}

extern "C" cudaError_t fli_pca_tf3_launch(const float *X, int64_t ld, int64_t rows, int d, const float *shift,
                                          int splits, int sm90, double *partial, double *colsum,
                                          double *colsq, cudaStream_t s)
{
#ifdef FL_HAVE_SM90
    if (sm90)
        return fli_pca_tf3_sm90_launch(X, ld, rows, d, shift, splits, partial, colsum, colsq, s);
#else
    (void)sm90;
#endif
    const int nb = (d + 127) / 128, pairs = nb * (nb + 1) / 2;
    const size_t smem = fli_pca_tf3_smem();
    cudaError_t e =
        cudaFuncSetAttribute(pca_tf3_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess)
        return e;
    pca_tf3_kernel<<<pairs * splits, 256, smem, s>>>(X, ld, rows, d, shift, splits, partial, colsum, colsq);
    return cudaGetLastError();
}

extern "C" cudaError_t fli_pca_tf3_fold(const double *partial, int splits, int d, int sm90, double *S,
                                        cudaStream_t s)
{
    const int64_t n = (int64_t)d * d;
    pca_tf3_fold_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(partial, splits, d, sm90 ? 1 : 0, S);
    return cudaGetLastError();
}
