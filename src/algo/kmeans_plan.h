/*
 * kmeans_plan.h — the device-memory plan of the CUDA KMeans fit.
 *
 * Pure C, no CUDA: compiled into libflashlib (so the core and the cost
 * model can ask what a fit will need before it runs) AND into
 * libflashlib_cuda.so, which carves its one device arena by exactly these
 * offsets. So `device_bytes` is not an estimate: it is the size of the only
 * device allocation kmeans_fit makes (through the context's allocator).
 *
 * Layout: regions that live for the whole fit first, then one union region
 * whose bytes are shared by the init phase (k-means++ buffers) and the
 * Lloyd phase (M-step buffers), which never run at the same time.
 */
#ifndef FL_KMEANS_PLAN_H
#define FL_KMEANS_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "algo/kmeans_job.h"
#include "flashlib.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Tiling and workspace constants the module's kernels are built around. */
#define FLI_KM_BM 128                   /* rows per E-step block                   */
#define FLI_KM_BN 128                   /* centres per E-step tile                  */
#define FLI_KM_ALIGN 256                /* every region starts on 256 bytes         */
#define FLI_KM_ACC_BLOCKS 256           /* blocks of the shared-memory M-step       */
#define FLI_KM_SMEM_ACC_MAX (96 * 1024) /* k*(d+2)*4 bytes up to which it is used  */
#define FLI_KM_PIECE 256                /* sorted rows per partial sum (M-step)     */
#define FLI_KM_SORT_ROWS 256            /* rows per counting-sort warp, at least    */
#ifndef FLI_KM_SORT_CAP                 /* (a build may set it, for A/B measurements) */
#define FLI_KM_SORT_CAP (1 << 22)       /* cap on k * sort warps (count matrix)     */
#endif
#define FLI_KM_SCAN_TILE 4096 /* elements per block of the scan kernels   */
#define FLI_KM_TRACE_RING 256 /* inertia trace entries kept on device     */
#define FLI_KM_NPART 1024     /* partial-sum slots of small reductions    */
#define FLI_KM_PP_GROUP 8     /* k-means++ candidates scored per pass     */
#define FLI_KM_XH_ROWS                                                                                       \
    256 /* 16-bit copy of X padded to this many rows                                                         \
           (the Hopper E-step reads whole row tiles) */
/* Fused E+M kernel (tensor-core precisions, small k*d): one persistent
 * block per SM keeps every centre in shared memory, streams 128-row tiles
 * of fp32 X, assigns them with mma.sync and adds the same tile into
 * privatised cluster sums; X is read once per iteration. */
#define FLI_KM_FUSED_BM 128    /* rows per tile                            */
#define FLI_KM_FUSED_MAX_D 64  /* d up to which it is used                 */
#define FLI_KM_FUSED_MAX_K 256 /* k up to which it is used                 */
#define FLI_KM_FUSED_WARPS 8
/* Hopper E-step: dynamic shared memory for dh = 64 * kb (A: 2 x 256 rows,
 * B: 3 x 128 centres, 1 KB alignment, barriers). */
#define FLI_KM_SM90_SMEM(kb) ((int64_t)(2 * 256 + 3 * 128) * (kb)*128 + 1024 + 128)
/* Its tf32 form, dh = 32 * kb (kb 2 or 4): X's rows in registers, B a
 * 7-stage ring of 128 centres x 64 columns, 1 KB alignment, barriers. (The
 * A/B alternative with X in shared memory, A: 2 x 128 rows and 3 B stages,
 * needs no more than this.) */
#define FLI_KM_SM90_TF32_SMEM(kb) ((int64_t)7 * 128 * 256 + 1024 + 128)
/* Fixed scalar block: flags/counters (256 B), trace ring, NPART doubles of
 * block partials, NPART x PP_GROUP doubles of k-means++ candidate partials. */
#define FLI_KM_SCALARS_BYTES                                                                                 \
    (256 + FLI_KM_TRACE_RING * 8 + FLI_KM_NPART * 8 + FLI_KM_NPART * FLI_KM_PP_GROUP * 8)

typedef struct fli_kmeans_cuda_plan {
    /* results */
    size_t device_bytes; /* the arena kmeans_fit allocates (exact)             */
    size_t host_bytes;   /* host scratch kmeans_fit allocates (exact, see .c)   */
    int64_t chunk_rows;  /* rows of X resident at once (== n unless chunked)    */
    int chunked;         /* X on host and streamed in chunks every iteration    */
    int64_t n_chunks;

    /* shapes the kernels use */
    int64_t n, d, k;
    int64_t dp;          /* fp32 row stride of internal copies: d rounded to 32 */
    int64_t dh;          /* 16-bit row stride: d rounded to 64                 */
    int64_t kp;          /* centre rows padded to FLI_KM_BN                     */
    int mstep_smem;      /* 1: shared-memory privatised sums; 0: sorted pieces  */
    int64_t sort_nb;     /* counting-sort warps per chunk                       */
    int64_t sort_rows;   /* rows per counting-sort warp                         */
    int64_t npieces_max; /* bound on pieces per chunk: ceil(2m/PIECE) + k       */
    int64_t scan_n;      /* longest array scanned in place (elements)          */

    /* byte offsets into the arena (0-size regions may share an offset) */
    size_t off_x;            /* fp32 copy of X (host X: chunk buffers; cosine: normalised) */
    int64_t x_bufs;          /* number of chunk buffers in off_x (0, 1 or 2)        */
    size_t off_xh;           /* 16-bit copy of the resident rows (bf16/fp16), rows
                                padded to FLI_KM_XH_ROWS                           */
    size_t off_w;            /* weights copy (host X with weights)                  */
    size_t off_xst;          /* tf32/bf16/fp16: chunk_rows float2, per row
                                (||round(x)||^2, ||round(x) - x||) for the E-step's
                                near-tie test                                      */
    size_t off_labels;       /* n int32                                             */
    size_t off_best_labels;  /* n int32: labels of the best of n_init runs       */
    size_t off_dist;         /* n fp32: objective of each point (relocation)        */
    size_t off_centers;      /* kp x dp fp32                                        */
    size_t off_centers_tc;   /* tensor-core copy: tf32 kp x dp, 16-bit kp x dh    */
    size_t off_cnorm;        /* kp fp32: score offset per centre                    */
    size_t off_sums;         /* k x dp f64 (cluster sums)                           */
    size_t off_wsum;         /* k f64 (cluster weights)                             */
    size_t off_cobj;         /* k f64 (per-cluster objective of a chunk)            */
    size_t off_best_centers; /* k x dp fp32                                     */
    size_t off_colstats;     /* 3 x dp f64: column sums, squares, reference row    */
    size_t off_reloc;        /* k x dp fp32 rows fetched for relocation (chunked)   */
    size_t off_reloc_idx;    /* k int32                                            */
    size_t off_scalars;      /* FLI_KM_SCALARS_BYTES                                */
    size_t off_scan_tmp;     /* scan partials for scan_n elements of 8 bytes        */
    size_t off_union;        /* start of the phase-shared region                    */
    /* Lloyd phase, shared-memory M-step */
    size_t off_acc_part; /* ACC_BLOCKS x k x (d+2) fp32                         */
    /* Lloyd phase (E-step and final assignment), tensor-core precisions */
    size_t off_tie_list; /* chunk_rows int4: near-tied rows for exact re-scoring */
    /* Lloyd phase, sorted M-step */
    size_t off_cnt;       /* k*sort_nb + 1 int32                                 */
    size_t off_perm;      /* 2m int32 (sorted entries: 2 row + sign)             */
    size_t off_piece_off; /* k + 1 int32                                        */
    size_t off_psum;      /* npieces_max x d fp32                                */
    size_t off_pw;        /* npieces_max fp32                                    */
    size_t off_pobj;      /* npieces_max f64                                     */
    size_t off_pcnt;      /* npieces_max int32: signed entry count per piece     */
    size_t off_prev;      /* m int32: labels the sums hold (delta M-step)        */
    size_t off_ncount;    /* k int32: rows per cluster (delta M-step)            */
    /* init phase (k-means++ and random) */
    size_t off_closest;  /* n fp32                                              */
    size_t off_cumsum;   /* n f64                                               */
    size_t off_init_idx; /* k int32                                             */
    size_t off_pp_cand;  /* PP_GROUP x dp fp32: k-means++ candidate rows         */
    /* preparation phase (before init): column statistics for tol */
    size_t off_colpart; /* fli_km_colstats_blocks(chunk_rows, dp) x 2 x dp f64:
                           per-block column sums, added in block order       */
} fli_kmeans_cuda_plan;

/* Blocks of the column-statistics kernel for m rows (one partial per block,
 * combined in a fixed order: the tolerance does not depend on scheduling). */
static inline int64_t fli_km_colstats_blocks(int64_t m, int64_t dp)
{
    int64_t b = (m + 255) / 256, cap = ((int64_t)1 << 18) / (dp > 0 ? dp : 1);
    if (b > 1024)
        b = 1024;
    if (cap < 1)
        cap = 1;
    if (b > cap)
        b = cap;
    return b < 1 ? 1 : b;
}

/* Shared-memory layout of the fused E+M kernel for (precision, d, k), with
 * `stages` X tiles in flight and `priv` (one private sum copy per warp) or a
 * single shared copy. Byte offsets into the block's dynamic shared memory;
 * returns the total, or -1 when the shape is not handled by that kernel.
 * Used by fli_kmeans_cuda_path (which kernels run) and by the module (launch configuration),
 * so both agree. */
typedef struct fli_km_fused_layout {
    int64_t ks;     /* mma k-steps: tf32 ceil(d/8), 16-bit ceil(d/16)     */
    int64_t cst;    /* words per shared centre row (ks*8 + 4)             */
    int64_t kf;     /* centres held: k rounded to 64                      */
    int64_t xw;     /* fp32 columns loaded per row (ks*8 or ks*16)        */
    int64_t xst;    /* words per shared X row (xw + 4, 16-bit: xw + 8)    */
    int64_t acc_ld; /* d + 2: sums, weight, spare (as the M-step partials) */
    int64_t off_b, off_cn, off_x, off_acc, off_red, off_lab, bytes;
} fli_km_fused_layout;

static inline int64_t fli_km_fused_smem(fli_precision p, int64_t d, int64_t k, int stages, int priv,
                                        fli_km_fused_layout *L)
{
    fli_km_fused_layout l;
    if (p != FLI_PREC_TF32 && p != FLI_PREC_BF16 && p != FLI_PREC_FP16)
        return -1;
    if (d < 1 || d > FLI_KM_FUSED_MAX_D || k < 1 || k > FLI_KM_FUSED_MAX_K)
        return -1;
    const int tf = p == FLI_PREC_TF32;
    l.ks = tf ? (d + 7) / 8 : (d + 15) / 16;
    l.cst = l.ks * 8 + 4;
    l.kf = (k + 63) / 64 * 64;
    l.xw = tf ? l.ks * 8 : l.ks * 16;
    l.xst = tf ? l.xw + 4 : l.xw + 8;
    l.acc_ld = d + 2;
    int64_t at = 0;
    l.off_b = at;
    at += l.kf * l.cst * 4;
    l.off_cn = at;
    at += l.kf * 4;
    l.off_x = at;
    at += (int64_t)stages * FLI_KM_FUSED_BM * l.xst * 4;
    l.off_acc = at;
    at += ((priv ? FLI_KM_FUSED_WARPS : 1) * k * l.acc_ld * 4 + 15) / 16 * 16;
    l.off_red = at;
    at += 2 * FLI_KM_FUSED_BM * 8; /* best score and index per (half, row) */
    l.off_lab = at;
    at += FLI_KM_FUSED_BM * 4;
    l.bytes = at;
    if (L)
        *L = l;
    return at;
}

/* Which kernels a CUDA fit runs — the one rule the module (kmeans_fit.cu)
 * and the cost model share:
 *   FLI_KM_PATH_SM90: the job's backend is FL_BACKEND_CUDA_SM90, the Hopper
 *     path is enabled (sm90_enabled), the device is compute capability 9.0,
 *     the precision bf16, fp16 or tf32, dh 64 or 128 and its shared memory
 *     fits (the tf32 kernel reads X through TMA and falls back to the
 *     portable one for rows that are not 16-byte aligned);
 *   FLI_KM_PATH_FUSED: asked for (fused_opt_in: FL_KM_FUSED=1; measured
 *     slower than the separate kernels on the H100, see bench/gpu/NOTES.md),
 *     a tensor-core precision, the shared-memory M-step and a layout with
 *     private per-warp sums that fits smem_optin - 1024 (4..2 X stages; the
 *     chosen stages/priv are returned when the pointers are non-NULL). The
 *     single-copy layout (shared-memory float atomics: order-dependent sums)
 *     is never chosen, so every fit is reproducible bit for bit;
 *   FLI_KM_PATH_PORTABLE otherwise (mma.sync E-step, separate M-step). */
enum { FLI_KM_PATH_PORTABLE = 0, FLI_KM_PATH_FUSED = 1, FLI_KM_PATH_SM90 = 2 };
int fli_kmeans_cuda_path(const fli_kmeans_cuda_plan *plan, fli_precision precision, fl_backend backend,
                         int sm90_enabled, int cc_major, int cc_minor, int64_t smem_optin, int fused_opt_in,
                         int *fused_stages, int *fused_priv);

/* Within FLI_KM_PATH_PORTABLE, the tf32 E-step for k <= 64 that takes the
 * M-step's sums itself (k_estep_c64_acc: X read once per iteration): tf32,
 * k <= 64, d <= 32, the shared-memory M-step, X resident, and two blocks
 * of FLI_KM_EACC_SMEM(k) bytes (64 centre rows and 256 X rows of 36 words,
 * 8 warp copies of k x 32 sums and of k weights) per SM. The module also
 * keeps the separate kernels where an inertia trace is asked for (it needs
 * the M-step's objective every iteration) and for its A/B switches. */
#define FLI_KM_EACC_SMEM(k) ((int64_t)((64 + 256) * 36 + 8 * ((int64_t)(k)*32 + (k))) * 4)
int fli_kmeans_eacc(const fli_kmeans_cuda_plan *plan, fli_precision precision, int64_t smem_per_sm);

/* Plan a CUDA KMeans fit of X (n x d, fp32) into k clusters.
 * `device_mem_budget_bytes` bounds device_bytes (0 = no bound). When X is on
 * the host and the whole fit does not fit in the budget, X is streamed in
 * chunks of `chunk_rows` rows (double-buffered); X on the device is never
 * chunked. Errors: FL_STATUS_INVALID_ARG (bad sizes), FL_STATUS_DEVICE_OOM
 * (does not fit even with the smallest chunk). Pure function. */
fl_status fli_kmeans_plan_cuda(int64_t n, int64_t d, int64_t k, fli_precision precision, int x_on_device,
                               int have_weights, fli_metric metric, size_t device_mem_budget_bytes,
                               fli_kmeans_cuda_plan *plan);

/* The same plan with the chunk size given (0 or >= n = X resident). The
 * module calls this with job->chunk_rows. */
fl_status fli_kmeans_cuda_plan_chunk(int64_t n, int64_t d, int64_t k, fli_precision precision,
                                     int x_on_device, int have_weights, fli_metric metric, int64_t chunk_rows,
                                     fli_kmeans_cuda_plan *plan);

/* Host scratch of a fit beyond plan.host_bytes: two inertia traces (this
 * run, best run), 8 * min(max_iter, trace_cap) bytes each, when a trace is
 * asked for. */
size_t fli_kmeans_cuda_trace_host_bytes(int64_t max_iter, int64_t trace_cap);

#ifdef __cplusplus
}
#endif
#endif
