/*
 * knn_cuda.cuh — what the exact kNN driver (knn_cuda.cu) and its kernels
 * (knn_scan.cu) share: the launch arguments and the launchers.
 */
#ifndef FL_KNN_CUDA_CUH
#define FL_KNN_CUDA_CUH

#include <stdint.h>

#include "backends/cuda/fl_cuda_util.cuh"

/* One fused scan launch (see knn_scan.cu's contract). */
typedef struct knn_scan_args {
    const uint32_t *A; /* queries (words; fp32 for SIMT)              */
    int64_t lda;
    int a_words, a_aligned; /* valid words a row (SIMT: d); cp.async ok */
    int64_t m;
    const uint32_t *B; /* database rows of this chunk                  */
    int64_t ldb;
    int b_words, b_aligned;
    int64_t nb;
    int kw;  /* words a row, padded to 32                          */
    int res; /* queries resident in shared memory                  */
    int ntiles, tiles_per;
    const float2 *ab; /* ntiles * 128 score coefficients               */
    uint32_t base;    /* global index of the chunk's row 0               */
    uint64_t *out;    /* [slices][m_pad][32 R] keys                      */
    int64_t m_pad;
    int top_smem; /* top lists in shared memory (else in out)            */
    int self;
    int64_t self0; /* global database index of query row 0              */
    float p;
} knn_scan_args;

typedef struct knn_fin_args {
    const uint64_t *lists; /* [slices][m_pad][32 R]                      */
    int slices;
    int64_t m_pad, m, kprime, k;
    const float *q;
    int64_t ldq;
    const float *db; /* the chunk's fp32 rows                         */
    int64_t lddb;
    int d, vec, metric;
    float p;
    uint32_t base;
    const uint64_t *run_in; /* m x k keys of earlier chunks, or NULL    */
    uint64_t *run_out;      /* m x k keys when more chunks follow       */
    float *dist;
    int64_t dist_ld;
    int64_t *idx;
    int64_t idx_ld;
} knn_fin_args;

/* One Hopper scan launch (sm90/knn_scan_sm90.cu's contract). */
typedef struct knn_sm90_args {
    const void *qimg;  /* queries: image of tiles of 256 rows            */
    const void *dbimg; /* database: image of tiles of 128 rows           */
    int64_t m;
    int ntiles, tiles_per;
    const float2 *ab;
    uint32_t base;
    uint64_t *out; /* [slices][m_pad][32 R] keys (m_pad: multiple of 256) */
    int64_t m_pad;
    uint32_t *gthr; /* m_pad global bounds, all ones at the start       */
    int self;
    int64_t self0;
    int cb; /* set by the launcher                                         */
    int refresh_mask;   /* tiles j with (j & mask) == mask take the other slices' bounds */
    int kpos;           /* list position of the key that sets a query's threshold (k' - 1) */
} knn_sm90_args;

/* The operand image of x (m valid rows of mp, d columns) for the Hopper
 * scan: tiles of tile_rows rows, kb 128-byte column blocks a row (fp32
 * bits for tf32, else bf16/fp16 values), 16-byte chunks swizzled by
 * (row & 7); zeros past m and d. */
fl_status knn_img(fli_cuda_env *env, cudaStream_t s, const float *x, int64_t ldx, int64_t m, int64_t mp,
                  int64_t d, int prec, int kb, int tile_rows, void *img);
#ifdef FL_HAVE_SM90
/* Dynamic shared memory of the Hopper scan for kb column blocks (0: no
 * layout fits optin). */
size_t knn_sm90_smem(int kb, size_t optin);
fl_status knn_scan_sm90(fli_cuda_env *env, cudaStream_t s, const knn_sm90_args *P, int R, int prec, int kb,
                        int slices);
#endif
fl_status knn_prep_rows(fli_cuda_env *env, cudaStream_t s, const float *x, int64_t ldx, int64_t m, int64_t mp,
                        int64_t d, int64_t dh, int metric, int prec, float2 *ab, void *xh);
size_t knn_scan_smem(const knn_scan_args *P, int R, int simt);
fl_status knn_scan(fli_cuda_env *env, cudaStream_t s, const knn_scan_args *P, int R, int prec, int mode,
                   int slices);
fl_status knn_finalize(fli_cuda_env *env, cudaStream_t s, const knn_fin_args *F, int R);
fl_status knn_matrix(fli_cuda_env *env, cudaStream_t s, const float *q, int64_t ldq, int64_t m, const float *x,
                     int64_t ldx, int64_t nb, int64_t d, const float2 *ab, int mode, float p, uint32_t base,
                     int self, int64_t self0, float *keys, uint32_t *vals);
fl_status knn_offsets(fli_cuda_env *env, cudaStream_t s, int *off, int64_t n, int64_t len);
fl_status knn_pool(fli_cuda_env *env, cudaStream_t s, const uint32_t *sorted, int64_t nb, int64_t m,
                   int64_t kprime, int64_t k, const float *q, int64_t ldq, const float *x, int64_t ldx, int64_t d,
                   int vec, int metric, float p, uint32_t base, int self, int64_t self0, const uint64_t *run,
                   uint64_t *pool);
fl_status knn_take(fli_cuda_env *env, cudaStream_t s, const uint64_t *pool, int64_t L, int64_t m, int64_t k,
                   int metric, uint64_t *run, float *dist, int64_t dist_ld, int64_t *idx, int64_t idx_ld);

#endif
