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
 * CUDA graphs: the main rows run with env.km_graph = $FL_KM_GRAPH (default
 * 0: the module's choice; "graph" column = iterations per graph launch).
 * For tf32 and bf16 an A/B follows in the same process (FL_KM_GRAPH_AB=0
 * skips it; JSON: graph_ab per row, keyed by variant): by default kernel
 * variants through env.km_tune (see fl_cuda_module.h): separate (E-step
 * and M-step kernels where the tf32 k <= 64 E-step takes the sums), mstep_obj (the
 * objective in every M-step), c64_bm512 (the k <= 64 E-step's 64-row warp
 * tiles), tie_grid2 (the tie re-scoring on 2 blocks per SM), acc_general
 * (the general private-copy M-step instead of lane-per-column, d <= 32),
 * sm90_unsplit (the 16-bit sm90 E-step folds after both halves), full_mstep
 * (every row summed every iteration), tf32_two_wg (the sm90 tf32 E-step
 * with a producer and two consumer warpgroups instead of four folding
 * ones); with FL_KM_AB=graph: every kernel launched directly
 * (km_graph -1), one iteration per graph launch (1), all iterations after
 * the first in one graph (1000, clamped to max_iter - 1).
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

/* 2 warm-up + reps timed fits of job j; sorted times into ms; 0 = ok. */
static int time_fits(const fli_cuda_api *api, fli_cuda_env *env, fli_kmeans_job *j, int reps, double *ms,
                     const char *tag, const char *pname, const char *err)
{
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    int bad = 0;
    for (int r = -2; r < reps && !bad; r++) {
        CK(cudaEventRecord(e0, 0));
        fl_status st = api->kmeans_fit(env, j);
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        if (st != FL_STATUS_OK) {
            fprintf(stderr, "%s %s: status %d: %s\n", tag, pname, st, err);
            bad = 1;
            break;
        }
        float t;
        CK(cudaEventElapsedTime(&t, e0, e1));
        if (r >= 0)
            ms[r] = t;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (!bad)
        qsort(ms, reps, sizeof(double), cmp_d);
    return bad;
}
static double median(const double *ms, int reps)
{
    return reps % 2 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
}

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
    const char *h2d_env = getenv("FL_H2D_STAGING"); /* as the core reads it */
    env.h2d_staging = !(h2d_env && h2d_env[0] == '0');
    env.host_threads = 8;
    /* FL_KM_GRAPH: env.km_graph of the main rows (default 0, the module's
     * choice); FL_KM_GRAPH_AB=0 skips the graph A/B rows */
    const char *gr_env = getenv("FL_KM_GRAPH");
    const int graph_default = gr_env && *gr_env ? atoi(gr_env) : 0;
    const char *ab_env = getenv("FL_KM_GRAPH_AB");
    const char *ab_kind = getenv("FL_KM_AB");
    const int graph_ab = !(ab_env && ab_env[0] == '0');
    env.km_graph = graph_default;
    /* FL_KM_TUNE: env.km_tune of the main rows (default 0), e.g. to profile
     * a variant's kernels alone (with FL_KM_GRAPH_AB=0) */
    const char *tune_env = getenv("FL_KM_TUNE");
    const int tune_default = tune_env && *tune_env ? atoi(tune_env) : 0;
    env.km_tune = tune_default;
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
    printf("%-5s %-5s %-9s %9s %9s %9s %8s %8s %9s %6s %-6s %s\n", "shape", "prec", "backend", "median_ms",
           "min_ms", "max_ms", "TFLOP/s", "floor_ms", "ms/floor", "iters", "target", "graph");
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
            double *ms = malloc(sizeof(double) * reps);
            env.km_graph = graph_default;
            err[0] = 0;
            if (time_fits(api, &env, &j, reps, ms, shapes[si].tag, pname[pi], err)) {
                free(ms);
                continue;
            }
            const int graph_used = env.km_graph_used;
            if (graph_default >= 0 && graph_used == 0)
                printf("%s %s: no CUDA graph used: %s\n", shapes[si].tag, pname[pi],
                       err[0] ? err : "(no message)");
            /* the share of row assignments the near-tie test re-scored, as
             * the module reports it in the job */
            printf("kmeans_fit stats: n=%lld d=%lld k=%lld precision=%d rescore=%d: %lld of %lld row "
                   "assignments re-scored (%.3f%%)\n",
                   (long long)j.n, (long long)j.d, (long long)j.k, (int)j.precision, env.km_rescore,
                   (long long)j.stat_rescored, (long long)j.stat_rows,
                   j.stat_rows ? 100.0 * (double)j.stat_rescored / (double)j.stat_rows : 0.0);
            double med = median(ms, reps);
            const double inertia0 = j.inertia;
            double flops = 2.0 * n * k * d * (double)j.n_iter;
            double elt = precs[pi] == FLI_PREC_BF16 || precs[pi] == FLI_PREC_FP16 ? 2 : 4;
            double floor_ms = 1e3 * fmax(flops / peak[pi], (double)j.n_iter * (n * d * elt + n * 4.0) / hbm);
            double target = precs[pi] == FLI_PREC_TF32   ? shapes[si].target_tf32
                            : precs[pi] == FLI_PREC_FP32 ? 0
                                                         : shapes[si].target_bf16;
            printf("%-5s %-5s %-9s %9.3f %9.3f %9.3f %8.1f %8.3f %9.2f %6lld %-6s %d\n", shapes[si].tag,
                   pname[pi], j.backend == FL_BACKEND_CUDA_SM90 ? "cuda-sm90" : "cuda", med, ms[0],
                   ms[reps - 1], flops / (med * 1e-3) / 1e12, floor_ms, med / floor_ms, (long long)j.n_iter,
                   target > 0 ? (med <= target ? "met" : "missed") : "-", graph_used);
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
                    "\"inertia\": %.8e, \"graph_iters\": %d",
                    flops / (med * 1e-3) / 1e12, floor_ms, med / floor_ms, target, j.inertia, graph_used);
                first = 0;
            }
            /* CUDA-graph A/B in the same process (tf32, bf16): every kernel
             * launched directly, one iteration per graph launch, all
             * iterations after the first in one graph; same inertia */
            if (graph_ab && (precs[pi] == FLI_PREC_TF32 || precs[pi] == FLI_PREC_BF16)) {
                /* km_graph A/B (FL_KM_AB=graph), or kernel variants through
                 * env.km_tune (default): the M-step with the objective every
                 * iteration, the k <= 64 E-step with 64-row warp tiles, the
                 * tie re-scoring on 2 blocks per SM */
                const int tune_ab = !(ab_kind && strcmp(ab_kind, "graph") == 0);
                const int modes[8] = {-1, 1, 1000, 1000, 1000, 1000, 1000, 1000},
                          tunes[8] = {2048, 1, 256, 512, 1024, 4096, 16384, 32768};
                const char *mname[8] = {"direct",    "graph1",    "graph_all", "graph_all",
                                        "graph_all", "graph_all", "graph_all", "graph_all"};
                const char *tname[8] = {"separate",    "mstep_obj",    "c64_bm512",  "tie_grid2",
                                        "acc_general", "sm90_unsplit", "full_mstep", "tf32_two_wg"};
                printf("  A/B %-4s %-4s: default(%d/launch) %.3f", shapes[si].tag, pname[pi], graph_used,
                       med);
                if (js)
                    fprintf(js, ", \"graph_ab\": {");
                int nab = 0;
                for (int mi = 0; mi < (tune_ab ? 8 : 3); mi++) {
                    if (tune_ab)
                        env.km_tune = tunes[mi];
                    else
                        env.km_graph = modes[mi];
                    err[0] = 0;
                    double *m2 = malloc(sizeof(double) * reps);
                    if (!time_fits(api, &env, &j, reps, m2, shapes[si].tag, pname[pi], err)) {
                        const double md = median(m2, reps);
                        const char *nm = tune_ab ? tname[mi] : mname[mi];
                        printf(" | %s(%d) %.3f [%.3f..%.3f]%s", nm, env.km_graph_used, md, m2[0],
                               m2[reps - 1], j.inertia == inertia0 ? "" : " INERTIA DIFFERS");
                        if (js)
                            fprintf(js,
                                    "%s\"%s\": {\"graph_iters\": %d, \"median_ms\": %.4f, \"min_ms\": %.4f, "
                                    "\"max_ms\": %.4f, \"same_inertia\": %d}",
                                    nab ? ", " : "", nm, env.km_graph_used, md, m2[0], m2[reps - 1],
                                    j.inertia == inertia0);
                        nab++;
                    }
                    free(m2);
                }
                env.km_graph = graph_default;
                env.km_tune = tune_default;
                printf("\n");
                if (js)
                    fprintf(js, "}");
            }
            if (js)
                fprintf(js, "}");
            free(ms);
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
