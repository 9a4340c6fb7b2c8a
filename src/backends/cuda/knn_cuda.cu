/* knn_cuda.cu — exact k-nearest-neighbour search on the GPU (being written). */
#include <cstdio>

#include "backends/cuda/fl_cuda_module.h"

extern "C" fl_status fli_cuda_knn_search(fli_cuda_env *env, fli_knn_job *job) {
    snprintf(env->err, env->err_len, "exact kNN has no CUDA kernels in this build yet");
    return FL_STATUS_UNSUPPORTED;
}
