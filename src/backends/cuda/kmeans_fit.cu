/*
 * kmeans_fit.cu — host drivers of the CUDA KMeans: kmeans_fit (init, Lloyd,
 * n_init restarts) and kmeans_assign (predict / transform / score).
 *
 * One arena per call, carved by the offsets of fli_kmeans_cuda_plan_chunk
 * (algo/kmeans_plan.c), allocated through the context's allocator and freed
 * on every path after the stream is drained. Outputs are written only after
 * everything succeeded.
 *
 * The Lloyd loop never waits for the device: convergence is decided by a
 * kernel that sets a device flag, every loop kernel returns at once when it
 * is set, and the host learns of it by reading a pinned host word that the
 * deciding kernel also writes (mapped memory: no copy in the stream; where
 * mapping is unavailable, a copy of the flag polled a few iterations late
 * with cudaEventQuery) to stop enqueueing.
 * X resident: the launches of one Lloyd iteration have no per-iteration
 * argument, so they are captured once per fit into a CUDA graph of
 * graph_iters iterations and replayed (cudaGraphLaunch); the first
 * iterations are launched directly while the capture is instantiated.
 * With a progress callback a graph holds one iteration, so the callback
 * still runs once per iteration at enqueue time.
 * X on the host that does not fit is streamed in chunks of plan.chunk_rows
 * rows, copied on a second stream into two buffers in turn, so the copy of
 * chunk c+1 overlaps the kernels of chunk c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/kmeans_cuda.cuh"

#define POLL_LAG 4 /* iterations between enqueueing a flag copy and reading it */
#define HFLAG_SLOT 8 /* cs->pinned[8]: the mapped "run done" word (0..3: polled copies) */
/* Iterations per graph launch without a progress callback (env->km_graph 0). */
#define GRAPH_ITERS_DEFAULT 4

typedef struct km_fit {
    fli_cuda_env *env;
    fli_cuda_state *cs;
    cudaStream_t s;
    fli_kmeans_job *job;
    fli_kmeans_cuda_plan p;
    char *arena;
    /* views into the arena */
    float *xbuf[2];
    void *xh;
    float *w;
    int32_t *labels, *best_labels, *reloc_idx, *init_idx;
    float *dist, *C, *cnorm, *bestC, *reloc, *closest, *pp_cand;
    void *ctc;
    double *colstats, *colpart, *cumsum, *trace, *part, *pp_part;
    float2 *xst;        /* per-row rounding statistics (tensor-core precisions) */
    int4 *tie_list;     /* near-tied rows of an E-step (tensor-core precisions) */
    km_scalars *sc;
    km_mstep_bufs mb;
    /* kernel choices, fixed for the fit */
    int fused;          /* fused E+M kernel (small k*d)                   */
    km_fused_cfg fcfg;
    int sm90;           /* Hopper wgmma E-step (job->backend CUDA_SM90)    */
    int img;            /* its 16-bit operand images (bf16/fp16 sm90)      */
    int eacc;           /* tf32 k <= 64 E-step with the M-step's sums (km_estep_acc) */
    int folded_reloc;   /* relocation inside the M-step's combine          */
    int mobj;           /* the M-step computes the objective (see kmeans_fit) */
    int rescore;        /* near-tie re-scoring in the E-step (FL_KM_RESCORE=0: off) */
    unsigned long long stat_rescored, stat_rows; /* over the fit's runs        */
    /* CUDA graph of the Lloyd iteration (see the top of the file) */
    int graph_iters;         /* iterations per graph launch, 0: direct launches */
    int graph_failed;        /* capture or instantiation failed: direct launches */
    int graph_used;          /* iterations per graph launch actually replayed     */
    cudaGraphExec_t gexec;   /* captured at the first run, reused by the others  */
    int32_t *hflag_host, *hflag_dev; /* mapped "run done" word, or NULL          */
    /* chunking */
    km_rows res;             /* resident rows when not chunked */
    int64_t issued[2];       /* chunk index copied into each buffer, -1 none */
    cudaEvent_t copied[2], consumed[2];
    int events;
} km_fit;

static int prec16(fli_precision p) { return p == FLI_PREC_BF16 || p == FLI_PREC_FP16; }

static void carve(km_fit *f) {
    const fli_kmeans_cuda_plan *p = &f->p;
    char *a = f->arena;
    f->xbuf[0] = p->x_bufs ? (float *)(a + p->off_x) : NULL;
    f->xbuf[1] = p->x_bufs > 1 ? f->xbuf[0] + p->chunk_rows * p->dp : NULL;
    f->xh = prec16(f->job->precision) ? (void *)(a + p->off_xh) : NULL;
    f->labels = (int32_t *)(a + p->off_labels);
    f->best_labels = (int32_t *)(a + p->off_best_labels);
    f->dist = (float *)(a + p->off_dist);
    f->C = (float *)(a + p->off_centers);
    f->ctc = f->job->precision == FLI_PREC_FP32 ? NULL : (void *)(a + p->off_centers_tc);
    f->cnorm = (float *)(a + p->off_cnorm);
    f->bestC = (float *)(a + p->off_best_centers);
    f->colstats = (double *)(a + p->off_colstats);
    f->colpart = (double *)(a + p->off_colpart);
    f->xst = f->job->precision != FLI_PREC_FP32 ? (float2 *)(a + p->off_xst) : NULL;
    f->tie_list = f->job->precision != FLI_PREC_FP32 ? (int4 *)(a + p->off_tie_list) : NULL;
    f->reloc = p->chunked ? (float *)(a + p->off_reloc) : NULL;
    f->reloc_idx = (int32_t *)(a + p->off_reloc_idx);
    char *sc = a + p->off_scalars;
    f->sc = (km_scalars *)sc;
    f->trace = (double *)(sc + 256);
    f->part = f->trace + FLI_KM_TRACE_RING;
    f->pp_part = f->part + FLI_KM_NPART;
    f->closest = (float *)(a + p->off_closest);
    f->cumsum = (double *)(a + p->off_cumsum);
    f->init_idx = (int32_t *)(a + p->off_init_idx);
    f->pp_cand = (float *)(a + p->off_pp_cand);
    km_mstep_bufs *b = &f->mb;
    b->sums = (double *)(a + p->off_sums);
    b->wsum = (double *)(a + p->off_wsum);
    b->cobj = (double *)(a + p->off_cobj);
    b->dist = f->dist;
    b->part = f->part;
    b->acc_part = (float *)(a + p->off_acc_part);
    b->cnt = (int32_t *)(a + p->off_cnt);
    b->perm = (int32_t *)(a + p->off_perm);
    b->piece_off = (int32_t *)(a + p->off_piece_off);
    b->psum = (float *)(a + p->off_psum);
    b->pw = (float *)(a + p->off_pw);
    b->pobj = (double *)(a + p->off_pobj);
    b->pcnt = (int32_t *)(a + p->off_pcnt);
    b->prev = (int32_t *)(a + p->off_prev);
    b->ncount = (int32_t *)(a + p->off_ncount);
    b->delta = 0;
    b->scan_tmp = a + p->off_scan_tmp;
    f->w = NULL;
    if (f->job->weights)
        f->w = f->job->x_dev >= 0 ? (float *)f->job->weights : (float *)(a + p->off_w);
}

/* The E-step's operands of resident rows r: 16-bit copy and the per-row
 * rounding statistics of the near-tie test (tf32 rounds X in the kernel,
 * so it needs the statistics only). The fused kernel needs neither. */
static fl_status prepare_operands(km_fit *f, km_rows *r) {
    const fli_kmeans_job *j = f->job;
    r->xst = NULL;
    if (f->fused || j->precision == FLI_PREC_FP32) return FL_STATUS_OK;
    r->xst = f->xst;
    if (f->xh)
        return km_convert_rows(f->env, f->s, r->x, r->ldx, r->m, j->d, f->p.dh, j->precision, f->xh,
                               f->img, f->xst);
    /* the Hopper tf32 E-step reads X's fp32 bits as tf32 (truncated) */
    return km_row_stats(f->env, f->s, r->x, r->ldx, r->m, j->d, j->precision, f->sm90, f->xst);
}

/* Rows [row0, row0+m) of a chunk after its copy: cosine normalisation in
 * place, 16-bit conversion, row statistics. */
static fl_status finish_rows(km_fit *f, km_rows *r) {
    const fli_kmeans_job *j = f->job;
    if (j->metric == FLI_METRIC_COSINE && j->x_dev < 0)
        FLI_TRY(km_normalize_rows(f->env, f->s, r->x, r->ldx, (float *)r->x, r->ldx, r->m, j->d));
    return prepare_operands(f, r);
}

static void chunk_range(const km_fit *f, int64_t ci, int64_t *row0, int64_t *m) {
    *row0 = ci * f->p.chunk_rows;
    int64_t e = *row0 + f->p.chunk_rows;
    *m = (e < f->p.n ? e : f->p.n) - *row0;
}

static fl_status issue_copy(km_fit *f, int64_t ci) {
    int b = (int)(ci & 1);
    if (f->issued[b] == ci) return FL_STATUS_OK;
    int64_t row0, m;
    chunk_range(f, ci, &row0, &m);
    const fli_kmeans_job *j = f->job;
    /* the buffer is free once the kernels of its previous chunk are done */
    FLI_CUDA_TRY(f->env, cudaStreamWaitEvent(f->cs->copy_stream, f->consumed[b], 0));
    FLI_TRY(fli_h2d(f->env, f->xbuf[b], f->p.dp * 4, (const float *)j->X + row0 * j->ld, j->ld * 4, j->d * 4,
                    m, f->cs->copy_stream));
    FLI_CUDA_TRY(f->env, cudaEventRecord(f->copied[b], f->cs->copy_stream));
    f->issued[b] = ci;
    return FL_STATUS_OK;
}

/* Makes chunk ci resident and describes it in *r. After the caller has
 * enqueued its kernels it calls chunk_done, which starts the next copy. */
static fl_status chunk_get(km_fit *f, int64_t ci, km_rows *r) {
    if (!f->p.chunked) {
        *r = f->res;
        return FL_STATUS_OK;
    }
    int b = (int)(ci & 1);
    FLI_TRY(issue_copy(f, ci));
    FLI_CUDA_TRY(f->env, cudaStreamWaitEvent(f->s, f->copied[b], 0));
    chunk_range(f, ci, &r->row0, &r->m);
    r->x = f->xbuf[b];
    r->ldx = f->p.dp;
    r->x_aligned = 1;
    r->xh = f->xh;
    r->w = f->w ? f->w + r->row0 : NULL;
    r->xst = NULL;
    return finish_rows(f, r);
}

static fl_status chunk_done(km_fit *f, int64_t ci) {
    if (!f->p.chunked) return FL_STATUS_OK;
    FLI_CUDA_TRY(f->env, cudaEventRecord(f->consumed[ci & 1], f->s));
    return issue_copy(f, (ci + 1) % f->p.n_chunks);
}

/* Copies rows idx[0..cnt) (host indices) of host X into dst (stride dp). */
static fl_status fetch_host_rows(km_fit *f, const int32_t *idx, int64_t cnt, float *dst) {
    const fli_kmeans_job *j = f->job;
    for (int64_t q = 0; q < cnt; q++)
        FLI_CUDA_TRY(f->env, cudaMemcpyAsync(dst + q * f->p.dp, (const float *)j->X + (int64_t)idx[q] * j->ld,
                                             j->d * 4, cudaMemcpyHostToDevice, f->s));
    return FL_STATUS_OK;
}

static fl_status prepare_resident(km_fit *f) {
    fli_kmeans_job *j = f->job;
    fli_cuda_env *env = f->env;
    if (j->weights && j->x_dev < 0)
        FLI_TRY(fli_h2d(env, f->w, j->n * 4, j->weights, j->n * 4, j->n * 4, 1, f->s));
    if (f->p.chunked) return FL_STATUS_OK;
    km_rows *r = &f->res;
    r->row0 = 0;
    r->m = j->n;
    r->w = f->w;
    r->xh = f->xh;
    r->xst = NULL;
    if (j->x_dev >= 0) {
        r->x = (const float *)j->X;
        r->ldx = j->ld;
        if (j->metric == FLI_METRIC_COSINE) {
            FLI_TRY(km_normalize_rows(env, f->s, r->x, r->ldx, f->xbuf[0], f->p.dp, j->n, j->d));
            r->x = f->xbuf[0];
            r->ldx = f->p.dp;
        }
    } else {
        FLI_TRY(fli_h2d(env, f->xbuf[0], f->p.dp * 4, j->X, j->ld * 4, j->d * 4, j->n, f->s));
        r->x = f->xbuf[0];
        r->ldx = f->p.dp;
    }
    r->x_aligned = ((uintptr_t)r->x % 16 == 0) && (r->ldx % 4 == 0);
    if (j->metric == FLI_METRIC_COSINE && j->x_dev < 0)
        FLI_TRY(km_normalize_rows(env, f->s, r->x, r->ldx, (float *)r->x, r->ldx, j->n, j->d));
    return prepare_operands(f, r);
}

__global__ void k_run_reset(km_scalars *sc) {
    double tol = sc->tol_abs;
    char *p = (char *)sc;
    for (int i = 0; i < (int)sizeof(km_scalars); i++) p[i] = 0;
    sc->tol_abs = tol;
}

__global__ void k_iter_begin(km_scalars *sc, int check_done) {
    if (check_done && sc->done) return;
    sc->inertia = 0;
    sc->n_changed = 0;
}

__global__ void k_fill_weights_cum(const float *w, int64_t n, double *cum) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        cum[i] = w[i];
}

/* 'random': k distinct rows, uniformly (Floyd's algorithm), in draw order. */
static fl_status init_random(km_fit *f, uint64_t seed, void *host_scratch) {
    const fli_kmeans_job *j = f->job;
    int64_t hs = 1;
    while (hs < 2 * j->k) hs *= 2;
    int64_t *set = (int64_t *)host_scratch;
    int32_t *chosen = (int32_t *)(set + hs);
    for (int64_t i = 0; i < hs; i++) set[i] = -1;
    int64_t cnt = 0;
    for (int64_t t = j->n - j->k; t < j->n; t++) {
        int64_t r = (int64_t)(fli_uniform(seed, 1, (uint64_t)t) * (double)(t + 1));
        if (r > t) r = t;
        /* insert r, or t when r is already taken */
        for (int pass = 0; pass < 2; pass++) {
            int64_t v = pass ? t : r, h = (int64_t)(fli_mix64((uint64_t)v) & (uint64_t)(hs - 1));
            int found = 0;
            while (set[h] >= 0) {
                if (set[h] == v) {
                    found = 1;
                    break;
                }
                h = (h + 1) & (hs - 1);
            }
            if (!found) {
                set[h] = v;
                chosen[cnt++] = (int32_t)v;
                break;
            }
        }
    }
    if (f->p.chunked) return fetch_host_rows(f, chosen, j->k, f->C);
    FLI_CUDA_TRY(f->env, cudaMemcpyAsync(f->init_idx, chosen, j->k * 4, cudaMemcpyHostToDevice, f->s));
    return km_gather_rows(f->env, f->s, f->res.x, f->res.ldx, f->init_idx, j->k, j->d, f->C, f->p.dp);
}

/* Candidate rows of the current group into pp_cand. */
static fl_status pp_fetch(km_fit *f, const int32_t *dev_idx, int64_t cnt) {
    if (!f->p.chunked)
        return km_gather_rows(f->env, f->s, f->res.x, f->res.ldx, dev_idx, cnt, f->job->d,
                              f->pp_cand, f->p.dp);
    int32_t idx[FLI_KM_PP_GROUP];
    FLI_CUDA_TRY(f->env, cudaMemcpyAsync(idx, dev_idx, cnt * 4, cudaMemcpyDeviceToHost, f->s));
    FLI_CUDA_TRY(f->env, cudaStreamSynchronize(f->s));
    FLI_TRY(fetch_host_rows(f, idx, cnt, f->pp_cand));
    if (f->job->metric == FLI_METRIC_COSINE)
        FLI_TRY(km_normalize_rows(f->env, f->s, f->pp_cand, f->p.dp, f->pp_cand, f->p.dp, cnt,
                                  f->job->d));
    return FL_STATUS_OK;
}

static fl_status init_kmeanspp(km_fit *f, uint64_t seed) {
    const fli_kmeans_job *j = f->job;
    fli_cuda_env *env = f->env;
    const int64_t n = j->n, d = j->d, dp = f->p.dp;
    void *tmp = f->arena + f->p.off_scan_tmp;
    if (f->w) {
        k_fill_weights_cum<<<1024, 256, 0, f->s>>>(f->w, n, f->cumsum);
        FLI_LAUNCH_TRY(env, "k_fill_weights_cum");
        FLI_TRY(km_scan_f64(env, f->s, f->cumsum, n, 1, tmp));
    }
    FLI_TRY(km_pp_first(env, f->s, f->cumsum, n, f->w != NULL, seed, f->sc));
    FLI_TRY(pp_fetch(f, &f->sc->best_cand, 1));
    FLI_CUDA_TRY(env, cudaMemcpyAsync(f->C, f->pp_cand, d * 4, cudaMemcpyDeviceToDevice, f->s));
    const int64_t L = j->n_local_trials > 0 ? j->n_local_trials : 1;
    for (int64_t s = 1; s < j->k; s++) {
        for (int64_t ci = 0; ci < f->p.n_chunks; ci++) {
            km_rows r;
            FLI_TRY(chunk_get(f, ci, &r));
            FLI_TRY(km_pp_closest(env, f->s, &r, d, f->C + (s - 1) * dp, f->closest, f->cumsum,
                                  s == 1));
            FLI_TRY(chunk_done(f, ci));
        }
        FLI_TRY(km_scan_f64(env, f->s, f->cumsum, n, 1, tmp));
        for (int64_t g0 = 0; g0 < L; g0 += FLI_KM_PP_GROUP) {
            int64_t cnt = L - g0 < FLI_KM_PP_GROUP ? L - g0 : FLI_KM_PP_GROUP;
            FLI_TRY(km_pp_candidates(env, f->s, f->cumsum, n, seed, s, g0, cnt, f->sc));
            FLI_TRY(pp_fetch(f, f->sc->cand, cnt));
            for (int64_t ci = 0; ci < f->p.n_chunks; ci++) {
                km_rows r;
                FLI_TRY(chunk_get(f, ci, &r));
                FLI_TRY(km_pp_score(env, f->s, &r, d, f->pp_cand, dp, cnt, f->closest, f->pp_part,
                                    ci == 0));
                FLI_TRY(chunk_done(f, ci));
            }
            FLI_TRY(km_pp_choose(env, f->s, f->pp_part, cnt, g0 == 0, f->pp_cand, dp, d,
                                 f->C + s * dp, f->sc));
        }
    }
    return FL_STATUS_OK;
}

/* The near-tie test's arguments for an E-step of rows r. */
static km_tie tie_args(const km_fit *f, const km_rows *r) {
    const fli_kmeans_job *j = f->job;
    /* K of the tensor-core products: tf32 runs over dp words, 16-bit over dh */
    const int64_t kdim = j->precision == FLI_PREC_TF32 ? f->p.dp : f->p.dh;
    return km_tie_args(r, f->C, f->p.dp, j->d, j->metric, j->precision, kdim, f->sc, f->tie_list,
                       f->rescore);
}

/* The E-step of one chunk on the kernel chosen for this fit. */
static fl_status estep(km_fit *f, const km_rows *r, int32_t *n_changed, const int32_t *done) {
    fli_kmeans_job *j = f->job;
    const km_tie tie = tie_args(f, r);
    if (f->sm90 && (f->img || km_sm90_tf32_ok(r)))
        return km_estep_sm90(f->env, f->s, r, f->ctc, j->d, f->p.dh, f->p.dp, f->cnorm, f->p.kp, j->metric,
                             j->precision, f->labels, n_changed, &tie, done);
    return km_estep(f->env, f->s, r, j->d, f->C, f->p.dp, f->ctc, f->p.dh, f->cnorm, j->k, f->p.kp,
                    j->metric, j->precision, f->labels, n_changed, &tie, done);
}

/* One E-step over all chunks, then the objective (final pass). */
static fl_status final_assign(km_fit *f) {
    fli_kmeans_job *j = f->job;
    fli_cuda_env *env = f->env;
    FLI_TRY(km_prep_centers(env, f->s, f->C, j->k, f->p.kp, j->d, f->p.dp, f->p.dh, j->metric,
                            j->precision, f->ctc, f->cnorm, f->img, f->sc->cb, NULL));
    k_iter_begin<<<1, 1, 0, f->s>>>(f->sc, 0);
    FLI_LAUNCH_TRY(env, "k_iter_begin");
    for (int64_t ci = 0; ci < f->p.n_chunks; ci++) {
        km_rows r;
        FLI_TRY(chunk_get(f, ci, &r));
        if (f->fused) {
            int nblk = 0;
            FLI_TRY(km_fused(env, f->s, &f->p, &f->fcfg, &r, f->ctc, f->cnorm, f->C, j->metric,
                             j->precision, f->labels, NULL, NULL, f->mb.acc_part, f->part, 0, &nblk,
                             NULL));
            FLI_TRY(km_sum_part(env, f->s, f->part, nblk, f->sc));
        } else {
            FLI_TRY(estep(f, &r, NULL, NULL));
            FLI_TRY(km_objective(env, f->s, &r, j->d, f->C, f->p.dp, f->labels, j->metric, NULL,
                                 f->part, f->sc, NULL));
        }
        FLI_TRY(chunk_done(f, ci));
    }
    return FL_STATUS_OK;
}

static fl_status relocate(km_fit *f) {
    fli_cuda_env *env = f->env;
    const int32_t *done = &f->sc->done;
    if (!f->p.chunked)
        return km_relocate(env, f->s, &f->p, f->res.x, f->res.ldx, f->w, f->labels, f->dist,
                           f->mb.sums, f->mb.wsum, f->reloc_idx, NULL, 0, f->sc, done);
    /* chunked: the rows live on the host, so pick on the device, fetch the
     * picked rows, then apply (one host round trip, only when needed) */
    FLI_TRY(km_relocate(env, f->s, &f->p, NULL, 0, f->w, f->labels, f->dist, f->mb.sums,
                        f->mb.wsum, f->reloc_idx, NULL, 1, f->sc, done));
    int32_t h[2];
    FLI_CUDA_TRY(env, cudaMemcpyAsync(h, &f->sc->done, 4, cudaMemcpyDeviceToHost, f->s));
    FLI_CUDA_TRY(env, cudaMemcpyAsync(h + 1, &f->sc->n_empty, 4, cudaMemcpyDeviceToHost, f->s));
    FLI_CUDA_TRY(env, cudaStreamSynchronize(f->s));
    if (h[0] || h[1] == 0) return FL_STATUS_OK;
    int32_t *idx = (int32_t *)fli_host_alloc(env, (size_t)h[1] * 4);
    if (!idx) return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "relocate", "host allocation failed");
    fl_status st = FL_STATUS_OK;
    cudaError_t e = cudaMemcpy(idx, f->reloc_idx, (size_t)h[1] * 4, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) st = fli_cuda_fail(env, __FILE__, __LINE__, "cudaMemcpy(reloc_idx)", e);
    if (st == FL_STATUS_OK) st = fetch_host_rows(f, idx, h[1], f->reloc);
    if (st == FL_STATUS_OK) e = cudaStreamSynchronize(f->s);
    if (st == FL_STATUS_OK && e != cudaSuccess)
        st = fli_cuda_fail(env, __FILE__, __LINE__, "cudaStreamSynchronize", e);
    fli_host_free(env, idx);
    FLI_TRY(st);
    if (f->job->metric == FLI_METRIC_COSINE)
        FLI_TRY(km_normalize_rows(env, f->s, f->reloc, f->p.dp, f->reloc, f->p.dp, h[1], f->job->d));
    return km_relocate(env, f->s, &f->p, NULL, 0, f->w, f->labels, f->dist, f->mb.sums,
                       f->mb.wsum, f->reloc_idx, f->reloc, 2, f->sc, done);
}

typedef struct run_result {
    double inertia;
    int64_t n_iter;
} run_result;

/* Relocation arguments of the folded path (fixed for the fit). */
static void reloc_args(const km_fit *f, km_reloc_args *ra) {
    memset(ra, 0, sizeof *ra);
    if (!f->folded_reloc) return;
    ra->enabled = 1;
    ra->xres = f->res.x;
    ra->ldx = f->res.ldx;
    ra->w = f->w;
    ra->labels = f->labels;
    ra->n = f->job->n;
    ra->reloc_idx = f->reloc_idx;
}

/* The launches of one Lloyd iteration after the centre operands are ready:
 * E-step and M-step per chunk, relocation, new centres and the decision.
 * Every argument is fixed for the fit (the iteration index lives on the
 * device), so a capture of these launches replays any iteration. The
 * iteration's scalars were zeroed by k_run_reset (first) or by the
 * previous iteration's k_finalize. */
static fl_status lloyd_iter(km_fit *f, const km_reloc_args *ra) {
    fli_kmeans_job *j = f->job;
    fli_cuda_env *env = f->env;
    const int32_t *done = &f->sc->done;
    for (int64_t ci = 0; ci < f->p.n_chunks; ci++) {
        km_rows r;
        FLI_TRY(chunk_get(f, ci, &r));
        if (f->fused) {
            int nblk = 0;
            FLI_TRY(km_fused(env, f->s, &f->p, &f->fcfg, &r, f->ctc, f->cnorm, f->C, j->metric,
                             j->precision, f->labels, &f->sc->n_changed, f->dist, f->mb.acc_part,
                             f->part, 1, &nblk, done));
            FLI_TRY(km_combine(env, f->s, &f->p, &f->mb, nblk, f->sc, ci == 0, ra, done));
        } else if (f->eacc) {
            int nblk = 0;
            const km_tie tie = tie_args(f, &r);
            FLI_TRY(km_estep_acc(env, f->s, &r, j->d, f->p.dp, f->ctc, f->cnorm, j->k, j->metric, f->labels,
                                 &f->sc->n_changed, &tie, f->mb.acc_part, f->part, &nblk, done));
            FLI_TRY(km_combine(env, f->s, &f->p, &f->mb, nblk, f->sc, ci == 0, ra, done));
        } else {
            FLI_TRY(estep(f, &r, &f->sc->n_changed, done));
            FLI_TRY(km_accumulate(env, f->s, &f->p, &r, f->C, f->labels, j->metric, &f->mb, f->sc,
                                  ci == 0, ra, f->mobj, done));
        }
        FLI_TRY(chunk_done(f, ci));
    }
    if (!f->mobj)
        FLI_TRY(km_reloc_obj(env, f->s, &f->p, f->res.x, f->res.ldx, f->w, f->labels, f->C, j->metric,
                             f->dist, f->mb.sums, f->mb.wsum, f->reloc_idx, f->sc,
                             f->mb.delta ? f->mb.prev : NULL, f->mb.delta ? f->mb.ncount : NULL, done));
    else if (!f->folded_reloc)
        FLI_TRY(relocate(f));
    return km_finalize(env, f->s, &f->p, f->C, f->mb.sums, f->mb.wsum, f->mb.cobj, j->metric,
                       j->precision, f->ctc, f->img, f->cnorm, f->sc, f->trace, f->hflag_dev, done);
}

/* Captures graph_iters iterations of lloyd_iter on the fit's stream and
 * instantiates them into f->gexec. Work already enqueued keeps running on
 * the device meanwhile (the capture only records). On failure the stream
 * leaves capture mode, nothing captured has run, and the caller falls back
 * to direct launches (the message stays in env->err for diagnosis). */
static fl_status capture_graph(km_fit *f, const km_reloc_args *ra) {
    fli_cuda_env *env = f->env;
    /* relaxed: the launchers set function attributes and query occupancy */
    FLI_CUDA_TRY(env, cudaStreamBeginCapture(f->s, cudaStreamCaptureModeRelaxed));
    fl_status st = FL_STATUS_OK;
    for (int u = 0; u < f->graph_iters && st == FL_STATUS_OK; u++) st = lloyd_iter(f, ra);
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(f->s, &g);
    if (st == FL_STATUS_OK && e != cudaSuccess)
        st = fli_cuda_fail(env, __FILE__, __LINE__, "cudaStreamEndCapture", e);
    if (st == FL_STATUS_OK) {
        e = cudaGraphInstantiate(&f->gexec, g, 0);
        if (e != cudaSuccess) {
            f->gexec = NULL;
            st = fli_cuda_fail(env, __FILE__, __LINE__, "cudaGraphInstantiate", e);
        }
    }
    if (g) cudaGraphDestroy(g);
    if (st != FL_STATUS_OK) (void)cudaGetLastError();
    return st;
}

static fl_status lloyd(km_fit *f, double *run_trace, int64_t trace_keep, run_result *res) {
    fli_kmeans_job *j = f->job;
    fli_cuda_env *env = f->env;
    const int32_t *done = &f->sc->done;
    int32_t *pinned = f->cs->pinned;
    cudaEvent_t poll[POLL_LAG];
    int npoll = 0;
    fl_status st = FL_STATUS_OK;
    /* the copied-flag poll only where the flag cannot be written to the host */
    for (; !f->hflag_host && npoll < POLL_LAG; npoll++) {
        cudaError_t e = cudaEventCreateWithFlags(&poll[npoll], cudaEventDisableTiming);
        if (e != cudaSuccess) {
            st = fli_cuda_fail(env, __FILE__, __LINE__, "cudaEventCreate", e);
            break;
        }
    }
    /* the previous run's kernels are done (its result copy synchronised) */
    if (f->hflag_host) *(volatile int32_t *)f->hflag_host = 0;
    km_reloc_args ra;
    reloc_args(f, &ra);
    /* graph launches cover iterations [gstart, max_iter) exactly; the ones
     * before run directly, overlapping the capture at the first run */
    const int64_t gi = f->graph_iters;
    const int64_t gstart = gi > 0 ? 1 + (j->max_iter - 1) % gi : j->max_iter;
    int64_t it = 0, ring_copied = 0, nl = 0;
    while (st == FL_STATUS_OK && it < j->max_iter) {
        if (env->progress && env->progress(env->progress_user, "kmeans.lloyd", it, j->max_iter)) {
            st = FLI_FAIL(env, FL_STATUS_CANCELLED, "kmeans_fit", "cancelled by the progress callback");
            break;
        }
        /* the centre operands of iterations after the first come from k_finalize */
        if (it == 0)
            st = km_prep_centers(env, f->s, f->C, j->k, f->p.kp, j->d, f->p.dp, f->p.dh, j->metric,
                                 j->precision, f->ctc, f->cnorm, f->img, f->sc->cb, done);
        if (st != FL_STATUS_OK) break;
        int64_t step = 1;
        int launched = 0;
        if (gi > 0 && it >= gstart) {
            if (!f->gexec && !f->graph_failed && capture_graph(f, &ra) != FL_STATUS_OK)
                f->graph_failed = 1;
            if (f->gexec) {
                cudaError_t e = cudaGraphLaunch(f->gexec, f->s);
                if (e != cudaSuccess) {
                    st = fli_cuda_fail(env, __FILE__, __LINE__, "cudaGraphLaunch", e);
                    break;
                }
                launched = 1;
                step = gi;
                f->graph_used = (int)gi;
            }
        }
        if (!launched) st = lloyd_iter(f, &ra);
        if (st != FL_STATUS_OK) break;
        /* the trace ring is full: move it to the host (rare: every 256;
         * graphs of several iterations are used only when it never fills) */
        if (trace_keep > 0 && (it + step) / FLI_KM_TRACE_RING > it / FLI_KM_TRACE_RING &&
            ring_copied < trace_keep) {
            int64_t cnt = trace_keep - ring_copied < FLI_KM_TRACE_RING ? trace_keep - ring_copied
                                                                       : FLI_KM_TRACE_RING;
            cudaError_t e = cudaMemcpyAsync(run_trace + ring_copied, f->trace, cnt * 8,
                                            cudaMemcpyDeviceToHost, f->s);
            if (e == cudaSuccess) e = cudaStreamSynchronize(f->s);
            if (e != cudaSuccess) {
                st = fli_cuda_fail(env, __FILE__, __LINE__, "trace copy", e);
                break;
            }
            ring_copied += FLI_KM_TRACE_RING;
        }
        it += step;
        if (f->hflag_host) {
            /* written by k_finalize when the run is done: stop enqueueing */
            if (*(volatile int32_t *)f->hflag_host) break;
            continue;
        }
        /* poll the done flag copied POLL_LAG launches ago without blocking */
        int slot = (int)(nl % POLL_LAG);
        if (nl++ >= POLL_LAG) {
            cudaError_t q = cudaEventQuery(poll[slot]);
            if (q == cudaSuccess && pinned[slot]) break;
            if (q != cudaSuccess && q != cudaErrorNotReady) {
                st = fli_cuda_fail(env, __FILE__, __LINE__, "cudaEventQuery", q);
                break;
            }
        }
        cudaError_t e = cudaMemcpyAsync(&pinned[slot], done, 4, cudaMemcpyDeviceToHost, f->s);
        if (e == cudaSuccess) e = cudaEventRecord(poll[slot], f->s);
        if (e != cudaSuccess) {
            st = fli_cuda_fail(env, __FILE__, __LINE__, "poll copy", e);
            break;
        }
    }
    if (st == FL_STATUS_OK) st = final_assign(f);
    km_scalars h;
    if (st == FL_STATUS_OK) {
        cudaError_t e = cudaMemcpyAsync(&h, f->sc, sizeof h, cudaMemcpyDeviceToHost, f->s);
        if (e == cudaSuccess) e = cudaStreamSynchronize(f->s);
        if (e != cudaSuccess) st = fli_cuda_fail(env, __FILE__, __LINE__, "result copy", e);
    }
    if (st == FL_STATUS_OK) {
        res->inertia = h.inertia;
        res->n_iter = h.n_iter > 0 ? h.n_iter : (it < j->max_iter ? it : j->max_iter);
        /* E-steps of this run: one per iteration and the final assignment */
        f->stat_rescored += h.n_rescored;
        f->stat_rows += (unsigned long long)j->n * (unsigned long long)(res->n_iter + 1);
        /* ring_copied is a multiple of the ring: what is left starts at 0 */
        int64_t keep = res->n_iter < trace_keep ? res->n_iter : trace_keep;
        if (keep > ring_copied) {
            cudaError_t e = cudaMemcpy(run_trace + ring_copied, f->trace, (keep - ring_copied) * 8,
                                       cudaMemcpyDeviceToHost);
            if (e != cudaSuccess) st = fli_cuda_fail(env, __FILE__, __LINE__, "trace copy", e);
        }
    }
    for (int i = 0; i < npoll; i++) cudaEventDestroy(poll[i]);
    return st;
}

static fl_status fit_body(km_fit *f, void *host_scratch, double *traces, int64_t trace_keep) {
    fli_kmeans_job *j = f->job;
    fli_cuda_env *env = f->env;
    for (int b = 0; b < 2; b++) {
        FLI_CUDA_TRY(env, cudaEventCreateWithFlags(&f->copied[b], cudaEventDisableTiming));
        f->events |= 1 << (2 * b);
        FLI_CUDA_TRY(env, cudaEventCreateWithFlags(&f->consumed[b], cudaEventDisableTiming));
        f->events |= 2 << (2 * b);
        FLI_CUDA_TRY(env, cudaEventRecord(f->consumed[b], f->s));
    }
    FLI_CUDA_TRY(env, cudaMemsetAsync(f->sc, 0, sizeof(km_scalars), f->s));
    FLI_TRY(prepare_resident(f));
    if (j->tol > 0) {
        for (int64_t ci = 0; ci < f->p.n_chunks; ci++) {
            km_rows r;
            FLI_TRY(chunk_get(f, ci, &r));
            FLI_TRY(km_colstats(env, f->s, &r, j->d, r.x, f->colstats, f->colpart, ci == 0));
            FLI_TRY(chunk_done(f, ci));
        }
        FLI_TRY(km_tol(env, f->s, f->colstats, j->n, j->d, j->tol, f->sc));
    }
    double best = INFINITY;
    int64_t best_iter = 0;
    double *run_trace = traces, *best_trace = traces ? traces + trace_keep : NULL;
    for (int64_t run = 0; run < j->n_init; run++) {
        uint64_t seed = j->seed + (uint64_t)run;
        k_run_reset<<<1, 1, 0, f->s>>>(f->sc);
        FLI_LAUNCH_TRY(env, "k_run_reset");
        FLI_CUDA_TRY(env, cudaMemsetAsync(f->labels, 0xff, j->n * 4, f->s));
        FLI_CUDA_TRY(env, cudaMemsetAsync(f->C, 0, f->p.kp * f->p.dp * 4, f->s));
        if (j->init == FLI_KM_INIT_ARRAY) {
            FLI_CUDA_TRY(env, cudaMemcpy2DAsync(f->C, f->p.dp * 4, j->init_centers, j->d * 4, j->d * 4,
                                                j->k, cudaMemcpyDefault, f->s));
            if (j->metric == FLI_METRIC_COSINE)
                FLI_TRY(km_normalize_rows(env, f->s, f->C, f->p.dp, f->C, f->p.dp, j->k, j->d));
        } else if (j->init == FLI_KM_INIT_RANDOM) {
            FLI_TRY(init_random(f, seed, host_scratch));
            if (j->metric == FLI_METRIC_COSINE && f->p.chunked)
                FLI_TRY(km_normalize_rows(env, f->s, f->C, f->p.dp, f->C, f->p.dp, j->k, j->d));
        } else {
            FLI_TRY(init_kmeanspp(f, seed));
        }
        run_result rr;
        FLI_TRY(lloyd(f, run_trace, trace_keep, &rr));
        if (rr.inertia < best || run == 0) {
            best = rr.inertia;
            best_iter = rr.n_iter;
            FLI_CUDA_TRY(env, cudaMemcpyAsync(f->bestC, f->C, j->k * f->p.dp * 4,
                                              cudaMemcpyDeviceToDevice, f->s));
            if (j->n_init > 1)
                FLI_CUDA_TRY(env, cudaMemcpyAsync(f->best_labels, f->labels, j->n * 4,
                                                  cudaMemcpyDeviceToDevice, f->s));
            double *t = run_trace;
            run_trace = best_trace;
            best_trace = t;
        }
    }
    /* outputs, all at the end */
    const int32_t *labs = j->n_init > 1 ? f->best_labels : f->labels;
    FLI_CUDA_TRY(env, cudaMemcpy2DAsync(j->centers, j->d * 4, f->bestC, f->p.dp * 4, j->d * 4, j->k,
                                        cudaMemcpyDefault, f->s));
    if (j->labels)
        FLI_CUDA_TRY(env, cudaMemcpyAsync(j->labels, labs, j->n * 4, cudaMemcpyDefault, f->s));
    FLI_CUDA_TRY(env, cudaStreamSynchronize(f->s));
    j->inertia = best;
    j->n_iter = best_iter;
    if (j->inertia_trace && trace_keep > 0) {
        int64_t len = best_iter < trace_keep ? best_iter : trace_keep;
        memcpy(j->inertia_trace, best_trace, (size_t)len * 8);
        j->trace_len = len;
    }
    return FL_STATUS_OK;
}

extern "C" fl_status fli_cuda_kmeans_fit(fli_cuda_env *env, fli_kmeans_job *job) {
    env->km_graph_used = 0;
    if (job->dtype != FL_DTYPE_F32)
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "kmeans_fit", "the CUDA backend computes in f32 only");
    if (job->precision == FLI_PREC_F64)
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "kmeans_fit", "precision f64 runs on the CPU only");
    FLI_CUDA_TRY(env, cudaSetDevice(env->device_id));
    km_fit f;
    memset(&f, 0, sizeof f);
    f.env = env;
    f.cs = fli_state(env);
    f.s = f.cs->stream;
    f.job = job;
    f.issued[0] = f.issued[1] = -1;
    fl_status st = fli_kmeans_cuda_plan_chunk(job->n, job->d, job->k, job->precision,
                                              job->x_dev >= 0, job->weights != NULL, job->metric,
                                              job->chunk_rows, &f.p);
    if (st != FL_STATUS_OK) return FLI_FAIL(env, st, "kmeans_fit", "no plan for this shape");
    void *arena = NULL;
    FLI_TRY(fli_dev_alloc(env, f.p.device_bytes, &arena));
    f.arena = (char *)arena;
    carve(&f);
    {
        /* env->km_fused (FL_KM_FUSED=1): the fused E+M kernel where it fits (opt-in) */
        fli_cuda_state *cs = f.cs;
        int path = fli_kmeans_cuda_path(&f.p, job->precision, job->backend,
                                        env->sm90_enabled && km_sm90_built(), cs->cc_major,
                                        cs->cc_minor, cs->smem_optin, env->km_fused,
                                        &f.fcfg.stages, &f.fcfg.priv);
        f.fused = path == FLI_KM_PATH_FUSED;
        f.sm90 = path == FLI_KM_PATH_SM90;
        f.img = f.sm90 && job->precision != FLI_PREC_TF32;
        if (f.fused)
            f.fcfg.smem = (int)fli_km_fused_smem(job->precision, job->d, job->k, f.fcfg.stages,
                                                 f.fcfg.priv, NULL);
    }
    f.rescore = env->km_rescore;
    void *host_scratch = NULL;
    double *traces = NULL;
    int64_t trace_keep = 0;
    if (st == FL_STATUS_OK && job->init == FLI_KM_INIT_RANDOM) {
        host_scratch = fli_host_alloc(env, f.p.host_bytes);
        if (!host_scratch) st = FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "kmeans_fit", "host scratch");
    }
    if (st == FL_STATUS_OK && job->inertia_trace && job->trace_cap > 0) {
        trace_keep = job->max_iter < job->trace_cap ? job->max_iter : job->trace_cap;
        traces = (double *)fli_host_alloc(env, fli_kmeans_cuda_trace_host_bytes(job->max_iter, job->trace_cap));
        if (!traces) st = FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "kmeans_fit", "trace scratch");
    }
    /* The M-step computes the objective of each iteration only where it is
     * used every time: the inertia trace, the chunked relocation (its rows
     * live on the host), the fused kernel (computes it anyway), and the
     * private-copy M-step (small k*d), which measured faster with it (2M x
     * 32, k=64: 11.3 ms with, 11.8 without; env->km_tune bit 1 drops it
     * there for A/B, bit 0 forces it everywhere). Otherwise km_reloc_obj
     * computes it in the iterations that empty a cluster and the final
     * pass gives the inertia. */
    /* The tf32 k <= 64 E-step takes the M-step's sums itself where it can
     * (X read once per iteration; env->km_tune bit 11 keeps the separate
     * kernels for A/B); it computes no objective. */
    f.eacc = !f.fused && !f.sm90 && trace_keep == 0 && km_estep_acc_ok(env, &f.p, job->precision);
    f.mobj = trace_keep > 0 || f.p.chunked || f.fused || (env->km_tune & 1) ||
             (km_mstep_priv(&f.p) && !(env->km_tune & 2) && !f.eacc);
    f.folded_reloc = f.p.mstep_smem && !f.p.chunked && f.mobj;
    /* The sorted M-step keeps its sums across iterations and sorts only the
     * rows whose label changed (after the first iteration ~2-15% of them at
     * 1M x 128, k=1024); env->km_tune bit 14 sorts every row every
     * iteration, for A/B. Needs X resident and no objective in the M-step
     * (the objective is a sum over every row). */
    f.mb.delta = !f.p.mstep_smem && !f.p.chunked && !f.mobj && !f.fused && !f.eacc && !(env->km_tune & 16384) &&
                 f.p.chunk_rows < ((int64_t)1 << 30); /* 2 m entries counted in int32 */
    /* the done flag straight into pinned host memory (mapped: unified
     * addressing makes the host pointer usable on the device) */
    {
        void *dv = NULL;
        if (cudaHostGetDevicePointer(&dv, &f.cs->pinned[HFLAG_SLOT], 0) == cudaSuccess && dv) {
            f.hflag_host = &f.cs->pinned[HFLAG_SLOT];
            f.hflag_dev = (int32_t *)dv;
        } else {
            (void)cudaGetLastError();
        }
    }
    /* CUDA graphs of the Lloyd iteration: X resident (chunks synchronise
     * with a second stream and the host), more than one iteration. Several
     * iterations per graph only without a progress callback (it runs once
     * per iteration) and when the trace ring never needs a copy mid-run. */
    if (!f.p.chunked && job->max_iter > 1 && env->km_graph >= 0) {
        int64_t gi = env->km_graph > 0 ? env->km_graph : GRAPH_ITERS_DEFAULT;
        if (env->progress || (trace_keep > 0 && job->max_iter > FLI_KM_TRACE_RING)) gi = 1;
        if (gi > job->max_iter - 1) gi = job->max_iter - 1;
        f.graph_iters = (int)gi;
    }
    if (st == FL_STATUS_OK) st = fit_body(&f, host_scratch, traces, trace_keep);
    if (st == FL_STATUS_OK) {
        /* how many row assignments the near-tie test sent to the exact
         * re-scoring (bench/gpu/NOTES.md reports these) */
        job->stat_rescored = (int64_t)f.stat_rescored;
        job->stat_rows = (int64_t)f.stat_rows;
    }
    /* drain before freeing: kernels may still use the arena on error paths */
    cudaStreamSynchronize(f.cs->copy_stream);
    cudaStreamSynchronize(f.s);
    (void)cudaGetLastError();
    if (f.gexec) cudaGraphExecDestroy(f.gexec);
    env->km_graph_used = f.graph_used;
    for (int b = 0; b < 2; b++) {
        if (f.events & (1 << (2 * b))) cudaEventDestroy(f.copied[b]);
        if (f.events & (2 << (2 * b))) cudaEventDestroy(f.consumed[b]);
    }
    fli_dev_free(env, arena);
    fli_host_free(env, host_scratch);
    fli_host_free(env, traces);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Assignment: predict / transform / score                                  */
/* ------------------------------------------------------------------------ */
typedef struct km_assign_layout {
    size_t off_x, off_xh, off_xst, off_list, off_C, off_ctc, off_cnorm, off_labels, off_tr, off_w, off_sc, bytes;
    int64_t m, dp, dh, kp;
    int copy_x;
} km_assign_layout;

static size_t al(size_t v) { return (v + 255) / 256 * 256; }

static void assign_layout(const fli_kmeans_assign_job *j, km_assign_layout *L) {
    memset(L, 0, sizeof *L);
    L->dp = (j->d + 31) / 32 * 32;
    L->dh = (j->d + 63) / 64 * 64;
    L->kp = (j->k + FLI_KM_BN - 1) / FLI_KM_BN * FLI_KM_BN;
    L->copy_x = j->x_dev < 0 || j->metric == FLI_METRIC_COSINE;
    /* rows per chunk: all of X when it is used in place, else ~256 MB */
    int64_t m = j->n;
    if (L->copy_x) {
        int64_t cap = (256ll << 20) / (L->dp * 4 + (j->transform && j->out_dev < 0 ? j->k * 4 : 0));
        if (cap < FLI_KM_BM) cap = FLI_KM_BM;
        if (m > cap) m = cap;
    } else if (j->transform && j->out_dev < 0) {
        int64_t cap = (256ll << 20) / (j->k * 4);
        if (cap < FLI_KM_BM) cap = FLI_KM_BM;
        if (m > cap) m = cap;
    }
    L->m = m;
    size_t at = 0;
    L->off_x = at;
    at += L->copy_x ? al((size_t)m * L->dp * 4) : 0;
    L->off_xh = at;
    at += prec16(j->precision) ? al((size_t)m * L->dh * 2) : 0;
    L->off_xst = at;
    at += j->precision != FLI_PREC_FP32 ? al((size_t)m * 8) : 0;
    L->off_list = at;
    at += j->precision != FLI_PREC_FP32 ? al((size_t)m * 16) : 0;
    L->off_C = at;
    at += al((size_t)L->kp * L->dp * 4);
    L->off_ctc = at;
    at += j->precision == FLI_PREC_TF32 ? al((size_t)L->kp * L->dp * 4)
          : prec16(j->precision)        ? al((size_t)L->kp * L->dh * 2)
                                        : 0;
    L->off_cnorm = at;
    at += al((size_t)L->kp * 4);
    L->off_labels = at;
    at += al((size_t)j->n * 4);
    L->off_tr = at;
    at += (j->transform && j->out_dev < 0) ? al((size_t)m * j->k * 4) : 0;
    L->off_w = at;
    at += (j->weights && j->x_dev < 0) ? al((size_t)j->n * 4) : 0;
    L->off_sc = at;
    at += al(sizeof(km_scalars) + FLI_KM_NPART * 8);
    L->bytes = at;
}

static fl_status assign_body(fli_cuda_env *env, cudaStream_t s, fli_kmeans_assign_job *j,
                             const km_assign_layout *L, char *a) {
    float *C = (float *)(a + L->off_C);
    void *ctc = j->precision == FLI_PREC_FP32 ? NULL : a + L->off_ctc;
    float *cnorm = (float *)(a + L->off_cnorm);
    int32_t *labels = (int32_t *)(a + L->off_labels);
    km_scalars *sc = (km_scalars *)(a + L->off_sc);
    double *part = (double *)((char *)sc + (sizeof(km_scalars) + 7) / 8 * 8);
    const float *w = (const float *)j->weights;
    if (j->weights && j->x_dev < 0) {
        FLI_TRY(fli_h2d(env, a + L->off_w, j->n * 4, j->weights, j->n * 4, j->n * 4, 1, s));
        w = (const float *)(a + L->off_w);
    }
    FLI_CUDA_TRY(env, cudaMemsetAsync(sc, 0, sizeof(km_scalars), s));
    FLI_CUDA_TRY(env, cudaMemsetAsync(C, 0, L->kp * L->dp * 4, s));
    FLI_CUDA_TRY(env, cudaMemcpy2DAsync(C, L->dp * 4, j->centers, j->d * 4, j->d * 4, j->k,
                                        cudaMemcpyDefault, s));
    if (j->metric == FLI_METRIC_COSINE)
        FLI_TRY(km_normalize_rows(env, s, C, L->dp, C, L->dp, j->k, j->d));
    FLI_TRY(km_prep_centers(env, s, C, j->k, L->kp, j->d, L->dp, L->dh, j->metric, j->precision, ctc,
                            cnorm, 0, sc->cb, NULL));
    const int rescore = env->km_rescore;
    for (int64_t row0 = 0; row0 < j->n; row0 += L->m) {
        km_rows r;
        r.row0 = row0;
        r.m = j->n - row0 < L->m ? j->n - row0 : L->m;
        r.w = w ? w + row0 : NULL;
        const float *src = (const float *)j->X + row0 * j->ld;
        if (L->copy_x) {
            float *xb = (float *)(a + L->off_x);
            if (j->x_dev < 0)
                FLI_TRY(fli_h2d(env, xb, L->dp * 4, src, j->ld * 4, j->d * 4, r.m, s));
            else
                FLI_CUDA_TRY(env, cudaMemcpy2DAsync(xb, L->dp * 4, src, j->ld * 4, j->d * 4, r.m,
                                                    cudaMemcpyDeviceToDevice, s));
            if (j->metric == FLI_METRIC_COSINE)
                FLI_TRY(km_normalize_rows(env, s, xb, L->dp, xb, L->dp, r.m, j->d));
            r.x = xb;
            r.ldx = L->dp;
        } else {
            r.x = src;
            r.ldx = j->ld;
        }
        r.x_aligned = ((uintptr_t)r.x % 16 == 0) && (r.ldx % 4 == 0);
        r.xh = NULL;
        r.xst = NULL;
        if (j->precision != FLI_PREC_FP32) {
            float2 *xst = (float2 *)(a + L->off_xst);
            r.xst = xst;
            if (prec16(j->precision)) {
                r.xh = a + L->off_xh;
                FLI_TRY(km_convert_rows(env, s, r.x, r.ldx, r.m, j->d, L->dh, j->precision, (void *)r.xh, 0,
                                        xst));
            } else {
                FLI_TRY(km_row_stats(env, s, r.x, r.ldx, r.m, j->d, j->precision, 0, xst));
            }
        }
        const km_tie tie = km_tie_args(&r, C, L->dp, j->d, j->metric, j->precision,
                                       j->precision == FLI_PREC_TF32 ? L->dp : L->dh, sc,
                                       j->precision != FLI_PREC_FP32 ? (int4 *)(a + L->off_list) : NULL,
                                       rescore);
        FLI_TRY(km_estep(env, s, &r, j->d, C, L->dp, ctc, L->dh, cnorm, j->k, L->kp, j->metric,
                         j->precision, labels, NULL, &tie, NULL));
        FLI_TRY(km_objective(env, s, &r, j->d, C, L->dp, labels, j->metric, NULL, part, sc, NULL));
        if (j->transform) {
            float *out = j->out_dev >= 0 ? (float *)j->transform + row0 * j->transform_ld
                                         : (float *)(a + L->off_tr);
            int64_t ldo = j->out_dev >= 0 ? j->transform_ld : j->k;
            FLI_TRY(km_transform(env, s, &r, j->d, C, L->dp, j->k, j->metric, out, ldo));
            if (j->out_dev < 0)
                FLI_CUDA_TRY(env, cudaMemcpy2DAsync((float *)j->transform + row0 * j->transform_ld,
                                                    j->transform_ld * 4, out, ldo * 4, j->k * 4, r.m,
                                                    cudaMemcpyDeviceToHost, s));
        }
    }
    km_scalars h;
    FLI_CUDA_TRY(env, cudaMemcpyAsync(&h, sc, sizeof h, cudaMemcpyDeviceToHost, s));
    if (j->labels)
        FLI_CUDA_TRY(env, cudaMemcpyAsync(j->labels, labels, j->n * 4, cudaMemcpyDefault, s));
    FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
    j->inertia = h.inertia;
    return FL_STATUS_OK;
}

extern "C" fl_status fli_cuda_kmeans_assign(fli_cuda_env *env, fli_kmeans_assign_job *job) {
    if (job->dtype != FL_DTYPE_F32)
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "kmeans_assign", "the CUDA backend computes in f32 only");
    if (job->precision == FLI_PREC_F64)
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "kmeans_assign", "precision f64 runs on the CPU only");
    FLI_CUDA_TRY(env, cudaSetDevice(env->device_id));
    cudaStream_t s = fli_state(env)->stream;
    km_assign_layout L;
    assign_layout(job, &L);
    void *arena = NULL;
    FLI_TRY(fli_dev_alloc(env, L.bytes, &arena));
    fl_status st = assign_body(env, s, job, &L, (char *)arena);
    cudaStreamSynchronize(s);
    (void)cudaGetLastError();
    fli_dev_free(env, arena);
    return st;
}
