/*
 * ivfpq_cpu.c — the CPU backend of the IVF-PQ index (algo/ivfpq_job.h):
 * encoding rows into product-quantisation codes, and searching.
 *
 * A search takes the queries in blocks. For a block, one GEMM against the
 * coarse centres picks each query's n_probes lists (as IVF-Flat does). For
 * each probed list the query's look-up table is built (per sub-space and
 * centroid: the squared distance of the query's residual sub-vector to the
 * centroid, or for the inner product the sub-vector's product with it), and
 * each stored code costs M table reads: asymmetric distance computation.
 * A bounded heap ordered by (key, index) keeps `pool` candidates; with the
 * raw rows kept (refine > 1) the pool is re-ranked by exact float64
 * distances, else the quantised distances are returned.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "algo/ivfpq_job.h"
#include "backends/cpu/cpu.h"
#include "backends/cpu/ivf_heap.h"
#include "core/internal.h"

#define PQ_QB 64

fl_status fli_cpu_ivfpq_encode(fl_ctx *ctx, const fli_ivfpq_index *ix, const float *x, int64_t n,
                               const int64_t *lists, uint8_t *codes)
{
    const int64_t d = ix->d, M = ix->M, ks = ix->ksub, ds = ix->dsub;
    const int T = fli_cpu_threads(ctx);
    float *res = fli_malloc(ctx, sizeof(float) * (size_t)(T * d), "PQ residual rows");
    if (!res)
        return FL_STATUS_OUT_OF_MEMORY;
#pragma omp parallel for schedule(static) num_threads(T)
    for (int64_t i = 0; i < n; i++) {
        float *r = res + (size_t)omp_get_thread_num() * (size_t)d;
        const float *c = ix->by_residual ? ix->centers + lists[i] * d : NULL;
        for (int64_t f = 0; f < d; f++)
            r[f] = x[i * d + f] - (c ? c[f] : 0.0f);
        for (int64_t j = 0; j < M; j++) {
            const float *cb = ix->codebooks + j * ks * ds, *rj = r + j * ds;
            int64_t best = 0;
            float bd = INFINITY;
            for (int64_t c2 = 0; c2 < ks; c2++) {
                float s = 0;
                for (int64_t f = 0; f < ds; f++) {
                    float v = rj[f] - cb[c2 * ds + f];
                    s += v * v;
                }
                if (s < bd)
                    bd = s, best = c2;
            }
            codes[i * M + j] = (uint8_t)best;
        }
    }
    fli_free(ctx, res);
    return FL_STATUS_OK;
}

/* The exact distance of query q (float64, normalised for cosine) to the raw
 * stored row x. */
static double exact_dist(fli_knn_metric metric, const double *q, const float *x, int64_t d)
{
    double s = 0;
    if (metric == FLI_KNN_SQEUCLIDEAN || metric == FLI_KNN_EUCLIDEAN) {
        for (int64_t j = 0; j < d; j++) {
            double t = q[j] - (double)x[j];
            s += t * t;
        }
        return metric == FLI_KNN_EUCLIDEAN ? sqrt(s) : s;
    }
    for (int64_t j = 0; j < d; j++)
        s += q[j] * (double)x[j];
    return metric == FLI_KNN_COSINE ? 1.0 - s : s;
}

/* The distance a quantised key stands for. */
static double approx_dist(fli_knn_metric metric, float key)
{
    switch (metric) {
    case FLI_KNN_EUCLIDEAN: return sqrt(fmax((double)key, 0.0));
    case FLI_KNN_COSINE: return 0.5 * fmax((double)key, 0.0); /* unit rows: |a-b|^2 = 2 - 2 cos */
    case FLI_KNN_INNER: return -(double)key;
    default: return fmax((double)key, 0.0);
    }
}

fl_status fli_cpu_ivfpq_search(fl_ctx *ctx, const fli_ivfpq_search_job *job)
{
    const fli_ivfpq_index *ix = &job->ix;
    const int64_t L = ix->n_lists, d = ix->d, M = ix->M, ks = ix->ksub, ds = ix->dsub, k = job->k;
    const int64_t P = job->n_probes < L ? job->n_probes : L, cap = job->pool > k ? job->pool : k;
    const int ip = ix->metric == FLI_KNN_INNER, cosine = ix->metric == FLI_KNN_COSINE;
    const int T = fli_cpu_threads(ctx);
    float *cn = fli_malloc(ctx, sizeof(float) * (size_t)L, "PQ centre norms");
    if (!cn)
        return FL_STATUS_OUT_OF_MEMORY;
    for (int64_t l = 0; l < L; l++) {
        double s = 0;
        for (int64_t f = 0; f < d; f++)
            s += (double)ix->centers[l * d + f] * ix->centers[l * d + f];
        cn[l] = (float)s;
    }
    /* per thread: coarse scores, probe heap, candidate heap, the query
     * (float32 and float64), its residual, the look-up table, final pool */
    /* a multiple of 64 bytes: every thread's slice starts aligned */
    const size_t per = ((sizeof(float) * (size_t)(PQ_QB * L) + sizeof(ivf_cand) * (size_t)(P + cap) +
                         sizeof(float) * (size_t)(2 * d + M * ks) + sizeof(double) * (size_t)d +
                         sizeof(ivf_final) * (size_t)cap + 64 * 8) +
                        63) &
                       ~(size_t)63;
    size_t bytes;
    char *ws = NULL;
    if (fli_mul_overflow(per, (size_t)T, &bytes) || !(ws = fli_malloc(ctx, bytes, "PQ search workspace"))) {
        fli_free(ctx, cn);
        return ctx->err[0] ? FL_STATUS_OUT_OF_MEMORY
                           : fli_fail(ctx, FL_STATUS_OUT_OF_MEMORY, "IVF-PQ search: workspace too large");
    }
    fl_status st = FL_STATUS_OK;
    const int64_t nb = (job->n_q + PQ_QB - 1) / PQ_QB, wave = (int64_t)T * 8;
    for (int64_t w0 = 0; w0 < nb && !st; w0 += wave) {
        const int64_t w1 = w0 + wave < nb ? w0 + wave : nb;
#pragma omp parallel for schedule(dynamic, 1) num_threads(T)
        for (int64_t b = w0; b < w1; b++) {
            omp_set_num_threads(1); /* this thread's BLAS call runs on it alone */
            char *p = ws + per * (size_t)omp_get_thread_num();
#define TAKE(type, count)                                                                                    \
    (type *)p;                                                                                               \
    p += ((sizeof(type) * (size_t)(count) + 63) & ~(size_t)63)
            float *S = TAKE(float, PQ_QB *L);
            ivf_cand *probe = TAKE(ivf_cand, P);
            ivf_cand *heap = TAKE(ivf_cand, cap);
            float *q32 = TAKE(float, d);
            float *rq = TAKE(float, d);
            float *lut = TAKE(float, M *ks);
            double *q64 = TAKE(double, d);
            ivf_final *fin = TAKE(ivf_final, cap);
#undef TAKE
            const int64_t r0 = b * PQ_QB, m = job->n_q - r0 < PQ_QB ? job->n_q - r0 : PQ_QB;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)L, (int)d, 1.0f,
                        job->q + r0 * job->q_ld, (int)job->q_ld, ix->centers, (int)d, 0.0f, S, (int)L);
            for (int64_t i = 0; i < m; i++) {
                const float *q = job->q + (r0 + i) * job->q_ld;
                const int64_t np = ivf_query_probes(q, d, cosine, ip, S + i * L, cn, L, P, q32, q64, probe);
                const int64_t self = job->self_ids ? job->self_ids[r0 + i] : -1;
                int64_t nh = 0;
                for (int64_t t = 0; t < np; t++) {
                    const int64_t l = probe[t].id, o = ix->offsets[l], len = ix->offsets[l + 1] - o;
                    if (len == 0)
                        continue;
                    const float *c = ix->centers + l * d;
                    float base = 0; /* inner product with a residual code: <q, c> + sum */
                    if (ip) {
                        for (int64_t f = 0; f < d; f++)
                            rq[f] = q32[f];
                        if (ix->by_residual)
                            base = S[i * L + l];
                    } else {
                        for (int64_t f = 0; f < d; f++)
                            rq[f] = q32[f] - (ix->by_residual ? c[f] : 0.0f);
                    }
                    for (int64_t j = 0; j < M; j++) {
                        const float *cb = ix->codebooks + j * ks * ds, *rj = rq + j * ds;
                        float *lj = lut + j * ks;
                        for (int64_t c2 = 0; c2 < ks; c2++) {
                            float s = 0;
                            if (ip) {
                                for (int64_t f = 0; f < ds; f++)
                                    s += rj[f] * cb[c2 * ds + f];
                            } else {
                                for (int64_t f = 0; f < ds; f++) {
                                    float v = rj[f] - cb[c2 * ds + f];
                                    s += v * v;
                                }
                            }
                            lj[c2] = s;
                        }
                    }
                    for (int64_t r = 0; r < len; r++) {
                        const int64_t id = ix->ids[o + r];
                        if (id == self)
                            continue;
                        const uint8_t *code = ix->codes + (o + r) * M;
                        float s = 0;
                        for (int64_t j = 0; j < M; j++)
                            s += lut[j * ks + code[j]];
                        ivf_heap_push(heap, &nh, cap, (ivf_cand){ip ? -(base + s) : s, id, o + r});
                    }
                }
                for (int64_t c = 0; c < nh; c++)
                    fin[c] = (ivf_final){ix->data ? exact_dist(ix->metric, q64, ix->data + heap[c].row * d, d)
                                                  : approx_dist(ix->metric, heap[c].key),
                                         heap[c].id};
                qsort(fin, (size_t)nh, sizeof *fin, ip ? ivf_cmp_desc : ivf_cmp_asc);
                double *od = job->dist + (r0 + i) * k;
                int64_t *oi = job->idx + (r0 + i) * k;
                for (int64_t c = 0; c < k; c++) {
                    od[c] = c < nh ? fin[c].dist : ip ? -INFINITY : INFINITY;
                    oi[c] = c < nh ? fin[c].id : -1;
                }
            }
        }
        st = fli_progress(ctx, "ivf_pq.search", w1 * PQ_QB < job->n_q ? w1 * PQ_QB : job->n_q, job->n_q);
    }
    fli_free(ctx, cn);
    fli_free(ctx, ws);
    return st;
}
