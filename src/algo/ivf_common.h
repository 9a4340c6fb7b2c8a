/* ivf_common.h — what the IVF indexes (ivf_flat.c, ivf_pq.c) share: float32
 * copies of the input rows, the coarse quantiser's training, k-means on a
 * matrix of float32 rows, and writing results into the caller's arrays. */
#ifndef FL_IVF_COMMON_H
#define FL_IVF_COMMON_H

#include "algo/knn_job.h"
#include "core/internal.h"

/* The metric of an index's parameters: every index table spells it
 * "euclidean|sqeuclidean|cosine|inner_product|dot|l2". */
fli_knn_metric fli_ann_metric(const fl_params *p);
/* random_state, or the context's seed for 'none'. */
uint64_t fli_ann_seed(const fl_ctx *ctx, const fl_params *p);

/* n_lists and n_probes with their 'auto' rules resolved; the parameter
 * check (n_probes <= n_lists when both are given); the fit's check of both
 * against the data; the coarse k-means's training rows. */
int64_t fli_ivf_lists(const fl_params *p, int64_t n);
int64_t fli_ivf_probes(const fl_params *p, int64_t n_lists);
fl_status fli_ivf_check_params(fl_ctx *ctx, const fl_params *p);
fl_status fli_ivf_check_sizes(fl_ctx *ctx, int64_t n_lists, int64_t n_probes, int64_t n);
int64_t fli_ivf_train_rows(const fl_params *p, int64_t n, int64_t n_lists);

/* What every index's fit checks first: no sample weights, X valid data,
 * the parameters consistent (the algorithm's check_params). */
fl_status fli_ann_fit_checks(fl_model *m, const fl_array *X, const fl_array *w);

/* The checks every index's kneighbors makes: X (NULL: the indexed rows)
 * valid with d features, k within the candidates (in scikit-learn's
 * words), indices an I64 n_q x k array and distances (may be NULL) an f32
 * or f64 one. `index` names the index in messages ("IVFFlat"). */
fl_status fli_ann_check_query(fl_ctx *ctx, const char *index, const fl_array *X, int64_t d, int64_t n_fit,
                              int64_t k, const fl_array *D, const fl_array *I, int64_t *n_q);
/* The indexed rows as queries for X=None: q (n x d, in original-index
 * order) from `data` stored in the order of `ids` (NULL: already in
 * order), and self_ids[i] = i. */
fl_status fli_ann_self_queries(fl_ctx *ctx, const float *data, const int64_t *ids, int64_t n, int64_t d,
                               float **q, int64_t **self_ids);
/* An IVF search's host buffers: the float32 queries q (X's rows, or for
 * X == NULL the indexed rows in original order with *self_ids, as
 * fli_ann_self_queries) and the n_q x k results dist / idx. Every pointer
 * is set (NULL where nothing was allocated); the caller frees them all,
 * on failure too. `what` names the buffers in messages ("IVF-PQ"). */
fl_status fli_ann_search_buffers(fl_ctx *ctx, const char *what, const fl_array *X, const float *data,
                                 const int64_t *ids, int64_t n, int64_t d, int64_t n_q, int64_t k, float **q,
                                 int64_t **self_ids, double **dist, int64_t **idx);
/* A loaded index's lists: offsets (n_lists + 1, from 0 to n, never
 * decreasing) and original indices within [0, n). */
fl_status fli_ivf_check_lists(fl_ctx *ctx, const char *index, const int64_t *offsets, int64_t n_lists,
                              const int64_t *ids, int64_t n);

/* A dense float32 host copy of X (host or device, f32 or f64), rows
 * normalised when `normalise` (zero rows stay zero); device data is checked
 * for NaN/Inf on the copy. NULL with the context's message on failure. */
float *fli_ivf_rows_f32(fl_ctx *ctx, const fl_array *X, int normalise, fl_status *st);

/* k-means of the n x d float32 rows x into k centres (init "random" or
 * "k-means++", iters Lloyd iterations, seed) on a uniform sample of m rows (all when m >= n),
 * through flashlib's KMeans (it runs where the context sends KMeans). */
fl_status fli_ivf_kmeans(fl_ctx *ctx, const float *x, int64_t n, int64_t d, int64_t m, int64_t k,
                         int64_t iters, uint64_t seed, const char *init, float *centers);

/* The nearest of the L centres (L x d float32) of each of the n float32
 * rows x (row stride d): list_out[i], ties to the lower list. Through
 * flashlib's exact kNN search (k = 1), so a large build assigns on the GPU
 * when the context has one. */
fl_status fli_ivf_assign(fl_ctx *ctx, const float *centers, int64_t L, int64_t d, const float *x, int64_t n,
                         int64_t *list_out);

/* Writes an n x k host result (float64 distances, int64 indices) into the
 * caller's arrays: host or device, f32 or f64 distances (D may be NULL),
 * any row stride. */
fl_status fli_ivf_put_result(fl_ctx *ctx, const double *dist, const int64_t *idx, int64_t n, int64_t k,
                             fl_array *D, fl_array *I);

#endif
