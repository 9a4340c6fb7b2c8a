/* test_ivf.c — the IVF-Flat index through the C API: with every list
 * probed it must answer exactly (compared with a float64 brute force
 * written here), with few probes it must keep high recall on clustered
 * data, add() must continue the indices, set_param must change only the
 * search knobs, a saved index must load and answer the same, a corrupted
 * one must be refused, and bad input must leave the outputs untouched. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "flashlib.h"

#define N 3000
#define D 16
#define NQ 60
#define K 10

/* k nearest rows of X to q by squared distance (ties by index). */
static void ref_knn(const float *X, long n, const float *q, long skip, long *out, double *dout)
{
    for (long c = 0; c < K; c++)
        dout[c] = INFINITY, out[c] = -1;
    for (long i = 0; i < n; i++) {
        if (i == skip)
            continue;
        double s = 0;
        for (long f = 0; f < D; f++) {
            double v = (double)q[f] - X[i * D + f];
            s += v * v;
        }
        long c = K - 1;
        if (s > dout[c] || (s == dout[c] && i > out[c]))
            continue;
        while (c > 0 && (s < dout[c - 1] || (s == dout[c - 1] && i < out[c - 1]))) {
            dout[c] = dout[c - 1], out[c] = out[c - 1];
            c--;
        }
        dout[c] = s, out[c] = i;
    }
}

/* ---- the GPU search against the CPU backend ------------------------------ */

/* GPU and CPU results of one search: the same indices (a swap only between
 * equal distances) and distances within 1e-5 relative; padding alike. */
static long compare_results(const int64_t *ig, const double *dg, const int64_t *ic, const double *dc, long n,
                            long k)
{
    long bad = 0;
    for (long i = 0; i < n * k; i++) {
        const int pad = ic[i] < 0;
        if (pad) {
            bad += ig[i] != -1 || dg[i] != dc[i];
            continue;
        }
        const double tol = 1e-5 * (1 + fabs(dc[i]));
        bad +=
            fabs(dg[i] - dc[i]) > tol || (ig[i] != ic[i] && fabs(dg[i] - dc[i]) > 1e-9 * (1 + fabs(dc[i])));
    }
    return bad;
}

/* Searches mg (a GPU context's model) and mc (the same index on the CPU)
 * with n queries (NULL: X=None) and k neighbours; returns the mismatches. */
static long gpu_vs_cpu(fl_ctx *g, fl_model *mg, fl_model *mc, const float *Q, long n, long d, long k,
                       const char *what)
{
    int64_t *ig = malloc(sizeof(int64_t) * n * k), *ic = malloc(sizeof(int64_t) * n * k);
    double *dg = malloc(sizeof(double) * n * k), *dc = malloc(sizeof(double) * n * k);
    for (long i = 0; i < n * k; i++)
        ig[i] = -7, dg[i] = -7;
    fl_array Qa = fl_array_host((void *)Q, FL_DTYPE_F32, n, d);
    fl_array Ig = fl_array_host(ig, FL_DTYPE_I64, n, k), Dg = fl_array_host(dg, FL_DTYPE_F64, n, k);
    fl_array Ic = fl_array_host(ic, FL_DTYPE_I64, n, k), Dc = fl_array_host(dc, FL_DTYPE_F64, n, k);
    long bad = -1;
    if (fl_model_kneighbors(mg, Q ? &Qa : NULL, k, &Dg, &Ig) == FL_STATUS_OK &&
        fl_model_kneighbors(mc, Q ? &Qa : NULL, k, &Dc, &Ic) == FL_STATUS_OK)
        bad = compare_results(ig, dg, ic, dc, n, k);
    CHECK_MSG(bad == 0, "GPU vs CPU, %s: %ld of %ld results differ (%s)", what, bad, n * k,
              fl_ctx_last_error(g));
    free(ig), free(ic), free(dg), free(dc);
    return bad;
}

/* The same index on both backends: fitted on the CPU context, loaded into
 * the GPU one (the coarse k-means would differ between them). */
static fl_model *clone_into(fl_ctx *to, fl_model *m)
{
    void *buf;
    size_t len;
    fl_model *out = NULL;
    if (fl_model_save_buffer(m, &buf, &len) == FL_STATUS_OK) {
        CHECK_OK(to, fl_model_load_buffer(to, buf, len, &out));
        fl_buffer_free(buf);
    }
    return out;
}

/* IVF-PQ and CAGRA: GPU and CPU result sets of one search. The coarse
 * scores come from cuBLAS on one side and BLAS on the other, large IVF-PQ
 * batches sum residual tables from precomputed terms, and CAGRA's keys are
 * summed in another order, so a near-tie can put a different row in a
 * set. Returns the
 * share of the CPU's ids that the GPU also returned for the same query;
 * *dist_bad counts shared ids whose distances differ by more than 1e-5
 * relative, and rows padded differently. */
static double set_agreement(const int64_t *ig, const double *dg, const int64_t *ic, const double *dc, long n,
                            long k, long *dist_bad)
{
    long shared = 0, total = 0;
    *dist_bad = 0;
    for (long q = 0; q < n; q++)
        for (long a = 0; a < k; a++) {
            const int64_t id = ic[q * k + a];
            if (id < 0) {
                *dist_bad += ig[q * k + a] != -1;
                continue;
            }
            total++;
            for (long b = 0; b < k; b++)
                if (ig[q * k + b] == id) {
                    shared++;
                    *dist_bad += fabs(dg[q * k + b] - dc[q * k + a]) > 1e-5 * (1 + fabs(dc[q * k + a]));
                    break;
                }
        }
    return total ? (double)shared / (double)total : 1.0;
}

/* The last routing reason the GPU context logged (its log callback). */
static char g_last_search[512];
static void log_search(void *user, fl_log_level level, const char *msg)
{
    (void)user, (void)level;
    if (strstr(msg, " search: "))
        snprintf(g_last_search, sizeof g_last_search, "%s", msg);
}

/* Searches mg (GPU context) and mc (CPU) alike; checks that the GPU ran,
 * that at least min_agree of the CPU's ids come back, with equal
 * distances; returns the GPU's ids (n x k, caller frees) for recall. */
static int64_t *ann_gpu_vs_cpu(fl_model *mg, fl_model *mc, const float *Q, long n, long d, long k,
                               double min_agree, const char *what)
{
    int64_t *ig = malloc(sizeof(int64_t) * n * k), *ic = malloc(sizeof(int64_t) * n * k);
    double *dg = malloc(sizeof(double) * n * k), *dc = malloc(sizeof(double) * n * k);
    for (long i = 0; i < n * k; i++)
        ig[i] = -7, dg[i] = -7;
    fl_array Qa = fl_array_host((void *)Q, FL_DTYPE_F32, n, d);
    fl_array Ig = fl_array_host(ig, FL_DTYPE_I64, n, k), Dg = fl_array_host(dg, FL_DTYPE_F64, n, k);
    fl_array Ic = fl_array_host(ic, FL_DTYPE_I64, n, k), Dc = fl_array_host(dc, FL_DTYPE_F64, n, k);
    g_last_search[0] = 0;
    fl_status sg = fl_model_kneighbors(mg, Q ? &Qa : NULL, k, &Dg, &Ig);
    CHECK_MSG(sg == FL_STATUS_OK, "%s: GPU search failed: %s", what, fl_status_str(sg));
    CHECK_MSG(strstr(g_last_search, ": cuda (") != NULL, "%s: not searched on the GPU: '%s'", what,
              g_last_search);
    fl_status sc = fl_model_kneighbors(mc, Q ? &Qa : NULL, k, &Dc, &Ic);
    CHECK(sc == FL_STATUS_OK);
    if (sg == FL_STATUS_OK && sc == FL_STATUS_OK) {
        long dist_bad = 0;
        const double agree = set_agreement(ig, dg, ic, dc, n, k, &dist_bad);
        CHECK_MSG(agree >= min_agree && dist_bad == 0,
                  "%s: GPU/CPU agreement %.4f (need %.2f), %ld distances off", what, agree, min_agree,
                  dist_bad);
    }
    free(ic), free(dg), free(dc);
    return ig;
}

/* recall@k of ids (n x k) against the float64 brute force (squared L2). */
static double recall_l2(const int64_t *ids, const float *X, long nb, const float *Q, long n, long d, long k)
{
    long hit = 0;
    double *dist = malloc(sizeof(double) * nb);
    for (long q = 0; q < n; q++) {
        for (long i = 0; i < nb; i++) {
            double s = 0;
            for (long f = 0; f < d; f++) {
                const double v = (double)Q[q * d + f] - X[i * d + f];
                s += v * v;
            }
            dist[i] = s;
        }
        /* the k-th smallest distance: a row is a true neighbour at or below it */
        double kth = INFINITY;
        for (long c = 0; c < k; c++) {
            double best = INFINITY;
            for (long i = 0; i < nb; i++)
                if (dist[i] < best && (c == 0 || dist[i] > kth))
                    best = dist[i];
            kth = best;
        }
        for (long c = 0; c < k; c++) {
            const int64_t id = ids[q * k + c];
            hit += id >= 0 && id < nb && dist[id] <= kth;
        }
    }
    free(dist);
    return (double)hit / (double)(n * k);
}

static void test_gpu_pq_cagra(fl_ctx *g, fl_ctx *c);

static void test_gpu(void)
{
    fl_ctx *g, *c;
    if (fl_ctx_create("cuda", &g, NULL, 0) != FL_STATUS_OK)
        return;
    if (fl_ctx_create("cpu", &c, NULL, 0) != FL_STATUS_OK) {
        fl_ctx_free(g);
        return;
    }
    enum { NB = 4000, NQB = 700, D2 = 37 };
    static float XB[(NB + NQB) * D2];
    static int tb[NB + NQB];
    fl_params *p;
    CHECK_OK(c, fl_params_create(c, "ivf_flat", &p));
    CHECK_OK(c, fl_params_set(c, p, "n_lists", "40"));
    CHECK_OK(c, fl_params_set(c, p, "n_probes", "5"));
    CHECK_OK(c, fl_params_set(c, p, "random_state", "3"));
    if (fl_cuda_device_count(g, NULL) == 0) {
        /* device 'cuda' without a GPU: the search says so, outputs untouched */
        make_blobs(XB, tb, 500, 4, 5, 10.0, 1.0);
        fl_model *mc, *mg;
        CHECK_OK(c, fl_params_set(c, p, "n_lists", "8"));
        CHECK_OK(c, fl_model_create(c, "ivf_flat", p, &mc));
        fl_array Xa = fl_array_host(XB, FL_DTYPE_F32, 500, 4);
        CHECK_OK(c, fl_model_fit(mc, &Xa, NULL, NULL));
        if ((mg = clone_into(g, mc)) != NULL) {
            int64_t idx[3] = {-7, -7, -7};
            fl_array Q = fl_array_host(XB, FL_DTYPE_F32, 1, 4), I = fl_array_host(idx, FL_DTYPE_I64, 1, 3);
            CHECK_ERR(g, fl_model_kneighbors(mg, &Q, 3, NULL, &I), FL_STATUS_NO_DEVICE, "");
            CHECK(strlen(fl_ctx_last_error(g)) > 10 && idx[0] == -7);
            fl_model_free(mg);
        }
        fprintf(stderr, "test_ivf: no GPU, GPU comparisons skipped\n");
        fl_model_free(mc);
        fl_params_free(p);
        fl_ctx_free(c);
        fl_ctx_free(g);
        return;
    }
    static const char *const metrics[] = {"euclidean", "sqeuclidean", "cosine", "inner_product"};
    static const long dims[] = {16, D2};
    for (int di = 0; di < 2; di++) {
        const long d = dims[di];
        make_blobs(XB, tb, NB + NQB, d, 50, 8.0, 1.5);
        const float *Q = XB + NB * d;
        fl_array Xa = fl_array_host(XB, FL_DTYPE_F32, NB, d);
        for (int mi = 0; mi < 4; mi++) {
            if (di == 1 && mi != 0 && mi != 3)
                continue;
            char what[96];
            CHECK_OK(c, fl_params_set(c, p, "metric", metrics[mi]));
            fl_model *mc, *mg;
            CHECK_OK(c, fl_model_create(c, "ivf_flat", p, &mc));
            CHECK_OK(c, fl_model_fit(mc, &Xa, NULL, NULL));
            if (!(mg = clone_into(g, mc))) {
                fl_model_free(mc);
                continue;
            }
            /* large batch (lists shared by ~90 queries: the wide scan
             * tiles), small batches (the narrow ones), one query */
            snprintf(what, sizeof what, "%s d=%ld, %d queries", metrics[mi], d, NQB);
            gpu_vs_cpu(g, mg, mc, Q, NQB, d, 10, what);
            snprintf(what, sizeof what, "%s d=%ld, 3 queries", metrics[mi], d);
            gpu_vs_cpu(g, mg, mc, Q + 5 * d, 3, d, 10, what);
            snprintf(what, sizeof what, "%s d=%ld, 1 query k=1", metrics[mi], d);
            gpu_vs_cpu(g, mg, mc, Q, 1, d, 1, what);
            /* X=None: every stored row, itself left out */
            snprintf(what, sizeof what, "%s d=%ld, X=None", metrics[mi], d);
            gpu_vs_cpu(g, mg, mc, NULL, NB, d, 7, what);
            /* one probe and k above the list sizes: padded rows */
            CHECK_OK(c, fl_model_set_param(mc, "n_probes", "1"));
            CHECK_OK(g, fl_model_set_param(mg, "n_probes", "1"));
            snprintf(what, sizeof what, "%s d=%ld, 1 probe k=240 (padding)", metrics[mi], d);
            gpu_vs_cpu(g, mg, mc, Q, 50, d, 240, what);
            /* every list: the exact answer */
            CHECK_OK(c, fl_model_set_param(mc, "n_probes", "40"));
            CHECK_OK(g, fl_model_set_param(mg, "n_probes", "40"));
            snprintf(what, sizeof what, "%s d=%ld, all lists", metrics[mi], d);
            gpu_vs_cpu(g, mg, mc, Q, 200, d, 10, what);
            /* add: the device copy of the old lists must not answer; the
             * rows added are copies of stored ones (exact ties, broken by
             * index on both backends) */
            fl_array X2 = fl_array_host(XB, FL_DTYPE_F32, 600, d);
            CHECK_OK(c, fl_model_add(mc, &X2));
            CHECK_OK(g, fl_model_add(mg, &X2));
            CHECK_OK(c, fl_model_set_param(mc, "n_probes", "5"));
            CHECK_OK(g, fl_model_set_param(mg, "n_probes", "5"));
            snprintf(what, sizeof what, "%s d=%ld, after add", metrics[mi], d);
            gpu_vs_cpu(g, mg, mc, XB, 300, d, 10, what);
            fl_model_free(mg);
            fl_model_free(mc);
        }
    }
    /* k beyond the GPU's pools runs on the CPU, with the same answer */
    {
        fl_array Xa = fl_array_host(XB, FL_DTYPE_F32, NB, 16);
        CHECK_OK(c, fl_params_set(c, p, "metric", "euclidean"));
        fl_model *mc, *mg;
        CHECK_OK(c, fl_model_create(c, "ivf_flat", p, &mc));
        make_blobs(XB, tb, NB + NQB, 16, 50, 8.0, 1.5);
        CHECK_OK(c, fl_model_fit(mc, &Xa, NULL, NULL));
        if ((mg = clone_into(g, mc)) != NULL) {
            gpu_vs_cpu(g, mg, mc, XB + NB * 16, 20, 16, 300, "k=300 (the CPU on both)");
            fl_model_free(mg);
        }
        fl_model_free(mc);
    }
    fl_params_free(p);
    test_gpu_pq_cagra(g, c);
    fl_ctx_free(c);
    fl_ctx_free(g);
}

/* IVF-PQ and CAGRA searched on the GPU against the same index on the CPU. */
static void test_gpu_pq_cagra(fl_ctx *g, fl_ctx *c)
{
    enum { NB = 6000, NQB = 600, DQ = 32 };
    static float XB[(NB + NQB) * DQ];
    static int tb[NB + NQB];
    make_blobs(XB, tb, NB + NQB, DQ, 60, 6.0, 1.5);
    const float *Q = XB + NB * DQ;
    fl_array Xa = fl_array_host(XB, FL_DTYPE_F32, NB, DQ);
    CHECK_OK(g, fl_ctx_set_log(g, log_search, NULL));
    CHECK_OK(g, fl_ctx_set_verbosity(g, FL_LOG_INFO));
    static const char *const metrics[] = {"euclidean", "sqeuclidean", "cosine", "inner_product"};
    char what[128];

    /* IVF-PQ: every metric, residual codes, refine 8 (the default) */
    fl_params *pp;
    CHECK_OK(c, fl_params_create(c, "ivf_pq", &pp));
    CHECK_OK(c, fl_params_set(c, pp, "n_lists", "48"));
    CHECK_OK(c, fl_params_set(c, pp, "n_probes", "6"));
    CHECK_OK(c, fl_params_set(c, pp, "kmeans_n_iters", "8"));
    CHECK_OK(c, fl_params_set(c, pp, "random_state", "5"));
    for (int mi = 0; mi < 4; mi++) {
        CHECK_OK(c, fl_params_set(c, pp, "metric", metrics[mi]));
        fl_model *mc, *mg;
        CHECK_OK(c, fl_model_create(c, "ivf_pq", pp, &mc));
        CHECK_OK(c, fl_model_fit(mc, &Xa, NULL, NULL));
        if (!(mg = clone_into(g, mc))) {
            fl_model_free(mc);
            continue;
        }
        snprintf(what, sizeof what, "IVF-PQ %s, %d queries", metrics[mi], NQB);
        int64_t *ig = ann_gpu_vs_cpu(mg, mc, Q, NQB, DQ, 10, 0.99, what);
        if (mi == 1) { /* recall against the brute force: the GPU's own quality */
            const double r = recall_l2(ig, XB, NB, Q, NQB, DQ, 10);
            CHECK_MSG(r >= 0.9, "IVF-PQ GPU recall@10 %.3f", r);
        }
        free(ig);
        snprintf(what, sizeof what, "IVF-PQ %s, 3 queries", metrics[mi]);
        free(ann_gpu_vs_cpu(mg, mc, Q + 7 * DQ, 3, DQ, 10, 0.99, what));
        snprintf(what, sizeof what, "IVF-PQ %s, 1 query k=1", metrics[mi]);
        free(ann_gpu_vs_cpu(mg, mc, Q, 1, DQ, 1, 0.99, what));
        snprintf(what, sizeof what, "IVF-PQ %s, X=None", metrics[mi]);
        free(ann_gpu_vs_cpu(mg, mc, NULL, NB, DQ, 5, 0.99, what));
        /* one probe, k above the list sizes: padding; every list probed.
         * refine 4 here: the default 8 makes a pool of 1600 for k = 200,
         * beyond the GPU search's 1024, and the search would (rightly)
         * run on the CPU */
        CHECK_OK(c, fl_model_set_param(mc, "n_probes", "1"));
        CHECK_OK(g, fl_model_set_param(mg, "n_probes", "1"));
        CHECK_OK(c, fl_model_set_param(mc, "refine", "4"));
        CHECK_OK(g, fl_model_set_param(mg, "refine", "4"));
        snprintf(what, sizeof what, "IVF-PQ %s, 1 probe k=200 (padding)", metrics[mi]);
        free(ann_gpu_vs_cpu(mg, mc, Q, 40, DQ, 200, 0.99, what));
        CHECK_OK(c, fl_model_set_param(mc, "refine", "8"));
        CHECK_OK(g, fl_model_set_param(mg, "refine", "8"));
        CHECK_OK(c, fl_model_set_param(mc, "n_probes", "48"));
        CHECK_OK(g, fl_model_set_param(mg, "n_probes", "48"));
        snprintf(what, sizeof what, "IVF-PQ %s, all lists", metrics[mi]);
        free(ann_gpu_vs_cpu(mg, mc, Q, 100, DQ, 10, 0.99, what));
        /* add: the device copy of the old index must not answer */
        fl_array X2 = fl_array_host(XB, FL_DTYPE_F32, 500, DQ);
        CHECK_OK(c, fl_model_add(mc, &X2));
        CHECK_OK(g, fl_model_add(mg, &X2));
        CHECK_OK(c, fl_model_set_param(mc, "n_probes", "6"));
        CHECK_OK(g, fl_model_set_param(mg, "n_probes", "6"));
        snprintf(what, sizeof what, "IVF-PQ %s, after add", metrics[mi]);
        free(ann_gpu_vs_cpu(mg, mc, XB, 200, DQ, 10, 0.99, what));
        fl_model_free(mg);
        fl_model_free(mc);
    }
    /* codes only (refine 1: the quantised distances), byte-wise codes
     * (pq_dim 2), 32 centroids, no residuals */
    {
        CHECK_OK(c, fl_params_set(c, pp, "metric", "euclidean"));
        CHECK_OK(c, fl_params_set(c, pp, "refine", "1"));
        CHECK_OK(c, fl_params_set(c, pp, "pq_dim", "2"));
        CHECK_OK(c, fl_params_set(c, pp, "pq_bits", "5"));
        CHECK_OK(c, fl_params_set(c, pp, "by_residual", "false"));
        fl_model *mc, *mg;
        CHECK_OK(c, fl_model_create(c, "ivf_pq", pp, &mc));
        CHECK_OK(c, fl_model_fit(mc, &Xa, NULL, NULL));
        if ((mg = clone_into(g, mc)) != NULL) {
            free(ann_gpu_vs_cpu(mg, mc, Q, NQB, DQ, 10, 0.99,
                                "IVF-PQ refine 1, pq_dim 2, pq_bits 5, no residual"));
            fl_model_free(mg);
        }
        fl_model_free(mc);
    }
    fl_params_free(pp);

    /* CAGRA: the same graph walked on both; recall@10 against the brute
     * force at the default search settings within 0.02 of the CPU's */
    fl_params *cp;
    CHECK_OK(c, fl_params_create(c, "cagra", &cp));
    CHECK_OK(c, fl_params_set(c, cp, "graph_degree", "32"));
    CHECK_OK(c, fl_params_set(c, cp, "intermediate_graph_degree", "64"));
    CHECK_OK(c, fl_params_set(c, cp, "random_state", "3"));
    for (int mi = 0; mi < 4; mi++) {
        CHECK_OK(c, fl_params_set(c, cp, "metric", metrics[mi]));
        fl_model *mc, *mg;
        CHECK_OK(c, fl_model_create(c, "cagra", cp, &mc));
        CHECK_OK(c, fl_model_fit(mc, &Xa, NULL, NULL));
        if (!(mg = clone_into(g, mc))) {
            fl_model_free(mc);
            continue;
        }
        snprintf(what, sizeof what, "CAGRA %s, %d queries", metrics[mi], NQB);
        int64_t *ig = ann_gpu_vs_cpu(mg, mc, Q, NQB, DQ, 10, 0.97, what);
        if (mi <= 1) {
            int64_t *ic = malloc(sizeof(int64_t) * NQB * 10);
            fl_array Ic = fl_array_host(ic, FL_DTYPE_I64, NQB, 10),
                     Qa = fl_array_host((void *)Q, FL_DTYPE_F32, NQB, DQ);
            CHECK_OK(c, fl_model_kneighbors(mc, &Qa, 10, NULL, &Ic));
            const double rg = recall_l2(ig, XB, NB, Q, NQB, DQ, 10),
                         rc = recall_l2(ic, XB, NB, Q, NQB, DQ, 10);
            CHECK_MSG(rg >= 0.95 && rg >= rc - 0.02, "CAGRA recall@10: GPU %.4f, CPU %.4f", rg, rc);
            free(ic);
        }
        free(ig);
        snprintf(what, sizeof what, "CAGRA %s, 1 query", metrics[mi]);
        free(ann_gpu_vs_cpu(mg, mc, Q + 3 * DQ, 1, DQ, 10, 0.9, what));
        snprintf(what, sizeof what, "CAGRA %s, X=None", metrics[mi]);
        free(ann_gpu_vs_cpu(mg, mc, NULL, NB, DQ, 4, 0.97, what));
        /* wider walks, a bounded one, and a small buffer (k = itopk) */
        CHECK_OK(c, fl_model_set_param(mc, "search_width", "4"));
        CHECK_OK(g, fl_model_set_param(mg, "search_width", "4"));
        CHECK_OK(c, fl_model_set_param(mc, "itopk_size", "128"));
        CHECK_OK(g, fl_model_set_param(mg, "itopk_size", "128"));
        snprintf(what, sizeof what, "CAGRA %s, width 4, itopk 128", metrics[mi]);
        free(ann_gpu_vs_cpu(mg, mc, Q, 200, DQ, 10, 0.97, what));
        CHECK_OK(c, fl_model_set_param(mc, "max_iterations", "3"));
        CHECK_OK(g, fl_model_set_param(mg, "max_iterations", "3"));
        snprintf(what, sizeof what, "CAGRA %s, 3 iterations", metrics[mi]);
        free(ann_gpu_vs_cpu(mg, mc, Q, 200, DQ, 10, 0.97, what));
        CHECK_OK(c, fl_model_set_param(mc, "max_iterations", "0"));
        CHECK_OK(g, fl_model_set_param(mg, "max_iterations", "0"));
        CHECK_OK(c, fl_model_set_param(mc, "itopk_size", "16"));
        CHECK_OK(g, fl_model_set_param(mg, "itopk_size", "16"));
        CHECK_OK(c, fl_model_set_param(mc, "search_width", "1"));
        CHECK_OK(g, fl_model_set_param(mg, "search_width", "1"));
        snprintf(what, sizeof what, "CAGRA %s, itopk 16, k=16", metrics[mi]);
        free(ann_gpu_vs_cpu(mg, mc, Q, 200, DQ, 16, 0.95, what));
        fl_model_free(mg);
        fl_model_free(mc);
    }
    fl_params_free(cp);
    fl_ctx_set_log(g, NULL, NULL);
}

int main(void)
{
    fl_ctx *ctx;
    if (fl_ctx_create("cpu", &ctx, NULL, 0) != FL_STATUS_OK)
        return 1;
    /* 40 blobs; the queries are further draws of the same blobs */
    static float XQ[(N + NQ) * D];
    static int truth[N + NQ];
    make_blobs(XQ, truth, N + NQ, D, 40, 10.0, 1.5);
    float *X = XQ, *Q = XQ + N * D;
    fl_params *p;
    CHECK_OK(ctx, fl_params_create(ctx, "ivf_flat", &p));
    CHECK_OK(ctx, fl_params_set(ctx, p, "n_lists", "32"));
    CHECK_OK(ctx, fl_params_set(ctx, p, "n_probes", "32"));
    CHECK_OK(ctx, fl_params_set(ctx, p, "metric", "sqeuclidean"));
    CHECK_OK(ctx, fl_params_set(ctx, p, "random_state", "5"));
    fl_model *m;
    CHECK_OK(ctx, fl_model_create(ctx, "ivf_flat", p, &m));
    fl_array Xa = fl_array_host(X, FL_DTYPE_F32, N, D), Qa = fl_array_host(Q, FL_DTYPE_F32, NQ, D);
    CHECK_OK(ctx, fl_model_fit(m, &Xa, NULL, NULL));

    /* every list probed: exact, distances included */
    static int64_t I[NQ * K];
    static double Dd[NQ * K];
    fl_array Ia = fl_array_host(I, FL_DTYPE_I64, NQ, K), Da = fl_array_host(Dd, FL_DTYPE_F64, NQ, K);
    CHECK_OK(ctx, fl_model_kneighbors(m, &Qa, K, &Da, &Ia));
    long bad = 0;
    for (long q = 0; q < NQ; q++) {
        long ri[K];
        double rd[K];
        ref_knn(X, N, Q + q * D, -1, ri, rd);
        for (long c = 0; c < K; c++)
            bad += I[q * K + c] != ri[c] || fabs(Dd[q * K + c] - rd[c]) > 1e-6 * (1 + rd[c]);
    }
    CHECK_MSG(bad == 0, "%ld results differ from the brute force with every list probed", bad);

    /* few probes: a search-time knob, high recall on clustered data */
    CHECK_OK(ctx, fl_model_set_param(m, "n_probes", "4"));
    CHECK_OK(ctx, fl_model_kneighbors(m, &Qa, K, &Da, &Ia));
    long hit = 0;
    for (long q = 0; q < NQ; q++) {
        long ri[K];
        double rd[K];
        ref_knn(X, N, Q + q * D, -1, ri, rd);
        for (long c = 0; c < K; c++)
            for (long e = 0; e < K; e++)
                hit += I[q * K + c] == ri[e];
    }
    CHECK_MSG(hit >= 0.95 * NQ * K, "recall@10 with 4 of 32 lists %.3f", hit / (double)(NQ * K));
    CHECK_ERR(ctx, fl_model_set_param(m, "n_lists", "8"), FL_STATUS_INVALID_ARG, "refit to change it");
    CHECK_ERR(ctx, fl_model_set_param(m, "n_probes", "0"), FL_STATUS_INVALID_ARG, "n_probes");

    /* bad input: outputs untouched */
    CHECK_ERR(ctx, fl_model_set_param(m, "n_probes", "33"), FL_STATUS_INVALID_ARG,
              "n_probes=33: must be <= n_lists=32");
    for (long i = 0; i < NQ * K; i++)
        I[i] = -7;
    CHECK_OK(ctx, fl_model_set_param(m, "n_probes", "32"));
    Q[5] = NAN;
    CHECK_ERR(ctx, fl_model_kneighbors(m, &Qa, K, &Da, &Ia), FL_STATUS_INVALID_ARG, "NaN");
    Q[5] = 0;
    fl_array Qn = fl_array_host(Q, FL_DTYPE_F32, NQ, D - 1);
    CHECK_ERR(ctx, fl_model_kneighbors(m, &Qn, K, &Da, &Ia), FL_STATUS_INVALID_ARG, "features");
    CHECK_ERR(ctx, fl_model_kneighbors(m, &Qa, N + 1, NULL, &Ia), FL_STATUS_INVALID_ARG, "n_neighbors");
    long untouched = 0;
    for (long i = 0; i < NQ * K; i++)
        untouched += I[i] == -7;
    CHECK(untouched == NQ * K);

    /* add: a second index built on the first 2000 rows plus the rest
     * answers like the whole one (every list probed) */
    fl_model *m2;
    CHECK_OK(ctx, fl_model_create(ctx, "ivf_flat", p, &m2));
    fl_array X1 = fl_array_host(X, FL_DTYPE_F32, 2000, D),
             X2 = fl_array_host(X + 2000 * D, FL_DTYPE_F32, N - 2000, D);
    CHECK_OK(ctx, fl_model_fit(m2, &X1, NULL, NULL));
    CHECK_OK(ctx, fl_model_add(m2, &X2));
    double nfit = 0;
    CHECK_OK(ctx, fl_model_attr_scalar(m2, "n_samples_fit_", &nfit));
    CHECK(nfit == N);
    static int64_t I2[NQ * K];
    fl_array I2a = fl_array_host(I2, FL_DTYPE_I64, NQ, K);
    CHECK_OK(ctx, fl_model_kneighbors(m, &Qa, K, NULL, &Ia));
    CHECK_OK(ctx, fl_model_kneighbors(m2, &Qa, K, NULL, &I2a));
    CHECK(memcmp(I, I2, sizeof I) == 0);
    X2.cols = D - 1;
    CHECK_ERR(ctx, fl_model_add(m2, &X2), FL_STATUS_INVALID_ARG, "features");
    CHECK_OK(ctx, fl_model_attr_scalar(m2, "n_samples_fit_", &nfit));
    CHECK(nfit == N);

    /* save / load, and a corrupted buffer */
    void *buf;
    size_t len;
    CHECK_OK(ctx, fl_model_save_buffer(m, &buf, &len));
    fl_model *back = NULL;
    CHECK_OK(ctx, fl_model_load_buffer(ctx, buf, len, &back));
    if (back) {
        CHECK_OK(ctx, fl_model_kneighbors(back, &Qa, K, NULL, &I2a));
        CHECK(memcmp(I, I2, sizeof I) == 0);
        fl_model_free(back);
    }
    ((unsigned char *)buf)[len / 2] ^= 0x40;
    fl_model *bad_model = NULL;
    CHECK(fl_model_load_buffer(ctx, buf, len, &bad_model) == FL_STATUS_CORRUPT && bad_model == NULL);
    fl_buffer_free(buf);

    /* parameters: n_probes > n_lists, n_lists > n */
    fl_model *m3;
    CHECK_OK(ctx, fl_params_set(ctx, p, "n_probes", "64"));
    CHECK_ERR(ctx, fl_params_set(ctx, p, "n_probes", "0"), FL_STATUS_INVALID_ARG, "n_probes");
    CHECK_OK(ctx, fl_model_create(ctx, "ivf_flat", p, &m3));
    CHECK_ERR(ctx, fl_model_fit(m3, &Xa, NULL, NULL), FL_STATUS_INVALID_ARG,
              "n_probes=64: must be <= n_lists=32");
    CHECK(!fl_model_is_fitted(m3));
    fl_model_free(m3);
    CHECK_OK(ctx, fl_params_set(ctx, p, "n_lists", "5000"));
    CHECK_OK(ctx, fl_params_set(ctx, p, "n_probes", "auto"));
    CHECK_OK(ctx, fl_model_create(ctx, "ivf_flat", p, &m3));
    CHECK_ERR(ctx, fl_model_fit(m3, &Xa, NULL, NULL), FL_STATUS_INVALID_ARG,
              "n_lists=5000: must be <= n_samples=3000");
    fl_model_free(m3);

    /* IVF-PQ: every list probed and refine large enough to re-rank every
     * candidate answers exactly; codes only (refine 1) gives quantised
     * distances; save/load keeps the byte codes; bad pq_dim is refused */
    fl_params *pp;
    fl_model *pq;
    CHECK_OK(ctx, fl_params_create(ctx, "ivf_pq", &pp));
    CHECK_OK(ctx, fl_params_set(ctx, pp, "n_lists", "16"));
    CHECK_OK(ctx, fl_params_set(ctx, pp, "n_probes", "16"));
    CHECK_OK(ctx, fl_params_set(ctx, pp, "refine", "400"));
    CHECK_OK(ctx, fl_params_set(ctx, pp, "kmeans_n_iters", "8"));
    CHECK_OK(ctx, fl_params_set(ctx, pp, "random_state", "1"));
    CHECK_OK(ctx, fl_params_set(ctx, pp, "metric", "sqeuclidean"));
    CHECK_OK(ctx, fl_model_create(ctx, "ivf_pq", pp, &pq));
    CHECK_OK(ctx, fl_model_fit(pq, &Xa, NULL, NULL));
    CHECK_OK(ctx, fl_model_kneighbors(pq, &Qa, K, &Da, &Ia));
    bad = 0;
    for (long q = 0; q < NQ; q++) {
        long ri[K];
        double rd[K];
        ref_knn(X, N, Q + q * D, -1, ri, rd);
        for (long c = 0; c < K; c++)
            bad += I[q * K + c] != ri[c] || fabs(Dd[q * K + c] - rd[c]) > 1e-6 * (1 + rd[c]);
    }
    CHECK_MSG(bad == 0, "%ld IVF-PQ results differ from the brute force with a full re-rank", bad);
    double pqdim = 0;
    CHECK_OK(ctx, fl_model_attr_scalar(pq, "pq_dim_", &pqdim));
    CHECK(pqdim == D / 4);
    CHECK_OK(ctx, fl_model_save_buffer(pq, &buf, &len));
    back = NULL;
    CHECK_OK(ctx, fl_model_load_buffer(ctx, buf, len, &back));
    if (back) {
        CHECK_OK(ctx, fl_model_kneighbors(back, &Qa, K, NULL, &I2a));
        CHECK(memcmp(I, I2, sizeof I) == 0);
        fl_model_free(back);
    }
    ((unsigned char *)buf)[len - 9] ^= 0x01;
    bad_model = NULL;
    CHECK(fl_model_load_buffer(ctx, buf, len, &bad_model) == FL_STATUS_CORRUPT && bad_model == NULL);
    fl_buffer_free(buf);
    CHECK_ERR(ctx, fl_model_set_param(pq, "pq_dim", "2"), FL_STATUS_INVALID_ARG, "refit to change it");
    fl_model_free(pq);
    CHECK_OK(ctx, fl_params_set(ctx, pp, "pq_dim", "3"));
    CHECK_OK(ctx, fl_model_create(ctx, "ivf_pq", pp, &pq));
    CHECK_ERR(ctx, fl_model_fit(pq, &Xa, NULL, NULL), FL_STATUS_INVALID_ARG,
              "pq_dim=3: must divide n_features=16");
    fl_model_free(pq);
    fl_params_free(pp);

    /* CAGRA: a graph over the blobs finds the true neighbours; the search
     * knobs change after the build; X=None leaves each node out; a saved
     * graph loads and answers the same; a corrupted one is refused */
    fl_params *cp;
    fl_model *cg;
    CHECK_OK(ctx, fl_params_create(ctx, "cagra", &cp));
    CHECK_OK(ctx, fl_params_set(ctx, cp, "graph_degree", "16"));
    CHECK_OK(ctx, fl_params_set(ctx, cp, "intermediate_graph_degree", "32"));
    CHECK_OK(ctx, fl_params_set(ctx, cp, "metric", "sqeuclidean"));
    CHECK_OK(ctx, fl_params_set(ctx, cp, "random_state", "3"));
    CHECK_OK(ctx, fl_model_create(ctx, "cagra", cp, &cg));
    CHECK_OK(ctx, fl_model_fit(cg, &Xa, NULL, NULL));
    CHECK_OK(ctx, fl_model_set_param(cg, "itopk_size", "128"));
    CHECK_OK(ctx, fl_model_kneighbors(cg, &Qa, K, &Da, &Ia));
    hit = 0;
    for (long q = 0; q < NQ; q++) {
        long ri[K];
        double rd[K];
        ref_knn(X, N, Q + q * D, -1, ri, rd);
        for (long c = 0; c < K; c++)
            for (long e = 0; e < K; e++)
                hit += I[q * K + c] == ri[e];
    }
    CHECK_MSG(hit >= 0.95 * NQ * K, "CAGRA recall@10 %.3f", hit / (double)(NQ * K));
    static int64_t Iself[N * 2];
    fl_array Isa = fl_array_host(Iself, FL_DTYPE_I64, N, 2);
    CHECK_OK(ctx, fl_model_kneighbors(cg, NULL, 2, NULL, &Isa));
    long selfhit = 0;
    for (long i = 0; i < N; i++)
        selfhit += Iself[2 * i] == i || Iself[2 * i + 1] == i;
    CHECK(selfhit == 0);
    CHECK_ERR(ctx, fl_model_set_param(cg, "graph_degree", "8"), FL_STATUS_INVALID_ARG, "refit to change it");
    CHECK_OK(ctx, fl_model_save_buffer(cg, &buf, &len));
    back = NULL;
    CHECK_OK(ctx, fl_model_load_buffer(ctx, buf, len, &back));
    if (back) {
        CHECK_OK(ctx, fl_model_kneighbors(back, &Qa, K, NULL, &I2a));
        CHECK(memcmp(I, I2, sizeof I) == 0);
        fl_model_free(back);
    }
    ((unsigned char *)buf)[len / 3] ^= 0x10;
    bad_model = NULL;
    CHECK(fl_model_load_buffer(ctx, buf, len, &bad_model) == FL_STATUS_CORRUPT && bad_model == NULL);
    fl_buffer_free(buf);
    fl_model_free(cg);
    CHECK_OK(ctx, fl_params_set(ctx, cp, "intermediate_graph_degree", "8"));
    CHECK_OK(ctx, fl_model_create(ctx, "cagra", cp, &cg));
    CHECK_ERR(ctx, fl_model_fit(cg, &Xa, NULL, NULL), FL_STATUS_INVALID_ARG,
              "intermediate_graph_degree=8: must be >= graph_degree=16");
    CHECK(!fl_model_is_fitted(cg));
    fl_model_free(cg);
    fl_params_free(cp);

    /* the exact model keeps its raw data: every parameter is a search one */
    fl_model *e;
    CHECK_OK(ctx, fl_knn_fit(ctx, &Xa, NULL, &e));
    CHECK_OK(ctx, fl_model_set_param(e, "metric", "manhattan"));
    int64_t i1[NQ];
    fl_array i1a = fl_array_host(i1, FL_DTYPE_I64, NQ, 1);
    CHECK_OK(ctx, fl_model_kneighbors(e, &Qa, 1, NULL, &i1a));
    long wrong = 0;
    for (long q = 0; q < NQ; q++) {
        double best = INFINITY;
        long bi = -1;
        for (long i = 0; i < N; i++) {
            double s = 0;
            for (long f = 0; f < D; f++)
                s += fabs((double)Q[q * D + f] - X[i * D + f]);
            if (s < best)
                best = s, bi = i;
        }
        wrong += i1[q] != bi;
    }
    CHECK_MSG(wrong == 0, "%ld manhattan nearest neighbours differ after set_param", wrong);
    CHECK_ERR(ctx, fl_model_set_param(e, "radius", "-1"), FL_STATUS_INVALID_ARG, "radius=-1");
    CHECK_ERR(ctx, fl_model_set_param(e, "colour", "red"), FL_STATUS_INVALID_ARG, "colour");
    fl_model_free(e);

    fl_model_free(m2);
    fl_model_free(m);
    fl_params_free(p);
    fl_ctx_free(ctx);
    test_gpu();
    TEST_MAIN_END();
}
