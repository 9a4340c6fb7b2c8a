/*
 * module.cu — the entry table of libflashlib_cuda.so.
 *
 * The core dlopens this module and calls fli_cuda_module_get(), the only
 * exported symbol; everything else is hidden. The module is self-contained:
 * it includes flashlib.h and the job headers for types only and never calls
 * into libflashlib.
 */
#include <string.h>

#include "backends/cuda/fl_cuda_util.cuh"

extern "C" fl_status fli_cuda_kmeans_fit(fli_cuda_env *env, fli_kmeans_job *job);
extern "C" fl_status fli_cuda_kmeans_assign(fli_cuda_env *env, fli_kmeans_assign_job *job);
extern "C" fl_status fli_cuda_pca_cov(fli_cuda_env *env, fli_pca_cov_job *job);
extern "C" void fli_cuda_pca_release(fli_cuda_env *env);
extern "C" fl_status fli_cuda_decomp_apply(fli_cuda_env *env, const fli_decomp_apply_job *job);
extern "C" fl_status fli_cuda_knn_search(fli_cuda_env *env, fli_knn_job *job);
extern "C" void fli_cuda_linalg_release(fli_cuda_state *s);
extern "C" fl_status fli_cuda_ivf_search(fli_cuda_env *env, const fli_ivf_search_job *job);
extern "C" void fli_cuda_ivf_release(fli_cuda_env *env);
extern "C" void fli_cuda_knn_release(fli_cuda_env *env);
extern "C" fl_status fli_cuda_la_open(fli_cuda_env *env, fl_dtype dt, fli_la *la);
extern "C" void fli_cuda_la_release(fli_cuda_env *env);
/* approximate-index searches beside IVF-Flat's */
extern "C" fl_status fli_cuda_ivfpq_search(fli_cuda_env *env, const fli_ivfpq_search_job *job);
extern "C" void fli_cuda_ivfpq_release(fli_cuda_env *env);
extern "C" fl_status fli_cuda_cagra_search(fli_cuda_env *env, const fli_cagra_search_job *job);
extern "C" void fli_cuda_cagra_release(fli_cuda_env *env);

static void free_state(fli_cuda_state *s) {
    if (!s) return;
    fli_cuda_linalg_release(s);
    fli_h2d_release(s);
    if (s->pool) {
        if (s->stream) cudaStreamSynchronize(s->stream);
        cudaMemPoolDestroy(s->pool); /* its blocks go back to the device */
    }
    if (s->pool_ev) cudaEventDestroy(s->pool_ev);
    if (s->stream) cudaStreamDestroy(s->stream);
    if (s->copy_stream) cudaStreamDestroy(s->copy_stream);
    if (s->pinned) cudaFreeHost(s->pinned);
    free(s);
}

static fl_status mod_ctx_init(fli_cuda_env *env) {
    env->state = NULL;
    fli_cuda_state *s = (fli_cuda_state *)calloc(1, sizeof *s);
    if (!s) return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "ctx_init", "host allocation failed");
    fl_status st = FL_STATUS_OK;
    cudaError_t e = cudaSetDevice(env->device_id);
    const char *what = "cudaSetDevice";
    if (e == cudaSuccess) {
        what = "cudaStreamCreate";
        e = cudaStreamCreate(&s->stream);
    }
    if (e == cudaSuccess) e = cudaStreamCreate(&s->copy_stream);
    if (e == cudaSuccess) {
        what = "cudaMallocHost";
        e = cudaMallocHost((void **)&s->pinned, 64 * sizeof(int32_t));
    }
    if (e == cudaSuccess) {
        what = "cudaDeviceGetAttribute";
        e = cudaDeviceGetAttribute(&s->sm_count, cudaDevAttrMultiProcessorCount, env->device_id);
    }
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&s->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                   env->device_id);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&s->smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor,
                                   env->device_id);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&s->cc_major, cudaDevAttrComputeCapabilityMajor, env->device_id);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&s->cc_minor, cudaDevAttrComputeCapabilityMinor, env->device_id);
    if (e == cudaSuccess && !env->no_pool) {
        /* the device buffers' pool (fli_dev_alloc_at), made even when the
         * context has allocator hooks now: they may be removed later, and
         * the hooks take precedence while they are set */
        what = "cudaMemPoolCreate";
        e = fli_keeping_pool(env->device_id, &s->pool);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&s->pool_ev, cudaEventDisableTiming);
    }
    if (e == cudaSuccess && s->cc_major < 8) {
        free_state(s);
        return FLI_FAIL(env, FL_STATUS_NO_DEVICE, "ctx_init",
                        "flashlib's CUDA kernels need compute capability 8.0 or later");
    }
    if (e != cudaSuccess) {
        st = fli_cuda_fail(env, __FILE__, __LINE__, what, e);
        free_state(s);
        return st;
    }
    env->state = s;
    return FL_STATUS_OK;
}

static void mod_release_memory(fli_cuda_env *env) {
    if (!env || !env->state) return;
    fli_cuda_state *s = fli_state(env);
    cudaSetDevice(env->device_id);
    if (s->stream) cudaStreamSynchronize(s->stream);
    fli_cuda_ivf_release(env);
    fli_cuda_ivfpq_release(env);
    fli_cuda_cagra_release(env);
    fli_cuda_knn_release(env);
    fli_cuda_pca_release(env);
    fli_cuda_la_release(env);
    if (s->pool) {
        cudaStreamSynchronize(s->stream); /* the frees above are stream-ordered */
        cudaMemPoolTrimTo(s->pool, 0);
    }
}

static void mod_ctx_free(fli_cuda_env *env) {
    if (!env || !env->state) return;
    mod_release_memory(env);
    free_state(fli_state(env));
    env->state = NULL;
}

static fl_status mod_pointer_device(fli_cuda_env *env, const void *p, int32_t *device_id) {
    cudaPointerAttributes a;
    memset(&a, 0, sizeof a);
    cudaError_t e = cudaPointerGetAttributes(&a, p);
    if (e != cudaSuccess) {
        /* older runtimes report plain host memory as an invalid value */
        (void)cudaGetLastError();
        if (e == cudaErrorInvalidValue) {
            *device_id = -1;
            return FL_STATUS_OK;
        }
        return fli_cuda_fail(env, __FILE__, __LINE__, "cudaPointerGetAttributes", e);
    }
    *device_id = (a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged) ? a.device : -1;
    return FL_STATUS_OK;
}

static fl_status mod_memcpy(fli_cuda_env *env, void *dst, int32_t dst_dev, const void *src,
                            int32_t src_dev, size_t bytes) {
    if (bytes == 0) return FL_STATUS_OK;
    cudaMemcpyKind kind = dst_dev < 0 ? (src_dev < 0 ? cudaMemcpyHostToHost : cudaMemcpyDeviceToHost)
                                      : (src_dev < 0 ? cudaMemcpyHostToDevice
                                                     : cudaMemcpyDeviceToDevice);
    cudaStream_t s = fli_state(env)->stream;
    if (dst_dev >= 0 && src_dev >= 0 && dst_dev != src_dev) {
        FLI_CUDA_TRY(env, cudaMemcpyPeerAsync(dst, dst_dev, src, src_dev, bytes, s));
    } else {
        FLI_CUDA_TRY(env, cudaMemcpyAsync(dst, src, bytes, kind, s));
    }
    FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
    return FL_STATUS_OK;
}

static fl_status mod_kmeans_fit(fli_cuda_env *env, fli_kmeans_job *job) {
    return fli_cuda_kmeans_fit(env, job);
}

static fl_status mod_kmeans_assign(fli_cuda_env *env, fli_kmeans_assign_job *job) {
    return fli_cuda_kmeans_assign(env, job);
}

static const fli_cuda_api g_api = {
    FLI_CUDA_ABI,       FL_VERSION_STRING, mod_ctx_init,     mod_ctx_free,
    mod_pointer_device, mod_memcpy,        mod_kmeans_fit,   mod_kmeans_assign,
    fli_cuda_pca_cov,   fli_cuda_decomp_apply, fli_cuda_knn_search, fli_cuda_ivf_search,
    /* approximate-index searches beside IVF-Flat's */
    fli_cuda_ivfpq_search, fli_cuda_cagra_search,
    fli_cuda_la_open,   mod_release_memory,
};

extern "C" __attribute__((visibility("default"))) const fli_cuda_api *fli_cuda_module_get(void) {
    return &g_api;
}
