/*
 * cagra_job.h — the CAGRA graph index as a backend sees it: float32 rows
 * and a fixed-degree graph over them (algo/cagra.c builds both). Plain C,
 * no CUDA types. Results follow knn_job.h's order; a query that reaches
 * fewer than k nodes is padded with -1 / +inf (-inf for the inner product).
 */
#ifndef FL_CAGRA_JOB_H
#define FL_CAGRA_JOB_H

#include "algo/knn_job.h"
#include "flashlib.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fli_cagra_index {
    int64_t n, d, degree;
    const float *data;    /* n x d (cosine: rows normalised)             */
    const int32_t *graph; /* n x degree neighbour ids (-1: no edge)        */
    /* n_entries nodes spread over the data (the nearest node to each of
     * ~sqrt(n) k-means centres): every search starts from them, so it
     * reaches every cluster even where the graph is not connected */
    const int32_t *entries;
    int64_t n_entries;
    fli_knn_metric metric; /* SQEUCLIDEAN, EUCLIDEAN, COSINE or INNER       */
} fli_cagra_index;

typedef struct fli_cagra_search_job {
    fli_cagra_index ix;
    const float *q; /* n_q x d, row stride q_ld */
    int64_t n_q, q_ld;
    int64_t k, itopk, width, max_iter, n_seeds;
    uint64_t seed;
    /* n_q x n_seeds random starting nodes drawn from `seed` (algo/cagra.c,
     * fli_cagra_seed_nodes), so both backends start from the same nodes;
     * NULL: the CPU draws them itself (the same draws), the GPU refuses */
    const int32_t *seed_nodes;
    const int64_t *self_ids; /* query i is node self_ids[i] (or NULL) */
    double *dist;            /* outputs, host, n_q x k dense */
    int64_t *idx;
    /* Identity of the graph (the model's generation, never 0): the CUDA
     * module keeps the last graph it searched on the device, re-uploaded
     * when this key (or a size) changes; 0: no cached copy. */
    uint64_t index_key;
} fli_cagra_search_job;

#ifdef __cplusplus
}
#endif
#endif
