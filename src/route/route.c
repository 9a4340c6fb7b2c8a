/*
 * route.c — routing rules, one per primitive: (hardware, shape, dtype,
 * parameters) -> (backend, variant, reason). Pure C with no side effects:
 * execution and the cost model call the same function, so an estimate
 * always describes what would really run, and `flashlib route` prints the
 * rule that fired.
 */
#include <string.h>

#include "algo/ivf_params.h"
#include "algo/knn_params.h"
#include "core/internal.h"
#include "route/route.h"

fl_status fl_route_query(fl_ctx *ctx, const char *algo, const fl_hw_props *hw, int64_t n_samples,
                         int64_t n_features, fl_dtype dtype, const fl_params *params, fl_route *out)
{
    if (!out)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "route: out is NULL");
    const fli_algo *a = fli_algo_find(algo);
    if (!a)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "route: unknown algorithm '%s' (known: %s)",
                        algo ? algo : "(null)", fli_algo_list());
    if (n_samples < 1 || n_features < 1)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "route: shape %lld x %lld must be positive",
                        (long long)n_samples, (long long)n_features);
    if (dtype != FL_DTYPE_F32 && dtype != FL_DTYPE_F64)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "route: dtype %s: expected f32 or f64",
                        fl_dtype_name(dtype));
    fl_params defaults;
    if (!params) {
        fl_status st = fli_params_init_defaults(ctx, &defaults, a);
        if (st)
            return st;
        params = &defaults;
    }
    if (params->algo != a)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "route: parameters are for '%s'", params->algo->name);
    if (a == &fli_algo_pca || a == &fli_algo_truncated_svd)
        return fli_route_decomp(
            hw, a == &fli_algo_pca, n_samples, n_features, dtype, 0, 0,
            fli_param_word(params, a == &fli_algo_pca ? "svd_solver" : "algorithm"),
            fli_param_word(params, "n_components") == 0 ? -1.0 : fli_param_float(params, "n_components"), out,
            NULL);
    if (a == &fli_algo_knn) {
        /* the shape serves as the database and as the queries */
        const fli_knn_metric m =
            fli_knn_resolve_metric(fli_param_word(params, "metric"), fli_param_float(params, "p"));
        return fli_route_knn(hw, n_samples, n_samples, n_features, dtype,
                             fli_param_int(params, "n_neighbors"), m, fli_param_word(params, "precision"), 0,
                             0, out, NULL);
    }
    if (a == &fli_algo_cagra) {
        out->backend = FL_BACKEND_CPU;
        memcpy(out->variant, "graph", 6);
        fli_join(
            out->reason, sizeof out->reason,
            (const char *const[]){"CAGRA: the exact kNN graph of the build runs where exact kNN would (GPU "
                                  "when in use); pruning and the graph search on the CPU backend (no CUDA "
                                  "search yet)",
                                  NULL});
        return FL_STATUS_OK;
    }
    if (a == &fli_algo_ivf_pq) {
        out->backend = FL_BACKEND_CPU;
        memcpy(out->variant, "pq", 3);
        fli_join(
            out->reason, sizeof out->reason,
            (const char *const[]){"IVF-PQ: the coarse k-means and the codebooks' k-means run where KMeans "
                                  "would (GPU when in use); encoding and the look-up-table search on the "
                                  "CPU backend (no CUDA search yet)",
                                  NULL});
        return FL_STATUS_OK;
    }
    if (a == &fli_algo_ivf_flat) {
        /* the shape serves as the index and as the queries */
        const int64_t L = fli_param_word(params, "n_lists") == 0 ? fli_ivf_auto_lists(n_samples)
                                                                 : fli_param_int(params, "n_lists");
        const int64_t P = fli_param_word(params, "n_probes") == 0 ? fli_ivf_auto_probes(L)
                                                                  : fli_param_int(params, "n_probes");
        return fli_route_ivf_flat(hw, n_samples, L, P, n_samples, n_features,
                                  fli_param_int(params, "n_neighbors"), 0, out);
    }
    return fli_route_kmeans(hw, n_samples, n_features, dtype, fli_param_int(params, "n_clusters"),
                            fli_param_word(params, "precision"), out, NULL);
}
