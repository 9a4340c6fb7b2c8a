/*
 * cmd_diagnose.c — `flashlib diagnose`: what this machine and this build
 * can do, and why not where they cannot.
 *
 * It only calls the public API: the GPU count (with the reason for a 0), the
 * properties of each device, and a tiny KMeans fit on each backend that is
 * present, which proves the CUDA module really loads and runs. With no GPU
 * nothing touches CUDA beyond the library's own probe of the driver.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

enum { O_JSON, O_NO_CHECK, O_COUNT };

static const cli_opt opts[] = {
    [O_JSON] = {"json", 0, NULL, 0, "print one JSON object instead of text"},
    [O_NO_CHECK] = {"no-check", 0, NULL, 0, "skip the small test fit on each backend"},
    [O_COUNT] = {NULL, 0, NULL, 0, NULL},
};

#ifdef __clang__
#define CLI_COMPILER "clang " __clang_version__
#else
#define CLI_COMPILER "gcc " __VERSION__
#endif

/* Prints `flashlib diagnose --help`. */
static void help(void)
{
    puts("usage: flashlib diagnose [--json] [--no-check]\n\n"
         "Prints the library's version and where it was loaded from, the CPU threads\n"
         "the CPU backend uses, and the CUDA devices with their properties (name, tag,\n"
         "compute capability, SMs, L2, shared memory, memory, family, whether the\n"
         "Hopper sm_90a path is enabled). Without a usable GPU it says why, and it\n"
         "never loads the CUDA module then. Unless --no-check is given, it runs a\n"
         "small KMeans fit on the CPU and on each GPU and reports the result.\n");
    cli_print_options(stdout, opts);
    puts("\nexit codes: 0 (also without a GPU), 2 usage, 4 library error.");
}

/* What the CPU backend will use: FL_NUM_THREADS, else OpenMP's default. */
typedef struct cpu_info {
    long online;
    int omp_max; /* -1: the OpenMP runtime is not visible */
    const char *fl_num_threads, *omp_num_threads;
    int threads;
} cpu_info;

/* Fills *c from sysconf, the environment and the OpenMP runtime. */
static void get_cpu(cpu_info *c)
{
    c->online = sysconf(_SC_NPROCESSORS_ONLN);
    /* The library links OpenMP, so its runtime is in the process: ask it
     * directly rather than guess from the environment. */
    int (*omp_max)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
    c->omp_max = omp_max ? omp_max() : -1;
    c->fl_num_threads = getenv("FL_NUM_THREADS");
    c->omp_num_threads = getenv("OMP_NUM_THREADS");
    int fl = c->fl_num_threads ? atoi(c->fl_num_threads) : 0;
    c->threads = fl > 0 ? fl : (c->omp_max > 0 ? c->omp_max : (int)c->online);
}

/* Fits KMeans (256 x 16, 4 clusters) on `device`; writes "ok (...)" or the
 * error into msg. Returns 1 when it worked. */
static int check_device(const char *device, char *msg, size_t len)
{
    fl_ctx *ctx = NULL;
    char err[256];
    if (fl_ctx_create(device, &ctx, err, sizeof err)) {
        snprintf(msg, len, "%s", err);
        return 0;
    }
    enum { N = 256, D = 16, K = 4 };
    float *X = malloc(sizeof(float) * N * D), *C = malloc(sizeof(float) * K * D);
    fl_params *p = NULL;
    int ok = 0;
    fl_status st = X && C ? fl_params_create(ctx, "kmeans", &p) : FL_STATUS_OUT_OF_MEMORY;
    if (!st)
        st = fl_params_set(ctx, p, "n_clusters", "4");
    if (!st)
        st = fl_params_set(ctx, p, "random_state", "0");
    if (!st) {
        for (int i = 0; i < N; i++)
            for (int j = 0; j < D; j++)
                X[i * D + j] = (float)(10 * (i % K) + ((i * 7 + j * 3) % 5) * 0.1);
        fl_array xa = fl_array_host(X, FL_DTYPE_F32, N, D), ca = fl_array_host(C, FL_DTYPE_F32, K, D);
        double inertia = 0, t0 = cli_now();
        st = fl_kmeans_fit(ctx, &xa, NULL, p, &ca, NULL, &inertia, NULL);
        if (!st) {
            snprintf(msg, len, "ok (kmeans 256 x 16, k=4 in %.1f ms)", 1e3 * (cli_now() - t0));
            ok = 1;
        }
    }
    if (st)
        snprintf(msg, len, "%s [%s]", fl_ctx_last_error(ctx), fl_status_str(st));
    fl_params_free(p);
    free(X);
    free(C);
    fl_ctx_free(ctx);
    return ok;
}

/* The architecture family of a device, in words. */
static const char *family(const fl_hw_props *h)
{
    return h->is_hopper ? "hopper" : h->is_blackwell ? "blackwell" : h->is_ampere ? "ampere/ada" : "other";
}

/* Whether the Hopper sm_90a path is used on this device, and why not. */
static const char *sm90_state(const fl_hw_props *h)
{
    if (!h->is_hopper)
        return "not applicable (not compute capability 9.0)";
    return h->sm90_enabled ? "enabled" : "disabled by FL_DISABLE_SM90";
}

/* `flashlib diagnose`: see help(). Exits 0 without a GPU; 4 when a
 * present GPU cannot be queried. */
int cmd_diagnose(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse("diagnose", opts, 0, argc, argv, &a);
    if (rc)
        return rc;
    if (a.help) {
        help();
        return 0;
    }
    const int json = a.val[O_JSON] != NULL, check = a.val[O_NO_CHECK] == NULL;
    fl_ctx *ctx = NULL;
    char err[256];
    fl_status st = fl_ctx_create("auto", &ctx, err, sizeof err);
    if (st) {
        cli_error("cannot create a context: %s [%s]", err, fl_status_str(st));
        return CLI_EXIT_LIBRARY;
    }
    cpu_info cpu;
    get_cpu(&cpu);
    const char *why = NULL;
    const int n_gpu = fl_cuda_device_count(ctx, &why);
    const char *auto_dev = fl_ctx_device(ctx);
    const char *sm90_env = getenv("FL_DISABLE_SM90");
    char cpu_check[512] = "skipped";
    if (check)
        check_device("cpu", cpu_check, sizeof cpu_check);
    cli_json j;
    if (json) {
        cj_begin(&j, stdout);
        cj_str(&j, "cli_version", CLI_VERSION);
        cj_str(&j, "library_version", fl_version_string());
        cj_str(&j, "library_path", cli_library_path());
        cj_bool(&j, "version_match", !strcmp(fl_version_string(), CLI_VERSION));
        cj_str(&j, "compiler", CLI_COMPILER);
        cj_arr(&j, "algorithms");
        for (const char *const *al = fl_algorithms(); al && *al; al++)
            cj_str(&j, NULL, *al);
        cj_close(&j, ']');
        cj_obj(&j, "cpu");
        cj_int(&j, "online_cpus", cpu.online);
        cj_int(&j, "threads", cpu.threads);
        if (cpu.omp_max > 0)
            cj_int(&j, "omp_max_threads", cpu.omp_max);
        else
            cj_str(&j, "omp_max_threads", NULL);
        cj_str(&j, "FL_NUM_THREADS", cpu.fl_num_threads);
        cj_str(&j, "OMP_NUM_THREADS", cpu.omp_num_threads);
        cj_str(&j, "check", cpu_check);
        cj_close(&j, '}');
        cj_obj(&j, "cuda");
        cj_int(&j, "device_count", n_gpu);
        cj_str(&j, "why_none", n_gpu ? NULL : (why ? why : "no CUDA device found"));
        cj_str(&j, "auto_device", auto_dev);
        cj_str(&j, "FL_DISABLE_SM90", sm90_env);
        cj_arr(&j, "devices");
    } else {
        printf("flashlib %s\n", CLI_VERSION);
        printf("  library        %s (%s)\n", fl_version_string(), cli_library_path());
        printf("  compiler       %s\n", CLI_COMPILER);
        printf("  algorithms    ");
        for (const char *const *al = fl_algorithms(); al && *al; al++)
            printf(" %s", *al);
        printf("\ncpu\n  online CPUs    %ld\n", cpu.online);
        printf("  threads        %d (FL_NUM_THREADS %s, OMP_NUM_THREADS %s, OpenMP default %d)\n",
               cpu.threads, cpu.fl_num_threads ? cpu.fl_num_threads : "unset",
               cpu.omp_num_threads ? cpu.omp_num_threads : "unset", cpu.omp_max);
        printf("  check          %s\n", cpu_check);
        printf("cuda\n  devices        %d\n", n_gpu);
        if (!n_gpu)
            printf("  why none       %s\n", why ? why : "no CUDA device found");
        printf("  device auto    %s\n", auto_dev);
        printf("  FL_DISABLE_SM90 %s\n", sm90_env ? sm90_env : "unset");
    }
    int lib_err = 0;
    for (int i = 0; i < n_gpu; i++) {
        fl_hw_props h;
        memset(&h, 0, sizeof h);
        st = fl_cuda_props(ctx, i, &h);
        char dev[16], chk[512] = "skipped";
        snprintf(dev, sizeof dev, "cuda:%d", i);
        if (!st && check)
            check_device(dev, chk, sizeof chk);
        if (json) {
            cj_obj(&j, NULL);
            cj_int(&j, "id", i);
            if (st) {
                cj_str(&j, "error", fl_ctx_last_error(ctx));
                cj_close(&j, '}');
                lib_err = 1;
                continue;
            }
            cj_str(&j, "name", h.name);
            cj_str(&j, "tag", h.tag);
            char sm[16];
            snprintf(sm, sizeof sm, "%d.%d", h.sm_major, h.sm_minor);
            cj_str(&j, "compute_capability", sm);
            cj_int(&j, "sm_count", h.sm_count);
            cj_int(&j, "l2_bytes", h.l2_bytes);
            cj_int(&j, "smem_per_sm_bytes", h.smem_per_sm_bytes);
            cj_int(&j, "smem_per_block_optin_bytes", h.smem_per_block_optin_bytes);
            cj_int(&j, "total_mem_bytes", h.total_mem_bytes);
            cj_bool(&j, "is_ampere", h.is_ampere);
            cj_bool(&j, "is_hopper", h.is_hopper);
            cj_bool(&j, "is_blackwell", h.is_blackwell);
            cj_bool(&j, "sm90_enabled", h.sm90_enabled);
            cj_str(&j, "check", chk);
            cj_close(&j, '}');
        } else if (st) {
            printf("  device %d       error: %s [%s]\n", i, fl_ctx_last_error(ctx), fl_status_str(st));
            lib_err = 1;
        } else {
            printf("  device %d       %s (%s)\n", i, h.name, h.tag);
            printf("    compute      sm %d.%d, %d SMs (%s)\n", h.sm_major, h.sm_minor, h.sm_count,
                   family(&h));
            printf("    L2           %.1f MiB\n", (double)h.l2_bytes / (1 << 20));
            printf("    shared mem   %lld KiB per SM, %lld KiB per block (opt-in)\n",
                   (long long)(h.smem_per_sm_bytes >> 10), (long long)(h.smem_per_block_optin_bytes >> 10));
            printf("    memory       %.1f GiB\n", (double)h.total_mem_bytes / (1 << 30));
            printf("    sm90 path    %s\n", sm90_state(&h));
            printf("    check        %s\n", chk);
        }
    }
    const int loaded = fl_cuda_loaded();
    if (json) {
        cj_close(&j, ']');
        cj_bool(&j, "cuda_loaded", loaded);
        cj_close(&j, '}');
        cj_end(&j);
    } else {
        printf("  cuda loaded    %s\n",
               loaded ? "yes (libcuda or the CUDA module is mapped in this process)" : "no");
    }
    fl_ctx_free(ctx);
    return lib_err ? CLI_EXIT_LIBRARY : 0;
}
