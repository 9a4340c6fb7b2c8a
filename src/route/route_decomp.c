/*
 * route_decomp.c — the routing rule of PCA and TruncatedSVD: which solver
 * runs (scikit-learn's 'auto' rule for PCA) and on which backend. Pure C
 * that depends on nothing but libc, like route_kmeans.c, so the cost model
 * can link it and describe the same choice.
 */
#include <stdio.h>
#include <string.h>

#include "route/route.h"

/* PCA's svd_solver words: auto|full|covariance_eigh|arpack|randomized. */
enum { PCA_AUTO = 0, PCA_FULL = 1, PCA_EIGH = 2, PCA_ARPACK = 3, PCA_RANDOMIZED = 4 };

static const char *solver_name(fli_decomp_solver s)
{
    switch (s) {
    case FLI_DECOMP_EIGH: return "covariance_eigh";
    case FLI_DECOMP_SVD: return "full";
    case FLI_DECOMP_RANDOMIZED: return "randomized";
    }
    return "?";
}

/*
 * PCA, svd_solver='auto', as scikit-learn >= 1.5 decides:
 *  - n_features <= 1000 and n_samples >= 10 x n_features: covariance_eigh
 *    (one pass over X builds the d x d covariance; its eigh is cheap);
 *  - else max(n_samples, n_features) <= 500: full SVD;
 *  - else 1 <= n_components < 0.8 x min(n_samples, n_features): randomized;
 *  - else full.
 * 'arpack' (PCA) and algorithm='arpack' (TruncatedSVD) ask for the exact
 * truncated decomposition: flashlib computes it with the full SVD and keeps
 * the leading components, which is what ARPACK converges to at tol=0.
 */
fl_status fli_route_decomp(const fl_hw_props *hw, int is_pca, int64_t n, int64_t d, fl_dtype dtype,
                           int solver_word, double n_components, fl_route *out, fli_decomp_solver *solver_out)
{
    fli_decomp_solver s;
    const char *why;
    const int64_t mn = n < d ? n : d;
    const int64_t mx = n < d ? d : n;
    if (!is_pca) {
        s = solver_word == 1 ? FLI_DECOMP_SVD : FLI_DECOMP_RANDOMIZED;
        why = solver_word == 1 ? "algorithm=arpack: exact truncated SVD (full SVD, leading components)"
                               : "algorithm=randomized";
    } else {
        switch (solver_word) {
        case PCA_FULL: s = FLI_DECOMP_SVD, why = "svd_solver=full"; break;
        case PCA_EIGH: s = FLI_DECOMP_EIGH, why = "svd_solver=covariance_eigh"; break;
        case PCA_ARPACK:
            s = FLI_DECOMP_SVD, why = "svd_solver=arpack: exact truncated SVD (full SVD, leading components)";
            break;
        case PCA_RANDOMIZED: s = FLI_DECOMP_RANDOMIZED, why = "svd_solver=randomized"; break;
        default: {
            const double k = n_components < 0 ? (double)mn : n_components;
            if (d <= 1000 && n >= 10 * d)
                s = FLI_DECOMP_EIGH, why = "svd_solver=auto -> covariance_eigh: n_features <= 1000 and "
                                           "n_samples >= 10 x n_features";
            else if (mx <= 500)
                s = FLI_DECOMP_SVD, why = "svd_solver=auto -> full: max(n_samples, n_features) <= 500";
            else if (k >= 1 && k < 0.8 * (double)mn)
                s = FLI_DECOMP_RANDOMIZED,
                why = "svd_solver=auto -> randomized: 1 <= n_components < 0.8 x min(n_samples, n_features)";
            else
                s = FLI_DECOMP_SVD, why = "svd_solver=auto -> full: n_components >= 0.8 x min(n_samples, "
                                          "n_features) or a fraction";
        }
        }
    }
    out->backend = FL_BACKEND_CPU;
    snprintf(out->variant, sizeof out->variant, "%s", solver_name(s));
    const char *where = hw && hw->sm_major ? "CPU backend (no CUDA path for decompositions yet)"
                                           : "CPU backend (no GPU in use)";
    const char *prec = dtype == FL_DTYPE_F64  ? "float64"
                       : s == FLI_DECOMP_EIGH ? "float32 blocks merged in float64"
                                              : "float32 products, float64 small factorisations";
    snprintf(out->reason, sizeof out->reason, "%s; %s, %s", why, where, prec);
    if (solver_out)
        *solver_out = s;
    return FL_STATUS_OK;
}
