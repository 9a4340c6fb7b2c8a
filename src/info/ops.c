/*
 * ops.c — the op table of the cost model and the models of the primitives
 * flashlib does not run yet.
 *
 * Each op lists its own parameters by scikit-learn name (for the
 * primitives that exist, the very table execution validates with: KMeans
 * uses fli_kmeans_params) and a few info-only parameters that describe the
 * situation. The tables of the not-yet-implemented primitives belong in
 * src/algo/<op>_params.c once the primitive exists; they are here so that
 * estimates accept the names users will use.
 *
 * Models of the missing primitives count the FLOPs and bytes of the
 * algorithm as a GPU implementation would run it (fused distance tiles,
 * streaming passes, gathers) and start at the roofline tier; where the
 * work depends on the data (graph rounds, neighbour counts, tree shapes)
 * the part is heuristic and says so.
 */
#include <math.h>
#include <string.h>

#include "algo/cagra_params.h"
#include "algo/ivf_params.h"
#include "algo/kmeans_params.h"
#include "algo/knn_params.h"
#include "info/info_internal.h"

extern const char fli_gemm_variant_choices[];
extern const char fli_eigh_variant_choices[];
extern const char fli_polar_variant_choices[];
int fli_est_eigh(fli_est *e);
int fli_est_polar(fli_est *e);
int fli_est_cholqr2(fli_est *e);
int fli_est_decomp_gpu(fli_est *e, int is_pca, int rnd, double k, double it, double over);
int fli_est_split_basis(fli_est *e);

#define P_INT(name, def, lo, hi, words, aliases, doc)                                                        \
    {                                                                                                        \
        name, FL_PARAM_INT, def, lo, hi, words, aliases, doc                                                 \
    }
#define P_FLT(name, def, lo, hi, words, aliases, doc)                                                        \
    {                                                                                                        \
        name, FL_PARAM_FLOAT, def, lo, hi, words, aliases, doc                                               \
    }
#define P_CH(name, def, choices, aliases, doc)                                                               \
    {                                                                                                        \
        name, FL_PARAM_CHOICE, def, 0, 0, choices, aliases, doc                                              \
    }
#define P_BOOL(name, def, doc)                                                                               \
    {                                                                                                        \
        name, FL_PARAM_BOOL, def, 0, 1, NULL, NULL, doc                                                      \
    }
#define COUNT(t) ((int)(sizeof t / sizeof *t))

static const char NOT_IMPL[] = "not implemented in flashlib yet: FLOPs and bytes of the algorithm as a GPU "
                               "implementation would run it, x roofline";

/* ---- parameter tables ---------------------------------------------------- */

static const fl_param_def x_threads[] = {
    P_INT("threads", "auto", 1, 4096, "auto", NULL, "CPU threads (CPU device; auto = the table's cores)"),
};
static const fl_param_def x_tol[] = {
    P_FLT("tol", "none", 0, 1, "none", NULL, "largest acceptable relative error: picks the cheapest variant"),
    P_INT("threads", "auto", 1, 4096, "auto", NULL, "CPU threads (CPU device)"),
};

static const fl_param_def p_dbscan[] = {
    P_FLT("eps", "0.5", 0, 1e300, NULL, NULL, "neighbourhood radius"),
    P_INT("min_samples", "5", 1, 1e9, NULL, NULL, "points in a neighbourhood for a core point"),
    P_CH("metric", "euclidean", "euclidean|cosine|manhattan", NULL, "distance"),
    P_CH("algorithm", "auto", "auto|brute|ball_tree|kd_tree", NULL, "neighbour search (GPU: brute tiles)"),
};
static const fl_param_def x_dbscan[] = {
    P_FLT("avg_neighbors", "auto", 0, 1e9, "auto", NULL,
          "mean neighbours within eps (data-dependent; auto = 2 x min_samples)"),
    P_INT("threads", "auto", 1, 4096, "auto", NULL, "CPU threads (CPU device)"),
};
static const fl_param_def p_hdbscan[] = {
    P_INT("min_cluster_size", "5", 2, 1e9, NULL, NULL, "smallest cluster"),
    P_INT("min_samples", "none", 1, 1e9, "none", NULL, "core-distance neighbours; none = min_cluster_size"),
    P_CH("cluster_selection_method", "eom", "eom|leaf", NULL, "how clusters are chosen from the tree"),
};
static const fl_param_def p_spectral[] = {
    P_INT("n_clusters", "8", 1, 1e9, NULL, "K|k", "clusters"),
    P_CH("affinity", "rbf", "rbf|nearest_neighbors", NULL, "how the graph is built"),
    P_INT("n_neighbors", "10", 1, 1e9, NULL, NULL, "neighbours of the nearest_neighbors graph"),
    P_INT("n_init", "10", 1, 1e6, NULL, NULL, "k-means runs on the embedding"),
    P_CH("eigen_solver", "arpack", "arpack|lobpcg|amg", NULL, "eigen solver"),
};
static const fl_param_def p_pca[] = {
    P_INT("n_components", "none", 1, 1e9, "none", "K|k", "components kept (none = min(n, d))"),
    P_CH("svd_solver", "auto", "auto|full|covariance_eigh|randomized|arpack", NULL, "solver"),
    P_BOOL("whiten", "false", "scale components to unit variance"),
    P_INT("iterated_power", "auto", 0, 1e6, "auto", "n_iter",
          "randomized: power iterations (auto: 7 when n_components < 0.1 x min(n, d), else 4)"),
    P_INT("n_oversamples", "10", 1, 1e6, NULL, NULL, "randomized: extra random directions"),
    P_INT("eigh_steps", "auto", 0, 12, "auto", NULL,
          "covariance_eigh on the GPU: the top-k solver's steps (what the fit logs; auto: a spectrum falling "
          "as 1/i)"),
    P_INT("eigh_degree", "auto", 0, 120, "auto", NULL,
          "covariance_eigh on the GPU: the top-k solver's filter degrees summed over its steps (auto: as "
          "eigh_steps)"),
};
static const fl_param_def p_tsvd[] = {
    P_INT("n_components", "2", 1, 1e9, NULL, "K|k", "components"),
    P_INT("n_iter", "5", 0, 1e6, NULL, NULL, "power iterations of the randomised solver"),
    P_CH("algorithm", "randomized", "randomized|arpack", NULL, "solver"),
    P_INT("n_oversamples", "10", 1, 1e6, NULL, NULL, "randomized: extra random directions"),
};
static const fl_param_def p_umap[] = {
    P_INT("n_neighbors", "15", 2, 1e6, NULL, "k", "neighbours of the graph"),
    P_INT("n_components", "2", 1, 1e6, NULL, NULL, "embedding dimension"),
    P_INT("n_epochs", "none", 1, 1e7, "none", NULL, "epochs (none = 500 up to 10,000 samples, else 200)"),
    P_INT("negative_sample_rate", "5", 0, 1e3, NULL, NULL, "negative samples per positive edge"),
};
static const fl_param_def p_tsne[] = {
    P_INT("n_components", "2", 1, 1e6, NULL, NULL, "embedding dimension"),
    P_FLT("perplexity", "30", 1, 1e6, NULL, NULL, "effective neighbours"),
    P_INT("max_iter", "1000", 250, 1e9, NULL, "n_iter", "gradient iterations"),
    P_CH("method", "barnes_hut", "barnes_hut|exact", NULL, "gradient method"),
};
static const fl_param_def p_linreg[] = {
    P_BOOL("fit_intercept", "true", "centre the data"),
};
static const fl_param_def p_ridge[] = {
    P_FLT("alpha", "1.0", 0, 1e300, NULL, NULL, "L2 penalty"),
    P_BOOL("fit_intercept", "true", "centre the data"),
    P_CH("solver", "auto", "auto|cholesky|svd|lsqr|sparse_cg|sag|saga|lbfgs", NULL,
         "solver (modelled: cholesky)"),
};
static const fl_param_def p_logreg[] = {
    P_FLT("C", "1.0", 0, 1e300, NULL, NULL, "inverse penalty"),
    P_INT("max_iter", "100", 1, 1e9, NULL, "max_iters", "solver iterations"),
    P_FLT("tol", "1e-4", 0, 1e300, NULL, NULL, "stopping tolerance"),
    P_CH("solver", "lbfgs", "lbfgs|newton-cg|liblinear|sag|saga|newton-cholesky", NULL,
         "solver (modelled: lbfgs)"),
};
static const fl_param_def x_classes[] = {
    P_INT("n_classes", "2", 2, 1e7, NULL, NULL, "classes in y"),
    P_INT("expected_iter", "max_iter", 1, 1e9, "max_iter", "n_iter",
          "iterations to model (default max_iter)"),
    P_INT("threads", "auto", 1, 4096, "auto", NULL, "CPU threads (CPU device)"),
};
static const fl_param_def p_mnb[] = {
    P_FLT("alpha", "1.0", 0, 1e300, NULL, NULL, "additive smoothing"),
};
static const fl_param_def x_nb[] = {
    P_INT("n_classes", "2", 2, 1e7, NULL, NULL, "classes in y"),
    P_INT("threads", "auto", 1, 4096, "auto", NULL, "CPU threads (CPU device)"),
};
static const fl_param_def p_rf[] = {
    P_INT("n_estimators", "100", 1, 1e7, NULL, NULL, "trees"),
    P_INT("max_depth", "none", 1, 1e4, "none", NULL, "depth limit (none: grown until pure)"),
    P_CH("max_features", "sqrt", "sqrt|log2|all", NULL, "features tried per split"),
    P_INT("min_samples_split", "2", 2, 1e9, NULL, NULL, "samples needed to split"),
    P_BOOL("bootstrap", "true", "sample rows with replacement per tree"),
};
static const fl_param_def x_rf[] = {
    P_INT("n_bins", "128", 2, 65536, NULL, NULL, "histogram bins per feature (GPU histogram trees)"),
    P_INT("n_classes", "2", 2, 1e7, NULL, NULL, "classes in y"),
    P_INT("threads", "auto", 1, 4096, "auto", NULL, "CPU threads (CPU device)"),
};
static const fl_param_def p_scaler[] = {
    P_BOOL("with_mean", "true", "centre"),
    P_BOOL("with_std", "true", "scale to unit variance"),
};
static const fl_param_def x_gemm[] = {
    P_FLT("tol", "none", 0, 1, "none", NULL, "largest acceptable relative error: picks the cheapest variant"),
    P_CH("variant", "auto", fli_gemm_variant_choices, NULL,
         "a variant by name (auto: tol, else the dtype's)"),
    P_INT("num_moduli", "16", 2, 20, NULL, NULL, "moduli of gemm_ozaki_int8 (Ozaki scheme II)"),
    P_INT("threads", "auto", 1, 4096, "auto", NULL, "CPU threads (CPU device)"),
};
static const fl_param_def x_eigh[] = {
    P_FLT("tol", "none", 0, 1, "none", NULL, "largest acceptable relative error: picks the cheapest variant"),
    P_CH("variant", "auto", fli_eigh_variant_choices, NULL, "a variant by name"),
    P_INT("n_components", "auto", 1, 1e9, "auto", "K|k", "eigenpairs wanted (eigh_halko)"),
    P_INT("iterations", "auto", 0, 1e9, "auto", NULL,
          "polar steps of eigh_qdwh / eigh_qdwh_ns in all (what fl_eigh reports; auto: typical for n)"),
};
static const fl_param_def x_polar[] = {
    P_FLT("tol", "none", 0, 1, "none", NULL, "largest acceptable relative error: picks the cheapest variant"),
    P_CH("variant", "auto", fli_polar_variant_choices, NULL, "a variant by name"),
    P_INT("iterations", "auto", 0, 1e9, "auto", NULL,
          "steps (what fl_polar reports; auto: the variant's typical)"),
};
static const fl_param_def x_split[] = {
    P_INT("n_parts", "3", 1, 4, NULL, NULL, "parts per element"),
    P_CH("format", "bf16", "bf16|fp16|tf32", NULL, "format of the parts"),
};

/* ---- helpers -------------------------------------------------------------- */

static void not_impl(fli_est *e, const char *variant, const char *reason)
{
    snprintf(e->r->backend, sizeof e->r->backend, "none");
    snprintf(e->r->variant, sizeof e->r->variant, "%s", variant);
    snprintf(e->r->reason, sizeof e->r->reason, "%s", reason);
    fli_note(e, NOT_IMPL);
}

static double num_or(const fli_est *e, const char *name, double def)
{
    double v = fli_p_num(e, name);
    return isfinite(v) ? v : def;
}

static double child(fli_est *e, int parent, const char *label, const char *op, double a, double b, double c,
                    int ndim, const char *params)
{
    int64_t s[3] = {(int64_t)a, (int64_t)b, (int64_t)c};
    for (int i = 0; i < ndim; i++)
        if (s[i] < 1)
            s[i] = 1;
    return fli_child(e, parent, label, op, s, ndim, params, 1);
}

#define PARAMS(buf, ...) snprintf(buf, sizeof buf, __VA_ARGS__)

static int nd_ok(fli_est *e, double n, double d, double mult)
{
    return fli_bytes_ok(e, n * d * mult, "the data and its workspace");
}

/* ---- clustering --------------------------------------------------------------- */

static int est_dbscan(fli_est *e)
{
    double n = (double)e->shape[0], d = (double)e->shape[1];
    double ms = fli_p_num(e, "min_samples"), nb = num_or(e, "avg_neighbors", 2 * ms);
    if (!nd_ok(e, n, d, 8) || !fli_bytes_ok(e, n * nb * 8, "the neighbour graph"))
        return FL_INFO_EINVAL;
    not_impl(e, "brute-tiles",
             "brute-force neighbourhoods in fused distance tiles, then connected components "
             "of the core graph (modelled)");
    fli_roof_leaf(e, 0, "neighbourhoods", "fused distance tiles counting points within eps", 1, 2 * n * n * d,
                  FL_INFO_PREC_FP32, FLI_CLASS_FUSED, 2 * n * d * 4 + n * 8, 2, FL_INFO_TIER_ROOFLINE);
    fli_roof_leaf(e, 0, "core graph", "second pass writing the edges of core points (CSR)", 1, 2 * n * n * d,
                  FL_INFO_PREC_FP32, FLI_CLASS_FUSED, 2 * n * d * 4 + n * nb * 4, 3, FL_INFO_TIER_HEURISTIC);
    char p[32];
    (void)p;
    if (child(e, 0, "connected components", "connected_components", n, n * nb, 0, 2, NULL) < 0)
        return FL_INFO_EINVAL;
    e->r->peak_memory_bytes = (uint64_t)(n * d * 4 + n * nb * 4 + n * 16);
    fli_note(e, "the core graph's size depends on the data: avg_neighbors (default 2 x min_samples) sets it");
    return 0;
}

static int est_hdbscan(fli_est *e)
{
    double n = (double)e->shape[0], d = (double)e->shape[1];
    double mcs = fli_p_num(e, "min_cluster_size"), ms = num_or(e, "min_samples", mcs);
    if (!nd_ok(e, n, d, 8))
        return FL_INFO_EINVAL;
    not_impl(e, "brute-boruvka",
             "core distances by brute kNN, Boruvka MST of mutual reachability in fused "
             "tiles, condensed tree (modelled)");
    char p[64];
    PARAMS(p, "n_neighbors=%.0f", ms);
    if (child(e, 0, "core distances (kNN)", "knn", n, n, d, 3, p) < 0)
        return FL_INFO_EINVAL;
    double rounds = ceil(log2(n > 2 ? n : 2));
    fli_roof_leaf(e, 0, "mst (Boruvka rounds)",
                  "each round: fused tiles find every component's lightest edge", rounds, 2 * n * n * d,
                  FL_INFO_PREC_FP32, FLI_CLASS_FUSED, 2 * n * d * 4 + n * 16, 4, FL_INFO_TIER_HEURISTIC);
    fli_roof_leaf(e, 0, "condense + extract", "sort the MST, build and prune the cluster tree", 1, 40 * n,
                  FL_INFO_PREC_FP32, FLI_CLASS_GATHER, 64 * n, 20, FL_INFO_TIER_HEURISTIC);
    e->r->peak_memory_bytes = (uint64_t)(n * d * 4 + n * ms * 8 + n * 48);
    fli_note(e, "Boruvka rounds are ceil(log2 n) at most; fewer on clustered data");
    return 0;
}

static int est_spectral(fli_est *e)
{
    double n = (double)e->shape[0], d = (double)e->shape[1], k = fli_p_num(e, "n_clusters");
    int knn = fli_p_word(e, "affinity") == 1;
    double nn = fli_p_num(e, "n_neighbors");
    if (k > n)
        return fli_info_fail(e, "spectral_clustering: n_clusters=%.0f: must be in [1, n_samples=%.0f]", k, n);
    if (!nd_ok(e, n, d, 8) || (!knn && !fli_bytes_ok(e, n * n * 4 * 2, "the dense affinity matrix")))
        return FL_INFO_EINVAL;
    not_impl(e, knn ? "knn-graph" : "dense-rbf",
             "affinity graph, Lanczos eigenvectors of the normalised Laplacian, k-means on the embedding "
             "(modelled)");
    char p[96];
    double mv_bytes;
    if (knn) {
        PARAMS(p, "n_neighbors=%.0f", nn);
        if (child(e, 0, "affinity (kNN graph)", "knn", n, n, d, 3, p) < 0)
            return FL_INFO_EINVAL;
        mv_bytes = n * nn * 8 + n * 8;
    } else {
        fli_roof_leaf(e, 0, "affinity (dense rbf)", "n x n kernel matrix", 1, 2 * n * n * d + 20 * n * n,
                      FL_INFO_PREC_FP32, FLI_CLASS_FUSED, n * n * 4 + n * d * 4, 2, FL_INFO_TIER_ROOFLINE);
        mv_bytes = n * n * 4;
    }
    double matvecs = 20 * k + 100;
    fli_roof_leaf(e, 0, "eigenvectors (Lanczos)", "matrix-vector products with the Laplacian", matvecs,
                  knn ? 2 * n * nn : 2 * n * n, FL_INFO_PREC_FP32, FLI_CLASS_STREAM, mv_bytes, 2,
                  FL_INFO_TIER_HEURISTIC);
    PARAMS(p, "n_clusters=%.0f,n_init=%.0f,input=device,max_iter=300", k, fli_p_num(e, "n_init"));
    if (child(e, 0, "k-means on the embedding", "kmeans", n, k, 0, 2, p) < 0)
        return FL_INFO_EINVAL;
    e->r->peak_memory_bytes = (uint64_t)(n * d * 4 + (knn ? n * nn * 8 : n * n * 4) + n * k * 8);
    fli_note(
        e, "Lanczos iterations depend on the spectrum: 20 x n_clusters + 100 matrix-vector products assumed");
    return 0;
}

/* ---- neighbours ------------------------------------------------------------------ */

/* ---- decomposition, manifold ---------------------------------------------------------- */

static int est_pca(fli_est *e)
{
    double n = (double)e->shape[0], d = (double)e->shape[1];
    double kc = num_or(e, "n_components", n < d ? n : d);
    if (kc > (n < d ? n : d))
        return fli_info_fail(e, "pca: n_components=%.0f: must be <= min(n_samples, n_features)=%.0f", kc,
                             n < d ? n : d);
    if (!nd_ok(e, n, d, 8))
        return FL_INFO_EINVAL;
    /* scikit-learn's svd_solver='auto' (route_decomp.c); the GPU runs covariance_eigh and randomized */
    const int sw = fli_p_word(e, "svd_solver"); /* auto|full|covariance_eigh|randomized|arpack */
    const double mn = n < d ? n : d;
    int solver = sw == 2   ? 2
                 : sw == 3 ? 3
                 : sw == 0 ? (d <= 1000 && n >= 10 * d                ? 2
                              : (n > 500 || d > 500) && kc < 0.8 * mn ? 3
                                                                      : 1)
                           : 1;
    if (e->dev->is_gpu && e->dtype != FL_DTYPE_F64 && (solver == 2 || solver == 3)) {
        double it = num_or(e, "iterated_power", kc < 0.1 * mn ? 7 : 4);
        snprintf(e->r->variant, sizeof e->r->variant, "%s", solver == 2 ? "covariance_eigh" : "randomized");
        snprintf(e->r->reason, sizeof e->r->reason, "%s%s on the GPU (fl_pca_fit, X in device memory)",
                 sw == 0 ? "svd_solver=auto, scikit-learn's rule: " : "svd_solver=", e->r->variant);
        return fli_est_decomp_gpu(e, 1, solver == 3, kc, it, fli_p_num(e, "n_oversamples"));
    }
    /* the CPU (and the GPU's other solvers, which run on the CPU): the covariance route's roofline */
    snprintf(e->r->variant, sizeof e->r->variant, "%s", solver == 2 ? "covariance_eigh" : "full");
    snprintf(e->r->reason, sizeof e->r->reason, "%s",
             "on the CPU (the GPU runs covariance_eigh and randomized on float32): modelled as centre, "
             "covariance by GEMM, eigendecomposition of the d x d covariance, at roofline");
    fli_roof_leaf(e, 0, "centre", "column means, subtract", 1, 2 * n * d, FL_INFO_PREC_FP32, FLI_CLASS_STREAM,
                  3 * n * d * 4, 2, FL_INFO_TIER_ROOFLINE);
    if (child(e, 0, "covariance (cov_gemm)", "cov_gemm", n, d, 0, 2, NULL) < 0)
        return FL_INFO_EINVAL;
    if (child(e, 0, "eigendecomposition (eigh)", "eigh", d, 0, 0, 1, NULL) < 0)
        return FL_INFO_EINVAL;
    e->r->peak_memory_bytes = (uint64_t)(n * d * 4 * 2 + d * d * 4 * 3);
    return 0;
}

static int est_tsvd(fli_est *e)
{
    double n = (double)e->shape[0], d = (double)e->shape[1];
    double kc = fli_p_num(e, "n_components"), it = fli_p_num(e, "n_iter"), q = kc + 10;
    if (kc >= d)
        return fli_info_fail(e, "truncated_svd: n_components=%.0f: must be < n_features=%.0f", kc, d);
    if (!nd_ok(e, n, d, 8))
        return FL_INFO_EINVAL;
    if (e->dev->is_gpu && e->dtype != FL_DTYPE_F64 && fli_p_word(e, "algorithm") == 0) {
        snprintf(e->r->variant, sizeof e->r->variant, "randomized");
        snprintf(e->r->reason, sizeof e->r->reason,
                 "algorithm=randomized on the GPU (fl_truncated_svd_fit, X in "
                 "device memory)");
        return fli_est_decomp_gpu(e, 0, 1, kc, it, fli_p_num(e, "n_oversamples"));
    }
    snprintf(e->r->variant, sizeof e->r->variant, "randomized");
    snprintf(e->r->reason, sizeof e->r->reason, "%s",
             "on the CPU: randomised range finder, power iterations of X and X^T on n_components + 10 "
             "columns, QR, small SVD, at roofline");
    fli_roof_leaf(e, 0, "products with X and X^T", "two tall-skinny GEMMs per power iteration", 2 * it + 2,
                  2 * n * d * q, FL_INFO_PREC_FP32, FLI_CLASS_GEMM, n * d * 4 + (n + d) * q * 4, 1,
                  FL_INFO_TIER_ROOFLINE);
    fli_roof_leaf(e, 0, "orthonormalise (QR)", "tall-skinny QR of the range", it + 1, 4 * n * q * q,
                  FL_INFO_PREC_FP32, FLI_CLASS_SOLVER, 3 * n * q * 4, 6, FL_INFO_TIER_ROOFLINE);
    fli_roof_leaf(e, 0, "small SVD", "q x d SVD", 1, 10 * q * q * d, FL_INFO_PREC_FP32, FLI_CLASS_SOLVER,
                  q * d * 4 * 4, 20, FL_INFO_TIER_ROOFLINE);
    e->r->peak_memory_bytes = (uint64_t)(n * d * 4 + (n + d) * q * 4 * 2);
    return 0;
}

static int est_umap(fli_est *e)
{
    double n = (double)e->shape[0], d = (double)e->shape[1], k = fli_p_num(e, "n_neighbors");
    double dim = fli_p_num(e, "n_components"), neg = fli_p_num(e, "negative_sample_rate");
    double ep = num_or(e, "n_epochs", n <= 10000 ? 500 : 200), E = n * k;
    if (k > n)
        return fli_info_fail(e, "umap: n_neighbors=%.0f: must be <= n_samples=%.0f", k, n);
    if (!nd_ok(e, n, d, 8))
        return FL_INFO_EINVAL;
    not_impl(e, "brute-knn-sgd", "kNN graph, fuzzy simplicial set, SGD with negative sampling (modelled)");
    char p[48];
    PARAMS(p, "n_neighbors=%.0f", k);
    if (child(e, 0, "kNN graph", "knn", n, n, d, 3, p) < 0)
        return FL_INFO_EINVAL;
    fli_roof_leaf(e, 0, "fuzzy set", "smooth kNN distances, symmetrise", 1, 60 * E, FL_INFO_PREC_FP32,
                  FLI_CLASS_GATHER, 24 * E, 6, FL_INFO_TIER_HEURISTIC);
    fli_roof_leaf(e, 0, "layout (SGD epochs)", "attractive + negative-sample updates, random gathers", ep,
                  E * (1 + neg) * dim * 12, FL_INFO_PREC_FP32, FLI_CLASS_GATHER, E * (1 + neg) * dim * 4 * 3,
                  1, FL_INFO_TIER_HEURISTIC);
    e->r->peak_memory_bytes = (uint64_t)(n * d * 4 + E * 16 + n * dim * 4);
    fli_note(e, "the kNN graph is modelled as an exact brute-force search; approximate graphs are cheaper at "
                "large n");
    return 0;
}

static int est_tsne(fli_est *e)
{
    double n = (double)e->shape[0], d = (double)e->shape[1], dim = fli_p_num(e, "n_components");
    double perp = fli_p_num(e, "perplexity"), it = fli_p_num(e, "max_iter");
    int exact = fli_p_word(e, "method") == 1;
    double k = 3 * perp + 1 < n - 1 ? 3 * perp + 1 : n - 1;
    if (k < 1)
        k = 1;
    if (!nd_ok(e, n, d, 8) || (exact && !fli_bytes_ok(e, n * n * 4, "the dense affinities")))
        return FL_INFO_EINVAL;
    not_impl(e, exact ? "exact" : "barnes-hut",
             "kNN affinities, gradient descent of the KL divergence "
             "(modelled)");
    char p[48];
    PARAMS(p, "n_neighbors=%.0f", k);
    if (child(e, 0, "kNN", "knn", n, n, d, 3, p) < 0)
        return FL_INFO_EINVAL;
    fli_roof_leaf(e, 0, "affinities", "binary search of each row's bandwidth", 1, n * k * 200,
                  FL_INFO_PREC_FP32, FLI_CLASS_STREAM, n * k * 8 * 2, 4, FL_INFO_TIER_ROOFLINE);
    double rep = exact ? n * n * dim * 10 : n * log2(n > 2 ? n : 2) * dim * 30;
    fli_roof_leaf(e, 0, "gradient iterations", exact ? "all pairs" : "Barnes-Hut tree, attractive kNN terms",
                  it, rep + n * k * dim * 6, FL_INFO_PREC_FP32, exact ? FLI_CLASS_FUSED : FLI_CLASS_GATHER,
                  exact ? n * dim * 8 : n * 64 + n * k * 8, exact ? 2 : 8, FL_INFO_TIER_HEURISTIC);
    e->r->peak_memory_bytes = (uint64_t)(n * d * 4 + n * k * 12 + (exact ? n * n * 4 : n * 96));
    return 0;
}

/* ---- linear models, classification, preprocessing ------------------------------------------ */

static int est_linear(fli_est *e)
{
    double n = (double)e->shape[0], d = (double)e->shape[1];
    if (!nd_ok(e, n, d, 8))
        return FL_INFO_EINVAL;
    int ridge = !strcmp(e->op->pub.name, "ridge");
    not_impl(e, "normal-equations",
             ridge ? "centre, X^T X + alpha I by GEMM, Cholesky solve (modelled)"
                   : "centre, X^T X by GEMM, Cholesky solve (modelled)");
    fli_roof_leaf(e, 0, "centre", "column means of X and y", 1, 2 * n * d, FL_INFO_PREC_FP32,
                  FLI_CLASS_STREAM, n * d * 4 + n * 4, 2, FL_INFO_TIER_ROOFLINE);
    if (child(e, 0, "X^T X (cov_gemm)", "cov_gemm", n, d, 0, 2, NULL) < 0)
        return FL_INFO_EINVAL;
    fli_roof_leaf(e, 0, "X^T y", "GEMV", 1, 2 * n * d, FL_INFO_PREC_FP32, FLI_CLASS_STREAM, n * d * 4 + n * 4,
                  1, FL_INFO_TIER_ROOFLINE);
    fli_roof_leaf(e, 0, "cholesky solve", "d x d factorisation and two triangular solves", 1,
                  d * d * d / 3 + 2 * d * d, FL_INFO_PREC_FP32, FLI_CLASS_SOLVER, d * d * 4 * 3, d / 64 + 4,
                  FL_INFO_TIER_ROOFLINE);
    e->r->peak_memory_bytes = (uint64_t)(n * d * 4 + d * d * 4 * 2 + n * 4);
    return 0;
}

static double iterations(const fli_est *e, double max_iter)
{
    return fli_p_word(e, "expected_iter") < 0 ? fmin(fli_p_num(e, "expected_iter"), max_iter) : max_iter;
}

static int est_logreg(fli_est *e)
{
    double n = (double)e->shape[0], d = (double)e->shape[1], nc = fli_p_num(e, "n_classes");
    double c = nc <= 2 ? 1 : nc, it = iterations(e, fli_p_num(e, "max_iter"));
    if (!nd_ok(e, n, d, 8))
        return FL_INFO_EINVAL;
    not_impl(e, "lbfgs",
             "L-BFGS on the penalised log-loss; each evaluation a forward and a backward GEMM "
             "(modelled)");
    fli_roof_leaf(e, 0, "loss + gradient evaluations", "X W, softmax, X^T R: two passes over X", it * 1.2,
                  4 * n * d * c + 10 * n * c, FL_INFO_PREC_FP32, c >= 16 ? FLI_CLASS_GEMM : FLI_CLASS_STREAM,
                  2 * n * d * 4 + 4 * n * c * 4, 6, FL_INFO_TIER_ROOFLINE);
    fli_roof_leaf(e, 0, "L-BFGS update", "two-loop recursion over the 10 last pairs", it, 40 * d * c,
                  FL_INFO_PREC_FP32, FLI_CLASS_STREAM, 40 * d * c * 4, 4, FL_INFO_TIER_ROOFLINE);
    e->r->iterations = it;
    if (!fli_p_given(e, "expected_iter"))
        fli_note(e, "assumes max_iter iterations: an upper bound (pass expected_iter=N to model fewer)");
    e->r->peak_memory_bytes = (uint64_t)(n * d * 4 + n * c * 8 + 22 * d * c * 4);
    return 0;
}

static int est_mnb(fli_est *e)
{
    double n = (double)e->shape[0], d = (double)e->shape[1], c = fli_p_num(e, "n_classes");
    if (!nd_ok(e, n, d, 8))
        return FL_INFO_EINVAL;
    not_impl(e, "gemm", "class-feature counts as one GEMM Y^T X, then log-probabilities (modelled)");
    fli_roof_leaf(e, 0, "feature counts (Y^T X)", "one pass over X", 1, 2 * n * d * c, FL_INFO_PREC_FP32,
                  c >= 16 ? FLI_CLASS_GEMM : FLI_CLASS_STREAM, n * d * 4 + n * 4 + c * d * 4, 2,
                  FL_INFO_TIER_ROOFLINE);
    fli_roof_leaf(e, 0, "log probabilities", "smoothing and normalisation", 1, 4 * c * d, FL_INFO_PREC_FP32,
                  FLI_CLASS_STREAM, 2 * c * d * 4, 2, FL_INFO_TIER_ROOFLINE);
    e->r->peak_memory_bytes = (uint64_t)(n * d * 4 + c * d * 8);
    return 0;
}

static int est_rf(fli_est *e)
{
    double n = (double)e->shape[0], d = (double)e->shape[1], trees = fli_p_num(e, "n_estimators");
    double bins = fli_p_num(e, "n_bins"), nc = fli_p_num(e, "n_classes");
    int mf = fli_p_word(e, "max_features");
    double mtry = mf == 0 ? ceil(sqrt(d)) : mf == 1 ? ceil(log2(d > 2 ? d : 2)) : d;
    double depth = num_or(e, "max_depth", ceil(log2(n > 2 ? n : 2)) + 4);
    double levels = fmin(depth, ceil(log2(n > 2 ? n : 2)) + 4);
    if (!nd_ok(e, n, d, 4))
        return FL_INFO_EINVAL;
    not_impl(e, "histogram-trees",
             "quantise features once, grow each tree level by level from per-node "
             "histograms (modelled)");
    fli_roof_leaf(e, 0, "quantise features", "n_bins quantiles per feature, one byte per value", 1,
                  20 * n * d, FL_INFO_PREC_FP32, FLI_CLASS_STREAM, n * d * 5, 4, FL_INFO_TIER_ROOFLINE);
    fli_roof_leaf(e, 0, "tree levels", "per level: histograms of the rows' candidate features, best splits",
                  trees * levels, n * mtry * 4, FL_INFO_PREC_FP32, FLI_CLASS_GATHER,
                  n * mtry * (1 + 4) + fmin(n, pow(2, levels)) * mtry * bins * nc * 4, 4,
                  FL_INFO_TIER_HEURISTIC);
    e->r->peak_memory_bytes = (uint64_t)(n * d + n * 8 + trees * fmin(2 * n, pow(2, depth + 1)) * 16);
    fli_note(e, "tree depth depends on the data: ceil(log2 n) + 4 levels assumed when max_depth is none");
    return 0;
}

static int est_scaler(fli_est *e)
{
    double n = (double)e->shape[0], d = (double)e->shape[1], es = (double)fli_dtype_bytes(e->dtype);
    if (!nd_ok(e, n, d, 8))
        return FL_INFO_EINVAL;
    not_impl(e, "one-pass", "column means and variances in one pass (Welford), fit only (modelled)");
    fli_roof_leaf(e, 0, "mean and variance", "one streaming pass over X", 1, 5 * n * d, FL_INFO_PREC_FP32,
                  FLI_CLASS_STREAM, n * d * es + d * 16, 2, FL_INFO_TIER_ROOFLINE);
    e->r->peak_memory_bytes = (uint64_t)(d * 16 * 2);
    return 0;
}

/* ---- graph / distance / normalisation ------------------------------------------------------- */

static int est_pairwise(fli_est *e)
{
    double m, n, d;
    if (e->ndim == 3)
        m = (double)e->shape[0], n = (double)e->shape[1], d = (double)e->shape[2];
    else
        m = n = (double)e->shape[0], d = (double)e->shape[1];
    double es = (double)fli_dtype_bytes(e->dtype);
    if (!nd_ok(e, m + n, d, 8) || !fli_bytes_ok(e, m * n * es, "the distance matrix"))
        return FL_INFO_EINVAL;
    not_impl(e, "tiles",
             "GEMM tiles with the norms added in the epilogue, the m x n matrix written (modelled)");
    fli_roof_leaf(e, 0, "distance tiles", "x^2 + y^2 - 2 x.y, output written once", 1,
                  2 * m * n * d + 3 * m * n, fli_dtype_prec(e->dtype), FLI_CLASS_FUSED,
                  (m + n) * d * es + m * n * es, 2, FL_INFO_TIER_ROOFLINE);
    e->r->peak_memory_bytes = (uint64_t)(m * n * es + (m + n) * d * es);
    return 0;
}

static int est_graph(fli_est *e)
{
    double v = (double)e->shape[0], ed = e->ndim > 1 ? (double)e->shape[1] : 4 * v;
    int mst = !strcmp(e->op->pub.name, "mst");
    if (!fli_bytes_ok(e, ed * 16 + v * 16, "the graph"))
        return FL_INFO_EINVAL;
    not_impl(e, mst ? "boruvka" : "hook-compress",
             mst ? "Boruvka rounds: lightest edge per component, contract (modelled)"
                 : "hooking and pointer jumping over the edge list (modelled)");
    double rounds = ceil(log2(v > 2 ? v : 2));
    fli_roof_leaf(e, 0, mst ? "Boruvka rounds" : "hook + compress rounds",
                  "random-access passes over the edges", rounds, ed * (mst ? 4 : 2), FL_INFO_PREC_FP32,
                  FLI_CLASS_GATHER, ed * (mst ? 12 : 8) + v * 8, mst ? 6 : 3, FL_INFO_TIER_HEURISTIC);
    e->r->peak_memory_bytes = (uint64_t)(ed * (mst ? 12 : 8) + v * 16);
    fli_note(e, "rounds depend on the graph: ceil(log2 n_vertices) assumed (an upper bound for Boruvka)");
    return 0;
}

static int est_norm(fli_est *e)
{
    double rows = (double)e->shape[0], cols = e->ndim > 1 ? (double)e->shape[1] : 1;
    double es = (double)fli_dtype_bytes(e->dtype);
    int ln = !strcmp(e->op->pub.name, "layernorm");
    if (!fli_bytes_ok(e, rows * cols * es * 2, "input and output"))
        return FL_INFO_EINVAL;
    not_impl(e, "one-pass", "one block per row: statistics in registers, normalised row written (modelled)");
    fli_roof_leaf(e, 0, ln ? "layernorm" : "rmsnorm", "read once, write once", 1, (ln ? 8 : 4) * rows * cols,
                  FL_INFO_PREC_FP32, FLI_CLASS_STREAM, 2 * rows * cols * es + (ln ? 2 : 1) * cols * es, 1,
                  FL_INFO_TIER_ROOFLINE);
    e->r->peak_memory_bytes = (uint64_t)(rows * cols * es);
    return 0;
}

/* ---- the table ------------------------------------------------------------------------------- */

#define OP(name, fam, shape, lo, hi, impl, summary, params, xparams, fn)                                     \
    {                                                                                                        \
        {name, fam, shape, summary, impl, lo, hi}, params, COUNT(params), xparams, COUNT(xparams), fn        \
    }
#define OPX(name, fam, shape, lo, hi, impl, summary, xparams, fn)                                            \
    {                                                                                                        \
        {name, fam, shape, summary, impl, lo, hi}, NULL, 0, xparams, COUNT(xparams), fn                      \
    }

static const fli_op ops[] = {
    {{"kmeans", "clustering", "n_samples x n_features",
      "k-means++ init, Lloyd iterations (fused assign, update)", 1, 2, 2},
     fli_kmeans_params,
     FLI_KMEANS_N_PARAMS,
     fli_kmeans_xparams,
     FLI_KMEANS_N_XPARAMS,
     fli_est_kmeans},
    OP("dbscan", "clustering", "n_samples x n_features", 2, 2, 0,
       "eps-neighbourhoods in fused tiles + components", p_dbscan, x_dbscan, est_dbscan),
    OP("hdbscan", "clustering", "n_samples x n_features", 2, 2, 0,
       "core distances, Boruvka MST, condensed tree", p_hdbscan, x_threads, est_hdbscan),
    OP("spectral_clustering", "clustering", "n_samples x n_features", 2, 2, 0,
       "affinity graph, Lanczos eigenvectors, k-means", p_spectral, x_threads, est_spectral),
    {{"knn", "neighbours", "n_samples x n_features (its kNN graph), or n_queries x n_samples x n_features",
      "exact kNN: distance tiles + per-query top-k, merge, exact re-rank", 1, 2, 3},
     fli_knn_params,
     FLI_KNN_N_PARAMS,
     fli_knn_xparams,
     FLI_KNN_N_XPARAMS,
     fli_est_knn},
    {{"ivf_flat", "neighbours", "n_samples x n_features", "IVF-Flat build and search", 1, 2, 2},
     fli_ivf_flat_params,
     FLI_IVF_FLAT_N_PARAMS,
     fli_ann_xparams,
     FLI_ANN_N_XPARAMS,
     fli_est_ivf_flat},
    {{"ivf_pq", "neighbours", "n_samples x n_features", "IVF-PQ build and search", 1, 2, 2},
     fli_ivf_pq_params,
     FLI_IVF_PQ_N_PARAMS,
     fli_ann_xparams,
     FLI_ANN_N_XPARAMS,
     fli_est_ivf_pq},
    {{"cagra", "neighbours", "n_samples x n_features", "CAGRA graph build and search", 1, 2, 2},
     fli_cagra_params,
     FLI_CAGRA_N_PARAMS,
     fli_ann_xparams,
     FLI_ANN_N_XPARAMS,
     fli_est_cagra},
    OP("pca", "decomposition", "n_samples x n_features", 2, 2, 1, "centre, covariance GEMM, eigh", p_pca,
       x_tol, est_pca),
    OP("truncated_svd", "decomposition", "n_samples x n_features", 2, 2, 1, "randomised range finder", p_tsvd,
       x_threads, est_tsvd),
    OP("umap", "manifold", "n_samples x n_features", 2, 2, 0, "kNN graph, fuzzy set, SGD layout", p_umap,
       x_threads, est_umap),
    OP("tsne", "manifold", "n_samples x n_features", 2, 2, 0, "kNN affinities, KL gradient iterations",
       p_tsne, x_threads, est_tsne),
    OP("linear_regression", "linear models", "n_samples x n_features", 2, 2, 0, "normal equations by GEMM",
       p_linreg, x_tol, est_linear),
    OP("ridge", "linear models", "n_samples x n_features", 2, 2, 0, "normal equations + alpha I by GEMM",
       p_ridge, x_tol, est_linear),
    OP("logistic_regression", "linear models", "n_samples x n_features", 2, 2, 0,
       "L-BFGS, GEMM per evaluation", p_logreg, x_classes, est_logreg),
    OP("multinomial_nb", "classification", "n_samples x n_features", 2, 2, 0, "class counts by one GEMM",
       p_mnb, x_nb, est_mnb),
    OP("random_forest", "classification", "n_samples x n_features", 2, 2, 0,
       "histogram trees, level by level", p_rf, x_rf, est_rf),
    OP("standard_scaler", "preprocessing", "n_samples x n_features", 2, 2, 0, "one streaming pass", p_scaler,
       x_threads, est_scaler),
    OPX("gemm", "linear algebra", "M x K x N (A is M x K, B is K x N)", 3, 3, 1,
        "GEMM; variant by name, by tol, or the dtype's", x_gemm, fli_est_gemm),
    OPX("gemm_fp64", "linear algebra", "M x K x N", 3, 3, 1, "fp64 GEMM", x_gemm, fli_est_gemm),
    OPX("gemm_fp32", "linear algebra", "M x K x N", 3, 3, 1, "fp32 SIMT GEMM", x_gemm, fli_est_gemm),
    OPX("gemm_tf32", "linear algebra", "M x K x N", 3, 3, 1, "tf32 tensor-core GEMM", x_gemm, fli_est_gemm),
    OPX("gemm_3xtf32", "linear algebra", "M x K x N", 3, 3, 1, "fp32-accurate GEMM from 3 tf32 products",
        x_gemm, fli_est_gemm),
    OPX("gemm_bf16", "linear algebra", "M x K x N", 3, 3, 1, "bf16 tensor-core GEMM", x_gemm, fli_est_gemm),
    OPX("gemm_3xbf16", "linear algebra", "M x K x N", 3, 3, 1, "3 bf16 products of a hi/lo split", x_gemm,
        fli_est_gemm),
    OPX("gemm_fp16", "linear algebra", "M x K x N", 3, 3, 1, "fp16 tensor-core GEMM", x_gemm, fli_est_gemm),
    OPX("gemm_3xfp16", "linear algebra", "M x K x N", 3, 3, 1, "3 fp16 products of a hi/lo split", x_gemm,
        fli_est_gemm),
    OPX("gemm_fp16x9", "linear algebra", "M x K x N", 3, 3, 1, "9 fp16 products of a 3-part split", x_gemm,
        fli_est_gemm),
    OPX("gemm_fp16x3_kahan", "linear algebra", "M x K x N", 3, 3, 1, "3 fp16 products, Kahan-summed", x_gemm,
        fli_est_gemm),
    OPX("gemm_tf32x6", "linear algebra", "M x K x N", 3, 3, 1, "fp64-accurate-ish GEMM from 6 tf32 products",
        x_gemm, fli_est_gemm),
    OPX("gemm_ozaki_int8", "linear algebra", "M x K x N", 3, 3, 1, "Ozaki scheme II on int8 tensor cores",
        x_gemm, fli_est_gemm),
    OPX("cov_gemm", "linear algebra", "n_samples x n_features (X^T X)", 2, 2, 1, "X^T X", x_gemm,
        fli_est_gemm),
    OPX("gram_gemm", "linear algebra", "n_samples x n_features (X X^T)", 2, 2, 1, "X X^T", x_gemm,
        fli_est_gemm),
    OPX("ab_gemm", "linear algebra", "M x K x N", 3, 3, 1, "A B", x_gemm, fli_est_gemm),
    OPX("eigh", "linear algebra", "n or n x n (symmetric)", 1, 2, 1, "symmetric eigendecomposition", x_eigh,
        fli_est_eigh),
    OPX("eigh_cusolver", "linear algebra", "n or n x n", 1, 2, 1, "syevd", x_eigh, fli_est_eigh),
    OPX("eigh_jacobi", "linear algebra", "n or n x n", 1, 2, 1, "block Jacobi", x_eigh, fli_est_eigh),
    OPX("eigh_qdwh", "linear algebra", "n or n x n", 1, 2, 1, "QDWH-eig", x_eigh, fli_est_eigh),
    OPX("eigh_qdwh_ns", "linear algebra", "n or n x n", 1, 2, 1, "QDWH-eig, Newton-Schulz polar", x_eigh,
        fli_est_eigh),
    OPX("eigh_halko", "linear algebra", "n or n x n", 1, 2, 1, "randomised, n_components", x_eigh,
        fli_est_eigh),
    OPX("polar", "linear algebra", "n or m x n", 1, 2, 1, "polar decomposition", x_polar, fli_est_polar),
    OPX("polar_qdwh_hybrid", "linear algebra", "n or m x n", 1, 2, 1, "QDWH", x_polar, fli_est_polar),
    OPX("polar_express", "linear algebra", "n or m x n", 1, 2, 1, "polar express", x_polar, fli_est_polar),
    OPX("polar_express_warm", "linear algebra", "n or m x n", 1, 2, 1, "polar express, warm start", x_polar,
        fli_est_polar),
    OPX("polar_zolo", "linear algebra", "n or m x n", 1, 2, 1, "Zolotarev", x_polar, fli_est_polar),
    OPX("cholqr2", "linear algebra", "m x n (tall)", 2, 2, 1, "CholeskyQR2", x_threads, fli_est_cholqr2),
    OPX("split_basis", "linear algebra", "m or m x n", 1, 2, 0, "split into lower-precision parts", x_split,
        fli_est_split_basis),
    OPX("pairwise_l2", "graph / distance", "n x d (all pairs) or m x n x d", 2, 3, 0, "squared L2 distances",
        x_threads, est_pairwise),
    OPX("connected_components", "graph / distance", "n_vertices x n_edges", 1, 2, 0, "components of a graph",
        x_threads, est_graph),
    OPX("mst", "graph / distance", "n_vertices x n_edges", 1, 2, 0, "minimum spanning forest", x_threads,
        est_graph),
    OPX("rmsnorm", "graph / distance", "rows x cols", 1, 2, 0, "RMS normalisation of rows", x_threads,
        est_norm),
    OPX("layernorm", "graph / distance", "rows x cols", 1, 2, 0, "layer normalisation of rows", x_threads,
        est_norm),
};

#define N_OPS ((int)(sizeof ops / sizeof *ops))

int fli_op_table_size(void)
{
    return N_OPS;
}

const fli_op *fli_op_index(int i)
{
    return i >= 0 && i < N_OPS ? &ops[i] : NULL;
}

const fli_op *fli_op_find(const char *name)
{
    for (int i = 0; i < N_OPS; i++)
        if (ops[i].pub.name[0] == name[0] && !strcmp(ops[i].pub.name, name))
            return &ops[i];
    return NULL;
}
