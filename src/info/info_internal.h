/*
 * info_internal.h — what the files of the cost model share: the op table,
 * parsed parameters, the estimate under construction (a tree of nodes),
 * roofline helpers and the calibration tables.
 *
 * Everything here is libc + libm: the cost model is built alone as
 * libflashlib_info.so and also compiled into libflashlib.
 */
#ifndef FL_INFO_INTERNAL_H
#define FL_INFO_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "flashlib.h"
#include "flashlib_info.h"

#define FLI_INFO_MAX_PARAMS 24

/* ---- names ------------------------------------------------------------ */

/* Equality of two NUL-terminated names, exact or ASCII case-insensitive.
 * Inline loops: the names an estimate looks up on every call are short and
 * differ early, where a call to strcmp / strcasecmp costs more than the
 * comparison (and strcasecmp would follow the locale). */
static inline int fli_eq(const char *a, const char *b)
{
    while (*a == *b) {
        if (!*a)
            return 1;
        a++, b++;
    }
    return 0;
}

static inline int fli_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static inline int fli_eq_ci(const char *a, const char *b)
{
    while (fli_lower((unsigned char)*a) == fli_lower((unsigned char)*b)) {
        if (!*a)
            return 1;
        a++, b++;
    }
    return 0;
}

/* ---- parameters ------------------------------------------------------- */

/* Parsed "name=value" pairs of one call: values of the op's own table
 * (indexes 0..n_tab-1) then of its info-only table. Unset parameters read
 * their default text on demand. */
typedef struct fli_pset {
    const fl_param_def *tab;
    int n_tab;
    const fl_param_def *xtab;
    int n_xtab;
    uint32_t set; /* bit i: parameter i was given  */
    /* Read only where `set` says they were written. */
    double num[FLI_INFO_MAX_PARAMS];  /* INT / FLOAT / BOOL value      */
    int8_t word[FLI_INFO_MAX_PARAMS]; /* CHOICE index or extra word; -1 numeric */
} fli_pset;

/* ---- ops ------------------------------------------------------------- */

struct fli_est;
typedef int (*fli_estimator)(struct fli_est *e);

typedef struct fli_op {
    fl_info_op pub;
    const fl_param_def *params; /* the primitive's table (scikit-learn names) */
    int n_params;
    const fl_param_def *xparams; /* info-only parameters */
    int n_xparams;
    fli_estimator fn;
} fli_op;

const fli_op *fli_op_find(const char *name);
int fli_op_table_size(void);
const fli_op *fli_op_index(int i);

/* ---- the estimate under construction ---------------------------------- */

typedef struct fli_est {
    fl_info_result *r;
    const fli_op *op;
    const fl_info_device *dev;
    fl_dtype dtype;
    int64_t shape[FL_INFO_MAX_DIMS];
    int ndim;
    /* set by callers that evaluate a model with explicit coefficients */
    const double *coef_override;
    int n_coef_override;
    const char *variant_override; /* pareto: estimate this variant     */
    int no_measured;              /* do not use measured points         */
    fl_info_prec main_prec;       /* precision of the op's arithmetic   */
    double link_bytes;            /* bytes over the host-device link    */
    int depth;                    /* nesting of fli_child               */
    int measured_whole;           /* runtime is a measurement of this shape */
    double threads;               /* CPU threads asked for (NaN: the device's) */
    char *err;
    size_t err_len;
    fli_pset ps; /* last: its values need no zeroing (see est_begin) */
} fli_est;

/* Records a message and returns FL_INFO_EINVAL. */
int fli_info_fail(fli_est *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int fli_info_failv(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Adds a node under `parent` (-1: the root). Returns its index or -1 when
 * the tree is full (the node is then dropped and its time is added to the
 * parent by the caller through the return value check). Inline, as
 * fli_leaf: an estimate builds a dozen nodes, and the calls were a tenth of
 * it. */
static inline int fli_node(fli_est *e, int parent, const char *name, const char *detail, double repeat)
{
    fl_info_result *r = e->r;
    if (r->n_nodes >= FL_INFO_MAX_NODES)
        return -1;
    int i = r->n_nodes++;
    r->nodes[i] = (fl_info_node){.name = name,
                                 .detail = detail,
                                 .parent = parent,
                                 .depth = parent >= 0 ? r->nodes[parent].depth + 1 : 0,
                                 .repeat = repeat >= 1 ? repeat : 1,
                                 .bound = FL_INFO_BOUND_LATENCY,
                                 .tier = FL_INFO_TIER_MEASURED}; /* tier: lowered by its leaves */
    return i;
}

/* Adds to a leaf's totals (node < 0: nothing). */
static inline void fli_leaf(fli_est *e, int node, double ms, double flops, double bytes, double launches,
                            fl_info_bound b, fl_info_tier t)
{
    if (node < 0)
        return;
    fl_info_node *n = &e->r->nodes[node];
    n->runtime_ms += ms;
    n->flops += flops;
    n->hbm_bytes += bytes;
    n->launches += launches;
    n->bound = b;
    if (t < n->tier)
        n->tier = t;
}
/* Sums children into parents (pre-order tree, reverse walk); a parent takes
 * the weakest tier of its children and the bound of its costliest child. */
void fli_rollup(fli_est *e);
void fli_note(fli_est *e, const char *note);
/* Scales every leaf so the total equals a measurement of this exact shape,
 * and marks the estimate measured (the split into parts stays the model's). */
void fli_scale_to_measured(fli_est *e, double measured_ms);

/* Parameter access (name must exist in the op's tables). */
double fli_p_num(const fli_est *e, const char *name);
int fli_p_word(const fli_est *e, const char *name);
int fli_p_given(const fli_est *e, const char *name);
/* The same by index: the op's table first, then its info-only table. */
double fli_p_num_i(const fli_est *e, int i);
int fli_p_word_i(const fli_est *e, int i);
int fli_pset_parse(fli_est *e, const char *params);
/* The value of parameter `name` of `op` given `params` (defaults applied). */
int fli_param_value(const char *op, const char *params, const char *name, double *out);

/* ---- roofline --------------------------------------------------------- */

/* Efficiency classes: attainable fraction of the device ceiling. */
typedef enum fli_class {
    FLI_CLASS_GEMM = 0,   /* large dense GEMM (cuBLAS-like)              */
    FLI_CLASS_FUSED = 1,  /* fused distance + reduction (kmeans, knn)    */
    FLI_CLASS_STREAM = 2, /* elementwise / reductions, coalesced          */
    FLI_CLASS_GATHER = 3, /* irregular gathers, graphs, trees             */
    FLI_CLASS_SOLVER = 4, /* factorisations (panel + update)              */
} fli_class;

/* Sustained compute rate (TFLOP/s) of precision p for class c on dev. */
double fli_rate(const fl_info_device *dev, fl_info_prec p, fli_class c);
/* Sustained memory bandwidth (GB/s) for class c. */
double fli_bw(const fl_info_device *dev, fli_class c);
/* Roofline time in ms: max(compute, memory) + launches x launch latency;
 * *bound receives which term dominates. */
double fli_roof_ms(const fl_info_device *dev, double flops, double rate_tflops, double bytes, double bw_gbs,
                   double launches, fl_info_bound *bound);
/* Tier of a roofline number on dev: roofline with datasheet peaks,
 * heuristic with nominal ones (the generic CPU). */
fl_info_tier fli_roof_tier(const fl_info_device *dev);
/* Adds a roofline leaf and returns its runtime. */
double fli_roof_leaf(fli_est *e, int parent, const char *name, const char *detail, double repeat,
                     double flops, fl_info_prec p, fli_class c, double bytes, double launches,
                     fl_info_tier cap);

/* Overflow-checked byte counts for the shape checks: 0 on overflow. */
int fli_bytes_ok(fli_est *e, double bytes, const char *what);

/* Precision of a dtype for arithmetic on dev. */
fl_info_prec fli_dtype_prec(fl_dtype dt);
size_t fli_dtype_bytes(fl_dtype dt);
const char *fli_dtype_canon(fl_dtype dt);
int fli_dtype_parse(const char *s, fl_dtype *out);

/* ---- devices ------------------------------------------------------------ */
const fl_info_device *fli_device_lookup(const char *name);
/* Properties routing needs, from the table (Hopper parts with their fast
 * path enabled, as on a machine without FL_DISABLE_SM90). */
void fli_device_hw(const fl_info_device *dev, fl_hw_props *hw);

/* ---- calibration ------------------------------------------------------ */

typedef struct fli_calib_entry {
    const char *op, *variant, *dtype, *device;
    int n_coef;
    double coef[24];            /* the most of any model (kNN: 17)     */
    double median_err, p90_err; /* on held-out shapes, fractions      */
    int n_fit, n_holdout;
    const char *describe; /* "H100-SXM 2026-..: ..."            */
} fli_calib_entry;

typedef struct fli_calib_point {
    const char *op, *variant, *dtype, *device;
    int64_t key[6]; /* op-specific: kmeans n,d,k,iter,init,input */
    double ms;
    const char *source;
} fli_calib_point;

typedef struct fli_calib_anchor {
    const char *op, *ref, *where, *device;
    int ndim;
    int64_t shape[FL_INFO_MAX_DIMS];
    const char *params;
    double ms;
    const char *source;
} fli_calib_anchor;

const fli_calib_entry *fli_calib_find(const char *op, const char *variant, const char *dtype,
                                      const char *device);
const fli_calib_point *fli_calib_point_find(const char *op, const char *variant, const char *dtype,
                                            const char *device, const int64_t key[6]);
const fli_calib_anchor *fli_calib_anchor_find(const char *op, const char *ref, int i);
/* Coefficients for a model: the override, a calibration entry (setting
 * *tier and *entry) or the roofline defaults `def`. With def NULL it
 * returns NULL where the defaults would be used (the tier set), so a
 * caller computes them only then. */
const double *fli_calib_coefs(fli_est *e, const char *op, const char *variant, const char *dtype,
                              const double *def, int n, fl_info_tier *tier, const fli_calib_entry **entry);

/* ---- what the op models share ------------------------------------------ */

/* A parameter's default as the generic reader (fli_p_num_i / fli_p_word_i)
 * turns its text into a number (NaN for a word) and a word index (-1 for a
 * number): an op that reads its parameters by index keeps a table of these,
 * so an estimate parses no default text. tests/c/test_info.c checks each
 * table against the op's parameter table (defaults spelled out == unset). */
typedef struct fli_pdefault {
    double num;
    int word;
} fli_pdefault;

/* Parameter i as given, else its default (what fli_p_num_i / fli_p_word_i
 * return). */
static inline double fli_pd_num(const fli_est *e, const fli_pdefault *def, int i)
{
    if (e->ps.set & (1u << i))
        return e->ps.word[i] >= 0 ? NAN : e->ps.num[i];
    return def[i].num;
}

static inline int fli_pd_word(const fli_est *e, const fli_pdefault *def, int i)
{
    return e->ps.set & (1u << i) ? e->ps.word[i] : def[i].word;
}

/* The cost model's precision of an execution precision (fli_precision). */
fl_info_prec fli_prec_info(int precision);
/* Copies a model's n coefficient names and roofline values out (either
 * pointer may be NULL) and returns n: the fli_<op>_coefs answer. */
int fli_coefs_out(const char *const *coef_names, const double *c, int n, const char **names, double *def);

/* ---- op estimators (one per file group) ----------------------------------- */
#define FLI_KMEANS_N_XPARAMS 5
extern const fl_param_def fli_kmeans_xparams[]; /* info-only parameters of kmeans */
int fli_est_kmeans(fli_est *e);
int fli_kmeans_coefs(const char *variant, const fl_info_device *dev, const char **names, double *def);
int fli_est_gemm(fli_est *e);
/* the approximate indexes (op_ann.c): info-only n_queries, phase and force_gpu */
#define FLI_ANN_N_XPARAMS 3
extern const fl_param_def fli_ann_xparams[];
int fli_est_ivf_flat(fli_est *e);
int fli_est_ivf_pq(fli_est *e);
int fli_est_cagra(fli_est *e);
/* the GPU searches' coefficients of ivf_flat (variant fp32), ivf_pq (pq)
 * and cagra (graph) */
int fli_ann_coefs(const char *op, const char *variant, const fl_info_device *dev, const char **names,
                  double *def);
int fli_gemm_coefs(const char *variant, const fl_info_device *dev, const char **names, double *def);
/* eigh / polar variants on the GPU (op_linalg.c), PCA / TruncatedSVD solvers (op_decomp.c) */
int fli_solver_coefs(const char *variant, const fl_info_device *dev, const char **names, double *def);
int fli_decomp_coefs(const char *variant, const fl_info_device *dev, const char **names, double *def);
#define FLI_KNN_N_XPARAMS 4
extern const fl_param_def fli_knn_xparams[]; /* info-only parameters of knn */
int fli_est_knn(fli_est *e);
int fli_knn_coefs(const char *variant, const fl_info_device *dev, const char **names, double *def);
/* Runs the estimator of `opname` for a child node: its tree is grafted
 * under `parent` (scaled by `repeat`) and its runtime returned (< 0 on
 * error, with the message in e). */
double fli_child(fli_est *e, int parent, const char *label, const char *opname, const int64_t *shape,
                 int ndim, const char *params, double repeat);

/* The estimate of one variant (pareto, tol choice). */
int fli_estimate_variant(const char *op, const char *variant, const int64_t *shape, int ndim,
                         const char *params, const char *dtype, const char *device, fl_info_result *out,
                         char *err, size_t err_len);

/* Variant families for pareto / tol choice. */
typedef struct fli_variant_def {
    const char *name;
    const char *op; /* op name estimated for it */
} fli_variant_def;
int fli_family_variants(const char *family, const fli_variant_def **out);
double fli_variant_residual(const char *variant, const fli_est *e, const char **source);

/* Tiny appender for the formatters. */
typedef struct fli_buf {
    char *p;
    size_t len, used;
} fli_buf;
void fli_bprintf(fli_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fli_bjson_str(fli_buf *b, const char *s);

#endif
