/* route.h — routing rules shared by execution and the cost model. */
#ifndef FL_ROUTE_H
#define FL_ROUTE_H

#include "algo/kmeans_job.h"
#include "flashlib.h"

/* precision_word: index in "auto|fp32|tf32|bf16|fp16". */
fl_status fli_route_kmeans(const fl_hw_props *hw, int64_t n, int64_t d, fl_dtype dtype, int64_t k,
                           int precision_word, fl_route *out, fli_precision *prec_out);

#endif
