/* ivf_params.h — the IVF-Flat index's parameter table (see ivf_params.c). */
#ifndef FL_IVF_PARAMS_H
#define FL_IVF_PARAMS_H

#include "flashlib.h"

#define FLI_IVF_FLAT_N_PARAMS 8
extern const fl_param_def fli_ivf_flat_params[]; /* FLI_IVF_FLAT_N_PARAMS rows */

/* n_lists = auto: 4 sqrt(n_samples) lists (at least 1, at most n_samples);
 * n_probes = auto: a 32nd of the lists, at least 8 (at most n_lists). */
int64_t fli_ivf_auto_lists(int64_t n);
int64_t fli_ivf_auto_probes(int64_t n_lists);

#endif
