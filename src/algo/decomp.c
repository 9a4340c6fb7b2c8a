/*
 * decomp.c — PCA and TruncatedSVD: parameter resolution and validation,
 * routing, the driver shared by the model handle and the typed C functions,
 * and the fitted models' transform / inverse_transform / score_samples.
 *
 * Semantics follow scikit-learn 1.5+: PCA's svd_solver='auto' rule, its
 * n_components forms (whole number, variance fraction, none), ddof=1
 * variances, noise_variance_, whitening, the probabilistic-PCA likelihood;
 * TruncatedSVD's explained variance of the transformed data; and svd_flip
 * with u_based_decision=False (each component's largest-magnitude entry is
 * positive), so components match scikit-learn's, not only up to sign.
 *
 * A backend computes the decomposition (decomp_job.h) in float64 on the
 * host; only the CPU has one today. The attributes are stored in X's dtype.
 */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "algo/decomp_job.h"
#include "algo/decomp_la.h"
#include "algo/decomp_params.h"
#include "algo/linalg_iter.h"
#include "algo/linalg_topk.h"
#include "backends/cpu/cpu.h"
#include "backends/cuda/fl_cuda_module.h"
#include "core/internal.h"
#include "route/route.h"

static const char *const pca_attrs[] = {"components_",
                                        "explained_variance_",
                                        "explained_variance_ratio_",
                                        "singular_values_",
                                        "mean_",
                                        "noise_variance_",
                                        "n_components_",
                                        "n_features_in_",
                                        "n_samples_",
                                        NULL};
static const char *const tsvd_attrs[] = {
    "components_",      "explained_variance_", "explained_variance_ratio_",
    "singular_values_", "n_features_in_",      NULL};

/* PCA's svd_solver words (see decomp_params.c). */
enum { PCA_AUTO = 0, PCA_FULL = 1, PCA_EIGH = 2, PCA_ARPACK = 3, PCA_RANDOMIZED = 4 };

/* Everything a fit needs, resolved from the parameters and the shape. */
typedef struct dc_setup {
    int is_pca;
    fli_decomp_solver solver;
    int exact_truncated; /* arpack: n_components < min(n, d) */
    int64_t k;           /* components; for a fraction, the upper bound min(n, d) */
    double frac;         /* PCA: variance fraction in (0, 1), else 0 */
    int64_t n_iter, n_oversamples;
    fli_pin pin;
    uint64_t seed;
    fl_route route;
} dc_setup;

/* The CPU backend for a routing decision that chose it, or a clear error
 * when the context insists on the GPU or X lives in device memory. */
static fl_status cpu_backend(fl_ctx *ctx, const char *algo, const char *solver, const fl_array *X,
                             const fli_decomp_backend **be)
{
    if (ctx->kind == FLI_DEVICE_CUDA &&
        ((solver && !strcmp(solver, "covariance_eigh") && !strcmp(algo, "pca")) ||
         (solver && !strcmp(solver, "randomized")))) {
        /* these route to the GPU unless none is usable: say why */
        const fli_cuda_api *api;
        fli_cuda_env *env;
        fl_status st = fli_cuda_acquire(ctx, &api, &env);
        return st ? st : fli_fail(ctx, FL_STATUS_NO_DEVICE, "the requested GPU is not usable");
    }
    if (ctx->kind == FLI_DEVICE_CUDA)
        return fli_fail(
            ctx, FL_STATUS_UNSUPPORTED,
            "%s%s%s has no CUDA path yet (only PCA's covariance_eigh and the randomized solvers run "
            "on the GPU): use device 'cpu' or 'auto' (which runs it on the CPU)",
            algo, solver ? (strcmp(algo, "pca") ? " with algorithm=" : " with svd_solver=") : "",
            solver ? (strcmp(solver, "full") || !strcmp(algo, "pca") ? solver : "arpack") : "");
    if (X->mem != FL_MEM_HOST)
        return fli_fail(ctx, FL_STATUS_UNSUPPORTED,
                        "%s%s%s runs on the CPU only: pass X in host memory (only PCA's covariance_eigh and "
                        "the randomized solvers take device memory)",
                        algo, solver ? " with svd_solver=" : "", solver ? solver : "");
    *be = &fli_cpu_decomp;
    return FL_STATUS_OK;
}

/* The GPU in use for this context, or NULL (auto without a GPU, cpu). */
static const fl_hw_props *ctx_gpu(fl_ctx *ctx, fl_hw_props *hw)
{
    return fli_ctx_wants_gpu(ctx) && fli_ctx_hw(ctx, hw) ? hw : NULL;
}

static fl_status setup(fl_ctx *ctx, const fli_algo *a, const fl_params *p, const fl_array *X, dc_setup *s)
{
    memset(s, 0, sizeof *s);
    const int64_t n = X->rows, d = X->cols, mn = n < d ? n : d;
    s->is_pca = a == &fli_algo_pca;
    const int pin_word = fli_param_word(p, "power_iteration_normalizer"); /* auto|QR|LU|none */
    s->seed = fli_param_word(p, "random_state") == 0 ? ctx->seed : (uint64_t)fli_param_int(p, "random_state");
    s->n_oversamples = fli_param_int(p, "n_oversamples");
    if (s->is_pca) {
        if (n < 2)
            return fli_fail(
                ctx, FL_STATUS_INVALID_ARG,
                "PCA needs at least 2 samples (got n_samples=%lld): the variance of one sample is "
                "undefined",
                (long long)n);
        const int none = fli_param_word(p, "n_components") == 0;
        const double v = none ? -1.0 : fli_param_float(p, "n_components");
        if (!none && v >= 1 && v != floor(v))
            return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                            "n_components=%g: must be a whole number >= 1, a fraction in (0, 1) or none", v);
        if (!none && v == 0)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                            "n_components=0: must be a whole number >= 1, a fraction in (0, 1) or none");
        const int sw = fli_param_word(p, "svd_solver");
        fl_hw_props hw;
        /* the GPU is looked for only when the solver has a CUDA path, so
         * the other solvers never touch the driver */
        fli_route_decomp(NULL, 1, n, d, X->dtype, 0, 0, sw, v, &s->route, &s->solver);
        /* the randomized solver goes to the GPU only when asked for (device
         * 'cuda' or device data): 'auto' with host data never probes it */
        if (s->solver == FLI_DECOMP_EIGH ||
            (s->solver == FLI_DECOMP_RANDOMIZED && (ctx->kind == FLI_DEVICE_CUDA || X->mem == FL_MEM_CUDA)))
            fli_route_decomp(ctx_gpu(ctx, &hw), 1, n, d, X->dtype, X->mem == FL_MEM_CUDA,
                             ctx->kind == FLI_DEVICE_CUDA, sw, v, &s->route, &s->solver);
        s->exact_truncated = sw == PCA_ARPACK;
        const char *sn = s->exact_truncated ? "arpack" : s->route.variant;
        if (!none && v < 1) {
            if (s->solver == FLI_DECOMP_RANDOMIZED || s->exact_truncated)
                return fli_fail(
                    ctx, FL_STATUS_INVALID_ARG,
                    "n_components=%g: a variance fraction needs svd_solver full, covariance_eigh or "
                    "auto; with svd_solver='%s' give a whole number in [1, min(n_samples=%lld, "
                    "n_features=%lld)]",
                    v, sn, (long long)n, (long long)d);
            s->frac = v;
            s->k = mn;
        } else {
            s->k = none ? (s->exact_truncated ? mn - 1 : mn) : (int64_t)v;
            const int64_t hi = s->exact_truncated ? mn - 1 : mn;
            if (s->k < 1 || s->k > hi)
                return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                                "n_components=%lld: must be in [1, min(n_samples=%lld, n_features=%lld)%s] "
                                "with svd_solver='%s'",
                                (long long)s->k, (long long)n, (long long)d, s->exact_truncated ? " - 1" : "",
                                sn);
        }
        const int ip_auto = fli_param_word(p, "iterated_power") == 0;
        s->n_iter = ip_auto ? (s->k < 0.1 * (double)mn ? 7 : 4) : fli_param_int(p, "iterated_power");
    } else {
        s->k = fli_param_int(p, "n_components");
        const int alg = fli_param_word(p, "algorithm"); /* randomized|arpack */
        fl_hw_props hw;
        const int ask = alg != 1 && (ctx->kind == FLI_DEVICE_CUDA || X->mem == FL_MEM_CUDA);
        fli_route_decomp(ask ? ctx_gpu(ctx, &hw) : NULL, 0, n, d, X->dtype, X->mem == FL_MEM_CUDA,
                         ctx->kind == FLI_DEVICE_CUDA, alg, (double)s->k, &s->route, &s->solver);
        s->exact_truncated = alg == 1;
        if (d < 2)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                            "TruncatedSVD needs at least 2 features (got n_features=%lld)", (long long)d);
        const int64_t hi = s->exact_truncated ? mn - 1 : mn;
        if (s->k > hi)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                            "n_components=%lld: must be in [1, min(n_samples=%lld, n_features=%lld)%s] with "
                            "algorithm='%s'",
                            (long long)s->k, (long long)n, (long long)d, s->exact_truncated ? " - 1" : "",
                            s->exact_truncated ? "arpack" : "randomized");
        s->n_iter = fli_param_int(p, "n_iter");
    }
    s->pin = pin_word == 1   ? FLI_PIN_QR
             : pin_word == 2 ? FLI_PIN_LU
             : pin_word == 3 ? FLI_PIN_NONE
                             : (s->n_iter <= 2 ? FLI_PIN_NONE : FLI_PIN_LU);
    return FL_STATUS_OK;
}

/* scikit-learn's svd_flip(u_based_decision=False): the largest |entry| of
 * each row (the first one on ties) becomes positive. */
static void svd_flip_rows(double *C, int64_t k, int64_t d)
{
    for (int64_t i = 0; i < k; i++) {
        double *r = C + i * d;
        int64_t best = 0;
        for (int64_t j = 1; j < d; j++)
            if (fabs(r[j]) > fabs(r[best]))
                best = j;
        if (r[best] < 0)
            for (int64_t j = 0; j < d; j++)
                r[j] = -r[j];
    }
}

/* Writes v[0..len) into a new attribute of dtype dt (f32/f64), rows x cols. */
static fl_status put_attr(fl_ctx *ctx, fli_attr_set *out, const char *name, fl_dtype dt, int64_t rows,
                          int64_t cols, const double *v)
{
    void *p;
    fl_status st = fli_attr_add(ctx, out, name, dt, rows, cols, &p);
    if (st)
        return st;
    for (int64_t i = 0; i < rows * cols; i++) {
        if (dt == FL_DTYPE_F32)
            ((float *)p)[i] = (float)v[i];
        else
            ((double *)p)[i] = v[i];
    }
    return FL_STATUS_OK;
}

static fl_status put_int(fl_ctx *ctx, fli_attr_set *out, const char *name, int64_t v)
{
    void *p;
    fl_status st = fli_attr_add(ctx, out, name, FL_DTYPE_I64, 1, 1, &p);
    if (!st)
        *(int64_t *)p = v;
    return st;
}

/* Reads element i of a host f32/f64 buffer. */
static double at(const void *p, fl_dtype dt, int64_t i)
{
    return dt == FL_DTYPE_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* The column variances (ddof 0) of the n x k projection X C^T: TruncatedSVD's
 * explained_variance_. */
static fl_status projected_variance(fl_ctx *ctx, const fli_decomp_backend *be, const fl_array *X,
                                    const double *C, int64_t k, double *var)
{
    const int64_t n = X->rows;
    const size_t es = fl_dtype_size(X->dtype);
    void *Y = fli_malloc(ctx, es * (size_t)n * (size_t)k, "projection");
    if (!Y)
        return FL_STATUS_OUT_OF_MEMORY;
    fli_decomp_apply_job aj = {X->data, fli_ld(X), Y, k, X->dtype, n, X->cols, k, C, NULL, NULL, 0, -1, -1};
    fl_status st = be->apply(ctx, &aj);
    for (int64_t j = 0; j < k && !st; j++) {
        double m = 0, s = 0;
        for (int64_t i = 0; i < n; i++)
            m += at(Y, X->dtype, i * k + j);
        m /= (double)n;
        for (int64_t i = 0; i < n; i++) {
            const double v = at(Y, X->dtype, i * k + j) - m;
            s += v * v;
        }
        var[j] = s / (double)n;
    }
    fli_free(ctx, Y);
    return st;
}

/* The eigen step of covariance_eigh when few components are kept: the
 * top-k solver over fli_la (algo/linalg_topk.c; Chebyshev-filtered subspace
 * iteration in float64 to a residual of TOPK_TOL ||S||, 60x below the
 * float32 data's own rounding, 2^-24 ||S||: a pair's error, residual over
 * its gap, stays below what rounding X to float32 already moved it; 1e-10
 * took a fourth step at 1M x 512 -> 32 to go from 2.3e-10 to 2.3e-12), on
 * the GPU where cuSOLVER's float64 syevd
 * took 5.6 ms at d = 512 on the H100 (bench_pca). It needs a fixed number
 * of components (not a variance fraction, which needs every eigenvalue), a
 * block of fli_topk_block(k) vectors within d / 2, and n >= d (the noise
 * variance then comes from the trace); the GPU takes it only where it pays
 * (fli_topk_on_gpu), the CPU only for the tests (FL_DECOMP_LA=1), wherever
 * it can run. When the spectrum is too flat past
 * the k-th eigenvalue for it to converge quickly, the full eigensolver
 * runs instead. */
#define TOPK_TOL 1e-9
static int topk_eligible(const dc_setup *s, int64_t n, int64_t d)
{
    return s->frac == 0 && d <= n && 2 * fli_topk_block(s->k) <= d;
}

/* The k leading eigenpairs of the scatter S (d x d float64, symmetric, in
 * la's memory; overwritten when the full eigensolver takes over) into
 * job's components and sv, largest first; n_out = k. */
static fl_status topk_scatter(fl_ctx *ctx, fli_la *la, double *S, int64_t d, int64_t k, uint64_t seed,
                              fli_decomp_job *job)
{
    fli_la hl;
    fli_la_cpu_init(&hl, ctx, FL_DTYPE_F64);
    double *w = fli_malloc(ctx, sizeof(double) * (size_t)d, "eigenvalues");
    void *V = NULL;
    fl_status st = w ? fli_la_mat(la, d, k, &V) : FL_STATUS_OUT_OF_MEMORY;
    fli_topk_report rep;
    const void *cols = V; /* the k eigenvectors in la's memory, largest first */
    int reversed = 0;
    /* the host's steps are p x p eigenproblems: a team of threads only
     * waits on itself there (on the H100 machine, 16 OpenMP threads made
     * the top-32 solve at d = 512 take ~10 ms with spikes to 60 ms) */
    const int prev_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    if (!st) {
        st = fli_la_topk_eigh(la, &hl, d, S, k, TOPK_TOL, seed, ctx->topk_mode, V, w, &rep);
        if (!st)
            fli_log(
                ctx, FL_LOG_INFO,
                "pca: top-%lld eigh converged in %d steps (degree %d, residual %.2g); ms: start %.3f, "
                "filters %.3f, orthonormalisation + Rayleigh-Ritz %.3f (host %.3f); %d orthonormalisations "
                "redone",
                (long long)k, rep.iterations, rep.degree, rep.residual, rep.ms_start, rep.ms_filter_orth,
                rep.ms_rr, rep.ms_host, rep.redone);
    }
    if (st == FL_STATUS_NUMERICAL || st == FL_STATUS_UNSUPPORTED) {
        fli_log(ctx, FL_LOG_INFO, "pca: %s; full eigh instead", ctx->err);
        fli_clear_error(ctx);
        st = la->ops->syevd(la, d, S, d, w); /* ascending: the last k columns */
        cols = (const char *)S + sizeof(double) * (size_t)((d - k) * d);
        reversed = 1;
    }
    double *hv = st ? NULL : fli_malloc(ctx, sizeof(double) * (size_t)(d * k), "eigenvectors");
    if (!st && !hv)
        st = FL_STATUS_OUT_OF_MEMORY;
    if (!st)
        st = la->ops->get(la, hv, cols, sizeof(double) * (size_t)(d * k));
    for (int64_t i = 0; !st && i < k; i++) {
        const int64_t j = reversed ? k - 1 - i : i;
        const double e = reversed ? w[d - 1 - i] : w[i];
        job->sv[i] = e > 0 ? sqrt(e) : 0.0;
        memcpy(job->components + i * d, hv + j * d, sizeof(double) * (size_t)d);
    }
    omp_set_num_threads(prev_threads);
    if (!st)
        job->n_out = k;
    la->ops->release(la, V);
    fli_free(ctx, hv);
    fli_free(ctx, w);
    return st;
}

/* PCA covariance_eigh on the CUDA module: means and scatter there, then the
 * top-k solver on the scatter left on the device, or the module's float64
 * syevd (cuSOLVER) for every eigenpair; the result in job's float64 host
 * buffers as the CPU backend leaves it. */
static fl_status gpu_eigh_fit(fl_ctx *ctx, const fl_array *X, const dc_setup *s, fli_decomp_job *job)
{
    const fli_cuda_api *api;
    fli_cuda_env *env;
    fl_status st = fli_cuda_acquire(ctx, &api, &env);
    if (st)
        return st;
    float *X32 = NULL;
    if (X->dtype == FL_DTYPE_F64) {
        if (X->mem != FL_MEM_HOST)
            return fli_fail(ctx, FL_STATUS_UNSUPPORTED,
                            "float64 X in device memory: the GPU path computes in float32; pass float32 "
                            "device data or float64 host data");
        if (!(X32 = fli_host_f32_copy(ctx, X)))
            return FL_STATUS_OUT_OF_MEMORY;
    }
    fli_pca_cov_job cj;
    memset(&cj, 0, sizeof cj);
    cj.X = X32 ? X32 : (const float *)X->data;
    cj.x_dev = fli_array_device(X);
    cj.n = X->rows;
    cj.d = X->cols;
    cj.ld = X32 ? X->cols : fli_ld(X);
    const int topk = s->frac == 0 && fli_topk_on_gpu(s->k, cj.n, cj.d) && !ctx->pca_full_eigh;
    cj.eigh = topk ? FLI_COV_EIGH_DEVICE : FLI_COV_EIGH_SYEVD;
    cj.variant = ctx->pca_product;
    cj.k = s->k;
    cj.mean = job->mean;
    cj.components = job->components;
    cj.sv = job->sv;
    const double w0 = fli_wall_ms();
    st = api->pca_cov(env, &cj);
    const double w1 = fli_wall_ms();
    job->nonfinite = cj.nonfinite;
    job->total_ss = cj.total_ss;
    if (!st && topk) {
        fli_la la;
        st = fli_la_open(ctx, FL_DTYPE_F64, env->device_id, &la, NULL);
        if (!st)
            st = topk_scatter(ctx, &la, cj.scatter_dev, cj.d, s->k, s->seed, job);
        if (!st)
            fli_log(ctx, FL_LOG_INFO, "pca: covariance pass %.3f ms, top-k eigen step %.3f ms", w1 - w0,
                    fli_wall_ms() - w1);
    } else if (!st) {
        job->n_out = cj.n_out;
    }
    fli_free(ctx, X32);
    return st;
}

/* The CPU's covariance_eigh through the GPU's top-k steps (FL_DECOMP_LA=1,
 * for the tests: the same fli_la code on the CPU's BLAS). */
static fl_status cpu_topk_fit(fl_ctx *ctx, const dc_setup *s, fli_decomp_job *job)
{
    const int64_t d = job->d;
    double *S = fli_malloc(ctx, sizeof(double) * (size_t)(d * d), "covariance");
    fl_status st = S ? fli_cpu_pca_scatter(ctx, job, S) : FL_STATUS_OUT_OF_MEMORY;
    if (!st) {
        job->total_ss = 0;
        for (int64_t i = 0; i < d; i++)
            job->total_ss += S[i * d + i];
        fli_la la;
        fli_la_cpu_init(&la, ctx, FL_DTYPE_F64);
        st = topk_scatter(ctx, &la, S, d, s->k, s->seed, job);
    }
    fli_free(ctx, S);
    return st;
}

/* Fits `a` (PCA or TruncatedSVD) on X and builds the attribute set. */
static fl_status decomp_fit(fl_ctx *ctx, const fli_algo *a, const fl_params *p, const fl_array *X,
                            fli_attr_set *out)
{
    /* The covariance pass reads X once and validates it as it goes (a
     * separate finiteness pass cost 15% of the fit); the other solvers
     * check first. Either way nothing is written on failure. */
    fl_array shape_only = *X;
    shape_only.mem = FL_MEM_CUDA; /* fli_check_data: descriptor and shape only */
    fl_status st = fli_check_data(ctx, X && X->mem == FL_MEM_HOST ? &shape_only : X, "X");
    if (st)
        return st;
    dc_setup s;
    if ((st = setup(ctx, a, p, X, &s)) != FL_STATUS_OK)
        return st;
    const int fused_check = s.solver == FLI_DECOMP_EIGH && X->mem == FL_MEM_HOST;
    if (!fused_check && X->mem == FL_MEM_HOST && (st = fli_check_finite(ctx, X, "X")) != FL_STATUS_OK)
        return st;
    const fli_decomp_backend *be = NULL;
    const int gpu = s.route.backend != FL_BACKEND_CPU;
    if (!gpu && (st = cpu_backend(ctx, a->name, s.route.variant, X, &be)) != FL_STATUS_OK)
        return st;
    const int64_t n = X->rows, d = X->cols, mn = n < d ? n : d;
    fli_log(ctx, FL_LOG_INFO, "%s %lld x %lld: %s/%s (%s)", a->name, (long long)n, (long long)d,
            fl_backend_name(s.route.backend), s.route.variant, s.route.reason);
    const int64_t cap = s.solver == FLI_DECOMP_EIGH ? d : s.solver == FLI_DECOMP_SVD ? mn : s.k;
    double *comp = fli_malloc(ctx, sizeof(double) * (size_t)(cap * d), "components");
    double *sv = fli_malloc(ctx, sizeof(double) * (size_t)cap, "singular values");
    double *mean = fli_malloc(ctx, sizeof(double) * (size_t)d, "mean");
    double *ev = fli_malloc(ctx, sizeof(double) * (size_t)cap, "explained variance");
    double *ratio = fli_malloc(ctx, sizeof(double) * (size_t)cap, "explained variance ratio");
    double *pv = NULL; /* TruncatedSVD on the GPU: the projections' variances come with the fit */
    if (!comp || !sv || !mean || !ev || !ratio) {
        st = FL_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    fli_decomp_job job;
    memset(&job, 0, sizeof job);
    job.X = X->data;
    job.dtype = X->dtype;
    job.n = n;
    job.d = d;
    job.ld = fli_ld(X);
    job.center = s.is_pca;
    job.check_finite = fused_check;
    job.solver = s.solver;
    job.k = s.k;
    job.n_iter = s.n_iter;
    job.n_oversamples = s.n_oversamples;
    job.normalizer = s.pin;
    job.seed = s.seed;
    job.mean = mean;
    job.components = comp;
    job.sv = sv;
    if ((gpu || ctx->decomp_la) && s.solver == FLI_DECOMP_RANDOMIZED) {
        fli_la la;
        if (!s.is_pca && !(pv = fli_malloc(ctx, sizeof(double) * (size_t)cap, "projected variance")))
            st = FL_STATUS_OUT_OF_MEMORY;
        if (!st)
            st = fli_la_open(ctx, X->dtype, fli_array_device(X), &la, NULL);
        if (!st)
            st = fli_decomp_randomized_la(ctx, &la, X, &job, pv);
    } else {
        st = gpu ? gpu_eigh_fit(ctx, X, &s, &job)
             : ctx->decomp_la && s.solver == FLI_DECOMP_EIGH && topk_eligible(&s, n, d)
                 ? cpu_topk_fit(ctx, &s, &job)
                 : be->fit(ctx, &job);
    }
    if (st != FL_STATUS_OK) {
        if (job.nonfinite && X->mem == FL_MEM_HOST && (st = fli_check_finite(ctx, X, "X")) == FL_STATUS_OK)
            st = fli_fail(ctx, FL_STATUS_INVALID_ARG, "X: a column sum overflows %s: values are too large",
                          fl_dtype_name(X->dtype));
        goto done;
    }
    const int64_t ns = job.n_out;
    int64_t k = s.k < ns ? s.k : ns;
    double noise = 0;
    if (s.is_pca) {
        const double dof = (double)(n - 1);
        for (int64_t i = 0; i < ns; i++)
            ev[i] = sv[i] * sv[i] / dof;
        if (s.solver == FLI_DECOMP_RANDOMIZED || ns < (d < n ? d : n)) {
            /* a partial spectrum (randomized, or the top-k eigh, which runs
             * only when n_features <= n_samples): the total from the trace,
             * the noise from what the kept components leave */
            const double total = job.total_ss / dof;
            double kept = 0;
            for (int64_t i = 0; i < k; i++) {
                ratio[i] = total > 0 ? ev[i] / total : 0.0;
                kept += ev[i];
            }
            noise = k < mn ? (total - kept) / (double)(mn - k) : 0.0;
        } else {
            double total = 0;
            for (int64_t i = 0; i < ns; i++)
                total += ev[i];
            for (int64_t i = 0; i < ns; i++)
                ratio[i] = total > 0 ? ev[i] / total : 0.0;
            if (s.frac > 0) {
                /* scikit-learn: searchsorted(cumsum(ratio), frac, 'right') + 1 */
                double cum = 0;
                k = 0;
                while (k < ns && cum + ratio[k] <= s.frac)
                    cum += ratio[k++];
                k = k + 1 < ns ? k + 1 : ns;
            }
            if (k < mn) {
                for (int64_t i = k; i < ns; i++)
                    noise += ev[i];
                noise /= (double)(ns - k);
            }
        }
    } else {
        if (pv)
            memcpy(ev, pv, sizeof(double) * (size_t)k);
        else if ((st = projected_variance(ctx, be, X, comp, k, ev)) != FL_STATUS_OK)
            goto done;
        const double full = job.total_ss / (double)n;
        for (int64_t i = 0; i < k; i++)
            ratio[i] = full > 0 ? ev[i] / full : 0.0;
    }
    svd_flip_rows(comp, k, d);
    const fl_dtype dt = X->dtype;
    if ((st = put_attr(ctx, out, "components_", dt, k, d, comp)) ||
        (st = put_attr(ctx, out, "explained_variance_", dt, k, 1, ev)) ||
        (st = put_attr(ctx, out, "explained_variance_ratio_", dt, k, 1, ratio)) ||
        (st = put_attr(ctx, out, "singular_values_", dt, k, 1, sv)))
        goto done;
    if (s.is_pca &&
        ((st = put_attr(ctx, out, "mean_", dt, d, 1, mean)) ||
         (st = put_attr(ctx, out, "noise_variance_", FL_DTYPE_F64, 1, 1, &noise)) ||
         (st = put_int(ctx, out, "n_components_", k)) || (st = put_int(ctx, out, "n_samples_", n))))
        goto done;
    st = put_int(ctx, out, "n_features_in_", d);
done:
    fli_free(ctx, comp);
    fli_free(ctx, sv);
    fli_free(ctx, mean);
    fli_free(ctx, ev);
    fli_free(ctx, ratio);
    fli_free(ctx, pv);
    return st;
}

/* ---- the fitted model's methods ----------------------------------------------- */

/* A fitted model's attribute as float64 (caller frees). */
static double *attr_f64(fl_model *m, const char *name, int64_t *len)
{
    const fli_attr *a = fli_model_attr(m, name);
    double *v = fli_malloc(m->ctx, sizeof(double) * (size_t)(a->rows * a->cols), name);
    if (!v)
        return NULL;
    for (int64_t i = 0; i < a->rows * a->cols; i++)
        v[i] = at(a->data, a->dtype, i);
    if (len)
        *len = a->rows * a->cols;
    return v;
}

static fl_status apply(fl_model *m, const fl_array *X, fl_array *out, int inverse)
{
    fl_ctx *ctx = m->ctx;
    const int pca = m->algo == &fli_algo_pca;
    const fli_attr *C = fli_model_attr(m, "components_");
    const int64_t k = C->rows, d = C->cols;
    fl_status st = fli_check_data(ctx, X, "X");
    if (st)
        return st;
    if (X->cols != (inverse ? k : d))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "X has %lld %s, but %s is expecting %lld %s as input",
                        (long long)X->cols, inverse ? "components" : "features", pca ? "PCA" : "TruncatedSVD",
                        (long long)(inverse ? k : d), inverse ? "components" : "features");
    if ((st = fli_check_out(ctx, out, X->dtype, X->rows, inverse ? d : k, "out")) != FL_STATUS_OK)
        return st;
    /* On the GPU when X lives there, or when device 'cuda' asks for it and
     * X is float32 (the GPU path is float32; float64 stays on the CPU). */
    const int gpu = X->mem == FL_MEM_CUDA || (ctx->kind == FLI_DEVICE_CUDA && X->dtype == FL_DTYPE_F32);
    const fli_decomp_backend *be = NULL;
    const fli_cuda_api *api = NULL;
    fli_cuda_env *env = NULL;
    if (gpu && X->dtype != FL_DTYPE_F32)
        return fli_fail(ctx, FL_STATUS_UNSUPPORTED,
                        "float64 X in device memory: the GPU transform computes in float32; pass float32");
    if (gpu && (st = fli_cuda_acquire(ctx, &api, &env)) != FL_STATUS_OK)
        return st;
    if (!gpu && out->mem != FL_MEM_HOST)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "out in device memory needs X in device memory");
    if (!gpu)
        be = &fli_cpu_decomp;
    double *comp = attr_f64(m, "components_", NULL);
    double *mean = pca ? attr_f64(m, "mean_", NULL) : NULL;
    double *scale = NULL;
    if (!comp || (pca && !mean)) {
        st = FL_STATUS_OUT_OF_MEMORY;
        goto done;
    }
    if (pca && fli_param_int(m->params, "whiten")) {
        if (!(scale = attr_f64(m, "explained_variance_", NULL))) {
            st = FL_STATUS_OUT_OF_MEMORY;
            goto done;
        }
        const double eps = X->dtype == FL_DTYPE_F32 ? FLT_EPSILON : DBL_EPSILON;
        for (int64_t j = 0; j < k; j++) {
            scale[j] = sqrt(scale[j] > 0 ? scale[j] : 0);
            if (!inverse && scale[j] < eps)
                scale[j] = eps; /* as scikit-learn: no division by ~0 */
        }
    }
    fli_decomp_apply_job aj = {
        X->data, fli_ld(X), out->data,           fli_ld(out),          X->dtype, X->rows, d, k, comp, mean,
        scale,   inverse,   fli_array_device(X), fli_array_device(out)};
    st = gpu ? api->decomp_apply(env, &aj) : be->apply(ctx, &aj);
done:
    fli_free(ctx, comp);
    fli_free(ctx, mean);
    fli_free(ctx, scale);
    return st;
}

static fl_status dc_transform(fl_model *m, const fl_array *X, fl_array *out)
{
    return apply(m, X, out, 0);
}

static fl_status dc_inverse_transform(fl_model *m, const fl_array *X, fl_array *out)
{
    return apply(m, X, out, 1);
}

/*
 * The probabilistic PCA covariance, scikit-learn's get_covariance():
 * W^T diag(max(ev - nv, 0)) W + nv I with W = components_ (times
 * sqrt(explained_variance_) when whiten, as scikit-learn does), its
 * Cholesky factor and the constant of the Gaussian log-density.
 */
static fl_status pca_density(fl_model *m, double **L_out, double **mean_out, double *c_out)
{
    fl_ctx *ctx = m->ctx;
    const int64_t k = fli_model_attr(m, "components_")->rows, d = fli_model_attr(m, "components_")->cols;
    double *W = attr_f64(m, "components_", NULL);
    double *ev = attr_f64(m, "explained_variance_", NULL);
    double *mean = attr_f64(m, "mean_", NULL);
    double nv = *(const double *)fli_model_attr(m, "noise_variance_")->data;
    double *S = fli_malloc(ctx, sizeof(double) * (size_t)(d * d), "covariance");
    fl_status st = FL_STATUS_OK;
    if (!W || !ev || !mean || !S) {
        st = FL_STATUS_OUT_OF_MEMORY;
        goto fail;
    }
    if (!(nv > 0) && k < d) {
        st = fli_fail(ctx, FL_STATUS_INVALID_ARG,
                      "score_samples: the model's covariance is singular (noise_variance_=%g with "
                      "n_components_=%lld of %lld features): the likelihood is undefined",
                      nv, (long long)k, (long long)d);
        goto fail;
    }
    const int whiten = (int)fli_param_int(m->params, "whiten");
    for (int64_t i = 0; i < d * d; i++)
        S[i] = 0;
    for (int64_t q = 0; q < k; q++) {
        const double w2 = whiten ? ev[q] : 1.0;
        const double dq = ev[q] > nv ? ev[q] - nv : 0.0;
        const double f = dq * w2;
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j <= i; j++)
                S[i * d + j] += f * W[q * d + i] * W[q * d + j];
    }
    for (int64_t i = 0; i < d; i++) {
        S[i * d + i] += nv;
        for (int64_t j = 0; j < i; j++)
            S[j * d + i] = S[i * d + j];
    }
    if ((st = fli_cpu_cholesky(ctx, S, d)) != FL_STATUS_OK) {
        st = fli_fail(ctx, FL_STATUS_INVALID_ARG,
                      "score_samples: the model's covariance is singular (noise_variance_=%g with "
                      "n_components_=%lld of %lld features): the likelihood is undefined",
                      nv, (long long)k, (long long)d);
        goto fail;
    }
    double logdet = 0;
    for (int64_t i = 0; i < d; i++)
        logdet += 2.0 * log(S[i * d + i]);
    *c_out = 0.5 * ((double)d * log(2.0 * 3.14159265358979323846) + logdet);
    *L_out = S;
    *mean_out = mean;
    fli_free(ctx, W);
    fli_free(ctx, ev);
    return FL_STATUS_OK;
fail:
    fli_free(ctx, W);
    fli_free(ctx, ev);
    fli_free(ctx, mean);
    fli_free(ctx, S);
    return st;
}

static fl_status pca_score_samples(fl_model *m, const fl_array *X, fl_array *out)
{
    fl_ctx *ctx = m->ctx;
    const int64_t d = fli_model_attr(m, "components_")->cols;
    fl_status st = fli_check_data(ctx, X, "X");
    if (st)
        return st;
    if (X->cols != d)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "X has %lld features, but PCA is expecting %lld features as input",
                        (long long)X->cols, (long long)d);
    if (out && (st = fli_check_out(ctx, out, X->dtype, X->rows, 1, "out")) != FL_STATUS_OK)
        return st;
    if (X->mem != FL_MEM_HOST)
        return fli_fail(ctx, FL_STATUS_UNSUPPORTED,
                        "score_samples runs on the CPU (whatever the device): pass X in host memory");
    double *L = NULL, *mean = NULL, c = 0;
    if ((st = pca_density(m, &L, &mean, &c)) != FL_STATUS_OK)
        return st;
    st = fli_cpu_gauss_loglik(ctx, X, mean, L, c, out);
    fli_free(ctx, L);
    fli_free(ctx, mean);
    return st;
}

static fl_status pca_score(fl_model *m, const fl_array *X, const fl_array *y, const fl_array *w, double *res)
{
    (void)y;
    fl_ctx *ctx = m->ctx;
    if (w)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "PCA.score takes no sample_weight");
    fl_status st = fli_check_data(ctx, X, "X");
    if (st)
        return st;
    double *ll = fli_malloc(ctx, sizeof(double) * (size_t)X->rows, "log-likelihoods");
    if (!ll)
        return FL_STATUS_OUT_OF_MEMORY;
    /* scores in float64 whatever X's dtype: through a float64 copy when f32 */
    fl_array o = fl_array_host(ll, FL_DTYPE_F64, X->rows, 1);
    fl_array X64 = *X;
    double *copy = NULL;
    if (X->dtype == FL_DTYPE_F32) {
        copy = fli_malloc(ctx, sizeof(double) * (size_t)(X->rows * X->cols), "float64 copy of X");
        if (!copy) {
            fli_free(ctx, ll);
            return FL_STATUS_OUT_OF_MEMORY;
        }
        for (int64_t i = 0; i < X->rows; i++)
            for (int64_t j = 0; j < X->cols; j++)
                copy[i * X->cols + j] = ((const float *)X->data)[i * fli_ld(X) + j];
        X64 = fl_array_host(copy, FL_DTYPE_F64, X->rows, X->cols);
    }
    st = pca_score_samples(m, &X64, &o);
    if (!st) {
        double s = 0;
        for (int64_t i = 0; i < X->rows; i++)
            s += ll[i];
        *res = s / (double)X->rows;
    }
    fli_free(ctx, ll);
    fli_free(ctx, copy);
    return st;
}

/* Shapes and ranges of a loaded model, so a crafted file cannot make later
 * calls read out of bounds. */
static fl_status dc_check_attrs(fl_ctx *ctx, const fl_params *p, const fli_attr_set *set)
{
    const int pca = p->algo == &fli_algo_pca;
    const fli_attr *C = fli_attr_find(set, "components_");
    const fli_attr *nf = fli_attr_find(set, "n_features_in_");
    const char *vecs[] = {"explained_variance_", "explained_variance_ratio_", "singular_values_"};
    if (!C || !nf || (C->dtype != FL_DTYPE_F32 && C->dtype != FL_DTYPE_F64) || C->rows < 1 || C->cols < 1 ||
        nf->dtype != FL_DTYPE_I64 || nf->rows != 1 || nf->cols != 1 || *(const int64_t *)nf->data != C->cols)
        return fli_fail(ctx, FL_STATUS_CORRUPT,
                        "%s model: components_ or n_features_in_ missing or inconsistent", p->algo->name);
    for (int i = 0; i < 3; i++) {
        const fli_attr *v = fli_attr_find(set, vecs[i]);
        if (!v || v->dtype != C->dtype || v->rows != C->rows || v->cols != 1)
            return fli_fail(ctx, FL_STATUS_CORRUPT, "%s model: %s missing or inconsistent", p->algo->name,
                            vecs[i]);
    }
    if (!pca)
        return fli_param_int(p, "n_components") == C->rows
                   ? FL_STATUS_OK
                   : fli_fail(ctx, FL_STATUS_CORRUPT, "truncated_svd model: components_ has the wrong shape");
    const fli_attr *mean = fli_attr_find(set, "mean_");
    const fli_attr *nv = fli_attr_find(set, "noise_variance_");
    const fli_attr *nc = fli_attr_find(set, "n_components_");
    const fli_attr *ns = fli_attr_find(set, "n_samples_");
    if (!mean || mean->dtype != C->dtype || mean->rows != C->cols || mean->cols != 1 || !nv ||
        nv->dtype != FL_DTYPE_F64 || nv->rows != 1 || nv->cols != 1 || !nc || nc->dtype != FL_DTYPE_I64 ||
        nc->rows != 1 || nc->cols != 1 || *(const int64_t *)nc->data != C->rows || !ns ||
        ns->dtype != FL_DTYPE_I64 || ns->rows != 1 || ns->cols != 1)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "pca model: attributes have inconsistent shapes");
    return FL_STATUS_OK;
}

static fl_status pca_fit(fl_model *m, const fl_array *X, const fl_array *y, const fl_array *w,
                         fli_attr_set *out)
{
    (void)y;
    if (w)
        return fli_fail(m->ctx, FL_STATUS_INVALID_ARG, "%s takes no sample_weight", m->algo->name);
    return decomp_fit(m->ctx, m->algo, m->params, X, out);
}

static fl_status check_params(fl_ctx *ctx, const fl_params *p)
{
    (void)ctx;
    (void)p;
    return FL_STATUS_OK;
}

const fli_algo fli_algo_pca = {
    .name = "pca",
    .params = fli_pca_params,
    .n_params = FLI_PCA_N_PARAMS,
    .attr_names = pca_attrs,
    .check_params = check_params,
    .fit = pca_fit,
    .transform = dc_transform,
    .score = pca_score,
    .inverse_transform = dc_inverse_transform,
    .score_samples = pca_score_samples,
    .check_attrs = dc_check_attrs,
};

const fli_algo fli_algo_truncated_svd = {
    .name = "truncated_svd",
    .params = fli_tsvd_params,
    .n_params = FLI_TSVD_N_PARAMS,
    .attr_names = tsvd_attrs,
    .check_params = check_params,
    .fit = pca_fit,
    .transform = dc_transform,
    .inverse_transform = dc_inverse_transform,
    .check_attrs = dc_check_attrs,
};

/* ---- typed C functions -------------------------------------------------------- */

static fl_status fit_new(fl_ctx *ctx, const char *algo, const fl_array *X, const fl_params *params,
                         fl_model **out)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    if (!out)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "out is NULL");
    fl_model *m;
    fl_status st = fl_model_create(ctx, algo, params, &m);
    if (st)
        return st;
    if ((st = fl_model_fit(m, X, NULL, NULL)) != FL_STATUS_OK) {
        fl_model_free(m);
        return st;
    }
    *out = m;
    return FL_STATUS_OK;
}

fl_status fl_pca_fit(fl_ctx *ctx, const fl_array *X, const fl_params *params, fl_model **out)
{
    return fit_new(ctx, "pca", X, params, out);
}

fl_status fl_truncated_svd_fit(fl_ctx *ctx, const fl_array *X, const fl_params *params, fl_model **out)
{
    return fit_new(ctx, "truncated_svd", X, params, out);
}
