/* pca_tf3.cuh — PCA's fused 3xtf32 covariance product (pca_tf3.cu), the
 * product of pca_cuda.cu's variant 6. */
#ifndef FL_PCA_TF3_CUH
#define FL_PCA_TF3_CUH
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

/* Adds the lower-triangle 128 x 128 tiles of Z^T Z, Z = X[0:rows] - 1
 * shift^T (float32 X with leading dimension ld, both 16-byte aligned:
 * X % 16 == 0, ld % 4 == 0), into partial (pairs x splits blocks of 16384
 * doubles, pairs = nb (nb + 1) / 2, nb = ceil(d / 128)), and the column
 * sums of z and z^2 into colsum / colsq (splits x d doubles each). sm90:
 * the Hopper wgmma kernel (pca_tf3_sm90.cu; the module built with
 * FL_HAVE_SM90 and a compute capability 9.0 device), else mma.sync. */
extern "C" cudaError_t fli_pca_tf3_launch(const float *X, int64_t ld, int64_t rows, int d, const float *shift,
                                          int splits, int sm90, double *partial, double *colsum,
                                          double *colsq, cudaStream_t s);
/* S (d x d) = the product's halves, F = C / 2 on both triangles; sm90 as
 * the launch that filled partial. */
extern "C" cudaError_t fli_pca_tf3_fold(const double *partial, int splits, int d, int sm90, double *S,
                                        cudaStream_t s);
/* The mma.sync kernel's dynamic shared memory. */
extern "C" size_t fli_pca_tf3_smem(void);
#ifdef FL_HAVE_SM90
extern "C" cudaError_t fli_pca_tf3_sm90_launch(const float *X, int64_t ld, int64_t rows, int d,
                                               const float *shift, int splits, double *partial,
                                               double *colsum, double *colsq, cudaStream_t s);
#endif
#endif
