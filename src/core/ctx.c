/* ctx.c — the context: device choice, threads, seed, callbacks, allocators. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static fl_status parse_device(const char *device, fli_device_kind *kind, int32_t *id, char *err,
                              size_t err_len)
{
    *id = 0;
    if (!device || !strcmp(device, "auto")) {
        *kind = FLI_DEVICE_AUTO;
        return FL_STATUS_OK;
    }
    if (!strcmp(device, "cpu")) {
        *kind = FLI_DEVICE_CPU;
        return FL_STATUS_OK;
    }
    if (!strcmp(device, "cuda") || !strcmp(device, "gpu")) {
        *kind = FLI_DEVICE_CUDA;
        return FL_STATUS_OK;
    }
    if (!strncmp(device, "cuda:", 5)) {
        char *end = NULL;
        long v = strtol(device + 5, &end, 10);
        if (end != device + 5 && *end == '\0' && v >= 0 && v < 1024) {
            *kind = FLI_DEVICE_CUDA;
            *id = (int32_t)v;
            return FL_STATUS_OK;
        }
    }
    if (err && err_len)
        snprintf(err, err_len, "device '%s' is not valid: expected 'auto', 'cpu', 'cuda' or 'cuda:N'",
                 device);
    return FL_STATUS_INVALID_ARG;
}

fl_status fl_ctx_create(const char *device, fl_ctx **out, char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (!out) {
        if (err && err_len)
            snprintf(err, err_len, "out is NULL: expected a pointer to receive the context");
        return FL_STATUS_INVALID_ARG;
    }
    *out = NULL;
    fli_device_kind kind;
    int32_t id;
    fl_status st = parse_device(device, &kind, &id, err, err_len);
    if (st)
        return st;
    fl_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        if (err && err_len)
            snprintf(err, err_len, "out of host memory creating a context");
        return FL_STATUS_OUT_OF_MEMORY;
    }
    ctx->kind = kind;
    ctx->device_id = id;
    ctx->seed = 0;
    ctx->verbosity = FL_LOG_WARN;
    const char *s = getenv("FL_DISABLE_SM90");
    ctx->disable_sm90 = s && *s && strcmp(s, "0") != 0;
    s = getenv("FL_KM_RESCORE");
    ctx->km_rescore = !(s && s[0] == '0');
    /* FL_DECOMP_LA=1: the CPU runs the randomized PCA / TruncatedSVD solver
     * through the same fli_la code as the GPU (tests compare the two) */
    s = getenv("FL_DECOMP_LA");
    ctx->decomp_la = s && s[0] == '1';
    s = getenv("FL_PCA_FULL_EIGH");
    ctx->pca_full_eigh = s && s[0] == '1';
    s = getenv("FL_TOPK_ORTH"); /* values: algo/linalg_topk.h's FLI_TOPK_ORTH_* */
    ctx->topk_mode = !s ? 0 : !strcmp(s, "wait") ? 1 : !strcmp(s, "redo") ? 2 : 0;
    s = getenv("FL_TOPK_HOST"); /* "lapack": FLI_TOPK_HOST_LAPACK */
    ctx->topk_mode |= s && !strcmp(s, "lapack") ? 4 : 0;
    s = getenv("FL_PCA_PRODUCT");
    ctx->pca_product = !s                               ? 0
                       : !strcmp(s, "3xtf32")           ? 4
                       : !strcmp(s, "3xbf16")           ? 5
                       : !strcmp(s, "3xtf32-fused")     ? 6
                       : !strcmp(s, "3xtf32-fused-mma") ? 7
                       : !strcmp(s, "fp32")             ? 1
                                                        : 0;
    s = getenv("FL_KM_FUSED");
    ctx->km_fused = s && s[0] == '1';
    s = getenv("FL_H2D_STAGING");
    ctx->h2d_staging = !(s && s[0] == '0');
    s = getenv("FL_CUDA_POOL");
    ctx->cuda_pool = !(s && s[0] == '0');
    s = getenv("FL_NUM_THREADS");
    if (s && *s)
        ctx->threads = atoi(s) > 0 ? atoi(s) : 0;
    s = getenv("FL_CUDA_MODULE");
    if (s && strlen(s) < sizeof ctx->cuda_module_path)
        strcpy(ctx->cuda_module_path, s);
    if (kind == FLI_DEVICE_CPU)
        strcpy(ctx->device_str, "cpu");
    else if (kind == FLI_DEVICE_CUDA)
        snprintf(ctx->device_str, sizeof ctx->device_str, "cuda:%d", (int)id);
    *out = ctx;
    return FL_STATUS_OK;
}

void fl_ctx_free(fl_ctx *ctx)
{
    if (!ctx)
        return;
    fli_cuda_release_ctx(ctx);
    free(ctx);
}

const char *fl_ctx_last_error(const fl_ctx *ctx)
{
    return ctx ? ctx->err : "ctx is NULL";
}

fl_status fl_ctx_set_threads(fl_ctx *ctx, int threads)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    if (threads < 0)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "threads=%d: must be >= 0 (0 = OpenMP default)", threads);
    ctx->threads = threads;
    return FL_STATUS_OK;
}

fl_status fl_ctx_set_seed(fl_ctx *ctx, uint64_t seed)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    ctx->seed = seed;
    return FL_STATUS_OK;
}

fl_status fl_ctx_set_verbosity(fl_ctx *ctx, fl_log_level level)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    if (level < FL_LOG_ERROR || level > FL_LOG_DEBUG)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "verbosity=%d: must be in [0, 3]", (int)level);
    ctx->verbosity = level;
    return FL_STATUS_OK;
}

fl_status fl_ctx_set_progress(fl_ctx *ctx, fl_progress_fn fn, void *user)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    ctx->progress = fn;
    ctx->progress_user = user;
    return FL_STATUS_OK;
}

fl_status fl_ctx_set_log(fl_ctx *ctx, fl_log_fn fn, void *user)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    ctx->log = fn;
    ctx->log_user = user;
    return FL_STATUS_OK;
}

fl_status fl_ctx_set_host_allocator(fl_ctx *ctx, const fl_host_allocator *a)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    if (a && (!a->alloc || !a->free))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "host allocator: alloc and free must both be set");
    if (a)
        ctx->halloc = *a;
    else
        memset(&ctx->halloc, 0, sizeof ctx->halloc);
    return FL_STATUS_OK;
}

fl_status fl_ctx_set_device_allocator(fl_ctx *ctx, const fl_device_allocator *a)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    if (a && (!a->alloc || !a->free))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "device allocator: alloc and free must both be set");
    /* what the GPU state keeps between calls came from the allocator in
     * place until now (the context's pool, or the previous hooks): give it
     * back through that one before the switch, never through the new one */
    fl_ctx_release_device_memory(ctx);
    if (a) {
        ctx->dalloc = *a;
        ctx->have_dalloc = 1;
    } else {
        memset(&ctx->dalloc, 0, sizeof ctx->dalloc);
        ctx->have_dalloc = 0;
    }
    return FL_STATUS_OK;
}

int fli_ctx_wants_gpu(fl_ctx *ctx)
{
    if (ctx->kind == FLI_DEVICE_CPU)
        return 0;
    if (ctx->kind == FLI_DEVICE_CUDA)
        return 1;
    if (!ctx->auto_resolved) {
        const char *why = NULL;
        ctx->auto_has_gpu = fli_hw_device_count(&why) > 0;
        ctx->auto_resolved = 1;
        if (ctx->auto_has_gpu)
            snprintf(ctx->device_str, sizeof ctx->device_str, "cuda:%d", (int)ctx->device_id);
        else {
            strcpy(ctx->device_str, "cpu");
            fli_log(ctx, FL_LOG_INFO, "device 'auto' runs on the CPU: %s", why ? why : "no GPU");
        }
    }
    return ctx->auto_has_gpu;
}

fl_status fli_ctx_gpu(fl_ctx *ctx, fl_hw_props *hw, int *gpu)
{
    *gpu = fli_ctx_wants_gpu(ctx);
    if (*gpu && !fli_ctx_hw(ctx, hw)) {
        *gpu = 0;
        if (ctx->kind == FLI_DEVICE_CUDA) {
            const struct fli_cuda_api *api;
            struct fli_cuda_env *env;
            fl_status st = fli_cuda_acquire(ctx, &api, &env); /* gives the precise reason */
            return st ? st : fli_fail(ctx, FL_STATUS_NO_DEVICE, "the requested GPU is not usable");
        }
    }
    return FL_STATUS_OK;
}

const char *fl_ctx_device(fl_ctx *ctx)
{
    if (!ctx)
        return "";
    (void)fli_ctx_wants_gpu(ctx);
    return ctx->device_str;
}

int fl_ctx_get_threads(const fl_ctx *ctx)
{
    if (!ctx)
        return 0;
    return ctx->threads > 0 ? ctx->threads : omp_get_max_threads();
}

int fl_ctx_sm90_disabled(const fl_ctx *ctx)
{
    return ctx ? ctx->disable_sm90 : 0;
}

#define FL_STR_(x) #x
#define FL_STR(x) FL_STR_(x)
const char *fl_build_info(void)
{
    return "flashlib " FL_VERSION_STRING "; " FL_BUILD_COMPILER "; BLAS " FL_BUILD_BLAS "; CUDA module "
#if FL_BUILD_CUDA
           "built (nvcc " FL_BUILD_CUDA_VERSION ")"
#else
           "not built"
#endif
#if FL_BUILD_SM90
           "; sm_90a kernels built"
#endif
        ;
}
