/*
 * kmeans_cpu_plan.h — the host-memory plan of the CPU KMeans fit.
 *
 * Pure C (libc only): the cost model links it without the CPU backend. It
 * mirrors, buffer by buffer, what src/backends/cpu/kmeans_cpu_impl.inc and
 * the driver in src/algo/kmeans.c allocate through the context's host
 * allocator, so peak_bytes is the peak of live bytes that allocator sees
 * during a fit. tests/c/test_info.c checks the equality with a counting
 * allocator; when the CPU backend changes what it allocates, that test
 * fails until this file follows.
 */
#ifndef FL_KMEANS_CPU_PLAN_H
#define FL_KMEANS_CPU_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "algo/kmeans_job.h"
#include "flashlib.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Constants of the CPU kernels (kmeans_cpu.c defines the same values as
 * CHUNK and SMALL_K; kmeans_cpu.c should take them from here). */
#define FLI_KM_CPU_CHUNK 256     /* rows per assignment block                 */
#define FLI_KM_CPU_SMALL_K 32    /* centres up to which no BLAS is used       */
#define FLI_KM_CPU_PP_BLOCK 4096 /* rows per k-means++ prefix-sum block      */

/* How the fit is called. */
typedef struct fli_kmeans_cpu_call {
    int64_t n, d, k;
    fl_dtype dtype; /* F32 or F64                                      */
    int threads;    /* the backend's thread count (>= 1)               */
    fli_kmeans_init init;
    int64_t n_local_trials; /* k-means++ candidates (resolved, >= 1)           */
    fli_metric metric;
    int64_t trace_cap;  /* > 0: an inertia trace is kept (test hook)       */
    int via_model;      /* 1: fl_model_fit (the fitted attributes are
                           allocated before the fit and stay)              */
    int staged_centers; /* 1: fl_kmeans_fit with strided centres: a dense
                           staging copy                                     */
} fli_kmeans_cpu_call;

typedef struct fli_kmeans_cpu_bytes {
    size_t peak_bytes;      /* peak live host bytes when no cluster empties   */
    size_t peak_max_bytes;  /* the peak when update_centers relocates empty
                               clusters (a list of up to k int64; data-dependent) */
    size_t driver_bytes;    /* kmeans.c: init array copy, centres staging,
                               model attributes                                 */
    size_t resident_bytes;  /* the fit's buffers alive for all n_init runs     */
    size_t workspace_bytes; /* per-thread assignment workspace                 */
    size_t init_bytes;      /* scratch of the initialisation (freed before Lloyd) */
    size_t lloyd_bytes;     /* scratch of one Lloyd run                         */
} fli_kmeans_cpu_bytes;

/* Plans the fit. FL_STATUS_INVALID_ARG for sizes < 1, an unknown dtype, or
 * byte counts that overflow size_t. Pure function. */
fl_status fli_kmeans_cpu_plan(const fli_kmeans_cpu_call *call, fli_kmeans_cpu_bytes *plan);

#ifdef __cplusplus
}
#endif
#endif
