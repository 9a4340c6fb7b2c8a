/*
 * cagra.c — the CAGRA graph index: build = an exact kNN graph of the data
 * (flashlib's own exact search: on the GPU when the context has one) with
 * intermediate_graph_degree neighbours, pruned by rank-based detours to
 * graph_degree edges with reverse edges merged in (cagra_cpu.c); search =
 * a best-first walk of the graph keeping itopk_size candidates, the k best
 * re-ranked exactly. itopk_size is the recall knob and may change after
 * the build (fl_model_set_param), as may search_width, max_iterations,
 * n_seeds and n_neighbors.
 *
 * The search goes where route_ivf.c's fli_route_cagra says: the CUDA
 * module's cagra_search (cagra_cuda.cu: the same walk, a thread block per
 * query, the graph kept on the device between searches) for device 'cuda'
 * or batches large enough to pay, else the CPU backend. Both start from
 * the same random nodes, drawn here (seed_nodes).
 */
#include <math.h>
#include <string.h>

#include "algo/cagra_job.h"
#include "algo/cagra_params.h"
#include "algo/ivf_common.h"
#include "backends/cpu/cpu.h"
#include "backends/cuda/fl_cuda_module.h"
#include "core/internal.h"
#include "route/route.h"

static const char *const cagra_attrs[] = {
    "graph_", "data_", "entry_points_", "graph_degree_", "n_features_in_", "n_samples_fit_", NULL};

static fl_status check_params(fl_ctx *ctx, const fl_params *p)
{
    if (fli_param_int(p, "intermediate_graph_degree") < fli_param_int(p, "graph_degree"))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "intermediate_graph_degree=%lld: must be >= graph_degree=%lld",
                        (long long)fli_param_int(p, "intermediate_graph_degree"),
                        (long long)fli_param_int(p, "graph_degree"));
    return FL_STATUS_OK;
}

static fl_status cagra_fit(fl_model *m, const fl_array *X, const fl_array *y, const fl_array *w,
                           fli_attr_set *out)
{
    fl_ctx *ctx = m->ctx;
    const fl_params *p = m->params;
    (void)y;
    fl_status st = fli_ann_fit_checks(m, X, w);
    if (st)
        return st;
    const int64_t n = X->rows, d = X->cols;
    if (n < 2)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "CAGRA needs at least 2 samples to build a graph (got 1)");
    if (n > 2147483647)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "CAGRA stores 32-bit node ids: n_samples=%lld is too many", (long long)n);
    /* degrees clamp to the data: a node has n - 1 others */
    int64_t K = fli_param_int(p, "intermediate_graph_degree"), deg = fli_param_int(p, "graph_degree");
    K = K > n - 1 ? n - 1 : K;
    deg = deg > K ? K : deg;
    const fli_knn_metric metric = fli_ann_metric(p);
    float *x = fli_ivf_rows_f32(ctx, X, metric == FLI_KNN_COSINE, &st);
    int64_t *knn = x ? fli_malloc(ctx, sizeof(int64_t) * (size_t)(n * K), "CAGRA kNN graph") : NULL;
    if (x && !knn)
        st = FL_STATUS_OUT_OF_MEMORY;
    if (!st) {
        /* the exact kNN graph, each node left out of its own list */
        fl_params *kp = NULL;
        st = fl_params_create(ctx, "knn", &kp);
        if (!st)
            st = fl_params_set(ctx, kp, "metric", metric == FLI_KNN_INNER ? "inner_product" : "sqeuclidean");
        if (!st) {
            fl_array Xa = fl_array_host(x, FL_DTYPE_F32, n, d), Ia = fl_array_host(knn, FL_DTYPE_I64, n, K);
            fli_log(ctx, FL_LOG_INFO, "cagra: exact kNN graph of %lld x %lld, %lld neighbours", (long long)n,
                    (long long)d, (long long)K);
            st = fl_knn_search(ctx, &Xa, NULL, K, kp, NULL, &Ia);
        }
        fl_params_free(kp);
    }
    /* entry nodes: the node nearest to each of ~sqrt(n) k-means centres */
    const int64_t E = (int64_t)ceil(sqrt((double)n)) < n ? (int64_t)ceil(sqrt((double)n)) : n;
    float *ec = !st ? fli_malloc(ctx, sizeof(float) * (size_t)(E * d), "CAGRA entry centres") : NULL;
    int64_t *enode = !st ? fli_malloc(ctx, sizeof(int64_t) * (size_t)E, "CAGRA entry nodes") : NULL;
    if (!st && (!ec || !enode))
        st = FL_STATUS_OUT_OF_MEMORY;
    if (!st)
        st = fli_ivf_kmeans(ctx, x, n, d, n < 256 * E ? n : 256 * E, E, 10, fli_ann_seed(ctx, p), "k-means++",
                            ec);
    if (!st)
        st = fli_ivf_assign(ctx, x, n, d, ec, E, enode); /* nearest node of each centre */
    void *g = NULL, *data = NULL, *ent = NULL, *gd = NULL, *nf = NULL, *ns = NULL;
    if (!st && !(st = fli_attr_add(ctx, out, "entry_points_", FL_DTYPE_I32, E, 1, &ent)))
        for (int64_t i = 0; i < E; i++)
            ((int32_t *)ent)[i] = (int32_t)enode[i];
    fli_free(ctx, ec);
    fli_free(ctx, enode);
    if (!st && !(st = fli_attr_add(ctx, out, "graph_", FL_DTYPE_I32, n, deg, &g)) &&
        !(st = fli_attr_add(ctx, out, "data_", FL_DTYPE_F32, n, d, &data)) &&
        !(st = fli_attr_add(ctx, out, "graph_degree_", FL_DTYPE_I64, 1, 1, &gd)) &&
        !(st = fli_attr_add(ctx, out, "n_features_in_", FL_DTYPE_I64, 1, 1, &nf)))
        st = fli_attr_add(ctx, out, "n_samples_fit_", FL_DTYPE_I64, 1, 1, &ns);
    if (!st)
        st = fli_cpu_cagra_prune(ctx, knn, n, K, deg, g);
    if (!st) {
        memcpy(data, x, sizeof(float) * (size_t)(n * d));
        *(int64_t *)gd = deg, *(int64_t *)nf = d, *(int64_t *)ns = n;
    }
    fli_free(ctx, knn);
    fli_free(ctx, x);
    return st;
}

/* Each query's n_seeds random starting nodes (n_q x n_seeds), the draws
 * cagra_cpu.c makes when it is given none: one stream per query seeded
 * from the search seed and the query's number. */
static int32_t *seed_nodes(fl_ctx *ctx, uint64_t seed, int64_t n_q, int64_t n_seeds, int64_t n)
{
    int32_t *s = fli_malloc(ctx, sizeof(int32_t) * (size_t)(n_q * n_seeds > 0 ? n_q * n_seeds : 1),
                            "CAGRA starting nodes");
    if (!s)
        return NULL;
    for (int64_t qi = 0; qi < n_q; qi++) {
        fli_rng r;
        fli_rng_seed(&r, seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(qi + 1)));
        for (int64_t j = 0; j < n_seeds; j++)
            s[qi * n_seeds + j] = (int32_t)fli_rng_below(&r, n);
    }
    return s;
}

static fl_status cagra_kneighbors(fl_model *m, const fl_array *X, int64_t k, fl_array *D, fl_array *I)
{
    fl_ctx *ctx = m->ctx;
    const fl_params *p = m->params;
    const fli_attr *g = fli_model_attr(m, "graph_"), *data = fli_model_attr(m, "data_"),
                   *ent = fli_model_attr(m, "entry_points_");
    const fli_cagra_index ix = {.n = data->rows,
                                .d = data->cols,
                                .degree = g->cols,
                                .data = data->data,
                                .graph = g->data,
                                .entries = ent->data,
                                .n_entries = ent->rows,
                                .metric = fli_ann_metric(p)};
    const int self = X == NULL;
    int64_t n_q;
    fl_status st = fli_ann_check_query(ctx, "CAGRA", X, ix.d, ix.n, k, D, I, &n_q);
    if (st)
        return st;
    const int64_t itopk = fli_param_int(p, "itopk_size") < k ? k : fli_param_int(p, "itopk_size");
    const int64_t width = fli_param_int(p, "search_width"), n_seeds = fli_param_int(p, "n_seeds");
    const uint64_t seed = fli_ann_seed(ctx, p);
    /* the backend: device 'cuda' without a usable GPU fails here, saying why */
    fl_hw_props hw;
    int gpu = 0;
    if ((st = fli_ctx_gpu(ctx, &hw, &gpu)) != FL_STATUS_OK)
        return st;
    fl_route r;
    fli_route_cagra(gpu ? &hw : NULL, ix.n, ix.d, ix.degree, ix.n_entries, itopk, width, n_q,
                    ctx->kind == FLI_DEVICE_CUDA, &r);
    fli_log(ctx, FL_LOG_INFO, "cagra search: %lld queries, k=%lld, itopk %lld, width %lld: %s (%s)",
            (long long)n_q, (long long)k, (long long)itopk, (long long)width, fl_backend_name(r.backend),
            r.reason);
    const fli_cuda_api *api = NULL;
    fli_cuda_env *env = NULL;
    if (r.backend != FL_BACKEND_CPU && (st = fli_cuda_acquire(ctx, &api, &env)) != FL_STATUS_OK)
        return st;
    float *q = self ? NULL : fli_ivf_rows_f32(ctx, X, 0, &st);
    int32_t *seeds = st ? NULL : seed_nodes(ctx, seed, n_q, n_seeds, ix.n);
    int64_t *self_ids = self ? fli_malloc(ctx, sizeof(int64_t) * (size_t)n_q, "CAGRA self indices") : NULL;
    double *dist = fli_malloc(ctx, sizeof(double) * (size_t)(n_q * k), "CAGRA distances");
    int64_t *idx = fli_malloc(ctx, sizeof(int64_t) * (size_t)(n_q * k), "CAGRA indices");
    if (!st && ((!self && !q) || (self && !self_ids) || !seeds || !dist || !idx))
        st = FL_STATUS_OUT_OF_MEMORY;
    if (!st) {
        if (self)
            for (int64_t i = 0; i < n_q; i++)
                self_ids[i] = i;
        const fli_cagra_search_job job = {.ix = ix,
                                          .q = self ? ix.data : q,
                                          .n_q = n_q,
                                          .q_ld = ix.d,
                                          .k = k,
                                          .itopk = itopk,
                                          .width = width,
                                          .max_iter = fli_param_int(p, "max_iterations"),
                                          .n_seeds = n_seeds,
                                          .seed = seed,
                                          .seed_nodes = seeds,
                                          .self_ids = self_ids,
                                          .dist = dist,
                                          .idx = idx,
                                          .index_key = m->generation};
        st = api ? api->cagra_search(env, &job) : fli_cpu_cagra_search(ctx, &job);
    }
    if (!st)
        st = fli_ivf_put_result(ctx, dist, idx, n_q, k, D, I);
    fli_free(ctx, q);
    fli_free(ctx, seeds);
    fli_free(ctx, self_ids);
    fli_free(ctx, dist);
    fli_free(ctx, idx);
    return st;
}

static fl_status cagra_check_attrs(fl_ctx *ctx, const fl_params *p, const fli_attr_set *set)
{
    const fli_attr *en = fli_attr_find(set, "entry_points_");
    if (!en || en->dtype != FL_DTYPE_I32 || en->cols != 1 || en->rows < 1)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "CAGRA model: missing or mistyped entry points");
    const fli_attr *g = fli_attr_find(set, "graph_"), *x = fli_attr_find(set, "data_"),
                   *gd = fli_attr_find(set, "graph_degree_"), *nf = fli_attr_find(set, "n_features_in_"),
                   *ns = fli_attr_find(set, "n_samples_fit_");
    if (!g || !x || !gd || !nf || !ns || g->dtype != FL_DTYPE_I32 || x->dtype != FL_DTYPE_F32 ||
        gd->dtype != FL_DTYPE_I64 || nf->dtype != FL_DTYPE_I64 || ns->dtype != FL_DTYPE_I64)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "CAGRA model: missing or mistyped attributes");
    const int64_t n = x->rows;
    if (g->rows != n || n < 2 || g->cols < 1 || *(const int64_t *)gd->data != g->cols ||
        *(const int64_t *)nf->data != x->cols || *(const int64_t *)ns->data != n)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "CAGRA model: inconsistent shapes");
    const int32_t *e = g->data;
    for (int64_t i = 0; i < n * g->cols; i++)
        if (e[i] < -1 || e[i] >= n)
            return fli_fail(ctx, FL_STATUS_CORRUPT, "CAGRA model: an edge points outside the graph");
    const int32_t *ep = en->data;
    for (int64_t i = 0; i < en->rows; i++)
        if (ep[i] < 0 || ep[i] >= n)
            return fli_fail(ctx, FL_STATUS_CORRUPT, "CAGRA model: an entry point is outside the graph");
    (void)p;
    return FL_STATUS_OK;
}

static const char *const search_params[] = {"itopk_size",  "search_width", "max_iterations", "n_seeds",
                                            "n_neighbors", "random_state", "verbose",        NULL};

const fli_algo fli_algo_cagra = {
    .name = "cagra",
    .params = fli_cagra_params,
    .n_params = FLI_CAGRA_N_PARAMS,
    .attr_names = cagra_attrs,
    .check_params = check_params,
    .fit = cagra_fit,
    .check_attrs = cagra_check_attrs,
    .kneighbors = cagra_kneighbors,
    .search_params = search_params,
};
