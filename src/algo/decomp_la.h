/* decomp_la.h — the randomized PCA / TruncatedSVD solver over fli_la
 * (decomp_la.c): the GPU path of svd_solver='randomized'. */
#ifndef FL_ALGO_DECOMP_LA_H
#define FL_ALGO_DECOMP_LA_H

#include "algo/decomp_job.h"
#include "algo/linalg.h"

/* Fills job's mean, components (k x d), sv (k), n_out and total_ss (sum of
 * squared deviations from the column means) for X (n x d, la->dt, host or
 * la's memory), centred when job->center. proj_var (k host doubles, may be
 * NULL): the variance of each column of X components^T (TruncatedSVD's
 * explained_variance_). Uses job->k, n_oversamples, n_iter, seed. */
fl_status fli_decomp_randomized_la(fl_ctx *ctx, fli_la *la, const fl_array *X, fli_decomp_job *job,
                                   double *proj_var);

#endif
