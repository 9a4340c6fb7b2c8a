/* cpu.h — entry points of the CPU backend (always built; the reference the
 * GPU backends are tested against). */
#ifndef FL_CPU_H
#define FL_CPU_H

#include "algo/kmeans_job.h"
#include "core/internal.h"

int fli_cpu_threads(const fl_ctx *ctx);
fl_status fli_cpu_kmeans_fit(fl_ctx *ctx, fli_kmeans_job *job);
fl_status fli_cpu_kmeans_assign(fl_ctx *ctx, fli_kmeans_assign_job *job);

#endif
