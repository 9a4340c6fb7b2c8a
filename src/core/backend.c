/*
 * backend.c — loading libflashlib_cuda.so on first GPU use.
 *
 * Search order: $FL_CUDA_MODULE (read at context creation), the directory
 * that holds libflashlib itself, then the loader's path. The module is
 * refused unless its ABI number and version match this library's, so a stale
 * module is never called. Each context holds its own dlopen reference and its
 * own module state; nothing here is process-global.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/fl_cuda_module.h"
#include "core/internal.h"

static void *open_module(fl_ctx *ctx, char *why, size_t why_len)
{
    void *h = NULL;
    if (ctx->cuda_module_path[0]) {
        h = dlopen(ctx->cuda_module_path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            snprintf(why, why_len, "FL_CUDA_MODULE=%.200s could not be loaded: %.200s", ctx->cuda_module_path,
                     dlerror());
            return NULL;
        }
        return h;
    }
    Dl_info info;
    if (dladdr((void *)&fl_version_string, &info) && info.dli_fname) {
        char path[1024];
        snprintf(path, sizeof path, "%s", info.dli_fname);
        char *slash = strrchr(path, '/');
        if (slash) {
            snprintf(slash + 1, sizeof path - (size_t)(slash + 1 - path), "libflashlib_cuda.so");
            h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        }
    }
    if (!h)
        h = dlopen("libflashlib_cuda.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(why, why_len,
                 "the CUDA module libflashlib_cuda.so was not found or failed to load (%s); this "
                 "build may be CPU-only",
                 e ? e : "not found");
    }
    return h;
}

typedef struct module_ref {
    void *handle;
    fli_cuda_env env;
} module_ref;

fl_status fli_cuda_acquire(fl_ctx *ctx, const fli_cuda_api **api, fli_cuda_env **env)
{
    if (ctx->cuda) {
        *api = ctx->cuda;
        *env = ctx->cuda_env;
        ctx->cuda_env->err = ctx->err;
        ctx->cuda_env->progress = ctx->progress;
        ctx->cuda_env->progress_user = ctx->progress_user;
        ctx->cuda_env->dalloc = ctx->have_dalloc ? &ctx->dalloc : NULL;
        ctx->cuda_env->halloc = ctx->halloc.alloc ? &ctx->halloc : NULL;
        ctx->cuda_env->host_threads = fl_ctx_get_threads(ctx);
        return FL_STATUS_OK;
    }
    char why[512];
    const char *cwhy = NULL;
    int n = fli_hw_device_count(&cwhy);
    if (n <= 0)
        return fli_fail(ctx, FL_STATUS_NO_DEVICE, "device '%s' needs a CUDA GPU: %s",
                        ctx->kind == FLI_DEVICE_AUTO ? "auto" : ctx->device_str, cwhy ? cwhy : "none found");
    if (ctx->device_id >= n)
        return fli_fail(ctx, FL_STATUS_NO_DEVICE, "device cuda:%d does not exist: %d GPU%s found",
                        (int)ctx->device_id, n, n == 1 ? "" : "s");
    fl_hw_props hw;
    fl_status st = fli_hw_query(ctx->device_id, ctx->disable_sm90, &hw, why, sizeof why);
    if (st)
        return fli_fail(ctx, st, "%s", why);
    if (hw.sm_major < 8)
        return fli_fail(ctx, FL_STATUS_UNSUPPORTED,
                        "%s has compute capability %d.%d: flashlib's CUDA backend needs 8.0 or later",
                        hw.name, hw.sm_major, hw.sm_minor);
    void *h = open_module(ctx, why, sizeof why);
    if (!h)
        return fli_fail(ctx, FL_STATUS_NO_DEVICE, "%s", why);
    fli_cuda_module_get_fn get = (fli_cuda_module_get_fn)dlsym(h, FLI_CUDA_MODULE_SYMBOL);
    const fli_cuda_api *a = get ? get() : NULL;
    if (!a || a->abi != FLI_CUDA_ABI || !a->version || strcmp(a->version, FL_VERSION_STRING)) {
        dlclose(h);
        return fli_fail(ctx, FL_STATUS_VERSION_MISMATCH,
                        "libflashlib_cuda.so does not match this library: module ABI %d version %s, "
                        "expected ABI %d version %s; rebuild both together",
                        a ? a->abi : -1, a && a->version ? a->version : "?", FLI_CUDA_ABI, FL_VERSION_STRING);
    }
    module_ref *ref = calloc(1, sizeof *ref);
    if (!ref) {
        dlclose(h);
        return fli_fail(ctx, FL_STATUS_OUT_OF_MEMORY, "out of host memory loading the CUDA module");
    }
    ref->handle = h;
    ref->env.device_id = ctx->device_id;
    ref->env.sm90_enabled = hw.sm90_enabled;
    ref->env.km_rescore = ctx->km_rescore;
    ref->env.km_fused = ctx->km_fused;
    ref->env.h2d_staging = ctx->h2d_staging;
    ref->env.no_pool = !ctx->cuda_pool;
    ref->env.host_threads = fl_ctx_get_threads(ctx);
    ref->env.dalloc = ctx->have_dalloc ? &ctx->dalloc : NULL;
    ref->env.halloc = ctx->halloc.alloc ? &ctx->halloc : NULL;
    ref->env.progress = ctx->progress;
    ref->env.progress_user = ctx->progress_user;
    ref->env.err = ctx->err;
    ref->env.err_len = sizeof ctx->err;
    st = a->ctx_init(&ref->env);
    if (st) {
        dlclose(h);
        free(ref);
        return st; /* the module wrote the message into ctx->err */
    }
    ctx->cuda = a;
    ctx->cuda_env = &ref->env;
    *api = a;
    *env = &ref->env;
    return FL_STATUS_OK;
}

fl_status fl_ctx_release_device_memory(fl_ctx *ctx)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    if (ctx->cuda) {
        /* the caches may have come from the user's allocator: free them there */
        ctx->cuda_env->dalloc = ctx->have_dalloc ? &ctx->dalloc : NULL;
        ctx->cuda->release_memory(ctx->cuda_env);
    }
    return FL_STATUS_OK;
}

void fli_cuda_release_ctx(fl_ctx *ctx)
{
    if (!ctx->cuda)
        return;
    module_ref *ref = (module_ref *)((char *)ctx->cuda_env - offsetof(module_ref, env));
    ctx->cuda->ctx_free(ctx->cuda_env);
    dlclose(ref->handle);
    free(ref);
    ctx->cuda = NULL;
    ctx->cuda_env = NULL;
}

int32_t fli_array_device(const fl_array *a)
{
    return a->mem == FL_MEM_CUDA ? a->device_id : -1;
}

fl_status fli_copy(fl_ctx *ctx, void *dst, int32_t dst_dev, const void *src, int32_t src_dev, size_t bytes)
{
    if (bytes == 0)
        return FL_STATUS_OK;
    if (dst_dev < 0 && src_dev < 0) {
        memcpy(dst, src, bytes);
        return FL_STATUS_OK;
    }
    const fli_cuda_api *api;
    fli_cuda_env *env;
    fl_status st = fli_cuda_acquire(ctx, &api, &env);
    if (st)
        return st;
    return api->memcpy(env, dst, dst_dev, src, src_dev, bytes);
}

fl_status fl_ctx_cuda_check(fl_ctx *ctx)
{
    if (!ctx)
        return FL_STATUS_INVALID_ARG;
    fli_clear_error(ctx);
    const fli_cuda_api *api;
    fli_cuda_env *env;
    return fli_cuda_acquire(ctx, &api, &env);
}
