/*
 * bench_eig.c — the eigh and polar variants on the GPU: time and accuracy
 * at n = 1024, 4096 and 8192, float32 data in device memory, through the
 * public API (fl_eigh, fl_polar) on a "cuda" context.
 *
 *   bench_eig out.json [sizes, comma-separated] [reps]
 *
 * eigh input: A = (G + G^T) / 2 with G standard normal (a Wigner matrix,
 * eigenvalues spread over [-sqrt(2n), sqrt(2n)], no gaps to exploit).
 * polar input: a square standard normal G (condition number ~ n: its
 * smallest singular value is ~ 1/sqrt(n) of the typical); express_warm
 * starts from qdwh_hybrid's factor perturbed by 1e-3 / sqrt(n) per entry. Times: CUDA events around the call,
 * median of `reps` after one warm-up (one timed run at n = 8192, and a variant whose run at a smaller n took
 * more than 20 s is skipped at larger ones: the JSON says so). Accuracy, computed on the device with
 * flashlib's float64 GEMM variant ("fp64") on the float32 results: eigh:  residual ||A V - V diag(w)||_F /
 * ||A||_F, orthogonality
 *          ||V^T V - I||_F / sqrt(n);
 *   polar: orthogonality ||U^T U - I||_F / sqrt(n), backward error
 *          ||A - U H||_F / ||A||_F.
 * GIT_COMMIT names the commit in the JSON.
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

#define CK(call)                                                                                             \
    do {                                                                                                     \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess) {                                                                             \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));           \
            exit(2);                                                                                         \
        }                                                                                                    \
    } while (0)

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static double unif(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return ((double)(g_rng >> 11) + 0.5) * 0x1p-53;
}
static double gauss(void)
{
    return sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif());
}

static int cmp_d(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static fl_array dev_f32(int64_t r, int64_t c)
{
    void *p = NULL;
    CK(cudaMalloc(&p, sizeof(float) * (size_t)(r * c)));
    return fl_array_cuda(p, FL_DTYPE_F32, r, c, 0);
}
static fl_array dev_f64(int64_t r, int64_t c)
{
    void *p = NULL;
    CK(cudaMalloc(&p, sizeof(double) * (size_t)(r * c)));
    return fl_array_cuda(p, FL_DTYPE_F64, r, c, 0);
}

/* ||M||_F of a device f64 matrix (through the host: fine at these sizes). */
static double fro_dev64(const fl_array *m)
{
    const size_t n = (size_t)(m->rows * m->cols);
    double *h = malloc(sizeof(double) * n), s = 0;
    CK(cudaMemcpy(h, m->data, sizeof(double) * n, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++)
        s += h[i] * h[i];
    free(h);
    return sqrt(s);
}

/* f32 device -> f64 device copy (through the host). */
static void to_f64(const fl_array *src, fl_array *dst)
{
    const size_t n = (size_t)(src->rows * src->cols);
    float *h = malloc(sizeof(float) * n);
    double *d = malloc(sizeof(double) * n);
    CK(cudaMemcpy(h, src->data, sizeof(float) * n, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++)
        d[i] = h[i];
    CK(cudaMemcpy(dst->data, d, sizeof(double) * n, cudaMemcpyHostToDevice));
    free(h), free(d);
}

/* ||X^T X - I||_F / sqrt(cols) with X (f64, device). */
static double orth_err(fl_ctx *ctx, const fl_array *X)
{
    const int64_t c = X->cols;
    fl_array G = dev_f64(c, c);
    if (fl_gemm(ctx, "fp64", 0, 0, 1, 0, 1.0, X, X, 0.0, &G, NULL)) {
        fprintf(stderr, "orth gemm: %s\n", fl_ctx_last_error(ctx));
        exit(2);
    }
    double *h = malloc(sizeof(double) * (size_t)(c * c)), s = 0;
    CK(cudaMemcpy(h, G.data, sizeof(double) * (size_t)(c * c), cudaMemcpyDeviceToHost));
    for (int64_t i = 0; i < c; i++)
        for (int64_t j = 0; j < c; j++) {
            const double e = h[i * c + j] - (i == j);
            s += e * e;
        }
    free(h);
    cudaFree(G.data);
    return sqrt(s / (double)c);
}

typedef struct run {
    double med, lo, hi;
    int ok, iters;
    char err[200];
} run;

static void finish(run *r, double *t, int reps)
{
    qsort(t, (size_t)reps, sizeof *t, cmp_d);
    r->med = t[reps / 2];
    r->lo = t[0];
    r->hi = t[reps - 1];
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_eig out.json [sizes] [reps]\n");
        return 2;
    }
    int sizes[8] = {1024, 4096, 8192}, ns = 3;
    if (argc > 2) {
        ns = 0;
        for (char *tok = strtok(argv[2], ","); tok && ns < 8; tok = strtok(NULL, ","))
            sizes[ns++] = atoi(tok);
    }
    const int reps_req = argc > 3 ? atoi(argv[3]) : 5;
    fl_ctx *ctx = NULL;
    char cerr[256];
    if (fl_ctx_create("cuda", &ctx, cerr, sizeof cerr)) {
        fprintf(stderr, "no cuda context: %s\n", cerr);
        return 2;
    }
    fl_ctx_set_seed(ctx, 7);
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    int drv = 0;
    cudaDriverGetVersion(&drv);
    FILE *js = fopen(argv[1], "w");
    if (!js)
        return 2;
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    const char *commit = getenv("GIT_COMMIT");
    fprintf(
        js,
        "{\"device\": \"%s\", \"driver\": %d, \"commit\": \"%s\", \"date\": \"%s\", \"dtype\": \"f32\",\n",
        prop.name, drv, commit ? commit : "unknown", date);
    fprintf(
        js,
        " \"method\": \"CUDA events around fl_eigh / fl_polar on device arrays, median after one warm-up; "
        "accuracy with flashlib's fp64 GEMM\",\n \"runs\": [\n");
    const char *eigh_v[] = {"cusolver", "jacobi", "qdwh", "qdwh_ns", "halko"};
    const char *polar_v[] = {"qdwh_hybrid", "express", "express_warm", "zolo"};
    double slow_e[5] = {0}, slow_p[4] = {0};
    int first = 1;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int si = 0; si < ns; si++) {
        const int64_t n = sizes[si];
        const int reps = n >= 8192 ? 1 : reps_req;
        /* the symmetric input */
        float *h = malloc(sizeof(float) * (size_t)(n * n));
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j <= i; j++)
                h[i * n + j] = h[j * n + i] = (float)(gauss() / sqrt(2.0));
        fl_array A = dev_f32(n, n);
        CK(cudaMemcpy(A.data, h, sizeof(float) * (size_t)(n * n), cudaMemcpyHostToDevice));
        fl_array A64 = dev_f64(n, n);
        to_f64(&A, &A64);
        const double nA = fro_dev64(&A64);
        for (int v = 0; v < 5; v++) {
            run r = {0};
            const int64_t k = !strcmp(eigh_v[v], "halko") ? 32 : 0;
            const int64_t kk = k ? k : n;
            fl_array w = dev_f32(1, kk), V = dev_f32(n, kk);
            if (slow_e[v] > 20000) {
                snprintf(r.err, sizeof r.err, "skipped: %.0f ms at a smaller n", slow_e[v]);
            } else {
                double *t = malloc(sizeof(double) * (size_t)(reps + 1));
                fl_linalg_report rep;
                int bad = 0;
                for (int it = 0; it <= reps && !bad; it++) {
                    CK(cudaEventRecord(e0, 0));
                    fl_status st = fl_eigh(ctx, eigh_v[v], &A, k, &w, &V, &rep);
                    CK(cudaEventRecord(e1, 0));
                    CK(cudaEventSynchronize(e1));
                    float ms = 0;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    if (st) {
                        snprintf(r.err, sizeof r.err, "%s", fl_ctx_last_error(ctx));
                        bad = 1;
                    } else if (it > 0)
                        t[it - 1] = ms;
                }
                if (!bad) {
                    finish(&r, t, reps);
                    r.ok = 1;
                    r.iters = rep.iterations;
                    slow_e[v] = r.med;
                }
                free(t);
            }
            double res = NAN, orth = NAN;
            if (r.ok) {
                /* A V - V diag(w) in float64 */
                fl_array V64 = dev_f64(n, kk), AV = dev_f64(n, kk);
                to_f64(&V, &V64);
                fl_gemm(ctx, "fp64", 0, 0, 0, 0, 1.0, &A64, &V64, 0.0, &AV, NULL);
                float *wh = malloc(sizeof(float) * (size_t)kk);
                double *vh = malloc(sizeof(double) * (size_t)(n * kk)),
                       *av = malloc(sizeof(double) * (size_t)(n * kk));
                CK(cudaMemcpy(wh, w.data, sizeof(float) * (size_t)kk, cudaMemcpyDeviceToHost));
                CK(cudaMemcpy(vh, V64.data, sizeof(double) * (size_t)(n * kk), cudaMemcpyDeviceToHost));
                CK(cudaMemcpy(av, AV.data, sizeof(double) * (size_t)(n * kk), cudaMemcpyDeviceToHost));
                double s = 0;
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < kk; j++) {
                        const double e = av[i * kk + j] - vh[i * kk + j] * wh[j];
                        s += e * e;
                    }
                res = sqrt(s) / nA;
                orth = orth_err(ctx, &V64);
                free(wh), free(vh), free(av);
                cudaFree(V64.data), cudaFree(AV.data);
            }
            fprintf(js, "%s  {\"op\": \"eigh\", \"variant\": \"%s\", \"n\": %lld, \"n_components\": %lld, ",
                    first ? "" : ",\n", eigh_v[v], (long long)n, (long long)k);
            if (r.ok)
                fprintf(js,
                        "\"ms\": %.4f, \"ms_min\": %.4f, \"ms_max\": %.4f, \"reps\": %d, \"iterations\": %d, "
                        "\"residual\": %.3e, \"orthogonality\": %.3e}",
                        r.med, r.lo, r.hi, reps, r.iters, res, orth);
            else
                fprintf(js, "\"error\": \"%s\"}", r.err);
            first = 0;
            printf("eigh %-9s n=%5lld: %s %.2f ms, residual %.2e, orth %.2e %s\n", eigh_v[v], (long long)n,
                   r.ok ? "" : "FAILED", r.med, res, orth, r.err);
            fflush(stdout);
            cudaFree(w.data), cudaFree(V.data);
        }
        /* polar input: a square standard normal G (condition ~ n, the
         * smallest singular value ~ 1/sqrt(n)); the warm start: the
         * qdwh_hybrid factor perturbed by 1e-3 / sqrt(n) per entry */
        for (int64_t i = 0; i < n * n; i++)
            h[i] = (float)gauss();
        fl_array G = dev_f32(n, n);
        CK(cudaMemcpy(G.data, h, sizeof(float) * (size_t)(n * n), cudaMemcpyHostToDevice));
        fl_array G64 = dev_f64(n, n);
        to_f64(&G, &G64);
        const double nG = fro_dev64(&G64);
        fl_array U = dev_f32(n, n), H = dev_f32(n, n), U0 = dev_f32(n, n);
        int have_u0 = fl_polar(ctx, "qdwh_hybrid", &G, NULL, &U0, NULL, NULL) == FL_STATUS_OK;
        if (have_u0) {
            CK(cudaMemcpy(h, U0.data, sizeof(float) * (size_t)(n * n), cudaMemcpyDeviceToHost));
            for (int64_t i = 0; i < n * n; i++)
                h[i] += (float)(1e-3 * gauss() / sqrt((double)n));
            CK(cudaMemcpy(U0.data, h, sizeof(float) * (size_t)(n * n), cudaMemcpyHostToDevice));
        }
        for (int v = 0; v < 4; v++) {
            run r = {0};
            const int warm = !strcmp(polar_v[v], "express_warm");
            if (warm && !have_u0) {
                snprintf(r.err, sizeof r.err, "no warm start: qdwh_hybrid failed: %s",
                         fl_ctx_last_error(ctx));
            } else if (slow_p[v] > 20000) {
                snprintf(r.err, sizeof r.err, "skipped: %.0f ms at a smaller n", slow_p[v]);
            } else {
                double *t = malloc(sizeof(double) * (size_t)(reps + 1));
                fl_linalg_report rep;
                int bad = 0;
                for (int it = 0; it <= reps && !bad; it++) {
                    CK(cudaEventRecord(e0, 0));
                    fl_status st = fl_polar(ctx, polar_v[v], &G, warm ? &U0 : NULL, &U, &H, &rep);
                    CK(cudaEventRecord(e1, 0));
                    CK(cudaEventSynchronize(e1));
                    float ms = 0;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    if (st) {
                        snprintf(r.err, sizeof r.err, "%s", fl_ctx_last_error(ctx));
                        bad = 1;
                    } else if (it > 0)
                        t[it - 1] = ms;
                }
                if (!bad) {
                    finish(&r, t, reps);
                    r.ok = 1;
                    r.iters = rep.iterations;
                    slow_p[v] = r.med;
                }
                free(t);
            }
            double orth = NAN, back = NAN;
            if (r.ok) {
                fl_array U64 = dev_f64(n, n), H64 = dev_f64(n, n), R = dev_f64(n, n);
                to_f64(&U, &U64);
                to_f64(&H, &H64);
                orth = orth_err(ctx, &U64);
                CK(cudaMemcpy(R.data, G64.data, sizeof(double) * (size_t)(n * n), cudaMemcpyDeviceToDevice));
                fl_gemm(ctx, "fp64", 0, 0, 0, 0, -1.0, &U64, &H64, 1.0, &R, NULL);
                back = fro_dev64(&R) / nG;
                cudaFree(U64.data), cudaFree(H64.data), cudaFree(R.data);
            }
            fprintf(js,
                    ",\n  {\"op\": \"polar\", \"variant\": \"%s\", \"n\": %lld, \"input\": \"square standard "
                    "normal\", ",
                    polar_v[v], (long long)n);
            if (r.ok)
                fprintf(js,
                        "\"ms\": %.4f, \"ms_min\": %.4f, \"ms_max\": %.4f, \"reps\": %d, \"iterations\": %d, "
                        "\"orthogonality\": %.3e, \"backward_error\": %.3e}",
                        r.med, r.lo, r.hi, reps, r.iters, orth, back);
            else
                fprintf(js, "\"error\": \"%s\"}", r.err);
            printf("polar %-12s n=%5lld: %s %.2f ms (%d it), orth %.2e, backward %.2e %s\n", polar_v[v],
                   (long long)n, r.ok ? "" : "FAILED", r.med, r.iters, orth, back, r.err);
            fflush(stdout);
        }
        cudaFree(A.data), cudaFree(A64.data), cudaFree(G.data);
        cudaFree(G64.data), cudaFree(U.data), cudaFree(H.data), cudaFree(U0.data);
        free(h);
    }
    fprintf(js, "\n ]}\n");
    fclose(js);
    fl_ctx_free(ctx);
    return 0;
}
