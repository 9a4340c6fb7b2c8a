/*
 * bench_kmeans.c — times the CUDA module's KMeans fit (Lloyd only).
 *
 * For each shape and precision: fresh random data on the device, init from
 * a given array (k rows of X) so only Lloyd is timed, max_iter = 20,
 * tol = 0, 2 warm-up fits then >= 10 timed fits with CUDA events around
 * each call (the module's stream is a blocking stream, so events on the
 * legacy stream bracket it); median, min and max. A caching allocator hook
 * keeps cudaMalloc/cudaFree out of the timed region, as a framework's pool
 * would. The time includes what a fit always does besides Lloyd: the 16-bit
 * copy of X (bf16/fp16), the final assignment and the output copies.
 *
 * Reports ms, achieved TFLOP/s counting 2*n*k*d per Lloyd iteration, and
 * the floor: max(flops / tensor peak, bytes of one pass over X per
 * iteration / HBM bandwidth) with H100 ceilings (GPU.md): fp32 51, tf32 397,
 * bf16/fp16 750 TFLOP/s, 3.0 TB/s. Writes JSON to $OUT/bench_kmeans.json
 * (or ./bench_kmeans.json).
 *
 * Usage: bench_kmeans [module.so] [reps] [shapes: "1M,100K,2M"] [precisions: "fp32,tf32,bf16,fp16"]
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
#include <unistd.h>

#include "backends/cuda/fl_cuda_module.h"

typedef struct pool {
    void *p;
    size_t bytes;
    int busy;
} pool;
static int pool_alloc(void *u, int32_t dev, size_t bytes, void **out)
{
    pool *P = u;
    (void)dev;
    if (!P->busy && P->p && P->bytes >= bytes) {
        P->busy = 1;
        *out = P->p;
        return 0;
    }
    if (P->busy)
        return cudaMalloc(out, bytes) != cudaSuccess;
    if (P->p)
        cudaFree(P->p);
    P->p = NULL;
    if (cudaMalloc(&P->p, bytes) != cudaSuccess)
        return 1;
    P->bytes = bytes;
    P->busy = 1;
    *out = P->p;
    return 0;
}
static void pool_free(void *u, int32_t dev, void *p)
{
    pool *P = u;
    (void)dev;
    if (p == P->p)
        P->busy = 0;
    else
        cudaFree(p);
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float frand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (1.0 / 16777216.0)) * 2.f - 1.f;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define CK(call)                                                                                             \
    do {                                                                                                     \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess) {                                                                             \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));           \
            exit(2);                                                                                         \
        }                                                                                                    \
    } while (0)

int main(int argc, char **argv)
{
    char path[4096];
    if (argc > 1 && argv[1][0]) {
        snprintf(path, sizeof path, "%s", argv[1]);
    } else {
        ssize_t len = readlink("/proc/self/exe", path, sizeof path - 64);
        path[len > 0 ? len : 0] = 0;
        char *s = strrchr(path, '/');
        if (s)
            *s = 0;
        strcat(path, "/../lib/libflashlib_cuda.so");
    }
    int reps = argc > 2 ? atoi(argv[2]) : 10;
    if (reps < 10)
        reps = 10;
    const char *filter = argc > 3 && argv[3][0] ? argv[3] : NULL;
    const char *pfilter = argc > 4 && argv[4][0] ? argv[4] : NULL; /* e.g. "bf16,tf32" */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    const fli_cuda_api *api = ((fli_cuda_module_get_fn)dlsym(h, FLI_CUDA_MODULE_SYMBOL))();
    char err[1024] = "";
    pool P = {0};
    fl_device_allocator hooks = {pool_alloc, pool_free, &P};
    fli_cuda_env env;
    memset(&env, 0, sizeof env);
    env.dalloc = &hooks;
    const char *rs_env = getenv("FL_KM_RESCORE"); /* the bench reads it; the module never does */
    env.km_rescore = !(rs_env && rs_env[0] == '0');
    env.err = err;
    env.err_len = sizeof err;
    if (api->ctx_init(&env) != FL_STATUS_OK) {
        fprintf(stderr, "ctx_init: %s\n", err);
        return 2;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    /* as the core does: Hopper paths unless FL_DISABLE_SM90 is set */
    const char *dis = getenv("FL_DISABLE_SM90");
    env.sm90_enabled = prop.major == 9 && prop.minor == 0 && !(dis && *dis && strcmp(dis, "0"));
    int drv = 0, rtv = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rtv);
    const char *commit = getenv("GIT_COMMIT");
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));

    struct {
        const char *tag;
        int64_t n, d, k;
        double target_tf32, target_bf16;
    } shapes[] = {
        {"1M", 1000000, 128, 1024, 18.0, 10.0},
        {"100K", 100000, 64, 256, 2.0, 2.0},
        {"2M", 2000000, 32, 64, 5.0, 5.0},
    };
    const fli_precision precs[] = {FLI_PREC_FP32, FLI_PREC_TF32, FLI_PREC_BF16, FLI_PREC_FP16};
    const char *pname[] = {"fp32", "tf32", "bf16", "fp16"};
    const double peak[] = {51e12, 397e12, 750e12, 750e12};
    const double hbm = 3.0e12;
    const int64_t iters = 20;

    char outp[4096];
    const char *od = getenv("OUT");
    snprintf(outp, sizeof outp, "%s/bench_kmeans.json", od && *od ? od : ".");
    FILE *js = fopen(outp, "w");
    if (js) {
        fprintf(js, "{\n  \"bench\": \"kmeans_fit_lloyd\",\n  \"device\": \"%s\",\n  \"sm_count\": %d,\n",
                prop.name, prop.multiProcessorCount);
        fprintf(js, "  \"driver_version\": %d,\n  \"runtime_version\": %d,\n  \"commit\": \"%s\",\n", drv,
                rtv, commit ? commit : "unknown");
        const char *rs = getenv("FL_KM_RESCORE");
        fprintf(js, "  \"near_tie_rescore\": %d,\n", !(rs && rs[0] == '0'));
        fprintf(js,
                "  \"date\": \"%s\",\n  \"method\": \"CUDA events around module kmeans_fit, X on device, "
                "init=array, max_iter=20, tol=0, 2 warm-up + %d timed, median\",\n  \"results\": [\n",
                date, reps);
    }
    int first = 1;
    printf("%-5s %-5s %-9s %9s %9s %9s %8s %8s %9s %6s %s\n", "shape", "prec", "backend", "median_ms",
           "min_ms", "max_ms", "TFLOP/s", "floor_ms", "ms/floor", "iters", "target");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        if (filter && !strstr(filter, shapes[si].tag))
            continue;
        const int64_t n = shapes[si].n, d = shapes[si].d, k = shapes[si].k;
        float *hx = malloc(sizeof(float) * n * d), *init = malloc(sizeof(float) * k * d);
        for (int64_t i = 0; i < n * d; i++)
            hx[i] = frand();
        for (int64_t c = 0; c < k; c++)
            memcpy(init + c * d, hx + ((c * 977) % n) * d, sizeof(float) * d);
        float *dx, *dc;
        int32_t *dl;
        CK(cudaMalloc((void **)&dx, sizeof(float) * n * d));
        CK(cudaMalloc((void **)&dc, sizeof(float) * k * d));
        CK(cudaMalloc((void **)&dl, sizeof(int32_t) * n));
        CK(cudaMemcpy(dx, hx, sizeof(float) * n * d, cudaMemcpyHostToDevice));
        for (int pi = 0; pi < 4; pi++) {
            if (pfilter && !strstr(pfilter, pname[pi]))
                continue;
            fli_kmeans_job j;
            memset(&j, 0, sizeof j);
            j.X = dx;
            j.dtype = FL_DTYPE_F32;
            j.x_dev = 0;
            j.n = n;
            j.d = d;
            j.ld = d;
            j.k = k;
            j.init = FLI_KM_INIT_ARRAY;
            j.init_centers = init;
            j.n_init = 1;
            j.max_iter = iters;
            j.tol = 0;
            j.metric = FLI_METRIC_EUCLIDEAN;
            j.precision = precs[pi];
            /* routing's rule (src/route/route_kmeans.c) */
            j.backend = env.sm90_enabled && k >= 1024 && d >= 64 && d % 16 == 0 && precs[pi] != FLI_PREC_FP32
                            ? FL_BACKEND_CUDA_SM90
                            : FL_BACKEND_CUDA;
            j.n_local_trials = 1;
            j.centers = dc;
            j.centers_dev = 0;
            j.labels = dl;
            j.labels_dev = 0;
            cudaEvent_t e0, e1;
            CK(cudaEventCreate(&e0));
            CK(cudaEventCreate(&e1));
            double *ms = malloc(sizeof(double) * reps);
            int bad = 0;
            for (int r = -2; r < reps && !bad; r++) {
                CK(cudaEventRecord(e0, 0));
                fl_status st = api->kmeans_fit(&env, &j);
                CK(cudaEventRecord(e1, 0));
                CK(cudaEventSynchronize(e1));
                if (st != FL_STATUS_OK) {
                    fprintf(stderr, "%s %s: status %d: %s\n", shapes[si].tag, pname[pi], st, err);
                    bad = 1;
                    break;
                }
                float t;
                CK(cudaEventElapsedTime(&t, e0, e1));
                if (r >= 0)
                    ms[r] = t;
            }
            if (bad) {
                free(ms);
                continue;
            }
            /* the share of row assignments the near-tie test re-scored, as
             * the module reports it in the job */
            printf("kmeans_fit stats: n=%lld d=%lld k=%lld precision=%d rescore=%d: %lld of %lld row "
                   "assignments re-scored (%.3f%%)\n",
                   (long long)j.n, (long long)j.d, (long long)j.k, (int)j.precision, env.km_rescore,
                   (long long)j.stat_rescored, (long long)j.stat_rows,
                   j.stat_rows ? 100.0 * (double)j.stat_rescored / (double)j.stat_rows : 0.0);
            qsort(ms, reps, sizeof(double), cmp_d);
            double med = reps % 2 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
            double flops = 2.0 * n * k * d * (double)j.n_iter;
            double elt = precs[pi] == FLI_PREC_BF16 || precs[pi] == FLI_PREC_FP16 ? 2 : 4;
            double floor_ms = 1e3 * fmax(flops / peak[pi], (double)j.n_iter * (n * d * elt + n * 4.0) / hbm);
            double target = precs[pi] == FLI_PREC_TF32   ? shapes[si].target_tf32
                            : precs[pi] == FLI_PREC_FP32 ? 0
                                                         : shapes[si].target_bf16;
            printf("%-5s %-5s %-9s %9.3f %9.3f %9.3f %8.1f %8.3f %9.2f %6lld %s\n", shapes[si].tag, pname[pi],
                   j.backend == FL_BACKEND_CUDA_SM90 ? "cuda-sm90" : "cuda", med, ms[0], ms[reps - 1],
                   flops / (med * 1e-3) / 1e12, floor_ms, med / floor_ms, (long long)j.n_iter,
                   target > 0 ? (med <= target ? "met" : "missed") : "-");
            if (js) {
                fprintf(js,
                        "%s    {\"shape\": \"%lldx%lld\", \"k\": %lld, \"precision\": \"%s\", \"backend\": "
                        "\"%s\", "
                        "\"n_iter\": %lld, ",
                        first ? "" : ",\n", (long long)n, (long long)d, (long long)k, pname[pi],
                        j.backend == FL_BACKEND_CUDA_SM90 ? "cuda-sm90" : "cuda", (long long)j.n_iter);
                fprintf(js, "\"median_ms\": %.4f, \"min_ms\": %.4f, \"max_ms\": %.4f, \"reps\": %d, ", med,
                        ms[0], ms[reps - 1], reps);
                fprintf(
                    js,
                    "\"tflops\": %.2f, \"floor_ms\": %.4f, \"ratio_to_floor\": %.3f, \"target_ms\": %.1f, "
                    "\"inertia\": %.8e}",
                    flops / (med * 1e-3) / 1e12, floor_ms, med / floor_ms, target, j.inertia);
                first = 0;
            }
            free(ms);
            cudaEventDestroy(e0);
            cudaEventDestroy(e1);
        }
        cudaFree(dx);
        cudaFree(dc);
        cudaFree(dl);
        free(hx);
        free(init);
    }
    if (js) {
        fprintf(js, "\n  ]\n}\n");
        fclose(js);
    }
    api->ctx_free(&env);
    if (P.p)
        cudaFree(P.p);
    return 0;
}
