/* ivf_common.h — what the IVF indexes (ivf_flat.c, ivf_pq.c) share: float32
 * copies of the input rows, the coarse quantiser's training, k-means on a
 * matrix of float32 rows, and writing results into the caller's arrays. */
#ifndef FL_IVF_COMMON_H
#define FL_IVF_COMMON_H

#include "core/internal.h"

/* A dense float32 host copy of X (host or device, f32 or f64), rows
 * normalised when `normalise` (zero rows stay zero); device data is checked
 * for NaN/Inf on the copy. NULL with the context's message on failure. */
float *fli_ivf_rows_f32(fl_ctx *ctx, const fl_array *X, int normalise, fl_status *st);

/* k-means of the n x d float32 rows x into k centres (random init, iters
 * Lloyd iterations, seed) on a uniform sample of m rows (all when m >= n),
 * through flashlib's KMeans (it runs where the context sends KMeans). */
fl_status fli_ivf_kmeans(fl_ctx *ctx, const float *x, int64_t n, int64_t d, int64_t m, int64_t k,
                         int64_t iters, uint64_t seed, float *centers);

/* Writes an n x k host result (float64 distances, int64 indices) into the
 * caller's arrays: host or device, f32 or f64 distances (D may be NULL),
 * any row stride. */
fl_status fli_ivf_put_result(fl_ctx *ctx, const double *dist, const int64_t *idx, int64_t n, int64_t k,
                             fl_array *D, fl_array *I);

#endif
