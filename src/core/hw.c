/*
 * hw.c — GPU hardware properties through the CUDA driver API, loaded with
 * dlopen so that libflashlib never links CUDA. The driver library is opened
 * for each query and closed after it: no process-global state, and a CPU-only
 * program that never asks about the GPU never loads libcuda.
 */
#include <dlfcn.h>
#include <string.h>

#include "core/internal.h"

typedef int (*cu_init_fn)(unsigned);
typedef int (*cu_count_fn)(int *);
typedef int (*cu_get_fn)(int *, int);
typedef int (*cu_name_fn)(char *, int, int);
typedef int (*cu_attr_fn)(int *, int, int);
typedef int (*cu_mem_fn)(size_t *, int);

enum { /* CUdevice_attribute values from cuda.h (stable ABI) */
       CU_ATTR_SM_COUNT = 16,
       CU_ATTR_L2 = 38,
       CU_ATTR_CC_MAJOR = 75,
       CU_ATTR_CC_MINOR = 76,
       CU_ATTR_SMEM_PER_SM = 81,
       CU_ATTR_SMEM_OPTIN = 97
};

typedef struct driver {
    void *h;
    cu_init_fn init;
    cu_count_fn count;
    cu_get_fn get;
    cu_name_fn name;
    cu_attr_fn attr;
    cu_mem_fn mem;
} driver;

static const char *driver_open(driver *d)
{
    memset(d, 0, sizeof *d);
    d->h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!d->h)
        return "the CUDA driver (libcuda.so.1) is not installed or not on the loader path";
    d->init = (cu_init_fn)dlsym(d->h, "cuInit");
    d->count = (cu_count_fn)dlsym(d->h, "cuDeviceGetCount");
    d->get = (cu_get_fn)dlsym(d->h, "cuDeviceGet");
    d->name = (cu_name_fn)dlsym(d->h, "cuDeviceGetName");
    d->attr = (cu_attr_fn)dlsym(d->h, "cuDeviceGetAttribute");
    d->mem = (cu_mem_fn)dlsym(d->h, "cuDeviceTotalMem_v2");
    if (!d->init || !d->count || !d->get || !d->name || !d->attr || !d->mem) {
        dlclose(d->h);
        d->h = NULL;
        return "libcuda.so.1 lacks the driver API entry points flashlib needs (driver too old)";
    }
    if (d->init(0) != 0) {
        dlclose(d->h);
        d->h = NULL;
        return "cuInit failed: the driver is installed but no usable GPU was found";
    }
    return NULL;
}

int fli_hw_device_count(const char **why)
{
    driver d;
    const char *w = driver_open(&d);
    if (w) {
        if (why)
            *why = w;
        return 0;
    }
    int n = 0;
    if (d.count(&n) != 0)
        n = 0;
    dlclose(d.h);
    if (why)
        *why = n > 0 ? NULL : "the CUDA driver reports no devices";
    return n;
}

/* Short tag from the driver's name: the first token that names a known part. */
static void tag_from_name(const char *name, char *tag, size_t len)
{
    static const char *known[] = {"GH200", "H200", "H100", "H800", "H20",  "B200", "B100", "GB200",
                                  "A100",  "A800", "A10",  "A30",  "L40S", "L40",  "L4",   "RTX"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        if (strstr(name, known[i])) {
            snprintf(tag, len, "%s", known[i]);
            return;
        }
    }
    snprintf(tag, len, "GPU");
}

fl_status fli_hw_query(int32_t device_id, int disable_sm90, fl_hw_props *out, char *why, size_t why_len)
{
    driver d;
    const char *w = driver_open(&d);
    if (w) {
        snprintf(why, why_len, "%s", w);
        return FL_STATUS_NO_DEVICE;
    }
    int n = 0, dev = 0;
    if (d.count(&n) != 0 || device_id < 0 || device_id >= n || d.get(&dev, device_id) != 0) {
        snprintf(why, why_len, "CUDA device %d does not exist (the driver reports %d device%s)",
                 (int)device_id, n, n == 1 ? "" : "s");
        dlclose(d.h);
        return FL_STATUS_NO_DEVICE;
    }
    fl_hw_props p;
    memset(&p, 0, sizeof p);
    int v = 0;
    d.name(p.name, (int)sizeof p.name, dev);
    p.name[sizeof p.name - 1] = '\0';
    d.attr(&p.sm_major, CU_ATTR_CC_MAJOR, dev);
    d.attr(&p.sm_minor, CU_ATTR_CC_MINOR, dev);
    d.attr(&p.sm_count, CU_ATTR_SM_COUNT, dev);
    if (d.attr(&v, CU_ATTR_L2, dev) == 0)
        p.l2_bytes = v;
    if (d.attr(&v, CU_ATTR_SMEM_PER_SM, dev) == 0)
        p.smem_per_sm_bytes = v;
    if (d.attr(&v, CU_ATTR_SMEM_OPTIN, dev) == 0)
        p.smem_per_block_optin_bytes = v;
    size_t mem = 0;
    if (d.mem(&mem, dev) == 0)
        p.total_mem_bytes = (int64_t)mem;
    dlclose(d.h);
    tag_from_name(p.name, p.tag, sizeof p.tag);
    p.is_ampere = p.sm_major == 8;
    p.is_hopper = p.sm_major == 9;
    p.is_blackwell = p.sm_major == 10 || p.sm_major == 12;
    p.sm90_enabled = p.is_hopper && !disable_sm90;
    *out = p;
    return FL_STATUS_OK;
}

int fl_cuda_device_count(fl_ctx *ctx, const char **why)
{
    (void)ctx;
    return fli_hw_device_count(why);
}

fl_status fl_cuda_props(fl_ctx *ctx, int32_t device_id, fl_hw_props *out)
{
    if (!out)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "out is NULL: expected an fl_hw_props to fill");
    char why[256];
    fl_status st = fli_hw_query(device_id, ctx ? ctx->disable_sm90 : 0, out, why, sizeof why);
    if (st)
        return fli_fail(ctx, st, "%s", why);
    return FL_STATUS_OK;
}

int fli_ctx_hw(fl_ctx *ctx, fl_hw_props *out)
{
    memset(out, 0, sizeof *out);
    if (!fli_ctx_wants_gpu(ctx))
        return 0;
    if (!ctx->hw_cached) {
        char why[256];
        if (fli_hw_query(ctx->device_id, ctx->disable_sm90, &ctx->hw, why, sizeof why) != FL_STATUS_OK)
            return 0;
        ctx->hw_cached = 1;
    }
    *out = ctx->hw;
    return 1;
}

/* Whether libcuda or the flashlib CUDA module is mapped in this process,
 * read from /proc/self/maps (the loader's own record of what is mapped). */
int fl_cuda_loaded(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "/libcuda.so") != NULL || strstr(line, "/libflashlib_cuda.so") != NULL;
    fclose(f);
    return found;
}
