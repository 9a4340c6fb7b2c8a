/*
 * knn_check.c — GPU correctness test of the exact kNN search in
 * libflashlib_cuda.so, driving the module's knn_search entry directly
 * (dlopen + fli_cuda_module_get), independent of the core.
 *
 * Reference: float64 brute force written here, every pair, ties by
 * ascending index. Checks per query, tie-aware (never bitwise where
 * rounding may reorder near-equal distances):
 *   - indices in range, distinct, never the query itself with self
 *     exclusion; results ordered by (distance, index) — inner product
 *     descending — so exact ties come in ascending index order;
 *   - every returned distance is the exact distance of its pair (float64
 *     recomputation, fp32 accumulation tolerance);
 *   - no returned neighbour is farther than the reference k-th (fp32 and
 *     the direct metrics: all; tf32/bf16/fp16: >= 99% recall over a case),
 *     and the j-th returned distance is never below the reference j-th;
 *   - where the reference j-th distance is isolated, the index matches.
 * Cases: every metric x precision; random, clustered and duplicated data;
 * k = 1, k = n_db, pools over the fused limit (general path); self
 * exclusion; strides ld > d; host and device inputs and outputs; a memory
 * budget smaller than the database (streamed chunks, host and device);
 * outputs poisoned (padding columns must stay poisoned); a failing device
 * allocator (DEVICE_OOM, outputs untouched, nothing leaked); repeat runs
 * identical bit for bit.
 *
 * Usage: knn_check [path/to/libflashlib_cuda.so]   (exit status = failures)
 */
#define _GNU_SOURCE
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/cuda/fl_cuda_module.h"

static int g_fail = 0, g_checks = 0;
#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        g_checks++;                                                                                          \
        if (!(cond)) {                                                                                       \
            g_fail++;                                                                                        \
            fprintf(stderr, "FAILED %s: ", #cond);                                                           \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
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

/* ---- the module ---------------------------------------------------------- */
typedef struct alloc_state {
    int fail_at, count, live;
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
    return 0;
}
static void t_free(void *u, int32_t dev, void *p)
{
    alloc_state *a = u;
    (void)dev;
    if (!p)
        return;
    a->live--;
    cudaFree(p);
}
static const fli_cuda_api *g_api;
static fli_cuda_env g_env;
static char g_err[1024];
static alloc_state g_as;
static fl_device_allocator g_hooks = {t_alloc, t_free, &g_as};

/* ---- cases --------------------------------------------------------------- */
enum { DATA_RANDOM = 0, DATA_CLUSTERED = 1, DATA_GRID = 2 };
typedef struct kcase {
    const char *name;
    int64_t n_db, n_q, d, k;
    fli_knn_metric metric;
    double p;
    fli_precision prec;
    int self;
    int64_t q_offset;
    int db_host, q_host, out_host;
    int64_t db_pad, q_pad, out_pad;
    int64_t budget;
    int data;
    int no_dist;
    int64_t n_check; /* queries checked against the reference (0 = all) */
} kcase;

static const char *metric_name(fli_knn_metric m)
{
    static const char *n[] = {"sqeuclidean", "euclidean", "cosine", "inner", "manhattan", "minkowski"};
    return n[m];
}
static const char *prec_name(fli_precision p)
{
    static const char *n[] = {"fp32", "tf32", "bf16", "fp16", "f64"};
    return n[p];
}

/* rank value (smaller is nearer) and reported distance of a pair, float64;
 * *mag: the sum of |terms| (scale of fp32 rounding) */
static double ref_pair(const float *q, const float *x, int64_t d, fli_knn_metric m, double p, double *rep,
                       double *mag)
{
    double s = 0, qq = 0, xx = 0, a = 0;
    for (int64_t j = 0; j < d; j++) {
        double u = q[j], v = x[j], t = u - v;
        switch (m) {
        case FLI_KNN_SQEUCLIDEAN:
        case FLI_KNN_EUCLIDEAN: s += t * t; break;
        case FLI_KNN_MANHATTAN: s += fabs(t); break;
        case FLI_KNN_MINKOWSKI: s += pow(fabs(t), p); break;
        default:
            s += u * v;
            a += fabs(u * v);
            qq += u * u;
            xx += v * v;
        }
    }
    double r;
    switch (m) {
    case FLI_KNN_SQEUCLIDEAN:
        r = s;
        *rep = s;
        *mag = s;
        break;
    case FLI_KNN_EUCLIDEAN:
        r = sqrt(s);
        *rep = r;
        *mag = r;
        break;
    case FLI_KNN_MANHATTAN:
        r = s;
        *rep = s;
        *mag = s;
        break;
    case FLI_KNN_MINKOWSKI:
        r = pow(s, 1 / p);
        *rep = r;
        *mag = r * (1 + p / 8);
        break;
    case FLI_KNN_INNER:
        r = -s;
        *rep = s;
        *mag = a;
        break;
    default:
        r = (qq > 0 && xx > 0) ? 1 - s / (sqrt(qq) * sqrt(xx)) : 1;
        *rep = r;
        *mag = (qq > 0 && xx > 0) ? 1 + a / (sqrt(qq) * sqrt(xx)) : 1;
    }
    return r;
}

typedef struct cand {
    double r;
    int64_t i;
} cand;
static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->r != y->r)
        return x->r < y->r ? -1 : 1;
    return x->i < y->i ? -1 : (x->i > y->i);
}

static float *make_data(int64_t n, int64_t d, int64_t ld, int kind)
{
    float *x = malloc(sizeof(float) * (n * ld + 4));
    for (int64_t i = 0; i < n * ld; i++)
        x[i] = -999.f; /* padding columns: garbage the module must not read */
    int64_t nc = 1 + n / 50;
    float *c = malloc(sizeof(float) * nc * d);
    for (int64_t i = 0; i < nc * d; i++)
        c[i] = (float)(10 * urand() - 5);
    for (int64_t i = 0; i < n; i++) {
        if (kind == DATA_CLUSTERED && i > 10 && urand() < 0.1) { /* exact duplicate of an earlier row */
            int64_t s = (int64_t)(urand() * i) % i;
            memcpy(x + i * ld, x + s * ld, sizeof(float) * d);
            continue;
        }
        int64_t b = (int64_t)(urand() * nc) % nc;
        for (int64_t j = 0; j < d; j++) {
            double v;
            if (kind == DATA_RANDOM)
                v = nrand();
            else if (kind == DATA_CLUSTERED)
                v = c[b * d + j] + 0.3 * nrand();
            else
                v = (double)((int)(urand() * 4)); /* integer grid: many exact ties */
            x[i * ld + j] = (float)v;
        }
    }
    free(c);
    return x;
}

static void *to_dev(const void *h, size_t bytes)
{
    void *p = NULL;
    cudaMalloc(&p, bytes ? bytes : 4);
    cudaMemcpy(p, h, bytes, cudaMemcpyHostToDevice);
    return p;
}

#define POISON_IDX (-77)
static float poison_f(void)
{
    uint32_t u = 0x7fc00123u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static int is_poison_f(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u == 0x7fc00123u;
}

/* Runs the job with outputs poisoned; results copied back into dist/idx
 * (host, n_q x ld). Returns the status. */
static fl_status run_job(const kcase *c, const float *db_h, const float *q_h, float *dist, int64_t *idx,
                         int64_t ldo, fli_knn_job *jout)
{
    const int64_t ldd = c->d + c->db_pad, ldq = c->self ? ldd : c->d + c->q_pad;
    const float pf = poison_f();
    for (int64_t i = 0; i < c->n_q * ldo; i++) {
        dist[i] = pf;
        idx[i] = POISON_IDX;
    }
    void *db_d = NULL, *q_d = NULL, *dist_d = NULL, *idx_d = NULL;
    fli_knn_job j;
    memset(&j, 0, sizeof j);
    j.n_db = c->n_db;
    j.d = c->d;
    j.db_ld = ldd;
    j.n_q = c->n_q;
    j.q_ld = ldq;
    j.dtype = FL_DTYPE_F32;
    j.k = c->k;
    j.metric = c->metric;
    j.p = c->p;
    j.precision = c->prec;
    j.backend = FL_BACKEND_CUDA;
    j.self_exclude = c->self;
    j.q_offset = c->q_offset;
    j.mem_budget = c->budget;
    if (c->db_host) {
        j.db = db_h;
        j.db_dev = -1;
    } else {
        db_d = to_dev(db_h, sizeof(float) * c->n_db * ldd);
        j.db = db_d;
        j.db_dev = 0;
    }
    if (c->self) {
        j.q = (const float *)j.db + c->q_offset * ldd;
        j.q_dev = j.db_dev;
    } else if (c->q_host) {
        j.q = q_h;
        j.q_dev = -1;
    } else {
        q_d = to_dev(q_h, sizeof(float) * c->n_q * ldq);
        j.q = q_d;
        j.q_dev = 0;
    }
    j.dist_ld = ldo;
    j.idx_ld = ldo;
    if (c->out_host) {
        j.dist = c->no_dist ? NULL : dist;
        j.idx = idx;
        j.out_dev = -1;
    } else {
        dist_d = to_dev(dist, sizeof(float) * c->n_q * ldo);
        idx_d = to_dev(idx, sizeof(int64_t) * c->n_q * ldo);
        j.dist = c->no_dist ? NULL : dist_d;
        j.idx = idx_d;
        j.out_dev = 0;
    }
    fl_status st = g_api->knn_search(&g_env, &j);
    if (!c->out_host) {
        cudaMemcpy(dist, dist_d, sizeof(float) * c->n_q * ldo, cudaMemcpyDeviceToHost);
        cudaMemcpy(idx, idx_d, sizeof(int64_t) * c->n_q * ldo, cudaMemcpyDeviceToHost);
    }
    cudaFree(db_d);
    cudaFree(q_d);
    cudaFree(dist_d);
    cudaFree(idx_d);
    if (jout)
        *jout = j;
    return st;
}

static void run_case(const kcase *c)
{
    const int64_t ldd = c->d + c->db_pad, ldq = c->self ? ldd : c->d + c->q_pad, ldo = c->k + c->out_pad;
    const int64_t k = c->k;
    float *db = make_data(c->n_db, c->d, ldd, c->data);
    float *q = c->self ? NULL : make_data(c->n_q, c->d, ldq, c->data == DATA_GRID ? DATA_GRID : DATA_RANDOM);
    if (q && c->data == DATA_CLUSTERED) /* queries near (and on) database rows */
        for (int64_t i = 0; i < c->n_q; i++) {
            int64_t s = (int64_t)(urand() * c->n_db) % c->n_db;
            for (int64_t jj = 0; jj < c->d; jj++)
                q[i * ldq + jj] = db[s * ldd + jj] + (i % 3 ? (float)(0.05 * nrand()) : 0.f);
        }
    const float *qh = c->self ? db + c->q_offset * ldd : q;
    float *dist = malloc(sizeof(float) * c->n_q * ldo), *dist2 = malloc(sizeof(float) * c->n_q * ldo);
    int64_t *idx = malloc(sizeof(int64_t) * c->n_q * ldo), *idx2 = malloc(sizeof(int64_t) * c->n_q * ldo);
    fli_knn_job j;
    g_as.fail_at = 0;
    g_as.count = 0;
    fl_status st = run_job(c, db, q, dist, idx, ldo, &j);
    CHECK(st == FL_STATUS_OK, "%s: status %d: %s", c->name, st, g_err);
    CHECK(g_as.live == 0, "%s: %d device buffers leaked", c->name, g_as.live);
    if (st != FL_STATUS_OK)
        goto done;
    if (c->budget)
        CHECK(!c->db_host || j.stat_streamed_rows >= c->n_db, "%s: streamed %lld rows", c->name,
              (long long)j.stat_streamed_rows);
    /* repeat: identical bit for bit */
    st = run_job(c, db, q, dist2, idx2, ldo, NULL);
    CHECK(st == FL_STATUS_OK && !memcmp(idx, idx2, sizeof(int64_t) * c->n_q * ldo) &&
              (c->no_dist || !memcmp(dist, dist2, sizeof(float) * c->n_q * ldo)),
          "%s: second run differs", c->name);

    const int low =
        c->prec != FLI_PREC_FP32 && c->metric != FLI_KNN_MANHATTAN && c->metric != FLI_KNN_MINKOWSKI;
    const int64_t nchk = c->n_check && c->n_check < c->n_q ? c->n_check : c->n_q;
    cand *cs = malloc(sizeof(cand) * c->n_db);
    double *mags = malloc(sizeof(double) * c->n_db);
    int64_t miss = 0, total = 0, bad_order = 0, bad_exact = 0, bad_pos = 0, bad_idx = 0, bad_pad = 0,
            bad_match = 0;
    char *seen = calloc((size_t)c->n_db, 1);
    for (int64_t i = 0; i < nchk; i++) {
        const int64_t qi = c->n_check ? (i * (c->n_q / nchk)) : i;
        const float *qr = qh + qi * ldq;
        int64_t n = 0;
        for (int64_t x = 0; x < c->n_db; x++) {
            if (c->self && x == c->q_offset + qi)
                continue;
            double rep, mag;
            cs[n].r = ref_pair(qr, db + x * ldd, c->d, c->metric, c->p, &rep, &mag);
            cs[n].i = x;
            mags[x] = mag;
            n++;
        }
        qsort(cs, (size_t)n, sizeof(cand), cand_cmp);
        const float *gd = dist + qi * ldo;
        const int64_t *gi = idx + qi * ldo;
        const double kth = cs[k - 1].r, tolk = 2e-5 * mags[cs[k - 1].i] + 1e-6;
        for (int64_t t = k; t < ldo; t++)
            bad_pad += !(is_poison_f(gd[t]) && gi[t] == POISON_IDX);
        double prev_r = -INFINITY;
        int64_t prev_i = -1;
        for (int64_t t = 0; t < k; t++) {
            const int64_t x = gi[t];
            total++;
            if (x < 0 || x >= c->n_db || (c->self && x == c->q_offset + qi) || seen[x]) {
                bad_idx++;
                continue;
            }
            seen[x] = 1;
            double rep, mag;
            const double r = ref_pair(qr, db + x * ldd, c->d, c->metric, c->p, &rep, &mag);
            const double tol = 2e-5 * mag + 1e-6;
            if (!c->no_dist) {
                if (!(fabs((double)gd[t] - rep) <= tol))
                    bad_exact++;
                /* order by the returned value, ties by index */
                const double gr = c->metric == FLI_KNN_INNER ? -(double)gd[t] : (double)gd[t];
                if (gr < prev_r || (gr == prev_r && x < prev_i))
                    bad_order++;
                prev_r = gr;
                prev_i = x;
            }
            if (r > kth + tolk)
                miss++;
            if (r < cs[t].r - 2e-5 * mags[cs[t].i] - 1e-6)
                bad_pos++;
            /* an isolated reference distance: the same index */
            if (!low) {
                const double tt = 2e-5 * mags[cs[t].i] + 1e-6;
                const int iso = (t == 0 || cs[t - 1].r < cs[t].r - 2 * tt) &&
                                (t + 1 >= n || cs[t + 1].r > cs[t].r + 2 * tt);
                if (iso && x != cs[t].i)
                    bad_match++;
            }
        }
        for (int64_t t = 0; t < k; t++)
            if (gi[t] >= 0 && gi[t] < c->n_db)
                seen[gi[t]] = 0;
    }
    const double recall = 1.0 - (double)miss / (double)(total ? total : 1);
    CHECK(bad_idx == 0, "%s: %lld bad/duplicate/self indices", c->name, (long long)bad_idx);
    CHECK(bad_pad == 0, "%s: %lld padding entries written", c->name, (long long)bad_pad);
    CHECK(bad_exact == 0, "%s: %lld distances not exact for their pair", c->name, (long long)bad_exact);
    CHECK(bad_order == 0, "%s: %lld order/tie violations", c->name, (long long)bad_order);
    CHECK(bad_pos == 0, "%s: %lld distances below the reference j-th", c->name, (long long)bad_pos);
    CHECK(bad_match == 0, "%s: %lld isolated positions with another index", c->name, (long long)bad_match);
    CHECK(low ? recall >= 0.99 : miss == 0, "%s: recall %.5f (%lld misses)", c->name, recall,
          (long long)miss);
    printf("  %-58s ok=%s recall=%.5f reranked=%lld streamed=%lld\n", c->name,
           (bad_idx | bad_pad | bad_exact | bad_order | bad_pos | bad_match) ? "NO" : "yes", recall,
           (long long)j.stat_reranked, (long long)j.stat_streamed_rows);
    free(cs);
    free(mags);
    free(seen);
done:
    free(db);
    free(q);
    free(dist);
    free(dist2);
    free(idx);
    free(idx2);
}

/* A failing allocator: every first N allocations fail in turn until the
 * call succeeds; each failure is DEVICE_OOM with outputs untouched and
 * nothing leaked. */
static void alloc_failures(const kcase *c)
{
    const int64_t ldo = c->k + c->out_pad;
    float *db = make_data(c->n_db, c->d, c->d + c->db_pad, DATA_RANDOM);
    float *q = make_data(c->n_q, c->d, c->d + c->q_pad, DATA_RANDOM);
    float *dist = malloc(sizeof(float) * c->n_q * ldo);
    int64_t *idx = malloc(sizeof(int64_t) * c->n_q * ldo);
    int ok = 0;
    for (int n = 1; n < 40 && !ok; n++) {
        g_as.fail_at = n;
        g_as.count = 0;
        fl_status st = run_job(c, db, q, dist, idx, ldo, NULL);
        if (st == FL_STATUS_OK) {
            ok = 1;
            CHECK(n > 1, "%s: no allocation at all", c->name);
            break;
        }
        CHECK(st == FL_STATUS_DEVICE_OOM, "%s: fail_at=%d gave %d: %s", c->name, n, st, g_err);
        int untouched = 1;
        for (int64_t i = 0; i < c->n_q * ldo; i++)
            untouched &= is_poison_f(dist[i]) && idx[i] == POISON_IDX;
        CHECK(untouched, "%s: fail_at=%d wrote outputs", c->name, n);
        CHECK(g_as.live == 0, "%s: fail_at=%d leaked %d buffers", c->name, n, g_as.live);
    }
    g_as.fail_at = 0;
    CHECK(ok, "%s: never succeeded", c->name);
    printf("  %-58s allocation failures: ok\n", c->name);
    free(db);
    free(q);
    free(dist);
    free(idx);
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
    g_env.h2d_staging = 1; /* the core's default: host arrays through pinned staging */
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
    }
    printf("knn_check on %s (cc %d.%d), Hopper scan %s\n", prop.name, prop.major, prop.minor,
           g_env.sm90_enabled ? "on" : "off");

    const fli_precision precs[4] = {FLI_PREC_FP32, FLI_PREC_TF32, FLI_PREC_BF16, FLI_PREC_FP16};
    char names[64][96];
    int nn = 0;
    kcase c;
    /* every metric x precision, random data, d not a multiple of anything */
    for (int m = 0; m <= FLI_KNN_MINKOWSKI; m++)
        for (int pi = 0; pi < 4; pi++) {
            memset(&c, 0, sizeof c);
            snprintf(names[nn % 64], 96, "%s %s random 3000x50 q=200 k=10", metric_name(m),
                     prec_name(precs[pi]));
            c.name = names[nn++ % 64];
            c.n_db = 3000;
            c.n_q = 200;
            c.d = 50;
            c.k = 10;
            c.metric = m;
            c.p = m == FLI_KNN_MINKOWSKI ? 3.0 : 2.0;
            c.prec = precs[pi];
            c.db_host = c.q_host = c.out_host = (pi & 1);
            run_case(&c);
        }
    /* clustered data with exact duplicates (ties by index), each precision */
    for (int pi = 0; pi < 4; pi++) {
        for (int m = 0; m < 4; m++) {
            memset(&c, 0, sizeof c);
            snprintf(names[nn % 64], 96, "%s %s clustered+dups 4000x64 q=300 k=16", metric_name(m),
                     prec_name(precs[pi]));
            c.name = names[nn++ % 64];
            c.n_db = 4000;
            c.n_q = 300;
            c.d = 64;
            c.k = 16;
            c.metric = m;
            c.prec = precs[pi];
            c.data = DATA_CLUSTERED;
            run_case(&c);
        }
    }
    /* integer grid: massive exact ties (every precision is exact on it) */
    for (int pi = 0; pi < 4; pi++) {
        memset(&c, 0, sizeof c);
        snprintf(names[nn % 64], 96, "sqeuclidean %s grid ties 2000x8 q=100 k=20", prec_name(precs[pi]));
        c.name = names[nn++ % 64];
        c.n_db = 2000;
        c.n_q = 100;
        c.d = 8;
        c.k = 20;
        c.metric = FLI_KNN_SQEUCLIDEAN;
        c.prec = precs[pi];
        c.data = DATA_GRID;
        run_case(&c);
    }
    /* k = 1, k = n_db, k over the fused pool (general path), k = 100 */
    const int64_t ks[5] = {1, 100, 200, 700, 1500};
    for (int t = 0; t < 5; t++)
        for (int pi = 0; pi < 3; pi++) {
            memset(&c, 0, sizeof c);
            const int64_t ndb = t == 4 ? 1500 : 3000;
            snprintf(names[nn % 64], 96, "euclidean %s k=%lld n_db=%lld%s", prec_name(precs[pi]),
                     (long long)ks[t], (long long)ndb, ks[t] == ndb ? " (k = n_db)" : "");
            c.name = names[nn++ % 64];
            c.n_db = ndb;
            c.n_q = 64;
            c.d = 40;
            c.k = ks[t];
            c.metric = FLI_KNN_EUCLIDEAN;
            c.prec = precs[pi];
            c.data = DATA_CLUSTERED;
            c.out_host = t & 1;
            run_case(&c);
        }
    /* self exclusion, strides, host/device mixes, no dist */
    for (int t = 0; t < 8; t++) {
        memset(&c, 0, sizeof c);
        snprintf(names[nn % 64], 96, "self-kNN %s strides db_host=%d out_host=%d%s", prec_name(precs[t & 3]),
                 t & 1, (t >> 1) & 1, t >= 6 ? " idx only" : "");
        c.name = names[nn++ % 64];
        c.n_db = 2500;
        c.n_q = 400;
        c.d = 33;
        c.k = t < 4 ? 16 : 5;
        c.metric = (t & 2) ? FLI_KNN_COSINE : FLI_KNN_SQEUCLIDEAN;
        c.prec = precs[t & 3];
        c.self = 1;
        c.q_offset = 1000 + t;
        c.db_host = t & 1;
        c.out_host = (t >> 1) & 1;
        c.db_pad = 3;
        c.out_pad = 2;
        c.data = DATA_CLUSTERED;
        c.no_dist = t >= 6;
        run_case(&c);
    }
    for (int t = 0; t < 4; t++) {
        memset(&c, 0, sizeof c);
        snprintf(names[nn % 64], 96, "inner %s q strides host q=%d", prec_name(precs[t]), t & 1);
        c.name = names[nn++ % 64];
        c.n_db = 3000;
        c.n_q = 130;
        c.d = 70;
        c.k = 12;
        c.metric = FLI_KNN_INNER;
        c.prec = precs[t];
        c.q_host = t & 1;
        c.db_pad = 5;
        c.q_pad = 7;
        c.out_pad = 3;
        run_case(&c);
    }
    /* tiny shapes */
    {
        memset(&c, 0, sizeof c);
        c.name = "n_db=1 n_q=1 d=1 k=1 tf32";
        c.n_db = 1;
        c.n_q = 1;
        c.d = 1;
        c.k = 1;
        c.prec = FLI_PREC_TF32;
        run_case(&c);
        c.name = "n_db=5 n_q=3 d=1 k=5 fp32 manhattan";
        c.n_db = 5;
        c.n_q = 3;
        c.k = 5;
        c.metric = FLI_KNN_MANHATTAN;
        c.prec = FLI_PREC_FP32;
        run_case(&c);
        c.name = "d=300 (queries not resident) bf16";
        c.n_db = 2000;
        c.n_q = 150;
        c.d = 300;
        c.k = 10;
        c.metric = FLI_KNN_SQEUCLIDEAN;
        c.prec = FLI_PREC_BF16;
        run_case(&c);
        c.name = "d=300 tf32 k=60";
        c.prec = FLI_PREC_TF32;
        c.k = 60;
        run_case(&c);
        /* the Hopper scan (n_q >= 1024): the widest rows (four 128-byte
         * blocks), pools of 2 and 8 warps' registers, ragged query blocks */
        c.name = "d=200 bf16 k=10 q=1100";
        c.n_q = 1100;
        c.n_check = 300;
        c.d = 200;
        c.k = 10;
        c.prec = FLI_PREC_BF16;
        run_case(&c);
        c.name = "d=128 tf32 k=30 q=1100 cosine";
        c.d = 128;
        c.k = 30;
        c.metric = FLI_KNN_COSINE;
        c.prec = FLI_PREC_TF32;
        run_case(&c);
        c.name = "d=64 fp16 k=100 q=1100 inner";
        c.d = 64;
        c.k = 100;
        c.metric = FLI_KNN_INNER;
        c.prec = FLI_PREC_FP16;
        run_case(&c);
        c.n_check = 0;
    }
    /* streamed: a memory budget far below the database */
    for (int t = 0; t < 6; t++) {
        memset(&c, 0, sizeof c);
        static const char *sn[6] = {
            "streamed host db tf32 (2 MB budget)",   "streamed host db bf16 + self (2 MB)",
            "streamed device db bf16 (2 MB)",        "streamed host db fp32 manhattan (2 MB)",
            "streamed host db general k=300 (4 MB)", "streamed host q+db many q chunks (1 MB)"};
        c.name = sn[t];
        c.n_db = 20000;
        c.n_q = t == 5 ? 3000 : 100;
        c.d = 64;
        c.k = t == 4 ? 300 : 10;
        c.metric = t == 3 ? FLI_KNN_MANHATTAN : FLI_KNN_SQEUCLIDEAN;
        c.prec = t == 0 || t == 5 ? FLI_PREC_TF32 : (t == 3 || t == 4 ? FLI_PREC_FP32 : FLI_PREC_BF16);
        c.db_host = t != 2;
        c.q_host = 1;
        c.out_host = t & 1;
        c.self = t == 1;
        c.q_offset = t == 1 ? 500 : 0;
        c.budget = t == 4 ? (4 << 20) : (t == 5 ? (1 << 20) : (2 << 20));
        c.data = DATA_CLUSTERED;
        c.n_check = t == 5 ? 300 : 0;
        run_case(&c);
    }
    /* larger: the multi-slice scan on a realistic shape (checked subset) */
    for (int pi = 1; pi < 4; pi++) {
        memset(&c, 0, sizeof c);
        snprintf(names[nn % 64], 96, "sqeuclidean %s 200000x128 q=1100 k=10 (50 checked)",
                 prec_name(precs[pi]));
        c.name = names[nn++ % 64];
        c.n_db = 200000;
        c.n_q = 1100;
        c.d = 128;
        c.k = 10;
        c.prec = precs[pi];
        c.n_check = 50;
        run_case(&c);
    }
    /* allocation failures */
    {
        memset(&c, 0, sizeof c);
        c.name = "alloc failures: host everything bf16";
        c.n_db = 3000;
        c.n_q = 100;
        c.d = 32;
        c.k = 8;
        c.prec = FLI_PREC_BF16;
        c.db_host = c.q_host = c.out_host = 1;
        c.out_pad = 1;
        alloc_failures(&c);
        c.name = "alloc failures: general path, streamed";
        c.k = 400;
        c.prec = FLI_PREC_FP32;
        c.budget = 1 << 20;
        alloc_failures(&c);
        c.name = "alloc failures: device outputs tf32";
        c.k = 10;
        c.budget = 0;
        c.prec = FLI_PREC_TF32;
        c.out_host = 0;
        alloc_failures(&c);
    }
    /* invalid arguments leave everything untouched */
    {
        fli_knn_job j;
        memset(&j, 0, sizeof j);
        j.n_db = 10;
        j.d = 4;
        j.db_ld = 4;
        j.q_ld = 4;
        j.n_q = 1;
        j.k = 11;
        j.dtype = FL_DTYPE_F32;
        int64_t ix[11];
        j.idx = ix;
        j.idx_ld = 11;
        j.db_dev = j.q_dev = j.out_dev = -1;
        float dbv[40] = {0}, qv[4] = {0};
        j.db = dbv;
        j.q = qv;
        CHECK(g_api->knn_search(&g_env, &j) == FL_STATUS_INVALID_ARG, "k > n_db accepted");
        j.k = 10;
        j.self_exclude = 1;
        CHECK(g_api->knn_search(&g_env, &j) == FL_STATUS_INVALID_ARG,
              "k = n_db with self exclusion accepted");
        j.self_exclude = 0;
        j.dtype = FL_DTYPE_F64;
        CHECK(g_api->knn_search(&g_env, &j) == FL_STATUS_INVALID_ARG, "f64 accepted");
    }
    g_api->ctx_free(&g_env);
    printf("knn_check: %d checks, %d passed, %d failed\n", g_checks, g_checks - g_fail, g_fail);
    return g_fail ? 1 : 0;
}
