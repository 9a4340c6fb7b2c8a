/* test_info.c — the cost model: its memory predictions against what a real
 * fit allocates, its routing against execution's, tiers, formatters and
 * bad input.
 *
 * The central check: a counting host allocator installed on a CPU context
 * records the peak of live bytes during real KMeans fits, and the
 * estimate's peak host memory (fli_kmeans_cpu_plan, through
 * fl_info_estimate) must equal it exactly, for several shapes, dtypes,
 * inits, metrics, thread counts and both entry points. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "flashlib.h"
#include "flashlib_info.h"

/* The device plan is pure C: compiled in here to compare with the estimate
 * (its symbols are hidden inside libflashlib). */
#include "algo/kmeans_plan.c"

/* ---- a counting host allocator ------------------------------------------------ */

typedef struct counter {
    size_t live, peak;
    long allocs;
} counter;

#define HDR 64 /* keeps the 64-byte alignment the library asks for */

static void *count_alloc(void *user, size_t bytes)
{
    counter *c = user;
    size_t total = (bytes + HDR + 63) / 64 * 64;
    char *p = aligned_alloc(64, total);
    if (!p)
        return NULL;
    memcpy(p, &bytes, sizeof bytes);
    c->live += bytes;
    c->allocs++;
    if (c->live > c->peak)
        c->peak = c->live;
    return p + HDR;
}

static void count_free(void *user, void *ptr)
{
    counter *c = user;
    if (!ptr)
        return;
    char *p = (char *)ptr - HDR;
    size_t bytes;
    memcpy(&bytes, p, sizeof bytes);
    c->live -= bytes;
    free(p);
}

/* ---- helpers --------------------------------------------------------------------- */

static int estimate(const char *op, int64_t a, int64_t b, int64_t c, int ndim, const char *params,
                    const char *dtype, const char *device, fl_info_result *r)
{
    int64_t shape[3] = {a, b, c};
    char err[512];
    int rc = fl_info_estimate(op, shape, ndim, params, dtype, device, r, err, sizeof err);
    if (rc)
        fprintf(stderr, "estimate %s %s on %s: %s\n", op, params ? params : "", device ? device : "", err);
    return rc;
}

/* Error text of a failing estimate (or "" when it succeeds). */
static const char *estimate_err(const char *op, const int64_t *shape, int ndim, const char *params,
                                const char *dtype, const char *device)
{
    static char err[512];
    fl_info_result r;
    err[0] = '\0';
    if (fl_info_estimate(op, shape, ndim, params, dtype, device, &r, err, sizeof err) == 0)
        return "";
    return err;
}

typedef struct fit_case {
    long n, d, k;
    fl_dtype dtype;
    int threads;
    const char *init;   /* k-means++ | random | array */
    const char *metric; /* euclidean | cosine | dot */
    int via_model;
} fit_case;

/* Runs one CPU fit under the counting allocator; returns its peak. */
static size_t measured_peak(const fit_case *fc, int *ok)
{
    *ok = 0;
    const long n = fc->n, d = fc->d, k = fc->k;
    float *X32 = malloc(sizeof(float) * (size_t)(n * d));
    int *truth = malloc(sizeof(int) * (size_t)n);
    make_blobs(X32, truth, n, d, k, 20.0, 1.0);
    void *X = X32;
    double *X64 = NULL;
    if (fc->dtype == FL_DTYPE_F64) {
        X64 = malloc(sizeof(double) * (size_t)(n * d));
        for (long i = 0; i < n * d; i++)
            X64[i] = X32[i];
        X = X64;
    }
    fl_ctx *ctx = NULL;
    char err[256];
    CHECK_OK(ctx, fl_ctx_create("cpu", &ctx, err, sizeof err));
    CHECK_OK(ctx, fl_ctx_set_threads(ctx, fc->threads));
    CHECK_OK(ctx, fl_ctx_set_seed(ctx, 7));
    fl_params *p = NULL;
    CHECK_OK(ctx, fl_params_create(ctx, "kmeans", &p));
    CHECK_OK(ctx, fl_params_set_int(ctx, p, "n_clusters", k));
    CHECK_OK(ctx, fl_params_set(ctx, p, "init", fc->init));
    CHECK_OK(ctx, fl_params_set(ctx, p, "metric", fc->metric));
    CHECK_OK(ctx, fl_params_set_int(ctx, p, "max_iter", 15));
    if (!strcmp(fc->init, "array")) {
        /* one row of each blob: no cluster starts empty */
        double *C = malloc(sizeof(double) * (size_t)(k * d));
        for (long j = 0; j < k; j++)
            for (long q = 0; q < d; q++)
                C[j * d + q] = X32[j * d + q];
        fl_array ca = fl_array_host(C, FL_DTYPE_F64, k, d);
        CHECK_OK(ctx, fl_params_set_array(ctx, p, "init", &ca));
        free(C);
    }
    counter cnt = {0, 0, 0};
    fl_host_allocator ha = {count_alloc, count_free, &cnt};
    CHECK_OK(ctx, fl_ctx_set_host_allocator(ctx, &ha));
    fl_array Xa = fl_array_host(X, fc->dtype, n, d);
    fl_status st;
    if (fc->via_model) {
        fl_model *m = NULL;
        CHECK_OK(ctx, fl_model_create(ctx, "kmeans", p, &m));
        st = fl_model_fit(m, &Xa, NULL, NULL);
        fl_model_free(m);
    } else {
        void *C = malloc((size_t)(k * d) * (fc->dtype == FL_DTYPE_F64 ? 8 : 4));
        int32_t *labels = malloc(sizeof(int32_t) * (size_t)n);
        fl_array ca = fl_array_host(C, fc->dtype, k, d), la = fl_array_host(labels, FL_DTYPE_I32, n, 1);
        double inertia;
        int64_t n_iter;
        st = fl_kmeans_fit(ctx, &Xa, NULL, p, &ca, &la, &inertia, &n_iter);
        free(C);
        free(labels);
    }
    CHECK_MSG(st == FL_STATUS_OK, "fit: %s", fl_ctx_last_error(ctx));
    CHECK_MSG(cnt.live == 0, "%zu bytes still live after the fit", cnt.live);
    *ok = st == FL_STATUS_OK;
    fl_params_free(p);
    fl_ctx_free(ctx);
    free(X32);
    free(X64);
    free(truth);
    return cnt.peak;
}

static void test_cpu_host_peak_is_exact(void)
{
    const fit_case cases[] = {
        {2000, 8, 5, FL_DTYPE_F32, 1, "k-means++", "euclidean", 0},    /* small-k register path */
        {3000, 16, 40, FL_DTYPE_F32, 3, "k-means++", "euclidean", 0},  /* BLAS path, 3 threads */
        {2500, 12, 33, FL_DTYPE_F64, 2, "k-means++", "euclidean", 1},  /* f64, via the model */
        {1500, 10, 7, FL_DTYPE_F32, 4, "random", "euclidean", 0},      /* n_init = 10 */
        {1800, 9, 12, FL_DTYPE_F64, 2, "array", "euclidean", 1},       /* given centres */
        {2200, 6, 24, FL_DTYPE_F32, 2, "k-means++", "cosine", 0},      /* normalised copy */
        {1000, 5, 3, FL_DTYPE_F32, 1, "random", "dot", 1},             /* clusters empty */
        {5000, 33, 100, FL_DTYPE_F32, 2, "k-means++", "euclidean", 1}, /* n x L distance block dominates */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const fit_case *fc = &cases[i];
        int ok;
        size_t peak = measured_peak(fc, &ok);
        if (!ok)
            continue;
        char params[256];
        snprintf(params, sizeof params, "n_clusters=%ld init=%s metric=%s threads=%d entry=%s max_iter=15",
                 fc->k, fc->init, fc->metric, fc->threads, fc->via_model ? "model" : "function");
        fl_info_result r;
        if (estimate("kmeans", fc->n, fc->d, 0, 2, params, fl_dtype_name(fc->dtype), "cpu", &r))
            continue;
        /* Exact in every case, metric=dot included (it empties clusters on
         * almost any data, and the relocation list is sized for k up front). */
        CHECK_MSG(
            r.peak_memory_bytes == peak && r.peak_host_bytes == peak,
            "case %zu (%ld x %ld, k=%ld, %s, %s, %s, %d threads, %s): estimate %llu bytes, measured peak %zu",
            i, fc->n, fc->d, fc->k, fl_dtype_name(fc->dtype), fc->init, fc->metric, fc->threads,
            fc->via_model ? "model" : "function", (unsigned long long)r.peak_memory_bytes, peak);
        CHECK(r.peak_memory_exact == 1);
        CHECK(!strcmp(r.backend, "cpu"));
    }
}

/* The GPU estimate's device memory is the CUDA fit's arena, from the plan
 * the module carves it with; routing is the execution's rule. */
static void test_gpu_plan_and_route(void)
{
    struct {
        long n, d, k;
        const char *params, *device;
        fli_precision prec;
        int on_device;
        const char *backend;
    } cases[] = {
        {100000, 64, 256, "K=256 max_iters=20", "H200", FLI_PREC_TF32, 0, "cuda"},
        {100000, 64, 16, "n_clusters=16", "H100", FLI_PREC_FP32, 0, "cuda"},
        {1000000, 128, 1024, "n_clusters=1024 precision=bf16 input=device", "H100", FLI_PREC_BF16, 1,
         "cuda-sm90"},
        {50000, 100, 2048, "n_clusters=2048 precision=fp16", "A100", FLI_PREC_FP16, 0, "cuda"},
        {20000, 30, 64, "n_clusters=64 metric=cosine input=device", "B200", FLI_PREC_TF32, 1, "cuda"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fl_info_result r;
        if (estimate("kmeans", cases[i].n, cases[i].d, 0, 2, cases[i].params, "f32", cases[i].device, &r))
            continue;
        fli_kmeans_cuda_plan plan;
        fli_metric metric = strstr(cases[i].params, "cosine") ? FLI_METRIC_COSINE : FLI_METRIC_EUCLIDEAN;
        CHECK(fli_kmeans_cuda_plan_chunk(cases[i].n, cases[i].d, cases[i].k, cases[i].prec,
                                         cases[i].on_device, 0, metric, 0, &plan) == FL_STATUS_OK);
        CHECK_MSG(r.peak_memory_bytes == plan.device_bytes, "case %zu: %llu vs plan %zu", i,
                  (unsigned long long)r.peak_memory_bytes, plan.device_bytes);
        CHECK_MSG(!strcmp(r.backend, cases[i].backend), "case %zu: backend %s, expected %s", i, r.backend,
                  cases[i].backend);
        CHECK(r.runtime_ms > 0 && isfinite(r.runtime_ms));
        CHECK(r.flops >= 2.0 * cases[i].n * cases[i].k * cases[i].d);
        CHECK(r.n_nodes >= 5 && r.nodes[0].parent == -1);
    }
    /* the route agrees with fl_route_query, the function execution calls */
    fl_ctx *ctx = NULL;
    char err[256];
    CHECK_OK(ctx, fl_ctx_create("cpu", &ctx, err, sizeof err));
    fl_params *p = NULL;
    CHECK_OK(ctx, fl_params_create(ctx, "kmeans", &p));
    CHECK_OK(ctx, fl_params_set(ctx, p, "n_clusters", "4096"));
    fl_hw_props hw;
    memset(&hw, 0, sizeof hw);
    snprintf(hw.tag, sizeof hw.tag, "H100");
    hw.sm_major = 9, hw.sm_count = 132, hw.is_hopper = 1, hw.sm90_enabled = 1;
    hw.total_mem_bytes = 80000000000LL;
    fl_route route;
    CHECK_OK(ctx, fl_route_query(ctx, "kmeans", &hw, 200000, 256, FL_DTYPE_F32, p, &route));
    fl_info_result r;
    if (!estimate("kmeans", 200000, 256, 0, 2, "n_clusters=4096", "f32", "H100-SXM", &r)) {
        CHECK(!strcmp(r.backend, fl_backend_name(route.backend)));
        CHECK(!strcmp(r.variant, route.variant));
        CHECK(!strcmp(r.reason, route.reason));
    }
    fl_params_free(p);
    fl_ctx_free(ctx);
}

/* The tf32 k <= 64, d <= 32 fits whose E-step takes the M-step's sums
 * (k_estep_c64_acc) are modelled as one kernel per iteration, with no
 * separate near-tie re-scoring and update: exactly where the module runs
 * it (tf32, k <= 64, d <= 32, X resident, two blocks of its ~111 KiB of
 * shared memory per SM: the H100's 228 KiB, not the A100's 164 KiB). */
static void test_kmeans_fused_estep(void)
{
    struct {
        long n, d;
        const char *params, *device;
        int fused;
    } cases[] = {
        {2000000, 32, "n_clusters=64 precision=tf32 input=device", "H100", 1},
        {2000000, 32, "n_clusters=64 precision=tf32", "H200", 1},
        {300000, 8, "n_clusters=8 precision=tf32 input=device", "H100", 1},
        {2000000, 32, "n_clusters=64 precision=bf16 input=device", "H100", 0},
        {2000000, 32, "n_clusters=65 precision=tf32 input=device", "H100", 0},
        {2000000, 33, "n_clusters=64 precision=tf32 input=device", "H100", 0},
        {2000000, 32, "n_clusters=64 precision=tf32 input=device", "A100", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fl_info_result r;
        if (estimate("kmeans", cases[i].n, cases[i].d, 0, 2, cases[i].params, "f32", cases[i].device, &r))
            continue;
        int one = 0, sep = 0, tie = 0;
        for (int j = 0; j < r.n_nodes; j++) {
            one += !strcmp(r.nodes[j].name, "assign + sums (one kernel)");
            sep += !strcmp(r.nodes[j].name, "assign (distance+argmin)");
            tie += !strcmp(r.nodes[j].name, "re-score near ties");
        }
        CHECK_MSG(one == cases[i].fused && sep == !cases[i].fused, "case %zu (%s on %s): one %d separate %d",
                  i, cases[i].params, cases[i].device, one, sep);
        if (cases[i].fused)
            CHECK_MSG(tie == 0, "case %zu: near ties are re-scored inside the fused kernel", i);
    }
}

static void test_structure_and_tiers(void)
{
    fl_info_result r;
    /* the README call: aliases K and max_iters */
    if (!estimate("kmeans", 100000, 64, 0, 2, "K=256 max_iters=20", NULL, "H200", &r)) {
        CHECK(r.iterations == 20);
        CHECK(!strcmp(r.device, "H200"));
        CHECK(r.flops >= 2.0 * 100000 * 256 * 64 * 20);
        double sum = 0;
        for (int i = 1; i < r.n_nodes; i++)
            if (r.nodes[i].parent == 0)
                sum += r.nodes[i].runtime_ms;
        CHECK(fabs(sum - r.runtime_ms) <= 1e-9 * r.runtime_ms);
        /* the tier follows the data: a calibration entry for this device or not */
        int have = 0;
        fl_info_calibration c;
        for (int i = 0; fl_info_calibration_at(i, &c) == 0; i++)
            if (!strcmp(c.op, "kmeans") && !strcmp(c.variant, "tf32") && !strcmp(c.device, "H200"))
                have = 1 + c.calibrated;
        if (r.tier != FL_INFO_TIER_MEASURED)
            CHECK(r.tier == (have == 2   ? FL_INFO_TIER_CALIBRATED
                             : have == 1 ? FL_INFO_TIER_HEURISTIC
                                         : FL_INFO_TIER_ROOFLINE));
        /* weakest part */
        for (int i = 0; i < r.n_nodes; i++)
            CHECK(r.nodes[i].tier >= r.nodes[0].tier);
    }
    /* K and n_clusters are the same parameter */
    fl_info_result a;
    if (!estimate("kmeans", 100000, 64, 0, 2, "n_clusters=256,max_iter=20", "float32", "h200", &a))
        CHECK(a.runtime_ms == r.runtime_ms && a.peak_memory_bytes == r.peak_memory_bytes);
    /* every op estimates at some default shape */
    for (int i = 0; i < fl_info_op_count(); i++) {
        const fl_info_op *op = fl_info_op_at(i);
        int64_t shape[3] = {2048, 2048, 512};
        char err[512];
        fl_info_result x;
        int rc = fl_info_estimate(op->name, shape, op->max_ndim, NULL, "f32", "H100", &x, err, sizeof err);
        CHECK_MSG(rc == 0, "%s: %s", op->name, err);
        if (rc)
            continue;
        CHECK_MSG(x.runtime_ms > 0 && isfinite(x.runtime_ms) && x.flops >= 0 && x.hbm_bytes >= 0, "%s",
                  op->name);
        CHECK_MSG(x.implemented == op->implemented, "%s", op->name);
        if (!op->implemented) {
            CHECK_MSG(x.tier <= FL_INFO_TIER_ROOFLINE || x.tier == FL_INFO_TIER_CALIBRATED, "%s: %s",
                      op->name, fl_info_tier_name(x.tier));
            int said = 0;
            for (int j = 0; j < x.n_notes; j++)
                said |= strstr(x.notes[j], "not implemented") != NULL;
            CHECK_MSG(said, "%s does not say it is not implemented", op->name);
        }
        for (int j = 1; j < x.n_nodes; j++)
            CHECK_MSG(x.nodes[j].tier >= x.tier || x.tier == FL_INFO_TIER_MEASURED, "%s node %d", op->name,
                      j);
        /* formatters never overflow and report the length they need */
        char small[16], big[65536];
        size_t need = fl_info_json(&x, small, sizeof small);
        CHECK(strlen(small) == sizeof small - 1 && need > sizeof small);
        CHECK(fl_info_json(&x, big, sizeof big) == need && strlen(big) == need);
        CHECK(big[0] == '{' && big[need - 1] == '}');
        CHECK(fl_info_tree(&x, big, sizeof big) < sizeof big);
        CHECK(fl_info_summary(&x, big, sizeof big) < sizeof big);
    }
    /* compound ops take the weakest tier of their parts: DBSCAN's graph part is heuristic */
    if (!estimate("dbscan", 100000, 16, 0, 2, NULL, NULL, "H100", &r))
        CHECK(r.tier == FL_INFO_TIER_HEURISTIC);
    /* the generic CPU has nominal peaks: heuristic */
    if (!estimate("kmeans", 100000, 16, 0, 2, "n_clusters=8", NULL, "cpu", &r))
        CHECK(r.tier == FL_INFO_TIER_HEURISTIC);
}

static void test_variants(void)
{
    int64_t s[3] = {8192, 8192, 8192};
    fl_info_variant v[32];
    int n = 0, n_all = 0;
    char err[256];
    CHECK(fl_info_pareto("gemm", s, 3, NULL, "f32", "H100", 0, v, 32, &n, err, sizeof err) == 0);
    fl_info_variant all[32];
    CHECK(fl_info_pareto("gemm", s, 3, NULL, "f32", "H100", 1, all, 32, &n_all, err, sizeof err) == 0);
    CHECK(n >= 3 && n <= n_all && n_all == 12);
    for (int i = 0; i < n; i++) {
        CHECK(!v[i].dominated);
        if (i)
            CHECK(v[i].runtime_ms >= v[i - 1].runtime_ms &&
                  v[i].expected_residual < v[i - 1].expected_residual);
    }
    /* tol picks the cheapest variant meeting it, by the same rule */
    /* float32 data: its output rounding (2.5e-8 measured) bounds every variant */
    const double tols[] = {1e-2, 1e-3, 1e-5, 1e-6, 1e-7};
    for (size_t t = 0; t < sizeof tols / sizeof *tols; t++) {
        char p[32];
        snprintf(p, sizeof p, "tol=%g", tols[t]);
        fl_info_result r;
        if (fl_info_estimate("gemm", s, 3, p, "f32", "H100", &r, err, sizeof err)) {
            CHECK_MSG(0, "%s: %s", p, err);
            continue;
        }
        CHECK(r.expected_residual <= tols[t]);
        for (int i = 0; i < n_all; i++)
            if (all[i].expected_residual <= tols[t])
                CHECK_MSG(r.runtime_ms <= all[i].runtime_ms * (1 + 1e-9), "%s picked %s but %s is faster", p,
                          r.variant, all[i].name);
    }
    fl_info_result r;
    CHECK(fl_info_estimate("gemm", s, 3, "tol=1e-30", "f32", "H100", &r, err, sizeof err) == FL_INFO_EINVAL);
    CHECK(strstr(err, "no GEMM variant") != NULL);
    CHECK(fl_info_pareto("eigh", s, 1, NULL, "f32", "H100", 0, v, 32, &n, err, sizeof err) == 0 && n >= 1);
    CHECK(fl_info_pareto("polar", s, 2, NULL, "f32", "H100", 0, v, 32, &n, err, sizeof err) == 0 && n >= 1);
    CHECK(fl_info_pareto("gemn", s, 3, NULL, "f32", "H100", 0, v, 32, &n, err, sizeof err) == FL_INFO_EINVAL);

    /* compare: nothing invented */
    fl_info_comparison c;
    int64_t k[2] = {500000, 64};
    CHECK(fl_info_compare("kmeans", k, 2, "n_clusters=64", "f32", "H200", &c, err, sizeof err) == 0);
    CHECK(c.n_refs == 2);
    for (int i = 0; i < c.n_refs; i++)
        if (!c.refs[i].measured)
            CHECK(c.refs[i].runtime_ms == 0 && c.refs[i].anchor_ms == 0 &&
                  strstr(c.refs[i].scaling, "no anchor"));
        else
            CHECK(c.refs[i].runtime_ms > 0 && c.refs[i].anchor_ms > 0 && c.refs[i].scale > 0);
    CHECK(fl_info_compare("umap", k, 2, NULL, "f32", "H200", &c, err, sizeof err) == 0);
    CHECK(c.n_refs == 2 && !c.refs[0].measured && !c.refs[1].measured);
}

static void test_bad_input(void)
{
    int64_t s2[2] = {1000, 16}, big[2] = {INT64_MAX / 2, 1 << 20}, neg[2] = {1000, -3}, zero[2] = {0, 5};
    CHECK(strstr(estimate_err("kmean", s2, 2, NULL, NULL, "H100"), "did you mean 'kmeans'"));
    CHECK(strstr(estimate_err("kmeans", s2, 2, NULL, NULL, "H1000"), "did you mean"));
    CHECK(strstr(estimate_err("kmeans", s2, 2, NULL, NULL, "Z9"), "unknown device 'Z9'"));
    CHECK(strstr(estimate_err("kmeans", s2, 2, "n_cluster=8", NULL, "H100"), "did you mean 'n_clusters'"));
    CHECK(strstr(estimate_err("kmeans", s2, 2, "max_iterz=8", NULL, "H100"), "did you mean 'max_iter'"));
    CHECK(strstr(estimate_err("kmeans", s2, 2, "n_clusters=0", NULL, "H100"), "must be in"));
    CHECK(strstr(estimate_err("kmeans", s2, 2, "n_clusters=5000", NULL, "H100"), "n_samples=1000"));
    CHECK(strstr(estimate_err("kmeans", s2, 2, "n_clusters=abc", NULL, "H100"), "expected an integer"));
    CHECK(strstr(estimate_err("kmeans", s2, 2, "init=kmeans", NULL, "H100"), "expected one of"));
    CHECK(strstr(estimate_err("kmeans", s2, 2, "K=8 n_clusters=9", NULL, "H100"), "given twice"));
    CHECK(strstr(estimate_err("kmeans", s2, 2, "K", NULL, "H100"), "NAME=VALUE"));
    CHECK(strstr(estimate_err("kmeans", s2, 2, NULL, "f17", "H100"), "unknown dtype"));
    CHECK(strstr(estimate_err("kmeans", s2, 1, NULL, NULL, "H100"), "dimensions") ||
          strstr(estimate_err("kmeans", s2, 1, NULL, NULL, "H100"), "dimension"));
    CHECK(strstr(estimate_err("kmeans", neg, 2, NULL, NULL, "H100"), ">= 1"));
    CHECK(strstr(estimate_err("kmeans", zero, 2, NULL, NULL, "H100"), ">= 1"));
    CHECK(strstr(estimate_err("kmeans", big, 2, NULL, NULL, "H100"), "overflows 64 bits"));
    CHECK(strstr(estimate_err("knn", big, 2, NULL, NULL, "H100"), "overflows 64 bits"));
    int64_t g[3] = {1 << 30, 1 << 30, 1 << 30};
    CHECK(strstr(estimate_err("gemm", g, 3, NULL, NULL, "H100"), "overflows 64 bits"));
    CHECK(strstr(estimate_err(NULL, s2, 2, NULL, NULL, "H100"), "op is NULL"));
    CHECK(strstr(estimate_err("kmeans", NULL, 2, NULL, NULL, "H100"), "shape"));
    /* outputs untouched on error */
    fl_info_result r;
    memset(&r, 0xAB, sizeof r);
    fl_info_result copy = r;
    char err[64];
    CHECK(fl_info_estimate("kmeans", zero, 2, NULL, NULL, "H100", &r, err, sizeof err) == FL_INFO_EINVAL);
    CHECK(memcmp(&r, &copy, sizeof r) == 0);
    /* a tiny error buffer is still terminated */
    char tiny[8];
    CHECK(fl_info_estimate("kmeans", zero, 2, NULL, NULL, "H100", &r, tiny, sizeof tiny) == FL_INFO_EINVAL);
    CHECK(strlen(tiny) == 7);
    /* huge but valid estimates are finite; host X that does not fit is
     * streamed (as kmeans.c plans it), device X that does not fit does not */
    int64_t huge[2] = {2000000000LL, 4096};
    if (!estimate("kmeans", huge[0], huge[1], 0, 2, "n_clusters=65536", NULL, "B200", &r)) {
        CHECK(isfinite(r.runtime_ms) && r.runtime_ms > 0);
        CHECK(r.fits_in_memory == 1 && r.peak_memory_bytes <= 180000000000ULL / 10 * 9);
    }
    if (!estimate("kmeans", huge[0], huge[1], 0, 2, "n_clusters=65536 input=device", NULL, "B200", &r)) {
        CHECK(isfinite(r.runtime_ms) && r.runtime_ms > 0);
        CHECK(r.fits_in_memory == 0);
    }
}

/* Random requests, valid and not: every call returns 0 with finite numbers
 * or FL_INFO_EINVAL with a message; nothing crashes (run under ASan/UBSan in
 * make asan). Deterministic: the LCG of check.h. */
static void test_random_requests(void)
{
    static const char *const params[] = {
        NULL,
        "",
        "K=8",
        "n_clusters=3",
        "tol=1e-3",
        "tol=1e-9",
        "variant=gemm_tf32",
        "max_iter=1",
        "n_neighbors=7",
        "nlist=64 nprobe=8",
        "precision=bf16",
        "input=device",
        "init=random n_init=3",
        "expected_iter=2",
        "threads=3",
        "n_components=4",
        "=",
        "K==3",
        "K=",
        "K=1e300",
        "K=-1",
        "tol=nan",
        "max_iter=2.5",
        "precision=fp8",
        "variant=gemm_nope",
        "phase=search",
        ",,;;  ",
        "a=b=c",
    };
    static const char *const devices[] = {"H100", "H100-PCIe", "H200", "A100", "A100-40GB", "L40S",
                                          "B200", "cpu",       "this", "nope", NULL};
    static const char *const dtypes[] = {"f32", "f64", "bf16", "f16", NULL, "int8"};
    static const int64_t sizes[] = {1,    2,      3,         7,         64,        100, 1000,
                                    4096, 100000, 1LL << 31, 1LL << 40, INT64_MAX, 0,   -1};
    char err[512];
    fl_info_result r;
    int ok = 0, bad = 0;
    for (int it = 0; it < 4000; it++) {
        const fl_info_op *op = fl_info_op_at((int)(test_uniform() * fl_info_op_count()));
        int ndim = 1 + (int)(test_uniform() * 4);
        int64_t shape[4];
        const int valid = it % 2; /* half the requests stay in range */
        for (int i = 0; i < 4; i++)
            shape[i] = sizes[(int)(test_uniform() * (valid ? 9 : sizeof sizes / sizeof *sizes))];
        if (valid)
            ndim = op->min_ndim + (int)(test_uniform() * (op->max_ndim - op->min_ndim + 1));
        const char *p = params[(int)(test_uniform() * (sizeof params / sizeof *params))];
        const char *dev = devices[(int)(test_uniform() * (valid ? 8 : sizeof devices / sizeof *devices))];
        const char *dt = dtypes[(int)(test_uniform() * (valid ? 2 : sizeof dtypes / sizeof *dtypes))];
        if (valid && test_uniform() < 0.5)
            p = NULL;
        err[0] = '\0';
        int rc = fl_info_estimate(op->name, shape, ndim, p, dt, dev, &r, err, sizeof err);
        if (rc == 0) {
            ok++;
            CHECK_MSG(isfinite(r.runtime_ms) && r.runtime_ms > 0 && r.flops >= 0 && isfinite(r.flops) &&
                          r.hbm_bytes >= 0 && r.n_nodes >= 1 && r.n_nodes <= FL_INFO_MAX_NODES,
                      "%s %s on %s: %g ms", op->name, p ? p : "", dev ? dev : "", r.runtime_ms);
            char buf[256];
            fl_info_json(&r, buf, sizeof buf);
            fl_info_tree(&r, buf, sizeof buf);
        } else {
            bad++;
            CHECK_MSG(rc == FL_INFO_EINVAL && strlen(err) > 10, "%s: rc %d, message '%s'", op->name, rc, err);
        }
    }
    CHECK_MSG(ok > 500 && bad > 500, "%d ok, %d errors", ok, bad);
}

static void test_devices(void)
{
    CHECK(fl_info_device_count() >= 8);
    const char *need[] = {"H100-SXM", "H100-PCIe", "H200", "A100-40GB", "A100-80GB", "L40S", "B200", "cpu"};
    for (size_t i = 0; i < sizeof need / sizeof *need; i++) {
        const fl_info_device *d = fl_info_device_find(need[i]);
        CHECK_MSG(d != NULL, "%s", need[i]);
        if (!d)
            continue;
        CHECK(d->peak_source && d->memory_source && d->hbm_gbs > 0 && d->memory_bytes > 0);
        if (d->is_gpu)
            CHECK(d->sm_count > 0 && d->l2_bytes > 0 && d->peak_tflops[FL_INFO_PREC_BF16] > 0);
    }
    CHECK(fl_info_device_find("h100") == fl_info_device_find("H100-SXM"));
    CHECK(fl_info_device_find("NVIDIA H100 PCIe") == fl_info_device_find("H100-PCIe"));
    CHECK(fl_info_device_find("NVIDIA H100 80GB HBM3") == fl_info_device_find("H100-SXM"));
    CHECK(fl_info_device_find("this") != NULL);
    CHECK(fl_info_device_find("nope") == NULL);
    /* the measured ceilings of shared/GPU.md */
    const fl_info_device *h = fl_info_device_find("H100");
    CHECK(h->copy_gbs == 2990 && h->measured_tflops[FL_INFO_PREC_TF32] == 397);
    CHECK(fl_info_device_find("H200")->copy_gbs == 4300);
}

/* ---- fast paths against the general ones they stand for ------------------ */

/* Estimates kmeans with `params` into text (JSON and tree): "" on error. */
static void kmeans_text(int64_t n, int64_t d, const char *params, const char *dtype, const char *device,
                        char *buf, size_t len)
{
    int64_t shape[2] = {n, d};
    fl_info_result r;
    char err[512];
    buf[0] = '\0';
    if (fl_info_estimate("kmeans", shape, 2, params, dtype, device, &r, err, sizeof err))
        return;
    size_t used = fl_info_json(&r, buf, len);
    if (used < len)
        fl_info_tree(&r, buf + used, len - used);
}

static void ascii_case(const char *w, char *out, size_t cap, int upper)
{
    size_t j = 0;
    for (; w[j] && j + 1 < cap; j++) {
        char c = w[j];
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!upper && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        out[j] = c;
    }
    out[j] = '\0';
}

/* op_kmeans.c reads kmeans's parameters by index and its unset ones from a
 * table of parsed defaults; device and dtype names are looked up as spelled
 * before ignoring case. Each shortcut must give what the general path
 * gives. */
static void test_fast_paths(void)
{
    /* the order of the indexes in op_kmeans.c */
    static const char *const order[] = {"n_clusters",    "init",           "n_init",        "max_iter",
                                        "tol",           "random_state",   "metric",        "precision",
                                        "algorithm",     "n_local_trials", "verbose",       "input",
                                        "expected_iter", "threads",        "sample_weight", "entry"};
    const int n_order = (int)(sizeof order / sizeof *order);
    char all[2048];
    size_t used = 0;
    const char *name, *def;
    int i = 0;
    for (; fl_info_op_param("kmeans", i, &name, &def, NULL, NULL, NULL) == 0; i++) {
        CHECK_MSG(i < n_order && !strcmp(name, order[i]), "kmeans parameter %d is %s", i, name);
        used += (size_t)snprintf(all + used, sizeof all - used, "%s=%s ", name, def);
    }
    CHECK(i == n_order && used < sizeof all);

    /* every default spelled out == nothing given, on every device */
    static const int64_t shapes[][2] = {{100000, 64}, {1000000, 128}, {5000, 3}, {2000, 2000}};
    static char a[1 << 16], b[1 << 16];
    for (int dv = 0; dv < fl_info_device_count(); dv++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (int t = 0; t < 2; t++) {
                const char *dev = fl_info_device_at(dv)->name, *dt = t ? "f64" : "f32";
                kmeans_text(shapes[s][0], shapes[s][1], NULL, dt, dev, a, sizeof a);
                kmeans_text(shapes[s][0], shapes[s][1], all, dt, dev, b, sizeof b);
                CHECK_MSG(a[0] && !strcmp(a, b), "kmeans %lld x %lld %s on %s: defaults spelled out differ",
                          (long long)shapes[s][0], (long long)shapes[s][1], dt, dev);
            }

    /* every name and alias of the device table finds its own device, as
     * written, in upper and in lower case: so no spelling of one device's
     * names is another's, and looking up exact spellings first is safe */
    for (int dv = 0; dv < fl_info_device_count(); dv++) {
        const fl_info_device *dev = fl_info_device_at(dv);
        char list[256];
        snprintf(list, sizeof list, "%s|%s", dev->name, dev->aliases ? dev->aliases : "");
        for (char *w = strtok(list, "|"); w; w = strtok(NULL, "|")) {
            char up[64], low[64];
            ascii_case(w, up, sizeof up, 1);
            ascii_case(w, low, sizeof low, 0);
            CHECK_MSG(fl_info_device_find(w) == dev, "%s", w);
            CHECK_MSG(fl_info_device_find(up) == dev, "%s", up);
            CHECK_MSG(fl_info_device_find(low) == dev, "%s", low);
        }
    }
    /* dtypes ignoring case */
    kmeans_text(100000, 64, "n_clusters=100", "f64", "H100", a, sizeof a);
    kmeans_text(100000, 64, "n_clusters=100", "Float64", "h100", b, sizeof b);
    CHECK(a[0] && !strcmp(a, b));
    kmeans_text(100000, 64, "n_clusters=100", "FP32", "H100-sxm", b, sizeof b);
    kmeans_text(100000, 64, "n_clusters=100", "f32", "H100", a, sizeof a);
    CHECK(a[0] && !strcmp(a, b));
}

/* ---- knn ---------------------------------------------------------------- */

static void knn_text(const int64_t *shape, int ndim, const char *params, const char *dtype,
                     const char *device, char *buf, size_t len)
{
    fl_info_result r;
    char err[512];
    buf[0] = '\0';
    if (fl_info_estimate("knn", shape, ndim, params, dtype, device, &r, err, sizeof err))
        return;
    size_t used = fl_info_json(&r, buf, len);
    if (used < len)
        fl_info_tree(&r, buf + used, len - used);
}

/* op_knn.c reads its parameters by index, unset ones from a table of parsed
 * defaults (as op_kmeans.c); routing is fli_route_knn's. */
static void test_knn(void)
{
    static const char *const order[] = {"n_neighbors", "radius",    "metric",    "p",
                                        "precision",   "algorithm", "leaf_size", "verbose",
                                        "n_queries",   "input",     "force_gpu", "threads"};
    const int n_order = (int)(sizeof order / sizeof *order);
    char all[2048];
    size_t used = 0;
    const char *name, *def;
    int i = 0;
    for (; fl_info_op_param("knn", i, &name, &def, NULL, NULL, NULL) == 0; i++) {
        CHECK_MSG(i < n_order && !strcmp(name, order[i]), "knn parameter %d is %s", i, name);
        used += (size_t)snprintf(all + used, sizeof all - used, "%s=%s ", name, def);
    }
    CHECK(i == n_order && used < sizeof all);
    static const int64_t shapes[][3] = {{100000, 64, 0}, {1000, 37, 0}, {5000, 1000000, 128}, {10, 10, 1}};
    static char a[1 << 16], b[1 << 16];
    for (int dv = 0; dv < fl_info_device_count(); dv++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (int t = 0; t < 2; t++) {
                const char *dev = fl_info_device_at(dv)->name, *dt = t ? "f64" : "f32";
                const int nd = shapes[s][2] ? 3 : 2;
                knn_text(shapes[s], nd, NULL, dt, dev, a, sizeof a);
                knn_text(shapes[s], nd, all, dt, dev, b, sizeof b);
                CHECK_MSG(a[0] && !strcmp(a, b), "knn %lld x %lld %s on %s: defaults spelled out differ",
                          (long long)shapes[s][0], (long long)shapes[s][1], dt, dev);
            }

    /* k: at most n_samples - 1 for the kNN graph of the data, n_samples for separate queries */
    int64_t g[2] = {1000, 16}, q3[3] = {10, 1000, 16};
    CHECK(strstr(estimate_err("knn", g, 2, "n_neighbors=1000", NULL, "H100"), "n_samples - 1 = 999"));
    CHECK(strstr(estimate_err("knn", q3, 3, "n_neighbors=1001", NULL, "H100"), "n_samples=1000"));
    CHECK(strstr(estimate_err("knn", g, 2, "n_neighbors=5", "bf16", "H100"), "precision=bf16"));
    CHECK(strstr(estimate_err("knn", g, 2, "metric=l3", NULL, "H100"), "expected one of"));
    fl_info_result r;
    char err[512];
    CHECK(fl_info_estimate("knn", q3, 3, "n_neighbors=1000", NULL, "H100", &r, err, sizeof err) == 0);
    CHECK(fl_info_estimate("knn", g, 2, "n_neighbors=999", NULL, "H100", &r, err, sizeof err) == 0);

    /* routing: a small host search stays on the CPU, unless the context is on cuda */
    if (!estimate("knn", 1000, 16, 0, 2, NULL, NULL, "H100", &r))
        CHECK(!strcmp(r.backend, "cpu") && r.tier == FL_INFO_TIER_HEURISTIC);
    if (!estimate("knn", 1000, 16, 0, 2, "force_gpu=true", NULL, "H100", &r))
        CHECK(!strcmp(r.backend, "cuda") && !strcmp(r.variant, "tf32"));
    if (!estimate("knn", 1000, 16, 0, 2, "input=device", NULL, "H100", &r))
        CHECK(!strcmp(r.backend, "cuda"));
    if (!estimate("knn", 1000, 16, 0, 2, NULL, NULL, "cpu", &r))
        CHECK(!strcmp(r.backend, "cpu") && r.runtime_ms > 0 && r.peak_host_bytes > 0);
    /* manhattan has no tensor-core form: fp32 whatever precision asks */
    if (!estimate("knn", 100000, 64, 0, 2, "metric=manhattan precision=bf16 input=device", NULL, "H100", &r))
        CHECK(!strcmp(r.variant, "fp32") && !strcmp(r.model_key, "fp32"));
    /* every precision has its model; every scan's pool is re-ranked in exact fp32 */
    static const char *const precs[] = {"fp32", "tf32", "bf16", "fp16"};
    for (int p = 0; p < 4; p++) {
        char prm[96];
        snprintf(prm, sizeof prm, "precision=%s input=device n_neighbors=10", precs[p]);
        if (estimate("knn", 200000, 128, 0, 2, prm, NULL, "H200", &r))
            continue;
        CHECK(!strcmp(r.variant, precs[p]) && !strcmp(r.model_key, precs[p]));
        int rerank = 0, scan = 0;
        for (int j = 0; j < r.n_nodes; j++) {
            rerank |= strstr(r.nodes[j].name, "re-rank") != NULL;
            scan |= strstr(r.nodes[j].name, "scan") != NULL;
        }
        CHECK_MSG(scan && rerank, "%s", precs[p]);
        /* the model with the roofline coefficients is the estimate (no calibration entry yet) */
        const char *names[32];
        double coef[32], ms = 0;
        int nc = fl_info_model_coefs("knn", precs[p], "H200", names, coef);
        CHECK(nc > 0 && nc <= 32);
        int64_t sh[2] = {200000, 128};
        CHECK(fl_info_model_eval("knn", precs[p], sh, 2, prm, "f32", "H200", coef, nc, &ms, err,
                                 sizeof err) == 0);
        if (r.tier == FL_INFO_TIER_ROOFLINE)
            CHECK(ms == r.runtime_ms);
    }
    /* large k: the any-k path; more neighbours never cost less */
    fl_info_result small, large;
    if (!estimate("knn", 100000, 64, 0, 2, "n_neighbors=10 input=device", NULL, "H100", &small) &&
        !estimate("knn", 100000, 64, 0, 2, "n_neighbors=2000 input=device", NULL, "H100", &large)) {
        int anyk = 0;
        for (int j = 0; j < large.n_nodes; j++)
            anyk |= strstr(large.nodes[j].name, "any-k") != NULL;
        CHECK(anyk && large.runtime_ms > small.runtime_ms &&
              large.peak_memory_bytes > small.peak_memory_bytes);
    }
    /* host input pays the link; minkowski p=3 is heuristic */
    if (!estimate("knn", 1000000, 128, 0, 2, "input=host", NULL, "H100", &large) &&
        !estimate("knn", 1000000, 128, 0, 2, "input=device", NULL, "H100", &small))
        CHECK(large.runtime_ms > small.runtime_ms);
    if (!estimate("knn", 100000, 64, 0, 2, "p=3 input=device", NULL, "H100", &r))
        CHECK(r.tier == FL_INFO_TIER_HEURISTIC && !strcmp(r.variant, "fp32"));
}

int main(void)
{
    test_cpu_host_peak_is_exact();
    test_gpu_plan_and_route();
    test_kmeans_fused_estep();
    test_structure_and_tiers();
    test_variants();
    test_bad_input();
    test_random_requests();
    test_devices();
    test_fast_paths();
    test_knn();
    /* never loads CUDA */
    CHECK(fl_cuda_loaded() == 0);
    TEST_MAIN_END();
}
