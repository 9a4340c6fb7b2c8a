/*
 * model.c — the generic model handle: one handle for every estimator. A model
 * is its algorithm, its parameters and a set of named, typed host arrays (the
 * fitted attributes). Methods dispatch through the algorithm's table; fit
 * builds a fresh attribute set and swaps it in only on success.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

/* The source of fl_model.generation: the one process-wide counter of the
 * library, a plain monotonic id (atomic, so models fitted on several
 * threads still get distinct values). */
static _Atomic uint64_t g_generation;

fl_status fli_attr_add(fl_ctx *ctx, fli_attr_set *set, const char *name, fl_dtype dtype, int64_t rows,
                       int64_t cols, void **data_out)
{
    if (set->n >= FLI_MAX_ATTRS || strlen(name) >= FLI_ATTR_NAME_LEN)
        return fli_fail(ctx, FL_STATUS_INTERNAL, "attribute table full adding %s", name);
    size_t bytes;
    if (rows < 0 || cols < 0 || fli_mul_overflow((size_t)rows, (size_t)cols, &bytes) ||
        fli_mul_overflow(bytes, fl_dtype_size(dtype), &bytes))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "attribute %s: %lld x %lld overflows", name,
                        (long long)rows, (long long)cols);
    void *p = fli_malloc(ctx, bytes, name);
    if (!p)
        return FL_STATUS_OUT_OF_MEMORY;
    fli_attr *a = &set->a[set->n++];
    snprintf(a->name, sizeof a->name, "%s", name);
    a->dtype = dtype;
    a->rows = rows;
    a->cols = cols;
    a->data = p;
    if (data_out)
        *data_out = p;
    return FL_STATUS_OK;
}

void fli_attr_set_free(fl_ctx *ctx, fli_attr_set *set)
{
    for (int i = 0; i < set->n; i++)
        fli_free(ctx, set->a[i].data);
    set->n = 0;
}

const fli_attr *fli_model_attr(const fl_model *m, const char *name)
{
    for (int i = 0; i < m->n_attrs; i++)
        if (!strcmp(m->attrs[i].name, name))
            return &m->attrs[i];
    return NULL;
}

fl_status fl_model_create(fl_ctx *ctx, const char *algo, const fl_params *params, fl_model **out)
{
    if (!ctx || !out)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "fl_model_create: ctx and out must not be NULL");
    fli_clear_error(ctx);
    const fli_algo *a = fli_algo_find(algo);
    if (!a)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "unknown algorithm '%s' (known: %s)",
                        algo ? algo : "(null)", fli_algo_list());
    if (params && params->algo != a)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "parameters are for '%s', not '%s'", params->algo->name,
                        a->name);
    fl_model *m = calloc(1, sizeof *m);
    if (!m)
        return fli_fail(ctx, FL_STATUS_OUT_OF_MEMORY, "out of host memory creating a model");
    fl_status st = params ? fl_params_copy(ctx, params, &m->params) : fl_params_create(ctx, algo, &m->params);
    if (st) {
        free(m);
        return st;
    }
    m->ctx = ctx;
    m->algo = a;
    *out = m;
    return FL_STATUS_OK;
}

static void model_clear(fl_model *m)
{
    for (int i = 0; i < m->n_attrs; i++)
        fli_free(m->ctx, m->attrs[i].data);
    m->n_attrs = 0;
    m->fitted = 0;
}

void fl_model_free(fl_model *m)
{
    if (!m)
        return;
    model_clear(m);
    fl_params_free(m->params);
    free(m);
}

const char *fl_model_algo(const fl_model *m)
{
    return m ? m->algo->name : "";
}
const fl_params *fl_model_params(const fl_model *m)
{
    return m ? m->params : NULL;
}
int fl_model_is_fitted(const fl_model *m)
{
    return m && m->fitted;
}
const char *const *fl_model_attr_names(const fl_model *m)
{
    return m ? m->algo->attr_names : NULL;
}

/* Installs a freshly built attribute set, replacing the previous fit. */
static void model_install(fl_model *m, fli_attr_set *set)
{
    model_clear(m);
    for (int i = 0; i < set->n; i++)
        m->attrs[i] = set->a[i];
    m->n_attrs = set->n;
    set->n = 0;
    m->fitted = 1;
    m->generation = atomic_fetch_add(&g_generation, 1) + 1;
}

fl_status fl_model_fit(fl_model *m, const fl_array *X, const fl_array *y, const fl_array *sample_weight)
{
    if (!m)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(m->ctx);
    fli_attr_set set = {0};
    fl_status st = m->algo->fit(m, X, y, sample_weight, &set);
    if (st) {
        fli_attr_set_free(m->ctx, &set);
        return st;
    }
    model_install(m, &set);
    return FL_STATUS_OK;
}

static fl_status need_fitted(fl_model *m, const char *method)
{
    if (!m->fitted)
        return fli_fail(m->ctx, FL_STATUS_NOT_FITTED, "this %s model is not fitted yet: call fit before %s",
                        m->algo->name, method);
    return FL_STATUS_OK;
}

fl_status fl_model_predict(fl_model *m, const fl_array *X, fl_array *out)
{
    if (!m)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(m->ctx);
    fl_status st = need_fitted(m, "predict");
    if (st)
        return st;
    if (!m->algo->predict)
        return fli_fail(m->ctx, FL_STATUS_UNSUPPORTED, "%s has no predict", m->algo->name);
    return m->algo->predict(m, X, out);
}

fl_status fl_model_transform(fl_model *m, const fl_array *X, fl_array *out)
{
    if (!m)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(m->ctx);
    fl_status st = need_fitted(m, "transform");
    if (st)
        return st;
    if (!m->algo->transform)
        return fli_fail(m->ctx, FL_STATUS_UNSUPPORTED, "%s has no transform", m->algo->name);
    return m->algo->transform(m, X, out);
}

fl_status fl_model_inverse_transform(fl_model *m, const fl_array *X, fl_array *out)
{
    if (!m)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(m->ctx);
    fl_status st = need_fitted(m, "inverse_transform");
    if (st)
        return st;
    if (!m->algo->inverse_transform)
        return fli_fail(m->ctx, FL_STATUS_UNSUPPORTED, "%s has no inverse_transform", m->algo->name);
    return m->algo->inverse_transform(m, X, out);
}

fl_status fl_model_score_samples(fl_model *m, const fl_array *X, fl_array *out)
{
    if (!m)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(m->ctx);
    fl_status st = need_fitted(m, "score_samples");
    if (st)
        return st;
    if (!m->algo->score_samples)
        return fli_fail(m->ctx, FL_STATUS_UNSUPPORTED, "%s has no score_samples", m->algo->name);
    return m->algo->score_samples(m, X, out);
}

fl_status fl_model_kneighbors(fl_model *m, const fl_array *X, int64_t n_neighbors, fl_array *distances,
                              fl_array *indices)
{
    if (!m)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(m->ctx);
    fl_status st = need_fitted(m, "kneighbors");
    if (st)
        return st;
    if (!m->algo->kneighbors)
        return fli_fail(m->ctx, FL_STATUS_UNSUPPORTED, "%s has no kneighbors", m->algo->name);
    if (n_neighbors <= 0)
        n_neighbors = fli_param_int(m->params, "n_neighbors");
    return m->algo->kneighbors(m, X, n_neighbors, distances, indices);
}

fl_status fl_model_set_param(fl_model *m, const char *name, const char *value)
{
    if (!m)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(m->ctx);
    if (!name || !value)
        return fli_fail(m->ctx, FL_STATUS_INVALID_ARG, "set_param: name and value must not be NULL");
    int i = fli_param_index(m->algo, name);
    if (i < 0)
        return fl_params_set(m->ctx, m->params, name, value); /* its message names the valid ones */
    const char *canon = m->algo->params[i].name;
    int ok = !m->fitted;
    for (const char *const *s = m->algo->search_params; s && *s && !ok; s++)
        ok = !strcmp(*s, canon);
    if (!ok)
        return fli_fail(m->ctx, FL_STATUS_INVALID_ARG,
                        "%s of a fitted %s model describes the fit: refit to change it (search-time "
                        "parameters can change after fit)",
                        canon, m->algo->name);
    fl_params *copy;
    fl_status st = fl_params_copy(m->ctx, m->params, &copy);
    if (st)
        return st;
    if ((st = fl_params_set(m->ctx, copy, name, value)) == FL_STATUS_OK && m->algo->check_params)
        st = m->algo->check_params(m->ctx, copy);
    if (st) {
        fl_params_free(copy);
        return st;
    }
    fl_params_free(m->params);
    m->params = copy;
    return FL_STATUS_OK;
}

fl_status fl_model_add(fl_model *m, const fl_array *X)
{
    if (!m)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(m->ctx);
    fl_status st = need_fitted(m, "add");
    if (st)
        return st;
    if (!m->algo->add)
        return fli_fail(m->ctx, FL_STATUS_UNSUPPORTED, "%s has no add (only the IVF indexes take more rows)",
                        m->algo->name);
    if (!X)
        return fli_fail(m->ctx, FL_STATUS_INVALID_ARG, "add: X must not be NULL");
    return m->algo->add(m, X);
}

fl_status fl_model_radius_neighbors(fl_model *m, const fl_array *X, double radius, int sort_results,
                                    fl_neighbors *out)
{
    if (!m)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(m->ctx);
    fl_status st = need_fitted(m, "radius_neighbors");
    if (st)
        return st;
    if (!out)
        return fli_fail(m->ctx, FL_STATUS_INVALID_ARG, "radius_neighbors: out must not be NULL");
    if (!m->algo->radius_neighbors)
        return fli_fail(m->ctx, FL_STATUS_UNSUPPORTED, "%s has no radius_neighbors", m->algo->name);
    if (radius != radius)
        radius = fli_param_float(m->params, "radius");
    return m->algo->radius_neighbors(m, X, radius, sort_results, out);
}

void fl_neighbors_free(fl_neighbors *r)
{
    if (!r)
        return;
    free(r->indptr);
    free(r->indices);
    free(r->distances);
    memset(r, 0, sizeof *r);
}

fl_status fl_model_score(fl_model *m, const fl_array *X, const fl_array *y, const fl_array *w, double *out)
{
    if (!m)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(m->ctx);
    fl_status st = need_fitted(m, "score");
    if (st)
        return st;
    if (!out)
        return fli_fail(m->ctx, FL_STATUS_INVALID_ARG, "score: out is NULL");
    if (!m->algo->score)
        return fli_fail(m->ctx, FL_STATUS_UNSUPPORTED, "%s has no score", m->algo->name);
    return m->algo->score(m, X, y, w, out);
}

fl_status fl_model_fit_predict(fl_model *m, const fl_array *X, const fl_array *w, fl_array *out)
{
    if (!m)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(m->ctx);
    const char *la = m->algo->fit_labels_attr;
    if (la) {
        /* Check the output before fitting, so a bad `out` changes nothing. */
        fl_status st = fli_check_array(m->ctx, out, "out");
        if (st)
            return st;
        if (!X)
            return fli_fail(m->ctx, FL_STATUS_INVALID_ARG, "X is NULL");
        if (out->dtype != FL_DTYPE_I32 || out->rows != X->rows || out->cols != 1)
            return fli_fail(m->ctx, FL_STATUS_INVALID_ARG,
                            "out: expected i32 %lld x 1 labels, got %s %lld x %lld", (long long)X->rows,
                            fl_dtype_name(out->dtype), (long long)out->rows, (long long)out->cols);
        fli_attr_set set = {0};
        st = m->algo->fit(m, X, NULL, w, &set);
        if (st) {
            fli_attr_set_free(m->ctx, &set);
            return st;
        }
        const fli_attr *lab = NULL;
        for (int i = 0; i < set.n; i++)
            if (!strcmp(set.a[i].name, la))
                lab = &set.a[i];
        if (!lab) {
            fli_attr_set_free(m->ctx, &set);
            return fli_fail(m->ctx, FL_STATUS_INTERNAL, "fit produced no %s", la);
        }
        st = fli_copy(m->ctx, out->data, fli_array_device(out), lab->data, -1,
                      (size_t)lab->rows * sizeof(int32_t));
        if (st) {
            fli_attr_set_free(m->ctx, &set);
            return st;
        }
        model_install(m, &set);
        return FL_STATUS_OK;
    }
    fl_status st = fl_model_fit(m, X, NULL, w);
    return st ? st : fl_model_predict(m, X, out);
}

fl_status fl_model_attr_info(fl_model *m, const char *name, fl_dtype *dtype, int64_t *rows, int64_t *cols)
{
    if (!m || !name)
        return FL_STATUS_INVALID_ARG;
    fl_status st = need_fitted(m, "reading attributes");
    if (st)
        return st;
    const fli_attr *a = fli_model_attr(m, name);
    if (!a)
        return fli_fail(m->ctx, FL_STATUS_INVALID_ARG, "%s has no attribute '%s'", m->algo->name, name);
    if (dtype)
        *dtype = a->dtype;
    if (rows)
        *rows = a->rows;
    if (cols)
        *cols = a->cols;
    return FL_STATUS_OK;
}

fl_status fl_model_attr_copy(fl_model *m, const char *name, fl_array *dst)
{
    fl_dtype dt;
    int64_t r, c;
    fl_status st = fl_model_attr_info(m, name, &dt, &r, &c);
    if (st)
        return st;
    st = fli_check_array(m->ctx, dst, "dst");
    if (st)
        return st;
    if (dst->dtype != dt || dst->rows != r || dst->cols != c)
        return fli_fail(m->ctx, FL_STATUS_INVALID_ARG, "%s is %s %lld x %lld; dst is %s %lld x %lld", name,
                        fl_dtype_name(dt), (long long)r, (long long)c, fl_dtype_name(dst->dtype),
                        (long long)dst->rows, (long long)dst->cols);
    const fli_attr *a = fli_model_attr(m, name);
    const size_t es = fl_dtype_size(dt);
    const int64_t ld = fli_ld(dst);
    if (ld == c)
        return fli_copy(m->ctx, dst->data, fli_array_device(dst), a->data, -1, (size_t)(r * c) * es);
    for (int64_t i = 0; i < r; i++) {
        st = fli_copy(m->ctx, (char *)dst->data + (size_t)(i * ld) * es, fli_array_device(dst),
                      (const char *)a->data + (size_t)(i * c) * es, -1, (size_t)c * es);
        if (st)
            return st;
    }
    return FL_STATUS_OK;
}

fl_status fl_model_attr_scalar(fl_model *m, const char *name, double *out)
{
    fl_dtype dt;
    int64_t r, c;
    fl_status st = fl_model_attr_info(m, name, &dt, &r, &c);
    if (st)
        return st;
    if (!out || r != 1 || c != 1)
        return fli_fail(m->ctx, FL_STATUS_INVALID_ARG, "%s is not a scalar (%lld x %lld)", name, (long long)r,
                        (long long)c);
    const void *d = fli_model_attr(m, name)->data;
    switch (dt) {
    case FL_DTYPE_F32: *out = *(const float *)d; break;
    case FL_DTYPE_F64: *out = *(const double *)d; break;
    case FL_DTYPE_I32: *out = *(const int32_t *)d; break;
    case FL_DTYPE_I64: *out = (double)*(const int64_t *)d; break;
    case FL_DTYPE_U8: *out = *(const uint8_t *)d; break;
    default: return fli_fail(m->ctx, FL_STATUS_INTERNAL, "%s has an unexpected dtype", name);
    }
    return FL_STATUS_OK;
}

/* Used by serialize.c to rebuild a model from a file. */
fl_status fli_model_adopt(fl_model *m, fli_attr_set *set)
{
    model_install(m, set);
    return FL_STATUS_OK;
}

const fli_attr *fli_attr_find(const fli_attr_set *set, const char *name)
{
    for (int i = 0; i < set->n; i++)
        if (!strcmp(set->a[i].name, name))
            return &set->a[i];
    return NULL;
}
