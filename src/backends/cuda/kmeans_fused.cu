/*
 * kmeans_fused.cu — one kernel per Lloyd iteration for small k*d: the
 * E-step (tensor-core scores + argmin) and the M-step accumulation (cluster
 * sums, weights and the exact objective of each point) over the same tile
 * of X, which is read from memory once.
 *
 * Persistent grid, one block of 8 warps per SM. Every centre (tensor-core
 * copy, kf = k rounded to 64 rows) and its score offset stay in shared
 * memory; 128-row tiles of fp32 X stream through a ring of `stages`
 * cp.async buffers, so the next tiles' copies overlap this tile's work.
 *
 * E part: warps as 4 (32 rows) x 2 (32 centres of each 64-centre chunk).
 * A fragments come straight from the fp32 tile (tf32: ldmatrix then
 * cvt.rna; bf16/fp16: float2 loads packed to 16-bit pairs) and stay in
 * registers across the centre chunks; B fragments by ldmatrix. Each chunk
 * is folded into a running (score, index) per row, ties to the lower
 * index, then the two centre halves meet in shared memory.
 * M part: warp w takes rows 16w..16w+15 of the tile; lane j owns columns
 * j and j+32: it adds w*x into the cluster's row of the block's sums
 * (a private copy per warp when 8 fit — plain read-modify-writes — else
 * one copy with shared-memory atomics) and its share of the exact fp32
 * objective ||x - c||^2 (c from the fp32 centres); the 16 rows' partials
 * are reduced across lanes with one transpose-reduction (16 shuffles for
 * 16 rows instead of 80).
 * Opt-in (FL_KM_FUSED=1): on the H100 it is slower than the separate E and
 * M kernels (bench/gpu/NOTES.md: 8 warps per SM, latency-bound).
 * End: the block adds its warp copies in a fixed order into its slice of
 * acc_part (k x (d+2): sums, weight) and its objective into part[block];
 * k_acc_combine sums the blocks in a fixed order. No global atomics on
 * data; results do not depend on scheduling.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <string.h>

#include "backends/cuda/kmeans_cuda.cuh"
#include "backends/cuda/kmeans_dev.cuh"

#define FB FLI_KM_FUSED_BM
#define FT (FLI_KM_FUSED_WARPS * 32)

typedef struct km_fused_args {
    const float *x;
    int64_t ldx;
    int x_aligned;
    int64_t m;
    int d;
    const float *w;
    const uint32_t *ctc; /* tensor-core centres, row stride ldc words */
    int64_t ldc;
    const float *cnorm;
    const float *C; /* fp32 centres, row stride dp */
    int64_t dp;
    int k;
    float alpha;
    int metric;
    int stages;
    int priv;
    int acc; /* 1: cluster sums into acc_part; 0: labels + objective only */
    int32_t *labels;
    int32_t *n_changed;
    float *dist;
    float *acc_part;
    double *part;
    const int32_t *done;
    /* shared layout */
    int ks, cst, kf, xw, xst, acc_ld;
    int off_b, off_cn, off_x, off_acc, off_red, off_lab;
} km_fused_args;

template <int PREC>
static __device__ __forceinline__ uint32_t pack2(float2 v) {
    if (PREC == FLI_PREC_BF16) {
        __nv_bfloat162 h = __floats2bfloat162_rn(v.x, v.y);
        return *(uint32_t *)&h;
    }
    __half2 h = __floats2half2_rn(v.x, v.y);
    return *(uint32_t *)&h;
}

static __device__ __forceinline__ void cp_async_wait_n(int n) {
    /* groups allowed in flight: stages - 1 (2..4 stages) */
    if (n <= 1)
        cp_async_wait<1>();
    else if (n == 2)
        cp_async_wait<2>();
    else
        cp_async_wait<3>();
}

/* Copies rows [t*FB, t*FB + FB) of X (xw columns, zero past d and m) into a
 * shared tile with row stride xst. */
static __device__ __forceinline__ void load_tile(const km_fused_args &a, float *dst, int64_t t) {
    const int per_row = a.xw >> 2;
    for (int e = threadIdx.x; e < FB * per_row; e += FT) {
        const int r = e / per_row, q = (e - r * per_row) * 4;
        const int64_t gr = t * FB + r;
        float *p = dst + r * a.xst + q;
        if (a.x_aligned) {
            int valid = gr < a.m ? a.d - q : 0;
            valid = valid < 0 ? 0 : (valid > 4 ? 4 : valid);
            cp_async16(p, valid ? a.x + gr * a.ldx + q : a.x, valid * 4);
        } else {
#pragma unroll
            for (int u = 0; u < 4; u++) p[u] = (gr < a.m && q + u < a.d) ? a.x[gr * a.ldx + q + u] : 0.f;
        }
    }
}

template <int PREC, int KSM>
__global__ void __launch_bounds__(FT, 1) k_fused(const km_fused_args a) {
    if (a.done && *a.done) return;
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ double sh[32];
    uint32_t *sB = (uint32_t *)(smem + a.off_b);
    float *scn = (float *)(smem + a.off_cn);
    float *sX = (float *)(smem + a.off_x);
    float *sacc = (float *)(smem + a.off_acc);
    float *red_s = (float *)(smem + a.off_red);
    int *red_i = (int *)(red_s + 2 * FB);
    int *slab = (int *)(smem + a.off_lab);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wr = warp >> 1, wc = warp & 1;
    const int g = lane >> 2, t4 = lane & 3;
    const int cw = a.ks * 8; /* centre words per row */
    const int64_t tiles = (a.m + FB - 1) / FB;
    const int64_t tot = (int64_t)a.k * a.acc_ld;

    /* centres, score offsets, zeroed sums */
    {
        const int per = cw >> 2;
        for (int e = tid; e < a.kf * per; e += FT) {
            const int r = e / per, q = (e - r * per) * 4;
            cp_async16(sB + r * a.cst + q, a.ctc + (int64_t)r * a.ldc + q, 16);
        }
        for (int e = tid; e < a.kf; e += FT) scn[e] = a.cnorm[e];
        if (a.acc)
            for (int64_t e = tid; e < (a.priv ? FLI_KM_FUSED_WARPS : 1) * tot; e += FT) sacc[e] = 0.f;
    }
    for (int s = 0; s < a.stages - 1; s++) {
        const int64_t t = blockIdx.x + (int64_t)s * gridDim.x;
        if (t < tiles) load_tile(a, sX + s * FB * a.xst, t);
        cp_async_commit();
    }
    float *my = a.priv ? sacc + warp * tot : sacc;
    double objacc = 0;
    const int nch = a.kf / 64;
    /* ldmatrix lane offsets (see kmeans_estep.cu: warp_mma) */
    const int ra = (lane & 7) + ((lane >> 3) & 1) * 8, ca = (lane >> 4) * 4;
    const int rb = (lane & 7) + (lane >> 4) * 8, cb = ((lane >> 3) & 1) * 4;

    int it = 0;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x, it++) {
        {
            const int64_t t = tile + (int64_t)(a.stages - 1) * gridDim.x;
            if (t < tiles) load_tile(a, sX + ((it + a.stages - 1) % a.stages) * FB * a.xst, t);
            cp_async_commit();
        }
        cp_async_wait_n(a.stages - 1);
        __syncthreads();
        const float *xs = sX + (it % a.stages) * FB * a.xst;
        const int64_t row0 = tile * FB;
        const int old = (tid < FB && row0 + tid < a.m) ? a.labels[row0 + tid] : 0;

        /* ---- E part ---------------------------------------------------- */
        {
            uint32_t af[KSM][2][4];
#pragma unroll
            for (int ks = 0; ks < KSM; ks++) {
                if (ks < a.ks) {
#pragma unroll
                    for (int mt = 0; mt < 2; mt++) {
                        const int r = wr * 32 + mt * 16;
                        if (PREC == FLI_PREC_TF32) {
                            ldsm_x4(af[ks][mt], (const uint32_t *)xs + (r + ra) * a.xst + ks * 8 + ca);
#pragma unroll
                            for (int e = 0; e < 4; e++) af[ks][mt][e] = to_tf32(__uint_as_float(af[ks][mt][e]));
                        } else {
                            const float *p0 = xs + (r + g) * a.xst + ks * 16 + 2 * t4;
                            const float *p1 = p0 + 8 * a.xst;
                            af[ks][mt][0] = pack2<PREC>(*(const float2 *)p0);
                            af[ks][mt][1] = pack2<PREC>(*(const float2 *)p1);
                            af[ks][mt][2] = pack2<PREC>(*(const float2 *)(p0 + 8));
                            af[ks][mt][3] = pack2<PREC>(*(const float2 *)(p1 + 8));
                        }
                    }
                }
            }
            float best[2][2];
            int bidx[2][2];
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    best[mt][h] = INFINITY;
                    bidx[mt][h] = 0;
                }
            for (int ch = 0; ch < nch; ch++) {
                const int col0 = ch * 64 + wc * 32;
                float acc[2][4][4];
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int nt = 0; nt < 4; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) acc[mt][nt][e] = 0.f;
#pragma unroll
                for (int ks = 0; ks < KSM; ks++) {
                    if (ks < a.ks) {
                        uint32_t bf[4][2];
#pragma unroll
                        for (int np = 0; np < 2; np++) {
                            uint32_t q[4];
                            ldsm_x4(q, sB + (col0 + np * 16 + rb) * a.cst + ks * 8 + cb);
                            bf[2 * np][0] = q[0];
                            bf[2 * np][1] = q[1];
                            bf[2 * np + 1][0] = q[2];
                            bf[2 * np + 1][1] = q[3];
                        }
#pragma unroll
                        for (int mt = 0; mt < 2; mt++)
#pragma unroll
                            for (int nt = 0; nt < 4; nt++) mma_tile<PREC>(acc[mt][nt], af[ks][mt], bf[nt]);
                    }
                }
                /* fold: tile minimum first; the first column holding it only
                 * when it beats the running best (= strict ascending scan) */
                float cn[4][2];
#pragma unroll
                for (int nt = 0; nt < 4; nt++) {
                    cn[nt][0] = scn[col0 + nt * 8 + 2 * t4];
                    cn[nt][1] = scn[col0 + nt * 8 + 2 * t4 + 1];
                }
#pragma unroll
                for (int mt = 0; mt < 2; mt++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        float sc[4][2], tmin = INFINITY;
#pragma unroll
                        for (int nt = 0; nt < 4; nt++) {
                            sc[nt][0] = fmaf(-a.alpha, acc[mt][nt][2 * h], cn[nt][0]);
                            sc[nt][1] = fmaf(-a.alpha, acc[mt][nt][2 * h + 1], cn[nt][1]);
                            tmin = fminf(tmin, fminf(sc[nt][0], sc[nt][1]));
                        }
                        if (tmin < best[mt][h]) {
                            int ix = 0;
#pragma unroll
                            for (int nt = 3; nt >= 0; nt--) {
                                if (sc[nt][1] == tmin) ix = col0 + nt * 8 + 2 * t4 + 1;
                                if (sc[nt][0] == tmin) ix = col0 + nt * 8 + 2 * t4;
                            }
                            best[mt][h] = tmin;
                            bidx[mt][h] = ix;
                        }
                    }
            }
            /* quad, then the two centre halves */
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    float v = best[mt][h];
                    int ix = bidx[mt][h];
#pragma unroll
                    for (int o = 1; o < 4; o <<= 1) {
                        float ov = __shfl_xor_sync(KM_FULL, v, o);
                        int oi = __shfl_xor_sync(KM_FULL, ix, o);
                        argmin_merge(v, ix, ov, oi);
                    }
                    if (t4 == 0) {
                        const int r = wr * 32 + mt * 16 + h * 8 + g;
                        red_s[wc * FB + r] = v;
                        red_i[wc * FB + r] = ix;
                    }
                }
        }
        __syncthreads();
        if (tid < FB) {
            float v = red_s[tid];
            int ix = red_i[tid];
            argmin_merge(v, ix, red_s[FB + tid], red_i[FB + tid]);
            slab[tid] = ix;
            int changed = 0;
            if (row0 + tid < a.m) {
                a.labels[row0 + tid] = ix;
                changed = old != ix;
            }
            count_changes(changed, a.n_changed); /* warps 0..3, whole warps */
        }
        __syncthreads();

        /* ---- M part: sums and exact objective ----------------------------- */
        {
            /* every load first (no store can alias them yet), then the
             * read-modify-writes, which must stay in row order */
            int cc[16];
            float xv[16][2], wv[16], o[16];
#pragma unroll
            for (int i = 0; i < 16; i++) {
                const int r = warp * 16 + i;
                const int64_t gr = row0 + r;
                cc[i] = slab[r];
                wv[i] = gr < a.m ? (a.w ? a.w[gr] : 1.f) : 0.f;
#pragma unroll
                for (int q = 0; q < 2; q++) {
                    const int j = lane + 32 * q;
                    xv[i][q] = j < a.d ? xs[r * a.xst + j] : 0.f;
                }
            }
#pragma unroll
            for (int i = 0; i < 16; i++) {
                const float *cr = a.C + (int64_t)cc[i] * a.dp;
                o[i] = 0.f;
                if (row0 + warp * 16 + i < a.m) {
#pragma unroll
                    for (int q = 0; q < 2; q++) {
                        const int j = lane + 32 * q;
                        if (j < a.d) o[i] += obj_term(xv[i][q], __ldg(cr + j), a.metric);
                    }
                }
            }
            if (a.acc) {
#pragma unroll
                for (int i = 0; i < 16; i++) {
                    if (row0 + warp * 16 + i < a.m) {
                        float *sr = my + (int64_t)cc[i] * a.acc_ld;
#pragma unroll
                        for (int q = 0; q < 2; q++) {
                            const int j = lane + 32 * q;
                            if (j < a.d) {
                                if (a.priv)
                                    sr[j] = fmaf(wv[i], xv[i][q], sr[j]);
                                else
                                    atomicAdd(sr + j, wv[i] * xv[i][q]);
                            }
                        }
                        if (lane == 0) {
                            if (a.priv)
                                sr[a.d] += wv[i];
                            else
                                atomicAdd(sr + a.d, wv[i]);
                        }
                    }
                }
            }
            /* transpose-reduction: lane l ends with the sum of row l >> 1 */
            float u8[8], u4[4], u2[2], u1;
            const bool b4 = lane & 16, b3 = lane & 8, b2 = lane & 4, b1 = lane & 2;
#pragma unroll
            for (int i = 0; i < 8; i++) {
                float send = b4 ? o[i] : o[i + 8], keep = b4 ? o[i + 8] : o[i];
                u8[i] = keep + __shfl_xor_sync(KM_FULL, send, 16);
            }
#pragma unroll
            for (int i = 0; i < 4; i++) {
                float send = b3 ? u8[i] : u8[i + 4], keep = b3 ? u8[i + 4] : u8[i];
                u4[i] = keep + __shfl_xor_sync(KM_FULL, send, 8);
            }
#pragma unroll
            for (int i = 0; i < 2; i++) {
                float send = b2 ? u4[i] : u4[i + 2], keep = b2 ? u4[i + 2] : u4[i];
                u2[i] = keep + __shfl_xor_sync(KM_FULL, send, 4);
            }
            {
                float send = b1 ? u2[0] : u2[1], keep = b1 ? u2[1] : u2[0];
                u1 = keep + __shfl_xor_sync(KM_FULL, send, 2);
            }
            u1 += __shfl_xor_sync(KM_FULL, u1, 1);
            if ((lane & 1) == 0) {
                const int r = warp * 16 + (lane >> 1);
                const int64_t gr = row0 + r;
                if (gr < a.m) {
                    const float ob = obj_final(u1, a.metric);
                    if (a.dist) a.dist[gr] = ob;
                    objacc += (double)(a.w ? a.w[gr] : 1.f) * ob;
                }
            }
        }
        __syncthreads(); /* the stage and slab are reused next */
    }
    cp_async_wait<0>();
    __syncthreads();
    if (a.acc) {
        float *dst = a.acc_part + (int64_t)blockIdx.x * tot;
        for (int64_t e = tid; e < tot; e += FT) {
            float v = sacc[e];
            if (a.priv)
#pragma unroll
                for (int q = 1; q < FLI_KM_FUSED_WARPS; q++) v += sacc[q * tot + e];
            dst[e] = v;
        }
    }
    double t = block_sum(objacc, sh);
    if (tid == 0) a.part[blockIdx.x] = t;
}

fl_status km_fused(fli_cuda_env *env, cudaStream_t s, const fli_kmeans_cuda_plan *p,
                   const km_fused_cfg *cfg, const km_rows *r, const void *ctc, const float *cnorm,
                   const float *C, fli_metric metric, fli_precision prec, int32_t *labels,
                   int32_t *n_changed, float *dist, float *acc_part, double *part, int acc,
                   int *nblk, const int32_t *done) {
    *nblk = 0;
    if (r->m <= 0) return FL_STATUS_OK;
    fli_km_fused_layout L;
    memset(&L, 0, sizeof L);
    if (fli_km_fused_smem(prec, p->d, p->k, cfg->stages, cfg->priv, &L) != cfg->smem)
        return FLI_FAIL(env, FL_STATUS_INTERNAL, "km_fused", "layout differs from the configuration");
    km_fused_args a;
    a.x = r->x;
    a.ldx = r->ldx;
    a.x_aligned = r->x_aligned;
    a.m = r->m;
    a.d = (int)p->d;
    a.w = r->w;
    a.ctc = (const uint32_t *)ctc;
    a.ldc = prec == FLI_PREC_TF32 ? p->dp : p->dh / 2;
    a.cnorm = cnorm;
    a.C = C;
    a.dp = p->dp;
    a.k = (int)p->k;
    a.alpha = km_alpha(metric);
    a.metric = (int)metric;
    a.stages = cfg->stages;
    a.priv = cfg->priv;
    a.acc = acc;
    a.labels = labels + r->row0;
    a.n_changed = n_changed;
    a.dist = dist ? dist + r->row0 : NULL;
    a.acc_part = acc_part;
    a.part = part;
    a.done = done;
    a.ks = (int)L.ks;
    a.cst = (int)L.cst;
    a.kf = (int)L.kf;
    a.xw = (int)L.xw;
    a.xst = (int)L.xst;
    a.acc_ld = (int)L.acc_ld;
    a.off_b = (int)L.off_b;
    a.off_cn = (int)L.off_cn;
    a.off_x = (int)L.off_x;
    a.off_acc = (int)L.off_acc;
    a.off_red = (int)L.off_red;
    a.off_lab = (int)L.off_lab;
    const int64_t tiles = fli_ceil_div(r->m, FB);
    int sms = fli_state(env)->sm_count;
    /* one block per SM; never more blocks than partial-sum slots */
    int64_t grid = tiles < sms ? tiles : sms;
    if (grid > FLI_KM_ACC_BLOCKS) grid = FLI_KM_ACC_BLOCKS;
    if (grid > FLI_KM_NPART) grid = FLI_KM_NPART;
    const void *fn = prec == FLI_PREC_TF32   ? (const void *)k_fused<FLI_PREC_TF32, 8>
                     : prec == FLI_PREC_BF16 ? (const void *)k_fused<FLI_PREC_BF16, 4>
                                             : (const void *)k_fused<FLI_PREC_FP16, 4>;
    FLI_CUDA_TRY(env, cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, cfg->smem));
    void *args[] = {(void *)&a};
    FLI_CUDA_TRY(env, cudaLaunchKernel(fn, dim3((unsigned)grid), dim3(FT), args, (size_t)cfg->smem, s));
    *nblk = (int)grid;
    return FL_STATUS_OK;
}
