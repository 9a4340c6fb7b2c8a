/*
 * bench_linalg.c — the GEMM precision ladder on the GPU through the public
 * API: fl_gemm on device arrays (row-major, f32 and f64), every variant, at
 * a square and two tall-skinny shapes, timed and checked for accuracy.
 *
 * Inputs: uniform [-1, 1) float64 with full 53-bit mantissas from a fixed
 * xorshift stream, made on the host and copied once per shape (A and B
 * together are 0.5 to 12 GB, far beyond the 50 MB L2); the float32 data are
 * their roundings. (Until c88555b the float64 inputs were the float32 values
 * widened, which Ozaki II with >= 24 bits per operand represents exactly.)
 *
 * References: fl_gemm "fp64" (cuBLAS DGEMM) on each dtype's own inputs, the
 * float32 values widened for the f32 runs and the float64 inputs for the
 * f64 runs, each spot-checked against a host long-double product of three
 * rows. Every variant's relative error is ||C - C_ref||_F / ||C_ref||_F with
 * C poisoned (NaN bytes) before the checked call.
 *
 * Timing: per case one checked call, 2 warm-up calls, then REPS calls each
 * between two CUDA events on the legacy stream (which orders itself after
 * the context's blocking stream); median, min, max; TFLOP/s of the useful
 * 2 M N K at the median.
 *
 * "ozaki_int8:N" is Ozaki II with N moduli (16 by default).
 *
 * Usage: bench_linalg out.json [reps [shape-filter [variant-filter]]]
 *   (GIT_COMMIT from the environment; FL_CUDA_MODULE names the module)
 */
#define _GNU_SOURCE
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flashlib.h"

static const char *const variants[] = {"fp64", "fp32",   "tf32",   "3xtf32",       "bf16",   "3xbf16",
                                       "fp16", "3xfp16", "fp16x9", "fp16x3_kahan", "tf32x6", "ozaki_int8"};
#define NVAR ((int)(sizeof variants / sizeof variants[0]))
/* the variants also run on float64 data (the rest convert to float32 first,
 * so their float64 runs would repeat the float32 ones' arithmetic) */
static const char *const variants64[] = {"fp64",   "tf32x6",       "ozaki_int8",   "3xtf32",
                                         "fp16x9", "ozaki_int8:8", "ozaki_int8:12"};
#define NVAR64 ((int)(sizeof variants64 / sizeof variants64[0]))

typedef struct shape {
    const char *name;
    int64_t M, N, K;
} shape;

static const shape shapes[] = {
    {"square_8192", 8192, 8192, 8192},
    {"tall_1048576x512x32", 1048576, 32, 512},
    {"deep_512x512x1048576", 512, 512, 1048576},
};
#define NSHAPE ((int)(sizeof shapes / sizeof shapes[0]))

static int cmp_d(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static void fill_uniform(double *h, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        g_rng ^= g_rng << 13;
        g_rng ^= g_rng >> 7;
        g_rng ^= g_rng << 17;
        h[i] = (double)(g_rng >> 11) * 0x1p-52 - 1.0; /* 53 random bits in [-1, 1) */
    }
}

#define CK(call)                                                                                             \
    do {                                                                                                     \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess) {                                                                             \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));           \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

static void *dmalloc(size_t bytes)
{
    void *p = NULL;
    CK(cudaMalloc(&p, bytes));
    return p;
}

/* ||C - R||_F / ||R||_F with C (f32 or f64) and R (f64) on the device,
 * through host copies. */
static double rel_err(const void *dC, fl_dtype dt, const double *dR, int64_t n)
{
    double *r = malloc(sizeof(double) * (size_t)n);
    void *c = malloc((dt == FL_DTYPE_F64 ? 8 : 4) * (size_t)n);
    if (!r || !c) {
        fprintf(stderr, "host allocation failed\n");
        exit(1);
    }
    CK(cudaMemcpy(r, dR, sizeof(double) * (size_t)n, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(c, dC, (dt == FL_DTYPE_F64 ? 8 : 4) * (size_t)n, cudaMemcpyDeviceToHost));
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        const double v = dt == FL_DTYPE_F64 ? ((double *)c)[i] : (double)((float *)c)[i];
        num += (v - r[i]) * (v - r[i]);
        den += r[i] * r[i];
    }
    free(r);
    free(c);
    return sqrt(num) / sqrt(den);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
    fputc('"', f);
}

/* fl_split_basis on device arrays (padded rows) against the same call on
 * host arrays through a CPU context: the parts must agree bit for bit, and
 * a NaN in X must be rejected with the device outputs left as they were.
 * Returns the failures (printed). */
static int check_split_device(fl_ctx *g)
{
    const int64_t m = 1000, n = 300, ldx = 320, ldo = 310;
    fl_ctx *c = NULL;
    if (fl_ctx_create("cpu", &c, NULL, 0))
        return 1;
    float *x = malloc(sizeof(float) * (size_t)(m * ldx)), *hp = malloc(sizeof(float) * (size_t)(3 * m * ldo));
    float *back = malloc(sizeof(float) * (size_t)(3 * m * ldo));
    double *u = malloc(sizeof(double) * (size_t)(m * ldx));
    fill_uniform(u, m * ldx);
    for (int64_t i = 0; i < m * ldx; i++) /* magnitudes 1e-6 .. 1e3: fp16's subnormals and ranges too */
        x[i] = (float)(u[i] * pow(10.0, (double)(i % 10) - 6));
    float *dx = dmalloc(sizeof(float) * (size_t)(m * ldx)),
          *dp = dmalloc(sizeof(float) * (size_t)(3 * m * ldo));
    CK(cudaMemcpy(dx, x, sizeof(float) * (size_t)(m * ldx), cudaMemcpyHostToDevice));
    const char *fmts[] = {"tf32", "bf16", "fp16"};
    int fails = 0;
    for (int f = 0; f < 3; f++) {
        CK(cudaMemset(dp, 0x7f, sizeof(float) * (size_t)(3 * m * ldo))); /* padding poison, checked below */
        memset(hp, 0x7f, sizeof(float) * (size_t)(3 * m * ldo));
        fl_array X = fl_array_host(x, FL_DTYPE_F32, m, n), Xd = fl_array_cuda(dx, FL_DTYPE_F32, m, n, 0);
        X.ld = Xd.ld = ldx;
        fl_array o[3], od[3];
        for (int p = 0; p < 3; p++) {
            o[p] = fl_array_host(hp + p * m * ldo, FL_DTYPE_F32, m, n);
            od[p] = fl_array_cuda(dp + p * m * ldo, FL_DTYPE_F32, m, n, 0);
            o[p].ld = od[p].ld = ldo;
        }
        if (fl_split_basis(c, &X, fmts[f], 3, o) || fl_split_basis(g, &Xd, fmts[f], 3, od)) {
            fprintf(stderr, "split_basis %s: %s / %s\n", fmts[f], fl_ctx_last_error(c), fl_ctx_last_error(g));
            fails++;
            continue;
        }
        CK(cudaMemcpy(back, dp, sizeof(float) * (size_t)(3 * m * ldo), cudaMemcpyDeviceToHost));
        const int diff = memcmp(back, hp, sizeof(float) * (size_t)(3 * m * ldo)) != 0;
        fails += diff;
        printf("split_basis %s on device arrays: %s\n", fmts[f],
               diff ? "DIFFERS from the host split" : "equal bit for bit");
    }
    /* NaN: rejected, outputs untouched */
    CK(cudaMemcpy(back, dp, sizeof(float) * (size_t)(m * ldo), cudaMemcpyDeviceToHost));
    const float nan = NAN;
    CK(cudaMemcpy(dx + 17 * ldx + 5, &nan, sizeof nan, cudaMemcpyHostToDevice));
    fl_array Xd = fl_array_cuda(dx, FL_DTYPE_F32, m, n, 0), od = fl_array_cuda(dp, FL_DTYPE_F32, m, n, 0);
    Xd.ld = ldx;
    od.ld = ldo;
    const fl_status st = fl_split_basis(g, &Xd, "bf16", 1, &od);
    CK(cudaMemcpy(hp, dp, sizeof(float) * (size_t)(m * ldo), cudaMemcpyDeviceToHost));
    const int bad = st != FL_STATUS_INVALID_ARG || memcmp(hp, back, sizeof(float) * (size_t)(m * ldo)) != 0;
    fails += bad;
    printf("split_basis NaN on device: %s (%s)\n",
           bad ? "NOT rejected cleanly" : "rejected, outputs untouched", fl_ctx_last_error(g));
    cudaFree(dx);
    cudaFree(dp);
    free(x), free(hp), free(back), free(u);
    fl_ctx_free(c);
    return fails;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_linalg out.json [reps [shape-filter [variant-filter]]]\n");
        return 2;
    }
    const int reps = argc > 2 && atoi(argv[2]) > 0 ? atoi(argv[2]) : 10;
    const char *sfilter = argc > 3 ? argv[3] : NULL, *vfilter = argc > 4 ? argv[4] : NULL;
    char err[512] = "";
    fl_ctx *ctx = NULL;
    if (fl_ctx_create("cuda", &ctx, err, sizeof err)) {
        fprintf(stderr, "fl_ctx_create(cuda): %s\n", err);
        return 1;
    }
    const int split_fails = check_split_device(ctx);
    fflush(stdout); /* the ladder can outlast a caller's time limit */
    if (split_fails) {
        fprintf(stderr, "split_basis on device arrays: FAILED\n");
        return 1;
    }
    struct cudaDeviceProp prop;
    int drv = 0, rt = 0;
    CK(cudaGetDeviceProperties(&prop, 0));
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    const char *commit = getenv("GIT_COMMIT");
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(f,
            "{\n  \"benchmark\": \"gemm_ladder\",\n  \"api\": \"fl_gemm on device arrays (row-major)\",\n");
    fprintf(f, "  \"device\": ");
    json_str(f, prop.name);
    fprintf(f, ",\n  \"sm_count\": %d,\n  \"l2_bytes\": %d,\n  \"driver\": %d,\n  \"runtime\": %d,\n",
            prop.multiProcessorCount, prop.l2CacheSize, drv, rt);
    fprintf(f, "  \"commit\": ");
    json_str(f, commit ? commit : "unknown");
    fprintf(f,
            ",\n  \"date\": \"%s\",\n  \"reps\": %d,\n  \"inputs\": \"uniform [-1, 1) float64 with 53-bit "
            "mantissas; float32 data = their roundings\",\n",
            date, reps);
    fprintf(
        f,
        "  \"error\": \"||C - C_ref||_F / ||C_ref||_F, C_ref = fp64 on the run's own inputs (float32 values "
        "widened for f32 data, the float64 inputs for f64 data)\",\n");
    fprintf(f, "  \"cases\": [");
    int first_case = 1;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int si = 0; si < NSHAPE; si++) {
        const shape *sh = &shapes[si];
        if (sfilter && !strstr(sh->name, sfilter))
            continue;
        const int64_t M = sh->M, N = sh->N, K = sh->K;
        fprintf(stderr, "== %s: M=%lld N=%lld K=%lld\n", sh->name, (long long)M, (long long)N, (long long)K);
        /* float64 inputs with full 53-bit mantissas; the float32 data are
         * their roundings. Each dtype is measured against the fp64 product
         * of its own inputs. */
        double *hA = malloc(sizeof(double) * (size_t)(M * K)), *hB = malloc(sizeof(double) * (size_t)(K * N));
        float *hf = malloc(sizeof(float) * (size_t)(M * K > K * N ? M * K : K * N));
        double *hw = malloc(sizeof(double) * (size_t)(M * K > K * N ? M * K : K * N));
        if (!hA || !hB || !hf || !hw) {
            fprintf(stderr, "host allocation failed\n");
            return 1;
        }
        fill_uniform(hA, M * K);
        fill_uniform(hB, K * N);
        float *A32 = dmalloc(sizeof(float) * (size_t)(M * K)),
              *B32 = dmalloc(sizeof(float) * (size_t)(K * N));
        double *A64 = dmalloc(sizeof(double) * (size_t)(M * K)),
               *B64 = dmalloc(sizeof(double) * (size_t)(K * N));
        double *Cref32 = dmalloc(sizeof(double) * (size_t)(M * N)),
               *Cref64 = dmalloc(sizeof(double) * (size_t)(M * N));
        void *C = dmalloc(sizeof(double) * (size_t)(M * N));
        fl_array a64 = fl_array_cuda(A64, FL_DTYPE_F64, M, K, 0),
                 b64 = fl_array_cuda(B64, FL_DTYPE_F64, K, N, 0);
        double spot[2] = {0, 0};
        for (int ref = 0; ref < 2; ref++) {
            /* ref 0: the float32 values widened (A64/B64 hold them for a
             * moment); ref 1: the float64 inputs themselves */
            const double *src[2] = {hA, hB};
            const int64_t len[2] = {M * K, K * N};
            double *dst[2] = {A64, B64};
            float *dst32[2] = {A32, B32};
            for (int o = 0; o < 2; o++) {
                for (int64_t i = 0; i < len[o]; i++) {
                    hf[i] = (float)src[o][i];
                    hw[i] = ref ? src[o][i] : (double)hf[i];
                }
                if (!ref)
                    CK(cudaMemcpy(dst32[o], hf, sizeof(float) * (size_t)len[o], cudaMemcpyHostToDevice));
                CK(cudaMemcpy(dst[o], hw, sizeof(double) * (size_t)len[o], cudaMemcpyHostToDevice));
            }
            double *Cr = ref ? Cref64 : Cref32;
            fl_array cref = fl_array_cuda(Cr, FL_DTYPE_F64, M, N, 0);
            fl_status st = fl_gemm(ctx, "fp64", 0, 0, 0, 0, 1.0, &a64, &b64, 0.0, &cref, NULL);
            if (st) {
                fprintf(stderr, "reference fl_gemm: %s\n", fl_ctx_last_error(ctx));
                return 1;
            }
            CK(cudaDeviceSynchronize());
            /* the spot check: 3 rows against a host long-double product */
            const int64_t rows[3] = {0, M / 2, M - 1};
            double *crow = malloc(sizeof(double) * (size_t)N);
            for (int r = 0; r < 3; r++) {
                CK(cudaMemcpy(crow, Cr + rows[r] * N, sizeof(double) * (size_t)N, cudaMemcpyDeviceToHost));
                double num = 0, den = 0;
                for (int64_t j = 0; j < N; j++) {
                    long double sum = 0;
                    for (int64_t l = 0; l < K; l++) {
                        const double x = hA[rows[r] * K + l], y = hB[l * N + j];
                        sum += ref ? (long double)x * (long double)y
                                   : (long double)(float)x * (long double)(float)y;
                    }
                    num += ((double)sum - crow[j]) * ((double)sum - crow[j]);
                    den += (double)sum * (double)sum;
                }
                const double e = sqrt(num / den);
                spot[ref] = e > spot[ref] ? e : spot[ref];
            }
            free(crow);
            fprintf(stderr, "   fp64 reference (%s inputs) vs host long double (3 rows): %.3e\n",
                    ref ? "f64" : "f32", spot[ref]);
        }
        free(hA);
        free(hB);
        free(hf);
        free(hw);
        fprintf(
            f,
            "%s\n    {\"shape\": \"%s\", \"M\": %lld, \"N\": %lld, \"K\": %lld, \"ref_spot_check\": %.6e, "
            "\"ref32_spot_check\": %.6e, \"flop\": %.6e, \"results\": [",
            first_case ? "" : ",", sh->name, (long long)M, (long long)N, (long long)K, spot[1], spot[0],
            2.0 * M * N * K);
        first_case = 0;
        int first_res = 1;
        for (int pass = 0; pass < 2; pass++) {
            const fl_dtype dt = pass ? FL_DTYPE_F64 : FL_DTYPE_F32;
            const int nv = pass ? NVAR64 : NVAR;
            for (int vi = 0; vi < nv; vi++) {
                const char *vs = pass ? variants64[vi] : variants[vi];
                if (vfilter && !strstr(vs, vfilter))
                    continue;
                char v[32];
                snprintf(v, sizeof v, "%s", vs);
                char *colon = strchr(v, ':');
                const int moduli = colon ? atoi(colon + 1) : 0;
                if (colon)
                    *colon = 0;
                fl_array a = pass ? a64 : fl_array_cuda(A32, FL_DTYPE_F32, M, K, 0);
                fl_array b = pass ? b64 : fl_array_cuda(B32, FL_DTYPE_F32, K, N, 0);
                fl_array c = fl_array_cuda(C, dt, M, N, 0);
                CK(cudaMemset(C, 0xff, (pass ? 8 : 4) * (size_t)(M * N))); /* NaN */
                fl_linalg_report rep;
                memset(&rep, 0, sizeof rep);
                fl_status st = fl_gemm(ctx, v, 0, moduli, 0, 0, 1.0, &a, &b, 0.0, &c, &rep);
                cudaError_t ce = cudaDeviceSynchronize();
                fprintf(f, "%s\n      {\"variant\": \"%s\", \"dtype\": \"%s\", \"moduli\": %d",
                        first_res ? "" : ",", vs, pass ? "f64" : "f32", moduli);
                first_res = 0;
                if (st || ce != cudaSuccess) {
                    const char *msg = st ? fl_ctx_last_error(ctx) : cudaGetErrorString(ce);
                    fprintf(stderr, "   %-13s %s: FAILED: %s\n", vs, pass ? "f64" : "f32", msg);
                    fprintf(f, ", \"status\": %d, \"message\": ", (int)st);
                    json_str(f, msg);
                    fputc('}', f);
                    if (ce != cudaSuccess)
                        return 1;
                    continue;
                }
                const double re = rel_err(C, dt, pass ? Cref64 : Cref32, M * N);
                double *ms = malloc(sizeof(double) * (size_t)reps);
                for (int w = 0; w < 2; w++)
                    fl_gemm(ctx, v, 0, moduli, 0, 0, 1.0, &a, &b, 0.0, &c, NULL);
                CK(cudaDeviceSynchronize());
                for (int r = 0; r < reps && !st; r++) {
                    CK(cudaEventRecord(e0, 0));
                    st = fl_gemm(ctx, v, 0, moduli, 0, 0, 1.0, &a, &b, 0.0, &c, NULL);
                    CK(cudaEventRecord(e1, 0));
                    CK(cudaEventSynchronize(e1));
                    float t = 0;
                    CK(cudaEventElapsedTime(&t, e0, e1));
                    ms[r] = t;
                }
                qsort(ms, (size_t)reps, sizeof(double), cmp_d);
                const double med = reps % 2 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
                const double tf = 2.0 * M * N * K / (med * 1e-3) / 1e12;
                fprintf(stderr,
                        "   %-13s %s: median %9.3f ms (min %.3f, max %.3f)  %7.2f TFLOP/s  rel.err %.3e\n",
                        vs, pass ? "f64" : "f32", med, ms[0], ms[reps - 1], tf, re);
                fprintf(f,
                        ", \"median_ms\": %.5f, \"min_ms\": %.5f, \"max_ms\": %.5f, \"tflops\": %.4f, "
                        "\"rel_err\": %.6e, \"expected_residual\": %.6e, \"backend\": %d}",
                        med, ms[0], ms[reps - 1], tf, re, rep.expected_residual, (int)rep.backend);
                free(ms);
            }
        }
        fprintf(f, "\n    ]}");
        fflush(f);
        cudaFree(A32);
        cudaFree(B32);
        cudaFree(A64);
        cudaFree(B64);
        cudaFree(Cref32);
        cudaFree(Cref64);
        cudaFree(C);
    }
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
    fl_ctx_free(ctx);
    return 0;
}
