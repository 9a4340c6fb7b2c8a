/*
 * op_kmeans.c — the cost model of KMeans.fit.
 *
 * Routing is fli_route_kmeans, the function execution calls; device memory
 * is fli_kmeans_cuda_plan_chunk (the arena the CUDA fit allocates, exact);
 * host memory on the CPU is fli_kmeans_cpu_plan (the CPU fit's buffers,
 * exact, checked by tests/c/test_info.c with a counting allocator).
 *
 * Runtime of the GPU fit follows what kmeans_fit.cu launches:
 *   fixed     arena cudaMalloc / cudaFree, set-up, the final synchronisation
 *   h2d       X (and weights) over the host link when X is on the host
 *   prepare   16-bit copy of X and per-row rounding statistics (tensor-core
 *             precisions), normalised copy (cosine), column statistics (tol)
 *   per run (n_init):
 *     init    k-means++: k-1 steps, each a closest-distance pass, a scan of
 *             n doubles and, per group of 8 candidates, a scoring pass by a
 *             fixed grid of warps walking the rows (latency bound: a cost
 *             per row); given centres: a copy from the host
 *     lloyd   iterations x
 *               E-step    the kernel launch_mma / k_simt / the wgmma kernel
 *                         run, on its padded work (whole waves of row
 *                         blocks, centres padded to 128 or 64, K to dp or
 *                         dh): max(tensor work + argmin/top-2 fold per
 *                         score, HBM bytes, operand bytes from L2)
 *               re-score  near ties (tensor-core precisions): a share of
 *                         the rows re-scored exactly, per row element
 *               M-step    by path: private per-warp sums, the owner kernel
 *                         (one shared copy) or counting sort + piece sums:
 *                         max(per row element (d padded to 32 lanes) + per
 *                         row, bytes); the objective left out (X resident,
 *                         owner or sorted: a launch checks for empty
 *                         clusters instead); new centres
 *               launches  of the iteration: a gap each (direct launches
 *                         for the first iterations, then replays of a CUDA
 *                         graph of 4 iterations, cheaper per kernel node)
 *             iterations after convergence: enqueued before the host saw
 *             the device's flag, their kernels return at once
 *     final   one more assignment and the objective
 *   results   centres and labels (back to the host, or device to device)
 * Coefficients (roofline values from the device table; bench/calib fits
 * them per (kernel path and precision, device), bounded to physical
 * ranges, and validates the fit on held-out shapes): fixed_ms, launch_us,
 * pp_launch_us, rate_tflops, bw_gbs, h2d_gbs, update_gps (M-step row
 * elements), owner_gps / owner_ns (the owner kernel's elements and extra
 * per-row cost), fold_gsps (E-step scores), rescore_ps (per row element of
 * X, the re-scored share included), pp_row_ps (k-means++ per row and
 * scoring pass), row_ns (M-step per row), l2_gbs (E-step
 * operand loads), graph_us (a kernel node of a graph replay).
 */
#include <math.h>
#include <string.h>

#include "algo/kmeans_cpu_plan.h"
#include "algo/kmeans_params.h"
#include "algo/kmeans_plan.h"
#include "info/info_internal.h"
#include "route/route.h"

enum {
    C_FIXED,
    C_LAUNCH,
    C_PP,
    C_RATE,
    C_BW,
    C_H2D,
    C_UPD,
    C_OWNER,
    C_OWNROW,
    C_FOLD,
    C_RESCORE,
    C_PPROW,
    C_ROW,
    C_L2,
    C_GRAPH,
    C_ACC,
    N_COEF
};

/* Rows sorted by the delta M-step in iteration t of a run, as a multiple
 * of n: every row once in the first; then two entries per row whose label
 * changed. The share that changes is data-dependent; the model takes
 * Lloyd's on unstructured data, as in a simulation of the benchmark's
 * uniform 1M x 128, k = 1024 fit: 47% in iteration 1, then ~0.3 t^-0.95
 * (15% at 2, 3.5% at 10, 1.7% at 19). Clustered data changes less. */
static double km_delta_entries(int64_t t)
{
    if (t == 0)
        return 1;
    const double phi = t == 1 ? 0.47 : 0.3 * pow((double)t, -0.95);
    return 2 * fmin(phi, 1.0);
}

static const char *const coef_names[N_COEF] = {
    "fixed_ms", "launch_us", "pp_launch_us", "rate_tflops", "bw_gbs", "h2d_gbs", "update_gps", "owner_gps",
    "owner_ns", "fold_gsps", "rescore_ps",   "pp_row_ps",   "row_ns", "l2_gbs",  "graph_us",   "acc_gps"};

/* The kernels a GPU fit runs, as kmeans_fit.cu chooses them. */
enum { PATH_PORTABLE = 0, PATH_FUSED = 1, PATH_SM90 = 2 };

/* Constants of the module's kernels the model needs (kmeans_fit.cu,
 * kmeans_estep.cu, kmeans_mstep.cu; kept equal to them by hand):
 * the M-step keeps one private copy of the sums per warp while
 * 8 copies of k (d+2) floats fit 100 KB; the SIMT E-step (fp32) runs two
 * 256-thread blocks per SM; launch_mma's shared-memory budget and the
 * largest resident row of its X-stationary kernel (words); iterations per
 * replay of the Lloyd iteration's CUDA graph. */
#define FLI_KM_PRIV_MAX (100 * 1024 / (8 * 4))
#define FLI_KM_SIMT_BM 64
#define FLI_KM_SIMT_PER_SM 2
#define FLI_KM_MMA_SMEM_MAX (220 * 1024)
#define FLI_KM_MMA_RES_MAX_KW 160
#define FLI_KM_GRAPH_ITERS 4 /* GRAPH_ITERS_DEFAULT: iterations per graph launch */

/* Launches of an in-place scan of len elements (kmeans_mstep.cu scan_rec). */
static double scan_launches(int64_t len)
{
    double l = 1;
    while (len > FLI_KM_SCAN_TILE) {
        len = (len + FLI_KM_SCAN_TILE - 1) / FLI_KM_SCAN_TILE;
        l += 2;
    }
    return l;
}

/* The padded work of one E-step over a chunk of plan->chunk_rows rows. */
typedef struct km_estep_geom {
    double rows_exec; /* rows the grid computes: whole waves of blocks      */
    double kpe;       /* centres each row is scored against (padded)       */
    double K;         /* reduction length of the products (padded)         */
    double l2_bytes;  /* operand bytes loaded into shared memory (L2)     */
    double row_bytes; /* HBM bytes per row: X (or its 16-bit copy), labels */
} km_estep_geom;

/* Mirrors the kernel choice of km_estep / launch_mma (kmeans_estep.cu) and
 * km_estep_sm90. */
static void estep_geom(const fli_kmeans_cuda_plan *p, fli_precision prec, int path, int sms, double smem_sm,
                       km_estep_geom *g)
{
    const double m = (double)p->chunk_rows, kp = (double)p->kp;
    if (prec == FLI_PREC_FP32) { /* k_simt: 64-row blocks, 64-centre tiles up to kp, K in steps of 16 */
        const double slots = (double)sms * FLI_KM_SIMT_PER_SM;
        g->rows_exec = ceil(ceil(m / FLI_KM_SIMT_BM) / slots) * slots * FLI_KM_SIMT_BM;
        g->kpe = kp;
        g->K = ceil((double)p->d / 16) * 16;
        g->l2_bytes = 0;
        g->row_bytes = (double)p->d * 4 + 8;
        return;
    }
    const int tf = prec == FLI_PREC_TF32;
    const double es = tf ? 4 : 2;
    /* tf32 runs over dp words, 16-bit and the Hopper tf32 kernel over dh */
    const double K = tf && path != PATH_SM90 ? (double)p->dp : (double)p->dh;
    const int64_t kw = tf ? p->dp : p->dh / 2; /* 32-bit words per row */
    double bm = 256, kpe = kp;
    int a_res = 1, persistent = 1, per_sm = 1;
    if (path == PATH_SM90) {
        /* persistent grid, but B tiles stream past every A tile: 256 rows
         * (16-bit images; tf32 through TMA, four warpgroups of 64) */
        persistent = 0;
        bm = 256;
    } else if (p->k <= 64 && 2 * ((64 + 2 * 256) * (kw + 4) * 4 + 1024) <= smem_sm) {
        /* k_estep_mma_c64<MT = 2>: all 64 centres resident, 2 blocks per SM */
        bm = 256, kpe = 64, per_sm = 2;
    } else if (p->k <= 64 && (64 + 2 * 512) * (kw + 4) * 4 <= FLI_KM_MMA_SMEM_MAX) {
        bm = 512, kpe = 64; /* k_estep_mma_c64<MT = 4>: all 64 centres resident */
    } else if (((p->kp + 2 * 256) * (kw + 4) + 8 * 256) * 4 <= FLI_KM_MMA_SMEM_MAX &&
               p->kp * kw <= 512 * 64) {
        /* k_estep_mma_cres: centres resident */
    } else {
        persistent = 0; /* k_estep_mma: a block per 256 rows, centre tiles streamed */
        a_res = kw <= FLI_KM_MMA_RES_MAX_KW;
    }
    const double tiles = ceil(m / bm), slots = (double)sms * per_sm;
    g->rows_exec = ceil(tiles / slots) * slots * bm;
    g->kpe = kpe;
    g->K = K;
    g->l2_bytes = g->rows_exec * K * es * (a_res ? 1 : kp / FLI_KM_BN) +
                  (persistent ? (tiles < slots ? tiles : slots) : tiles) * kpe * K * es;
    g->row_bytes = (tf ? (double)p->d * 4 : (double)p->dh * 2) + 16;
}

/* Calibration keys: the precision, with "-fused" or "-sm90" when the fit
 * runs those kernels (different code, so a different fit). */
static const char *const calib_keys[3][4] = {{"fp32", "tf32", "bf16", "fp16"},
                                             {"fp32-fused", "tf32-fused", "bf16-fused", "fp16-fused"},
                                             {"fp32-sm90", "tf32-sm90", "bf16-sm90", "fp16-sm90"}};

/* Which kernels run: the module's own rule (fli_kmeans_cuda_path, beside
 * the plan), so the estimate follows the kernels a fit really launches. The
 * opt-in fused E+M kernel (FL_KM_FUSED=1) is not the default and is not
 * modelled as chosen. */
static int kernel_path(const fli_kmeans_cuda_plan *plan, fli_precision prec, const fl_route *route,
                       const fl_hw_props *hw)
{
    const int p = fli_kmeans_cuda_path(plan, prec, route->backend, hw->sm90_enabled, hw->sm_major,
                                       hw->sm_minor, hw->smem_per_block_optin_bytes, 0, NULL, NULL);
    return p == FLI_KM_PATH_SM90 ? PATH_SM90 : p == FLI_KM_PATH_FUSED ? PATH_FUSED : PATH_PORTABLE;
}

static int variant_prec(const char *v, fli_precision *p)
{
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 4; i++)
            if (!strcmp(v, calib_keys[s][i])) {
                *p = (fli_precision)i;
                return 0;
            }
    return -1;
}

static void roofline_coefs(fli_precision p, const fl_info_device *dev, double *c)
{
    c[C_FIXED] = 0.05 + 12 * dev->launch_us * 1e-3;
    c[C_LAUNCH] = dev->launch_us;
    c[C_PP] = dev->launch_us;
    c[C_RATE] = fli_rate(dev, fli_prec_info(p), FLI_CLASS_FUSED);
    c[C_BW] = fli_bw(dev, FLI_CLASS_FUSED);
    c[C_H2D] = dev->h2d_gbs > 0 ? dev->h2d_gbs * 0.3 : 10.0;
    /* centre sums: one shared-memory update per row element and 32 lanes
     * per step, about a billion a second per SM; the owner kernel (one
     * shared copy) half of that */
    c[C_UPD] = dev->sm_count * 1.0;
    /* the owner kernel: every warp of a block reads each row's label */
    c[C_OWNER] = dev->sm_count * 0.5;
    c[C_OWNROW] = 0.1;
    /* argmin and second best of a score: a few instructions per score on
     * every lane, ~10 G scores/s per SM */
    c[C_FOLD] = dev->sm_count * 10.0;
    /* ~5% of rows re-scored, 12 bytes per element at HBM speed */
    c[C_RESCORE] = 0.05 * 12 / fli_bw(dev, FLI_CLASS_GATHER) * 1e3;
    /* k-means++ scoring: ~4096 warps walk the rows, ~1 us per row each */
    c[C_PPROW] = 1e6 / 4096;
    c[C_ROW] = 0.1;
    c[C_L2] = 2 * fli_bw(dev, FLI_CLASS_FUSED);
    /* a kernel node of a CUDA graph replay: a fraction of a launch */
    c[C_GRAPH] = 0.4 * dev->launch_us;
    /* sums taken inside the tf32 k <= 64 E-step (k_estep_c64_acc): one
     * shared-memory add per row element on 32 lanes, the row already
     * loaded: about twice the separate M-step's rate */
    c[C_ACC] = dev->sm_count * 2.0;
}

int fli_kmeans_coefs(const char *variant, const fl_info_device *dev, const char **names, double *def)
{
    fli_precision p;
    if (variant_prec(variant, &p) || !dev->is_gpu)
        return -1;
    double c[N_COEF];
    roofline_coefs(p, dev, c);
    return fli_coefs_out(coef_names, c, N_COEF, names, def);
}

/* Everything the model needs, resolved from the shape and parameters the
 * way kmeans.c resolves them. */
typedef struct km_req {
    int64_t n, d, k, n_init, max_iter, iters, L;
    int init, metric, precision_word, on_device, weights, iters_given, threads, entry_model;
    double tol;
} km_req;

/* Indexes of the parameters: fli_kmeans_params (shared with execution),
 * then fli_kmeans_xparams. Reading by index keeps an estimate under a
 * microsecond; tests/c/test_info.c checks the tables' order against these. */
enum {
    KP_N_CLUSTERS,
    KP_INIT,
    KP_N_INIT,
    KP_MAX_ITER,
    KP_TOL,
    KP_RANDOM_STATE,
    KP_METRIC,
    KP_PRECISION,
    KP_ALGORITHM,
    KP_N_LOCAL_TRIALS,
    KP_VERBOSE,
    KX_INPUT = FLI_KMEANS_N_PARAMS,
    KX_EXPECTED_ITER,
    KX_THREADS,
    KX_SAMPLE_WEIGHT,
    KX_ENTRY,
    KP_COUNT
};

/* The tables' defaults as the generic reader (fli_p_num_i / fli_p_word_i)
 * turns their text into a number (NaN for a word) and a word index (-1 for
 * a number): read from here, an estimate parses no default text, which was
 * about a seventh of a call. tests/c/test_info.c checks that estimating
 * with every default spelled out gives the same result as leaving them
 * unset, so a changed default in a table fails there. */
static const fli_pdefault km_defaults[KP_COUNT] = {
    [KP_N_CLUSTERS] = {8, -1},
    [KP_INIT] = {NAN, FLI_KM_INIT_KMEANSPP},
    [KP_N_INIT] = {NAN, 0}, /* auto */
    [KP_MAX_ITER] = {300, -1},
    [KP_TOL] = {1e-4, -1},
    [KP_RANDOM_STATE] = {NAN, 0}, /* none */
    [KP_METRIC] = {NAN, FLI_METRIC_EUCLIDEAN},
    [KP_PRECISION] = {NAN, 0},      /* auto */
    [KP_ALGORITHM] = {NAN, 0},      /* lloyd */
    [KP_N_LOCAL_TRIALS] = {NAN, 0}, /* auto */
    [KP_VERBOSE] = {0, -1},
    [KX_INPUT] = {NAN, 0},         /* host */
    [KX_EXPECTED_ITER] = {NAN, 0}, /* max_iter */
    [KX_THREADS] = {NAN, 0},       /* auto */
    [KX_SAMPLE_WEIGHT] = {0, -1},  /* false */
    [KX_ENTRY] = {NAN, 0},         /* function */
};

static int resolve(fli_est *e, km_req *q)
{
    q->n = e->shape[0];
    q->d = e->shape[1];
    q->k = (int64_t)fli_pd_num(e, km_defaults, KP_N_CLUSTERS);
    if (q->k > q->n)
        return fli_info_fail(e, "kmeans: n_clusters=%lld: must be in [1, n_samples=%lld]", (long long)q->k,
                             (long long)q->n);
    if (e->dtype != FL_DTYPE_F32 && e->dtype != FL_DTYPE_F64)
        return fli_info_fail(e,
                             "kmeans: dtype %s: expected f32 or f64 (the GPU's 16-bit arithmetic is "
                             "precision=bf16 or precision=fp16)",
                             fli_dtype_canon(e->dtype));
    q->init = fli_pd_word(e, km_defaults, KP_INIT);
    int w = fli_pd_word(e, km_defaults, KP_N_INIT);
    q->n_init =
        w == 0 ? (q->init == FLI_KM_INIT_RANDOM ? 10 : 1) : (int64_t)fli_pd_num(e, km_defaults, KP_N_INIT);
    if (q->init == FLI_KM_INIT_ARRAY)
        q->n_init = 1;
    q->max_iter = (int64_t)fli_pd_num(e, km_defaults, KP_MAX_ITER);
    q->iters = q->max_iter;
    q->iters_given = fli_pd_word(e, km_defaults, KX_EXPECTED_ITER) < 0;
    if (q->iters_given) {
        int64_t x = (int64_t)fli_pd_num(e, km_defaults, KX_EXPECTED_ITER);
        q->iters = x < q->max_iter ? x : q->max_iter;
    }
    q->L = fli_pd_word(e, km_defaults, KP_N_LOCAL_TRIALS) == 0
               ? 2 + (int64_t)floor(log((double)q->k))
               : (int64_t)fli_pd_num(e, km_defaults, KP_N_LOCAL_TRIALS);
    q->metric = fli_pd_word(e, km_defaults, KP_METRIC);
    q->precision_word = fli_pd_word(e, km_defaults, KP_PRECISION);
    q->on_device = fli_pd_word(e, km_defaults, KX_INPUT) == 1;
    q->weights = fli_pd_num(e, km_defaults, KX_SAMPLE_WEIGHT) != 0;
    q->tol = fli_pd_num(e, km_defaults, KP_TOL);
    double th = fli_pd_num(e, km_defaults, KX_THREADS);
    q->threads = isfinite(th) && th >= 1 ? (int)th : 0;
    q->entry_model = fli_pd_word(e, km_defaults, KX_ENTRY) == 1;
    return 0;
}

static int est_gpu(fli_est *e, const km_req *q)
{
    fl_info_result *r = e->r;
    fl_hw_props hw;
    fli_device_hw(e->dev, &hw);
    fl_route route;
    fli_precision prec;
    int pw = q->precision_word;
    fli_precision forced;
    if (e->variant_override && !variant_prec(e->variant_override, &forced))
        pw = (int)forced + 1;
    fli_route_kmeans(&hw, q->n, q->d, e->dtype, q->k, pw, &route, &prec);
    strcpy(r->backend, fl_backend_name(route.backend));
    memcpy(r->variant, route.variant, sizeof r->variant);
    memcpy(r->reason, route.reason, sizeof r->reason);
    e->main_prec = fli_prec_info(prec);
    if (e->dtype == FL_DTYPE_F64 && q->on_device)
        return fli_info_fail(e, "kmeans: float64 X in device memory: the GPU path computes in float32; pass "
                                "float32 device data or float64 host data (as execution requires)");

    /* Device memory: the arena execution allocates. kmeans.c plans host X
     * under 90% of the device's memory and streams it in chunks when the
     * whole fit does not fit; X on the device is never chunked. */
    fli_kmeans_cuda_plan plan;
    const size_t budget = (size_t)(e->dev->memory_bytes / 10 * 9);
    fl_status pst = fli_kmeans_plan_cuda(q->n, q->d, q->k, prec, q->on_device, q->weights,
                                         (fli_metric)q->metric, budget, &plan);
    if (pst == FL_STATUS_DEVICE_OOM) {
        r->fits_in_memory = 0;
        fli_note(e, "does not fit: even streaming X in chunks, the fit's device arena exceeds 90% of the "
                    "device's memory (execution fails with FL_STATUS_DEVICE_OOM); the figures are for the "
                    "unchunked fit");
        pst = fli_kmeans_cuda_plan_chunk(q->n, q->d, q->k, prec, q->on_device, q->weights,
                                         (fli_metric)q->metric, 0, &plan);
    }
    if (pst != FL_STATUS_OK)
        return fli_info_fail(e,
                             "kmeans: shape %lld x %lld with n_clusters=%lld is outside what the CUDA plan "
                             "supports (n_samples and n_clusters must be < 2^31)",
                             (long long)q->n, (long long)q->d, (long long)q->k);
    r->peak_memory_bytes = plan.device_bytes;
    r->peak_memory_exact = 1;
    if (q->on_device && (double)plan.device_bytes + (double)q->n * q->d * 4 > (double)e->dev->memory_bytes) {
        r->fits_in_memory = 0;
        fli_note(e, "does not fit: X on the device plus the fit's arena exceed the device's memory");
    }
    if (plan.chunked)
        fli_note(e, "X does not fit beside the fit's buffers: it is streamed from the host in chunks "
                    "(double-buffered) on every pass, so the host link bounds each iteration");
    /* Host scratch: 'random' init's draw set, the float32 copies of a
     * float64 input (kmeans.c), an init array copy. */
    double host = q->init == FLI_KM_INIT_RANDOM ? (double)plan.host_bytes : 0;
    if (e->dtype == FL_DTYPE_F64)
        host += (double)q->n * q->d * 4 + (double)q->k * q->d * 4 + (q->weights ? (double)q->n * 4 : 0);
    if (q->init == FLI_KM_INIT_ARRAY)
        host += (double)q->k * q->d * 4;
    r->peak_host_bytes = (uint64_t)host;
    if (!q->on_device && (double)q->n * q->d * 4 >= 1 << 20)
        fli_note(e, "X is copied through the context's pinned staging buffers (3 x 8 MB of pinned host "
                    "memory, made on its first large copy and kept with the context; not in the host peak, "
                    "which counts this call's own buffers)");

    /* Coefficients: this precision and these kernels on this device. */
    const int path = kernel_path(&plan, prec, &route, &hw);
    const char *key = calib_keys[path][prec];
    r->model_key = key;
    double def[N_COEF];
    fl_info_tier tier;
    const fli_calib_entry *entry = NULL;
    const double *c = fli_calib_coefs(e, "kmeans", key, "f32", NULL, N_COEF, &tier, &entry);
    if (!c) {
        roofline_coefs(prec, e->dev, def);
        c = def;
    }
    if (entry)
        r->calibration = entry->describe;

    const double n = (double)q->n, d = (double)q->d, k = (double)q->k;
    const int p16 = prec == FLI_PREC_BF16 || prec == FLI_PREC_FP16;
    const double dp = (double)plan.dp, dh = (double)plan.dh;
    /* rates in units per ms */
    const double bw = c[C_BW] * 1e6, h2d = c[C_H2D] * 1e6, l2 = c[C_L2] * 1e6;
    const double rate = c[C_RATE] * 1e9, fold = c[C_FOLD] * 1e6;
    const double upd = c[C_UPD] * 1e6, own = c[C_OWNER] * 1e6, own_row = c[C_OWNROW] * 1e-6;
    const double acc = c[C_ACC] * 1e6;
    const double launch = c[C_LAUNCH] * 1e-3, pp_ms = c[C_PP] * 1e-3, glaunch = c[C_GRAPH] * 1e-3;
    const double rescore = c[C_RESCORE] * 1e-9, pp_row = c[C_PPROW] * 1e-9, row = c[C_ROW] * 1e-6;
    const int sms = e->dev->sm_count;
    int root = 0;

    int nd =
        fli_node(e, root, "fixed overhead", "arena allocation and release, set-up, final synchronisation", 1);
    fli_leaf(e, nd, c[C_FIXED], 0, 0, 4, FL_INFO_BOUND_LATENCY, tier);
    if (!q->on_device && !plan.chunked) {
        double b = n * d * 4 + (q->weights ? n * 4 : 0);
        nd = fli_node(e, root, "copy X to the device", "host-to-device over the host link (pageable memory)",
                      1);
        fli_leaf(e, nd, b / h2d, 0, 0, 1, FL_INFO_BOUND_TRANSFER, tier);
        e->link_bytes += b;
    }
    double prep = 0, prep_l = 0;
    if (prec != FLI_PREC_FP32 && path != PATH_FUSED) /* 16-bit copy and/or per-row rounding statistics */
        prep += n * d * 4 + n * 8 + (p16 ? ceil(n / FLI_KM_XH_ROWS) * FLI_KM_XH_ROWS * dh * 2 : 0),
            prep_l += 1;
    if (q->metric == FLI_METRIC_COSINE)
        prep += 2 * n * d * 4, prep_l += 1;
    if (q->tol > 0)
        prep += n * d * 4, prep_l += 2;
    if (prep_l > 0) {
        nd = fli_node(e, root, "prepare X",
                      "16-bit copy and row statistics / normalised copy / variances for tol", 1);
        fli_leaf(e, nd, prep / bw + prep_l * launch, 0, prep, prep_l, FL_INFO_BOUND_MEMORY, tier);
    }

    int run = fli_node(e, root, "run", "one of n_init runs: init, Lloyd iterations, final assignment",
                       (double)q->n_init);
    const double R = (double)q->n_init;
    /* init */
    if (q->init == FLI_KM_INIT_KMEANSPP) {
        /* per step: closest-distance update (one warp per row), an inclusive
         * scan of n doubles, then per group of 8 candidates: draw, gather,
         * one scoring pass (a fixed grid of warps walking the rows: latency
         * bound, pp_row_ps per row) and the choice */
        double steps = k - 1, groups = ceil((double)q->L / FLI_KM_PP_GROUP);
        double b = n * d * 4 * (1 + groups) + n * 4 * (2 + groups) + n * 8 * 3;
        double fl = 2 * n * d * (1 + (double)q->L);
        double launches = 1 + scan_launches(q->n) + 4 * groups;
        nd = fli_node(e, run, "init (k-means++)",
                      "k-1 steps: closest-distance update, scan, candidate scoring", R * steps);
        double tb = b / bw + n * groups * pp_row, ts = plan.chunked ? (1 + groups) * n * d * 4 / h2d : 0;
        double t = steps * (launches * pp_ms + (ts > tb ? ts : tb)) + 3 * pp_ms;
        fli_leaf(e, nd, R * t, R * steps * fl, R * steps * b, R * (steps * launches + 3),
                 ts > tb && ts > launches * pp_ms                  ? FL_INFO_BOUND_TRANSFER
                 : launches * pp_ms + n * groups * pp_row > b / bw ? FL_INFO_BOUND_LATENCY
                                                                   : FL_INFO_BOUND_MEMORY,
                 tier);
        e->link_bytes += plan.chunked ? R * steps * (1 + groups) * n * d * 4 : 0;
    } else {
        /* given centres come from the host; random rows are a gather */
        double b = k * d * 4;
        double t = q->init == FLI_KM_INIT_ARRAY ? b / h2d : 2 * b / bw;
        nd = fli_node(e, run, q->init == FLI_KM_INIT_RANDOM ? "init (random rows)" : "init (given centres)",
                      q->init == FLI_KM_INIT_ARRAY ? "k rows copied from the host" : "a gather of k rows", R);
        fli_leaf(e, nd, R * (3 * launch + t), 0, R * b, R * 3, FL_INFO_BOUND_LATENCY, tier);
    }

    /* One E-step: the kernel launch_mma / k_simt / the sm90 kernel run, on
     * its padded work: rows in waves of one block per SM (two for SIMT),
     * centres padded to 128 (64 for k <= 64), K to dp (tf32, SIMT 16) or dh
     * (16-bit). Time: the larger of the tensor work plus the argmin / top-2
     * fold per score, the HBM bytes, and the operand bytes re-read from L2. */
    km_estep_geom g;
    estep_geom(&plan, prec, path, sms, (double)e->dev->smem_per_sm_bytes, &g);
    const double chunks = (double)plan.n_chunks;
    const double te_c = chunks * g.rows_exec * g.kpe * (2 * g.K / rate + 1 / fold);
    const double te_m = n * g.row_bytes / bw, te_l = chunks * g.l2_bytes / l2;
    const double t_assign = fmax(te_c, fmax(te_m, te_l));
    const fl_info_bound b_assign =
        te_c >= te_m && te_c >= te_l ? FL_INFO_BOUND_COMPUTE : FL_INFO_BOUND_MEMORY;
    const double fl_alg = 2 * n * k * d;
    /* near-tie re-scoring (tensor-core precisions): a share of the rows,
     * each re-scored in double from its fp32 row: rescore_ps per row element */
    const double t_tie = prec != FLI_PREC_FP32 && path != PATH_FUSED ? n * d * rescore : 0;
    /* M-step: private per-warp sums (k(d+2) <= 3200), the owner kernel (a
     * shared copy), or counting sort + piece sums; per row element (d
     * padded to the 32 lanes of a warp) at update_gps, per row row_ns (and
     * owner_ns more in the owner kernel, whose 16 warps all read each
     * label), or the bytes, whichever is larger */
    const int priv = q->k * (q->d + 2) <= FLI_KM_PRIV_MAX;
    double bm, nl_m;
    const int owner = plan.mstep_smem && !priv;
    const double rows_work = n * dp / (owner ? own : upd) + n * (row + (owner ? own_row : 0));
    /* the tf32 k <= 64 E-step that takes the sums itself (no inertia trace
     * is asked for here): the update is the partials' combine only */
    const int eacc =
        path == PATH_PORTABLE && fli_kmeans_eacc(&plan, prec, (int64_t)e->dev->smem_per_sm_bytes);
    /* X resident, owner or sorted M-step, or eacc: the objective is left
     * out (no inertia trace is asked for) and a launch checks for empty
     * clusters; chunked or private copies: the M-step writes every row's
     * objective */
    const int mobj = plan.chunked || (priv && !eacc);
    const double objb = mobj ? n * 4 : 0;
    if (eacc) {
        const double nblk = fmin(fmin((double)FLI_KM_ACC_BLOCKS, 2.0 * sms), ceil(n / 256));
        bm = nblk * k * (d + 2) * 4 * 2;
        nl_m = 2;
    } else if (plan.mstep_smem) {
        /* per-block partials: at most one block per batch of rows (64 rows
         * with private copies, 512 for the owner kernel) */
        const double nblk = fmin((double)FLI_KM_ACC_BLOCKS, ceil(n / (priv ? 64 : 512)));
        bm = n * d * 4 + n * 4 + objb + nblk * k * (d + 2) * 4 * 2;
        nl_m = mobj ? 2 : 3;
    } else {
        bm = n * d * 4 + n * 4 * 5 + objb + k * (double)plan.sort_nb * 4 * 6 +
             (double)plan.npieces_max * d * 4 * 2;
        nl_m = 8 + scan_launches(q->k * plan.sort_nb + 1) + scan_launches(q->k + 1);
    }
    const double t_update = (eacc ? bm / bw : fmax(rows_work, bm / bw)) + k * dp * 8 * 3 / bw;
    /* The sorted M-step with X resident and no objective keeps its sums
     * and, after a run's first iteration, sorts and sums only the rows
     * whose label changed, two entries each (kmeans_mstep.cu): its time
     * and bytes summed over the run's iterations, entries per iteration
     * from km_delta_entries */
    const int delta = !plan.mstep_smem && !plan.chunked && !mobj && path != PATH_FUSED;
    double t_update_run = (double)q->iters * t_update, bm_run = (double)q->iters * bm;
    if (delta) {
        t_update_run = bm_run = 0;
        for (int64_t t = 0; t < q->iters; t++) {
            const double E = n * km_delta_entries(t);
            const double rw = E * dp / upd + E * row;
            const double bt =
                E * d * 4 + n * 4 * 5 + k * (double)plan.sort_nb * 4 * 6 + (E / FLI_KM_PIECE + k) * d * 4 * 2;
            t_update_run += fmax(rw, bt / bw) + k * dp * 8 * 3 / bw;
            bm_run += bt;
        }
    }
    /* launches of an iteration: E-step, (re-scoring), M-step, finalize
     * (which also writes the done flag to mapped host memory); replayed
     * from a CUDA graph when X is resident */
    const double nl = 1 + (t_tie > 0 && !eacc) + nl_m + 1;
    /* streamed X: every pass over X crosses the host link again, overlapped
     * with the kernels of the previous chunk */
    const double stream = plan.chunked ? n * d * 4 / h2d : 0;
    const double I = (double)q->iters;
    /* kmeans_fit.cu: with X resident and max_iter > 1, iterations
     * [gstart, max_iter) are replayed from a CUDA graph of gi iterations
     * (gi = min(4, max_iter - 1), gstart = 1 + (max_iter - 1) % gi), the
     * first gstart launched directly: a kernel node costs graph_us, a
     * direct launch launch_us */
    double gstart = (double)q->max_iter;
    if (!plan.chunked && q->max_iter > 1) {
        const int64_t gi = q->max_iter - 1 < FLI_KM_GRAPH_ITERS ? q->max_iter - 1 : FLI_KM_GRAPH_ITERS;
        gstart = (double)(1 + (q->max_iter - 1) % gi);
    }
    const double left = (double)q->max_iter - I, direct_run = fmin(I, gstart);
    const double direct_left = fmin(left, fmax(0, gstart - I));
    const double t_launch_run = nl * (direct_run * launch + (I - direct_run) * glaunch);
    const double t_launch_left = nl * (direct_left * launch + (left - direct_left) * glaunch);
    int lloyd = fli_node(e, run, "lloyd iteration", "assign + update, no host round trip", R * I);
    if (path == PATH_FUSED) {
        /* one persistent kernel: tiles of fp32 X are assigned with mma.sync
         * and added into shared-memory sums; X is read once per iteration */
        const double kf = ceil(k / 64) * 64, xw = prec == FLI_PREC_TF32 ? ceil(d / 8) * 8 : ceil(d / 16) * 16;
        const double tiles = ceil(n / FLI_KM_FUSED_BM), ffill = tiles < sms ? tiles / sms : 1;
        const double tcf = n * kf * (2 * xw / rate + 1 / fold) / ffill + rows_work;
        const double bf = n * d * 4 + n * 8 + sms * k * (d + 2) * 4 * 2 + k * d * 8 * 2;
        const double tmf = bf / bw;
        double t = tcf > tmf ? tcf : tmf;
        if (stream > t)
            t = stream;
        nd = fli_node(e, lloyd, "assign + update (fused kernel)",
                      "one pass: mma.sync scores, online argmin, shared-memory centre sums", R * I);
        fli_leaf(e, nd, R * I * t, R * I * (fl_alg + 2 * n * d), R * I * bf, R * I * 2,
                 t == stream && stream > 0 ? FL_INFO_BOUND_TRANSFER
                 : tcf > tmf               ? FL_INFO_BOUND_COMPUTE
                                           : FL_INFO_BOUND_MEMORY,
                 tier);
    } else if (eacc) {
        /* k_estep_c64_acc: the E-step's products and fold, then per row
         * element one add into the warp's sums (acc_gps, which also covers
         * the rows' second read, an L2 hit: l2_gbs is the shared-memory
         * fill rate of the E-steps' operands, not L2's); X from HBM once;
         * near ties re-scored in place */
        const double te_a = te_c + chunks * g.rows_exec * dp / acc;
        const double t = fmax(te_a, fmax(te_m, te_l)) + t_tie;
        nd = fli_node(e, lloyd, "assign + sums (one kernel)",
                      "mma.sync tiles, online argmin and second best, near ties re-scored, "
                      "centre sums in per-warp shared-memory copies",
                      R * I);
        fli_leaf(e, nd, R * I * t, R * I * (fl_alg + 2 * n * d), R * I * n * g.row_bytes, R * I,
                 te_a >= te_m && te_a >= te_l ? FL_INFO_BOUND_COMPUTE : FL_INFO_BOUND_MEMORY, tier);
        nd = fli_node(e, lloyd, "update (combine, shift)", "the blocks' partial sums added in block order",
                      R * I);
        fli_leaf(e, nd, R * I * t_update, 0, R * I * bm, R * I * nl_m, FL_INFO_BOUND_LATENCY, tier);
    } else {
        nd = fli_node(e, lloyd, "assign (distance+argmin)",
                      path == PATH_SM90       ? "wgmma tiles (Hopper), online argmin and second best"
                      : prec == FLI_PREC_FP32 ? "SIMT tiles, online argmin"
                                              : "mma.sync tiles, online argmin and second best",
                      R * I);
        const double t_pass = t_assign + t_update > stream ? t_assign : stream - t_update;
        fli_leaf(e, nd, R * I * t_pass, R * I * fl_alg, R * I * n * g.row_bytes, R * I,
                 t_pass > t_assign ? FL_INFO_BOUND_TRANSFER : b_assign, tier);
        if (t_tie > 0) {
            nd = fli_node(e, lloyd, "re-score near ties",
                          "rows whose best two scores are within the rounding "
                          "bound, re-scored exactly from the fp32 row",
                          R * I);
            fli_leaf(e, nd, R * I * t_tie, 0, 0, R * I, FL_INFO_BOUND_LATENCY, tier);
        }
        nd = fli_node(e, lloyd, "update (centre sums, shift)",
                      plan.mstep_smem ? (priv ? "shared-memory sums, one copy per warp"
                                              : "shared-memory sums, one owner warp per cluster")
                                      : (delta ? "counting sort of the changed rows, their deltas added to "
                                                 "the kept sums (all rows in the first iteration)"
                                               : "counting sort of the labels, piece sums in row order"),
                      R * I);
        fli_leaf(e, nd, R * t_update_run, R * I * 2 * n * d, R * bm_run, R * I * nl_m,
                 rows_work > bm / bw ? FL_INFO_BOUND_LATENCY : FL_INFO_BOUND_MEMORY, tier);
    }
    e->link_bytes += plan.chunked ? R * I * n * d * 4 : 0;
    nd = fli_node(e, lloyd, "launch chain", "kernel launches of an iteration (graph replays after the first)",
                  R * I);
    fli_leaf(e, nd, R * t_launch_run, 0, 0, R * I * nl, FL_INFO_BOUND_LATENCY, tier);
    /* A run that converges before max_iter: the host never waits for the
     * device, so it has enqueued the remaining iterations (graph launches
     * of several iterations, or direct launches) long before the device
     * sets its done flag whenever an iteration does real work; their
     * kernels return at once, a launch gap each. */
    if (left > 0) {
        nd = fli_node(e, run, "iterations after convergence",
                      "already enqueued when the run converged; their kernels return at once", R * left);
        fli_leaf(e, nd, R * t_launch_left, 0, 0, R * left * nl, FL_INFO_BOUND_LATENCY, tier);
    }
    double bo = n * d * 4 + n * 4;
    nd = fli_node(e, run, "final assignment", "labels that match the returned centres, and the inertia", R);
    fli_leaf(e, nd, R * (t_assign + t_tie + fmax(n * dp / upd + n * row, bo / bw) + 4 * launch),
             R * (fl_alg + 3 * n * d), R * (n * g.row_bytes + bo), R * 6, b_assign, tier);
    {
        double b = k * d * 4 + n * 4;
        nd = fli_node(
            e, root, "copy results",
            q->on_device ? "centres and labels (device to device)" : "centres and labels to the host", 1);
        fli_leaf(e, nd, q->on_device ? 2 * b / bw : b / h2d, 0, q->on_device ? 2 * b : 0, 2,
                 q->on_device ? FL_INFO_BOUND_MEMORY : FL_INFO_BOUND_TRANSFER, tier);
        if (!q->on_device)
            e->link_bytes += b;
    }

    r->iterations = I;
    if (!q->iters_given)
        fli_note(e,
                 "assumes max_iter Lloyd iterations per run: an upper bound, the fit stops earlier when it "
                 "converges (pass expected_iter=N to model fewer)");
    if (tier == FL_INFO_TIER_ROOFLINE)
        fli_note(e, "no calibration of this precision on this device: device peaks x default efficiencies");
    /* a measurement of this exact shape */
    int64_t pkey[6] = {q->n, q->d, q->k, q->iters, q->init, q->on_device};
    const fli_calib_point *pt =
        e->no_measured || q->n_init != 1 || q->metric != FLI_METRIC_EUCLIDEAN || q->weights || q->tol != 0
            ? NULL
            : fli_calib_point_find("kmeans", key, "f32", e->dev->name, pkey);
    if (pt)
        fli_scale_to_measured(e, pt->ms);
    return 0;
}

static int est_cpu(fli_est *e, const km_req *q)
{
    fl_info_result *r = e->r;
    fl_route route;
    fli_precision prec;
    fli_route_kmeans(NULL, q->n, q->d, e->dtype, q->k, q->precision_word, &route, &prec);
    strcpy(r->backend, fl_backend_name(route.backend));
    memcpy(r->variant, route.variant, sizeof r->variant);
    memcpy(r->reason, route.reason, sizeof r->reason);
    e->main_prec = fli_prec_info(prec);

    /* the backend's thread count: as given, this machine's cores for device
     * "this", else the nominal CPU's */
    int threads = q->threads > 0 ? q->threads : isfinite(e->threads) ? (int)e->threads : e->dev->sm_count;
    fli_kmeans_cpu_call call = {
        q->n, q->d,           q->k, e->dtype, threads, (fli_kmeans_init)q->init, q->L, (fli_metric)q->metric,
        0,    q->entry_model, 0};
    fli_kmeans_cpu_bytes plan;
    if (fli_kmeans_cpu_plan(&call, &plan) != FL_STATUS_OK)
        return fli_info_fail(e,
                             "kmeans: the host memory of %lld x %lld with n_clusters=%lld overflows 64 bits",
                             (long long)q->n, (long long)q->d, (long long)q->k);
    r->peak_memory_bytes = plan.peak_bytes;
    r->peak_host_bytes = plan.peak_bytes;
    r->peak_memory_exact = 1;
    r->fits_in_memory = (double)plan.peak_bytes <= (double)e->dev->memory_bytes;
    if (!r->fits_in_memory)
        fli_note(e, "does not fit: the fit's host buffers exceed the machine's memory");
    fli_note(e, "host peak from fli_kmeans_cpu_plan, the CPU fit's own buffers; empty clusters add up to 8 x "
                "n_clusters bytes while they are relocated");

    const double n = (double)q->n, d = (double)q->d, k = (double)q->k, es = (double)fli_dtype_bytes(e->dtype);
    const fl_info_prec p = fli_prec_info(prec);
    const double R = (double)q->n_init, I = (double)q->iters;
    fl_info_tier cap = FL_INFO_TIER_HEURISTIC;
    fli_roof_leaf(e, 0, "prepare X", "row norms, feature variances for tol", 1, 5 * n * d, p,
                  FLI_CLASS_STREAM, 2 * n * d * es, 2, cap);
    int run = fli_node(e, 0, "run", "one of n_init runs: init, Lloyd iterations, final assignment", R);
    if (q->init == FLI_KM_INIT_KMEANSPP)
        fli_roof_leaf(e, run, "init (k-means++)", "k-1 steps: a GEMM against the candidates, prefix sums",
                      R * (k - 1), 2 * n * d * (double)q->L, p, FLI_CLASS_FUSED,
                      n * d * es + n * (double)q->L * es * 2 + n * 24, 3, cap);
    else
        fli_roof_leaf(e, run, "init", "rows copied", R, 0, p, FLI_CLASS_STREAM, k * d * es * 2, 1, cap);
    int lloyd =
        fli_node(e, run, "lloyd iteration", "BLAS-blocked distances with fused argmin and sums", R * I);
    fli_roof_leaf(e, lloyd, "assign (distance+argmin)", "CHUNK-row GEMM blocks, no n x k matrix", R * I,
                  2 * n * k * d, p, FLI_CLASS_FUSED, n * d * es + n * 8, 1, cap);
    fli_roof_leaf(e, lloyd, "update (centre sums, shift)", "thread-private sums reduced in thread order",
                  R * I, 2 * n * d, p, FLI_CLASS_STREAM, (double)threads * k * d * 8 + k * d * es * 2, 1,
                  cap);
    fli_roof_leaf(e, run, "final assignment", "labels that match the returned centres", R, 2 * n * k * d, p,
                  FLI_CLASS_FUSED, n * d * es + n * 8, 1, cap);
    r->iterations = I;
    if (!q->iters_given)
        fli_note(e,
                 "assumes max_iter Lloyd iterations per run: an upper bound, the fit stops earlier when it "
                 "converges (pass expected_iter=N to model fewer)");
    fli_note(
        e, "CPU runtime uses the nominal CPU of the device table: heuristic until calibrated on a named CPU");
    return 0;
}

int fli_est_kmeans(fli_est *e)
{
    km_req q;
    int rc = resolve(e, &q);
    if (rc)
        return rc;
    double bytes = (double)q.n * (double)q.d * 8 * 4;
    if (!fli_bytes_ok(e, bytes, "X and its copies"))
        return FL_INFO_EINVAL;
    if (!fli_bytes_ok(e, (double)q.n * (double)q.L * 8 + (double)q.k * (double)q.d * 8 * 1024,
                      "the workspaces"))
        return FL_INFO_EINVAL;
    return e->dev->is_gpu ? est_gpu(e, &q) : est_cpu(e, &q);
}

/* Info-only parameters of kmeans (the primitive's own table is
 * fli_kmeans_params, shared with execution). */
const fl_param_def fli_kmeans_xparams[] = {
    {"input", FL_PARAM_CHOICE, "host", 0, 0, "host|device", NULL,
     "where X lives when fit is called: host (numpy; copied over the host link) or device"},
    {"expected_iter", FL_PARAM_INT, "max_iter", 1, 1e9, "max_iter", "n_iter",
     "Lloyd iterations to model per run (default max_iter, an upper bound)"},
    {"threads", FL_PARAM_INT, "auto", 1, 4096, "auto", NULL,
     "CPU threads (CPU device; auto = the table's cores)"},
    {"sample_weight", FL_PARAM_BOOL, "false", 0, 1, NULL, "weights", "whether sample_weight is passed"},
    {"entry", FL_PARAM_CHOICE, "function", 0, 0, "function|model", NULL,
     "fl_kmeans_fit (function) or fl_model_fit (model: fitted attributes count in host memory)"},
};
_Static_assert(sizeof fli_kmeans_xparams / sizeof *fli_kmeans_xparams == FLI_KMEANS_N_XPARAMS, "count");
