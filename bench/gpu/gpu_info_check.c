/*
 * gpu_info_check.c — the cost model's peak device memory against the bytes a
 * real GPU KMeans fit takes through the context's device allocator.
 *
 * For a few shapes, precisions and input placements: install a counting
 * device allocator (cudaMalloc underneath, live and peak bytes tracked), run
 * fl_kmeans_fit on "cuda", then ask fl_info_estimate for the same request on
 * this GPU's table entry and require the two peaks to be equal. Also prints
 * the estimated and measured runtime of each fit (not a pass criterion: the
 * calibration report holds the accuracy figures).
 *
 * Usage: gpu_info_check [H100|H200]   (exit status = failures)
 */
#define _POSIX_C_SOURCE 199309L
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flashlib.h"
#include "flashlib_info.h"

typedef struct counter {
    size_t live, peak;
    long calls;
    long foreign; /* frees of pointers these hooks never gave out */
} counter;

/* Sizes are tracked by pointer in a small table (a fit allocates a few
 * blocks: the module's arena and its context's own buffers). */
static void *g_ptrs[64];
static size_t g_sizes[64];

static int count_alloc(void *user, int32_t dev, size_t bytes, void **ptr)
{
    counter *c = user;
    (void)dev;
    if (cudaMalloc(ptr, bytes) != cudaSuccess)
        return 1;
    for (int i = 0; i < 64; i++)
        if (!g_ptrs[i]) {
            g_ptrs[i] = *ptr;
            g_sizes[i] = bytes;
            break;
        }
    c->live += bytes;
    c->calls++;
    if (c->live > c->peak)
        c->peak = c->live;
    return 0;
}

static void count_free(void *user, int32_t dev, void *ptr)
{
    counter *c = user;
    (void)dev;
    for (int i = 0; i < 64; i++)
        if (g_ptrs[i] == ptr) {
            c->live -= g_sizes[i];
            g_ptrs[i] = NULL;
            cudaFree(ptr);
            return;
        }
    c->foreign++; /* not ours (e.g. a block of the context's pool): leave it */
}

/* Switching allocators on a context whose GPU state holds cached buffers
 * (a kNN model's database, kept on the device between searches, from the
 * context's pool): the switch must give them back through the pool, so
 * that nothing the hooks never gave out reaches their free, even when the
 * context is freed with the hooks still set; and the hooks' own
 * allocations must all come back through them. Returns failures. */
static int check_allocator_switch(void)
{
    fl_ctx *ctx;
    if (fl_ctx_create("cuda", &ctx, NULL, 0))
        return 1;
    enum { N = 20000, D = 32, Q = 100, K = 5 };
    float *X = malloc(sizeof(float) * N * D), dist[Q * K];
    int64_t idx[Q * K];
    for (long i = 0; i < (long)N * D; i++)
        X[i] = (float)rand() / (float)RAND_MAX;
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D), qa = fl_array_host(X, FL_DTYPE_F32, Q, D);
    fl_array da = fl_array_host(dist, FL_DTYPE_F32, Q, K), ia = fl_array_host(idx, FL_DTYPE_I64, Q, K);
    fl_model *nn = NULL;
    fl_status st = fl_knn_fit(ctx, &xa, NULL, &nn);
    if (!st)
        st = fl_model_kneighbors(nn, &qa, K, &da, &ia); /* its database now cached on the GPU (pool) */
    counter cnt = {0, 0, 0, 0};
    fl_device_allocator hooks = {count_alloc, count_free, &cnt};
    if (!st)
        st = fl_ctx_set_device_allocator(ctx, &hooks);
    if (!st)
        st = fl_model_kneighbors(nn, &qa, K, &da, &ia); /* allocates through the hooks now */
    char msg[256];
    snprintf(msg, sizeof msg, "%s", st ? fl_ctx_last_error(ctx) : "");
    fl_model_free(nn);
    fl_ctx_free(ctx); /* with the hooks set: what it still holds goes back through them */
    const int ok = !st && cnt.calls > 0 && cnt.live == 0 && cnt.foreign == 0;
    printf("%s allocator switch with cached device buffers: %ld hook allocations, %zu B left, %ld foreign "
           "frees %s\n",
           ok ? "ok  " : "FAIL", cnt.calls, cnt.live, cnt.foreign, msg);
    free(X);
    return !ok;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    const char *tag = argc > 1 ? argv[1] : "H100";
    fl_ctx *ctx;
    char err[512];
    if (fl_ctx_create("cuda", &ctx, err, sizeof err) || fl_ctx_cuda_check(ctx)) {
        printf("gpu_info_check: no usable GPU (%s); skipped\n", ctx ? fl_ctx_last_error(ctx) : err);
        return 0;
    }
    struct {
        long n, d, k;
        const char *prec;
        int on_device;
    } cases[] = {{50000, 64, 256, "tf32", 0},
                 {50000, 64, 256, "tf32", 1},
                 {200000, 32, 64, "fp32", 1},
                 {100000, 128, 1024, "bf16", 1},
                 {30000, 17, 5, "fp16", 0}};
    int failures = 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const long n = cases[c].n, d = cases[c].d, k = cases[c].k;
        float *X = malloc(sizeof(float) * (size_t)(n * d)), *C = malloc(sizeof(float) * (size_t)(k * d));
        srand(7 + (unsigned)c);
        for (long i = 0; i < n * d; i++)
            X[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        void *dX = NULL;
        fl_array xa = fl_array_host(X, FL_DTYPE_F32, n, d);
        if (cases[c].on_device) {
            cudaMalloc(&dX, sizeof(float) * (size_t)(n * d));
            cudaMemcpy(dX, X, sizeof(float) * (size_t)(n * d), cudaMemcpyHostToDevice);
            xa = fl_array_cuda(dX, FL_DTYPE_F32, n, d, 0);
        }
        fl_array ca = fl_array_host(C, FL_DTYPE_F32, k, d);
        char params[256];
        snprintf(params, sizeof params, "n_clusters=%ld precision=%s max_iter=10 tol=0", k, cases[c].prec);
        fl_params *p;
        fl_params_create(ctx, "kmeans", &p);
        fl_params_set_int(ctx, p, "n_clusters", k);
        fl_params_set(ctx, p, "precision", cases[c].prec);
        fl_params_set(ctx, p, "max_iter", "10");
        fl_params_set(ctx, p, "tol", "0");
        counter cnt = {0, 0, 0, 0};
        fl_device_allocator da = {count_alloc, count_free, &cnt};
        fl_ctx_set_device_allocator(ctx, &da);
        double t0 = now_ms();
        fl_status st = fl_kmeans_fit(ctx, &xa, NULL, p, &ca, NULL, NULL, NULL);
        cudaDeviceSynchronize();
        double ms = now_ms() - t0;
        fl_ctx_set_device_allocator(ctx, NULL);
        int64_t shape[2] = {n, d};
        char iparams[320];
        snprintf(iparams, sizeof iparams, "%s input=%s", params, cases[c].on_device ? "device" : "host");
        fl_info_result r;
        char ierr[256];
        int ist = fl_info_estimate("kmeans", shape, 2, iparams, "f32", tag, &r, ierr, sizeof ierr);
        int ok = st == FL_STATUS_OK && ist == 0 && r.peak_memory_bytes == cnt.peak && cnt.live == 0;
        failures += !ok;
        printf("%s %ld x %ld k=%ld %s X on %s: measured peak %zu B (%ld allocations), estimate %llu B; "
               "time %.2f ms (wall, first fit) vs estimate %.2f ms [%s] %s\n",
               ok ? "ok  " : "FAIL", n, d, k, cases[c].prec, cases[c].on_device ? "device" : "host", cnt.peak,
               cnt.calls, ist ? 0ull : (unsigned long long)r.peak_memory_bytes, ms, ist ? 0.0 : r.runtime_ms,
               ist ? ierr : fl_info_tier_name(r.tier), st ? fl_ctx_last_error(ctx) : "");
        fl_params_free(p);
        cudaFree(dX);
        free(X);
        free(C);
    }
    fl_ctx_free(ctx);
    failures += check_allocator_switch();
    printf("gpu_info_check: %d failures\n", failures);
    return failures;
}
