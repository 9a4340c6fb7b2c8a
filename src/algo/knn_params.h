/* knn_params.h — NearestNeighbors's parameter table (see knn_params.c). */
#ifndef FL_KNN_PARAMS_H
#define FL_KNN_PARAMS_H

#include "algo/knn_job.h"
#include "flashlib.h"

#define FLI_KNN_N_PARAMS 8
extern const fl_param_def fli_knn_params[]; /* FLI_KNN_N_PARAMS rows */

/* Word indices of the "metric" choice (knn_params.c spells them). */
enum {
    FLI_KNN_W_MINKOWSKI = 0,
    FLI_KNN_W_EUCLIDEAN = 1,
    FLI_KNN_W_SQEUCLIDEAN = 2,
    FLI_KNN_W_COSINE = 3,
    FLI_KNN_W_INNER_PRODUCT = 4,
    FLI_KNN_W_DOT = 5,
    FLI_KNN_W_MANHATTAN = 6,
    FLI_KNN_W_CITYBLOCK = 7,
    FLI_KNN_W_L1 = 8,
    FLI_KNN_W_L2 = 9,
};

/* What a "metric" word and p mean to a backend: minkowski p=2 is euclidean,
 * p=1 manhattan; l2 euclidean; l1 and cityblock manhattan; dot the inner
 * product. Pure: execution, routing and the cost model share it. */
fli_knn_metric fli_knn_resolve_metric(int metric_word, double p);

#endif
