/*
 * dump_estimates.c — every field of many estimates, as text, for checking
 * that a change to the cost model's code (not its data) leaves every number
 * as it was.
 *
 * Walks every op of fl_info_op_at on every device, dtype and a few shapes
 * per rank, then every parameter's choices and its default given
 * explicitly, then bad requests; prints each result field by field
 * (doubles in %a, so equal text means equal bits), the error text of
 * failures, and the summary, tree and JSON formatters. Also pareto,
 * compare and model_eval for a few requests.
 *   build/bin/dump_estimates > before.txt   (then again after; cmp them)
 * bench/info/same_estimates.sh does both against a saved library.
 */
#include <stdio.h>
#include <string.h>

#include "flashlib_info.h"

static void dump_result(const fl_info_result *r)
{
    printf("  op=%s device=%s dtype=%s ndim=%d shape=%lld,%lld,%lld,%lld\n", r->op, r->device, r->dtype,
           r->ndim, (long long)r->shape[0], (long long)r->shape[1], (long long)r->shape[2],
           (long long)r->shape[3]);
    printf("  runtime=%a flops=%a hbm=%a iter=%a peak=%llu host=%llu exact=%d fits=%d\n", r->runtime_ms,
           r->flops, r->hbm_bytes, r->iterations, (unsigned long long)r->peak_memory_bytes,
           (unsigned long long)r->peak_host_bytes, r->peak_memory_exact, r->fits_in_memory);
    printf("  bound=%d tflops=%a gbs=%a share=%a peak=%a what=%s residual=%a impl=%d\n", r->bound,
           r->achieved_tflops, r->achieved_gbs, r->peak_share, r->peak_value,
           r->peak_what ? r->peak_what : "(null)", r->expected_residual, r->implemented);
    printf("  backend=%s variant=%s tier=%d\n  reason=%s\n  calibration=%s model_key=%s\n", r->backend,
           r->variant, r->tier, r->reason, r->calibration ? r->calibration : "(null)",
           r->model_key ? r->model_key : "(null)");
    for (int i = 0; i < r->n_nodes; i++) {
        const fl_info_node *n = &r->nodes[i];
        printf("  node %d %s | %s | parent=%d depth=%d repeat=%a ms=%a flops=%a bytes=%a launches=%a "
               "bound=%d tier=%d\n",
               i, n->name, n->detail ? n->detail : "(null)", n->parent, n->depth, n->repeat, n->runtime_ms,
               n->flops, n->hbm_bytes, n->launches, n->bound, n->tier);
    }
    for (int i = 0; i < r->n_notes; i++)
        printf("  note %s\n", r->notes[i]);
    static char buf[65536];
    fl_info_summary(r, buf, sizeof buf);
    printf("  summary %s\n", buf);
    fl_info_tree(r, buf, sizeof buf);
    printf("%s\n", buf);
    fl_info_json(r, buf, sizeof buf);
    printf("%s\n", buf);
}

static long n_req, n_ok;

static void one(const char *op, const int64_t *shape, int ndim, const char *params, const char *dtype,
                const char *device)
{
    fl_info_result r;
    char err[512];
    memset(&r, 0xa5, sizeof r); /* fields the estimate leaves alone show up as a difference */
    strcpy(err, "(untouched)");
    int rc = fl_info_estimate(op, shape, ndim, params, dtype, device, &r, err, sizeof err);
    printf("estimate %s ndim=%d shape=%lld,%lld,%lld params=%s dtype=%s device=%s -> %d\n",
           op ? op : "(null)", ndim, shape && ndim > 0 ? (long long)shape[0] : 0,
           shape && ndim > 1 ? (long long)shape[1] : 0, shape && ndim > 2 ? (long long)shape[2] : 0,
           params ? params : "(null)", dtype ? dtype : "(null)", device ? device : "(null)", rc);
    n_req++;
    if (rc) {
        printf("  error %s\n", err);
        return;
    }
    n_ok++;
    dump_result(&r);
}

/* Shapes per rank: small, tile-unaligned, large. */
static const int64_t shapes1[][1] = {{1}, {1000}, {40000}};
static const int64_t shapes2[][2] = {{1, 1}, {1000, 37}, {100000, 64}, {1000000, 128}, {20000000, 512}};
static const int64_t shapes3[][3] = {{1, 1, 1}, {100, 300, 77}, {8192, 8192, 8192}, {100000, 64, 4096}};

static void every_shape(const fl_info_op *o, const char *params, const char *dtype, const char *device)
{
    for (int nd = o->min_ndim; nd <= o->max_ndim; nd++) {
        if (nd == 1)
            for (size_t s = 0; s < sizeof shapes1 / sizeof *shapes1; s++)
                one(o->name, shapes1[s], 1, params, dtype, device);
        if (nd == 2)
            for (size_t s = 0; s < sizeof shapes2 / sizeof *shapes2; s++)
                one(o->name, shapes2[s], 2, params, dtype, device);
        if (nd == 3)
            for (size_t s = 0; s < sizeof shapes3 / sizeof *shapes3; s++)
                one(o->name, shapes3[s], 3, params, dtype, device);
    }
}

int main(void)
{
    static const char *const dtypes[] = {"f32", "f64", "f16", "bf16"};
    static const char *const gpus[] = {"H100", "cpu"};
    for (int i = 0; i < fl_info_op_count(); i++) {
        const fl_info_op *o = fl_info_op_at(i);
        for (int dv = 0; dv < fl_info_device_count(); dv++)
            for (size_t t = 0; t < sizeof dtypes / sizeof *dtypes; t++)
                every_shape(o, NULL, dtypes[t], fl_info_device_at(dv)->name);
        every_shape(o, NULL, NULL, "this");
        /* every parameter: each word of its list, and its default spelled out */
        const char *name, *def, *aliases, *doc;
        int info_only;
        for (int p = 0; !fl_info_op_param(o->name, p, &name, &def, &aliases, &doc, &info_only); p++) {
            char params[256];
            for (size_t g = 0; g < sizeof gpus / sizeof *gpus; g++) {
                snprintf(params, sizeof params, "%s=%s", name, def);
                every_shape(o, params, "f32", gpus[g]);
                snprintf(params, sizeof params, "%s=%s", name, "7");
                every_shape(o, params, "f32", gpus[g]);
                snprintf(params, sizeof params, "%s=%s", name, "0.001");
                every_shape(o, params, "f32", gpus[g]);
                snprintf(params, sizeof params, "%s=%s", name, "bogus");
                every_shape(o, params, "f32", gpus[g]);
            }
        }
    }
    /* kmeans: parameter combinations that change the model's path */
    static const char *const km[] = {
        "K=256 max_iters=20",
        "n_clusters=1024",
        "n_clusters=64",
        "n_clusters=8,init=random",
        "n_clusters=100 init=array",
        "n_clusters=300 precision=tf32",
        "n_clusters=300 precision=bf16 input=device",
        "n_clusters=300 precision=fp16 metric=cosine tol=1e-4",
        "n_clusters=5000 precision=fp32 n_init=3 expected_iter=7",
        "n_clusters=64 sample_weight=true",
        "n_clusters=64 entry=model threads=3",
        "n_clusters=2048 max_iter=1",
        "n_clusters=16 max_iter=2 n_local_trials=1",
        "K=20 K=21",
        "n_clusters=10 max_iter=300 expected_iter=5 tol=0",
        "n_clusters=8 n_clsters=3",
        "n_clusters=9 precision=",
        "n_clusters=0",
        "nonsense",
    };
    static const int64_t kshapes[][2] = {{100000, 64},     {1000000, 128}, {5000, 3},
                                         {300000000, 256}, {2000, 2000},   {4000000000LL, 1024}};
    for (size_t p = 0; p < sizeof km / sizeof *km; p++)
        for (size_t s = 0; s < sizeof kshapes / sizeof *kshapes; s++)
            for (int dv = 0; dv < fl_info_device_count(); dv++)
                for (int t = 0; t < 2; t++)
                    one("kmeans", kshapes[s], 2, km[p], dtypes[t], fl_info_device_at(dv)->name);
    /* bad requests */
    const int64_t good[2] = {1000, 10}, zero[2] = {0, 10}, neg[2] = {10, -1},
                  huge[3] = {4000000000LL, 4000000000LL, 4000000000LL};
    one(NULL, good, 2, NULL, NULL, NULL);
    one("kmean", good, 2, NULL, NULL, NULL);
    one("zzzzzzzz", good, 2, NULL, NULL, NULL);
    one("kmeans", good, 2, NULL, NULL, "H1000");
    one("kmeans", good, 2, NULL, "f33", NULL);
    one("kmeans", NULL, 2, NULL, NULL, NULL);
    one("kmeans", good, 5, NULL, NULL, NULL);
    one("kmeans", good, 1, NULL, NULL, NULL);
    one("kmeans", zero, 2, NULL, NULL, NULL);
    one("kmeans", neg, 2, NULL, NULL, NULL);
    one("gemm", huge, 3, NULL, NULL, NULL);
    one("kmeans", good, 2, "n_clusters", NULL, NULL);
    one("kmeans", good, 2, "=3", NULL, NULL);
    one("kmeans", good, 2, "n_clusters=", NULL, NULL);
    one("kmeans", good, 2, "n_clusters=5000", NULL, NULL);
    one("kmeans", good, 2, "n_clusters=2.5", NULL, NULL);
    one("kmeans", good, 2, "n_clusters=1e99", NULL, NULL);
    one("kmeans", good, 2, " ,; n_clusters=3 ;, ", "FP32", "h100");
    one("gemm", shapes3[2], 3, "tol=1e-3", NULL, NULL);
    one("gemm", shapes3[2], 3, "tol=1e-9", NULL, "H200");
    one("gemm", shapes3[2], 3, "variant=gemm_3xbf16", NULL, "H200");

    /* pareto, compare and model_eval share the estimate's code */
    static const char *const fams[] = {"gemm", "eigh", "polar", "nope"};
    for (size_t f = 0; f < sizeof fams / sizeof *fams; f++)
        for (int dv = 0; dv < fl_info_device_count(); dv++)
            for (int dom = 0; dom < 2; dom++) {
                fl_info_variant v[32];
                int n = -1;
                char err[512] = "(untouched)";
                const int64_t *sh = f == 0 ? shapes3[2] : shapes2[1];
                int rc = fl_info_pareto(fams[f], sh, f == 0 ? 3 : 2, NULL, "f32", fl_info_device_at(dv)->name,
                                        dom, v, 32, &n, err, sizeof err);
                printf("pareto %s %s dom=%d -> %d n=%d %s\n", fams[f], fl_info_device_at(dv)->name, dom, rc,
                       n, rc ? err : "");
                for (int i = 0; !rc && i < n && i < 32; i++)
                    printf("  %s ms=%a res=%a src=%s tier=%d dominated=%d\n", v[i].name, v[i].runtime_ms,
                           v[i].expected_residual, v[i].residual_source, v[i].tier, v[i].dominated);
            }
    static const char *const cops[] = {"kmeans", "pca", "gemm", "knn"};
    for (size_t c = 0; c < sizeof cops / sizeof *cops; c++)
        for (int dv = 0; dv < fl_info_device_count(); dv++) {
            static fl_info_comparison cmpr;
            char err[512] = "(untouched)";
            const int64_t *sh = c == 2 ? shapes3[2] : shapes2[2];
            int rc = fl_info_compare(cops[c], sh, c == 2 ? 3 : 2, c == 0 ? "n_clusters=256" : NULL, "f32",
                                     fl_info_device_at(dv)->name, &cmpr, err, sizeof err);
            printf("compare %s %s -> %d %s\n", cops[c], fl_info_device_at(dv)->name, rc, rc ? err : "");
            if (rc)
                continue;
            dump_result(&cmpr.flashlib);
            for (int i = 0; i < cmpr.n_refs; i++) {
                const fl_info_reference *x = &cmpr.refs[i];
                printf("  ref %s | %s | measured=%d ms=%a speedup=%a anchor=%a | %s | %s | %s | %s | %a\n",
                       x->name, x->where ? x->where : "", x->measured, x->runtime_ms, x->speedup,
                       x->anchor_ms, x->anchor_params ? x->anchor_params : "",
                       x->anchor_device ? x->anchor_device : "", x->anchor_source ? x->anchor_source : "",
                       x->scaling ? x->scaling : "", x->scale);
            }
        }
    static const char *const mv[][2] = {{"kmeans", "tf32"}, {"kmeans", "fp32-sm90"}, {"gemm", "gemm_bf16"}};
    for (size_t m = 0; m < sizeof mv / sizeof *mv; m++) {
        double coef[32], ms = -1;
        const char *names[32];
        int nc = fl_info_model_coefs(mv[m][0], mv[m][1], "H200", names, coef);
        char err[512] = "(untouched)";
        int rc = fl_info_model_eval(mv[m][0], mv[m][1], m == 2 ? shapes3[2] : shapes2[2], m == 2 ? 3 : 2,
                                    m == 2 ? NULL : "n_clusters=256", "f32", "H200", coef, nc, &ms, err,
                                    sizeof err);
        printf("model_eval %s %s coefs=%d -> %d %a %s\n", mv[m][0], mv[m][1], nc, rc, ms, rc ? err : "");
        for (int i = 0; i < nc; i++)
            printf("  %s=%a\n", names[i], coef[i]);
    }
    fprintf(stderr, "dump_estimates: %ld requests, %ld estimates\n", n_req, n_ok);
    return 0;
}
