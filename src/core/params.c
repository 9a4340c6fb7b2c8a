/*
 * params.c — parameter tables and parameter sets.
 *
 * Each primitive declares ONE table of fl_param_def rows (name, type,
 * default, bounds, accepted words, aliases, doc). Everything else derives from
 * it: defaults, validation by name, text parsing for the CLI, the CLI's
 * --help, the Python classes' parameters and the cost model's parsing.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static const fli_algo *const algos[] = {&fli_algo_kmeans, &fli_algo_pca,      &fli_algo_truncated_svd,
                                        &fli_algo_knn,    &fli_algo_ivf_flat, &fli_algo_ivf_pq,
                                        &fli_algo_cagra};
static const char *const algo_names[] = {"kmeans",   "pca",    "truncated_svd", "knn",
                                         "ivf_flat", "ivf_pq", "cagra",         NULL};

const char *fli_algo_list(void)
{
    return "kmeans, pca, truncated_svd, knn";
}

const char *const *fl_algorithms(void)
{
    return algo_names;
}

const fli_algo *fli_algo_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof algos / sizeof *algos; i++)
        if (!strcmp(algos[i]->name, name))
            return algos[i];
    return NULL;
}

int fl_param_count(const char *algo)
{
    const fli_algo *a = fli_algo_find(algo);
    return a ? a->n_params : -1;
}

const fl_param_def *fl_param_def_at(const char *algo, int i)
{
    const fli_algo *a = fli_algo_find(algo);
    return a && i >= 0 && i < a->n_params ? &a->params[i] : NULL;
}

/* Index of `word` in a "a|b|c" list, or -1. */
static int word_index(const char *list, const char *word)
{
    if (!list || !word)
        return -1;
    size_t wl = strlen(word);
    int idx = 0;
    for (const char *p = list;; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == wl && !strncmp(p, word, len))
            return idx;
        if (!bar)
            return -1;
        p = bar + 1;
    }
}

/* Copies word `idx` of a "a|b|c" list into buf. */
static const char *word_at(const char *list, int idx, char *buf, size_t len)
{
    const char *p = list;
    for (int i = 0; p && i < idx; i++) {
        p = strchr(p, '|');
        if (p)
            p++;
    }
    if (!p) {
        snprintf(buf, len, "?");
        return buf;
    }
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n >= len)
        n = len - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

static int name_matches(const fl_param_def *d, const char *name)
{
    return !strcmp(d->name, name) || word_index(d->aliases, name) >= 0;
}

int fli_param_index(const fli_algo *algo, const char *name)
{
    if (!algo || !name)
        return -1;
    for (int i = 0; i < algo->n_params; i++)
        if (name_matches(&algo->params[i], name))
            return i;
    return -1;
}

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
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
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb];
}

static fl_status unknown_param(fl_ctx *ctx, const fli_algo *algo, const char *name)
{
    int best = -1, best_d = 1 << 30;
    for (int i = 0; i < algo->n_params; i++) {
        int dd = edit_distance(name, algo->params[i].name);
        if (dd < best_d) {
            best_d = dd;
            best = i;
        }
    }
    if (best >= 0 && best_d <= 3)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s has no parameter '%s'; did you mean '%s'?",
                        algo->name, name, algo->params[best].name);
    char names[512] = "";
    size_t used = 0;
    for (int i = 0; i < algo->n_params && used + 2 < sizeof names; i++)
        used +=
            (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", algo->params[i].name);
    return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s has no parameter '%s'; its parameters are: %s",
                    algo->name, name, names);
}

/* Parses `text` for parameter row d into *v, or fails with a message. */
static fl_status parse_value(fl_ctx *ctx, const fli_algo *algo, const fl_param_def *d, const char *text,
                             fli_param_value *v)
{
    fli_param_value r = {0, 0.0, -1};
    if (!text || !*text)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s.%s: empty value", algo->name, d->name);
    if (d->type == FL_PARAM_CHOICE) {
        r.word = word_index(d->choices, text);
        if (r.word < 0)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s=%s: must be one of %s", d->name, text,
                            d->choices);
        *v = r;
        return FL_STATUS_OK;
    }
    if (d->type == FL_PARAM_BOOL) {
        if (!strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "True") || !strcmp(text, "yes"))
            r.i = 1;
        else if (!strcmp(text, "0") || !strcmp(text, "false") || !strcmp(text, "False") ||
                 !strcmp(text, "no"))
            r.i = 0;
        else
            return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s=%s: expected true or false", d->name, text);
        *v = r;
        return FL_STATUS_OK;
    }
    int w = word_index(d->choices, text);
    if (w >= 0) {
        r.word = w;
        *v = r;
        return FL_STATUS_OK;
    }
    char *end = NULL;
    errno = 0;
    double x = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(x)) {
        if (d->choices)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s=%s: expected a number or one of %s", d->name,
                            text, d->choices);
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s=%s: expected a %s", d->name, text,
                        d->type == FL_PARAM_INT ? "whole number" : "number");
    }
    if (d->type == FL_PARAM_INT) {
        if (x != floor(x) || fabs(x) > 9.0e18)
            return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s=%s: expected a whole number", d->name, text);
        r.i = (int64_t)x;
        r.f = x;
    } else {
        r.f = x;
    }
    if (x < d->lo || x > d->hi)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s=%s: must be in [%.10g, %.10g]", d->name, text, d->lo,
                        d->hi);
    *v = r;
    return FL_STATUS_OK;
}

fl_status fli_params_init_defaults(fl_ctx *ctx, fl_params *p, const fli_algo *algo)
{
    memset(p, 0, sizeof *p);
    p->algo = algo;
    for (int i = 0; i < algo->n_params; i++) {
        fl_status st = parse_value(ctx, algo, &algo->params[i], algo->params[i].default_str, &p->v[i]);
        if (st)
            return fli_fail(ctx, FL_STATUS_INTERNAL, "%s: default of %s does not parse", algo->name,
                            algo->params[i].name);
    }
    return FL_STATUS_OK;
}

fl_status fl_params_create(fl_ctx *ctx, const char *algo, fl_params **out)
{
    if (!out)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "out is NULL");
    const fli_algo *a = fli_algo_find(algo);
    if (!a)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "unknown algorithm '%s' (known: %s)",
                        algo ? algo : "(null)", fli_algo_list());
    /* Parameter sets outlive calls and are freed without a context, so they
     * use the C allocator rather than the context's hooks. */
    fl_params *p = malloc(sizeof *p);
    if (!p)
        return fli_fail(ctx, FL_STATUS_OUT_OF_MEMORY, "out of host memory creating parameters");
    fl_status st = fli_params_init_defaults(ctx, p, a);
    if (st) {
        free(p);
        return st;
    }
    *out = p;
    return FL_STATUS_OK;
}

void fl_params_free(fl_params *p)
{
    if (!p)
        return;
    free(p->init_array);
    free(p);
}

fl_status fl_params_copy(fl_ctx *ctx, const fl_params *p, fl_params **out)
{
    if (!p || !out)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "fl_params_copy: NULL argument");
    fl_params *q = malloc(sizeof *q);
    if (!q)
        return fli_fail(ctx, FL_STATUS_OUT_OF_MEMORY, "out of host memory copying parameters");
    *q = *p;
    q->init_array = NULL;
    if (p->init_array) {
        size_t bytes = (size_t)(p->init_rows * p->init_cols) * sizeof(double);
        q->init_array = malloc(bytes ? bytes : 1);
        if (!q->init_array) {
            free(q);
            return fli_fail(ctx, FL_STATUS_OUT_OF_MEMORY, "out of host memory copying the init array");
        }
        memcpy(q->init_array, p->init_array, bytes);
    }
    *out = q;
    return FL_STATUS_OK;
}

fl_status fl_params_set(fl_ctx *ctx, fl_params *p, const char *name, const char *value)
{
    if (!p || !name)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "fl_params_set: params and name must not be NULL");
    int i = fli_param_index(p->algo, name);
    if (i < 0)
        return unknown_param(ctx, p->algo, name);
    fli_param_value v;
    fl_status st = parse_value(ctx, p->algo, &p->algo->params[i], value, &v);
    if (st)
        return st;
    p->v[i] = v;
    return FL_STATUS_OK;
}

fl_status fl_params_set_int(fl_ctx *ctx, fl_params *p, const char *name, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return fl_params_set(ctx, p, name, buf);
}

fl_status fl_params_set_float(fl_ctx *ctx, fl_params *p, const char *name, double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    return fl_params_set(ctx, p, name, buf);
}

fl_status fl_params_get(fl_ctx *ctx, const fl_params *p, const char *name, char *buf, size_t len)
{
    if (!p || !name || !buf || !len)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "fl_params_get: NULL argument");
    int i = fli_param_index(p->algo, name);
    if (i < 0)
        return unknown_param(ctx, p->algo, name);
    const fl_param_def *d = &p->algo->params[i];
    const fli_param_value *v = &p->v[i];
    if (v->word >= 0)
        word_at(d->choices, v->word, buf, len);
    else if (d->type == FL_PARAM_INT)
        snprintf(buf, len, "%lld", (long long)v->i);
    else if (d->type == FL_PARAM_BOOL)
        snprintf(buf, len, "%s", v->i ? "true" : "false");
    else
        snprintf(buf, len, "%.17g", v->f);
    return FL_STATUS_OK;
}

static int index_or_die(const fl_params *p, const char *name)
{
    int i = fli_param_index(p->algo, name);
    return i < 0 ? 0 : i; /* internal callers use table names; 0 keeps it safe */
}

int64_t fli_param_int(const fl_params *p, const char *name)
{
    return p->v[index_or_die(p, name)].i;
}
double fli_param_float(const fl_params *p, const char *name)
{
    return p->v[index_or_die(p, name)].f;
}
int fli_param_word(const fl_params *p, const char *name)
{
    return p->v[index_or_die(p, name)].word;
}

fl_status fl_params_set_array(fl_ctx *ctx, fl_params *p, const char *name, const fl_array *a)
{
    if (!p || !name)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "fl_params_set_array: NULL argument");
    int i = fli_param_index(p->algo, name);
    if (i < 0)
        return unknown_param(ctx, p->algo, name);
    const fl_param_def *d = &p->algo->params[i];
    int w = word_index(d->choices, "array");
    if (d->type != FL_PARAM_CHOICE || w < 0)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s.%s does not take an array", p->algo->name, name);
    fl_status st = fli_check_array(ctx, a, name);
    if (st)
        return st;
    if (a->mem != FL_MEM_HOST || (a->dtype != FL_DTYPE_F32 && a->dtype != FL_DTYPE_F64))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "%s: expected a host f32 or f64 array, got %s in %s memory", name,
                        fl_dtype_name(a->dtype), a->mem == FL_MEM_HOST ? "host" : "device");
    if (a->rows < 1 || a->cols < 1)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s: array is empty (%lld x %lld)", name,
                        (long long)a->rows, (long long)a->cols);
    st = fli_check_finite(ctx, a, name);
    if (st)
        return st;
    double *copy = malloc((size_t)(a->rows * a->cols) * sizeof(double));
    if (!copy)
        return fli_fail(ctx, FL_STATUS_OUT_OF_MEMORY, "out of host memory copying %s", name);
    const int64_t ld = fli_ld(a);
    for (int64_t r = 0; r < a->rows; r++)
        for (int64_t c = 0; c < a->cols; c++)
            copy[r * a->cols + c] = a->dtype == FL_DTYPE_F32 ? ((const float *)a->data)[r * ld + c]
                                                             : ((const double *)a->data)[r * ld + c];
    free(p->init_array);
    p->init_array = copy;
    p->init_rows = a->rows;
    p->init_cols = a->cols;
    p->v[i].word = w;
    return FL_STATUS_OK;
}
