/*
 * op_ann.c — the cost model of the approximate indexes: IVF-Flat, IVF-PQ
 * and CAGRA, build and search, as flashlib runs them.
 *
 * Parameters are the tables execution validates (ivf_params.c,
 * cagra_params.c) plus n_queries and phase (build, search or both).
 *  - Builds: the k-means runs (coarse quantiser, PQ codebooks) and CAGRA's
 *    exact kNN graph and the rows' list assignment (an exact 1-NN search)
 *    are child estimates of the kmeans and knn ops, so they run (and are
 *    calibrated) where those would; PQ encoding, the list layout and
 *    CAGRA's pruning run on the host CPU.
 *  - Searches route by the functions execution calls (route_ivf.c):
 *    fli_route_ivf_flat (the GPU's coarse GEMM + list tiles, or the CPU),
 *    fli_route_ivf_pq (the GPU's look-up tables in shared memory + code
 *    scans, or the CPU) and fli_route_cagra (a thread block per query on
 *    the GPU, or the CPU).
 * CPU parts are rooflines of the backends' counts on the device table's
 * nominal CPU: heuristic. The GPU searches follow what ivf_cuda.cu,
 * ivfpq_cuda.cu and cagra_cuda.cu launch, each with its own coefficients
 * (see the enums below), fitted per (index, device) by bench/calib on
 * flashlib's own searches (fl_model_kneighbors, host queries, the index
 * resident on the device after the first search); without a calibration
 * entry they take roofline values from the device table. Common to the
 * three: a fixed cost per call (host buffers, the final synchronisation),
 * a launch gap per kernel or copy, the host's pass over the queries and
 * the results (finite check, float32 copy, float64 results converted)
 * at host_ns per element, and the pageable copies at h2d_gbs.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "algo/cagra_params.h"
#include "algo/ivf_params.h"
#include "info/info_internal.h"
#include "route/route.h"

const fl_param_def fli_ann_xparams[FLI_ANN_N_XPARAMS] = {
    {"n_queries", FL_PARAM_INT, "10000", 1, 9e18, NULL, "nq", "queries searched"},
    {"phase", FL_PARAM_CHOICE, "both", 0, 0, "both|build|search", NULL,
     "what to estimate: building the index, searching it, or both"},
    {"force_gpu", FL_PARAM_BOOL, "false", 0, 1, NULL, NULL,
     "a context on device cuda (routing then never keeps a small search on the CPU)"},
};

/* ---- the GPU searches' coefficients ---------------------------------------- */

/* Shared by the three indexes' coefficient lists (the same indexes in each). */
enum {
    A_FIXED,  /* fixed_ms:  host buffers, the results' synchronisation          */
    A_LAUNCH, /* launch_us: one kernel or copy launch and its dependency gap    */
    A_HOST,   /* host_ns:   a query or result element checked / converted (CPU) */
    A_H2D,    /* h2d_gbs:   the pageable copies of queries and results          */
    A_N_COMMON
};

/* IVF-Flat and IVF-PQ: the coarse step and the selects are the same code
 * (fli_ivf_probe_step, fli_ivf_pool_step). */
enum {
    F_GEMM = A_N_COMMON, /* gemm_tflops: the coarse SGEMM (cuBLAS, fp32)           */
    F_SEL,               /* select_ns:   a key of a radix-select block, per block   */
    F_SCAN,              /* scan_tflops: the list tiles' fp32 FMAs (padded)          */
    F_STEP,              /* step_ns:     one 128 x 32 tile step of one scan block    */
    F_BW,                /* bw_gbs:      list rows, keys written and read back       */
    F_RERANK,            /* rerank_ns:   a float64 step of a re-rank lane            */
    F_SKEW,              /* skew:        a probed list's rows over the mean list's   */
    F_HUB,               /* hub:         the most probed list's pull (see flat_gpu)  */
    F_LONG,              /* long:        the lists' spread (the most probed one's rows) */
    F_RANK,              /* rank_ns:     a lane's comparison of the pool's ranking   */
    F_PASS,              /* pass_ns:     a pool-select round over keys left in memory */
    F_D2H,               /* d2h_gbs:     the results' copies into per-call host buffers */
    F_N
};
static const char *const flat_names[F_N] = {
    "fixed_ms", "launch_us", "host_ns", "h2d_gbs", "gemm_tflops", "select_ns", "scan_tflops", "step_ns",
    "bw_gbs",   "rerank_ns", "skew",    "hub",     "long",        "rank_ns",   "pass_ns",     "d2h_gbs"};

enum {
    Q_GEMM = A_N_COMMON, /* gemm_tflops: the coarse SGEMM                          */
    Q_SEL,               /* select_ns:   a key of a radix-select block              */
    Q_LUT,               /* lut_tflops:  look-up-table entry terms (sub-space FMAs) */
    Q_LOOK,              /* lookup_gps:  table reads of the code scans              */
    Q_STEP,              /* step_ns:     one sequential step of a scan block        */
    Q_BW,                /* bw_gbs:      codes, per-list terms, keys                */
    Q_RERANK,            /* rerank_ns:   a float64 step of a re-rank thread         */
    Q_SKEW,              /* skew:        a probed list's rows over the mean list's  */
    Q_RANK,              /* rank_ns:     a thread's comparison of the pool's ranking */
    Q_N
};
static const char *const pq_names[Q_N] = {"fixed_ms",  "launch_us",  "host_ns",    "h2d_gbs", "gemm_tflops",
                                          "select_ns", "lut_tflops", "lookup_gps", "step_ns", "bw_gbs",
                                          "rerank_ns", "skew",       "rank_ns"};

enum {
    G_ITER = A_N_COMMON, /* iter_us:   a walk step's fixed latency (pick, barriers)      */
    G_EXPAND,            /* expand:    parents expanded per buffer slot (walk length)    */
    G_DIST,              /* dist_ns:   a warp's float4 column of two candidates' keys    */
    G_MERGE,             /* merge_ns:  a comparison of the merge / hash claims, per lane */
    G_CONTEND,           /* contend:   slowdown per extra block sharing an SM            */
    G_BW,                /* bw_gbs:    gathered rows and graph lists                     */
    G_HOPS,              /* hops:      walk steps from the seeds to the query's region   */
    G_NEW,               /* new:       share of a step's claimed neighbours not visited  */
    G_N
};
static const char *const cagra_names[G_N] = {"fixed_ms", "launch_us", "host_ns", "h2d_gbs",
                                             "iter_us",  "expand",    "dist_ns", "merge_ns",
                                             "contend",  "bw_gbs",    "hops",    "new"};

static void common_roofline(const fl_info_device *dev, double *c)
{
    c[A_FIXED] = 0.02 + 4 * dev->launch_us * 1e-3;
    c[A_LAUNCH] = dev->launch_us;
    c[A_HOST] = 1.0; /* a load, a check and a store per element, one core */
    c[A_H2D] = dev->h2d_gbs > 0 ? dev->h2d_gbs * 0.3 : 10.0;
}

static void ann_roofline(int which, const fl_info_device *dev, double *c)
{
    common_roofline(dev, c);
    const double fp32 = fli_rate(dev, FL_INFO_PREC_FP32, FLI_CLASS_FUSED);
    if (which == 0) {
        c[F_GEMM] = fli_rate(dev, FL_INFO_PREC_FP32, FLI_CLASS_GEMM);
        c[F_SEL] = 0.5; /* 256 threads, ~5 passes of a shared-memory histogram a key */
        c[F_SCAN] = fp32;
        /* a tile's global load waited for (no prefetch: ~a DRAM round
         * trip), its transposed stores to shared memory, two barriers */
        c[F_STEP] = 1000;
        c[F_BW] = fli_bw(dev, FLI_CLASS_FUSED);
        c[F_RERANK] = 20; /* a dependent float64 add-multiply chain, a gather */
        c[F_SKEW] = 1.5;  /* k-means lists are uneven; a query lands in a long one more often */
        c[F_HUB] = 0.5;   /* central lists: probed by most queries once P d / L ~ 2 */
        c[F_LONG] = 0.6;  /* and long (they gather the points between clusters) */
        c[F_RANK] = 20;   /* two shared-memory loads, two compares, an add */
        /* a round of an unstaged select pass (ivf_select: each thread loads
         * a key, its atomicAdd waits for it): ~an L2 hit's latency (the
         * scan has just written the keys) */
        c[F_PASS] = 300;
        /* the results' device-to-host copies land in host buffers that every
         * search allocates (fli_ann_search_buffers) and the copy touches
         * first: the driver's staged copy plus a page fault per 4 KiB, about
         * a third of the queries' host-to-device rate */
        c[F_D2H] = c[A_H2D] / 3;
    } else if (which == 1) {
        c[Q_GEMM] = fli_rate(dev, FL_INFO_PREC_FP32, FLI_CLASS_GEMM);
        c[Q_SEL] = 0.5;
        c[Q_LUT] = fp32 / 2; /* a term's subtract and multiply-add, T terms a second */
        /* a shared-memory read and an add per sub-space: ~32 a clock per SM */
        c[Q_LOOK] = dev->sm_count * 32 * 1.5;
        c[Q_STEP] = 10;
        c[Q_BW] = fli_bw(dev, FLI_CLASS_FUSED); /* coalesced: a warp's codes, the terms' float4 */
        c[Q_RERANK] = 20;
        c[Q_SKEW] = 1.5;
        c[Q_RANK] = 20;
    } else {
        c[G_ITER] = 3; /* a few barriers and a warp's ballots */
        c[G_EXPAND] = 1.5;
        c[G_DIST] = 30; /* a float4 gather from L2 / HBM, its FMAs, the shuffles */
        c[G_MERGE] = 2; /* a shared-memory compare */
        c[G_CONTEND] = 0.3;
        c[G_BW] = fli_bw(dev, FLI_CLASS_FUSED); /* rows of d floats gathered whole by a warp */
        c[G_HOPS] = 4;                          /* a few hops of a degree >= 16 graph reach any region */
        c[G_NEW] = 0.5;                         /* about half the neighbours of a parent are new */
    }
}

static int ann_which(const char *op)
{
    return !strcmp(op, "ivf_flat") ? 0 : !strcmp(op, "ivf_pq") ? 1 : !strcmp(op, "cagra") ? 2 : -1;
}

/* The calibration keys: the variant each index's estimate reports. */
static const char *const ann_keys[3] = {"fp32", "pq", "graph"};

int fli_ann_coefs(const char *op, const char *variant, const fl_info_device *dev, const char **names,
                  double *def)
{
    const int w = ann_which(op);
    if (w < 0 || !dev->is_gpu || strcmp(variant, ann_keys[w]))
        return -1;
    double c[16];
    ann_roofline(w, dev, c);
    static const char *const *const tabs[3] = {flat_names, pq_names, cagra_names};
    static const int counts[3] = {F_N, Q_N, G_N};
    return fli_coefs_out(tabs[w], c, counts[w], names, def);
}

/* The coefficients of an index's GPU search: the override (the fit), its
 * calibration entry, or the roofline values. */
static const double *ann_coefs(fli_est *e, int which, double *def, fl_info_tier *tier)
{
    static const int counts[3] = {F_N, Q_N, G_N};
    const fli_calib_entry *entry = NULL;
    e->r->model_key = ann_keys[which];
    const double *c =
        fli_calib_coefs(e, e->op->pub.name, ann_keys[which], "f32", NULL, counts[which], tier, &entry);
    if (!c) {
        ann_roofline(which, e->dev, def);
        c = def;
    }
    if (entry)
        e->r->calibration = entry->describe;
    if (*tier == FL_INFO_TIER_ROOFLINE)
        fli_note(e, "no calibration of this index's GPU search on this device: its counts at device peaks x "
                    "default efficiencies");
    return c;
}

/* A leaf of a modelled GPU search (its time computed here). */
static void gpu_leaf(fli_est *e, int parent, const char *name, const char *detail, double ms, double flops,
                     double bytes, double launches, fl_info_bound b, fl_info_tier t)
{
    const int nd = fli_node(e, parent, name, detail, 1);
    fli_leaf(e, nd >= 0 ? nd : parent, ms, flops, bytes, launches, b, t);
}

/* The parts every GPU search has: the fixed cost, the host's pass over the
 * queries (finite check, float32 copy) and the results (float64 to the
 * caller's arrays), the pageable copies both ways (the queries at h2d_gbs,
 * the results at d2h_gbs), the launches. */
static void gpu_common(fli_est *e, int s, const double *c, double d2h_gbs, double nq, double d, double k,
                       double extra_host, double launches, fl_info_tier t)
{
    const double in = nq * d * 4, out = nq * k * 16;
    e->link_bytes += in + out;
    gpu_leaf(e, s, "fixed overhead", "host buffers, the results' synchronisation", c[A_FIXED], 0, 0, 0,
             FL_INFO_BOUND_LATENCY, t);
    gpu_leaf(e, s, "host pass", "queries checked and copied to float32, results converted (host CPU)",
             (nq * d * 2 + nq * k * 2 + extra_host) * c[A_HOST] * 1e-6, 0, 0, 0, FL_INFO_BOUND_LATENCY, t);
    gpu_leaf(e, s, "copies", "queries in, results out (the index stays on the device after the first search)",
             in / (c[A_H2D] * 1e6) + out / (d2h_gbs * 1e6), 0, 0, 0, FL_INFO_BOUND_TRANSFER, t);
    gpu_leaf(e, s, "launches", "kernels and copies of each chunk of queries, their dependency gaps",
             launches * c[A_LAUNCH] * 1e-3, 0, 0, launches, FL_INFO_BOUND_LATENCY, t);
}

/* The radix-select blocks of fli_ivf_probe_step and fli_ivf_pool_step
 * (ivf_select: 256 threads a query, up to four 8-bit histogram passes and
 * a collecting pass over its keys), 8 an SM: waves of them, sel_ns a key. */
static double ivf_select_ms(const fli_est *e, double sel_ns, double nq, double keys)
{
    return ceil(nq / (e->dev->sm_count * 8.0)) * keys * sel_ns * 1e-6;
}

/* The coarse step IVF-Flat and IVF-PQ share (fli_ivf_probe_step): cuBLAS
 * SGEMM of queries x centres, the keys, a radix-select block per query over
 * the L keys. */
static void ivf_coarse(fli_est *e, int s, double gemm_tflops, double sel_ns, double bw, double nq, double L,
                       double d4, fl_info_tier t)
{
    const double fl = 2 * nq * L * d4, by = (nq + L) * d4 * 4 + nq * L * 8;
    const double tc = fl / (gemm_tflops * 1e9), tm = by / (bw * 1e6);
    gpu_leaf(e, s, "coarse GEMM + probes", "queries x centres (cuBLAS SGEMM), a radix-select block per query",
             fmax(tc, tm) + ivf_select_ms(e, sel_ns, nq, L), fl, by, 4,
             tc >= tm ? FL_INFO_BOUND_COMPUTE : FL_INFO_BOUND_MEMORY, t);
}

/* The pool select (fli_ivf_pool_step): a block per query over its
 * candidate space, `keys` of them (its probed lists laid end to end in a
 * row of `stride`, the P longest lists' rows). ivf_select stages them in
 * shared memory when `stride` keys fit (the opt-in size less 16 KiB; as
 * many blocks an SM as the staged size leaves room for) and reads memory
 * once, else every pass (up to four) and the gather read them from memory.
 * Besides the waves' work (sel_ns) and the bytes, a block's own rounds
 * bound it: its 256 threads load a key each and wait for it before the
 * atomicAdd, pass_ns a round, once (staged) or five times: what a single
 * query's block over 10^4 - 10^5 unstaged keys costs. pass_ns 0: not
 * modelled (IVF-PQ, whose staging is taken from its rows). */
static void ivf_pool(fli_est *e, int s, const fl_hw_props *hw, double sel_ns, double pass_ns, double bw,
                     double nq, double keys, double stride, fl_info_tier t)
{
    const int staged = stride * 4 <= (double)hw->smem_per_block_optin_bytes - 16384;
    const double by = nq * keys * 4 * (staged ? 1 : 5);
    const double bps =
        staged ? fmax(1, fmin(8, floor((double)e->dev->smem_per_sm_bytes / (stride * 4 + 2048)))) : 8;
    const double tb =
        ceil(nq / (e->dev->sm_count * bps)) * ceil(keys / 256) * (staged ? 1 : 5) * pass_ns * 1e-6;
    const double ts = fmax(tb, ivf_select_ms(e, sel_ns, nq, keys)), tm = by / (bw * 1e6);
    gpu_leaf(e, s, "candidate pool", "a radix-select block per query over its probed lists' keys",
             fmax(ts, tm), 0, by, 1, ts >= tm ? FL_INFO_BOUND_LATENCY : FL_INFO_BOUND_MEMORY, t);
}

/* Rows of the `p` longest of L lists of n rows: the candidate space's
 * stride (k-means lists are uneven: the longest hold ~1.5 x the mean). */
static double ivf_stride(double n, double L, double p)
{
    return fmin(n, ceil(p * n / L * (p < L ? 1.5 : 1)));
}

/* Rows of `p` of L distinct lists of n rows each `ratio` x the mean list
 * when few are taken: p n / L ratio while p << L, every row once at p = L
 * (the share of rows left out falls as (1 - p / L)^ratio). */
static double ivf_rows_of(double n, double L, double p, double ratio)
{
    return fmin(n, n * (1 - pow(fmax(0, 1 - p / L), ratio)));
}

/* The streams of ivf_cuda.cu's search per chunk of queries: the query copy
 * (and its padding memset when d % 4 != 0), qprep, the SGEMM, the keys, the
 * probe select, two memsets, the histogram, CUB's exclusive scan (an init
 * and a scan kernel), the scatter, the segments, the list scan, the pool
 * select, the re-rank, two result copies and the stream synchronisation. */
#define IVF_FLAT_LAUNCHES 18

/* IVF-Flat's GPU search (ivf_cuda.cu). */
static void flat_gpu(fli_est *e, int s, const fl_hw_props *hw, double n, double d, double L, double P,
                     double k, double nq)
{
    double def[16];
    fl_info_tier t;
    const double *c = ann_coefs(e, 0, def, &t);
    const double nsm = e->dev->sm_count, d4 = ceil(d / 4) * 4, len = n / L, cap = k + 8;
    /* k-means lists are uneven: the longest of L is 1 + long sqrt(2 ln L)
     * x the mean (at most half the rows), the p-th longest 1 + long
     * sqrt(2 ln(L / p)) x; the candidate space's row (`stride`, ivf_search:
     * top[P], the P longest lists end to end) holds P of those */
    const double longest = fmax(len, fmin(0.5 * n, len * (1 + c[F_LONG] * sqrt(2 * log(L)))));
    const double stride = fmax(longest, ivf_rows_of(n, L, P, 1 + c[F_LONG] * sqrt(2 * log(fmax(1, L / P)))));
    /* chunks of queries: the workspace within 85% of the memory */
    const double ws_q = L * 4 + stride * 4 + d4 * 8 + P * 12 + cap * 4 + k * 16 + 32;
    const double index_b = n * (d4 * 4 + 12) + L * d4 * 4;
    const double room = fmax(0.85 * ((double)e->dev->memory_bytes - index_b) - 64.0 * 1048576, ws_q);
    const double chunks = ceil(nq * ws_q / room);
    gpu_common(e, s, c, c[F_D2H], nq, d, k, 0, (IVF_FLAT_LAUNCHES + (d4 != d)) * chunks, t);
    ivf_coarse(e, s, c[F_GEMM], c[F_SEL], c[F_BW], nq, L, d4, t);
    /* list tiles: a block per (list, group of TQ queries probing it), 128
     * rows x 32 columns a step; TQ = 32 when lists are shared by >= 16
     * queries, else 8. The grid's groups per list follow the mean pairs of a
     * list, so a list that more queries probe runs its extra groups one
     * after the other in the same blocks. Probes are not even: beyond its
     * nearest list, a query's next probes go to central lists (hubs, more
     * so the more dimensions), so the most probed list takes a share
     * 1 - exp(-hub (P - 1) d / L) of the queries, and it is the longest.
     * A query's probed lists hold `skew` x the mean rows while P << L
     * (lists are uneven, and long ones are probed more often), all n rows
     * at P = L (the lists are distinct). */
    const double rows = ivf_rows_of(n, L, P, c[F_SKEW]), lenp = rows / P; /* rows a query scans */
    const double pairs = nq * P, active = fmin(L, pairs), per_list = ceil(pairs / active);
    const double TQ = per_list >= 16 ? 32 : 8;
    const double gy = fmin(65535, ceil(per_list / TQ)), groups = active * gy;
    /* queries come from the rows' distribution, so a list draws nearest
     * probes in proportion to its rows: the longest, longest / mean times
     * a list's share (what keeps one list's groups serial even at P = 1) */
    const double drawn = fmin(nq, pairs / active * longest / len);
    const double hot = fmax(drawn, nq * (1 - exp(-c[F_HUB] * (P - 1) * d / L)));
    const double steps = ceil(lenp / 128) * ceil(d4 / 32);
    const double fma = nq * rows * d4;
    const double by = groups * lenp * d4 * 4 + nq * rows * 4;
    const double tc = 2 * fma / (c[F_SCAN] * 1e9), tm = by / (c[F_BW] * 1e6);
    const double serial = fmax(1, hot / (gy * TQ)) * fmax(1, longest / 128) * ceil(d4 / 32);
    /* a block's step: its tile load (no prefetch: the step waits for it)
     * and two barriers, then its TQ x 128 x 32 FMAs at an SM's share of
     * the rate */
    const double fma_us = 2 * TQ * 128 * 32 / (c[F_SCAN] * 1e6 / nsm);
    const double step_us = c[F_STEP] * 1e-3 + fma_us;
    /* the most probed list's blocks share their SMs with the other blocks
     * resident there (up to 8 of 256 threads, when the grid has them): the
     * schedulers issue their FMAs in turn, so its steps' FMAs take
     * `resident` times as long */
    const double resident = fmin(8, ceil(groups / nsm));
    const double hot_us = c[F_STEP] * 1e-3 + fma_us * resident;
    const double tl = fmax(ceil(groups / (nsm * 8)) * steps * step_us, serial * hot_us) * 1e-3;
    gpu_leaf(
        e, s, "list tiles",
        "probed lists scanned in fp32 128 x 32 tiles shared by the queries probing them (a block per list "
        "and group; the most probed list's groups in turn)",
        fmax(tl, fmax(tc, tm)), 2 * nq * rows * d, by, 1,
        tl >= tc && tl >= tm ? FL_INFO_BOUND_LATENCY
        : tc >= tm           ? FL_INFO_BOUND_COMPUTE
                             : FL_INFO_BOUND_MEMORY,
        t);
    ivf_pool(e, s, hw, c[F_SEL], c[F_PASS], c[F_BW], nq, ceil(rows), stride, t);
    /* a warp per query, 4 a block: each lane's share of the pool in
     * float64, then the pool ranked; the blocks an SM holds follow from
     * their 16 KiB of shared memory (the pool's distances and indices),
     * at most 64 warps */
    const double wps = fmin(64, 4 * fmax(1, floor((double)e->dev->smem_per_sm_bytes / (16384 + 1024))));
    const double lane = ceil(cap / 32) * (d * c[F_RERANK] + cap * c[F_RANK]);
    gpu_leaf(e, s, "exact re-rank", "a warp per query: the pool's float64 distances, ranked",
             fmax(ceil(nq / (nsm * wps)) * lane * 1e-6, nq * cap * d * 4 / (c[F_BW] * 1e6)), 3 * nq * cap * d,
             nq * cap * d * 4, 1, FL_INFO_BOUND_LATENCY, t);
}

/* IVF-PQ's GPU search (ivfpq_cuda.cu). */
static void pq_gpu(fli_est *e, int s, const fl_hw_props *hw, double n, double d, double L, double P, double k,
                   double nq, double M, double ks, double pool, int ip, int by_residual)
{
    double def[16];
    fl_info_tier t;
    const double *c = ann_coefs(e, 1, def, &t);
    /* a probed list holds `skew` x the mean rows (as IVF-Flat's) */
    const double nsm = e->dev->sm_count, d4 = ceil(d / 4) * 4, len = fmin(n, n / L * c[Q_SKEW]), ds = d / M;
    const double cap = fmax(pool, k), stride = ivf_stride(n, L, P);
    const double ws_q = L * 4 + stride * 4 + d4 * 8 + P * 8 + cap * 4 + k * 16 + 32;
    const double index_b = n * (M + 8) + L * d4 * 4 + (pool > k ? n * d * 4 : 0);
    const double room = fmax(0.85 * ((double)e->dev->memory_bytes - index_b) - 64.0 * 1048576, ws_q);
    const double qc = fmin(nq, floor(room / ws_q)), chunks = ceil(nq / qc);
    gpu_common(e, s, c, c[A_H2D], nq, d, k, 0, 11 * chunks, t);
    ivf_coarse(e, s, c[Q_GEMM], c[Q_SEL], c[Q_BW], nq, L, d4, t);
    /* the scan's kind (ivfpq_cuda.cu): blocks of a query and 8 probes when
     * the pairs fill the device, their table built once (inner product or
     * no residuals) or from the per-list terms (L x M x ks floats, kept when
     * <= 2 GiB and half the free memory); else the staged scan (codebooks
     * in shared memory, a table per probe) or, for small batches, a block
     * per (query, probe) building its table */
    const double optin = (double)hw->smem_per_block_optin_bytes;
    const int mode = ip || !by_residual ? 0 : 1;
    const double t_bytes = 4 * L * M * ks;
    const int terms =
        mode == 1 && t_bytes <= 2147483648.0 && t_bytes < 0.5 * ((double)e->dev->memory_bytes - index_b);
    const double group_smem = 4 * ((mode ? 2 : 1) * M * ks + d4), scan_smem = 4 * (M * ks + d4),
                 staged_smem = scan_smem + 4 * M * ks * ds;
    const int big = qc * P >= 16 * nsm;
    const int grouped = (mode == 0 || terms) && group_smem <= optin && big;
    const int staged = !grouped && staged_smem <= optin && big;
    const double G = grouped || staged ? 8 : 1, NG = ceil(P / G), blocks = nq * NG;
    const double smem = grouped ? group_smem : staged ? staged_smem : scan_smem;
    const double occ = fmax(1, fmin(4, floor((double)e->dev->smem_per_sm_bytes / (smem + 1024))));
    /* table terms (sub-space multiply-adds) and the bytes they stream */
    double lut, lut_b;
    if (grouped) {
        lut = blocks * ks * d + (mode ? nq * P * d : 0);
        lut_b = mode ? nq * P * M * ks * 4 : 0;
    } else {
        lut = nq * P * ks * d;
        lut_b = staged ? blocks * M * ks * ds * 4 : nq * P * M * ks * ds * 4;
    }
    const double rows = fmin(n, P * len); /* rows a query scans */
    const double looks = nq * rows * M;
    const double by = lut_b + looks + nq * rows * 4;
    /* a block's sequential steps: each probe's table (entries over 512
     * threads) and its rows (one a thread) */
    const double per_probe =
        (grouped && mode == 0 ? 0 : ceil(M * ks / 512) * (grouped ? 1 : ds)) + ceil(len / 512) * M;
    const double tl = ceil(blocks / (nsm * occ)) * G * per_probe * c[Q_STEP] * 1e-6;
    const double tc = lut / (c[Q_LUT] * 1e9) + looks / (c[Q_LOOK] * 1e6), tm = by / (c[Q_BW] * 1e6);
    gpu_leaf(e, s, "look-up tables + code scans",
             grouped  ? "a block per query and 8 probes: the query's table term once, per probe the list's "
                        "precomputed terms streamed into shared memory, pq_dim reads per code"
             : staged ? "a block per query and 8 probes, codebooks staged in shared memory, a table per probe"
                      : "a block per (query, probe): its table in shared memory, pq_dim reads per code",
             fmax(tl, fmax(tc, tm)), 2 * lut + looks, by, 1,
             tl >= tc && tl >= tm ? FL_INFO_BOUND_LATENCY
             : tc >= tm           ? FL_INFO_BOUND_COMPUTE
                                  : FL_INFO_BOUND_MEMORY,
             t);
    ivf_pool(e, s, hw, c[Q_SEL], 0, c[Q_BW], nq, ceil(rows), ceil(rows), t);
    /* a block of 128 threads per query: the pool's float64 distances from
     * the raw rows (pool > k), ranked; 16 blocks an SM */
    const double lane = ceil(cap / 128) * ((pool > k ? d : 1) * c[Q_RERANK] + cap * c[Q_RANK]);
    gpu_leaf(e, s, "pool + exact re-rank", "a block per query: the pool's float64 distances, ranked",
             fmax(ceil(nq / (nsm * 16)) * lane * 1e-6, (pool > k ? nq * cap * d * 4 : 0) / (c[Q_BW] * 1e6)),
             3 * nq * cap * d, nq * cap * d * 4, 1, FL_INFO_BOUND_LATENCY, t);
}

/* A CPU leaf on the nominal CPU of the device table. */
static void cpu_leaf(fli_est *e, int parent, const char *name, const char *detail, double flops, fli_class c,
                     double bytes)
{
    const fl_info_device *gpu = e->dev;
    e->dev = fli_device_lookup("cpu");
    fli_roof_leaf(e, parent, name, detail, 1, flops, FL_INFO_PREC_FP32, c, bytes, 1, FL_INFO_TIER_HEURISTIC);
    e->dev = gpu;
}

static double p_or_auto(const fli_est *e, const char *name, double def)
{
    const double v = fli_p_num(e, name);
    return fli_p_word(e, name) == 0 || !isfinite(v) ? def : v;
}

/* A kmeans child of `rows` x `cols` into k centres, `repeat` times. */
static int kmeans_child(fli_est *e, int parent, const char *label, double rows, double cols, double k,
                        double iters, double repeat)
{
    char p[128];
    snprintf(p, sizeof p, "n_clusters=%.0f,max_iter=%.0f,init=random,n_init=1,input=host,expected_iter=%.0f",
             k, iters, iters);
    const int64_t s[2] = {(int64_t)fmax(1, rows), (int64_t)fmax(1, cols)};
    return fli_child(e, parent, label, "kmeans", s, 2, p, repeat) < 0 ? -1 : 0;
}

/* Every row's nearest centre: execution's exact 1-NN search of the rows
 * against the centres (knn op, n queries x L rows). */
static int assign_child(fli_est *e, int parent, double n, double L, double d)
{
    const int64_t s[3] = {(int64_t)fmax(1, n), (int64_t)fmax(1, L), (int64_t)fmax(1, d)};
    return fli_child(e, parent, "list assignment (exact 1-NN against the centres)", "knn", s, 3,
                     "n_neighbors=1,metric=sqeuclidean,input=host", 1) < 0
               ? -1
               : 0;
}

static int est_ivf(fli_est *e, int pq)
{
    const double n = (double)e->shape[0], d = (double)e->shape[1];
    const double L = p_or_auto(e, "n_lists", (double)fli_ivf_auto_lists((int64_t)n));
    const double P = fmin(L, p_or_auto(e, "n_probes", (double)fli_ivf_auto_probes((int64_t)L)));
    const double k = fli_p_num(e, "n_neighbors"), nq = fli_p_num(e, "n_queries");
    const int phase = fli_p_word(e, "phase");
    if (L > n)
        return fli_info_fail(e, "%s: n_lists=%.0f: must be <= n_samples=%.0f", e->op->pub.name, L, n);
    if (k > n)
        return fli_info_fail(e, "%s: n_neighbors=%.0f: must be <= n_samples=%.0f", e->op->pub.name, k, n);
    if (!fli_bytes_ok(e, (n + nq) * d * 8, "the data and its workspace"))
        return FL_INFO_EINVAL;
    const double M = pq ? p_or_auto(e, "pq_dim", (double)fli_ivf_auto_pq_dim((int64_t)d)) : 0;
    const double ks = pq ? ldexp(1.0, (int)fli_p_num(e, "pq_bits")) : 0;
    const double refine = pq ? fli_p_num(e, "refine") : 1;
    if (pq && (M > d || fmod(d, M) != 0))
        return fli_info_fail(e, "ivf_pq: pq_dim=%.0f: must divide n_features=%.0f", M, d);
    if (pq && n < ks)
        return fli_info_fail(e, "ivf_pq: pq_bits=%.0f needs at least %.0f rows", fli_p_num(e, "pq_bits"), ks);
    const double iters = fli_p_num(e, "kmeans_n_iters");
    const double frac = fli_p_word(e, "kmeans_trainset_fraction") == 0
                            ? fmin(1, 256 * L / n)
                            : fli_p_num(e, "kmeans_trainset_fraction");
    const double train = fmin(n, fmax(L, round(frac * n)));
    const double cand = nq * P * n / L; /* rows scanned */
    const int force = fli_p_num(e, "force_gpu") != 0;
    fl_hw_props hw;
    fli_device_hw(e->dev, &hw);
    fl_route route;
    const double pool = pq && refine > 1 ? ceil(refine * k) : k;
    if (pq)
        fli_route_ivf_pq(e->dev->is_gpu ? &hw : NULL, (int64_t)n, (int64_t)L, (int64_t)P, (int64_t)nq,
                         (int64_t)d, (int64_t)M, (int64_t)ks, (int64_t)pool, force, &route);
    else
        fli_route_ivf_flat(e->dev->is_gpu ? &hw : NULL, (int64_t)n, (int64_t)L, (int64_t)P, (int64_t)nq,
                           (int64_t)d, (int64_t)k, force, &route);
    snprintf(e->r->backend, sizeof e->r->backend, "%s", fl_backend_name(route.backend));
    snprintf(e->r->variant, sizeof e->r->variant, "%s", pq ? "pq" : "fp32");
    snprintf(e->r->reason, sizeof e->r->reason, "%s", route.reason);
    if (phase != 2) {
        const int b = fli_node(e, 0, "build", "coarse k-means, lists filled", 1);
        if (kmeans_child(e, b, "coarse k-means", train, d, L, iters, 1) < 0)
            return FL_INFO_EINVAL;
        if (assign_child(e, b, n, L, d) < 0)
            return FL_INFO_EINVAL;
        if (pq) {
            const double m = fmin(n, 256 * ks);
            if (kmeans_child(e, b, "codebooks (k-means per sub-space)", m, d / M, ks, iters, M) < 0)
                return FL_INFO_EINVAL;
            cpu_leaf(e, b, "encode", "each residual sub-vector against its codebook", 3 * n * ks * d,
                     FLI_CLASS_FUSED, n * d * 4 + n * M);
        }
        cpu_leaf(e, b, "list layout", "rows copied into list order", 0, FLI_CLASS_STREAM,
                 2 * n * d * 4 + 24 * n);
    }
    if (phase != 1) {
        const int s = fli_node(e, 0, "search", "coarse step, probed lists, exact re-rank", 1);
        if (route.backend != FL_BACKEND_CPU && pq) {
            const int mw = fli_p_word(e, "metric");
            pq_gpu(e, s, &hw, n, d, L, P, k, nq, M, ks, pool, mw == 3 || mw == 4,
                   fli_p_num(e, "by_residual") != 0);
        } else if (route.backend != FL_BACKEND_CPU) {
            flat_gpu(e, s, &hw, n, d, L, P, k, nq);
        } else {
            cpu_leaf(e, s, "coarse GEMM + probes", "queries x centres (BLAS), a heap of probes per query",
                     2 * nq * L * d, FLI_CLASS_GEMM, (nq + L) * d * 4);
            if (pq) {
                cpu_leaf(e, s, "look-up tables", "per query and probe: every centroid of every sub-space",
                         3 * nq * P * ks * d, FLI_CLASS_FUSED, nq * P * M * ks * 4);
                cpu_leaf(e, s, "code scans", "pq_dim table reads per stored code", cand * M, FLI_CLASS_GATHER,
                         cand * M);
                if (refine > 1)
                    cpu_leaf(e, s, "refine", "refine x k candidates re-ranked from the raw rows",
                             3 * nq * refine * k * d, FLI_CLASS_GATHER, nq * refine * k * d * 4);
            } else {
                cpu_leaf(e, s, "list scans", "a BLAS GEMV per probed list", 2 * cand * d, FLI_CLASS_STREAM,
                         cand * d * 4);
                cpu_leaf(e, s, "exact re-rank", "the pool's distances in float64", 3 * nq * (k + 8) * d,
                         FLI_CLASS_GATHER, nq * (k + 8) * d * 4);
            }
        }
    }
    const double index = pq ? n * (M + 8) + L * d * 4 + M * ks * (d / M) * 4 + (refine > 1 ? n * d * 4 : 0)
                            : n * (d * 4 + 12) + L * d * 4;
    e->r->peak_memory_bytes = (uint64_t)(index + (phase != 1 ? nq * (d * 4 + k * 16) : n * d * 4));
    e->r->peak_host_bytes = e->r->peak_memory_bytes;
    fli_note(e, "host CPU parts (assignment, encoding, layout, CPU searches) are rooflines on the device "
                "table's nominal CPU: heuristic; the k-means and kNN children are their ops' own estimates");
    return 0;
}

int fli_est_ivf_flat(fli_est *e)
{
    return est_ivf(e, 0);
}

int fli_est_ivf_pq(fli_est *e)
{
    return est_ivf(e, 1);
}

/* CAGRA's GPU search (cagra_cuda.cu): a block of 256 threads per query,
 * its buffer, candidates and visited hash in shared memory (the blocks an
 * SM holds follow from it). A block's walk: the entry and seed nodes
 * merged a chunk at a time, then steps that expand search_width parents
 * until none is left unexpanded: `hops` steps to reach the query's region
 * whatever the width (the walk moves a graph edge a step), then ~expand x
 * itopk / search_width more to settle the buffer. Each step claims width x
 * degree neighbours in the hash, computes the keys of the new ones (a
 * share `new` of them: a warp per candidate, two at a time, lanes over
 * float4 columns) and merges them into the buffer by rank. */
static void cagra_gpu(fli_est *e, const fl_hw_props *hw, double n, double d, double deg, double E,
                      double itopk, double width, double k, double nq)
{
    double def[16];
    fl_info_tier t;
    const double *c = ann_coefs(e, 2, def, &t);
    const double nsm = e->dev->sm_count, d4 = ceil(d / 4) * 4, S = fli_p_num(e, "n_seeds");
    const double cap = fmax(itopk, k), chunk = fmax(width * deg, 256);
    /* shared memory (cagra_search's driver): the hash 4 x (buffer + chunk)
     * slots at least, grown to 8192 while the block stays under 64 KiB */
    int hbits = 10;
    while (ldexp(1, hbits) < 4 * (cap + chunk))
        hbits++;
    const double fixed = 8 * d4 + 16 * cap + 8 * chunk;
    while (hbits < 13 && fixed + 4 * ldexp(1, hbits + 1) <= 65536)
        hbits++;
    const double smem = fixed + 4 * ldexp(1, hbits) + 1024 + 1024;
    (void)hw;
    const double bps = fmax(1, fmin(8, floor((double)e->dev->smem_per_sm_bytes / smem)));
    const double chunks = ceil(nq / 65536);
    gpu_common(e, 0, c, c[A_H2D], nq, d, k, nq * S, 6 * chunks, t);
    const double mi = fli_p_num(e, "max_iterations");
    double iters = fmax(1, c[G_EXPAND] * cap / width + c[G_HOPS]);
    if (mi > 0)
        iters = fmin(iters, mi);
    const double seeds = fmin(n, E + S), seed_steps = ceil(seeds / chunk);
    const double cols = ceil(d4 / 128); /* float4 columns a lane reads */
    /* one step of nb new candidates out of `claims` neighbours: fixed
     * latency, the claims, the keys (16 candidates at a time over 8 warps),
     * the merge by rank (each new candidate against the others and the
     * buffer, each buffer entry against the new ones) over 256 lanes */
    const double nb = fmin(width * deg * c[G_NEW], cap), claims = width * deg;
    const double step_us = c[G_ITER] + ceil(nb / 16) * cols * c[G_DIST] * 1e-3 +
                           (claims + nb * nb + 2 * cap * nb + cap) / 256 * c[G_MERGE] * 1e-3;
    const double seed_nb = fmin(seeds / seed_steps, chunk);
    const double seed_us = c[G_ITER] + ceil(seed_nb / 16) * cols * c[G_DIST] * 1e-3 +
                           (seed_nb + seed_nb * seed_nb + 2 * cap * seed_nb) / 256 * c[G_MERGE] * 1e-3;
    const double rerank_us = ceil(fmin(k, cap) / 256) * (d + fmin(k, cap)) * c[G_MERGE] * 1e-3;
    const double block_us = seed_steps * seed_us + iters * step_us + rerank_us;
    const double conc = fmin(bps, ceil(nq / nsm)), waves = ceil(nq / (nsm * bps));
    const double evals = nq * (seeds + iters * nb);
    const double by = evals * d4 * 4 + nq * iters * claims * 4;
    const double tl = waves * block_us * (1 + c[G_CONTEND] * (conc - 1)) * 1e-3, tm = by / (c[G_BW] * 1e6);
    gpu_leaf(
        e, 0, "graph search",
        "a thread block per query: buffer and visited hash in shared memory, warp distances, merge by rank",
        fmax(tl, tm), 3 * evals * d, by, 1, tl >= tm ? FL_INFO_BOUND_LATENCY : FL_INFO_BOUND_MEMORY, t);
}

int fli_est_cagra(fli_est *e)
{
    const double n = (double)e->shape[0], d = (double)e->shape[1];
    const double K = fmin(n - 1, fli_p_num(e, "intermediate_graph_degree"));
    const double deg = fmin(K, fli_p_num(e, "graph_degree"));
    const double itopk = fmax(fli_p_num(e, "itopk_size"), fli_p_num(e, "n_neighbors"));
    const double k = fli_p_num(e, "n_neighbors"), nq = fli_p_num(e, "n_queries");
    const int phase = fli_p_word(e, "phase");
    if (n < 2)
        return fli_info_fail(e, "cagra: needs at least 2 samples");
    if (fli_p_num(e, "intermediate_graph_degree") < fli_p_num(e, "graph_degree"))
        return fli_info_fail(e, "cagra: intermediate_graph_degree must be >= graph_degree");
    if (!fli_bytes_ok(e, n * (d * 4 + K * 8), "the data and the kNN graph"))
        return FL_INFO_EINVAL;
    const double E = ceil(sqrt(n)); /* entry nodes (algo/cagra.c) */
    const double width = fli_p_num(e, "search_width");
    const int force = fli_p_num(e, "force_gpu") != 0;
    fl_hw_props hw;
    fli_device_hw(e->dev, &hw);
    fl_route route;
    fli_route_cagra(e->dev->is_gpu ? &hw : NULL, (int64_t)n, (int64_t)d, (int64_t)deg, (int64_t)E,
                    (int64_t)itopk, (int64_t)width, (int64_t)nq, force, &route);
    snprintf(e->r->backend, sizeof e->r->backend, "%s", fl_backend_name(route.backend));
    snprintf(e->r->variant, sizeof e->r->variant, "graph");
    snprintf(e->r->reason, sizeof e->r->reason, "%s", route.reason);
    if (phase != 2) {
        const int b = fli_node(e, 0, "build", "exact kNN graph, detour pruning, reverse edges", 1);
        char p[96];
        snprintf(p, sizeof p, "n_neighbors=%.0f,metric=sqeuclidean,input=host", K);
        const int64_t s[2] = {(int64_t)n, (int64_t)d};
        if (fli_child(e, b, "exact kNN graph", "knn", s, 2, p, 1) < 0)
            return FL_INFO_EINVAL;
        cpu_leaf(e, b, "detour pruning", "per node: its neighbours' lists looked up in a hash of its own",
                 3 * n * K * K, FLI_CLASS_GATHER, n * K * K * 8);
        cpu_leaf(e, b, "reverse edges", "pointers to each node merged into its list", 0, FLI_CLASS_STREAM,
                 3 * n * deg * 4);
    }
    if (phase != 1) {
        /* each buffer entry is expanded about once: itopk parents, their
         * degree neighbours each, about half of them not yet visited */
        const double evals = nq * (E + fli_p_num(e, "n_seeds") + itopk * deg * 0.5);
        if (route.backend != FL_BACKEND_CPU) {
            cagra_gpu(e, &hw, n, d, deg, E, itopk, width, k, nq);
        } else {
            cpu_leaf(e, 0, "graph search",
                     "best-first walk: distances to unvisited neighbours, buffer insertions", 3 * evals * d,
                     FLI_CLASS_GATHER, evals * d * 4 + nq * k * 16);
        }
    }
    e->r->peak_memory_bytes =
        (uint64_t)(n * (d * 4 + deg * 4) + (phase != 1 ? nq * (d * 4 + k * 16) : n * K * 8));
    e->r->peak_host_bytes = e->r->peak_memory_bytes;
    fli_note(e,
             "pruning and search are rooflines on the device table's nominal CPU: heuristic; the kNN graph "
             "is the knn op's own estimate");
    return 0;
}
