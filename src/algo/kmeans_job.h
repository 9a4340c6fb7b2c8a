/*
 * kmeans_job.h — one KMeans request as the backends see it, after the algo
 * layer validated the arrays and parameters and routing chose the backend.
 *
 * Shared by the CPU backend and the CUDA module (plain C, no CUDA types).
 * Buffers tagged *_dev live on the host when the tag is -1, else on that
 * CUDA device. Outputs are written only when the call succeeds.
 */
#ifndef FL_KMEANS_JOB_H
#define FL_KMEANS_JOB_H

#include "flashlib.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fli_kmeans_init {
    FLI_KM_INIT_KMEANSPP = 0, /* greedy k-means++, 2 + floor(ln k) trials */
    FLI_KM_INIT_RANDOM = 1,   /* k distinct rows drawn uniformly */
    FLI_KM_INIT_ARRAY = 2,    /* init_centers given by the caller */
} fli_kmeans_init;

typedef enum fli_metric {
    FLI_METRIC_EUCLIDEAN = 0, /* argmin ||x - c||^2; means as centres               */
    FLI_METRIC_COSINE = 1,    /* rows and centres L2-normalised (spherical k-means) */
    FLI_METRIC_DOT = 2,       /* argmax <x, c>; means as centres                    */
} fli_metric;

typedef enum fli_precision {
    FLI_PREC_FP32 = 0, /* exact fp32 (SIMT FMA)                          */
    FLI_PREC_TF32 = 1, /* tensor cores, tf32 inputs, fp32 accumulation   */
    FLI_PREC_BF16 = 2, /* tensor cores, bf16 inputs, fp32 accumulation   */
    FLI_PREC_FP16 = 3, /* tensor cores, fp16 inputs, fp32 accumulation   */
    FLI_PREC_F64 = 4,  /* float64 data on the CPU                         */
} fli_precision;

typedef struct fli_kmeans_job {
    /* data */
    const void *X;  /* n x d, row stride ld (elements)       */
    fl_dtype dtype; /* F32 or F64 (GPU: F32 only)             */
    int32_t x_dev;  /* -1 host, else CUDA device              */
    int64_t n, d, ld;
    const void *weights; /* n values of dtype, >= 0, same space as X; NULL = all 1 */

    /* parameters (validated) */
    int64_t k;
    fli_kmeans_init init;
    const void *init_centers; /* host, k x d dense, dtype; for FLI_KM_INIT_ARRAY */
    int64_t n_init;           /* resolved: 'auto' already turned into 1 or 10 */
    int64_t max_iter;
    double tol; /* scikit-learn's relative tol; the backend scales
                   it by the mean per-feature variance of X       */
    fli_metric metric;
    fli_precision precision;
    fl_backend backend;     /* CUDA or CUDA_SM90 for the module */
    uint64_t seed;          /* run r of n_init uses seed + r (see kmeans.c) */
    int64_t n_local_trials; /* k-means++ candidates per step (>= 1) */
    int64_t chunk_rows;     /* GPU: rows of X resident at once (0 = all) */
    int deterministic;      /* CPU: fixed reduction order regardless of threads */

    /* outputs */
    void *centers; /* k x d dense, dtype */
    int32_t centers_dev;
    int32_t *labels; /* n, may be NULL */
    int32_t labels_dev;
    double inertia;        /* weighted objective: euclidean sum w*||x-c||^2;
                              cosine sum w*(1 - cos(x, c)); dot -sum w*<x,c> */
    int64_t n_iter;        /* Lloyd iterations of the best run */
    int64_t stat_rescored; /* GPU, low precision: row assignments the near-tie
                              test sent to exact re-scoring, of stat_rows */
    int64_t stat_rows;
    double *inertia_trace; /* optional host buffer: objective at the start of
                              each iteration of the best run             */
    int64_t trace_cap;
    int64_t trace_len;
} fli_kmeans_job;

/* Assign points to given centres: labels and/or the n x k transform. */
typedef struct fli_kmeans_assign_job {
    const void *X;
    fl_dtype dtype;
    int32_t x_dev;
    int64_t n, d, ld;
    const void *weights; /* for inertia; NULL = all 1 */
    const void *centers; /* k x d dense, dtype */
    int32_t centers_dev;
    int64_t k;
    fli_metric metric;
    fli_precision precision;
    fl_backend backend;

    int32_t *labels; /* n, may be NULL */
    void *transform; /* n x k, row stride transform_ld, dtype; may be NULL:
                        euclidean distances (not squared), as scikit-learn;
                        cosine: 1 - cos; dot: -<x, c>                     */
    int64_t transform_ld;
    int32_t out_dev; /* where labels and transform live */
    double inertia;  /* output: objective of the assignment */
} fli_kmeans_assign_job;

#ifdef __cplusplus
}
#endif
#endif
