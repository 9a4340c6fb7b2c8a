/*
 * ivf_pq.c — the IVF-PQ approximate nearest-neighbour index: a coarse
 * k-means files every row under its nearest of n_lists centres (as
 * IVF-Flat), and each row is stored as pq_dim one-byte codes: its residual
 * from the list centre (by_residual) cut into pq_dim sub-spaces, each
 * replaced by the nearest of 2^pq_bits centroids trained by k-means on
 * that sub-space. A search scans the probed lists' codes through per-query
 * look-up tables (asymmetric distances); with refine > 1 the raw rows are
 * kept and refine x k candidates are re-ranked by exact distances.
 *
 * compression_ratio (Python) = 4 d / pq_dim bytes a row (codes only; the
 * ids and, with refine, the raw rows come on top).
 *
 * The search goes where route_ivf.c's fli_route_ivf_pq says: the CUDA
 * module's ivfpq_search (ivfpq_cuda.cu: the CPU's look-up tables and keys
 * bit for bit, the index kept on the device between searches, keyed by
 * the model's generation) for device 'cuda' or batches large enough to
 * pay, else the CPU backend (ivfpq_cpu.c).
 */
#include <math.h>
#include <string.h>

#include "algo/ivf_common.h"
#include "algo/ivf_job.h"
#include "algo/ivf_params.h"
#include "algo/ivfpq_job.h"
#include "backends/cpu/cpu.h"
#include "backends/cuda/fl_cuda_module.h"
#include "core/internal.h"
#include "route/route.h"

static const char *const pq_attrs[] = {"cluster_centers_", "pq_centers_",    "list_offsets_",  "list_ids_",
                                       "list_codes_",      "list_data_",     "n_lists_",       "pq_dim_",
                                       "pq_bits_",         "n_features_in_", "n_samples_fit_", NULL};

/* The index as the backend reads it, from an attribute set. */
static void index_of(const fli_attr_set *set, const fl_params *p, fli_ivfpq_index *ix)
{
    const fli_attr *c = fli_attr_find(set, "cluster_centers_"), *cb = fli_attr_find(set, "pq_centers_"),
                   *codes = fli_attr_find(set, "list_codes_"), *data = fli_attr_find(set, "list_data_");
    memset(ix, 0, sizeof *ix);
    ix->n_lists = c->rows;
    ix->d = c->cols;
    ix->M = codes->cols;
    ix->dsub = cb->cols;
    ix->ksub = cb->rows / ix->M;
    ix->n = codes->rows;
    ix->centers = c->data;
    ix->codebooks = cb->data;
    ix->offsets = fli_attr_find(set, "list_offsets_")->data;
    ix->ids = fli_attr_find(set, "list_ids_")->data;
    ix->codes = codes->data;
    ix->data = data && data->rows ? data->data : NULL;
    ix->by_residual = (int)fli_param_int(p, "by_residual");
    ix->metric = fli_ann_metric(p);
}

static const fli_attr_set *model_set(const fl_model *m, fli_attr_set *view)
{
    view->n = m->n_attrs;
    memcpy(view->a, m->attrs, sizeof(fli_attr) * (size_t)m->n_attrs);
    return view;
}

/* Files x (n x d float32, original indices id0 + i) and the rows already in
 * `old` (may be NULL) into a fresh set of list attributes in `out`, with
 * the given centres and codebooks. keep_raw: also the raw rows. */
static fl_status build_lists(fl_ctx *ctx, const fli_ivfpq_index *old, const float *centers,
                             const float *codebooks, int64_t L, int64_t d, int64_t M, int64_t ks,
                             const float *x, int64_t n, int64_t id0, int by_residual, int keep_raw,
                             fli_attr_set *out)
{
    const int64_t n_old = old ? old->n : 0, total = n_old + n, ds = d / M;
    fli_ivfpq_index pq = {.n_lists = L,
                          .d = d,
                          .M = M,
                          .ksub = ks,
                          .dsub = ds,
                          .centers = centers,
                          .codebooks = codebooks,
                          .by_residual = by_residual};
    int64_t *lab = fli_malloc(ctx, sizeof(int64_t) * (size_t)n, "PQ list of each row");
    uint8_t *code = fli_malloc(ctx, (size_t)(n * M), "PQ codes of the new rows");
    int64_t *cursor = fli_malloc(ctx, sizeof(int64_t) * (size_t)L, "PQ list cursors");
    fl_status st = !lab || !code || !cursor ? FL_STATUS_OUT_OF_MEMORY : FL_STATUS_OK;
    if (!st)
        st = fli_ivf_assign(ctx, centers, L, d, x, n, lab);
    if (!st)
        st = fli_cpu_ivfpq_encode(ctx, &pq, x, n, lab, code);
    void *c, *cb, *off, *ids, *codes, *data = NULL;
    if (!st && !(st = fli_attr_add(ctx, out, "cluster_centers_", FL_DTYPE_F32, L, d, &c)) &&
        !(st = fli_attr_add(ctx, out, "pq_centers_", FL_DTYPE_F32, M * ks, ds, &cb)) &&
        !(st = fli_attr_add(ctx, out, "list_offsets_", FL_DTYPE_I64, L + 1, 1, &off)) &&
        !(st = fli_attr_add(ctx, out, "list_ids_", FL_DTYPE_I64, total, 1, &ids)) &&
        !(st = fli_attr_add(ctx, out, "list_codes_", FL_DTYPE_U8, total, M, &codes)) && keep_raw)
        st = fli_attr_add(ctx, out, "list_data_", FL_DTYPE_F32, total, d, &data);
    if (st)
        goto done;
    memcpy(c, centers, sizeof(float) * (size_t)(L * d));
    memcpy(cb, codebooks, sizeof(float) * (size_t)(M * ks * ds));
    int64_t *o = off;
    o[0] = 0;
    for (int64_t l = 0; l < L; l++)
        o[l + 1] = old ? old->offsets[l + 1] - old->offsets[l] : 0;
    for (int64_t i = 0; i < n; i++)
        o[lab[i] + 1]++;
    for (int64_t l = 0; l < L; l++)
        o[l + 1] += o[l];
    /* each list: its old rows first, then the new ones in row order */
    for (int64_t l = 0; l < L; l++) {
        cursor[l] = o[l];
        if (old) {
            const int64_t a = old->offsets[l], len = old->offsets[l + 1] - a;
            memcpy((int64_t *)ids + cursor[l], old->ids + a, sizeof(int64_t) * (size_t)len);
            memcpy((uint8_t *)codes + cursor[l] * M, old->codes + a * M, (size_t)(len * M));
            if (data)
                memcpy((float *)data + cursor[l] * d, old->data + a * d, sizeof(float) * (size_t)(len * d));
            cursor[l] += len;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t dst = cursor[lab[i]]++;
        ((int64_t *)ids)[dst] = id0 + i;
        memcpy((uint8_t *)codes + dst * M, code + i * M, (size_t)M);
        if (data)
            memcpy((float *)data + dst * d, x + i * d, sizeof(float) * (size_t)d);
    }
done:
    fli_free(ctx, cursor);
    fli_free(ctx, code);
    fli_free(ctx, lab);
    return st;
}

static fl_status put_scalars(fl_ctx *ctx, fli_attr_set *out, int64_t L, int64_t M, int64_t bits, int64_t d,
                             int64_t n)
{
    const char *names[] = {"n_lists_", "pq_dim_", "pq_bits_", "n_features_in_", "n_samples_fit_"};
    const int64_t vals[] = {L, M, bits, d, n};
    for (int i = 0; i < 5; i++) {
        void *v;
        fl_status st = fli_attr_add(ctx, out, names[i], FL_DTYPE_I64, 1, 1, &v);
        if (st)
            return st;
        *(int64_t *)v = vals[i];
    }
    return FL_STATUS_OK;
}

/* Trains the codebooks: k-means with ks centroids on each of the M
 * sub-spaces of (residuals of) a sample of the rows. */
static fl_status train_codebooks(fl_ctx *ctx, const float *x, int64_t n, int64_t d, int64_t M, int64_t ks,
                                 const float *centers, int64_t L, int by_residual, int64_t iters,
                                 uint64_t seed, float *codebooks)
{
    const int64_t ds = d / M, m = n < 256 * ks ? n : 256 * ks;
    /* a deterministic stride sample of m rows (the coarse sample is random) */
    float *r = fli_malloc(ctx, sizeof(float) * (size_t)(m * d), "PQ training residuals");
    float *sub = fli_malloc(ctx, sizeof(float) * (size_t)(m * ds), "PQ training sub-vectors");
    int64_t *lab = fli_malloc(ctx, sizeof(int64_t) * (size_t)m, "PQ training lists");
    fl_status st = !r || !sub || !lab ? FL_STATUS_OUT_OF_MEMORY : FL_STATUS_OK;
    if (!st) {
        for (int64_t i = 0; i < m; i++)
            memcpy(r + i * d, x + (int64_t)((double)i * (double)n / (double)m) * d,
                   sizeof(float) * (size_t)d);
        if (by_residual) {
            if ((st = fli_ivf_assign(ctx, centers, L, d, r, m, lab)) == FL_STATUS_OK)
                for (int64_t i = 0; i < m; i++)
                    for (int64_t f = 0; f < d; f++)
                        r[i * d + f] -= centers[lab[i] * d + f];
        }
    }
    for (int64_t j = 0; j < M && !st; j++) {
        for (int64_t i = 0; i < m; i++)
            memcpy(sub + i * ds, r + i * d + j * ds, sizeof(float) * (size_t)ds);
        st = fli_ivf_kmeans(ctx, sub, m, ds, m, ks, iters, seed + 1 + (uint64_t)j, "random",
                            codebooks + j * ks * ds);
        if (!st)
            st = fli_progress(ctx, "ivf_pq.codebooks", j + 1, M);
    }
    fli_free(ctx, lab);
    fli_free(ctx, sub);
    fli_free(ctx, r);
    return st;
}

static fl_status pq_fit(fl_model *m, const fl_array *X, const fl_array *y, const fl_array *w,
                        fli_attr_set *out)
{
    fl_ctx *ctx = m->ctx;
    const fl_params *p = m->params;
    (void)y;
    fl_status st = fli_ann_fit_checks(m, X, w);
    if (st)
        return st;
    const int64_t n = X->rows, d = X->cols;
    const int64_t L = fli_ivf_lists(p, n);
    const int64_t M = fli_param_word(p, "pq_dim") == 0 ? fli_ivf_auto_pq_dim(d) : fli_param_int(p, "pq_dim");
    const int64_t bits = fli_param_int(p, "pq_bits"), ks = (int64_t)1 << bits;
    if ((st = fli_ivf_check_sizes(ctx, L, fli_ivf_probes(p, L), n)) != FL_STATUS_OK)
        return st;
    if (M > d || d % M != 0)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "pq_dim=%lld: must divide n_features=%lld", (long long)M,
                        (long long)d);
    if (n < ks)
        return fli_fail(
            ctx, FL_STATUS_INVALID_ARG,
            "IVF-PQ with pq_bits=%lld trains %lld centroids per sub-space: it needs at least %lld "
            "rows (got n_samples=%lld); lower pq_bits",
            (long long)bits, (long long)ks, (long long)ks, (long long)n);
    const fli_knn_metric metric = fli_ann_metric(p);
    const int by_residual = (int)fli_param_int(p, "by_residual"), keep_raw = fli_param_float(p, "refine") > 1;
    const uint64_t seed = fli_ann_seed(ctx, p);
    const int64_t m_train = fli_ivf_train_rows(p, n, L);
    const int64_t iters = fli_param_int(p, "kmeans_n_iters");

    float *x = fli_ivf_rows_f32(ctx, X, metric == FLI_KNN_COSINE, &st);
    float *centers = x ? fli_malloc(ctx, sizeof(float) * (size_t)(L * d), "IVF-PQ centres") : NULL;
    float *cbs = centers ? fli_malloc(ctx, sizeof(float) * (size_t)(M * ks * (d / M)), "PQ codebooks") : NULL;
    if (x && !cbs)
        st = FL_STATUS_OUT_OF_MEMORY;
    if (!st) {
        fli_log(ctx, FL_LOG_INFO, "ivf_pq: coarse k-means, %lld lists on %lld of %lld rows", (long long)L,
                (long long)m_train, (long long)n);
        st = fli_ivf_kmeans(ctx, x, n, d, m_train, L, iters, seed, "random", centers);
    }
    if (!st)
        st = train_codebooks(ctx, x, n, d, M, ks, centers, L, by_residual, iters, seed, cbs);
    if (!st)
        st = build_lists(ctx, NULL, centers, cbs, L, d, M, ks, x, n, 0, by_residual, keep_raw, out);
    if (!st)
        st = put_scalars(ctx, out, L, M, bits, d, n);
    fli_free(ctx, cbs);
    fli_free(ctx, centers);
    fli_free(ctx, x);
    return st;
}

static fl_status pq_add(fl_model *m, const fl_array *X)
{
    fl_ctx *ctx = m->ctx;
    fli_attr_set view;
    fli_ivfpq_index ix;
    index_of(model_set(m, &view), m->params, &ix);
    fl_status st = fli_check_data(ctx, X, "X");
    if (st)
        return st;
    if (X->cols != ix.d)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "X has %lld features, but the IVFPQ index is expecting %lld features as input",
                        (long long)X->cols, (long long)ix.d);
    const int64_t n0 = *(const int64_t *)fli_model_attr(m, "n_samples_fit_")->data;
    const int64_t bits = *(const int64_t *)fli_model_attr(m, "pq_bits_")->data;
    float *x = fli_ivf_rows_f32(ctx, X, ix.metric == FLI_KNN_COSINE, &st);
    if (!x)
        return st;
    fli_attr_set set = {0};
    st = build_lists(ctx, &ix, ix.centers, ix.codebooks, ix.n_lists, ix.d, ix.M, ix.ksub, x, X->rows, n0,
                     ix.by_residual, ix.data != NULL, &set);
    if (!st)
        st = put_scalars(ctx, &set, ix.n_lists, ix.M, bits, ix.d, n0 + X->rows);
    fli_free(ctx, x);
    if (st) {
        fli_attr_set_free(ctx, &set);
        return st;
    }
    return fli_model_adopt(m, &set);
}

static fl_status pq_kneighbors(fl_model *m, const fl_array *X, int64_t k, fl_array *D, fl_array *I)
{
    fl_ctx *ctx = m->ctx;
    fli_attr_set view;
    fli_ivfpq_index ix;
    index_of(model_set(m, &view), m->params, &ix);
    const int64_t n_fit = *(const int64_t *)fli_model_attr(m, "n_samples_fit_")->data;
    const int self = X == NULL;
    if (self && !ix.data)
        return fli_fail(ctx, FL_STATUS_UNSUPPORTED,
                        "kneighbors(X=None) needs the raw rows: build the index with refine > 1, or pass X");
    int64_t n_q;
    fl_status st = fli_ann_check_query(ctx, "IVFPQ", X, ix.d, n_fit, k, D, I, &n_q);
    if (st)
        return st;
    const int64_t P = fli_ivf_probes(m->params, ix.n_lists);
    if (P > ix.n_lists)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "n_probes=%lld: must be <= n_lists=%lld", (long long)P,
                        (long long)ix.n_lists);
    const double refine = fli_param_float(m->params, "refine");
    const int64_t pool = ix.data ? (int64_t)ceil(refine * (double)k) : k;
    /* the backend: device 'cuda' without a usable GPU fails here, saying why */
    fl_hw_props hw;
    int gpu = 0;
    if ((st = fli_ctx_gpu(ctx, &hw, &gpu)) != FL_STATUS_OK)
        return st;
    fl_route r;
    fli_route_ivf_pq(gpu ? &hw : NULL, ix.n, ix.n_lists, P, n_q, ix.d, ix.M, ix.ksub, pool,
                     ctx->kind == FLI_DEVICE_CUDA, &r);
    fli_log(ctx, FL_LOG_INFO, "ivf_pq search: %lld queries, k=%lld, %lld of %lld lists, pool %lld: %s (%s)",
            (long long)n_q, (long long)k, (long long)P, (long long)ix.n_lists, (long long)pool,
            fl_backend_name(r.backend), r.reason);
    const fli_cuda_api *api = NULL;
    fli_cuda_env *env = NULL;
    if (r.backend != FL_BACKEND_CPU && (st = fli_cuda_acquire(ctx, &api, &env)) != FL_STATUS_OK)
        return st;
    float *q;
    int64_t *self_ids, *idx;
    double *dist;
    st = fli_ann_search_buffers(ctx, "IVF-PQ", X, ix.data, ix.ids, ix.n, ix.d, n_q, k, &q, &self_ids, &dist,
                                &idx);
    if (!st) {
        fli_ivfpq_search_job job = {.ix = ix,
                                    .q = q,
                                    .n_q = n_q,
                                    .q_ld = ix.d,
                                    .k = k,
                                    .n_probes = P,
                                    .pool = pool,
                                    .self_ids = self_ids,
                                    .dist = dist,
                                    .idx = idx,
                                    .index_key = m->generation};
        st = api ? api->ivfpq_search(env, &job) : fli_cpu_ivfpq_search(ctx, &job);
    }
    if (!st)
        st = fli_ivf_put_result(ctx, dist, idx, n_q, k, D, I);
    fli_free(ctx, q);
    fli_free(ctx, self_ids);
    fli_free(ctx, dist);
    fli_free(ctx, idx);
    return st;
}

static fl_status pq_check_attrs(fl_ctx *ctx, const fl_params *p, const fli_attr_set *set)
{
    const char *need[] = {"cluster_centers_", "pq_centers_",   "list_offsets_", "list_ids_",
                          "list_codes_",      "n_lists_",      "pq_dim_",       "pq_bits_",
                          "n_features_in_",   "n_samples_fit_"};
    for (int i = 0; i < 10; i++)
        if (!fli_attr_find(set, need[i]))
            return fli_fail(ctx, FL_STATUS_CORRUPT, "IVF-PQ model: attribute %s is missing", need[i]);
    const fli_attr *c = fli_attr_find(set, "cluster_centers_"), *cb = fli_attr_find(set, "pq_centers_"),
                   *o = fli_attr_find(set, "list_offsets_"), *id = fli_attr_find(set, "list_ids_"),
                   *codes = fli_attr_find(set, "list_codes_"), *data = fli_attr_find(set, "list_data_");
    const int64_t L = c->rows, d = c->cols, n = id->rows, M = codes->cols;
    const int64_t bits = *(const int64_t *)fli_attr_find(set, "pq_bits_")->data;
    if (c->dtype != FL_DTYPE_F32 || cb->dtype != FL_DTYPE_F32 || o->dtype != FL_DTYPE_I64 ||
        id->dtype != FL_DTYPE_I64 || codes->dtype != FL_DTYPE_U8 || (data && data->dtype != FL_DTYPE_F32))
        return fli_fail(ctx, FL_STATUS_CORRUPT, "IVF-PQ model: mistyped attributes");
    if (bits < 4 || bits > 8 || M < 1 || d % M != 0 || cb->rows != M * ((int64_t)1 << bits) ||
        cb->cols != d / M || o->rows != L + 1 || codes->rows != n || id->cols != 1 ||
        (data && (data->rows != n || data->cols != d)) ||
        *(const int64_t *)fli_attr_find(set, "n_lists_")->data != L ||
        *(const int64_t *)fli_attr_find(set, "pq_dim_")->data != M ||
        *(const int64_t *)fli_attr_find(set, "n_features_in_")->data != d ||
        *(const int64_t *)fli_attr_find(set, "n_samples_fit_")->data != n || n < 1 || L < 1)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "IVF-PQ model: inconsistent shapes");
    (void)p;
    return fli_ivf_check_lists(ctx, "IVF-PQ", o->data, L, id->data, n);
}

static const char *const search_params[] = {"n_probes", "n_neighbors", "refine", "verbose", NULL};

const fli_algo fli_algo_ivf_pq = {
    .name = "ivf_pq",
    .params = fli_ivf_pq_params,
    .n_params = FLI_IVF_PQ_N_PARAMS,
    .attr_names = pq_attrs,
    .check_params = fli_ivf_check_params,
    .fit = pq_fit,
    .check_attrs = pq_check_attrs,
    .kneighbors = pq_kneighbors,
    .add = pq_add,
    .search_params = search_params,
};
