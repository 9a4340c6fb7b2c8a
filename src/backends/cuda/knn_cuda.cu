/*
 * knn_cuda.cu — exact k-nearest-neighbour search on the GPU: the plan
 * (paths, pool size, chunks under the memory budget) and the driver.
 *
 * Paths
 *   fused (pool kprime <= 256): knn_scan.cu's scan computes distances and
 *     keeps each query's best kprime per database slice in one kernel
 *     (tensor cores for tf32/bf16/fp16, SIMT for fp32, MANHATTAN and
 *     MINKOWSKI); k_knn_finalize merges the slices and re-ranks the pool
 *     with exact fp32 distances.
 *   general (any k up to n_db): per chunk of queries, the full chunk x
 *     database score matrix (fp32 SIMT), a CUB segmented sort per query,
 *     the best kprime re-ranked exactly, a second segmented sort of the
 *     exact keys. Slow (sorting n_db per query) but exact for every k.
 *
 * Pool size. A low-precision scan ranks by approximate scores, so each
 *   query keeps kprime = max(2k, k + 16) candidates (capped at n_db minus
 *   self) and re-ranks them exactly: a true neighbour is lost only if
 *   more than kprime - k others overtake it by rounding, which needs at
 *   least 16 (or k) near-ties at the k-th distance; the 16 cover the small
 *   k where ties cluster, 2k the large k. MANHATTAN/MINKOWSKI scan exact
 *   sums already and keep k + 16 (the re-ranked value, a p-th root, can
 *   merge neighbouring sums into one float).
 *
 * Memory. Queries and database are used in place when on the device; host
 *   inputs are copied (database chunks double-buffered on the context's
 *   copy stream). Everything is allocated up front through env->dalloc,
 *   sized against fli_dev_mem_info (or job->mem_budget): when the plan does
 *   not fit, the database is cut into chunks whose exact results are merged
 *   into a running list per query, then the queries into chunks. Returned
 *   distances are always the exact fp32 values of the returned pairs.
 */
#include <cub/device/device_segmented_radix_sort.cuh>
#include <string.h>

#include "backends/cuda/fl_cuda_util.cuh"
#include "backends/cuda/knn_cuda.cuh"

#define KNN_MAX_POOL 256

typedef struct knn_plan {
    int prec, mode, general, R, h16, res, top_smem;
    int sm90, kb9; /* Hopper scan; its 128-byte column blocks a row      */
    int q_host, db_host, out_host;
    int64_t k, kprime, dh, kw, ldq4, ldd4;
    int64_t qc, nbc, nchunks, nqchunks;
    int slices;
    double sm90_price; /* the Hopper scan's price per slice (knn_sm90_price) */
    size_t cub_a, cub_b, bytes;
} knn_plan;

static int64_t rup(int64_t a, int64_t b) { return fli_ceil_div(a, b) * b; }

/* Database slices per launch: the most work per SM wave (one block per
 * SM) with a small price per slice for the merge (a fraction `price` of a
 * slice's work each); at least 4 tiles each. */
static int knn_pick_slices(int64_t xblocks, int64_t ntiles, int nsm, double price) {
    int best = 1;
    double best_cost = 1e300;
    const int64_t smax = ntiles / 4 > 1 ? (ntiles / 4 < 512 ? ntiles / 4 : 512) : 1;
    for (int s = 1; s <= smax; s++) {
        const double waves = (double)fli_ceil_div(xblocks * s, nsm);
        const double cost = waves / s * (1.0 + price * s);
        if (cost < best_cost) {
            best_cost = cost;
            best = s;
        }
    }
    return best;
}

/* The Hopper scan's price per slice (fli_cuda_env.knn_tune bit 0). */
static double knn_sm90_price(const fli_cuda_env *env) { return env->knn_tune & 1 ? 0.001 : 0.01; }

static size_t knn_cub_bytes(knn_plan *P, int64_t qc, int64_t nbc, cudaStream_t s) {
    size_t a = 0, b = 0;
    const int64_t L = P->kprime + P->k;
    cub::DeviceSegmentedRadixSort::SortPairs(NULL, a, (const float *)NULL, (float *)NULL, (const uint32_t *)NULL,
                                             (uint32_t *)NULL, (int)(qc * nbc), (int)qc, (const int *)NULL,
                                             (const int *)NULL, 0, 32, s);
    cub::DeviceSegmentedRadixSort::SortKeys(NULL, b, (const uint64_t *)NULL, (uint64_t *)NULL, (int)(qc * L), (int)qc,
                                            (const int *)NULL, (const int *)NULL, 0, 64, s);
    P->cub_a = a;
    P->cub_b = b;
    return a > b ? a : b;
}

/* Device bytes of a plan with query chunks of qc rows and database chunks
 * of nbc rows (sets the dependent fields). */
static size_t knn_plan_bytes(knn_plan *P, const fli_knn_job *j, int64_t qc, int64_t nbc, int nsm, cudaStream_t s) {
    P->qc = qc;
    P->nbc = nbc;
    P->nchunks = fli_ceil_div(j->n_db, nbc);
    P->nqchunks = fli_ceil_div(j->n_q, qc);
    const int multi = P->nchunks > 1;
    const int64_t nbp = rup(nbc, 128);
    size_t b = 0;
    b += (size_t)nbp * ((P->db_host ? 2 * P->ldd4 * 4 : 0) + (P->h16 ? P->dh * 2 : 0) + 8);
    if (P->sm90) {
        /* the operand images; lists and query blocks of 256 rows */
        b += (size_t)nbp * P->kb9 * 128 + (size_t)rup(qc, 256) * (P->kb9 * 128 + 4);
        b += (size_t)qc * ((P->q_host ? P->ldq4 * 4 : 0) + (multi ? P->k * 8 : 0) + (P->out_host ? P->k * 12 : 0));
        P->slices = knn_pick_slices(fli_ceil_div(qc, 256), fli_ceil_div(nbc, 128), nsm, P->sm90_price);
        b += (size_t)P->slices * rup(qc, 256) * 32 * P->R * 8;
        return b;
    }
    b += (size_t)qc * ((P->q_host ? P->ldq4 * 4 : 0) + (P->h16 ? P->dh * 2 : 0) + (multi ? P->k * 8 : 0) +
                       (P->out_host ? P->k * 12 : 0));
    if (!P->general) {
        P->slices = knn_pick_slices(fli_ceil_div(qc, 128), fli_ceil_div(nbc, 128), nsm, 0.01);
        b += (size_t)P->slices * rup(qc, 128) * 32 * P->R * 8;
    } else {
        const int64_t L = P->kprime + P->k;
        b += (size_t)qc * nbc * 16 + (size_t)qc * L * 16 + (size_t)(qc + 1) * 8 + 256;
        b += knn_cub_bytes(P, qc, nbc, s);
    }
    return b;
}

static fl_status knn_plan_make(fli_cuda_env *env, const fli_knn_job *j, knn_plan *P) {
    fli_cuda_state *st = fli_state(env);
    memset(P, 0, sizeof *P);
    P->sm90_price = knn_sm90_price(env);
    const int direct = j->metric == FLI_KNN_MANHATTAN || j->metric == FLI_KNN_MINKOWSKI;
    const int64_t n_eff = j->n_db - (j->self_exclude ? 1 : 0);
    P->k = j->k;
    P->prec = direct ? FLI_PREC_FP32 : (int)j->precision;
    P->mode = j->metric == FLI_KNN_MANHATTAN ? 1 : (j->metric == FLI_KNN_MINKOWSKI ? 2 : 0);
    int64_t kp = direct ? j->k + 16 : (2 * j->k > j->k + 16 ? 2 * j->k : j->k + 16);
    if (kp > n_eff) kp = n_eff;
    P->general = kp > KNN_MAX_POOL;
    if (P->general) {
        const int64_t extra = j->k / 4 > 16 ? j->k / 4 : 16;
        kp = j->k + extra < n_eff ? j->k + extra : n_eff;
    }
    P->kprime = kp;
    P->R = kp <= 32 ? 1 : (kp <= 64 ? 2 : (kp <= 128 ? 4 : 8));
    P->h16 = !P->general && (P->prec == FLI_PREC_BF16 || P->prec == FLI_PREC_FP16);
    P->dh = rup(j->d, 64);
    P->kw = P->h16 ? P->dh / 2 : rup(j->d, 32);
    P->ldq4 = rup(j->d, 4);
    P->ldd4 = rup(j->d, 4);
    P->q_host = j->q_dev < 0;
    P->db_host = j->db_dev < 0;
    P->out_host = j->out_dev < 0;
#ifdef FL_HAVE_SM90
    /* Hopper: the wgmma scan for the tensor-core precisions of the GEMM
     * form, rows of up to 512 bytes (kb 1 and 3 padded to 2 and 4), at
     * least 1024 queries (measured on the H100: with fewer, each block's
     * list warm-up and the operand images outweigh the faster products —
     * 100 queries took 4.8 ms against the portable kernel's 2.0), and not
     * 4-block rows with pools over 64 (their 4-key append buffers: tf32
     * k=100 took 85 ms against 76). */
    if (!P->general && env->sm90_enabled && P->mode == 0 && P->prec != FLI_PREC_FP32 && j->n_q >= 1024) {
        const int64_t rowb = P->prec == FLI_PREC_TF32 ? rup(j->d, 32) * 4 : rup(j->d, 64) * 2;
        int kb = (int)(rowb / 128);
        kb = kb <= 2 ? 2 : 4;
        const int wide_pool = kb == 4 && P->R >= 4 && !(env->knn_tune & 128);
        if (rowb <= 512 && !wide_pool && knn_sm90_smem(kb, (size_t)st->smem_optin) > 0) {
            P->sm90 = 1;
            P->kb9 = kb;
            P->h16 = 0;
        }
    }
#endif

    /* shared memory: queries resident and top lists in shared memory when
     * they fit */
    if (!P->general && !P->sm90) {
        knn_scan_args a;
        memset(&a, 0, sizeof a);
        a.kw = (int)P->kw;
        const size_t optin = (size_t)st->smem_optin;
        const int simt = P->prec == FLI_PREC_FP32;
        a.res = !simt;
        a.top_smem = 1;
        if (!simt && knn_scan_smem(&a, P->R, 0) > optin) a.top_smem = 0;
        if (!simt && knn_scan_smem(&a, P->R, 0) > optin) {
            a.res = 0;
            a.top_smem = 1;
            if (knn_scan_smem(&a, P->R, 0) > optin) a.top_smem = 0;
        }
        if (simt && knn_scan_smem(&a, P->R, 1) > optin) a.top_smem = 0;
        P->res = a.res;
        P->top_smem = a.top_smem;
    }

    size_t free_b = 0, total_b = 0;
    FLI_CUDA_TRY(env, fli_dev_mem_info(env, &free_b, &total_b));
    double budget = (double)free_b * 0.9 - 64.0 * (1 << 20);
    if (j->mem_budget > 0 && (double)j->mem_budget < budget) budget = (double)j->mem_budget;
    int64_t qc = j->n_q, nbc = j->n_db;
    if (P->general) {
        /* the score matrix: index ranges of CUB's int offsets */
        while (qc > 1 && (qc * nbc > (int64_t)1 << 30 || qc * (kp + j->k) > (int64_t)1 << 30)) qc = (qc + 1) / 2;
        while (qc * nbc > (int64_t)1 << 30) nbc = rup((nbc + 1) / 2, 128);
    }
    for (;;) {
        P->bytes = knn_plan_bytes(P, j, qc, nbc, st->sm_count, st->stream);
        if ((double)P->bytes <= budget) break;
        const int64_t nbp = rup(nbc, 128);
        const double db_part =
            (double)nbp * ((P->db_host ? 2 * P->ldd4 * 4 : 0) + (P->h16 ? P->dh * 2 : 0) + 8);
        if (nbc > 128 && (db_part * 2 >= (double)P->bytes || qc <= 128))
            nbc = rup((nbc + 1) / 2, 128) < nbc ? rup((nbc + 1) / 2, 128) : nbc - 128;
        else if (qc > 128)
            qc = (qc + 1) / 2;
        else if (qc > 1)
            qc = (qc + 1) / 2;
        else {
            char why[160];
            snprintf(why, sizeof why, "no plan fits %.0f bytes of device memory (at least %zu needed)", budget,
                     P->bytes);
            return FLI_FAIL(env, FL_STATUS_DEVICE_OOM, "knn plan", why);
        }
    }
    return FL_STATUS_OK;
}

/* ------------------------------------------------------------------------ */

typedef struct knn_bufs {
    float *qbuf;     /* qc x ldq4 (host queries)                     */
    void *qh;        /* qc x dh 16-bit                               */
    float *dbuf[2];  /* nbc x ldd4 (host database, double buffer)    */
    void *dbh;       /* nbc_pad x dh 16-bit                          */
    float2 *ab;      /* nbc_pad                                      */
    uint64_t *lists; /* slices x m_pad x 32R                         */
    uint32_t *gthr;  /* Hopper scan: a bound per query (m_pad)       */
    uint64_t *run;   /* qc x k                                       */
    float *odist;    /* qc x k (host outputs)                        */
    int64_t *oidx;
    float *gkeys, *gkeys2; /* general path: qc x nbc                 */
    uint32_t *gvals, *gvals2;
    uint64_t *pool, *pool2; /* qc x (kprime + k)                     */
    int *off_a, *off_b;
    void *cub_tmp;
} knn_bufs;

#define KNN_NBUF (sizeof(knn_bufs) / sizeof(void *))

static void knn_free(fli_cuda_env *env, knn_bufs *b) {
    void **p = (void **)b;
    for (size_t i = 0; i < KNN_NBUF; i++) fli_dev_free(env, p[i]);
    memset(b, 0, sizeof *b);
}

static fl_status knn_alloc(fli_cuda_env *env, const fli_knn_job *j, const knn_plan *P, knn_bufs *b) {
    memset(b, 0, sizeof *b);
    const int64_t qc = P->qc, nbp = rup(P->nbc, 128), k = P->k;
    const int multi = P->nchunks > 1;
    if (P->q_host) FLI_TRY(fli_dev_alloc(env, (size_t)qc * P->ldq4 * 4, (void **)&b->qbuf));
    if (P->h16) FLI_TRY(fli_dev_alloc(env, (size_t)qc * P->dh * 2, &b->qh));
    if (P->db_host) {
        FLI_TRY(fli_dev_alloc(env, (size_t)P->nbc * P->ldd4 * 4, (void **)&b->dbuf[0]));
        if (P->nchunks > 1) FLI_TRY(fli_dev_alloc(env, (size_t)P->nbc * P->ldd4 * 4, (void **)&b->dbuf[1]));
    }
    if (P->h16) FLI_TRY(fli_dev_alloc(env, (size_t)nbp * P->dh * 2, &b->dbh));
    if (P->sm90) {
        FLI_TRY(fli_dev_alloc(env, (size_t)rup(qc, 256) * P->kb9 * 128, &b->qh));
        FLI_TRY(fli_dev_alloc(env, (size_t)nbp * P->kb9 * 128, &b->dbh));
        FLI_TRY(fli_dev_alloc(env, (size_t)rup(qc, 256) * 4, (void **)&b->gthr));
    }
    FLI_TRY(fli_dev_alloc(env, (size_t)nbp * sizeof(float2), (void **)&b->ab));
    if (multi) FLI_TRY(fli_dev_alloc(env, (size_t)qc * k * 8, (void **)&b->run));
    if (P->out_host) {
        FLI_TRY(fli_dev_alloc(env, (size_t)qc * k * 4, (void **)&b->odist));
        FLI_TRY(fli_dev_alloc(env, (size_t)qc * k * 8, (void **)&b->oidx));
    }
    if (!P->general) {
        const int64_t mq = rup(qc, P->sm90 ? 256 : 128);
        FLI_TRY(fli_dev_alloc(env, (size_t)P->slices * mq * 32 * P->R * 8, (void **)&b->lists));
    } else {
        const int64_t L = P->kprime + k;
        const size_t mat = (size_t)qc * P->nbc * 4;
        FLI_TRY(fli_dev_alloc(env, mat, (void **)&b->gkeys));
        FLI_TRY(fli_dev_alloc(env, mat, (void **)&b->gkeys2));
        FLI_TRY(fli_dev_alloc(env, mat, (void **)&b->gvals));
        FLI_TRY(fli_dev_alloc(env, mat, (void **)&b->gvals2));
        FLI_TRY(fli_dev_alloc(env, (size_t)qc * L * 8, (void **)&b->pool));
        FLI_TRY(fli_dev_alloc(env, (size_t)qc * L * 8, (void **)&b->pool2));
        FLI_TRY(fli_dev_alloc(env, (size_t)(qc + 1) * 4, (void **)&b->off_a));
        FLI_TRY(fli_dev_alloc(env, (size_t)(qc + 1) * 4, (void **)&b->off_b));
        const size_t t = P->cub_a > P->cub_b ? P->cub_a : P->cub_b;
        FLI_TRY(fli_dev_alloc(env, t ? t : 16, &b->cub_tmp));
    }
    return FL_STATUS_OK;
}

static int knn_aligned(const void *p, int64_t ld) { return ((uintptr_t)p % 16) == 0 && ld % 4 == 0; }

typedef struct knn_events {
    cudaEvent_t copied[2], used[2];
} knn_events;

/* Database chunk c (rows b0 .. b0 + nb) on the device: in place, or its
 * copy (issued earlier by knn_copy_chunk). */
static fl_status knn_copy_chunk(fli_cuda_env *env, const fli_knn_job *j, const knn_plan *P, knn_bufs *b,
                                knn_events *ev, int64_t c) {
    fli_cuda_state *st = fli_state(env);
    const int buf = (int)(c & 1);
    const int64_t b0 = c * P->nbc, nb = j->n_db - b0 < P->nbc ? j->n_db - b0 : P->nbc;
    FLI_CUDA_TRY(env, cudaStreamWaitEvent(st->copy_stream, ev->used[buf], 0));
    FLI_TRY(fli_h2d(env, b->dbuf[buf], P->ldd4 * 4, (const float *)j->db + b0 * j->db_ld, j->db_ld * 4, j->d * 4,
                    nb, st->copy_stream));
    FLI_CUDA_TRY(env, cudaEventRecord(ev->copied[buf], st->copy_stream));
    return FL_STATUS_OK;
}

static fl_status knn_body(fli_cuda_env *env, fli_knn_job *j, const knn_plan *P, knn_bufs *b, knn_events *ev) {
    fli_cuda_state *st = fli_state(env);
    cudaStream_t s = st->stream;
    const int64_t d = j->d, k = P->k;
    const int multi = P->nchunks > 1;
    const int steps = (int)(P->nchunks * P->nqchunks);
    int step = 0;
    int db_ready = 0; /* single chunk prepared once for all query chunks */
    const float *xf = NULL;
    int64_t ldxf = 0;
    int64_t streamed = 0;
    for (int64_t q0 = 0; q0 < j->n_q; q0 += P->qc) {
        const int64_t mq = j->n_q - q0 < P->qc ? j->n_q - q0 : P->qc;
        const float *qf;
        int64_t ldqf;
        if (P->q_host) {
            FLI_TRY(fli_h2d(env, b->qbuf, P->ldq4 * 4, (const float *)j->q + q0 * j->q_ld, j->q_ld * 4, d * 4, mq, s));
            qf = b->qbuf;
            ldqf = P->ldq4;
        } else {
            qf = (const float *)j->q + q0 * j->q_ld;
            ldqf = j->q_ld;
        }
        if (P->h16) FLI_TRY(knn_prep_rows(env, s, qf, ldqf, mq, mq, d, P->dh, j->metric, P->prec, NULL, b->qh));
        if (P->sm90) FLI_TRY(knn_img(env, s, qf, ldqf, mq, rup(mq, 256), d, P->prec, P->kb9, 256, b->qh));
        if (P->db_host && !db_ready) FLI_TRY(knn_copy_chunk(env, j, P, b, ev, 0));
        for (int64_t c = 0; c < P->nchunks; c++) {
            const int64_t b0 = c * P->nbc, nb = j->n_db - b0 < P->nbc ? j->n_db - b0 : P->nbc;
            if (!db_ready) {
                if (P->db_host) {
                    if (c + 1 < P->nchunks) FLI_TRY(knn_copy_chunk(env, j, P, b, ev, c + 1));
                    FLI_CUDA_TRY(env, cudaStreamWaitEvent(s, ev->copied[c & 1], 0));
                    xf = b->dbuf[c & 1];
                    ldxf = P->ldd4;
                    streamed += nb;
                } else {
                    xf = (const float *)j->db + b0 * j->db_ld;
                    ldxf = j->db_ld;
                }
                FLI_TRY(knn_prep_rows(env, s, xf, ldxf, nb, rup(nb, 128), d, P->dh, j->metric, P->prec, b->ab,
                                      P->h16 ? b->dbh : NULL));
                if (P->sm90)
                    FLI_TRY(knn_img(env, s, xf, ldxf, nb, rup(nb, 128), d, P->prec, P->kb9, 128, b->dbh));
                if (P->nchunks == 1) db_ready = 1;
            }
            const int last = c == P->nchunks - 1;
            uint64_t *run_out = last ? NULL : b->run;
            const uint64_t *run_in = (multi && c > 0) ? b->run : NULL;
            float *od = NULL;
            int64_t *oi = NULL;
            int64_t od_ld = k, oi_ld = k;
            if (P->out_host) {
                od = j->dist ? b->odist : NULL;
                oi = b->oidx;
            } else {
                od = j->dist ? (float *)j->dist + q0 * j->dist_ld : NULL;
                od_ld = j->dist_ld;
                oi = j->idx + q0 * j->idx_ld;
                oi_ld = j->idx_ld;
            }
            const int vec = knn_aligned(qf, ldqf) && knn_aligned(xf, ldxf);
            const uint32_t base = (uint32_t)b0;
            int64_t m_pad = rup(mq, 128);
            int used = 0;
#ifdef FL_HAVE_SM90
            if (P->sm90) {
                knn_sm90_args a;
                memset(&a, 0, sizeof a);
                a.qimg = b->qh;
                a.dbimg = b->dbh;
                a.m = mq;
                a.ntiles = (int)fli_ceil_div(nb, 128);
                int slices = knn_pick_slices(fli_ceil_div(mq, 256), a.ntiles, st->sm_count, P->sm90_price);
                const int64_t cap = P->slices * rup(P->qc, 256) / rup(mq, 256);
                if (slices > cap) slices = (int)cap;
                a.tiles_per = (int)fli_ceil_div(a.ntiles, slices);
                used = (int)fli_ceil_div(a.ntiles, a.tiles_per);
                a.ab = b->ab;
                a.base = base;
                a.out = b->lists;
                a.m_pad = m_pad = rup(mq, 256);
                a.self = j->self_exclude;
                a.self0 = j->q_offset + q0;
                a.gthr = b->gthr;
                a.refresh_mask = env->knn_tune & 2 ? 0 : (env->knn_tune & 64 ? 3 : 15);
                a.kpos = env->knn_tune & 16 ? 32 * P->R - 1 : (int)P->kprime - 1;
                FLI_CUDA_TRY(env, cudaMemsetAsync(b->gthr, 0xff, (size_t)m_pad * 4, s));
                FLI_TRY(knn_scan_sm90(env, s, &a, P->R, P->prec, P->kb9, used));
            }
#endif
            if (!P->general && !P->sm90) {
                knn_scan_args a;
                memset(&a, 0, sizeof a);
                if (P->h16) {
                    a.A = (const uint32_t *)b->qh;
                    a.lda = P->dh / 2;
                    a.a_words = (int)(P->dh / 2);
                    a.a_aligned = 1;
                    a.B = (const uint32_t *)b->dbh;
                    a.ldb = P->dh / 2;
                    a.b_words = (int)(P->dh / 2);
                    a.b_aligned = 1;
                } else {
                    a.A = (const uint32_t *)qf;
                    a.lda = ldqf;
                    a.a_words = (int)d;
                    a.a_aligned = knn_aligned(qf, ldqf);
                    a.B = (const uint32_t *)xf;
                    a.ldb = ldxf;
                    a.b_words = (int)d;
                    a.b_aligned = knn_aligned(xf, ldxf);
                }
                a.m = mq;
                a.nb = nb;
                a.kw = (int)P->kw;
                a.res = P->res;
                a.ntiles = (int)fli_ceil_div(nb, 128);
                /* the lists buffer holds P->slices x rup(qc, 128) rows */
                int slices = knn_pick_slices(fli_ceil_div(mq, 128), a.ntiles, st->sm_count, 0.01);
                const int64_t cap = P->slices * rup(P->qc, 128) / rup(mq, 128);
                if (slices > cap) slices = (int)cap;
                a.tiles_per = (int)fli_ceil_div(a.ntiles, slices);
                used = (int)fli_ceil_div(a.ntiles, a.tiles_per);
                a.ab = b->ab;
                a.base = base;
                a.out = b->lists;
                a.m_pad = rup(mq, 128);
                a.top_smem = P->top_smem;
                a.self = j->self_exclude;
                a.self0 = j->q_offset + q0;
                a.p = (float)j->p;
                FLI_TRY(knn_scan(env, s, &a, P->R, P->prec, P->mode, used));
            }
            if (!P->general) {
                knn_fin_args f;
                memset(&f, 0, sizeof f);
                f.lists = b->lists;
                f.slices = used;
                f.m_pad = m_pad;
                f.m = mq;
                f.kprime = P->kprime;
                f.k = k;
                f.q = qf;
                f.ldq = ldqf;
                f.db = xf;
                f.lddb = ldxf;
                f.d = (int)d;
                f.vec = vec;
                f.metric = j->metric;
                f.p = (float)j->p;
                f.base = base;
                f.run_in = run_in;
                f.run_out = run_out;
                f.dist = od;
                f.dist_ld = od_ld;
                f.idx = oi;
                f.idx_ld = oi_ld;
                FLI_TRY(knn_finalize(env, s, &f, P->R));
            } else {
                const int64_t kp = P->kprime < nb ? P->kprime : nb;
                FLI_TRY(knn_matrix(env, s, qf, ldqf, mq, xf, ldxf, nb, d, b->ab, P->mode, (float)j->p, base,
                                   j->self_exclude, j->q_offset + q0, b->gkeys, b->gvals));
                FLI_TRY(knn_offsets(env, s, b->off_a, mq, nb));
                size_t ta = P->cub_a, tb = P->cub_b;
                FLI_CUDA_TRY(env, cub::DeviceSegmentedRadixSort::SortPairs(
                                      b->cub_tmp, ta, b->gkeys, b->gkeys2, b->gvals, b->gvals2, (int)(mq * nb), (int)mq,
                                      b->off_a, b->off_a + 1, 0, 32, s));
                /* a chunk smaller than the pool contributes all its rows;
                 * the rest of the pool stays empty */
                FLI_TRY(knn_pool(env, s, b->gvals2, nb, mq, kp, k, qf, ldqf, xf, ldxf, d, vec, j->metric,
                                 (float)j->p, base, j->self_exclude, j->q_offset + q0, run_in, b->pool));
                const int64_t Lc = kp + k;
                FLI_TRY(knn_offsets(env, s, b->off_b, mq, Lc));
                FLI_CUDA_TRY(env, cub::DeviceSegmentedRadixSort::SortKeys(b->cub_tmp, tb, b->pool, b->pool2,
                                                                          (int)(mq * Lc), (int)mq, b->off_b,
                                                                          b->off_b + 1, 0, 64, s));
                FLI_TRY(knn_take(env, s, b->pool2, Lc, mq, k, j->metric, run_out, od, od_ld, oi, oi_ld));
            }
            if (P->db_host && !db_ready) FLI_CUDA_TRY(env, cudaEventRecord(ev->used[c & 1], s));
            step++;
            if (env->progress && steps > 1) {
                FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
                if (env->progress(env->progress_user, "knn.search", step, steps))
                    return FLI_FAIL(env, FL_STATUS_CANCELLED, "knn", "cancelled by the progress callback");
            }
        }
        if (P->out_host) {
            if (j->dist)
                FLI_CUDA_TRY(env, cudaMemcpy2DAsync((float *)j->dist + q0 * j->dist_ld, j->dist_ld * 4, b->odist,
                                                    k * 4, k * 4, mq, cudaMemcpyDeviceToHost, s));
            FLI_CUDA_TRY(env, cudaMemcpy2DAsync(j->idx + q0 * j->idx_ld, j->idx_ld * 8, b->oidx, k * 8, k * 8, mq,
                                                cudaMemcpyDeviceToHost, s));
        }
    }
    FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
    j->stat_reranked = P->prec == FLI_PREC_FP32 ? 0 : j->n_q * P->kprime * P->nchunks;
    j->stat_streamed_rows = streamed;
    return FL_STATUS_OK;
}

static fl_status knn_check_job(fli_cuda_env *env, const fli_knn_job *j) {
    const char *why = NULL;
    if (j->dtype != FL_DTYPE_F32)
        why = "the CUDA module searches float32 data only";
    else if (j->n_db < 1 || j->d < 1 || j->n_q < 0)
        why = "needs n_db >= 1, d >= 1, n_q >= 0";
    else if (j->n_db >= (int64_t)0xffffffffll)
        why = "n_db must be below 2^32 - 1 on the GPU (32-bit candidate indices)";
    else if (j->k < 1 || j->k > j->n_db - (j->self_exclude ? 1 : 0))
        why = "k must be in [1, n_db] (n_db - 1 with self exclusion)";
    else if (j->db_ld < j->d || j->q_ld < j->d || !j->idx || j->idx_ld < j->k || (j->dist && j->dist_ld < j->k))
        why = "row strides must cover the rows (ld >= d, output ld >= k) and idx must be given";
    else if (j->metric < FLI_KNN_SQEUCLIDEAN || j->metric > FLI_KNN_MINKOWSKI)
        why = "unknown metric";
    else if (j->metric == FLI_KNN_MINKOWSKI && !(j->p >= 1.0))
        why = "minkowski needs p >= 1";
    else if (j->precision != FLI_PREC_FP32 && j->precision != FLI_PREC_TF32 && j->precision != FLI_PREC_BF16 &&
             j->precision != FLI_PREC_FP16)
        why = "precision must be fp32, tf32, bf16 or fp16";
    else if ((j->db_dev >= 0 && j->db_dev != env->device_id) || (j->q_dev >= 0 && j->q_dev != env->device_id) ||
             (j->out_dev >= 0 && j->out_dev != env->device_id))
        why = "device buffers must live on the context's device";
    else if (j->self_exclude && (j->q_offset < 0 || j->q_offset + j->n_q > j->n_db))
        why = "self exclusion needs q_offset + n_q <= n_db";
    if (why) return FLI_FAIL(env, FL_STATUS_INVALID_ARG, "knn_search", why);
    return FL_STATUS_OK;
}

/* The device copy of a model's database (job->db_key): one per context,
 * the last one searched. */
typedef struct knn_db_cache {
    uint64_t key;
    int64_t n, d;
    float *rows; /* n x d, dense */
} knn_db_cache;

extern "C" void fli_cuda_knn_release(fli_cuda_env *env) {
    fli_cuda_state *s = fli_state(env);
    knn_db_cache *c = (knn_db_cache *)s->knn_db;
    if (!c) return;
    fli_dev_free(env, c->rows);
    free(c);
    s->knn_db = NULL;
}

/* The cached device rows of job's host database, uploaded on a new key;
 * NULL (and no error) when it should stream instead: no key, a test's
 * memory budget, or a database that would take more than half of the free
 * memory. */
static fl_status knn_cached_db(fli_cuda_env *env, const fli_knn_job *j, const float **rows) {
    *rows = NULL;
    if (j->db_dev >= 0 || j->db_key == 0 || j->mem_budget > 0) return FL_STATUS_OK;
    fli_cuda_state *s = fli_state(env);
    knn_db_cache *c = (knn_db_cache *)s->knn_db;
    if (c && c->key == j->db_key && c->n == j->n_db && c->d == j->d) {
        *rows = c->rows;
        return FL_STATUS_OK;
    }
    fli_cuda_knn_release(env); /* a new model: drop the old copy first */
    const size_t bytes = sizeof(float) * (size_t)j->n_db * (size_t)j->d;
    size_t free_b = 0, total_b = 0;
    FLI_CUDA_TRY(env, fli_dev_mem_info(env, &free_b, &total_b));
    if (bytes > free_b / 2) return FL_STATUS_OK;
    c = (knn_db_cache *)calloc(1, sizeof *c);
    if (!c) return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "knn cache", "host allocation failed");
    fl_status st = fli_dev_alloc(env, bytes, (void **)&c->rows);
    if (st == FL_STATUS_OK) {
        st = fli_h2d(env, c->rows, j->d * 4, j->db, j->db_ld * 4, j->d * 4, j->n_db, s->stream);
        cudaError_t e = st == FL_STATUS_OK ? cudaStreamSynchronize(s->stream) : cudaSuccess;
        if (e != cudaSuccess) st = fli_cuda_fail(env, __FILE__, __LINE__, "knn cache upload", e);
    }
    if (st != FL_STATUS_OK) {
        fli_dev_free(env, c->rows);
        free(c);
        if (st != FL_STATUS_DEVICE_OOM) return st;
        (void)cudaGetLastError(); /* no room after all: stream the database instead */
        return FL_STATUS_OK;
    }
    c->key = j->db_key, c->n = j->n_db, c->d = j->d;
    s->knn_db = c;
    *rows = c->rows;
    return FL_STATUS_OK;
}

static fl_status knn_search_job(fli_cuda_env *env, fli_knn_job *job);

extern "C" fl_status fli_cuda_knn_search(fli_cuda_env *env, fli_knn_job *job) {
    FLI_TRY(knn_check_job(env, job));
    FLI_CUDA_TRY(env, cudaSetDevice(env->device_id));
    if (job->n_q == 0) return FL_STATUS_OK;
    const float *rows;
    FLI_TRY(knn_cached_db(env, job, &rows));
    if (!rows) return knn_search_job(env, job);
    /* the model's rows are on the device already: search them in place */
    fli_knn_job dj = *job;
    const int self_q = job->self_exclude && job->q == job->db && job->q_ld == job->db_ld;
    dj.db = rows, dj.db_dev = env->device_id, dj.db_ld = job->d;
    if (self_q) dj.q = rows, dj.q_dev = env->device_id, dj.q_ld = job->d;
    fl_status st = knn_search_job(env, &dj);
    job->stat_reranked = dj.stat_reranked;
    job->stat_streamed_rows = dj.stat_streamed_rows;
    return st;
}

static fl_status knn_search_job(fli_cuda_env *env, fli_knn_job *job) {
    knn_plan P;
    FLI_TRY(knn_plan_make(env, job, &P));
    knn_bufs b;
    knn_events ev;
    memset(&ev, 0, sizeof ev);
    fl_status st = knn_alloc(env, job, &P, &b);
    if (st == FL_STATUS_OK && P.db_host) {
        cudaError_t e = cudaSuccess;
        for (int i = 0; i < 2 && e == cudaSuccess; i++) {
            e = cudaEventCreateWithFlags(&ev.copied[i], cudaEventDisableTiming);
            if (e == cudaSuccess) e = cudaEventCreateWithFlags(&ev.used[i], cudaEventDisableTiming);
        }
        if (e != cudaSuccess) st = fli_cuda_fail(env, __FILE__, __LINE__, "cudaEventCreate", e);
    }
    if (st == FL_STATUS_OK) st = knn_body(env, job, &P, &b, &ev);
    if (st != FL_STATUS_OK) {
        cudaStreamSynchronize(fli_state(env)->stream);
        cudaStreamSynchronize(fli_state(env)->copy_stream);
        (void)cudaGetLastError();
    }
    for (int i = 0; i < 2; i++) {
        if (ev.copied[i]) cudaEventDestroy(ev.copied[i]);
        if (ev.used[i]) cudaEventDestroy(ev.used[i]);
    }
    knn_free(env, &b);
    return st;
}
