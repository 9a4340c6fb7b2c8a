/*
 * cmd_route.c — `flashlib route ALGO --shape NxD [-p ...] [--device ...]`:
 * the backend and variant the library would run, and the rule that chose
 * them, from fl_route_query (the same function execution calls).
 *
 * Devices not in this machine come from a small built-in table of nominal
 * properties, so that one can ask "what would run on an H100" anywhere.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

enum { O_SHAPE, O_PARAM, O_DEVICE, O_DTYPE, O_JSON, O_COUNT };

static const cli_opt opts[] = {
    [O_SHAPE] = {"shape", 's', "NxD", 0, "data shape: n_samples x n_features (e.g. 1000000x128)"},
    [O_PARAM] = {"param", 'p', "NAME=VALUE", 1, "a parameter of the algorithm (repeatable)"},
    [O_DEVICE] = {"device", 'd', "DEVICE", 0,
                  "H100, H200, A100, L40S, B200 (built-in table), this (this machine: its GPU, "
                  "else the CPU), cuda:N (a GPU here), or cpu; default: this machine's GPU if it "
                  "has one, else H100"},
    [O_DTYPE] = {"dtype", 't', "f32|f64", 0, "dtype of the data (default f32)"},
    [O_JSON] = {"json", 0, NULL, 0, "print one JSON object instead of text"},
    [O_COUNT] = {NULL, 0, NULL, 0, NULL},
};

/* Nominal properties of GPUs flashlib is tuned for. */
typedef struct known_gpu {
    const char *tag, *name;
    int major, minor, sms;
    int64_t l2_mib, smem_sm_kib, smem_optin_kib, mem_gib;
} known_gpu;

static const known_gpu known[] = {
    {"H100", "NVIDIA H100 80GB HBM3", 9, 0, 132, 50, 228, 227, 80},
    {"H200", "NVIDIA H200", 9, 0, 132, 60, 228, 227, 141},
    {"A100", "NVIDIA A100-SXM4-80GB", 8, 0, 108, 40, 164, 163, 80},
    {"L40S", "NVIDIA L40S", 8, 9, 142, 96, 100, 99, 48},
    {"B200", "NVIDIA B200", 10, 0, 148, 126, 228, 227, 180},
};

/* Prints `flashlib route --help`, with the built-in device table. */
static void help(void)
{
    puts("usage: flashlib route ALGO --shape NxD [-p NAME=VALUE ...] [--device DEVICE]\n"
         "                      [--dtype f32|f64] [--json]\n\n"
         "Prints the backend (cpu, cuda, cuda-sm90) and variant (fp32, tf32, ...) that\n"
         "flashlib would run ALGO with on DEVICE, and the rule that made the choice.\n"
         "It runs nothing: it asks the same routing function that fit calls.\n\n"
         "The default device is this machine's first GPU when it has one; without one\n"
         "it is a nominal H100 from the built-in table (the output says so). Use\n"
         "--device this to see what would run here, CPU included. Hopper devices take\n"
         "the sm_90a path unless FL_DISABLE_SM90 is set, as on a real machine.\n\n"
         "example:\n"
         "  flashlib route kmeans --shape 1000000x128 -p n_clusters=8192 --device H100\n");
    cli_print_options(stdout, opts);
    fputs("\nbuilt-in devices:\n", stdout);
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        printf("  %-5s sm %d.%d, %3d SMs, %3lld MiB L2, %3lld GiB\n", known[i].tag, known[i].major,
               known[i].minor, known[i].sms, (long long)known[i].l2_mib, (long long)known[i].mem_gib);
    puts("\nexit codes: 0 ok, 2 usage (bad shape, device, parameter), 4 library error,\n"
         "5 --device cuda:N names a GPU this machine does not have.");
}

/* Whether FL_DISABLE_SM90 is set the way the library reads it. */
static int sm90_disabled(void)
{
    const char *s = getenv("FL_DISABLE_SM90");
    return s && *s && strcmp(s, "0") != 0;
}

/* Builds the fl_hw_props of a built-in device the way the library would
 * fill them from the driver (flags from the compute capability). */
static void from_table(const known_gpu *k, fl_hw_props *h)
{
    memset(h, 0, sizeof *h);
    snprintf(h->name, sizeof h->name, "%s", k->name);
    snprintf(h->tag, sizeof h->tag, "%s", k->tag);
    h->sm_major = k->major;
    h->sm_minor = k->minor;
    h->sm_count = k->sms;
    h->l2_bytes = k->l2_mib << 20;
    h->smem_per_sm_bytes = k->smem_sm_kib << 10;
    h->smem_per_block_optin_bytes = k->smem_optin_kib << 10;
    h->total_mem_bytes = k->mem_gib << 30;
    h->is_ampere = k->major == 8;
    h->is_hopper = k->major == 9;
    h->is_blackwell = k->major == 10 || k->major == 12;
    h->sm90_enabled = h->is_hopper && !sm90_disabled();
}

/* Parses "1000000x128". */
static int parse_shape(const char *s, int64_t *n, int64_t *d)
{
    const char *x = s ? strpbrk(s, "xX") : NULL;
    if (!x || x == s || x - s > 30)
        return -1;
    char a[32];
    memcpy(a, s, (size_t)(x - s));
    a[x - s] = '\0';
    return cli_parse_int(a, 1, INT64_MAX, n) || cli_parse_int(x + 1, 1, INT64_MAX, d) ? -1 : 0;
}

/* The device to route for: *hw is set, or NULL for the CPU; `source` and
 * `note` describe where the properties came from. */
typedef struct target {
    fl_hw_props props;
    const fl_hw_props *hw;
    const char *source; /* "built-in table", "this machine" */
    char note[200];
} target;

/* Resolves --device (NULL = the default) into *t. Returns 0,
 * CLI_EXIT_USAGE (unknown name) or CLI_EXIT_NO_GPU (cuda:N absent). */
static int resolve_device(fl_ctx *ctx, const char *dev, target *t)
{
    memset(t, 0, sizeof *t);
    const char *why = NULL;
    if (dev && !strcasecmp(dev, "cpu")) {
        t->source = "requested";
        return 0;
    }
    for (size_t i = 0; dev && i < sizeof known / sizeof *known; i++) {
        if (!strcasecmp(dev, known[i].tag)) {
            from_table(&known[i], &t->props);
            t->hw = &t->props;
            t->source = "built-in table";
            return 0;
        }
    }
    int64_t id = 0;
    if (dev && strcasecmp(dev, "this") && strcmp(dev, "cuda") &&
        (strncmp(dev, "cuda:", 5) || cli_parse_int(dev + 5, 0, 1023, &id))) {
        const char *names[8] = {"H100", "H200", "A100", "L40S", "B200", "cpu", "this", "cuda"};
        int best = cli_closest(dev, names, 8);
        cli_error(
            "route: unknown device '%s'%s%s%s (expected H100, H200, A100, L40S, B200, this, cuda:N or cpu)",
            dev, best >= 0 ? "; did you mean '" : "", best >= 0 ? names[best] : "", best >= 0 ? "'?" : "");
        return CLI_EXIT_USAGE;
    }
    const int n = fl_cuda_device_count(ctx, &why);
    const int explicit_gpu = dev && !strncmp(dev, "cuda", 4);
    if (n > id) {
        fl_status st = fl_cuda_props(ctx, (int32_t)id, &t->props);
        if (st)
            return cli_lib_error(ctx, st, "route: reading the GPU's properties");
        t->hw = &t->props;
        t->source = "this machine";
        return 0;
    }
    if (explicit_gpu) {
        cli_error("route: --device %s: no such GPU here (%d device%s%s%s)", dev, n, n == 1 ? "" : "s",
                  n ? "" : ": ", n ? "" : (why ? why : "no CUDA device found"));
        return CLI_EXIT_NO_GPU;
    }
    if (dev) { /* "this" without a GPU: the CPU */
        t->source = "this machine";
        snprintf(t->note, sizeof t->note, "no GPU here: %s", why ? why : "no CUDA device found");
        return 0;
    }
    from_table(&known[0], &t->props); /* the default without a GPU: a nominal H100 */
    t->hw = &t->props;
    t->source = "built-in table";
    snprintf(t->note, sizeof t->note, "assumed: no GPU here (%s); --device this shows the CPU route",
             why ? why : "no CUDA device found");
    return 0;
}

/* Appends "name=value" for every parameter that differs from its default. */
static void changed_params(fl_ctx *ctx, const char *algo, const fl_params *p, char *buf, size_t len)
{
    fl_params *def = NULL;
    buf[0] = '\0';
    if (fl_params_create(ctx, algo, &def))
        return;
    size_t used = 0;
    for (int i = 0; i < fl_param_count(algo); i++) {
        const fl_param_def *d = fl_param_def_at(algo, i);
        char v[128], dv[128];
        if (!d || fl_params_get(ctx, p, d->name, v, sizeof v) ||
            fl_params_get(ctx, def, d->name, dv, sizeof dv))
            continue;
        if (strcmp(v, dv) && used < len) {
            int w = snprintf(buf + used, len - used, "%s%s=%s", used ? ", " : "", d->name, v);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    fl_params_free(def);
}

int cli_check_algo(const char *cmd, const char *algo)
{
    const char *const *names = fl_algorithms();
    int n = 0;
    char list[256] = "";
    for (; names && names[n]; n++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", n ? ", " : "", names[n]);
    }
    if (!algo) {
        cli_error("%s: which algorithm? (this build has: %s)", cmd, list);
        return CLI_EXIT_USAGE;
    }
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], algo))
            return 0;
    int best = cli_closest(algo, names, n);
    if (best >= 0)
        cli_error("%s: unknown algorithm '%s'; did you mean '%s'? (this build has: %s)", cmd, algo,
                  names[best], list);
    else
        cli_error("%s: unknown algorithm '%s' (this build has: %s)", cmd, algo, list);
    return CLI_EXIT_USAGE;
}

/* Prints the route as text or JSON. */
static void report(int json, const char *algo, int64_t n, int64_t d, fl_dtype dt, fl_ctx *ctx,
                   const fl_params *p, const target *t, const fl_route *r)
{
    char changed[512];
    changed_params(ctx, algo, p, changed, sizeof changed);
    const fl_hw_props *h = t->hw;
    if (!json) {
        printf("%s %lld x %lld %s%s%s\n", algo, (long long)n, (long long)d, fl_dtype_name(dt),
               *changed ? ", " : "", changed);
        if (h)
            printf("device   %s: sm %d.%d, %d SMs, %lld MiB L2, %.0f GiB (%s)\n", h->tag, h->sm_major,
                   h->sm_minor, h->sm_count, (long long)(h->l2_bytes >> 20),
                   (double)h->total_mem_bytes / (1 << 30), t->source);
        else
            printf("device   cpu (%s)\n", t->source);
        if (*t->note) {
            fputs("note     ", stdout);
            cli_wrap(stdout, t->note, 9, 9, 100);
        }
        printf("backend  %s\nvariant  %s\nreason   ", fl_backend_name(r->backend), r->variant);
        cli_wrap(stdout, r->reason, 9, 9, 100);
        return;
    }
    cli_json j;
    cj_begin(&j, stdout);
    cj_str(&j, "algo", algo);
    cj_int(&j, "n_samples", n);
    cj_int(&j, "n_features", d);
    cj_str(&j, "dtype", fl_dtype_name(dt));
    cj_obj(&j, "params");
    for (int i = 0; i < fl_param_count(algo); i++) {
        const fl_param_def *pd = fl_param_def_at(algo, i);
        char v[128];
        if (pd && !fl_params_get(ctx, p, pd->name, v, sizeof v))
            cj_str(&j, pd->name, v);
    }
    cj_close(&j, '}');
    cj_obj(&j, "device");
    cj_str(&j, "source", t->source);
    cj_str(&j, "tag", h ? h->tag : "cpu");
    if (h) {
        char sm[16];
        snprintf(sm, sizeof sm, "%d.%d", h->sm_major, h->sm_minor);
        cj_str(&j, "name", h->name);
        cj_str(&j, "compute_capability", sm);
        cj_int(&j, "sm_count", h->sm_count);
        cj_int(&j, "l2_bytes", h->l2_bytes);
        cj_int(&j, "total_mem_bytes", h->total_mem_bytes);
        cj_bool(&j, "sm90_enabled", h->sm90_enabled);
    }
    cj_str(&j, "note", *t->note ? t->note : NULL);
    cj_close(&j, '}');
    cj_str(&j, "backend", fl_backend_name(r->backend));
    cj_str(&j, "variant", r->variant);
    cj_str(&j, "reason", r->reason);
    cj_end(&j);
}

/* `flashlib route ALGO --shape NxD ...`: see help(). */
int cmd_route(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse("route", opts, 1, argc, argv, &a);
    if (rc)
        return rc;
    if (a.help) {
        help();
        return 0;
    }
    const char *algo = a.n_pos ? a.pos[0] : NULL;
    if ((rc = cli_check_algo("route", algo)) != 0)
        return rc;
    int64_t n = 0, d = 0;
    if (!a.val[O_SHAPE]) {
        cli_error("route: --shape NxD is required (e.g. --shape 1000000x128)");
        return CLI_EXIT_USAGE;
    }
    if (parse_shape(a.val[O_SHAPE], &n, &d)) {
        cli_error("route: --shape expects N x D as two positive integers like 1000000x128, got '%s'",
                  a.val[O_SHAPE]);
        return CLI_EXIT_USAGE;
    }
    fl_dtype dt = a.val[O_DTYPE] ? cli_parse_dtype(a.val[O_DTYPE]) : FL_DTYPE_F32;
    if (!dt) {
        cli_error("route: --dtype must be f32 or f64, got '%s'", a.val[O_DTYPE]);
        return CLI_EXIT_USAGE;
    }
    fl_ctx *ctx = NULL;
    char err[256];
    fl_status st = fl_ctx_create("cpu", &ctx, err, sizeof err);
    if (st) {
        cli_error("route: cannot create a context: %s [%s]", err, fl_status_str(st));
        return CLI_EXIT_LIBRARY;
    }
    fl_params *p = NULL;
    target t;
    fl_route r;
    if ((rc = cli_make_params(ctx, algo, a.rep, a.n_rep, &p)) == 0 &&
        (rc = resolve_device(ctx, a.val[O_DEVICE], &t)) == 0) {
        st = fl_route_query(ctx, algo, t.hw, n, d, dt, p, &r);
        if (st)
            rc = cli_lib_error(ctx, st, "route");
        else
            report(a.val[O_JSON] != NULL, algo, n, d, dt, ctx, p, &t, &r);
    }
    fl_params_free(p);
    fl_ctx_free(ctx);
    return rc;
}
