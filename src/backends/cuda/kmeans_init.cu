/*
 * kmeans_init.cu — KMeans initialisation and preprocessing on the device:
 * column statistics for the tolerance, row normalisation (cosine), row
 * gathers, and greedy k-means++.
 *
 * k-means++ (scikit-learn's greedy variant). Per step s = 1..k-1:
 *   1. km_pp_closest: closest[i] = min(closest[i], ||x_i - c_{s-1}||^2) and
 *      wcum[i] = w_i * closest[i]           (one warp per row)
 *   2. inclusive scan of wcum (f64): wcum[n-1] is the potential
 *   3. km_pp_candidates: n_local_trials targets u * potential, each the
 *      first row whose cumulative sum reaches it (binary search); u comes
 *      from a counter-based generator, so no random numbers are stored
 *   4. km_pp_score: for each candidate, sum_i w_i min(closest_i, d(x_i, cand))
 *      as per-block partials (fixed grid: same order every time)
 *   5. km_pp_choose: the candidate with the smallest potential (first on
 *      ties) becomes centre s.
 * Candidates are scored FLI_KM_PP_GROUP at a time, so any n_local_trials
 * fits a fixed workspace. Nothing goes back to the host between steps.
 */
#include <math.h>

#include "backends/cuda/kmeans_cuda.cuh"

#define FULL 0xffffffffu

/* ---- variance for the tolerance ---------------------------------------- */
/* colstats: [0,dp) sums of (x - ref), [dp,2dp) sums of squares, [2dp,3dp) ref
 * (the first row of X, copied by the first chunk) — shifting by a row of the
 * data keeps the one-pass variance accurate when |mean| >> std. Each block
 * writes its partial sums to colpart (2 x dp per block) and k_colstats_add
 * adds them in block order: no atomics, so tol_abs, and with it the
 * stopping iteration, is the same on every run. */
__global__ void k_colstats(const float *__restrict__ x, int64_t ldx, int64_t m, int d, int64_t dp,
                           const double *colstats, int64_t rows_per_block, double *colpart) {
    const int64_t r0 = (int64_t)blockIdx.x * rows_per_block;
    const int64_t r1 = r0 + rows_per_block < m ? r0 + rows_per_block : m;
    const double *ref = colstats + 2 * dp;
    double *out = colpart + (int64_t)blockIdx.x * 2 * dp;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        double s = 0, q = 0, rj = ref[j];
        for (int64_t i = r0; i < r1; i++) {
            double v = (double)x[i * ldx + j] - rj;
            s += v;
            q += v * v;
        }
        out[j] = s;
        out[dp + j] = q;
    }
}

__global__ void k_colstats_add(const double *__restrict__ colpart, int64_t blocks, int d, int64_t dp,
                               double *colstats) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    double s = 0, q = 0;
    for (int64_t b = 0; b < blocks; b++) {
        s += colpart[b * 2 * dp + j];
        q += colpart[b * 2 * dp + dp + j];
    }
    colstats[j] += s;
    colstats[dp + j] += q;
}

__global__ void k_colstats_ref(const float *x, int d, int64_t dp, double *colstats) {
    for (int j = threadIdx.x; j < (int)dp; j += blockDim.x) {
        colstats[j] = 0;
        colstats[dp + j] = 0;
        colstats[2 * dp + j] = j < d ? (double)x[j] : 0.0;
    }
}

fl_status km_colstats(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d,
                      const float *x0, double *colstats, double *colpart, int first) {
    int64_t dp = (d + 31) / 32 * 32;
    if (first) {
        k_colstats_ref<<<1, 256, 0, s>>>(x0, (int)d, dp, colstats);
        FLI_LAUNCH_TRY(env, "k_colstats_ref");
    }
    if (r->m <= 0) return FL_STATUS_OK;
    /* at most the plan's block count for chunk_rows (r->m <= chunk_rows) */
    int64_t blocks = fli_km_colstats_blocks(r->m, dp);
    int64_t rpb = fli_ceil_div(r->m, blocks);
    blocks = fli_ceil_div(r->m, rpb);
    k_colstats<<<(unsigned)blocks, 128, 0, s>>>(r->x, r->ldx, r->m, (int)d, dp, colstats, rpb, colpart);
    FLI_LAUNCH_TRY(env, "k_colstats");
    k_colstats_add<<<(unsigned)fli_ceil_div(d, 128), 128, 0, s>>>(colpart, blocks, (int)d, dp, colstats);
    FLI_LAUNCH_TRY(env, "k_colstats_add");
    return FL_STATUS_OK;
}

__global__ void k_tol(const double *colstats, int64_t n, int d, int64_t dp, double tol,
                      km_scalars *sc) {
    __shared__ double sh[256];
    double v = 0;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        double mu = colstats[j] / (double)n;
        double var = colstats[dp + j] / (double)n - mu * mu;
        v += var > 0 ? var : 0;
    }
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int o = blockDim.x / 2; o; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) sc->tol_abs = tol * sh[0] / (double)d;
}

fl_status km_tol(fli_cuda_env *env, cudaStream_t s, const double *colstats, int64_t n, int64_t d,
                 double tol, km_scalars *sc) {
    k_tol<<<1, 256, 0, s>>>(colstats, n, (int)d, (d + 31) / 32 * 32, tol, sc);
    FLI_LAUNCH_TRY(env, "k_tol");
    return FL_STATUS_OK;
}

/* ---- rows ------------------------------------------------------------- */
__global__ void k_normalize_rows(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t m,
                                 int d) {
    const int lane = threadIdx.x & 31;
    for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; i < m;
         i += ((int64_t)gridDim.x * blockDim.x) >> 5) {
        const float *xr = x + i * ldx;
        float ss = 0.f;
        for (int j = lane; j < d; j += 32) ss = fmaf(xr[j], xr[j], ss);
        for (int o = 16; o; o >>= 1) ss += __shfl_xor_sync(FULL, ss, o);
        /* a zero row stays zero, as sklearn.preprocessing.normalize does */
        float inv = ss > 0.f ? 1.f / sqrtf(ss) : 0.f;
        float *yr = y + i * ldy;
        for (int j = lane; j < d; j += 32) yr[j] = xr[j] * inv;
    }
}

fl_status km_normalize_rows(fli_cuda_env *env, cudaStream_t s, const float *x, int64_t ldx,
                            float *y, int64_t ldy, int64_t m, int64_t d) {
    if (m <= 0) return FL_STATUS_OK;
    int64_t blocks = fli_ceil_div(m, 8);
    if (blocks > 8192) blocks = 8192;
    k_normalize_rows<<<(unsigned)blocks, 256, 0, s>>>(x, ldx, y, ldy, m, (int)d);
    FLI_LAUNCH_TRY(env, "k_normalize_rows");
    return FL_STATUS_OK;
}

__global__ void k_gather_rows(const float *x, int64_t ldx, const int32_t *idx, int64_t cnt, int d,
                              float *C, int64_t dp) {
    for (int64_t q = blockIdx.x; q < cnt; q += gridDim.x) {
        const float *xr = x + (int64_t)idx[q] * ldx;
        for (int j = threadIdx.x; j < d; j += blockDim.x) C[q * dp + j] = xr[j];
    }
}

fl_status km_gather_rows(fli_cuda_env *env, cudaStream_t s, const float *x, int64_t ldx,
                         const int32_t *idx, int64_t cnt, int64_t d, float *C, int64_t dp) {
    if (cnt <= 0) return FL_STATUS_OK;
    unsigned blocks = (unsigned)(cnt < 4096 ? cnt : 4096);
    k_gather_rows<<<blocks, 128, 0, s>>>(x, ldx, idx, cnt, (int)d, C, dp);
    FLI_LAUNCH_TRY(env, "k_gather_rows");
    return FL_STATUS_OK;
}

/* ---- k-means++ ---------------------------------------------------------- */
__global__ void k_pp_closest(const float *__restrict__ x, int64_t ldx, int64_t m,
                             const float *__restrict__ w, int d, const float *__restrict__ c,
                             float *closest, double *wcum, int first) {
    const int lane = threadIdx.x & 31;
    for (int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; i < m;
         i += ((int64_t)gridDim.x * blockDim.x) >> 5) {
        const float *xr = x + i * ldx;
        float s = 0.f;
        for (int j = lane; j < d; j += 32) {
            float t = xr[j] - c[j];
            s = fmaf(t, t, s);
        }
        for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(FULL, s, o);
        if (lane == 0) {
            float v = first ? s : fminf(closest[i], s);
            closest[i] = v;
            wcum[i] = (double)(w ? w[i] : 1.f) * v;
        }
    }
}

fl_status km_pp_closest(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d,
                        const float *c, float *closest, double *wcum, int first) {
    int64_t blocks = fli_ceil_div(r->m, 8);
    if (blocks > 8192) blocks = 8192;
    k_pp_closest<<<(unsigned)blocks, 256, 0, s>>>(r->x, r->ldx, r->m, r->w, (int)d, c,
                                                  closest + r->row0, wcum + r->row0, first);
    FLI_LAUNCH_TRY(env, "k_pp_closest");
    return FL_STATUS_OK;
}

/* First row i with cum[i] >= target (numpy searchsorted, side='left'),
 * clipped to n-1. */
__device__ int64_t lower_bound_f64(const double *cum, int64_t n, double target) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = (lo + hi) >> 1;
        if (cum[mid] < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n ? lo : n - 1;
}

__global__ void k_pp_first(const double *cumw, int64_t n, int weighted, uint64_t seed,
                           km_scalars *sc) {
    double u = fli_uniform(seed, 0, 0);
    int64_t i;
    if (weighted) {
        i = lower_bound_f64(cumw, n, u * cumw[n - 1]);
    } else {
        i = (int64_t)(u * (double)n);
        if (i >= n) i = n - 1;
    }
    sc->best_cand = (int32_t)i;
}

fl_status km_pp_first(fli_cuda_env *env, cudaStream_t s, const double *cumw, int64_t n, int weighted,
                      uint64_t seed, km_scalars *sc) {
    k_pp_first<<<1, 1, 0, s>>>(cumw, n, weighted, seed, sc);
    FLI_LAUNCH_TRY(env, "k_pp_first");
    return FL_STATUS_OK;
}

__global__ void k_pp_candidates(const double *cum, int64_t n, uint64_t seed, int64_t step,
                                int64_t g0, int cnt, km_scalars *sc) {
    int j = threadIdx.x;
    if (j >= cnt) return;
    double u = fli_uniform(seed, (uint64_t)step, (uint64_t)(g0 + j));
    sc->cand[j] = (int32_t)lower_bound_f64(cum, n, u * cum[n - 1]);
}

fl_status km_pp_candidates(fli_cuda_env *env, cudaStream_t s, const double *cum, int64_t n,
                           uint64_t seed, int64_t step, int64_t g0, int64_t cnt, km_scalars *sc) {
    k_pp_candidates<<<1, 32, 0, s>>>(cum, n, seed, step, g0, (int)cnt, sc);
    FLI_LAUNCH_TRY(env, "k_pp_candidates");
    return FL_STATUS_OK;
}

/* Grid of exactly KM_PP_BLOCKS blocks; block b adds its partial potential of
 * each candidate into pp_part[b * PP_GROUP + q]. */
__global__ void __launch_bounds__(256)
    k_pp_score(const float *__restrict__ x, int64_t ldx, int64_t m, const float *__restrict__ w,
               int d, const float *__restrict__ cand, int64_t dp, int cnt,
               const float *__restrict__ closest, double *pp_part, int first_chunk) {
    __shared__ double sh[FLI_KM_PP_GROUP][8];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    double acc[FLI_KM_PP_GROUP];
#pragma unroll
    for (int q = 0; q < FLI_KM_PP_GROUP; q++) acc[q] = 0;
    for (int64_t i = (int64_t)blockIdx.x * 8 + warp; i < m; i += (int64_t)gridDim.x * 8) {
        const float *xr = x + i * ldx;
        float s[FLI_KM_PP_GROUP];
#pragma unroll
        for (int q = 0; q < FLI_KM_PP_GROUP; q++) s[q] = 0.f;
        for (int j = lane; j < d; j += 32) {
            float xv = xr[j];
#pragma unroll
            for (int q = 0; q < FLI_KM_PP_GROUP; q++)
                if (q < cnt) {
                    float t = xv - cand[q * dp + j];
                    s[q] = fmaf(t, t, s[q]);
                }
        }
#pragma unroll
        for (int q = 0; q < FLI_KM_PP_GROUP; q++)
            for (int o = 16; o; o >>= 1) s[q] += __shfl_xor_sync(FULL, s[q], o);
        if (lane == 0) {
            float ci = closest[i], wi = w ? w[i] : 1.f;
#pragma unroll
            for (int q = 0; q < FLI_KM_PP_GROUP; q++) acc[q] += (double)wi * fminf(ci, s[q]);
        }
    }
    if (lane == 0)
#pragma unroll
        for (int q = 0; q < FLI_KM_PP_GROUP; q++) sh[q][warp] = acc[q];
    __syncthreads();
    if (threadIdx.x < FLI_KM_PP_GROUP) {
        int q = threadIdx.x;
        double t = 0;
        for (int v = 0; v < 8; v++) t += sh[q][v];
        double *o = &pp_part[(int64_t)blockIdx.x * FLI_KM_PP_GROUP + q];
        *o = first_chunk ? t : *o + t;
    }
}

fl_status km_pp_score(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d,
                      const float *cand, int64_t dp, int64_t cnt, const float *closest,
                      double *pp_part, int first_chunk) {
    k_pp_score<<<KM_PP_BLOCKS, 256, 0, s>>>(r->x, r->ldx, r->m, r->w, (int)d, cand, dp, (int)cnt,
                                            closest + r->row0, pp_part, first_chunk);
    FLI_LAUNCH_TRY(env, "k_pp_score");
    return FL_STATUS_OK;
}

__global__ void k_pp_choose(const double *pp_part, int cnt, int first_group,
                            const float *cand, int64_t dp, int d, float *center, km_scalars *sc) {
    __shared__ double pot[FLI_KM_PP_GROUP];
    __shared__ int pick;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    /* warp q sums candidate q's block partials: lanes strided, then a fixed
     * butterfly, so the order never changes */
    for (int q = warp; q < cnt; q += blockDim.x >> 5) {
        double v = 0;
        for (int b = lane; b < KM_PP_BLOCKS; b += 32) v += pp_part[(int64_t)b * FLI_KM_PP_GROUP + q];
        for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
        if (lane == 0) pot[q] = v;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int best = -1;
        double bp = first_group ? INFINITY : sc->pot;
        for (int q = 0; q < cnt; q++)
            if (pot[q] < bp || (first_group && best < 0 && q == 0)) {
                bp = pot[q];
                best = q;
            }
        pick = best;
        if (best >= 0) {
            sc->pot = bp;
            sc->best_cand = sc->cand[best];
        }
    }
    __syncthreads();
    if (pick >= 0)
        for (int j = threadIdx.x; j < d; j += blockDim.x) center[j] = cand[pick * dp + j];
}

fl_status km_pp_choose(fli_cuda_env *env, cudaStream_t s, const double *pp_part, int64_t cnt,
                       int first_group, const float *cand, int64_t dp, int64_t d, float *center,
                       km_scalars *sc) {
    k_pp_choose<<<1, 256, 0, s>>>(pp_part, (int)cnt, first_group, cand, dp, (int)d, center, sc);
    FLI_LAUNCH_TRY(env, "k_pp_choose");
    return FL_STATUS_OK;
}
