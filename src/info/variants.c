/*
 * variants.c — Pareto fronts of variant families and comparisons with the
 * implementations users would otherwise run.
 *
 * pareto estimates every variant of a family with the same code as
 * fl_info_estimate and keeps those no other variant beats on both runtime
 * and expected residual.
 *
 * compare puts flashlib's estimate beside references the calibration
 * harness measured (bench/calib: scikit-learn on the GPU machine's CPU, a
 * plain PyTorch implementation on the GPU) at anchor shapes, scaled to the
 * requested shape by the op's complexity model. Nothing is invented: a
 * reference without a measured anchor says so.
 */
#include <math.h>
#include <string.h>

#include "info/info_internal.h"

int fl_info_pareto(const char *family, const int64_t *shape, int ndim, const char *params, const char *dtype,
                   const char *device, int include_dominated, fl_info_variant *out, int cap, int *n_out,
                   char *err, size_t err_len)
{
    const fli_variant_def *defs;
    int nv = family ? fli_family_variants(family, &defs) : -1;
    if (nv < 0)
        return fli_info_failv(err, err_len, "pareto: unknown family '%s' (known: gemm, eigh, polar)",
                              family ? family : "(null)");
    if ((cap > 0 && !out) || !n_out)
        return fli_info_failv(err, err_len, "pareto: out (cap > 0) and n_out must not be NULL");
    fl_info_variant all[24];
    if (nv > 24)
        nv = 24;
    for (int i = 0; i < nv; i++) {
        fl_info_result r;
        int rc =
            fli_estimate_variant(family, defs[i].name, shape, ndim, params, dtype, device, &r, err, err_len);
        if (rc)
            return rc;
        fli_est tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.ndim = ndim;
        for (int j = 0; j < ndim && j < FL_INFO_MAX_DIMS; j++)
            tmp.shape[j] = shape[j];
        fli_dtype_parse(dtype, &tmp.dtype);
        const char *src = NULL;
        all[i].name = defs[i].name;
        all[i].runtime_ms = r.runtime_ms;
        all[i].expected_residual = r.expected_residual;
        fli_variant_residual(defs[i].name, &tmp, &src);
        all[i].residual_source = src;
        all[i].tier = r.tier;
        all[i].dominated = 0;
    }
    for (int i = 0; i < nv; i++)
        for (int j = 0; j < nv; j++) {
            if (i == j)
                continue;
            const fl_info_variant *a = &all[j], *b = &all[i];
            if (a->runtime_ms <= b->runtime_ms && a->expected_residual <= b->expected_residual &&
                (a->runtime_ms < b->runtime_ms || a->expected_residual < b->expected_residual))
                all[i].dominated = 1;
        }
    /* sort by runtime (insertion: at most 24) */
    for (int i = 1; i < nv; i++) {
        fl_info_variant v = all[i];
        int j = i - 1;
        while (j >= 0 && all[j].runtime_ms > v.runtime_ms) {
            all[j + 1] = all[j];
            j--;
        }
        all[j + 1] = v;
    }
    int n = 0;
    for (int i = 0; i < nv; i++) {
        if (all[i].dominated && !include_dominated)
            continue;
        if (n < cap)
            out[n] = all[i];
        n++;
    }
    *n_out = n;
    return 0;
}

/* ---- compare -------------------------------------------------------------------- */

/* Complexity model of `op` at a shape, for scaling an anchor. ref_kind:
 * 0 scikit-learn / numpy on the CPU, 1 PyTorch on the GPU. */
typedef struct scaling {
    const char *op;
    const char *refs[2];
    const char *where[2];
    const char *rule[2];
} scaling;

static const scaling scalings[] = {
    {"kmeans",
     {"scikit-learn", "pytorch"},
     {"scikit-learn KMeans (lloyd, k-means++, n_init=1) on the GPU machine's CPU cores",
      "plain PyTorch Lloyd (x @ c.T, argmin, index_add_) from random rows, on the GPU"},
     {"n*d*k*(iterations + 2 + ln k): Lloyd iterations plus greedy k-means++", "n*d*k*iterations"}},
    {"gemm",
     {"numpy", "pytorch"},
     {"numpy.matmul (the CPU BLAS) on the GPU machine's CPU cores", "torch.matmul (cuBLAS) on the GPU"},
     {"M*K*N", "M*K*N"}},
};

static double model_kmeans(const int64_t *s, int kind)
{
    double n = (double)s[0], d = (double)s[1], k = (double)s[2], it = (double)s[3];
    return kind == 0 ? n * d * k * (it + 2 + log(k)) : n * d * k * it;
}

int fl_info_compare(const char *op, const int64_t *shape, int ndim, const char *params, const char *dtype,
                    const char *device, fl_info_comparison *out, char *err, size_t err_len)
{
    if (!out)
        return fli_info_failv(err, err_len, "compare: out is NULL");
    fl_info_comparison c;
    memset(&c, 0, sizeof c);
    int rc = fl_info_estimate(op, shape, ndim, params, dtype, device, &c.flashlib, err, err_len);
    if (rc)
        return rc;
    const fl_info_result *f = &c.flashlib;
    const char *family = !strncmp(f->op, "gemm", 4) || !strcmp(f->op, "ab_gemm") ? "gemm" : f->op;
    const scaling *sc = NULL;
    for (size_t i = 0; i < sizeof scalings / sizeof *scalings; i++)
        if (!strcmp(scalings[i].op, family))
            sc = &scalings[i];
    if (!sc) {
        static const char *const names[2] = {"scikit-learn", "pytorch"};
        for (int k = 0; k < 2; k++) {
            fl_info_reference *r = &c.refs[c.n_refs++];
            r->name = names[k];
            r->where =
                k ? "a plain PyTorch implementation on the GPU" : "scikit-learn on the GPU machine's CPU";
            r->scaling = "no anchor measured: bench/calib has no reference run of this op yet";
        }
        *out = c;
        return 0;
    }
    /* the request in the scaling model's terms */
    int64_t req[4] = {0};
    if (!strcmp(family, "kmeans")) {
        double k = 8;
        if (fli_param_value(f->op, params, "n_clusters", &k) || !(k >= 1))
            k = 8;
        req[0] = shape[0], req[1] = shape[1], req[2] = k > 0 ? k : 8, req[3] = (int64_t)f->iterations;
    } else {
        for (int i = 0; i < 3 && i < ndim; i++)
            req[i] = shape[i];
    }
    for (int kind = 0; kind < 2; kind++) {
        fl_info_reference *r = &c.refs[c.n_refs++];
        r->name = sc->refs[kind];
        r->where = sc->where[kind];
        r->scaling = sc->rule[kind];
        /* prefer an anchor measured on this device (the GPU, or its host CPU) */
        const fli_calib_anchor *a = NULL, *any = NULL;
        for (int i = 0; (any = fli_calib_anchor_find(sc->op, sc->refs[kind], i)) != NULL; i++) {
            if (!strcmp(any->device, f->device)) {
                a = any;
                break;
            }
            if (!a && kind == 0)
                a = any; /* a CPU reference from another machine's host is still a measurement */
        }
        if (!a) {
            r->measured = 0;
            r->scaling = kind ? "no anchor measured on this device: run bench/calib/run.sh there"
                              : "no anchor measured: run bench/calib/run.sh";
            continue;
        }
        double num, den;
        if (!strcmp(family, "kmeans")) {
            num = model_kmeans(req, kind);
            den = model_kmeans(a->shape, kind);
        } else {
            num = (double)req[0] * req[1] * req[2];
            den = (double)a->shape[0] * a->shape[1] * a->shape[2];
        }
        r->measured = 1;
        r->anchor_ms = a->ms;
        r->anchor_ndim = a->ndim;
        memcpy(r->anchor_shape, a->shape, sizeof r->anchor_shape);
        r->anchor_params = a->params;
        r->anchor_device = a->device;
        r->anchor_source = a->source;
        r->scale = den > 0 ? num / den : 0;
        r->runtime_ms = a->ms * r->scale;
        r->speedup = f->runtime_ms > 0 ? r->runtime_ms / f->runtime_ms : 0;
    }
    *out = c;
    return 0;
}
