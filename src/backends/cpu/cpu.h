/* cpu.h — entry points of the CPU backend (always built; the reference the
 * GPU backends are tested against). */
#ifndef FL_CPU_H
#define FL_CPU_H

#include "algo/decomp_job.h"
#include "algo/kmeans_job.h"
#include "algo/knn_job.h"
#include "core/internal.h"

int fli_cpu_threads(const fl_ctx *ctx);
fl_status fli_cpu_kmeans_fit(fl_ctx *ctx, fli_kmeans_job *job);
fl_status fli_cpu_kmeans_assign(fl_ctx *ctx, fli_kmeans_assign_job *job);

/* Exact nearest neighbours (knn_cpu.c): host buffers only. */
fl_status fli_cpu_knn(fl_ctx *ctx, fli_knn_job *job);
fl_status fli_cpu_knn_radius(fl_ctx *ctx, fli_knn_radius_job *job);

/* IVF-Flat (ivf_cpu.c): a search. */
struct fli_ivf_index;
struct fli_ivf_search_job;
fl_status fli_cpu_ivf_search(fl_ctx *ctx, const struct fli_ivf_search_job *job);
/* IVF-PQ (ivfpq_cpu.c): the codes of n float32 rows filed under `lists`,
 * and a search. */
struct fli_ivfpq_index;
struct fli_ivfpq_search_job;
fl_status fli_cpu_ivfpq_encode(fl_ctx *ctx, const struct fli_ivfpq_index *ix, const float *x, int64_t n,
                               const int64_t *lists, uint8_t *codes);
fl_status fli_cpu_ivfpq_search(fl_ctx *ctx, const struct fli_ivfpq_search_job *job);

/* CAGRA (cagra_cpu.c): the search graph (n x degree) from an exact kNN
 * graph (n x K, nearest first), and a search. */
struct fli_cagra_search_job;
fl_status fli_cpu_cagra_prune(fl_ctx *ctx, const int64_t *knn, int64_t n, int64_t K, int64_t degree,
                              int32_t *graph);
fl_status fli_cpu_cagra_search(fl_ctx *ctx, const struct fli_cagra_search_job *job);

/* PCA / TruncatedSVD (decomp_cpu.c). */
extern const fli_decomp_backend fli_cpu_decomp;
/* covariance_eigh's eigh of a d x d float64 scatter S (overwritten) into
 * job's components / sv / n_out / total_ss, largest first. */
fl_status fli_cpu_eigh_scatter(fl_ctx *ctx, fli_decomp_job *job, double *S);
/* covariance_eigh's first half: job's column means (job->mean) and the
 * centred d x d float64 scatter into S (symmetric, both triangles);
 * job->nonfinite as the fused pass sets it. */
fl_status fli_cpu_pca_scatter(fl_ctx *ctx, fli_decomp_job *job, double *S);
/* In-place Cholesky of a row-major symmetric d x d matrix: its lower factor
 * (upper part zeroed). FL_STATUS_INVALID_ARG when not positive definite. */
fl_status fli_cpu_cholesky(fl_ctx *ctx, double *A, int64_t d);
/* out[i] (n x 1, X's dtype) = -0.5 |L^-1 (x_i - mean)|^2 - c. */
fl_status fli_cpu_gauss_loglik(fl_ctx *ctx, const fl_array *X, const double *mean, const double *L, double c,
                               fl_array *out);

#endif
