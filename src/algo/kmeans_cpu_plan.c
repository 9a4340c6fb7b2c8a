/*
 * kmeans_cpu_plan.c — host bytes of the CPU KMeans fit (see .h).
 *
 * Allocation order in the fit, which decides the peak:
 *   driver   (kmeans.c) model attributes, centres staging, init array copy
 *   resident (kmeans_fit) cosine copy of X, row norms, centres, best centres,
 *            labels, best labels, two traces
 *   ws       (assign_ws_alloc, accumulate = 1) distance blocks, partial
 *            objectives, transposed centres, base scores, block winners,
 *            centre sums, cluster weights
 *   then, for each of the n_init runs, one after the other:
 *   init     k-means++: closest, weights, block sums, candidates, candidate
 *            norms, candidate distances, potentials, ids; random: indexes
 *   lloyd    new centres, centre norms, distances, previous labels and the
 *            relocation list (k entries, allocated whether or not one empties)
 * init is freed before lloyd allocates, so the peak is
 *   driver + resident + ws + max(init, lloyd).
 * fli_malloc turns a 0-byte request into 1 byte; every size below is > 0
 * for valid input, so that rule never applies here.
 */
#include "algo/kmeans_cpu_plan.h"

#include <string.h>

/* Overflow-checked byte arithmetic: once `bad` is set every result is 0. */
typedef struct bytes_acc {
    int bad;
} bytes_acc;

static size_t mul3(bytes_acc *a, int64_t x, int64_t y, int64_t z)
{
    size_t r;
    if (x < 0 || y < 0 || z < 0 || __builtin_mul_overflow((size_t)x, (size_t)y, &r) ||
        __builtin_mul_overflow(r, (size_t)z, &r)) {
        a->bad = 1;
        return 0;
    }
    return r;
}

static size_t add(bytes_acc *a, size_t x, size_t y)
{
    size_t r;
    if (__builtin_add_overflow(x, y, &r)) {
        a->bad = 1;
        return 0;
    }
    return r;
}

fl_status fli_kmeans_cpu_plan(const fli_kmeans_cpu_call *c, fli_kmeans_cpu_bytes *plan)
{
    if (!c || !plan || c->n < 1 || c->d < 1 || c->k < 1 || c->threads < 1 ||
        (c->dtype != FL_DTYPE_F32 && c->dtype != FL_DTYPE_F64))
        return FL_STATUS_INVALID_ARG;
    const int64_t n = c->n, d = c->d, k = c->k, nt = c->threads;
    const int64_t es = c->dtype == FL_DTYPE_F64 ? 8 : 4;
    bytes_acc a = {0};
    fli_kmeans_cpu_bytes p;
    memset(&p, 0, sizeof p);

    /* kmeans.c: fl_model_fit's attributes (km_fit), fl_kmeans_fit's staging
     * copy, kmeans_run's init array in the data's precision (CPU path). */
    if (c->via_model) {
        p.driver_bytes = add(&a, p.driver_bytes, mul3(&a, k, d, es)); /* cluster_centers_ */
        p.driver_bytes = add(&a, p.driver_bytes, mul3(&a, n, 1, 4));  /* labels_          */
        p.driver_bytes = add(&a, p.driver_bytes, 3 * 8);              /* inertia_, n_iter_, n_features_in_ */
    } else if (c->staged_centers) {
        p.driver_bytes = add(&a, p.driver_bytes, mul3(&a, k, d, es));
    }
    if (c->init == FLI_KM_INIT_ARRAY)
        p.driver_bytes = add(&a, p.driver_bytes, mul3(&a, k, d, es));

    /* kmeans_fit: buffers for the whole fit. */
    if (c->metric == FLI_METRIC_COSINE)
        p.resident_bytes = add(&a, p.resident_bytes, mul3(&a, n, d, es));
    p.resident_bytes = add(&a, p.resident_bytes, mul3(&a, n, 1, es));     /* row norms    */
    p.resident_bytes = add(&a, p.resident_bytes, mul3(&a, 2 * k, d, es)); /* C, best_C    */
    p.resident_bytes = add(&a, p.resident_bytes, mul3(&a, 2 * n, 1, 4));  /* lab, best_lab */
    if (c->trace_cap > 0)
        p.resident_bytes = add(&a, p.resident_bytes, mul3(&a, 2 * c->trace_cap, 1, 8));

    /* assign_ws_alloc(accumulate = 1). */
    p.workspace_bytes = add(&a, p.workspace_bytes, mul3(&a, nt * FLI_KM_CPU_CHUNK, k, es)); /* dots  */
    p.workspace_bytes = add(&a, p.workspace_bytes, mul3(&a, nt, 1, 8));                     /* obj   */
    p.workspace_bytes = add(&a, p.workspace_bytes, mul3(&a, FLI_KM_CPU_SMALL_K, d, es));    /* ct    */
    p.workspace_bytes = add(&a, p.workspace_bytes, mul3(&a, FLI_KM_CPU_SMALL_K, 1, es));    /* base  */
    p.workspace_bytes = add(&a, p.workspace_bytes, mul3(&a, nt * FLI_KM_CPU_CHUNK, 1, 4));  /* sbest */
    p.workspace_bytes = add(&a, p.workspace_bytes, mul3(&a, nt * k, d, 8));                 /* sums  */
    p.workspace_bytes = add(&a, p.workspace_bytes, mul3(&a, nt, k, 8));                     /* wsum  */

    /* Initialisation scratch. */
    if (c->init == FLI_KM_INIT_KMEANSPP) {
        const int64_t L = c->n_local_trials < 1 ? 1 : c->n_local_trials;
        const int64_t nb = (n + FLI_KM_CPU_PP_BLOCK - 1) / FLI_KM_CPU_PP_BLOCK;
        p.init_bytes = add(&a, p.init_bytes, mul3(&a, 2 * n, 1, 8)); /* closest, wd */
        p.init_bytes = add(&a, p.init_bytes, mul3(&a, nb, 1, 8));    /* bsum        */
        p.init_bytes = add(&a, p.init_bytes, mul3(&a, L, d, es));    /* cand        */
        p.init_bytes = add(&a, p.init_bytes, mul3(&a, L, 1, es));    /* cn          */
        p.init_bytes = add(&a, p.init_bytes, mul3(&a, n, L, es));    /* dist        */
        p.init_bytes = add(&a, p.init_bytes, mul3(&a, nt, L, 8));    /* pots        */
        p.init_bytes = add(&a, p.init_bytes, mul3(&a, L, 1, 8));     /* ids         */
    } else if (c->init == FLI_KM_INIT_RANDOM) {
        p.init_bytes = mul3(&a, n, 1, 8); /* idx */
    }

    /* One Lloyd run. */
    p.lloyd_bytes = add(&a, p.lloyd_bytes, mul3(&a, k, d, es)); /* C2   */
    p.lloyd_bytes = add(&a, p.lloyd_bytes, mul3(&a, k, 1, es)); /* cn   */
    p.lloyd_bytes = add(&a, p.lloyd_bytes, mul3(&a, n, 1, es)); /* mind */
    p.lloyd_bytes = add(&a, p.lloyd_bytes, mul3(&a, n, 1, 4));  /* old  */
    p.lloyd_bytes = add(&a, p.lloyd_bytes, mul3(&a, k, 1, 8));  /* far  */

    const size_t base = add(&a, add(&a, p.driver_bytes, p.resident_bytes), p.workspace_bytes);
    p.peak_bytes = add(&a, base, p.init_bytes > p.lloyd_bytes ? p.init_bytes : p.lloyd_bytes);
    p.peak_max_bytes = p.peak_bytes; /* the relocation list is part of every run now */
    if (a.bad)
        return FL_STATUS_INVALID_ARG;
    *plan = p;
    return FL_STATUS_OK;
}
