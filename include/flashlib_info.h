/*
 * flashlib_info.h — flashlib's cost model: what an operation will cost on a
 * given GPU (or the CPU) before running it, from the CPU alone.
 *
 * The library behind this header (libflashlib_info.so, also compiled into
 * libflashlib) depends on nothing but libc and libm: it never loads CUDA,
 * never allocates, has no global mutable state, and every function may be
 * called concurrently from any number of threads.
 *
 * For an operation, a shape, parameters, a dtype and a device name it gives
 * runtime, FLOPs, HBM bytes, peak memory, the bound (compute, memory,
 * latency or the host link), achieved throughput and its share of peak, the
 * backend and variant routing would pick (computed by the same routing code
 * that execution calls), a confidence tier and a tree of sub-operations.
 *
 * Confidence tiers are derived from data, never asserted:
 *   measured    this exact shape was timed on this device by bench/calib;
 *   calibrated  the model's coefficients were fitted to timings of this
 *               (op, variant, dtype, device) and its median error on shapes
 *               held out of the fit is <= 20%;
 *   roofline    device peaks x a per-class efficiency;
 *   heuristic   anything weaker (nominal peaks, data-dependent work, or a
 *               calibration whose held-out error is > 20%).
 * A compound estimate carries the weakest tier of its parts, except that a
 * whole-op measurement is a measurement.
 *
 * Return values: 0 on success, FL_INFO_EINVAL (-1, the value of
 * FL_STATUS_INVALID_ARG) for bad input: unknown op, device, dtype or
 * parameter (the message names the nearest valid one), sizes < 1, a shape
 * whose byte counts overflow 64 bits, a value out of range. On error the
 * message is copied into err[0..err_len) when err is non-NULL and the
 * outputs are left untouched.
 */
#ifndef FLASHLIB_INFO_H
#define FLASHLIB_INFO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FL_INFO_BUILDING) || defined(FL_BUILDING_LIBRARY)
#define FL_INFO_API __attribute__((visibility("default")))
#else
#define FL_INFO_API
#endif

#define FL_INFO_OK 0
#define FL_INFO_EINVAL (-1)

#define FL_INFO_MAX_DIMS 4   /* longest shape accepted                  */
#define FL_INFO_MAX_NODES 24 /* sub-operation tree, root included       */
#define FL_INFO_MAX_NOTES 12
#define FL_INFO_MAX_REFS 4

typedef enum fl_info_bound {
    FL_INFO_BOUND_COMPUTE = 0,  /* arithmetic units                          */
    FL_INFO_BOUND_MEMORY = 1,   /* device memory bandwidth (HBM / DRAM)       */
    FL_INFO_BOUND_LATENCY = 2,  /* launches, synchronisation, serial steps    */
    FL_INFO_BOUND_TRANSFER = 3, /* the host-device link (PCIe / NVLink-C2C)   */
} fl_info_bound;

/* Ordered weakest first, so a compound takes the minimum of its parts. */
typedef enum fl_info_tier {
    FL_INFO_TIER_HEURISTIC = 0,
    FL_INFO_TIER_ROOFLINE = 1,
    FL_INFO_TIER_CALIBRATED = 2,
    FL_INFO_TIER_MEASURED = 3,
} fl_info_tier;

/* Precisions of the device table's peaks. */
typedef enum fl_info_prec {
    FL_INFO_PREC_FP64 = 0,    /* FP64 on the CUDA cores (SIMT)            */
    FL_INFO_PREC_FP64_TC = 1, /* FP64 tensor cores (DMMA)                 */
    FL_INFO_PREC_FP32 = 2,    /* FP32 SIMT                                */
    FL_INFO_PREC_TF32 = 3,    /* tensor cores, dense                      */
    FL_INFO_PREC_BF16 = 4,    /* tensor cores, fp32 accumulation, dense   */
    FL_INFO_PREC_FP16 = 5,    /* tensor cores, fp32 accumulation, dense   */
    FL_INFO_PREC_FP8 = 6,     /* tensor cores, dense                      */
    FL_INFO_PREC_INT8 = 7,    /* tensor cores, dense (TOPS)               */
    FL_INFO_NPREC = 8,
} fl_info_prec;

/* One node of the sub-operation tree. Nodes are stored in pre-order; the
 * root (the operation itself) is node 0 with parent -1. String members
 * point to static text. */
typedef struct fl_info_node {
    const char *name;   /* "init (k-means++)", "assign (distance+argmin)" */
    const char *detail; /* one line on what it models, or NULL          */
    int32_t parent;     /* index of the parent node, -1 for the root    */
    int32_t depth;      /* 0 for the root                               */
    double repeat;      /* times it runs in the whole call (>= 1)       */
    double runtime_ms;  /* all repeats together                         */
    double flops;       /* all repeats together                         */
    double hbm_bytes;   /* device-memory traffic, all repeats           */
    double launches;    /* kernel launches, all repeats                 */
    fl_info_bound bound;
    fl_info_tier tier;
} fl_info_node;

/* An estimate. Plain data: copy it, keep it, free nothing. */
typedef struct fl_info_result {
    const char *op;     /* canonical op name                                */
    const char *device; /* canonical device name ("H100-SXM", "cpu")        */
    const char *dtype;  /* canonical dtype of the data ("f32")              */
    int32_t ndim;
    int64_t shape[FL_INFO_MAX_DIMS];

    double runtime_ms; /* predicted wall time of the call                  */
    double flops;      /* useful arithmetic (the algorithm's, not padding)  */
    double hbm_bytes;  /* device-memory traffic                             */
    double iterations; /* iterations assumed per run (0: not iterative)     */
    /* Peak memory on the device that runs it (host RAM for the CPU), and
     * the host scratch beside it. peak_memory_exact = 1 when both come from
     * the primitive's own planning code (the buffers execution allocates). */
    uint64_t peak_memory_bytes;
    uint64_t peak_host_bytes;
    int32_t peak_memory_exact;
    int32_t fits_in_memory; /* 0: peak_memory_bytes exceeds the device */

    fl_info_bound bound;
    double achieved_tflops; /* flops / runtime                             */
    double achieved_gbs;    /* hbm_bytes / runtime                         */
    double peak_share;      /* achieved / peak of the bounding resource    */
    double peak_value;      /* that peak, in TFLOP/s or GB/s               */
    const char *peak_what;  /* "tf32 tensor dense (datasheet)", ...        */

    double expected_residual; /* relative error of the output; < 0 unknown */
    int32_t implemented;      /* 1: flashlib executes this op today        */
    char backend[16];         /* routing's choice: "cpu", "cuda", "cuda-sm90",
                                 or "none" when the op does not exist yet   */
    char variant[32];         /* "tf32", "gemm_3xbf16", ...                 */
    char reason[256];         /* the rule that chose them                   */

    fl_info_tier tier;
    const char *calibration; /* the calibration entry used (its fit and
                                held-out errors), or NULL                */
    const char *model_key;   /* the model's calibration key: the variant and
                                the kernels that run ("tf32-fused"), or NULL */
    int32_t n_nodes;
    fl_info_node nodes[FL_INFO_MAX_NODES];
    int32_t n_notes;
    const char *notes[FL_INFO_MAX_NOTES];
} fl_info_result;

/*
 * Estimates `op` (see fl_info_op_at for the names and their shape
 * conventions: "kmeans" takes n_samples x n_features, "gemm" M x K x N...).
 *   shape, ndim: the data's dimensions, each >= 1, ndim in [1, 4].
 *   params: "name=value" pairs separated by commas, semicolons or spaces,
 *     by scikit-learn name or an alias the parameter table lists
 *     ("K=256 max_iters=20" == "n_clusters=256,max_iter=20"); NULL or ""
 *     = defaults. Besides the primitive's own parameters every op accepts
 *     a few that only describe the situation (kmeans: input=host|device,
 *     expected_iter, threads; gemm: tol, variant); fl_info_op_params lists
 *     them.
 *   dtype: "f32" (also float32, fp32), "f64", "f16", "bf16"; NULL = "f32".
 *   device: a device of the table or one of its aliases ("H100", "H200",
 *     "A100-80GB", "cpu"...), case-insensitive, or "this" (this machine's
 *     first NVIDIA GPU, read from /proc/driver/nvidia without loading
 *     CUDA; when there is none, the CPU with this machine's core count,
 *     where "cpu" is the table's nominal 16-core part). NULL = "H100".
 * Fills *out. Takes well under a microsecond for a primitive.
 */
FL_INFO_API int fl_info_estimate(const char *op, const int64_t *shape, int ndim, const char *params,
                                 const char *dtype, const char *device, fl_info_result *out, char *err,
                                 size_t err_len);

/* Formatters. Each writes at most len bytes (always NUL-terminated when
 * len > 0) and returns the length the full text needs, excluding the NUL,
 * as snprintf does: call again with a larger buffer when the return value
 * is >= len. */
/* One line: "kmeans 100000x64 on H200: 1.23 ms, memory-bound, ..." */
FL_INFO_API size_t fl_info_summary(const fl_info_result *r, char *buf, size_t len);
/* The sub-operation tree, one node a line, with runtime, share, bound and
 * tier, followed by the notes. */
FL_INFO_API size_t fl_info_tree(const fl_info_result *r, char *buf, size_t len);
/* The whole result as one JSON object. */
FL_INFO_API size_t fl_info_json(const fl_info_result *r, char *buf, size_t len);

/* Names of the enums ("memory", "calibrated", "bf16"); "?" when unknown. */
FL_INFO_API const char *fl_info_bound_name(fl_info_bound b);
FL_INFO_API const char *fl_info_tier_name(fl_info_tier t);
FL_INFO_API const char *fl_info_prec_name(fl_info_prec p);

/* ---- variants: Pareto fronts and tolerance-driven choice ----------------- */

typedef struct fl_info_variant {
    const char *name; /* "gemm_3xbf16"                            */
    double runtime_ms;
    double expected_residual;    /* RMS relative error of the output         */
    const char *residual_source; /* "model: ..." until measured             */
    fl_info_tier tier;           /* of the runtime                            */
    int32_t dominated;           /* another variant is as fast and as accurate,
                                    and strictly better in one                */
} fl_info_variant;

/*
 * The variants of `family` ("gemm", "eigh", "polar") for this shape, sorted
 * by runtime. Without include_dominated only the Pareto front (runtime vs
 * expected residual) is returned. At most `cap` entries are written;
 * *n_out receives how many there are in all.
 * `estimate(op, ..., "tol=1e-3")` picks, by the same rule, the cheapest
 * variant whose expected residual is <= tol.
 */
FL_INFO_API int fl_info_pareto(const char *family, const int64_t *shape, int ndim, const char *params,
                               const char *dtype, const char *device, int include_dominated,
                               fl_info_variant *out, int cap, int *n_out, char *err, size_t err_len);

/* ---- comparison with what users would run otherwise ---------------------- */

typedef struct fl_info_reference {
    const char *name;  /* "scikit-learn", "pytorch"                     */
    const char *where; /* what it ran on at the anchor                  */
    int32_t measured;  /* 0: no anchor measured: the numbers below are 0 */
    double runtime_ms; /* anchor_ms x scale                              */
    double speedup;    /* runtime_ms / flashlib's estimate              */
    double anchor_ms;  /* measured at the anchor                         */
    int32_t anchor_ndim;
    int64_t anchor_shape[FL_INFO_MAX_DIMS];
    const char *anchor_params; /* parameters of the anchor run               */
    const char *anchor_device; /* device it was measured on                  */
    const char *anchor_source; /* file and date of the measurement           */
    const char *scaling;       /* the complexity model ("n*d*k*iterations")  */
    double scale;              /* model(shape) / model(anchor)               */
} fl_info_reference;

typedef struct fl_info_comparison {
    fl_info_result flashlib;
    int32_t n_refs;
    fl_info_reference refs[FL_INFO_MAX_REFS];
} fl_info_comparison;

/* flashlib's estimate beside the references the calibration harness
 * measured at anchor shapes, scaled to this shape by the op's complexity
 * model. A reference without a measured anchor says so (measured = 0). */
FL_INFO_API int fl_info_compare(const char *op, const int64_t *shape, int ndim, const char *params,
                                const char *dtype, const char *device, fl_info_comparison *out, char *err,
                                size_t err_len);

/* ---- the device table ---------------------------------------------------- */

typedef struct fl_info_device {
    const char *name;        /* "H100-SXM"                                   */
    const char *aliases;     /* "H100|H100-SXM5|H100SXM" (case-insensitive)  */
    const char *description; /* "NVIDIA H100 SXM5 80GB HBM3"                 */
    int32_t is_gpu;
    int32_t sm_major, sm_minor, sm_count;
    int64_t l2_bytes, memory_bytes, smem_per_sm_bytes;
    double hbm_gbs;                        /* memory bandwidth, datasheet               */
    double copy_gbs;                       /* measured copy bandwidth (read + write), 0 = not measured */
    double h2d_gbs;                        /* host-to-device link, one direction        */
    double launch_us;                      /* kernel launch + dependency gap assumed     */
    double peak_tflops[FL_INFO_NPREC];     /* dense datasheet peaks; 0 = none */
    double measured_tflops[FL_INFO_NPREC]; /* measured ceilings; 0 = none     */
    const char *peak_source;               /* where the datasheet figures come from  */
    const char *measured_source;           /* where the measured ceilings come from  */
    const char *memory_source;             /* bandwidth / capacity source             */
} fl_info_device;

FL_INFO_API int fl_info_device_count(void);
/* Row i (0 <= i < count), NULL otherwise. Static storage. */
FL_INFO_API const fl_info_device *fl_info_device_at(int i);
/* By name or alias, case-insensitive; "this" as for fl_info_estimate.
 * NULL for an unknown name. */
FL_INFO_API const fl_info_device *fl_info_device_find(const char *name);

/* ---- the operations ------------------------------------------------------ */

typedef struct fl_info_op {
    const char *name;      /* "kmeans"                                       */
    const char *family;    /* "clustering", "linear algebra", ...            */
    const char *shape_doc; /* "n_samples x n_features"                       */
    const char *summary;   /* one line: what the model counts                */
    int32_t implemented;   /* flashlib executes it today                     */
    int32_t min_ndim, max_ndim;
} fl_info_op;

FL_INFO_API int fl_info_op_count(void);
FL_INFO_API const fl_info_op *fl_info_op_at(int i);
/* Parameter i of `op`: name, default (text), aliases ("K|k" or NULL), doc,
 * and whether it only describes the situation (1) rather than being a
 * parameter of the primitive (0). Returns 0, or -1 past the end or for an
 * unknown op. */
FL_INFO_API int fl_info_op_param(const char *op, int i, const char **name, const char **default_value,
                                 const char **aliases, const char **doc, int *info_only);

/* ---- calibration entries compiled in ------------------------------------- */

typedef struct fl_info_calibration {
    const char *op, *variant, *dtype, *device;
    double median_err; /* median |estimate - measured| / measured on held-out shapes */
    double p90_err;    /* its 90th percentile                                      */
    int32_t n_fit, n_holdout;
    int32_t calibrated;   /* median_err <= 20%: estimates using it say "calibrated"   */
    const char *describe; /* when, where and how it was measured                       */
} fl_info_calibration;

/* Entry i of the calibration table (0 <= i < count); returns 0, or -1 past
 * the end. Each entry's held-out errors are published with it. */
FL_INFO_API int fl_info_calibration_at(int i, fl_info_calibration *out);

/* ---- for the calibration harness (bench/calib) --------------------------- */

/*
 * The runtime the model of (op, variant) predicts on `device` with the
 * coefficients `coef` instead of the compiled-in ones: the fitting code
 * calls the very formula estimates use. fl_info_model_coefs describes the
 * coefficients (names, units, roofline defaults for the device).
 * variant: KMeans "fp32|tf32|bf16|fp16"; GEMM "gemm_fp32", ...
 */
FL_INFO_API int fl_info_model_eval(const char *op, const char *variant, const int64_t *shape, int ndim,
                                   const char *params, const char *dtype, const char *device,
                                   const double *coef, int n_coef, double *runtime_ms, char *err,
                                   size_t err_len);
/* Number of coefficients of the model of (op, variant) (or -1), and, when
 * names/defaults are non-NULL, their names and the roofline values for
 * `device` (arrays of at least that many entries). */
FL_INFO_API int fl_info_model_coefs(const char *op, const char *variant, const char *device,
                                    const char **names, double *defaults);

/* sizeof the public structures ("result", "node", "variant", "reference",
 * "comparison", "device", "calibration"), 0 for another name: bindings
 * check their layouts against the library they loaded. */
FL_INFO_API size_t fl_info_sizeof(const char *type);

#ifdef __cplusplus
}
#endif
#endif /* FLASHLIB_INFO_H */
