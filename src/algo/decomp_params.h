/* decomp_params.h — the parameter tables of PCA and TruncatedSVD (see
 * decomp_params.c). */
#ifndef FL_DECOMP_PARAMS_H
#define FL_DECOMP_PARAMS_H

#include "flashlib.h"

#define FLI_PCA_N_PARAMS 8
extern const fl_param_def fli_pca_params[]; /* FLI_PCA_N_PARAMS rows */
#define FLI_TSVD_N_PARAMS 7
extern const fl_param_def fli_tsvd_params[]; /* FLI_TSVD_N_PARAMS rows */

#endif
