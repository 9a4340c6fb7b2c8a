/* test_kmeans.c — KMeans on the CPU backend against an independent float64
 * Lloyd written here, plus properties (objective never rises, determinism,
 * weights), edge shapes and bad input. */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "flashlib.h"

FL_API fl_status fl_kmeans_fit_traced(fl_ctx *ctx, const fl_array *X, const fl_params *params, void *centers,
                                      double *inertia, double *trace, int64_t trace_cap, int64_t *trace_len);

/* Plain float64 Lloyd from given centres, max_iter iterations, tol 0, with
 * scikit-learn's stop on unchanged labels; returns the final inertia. Empty
 * clusters keep their centre (the test data has none). */
static double ref_lloyd(const double *X, long n, long d, double *C, long k, int max_iter)
{
    int *lab = malloc(sizeof(int) * (size_t)n), *old = malloc(sizeof(int) * (size_t)n);
    double *S = malloc(sizeof(double) * (size_t)(k * d)), *W = malloc(sizeof(double) * (size_t)k);
    for (long i = 0; i < n; i++)
        old[i] = -1;
    for (int it = 0; it < max_iter; it++) {
        for (long i = 0; i < n; i++) {
            double best = DBL_MAX;
            for (long j = 0; j < k; j++) {
                double s = 0;
                for (long q = 0; q < d; q++)
                    s += (X[i * d + q] - C[j * d + q]) * (X[i * d + q] - C[j * d + q]);
                if (s < best) {
                    best = s;
                    lab[i] = (int)j;
                }
            }
        }
        memset(S, 0, sizeof(double) * (size_t)(k * d));
        memset(W, 0, sizeof(double) * (size_t)k);
        for (long i = 0; i < n; i++) {
            W[lab[i]] += 1;
            for (long q = 0; q < d; q++)
                S[lab[i] * d + q] += X[i * d + q];
        }
        for (long j = 0; j < k; j++)
            if (W[j] > 0)
                for (long q = 0; q < d; q++)
                    C[j * d + q] = S[j * d + q] / W[j];
        if (!memcmp(lab, old, sizeof(int) * (size_t)n))
            break;
        memcpy(old, lab, sizeof(int) * (size_t)n);
    }
    double inertia = 0;
    for (long i = 0; i < n; i++) {
        double best = DBL_MAX;
        for (long j = 0; j < k; j++) {
            double s = 0;
            for (long q = 0; q < d; q++)
                s += (X[i * d + q] - C[j * d + q]) * (X[i * d + q] - C[j * d + q]);
            best = s < best ? s : best;
        }
        inertia += best;
    }
    free(lab);
    free(old);
    free(S);
    free(W);
    return inertia;
}

static double rel_err(const double *a, const double *b, long len)
{
    double num = 0, den = 0;
    for (long i = 0; i < len; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* Same init, f32 and f64 flashlib vs the float64 reference. */
static void test_against_f64_reference(fl_ctx *ctx)
{
    enum { N = 2000, D = 7, K = 9 };
    float *Xf = malloc(sizeof(float) * N * D);
    double *Xd = malloc(sizeof(double) * N * D);
    int *truth = malloc(sizeof(int) * N);
    make_blobs(Xf, truth, N, D, K, 3.0, 1.5); /* overlapping: Lloyd has work to do */
    for (long i = 0; i < N * D; i++)
        Xd[i] = Xf[i];
    double C0[K * D], Cref[K * D], Cd[K * D];
    float Cf[K * D];
    for (int j = 0; j < K; j++)
        for (int q = 0; q < D; q++)
            C0[j * D + q] = Xd[(j * 37) * D + q];
    memcpy(Cref, C0, sizeof C0);
    double ref_inertia = ref_lloyd(Xd, N, D, Cref, K, 300);

    fl_params *p;
    fl_params_create(ctx, "kmeans", &p);
    fl_params_set_int(ctx, p, "n_clusters", K);
    fl_params_set(ctx, p, "tol", "0");
    fl_array init = fl_array_host(C0, FL_DTYPE_F64, K, D);
    CHECK_OK(ctx, fl_params_set_array(ctx, p, "init", &init));
    fl_array xd = fl_array_host(Xd, FL_DTYPE_F64, N, D), cd = fl_array_host(Cd, FL_DTYPE_F64, K, D);
    double inertia;
    int64_t n_iter;
    int32_t *lab = malloc(sizeof(int32_t) * N);
    fl_array la = fl_array_host(lab, FL_DTYPE_I32, N, 1);
    CHECK_OK(ctx, fl_kmeans_fit(ctx, &xd, NULL, p, &cd, &la, &inertia, &n_iter));
    CHECK_MSG(rel_err(Cd, Cref, K * D) < 1e-10, "f64 centres rel err %g", rel_err(Cd, Cref, K * D));
    CHECK_MSG(fabs(inertia - ref_inertia) / ref_inertia < 1e-10, "f64 inertia %.12g vs %.12g", inertia,
              ref_inertia);
    CHECK(n_iter >= 2 && n_iter < 300);

    fl_array xf = fl_array_host(Xf, FL_DTYPE_F32, N, D), cf = fl_array_host(Cf, FL_DTYPE_F32, K, D);
    CHECK_OK(ctx, fl_kmeans_fit(ctx, &xf, NULL, p, &cf, &la, &inertia, &n_iter));
    double Cfd[K * D];
    for (int i = 0; i < K * D; i++)
        Cfd[i] = Cf[i];
    CHECK_MSG(rel_err(Cfd, Cref, K * D) < 1e-4, "f32 centres rel err %g", rel_err(Cfd, Cref, K * D));
    CHECK_MSG(fabs(inertia - ref_inertia) / ref_inertia < 1e-4, "f32 inertia %.9g vs %.9g", inertia,
              ref_inertia);
    fl_params_free(p);
    free(Xf);
    free(Xd);
    free(truth);
    free(lab);
}

/* Well-separated blobs: each true cluster maps onto exactly one label. */
static void test_blobs_recovered(fl_ctx *ctx)
{
    enum { N = 3000, D = 10, K = 12 };
    float *X = malloc(sizeof(float) * N * D);
    int *truth = malloc(sizeof(int) * N);
    make_blobs(X, truth, N, D, K, 20.0, 1.0);
    fl_params *p;
    fl_params_create(ctx, "kmeans", &p);
    fl_params_set_int(ctx, p, "n_clusters", K);
    fl_params_set(ctx, p, "random_state", "3");
    fl_params_set(ctx, p, "n_init", "3");
    float C[K * D];
    int32_t *lab = malloc(sizeof(int32_t) * N);
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D), ca = fl_array_host(C, FL_DTYPE_F32, K, D);
    fl_array la = fl_array_host(lab, FL_DTYPE_I32, N, 1);
    CHECK_OK(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &ca, &la, NULL, NULL));
    int map[K], consistent = 1, used[K] = {0};
    for (int c = 0; c < K; c++)
        map[c] = -1;
    for (int i = 0; i < N; i++) {
        if (map[truth[i]] < 0)
            map[truth[i]] = lab[i];
        consistent &= map[truth[i]] == lab[i];
    }
    for (int c = 0; c < K; c++)
        if (map[c] >= 0)
            used[map[c]]++;
    for (int c = 0; c < K; c++)
        consistent &= used[c] == 1;
    CHECK_MSG(consistent, "blobs not recovered one-to-one");
    fl_params_free(p);
    free(X);
    free(truth);
    free(lab);
}

/* The objective never rises across Lloyd iterations (euclidean and cosine),
 * and more clusters never give a worse optimum from nested inits. */
static void test_objective_monotone(fl_ctx *ctx)
{
    enum { N = 3000, D = 6, K = 25 };
    float *X = malloc(sizeof(float) * N * D);
    int *truth = malloc(sizeof(int) * N);
    make_blobs(X, truth, N, D, 40, 2.0, 1.0);
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D);
    const char *metrics[] = {"euclidean", "cosine"};
    for (int m = 0; m < 2; m++) {
        fl_params *p;
        fl_params_create(ctx, "kmeans", &p);
        fl_params_set_int(ctx, p, "n_clusters", K);
        fl_params_set(ctx, p, "init", "random");
        fl_params_set(ctx, p, "n_init", "1");
        fl_params_set(ctx, p, "tol", "0");
        fl_params_set(ctx, p, "metric", metrics[m]);
        fl_params_set(ctx, p, "random_state", "11");
        float C[K * D];
        double trace[400], inertia;
        int64_t len = 0;
        CHECK_OK(ctx, fl_kmeans_fit_traced(ctx, &xa, p, C, &inertia, trace, 400, &len));
        CHECK_MSG(len >= 5, "%s: only %lld iterations", metrics[m], (long long)len);
        int mono = 1;
        for (int64_t i = 1; i < len; i++)
            mono &= trace[i] <= trace[i - 1] * (1 + 1e-6) + 1e-9;
        CHECK_MSG(mono, "%s objective rose", metrics[m]);
        CHECK(inertia <= trace[len - 1] * (1 + 1e-6) + 1e-9);
        fl_params_free(p);
    }
    free(X);
    free(truth);
}

static void test_determinism_and_weights(fl_ctx *ctx)
{
    enum { N = 1500, D = 5, K = 6 };
    float *X = malloc(sizeof(float) * N * D);
    int *truth = malloc(sizeof(int) * N);
    make_blobs(X, truth, N, D, K, 4.0, 1.0);
    fl_params *p;
    fl_params_create(ctx, "kmeans", &p);
    fl_params_set_int(ctx, p, "n_clusters", K);
    fl_params_set(ctx, p, "random_state", "42");
    float C1[K * D], C2[K * D];
    double i1, i2;
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D);
    fl_array c1 = fl_array_host(C1, FL_DTYPE_F32, K, D), c2 = fl_array_host(C2, FL_DTYPE_F32, K, D);
    CHECK_OK(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &c1, NULL, &i1, NULL));
    CHECK_OK(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &c2, NULL, &i2, NULL));
    CHECK(!memcmp(C1, C2, sizeof C1) && i1 == i2);

    /* Integer weights equal repeated rows: weight 2 on the first 100 rows. */
    float *Xr = malloc(sizeof(float) * (N + 100) * D), *w = malloc(sizeof(float) * N);
    memcpy(Xr, X, sizeof(float) * N * D);
    memcpy(Xr + N * D, X, sizeof(float) * 100 * D);
    for (int i = 0; i < N; i++)
        w[i] = i < 100 ? 2.0f : 1.0f;
    double C0[K * D];
    for (int i = 0; i < K * D; i++)
        C0[i] = X[(i / D) * 97 * D + i % D];
    fl_array init = fl_array_host(C0, FL_DTYPE_F64, K, D);
    fl_params_set_array(ctx, p, "init", &init);
    fl_array wa = fl_array_host(w, FL_DTYPE_F32, N, 1), xr = fl_array_host(Xr, FL_DTYPE_F32, N + 100, D);
    CHECK_OK(ctx, fl_kmeans_fit(ctx, &xa, &wa, p, &c1, NULL, &i1, NULL));
    CHECK_OK(ctx, fl_kmeans_fit(ctx, &xr, NULL, p, &c2, NULL, &i2, NULL));
    double a[K * D], b[K * D];
    for (int i = 0; i < K * D; i++) {
        a[i] = C1[i];
        b[i] = C2[i];
    }
    CHECK_MSG(rel_err(a, b, K * D) < 1e-5, "weighted vs repeated centres differ: %g", rel_err(a, b, K * D));
    CHECK_MSG(fabs(i1 - i2) / i2 < 1e-5, "weighted inertia %g vs repeated %g", i1, i2);
    fl_params_free(p);
    free(X);
    free(Xr);
    free(w);
    free(truth);
}

static void test_edges(fl_ctx *ctx)
{
    /* n = 1, k = 1, d = 1 */
    float x1 = 3.5f, c1 = 0;
    int32_t l1 = -1;
    fl_params *p;
    fl_params_create(ctx, "kmeans", &p);
    fl_params_set(ctx, p, "n_clusters", "1");
    fl_array xa = fl_array_host(&x1, FL_DTYPE_F32, 1, 1), ca = fl_array_host(&c1, FL_DTYPE_F32, 1, 1);
    fl_array la = fl_array_host(&l1, FL_DTYPE_I32, 1, 1);
    double inertia = -1;
    CHECK_OK(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &ca, &la, &inertia, NULL));
    CHECK(c1 == 3.5f && l1 == 0 && inertia == 0);
    /* k = n with duplicate points and ld > cols */
    enum { N = 10, D = 3, LD = 5 };
    float X[N * LD];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < LD; j++)
            X[i * LD + j] = j < D ? (float)((i / 2) * 10 + j) : NAN; /* padding is never read */
    fl_params_set_int(ctx, p, "n_clusters", N);
    float C[N * D];
    int32_t lab[N];
    fl_array xs = {X, FL_DTYPE_F32, FL_MEM_HOST, 0, N, D, LD};
    fl_array cs = fl_array_host(C, FL_DTYPE_F32, N, D), ls = fl_array_host(lab, FL_DTYPE_I32, N, 1);
    CHECK_OK(ctx, fl_kmeans_fit(ctx, &xs, NULL, p, &cs, &ls, &inertia, NULL));
    CHECK(inertia == 0);
    /* k > n */
    fl_params_set_int(ctx, p, "n_clusters", N + 1);
    float Cbig[(N + 1) * D];
    fl_array cb = fl_array_host(Cbig, FL_DTYPE_F32, N + 1, D);
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &xs, NULL, p, &cb, NULL, NULL, NULL), FL_STATUS_INVALID_ARG,
              "n_clusters=11: must be in [1, n_samples=10]");
    fl_params_free(p);
}

static void test_bad_input(fl_ctx *ctx)
{
    enum { N = 50, D = 4, K = 3 };
    float X[N * D];
    int truth[N];
    make_blobs(X, truth, N, D, K, 5.0, 1.0);
    fl_params *p;
    fl_params_create(ctx, "kmeans", &p);
    fl_params_set_int(ctx, p, "n_clusters", K);
    float C[K * D];
    int32_t lab[N];
    for (int i = 0; i < K * D; i++)
        C[i] = 123.0f;
    for (int i = 0; i < N; i++)
        lab[i] = -5;
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D), ca = fl_array_host(C, FL_DTYPE_F32, K, D);
    fl_array la = fl_array_host(lab, FL_DTYPE_I32, N, 1);
    X[17] = INFINITY;
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &ca, &la, NULL, NULL), FL_STATUS_INVALID_ARG,
              "X[4, 1] is Inf");
    X[17] = NAN;
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &ca, &la, NULL, NULL), FL_STATUS_INVALID_ARG, "is NaN");
    X[17] = 0;
    fl_array empty = fl_array_host(X, FL_DTYPE_F32, 0, D);
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &empty, NULL, p, &ca, &la, NULL, NULL), FL_STATUS_INVALID_ARG,
              "is empty");
    fl_array wrong_c = fl_array_host(C, FL_DTYPE_F32, K, D - 1);
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &wrong_c, &la, NULL, NULL), FL_STATUS_INVALID_ARG,
              "centers: expected f32 3 x 4");
    fl_array wrong_l = fl_array_host(lab, FL_DTYPE_I64, N, 1);
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &ca, &wrong_l, NULL, NULL), FL_STATUS_INVALID_ARG,
              "labels: expected i32");
    float w[N];
    for (int i = 0; i < N; i++)
        w[i] = 1;
    w[3] = -1;
    fl_array wa = fl_array_host(w, FL_DTYPE_F32, N, 1);
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &xa, &wa, p, &ca, &la, NULL, NULL), FL_STATUS_INVALID_ARG,
              "sample_weight[3]");
    fl_array w_short = fl_array_host(w, FL_DTYPE_F32, N - 1, 1);
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &xa, &w_short, p, &ca, &la, NULL, NULL), FL_STATUS_INVALID_ARG,
              "one weight per sample");
    double bad_init[2 * D] = {0};
    fl_array bi = fl_array_host(bad_init, FL_DTYPE_F64, 2, D);
    fl_params_set_array(ctx, p, "init", &bi);
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &ca, &la, NULL, NULL), FL_STATUS_INVALID_ARG,
              "init array is 2 x 4");
    fl_params_free(p);
    fl_params_create(ctx, "kmeans", &p);
    fl_params_set_int(ctx, p, "n_clusters", K);
    fl_params_set(ctx, p, "init", "array");
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &ca, &la, NULL, NULL), FL_STATUS_INVALID_ARG,
              "no array was given");
    fl_params_set(ctx, p, "init", "k-means++");
    fl_params_set(ctx, p, "metric", "cosine");
    memset(X, 0, sizeof(float) * D); /* row 0 is all zeros */
    CHECK_ERR(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &ca, &la, NULL, NULL), FL_STATUS_INVALID_ARG,
              "row 0 is all zeros");
    /* outputs untouched by every failure above */
    int untouched = 1;
    for (int i = 0; i < K * D; i++)
        untouched &= C[i] == 123.0f;
    for (int i = 0; i < N; i++)
        untouched &= lab[i] == -5;
    CHECK(untouched);
    fl_params_free(p);
}

/* Host allocator hooks reach the CUDA module too (its host scratch: the
 * random init's draws, the trace): failing the Nth host allocation of a GPU
 * fit, N = 1, 2, ... until one succeeds, each time gives a clean
 * out-of-memory error with nothing leaked and the output untouched. */
typedef struct counting_alloc {
    long calls, fail_at, live;
} counting_alloc;

static void *ca_alloc(void *user, size_t bytes)
{
    counting_alloc *a = user;
    if (++a->calls == a->fail_at)
        return NULL;
    void *p = malloc(bytes);
    if (p)
        a->live++;
    return p;
}

static void ca_free(void *user, void *p)
{
    counting_alloc *a = user;
    if (p) {
        a->live--;
        free(p);
    }
}

static void test_cuda_host_hooks(void)
{
    enum { N = 3000, D = 8, K = 6 };
    static float X[N * D];
    int truth[N];
    make_blobs(X, truth, N, D, K, 8.0, 1.0);
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D);
    int clean = 1, attempts = 0, ok = 0;
    for (long fail_at = 1; fail_at < 200 && !ok; fail_at++) {
        fl_ctx *ctx;
        fl_ctx_create("cuda", &ctx, NULL, 0);
        counting_alloc a = {0, fail_at, 0};
        fl_host_allocator ha = {ca_alloc, ca_free, &a};
        fl_ctx_set_host_allocator(ctx, &ha);
        fl_params *p;
        fl_params_create(ctx, "kmeans", &p);
        fl_params_set(ctx, p, "n_clusters", "6");
        fl_params_set(ctx, p, "init", "random");
        fl_params_set(ctx, p, "n_init", "2");
        float C[K * D];
        for (int i = 0; i < K * D; i++)
            C[i] = 7.0f;
        fl_array ca = fl_array_host(C, FL_DTYPE_F32, K, D);
        fl_status st = fl_kmeans_fit(ctx, &xa, NULL, p, &ca, NULL, NULL, NULL);
        attempts++;
        if (st == FL_STATUS_OK) {
            ok = 1;
        } else {
            int untouched = 1;
            for (int i = 0; i < K * D; i++)
                untouched &= C[i] == 7.0f;
            if (st != FL_STATUS_OUT_OF_MEMORY || !untouched) {
                clean = 0;
                fprintf(stderr, "fail_at=%ld: status %d (%s), output %s\n", fail_at, (int)st,
                        fl_ctx_last_error(ctx), untouched ? "untouched" : "written");
            }
        }
        fl_params_free(p);
        fl_ctx_free(ctx);
        if (a.live != 0) {
            clean = 0;
            fprintf(stderr, "fail_at=%ld: %ld host allocations leaked\n", fail_at, a.live);
        }
    }
    CHECK(ok);
    CHECK(clean);
    /* the first attempt failed: the module's host scratch went through the hooks */
    CHECK_MSG(attempts >= 2, "%d attempt: nothing allocated through the hooks", attempts);
}

/* fl_ctx_release_device_memory between GPU fits: the context stays usable
 * and a fit after it gives the same centres as the fit before it (the pool
 * and the caches are refilled). */
static void test_cuda_release_memory(void)
{
    enum { N = 20000, D = 16, K = 8 };
    static float X[N * D];
    int truth[N];
    make_blobs(X, truth, N, D, K, 8.0, 1.0);
    fl_ctx *ctx;
    fl_ctx_create("cuda", &ctx, NULL, 0);
    fl_params *p;
    fl_params_create(ctx, "kmeans", &p);
    fl_params_set_int(ctx, p, "n_clusters", K);
    fl_params_set(ctx, p, "random_state", "3");
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D);
    float C0[K * D], C1[K * D], C2[K * D];
    fl_array c0 = fl_array_host(C0, FL_DTYPE_F32, K, D), c1 = fl_array_host(C1, FL_DTYPE_F32, K, D),
             c2 = fl_array_host(C2, FL_DTYPE_F32, K, D);
    CHECK_OK(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &c0, NULL, NULL, NULL));
    CHECK_OK(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &c1, NULL, NULL, NULL));
    CHECK_OK(ctx, fl_ctx_release_device_memory(ctx));
    CHECK_OK(ctx, fl_ctx_release_device_memory(ctx)); /* twice: nothing left, still fine */
    CHECK_OK(ctx, fl_kmeans_fit(ctx, &xa, NULL, p, &c2, NULL, NULL, NULL));
    CHECK_MSG(!memcmp(C0, C1, sizeof C0) && !memcmp(C0, C2, sizeof C0),
              "GPU fits before and after releasing the device memory differ");
    fl_params_free(p);
    fl_ctx_free(ctx);
}

/* Asking for "cuda" without a GPU is a clear error that writes nothing. Runs
 * last: probing for a GPU maps libcuda where a driver exists. */
static void test_cuda_without_gpu(void)
{
    fl_ctx *cuda;
    fl_ctx_create("cuda", &cuda, NULL, 0);
    if (fl_cuda_device_count(cuda, NULL) == 0) {
        float X[8] = {0, 1, 2, 3, 4, 5, 6, 7}, C[4] = {-1, -1, -1, -1};
        fl_array xa = fl_array_host(X, FL_DTYPE_F32, 4, 2), ca = fl_array_host(C, FL_DTYPE_F32, 2, 2);
        fl_params *p;
        fl_params_create(cuda, "kmeans", &p);
        fl_params_set(cuda, p, "n_clusters", "2");
        CHECK_ERR(cuda, fl_kmeans_fit(cuda, &xa, NULL, p, &ca, NULL, NULL, NULL), FL_STATUS_NO_DEVICE,
                  "needs a CUDA GPU");
        CHECK(C[0] == -1 && C[3] == -1);
        fl_params_free(p);
    } else {
        test_cuda_host_hooks();
        test_cuda_release_memory();
    }
    fl_ctx_free(cuda);
}

static void test_model_methods(fl_ctx *ctx)
{
    enum { N = 600, D = 4, K = 5 };
    float X[N * D];
    int truth[N];
    make_blobs(X, truth, N, D, K, 10.0, 1.0);
    fl_params *p;
    fl_params_create(ctx, "kmeans", &p);
    fl_params_set_int(ctx, p, "n_clusters", K);
    fl_params_set(ctx, p, "random_state", "1");
    fl_model *m;
    fl_model_create(ctx, "kmeans", p, &m);
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D);
    int32_t lab[N], pred[N];
    fl_array la = fl_array_host(lab, FL_DTYPE_I32, N, 1), pa = fl_array_host(pred, FL_DTYPE_I32, N, 1);
    CHECK_OK(ctx, fl_model_fit_predict(m, &xa, NULL, &la));
    CHECK_OK(ctx, fl_model_predict(m, &xa, &pa));
    CHECK(!memcmp(lab, pred, sizeof lab));
    float T[N * K];
    fl_array ta = fl_array_host(T, FL_DTYPE_F32, N, K);
    CHECK_OK(ctx, fl_model_transform(m, &xa, &ta));
    int argmin_ok = 1;
    double inertia_from_t = 0;
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int j = 1; j < K; j++)
            best = T[i * K + j] < T[i * K + best] ? j : best;
        argmin_ok &= best == pred[i];
        inertia_from_t += (double)T[i * K + best] * T[i * K + best];
    }
    CHECK(argmin_ok);
    double score, inertia;
    CHECK_OK(ctx, fl_model_score(m, &xa, NULL, NULL, &score));
    CHECK_OK(ctx, fl_model_attr_scalar(m, "inertia_", &inertia));
    CHECK_MSG(fabs(-score - inertia) / inertia < 1e-5, "score %g inertia %g", score, inertia);
    CHECK_MSG(fabs(inertia_from_t - inertia) / inertia < 1e-4, "transform^2 %g inertia %g", inertia_from_t,
              inertia);
    fl_array wrong = fl_array_host(X, FL_DTYPE_F32, N / 2, D - 1);
    CHECK_ERR(ctx, fl_model_predict(m, &wrong, &pa), FL_STATUS_INVALID_ARG,
              "labels out: expected i32 300 x 1");
    fl_array pa2 = fl_array_host(pred, FL_DTYPE_I32, N / 2, 1);
    CHECK_ERR(ctx, fl_model_predict(m, &wrong, &pa2), FL_STATUS_INVALID_ARG,
              "X has 3 features, but KMeans was fitted with 4");
    /* batched: 3 problems of 200 rows */
    float Cb[3 * K * D];
    int32_t lb[N];
    double ib[3];
    fl_array cba = fl_array_host(Cb, FL_DTYPE_F32, 3 * K, D), lba = fl_array_host(lb, FL_DTYPE_I32, N, 1);
    CHECK_OK(ctx, fl_kmeans_fit_batched(ctx, &xa, 3, p, &cba, &lba, ib));
    CHECK(ib[0] > 0 && ib[1] > 0 && ib[2] > 0);
    int in_range = 1;
    for (int i = 0; i < N; i++)
        in_range &= lb[i] >= 0 && lb[i] < K;
    CHECK(in_range);
    CHECK_ERR(ctx, fl_kmeans_fit_batched(ctx, &xa, 7, p, &cba, &lba, ib), FL_STATUS_INVALID_ARG,
              "divide X's 600 rows");
    fl_model_free(m);
    fl_params_free(p);
}

int main(void)
{
    fl_ctx *ctx;
    fl_ctx_create("cpu", &ctx, NULL, 0);
    test_against_f64_reference(ctx);
    test_blobs_recovered(ctx);
    test_objective_monotone(ctx);
    test_determinism_and_weights(ctx);
    test_edges(ctx);
    test_bad_input(ctx);
    test_model_methods(ctx);
    fl_ctx_free(ctx);
    CHECK_MSG(!fl_cuda_loaded(), "a CPU fit loaded CUDA");
    test_cuda_without_gpu();
    TEST_MAIN_END();
}
