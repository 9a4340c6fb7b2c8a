/*
 * cagra_params.c — the CAGRA graph index's parameter table: data only, so
 * the cost model reads what execution reads.
 */
#include "algo/cagra_params.h"

const fl_param_def fli_cagra_params[] = {
    {"graph_degree", FL_PARAM_INT, "64", 2, 1024, NULL, NULL, "edges kept per node after pruning"},
    {"intermediate_graph_degree", FL_PARAM_INT, "128", 2, 2048, NULL, NULL,
     "neighbours of the exact kNN graph the pruning starts from (>= graph_degree)"},
    {"itopk_size", FL_PARAM_INT, "64", 1, 4096, NULL, NULL,
     "candidates a search keeps (the recall knob: more = higher recall, slower; >= n_neighbors)"},
    {"search_width", FL_PARAM_INT, "1", 1, 256, NULL, NULL, "nodes expanded per search iteration"},
    {"max_iterations", FL_PARAM_INT, "0", 0, 1e6, NULL, NULL,
     "search iterations at most (0 = until no candidate is left to expand)"},
    {"n_seeds", FL_PARAM_INT, "32", 1, 4096, NULL, NULL, "random nodes a search starts from"},
    {"n_neighbors", FL_PARAM_INT, "10", 1, 9.2e18, NULL, "k|K", "neighbours returned by kneighbors"},
    {"metric", FL_PARAM_CHOICE, "euclidean", 0, 0, "euclidean|sqeuclidean|cosine|inner_product|dot|l2", NULL,
     "distance: euclidean, sqeuclidean, cosine = 1 - cos (vectors normalised at build), inner_product/dot "
     "= <q, x> (largest first)"},
    {"random_state", FL_PARAM_INT, "none", 0, 9.2e18, "none", "seed",
     "seed of the search's starting nodes; none = the context's seed"},
    {"verbose", FL_PARAM_INT, "0", 0, 3, NULL, NULL, "log level of progress messages"},
};

_Static_assert(sizeof fli_cagra_params / sizeof *fli_cagra_params == FLI_CAGRA_N_PARAMS, "count");
