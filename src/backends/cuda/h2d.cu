/*
 * h2d.cu — host -> device copies of pageable host arrays through pinned
 * staging buffers.
 *
 * A copy straight from pageable memory goes through the driver's own
 * staging at the speed of one host thread: the KMeans calibration fitted
 * 4.9 GB/s on the H100 machine, and the same 26 MB copy took 4 ms in one
 * call and 12-24 ms in another. Here the context's host threads copy the
 * rows into one of H2D_NBUF pinned buffers, and each buffer's DMA runs on
 * the caller's stream while the threads fill the next one, so the memory
 * bandwidth of several cores and the host link set the speed.
 *
 * The buffers (H2D_NBUF x H2D_BUF bytes of pinned host memory) are made on
 * the first copy of at least H2D_MIN bytes and kept by the context; an
 * event per buffer says when its last DMA is done, so a buffer is refilled
 * only after the device has read it, whichever stream that copy was on.
 * Smaller copies, rows wider than a buffer, h2d_staging 0 and a failed
 * pinned allocation copy straight from the pageable memory as before.
 */
#include <string.h>

#include "backends/cuda/fl_cuda_util.cuh"

#define H2D_NBUF 3
#define H2D_BUF ((size_t)8 << 20)
#define H2D_MIN ((size_t)1 << 20)
#define H2D_PER_THREAD ((size_t)512 << 10) /* bytes a host thread copies at least */

typedef struct h2d_stage {
    void *buf[H2D_NBUF];
    cudaEvent_t done[H2D_NBUF];
    int next; /* the buffer the next copy starts with */
} h2d_stage;

void fli_h2d_release(fli_cuda_state *s) {
    h2d_stage *h = (h2d_stage *)s->h2d;
    if (!h) return;
    for (int b = 0; b < H2D_NBUF; b++) {
        if (h->done[b]) {
            cudaEventSynchronize(h->done[b]);
            cudaEventDestroy(h->done[b]);
        }
        if (h->buf[b]) cudaFreeHost(h->buf[b]);
    }
    free(h);
    s->h2d = NULL;
}

/* The staging buffers, made on first use; NULL when pinned memory cannot be
 * had (the caller then copies from pageable memory). */
static h2d_stage *stage_get(fli_cuda_state *s) {
    if (s->h2d) return (h2d_stage *)s->h2d;
    h2d_stage *h = (h2d_stage *)calloc(1, sizeof *h);
    if (!h) return NULL;
    s->h2d = h;
    for (int b = 0; b < H2D_NBUF; b++) {
        if (cudaHostAlloc(&h->buf[b], H2D_BUF, cudaHostAllocDefault) != cudaSuccess ||
            cudaEventCreateWithFlags(&h->done[b], cudaEventDisableTiming) != cudaSuccess) {
            (void)cudaGetLastError();
            fli_h2d_release(s);
            return NULL;
        }
    }
    return h;
}

/* rows x width bytes from src (pitch spitch) into the packed buffer dst,
 * split over up to `threads` host threads. */
static void pack_rows(char *dst, const char *src, size_t spitch, size_t width, size_t rows, int threads) {
    const size_t bytes = width * rows;
    size_t t_max = bytes / H2D_PER_THREAD;
    int nt = t_max < (size_t)threads ? (int)(t_max > 0 ? t_max : 1) : threads;
    if (spitch == width) {
        /* contiguous: equal byte ranges, 64-byte aligned cuts */
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int t = 0; t < nt; t++) {
            size_t a = bytes * (size_t)t / (size_t)nt / 64 * 64;
            size_t b = t + 1 == nt ? bytes : bytes * (size_t)(t + 1) / (size_t)nt / 64 * 64;
            memcpy(dst + a, src + a, b - a);
        }
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; t++) {
        size_t r0 = rows * (size_t)t / (size_t)nt, r1 = rows * (size_t)(t + 1) / (size_t)nt;
        for (size_t r = r0; r < r1; r++) memcpy(dst + r * width, src + r * spitch, width);
    }
}

fl_status fli_h2d(fli_cuda_env *env, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                  size_t rows, cudaStream_t st) {
    if (rows == 0 || width == 0) return FL_STATUS_OK;
    h2d_stage *h = NULL;
    const int contiguous = spitch == width && dpitch == width;
    if (env->h2d_staging && width * rows >= H2D_MIN && (contiguous || width <= H2D_BUF))
        h = stage_get(fli_state(env));
    if (!h) {
        FLI_CUDA_TRY(env, cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyHostToDevice, st));
        return FL_STATUS_OK;
    }
    if (contiguous) {
        /* contiguous on both sides: cut it by bytes, not rows (a vector of
         * weights is one row of any width) */
        width *= rows;
        rows = 1;
    }
    const int threads = env->host_threads > 0 ? env->host_threads : 1;
    int b = h->next;
    if (rows == 1) {
        for (size_t o = 0; o < width; o += H2D_BUF) {
            const size_t m = width - o < H2D_BUF ? width - o : H2D_BUF;
            /* the buffer's previous DMA (of this copy or an earlier one) has read it */
            FLI_CUDA_TRY(env, cudaEventSynchronize(h->done[b]));
            pack_rows((char *)h->buf[b], (const char *)src + o, m, m, 1, threads);
            FLI_CUDA_TRY(env, cudaMemcpyAsync((char *)dst + o, h->buf[b], m, cudaMemcpyHostToDevice, st));
            FLI_CUDA_TRY(env, cudaEventRecord(h->done[b], st));
            b = (b + 1) % H2D_NBUF;
        }
    }
    const size_t per = H2D_BUF / width; /* rows per buffer */
    for (size_t r0 = 0; rows > 1 && r0 < rows; r0 += per) {
        const size_t m = rows - r0 < per ? rows - r0 : per;
        FLI_CUDA_TRY(env, cudaEventSynchronize(h->done[b]));
        pack_rows((char *)h->buf[b], (const char *)src + r0 * spitch, spitch, width, m, threads);
        FLI_CUDA_TRY(env, cudaMemcpy2DAsync((char *)dst + r0 * dpitch, dpitch, h->buf[b], width, width, m,
                                            cudaMemcpyHostToDevice, st));
        FLI_CUDA_TRY(env, cudaEventRecord(h->done[b], st));
        b = (b + 1) % H2D_NBUF;
    }
    h->next = b;
    return FL_STATUS_OK;
}
