/*
 * knn_scan.cu — the kernels of the exact kNN search (knn_cuda.cu drives
 * them): row preparation, the fused distance + top-k scans (tensor cores
 * and SIMT), the merge of the database slices with the exact fp32
 * re-ranking, and the pieces of the general (any k) path.
 *
 * Fused scan contract
 *   Queries A: m rows of kw 32-bit words (tf32: the fp32 values, whose low
 *   13 bits the tensor cores ignore; bf16/fp16: converted copies, two values
 *   a word, zero padded to kw), row stride lda words. Database B: nb rows,
 *   same layout. ab[j] (nb rounded up to 128 entries; +inf past nb) turns a
 *   dot product into the score ab.x * dot + ab.y that ranks database row j
 *   for every query (the GEMM form ||x||^2 - 2 <q,x> of the squared
 *   distance, -<q,x>, -<q,x>/||x||). Grid: x = blocks of 128 queries,
 *   y = slices of the database (consecutive 128-row tiles); each block
 *   writes its queries' best 32R keys of its slice to out[y][row][*].
 *
 * Tensor-core scan (sm_80+, mma.sync): block 128 queries x 128 database
 * rows per tile, 8 warps as 2 (queries) x 4 (rows), warp tile 64 x 32 =
 * 4 x 4 mma tiles (m16n8k8 tf32 / m16n8k16 bf16, fp16), fp32 accumulators.
 * The block's queries stay in shared memory (RES; else they stream with
 * the database chunks), the database streams in 128 x 32-word chunks
 * through a 3-stage cp.async pipeline; rows are padded to 36 words (or
 * kw + 4) so ldmatrix phases hit distinct banks. After each tile the
 * scores are folded into the per-query candidate state (knn_dev.cuh): a
 * register threshold test first, rare appends, merges of full buffers.
 * No n_q x n_db matrix exists: only each block's 128 x 128 accumulators.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backends/cuda/kmeans_dev.cuh"
#include "backends/cuda/knn_cuda.cuh"
#include "backends/cuda/knn_dev.cuh"

#define KNN_LDS 36
#define KNN_STAGES 3

/* ------------------------------------------------------------------------ */
/* Row preparation                                                          */
/* ------------------------------------------------------------------------ */

/* One warp per row of x (m valid rows of mp): the score coefficients ab
 * (NULL for queries) and, for bf16/fp16, the converted copy xh (dh values a
 * row, zero padded; rows past m zero). The squared norm is that of the
 * values the tensor cores read (tf32: truncated), so a GEMM-form score is
 * ||q~ - x~||^2 - ||q~||^2 up to fp32 rounding. */
__global__ void k_knn_prep(const float *__restrict__ x, int64_t ldx, int64_t m, int64_t mp, int d, int dh,
                           int metric, int prec, float2 *__restrict__ ab, void *__restrict__ xh) {
    const int lane = threadIdx.x & 31;
    const int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; i < mp; i += nw) {
        const bool valid = i < m;
        float nn = 0.f, ee = 0.f;
        if (valid)
            for (int j = lane; j < d; j += 32) {
                const float v = x[i * ldx + j];
                float q = v;
                if (prec == FLI_PREC_TF32) q = __uint_as_float(__float_as_uint(v) & 0xffffe000u);
                if (prec == FLI_PREC_BF16) q = __bfloat162float(__float2bfloat16_rn(v));
                if (prec == FLI_PREC_FP16) q = __half2float(__float2half_rn(v));
                nn = fmaf(q, q, nn);
                ee = fmaf(v, v, ee);
            }
        if (xh) {
            for (int j = lane; j < dh; j += 32) {
                const float v = (valid && j < d) ? x[i * ldx + j] : 0.f;
                if (prec == FLI_PREC_BF16)
                    ((__nv_bfloat16 *)xh)[i * dh + j] = __float2bfloat16_rn(v);
                else
                    ((__half *)xh)[i * dh + j] = __float2half_rn(v);
            }
        }
        if (!ab) continue;
        for (int o = 16; o; o >>= 1) {
            nn += __shfl_xor_sync(KNN_FULL, nn, o);
            ee += __shfl_xor_sync(KNN_FULL, ee, o);
        }
        if (lane == 0) {
            float2 c = make_float2(0.f, INFINITY);
            if (valid) {
                if (metric == FLI_KNN_SQEUCLIDEAN || metric == FLI_KNN_EUCLIDEAN)
                    c = make_float2(-2.f, nn);
                else if (metric == FLI_KNN_INNER)
                    c = make_float2(-1.f, 0.f);
                else if (metric == FLI_KNN_COSINE)
                    c = make_float2(ee > 0.f ? -1.f / sqrtf(ee) : 0.f, 0.f);
                else
                    c = make_float2(1.f, 0.f);
            }
            ab[i] = c;
        }
    }
}

fl_status knn_prep_rows(fli_cuda_env *env, cudaStream_t s, const float *x, int64_t ldx, int64_t m, int64_t mp,
                        int64_t d, int64_t dh, int metric, int prec, float2 *ab, void *xh) {
    if (mp <= 0) return FL_STATUS_OK;
    int64_t blocks = fli_ceil_div(mp, 8);
    if (blocks > 32768) blocks = 32768;
    k_knn_prep<<<(int)blocks, 256, 0, s>>>(x, ldx, m, mp, (int)d, (int)dh, metric, prec, ab, xh);
    FLI_LAUNCH_TRY(env, "k_knn_prep");
    return FL_STATUS_OK;
}

/* One thread per 16-byte chunk of the image, written in image order. */
__global__ void k_knn_img(const float *__restrict__ x, int64_t ldx, int64_t m, int64_t mp, int d, int prec,
                          int kb, int tile_rows, uint4 *__restrict__ img) {
    const int64_t per_tile = (int64_t)tile_rows * kb * 8, total = mp * kb * 8;
    const int per = prec == FLI_PREC_TF32 ? 4 : 8; /* values a chunk */
    for (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < total;
         u += (int64_t)gridDim.x * blockDim.x) {
        const int64_t tile = u / per_tile;
        const int rem = (int)(u - tile * per_tile);
        const int blk = rem / (tile_rows * 8), rr = (rem >> 3) % tile_rows, ch = (rem & 7) ^ (rr & 7);
        const int64_t row = tile * tile_rows + rr;
        const int c0 = blk * (per * 8) + ch * per;
        float v[8];
#pragma unroll
        for (int e = 0; e < 8; e++) v[e] = (e < per && row < m && c0 + e < d) ? x[row * ldx + c0 + e] : 0.f;
        uint4 w;
        if (prec == FLI_PREC_TF32) {
            w = make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]),
                           __float_as_uint(v[3]));
        } else {
            uint32_t p[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                if (prec == FLI_PREC_BF16) {
                    const __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * e], v[2 * e + 1]);
                    p[e] = *(const uint32_t *)&h;
                } else {
                    const __half2 h = __floats2half2_rn(v[2 * e], v[2 * e + 1]);
                    p[e] = *(const uint32_t *)&h;
                }
            }
            w = make_uint4(p[0], p[1], p[2], p[3]);
        }
        img[u] = w;
    }
}

fl_status knn_img(fli_cuda_env *env, cudaStream_t s, const float *x, int64_t ldx, int64_t m, int64_t mp,
                  int64_t d, int prec, int kb, int tile_rows, void *img) {
    if (mp <= 0) return FL_STATUS_OK;
    int64_t blocks = fli_ceil_div(mp * kb * 8, 256);
    if (blocks > 65536) blocks = 65536;
    k_knn_img<<<(unsigned)blocks, 256, 0, s>>>(x, ldx, m, mp, (int)d, prec, kb, tile_rows, (uint4 *)img);
    FLI_LAUNCH_TRY(env, "k_knn_img");
    return FL_STATUS_OK;
}

/* ------------------------------------------------------------------------ */
/* Tensor-core fused scan                                                   */
/* ------------------------------------------------------------------------ */

/* 16 bytes (words w0..w0+3 of row `row`) into shared memory: cp.async with
 * zero fill past the row's words or the matrix's rows when the source is
 * 16-byte aligned, else guarded scalar loads. */
static __device__ __forceinline__ void knn_load16(uint32_t *dst, const uint32_t *__restrict__ src, int64_t ld,
                                                  int words, int aligned, int64_t row, int64_t rows, int w0) {
    if (aligned) {
        int valid = row < rows ? words - w0 : 0;
        valid = valid < 0 ? 0 : (valid > 4 ? 4 : valid);
        cp_async16(dst, valid ? src + row * ld + w0 : src, valid * 4);
    } else {
#pragma unroll
        for (int t = 0; t < 4; t++) dst[t] = (row < rows && w0 + t < words) ? src[row * ld + w0 + t] : 0u;
    }
}

/* The shared-memory carve-up after the operand area (8-byte aligned). */
template <int R>
static __device__ __forceinline__ knn_block_state knn_state_at(uint64_t *tail, const knn_scan_args &P,
                                                               int64_t row0) {
    knn_block_state S;
    S.buf = tail;
    tail += KNN_BM * KNN_CB;
    S.top_ld = 32 * R;
    if (P.top_smem) {
        S.top = tail;
        tail += KNN_BM * 32 * R;
    } else {
        S.top = P.out + ((int64_t)blockIdx.y * P.m_pad + row0) * 32 * R;
    }
    S.thr = (float *)tail;
    S.cnt = (int *)(S.thr + KNN_BM);
    return S;
}

template <int PREC, int R>
__global__ void __launch_bounds__(256, 1) k_knn_scan_mma(const knn_scan_args P) {
    extern __shared__ __align__(16) uint32_t smem[];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wm = warp >> 2, wn = warp & 3, g = lane >> 2, t = lane & 3;
    const int64_t row0 = (int64_t)blockIdx.x * KNN_BM;
    const int t0 = blockIdx.y * P.tiles_per;
    const int t1 = min(P.ntiles, t0 + P.tiles_per);
    const int nkc = P.kw / 32;
    const int total = t1 > t0 ? (t1 - t0) * nkc : 0;
    const int res = P.res;
    const int lda_s = res ? P.kw + 4 : KNN_LDS;
    uint32_t *sA = smem;
    uint32_t *sStage = smem + (res ? KNN_BM * lda_s : 0);
    const int stage_words = res ? KNN_BN * KNN_LDS : (KNN_BM + KNN_BN) * KNN_LDS;
    const knn_block_state S = knn_state_at<R>((uint64_t *)(sStage + KNN_STAGES * stage_words), P, row0);

    if (res) {
        const int per_row = P.kw / 4;
        for (int e = tid; e < KNN_BM * per_row; e += 256) {
            const int r = e / per_row, cw = (e - r * per_row) * 4;
            knn_load16(sA + r * lda_s + cw, P.A, P.lda, P.a_words, P.a_aligned, row0 + r, P.m, cw);
        }
    }
    knn_state_init<R>(S, row0, P.m);

#define KNN_LOAD_STAGE(stg, it_)                                                                        \
    do {                                                                                                \
        const int j_ = t0 + (it_) / nkc, wc_ = ((it_) % nkc) * 32;                                      \
        uint32_t *st_ = sStage + (stg) * stage_words;                                                   \
        uint32_t *sb_ = res ? st_ : st_ + KNN_BM * KNN_LDS;                                             \
        if (!res)                                                                                       \
            for (int e = tid; e < KNN_BM * 8; e += 256)                                                 \
                knn_load16(st_ + (e >> 3) * KNN_LDS + (e & 7) * 4, P.A, P.lda, P.a_words, P.a_aligned,  \
                           row0 + (e >> 3), P.m, wc_ + (e & 7) * 4);                                    \
        if (P.b_aligned) {                                                                              \
            const int wv_ = P.b_words - wc_ - bw;                                                       \
            const int vb_ = wv_ >= 4 ? 16 : (wv_ > 0 ? wv_ * 4 : 0);                                    \
            const int64_t r0_ = (int64_t)j_ * KNN_BN + br;                                              \
            const uint32_t *src_ = P.B + r0_ * P.ldb + wc_ + bw;                                        \
            _Pragma("unroll") for (int q_ = 0; q_ < 4; q_++) {                                          \
                const int ok_ = r0_ + 32 * q_ < P.nb ? vb_ : 0;                                         \
                cp_async16(sb_ + bdst + q_ * 32 * KNN_LDS, ok_ ? src_ + q_ * bstep : P.B, ok_);         \
            }                                                                                           \
        } else {                                                                                        \
            for (int e = tid; e < KNN_BN * 8; e += 256)                                                 \
                knn_load16(sb_ + (e >> 3) * KNN_LDS + (e & 7) * 4, P.B, P.ldb, P.b_words, 0,            \
                           (int64_t)j_ * KNN_BN + (e >> 3), P.nb, wc_ + (e & 7) * 4);                   \
        }                                                                                               \
    } while (0)

    /* this thread's database pieces: rows br + 32 q, words bw..bw+3 */
    const int br = tid >> 3, bw = (tid & 7) * 4, bdst = br * KNN_LDS + bw;
    const int64_t bstep = 32 * P.ldb;
#pragma unroll
    for (int s = 0; s < KNN_STAGES - 1; s++) {
        if (s < total) KNN_LOAD_STAGE(s, s);
        cp_async_commit();
    }

    int rr[8], cc[8];
    float thr[8];
    uint32_t selfc[8];
#pragma unroll
    for (int i = 0; i < 8; i++) {
        rr[i] = wm * 64 + (i >> 1) * 16 + (i & 1) * 8 + g;
        cc[i] = wn * 32 + (i >> 1) * 8 + 2 * t + (i & 1);
        thr[i] = S.thr[rr[i]];
        selfc[i] = (P.self && row0 + rr[i] < P.m) ? (uint32_t)(P.self0 + row0 + rr[i]) : 0xffffffffu;
    }
    float acc[4][4][4];
#pragma unroll
    for (int a = 0; a < 4; a++)
#pragma unroll
        for (int b = 0; b < 4; b++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[a][b][e] = 0.f;

    const int ra = (lane & 7) + ((lane >> 3) & 1) * 8, ca = (lane >> 4) * 4;
    const int rb = (lane & 7) + (lane >> 4) * 8, cb = ((lane >> 3) & 1) * 4;
    for (int it = 0; it < total; it++) {
        cp_async_wait<KNN_STAGES - 2>();
        __syncthreads();
        const int nxt = it + KNN_STAGES - 1;
        if (nxt < total) KNN_LOAD_STAGE(nxt % KNN_STAGES, nxt);
        cp_async_commit();
        const uint32_t *st = sStage + (it % KNN_STAGES) * stage_words;
        const uint32_t *pa = (res ? sA + (it % nkc) * 32 : st) + wm * 64 * lda_s;
        const uint32_t *pb = (res ? st : st + KNN_BM * KNN_LDS) + wn * 32 * KNN_LDS;
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            const int ko = ks * 8;
            uint32_t af[4][4], bf[4][2];
#pragma unroll
            for (int mt = 0; mt < 4; mt++) ldsm_x4(af[mt], pa + (mt * 16 + ra) * lda_s + ko + ca);
#pragma unroll
            for (int np = 0; np < 2; np++) {
                uint32_t q[4];
                ldsm_x4(q, pb + (np * 16 + rb) * KNN_LDS + ko + cb);
                bf[2 * np][0] = q[0];
                bf[2 * np][1] = q[1];
                bf[2 * np + 1][0] = q[2];
                bf[2 * np + 1][1] = q[3];
            }
#pragma unroll
            for (int mt = 0; mt < 4; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++) mma_tile<PREC>(acc[mt][nt], af[mt], bf[nt]);
        }
        if (it % nkc == nkc - 1) {
            float v[8][8];
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < 8; j++) v[i][j] = acc[i >> 1][j >> 1][(i & 1) * 2 + (j & 1)];
            knn_fold<R>(v, rr, cc, thr, selfc, (t0 + it / nkc) * KNN_BN, P.ab, P.base, S);
#pragma unroll
            for (int a = 0; a < 4; a++)
#pragma unroll
                for (int b = 0; b < 4; b++)
#pragma unroll
                    for (int e = 0; e < 4; e++) acc[a][b][e] = 0.f;
        }
    }
#undef KNN_LOAD_STAGE
    cp_async_wait<0>();
    knn_state_finish<R>(S, P.out + ((int64_t)blockIdx.y * P.m_pad + row0) * 32 * R, 32 * R, P.top_smem);
}

/* ------------------------------------------------------------------------ */
/* SIMT fused scan (fp32; MANHATTAN and MINKOWSKI)                          */
/* ------------------------------------------------------------------------ */
/* Block 128 x 128 as 16 x 16 threads, 8 x 8 results each (rows ty*4 + i
 * and 64 + ty*4 + i, likewise columns), chunks of 16 dimensions through
 * shared memory. MODE 0: dot products (scored through ab); 1: sum |q - x|;
 * 2: sum |q - x|^p. Accumulation runs in dimension order, like knn_exact. */
#define KNN_SK 16
template <int MODE, int R>
__global__ void __launch_bounds__(256, 1) k_knn_scan_simt(const knn_scan_args P) {
    extern __shared__ __align__(16) uint32_t smem[];
    float(*As)[KNN_BM + 4] = (float(*)[KNN_BM + 4])smem;
    float(*Bs)[KNN_BN + 4] = (float(*)[KNN_BN + 4])(smem + KNN_SK * (KNN_BM + 4));
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int64_t row0 = (int64_t)blockIdx.x * KNN_BM;
    const int t0 = blockIdx.y * P.tiles_per;
    const int t1 = min(P.ntiles, t0 + P.tiles_per);
    const knn_block_state S = knn_state_at<R>((uint64_t *)(smem + KNN_SK * (KNN_BM + KNN_BN + 8)), P, row0);
    knn_state_init<R>(S, row0, P.m);
    const float *__restrict__ A = (const float *)P.A;
    const float *__restrict__ B = (const float *)P.B;
    const int d = P.a_words;
    int rr[8], cc[8];
    float thr[8];
    uint32_t selfc[8];
#pragma unroll
    for (int i = 0; i < 8; i++) {
        rr[i] = (i < 4 ? 0 : 64) + ty * 4 + (i & 3);
        cc[i] = (i < 4 ? 0 : 64) + tx * 4 + (i & 3);
        thr[i] = S.thr[rr[i]];
        selfc[i] = (P.self && row0 + rr[i] < P.m) ? (uint32_t)(P.self0 + row0 + rr[i]) : 0xffffffffu;
    }
    for (int tile = t0; tile < t1; tile++) {
        const int64_t c0 = (int64_t)tile * KNN_BN;
        float acc[8][8];
#pragma unroll
        for (int i = 0; i < 8; i++)
#pragma unroll
            for (int j = 0; j < 8; j++) acc[i][j] = 0.f;
        for (int kc = 0; kc < d; kc += KNN_SK) {
#pragma unroll
            for (int q = 0; q < 8; q++) {
                const int e = tid + 256 * q, r = e >> 4, kk = e & 15;
                const bool in = kc + kk < d;
                As[kk][r] = (in && row0 + r < P.m) ? A[(row0 + r) * P.lda + kc + kk] : 0.f;
                Bs[kk][r] = (in && c0 + r < P.nb) ? B[(c0 + r) * P.ldb + kc + kk] : 0.f;
            }
            __syncthreads();
#pragma unroll 4
            for (int kk = 0; kk < KNN_SK; kk++) {
                const float4 a0 = *(const float4 *)&As[kk][ty * 4], a1 = *(const float4 *)&As[kk][64 + ty * 4];
                const float4 b0 = *(const float4 *)&Bs[kk][tx * 4], b1 = *(const float4 *)&Bs[kk][64 + tx * 4];
                const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
                const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
                for (int i = 0; i < 8; i++)
#pragma unroll
                    for (int j = 0; j < 8; j++) {
                        if (MODE == 0)
                            acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
                        else if (MODE == 1)
                            acc[i][j] += fabsf(av[i] - bv[j]);
                        else
                            acc[i][j] += powf(fabsf(av[i] - bv[j]), P.p);
                    }
            }
            __syncthreads();
        }
        knn_fold<R>(acc, rr, cc, thr, selfc, tile * KNN_BN, P.ab, P.base, S);
    }
    knn_state_finish<R>(S, P.out + ((int64_t)blockIdx.y * P.m_pad + row0) * 32 * R, 32 * R, P.top_smem);
}

size_t knn_scan_smem(const knn_scan_args *P, int R, int simt) {
    size_t words;
    if (simt)
        words = KNN_SK * (KNN_BM + KNN_BN + 8);
    else
        words = (P->res ? KNN_BM * (P->kw + 4) : 0) +
                KNN_STAGES * (P->res ? KNN_BN * KNN_LDS : (KNN_BM + KNN_BN) * KNN_LDS);
    size_t bytes = words * 4 + KNN_BM * KNN_CB * 8 + (P->top_smem ? (size_t)KNN_BM * 32 * R * 8 : 0) + KNN_BM * 8;
    return bytes;
}

template <typename K>
static fl_status knn_launch(fli_cuda_env *env, cudaStream_t s, K kern, dim3 grid, size_t smem,
                            const knn_scan_args *P, const char *what) {
    FLI_CUDA_TRY(env, cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    kern<<<grid, 256, smem, s>>>(*P);
    FLI_LAUNCH_TRY(env, what);
    return FL_STATUS_OK;
}

template <int R>
static fl_status knn_scan_r(fli_cuda_env *env, cudaStream_t s, const knn_scan_args *P, int prec, int mode,
                            dim3 grid, size_t smem) {
    if (prec == FLI_PREC_TF32) return knn_launch(env, s, k_knn_scan_mma<FLI_PREC_TF32, R>, grid, smem, P, "k_knn_scan_mma");
    if (prec == FLI_PREC_BF16) return knn_launch(env, s, k_knn_scan_mma<FLI_PREC_BF16, R>, grid, smem, P, "k_knn_scan_mma");
    if (prec == FLI_PREC_FP16) return knn_launch(env, s, k_knn_scan_mma<FLI_PREC_FP16, R>, grid, smem, P, "k_knn_scan_mma");
    if (mode == 1) return knn_launch(env, s, k_knn_scan_simt<1, R>, grid, smem, P, "k_knn_scan_simt");
    if (mode == 2) return knn_launch(env, s, k_knn_scan_simt<2, R>, grid, smem, P, "k_knn_scan_simt");
    return knn_launch(env, s, k_knn_scan_simt<0, R>, grid, smem, P, "k_knn_scan_simt");
}

fl_status knn_scan(fli_cuda_env *env, cudaStream_t s, const knn_scan_args *P, int R, int prec, int mode,
                   int slices) {
    const int simt = prec == FLI_PREC_FP32;
    const size_t smem = knn_scan_smem(P, R, simt);
    dim3 grid((unsigned)fli_ceil_div(P->m, KNN_BM), (unsigned)slices);
    switch (R) {
    case 1: return knn_scan_r<1>(env, s, P, prec, mode, grid, smem);
    case 2: return knn_scan_r<2>(env, s, P, prec, mode, grid, smem);
    case 4: return knn_scan_r<4>(env, s, P, prec, mode, grid, smem);
    default: return knn_scan_r<8>(env, s, P, prec, mode, grid, smem);
    }
}

/* ------------------------------------------------------------------------ */
/* Slice merge + exact re-ranking                                           */
/* ------------------------------------------------------------------------ */
/* One warp per query: the slices' lists merged into the best kprime keys
 * (scan scores), each re-scored exactly in fp32 (knn_exact), sorted by
 * (exact value, index), merged with the running list of earlier database
 * chunks, and the best k written: to run (keys, when more chunks follow)
 * or to the outputs. */
template <int R>
__global__ void __launch_bounds__(256) k_knn_finalize(const knn_fin_args F) {
    const int lane = threadIdx.x & 31;
    const int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (row >= F.m) return;
    uint64_t reg[R];
#pragma unroll
    for (int i = 0; i < R; i++) reg[i] = KNN_EMPTY;
    uint64_t last = KNN_EMPTY;
    for (int s = 0; s < F.slices; s++)
        wl_insert_all<R>(reg, last, F.lists + ((int64_t)s * F.m_pad + row) * 32 * R, 32 * R);
    const float *q = F.q + row * F.ldq;
    uint64_t ex[R];
#pragma unroll
    for (int i = 0; i < R; i++) {
        const int pos = lane * R + i;
        ex[i] = KNN_EMPTY;
        if (pos < F.kprime && reg[i] != KNN_EMPTY) {
            const uint32_t gi = (uint32_t)reg[i];
            const float f = knn_exact(q, F.db + (int64_t)(gi - F.base) * F.lddb, F.d, F.vec, F.metric, F.p);
            ex[i] = knn_key(f, gi);
        }
    }
#pragma unroll
    for (int i = 0; i < R; i++) reg[i] = KNN_EMPTY;
    last = KNN_EMPTY;
#pragma unroll
    for (int i = 0; i < R; i++) {
        unsigned mk = __ballot_sync(KNN_FULL, ex[i] < last);
        while (mk) {
            const int sl = __ffs(mk) - 1;
            mk &= mk - 1;
            const uint64_t x = __shfl_sync(KNN_FULL, ex[i], sl);
            if (x < last) {
                wl_insert<R>(reg, x);
                last = wl_last<R>(reg);
            }
        }
    }
    if (F.run_in) wl_insert_all<R>(reg, last, F.run_in + row * F.k, (int)F.k);
    __syncwarp();
#pragma unroll
    for (int i = 0; i < R; i++) {
        const int pos = lane * R + i;
        if (pos >= F.k) continue;
        if (F.run_out) {
            F.run_out[row * F.k + pos] = reg[i];
        } else {
            float f = knn_key_score(reg[i]);
            if (F.metric == FLI_KNN_INNER) f = -f;
            if (F.dist) F.dist[row * F.dist_ld + pos] = f;
            F.idx[row * F.idx_ld + pos] = (int64_t)(uint32_t)reg[i];
        }
    }
}

fl_status knn_finalize(fli_cuda_env *env, cudaStream_t s, const knn_fin_args *F, int R) {
    if (F->m <= 0) return FL_STATUS_OK;
    const unsigned blocks = (unsigned)fli_ceil_div(F->m, 8);
    switch (R) {
    case 1: k_knn_finalize<1><<<blocks, 256, 0, s>>>(*F); break;
    case 2: k_knn_finalize<2><<<blocks, 256, 0, s>>>(*F); break;
    case 4: k_knn_finalize<4><<<blocks, 256, 0, s>>>(*F); break;
    default: k_knn_finalize<8><<<blocks, 256, 0, s>>>(*F); break;
    }
    FLI_LAUNCH_TRY(env, "k_knn_finalize");
    return FL_STATUS_OK;
}

/* ------------------------------------------------------------------------ */
/* General path (any k): score matrix, segmented sorts                      */
/* ------------------------------------------------------------------------ */
/* Scores of m queries x nb database rows (fp32 SIMT, 64 x 64 tiles, 4 x 4
 * per thread), as float keys with the database index as value; a query's
 * own row gets +inf with self exclusion. */
template <int MODE>
__global__ void __launch_bounds__(256)
    k_knn_matrix(const float *__restrict__ Q, int64_t ldq, int64_t m, const float *__restrict__ X, int64_t ldx,
                 int64_t nb, int d, const float2 *__restrict__ ab, float p, uint32_t base, int self, int64_t self0,
                 float *__restrict__ keys, uint32_t *__restrict__ vals) {
    __shared__ __align__(16) float As[16][68];
    __shared__ __align__(16) float Bs[16][68];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int64_t r0 = (int64_t)blockIdx.y * 64, c0 = (int64_t)blockIdx.x * 64;
    float acc[4][4] = {};
    for (int kc = 0; kc < d; kc += 16) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int e = tid + 256 * q, r = e >> 4, kk = e & 15;
            const bool in = kc + kk < d;
            As[kk][r] = (in && r0 + r < m) ? Q[(r0 + r) * ldq + kc + kk] : 0.f;
            Bs[kk][r] = (in && c0 + r < nb) ? X[(c0 + r) * ldx + kc + kk] : 0.f;
        }
        __syncthreads();
#pragma unroll 4
        for (int kk = 0; kk < 16; kk++) {
            const float4 a = *(const float4 *)&As[kk][ty * 4], b = *(const float4 *)&Bs[kk][tx * 4];
            const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    if (MODE == 0)
                        acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
                    else if (MODE == 1)
                        acc[i][j] += fabsf(av[i] - bv[j]);
                    else
                        acc[i][j] += powf(fabsf(av[i] - bv[j]), p);
                }
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int64_t r = r0 + ty * 4 + i;
        if (r >= m) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int64_t c = c0 + tx * 4 + j;
            if (c >= nb) continue;
            float sc = fmaf(ab[c].x, acc[i][j], ab[c].y);
            const uint32_t gi = base + (uint32_t)c;
            if (self && (int64_t)gi == self0 + r) sc = INFINITY;
            keys[r * nb + c] = sc;
            vals[r * nb + c] = gi;
        }
    }
}

fl_status knn_matrix(fli_cuda_env *env, cudaStream_t s, const float *q, int64_t ldq, int64_t m, const float *x,
                     int64_t ldx, int64_t nb, int64_t d, const float2 *ab, int mode, float p, uint32_t base,
                     int self, int64_t self0, float *keys, uint32_t *vals) {
    dim3 grid((unsigned)fli_ceil_div(nb, 64), (unsigned)fli_ceil_div(m, 64));
    if (mode == 1)
        k_knn_matrix<1><<<grid, 256, 0, s>>>(q, ldq, m, x, ldx, nb, (int)d, ab, p, base, self, self0, keys, vals);
    else if (mode == 2)
        k_knn_matrix<2><<<grid, 256, 0, s>>>(q, ldq, m, x, ldx, nb, (int)d, ab, p, base, self, self0, keys, vals);
    else
        k_knn_matrix<0><<<grid, 256, 0, s>>>(q, ldq, m, x, ldx, nb, (int)d, ab, p, base, self, self0, keys, vals);
    FLI_LAUNCH_TRY(env, "k_knn_matrix");
    return FL_STATUS_OK;
}

/* Segment offsets i * len, i = 0..n. */
__global__ void k_knn_offsets(int *off, int64_t n, int64_t len) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i <= n; i += (int64_t)gridDim.x * blockDim.x)
        off[i] = (int)(i * len);
}

fl_status knn_offsets(fli_cuda_env *env, cudaStream_t s, int *off, int64_t n, int64_t len) {
    k_knn_offsets<<<(unsigned)fli_ceil_div(n + 1, 256), 256, 0, s>>>(off, n, len);
    FLI_LAUNCH_TRY(env, "k_knn_offsets");
    return FL_STATUS_OK;
}

/* The pool of one query: its best kprime database rows by scan score
 * (sorted[i * nb ..]) re-scored exactly as keys, then the running list of
 * earlier chunks (or empty keys): pool[i * (kprime + k) ..]. */
__global__ void k_knn_pool(const uint32_t *__restrict__ sorted, int64_t nb, int64_t m, int64_t kprime, int64_t k,
                           const float *__restrict__ Q, int64_t ldq, const float *__restrict__ X, int64_t ldx, int d,
                           int vec, int metric, float p, uint32_t base, int self, int64_t self0,
                           const uint64_t *__restrict__ run, uint64_t *__restrict__ pool) {
    const int64_t L = kprime + k;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < m * L; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e / L, j = e - i * L;
        uint64_t key = KNN_EMPTY;
        if (j < kprime) {
            const uint32_t gi = sorted[i * nb + j];
            if (!(self && (int64_t)gi == self0 + i))
                key = knn_key(knn_exact(Q + i * ldq, X + (int64_t)(gi - base) * ldx, d, vec, metric, p), gi);
        } else if (run) {
            key = run[i * k + (j - kprime)];
        }
        pool[e] = key;
    }
}

fl_status knn_pool(fli_cuda_env *env, cudaStream_t s, const uint32_t *sorted, int64_t nb, int64_t m,
                   int64_t kprime, int64_t k, const float *q, int64_t ldq, const float *x, int64_t ldx, int64_t d,
                   int vec, int metric, float p, uint32_t base, int self, int64_t self0, const uint64_t *run,
                   uint64_t *pool) {
    int64_t blocks = fli_ceil_div(m * (kprime + k), 256);
    if (blocks > 65536) blocks = 65536;
    k_knn_pool<<<(unsigned)blocks, 256, 0, s>>>(sorted, nb, m, kprime, k, q, ldq, x, ldx, (int)d, vec, metric, p,
                                                base, self, self0, run, pool);
    FLI_LAUNCH_TRY(env, "k_knn_pool");
    return FL_STATUS_OK;
}

/* The first k keys of each sorted pool: to run, or to the outputs. */
__global__ void k_knn_take(const uint64_t *__restrict__ pool, int64_t L, int64_t m, int64_t k, int metric,
                           uint64_t *__restrict__ run, float *__restrict__ dist, int64_t dist_ld,
                           int64_t *__restrict__ idx, int64_t idx_ld) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < m * k; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e / k, j = e - i * k;
        const uint64_t key = pool[i * L + j];
        if (run) {
            run[e] = key;
        } else {
            float f = knn_key_score(key);
            if (metric == FLI_KNN_INNER) f = -f;
            if (dist) dist[i * dist_ld + j] = f;
            idx[i * idx_ld + j] = (int64_t)(uint32_t)key;
        }
    }
}

fl_status knn_take(fli_cuda_env *env, cudaStream_t s, const uint64_t *pool, int64_t L, int64_t m, int64_t k,
                   int metric, uint64_t *run, float *dist, int64_t dist_ld, int64_t *idx, int64_t idx_ld) {
    int64_t blocks = fli_ceil_div(m * k, 256);
    if (blocks > 65536) blocks = 65536;
    k_knn_take<<<(unsigned)blocks, 256, 0, s>>>(pool, L, m, k, metric, run, dist, dist_ld, idx, idx_ld);
    FLI_LAUNCH_TRY(env, "k_knn_take");
    return FL_STATUS_OK;
}
