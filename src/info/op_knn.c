/*
 * op_knn.c — the cost model of exact k-nearest-neighbour search (fl_knn_search,
 * NearestNeighbors.kneighbors).
 *
 * Shapes: n_samples x n_features is the kNN graph of the data (every row a
 * query, itself left out, as kneighbors(X=None)) unless n_queries is given;
 * n_queries x n_samples x n_features searches separate queries.
 *
 * Routing is fli_route_knn, the function execution calls, on the device's
 * properties (fli_device_hw). The GPU search is what knn_cuda.cu plans and
 * launches, its plan mirrored here (gplan_make: pool, list width, chunks of
 * queries and database rows under the memory budget, database slices):
 *   fixed     set-up, the final synchronisation (the plan's buffers come
 *             from the context's pool: nothing per call)
 *   h2d       host queries per query chunk, the host database once (or
 *             every chunk per query chunk, double-buffered behind the work)
 *   prepare   score coefficients of the database rows, 16-bit copies of
 *             database and queries (bf16 / fp16 scans)
 *   scan      128-query blocks x database slices of 128-row tiles, in whole
 *             waves over the SMs, the slowest block of each wave:
 *             max(padded multiply-adds at rate_tflops (tensor cores, or
 *             fp32 SIMT for fp32, manhattan and minkowski) + a threshold
 *             test per score at select_gsps + the candidates appended and
 *             merged into the lists (a list's 32R slots filled, then ~32R
 *             ln(rows / 32R) more on random order, more where thresholds
 *             tighten only at merges; only the block's real queries) at
 *             insert_ns a candidate, its merge walk longer with R, HBM bytes,
 *             operand bytes re-read from L2)
 *             Hopper (knn_scan_sm90.cu: tf32/bf16/fp16, >= 1024 queries,
 *             rows of <= 512 bytes): operand images written first, 256-query
 *             blocks, rows padded to 2 or 4 column blocks of 128 bytes, its
 *             own wgmma rate; the fold's fast test per score, its slow path
 *             (a warp's 16 x 128 scores re-tested when any passes) and the
 *             candidates appended, per wave: the first waves warm their lists
 *             up, later slices start at a finished slice's bound
 *   finalize  one warp per query: the slices' lists merged, the pool
 *             re-ranked in exact fp32 (gathered database rows), every
 *             precision
 *   any-k     a pool above 256: per chunk an fp32 SIMT score matrix, CUB
 *             segmented sorts (one block per query's segment), the pool
 *             re-ranked, the best k taken
 *   results   distances and indices to the host (or written on the device)
 * Coefficients (roofline values from the device table; bench/calib fits
 * them per (precision, device) on flashlib's own searches and validates the
 * fit on held-out shapes): see the enum below.
 *
 * The CPU backend (knn_cpu.c: BLAS tiles, bounded heaps, exact re-rank) is
 * a roofline of the same counts on the device table's CPU: heuristic.
 */
#include <math.h>
#include <string.h>

#include "algo/knn_params.h"
#include "info/info_internal.h"
#include "route/route.h"

enum {
    C_FIXED,  /* fixed_ms:      set-up, final synchronisation                      */
    C_LAUNCH, /* launch_us:     one kernel launch and its dependency gap           */
    C_RATE,   /* rate_tflops:   the fused scan's distance arithmetic (padded)      */
    C_SEL,    /* select_gsps:   scores tested against a query's threshold          */
    C_INS,    /* insert_ns:     a candidate appended and merged (R = 1)            */
    C_BW,     /* bw_gbs:        HBM streams (inputs, copies, lists, scores)        */
    C_L2,     /* l2_gbs:        operand tiles re-read from L2 by the scan          */
    C_H2D,    /* h2d_gbs:       the host link, either direction                     */
    C_MERGE,  /* merge_gcps:    list entries merged across slices (finalize)        */
    C_RERANK, /* rerank_gbs:    database rows gathered by the exact re-rank         */
    C_SORT,   /* sort_gsps:     scores sorted by the any-k path (CUB radix)         */
    C_L1,     /* l1_cost:       SIMT cost of a |q - x| element against an FMA       */
    C_MATRIX, /* matrix_tflops: the any-k path's fp32 SIMT score matrix             */
    C_RATE9,  /* rate9_tflops:  the Hopper wgmma scan's products (padded)           */
    C_SEL9,   /* select9_gsps:  the Hopper scan's per-score fold (warp-private)     */
    C_SLOW9,  /* slow9_gsps:    scores re-tested on the Hopper fold's slow path      */
    C_INS9,   /* insert9_ns:    a Hopper candidate appended, merged (R = 1)          */
    C_SEGP,   /* segpass_us:    a CUB segment's block, per radix pass (any-k)       */
    N_COEF
};

static const char *const coef_names[N_COEF] = {
    "fixed_ms",      "launch_us",    "rate_tflops",  "select_gsps", "insert_ns",  "bw_gbs",
    "l2_gbs",        "h2d_gbs",      "merge_gcps",   "rerank_gbs",  "sort_gsps",  "l1_cost",
    "matrix_tflops", "rate9_tflops", "select9_gsps", "slow9_gsps",  "insert9_ns", "segpass_us"};

/* Constants of knn_cuda.cu / knn_scan.cu / knn_dev.cuh (kept equal to them
 * by hand): the largest pool a block's lists hold (larger: the any-k path),
 * the pipeline stages and padded row of the tensor-core scan's shared
 * tiles, a query's append buffer in a block (KNN_CB keys, merged into its
 * list when full), and the device memory a CUDA context and the allocator
 * keep for themselves. */
#define KNN_MAX_POOL 256
#define KNN_STAGES 3
#define KNN_LDS 36
#define KNN_CB 32.0
#define KNN_CTX_RESERVE (512.0 * 1048576)
/* The any-k path's CUB DeviceSegmentedRadixSort: 6-bit digits a pass for
 * keys wider than a byte (its SegmentedPolicy), one kernel launch a pass:
 * 6 passes over the 32-bit float scores (SortPairs), 11 over the 64-bit
 * pool keys (SortKeys). With the matrix, the two offsets kernels, the pool
 * re-rank and the take: the launches of one chunk. */
#define KNN_SORT_PASSES32 6
#define KNN_SORT_PASSES64 11
#define KNN_GEN_LAUNCHES 7
/* A candidate's cost in the list merge (knn_dev.cuh's wl_insert_all and
 * wl_insert, the same in both scans): per key walked, a fixed part (the
 * ballot bit taken, the key broadcast and compared, the previous lane's
 * last key and the new last key shuffled in, and the append that put it in
 * the buffer: ~16 warp instructions, with three shuffles whose latency
 * chains one key to the next: ~40 issue slots in all) and, per register of
 * the list, a 64-bit compare against the key, one against the key below
 * and the 64-bit select: ~8 instructions. insert_ns and insert9_ns are the
 * cost of a candidate of a one-register list (R = 1); R = 8 costs 2.2x. */
#define KNN_WALK_FIXED 40.0
#define KNN_WALK_PER_REG 8.0
/* minkowski's |d|^p per element (powf: a log2 and an exp2 on the special
 * function units) against manhattan's |d|: an assumption, not calibrated */
#define KNN_POW_COST 6.0

/* Calibration keys: the scan's precision. */
static const char *const calib_keys[4] = {"fp32", "tf32", "bf16", "fp16"};

static int variant_prec(const char *v, fli_precision *p)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, calib_keys[i])) {
            *p = (fli_precision)i;
            return 0;
        }
    return -1;
}

/* A candidate's merge cost at R registers a lane, in candidates of R = 1. */
static double walk_weight(int R)
{
    return (KNN_WALK_FIXED + KNN_WALK_PER_REG * R) / (KNN_WALK_FIXED + KNN_WALK_PER_REG);
}

static void roofline_coefs(fli_precision p, const fl_info_device *dev, double *c)
{
    c[C_FIXED] = 0.05 + 8 * dev->launch_us * 1e-3;
    c[C_LAUNCH] = dev->launch_us;
    c[C_RATE] = fli_rate(dev, fli_prec_info(p), FLI_CLASS_FUSED);
    /* a score against its query's register threshold: a few instructions
     * on every lane, ~10 G scores/s per SM (as KMeans's argmin fold) */
    c[C_SEL] = dev->sm_count * 10.0;
    /* an append to a block's buffer and its share of a warp-list merge:
     * ~50 ns per 32 list slots on one SM, the SMs side by side */
    c[C_INS] = 50.0 / dev->sm_count;
    c[C_BW] = fli_bw(dev, FLI_CLASS_FUSED);
    c[C_L2] = 2 * fli_bw(dev, FLI_CLASS_FUSED);
    c[C_H2D] = dev->h2d_gbs > 0 ? dev->h2d_gbs * 0.3 : 10.0;
    /* finalize: one warp per query inserts 8-byte entries into its list */
    c[C_MERGE] = fli_bw(dev, FLI_CLASS_STREAM) / 16;
    c[C_RERANK] = fli_bw(dev, FLI_CLASS_GATHER);
    /* CUB's segmented radix sort of 8-byte pairs: 4 passes reading and
     * writing each */
    c[C_SORT] = fli_bw(dev, FLI_CLASS_STREAM) / 64;
    /* |q - x| + add: two instructions where the dot product has one FMA */
    c[C_L1] = 2.0;
    c[C_MATRIX] = fli_rate(dev, FL_INFO_PREC_FP32, FLI_CLASS_FUSED);
    /* the Hopper scan: wgmma at the GEMM class's rate, the same fold
     * instructions per score as the portable scan's */
    c[C_RATE9] = fli_rate(dev, fli_prec_info(p), FLI_CLASS_GEMM);
    c[C_SEL9] = c[C_SEL];
    /* the slow path: each score re-tested against the shared threshold
     * (a load, a compare, a branch), a few times the fast test */
    c[C_SLOW9] = c[C_SEL] / 4;
    c[C_INS9] = c[C_INS];
    /* a segment's block, per pass: the digit histogram cleared, two block
     * scans of the 64 bins, the barriers between upsweep and downsweep,
     * the partial tiles at the segment's ends: ~2 us */
    c[C_SEGP] = 2.0;
}

int fli_knn_coefs(const char *variant, const fl_info_device *dev, const char **names, double *def)
{
    fli_precision p;
    if (variant_prec(variant, &p) || !dev->is_gpu)
        return -1;
    double c[N_COEF];
    roofline_coefs(p, dev, c);
    return fli_coefs_out(coef_names, c, N_COEF, names, def);
}

/* ---- parameters -------------------------------------------------------- */

/* Info-only parameters of knn (the primitive's own table is
 * fli_knn_params, shared with execution). */
const fl_param_def fli_knn_xparams[] = {
    {"n_queries", FL_PARAM_INT, "auto", 1, 9.2e18, "auto", "nq",
     "queries searched (auto: n_samples x n_features is the kNN graph of the data, each point left out of "
     "its own neighbours; n_queries x n_samples x n_features gives them separately)"},
    {"input", FL_PARAM_CHOICE, "host", 0, 0, "host|device", NULL,
     "where the data and the results live: host (copied over the host link) or device"},
    {"force_gpu", FL_PARAM_BOOL, "false", 0, 1, NULL, NULL,
     "a context on device cuda (routing then never keeps a small host search on the CPU)"},
    {"threads", FL_PARAM_INT, "auto", 1, 4096, "auto", NULL,
     "CPU threads (CPU backend; auto = the table's cores)"},
};
_Static_assert(sizeof fli_knn_xparams / sizeof *fli_knn_xparams == FLI_KNN_N_XPARAMS, "count");

/* Indexes of the parameters: fli_knn_params, then fli_knn_xparams;
 * tests/c/test_info.c checks the tables' order against these. */
enum {
    NP_N_NEIGHBORS,
    NP_RADIUS,
    NP_METRIC,
    NP_P,
    NP_PRECISION,
    NP_ALGORITHM,
    NP_LEAF_SIZE,
    NP_VERBOSE,
    NX_N_QUERIES = FLI_KNN_N_PARAMS,
    NX_INPUT,
    NX_FORCE_GPU,
    NX_THREADS,
    NP_COUNT
};

/* The defaults as the generic reader parses them (NaN for a word, -1 for a
 * number), so an estimate parses no default text; test_info.c checks that
 * spelling every default out changes nothing. */
static const fli_pdefault knn_defaults[NP_COUNT] = {
    [NP_N_NEIGHBORS] = {5, -1}, [NP_RADIUS] = {1.0, -1},   [NP_METRIC] = {NAN, FLI_KNN_W_MINKOWSKI},
    [NP_P] = {2, -1},           [NP_PRECISION] = {NAN, 0},                            /* auto */
    [NP_ALGORITHM] = {NAN, 0},                                                        /* auto */
    [NP_LEAF_SIZE] = {30, -1},  [NP_VERBOSE] = {0, -1},    [NX_N_QUERIES] = {NAN, 0}, /* auto */
    [NX_INPUT] = {NAN, 0},                                                            /* host */
    [NX_FORCE_GPU] = {0, -1},                                                         /* false */
    [NX_THREADS] = {NAN, 0},                                                          /* auto */
};

/* One search, resolved from the shape and parameters. */
typedef struct knn_req {
    int64_t n_q, n_db, d, k;
    int self; /* the kNN graph of the data: queries are the database */
    fli_knn_metric metric;
    double p;
    int precision_word, on_device, force_gpu, threads;
} knn_req;

static int resolve(fli_est *e, knn_req *q)
{
    if (e->ndim == 3) {
        q->n_q = e->shape[0], q->n_db = e->shape[1], q->d = e->shape[2], q->self = 0;
    } else {
        q->n_db = e->shape[0], q->d = e->shape[1];
        q->self = fli_pd_word(e, knn_defaults, NX_N_QUERIES) == 0;
        q->n_q = q->self ? q->n_db : (int64_t)fli_pd_num(e, knn_defaults, NX_N_QUERIES);
    }
    q->k = (int64_t)fli_pd_num(e, knn_defaults, NP_N_NEIGHBORS);
    if (q->self && q->k > q->n_db - 1)
        return fli_info_fail(e,
                             "knn: n_neighbors=%lld: the kNN graph of %lld samples leaves each point out of "
                             "its own neighbours, so n_neighbors must be <= n_samples - 1 = %lld",
                             (long long)q->k, (long long)q->n_db, (long long)(q->n_db - 1));
    if (q->k > q->n_db)
        return fli_info_fail(e, "knn: n_neighbors=%lld: must be <= n_samples=%lld (the database's rows)",
                             (long long)q->k, (long long)q->n_db);
    if (e->dtype != FL_DTYPE_F32 && e->dtype != FL_DTYPE_F64)
        return fli_info_fail(e,
                             "knn: dtype %s: expected f32 or f64 (the GPU's 16-bit scans are precision=bf16 "
                             "or precision=fp16)",
                             fli_dtype_canon(e->dtype));
    q->p = fli_pd_num(e, knn_defaults, NP_P);
    q->metric =
        fli_knn_resolve_metric(fli_pd_word(e, knn_defaults, NP_METRIC), q->p); /* as knn.c resolves it */
    q->precision_word = fli_pd_word(e, knn_defaults, NP_PRECISION);
    q->on_device = fli_pd_word(e, knn_defaults, NX_INPUT) == 1;
    q->force_gpu = fli_pd_num(e, knn_defaults, NX_FORCE_GPU) != 0;
    double th = fli_pd_num(e, knn_defaults, NX_THREADS);
    q->threads = isfinite(th) && th >= 1 ? (int)th : 0;
    return 0;
}

static int gemm_form(fli_knn_metric m)
{
    return m == FLI_KNN_SQEUCLIDEAN || m == FLI_KNN_EUCLIDEAN || m == FLI_KNN_COSINE || m == FLI_KNN_INNER;
}

/* ---- the CPU backend --------------------------------------------------- */

static int est_cpu(fli_est *e, const knn_req *q, const fl_route *route, fli_precision prec)
{
    fl_info_result *r = e->r;
    const double nq = (double)q->n_q, n = (double)q->n_db, d = (double)q->d, k = (double)q->k;
    const double es = (double)fli_dtype_bytes(e->dtype);
    const fl_info_prec p = fli_prec_info(prec);
    const int threads = q->threads > 0         ? q->threads
                        : isfinite(e->threads) ? (int)e->threads
                                               : e->dev->sm_count;
    const fl_info_tier cap = FL_INFO_TIER_HEURISTIC;
    (void)route;
    /* knn_cpu.c: database tiles of ~512 KiB, blocks of 64 queries, a bounded
     * heap of k + oversampling per query, candidates re-ranked exactly */
    const double tb = fmax(64, fmin(2048, floor(524288 / (d * es) / 64) * 64));
    const double kk = fmin(n, k + (k < 64 ? 8 : floor(k / 8)));
    const double blocks = ceil(nq / 64);
    fli_roof_leaf(e, 0, "prepare", "row norms (product-form metrics), database mean (euclidean)", 1,
                  3 * n * d, p, FLI_CLASS_STREAM, (n + (q->self ? 0 : nq)) * d * es, 2, cap);
    const double l1 = q->metric == FLI_KNN_MANHATTAN   ? 1.5
                      : q->metric == FLI_KNN_MINKOWSKI ? 1.5 * KNN_POW_COST
                                                       : 1;
    fli_roof_leaf(e, 0, "distance tiles",
                  gemm_form(q->metric) ? "a BLAS GEMM per (64-query block, database tile)"
                                       : "direct loops over transposed database tiles",
                  1, 2 * nq * n * d * l1, p, gemm_form(q->metric) ? FLI_CLASS_GEMM : FLI_CLASS_FUSED,
                  blocks * n * d * es + nq * d * es, blocks * ceil(n / tb), cap);
    /* a key costs a load and a compare once the heap is full (16-key chunks
     * rejected by one vector compare); the insertions are ~k ln(n/k) */
    const double ins = nq * kk * (1 + log(fmax(1, n / kk)));
    fli_roof_leaf(e, 0, "top-k heaps", "chunks of 16 keys against the heap's worst, heap insertions", 1,
                  nq * n * 2 + ins * 4 * log2(kk + 1), p, FLI_CLASS_STREAM, nq * n * es, 1, cap);
    fli_roof_leaf(e, 0, "exact re-rank", "the pool's distances recomputed directly, sorted", 1,
                  nq * kk * d * 3, p, FLI_CLASS_GATHER, nq * kk * d * es + nq * k * (es + 8), 1, cap);
    /* host memory: per-thread tiles and the pools of one wave (bounded at
     * 256 MiB), the outputs' staging: knn_cpu.c's plan, approximated */
    double pools = fmin(blocks * 64 * kk * 24, 256.0 * 1048576);
    r->peak_host_bytes = (uint64_t)(threads * (64 * tb + tb * d) * es * 2 + pools + n * 8);
    r->peak_memory_bytes = r->peak_host_bytes;
    fli_note(e, "CPU runtime is a roofline of the backend's counts on the nominal CPU of the device table: "
                "heuristic; host memory approximates knn_cpu.c's plan (its tiles, pools and staging)");
    return 0;
}

/* ---- the GPU search ---------------------------------------------------- */

/* knn_cuda.cu's plan, in C: the pool, the list width, the padded widths,
 * the chunks of queries and database rows under the memory budget, the
 * database slices of a scan. Kept equal to it by hand (its CUB temporary
 * storage is approximated: CUB sizes it at run time). */
typedef struct knn_gplan {
    int prec, general, h16, R, q_host, db_host, out_host;
    int sm90, kb9; /* the Hopper wgmma scan; its 128-byte column blocks a row */
    int64_t k, kprime, dh, kw, ld4, qc, nbc, nchunks, nqchunks;
    int slices;
    double bytes; /* what knn_plan_bytes counts (the chunking decision)  */
    double alloc; /* what knn_alloc allocates (the peak)                 */
} knn_gplan;

static int64_t rup(int64_t a, int64_t b)
{
    return (a + b - 1) / b * b;
}

static int64_t cdiv(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* knn_pick_slices: the slice count of least cost waves / s x (1 + 0.01 s)
 * over s in [1, min(ntiles / 4, 512)], the first of equal costs. Only the
 * last s of each wave count can be a minimum (within one wave count the
 * cost falls with s), and no s whose lower bound x / nsm (1 + 0.01 s)
 * exceeds the best can win: a few evaluations instead of up to 512. */
static int pick_slices(int64_t xblocks, int64_t ntiles, int nsm)
{
    const int64_t smax = ntiles / 4 > 1 ? (ntiles / 4 < 512 ? ntiles / 4 : 512) : 1;
    const double xr = (double)xblocks / nsm;
    int best = 1;
    double best_cost = 1e300;
    for (int64_t w = 1, prev = 0;; w++) {
        int64_t s = xblocks < nsm ? w * nsm / xblocks : w;
        if (s > smax)
            s = smax;
        if (s > prev && s >= 1) {
            const double waves = (double)cdiv(xblocks * s, nsm);
            const double cost = waves / (double)s * (1.0 + 0.01 * (double)s);
            if (cost < best_cost)
                best_cost = cost, best = (int)s;
            prev = s;
        }
        if (s >= smax || xr * (1.0 + 0.01 * (double)(s + 1)) > best_cost * (1 + 1e-9))
            break;
    }
    return best;
}

/* knn_plan_bytes (decision) and knn_alloc (peak) for chunks qc x nbc. */
static void gplan_bytes(knn_gplan *P, int64_t n_q, int64_t n_db, int64_t qc, int64_t nbc, int nsm)
{
    P->qc = qc, P->nbc = nbc;
    P->nchunks = cdiv(n_db, nbc), P->nqchunks = cdiv(n_q, qc);
    const int multi = P->nchunks > 1;
    const double nbp = (double)rup(nbc, 128), k = (double)P->k, dq = (double)qc;
    const double db_part = nbp * ((P->db_host ? 2.0 * P->ld4 * 4 : 0) + (P->h16 ? P->dh * 2.0 : 0) + 8);
    const double q_part = dq * ((P->q_host ? P->ld4 * 4.0 : 0) + (P->h16 ? P->dh * 2.0 : 0) +
                                (multi ? k * 8 : 0) + (P->out_host ? k * 12 : 0));
    double extra;
    if (P->sm90) {
        /* the operand images (queries in 256-row tiles), the shared bounds,
         * lists of 256-query blocks */
        P->slices = pick_slices(cdiv(qc, 256), cdiv(nbc, 128), nsm);
        extra = nbp * P->kb9 * 128.0 + (double)rup(qc, 256) * (P->kb9 * 128.0 + 4) +
                (double)P->slices * (double)rup(qc, 256) * 32 * P->R * 8;
    } else if (!P->general) {
        P->slices = pick_slices(cdiv(qc, 128), cdiv(nbc, 128), nsm);
        extra = (double)P->slices * (double)rup(qc, 128) * 32 * P->R * 8;
    } else {
        const double L = (double)(P->kprime + P->k);
        /* CUB: the sorts' alternate buffers and a little more */
        extra = dq * (double)nbc * 16 + dq * L * 16 + (dq + 1) * 8 + 256 +
                fmax(dq * (double)nbc * 8, dq * L * 8) + 4096;
    }
    P->bytes = db_part + q_part + extra;
    /* knn_alloc: the second database buffer only when there are chunks */
    P->alloc = P->bytes - (P->db_host && !multi ? nbp * P->ld4 * 4.0 : 0) -
               (P->db_host ? (nbp - (double)nbc) * P->ld4 * 4.0 * (multi ? 2 : 1) : 0);
}

static int gplan_make(knn_gplan *P, const knn_req *q, fli_precision prec, double budget, int nsm,
                      int sm90_enabled)
{
    memset(P, 0, sizeof *P);
    const int direct = q->metric == FLI_KNN_MANHATTAN || q->metric == FLI_KNN_MINKOWSKI;
    const int64_t n_eff = q->n_db - (q->self ? 1 : 0), k = q->k;
    P->k = k;
    P->prec = direct ? FLI_PREC_FP32 : (int)prec;
    int64_t kp = direct ? k + 16 : (2 * k > k + 16 ? 2 * k : k + 16);
    if (kp > n_eff)
        kp = n_eff;
    P->general = kp > KNN_MAX_POOL;
    if (P->general) {
        const int64_t extra = k / 4 > 16 ? k / 4 : 16;
        kp = k + extra < n_eff ? k + extra : n_eff;
    }
    P->kprime = kp;
    P->R = kp <= 32 ? 1 : kp <= 64 ? 2 : kp <= 128 ? 4 : 8;
    P->h16 = !P->general && (P->prec == FLI_PREC_BF16 || P->prec == FLI_PREC_FP16);
    P->dh = rup(q->d, 64);
    P->kw = P->h16 ? P->dh / 2 : rup(q->d, 32);
    P->ld4 = rup(q->d, 4);
    /* the kNN graph of host data: the queries are the same host rows,
     * copied as queries too (knn.c hands the module one host pointer) */
    P->q_host = P->db_host = P->out_host = !q->on_device;
    /* knn_plan_make's Hopper rule (fli_route_knn states the same): the
     * GEMM-form metrics at tf32/bf16/fp16, >= 1024 queries, rows of at most
     * 512 bytes at the scan precision padded to 2 or 4 column blocks, not 4
     * blocks with R >= 4; no 16-bit copies (the images replace them) */
    if (!P->general && sm90_enabled && !direct && P->prec != FLI_PREC_FP32 && q->n_q >= 1024) {
        const int64_t rowb = P->prec == FLI_PREC_TF32 ? rup(q->d, 32) * 4 : rup(q->d, 64) * 2;
        const int kb = rowb / 128 <= 2 ? 2 : 4;
        if (rowb <= 512 && !(kb == 4 && P->R >= 4)) {
            P->sm90 = 1;
            P->kb9 = kb;
            P->h16 = 0;
        }
    }
    int64_t qc = q->n_q, nbc = q->n_db;
    if (P->general) {
        while (qc > 1 && (qc * nbc > (int64_t)1 << 30 || qc * (kp + k) > (int64_t)1 << 30))
            qc = (qc + 1) / 2;
        while (qc * nbc > (int64_t)1 << 30)
            nbc = rup((nbc + 1) / 2, 128);
    }
    for (;;) {
        gplan_bytes(P, q->n_q, q->n_db, qc, nbc, nsm);
        if (P->bytes <= budget)
            return 0;
        const double nbp = (double)rup(nbc, 128);
        const double db_part = nbp * ((P->db_host ? 2.0 * P->ld4 * 4 : 0) + (P->h16 ? P->dh * 2.0 : 0) + 8);
        if (nbc > 128 && (db_part * 2 >= P->bytes || qc <= 128))
            nbc = rup((nbc + 1) / 2, 128) < nbc ? rup((nbc + 1) / 2, 128) : nbc - 128;
        else if (qc > 1)
            qc = (qc + 1) / 2;
        else
            return -1; /* FL_STATUS_DEVICE_OOM */
    }
}

/* Time of one fused scan launch over mq queries x nb database rows, and
 * its HBM bytes (*hb). */
static double scan_ms(const knn_gplan *P, const double *c, const fl_info_device *dev, double mq, double nb,
                      int slices, double d, double elem, int res, double *hb, int *bound)
{
    const int nsm = dev->sm_count;
    const int simt = P->prec == FLI_PREC_FP32;
    /* the Hopper scan: blocks of 256 queries (two warpgroups of 128) */
    const double bm = P->sm90 ? 256 : 128;
    const int64_t xblocks = cdiv((int64_t)mq, (int64_t)bm), ntiles = cdiv((int64_t)nb, 128);
    const int64_t tiles_per = cdiv(ntiles, slices), used = cdiv(ntiles, tiles_per);
    const double waves = (double)cdiv(xblocks * used, nsm);
    /* the reduction length each score runs over: tf32 words padded to 32,
     * bf16/fp16 values to 64, SIMT chunks of 16; the Hopper scan's rows
     * padded to 2 or 4 column blocks of 128 bytes */
    const double es = P->sm90 ? (P->prec == FLI_PREC_TF32 ? 4 : 2) : P->h16 ? 2 : 4;
    const double K = simt      ? ceil(d / 16) * 16
                     : P->sm90 ? P->kb9 * 128.0 / es
                     : P->h16  ? (double)P->dh
                               : (double)P->kw;
    /* the slowest block of each wave: tiles_per tiles of bm x 128 scores */
    const double exec = waves * nsm * (double)tiles_per * bm * 128;
    const double rate = c[P->sm90 ? C_RATE9 : C_RATE] * 1e9, sel = c[P->sm90 ? C_SEL9 : C_SEL] * 1e6;
    /* candidates appended: a list's threshold stays +inf until its 32R
     * slots are full, then ~32R ln(rows / 32R) more beat it on random
     * order; each costs an append and its share of a warp merge into R
     * registers a lane. Counted on the slowest block of each wave, as the
     * scores are (the blocks of a wave run side by side). */
    const double L = 32.0 * P->R, rows = (double)tiles_per * 128;
    /* the queries of the slowest block that gather candidates: a block's
     * rows past the last query start with a threshold of -inf
     * (knn_state_init) and never append or merge, so a search of fewer
     * queries than a block (100 queries: one block of 128 rows) pays the
     * lists of its queries only; the products and the threshold tests run
     * on every row */
    const double live = fmin(bm, mq);
    double tc = exec * (2 * K * elem / rate + 1 / sel);
    if (!P->sm90) {
        /* a row's threshold tightens only when its append buffer (KNN_CB
         * keys) is merged (knn_merge_row), so after a merge at t rows the
         * next KNN_CB appends are tested against the list's last of t rows
         * while a fresh one would have moved on: on random order a merge
         * epoch spans t -> t (1 + CB / L) rows and appends CB keys where a
         * per-key threshold would append L ln(1 + CB / L) (R = 1: 1.44x, R =
         * 8: 1.06x) */
        const double stale = KNN_CB / L / log1p(KNN_CB / L);
        const double per_q = L * (1 + stale * log(fmax(1, rows / L)));
        tc += waves * nsm * live * per_q * walk_weight(P->R) * c[C_INS] * 1e-6;
    } else {
        /* knn_scan_sm90.cu: a list's threshold is its k'-th key (rounded up
         * to the last key of the lane holding it), min'ed with the other
         * slices' (each merge publishes it; warps take them in every 16
         * tiles). The min of lists of equal
         * length is about any one's, so sharing does not pool the slices'
         * rows: a block of the first waves (its query block's first slice,
         * or slices running beside it) warms its list up alone, ~Lt (1 +
         * ln(rows / Lt)) candidates; a later wave's slice starts at the
         * bound of a finished slice of as many rows, ~Lt ln 2 candidates.
         * (Before, every wave paid the warm-up: self-kNN of 30,000 rows, 10
         * slices in 9 waves, predicted 1.5-2.2x slow.)
         * The fold: a warp tests its 16 rows x 128 columns of a tile
         * (bucket minima) against register thresholds and enters the slow
         * path (its lanes walk their passing buckets; appends, merges) when
         * any passes: with a threshold at the Lt-th of t rows (random
         * order) a tile meets ~16 x 128 x Lt / t candidates and is slow
         * with probability 1 - exp(-that). Summed tile by tile while that
         * is above 1%, then its tail (~a ln). slow9_gsps prices that entry
         * per score of the warp tile, insert9_ns each candidate's walk,
         * append and merge share. Per block, the slowest of each wave, as
         * the scores are. */
        const double Lt = ceil((double)P->kprime / P->R) * P->R;
        const double a = 16.0 * 128 * Lt;
        const double w0 = fmin(waves, (double)cdiv(xblocks, nsm)), w1 = waves - w0;
        double cand[2], slow[2];
        for (int ci = 0; ci < 2; ci++) {
            const double t0 = ci ? rows : 0;
            cand[ci] = ci ? Lt * log(2.0) : rows <= Lt ? rows : Lt * (1 + log(rows / Lt));
            double sw = 0;
            int64_t j = 0;
            for (; j < tiles_per; j++) {
                const double lam = a / (t0 + (j + 0.5) * 128);
                if (lam < 0.01)
                    break;
                sw += 128 * (1 - exp(-lam));
            }
            if (j < tiles_per)
                sw += a * log((t0 + rows) / (t0 + (double)j * 128));
            slow[ci] = sw;
        }
        tc += nsm * live *
              ((w0 * cand[0] + w1 * cand[1]) * walk_weight(P->R) * c[C_INS9] * 1e-6 +
               (w0 * slow[0] + w1 * slow[1]) / (c[C_SLOW9] * 1e6));
    }
    /* HBM: the queries, the database once per wave when it does not stay
     * in L2, the lists written, the score coefficients */
    const double row_s = P->sm90 ? P->kb9 * 128.0 : P->h16 ? (double)P->dh * 2 : d * 4;
    const double db_b = nb * row_s, q_b = mq * row_s;
    const double lists = (double)used * (double)rup((int64_t)mq, (int64_t)bm) * 32 * P->R * 8;
    *hb = q_b + db_b * (db_b > (double)dev->l2_bytes * 0.5 ? waves : 1) + lists + nb * 8;
    const double tm = *hb / (c[C_BW] * 1e6);
    /* L2: each block's database tiles, and its queries (once when they
     * stay in shared memory, with every tile otherwise) */
    const double l2b = (double)(xblocks * used) * (double)tiles_per * 128 * K * es * (res ? 1 : 2);
    const double tl = l2b / (c[C_L2] * 1e6);
    *bound = tc >= tm && tc >= tl ? FL_INFO_BOUND_COMPUTE : FL_INFO_BOUND_MEMORY;
    /* the tensor-core scan with its queries not resident (res = 0: rows
     * too wide for shared memory) streams both operands through its stages,
     * 32 KB a 32-word step, two steps ahead, at one block of 8 warps an SM:
     * its warps wait for each stage (cp_async_wait, __syncthreads), and the
     * fold between tiles stops the stream: the L2 time adds to the work
     * (as an overlap, the two measured non-resident searches, d = 512 at
     * 10,000 and 100,000 queries, needed L2 rates 1.4x apart) */
    const double tw = !res && !simt && !P->sm90 ? fmax(tc + tl, tm) : fmax(tc, fmax(tm, tl));
    /* the Hopper scan clears its shared bounds before each launch */
    return tw + c[C_LAUNCH] * 1e-3 * (P->sm90 ? 2 : 1);
}

/* knn_scan_smem: the fused scan's shared memory. */
static double scan_smem(const knn_gplan *P, int res, int top, int simt)
{
    const double words = simt ? 16.0 * (128 + 128 + 8)
                              : (res ? 128.0 * (double)(P->kw + 4) : 0) +
                                    KNN_STAGES * (res ? 128.0 * KNN_LDS : 256.0 * KNN_LDS);
    return words * 4 + 128.0 * 32 * 8 + (top ? 128.0 * 32 * P->R * 8 : 0) + 128.0 * 8;
}

/* Queries resident in shared memory (knn_plan_make's choice). */
static int scan_res(const knn_gplan *P, double optin)
{
    if (P->sm90) /* the block's 256 queries stay in shared memory */
        return 1;
    if (P->general || P->prec == FLI_PREC_FP32)
        return 0;
    return scan_smem(P, 1, 0, 0) <= optin;
}

static int est_gpu(fli_est *e, const knn_req *q, fli_precision prec, const fl_hw_props *hw)
{
    fl_info_result *r = e->r;
    const fl_info_device *dev = e->dev;
    /* calibration key: the scan's precision (manhattan and minkowski scan
     * in fp32 whatever precision says: routing reports fp32 for them) */
    const char *key = calib_keys[prec <= FLI_PREC_FP16 ? prec : FLI_PREC_FP32];
    r->model_key = key;
    double def[N_COEF];
    fl_info_tier tier;
    const fli_calib_entry *entry = NULL;
    const double *c = fli_calib_coefs(e, "knn", key, "f32", NULL, N_COEF, &tier, &entry);
    if (!c) {
        roofline_coefs(prec, dev, def);
        c = def;
    }
    if (entry)
        r->calibration = entry->describe;

    const double nq = (double)q->n_q, n = (double)q->n_db, d = (double)q->d, k = (double)q->k;
    const double bw = c[C_BW] * 1e6, h2d = c[C_H2D] * 1e6, rr = c[C_RERANK] * 1e6,
                 launch = c[C_LAUNCH] * 1e-3;
    const int nsm = dev->sm_count;

    /* The plan under the memory budget: 90% of the free memory less 64 MiB
     * (cudaMemGetInfo at the call: the device's memory less the context's
     * reserve and the caller's device data). */
    const double in_bytes = (n + nq) * d * 4;
    const double free_b = (double)dev->memory_bytes - KNN_CTX_RESERVE - (q->on_device ? in_bytes : 0);
    knn_gplan P;
    if (gplan_make(&P, q, prec, free_b * 0.9 - 64.0 * 1048576, nsm, hw->sm90_enabled)) {
        r->fits_in_memory = 0;
        fli_note(e, "does not fit: no plan of the search fits the device's memory (execution fails with "
                    "FL_STATUS_DEVICE_OOM); the figures are for one query at a time");
    }
    const int res = scan_res(&P, (double)hw->smem_per_block_optin_bytes);
    r->peak_memory_bytes = (uint64_t)P.alloc;
    r->peak_memory_exact = 0;
    if (q->on_device && P.alloc + in_bytes > (double)dev->memory_bytes) {
        r->fits_in_memory = 0;
        fli_note(e, "does not fit: the data on the device plus the search's buffers exceed its memory");
    }
    if (P.nchunks > 1)
        fli_note(e, "the database does not fit beside the search's buffers: it is processed in chunks "
                    "(streamed from the host, double-buffered, when it lives there) merged into a running "
                    "list per query");
    if (e->dtype == FL_DTYPE_F64) /* knn.c: float32 copies, staged float32 results and their float64 copy */
        r->peak_host_bytes = (uint64_t)((n + (q->self ? 0 : nq)) * d * 4 + nq * k * 20);
    fli_note(e, "device memory mirrors knn_cuda.cu's plan and allocations (the any-k path's CUB storage "
                "approximated)");

    const double elem = q->metric == FLI_KNN_MANHATTAN   ? c[C_L1]
                        : q->metric == FLI_KNN_MINKOWSKI ? c[C_L1] * KNN_POW_COST
                                                         : 1;
    const double qc = (double)P.qc, nbc = (double)P.nbc;
    const double nqc = (double)P.nqchunks, nch = (double)P.nchunks;
    const double mq_last = nq - (nqc - 1) * qc, nb_last = n - (nch - 1) * nbc;
    const int multi = P.nchunks > 1;
    const double kp = (double)P.kprime, row_b = d * 4;

    /* per (query chunk, database chunk): sum over the 1-4 distinct sizes */
    double t_scan = 0, b_scan = 0, l_scan = 0, t_fin = 0, b_fin = 0, t_mat = 0, t_sort = 0, t_pool = 0;
    double b_gen = 0, l_gen = 0;
    int bound = FL_INFO_BOUND_COMPUTE;
    for (int qi = 0; qi < 2; qi++) {
        const double mq = qi ? mq_last : qc, wq = qi ? 1 : nqc - 1;
        if (wq <= 0)
            continue;
        for (int ci = 0; ci < 2; ci++) {
            const double nb = ci ? nb_last : nbc, wc = ci ? 1 : nch - 1;
            if (wc <= 0)
                continue;
            const double w = wq * wc;
            /* the exact re-rank gathers pool rows of the chunk's database:
             * from L2 when the chunk's fp32 rows fit in half of it (read
             * there by the scan or the score matrix just before), at twice
             * the HBM gather's rate (the roofline's L2 : HBM ratio) */
            const double rg = nb * row_b <= 0.5 * (double)dev->l2_bytes ? 2 * rr : rr;
            if (!P.general) {
                /* the plan's slices for its full chunks; a smaller last
                 * chunk picks its own, capped by the lists buffer */
                const int64_t bm = P.sm90 ? 256 : 128;
                const int64_t xblocks = cdiv((int64_t)mq, bm), ntiles = cdiv((int64_t)nb, 128);
                int sl = P.slices;
                if (mq != qc || nb != nbc) {
                    const int64_t sc = (int64_t)P.slices * rup((int64_t)qc, bm) / rup((int64_t)mq, bm);
                    sl = pick_slices(xblocks, ntiles, nsm);
                    if (sl > sc)
                        sl = (int)sc;
                }
                double hb;
                const double ts = scan_ms(&P, c, dev, mq, nb, sl, d, elem, res, &hb, &bound);
                t_scan += w * ts, b_scan += w * hb, l_scan += w;
                /* finalize: one warp per query merges the slices' lists,
                 * re-ranks the pool in exact fp32 (gathered rows), merges
                 * the running list of earlier chunks */
                const double used = (double)cdiv(ntiles, cdiv(ntiles, sl));
                const double ent = mq * used * 32 * P.R,
                             bf = ent * 8 + mq * row_b + (multi ? 2 * mq * k * 8 : 0);
                t_fin += w * (fmax(ent / (c[C_MERGE] * 1e6), bf / bw) + mq * kp * row_b / rg + launch);
                b_fin += w * (bf + mq * kp * row_b);
            } else {
                /* score matrix (fp32 SIMT), CUB segmented sort of each
                 * query's scores, the best kprime re-ranked, a second sort
                 * of the pool, the best k taken */
                const double L = kp + k, mb = mq * nb * 8;
                /* the matrix kernel's rate includes writing its 8 bytes a
                 * score (its own coefficient: HBM's is the scan's) */
                t_mat += w * 2 * mq * nb * d * elem / (c[C_MATRIX] * 1e9);
                /* CUB's segmented sort gives each query's segment to one
                 * block, a pass a launch: an SM sorts at its share of the
                 * device's rate, so a pass lasts as long as the SM with the
                 * most segments, ceil(mq / SMs) of them (fewer queries than
                 * SMs: one segment's time, the other SMs idle). The pool's
                 * 64-bit keys take 11 passes where the scores (32-bit keys,
                 * 32-bit values: as many bytes an item) take 6. */
                const double segs = ceil(mq / nsm) * nsm;
                t_sort += w * segs * (nb + L * KNN_SORT_PASSES64 / KNN_SORT_PASSES32) / (c[C_SORT] * 1e6);
                /* and each of an SM's segment blocks pays a fixed cost a
                 * pass whatever the segment's length (what makes many short
                 * segments, 10,000-30,000 scores, slower a score than long) */
                t_sort += w * (segs / nsm) * (KNN_SORT_PASSES32 + KNN_SORT_PASSES64) * c[C_SEGP] * 1e-3;
                t_pool += w * mq * kp * row_b / rg;
                b_gen += w * (mb + mq * nb * 8 * 2 * KNN_SORT_PASSES32 + mq * kp * row_b);
                l_gen += w; /* chunks, KNN_GEN_LAUNCHES launches each */
            }
        }
    }
    /* host data: the queries per query chunk, the database once (one
     * chunk) or every chunk again per query chunk, overlapping the
     * previous chunk's work on the copy stream */
    const double t_q = q->on_device ? 0 : nq * row_b / h2d;
    const double db_copies = q->on_device ? 0 : multi ? nqc * n : n;
    const double t_db = db_copies * row_b / h2d;
    const double t_work = t_scan + t_fin + t_mat + t_sort + t_pool + l_gen * KNN_GEN_LAUNCHES * launch;
    double t_db_visible = t_db;
    if (multi && !q->on_device) /* only the first chunk's copy, or what the work does not hide */
        t_db_visible = fmax(t_db / nch, t_db - t_work);
    /* preparation: score coefficients of the database rows (and their
     * 16-bit copies), 16-bit copies of the queries; once for one chunk,
     * per (query chunk, database chunk) otherwise */
    const double db_preps = multi ? nqc * nch : 1;
    /* the Hopper scan's operand images instead of the 16-bit copies: a
     * second read of the fp32 rows and kb9 128-byte blocks a row written */
    const double img = P.sm90 ? row_b + P.kb9 * 128.0 : 0;
    const double prep_b = (multi ? nqc : 1) * n * (row_b + 8 + (P.h16 ? (double)P.dh * 2 : 0) + img) +
                          (P.h16 ? nq * (row_b + (double)P.dh * 2) : 0) + nq * img;
    const double prep_l = db_preps * (P.sm90 ? 2 : 1) + (P.h16 || P.sm90 ? nqc : 0);

    /* the plan's buffers come from the context's pool (the CUDA module's
     * fli_dev_alloc_at) or the user's allocator: after a context's first
     * search of a size they cost nothing per call (they were cudaMalloc'd
     * and cudaFree'd each call before c989f5c, a cost this model charged
     * per byte) */
    int nd = fli_node(e, 0, "fixed overhead", "set-up, final synchronisation", 1);
    fli_leaf(e, nd, c[C_FIXED], 0, 0, 0, FL_INFO_BOUND_LATENCY, tier);
    if (!q->on_device) {
        nd =
            fli_node(e, 0, q->self ? "copy X to the device (database and queries)" : "copy X and the queries",
                     multi ? "host-to-device: queries per chunk, database chunks double-buffered behind the "
                             "work"
                           : "host-to-device over the host link (pageable memory)",
                     nqc + (multi ? nqc * nch : 1));
        fli_leaf(e, nd, t_q + t_db_visible, 0, 0, nqc + (multi ? nqc * nch : 1), FL_INFO_BOUND_TRANSFER,
                 tier);
        e->link_bytes += nq * row_b + db_copies * row_b;
    }
    nd = fli_node(e, 0, "prepare",
                  P.h16 ? "score coefficients, 16-bit copies of database and queries"
                        : "score coefficients of the database rows",
                  prep_l);
    fli_leaf(e, nd, prep_b / bw + prep_l * launch, 0, prep_b, prep_l, FL_INFO_BOUND_MEMORY, tier);
    const double fl_alg = 2 * nq * n * d;
    if (!P.general) {
        nd = fli_node(e, 0, "scan (distances + top-k)",
                      P.prec == FLI_PREC_FP32 ? "fp32 SIMT 128 x 128 tiles, per-query candidate lists"
                      : P.sm90 ? "Hopper wgmma 256 x 128 tiles, warp-private candidate lists, bounds shared "
                                 "across slices"
                               : "tensor-core 128 x 128 tiles (mma.sync), per-query candidate lists",
                      l_scan);
        fli_leaf(e, nd, t_scan, fl_alg, b_scan, l_scan, (fl_info_bound)bound, tier);
        nd = fli_node(e, 0, "merge + exact re-rank",
                      "one warp per query: the slices' lists merged, the pool recomputed in fp32, sorted",
                      l_scan);
        fli_leaf(e, nd, t_fin, 2 * nq * kp * d * nch, b_fin, l_scan, FL_INFO_BOUND_MEMORY, tier);
    } else {
        nd = fli_node(e, 0, "any-k: score matrix", "a pool beyond the lists: fp32 SIMT scores of every pair",
                      l_gen);
        fli_leaf(e, nd, t_mat + l_gen * launch, fl_alg, nq * n * 8, l_gen, FL_INFO_BOUND_COMPUTE, tier);
        /* per chunk: the sorts' launches as the tree has counted them since
         * the first model (2 offsets kernels, 2 sorts); their passes are in
         * t_sort's per-pass segment cost */
        const double l_sort = l_gen * 4;
        nd = fli_node(e, 0, "any-k: segmented sorts",
                      "each query's scores, then its re-ranked pool (CUB radix, a launch a pass)", l_gen);
        fli_leaf(e, nd, t_sort + l_sort * launch, 0, b_gen - nq * n * 8 - nq * kp * row_b, l_sort,
                 FL_INFO_BOUND_MEMORY, tier);
        nd = fli_node(e, 0, "any-k: exact re-rank", "the best kprime recomputed in fp32, the best k taken",
                      l_gen);
        fli_leaf(e, nd, t_pool + 2 * l_gen * launch, 2 * nq * kp * d, nq * kp * row_b, 2 * l_gen,
                 FL_INFO_BOUND_MEMORY, tier);
    }
    if (!q->on_device) {
        const double ob = nq * k * 12;
        nd = fli_node(e, 0, "copy results", "distances and indices to the host", nqc);
        fli_leaf(e, nd, ob / h2d, 0, 0, 2 * nqc, FL_INFO_BOUND_TRANSFER, tier);
        e->link_bytes += ob;
    }
    if (tier == FL_INFO_TIER_ROOFLINE)
        fli_note(e, "no calibration of this precision on this device: device peaks x default efficiencies");
    if (q->metric == FLI_KNN_MINKOWSKI) {
        fli_note(e, "minkowski with p other than 1 and 2: the cost of |q - x|^p per element is an assumption "
                    "(6 x manhattan's), not calibrated");
        for (int i = 0; i < r->n_nodes; i++)
            if (r->nodes[i].tier > FL_INFO_TIER_HEURISTIC)
                r->nodes[i].tier = FL_INFO_TIER_HEURISTIC;
    }
    /* a measurement of this exact search (bench/calib keys it the same way) */
    const int64_t pkey[6] = {q->n_q, q->n_db, q->d, q->k, q->metric, q->on_device + 2 * q->self};
    const fli_calib_point *pt = e->no_measured || e->dtype != FL_DTYPE_F32 || q->metric == FLI_KNN_MINKOWSKI
                                    ? NULL
                                    : fli_calib_point_find("knn", key, "f32", dev->name, pkey);
    if (pt)
        fli_scale_to_measured(e, pt->ms);
    return 0;
}

int fli_est_knn(fli_est *e)
{
    knn_req q;
    int rc = resolve(e, &q);
    if (rc)
        return rc;
    const double nq = (double)q.n_q, n = (double)q.n_db, d = (double)q.d, k = (double)q.k;
    if (!fli_bytes_ok(e, (n + nq) * d * 8 * 2, "the data and its copies") ||
        !fli_bytes_ok(e, nq * (k + 64) * 24, "the candidates and the results"))
        return FL_INFO_EINVAL;

    fl_info_result *r = e->r;
    fl_hw_props hw;
    fli_precision prec;
    fl_route route;
    int pw = q.precision_word;
    fli_precision forced;
    if (e->variant_override && !variant_prec(e->variant_override, &forced))
        pw = (int)forced + 1;
    if (e->dev->is_gpu)
        fli_device_hw(e->dev, &hw);
    fli_route_knn(e->dev->is_gpu ? &hw : NULL, q.n_db, q.n_q, q.d, e->dtype, q.k, q.metric, pw, q.on_device,
                  q.force_gpu || e->variant_override, &route, &prec);
    strcpy(r->backend, fl_backend_name(route.backend));
    memcpy(r->variant, route.variant, sizeof r->variant);
    memcpy(r->reason, route.reason, sizeof r->reason);
    e->main_prec = fli_prec_info(prec);
    if (route.backend != FL_BACKEND_CPU)
        return est_gpu(e, &q, prec, &hw);
    if (e->dev->is_gpu) {
        /* a small host search on a GPU machine stays on its CPU: the table's
         * nominal CPU stands for it */
        const fl_info_device *gpu = e->dev;
        e->dev = fli_device_lookup("cpu");
        rc = est_cpu(e, &q, &route, prec);
        e->dev = gpu;
        fli_note(e, "routed to the CPU backend: modelled on the device table's nominal CPU (pass "
                    "force_gpu=true for a context on device cuda)");
        return rc;
    }
    return est_cpu(e, &q, &route, prec);
}
