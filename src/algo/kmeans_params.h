/* kmeans_params.h — KMeans's parameter table (see kmeans_params.c). */
#ifndef FL_KMEANS_PARAMS_H
#define FL_KMEANS_PARAMS_H

#include "flashlib.h"

#define FLI_KMEANS_N_PARAMS 11
extern const fl_param_def fli_kmeans_params[]; /* FLI_KMEANS_N_PARAMS rows */

#endif
