/*
 * bench_pca.c — PCA covariance_eigh on the GPU: the headline shape through
 * the public API, the module's product and eigh variants side by side, and
 * the host-data crossover against the CPU backend that routing uses.
 *
 *   bench_pca path/to/libflashlib_cuda.so out.json [reps] [n] [d] [k]
 *
 * Headline: PCA of n x d float32 (default 1,000,000 x 512) to k = 32
 * components, X already in device memory: fl_pca_fit on a 'cuda' context,
 * timed with CUDA events around the call, median (and min/max) of `reps`
 * timed runs after 2 warm-ups. Its result is checked against the CPU
 * backend's fit of the same data (components up to sign, explained
 * variance, mean). The floor is the covariance product itself: n d (d + 1)
 * FLOPs (the symmetric half of X^T X, multiply and add) at the H100's
 * measured 51 TFLOP/s fp32 SIMT ceiling (GPU.md), or 4 n d bytes at
 * 2.99 TB/s if larger.
 *
 * The same fit on a context made with FL_PCA_FULL_EIGH=1 (cuSOLVER's
 * float64 syevd of every pair instead of the top-k solver) isolates the
 * eigen step; contexts made with FL_PCA_PRODUCT=3xbf16 (and 3xtf32) give
 * the product x eigen step table, each fit's accuracy against float64.
 *
 * Variants (module entry, X on the device): the scatter alone (left on the
 * device, FLI_COV_EIGH_DEVICE) by the 3xtf32 product (variant 4: slices x
 * rows per slice, one or two streams, with or without the rescaling to the
 * exact diagonal), the 3xbf16 one (variant 5, the same switches) and the
 * float32 ones (tiles of the lower triangle); each
 * scatter variant's accuracy from one more pass with the module's float64
 * syevd, against the float64 truth (the CPU backend on a float64 copy of
 * X: 1 - |cos| per component, explained variance); eigh on the
 * device (syevd, syevdx top k, float32) or on the host (the CPU's dsyevd,
 * timed here after the scatter comes back).
 *
 * Data: x_ij = off_j + scale_j u_ij with u uniform in [-1, 1), scale_j
 * decaying with j and offsets of 10 (a mean far from zero, as real data
 * has): distinct eigenvalues, and a test of the centring's accuracy.
 * GIT_COMMIT names the commit in the JSON (the device copy has no .git);
 * PCA_NO_CROSSOVER=1 skips the host-data crossover.
 */
#define _GNU_SOURCE
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/cuda/fl_cuda_module.h"
#include "flashlib.h"

void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jl, size_t ul);

#define CK(call)                                                                                             \
    do {                                                                                                     \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess) {                                                                             \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));           \
            exit(2);                                                                                         \
        }                                                                                                    \
    } while (0)
#define FL(ctx, call)                                                                                        \
    do {                                                                                                     \
        fl_status s_ = (call);                                                                               \
        if (s_ != FL_STATUS_OK) {                                                                            \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, fl_ctx_last_error(ctx));           \
            exit(2);                                                                                         \
        }                                                                                                    \
    } while (0)

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct stats {
    double med, min, max;
} stats;
static stats summarize(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    stats s = {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[0], v[n - 1]};
    return s;
}

static float *make_data(int64_t n, int64_t d, uint64_t seed)
{
    float *x = malloc(sizeof(float) * (size_t)(n * d));
    if (!x)
        exit(3);
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(i + 1));
        for (int64_t j = 0; j < d; j++) {
            z ^= z << 13;
            z ^= z >> 7;
            z ^= z << 17;
            const double u = (double)(z >> 11) * (2.0 / 9007199254740992.0) - 1.0;
            x[i * d + j] = (float)(10.0 + u / (1.0 + 0.05 * (double)j));
        }
    }
    return x;
}

static void print_log(void *user, fl_log_level level, const char *msg)
{
    (void)user, (void)level;
    printf("  log: %s\n", msg);
}

static fl_params *pca_params(fl_ctx *ctx, int64_t k)
{
    fl_params *p;
    FL(ctx, fl_params_create(ctx, "pca", &p));
    FL(ctx, fl_params_set(ctx, p, "svd_solver", "covariance_eigh"));
    FL(ctx, fl_params_set_int(ctx, p, "n_components", k));
    return p;
}

/* Median time of fl_pca_fit (+ free) on ctx; the last model in *keep. */
static stats time_fit(fl_ctx *ctx, const fl_array *X, int64_t k, int warm, int reps, fl_model **keep)
{
    fl_params *p = pca_params(ctx, k);
    double *t = malloc(sizeof(double) * (size_t)reps);
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int r = -warm; r < reps; r++) {
        fl_model *m;
        CK(cudaEventRecord(a, 0));
        FL(ctx, fl_pca_fit(ctx, X, p, &m));
        CK(cudaEventRecord(b, 0));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        if (r >= 0)
            t[r] = ms;
        if (keep && r == reps - 1)
            *keep = m;
        else
            fl_model_free(m);
    }
    stats s = summarize(t, reps);
    free(t);
    fl_params_free(p);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return s;
}

static stats time_wall(fl_ctx *ctx, const fl_array *X, int64_t k, int warm, int reps)
{
    fl_params *p = pca_params(ctx, k);
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int r = -warm; r < reps; r++) {
        fl_model *m;
        const double t0 = now_ms();
        FL(ctx, fl_pca_fit(ctx, X, p, &m));
        if (r >= 0)
            t[r] = now_ms() - t0;
        fl_model_free(m);
    }
    stats s = summarize(t, reps);
    free(t);
    fl_params_free(p);
    return s;
}

/* An attribute as doubles, in the model's own dtype (a float32 fit's
 * attributes are float32: differences below their rounding read as 0). */
static double *attr(fl_ctx *ctx, fl_model *m, const char *name, int64_t rows, int64_t cols)
{
    double *v = malloc(sizeof(double) * (size_t)(rows * cols));
    fl_dtype dt = FL_DTYPE_F32;
    int64_t r = 0, c = 0;
    FL(ctx, fl_model_attr_info(m, name, &dt, &r, &c));
    if (dt == FL_DTYPE_F64) {
        fl_array a = fl_array_host(v, FL_DTYPE_F64, rows, cols);
        FL(ctx, fl_model_attr_copy(m, name, &a));
        return v;
    }
    float *f = malloc(sizeof(float) * (size_t)(rows * cols));
    fl_array a = fl_array_host(f, FL_DTYPE_F32, rows, cols);
    FL(ctx, fl_model_attr_copy(m, name, &a));
    for (int64_t i = 0; i < rows * cols; i++)
        v[i] = f[i];
    free(f);
    return v;
}

/* max over components of 1 - |<g_i, c_i>| (both unit rows), and the max
 * relative difference of the explained variance and of the mean. */
static void compare(fl_ctx *g, fl_model *mg, fl_ctx *c, fl_model *mc, int64_t k, int64_t d, double *comp_err,
                    double *ev_err, double *mean_err)
{
    double *G = attr(g, mg, "components_", k, d), *C = attr(c, mc, "components_", k, d);
    double *eg = attr(g, mg, "explained_variance_", k, 1), *ec = attr(c, mc, "explained_variance_", k, 1);
    double *ug = attr(g, mg, "mean_", d, 1), *uc = attr(c, mc, "mean_", d, 1);
    *comp_err = *ev_err = *mean_err = 0;
    for (int64_t i = 0; i < k; i++) {
        double dot = 0;
        for (int64_t j = 0; j < d; j++)
            dot += G[i * d + j] * C[i * d + j];
        *comp_err = fmax(*comp_err, 1 - fabs(dot));
        *ev_err = fmax(*ev_err, fabs(eg[i] - ec[i]) / ec[i]);
    }
    for (int64_t j = 0; j < d; j++)
        *mean_err = fmax(*mean_err, fabs(ug[j] - uc[j]) / fabs(uc[j]));
    free(G), free(C), free(eg), free(ec), free(ug), free(uc);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s libflashlib_cuda.so out.json [reps] [n] [d] [k]\n", argv[0]);
        return 2;
    }
    const int reps = argc > 3 ? atoi(argv[3]) : 10;
    const int64_t n = argc > 4 ? atoll(argv[4]) : 1000000, d = argc > 5 ? atoll(argv[5]) : 512,
                  k = argc > 6 ? atoll(argv[6]) : 32;
    const char *commit = getenv("GIT_COMMIT") ? getenv("GIT_COMMIT") : "unknown";
    FILE *js = fopen(argv[2], "w");
    if (!js)
        return 2;
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    int drv = 0;
    CK(cudaDriverGetVersion(&drv));
    time_t tt = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tt));
    fprintf(js,
            "{\n \"bench\": \"pca_cuda\", \"device\": \"%s\", \"driver\": %d, \"commit\": \"%s\", \"date\": "
            "\"%s\",\n",
            prop.name, drv, commit, date);
    fprintf(js, " \"command\": \"bench/gpu/bench_pca libflashlib_cuda.so OUT.json %d %lld %lld %lld\",\n",
            reps, (long long)n, (long long)d, (long long)k);
    fprintf(js, " \"shape\": {\"n\": %lld, \"d\": %lld, \"k\": %lld, \"dtype\": \"f32\"},\n", (long long)n,
            (long long)d, (long long)k);

    const double t0 = now_ms();
    float *hX = make_data(n, d, 7);
    float *dX;
    CK(cudaMalloc((void **)&dX, sizeof(float) * (size_t)(n * d)));
    CK(cudaMemcpy(dX, hX, sizeof(float) * (size_t)(n * d), cudaMemcpyHostToDevice));
    printf("data %lld x %lld ready in %.0f ms\n", (long long)n, (long long)d, now_ms() - t0);

    /* ---- headline through the public API, X on the device -------------- */
    fl_ctx *gctx, *cctx;
    char err[256];
    if (fl_ctx_create("cuda", &gctx, err, sizeof err) || fl_ctx_create("cpu", &cctx, err, sizeof err)) {
        fprintf(stderr, "ctx: %s\n", err);
        return 2;
    }
    fl_array Xd = fl_array_cuda(dX, FL_DTYPE_F32, n, d, 0), Xh = fl_array_host(hX, FL_DTYPE_F32, n, d);
    fl_model *mg = NULL, *mc = NULL;
    stats sg = time_fit(gctx, &Xd, k, 2, reps, &mg);
    const double flops = (double)n * (double)d * (double)(d + 1);
    const double floor_flop = flops / 51e12 * 1e3, floor_byte = 4.0 * n * d / 2.99e12 * 1e3;
    const double floor_ms = floor_flop > floor_byte ? floor_flop : floor_byte;
    printf("flashlib PCA (X on device): median %.3f ms (min %.3f, max %.3f); floor %.3f ms; ratio %.2f\n",
           sg.med, sg.min, sg.max, floor_ms, sg.med / floor_ms);
    const int quick = getenv("PCA_QUICK") != NULL; /* headline only */
    if (quick) {
        fprintf(js, " \"flashlib_gpu_ms\": {\"median\": %.4f, \"min\": %.4f, \"max\": %.4f, \"reps\": %d},\n",
                sg.med, sg.min, sg.max, reps);
        fprintf(js, " \"floor\": {\"ms\": %.4f, \"flops\": %.4e}, \"ratio_to_floor\": %.3f\n}\n", floor_ms,
                flops, sg.med / floor_ms);
        fclose(js);
        fl_model_free(mg);
        /* five logged fits: the phases (covariance pass, the top-k solver's steps) */
        fl_ctx_set_log(gctx, print_log, NULL);
        fl_ctx_set_verbosity(gctx, FL_LOG_INFO);
        for (int r = 0; r < 5; r++) {
            fl_params *pl = pca_params(gctx, k);
            fl_model *ml = NULL;
            FL(gctx, fl_pca_fit(gctx, &Xd, pl, &ml));
            fl_model_free(ml);
            fl_params_free(pl);
        }
        return 0;
    }
    const double tc0 = now_ms();
    fl_params *pc = pca_params(cctx, k);
    FL(cctx, fl_pca_fit(cctx, &Xh, pc, &mc));
    const double cpu_ms = now_ms() - tc0;
    fl_params_free(pc);
    double ce, ee, me;
    compare(gctx, mg, cctx, mc, k, d, &ce, &ee, &me);
    printf("vs flashlib CPU (%d threads, %.0f ms): 1-|cos| max %.2e, explained variance rel %.2e, mean rel "
           "%.2e\n",
           fl_ctx_get_threads(cctx), cpu_ms, ce, ee, me);
    /* per component, and how the top-k solver ended (the context's log) */
    {
        double *G = attr(gctx, mg, "components_", k, d), *C = attr(cctx, mc, "components_", k, d);
        double *eg = attr(gctx, mg, "explained_variance_", k, 1),
               *ec = attr(cctx, mc, "explained_variance_", k, 1);
        printf("per component (1-|cos|, ev rel):");
        for (int64_t i = 0; i < k; i++) {
            double dot = 0;
            for (int64_t j = 0; j < d; j++)
                dot += G[i * d + j] * C[i * d + j];
            printf("%s %lld: %.1e %.1e", i % 4 ? "," : "\n ", (long long)i, 1 - fabs(dot),
                   fabs(eg[i] - ec[i]) / ec[i]);
        }
        printf("\n");
        free(G), free(C), free(eg), free(ec);
        fl_ctx_set_log(gctx, print_log, NULL);
        fl_ctx_set_verbosity(gctx, FL_LOG_INFO);
        fl_params *pl = pca_params(gctx, k);
        fl_model *ml;
        FL(gctx, fl_pca_fit(gctx, &Xd, pl, &ml));
        fl_model_free(ml);
        fl_params_free(pl);
        fl_ctx_set_verbosity(gctx, FL_LOG_WARN);
    }
    /* the eigen step A/B: every pair by cuSOLVER's float64 syevd */
    setenv("FL_PCA_FULL_EIGH", "1", 1);
    fl_ctx *fctx;
    if (fl_ctx_create("cuda", &fctx, err, sizeof err)) {
        fprintf(stderr, "ctx: %s\n", err);
        return 2;
    }
    unsetenv("FL_PCA_FULL_EIGH");
    fl_model *mf = NULL;
    stats sf = time_fit(fctx, &Xd, k, 2, reps, &mf);
    double cef, eef, mef;
    compare(fctx, mf, cctx, mc, k, d, &cef, &eef, &mef);
    printf("flashlib PCA, full float64 syevd (FL_PCA_FULL_EIGH=1): median %.3f ms (min %.3f, max %.3f); "
           "1-|cos| max %.2e, ev rel %.2e\n",
           sf.med, sf.min, sf.max, cef, eef);
    fprintf(js,
            " \"flashlib_gpu_full_eigh_ms\": {\"median\": %.4f, \"min\": %.4f, \"max\": %.4f, "
            "\"max_1_minus_abs_cos\": %.3e, \"explained_variance_rel\": %.3e},\n",
            sf.med, sf.min, sf.max, cef, eef);
    fl_model_free(mf);
    fl_ctx_free(fctx);
    /* the float64 truth: the CPU backend on a float64 copy of X (its
     * blocks' products in float64); the module variants below are
     * measured against it */
    fl_model *m64 = NULL;
    {
        double *hX64 = malloc(sizeof(double) * (size_t)(n * d));
        if (!hX64)
            exit(3);
        for (int64_t i = 0; i < n * d; i++)
            hX64[i] = hX[i];
        fl_array X64 = fl_array_host(hX64, FL_DTYPE_F64, n, d);
        fl_params *p64 = pca_params(cctx, k);
        FL(cctx, fl_pca_fit(cctx, &X64, p64, &m64));
        fl_params_free(p64);
        free(hX64);
        double c1, e1, u1, c2, e2, u2;
        fl_model *mq;
        fl_params *pq = pca_params(gctx, k);
        FL(gctx, fl_pca_fit(gctx, &Xd, pq, &mq));
        fl_params_free(pq);
        compare(gctx, mq, cctx, m64, k, d, &c1, &e1, &u1);
        compare(cctx, mc, cctx, m64, k, d, &c2, &e2, &u2);
        printf(
            "vs float64 (CPU backend on float64 X): flashlib GPU 1-|cos| max %.2e, ev rel %.2e; flashlib CPU "
            "float32 1-|cos| max %.2e, ev rel %.2e\n",
            c1, e1, c2, e2);
        fprintf(
            js,
            " \"vs_float64\": {\"gpu\": {\"max_1_minus_abs_cos\": %.3e, \"explained_variance_rel\": %.3e}, "
            "\"cpu_f32\": {\"max_1_minus_abs_cos\": %.3e, \"explained_variance_rel\": %.3e}},\n",
            c1, e1, c2, e2);
        fl_model_free(mq);
        /* product x eigen step, full fits through the API, each against
         * float64 */
        const struct {
            const char *name, *product, *full;
        } F[] = {{"3xtf32 + top-k", "3xtf32", NULL},
                 {"3xbf16 + top-k", "3xbf16", NULL},
                 {"3xtf32-fused + top-k", "3xtf32-fused", NULL},
                 {"3xtf32-fused-mma + top-k", "3xtf32-fused-mma", NULL},
                 {"3xtf32 + syevd64", "3xtf32", "1"},
                 {"3xbf16 + syevd64", "3xbf16", "1"}};
        fprintf(js, " \"fits\": [\n");
        const int nf = (int)(sizeof F / sizeof F[0]);
        for (int f = 0; f < nf; f++) {
            setenv("FL_PCA_PRODUCT", F[f].product, 1);
            if (F[f].full)
                setenv("FL_PCA_FULL_EIGH", F[f].full, 1);
            fl_ctx *xc;
            if (fl_ctx_create("cuda", &xc, err, sizeof err)) {
                fprintf(stderr, "ctx: %s\n", err);
                return 2;
            }
            unsetenv("FL_PCA_PRODUCT");
            unsetenv("FL_PCA_FULL_EIGH");
            fl_model *mx = NULL;
            stats sx = time_fit(xc, &Xd, k, 2, reps, &mx);
            double cx, ex, ux;
            compare(xc, mx, cctx, m64, k, d, &cx, &ex, &ux);
            printf(
                "fit %-18s median %7.3f ms (min %.3f, max %.3f); vs float64 1-|cos| max %.2e, ev rel %.2e\n",
                F[f].name, sx.med, sx.min, sx.max, cx, ex);
            fprintf(js,
                    "  {\"name\": \"%s\", \"median_ms\": %.4f, \"min_ms\": %.4f, \"max_ms\": %.4f, "
                    "\"vs_float64\": {\"max_1_minus_abs_cos\": %.3e, \"explained_variance_rel\": %.3e}}%s\n",
                    F[f].name, sx.med, sx.min, sx.max, cx, ex, f < nf - 1 ? "," : "");
            fl_model_free(mx);
            fl_ctx_free(xc);
        }
        fprintf(js, " ],\n");
        fflush(stdout);
    }
    double *refc = attr(cctx, m64, "components_", k, d), *refe = attr(cctx, m64, "explained_variance_", k, 1);
    fl_model_free(m64);
    fprintf(js,
            " \"flashlib_gpu_ms\": {\"median\": %.4f, \"min\": %.4f, \"max\": %.4f, \"reps\": %d, \"timer\": "
            "\"cuda "
            "events around fl_pca_fit\"},\n",
            sg.med, sg.min, sg.max, reps);
    fprintf(js,
            " \"floor\": {\"ms\": %.4f, \"flops\": %.4e, \"rule\": \"n d (d+1) FLOPs at 51 TFLOP/s fp32 (or "
            "4 n d "
            "bytes at 2.99 TB/s if larger)\"},\n \"ratio_to_floor\": %.3f,\n",
            floor_ms, flops, sg.med / floor_ms);
    fprintf(js,
            " \"flashlib_cpu\": {\"ms\": %.1f, \"threads\": %d},\n \"gpu_vs_cpu\": {\"max_1_minus_abs_cos\": "
            "%.3e, "
            "\"explained_variance_rel\": %.3e, \"mean_rel\": %.3e},\n",
            cpu_ms, fl_ctx_get_threads(cctx), ce, ee, me);
    fl_model_free(mg);
    fl_model_free(mc);

    /* ---- module variants ---------------------------------------------- */
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    fli_cuda_module_get_fn get = h ? (fli_cuda_module_get_fn)dlsym(h, FLI_CUDA_MODULE_SYMBOL) : NULL;
    const fli_cuda_api *api = get ? get() : NULL;
    if (!api || api->abi != FLI_CUDA_ABI) {
        fprintf(stderr, "module %s: not loadable or wrong ABI\n", argv[1]);
        return 2;
    }
    fli_cuda_env env;
    memset(&env, 0, sizeof env);
    env.err = err;
    env.err_len = sizeof err;
    if (api->ctx_init(&env)) {
        fprintf(stderr, "ctx_init: %s\n", err);
        return 2;
    }
    double *mean = malloc(sizeof(double) * (size_t)d), *S = malloc(sizeof(double) * (size_t)(d * d));
    double *comp = malloc(sizeof(double) * (size_t)(d * d)), *sv = malloc(sizeof(double) * (size_t)d);
    struct {
        const char *name;
        int variant, tile, tf32, eigh;
        int64_t slices, chunk, n;
        int one_stream, no_rescale;
    } V[] = {
        {"tf3 scatter (default)", 0, 0, 0, FLI_COV_EIGH_DEVICE, 0, 0, 0, 0, 0},
        {"tf3 fused (variant 6)", 6, 0, 0, FLI_COV_EIGH_DEVICE, 0, 0, 0, 0, 0},
        {"tf3 fused, no rescale", 6, 0, 0, FLI_COV_EIGH_DEVICE, 0, 0, 0, 0, 1},
        {"tf3 fused, 26 splits", 6, 0, 0, FLI_COV_EIGH_DEVICE, 26, 0, 0, 0, 0},
        {"tf3 fused mma.sync (variant 7)", 7, 0, 0, FLI_COV_EIGH_DEVICE, 0, 0, 0, 0, 0},
        {"tf3 default, no rescale", 0, 0, 0, FLI_COV_EIGH_DEVICE, 0, 0, 0, 0, 1},
        {"tf3 default, one stream", 0, 0, 0, FLI_COV_EIGH_DEVICE, 0, 0, 0, 1, 0},
        {"tf3 B16 rs1024", 4, 0, 0, FLI_COV_EIGH_DEVICE, 16, 16384, 0, 0, 0},
        {"tf3 B4 rs4096", 4, 0, 0, FLI_COV_EIGH_DEVICE, 4, 16384, 0, 0, 0},
        {"tf3 B8 rs1024", 4, 0, 0, FLI_COV_EIGH_DEVICE, 8, 8192, 0, 0, 0},
        {"bf3 scatter (variant 5)", 5, 0, 0, FLI_COV_EIGH_DEVICE, 0, 0, 0, 0, 0},
        {"bf3 no rescale", 5, 0, 0, FLI_COV_EIGH_DEVICE, 0, 0, 0, 0, 1},
        {"bf3 one stream", 5, 0, 0, FLI_COV_EIGH_DEVICE, 0, 0, 0, 1, 0},
        {"bf3 B4 rs4096", 5, 0, 0, FLI_COV_EIGH_DEVICE, 4, 16384, 0, 0, 0},
        {"bf3 B16 rs1024", 5, 0, 0, FLI_COV_EIGH_DEVICE, 16, 16384, 0, 0, 0},
        {"bf3 B8 rs4096", 5, 0, 0, FLI_COV_EIGH_DEVICE, 8, 32768, 0, 0, 0},
        {"bf3 B16 rs2048", 5, 0, 0, FLI_COV_EIGH_DEVICE, 16, 32768, 0, 0, 0},
        {"fixed cost: n=4096 bf3", 5, 0, 0, FLI_COV_EIGH_DEVICE, 0, 0, 4096, 0, 0},
        {"tri128 chunk 32k (fp32)", 1, 128, 0, FLI_COV_EIGH_DEVICE, 0, 32768, 0, 0, 0},
        {"tri128 tf32 chunk 32k", 1, 128, 1, FLI_COV_EIGH_DEVICE, 0, 32768, 0, 0, 0},
        {"fixed cost: n=4096 tf3", 0, 0, 0, FLI_COV_EIGH_DEVICE, 0, 0, 4096, 0, 0},
        {"fixed cost: n=4096 + syevd64", 0, 0, 0, FLI_COV_EIGH_SYEVD, 0, 0, 4096, 0, 0},
        {"tf3 + syevd64", 0, 0, 0, FLI_COV_EIGH_SYEVD, 0, 0, 0, 0, 0},
        {"tf3 + syevdx64 top k", 0, 0, 0, FLI_COV_EIGH_SYEVDX, 0, 0, 0, 0, 0},
        {"tf3 + syevd32", 0, 0, 0, FLI_COV_EIGH_SYEVD32, 0, 0, 0, 0, 0},
        {"tf3 + host copy of S", 0, 0, 0, FLI_COV_EIGH_HOST, 0, 0, 0, 0, 0},
    };
    const int nv = (int)(sizeof V / sizeof *V);
    fprintf(js, " \"variants\": [\n");
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int v = 0; v < nv; v++) {
        fli_pca_cov_job j;
        int ok = 1;
        for (int r = -2; r <= reps && ok; r++) {
            /* the extra last run: the module's float64 syevd on this
             * variant's scatter, for its accuracy against the CPU */
            const int acc_run = r == reps;
            if (acc_run && (V[v].n || V[v].eigh == FLI_COV_EIGH_SYEVD32))
                break;
            memset(&j, 0, sizeof j);
            j.X = dX, j.x_dev = 0, j.n = V[v].n ? V[v].n : n, j.d = d, j.ld = d;
            j.variant = V[v].variant, j.tile = V[v].tile, j.tf32 = V[v].tf32, j.k = k;
            j.eigh = acc_run && V[v].eigh != FLI_COV_EIGH_SYEVDX ? FLI_COV_EIGH_SYEVD : V[v].eigh;
            j.slices = V[v].slices, j.chunk_rows = V[v].chunk, j.one_stream = V[v].one_stream;
            j.no_rescale = V[v].no_rescale;
            j.mean = mean, j.scatter = S, j.components = comp, j.sv = sv;
            const double a = now_ms();
            if (api->pca_cov(&env, &j)) {
                printf("%-32s failed: %s\n", V[v].name, err);
                ok = 0;
            }
            if (r >= 0 && !acc_run)
                t[r] = now_ms() - a;
            if (acc_run && ok) {
                double cerr = 0, eerr = 0;
                for (int64_t i = 0; i < k; i++) {
                    double dot = 0;
                    for (int64_t jj = 0; jj < d; jj++)
                        dot += refc[i * d + jj] * comp[i * d + jj];
                    cerr = fmax(cerr, 1 - fabs(dot));
                    eerr = fmax(eerr, fabs(sv[i] * sv[i] / (double)(n - 1) - refe[i]) / refe[i]);
                }
                printf("%-32s vs float64: 1-|cos| max %.2e, explained variance rel %.2e\n", "", cerr, eerr);
                fprintf(js,
                        "  {\"name\": \"%s accuracy\", \"max_1_minus_abs_cos\": %.3e, \"ev_rel\": %.3e},\n",
                        V[v].name, cerr, eerr);
            }
        }
        if (!ok)
            continue;
        stats s = summarize(t, reps);
        printf("%-32s median %8.3f ms (min %.3f, max %.3f)\n", V[v].name, s.med, s.min, s.max);
        fprintf(js, "  {\"name\": \"%s\", \"median_ms\": %.4f, \"min_ms\": %.4f, \"max_ms\": %.4f},\n",
                V[v].name, s.med, s.min, s.max);
        fflush(stdout);
    }
    /* the CPU's dsyevd on the last scatter (as the algo layer would run it) */
    {
        fli_pca_cov_job j;
        memset(&j, 0, sizeof j);
        j.X = dX, j.x_dev = 0, j.n = n, j.d = d, j.ld = d, j.eigh = FLI_COV_EIGH_HOST;
        j.mean = mean, j.scatter = S;
        if (api->pca_cov(&env, &j) == FL_STATUS_OK) {
            double *A = malloc(sizeof(double) * (size_t)(d * d)), *w = malloc(sizeof(double) * (size_t)d), wq;
            int nn = (int)d, info, lw = -1, liw = -1, iwq;
            dsyevd_("V", "U", &nn, A, &nn, w, &wq, &lw, &iwq, &liw, &info, 1, 1);
            lw = (int)wq + 1, liw = iwq + 1;
            double *work = malloc(sizeof(double) * (size_t)lw);
            int *iwork = malloc(sizeof(int) * (size_t)liw);
            for (int r = 0; r < 5; r++) {
                memcpy(A, S, sizeof(double) * (size_t)(d * d));
                const double a = now_ms();
                dsyevd_("V", "U", &nn, A, &nn, w, work, &lw, iwork, &liw, &info, 1, 1);
                t[r] = now_ms() - a;
            }
            stats s = summarize(t, 5);
            printf("%-28s median %8.3f ms (host LAPACK dsyevd, d=%lld)\n", "cpu dsyevd", s.med, (long long)d);
            fprintf(js, "  {\"name\": \"cpu dsyevd (after scatter only)\", \"median_ms\": %.4f}\n", s.med);
            free(A), free(w), free(work), free(iwork);
        } else {
            fprintf(js, "  {\"name\": \"cpu dsyevd\", \"median_ms\": null}\n");
        }
    }
    fprintf(js, " ],\n");
    api->ctx_free(&env);

    free(refc), free(refe);
    /* ---- host data: GPU (forced) vs CPU, for the routing rule ---------- */
    fprintf(js, " \"host_crossover\": [\n");
    const int64_t shapes[][2] = {{20000, 32},   {200000, 32}, {20000, 64},   {100000, 64}, {50000, 128},
                                 {200000, 128}, {20000, 256}, {100000, 256}, {20000, 512}, {100000, 512}};
    const int ns = (int)(sizeof shapes / sizeof *shapes);
    int first = 1;
    for (int i = 0; i < ns; i++) {
        const int64_t sn = shapes[i][0], sd = shapes[i][1];
        if (sn * sd > n * d || getenv("PCA_NO_CROSSOVER"))
            continue;
        /* the first sn rows of the big array, first sd columns (ld = d) */
        fl_array A = fl_array_host(hX, FL_DTYPE_F32, sn, sd);
        A.ld = d;
        const int64_t kk = sd < k ? sd : k;
        stats cg = time_wall(gctx, &A, kk, 1, 5), cc = time_wall(cctx, &A, kk, 1, 5);
        printf("host %7lld x %4lld: gpu %8.2f ms, cpu %8.2f ms (n d^2 = %.2e)\n", (long long)sn,
               (long long)sd, cg.med, cc.med, (double)sn * sd * sd);
        fprintf(js, "%s  {\"n\": %lld, \"d\": %lld, \"gpu_ms\": %.3f, \"cpu_ms\": %.3f}", first ? "" : ",\n",
                (long long)sn, (long long)sd, cg.med, cc.med);
        first = 0;
    }
    fprintf(js, "\n ]\n}\n");
    fclose(js);
    fl_ctx_free(gctx);
    fl_ctx_free(cctx);
    cudaFree(dX);
    free(hX);
    return 0;
}
