/* cagra_params.h — the CAGRA graph index's parameter table (cagra_params.c). */
#ifndef FL_CAGRA_PARAMS_H
#define FL_CAGRA_PARAMS_H

#include "flashlib.h"

#define FLI_CAGRA_N_PARAMS 10
extern const fl_param_def fli_cagra_params[]; /* FLI_CAGRA_N_PARAMS rows */

#endif
