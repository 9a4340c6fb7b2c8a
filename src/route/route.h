/* route.h — routing rules shared by execution and the cost model. */
#ifndef FL_ROUTE_H
#define FL_ROUTE_H

#include "algo/decomp_job.h"
#include "algo/kmeans_job.h"
#include "algo/knn_job.h"
#include "flashlib.h"

/* precision_word: index in "auto|fp32|tf32|bf16|fp16". */
/* Concatenates the NULL-terminated list of strings `parts` into dst (cap
 * bytes, always terminated, truncated when too long): the cheap snprintf
 * of the routing reasons the cost model builds on every estimate. */
void fli_join(char *dst, size_t cap, const char *const *parts);

/* out->variant = the precision's name ("tf32"). */
void fli_route_set_variant(fl_route *out, fli_precision p);

fl_status fli_route_kmeans(const fl_hw_props *hw, int64_t n, int64_t d, fl_dtype dtype, int64_t k,
                           int precision_word, fl_route *out, fli_precision *prec_out);

/* PCA (is_pca) or TruncatedSVD: the solver that runs and on which backend.
 * solver_word: index in PCA's "auto|full|covariance_eigh|arpack|randomized"
 * or TruncatedSVD's "randomized|arpack"; n_components: the parameter's
 * value (< 0 = none: all). hw: the GPU in use (NULL or sm_major 0: none);
 * x_on_device: X lives in its memory; force_gpu: device 'cuda' was asked
 * for (the GPU whenever a CUDA path exists, whatever the shape). Only PCA's
 * covariance_eigh has a CUDA path: route_decomp.c states the rule. */
fl_status fli_route_decomp(const fl_hw_props *hw, int is_pca, int64_t n, int64_t d, fl_dtype dtype,
                           int x_on_device, int force_gpu, int solver_word, double n_components,
                           fl_route *out, fli_decomp_solver *solver_out);

/* Exact nearest neighbours: n_q queries against n_db rows of d features.
 * precision_word: index in "auto|fp32|tf32|bf16|fp16"; on_device: the data
 * lives in the GPU's memory; force_gpu: device 'cuda' was asked for. The
 * rule is stated in route_knn.c. */
fl_status fli_route_knn(const fl_hw_props *hw, int64_t n_db, int64_t n_q, int64_t d, fl_dtype dtype,
                        int64_t k, fli_knn_metric metric, int precision_word, int on_device, int force_gpu,
                        fl_route *out, fli_precision *prec_out);

/* IVF-Flat search of n_q queries, k neighbours, against an index of n rows
 * of d features in n_lists lists, n_probes probed; force_gpu: device 'cuda'
 * was asked for. The rule is stated in route_ivf.c. */
#define FLI_IVF_GPU_MAX_K 248
fl_status fli_route_ivf_flat(const fl_hw_props *hw, int64_t n, int64_t n_lists, int64_t n_probes, int64_t n_q,
                             int64_t d, int64_t k, int force_gpu, fl_route *out);

/* IVF-PQ search: as IVF-Flat, with pq_dim M sub-spaces of ksub centroids
 * and `pool` candidates re-ranked per query (refine x k, or k without the
 * raw rows). The GPU takes pools up to FLI_IVFPQ_GPU_MAX_POOL and tables
 * (M x ksub floats) up to FLI_IVFPQ_GPU_MAX_LUT. Rule in route_ivf.c. */
#define FLI_IVFPQ_GPU_MAX_POOL 1024
#define FLI_IVFPQ_GPU_MAX_LUT 32768
fl_status fli_route_ivf_pq(const fl_hw_props *hw, int64_t n, int64_t n_lists, int64_t n_probes, int64_t n_q,
                           int64_t d, int64_t M, int64_t ksub, int64_t pool, int force_gpu, fl_route *out);

/* CAGRA search of n_q queries against a graph of n nodes (d features,
 * `degree` edges each, n_entries entry nodes), keeping itopk candidates and
 * expanding `width` per iteration. The GPU takes itopk up to
 * FLI_CAGRA_GPU_MAX_ITOPK and width x degree up to FLI_CAGRA_GPU_MAX_CAND.
 * Rule in route_ivf.c. */
#define FLI_CAGRA_GPU_MAX_ITOPK 512
#define FLI_CAGRA_GPU_MAX_CAND 1024
fl_status fli_route_cagra(const fl_hw_props *hw, int64_t n, int64_t d, int64_t degree, int64_t n_entries,
                          int64_t itopk, int64_t width, int64_t n_q, int force_gpu, fl_route *out);

#endif
