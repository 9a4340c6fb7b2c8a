/*
 * ivf_params.c — the IVF-Flat index's parameter table: data (and the two
 * 'auto' rules) only, so the cost model reads what execution reads.
 */
#include <math.h>

#include "algo/ivf_params.h"

const fl_param_def fli_ivf_flat_params[] = {
    {"n_lists", FL_PARAM_INT, "auto", 1, 2147483647.0, "auto", "nlist",
     "inverted lists (coarse k-means clusters); auto = 4 sqrt(n_samples)"},
    {"n_probes", FL_PARAM_INT, "auto", 1, 2147483647.0, "auto", "nprobe",
     "lists scanned per query: the recall knob (more = higher recall, slower); auto = max(8, n_lists / 32)"},
    {"n_neighbors", FL_PARAM_INT, "10", 1, 9.2e18, NULL, "k|K", "neighbours returned by kneighbors"},
    {"metric", FL_PARAM_CHOICE, "euclidean", 0, 0, "euclidean|sqeuclidean|cosine|inner_product|dot|l2", NULL,
     "distance: euclidean, sqeuclidean, cosine = 1 - cos (vectors normalised at build), inner_product/dot "
     "= <q, x> (largest first)"},
    {"kmeans_n_iters", FL_PARAM_INT, "20", 1, 1e6, NULL, NULL, "Lloyd iterations of the coarse quantiser"},
    {"kmeans_trainset_fraction", FL_PARAM_FLOAT, "auto", 0, 1, "auto", NULL,
     "share of the rows the coarse k-means trains on; auto = min(1, 256 n_lists / n_samples)"},
    {"random_state", FL_PARAM_INT, "none", 0, 9.2e18, "none", "seed",
     "seed of the training sample and the coarse k-means; none = the context's seed"},
    {"verbose", FL_PARAM_INT, "0", 0, 3, NULL, NULL, "log level of progress messages"},
};

_Static_assert(sizeof fli_ivf_flat_params / sizeof *fli_ivf_flat_params == FLI_IVF_FLAT_N_PARAMS, "count");

const fl_param_def fli_ivf_pq_params[] = {
    {"n_lists", FL_PARAM_INT, "auto", 1, 2147483647.0, "auto", "nlist",
     "inverted lists (coarse k-means clusters); auto = 4 sqrt(n_samples)"},
    {"n_probes", FL_PARAM_INT, "auto", 1, 2147483647.0, "auto", "nprobe",
     "lists scanned per query: the recall knob; auto = max(8, n_lists / 32)"},
    {"n_neighbors", FL_PARAM_INT, "10", 1, 9.2e18, NULL, "k|K", "neighbours returned by kneighbors"},
    {"pq_dim", FL_PARAM_INT, "auto", 1, 1e6, "auto", "m|M",
     "sub-spaces of the product quantiser (must divide n_features); auto = n_features/4 (or /2, /1)"},
    {"pq_bits", FL_PARAM_INT, "8", 4, 8, NULL, "nbits",
     "bits of a code (2^pq_bits centroids per sub-space): one byte per sub-space is stored"},
    {"by_residual", FL_PARAM_BOOL, "true", 0, 0, NULL, NULL,
     "quantise each vector's residual from its list centre (true) or the vector itself"},
    {"refine", FL_PARAM_FLOAT, "8", 1, 1e4, NULL, "refine_ratio",
     "re-rank refine x n_neighbors candidates by exact distances (> 1 keeps the raw float32 vectors, "
     "d x 4 bytes a row, beside the codes); 1 = codes only, the quantised distances are returned"},
    {"metric", FL_PARAM_CHOICE, "euclidean", 0, 0, "euclidean|sqeuclidean|cosine|inner_product|dot|l2", NULL,
     "distance: euclidean, sqeuclidean, cosine = 1 - cos (vectors normalised at build), inner_product/dot "
     "= <q, x> (largest first)"},
    {"kmeans_n_iters", FL_PARAM_INT, "20", 1, 1e6, NULL, NULL,
     "Lloyd iterations of the coarse quantiser and of each codebook"},
    {"kmeans_trainset_fraction", FL_PARAM_FLOAT, "auto", 0, 1, "auto", NULL,
     "share of the rows the coarse k-means trains on; auto = min(1, 256 n_lists / n_samples)"},
    {"random_state", FL_PARAM_INT, "none", 0, 9.2e18, "none", "seed",
     "seed of the training samples and the k-means runs; none = the context's seed"},
    {"verbose", FL_PARAM_INT, "0", 0, 3, NULL, NULL, "log level of progress messages"},
};

_Static_assert(sizeof fli_ivf_pq_params / sizeof *fli_ivf_pq_params == FLI_IVF_PQ_N_PARAMS, "count");

int64_t fli_ivf_auto_pq_dim(int64_t d)
{
    return d % 4 == 0 ? d / 4 : d % 2 == 0 ? d / 2 : d;
}

int64_t fli_ivf_auto_lists(int64_t n)
{
    int64_t l = (int64_t)llround(4.0 * sqrt((double)n));
    return l < 1 ? 1 : l > n ? n : l;
}

int64_t fli_ivf_auto_probes(int64_t n_lists)
{
    int64_t p = n_lists / 32;
    if (p < 8)
        p = 8;
    return p > n_lists ? n_lists : p;
}
