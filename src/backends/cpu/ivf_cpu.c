/*
 * ivf_cpu.c — the CPU backend of the IVF-Flat index's search
 * (algo/ivf_job.h); rows are filed into lists by an exact 1-NN search
 * (ivf_common.c).
 *
 * A search takes the queries in blocks of IVF_QB rows. For a block: one
 * GEMM against the coarse centres picks each query's n_probes lists (the
 * nearest centres; for the inner product the largest <q, c>); then each
 * probed list is one GEMV of its contiguous rows against the query, whose
 * approximate keys (||x||^2 - 2<q,x>, or -<q,x>) feed a bounded max-heap
 * ordered by (key, original index). The heap keeps IVF_OVERSAMPLE more
 * candidates than asked, and the pool is re-ranked by distances recomputed
 * in float64 from the stored rows, so the float32 key never decides the
 * order or the values returned. Blocks are independent and their order
 * fixed, so results do not depend on the number of threads.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "algo/ivf_job.h"
#include "backends/cpu/cpu.h"
#include "backends/cpu/ivf_heap.h"
#include "core/internal.h"

#define IVF_QB 64
#define IVF_OVERSAMPLE 8

/* The exact distance of query q (float64 copy, normalised for cosine) to
 * stored row x. */
static double exact_dist(const fli_ivf_index *ix, const double *q, const float *x)
{
    const int64_t d = ix->d;
    double s = 0;
    if (ix->metric == FLI_KNN_SQEUCLIDEAN || ix->metric == FLI_KNN_EUCLIDEAN) {
        for (int64_t j = 0; j < d; j++) {
            double t = q[j] - (double)x[j];
            s += t * t;
        }
        return ix->metric == FLI_KNN_EUCLIDEAN ? sqrt(s) : s;
    }
    for (int64_t j = 0; j < d; j++)
        s += q[j] * (double)x[j];
    return ix->metric == FLI_KNN_COSINE ? 1.0 - s : s;
}

/* Squared norms of the centres (for the L2 coarse keys). */
static fl_status centre_norms(fl_ctx *ctx, const fli_ivf_index *ix, float **out)
{
    float *cn = fli_malloc(ctx, sizeof(float) * (size_t)ix->n_lists, "IVF centre norms");
    if (!cn)
        return FL_STATUS_OUT_OF_MEMORY;
    for (int64_t l = 0; l < ix->n_lists; l++) {
        double s = 0;
        for (int64_t j = 0; j < ix->d; j++)
            s += (double)ix->centers[l * ix->d + j] * ix->centers[l * ix->d + j];
        cn[l] = (float)s;
    }
    *out = cn;
    return FL_STATUS_OK;
}

fl_status fli_cpu_ivf_search(fl_ctx *ctx, const fli_ivf_search_job *job)
{
    const fli_ivf_index *ix = &job->ix;
    const int64_t L = ix->n_lists, d = ix->d, k = job->k;
    const int64_t P = job->n_probes < L ? job->n_probes : L;
    const int64_t cap = k + IVF_OVERSAMPLE;
    const int ip = ix->metric == FLI_KNN_INNER, cosine = ix->metric == FLI_KNN_COSINE;
    const int T = fli_cpu_threads(ctx);
    int64_t maxlen = 1;
    for (int64_t l = 0; l < L; l++)
        if (ix->offsets[l + 1] - ix->offsets[l] > maxlen)
            maxlen = ix->offsets[l + 1] - ix->offsets[l];
    /* per thread: the block's coarse scores, the probe heap, one list's
     * dot products, the candidate heap, the float32 query, its float64 copy
     * and the final pool */
    /* a multiple of 64 bytes: every thread's slice starts aligned */
    const size_t per = ((sizeof(float) * (size_t)(IVF_QB * L) + sizeof(ivf_cand) * (size_t)(P + cap) +
                         sizeof(float) * (size_t)(maxlen + d) + sizeof(double) * (size_t)d +
                         sizeof(ivf_final) * (size_t)cap + 64 * 6) +
                        63) &
                       ~(size_t)63;
    size_t bytes;
    if (fli_mul_overflow(per, (size_t)T, &bytes))
        return fli_fail(ctx, FL_STATUS_OUT_OF_MEMORY, "IVF search: workspace size overflows");
    char *ws = fli_malloc(ctx, bytes, "IVF search workspace");
    float *cn = NULL;
    fl_status st = ws ? centre_norms(ctx, ix, &cn) : FL_STATUS_OUT_OF_MEMORY;
    if (st) {
        fli_free(ctx, ws);
        return st;
    }
    const int64_t nb = (job->n_q + IVF_QB - 1) / IVF_QB;
    const int64_t wave = (int64_t)T * 8;
    for (int64_t w0 = 0; w0 < nb && !st; w0 += wave) {
        const int64_t w1 = w0 + wave < nb ? w0 + wave : nb;
#pragma omp parallel for schedule(dynamic, 1) num_threads(T)
        for (int64_t b = w0; b < w1; b++) {
            omp_set_num_threads(1); /* this thread's BLAS calls run on it alone */
            char *p = ws + per * (size_t)omp_get_thread_num();
#define TAKE(type, count)                                                                                    \
    (type *)p;                                                                                               \
    p += ((sizeof(type) * (size_t)(count) + 63) & ~(size_t)63)
            float *S = TAKE(float, IVF_QB *L);
            ivf_cand *probe = TAKE(ivf_cand, P);
            ivf_cand *heap = TAKE(ivf_cand, cap);
            float *dots = TAKE(float, maxlen);
            float *q32 = TAKE(float, d);
            double *q64 = TAKE(double, d);
            ivf_final *fin = TAKE(ivf_final, cap);
#undef TAKE
            const int64_t r0 = b * IVF_QB, m = job->n_q - r0 < IVF_QB ? job->n_q - r0 : IVF_QB;
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
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)len, (int)d, 1.0f, ix->data + o * d, (int)d,
                                q32, 1, 0.0f, dots, 1);
                    for (int64_t r = 0; r < len; r++) {
                        const int64_t id = ix->ids[o + r];
                        if (id == self)
                            continue;
                        float key = ip || cosine ? -dots[r] : ix->norms[o + r] - 2 * dots[r];
                        ivf_heap_push(heap, &nh, cap, (ivf_cand){key, id, o + r});
                    }
                }
                for (int64_t c = 0; c < nh; c++)
                    fin[c] = (ivf_final){exact_dist(ix, q64, ix->data + heap[c].row * d), heap[c].id};
                qsort(fin, (size_t)nh, sizeof *fin, ip ? ivf_cmp_desc : ivf_cmp_asc);
                double *od = job->dist + (r0 + i) * k;
                int64_t *oi = job->idx + (r0 + i) * k;
                for (int64_t c = 0; c < k; c++) {
                    od[c] = c < nh ? fin[c].dist : ip ? -INFINITY : INFINITY;
                    oi[c] = c < nh ? fin[c].id : -1;
                }
            }
        }
        st = fli_progress(ctx, "ivf_flat.search", w1 * IVF_QB < job->n_q ? w1 * IVF_QB : job->n_q, job->n_q);
    }
    fli_free(ctx, cn);
    fli_free(ctx, ws);
    return st;
}
