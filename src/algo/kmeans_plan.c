/*
 * kmeans_plan.c — device arena layout of the CUDA KMeans fit (see .h).
 *
 * Every buffer the module's fit uses on the device is a region of one arena
 * whose offsets are computed here; the module allocates plan.device_bytes
 * once and never anything else, so this file is the single source of truth
 * for the fit's peak device memory.
 */
#include "algo/kmeans_plan.h"

#include <string.h>

static int64_t round_up(int64_t v, int64_t m)
{
    return (v + m - 1) / m * m;
}
static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* Elements of scratch an in-place scan of `len` elements needs: one partial
 * per tile at each level until a single tile remains. */
static int64_t scan_tmp_elems(int64_t len)
{
    int64_t total = 0;
    while (len > FLI_KM_SCAN_TILE) {
        len = ceil_div(len, FLI_KM_SCAN_TILE);
        total += len;
    }
    return total + 1;
}

typedef struct arena_cursor {
    size_t at;
} arena_cursor;

static size_t take(arena_cursor *c, int64_t bytes)
{
    size_t off = c->at;
    if (bytes > 0)
        c->at += (size_t)round_up(bytes, FLI_KM_ALIGN);
    return off;
}

static int prec_is_16bit(fli_precision p)
{
    return p == FLI_PREC_BF16 || p == FLI_PREC_FP16;
}

size_t fli_kmeans_cuda_trace_host_bytes(int64_t max_iter, int64_t trace_cap)
{
    int64_t m = max_iter < trace_cap ? max_iter : trace_cap;
    return m > 0 ? 2 * (size_t)m * sizeof(double) : 0;
}

fl_status fli_kmeans_cuda_plan_chunk(int64_t n, int64_t d, int64_t k, fli_precision precision,
                                     int x_on_device, int have_weights, fli_metric metric, int64_t chunk_rows,
                                     fli_kmeans_cuda_plan *plan)
{
    if (!plan || n < 1 || d < 1 || k < 1 || k > n || k > INT32_MAX || n > INT32_MAX ||
        precision == FLI_PREC_F64)
        return FL_STATUS_INVALID_ARG;
    memset(plan, 0, sizeof(*plan));
    int64_t m = (chunk_rows <= 0 || chunk_rows >= n || x_on_device) ? n : chunk_rows;
    if (m < n)
        m = round_up(m, FLI_KM_BM) < n ? round_up(m, FLI_KM_BM) : n;
    plan->n = n;
    plan->d = d;
    plan->k = k;
    plan->chunk_rows = m;
    plan->chunked = m < n;
    plan->n_chunks = ceil_div(n, m);
    plan->dp = round_up(d, 32);
    plan->dh = round_up(d, 64);
    plan->kp = round_up(k, FLI_KM_BN);
    plan->mstep_smem = (int64_t)k * (d + 2) * 4 <= FLI_KM_SMEM_ACC_MAX;
    int64_t nb = ceil_div(m, FLI_KM_SORT_ROWS);
    int64_t cap = FLI_KM_SORT_CAP / k;
    if (cap < 1)
        cap = 1;
    if (nb > cap)
        nb = cap;
    plan->sort_nb = nb;
    plan->sort_rows = ceil_div(m, nb);
    /* a delta M-step sorts up to two entries a row (km_accumulate) */
    plan->npieces_max = ceil_div(2 * m, FLI_KM_PIECE) + k;

    int64_t dp = plan->dp, dh = plan->dh, kp = plan->kp;
    int need_scan_cnt = !plan->mstep_smem;
    int64_t scan_n = n; /* k-means++ cumulative sums */
    if (need_scan_cnt && k * nb + 1 > scan_n)
        scan_n = k * nb + 1;
    if (k + 1 > scan_n)
        scan_n = k + 1;
    plan->scan_n = scan_n;

    arena_cursor c = {0};
    /* fp32 rows: host X is packed into chunk buffers (two when streamed, so
     * the next chunk's copy overlaps this chunk's kernels); device X is used
     * in place except for cosine, whose rows are normalised into a copy. */
    if (!x_on_device) {
        plan->x_bufs = plan->chunked ? 2 : 1;
        plan->off_x = take(&c, plan->x_bufs * m * dp * 4);
    } else if (metric == FLI_METRIC_COSINE) {
        plan->x_bufs = 1;
        plan->off_x = take(&c, n * dp * 4);
    } else {
        plan->x_bufs = 0;
        plan->off_x = take(&c, 0);
    }
    plan->off_xh = take(&c, prec_is_16bit(precision) ? round_up(m, FLI_KM_XH_ROWS) * dh * 2 : 0);
    plan->off_w = take(&c, (have_weights && !x_on_device) ? n * 4 : 0);
    plan->off_xst = take(&c, precision != FLI_PREC_FP32 ? m * 8 : 0);
    plan->off_labels = take(&c, n * 4);
    plan->off_best_labels = take(&c, n * 4);
    plan->off_dist = take(&c, n * 4);
    plan->off_centers = take(&c, kp * dp * 4);
    plan->off_centers_tc = take(&c, precision == FLI_PREC_TF32 ? kp * dp * 4
                                    : prec_is_16bit(precision) ? kp * dh * 2
                                                               : 0);
    plan->off_cnorm = take(&c, kp * 4);
    plan->off_sums = take(&c, k * dp * 8);
    plan->off_wsum = take(&c, k * 8);
    plan->off_cobj = take(&c, k * 8);
    plan->off_best_centers = take(&c, k * dp * 4);
    plan->off_colstats = take(&c, 3 * dp * 8);
    plan->off_reloc = take(&c, plan->chunked ? k * dp * 4 : 0);
    plan->off_reloc_idx = take(&c, k * 4);
    plan->off_scalars = take(&c, FLI_KM_SCALARS_BYTES);
    plan->off_scan_tmp = take(&c, scan_tmp_elems(scan_n) * 8);
    plan->off_union = c.at;

    /* Lloyd phase */
    arena_cursor l = c;
    plan->off_tie_list = take(&l, precision != FLI_PREC_FP32 ? m * 16 : 0);
    if (plan->mstep_smem) {
        plan->off_acc_part = take(&l, (int64_t)FLI_KM_ACC_BLOCKS * k * (d + 2) * 4);
    } else {
        plan->off_cnt = take(&l, (k * nb + 1) * 4);
        plan->off_perm = take(&l, 2 * m * 4);
        plan->off_piece_off = take(&l, (k + 1) * 4);
        plan->off_psum = take(&l, plan->npieces_max * d * 4);
        plan->off_pw = take(&l, plan->npieces_max * 4);
        plan->off_pobj = take(&l, plan->npieces_max * 8);
        plan->off_pcnt = take(&l, plan->npieces_max * 4);
        plan->off_prev = take(&l, plan->chunked ? 0 : m * 4);
        plan->off_ncount = take(&l, k * 4);
    }
    /* init phase */
    arena_cursor s = c;
    plan->off_closest = take(&s, n * 4);
    plan->off_cumsum = take(&s, n * 8);
    plan->off_init_idx = take(&s, k * 4);
    plan->off_pp_cand = take(&s, FLI_KM_PP_GROUP * dp * 4);

    /* preparation phase (column statistics, before either of the above) */
    arena_cursor q = c;
    plan->off_colpart = take(&q, fli_km_colstats_blocks(m, dp) * 2 * dp * 8);

    plan->device_bytes = l.at > s.at ? l.at : s.at;
    if (q.at > plan->device_bytes)
        plan->device_bytes = q.at;
    /* Host scratch: 'random' init draws k distinct rows with Floyd's method
     * into an open-addressing set (a power of two >= 2k of int64) plus the
     * k chosen rows in draw order; allocated only for that init. */
    int64_t hs = 1;
    while (hs < 2 * k)
        hs *= 2;
    plan->host_bytes = (size_t)hs * 8 + (size_t)k * 4;
    return FL_STATUS_OK;
}

fl_status fli_kmeans_plan_cuda(int64_t n, int64_t d, int64_t k, fli_precision precision, int x_on_device,
                               int have_weights, fli_metric metric, size_t device_mem_budget_bytes,
                               fli_kmeans_cuda_plan *plan)
{
    fl_status st = fli_kmeans_cuda_plan_chunk(n, d, k, precision, x_on_device, have_weights, metric, 0, plan);
    if (st != FL_STATUS_OK || device_mem_budget_bytes == 0 || plan->device_bytes <= device_mem_budget_bytes)
        return st;
    if (x_on_device)
        return FL_STATUS_DEVICE_OOM;
    /* Largest chunk (a multiple of BM rows) that fits: bytes grow with m. */
    int64_t lo = FLI_KM_BM, hi = n;
    fli_kmeans_cuda_plan p;
    st = fli_kmeans_cuda_plan_chunk(n, d, k, precision, 0, have_weights, metric, lo, &p);
    if (st != FL_STATUS_OK)
        return st;
    if (p.device_bytes > device_mem_budget_bytes)
        return FL_STATUS_DEVICE_OOM;
    while (hi - lo > FLI_KM_BM) {
        int64_t mid = lo + (hi - lo) / 2 / FLI_KM_BM * FLI_KM_BM;
        if (mid <= lo)
            break;
        fli_kmeans_cuda_plan_chunk(n, d, k, precision, 0, have_weights, metric, mid, &p);
        if (p.device_bytes <= device_mem_budget_bytes)
            lo = mid;
        else
            hi = mid;
    }
    return fli_kmeans_cuda_plan_chunk(n, d, k, precision, 0, have_weights, metric, lo, plan);
}

int fli_kmeans_eacc(const fli_kmeans_cuda_plan *plan, fli_precision precision, int64_t smem_per_sm)
{
    return precision == FLI_PREC_TF32 && plan->k <= 64 && plan->d <= 32 && plan->dp == 32 &&
           plan->mstep_smem && !plan->chunked && 2 * (FLI_KM_EACC_SMEM(plan->k) + 1024) <= smem_per_sm;
}

int fli_kmeans_cuda_path(const fli_kmeans_cuda_plan *plan, fli_precision precision, fl_backend backend,
                         int sm90_enabled, int cc_major, int cc_minor, int64_t smem_optin, int fused_opt_in,
                         int *fused_stages, int *fused_priv)
{
    if (backend == FL_BACKEND_CUDA_SM90 && sm90_enabled && cc_major == 9 && cc_minor == 0 &&
        (plan->dh == 64 || plan->dh == 128) &&
        ((prec_is_16bit(precision) && smem_optin >= FLI_KM_SM90_SMEM(plan->dh / 64)) ||
         (precision == FLI_PREC_TF32 && smem_optin >= FLI_KM_SM90_TF32_SMEM(plan->dh / 32))))
        return FLI_KM_PATH_SM90;
    if (fused_opt_in && precision != FLI_PREC_FP32 && plan->mstep_smem)
        for (int priv = 1; priv >= 1; priv--)
            for (int st = 4; st >= 2; st--) {
                int64_t b = fli_km_fused_smem(precision, plan->d, plan->k, st, priv, NULL);
                if (b > 0 && b <= smem_optin - 1024) {
                    if (fused_stages)
                        *fused_stages = st;
                    if (fused_priv)
                        *fused_priv = priv;
                    return FLI_KM_PATH_FUSED;
                }
            }
    return FLI_KM_PATH_PORTABLE;
}
