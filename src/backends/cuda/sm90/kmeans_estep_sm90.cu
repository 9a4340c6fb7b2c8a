/*
 * kmeans_estep_sm90.cu — Hopper (sm_90a) E-step for large k: wgmma with
 * both operands from shared memory, bulk async copies completing on
 * mbarriers, a producer warp and two consumer warpgroups, online argmin in
 * the epilogue. Built for sm_90a only (FL_HAVE_SM90); used when the job's
 * backend is FL_BACKEND_CUDA_SM90 (routing: k >= 1024, d >= 64, d % 16 == 0,
 * a tensor-core precision, compute capability 9.0, FL_DISABLE_SM90 unset)
 * and the precision is bf16 or fp16 with dh (d rounded to 64) of 64 or 128.
 *
 * Operands are "images": X and the centres are written once per fit / per
 * iteration (k_convert_rows_img, k_prep_centers / k_finalize) in exactly
 * the shared-memory layout wgmma reads with 128-byte swizzling (see
 * sm90_img_index), tile after tile, so each tile is one contiguous
 * cp.async.bulk — no tensor map needed.
 *
 * Block (384 threads, one per SM, persistent over 256-row tiles):
 *   warpgroup 0: one thread issues the copies — the tile's rows (A, double
 *     buffered, 256 x dh) and every 128-centre tile (B, 3-stage ring);
 *   warpgroups 1, 2: 128 rows each, as two m64 halves; per centre tile two
 *     chains of dh/16 wgmma m64n128k16 (fp32 accumulators, 2 x 64 registers
 *     per thread). The first half's scores (cnorm - alpha * dot) are
 *     folded while the tensor cores run the second half's products; then
 *     the second half's. Each row keeps a running top-2 of (score, index)
 *     — tile minimum first, the first column holding it only when it
 *     improves, so ties go to the lower index as in the portable kernels.
 */
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "backends/cuda/kmeans_cuda.cuh"
#include "backends/cuda/kmeans_dev.cuh"

#define H_BM FLI_KM_XH_ROWS /* rows per tile: 2 consumer warpgroups x 128 */
#define H_BN FLI_KM_BN      /* centres per B tile                         */
#define H_BST 3             /* B stages                                   */
#define H_THREADS 384

static_assert(H_BM == 256 && H_BN == 128, "tile shape assumed below");

static __device__ __forceinline__ uint64_t desc_sw128(uint32_t saddr) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}

template <int F16>
static __device__ __forceinline__ void wgmma128(float (&d)[64], uint64_t da, uint64_t db, int accum) {
    if (F16)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
            "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
            "%64, %65, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
              "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
            : "l"(da), "l"(db), "r"(accum));
    else
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
            "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
            "%64, %65, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
              "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
              "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
              "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
              "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
              "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
              "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
              "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
            : "l"(da), "l"(db), "r"(accum));
}

static __device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
static __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Keeps the compiler from moving accumulator accesses across a wait. */
static __device__ __forceinline__ void fence_acc(float (&d)[64]) {
#pragma unroll
    for (int i = 0; i < 64; i++) asm volatile("" : "+f"(d[i])::"memory");
}

static __device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
static __device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
                 : "memory");
}
#ifndef KM_PRODUCER_SLEEP_NS
#define KM_PRODUCER_SLEEP_NS 32
#endif
static __device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/* One test of the barrier's phase (try_wait may block for a while first). */
static __device__ __forceinline__ uint32_t mbar_try(uint32_t bar, uint32_t parity) {
    uint32_t ok;
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(ok)
        : "r"(bar), "r"(parity)
        : "memory");
    return ok;
}
static __device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    while (!mbar_try(bar, parity)) {
    }
}
/* The producer thread's wait: it shares a scheduler with consumer warps,
 * and a tight try_wait loop took 11.5% of the tf32 E-step's executed
 * instructions (6ce54dc's SASS); after a failed test it sleeps briefly
 * (a stage's consumers take microseconds, the sleep tens of nanoseconds). */
static __device__ __forceinline__ void mbar_wait_producer(uint32_t bar, uint32_t parity) {
    while (!mbar_try(bar, parity))
        if (KM_PRODUCER_SLEEP_NS > 0) __nanosleep(KM_PRODUCER_SLEEP_NS);
}
static __device__ __forceinline__ void bulk_g2s(uint32_t dst, const void *src, uint32_t bytes,
                                                uint32_t bar) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
            dst),
        "l"(src), "r"(bytes), "r"(bar)
        : "memory");
}

/* A score with its low 5 mantissa bits replaced by id, this thread's
 * column id within a 128-centre tile (i * 2 + e): comparing keys orders
 * by score and finds the column without searching for it afterwards. The
 * key is within 2^-18 |s| of the score; km_near_tie allows for it, so a
 * pair it could misorder is re-scored exactly. The key of +inf would be a
 * NaN, so the padding centres' +inf norms are read as FLT_MAX. */
static __device__ __forceinline__ float km_key(float s, int id, uint32_t kmask) {
    return __uint_as_float((__float_as_uint(s) & kmask) | (uint32_t)id);
}
/* The keys' mask, ~31, in a register the compiler cannot see through, so
 * each key is one LOP3 (mask register, column id immediate) rather than
 * an AND and an OR of two immediates. */
static __device__ __forceinline__ uint32_t km_kmask() {
    uint32_t m;
    asm volatile("mov.b32 %0, -32;\n" : "=r"(m));
    return m;
}

/* One m64 x (NA / 2) block of scores (NA accumulators a thread: 128 or
 * 64 centres) into the running top-2 of this thread's two rows (g and
 * g + 8 of the warp's 16): the block's two smallest keys per row (FFMA +
 * LOP3 + 3 FMNMX per score), merged into the running top-2 when they
 * enter it, with columns decoded from the keys. Within a thread keys are
 * distinct; equal keys across threads or blocks keep the lower column
 * (km_merge2, km_top2_update), as a strict ascending scan. CLAMP reads the
 * norms of padding centres (+inf) as FLT_MAX; a block without padding
 * centres may skip it (2 FMNMX per pair of columns). */
template <int NA, bool CLAMP = true, bool PRE = false>
static __device__ __forceinline__ void fold(const float (&acc)[NA], float (&b1)[2], int (&i1)[2], float (&b2)[2],
                                            int (&i2)[2], const float *__restrict__ cn, int col0, float alpha,
                                            int t4, uint32_t kmask, const float2 *pre = nullptr) {
    static_assert(NA == 64 || NA == 32, "a block is 128 or 64 centres");
    const float2 *c2 = (const float2 *)(cn + col0 + 2 * t4);
    /* two chains per row (even and odd column groups), merged at the end:
     * half the dependent FMNMX depth (KM_FOLD_ONE_CHAIN: one chain, for
     * A/B builds). Keys are distinct within a thread, so the merged top-2
     * is the same either way. */
#ifdef KM_FOLD_ONE_CHAIN
    constexpr int NC = 1;
#else
    constexpr int NC = 2;
#endif
    float m1[NC][2], m2[NC][2];
#pragma unroll
    for (int i = 0; i < NA / 4; i++) {
        float2 c = PRE ? pre[i] : __ldg(c2 + i * 4);
        if (CLAMP) {
            c.x = fminf(c.x, FLT_MAX);
            c.y = fminf(c.y, FLT_MAX);
        }
        const int p = i % NC;
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            const float s0 = km_key(fmaf(-alpha, acc[i * 4 + rr * 2], c.x), 2 * i, kmask);
            const float s1 = km_key(fmaf(-alpha, acc[i * 4 + rr * 2 + 1], c.y), 2 * i + 1, kmask);
            const float lo = fminf(s0, s1), hi = fmaxf(s0, s1);
            if (i < NC) {
                m1[p][rr] = lo;
                m2[p][rr] = hi;
            } else {
                m2[p][rr] = fminf(fminf(m2[p][rr], hi), fmaxf(m1[p][rr], lo));
                m1[p][rr] = fminf(m1[p][rr], lo);
            }
        }
    }
    if (NC == 2)
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            const float lo = fminf(m1[0][rr], m1[NC - 1][rr]), hi = fmaxf(m1[0][rr], m1[NC - 1][rr]);
            m2[0][rr] = fminf(fminf(m2[0][rr], m2[NC - 1][rr]), hi);
            m1[0][rr] = lo;
        }
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        const int need = km_top2_need(m1[0][rr], m2[0][rr], b1[rr], b2[rr]);
        if (need) {
            const int k1 = __float_as_int(m1[0][rr]) & 31, k2 = __float_as_int(m2[0][rr]) & 31;
            const int j1 = col0 + (k1 >> 1) * 8 + 2 * t4 + (k1 & 1);
            const int j2 = col0 + (k2 >> 1) * 8 + 2 * t4 + (k2 & 1);
            km_top2_update(b1[rr], i1[rr], b2[rr], i2[rr], m1[0][rr], j1, m2[0][rr], j2, need);
        }
    }
}

/* dh/16 wgmma k-steps of one m64 half against one B stage. */
template <int F16, int KB>
static __device__ __forceinline__ void issue_half(float (&acc)[64], uint32_t a_half, uint32_t b_stage) {
    wgmma_fence();
    /* a descriptor's address field is the byte address / 16 (14 bits):
     * shared offsets below 256 KB add to it without a carry */
    const uint64_t da0 = desc_sw128(a_half), db0 = desc_sw128(b_stage);
#pragma unroll
    for (int kk = 0; kk < KB * 4; kk++) {
        const uint64_t da = da0 + (((kk >> 2) * (H_BM * 128) + (kk & 3) * 32) >> 4);
        const uint64_t db = db0 + (((kk >> 2) * (H_BN * 128) + (kk & 3) * 32) >> 4);
        wgmma128<F16>(acc, da, db, kk > 0);
    }
    wgmma_commit();
}

/* The E-steps' mbarriers, at `bars` after the B ring: A full / empty for
 * the two A buffers (the producer's one arrival and transaction bytes /
 * the 8 consumer warps), then B full / empty for the 3 B stages. */
#define A_FULL(i) (bars + 8 * (i))
#define A_EMPTY(i) (bars + 16 + 8 * (i))
#define B_FULL(i) (bars + 32 + 8 * (i))
#define B_EMPTY(i) (bars + 56 + 8 * (i))
static_assert(H_BST == 3, "barrier layout assumes 3 B stages");
static __device__ __forceinline__ void init_bars(uint32_t bars) {
    if (threadIdx.x == 0) {
        for (int i = 0; i < 2; i++) {
            mbar_init(A_FULL(i), 1);
            mbar_init(A_EMPTY(i), 8);
        }
        for (int i = 0; i < H_BST; i++) {
            mbar_init(B_FULL(i), 1);
            mbar_init(B_EMPTY(i), 8);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
}

template <int F16, int KB, int PIPE>
__global__ void __launch_bounds__(H_THREADS, 1)
    k_estep_sm90(const unsigned char *__restrict__ ximg, const unsigned char *__restrict__ cimg,
                 const float *__restrict__ cnorm, int64_t m, int kp, float alpha,
                 int32_t *__restrict__ labels, int32_t *n_changed, const km_tie T, const int32_t *done) {
    if (done && *done) return;
    constexpr uint32_t A_BYTES = H_BM * KB * 128;
    constexpr uint32_t B_BYTES = H_BN * KB * 128;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
    const uint32_t sA = base, sB = base + 2 * A_BYTES, bars = sB + H_BST * B_BYTES;
    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;
    init_bars(bars);
    const int64_t tiles = (m + H_BM - 1) / H_BM;
    const int nt = kp / H_BN;

    if (wg == 0) {
        /* producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
        if (tid == 0) {
            int bt = 0, i = 0;
            for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x, i++) {
                const int ab = i & 1;
                mbar_wait_producer(A_EMPTY(ab), ((i >> 1) & 1) ^ 1);
                mbar_expect_tx(A_FULL(ab), A_BYTES);
                bulk_g2s(sA + ab * A_BYTES, ximg + tile * (int64_t)A_BYTES, A_BYTES, A_FULL(ab));
                for (int j = 0; j < nt; j++, bt++) {
                    const int s = bt % H_BST;
                    mbar_wait_producer(B_EMPTY(s), ((bt / H_BST) & 1) ^ 1);
                    mbar_expect_tx(B_FULL(s), B_BYTES);
                    bulk_g2s(sB + s * B_BYTES, cimg + (int64_t)j * B_BYTES, B_BYTES, B_FULL(s));
                }
            }
        }
    } else {
        /* consumers */
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
        const int cw = wg - 1, wq = (tid >> 5) & 3, t4 = lane & 3;
        const uint32_t kmask = km_kmask();
        const float rho_c = T.on ? T.cb[0] : 0.f, cmax = T.on ? T.cb[1] : 0.f;
        /* after the quad merge, lane L takes row (L >> 4) * 64 + (L & 15) of
         * the warp's 32: slot (L >> 4, (L >> 3) & 1) of quad L & 7 */
        const int src = (lane & 7) * 4, hq = lane >> 4, rq = (lane >> 3) & 1;
        float acc0[64], acc1[64];
        int bt = 0, i = 0;
        for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x, i++) {
            const int ab = i & 1;
            const int64_t myrow = tile * H_BM + cw * 128 + wq * 16 + hq * 64 + (lane & 15);
            const int old = myrow < m ? labels[myrow] : 0;
            const float2 xs = km_row_stat(T, myrow < m, myrow);
            float b1[2][2], b2[2][2];
            int i1[2][2], i2[2][2];
#pragma unroll
            for (int h = 0; h < 2; h++)
#pragma unroll
                for (int rr = 0; rr < 2; rr++) {
                    b1[h][rr] = b2[h][rr] = INFINITY;
                    i1[h][rr] = i2[h][rr] = 0;
                }
            const uint32_t a0 = sA + ab * A_BYTES + (cw * 128) * 128;
            const uint32_t a1 = a0 + 64 * 128;
            mbar_wait(A_FULL(ab), (i >> 1) & 1);
            for (int j = 0; j < nt; j++, bt++) {
                const int st = bt % H_BST;
                mbar_wait(B_FULL(st), (bt / H_BST) & 1);
                fence_acc(acc0);
                fence_acc(acc1);
                issue_half<F16, KB>(acc0, a0, sB + st * B_BYTES);
                issue_half<F16, KB>(acc1, a1, sB + st * B_BYTES);
                if (PIPE == 1) {
                    /* the first half is folded while the second's
                     * products run */
                    wgmma_wait<1>();
                    fence_acc(acc0);
                    fold(acc0, b1[0], i1[0], b2[0], i2[0], cnorm, j * H_BN, alpha, t4, kmask);
                    wgmma_wait<0>();
                    fence_acc(acc1);
                    /* both halves have read stage st */
                    if (lane == 0) mbar_arrive(B_EMPTY(st));
                } else {
                    wgmma_wait<0>();
                    fence_acc(acc0);
                    fence_acc(acc1);
                    if (lane == 0) mbar_arrive(B_EMPTY(st));
                    fold(acc0, b1[0], i1[0], b2[0], i2[0], cnorm, j * H_BN, alpha, t4, kmask);
                }
                fold(acc1, b1[1], i1[1], b2[1], i2[1], cnorm, j * H_BN, alpha, t4, kmask);
            }
            /* every wgmma reading this A buffer has completed */
            if (lane == 0) mbar_arrive(A_EMPTY(ab));
            float v1 = 0.f, v2 = 0.f;
            int x1 = 0, x2 = 0;
#pragma unroll
            for (int h = 0; h < 2; h++)
#pragma unroll
                for (int rr = 0; rr < 2; rr++) {
#pragma unroll
                    for (int o = 1; o < 4; o <<= 1)
                        km_shfl_merge2(b1[h][rr], i1[h][rr], b2[h][rr], i2[h][rr], o);
                    const float w1 = __shfl_sync(KM_FULL, b1[h][rr], src);
                    const float w2 = __shfl_sync(KM_FULL, b2[h][rr], src);
                    const int j1 = __shfl_sync(KM_FULL, i1[h][rr], src);
                    const int j2 = __shfl_sync(KM_FULL, i2[h][rr], src);
                    if (h == hq && rr == rq) {
                        v1 = w1;
                        v2 = w2;
                        x1 = j1;
                        x2 = j2;
                    }
                }
            const int changed = km_row_done(T, myrow < m, myrow, xs, rho_c, cmax, v1, x1, v2, x2, old, labels);
            count_changes(changed, n_changed);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* tf32: X read in place through a TMA tensor map                           */
/* ------------------------------------------------------------------------ */
/* The 16-bit kernel above reads an operand image written once per fit; a
 * tf32 image would double X's footprint. Instead the Tensor Memory
 * Accelerator copies boxes of 32 fp32 columns x 128 rows straight from X
 * (row stride ldx) into the 128-byte-swizzled layout wgmma reads, zero
 * filling columns past d and rows past m; the centres come the same way
 * from their tf32-rounded copy (kp x dp). wgmma reads the fp32 bits of X
 * as tf32 (the low 13 mantissa bits do not take part), so the near-tie
 * statistics of these rows use the truncation error (km_row_stats with
 * trunc), which bounds a round-to-nearest error too.
 *
 * Block (384 threads, one per SM, persistent over 128-row tiles; shared
 * memory: A double buffered, KB x 16 KB each, B a 3-stage ring of 32 KB =
 * 128 centres x 64 columns):
 *   warpgroup 0: one thread issues the copies;
 *   warpgroups 1, 2: 64 rows each (one m64 block, 64 accumulators); per
 *     centre tile KB/2 stages of 8 wgmma m64n128k8, then the fold. The two
 *     warpgroups' folds overlap each other's products. */
#define T_BM 128
#define T_BN 128
#define T_BST H_BST /* the same barrier layout (init_bars) */
#define T_BOX_BYTES (128 * 128)           /* one box: 128 rows x 128 bytes */
#define T_STAGE_BYTES (2 * T_BOX_BYTES)   /* B stage: two column boxes      */

static __device__ __forceinline__ void wgmma128_tf32(float (&d)[64], uint64_t da, uint64_t db, int accum) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(accum));
}

/* The 8 wgmma m64n128k8 of centre stage st (two boxes of 32 columns) for
 * column half h: A's boxes of that half are A_BOX bytes apart from da0
 * (the warpgroup's rows), B's stage st of the ring at db0. Offsets add to
 * the descriptors' address field (as issue_half). */
template <uint32_t A_BOX>
static __device__ __forceinline__ void issue_tf32_stage(float (&acc)[64], uint64_t da0, uint64_t db0, int h, int st) {
#pragma unroll
    for (int q = 0; q < 2; q++)
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            const uint64_t da = da0 + (((2 * h + q) * A_BOX + kk * 32) >> 4);
            const uint64_t db = db0 + ((st * T_STAGE_BYTES + q * T_BOX_BYTES + kk * 32) >> 4);
            wgmma128_tf32(acc, da, db, h > 0 || q > 0 || kk > 0);
        }
}

static __device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap *map, int c0, int r0,
                                                   uint32_t bar) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
            dst),
        "l"(map), "r"(c0), "r"(r0), "r"(bar)
        : "memory");
}

/* The end of a row tile in the tf32 kernels, whose warps hold 16 rows as
 * one m64 block: each quad's top-2 of its two rows merged across the quad,
 * lane L < 16 taking row L (slot (L >> 3) of quad L & 7), and the row's
 * label decided (near ties listed for re-scoring) and its change counted. */
static __device__ __forceinline__ void rows16_done(float (&b1)[2], int (&i1)[2], float (&b2)[2], int (&i2)[2],
                                                   int lane, const km_tie &T, bool valid, int64_t myrow, float2 xs,
                                                   int old, int32_t *labels, int32_t *n_changed) {
    const int src = (lane & 7) * 4, rq = (lane >> 3) & 1;
    const float rho_c = T.on ? T.cb[0] : 0.f, cmax = T.on ? T.cb[1] : 0.f;
    float v1 = 0.f, v2 = 0.f;
    int x1 = 0, x2 = 0;
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
#pragma unroll
        for (int o = 1; o < 4; o <<= 1) km_shfl_merge2(b1[rr], i1[rr], b2[rr], i2[rr], o);
        const float w1 = __shfl_sync(KM_FULL, b1[rr], src);
        const float w2 = __shfl_sync(KM_FULL, b2[rr], src);
        const int j1 = __shfl_sync(KM_FULL, i1[rr], src);
        const int j2 = __shfl_sync(KM_FULL, i2[rr], src);
        if (rr == rq) {
            v1 = w1;
            v2 = w2;
            x1 = j1;
            x2 = j2;
        }
    }
    const int changed = km_row_done(T, valid, myrow, xs, rho_c, cmax, v1, x1, v2, x2, old, labels);
    count_changes(changed, n_changed);
}

template <int KB>
__global__ void __launch_bounds__(H_THREADS, 1)
    k_estep_sm90_tf32(const __grid_constant__ CUtensorMap xmap, const __grid_constant__ CUtensorMap cmap,
                      const float *__restrict__ cnorm, int64_t m, int kp, float alpha,
                      int32_t *__restrict__ labels, int32_t *n_changed, const km_tie T, const int32_t *done) {
    if (done && *done) return;
    constexpr uint32_t A_BYTES = KB * T_BOX_BYTES;
    constexpr int KS = KB / 2; /* B stages per centre tile */
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
    const uint32_t sA = base, sB = base + 2 * A_BYTES, bars = sB + T_BST * T_STAGE_BYTES;
    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;
    init_bars(bars);
    const int64_t tiles = (m + T_BM - 1) / T_BM;
    const int nt = kp / T_BN;

    if (wg == 0) {
        /* producer */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
        if (tid == 0) {
            int bt = 0, i = 0;
            for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x, i++) {
                const int ab = i & 1;
                mbar_wait_producer(A_EMPTY(ab), ((i >> 1) & 1) ^ 1);
                mbar_expect_tx(A_FULL(ab), A_BYTES);
#pragma unroll
                for (int kb = 0; kb < KB; kb++)
                    tma_load_2d(sA + ab * A_BYTES + kb * T_BOX_BYTES, &xmap, kb * 32, (int)(tile * T_BM), A_FULL(ab));
                for (int j = 0; j < nt; j++)
#pragma unroll
                    for (int h = 0; h < KS; h++, bt++) {
                        const int st = bt % T_BST;
                        mbar_wait_producer(B_EMPTY(st), ((bt / T_BST) & 1) ^ 1);
                        mbar_expect_tx(B_FULL(st), T_STAGE_BYTES);
                        tma_load_2d(sB + st * T_STAGE_BYTES, &cmap, (2 * h) * 32, j * T_BN, B_FULL(st));
                        tma_load_2d(sB + st * T_STAGE_BYTES + T_BOX_BYTES, &cmap, (2 * h + 1) * 32, j * T_BN,
                                    B_FULL(st));
                    }
            }
        }
    } else {
        /* consumers */
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
        const int cw = wg - 1, wq = (tid >> 5) & 3, t4 = lane & 3;
        const uint32_t kmask = km_kmask();
        float acc[64];
        int bt = 0, i = 0;
        for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x, i++) {
            const int ab = i & 1;
            const int64_t myrow = tile * T_BM + cw * 64 + wq * 16 + (lane & 15);
            const bool valid = lane < 16 && myrow < m;
            const int old = valid ? labels[myrow] : 0;
            const float2 xs = km_row_stat(T, valid, myrow);
            float b1[2], b2[2];
            int i1[2], i2[2];
#pragma unroll
            for (int rr = 0; rr < 2; rr++) {
                b1[rr] = b2[rr] = INFINITY;
                i1[rr] = i2[rr] = 0;
            }
            const uint64_t da0 = desc_sw128(sA + ab * A_BYTES + (cw * 64) * 128), db0 = desc_sw128(sB);
            mbar_wait(A_FULL(ab), (i >> 1) & 1);
            for (int j = 0; j < nt; j++) {
                fence_acc(acc);
                wgmma_fence();
#pragma unroll
                for (int h = 0; h < KS; h++) {
                    const int st = (bt + h) % T_BST;
                    mbar_wait(B_FULL(st), ((bt + h) / T_BST) & 1);
                    issue_tf32_stage<T_BOX_BYTES>(acc, da0, db0, h, st);
                    wgmma_commit();
                }
                wgmma_wait<0>();
                fence_acc(acc);
                /* both warpgroups release a stage once their products read it */
                if (lane == 0)
#pragma unroll
                    for (int h = 0; h < KS; h++) mbar_arrive(B_EMPTY((bt + h) % T_BST));
                bt += KS;
                fold(acc, b1, i1, b2, i2, cnorm, j * T_BN, alpha, t4, kmask);
            }
            /* every wgmma reading this A buffer has completed */
            if (lane == 0) mbar_arrive(A_EMPTY(ab));
            rows16_done(b1, i1, b2, i2, lane, T, valid, myrow, xs, old, labels, n_changed);
        }
    }
}

static __device__ __forceinline__ void tma_prefetch_2d(const CUtensorMap *map, int c0, int r0) {
    asm volatile("cp.async.bulk.prefetch.tensor.2d.L2.global.tile [%0, {%1, %2}];\n" ::"l"(map), "r"(c0), "r"(r0)
                 : "memory");
}

/* ------------------------------------------------------------------------ */
/* tf32, four folding warpgroups (the default tf32 kernel)                   */
/* ------------------------------------------------------------------------ */
/* The kernels above give each SM scheduler two folding warps: ncu (1M x
 * 128, k = 1024) put the tensor pipe at 46-50% busy, each consumer warp
 * spending ~2,450 cycles a centre tile in its fold (~640 instructions,
 * latency-bound: "wait" and "long_sb" stalls) against ~1,024 cycles of
 * products, so the two warpgroups' folds could not cover each other's
 * products. Here four warpgroups of 64 rows (a 256-row tile) each fold
 * one m64 block, 512 threads at 128 registers, so every scheduler holds
 * four folding warps and the tensor pipe has four warpgroups' products to
 * run. There is no producer warp: thread 0 issues the first NST centre
 * stages, then the last of the 16 warps to release a stage refills it
 * NST stages on. Each warpgroup has its own 64 rows of X in shared memory
 * (KB boxes of 64 rows x 32 columns, 8 KB each); its leader refills them
 * for the block's next row tile as soon as the warpgroup's last products
 * have read them, after prefetching those rows into L2 a row tile ahead.
 * Shared memory: 4 x KB x 8 KB of rows, then the ring: 3 stages (1.5
 * centre tiles) at KB = 4, 5 at KB = 2. The products and the fold are
 * those of k_estep_sm90_tf32 (same k order, same scores). */
#define W_THREADS 512
#define W_BM 256                    /* rows per tile: 4 warpgroups x 64 */
#define W_BOX (64 * 128)            /* one row box: 64 rows x 128 bytes */
#define W_SLOTS 8                   /* release counters, by centre tile mod 8 */
template <int KB>
struct w4_layout {
    static constexpr int NST = KB == 4 ? 3 : 5;
    static constexpr uint32_t A_WG = KB * W_BOX;
    static constexpr uint32_t BARS = 4 * A_WG + NST * T_STAGE_BYTES;
    static constexpr uint32_t BYTES = 1024 + BARS + 8 * (4 + NST) + 4 * W_SLOTS;
    /* warps can be on as many centre tiles as the ring holds, plus one */
    static_assert(W_SLOTS > NST / (KB / 2) + 1, "a release counter per centre tile in flight");
};
static_assert(w4_layout<4>::BYTES <= FLI_KM_SM90_TF32_SMEM(4) && w4_layout<2>::BYTES <= FLI_KM_SM90_TF32_SMEM(2),
              "the plan's shared-memory size covers the four-warpgroup layout");

/* A warp's release of a centre tile (its products have completed): adds 1
 * to the tile's counter with acquire-release order at block scope (in
 * place of a sequentially consistent fence before the add) and returns
 * the count before it. */
static __device__ __forceinline__ uint32_t km_release(uint32_t *ctr) {
    uint32_t old;
    asm volatile("atom.acq_rel.cta.shared::cta.add.u32 %0, [%1], 1;\n" : "=r"(old) : "r"(smem_u32(ctr)) : "memory");
    return old;
}

static __device__ __forceinline__ void wg_sync(int wg) {
    asm volatile("bar.sync %0, 128;\n" ::"r"(wg + 1) : "memory");
}

template <int KB>
__global__ void __launch_bounds__(W_THREADS, 1)
    k_estep_sm90_tf32w4(const __grid_constant__ CUtensorMap xmap, const __grid_constant__ CUtensorMap cmap,
                        const float *__restrict__ cnorm, int64_t m, int kp, float alpha,
                        int32_t *__restrict__ labels, int32_t *n_changed, const km_tie T, const int32_t *done) {
    if (done && *done) return;
    using L = w4_layout<KB>;
    constexpr int KS = KB / 2, NST = L::NST;
    constexpr uint32_t NW = W_THREADS / 32; /* warps releasing each stage */
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
    const uint32_t sA = base, sB = base + 4 * L::A_WG, bars = base + L::BARS;
    uint32_t *rel = (uint32_t *)(smem_raw + (base - smem_u32(smem_raw)) + L::BARS + 8 * (4 + NST));
#define W_AFULL(w) (bars + 8 * (w))
#define W_BFULL(i) (bars + 32 + 8 * (i))
    const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31, t4 = lane & 3, wq = (tid >> 5) & 3;
    const bool leader = (tid & 127) == 0;
    if (tid == 0) {
        for (int w = 0; w < 4; w++) mbar_init(W_AFULL(w), 1);
        for (int i = 0; i < NST; i++) mbar_init(W_BFULL(i), 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    if (tid < W_SLOTS) rel[tid] = 0;
    __syncthreads();
    const int64_t tiles = (m + W_BM - 1) / W_BM;
    if (blockIdx.x >= tiles) return;
    const int nt = kp / T_BN;
    const int ntl = (int)((tiles - blockIdx.x + gridDim.x - 1) / gridDim.x); /* this block's row tiles */
    const int items = ntl * nt * KS;                                          /* B stages it reads  */
    /* stage item it: centre tile (it / KS) mod nt, column half it mod KS */
    auto load_b = [&](int it) {
        const int st = it % NST, j = (it / KS) % nt, h = it % KS;
        mbar_expect_tx(W_BFULL(st), T_STAGE_BYTES);
        tma_load_2d(sB + st * T_STAGE_BYTES, &cmap, (2 * h) * 32, j * T_BN, W_BFULL(st));
        tma_load_2d(sB + st * T_STAGE_BYTES + T_BOX_BYTES, &cmap, (2 * h + 1) * 32, j * T_BN, W_BFULL(st));
    };
    const uint32_t sAw = sA + wg * L::A_WG;
    auto load_a = [&](int64_t tile) {
        mbar_expect_tx(W_AFULL(wg), L::A_WG);
#pragma unroll
        for (int kb = 0; kb < KB; kb++)
            tma_load_2d(sAw + kb * W_BOX, &xmap, kb * 32, (int)(tile * W_BM + wg * 64), W_AFULL(wg));
    };
    if (tid == 0)
        for (int it = 0; it < min(NST, items); it++) load_b(it);
    if (leader) load_a(blockIdx.x);
    const uint64_t da0 = desc_sw128(sAw), db0 = desc_sw128(sB);
    const uint32_t kmask = km_kmask();
    /* padding centres (+inf norms) can only be in the last centre tile */
    const bool pad_last = isinf(__ldg(cnorm + kp - 1));
    float acc[64];
    int it0 = 0;
    for (int i = 0; i < ntl; i++) {
        const int64_t tile = blockIdx.x + (int64_t)i * gridDim.x;
        if (leader && i + 1 < ntl)
#pragma unroll
            for (int kb = 0; kb < KB; kb++)
                tma_prefetch_2d(&xmap, kb * 32, (int)((tile + gridDim.x) * W_BM + wg * 64));
        const int64_t myrow = tile * W_BM + wg * 64 + wq * 16 + (lane & 15);
        const bool valid = lane < 16 && myrow < m;
        const int old = valid ? labels[myrow] : 0;
        const float2 xs = km_row_stat(T, valid, myrow);
        float b1[2], b2[2];
        int i1[2], i2[2];
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            b1[rr] = b2[rr] = INFINITY;
            i1[rr] = i2[rr] = 0;
        }
        mbar_wait(W_AFULL(wg), i & 1);
        for (int j = 0; j < nt; j++, it0 += KS) {
            fence_acc(acc);
            wgmma_fence();
#pragma unroll
            for (int h = 0; h < KS; h++) {
                const int it = it0 + h, st = it % NST;
                mbar_wait(W_BFULL(st), (it / NST) & 1);
                issue_tf32_stage<W_BOX>(acc, da0, db0, h, st);
            }
            wgmma_commit();
#ifdef KM_CNORM_EARLY /* A/B build: the tile's norms loaded while its products run */
            float2 cv[16];
#pragma unroll
            for (int q = 0; q < 16; q++) cv[q] = __ldg((const float2 *)(cnorm + j * T_BN + 2 * t4) + q * 4);
#endif
            wgmma_wait<0>();
            fence_acc(acc);
            /* the last (NW-th) warp to release the centre tile's KS stages
             * refills them NST stages on */
            if (lane == 0 && km_release(rel + (it0 / KS) % W_SLOTS) % NW == NW - 1)
#pragma unroll
                for (int h = 0; h < KS; h++)
                    if (it0 + h + NST < items) load_b(it0 + h + NST);
#ifdef KM_CNORM_EARLY
            if (pad_last && j == nt - 1)
                fold<64, true, true>(acc, b1, i1, b2, i2, cnorm, j * T_BN, alpha, t4, kmask, cv);
            else
                fold<64, false, true>(acc, b1, i1, b2, i2, cnorm, j * T_BN, alpha, t4, kmask, cv);
#else
            if (pad_last && j == nt - 1)
                fold<64, true>(acc, b1, i1, b2, i2, cnorm, j * T_BN, alpha, t4, kmask);
            else
                fold<64, false>(acc, b1, i1, b2, i2, cnorm, j * T_BN, alpha, t4, kmask);
#endif
        }
        if (i + 1 < ntl) {
            /* the warpgroup's products have all read its rows: the next tile's
             * (here, not before the last fold: a barrier in a branch while the
             * accumulators are live makes ptxas serialise the wgmmas, C7520) */
            wg_sync(wg);
            if (leader) load_a(tile + gridDim.x);
        }
        rows16_done(b1, i1, b2, i2, lane, T, valid, myrow, xs, old, labels, n_changed);
    }
#undef W_AFULL
#undef W_BFULL
}

typedef CUresult (*km_encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                 const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

/* A 2-D fp32 tensor map of rows x cols (row stride ld elements), boxes of
 * 32 columns x box_rows rows, 128-byte swizzle, zeros past the edges. */
static fl_status km_tmap(fli_cuda_env *env, CUtensorMap *map, const float *base, int64_t rows, int64_t cols,
                         int64_t ld, int box_rows) {
    static km_encode_fn encode = NULL; /* the driver's entry point: the same for every context */
    if (!encode) {
        void *fn = NULL;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) !=
                cudaSuccess ||
            q != cudaDriverEntryPointSuccess || !fn) {
            (void)cudaGetLastError();
            return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "km_estep_sm90", "the driver has no cuTensorMapEncodeTiled");
        }
        encode = (km_encode_fn)fn;
    }
    const cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows};
    const cuuint64_t strides[1] = {(cuuint64_t)ld * 4};
    const cuuint32_t box[2] = {32, (cuuint32_t)box_rows};
    const cuuint32_t estr[2] = {1, 1};
    const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, (void *)base, dims, strides, box, estr,
                              CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                              CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS)
        return FLI_FAIL(env, FL_STATUS_INTERNAL, "km_estep_sm90", "cuTensorMapEncodeTiled failed");
    return FL_STATUS_OK;
}

int km_sm90_tf32_ok(const km_rows *r) { return r->x_aligned; }

/* The tf32 kernel: four folding warpgroups (k_estep_sm90_tf32w4), or with
 * env->km_tune bit 15 a producer and two consumer warpgroups
 * (k_estep_sm90_tf32), for A/B measurements. */
static const void *tf32_kernel(int kb, int tune, size_t *smem, int *w4) {
    *w4 = !(tune & 32768);
    if (!*w4) {
        *smem = (size_t)2 * T_BM * kb * 128 + (size_t)T_BST * T_STAGE_BYTES + 1024 + 128;
        return kb == 4 ? (const void *)k_estep_sm90_tf32<4> : (const void *)k_estep_sm90_tf32<2>;
    }
    *smem = kb == 4 ? (size_t)w4_layout<4>::BYTES : (size_t)w4_layout<2>::BYTES;
    return kb == 4 ? (const void *)k_estep_sm90_tf32w4<4> : (const void *)k_estep_sm90_tf32w4<2>;
}

static fl_status estep_sm90_tf32(fli_cuda_env *env, cudaStream_t s, const km_rows *r, const void *ctc,
                                 int64_t d, int64_t dh, int64_t dp, const float *cnorm, int64_t kp, fli_metric metric,
                                 int32_t *labels, int32_t *n_changed, const km_tie *tie, const int32_t *done) {
    const int kb = (int)(dh / 32);
    size_t smem = 0;
    int w4 = 0;
    const void *fn = tf32_kernel(kb, env->km_tune, &smem, &w4);
    CUtensorMap xmap, cmap;
    FLI_TRY(km_tmap(env, &xmap, r->x, r->m, d, r->ldx, w4 ? 64 : T_BM));
    FLI_TRY(km_tmap(env, &cmap, (const float *)ctc, kp, dp, dp, T_BN));
    const int64_t tiles = fli_ceil_div(r->m, w4 ? W_BM : T_BM);
    const int sms = fli_state(env)->sm_count;
    const unsigned grid = (unsigned)(tiles < sms ? tiles : sms);
    FLI_CUDA_TRY(env, cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int64_t m = r->m;
    int kpi = (int)kp;
    float alpha = km_alpha(metric);
    int32_t *lab = labels + r->row0;
    km_tie T;
    memset(&T, 0, sizeof T);
    if (tie) T = *tie;
    void *args[] = {(void *)&xmap, (void *)&cmap, (void *)&cnorm, (void *)&m, (void *)&kpi, (void *)&alpha,
                    (void *)&lab, (void *)&n_changed, (void *)&T, (void *)&done};
    FLI_CUDA_TRY(env, cudaLaunchKernel(fn, dim3(grid), dim3(w4 ? W_THREADS : H_THREADS), args, smem, s));
    return km_tie_rescore(env, s, &T, lab, n_changed, m, FLI_PREC_TF32, done);
}

/* The 16-bit kernel for fp16 or bf16, dh = 64 kb. By default the first
 * half is folded while the second half's products run; env->km_tune bit
 * 12 waits for both first (A/B measurements; the results are the same bit
 * for bit). Pipelining the halves across centre tiles as well (each
 * half's next products issued right after its fold) makes ptxas serialise
 * the wgmmas (C7514: with groups in flight across the loop's back edge it
 * assumes the fold may read their accumulators), so it is not done. */
static const void *sm90_kernel(int f16, int kb, int tune) {
    const int split = !(tune & 4096);
    if (f16)
        return kb == 2 ? (split ? (const void *)k_estep_sm90<1, 2, 1> : (const void *)k_estep_sm90<1, 2, 0>)
                       : (split ? (const void *)k_estep_sm90<1, 1, 1> : (const void *)k_estep_sm90<1, 1, 0>);
    return kb == 2 ? (split ? (const void *)k_estep_sm90<0, 2, 1> : (const void *)k_estep_sm90<0, 2, 0>)
                   : (split ? (const void *)k_estep_sm90<0, 1, 1> : (const void *)k_estep_sm90<0, 1, 0>);
}

int km_sm90_built(void) { return 1; }

fl_status km_estep_sm90(fli_cuda_env *env, cudaStream_t s, const km_rows *r, const void *ctc, int64_t d,
                        int64_t dh, int64_t dp, const float *cnorm, int64_t kp, fli_metric metric,
                        fli_precision prec, int32_t *labels, int32_t *n_changed,
                        const km_tie *tie, const int32_t *done) {
    if (r->m <= 0) return FL_STATUS_OK;
    if (prec == FLI_PREC_TF32)
        return estep_sm90_tf32(env, s, r, ctc, d, dh, dp, cnorm, kp, metric, labels, n_changed, tie, done);
    if (!r->xh) return FLI_FAIL(env, FL_STATUS_INTERNAL, "km_estep_sm90", "no 16-bit image of X");
    const int kb = (int)(dh / 64);
    const size_t smem = (size_t)FLI_KM_SM90_SMEM(kb);
    const int64_t tiles = fli_ceil_div(r->m, H_BM);
    const int sms = fli_state(env)->sm_count;
    const unsigned grid = (unsigned)(tiles < sms ? tiles : sms);
    const void *fn = sm90_kernel(prec == FLI_PREC_FP16, kb, env->km_tune);
    FLI_CUDA_TRY(env, cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const unsigned char *ximg = (const unsigned char *)r->xh;
    const unsigned char *cimg = (const unsigned char *)ctc;
    int64_t m = r->m;
    int kpi = (int)kp;
    float alpha = km_alpha(metric);
    int32_t *lab = labels + r->row0;
    km_tie T;
    memset(&T, 0, sizeof T);
    if (tie) T = *tie;
    void *args[] = {(void *)&ximg, (void *)&cimg, (void *)&cnorm, (void *)&m, (void *)&kpi, (void *)&alpha,
                    (void *)&lab, (void *)&n_changed, (void *)&T, (void *)&done};
    FLI_CUDA_TRY(env, cudaLaunchKernel(fn, dim3(grid), dim3(H_THREADS), args, smem, s));
    return km_tie_rescore(env, s, &T, lab, n_changed, m, prec, done);
}
