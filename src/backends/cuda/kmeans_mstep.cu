/*
 * kmeans_mstep.cu — KMeans centre update (M-step), objective, empty-cluster
 * relocation and the convergence decision, all on the device.
 *
 * Contention-free sums. A naive update adds every point into its cluster's
 * row with global atomics; on a hot cluster thousands of threads then
 * serialise on the same addresses. Two paths avoid that:
 *   - shared memory (k*(d+2)*4 <= FLI_KM_SMEM_ACC_MAX): FLI_KM_ACC_BLOCKS
 *     blocks each own a private k x (d+2) accumulator in shared memory
 *     (sums, weight); the per-block results are combined per element in a
 *     fixed block order.
 *   - sorted (larger k*d): a stable counting sort of the labels (one warp
 *     per run of rows counts its labels with __match_any_sync, an exclusive
 *     scan turns counts into cursors, the same warps scatter row indices),
 *     then each cluster's segment is cut into pieces of FLI_KM_PIECE rows,
 *     one block sums a piece, and one block per cluster adds its pieces in
 *     order. No atomics on data; the result does not depend on scheduling.
 * Both paths also compute each point's objective for the assignment (the
 * exact distance of the winner, used for the inertia and for relocation),
 * so X is read once by the update.
 *
 * Scans are written here (three kernels, tile FLI_KM_SCAN_TILE) so that
 * their scratch is a closed form the plan can compute in C.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <string.h>

#include "backends/cuda/kmeans_cuda.cuh"
#include "backends/cuda/kmeans_dev.cuh"

#define FULL 0xffffffffu

/* ------------------------------------------------------------------------ */
/* Scan                                                                     */
/* ------------------------------------------------------------------------ */
#define SCAN_T 256
#define SCAN_PER (FLI_KM_SCAN_TILE / SCAN_T)

template <typename T>
__device__ __forceinline__ T warp_incl_scan(T v) {
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        T u = __shfl_up_sync(FULL, v, o);
        if (lane >= o) v += u;
    }
    return v;
}

template <typename T>
__global__ void __launch_bounds__(SCAN_T)
    k_scan_tiles(T *a, int64_t len, T *tile_sums, int inclusive) {
    __shared__ T sh[FLI_KM_SCAN_TILE];
    __shared__ T wsum[SCAN_T / 32];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int64_t base = (int64_t)blockIdx.x * FLI_KM_SCAN_TILE;
    for (int i = tid; i < FLI_KM_SCAN_TILE; i += SCAN_T) sh[i] = base + i < len ? a[base + i] : (T)0;
    __syncthreads();
    T v[SCAN_PER], run = 0;
#pragma unroll
    for (int q = 0; q < SCAN_PER; q++) {
        v[q] = sh[tid * SCAN_PER + q];
        run += v[q];
    }
    T incl = warp_incl_scan(run);
    if (lane == 31) wsum[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        T x = lane < SCAN_T / 32 ? wsum[lane] : (T)0;
        x = warp_incl_scan(x);
        if (lane < SCAN_T / 32) wsum[lane] = x;
    }
    __syncthreads();
    T acc = incl - run + (warp ? wsum[warp - 1] : (T)0);
#pragma unroll
    for (int q = 0; q < SCAN_PER; q++) {
        if (inclusive) {
            acc += v[q];
            sh[tid * SCAN_PER + q] = acc;
        } else {
            sh[tid * SCAN_PER + q] = acc;
            acc += v[q];
        }
    }
    if (tid == SCAN_T - 1) tile_sums[blockIdx.x] = acc;
    __syncthreads();
    for (int i = tid; i < FLI_KM_SCAN_TILE; i += SCAN_T)
        if (base + i < len) a[base + i] = sh[i];
}

template <typename T>
__global__ void k_scan_add(T *a, int64_t len, const T *tile_sums) {
    if (blockIdx.x == 0) return;
    T add = tile_sums[blockIdx.x];
    const int64_t base = (int64_t)blockIdx.x * FLI_KM_SCAN_TILE;
    for (int i = threadIdx.x; i < FLI_KM_SCAN_TILE; i += blockDim.x)
        if (base + i < len) a[base + i] += add;
}

template <typename T>
static fl_status scan_rec(fli_cuda_env *env, cudaStream_t s, T *a, int64_t len, int inclusive,
                          T *tmp) {
    int64_t tiles = fli_ceil_div(len, FLI_KM_SCAN_TILE);
    k_scan_tiles<T><<<(unsigned)tiles, SCAN_T, 0, s>>>(a, len, tmp, inclusive);
    FLI_LAUNCH_TRY(env, "k_scan_tiles");
    if (tiles == 1) return FL_STATUS_OK;
    FLI_TRY(scan_rec<T>(env, s, tmp, tiles, 0, tmp + tiles));
    k_scan_add<T><<<(unsigned)tiles, 256, 0, s>>>(a, len, tmp);
    FLI_LAUNCH_TRY(env, "k_scan_add");
    return FL_STATUS_OK;
}

fl_status km_scan_i32(fli_cuda_env *env, cudaStream_t s, int32_t *a, int64_t len, int inclusive,
                      void *tmp) {
    return scan_rec<int32_t>(env, s, a, len, inclusive, (int32_t *)tmp);
}
fl_status km_scan_f64(fli_cuda_env *env, cudaStream_t s, double *a, int64_t len, int inclusive,
                      void *tmp) {
    return scan_rec<double>(env, s, a, len, inclusive, (double *)tmp);
}

/* ------------------------------------------------------------------------ */
/* Reductions in a fixed order                                              */
/* ------------------------------------------------------------------------ */

/* sc->inertia += sum(part[0..len)), same order every time. */
__global__ void k_sum_part(const double *part, int64_t len, km_scalars *sc, const int32_t *done) {
    if (done && *done) return;
    __shared__ double sh[32];
    double v = 0;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) v += part[i];
    double t = block_sum(v, sh);
    if (threadIdx.x == 0) sc->inertia += t;
}


fl_status km_sum_part(fli_cuda_env *env, cudaStream_t s, const double *part, int64_t len,
                      km_scalars *sc) {
    if (len <= 0) return FL_STATUS_OK;
    k_sum_part<<<1, 256, 0, s>>>(part, len, sc, NULL);
    FLI_LAUNCH_TRY(env, "k_sum_part");
    return FL_STATUS_OK;
}

/* ------------------------------------------------------------------------ */
/* Objective of a given assignment (final pass, predict, score)             */
/* ------------------------------------------------------------------------ */
__global__ void k_objective(const float *__restrict__ x, int64_t ldx, int64_t m,
                            const float *__restrict__ w, const int32_t *__restrict__ labels,
                            const float *__restrict__ C, int64_t dp, int d, int metric,
                            float *dist, double *part, const int32_t *done) {
    if (done && *done) return;
    __shared__ double sh[32];
    const int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    double acc = 0;
    for (int64_t i = (int64_t)blockIdx.x * nw + (threadIdx.x >> 5); i < m;
         i += (int64_t)gridDim.x * nw) {
        const float *xr = x + i * ldx, *cr = C + (int64_t)labels[i] * dp;
        float s = 0.f;
        for (int j = lane; j < d; j += 32) s += obj_term(xr[j], cr[j], metric);
        for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(FULL, s, o);
        float ob = obj_final(s, metric);
        if (lane == 0) {
            if (dist) dist[i] = ob;
            acc += (double)(w ? w[i] : 1.f) * ob;
        }
    }
    double t = block_sum(acc, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = t;
}

fl_status km_objective(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d,
                       const float *C, int64_t dp, const int32_t *labels, fli_metric metric,
                       float *dist, double *part, km_scalars *sc, const int32_t *done) {
    if (r->m <= 0) return FL_STATUS_OK;
    int64_t blocks = fli_ceil_div(r->m, 8);
    if (blocks > FLI_KM_NPART) blocks = FLI_KM_NPART;
    k_objective<<<(unsigned)blocks, 256, 0, s>>>(r->x, r->ldx, r->m, r->w, labels + r->row0, C, dp,
                                                 (int)d, (int)metric, dist ? dist + r->row0 : NULL,
                                                 part, done);
    FLI_LAUNCH_TRY(env, "k_objective");
    k_sum_part<<<1, 256, 0, s>>>(part, blocks, sc, done);
    FLI_LAUNCH_TRY(env, "k_sum_part");
    return FL_STATUS_OK;
}

/* ------------------------------------------------------------------------ */
/* Empty clusters                                                           */
/* ------------------------------------------------------------------------ */
#define RELOC_T 1024

/* Block argmax of dist (ties to the lower index); every thread gets it. */
__device__ int64_t block_argmax(const float *dist, int64_t n, float *sv, int64_t *si) {
    float bv = -INFINITY;
    int64_t bi = -1;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        float v = dist[i];
        if (v > bv || bi < 0) {
            if (bi < 0 || v > bv) {
                bv = v;
                bi = i;
            }
        }
    }
    for (int o = 16; o; o >>= 1) {
        float ov = __shfl_xor_sync(FULL, bv, o);
        int64_t oi = __shfl_xor_sync(FULL, bi, o);
        if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
            bv = ov;
            bi = oi;
        }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) {
        sv[warp] = bv;
        si[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int q = 1; q < (int)(blockDim.x >> 5); q++) {
            float ov = sv[q];
            int64_t oi = si[q];
            if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
                bv = ov;
                bi = oi;
            }
        }
        si[0] = bi;
    }
    __syncthreads();
    return si[0];
}

/* mode 0: pick and apply (rows from xres); 1: pick only (indices to
 * reloc_idx); 2: apply with rows[q] for the q-th empty cluster. One block
 * of NT threads. sums and wsum are read through L2 (__ldcg): the combine's
 * last block runs this on data other blocks of the same launch wrote. */
template <int NT>
__device__ void reloc_body(const float *__restrict__ xres, int64_t ldx, const float *__restrict__ w,
                           const int32_t *__restrict__ labels, float *dist, int64_t n, double *sums,
                           double *wsum, int k, int d, int64_t dp, int32_t *reloc_idx,
                           const float *__restrict__ rows, int mode, km_scalars *sc, int32_t *prev = NULL,
                           int32_t *ncount = NULL) {
    __shared__ int cnt_sh[NT / 32 + 1];
    __shared__ int list[NT];
    __shared__ float sv[32];
    __shared__ int64_t si[32];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int mine = 0;
    for (int c = tid; c < k; c += NT) mine += __ldcg(&wsum[c]) == 0.0;
    __shared__ double dsh[32];
    double tot = block_sum((double)mine, dsh);
    __shared__ int n_empty;
    if (tid == 0) {
        n_empty = (int)tot;
        if (mode != 2) sc->n_empty = n_empty;
    }
    __syncthreads();
    if (n_empty == 0) return;
    int q = 0; /* empties handled so far (same order in every mode) */
    for (int base = 0; base < k; base += NT) {
        int c = base + tid;
        bool e = c < k && __ldcg(&wsum[c]) == 0.0;
        unsigned bal = __ballot_sync(FULL, e);
        if (lane == 0) cnt_sh[warp] = __popc(bal);
        __syncthreads();
        if (tid == 0) {
            int a = 0;
            for (int x = 0; x < NT / 32; x++) {
                int t = cnt_sh[x];
                cnt_sh[x] = a;
                a += t;
            }
            cnt_sh[NT / 32] = a;
        }
        __syncthreads();
        if (e) list[cnt_sh[warp] + __popc(bal & ((1u << lane) - 1u))] = c;
        __syncthreads();
        const int here = cnt_sh[NT / 32];
        for (int h = 0; h < here; h++, q++) {
            const int ec = list[h];
            int64_t i;
            if (mode == 2) {
                i = reloc_idx[q];
            } else {
                i = block_argmax(dist, n, sv, si);
                if (tid == 0) dist[i] = -INFINITY;
                if (mode == 1) {
                    if (tid == 0) reloc_idx[q] = (int32_t)i;
                    __syncthreads();
                    continue;
                }
            }
            const float *xr = mode == 2 ? rows + (int64_t)q * dp : xres + i * ldx;
            const double wi = w ? w[i] : 1.0;
            const int oc = labels[i];
            /* a delta M-step's sums now hold row i in cluster ec (its label
             * stays oc until the next E-step; prev says where the sums
             * have it), and an emptied oc gets exact zeros */
            const bool oc_gone = ncount && __ldcg(&ncount[oc]) == 1;
            for (int j = tid; j < d; j += NT) {
                double v = wi * xr[j];
                sums[(int64_t)oc * dp + j] = oc_gone ? 0.0 : __ldcg(&sums[(int64_t)oc * dp + j]) - v;
                sums[(int64_t)ec * dp + j] = v;
            }
            __syncthreads();
            if (tid == 0) {
                wsum[oc] = oc_gone ? 0.0 : __ldcg(&wsum[oc]) - wi;
                wsum[ec] = wi;
                if (ncount) {
                    ncount[oc] = __ldcg(&ncount[oc]) - 1;
                    ncount[ec] = 1;
                    prev[i] = ec;
                }
            }
            __syncthreads();
        }
        __syncthreads();
    }
}

__global__ void __launch_bounds__(RELOC_T)
    k_relocate(const float *__restrict__ xres, int64_t ldx, const float *__restrict__ w,
               const int32_t *__restrict__ labels, float *dist, int64_t n, double *sums,
               double *wsum, int k, int d, int64_t dp, int32_t *reloc_idx,
               const float *__restrict__ rows, int mode, km_scalars *sc, const int32_t *done) {
    if (done && *done) return;
    reloc_body<RELOC_T>(xres, ldx, w, labels, dist, n, sums, wsum, k, d, dp, reloc_idx, rows, mode, sc);
}

/* Relocation when the M-step left the objective out (X resident): every
 * block looks for an empty cluster in wsum and returns at once when there
 * is none (the usual iteration: one launch, no row touched). Otherwise the
 * grid computes every row's objective into dist, as k_objective, and the
 * last block to finish relocates from it (reloc_body, mode 0). All blocks
 * read the same wsum, so either all of them take part or none does. */
__global__ void __launch_bounds__(256)
    k_reloc_obj(const float *__restrict__ x, int64_t ldx, int64_t n, const float *__restrict__ w,
                const int32_t *__restrict__ labels, const float *__restrict__ C, int64_t dp, int d,
                int metric, float *dist, double *sums, double *wsum, int k, int32_t *reloc_idx,
                km_scalars *sc, int32_t *prev, int32_t *ncount, const int32_t *done) {
    if (done && *done) return;
    int empty = 0;
    for (int c = threadIdx.x; c < k && !empty; c += blockDim.x) empty = wsum[c] == 0.0;
    if (!__syncthreads_or(empty)) {
        if (blockIdx.x == 0 && threadIdx.x == 0) sc->n_empty = 0;
        return;
    }
    const int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    for (int64_t i = (int64_t)blockIdx.x * nw + (threadIdx.x >> 5); i < n; i += (int64_t)gridDim.x * nw) {
        const float *xr = x + i * ldx, *cr = C + (int64_t)labels[i] * dp;
        float v = 0.f;
        for (int j = lane; j < d; j += 32) v += obj_term(xr[j], cr[j], metric);
        for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
        if (lane == 0) dist[i] = obj_final(v, metric);
    }
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&sc->comb_count, 1) == (int)gridDim.x - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    if (threadIdx.x == 0) sc->comb_count = 0;
    reloc_body<256>(x, ldx, w, labels, dist, n, sums, wsum, k, d, dp, reloc_idx, NULL, 0, sc, prev, ncount);
}

fl_status km_reloc_obj(fli_cuda_env *env, cudaStream_t s, const fli_kmeans_cuda_plan *p, const float *x,
                       int64_t ldx, const float *w, const int32_t *labels, const float *C, fli_metric metric,
                       float *dist, double *sums, double *wsum, int32_t *reloc_idx, km_scalars *sc,
                       int32_t *prev, int32_t *ncount, const int32_t *done) {
    /* two blocks per SM walk the rows when a cluster is empty; in the
     * usual iteration each block only reads wsum and leaves, so a small
     * grid launches and drains fastest */
    int64_t blocks = fli_ceil_div(p->n, 8);
    if (blocks > 2 * fli_state(env)->sm_count) blocks = 2 * fli_state(env)->sm_count;
    k_reloc_obj<<<(unsigned)blocks, 256, 0, s>>>(x, ldx, p->n, w, labels, C, p->dp, (int)p->d, (int)metric,
                                                 dist, sums, wsum, (int)p->k, reloc_idx, sc, prev, ncount,
                                                 done);
    FLI_LAUNCH_TRY(env, "k_reloc_obj");
    return FL_STATUS_OK;
}

fl_status km_relocate(fli_cuda_env *env, cudaStream_t s, const fli_kmeans_cuda_plan *p,
                      const float *xres, int64_t ldx, const float *w, const int32_t *labels,
                      float *dist, double *sums, double *wsum, int32_t *reloc_idx,
                      const float *rows, int mode, km_scalars *sc, const int32_t *done) {
    k_relocate<<<1, RELOC_T, 0, s>>>(xres, ldx, w, labels, dist, p->n, sums, wsum, (int)p->k,
                                     (int)p->d, p->dp, reloc_idx, rows, mode, sc, done);
    FLI_LAUNCH_TRY(env, "k_relocate");
    return FL_STATUS_OK;
}

/* Transpose-reduction of 8 rows' per-lane partials s[r] over the warp: 9
 * shuffles instead of 40; lanes 4r..4r+3 end with row r's sum (the same
 * additions in the same order on every call). */
static __device__ __forceinline__ float km_reduce8(const float (&s)[8], int lane) {
    const bool b4 = lane & 16, b3 = lane & 8, b2 = lane & 4;
    float u4[4], u2[2], u1;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float send = b4 ? s[i] : s[i + 4], keep = b4 ? s[i + 4] : s[i];
        u4[i] = keep + __shfl_xor_sync(FULL, send, 16);
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        float send = b3 ? u4[i] : u4[i + 2], keep = b3 ? u4[i + 2] : u4[i];
        u2[i] = keep + __shfl_xor_sync(FULL, send, 8);
    }
    {
        float send = b2 ? u2[0] : u2[1], keep = b2 ? u2[1] : u2[0];
        u1 = keep + __shfl_xor_sync(FULL, send, 4);
    }
    u1 += __shfl_xor_sync(FULL, u1, 2);
    u1 += __shfl_xor_sync(FULL, u1, 1);
    return u1;
}

/* ------------------------------------------------------------------------ */
/* M-step, shared-memory privatised sums                                    */
/* ------------------------------------------------------------------------ */
#define ACC_T 512 /* threads per block, shared copy                       */
#define ACC_TP 256 /* threads per block, private copies (8 warps)         */
#define ACC_WARPS (ACC_TP / 32)

/* PRIV: every warp owns a private k x (d+2) copy, so the adds are plain
 * read-modify-writes (a warp's lanes touch distinct columns, its rows go in
 * program order) — no atomics at all, and the block adds its copies in warp
 * order. Larger k*d uses k_acc_owner (below); the !PRIV instantiation, one
 * copy with shared-memory atomics, is not launched: its sums depended on
 * the order of the atomics. */
/* RW: rows a warp has in flight (more for narrow rows), so that enough
 * bytes are in flight to cover memory latency. */
template <bool PRIV, int ACC_RW, bool OBJ>
__global__ void __launch_bounds__(PRIV ? ACC_TP : ACC_T)
    k_acc_smem(const float *__restrict__ x, int64_t ldx, int64_t m, const float *__restrict__ w,
               const int32_t *__restrict__ labels, const float *__restrict__ C, int64_t dp, int d,
               int k, int metric, float *__restrict__ acc_part, double *part, float *dist,
               const int32_t *done) {
    if (done && *done) return;
    extern __shared__ float sacc[]; /* (PRIV ? warps : 1) x k x (d+2) */
    __shared__ double sh[32];
    const int ld = d + 2;
    const int64_t tot = (int64_t)k * ld;
    const int lane = threadIdx.x & 31, nw = blockDim.x >> 5, warp = threadIdx.x >> 5;
    for (int64_t e = threadIdx.x; e < (PRIV ? nw : 1) * tot; e += blockDim.x) sacc[e] = 0.f;
    __syncthreads();
    float *my = PRIV ? sacc + warp * tot : sacc;
    double acc = 0;
    for (int64_t base = ((int64_t)blockIdx.x * nw + warp) * ACC_RW; base < m;
         base += (int64_t)gridDim.x * nw * ACC_RW) {
        int c[ACC_RW];
        float wi[ACC_RW], s[ACC_RW];
#pragma unroll
        for (int r = 0; r < ACC_RW; r++) {
            const bool ok = base + r < m;
            c[r] = ok ? labels[base + r] : 0;
            wi[r] = ok ? (w ? w[base + r] : 1.f) : 0.f;
            s[r] = 0.f;
        }
        for (int j = lane; j < d; j += 32) {
            float xv[ACC_RW];
#pragma unroll
            for (int r = 0; r < ACC_RW; r++) xv[r] = base + r < m ? x[(base + r) * ldx + j] : 0.f;
#pragma unroll
            for (int r = 0; r < ACC_RW; r++) {
                if (base + r < m) {
                    if (OBJ) s[r] += obj_term(xv[r], C[(int64_t)c[r] * dp + j], metric);
                    float *a = &my[(int64_t)c[r] * ld + j];
                    if (PRIV)
                        *a = fmaf(wi[r], xv[r], *a);
                    else
                        atomicAdd(a, wi[r] * xv[r]);
                }
            }
        }
        /* weights: lane 0, rows in order */
        if (lane == 0) {
#pragma unroll
            for (int r = 0; r < ACC_RW; r++) {
                if (base + r < m) {
                    float *a = &my[(int64_t)c[r] * ld + d];
                    if (PRIV)
                        *a += wi[r];
                    else
                        atomicAdd(a, wi[r]);
                }
            }
        }
        if (!OBJ) {
            /* sums only: the objective is not needed this iteration */
        } else if (ACC_RW == 8) {
            /* transpose-reduction of the 8 rows' partials: 9 shuffles instead
             * of 40; lanes 4r..4r+3 end with row r's sum */
            const float u1 = km_reduce8(s, lane);
            const int r = (lane >> 2) & 7;
            if ((lane & 3) == 0 && base + r < m) {
                float ob = obj_final(u1, metric);
                dist[base + r] = ob;
                acc += (double)(w ? w[base + r] : 1.f) * ob;
            }
        } else {
#pragma unroll
            for (int r = 0; r < ACC_RW; r++) {
                float v = s[r];
                for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
                if (lane == 0 && base + r < m) {
                    float ob = obj_final(v, metric);
                    dist[base + r] = ob;
                    acc += (double)wi[r] * ob;
                }
            }
        }
        if (PRIV) __syncwarp();
    }
    __syncthreads();
    float *dst = acc_part + (int64_t)blockIdx.x * tot;
    for (int64_t e = threadIdx.x; e < tot; e += blockDim.x) {
        float v = sacc[e];
        if (PRIV)
            for (int q = 1; q < nw; q++) v += sacc[q * tot + e];
        dst[e] = v;
    }
    double t = block_sum(acc, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = t;
}

/* Private per-warp copies for d <= 32: lane j owns column j of every sum
 * (lane d, when d < 32, the weight column; lanes past it add zeros to the
 * unused padding column d + 1), so a row is one coalesced load, one
 * read-modify-write of the warp's copy and, for the objective, one centre
 * element per lane from a shared copy of C. A warp takes 32 rows at a
 * time: lane r loads row r's label and weight once and the row loop
 * broadcasts them; the 32 rows' loads are issued before any is used. The
 * general kernel above spent ~72 instructions a row on its column loop,
 * bounds and addressing at d = 32 (ncu, 2M x 32, k = 64: 314 us, issue
 * slots half busy, ~0.9 TB/s). Rows go through each warp's copy in row
 * order and the copies are added in warp order: the sums do not depend on
 * scheduling. */
template <bool OBJ, bool EU, bool FULLB>
__device__ __forceinline__ void acc_lane_batch(const float *__restrict__ x, int64_t ldx, int64_t m, int64_t base,
                                               int lab, float wv, const float *sC, float *sw, int d, int ld,
                                               int colx, int colw, float vpad, bool w0, int metric,
                                               float *__restrict__ dist, double &acc) {
    const int lane = threadIdx.x & 31;
    const bool xl = lane < d;
    float xv[32];
#pragma unroll
    for (int r = 0; r < 32; r++) xv[r] = FULLB || base + r < m ? __ldg(x + (base + r) * ldx + colx) : 0.f;
#pragma unroll
    for (int r0 = 0; r0 < 32; r0 += 8) {
        float s[8];
#pragma unroll
        for (int r = 0; r < 8; r++) {
            /* rows past m have weight 0 and x 0: they add nothing */
            const int c = __shfl_sync(FULL, lab, r0 + r);
            const float wr = __shfl_sync(FULL, wv, r0 + r);
            const float v = xl ? xv[r0 + r] : vpad;
            if (OBJ) {
                const float cc = sC[c * d + colx];
                const float t = EU ? (v - cc) * (v - cc) : v * cc;
                s[r] = xl ? t : 0.f;
            }
            const int a = c * ld + colw;
            sw[a] = fmaf(wr, v, sw[a]);
            if (w0) sw[c * ld + d] += wr;
        }
        if (OBJ) {
            /* lanes 4r..4r+3 end with row r0 + r's objective */
            const float u1 = km_reduce8(s, lane);
            const int rr = r0 + ((lane >> 2) & 7);
            const float wrr = __shfl_sync(FULL, wv, rr);
            if ((lane & 3) == 0 && (FULLB || base + rr < m)) {
                const float ob = obj_final(u1, metric);
                dist[base + rr] = ob;
                acc += (double)wrr * ob;
            }
        }
    }
}

template <bool OBJ, bool EU>
__global__ void __launch_bounds__(ACC_TP)
    k_acc_lane(const float *__restrict__ x, int64_t ldx, int64_t m, const float *__restrict__ w,
               const int32_t *__restrict__ labels, const float *__restrict__ C, int64_t dp, int d, int k,
               int metric, float *__restrict__ acc_part, double *part, float *dist, const int32_t *done) {
    if (done && *done) return;
    extern __shared__ float sacc[]; /* warps x k x (d+2), then k x d of C */
    __shared__ double sh[32];
    const int ld = d + 2, tot = k * ld;
    const int lane = threadIdx.x & 31, nw = blockDim.x >> 5, warp = threadIdx.x >> 5;
    float *sC = sacc + nw * tot;
    for (int e = threadIdx.x; e < nw * tot; e += blockDim.x) sacc[e] = 0.f;
    if (OBJ)
        for (int e = threadIdx.x; e < k * d; e += blockDim.x) sC[e] = C[(int64_t)(e / d) * dp + e % d];
    __syncthreads();
    float *sw = sacc + warp * tot;
    const int colx = lane < d ? lane : 0;                 /* column loaded */
    const int colw = lane <= d ? lane : d + 1;            /* column added to */
    const float vpad = lane == d ? 1.f : 0.f;             /* lanes >= d add this */
    const bool w0 = d == 32 && lane == 0;                 /* d = 32: lane 0 adds the weight too */
    double acc = 0;
    for (int64_t base = ((int64_t)blockIdx.x * nw + warp) * 32; base < m;
         base += (int64_t)gridDim.x * nw * 32) {
        const bool mine = base + lane < m;
        const int lab = mine ? labels[base + lane] : 0;
        const float wv = mine ? (w ? w[base + lane] : 1.f) : 0.f;
        if (base + 32 <= m)
            acc_lane_batch<OBJ, EU, true>(x, ldx, m, base, lab, wv, sC, sw, d, ld, colx, colw, vpad, w0, metric,
                                          dist, acc);
        else
            acc_lane_batch<OBJ, EU, false>(x, ldx, m, base, lab, wv, sC, sw, d, ld, colx, colw, vpad, w0, metric,
                                           dist, acc);
        __syncwarp();
    }
    __syncthreads();
    float *dst = acc_part + (int64_t)blockIdx.x * tot;
    for (int e = threadIdx.x; e < tot; e += blockDim.x) {
        float v = sacc[e];
        for (int q = 1; q < nw; q++) v += sacc[q * tot + e];
        dst[e] = v;
    }
    double t = block_sum(acc, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = t;
}

/* Shared copy without atomics (k x (d+2) too large for a copy per warp):
 * one copy per block, and warp w of the 16 owns the clusters c with
 * c % 16 == w — it alone adds into their rows, so every sum is updated by
 * one thread in row order and the result does not depend on scheduling
 * (shared-memory float atomics did: their order varies run to run, so the
 * last bits of the sums, and through them the whole fit, did too). The
 * block takes batches of OWN_B rows (32 per warp) and first partitions
 * them by owner, stably: each warp ranks its 32 rows among the lanes of
 * the same owner (match), the per-(warp, owner) counts are scanned in
 * (owner, warp) order, and every row lands in its owner's list in row
 * order. The owners then walk their lists 8 rows at a time. (Before, every
 * warp read all the batch's labels and searched bit masks for its rows:
 * ~200 warp instructions per row at 100K x 64, k=256, most of the time.)
 * Balance follows the clusters: a class holding most rows makes its warp
 * the block's long pole. */
#define OWN_B (ACC_T)
#define OWN_W (ACC_T / 32)
template <bool OBJ>
__global__ void __launch_bounds__(ACC_T)
    k_acc_owner(const float *__restrict__ x, int64_t ldx, int64_t m, const float *__restrict__ w,
                const int32_t *__restrict__ labels, const float *__restrict__ C, int64_t dp, int d, int k,
                int metric, float *__restrict__ acc_part, double *part, float *dist, const int32_t *done) {
    if (done && *done) return;
    extern __shared__ float sacc[]; /* k x (d+2) */
    __shared__ int cnt[OWN_W][OWN_W];   /* [owner][warp]: rows of the warp's 32 owned by `owner` */
    __shared__ int off[OWN_W + 1];      /* start of each owner's list */
    __shared__ int2 list[OWN_B];        /* (row within the batch, label), grouped by owner */
    __shared__ double sh[32];
    const int ld = d + 2;
    const int64_t tot = (int64_t)k * ld;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int64_t e = threadIdx.x; e < tot; e += blockDim.x) sacc[e] = 0.f;
    double acc = 0;
    for (int64_t base = (int64_t)blockIdx.x * OWN_B; base < m; base += (int64_t)gridDim.x * OWN_B) {
        /* partition: row base + threadIdx.x */
        const int64_t i = base + threadIdx.x;
        const int lab = i < m ? labels[i] : -1;
        const int own = lab >= 0 ? (lab & (OWN_W - 1)) : OWN_W; /* OWN_W: no row */
        const unsigned same = __match_any_sync(FULL, own);
        const int rank = __popc(same & ((1u << lane) - 1u));
        if (lane < OWN_W) cnt[lane][warp] = 0;
        __syncwarp();
        if (own < OWN_W && rank == 0) cnt[own][warp] = __popc(same);
        __syncthreads(); /* also: the previous batch's lists are consumed */
        if (warp == 0) {
            /* exclusive scan of cnt in (owner, warp) order: 256 entries, 8 per lane */
            int v[OWN_W * OWN_W / 32], s = 0;
#pragma unroll
            for (int q = 0; q < OWN_W * OWN_W / 32; q++) {
                v[q] = (&cnt[0][0])[lane * (OWN_W * OWN_W / 32) + q];
                s += v[q];
            }
            int ex = s;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const int t = __shfl_up_sync(FULL, ex, o);
                if (lane >= o) ex += t;
            }
            ex -= s;
#pragma unroll
            for (int q = 0; q < OWN_W * OWN_W / 32; q++) {
                const int flat = lane * (OWN_W * OWN_W / 32) + q;
                if (flat % OWN_W == 0) off[flat / OWN_W] = ex;
                (&cnt[0][0])[flat] = ex;
                ex += v[q];
            }
            if (lane == 31) off[OWN_W] = ex;
        }
        __syncthreads();
        if (own < OWN_W) list[cnt[own][warp] + rank] = make_int2(threadIdx.x, lab);
        __syncthreads();
        /* owner `warp` walks its rows, 8 at a time, in row order */
        const int l0 = off[warp], l1 = off[warp + 1];
        for (int q0 = l0; q0 < l1; q0 += 8) {
            int64_t rows[8];
            int c[8];
            float wi[8], s[8];
#pragma unroll
            for (int r = 0; r < 8; r++) {
                const bool ok = q0 + r < l1;
                const int2 e = ok ? list[q0 + r] : make_int2(0, 0);
                rows[r] = ok ? base + e.x : -1;
                c[r] = e.y;
                wi[r] = ok ? (w ? w[rows[r]] : 1.f) : 0.f;
                s[r] = 0.f;
            }
            for (int j = lane; j < d; j += 32) {
                float xv[8];
#pragma unroll
                for (int r = 0; r < 8; r++) xv[r] = rows[r] >= 0 ? x[rows[r] * ldx + j] : 0.f;
#pragma unroll
                for (int r = 0; r < 8; r++) {
                    if (rows[r] >= 0) {
                        if (OBJ) s[r] += obj_term(xv[r], C[(int64_t)c[r] * dp + j], metric);
                        float *a = &sacc[(int64_t)c[r] * ld + j];
                        *a = fmaf(wi[r], xv[r], *a);
                    }
                }
            }
            if (lane == 0) {
#pragma unroll
                for (int r = 0; r < 8; r++)
                    if (rows[r] >= 0) sacc[(int64_t)c[r] * ld + d] += wi[r];
            }
            if (OBJ) {
                /* transpose-reduction of the 8 rows' partials (as k_acc_smem) */
                const float u1 = km_reduce8(s, lane);
                const int rsel = (lane >> 2) & 7;
                int64_t myrow = rows[0];
                float mw = wi[0];
#pragma unroll
                for (int r = 1; r < 8; r++)
                    if (rsel == r) {
                        myrow = rows[r];
                        mw = wi[r];
                    }
                if ((lane & 3) == 0 && myrow >= 0) {
                    const float ob = obj_final(u1, metric);
                    dist[myrow] = ob;
                    acc += (double)mw * ob;
                }
            }
            __syncwarp();
        }
    }
    __syncthreads();
    float *dst = acc_part + (int64_t)blockIdx.x * tot;
    for (int64_t e = threadIdx.x; e < tot; e += blockDim.x) dst[e] = sacc[e];
    double t = block_sum(acc, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = t;
}

/* Block (32 x 8): 32 consecutive (cluster, column) entries, the 8 rows of
 * threads each add every 8th block partial, then a fixed-order sum of the
 * 8 — enough independent loads in flight, same order every time. */
/* The last block to finish relocates empty clusters (ra.enabled): every
 * thread fences its stores, then one atomic per block counts. */
__global__ void __launch_bounds__(256)
    k_acc_combine(const float *__restrict__ acc_part, int nblk, int k, int d, int64_t dp,
                  double *sums, double *wsum, int first, const double *part, km_scalars *sc,
                  km_reloc_args ra, float *dist, const int32_t *done) {
    if (done && *done) return;
    __shared__ double sh[8][33];
    if (blockIdx.x == 0 && threadIdx.x < 32) {
        /* the blocks' objective partials, in a fixed order (saves a launch) */
        double v = 0;
        for (int b = threadIdx.x; b < nblk; b += 32) v += part[b];
        for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
        if (threadIdx.x == 0) sc->inertia += v;
    }
    const int ld = d + 2;
    const int64_t tot = (int64_t)k * ld;
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    const int64_t e = (int64_t)blockIdx.x * 32 + tx; /* index into k x ld */
    double v = 0;
    if (e < tot)
        for (int b = ty; b < nblk; b += 8) v += acc_part[(int64_t)b * tot + e];
    sh[ty][tx] = v;
    __syncthreads();
    if (ty == 0 && e < tot) {
        double t = 0;
#pragma unroll
        for (int q = 0; q < 8; q++) t += sh[q][tx];
        const int64_t c = e / ld;
        const int j = (int)(e - c * ld);
        if (j <= d) {
            double *o = j < d ? &sums[c * dp + j] : &wsum[c];
            *o = first ? t : *o + t;
        }
    }
    if (!ra.enabled) return;
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&sc->comb_count, 1) == (int)gridDim.x - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    if (threadIdx.x == 0) sc->comb_count = 0;
    reloc_body<256>(ra.xres, ra.ldx, ra.w, ra.labels, dist, ra.n, sums, wsum, k, d, dp, ra.reloc_idx,
                    NULL, 0, sc);
}

fl_status km_combine(fli_cuda_env *env, cudaStream_t s, const fli_kmeans_cuda_plan *p,
                     const km_mstep_bufs *b, int nblk, km_scalars *sc, int first,
                     const km_reloc_args *ra, const int32_t *done) {
    const int d = (int)p->d, k = (int)p->k;
    km_reloc_args none;
    memset(&none, 0, sizeof none);
    unsigned cblocks = (unsigned)fli_ceil_div((int64_t)k * (d + 2), 32);
    k_acc_combine<<<cblocks, 256, 0, s>>>(b->acc_part, nblk, k, d, p->dp, b->sums, b->wsum, first,
                                          b->part, sc, ra ? *ra : none, b->dist, done);
    FLI_LAUNCH_TRY(env, "k_acc_combine");
    return FL_STATUS_OK;
}

/* ------------------------------------------------------------------------ */
/* M-step, sorted pieces                                                    */
/* ------------------------------------------------------------------------ */
/* Warp wg owns rows [wg*R, (wg+1)*R) and column wg of cnt (cluster-major,
 * cnt[c*nb + wg]); only it touches that column, so plain stores suffice.
 * The sorted items are entries 2i + 1 (add row i to its cluster) and 2i
 * (take row i out of cluster prev[i]). A full M-step (prev NULL, or the
 * run's first iteration) has one add per row; a delta M-step (prev set,
 * a later iteration) has an add and a take-out for each row whose label
 * differs from prev, and nothing for the others. The scatter pass also
 * brings prev up to date. Within a cluster the entries keep the order of
 * (row range, 32-row step, take-outs before adds, lane): fixed, so the
 * sums do not depend on scheduling. */
static __device__ __forceinline__ void sort_entries(int32_t *cnt, int nb, int64_t wg, int lane, unsigned mask,
                                                    bool act, int32_t l, int32_t code, int scatter,
                                                    int32_t *perm) {
    unsigned peers = 0;
    int leader = 0;
    int32_t cur = 0;
    if (act) {
        peers = __match_any_sync(mask, l);
        leader = __ffs(peers) - 1;
        cur = cnt[(int64_t)l * nb + wg];
        if (scatter) perm[cur + __popc(peers & ((1u << lane) - 1u))] = code;
    }
    __syncwarp();
    if (act && lane == leader) cnt[(int64_t)l * nb + wg] = cur + __popc(peers);
    __syncwarp();
}

__global__ void k_sort_count(const int32_t *__restrict__ labels, int64_t m, int nb, int64_t R,
                             int32_t *cnt, int scatter, int32_t *perm, int32_t *prev, const km_scalars *sc,
                             const int32_t *done) {
    if (done && *done) return;
    const int lane = threadIdx.x & 31;
    const int64_t wg = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (wg >= nb) return;
    const bool delta = prev && sc->n_iter > 0;
    const int64_t beg = wg * R, end = beg + R < m ? beg + R : m;
    for (int64_t b0 = beg; b0 < end; b0 += 32) {
        const int64_t i = b0 + lane;
        const bool act = i < end;
        const unsigned mask = __ballot_sync(FULL, act);
        const int32_t l = act ? labels[i] : 0;
        if (delta) {
            const int32_t o = act ? prev[i] : 0;
            const bool moved = act && o != l;
            if (!__any_sync(FULL, moved)) continue;
            const unsigned mm = __ballot_sync(FULL, moved);
            sort_entries(cnt, nb, wg, lane, mm, moved, o, (int32_t)(uint32_t)(2 * i), scatter, perm);
            sort_entries(cnt, nb, wg, lane, mm, moved, l, (int32_t)(uint32_t)(2 * i + 1), scatter, perm);
            if (scatter && moved) prev[i] = l;
        } else {
            sort_entries(cnt, nb, wg, lane, mask, act, l, (int32_t)(uint32_t)(2 * i + 1), scatter, perm);
            if (scatter && prev && act) prev[i] = l;
        }
    }
}

/* After the scatter, cnt holds the end of each (cluster, warp) cell. */
__device__ __forceinline__ int32_t seg_start(const int32_t *cnt, int64_t c, int nb) {
    return c == 0 ? 0 : cnt[c * nb - 1];
}
__device__ __forceinline__ int32_t seg_end(const int32_t *cnt, int64_t c, int nb) {
    return cnt[c * nb + nb - 1];
}

/* Pieces per cluster; after a full sort with prev (a delta M-step's
 * first iteration) also the rows per cluster, which the deltas keep. */
__global__ void k_piece_count(const int32_t *cnt, int k, int nb, int32_t *piece_off, int32_t *ncount,
                              const km_scalars *sc, const int32_t *done) {
    if (done && *done) return;
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c > k) return;
    if (c == k) {
        piece_off[k] = 0;
        return;
    }
    int32_t len = seg_end(cnt, c, nb) - seg_start(cnt, c, nb);
    piece_off[c] = (len + FLI_KM_PIECE - 1) / FLI_KM_PIECE;
    if (ncount && sc->n_iter == 0) ncount[c] = len;
}

/* One block (4 warps) per piece: its cluster by binary search on the piece
 * offsets; warp w takes rows w, w+4, ... of the piece, lane l owns columns
 * l, l+32, ... in registers (sums) and the row objective is a warp sum, so
 * every row is read once. Columns go in blocks of PS_COLS; past the first,
 * a row's partial objective waits in dist[i] (same warp, same lane). The 4
 * warps' column sums are added in a fixed order. */
#define PS_Q 8
#define PS_COLS (32 * PS_Q)
template <bool OBJ>
__global__ void __launch_bounds__(128)
    k_piece_sum(const float *__restrict__ x, int64_t ldx, const float *__restrict__ w,
                const int32_t *__restrict__ perm, const int32_t *__restrict__ cnt, int nb,
                const int32_t *__restrict__ piece_off, int k, const float *__restrict__ C,
                int64_t dp, int d, int metric, float *psum, float *pw, double *pobj, int32_t *pcnt,
                float *dist, const int32_t *done) {
    if (done && *done) return;
    __shared__ float scol[4][PS_COLS];
    __shared__ double sh[32];
    const int p = blockIdx.x;
    if (p >= piece_off[k]) return;
    int lo = 0, hi = k;
    while (hi - lo > 1) {
        int mid = (lo + hi) >> 1;
        if (piece_off[mid] <= p)
            lo = mid;
        else
            hi = mid;
    }
    const int c = lo;
    const int32_t s0 = seg_start(cnt, c, nb) + (p - piece_off[c]) * FLI_KM_PIECE;
    const int32_t e0 = seg_end(cnt, c, nb);
    const int32_t s1 = s0 + FLI_KM_PIECE < e0 ? s0 + FLI_KM_PIECE : e0;
    const float *cr = C + (int64_t)c * dp;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    double acc = 0;
    float wacc = 0.f;
    int nacc = 0;
    for (int cb = 0; cb < d; cb += PS_COLS) {
        const bool last = cb + PS_COLS >= d;
        float col[PS_Q], cv[PS_Q];
#pragma unroll
        for (int q = 0; q < PS_Q; q++) {
            int j = cb + lane + 32 * q;
            col[q] = 0.f;
            cv[q] = OBJ && j < d ? cr[j] : 0.f;
        }
        /* two rows per warp at a time: twice the loads in flight */
        for (int32_t r0 = s0 + warp; r0 < s1; r0 += 8) {
            int64_t ii[2];
            float wv[2], sv[2], xv[2][PS_Q];
#pragma unroll
            for (int u = 0; u < 2; u++) {
                const bool ok = r0 + 4 * u < s1;
                const uint32_t e = ok ? (uint32_t)perm[r0 + 4 * u] : 1u;
                /* entry 2i + 1 adds row i, 2i takes it out (no objective);
                 * as unsigned, i < 2^31 fits */
                ii[u] = ok ? (int64_t)(e >> 1) : -1;
                wv[u] = ok ? (w ? w[ii[u]] : 1.f) : 0.f;
                if (!(e & 1)) wv[u] = -wv[u];
                if (lane == 0 && ok && cb == 0) nacc += e & 1 ? 1 : -1;
                sv[u] = 0.f;
            }
#pragma unroll
            for (int u = 0; u < 2; u++)
#pragma unroll
                for (int q = 0; q < PS_Q; q++) {
                    int j = cb + lane + 32 * q;
                    xv[u][q] = (ii[u] >= 0 && j < d) ? x[ii[u] * ldx + j] : 0.f;
                }
#pragma unroll
            for (int u = 0; u < 2; u++)
#pragma unroll
                for (int q = 0; q < PS_Q; q++) {
                    int j = cb + lane + 32 * q;
                    if (j < d) {
                        col[q] = fmaf(wv[u], xv[u][q], col[q]);
                        if (OBJ) sv[u] += obj_term(xv[u][q], cv[q], metric);
                    }
                }
#pragma unroll
            for (int u = 0; u < 2; u++) {
                if (!OBJ) {
                    if (lane == 0 && ii[u] >= 0 && last) wacc += wv[u];
                    continue;
                }
                float v = sv[u];
                for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
                if (lane == 0 && ii[u] >= 0) {
                    const int64_t i = ii[u];
                    if (cb > 0) v += dist[i];
                    if (last) {
                        float ob = obj_final(v, metric);
                        dist[i] = ob;
                        acc += (double)wv[u] * ob;
                        wacc += wv[u];
                    } else {
                        dist[i] = v;
                    }
                }
            }
        }
#pragma unroll
        for (int q = 0; q < PS_Q; q++) scol[warp][lane + 32 * q] = col[q];
        __syncthreads();
        for (int j = threadIdx.x; j < PS_COLS && cb + j < d; j += blockDim.x)
            psum[(int64_t)p * d + cb + j] = ((scol[0][j] + scol[1][j]) + scol[2][j]) + scol[3][j];
        __syncthreads();
    }
    double t = block_sum(acc, sh);
    if (threadIdx.x == 0) pobj[p] = t;
    __syncthreads();
    double tw = block_sum((double)wacc, sh);
    if (threadIdx.x == 0) pw[p] = (float)tw;
    __syncthreads();
    double tn = block_sum((double)nacc, sh);
    if (threadIdx.x == 0) pcnt[p] = (int32_t)tn;
}

/* One block per cluster adds its pieces in order. A delta M-step (ncount
 * set, after the run's first iteration) adds them to the sums it keeps;
 * a cluster left with no rows gets exact zeros, whatever the rounding of
 * its deltas left (wsum == 0 is the test for an empty cluster). */
__global__ void k_piece_combine(const float *__restrict__ psum, const float *__restrict__ pw,
                                const double *__restrict__ pobj, const int32_t *__restrict__ pcnt,
                                const int32_t *piece_off, int d, int64_t dp, double *sums, double *wsum,
                                double *cobj, int32_t *ncount, const km_scalars *sc, int first,
                                const int32_t *done) {
    if (done && *done) return;
    __shared__ int empty;
    const int c = blockIdx.x;
    const int p0 = piece_off[c], p1 = piece_off[c + 1];
    const bool delta = ncount && sc->n_iter > 0;
    if (delta) first = 0;
    if (threadIdx.x == 0) {
        empty = 0;
        if (delta) {
            int32_t n = ncount[c];
            for (int p = p0; p < p1; p++) n += pcnt[p];
            ncount[c] = n;
            empty = n == 0;
        }
    }
    __syncthreads();
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        double v = 0;
        for (int p = p0; p < p1; p++) v += psum[(int64_t)p * d + j];
        double *o = &sums[(int64_t)c * dp + j];
        *o = empty ? 0.0 : (first ? v : *o + v);
    }
    if (threadIdx.x == 0) {
        double v = 0, ob = 0;
        for (int p = p0; p < p1; p++) {
            v += pw[p];
            ob += pobj[p];
        }
        wsum[c] = empty ? 0.0 : (first ? v : wsum[c] + v);
        cobj[c] = ob;
    }
}

int km_mstep_priv(const fli_kmeans_cuda_plan *p) {
    /* private per-warp copies when 8 of them fit in 100 KB, else one shared copy */
    return p->mstep_smem && (size_t)p->k * (p->d + 2) * 4 * ACC_WARPS <= 100 * 1024;
}

fl_status km_accumulate(fli_cuda_env *env, cudaStream_t s, const fli_kmeans_cuda_plan *p,
                        const km_rows *r, const float *C, const int32_t *labels, fli_metric metric,
                        const km_mstep_bufs *b, km_scalars *sc, int first, const km_reloc_args *ra,
                        int obj, const int32_t *done) {
    const int d = (int)p->d, k = (int)p->k;
    const int32_t *lab = labels + r->row0;
    float *dist = b->dist + r->row0;
    if (p->mstep_smem) {
        const size_t one = (size_t)k * (d + 2) * 4;
        const bool priv = km_mstep_priv(p);
        size_t smem = priv ? one * ACC_WARPS : one;
        /* 512-thread shared-copy blocks hold 8 rows per warp without spills
         * (run 4: 32 rows per warp was slower than 8 at d = 32; 16 rows
         * without the objective was slower still, 12.7 vs 11.3 ms at 2M) */
        const int nthr = priv ? ACC_TP : ACC_T;
        /* lane-per-column copies for d <= 32 (env->km_tune bit 10: the
         * general private-copy kernel, for A/B) */
        const bool lanes = priv && d <= 32 && !(env->km_tune & 1024);
        const bool eu = metric == FLI_METRIC_EUCLIDEAN;
        const void *fn = !priv  ? (obj ? (const void *)k_acc_owner<true> : (const void *)k_acc_owner<false>)
                         : lanes ? (!obj ? (const void *)k_acc_lane<false, true>
                                    : eu ? (const void *)k_acc_lane<true, true>
                                         : (const void *)k_acc_lane<true, false>)
                         : obj   ? (const void *)k_acc_smem<true, 8, true>
                                 : (const void *)k_acc_smem<true, 8, false>;
        if (lanes && obj) smem += (size_t)k * d * 4; /* the centres' shared copy */
        int per_sm = 0;
        FLI_CUDA_TRY(env, cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        FLI_CUDA_TRY(env, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, nthr, smem));
        /* one wave: the row loop is grid-strided, a second wave would idle */
        int nblk = per_sm * fli_state(env)->sm_count;
        if (nblk > FLI_KM_ACC_BLOCKS) nblk = FLI_KM_ACC_BLOCKS;
        /* no block without rows: each writes (and the combine reads) a
         * k x (d+2) partial, as many bytes as 260 rows of X at 100K x 64 */
        const int64_t batches = fli_ceil_div(r->m, !priv ? (int64_t)OWN_B : (int64_t)ACC_WARPS * (lanes ? 32 : 8));
        if (nblk > batches) nblk = (int)batches;
        if (nblk < 1) nblk = 1;
        int64_t ldx = r->ldx, m = r->m, dp = p->dp;
        const float *xp = r->x, *wp = r->w;
        int im = (int)metric;
        float *accp = b->acc_part;
        double *partp = b->part;
        void *args[] = {(void *)&xp, (void *)&ldx, (void *)&m, (void *)&wp, (void *)&lab, (void *)&C,
                        (void *)&dp, (void *)&d, (void *)&k, (void *)&im, (void *)&accp, (void *)&partp,
                        (void *)&dist, (void *)&done};
        FLI_CUDA_TRY(env, cudaLaunchKernel(fn, dim3(nblk), dim3(nthr), args, smem, s));
        return km_combine(env, s, p, b, nblk, sc, first, ra, done);
    }
    /* Delta M-step (b->delta: X resident, one chunk, no objective): after
     * the run's first iteration only the rows whose label changed are
     * sorted, each taken out of its old cluster's sums and added to its new
     * one, so an iteration reads ~2 x (changed rows) of X instead of all of
     * it. Which mode runs is read on the device (sc->n_iter), so a captured
     * iteration replays either. */
    const bool delta = b->delta && !obj && !p->chunked;
    int32_t *prev = delta ? b->prev : NULL, *ncount = delta ? b->ncount : NULL;
    const int nb = (int)p->sort_nb;
    const int64_t R = fli_ceil_div(r->m, nb);
    const int64_t ncnt = (int64_t)k * nb + 1;
    FLI_CUDA_TRY(env, cudaMemsetAsync(b->cnt, 0, (size_t)ncnt * 4, s));
    unsigned wblocks = (unsigned)fli_ceil_div(nb, 8);
    k_sort_count<<<wblocks, 256, 0, s>>>(lab, r->m, nb, R, b->cnt, 0, NULL, prev, sc, done);
    FLI_LAUNCH_TRY(env, "k_sort_count");
    FLI_TRY(km_scan_i32(env, s, b->cnt, ncnt, 0, b->scan_tmp));
    k_sort_count<<<wblocks, 256, 0, s>>>(lab, r->m, nb, R, b->cnt, 1, b->perm, prev, sc, done);
    FLI_LAUNCH_TRY(env, "k_sort_scatter");
    k_piece_count<<<(unsigned)fli_ceil_div(k + 1, 256), 256, 0, s>>>(b->cnt, k, nb, b->piece_off, ncount,
                                                                     sc, done);
    FLI_LAUNCH_TRY(env, "k_piece_count");
    FLI_TRY(km_scan_i32(env, s, b->piece_off, k + 1, 0, b->scan_tmp));
    int64_t npieces = fli_ceil_div((delta ? 2 : 1) * r->m, FLI_KM_PIECE) + k;
    if (obj)
        k_piece_sum<true><<<(unsigned)npieces, 128, 0, s>>>(r->x, r->ldx, r->w, b->perm, b->cnt, nb,
                                                            b->piece_off, k, C, p->dp, d, (int)metric,
                                                            b->psum, b->pw, b->pobj, b->pcnt, dist, done);
    else
        k_piece_sum<false><<<(unsigned)npieces, 128, 0, s>>>(r->x, r->ldx, r->w, b->perm, b->cnt, nb,
                                                             b->piece_off, k, C, p->dp, d, (int)metric,
                                                             b->psum, b->pw, b->pobj, b->pcnt, dist, done);
    FLI_LAUNCH_TRY(env, "k_piece_sum");
    k_piece_combine<<<(unsigned)k, 128, 0, s>>>(b->psum, b->pw, b->pobj, b->pcnt, b->piece_off, d, p->dp,
                                               b->sums, b->wsum, b->cobj, ncount, sc, first, done);
    FLI_LAUNCH_TRY(env, "k_piece_combine");
    if (obj) {
        k_sum_part<<<1, 1024, 0, s>>>(b->cobj, k, sc, done);
        FLI_LAUNCH_TRY(env, "k_sum_part");
    }
    return FL_STATUS_OK;
}

/* ------------------------------------------------------------------------ */
/* New centres, their E-step operands, shift and the convergence decision   */
/* ------------------------------------------------------------------------ */
/* One warp per centre: the new centre, its shift, cnorm and tensor-core
 * copy (as k_prep_centers: the next E-step needs no launch of its own).
 * The last block to finish sums the shifts in a fixed order and decides. */
__global__ void __launch_bounds__(256)
    k_finalize(float *C, const double *__restrict__ sums, const double *__restrict__ wsum,
               double *shift_c, int k, int d, int64_t dp, int metric, int prec, void *ctc, int dh,
               int img, float *cnorm, km_scalars *sc, double *trace, int32_t *hflag,
               const int32_t *done) {
    if (done && *done) return;
    __shared__ double sh[32];
    __shared__ int last;
    const int lane = threadIdx.x & 31;
    const int64_t c = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (c < k) {
        float *cr = C + c * dp;
        const double W = wsum[c];
        const double *sr = sums + c * dp;
        double scale = 1.0;
        if (metric == FLI_METRIC_COSINE) {
            double ss = 0;
            for (int j = lane; j < d; j += 32) {
                double v = W > 0 ? sr[j] / W : (double)cr[j];
                ss += v * v;
            }
            for (int o = 16; o; o >>= 1) ss += __shfl_xor_sync(FULL, ss, o);
            scale = ss > 0 ? 1.0 / sqrt(ss) : 1.0;
        }
        double sh2 = 0;
        float nn = 0.f, rr = 0.f;
        for (int j = lane; j < d; j += 32) {
            double v = (W > 0 ? sr[j] / W : (double)cr[j]) * scale;
            float nv = (float)v;
            double t = (double)nv - (double)cr[j];
            sh2 += t * t;
            cr[j] = nv;
            /* cnorm of the rounded copy the E-step reads (see k_prep_centers) */
            const float q = km_round(nv, prec);
            nn = fmaf(q, q, nn);
            rr = fmaf(q - nv, q - nv, rr);
            if (prec == FLI_PREC_TF32) {
                ((uint32_t *)ctc)[c * dp + j] = to_tf32(nv);
            } else if (prec == FLI_PREC_BF16 || prec == FLI_PREC_FP16) {
                int64_t at = img ? sm90_img_index(c, j, dh, FLI_KM_BN) : c * dh + j;
                if (prec == FLI_PREC_BF16)
                    ((__nv_bfloat16 *)ctc)[at] = __float2bfloat16_rn(nv);
                else
                    ((__half *)ctc)[at] = __float2half_rn(nv);
            }
        }
        for (int o = 16; o; o >>= 1) {
            sh2 += __shfl_xor_sync(FULL, sh2, o);
            nn += __shfl_xor_sync(FULL, nn, o);
            rr += __shfl_xor_sync(FULL, rr, o);
        }
        if (lane == 0) {
            shift_c[c] = sh2;
            cnorm[c] = metric == FLI_METRIC_EUCLIDEAN ? nn : 0.f;
            km_atomic_fmax(&sc->cb_next[0], sqrtf(rr));
            km_atomic_fmax(&sc->cb_next[1], sqrtf(nn));
        }
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&sc->fin_count, 1) == (int)gridDim.x - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    double v = 0;
    for (int q = threadIdx.x; q < k; q += blockDim.x) v += __ldcg(&shift_c[q]);
    double t = block_sum(v, sh);
    if (threadIdx.x == 0) {
        volatile km_scalars *vs = sc;
        vs->fin_count = 0;
        vs->shift = t;
        /* the next E-step's rounding bounds (kmeans_dev.cuh: km_near_tie) */
        vs->cb[0] = vs->cb_next[0];
        vs->cb[1] = vs->cb_next[1];
        vs->cb_next[0] = 0.f;
        vs->cb_next[1] = 0.f;
        /* this is iteration n_iter of the run: every iteration before it
         * ran this block once (none is skipped before done is set), so the
         * index comes from the device and the launch has no per-iteration
         * argument (a CUDA graph replays it unchanged) */
        const int32_t it = vs->n_iter;
        trace[it % FLI_KM_TRACE_RING] = vs->inertia;
        vs->n_iter = it + 1;
        if (vs->n_changed == 0) {
            vs->strict = 1;
            vs->done = 1;
        } else if (t <= vs->tol_abs) {
            vs->done = 1;
        } else {
            /* the next iteration starts from zero (saves a launch) */
            vs->inertia = 0;
            vs->n_changed = 0;
        }
        /* the host's copy of the flag (pinned, mapped): it stops enqueueing
         * when it sees it, with no copy in the stream */
        if (hflag && vs->done) *(volatile int32_t *)hflag = 1;
    }
}

fl_status km_finalize(fli_cuda_env *env, cudaStream_t s, const fli_kmeans_cuda_plan *p, float *C,
                      const double *sums, const double *wsum, double *shift_c, fli_metric metric,
                      fli_precision prec, void *ctc, int img, float *cnorm, km_scalars *sc,
                      double *trace, int32_t *hflag, const int32_t *done) {
    unsigned blocks = (unsigned)fli_ceil_div(p->k * 32, 256);
    k_finalize<<<blocks, 256, 0, s>>>(C, sums, wsum, shift_c, (int)p->k, (int)p->d, p->dp, (int)metric,
                                      (int)prec, ctc, (int)p->dh, img, cnorm, sc, trace, hflag, done);
    FLI_LAUNCH_TRY(env, "k_finalize");
    return FL_STATUS_OK;
}
