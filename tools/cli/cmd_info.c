/*
 * cmd_info.c — `flashlib info`: the cost model from the command line.
 *
 *   flashlib info estimate OP --shape AxB[xC] [-p NAME=VALUE ...] [--device D] [--dtype T] [--tree] [--json]
 *   flashlib info pareto FAMILY --shape ... [--all] [--json]
 *   flashlib info compare OP --shape ... [--json]
 *   flashlib info devices [--json]
 *   flashlib info ops [OP] [--json]
 *
 * Everything comes from flashlib_info.h (compiled into libflashlib): the
 * command runs nothing and never touches a GPU.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "flashlib_info.h"

enum { O_SHAPE, O_PARAM, O_DEVICE, O_DTYPE, O_TREE, O_JSON, O_ALL, O_COUNT };

static const cli_opt opts[] = {
    [O_SHAPE] = {"shape", 's', "AxB[xC]", 0,
                 "shape of the data (kmeans: n_samples x n_features; gemm: M x K x N)"},
    [O_PARAM] = {"param", 'p', "NAME=VALUE", 1,
                 "a parameter, by scikit-learn name or alias (repeatable): n_clusters=256, K=256, tol=1e-3"},
    [O_DEVICE] = {"device", 'd', "DEVICE", 0,
                  "a device of `flashlib info devices` (H100, H200, A100, L40S, B200, cpu...) or this "
                  "(this machine's GPU, read without loading CUDA); default H100"},
    [O_DTYPE] = {"dtype", 't', "DTYPE", 0, "dtype of the data: f32 (default), f64, f16, bf16"},
    [O_TREE] = {"tree", 0, NULL, 0, "estimate: print the tree of sub-operations"},
    [O_JSON] = {"json", 0, NULL, 0, "print JSON instead of text"},
    [O_ALL] = {"all", 0, NULL, 0, "pareto: list dominated variants too"},
    [O_COUNT] = {NULL, 0, NULL, 0, NULL},
};

static void help(void)
{
    puts("usage: flashlib info estimate OP --shape AxB[xC] [-p NAME=VALUE ...] [--device DEVICE]\n"
         "                      [--dtype DTYPE] [--tree] [--json]\n"
         "       flashlib info pareto FAMILY --shape ... [-p ...] [--device ...] [--all] [--json]\n"
         "       flashlib info compare OP --shape ... [-p ...] [--device ...] [--json]\n"
         "       flashlib info devices [--json]\n"
         "       flashlib info ops [OP] [--json]\n\n"
         "The cost model: what OP will cost on DEVICE before running it (runtime, FLOPs, bytes,\n"
         "peak memory, the bound, the variant routing would pick, a confidence tier). It runs\n"
         "nothing and needs no GPU. Tiers: measured (this shape timed on that device),\n"
         "calibrated (fitted, held-out median error <= 20%), roofline, heuristic.\n\n"
         "examples:\n"
         "  flashlib info estimate kmeans --shape 100000x64 -p n_clusters=256 -p max_iter=20 --device H200 "
         "--tree\n"
         "  flashlib info pareto gemm --shape 8192x8192x8192\n"
         "  flashlib info estimate gemm --shape 8192x8192x8192 -p tol=1e-3\n"
         "  flashlib info compare kmeans --shape 500000x64 -p K=64 --device H200\n"
         "  flashlib info ops kmeans\n");
    cli_print_options(stdout, opts);
    puts("\nexit codes: 0 ok, 2 usage (unknown op, device, parameter; bad shape), 4 library error.");
}

/* "100000x64" or "8192x8192x8192": 1 to 4 positive integers. */
static int parse_shape(const char *s, int64_t *shape, int *ndim)
{
    *ndim = 0;
    if (!s || !*s)
        return -1;
    char buf[128];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    for (char *tok = buf; tok && *ndim < FL_INFO_MAX_DIMS;) {
        char *x = strpbrk(tok, "xX,");
        if (x)
            *x = '\0';
        if (cli_parse_int(tok, 1, INT64_MAX, &shape[(*ndim)++]))
            return -1;
        tok = x ? x + 1 : NULL;
        if (tok && *ndim == FL_INFO_MAX_DIMS)
            return -1;
    }
    return 0;
}

/* The -p values joined into one "a=1 b=2" string. */
static void join_params(const cli_args *a, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < a->n_rep && used < len; i++) {
        int w = snprintf(out + used, len - used, "%s%s", i ? " " : "", a->rep[i]);
        used += w > 0 ? (size_t)w : 0;
    }
}

static int need_shape(const char *sub, const cli_args *a, int64_t *shape, int *ndim)
{
    if (!a->val[O_SHAPE]) {
        cli_error("info %s: --shape is required (e.g. --shape 100000x64)", sub);
        return CLI_EXIT_USAGE;
    }
    if (parse_shape(a->val[O_SHAPE], shape, ndim)) {
        cli_error(
            "info %s: --shape expects 1 to 4 positive integers joined by 'x' (e.g. 8192x8192x8192), got '%s'",
            sub, a->val[O_SHAPE]);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* Text output is long: print through a buffer sized by a first call. */
typedef size_t (*formatter)(const fl_info_result *, char *, size_t);
static int print_formatted(formatter f, const fl_info_result *r)
{
    char small[1];
    size_t need = f(r, small, sizeof small);
    char *buf = malloc(need + 1);
    if (!buf) {
        cli_error("info: out of memory");
        return CLI_EXIT_FAILURE;
    }
    f(r, buf, need + 1);
    fputs(buf, stdout);
    if (need && buf[need - 1] != '\n')
        fputc('\n', stdout);
    free(buf);
    return 0;
}

static int sub_estimate(const cli_args *a)
{
    const char *op = a->n_pos > 1 ? a->pos[1] : NULL;
    if (!op) {
        cli_error("info estimate: which op? (flashlib info ops lists them)");
        return CLI_EXIT_USAGE;
    }
    int64_t shape[FL_INFO_MAX_DIMS];
    int ndim, rc = need_shape("estimate", a, shape, &ndim);
    if (rc)
        return rc;
    char params[2048], err[1024];
    join_params(a, params, sizeof params);
    fl_info_result r;
    if (fl_info_estimate(op, shape, ndim, params, a->val[O_DTYPE], a->val[O_DEVICE], &r, err, sizeof err)) {
        cli_error("info estimate: %s", err);
        return CLI_EXIT_USAGE;
    }
    if (a->val[O_JSON])
        return print_formatted(fl_info_json, &r);
    if (a->val[O_TREE])
        return print_formatted(fl_info_tree, &r);
    rc = print_formatted(fl_info_summary, &r);
    for (int i = 0; !rc && i < r.n_notes; i++)
        printf("  note: %s\n", r.notes[i]);
    return rc;
}

static int sub_pareto(const cli_args *a)
{
    const char *fam = a->n_pos > 1 ? a->pos[1] : NULL;
    if (!fam) {
        cli_error("info pareto: which family? (gemm, eigh or polar)");
        return CLI_EXIT_USAGE;
    }
    int64_t shape[FL_INFO_MAX_DIMS];
    int ndim, rc = need_shape("pareto", a, shape, &ndim);
    if (rc)
        return rc;
    char params[2048], err[1024];
    join_params(a, params, sizeof params);
    fl_info_variant v[32];
    int n = 0;
    if (fl_info_pareto(fam, shape, ndim, params, a->val[O_DTYPE], a->val[O_DEVICE], a->val[O_ALL] != NULL, v,
                       32, &n, err, sizeof err)) {
        cli_error("info pareto: %s", err);
        return CLI_EXIT_USAGE;
    }
    if (n > 32)
        n = 32;
    const char *dev = a->val[O_DEVICE] ? a->val[O_DEVICE] : "H100";
    if (a->val[O_JSON]) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "family", fam);
        cj_str(&j, "device", fl_info_device_find(dev) ? fl_info_device_find(dev)->name : dev);
        cj_arr(&j, "variants");
        for (int i = 0; i < n; i++) {
            cj_obj(&j, NULL);
            cj_str(&j, "name", v[i].name);
            cj_num(&j, "runtime_ms", v[i].runtime_ms);
            cj_num(&j, "expected_residual", v[i].expected_residual);
            cj_str(&j, "residual_source", v[i].residual_source);
            cj_str(&j, "confidence", fl_info_tier_name(v[i].tier));
            cj_bool(&j, "dominated", v[i].dominated);
            cj_close(&j, '}');
        }
        cj_close(&j, ']');
        cj_end(&j);
        return 0;
    }
    printf("%s %s on %s: %s\n", fam, a->val[O_SHAPE], dev,
           a->val[O_ALL] ? "every variant, fastest first"
                         : "the Pareto front (runtime vs expected residual)");
    printf("  %-20s %12s %10s  %-10s %s\n", "variant", "runtime", "residual", "tier", "");
    for (int i = 0; i < n; i++)
        printf("  %-20s %9.3f ms %10.1e  %-10s %s\n", v[i].name, v[i].runtime_ms, v[i].expected_residual,
               fl_info_tier_name(v[i].tier), v[i].dominated ? "(dominated)" : "");
    if (n)
        printf("residuals: %s\n", v[0].residual_source);
    return 0;
}

static int sub_compare(const cli_args *a)
{
    const char *op = a->n_pos > 1 ? a->pos[1] : NULL;
    if (!op) {
        cli_error("info compare: which op?");
        return CLI_EXIT_USAGE;
    }
    int64_t shape[FL_INFO_MAX_DIMS];
    int ndim, rc = need_shape("compare", a, shape, &ndim);
    if (rc)
        return rc;
    char params[2048], err[1024];
    join_params(a, params, sizeof params);
    fl_info_comparison *c = malloc(sizeof *c);
    if (!c)
        return CLI_EXIT_FAILURE;
    if (fl_info_compare(op, shape, ndim, params, a->val[O_DTYPE], a->val[O_DEVICE], c, err, sizeof err)) {
        cli_error("info compare: %s", err);
        free(c);
        return CLI_EXIT_USAGE;
    }
    const fl_info_result *f = &c->flashlib;
    if (a->val[O_JSON]) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "op", f->op);
        cj_str(&j, "device", f->device);
        cj_obj(&j, "flashlib");
        cj_num(&j, "runtime_ms", f->runtime_ms);
        cj_str(&j, "confidence", fl_info_tier_name(f->tier));
        cj_str(&j, "variant", f->variant);
        cj_close(&j, '}');
        cj_arr(&j, "references");
        for (int i = 0; i < c->n_refs; i++) {
            const fl_info_reference *r = &c->refs[i];
            cj_obj(&j, NULL);
            cj_str(&j, "name", r->name);
            cj_str(&j, "where", r->where);
            cj_bool(&j, "measured", r->measured);
            if (r->measured) {
                cj_num(&j, "runtime_ms", r->runtime_ms);
                cj_num(&j, "speedup", r->speedup);
                cj_num(&j, "anchor_ms", r->anchor_ms);
                cj_arr(&j, "anchor_shape");
                for (int k = 0; k < r->anchor_ndim; k++)
                    cj_int(&j, NULL, r->anchor_shape[k]);
                cj_close(&j, ']');
                cj_str(&j, "anchor_params", r->anchor_params);
                cj_str(&j, "anchor_device", r->anchor_device);
                cj_str(&j, "anchor_source", r->anchor_source);
                cj_num(&j, "scale", r->scale);
            }
            cj_str(&j, "scaling", r->scaling);
            cj_close(&j, '}');
        }
        cj_close(&j, ']');
        cj_end(&j);
        free(c);
        return 0;
    }
    printf("%s %s on %s\n", f->op, a->val[O_SHAPE], f->device);
    printf("  %-14s %11.3f ms  [%s] %s/%s\n", "flashlib", f->runtime_ms, fl_info_tier_name(f->tier),
           f->backend, f->variant);
    for (int i = 0; i < c->n_refs; i++) {
        const fl_info_reference *r = &c->refs[i];
        if (!r->measured) {
            printf("  %-14s %14s  %s\n", r->name, "-", r->scaling);
            continue;
        }
        printf("  %-14s %11.3f ms  %.1fx flashlib's estimate\n", r->name, r->runtime_ms, r->speedup);
        printf("  %14s anchor %.3f ms at", "", r->anchor_ms);
        for (int k = 0; k < r->anchor_ndim; k++)
            printf("%s%lld", k ? "x" : " ", (long long)r->anchor_shape[k]);
        printf(" (%s) on %s, x %.4g by %s\n", r->anchor_params ? r->anchor_params : "", r->anchor_device,
               r->scale, r->scaling);
        printf("  %14s %s; %s\n", "", r->where, r->anchor_source ? r->anchor_source : "");
    }
    free(c);
    return 0;
}

static int sub_devices(const cli_args *a)
{
    int n = fl_info_device_count();
    if (a->val[O_JSON]) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_arr(&j, "devices");
        for (int i = 0; i < n; i++) {
            const fl_info_device *d = fl_info_device_at(i);
            cj_obj(&j, NULL);
            cj_str(&j, "name", d->name);
            cj_str(&j, "aliases", d->aliases);
            cj_str(&j, "description", d->description);
            cj_bool(&j, "is_gpu", d->is_gpu);
            cj_int(&j, "sm_count", d->sm_count);
            cj_int(&j, "l2_bytes", d->l2_bytes);
            cj_int(&j, "memory_bytes", d->memory_bytes);
            cj_num(&j, "hbm_gbs", d->hbm_gbs);
            cj_num(&j, "copy_gbs_measured", d->copy_gbs);
            cj_num(&j, "h2d_gbs", d->h2d_gbs);
            cj_obj(&j, "peak_tflops");
            for (int p = 0; p < FL_INFO_NPREC; p++)
                cj_num(&j, fl_info_prec_name((fl_info_prec)p), d->peak_tflops[p]);
            cj_close(&j, '}');
            cj_obj(&j, "measured_tflops");
            for (int p = 0; p < FL_INFO_NPREC; p++)
                if (d->measured_tflops[p] > 0)
                    cj_num(&j, fl_info_prec_name((fl_info_prec)p), d->measured_tflops[p]);
            cj_close(&j, '}');
            cj_str(&j, "peak_source", d->peak_source);
            cj_str(&j, "measured_source", d->measured_source);
            cj_str(&j, "memory_source", d->memory_source);
            cj_close(&j, '}');
        }
        cj_close(&j, ']');
        cj_end(&j);
        return 0;
    }
    printf("%-10s %4s %7s %8s %9s  %6s %6s %6s %6s %6s %6s %6s  (dense TFLOP/s)\n", "device", "SMs", "L2 MiB",
           "mem GB", "BW GB/s", "fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8");
    for (int i = 0; i < n; i++) {
        const fl_info_device *d = fl_info_device_at(i);
        printf("%-10s %4d %7lld %8.0f %9.0f  %6.4g %6.4g %6.4g %6.4g %6.4g %6.4g %6.4g\n", d->name,
               d->sm_count, (long long)(d->l2_bytes >> 20), d->memory_bytes / 1e9, d->hbm_gbs,
               d->peak_tflops[FL_INFO_PREC_FP64_TC] > 0 ? d->peak_tflops[FL_INFO_PREC_FP64_TC]
                                                        : d->peak_tflops[FL_INFO_PREC_FP64],
               d->peak_tflops[FL_INFO_PREC_FP32], d->peak_tflops[FL_INFO_PREC_TF32],
               d->peak_tflops[FL_INFO_PREC_BF16], d->peak_tflops[FL_INFO_PREC_FP16],
               d->peak_tflops[FL_INFO_PREC_FP8], d->peak_tflops[FL_INFO_PREC_INT8]);
    }
    puts("\nsources:");
    for (int i = 0; i < n; i++) {
        const fl_info_device *d = fl_info_device_at(i);
        printf("  %-10s aliases %s\n             peaks: %s\n             memory: %s\n", d->name, d->aliases,
               d->peak_source, d->memory_source);
        if (d->measured_source)
            printf("             measured: %s\n", d->measured_source);
    }
    fl_info_calibration c;
    puts("\ncalibration entries (bench/calib):");
    int any = 0;
    for (int i = 0; fl_info_calibration_at(i, &c) == 0; i++, any = 1)
        printf("  %-8s %-18s %-4s %-10s held-out median %.1f%%, p90 %.1f%% (%d fit, %d held out)%s\n", c.op,
               c.variant, c.dtype, c.device, 100 * c.median_err, 100 * c.p90_err, c.n_fit, c.n_holdout,
               c.calibrated ? "" : "  [not calibrated: > 20%]");
    if (!any)
        puts("  none yet: every estimate is roofline or heuristic");
    return 0;
}

static int sub_ops(const cli_args *a)
{
    const char *only = a->n_pos > 1 ? a->pos[1] : NULL;
    int n = fl_info_op_count(), found = 0;
    cli_json j;
    if (a->val[O_JSON]) {
        cj_begin(&j, stdout);
        cj_arr(&j, "ops");
    }
    for (int i = 0; i < n; i++) {
        const fl_info_op *op = fl_info_op_at(i);
        if (only && strcmp(only, op->name))
            continue;
        found = 1;
        if (a->val[O_JSON]) {
            cj_obj(&j, NULL);
            cj_str(&j, "name", op->name);
            cj_str(&j, "family", op->family);
            cj_str(&j, "shape", op->shape_doc);
            cj_str(&j, "summary", op->summary);
            cj_bool(&j, "implemented", op->implemented);
            cj_arr(&j, "params");
            const char *name, *def, *al, *doc;
            int io;
            for (int k = 0; fl_info_op_param(op->name, k, &name, &def, &al, &doc, &io) == 0; k++) {
                cj_obj(&j, NULL);
                cj_str(&j, "name", name);
                cj_str(&j, "default", def);
                cj_str(&j, "aliases", al);
                cj_str(&j, "doc", doc);
                cj_bool(&j, "info_only", io);
                cj_close(&j, '}');
            }
            cj_close(&j, ']');
            cj_close(&j, '}');
            continue;
        }
        printf("%-20s %-15s %-4s %-46s %s\n", op->name, op->family, op->implemented ? "yes" : "no",
               op->shape_doc, op->summary);
        if (only) {
            const char *name, *def, *al, *doc;
            int io;
            printf("\nparameters:\n");
            for (int k = 0; fl_info_op_param(op->name, k, &name, &def, &al, &doc, &io) == 0; k++)
                printf("  %-22s default %-10s %s%s%s%s\n", name, def, io ? "[info] " : "", doc,
                       al ? "  aliases: " : "", al ? al : "");
        }
    }
    if (a->val[O_JSON]) {
        cj_close(&j, ']');
        cj_end(&j);
    }
    if (only && !found) {
        cli_error("info ops: unknown op '%s' (flashlib info ops lists them)", only);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int cmd_info(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse("info", opts, 2, argc, argv, &a);
    if (rc)
        return rc;
    if (a.help || a.n_pos == 0) {
        help();
        return a.help ? 0 : CLI_EXIT_USAGE;
    }
    const char *sub = a.pos[0];
    if (!strcmp(sub, "estimate"))
        return sub_estimate(&a);
    if (!strcmp(sub, "pareto"))
        return sub_pareto(&a);
    if (!strcmp(sub, "compare"))
        return sub_compare(&a);
    if (!strcmp(sub, "devices"))
        return sub_devices(&a);
    if (!strcmp(sub, "ops"))
        return sub_ops(&a);
    const char *subs[] = {"estimate", "pareto", "compare", "devices", "ops"};
    int best = cli_closest(sub, subs, 5);
    cli_error("info: unknown subcommand '%s'%s%s%s (estimate, pareto, compare, devices, ops)", sub,
              best >= 0 ? "; did you mean '" : "", best >= 0 ? subs[best] : "", best >= 0 ? "'?" : "");
    return CLI_EXIT_USAGE;
}
