/*
 * op_linalg.c — cost models of the linear-algebra ops: GEMM and its
 * precision variants, cov/gram/ab GEMMs, eigh and polar variants, CholQR2,
 * the split of a matrix into lower-precision parts; and the variant
 * families behind pareto and the tolerance-driven choice.
 *
 * None of these run in flashlib yet. Their runtimes start at roofline
 * (device peaks x efficiency); the plain GEMM precisions are calibrated
 * against cuBLAS through PyTorch by bench/calib (said in every estimate
 * that uses such an entry). Expected residuals are documented models (RMS
 * relative error of C = A B for random N(0, 1) inputs) until the variants
 * exist and the residuals are measured:
 *   input rounding   sqrt(2/3) 2^-p, p = significand bits the variant keeps
 *                    of each input (tf32 11, bf16 8, fp16 11; a split into
 *                    parts keeps the parts' bits together), 0 when the data
 *                    already has that precision;
 *   accumulation     2^-24 log2(K) in fp32 (2^-53 log2(K) in fp64), the
 *                    growth of blocked summation on random-sign terms;
 * combined as sqrt(in^2 + acc^2). Ozaki scheme II with s int8 moduli
 * (algo/linalg_ozaki.h): each operand keeps p = fli_ozaki_bits(K, s) bits
 * relative to its row / column maximum; the measured error on N(0, 1)
 * data is 1.6-1.9 x 2^-p for K = 64..2000 (tests/python/test_linalg.py
 * measures the same), modelled as 2 sqrt(2/3) 2^-p + the fp64
 * accumulation term. num_moduli defaults to the library's 16.
 */
#include <math.h>
#include <string.h>

#include "algo/linalg_ozaki.h"
#include "info/info_internal.h"
#include "route/route.h"

/* ---- GEMM variants ------------------------------------------------------- */

typedef struct gemm_var {
    const char *name;
    fl_info_prec prec; /* arithmetic of the products            */
    double products;   /* base GEMMs per call                   */
    double in_bytes;   /* bytes per element the products read   */
    int parts;         /* parts per operand of a split (0: none) */
    double eff;        /* rate relative to a plain base GEMM    */
    double bits;       /* significand bits kept of each input   */
    int acc64;         /* accumulates in fp64                    */
    int sched;         /* GEMM_SCHED_*: how cuBLAS's kernels for it run */
    const char *what;
} gemm_var;

/* How the kernels cuBLAS runs for a precision schedule their tiles on
 * Hopper (from the kernels' names in the calibration sweep):
 *   PERSISTENT  bf16/fp16: persistent cooperative kernels (many tile shapes)
 *               that overlap a tile's epilogue with the next one's loads;
 *               fp32 SIMT and fp64 behave alike in the sweep's residuals;
 *   SEGMENT_K   tf32: non-persistent wgmma kernels (64x128 ... 256x128
 *               tiles) whose epilogue (C stored from registers) is not
 *               overlapped: each wave adds the store of its tiles' C at
 *               the memory bandwidth; when the output tiles fill the SMs
 *               they balance K segments over the SMs instead of waves
 *               ("segment-K": stream-K-like, partial tiles fixed up
 *               through a workspace). Narrow products run older mma.sync
 *               kernels with a separate split-K reduction, as the other
 *               precisions' split-K below;
 *   DMMA        fp64: as PERSISTENT, over the fp64 kernels' smaller tiles
 *               (128x64 and 64x128 down to 32x32: narrow products get more
 *               tiles than the 64x64 floor of the others). */
enum { GEMM_SCHED_PERSISTENT, GEMM_SCHED_SEGMENT_K, GEMM_SCHED_DMMA };

static const gemm_var gemm_vars[] = {
    {"gemm_fp64", FL_INFO_PREC_FP64_TC, 1, 8, 0, 1.0, 53, 1, GEMM_SCHED_DMMA,
     "fp64 (DMMA tensor cores where present)"},
    {"gemm_fp32", FL_INFO_PREC_FP32, 1, 4, 0, 1.0, 24, 0, GEMM_SCHED_PERSISTENT,
     "fp32 on the CUDA cores, tensor cores off"},
    {"gemm_tf32", FL_INFO_PREC_TF32, 1, 4, 0, 1.0, 11, 0, GEMM_SCHED_SEGMENT_K,
     "tf32 tensor cores, fp32 accumulation"},
    {"gemm_3xtf32", FL_INFO_PREC_TF32, 3, 4, 2, 1.0, 22, 0, GEMM_SCHED_PERSISTENT,
     "fp32 split into tf32 hi + lo, 3 products"},
    {"gemm_bf16", FL_INFO_PREC_BF16, 1, 2, 1, 1.0, 8, 0, GEMM_SCHED_PERSISTENT,
     "inputs cast to bf16, fp32 accumulation"},
    {"gemm_3xbf16", FL_INFO_PREC_BF16, 3, 2, 2, 1.0, 16, 0, GEMM_SCHED_PERSISTENT,
     "bf16 hi + lo split, 3 products, one accumulator"},
    {"gemm_fp16", FL_INFO_PREC_FP16, 1, 2, 1, 1.0, 11, 0, GEMM_SCHED_PERSISTENT,
     "inputs cast to fp16, fp32 accumulation"},
    {"gemm_3xfp16", FL_INFO_PREC_FP16, 3, 2, 2, 1.0, 16, 0, GEMM_SCHED_PERSISTENT,
     "fp16 hi + lo split, 3 products (lo parts lose bits to fp16's range)"},
    {"gemm_fp16x9", FL_INFO_PREC_FP16, 9, 2, 3, 1.0, 33, 0, GEMM_SCHED_PERSISTENT,
     "three fp16 parts per operand, all 9 products"},
    {"gemm_fp16x3_kahan", FL_INFO_PREC_FP16, 3, 2, 2, 0.7, 22, 0, GEMM_SCHED_PERSISTENT,
     "fp16 hi + lo, 3 products, Kahan-compensated outer sum"},
    {"gemm_tf32x6", FL_INFO_PREC_TF32, 6, 4, 3, 1.0, 33, 0, GEMM_SCHED_PERSISTENT,
     "fp64 inputs in three tf32 parts, the 6 products of order <= 2"},
    {"gemm_ozaki_int8", FL_INFO_PREC_INT8, 0, 1, 0, 0.75, 53, 1, GEMM_SCHED_PERSISTENT,
     "Ozaki scheme II: num_moduli int8 GEMMs + split + CRT reconstruction"},
};
#define N_GEMM_VARS ((int)(sizeof gemm_vars / sizeof *gemm_vars))
/* Rows of gemm_vars the code singles out, by index (no name comparisons
 * on the estimate's path). */
enum {
    GV_FP64 = 0,
    GV_FP32 = 1,
    GV_TF32 = 2,
    GV_3XTF32 = 3,
    GV_BF16 = 4,
    GV_3XBF16 = 5,
    GV_FP16 = 6,
    GV_3XFP16 = 7,
    GV_FP16X9 = 8,
    GV_KAHAN = 9,
    GV_TF32X6 = 10,
    GV_OZAKI = 11
};
#define GV(i) (&gemm_vars[GV_##i])

_Static_assert(GV_OZAKI == N_GEMM_VARS - 1, "GV_* indexes follow the rows of gemm_vars");

static const gemm_var *gemm_find(const char *name)
{
    for (int i = 0; i < N_GEMM_VARS; i++)
        if (!strcmp(gemm_vars[i].name, name))
            return &gemm_vars[i];
    return NULL;
}

enum { G_FIXED, G_RATE, G_BW, G_L2, G_WAVE, G_NCOEF };
static const char *const gemm_coef_names[G_NCOEF] = {"fixed_us", "rate_tflops", "bw_gbs", "l2_gbs",
                                                     "wave_us"};

static void gemm_roofline(const gemm_var *v, const fl_info_device *dev, double *c)
{
    c[G_FIXED] = dev->launch_us * 2;
    c[G_RATE] = fli_rate(dev, v->prec, FLI_CLASS_GEMM) * v->eff;
    c[G_BW] = fli_bw(dev, FLI_CLASS_GEMM);
    /* operand loads of the output tiles (L2 to shared memory) */
    c[G_L2] = 4 * fli_bw(dev, FLI_CLASS_GEMM);
    /* a wave of tiles: pipeline fill and epilogue, not overlapped */
    c[G_WAVE] = 1.0;
}

/* The kernel cuBLAS runs for an M x K x N product, approximated as the
 * fastest of a few tile shapes and split-K factors (its heuristic picks
 * among such kernels): whole waves of output tiles over the SMs, split
 * along K (chunks of >= 128) when the tiles alone leave SMs idle; a tile
 * takes the longer of its multiply-adds at the sustained rate and of
 * loading its A and B panels (TM + TN rows of K elements) from L2, and a
 * wave adds its pipeline fill and epilogue (wave_ms); split-K adds the
 * partial sums' traffic and the launch of the reduction (launch_ms).
 * GEMM_SCHED_SEGMENT_K (see the enum) adds each wave's store of C at the
 * memory bandwidth, and for outputs of at least one tile per SM the
 * balanced schedule over its wgmma tiles: every SM runs an equal share of
 * the tiles' 32-deep K steps, touches one tile more than the whole ones
 * it owns when the tiles do not divide evenly, and those partial tiles
 * are written and read back once through the workspace.
 * Returns ms; *bound: compute or memory. */
static const int gemm_tiles[][2] = {{256, 128}, {128, 256}, {128, 128}, {128, 64}, {64, 128}, {64, 64}};
static const int gemm_splits[] = {1, 2, 3, 4, 6, 8, 12, 16};
static const int segk_tiles[][2] = {{256, 128}, {128, 256}, {128, 128}, {64, 128}};
static const int dmma_tiles[][2] = {{128, 64}, {64, 128}, {64, 64}, {64, 32}, {32, 64}, {32, 32}};

typedef struct gemm_geom {
    double M, K, N, es;  /* shape, bytes per input element */
    double rate, l2, bw; /* per ms: FLOP, L2 bytes, HBM bytes (whole device) */
    double wave_ms, launch_ms, sms;
    int sched;
} gemm_geom;

static double gemm_tiles_ms(const gemm_geom *g, fl_info_bound *bound, int *split)
{
    const double M = g->M, K = g->K, N = g->N, es = g->es, sms = g->sms;
    const double rate_sm = g->rate / sms, l2_sm = g->l2 / sms;
    const int segk = g->sched == GEMM_SCHED_SEGMENT_K;
    double best = INFINITY;
    int best_l2 = 0, best_s = 1;
    const int dmma = g->sched == GEMM_SCHED_DMMA;
    const int(*tile)[2] = dmma ? dmma_tiles : gemm_tiles;
    const size_t n_tiles =
        dmma ? sizeof dmma_tiles / sizeof *dmma_tiles : sizeof gemm_tiles / sizeof *gemm_tiles;
    for (size_t i = 0; i < n_tiles; i++) {
        const double tm = tile[i][0], tn = tile[i][1];
        const double tiles = ceil(M / tm) * ceil(N / tn);
        for (size_t j = 0; j < sizeof gemm_splits / sizeof *gemm_splits; j++) {
            const double s = gemm_splits[j];
            if (s > 1 && (tiles >= sms || ceil(K / s) < 128))
                break;
            const double kc = ceil(ceil(K / s) / 32) * 32;
            const double tc = 2 * tm * tn * kc / rate_sm, tl = (tm + tn) * kc * es / l2_sm;
            const double waves = ceil(tiles * s / sms);
            double t = waves * ((tc > tl ? tc : tl) + g->wave_ms);
            if (segk) /* C (or the partial sums) stored per wave, not overlapped */
                t += waves * fmin(tiles * s, sms) * tm * tn * 4 / g->bw;
            if (s > 1)
                t += M * N * 4 * (s + 1) / g->bw + g->launch_ms;
            if (t < best) {
                best = t;
                best_l2 = tl > tc;
                best_s = (int)s;
            }
        }
    }
    for (size_t i = 0; segk && i < sizeof segk_tiles / sizeof *segk_tiles; i++) {
        const double tm = segk_tiles[i][0], tn = segk_tiles[i][1];
        const double tiles = ceil(M / tm) * ceil(N / tn);
        if (tiles < sms)
            continue;
        const double tc = 2 * tm * tn * 32 / rate_sm, tl = (tm + tn) * 32 * es / l2_sm;
        const int uneven = fmod(tiles, sms) != 0;
        const double touched = ceil(tiles / sms) + uneven;
        double t = ceil(tiles * ceil(K / 32) / sms) * (tc > tl ? tc : tl) +
                   touched * (g->wave_ms + sms * tm * tn * 4 / g->bw);
        if (uneven)
            t += sms * tm * tn * 4 * 2 / g->bw;
        if (t < best) {
            best = t;
            best_l2 = tl > tc;
            best_s = 1;
        }
    }
    *bound = best_l2 ? FL_INFO_BOUND_MEMORY : FL_INFO_BOUND_COMPUTE;
    if (split)
        *split = best_s;
    return best;
}

/* ---- the split variants on the GPU ------------------------------------------
 *
 * fl_gemm runs a split variant as a pipeline (backends/cuda/linalg_cuda.cu,
 * split_gemm and ozaki_gemm): memory-bound passes (row maxima and scale
 * exponents for the fp16 formats, the split of A and B into parts, the
 * products' float32 sums, Kahan or float64 combines, the epilogue that
 * writes C; Ozaki: residues per modulus, their int32 sums folded to digits,
 * the CRT rebuild), several cuBLAS products of the parts, each the base
 * precision's GEMM (3xtf32 runs tf32 products, 3xfp16 fp16 ones...), and
 * a host cost per call, per kernel launch and per cuBLAS call. Calls back
 * to back overlap the host's work for one call with the GPU's for the one
 * before, so a call costs the longer of the two:
 *   host = fixed_us + kernels x launch_us + cuBLAS calls x blas_us
 *   gpu  = pass bytes / bw_gbs + kernels x gap_us
 *          + prod_eff x (the products, as the base variant's model)
 * The products use the base variant's coefficients (base_*): fit.py copies
 * them from the base variant's calibration entry on the same device, so a
 * split variant fits only its own six and its products move with its base
 * entry. Ozaki's int8 products have no base entry: its base_* are its own
 * (fitted) and prod_eff stays 1. */
enum { S_FIXED, S_LAUNCH, S_BLAS, S_BW, S_L2, S_GAP, S_EFF, S_BASE, S_NCOEF = S_BASE + G_NCOEF };
static const char *const split_coef_names[S_NCOEF] = {
    "fixed_us", "launch_us",     "blas_us",          "pass_bw_gbs", "pass_l2_gbs", "gap_us",
    "prod_eff", "base_fixed_us", "base_rate_tflops", "base_bw_gbs", "base_l2_gbs", "base_wave_us"};

/* The row whose products a split variant runs (NULL: Ozaki's int8). */
static const gemm_var *split_base(const gemm_var *v)
{
    if (v == GV(3XTF32) || v == GV(TF32X6))
        return GV(TF32);
    if (v == GV(3XBF16))
        return GV(BF16);
    if (v == GV(3XFP16) || v == GV(FP16X9) || v == GV(KAHAN))
        return GV(FP16);
    return NULL;
}

static int is_split(const gemm_var *v)
{
    return v->products > 1 || v == GV(OZAKI);
}

static fl_dtype native_dtype(const gemm_var *v);

static void split_roofline(const gemm_var *v, const fl_info_device *dev, double *c)
{
    c[S_FIXED] = 10;
    c[S_LAUNCH] = dev->launch_us;
    c[S_BLAS] = 2 * dev->launch_us;
    c[S_BW] = fli_bw(dev, FLI_CLASS_STREAM);
    c[S_L2] = 2 * fli_bw(dev, FLI_CLASS_STREAM);
    c[S_GAP] = 1;
    c[S_EFF] = 1;
    const gemm_var *b = split_base(v);
    gemm_roofline(b ? b : v, dev, c + S_BASE);
    /* the base variant's calibration on this device, where there is one */
    const fli_calib_entry *be =
        b ? fli_calib_find("gemm", b->name, fli_dtype_canon(native_dtype(b)), dev->name) : NULL;
    if (be && be->n_coef == G_NCOEF)
        for (int i = 0; i < G_NCOEF; i++)
            c[S_BASE + i] = be->coef[i];
}

int fli_gemm_coefs(const char *variant, const fl_info_device *dev, const char **names, double *def)
{
    const gemm_var *v = gemm_find(variant);
    if (!v || !dev->is_gpu)
        return -1;
    if (is_split(v)) {
        double c[S_NCOEF];
        split_roofline(v, dev, c);
        return fli_coefs_out(split_coef_names, c, S_NCOEF, names, def);
    }
    double c[G_NCOEF];
    gemm_roofline(v, dev, c);
    return fli_coefs_out(gemm_coef_names, c, G_NCOEF, names, def);
}

/* The dtype whose data the variant's products read without conversion. */
static fl_dtype native_dtype(const gemm_var *v)
{
    switch (v->prec) {
    case FL_INFO_PREC_FP64:
    case FL_INFO_PREC_FP64_TC: return FL_DTYPE_F64;
    case FL_INFO_PREC_BF16: return v->parts <= 1 ? FL_DTYPE_BF16 : FL_DTYPE_F32;
    case FL_INFO_PREC_FP16: return v->parts <= 1 ? FL_DTYPE_F16 : FL_DTYPE_F32;
    default: return v == GV(TF32X6) || v == GV(OZAKI) ? FL_DTYPE_F64 : FL_DTYPE_F32;
    }
}

static double data_bits(fl_dtype dt)
{
    switch (dt) {
    case FL_DTYPE_F64: return 53;
    case FL_DTYPE_F16: return 11;
    case FL_DTYPE_BF16: return 8;
    default: return 24;
    }
}

/* Relative errors measured at M = N = K = 8192 on the H100 through fl_gemm,
 * inputs uniform in [-1, 1) (bench/results/gemm_ladder_h100_a86faa6.json),
 * for float32 data and, where the variant is meant for it, float64 data
 * (0: not measured; fp64 on float64 data is the reference itself). They
 * are what the models below miss: tensor cores do not round their float32
 * sums to nearest, so the split variants stop near 1e-5 instead of the
 * 1e-7 of exact float32 accumulation. */
static const struct {
    int var;
    double f32, f64;
} gemm_measured[] = {
    {GV_FP64, 2.53e-8, 0},         {GV_FP32, 1.62e-6, 0},         {GV_TF32, 2.62e-4, 0},
    {GV_3XTF32, 1.92e-5, 1.92e-5}, {GV_BF16, 2.09e-3, 0},         {GV_3XBF16, 9.35e-6, 0},
    {GV_FP16, 2.61e-4, 0},         {GV_3XFP16, 9.69e-6, 0},       {GV_FP16X9, 9.69e-6, 9.69e-6},
    {GV_KAHAN, 9.69e-6, 0},        {GV_TF32X6, 4.83e-6, 4.83e-6}, {GV_OZAKI, 2.53e-8, 3.02e-15},
};

static double gemm_residual_model(const gemm_var *v, double K, fl_dtype dt, double moduli);

/* The expected residual: the measurement at K = 8192 scaled to K by the
 * model's K-dependence, where one exists for this dtype (and, for Ozaki,
 * the default modulus count); else the model. *measured says which. */
static double gemm_residual_src(const gemm_var *v, double K, fl_dtype dt, double moduli, int *measured)
{
    const int vi = (int)(v - gemm_vars);
    double m = 0;
    for (size_t i = 0; i < sizeof gemm_measured / sizeof *gemm_measured; i++)
        if (gemm_measured[i].var == vi) {
            /* float64 data through a variant of fewer bits than float32
             * keeps float32's figure: the parts, not the data, set it */
            const double f64 = gemm_measured[i].f64 > 0 || v == GV(FP64) || v == GV(OZAKI)
                                   ? gemm_measured[i].f64
                                   : gemm_measured[i].f32;
            m = dt == FL_DTYPE_F64 ? f64 : dt == FL_DTYPE_F32 ? gemm_measured[i].f32 : 0;
        }
    if (v == GV(OZAKI) && moduli != FLI_OZAKI_DEFAULT_MODULI)
        m = 0;
    const double model = gemm_residual_model(v, K, dt, moduli);
    if (measured)
        *measured = m > 0;
    if (!(m > 0))
        return model;
    const double at = gemm_residual_model(v, 8192, dt, moduli);
    return at > 0 && isfinite(model) ? m * model / at : m;
}

static double gemm_residual(const gemm_var *v, double K, fl_dtype dt, double moduli)
{
    return gemm_residual_src(v, K, dt, moduli, NULL);
}

static double gemm_residual_model(const gemm_var *v, double K, fl_dtype dt, double moduli)
{
    double lk = log2(K > 2 ? K : 2);
    if (v == GV(OZAKI)) {
        const int p = fli_ozaki_bits((int64_t)K, (int)moduli);
        return p < 1 ? INFINITY : 2 * sqrt(2.0 / 3.0) * pow(2.0, -p) + pow(2.0, -53) * lk;
    }
    double acc = v->acc64 ? pow(2.0, -53) * lk : pow(2.0, -24) * lk;
    if (v == GV(KAHAN))
        acc = pow(2.0, -24);
    double in = v->bits < data_bits(dt) ? sqrt(2.0 / 3.0) * pow(2.0, -v->bits) : 0;
    return sqrt(in * in + acc * acc);
}

/* Adds the nodes of one GEMM C(MxN) = A(MxK) B(KxN) with variant v under
 * parent. out_bytes: bytes per element of C. Returns the runtime. */
/* One cuBLAS product (batch of them, side by side) of a split variant's
 * parts: the base row b's tile model and memory term with its coefficients
 * cb (G_*), float32 (int32) sums out, plus the base's per-call cost. */
static double part_product_ms(const fl_info_device *dev, const gemm_var *b, double M, double K, double N,
                              double batch, const double *cb, double hit, double beta1,
                              double sum_ms_per_byte, fl_info_bound *bound, double *kernels)
{
    /* the parts read as the base variant's kernels read their operands; the float32 (int32) sums
     * written, and read back by the share beta1 of the products that add into them, at the split's
     * own rate (sum_ms_per_byte): the base kernels write 16-bit C once */
    const double in = b->in_bytes;
    const double tm = batch * ((M * K + K * N) * in * (hit / cb[G_L2] + (1 - hit) / cb[G_BW]) * 1e-6 +
                               M * N * 4 * (1 + beta1) * sum_ms_per_byte);
    const gemm_geom g = {M * batch,
                         K,
                         N,
                         in,
                         cb[G_RATE] * 1e9,
                         cb[G_L2] * 1e6,
                         cb[G_BW] * 1e6,
                         cb[G_WAVE] * 1e-3,
                         cb[G_FIXED] * 1e-3,
                         dev->sm_count,
                         b->sched};
    int split = 1;
    const double tc = gemm_tiles_ms(&g, bound, &split);
    *kernels += split > 1 ? 2 : 1; /* split-K: a reduction kernel too */
    if (tm > tc)
        *bound = FL_INFO_BOUND_MEMORY;
    return (tc > tm ? tc : tm) + cb[G_FIXED] * 1e-3;
}

/* The pipeline of a split variant on the GPU (see split_coef_names): its
 * passes, products and launches as linalg_cuda.cu runs them. Adds the
 * nodes under `node`; returns ms. */
static double split_gemm_nodes(fli_est *e, int node, const gemm_var *v, double M, double K, double N,
                               double moduli, const double *c, fl_info_tier tier, double flops_useful)
{
    const double es = (double)fli_dtype_bytes(e->dtype), MN = M * N, IN = (M + N) * K;
    const double kp = ceil(K / 16) * 16, sms = e->dev->sm_count;
    const gemm_var *b = split_base(v);
    /* what a call touches: A and B, their parts (Ozaki: the residues of
     * one pass), the float32 / int32 sums and C; calls back to back on the
     * same data find the share of it that L2 holds there (hit) */
    const double sums = v == GV(OZAKI)    ? 4 * MN * ceil(K / 131056)
                        : v == GV(TF32X6) ? 4 * MN * ceil(kp / 2048) + 8 * MN
                        : v == GV(KAHAN)  ? 12 * MN
                                          : 4 * MN;
    const double ws = IN * es + (M + N) * kp * (b ? v->parts * b->in_bytes : 16) + sums + es * MN;
    const double hit = ws > 0 && (double)e->dev->l2_bytes < ws ? (double)e->dev->l2_bytes / ws : 1;
    double pre = 0, comb = 0, kern = 0, blas = 0, prod = 0, pk = 0;
    const double pbyte = (hit / c[S_L2] + (1 - hit) / c[S_BW]) * 1e-6; /* ms per byte of the passes */
    /* products after the first add into one float32 sum (COMB_ACC), read in their epilogue */
    const double beta1 =
        v == GV(OZAKI) || v == GV(TF32X6) || v == GV(KAHAN) ? 0 : (v->products - 1) / v->products;
    fl_info_bound pb = FL_INFO_BOUND_COMPUTE;
    if (v->prec == FL_INFO_PREC_FP16 || v == GV(OZAKI)) { /* row maxima, scale exponents (+ memsets) */
        pre += IN * es;
        kern += 6;
    }
    if (v == GV(OZAKI)) {
        /* residues of every modulus, made in passes of G moduli that fit
         * 4 GiB; K in nb chunks (one batched int8 GEMM per modulus) when
         * the output alone has fewer than two tiles per SM */
        const double per_mod = (M + N) * kp;
        double G = floor(4294967296.0 / (per_mod > 1 ? per_mod : 1));
        G = G < 1 ? 1 : G > moduli ? moduli : G;
        const double passes = ceil(moduli / G);
        pre += passes * IN * es + moduli * per_mod;
        kern += 2 * passes;
        const double tiles = ceil(M / 128) * ceil(N / 128);
        double nb = ceil(kp / 131056), want = ceil(2 * sms / tiles);
        if (want > floor(kp / 4096))
            want = floor(kp / 4096);
        if (nb < want)
            nb = want;
        const double kc = ceil(ceil(kp / nb) / 16) * 16, full = floor(kp / kc), rem = kp - full * kc;
        nb = full + (rem > 0);
        prod =
            moduli *
            ((full > 0 ? part_product_ms(e->dev, v, M, kc, N, full, c + S_BASE, hit, beta1, pbyte, &pb, &pk)
                       : 0) +
             (rem > 0 ? part_product_ms(e->dev, v, M, rem, N, 1, c + S_BASE, hit, beta1, pbyte, &pb, &pk)
                      : 0));
        blas += moduli * ((full > 0) + (rem > 0));
        pk *= moduli;
        /* int32 sums written and folded into digits, the CRT's read of the digits and write of C */
        comb += moduli * (nb * 4 + 1) * MN + moduli * MN + es * MN;
        kern += moduli + 1;
    } else {
        const double np = v->products;
        pre += IN * (es + v->parts * b->in_bytes); /* the split: A and B read, their parts written */
        kern += 2;
        if (v == GV(TF32X6)) {
            /* each product in float32 over K chunks of 2048 (a batched GEMM),
             * the chunks' planes added into a float64 sum */
            const double kc = kp < 2048 ? kp : 2048, full = floor(kp / kc), rem = kp - full * kc;
            const double nb = full + (rem > 0);
            prod =
                np *
                ((full > 0
                      ? part_product_ms(e->dev, b, M, kc, N, full, c + S_BASE, hit, beta1, pbyte, &pb, &pk)
                      : 0) +
                 (rem > 0 ? part_product_ms(e->dev, b, M, rem, N, 1, c + S_BASE, hit, beta1, pbyte, &pb, &pk)
                          : 0));
            blas += np * ((full > 0) + (rem > 0));
            pk *= np;
            comb += np * (nb * 4 + 8) * MN + (np - 1) * 8 * MN + 8 * MN + es * MN;
            kern += np + 1;
        } else {
            prod = np * part_product_ms(e->dev, b, M, kp, N, 1, c + S_BASE, hit, beta1, pbyte, &pb, &pk);
            blas += np;
            pk *= np;
            if (v == GV(KAHAN)) /* each product to its own buffer; P += Q with compensation */
                comb += 16 * MN + 20 * MN * (np - 2), kern += np - 1;
            comb += 4 * MN + es * MN; /* the epilogue: the sum read, C written */
            kern += 1;
        }
    }
    prod *= c[S_EFF];
    const double bw = 1e6 / (hit / c[S_L2] + (1 - hit) / c[S_BW]), gap = kern * c[S_GAP] * 1e-3;
    const double gpu = prod + (pre + comb) / bw + gap;
    /* cuBLAS's own launches beyond one per call (split-K reductions) */
    const double host = (c[S_FIXED] + (kern + pk - blas) * c[S_LAUNCH] + blas * c[S_BLAS]) * 1e-3;
    int n = fli_node(e, node, "split inputs", "read A and B (row maxima, split), write their parts", 1);
    fli_leaf(e, n >= 0 ? n : node, pre / bw, 0, pre, 2, FL_INFO_BOUND_MEMORY, tier);
    n = fli_node(e, node, "products", b ? "the parts' GEMMs at the base variant's rate" : "the int8 GEMMs",
                 v->products > 0 ? v->products : moduli);
    fli_leaf(e, n >= 0 ? n : node, prod, flops_useful, 0, blas, pb, tier);
    n = fli_node(e, node, "combine", "the products' sums, the epilogue writing C", 1);
    fli_leaf(e, n >= 0 ? n : node, comb / bw + gap, 0, comb, kern - 2, FL_INFO_BOUND_MEMORY, tier);
    if (host > gpu) {
        n = fli_node(e, node, "host launches", "the host enqueues the kernels more slowly than they run", 1);
        fli_leaf(e, n >= 0 ? n : node, host - gpu, 0, 0, 0, FL_INFO_BOUND_LATENCY, tier);
    }
    return host > gpu ? host : gpu;
}

static double gemm_nodes(fli_est *e, int parent, const gemm_var *v, double M, double K, double N,
                         double out_bytes, double flops_useful, const char *label)
{
    const int split = e->dev->is_gpu && is_split(v);
    double def[S_NCOEF];
    if (split)
        split_roofline(v, e->dev, def);
    else
        gemm_roofline(v, e->dev, def);
    fl_info_tier tier;
    const fli_calib_entry *entry = NULL;
    fl_dtype nat = native_dtype(v);
    const double *c = fli_calib_coefs(e, "gemm", v->name, fli_dtype_canon(nat), def,
                                      split ? S_NCOEF : G_NCOEF, &tier, &entry);
    if (entry)
        e->r->calibration = entry->describe;
    e->r->model_key = v->name;
    if (tier == FL_INFO_TIER_CALIBRATED)
        fli_note(e,
                 v->parts > 1 || v->products > 1 || v == GV(OZAKI)
                     ? "GEMM runtime calibrated against flashlib's fl_gemm on this device"
                     : "GEMM runtime calibrated against cuBLAS through PyTorch on this device (fl_gemm runs "
                       "its products on cuBLAS too)");
    if (!e->r->implemented && tier > FL_INFO_TIER_ROOFLINE && tier != FL_INFO_TIER_CALIBRATED)
        tier = FL_INFO_TIER_ROOFLINE;
    double moduli = fli_p_num(e, "num_moduli");
    if (!isfinite(moduli))
        moduli = FLI_OZAKI_DEFAULT_MODULI;
    double products = v->products > 0 ? v->products : moduli;
    const double es = (double)fli_dtype_bytes(e->dtype);
    int node = fli_node(e, parent, label, v->what, 1);
    if (node < 0)
        node = parent;
    double total = 0;
    if (split) {
        total = split_gemm_nodes(e, node, v, M, K, N, moduli, c, tier, flops_useful);
        if (e->r->expected_residual < 0 || gemm_residual(v, K, e->dtype, moduli) > e->r->expected_residual)
            e->r->expected_residual = gemm_residual(v, K, e->dtype, moduli);
        e->main_prec = v->prec;
        return total;
    }
    /* split / cast of the inputs when the data is not in the products' format */
    int need_split = v->parts > 1 || e->dtype != nat || products > 1;
    if (need_split && v != GV(FP32) && v != GV(TF32) && v != GV(FP64)) {
        double parts = v->parts > 0 ? v->parts : (v->products > 0 ? 1 : moduli);
        double b = (M * K + K * N) * (es + parts * v->in_bytes);
        total += fli_roof_leaf(e, node, "split inputs", "read A and B once, write their parts", 1, 0,
                               FL_INFO_PREC_FP32, FLI_CLASS_STREAM, b, 2, FL_INFO_TIER_ROOFLINE);
    } else if (e->dtype != nat) {
        double b = (M * K + K * N) * (es + v->in_bytes);
        total += fli_roof_leaf(e, node, "convert inputs", "cast A and B to the products' dtype", 1, 0,
                               FL_INFO_PREC_FP32, FLI_CLASS_STREAM, b, 2, FL_INFO_TIER_ROOFLINE);
    }
    /* the products: cuBLAS-like tiles in waves over the SMs (gemm_tiles_ms) */
    double fl = 2 * M * K * N * products;
    double acc_bytes = v->in_bytes == 1 ? 4 : (v->acc64 ? 8 : 4);
    double b = products * ((M * K + K * N) * v->in_bytes + M * N * acc_bytes);
    double rate = c[G_RATE] * 1e9, bw = c[G_BW] * 1e6;
    /* operands and result of one product that fit in L2 stay there from
     * call to call (a stream of GEMMs on the same data, as calibrated) */
    const double ws = (M * K + K * N) * v->in_bytes + M * N * acc_bytes;
    double tc, tm = b / (e->dev->is_gpu && ws <= (double)e->dev->l2_bytes ? c[G_L2] * 1e6 : bw);
    fl_info_bound bc = FL_INFO_BOUND_COMPUTE;
    if (e->dev->is_gpu) {
        const gemm_geom g = {M,
                             K,
                             N,
                             v->in_bytes,
                             rate,
                             c[G_L2] * 1e6,
                             bw,
                             c[G_WAVE] * 1e-3,
                             c[G_FIXED] * 1e-3,
                             e->dev->sm_count,
                             v->sched};
        tc = products * gemm_tiles_ms(&g, &bc, NULL);
    } else {
        double th = e->threads;
        if (isfinite(th) && th >= 1 && th < e->dev->sm_count)
            rate *= th / e->dev->sm_count;
        tc = fl / rate;
    }
    double t = (tc > tm ? tc : tm) + products * c[G_FIXED] * 1e-3;
    fl_info_bound bd = products * c[G_FIXED] * 1e-3 > (tc > tm ? tc : tm)
                           ? FL_INFO_BOUND_LATENCY
                           : (tc > tm ? bc : FL_INFO_BOUND_MEMORY);
    int pn = fli_node(e, node, products > 1 ? "products" : "product",
                      v->products > 1 ? "the base GEMMs of the split" : "one GEMM", products);
    fli_leaf(e, pn >= 0 ? pn : node, t, flops_useful, b, products, bd, tier);
    total += t;
    if (products > 1 || out_bytes != acc_bytes) {
        double ob = M * N * (acc_bytes * (products > 1 && v->in_bytes == 1 ? products : 1) + out_bytes);
        total += fli_roof_leaf(e, node, products > 1 && v->in_bytes == 1 ? "reconstruct (CRT)" : "write C",
                               "combine the partial products into the output", 1, 0, FL_INFO_PREC_FP32,
                               FLI_CLASS_STREAM, ob, 1, FL_INFO_TIER_ROOFLINE);
    }
    if (e->r->expected_residual < 0 || gemm_residual(v, K, e->dtype, moduli) > e->r->expected_residual)
        e->r->expected_residual = gemm_residual(v, K, e->dtype, moduli);
    e->main_prec = v->prec == FL_INFO_PREC_FP64_TC ? FL_INFO_PREC_FP64_TC : v->prec;
    return total;
}

/* The default variant for the data's dtype when neither variant nor tol
 * is given: what a plain matmul of that dtype runs. */
static const gemm_var *default_variant(fl_dtype dt)
{
    switch (dt) {
    case FL_DTYPE_F64: return GV(FP64);
    case FL_DTYPE_BF16: return GV(BF16);
    case FL_DTYPE_F16: return GV(FP16);
    default: return GV(FP32);
    }
}

/* The tolerance rule, shared by every op that takes `tol`: among the
 * variants whose expected residual is <= tol, the one with the smallest
 * estimated runtime (ties to the more accurate). */
static const gemm_var *choose_by_tol(fli_est *e, double M, double K, double N, double tol)
{
    const gemm_var *best = NULL;
    double best_t = INFINITY, best_r = INFINITY;
    double moduli = fli_p_num(e, "num_moduli");
    if (!isfinite(moduli))
        moduli = FLI_OZAKI_DEFAULT_MODULI;
    for (int i = 0; i < N_GEMM_VARS; i++) {
        const gemm_var *v = &gemm_vars[i];
        double res = gemm_residual(v, K, e->dtype, moduli);
        if (res > tol)
            continue;
        /* runtime of the variant alone, on a scratch copy of the tree */
        fl_info_result saved = *e->r;
        double sl = e->link_bytes;
        double t = gemm_nodes(e, -1, v, M, K, N, 4, 2 * M * K * N, v->name);
        *e->r = saved;
        e->link_bytes = sl;
        if (t < best_t * 0.999 || (t <= best_t * 1.001 && res < best_r)) {
            best = v;
            best_t = t;
            best_r = res;
        }
    }
    return best;
}

static int gemm_shape(fli_est *e, double *M, double *K, double *N)
{
    *M = (double)e->shape[0];
    *K = (double)e->shape[1];
    *N = (double)e->shape[2];
    return fli_bytes_ok(e, (*M * *K + *K * *N + *M * *N) * 8 * 9, "A, B, C and their parts") ? 0
                                                                                             : FL_INFO_EINVAL;
}

/* Picks the variant: a fixed op name, variant=, tol=, or the default. */
static const gemm_var *pick(fli_est *e, double M, double K, double N)
{
    const char *opname = e->op->pub.name;
    if (e->variant_override)
        return gemm_find(e->variant_override);
    if (!strncmp(opname, "gemm_", 5))
        return gemm_find(opname);
    int w = fli_p_word(e, "variant");
    if (w > 0)
        return &gemm_vars[w - 1];
    double tol = fli_p_num(e, "tol");
    if (fli_p_given(e, "tol") && isfinite(tol)) {
        const gemm_var *v = choose_by_tol(e, M, K, N, tol);
        if (!v) {
            fli_info_fail(e,
                          "%s: no GEMM variant reaches tol=%g at K=%.0f (the most accurate, gemm_ozaki_int8 "
                          "with more moduli, or gemm_fp64, expect ~%.1e)",
                          opname, tol, K, gemm_residual(GV(FP64), K, e->dtype, 8));
            return NULL;
        }
        return v;
    }
    return default_variant(e->dtype);
}

static void set_route(fli_est *e, const gemm_var *v, const char *why)
{
    fl_info_result *r = e->r;
    fli_join(r->variant, sizeof r->variant, (const char *const[]){v->name, NULL});
    fli_join(r->reason, sizeof r->reason,
             (const char *const[]){why, ": ", v->what,
                                   e->dev->is_gpu
                                       ? " (fl_gemm: the parts' products on cuBLAS)"
                                       : " (fl_gemm on the CPU: the variant's arithmetic through BLAS)",
                                   NULL});
    fli_note(e, "fl_gemm runs this variant; its runtime is the roofline of its products and passes unless "
                "calibrated, its residual a documented model (src/info/op_linalg.c) checked by the tests");
}

static const char *why_variant(fli_est *e)
{
    if (e->variant_override || !strncmp(e->op->pub.name, "gemm_", 5))
        return "variant named";
    if (fli_p_word(e, "variant") > 0)
        return "variant= given";
    if (fli_p_given(e, "tol"))
        return "tol given: the cheapest variant whose expected residual is <= tol";
    return "default for the dtype (no tol)";
}

int fli_est_gemm(fli_est *e)
{
    double M, K, N;
    const char *op = e->op->pub.name;
    double out_bytes = 4;
    if (!strcmp(op, "cov_gemm")) { /* X (n x d): X^T X */
        M = N = (double)e->shape[1];
        K = (double)e->shape[0];
    } else if (!strcmp(op, "gram_gemm")) { /* X X^T */
        M = N = (double)e->shape[0];
        K = (double)e->shape[1];
    } else if (gemm_shape(e, &M, &K, &N)) {
        return FL_INFO_EINVAL;
    }
    if (!fli_bytes_ok(e, (M * K + K * N + M * N) * 8 * 9, "A, B, C and their parts"))
        return FL_INFO_EINVAL;
    const gemm_var *v = pick(e, M, K, N);
    if (!v)
        return FL_INFO_EINVAL;
    set_route(e, v, why_variant(e));
    if (e->dtype == FL_DTYPE_F64)
        out_bytes = 8;
    double fl = 2 * M * K * N;
    if (!strcmp(op, "cov_gemm") || !strcmp(op, "gram_gemm")) {
        /* symmetric output: half the tiles are computed */
        fl = M * K * (N + 1);
        fli_note(e, "symmetric product: modelled as a full GEMM of the upper half's tiles");
    }
    gemm_nodes(e, 0, v, M, K, N, out_bytes, fl, v->name);
    /* a measurement of this exact product (plain GEMMs in their own dtype) */
    if (!e->no_measured && e->dtype == native_dtype(v) && strcmp(op, "cov_gemm") && strcmp(op, "gram_gemm")) {
        int64_t key[6] = {(int64_t)M, (int64_t)K, (int64_t)N, 0, 0, 0};
        const fli_calib_point *pt =
            fli_calib_point_find("gemm", v->name, fli_dtype_canon(e->dtype), e->dev->name, key);
        if (pt)
            fli_scale_to_measured(e, pt->ms);
    }
    e->r->peak_memory_bytes = (uint64_t)((M * K + K * N) * fli_dtype_bytes(e->dtype) + M * N * out_bytes);
    return 0;
}

/* ---- eigh, polar, cholqr2, split_basis ------------------------------------------ */

typedef struct solver_var {
    const char *name;
    const char *what;
    double cubic;       /* flops = cubic x n^3 (eigh) or x m n^2 (polar) */
    double bytes_cubic; /* bytes = bytes_cubic x n^3 (BLAS2 panels)      */
    fl_info_prec prec;
    fli_class cls;
    double launches_per_n; /* launches = launches_per_n x n              */
    double residual;       /* documented model, see the list below          */
    const char *res_doc;
} solver_var;

/* eigh: flop counts are the textbook ones for each method at typical
 * iteration counts (tridiagonal reduction 4/3 n^3 half in BLAS2 + back
 * transformation 2 n^3; Jacobi ~8 sweeps of 4 n^3; QDWH-eig ~50 n^3 in
 * GEMM/QR form; its Newton-Schulz form ~80 n^3 in bf16/tf32 GEMMs). */
static const solver_var eigh_vars[] = {
    {"eigh_cusolver", "divide & conquer (syevd: LAPACK / cuSOLVER), data's precision", 10.0 / 3, 4.0 / 3,
     FL_INFO_PREC_FP32, FLI_CLASS_SOLVER, 0.3, 3.4e-6,
     "measured: ||A V - V diag(w)||_F / ||A||_F 1.4e-6..3.4e-6, float32, n = 1024..8192, H100 "
     "(bench/results/eig_h100_a86faa6.json)"},
    {"eigh_jacobi", "cyclic Jacobi (cuSOLVER syevj on the GPU, own sweeps on the CPU)", 32, 0,
     FL_INFO_PREC_FP32, FLI_CLASS_GEMM, 0.05, 5.1e-3,
     "measured: 4.6e-4..5.1e-3 on the H100 (cuSOLVER syevj stops after 5-11 sweeps there), float32, "
     "n = 1024..8192; the CPU's sweeps reach ~3e-6 (tests)"},
    {"eigh_qdwh", "QDWH polar + spectral divide and conquer, data-precision GEMMs", 50, 0, FL_INFO_PREC_FP32,
     FLI_CLASS_GEMM, 0.02, 3.4e-6, "measured: 8.8e-7..3.4e-6, float32, n = 1024..8192, H100"},
    {"eigh_qdwh_ns", "Newton-Schulz polar + divide and conquer, data-precision GEMMs", 80, 0,
     FL_INFO_PREC_FP32, FLI_CLASS_GEMM, 0.02, 3.8e-5,
     "measured: 1.4e-5..3.8e-5, float32, n = 1024..8192, H100"},
    {"eigh_halko", "randomised subspace iteration (n_components), data's precision", 0, 0, FL_INFO_PREC_FP32,
     FLI_CLASS_GEMM, 0, 1e-2,
     "heuristic: depends on the spectrum's decay beyond n_components (0.1-0.26 measured for the top 32 of a "
     "Wigner matrix, whose spectrum does not decay)"},
};

/* polar: mn^2 multiples (QDWH: 2 QR-based + 4 Cholesky-based iterations;
 * polar express: ~15 quintic steps of 3 GEMMs from a cold start, fewer
 * warm; Zolotarev r = 3, 3 iterations). */
static const solver_var polar_vars[] = {
    {"polar_qdwh_hybrid", "QDWH, QR then Cholesky iterations, data's precision", 46, 0, FL_INFO_PREC_FP32,
     FLI_CLASS_GEMM, 0.05, 2.8e-6,
     "measured: ||A - U H||_F / ||A||_F 8.8e-7..2.8e-6, float32 square Gaussians, n = 1024..8192, H100"},
    {"polar_express", "polar express quintic steps, data-precision GEMMs", 60, 0, FL_INFO_PREC_FP32,
     FLI_CLASS_GEMM, 0.01, 2e-5,
     "measured on the CPU (the GPU's arithmetic): 4.7e-6..1.2e-5, float32 square Gaussians, n = 64..512"},
    {"polar_express_warm", "polar express from a warm start, data-precision GEMMs", 30, 0, FL_INFO_PREC_FP32,
     FLI_CLASS_GEMM, 0.005, 2e-5, "as express (U0 sets the interval, not the answer)"},
    {"polar_zolo", "Zolotarev rational iterations (r = 3), Cholesky / QR solves", 48, 0, FL_INFO_PREC_FP32,
     FLI_CLASS_SOLVER, 0.05, 2.3e-6,
     "measured: 8.5e-7..2.3e-6, float32 square Gaussians, n = 1024..8192, H100"},
};

/* ---- eigh and polar on the GPU: what the variants run, for calibration ----
 *
 * A call costs fixed_ms + launches x launch_us + flops / rate_tflops +
 * bytes / bw_gbs, and for eigh the host's share: fl_eigh copies A to the
 * host, checks and mirrors its lower triangle there column by column
 * (linalg_eigh.c, load_symmetric) and copies it back, host_ns per element
 * of A, times `alias` when n is a multiple of 1024 (the mirrored writes,
 * 4n bytes apart, then fall into the same cache sets: at 2048 on the H200
 * halko took 48 ms against 15 at 1792, cusolver 72.6 against 35.4). The
 * counts per variant follow the algorithms (linalg_eigh.c, linalg_polar.c):
 *   eigh_cusolver  syevd: blocked tridiagonal reduction, half of it BLAS2
 *                  (n^3 / 3 elements read), back-transformation; a few
 *                  launches per column;
 *   eigh_jacobi    cyclic sweeps (float64 on the GPU), ~10 sweeps of 4 n^3,
 *                  each reading the matrix once per round of n / 32 pairs;
 *   eigh_qdwh(_ns) spectral divide and conquer: ~50 (80) n^3 of QDWH
 *                  (Newton-Schulz) polar steps and projections, most at the
 *                  top; `iterations` polar steps in all (what fl_eigh
 *                  reports), each ~100 (50) launches and host round trips,
 *                  QDWH's QR panels one more per column of its block at
 *                  every level (n per level); the leaves of <= 256 go to
 *                  syevd, so n <= 256 is eigh_cusolver's estimate;
 *   eigh_halko     5 products with A of n x (k + 10), CholeskyQR of the
 *                  block, a small eigh;
 *   polar_*        `iterations` steps of m n^2 and n^3 terms (QDWH: a QR of
 *                  the stacked (m + n) x n or a Cholesky, panels of 16
 *                  columns; express: X^T X, the quintic, X P; zolo: 3
 *                  Cholesky / QR solves per step; express_warm first
 *                  takes its interval from the syevd of sym(U0^T A)).
 * `iterations` defaults to the counts measured on Wigner (eigh) and
 * Gaussian (polar) matrices. */
enum { L_FIXED, L_LAUNCH, L_RATE, L_BW, L_HOST, L_ALIAS, L_NCOEF };
static const char *const solver_coef_names[L_NCOEF] = {"fixed_ms", "launch_us", "rate_tflops",
                                                       "bw_gbs",   "host_ns",   "alias"};

static int solver_is_eigh(const solver_var *v)
{
    return !strncmp(v->name, "eigh_", 5);
}

/* eigh's coefficients: all six; polar's: the first four (no host pass) */
static int solver_ncoef(const solver_var *v)
{
    return solver_is_eigh(v) ? L_NCOEF : L_HOST;
}

static void solver_roofline(const solver_var *v, const fl_info_device *dev, double *c)
{
    c[L_FIXED] = 0.05;
    c[L_LAUNCH] = dev->launch_us;
    c[L_RATE] =
        fli_rate(dev, !strcmp(v->name, "eigh_jacobi") ? FL_INFO_PREC_FP64_TC : v->prec, FLI_CLASS_GEMM);
    c[L_BW] = fli_bw(dev, FLI_CLASS_SOLVER);
    c[L_HOST] = 2;
    c[L_ALIAS] = 1;
}

static const solver_var *solver_any(const char *name);

int fli_solver_coefs(const char *variant, const fl_info_device *dev, const char **names, double *def)
{
    const solver_var *v = solver_any(variant);
    if (!v || !dev->is_gpu)
        return -1;
    double c[L_NCOEF];
    solver_roofline(v, dev, c);
    return fli_coefs_out(solver_coef_names, c, solver_ncoef(v), names, def);
}

/* flops, bytes and launches of one call (see above); it: iterations. */
static void solver_counts(const solver_var *v, double m, double n, double kc, double it, double *fl,
                          double *by, double *la)
{
    const char *nm = v->name;
    const double levels = n > 256 ? ceil(log2(n / 256)) : 0;
    if (!strcmp(nm, "eigh_cusolver")) { /* also QDWH's leaves (solver_gpu_nodes) */
        *fl = 8.0 / 3 * n * n * n, *by = 4.0 / 3 * n * n * n, *la = 4 * n;
    } else if (!strcmp(nm, "eigh_jacobi")) {
        *fl = 40 * n * n * n, *by = 10 * n * n * 8 * ceil(n / 32), *la = 10 * ceil(n / 32) * 4;
    } else if (!strcmp(nm, "eigh_qdwh")) {
        *fl = 50 * n * n * n, *by = it * n * n * 4 * 4, *la = 100 * it + n * levels + 2 * n;
    } else if (!strcmp(nm, "eigh_qdwh_ns")) {
        *fl = 80 * n * n * n, *by = it * n * n * 4 * 4, *la = 50 * it + 2 * n;
    } else if (!strcmp(nm, "eigh_halko")) {
        const double q = kc + 10;
        *fl = 5 * 2 * n * n * q + 6 * 4 * n * q * q + 10 * q * q * q, *by = 5 * n * n * 4, *la = 60 + 4 * q;
    } else if (!strcmp(nm, "polar_qdwh_hybrid")) {
        *fl = it * (6 * m * n * n + 2 * n * n * n), *by = it * 8 * m * n * 4, *la = it * (n / 16 + 10);
    } else if (!strcmp(nm, "polar_zolo")) {
        *fl = it * 3 * (4 * m * n * n + n * n * n), *by = it * 12 * m * n * 4, *la = it * 3 * (n / 16 + 5);
    } else { /* polar express; warm: U0's interval first, the syevd of sym(U0^T A) (n x n) */
        const double w = !strcmp(nm, "polar_express_warm");
        *fl = it * (4 * m * n * n + 2 * n * n * n) + w * (2 * m * n * n + 8.0 / 3 * n * n * n);
        *by = it * 4 * m * n * 4 + w * 4.0 / 3 * n * n * n, *la = it * 6 + w * 4 * n;
    }
}

/* Typical iterations (measured on the H200 at n = 256..4096). */
static double solver_default_iter(const solver_var *v, double n)
{
    const char *nm = v->name;
    const double nodes = n > 256 ? 1.5 * n / 256 - 1 : 0; /* polar steps of the divide and conquer: 4 each */
    if (!strcmp(nm, "eigh_qdwh"))
        return 4 * nodes;
    if (!strcmp(nm, "eigh_qdwh_ns"))
        return 14 * nodes;
    if (!strcmp(nm, "polar_qdwh_hybrid"))
        return 4;
    if (!strcmp(nm, "polar_express"))
        return 14;
    if (!strcmp(nm, "polar_express_warm"))
        return 5;
    if (!strcmp(nm, "polar_zolo"))
        return 3;
    return 0;
}

static void solver_gpu_nodes(fli_est *e, const char *family, const solver_var *v, double m, double n,
                             double kc)
{
    /* A matrix of <= 256 is one leaf of QDWH's divide and conquer: fl_eigh
     * runs syevd on it and nothing else, so eigh_cusolver's counts and
     * calibration entry describe it (the QDWH entry's coefficients, fitted
     * where polar steps dominate, put 256 at +55%); a coefficient override
     * (the calibration fit of the QDWH entry) does not apply to it. */
    const double *override = e->coef_override;
    if (!strncmp(v->name, "eigh_qdwh", 9) && n <= 256) {
        v = solver_any("eigh_cusolver");
        e->coef_override = NULL;
        fli_note(e,
                 "n <= 256 is a single leaf of the divide and conquer: syevd alone (eigh_cusolver's model)");
    }
    double def[L_NCOEF];
    solver_roofline(v, e->dev, def);
    fl_info_tier tier;
    const fli_calib_entry *entry = NULL;
    const double *c =
        fli_calib_coefs(e, family, v->name, fli_dtype_canon(e->dtype), def, solver_ncoef(v), &tier, &entry);
    e->coef_override = override;
    if (entry)
        e->r->calibration = entry->describe;
    e->r->model_key = v->name;
    fli_note(e,
             tier == FL_INFO_TIER_CALIBRATED
                 ? "runtime calibrated against fl_eigh / fl_polar on this device (float32 device arrays)"
                 : "runtime: the variant's flops, bytes and launches at roofline rates, not calibrated here");
    double it = fli_p_num(e, "iterations");
    if (!isfinite(it))
        it = solver_default_iter(v, n);
    double fl, by, la;
    solver_counts(v, m, n, kc, it, &fl, &by, &la);
    const double tc = fl / (c[L_RATE] * 1e9), tm = by / (c[L_BW] * 1e6), tl = la * c[L_LAUNCH] * 1e-3;
    const double t = c[L_FIXED] + tc + tm + tl;
    fl_info_bound b = tl > tc && tl > tm ? FL_INFO_BOUND_LATENCY
                      : tc > tm          ? FL_INFO_BOUND_COMPUTE
                                         : FL_INFO_BOUND_MEMORY;
    int nd = fli_node(e, 0, v->name, v->what, 1);
    fli_leaf(e, nd, t, fl, by, la, b, tier);
    if (solver_is_eigh(v)) {
        const double alias = fmod(n, 1024) == 0 ? c[L_ALIAS] : 1;
        nd = fli_node(e, 0, "host copy of A", "A to the host, its lower triangle checked and mirrored, back",
                      1);
        fli_leaf(e, nd, c[L_HOST] * n * n * 1e-6 * alias, 0, 0, 2, FL_INFO_BOUND_TRANSFER, tier);
    }
}

static const solver_var *solver_find(const solver_var *t, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return &t[i];
    return NULL;
}

static int est_solver_family(fli_est *e, const solver_var *tab, int ntab, const char *family)
{
    const char *op = e->op->pub.name;
    const solver_var *v = NULL;
    const char *why = "variant named";
    if (e->variant_override)
        v = solver_find(tab, ntab, e->variant_override);
    else if (strcmp(op, family))
        v = solver_find(tab, ntab, op);
    else {
        int w = fli_p_word(e, "variant");
        if (w > 0)
            v = &tab[w - 1], why = "variant= given";
    }
    double n = (double)e->shape[0], m = n;
    if (e->ndim >= 2) {
        if (!strcmp(family, "eigh") && e->shape[1] != e->shape[0])
            return fli_info_fail(e, "%s: the matrix must be square, got %lld x %lld", op,
                                 (long long)e->shape[0], (long long)e->shape[1]);
        n = (double)e->shape[1];
    }
    if (!fli_bytes_ok(e, m * n * 8 * 8, "the matrix and its workspace"))
        return FL_INFO_EINVAL;
    double kc = fli_p_num(e, "n_components");
    if (!isfinite(kc))
        kc = ceil(n / 10);
    if (!v) {
        double tol = fli_p_num(e, "tol");
        int by_tol = fli_p_given(e, "tol") && isfinite(tol);
        double best = INFINITY;
        for (int i = 0; i < ntab; i++) {
            const solver_var *c = &tab[i];
            if (by_tol ? c->residual > tol : !!strcmp(c->name, tab[0].name))
                continue;
            if (!strcmp(c->name, "eigh_halko") && !fli_p_given(e, "n_components"))
                continue;
            double fl = c->cubic > 0 ? c->cubic * m * n * n : 0;
            double t = fl / (fli_rate(e->dev, c->prec, c->cls) * 1e9);
            if (t < best)
                best = t, v = c;
        }
        why = by_tol ? "tol given: the cheapest variant whose expected residual is <= tol"
                     : "default (no tol): the most robust variant";
        if (!v)
            return fli_info_fail(e, "%s: no variant reaches tol=%g (the most accurate expects ~%g)", op, tol,
                                 tab[ntab - 1].residual < tab[0].residual ? tab[ntab - 1].residual
                                                                          : tab[0].residual);
    }
    fl_info_result *r = e->r;
    snprintf(r->variant, sizeof r->variant, "%s", v->name);
    snprintf(r->reason, sizeof r->reason, "%s: %s (fl_%s)", why, v->what, family);
    if (e->dev->is_gpu) {
        solver_gpu_nodes(e, family, v, m, n, kc);
        r->expected_residual = v->residual;
        r->peak_memory_bytes = (uint64_t)(m * n * 4 * 4 + n * n * 4 * 2);
        e->main_prec = v->prec;
        return 0;
    }
    fli_note(e, "runtime on the CPU: textbook flop counts at typical iteration counts x roofline, not "
                "calibrated; residuals: measured, see the variant's source");
    double fl, bytes, launches;
    if (!strcmp(v->name, "eigh_halko")) {
        double q = kc + 10, it = 5;
        fl = it * 2 * 2 * n * n * q + 4 * n * q * q + 10 * q * q * q;
        bytes = it * 2 * n * n * 4;
        launches = it * 6 + 20;
        fli_note(e, "eigh_halko: n_components + 10 oversampled columns, 4 power iterations");
    } else {
        fl = v->cubic * m * n * n;
        bytes = v->bytes_cubic > 0 ? v->bytes_cubic * n * n * n * 4 : 6 * m * n * 4 * 8;
        launches = v->launches_per_n * n + 10;
    }
    fli_roof_leaf(e, 0, v->name, v->what, 1, fl, v->prec, v->cls, bytes, launches, FL_INFO_TIER_ROOFLINE);
    r->expected_residual = v->residual;
    r->peak_memory_bytes = (uint64_t)(m * n * 4 * 4 + n * n * 4 * 2);
    e->main_prec = v->prec;
    return 0;
}

static const solver_var *solver_any(const char *name)
{
    const solver_var *v = solver_find(eigh_vars, (int)(sizeof eigh_vars / sizeof *eigh_vars), name);
    return v ? v : solver_find(polar_vars, (int)(sizeof polar_vars / sizeof *polar_vars), name);
}

int fli_est_eigh(fli_est *e)
{
    return est_solver_family(e, eigh_vars, (int)(sizeof eigh_vars / sizeof *eigh_vars), "eigh");
}

int fli_est_polar(fli_est *e)
{
    return est_solver_family(e, polar_vars, (int)(sizeof polar_vars / sizeof *polar_vars), "polar");
}

int fli_est_cholqr2(fli_est *e)
{
    double m = (double)e->shape[0], n = (double)e->shape[1];
    if (!fli_bytes_ok(e, m * n * 8 * 3, "the matrix and its factors"))
        return FL_INFO_EINVAL;
    snprintf(e->r->variant, sizeof e->r->variant, "fp32");
    snprintf(e->r->reason, sizeof e->r->reason,
             "CholeskyQR twice: Gram, Cholesky, triangular solve (fl_cholqr2; a shifted third pass when "
             "the Gram matrix is not positive definite)");
    fli_note(e, "roofline of 2 x (Gram mn^2, Cholesky n^3/3, solve mn^2): not calibrated");
    for (int pass = 0; pass < 2; pass++) {
        int p = fli_node(e, 0, pass ? "second pass" : "first pass", "Gram, Cholesky, triangular solve", 1);
        fli_roof_leaf(e, p, "gram (X^T X)", NULL, 1, m * n * (n + 1), FL_INFO_PREC_FP32, FLI_CLASS_GEMM,
                      m * n * 4 + n * n * 4, 1, FL_INFO_TIER_ROOFLINE);
        fli_roof_leaf(e, p, "cholesky", NULL, 1, n * n * n / 3, FL_INFO_PREC_FP32, FLI_CLASS_SOLVER,
                      n * n * 8, n / 64 + 2, FL_INFO_TIER_ROOFLINE);
        fli_roof_leaf(e, p, "triangular solve", NULL, 1, m * n * n, FL_INFO_PREC_FP32, FLI_CLASS_GEMM,
                      2 * m * n * 4, 1, FL_INFO_TIER_ROOFLINE);
    }
    e->r->expected_residual = pow(2.0, -24) * sqrt(n);
    e->r->peak_memory_bytes = (uint64_t)(2 * m * n * 4 + n * n * 4);
    return 0;
}

int fli_est_split_basis(fli_est *e)
{
    double m = (double)e->shape[0], n = e->ndim > 1 ? (double)e->shape[1] : 1;
    double parts = fli_p_num(e, "n_parts");
    int fmt = fli_p_word(e, "format"); /* bf16|fp16|tf32 */
    double pb = fmt == 2 ? 4 : 2;
    if (!fli_bytes_ok(e, m * n * (8 + parts * pb), "the matrix and its parts"))
        return FL_INFO_EINVAL;
    snprintf(e->r->variant, sizeof e->r->variant, "%s", fmt == 2 ? "tf32" : fmt == 1 ? "fp16" : "bf16");
    snprintf(e->r->reason, sizeof e->r->reason, "split into %g parts (modelled)", parts);
    fli_note(e, "not implemented in flashlib yet as modelled (a device-side pass): fl_split_basis writes "
                "float32 parts and stages device arrays through the host; this is the design's streaming "
                "pass, roofline");
    fli_roof_leaf(e, 0, "split", "read the matrix once, write every part", 1, 3 * parts * m * n,
                  FL_INFO_PREC_FP32, FLI_CLASS_STREAM,
                  m * n * ((double)fli_dtype_bytes(e->dtype) + parts * pb), 1, FL_INFO_TIER_ROOFLINE);
    e->r->peak_memory_bytes = (uint64_t)(m * n * parts * pb);
    e->r->expected_residual = pow(2.0, -(fmt == 2 ? 11 : fmt == 1 ? 11 : 8) * parts);
    return 0;
}

/* ---- variant families ------------------------------------------------------------ */

/* The families behind pareto: each variant is estimated as its own op. */
static const fli_variant_def gemm_defs[] = {
    {"gemm_fp64", "gemm_fp64"},     {"gemm_fp32", "gemm_fp32"},
    {"gemm_tf32", "gemm_tf32"},     {"gemm_3xtf32", "gemm_3xtf32"},
    {"gemm_bf16", "gemm_bf16"},     {"gemm_3xbf16", "gemm_3xbf16"},
    {"gemm_fp16", "gemm_fp16"},     {"gemm_3xfp16", "gemm_3xfp16"},
    {"gemm_fp16x9", "gemm_fp16x9"}, {"gemm_fp16x3_kahan", "gemm_fp16x3_kahan"},
    {"gemm_tf32x6", "gemm_tf32x6"}, {"gemm_ozaki_int8", "gemm_ozaki_int8"},
};
static const fli_variant_def eigh_defs[] = {
    {"eigh_cusolver", "eigh_cusolver"}, {"eigh_jacobi", "eigh_jacobi"}, {"eigh_qdwh", "eigh_qdwh"},
    {"eigh_qdwh_ns", "eigh_qdwh_ns"},   {"eigh_halko", "eigh_halko"},
};
static const fli_variant_def polar_defs[] = {
    {"polar_qdwh_hybrid", "polar_qdwh_hybrid"},
    {"polar_express", "polar_express"},
    {"polar_express_warm", "polar_express_warm"},
    {"polar_zolo", "polar_zolo"},
};

int fli_family_variants(const char *family, const fli_variant_def **out)
{
    if (!strcmp(family, "gemm")) {
        *out = gemm_defs;
        return (int)(sizeof gemm_defs / sizeof *gemm_defs);
    }
    if (!strcmp(family, "eigh")) {
        *out = eigh_defs;
        return (int)(sizeof eigh_defs / sizeof *eigh_defs);
    }
    if (!strcmp(family, "polar")) {
        *out = polar_defs;
        return (int)(sizeof polar_defs / sizeof *polar_defs);
    }
    return -1;
}

double fli_variant_residual(const char *variant, const fli_est *e, const char **source)
{
    const gemm_var *g = gemm_find(variant);
    if (g) {
        double moduli = fli_p_num(e, "num_moduli");
        if (!isfinite(moduli))
            moduli = FLI_OZAKI_DEFAULT_MODULI;
        double K = e->ndim >= 3 ? (double)e->shape[1] : (double)e->shape[0];
        int meas = 0;
        const double r = gemm_residual_src(g, K, e->dtype, moduli, &meas);
        if (source)
            *source =
                meas ? "measured: fl_gemm at 8192^3 on the H100 (bench/results/gemm_ladder_h100_a86faa6), "
                       "scaled to K by the model"
                     : "model: input rounding sqrt(2/3) 2^-p + accumulation 2^-24 log2 K (op_linalg.c)";
        return r;
    }
    const solver_var *s = solver_find(eigh_vars, (int)(sizeof eigh_vars / sizeof *eigh_vars), variant);
    if (!s)
        s = solver_find(polar_vars, (int)(sizeof polar_vars / sizeof *polar_vars), variant);
    if (s) {
        if (source)
            *source = s->res_doc;
        return s->residual;
    }
    if (source)
        *source = "unknown";
    return -1;
}

/* Choice lists of `variant=` (index 0 = auto), in table order. */
const char fli_gemm_variant_choices[] =
    "auto|gemm_fp64|gemm_fp32|gemm_tf32|gemm_3xtf32|gemm_bf16|gemm_3xbf16|"
    "gemm_fp16|gemm_3xfp16|gemm_fp16x9|gemm_fp16x3_kahan|gemm_tf32x6|"
    "gemm_ozaki_int8";
const char fli_eigh_variant_choices[] = "auto|eigh_cusolver|eigh_jacobi|eigh_qdwh|eigh_qdwh_ns|eigh_halko";
const char fli_polar_variant_choices[] = "auto|polar_qdwh_hybrid|polar_express|polar_express_warm|polar_zolo";
