/*
 * ivf_common.c — helpers the IVF indexes share (ivf_common.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "algo/ivf_common.h"
#include "algo/ivf_params.h"

fli_knn_metric fli_ann_metric(const fl_params *p)
{
    switch (fli_param_word(p, "metric")) { /* euclidean|sqeuclidean|cosine|inner_product|dot|l2 */
    case 1: return FLI_KNN_SQEUCLIDEAN;
    case 2: return FLI_KNN_COSINE;
    case 3:
    case 4: return FLI_KNN_INNER;
    default: return FLI_KNN_EUCLIDEAN;
    }
}

uint64_t fli_ann_seed(const fl_ctx *ctx, const fl_params *p)
{
    return fli_param_word(p, "random_state") == 0 ? ctx->seed : (uint64_t)fli_param_int(p, "random_state");
}

int64_t fli_ivf_lists(const fl_params *p, int64_t n)
{
    return fli_param_word(p, "n_lists") == 0 ? fli_ivf_auto_lists(n) : fli_param_int(p, "n_lists");
}

int64_t fli_ivf_probes(const fl_params *p, int64_t n_lists)
{
    return fli_param_word(p, "n_probes") == 0 ? fli_ivf_auto_probes(n_lists) : fli_param_int(p, "n_probes");
}

fl_status fli_ivf_check_params(fl_ctx *ctx, const fl_params *p)
{
    if (fli_param_word(p, "n_lists") != 0 && fli_param_word(p, "n_probes") != 0 &&
        fli_param_int(p, "n_probes") > fli_param_int(p, "n_lists"))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "n_probes=%lld: must be <= n_lists=%lld",
                        (long long)fli_param_int(p, "n_probes"), (long long)fli_param_int(p, "n_lists"));
    return FL_STATUS_OK;
}

fl_status fli_ivf_check_sizes(fl_ctx *ctx, int64_t n_lists, int64_t n_probes, int64_t n)
{
    if (n_lists > n)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "n_lists=%lld: must be <= n_samples=%lld",
                        (long long)n_lists, (long long)n);
    if (n_probes > n_lists)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "n_probes=%lld: must be <= n_lists=%lld",
                        (long long)n_probes, (long long)n_lists);
    return FL_STATUS_OK;
}

int64_t fli_ivf_train_rows(const fl_params *p, int64_t n, int64_t n_lists)
{
    const double frac = fli_param_word(p, "kmeans_trainset_fraction") == 0
                            ? fmin(1.0, 256.0 * (double)n_lists / (double)n)
                            : fli_param_float(p, "kmeans_trainset_fraction");
    int64_t m = (int64_t)llround(frac * (double)n);
    return m < n_lists ? n_lists : m > n ? n : m;
}

fl_status fli_ann_fit_checks(fl_model *m, const fl_array *X, const fl_array *w)
{
    if (w)
        return fli_fail(m->ctx, FL_STATUS_INVALID_ARG, "%s takes no sample_weight", m->algo->name);
    fl_status st = fli_check_data(m->ctx, X, "X");
    if (!st && m->algo->check_params)
        st = m->algo->check_params(m->ctx, m->params);
    return st;
}

fl_status fli_ann_check_query(fl_ctx *ctx, const char *index, const fl_array *X, int64_t d, int64_t n_fit,
                              int64_t k, const fl_array *D, const fl_array *I, int64_t *n_q)
{
    fl_status st;
    if (X) {
        if ((st = fli_check_data(ctx, X, "X")) != FL_STATUS_OK)
            return st;
        if (X->cols != d)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                            "X has %lld features, but the %s index is expecting %lld features as input",
                            (long long)X->cols, index, (long long)d);
    }
    const int64_t nq = X ? X->rows : n_fit, cand = X ? n_fit : n_fit - 1;
    if (k > cand)
        return fli_fail(
            ctx, FL_STATUS_INVALID_ARG,
            "Expected n_neighbors <= %s, but n_neighbors = %lld, n_samples_fit = %lld, n_samples = %lld",
            X ? "n_samples_fit" : "n_samples_fit - 1 (X=None leaves each point out)", (long long)k,
            (long long)n_fit, (long long)nq);
    if ((st = fli_check_out(ctx, I, FL_DTYPE_I64, nq, k, "indices")) != FL_STATUS_OK)
        return st;
    if (D && (st = fli_check_array(ctx, D, "distances")) != FL_STATUS_OK)
        return st;
    if (D && ((D->dtype != FL_DTYPE_F32 && D->dtype != FL_DTYPE_F64) || D->rows != nq || D->cols != k))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "distances: expected f32 or f64 %lld x %lld, got %s %lld x %lld", (long long)nq,
                        (long long)k, fl_dtype_name(D->dtype), (long long)D->rows, (long long)D->cols);
    *n_q = nq;
    return FL_STATUS_OK;
}

fl_status fli_ann_self_queries(fl_ctx *ctx, const float *data, const int64_t *ids, int64_t n, int64_t d,
                               float **q, int64_t **self_ids)
{
    *q = fli_malloc(ctx, sizeof(float) * (size_t)(n * d), "self queries");
    *self_ids = fli_malloc(ctx, sizeof(int64_t) * (size_t)n, "self query indices");
    if (!*q || !*self_ids) {
        fli_free(ctx, *q);
        fli_free(ctx, *self_ids);
        *q = NULL, *self_ids = NULL;
        return FL_STATUS_OUT_OF_MEMORY;
    }
    for (int64_t r = 0; r < n; r++)
        memcpy(*q + (ids ? ids[r] : r) * d, data + r * d, sizeof(float) * (size_t)d);
    for (int64_t i = 0; i < n; i++)
        (*self_ids)[i] = i;
    return FL_STATUS_OK;
}

fl_status fli_ann_search_buffers(fl_ctx *ctx, const char *what, const fl_array *X, const float *data,
                                 const int64_t *ids, int64_t n, int64_t d, int64_t n_q, int64_t k, float **q,
                                 int64_t **self_ids, double **dist, int64_t **idx)
{
    fl_status st = FL_STATUS_OK;
    *q = NULL, *self_ids = NULL;
    if (!X)
        st = fli_ann_self_queries(ctx, data, ids, n, d, q, self_ids);
    else
        *q = fli_ivf_rows_f32(ctx, X, 0, &st);
    char name[64];
    snprintf(name, sizeof name, "%s distances", what);
    *dist = fli_malloc(ctx, sizeof(double) * (size_t)(n_q * k), name);
    snprintf(name, sizeof name, "%s indices", what);
    *idx = fli_malloc(ctx, sizeof(int64_t) * (size_t)(n_q * k), name);
    if (!st && (!*q || !*dist || !*idx))
        st = FL_STATUS_OUT_OF_MEMORY;
    return st;
}

fl_status fli_ivf_check_lists(fl_ctx *ctx, const char *index, const int64_t *offsets, int64_t n_lists,
                              const int64_t *ids, int64_t n)
{
    if (offsets[0] != 0 || offsets[n_lists] != n)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "%s model: list offsets do not cover the rows", index);
    for (int64_t l = 0; l < n_lists; l++)
        if (offsets[l + 1] < offsets[l])
            return fli_fail(ctx, FL_STATUS_CORRUPT, "%s model: list offsets decrease", index);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n)
            return fli_fail(ctx, FL_STATUS_CORRUPT, "%s model: a row index is out of range", index);
    return FL_STATUS_OK;
}

float *fli_ivf_rows_f32(fl_ctx *ctx, const fl_array *X, int normalise, fl_status *st)
{
    const int64_t n = X->rows, d = X->cols, ld = fli_ld(X);
    const size_t es = fl_dtype_size(X->dtype);
    float *out = fli_malloc(ctx, sizeof(float) * (size_t)(n * d), "IVF float32 rows");
    void *row = fli_malloc(ctx, es * (size_t)d, "IVF staging row");
    *st = FL_STATUS_OK;
    if (!out || !row) {
        *st = FL_STATUS_OUT_OF_MEMORY;
        goto fail;
    }
    const int32_t dev = fli_array_device(X);
    for (int64_t i = 0; i < n; i++) {
        const char *src = (const char *)X->data + es * (size_t)(i * ld);
        if (dev >= 0) {
            if ((*st = fli_copy(ctx, row, -1, src, dev, es * (size_t)d)) != FL_STATUS_OK)
                goto fail;
            src = row;
        }
        double s = 0;
        for (int64_t j = 0; j < d; j++) {
            double v = X->dtype == FL_DTYPE_F32 ? ((const float *)src)[j] : ((const double *)src)[j];
            out[i * d + j] = (float)v;
            s += v * v;
        }
        if (normalise && s > 0 && isfinite(s)) {
            const double inv = 1.0 / sqrt(s);
            for (int64_t j = 0; j < d; j++)
                out[i * d + j] = (float)(out[i * d + j] * inv);
        }
    }
    fli_free(ctx, row);
    if (dev >= 0) { /* device data was not checked on the way in */
        fl_array h = fl_array_host(out, FL_DTYPE_F32, n, d);
        if ((*st = fli_check_finite(ctx, &h, "X")) != FL_STATUS_OK) {
            fli_free(ctx, out);
            return NULL;
        }
    }
    return out;
fail:
    fli_free(ctx, out);
    fli_free(ctx, row);
    return NULL;
}

/* A uniform sample of m of the n rows, in row order (so it does not depend
 * on how it was drawn). */
static float *sample_rows(fl_ctx *ctx, const float *x, int64_t n, int64_t d, int64_t m, uint64_t seed)
{
    float *t = fli_malloc(ctx, sizeof(float) * (size_t)(m * d), "IVF training sample");
    int64_t *perm = fli_malloc(ctx, sizeof(int64_t) * (size_t)n, "IVF sample draw");
    if (!t || !perm) {
        fli_free(ctx, t);
        fli_free(ctx, perm);
        return NULL;
    }
    fli_rng r;
    fli_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = 0; i < m; i++) { /* partial Fisher-Yates */
        int64_t j = i + fli_rng_below(&r, n - i), tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    /* mark the chosen rows in the tail of perm (reused as bytes), then copy
     * them in order */
    unsigned char *mark = (unsigned char *)(perm + m);
    const size_t room = sizeof(int64_t) * (size_t)(n - m);
    if (room >= (size_t)n) {
        memset(mark, 0, (size_t)n);
        for (int64_t i = 0; i < m; i++)
            mark[perm[i]] = 1;
        for (int64_t i = 0, c = 0; i < n; i++)
            if (mark[i])
                memcpy(t + (c++) * d, x + i * d, sizeof(float) * (size_t)d);
    } else { /* m close to n: sort the chosen indices instead */
        for (int64_t i = 1; i < m; i++) {
            int64_t v = perm[i], j = i;
            while (j > 0 && perm[j - 1] > v)
                perm[j] = perm[j - 1], j--;
            perm[j] = v;
        }
        for (int64_t i = 0; i < m; i++)
            memcpy(t + i * d, x + perm[i] * d, sizeof(float) * (size_t)d);
    }
    fli_free(ctx, perm);
    return t;
}

fl_status fli_ivf_kmeans(fl_ctx *ctx, const float *x, int64_t n, int64_t d, int64_t m, int64_t k,
                         int64_t iters, uint64_t seed, const char *init, float *centers)
{
    if (m > n)
        m = n;
    const float *t = x;
    float *sample = NULL;
    if (m < n) {
        if (!(sample = sample_rows(ctx, x, n, d, m, seed)))
            return FL_STATUS_OUT_OF_MEMORY;
        t = sample;
    }
    fl_params *kp = NULL;
    fl_status st = fl_params_create(ctx, "kmeans", &kp);
    if (!st)
        st = fl_params_set_int(ctx, kp, "n_clusters", k);
    if (!st)
        st = fl_params_set(ctx, kp, "init", init);
    if (!st)
        st = fl_params_set_int(ctx, kp, "n_init", 1);
    if (!st)
        st = fl_params_set_int(ctx, kp, "max_iter", iters);
    if (!st)
        st = fl_params_set_int(ctx, kp, "random_state", (int64_t)(seed & 0x7fffffffffffffffull));
    if (!st) {
        fl_array T = fl_array_host((void *)t, FL_DTYPE_F32, m, d);
        fl_array C = fl_array_host(centers, FL_DTYPE_F32, k, d);
        st = fl_kmeans_fit(ctx, &T, NULL, kp, &C, NULL, NULL, NULL);
    }
    fl_params_free(kp);
    fli_free(ctx, sample);
    return st;
}

fl_status fli_ivf_assign(fl_ctx *ctx, const float *centers, int64_t L, int64_t d, const float *x, int64_t n,
                         int64_t *list_out)
{
    if (n == 0)
        return FL_STATUS_OK;
    fl_params *kp = NULL;
    fl_status st = fl_params_create(ctx, "knn", &kp);
    if (!st)
        st = fl_params_set(ctx, kp, "metric", "sqeuclidean");
    if (!st) {
        fl_array C = fl_array_host((void *)centers, FL_DTYPE_F32, L, d);
        fl_array Q = fl_array_host((void *)x, FL_DTYPE_F32, n, d);
        fl_array I = fl_array_host(list_out, FL_DTYPE_I64, n, 1);
        st = fl_knn_search(ctx, &C, &Q, 1, kp, NULL, &I);
    }
    fl_params_free(kp);
    return st;
}

fl_status fli_ivf_put_result(fl_ctx *ctx, const double *dist, const int64_t *idx, int64_t n, int64_t k,
                             fl_array *D, fl_array *I)
{
    const int32_t idev = fli_array_device(I);
    fl_status st = FL_STATUS_OK;
    for (int64_t i = 0; i < n && !st; i++)
        st = fli_copy(ctx, (int64_t *)I->data + i * fli_ld(I), idev, idx + i * k, -1,
                      sizeof(int64_t) * (size_t)k);
    if (st || !D)
        return st;
    const int32_t ddev = fli_array_device(D);
    const size_t es = fl_dtype_size(D->dtype);
    float *row =
        D->dtype == FL_DTYPE_F32 ? fli_malloc(ctx, sizeof(float) * (size_t)k, "IVF distance row") : NULL;
    if (D->dtype == FL_DTYPE_F32 && !row)
        return FL_STATUS_OUT_OF_MEMORY;
    for (int64_t i = 0; i < n && !st; i++) {
        const void *src = dist + i * k;
        if (row) {
            for (int64_t c = 0; c < k; c++)
                row[c] = (float)dist[i * k + c];
            src = row;
        }
        st = fli_copy(ctx, (char *)D->data + es * (size_t)(i * fli_ld(D)), ddev, src, -1, es * (size_t)k);
    }
    fli_free(ctx, row);
    return st;
}
