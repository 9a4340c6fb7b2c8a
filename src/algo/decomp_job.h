/*
 * decomp_job.h — one PCA or TruncatedSVD request as a backend sees it, after
 * the algo layer validated the arrays and parameters and routing chose the
 * solver. Plain C, no CUDA types, so a CUDA backend can take the same job.
 *
 * The backend computes the decomposition of A = X - 1 mean^T (center) or
 * A = X, and returns it in float64 on the host; the algo layer truncates,
 * fixes the signs (scikit-learn's svd_flip) and derives the attributes.
 */
#ifndef FL_DECOMP_JOB_H
#define FL_DECOMP_JOB_H

#include "flashlib.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fli_decomp_solver {
    FLI_DECOMP_EIGH = 0,       /* eigh of the centred scatter A^T A (fused, one pass) */
    FLI_DECOMP_SVD = 1,        /* exact SVD of a copy of A (gesdd)                    */
    FLI_DECOMP_RANDOMIZED = 2, /* Halko et al.'s randomized range finder + small SVD  */
} fli_decomp_solver;

/* Normaliser of the power iterations (scikit-learn's names). */
typedef enum fli_pin {
    FLI_PIN_NONE = 0,
    FLI_PIN_LU = 1,
    FLI_PIN_QR = 2,
} fli_pin;

typedef struct fli_decomp_job {
    /* data: n x d, row stride ld, on the host */
    const void *X;
    fl_dtype dtype;
    int64_t n, d, ld;
    int center;       /* subtract the column means first (PCA) */
    int check_finite; /* EIGH: X was not checked for NaN/Inf: the fused pass
                         does it, sets `nonfinite` and fails */

    fli_decomp_solver solver;
    int64_t k;             /* randomized: components wanted (1..min(n, d)) */
    int64_t n_iter;        /* randomized: power iterations */
    int64_t n_oversamples; /* randomized: extra random directions */
    fli_pin normalizer;    /* randomized: resolved (no "auto") */
    uint64_t seed;

    /* outputs, float64 host buffers the caller allocated:
     *   mean        d column means of X (whether or not centred)
     *   components  n_out x d, row-major, rows orthonormal, descending sv;
     *               capacity: EIGH d x d, SVD min(n,d) x d, RANDOMIZED k x d
     *   sv          n_out singular values of A, descending, >= 0          */
    double *mean;
    double *components;
    double *sv;
    int64_t n_out;   /* rows written */
    int nonfinite;   /* check_finite found a NaN/Inf (or a sum overflowed) */
    double total_ss; /* sum of squared deviations of X from its column means */
} fli_decomp_job;

/* Applies a fitted decomposition: forward Y = (X - mean) C^T / scale, or
 * inverse X = (Y * scale) C + mean. */
typedef struct fli_decomp_apply_job {
    const void *in; /* n x (forward: d, inverse: k), row stride in_ld, dtype */
    int64_t in_ld;
    void *out; /* n x (forward: k, inverse: d), row stride out_ld, dtype */
    int64_t out_ld;
    fl_dtype dtype;
    int64_t n, d, k;
    const double *components; /* k x d */
    const double *mean;       /* d, or NULL (no centring) */
    const double *scale;      /* k, or NULL (no whitening) */
    int inverse;
    int32_t in_dev, out_dev; /* CUDA: where in/out live (-1 host); the CPU ignores them */
} fli_decomp_apply_job;

/* Where the d x d eigenproblem of the GPU covariance pass is solved. */
typedef enum fli_cov_eigh {
    FLI_COV_EIGH_HOST = 0,     /* the scatter comes back; the CPU's float64 dsyevd */
    FLI_COV_EIGH_SYEVD = 1,    /* cuSOLVER float64 syevd: every eigenpair */
    FLI_COV_EIGH_SYEVDX = 2,   /* cuSOLVER float64 syevdx: the top k only */
    FLI_COV_EIGH_SYEVD32 = 3,  /* float32 syevd of the rounded scatter (A/B only) */
    FLI_COV_EIGH_SYEVDX32 = 4, /* float32 syevdx, top k (A/B only) */
    FLI_COV_EIGH_DEVICE = 5,   /* no eigh: the scatter stays on the device
                                  (scatter_dev) for the algo layer's top-k
                                  solver over fli_la (algo/linalg_topk.h) */
} fli_cov_eigh;

/*
 * PCA's covariance pass on the GPU (the CUDA module's pca_cov entry): the
 * column means and the centred scatter A^T A of A = X - 1 mean^T, then
 * optionally its eigendecomposition. X is float32, on the host (streamed in
 * row chunks) or on device x_dev (read in place, any size). Outputs are
 * float64 host buffers the caller allocated, written only on success.
 */
typedef struct fli_pca_cov_job {
    const float *X;
    int32_t x_dev; /* -1: host memory */
    int64_t n, d, ld;
    int tf32; /* the product on TF32 tensor cores (precision=tf32) */
    fli_cov_eigh eigh;
    int64_t k; /* SYEVDX: eigenpairs wanted, 1..d */
    /* outputs */
    double *mean;        /* d */
    double *scatter;     /* HOST: d x d, symmetric (else unused, may be NULL) */
    double *scatter_dev; /* DEVICE: the d x d symmetric scatter (both
                            triangles, float64) in the module's buffers on
                            the context's device, valid (and the caller's
                            to overwrite) until the context's next pca_cov
                            or its release */
    double *components;  /* SYEVD/SYEVDX: n_out x d rows, descending eigenvalue */
    double *sv;          /* n_out: sqrt(max(eigenvalue, 0)) */
    int64_t n_out;
    double total_ss; /* trace of the scatter */
    int nonfinite;   /* X holds a NaN/Inf: status INVALID_ARG, nothing written */
    /* diagnostic A/B switches (bench_pca); 0 = the module's choice */
    int variant;        /* 0: 6 on Hopper with device X, else 4;
                           4 3xtf32: [hi | lo] tf32 parts, one
                           strided-batched TF32 GEMM per chunk; 5 3xbf16:
                           the same with bf16 parts (FL_PCA_PRODUCT=3xbf16);
                           6 3xtf32 in one kernel, the split in registers
                           (FL_PCA_PRODUCT=3xtf32-fused, pca_tf3.cu; wgmma
                           on Hopper); 7 the same on mma.sync
                           (3xtf32-fused-mma, A/B);
                           float32 products: 1 tiled lower triangle, 2
                           strided full GEMM, 3 cublasSsyrk */
    int64_t chunk_rows; /* rows centred per product step */
    int64_t slices;     /* row slices of a chunk computed side by side */
    int64_t tile;       /* variant 1: tile edge (multiple of 32) */
    int one_stream;     /* variants 4, 5, device X: split and product on
                           one stream (no overlap) */
    int no_rescale;     /* variants 4, 5: leave the product's diagonal as the
                           tensor cores summed it (no rescaling to the
                           exact sum of squares) */
} fli_pca_cov_job;

/* A backend's decomposition entry points: a table, so that a CUDA module
 * can offer the same two calls later (the algo layer picks the table from
 * the routing decision and reports a backend without one). */
typedef struct fli_decomp_backend {
    const char *name;
    fl_status (*fit)(fl_ctx *ctx, fli_decomp_job *job);
    fl_status (*apply)(fl_ctx *ctx, const fli_decomp_apply_job *job);
} fli_decomp_backend;

#ifdef __cplusplus
}
#endif
#endif
