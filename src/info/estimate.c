/*
 * estimate.c — the cost model's entry points: fl_info_estimate, parameter
 * parsing with nearest-name suggestions, the sub-operation tree and its
 * roll-up, roofline helpers and fl_info_model_eval for the calibration
 * harness.
 *
 * No allocation and no global mutable state: an estimate is built in a
 * result on the caller's stack and copied out only when it succeeded, so
 * outputs are untouched on error.
 */
#include <ctype.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "algo/kmeans_job.h"
#include "info/info_internal.h"

/* ---- errors ------------------------------------------------------------ */

int fli_info_failv(char *err, size_t len, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return FL_INFO_EINVAL;
}

int fli_info_fail(fli_est *e, const char *fmt, ...)
{
    if (e->err && e->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->err, e->err_len, fmt, ap);
        va_end(ap);
    }
    return FL_INFO_EINVAL;
}

/* ---- nearest names ------------------------------------------------------ */

static int edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    if (la > 63 || lb > 63)
        return 99;
    int prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            int m = sub < del ? sub : del;
            cur[j] = m < ins ? m : ins;
        }
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb];
}

/* Nearest word to `w` among '|'-separated lists; writes it to out ("" when
 * nothing is close enough to be a plausible typo). */
typedef struct suggest {
    int best_d;
    char best[64];
    const char *w;
    size_t wl;
} suggest;

static void suggest_init(suggest *s, const char *w)
{
    s->best_d = 1 << 30;
    s->best[0] = '\0';
    s->w = w;
    s->wl = strlen(w);
}

static void suggest_list(suggest *s, const char *list)
{
    for (const char *p = list; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        int d = edit_distance(s->w, s->wl, p, len);
        /* a prefix of a longer name ("n_clu") counts as one typo */
        if (s->wl >= 3 && len > s->wl && !strncasecmp(p, s->w, s->wl) && d > 1)
            d = 1;
        if (d < s->best_d && len < sizeof s->best) {
            s->best_d = d;
            memcpy(s->best, p, len);
            s->best[len] = '\0';
        }
        p = bar ? bar + 1 : NULL;
    }
}

static const char *suggest_result(suggest *s)
{
    size_t limit = s->wl <= 4 ? 2 : (s->wl <= 8 ? 3 : 4);
    return s->best_d <= (int)limit ? s->best : NULL;
}

/* ---- parameters ---------------------------------------------------------- */

/* Whether `name` (nl bytes, not terminated) is d's name or an alias. No
 * strlen: this runs for every parameter read. */
static int names_match(const fl_param_def *d, const char *name, size_t nl)
{
    if (d->name[0] == name[0] && !strncmp(d->name, name, nl) && d->name[nl] == '\0')
        return 1;
    for (const char *p = d->aliases; p && *p;) {
        size_t i = 0;
        while (i < nl && p[i] == name[i])
            i++;
        if (i == nl && (p[i] == '|' || p[i] == '\0'))
            return 1;
        while (*p && *p != '|')
            p++;
        if (*p)
            p++;
    }
    return 0;
}

static const fl_param_def *param_def(const fli_pset *ps, int i)
{
    return i < ps->n_tab ? &ps->tab[i] : &ps->xtab[i - ps->n_tab];
}

static int param_index_n(const fli_pset *ps, const char *name, size_t nl)
{
    for (int i = 0; i < ps->n_tab + ps->n_xtab; i++)
        if (names_match(param_def(ps, i), name, nl))
            return i;
    return -1;
}

/* Index of `word` in a '|' list, or -1. */
static int word_index(const char *list, const char *word, size_t wl)
{
    int idx = 0;
    for (const char *p = list; p && *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == wl && !strncasecmp(p, word, wl))
            return idx;
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

/* Values are mostly short decimal literals ("8", "300", "1e-4", "0.5"):
 * those are parsed here (exactly: an integer mantissa below 2^53 scaled by
 * a power of ten up to 10^22 is one correctly rounded operation, as strtod
 * gives); anything else goes to strtod. The text is s[0..end), or up to its
 * NUL when end is NULL. */
static double parse_number(const char *s, const char *end)
{
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *p = s;
    uint64_t m = 0;
    int digits = 0, exp10 = 0;
    for (; p != end && *p >= '0' && *p <= '9'; p++, digits++)
        m = m * 10 + (uint64_t)(*p - '0');
    if (p != end && *p == '.')
        for (p++; p != end && *p >= '0' && *p <= '9'; p++, digits++, exp10--)
            m = m * 10 + (uint64_t)(*p - '0');
    if (digits > 0 && digits <= 15 && p != end && (*p == 'e' || *p == 'E')) {
        int neg = 0, x = 0, xd = 0;
        p++;
        if (p != end && (*p == '-' || *p == '+'))
            neg = *p++ == '-';
        for (; p != end && *p >= '0' && *p <= '9' && xd < 4; p++, xd++)
            x = x * 10 + (*p - '0');
        exp10 += neg ? -x : x;
        if (!xd)
            digits = 0;
    }
    if (digits > 0 && digits <= 15 && (end ? p == end : *p == '\0') && exp10 >= -22 && exp10 <= 22)
        return exp10 < 0 ? (double)m / p10[-exp10] : (double)m * p10[exp10];
    char buf[64], *stop = NULL;
    if (end) {
        if ((size_t)(end - s) >= sizeof buf)
            return NAN;
        memcpy(buf, s, (size_t)(end - s));
        buf[end - s] = '\0';
        s = buf;
    }
    double x = strtod(s, &stop);
    return stop == s || *stop != '\0' ? NAN : x;
}

static double parse_default(const char *s)
{
    return parse_number(s, NULL);
}

/* Parses one value of parameter `d` into num/word. Returns 0 or -1. */
static int parse_value(const fl_param_def *d, const char *v, size_t vl, double *num, int *word)
{
    if (vl == 0 || vl >= 64)
        return -1;
    *word = -1;
    *num = 0;
    if (d->type == FL_PARAM_CHOICE) {
        *word = word_index(d->choices, v, vl);
        return *word >= 0 ? 0 : -1;
    }
    if (d->type == FL_PARAM_BOOL) {
        if (word_index("true|1|yes", v, vl) >= 0)
            *num = 1;
        else if (word_index("false|0|no", v, vl) < 0)
            return -1;
        return 0;
    }
    if (d->choices && (*word = word_index(d->choices, v, vl)) >= 0)
        return 0;
    double x = parse_number(v, v + vl);
    if (!isfinite(x))
        return -1;
    /* an integer: beyond 2^52 every double is one (and no libm call) */
    if (d->type == FL_PARAM_INT && fabs(x) < 0x1p52 && x != (double)(int64_t)x)
        return -1;
    if (x < d->lo || x > d->hi)
        return -2;
    *num = x;
    return 0;
}

static const char *type_words(const fl_param_def *d)
{
    switch (d->type) {
    case FL_PARAM_INT: return "an integer";
    case FL_PARAM_FLOAT: return "a number";
    case FL_PARAM_BOOL: return "true or false";
    default: return "one of";
    }
}

/* Characters of a parameter string by class, one load each: separators of
 * "name=value" pairs (commas, semicolons, the C locale's white space) and
 * the end; '='; anything else (0). */
enum { CH_OTHER = 0, CH_SEP = 1, CH_END = 2, CH_EQ = 3 };
static const unsigned char char_class[256] = {
    ['\0'] = CH_END, [','] = CH_SEP,  [';'] = CH_SEP,  [' '] = CH_SEP,  ['\t'] = CH_SEP,
    ['\n'] = CH_SEP, ['\v'] = CH_SEP, ['\f'] = CH_SEP, ['\r'] = CH_SEP, ['='] = CH_EQ,
};

int fli_pset_parse(fli_est *e, const char *params)
{
    fli_pset *ps = &e->ps;
    const char *op = e->op->pub.name;
    for (const char *p = params; p && *p;) {
        while (char_class[(unsigned char)*p] == CH_SEP)
            p++;
        if (!*p)
            break;
        const char *tok = p, *eq = NULL;
        for (;;) {
            const int c = char_class[(unsigned char)*p];
            if (c == CH_OTHER || (c == CH_EQ && eq))
                p++;
            else if (c == CH_EQ)
                eq = p++;
            else
                break;
        }
        size_t tl = (size_t)(p - tok);
        if (!eq || eq == tok || eq == tok + tl - 1)
            return fli_info_fail(e, "%s: parameter '%.*s': expected NAME=VALUE (e.g. n_clusters=8)", op,
                                 (int)tl, tok);
        size_t nl = (size_t)(eq - tok);
        int i = param_index_n(ps, tok, nl);
        if (i < 0) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(nl < 63 ? nl : 63), tok);
            suggest s;
            suggest_init(&s, name);
            for (int j = 0; j < ps->n_tab + ps->n_xtab; j++) {
                suggest_list(&s, param_def(ps, j)->name);
                suggest_list(&s, param_def(ps, j)->aliases);
            }
            const char *near = suggest_result(&s);
            char known[512];
            size_t used = 0;
            known[0] = '\0';
            for (int j = 0; j < ps->n_tab + ps->n_xtab && used < sizeof known; j++) {
                int w = snprintf(known + used, sizeof known - used, "%s%s", j ? ", " : "",
                                 param_def(ps, j)->name);
                used += w > 0 ? (size_t)w : 0;
            }
            if (near)
                return fli_info_fail(e, "%s: unknown parameter '%s'; did you mean '%s'? (known: %s)", op,
                                     name, near, known);
            return fli_info_fail(e, "%s: unknown parameter '%s' (known: %s)", op, name, known);
        }
        const fl_param_def *d = param_def(ps, i);
        if (ps->set & (1u << i))
            return fli_info_fail(e, "%s: parameter %s given twice (its aliases name the same parameter)", op,
                                 d->name);
        double num;
        int word;
        int rc = parse_value(d, eq + 1, tl - nl - 1, &num, &word);
        if (rc) {
            int vl = (int)(tl - nl - 1);
            if (d->type == FL_PARAM_CHOICE)
                return fli_info_fail(e, "%s: %s=%.*s: expected one of %s", op, d->name, vl, eq + 1,
                                     d->choices);
            if (rc == -2)
                return fli_info_fail(e, "%s: %s=%.*s: must be in [%.17g, %.17g]%s%s", op, d->name, vl, eq + 1,
                                     d->lo, d->hi, d->choices ? " or " : "", d->choices ? d->choices : "");
            return fli_info_fail(e, "%s: %s=%.*s: expected %s%s%s", op, d->name, vl, eq + 1, type_words(d),
                                 d->choices ? " or " : "", d->choices ? d->choices : "");
        }
        ps->set |= 1u << i;
        ps->num[i] = num;
        ps->word[i] = (int8_t)word;
    }
    return 0;
}

static int param_index(const fli_est *e, const char *name)
{
    /* the estimators ask by canonical name: no alias scan */
    const fli_pset *ps = &e->ps;
    for (int i = 0; i < ps->n_tab + ps->n_xtab; i++) {
        const char *n = param_def(ps, i)->name;
        if (n[0] == name[0] && !strcmp(n, name))
            return i;
    }
    return -1;
}

int fli_p_given(const fli_est *e, const char *name)
{
    int i = param_index(e, name);
    return i >= 0 && (e->ps.set & (1u << i));
}

double fli_p_num(const fli_est *e, const char *name)
{
    int i = param_index(e, name);
    if (i < 0)
        return NAN;
    if (e->ps.set & (1u << i))
        return e->ps.word[i] >= 0 ? NAN : e->ps.num[i];
    const fl_param_def *d = param_def(&e->ps, i);
    if (d->type == FL_PARAM_BOOL)
        return !strcmp(d->default_str, "true") || !strcmp(d->default_str, "1");
    return parse_default(d->default_str);
}

double fli_p_num_i(const fli_est *e, int i)
{
    if (e->ps.set & (1u << i))
        return e->ps.word[i] >= 0 ? NAN : e->ps.num[i];
    const fl_param_def *d = param_def(&e->ps, i);
    if (d->type == FL_PARAM_BOOL)
        return !strcmp(d->default_str, "true") || !strcmp(d->default_str, "1");
    return parse_default(d->default_str);
}

int fli_p_word_i(const fli_est *e, int i)
{
    if (e->ps.set & (1u << i))
        return e->ps.word[i];
    const fl_param_def *d = param_def(&e->ps, i);
    if (d->type != FL_PARAM_CHOICE && !d->choices)
        return -1;
    /* most defaults are the first word of their list: one walk, no strlen */
    const char *c = d->choices, *w = d->default_str;
    while (*w && *c == *w)
        c++, w++;
    if (!*w && (*c == '|' || *c == '\0'))
        return 0;
    return word_index(d->choices, d->default_str, strlen(d->default_str));
}

int fli_p_word(const fli_est *e, const char *name)
{
    int i = param_index(e, name);
    if (i < 0)
        return -1;
    if (e->ps.set & (1u << i))
        return e->ps.word[i];
    const fl_param_def *d = param_def(&e->ps, i);
    if (d->type != FL_PARAM_CHOICE && !d->choices)
        return -1;
    return word_index(d->choices, d->default_str, strlen(d->default_str));
}

/* ---- the tree ------------------------------------------------------------ */

void fli_rollup(fli_est *e)
{
    fl_info_result *r = e->r;
    double best[FL_INFO_MAX_NODES];
    for (int i = 0; i < r->n_nodes; i++)
        best[i] = -1;
    for (int i = r->n_nodes - 1; i >= 1; i--) {
        fl_info_node *c = &r->nodes[i], *p = &r->nodes[c->parent];
        p->runtime_ms += c->runtime_ms;
        p->flops += c->flops;
        p->hbm_bytes += c->hbm_bytes;
        p->launches += c->launches;
        if (c->tier < p->tier)
            p->tier = c->tier;
        if (c->runtime_ms > best[c->parent]) {
            best[c->parent] = c->runtime_ms;
            p->bound = c->bound;
        }
    }
}

void fli_note(fli_est *e, const char *note)
{
    fl_info_result *r = e->r;
    for (int i = 0; i < r->n_notes; i++)
        if (r->notes[i] == note)
            return;
    if (r->n_notes < FL_INFO_MAX_NOTES)
        r->notes[r->n_notes++] = note;
}

/* Scales every leaf so the total equals a measurement of this shape. */
void fli_scale_to_measured(fli_est *e, double measured_ms)
{
    fl_info_result *r = e->r;
    int has_child[FL_INFO_MAX_NODES] = {0};
    double total = 0;
    for (int i = 1; i < r->n_nodes; i++)
        has_child[r->nodes[i].parent] = 1;
    for (int i = 0; i < r->n_nodes; i++)
        if (!has_child[i])
            total += r->nodes[i].runtime_ms;
    if (!(total > 0))
        return;
    for (int i = 0; i < r->n_nodes; i++)
        if (!has_child[i])
            r->nodes[i].runtime_ms *= measured_ms / total;
    e->measured_whole = 1;
    fli_note(e, "runtime measured at this exact shape on this device (bench/calib); the split into parts "
                "follows the model");
}

/* ---- roofline --------------------------------------------------------------- */

/* Attainable fraction of the ceiling per class: compute, memory. The
 * ceiling is the measured one when the table has it, else the datasheet
 * peak x 0.8 (cuBLAS reaches 78-81% of dense bf16 peak on H100/H200, and
 * a copy ~90% of HBM bandwidth). */
static const double class_eff[5][2] = {
    {0.95, 0.90}, /* GEMM   */
    {0.60, 0.85}, /* FUSED  */
    {0.50, 0.90}, /* STREAM */
    {0.20, 0.30}, /* GATHER */
    {0.30, 0.70}, /* SOLVER */
};

double fli_rate(const fl_info_device *dev, fl_info_prec p, fli_class c)
{
    double peak = dev->measured_tflops[p] > 0 ? dev->measured_tflops[p] : dev->peak_tflops[p] * 0.8;
    if (peak <= 0 && p == FL_INFO_PREC_FP64_TC)
        peak = dev->peak_tflops[FL_INFO_PREC_FP64] * 0.8;
    if (peak <= 0) /* no such unit (FP8 on Ampere, tensor cores on the CPU): fp32 */
        peak = dev->measured_tflops[FL_INFO_PREC_FP32] > 0 ? dev->measured_tflops[FL_INFO_PREC_FP32]
                                                           : dev->peak_tflops[FL_INFO_PREC_FP32] * 0.8;
    return peak * class_eff[c][0];
}

double fli_bw(const fl_info_device *dev, fli_class c)
{
    double ceil = dev->copy_gbs > 0 ? dev->copy_gbs : dev->hbm_gbs * 0.9;
    return ceil * class_eff[c][1];
}

double fli_roof_ms(const fl_info_device *dev, double flops, double rate_tflops, double bytes, double bw_gbs,
                   double launches, fl_info_bound *bound)
{
    double tc = rate_tflops > 0 ? flops / (rate_tflops * 1e9) : 0; /* ms */
    double tm = bw_gbs > 0 ? bytes / (bw_gbs * 1e6) : 0;
    double tl = launches * dev->launch_us * 1e-3;
    double t = tc > tm ? tc : tm;
    if (bound)
        *bound = tl > t ? FL_INFO_BOUND_LATENCY : (tc >= tm ? FL_INFO_BOUND_COMPUTE : FL_INFO_BOUND_MEMORY);
    return t + tl;
}

fl_info_tier fli_roof_tier(const fl_info_device *dev)
{
    return dev->is_gpu ? FL_INFO_TIER_ROOFLINE : FL_INFO_TIER_HEURISTIC;
}

double fli_roof_leaf(fli_est *e, int parent, const char *name, const char *detail, double repeat,
                     double flops, fl_info_prec p, fli_class c, double bytes, double launches,
                     fl_info_tier cap)
{
    fl_info_bound b;
    double rate = fli_rate(e->dev, p, c);
    if (!e->dev->is_gpu) {
        /* the CPU's peaks scale with the threads asked for */
        double th = e->threads;
        if (isfinite(th) && th >= 1 && th < e->dev->sm_count)
            rate *= th / e->dev->sm_count;
    }
    double ms = repeat * fli_roof_ms(e->dev, flops, rate, bytes, fli_bw(e->dev, c), launches, &b);
    fl_info_tier t = fli_roof_tier(e->dev);
    if (cap < t)
        t = cap;
    int n = fli_node(e, parent, name, detail, repeat);
    fli_leaf(e, n >= 0 ? n : parent, ms, repeat * flops, repeat * bytes, repeat * launches, b, t);
    return ms;
}

int fli_bytes_ok(fli_est *e, double bytes, const char *what)
{
    if (!(bytes < 1.8446744073709552e19))
        return fli_info_fail(e, "%s: %s needs %.3g bytes, which overflows 64 bits: the shape is too large",
                             e->op->pub.name, what, bytes) == 0;
    return 1;
}

/* ---- entry points ------------------------------------------------------------ */

static int fail_unknown_op(char *err, size_t len, const char *op)
{
    suggest s;
    suggest_init(&s, op);
    char known[600];
    size_t used = 0;
    known[0] = '\0';
    for (int i = 0; i < fli_op_table_size(); i++) {
        const char *name = fli_op_index(i)->pub.name;
        suggest_list(&s, name);
        if (used < sizeof known) {
            int w = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", name);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    const char *near = suggest_result(&s);
    if (near)
        return fli_info_failv(err, len, "unknown op '%s'; did you mean '%s'? (known: %s)", op, near, known);
    return fli_info_failv(err, len, "unknown op '%s' (known: %s)", op, known);
}

static int fail_unknown_device(char *err, size_t len, const char *dev)
{
    suggest s;
    suggest_init(&s, dev);
    char known[300];
    size_t used = 0;
    known[0] = '\0';
    for (int i = 0; i < fl_info_device_count(); i++) {
        const fl_info_device *d = fl_info_device_at(i);
        suggest_list(&s, d->name);
        suggest_list(&s, d->aliases);
        if (used < sizeof known) {
            int w = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", d->name);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    suggest_list(&s, "this");
    const char *near = suggest_result(&s);
    if (near)
        return fli_info_failv(err, len, "unknown device '%s'; did you mean '%s'? (known: %s, this)", dev,
                              near, known);
    return fli_info_failv(err, len, "unknown device '%s' (known: %s, this)", dev, known);
}

static int fail_unknown_dtype(char *err, size_t len, const char *dt)
{
    suggest s;
    suggest_init(&s, dt);
    suggest_list(&s, "f32|float32|fp32|f64|float64|fp64|f16|float16|fp16|bf16|bfloat16");
    const char *near = suggest_result(&s);
    return fli_info_failv(err, len, "unknown dtype '%s'%s%s%s (expected f32, f64, f16 or bf16)", dt,
                          near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
}

/* Validates the request and prepares `e` (its result zeroed). */
static int est_begin(fli_est *e, fl_info_result *res, const char *op, const int64_t *shape, int ndim,
                     const char *params, const char *dtype, const char *device, char *err, size_t err_len)
{
    /* everything but the parameter values (read only once given) */
    memset(e, 0, offsetof(fli_est, ps.num));
    e->err = err;
    e->err_len = err_len;
    e->r = res;
    if (!op)
        return fli_info_failv(err, err_len, "op is NULL: expected an op name such as \"kmeans\"");
    e->op = fli_op_find(op);
    if (!e->op)
        return fail_unknown_op(err, err_len, op);
    e->dev = fli_device_lookup(device);
    if (!e->dev)
        return fail_unknown_device(err, err_len, device);
    if (fli_dtype_parse(dtype, &e->dtype))
        return fail_unknown_dtype(err, err_len, dtype);
    const fl_info_op *o = &e->op->pub;
    if (!shape || ndim < o->min_ndim || ndim > o->max_ndim) {
        if (o->min_ndim == o->max_ndim)
            return fli_info_failv(err, err_len, "%s: shape must have %d dimension%s (%s), got %d", o->name,
                                  o->min_ndim, o->min_ndim == 1 ? "" : "s", o->shape_doc, shape ? ndim : 0);
        return fli_info_failv(err, err_len, "%s: shape must have %d to %d dimensions (%s), got %d", o->name,
                              o->min_ndim, o->max_ndim, o->shape_doc, shape ? ndim : 0);
    }
    double prod = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return fli_info_failv(err, err_len, "%s: shape[%d] = %lld: every size must be >= 1 (%s)", o->name,
                                  i, (long long)shape[i], o->shape_doc);
        e->shape[i] = shape[i];
        prod *= (double)shape[i];
    }
    e->ndim = ndim;
    if (!(prod * 8 < 9.2e18))
        return fli_info_failv(
            err, err_len,
            "%s: shape with %.3g elements: its byte count overflows 64 bits (at most ~1.1e18 "
            "elements of 8 bytes)",
            o->name, prod);
    e->ps.tab = e->op->params;
    e->ps.n_tab = e->op->n_params;
    e->ps.xtab = e->op->xparams;
    e->ps.n_xtab = e->op->n_xparams;
    int rc = fli_pset_parse(e, params);
    if (rc)
        return rc;
    e->threads = e->dev->is_gpu ? NAN : fli_p_num(e, "threads");
    if (!e->dev->is_gpu && !isfinite(e->threads) && device && !strcasecmp(device, "this")) {
        /* this machine's CPU: its own core count, not the nominal table's */
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
            e->threads = CPU_COUNT(&set);
    }
    memset(res, 0, offsetof(fl_info_result, nodes));
    res->n_nodes = 0;
    res->n_notes = 0;
    res->op = o->name;
    res->device = e->dev->name;
    res->dtype = fli_dtype_canon(e->dtype);
    res->ndim = ndim;
    memcpy(res->shape, e->shape, sizeof e->shape);
    res->expected_residual = -1;
    res->implemented = o->implemented;
    res->fits_in_memory = 1;
    e->main_prec = fli_dtype_prec(e->dtype);
    strcpy(res->backend, o->implemented ? (e->dev->is_gpu ? "cuda" : "cpu") : "none");
    return 0;
}

/* Achieved throughput and share of the bounding resource's peak. */
static void finish(fli_est *e)
{
    fl_info_result *r = e->r;
    fli_rollup(e);
    const fl_info_node *root = &r->nodes[0];
    r->runtime_ms = root->runtime_ms;
    r->flops = root->flops;
    r->hbm_bytes = root->hbm_bytes;
    r->bound = root->bound;
    /* a whole-op measurement is a measurement; otherwise the weakest part */
    r->tier = e->measured_whole ? FL_INFO_TIER_MEASURED : root->tier;
    double s = r->runtime_ms > 0 ? r->runtime_ms * 1e-3 : 0;
    r->achieved_tflops = s > 0 ? r->flops / s * 1e-12 : 0;
    r->achieved_gbs = s > 0 ? r->hbm_bytes / s * 1e-9 : 0;
    const fl_info_device *d = e->dev;
    if (r->bound == FL_INFO_BOUND_MEMORY) {
        r->peak_value = d->hbm_gbs;
        r->peak_what = d->is_gpu ? "memory bandwidth (datasheet)" : "memory bandwidth (nominal)";
        r->peak_share = r->peak_value > 0 ? r->achieved_gbs / r->peak_value : 0;
    } else if (r->bound == FL_INFO_BOUND_TRANSFER) {
        r->peak_value = d->h2d_gbs;
        r->peak_what = "host-device link, one direction (datasheet)";
        r->peak_share = r->peak_value > 0 && s > 0 ? e->link_bytes / s * 1e-9 / r->peak_value : 0;
    } else {
        fl_info_prec p = e->main_prec;
        double pk = d->peak_tflops[p];
        if (pk <= 0)
            pk = d->peak_tflops[FL_INFO_PREC_FP32], p = FL_INFO_PREC_FP32;
        static const char *const what[FL_INFO_NPREC] = {
            "fp64 peak (datasheet)",       "fp64 tensor peak (datasheet)", "fp32 peak (datasheet)",
            "tf32 dense peak (datasheet)", "bf16 dense peak (datasheet)",  "fp16 dense peak (datasheet)",
            "fp8 dense peak (datasheet)",  "int8 dense peak (datasheet)"};
        r->peak_value = pk;
        r->peak_what = d->is_gpu ? what[p] : "fp32 peak (nominal)";
        r->peak_share = pk > 0 ? r->achieved_tflops / pk : 0;
    }
}

static int run_estimator(fli_est *e)
{
    int root = fli_node(e, -1, e->op->pub.name, e->op->pub.summary, 1);
    (void)root;
    int rc = e->op->fn(e);
    if (rc)
        return rc;
    finish(e);
    if (!(e->r->runtime_ms >= 0) || !isfinite(e->r->runtime_ms))
        return fli_info_fail(e,
                             "%s: the model produced no finite runtime for this shape (a bug: please report)",
                             e->op->pub.name);
    return 0;
}

int fl_info_estimate(const char *op, const int64_t *shape, int ndim, const char *params, const char *dtype,
                     const char *device, fl_info_result *out, char *err, size_t err_len)
{
    if (!out)
        return fli_info_failv(err, err_len, "out is NULL: expected a result to fill");
    fli_est e;
    fl_info_result res;
    int rc = est_begin(&e, &res, op, shape, ndim, params, dtype, device, err, err_len);
    if (!rc)
        rc = run_estimator(&e);
    if (rc)
        return rc;
    memcpy(out, &res, offsetof(fl_info_result, nodes) + sizeof(fl_info_node) * (size_t)res.n_nodes);
    out->n_notes = res.n_notes;
    memcpy(out->notes, res.notes, sizeof(const char *) * (size_t)res.n_notes);
    return 0;
}

int fli_param_value(const char *op, const char *params, const char *name, double *out)
{
    fli_est e;
    memset(&e, 0, sizeof e);
    e.op = op ? fli_op_find(op) : NULL;
    if (!e.op)
        return -1;
    e.ps.tab = e.op->params;
    e.ps.n_tab = e.op->n_params;
    e.ps.xtab = e.op->xparams;
    e.ps.n_xtab = e.op->n_xparams;
    if (fli_pset_parse(&e, params))
        return -1;
    *out = fli_p_num(&e, name);
    return 0;
}

/* Used by pareto: the estimate of one variant, measured points included. */
int fli_estimate_variant(const char *op, const char *variant, const int64_t *shape, int ndim,
                         const char *params, const char *dtype, const char *device, fl_info_result *out,
                         char *err, size_t err_len)
{
    fli_est e;
    int rc = est_begin(&e, out, op, shape, ndim, params, dtype, device, err, err_len);
    if (rc)
        return rc;
    e.variant_override = variant;
    return run_estimator(&e);
}

double fli_child(fli_est *e, int parent, const char *label, const char *opname, const int64_t *shape,
                 int ndim, const char *params, double repeat)
{
    if (e->depth > 3) {
        fli_info_fail(e, "%s: sub-operations nested too deeply (a bug: please report)", e->op->pub.name);
        return -1;
    }
    fli_est c;
    fl_info_result res;
    const char *dt = fli_dtype_canon(e->dtype);
    int rc = est_begin(&c, &res, opname, shape, ndim, params, dt, e->dev->name, e->err, e->err_len);
    if (rc)
        return -1;
    c.depth = e->depth + 1;
    c.no_measured = 1;
    if (run_estimator(&c))
        return -1;
    /* Graft: the child's root becomes a node named `label` under parent;
     * only leaves carry values (parents are re-summed by the roll-up). */
    int map[FL_INFO_MAX_NODES], has_child[FL_INFO_MAX_NODES] = {0};
    for (int i = 1; i < res.n_nodes; i++)
        has_child[res.nodes[i].parent] = 1;
    for (int i = 0; i < res.n_nodes; i++) {
        const fl_info_node *src = &res.nodes[i];
        int p = i == 0 ? parent : map[src->parent];
        int k =
            fli_node(e, p, i == 0 ? label : src->name, src->detail, i == 0 ? repeat : src->repeat * repeat);
        map[i] = k >= 0 ? k : p;
        if (k >= 0 && !has_child[i])
            fli_leaf(e, k, src->runtime_ms * repeat, src->flops * repeat, src->hbm_bytes * repeat,
                     src->launches * repeat, src->bound, src->tier);
        else if (k < 0 && !has_child[i]) /* tree full: fold into the parent */
            fli_leaf(e, p, src->runtime_ms * repeat, src->flops * repeat, src->hbm_bytes * repeat,
                     src->launches * repeat, src->bound, src->tier);
    }
    for (int i = 0; i < res.n_notes; i++)
        fli_note(e, res.notes[i]);
    e->link_bytes += c.link_bytes * repeat;
    if (res.peak_memory_bytes > e->r->peak_memory_bytes)
        e->r->peak_memory_bytes = res.peak_memory_bytes;
    return res.runtime_ms * repeat;
}

int fl_info_model_eval(const char *op, const char *variant, const int64_t *shape, int ndim,
                       const char *params, const char *dtype, const char *device, const double *coef,
                       int n_coef, double *runtime_ms, char *err, size_t err_len)
{
    if (!runtime_ms || !variant)
        return fli_info_failv(err, err_len, "model_eval: runtime_ms and variant must not be NULL");
    int want = fl_info_model_coefs(op, variant, device, NULL, NULL);
    if (want < 0)
        return fli_info_failv(err, err_len, "model_eval: no calibrated model for op '%s' variant '%s'",
                              op ? op : "(null)", variant);
    if (!coef || n_coef != want)
        return fli_info_failv(err, err_len, "model_eval: %s/%s takes %d coefficients, got %d", op, variant,
                              want, coef ? n_coef : 0);
    fli_est e;
    fl_info_result res;
    int rc = est_begin(&e, &res, op, shape, ndim, params, dtype, device, err, err_len);
    if (rc)
        return rc;
    e.coef_override = coef;
    e.n_coef_override = n_coef;
    e.variant_override = variant;
    e.no_measured = 1;
    rc = run_estimator(&e);
    if (rc)
        return rc;
    *runtime_ms = res.runtime_ms;
    return 0;
}

fl_info_prec fli_prec_info(int precision)
{
    switch (precision) {
    case FLI_PREC_TF32: return FL_INFO_PREC_TF32;
    case FLI_PREC_BF16: return FL_INFO_PREC_BF16;
    case FLI_PREC_FP16: return FL_INFO_PREC_FP16;
    case FLI_PREC_F64: return FL_INFO_PREC_FP64;
    default: return FL_INFO_PREC_FP32;
    }
}

int fli_coefs_out(const char *const *coef_names, const double *c, int n, const char **names, double *def)
{
    for (int i = 0; i < n; i++) {
        if (names)
            names[i] = coef_names[i];
        if (def)
            def[i] = c[i];
    }
    return n;
}

int fl_info_model_coefs(const char *op, const char *variant, const char *device, const char **names,
                        double *defaults)
{
    const fl_info_device *dev = fli_device_lookup(device);
    if (!op || !variant || !dev)
        return -1;
    if (!strcmp(op, "kmeans"))
        return fli_kmeans_coefs(variant, dev, names, defaults);
    if (!strcmp(op, "knn"))
        return fli_knn_coefs(variant, dev, names, defaults);
    if (!strncmp(op, "gemm", 4))
        return fli_gemm_coefs(variant, dev, names, defaults);
    if (!strncmp(op, "eigh", 4) || !strncmp(op, "polar", 5))
        return fli_solver_coefs(variant, dev, names, defaults);
    if (!strcmp(op, "pca") || !strcmp(op, "truncated_svd"))
        return fli_decomp_coefs(variant, dev, names, defaults);
    if (!strcmp(op, "ivf_flat") || !strcmp(op, "ivf_pq") || !strcmp(op, "cagra"))
        return fli_ann_coefs(op, variant, dev, names, defaults);
    return -1;
}

const char *fl_info_bound_name(fl_info_bound b)
{
    switch (b) {
    case FL_INFO_BOUND_COMPUTE: return "compute";
    case FL_INFO_BOUND_MEMORY: return "memory";
    case FL_INFO_BOUND_LATENCY: return "latency";
    case FL_INFO_BOUND_TRANSFER: return "transfer";
    }
    return "?";
}

const char *fl_info_tier_name(fl_info_tier t)
{
    switch (t) {
    case FL_INFO_TIER_HEURISTIC: return "heuristic";
    case FL_INFO_TIER_ROOFLINE: return "roofline";
    case FL_INFO_TIER_CALIBRATED: return "calibrated";
    case FL_INFO_TIER_MEASURED: return "measured";
    }
    return "?";
}

int fl_info_op_count(void)
{
    return fli_op_table_size();
}

const fl_info_op *fl_info_op_at(int i)
{
    const fli_op *o = fli_op_index(i);
    return o ? &o->pub : NULL;
}

int fl_info_op_param(const char *op, int i, const char **name, const char **default_value,
                     const char **aliases, const char **doc, int *info_only)
{
    const fli_op *o = op ? fli_op_find(op) : NULL;
    if (!o || i < 0 || i >= o->n_params + o->n_xparams)
        return -1;
    const fl_param_def *d = i < o->n_params ? &o->params[i] : &o->xparams[i - o->n_params];
    if (name)
        *name = d->name;
    if (default_value)
        *default_value = d->default_str;
    if (aliases)
        *aliases = d->aliases;
    if (doc)
        *doc = d->doc;
    if (info_only)
        *info_only = i >= o->n_params;
    return 0;
}

size_t fl_info_sizeof(const char *type)
{
    static const struct {
        const char *name;
        size_t size;
    } sizes[] = {
        {"result", sizeof(fl_info_result)},           {"node", sizeof(fl_info_node)},
        {"variant", sizeof(fl_info_variant)},         {"reference", sizeof(fl_info_reference)},
        {"comparison", sizeof(fl_info_comparison)},   {"device", sizeof(fl_info_device)},
        {"calibration", sizeof(fl_info_calibration)},
    };
    for (size_t i = 0; type && i < sizeof sizes / sizeof *sizes; i++)
        if (!strcmp(type, sizes[i].name))
            return sizes[i].size;
    return 0;
}
