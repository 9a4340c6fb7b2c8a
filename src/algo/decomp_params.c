/*
 * decomp_params.c — the parameter tables of PCA and TruncatedSVD: data only,
 * no code (like kmeans_params.c), with scikit-learn's names and defaults.
 */
#include "algo/decomp_params.h"

const fl_param_def fli_pca_params[] = {
    {"n_components", FL_PARAM_FLOAT, "none", 0, 2147483647.0, "none", "k",
     "components kept: a whole number >= 1, a fraction in (0, 1) of the variance to explain, or none "
     "(min(n_samples, n_features))"},
    {"whiten", FL_PARAM_BOOL, "false", 0, 0, NULL, NULL,
     "scale the transformed components to unit variance (divide by sqrt(explained_variance_))"},
    {"svd_solver", FL_PARAM_CHOICE, "auto", 0, 0, "auto|full|covariance_eigh|arpack|randomized", "solver",
     "auto (scikit-learn's rule: covariance_eigh for n_features <= 1000 and n_samples >= 10 x "
     "n_features...), full SVD, eigh of the covariance, exact truncated (arpack) or randomized"},
    {"tol", FL_PARAM_FLOAT, "0", 0, 1e300, NULL, NULL,
     "accepted for scikit-learn compatibility (arpack's tolerance); flashlib's exact path is exact"},
    {"iterated_power", FL_PARAM_INT, "auto", 0, 1e6, "auto", "n_iter",
     "randomized: power iterations; auto = 7 when n_components < 0.1 x min(n_samples, n_features), else 4"},
    {"n_oversamples", FL_PARAM_INT, "10", 1, 1e6, NULL, NULL,
     "randomized: extra random directions sampled beyond n_components"},
    {"power_iteration_normalizer", FL_PARAM_CHOICE, "auto", 0, 0, "auto|QR|LU|none", NULL,
     "randomized: normalisation between power iterations; auto = none for <= 2 iterations, else LU"},
    {"random_state", FL_PARAM_INT, "none", 0, 9.2e18, "none", "seed",
     "seed of the randomized solver; none = the context's seed"},
};
_Static_assert(sizeof fli_pca_params / sizeof *fli_pca_params == FLI_PCA_N_PARAMS, "count");

const fl_param_def fli_tsvd_params[] = {
    {"n_components", FL_PARAM_INT, "2", 1, 2147483647.0, NULL, "k",
     "dimension of the output: singular vectors kept (<= n_features)"},
    {"algorithm", FL_PARAM_CHOICE, "randomized", 0, 0, "randomized|arpack", NULL,
     "randomized (Halko et al.) or arpack (the exact truncated SVD)"},
    {"n_iter", FL_PARAM_INT, "5", 0, 1e6, NULL, NULL, "randomized: power iterations"},
    {"n_oversamples", FL_PARAM_INT, "10", 1, 1e6, NULL, NULL,
     "randomized: extra random directions sampled beyond n_components"},
    {"power_iteration_normalizer", FL_PARAM_CHOICE, "auto", 0, 0, "auto|QR|LU|none", NULL,
     "randomized: normalisation between power iterations; auto = none for <= 2 iterations, else LU"},
    {"random_state", FL_PARAM_INT, "none", 0, 9.2e18, "none", "seed",
     "seed of the randomized algorithm; none = the context's seed"},
    {"tol", FL_PARAM_FLOAT, "0", 0, 1e300, NULL, NULL,
     "accepted for scikit-learn compatibility (arpack's tolerance); flashlib's exact path is exact"},
};
_Static_assert(sizeof fli_tsvd_params / sizeof *fli_tsvd_params == FLI_TSVD_N_PARAMS, "count");
