/* ivf_heap.h — the candidate heap and final ordering the CPU IVF searches
 * share (ivf_cpu.c, ivfpq_cpu.c): a bounded max-heap of (key, index, row)
 * ordered by key then index, so the pool kept is the smallest under that
 * total order whatever the scan order. */
#ifndef FL_IVF_HEAP_H
#define FL_IVF_HEAP_H

#include <math.h>
#include <stdint.h>

typedef struct ivf_cand {
    float key;
    int64_t id;
    int64_t row; /* position in list order (for the re-rank) */
} ivf_cand;

/* a is worse than b: larger key, or the same key and a larger index */
static inline int ivf_worse(const ivf_cand *a, const ivf_cand *b)
{
    return a->key > b->key || (a->key == b->key && a->id > b->id);
}

/* Keeps the best `cap` candidates in h (the worst on top). */
static inline void ivf_heap_push(ivf_cand *h, int64_t *len, int64_t cap, ivf_cand c)
{
    int64_t i;
    if (*len < cap) {
        i = (*len)++;
        while (i > 0) {
            int64_t p = (i - 1) / 2;
            if (!ivf_worse(&c, &h[p]))
                break;
            h[i] = h[p];
            i = p;
        }
        h[i] = c;
        return;
    }
    if (!ivf_worse(&h[0], &c))
        return;
    i = 0; /* replace the top and sift down */
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        const ivf_cand *best = &c;
        if (l < cap && ivf_worse(&h[l], best))
            m = l, best = &h[l];
        if (r < cap && ivf_worse(&h[r], best))
            m = r, best = &h[r];
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    h[i] = c;
}

typedef struct ivf_final {
    double dist;
    int64_t id;
} ivf_final;

static inline int ivf_cmp_asc(const void *pa, const void *pb)
{
    const ivf_final *a = pa, *b = pb;
    if (a->dist != b->dist)
        return a->dist < b->dist ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static inline int ivf_cmp_desc(const void *pa, const void *pb)
{
    const ivf_final *a = pa, *b = pb;
    if (a->dist != b->dist)
        return a->dist > b->dist ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* One query of a block: its float32 and float64 copies (normalised for
 * cosine) and the n_probes lists it scans: the nearest centres by
 * |c|^2 - 2 <q, c> (largest <q, c> for the inner product), ties by list
 * number. S_row: the query's products with the L centres (from the block's
 * GEMM, on the query as given); cn: the centres' squared norms. Returns the
 * probes kept in `probe` (at most P). */
static inline int64_t ivf_query_probes(const float *q, int64_t d, int cosine, int ip, const float *S_row,
                                       const float *cn, int64_t L, int64_t P, float *q32, double *q64,
                                       ivf_cand *probe)
{
    double qn = 0;
    for (int64_t f = 0; f < d; f++)
        qn += (double)q[f] * q[f];
    const double qs = cosine && qn > 0 ? 1.0 / sqrt(qn) : 1.0;
    for (int64_t f = 0; f < d; f++)
        q32[f] = (float)(q[f] * qs), q64[f] = q[f] * qs;
    int64_t np = 0;
    for (int64_t l = 0; l < L; l++) {
        const float s = S_row[l] * (float)qs;
        ivf_heap_push(probe, &np, P, (ivf_cand){ip ? -s : cn[l] - 2 * s, l, l});
    }
    return np;
}

#endif
