/*
 * kmeans_params.c — KMeans's parameter table: data only, no code, so the
 * cost model (libflashlib_info, which links nothing but libc and libm) reads
 * the same names, aliases, defaults and bounds as execution.
 */
#include "algo/kmeans_params.h"

/* Sized by its rows; the assert below ties the count to the header. */
const fl_param_def fli_kmeans_params[] = {
    {"n_clusters", FL_PARAM_INT, "8", 1, 2147483647.0, NULL, "K|k",
     "number of clusters to form (and of centres)"},
    {"init", FL_PARAM_CHOICE, "k-means++", 0, 0, "k-means++|random|array", NULL,
     "initialisation: greedy k-means++, k random rows, or a given n_clusters x n_features array"},
    {"n_init", FL_PARAM_INT, "auto", 1, 1e6, "auto", NULL,
     "runs with different seeds, best inertia kept; auto = 1 (k-means++, array) or 10 (random)"},
    {"max_iter", FL_PARAM_INT, "300", 1, 1e9, NULL, "max_iters|niter", "maximum Lloyd iterations per run"},
    {"tol", FL_PARAM_FLOAT, "1e-4", 0, 1e300, NULL, NULL,
     "stop when the squared centre shift <= tol x mean feature variance (0: run max_iter or until "
     "labels stop changing)"},
    {"random_state", FL_PARAM_INT, "none", 0, 9.2e18, "none", "seed",
     "seed of the initialisation; none = the context's seed"},
    {"metric", FL_PARAM_CHOICE, "euclidean", 0, 0, "euclidean|cosine|dot", NULL,
     "euclidean (scikit-learn), cosine (spherical k-means) or dot (max inner product)"},
    {"precision", FL_PARAM_CHOICE, "auto", 0, 0, "auto|fp32|tf32|bf16|fp16", NULL,
     "GPU arithmetic of the distance step; auto = routing's choice (fp32 for n_clusters < 32, "
     "else tf32); the CPU computes in the data's precision"},
    {"algorithm", FL_PARAM_CHOICE, "lloyd", 0, 0, "lloyd|elkan", NULL,
     "accepted for scikit-learn compatibility; both run Lloyd's algorithm (same result)"},
    {"n_local_trials", FL_PARAM_INT, "auto", 1, 1e6, "auto", NULL,
     "k-means++ candidates per centre; auto = 2 + floor(ln n_clusters)"},
    {"verbose", FL_PARAM_INT, "0", 0, 3, NULL, NULL, "log level of progress messages"},
};

_Static_assert(sizeof fli_kmeans_params / sizeof *fli_kmeans_params == FLI_KMEANS_N_PARAMS, "count");
