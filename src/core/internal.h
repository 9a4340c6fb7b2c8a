/*
 * internal.h — what the layers of libflashlib share and users never see:
 * the context, error reporting, host allocation, the RNG, the algorithm
 * registry and the model's attribute store. Internal symbols use `fli_`.
 */
#ifndef FL_INTERNAL_H
#define FL_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "flashlib.h"

/* Hot host loops get an AVX2 clone chosen at load time (the library itself
 * is built for the baseline x86-64 so it runs everywhere). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FLI_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FLI_VECTOR_CLONES
#endif

#define FLI_ERR_LEN 1024
#define FLI_MAX_PARAMS 32
#define FLI_MAX_ATTRS 16
#define FLI_ATTR_NAME_LEN 32

struct fli_cuda_api;
struct fli_cuda_env;

/* ---- context ---------------------------------------------------------- */
typedef enum fli_device_kind {
    FLI_DEVICE_AUTO = 0,
    FLI_DEVICE_CPU = 1,
    FLI_DEVICE_CUDA = 2,
} fli_device_kind;

struct fl_ctx {
    fli_device_kind kind;
    int32_t device_id;   /* CUDA device for kind CUDA (and for AUTO once resolved) */
    int auto_resolved;   /* AUTO: probed the GPU already                          */
    int auto_has_gpu;    /* AUTO: result of the probe                             */
    char device_str[16]; /* "cpu" / "cuda:N" after resolution                     */
    int threads;
    uint64_t seed;
    fl_log_level verbosity;
    fl_progress_fn progress;
    void *progress_user;
    fl_log_fn log;
    void *log_user;
    fl_host_allocator halloc; /* alloc == NULL: default aligned malloc */
    fl_device_allocator dalloc;
    int have_dalloc;
    int disable_sm90;           /* FL_DISABLE_SM90, read at creation */
    int km_rescore;             /* FL_KM_RESCORE (default 1), read at creation */
    int km_fused;               /* FL_KM_FUSED (default 0), read at creation */
    int h2d_staging;            /* FL_H2D_STAGING (default 1): host -> device copies through pinned
                                   staging; 0 copies from pageable memory (A/B), read at creation */
    int cuda_pool;              /* FL_CUDA_POOL (default 1): the CUDA module's device buffers from its
                                   stream-ordered pool; 0 cudaMalloc / cudaFree each call (A/B) */
    int decomp_la;              /* FL_DECOMP_LA (default 0): randomized decomposition via fli_la on the CPU */
    int pca_full_eigh;          /* FL_PCA_FULL_EIGH=1: GPU covariance_eigh always solves every eigenpair
                                   (cuSOLVER syevd) instead of the top-k solver (A/B) */
    int topk_mode;              /* the top-k solver's fli_la_topk_eigh mode: FL_TOPK_ORTH, its
                                   orthonormalisation, FLI_TOPK_ORTH_* ("wait": each Cholesky waited on,
                                   A/B; "redo": always redone, a test), | FLI_TOPK_HOST_LAPACK when
                                   FL_TOPK_HOST=lapack (A/B) */
    int pca_product;            /* FL_PCA_PRODUCT: GPU covariance_eigh's product, a fli_pca_cov_job
                                   variant (3xtf32 4, 3xbf16 5, fp32 1); 0 = the module's default */
    char cuda_module_path[512]; /* FL_CUDA_MODULE, read at creation ("" = default) */
    int hw_cached;              /* hw holds the props of device_id (read once) */
    fl_hw_props hw;
    /* CUDA module state, created on first GPU use */
    const struct fli_cuda_api *cuda;
    struct fli_cuda_env *cuda_env;
    char err[FLI_ERR_LEN];
};

/* Records a message on ctx (NULL accepted) and returns `status`. */
fl_status fli_fail(fl_ctx *ctx, fl_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fli_clear_error(fl_ctx *ctx);
void fli_log(fl_ctx *ctx, fl_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Progress: returns FL_STATUS_CANCELLED (with a message) when the callback
 * asks to stop, else FL_STATUS_OK. */
fl_status fli_progress(fl_ctx *ctx, const char *stage, int64_t done, int64_t total);

/* Host memory through the context's hooks. fli_malloc records an
 * out-of-memory message naming `what`. */
void *fli_malloc(fl_ctx *ctx, size_t bytes, const char *what);
void *fli_calloc(fl_ctx *ctx, size_t count, size_t size, const char *what);
void fli_free(fl_ctx *ctx, void *p);
/* A dense float32 copy of a host float64 matrix (ld = cols), through the
 * hooks; NULL (with the message) when out of memory. The GPU paths, which
 * compute in float32, take float64 host input through it. */
float *fli_host_f32_copy(fl_ctx *ctx, const fl_array *A);
/* Overflow-checked a*b (returns 0 and sets *out on success). */
int fli_mul_overflow(size_t a, size_t b, size_t *out);

/* ---- RNG: splitmix64 seeding + xoshiro256** ------------------------------ */
typedef struct fli_rng {
    uint64_t s[4];
} fli_rng;
void fli_rng_seed(fli_rng *r, uint64_t seed);
uint64_t fli_rng_next(fli_rng *r);
double fli_rng_uniform(fli_rng *r);           /* [0, 1) */
int64_t fli_rng_below(fli_rng *r, int64_t n); /* [0, n) unbiased */

/* ---- parameters ------------------------------------------------------------ */
typedef struct fli_param_value {
    int64_t i;
    double f;
    int word; /* index into the CHOICE list or the extra words; -1 = numeric */
} fli_param_value;

struct fli_algo;
struct fl_params {
    const struct fli_algo *algo;
    fli_param_value v[FLI_MAX_PARAMS];
    double *init_array; /* optional host array parameter (KMeans init), f64 */
    int64_t init_rows, init_cols;
};

/* Index of parameter `name` (or one of its aliases) in algo's table, or -1. */
int fli_param_index(const struct fli_algo *algo, const char *name);
/* Typed reads by name; the name must exist (internal use). */
int64_t fli_param_int(const fl_params *p, const char *name);
double fli_param_float(const fl_params *p, const char *name);
/* Word index for CHOICE params or INT/FLOAT extra words (-1 = numeric). */
int fli_param_word(const fl_params *p, const char *name);
fl_status fli_params_init_defaults(fl_ctx *ctx, fl_params *p, const struct fli_algo *algo);

/* ---- models ---------------------------------------------------------------- */
typedef struct fli_attr {
    char name[FLI_ATTR_NAME_LEN];
    fl_dtype dtype;
    int64_t rows, cols;
    void *data; /* host, dense rows x cols */
} fli_attr;

struct fl_model {
    fl_ctx *ctx;
    const struct fli_algo *algo;
    fl_params *params;
    int fitted;
    int n_attrs;
    fli_attr attrs[FLI_MAX_ATTRS];
    /* Identifies the attribute set: every install (fit, add, load) draws a
     * fresh value from one process-wide counter, never 0 and never reused,
     * so a backend that caches a copy of the attributes (the CUDA module's
     * device-resident IVF lists) knows when its copy is stale. */
    uint64_t generation;
};

/* A set of attributes under construction: fit fills one and the model swaps
 * it in only on success, so a failed refit leaves the old fit intact. */
typedef struct fli_attr_set {
    int n;
    fli_attr a[FLI_MAX_ATTRS];
} fli_attr_set;

fl_status fli_attr_add(fl_ctx *ctx, fli_attr_set *set, const char *name, fl_dtype dtype, int64_t rows,
                       int64_t cols, void **data_out);
void fli_attr_set_free(fl_ctx *ctx, fli_attr_set *set);
const fli_attr *fli_model_attr(const fl_model *m, const char *name);
const fli_attr *fli_attr_find(const fli_attr_set *set, const char *name);
fl_status fli_model_adopt(fl_model *m, fli_attr_set *set);

/* ---- algorithm registry ------------------------------------------------------ */
typedef struct fli_algo {
    const char *name;
    const fl_param_def *params;
    int n_params;
    const char *const *attr_names; /* NULL-terminated */
    /* Validation of the whole parameter set (cross-parameter rules). */
    fl_status (*check_params)(fl_ctx *ctx, const fl_params *p);
    fl_status (*fit)(fl_model *m, const fl_array *X, const fl_array *y, const fl_array *w, fli_attr_set *out);
    fl_status (*predict)(fl_model *m, const fl_array *X, fl_array *out);
    fl_status (*transform)(fl_model *m, const fl_array *X, fl_array *out);
    fl_status (*score)(fl_model *m, const fl_array *X, const fl_array *y, const fl_array *w, double *out);
    fl_status (*inverse_transform)(fl_model *m, const fl_array *X, fl_array *out); /* NULL: none */
    fl_status (*score_samples)(fl_model *m, const fl_array *X, fl_array *out);     /* NULL: none */
    /* Consistency of a loaded attribute set with the parameters (shapes,
     * ranges), so a crafted file with a valid checksum still cannot make
     * later calls read out of bounds. */
    fl_status (*check_attrs)(fl_ctx *ctx, const fl_params *p, const fli_attr_set *set);
    /* The label attribute fit_predict returns (NULL: predict after fit). */
    const char *fit_labels_attr;
    /* Neighbour searches of a fitted model (NULL: the model has none). The
     * model layer checked m is fitted; X NULL = the training set with each
     * point excluded from its own neighbours; k >= 1 (the model's
     * n_neighbors already substituted for <= 0); radius already resolved. */
    fl_status (*kneighbors)(fl_model *m, const fl_array *X, int64_t k, fl_array *dist, fl_array *idx);
    fl_status (*radius_neighbors)(fl_model *m, const fl_array *X, double radius, int sort, fl_neighbors *out);
    /* Adds rows to a fitted index (NULL: the model takes none). It builds a
     * fresh attribute set and adopts it only on success. */
    fl_status (*add)(fl_model *m, const fl_array *X);
    /* Parameters a fitted model may change without a refit (search knobs
     * such as n_probes), NULL-terminated; NULL: none. */
    const char *const *search_params;
} fli_algo;

const fli_algo *fli_algo_find(const char *name);
extern const fli_algo fli_algo_kmeans;
extern const fli_algo fli_algo_pca;
extern const fli_algo fli_algo_truncated_svd;
extern const fli_algo fli_algo_knn;
extern const fli_algo fli_algo_ivf_flat;
extern const fli_algo fli_algo_ivf_pq;
extern const fli_algo fli_algo_cagra;
/* "kmeans, pca, ..." for messages that list the known algorithms. */
const char *fli_algo_list(void);

/* ---- arrays ---------------------------------------------------------------- */
/* Validates a descriptor: non-NULL data (unless empty), known dtype, ld >=
 * cols, memory space. `what` names it in messages ("X"). */
fl_status fli_check_array(fl_ctx *ctx, const fl_array *a, const char *what);
static inline int64_t fli_ld(const fl_array *a)
{
    return a->ld ? a->ld : a->cols;
}
/* Checks that every element of a host f32/f64 matrix is finite. */
fl_status fli_check_finite(fl_ctx *ctx, const fl_array *a, const char *what);
/* Training or input data: a valid f32/f64 descriptor, at least 1 x 1,
 * finite when on the host. */
fl_status fli_check_data(fl_ctx *ctx, const fl_array *X, const char *what);
/* An output descriptor of exactly dtype dt and rows x cols (I32: ld 1). */
fl_status fli_check_out(fl_ctx *ctx, const fl_array *out, fl_dtype dt, int64_t rows, int64_t cols,
                        const char *what);

/* ---- CUDA module ------------------------------------------------------------- */
/* Loads the module and initialises its per-context state on first use.
 * FL_STATUS_NO_DEVICE with a message when no GPU or no module. */
fl_status fli_cuda_acquire(fl_ctx *ctx, const struct fli_cuda_api **api, struct fli_cuda_env **env);
void fli_cuda_release_ctx(fl_ctx *ctx);
/* Which backend a context runs on right now: FL_BACKEND_CPU or CUDA. For
 * "auto" this probes the GPU once. */
int fli_ctx_wants_gpu(fl_ctx *ctx);
/* Whether this context computes on a GPU (*gpu, with its props in *hw):
 * "auto" without a usable one and "cpu" give 0; "cuda" without a usable
 * one is FL_STATUS_NO_DEVICE (or the module's error) saying why. */
fl_status fli_ctx_gpu(fl_ctx *ctx, fl_hw_props *hw, int *gpu);
/* Device of a pointer: -1 host, else CUDA device. Host-only builds: -1. */
int32_t fli_array_device(const fl_array *a);
/* Copies `bytes` between host (-1) and device memory. */
fl_status fli_copy(fl_ctx *ctx, void *dst, int32_t dst_dev, const void *src, int32_t src_dev, size_t bytes);

/* Hardware props of the context's GPU (zeros and returns 0 if none). */
int fli_ctx_hw(fl_ctx *ctx, fl_hw_props *out);
fl_status fli_hw_query(int32_t device_id, int disable_sm90, fl_hw_props *out, char *why, size_t why_len);
int fli_hw_device_count(const char **why);

#endif
