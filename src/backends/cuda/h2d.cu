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
 * pinned allocation (remembered: not asked for again by the context) copy
 * straight from the pageable memory as before.
 */
#include <string.h>

#include "backends/cuda/fl_cuda_util.cuh"

#define H2D_NBUF 3
#define H2D_BUF ((size_t)8 << 20)
#define H2D_MIN ((size_t)1 << 20)
#define H2D_PIECE ((size_t)512 << 10) /* bytes a host thread takes at a time */
/* Host threads that fill a buffer, at most: a few saturate the memory
 * bandwidth a copy can use, and on shared virtual machines every thread
 * more is one more that can be descheduled while the others wait for it
 * (16 threads gave 2-12x slower, erratic copies on the H200 machine). */
#define H2D_MAX_THREADS 4

typedef struct h2d_stage {
    void *buf[H2D_NBUF];
    cudaEvent_t done[H2D_NBUF];
    int next; /* the buffer the next copy starts with */
} h2d_stage;

/* What s->h2d holds once pinned memory could not be had: the context then
 * copies from pageable memory without asking the driver again on every
 * large copy. */
static h2d_stage h2d_unavailable;

void fli_h2d_release(fli_cuda_state *s) {
    h2d_stage *h = (h2d_stage *)s->h2d;
    if (!h || h == &h2d_unavailable) {
        s->h2d = NULL;
        return;
    }
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
    if (s->h2d) return s->h2d == &h2d_unavailable ? NULL : (h2d_stage *)s->h2d;
    h2d_stage *h = (h2d_stage *)calloc(1, sizeof *h);
    if (!h) return NULL;
    s->h2d = h;
    for (int b = 0; b < H2D_NBUF; b++) {
        if (cudaHostAlloc(&h->buf[b], H2D_BUF, cudaHostAllocDefault) != cudaSuccess ||
            cudaEventCreateWithFlags(&h->done[b], cudaEventDisableTiming) != cudaSuccess) {
            (void)cudaGetLastError();
            fli_h2d_release(s);
            s->h2d = &h2d_unavailable;
            return NULL;
        }
    }
    return h;
}

/* rows x width bytes from src (pitch spitch) into the packed buffer dst:
 * pieces of ~H2D_PIECE bytes handed out one at a time to up to `threads`
 * host threads, so one that is held up delays a piece, not a share. A
 * contiguous range is rows of one byte (width = spitch = 1). */
static void pack_rows(char *dst, const char *src, size_t spitch, size_t width, size_t rows, int threads) {
    const size_t piece_rows = width >= H2D_PIECE ? 1 : H2D_PIECE / width;
    const long pieces = (long)((rows + piece_rows - 1) / piece_rows);
    int nt = threads < H2D_MAX_THREADS ? threads : H2D_MAX_THREADS;
    if (nt > pieces) nt = (int)pieces;
    if (nt < 1) nt = 1;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (long q = 0; q < pieces; q++) {
        const size_t r0 = (size_t)q * piece_rows, r1 = r0 + piece_rows < rows ? r0 + piece_rows : rows;
        if (spitch == width)
            memcpy(dst + r0 * width, src + r0 * width, (r1 - r0) * width);
        else
            for (size_t r = r0; r < r1; r++) memcpy(dst + r * width, src + r * spitch, width);
    }
}

fl_status fli_h2d(fli_cuda_env *env, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                  size_t rows, cudaStream_t st) {
    if (rows == 0 || width == 0) return FL_STATUS_OK;
    h2d_stage *h = NULL;
    /* contiguous on both sides (or one row): cut by bytes, not rows (a vector
     * of weights is one row of any width) */
    const int contiguous = rows == 1 || (spitch == width && dpitch == width);
    if (env->h2d_staging && width * rows >= H2D_MIN && (contiguous || width <= H2D_BUF))
        h = stage_get(fli_state(env));
    if (!h) {
        FLI_CUDA_TRY(env, cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyHostToDevice, st));
        return FL_STATUS_OK;
    }
    /* units of `unit` bytes at source pitch sp: rows, or single bytes */
    const size_t unit = contiguous ? 1 : width, n = contiguous ? width * rows : rows, sp = contiguous ? 1 : spitch;
    const size_t per = H2D_BUF / unit; /* units per buffer */
    const int threads = env->host_threads > 0 ? env->host_threads : 1;
    int b = h->next;
    for (size_t u0 = 0; u0 < n; u0 += per) {
        const size_t m = n - u0 < per ? n - u0 : per;
        /* the buffer's previous DMA (of this copy or an earlier one) has read it */
        FLI_CUDA_TRY(env, cudaEventSynchronize(h->done[b]));
        pack_rows((char *)h->buf[b], (const char *)src + u0 * sp, sp, unit, m, threads);
        if (contiguous)
            FLI_CUDA_TRY(env, cudaMemcpyAsync((char *)dst + u0, h->buf[b], m, cudaMemcpyHostToDevice, st));
        else
            FLI_CUDA_TRY(env, cudaMemcpy2DAsync((char *)dst + u0 * dpitch, dpitch, h->buf[b], unit, unit, m,
                                                cudaMemcpyHostToDevice, st));
        FLI_CUDA_TRY(env, cudaEventRecord(h->done[b], st));
        b = (b + 1) % H2D_NBUF;
    }
    h->next = b;
    return FL_STATUS_OK;
}
