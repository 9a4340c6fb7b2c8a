/*
 * knn_scan_sm90.cu — Hopper (sm_90a) fused distance + top-k scan of the
 * exact kNN search: wgmma with both operands from shared memory, bulk
 * async copies completing on mbarriers, four warpgroups that each both
 * multiply and select. Built for sm_90a only (FL_HAVE_SM90); knn_cuda.cu uses it
 * when env->sm90_enabled and the scan is tf32/bf16/fp16 on a GEMM-form
 * metric with rows of at most 512 bytes.
 *
 * Operands are "images" (knn_scan.cu's k_knn_img): queries in tiles of 256
 * rows, the database in tiles of 128 rows; per tile, per 128-byte column
 * block, the tile's rows of 128 bytes with 16-byte chunks XOR-swizzled by
 * (row & 7) — the layout wgmma reads with 128-byte swizzling, so every
 * copy is one contiguous cp.async.bulk (no tensor map). tf32 images hold
 * the fp32 bits (the tensor cores read the top 19).
 *
 * Block (512 threads, grid x = blocks of 256 queries, y = database slices):
 * four warpgroups of 64 queries; per database tile each issues KB x 4
 * wgmma m64n128 (k16 bf16/fp16, k8 tf32) into 64 fp32 accumulators a
 * thread, waits, and folds them, while the other three warpgroups' products
 * keep the tensor cores busy (four folding warps per scheduler). There is
 * no producer warp (a fifth warp on one scheduler would cap the kernel at
 * 96 registers): thread 0 issues the block's queries and the first NST
 * column blocks (16 KB cp.async.bulk each, completing on mbarriers), and
 * the 16th warp to release a stage refills it NST blocks on. Each tile's
 * 128 (ab.x, ab.y) pairs arrive the same way in a ring of their own.
 *
 * Fold (the selection kept off the tensor cores' path). Score = ab.x * dot
 * + ab.y; per row the minimum of four 8-column buckets is tested against
 * the row's threshold cached in a register, and only a passing bucket is
 * walked, by its own lane. Each query row belongs to the 4 lanes of one
 * warp, so its candidate state (threshold, append buffer of CB keys, top
 * list of 32 R keys in this block's slice of `out`) is private to that
 * warp: scores that pass are appended with a shared atomic, a full buffer
 * is merged by the warp alone (32-key lists with 16-key buffers by sorting
 * networks) and the leftovers retried — no block barrier after the start.
 * The threshold is the list's k'-th key (the lane's last key holding it),
 * as the next float up so that ties by index stay in.
 *
 * Shared bounds across slices. A list's k'-th best score bounds the
 * query's global k'-th best, so each merge publishes it (atomicMin on the
 * order-preserving bits in gthr, one word a query) and every 16 tiles the
 * warps take the other slices' bounds into their thresholds (ties kept:
 * only scores strictly above a bound are dropped). The finalize merges the
 * slices' lists into the best k' keys, which always include every key of
 * the global best k' — so the result does not depend on the order the
 * blocks ran in.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include "backends/cuda/kmeans_dev.cuh"
#include "backends/cuda/knn_cuda.cuh"
#include "backends/cuda/knn_dev.cuh"

#define S9_BM 256 /* queries per block                */
#define S9_BN 128 /* database rows per tile           */
#define S9_THREADS 512 /* four warpgroups of 64 queries, no producer warp */
#define S9_STAGE 16384u /* one 128-byte column block of a tile */
#define S9_NAB 4         /* tiles of (ab.x, ab.y) pairs in their ring  */
#define S9_AB_BYTES 1024u /* one tile's pairs: 128 x float2            */
/* mbarriers: the queries, one per stage and one per ab slot (a slot's
 * release is a counter in shared memory) */
#define S9_BARS(nst) (8 * (1 + (nst) + S9_NAB))

enum { S9_BF16 = 0, S9_FP16 = 1, S9_TF32 = 2 };

static __device__ __forceinline__ uint64_t s9_desc(uint32_t saddr) {
    /* K-major, 128-byte swizzle: 8-row groups 1024 bytes apart */
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}

#define S9_D64                                                                                             \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, " \
    "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, "  \
    "%42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, "  \
    "%62, %63}"
#define S9_OUT64(d)                                                                                           \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),           \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),           \
        "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),           \
        "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]),           \
        "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]),           \
        "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),           \
        "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]),           \
        "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

/* One wgmma m64n128 k-step (32 bytes of K); accum = 0 overwrites d. */
template <int T>
static __device__ __forceinline__ void s9_mma(float (&d)[64], uint64_t da, uint64_t db, int accum) {
    if (T == S9_TF32)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 " S9_D64 ", %64, %65, p, 1, 1;\n}\n"
                     : S9_OUT64(d)
                     : "l"(da), "l"(db), "r"(accum));
    else if (T == S9_FP16)
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 " S9_D64 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
                     : S9_OUT64(d)
                     : "l"(da), "l"(db), "r"(accum));
    else
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " S9_D64 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
                     : S9_OUT64(d)
                     : "l"(da), "l"(db), "r"(accum));
}

static __device__ __forceinline__ void s9_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
static __device__ __forceinline__ void s9_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
static __device__ __forceinline__ void s9_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Keeps the compiler from moving accumulator accesses across a wait. */
static __device__ __forceinline__ void s9_pin(float (&d)[64]) {
#pragma unroll
    for (int i = 0; i < 64; i++) asm volatile("" : "+f"(d[i])::"memory");
}

static __device__ __forceinline__ void s9_bar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
static __device__ __forceinline__ void s9_expect(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
static __device__ __forceinline__ void s9_bar_wait(uint32_t bar, uint32_t parity) {
    uint32_t ok;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(ok)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!ok);
}
static __device__ __forceinline__ void s9_copy(uint32_t dst, const void *src, uint32_t bytes, uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                     dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}

/* The warp-private candidate state of the block's 256 queries. */
struct s9_state {
    float *thr; /* min(local bound, gt)                                  */
    float *gt;  /* shared copy of the global bound, as a strict bound    */
    uint32_t *gthr; /* this block's rows in the global bounds (ord bits)  */
    int *cnt;
    uint64_t *buf; /* 256 x cb */
    uint64_t *top; /* 256 rows of 32 R keys (global: this block's slice) */
    int cb;
    int kpos; /* k' - 1: the lane holding it sets the threshold */
};

/* A 32-key list (one key a lane, ascending) merged with up to 32 new keys
 * (one a lane, any order, KNN_EMPTY where none) by sorting networks: a
 * bitonic sort of the new keys, the 32 smallest of both as the lane-wise
 * minimum against the sorted keys reversed (a bitonic sequence), and a
 * bitonic merge. 21 exchange steps whatever the count, where inserting
 * one key at a time costs about three dependent shuffles a key. */
static __device__ __forceinline__ uint64_t s9_merge32(uint64_t a, uint64_t b) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int k = 2; k <= 32; k <<= 1)
#pragma unroll
        for (int j = k >> 1; j > 0; j >>= 1) {
            const uint64_t o = __shfl_xor_sync(KNN_FULL, b, j);
            const bool keep_min = ((lane & j) == 0) == ((lane & k) == 0);
            b = keep_min ? (o < b ? o : b) : (o > b ? o : b);
        }
    const uint64_t br = __shfl_sync(KNN_FULL, b, 31 - lane);
    uint64_t c = br < a ? br : a;
#pragma unroll
    for (int j = 16; j > 0; j >>= 1) {
        const uint64_t o = __shfl_xor_sync(KNN_FULL, c, j);
        c = (lane & j) == 0 ? (o < c ? o : c) : (o > c ? o : c);
    }
    return c;
}

/* Merges row r's buffer into its top list; whole warp. NET (lists of one
 * key a lane, 16-key buffers): by the sorting networks, else one key at a
 * time. Both paths in one kernel cost registers that spilled: the tf32
 * d = 128 scan, whose 4-key buffers gain nothing, lost 12% with them. */
template <int R, bool NET>
static __device__ __forceinline__ void s9_merge(const s9_state &S, int r) {
    const int lane = threadIdx.x & 31;
    uint64_t *top = S.top + (int64_t)r * 32 * R;
    uint64_t reg[R];
#pragma unroll
    for (int i = 0; i < R; i++) reg[i] = top[lane * R + i];
    uint64_t last;
    const int n = min(S.cnt[r], S.cb);
    if (NET) {
        const uint64_t b = lane < n ? S.buf[r * S.cb + lane] : KNN_EMPTY;
        reg[0] = s9_merge32(reg[0], b);
        last = wl_last<R>(reg);
    } else {
        last = wl_last<R>(reg);
        wl_insert_all<R>(reg, last, S.buf + r * S.cb, n);
    }
#pragma unroll
    for (int i = 0; i < R; i++) top[lane * R + i] = reg[i];
    /* The threshold is the list's k'-th key (rounded up to the last key of
     * its lane: no register indexed at run time), not its last: only the
     * best k' of each slice can reach the pool (a key past the k'-th has k'
     * better ones in its own list). Kept as a bound that admits ties (the
     * next float up): a key tying that score with a lower index still
     * belongs before it. */
    const uint64_t kth = __shfl_sync(KNN_FULL, reg[R - 1], S.kpos / R);
    (void)last;
    __syncwarp();
    if (lane == 0) {
        S.cnt[r] = 0;
        if (S.thr[r] != -INFINITY) {
            float local = INFINITY;
            if (kth != KNN_EMPTY) {
                local = nextafterf(knn_key_score(kth), INFINITY);
                atomicMin(S.gthr + r, (uint32_t)(kth >> 32));
            }
            S.thr[r] = fminf(local, S.gt[r]);
        }
    }
    __syncwarp();
}

/* The global bound of row r as a strict threshold: a score equal to
 * another slice's k'-th best may still belong to the pool (ties by
 * index), so only scores above it are rejected. */
static __device__ __forceinline__ float s9_gbound(const uint32_t *g) {
    const uint32_t u = __ldcg(g);
    return u == 0xffffffffu ? INFINITY : nextafterf(knn_unord(u), INFINITY);
}

/* Lanes t4 == 0 take their two rows' global bounds into the shared state;
 * then every lane reloads its thresholds. Whole warp. */
static __device__ __forceinline__ void s9_refresh(const s9_state &S, int rb, float (&thr)[2]) {
    const int lane = threadIdx.x & 31, g = lane >> 2;
    if ((lane & 3) == 0)
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            const int r = rb + g + rr * 8;
            const float t = s9_gbound(S.gthr + r);
            S.gt[r] = t;
            S.thr[r] = fminf(S.thr[r], t);
        }
    __syncwarp();
    thr[0] = S.thr[rb + g];
    thr[1] = S.thr[rb + g + 8];
}

/* Folds one m64 x 128 half: this thread's rows r0 = rb + g and r0 + 8
 * (rb: the warp's first row), columns col0 + 8 i + 2 t4 + e; sab: the
 * tile's 128 (ab.x, ab.y) pairs in shared memory.
 *
 * The fast path keeps, per row, the minimum score of four buckets of
 * eight columns (i in 4b .. 4b + 3, both e) — one FMNMX a score in place
 * of the compare — and tests the 8 minima against the thresholds. Only a
 * bucket whose minimum passes is walked, by its own lane: the slow path
 * costs about one bucket per candidate, where walking all 64 scores of
 * every lane whenever any of the warp's 2,048 scores passed cost ~460
 * instructions (45% of the halves at 10K x 1M x 128 k = 10, ncu). The
 * candidates appended, the merges and the retries are those of the
 * earlier fold, so the lists are the same. */
template <int R, bool NET>
static __device__ __forceinline__ void s9_fold(float (&acc)[64], float (&thr)[2], const uint32_t (&selfc)[2],
                                               int rb, int col0, const float2 *sab, uint32_t base,
                                               const s9_state &S) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const float4 *ab4 = (const float4 *)(sab + 2 * t4);
    /* bit 4 rr + b: bucket b of row rr has a score below the threshold */
    uint32_t pass = 0;
#pragma unroll
    for (int b = 0; b < 4; b++) {
        float m[2];
#pragma unroll
        for (int ii = 0; ii < 4; ii++) {
            const int i = 4 * b + ii;
            const float4 c = ab4[i * 4];
#pragma unroll
            for (int rr = 0; rr < 2; rr++) {
                const float s0 = fmaf(c.x, acc[i * 4 + rr * 2], c.y);
                const float s1 = fmaf(c.z, acc[i * 4 + rr * 2 + 1], c.w);
                acc[i * 4 + rr * 2] = s0;
                acc[i * 4 + rr * 2 + 1] = s1;
                m[rr] = ii ? fminf(m[rr], fminf(s0, s1)) : fminf(s0, s1);
            }
        }
#pragma unroll
        for (int rr = 0; rr < 2; rr++)
            if (m[rr] < thr[rr]) pass |= 1u << (4 * rr + b);
    }
    if (!__any_sync(KNN_FULL, pass != 0)) return;
    for (;;) {
        uint32_t ovf = 0; /* buckets with a score left for lack of room */
        if (pass) {
#pragma unroll
            for (int rr = 0; rr < 2; rr++) {
                const int r = rb + g + rr * 8;
                const float t = S.thr[r];
#pragma unroll
                for (int b = 0; b < 4; b++) {
                    if (!(pass >> (4 * rr + b) & 1)) continue;
#pragma unroll
                    for (int ii = 0; ii < 4; ii++)
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            const int i = 4 * b + ii;
                            float &v = acc[i * 4 + rr * 2 + e];
                            if (v < t) {
                                const uint32_t col = base + (uint32_t)(col0 + i * 8 + 2 * t4 + e);
                                if (col == selfc[rr]) {
                                    v = INFINITY;
                                } else {
                                    const int pos = atomicAdd(S.cnt + r, 1);
                                    if (pos < S.cb) {
                                        S.buf[r * S.cb + pos] = knn_key(v, col);
                                        v = INFINITY;
                                    } else {
                                        ovf |= 1u << (4 * rr + b);
                                    }
                                }
                            }
                        }
                }
            }
        }
        pass = ovf;
        __syncwarp();
        if (!__any_sync(KNN_FULL, ovf != 0)) break;
        for (int q = 0; q < 16; q++)
            if (S.cnt[rb + q] >= S.cb) s9_merge<R, NET>(S, rb + q);
    }
    __syncwarp();
    thr[0] = S.thr[rb + g];
    thr[1] = S.thr[rb + g + 8];
}

/* KB x 4 wgmma k-steps of one m64 half against one database tile. da, db:
 * the descriptors of the half's queries and of stage 0; a descriptor's
 * address field is (byte address >> 4) in 14 bits and every address here
 * is below 256 KB, so a byte offset moves it by offset >> 4 (an add, where
 * building each descriptor from its address took ~4 instructions). */
template <int T, int KB, int NST>
static __device__ __forceinline__ void s9_issue(float (&acc)[64], uint64_t da, uint64_t db, int it0) {
    s9_fence();
#pragma unroll
    for (int kb = 0; kb < KB; kb++) {
        const uint64_t db_st = db + (uint64_t)(((it0 + kb) % NST) * (S9_STAGE >> 4));
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
            s9_mma<T>(acc, da + (uint64_t)((kb * (S9_BM * 128) + kk * 32) >> 4), db_st + (uint64_t)(kk * 2),
                      kb > 0 || kk > 0);
    }
    s9_commit();
}

/* Four warpgroups of 64 queries, one m64 half each, 512 threads (128
 * registers, no setmaxnreg); no producer warp: thread 0 issues the first
 * ring's worth of copies, then the last of the 16 warps to release a stage
 * (or an ab slot) refills it with the block NST (S9_NAB tiles) further on.
 * (A producer warpgroup with two consumer warpgroups of two halves each,
 * the earlier layout, measured 20.7 / 14.8 ms against 15.9 / 10.3 at
 * db2f1b0, tf32 / bf16 10K x 1M x 128 k=10 on the H100.) */
template <int T, int KB, int NST, int R>
__global__ void __launch_bounds__(S9_THREADS, 1) k_knn_scan_sm90(const knn_sm90_args P) {
    constexpr uint32_t A_BYTES = S9_BM * KB * 128;
    constexpr bool NET = R == 1 && KB == 2; /* 16-key buffers (s9_layout) */
    constexpr uint32_t NW = S9_THREADS / 32; /* warps releasing each stage and ab slot */
    static_assert(NST <= 8 && S9_NAB <= 8, "rel[] holds 8 stage counters, then 8 ab-slot counters");
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t base_s = (smem_u32(smem_raw) + 1023u) & ~1023u;
    unsigned char *gen = smem_raw + (base_s - smem_u32(smem_raw));
    const uint32_t sA = base_s, sB = sA + A_BYTES, sAB = sB + NST * S9_STAGE, bars = sAB + S9_NAB * S9_AB_BYTES;
    const float2 *ab_ring = (const float2 *)(gen + A_BYTES + NST * S9_STAGE);
#define A_FULL (bars)
#define B_FULL(i) (bars + 8 + 8 * (i))
#define AB_FULL(i) (bars + 8 + 8 * NST + 8 * (i))
    s9_state S;
    S.thr = (float *)(gen + A_BYTES + NST * S9_STAGE + S9_NAB * S9_AB_BYTES + S9_BARS(NST));
    S.cnt = (int *)(S.thr + S9_BM);
    S.gt = (float *)(S.cnt + S9_BM);
    uint32_t *rel = (uint32_t *)(S.gt + S9_BM); /* releases per stage, then per ab slot */
    S.buf = (uint64_t *)(rel + 16);
    S.cb = P.cb;
    S.kpos = P.kpos;
    const int64_t row0 = (int64_t)blockIdx.x * S9_BM;
    S.top = P.out + ((int64_t)blockIdx.y * P.m_pad + row0) * 32 * R;
    S.gthr = P.gthr + row0;
    const int tid = threadIdx.x, lane = tid & 31;
    const int t0 = blockIdx.y * P.tiles_per;
    const int t1 = min(P.ntiles, t0 + P.tiles_per);
    const int nt = t1 > t0 ? t1 - t0 : 0;

    if (tid == 0) {
        s9_bar_init(A_FULL, 1);
        for (int i = 0; i < NST; i++) s9_bar_init(B_FULL(i), 1);
        for (int i = 0; i < S9_NAB; i++) s9_bar_init(AB_FULL(i), 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    for (int r = tid; r < S9_BM; r += S9_THREADS) {
        S.cnt[r] = 0;
        S.gt[r] = INFINITY;
        S.thr[r] = row0 + r < P.m ? INFINITY : -INFINITY;
    }
    for (int e = tid; e < S9_BM * 32 * R; e += S9_THREADS) S.top[e] = KNN_EMPTY;
    if (tid < 16) rel[tid] = 0;
    __syncthreads();
    const unsigned char *src = (const unsigned char *)P.dbimg + (int64_t)t0 * KB * S9_STAGE;

    if (tid == 0 && nt > 0) {
        s9_expect(A_FULL, A_BYTES);
        s9_copy(sA, (const unsigned char *)P.qimg + blockIdx.x * (int64_t)A_BYTES, A_BYTES, A_FULL);
        /* the first ring's worth; the releases refill */
        for (int it = 0; it < min(NST, nt * KB); it++) {
            s9_expect(B_FULL(it), S9_STAGE);
            s9_copy(sB + it * S9_STAGE, src + (int64_t)it * S9_STAGE, S9_STAGE, B_FULL(it));
        }
        for (int jj = 0; jj < min(S9_NAB, nt); jj++) {
            s9_expect(AB_FULL(jj), S9_AB_BYTES);
            s9_copy(sAB + jj * S9_AB_BYTES, P.ab + (int64_t)(t0 + jj) * S9_BN, S9_AB_BYTES, AB_FULL(jj));
        }
    }
    {
        const int cw = tid >> 7, wq = (tid >> 5) & 3, g = lane >> 2;
        const int rb = cw * 64 + wq * 16; /* the warp's 16 rows */
        float thr[2];
        uint32_t self[2];
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            const int r = rb + g + rr * 8;
            thr[rr] = S.thr[r];
            self[rr] = (P.self && row0 + r < P.m) ? (uint32_t)(P.self0 + row0 + r) : 0xffffffffu;
        }
        s9_refresh(S, rb, thr);
        const uint32_t a = sA + (cw * 64) * 128;
        float acc[64];
        if (nt > 0) s9_bar_wait(A_FULL, 0);
        for (int j = 0; j < nt; j++) {
            const int it0 = j * KB;
#pragma unroll
            for (int kb = 0; kb < KB; kb++) s9_bar_wait(B_FULL((it0 + kb) % NST), ((it0 + kb) / NST) & 1);
            s9_pin(acc);
            s9_issue<T, KB, NST>(acc, s9_desc(a), s9_desc(sB), it0);
            if ((j & P.refresh_mask) == P.refresh_mask) s9_refresh(S, rb, thr);
            const int sa = j % S9_NAB;
            s9_bar_wait(AB_FULL(sa), (j / S9_NAB) & 1);
            const float2 *sab = ab_ring + sa * S9_BN;
            s9_wait<0>();
            s9_pin(acc);
            if (lane == 0)
#pragma unroll
                for (int kb = 0; kb < KB; kb++) {
                    /* the last (NW-th) release of a stage refills it */
                    const int it = it0 + kb, st = it % NST, nx = it + NST;
                    __threadfence_block();
                    if (atomicAdd(rel + st, 1u) % NW == NW - 1 && nx < nt * KB) {
                        s9_expect(B_FULL(st), S9_STAGE);
                        s9_copy(sB + st * S9_STAGE, src + (int64_t)nx * S9_STAGE, S9_STAGE, B_FULL(st));
                    }
                }
            s9_fold<R, NET>(acc, thr, self, rb, (t0 + j) * S9_BN, sab, P.base, S);
            __syncwarp();
            if (lane == 0) {
                __threadfence_block();
                const int nx = j + S9_NAB;
                if (atomicAdd(rel + 8 + sa, 1u) % NW == NW - 1 && nx < nt) {
                    s9_expect(AB_FULL(sa), S9_AB_BYTES);
                    s9_copy(sAB + sa * S9_AB_BYTES, P.ab + (int64_t)(t0 + nx) * S9_BN, S9_AB_BYTES, AB_FULL(sa));
                }
            }
        }
        __syncwarp();
        for (int q = 0; q < 16; q++)
            if (S.cnt[rb + q] > 0) s9_merge<R, NET>(S, rb + q);
    }
#undef A_FULL
#undef B_FULL
#undef AB_FULL
}

/* The ring depth and append-buffer size per row width (KB column blocks),
 * fixed so the depth can be a template argument: KB 2 (bf16 d <= 128, tf32
 * d <= 64): 7 stages (3.5 tiles), 16 keys a query; KB 4: 5 stages, 4 keys
 * (the 128 KB of resident queries leave no more). Bytes, or 0 when the
 * layout exceeds optin. */
static int s9_layout(int kb, size_t optin, int *nst, int *cb) {
    *nst = kb == 2 ? 7 : 5;
    *cb = kb == 2 ? 16 : 4;
    const size_t bytes = 1024 + (size_t)S9_BM * kb * 128 + (size_t)*nst * S9_STAGE + S9_NAB * S9_AB_BYTES +
                         S9_BARS(*nst) + S9_BM * 12 + 64 + (size_t)S9_BM * *cb * 8;
    return (kb == 2 || kb == 4) && bytes <= optin ? (int)bytes : 0;
}

size_t knn_sm90_smem(int kb, size_t optin) {
    int nst, cb;
    return (size_t)s9_layout(kb, optin, &nst, &cb);
}

template <int T, int KB, int NST>
static const void *s9_kernel(int R) {
    switch (R) {
    case 1: return (const void *)k_knn_scan_sm90<T, KB, NST, 1>;
    case 2: return (const void *)k_knn_scan_sm90<T, KB, NST, 2>;
    case 4: return (const void *)k_knn_scan_sm90<T, KB, NST, 4>;
    default: return (const void *)k_knn_scan_sm90<T, KB, NST, 8>;
    }
}

fl_status knn_scan_sm90(fli_cuda_env *env, cudaStream_t s, const knn_sm90_args *P, int R, int prec, int kb,
                        int slices) {
    int nst = 0, cb = 0;
    const int smem = s9_layout(kb, (size_t)fli_state(env)->smem_optin, &nst, &cb);
    const void *fn = NULL;
    if (kb == 2)
        fn = prec == FLI_PREC_TF32 ? s9_kernel<S9_TF32, 2, 7>(R)
                                   : (prec == FLI_PREC_FP16 ? s9_kernel<S9_FP16, 2, 7>(R)
                                                            : s9_kernel<S9_BF16, 2, 7>(R));
    else if (kb == 4)
        fn = prec == FLI_PREC_TF32 ? s9_kernel<S9_TF32, 4, 5>(R)
                                   : (prec == FLI_PREC_FP16 ? s9_kernel<S9_FP16, 4, 5>(R)
                                                            : s9_kernel<S9_BF16, 4, 5>(R));
    if (!fn || !smem) return FLI_FAIL(env, FL_STATUS_INTERNAL, "knn_scan_sm90", "no layout for this row width");
    knn_sm90_args a = *P;
    a.cb = cb;
    FLI_CUDA_TRY(env, cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    void *args[] = {(void *)&a};
    FLI_CUDA_TRY(env, cudaLaunchKernel(fn, dim3((unsigned)fli_ceil_div(a.m, S9_BM), (unsigned)slices),
                                       dim3(S9_THREADS), args, (size_t)smem, s));
    return FL_STATUS_OK;
}
