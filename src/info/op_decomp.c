/*
 * op_decomp.c — cost models of PCA and TruncatedSVD on the GPU, for the
 * solvers that run there (routing: route_decomp.c): PCA's covariance_eigh
 * (backends/cuda/pca_cuda.cu) and the randomized range finder of PCA and
 * TruncatedSVD (algo/decomp_la.c over the GPU's fli_la). X in device
 * memory, float32; the other solvers run on the CPU (ops.c models them).
 *
 * covariance_eigh, one pass over X (coefficients fixed_ms, bw_gbs,
 * rate_tflops, launch_us, eig_us, eig_tflops, host_gflops, sync_us,
 * syevd_ms):
 *   scatter   on Hopper (rows of 16-byte multiples) the fused kernel,
 *             pca_cuda.cu's default there (sm90/pca_tf3_sm90.cu): a block
 *             per 128 x 128 tile of the lower triangle and row range, in
 *             waves over the SMs; a wave takes its blocks' 32-row steps,
 *             3 x 2 x 128^2 x 32 flops each at one SM's share of
 *             rate_tflops; X read about once at bw_gbs; the larger of the
 *             two. Elsewhere (variant 4) the split, memory-bound: X read
 *             once, each chunk's shifted rows written as tf32 parts
 *             [hi | lo] (d padded to 32), at
 *             bw_gbs; then one strided-batched TF32 GEMM per chunk of B
 *             slices of up to 2048 rows (pca_cuda.cu's plan_cov: B, a power
 *             of two up to 32, gives about 4 output tiles per SM), rows
 *             padded to whole chunks: its B x tiles output tiles of 128 x
 *             128 run in waves over the SMs, a wave costing a whole tile's
 *             rs-deep k loop (2 x 128 x 128 x rs flops per SM) at
 *             rate_tflops, its operand loads hidden behind the MMAs; the
 *             two add (the second stream's overlap saved 3%: bench_pca at
 *             f10d019); a split, a GEMM and their two events per chunk and
 *             a fold per 16k rows of a slice at launch_us;
 *   eigh      few components (p = fli_topk_block(k) <= 128, 8 p <= d <= n): the
 *             top-k subspace iteration (algo/linalg_topk.c) in float64.
 *             Its work is set by the steps S it takes and their filter
 *             degrees summed, M (what the fit logs: "converged in S steps
 *             (degree M"), which depend on the spectrum, not the shape:
 *             M d x d x p products (one gemm each); S + 1 CholeskyQR2
 *             (two passes, three host round trips: each potrf's info and
 *             the first pass's pivots) and S + 1 Rayleigh-Ritz steps (five
 *             gemms, one round trip, a p x p syevd and the p^3 residual
 *             sum on one host thread: 11 p^3 flops at host_gflops); ~25 +
 *             28 (S + 1) + 4 S + M launches at launch_us, 3 + 4 (S + 1)
 *             round trips at sync_us, device flops at eig_tflops.
 *             eigh_steps / eigh_degree give S and M; by default they are
 *             the solver's own step rule run on a spectrum falling as
 *             1 / i (topk_default: the calibration's data; a flatter
 *             spectrum past the k-th eigenvalue takes more steps, and one
 *             too flat falls back to syevd, which is not modelled).
 *             Else cuSOLVER float64 syevd of the d x d scatter, eig_us
 *             per column (its panel steps) + 4 d^3 flops at eig_tflops,
 *             + syevd_ms past 64 columns (its blocked path).
 * randomized, l = n_components + n_oversamples columns, I power
 * iterations (fixed_ms, bw_gbs, rate_tflops, launch_us, sync_us,
 * orth_tflops, host_gflops, blk_gbs); cuBLAS's SGEMM is taken to work
 * in whole 64-wide tiles along l, so l costs as lt = 64 ceil(l / 64)
 * where flops are counted:
 *   products  the centred copy of X first (both PCA and TruncatedSVD:
 *             X's size read or written 8 times; TruncatedSVD also forms
 *             the projections Xc V); 2 I + 2 passes over X (Y = X Omega;
 *             I x (X^T Y, X Z); X^T Q), each 2 n d lt flops at rate_tflops,
 *             n d floats read at bw_gbs and the n x l block written or read
 *             at blk_gbs (the thin blocks' operations run far below HBM's
 *             rate): the larger of the two;
 *   orth      CholeskyQR2 of every block (2 I + 2 of them): Gram matrices
 *             and triangular solves, 6 rows lt^2 flops at orth_tflops, or
 *             their streaming at blk_gbs (per pass and row, the Gram 128
 *             floats per 64 x 64 tile, whose time does not shrink with l,
 *             the solve l read and written): the larger; three host round
 *             trips each (the two Choleskys' info, the first pass's pivots)
 *             at sync_us, ~10 + 2 l launches (a dependent step per column
 *             of each Cholesky);
 *   host      the l x l SVD, 20 l^3 flops at host_gflops (one thread).
 */
#include <math.h>
#include <string.h>

#include "algo/linalg_topk.h"
#include "info/info_internal.h"

/* D_SYNC: covariance_eigh's only (the randomized solver's round trips are D_LAT); D_BLK, in its
 * place, the randomized solver's only */
enum { D_FIXED, D_BW, D_RATE, D_LAUNCH, D_LAT, D_RATE2, D_HOST, D_SYNC, D_SYEVD, D_NCOEF };
enum { D_BLK = D_SYNC, D_NRND = D_SYNC + 1 };
static const char *const cov_names[D_NCOEF] = {"fixed_ms",    "bw_gbs",  "rate_tflops",
                                               "launch_us",   "eig_us",  "eig_tflops",
                                               "host_gflops", "sync_us", "syevd_ms"};
static const char *const rnd_names[D_NRND] = {"fixed_ms", "bw_gbs",      "rate_tflops", "launch_us",
                                              "sync_us",  "orth_tflops", "host_gflops", "blk_gbs"};

static int decomp_variant(const char *v)
{
    return !strcmp(v, "covariance_eigh") ? 0 : !strcmp(v, "randomized") ? 1 : -1;
}

static void decomp_roofline(int rnd, const fl_info_device *dev, double *c)
{
    c[D_FIXED] = 0.5;
    c[D_BW] = fli_bw(dev, FLI_CLASS_STREAM);
    c[D_RATE] = fli_rate(dev, rnd ? FL_INFO_PREC_FP32 : FL_INFO_PREC_TF32, FLI_CLASS_GEMM);
    c[D_LAUNCH] = dev->launch_us;
    c[D_LAT] = rnd ? 20 : 5;
    c[D_RATE2] = rnd ? fli_rate(dev, FL_INFO_PREC_FP32, FLI_CLASS_GEMM) / 4
                     : fli_rate(dev, FL_INFO_PREC_FP64, FLI_CLASS_SOLVER);
    c[D_HOST] = 5;    /* one host thread's LAPACK on small matrices */
    c[D_SYEVD] = 0.5; /* cuSOLVER's syevd past 64 columns: its blocked path's set-up */
    if (rnd)
        c[D_BLK] = c[D_BW] / 4; /* the n x l blocks' operations: thin, far below HBM's rate */
    else
        c[D_SYNC] = 20; /* a stream synchronisation and a small copy to the host */
}

/* linalg_topk.c's step rule on the spectrum t_i = 1 / (1 + i): the filter
 * damps [0, t_{p-1}], the k-th pair gains acosh(x_k) per degree, one
 * filter amplifies nothing by more than 1e10, and each step asks for the
 * degree that takes the k-th residual from r to 1e-10 (decomp.c's
 * TOPK_TOL 1e-9, with the solver's factor 10 of margin). r starts at 0.3
 * t_0 (the random block's Ritz pairs) and falls by T_m(x_k) per step.
 * Against the steps and degrees the solver took on the calibration's data
 * (decaying column scales, see bench/calib/measure.py; f82db59, block
 * fli_topk_block(k)): k = 4: 2 steps, degree 10 (this rule: 8); 8: 2, 11
 * (10); 16: 4, 16-17 (14); 32: 5, 19 (19). */
static void topk_default(double k, double *steps, double *degree)
{
    const double p = (double)fli_topk_block((int64_t)k), tol = 1e-9;
    const double xk = 2 * p / k - 1, x0 = 2 * p - 1; /* (t - c) / e, c = e = t_{p-1} / 2 */
    const double rate = acosh(xk), cap = floor(acosh(1e10) / acosh(x0));
    double r = 0.3, s = 0, m_sum = 0;
    while (r > tol && s < 12 && rate > 0) {
        double m = ceil(log(10 * r / tol) / rate);
        m = m > cap ? cap : m;
        m = m > 24 ? 24 : m < 1 ? 1 : m;
        r /= cosh(m * rate);
        s++;
        m_sum += m;
    }
    *steps = s;
    *degree = m_sum;
}

int fli_decomp_coefs(const char *variant, const fl_info_device *dev, const char **names, double *def)
{
    const int rnd = decomp_variant(variant);
    if (rnd < 0 || !dev->is_gpu)
        return -1;
    double c[D_NCOEF];
    decomp_roofline(rnd, dev, c);
    return fli_coefs_out(rnd ? rnd_names : cov_names, c, rnd ? D_NRND : D_NCOEF, names, def);
}

/* Adds the GPU model's nodes; is_pca: PCA (centring), rnd: the randomized
 * solver (else covariance_eigh); k components, it power iterations, over
 * oversamples. Returns 0. */
int fli_est_decomp_gpu(fli_est *e, int is_pca, int rnd, double k, double it, double over)
{
    const double n = (double)e->shape[0], d = (double)e->shape[1];
    const char *var = rnd ? "randomized" : "covariance_eigh";
    double def[D_NCOEF];
    decomp_roofline(rnd, e->dev, def);
    fl_info_tier tier;
    const fli_calib_entry *entry = NULL;
    const double *c = fli_calib_coefs(e, e->op->pub.name, var, fli_dtype_canon(e->dtype), def,
                                      rnd ? D_NRND : D_NCOEF, &tier, &entry);
    if (entry)
        e->r->calibration = entry->describe;
    e->r->model_key = var;
    fli_note(e, tier == FL_INFO_TIER_CALIBRATED
                    ? "runtime calibrated against the GPU fit (X in device memory, float32) on this device"
                    : "runtime: the GPU solver's passes, products and launches at roofline rates");
    const double bw = c[D_BW] * 1e6, rate = c[D_RATE] * 1e9, lau = c[D_LAUNCH] * 1e-3;
    int nd = fli_node(e, 0, "set-up", "buffers, copies of the results to the host", 1);
    fli_leaf(e, nd, c[D_FIXED], 0, 0, 4, FL_INFO_BOUND_LATENCY, tier);
    if (!rnd) {
        if (e->dev->sm_major == 9 && fmod(d, 4) == 0) {
            /* Hopper, X on the device (rows of 16-byte multiples): pca_cuda.cu's default is the
             * fused kernel (variant 6,
             * sm90/pca_tf3_sm90.cu). A block per 128 x 128 tile of the lower triangle and row range,
             * plan_cov's split rule (the SMs' slots filled best within two waves, ties to two); each
             * block's 32-row steps (split into tf32 parts in shared memory, 12 wgmma) take a wave's
             * time, 3 x 2 x 128^2 x 32 flops a step at one SM's share of rate_tflops; X read about
             * once at bw_gbs, the larger of the two; a few launches (shift, zeroing, the kernel,
             * fold, column sums, rescaling, finish) */
            const double nb = ceil(d / 128), pairs = nb * (nb + 1) / 2, steps = ceil(n / 32);
            const double sm = (double)e->dev->sm_count;
            double sp = 1, be = 0;
            for (double s = 1; s <= 512 && s <= steps; s++) {
                const double b = pairs * s, w = ceil(b / sm);
                if (w > 2)
                    break;
                const double ef = b / (w * sm);
                if (ef > be - 1e-9)
                    be = ef > be ? ef : be, sp = s;
            }
            const double waves = ceil(pairs * sp / sm), per = ceil(steps / sp);
            /* the float64 partials read and written every 64 steps of a block */
            const double fl = 6 * 128.0 * 128.0 * 32 * pairs * steps,
                         by = n * d * 4 + pairs * sp * ceil(per / 64) * 16384 * 8 * 2;
            const double la = 9;
            const double tc = waves * per * 6 * 128.0 * 128.0 * 32 / (rate / sm), tm = by / bw;
            nd = fli_node(
                e, 0, "scatter",
                "one pass over X: a fused kernel splits the shifted rows into tf32 parts in shared memory "
                "and multiplies them on wgmma",
                1);
            fli_leaf(e, nd, (tc > tm ? tc : tm) + la * lau, fl, by, la,
                     tc > tm ? FL_INFO_BOUND_COMPUTE : FL_INFO_BOUND_MEMORY, tier);
        } else {
            /* pca_cuda.cu's plan_cov for the default product (3xtf32): B slices of rs rows per chunk */
            const double dp = ceil(d / 32) * 32, tiles = ceil(2 * dp / 128) * ceil(dp / 128);
            double B = 1;
            while (B < 32 && B * tiles * 3 < 4 * (double)e->dev->sm_count)
                B *= 2;
            const double need = ceil(ceil(n / B) / 32) * 32, rs = need < 2048 ? need : 2048;
            const double chunks = ceil(n / (rs * B)), folds = ceil(chunks / ceil(16384 / rs));
            const double rows = chunks * rs * B; /* the last chunk's slices read zero rows past n */
            /* the split (memory-bound: X read, the [hi | lo] parts written) and the products
             * (compute-bound, their operand loads pipelined behind the MMAs) take turns on the SMs:
             * their times add (the second stream's overlap saved 3% at 1M x 512 on the H100: 8.53
             * ms against 8.81 on one stream, bench_pca at f10d019). A chunk's GEMM runs B x tiles
             * output tiles in waves over the SMs, each wave the time of a 128 x 128 tile's rs-deep
             * k loop (smaller tiles, at small d, are no faster: their k loop is latency-bound) */
            const double fl = 4 * rows * dp * dp, by = n * d * 4 + rows * 2 * dp * 4;
            const double la = 4 * chunks + folds + 10;
            const double waves = ceil(B * tiles / (double)e->dev->sm_count);
            const double tc = chunks * waves * e->dev->sm_count * 2 * 128 * 128 * rs / rate, tm = by / bw;
            nd = fli_node(e, 0, "scatter",
                          "one pass over X: shifted tf32 parts, a batched TF32 GEMM per chunk", 1);
            fli_leaf(e, nd, tc + tm + la * lau, fl, by, la,
                     tc > tm ? FL_INFO_BOUND_COMPUTE : FL_INFO_BOUND_MEMORY, tier);
        }
        const double p = (double)fli_topk_block((int64_t)k);
        const int topk = fli_topk_on_gpu((int64_t)k, (int64_t)n, (int64_t)d); /* as decomp.c decides */
        if (topk) {
            double steps = fli_p_num(e, "eigh_steps"), degree = fli_p_num(e, "eigh_degree"), s0, m0;
            topk_default(k, &s0, &m0);
            if (!isfinite(steps) && !isfinite(degree)) {
                steps = s0, degree = m0;
                fli_note(e, "top-k eigh: steps and filter degrees of a spectrum falling as 1/i assumed (pass "
                            "eigh_steps=S eigh_degree=M, what the fit logs, to model others)");
            } else if (!isfinite(degree)) {
                degree = steps * (s0 > 0 ? m0 / s0 : 4); /* the default's degree per step */
            } else if (!isfinite(steps)) {
                steps = ceil(degree / (s0 > 0 ? m0 / s0 : 4));
            }
            /* Rayleigh-Ritz and CholeskyQR2 calls: the start's and each step's */
            const double rr = steps + 1;
            const double efl =
                degree * 2 * d * d * p + rr * (2 * d * d * p + 10 * d * p * p) + steps * 2 * d * p * p;
            const double hfl = rr * 11 * p * p * p; /* syevd of p x p (~9 p^3) + the residuals' U^T G U */
            const double ela = 25 + 28 * rr + 4 * steps + degree, syncs = 3 + 4 * rr;
            nd = fli_node(e, 0, "eigh (top-k subspace iteration)", "the d x d scatter's leading eigenpairs",
                          1);
            fli_leaf(e, nd,
                     ela * lau + syncs * c[D_SYNC] * 1e-3 + efl / (c[D_RATE2] * 1e9) +
                         hfl / (c[D_HOST] * 1e6),
                     efl, d * d * 8 * 2 + rr * 6 * d * p * 8 + degree * (d * d + 2 * d * p) * 8, ela,
                     FL_INFO_BOUND_LATENCY, tier);
            e->r->iterations = steps;
        } else {
            const double efl = 4 * d * d * d;
            nd = fli_node(e, 0, "eigh (float64 syevd)", "the d x d scatter's eigenpairs", 1);
            /* latency: syevd's per-column steps at eig_us; past 64 columns a step of its own (the
             * fits at fa41dd9: ~9 us a column up to d = 64, 14 at 128; the threshold was 32 at first,
             * which put every d = 64 point 7-37% high) */
            fli_leaf(e, nd, d * c[D_LAT] * 1e-3 + (d > 64 ? c[D_SYEVD] : 0) + efl / (c[D_RATE2] * 1e9), efl,
                     d * d * 8 * 4, d, FL_INFO_BOUND_LATENCY, tier);
        }
    } else {
        const double l = k + over, passes = 2 * it + 2;
        /* cuBLAS's SGEMM taken to compute whole 64-wide tiles: l (and a Gram's l x l) costs as lt */
        const double tl = ceil(l / 64), lt = 64 * tl;
        /* decomp_la.c builds the centred copy Xc for both solvers (TruncatedSVD: for the total and
         * the projections' variances): a copy, two rank-1 updates, the column means and the norm
         * read or write X's size 8 times; TruncatedSVD then forms Xc V (n x k) and its Gram matrix */
        const double cby = 8 * n * d * 4 + (is_pca ? 0 : n * d * 4 + 2 * n * k * 4);
        const double fl = passes * 2 * n * d * lt + (is_pca ? 0 : 2 * n * d * k + 2 * n * k * k);
        /* X (or Xc) read by every product at bw_gbs; the n x l block each writes (M Z) or reads
         * (M^T Y) at blk_gbs, the rate of the thin blocks' operations */
        const double by = passes * n * d * 4 + cby, bby = passes * n * l * 4, blk = c[D_BLK] * 1e6;
        const double tc = fl / rate, tm = by / bw + bby / blk;
        nd = fli_node(e, 0, "products with X", "2 n_iter + 2 tall-skinny GEMMs, the centred copy of X first",
                      1);
        fli_leaf(e, nd, (tc > tm ? tc : tm) + passes * 2 * lau, fl, by + bby, passes * 2,
                 tc > tm ? FL_INFO_BOUND_COMPUTE : FL_INFO_BOUND_MEMORY, tier);
        /* CholeskyQR2 of every block (linalg.c's fli_la_cholqr2), two passes of a Gram matrix, a
         * Cholesky of l x l and a triangular solve; 6 rows lt^2 flops at orth_tflops (the Gram's
         * whole tiles), or its streaming at blk_gbs: per pass and row, the Gram reads 128 floats
         * per tile of its tl x tl (a tile's time does not shrink with l), the solve reads and
         * writes l; the larger of the two. Three host round trips each (the two Choleskys' info,
         * the first pass's pivots) at sync_us; each Cholesky takes a dependent step per column,
         * about a launch's time (2 l), + ~10 launches. The Householder QR of B^T: 4 d lt^2 flops */
        const double orths = passes, ofl = ((it + 1) * n + it * d) * 6 * lt * lt + 4 * d * lt * lt;
        const double ola = orths * (10 + 2 * l);
        const double oby = ((it + 1) * n + it * d) * 2 * (128 * tl * tl + 2 * l) * 4;
        const double oc = ofl / (c[D_RATE2] * 1e9), om = oby / blk;
        nd = fli_node(e, 0, "orthonormalise", "CholeskyQR2 of each block, Householder QR of B^T", 1);
        fli_leaf(e, nd, (oc > om ? oc : om) + orths * 3 * c[D_LAT] * 1e-3 + ola * lau, ofl, oby, ola,
                 FL_INFO_BOUND_LATENCY, tier);
        const double hfl = 20 * l * l * l; /* the l x l SVD (dgesdd) on the host */
        nd = fli_node(e, 0, "small SVD (host)", "the l x l SVD of R_b^T", 1);
        fli_leaf(e, nd, hfl / (c[D_HOST] * 1e6), hfl, 0, 0, FL_INFO_BOUND_COMPUTE, tier);
    }
    e->r->peak_memory_bytes =
        (uint64_t)(rnd ? n * d * 4 * (is_pca ? 2 : 1) + (n + d) * (k + over) * 4 * 3
                       : n * d * 4 + 8192 * ceil(d / 32) * 32 * 2 * 4 * 2 + d * d * 8 * 3);
    return 0;
}
