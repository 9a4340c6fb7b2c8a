/*
 * ivf_flat.c — the IVF-Flat approximate nearest-neighbour index: build
 * (coarse k-means with flashlib's KMeans, every row filed under its nearest
 * centre, lists stored contiguously), add, kneighbors, save/load through
 * the model's attributes.
 *
 * The index stores float32 vectors (cosine: normalised at build), whatever
 * the dtype of the data; distances come back in the dtype of the output
 * array, recomputed exactly for the candidates returned. Only n_probes of
 * the n_lists lists are scanned per query: n_probes is the recall knob.
 * A query whose probed lists hold fewer than k rows gets -1 indices and
 * +inf distances (-inf for the inner product) in the remaining slots.
 *
 * The coarse k-means runs wherever the context sends KMeans (the GPU when
 * one is in use); the list assignment runs on the CPU backend (ivf_cpu.c).
 * The search goes where route_ivf.c says: the CUDA module's ivf_search
 * (ivf_cuda.cu, the same results as the CPU's; it keeps the lists on the
 * device between searches, keyed by the model's generation) for device
 * 'cuda' or batches large enough to pay, else the CPU backend.
 */
#include <math.h>
#include <string.h>

#include "algo/ivf_common.h"
#include "algo/ivf_job.h"
#include "algo/ivf_params.h"
#include "backends/cpu/cpu.h"
#include "backends/cuda/fl_cuda_module.h"
#include "core/internal.h"
#include "route/route.h"

static const char *const ivf_attrs[] = {"cluster_centers_", "list_offsets_",  "list_ids_",
                                        "list_data_",       "list_norms_",    "n_lists_",
                                        "n_features_in_",   "n_samples_fit_", NULL};

/* Files the rows (x: n x d float32, original indices id0 + i) and any rows
 * already in the index (`old`, may be NULL) into a fresh set of list
 * attributes in `out`. */
static fl_status build_lists(fl_ctx *ctx, const fli_ivf_index *old, const float *centers, int64_t L,
                             int64_t d, const float *x, int64_t n, int64_t id0, fli_knn_metric metric,
                             fli_attr_set *out)
{
    const int64_t n_old = old ? old->n : 0, total = n_old + n;
    int64_t *lab = fli_malloc(ctx, sizeof(int64_t) * (size_t)(n ? n : 1), "IVF list of each row");
    if (!lab)
        return FL_STATUS_OUT_OF_MEMORY;
    fl_status st = fli_ivf_assign(ctx, centers, L, d, x, n, lab);
    void *c, *off, *ids, *data, *norms;
    if (!st && !(st = fli_attr_add(ctx, out, "cluster_centers_", FL_DTYPE_F32, L, d, &c)) &&
        !(st = fli_attr_add(ctx, out, "list_offsets_", FL_DTYPE_I64, L + 1, 1, &off)) &&
        !(st = fli_attr_add(ctx, out, "list_ids_", FL_DTYPE_I64, total, 1, &ids)) &&
        !(st = fli_attr_add(ctx, out, "list_data_", FL_DTYPE_F32, total, d, &data)))
        st = fli_attr_add(ctx, out, "list_norms_", FL_DTYPE_F32, total, 1, &norms);
    if (st) {
        fli_free(ctx, lab);
        return st;
    }
    memcpy(c, centers, sizeof(float) * (size_t)(L * d));
    int64_t *o = off;
    memset(o, 0, sizeof(int64_t) * (size_t)(L + 1));
    for (int64_t l = 0; l < L; l++)
        o[l + 1] = (old ? old->offsets[l + 1] - old->offsets[l] : 0);
    for (int64_t i = 0; i < n; i++)
        o[lab[i] + 1]++;
    for (int64_t l = 0; l < L; l++)
        o[l + 1] += o[l];
    /* each list: its old rows first (in their order), then the new ones in
     * row order, so a build is a deterministic function of the data */
    int64_t *fill = lab; /* reuse: per-row destination computed below */
    int64_t *cursor = fli_malloc(ctx, sizeof(int64_t) * (size_t)L, "IVF list cursors");
    if (!cursor) {
        fli_free(ctx, lab);
        return FL_STATUS_OUT_OF_MEMORY;
    }
    float *D = data, *N = norms;
    int64_t *I = ids;
    for (int64_t l = 0; l < L; l++) {
        cursor[l] = o[l];
        if (old) {
            const int64_t a = old->offsets[l], len = old->offsets[l + 1] - a;
            memcpy(D + cursor[l] * d, old->data + a * d, sizeof(float) * (size_t)(len * d));
            memcpy(N + cursor[l], old->norms + a, sizeof(float) * (size_t)len);
            memcpy(I + cursor[l], old->ids + a, sizeof(int64_t) * (size_t)len);
            cursor[l] += len;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t dst = cursor[fill[i]]++;
        double s = 0;
        for (int64_t j = 0; j < d; j++)
            s += (double)x[i * d + j] * x[i * d + j];
        memcpy(D + dst * d, x + i * d, sizeof(float) * (size_t)d);
        N[dst] = (float)s;
        I[dst] = id0 + i;
    }
    fli_free(ctx, cursor);
    fli_free(ctx, lab);
    return FL_STATUS_OK;
}

static fl_status put_scalars(fl_ctx *ctx, fli_attr_set *out, int64_t L, int64_t d, int64_t n)
{
    void *a, *b, *c;
    fl_status st;
    if ((st = fli_attr_add(ctx, out, "n_lists_", FL_DTYPE_I64, 1, 1, &a)) ||
        (st = fli_attr_add(ctx, out, "n_features_in_", FL_DTYPE_I64, 1, 1, &b)) ||
        (st = fli_attr_add(ctx, out, "n_samples_fit_", FL_DTYPE_I64, 1, 1, &c)))
        return st;
    *(int64_t *)a = L, *(int64_t *)b = d, *(int64_t *)c = n;
    return FL_STATUS_OK;
}

static fl_status ivf_fit(fl_model *m, const fl_array *X, const fl_array *y, const fl_array *w,
                         fli_attr_set *out)
{
    fl_ctx *ctx = m->ctx;
    const fl_params *p = m->params;
    (void)y;
    fl_status st = fli_ann_fit_checks(m, X, w);
    if (st)
        return st;
    const int64_t n = X->rows, d = X->cols, L = fli_ivf_lists(p, n);
    if ((st = fli_ivf_check_sizes(ctx, L, fli_ivf_probes(p, L), n)) != FL_STATUS_OK)
        return st;
    const fli_knn_metric metric = fli_ann_metric(p);
    const int64_t m_train = fli_ivf_train_rows(p, n, L);
    float *x = fli_ivf_rows_f32(ctx, X, metric == FLI_KNN_COSINE, &st);
    float *centers = x ? fli_malloc(ctx, sizeof(float) * (size_t)(L * d), "IVF centres") : NULL;
    if (x && !centers)
        st = FL_STATUS_OUT_OF_MEMORY;
    if (!st) {
        fli_log(ctx, FL_LOG_INFO, "ivf_flat: coarse k-means, %lld lists on %lld of %lld rows", (long long)L,
                (long long)m_train, (long long)n);
        st = fli_ivf_kmeans(ctx, x, n, d, m_train, L, fli_param_int(p, "kmeans_n_iters"),
                            fli_ann_seed(ctx, p), "random", centers);
    }
    if (!st)
        st = build_lists(ctx, NULL, centers, L, d, x, n, 0, metric, out);
    if (!st)
        st = put_scalars(ctx, out, L, d, n);
    fli_free(ctx, centers);
    fli_free(ctx, x);
    return st;
}

/* The index as the backend reads it, from a fitted model. */
static void index_of(const fl_model *m, fli_ivf_index *ix)
{
    const fli_attr *c = fli_model_attr(m, "cluster_centers_");
    ix->n_lists = c->rows;
    ix->d = c->cols;
    ix->centers = c->data;
    ix->offsets = fli_model_attr(m, "list_offsets_")->data;
    ix->ids = fli_model_attr(m, "list_ids_")->data;
    ix->data = fli_model_attr(m, "list_data_")->data;
    ix->norms = fli_model_attr(m, "list_norms_")->data;
    ix->n = fli_model_attr(m, "list_ids_")->rows;
    ix->metric = fli_ann_metric(m->params);
}

static fl_status ivf_add(fl_model *m, const fl_array *X)
{
    fl_ctx *ctx = m->ctx;
    fli_ivf_index ix;
    index_of(m, &ix);
    fl_status st = fli_check_data(ctx, X, "X");
    if (st)
        return st;
    if (X->cols != ix.d)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "X has %lld features, but the IVFFlat index is expecting %lld features as input",
                        (long long)X->cols, (long long)ix.d);
    const int64_t n0 = *(const int64_t *)fli_model_attr(m, "n_samples_fit_")->data;
    float *x = fli_ivf_rows_f32(ctx, X, ix.metric == FLI_KNN_COSINE, &st);
    if (!x)
        return st;
    fli_attr_set set = {0};
    st = build_lists(ctx, &ix, ix.centers, ix.n_lists, ix.d, x, X->rows, n0, ix.metric, &set);
    if (!st)
        st = put_scalars(ctx, &set, ix.n_lists, ix.d, n0 + X->rows);
    fli_free(ctx, x);
    if (st) {
        fli_attr_set_free(ctx, &set);
        return st;
    }
    return fli_model_adopt(m, &set);
}

static fl_status ivf_kneighbors(fl_model *m, const fl_array *X, int64_t k, fl_array *D, fl_array *I)
{
    fl_ctx *ctx = m->ctx;
    fli_ivf_index ix;
    index_of(m, &ix);
    const int64_t n_fit = *(const int64_t *)fli_model_attr(m, "n_samples_fit_")->data;
    int64_t n_q;
    fl_status st = fli_ann_check_query(ctx, "IVFFlat", X, ix.d, n_fit, k, D, I, &n_q);
    if (st)
        return st;
    const int64_t P = fli_ivf_probes(m->params, ix.n_lists);
    if (P > ix.n_lists)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "n_probes=%lld: must be <= n_lists=%lld", (long long)P,
                        (long long)ix.n_lists);
    /* the backend: device 'cuda' without a usable GPU fails here, saying why */
    fl_hw_props hw;
    int gpu = 0;
    if ((st = fli_ctx_gpu(ctx, &hw, &gpu)) != FL_STATUS_OK)
        return st;
    fl_route r;
    fli_route_ivf_flat(gpu ? &hw : NULL, ix.n, ix.n_lists, P, n_q, ix.d, k, ctx->kind == FLI_DEVICE_CUDA, &r);
    fli_log(ctx, FL_LOG_INFO, "ivf_flat search: %lld queries, k=%lld, %lld of %lld lists: %s (%s)",
            (long long)n_q, (long long)k, (long long)P, (long long)ix.n_lists, fl_backend_name(r.backend),
            r.reason);
    const fli_cuda_api *api = NULL;
    fli_cuda_env *env = NULL;
    if (r.backend != FL_BACKEND_CPU && (st = fli_cuda_acquire(ctx, &api, &env)) != FL_STATUS_OK)
        return st;
    /* queries: float32 host rows; X=None reads the stored rows back into
     * index order (cosine: already normalised, which the search allows) */
    float *q;
    int64_t *self_ids, *idx;
    double *dist;
    st = fli_ann_search_buffers(ctx, "IVF", X, ix.data, ix.ids, ix.n, ix.d, n_q, k, &q, &self_ids, &dist,
                                &idx);
    if (st)
        goto done;
    fli_ivf_search_job job = {.ix = ix,
                              .q = q,
                              .n_q = n_q,
                              .q_ld = ix.d,
                              .k = k,
                              .n_probes = P,
                              .self_ids = self_ids,
                              .dist = dist,
                              .idx = idx,
                              .index_key = m->generation};
    st = api ? api->ivf_search(env, &job) : fli_cpu_ivf_search(ctx, &job);
    if (!st)
        st = fli_ivf_put_result(ctx, dist, idx, n_q, k, D, I);
done:
    fli_free(ctx, q);
    fli_free(ctx, self_ids);
    fli_free(ctx, dist);
    fli_free(ctx, idx);
    return st;
}

static fl_status ivf_check_attrs(fl_ctx *ctx, const fl_params *p, const fli_attr_set *set)
{
    const fli_attr *c = fli_attr_find(set, "cluster_centers_"), *o = fli_attr_find(set, "list_offsets_"),
                   *id = fli_attr_find(set, "list_ids_"), *x = fli_attr_find(set, "list_data_"),
                   *nr = fli_attr_find(set, "list_norms_"), *nl = fli_attr_find(set, "n_lists_"),
                   *nf = fli_attr_find(set, "n_features_in_"), *ns = fli_attr_find(set, "n_samples_fit_");
    if (!c || !o || !id || !x || !nr || !nl || !nf || !ns || c->dtype != FL_DTYPE_F32 ||
        o->dtype != FL_DTYPE_I64 || id->dtype != FL_DTYPE_I64 || x->dtype != FL_DTYPE_F32 ||
        nr->dtype != FL_DTYPE_F32 || nl->dtype != FL_DTYPE_I64 || nf->dtype != FL_DTYPE_I64 ||
        ns->dtype != FL_DTYPE_I64 || nl->rows * nl->cols != 1 || nf->rows * nf->cols != 1 ||
        ns->rows * ns->cols != 1)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "IVF-Flat model: missing or mistyped attributes");
    const int64_t L = c->rows, d = c->cols, n = id->rows;
    if (*(int64_t *)nl->data != L || *(int64_t *)nf->data != d || *(int64_t *)ns->data != n || L < 1 ||
        o->rows != L + 1 || x->rows != n || x->cols != d || nr->rows != n || id->cols != 1 || n < 1)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "IVF-Flat model: inconsistent shapes");
    (void)p;
    return fli_ivf_check_lists(ctx, "IVF-Flat", o->data, L, id->data, n);
}

static const char *const search_params[] = {"n_probes", "n_neighbors", "verbose", NULL};

const fli_algo fli_algo_ivf_flat = {
    .name = "ivf_flat",
    .params = fli_ivf_flat_params,
    .n_params = FLI_IVF_FLAT_N_PARAMS,
    .attr_names = ivf_attrs,
    .check_params = fli_ivf_check_params,
    .fit = ivf_fit,
    .check_attrs = ivf_check_attrs,
    .kneighbors = ivf_kneighbors,
    .add = ivf_add,
    .search_params = search_params,
};
