/*
 * pca_tf3_sm90.cu — the fused 3xtf32 covariance kernel of pca_tf3.cu on
 * Hopper's wgmma (sm_90a, FL_HAVE_SM90): the same blocks, row ranges,
 * split and float64 partials, but the products run as wgmma m64n128k8 tf32
 * with both operands from shared memory.
 *
 * tf32 wgmma reads K-major operands only, and X's panels are the other way
 * round (a row of X is a row of K); the split pass already rewrites every
 * value, so it stores the hi and lo parts transposed, a column's 32 rows
 * in one 128-byte line with the 16-byte chunks XOR-swizzled by the line
 * index (the 128-byte swizzle wgmma's descriptors name), and the tensor
 * cores read them in place. The parts are double buffered: the split of
 * step s + 1 runs while step s's 12 products (4 k-steps x 3 parts) are in
 * flight. mma.sync tf32 had reached ~128 TFLOP/s of the three products
 * (pca_tf3.cu, 7.7 ms at 1M x 512 on the H100) with the tensor pipe ~40%
 * busy: the instruction's own limit there.
 *
 * Block: 512 threads. Warpgroups 0 and 1 issue the products, warpgroup w
 * the tile's rows 64 w .. 64 w + 63 against all 128 columns (64
 * accumulators a thread, in wgmma's register order: pca_tf3_fold_kernel's
 * layout 1); warpgroups 2 and 3 load and split (see the kernel).
 */
#include <stdint.h>

#include "backends/cuda/pca_tf3.cuh"
#include "backends/cuda/pca_tf3_dev.cuh"

#define S9_STAGES 3         /* X panel stages (cp.async)                 */
#define S9_PART (128 * 128) /* bytes of one split part, [column][row]    */

static __device__ __forceinline__ uint64_t desc_sw128(uint32_t saddr)
{
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}
static __device__ __forceinline__ void wgmma_tf32(float (&d)[64], uint64_t da, uint64_t db)
{
    asm volatile("wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "
                 "%20, %21, "
                 "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, "
                 "%40, %41, %42, "
                 "%43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, "
                 "%61, %62, %63}, "
                 "%64, %65, 1, 1, 1;\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
                   "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
                   "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
                   "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
                   "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
                   "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
                   "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
                   "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                   "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
                   "+f"(d[63])
                 : "l"(da), "l"(db));
}
static __device__ __forceinline__ void wgmma_fence()
{
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
static __device__ __forceinline__ void wgmma_commit()
{
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N> static __device__ __forceinline__ void wgmma_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Keeps the compiler from moving accumulator accesses across a wait. */
static __device__ __forceinline__ void fence_acc(float (&d)[64])
{
#pragma unroll
    for (int i = 0; i < 64; i++)
        asm volatile("" : "+f"(d[i])::"memory");
}

/* Named barriers between the warpgroups (0 is __syncthreads). */
#define BAR_SPLIT 1 /* the splitter's 128 threads: a stage landed for all of them    */
#define BAR_FULL 2  /* + buffer: its parts written (splitter arrives, products wait) */
#define BAR_EMPTY 4 /* + buffer: the products that read it are done (the reverse)    */
static __device__ __forceinline__ void bar_arrive(int id, int n)
{
    asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(n) : "memory");
}

/* Warp-specialised (512 threads): warpgroups 0 and 1 only issue the
 * products (rows 64 w .. 64 w + 63 of the tile against its 128 columns)
 * and flush; warpgroups 2 and 3 load X's panels and split each step into
 * the parts buffer the products of two steps ago have released (one
 * splitter warpgroup took 5.4 ms for the covariance pass). The two sides
 * meet at named barriers, not block barriers. With all 256 threads
 * splitting between two block barriers a step took ~2 us against the
 * products' ~0.85 of tensor work (H100, 1M x 512; ncu: stalls at the
 * barriers and on the split's latencies); specialised, the pass went only
 * 4.86 -> 4.75 ms: a step's shared-memory traffic (~270 KB: the products
 * re-read their parts, the split, the copies) is ~1.2 us of it at 128
 * B/clk (bench/gpu/PCA_NOTES.md). */
__global__ void __launch_bounds__(512, 1)
    pca_tf3_sm90_kernel(const float *__restrict__ X, int64_t ld, int64_t rows, int d,
                        const float *__restrict__ shift, int splits, double *__restrict__ partial,
                        double *__restrict__ colsum, double *__restrict__ colsq)
{
    extern __shared__ float4 smem4[];
    /* the parts first (1024-byte aligned for the swizzle), then the X stages */
    char *base = (char *)(((uintptr_t)smem4 + 1023) & ~(uintptr_t)1023);
    char *parts = base; /* 2 buffers x {A hi, A lo, B hi, B lo} */
    float *As = (float *)(base + 2 * 4 * S9_PART), *Bs = As + S9_STAGES * TF3_PANEL;
    const tf3_block blk = tf3_block_of(splits, rows);
    const int sp = blk.sp, diag = blk.diag, colA = blk.colA, colB = blk.colB;
    const int64_t s0 = blk.s0, s1 = blk.s1;
    const int wg = threadIdx.x >> 7;

    if (wg >= 2) {
        /* the splitters: column m of the tile pair, rows 16 h .. 16 h + 15 of each step */
        const int t = threadIdx.x - 256, m = t & 127, h = t >> 7;
        const float sA = colA + m < d ? shift[colA + m] : 0.f, sB = colB + m < d ? shift[colB + m] : 0.f;
        double sum = 0, sq = 0;
#pragma unroll
        for (int st = 0; st < S9_STAGES - 1; st++) {
            if (s0 + st < s1)
                tf3_load_step(As, Bs, st, s0 + st, X, ld, rows, colA, colB, d, diag, t);
            tf3_commit();
        }
        for (int64_t s = s0; s < s1; s++) {
            tf3_wait<S9_STAGES - 2>();
            tf3_bar_sync(BAR_SPLIT, 256); /* stage s landed; every splitter thread is past step s - 1 */
            const int64_t nx = s + S9_STAGES - 1;
            if (nx < s1)
                tf3_load_step(As, Bs, (int)((nx - s0) % S9_STAGES), nx, X, ld, rows, colA, colB, d, diag, t);
            tf3_commit();
            const int i = (int)(s - s0), buf = i & 1, slot = i % S9_STAGES;
            if (i >= 2)
                tf3_bar_sync(BAR_EMPTY + buf, 512); /* step s - 2's products released the buffer */
            char *P = parts + buf * 4 * S9_PART;
            const int64_t lim = rows - s * TF3_BK;
            const float *xa = As + slot * TF3_PANEL, *xb = Bs + slot * TF3_PANEL;
            tf3_split_step<true, 0, 1>(xa, xb, P, P + S9_PART, P + 2 * S9_PART, P + 3 * S9_PART, sA, sB, lim, diag,
                                       m, h, sum, sq);
            /* the generic-proxy stores, visible to the tensor cores' reads */
            asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
            bar_arrive(BAR_FULL + buf, 512);
        }
        if (diag) {
            /* the two splitters' sums through the X stages (no copy in flight any more) */
            tf3_wait<0>();
            tf3_colstats((double *)As, sum, sq, colA, d, sp, colsum, colsq, m, h, BAR_SPLIT);
        }
        return;
    }

    /* the products */
    const uint32_t parts_s = (uint32_t)__cvta_generic_to_shared(parts);
    float acc[64];
#pragma unroll
    for (int r = 0; r < 64; r++)
        acc[r] = 0.f;
    double *dst = partial + (int64_t)blockIdx.x * 16384 + threadIdx.x;
    int since = 0;
    for (int64_t s = s0; s < s1; s++) {
        const int i = (int)(s - s0), buf = i & 1;
        tf3_bar_sync(BAR_FULL + buf, 512); /* step s's parts are written */
        const uint32_t pa = parts_s + buf * 4 * S9_PART, pb = diag ? pa : pa + 2 * S9_PART;
        /* A: this warpgroup's 64 lines of hi / lo; B: all 128 lines */
        const uint64_t ah = desc_sw128(pa + wg * 64 * 128), al = desc_sw128(pa + S9_PART + wg * 64 * 128);
        const uint64_t bh = desc_sw128(pb), bl = desc_sw128(pb + S9_PART);
        fence_acc(acc);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            /* k-steps of 8 tf32 = 32 bytes along the line: the descriptor's
             * address field counts 16-byte units */
            const uint64_t o = (uint64_t)((kk * 32) >> 4);
            wgmma_tf32(acc, al + o, bh + o);
            wgmma_tf32(acc, ah + o, bl + o);
            wgmma_tf32(acc, ah + o, bh + o);
        }
        wgmma_commit();
        wgmma_wait<1>(); /* step s - 1's products are done */
        fence_acc(acc);
        /* its buffer is free for the split of step s + 1 (when there is one) */
        if (i >= 1 && s + 1 < s1)
            bar_arrive(BAR_EMPTY + ((i - 1) & 1), 512);
        if (++since == TF3_FLUSH || s + 1 == s1) {
            since = 0;
            wgmma_wait<0>();
            fence_acc(acc);
            tf3_flush(acc, dst);
            fence_acc(acc);
        }
    }
    wgmma_wait<0>();
}

extern "C" size_t fli_pca_tf3_sm90_smem(void)
{
    return 1024 + 2 * 4 * S9_PART + sizeof(float) * 2 * S9_STAGES * TF3_PANEL;
}

extern "C" cudaError_t fli_pca_tf3_sm90_launch(const float *X, int64_t ld, int64_t rows, int d,
                                               const float *shift, int splits, double *partial,
                                               double *colsum, double *colsq, cudaStream_t s)
{
    const int nb = (d + 127) / 128, pairs = nb * (nb + 1) / 2;
    const size_t smem = fli_pca_tf3_sm90_smem();
    cudaError_t e =
        cudaFuncSetAttribute(pca_tf3_sm90_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess)
        return e;
    pca_tf3_sm90_kernel<<<pairs * splits, 512, smem, s>>>(X, ld, rows, d, shift, splits, partial, colsum,
                                                          colsq);
    return cudaGetLastError();
}
