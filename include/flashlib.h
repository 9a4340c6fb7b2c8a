/*
 * flashlib.h — the public C API of flashlib.
 *
 * flashlib is GPU-accelerated classical machine learning with scikit-learn's
 * semantics. This header is the manual: every declaration says what it does,
 * the shapes it expects, what NULL or 0 mean, who owns what and which status
 * codes it returns.
 *
 * Conventions
 *   - Every fallible call returns fl_status: FL_STATUS_OK (0) or a negative
 *     code. The values are pinned and never change meaning.
 *   - On error, fl_ctx_last_error(ctx) holds a message that says what was
 *     wrong and what was expected, and every output is left untouched.
 *   - The library never aborts, exits or prints. It has no process-global
 *     mutable state: threads, seeds, callbacks, allocators and errors live on
 *     a context. One context may be used by one thread at a time; different
 *     contexts may be used concurrently.
 *   - Sizes and counts are int64_t; byte counts are size_t.
 *   - Matrices are row-major with a leading dimension ld >= cols (elements).
 *   - Input may live on the host or on a CUDA device; results are returned
 *     where the input lives unless the output descriptor says otherwise.
 */
#ifndef FLASHLIB_H
#define FLASHLIB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FL_BUILDING_LIBRARY)
#define FL_API __attribute__((visibility("default")))
#else
#define FL_API
#endif

#define FL_VERSION_MAJOR 0
#define FL_VERSION_MINOR 1
#define FL_VERSION_PATCH 0
#define FL_VERSION_STRING "0.1.0"
/* Encoded as major*10000 + minor*100 + patch. */
#define FL_VERSION_NUMBER (FL_VERSION_MAJOR * 10000 + FL_VERSION_MINOR * 100 + FL_VERSION_PATCH)

/* ------------------------------------------------------------------------ */
/* Status codes. Values are pinned forever; new codes only get new numbers.  */
/* ------------------------------------------------------------------------ */
typedef enum fl_status {
    FL_STATUS_OK = 0,
    FL_STATUS_INVALID_ARG = -1,      /* a parameter or array is out of its domain   */
    FL_STATUS_OUT_OF_MEMORY = -2,    /* host allocation failed                     */
    FL_STATUS_DEVICE_OOM = -3,       /* device allocation failed                   */
    FL_STATUS_UNSUPPORTED = -4,      /* valid request this build/backend cannot do */
    FL_STATUS_NO_DEVICE = -5,        /* a GPU was asked for and none is usable      */
    FL_STATUS_CUDA_ERROR = -6,       /* a CUDA runtime/driver/library call failed   */
    FL_STATUS_IO_ERROR = -7,         /* a file could not be opened, read or written */
    FL_STATUS_CORRUPT = -8,          /* a model file or buffer is truncated/corrupt */
    FL_STATUS_VERSION_MISMATCH = -9, /* a file or module from another version       */
    FL_STATUS_CANCELLED = -10,       /* the progress callback asked to stop         */
    FL_STATUS_NOT_FITTED = -11,      /* a method needs a fitted model               */
    FL_STATUS_INTERNAL = -12,        /* a bug in flashlib: please report it         */
    FL_STATUS_NUMERICAL = -13,       /* the input is too ill-conditioned for the method */
} fl_status;

/* Name of a status code ("FL_STATUS_INVALID_ARG"); never NULL. */
FL_API const char *fl_status_str(fl_status status);

/* Run-time version, e.g. "0.1.0". Compare with FL_VERSION_STRING to check
 * that the library loaded is the one a program was built against. */
FL_API const char *fl_version_string(void);
FL_API int fl_version_number(void);

/* ------------------------------------------------------------------------ */
/* Arrays                                                                    */
/* ------------------------------------------------------------------------ */
typedef enum fl_dtype {
    FL_DTYPE_F32 = 1,
    FL_DTYPE_F64 = 2,
    FL_DTYPE_F16 = 3,
    FL_DTYPE_BF16 = 4,
    FL_DTYPE_I32 = 5,
    FL_DTYPE_I64 = 6,
    FL_DTYPE_U8 = 7, /* bytes: product-quantisation codes */
} fl_dtype;

typedef enum fl_memspace {
    FL_MEM_HOST = 0,
    FL_MEM_CUDA = 1, /* device memory of CUDA device `device_id` */
} fl_memspace;

/* A 2-D row-major view of memory the caller owns. A vector is rows x 1 (or
 * rows x 1 with ld 1). `ld` is the distance between rows in elements;
 * ld >= cols. A 0 ld is read as ld = cols. */
typedef struct fl_array {
    void *data;
    fl_dtype dtype;
    fl_memspace mem;
    int32_t device_id;
    int64_t rows;
    int64_t cols;
    int64_t ld;
} fl_array;

/* Builds a host descriptor with ld = cols. */
FL_API fl_array fl_array_host(void *data, fl_dtype dtype, int64_t rows, int64_t cols);
/* Builds a device descriptor with ld = cols. */
FL_API fl_array fl_array_cuda(void *data, fl_dtype dtype, int64_t rows, int64_t cols, int32_t device_id);
/* Size of one element of `dtype` in bytes; 0 for an unknown dtype. */
FL_API size_t fl_dtype_size(fl_dtype dtype);
/* Name of a dtype ("f32"); "?" for an unknown one. */
FL_API const char *fl_dtype_name(fl_dtype dtype);

/* ------------------------------------------------------------------------ */
/* Context                                                                   */
/* ------------------------------------------------------------------------ */
typedef struct fl_ctx fl_ctx;

/* Progress callback: `stage` names the phase ("kmeans.lloyd"), `done` and
 * `total` count its steps (total 0 = unknown). Return 0 to go on, nonzero to
 * cancel: the call then returns FL_STATUS_CANCELLED with outputs untouched. */
typedef int (*fl_progress_fn)(void *user, const char *stage, int64_t done, int64_t total);

typedef enum fl_log_level {
    FL_LOG_ERROR = 0,
    FL_LOG_WARN = 1,
    FL_LOG_INFO = 2,
    FL_LOG_DEBUG = 3,
} fl_log_level;

/* Log callback; called only for messages at or below the context verbosity. */
typedef void (*fl_log_fn)(void *user, fl_log_level level, const char *message);

/* Host allocator hooks. `alloc` returns NULL on failure; `free` accepts NULL.
 * Memory must be aligned to at least 64 bytes. */
typedef struct fl_host_allocator {
    void *(*alloc)(void *user, size_t bytes);
    void (*free)(void *user, void *ptr);
    void *user;
} fl_host_allocator;

/* Device allocator hooks (device memory of `device_id`). `alloc` returns 0 on
 * success and sets *ptr; nonzero means out of memory. */
typedef struct fl_device_allocator {
    int (*alloc)(void *user, int32_t device_id, size_t bytes, void **ptr);
    void (*free)(void *user, int32_t device_id, void *ptr);
    void *user;
} fl_device_allocator;

/* Creates a context. `device` is "auto" (a CUDA GPU when one is usable,
 * else the CPU), "cpu", "cuda" (device 0) or "cuda:N"; NULL means "auto".
 * The environment (FL_DISABLE_SM90, FL_NUM_THREADS) is read here, once.
 * Nothing touches CUDA until a GPU is first used.
 * Errors: FL_STATUS_INVALID_ARG (bad device string), FL_STATUS_OUT_OF_MEMORY.
 * On error *out is NULL and, when `err` is non-NULL, a message is copied into
 * err[0..err_len). */
FL_API fl_status fl_ctx_create(const char *device, fl_ctx **out, char *err, size_t err_len);
/* Frees a context; NULL is accepted. Releases the GPU resources it holds. */
FL_API void fl_ctx_free(fl_ctx *ctx);

/* The message of the last failed call on this context ("" if none). The
 * pointer stays valid until the next call on the context. */
FL_API const char *fl_ctx_last_error(const fl_ctx *ctx);

/* Number of CPU threads for the CPU backend; 0 = OpenMP's default. */
FL_API fl_status fl_ctx_set_threads(fl_ctx *ctx, int threads);
/* Seed used by estimators whose random_state is left unset (-1). */
FL_API fl_status fl_ctx_set_seed(fl_ctx *ctx, uint64_t seed);
/* Verbosity: messages at this level or more severe reach the log callback. */
FL_API fl_status fl_ctx_set_verbosity(fl_ctx *ctx, fl_log_level level);
FL_API fl_status fl_ctx_set_progress(fl_ctx *ctx, fl_progress_fn fn, void *user);
FL_API fl_status fl_ctx_set_log(fl_ctx *ctx, fl_log_fn fn, void *user);
/* Allocator hooks; NULL restores the default (aligned malloc; on the GPU,
 * the context's own pool, which keeps freed device buffers for the next
 * call: fl_ctx_release_device_memory returns them). Changing the device
 * allocator first releases what the context keeps on the GPU, through the
 * allocator that gave it. */
FL_API fl_status fl_ctx_set_host_allocator(fl_ctx *ctx, const fl_host_allocator *a);
FL_API fl_status fl_ctx_set_device_allocator(fl_ctx *ctx, const fl_device_allocator *a);
/* Returns to the device the memory a context keeps between GPU calls: its
 * buffer pool's free blocks and its device copies of the last indexes,
 * database and PCA buffers used (the next call that needs them allocates
 * and copies again; models stay valid). OK and nothing to do when the
 * context has not used a GPU. FL_STATUS_INVALID_ARG for a NULL context. */
FL_API fl_status fl_ctx_release_device_memory(fl_ctx *ctx);
/* CPU threads the context will use (the setting, or OpenMP's default). */
FL_API int fl_ctx_get_threads(const fl_ctx *ctx);
/* Whether the Hopper (sm_90a) paths are disabled on this context
 * (FL_DISABLE_SM90 set, non-empty and not "0" when the context was made). */
FL_API int fl_ctx_sm90_disabled(const fl_ctx *ctx);
/* How this library was built, one line: version, compiler, BLAS, whether
 * the CUDA module and the sm_90a kernels were built beside it. Static. */
FL_API const char *fl_build_info(void);

/* Device the context resolved to: "cpu" or "cuda:N". For "auto" the GPU is
 * probed on this call (and only then). */
FL_API const char *fl_ctx_device(fl_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* Hardware                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct fl_hw_props {
    char name[96];    /* driver's name, "NVIDIA H100 80GB HBM3"            */
    char tag[16];     /* short tag: "H100", "H200", "A100", "L40S", "B200"... */
    int32_t sm_major; /* compute capability                                 */
    int32_t sm_minor;
    int32_t sm_count;
    int64_t l2_bytes;
    int64_t smem_per_sm_bytes;
    int64_t smem_per_block_optin_bytes;
    int64_t total_mem_bytes;
    int32_t is_ampere;    /* 8.x */
    int32_t is_hopper;    /* 9.0 */
    int32_t is_blackwell; /* 10.x / 12.x */
    int32_t sm90_enabled; /* Hopper fast paths allowed (not disabled by FL_DISABLE_SM90) */
} fl_hw_props;

/* Number of usable CUDA devices (0 without a driver or GPU). Sets `why`
 * (when non-NULL) to a static sentence explaining a 0. Never fails. */
FL_API int fl_cuda_device_count(fl_ctx *ctx, const char **why);
/* Properties of CUDA device `device_id`, read through the driver API. */
FL_API fl_status fl_cuda_props(fl_ctx *ctx, int32_t device_id, fl_hw_props *out);
/* Loads the CUDA module and initialises it for the context's device
 * (what the first GPU call would do), without running anything. OK when the
 * GPU is usable; otherwise the status and fl_ctx_last_error say why (no
 * driver, no device, module missing or from another version...). Loads
 * libcuda: CPU-only programs should not call it. */
FL_API fl_status fl_ctx_cuda_check(fl_ctx *ctx);
/* Whether the CUDA module (libflashlib_cuda.so) or libcuda was loaded into
 * this process; tests use it to prove that CPU work never loads them. */
FL_API int fl_cuda_loaded(void);

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */
typedef enum fl_param_type {
    FL_PARAM_INT = 1,    /* int64 within [lo, hi]                        */
    FL_PARAM_FLOAT = 2,  /* double within [lo, hi]                       */
    FL_PARAM_CHOICE = 3, /* one of `choices` ("a|b|c")                   */
    FL_PARAM_BOOL = 4,
} fl_param_type;

/* One row of a primitive's parameter table. */
typedef struct fl_param_def {
    const char *name; /* scikit-learn name: "n_clusters"                */
    fl_param_type type;
    const char *default_str; /* default as text: "8", "k-means++", "auto"       */
    double lo, hi;           /* inclusive bounds for INT/FLOAT                  */
    const char *choices;     /* CHOICE: "k-means++|random"; INT/FLOAT: extra
                                words also accepted ("auto"), or NULL           */
    const char *aliases;     /* other accepted names, "K|k" or NULL             */
    const char *doc;         /* one line                                        */
} fl_param_def;

/* Names of the primitives this build knows ("kmeans", ...), NULL-terminated. */
FL_API const char *const *fl_algorithms(void);
/* Number of parameters of `algo` (-1 for an unknown algorithm). */
FL_API int fl_param_count(const char *algo);
/* Row i of `algo`'s table, or NULL. The pointer is static. */
FL_API const fl_param_def *fl_param_def_at(const char *algo, int i);

typedef struct fl_params fl_params;
/* Creates a parameter set for `algo` holding the defaults. */
FL_API fl_status fl_params_create(fl_ctx *ctx, const char *algo, fl_params **out);
FL_API void fl_params_free(fl_params *p);
FL_API fl_status fl_params_copy(fl_ctx *ctx, const fl_params *p, fl_params **out);
/* Sets a parameter from text ("256", "k-means++", "1e-4", "true"), checking
 * type and bounds; aliases are accepted. Unknown names are an error that
 * names the closest valid one. Nothing changes on error. */
FL_API fl_status fl_params_set(fl_ctx *ctx, fl_params *p, const char *name, const char *value);
FL_API fl_status fl_params_set_int(fl_ctx *ctx, fl_params *p, const char *name, int64_t v);
FL_API fl_status fl_params_set_float(fl_ctx *ctx, fl_params *p, const char *name, double v);
/* Sets an array-valued parameter (KMeans `init`: n_clusters x n_features
 * initial centres). The host array (f32/f64) is copied; the parameter's
 * value becomes "array". */
FL_API fl_status fl_params_set_array(fl_ctx *ctx, fl_params *p, const char *name, const fl_array *a);
/* Reads a parameter as text into buf (always NUL-terminated). */
FL_API fl_status fl_params_get(fl_ctx *ctx, const fl_params *p, const char *name, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Models: one handle for every estimator                                    */
/* ------------------------------------------------------------------------ */
typedef struct fl_model fl_model;

/* Creates an unfitted model of `algo` with a copy of `params` (NULL = the
 * defaults). The model remembers `ctx` for its later calls; ctx must
 * outlive it. */
FL_API fl_status fl_model_create(fl_ctx *ctx, const char *algo, const fl_params *params, fl_model **out);
FL_API void fl_model_free(fl_model *m);
/* Algorithm name ("kmeans"). */
FL_API const char *fl_model_algo(const fl_model *m);
/* The model's parameters (read-only view, owned by the model). */
FL_API const fl_params *fl_model_params(const fl_model *m);

/* Fits on X (n x d); y may be NULL for unsupervised estimators;
 * sample_weight (n x 1, same dtype as X, non-negative) may be NULL.
 * Refitting replaces the previous fit only when the new fit succeeds. */
FL_API fl_status fl_model_fit(fl_model *m, const fl_array *X, const fl_array *y,
                              const fl_array *sample_weight);
/* Predicts into `out` (n x 1; I32 labels for clusterers). */
FL_API fl_status fl_model_predict(fl_model *m, const fl_array *X, fl_array *out);
/* Transforms into `out` (KMeans: n x n_clusters distances). */
FL_API fl_status fl_model_transform(fl_model *m, const fl_array *X, fl_array *out);
/* Fits, then writes the training labels into `out` (n x 1, I32). */
FL_API fl_status fl_model_fit_predict(fl_model *m, const fl_array *X, const fl_array *sample_weight,
                                      fl_array *out);
/* Maps transformed data back to the input space: X_original (n x
 * n_features_in_) from X (n x n_components_), for decompositions (PCA,
 * TruncatedSVD). out has X's dtype. FL_STATUS_UNSUPPORTED for estimators
 * without an inverse. */
FL_API fl_status fl_model_inverse_transform(fl_model *m, const fl_array *X, fl_array *out);
/* Per-sample score into `out` (n x 1, X's dtype); PCA: the log-likelihood
 * of each sample under the fitted probabilistic PCA model. */
FL_API fl_status fl_model_score_samples(fl_model *m, const fl_array *X, fl_array *out);
/* scikit-learn's score (KMeans: minus the inertia of X; PCA: the mean
 * log-likelihood of the samples). */
FL_API fl_status fl_model_score(fl_model *m, const fl_array *X, const fl_array *y,
                                const fl_array *sample_weight, double *out);

/* Fitted attributes, by scikit-learn name ("cluster_centers_", "labels_",
 * "inertia_", "n_iter_", "n_features_in_"). Scalars are 1 x 1 arrays.
 * fl_model_attr_info gives dtype and shape; fl_model_attr_copy copies into
 * a host or device array of exactly that shape and dtype. */
FL_API fl_status fl_model_attr_info(fl_model *m, const char *name, fl_dtype *dtype, int64_t *rows,
                                    int64_t *cols);
FL_API fl_status fl_model_attr_copy(fl_model *m, const char *name, fl_array *dst);
/* Convenience for scalar attributes. */
FL_API fl_status fl_model_attr_scalar(fl_model *m, const char *name, double *out);
/* Names of the attributes a fitted model has, NULL-terminated (static). */
FL_API const char *const *fl_model_attr_names(const fl_model *m);
/* Whether fit has succeeded on this model. */
FL_API int fl_model_is_fitted(const fl_model *m);

/* Serialization: a versioned binary format (magic "FLMODEL\0", format
 * version, library version, algorithm, parameters, attributes, CRC-32).
 * A truncated or corrupted input gives FL_STATUS_CORRUPT, never a crash. */
FL_API fl_status fl_model_save(fl_model *m, const char *path);
FL_API fl_status fl_model_load(fl_ctx *ctx, const char *path, fl_model **out);
/* To and from memory. *buf is allocated with malloc; release it with
 * fl_buffer_free. */
FL_API fl_status fl_model_save_buffer(fl_model *m, void **buf, size_t *len);
FL_API fl_status fl_model_load_buffer(fl_ctx *ctx, const void *buf, size_t len, fl_model **out);
FL_API void fl_buffer_free(void *buf);

/* ------------------------------------------------------------------------ */
/* Routing                                                                   */
/* ------------------------------------------------------------------------ */
typedef enum fl_backend {
    FL_BACKEND_CPU = 0,
    FL_BACKEND_CUDA = 1,      /* portable CUDA kernels (sm_80 and later) */
    FL_BACKEND_CUDA_SM90 = 2, /* Hopper fast path (sm_90a)               */
} fl_backend;

typedef struct fl_route {
    fl_backend backend;
    char variant[32]; /* "fp32", "tf32", "bf16", "fp16", "f64"...      */
    char reason[256]; /* the rule that made the choice, in words        */
} fl_route;

/* The routing decision for `algo` on `hw` (NULL = no GPU: the CPU backend)
 * for data of n_samples x n_features of `dtype` and `params` (NULL =
 * defaults). It is the same function execution calls, so it describes what
 * would really run. */
FL_API fl_status fl_route_query(fl_ctx *ctx, const char *algo, const fl_hw_props *hw, int64_t n_samples,
                                int64_t n_features, fl_dtype dtype, const fl_params *params, fl_route *out);
FL_API const char *fl_backend_name(fl_backend b);

/* ------------------------------------------------------------------------ */
/* KMeans: typed convenience functions                                       */
/* ------------------------------------------------------------------------ */

/* Fits KMeans on X (n x d) with `params` (NULL = defaults) and writes:
 * centers (n_clusters x d, X's dtype), labels (n x 1, I32; may be NULL),
 * inertia and n_iter (may be NULL). Parameters: see
 * `flashlib fit kmeans --help` or fl_param_def_at("kmeans", i). */
FL_API fl_status fl_kmeans_fit(fl_ctx *ctx, const fl_array *X, const fl_array *sample_weight,
                               const fl_params *params, fl_array *centers, fl_array *labels, double *inertia,
                               int64_t *n_iter);

/* Many independent small problems at once: X is batch x n x d, stored as
 * `batch` consecutive n x d blocks (X->rows == batch*n), each clustered into
 * n_clusters with the same parameters. centers: (batch*n_clusters) x d;
 * labels: (batch*n) x 1 (may be NULL); inertia: batch doubles (may be NULL). */
FL_API fl_status fl_kmeans_fit_batched(fl_ctx *ctx, const fl_array *X, int64_t batch, const fl_params *params,
                                       fl_array *centers, fl_array *labels, double *inertia);

/* ------------------------------------------------------------------------ */
/* Decomposition: PCA and TruncatedSVD                                       */
/* ------------------------------------------------------------------------ */

/* Fits PCA ("pca") on X (n x d, f32/f64, host) with `params` (NULL =
 * defaults: all components, svd_solver auto) and returns a new fitted model
 * in *out (free it with fl_model_free). Apply it with fl_model_transform
 * (out: n x n_components_), fl_model_inverse_transform,
 * fl_model_score_samples and fl_model_score; read components_,
 * explained_variance_, explained_variance_ratio_, singular_values_, mean_,
 * noise_variance_, n_components_, n_features_in_, n_samples_ with
 * fl_model_attr_*. Components follow scikit-learn's sign convention: the
 * largest-magnitude entry of each component is positive. Parameters: see
 * `flashlib fit pca --help`. The CPU computes it; a context on device
 * "cuda" gets FL_STATUS_UNSUPPORTED (no CUDA path yet), "auto" runs on the
 * CPU. Errors: FL_STATUS_INVALID_ARG (bad shape, NaN/Inf, n_components out
 * of range), FL_STATUS_OUT_OF_MEMORY, FL_STATUS_UNSUPPORTED; *out is
 * untouched on error. */
FL_API fl_status fl_pca_fit(fl_ctx *ctx, const fl_array *X, const fl_params *params, fl_model **out);
/* TruncatedSVD ("truncated_svd"): the same contract as fl_pca_fit, on X
 * without centring; attributes components_, explained_variance_,
 * explained_variance_ratio_, singular_values_, n_features_in_. */
FL_API fl_status fl_truncated_svd_fit(fl_ctx *ctx, const fl_array *X, const fl_params *params,
                                      fl_model **out);

/* ------------------------------------------------------------------------ */
/* Nearest neighbours                                                        */
/* ------------------------------------------------------------------------ */

/* Exact k-nearest-neighbour search without a model ("knn"): for each row of
 * Q (n_q x d) the k rows of X (n x d) nearest to it, nearest first, equal
 * distances by ascending index. Q == NULL searches X against itself and
 * leaves each point out of its own neighbours (scikit-learn's
 * kneighbors(X=None)), so k <= n - 1 there and k <= n otherwise.
 * distances (n_q x k, X's dtype; may be NULL) and indices (n_q x k, I64)
 * may live on the host or the GPU; X and Q too (both in the same memory).
 * The metric, p and precision come from `params` (NULL = defaults:
 * euclidean); n_neighbors there is ignored in favour of k. Distances are
 * exact in the data's precision on the CPU and in fp32 on the GPU whatever
 * the scan's precision; for metric inner_product they are <q, x>,
 * largest first. Outputs are untouched on error. */
FL_API fl_status fl_knn_search(fl_ctx *ctx, const fl_array *X, const fl_array *Q, int64_t k,
                               const fl_params *params, fl_array *distances, fl_array *indices);

/* Fits NearestNeighbors ("knn") on X (a copy is kept: attribute fit_X_)
 * and returns the model in *out (same as fl_model_create + fl_model_fit).
 * Attributes: fit_X_, n_features_in_, n_samples_fit_. */
FL_API fl_status fl_knn_fit(fl_ctx *ctx, const fl_array *X, const fl_params *params, fl_model **out);

/* kneighbors of a fitted neighbour model: X (n_q x d) or NULL for the
 * training set with each point excluded from its own neighbours;
 * n_neighbors <= 0 takes the model's n_neighbors. distances (may be NULL)
 * and indices as for fl_knn_search. */
FL_API fl_status fl_model_kneighbors(fl_model *m, const fl_array *X, int64_t n_neighbors, fl_array *distances,
                                     fl_array *indices);

/* Changes a search-time parameter of a fitted model without refitting it
 * (n_probes of an IVF index, n_neighbors / radius / precision of
 * NearestNeighbors); other parameters describe the fit and are refused.
 * The value is checked against the parameter table. */
FL_API fl_status fl_model_set_param(fl_model *m, const char *name, const char *value);

/* Adds the rows of X (n x d, host or device) to a fitted index
 * ("ivf_flat"); their indices continue after the rows already in it
 * (n_samples_fit_ grows). The index is unchanged on error. */
FL_API fl_status fl_model_add(fl_model *m, const fl_array *X);

/* A variable-length neighbour list per query, in CSR form: row i's
 * neighbours are indices[indptr[i] .. indptr[i+1]) with their distances
 * (dtype). Allocated by the library; release with fl_neighbors_free. */
typedef struct fl_neighbors {
    int64_t n_rows;
    int64_t nnz;
    int64_t *indptr; /* n_rows + 1 */
    int64_t *indices;
    void *distances;
    fl_dtype dtype;
} fl_neighbors;

/* Every training row within `radius` of each query (distance <= radius;
 * for inner_product, <q, x> >= radius); radius NAN takes the model's.
 * X NULL = the training set, each point excluded from its own list.
 * sort_results: nearest first (ties by index), else in index order. Host
 * memory in and out. *out is untouched on error. */
FL_API fl_status fl_model_radius_neighbors(fl_model *m, const fl_array *X, double radius, int sort_results,
                                           fl_neighbors *out);
FL_API void fl_neighbors_free(fl_neighbors *r);

/* ------------------------------------------------------------------------ */
/* Linear algebra                                                            */
/* ------------------------------------------------------------------------ */

/* What a linear-algebra call did, filled on success when the caller passes
 * one (may be NULL). */
typedef struct fl_linalg_report {
    char variant[32];         /* the variant that ran: "3xtf32", "qdwh"...  */
    fl_backend backend;       /* where it ran                               */
    int32_t iterations;       /* iterative methods: steps taken, else 0     */
    double expected_residual; /* the cost model's RMS relative error of the
                                 variant at this shape (GEMM), or the
                                 method's convergence tolerance             */
} fl_linalg_report;

/*
 * C = alpha op(A) op(B) + beta C with a GEMM precision variant ("gemm").
 * A, B, C: row-major arrays of one dtype (f32 or f64), all on the host or
 * all on the context's GPU; op(A) is m x k, op(B) k x n, C m x n;
 * trans_a / trans_b: 0 as stored, 1 transposed. beta 0: C is only written.
 * variant: "fp64", "fp32", "tf32", "3xtf32", "bf16", "3xbf16", "fp16",
 *   "3xfp16", "fp16x9", "fp16x3_kahan", "tf32x6", "ozaki_int8" (a "gemm_"
 *   prefix is accepted), or NULL / "auto": with tol > 0 the variant the cost
 *   model estimates fastest on this context's device among those whose
 *   expected residual is <= tol (the rule of fl_info_estimate("gemm", ...,
 *   "tol=...")); with tol <= 0 the data's native precision (fp32 / fp64).
 * The CPU runs every variant with the same arithmetic as the GPU (operands
 * split and rounded the same way), so its errors are the variant's, not
 * the CPU's; only fp32 and fp64 are fast there.
 * moduli: Ozaki scheme II modulus count (2..20; 0 = 16), else ignored.
 * Errors: FL_STATUS_INVALID_ARG (shapes, dtypes, memory spaces, unknown
 * variant, no variant meets tol), FL_STATUS_OUT_OF_MEMORY; C untouched.
 */
FL_API fl_status fl_gemm(fl_ctx *ctx, const char *variant, double tol, int moduli, int trans_a, int trans_b,
                         double alpha, const fl_array *A, const fl_array *B, double beta, fl_array *C,
                         fl_linalg_report *report);

/* Centred scatter ("cov_gemm"): C (d x d) = (X - 1 mu^T)^T (X - 1 mu^T) for
 * X (n x d), mu the column means, in one pass over X (shifted sums: exact
 * to the data's precision, no centred copy). mean (1 x d, may be NULL)
 * receives mu. center 0: C = X^T X. The same dtype and memory rules as
 * fl_gemm; variant NULL = native. Divide by n - 1 for the covariance. */
FL_API fl_status fl_cov_gemm(fl_ctx *ctx, const char *variant, const fl_array *X, int center, fl_array *C,
                             fl_array *mean, fl_linalg_report *report);
/* Gram matrix ("gram_gemm"): G (n x n) = X X^T. */
FL_API fl_status fl_gram_gemm(fl_ctx *ctx, const char *variant, const fl_array *X, fl_array *G,
                              fl_linalg_report *report);

/* CholeskyQR2 ("cholqr2") of a tall X (m x n, m >= n): Q (m x n,
 * orthonormal columns; may be X itself) and R (n x n upper, may be NULL)
 * with X = Q R. Two Cholesky QR passes in the data's precision; when X is
 * too ill-conditioned (or rank deficient) for a plain Cholesky of X^T X, a
 * shifted pass runs first (shifted CholeskyQR3), and Q is orthonormal and
 * X = QR to working precision all the same (report->iterations: passes).
 * FL_STATUS_NUMERICAL when X is zero. */
FL_API fl_status fl_cholqr2(fl_ctx *ctx, const fl_array *X, fl_array *Q, fl_array *R,
                            fl_linalg_report *report);

/* Splits X (f32, any shape) into `parts` float32 arrays ("split_basis"),
 * X = parts[0] + parts[1] + ... with every entry of parts[i] exactly
 * representable in `format` ("tf32", "bf16", "fp16"; fp16 entries can be
 * subnormal or overflow for |x| outside fp16's range, as a cast would).
 * These are the operands of the split GEMM variants. parts: 1..3. X and
 * out all on the host (split by the CPU) or all on the context's GPU (one
 * kernel there, the same rounding: the parts are bit-identical). */
FL_API fl_status fl_split_basis(fl_ctx *ctx, const fl_array *X, const char *format, int parts, fl_array *out);

/*
 * Symmetric eigendecomposition ("eigh") of A (n x n, f32/f64; only the
 * lower triangle is read, and it must be finite): eigenvalues w (1 x k or
 * k x 1) ascending and eigenvectors V (n x k, column j for w[j]; may be NULL
 * for values only), in A's dtype and memory space. n_components k: 0 = all
 * n, else the k largest (1..n), still ascending. variant:
 *   "cusolver"  divide and conquer (LAPACK syevd on the CPU, cuSOLVER syevd
 *               on the GPU); NULL or "auto" is this one.
 *   "jacobi"    cyclic Jacobi sweeps to a relative off-diagonal norm of
 *               2u, at most 100 (report->iterations = sweeps).
 *   "qdwh"      spectral divide and conquer: split at the median of the
 *               diagonal with the QDWH polar factor (the matrix sign) of
 *               the shifted A, recurse on the two halves down to 256, where
 *               syevd finishes (report->iterations = polar steps summed).
 *   "qdwh_ns"   the same with GEMM-only polar steps (Polar Express quintics
 *               in the data's precision).
 *   "halko"     randomized subspace iteration for the top k (k + 10
 *               columns, 4 power iterations, seeded by the context): it
 *               finds the largest in magnitude, so A should be positive
 *               semi-definite, as a covariance is; its accuracy depends on
 *               the spectrum's decay beyond k. n_components 0 here means
 *               ceil(n / 10), not all n.
 * cusolver, jacobi, qdwh and qdwh_ns are backward stable: residual
 * ||A V - V diag(w)||_F / ||A||_F and ||V^T V - I||_F of order u sqrt(n)
 * (qdwh_ns a few times more). report->expected_residual: the stopping
 * tolerance of the iterative part (0 for cusolver and halko).
 * Errors: FL_STATUS_INVALID_ARG (A not square, NaN/Inf in its lower
 * triangle, n_components out of range, unknown variant, w/V of the wrong
 * shape, dtype or memory space), FL_STATUS_OUT_OF_MEMORY and
 * FL_STATUS_DEVICE_OOM, FL_STATUS_NUMERICAL (an iteration diverged);
 * outputs untouched on error.
 */
FL_API fl_status fl_eigh(fl_ctx *ctx, const char *variant, const fl_array *A, int64_t n_components,
                         fl_array *w, fl_array *V, fl_linalg_report *report);

/*
 * Polar decomposition ("polar") A = U H of A (m x n, m >= n, f32/f64,
 * finite): U (m x n) with orthonormal columns, H = sym(U^T A) (n x n,
 * symmetric positive semi-definite; may be NULL), in A's dtype and memory
 * space. A must have full column rank for U to be orthonormal. variant:
 *   "qdwh_hybrid"  QDWH: dynamically weighted Halley steps, QR-based while
 *                  ill-conditioned, then Cholesky-based; at most 6 steps in
 *                  float64 for any full-rank A. NULL or "auto".
 *   "express"      Polar Express: odd quintic steps of GEMMs only, with
 *                  coefficients minimax for the current singular-value
 *                  interval (computed at run time), in the data's
 *                  precision, from a lower bound of u on sigma_min / ||A||_F.
 *                  (A bf16 first phase was measured on the H100 and left
 *                  out: backward errors of 1e-2 to 9e-2, and no convergence
 *                  on square Gaussians of n >= 512.)
 *   "express_warm" Polar Express whose scaling and interval come from U0
 *                  (m x n), the polar factor of a nearby matrix (e.g. the
 *                  previous one in a sequence): fewer steps when U0 is
 *                  close; U0 never changes the answer, only the schedule.
 *   "zolo"         Zolotarev's rational approximation (r = 3 terms per
 *                  step, each a Cholesky or QR solve): 2-3 steps.
 * U0: express_warm only (required there), else NULL.
 * report->iterations: steps; expected_residual: the stopping tolerance.
 * Errors: FL_STATUS_INVALID_ARG (m < n, NaN/Inf, unknown variant, U/H/U0 of
 * the wrong shape, dtype or memory space, U0 missing or not expected),
 * FL_STATUS_NUMERICAL (A zero, or no convergence: rank deficient),
 * FL_STATUS_OUT_OF_MEMORY and FL_STATUS_DEVICE_OOM; outputs untouched on
 * error.
 */
FL_API fl_status fl_polar(fl_ctx *ctx, const char *variant, const fl_array *A, const fl_array *U0,
                          fl_array *U, fl_array *H, fl_linalg_report *report);

#ifdef __cplusplus
}
#endif
#endif /* FLASHLIB_H */
