/*
 * lapack.h — the few LAPACK routines the CPU backend calls, declared with
 * their Fortran ABI (trailing hidden lengths of character arguments, as
 * gfortran passes them).
 *
 * Why not LAPACKE: Debian's liblapacke links the system's liblapack.so.3
 * alternative, which is the pthread build of OpenBLAS, and it would bring a
 * second OpenBLAS with its own thread pool into every process. The routines
 * below are exported by the OpenMP build of OpenBLAS that flashlib already
 * links (see CMakeLists.txt), so calling them directly keeps one BLAS, one
 * thread pool and the OpenMP nesting rules the KMeans backend relies on.
 * LAPACK integers are 32-bit (LP64 build): callers check sizes first.
 */
#ifndef FL_CPU_LAPACK_H
#define FL_CPU_LAPACK_H

#include <stddef.h>

typedef int fli_lapack_int;

#define FLI_LAPACK_DECL(T, P)                                                                                \
    void P##gesdd_(const char *jobz, const int *m, const int *n, T *a, const int *lda, T *s, T *u,           \
                   const int *ldu, T *vt, const int *ldvt, T *work, const int *lwork, int *iwork, int *info, \
                   size_t jobz_len);                                                                         \
    void P##geqrf_(const int *m, const int *n, T *a, const int *lda, T *tau, T *work, const int *lwork,      \
                   int *info);                                                                               \
    void P##orgqr_(const int *m, const int *n, const int *k, T *a, const int *lda, const T *tau, T *work,    \
                   const int *lwork, int *info);                                                             \
    void P##getrf_(const int *m, const int *n, T *a, const int *lda, int *ipiv, int *info);

FLI_LAPACK_DECL(float, s)
FLI_LAPACK_DECL(double, d)
#undef FLI_LAPACK_DECL

void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len,
             size_t uplo_len);
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);

#endif
