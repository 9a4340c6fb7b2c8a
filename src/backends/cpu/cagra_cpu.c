/*
 * cagra_cpu.c — the CPU side of the CAGRA graph index (algo/cagra_job.h):
 * pruning an exact kNN graph into the search graph, and searching it.
 *
 * Pruning (rank-based detours). For node i with neighbours n_0..n_{K-1}
 * (nearest first), the edge to n_j is detourable through n_k (k < j) when
 * n_j is among n_k's own first j neighbours: both hops are shorter in rank
 * than the direct edge. Each node keeps the `degree` edges with the fewest
 * detours (ties: the nearer). Reverse edges are then merged in: every node
 * keeps the first half of its pruned edges, then the nodes that point to
 * it (by the rank of their edge, then their index), then the rest of its
 * own — so the graph is navigable in both directions. Everything is a
 * deterministic function of the kNN graph.
 *
 * Search. Each query keeps a sorted buffer of itopk candidates (distance,
 * node, expanded), seeded with the index's entry nodes (one per coarse
 * cluster of the data) and n_seeds random nodes; every iteration
 * expands the search_width best unexpanded candidates (distances to their
 * neighbours not yet visited, inserted into the buffer) until none is left
 * or max_iterations ran. The k best are re-ranked with float64 distances.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "algo/cagra_job.h"
#include "backends/cpu/cpu.h"
#include "backends/cpu/ivf_heap.h"
#include "core/internal.h"

/* ---- pruning ------------------------------------------------------------- */

/* Open-addressing map node -> rank in node i's list (slots: power of 2). */
static inline int64_t rank_of(const int64_t *keys, const int32_t *vals, int64_t mask, int64_t node)
{
    for (int64_t h = (int64_t)(((uint64_t)node * 0x9E3779B97F4A7C15ull) >> 20) & mask;; h = (h + 1) & mask) {
        if (keys[h] == node)
            return vals[h];
        if (keys[h] < 0)
            return -1;
    }
}

fl_status fli_cpu_cagra_prune(fl_ctx *ctx, const int64_t *knn, int64_t n, int64_t K, int64_t degree,
                              int32_t *graph)
{
    const int T = fli_cpu_threads(ctx);
    int64_t slots = 1;
    while (slots < 2 * K)
        slots <<= 1;
    /* a multiple of 64 bytes: every thread's slice starts aligned */
    const size_t per = ((sizeof(int64_t) * (size_t)slots + sizeof(int32_t) * (size_t)slots +
                         sizeof(int32_t) * (size_t)K + sizeof(int64_t) * (size_t)K + 64 * 4) +
                        63) &
                       ~(size_t)63;
    char *ws = fli_malloc(ctx, per * (size_t)T, "CAGRA pruning workspace");
    int32_t *pruned = fli_malloc(ctx, sizeof(int32_t) * (size_t)(n * degree), "CAGRA pruned graph");
    int32_t *rev = fli_malloc(ctx, sizeof(int32_t) * (size_t)(n * degree), "CAGRA reverse edges");
    int32_t *nrev = fli_calloc(ctx, (size_t)n, sizeof(int32_t), "CAGRA reverse counts");
    if (!ws || !pruned || !rev || !nrev) {
        fli_free(ctx, ws), fli_free(ctx, pruned), fli_free(ctx, rev), fli_free(ctx, nrev);
        return FL_STATUS_OUT_OF_MEMORY;
    }
#pragma omp parallel for schedule(dynamic, 64) num_threads(T)
    for (int64_t i = 0; i < n; i++) {
        char *p = ws + per * (size_t)omp_get_thread_num();
        int64_t *keys = (int64_t *)p;
        int32_t *vals = (int32_t *)(keys + slots);
        int32_t *detour = vals + slots;
        int64_t *order = (int64_t *)(((uintptr_t)(detour + K) + 63) & ~(uintptr_t)63);
        const int64_t *Ni = knn + i * K;
        for (int64_t s = 0; s < slots; s++)
            keys[s] = -1;
        for (int64_t j = 0; j < K; j++) {
            detour[j] = 0;
            int64_t h = (int64_t)(((uint64_t)Ni[j] * 0x9E3779B97F4A7C15ull) >> 20) & (slots - 1);
            while (keys[h] >= 0)
                h = (h + 1) & (slots - 1);
            keys[h] = Ni[j], vals[h] = (int32_t)j;
        }
        for (int64_t k = 0; k < K; k++) {
            const int64_t *Na = knn + Ni[k] * K;
            for (int64_t r = 0; r < K; r++) {
                int64_t j = rank_of(keys, vals, slots - 1, Na[r]);
                if (j > k && r < j)
                    detour[j]++;
            }
        }
        /* the `degree` edges with the fewest detours, nearer first on ties:
         * a stable selection by (detours, rank) */
        for (int64_t j = 0; j < K; j++)
            order[j] = ((int64_t)detour[j] << 32) | j;
        for (int64_t a = 1; a < K; a++) { /* insertion sort: K is small */
            int64_t v = order[a], b = a;
            while (b > 0 && order[b - 1] > v)
                order[b] = order[b - 1], b--;
            order[b] = v;
        }
        /* kept edges in rank order (nearest first) */
        int64_t kept[2048];
        for (int64_t e = 0; e < degree; e++)
            kept[e] = order[e] & 0xffffffff;
        for (int64_t a = 1; a < degree; a++) {
            int64_t v = kept[a], b = a;
            while (b > 0 && kept[b - 1] > v)
                kept[b] = kept[b - 1], b--;
            kept[b] = v;
        }
        for (int64_t e = 0; e < degree; e++)
            pruned[i * degree + e] = (int32_t)Ni[kept[e]];
    }
    /* reverse edges: by the rank of the edge in its source, then the source */
    for (int64_t e = 0; e < degree; e++)
        for (int64_t i = 0; i < n; i++) {
            const int32_t t = pruned[i * degree + e];
            if (nrev[t] < degree)
                rev[(int64_t)t * degree + nrev[t]++] = (int32_t)i;
        }
    const int64_t half = degree / 2;
#pragma omp parallel for schedule(static) num_threads(T)
    for (int64_t i = 0; i < n; i++) {
        int32_t *g = graph + i * degree;
        int64_t c = 0;
        for (int64_t e = 0; e < half; e++)
            g[c++] = pruned[i * degree + e];
        for (int64_t r = 0; r < nrev[i] && c < degree; r++) {
            int32_t v = rev[i * degree + r], dup = 0;
            for (int64_t a = 0; a < c && !dup; a++)
                dup = g[a] == v;
            if (!dup)
                g[c++] = v;
        }
        for (int64_t e = half; e < degree && c < degree; e++) {
            int32_t v = pruned[i * degree + e], dup = 0;
            for (int64_t a = 0; a < c && !dup; a++)
                dup = g[a] == v;
            if (!dup)
                g[c++] = v;
        }
        while (c < degree)
            g[c++] = -1;
    }
    fli_free(ctx, ws), fli_free(ctx, pruned), fli_free(ctx, rev), fli_free(ctx, nrev);
    return FL_STATUS_OK;
}

/* ---- search ------------------------------------------------------------- */

typedef struct cand {
    float key;
    int32_t id;
    int32_t done; /* expanded */
} cand;

/* The search key of row x for query q (smaller = nearer). */
static inline float key_of(const fli_cagra_index *ix, const float *q, const float *x)
{
    float s = 0;
    if (ix->metric == FLI_KNN_INNER || ix->metric == FLI_KNN_COSINE) {
        for (int64_t f = 0; f < ix->d; f++)
            s += q[f] * x[f];
        return -s;
    }
    for (int64_t f = 0; f < ix->d; f++) {
        float v = q[f] - x[f];
        s += v * v;
    }
    return s;
}

/* Inserts c into the sorted buffer b of *len (cap) entries; ties by id. */
static inline void buf_insert(cand *b, int64_t *len, int64_t cap, cand c)
{
    int64_t i = *len;
    if (i == cap) {
        const cand *w = &b[cap - 1];
        if (c.key > w->key || (c.key == w->key && c.id > w->id))
            return;
        i = cap - 1;
    } else {
        (*len)++;
    }
    while (i > 0 && (b[i - 1].key > c.key || (b[i - 1].key == c.key && b[i - 1].id > c.id))) {
        b[i] = b[i - 1];
        i--;
    }
    b[i] = c;
}

fl_status fli_cpu_cagra_search(fl_ctx *ctx, const fli_cagra_search_job *job)
{
    const fli_cagra_index *ix = &job->ix;
    const int64_t n = ix->n, d = ix->d, deg = ix->degree, k = job->k;
    const int64_t cap = job->itopk > k ? job->itopk : k;
    const int ip = ix->metric == FLI_KNN_INNER, cosine = ix->metric == FLI_KNN_COSINE;
    const int T = fli_cpu_threads(ctx);
    const size_t words = (size_t)(n + 63) / 64;
    /* a multiple of 64 bytes: every thread's slice starts aligned */
    const size_t per =
        ((sizeof(cand) * (size_t)cap + sizeof(uint64_t) * words + sizeof(int64_t) * 4096 +
          sizeof(float) * (size_t)d + sizeof(double) * (size_t)d + sizeof(ivf_final) * (size_t)k + 64 * 6) +
         63) &
        ~(size_t)63;
    char *ws = fli_calloc(ctx, (size_t)T, per, "CAGRA search workspace");
    if (!ws)
        return FL_STATUS_OUT_OF_MEMORY;
    fl_status st = FL_STATUS_OK;
    const int64_t wave = (int64_t)T * 256;
    for (int64_t w0 = 0; w0 < job->n_q && !st; w0 += wave) {
        const int64_t w1 = w0 + wave < job->n_q ? w0 + wave : job->n_q;
#pragma omp parallel for schedule(dynamic, 16) num_threads(T)
        for (int64_t qi = w0; qi < w1; qi++) {
            char *p = ws + per * (size_t)omp_get_thread_num();
#define TAKE(type, count)                                                                                    \
    (type *)p;                                                                                               \
    p += ((sizeof(type) * (size_t)(count) + 63) & ~(size_t)63)
            cand *buf = TAKE(cand, cap);
            uint64_t *seen = TAKE(uint64_t, words);
            int64_t *touched = TAKE(int64_t, 4096);
            float *q32 = TAKE(float, d);
            double *q64 = TAKE(double, d);
            ivf_final *fin = TAKE(ivf_final, k);
#undef TAKE
            const float *q = job->q + qi * job->q_ld;
            double qn = 0;
            for (int64_t f = 0; f < d; f++)
                qn += (double)q[f] * q[f];
            const double qs = cosine && qn > 0 ? 1.0 / sqrt(qn) : 1.0;
            for (int64_t f = 0; f < d; f++)
                q32[f] = (float)(q[f] * qs), q64[f] = q[f] * qs;
            const int64_t self = job->self_ids ? job->self_ids[qi] : -1;
            int64_t len = 0, nt = 0, overflow = 0;
#define VISIT(v)                                                                                             \
    (((seen[(v) >> 6] >> ((v)&63)) & 1)                                                                      \
         ? 0                                                                                                 \
         : (seen[(v) >> 6] |= 1ull << ((v)&63), nt < 4096 ? (touched[nt++] = (v)) : (overflow = 1), 1))
            fli_rng r;
            fli_rng_seed(&r, job->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(qi + 1)));
            for (int64_t s = 0; s < ix->n_entries; s++) {
                const int64_t v = ix->entries[s];
                if (v >= 0 && v < n && VISIT(v) && v != self)
                    buf_insert(buf, &len, cap, (cand){key_of(ix, q32, ix->data + v * d), (int32_t)v, 0});
            }
            for (int64_t s = 0; s < job->n_seeds; s++) {
                int64_t v = job->seed_nodes ? job->seed_nodes[qi * job->n_seeds + s] : fli_rng_below(&r, n);
                if (VISIT(v) && v != self)
                    buf_insert(buf, &len, cap, (cand){key_of(ix, q32, ix->data + v * d), (int32_t)v, 0});
            }
            for (int64_t it = 0; job->max_iter <= 0 || it < job->max_iter; it++) {
                int64_t picked = 0;
                int32_t parents[256];
                for (int64_t c = 0; c < len && picked < job->width; c++)
                    if (!buf[c].done) {
                        buf[c].done = 1;
                        parents[picked++] = buf[c].id;
                    }
                if (!picked)
                    break;
                for (int64_t a = 0; a < picked; a++) {
                    const int32_t *nb = ix->graph + (int64_t)parents[a] * deg;
                    for (int64_t e = 0; e < deg; e++) {
                        const int64_t v = nb[e];
                        if (v < 0 || !VISIT(v) || v == self)
                            continue;
                        buf_insert(buf, &len, cap, (cand){key_of(ix, q32, ix->data + v * d), (int32_t)v, 0});
                    }
                }
            }
#undef VISIT
            /* clear what this query marked */
            if (overflow)
                memset(seen, 0, sizeof(uint64_t) * words);
            else
                for (int64_t t = 0; t < nt; t++)
                    seen[touched[t] >> 6] = 0;
            const int64_t m = len < k ? len : k;
            for (int64_t c = 0; c < m; c++) {
                const float *x = ix->data + (int64_t)buf[c].id * d;
                double s = 0;
                if (ix->metric == FLI_KNN_SQEUCLIDEAN || ix->metric == FLI_KNN_EUCLIDEAN) {
                    for (int64_t f = 0; f < d; f++) {
                        double v = q64[f] - (double)x[f];
                        s += v * v;
                    }
                    if (ix->metric == FLI_KNN_EUCLIDEAN)
                        s = sqrt(s);
                } else {
                    for (int64_t f = 0; f < d; f++)
                        s += q64[f] * (double)x[f];
                    if (cosine)
                        s = 1.0 - s;
                }
                fin[c] = (ivf_final){s, buf[c].id};
            }
            qsort(fin, (size_t)m, sizeof *fin, ip ? ivf_cmp_desc : ivf_cmp_asc);
            for (int64_t c = 0; c < k; c++) {
                job->dist[qi * k + c] = c < m ? fin[c].dist : ip ? -INFINITY : INFINITY;
                job->idx[qi * k + c] = c < m ? fin[c].id : -1;
            }
        }
        st = fli_progress(ctx, "cagra.search", w1, job->n_q);
    }
    fli_free(ctx, ws);
    return st;
}
