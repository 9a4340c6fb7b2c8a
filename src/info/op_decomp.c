/*
 * op_decomp.c — cost models of PCA and TruncatedSVD on the GPU, for the
 * solvers that run there (routing: route_decomp.c): PCA's covariance_eigh
 * (backends/cuda/pca_cuda.cu) and the randomized range finder of PCA and
 * TruncatedSVD (algo/decomp_la.c over the GPU's fli_la). X in device
 * memory, float32; the other solvers run on the CPU (ops.c models them).
 *
 * covariance_eigh, one pass over X (coefficients fixed_ms, bw_gbs,
 * rate_tflops, launch_us, eig_us, eig_tflops):
 *   scatter   X read once, each chunk's shifted rows written as tf32
 *             parts [hi | lo] (d padded to 32) and read by the products,
 *             at bw_gbs; one strided-batched TF32 GEMM per chunk of 8 x
 *             1024 rows gives [hi^T hi; lo^T hi]: 4 n dp^2 flops at
 *             rate_tflops; the larger of the two;
 *   launches  a few per chunk, at launch_us;
 *   eigh      few components (p = k + max(k, 16), 2 p <= d <= n): the
 *             top-k subspace iteration (algo/linalg_topk.c) in float64,
 *             ~60 filter degrees of d x d x p products and ~6
 *             Rayleigh-Ritz steps, ~300 + 3 p launches and host round trips
 *             at launch_us, each step's p x p syevd on one host thread (9 p^3
 *             flops at host_gflops); else cuSOLVER float64 syevd of the
 *             d x d scatter, eig_us per column (its panel steps) + 4 d^3
 *             flops; device flops at eig_tflops.
 * randomized, l = n_components + n_oversamples columns, I power
 * iterations (fixed_ms, bw_gbs, rate_tflops, launch_us, sync_us,
 * orth_tflops):
 *   products  2 I + 2 passes over X (Y = X Omega; I x (X^T Y, X Z); X^T Q),
 *             each 2 n d l flops and n d floats read: the larger of the
 *             two; PCA first writes and reads a centred copy of X;
 *   orth      CholeskyQR2 of every block (2 I + 2 of them): Gram and
 *             triangular solves, 6 rows l^2 flops, at orth_tflops, the
 *             block read and written ~6 times at bw_gbs, two
 *             host round trips each (the Cholesky's info) at sync_us,
 *             ~10 + l / 2 launches (the Cholesky's panels);
 *   host      the l x l SVD, 20 l^3 flops at host_gflops (one thread).
 */
#include <math.h>
#include <string.h>

#include "info/info_internal.h"

enum { D_FIXED, D_BW, D_RATE, D_LAUNCH, D_LAT, D_RATE2, D_HOST, D_NCOEF };
static const char *const cov_names[D_NCOEF] = {"fixed_ms", "bw_gbs",     "rate_tflops", "launch_us",
                                               "eig_us",   "eig_tflops", "host_gflops"};
static const char *const rnd_names[D_NCOEF] = {"fixed_ms", "bw_gbs",      "rate_tflops", "launch_us",
                                               "sync_us",  "orth_tflops", "host_gflops"};

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
    c[D_HOST] = 5; /* one host thread's LAPACK on small matrices */
}

int fli_decomp_coefs(const char *variant, const fl_info_device *dev, const char **names, double *def)
{
    const int rnd = decomp_variant(variant);
    if (rnd < 0 || !dev->is_gpu)
        return -1;
    double c[D_NCOEF];
    decomp_roofline(rnd, dev, c);
    return fli_coefs_out(rnd ? rnd_names : cov_names, c, D_NCOEF, names, def);
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
    const double *c =
        fli_calib_coefs(e, e->op->pub.name, var, fli_dtype_canon(e->dtype), def, D_NCOEF, &tier, &entry);
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
        const double dp = ceil(d / 32) * 32;
        const double fl = 4 * n * dp * dp, by = n * d * 4 + 2 * n * 2 * dp * 4;
        const double chunks = ceil(n / 8192), la = 3 * chunks + 10;
        const double tc = fl / rate, tm = by / bw;
        nd = fli_node(e, 0, "scatter", "one pass over X: shifted tf32 parts, a batched TF32 GEMM per chunk",
                      1);
        fli_leaf(e, nd, (tc > tm ? tc : tm) + la * lau, fl, by, la,
                 tc > tm ? FL_INFO_BOUND_COMPUTE : FL_INFO_BOUND_MEMORY, tier);
        const double p = k + (k > 16 ? k : 16);
        const int topk = 2 * p <= d && d <= n;
        const double efl = topk ? 60 * 2 * d * d * p + 6 * 10 * d * p * p : 4 * d * d * d;
        /* the top-k solver's Rayleigh-Ritz: a p x p syevd on one host thread per step (~6 steps) */
        const double hfl = topk ? 6 * 9 * p * p * p : 0;
        nd = fli_node(e, 0, topk ? "eigh (top-k subspace iteration)" : "eigh (float64 syevd)",
                      "the d x d scatter's leading eigenpairs", 1);
        /* latency: the top-k solver's launches (~120 of the filters, ~30 + p / 2 per step: CholeskyQR
         * panels, Rayleigh-Ritz) at launch_us; syevd's per-column steps at eig_us */
        const double ela = topk ? 300 + 3 * p : d;
        fli_leaf(e, nd,
                 (topk ? ela * c[D_LAUNCH] : d * c[D_LAT]) * 1e-3 + efl / (c[D_RATE2] * 1e9) +
                     hfl / (c[D_HOST] * 1e6),
                 efl, d * d * 8 * 4, ela, FL_INFO_BOUND_LATENCY, tier);
    } else {
        const double l = k + over, passes = 2 * it + 2;
        const double fl = passes * 2 * n * d * l, by = passes * n * d * 4 + (is_pca ? 3 * n * d * 4 : 0);
        const double tc = fl / rate, tm = by / bw;
        nd = fli_node(e, 0, "products with X", "2 n_iter + 2 tall-skinny GEMMs (PCA: a centred copy first)",
                      1);
        fli_leaf(e, nd, (tc > tm ? tc : tm) + passes * 2 * lau, fl, by, passes * 2,
                 tc > tm ? FL_INFO_BOUND_COMPUTE : FL_INFO_BOUND_MEMORY, tier);
        /* each CholeskyQR pass: a Gram matrix, a Cholesky of l x l (panels: launches ~ l / 2) and a
         * triangular solve */
        const double orths = passes, ofl = (it + 1) * 6 * n * l * l + it * 6 * d * l * l + 4 * d * l * l;
        const double ola = orths * (10 + l / 2);
        /* the blocks read and written by the Gram products and the solves: ~6 times per CholeskyQR2 */
        const double oby = ((it + 1) * n + it * d) * l * 4 * 6;
        nd = fli_node(e, 0, "orthonormalise", "CholeskyQR2 of each block, Householder QR of B^T", 1);
        fli_leaf(e, nd, ofl / (c[D_RATE2] * 1e9) + oby / bw + orths * 2 * c[D_LAT] * 1e-3 + ola * lau, ofl,
                 oby, ola, FL_INFO_BOUND_LATENCY, tier);
        const double hfl = 20 * l * l * l; /* the l x l SVD (dgesdd) on the host */
        nd = fli_node(e, 0, "small SVD (host)", "the l x l SVD of R_b^T", 1);
        fli_leaf(e, nd, hfl / (c[D_HOST] * 1e6), hfl, 0, 0, FL_INFO_BOUND_COMPUTE, tier);
    }
    e->r->peak_memory_bytes =
        (uint64_t)(rnd ? n * d * 4 * (is_pca ? 2 : 1) + (n + d) * (k + over) * 4 * 3
                       : n * d * 4 + 8192 * ceil(d / 32) * 32 * 2 * 4 * 2 + d * d * 8 * 3);
    return 0;
}
