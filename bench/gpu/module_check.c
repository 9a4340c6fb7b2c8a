/*
 * module_check.c — GPU correctness test of libflashlib_cuda.so, driving the
 * module's entry table directly (dlopen + fli_cuda_module_get), so it tests
 * the kernels independently of the core.
 *
 * Reference: a float64 Lloyd written here (not flashlib's CPU backend) with
 * the same semantics (init array, ties to the lower index, empty clusters
 * take the farthest points in order, strict / tol convergence, final
 * assignment). Inputs are fresh random blobs per case; outputs are
 * poisoned before each run. Tolerances per precision: fp32 inertia within
 * 1e-4 relative and labels identical on well-separated data; tf32/bf16/fp16
 * within 3e-3/2e-2 and >= 99% labels.
 *
 * Also checked: the device bytes allocated equal fli_kmeans_cuda_plan's
 * device_bytes exactly; a failing allocator gives DEVICE_OOM, leaks nothing
 * and leaves outputs untouched; cancellation through the progress callback;
 * chunked streaming equals the resident fit; the sorted M-step; assign and
 * transform; k-means++ and 'random' init quality; edge shapes; the same
 * job run twice gives identical results bit for bit (every precision, each
 * M-step path, sm90); near-tie data converges in every precision like fp32;
 * the CUDA-graph Lloyd loop equals direct launches bit for bit.
 *
 * Usage: module_check [path/to/libflashlib_cuda.so]   (exit status = failures)
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

#include "algo/kmeans_plan.c" /* the plan, to compare with measured bytes */
#include "backends/cuda/fl_cuda_module.h"

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

/* ---- random data ------------------------------------------------------ */
static uint64_t g_rng = 88172645463325252ull;
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

/* n points around kt centres in [-10,10]^d with unit noise; returns truth
 * centres in *truth (kt x d) when non-NULL. */
static float *blobs(int64_t n, int64_t d, int64_t kt, double spread, float **truth)
{
    float *c = malloc(sizeof(float) * kt * d), *x = malloc(sizeof(float) * n * d);
    for (int64_t i = 0; i < kt * d; i++)
        c[i] = (float)(20 * urand() - 10);
    for (int64_t i = 0; i < n; i++) {
        int64_t b = (int64_t)(urand() * kt) % kt;
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = c[b * d + j] + (float)(spread * nrand());
    }
    if (truth)
        *truth = c;
    else
        free(c);
    return x;
}

/* ---- float64 reference Lloyd ------------------------------------------ */
static double ref_obj(const double *x, const double *c, int64_t d, fli_metric m)
{
    double s = 0;
    for (int64_t j = 0; j < d; j++)
        s += m == FLI_METRIC_EUCLIDEAN ? (x[j] - c[j]) * (x[j] - c[j]) : x[j] * c[j];
    return m == FLI_METRIC_EUCLIDEAN ? s : (m == FLI_METRIC_COSINE ? 1 - s : -s);
}
static void ref_normalize(double *x, int64_t n, int64_t d)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++)
            s += x[i * d + j] * x[i * d + j];
        s = s > 0 ? 1 / sqrt(s) : 0;
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] *= s;
    }
}
static double ref_assign(const double *X, int64_t n, int64_t d, const float *w, const double *C, int64_t k,
                         fli_metric m, int32_t *lab, double *mind)
{
    double tot = 0;
    for (int64_t i = 0; i < n; i++) {
        double best = INFINITY, bo = 0;
        int32_t bi = 0;
        for (int64_t c = 0; c < k; c++) {
            double o = ref_obj(X + i * d, C + c * d, d, m);
            if (o < best) {
                best = o;
                bi = (int32_t)c;
            }
        }
        bo = best;
        lab[i] = bi;
        if (mind)
            mind[i] = bo;
        tot += (w ? w[i] : 1.0) * bo;
    }
    return tot;
}
/* X is n x d double (already normalised for cosine); C in/out (k x d). */
static void ref_lloyd(const double *X, int64_t n, int64_t d, const float *w, double *C, int64_t k,
                      fli_metric m, int64_t max_iter, double tol_abs, int32_t *lab, double *inertia,
                      int64_t *n_iter)
{
    int32_t *old = malloc(4 * n);
    double *mind = malloc(8 * n), *sums = malloc(8 * k * d), *ws = malloc(8 * k), *Cn = malloc(8 * k * d);
    for (int64_t i = 0; i < n; i++)
        old[i] = -1;
    int64_t it;
    int strict = 0;
    for (it = 0; it < max_iter; it++) {
        ref_assign(X, n, d, w, C, k, m, lab, mind);
        memset(sums, 0, 8 * k * d);
        memset(ws, 0, 8 * k);
        for (int64_t i = 0; i < n; i++) {
            double wi = w ? w[i] : 1;
            ws[lab[i]] += wi;
            for (int64_t j = 0; j < d; j++)
                sums[lab[i] * d + j] += wi * X[i * d + j];
        }
        for (int64_t c = 0; c < k; c++) {
            if (ws[c] != 0)
                continue;
            int64_t far = -1;
            for (int64_t i = 0; i < n; i++)
                if (far < 0 || mind[i] > mind[far])
                    far = i;
            double wi = w ? w[far] : 1;
            int32_t oc = lab[far];
            for (int64_t j = 0; j < d; j++) {
                sums[oc * d + j] -= wi * X[far * d + j];
                sums[c * d + j] = wi * X[far * d + j];
            }
            ws[c] = wi;
            ws[oc] -= wi;
            mind[far] = -INFINITY;
        }
        double shift = 0;
        for (int64_t c = 0; c < k; c++) {
            for (int64_t j = 0; j < d; j++)
                Cn[c * d + j] = ws[c] > 0 ? sums[c * d + j] / ws[c] : C[c * d + j];
            if (m == FLI_METRIC_COSINE)
                ref_normalize(Cn + c * d, 1, d);
            for (int64_t j = 0; j < d; j++)
                shift += (Cn[c * d + j] - C[c * d + j]) * (Cn[c * d + j] - C[c * d + j]);
        }
        memcpy(C, Cn, 8 * k * d);
        if (!memcmp(lab, old, 4 * n)) {
            strict = 1;
            break;
        }
        if (shift <= tol_abs)
            break;
        memcpy(old, lab, 4 * n);
    }
    (void)strict;
    *n_iter = it < max_iter ? it + 1 : max_iter;
    *inertia = ref_assign(X, n, d, w, C, k, m, lab, NULL);
    free(old);
    free(mind);
    free(sums);
    free(ws);
    free(Cn);
}

/* ---- the module ---------------------------------------------------------- */
typedef struct alloc_state {
    int fail_at, count, live;
    size_t bytes_live, peak;
} alloc_state;
static int t_alloc(void *u, int32_t dev, size_t bytes, void **p)
{
    alloc_state *a = u;
    (void)dev;
    a->count++;
    if (a->fail_at && a->count >= a->fail_at)
        return 1;
    if (cudaMalloc(p, bytes) != cudaSuccess)
        return 1;
    a->live++;
    a->bytes_live += bytes;
    if (a->bytes_live > a->peak)
        a->peak = a->bytes_live;
    return 0;
}
/* sizes are tracked by the test through cudaMemGetInfo-free bookkeeping:
 * the module makes one allocation per call, so bytes_live resets on free. */
static void t_free(void *u, int32_t dev, void *p)
{
    alloc_state *a = u;
    (void)dev;
    if (!p)
        return;
    a->live--;
    if (a->live == 0)
        a->bytes_live = 0;
    cudaFree(p);
}

static const fli_cuda_api *g_api;
static fli_cuda_env g_env;
static char g_err[1024];
static alloc_state g_as;
static fl_device_allocator g_hooks = {t_alloc, t_free, &g_as};

static fl_backend g_backend = FL_BACKEND_CUDA; /* backend asked for by run_fit */
static int cancel_at = -1;
static int g_no_trace; /* run_fit asks for no inertia trace (the M-step may leave the objective out) */
static int t_progress(void *u, const char *stage, int64_t done, int64_t total)
{
    (void)u;
    (void)stage;
    (void)total;
    return cancel_at >= 0 && done >= cancel_at;
}

typedef struct fit_case {
    const char *name;
    int64_t n, d, k;
    fli_precision prec;
    fli_metric metric;
    fli_kmeans_init init;
    int x_dev, weighted, out_dev;
    int64_t max_iter, n_init, chunk_rows;
    double tol;
} fit_case;

typedef struct fit_out {
    fl_status st;
    float *C;
    int32_t *lab;
    double inertia, trace[512];
    int64_t n_iter, trace_len;
    size_t peak;
    int allocs;
    double ms;
} fit_out;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* Runs the module's fit; X, w, init on the host (copied to the device when
 * the case says so). Outputs are poisoned first. */
static void run_fit(const fit_case *fc, const float *X, const float *w, const float *init, uint64_t seed,
                    fit_out *o)
{
    int64_t n = fc->n, d = fc->d, k = fc->k;
    o->C = malloc(4 * k * d);
    o->lab = malloc(4 * n);
    for (int64_t i = 0; i < k * d; i++)
        o->C[i] = NAN;
    for (int64_t i = 0; i < n; i++)
        o->lab[i] = -7;
    void *dX = NULL, *dw = NULL, *dC = NULL, *dl = NULL;
    fli_kmeans_job j;
    memset(&j, 0, sizeof j);
    j.X = X;
    j.dtype = FL_DTYPE_F32;
    j.x_dev = -1;
    j.n = n;
    j.d = d;
    j.ld = d;
    j.weights = fc->weighted ? w : NULL;
    if (fc->x_dev) {
        cudaMalloc(&dX, 4 * n * d);
        cudaMemcpy(dX, X, 4 * n * d, cudaMemcpyHostToDevice);
        j.X = dX;
        j.x_dev = 0;
        if (fc->weighted) {
            cudaMalloc(&dw, 4 * n);
            cudaMemcpy(dw, w, 4 * n, cudaMemcpyHostToDevice);
            j.weights = dw;
        }
    }
    j.k = k;
    j.init = fc->init;
    j.init_centers = init;
    j.n_init = fc->n_init ? fc->n_init : 1;
    j.max_iter = fc->max_iter;
    j.tol = fc->tol;
    j.metric = fc->metric;
    j.precision = fc->prec;
    j.backend = g_backend;
    j.seed = seed;
    j.n_local_trials = 2 + (int64_t)log((double)k);
    j.chunk_rows = fc->chunk_rows;
    j.centers = o->C;
    j.centers_dev = -1;
    j.labels = o->lab;
    j.labels_dev = -1;
    if (fc->out_dev) {
        cudaMalloc(&dC, 4 * k * d);
        cudaMalloc(&dl, 4 * n);
        cudaMemset(dC, 0xff, 4 * k * d);
        cudaMemset(dl, 0xff, 4 * n);
        j.centers = dC;
        j.centers_dev = 0;
        j.labels = dl;
        j.labels_dev = 0;
    }
    j.inertia_trace = g_no_trace ? NULL : o->trace;
    j.trace_cap = g_no_trace ? 0 : 512;
    memset(&g_as, 0, sizeof g_as);
    g_err[0] = 0;
    double t0 = now_ms();
    o->st = g_api->kmeans_fit(&g_env, &j);
    o->ms = now_ms() - t0;
    o->peak = g_as.peak;
    o->allocs = g_as.count;
    CHECK(g_as.live == 0, "%s: %d device allocations leaked", fc->name, g_as.live);
    if (fc->out_dev && o->st == FL_STATUS_OK) {
        cudaMemcpy(o->C, dC, 4 * k * d, cudaMemcpyDeviceToHost);
        cudaMemcpy(o->lab, dl, 4 * n, cudaMemcpyDeviceToHost);
    }
    o->inertia = j.inertia;
    o->n_iter = j.n_iter;
    o->trace_len = j.trace_len;
    cudaFree(dX);
    cudaFree(dw);
    cudaFree(dC);
    cudaFree(dl);
}

static void free_out(fit_out *o)
{
    free(o->C);
    free(o->lab);
}

static double rel(double a, double b)
{
    return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1e-30);
}

/* Fraction of points whose label matches b after mapping each label of a
 * to the b-label it most often meets (a permutation of ids is agreement). */
static double label_agreement(const int32_t *a, const int32_t *b, int64_t n)
{
    int32_t ka = 0, kb = 0;
    for (int64_t i = 0; i < n; i++) {
        if (a[i] + 1 > ka)
            ka = a[i] + 1;
        if (b[i] + 1 > kb)
            kb = b[i] + 1;
    }
    if (ka <= 0 || kb <= 0)
        return 0;
    int64_t *ct = calloc((size_t)ka * kb, sizeof(int64_t));
    for (int64_t i = 0; i < n; i++)
        if (a[i] >= 0 && b[i] >= 0)
            ct[(int64_t)a[i] * kb + b[i]]++;
    int64_t s = 0;
    for (int32_t x = 0; x < ka; x++) {
        int64_t m = 0;
        for (int32_t y = 0; y < kb; y++)
            if (ct[(int64_t)x * kb + y] > m)
                m = ct[(int64_t)x * kb + y];
        s += m;
    }
    free(ct);
    return (double)s / n;
}

static double tol_var(const float *X, int64_t n, int64_t d, double tol)
{
    double tot = 0;
    for (int64_t j = 0; j < d; j++) {
        double s = 0, q = 0;
        for (int64_t i = 0; i < n; i++)
            s += X[i * d + j];
        s /= n;
        for (int64_t i = 0; i < n; i++)
            q += (X[i * d + j] - s) * (X[i * d + j] - s);
        tot += q / n;
    }
    return tol * tot / d;
}

/* One case against the float64 reference with array init. */
static void case_vs_ref(fit_case fc)
{
    int64_t n = fc.n, d = fc.d, k = fc.k;
    float *truth;
    float *X = blobs(n, d, k, 1.0, &truth);
    float *w = malloc(4 * n);
    for (int64_t i = 0; i < n; i++)
        w[i] = (float)(0.25 + 2 * urand());
    /* near the true centres, so every precision follows the same path */
    float *init = malloc(4 * k * d);
    for (int64_t i = 0; i < k * d; i++)
        init[i] = truth[i] + (float)(0.3 * nrand());
    free(truth);
    if (fc.init == FLI_KM_INIT_ARRAY && k >= 3) /* a duplicate centre: forces an empty cluster */
        memcpy(init + (k - 1) * d, init, 4 * d);
    double *Xd = malloc(8 * n * d), *Cd = malloc(8 * k * d);
    for (int64_t i = 0; i < n * d; i++)
        Xd[i] = X[i];
    for (int64_t i = 0; i < k * d; i++)
        Cd[i] = init[i];
    if (fc.metric == FLI_METRIC_COSINE) {
        ref_normalize(Xd, n, d);
        ref_normalize(Cd, k, d);
    }
    float *Xn = malloc(4 * n * d);
    for (int64_t i = 0; i < n * d; i++)
        Xn[i] = (float)Xd[i];
    double tol_abs = fc.tol > 0 ? tol_var(Xn, n, d, fc.tol) : 0;
    int32_t *rl = malloc(4 * n);
    double rin;
    int64_t rit;
    ref_lloyd(Xd, n, d, fc.weighted ? w : NULL, Cd, k, fc.metric, fc.max_iter, tol_abs, rl, &rin, &rit);

    fit_out o;
    run_fit(&fc, X, w, init, 1, &o);
    CHECK(o.st == FL_STATUS_OK, "%s: status %d: %s", fc.name, o.st, g_err);
    if (o.st == FL_STATUS_OK) {
        double tol_in = fc.prec == FLI_PREC_FP32 ? 1e-4 : fc.prec == FLI_PREC_TF32 ? 3e-3 : 2e-2;
        double min_agree = fc.prec == FLI_PREC_FP32 ? 0.9999 : 0.99;
        double ag = label_agreement(o.lab, rl, n);
        double cerr = 0, cref = 0;
        for (int64_t i = 0; i < k * d; i++) {
            cerr += (o.C[i] - Cd[i]) * (o.C[i] - Cd[i]);
            cref += Cd[i] * Cd[i];
        }
        cerr = sqrt(cerr / (cref > 0 ? cref : 1));
        int poisoned = 0;
        for (int64_t i = 0; i < k * d; i++)
            poisoned += isnan(o.C[i]);
        for (int64_t i = 0; i < n; i++)
            poisoned += o.lab[i] < 0 || o.lab[i] >= k;
        int mono = 1;
        for (int64_t t = 1; t < o.trace_len; t++)
            if (fc.metric != FLI_METRIC_DOT && o.trace[t] > o.trace[t - 1] * (1 + 1e-5) + 1e-9)
                mono = 0;
        printf(
            "  %-34s inertia %.6e ref %.6e rel %.1e  labels %.5f  centres %.1e  iters %lld/%lld  %.1f ms\n",
            fc.name, o.inertia, rin, rel(o.inertia, rin), ag, cerr, (long long)o.n_iter, (long long)rit,
            o.ms);
        CHECK(poisoned == 0, "%s: %d outputs not written", fc.name, poisoned);
        CHECK(rel(o.inertia, rin) <= tol_in, "%s: inertia %.8e vs ref %.8e", fc.name, o.inertia, rin);
        CHECK(ag >= min_agree, "%s: label agreement %.5f", fc.name, ag);
        CHECK(fc.prec != FLI_PREC_FP32 || k == n || cerr < 1e-4, "%s: centre error %.2e", fc.name, cerr);
        CHECK(o.trace_len == (o.n_iter < 512 ? o.n_iter : 512), "%s: trace_len %lld n_iter %lld", fc.name,
              (long long)o.trace_len, (long long)o.n_iter);
        CHECK(mono, "%s: objective rose along the trace", fc.name);
        fli_kmeans_cuda_plan p;
        fli_kmeans_cuda_plan_chunk(n, d, k, fc.prec, fc.x_dev, fc.weighted, fc.metric, fc.chunk_rows, &p);
        CHECK(o.allocs == 1 && o.peak == p.device_bytes, "%s: allocated %zu in %d calls, plan %zu", fc.name,
              o.peak, o.allocs, p.device_bytes);
    }
    free_out(&o);
    free(X);
    free(w);
    free(init);
    free(Xd);
    free(Cd);
    free(Xn);
    free(rl);
}

/* k-means++ / random on blobs: the objective reaches the truth's neighbourhood. */
static void case_init_quality(fli_kmeans_init init, int64_t n_init, fli_precision prec)
{
    /* random init on many blobs legitimately lands in local minima; with
     * k = 2 and 10 restarts a good start is all but certain (1 - 2^-10) */
    int64_t n = 40000, d = 24, k = init == FLI_KM_INIT_RANDOM ? 2 : 20;
    float *truth;
    float *X = blobs(n, d, k, 0.5, &truth);
    double *Xd = malloc(8 * n * d), *Cd = malloc(8 * k * d);
    for (int64_t i = 0; i < n * d; i++)
        Xd[i] = X[i];
    for (int64_t i = 0; i < k * d; i++)
        Cd[i] = truth[i];
    int32_t *rl = malloc(4 * n);
    double rin;
    int64_t rit;
    ref_lloyd(Xd, n, d, NULL, Cd, k, FLI_METRIC_EUCLIDEAN, 100, 0, rl, &rin, &rit);
    fit_case fc = {init == FLI_KM_INIT_KMEANSPP ? "k-means++" : "random",
                   n,
                   d,
                   k,
                   prec,
                   FLI_METRIC_EUCLIDEAN,
                   init,
                   1,
                   0,
                   0,
                   100,
                   n_init,
                   0,
                   1e-4};
    fit_out o;
    run_fit(&fc, X, NULL, NULL, 42, &o);
    CHECK(o.st == FL_STATUS_OK, "%s: status %d: %s", fc.name, o.st, g_err);
    printf(
        "  init %-10s n_init %lld: inertia %.6e, from the true centres %.6e (x%.4f), %lld iters, %.1f ms\n",
        fc.name, (long long)n_init, o.inertia, rin, o.inertia / rin, (long long)o.n_iter, o.ms);
    /* greedy k-means++ finds every well-separated blob; random with 10 restarts too (loosely) */
    double bound = 1.0001;
    CHECK(o.st != FL_STATUS_OK || o.inertia <= rin * bound, "%s: inertia %.6e vs %.6e", fc.name, o.inertia,
          rin);
    free_out(&o);
    free(X);
    free(truth);
    free(Xd);
    free(Cd);
    free(rl);
}

/* Chunked streaming must equal the resident fit (same kernels, same order
 * per row block; sums differ only in chunk-wise association). */
static void case_chunked(void)
{
    int64_t n = 30011, d = 40, k = 17;
    float *X = blobs(n, d, k, 1.0, NULL);
    float *w = malloc(4 * n);
    for (int64_t i = 0; i < n; i++)
        w[i] = (float)(0.5 + urand());
    float *init = malloc(4 * k * d);
    for (int64_t c = 0; c < k; c++)
        memcpy(init + c * d, X + ((c * 7919) % n) * d, 4 * d);
    fit_case a = {"resident", n, d, k, FLI_PREC_FP32, FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 0, 1, 0,
                  30,         1, 0, 0};
    fit_case b = a;
    b.name = "chunked 4096";
    b.chunk_rows = 4096;
    fit_out oa, ob;
    run_fit(&a, X, w, init, 1, &oa);
    run_fit(&b, X, w, init, 1, &ob);
    CHECK(oa.st == FL_STATUS_OK && ob.st == FL_STATUS_OK, "chunked: status %d %d: %s", oa.st, ob.st, g_err);
    if (oa.st == FL_STATUS_OK && ob.st == FL_STATUS_OK) {
        double ag = label_agreement(oa.lab, ob.lab, n);
        printf("  chunked vs resident: inertia %.8e vs %.8e, labels %.6f, %.1f vs %.1f ms\n", ob.inertia,
               oa.inertia, ag, ob.ms, oa.ms);
        /* sums are associated per chunk, so boundary points may flip */
        CHECK(rel(ob.inertia, oa.inertia) < 1e-5 && ag > 0.999, "chunked differs");
        fli_kmeans_cuda_plan p;
        fli_kmeans_cuda_plan_chunk(n, d, k, FLI_PREC_FP32, 0, 1, FLI_METRIC_EUCLIDEAN, 4096, &p);
        CHECK(p.chunked && ob.peak == p.device_bytes, "chunked plan %zu measured %zu", p.device_bytes,
              ob.peak);
    }
    /* k-means++ through chunks too */
    b.init = FLI_KM_INIT_KMEANSPP;
    b.name = "chunked k-means++";
    fit_out oc;
    run_fit(&b, X, w, NULL, 3, &oc);
    CHECK(oc.st == FL_STATUS_OK, "chunked k-means++: %d %s", oc.st, g_err);
    printf("  chunked k-means++: inertia %.6e (array-init fit %.6e)\n", oc.inertia, oa.inertia);
    free_out(&oa);
    free_out(&ob);
    free_out(&oc);
    free(X);
    free(w);
    free(init);
}

/* Every allocation failure: clean error, nothing leaked, outputs untouched. */
static void case_alloc_failure(void)
{
    int64_t n = 5000, d = 16, k = 8;
    float *X = blobs(n, d, k, 1.0, NULL);
    fit_case fc = {"oom", n,  d, k, FLI_PREC_TF32, FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_KMEANSPP, 0, 0,
                   0,     20, 1, 0, 1e-4};
    g_as.fail_at = 0;
    for (int fail = 1; fail <= 3; fail++) {
        fit_out o;
        alloc_state save;
        /* run_fit clears g_as; set fail_at through a second copy */
        memset(&save, 0, sizeof save);
        o.C = NULL;
        int64_t kk = k;
        float *C = malloc(4 * kk * d);
        int32_t *lab = malloc(4 * n);
        for (int64_t i = 0; i < kk * d; i++)
            C[i] = -3.f;
        for (int64_t i = 0; i < n; i++)
            lab[i] = -7;
        fli_kmeans_job j;
        memset(&j, 0, sizeof j);
        j.X = X;
        j.dtype = FL_DTYPE_F32;
        j.x_dev = -1;
        j.n = n;
        j.d = d;
        j.ld = d;
        j.k = k;
        j.init = fc.init;
        j.n_init = 1;
        j.max_iter = 20;
        j.tol = 1e-4;
        j.precision = fc.prec;
        j.backend = FL_BACKEND_CUDA;
        j.n_local_trials = 3;
        j.centers = C;
        j.centers_dev = -1;
        j.labels = lab;
        j.labels_dev = -1;
        memset(&g_as, 0, sizeof g_as);
        g_as.fail_at = fail;
        fl_status st = g_api->kmeans_fit(&g_env, &j);
        int untouched = 1;
        for (int64_t i = 0; i < kk * d; i++)
            untouched &= C[i] == -3.f;
        for (int64_t i = 0; i < n; i++)
            untouched &= lab[i] == -7;
        if (fail <= g_as.count || st != FL_STATUS_OK) {
            CHECK(st == FL_STATUS_DEVICE_OOM, "fail_at %d: status %d (%s)", fail, st, g_err);
            CHECK(untouched, "fail_at %d: outputs touched", fail);
            CHECK(strstr(g_err, "kmeans") != NULL || strstr(g_err, "alloc") != NULL, "message: %s", g_err);
        }
        CHECK(g_as.live == 0, "fail_at %d: %d leaked", fail, g_as.live);
        if (fail == 1)
            printf("  alloc failure 1: %s\n", g_err);
        free(C);
        free(lab);
        (void)o;
        (void)save;
    }
    g_as.fail_at = 0;
    /* cancellation */
    {
        fit_case c2 = fc;
        c2.name = "cancel";
        c2.tol = 0;
        c2.max_iter = 50;
        /* at the second progress call: a fit always reaches it (convergence
         * is seen at the end of the second iteration at the earliest),
         * while a later call may never come (the blobs converged within 3
         * iterations in one run at 6769f98: status OK, not CANCELLED) */
        cancel_at = 1;
        g_env.progress = t_progress;
        fit_out o;
        run_fit(&c2, X, NULL, NULL, 5, &o);
        int untouched = 1;
        for (int64_t i = 0; i < k * d; i++)
            untouched &= isnan(o.C[i]);
        for (int64_t i = 0; i < n; i++)
            untouched &= o.lab[i] == -7;
        CHECK(o.st == FL_STATUS_CANCELLED && untouched, "cancel: status %d untouched %d", o.st, untouched);
        g_env.progress = NULL;
        cancel_at = -1;
        free_out(&o);
    }
    free(X);
}

/* assign: labels, inertia and transform against the reference. */
static void case_assign(fli_metric metric, fli_precision prec, int dev)
{
    int64_t n = 7003, d = 33, k = 70;
    float *X = blobs(n, d, k, 1.0, NULL);
    float *C = malloc(4 * k * d);
    for (int64_t c = 0; c < k; c++)
        memcpy(C + c * d, X + ((c * 101) % n) * d, 4 * d);
    double *Xd = malloc(8 * n * d), *Cd = malloc(8 * k * d);
    for (int64_t i = 0; i < n * d; i++)
        Xd[i] = X[i];
    for (int64_t i = 0; i < k * d; i++)
        Cd[i] = C[i];
    if (metric == FLI_METRIC_COSINE) {
        ref_normalize(Xd, n, d);
        ref_normalize(Cd, k, d);
    }
    int32_t *rl = malloc(4 * n), *lab = malloc(4 * n);
    double rin = ref_assign(Xd, n, d, NULL, Cd, k, metric, rl, NULL);
    float *T = malloc(4 * n * k);
    for (int64_t i = 0; i < n * k; i++)
        T[i] = NAN;
    for (int64_t i = 0; i < n; i++)
        lab[i] = -7;
    void *dX = NULL, *dT = NULL, *dl = NULL;
    fli_kmeans_assign_job j;
    memset(&j, 0, sizeof j);
    j.X = X;
    j.dtype = FL_DTYPE_F32;
    j.x_dev = -1;
    j.n = n;
    j.d = d;
    j.ld = d;
    j.centers = C;
    j.centers_dev = -1;
    j.k = k;
    j.metric = metric;
    j.precision = prec;
    j.backend = FL_BACKEND_CUDA;
    j.labels = lab;
    j.transform = T;
    j.transform_ld = k;
    j.out_dev = -1;
    if (dev) {
        cudaMalloc(&dX, 4 * n * d);
        cudaMalloc(&dT, 4 * n * k);
        cudaMalloc(&dl, 4 * n);
        cudaMemcpy(dX, X, 4 * n * d, cudaMemcpyHostToDevice);
        j.X = dX;
        j.x_dev = 0;
        j.transform = dT;
        j.labels = dl;
        j.out_dev = 0;
    }
    memset(&g_as, 0, sizeof g_as);
    fl_status st = g_api->kmeans_assign(&g_env, &j);
    CHECK(st == FL_STATUS_OK, "assign: %d %s", st, g_err);
    CHECK(g_as.live == 0, "assign leaked");
    if (dev) {
        cudaMemcpy(T, dT, 4 * n * k, cudaMemcpyDeviceToHost);
        cudaMemcpy(lab, dl, 4 * n, cudaMemcpyDeviceToHost);
    }
    double terr = 0, tref = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < k; c++) {
            double o = ref_obj(Xd + i * d, Cd + c * d, d, metric);
            double r = metric == FLI_METRIC_EUCLIDEAN ? sqrt(o) : o;
            terr += (T[i * k + c] - r) * (T[i * k + c] - r);
            tref += r * r;
        }
    terr = sqrt(terr / tref);
    double ag = label_agreement(lab, rl, n);
    double tol_in = prec == FLI_PREC_FP32 ? 1e-5 : 1e-3;
    printf("  assign metric %d prec %d %s: inertia rel %.1e labels %.5f transform %.1e\n", metric, prec,
           dev ? "device" : "host", rel(j.inertia, rin), ag, terr);
    CHECK(rel(j.inertia, rin) < tol_in || fabs(j.inertia - rin) < 1e-6 * n, "assign inertia %.8e vs %.8e",
          j.inertia, rin);
    if (prec == FLI_PREC_FP32) {
        /* fp32 scores (||c||^2 - 2<x,c>) may flip a point whose reference
         * margin is below their rounding (~2^-16 |x| max|c| here): such a
         * point may differ, any other must agree */
        double cmax = 0;
        for (int64_t c = 0; c < k; c++) {
            double q = 0;
            for (int64_t jj = 0; jj < d; jj++)
                q += Cd[c * d + jj] * Cd[c * d + jj];
            if (q > cmax)
                cmax = q;
        }
        cmax = sqrt(cmax);
        int64_t hard = 0;
        for (int64_t i = 0; i < n; i++) {
            if (lab[i] == rl[i])
                continue;
            double xn = 0;
            for (int64_t jj = 0; jj < d; jj++)
                xn += Xd[i * d + jj] * Xd[i * d + jj];
            double margin = ref_obj(Xd + i * d, Cd + (int64_t)lab[i] * d, d, metric) -
                            ref_obj(Xd + i * d, Cd + (int64_t)rl[i] * d, d, metric);
            hard += margin > ldexp(sqrt(xn) * cmax, -16);
        }
        CHECK(hard == 0 && ag >= 0.999, "assign labels %.5f, %lld beyond the fp32 rounding margin", ag,
              (long long)hard);
    } else {
        /* tensor-core scores round x and c (bf16: 8 bits): a point may flip
         * between two centres whose reference scores differ by less than
         * the rounding bound 2^-6 ||x|| max||c||. Every point with a wider
         * margin must agree (the centres here are data rows, so some blobs
         * overlap and about 1% of the points are that close). */
        double cmax = 0;
        for (int64_t c = 0; c < k; c++) {
            double q = 0;
            for (int64_t jj = 0; jj < d; jj++)
                q += Cd[c * d + jj] * Cd[c * d + jj];
            if (q > cmax)
                cmax = q;
        }
        cmax = sqrt(cmax);
        int64_t hard = 0, soft = 0;
        for (int64_t i = 0; i < n; i++) {
            if (lab[i] == rl[i])
                continue;
            double xn = 0;
            for (int64_t jj = 0; jj < d; jj++)
                xn += Xd[i * d + jj] * Xd[i * d + jj];
            double margin = ref_obj(Xd + i * d, Cd + (int64_t)lab[i] * d, d, metric) -
                            ref_obj(Xd + i * d, Cd + (int64_t)rl[i] * d, d, metric);
            if (margin > ldexp(sqrt(xn) * cmax, -6))
                hard++;
            else
                soft++;
        }
        printf("    16-bit assign: %lld labels differ, all within the rounding margin: %s\n",
               (long long)(hard + soft), hard ? "NO" : "yes");
        CHECK(hard == 0 && ag >= 0.98, "assign labels %.5f, %lld beyond the rounding margin", ag,
              (long long)hard);
    }
    CHECK(terr < 1e-5, "transform error %.2e", terr);
    cudaFree(dX);
    cudaFree(dT);
    cudaFree(dl);
    free(X);
    free(C);
    free(Xd);
    free(Cd);
    free(rl);
    free(lab);
    free(T);
}

/* ---- reproducibility and near-tie convergence ------------------------------ */
/* 16 blobs in [-30,30]^d (unit noise) and k = 64 centres spread over the
 * rows: several centres per blob, so most points sit near a tie between
 * two or three centres (the Python GPU tests' shape). */
static float *tie_data(int64_t n, int64_t d, int64_t k, float **init)
{
    float *c = malloc(sizeof(float) * 16 * d), *x = malloc(sizeof(float) * n * d);
    for (int64_t i = 0; i < 16 * d; i++)
        c[i] = (float)(60 * urand() - 30);
    for (int64_t i = 0; i < n; i++) {
        int64_t b = (int64_t)(urand() * 16) % 16;
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = c[b * d + j] + (float)nrand();
    }
    free(c);
    *init = malloc(sizeof(float) * k * d);
    for (int64_t q = 0; q < k; q++)
        memcpy(*init + q * d, x + (q * (n - 1) / (k - 1)) * d, sizeof(float) * d);
    return x;
}

/* The same job twice: centres, labels, inertia and iteration count must be
 * identical bit for bit (no order-dependent sums anywhere: E-step merges,
 * M-step sums, relocation, column statistics, tolerance). */
static void case_repeat(fit_case fc, const float *X, const float *init)
{
    float *w = malloc(4 * fc.n);
    for (int64_t i = 0; i < fc.n; i++)
        w[i] = (float)(0.25 + 2 * urand());
    fit_out a, b;
    run_fit(&fc, X, w, init, 7, &a);
    run_fit(&fc, X, w, init, 7, &b);
    CHECK(a.st == FL_STATUS_OK && b.st == FL_STATUS_OK, "%s: status %d %d: %s", fc.name, a.st, b.st, g_err);
    if (a.st == FL_STATUS_OK && b.st == FL_STATUS_OK) {
        const int same_c = memcmp(a.C, b.C, 4 * fc.k * fc.d) == 0;
        const int same_l = memcmp(a.lab, b.lab, 4 * fc.n) == 0;
        const int same_i = memcmp(&a.inertia, &b.inertia, sizeof(double)) == 0 && a.n_iter == b.n_iter;
        printf("  %-40s iters %lld/%lld  inertia %.17g  identical: centres %d labels %d inertia %d\n",
               fc.name, (long long)a.n_iter, (long long)b.n_iter, a.inertia, same_c, same_l, same_i);
        CHECK(same_c && same_l && same_i,
              "%s: two runs of the same job differ (centres %d labels %d inertia %d)", fc.name, same_c,
              same_l, same_i);
    }
    free_out(&a);
    free_out(&b);
    free(w);
}

static void cases_repeat(const fli_precision *precs, const char **pn)
{
    char name[96];
    for (int p = 0; p < 4; p++) {
        float *init;
        float *X = tie_data(20000, 32, 64, &init);
        snprintf(name, sizeof name, "repeat %s near-ties k=64 d=32 tol", pn[p]);
        fit_case a = {name, 20000, 32, 64, precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 0, 0,
                      0,    300,   1,  0,  1e-4};
        case_repeat(a, X, init);
        free(X);
        free(init);
        /* shared-copy M-step (k_acc_owner), weights, cosine */
        X = tie_data(20000, 64, 200, &init);
        snprintf(name, sizeof name, "repeat %s owner M-step k=200 d=64 w", pn[p]);
        fit_case b = {name, 20000, 64, 200, precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 1, 1,
                      0,    30,    1,  0,   1e-4};
        case_repeat(b, X, init);
        snprintf(name, sizeof name, "repeat %s owner M-step cosine", pn[p]);
        fit_case c = {name, 20000, 64, 200, precs[p], FLI_METRIC_COSINE, FLI_KM_INIT_ARRAY, 1, 0,
                      0,    30,    1,  0,   1e-4};
        case_repeat(c, X, init);
        free(X);
        free(init);
        /* sorted M-step, k-means++ with n_init 2, host chunks */
        X = tie_data(20000, 64, 400, &init);
        snprintf(name, sizeof name, "repeat %s sorted k=400 k-means++ x2", pn[p]);
        fit_case d = {name, 20000, 64, 400, precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_KMEANSPP, 0, 0,
                      0,    20,    2,  0,   1e-4};
        case_repeat(d, X, init);
        snprintf(name, sizeof name, "repeat %s chunked k=400", pn[p]);
        fit_case e = {name, 20000, 64, 400,  precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 0, 0,
                      0,    10,    1,  6000, 1e-4};
        case_repeat(e, X, init);
        free(X);
        free(init);
    }
    if (g_env.sm90_enabled) {
        g_backend = FL_BACKEND_CUDA_SM90;
        for (int p = 1; p < 4; p++) {
            float *init;
            float *X = tie_data(20000, 128, 1024, &init);
            snprintf(name, sizeof name, "repeat %s sm90 k=1024 d=128", pn[p]);
            fit_case a = {name, 20000, 128, 1024, precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 1, 0,
                          0,    10,    1,   0,    1e-4};
            case_repeat(a, X, init);
            free(X);
            free(init);
        }
        g_backend = FL_BACKEND_CUDA;
    }
}

/* CUDA graph of the Lloyd loop vs direct launches: the same job with
 * km_graph -1 (every kernel launched directly), 0 (the module's choice) and
 * 1 (one iteration per graph launch) gives identical centres, labels,
 * inertia, iteration count and inertia trace, bit for bit; the graph is
 * really used where it should be (X resident, max_iter > 1). progress: a
 * callback that never cancels (one iteration per graph launch). */
static void case_graph(fit_case fc, const float *X, const float *init, int progress)
{
    float *w = malloc(4 * fc.n);
    for (int64_t i = 0; i < fc.n; i++)
        w[i] = (float)(0.25 + 2 * urand());
    const int modes[3] = {-1, 0, 1};
    fit_out o[3];
    int used[3];
    for (int m = 0; m < 3; m++) {
        g_env.km_graph = modes[m];
        g_env.progress = progress ? t_progress : NULL;
        run_fit(&fc, X, w, init, 11, &o[m]);
        used[m] = g_env.km_graph_used;
        CHECK(o[m].st == FL_STATUS_OK, "%s (km_graph %d): status %d: %s", fc.name, modes[m], o[m].st, g_err);
        if (o[m].st == FL_STATUS_OK && modes[m] >= 0 && used[m] == 0 && g_err[0])
            printf("  %s (km_graph %d): no graph: %s\n", fc.name, modes[m], g_err);
    }
    g_env.km_graph = 0;
    g_env.progress = NULL;
    /* what the module should have chosen (run_fit keeps a trace of 512) */
    const int resident = fc.chunk_rows == 0 || fc.chunk_rows >= fc.n;
    int64_t want0 = progress || fc.max_iter > 256 ? 1 : 4;
    if (want0 > fc.max_iter - 1)
        want0 = fc.max_iter - 1;
    if (!resident)
        want0 = 0;
    const int want1 = resident && fc.max_iter > 1 ? 1 : 0;
    CHECK(used[0] == 0 && used[1] == want0 && used[2] == want1,
          "%s: iterations per graph launch: direct %d, default %d (want %lld), one %d (want %d)", fc.name,
          used[0], used[1], (long long)want0, used[2], want1);
    for (int m = 1; m < 3; m++) {
        if (o[0].st != FL_STATUS_OK || o[m].st != FL_STATUS_OK)
            continue;
        const int same_c = memcmp(o[0].C, o[m].C, 4 * fc.k * fc.d) == 0;
        const int same_l = memcmp(o[0].lab, o[m].lab, 4 * fc.n) == 0;
        const int same_i =
            memcmp(&o[0].inertia, &o[m].inertia, sizeof(double)) == 0 && o[0].n_iter == o[m].n_iter;
        const int same_t = o[0].trace_len == o[m].trace_len &&
                           memcmp(o[0].trace, o[m].trace, 8 * (size_t)o[0].trace_len) == 0;
        printf("  %-44s graph %d/iters %lld vs direct: identical centres %d labels %d inertia %d trace %d\n",
               fc.name, used[m], (long long)o[m].n_iter, same_c, same_l, same_i, same_t);
        CHECK(same_c && same_l && same_i && same_t,
              "%s: km_graph %d differs from direct launches (centres %d labels %d inertia %d trace %d)",
              fc.name, modes[m], same_c, same_l, same_i, same_t);
    }
    for (int m = 0; m < 3; m++)
        free_out(&o[m]);
    free(w);
}

/* Host X through the pinned staging buffers (h2d_staging 1, the core's
 * default) against straight pageable copies (0): the same job gives the same
 * centres, labels, inertia and iteration count, bit for bit. Rows of 37
 * floats go into a 40-float pitch (the strided pack), the weights are one
 * contiguous vector (the byte-cut pack); 300,000 rows are 44 MB, several
 * buffer cycles; the chunked fit streams them on the copy stream. */
static void cases_staging(void)
{
    const int64_t n = 300000, d = 37, k = 50;
    float *X = malloc(4 * n * d), *w = malloc(4 * n), *init = malloc(4 * k * d);
    for (int64_t i = 0; i < n * d; i++)
        X[i] = (float)(2 * urand() - 1);
    for (int64_t i = 0; i < n; i++)
        w[i] = (float)(0.25 + 2 * urand());
    for (int64_t c = 0; c < k; c++)
        memcpy(init + c * d, X + ((c * 4099) % n) * d, 4 * d);
    const int64_t chunks[2] = {0, 70000};
    for (int c = 0; c < 2; c++) {
        char name[96];
        snprintf(name, sizeof name, "staging tf32 k=50 d=37 host w chunk_rows=%lld", (long long)chunks[c]);
        fit_case fc = {name, n, d,         k, FLI_PREC_TF32, FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 0, 1, 0,
                       8,    1, chunks[c], 0};
        fit_out o[2];
        for (int s = 0; s < 2; s++) {
            g_env.h2d_staging = s;
            run_fit(&fc, X, w, init, 5, &o[s]);
            CHECK(o[s].st == FL_STATUS_OK, "%s (h2d_staging %d): status %d: %s", name, s, o[s].st, g_err);
        }
        g_env.h2d_staging = 1;
        if (o[0].st == FL_STATUS_OK && o[1].st == FL_STATUS_OK) {
            const int same_c = memcmp(o[0].C, o[1].C, 4 * k * d) == 0;
            const int same_l = memcmp(o[0].lab, o[1].lab, 4 * n) == 0;
            const int same_i = o[0].inertia == o[1].inertia && o[0].n_iter == o[1].n_iter;
            printf(
                "  %-44s staged vs pageable: identical centres %d labels %d inertia %d (%.1f vs %.1f ms)\n",
                name, same_c, same_l, same_i, o[1].ms, o[0].ms);
            CHECK(same_c && same_l && same_i, "%s: staged copy differs (centres %d labels %d inertia %d)",
                  name, same_c, same_l, same_i);
        }
        free_out(&o[0]);
        free_out(&o[1]);
    }
    free(X);
    free(w);
    free(init);
}

static void cases_graph(const fli_precision *precs, const char **pn)
{
    char name[96];
    /* the benchmark's 100K shape, smaller: uniform data, tol 0, owner M-step */
    {
        const int64_t n = 30000, d = 64, k = 256;
        float *X = malloc(4 * n * d), *init = malloc(4 * k * d);
        for (int64_t i = 0; i < n * d; i++)
            X[i] = (float)(2 * urand() - 1);
        for (int64_t c = 0; c < k; c++)
            memcpy(init + c * d, X + ((c * 977) % n) * d, 4 * d);
        for (int p = 0; p < 4; p++) {
            snprintf(name, sizeof name, "graph %s k=256 d=64 tol=0 dev", pn[p]);
            fit_case fc = {name, n,  d, k, precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 1, 0,
                           1,    20, 1, 0, 0};
            case_graph(fc, X, init, 0);
        }
        /* odd max_iter: direct head of (max_iter - 1) % 4 + 1 iterations */
        fit_case f7 = {"graph bf16 k=256 max_iter=8",
                       n,
                       d,
                       k,
                       FLI_PREC_BF16,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_ARRAY,
                       1,
                       1,
                       0,
                       8,
                       1,
                       0,
                       0};
        case_graph(f7, X, init, 0);
        fit_case f2 = {"graph tf32 k=256 max_iter=2",
                       n,
                       d,
                       k,
                       FLI_PREC_TF32,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_ARRAY,
                       1,
                       0,
                       0,
                       2,
                       1,
                       0,
                       0};
        case_graph(f2, X, init, 0);
        fit_case f1 = {"graph tf32 k=256 max_iter=1",
                       n,
                       d,
                       k,
                       FLI_PREC_TF32,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_ARRAY,
                       1,
                       0,
                       0,
                       1,
                       1,
                       0,
                       0};
        case_graph(f1, X, init, 0);
        free(X);
        free(init);
    }
    /* early convergence inside a graph of several iterations (no-op replays) */
    {
        float *init;
        float *X = tie_data(20000, 32, 64, &init);
        for (int p = 0; p < 4; p += 2) {
            snprintf(name, sizeof name, "graph %s k=64 d=32 tol=1e-4 max_iter=200", pn[p]);
            fit_case fc = {name, 20000, 32, 64, precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 0, 1,
                           0,    200,   1,  0,  1e-4};
            case_graph(fc, X, init, 0);
        }
        /* max_iter > the trace ring: one iteration per graph launch */
        fit_case fr = {"graph tf32 k=64 d=32 max_iter=300",
                       20000,
                       32,
                       64,
                       FLI_PREC_TF32,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_ARRAY,
                       0,
                       0,
                       0,
                       300,
                       1,
                       0,
                       1e-4};
        case_graph(fr, X, init, 0);
        free(X);
        free(init);
    }
    /* sorted M-step with a separate relocation, k-means++ x2 (the graph is
     * reused by the second run), cosine with a progress callback, host chunks */
    {
        float *init;
        float *X = tie_data(20000, 64, 400, &init);
        fit_case fs = {"graph bf16 sorted k=400 k-means++ x2",
                       20000,
                       64,
                       400,
                       FLI_PREC_BF16,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_KMEANSPP,
                       1,
                       0,
                       0,
                       12,
                       2,
                       0,
                       0};
        case_graph(fs, X, init, 0);
        fit_case fp = {"graph tf32 k=400 cosine progress",
                       20000,
                       64,
                       400,
                       FLI_PREC_TF32,
                       FLI_METRIC_COSINE,
                       FLI_KM_INIT_ARRAY,
                       1,
                       1,
                       0,
                       10,
                       1,
                       0,
                       0};
        case_graph(fp, X, init, 1);
        fit_case fc = {"graph fp16 chunked (no graph)",
                       20000,
                       64,
                       400,
                       FLI_PREC_FP16,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_ARRAY,
                       0,
                       0,
                       0,
                       6,
                       1,
                       6000,
                       0};
        case_graph(fc, X, init, 0);
        free(X);
        free(init);
    }
    /* the opt-in fused E+M kernel */
    {
        float *init;
        float *X = tie_data(20000, 37, 13, &init);
        g_env.km_fused = 1;
        fit_case ff = {"graph fused bf16 cosine k=13 d=37",
                       20000,
                       37,
                       13,
                       FLI_PREC_BF16,
                       FLI_METRIC_COSINE,
                       FLI_KM_INIT_ARRAY,
                       1,
                       1,
                       0,
                       15,
                       1,
                       0,
                       0};
        case_graph(ff, X, init, 0);
        g_env.km_fused = 0;
        free(X);
        free(init);
    }
    if (g_env.sm90_enabled) {
        float *init;
        float *X = tie_data(20000, 128, 1024, &init);
        g_backend = FL_BACKEND_CUDA_SM90;
        fit_case fh = {"graph sm90 bf16 k=1024 d=128",
                       20000,
                       128,
                       1024,
                       FLI_PREC_BF16,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_ARRAY,
                       1,
                       0,
                       0,
                       9,
                       1,
                       0,
                       0};
        case_graph(fh, X, init, 0);
        fh.name = "graph sm90 tf32 k=1024 d=128";
        fh.prec = FLI_PREC_TF32;
        case_graph(fh, X, init, 0);
        g_backend = FL_BACKEND_CUDA;
        free(X);
        free(init);
    }
}

/* Kernel variants that must not change a result: the fit with an inertia
 * trace (its M-step computes the objective every iteration and relocates
 * inside its combine) against fits without one (the objective left out,
 * relocation by k_reloc_obj only when a cluster empties), with the
 * default kernels and with the variants env->km_tune selects (the 64-row
 * warp tiles of the k <= 64 E-step, the private-copy M-step without the
 * objective, the separate E and M kernels where the tf32 k <= 64 E-step
 * would take the sums itself):
 * identical centres, labels, inertia and iteration count, bit for bit. A
 * duplicate initial centre forces a relocation in the first iteration. */
/* km_tune bits case_tune adds to its fits without a trace: 16384 (the
 * sorted M-step sums every row) for the sorted case, whose traced fit
 * computes the objective and so cannot take the delta M-step, which
 * differs from it by rounding (case_delta compares those two). */
static int g_tune_or;
static void case_tune(fit_case fc, const float *X, const float *init)
{
    float *w = malloc(4 * fc.n), *init2 = malloc(4 * fc.k * fc.d);
    for (int64_t i = 0; i < fc.n; i++)
        w[i] = (float)(0.25 + 2 * urand());
    memcpy(init2, init, 4 * fc.k * fc.d);
    memcpy(init2 + (fc.k - 1) * fc.d, init2, 4 * fc.d);
    const int tunes[5] = {0, 0, 256, 2, 2048};
    const char *tn[5] = {"trace", "no trace", "no trace, c64 warp tiles of 64 rows",
                         "no trace, private M-step w/o objective", "no trace, separate E and M kernels"};
    fit_out o[5];
    for (int m = 0; m < 5; m++) {
        g_no_trace = m > 0;
        g_env.km_tune = tunes[m] | (m > 0 ? g_tune_or : 0);
        run_fit(&fc, X, w, init2, 5, &o[m]);
        CHECK(o[m].st == FL_STATUS_OK, "%s (%s): status %d: %s", fc.name, tn[m], o[m].st, g_err);
    }
    g_no_trace = 0;
    g_env.km_tune = 0;
    for (int m = 1; m < 5; m++) {
        if (o[0].st != FL_STATUS_OK || o[m].st != FL_STATUS_OK)
            continue;
        const int same_c = memcmp(o[0].C, o[m].C, 4 * fc.k * fc.d) == 0;
        const int same_l = memcmp(o[0].lab, o[m].lab, 4 * fc.n) == 0;
        const int same_i =
            memcmp(&o[0].inertia, &o[m].inertia, sizeof(double)) == 0 && o[0].n_iter == o[m].n_iter;
        printf("  %-40s %-36s iters %lld: identical centres %d labels %d inertia %d\n", fc.name, tn[m],
               (long long)o[m].n_iter, same_c, same_l, same_i);
        CHECK(same_c && same_l && same_i,
              "%s: %s differs from the traced fit (centres %d labels %d inertia %d)", fc.name, tn[m], same_c,
              same_l, same_i);
    }
    for (int m = 0; m < 5; m++)
        free_out(&o[m]);
    free(w);
    free(init2);
}

/* Blobs with weights in [0.25, 2.25) and initial centres at the true ones
 * plus noise, the last a copy of the first (an empty cluster in the first
 * iteration). Free with free_inputs. */
static void pair_inputs(int64_t n, int64_t d, int64_t k, double noise, float **X, float **w, float **init)
{
    float *truth;
    *X = blobs(n, d, k, 1.0, &truth);
    *w = malloc(4 * n);
    *init = malloc(4 * k * d);
    for (int64_t i = 0; i < n; i++)
        (*w)[i] = (float)(0.25 + 2 * urand());
    for (int64_t i = 0; i < k * d; i++)
        (*init)[i] = truth[i] + (float)(noise * nrand());
    memcpy(*init + (k - 1) * d, *init, 4 * d);
    free(truth);
}
static void free_inputs(fit_out *o, float *X, float *w, float *init)
{
    free_out(&o[0]);
    free_out(&o[1]);
    free(X);
    free(w);
    free(init);
}

/* The sorted M-step (k * (d + 2) floats past the shared-memory limit)
 * keeps its sums across iterations and adds only the changed rows'
 * deltas; env->km_tune bit 14 sums every row every iteration. The two
 * differ by rounding only: same iteration count, labels agree on all but
 * a few near-tied rows, inertia within 1e-5 and centres within 1e-4 of
 * the data's scale. A duplicate initial centre empties a cluster in the
 * first iteration (relocation moves a row in the kept sums); weighted. */
static void case_delta(fli_precision prec, int64_t d, int weighted, const char *name)
{
    const int64_t n = 30000, k = 1500;
    float *X, *w, *init;
    pair_inputs(n, d, k, 0.6, &X, &w, &init);
    fit_case fc = {name, n, d, k, prec, FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 1, weighted, 1, 12, 1, 0, 0};
    fit_out o[2];
    g_no_trace = 1;
    for (int m = 0; m < 2; m++) {
        g_env.km_tune = m ? 16384 : 0;
        run_fit(&fc, X, weighted ? w : NULL, init, 5, &o[m]);
        CHECK(o[m].st == FL_STATUS_OK, "%s (%s): status %d: %s", name, m ? "full" : "delta", o[m].st, g_err);
    }
    g_env.km_tune = 0;
    g_no_trace = 0;
    if (o[0].st == FL_STATUS_OK && o[1].st == FL_STATUS_OK) {
        int64_t same = 0;
        for (int64_t i = 0; i < n; i++)
            same += o[0].lab[i] == o[1].lab[i];
        double cmax = 0, scale = 0;
        for (int64_t i = 0; i < k * d; i++) {
            cmax = fmax(cmax, fabs((double)o[0].C[i] - o[1].C[i]));
            scale = fmax(scale, fabs((double)o[1].C[i]));
        }
        const double rel = fabs(o[0].inertia - o[1].inertia) / fabs(o[1].inertia);
        printf("  %-40s delta vs full M-step: iters %lld/%lld labels %.5f inertia rel %.2e centres %.2e\n",
               name, (long long)o[0].n_iter, (long long)o[1].n_iter, (double)same / n, rel, cmax / scale);
        CHECK(o[0].n_iter == o[1].n_iter && same >= n - n / 1000 && rel <= 1e-5 && cmax <= 1e-4 * scale,
              "%s: delta M-step differs from the full one (iters %lld/%lld labels %lld/%lld inertia %.3e "
              "centres %.3e)",
              name, (long long)o[0].n_iter, (long long)o[1].n_iter, (long long)same, (long long)n, rel,
              cmax / scale);
    }
    free_inputs(o, X, w, init);
}

/* Variants of the sm90 E-step against the default kernel (weighted, with
 * an empty cluster forced; 40,000 rows: more row tiles than SMs, so
 * blocks take several). The 16-bit kernel folds the first half of a row
 * tile while the second half's products run; env->km_tune bit 12 waits
 * for both halves first. The tf32 kernel's four warpgroups (default) and
 * the producer with two consumer warpgroups (bit 15) issue the same
 * products and fold the same scores in the same order. Either way the
 * fits must agree bit for bit. */
static void case_sm90_ab(fli_precision prec, int64_t d, fli_metric metric, int tune, const char *name)
{
    const int64_t n = 40000, k = 1024;
    float *X, *w, *init;
    pair_inputs(n, d, k, 0.3, &X, &w, &init);
    fit_case fc = {name, n, d, k, prec, metric, FLI_KM_INIT_ARRAY, 1, 1, 1, 5, 1, 0, 0};
    fit_out o[2];
    for (int m = 0; m < 2; m++) {
        g_env.km_tune = m ? tune : 0;
        run_fit(&fc, X, w, init, 5, &o[m]);
        CHECK(o[m].st == FL_STATUS_OK, "%s (%s): status %d: %s", name, m ? "variant" : "default", o[m].st,
              g_err);
    }
    g_env.km_tune = 0;
    if (o[0].st == FL_STATUS_OK && o[1].st == FL_STATUS_OK) {
        const int same_c = memcmp(o[0].C, o[1].C, 4 * k * d) == 0;
        const int same_l = memcmp(o[0].lab, o[1].lab, 4 * n) == 0;
        const int same_i =
            memcmp(&o[0].inertia, &o[1].inertia, sizeof(double)) == 0 && o[0].n_iter == o[1].n_iter;
        printf("  %-44s vs km_tune %d, iters %lld/%lld: identical centres %d labels %d inertia %d\n", name,
               tune, (long long)o[0].n_iter, (long long)o[1].n_iter, same_c, same_l, same_i);
        CHECK(same_c && same_l && same_i, "%s: the variant differs (centres %d labels %d inertia %d)", name,
              same_c, same_l, same_i);
    }
    free_inputs(o, X, w, init);
}

static void cases_tune(const fli_precision *precs, const char **pn)
{
    char name[96];
    float *init;
    /* k * (d + 2) past the shared-memory M-step: sorted pieces, delta */
    case_delta(FLI_PREC_TF32, 64, 1, "delta tf32 d=64 k=1500 weighted");
    case_delta(FLI_PREC_FP32, 48, 0, "delta fp32 d=48 k=1500");
    /* k <= 64, d = 32: the c64 E-step and the private-copy M-step */
    float *X = tie_data(20000, 32, 64, &init);
    for (int p = 0; p < 4; p++) {
        snprintf(name, sizeof name, "tune %s k=64 d=32", pn[p]);
        fit_case fc = {name, 20000, 32, 64, precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 1, 1,
                       0,    30,    1,  0,  0};
        case_tune(fc, X, init);
    }
    fit_case fcos = {"tune tf32 k=64 d=32 cosine",
                     20000,
                     32,
                     64,
                     FLI_PREC_TF32,
                     FLI_METRIC_COSINE,
                     FLI_KM_INIT_ARRAY,
                     1,
                     0,
                     0,
                     30,
                     1,
                     0,
                     0};
    case_tune(fcos, X, init);
    free(X);
    free(init);
    /* d = 16 and d = 8 (packed rows: the E-step's fixed-pattern loads), and
     * d = 24 (its generic loads), each with a last partial tile */
    const int64_t dd[3] = {16, 8, 24}, kk[3] = {64, 40, 50}, nn[3] = {20000, 20011, 20003};
    for (int v = 0; v < 3; v++) {
        X = tie_data(nn[v], dd[v], kk[v], &init);
        snprintf(name, sizeof name, "tune tf32 k=%lld d=%lld n=%lld", (long long)kk[v], (long long)dd[v],
                 (long long)nn[v]);
        /* unweighted (counts by match_any) except d = 24 */
        fit_case fc = {
            name, nn[v], dd[v], kk[v], FLI_PREC_TF32, FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 1, v == 2, 0,
            30,   1,     0,     0};
        case_tune(fc, X, init);
        free(X);
        free(init);
    }
    /* k = 256, d = 64: the owner M-step */
    X = tie_data(20000, 64, 256, &init);
    for (int p = 1; p < 3; p++) {
        snprintf(name, sizeof name, "tune %s k=256 d=64 (owner M-step)", pn[p]);
        fit_case fc = {name, 20000, 64, 256, precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 1, 0,
                       0,    20,    1,  0,   0};
        case_tune(fc, X, init);
    }
    free(X);
    free(init);
    /* k = 400: the sorted M-step */
    X = tie_data(20000, 64, 400, &init);
    fit_case fs = {"tune bf16 k=400 d=64 (sorted M-step)",
                   20000,
                   64,
                   400,
                   FLI_PREC_BF16,
                   FLI_METRIC_EUCLIDEAN,
                   FLI_KM_INIT_ARRAY,
                   1,
                   1,
                   0,
                   12,
                   1,
                   0,
                   0};
    g_tune_or = 16384;
    case_tune(fs, X, init);
    g_tune_or = 0;
    free(X);
    free(init);
}

/* Near-tie convergence (the bug of low-precision runs going to max_iter):
 * every precision stops like fp32 (within 2x + 10 iterations) with the same
 * objective within 1e-2; the share of labels equal to fp32's is printed.
 */
static void cases_near_tie_convergence(const fli_precision *precs, const char **pn)
{
    float *init;
    float *X = tie_data(20000, 32, 64, &init);
    fit_out o[4];
    char name[4][64];
    for (int p = 0; p < 4; p++) {
        snprintf(name[p], sizeof name[p], "near-ties %s k=64 d=32 tol=1e-4", pn[p]);
        fit_case fc = {name[p], 20000, 32, 64, precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 0, 0,
                       0,       300,   1,  0,  1e-4};
        fflush(stdout);
        run_fit(&fc, X, NULL, init, 1, &o[p]);
        fflush(stderr);
        CHECK(o[p].st == FL_STATUS_OK, "%s: status %d: %s", fc.name, o[p].st, g_err);
    }
    for (int p = 0; p < 4; p++) {
        if (o[p].st != FL_STATUS_OK || o[0].st != FL_STATUS_OK)
            continue;
        int64_t same = 0;
        for (int64_t i = 0; i < 20000; i++)
            same += o[p].lab[i] == o[0].lab[i];
        printf("  %-34s iters %lld (fp32 %lld)  inertia %.8e (fp32 %.8e, rel %.1e)  labels = fp32 %.5f\n",
               name[p], (long long)o[p].n_iter, (long long)o[0].n_iter, o[p].inertia, o[0].inertia,
               rel(o[p].inertia, o[0].inertia), same / 20000.0);
        CHECK(o[0].n_iter < 300, "fp32 near-ties did not converge");
        CHECK(o[p].n_iter <= 2 * o[0].n_iter + 10, "%s: %lld iterations (fp32 %lld)", name[p],
              (long long)o[p].n_iter, (long long)o[0].n_iter);
        /* Lloyd with 4 centres per blob is chaotic: one rounding flip can
         * lead to another partition of equal objective, so labels are shown,
         * the objective is checked (as the Python tests do) */
        CHECK(rel(o[p].inertia, o[0].inertia) <= 1e-2, "%s: inertia %.8e vs fp32 %.8e", name[p], o[p].inertia,
              o[0].inertia);
    }
    for (int p = 0; p < 4; p++)
        free_out(&o[p]);
    free(X);
    free(init);
}

int main(int argc, char **argv)
{
    char path[4096];
    if (argc > 1) {
        snprintf(path, sizeof path, "%s", argv[1]);
    } else {
        ssize_t len = readlink("/proc/self/exe", path, sizeof path - 64);
        path[len > 0 ? len : 0] = 0;
        char *s = strrchr(path, '/');
        if (s)
            *s = 0;
        strcat(path, "/../lib/libflashlib_cuda.so");
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return 2;
    }
    fli_cuda_module_get_fn get = (fli_cuda_module_get_fn)dlsym(h, FLI_CUDA_MODULE_SYMBOL);
    g_api = get ? get() : NULL;
    if (!g_api || g_api->abi != FLI_CUDA_ABI) {
        fprintf(stderr, "module %s: bad table or ABI\n", path);
        return 2;
    }
    memset(&g_env, 0, sizeof g_env);
    g_env.device_id = 0;
    g_env.dalloc = &g_hooks;
    g_env.km_rescore = 1;  /* what the core passes unless FL_KM_RESCORE=0 */
    g_env.h2d_staging = 1; /* and unless FL_H2D_STAGING=0 */
    g_env.host_threads = 8;
    g_env.err = g_err;
    g_env.err_len = sizeof g_err;
    if (g_api->ctx_init(&g_env) != FL_STATUS_OK) {
        fprintf(stderr, "ctx_init: %s\n", g_err);
        return 2;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    printf("module_check on %s (cc %d.%d)\n", prop.name, prop.major, prop.minor);
    g_env.sm90_enabled = prop.major == 9 && prop.minor == 0;
    {
        int32_t dev = 7;
        float hv = 0, *dv = NULL;
        cudaMalloc((void **)&dv, 4);
        CHECK(g_api->pointer_device(&g_env, &hv, &dev) == FL_STATUS_OK && dev == -1, "host pointer: %d", dev);
        CHECK(g_api->pointer_device(&g_env, dv, &dev) == FL_STATUS_OK && dev == 0, "device pointer: %d", dev);
        float one = 1.5f, back = 0;
        CHECK(g_api->memcpy(&g_env, dv, 0, &one, -1, 4) == FL_STATUS_OK, "memcpy h2d");
        CHECK(g_api->memcpy(&g_env, &back, -1, dv, 0, 4) == FL_STATUS_OK && back == 1.5f, "memcpy d2h");
        cudaFree(dv);
    }
    const fli_precision precs[4] = {FLI_PREC_FP32, FLI_PREC_TF32, FLI_PREC_BF16, FLI_PREC_FP16};
    const char *pn[4] = {"fp32", "tf32", "bf16", "fp16"};
    char name[96];
    printf("fit vs float64 reference (array init with a duplicate centre -> relocation):\n");
    for (int p = 0; p < 4; p++)
        for (int metric = 0; metric < 3; metric++)
            for (int dev = 0; dev < 2; dev++) {
                snprintf(name, sizeof name, "%s %s %s w", pn[p],
                         metric == 0   ? "euclid"
                         : metric == 1 ? "cosine"
                                       : "dot",
                         dev ? "dev" : "host");
                fit_case fc = {name,
                               20000,
                               37,
                               13,
                               precs[p],
                               (fli_metric)metric,
                               FLI_KM_INIT_ARRAY,
                               dev,
                               1,
                               dev,
                               metric == 2 ? 4 : 60,
                               1,
                               0,
                               metric == 2 ? 0 : 1e-4};
                case_vs_ref(fc);
            }
    printf("sorted M-step (k*(d+2)*4 > %d):\n", FLI_KM_SMEM_ACC_MAX);
    for (int p = 0; p < 3; p++) {
        snprintf(name, sizeof name, "sorted %s k=400 d=64", pn[p]);
        fit_case fc = {name, 20000, 64, 400, precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 1, p == 1,
                       0,    6,     1,  0,   0};
        case_vs_ref(fc);
    }
    printf("fused E+M kernel (opt-in, FL_KM_FUSED=1), resident and through host chunks:\n");
    g_env.km_fused = 1;
    for (int p = 1; p < 4; p++) {
        snprintf(name, sizeof name, "fused %s cosine dev w", pn[p]);
        fit_case fr = {name, 20000, 37, 13, precs[p], FLI_METRIC_COSINE, FLI_KM_INIT_ARRAY, 1, 1,
                       1,    60,    1,  0,  1e-4};
        case_vs_ref(fr);
        snprintf(name, sizeof name, "fused %s euclid k=200 d=64", pn[p]);
        fit_case fk = {name, 20000, 64, 200, precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 1, 0,
                       0,    6,     1,  0,   0};
        case_vs_ref(fk);
    }
    for (int p = 1; p < 3; p++) {
        snprintf(name, sizeof name, "fused chunked %s", pn[p]);
        fit_case fc = {name, 30011, 45, 20,   precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 0, 1,
                       0,    40,    1,  5000, 1e-4};
        case_vs_ref(fc);
    }
    g_env.km_fused = 0;
    printf("k <= 64 centre-stationary E-step (no padding), odd row counts:\n");
    for (int p = 1; p < 3; p++) {
        snprintf(name, sizeof name, "c64 %s k=64 d=32 dev", pn[p]);
        fit_case fc = {name, 70001, 32, 64, precs[p], FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 1, 1,
                       1,    5,     1,  0,  0};
        case_vs_ref(fc);
    }
    if (g_env.sm90_enabled) {
        printf("Hopper wgmma E-step (backend cuda-sm90):\n");
        g_backend = FL_BACKEND_CUDA_SM90;
        fit_case h1 = {"sm90 bf16 d=128 k=1024",
                       6000,
                       128,
                       1024,
                       FLI_PREC_BF16,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_ARRAY,
                       1,
                       1,
                       1,
                       4,
                       1,
                       0,
                       0};
        case_vs_ref(h1);
        fit_case h2 = {"sm90 fp16 d=64 k=1000 dot",
                       5000,
                       64,
                       1000,
                       FLI_PREC_FP16,
                       FLI_METRIC_DOT,
                       FLI_KM_INIT_ARRAY,
                       1,
                       0,
                       0,
                       3,
                       1,
                       0,
                       0};
        case_vs_ref(h2);
        fit_case h3 = {"sm90 bf16 d=80 k=1100 cosine host",
                       6000,
                       80,
                       1100,
                       FLI_PREC_BF16,
                       FLI_METRIC_COSINE,
                       FLI_KM_INIT_ARRAY,
                       0,
                       0,
                       0,
                       3,
                       1,
                       0,
                       0};
        case_vs_ref(h3);
        fit_case h4 = {"sm90 bf16 d=128 k=1024 chunked",
                       6000,
                       128,
                       1024,
                       FLI_PREC_BF16,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_ARRAY,
                       0,
                       0,
                       0,
                       3,
                       1,
                       2048,
                       0};
        case_vs_ref(h4);
        case_sm90_ab(FLI_PREC_BF16, 128, FLI_METRIC_EUCLIDEAN, 4096, "sm90 split bf16 d=128 k=1024");
        case_sm90_ab(FLI_PREC_FP16, 64, FLI_METRIC_COSINE, 4096, "sm90 split fp16 d=64 k=1024 cosine");
        case_sm90_ab(FLI_PREC_TF32, 128, FLI_METRIC_EUCLIDEAN, 32768, "sm90 tf32 d=128 4 vs 2 warpgroups");
        case_sm90_ab(FLI_PREC_TF32, 64, FLI_METRIC_DOT, 32768, "sm90 tf32 d=64 dot 4 vs 2 warpgroups");
        case_sm90_ab(FLI_PREC_TF32, 72, FLI_METRIC_COSINE, 32768, "sm90 tf32 d=72 cosine 4 vs 2 warpgroups");
        /* tf32 through TMA: X in place (d = 72: columns past d zero-filled
         * by the copies), from the host (d = 50: dh = 64), weighted dot,
         * chunked; d = 33 on the device is not 16-byte aligned per row and
         * takes the portable kernel with the truncation statistics */
        fit_case t1 = {"sm90 tf32 d=128 k=1024",
                       6000,
                       128,
                       1024,
                       FLI_PREC_TF32,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_ARRAY,
                       1,
                       1,
                       1,
                       4,
                       1,
                       0,
                       0};
        case_vs_ref(t1);
        fit_case t2 = {"sm90 tf32 d=72 k=1100 dot weighted",
                       5000,
                       72,
                       1100,
                       FLI_PREC_TF32,
                       FLI_METRIC_DOT,
                       FLI_KM_INIT_ARRAY,
                       1,
                       1,
                       0,
                       3,
                       1,
                       0,
                       0};
        case_vs_ref(t2);
        fit_case t3 = {"sm90 tf32 d=50 k=1030 cosine host",
                       6000,
                       50,
                       1030,
                       FLI_PREC_TF32,
                       FLI_METRIC_COSINE,
                       FLI_KM_INIT_ARRAY,
                       0,
                       0,
                       0,
                       3,
                       1,
                       0,
                       0};
        case_vs_ref(t3);
        fit_case t4 = {"sm90 tf32 d=128 k=1024 chunked",
                       6000,
                       128,
                       1024,
                       FLI_PREC_TF32,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_ARRAY,
                       0,
                       0,
                       0,
                       3,
                       1,
                       2048,
                       0};
        case_vs_ref(t4);
        fit_case t5 = {"sm90 tf32 d=33 k=1024 dev (unaligned rows: portable)",
                       5000,
                       33,
                       1024,
                       FLI_PREC_TF32,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_ARRAY,
                       1,
                       0,
                       0,
                       3,
                       1,
                       0,
                       0};
        case_vs_ref(t5);
        g_backend = FL_BACKEND_CUDA;
        fit_case h5 = {"portable bf16 d=128 k=1024 (same shape)",
                       6000,
                       128,
                       1024,
                       FLI_PREC_BF16,
                       FLI_METRIC_EUCLIDEAN,
                       FLI_KM_INIT_ARRAY,
                       1,
                       1,
                       1,
                       4,
                       1,
                       0,
                       0};
        case_vs_ref(h5);
    }
    printf("edge shapes:\n");
    {
        fit_case e1 = {"n=1 k=1", 1, 5, 1, FLI_PREC_FP32, FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 0, 0, 0,
                       10,        1, 0, 0};
        case_vs_ref(e1);
        fit_case e2 = {"d=1", 3000, 1, 5, FLI_PREC_TF32, FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 1, 0, 0,
                       30,    1,    0, 0};
        case_vs_ref(e2);
        fit_case e3 = {"k=n", 50, 7, 50, FLI_PREC_FP32, FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 0, 0, 0,
                       10,    1,  0, 0};
        case_vs_ref(e3);
        fit_case e4 = {
            "d=300 bf16", 3000, 300, 9, FLI_PREC_BF16, FLI_METRIC_EUCLIDEAN, FLI_KM_INIT_ARRAY, 1, 0, 0,
            20,           1,    0,   0};
        case_vs_ref(e4);
    }
    printf("near-tie convergence (low precision stops like fp32):\n");
    cases_near_tie_convergence(precs, pn);
    printf("reproducibility (the same job twice, bit for bit):\n");
    cases_repeat(precs, pn);
    printf("CUDA graph of the Lloyd loop vs direct launches (bit for bit):\n");
    cases_graph(precs, pn);
    printf("host X through pinned staging vs pageable copies:\n");
    cases_staging();
    printf("kernel variants and the untraced M-step (bit for bit):\n");
    cases_tune(precs, pn);
    printf("init quality:\n");
    case_init_quality(FLI_KM_INIT_KMEANSPP, 1, FLI_PREC_FP32);
    case_init_quality(FLI_KM_INIT_KMEANSPP, 3, FLI_PREC_BF16);
    case_init_quality(FLI_KM_INIT_RANDOM, 10, FLI_PREC_TF32);
    printf("chunked streaming:\n");
    case_chunked();
    printf("failures and cancellation:\n");
    case_alloc_failure();
    printf("assign / transform:\n");
    for (int metric = 0; metric < 3; metric++)
        case_assign((fli_metric)metric, FLI_PREC_FP32, metric & 1);
    case_assign(FLI_METRIC_EUCLIDEAN, FLI_PREC_BF16, 1);
    g_api->ctx_free(&g_env);
    printf("module_check: %d checks, %d failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
