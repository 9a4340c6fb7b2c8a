/*
 * route.c — routing rules, one per primitive: (hardware, shape, dtype,
 * parameters) -> (backend, variant, reason). Pure C with no side effects:
 * execution and the cost model call the same function, so an estimate
 * always describes what would really run, and `flashlib route` prints the
 * rule that fired.
 */
#include <math.h>
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
        /* the shape serves as the graph's rows and as the queries; the
         * entry nodes are ~sqrt(n) (algo/cagra.c) */
        const int64_t deg = fli_param_int(params, "graph_degree") < n_samples - 1
                                ? fli_param_int(params, "graph_degree")
                                : (n_samples > 1 ? n_samples - 1 : 1);
        const int64_t k = fli_param_int(params, "n_neighbors"), it = fli_param_int(params, "itopk_size");
        const int64_t E = (int64_t)ceil(sqrt((double)n_samples));
        return fli_route_cagra(hw, n_samples, n_features, deg, E, it < k ? k : it,
                               fli_param_int(params, "search_width"), n_samples, 0, out);
    }
    if (a == &fli_algo_ivf_pq) {
        const int64_t L = fli_param_word(params, "n_lists") == 0 ? fli_ivf_auto_lists(n_samples)
                                                                 : fli_param_int(params, "n_lists");
        const int64_t P = fli_param_word(params, "n_probes") == 0 ? fli_ivf_auto_probes(L)
                                                                  : fli_param_int(params, "n_probes");
        const int64_t M = fli_param_word(params, "pq_dim") == 0 ? fli_ivf_auto_pq_dim(n_features)
                                                                : fli_param_int(params, "pq_dim");
        const int64_t k = fli_param_int(params, "n_neighbors");
        const double refine = fli_param_float(params, "refine");
        const int64_t pool = refine > 1 ? (int64_t)ceil(refine * (double)k) : k;
        return fli_route_ivf_pq(hw, n_samples, L, P, n_samples, n_features, M,
                                (int64_t)1 << fli_param_int(params, "pq_bits"), pool, 0, out);
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
