/*
 * op_knn.c — the cost model of exact k-nearest-neighbour search (fl_knn_search,
 * NearestNeighbors.kneighbors).
 *
 * Shapes: n_samples x n_features is the kNN graph of the data (every row a
 * query, itself left out, as kneighbors(X=None)) unless n_queries is given;
 * n_queries x n_samples x n_features searches separate queries.
 *
 * Routing is fli_route_knn, the function execution calls, on the device's
 * properties (fli_device_hw). The GPU search follows the structure of
 * knn_cuda.cu:
 *   fixed     workspace allocation and release, set-up, the final
 *             synchronisation
 *   h2d       the database (and separate queries) over the host link when
 *             they live on the host
 *   prepare   row norms (product-form metrics) and the 16-bit copies of
 *             database and queries (bf16 / fp16 scans)
 *   scan      query tiles x database slices, one block each, in whole waves
 *             over the SMs: the distance tile (tensor cores, or fp32 SIMT
 *             for fp32, manhattan and minkowski) and a per-query top-k of
 *             every score: max(padded multiply-adds at rate_tflops +
 *             select per score at select_gsps + insertions into the lists,
 *             HBM bytes, operand bytes from L2)
 *   merge     the slices' candidate lists into one per query
 *   re-rank   low-precision scans: the oversampled pool of every query
 *             recomputed in exact fp32 (gathers of database rows), sorted
 *   any-k     k above what a block's top-k holds: chunks of queries against
 *             the whole database as a GEMM into memory, then a per-query
 *             selection of the scores
 *   results   distances and indices (to the host, or left on the device)
 * Coefficients (roofline values from the device table; bench/calib fits
 * them per (precision, device) on flashlib's own searches and validates the
 * fit on held-out shapes): see coef_names.
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
    C_FIXED,  /* fixed_ms:    allocation, set-up, final synchronisation       */
    C_LAUNCH, /* launch_us:   one kernel launch and its dependency gap         */
    C_RATE,   /* rate_tflops: distance arithmetic of the scan (padded)         */
    C_SEL,    /* select_gsps: scores compared against a query's k-th best      */
    C_INS,    /* insert_ns:   one candidate inserted into a top-k list, per 32 */
    C_BW,     /* bw_gbs:      HBM streams (inputs, copies, candidates)         */
    C_L2,     /* l2_gbs:      operand tiles re-read from L2 by the scan        */
    C_H2D,    /* h2d_gbs:     the host link, either direction                   */
    C_MERGE,  /* merge_gcps:  candidates merged across slices                   */
    C_RERANK, /* rerank_gbs:  database rows gathered by the exact re-rank       */
    C_SORT,   /* sort_gsps:   scores selected by the any-k path                 */
    C_L1,     /* l1_cost:     SIMT cost of a |q - x| element against an FMA     */
    N_COEF
};

static const char *const coef_names[N_COEF] = {"fixed_ms",   "launch_us",  "rate_tflops", "select_gsps",
                                               "insert_ns",  "bw_gbs",     "l2_gbs",      "h2d_gbs",
                                               "merge_gcps", "rerank_gbs", "sort_gsps",   "l1_cost"};

/* Geometry of the kernels knn_cuda.cu launches (kept equal to it by hand):
 * queries per block (tensor cores / SIMT), database rows per step of a
 * block, the fewest database rows a slice gets, the largest k a block's
 * top-k holds (larger: the any-k path), the any-k path's score workspace,
 * and the share of the device's memory a search plans within. */
#define KNN_QT_MMA 128
#define KNN_QT_SIMT 64
#define KNN_DBT 128
#define KNN_SLICE_MIN 4096
#define KNN_FUSED_KMAX 256
#define KNN_ANYK_WS ((double)(1u << 30))
#define KNN_MEM_SHARE 0.9
/* minkowski's |d|^p per element (a log2 and an exp2 on the special
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

static fl_info_prec info_prec(fli_precision p)
{
    switch (p) {
    case FLI_PREC_TF32: return FL_INFO_PREC_TF32;
    case FLI_PREC_BF16: return FL_INFO_PREC_BF16;
    case FLI_PREC_FP16: return FL_INFO_PREC_FP16;
    case FLI_PREC_F64: return FL_INFO_PREC_FP64;
    default: return FL_INFO_PREC_FP32;
    }
}

static void roofline_coefs(fli_precision p, const fl_info_device *dev, double *c)
{
    c[C_FIXED] = 0.05 + 8 * dev->launch_us * 1e-3;
    c[C_LAUNCH] = dev->launch_us;
    c[C_RATE] = fli_rate(dev, info_prec(p), FLI_CLASS_FUSED);
    /* a compare of a score with the list's worst: a few instructions on
     * every lane, ~10 G scores/s per SM (as KMeans's argmin fold) */
    c[C_SEL] = dev->sm_count * 10.0;
    /* an insertion shifts a list held across a warp: ~50 ns per 32 entries
     * on one SM, the SMs working side by side */
    c[C_INS] = 50.0 / dev->sm_count;
    c[C_BW] = fli_bw(dev, FLI_CLASS_FUSED);
    c[C_L2] = 2 * fli_bw(dev, FLI_CLASS_FUSED);
    c[C_H2D] = dev->h2d_gbs > 0 ? dev->h2d_gbs * 0.3 : 10.0;
    /* merge: 8-byte candidates at HBM speed, a few compares each */
    c[C_MERGE] = fli_bw(dev, FLI_CLASS_STREAM) / 16;
    c[C_RERANK] = fli_bw(dev, FLI_CLASS_GATHER);
    /* selection of a GEMM's scores: a radix pass or two over them */
    c[C_SORT] = fli_bw(dev, FLI_CLASS_STREAM) / 16;
    c[C_L1] = 1.5;
}

int fli_knn_coefs(const char *variant, const fl_info_device *dev, const char **names, double *def)
{
    fli_precision p;
    if (variant_prec(variant, &p) || !dev->is_gpu)
        return -1;
    double c[N_COEF];
    roofline_coefs(p, dev, c);
    for (int i = 0; i < N_COEF; i++) {
        if (names)
            names[i] = coef_names[i];
        if (def)
            def[i] = c[i];
    }
    return N_COEF;
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
static const struct knn_default {
    double num;
    int word;
} knn_defaults[NP_COUNT] = {
    [NP_N_NEIGHBORS] = {5, -1}, [NP_RADIUS] = {1.0, -1},   [NP_METRIC] = {NAN, FLI_KNN_W_MINKOWSKI},
    [NP_P] = {2, -1},           [NP_PRECISION] = {NAN, 0},                            /* auto */
    [NP_ALGORITHM] = {NAN, 0},                                                        /* auto */
    [NP_LEAF_SIZE] = {30, -1},  [NP_VERBOSE] = {0, -1},    [NX_N_QUERIES] = {NAN, 0}, /* auto */
    [NX_INPUT] = {NAN, 0},                                                            /* host */
    [NX_FORCE_GPU] = {0, -1},                                                         /* false */
    [NX_THREADS] = {NAN, 0},                                                          /* auto */
};

static double kn_num(const fli_est *e, int i)
{
    if (e->ps.set & (1u << i))
        return e->ps.word[i] >= 0 ? NAN : e->ps.num[i];
    return knn_defaults[i].num;
}

static int kn_word(const fli_est *e, int i)
{
    return e->ps.set & (1u << i) ? e->ps.word[i] : knn_defaults[i].word;
}

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
        q->self = kn_word(e, NX_N_QUERIES) == 0;
        q->n_q = q->self ? q->n_db : (int64_t)kn_num(e, NX_N_QUERIES);
    }
    q->k = (int64_t)kn_num(e, NP_N_NEIGHBORS);
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
    q->p = kn_num(e, NP_P);
    q->metric = fli_knn_resolve_metric(kn_word(e, NP_METRIC), q->p); /* as knn.c resolves it */
    q->precision_word = kn_word(e, NP_PRECISION);
    q->on_device = kn_word(e, NX_INPUT) == 1;
    q->force_gpu = kn_num(e, NX_FORCE_GPU) != 0;
    double th = kn_num(e, NX_THREADS);
    q->threads = isfinite(th) && th >= 1 ? (int)th : 0;
    return 0;
}

static int gemm_form(fli_knn_metric m)
{
    return m == FLI_KNN_SQEUCLIDEAN || m == FLI_KNN_EUCLIDEAN || m == FLI_KNN_COSINE || m == FLI_KNN_INNER;
}

/* Candidates a query keeps through a low-precision scan so that the exact
 * re-rank can repair the order the rounding gets wrong (knn_cuda.cu). */
static double pool_of(double k, fli_precision p, double n_db)
{
    double kc = p == FLI_PREC_FP32 ? k : k + fmax(16, ceil(k / 4));
    return fmin(kc, n_db);
}

/* ---- the CPU backend --------------------------------------------------- */

static int est_cpu(fli_est *e, const knn_req *q, const fl_route *route, fli_precision prec)
{
    fl_info_result *r = e->r;
    const double nq = (double)q->n_q, n = (double)q->n_db, d = (double)q->d, k = (double)q->k;
    const double es = (double)fli_dtype_bytes(e->dtype);
    const fl_info_prec p = info_prec(prec);
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

static int est_gpu(fli_est *e, const knn_req *q, const fl_route *route, fli_precision prec)
{
    fl_info_result *r = e->r;
    const fl_info_device *dev = e->dev;
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
    (void)route;

    const double nq = (double)q->n_q, n = (double)q->n_db, d = (double)q->d, k = (double)q->k;
    const int simt = prec == FLI_PREC_FP32, p16 = prec == FLI_PREC_BF16 || prec == FLI_PREC_FP16;
    const double es = p16 ? 2 : 4;
    const double Kp = simt ? d : p16 ? ceil(d / 16) * 16 : ceil(d / 8) * 8;
    const double kc = pool_of(k, prec, n);
    const int anyk = kc > KNN_FUSED_KMAX;
    const int gf = gemm_form(q->metric);
    const double bw = c[C_BW] * 1e6, l2 = c[C_L2] * 1e6, h2d = c[C_H2D] * 1e6;
    const double rate = c[C_RATE] * 1e9, sel = c[C_SEL] * 1e6, ins_ms = c[C_INS] * 1e-6;
    const double merge = c[C_MERGE] * 1e6, rr = c[C_RERANK] * 1e6, sortr = c[C_SORT] * 1e6;
    const double launch = c[C_LAUNCH] * 1e-3;
    const double sms = dev->sm_count;
    /* f64 host data: the algo layer hands the module float32 copies */
    const double in_es = (double)fli_dtype_bytes(e->dtype);
    const double qrows = q->self ? 0 : nq; /* separate query rows */

    /* the scan's work cost per element: an FMA, |q - x| + add, |q - x|^p */
    double elem = 1;
    if (q->metric == FLI_KNN_MANHATTAN)
        elem = c[C_L1];
    else if (q->metric == FLI_KNN_MINKOWSKI)
        elem = c[C_L1] * KNN_POW_COST;

    /* the geometry of the fused scan: query tiles x database slices, one
     * block each (two per SM for SIMT), slices enough to fill the SMs */
    const double qt = simt ? KNN_QT_SIMT : KNN_QT_MMA, per_sm = simt ? 2 : 1;
    const double slots = sms * per_sm, n_qt = ceil(nq / qt);
    double S = fmax(1, fmin(ceil(2 * slots / n_qt), floor(n / KNN_SLICE_MIN)));
    const double slice = ceil(ceil(n / S) / KNN_DBT) * KNN_DBT;
    const double waves = ceil(n_qt * S / slots);

    /* device memory: inputs copied in, 16-bit copies, norms, candidates,
     * the pool, outputs (a host search's results are staged on the device) */
    const double in_bytes = (n + qrows) * d * 4;
    double work = (p16 ? (n + qrows) * Kp * 2 : 0) + (gf ? (n + qrows) * 4 : 0);
    double cand = anyk ? 0 : nq * S * kc * 8;
    double qc = nq, ws = 0;
    if (anyk) { /* queries in chunks whose n_db scores fit the workspace */
        qc = fmax(1, fmin(nq, floor(KNN_ANYK_WS / (n * 4))));
        ws = 2 * qc * n * 4;
    }
    const double pool_b = prec != FLI_PREC_FP32 ? nq * kc * 8 : 0;
    const double out_b = nq * k * 12;
    const double budget = (double)dev->memory_bytes * KNN_MEM_SHARE;
    const double need = work + cand + ws + pool_b + (q->on_device ? 0 : out_b);
    int streamed = 0;
    double peak = need + (q->on_device ? 0 : in_bytes);
    if (!q->on_device && peak > budget && need + qrows * d * 4 + 2 * 64.0 * 1048576 <= budget) {
        /* the database does not fit beside the search: streamed in tiles */
        streamed = 1;
        peak = need + qrows * d * 4 + 2 * 64.0 * 1048576;
    }
    r->peak_memory_bytes = (uint64_t)peak;
    r->peak_memory_exact = 0;
    if (peak > budget || (q->on_device && peak + in_bytes > (double)dev->memory_bytes)) {
        r->fits_in_memory = 0;
        fli_note(e, "does not fit: the search's buffers exceed the device's memory");
    }
    if (streamed)
        fli_note(e, "the database does not fit on the device: streamed from the host in tiles, so the host "
                    "link bounds the scan");
    if (e->dtype == FL_DTYPE_F64)
        /* knn.c: float32 copies of the data, staged float32 distances and
         * indices, their float64 conversion */
        r->peak_host_bytes = (uint64_t)((n + qrows) * d * 4 + nq * k * 20);

    int nd = fli_node(e, 0, "fixed overhead",
                      "workspace allocation and release, set-up, final synchronisation", 1);
    fli_leaf(e, nd, c[C_FIXED], 0, 0, 2, FL_INFO_BOUND_LATENCY, tier);
    if (!q->on_device && !streamed) {
        nd = fli_node(e, 0, q->self ? "copy X to the device" : "copy X and the queries to the device",
                      "host-to-device over the host link (pageable memory)", 1);
        fli_leaf(e, nd, in_bytes / h2d, 0, 0, q->self ? 1 : 2, FL_INFO_BOUND_TRANSFER, tier);
        e->link_bytes += in_bytes;
    }
    (void)in_es;
    double prep = 0, prep_l = 0;
    if (gf)
        prep += (n + qrows) * (d * 4 + 4), prep_l += q->self ? 1 : 2;
    if (p16)
        prep += (n + qrows) * (d * 4 + Kp * 2), prep_l += q->self ? 1 : 2;
    if (prep_l > 0) {
        nd = fli_node(e, 0, "prepare",
                      p16 ? "row norms, 16-bit copies of the database and queries" : "row norms", 1);
        fli_leaf(e, nd, prep / bw + prep_l * launch, 0, prep, prep_l, FL_INFO_BOUND_MEMORY, tier);
    }

    const double fl_alg = 2 * nq * n * d;
    double t_scan;
    fl_info_bound b_scan;
    if (!anyk) {
        /* padded work in whole waves: every block computes qt x slice scores
         * over Kp, compares each with its query's k-th best and inserts the
         * few that beat it (~kc (1 + ln(slice / kc)) per list on random
         * order), a list of kc held across a warp */
        const double scores = waves * slots * qt * slice;
        const double ins = nq * S * kc * (1 + log(fmax(1, slice / kc)));
        const double tc = scores * (2 * Kp * elem / rate + 1 / sel) + ins * ceil(kc / 32) * ins_ms;
        /* HBM: the queries once, the database once per wave of query tiles
         * when it does not stay in L2, the candidates written */
        const double db_b = n * Kp * es, q_b = nq * Kp * es;
        const double hb = q_b + db_b * (db_b > (double)dev->l2_bytes * 0.5 ? fmax(1, waves / S) : 1) + cand;
        const double tm = hb / bw;
        /* L2: every query tile reads its slice's database rows */
        const double tl = (n_qt * S * slice * Kp * es + n_qt * S * qt * Kp * es) / l2;
        t_scan = fmax(tc, fmax(tm, tl));
        b_scan = tc >= tm && tc >= tl ? FL_INFO_BOUND_COMPUTE : FL_INFO_BOUND_MEMORY;
        const double stream = streamed ? n * d * 4 / h2d : 0;
        if (stream > t_scan)
            t_scan = stream, b_scan = FL_INFO_BOUND_TRANSFER;
        nd = fli_node(e, 0, "scan (distances + top-k)",
                      simt ? (gf ? "fp32 SIMT tiles, per-query top-k lists"
                                 : "fp32 SIMT tiles of |q - x| sums, per-query top-k lists")
                           : "tensor-core tiles (mma.sync), per-query top-k lists",
                      1);
        fli_leaf(e, nd, t_scan + launch, fl_alg, hb, 1, b_scan, tier);
        if (S > 1) {
            const double m = nq * S * kc;
            nd = fli_node(e, 0, "merge slices", "every query's slice lists into one", 1);
            fli_leaf(e, nd, fmax(m / merge, (m + nq * kc) * 8 / bw) + launch, 0, (m + nq * kc) * 8, 1,
                     m / merge > (m + nq * kc) * 8 / bw ? FL_INFO_BOUND_LATENCY : FL_INFO_BOUND_MEMORY, tier);
        }
    } else {
        /* chunks of qc queries: a GEMM of their scores against the whole
         * database written to memory, then a selection of each row's best */
        const double chunks = ceil(nq / qc);
        const double tg = fmax(2 * nq * n * Kp * elem / rate, (nq * n * 4 + chunks * n * Kp * es) / bw);
        nd = fli_node(e, 0, "any-k: scores (chunked GEMM)",
                      "k beyond a block's lists: chunks of queries against the database, scores in memory",
                      chunks);
        fli_leaf(e, nd, tg + chunks * launch, fl_alg, nq * n * 4 + chunks * n * Kp * es, chunks,
                 2 * nq * n * Kp * elem / rate > (nq * n * 4) / bw ? FL_INFO_BOUND_COMPUTE
                                                                   : FL_INFO_BOUND_MEMORY,
                 tier);
        const double ts = fmax(nq * n / sortr, (nq * n * 4 + nq * kc * 8) / bw);
        nd = fli_node(e, 0, "any-k: selection", "each query's best k of its n_samples scores", chunks);
        fli_leaf(e, nd, ts + 2 * chunks * launch, 0, nq * n * 4 + nq * kc * 8, 2 * chunks,
                 FL_INFO_BOUND_MEMORY, tier);
        t_scan = tg + ts;
    }
    if (prec != FLI_PREC_FP32) {
        /* the pool's rows gathered in fp32, distances recomputed, sorted */
        const double g = nq * kc * d * 4;
        nd = fli_node(e, 0, "exact re-rank", "the oversampled pool recomputed in fp32 and sorted", 1);
        fli_leaf(e, nd, g / rr + nq * kc * 8 * 2 / bw + launch, 2 * nq * kc * d, g + nq * kc * 16, 1,
                 FL_INFO_BOUND_MEMORY, tier);
    }
    nd = fli_node(e, 0, "copy results",
                  q->on_device ? "distances and indices, written on the device"
                               : "distances and indices to the host",
                  1);
    fli_leaf(e, nd, q->on_device ? out_b / bw : out_b / h2d, 0, q->on_device ? out_b : 0, 1,
             q->on_device ? FL_INFO_BOUND_MEMORY : FL_INFO_BOUND_TRANSFER, tier);
    if (!q->on_device)
        e->link_bytes += out_b;
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
    e->main_prec = info_prec(prec);
    if (route.backend != FL_BACKEND_CPU)
        return est_gpu(e, &q, &route, prec);
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
