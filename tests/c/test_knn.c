/* test_knn.c — exact nearest neighbours on the CPU backend against a float64
 * brute force written here (tie-aware: where two reference distances are
 * within the tolerance either order is accepted, elsewhere the indices must
 * match exactly), every metric in float32 and float64, edge shapes, ties by
 * index, self-exclusion, radius searches, thread-count determinism, model
 * save/load, and bad input that must leave the outputs untouched. */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "flashlib.h"

enum { M_SQ, M_EUC, M_COS, M_INNER, M_MAN, M_MINK };

/* The reference distance in float64. */
static double ref_dist(int m, double p, const double *q, const double *x, long d)
{
    double s = 0, qq = 0, xx = 0;
    for (long f = 0; f < d; f++) {
        const double v = q[f] - x[f];
        switch (m) {
        case M_SQ:
        case M_EUC: s += v * v; break;
        case M_COS:
            s += q[f] * x[f];
            qq += q[f] * q[f];
            xx += x[f] * x[f];
            break;
        case M_INNER: s += q[f] * x[f]; break;
        case M_MAN: s += fabs(v); break;
        default: s += pow(fabs(v), p);
        }
    }
    if (m == M_EUC)
        return sqrt(s);
    if (m == M_COS)
        return 1.0 - (qq > 0 && xx > 0 ? s / sqrt(qq * xx) : 0.0);
    if (m == M_MINK)
        return pow(s, 1.0 / p);
    return s;
}

typedef struct ref_pair {
    double key, d;
    long i;
} ref_pair;

static int pair_cmp(const void *a, const void *b)
{
    const ref_pair *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Every database row sorted for query q (nearest first, ties by index);
 * `self` (or -1) left out. Returns the count. */
static long ref_sorted(int m, double p, const double *q, const double *X, long n, long d, long self,
                       ref_pair *out)
{
    long c = 0;
    for (long i = 0; i < n; i++) {
        if (i == self)
            continue;
        const double v = ref_dist(m, p, q, X + i * d, d);
        out[c++] = (ref_pair){m == M_INNER ? -v : v, v, i};
    }
    qsort(out, (size_t)c, sizeof *out, pair_cmp);
    return c;
}

/* Checks one result row (k entries) against the reference: distances
 * within tol of the reference's, sorted, no repeated index, and indices
 * equal wherever the reference distance is separated from its neighbours
 * in the ranking by more than tol; elsewhere the returned index's own
 * reference distance must match. Returns the number of problems. */
static int check_row(int m, double p, const double *q, const double *X, long d, const ref_pair *ref,
                     long nref, long k, const double *dist, const int64_t *idx, double tol, long qi,
                     const char *what)
{
    int bad = 0;
    for (long j = 0; j < k; j++) {
        const double rd = ref[j].d;
        const double scale = 1.0 + fabs(rd);
        if (fabs(dist[j] - rd) > tol * scale) {
            if (bad++ < 3)
                fprintf(stderr, "%s q%ld j%ld: dist %.9g ref %.9g\n", what, qi, j, dist[j], rd);
        }
        if (j > 0 && (m == M_INNER ? dist[j] > dist[j - 1] : dist[j] < dist[j - 1])) {
            if (bad++ < 3)
                fprintf(stderr, "%s q%ld j%ld: not sorted\n", what, qi, j);
        }
        if (j > 0 && dist[j] == dist[j - 1] && idx[j] < idx[j - 1]) {
            if (bad++ < 3)
                fprintf(stderr, "%s q%ld j%ld: equal distances not by index\n", what, qi, j);
        }
        for (long t = 0; t < j; t++)
            if (idx[t] == idx[j] && bad++ < 3)
                fprintf(stderr, "%s q%ld: index %lld twice\n", what, qi, (long long)idx[j]);
        const int sep_prev = j == 0 || fabs(ref[j - 1].d - rd) > tol * scale;
        const int sep_next = j + 1 >= nref || fabs(ref[j + 1].d - rd) > tol * scale;
        if (sep_prev && sep_next) {
            if (idx[j] != ref[j].i && bad++ < 3)
                fprintf(stderr, "%s q%ld j%ld: index %lld, reference %ld (d %.9g)\n", what, qi, j,
                        (long long)idx[j], ref[j].i, rd);
        } else {
            const double own = ref_dist(m, p, q, X + idx[j] * d, d);
            if (fabs(own - rd) > tol * scale && bad++ < 3)
                fprintf(stderr, "%s q%ld j%ld: tied index %lld has distance %.9g, reference %.9g\n", what, qi,
                        j, (long long)idx[j], own, rd);
        }
    }
    return bad;
}

static const char *metric_word(int m)
{
    static const char *const w[] = {"sqeuclidean",   "euclidean", "cosine",
                                    "inner_product", "manhattan", "minkowski"};
    return w[m];
}

static fl_params *knn_params(fl_ctx *ctx, int m, double p)
{
    fl_params *prm;
    fl_params_create(ctx, "knn", &prm);
    fl_params_set(ctx, prm, "metric", metric_word(m));
    if (m == M_MINK)
        fl_params_set_float(ctx, prm, "p", p);
    return prm;
}

/* Random data with structure: blobs, shifted away from the origin (the GEMM
 * form's hard case), a few exact duplicates and a zero row. */
static void make_data(double *X, long n, long d, double shift)
{
    float *Xf = malloc(sizeof(float) * (size_t)(n * d));
    int *truth = malloc(sizeof(int) * (size_t)n);
    make_blobs(Xf, truth, n, d, 7, 4.0, 1.0);
    for (long i = 0; i < n * d; i++)
        X[i] = (double)Xf[i] + shift;
    if (n > 20) {
        memcpy(X + 17 * d, X + 3 * d, sizeof(double) * (size_t)d); /* duplicates */
        memcpy(X + 18 * d, X + 3 * d, sizeof(double) * (size_t)d);
        memset(X + 5 * d, 0, sizeof(double) * (size_t)d); /* a zero row */
    }
    free(Xf);
    free(truth);
}

/* One search (float32 or float64 data) against the reference. Q NULL =
 * self search. Returns the problem count. */
/* float64 tolerance: the CPU computes in float64; the GPU in float32 */
static double g_f64_tol = 1e-10;

static int run_case(fl_ctx *ctx, int m, double p, const double *X, long n, const double *Q, long nq, long d,
                    long k, fl_dtype dt)
{
    const int self = Q == NULL;
    const long rows = self ? n : nq;
    const double *Qd = self ? X : Q;
    const size_t es = fl_dtype_size(dt);
    void *xb = malloc(es * (size_t)(n * d)), *qb = self ? NULL : malloc(es * (size_t)(nq * d));
    for (long i = 0; i < n * d; i++) {
        if (dt == FL_DTYPE_F32)
            ((float *)xb)[i] = (float)X[i];
        else
            ((double *)xb)[i] = X[i];
    }
    for (long i = 0; !self && i < nq * d; i++) {
        if (dt == FL_DTYPE_F32)
            ((float *)qb)[i] = (float)Q[i];
        else
            ((double *)qb)[i] = Q[i];
    }
    /* the reference sees exactly the values searched */
    double *Xr = malloc(sizeof(double) * (size_t)(n * d)), *Qr = malloc(sizeof(double) * (size_t)(rows * d));
    for (long i = 0; i < n * d; i++)
        Xr[i] = dt == FL_DTYPE_F32 ? (double)((float *)xb)[i] : X[i];
    for (long i = 0; i < rows * d; i++)
        Qr[i] = dt == FL_DTYPE_F32 ? (double)(float)Qd[i] : Qd[i];
    void *db = malloc(es * (size_t)(rows * k));
    int64_t *ib = malloc(sizeof(int64_t) * (size_t)(rows * k));
    fl_array xa = fl_array_host(xb, dt, n, d), qa = fl_array_host(qb, dt, nq, d);
    fl_array da = fl_array_host(db, dt, rows, k), ia = fl_array_host(ib, FL_DTYPE_I64, rows, k);
    fl_params *prm = knn_params(ctx, m, p);
    int bad = 0;
    fl_status st = fl_knn_search(ctx, &xa, self ? NULL : &qa, k, prm, &da, &ia);
    CHECK_MSG(st == FL_STATUS_OK, "search %s %s k=%ld: %s", metric_word(m), fl_dtype_name(dt), k,
              fl_ctx_last_error(ctx));
    if (st == FL_STATUS_OK) {
        ref_pair *ref = malloc(sizeof(ref_pair) * (size_t)n);
        double *dd = malloc(sizeof(double) * (size_t)k);
        const double tol = dt == FL_DTYPE_F32 ? 2e-5 : g_f64_tol;
        char what[64];
        snprintf(what, sizeof what, "%s/%s/k=%ld%s", metric_word(m), fl_dtype_name(dt), k,
                 self ? "/self" : "");
        for (long i = 0; i < rows; i++) {
            const long nref = ref_sorted(m, p, Qr + i * d, Xr, n, d, self ? i : -1, ref);
            for (long j = 0; j < k; j++)
                dd[j] = dt == FL_DTYPE_F32 ? ((float *)db)[i * k + j] : ((double *)db)[i * k + j];
            bad += check_row(m, p, Qr + i * d, Xr, d, ref, nref, k, dd, ib + i * k, tol, i, what);
        }
        CHECK_MSG(bad == 0, "%s: %d problems", what, bad);
        free(ref);
        free(dd);
    }
    fl_params_free(prm);
    free(xb);
    free(qb);
    free(Xr);
    free(Qr);
    free(db);
    free(ib);
    return bad;
}

static void test_metrics(fl_ctx *ctx)
{
    enum { N = 700, NQ = 90, D = 11 };
    double *X = malloc(sizeof(double) * N * D), *Q = malloc(sizeof(double) * NQ * D);
    make_data(X, N, D, 0.0);
    make_data(Q, NQ, D, 0.5);
    for (int m = M_SQ; m <= M_MINK; m++) {
        for (int t = 0; t < 2; t++) {
            const fl_dtype dt = t ? FL_DTYPE_F64 : FL_DTYPE_F32;
            run_case(ctx, m, 3.0, X, N, Q, NQ, D, 7, dt);
            run_case(ctx, m, 3.0, X, N, NULL, 0, D, 5, dt);
        }
    }
    /* several database tiles, segments and query blocks (d = 3: tiles of
     * 2048 rows) */
    enum { NB = 5000, DB = 3 };
    double *Xb = malloc(sizeof(double) * NB * DB);
    make_data(Xb, NB, DB, 2.0);
    run_case(ctx, M_EUC, 2, Xb, NB, Q, 30, DB, 15, FL_DTYPE_F32);
    run_case(ctx, M_MAN, 1, Xb, NB, Q, 30, DB, 15, FL_DTYPE_F64);
    run_case(ctx, M_COS, 1, Xb, 2100, NULL, 0, DB, 4, FL_DTYPE_F64);
    free(Xb);
    /* k = 1 and k = n (every row, the whole order) */
    run_case(ctx, M_EUC, 2, X, N, Q, NQ, D, 1, FL_DTYPE_F32);
    run_case(ctx, M_EUC, 2, X, 300, Q, 20, D, 300, FL_DTYPE_F64);
    run_case(ctx, M_MAN, 1, X, 300, NULL, 0, D, 299, FL_DTYPE_F32);
    run_case(ctx, M_INNER, 1, X, 300, Q, 20, D, 300, FL_DTYPE_F32);
    free(X);
    free(Q);
}

/* Data far from the origin: the GEMM form ||q||^2 + ||x||^2 - 2<q,x> loses
 * everything in float32 there unless the backend centres it. */
static void test_shifted(fl_ctx *ctx)
{
    enum { N = 400, NQ = 40, D = 16 };
    double *X = malloc(sizeof(double) * N * D), *Q = malloc(sizeof(double) * NQ * D);
    make_data(X, N, D, 1000.0);
    make_data(Q, NQ, D, 1000.5);
    run_case(ctx, M_EUC, 2, X, N, Q, NQ, D, 10, FL_DTYPE_F32);
    run_case(ctx, M_SQ, 2, X, N, NULL, 0, D, 10, FL_DTYPE_F32);
    free(X);
    free(Q);
}

/* Tiny and degenerate shapes: n = 1, d = 1, ties everywhere. */
static void test_small_shapes(fl_ctx *ctx)
{
    double one[3] = {1, 2, 3};
    double q[6] = {0, 0, 0, 1, 2, 3};
    run_case(ctx, M_EUC, 2, one, 1, q, 2, 3, 1, FL_DTYPE_F64);
    double line[9] = {5, 1, 4, 1, 5, 9, 2, 6, 5};
    double lq[2] = {5, 1};
    for (int m = M_SQ; m <= M_MINK; m++) {
        run_case(ctx, m, 1.5, line, 9, lq, 2, 1, 9, FL_DTYPE_F64);
        run_case(ctx, m, 1.5, line, 9, NULL, 0, 1, 8, FL_DTYPE_F32);
    }
}

/* Exact duplicates come out by index; the inner product is largest first;
 * a zero row has cosine 0 (distance 1) to everything. */
static void test_ties_and_orders(fl_ctx *ctx)
{
    double X[6 * 2] = {0, 1, 3, 3, 9, 9, 3, 3, 3, 3, 1, 0};
    double q[2] = {3, 3};
    double dist[4];
    int64_t idx[4];
    fl_array xa = fl_array_host(X, FL_DTYPE_F64, 6, 2), qa = fl_array_host(q, FL_DTYPE_F64, 1, 2);
    fl_array da = fl_array_host(dist, FL_DTYPE_F64, 1, 4), ia = fl_array_host(idx, FL_DTYPE_I64, 1, 4);
    CHECK_OK(ctx, fl_knn_search(ctx, &xa, &qa, 4, NULL, &da, &ia));
    CHECK(idx[0] == 1 && idx[1] == 3 && idx[2] == 4 && dist[0] == 0 && dist[1] == 0 && dist[2] == 0);
    CHECK(dist[3] == sqrt(13.0) && idx[3] == 0); /* rows 0 and 5 tie at sqrt(13): the lower index */

    fl_params *ip = knn_params(ctx, M_INNER, 2);
    CHECK_OK(ctx, fl_knn_search(ctx, &xa, &qa, 4, ip, &da, &ia));
    CHECK(idx[0] == 2 && dist[0] == 54); /* (9,9): the largest product */
    CHECK(idx[1] == 1 && idx[2] == 3 && idx[3] == 4 && dist[1] == 18 && dist[3] == 18);
    fl_params_free(ip);

    fl_params *cp = knn_params(ctx, M_COS, 2);
    double zero[2] = {0, 0};
    fl_array za = fl_array_host(zero, FL_DTYPE_F64, 1, 2);
    CHECK_OK(ctx, fl_knn_search(ctx, &xa, &za, 4, cp, &da, &ia));
    CHECK(dist[0] == 1 && dist[3] == 1 && idx[0] == 0 && idx[1] == 1 && idx[2] == 2 && idx[3] == 3);
    /* (3,3), (9,9) and the duplicates are at cosine distance 0 from (1,1) */
    double q11[2] = {1, 1};
    fl_array q11a = fl_array_host(q11, FL_DTYPE_F64, 1, 2);
    CHECK_OK(ctx, fl_knn_search(ctx, &xa, &q11a, 4, cp, &da, &ia));
    CHECK(idx[0] == 1 && idx[1] == 2 && idx[2] == 3 && idx[3] == 4);
    CHECK(fabs(dist[0]) < 1e-15 && fabs(dist[3]) < 1e-15);
    fl_params_free(cp);

    /* self search over duplicates: a point is left out, its twins are not */
    double sd[6];
    int64_t si[6];
    fl_array sda = fl_array_host(sd, FL_DTYPE_F64, 6, 1), sia = fl_array_host(si, FL_DTYPE_I64, 6, 1);
    CHECK_OK(ctx, fl_knn_search(ctx, &xa, NULL, 1, NULL, &sda, &sia));
    CHECK(si[1] == 3 && si[3] == 1 && si[4] == 1 && sd[1] == 0 && si[2] != 2);
}

/* Reference radius search of one query: the count, and the sum of indices. */
static long ref_radius(int m, double p, const double *q, const double *X, long n, long d, long self, double r,
                       long *idsum)
{
    long c = 0;
    *idsum = 0;
    for (long i = 0; i < n; i++) {
        if (i == self)
            continue;
        const double v = ref_dist(m, p, q, X + i * d, d);
        if (m == M_INNER ? v >= r : v <= r) {
            c++;
            *idsum += i;
        }
    }
    return c;
}

static void test_radius(fl_ctx *ctx)
{
    enum { N = 300, NQ = 25, D = 5 };
    double *X = malloc(sizeof(double) * N * D), *Q = malloc(sizeof(double) * NQ * D);
    make_data(X, N, D, 0.0);
    make_data(Q, NQ, D, 0.3);
    const double radii[] = {2.0, 2.0, 0.3, 20.0, 4.0, 3.0};
    for (int m = M_SQ; m <= M_MINK; m++) {
        fl_params *prm = knn_params(ctx, m, 3.0);
        fl_model *mod;
        fl_array xa = fl_array_host(X, FL_DTYPE_F64, N, D), qa = fl_array_host(Q, FL_DTYPE_F64, NQ, D);
        CHECK_OK(ctx, fl_knn_fit(ctx, &xa, prm, &mod));
        for (int self = 0; self < 2; self++) {
            fl_neighbors nb_s, nb_u;
            memset(&nb_s, 0, sizeof nb_s);
            memset(&nb_u, 0, sizeof nb_u);
            const fl_array *qx = self ? NULL : &qa;
            const long rows = self ? N : NQ;
            const double *Qd = self ? X : Q;
            CHECK_OK(ctx, fl_model_radius_neighbors(mod, qx, radii[m], 1, &nb_s));
            CHECK_OK(ctx, fl_model_radius_neighbors(mod, qx, radii[m], 0, &nb_u));
            CHECK(nb_s.n_rows == rows && nb_u.nnz == nb_s.nnz && nb_s.dtype == FL_DTYPE_F64);
            long total = 0;
            int bad = 0;
            for (long i = 0; i < rows && nb_s.indptr; i++) {
                long idsum;
                const long c = ref_radius(m, 3.0, Qd + i * D, X, N, D, self ? i : -1, radii[m], &idsum);
                total += c;
                const int64_t a = nb_s.indptr[i], b = nb_s.indptr[i + 1];
                long s1 = 0, s2 = 0;
                for (int64_t e = a; e < b; e++) {
                    s1 += nb_s.indices[e];
                    s2 += nb_u.indices[e];
                    const double *ds = nb_s.distances, *du = nb_u.distances;
                    const double want = ref_dist(m, 3.0, Qd + i * D, X + nb_s.indices[e] * D, D);
                    bad += fabs(ds[e] - want) > 1e-10 * (1 + fabs(want));
                    bad += nb_s.indices[e] == (self ? i : -1);
                    if (e > a) {
                        bad += m == M_INNER ? ds[e] > ds[e - 1] : ds[e] < ds[e - 1];
                        bad += ds[e] == ds[e - 1] && nb_s.indices[e] < nb_s.indices[e - 1];
                        bad += nb_u.indices[e] <= nb_u.indices[e - 1]; /* unsorted: database order */
                    }
                    (void)du;
                }
                bad += b - a != c || s1 != idsum || s2 != idsum;
            }
            CHECK_MSG(bad == 0 && nb_s.nnz == total, "radius %s self=%d: %d problems, nnz %lld vs %ld",
                      metric_word(m), self, bad, (long long)nb_s.nnz, total);
            CHECK_MSG(total > 0, "radius %s self=%d found nothing", metric_word(m), self);
            fl_neighbors_free(&nb_s);
            fl_neighbors_free(&nb_u);
            CHECK(nb_s.indptr == NULL && nb_s.nnz == 0);
        }
        /* radius NAN: the model's; a negative one only for the inner product */
        fl_neighbors nb;
        memset(&nb, 0, sizeof nb);
        if (m == M_INNER) {
            CHECK_OK(ctx, fl_model_radius_neighbors(mod, &qa, -1e9, 0, &nb));
            CHECK(nb.nnz == (int64_t)N * NQ);
            fl_neighbors_free(&nb);
        } else {
            CHECK_ERR(ctx, fl_model_radius_neighbors(mod, &qa, -1, 0, &nb), FL_STATUS_INVALID_ARG,
                      "radius=-1: must be >= 0");
            CHECK(nb.indptr == NULL);
        }
        CHECK_OK(ctx, fl_model_radius_neighbors(mod, &qa, NAN, 1, &nb)); /* radius=1.0 */
        fl_neighbors_free(&nb);
        /* float32 queries against the float64 model */
        float Qf[NQ * D];
        for (int i = 0; i < NQ * D; i++)
            Qf[i] = (float)Q[i];
        fl_array qf = fl_array_host(Qf, FL_DTYPE_F32, NQ, D);
        CHECK_OK(ctx, fl_model_radius_neighbors(mod, &qf, radii[m], 1, &nb));
        CHECK(nb.dtype == FL_DTYPE_F32 && nb.n_rows == NQ);
        fl_neighbors_free(&nb);
        fl_model_free(mod);
        fl_params_free(prm);
    }
    free(X);
    free(Q);
}

/* A radius search over several tiles and query blocks whose hit lists
 * outgrow their first allocation. */
static void test_radius_large(fl_ctx *ctx)
{
    enum { N = 4500, D = 2 };
    double *X = malloc(sizeof(double) * N * D);
    for (int i = 0; i < N * D; i++)
        X[i] = test_uniform();
    fl_array xa = fl_array_host(X, FL_DTYPE_F64, N, D);
    fl_model *m;
    CHECK_OK(ctx, fl_knn_fit(ctx, &xa, NULL, &m));
    fl_neighbors nb;
    memset(&nb, 0, sizeof nb);
    CHECK_OK(ctx, fl_model_radius_neighbors(m, NULL, 0.1, 0, &nb));
    long total = 0;
    int bad = 0;
    for (long i = 0; i < N && nb.indptr; i += 7) {
        long idsum, s = 0;
        const long c = ref_radius(M_EUC, 2, X + i * D, X, N, D, i, 0.1, &idsum);
        for (int64_t e = nb.indptr[i]; e < nb.indptr[i + 1]; e++)
            s += nb.indices[e];
        bad += nb.indptr[i + 1] - nb.indptr[i] != c || s != idsum;
    }
    for (long i = 0; i < N; i++) {
        long idsum;
        total += ref_radius(M_EUC, 2, X + i * D, X, N, D, i, 0.1, &idsum);
    }
    CHECK_MSG(bad == 0 && nb.nnz == total, "large radius: %d rows differ, nnz %lld vs %ld", bad,
              (long long)nb.nnz, total);
    fl_neighbors_free(&nb);
    fl_model_free(m);
    free(X);
    /* a float32 grid: neighbours at exactly the radius are inside it,
     * whatever the rounding of the scan (4 per inner point, 3 on an edge,
     * 2 in a corner: 2 x 2 x 20 x 19 pairs) */
    float G[400 * 2];
    for (int i = 0; i < 400; i++) {
        G[2 * i] = 300.0f + (float)(i % 20);
        G[2 * i + 1] = -70.0f + (float)(i / 20);
    }
    fl_array ga = fl_array_host(G, FL_DTYPE_F32, 400, 2);
    for (int metric = 0; metric < 3; metric++) {
        fl_params *prm;
        fl_params_create(ctx, "knn", &prm);
        fl_params_set(ctx, prm, "metric",
                      metric == 0   ? "euclidean"
                      : metric == 1 ? "manhattan"
                                    : "sqeuclidean");
        CHECK_OK(ctx, fl_knn_fit(ctx, &ga, prm, &m));
        CHECK_OK(ctx, fl_model_radius_neighbors(m, NULL, 1.0, 1, &nb));
        CHECK_MSG(nb.nnz == 1520, "grid radius 1 (%d): nnz %lld", metric, (long long)nb.nnz);
        fl_neighbors_free(&nb);
        fl_model_free(m);
        fl_params_free(prm);
    }
}

/* kneighbors and radius_neighbors agree at the boundary: a radius equal to
 * the k-th distance returned finds those k rows, whatever the rounding of
 * the scan that selected the candidates. */
static void test_radius_boundary(fl_ctx *ctx)
{
    enum { N = 500, D = 8, NQ = 40, K = 3 };
    float *X = malloc(sizeof(float) * N * D);
    for (int i = 0; i < N * D; i++)
        X[i] = (float)(37.0 + 3.0 * test_normal());
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D);
    for (int m = M_SQ; m <= M_MINK; m++) {
        fl_params *prm = knn_params(ctx, m, 2.5);
        fl_model *mod;
        CHECK_OK(ctx, fl_knn_fit(ctx, &xa, prm, &mod));
        int bad = 0;
        for (int q = 0; q < NQ; q++) {
            float dist[K];
            int64_t idx[K];
            fl_array qa = fl_array_host(X + (N - 1 - q) * D, FL_DTYPE_F32, 1, D);
            fl_array da = fl_array_host(dist, FL_DTYPE_F32, 1, K),
                     ia = fl_array_host(idx, FL_DTYPE_I64, 1, K);
            fl_neighbors nb;
            memset(&nb, 0, sizeof nb);
            if (fl_model_kneighbors(mod, &qa, K, &da, &ia) != FL_STATUS_OK ||
                fl_model_radius_neighbors(mod, &qa, dist[K - 1], 1, &nb) != FL_STATUS_OK) {
                bad++;
                continue;
            }
            bad += nb.nnz < K;
            for (int j = 0; j < K && j < nb.nnz; j++)
                bad += nb.indices[j] != idx[j] || ((float *)nb.distances)[j] != dist[j];
            fl_neighbors_free(&nb);
        }
        CHECK_MSG(bad == 0, "%s: radius = k-th distance: %d problems", metric_word(m), bad);
        fl_model_free(mod);
        fl_params_free(prm);
    }
    free(X);
}

/* The model: fit, attributes, kneighbors with and without X, n_neighbors
 * from the parameters, save/load, a corrupted buffer. */
static void test_model(fl_ctx *ctx)
{
    enum { N = 120, D = 4 };
    float X[N * D];
    int truth[N];
    make_blobs(X, truth, N, D, 3, 5.0, 1.0);
    fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D);
    fl_params *prm;
    fl_params_create(ctx, "knn", &prm);
    fl_params_set(ctx, prm, "n_neighbors", "6");
    fl_model *m;
    CHECK_OK(ctx, fl_knn_fit(ctx, &xa, prm, &m));
    double v;
    CHECK_OK(ctx, fl_model_attr_scalar(m, "n_samples_fit_", &v));
    CHECK(v == N);
    CHECK_OK(ctx, fl_model_attr_scalar(m, "n_features_in_", &v));
    CHECK(v == D);
    float fx[N * D];
    fl_array fxa = fl_array_host(fx, FL_DTYPE_F32, N, D);
    CHECK_OK(ctx, fl_model_attr_copy(m, "fit_X_", &fxa));
    CHECK(!memcmp(fx, X, sizeof X));

    float d1[N * 6], d2[N * 6];
    int64_t i1[N * 6], i2[N * 6], i3[N * 6];
    fl_array da1 = fl_array_host(d1, FL_DTYPE_F32, N, 6), ia1 = fl_array_host(i1, FL_DTYPE_I64, N, 6);
    fl_array da2 = fl_array_host(d2, FL_DTYPE_F32, N, 6), ia2 = fl_array_host(i2, FL_DTYPE_I64, N, 6);
    fl_array ia3 = fl_array_host(i3, FL_DTYPE_I64, N, 6);
    CHECK_OK(ctx, fl_model_kneighbors(m, NULL, 0, &da1, &ia1)); /* n_neighbors = 6 from the parameters */
    CHECK_OK(ctx, fl_knn_search(ctx, &xa, NULL, 6, NULL, &da2, &ia2));
    CHECK(!memcmp(i1, i2, sizeof i1) && !memcmp(d1, d2, sizeof d1));
    CHECK_OK(ctx, fl_model_kneighbors(m, NULL, 6, NULL, &ia3)); /* indices only */
    CHECK(!memcmp(i1, i3, sizeof i1));
    int self_found = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 6; j++)
            self_found |= i1[i * 6 + j] == i;
    CHECK(!self_found);
    /* with X = the training set each point is its own nearest neighbour */
    CHECK_OK(ctx, fl_model_kneighbors(m, &xa, 6, &da2, &ia2));
    int own = 1;
    for (int i = 0; i < N; i++)
        own &= d2[i * 6] == 0 && (i2[i * 6] == i || X[i2[i * 6] * D] == X[i * D]);
    CHECK(own);
    CHECK_ERR(ctx, fl_model_predict(m, &xa, &ia1), FL_STATUS_UNSUPPORTED, "knn has no predict");

    /* save / load round trip, and a corrupted buffer */
    void *buf;
    size_t len;
    CHECK_OK(ctx, fl_model_save_buffer(m, &buf, &len));
    fl_model *back = NULL;
    CHECK_OK(ctx, fl_model_load_buffer(ctx, buf, len, &back));
    if (back) {
        CHECK_OK(ctx, fl_model_kneighbors(back, NULL, 0, &da2, &ia2));
        CHECK(!memcmp(i1, i2, sizeof i1) && !memcmp(d1, d2, sizeof d1));
        fl_model_free(back);
    }
    ((unsigned char *)buf)[len / 2] ^= 0x5a;
    fl_model *bad = NULL;
    CHECK_ERR(ctx, fl_model_load_buffer(ctx, buf, len, &bad), FL_STATUS_CORRUPT, "");
    CHECK(bad == NULL);
    CHECK(fl_model_load_buffer(ctx, buf, len / 3, &bad) != FL_STATUS_OK && bad == NULL);
    fl_buffer_free(buf);

    /* an unfitted model */
    fl_model *un;
    CHECK_OK(ctx, fl_model_create(ctx, "knn", NULL, &un));
    CHECK_ERR(ctx, fl_model_kneighbors(un, NULL, 1, NULL, &ia1), FL_STATUS_NOT_FITTED, "not fitted");
    fl_model_free(un);
    fl_model_free(m);
    fl_params_free(prm);
}

/* The same answer for 1 and 2 threads, bit for bit; several query blocks,
 * segments and tiles. */
static void test_threads(void)
{
    enum { N = 5000, NQ = 300, D = 9, K = 12 };
    float *X = malloc(sizeof(float) * N * D);
    int *truth = malloc(sizeof(int) * N);
    make_blobs(X, truth, N, D, 5, 2.0, 1.0);
    for (int m = M_EUC; m <= M_MAN; m += 3) {
        float *dd[2];
        int64_t *ii[2];
        for (int t = 0; t < 2; t++) {
            fl_ctx *ctx;
            fl_ctx_create("cpu", &ctx, NULL, 0);
            fl_ctx_set_threads(ctx, t + 1);
            dd[t] = malloc(sizeof(float) * NQ * K);
            ii[t] = malloc(sizeof(int64_t) * NQ * K);
            fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D),
                     qa = fl_array_host(X + 7 * D, FL_DTYPE_F32, NQ, D);
            fl_array da = fl_array_host(dd[t], FL_DTYPE_F32, NQ, K),
                     ia = fl_array_host(ii[t], FL_DTYPE_I64, NQ, K);
            fl_params *prm = knn_params(ctx, m, 2);
            CHECK_OK(ctx, fl_knn_search(ctx, &xa, &qa, K, prm, &da, &ia));
            fl_params_free(prm);
            fl_ctx_free(ctx);
        }
        CHECK(!memcmp(dd[0], dd[1], sizeof(float) * NQ * K) &&
              !memcmp(ii[0], ii[1], sizeof(int64_t) * NQ * K));
        for (int t = 0; t < 2; t++) {
            free(dd[t]);
            free(ii[t]);
        }
    }
    free(X);
    free(truth);
}

/* Strided inputs and outputs (ld > cols). */
static void test_strides(fl_ctx *ctx)
{
    enum { N = 50, NQ = 8, D = 3, LD = 5, K = 4, OLD = 6 };
    double X[N * LD], Q[NQ * LD], Xd[N * D], Qd[NQ * D];
    for (int i = 0; i < N * LD; i++)
        X[i] = test_normal();
    for (int i = 0; i < NQ * LD; i++)
        Q[i] = test_normal();
    for (int i = 0; i < N; i++)
        memcpy(Xd + i * D, X + i * LD, sizeof(double) * D);
    for (int i = 0; i < NQ; i++)
        memcpy(Qd + i * D, Q + i * LD, sizeof(double) * D);
    double ds[NQ * OLD], dd[NQ * K];
    int64_t is[NQ * OLD], id[NQ * K];
    for (int i = 0; i < NQ * OLD; i++) {
        ds[i] = -3;
        is[i] = -3;
    }
    fl_array xs = fl_array_host(X, FL_DTYPE_F64, N, D), qs = fl_array_host(Q, FL_DTYPE_F64, NQ, D);
    xs.ld = LD;
    qs.ld = LD;
    fl_array xd = fl_array_host(Xd, FL_DTYPE_F64, N, D), qd = fl_array_host(Qd, FL_DTYPE_F64, NQ, D);
    fl_array das = fl_array_host(ds, FL_DTYPE_F64, NQ, K), ias = fl_array_host(is, FL_DTYPE_I64, NQ, K);
    das.ld = OLD;
    ias.ld = OLD;
    fl_array dad = fl_array_host(dd, FL_DTYPE_F64, NQ, K), iad = fl_array_host(id, FL_DTYPE_I64, NQ, K);
    for (int m = M_SQ; m <= M_MINK; m++) {
        fl_params *prm = knn_params(ctx, m, 3);
        CHECK_OK(ctx, fl_knn_search(ctx, &xs, &qs, K, prm, &das, &ias));
        CHECK_OK(ctx, fl_knn_search(ctx, &xd, &qd, K, prm, &dad, &iad));
        int same = 1;
        for (int i = 0; i < NQ; i++)
            for (int j = 0; j < OLD; j++)
                same &= j < K ? ds[i * OLD + j] == dd[i * K + j] && is[i * OLD + j] == id[i * K + j]
                              : ds[i * OLD + j] == -3 && is[i * OLD + j] == -3;
        CHECK_MSG(same, "strided %s", metric_word(m));
        fl_params_free(prm);
    }
}

static int cancel_at_first(void *user, const char *stage, int64_t done, int64_t total)
{
    (void)done;
    (void)total;
    int *calls = user;
    (*calls)++;
    return !strcmp(stage, "knn.search") || !strcmp(stage, "knn.radius");
}

/* Bad input: a clear error and untouched outputs. */
static void test_bad_input(fl_ctx *ctx)
{
    enum { N = 5, D = 2, K = 3 };
    double X[N * D] = {0, 0, 1, 0, 0, 1, 1, 1, 2, 2}, Q[2 * D] = {0.5, 0.5, 3, 3};
    double dist[2 * 6];
    int64_t idx[2 * 6];
    for (int i = 0; i < 12; i++) {
        dist[i] = -7;
        idx[i] = -7;
    }
    fl_array xa = fl_array_host(X, FL_DTYPE_F64, N, D), qa = fl_array_host(Q, FL_DTYPE_F64, 2, D);
    fl_array da = fl_array_host(dist, FL_DTYPE_F64, 2, K), ia = fl_array_host(idx, FL_DTYPE_I64, 2, K);
    fl_array da6 = fl_array_host(dist, FL_DTYPE_F64, 2, 6), ia6 = fl_array_host(idx, FL_DTYPE_I64, 2, 6);
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, &qa, 6, NULL, &da6, &ia6), FL_STATUS_INVALID_ARG,
              "Expected n_neighbors <= n_samples_fit, but n_neighbors = 6, n_samples_fit = 5");
    fl_array das = fl_array_host(dist, FL_DTYPE_F64, N, 1), ias = fl_array_host(idx, FL_DTYPE_I64, N, 1);
    das.rows = N;
    fl_array das5 = fl_array_host(dist, FL_DTYPE_F64, 2, 5), ias5 = fl_array_host(idx, FL_DTYPE_I64, 2, 5);
    (void)das5;
    (void)ias5;
    fl_array ds5 = fl_array_host(dist, FL_DTYPE_F64, 1, 5), is5 = fl_array_host(idx, FL_DTYPE_I64, 1, 5);
    (void)ds5;
    (void)is5;
    double sdist[N * N];
    int64_t sidx[N * N];
    fl_array sda = fl_array_host(sdist, FL_DTYPE_F64, N, N), sia = fl_array_host(sidx, FL_DTYPE_I64, N, N);
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, NULL, N, NULL, &sda, &sia), FL_STATUS_INVALID_ARG,
              "Expected n_neighbors < n_samples_fit, but n_neighbors = 5, n_samples_fit = 5");
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, &qa, 0, NULL, &da, &ia), FL_STATUS_INVALID_ARG,
              "n_neighbors=0: expected n_neighbors > 0");
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, &qa, -2, NULL, &da, &ia), FL_STATUS_INVALID_ARG, "n_neighbors=-2");
    /* NaN / Inf in X or Q */
    double Xn[N * D];
    memcpy(Xn, X, sizeof X);
    Xn[3] = NAN;
    fl_array xn = fl_array_host(Xn, FL_DTYPE_F64, N, D);
    CHECK_ERR(ctx, fl_knn_search(ctx, &xn, &qa, K, NULL, &da, &ia), FL_STATUS_INVALID_ARG, "X[1, 1] is NaN");
    double Qi[2 * D] = {0, INFINITY, 1, 1};
    fl_array qi = fl_array_host(Qi, FL_DTYPE_F64, 2, D);
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, &qi, K, NULL, &da, &ia), FL_STATUS_INVALID_ARG, "Q[0, 1] is Inf");
    /* mismatched features, dtypes, shapes */
    fl_array q3 = fl_array_host(Q, FL_DTYPE_F64, 1, 3);
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, &q3, K, NULL, &da, &ia), FL_STATUS_INVALID_ARG,
              "Q has 3 features, but X has 2");
    float Qf[2 * D] = {0, 0, 1, 1};
    fl_array qf = fl_array_host(Qf, FL_DTYPE_F32, 2, D);
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, &qf, K, NULL, &da, &ia), FL_STATUS_INVALID_ARG,
              "expected one dtype");
    fl_array df = fl_array_host(dist, FL_DTYPE_F32, 2, K);
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, &qa, K, NULL, &df, &ia), FL_STATUS_INVALID_ARG,
              "distances: expected f64");
    fl_array i32 = fl_array_host(idx, FL_DTYPE_I32, 2, K);
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, &qa, K, NULL, &da, &i32), FL_STATUS_INVALID_ARG,
              "indices: expected i64");
    fl_array ir = fl_array_host(idx, FL_DTYPE_I64, 3, K);
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, &qa, K, NULL, &da, &ir), FL_STATUS_INVALID_ARG, "2 x 3");
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, &qa, K, NULL, &da, NULL), FL_STATUS_INVALID_ARG,
              "indices is NULL");
    fl_array empty = fl_array_host(X, FL_DTYPE_F64, 0, D);
    CHECK_ERR(ctx, fl_knn_search(ctx, &empty, &qa, K, NULL, &da, &ia), FL_STATUS_INVALID_ARG, "empty");
    fl_params *km;
    fl_params_create(ctx, "kmeans", &km);
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, &qa, K, km, &da, &ia), FL_STATUS_INVALID_ARG, "not knn");
    fl_params_free(km);
    fl_params *mp;
    fl_params_create(ctx, "knn", &mp);
    CHECK(fl_params_set(ctx, mp, "p", "0.5") != FL_STATUS_OK);          /* the table's bound */
    CHECK(fl_params_set(ctx, mp, "metric", "hamming") != FL_STATUS_OK); /* not a word of the table */
    fl_params_free(mp);
    /* a cancelled search writes nothing */
    int calls = 0;
    fl_ctx_set_progress(ctx, cancel_at_first, &calls);
    CHECK_ERR(ctx, fl_knn_search(ctx, &xa, &qa, K, NULL, &da, &ia), FL_STATUS_CANCELLED, "cancelled");
    CHECK(calls == 1);
    fl_ctx_set_progress(ctx, NULL, NULL);

    /* the model's errors */
    fl_model *m;
    CHECK_OK(ctx, fl_knn_fit(ctx, &xa, NULL, &m));
    CHECK_ERR(ctx, fl_model_kneighbors(m, &q3, K, &da, &ia), FL_STATUS_INVALID_ARG,
              "X has 3 features, but NearestNeighbors is expecting 2 features as input");
    CHECK_ERR(ctx, fl_model_kneighbors(m, &qa, 6, &da6, &ia6), FL_STATUS_INVALID_ARG,
              "Expected n_neighbors <= n_samples_fit, but n_neighbors = 6, n_samples_fit = 5, n_samples = 2");
    CHECK_ERR(ctx, fl_model_kneighbors(m, NULL, 5, &sda, &sia), FL_STATUS_INVALID_ARG,
              "Expected n_neighbors < n_samples_fit");
    CHECK_ERR(ctx, fl_model_kneighbors(m, &qi, K, &da, &ia), FL_STATUS_INVALID_ARG, "X[0, 1] is Inf");
    fl_neighbors nb;
    memset(&nb, 0, sizeof nb);
    CHECK_ERR(ctx, fl_model_radius_neighbors(m, &q3, 1.0, 1, &nb), FL_STATUS_INVALID_ARG, "3 features");
    fl_ctx_set_progress(ctx, cancel_at_first, &calls);
    CHECK_ERR(ctx, fl_model_radius_neighbors(m, &qa, 1.0, 1, &nb), FL_STATUS_CANCELLED, "cancelled");
    fl_ctx_set_progress(ctx, NULL, NULL);
    CHECK(nb.indptr == NULL && nb.nnz == 0);
    fl_model_free(m);
    CHECK_ERR(ctx, fl_knn_fit(ctx, &xn, NULL, &m), FL_STATUS_INVALID_ARG, "X[1, 1] is NaN");
    fl_params *neg;
    fl_params_create(ctx, "knn", &neg);
    fl_params_set(ctx, neg, "radius", "-2");
    CHECK_ERR(ctx, fl_knn_fit(ctx, &xa, neg, &m), FL_STATUS_INVALID_ARG, "radius=-2: must be >= 0");
    fl_params_set(ctx, neg, "metric", "inner_product");
    CHECK_OK(ctx, fl_knn_fit(ctx, &xa, neg, &m));
    fl_model_free(m);
    fl_params_free(neg);

    int untouched = 1;
    for (int i = 0; i < 12; i++)
        untouched &= dist[i] == -7 && idx[i] == -7;
    CHECK(untouched);
    (void)das;
    (void)ias;
}

/* Failing the Nth host allocation, N = 1, 2, ... until the call succeeds:
 * each time a clean out-of-memory error, nothing leaked, outputs
 * untouched. */
static void test_alloc_failures(const char *device)
{
    enum { N = 400, NQ = 70, D = 6, K = 9 };
    static double X[N * D], Q[NQ * D];
    make_data(X, N, D, 0.0);
    make_data(Q, NQ, D, 0.1);
    for (int kind = 0; kind < 4; kind++) {
        int clean = 1, ok = 0, attempts = 0;
        for (long fail_at = 1; fail_at < 1000 && !ok; fail_at++) {
            fl_ctx *ctx;
            fl_ctx_create(device, &ctx, NULL, 0);
            failing_alloc a = {0, fail_at, 0};
            fl_host_allocator ha = {fa_alloc, fa_free, &a};
            fl_ctx_set_host_allocator(ctx, &ha);
            fl_params *prm = knn_params(ctx, kind == 1 ? M_COS : kind == 2 ? M_MAN : M_EUC, 2);
            double dist[NQ * K];
            int64_t idx[NQ * K];
            for (int i = 0; i < NQ * K; i++) {
                dist[i] = -1;
                idx[i] = -1;
            }
            fl_array xa = fl_array_host(X, FL_DTYPE_F64, N, D), qa = fl_array_host(Q, FL_DTYPE_F64, NQ, D);
            fl_array da = fl_array_host(dist, FL_DTYPE_F64, NQ, K),
                     ia = fl_array_host(idx, FL_DTYPE_I64, NQ, K);
            fl_status st;
            fl_neighbors nb;
            memset(&nb, 0, sizeof nb);
            if (kind < 3) {
                /* kind 2: a self search of the NQ query rows */
                st = kind == 2 ? fl_knn_search(ctx, &qa, NULL, K, prm, &da, &ia)
                               : fl_knn_search(ctx, &xa, &qa, K, prm, &da, &ia);
            } else {
                fl_model *m = NULL;
                st = fl_knn_fit(ctx, &xa, prm, &m);
                if (!st)
                    st = fl_model_radius_neighbors(m, &qa, 2.5, 1, &nb);
                fl_model_free(m);
            }
            attempts++;
            int untouched = 1;
            for (int i = 0; i < NQ * K; i++)
                untouched &= dist[i] == -1 && idx[i] == -1;
            if (st == FL_STATUS_OK) {
                ok = 1;
                CHECK(kind == 3 ? nb.nnz > 0 : !untouched);
            } else if (st != FL_STATUS_OUT_OF_MEMORY || !untouched || nb.indptr) {
                clean = 0;
                fprintf(stderr, "kind %d fail_at=%ld: status %d (%s), output %s\n", kind, fail_at, (int)st,
                        fl_ctx_last_error(ctx), untouched ? "untouched" : "written");
            }
            fl_neighbors_free(&nb);
            fl_params_free(prm);
            fl_ctx_free(ctx);
            if (a.live != 0) {
                clean = 0;
                fprintf(stderr, "kind %d fail_at=%ld: %ld host allocations leaked\n", kind, fail_at, a.live);
            }
        }
        CHECK(ok);
        CHECK(clean);
        CHECK_MSG(attempts >= 3, "kind %d: %d attempts: the search allocated nothing through the hooks", kind,
                  attempts);
    }
}

/* Routing: the CPU without a GPU, a reason in words; fl_route_query knows
 * knn. A context on device 'cuda' without a GPU is a clear error. */
static void test_route(fl_ctx *ctx)
{
    fl_route r;
    CHECK_OK(ctx, fl_route_query(ctx, "knn", NULL, 100000, 64, FL_DTYPE_F32, NULL, &r));
    CHECK(r.backend == FL_BACKEND_CPU && strstr(r.reason, "BLAS-blocked") != NULL);
    fl_params *prm = knn_params(ctx, M_MAN, 1);
    CHECK_OK(ctx, fl_route_query(ctx, "knn", NULL, 1000, 8, FL_DTYPE_F64, prm, &r));
    CHECK(r.backend == FL_BACKEND_CPU && strstr(r.reason, "direct distances") != NULL);
    fl_params_free(prm);

    fl_ctx *cuda;
    if (fl_ctx_create("cuda", &cuda, NULL, 0) != FL_STATUS_OK)
        return;
    if (fl_cuda_device_count(cuda, NULL) == 0) {
        double X[4] = {0, 1, 2, 3}, dist[2] = {-1, -1};
        int64_t idx[2] = {-1, -1};
        fl_array xa = fl_array_host(X, FL_DTYPE_F64, 2, 2);
        fl_array da = fl_array_host(dist, FL_DTYPE_F64, 2, 1), ia = fl_array_host(idx, FL_DTYPE_I64, 2, 1);
        CHECK_ERR(cuda, fl_knn_search(cuda, &xa, NULL, 1, NULL, &da, &ia), FL_STATUS_NO_DEVICE, "");
        CHECK(strlen(fl_ctx_last_error(cuda)) > 10);
        CHECK(dist[0] == -1 && idx[0] == -1 && idx[1] == -1);
    }
    fl_ctx_free(cuda);
}

/* With a GPU: the public calls on device 'cuda' (float32 as it is, float64
 * through float32 copies and converted distances, strided outputs staged,
 * the model) against the float64 reference, and the host allocator's
 * failures through the GPU path. */
static void test_gpu(void)
{
    fl_ctx *g;
    if (fl_ctx_create("cuda", &g, NULL, 0) != FL_STATUS_OK)
        return;
    if (fl_cuda_device_count(g, NULL) == 0) {
        fprintf(stderr, "test_knn: no GPU, GPU comparisons skipped\n");
        fl_ctx_free(g);
        return;
    }
    enum { N = 700, NQ = 90, D = 11 };
    double *X = malloc(sizeof(double) * N * D), *Q = malloc(sizeof(double) * NQ * D);
    make_data(X, N, D, 0.0);
    make_data(Q, NQ, D, 0.5);
    g_f64_tol = 2e-5;
    for (int m = M_SQ; m <= M_MINK; m++) {
        for (int t = 0; t < 2; t++) {
            const fl_dtype dt = t ? FL_DTYPE_F64 : FL_DTYPE_F32;
            run_case(g, m, 3.0, X, N, Q, NQ, D, 7, dt);
            run_case(g, m, 3.0, X, N, NULL, 0, D, 5, dt);
        }
    }
    run_case(g, M_EUC, 2, X, 300, Q, 20, D, 300, FL_DTYPE_F64);
    run_case(g, M_INNER, 2, X, 300, NULL, 0, D, 299, FL_DTYPE_F32);
    g_f64_tol = 1e-10;
    test_strides(g);
    test_model(g);
    fl_ctx_free(g);
    free(X);
    free(Q);
    test_alloc_failures("cuda");
}

int main(void)
{
    fl_ctx *ctx;
    if (fl_ctx_create("cpu", &ctx, NULL, 0) != FL_STATUS_OK)
        return 1;
    test_metrics(ctx);
    test_shifted(ctx);
    test_small_shapes(ctx);
    test_ties_and_orders(ctx);
    test_radius(ctx);
    test_radius_large(ctx);
    test_radius_boundary(ctx);
    test_model(ctx);
    test_strides(ctx);
    test_bad_input(ctx);
    test_route(ctx);
    test_threads();
    test_alloc_failures("cpu");
    test_gpu();
    fl_ctx_free(ctx);
    TEST_MAIN_END();
}
