/*
 * fl_cuda_util.cuh — what every file of the CUDA module shares: the
 * per-context state, the error macros that turn CUDA failures into
 * fl_status with "file:line: what failed: why" in env->err, and device
 * allocation through the context's allocator hooks.
 *
 * Error style: functions return fl_status; FLI_CUDA_TRY returns from the
 * enclosing function on failure. Whoever allocates frees, on every path:
 * the top-level entry points allocate one arena, call a body that may fail
 * anywhere, then free the arena whatever the body returned.
 */
#ifndef FL_CUDA_UTIL_CUH
#define FL_CUDA_UTIL_CUH

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backends/cuda/fl_cuda_module.h"

/* What ctx_init creates and ctx_free releases. */
typedef struct fli_cuda_state {
    cudaStream_t stream;      /* all compute of this context                  */
    cudaStream_t copy_stream; /* host->device chunk copies that overlap it     */
    int32_t *pinned;          /* small pinned host buffer: device flags read
                                 without a blocking copy                       */
    int sm_count;
    int smem_optin;           /* max dynamic shared memory per block (bytes)   */
    int smem_per_sm;          /* shared memory of an SM (bytes)                */
    int cc_major, cc_minor;
    void *blas, *solver;      /* cuBLAS / cuSOLVER handles, made on first use
                                 (pca_cuda.cu), released with the state      */
    void *ivf;                /* the device copy of the last IVF index searched
                                 (ivf_cuda.cu), released by ctx_free          */
    void *knn_db;             /* the device copy of the last model database
                                 searched (knn_cuda.cu), released by ctx_free */
    void *la;                 /* linear algebra's memory pool and cuBLAS
                                 workspace (linalg_cuda.cu), released by
                                 ctx_free                                     */
    void *pca;                /* PCA's covariance buffers kept between fits
                                 (pca_cuda.cu), released by ctx_free        */
    void *h2d;                /* pinned staging of host -> device copies
                                 (h2d.cu), made on the first large copy     */
    cudaMemPool_t pool;       /* device buffers (fli_dev_alloc without a user
                                 allocator); NULL: cudaMalloc each time      */
    cudaEvent_t pool_ev;      /* orders the copy stream after pool operations */
    void *ivfpq, *cagra;      /* the device copies of the last IVF-PQ index
                                 (ivfpq_cuda.cu) and CAGRA graph
                                 (cagra_cuda.cu) searched, released by
                                 ctx_free                                     */
} fli_cuda_state;

static inline fli_cuda_state *fli_state(fli_cuda_env *env) { return (fli_cuda_state *)env->state; }

/* Shortens __FILE__ to the part from "src/" on, for readable messages. */
static inline const char *fli_short_file(const char *f) {
    const char *p = f, *best = f;
    for (; *p; p++)
        if (p[0] == 's' && p[1] == 'r' && p[2] == 'c' && p[3] == '/') best = p;
    return best;
}

static inline fl_status fli_set_err(fli_cuda_env *env, fl_status st, const char *file, int line,
                                    const char *what, const char *why) {
    if (env && env->err && env->err_len)
        snprintf(env->err, env->err_len, "%s:%d: %s: %s", fli_short_file(file), line, what, why);
    return st;
}

/* A failed CUDA call: memory errors become DEVICE_OOM, the rest CUDA_ERROR.
 * cudaGetLastError() clears a non-sticky error so the context stays usable. */
static inline fl_status fli_cuda_fail(fli_cuda_env *env, const char *file, int line,
                                      const char *what, cudaError_t e) {
    (void)cudaGetLastError();
    fl_status st = e == cudaErrorMemoryAllocation ? FL_STATUS_DEVICE_OOM : FL_STATUS_CUDA_ERROR;
    return fli_set_err(env, st, file, line, what, cudaGetErrorString(e));
}

#define FLI_CUDA_TRY(env, call)                                                    \
    do {                                                                           \
        cudaError_t e_ = (call);                                                   \
        if (e_ != cudaSuccess) return fli_cuda_fail((env), __FILE__, __LINE__, #call, e_); \
    } while (0)

/* After a kernel launch: launch-configuration errors surface here. */
#define FLI_LAUNCH_TRY(env, what)                                                  \
    do {                                                                           \
        cudaError_t e_ = cudaGetLastError();                                       \
        if (e_ != cudaSuccess) return fli_cuda_fail((env), __FILE__, __LINE__, what, e_); \
    } while (0)

/* Propagates a non-OK status (the message is already set). */
#define FLI_TRY(expr)                     \
    do {                                  \
        fl_status s_ = (expr);            \
        if (s_ != FL_STATUS_OK) return s_; \
    } while (0)

#define FLI_FAIL(env, st, what, why) fli_set_err((env), (st), __FILE__, __LINE__, (what), (why))

/* A stream-ordered pool on `device` that keeps what it is given (release
 * threshold unlimited: no trimming at synchronisations). *pool is NULL on
 * failure. The context's device-buffer pool and the linear-algebra cache's
 * are both made here. */
static inline cudaError_t fli_keeping_pool(int32_t device, cudaMemPool_t *pool) {
    cudaMemPoolProps props;
    memset(&props, 0, sizeof props);
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    uint64_t keep = UINT64_MAX;
    cudaError_t e = cudaMemPoolCreate(pool, &props);
    if (e == cudaSuccess) e = cudaMemPoolSetAttribute(*pool, cudaMemPoolAttrReleaseThreshold, &keep);
    if (e != cudaSuccess) {
        if (*pool) cudaMemPoolDestroy(*pool);
        *pool = NULL;
    }
    return e;
}

/* Device memory only through the context's hooks when it has them; else
 * from the context's pool (module.cu makes it unless env->no_pool).
 *
 * Why a pool: a call's buffers were cudaMalloc'd and cudaFree'd each time,
 * and cudaFree waits for the whole device. What that costs varies between
 * machines (bench/gpu/KNN_NOTES.md): on one H100, with a pool as the user
 * allocator, 100 queries x 1M x 128 bf16 went 2.8-3.8 -> 1.7 ms and the
 * k = 1024 search 92-101 -> 71 ms; on another, cudaMalloc per call
 * measured the same as this pool.
 * The pool keeps freed blocks (its release threshold is unlimited) until
 * the context is freed, or until an allocation would fail: then it is
 * trimmed and the allocation retried once.
 *
 * Ordering: pool blocks are taken and returned in the context's stream,
 * so a block comes back only after the work queued before its free. The
 * copy stream (chunk uploads) is made to wait for each allocation, and
 * each free waits for the copy stream's queued work, so a block is never
 * written there while its previous owner's kernels still run, nor reused
 * while an upload into it is in flight. */
static inline fl_status fli_dev_alloc_at(fli_cuda_env *env, size_t bytes, void **p, const char *file,
                                         int line) {
    *p = NULL;
    if (bytes == 0) return FL_STATUS_OK;
    if (env->dalloc && env->dalloc->alloc) {
        if (env->dalloc->alloc(env->dalloc->user, env->device_id, bytes, p) != 0 || !*p) {
            *p = NULL;
            char why[96];
            snprintf(why, sizeof why, "the allocator refused %zu bytes", bytes);
            return fli_set_err(env, FL_STATUS_DEVICE_OOM, file, line, "device allocation", why);
        }
        return FL_STATUS_OK;
    }
    fli_cuda_state *st = (fli_cuda_state *)env->state;
    cudaError_t e;
    if (st && st->pool) {
        e = cudaMallocFromPoolAsync(p, bytes, st->pool, st->stream);
        if (e != cudaSuccess) { /* the pool's cached blocks may hold what is missing */
            (void)cudaGetLastError();
            cudaStreamSynchronize(st->stream);
            cudaMemPoolTrimTo(st->pool, 0);
            e = cudaMallocFromPoolAsync(p, bytes, st->pool, st->stream);
        }
        if (e == cudaSuccess && (e = cudaEventRecord(st->pool_ev, st->stream)) == cudaSuccess)
            e = cudaStreamWaitEvent(st->copy_stream, st->pool_ev, 0);
        if (e != cudaSuccess && *p) {
            cudaFreeAsync(*p, st->stream);
            *p = NULL;
        }
    } else {
        e = cudaMalloc(p, bytes);
    }
    if (e != cudaSuccess) {
        *p = NULL;
        (void)cudaGetLastError();
        char why[160];
        snprintf(why, sizeof why, "%zu bytes: %s", bytes, cudaGetErrorString(e));
        return fli_set_err(env, FL_STATUS_DEVICE_OOM, file, line, "cudaMalloc", why);
    }
    return FL_STATUS_OK;
}
#define fli_dev_alloc(env, bytes, p) fli_dev_alloc_at((env), (bytes), (p), __FILE__, __LINE__)

static inline void fli_dev_free(fli_cuda_env *env, void *p) {
    if (!p) return;
    fli_cuda_state *st = (fli_cuda_state *)env->state;
    if (env->dalloc && env->dalloc->free) {
        env->dalloc->free(env->dalloc->user, env->device_id, p);
    } else if (st && st->pool) {
        /* after the copy stream's queued work too (see fli_dev_alloc_at) */
        if (cudaEventRecord(st->pool_ev, st->copy_stream) == cudaSuccess)
            cudaStreamWaitEvent(st->stream, st->pool_ev, 0);
        cudaFreeAsync(p, st->stream);
    } else {
        cudaFree(p);
    }
}

/* cudaMemGetInfo for sizing a plan: the pool's cached blocks count as
 * free (an allocation that needs them trims the pool). */
static inline cudaError_t fli_dev_mem_info(fli_cuda_env *env, size_t *free_b, size_t *total_b) {
    cudaError_t e = cudaMemGetInfo(free_b, total_b);
    fli_cuda_state *st = (fli_cuda_state *)env->state;
    if (e == cudaSuccess && st && st->pool) {
        uint64_t reserved = 0, used = 0;
        if (cudaMemPoolGetAttribute(st->pool, cudaMemPoolAttrReservedMemCurrent, &reserved) == cudaSuccess &&
            cudaMemPoolGetAttribute(st->pool, cudaMemPoolAttrUsedMemCurrent, &used) == cudaSuccess &&
            reserved > used)
            *free_b += (size_t)(reserved - used);
    }
    return e;
}

/* Host scratch through the context's host allocator (env->halloc), else
 * malloc; NULL on failure (the caller reports it). */
static inline void *fli_host_alloc(fli_cuda_env *env, size_t bytes) {
    if (env->halloc && env->halloc->alloc) return env->halloc->alloc(env->halloc->user, bytes);
    return malloc(bytes);
}

static inline void fli_host_free(fli_cuda_env *env, void *p) {
    if (!p) return;
    if (env->halloc && env->halloc->alloc) {
        if (env->halloc->free) env->halloc->free(env->halloc->user, p);
    } else {
        free(p);
    }
}

static inline int64_t fli_ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Copies `rows` rows of `width` bytes from pageable host memory (row pitch
 * spitch) to device memory (pitch dpitch), in order on stream st, like
 * cudaMemcpy2DAsync; large copies go through the context's pinned staging
 * buffers (h2d.cu). The source may be reused once it returns. */
fl_status fli_h2d(fli_cuda_env *env, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                  size_t rows, cudaStream_t st);
/* Frees the staging buffers (after their last copies); ctx_free's. */
void fli_h2d_release(fli_cuda_state *s);

/* Counter-based uniform in [0, 1): the same function on host and device, so
 * random draws need no device buffer and no transfer (splitmix64 finaliser
 * over a (seed, stream, counter) mix). */
__host__ __device__ static inline uint64_t fli_mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
__host__ __device__ static inline double fli_uniform(uint64_t seed, uint64_t stream, uint64_t i) {
    uint64_t z = fli_mix64(seed ^ fli_mix64(stream * 0x100000001B3ull + i));
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

#endif
