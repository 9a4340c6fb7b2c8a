/*
 * ivf_job.h — an IVF-Flat search as a backend sees it: the index's arrays
 * (float32, lists stored contiguously) and a block of float32 queries, after
 * the algo layer (algo/ivf_flat.c) validated everything. Plain C, no CUDA
 * types, so a CUDA backend can take the same job.
 *
 * Results follow knn_job.h's order (nearest first, ties by ascending index;
 * inner product largest first). A query whose probed lists hold fewer than k
 * rows gets its row padded with index -1 and distance +inf (-inf for the
 * inner product).
 */
#ifndef FL_IVF_JOB_H
#define FL_IVF_JOB_H

#include "algo/knn_job.h"
#include "flashlib.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fli_ivf_index {
    int64_t n_lists, d, n;
    const float *centers;   /* n_lists x d                                       */
    const int64_t *offsets; /* n_lists + 1: list l is rows offsets[l]..[l+1]     */
    const int64_t *ids;     /* n: the original index of each stored row          */
    const float *data;      /* n x d in list order (cosine: rows normalised)     */
    const float *norms;     /* n squared norms of the stored rows                */
    fli_knn_metric metric;  /* SQEUCLIDEAN, EUCLIDEAN, COSINE or INNER          */
} fli_ivf_index;

typedef struct fli_ivf_search_job {
    fli_ivf_index ix;
    const float *q; /* n_q x d, row stride q_ld (cosine: not normalised) */
    int64_t n_q, q_ld;
    int64_t k, n_probes;
    /* query i is the stored row with original index self_ids[i] (NULL: no
     * exclusion); that row is never returned for it */
    const int64_t *self_ids;
    /* outputs, host, n_q x k dense */
    double *dist;
    int64_t *idx;
    /* Identity of the index's arrays (the model's generation, never 0): the
     * CUDA module keeps the lists of the last index it searched on the
     * device and uploads them again only when this key (or a size) changes.
     * 0: no cached copy is kept or used. The CPU ignores it. */
    uint64_t index_key;
} fli_ivf_search_job;

#ifdef __cplusplus
}
#endif
#endif
