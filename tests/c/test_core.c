/* test_core.c — status codes, contexts, parameters, arrays, models,
 * serialization (round trip, truncation, corruption) and allocation-failure
 * injection. CPU only: it also proves that none of this loads CUDA. */
#include <stdint.h>

#include "check.h"
#include "flashlib.h"

static void test_status_and_version(void)
{
    CHECK(FL_STATUS_OK == 0 && FL_STATUS_INVALID_ARG == -1 && FL_STATUS_INTERNAL == -12);
    CHECK(!strcmp(fl_status_str(FL_STATUS_CORRUPT), "FL_STATUS_CORRUPT"));
    CHECK(!strcmp(fl_status_str((fl_status)-999), "FL_STATUS_UNKNOWN"));
    CHECK(!strcmp(fl_version_string(), FL_VERSION_STRING));
    CHECK(fl_version_number() == FL_VERSION_NUMBER);
    CHECK(fl_dtype_size(FL_DTYPE_F32) == 4 && fl_dtype_size(FL_DTYPE_BF16) == 2 &&
          fl_dtype_size((fl_dtype)77) == 0);
}

static void test_ctx(void)
{
    fl_ctx *ctx = (fl_ctx *)0x1;
    char err[256];
    CHECK(fl_ctx_create("tpu", &ctx, err, sizeof err) == FL_STATUS_INVALID_ARG);
    CHECK(ctx == NULL);
    CHECK(strstr(err, "'tpu'") && strstr(err, "expected 'auto', 'cpu', 'cuda' or 'cuda:N'"));
    CHECK(fl_ctx_create("cuda:x", &ctx, err, sizeof err) == FL_STATUS_INVALID_ARG);
    CHECK(fl_ctx_create("cuda:1", &ctx, err, sizeof err) == FL_STATUS_OK);
    CHECK(!strcmp(fl_ctx_device(ctx), "cuda:1"));
    /* nothing on the GPU yet: nothing to release, and CUDA stays unloaded
     * (main checks that) */
    CHECK_OK(ctx, fl_ctx_release_device_memory(ctx));
    fl_ctx_free(ctx);
    CHECK(fl_ctx_release_device_memory(NULL) == FL_STATUS_INVALID_ARG);
    CHECK(fl_ctx_create("cpu", &ctx, err, sizeof err) == FL_STATUS_OK);
    CHECK(!strcmp(fl_ctx_device(ctx), "cpu"));
    CHECK(fl_ctx_set_threads(ctx, -2) == FL_STATUS_INVALID_ARG);
    CHECK(strstr(fl_ctx_last_error(ctx), "threads=-2"));
    CHECK_OK(ctx, fl_ctx_set_threads(ctx, 2));
    CHECK(fl_ctx_set_verbosity(ctx, (fl_log_level)9) == FL_STATUS_INVALID_ARG);
    fl_host_allocator bad = {NULL, NULL, NULL};
    CHECK(fl_ctx_set_host_allocator(ctx, &bad) == FL_STATUS_INVALID_ARG);
    fl_ctx_free(ctx);
    fl_ctx_free(NULL);
}

static void test_params(void)
{
    fl_ctx *ctx;
    fl_ctx_create("cpu", &ctx, NULL, 0);
    CHECK(fl_param_count("kmeans") >= 10);
    CHECK(fl_param_count("nope") == -1);
    CHECK(fl_param_def_at("kmeans", 0) && !strcmp(fl_param_def_at("kmeans", 0)->name, "n_clusters"));
    CHECK(fl_param_def_at("kmeans", 999) == NULL);
    fl_params *p = NULL;
    CHECK_ERR(ctx, fl_params_create(ctx, "kmean", &p), FL_STATUS_INVALID_ARG, "unknown algorithm 'kmean'");
    CHECK_OK(ctx, fl_params_create(ctx, "kmeans", &p));
    char buf[64];
    CHECK_OK(ctx, fl_params_get(ctx, p, "n_clusters", buf, sizeof buf));
    CHECK(!strcmp(buf, "8"));
    CHECK_OK(ctx, fl_params_get(ctx, p, "init", buf, sizeof buf));
    CHECK(!strcmp(buf, "k-means++"));
    CHECK_OK(ctx, fl_params_get(ctx, p, "n_init", buf, sizeof buf));
    CHECK(!strcmp(buf, "auto"));
    CHECK_OK(ctx, fl_params_get(ctx, p, "tol", buf, sizeof buf));
    CHECK(atof(buf) == 1e-4);
    /* out of range: the message names the value and the bounds */
    CHECK_ERR(ctx, fl_params_set(ctx, p, "n_clusters", "0"), FL_STATUS_INVALID_ARG,
              "n_clusters=0: must be in [1,");
    CHECK_ERR(ctx, fl_params_set(ctx, p, "n_clusters", "2.5"), FL_STATUS_INVALID_ARG, "whole number");
    CHECK_ERR(ctx, fl_params_set(ctx, p, "tol", "-1"), FL_STATUS_INVALID_ARG, "tol=-1");
    CHECK_ERR(ctx, fl_params_set(ctx, p, "tol", "abc"), FL_STATUS_INVALID_ARG, "expected a number");
    CHECK_ERR(ctx, fl_params_set(ctx, p, "init", "kmeans++"), FL_STATUS_INVALID_ARG,
              "must be one of k-means++|random|array");
    CHECK_ERR(ctx, fl_params_set(ctx, p, "n_cluster", "3"), FL_STATUS_INVALID_ARG,
              "did you mean 'n_clusters'");
    CHECK_ERR(ctx, fl_params_set(ctx, p, "max_iterations", "3"), FL_STATUS_INVALID_ARG, "no parameter");
    /* nothing changed by the failures */
    CHECK_OK(ctx, fl_params_get(ctx, p, "n_clusters", buf, sizeof buf));
    CHECK(!strcmp(buf, "8"));
    /* aliases known to FlashLib users */
    CHECK_OK(ctx, fl_params_set(ctx, p, "K", "256"));
    CHECK_OK(ctx, fl_params_set(ctx, p, "max_iters", "20"));
    CHECK_OK(ctx, fl_params_get(ctx, p, "n_clusters", buf, sizeof buf));
    CHECK(!strcmp(buf, "256"));
    CHECK_OK(ctx, fl_params_get(ctx, p, "max_iter", buf, sizeof buf));
    CHECK(!strcmp(buf, "20"));
    CHECK_OK(ctx, fl_params_set_int(ctx, p, "n_init", 3));
    CHECK_OK(ctx, fl_params_set_float(ctx, p, "tol", 0.5));
    CHECK_OK(ctx, fl_params_set(ctx, p, "random_state", "none"));
    fl_params *q;
    CHECK_OK(ctx, fl_params_copy(ctx, p, &q));
    CHECK_OK(ctx, fl_params_get(ctx, q, "n_init", buf, sizeof buf));
    CHECK(!strcmp(buf, "3"));
    fl_params_free(q);
    fl_params_free(p);
    fl_params_free(NULL);
    fl_ctx_free(ctx);
}

static void test_arrays(void)
{
    fl_ctx *ctx;
    fl_ctx_create("cpu", &ctx, NULL, 0);
    float X[12] = {0};
    fl_array a = fl_array_host(X, FL_DTYPE_F32, 3, 4);
    a.ld = 2;
    float C[4];
    fl_array c = fl_array_host(C, FL_DTYPE_F32, 1, 4);
    fl_params *p;
    fl_params_create(ctx, "kmeans", &p);
    fl_params_set(ctx, p, "n_clusters", "1");
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &a, NULL, p, &c, NULL, NULL, NULL), FL_STATUS_INVALID_ARG,
              "leading dimension 2 < cols 4");
    a = fl_array_host(NULL, FL_DTYPE_F32, 3, 4);
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &a, NULL, p, &c, NULL, NULL, NULL), FL_STATUS_INVALID_ARG,
              "data is NULL");
    a = fl_array_host(X, FL_DTYPE_I32, 3, 4);
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &a, NULL, p, &c, NULL, NULL, NULL), FL_STATUS_INVALID_ARG,
              "expected f32 or f64");
    a = fl_array_host(X, FL_DTYPE_F32, 0x7fffffffffffffffLL, 4);
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &a, NULL, p, &c, NULL, NULL, NULL), FL_STATUS_INVALID_ARG, "overflow");
    fl_params_free(p);
    fl_ctx_free(ctx);
}

/* A fitted model on blobs, for the serialization tests. */
static fl_model *fit_small(fl_ctx *ctx, float *X, long n, long d)
{
    int truth[256];
    make_blobs(X, truth, n, d, 3, 8.0, 1.0);
    fl_params *p;
    fl_params_create(ctx, "kmeans", &p);
    fl_params_set(ctx, p, "n_clusters", "3");
    fl_params_set(ctx, p, "random_state", "7");
    fl_model *m = NULL;
    fl_model_create(ctx, "kmeans", p, &m);
    fl_params_free(p);
    fl_array a = fl_array_host(X, FL_DTYPE_F32, n, d);
    CHECK_OK(ctx, fl_model_fit(m, &a, NULL, NULL));
    return m;
}

static void test_model_and_serialization(void)
{
    fl_ctx *ctx;
    fl_ctx_create("cpu", &ctx, NULL, 0);
    enum { N = 120, D = 5 };
    float X[N * D];
    fl_model *unfit;
    CHECK_OK(ctx, fl_model_create(ctx, "kmeans", NULL, &unfit));
    int32_t lab[N];
    fl_array la = fl_array_host(lab, FL_DTYPE_I32, N, 1);
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D);
    CHECK_ERR(ctx, fl_model_predict(unfit, &xa, &la), FL_STATUS_NOT_FITTED, "not fitted yet");
    void *buf;
    size_t len;
    CHECK_ERR(ctx, fl_model_save_buffer(unfit, &buf, &len), FL_STATUS_NOT_FITTED, "not fitted");
    fl_model_free(unfit);

    fl_model *m = fit_small(ctx, X, N, D);
    CHECK(fl_model_is_fitted(m));
    double inertia, n_iter, nf;
    CHECK_OK(ctx, fl_model_attr_scalar(m, "inertia_", &inertia));
    CHECK_OK(ctx, fl_model_attr_scalar(m, "n_iter_", &n_iter));
    CHECK_OK(ctx, fl_model_attr_scalar(m, "n_features_in_", &nf));
    CHECK(inertia > 0 && n_iter >= 1 && nf == D);
    CHECK_ERR(ctx, fl_model_attr_scalar(m, "cluster_centers_", &nf), FL_STATUS_INVALID_ARG, "not a scalar");
    CHECK_ERR(ctx, fl_model_attr_scalar(m, "coef_", &nf), FL_STATUS_INVALID_ARG, "no attribute 'coef_'");

    CHECK_OK(ctx, fl_model_save_buffer(m, &buf, &len));
    fl_model *m2 = NULL;
    CHECK_OK(ctx, fl_model_load_buffer(ctx, buf, len, &m2));
    float C1[3 * D], C2[3 * D];
    fl_array c1 = fl_array_host(C1, FL_DTYPE_F32, 3, D), c2 = fl_array_host(C2, FL_DTYPE_F32, 3, D);
    CHECK_OK(ctx, fl_model_attr_copy(m, "cluster_centers_", &c1));
    CHECK_OK(ctx, fl_model_attr_copy(m2, "cluster_centers_", &c2));
    CHECK(!memcmp(C1, C2, sizeof C1));
    int32_t lab2[N];
    fl_array la2 = fl_array_host(lab2, FL_DTYPE_I32, N, 1);
    CHECK_OK(ctx, fl_model_predict(m, &xa, &la));
    CHECK_OK(ctx, fl_model_predict(m2, &xa, &la2));
    CHECK(!memcmp(lab, lab2, sizeof lab));
    char pbuf[32];
    CHECK_OK(ctx, fl_params_get(ctx, fl_model_params(m2), "random_state", pbuf, sizeof pbuf));
    CHECK(!strcmp(pbuf, "7"));
    fl_model_free(m2);

    /* every truncation is an error, never a crash */
    int truncation_ok = 1;
    for (size_t cut = 0; cut < len; cut++) {
        fl_model *t = NULL;
        fl_status st = fl_model_load_buffer(ctx, buf, cut, &t);
        if (st != FL_STATUS_CORRUPT || t)
            truncation_ok = 0;
    }
    CHECK(truncation_ok);
    /* every single-byte corruption is detected */
    unsigned char *cp = malloc(len);
    int corruption_ok = 1;
    for (size_t pos = 0; pos < len; pos++) {
        memcpy(cp, buf, len);
        cp[pos] ^= 0x5a;
        fl_model *t = NULL;
        fl_status st = fl_model_load_buffer(ctx, cp, len, &t);
        if ((st != FL_STATUS_CORRUPT && st != FL_STATUS_VERSION_MISMATCH) || t)
            corruption_ok = 0;
    }
    CHECK(corruption_ok);
    memcpy(cp, buf, len);
    cp[8] = 99; /* a future format version */
    fl_model *t = NULL;
    CHECK_ERR(ctx, fl_model_load_buffer(ctx, cp, len, &t), FL_STATUS_VERSION_MISMATCH, "format version 99");
    memcpy(cp, "GARBAGE!", 8);
    CHECK_ERR(ctx, fl_model_load_buffer(ctx, cp, len, &t), FL_STATUS_CORRUPT, "bad magic");
    free(cp);

    /* files */
    char path[] = "/tmp/fl_test_model_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK_OK(ctx, fl_model_save(m, path));
    CHECK_OK(ctx, fl_model_load(ctx, path, &m2));
    fl_model_free(m2);
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, len / 2, f);
    fclose(f);
    m2 = NULL;
    CHECK_ERR(ctx, fl_model_load(ctx, path, &m2), FL_STATUS_CORRUPT, "corrupt");
    CHECK(m2 == NULL);
    remove(path);
    CHECK_ERR(ctx, fl_model_load(ctx, "/nonexistent/dir/model.flm", &m2), FL_STATUS_IO_ERROR, "cannot open");
    CHECK_ERR(ctx, fl_model_save(m, "/nonexistent/dir/model.flm"), FL_STATUS_IO_ERROR, "cannot open");
    fl_buffer_free(buf);
    fl_model_free(m);
    fl_ctx_free(ctx);
}

/* ---- allocation-failure injection --------------------------------------- */
static void test_alloc_failure_injection(void)
{
    enum { N = 150, D = 4 };
    float X[N * D];
    int truth[N];
    make_blobs(X, truth, N, D, 3, 6.0, 1.0);
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D);
    int all_clean = 1, attempts = 0;
    for (long fail_at = 1; fail_at < 10000; fail_at++) {
        fl_ctx *ctx;
        fl_ctx_create("cpu", &ctx, NULL, 0);
        failing_alloc fa = {0, fail_at, 0};
        fl_host_allocator ha = {fa_alloc, fa_free, &fa};
        fl_ctx_set_host_allocator(ctx, &ha);
        fl_params *p;
        fl_params_create(ctx, "kmeans", &p);
        fl_params_set(ctx, p, "n_clusters", "3");
        fl_params_set(ctx, p, "n_init", "2");
        fl_model *m;
        fl_model_create(ctx, "kmeans", p, &m);
        fl_status st = fl_model_fit(m, &xa, NULL, NULL);
        attempts++;
        if (st == FL_STATUS_OK) {
            fl_model_free(m);
            fl_params_free(p);
            CHECK_MSG(fa.live == 0, "leak after success: %ld live", fa.live);
            fl_ctx_free(ctx);
            break;
        }
        if (st != FL_STATUS_OUT_OF_MEMORY || !strstr(fl_ctx_last_error(ctx), "out of host memory") ||
            fl_model_is_fitted(m))
            all_clean = 0;
        fl_model_free(m);
        fl_params_free(p);
        if (fa.live != 0) {
            all_clean = 0;
            fprintf(stderr, "fail_at=%ld: %ld allocations leaked\n", fail_at, fa.live);
        }
        fl_ctx_free(ctx);
    }
    CHECK(all_clean);
    CHECK_MSG(attempts > 5, "only %d attempts: the fit allocates through the hooks", attempts);
}

/* A failed refit leaves the previous fit intact. */
static void test_failed_refit_keeps_model(void)
{
    fl_ctx *ctx;
    fl_ctx_create("cpu", &ctx, NULL, 0);
    enum { N = 60, D = 3 };
    float X[N * D];
    fl_model *m = fit_small(ctx, X, N, D);
    double before, after;
    fl_model_attr_scalar(m, "inertia_", &before);
    X[5] = 0.0f / 0.0f;
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D);
    CHECK_ERR(ctx, fl_model_fit(m, &xa, NULL, NULL), FL_STATUS_INVALID_ARG, "is NaN");
    CHECK(fl_model_is_fitted(m));
    fl_model_attr_scalar(m, "inertia_", &after);
    CHECK(before == after);
    fl_model_free(m);
    fl_ctx_free(ctx);
}

static int cancel_at_3(void *user, const char *stage, int64_t done, int64_t total)
{
    (void)total;
    int *calls = user;
    ++*calls;
    return strcmp(stage, "kmeans.lloyd") == 0 && done >= 3;
}

static void test_progress_cancel(void)
{
    fl_ctx *ctx;
    fl_ctx_create("cpu", &ctx, NULL, 0);
    int calls = 0;
    fl_ctx_set_progress(ctx, cancel_at_3, &calls);
    enum { N = 400, D = 4 };
    float X[N * D];
    int truth[N];
    make_blobs(X, truth, N, D, 20, 1.0, 1.0);
    fl_params *p;
    fl_params_create(ctx, "kmeans", &p);
    fl_params_set(ctx, p, "n_clusters", "20");
    fl_params_set(ctx, p, "tol", "0");
    float C[20 * D];
    for (int i = 0; i < 20 * D; i++)
        C[i] = -7.0f;
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D), ca = fl_array_host(C, FL_DTYPE_F32, 20, D);
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &ca, NULL, NULL, NULL), FL_STATUS_CANCELLED, "cancelled");
    CHECK(calls >= 3);
    int untouched = 1;
    for (int i = 0; i < 20 * D; i++)
        untouched &= C[i] == -7.0f;
    CHECK(untouched);
    fl_params_free(p);
    fl_ctx_free(ctx);
}

static void test_route(void)
{
    fl_ctx *ctx;
    fl_ctx_create("cpu", &ctx, NULL, 0);
    fl_route r;
    CHECK_OK(ctx, fl_route_query(ctx, "kmeans", NULL, 1000, 8, FL_DTYPE_F32, NULL, &r));
    CHECK(r.backend == FL_BACKEND_CPU && !strcmp(r.variant, "fp32"));
    fl_hw_props h100 = {.name = "NVIDIA H100 80GB HBM3",
                        .tag = "H100",
                        .sm_major = 9,
                        .sm_count = 132,
                        .is_hopper = 1,
                        .sm90_enabled = 1};
    fl_params *p;
    fl_params_create(ctx, "kmeans", &p);
    fl_params_set(ctx, p, "n_clusters", "8192");
    CHECK_OK(ctx, fl_route_query(ctx, "kmeans", &h100, 1000000, 128, FL_DTYPE_F32, p, &r));
    CHECK(r.backend == FL_BACKEND_CUDA_SM90 && !strcmp(r.variant, "tf32")); /* tf32 wgmma through TMA */
    fl_params_set(ctx, p, "n_clusters", "512");
    CHECK_OK(ctx, fl_route_query(ctx, "kmeans", &h100, 1000000, 128, FL_DTYPE_F32, p, &r));
    CHECK(r.backend == FL_BACKEND_CUDA && !strcmp(r.variant, "tf32")); /* n_clusters < 1024 */
    fl_params_set(ctx, p, "n_clusters", "8192");
    fl_params_set(ctx, p, "precision", "bf16");
    CHECK_OK(ctx, fl_route_query(ctx, "kmeans", &h100, 1000000, 128, FL_DTYPE_F32, p, &r));
    CHECK(r.backend == FL_BACKEND_CUDA_SM90 && !strcmp(r.variant, "bf16"));
    CHECK_OK(ctx, fl_route_query(ctx, "kmeans", &h100, 1000000, 256, FL_DTYPE_F32, p, &r));
    CHECK(r.backend == FL_BACKEND_CUDA); /* n_features > 128 */
    fl_params_set(ctx, p, "precision", "auto");
    h100.sm90_enabled = 0; /* FL_DISABLE_SM90 */
    CHECK_OK(ctx, fl_route_query(ctx, "kmeans", &h100, 1000000, 128, FL_DTYPE_F32, p, &r));
    CHECK(r.backend == FL_BACKEND_CUDA && strstr(r.reason, "FL_DISABLE_SM90"));
    fl_params_set(ctx, p, "n_clusters", "16");
    CHECK_OK(ctx, fl_route_query(ctx, "kmeans", &h100, 1000000, 128, FL_DTYPE_F32, p, &r));
    CHECK(!strcmp(r.variant, "fp32"));
    CHECK_ERR(ctx, fl_route_query(ctx, "kmeans", NULL, 0, 8, FL_DTYPE_F32, NULL, &r), FL_STATUS_INVALID_ARG,
              "must be positive");
    fl_params_free(p);
    fl_ctx_free(ctx);
}

int main(void)
{
    test_status_and_version();
    test_ctx();
    test_params();
    test_arrays();
    test_model_and_serialization();
    test_alloc_failure_injection();
    test_failed_refit_keeps_model();
    test_progress_cancel();
    test_route();
    /* Nothing above asked for a GPU: neither libcuda nor the module is mapped. */
    CHECK_MSG(!fl_cuda_loaded(), "a CPU-only run loaded libcuda or libflashlib_cuda.so");
    TEST_MAIN_END();
}
