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
 * nominal CPU: heuristic. The GPU searches are rooflines of their counts
 * (not calibrated yet).
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
};

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
    fl_hw_props hw;
    fli_device_hw(e->dev, &hw);
    fl_route route;
    const double pool = pq && refine > 1 ? ceil(refine * k) : k;
    if (pq)
        fli_route_ivf_pq(e->dev->is_gpu ? &hw : NULL, (int64_t)n, (int64_t)L, (int64_t)P, (int64_t)nq,
                         (int64_t)d, (int64_t)M, (int64_t)ks, (int64_t)pool, 0, &route);
    else
        fli_route_ivf_flat(e->dev->is_gpu ? &hw : NULL, (int64_t)n, (int64_t)L, (int64_t)P, (int64_t)nq,
                           (int64_t)d, (int64_t)k, 0, &route);
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
            fli_roof_leaf(e, s, "copies", "queries in, results out (index resident after the first search)",
                          1, 0, FL_INFO_PREC_FP32, FLI_CLASS_STREAM, nq * d * 4 + nq * k * 16, 4,
                          FL_INFO_TIER_ROOFLINE);
            e->link_bytes += nq * d * 4 + nq * k * 16;
            fli_roof_leaf(e, s, "coarse GEMM + probes", "queries x centres (cuBLAS), radix-selected probes",
                          1, 2 * nq * L * d, FL_INFO_PREC_FP32, FLI_CLASS_GEMM, (nq + L) * d * 4 + nq * L * 4,
                          3, FL_INFO_TIER_ROOFLINE);
            fli_roof_leaf(e, s, "look-up tables + code scans",
                          "a block per query and 8 probes: the query's table term once, per probe the list's "
                          "precomputed terms streamed into shared memory, pq_dim reads per code",
                          1, 2 * nq * ks * d + nq * P * M * ks + cand * M, FL_INFO_PREC_FP32, FLI_CLASS_FUSED,
                          fmin(n, cand) * M + cand * 8 + nq * P * M * ks * 4, 2, FL_INFO_TIER_ROOFLINE);
            fli_roof_leaf(e, s, "pool + exact re-rank", "radix-selected pool of refine x k, float64 re-rank",
                          1, nq * pool * d * 3, FL_INFO_PREC_FP64, FLI_CLASS_GATHER,
                          cand * 4 + nq * pool * d * 4, 2, FL_INFO_TIER_ROOFLINE);
        } else if (route.backend != FL_BACKEND_CPU) {
            fli_roof_leaf(e, s, "copies", "queries in, results out (lists resident after the first search)",
                          1, 0, FL_INFO_PREC_FP32, FLI_CLASS_STREAM, nq * d * 4 + nq * k * 16, 4,
                          FL_INFO_TIER_ROOFLINE);
            e->link_bytes += nq * d * 4 + nq * k * 16;
            fli_roof_leaf(e, s, "coarse GEMM + probes", "queries x centres (cuBLAS), radix-selected probes",
                          1, 2 * nq * L * d, FL_INFO_PREC_FP32, FLI_CLASS_GEMM, (nq + L) * d * 4 + nq * L * 4,
                          3, FL_INFO_TIER_ROOFLINE);
            fli_roof_leaf(e, s, "list tiles", "probed lists scanned in fp32 tiles shared by their queries", 1,
                          2 * cand * d, FL_INFO_PREC_FP32, FLI_CLASS_FUSED,
                          fmin(n, cand) * d * 4 + nq * k * 12, 3, FL_INFO_TIER_ROOFLINE);
            fli_roof_leaf(e, s, "exact re-rank", "pools re-ranked in float64", 1, nq * (k + 8) * d * 3,
                          FL_INFO_PREC_FP64, FLI_CLASS_GATHER, nq * (k + 8) * d * 4, 1,
                          FL_INFO_TIER_ROOFLINE);
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
    fl_hw_props hw;
    fli_device_hw(e->dev, &hw);
    fl_route route;
    fli_route_cagra(e->dev->is_gpu ? &hw : NULL, (int64_t)n, (int64_t)d, (int64_t)deg, (int64_t)E,
                    (int64_t)itopk, (int64_t)width, (int64_t)nq, 0, &route);
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
            fli_roof_leaf(e, 0, "copies", "queries in, results out (graph resident after the first search)",
                          1, 0, FL_INFO_PREC_FP32, FLI_CLASS_STREAM, nq * d * 4 + nq * k * 16, 4,
                          FL_INFO_TIER_ROOFLINE);
            e->link_bytes += nq * d * 4 + nq * k * 16;
            fli_roof_leaf(
                e, 0, "graph search",
                "a thread block per query: buffer and visited hash in shared memory, warp distances", 1,
                3 * evals * d, FL_INFO_PREC_FP32, FLI_CLASS_GATHER, evals * d * 4 + nq * k * 16, 1,
                FL_INFO_TIER_ROOFLINE);
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
