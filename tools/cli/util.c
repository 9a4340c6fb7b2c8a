/*
 * util.c — messages, the library version check, parameters from "-p"
 * strings, the --device check and the generated parameter help.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* ---- messages ----------------------------------------------------------- */

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("flashlib: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("flashlib: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_lib_error(fl_ctx *ctx, fl_status st, const char *what)
{
    if (st == FL_STATUS_CANCELLED) {
        cli_error("%s: interrupted; no output was written", what);
        return CLI_EXIT_CANCELLED;
    }
    const char *msg = ctx ? fl_ctx_last_error(ctx) : "";
    cli_error("%s: %s [%s]", what, *msg ? msg : "(the library gave no message)", fl_status_str(st));
    return st == FL_STATUS_NO_DEVICE ? CLI_EXIT_NO_GPU : CLI_EXIT_LIBRARY;
}

const char *cli_library_path(void)
{
    Dl_info info;
    /* dladdr maps an address to the shared object that holds it: the
     * libflashlib this process really loaded, wherever the rpath led. */
    if (dladdr((void *)fl_version_string, &info) && info.dli_fname)
        return info.dli_fname;
    return "?";
}

int cli_check_library_version(void)
{
    const char *v = fl_version_string();
    if (v && !strcmp(v, FL_VERSION_STRING))
        return 0;
    cli_error("this flashlib command was built against library %s, but the library loaded from %s "
              "is version %s: install the command and libflashlib from the same build",
              FL_VERSION_STRING, cli_library_path(), v ? v : "(null)");
    return CLI_EXIT_LIBRARY;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- parameters ------------------------------------------------------------ */

int cli_make_params(fl_ctx *ctx, const char *algo, const char *const *kv, int n, fl_params **out)
{
    fl_params *p = NULL;
    fl_status st = fl_params_create(ctx, algo, &p);
    if (st)
        return cli_lib_error(ctx, st, algo);
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(kv[i], '=');
        char name[128];
        if (!eq || eq == kv[i] || (size_t)(eq - kv[i]) >= sizeof name) {
            cli_error("-p expects NAME=VALUE (for example -p n_clusters=16), got '%s'", kv[i]);
            fl_params_free(p);
            return CLI_EXIT_USAGE;
        }
        memcpy(name, kv[i], (size_t)(eq - kv[i]));
        name[eq - kv[i]] = '\0';
        st = fl_params_set(ctx, p, name, eq + 1);
        if (st) {
            int code = CLI_EXIT_USAGE;
            const char *msg = fl_ctx_last_error(ctx);
            if (st == FL_STATUS_INVALID_ARG && !strncmp(msg, kv[i], strlen(kv[i])))
                cli_error("-p %s", msg); /* the message already starts with NAME=VALUE */
            else if (st == FL_STATUS_INVALID_ARG)
                cli_error("-p %s: %s", kv[i], msg);
            else
                code = cli_lib_error(ctx, st, kv[i]);
            fl_params_free(p);
            return code;
        }
    }
    *out = p;
    return 0;
}

/* Writes a bound: whole numbers without an exponent where they fit. */
static void print_bound(char *buf, size_t len, double v)
{
    if (v == (double)(int64_t)v && v > -1e15 && v < 1e15)
        snprintf(buf, len, "%lld", (long long)v);
    else
        snprintf(buf, len, "%g", v);
}

/* Describes a parameter's domain: "int in [1, 300]", "one of a, b". */
static void describe_domain(const fl_param_def *d, char *buf, size_t len)
{
    char lo[32], hi[32];
    print_bound(lo, sizeof lo, d->lo);
    print_bound(hi, sizeof hi, d->hi);
    const char *t = d->type == FL_PARAM_INT ? "int" : "float";
    size_t used = 0;
    switch (d->type) {
    case FL_PARAM_INT:
    case FL_PARAM_FLOAT:
        if (d->hi >= 9e18)
            used = (size_t)snprintf(buf, len, "%s >= %s", t, lo);
        else
            used = (size_t)snprintf(buf, len, "%s in [%s, %s]", t, lo, hi);
        if (d->choices && used < len)
            snprintf(buf + used, len - used, ", or %s", d->choices);
        break;
    case FL_PARAM_CHOICE: snprintf(buf, len, "one of %s", d->choices ? d->choices : "?"); break;
    case FL_PARAM_BOOL: snprintf(buf, len, "true or false"); break;
    default: snprintf(buf, len, "?");
    }
    for (char *c = buf; *c; c++)
        if (*c == '|')
            *c = '/';
}

void cli_print_param_table(FILE *f, const char *algo)
{
    int n = fl_param_count(algo);
    for (int i = 0; i < n; i++) {
        const fl_param_def *d = fl_param_def_at(algo, i);
        if (!d)
            continue;
        char dom[256], line[512];
        describe_domain(d, dom, sizeof dom);
        int len = snprintf(line, sizeof line, "%s; default %s", dom, d->default_str ? d->default_str : "?");
        if (d->aliases && len > 0 && (size_t)len < sizeof line) {
            char al[128];
            size_t m = 0;
            for (const char *c = d->aliases; *c && m + 3 < sizeof al; c++) {
                if (*c == '|') {
                    al[m++] = ',';
                    al[m++] = ' ';
                } else {
                    al[m++] = *c;
                }
            }
            al[m] = '\0';
            snprintf(line + len, sizeof line - (size_t)len, "; aliases: %s", al);
        }
        int col = fprintf(f, "  %-16s ", d->name);
        if (col > 19) {
            fputc('\n', f);
            col = fprintf(f, "%19s", "");
        }
        cli_wrap(f, line, 19, col, 79);
        fprintf(f, "%19s", "");
        cli_wrap(f, d->doc ? d->doc : "", 19, 19, 79);
    }
}

/* ---- devices ------------------------------------------------------------- */

int cli_check_device(fl_ctx *ctx, const char *device)
{
    if (!device || (strncmp(device, "cuda", 4) && strcmp(device, "gpu")))
        return 0;
    const char *resolved = fl_ctx_device(ctx); /* "cuda:N" for an explicit request */
    long id = 0;
    if (!strncmp(resolved, "cuda:", 5))
        id = strtol(resolved + 5, NULL, 10);
    const char *why = NULL;
    int n = fl_cuda_device_count(ctx, &why);
    if (n == 0) {
        cli_error("--device %s: no usable GPU: %s (use --device auto or cpu to run on the CPU)", device,
                  why ? why : "no CUDA device found");
        return CLI_EXIT_NO_GPU;
    }
    if (id >= n) {
        if (n == 1)
            cli_error("--device %s: this machine has 1 CUDA device (cuda:0)", device);
        else
            cli_error("--device %s: this machine has %d CUDA devices (cuda:0 to cuda:%d)", device, n, n - 1);
        return CLI_EXIT_NO_GPU;
    }
    return 0;
}
