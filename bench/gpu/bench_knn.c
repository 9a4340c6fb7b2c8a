/*
 * bench_knn.c — timings of the exact kNN search of libflashlib_cuda.so on
 * the shapes, driving the module's knn_search entry directly.
 *
 * Data: uniform random float32 generated on the host and copied once (the
 * 1M x 128 database is 512 MB, ten times the H100's L2); queries and
 * outputs on the device. Each case: 2 warm-up calls, then REPS timed calls
 * between CUDA events (the call synchronises its stream before returning);
 * median, min, max. Floor: the FLOPs 2 n_q n_db d at the scan precision's
 * ceiling (bench/gpu GPU.md: tf32 397, bf16/fp16 728, fp32 51 TFLOP/s) or
 * the bytes of one database pass at 2.99 TB/s, whichever is longer.
 *
 * Usage: bench_knn module.so out.json [reps [filter]]   (GIT_COMMIT from the env)
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

static const fli_cuda_api *g_api;
static fli_cuda_env g_env;
static char g_err[1024];

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static float *dev_random(int64_t n)
{
    float *h = malloc(sizeof(float) * n), *d = NULL;
    for (int64_t i = 0; i < n; i++) {
        g_rng ^= g_rng << 13;
        g_rng ^= g_rng >> 7;
        g_rng ^= g_rng << 17;
        h[i] = (float)((g_rng >> 40) * (1.0 / 16777216.0));
    }
    if (cudaMalloc((void **)&d, sizeof(float) * n) != cudaSuccess)
        d = NULL;
    else
        cudaMemcpy(d, h, sizeof(float) * n, cudaMemcpyHostToDevice);
    free(h);
    return d;
}

typedef struct bcase {
    const char *name;
    int64_t n_q, n_db, d, k;
    fli_precision prec;
    int self;
    int reps;
} bcase;

static const char *prec_name(fli_precision p)
{
    static const char *n[] = {"fp32", "tf32", "bf16", "fp16", "f64"};
    return n[p];
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_knn module.so out.json [reps]\n");
        return 2;
    }
    const int reps_default = argc > 3 ? atoi(argv[3]) : 10;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    fli_cuda_module_get_fn get = (fli_cuda_module_get_fn)dlsym(h, FLI_CUDA_MODULE_SYMBOL);
    g_api = get ? get() : NULL;
    if (!g_api || g_api->abi != FLI_CUDA_ABI)
        return 2;
    memset(&g_env, 0, sizeof g_env);
    const char *h2d_env = getenv("FL_H2D_STAGING"); /* as the core reads it */
    g_env.h2d_staging = !(h2d_env && h2d_env[0] == '0');
    g_env.host_threads = 8;
    g_env.err = g_err;
    g_env.err_len = sizeof g_err;
    if (g_api->ctx_init(&g_env) != FL_STATUS_OK) {
        fprintf(stderr, "ctx_init: %s\n", g_err);
        return 2;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    /* the Hopper scan, as the library enables it on a 9.0 device (core/hw.c);
     * KNN_SM90=0 measures / checks the portable kernels there */
    {
        const char *e = getenv("KNN_SM90");
        g_env.sm90_enabled = prop.major == 9 && prop.minor == 0 && !(e && e[0] == '0');
        const char *t = getenv("KNN_TUNE"); /* fli_cuda_env.knn_tune, for A/B runs */
        g_env.knn_tune = t ? atoi(t) : 0;
        const char *pl = getenv("KNN_POOL"); /* 0: cudaMalloc / cudaFree each call (fli_cuda_env.no_pool) */
        g_env.no_pool = pl && pl[0] == '0';
    }
    int drv = 0;
    cudaDriverGetVersion(&drv);
    const int64_t N = 1000000, D = 128;
    float *db = dev_random(N * D), *q = dev_random(10000 * D);
    if (!db || !q) {
        fprintf(stderr, "device allocation of the data failed\n");
        return 2;
    }
    const bcase cases[] = {
        {"10K x 1M x 128 k=10", 10000, N, D, 10, FLI_PREC_TF32, 0, 0},
        {"10K x 1M x 128 k=10", 10000, N, D, 10, FLI_PREC_BF16, 0, 0},
        {"10K x 1M x 128 k=10", 10000, N, D, 10, FLI_PREC_FP16, 0, 0},
        {"10K x 1M x 128 k=10", 10000, N, D, 10, FLI_PREC_FP32, 0, 0},
        {"100 x 1M x 128 k=10 (latency)", 100, N, D, 10, FLI_PREC_TF32, 0, 0},
        {"100 x 1M x 128 k=10 (latency)", 100, N, D, 10, FLI_PREC_BF16, 0, 0},
        {"10K x 1M x 128 k=100", 10000, N, D, 100, FLI_PREC_TF32, 0, 0},
        {"10K x 1M x 128 k=100", 10000, N, D, 100, FLI_PREC_BF16, 0, 0},
        {"1K x 1M x 128 k=1024 (general path)", 1000, N, D, 1024, FLI_PREC_TF32, 0, 5},
        {"self-kNN graph 1M x 128 k=16", N, N, D, 16, FLI_PREC_TF32, 1, 5},
        {"self-kNN graph 1M x 128 k=16", N, N, D, 16, FLI_PREC_BF16, 1, 5},
    };
    const int nc = (int)(sizeof cases / sizeof cases[0]);
    FILE *f = fopen(argv[2], "w");
    if (!f)
        return 2;
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    const char *commit = getenv("GIT_COMMIT");
    fprintf(f, "{\n  \"benchmark\": \"knn_search (exact, CUDA module)\",\n  \"device\": \"%s\",\n",
            prop.name);
    fprintf(f, "  \"driver\": %d,\n  \"commit\": \"%s\",\n  \"date\": \"%s\",\n", drv,
            commit ? commit : "unknown", date);
    fprintf(f, "  \"data\": \"uniform [0,1) float32 on the device; queries and outputs on the device\",\n");
    fprintf(f, "  \"ceilings_tflops\": {\"tf32\": 397, \"bf16\": 728, \"fp16\": 728, \"fp32\": 51},\n  "
               "\"cases\": [\n");
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    int first = 1;
    for (int c = 0; c < nc; c++) {
        const bcase *b = &cases[c];
        if (argc > 4) { /* only the cases whose "name precision" contains argv[4] */
            char full[160];
            snprintf(full, sizeof full, "%s %s", b->name, prec_name(b->prec));
            if (!strstr(full, argv[4]))
                continue;
        }
        const int reps = b->reps ? (b->reps < reps_default ? b->reps : reps_default) : reps_default;
        float *dist = NULL;
        int64_t *idx = NULL;
        if (cudaMalloc((void **)&dist, sizeof(float) * b->n_q * b->k) != cudaSuccess ||
            cudaMalloc((void **)&idx, sizeof(int64_t) * b->n_q * b->k) != cudaSuccess) {
            fprintf(stderr, "%s: output allocation failed\n", b->name);
            continue;
        }
        fli_knn_job j;
        memset(&j, 0, sizeof j);
        j.db = db;
        j.db_dev = 0;
        j.n_db = b->n_db;
        j.d = b->d;
        j.db_ld = b->d;
        j.q = b->self ? db : q;
        j.q_dev = 0;
        j.n_q = b->n_q;
        j.q_ld = b->d;
        j.dtype = FL_DTYPE_F32;
        j.k = b->k;
        j.metric = FLI_KNN_SQEUCLIDEAN;
        j.precision = b->prec;
        j.backend = FL_BACKEND_CUDA;
        j.self_exclude = b->self;
        j.dist = dist;
        j.dist_ld = b->k;
        j.idx = idx;
        j.idx_ld = b->k;
        j.out_dev = 0;
        float *ms = malloc(sizeof(float) * reps);
        int ok = 1;
        for (int w = 0; w < 2 && ok; w++)
            ok = g_api->knn_search(&g_env, &j) == FL_STATUS_OK;
        for (int r = 0; r < reps && ok; r++) {
            cudaEventRecord(e0, 0);
            ok = g_api->knn_search(&g_env, &j) == FL_STATUS_OK;
            cudaEventRecord(e1, 0);
            cudaEventSynchronize(e1);
            cudaEventElapsedTime(&ms[r], e0, e1);
        }
        if (!ok) {
            fprintf(stderr, "%s %s: %s\n", b->name, prec_name(b->prec), g_err);
            printf("%-40s %-5s FAILED: %s\n", b->name, prec_name(b->prec), g_err);
        } else {
            qsort(ms, (size_t)reps, sizeof(float), cmp_f);
            const double med = reps % 2 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
            const double flop = 2.0 * b->n_q * b->n_db * b->d;
            const double peak =
                b->prec == FLI_PREC_TF32 ? 397e12 : (b->prec == FLI_PREC_FP32 ? 51e12 : 728e12);
            const double fl_ms = flop / peak * 1e3, mem_ms = (double)b->n_db * b->d * 4 / 2.99e12 * 1e3;
            const double floor_ms = fl_ms > mem_ms ? fl_ms : mem_ms;
            printf("%-40s %-5s median %9.3f ms  min %9.3f  max %9.3f  floor %8.3f  x%.2f  %.0f TFLOP/s  "
                   "reranked=%lld\n",
                   b->name, prec_name(b->prec), med, ms[0], ms[reps - 1], floor_ms, med / floor_ms,
                   flop / (med * 1e-3) / 1e12, (long long)j.stat_reranked);
            fflush(stdout);
            fprintf(f,
                    "%s    {\"name\": \"%s\", \"n_q\": %lld, \"n_db\": %lld, \"d\": %lld, \"k\": %lld, "
                    "\"metric\": \"sqeuclidean\", \"precision\": \"%s\", \"self_exclude\": %d, \"reps\": %d, "
                    "\"median_ms\": %.4f, \"min_ms\": %.4f, \"max_ms\": %.4f, \"flop\": %.4g, \"floor_ms\": "
                    "%.4f, "
                    "\"ratio_to_floor\": %.3f, \"tflops\": %.1f, \"reranked\": %lld}",
                    first ? "" : ",\n", b->name, (long long)b->n_q, (long long)b->n_db, (long long)b->d,
                    (long long)b->k, prec_name(b->prec), b->self, reps, med, ms[0], ms[reps - 1], flop,
                    floor_ms, med / floor_ms, flop / (med * 1e-3) / 1e12, (long long)j.stat_reranked);
            first = 0;
        }
        free(ms);
        cudaFree(dist);
        cudaFree(idx);
    }
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
    g_api->ctx_free(&g_env);
    return 0;
}
