/*
 * kmeans.c — KMeans: the parameter table, validation, routing, the driver
 * shared by the model handle and the typed C functions, and the model's
 * predict / transform / score.
 *
 * Semantics follow scikit-learn's KMeans (lloyd): k-means++ (greedy, 2 +
 * floor(ln k) local trials), 'random' or an array init; n_init='auto' (1 for
 * k-means++ or an array, 10 for random); tol relative to the mean feature
 * variance; stop on unchanged labels or small centre shift; labels that
 * match the returned centres; empty clusters relocated to far points.
 */
#include <math.h>
#include <string.h>

#include "algo/kmeans_job.h"
#include "algo/kmeans_params.h"
#include "algo/kmeans_plan.h"
#include "backends/cpu/cpu.h"
#include "backends/cuda/fl_cuda_module.h"
#include "core/internal.h"
#include "route/route.h"

enum { KM_INIT_PP = 0, KM_INIT_RANDOM = 1, KM_INIT_ARRAY = 2 };

static const char *const kmeans_attrs[] = {"cluster_centers_", "labels_",        "inertia_",
                                           "n_iter_",          "n_features_in_", NULL};
/* ---- validation
 ---------------------------------------------------------- */

static fl_status check_X(fl_ctx *ctx, const fl_array *X, const char *what)
{
    return fli_check_data(ctx, X, what);
}

static fl_status check_weights(fl_ctx *ctx, const fl_array *w, const fl_array *X)
{
    if (!w)
        return FL_STATUS_OK;
    fl_status st = fli_check_array(ctx, w, "sample_weight");
    if (st)
        return st;
    if (w->dtype != X->dtype || w->rows != X->rows || w->cols != 1)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "sample_weight is %s %lld x %lld: expected %s %lld x 1 (one weight per sample)",
                        fl_dtype_name(w->dtype), (long long)w->rows, (long long)w->cols,
                        fl_dtype_name(X->dtype), (long long)X->rows);
    if (w->mem != X->mem || (w->mem == FL_MEM_CUDA && w->device_id != X->device_id))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "sample_weight must live where X lives");
    if (w->mem != FL_MEM_HOST)
        return FL_STATUS_OK;
    double total = 0;
    const int64_t ld = fli_ld(w);
    for (int64_t i = 0; i < w->rows; i++) {
        double v =
            w->dtype == FL_DTYPE_F32 ? ((const float *)w->data)[i * ld] : ((const double *)w->data)[i * ld];
        if (!isfinite(v) || v < 0)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                            "sample_weight[%lld] = %g: weights must be finite and >= 0", (long long)i, v);
        total += v;
    }
    if (!(total > 0))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "sample_weight is all zeros: at least one weight must be > 0");
    return FL_STATUS_OK;
}

static fl_status check_params(fl_ctx *ctx, const fl_params *p)
{
    if (fli_param_word(p, "init") == KM_INIT_ARRAY && !p->init_array)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "init=array: no array was given (set it with fl_params_set_array)");
    return FL_STATUS_OK;
}

/* Everything the fit needs, resolved from the parameters and the data. */
typedef struct km_setup {
    int64_t k, n_init, max_iter, n_local_trials;
    double tol;
    uint64_t seed;
    fli_metric metric;
    fli_kmeans_init init;
    int precision_word;
} km_setup;

static fl_status setup(fl_ctx *ctx, const fl_params *p, const fl_array *X, km_setup *s)
{
    fl_status st = check_params(ctx, p);
    if (st)
        return st;
    s->k = fli_param_int(p, "n_clusters");
    if (s->k > X->rows)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "n_clusters=%lld: must be in [1, n_samples=%lld]",
                        (long long)s->k, (long long)X->rows);
    s->init = (fli_kmeans_init)fli_param_word(p, "init");
    if (s->init == FLI_KM_INIT_ARRAY && (p->init_rows != s->k || p->init_cols != X->cols))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "init array is %lld x %lld: expected n_clusters x n_features = %lld x %lld",
                        (long long)p->init_rows, (long long)p->init_cols, (long long)s->k,
                        (long long)X->cols);
    s->n_init = fli_param_word(p, "n_init") == 0 ? (s->init == FLI_KM_INIT_RANDOM ? 10 : 1)
                                                 : fli_param_int(p, "n_init");
    if (s->init == FLI_KM_INIT_ARRAY)
        s->n_init = 1; /* an explicit init gives the same run every time */
    s->max_iter = fli_param_int(p, "max_iter");
    s->tol = fli_param_float(p, "tol");
    s->seed = fli_param_word(p, "random_state") == 0 ? ctx->seed : (uint64_t)fli_param_int(p, "random_state");
    s->metric = (fli_metric)fli_param_word(p, "metric");
    s->precision_word = fli_param_word(p, "precision");
    s->n_local_trials = fli_param_word(p, "n_local_trials") == 0 ? 2 + (int64_t)floor(log((double)s->k))
                                                                 : fli_param_int(p, "n_local_trials");
    return FL_STATUS_OK;
}

/* Routing for this context and data: the GPU when the context wants one. */
static fl_status route(fl_ctx *ctx, const fl_array *X, int64_t k, int precision_word, fl_route *r,
                       fli_precision *prec)
{
    fl_hw_props hw;
    int gpu;
    fl_status st = fli_ctx_gpu(ctx, &hw, &gpu);
    if (st)
        return st;
    if (!gpu && X->mem == FL_MEM_CUDA)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "X lives in CUDA memory but the context's device is '%s': use 'cuda' or 'auto'",
                        ctx->device_str);
    return fli_route_kmeans(gpu ? &hw : NULL, X->rows, X->cols, X->dtype, k, precision_word, r, prec);
}

/*
 * Runs a fit. Outputs: centres (k x d dense, X's dtype) at centers/centers_dev,
 * labels (n int32, may be NULL) at labels/labels_dev. Written only on success.
 */
static fl_status kmeans_run(fl_ctx *ctx, const fl_params *p, const fl_array *X, const fl_array *w,
                            void *centers, int32_t centers_dev, int32_t *labels, int32_t labels_dev,
                            double *inertia, int64_t *n_iter, double *trace, int64_t trace_cap,
                            int64_t *trace_len)
{
    km_setup s;
    fl_status st = check_X(ctx, X, "X");
    if (!st)
        st = check_weights(ctx, w, X);
    if (!st)
        st = setup(ctx, p, X, &s);
    if (st)
        return st;
    fl_route r;
    fli_precision prec;
    if ((st = route(ctx, X, s.k, s.precision_word, &r, &prec)) != FL_STATUS_OK)
        return st;
    if (s.metric == FLI_METRIC_COSINE && X->mem == FL_MEM_HOST) {
        const int64_t ld = fli_ld(X);
        for (int64_t i = 0; i < X->rows; i++) {
            double nrm = 0;
            for (int64_t j = 0; j < X->cols; j++) {
                double v = X->dtype == FL_DTYPE_F32 ? ((const float *)X->data)[i * ld + j]
                                                    : ((const double *)X->data)[i * ld + j];
                nrm += v * v;
            }
            if (nrm == 0)
                return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                                "X row %lld is all zeros: metric=cosine needs rows of non-zero norm",
                                (long long)i);
        }
    }
    fli_log(ctx, FL_LOG_INFO, "kmeans %lld x %lld, k=%lld: %s/%s (%s)", (long long)X->rows,
            (long long)X->cols, (long long)s.k, fl_backend_name(r.backend), r.variant, r.reason);

    const size_t es = fl_dtype_size(X->dtype);
    void *init = NULL;
    fli_kmeans_job job;
    memset(&job, 0, sizeof job);
    job.X = X->data;
    job.dtype = X->dtype;
    job.x_dev = fli_array_device(X);
    job.n = X->rows;
    job.d = X->cols;
    job.ld = fli_ld(X);
    job.weights = w ? w->data : NULL;
    job.k = s.k;
    job.init = s.init;
    job.n_init = s.n_init;
    job.max_iter = s.max_iter;
    job.tol = s.tol;
    job.metric = s.metric;
    job.precision = prec;
    job.backend = r.backend;
    job.seed = s.seed;
    job.n_local_trials = s.n_local_trials;
    job.inertia_trace = trace;
    job.trace_cap = trace ? trace_cap : 0;

    float *X32 = NULL, *w32 = NULL, *C32 = NULL;
    if (s.init == FLI_KM_INIT_ARRAY) {
        init = fli_malloc(ctx, es * (size_t)(s.k * X->cols), "init centres");
        if (!init)
            return FL_STATUS_OUT_OF_MEMORY;
        for (int64_t i = 0; i < s.k * X->cols; i++) {
            if (X->dtype == FL_DTYPE_F32 || r.backend != FL_BACKEND_CPU)
                ((float *)init)[i] = (float)p->init_array[i];
            else
                ((double *)init)[i] = p->init_array[i];
        }
        job.init_centers = init;
    }
    if (r.backend == FL_BACKEND_CPU) {
        if (centers_dev >= 0 || (labels && labels_dev >= 0)) {
            st = fli_fail(ctx, FL_STATUS_INTERNAL, "CPU fit with device outputs");
            goto done;
        }
        job.centers = centers;
        job.centers_dev = -1;
        job.labels = labels;
        job.labels_dev = -1;
        st = fli_cpu_kmeans_fit(ctx, &job);
    } else {
        const fli_cuda_api *api;
        fli_cuda_env *env;
        if ((st = fli_cuda_acquire(ctx, &api, &env)) != FL_STATUS_OK)
            goto done;
        if (X->dtype == FL_DTYPE_F64) {
            /* The GPU computes in float32: convert on the host, convert back. */
            if (X->mem != FL_MEM_HOST) {
                st = fli_fail(ctx, FL_STATUS_UNSUPPORTED,
                              "float64 X in device memory: the GPU path computes in float32; pass "
                              "float32 device data or float64 host data");
                goto done;
            }
            X32 = fli_host_f32_copy(ctx, X);
            fl_array wa;
            if (w) {
                wa = *w;
                w32 = fli_host_f32_copy(ctx, &wa);
            }
            C32 = fli_malloc(ctx, sizeof(float) * (size_t)(s.k * X->cols), "float32 centres");
            if (!X32 || (w && !w32) || !C32) {
                st = FL_STATUS_OUT_OF_MEMORY;
                goto done;
            }
            job.X = X32;
            job.dtype = FL_DTYPE_F32;
            job.ld = X->cols;
            job.weights = w32;
            job.centers = C32;
            job.centers_dev = -1;
        } else {
            job.centers = centers;
            job.centers_dev = centers_dev;
        }
        job.labels = labels;
        job.labels_dev = labels_dev;
        /* Host data that does not fit in device memory is streamed in chunks;
         * the plan (the module's own arena layout) decides the chunk size
         * under a budget of 90% of the device's memory. */
        fl_hw_props hw;
        if (fli_ctx_hw(ctx, &hw) && hw.total_mem_bytes > 0) {
            fli_kmeans_cuda_plan plan;
            st = fli_kmeans_plan_cuda(job.n, job.d, job.k, job.precision, job.x_dev >= 0, job.weights != NULL,
                                      job.metric, (size_t)(hw.total_mem_bytes / 10 * 9), &plan);
            if (st) {
                st = fli_fail(ctx, st,
                              "kmeans %lld x %lld, k=%lld does not fit in the %.1f GiB of %s, even "
                              "streaming X in chunks",
                              (long long)job.n, (long long)job.d, (long long)job.k,
                              (double)hw.total_mem_bytes / (1 << 30), hw.name);
                goto done;
            }
            job.chunk_rows = plan.chunked ? plan.chunk_rows : 0;
        }
        st = api->kmeans_fit(env, &job);
        if (!st && C32) {
            if (centers_dev >= 0) {
                st = fli_fail(ctx, FL_STATUS_INTERNAL, "f64 centres on device");
                goto done;
            }
            for (int64_t i = 0; i < s.k * X->cols; i++)
                ((double *)centers)[i] = C32[i];
        }
    }
    if (!st) {
        if (inertia)
            *inertia = job.inertia;
        if (n_iter)
            *n_iter = job.n_iter;
        if (trace_len)
            *trace_len = job.trace_len;
    }
done:
    fli_free(ctx, init);
    fli_free(ctx, X32);
    fli_free(ctx, w32);
    fli_free(ctx, C32);
    return st;
}

/* Assignment of X to given host centres: labels / transform / objective. */
static fl_status kmeans_assign(fl_ctx *ctx, const fl_params *p, const fl_array *X, const fl_array *w,
                               const void *centers, fl_dtype cdtype, int64_t k, int64_t d, int32_t *labels,
                               void *transform, int64_t tld, int32_t out_dev, double *inertia)
{
    fl_status st = check_X(ctx, X, "X");
    if (!st)
        st = check_weights(ctx, w, X);
    if (st)
        return st;
    if (X->cols != d)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "X has %lld features, but KMeans was fitted with %lld features", (long long)X->cols,
                        (long long)d);
    fl_route r;
    fli_precision prec;
    if ((st = route(ctx, X, k, fli_param_word(p, "precision"), &r, &prec)) != FL_STATUS_OK)
        return st;
    fli_kmeans_assign_job job;
    memset(&job, 0, sizeof job);
    job.X = X->data;
    job.dtype = X->dtype;
    job.x_dev = fli_array_device(X);
    job.n = X->rows;
    job.d = d;
    job.ld = fli_ld(X);
    job.weights = w ? w->data : NULL;
    job.k = k;
    job.metric = (fli_metric)fli_param_word(p, "metric");
    job.precision = prec;
    job.backend = r.backend;
    job.labels = labels;
    job.transform = transform;
    job.transform_ld = tld;
    job.out_dev = out_dev;

    const size_t es = fl_dtype_size(X->dtype);
    void *cconv = NULL;
    float *X32 = NULL, *w32 = NULL, *T32 = NULL;
    if (cdtype != X->dtype) {
        /* Centres fitted in one precision, data in the other: convert. */
        cconv = fli_malloc(ctx, es * (size_t)(k * d), "converted centres");
        if (!cconv)
            return FL_STATUS_OUT_OF_MEMORY;
        for (int64_t i = 0; i < k * d; i++) {
            double v = cdtype == FL_DTYPE_F32 ? ((const float *)centers)[i] : ((const double *)centers)[i];
            if (X->dtype == FL_DTYPE_F32)
                ((float *)cconv)[i] = (float)v;
            else
                ((double *)cconv)[i] = v;
        }
        centers = cconv;
    }
    job.centers = centers;
    job.centers_dev = -1;
    if (r.backend == FL_BACKEND_CPU) {
        st = fli_cpu_kmeans_assign(ctx, &job);
    } else {
        const fli_cuda_api *api;
        fli_cuda_env *env;
        if ((st = fli_cuda_acquire(ctx, &api, &env)) != FL_STATUS_OK)
            goto done;
        if (X->dtype == FL_DTYPE_F64) {
            if (X->mem != FL_MEM_HOST) {
                st = fli_fail(ctx, FL_STATUS_UNSUPPORTED,
                              "float64 X in device memory: pass float32 device data");
                goto done;
            }
            fl_array ca = fl_array_host((void *)centers, FL_DTYPE_F64, k, d);
            float *c32 = fli_host_f32_copy(ctx, &ca);
            X32 = fli_host_f32_copy(ctx, X);
            if (w) {
                fl_array wa = *w;
                w32 = fli_host_f32_copy(ctx, &wa);
            }
            if (transform)
                T32 = fli_malloc(ctx, sizeof(float) * (size_t)(X->rows * k), "float32 transform");
            if (!c32 || !X32 || (w && !w32) || (transform && !T32)) {
                fli_free(ctx, c32);
                st = FL_STATUS_OUT_OF_MEMORY;
                goto done;
            }
            fli_free(ctx, cconv);
            cconv = c32;
            job.centers = c32;
            job.X = X32;
            job.dtype = FL_DTYPE_F32;
            job.ld = d;
            job.weights = w32;
            job.transform = T32;
            job.transform_ld = k;
        }
        st = api->kmeans_assign(env, &job);
        if (!st && T32)
            for (int64_t i = 0; i < X->rows; i++)
                for (int64_t j = 0; j < k; j++)
                    ((double *)transform)[i * tld + j] = T32[i * k + j];
    }
    if (!st && inertia)
        *inertia = job.inertia;
done:
    fli_free(ctx, cconv);
    fli_free(ctx, X32);
    fli_free(ctx, w32);
    fli_free(ctx, T32);
    return st;
}

/* ---- the model interface ------------------------------------------------------ */

static fl_status km_fit(fl_model *m, const fl_array *X, const fl_array *y, const fl_array *w,
                        fli_attr_set *out)
{
    fl_ctx *ctx = m->ctx;
    (void)y;
    fl_status st = check_X(ctx, X, "X");
    if (st)
        return st;
    const int64_t k = fli_param_int(m->params, "n_clusters");
    if (k > X->rows)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "n_clusters=%lld: must be in [1, n_samples=%lld]",
                        (long long)k, (long long)X->rows);
    void *C, *inertia, *n_iter, *nfeat;
    int32_t *labels;
    if ((st = fli_attr_add(ctx, out, "cluster_centers_", X->dtype, k, X->cols, &C)) ||
        (st = fli_attr_add(ctx, out, "labels_", FL_DTYPE_I32, X->rows, 1, (void **)&labels)) ||
        (st = fli_attr_add(ctx, out, "inertia_", FL_DTYPE_F64, 1, 1, &inertia)) ||
        (st = fli_attr_add(ctx, out, "n_iter_", FL_DTYPE_I64, 1, 1, &n_iter)) ||
        (st = fli_attr_add(ctx, out, "n_features_in_", FL_DTYPE_I64, 1, 1, &nfeat)))
        return st;
    st = kmeans_run(ctx, m->params, X, w, C, -1, labels, -1, inertia, n_iter, NULL, 0, NULL);
    if (!st)
        *(int64_t *)nfeat = X->cols;
    return st;
}

static fl_status check_out(fl_ctx *ctx, const fl_array *out, fl_dtype dt, int64_t rows, int64_t cols,
                           const char *what)
{
    return fli_check_out(ctx, out, dt, rows, cols, what);
}

static fl_status km_predict(fl_model *m, const fl_array *X, fl_array *out)
{
    const fli_attr *C = fli_model_attr(m, "cluster_centers_");
    fl_status st = fli_check_array(m->ctx, X, "X");
    if (st)
        return st;
    if ((st = check_out(m->ctx, out, FL_DTYPE_I32, X->rows, 1, "labels out")) != FL_STATUS_OK)
        return st;
    return kmeans_assign(m->ctx, m->params, X, NULL, C->data, C->dtype, C->rows, C->cols, out->data, NULL, 0,
                         fli_array_device(out), NULL);
}

static fl_status km_transform(fl_model *m, const fl_array *X, fl_array *out)
{
    const fli_attr *C = fli_model_attr(m, "cluster_centers_");
    fl_status st = fli_check_array(m->ctx, X, "X");
    if (st)
        return st;
    if ((st = check_out(m->ctx, out, X->dtype, X->rows, C->rows, "transform out")) != FL_STATUS_OK)
        return st;
    return kmeans_assign(m->ctx, m->params, X, NULL, C->data, C->dtype, C->rows, C->cols, NULL, out->data,
                         fli_ld(out), fli_array_device(out), NULL);
}

static fl_status km_score(fl_model *m, const fl_array *X, const fl_array *y, const fl_array *w, double *out)
{
    (void)y;
    const fli_attr *C = fli_model_attr(m, "cluster_centers_");
    double inertia;
    fl_status st = kmeans_assign(m->ctx, m->params, X, w, C->data, C->dtype, C->rows, C->cols, NULL, NULL, 0,
                                 -1, &inertia);
    if (!st)
        *out = -inertia;
    return st;
}

static fl_status km_check_attrs(fl_ctx *ctx, const fl_params *p, const fli_attr_set *set)
{
    const fli_attr *C = fli_attr_find(set, "cluster_centers_");
    const fli_attr *nf = fli_attr_find(set, "n_features_in_");
    const fli_attr *lab = fli_attr_find(set, "labels_");
    const fli_attr *in = fli_attr_find(set, "inertia_");
    const fli_attr *it = fli_attr_find(set, "n_iter_");
    if (!C || !nf || !lab || !in || !it)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "kmeans model is missing attributes");
    const int64_t k = fli_param_int(p, "n_clusters");
    if ((C->dtype != FL_DTYPE_F32 && C->dtype != FL_DTYPE_F64) || C->rows != k || C->cols < 1 ||
        nf->dtype != FL_DTYPE_I64 || nf->rows != 1 || nf->cols != 1 || *(int64_t *)nf->data != C->cols ||
        lab->dtype != FL_DTYPE_I32 || lab->cols != 1 || in->dtype != FL_DTYPE_F64 || in->rows != 1 ||
        in->cols != 1 || it->dtype != FL_DTYPE_I64 || it->rows != 1 || it->cols != 1)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "kmeans model attributes have inconsistent shapes");
    for (int64_t i = 0; i < lab->rows; i++) {
        int32_t v = ((const int32_t *)lab->data)[i];
        if (v < 0 || v >= k)
            return fli_fail(ctx, FL_STATUS_CORRUPT, "kmeans model: label %d out of range", v);
    }
    return FL_STATUS_OK;
}

const fli_algo fli_algo_kmeans = {
    .name = "kmeans",
    .params = fli_kmeans_params,
    .n_params = FLI_KMEANS_N_PARAMS,
    .attr_names = kmeans_attrs,
    .check_params = check_params,
    .fit = km_fit,
    .predict = km_predict,
    .transform = km_transform,
    .score = km_score,
    .check_attrs = km_check_attrs,
    .fit_labels_attr = "labels_",
};

/* ---- typed C functions ----------------------------------------------------- */

static fl_status default_params(fl_ctx *ctx, const fl_params **p, fl_params *storage)
{
    if (*p) {
        if ((*p)->algo != &fli_algo_kmeans)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG, "parameters are for '%s', not kmeans",
                            (*p)->algo->name);
        return FL_STATUS_OK;
    }
    fl_status st = fli_params_init_defaults(ctx, storage, &fli_algo_kmeans);
    *p = storage;
    return st;
}

fl_status fl_kmeans_fit(fl_ctx *ctx, const fl_array *X, const fl_array *sample_weight,
                        const fl_params *params, fl_array *centers, fl_array *labels, double *inertia,
                        int64_t *n_iter)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    fl_params storage;
    fl_status st = default_params(ctx, &params, &storage);
    if (!st)
        st = check_X(ctx, X, "X");
    if (st)
        return st;
    const int64_t k = fli_param_int(params, "n_clusters");
    if ((st = check_out(ctx, centers, X->dtype, k, X->cols, "centers")) != FL_STATUS_OK)
        return st;
    if (labels && (st = check_out(ctx, labels, FL_DTYPE_I32, X->rows, 1, "labels")) != FL_STATUS_OK)
        return st;
    const int32_t cdev = fli_array_device(centers);
    /* Strided centre outputs go through a dense staging copy. */
    if (fli_ld(centers) != centers->cols && cdev >= 0)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "centers in device memory must be dense (ld == cols)");
    if (cdev >= 0 && X->mem == FL_MEM_HOST)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "centers in device memory need X in device memory");
    void *cbuf = centers->data;
    if (fli_ld(centers) != centers->cols) {
        cbuf = fli_malloc(ctx, fl_dtype_size(X->dtype) * (size_t)(k * X->cols), "centres staging");
        if (!cbuf)
            return FL_STATUS_OUT_OF_MEMORY;
    }
    st = kmeans_run(ctx, params, X, sample_weight, cbuf, cdev, labels ? labels->data : NULL,
                    labels ? fli_array_device(labels) : -1, inertia, n_iter, NULL, 0, NULL);
    if (cbuf != centers->data) {
        if (!st) {
            const size_t es = fl_dtype_size(X->dtype);
            for (int64_t i = 0; i < k; i++)
                memcpy((char *)centers->data + (size_t)(i * fli_ld(centers)) * es,
                       (char *)cbuf + (size_t)(i * X->cols) * es, es * (size_t)X->cols);
        }
        fli_free(ctx, cbuf);
    }
    return st;
}

fl_status fl_kmeans_fit_batched(fl_ctx *ctx, const fl_array *X, int64_t batch, const fl_params *params,
                                fl_array *centers, fl_array *labels, double *inertia)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    fl_params storage;
    fl_status st = default_params(ctx, &params, &storage);
    if (!st)
        st = fli_check_array(ctx, X, "X");
    if (st)
        return st;
    if (batch < 1 || X->rows % batch != 0 || X->rows / batch < 1)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "batch=%lld: must be >= 1 and divide X's %lld rows (X is batch x n rows)",
                        (long long)batch, (long long)X->rows);
    const int64_t n = X->rows / batch, d = X->cols, k = fli_param_int(params, "n_clusters");
    if ((st = check_out(ctx, centers, X->dtype, batch * k, d, "centers")) != FL_STATUS_OK)
        return st;
    if (labels && (st = check_out(ctx, labels, FL_DTYPE_I32, X->rows, 1, "labels")) != FL_STATUS_OK)
        return st;
    if (fli_ld(centers) != d)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "centers must be dense (ld == n_features)");
    /* Validate every problem before computing any, so an error writes nothing. */
    for (int64_t b = 0; b < batch; b++) {
        fl_array Xb = *X;
        Xb.data = (char *)X->data + (size_t)(b * n * fli_ld(X)) * fl_dtype_size(X->dtype);
        Xb.rows = n;
        if ((st = check_X(ctx, &Xb, "X")) != FL_STATUS_OK)
            return st;
        km_setup s;
        if ((st = setup(ctx, params, &Xb, &s)) != FL_STATUS_OK)
            return st;
    }
    const size_t es = fl_dtype_size(X->dtype);
    const int32_t cdev = fli_array_device(centers), ldev = labels ? fli_array_device(labels) : -1;
    /* Stage results so that a failure in problem b leaves every output untouched. */
    void *cst = fli_malloc(ctx, es * (size_t)(batch * k * d), "batched centres");
    int32_t *lst = labels ? fli_malloc(ctx, sizeof(int32_t) * (size_t)X->rows, "batched labels") : NULL;
    double *ist = fli_malloc(ctx, sizeof(double) * (size_t)batch, "batched inertia");
    if (!cst || (labels && !lst) || !ist) {
        st = FL_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    for (int64_t b = 0; b < batch && !st; b++) {
        fl_array Xb = *X;
        Xb.data = (char *)X->data + (size_t)(b * n * fli_ld(X)) * es;
        Xb.rows = n;
        st = kmeans_run(ctx, params, &Xb, NULL, (char *)cst + (size_t)(b * k * d) * es, -1,
                        lst ? lst + b * n : NULL, -1, &ist[b], NULL, NULL, 0, NULL);
        if (!st)
            st = fli_progress(ctx, "kmeans.batch", b + 1, batch);
    }
    if (!st)
        st = fli_copy(ctx, centers->data, cdev, cst, -1, es * (size_t)(batch * k * d));
    if (!st && labels)
        st = fli_copy(ctx, labels->data, ldev, lst, -1, sizeof(int32_t) * (size_t)X->rows);
    if (!st && inertia)
        memcpy(inertia, ist, sizeof(double) * (size_t)batch);
done:
    fli_free(ctx, cst);
    fli_free(ctx, lst);
    fli_free(ctx, ist);
    return st;
}

/* Test hook (not in the public header): a fit that also returns the
 * objective at the start of every Lloyd iteration of the best run. */
FL_API fl_status fl_kmeans_fit_traced(fl_ctx *ctx, const fl_array *X, const fl_params *params, void *centers,
                                      double *inertia, double *trace, int64_t trace_cap, int64_t *trace_len);
fl_status fl_kmeans_fit_traced(fl_ctx *ctx, const fl_array *X, const fl_params *params, void *centers,
                               double *inertia, double *trace, int64_t trace_cap, int64_t *trace_len)
{
    if (!ctx || !params || !centers || !trace || trace_cap < 1 || !trace_len)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "fl_kmeans_fit_traced: NULL argument");
    fli_clear_error(ctx);
    return kmeans_run(ctx, params, X, NULL, centers, -1, NULL, -1, inertia, NULL, trace, trace_cap,
                      trace_len);
}
