/*
 * knn_params.c — NearestNeighbors's parameter table: data only, so the cost
 * model reads the same names, defaults and bounds as execution.
 */
#include "algo/knn_params.h"

const fl_param_def fli_knn_params[] = {
    {"n_neighbors", FL_PARAM_INT, "5", 1, 9.2e18, NULL, "k|K",
     "neighbours returned by kneighbors (any number up to n_samples_fit_)"},
    {"radius", FL_PARAM_FLOAT, "1.0", -1e300, 1e300, NULL, NULL,
     "range of radius_neighbors (>= 0; for inner_product: the smallest inner product kept, any sign)"},
    {"metric", FL_PARAM_CHOICE, "minkowski", 0, 0,
     "minkowski|euclidean|sqeuclidean|cosine|inner_product|dot|manhattan|cityblock|l1|l2", NULL,
     "distance: minkowski with p (p=2 euclidean, p=1 manhattan), cosine = 1 - cos, inner_product/dot = "
     "<q, x> (largest first)"},
    {"p", FL_PARAM_FLOAT, "2", 1, 1e300, NULL, NULL, "exponent of the minkowski metric (>= 1)"},
    {"precision", FL_PARAM_CHOICE, "auto", 0, 0, "auto|fp32|tf32|bf16|fp16", NULL,
     "GPU arithmetic of the distance scan; distances are returned exact in fp32 either way (low-precision "
     "scans re-rank an oversampled candidate pool); auto = routing's choice"},
    {"algorithm", FL_PARAM_CHOICE, "auto", 0, 0, "auto|brute|ball_tree|kd_tree", NULL,
     "accepted for scikit-learn compatibility; every backend runs an exact blocked brute-force search"},
    {"leaf_size", FL_PARAM_INT, "30", 1, 1e9, NULL, NULL, "accepted for scikit-learn compatibility (unused)"},
    {"verbose", FL_PARAM_INT, "0", 0, 3, NULL, NULL, "log level of progress messages"},
};

_Static_assert(sizeof fli_knn_params / sizeof *fli_knn_params == FLI_KNN_N_PARAMS, "count");

fli_knn_metric fli_knn_resolve_metric(int metric_word, double p)
{
    switch (metric_word) {
    case FLI_KNN_W_MINKOWSKI:
        return p == 2 ? FLI_KNN_EUCLIDEAN : p == 1 ? FLI_KNN_MANHATTAN : FLI_KNN_MINKOWSKI;
    case FLI_KNN_W_SQEUCLIDEAN: return FLI_KNN_SQEUCLIDEAN;
    case FLI_KNN_W_COSINE: return FLI_KNN_COSINE;
    case FLI_KNN_W_INNER_PRODUCT:
    case FLI_KNN_W_DOT: return FLI_KNN_INNER;
    case FLI_KNN_W_MANHATTAN:
    case FLI_KNN_W_CITYBLOCK:
    case FLI_KNN_W_L1: return FLI_KNN_MANHATTAN;
    default: return FLI_KNN_EUCLIDEAN; /* euclidean, l2 */
    }
}
