/*
 * fl_cuda_module.h — the contract between libflashlib (which never links
 * CUDA) and libflashlib_cuda.so (loaded with dlopen on first GPU use).
 *
 * Plain C, no CUDA types: the core includes it too. The module exports one
 * symbol, fli_cuda_module_get(), that returns a table of function pointers.
 * The table's `abi` must equal FLI_CUDA_ABI or the core refuses the module
 * (FL_STATUS_VERSION_MISMATCH), so a stale module is never called.
 *
 * Error convention: every entry returns fl_status and, on error, writes a
 * one-line message into env->err (file:line of the failing CUDA call and
 * what it said). Entries never print, abort or exit.
 */
#ifndef FL_CUDA_MODULE_H
#define FL_CUDA_MODULE_H

#include "algo/cagra_job.h"
#include "algo/decomp_job.h"
#include "algo/ivf_job.h"
#include "algo/ivfpq_job.h"
#include "algo/kmeans_job.h"
#include "algo/knn_job.h"
#include "algo/linalg.h"
#include "flashlib.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FLI_CUDA_ABI 17

/* Per-context state the core hands to every call. The module owns `state`
 * (stream, cuBLAS handle, cached buffers), created by ctx_init and released
 * by ctx_free. */
typedef struct fli_cuda_env {
    int32_t device_id;
    int sm90_enabled; /* Hopper paths allowed (device is 9.0, not disabled) */
    /* Diagnostic switches, read from the environment once, at context
     * creation, by the core (the module never reads the environment):
     * km_rescore 0 turns off the exact re-scoring of near-tied rows in
     * low precision (FL_KM_RESCORE=0, for A/B measurements); km_fused 1
     * allows the opt-in fused E+M kernel (FL_KM_FUSED=1). */
    int km_rescore;
    int km_fused;
    /* CUDA graphs of the Lloyd loop (X resident, not chunked): 0 lets the
     * module choose (one iteration per graph launch with a progress
     * callback, else a few); -1 launches every kernel directly (A/B and
     * module_check's graph-vs-direct case); n >= 1 captures n iterations
     * per graph launch (clamped to max_iter - 1; n > 1 only without a
     * progress callback). The core leaves it 0. km_graph_used is written
     * by every fit: iterations per graph launch it used, 0 for none
     * (diagnostic output for the benchmark and module_check). */
    int km_graph;
    int km_graph_used;
    /* Kernel variants for A/B measurements (bench_kmeans, module_check;
     * the core leaves it 0): bit 0 the M-step computes the objective every
     * iteration (as before it was left out where unused); bit 1 the
     * private-copy M-step leaves it out too; bit 8 the k <= 64 E-step with
     * 64-row warp tiles; bit 9 the tie re-scoring on 2 blocks per SM; bit
     * 10 the general private-copy M-step where d <= 32 would use the
     * lane-per-column one; bit 11 the separate E-step and M-step kernels
     * where the tf32 k <= 64 E-step would take the sums itself (any of
     * bits 0, 1, 8, 10 and 11 keeps them separate); bit 12 the sm90
     * 16-bit E-step waits for both halves' products before folding; bit
     * 14 the M-step sums every row every iteration (no deltas); bit 15
     * the sm90 tf32 E-step with a producer and two consumer warpgroups
     * instead of four folding warpgroups. */
    int km_tune;
    /* The exact kNN's Hopper scan variants for A/B measurements (bench_knn,
     * knn_check; the core leaves it 0): bit 0 database slices priced at
     * 0.1% each instead of 1% (more slices, fuller SM waves); bit 1 the
     * other slices' bounds taken every tile instead of every 16th; bit 4 a
     * query's threshold is its list's last key (32 R-th) instead of its
     * k'-th; bit 6 the other slices' bounds taken every 4th tile instead of
     * every 16th; bit 7 the Hopper scan also for 4-block rows with pools
     * over 64 (tf32 d > 64, k > 32), which route to the portable scan.
     * (Bits 2 and 3 selected the producer warpgroup's layout, removed
     * after its A/B: bench/gpu/KNN_NOTES.md.) */
    int knn_tune;
    /* Host -> device copies of pageable host arrays: 1 goes through the
     * module's pinned staging buffers, filled by host_threads threads while
     * the previous buffer's DMA runs (h2d.cu); 0 copies straight from the
     * pageable memory (FL_H2D_STAGING=0, for A/B measurements). */
    int h2d_staging;
    /* Device memory without a user allocator (dalloc NULL): 0 (default)
     * takes it from the context's stream-ordered pool, which keeps freed
     * blocks for the next call until the context is freed or an
     * allocation would fail (fl_cuda_util.cuh); 1 calls cudaMalloc and
     * cudaFree every time (FL_CUDA_POOL=0, for A/B measurements). */
    int no_pool;
    int host_threads;                  /* the context's host threads (>= 1), refreshed per call */
    const fl_device_allocator *dalloc; /* NULL = cudaMalloc/cudaFree */
    const fl_host_allocator *halloc;   /* host scratch; NULL = malloc/free */
    fl_progress_fn progress;           /* may be NULL */
    void *progress_user;
    char *err;
    size_t err_len;
    void *state;
} fli_cuda_env;

typedef struct fli_cuda_api {
    int abi;
    const char *version; /* FL_VERSION_STRING the module was built with */

    fl_status (*ctx_init)(fli_cuda_env *env);
    void (*ctx_free)(fli_cuda_env *env);

    /* Where a pointer lives: *device_id = -1 for host memory (pageable or
     * pinned), else the CUDA device that owns it. */
    fl_status (*pointer_device)(fli_cuda_env *env, const void *p, int32_t *device_id);
    /* Copies `bytes`; dst_dev/src_dev are -1 for host, else the device. */
    fl_status (*memcpy)(fli_cuda_env *env, void *dst, int32_t dst_dev, const void *src, int32_t src_dev,
                        size_t bytes);

    /* KMeans: the whole fit (all n_init runs) on the device. See
     * algo/kmeans_job.h for the fields and where each buffer lives. */
    fl_status (*kmeans_fit)(fli_cuda_env *env, fli_kmeans_job *job);
    /* Assignment (labels + squared distance / score) or transform. */
    fl_status (*kmeans_assign)(fli_cuda_env *env, fli_kmeans_assign_job *job);

    /* PCA covariance_eigh: means, centred scatter, eigh (algo/decomp_job.h). */
    fl_status (*pca_cov)(fli_cuda_env *env, fli_pca_cov_job *job);
    /* A fitted decomposition's transform / inverse_transform, float32, in
     * and out on the host or the device (in_dev / out_dev). */
    fl_status (*decomp_apply)(fli_cuda_env *env, const fli_decomp_apply_job *job);

    /* Exact k-nearest-neighbour search (algo/knn_job.h): float32 database
     * and queries on the host or the device, outputs where out_dev says. */
    fl_status (*knn_search)(fli_cuda_env *env, fli_knn_job *job);

    /* IVF-Flat search (algo/ivf_job.h): float32 index and queries on the
     * host, outputs on the host. The index's lists stay on the device
     * between calls, keyed by job->index_key; ctx_free releases them. */
    fl_status (*ivf_search)(fli_cuda_env *env, const fli_ivf_search_job *job);

    /* ---- approximate-index searches beside IVF-Flat's ---------------- */
    /* IVF-PQ search (algo/ivfpq_job.h): index and queries on the host,
     * outputs on the host; the codes, codebooks and raw rows stay on the
     * device between calls, keyed by job->index_key; ctx_free releases
     * them. */
    fl_status (*ivfpq_search)(fli_cuda_env *env, const fli_ivfpq_search_job *job);
    /* CAGRA search (algo/cagra_job.h): graph, rows and queries on the
     * host, outputs on the host; the graph and rows stay on the device
     * between calls, keyed by job->index_key; ctx_free releases them. */
    fl_status (*cagra_search)(fli_cuda_env *env, const fli_cagra_search_job *job);
    /* ---- end of the approximate-index searches ----------------------- */

    /* Dense linear algebra (algo/linalg.h): fills *la with the module's
     * implementation of the fli_la operations on the context's GPU, for
     * matrices of dtype dt (F32 or F64), on the context's stream; la->err
     * is set by the caller. Nothing to release: the cuBLAS/cuSOLVER
     * handles live in the context's state. */
    fl_status (*la_open)(fli_cuda_env *env, fl_dtype dt, fli_la *la);

    /* Returns the device memory the context keeps between calls: the
     * cached device copies (indexes, database, PCA and linear-algebra
     * buffers) and the buffer pool's free blocks. The context stays
     * usable; the next call allocates and copies again. */
    void (*release_memory)(fli_cuda_env *env);
} fli_cuda_api;

typedef const fli_cuda_api *(*fli_cuda_module_get_fn)(void);
#define FLI_CUDA_MODULE_SYMBOL "fli_cuda_module_get"

#ifdef __cplusplus
}
#endif
#endif
