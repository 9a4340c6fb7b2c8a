/* ivf_params.h — the IVF-Flat index's parameter table (see ivf_params.c). */
#ifndef FL_IVF_PARAMS_H
#define FL_IVF_PARAMS_H

#include "flashlib.h"

#define FLI_IVF_FLAT_N_PARAMS 8
extern const fl_param_def fli_ivf_flat_params[]; /* FLI_IVF_FLAT_N_PARAMS rows */

#define FLI_IVF_PQ_N_PARAMS 12
extern const fl_param_def fli_ivf_pq_params[]; /* FLI_IVF_PQ_N_PARAMS rows */

/* pq_dim = auto for d features: d/4 sub-spaces when 4 divides d, else d/2
 * when 2 does, else d (sub-spaces of 4, 2 or 1 features). */
int64_t fli_ivf_auto_pq_dim(int64_t d);

/* n_lists = auto: 4 sqrt(n_samples) lists (at least 1, at most n_samples);
 * n_probes = auto: a 32nd of the lists, at least 8 (at most n_lists). */
int64_t fli_ivf_auto_lists(int64_t n);
int64_t fli_ivf_auto_probes(int64_t n_lists);

#endif
