/*
 * kmeans_cuda.cuh — internal interface between the KMeans kernel files of
 * the CUDA module: the device scalar block, a resident chunk of rows, and
 * the host-side launchers each .cu file exports. Nothing here is exported
 * from the module.
 */
#ifndef FL_KMEANS_CUDA_CUH
#define FL_KMEANS_CUDA_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "algo/kmeans_plan.h"
#include "backends/cuda/fl_cuda_util.cuh"

/* Scalars of one fit that live on the device (first 256 bytes of the
 * scalar region), so that the Lloyd loop needs no host round trip. */
typedef struct km_scalars {
    double inertia;   /* objective of the current assignment (over all chunks) */
    double tol_abs;   /* tol x mean per-feature variance                        */
    double shift;     /* sum of squared centre shifts of the last update        */
    double pot;       /* k-means++: best candidate potential of this step       */
    unsigned long long n_rescored; /* rows whose near-tie was re-scored in fp32 */
    int32_t n_changed; /* labels that changed in the current E-step             */
    int32_t done;     /* loop finished: loop kernels return at once             */
    int32_t strict;   /* finished because no label changed                      */
    int32_t n_iter;   /* Lloyd iterations done                                  */
    int32_t n_empty;  /* empty clusters found by the last update                */
    int32_t best_cand; /* k-means++: row index of the best candidate            */
    int32_t cand[FLI_KM_PP_GROUP]; /* k-means++: candidate rows of this group   */
    int32_t comb_count; /* blocks of k_acc_combine / k_reloc_obj done (last relocates) */
    int32_t fin_count;  /* blocks of k_finalize done (last one decides)           */
    /* Rounding bounds of the centres' tensor-core copy, read by the E-step's
     * near-tie test: cb[0] = max_j ||round(c_j) - c_j||, cb[1] = max_j
     * ||round(c_j)|| (floats >= 0, maxima taken with integer atomicMax on
     * their bits: order-independent). k_prep_centers writes cb; k_finalize
     * writes cb_next and its last block moves it to cb. */
    float cb[2];
    float cb_next[2];
    int32_t tie_count; /* entries in the near-tie list of the current E-step     */
    int32_t tie_done;  /* blocks of k_tie_rescore done (the last one resets)      */
} km_scalars;
static_assert(sizeof(km_scalars) <= 256, "km_scalars lives in the first 256 bytes of the scalar block");

/* One resident block of rows of X as the kernels see it. */
typedef struct km_rows {
    const float *x;     /* fp32 rows, row stride ldx (elements)                 */
    int64_t ldx;
    int x_aligned;      /* x 16-byte aligned and ldx % 4 == 0 (cp.async usable) */
    const void *xh;     /* 16-bit copy (bf16/fp16), row stride dh, or NULL      */
    int64_t row0;       /* index of the first row in the whole X                */
    int64_t m;          /* rows                                                 */
    const float *w;     /* weights of these rows, or NULL (all 1)               */
    const float2 *xst;  /* tensor-core precisions: per row (||round(x)||^2,
                           ||round(x) - x||), for the near-tie test; or NULL */
} km_rows;

/* Near-tie re-scoring of the low-precision E-steps (see kmeans_dev.cuh,
 * km_near_tie): what the kernels need besides their operands. */
typedef struct km_tie {
    const float *x;      /* fp32 rows of the chunk (as km_rows.x)            */
    int64_t ldx;
    int xvec;            /* x 16-byte aligned and ldx % 4 == 0               */
    const float2 *xst;   /* km_rows.xst                                      */
    const float *C;      /* fp32 centres, row stride ldc (multiple of 4)     */
    int64_t ldc;
    int d;
    int euclid;          /* metric euclidean (else dot / cosine)             */
    int on;              /* 0: no re-scoring (fp32, or FL_KM_RESCORE=0)      */
    float ekd;           /* fp32 accumulation bound factor: (K + 8) * 2^-22  */
    const float *cb;     /* km_scalars.cb                                    */
    unsigned long long *n_rescored; /* may be NULL                          */
    int4 *list;          /* near-tied rows: (row, i1, i2, old label), m max  */
    int32_t *count;      /* km_scalars.tie_count                             */
    int32_t *blocks_done; /* km_scalars.tie_done                             */
} km_tie;

/* Score of centre c for a point: cnorm[c] - alpha * <x, c>; euclidean uses
 * alpha 2 and cnorm = ||c||^2 (x^2-free), dot and cosine alpha 1, cnorm 0. */
static inline float km_alpha(fli_metric m) { return m == FLI_METRIC_EUCLIDEAN ? 2.0f : 1.0f; }

/* ---- kmeans_estep.cu ---------------------------------------------------- */
/* Prepares the centre operands of an E-step: cnorm (kp, +inf past k) and the
 * tensor-core copy (tf32-rounded fp32 kp x dp, or 16-bit kp x dh; img: the
 * 16-bit copy in the Hopper operand image, tiles of FLI_KM_BN rows). */
fl_status km_prep_centers(fli_cuda_env *env, cudaStream_t s, const float *C, int64_t k,
                          int64_t kp, int64_t d, int64_t dp, int64_t dh, fli_metric metric,
                          fli_precision prec, void *ctc, float *cnorm, int img, float *cb,
                          const int32_t *done);
/* Converts rows (fp32, stride ldx) to a 16-bit copy with stride dh (zero
 * pad); img: the Hopper operand image, m padded to FLI_KM_XH_ROWS rows.
 * xst (may be NULL): per row (||round(x)||^2, ||round(x) - x||). */
fl_status km_convert_rows(fli_cuda_env *env, cudaStream_t s, const float *x, int64_t ldx, int64_t m,
                          int64_t d, int64_t dh, fli_precision prec, void *xh, int img, float2 *xst);
/* Row statistics only (tf32: the E-step rounds X itself). */
fl_status km_row_stats(fli_cuda_env *env, cudaStream_t s, const float *x, int64_t ldx, int64_t m,
                       int64_t d, fli_precision prec, int trunc, float2 *xst);
/* The E-steps' near-tie arguments for rows r (fp32 centres C, stride dp). */
km_tie km_tie_args(const km_rows *r, const float *C, int64_t dp, int64_t d, fli_metric metric,
                   fli_precision prec, int64_t kdim, km_scalars *sc, int4 *list, int on);
/* Re-scores the rows the E-step listed (a group of lanes per row), writes
 * their labels and counts their changes; m rows and the precision size the
 * grid for the expected list. */
fl_status km_tie_rescore(fli_cuda_env *env, cudaStream_t s, const km_tie *tie, int32_t *labels,
                         int32_t *n_changed, int64_t m, fli_precision prec, const int32_t *done);
/* Labels of rows r.m against k centres: argmin of the score, ties to the
 * lower index. Counts changed labels into *n_changed when non-NULL. Does
 * nothing when *done != 0 (done may be NULL). */
fl_status km_estep(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d, const float *C,
                   int64_t dp, const void *ctc, int64_t dh, const float *cnorm, int64_t k,
                   int64_t kp, fli_metric metric, fli_precision prec, int32_t *labels,
                   int32_t *n_changed, const km_tie *tie, const int32_t *done);
/* The tf32 k <= 64 E-step with the M-step's sums folded in, for d <= 32
 * (km_estep_acc_ok: fli_kmeans_eacc's rule, and no env->km_tune A/B bit
 * that asks for the separate kernels): labels final
 * (near ties re-scored in the kernel), changes counted, and per block a
 * k x (d+2) partial of the sums and weights in acc_part, as the
 * shared-memory M-step leaves them for km_combine (*nblk blocks; part[b]
 * = 0: no objective). */
int km_estep_acc_ok(fli_cuda_env *env, const fli_kmeans_cuda_plan *p, fli_precision prec);
fl_status km_estep_acc(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d, int64_t dp,
                       const void *ctc, const float *cnorm, int64_t k, fli_metric metric, int32_t *labels,
                       int32_t *n_changed, const km_tie *tie, float *acc_part, double *part, int *nblk,
                       const int32_t *done);
/* Hopper (sm_90a) E-step, dh of 64 or 128: bf16/fp16 wgmma over the
 * operand images (xh: rows padded to FLI_KM_XH_ROWS; ctc: kp rows); tf32
 * wgmma over X in place and the tf32 centres (kp x dp) through TMA tensor
 * maps, which needs km_sm90_tf32_ok(r) (X 16-byte aligned, ldx % 4 == 0)
 * and row statistics with trunc (km_row_stats). km_sm90_built says whether
 * this build has the kernels (FL_HAVE_SM90); when to use them is
 * fli_kmeans_cuda_path's rule (algo/kmeans_plan.h). */
int km_sm90_built(void);
int km_sm90_tf32_ok(const km_rows *r);
fl_status km_estep_sm90(fli_cuda_env *env, cudaStream_t s, const km_rows *r, const void *ctc, int64_t d,
                        int64_t dh, int64_t dp, const float *cnorm, int64_t kp, fli_metric metric,
                        fli_precision prec, int32_t *labels, int32_t *n_changed,
                        const km_tie *tie, const int32_t *done);
/* transform: out[i][j] (row stride ldo) = euclidean distance / 1-cos / -dot. */
fl_status km_transform(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d,
                       const float *C, int64_t dp, int64_t k, fli_metric metric, float *out,
                       int64_t ldo);

/* ---- kmeans_fused.cu ---------------------------------------------------- */
typedef struct km_fused_cfg {
    int stages, priv, smem;
} km_fused_cfg;
/* Labels of rows r (changes counted into n_changed), each point's objective
 * into dist (may be NULL) and the blocks' objective partials into part; with
 * acc, the blocks' cluster sums into acc_part (k x (d+2) per block, combined
 * by km_combine). *nblk = blocks launched. */
fl_status km_fused(fli_cuda_env *env, cudaStream_t s, const fli_kmeans_cuda_plan *p,
                   const km_fused_cfg *cfg, const km_rows *r, const void *ctc, const float *cnorm,
                   const float *C, fli_metric metric, fli_precision prec, int32_t *labels,
                   int32_t *n_changed, float *dist, float *acc_part, double *part, int acc,
                   int *nblk, const int32_t *done);

/* ---- kmeans_mstep.cu ---------------------------------------------------- */
/* In-place scan (exclusive or inclusive) with scratch `tmp` sized by the plan. */
fl_status km_scan_i32(fli_cuda_env *env, cudaStream_t s, int32_t *a, int64_t len, int inclusive,
                      void *tmp);
fl_status km_scan_f64(fli_cuda_env *env, cudaStream_t s, double *a, int64_t len, int inclusive,
                      void *tmp);
/* sc->inertia += sum(part[0..len)) in a fixed order. */
fl_status km_sum_part(fli_cuda_env *env, cudaStream_t s, const double *part, int64_t len,
                      km_scalars *sc);
/* Per-point objective of the assigned centre into dist[row0+i] and its
 * weighted sum added (in a fixed order) to sc->inertia. */
fl_status km_objective(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d,
                       const float *C, int64_t dp, const int32_t *labels, fli_metric metric,
                       float *dist, double *part, km_scalars *sc, const int32_t *done);
/* M-step accumulation of one chunk: cluster sums/weights into sums/wsum
 * (overwritten when first != 0, else added); with obj, also the objective
 * of the assignment into dist and sc->inertia (the inertia trace and the
 * chunked relocation need it; otherwise km_reloc_obj computes it only in
 * the iterations that empty a cluster). */
typedef struct km_mstep_bufs {
    double *sums, *wsum, *cobj;
    float *dist;
    double *part;
    float *acc_part;
    int32_t *cnt, *perm, *piece_off;
    float *psum, *pw;
    double *pobj;
    int32_t *pcnt;
    /* Delta M-step of the sorted path (delta = 1; X resident, one chunk,
     * no objective): sums and wsum are kept across iterations as the sums
     * of the rows by prev (the labels they were last taken with), and
     * ncount the rows per cluster, exact. */
    int delta;
    int32_t *prev, *ncount;
    void *scan_tmp;
} km_mstep_bufs;
/* Relocation done by the last block of the shared-memory M-step's combine
 * (X resident, not chunked): saves a launch per iteration. */
typedef struct km_reloc_args {
    int enabled;
    const float *xres;
    int64_t ldx;
    const float *w;
    const int32_t *labels;
    int64_t n;
    int32_t *reloc_idx;
} km_reloc_args;
/* The shared-memory M-step keeps a private copy of the sums per warp. */
int km_mstep_priv(const fli_kmeans_cuda_plan *p);
fl_status km_accumulate(fli_cuda_env *env, cudaStream_t s, const fli_kmeans_cuda_plan *p,
                        const km_rows *r, const float *C, const int32_t *labels, fli_metric metric,
                        const km_mstep_bufs *b, km_scalars *sc, int first, const km_reloc_args *ra,
                        int obj, const int32_t *done);
/* Fixed-order sum of nblk per-block partials (acc_part) into sums/wsum and
 * of part[0..nblk) into sc->inertia; relocation when ra->enabled. */
fl_status km_combine(fli_cuda_env *env, cudaStream_t s, const fli_kmeans_cuda_plan *p,
                     const km_mstep_bufs *b, int nblk, km_scalars *sc, int first,
                     const km_reloc_args *ra, const int32_t *done);
/* Empty clusters (wsum == 0) take the points of largest objective, in
 * decreasing order (ties to the lower index): their sums and weights move.
 * Rows come from X resident on the device (xres) or, in chunked mode, from
 * `rows` (k x dp) filled by the host after km_reloc_pick. */
fl_status km_relocate(fli_cuda_env *env, cudaStream_t s, const fli_kmeans_cuda_plan *p,
                      const float *xres, int64_t ldx, const float *w, const int32_t *labels,
                      float *dist, double *sums, double *wsum, int32_t *reloc_idx,
                      const float *rows, int pick_only, km_scalars *sc, const int32_t *done);
/* Relocation for an M-step run without the objective (obj = 0, X
 * resident): a launch that returns at once unless a cluster is empty; then
 * every row's objective into dist and km_relocate's picks and moves.
 * prev and ncount: the delta M-step's state (km_mstep_bufs), kept in step
 * with the moves; NULL without one. */
fl_status km_reloc_obj(fli_cuda_env *env, cudaStream_t s, const fli_kmeans_cuda_plan *p, const float *x,
                       int64_t ldx, const float *w, const int32_t *labels, const float *C, fli_metric metric,
                       float *dist, double *sums, double *wsum, int32_t *reloc_idx, km_scalars *sc,
                       int32_t *prev, int32_t *ncount, const int32_t *done);
/* New centres from sums (keep old where weight is 0; cosine: normalise) and
 * their E-step operands (as km_prep_centers, img likewise), shift, trace
 * entry (at sc->n_iter), convergence decision, iteration count — one
 * launch, with no per-iteration argument. When the run is done, writes 1
 * to hflag (pinned host memory mapped into the device, may be NULL). */
fl_status km_finalize(fli_cuda_env *env, cudaStream_t s, const fli_kmeans_cuda_plan *p, float *C,
                      const double *sums, const double *wsum, double *shift_c, fli_metric metric,
                      fli_precision prec, void *ctc, int img, float *cnorm, km_scalars *sc,
                      double *trace, int32_t *hflag, const int32_t *done);

/* ---- kmeans_init.cu ----------------------------------------------------- */
/* Column sums for the variance (accumulated over chunks, in a fixed order
 * through the per-block partials colpart) and tol_abs. */
fl_status km_colstats(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d,
                      const float *x0, double *colstats, double *colpart, int first);
fl_status km_tol(fli_cuda_env *env, cudaStream_t s, const double *colstats, int64_t n, int64_t d,
                 double tol, km_scalars *sc);
/* L2-normalises rows of x (stride ldx) into y (stride ldy); may be in place. */
fl_status km_normalize_rows(fli_cuda_env *env, cudaStream_t s, const float *x, int64_t ldx,
                            float *y, int64_t ldy, int64_t m, int64_t d);
/* Copies rows idx[0..cnt) of x into C (stride dp). */
fl_status km_gather_rows(fli_cuda_env *env, cudaStream_t s, const float *x, int64_t ldx,
                         const int32_t *idx, int64_t cnt, int64_t d, float *C, int64_t dp);
/* k-means++ steps (see kmeans_init.cu for the sequence). */
fl_status km_pp_closest(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d,
                        const float *c, float *closest, double *wcum, int first);
fl_status km_pp_first(fli_cuda_env *env, cudaStream_t s, const double *cumw, int64_t n, int weighted,
                      uint64_t seed, km_scalars *sc);
fl_status km_pp_candidates(fli_cuda_env *env, cudaStream_t s, const double *cum, int64_t n,
                           uint64_t seed, int64_t step, int64_t g0, int64_t cnt, km_scalars *sc);
fl_status km_pp_score(fli_cuda_env *env, cudaStream_t s, const km_rows *r, int64_t d,
                      const float *cand, int64_t dp, int64_t cnt, const float *closest,
                      double *pp_part, int first_chunk);
fl_status km_pp_choose(fli_cuda_env *env, cudaStream_t s, const double *pp_part, int64_t cnt,
                       int first_group, const float *cand, int64_t dp, int64_t d, float *center,
                       km_scalars *sc);
#define KM_PP_BLOCKS 512 /* blocks of km_pp_score (<= FLI_KM_NPART) */

#endif
