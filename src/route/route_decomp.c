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

/*
 * CPU or GPU for PCA's covariance_eigh (the randomized solver of PCA and
 * TruncatedSVD goes to the GPU when device 'cuda' asks or X lives there;
 * the exact solvers run on the CPU):
 *  - device 'cuda', or X already in device memory: the GPU;
 *  - float64 host X under 'auto': the CPU (the GPU path is float32);
 *  - float32 host X under 'auto': the GPU when n_features >= GPU_MIN_D and
 *    n_samples x n_features^2 >= GPU_MIN_ND2. Measured on the H100 host
 *    (bench_pca's host_crossover, 16 CPU cores, X copied from pageable
 *    memory), GPU vs CPU ms: 20000 x 32 2.2 vs 20; 200000 x 32 14.0 vs
 *    12.3; 20000 x 64 3.9 vs 13.7; 100000 x 64 11.9 vs 20.4; 50000 x 128
 *    12.4 vs 28.0; 200000 x 128 35.7 vs 41.6; 20000 x 256 9.7 vs 351. Below
 *    64 features the copy of X costs as much as the CPU's product; the
 *    GPU's fixed cost (~1 ms of buffers plus the eigh, 5.6 ms at d = 512)
 *    sets the lower bound on the work.
 */
#define GPU_MIN_D 64
#define GPU_MIN_ND2 67108864.0
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
                           int x_on_device, int force_gpu, int solver_word, double n_components,
                           fl_route *out, fli_decomp_solver *solver_out)
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
    snprintf(out->variant, sizeof out->variant, "%s", solver_name(s));
    const int gpu = hw && hw->sm_major;
    const char *where = NULL;
    out->backend = FL_BACKEND_CPU;
    if (gpu && is_pca && s == FLI_DECOMP_EIGH) {
        if (force_gpu || x_on_device) {
            out->backend = FL_BACKEND_CUDA;
            where = force_gpu ? "CUDA backend (device cuda requested)" : "CUDA backend (X in device memory)";
        } else if (dtype == FL_DTYPE_F64) {
            where = "CPU backend (float64 X: the GPU path computes in float32)";
        } else if (d >= GPU_MIN_D && (double)n * (double)d * (double)d >= GPU_MIN_ND2) {
            out->backend = FL_BACKEND_CUDA;
            where = "CUDA backend (host X, n_samples x n_features^2 >= 2^26 and n_features >= 64: the "
                    "product outweighs the copy)";
        } else {
            where = "CPU backend (host X, n_samples x n_features^2 < 2^26 or n_features < 64: the copy "
                    "to the GPU and its fixed cost outweigh the product)";
        }
    } else if (gpu && s == FLI_DECOMP_RANDOMIZED && (force_gpu || x_on_device)) {
        out->backend = FL_BACKEND_CUDA;
        where = force_gpu ? "CUDA backend (device cuda requested)" : "CUDA backend (X in device memory)";
    } else if (gpu && s == FLI_DECOMP_RANDOMIZED) {
        where =
            "CPU backend (host X under 'auto': no measured crossover for the GPU's randomized solver yet; "
            "device 'cuda' or device memory runs it there)";
    } else if (gpu) {
        where = "CPU backend (no CUDA path for this solver yet: only covariance_eigh and randomized)";
    } else {
        where = "CPU backend (no GPU in use)";
    }
    const char *prec = out->backend != FL_BACKEND_CPU && s == FLI_DECOMP_RANDOMIZED
                           ? "products in the data's precision on cuBLAS, CholeskyQR2 normaliser, float64 "
                             "small SVD"
                       : out->backend != FL_BACKEND_CPU && x_on_device && hw->sm90_enabled
                           ? "3xtf32 products of the shifted data in one fused kernel (wgmma), float64 "
                             "scatter and eigh"
                       : out->backend != FL_BACKEND_CPU
                           ? "float32 products of shifted chunks, float64 scatter "
                             "and eigh"
                       : dtype == FL_DTYPE_F64 ? "float64"
                       : s == FLI_DECOMP_EIGH  ? "float32 blocks merged in float64"
                                               : "float32 products, float64 small factorisations";
    snprintf(out->reason, sizeof out->reason, "%s; %s, %s", why, where, prec);
    if (solver_out)
        *solver_out = s;
    return FL_STATUS_OK;
}
