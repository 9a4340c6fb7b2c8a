/*
 * knn.c — exact nearest neighbours (scikit-learn's NearestNeighbors):
 * parameter resolution and validation, routing, the driver shared by the
 * model handle and fl_knn_search, and the fitted model's kneighbors and
 * radius_neighbors.
 *
 * Semantics follow scikit-learn: metric minkowski with p (p=2 is
 * euclidean, p=1 manhattan), kneighbors(X=None) leaves each training point
 * out of its own neighbours, n_neighbors above the candidates is an error
 * worded as scikit-learn words it. Results are ordered nearest first and
 * equal distances by ascending index on every backend (knn_job.h), so the
 * CPU and the GPU agree index for index where their distances agree. The
 * model keeps a dense copy of the training data (fit_X_) in its dtype.
 *
 * The CPU backend computes in the data's precision; the CUDA module in
 * float32 (float64 host data is converted on the way in and the distances
 * on the way out). Results the module or the CPU cannot write where the
 * caller wants them (another memory, another dtype) are staged on the host.
 */
#include <math.h>
#include <string.h>

#include "algo/knn_job.h"
#include "algo/knn_params.h"
#include "backends/cpu/cpu.h"
#include "backends/cuda/fl_cuda_module.h"
#include "core/internal.h"
#include "route/route.h"

static const char *const knn_attrs[] = {"fit_X_", "n_features_in_", "n_samples_fit_", NULL};

/* ---- parameters ---------------------------------------------------------- */

typedef struct knn_setup {
    fli_knn_metric metric;
    double p;
    int precision_word;
} knn_setup;

static fl_status setup(fl_ctx *ctx, const fl_params *prm, knn_setup *s)
{
    const double p = fli_param_float(prm, "p");
    memset(s, 0, sizeof *s);
    s->p = p;
    s->precision_word = fli_param_word(prm, "precision");
    if (!(p >= 1))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "p=%g: the minkowski metric needs p >= 1", p);
    s->metric = fli_knn_resolve_metric(fli_param_word(prm, "metric"), p);
    return FL_STATUS_OK;
}

static fl_status check_radius(fl_ctx *ctx, fli_knn_metric metric, double radius)
{
    if (radius != radius)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "radius is NaN: expected a number >= 0");
    if (radius < 0 && metric != FLI_KNN_INNER)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "radius=%g: must be >= 0 (only metric=inner_product takes a negative radius: the "
                        "smallest inner product kept)",
                        radius);
    return FL_STATUS_OK;
}

static fl_status check_params(fl_ctx *ctx, const fl_params *p)
{
    knn_setup s;
    fl_status st = setup(ctx, p, &s);
    return st ? st : check_radius(ctx, s.metric, fli_param_float(p, "radius"));
}

/* ---- routing and the driver ------------------------------------------------ */

/* The backend for this context and shape; device data needs a GPU, and a
 * context on device 'cuda' without a usable one says why. */
static fl_status route(fl_ctx *ctx, int64_t n_db, int64_t n_q, int64_t d, fl_dtype dt, int64_t k,
                       const knn_setup *s, int on_device, fl_route *r, fli_precision *prec)
{
    fl_hw_props hw;
    int gpu;
    fl_status st = fli_ctx_gpu(ctx, &hw, &gpu);
    if (st)
        return st;
    if (!gpu && on_device)
        return fli_fail(
            ctx, FL_STATUS_INVALID_ARG,
            "the data lives in CUDA memory but the context's device is '%s': use 'cuda' or 'auto'",
            ctx->device_str);
    return fli_route_knn(gpu ? &hw : NULL, n_db, n_q, d, dt, k, s->metric, s->precision_word, on_device,
                         ctx->kind == FLI_DEVICE_CUDA, r, prec);
}

/* Copies a host n x k block (dense) into an output descriptor (any memory,
 * any ld) of the same element size. */
static fl_status put_rows(fl_ctx *ctx, fl_array *dst, const void *src, int64_t n, int64_t k, size_t es)
{
    const int32_t dev = fli_array_device(dst);
    const int64_t ld = fli_ld(dst);
    if (ld == k)
        return fli_copy(ctx, dst->data, dev, src, -1, es * (size_t)(n * k));
    for (int64_t i = 0; i < n; i++) {
        fl_status st = fli_copy(ctx, (char *)dst->data + es * (size_t)(i * ld), dev,
                                (const char *)src + es * (size_t)(i * k), -1, es * (size_t)k);
        if (st)
            return st;
    }
    return FL_STATUS_OK;
}

/* A dense host copy of a host matrix in dtype `to` (from f32 or f64). */
static void *dense_copy(fl_ctx *ctx, const void *src, fl_dtype from, int64_t ld, int64_t rows, int64_t cols,
                        fl_dtype to)
{
    void *out = fli_calloc(ctx, (size_t)rows, fl_dtype_size(to) * (size_t)cols, "converted data");
    if (!out)
        return NULL;
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = 0; j < cols; j++) {
            const double v =
                from == FL_DTYPE_F32 ? ((const float *)src)[i * ld + j] : ((const double *)src)[i * ld + j];
            if (to == FL_DTYPE_F32)
                ((float *)out)[i * cols + j] = (float)v;
            else
                ((double *)out)[i * cols + j] = v;
        }
    }
    return out;
}

/* A dense float32 copy of rows x d float64 host data of row stride ld. */
static float *f32_rows(fl_ctx *ctx, const void *data, int64_t rows, int64_t d, int64_t ld)
{
    fl_array a = fl_array_host((void *)data, FL_DTYPE_F64, rows, d);
    a.ld = ld;
    return fli_host_f32_copy(ctx, &a);
}

/*
 * Runs a validated search into the caller's outputs (dist may be NULL; both
 * already checked for shape and dtype). `in` holds what the search reads:
 * the database and the queries in one dtype, q NULL for the database
 * itself with each row left out of its own neighbours. The backend writes
 * straight into the outputs when it can; otherwise (another memory, float64
 * distances from the float32 GPU path) it writes host staging buffers that
 * are delivered at the end. Nothing is written on failure.
 */
static fl_status knn_run(fl_ctx *ctx, const knn_setup *s, const fli_knn_job *in, int64_t k, fl_array *dist,
                         fl_array *idx)
{
    const int self = in->q == NULL;
    const int64_t n_q = self ? in->n_db : in->n_q;
    const int on_device = in->db_dev >= 0 || (!self && in->q_dev >= 0);
    fl_route r;
    fli_precision prec;
    fl_status st = route(ctx, in->n_db, n_q, in->d, in->dtype, k, s, on_device, &r, &prec);
    if (st)
        return st;
    fli_log(ctx, FL_LOG_INFO, "knn %lld queries x %lld rows x %lld features, k=%lld: %s/%s (%s)",
            (long long)n_q, (long long)in->n_db, (long long)in->d, (long long)k, fl_backend_name(r.backend),
            r.variant, r.reason);
    const int gpu = r.backend != FL_BACKEND_CPU;
    const fl_dtype dt = gpu ? FL_DTYPE_F32 : in->dtype; /* what the backend computes in */

    fli_knn_job job = *in;
    if (self) {
        job.q = in->db;
        job.q_dev = in->db_dev;
        job.n_q = in->n_db;
        job.q_ld = in->db_ld;
    }
    job.dtype = dt;
    job.k = k;
    job.metric = s->metric;
    job.p = s->p;
    job.precision = prec;
    job.backend = r.backend;
    job.self_exclude = self;
    job.q_offset = 0;

    const fli_cuda_api *api = NULL;
    fli_cuda_env *env = NULL;
    float *db32 = NULL, *q32 = NULL;
    void *sd = NULL;
    int64_t *si = NULL;
    if (gpu) {
        if ((st = fli_cuda_acquire(ctx, &api, &env)) != FL_STATUS_OK)
            return st;
        if (in->dtype == FL_DTYPE_F64) {
            if (on_device)
                return fli_fail(ctx, FL_STATUS_UNSUPPORTED,
                                "float64 data in device memory: the GPU search computes in float32; pass "
                                "float32 device data or float64 host data");
            if (!(db32 = f32_rows(ctx, in->db, in->n_db, in->d, in->db_ld)) ||
                (!self && !(q32 = f32_rows(ctx, in->q, in->n_q, in->d, in->q_ld)))) {
                st = FL_STATUS_OUT_OF_MEMORY;
                goto done;
            }
            job.db = db32;
            job.q = self ? db32 : q32;
            job.db_ld = job.q_ld = in->d;
        }
    }
    /* Straight into the caller's outputs when the backend can write them:
     * one memory for both, and the dtype it computes in. */
    const int32_t odev = fli_array_device(idx);
    const int direct = (gpu || odev < 0) && (!dist || (dist->dtype == dt && fli_array_device(dist) == odev));
    if (direct) {
        job.idx = idx->data;
        job.idx_ld = fli_ld(idx);
        job.dist = dist ? dist->data : NULL;
        job.dist_ld = dist ? fli_ld(dist) : 0;
        job.out_dev = odev;
    } else {
        si = fli_malloc(ctx, sizeof(int64_t) * (size_t)(n_q * k), "knn staged indices");
        if (dist)
            sd = fli_malloc(ctx, fl_dtype_size(dt) * (size_t)(n_q * k), "knn staged distances");
        if (!si || (dist && !sd)) {
            st = FL_STATUS_OUT_OF_MEMORY;
            goto done;
        }
        job.idx = si;
        job.idx_ld = k;
        job.dist = sd;
        job.dist_ld = k;
        job.out_dev = -1;
    }
    st = gpu ? api->knn_search(env, &job) : fli_cpu_knn(ctx, &job);
    if (st || direct)
        goto done;
    if (dist && dist->dtype != dt) {
        void *conv = dense_copy(ctx, sd, dt, k, n_q, k, dist->dtype);
        if (!conv) {
            st = FL_STATUS_OUT_OF_MEMORY;
            goto done;
        }
        fli_free(ctx, sd);
        sd = conv;
    }
    if ((st = put_rows(ctx, idx, si, n_q, k, sizeof(int64_t))) == FL_STATUS_OK && dist)
        st = put_rows(ctx, dist, sd, n_q, k, fl_dtype_size(dist->dtype));
done:
    fli_free(ctx, db32);
    fli_free(ctx, q32);
    fli_free(ctx, sd);
    fli_free(ctx, si);
    return st;
}

/* k against the candidates, in scikit-learn's words. */
static fl_status check_k(fl_ctx *ctx, int64_t k, int64_t n_fit, int64_t n_q, int self)
{
    if (k < 1)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "n_neighbors=%lld: expected n_neighbors > 0",
                        (long long)k);
    if (self && k >= n_fit)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "Expected n_neighbors < n_samples_fit, but n_neighbors = %lld, n_samples_fit = %lld, "
                        "n_samples = %lld (X=None leaves each point out of its own neighbours)",
                        (long long)k, (long long)n_fit, (long long)n_fit);
    if (!self && k > n_fit)
        return fli_fail(
            ctx, FL_STATUS_INVALID_ARG,
            "Expected n_neighbors <= n_samples_fit, but n_neighbors = %lld, n_samples_fit = %lld, "
            "n_samples = %lld",
            (long long)k, (long long)n_fit, (long long)n_q);
    return FL_STATUS_OK;
}

static fl_status check_outputs(fl_ctx *ctx, fl_dtype dt, int64_t n_q, int64_t k, fl_array *dist,
                               fl_array *idx)
{
    if (!idx)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "indices is NULL: expected an i64 %lld x %lld array",
                        (long long)n_q, (long long)k);
    fl_status st = fli_check_out(ctx, idx, FL_DTYPE_I64, n_q, k, "indices");
    if (!st && dist)
        st = fli_check_out(ctx, dist, dt, n_q, k, "distances");
    return st;
}

/* ---- the model interface ----------------------------------------------------- */

static fl_status knn_fit(fl_model *m, const fl_array *X, const fl_array *y, const fl_array *w,
                         fli_attr_set *out)
{
    fl_ctx *ctx = m->ctx;
    (void)y;
    if (w)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "knn takes no sample_weight");
    fl_status st = fli_check_data(ctx, X, "X");
    if (!st)
        st = check_params(ctx, m->params);
    if (st)
        return st;
    const int64_t n = X->rows, d = X->cols;
    void *fx, *nf, *ns;
    if ((st = fli_attr_add(ctx, out, "fit_X_", X->dtype, n, d, &fx)) ||
        (st = fli_attr_add(ctx, out, "n_features_in_", FL_DTYPE_I64, 1, 1, &nf)) ||
        (st = fli_attr_add(ctx, out, "n_samples_fit_", FL_DTYPE_I64, 1, 1, &ns)))
        return st;
    fl_array dense = fl_array_host(fx, X->dtype, n, d);
    const size_t es = fl_dtype_size(X->dtype);
    if (fli_ld(X) == d) {
        st = fli_copy(ctx, fx, -1, X->data, fli_array_device(X), es * (size_t)(n * d));
    } else {
        for (int64_t i = 0; i < n && !st; i++)
            st = fli_copy(ctx, (char *)fx + es * (size_t)(i * d), -1,
                          (const char *)X->data + es * (size_t)(i * fli_ld(X)), fli_array_device(X),
                          es * (size_t)d);
    }
    /* device data was not checked on the way in: check the host copy */
    if (!st && X->mem != FL_MEM_HOST)
        st = fli_check_finite(ctx, &dense, "X");
    if (st)
        return st;
    *(int64_t *)nf = d;
    *(int64_t *)ns = n;
    return FL_STATUS_OK;
}

/* The model's training data in dtype `dt` (converted into *tmp when the
 * model was fitted in the other one). */
static const void *fit_data(fl_model *m, fl_dtype dt, void **tmp)
{
    const fli_attr *A = fli_model_attr(m, "fit_X_");
    *tmp = NULL;
    if (A->dtype == dt)
        return A->data;
    *tmp = dense_copy(m->ctx, A->data, A->dtype, A->cols, A->rows, A->cols, dt);
    return *tmp;
}

/* The start of a fitted model's search: the queries (X NULL: the training
 * set) against the model, and the parameters resolved. */
static fl_status model_setup(fl_model *m, const fl_array *X, knn_setup *s)
{
    const int64_t d = fli_model_attr(m, "fit_X_")->cols;
    if (X) {
        fl_status st = fli_check_data(m->ctx, X, "X");
        if (st)
            return st;
        if (X->cols != d)
            return fli_fail(m->ctx, FL_STATUS_INVALID_ARG,
                            "X has %lld features, but NearestNeighbors is expecting %lld features as input",
                            (long long)X->cols, (long long)d);
    }
    return setup(m->ctx, m->params, s);
}

static fl_status knn_kneighbors(fl_model *m, const fl_array *X, int64_t k, fl_array *dist, fl_array *idx)
{
    fl_ctx *ctx = m->ctx;
    const fli_attr *A = fli_model_attr(m, "fit_X_");
    const int64_t n = A->rows, d = A->cols;
    knn_setup s;
    fl_status st = model_setup(m, X, &s);
    if (!st)
        st = check_k(ctx, k, n, X ? X->rows : n, X == NULL);
    const fl_dtype dt = X ? X->dtype : A->dtype;
    const int64_t n_q = X ? X->rows : n;
    if (!st)
        st = check_outputs(ctx, dt, n_q, k, dist, idx);
    if (st)
        return st;
    void *tmp;
    const void *db = fit_data(m, dt, &tmp);
    if (!db)
        return FL_STATUS_OUT_OF_MEMORY;
    const fli_knn_job in = {.db = db,
                            .db_dev = -1,
                            .n_db = n,
                            .d = d,
                            .db_ld = d,
                            .q = X ? X->data : NULL,
                            .q_dev = X ? fli_array_device(X) : -1,
                            .n_q = n_q,
                            .q_ld = X ? fli_ld(X) : d,
                            .dtype = dt,
                            .db_key = m->generation};
    st = knn_run(ctx, &s, &in, k, dist, idx);
    fli_free(ctx, tmp);
    return st;
}

static fl_status knn_radius_neighbors(fl_model *m, const fl_array *X, double radius, int sort,
                                      fl_neighbors *out)
{
    fl_ctx *ctx = m->ctx;
    const fli_attr *A = fli_model_attr(m, "fit_X_");
    const int64_t n = A->rows, d = A->cols;
    knn_setup s;
    fl_status st = model_setup(m, X, &s);
    if (!st)
        st = check_radius(ctx, s.metric, radius);
    if (st)
        return st;
    if (X && X->mem != FL_MEM_HOST)
        return fli_fail(ctx, FL_STATUS_UNSUPPORTED,
                        "radius_neighbors runs on the CPU: pass X in host memory (kneighbors takes device "
                        "memory)");
    const fl_dtype dt = X ? X->dtype : A->dtype;
    void *tmp;
    const void *db = fit_data(m, dt, &tmp);
    if (!db)
        return FL_STATUS_OUT_OF_MEMORY;
    fli_knn_radius_job job;
    memset(&job, 0, sizeof job);
    job.db = db;
    job.n_db = n;
    job.d = d;
    job.db_ld = d;
    job.q = X ? X->data : db;
    job.n_q = X ? X->rows : n;
    job.q_ld = X ? fli_ld(X) : d;
    job.dtype = dt;
    job.metric = s.metric;
    job.p = s.p;
    job.radius = radius;
    job.sort = sort != 0;
    job.self_exclude = X == NULL;
    job.q_offset = 0;
    st = fli_cpu_knn_radius(ctx, &job);
    fli_free(ctx, tmp);
    if (st)
        return st;
    out->n_rows = job.n_q;
    out->nnz = job.nnz;
    out->indptr = job.indptr;
    out->indices = job.indices;
    out->distances = job.dist;
    out->dtype = dt;
    return FL_STATUS_OK;
}

static fl_status knn_check_attrs(fl_ctx *ctx, const fl_params *p, const fli_attr_set *set)
{
    const fli_attr *A = fli_attr_find(set, "fit_X_");
    const fli_attr *nf = fli_attr_find(set, "n_features_in_");
    const fli_attr *ns = fli_attr_find(set, "n_samples_fit_");
    if (!A || !nf || !ns)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "knn model is missing attributes");
    if ((A->dtype != FL_DTYPE_F32 && A->dtype != FL_DTYPE_F64) || A->rows < 1 || A->cols < 1 ||
        nf->dtype != FL_DTYPE_I64 || nf->rows != 1 || nf->cols != 1 ||
        *(const int64_t *)nf->data != A->cols || ns->dtype != FL_DTYPE_I64 || ns->rows != 1 ||
        ns->cols != 1 || *(const int64_t *)ns->data != A->rows)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "knn model attributes have inconsistent shapes");
    fl_array a = fl_array_host(A->data, A->dtype, A->rows, A->cols);
    if (fli_check_finite(ctx, &a, "fit_X_"))
        return fli_fail(ctx, FL_STATUS_CORRUPT, "knn model: fit_X_ holds NaN or Inf");
    return check_params(ctx, p);
}

/* The model keeps the raw training data, so every parameter is a search
 * parameter: a fitted model may change any of them (fl_model_set_param). */
static const char *const knn_search_params[] = {"n_neighbors", "radius",    "metric",  "p", "precision",
                                                "algorithm",   "leaf_size", "verbose", NULL};

const fli_algo fli_algo_knn = {
    .name = "knn",
    .params = fli_knn_params,
    .n_params = FLI_KNN_N_PARAMS,
    .attr_names = knn_attrs,
    .check_params = check_params,
    .fit = knn_fit,
    .check_attrs = knn_check_attrs,
    .kneighbors = knn_kneighbors,
    .radius_neighbors = knn_radius_neighbors,
    .search_params = knn_search_params,
};

/* ---- typed C functions ----------------------------------------------------- */

fl_status fl_knn_search(fl_ctx *ctx, const fl_array *X, const fl_array *Q, int64_t k, const fl_params *params,
                        fl_array *distances, fl_array *indices)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    fl_params defaults;
    if (!params) {
        fl_status st = fli_params_init_defaults(ctx, &defaults, &fli_algo_knn);
        if (st)
            return st;
        params = &defaults;
    }
    if (params->algo != &fli_algo_knn)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "parameters are for '%s', not knn", params->algo->name);
    knn_setup s;
    fl_status st = fli_check_data(ctx, X, "X");
    if (!st && Q)
        st = fli_check_data(ctx, Q, "Q");
    if (st)
        return st;
    if (Q && Q->cols != X->cols)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "Q has %lld features, but X has %lld: expected the same",
                        (long long)Q->cols, (long long)X->cols);
    if (Q && Q->dtype != X->dtype)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "Q is %s but X is %s: expected one dtype",
                        fl_dtype_name(Q->dtype), fl_dtype_name(X->dtype));
    if (Q && fli_array_device(Q) != fli_array_device(X))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "Q and X live in different memories: expected both on the host or both on one GPU");
    const int64_t n_q = Q ? Q->rows : X->rows;
    if ((st = setup(ctx, params, &s)) || (st = check_k(ctx, k, X->rows, n_q, Q == NULL)) ||
        (st = check_outputs(ctx, X->dtype, n_q, k, distances, indices)))
        return st;
    const fli_knn_job in = {.db = X->data,
                            .db_dev = fli_array_device(X),
                            .n_db = X->rows,
                            .d = X->cols,
                            .db_ld = fli_ld(X),
                            .q = Q ? Q->data : NULL,
                            .q_dev = Q ? fli_array_device(Q) : -1,
                            .n_q = n_q,
                            .q_ld = Q ? fli_ld(Q) : 0,
                            .dtype = X->dtype};
    return knn_run(ctx, &s, &in, k, distances, indices);
}

fl_status fl_knn_fit(fl_ctx *ctx, const fl_array *X, const fl_params *params, fl_model **out)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    if (!out)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "out is NULL: expected where to put the model");
    fl_model *m;
    fl_status st = fl_model_create(ctx, "knn", params, &m);
    if (!st && (st = fl_model_fit(m, X, NULL, NULL)) != FL_STATUS_OK)
        fl_model_free(m);
    if (!st)
        *out = m;
    return st;
}
