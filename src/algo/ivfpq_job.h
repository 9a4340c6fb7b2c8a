/*
 * ivfpq_job.h — an IVF-PQ index and a search of it as a backend sees them
 * (algo/ivf_pq.c builds them). Plain C, no CUDA types.
 *
 * Every stored row is one byte per sub-space: the code of its residual
 * from its list's centre (by_residual) or of the row itself, in M
 * sub-spaces of dsub = d / M features with ksub = 2^pq_bits centroids
 * each. Results follow knn_job.h's order; a query whose probed lists hold
 * fewer than k rows is padded with -1 / +inf (-inf for the inner product).
 */
#ifndef FL_IVFPQ_JOB_H
#define FL_IVFPQ_JOB_H

#include "algo/knn_job.h"
#include "flashlib.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fli_ivfpq_index {
    int64_t n_lists, d, n;
    int64_t M, ksub, dsub;
    const float *centers;   /* n_lists x d (cosine: from normalised rows)      */
    const float *codebooks; /* M x ksub x dsub                                  */
    const int64_t *offsets; /* n_lists + 1                                      */
    const int64_t *ids;     /* n original indices, list order                   */
    const uint8_t *codes;   /* n x M                                            */
    const float *data;      /* n x d raw rows in list order, or NULL (no refine) */
    int by_residual;
    fli_knn_metric metric; /* SQEUCLIDEAN, EUCLIDEAN, COSINE or INNER */
} fli_ivfpq_index;

typedef struct fli_ivfpq_search_job {
    fli_ivfpq_index ix;
    const float *q; /* n_q x d, row stride q_ld */
    int64_t n_q, q_ld;
    int64_t k, n_probes;
    int64_t pool;            /* candidates kept per query (>= k); re-ranked
                                exactly when ix.data is set              */
    const int64_t *self_ids; /* query i is stored row self_ids[i] (or NULL) */
    double *dist;            /* outputs, host, n_q x k dense */
    int64_t *idx;
    /* Identity of the index's arrays (the model's generation, never 0; add()
     * makes a new one): the CUDA module keeps the last index it searched on
     * the device and uploads it again only when this key (or a size)
     * changes. 0: no cached copy is kept or used. The CPU ignores it. */
    uint64_t index_key;
} fli_ivfpq_search_job;

#ifdef __cplusplus
}
#endif
#endif
