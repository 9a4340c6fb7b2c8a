/*
 * bench_estimate.c — how long fl_info_estimate takes, per call, in C.
 *
 * For a few requests (KMeans as in the README, a calibrated-size KMeans, a
 * CPU KMeans, a GEMM, a compound op), times batches of calls with
 * CLOCK_MONOTONIC and prints the median and the 90th percentile of the
 * per-call time over 101 batches. Links only libflashlib_info.
 *   build-info/bin/bench_estimate [batch]       (default batch 2000)
 * Target (issue 3): a median <= 1 microsecond for a primitive.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "flashlib_info.h"

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct req {
    const char *label, *op, *params, *dtype, *device;
    int ndim;
    int64_t shape[3];
} req;

int main(int argc, char **argv)
{
    int batch = argc > 1 ? atoi(argv[1]) : 2000;
    if (batch < 1)
        batch = 1;
    const req reqs[] = {
        {"kmeans 100000x64 K=256 max_iters=20 H200",
         "kmeans",
         "K=256 max_iters=20",
         "f32",
         "H200",
         2,
         {100000, 64}},
        {"kmeans 1000000x128 n_clusters=1024 H100",
         "kmeans",
         "n_clusters=1024",
         "f32",
         "H100",
         2,
         {1000000, 128}},
        {"kmeans 100000x64 n_clusters=64 cpu", "kmeans", "n_clusters=64", "f32", "cpu", 2, {100000, 64}},
        {"gemm 8192x8192x8192 H100", "gemm", NULL, "f32", "H100", 3, {8192, 8192, 8192}},
        {"gemm 8192^3 tol=1e-3 (variant choice)", "gemm", "tol=1e-3", "f32", "H100", 3, {8192, 8192, 8192}},
        {"pca 1000000x512 (compound)", "pca", NULL, "f32", "H100", 2, {1000000, 512}},
        {"knn 1000000x128 n_neighbors=10 H100", "knn", "n_neighbors=10", "f32", "H100", 2, {1000000, 128}},
        {"knn 10000x1000000x96 k=100 bf16 device H200",
         "knn",
         "k=100 precision=bf16 input=device",
         "f32",
         "H200",
         3,
         {10000, 1000000, 96}},
    };
    double samples[101];
    fl_info_result r;
    char err[256];
    printf("%-44s %12s %12s\n", "request", "median", "p90");
    for (size_t q = 0; q < sizeof reqs / sizeof *reqs; q++) {
        const req *x = &reqs[q];
        if (fl_info_estimate(x->op, x->shape, x->ndim, x->params, x->dtype, x->device, &r, err, sizeof err)) {
            fprintf(stderr, "%s: %s\n", x->label, err);
            return 1;
        }
        for (int s = 0; s < 101; s++) {
            double t0 = now_ns();
            for (int i = 0; i < batch; i++)
                fl_info_estimate(x->op, x->shape, x->ndim, x->params, x->dtype, x->device, &r, err,
                                 sizeof err);
            samples[s] = (now_ns() - t0) / batch;
        }
        qsort(samples, 101, sizeof *samples, cmp);
        printf("%-44s %9.0f ns %9.0f ns\n", x->label, samples[50], samples[90]);
    }
    return 0;
}
