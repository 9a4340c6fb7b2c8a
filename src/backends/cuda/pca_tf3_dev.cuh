/*
 * pca_tf3_dev.cuh — the device pieces of the fused 3xtf32 covariance
 * kernels (pca_tf3.cu on mma.sync, sm90/pca_tf3_sm90.cu on wgmma): rounding
 * to tf32, X's panels through cp.async, a block's tile pair, the per-step
 * split of a panel into tf32 parts, the float64 flush and the diagonal
 * blocks' column sums. Included by those two files only.
 */
#ifndef FL_PCA_TF3_DEV_CUH
#define FL_PCA_TF3_DEV_CUH
#include <stdint.h>

#define TF3_BK 32      /* rows per pipeline step                        */
#define TF3_FLUSH 64   /* steps between float64 flushes (2048 rows)     */
#define TF3_PANEL 4096 /* floats of one X panel: TF3_BK rows x 128 columns */

/* z rounded to tf32 (10 explicit mantissa bits), to nearest with ties away
 * from zero, in two integer operations: adding half a unit of the 11th bit
 * to the magnitude carries into the kept bits (and the exponent) exactly as
 * rounding does: cvt.rna.tf32.f32's result (which took more ALU work: the
 * split was the busiest pipe). Inf and NaN stay Inf and NaN. */
static __device__ __forceinline__ uint32_t tf3_round(float x)
{
    return (__float_as_uint(x) + 0x1000u) & 0xFFFFE000u;
}

static __device__ __forceinline__ void tf3_cp16(float *dst, const float *src, int bytes)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(src), "r"(bytes));
}
static __device__ __forceinline__ void tf3_commit()
{
    asm volatile("cp.async.commit_group;");
}
template <int N> static __device__ __forceinline__ void tf3_wait()
{
    asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

/* One TF3_BK x 128 panel of X (rows row0.., columns col0..) into shared
 * memory, [row][column]; rows >= rows and columns >= d read as zero. 256
 * threads (t: the thread among them), 4 vectors each. */
static __device__ __forceinline__ void tf3_load_panel(float *sm, const float *__restrict__ X, int64_t ld,
                                                      int64_t row0, int64_t rows, int col0, int d, int t)
{
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int v = t + 256 * i, r = v >> 5, c = col0 + (v & 31) * 4;
        const int64_t row = row0 + r;
        int bytes = (d - c) * 4;
        bytes = bytes > 16 ? 16 : bytes < 0 ? 0 : bytes;
        if (row >= rows)
            bytes = 0;
        tf3_cp16(sm + r * 128 + (v & 31) * 4, bytes ? X + row * ld + c : X, bytes);
    }
}

/* The block's tile pair (I, J), I >= J, numbered I (I + 1) / 2 + J. */
static __device__ __forceinline__ void tf3_pair(int pair, int *I, int *J)
{
    int i = 0;
    while ((i + 1) * (i + 2) / 2 <= pair)
        i++;
    *I = i;
    *J = pair - i * (i + 1) / 2;
}

/* What a block of either fused kernel works on: blockIdx.x = pair * splits
 * + sp; its tile pair's first columns colA, colB (diag: the same tile) and
 * its steps s0 .. s1 - 1 of TF3_BK rows, split sp of `splits`. */
typedef struct tf3_block {
    int sp, diag, colA, colB;
    int64_t s0, s1;
} tf3_block;

static __device__ __forceinline__ tf3_block tf3_block_of(int splits, int64_t rows)
{
    tf3_block b;
    int I, J;
    b.sp = blockIdx.x % splits;
    tf3_pair(blockIdx.x / splits, &I, &J);
    b.diag = I == J;
    b.colA = I * 128, b.colB = J * 128;
    const int64_t steps = (rows + TF3_BK - 1) / TF3_BK;
    b.s0 = steps * b.sp / splits, b.s1 = steps * (b.sp + 1) / splits;
    return b;
}

/* One step's split of a panel into z = x - sm's tf32 parts hi and lo (z = 0
 * for rows past `lim` unless FULL), transposed: column m's rows contiguous,
 * a 16-byte store per row quad and part. SWZ: 128-byte lines with the
 * quads XOR-swizzled by the line (wgmma's layout); else lines of LDP
 * floats (ldmatrix's). Thread (of 256): column m, row quads h, h + 2,
 * h + 4, h + 6 (QS 2) or 4 h .. 4 h + 3 (QS 1), h = 0 or 1. The 16 loads go
 * first: the parts' stores are shared memory too, so the compiler would
 * not move a later quad's loads above them (with two warps a scheduler,
 * the warp-specialised kernel's splitters, that latency showed). STATS:
 * the step's sums of z and z^2 in float32 (16 values) added once into sum
 * and sq. */
template <bool STATS, bool FULL, bool SWZ, int LDP, int QS>
static __device__ __forceinline__ void tf3_split(const float *__restrict__ xs, char *hi, char *lo, float sm,
                                                 int64_t lim, int m, int h, double &sum, double &sq)
{
    float x[16];
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int k = 4 * (QS == 1 ? 4 * h + j : h + 2 * j) + e;
            x[4 * j + e] = FULL || k < lim ? xs[k * 128 + m] : sm;
        }
    float fs = 0.f, fq = 0.f;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int q = QS == 1 ? 4 * h + j : h + 2 * j, k0 = 4 * q;
        float4 vh, vl;
        float *ph = &vh.x, *pl = &vl.x;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float z = x[4 * j + e] - sm;
            const uint32_t zh = tf3_round(z);
            ph[e] = __uint_as_float(zh);
            pl[e] = __uint_as_float(tf3_round(z - __uint_as_float(zh)));
            if (STATS) {
                fs += z;
                fq = fmaf(z, z, fq);
            }
        }
        const int off = SWZ ? m * 128 + ((q ^ (m & 7)) << 4) : (m * LDP + k0) * 4;
        *(float4 *)(hi + off) = vh;
        *(float4 *)(lo + off) = vl;
    }
    if (STATS) {
        sum += (double)fs;
        sq += (double)fq;
    }
}

/* One step's split of the block's panels (xa; xb unless diag) into their
 * parts (ph, pl; qh, ql), the row mask only on the last step; m, h, QS as
 * tf3_split's. */
template <bool SWZ, int LDP, int QS>
static __device__ __forceinline__ void tf3_split_step(const float *xa, const float *xb, char *ph, char *pl, char *qh,
                                                      char *ql, float sa, float sb, int64_t lim, int diag, int m,
                                                      int h, double &sum, double &sq)
{
    if (lim >= TF3_BK) {
        if (diag) {
            tf3_split<true, true, SWZ, LDP, QS>(xa, ph, pl, sa, lim, m, h, sum, sq);
        } else {
            tf3_split<false, true, SWZ, LDP, QS>(xa, ph, pl, sa, lim, m, h, sum, sq);
            tf3_split<false, true, SWZ, LDP, QS>(xb, qh, ql, sb, lim, m, h, sum, sq);
        }
    } else if (diag) {
        tf3_split<true, false, SWZ, LDP, QS>(xa, ph, pl, sa, lim, m, h, sum, sq);
    } else {
        tf3_split<false, false, SWZ, LDP, QS>(xa, ph, pl, sa, lim, m, h, sum, sq);
        tf3_split<false, false, SWZ, LDP, QS>(xb, qh, ql, sb, lim, m, h, sum, sq);
    }
}

/* Step `step`'s panels (one on the diagonal) into stage `slot` of As / Bs,
 * by 256 threads (t: the thread among them). */
static __device__ __forceinline__ void tf3_load_step(float *As, float *Bs, int slot, int64_t step,
                                                     const float *__restrict__ X, int64_t ld, int64_t rows,
                                                     int colA, int colB, int d, int diag, int t)
{
    tf3_load_panel(As + slot * TF3_PANEL, X, ld, step * TF3_BK, rows, colA, d, t);
    if (!diag)
        tf3_load_panel(Bs + slot * TF3_PANEL, X, ld, step * TF3_BK, rows, colB, d, t);
}

/* The block's float32 accumulators added into its float64 partial (element
 * r of thread t at r * 256 + t), then cleared. */
static __device__ __forceinline__ void tf3_flush(float *acc, double *dst)
{
#pragma unroll
    for (int r = 0; r < 64; r++) {
        dst[r * 256] += (double)acc[r];
        acc[r] = 0.f;
    }
}

/* Named barrier `id` over n threads (0 with the whole block: __syncthreads). */
static __device__ __forceinline__ void tf3_bar_sync(int id, int n)
{
    asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(n) : "memory");
}

/* The diagonal blocks' column sums of z and z^2 (two halves h of the rows
 * per column m, added in a fixed order through red: 256 doubles of shared
 * memory no copy or product still uses) into row sp of colsum / colsq; the
 * 256 threads that hold the halves meet at barrier `bar`. */
static __device__ __forceinline__ void tf3_colstats(double *red, double sum, double sq, int colA, int d, int sp,
                                                    double *colsum, double *colsq, int m, int h, int bar)
{
    tf3_bar_sync(bar, 256);
    if (h) {
        red[m] = sum;
        red[128 + m] = sq;
    }
    tf3_bar_sync(bar, 256);
    if (!h && colA + m < d) {
        colsum[(int64_t)sp * d + colA + m] += sum + red[m];
        colsq[(int64_t)sp * d + colA + m] += sq + red[128 + m];
    }
}
#endif
