/*
 * knn_job.h — one exact nearest-neighbour request as a backend sees it, after
 * the algo layer (algo/knn.c) validated the arrays and parameters and routing
 * chose the backend. Plain C, no CUDA types: the CPU backend and the CUDA
 * module take the same job.
 *
 * Order of results, on every backend: nearest first, and equal distances by
 * ascending database index, so a search is deterministic and the CPU and the
 * GPU agree index for index wherever their distances agree. For the inner
 * product "nearest" means largest: distances hold <q, x>, descending.
 *
 * Buffers tagged *_dev live on the host when the tag is -1, else on that CUDA
 * device. Outputs are written only when the call succeeds.
 */
#ifndef FL_KNN_JOB_H
#define FL_KNN_JOB_H

#include "algo/kmeans_job.h"
#include "flashlib.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a backend computes; the algo layer maps scikit-learn's names onto it
 * (minkowski p=2 -> euclidean, p=1 -> manhattan). */
typedef enum fli_knn_metric {
    FLI_KNN_SQEUCLIDEAN = 0, /* ||q - x||^2                                       */
    FLI_KNN_EUCLIDEAN = 1,   /* ||q - x||                                         */
    FLI_KNN_COSINE = 2,      /* 1 - <q,x> / (|q| |x|); a zero row counts as cos 0 */
    FLI_KNN_INNER = 3,       /* <q, x>, largest first                             */
    FLI_KNN_MANHATTAN = 4,   /* sum |q - x|                                       */
    FLI_KNN_MINKOWSKI = 5,   /* (sum |q - x|^p)^(1/p), p >= 1                     */
} fli_knn_metric;

typedef struct fli_knn_job {
    /* database: n_db x d, row stride db_ld (elements) */
    const void *db;
    int32_t db_dev;
    int64_t n_db, d, db_ld;
    /* queries: n_q x d, row stride q_ld, same dtype as db */
    const void *q;
    int32_t q_dev;
    int64_t n_q, q_ld;
    fl_dtype dtype; /* F32 or F64 (the CUDA module: F32 only) */

    int64_t k; /* 1 <= k <= n_db (n_db - 1 with self_exclude) */
    fli_knn_metric metric;
    double p;                /* MINKOWSKI's exponent (>= 1)                  */
    fli_precision precision; /* GPU scan arithmetic (FP32/TF32/BF16/FP16);
                                the returned distances are exact fp32 either
                                way: low-precision scans keep an oversampled
                                candidate pool and re-rank it in fp32; the
                                CPU ignores it                                */
    fl_backend backend;      /* CUDA or CUDA_SM90 for the module             */

    /* The queries are database rows q_offset .. q_offset + n_q - 1 (the
     * training set queried with X=None): query i never returns database
     * index q_offset + i, exactly as scikit-learn drops each point itself. */
    int self_exclude;
    int64_t q_offset;

    /* outputs: n_q x k, row strides dist_ld / idx_ld, in out_dev memory.
     * dist (dtype) may be NULL when only the indices are wanted. */
    void *dist;
    int64_t dist_ld;
    int64_t *idx;
    int64_t idx_ld;
    int32_t out_dev;

    /* statistics a backend may fill (0 when unused): candidates re-ranked in
     * fp32 after a low-precision scan, and database rows streamed from the
     * host because they did not fit on the device. */
    int64_t stat_reranked;
    int64_t stat_streamed_rows;

    /* Device bytes the CUDA module may use for this call (0 = decided from
     * the free memory); tests set it small to force the streamed path. */
    int64_t mem_budget;

    /* Non-zero: the database is a fitted model's training data, unchanged
     * while this key (the model's generation) is. The CUDA module then keeps
     * a device copy of a host database between calls instead of streaming it
     * every time (when it fits beside the search; never under mem_budget). */
    uint64_t db_key;
} fli_knn_job;

/* Fixed-radius search: every database row within `radius` of each query
 * (distance <= radius; for INNER, <q, x> >= radius). Host buffers only; the
 * backend allocates the outputs with plain malloc, as fl_neighbors_free
 * releases them with free() (its scratch goes through the context). Row
 * i's neighbours are indices[indptr[i] .. indptr[i+1]),
 * sorted like kneighbors when `sort` is set, else in database order. */
typedef struct fli_knn_radius_job {
    const void *db;
    int64_t n_db, d, db_ld;
    const void *q;
    int64_t n_q, q_ld;
    fl_dtype dtype;
    fli_knn_metric metric;
    double p;
    double radius;
    int sort;
    int self_exclude;
    int64_t q_offset;

    /* outputs (allocated by the backend on success) */
    int64_t *indptr;  /* n_q + 1 */
    int64_t *indices; /* nnz */
    void *dist;       /* nnz values of dtype */
    int64_t nnz;
} fli_knn_radius_job;

#ifdef __cplusplus
}
#endif
#endif
