/*
 * cagra_cuda.cu — the CAGRA graph search on the GPU (algo/cagra_job.h).
 *
 * Contract: the graph (n x degree int32, -1 = no edge), the float32 rows
 * (n x d, normalised for cosine), the entry nodes and the queries come from
 * the host, with each query's random starting nodes drawn by the core
 * (job->seed_nodes, the same draws the CPU search makes); results go back
 * to the host as cagra_cpu.c writes them (float64 distances of the k best,
 * int64 indices, padded with -1 / +inf, -inf for the inner product).
 *
 * The walk is cagra_cpu.c's, one thread block (a team of CAGRA_THREADS
 * threads) per query, everything a query updates in shared memory:
 *   - the candidate buffer: itopk (key, node) pairs sorted by (key, node),
 *     a node's top bit marking it expanded;
 *   - a visited hash of node ids (open addressing, linear probing, atomic
 *     compare-and-swap so that a node reached from two parents at once is
 *     taken once);
 *   - the new candidates of an iteration (at most search_width x degree,
 *     or a chunk of the entry and seed nodes).
 * Each iteration: warp 0 picks the search_width best unexpanded entries of
 * the buffer (a ballot per 32 entries) and marks them; the block claims
 * their unvisited neighbours in the hash and compacts them; a warp per
 * candidate computes its float32 key (the squared L2 distance, or minus
 * the product for cosine / inner product) with the lanes splitting the
 * features; and the candidates are merged into the buffer by rank (each
 * element's position in the merged order is its index plus the number of
 * elements of the other list before it, so no sort is needed). The walk
 * stops when no unexpanded entry is left or after max_iterations. The k
 * best are then re-ranked with float64 distances in cagra_cpu.c's order.
 *
 * Same results as the CPU's walk: the buffer after each step is the best
 * itopk (key, node) pairs of every node visited so far, in both. The
 * visited hash is bounded: when it would fill past 3/4 it is cleared and
 * refilled with the buffer's nodes, so a node can then be visited again;
 * it never re-enters the buffer, because it was already beaten by a full
 * buffer whose worst entry has only improved since. Keys are summed in a
 * different order than the CPU's sequential loop, so near-ties can order
 * differently; recall matches, results may differ at such ties.
 *
 * Device-resident index: the context keeps the last graph it searched
 * (state->cagra), keyed by job->index_key; released by ctx_free
 * (fli_cuda_cagra_release).
 *
 * Limits (the algo layer routes other cases to the CPU): itopk <= 512,
 * search_width x degree <= 1024, fewer than 2^31 nodes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "algo/cagra_job.h"
#include "backends/cuda/fl_cuda_util.cuh"

#define CAGRA_THREADS 256
#define CAGRA_WARPS (CAGRA_THREADS / 32)
#define CAGRA_MAX_ITOPK 512
#define CAGRA_MAX_CAND 1024
#define CAGRA_MIN_CHUNK 256 /* entry / seed nodes merged per step */
#define DONE_BIT 0x80000000u
#define ID_MASK 0x7FFFFFFFu

typedef struct cagra_dev {
    uint64_t key;
    int64_t n, d, d4, degree, n_entries;
    int metric;
    float *data;      /* n x d4 (zero padded) */
    int32_t *graph;   /* n x degree */
    int32_t *entries; /* n_entries */
    void *ws;
    size_t ws_bytes;
    int64_t smem_set;
} cagra_dev;

static void cagra_dev_free_arrays(fli_cuda_env *env, cagra_dev *c)
{
    fli_dev_free(env, c->data);
    fli_dev_free(env, c->graph);
    fli_dev_free(env, c->entries);
    c->data = NULL;
    c->graph = c->entries = NULL;
    c->key = 0;
    c->n = c->d = c->d4 = c->degree = c->n_entries = 0;
}

extern "C" void fli_cuda_cagra_release(fli_cuda_env *env)
{
    if (!env || !env->state) return;
    fli_cuda_state *s = fli_state(env);
    cagra_dev *c = (cagra_dev *)s->cagra;
    if (!c) return;
    cagra_dev_free_arrays(env, c);
    fli_dev_free(env, c->ws);
    free(c);
    s->cagra = NULL;
}

static fl_status cagra_upload(fli_cuda_env *env, const fli_cagra_index *ix, uint64_t key, cagra_dev **out)
{
    fli_cuda_state *s = fli_state(env);
    cagra_dev *c = (cagra_dev *)s->cagra;
    if (!c) {
        c = (cagra_dev *)calloc(1, sizeof *c);
        if (!c) return FLI_FAIL(env, FL_STATUS_OUT_OF_MEMORY, "cagra cache", "host allocation failed");
        c->smem_set = -1;
        s->cagra = c;
    }
    *out = c;
    if (key != 0 && c->key == key && c->n == ix->n && c->d == ix->d && c->degree == ix->degree &&
        c->n_entries == ix->n_entries && c->metric == (int)ix->metric)
        return FL_STATUS_OK;
    cagra_dev_free_arrays(env, c);
    const int64_t n = ix->n, d = ix->d, d4 = fli_ceil_div(d, 4) * 4, deg = ix->degree, E = ix->n_entries;
    cudaStream_t st = s->stream;
    FLI_TRY(fli_dev_alloc(env, sizeof(float) * (size_t)(n * d4), (void **)&c->data));
    FLI_TRY(fli_dev_alloc(env, sizeof(int32_t) * (size_t)(n * deg), (void **)&c->graph));
    FLI_TRY(fli_dev_alloc(env, sizeof(int32_t) * (size_t)(E > 0 ? E : 1), (void **)&c->entries));
    cudaError_t e = cudaSuccess;
    if (d4 != d) e = cudaMemsetAsync(c->data, 0, sizeof(float) * (size_t)(n * d4), st);
    if (e == cudaSuccess)
        e = cudaMemcpy2DAsync(c->data, sizeof(float) * d4, ix->data, sizeof(float) * d, sizeof(float) * d, (size_t)n,
                              cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(c->graph, ix->graph, sizeof(int32_t) * (size_t)(n * deg), cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess && E > 0)
        e = cudaMemcpyAsync(c->entries, ix->entries, sizeof(int32_t) * (size_t)E, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    if (e != cudaSuccess) {
        const fl_status rc = fli_cuda_fail(env, __FILE__, __LINE__, "cagra upload", e);
        cagra_dev_free_arrays(env, c);
        return rc;
    }
    c->n = n, c->d = d, c->d4 = d4, c->degree = deg, c->n_entries = E, c->metric = (int)ix->metric;
    c->key = key;
    return FL_STATUS_OK;
}

/* ---- the search kernel ----------------------------------------------------- */

typedef struct cagra_args {
    const float *data;
    const int32_t *graph, *entries, *seeds;
    const float *qraw;
    const int64_t *self;
    int64_t n, d, d4, degree, n_entries, n_seeds, cap, width, max_iter, k, chunk;
    int metric, hbits;
    double *out_d;
    int64_t *out_i;
} cagra_args;

/* (ka, ia) before (kb, ib) in the buffer's order */
static __device__ __forceinline__ bool before(float ka, uint32_t ia, float kb, uint32_t ib)
{
    return ka < kb || (ka == kb && ia < ib);
}

/* Claims node v in the visited hash: true when it was not there. */
static __device__ __forceinline__ bool claim(int32_t *tab, uint32_t mask, int hbits, int32_t v, int *fill)
{
    uint32_t h = ((uint32_t)v * 0x9E3779B1u) >> (32 - hbits);
    for (;;) {
        const int32_t old = atomicCAS(&tab[h], -1, v);
        if (old == -1) {
            atomicAdd(fill, 1);
            return true;
        }
        if (old == v) return false;
        h = (h + 1) & mask;
    }
}

/*
 * Shared memory (dynamic): the query (d4 float32 normalised, d4 float32 as
 * given), the buffer and its merge target (2 x cap keys and nodes), the
 * new candidates (chunk keys and nodes), the hash (2^hbits int32).
 */
__global__ void __launch_bounds__(CAGRA_THREADS) cagra_search(cagra_args a)
{
    extern __shared__ __align__(16) unsigned char smem[];
    const int64_t q = blockIdx.x, d4 = a.d4, cap = a.cap;
    float *qn = (float *)smem;
    float *qr = qn + d4;
    float *bkey = qr + d4;
    uint32_t *bid = (uint32_t *)(bkey + cap);
    float *tkey = (float *)(bid + cap);
    uint32_t *tid_ = (uint32_t *)(tkey + cap);
    float *ckey = (float *)(tid_ + cap);
    uint32_t *cid = (uint32_t *)(ckey + a.chunk);
    int32_t *tab = (int32_t *)(cid + a.chunk);
    __shared__ int s_nb, s_fill, s_picked, s_len;
    __shared__ int32_t s_par[256];
    __shared__ double s_qs;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const uint32_t hsize = 1u << a.hbits, hmask = hsize - 1;
    const int ip = a.metric == 3, cosine = a.metric == 2, l2 = a.metric == 0 || a.metric == 1;
    const int64_t self = a.self ? a.self[q] : -1;

    /* the query: its cosine scale as cagra_cpu.c computes it (float64,
     * dimension order), the float32 copy the keys use */
    const float *qq = a.qraw + q * d4;
    if (tid == 0) {
        double s = 0;
        for (int64_t f = 0; f < a.d; f++) s = __dadd_rn(s, __dmul_rn((double)qq[f], (double)qq[f]));
        s_qs = cosine && s > 0 ? 1.0 / sqrt(s) : 1.0;
        s_len = 0;
        s_fill = 0;
    }
    for (uint32_t h = tid; h < hsize; h += blockDim.x) tab[h] = -1;
    __syncthreads();
    const double qs = s_qs;
    for (int64_t f = tid; f < d4; f += blockDim.x) {
        qr[f] = qq[f];
        qn[f] = (float)__dmul_rn((double)qq[f], qs);
    }
    __syncthreads();

    /* the current buffer and the merge target swap after every merge */
    float *ak = bkey, *tk = tkey;
    uint32_t *ai = bid, *ti = tid_;
    const int64_t total0 = a.n_entries + a.n_seeds;
    int64_t start = 0;
    for (int64_t it = 0;; it++) {
        /* 1. the nodes of this step into cid[0 .. s_nb) */
        if (tid == 0) s_nb = 0;
        /* the hash, refilled with the buffer's nodes when this step's
         * claims could fill it past 3/4 */
        if (s_fill + a.chunk > (int)(hsize - (hsize >> 2))) {
            __syncthreads();
            for (uint32_t h = tid; h < hsize; h += blockDim.x) tab[h] = -1;
            if (tid == 0) s_fill = 0;
            __syncthreads();
            for (int c = tid; c < s_len; c += blockDim.x) claim(tab, hmask, a.hbits, (int32_t)(ai[c] & ID_MASK), &s_fill);
            if (tid == 0 && self >= 0) claim(tab, hmask, a.hbits, (int32_t)self, &s_fill);
        }
        __syncthreads();
        int64_t nslots;
        const bool seeding = start < total0;
        if (seeding) {
            /* entry nodes, then the random seeds, a chunk at a time */
            nslots = total0 - start < a.chunk ? total0 - start : a.chunk;
            for (int64_t sl = tid; sl < nslots; sl += blockDim.x) {
                const int64_t at = start + sl;
                const int64_t v = at < a.n_entries ? a.entries[at] : a.seeds[q * a.n_seeds + (at - a.n_entries)];
                if (v < 0 || v >= a.n || v == self) continue;
                if (claim(tab, hmask, a.hbits, (int32_t)v, &s_fill)) cid[atomicAdd(&s_nb, 1)] = (uint32_t)v;
            }
            start += nslots;
        } else {
            if (a.max_iter > 0 && it - (total0 + a.chunk - 1) / a.chunk >= a.max_iter) break;
            /* warp 0 picks the width best unexpanded entries, in order */
            if (warp == 0) {
                int picked = 0;
                for (int base = 0; base < s_len && picked < a.width; base += 32) {
                    const int c = base + lane;
                    const bool open = c < s_len && !(ai[c] & DONE_BIT);
                    unsigned ball = __ballot_sync(0xffffffffu, open);
                    while (ball && picked < a.width) {
                        const int b = __ffs(ball) - 1;
                        ball &= ball - 1;
                        if (lane == b) {
                            s_par[picked] = (int32_t)(ai[c] & ID_MASK);
                            ai[c] |= DONE_BIT;
                        }
                        picked++;
                    }
                }
                if (lane == 0) s_picked = picked;
            }
            __syncthreads();
            const int picked = s_picked;
            if (picked == 0) break;
            nslots = (int64_t)picked * a.degree;
            for (int64_t sl = tid; sl < nslots; sl += blockDim.x) {
                const int64_t par = s_par[sl / a.degree];
                const int64_t v = a.graph[par * a.degree + sl % a.degree];
                if (v < 0 || v >= a.n || v == self) continue;
                if (claim(tab, hmask, a.hbits, (int32_t)v, &s_fill)) cid[atomicAdd(&s_nb, 1)] = (uint32_t)v;
            }
        }
        __syncthreads();
        const int nb = s_nb;
        /* 2. keys: a warp per candidate, lanes over float4 columns; two
         * candidates at a time so their loads overlap */
        const float4 *q4 = (const float4 *)qn;
        const int64_t c4 = d4 >> 2;
        for (int c = warp; c < nb; c += 2 * CAGRA_WARPS) {
            const int c2 = c + CAGRA_WARPS;
            const float4 *x = (const float4 *)(a.data + (int64_t)cid[c] * d4);
            const float4 *y = c2 < nb ? (const float4 *)(a.data + (int64_t)cid[c2] * d4) : x;
            float s = 0.f, t = 0.f;
            for (int64_t j = lane; j < c4; j += 32) {
                const float4 u = q4[j], xv = x[j], yv = y[j];
                if (l2) {
                    float e0 = u.x - xv.x, e1 = u.y - xv.y, e2 = u.z - xv.z, e3 = u.w - xv.w;
                    s += e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3;
                    e0 = u.x - yv.x, e1 = u.y - yv.y, e2 = u.z - yv.z, e3 = u.w - yv.w;
                    t += e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3;
                } else {
                    s += u.x * xv.x + u.y * xv.y + u.z * xv.z + u.w * xv.w;
                    t += u.x * yv.x + u.y * yv.y + u.z * yv.z + u.w * yv.w;
                }
            }
            for (int o = 16; o > 0; o >>= 1) {
                s += __shfl_xor_sync(0xffffffffu, s, o);
                t += __shfl_xor_sync(0xffffffffu, t, o);
            }
            if (lane == 0) {
                ckey[c] = l2 ? s : -s;
                if (c2 < nb) ckey[c2] = l2 ? t : -t;
            }
        }
        __syncthreads();
        /* 3. merge by rank into the target, then swap */
        const int len = s_len;
        for (int b = tid; b < nb; b += blockDim.x) {
            const float kb = ckey[b];
            const uint32_t ib = cid[b];
            int r = 0;
            for (int j = 0; j < nb; j++) r += before(ckey[j], cid[j], kb, ib);
            int lo = 0, hi = len;
            while (lo < hi) {
                const int mid = (lo + hi) >> 1;
                if (before(ak[mid], ai[mid] & ID_MASK, kb, ib))
                    lo = mid + 1;
                else
                    hi = mid;
            }
            r += lo;
            if (r < cap) tk[r] = kb, ti[r] = ib;
        }
        for (int i = tid; i < len; i += blockDim.x) {
            const float ka = ak[i];
            const uint32_t ia = ai[i];
            int r = i;
            for (int j = 0; j < nb; j++) r += before(ckey[j], cid[j], ka, ia & ID_MASK);
            if (r < cap) tk[r] = ka, ti[r] = ia;
        }
        __syncthreads();
        if (tid == 0) s_len = (int)(len + nb < cap ? len + nb : cap);
        {
            float *xk = ak;
            ak = tk, tk = xk;
            uint32_t *xi = ai;
            ai = ti, ti = xi;
        }
        __syncthreads();
    }
    __syncthreads();

    /* 4. the k best re-ranked in float64, cagra_cpu.c's order of operations */
    const int64_t m = s_len < a.k ? s_len : a.k;
    /* the merge target is free: its key and node arrays (contiguous, 8 x
     * cap bytes, 8-byte aligned) hold the k <= cap float64 distances */
    double *fd = (double *)tk;
    for (int64_t c = tid; c < m; c += blockDim.x) {
        const int64_t v = ai[c] & ID_MASK;
        const float *x = a.data + v * d4;
        double s = 0;
        if (l2) {
            for (int64_t f = 0; f < a.d; f++) {
                const double t = __dsub_rn(__dmul_rn((double)qr[f], qs), (double)x[f]);
                s = __dadd_rn(s, __dmul_rn(t, t));
            }
            if (a.metric == 1) s = sqrt(s);
        } else {
            for (int64_t f = 0; f < a.d; f++) s = __dadd_rn(s, __dmul_rn(__dmul_rn((double)qr[f], qs), (double)x[f]));
            if (cosine) s = __dsub_rn(1.0, s);
        }
        fd[c] = s;
    }
    for (int64_t c = tid; c < a.k; c += blockDim.x) {
        a.out_d[q * a.k + c] = ip ? -INFINITY : INFINITY;
        a.out_i[q * a.k + c] = -1;
    }
    __syncthreads();
    for (int64_t c = tid; c < m; c += blockDim.x) {
        const double dc = fd[c];
        const uint32_t ic = ai[c] & ID_MASK;
        int64_t r = 0;
        for (int64_t e = 0; e < m; e++) {
            const double de = fd[e];
            const uint32_t ie = ai[e] & ID_MASK;
            r += (ip ? de > dc : de < dc) || (de == dc && ie < ic);
        }
        a.out_d[q * a.k + r] = dc;
        a.out_i[q * a.k + r] = ic;
    }
}

/* ---- the driver ------------------------------------------------------------ */

static size_t a256(size_t b) { return (b + 255) & ~(size_t)255; }

extern "C" fl_status fli_cuda_cagra_search(fli_cuda_env *env, const fli_cagra_search_job *job)
{
    fli_cuda_state *st = fli_state(env);
    const fli_cagra_index *ix = &job->ix;
    const int64_t n = ix->n, d = ix->d, k = job->k, n_q = job->n_q, deg = ix->degree;
    const int64_t cap = job->itopk > k ? job->itopk : k;
    const int64_t width = job->width < 1 ? 1 : job->width;
    if (cap > CAGRA_MAX_ITOPK || width > 256 || width * deg > CAGRA_MAX_CAND || n >= ((int64_t)1 << 31) ||
        n < 1 || k < 1 || (job->n_seeds > 0 && !job->seed_nodes))
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "cagra_search",
                        "the GPU search takes itopk_size <= 512, search_width x graph_degree <= 1024 and fewer "
                        "than 2^31 nodes");
    if (n_q == 0) return FL_STATUS_OK;
    FLI_CUDA_TRY(env, cudaSetDevice(env->device_id));
    cagra_dev *c = NULL;
    FLI_TRY(cagra_upload(env, ix, job->index_key, &c));
    const int64_t d4 = c->d4;
    const int64_t chunk = width * deg > CAGRA_MIN_CHUNK ? width * deg : CAGRA_MIN_CHUNK;
    /* the hash: 4 x (buffer + a step's candidates) slots at least, 8192
     * when shared memory allows (fewer resets on long walks) */
    int hbits = 10;
    while (((int64_t)1 << hbits) < 4 * (cap + chunk)) hbits++;
    const size_t fixed = sizeof(float) * (size_t)(2 * d4) + 8 * (size_t)(2 * cap) + 8 * (size_t)chunk;
    while (hbits < 13 && fixed + sizeof(int32_t) * ((size_t)1 << (hbits + 1)) <= 64 * 1024) hbits++;
    const size_t smem = fixed + sizeof(int32_t) * ((size_t)1 << hbits);
    if (smem > (size_t)st->smem_optin)
        return FLI_FAIL(env, FL_STATUS_UNSUPPORTED, "cagra_search",
                        "the query, buffer and visited hash exceed the device's shared memory (n_features too "
                        "large)");
    if ((int64_t)smem > c->smem_set && smem > 48 * 1024) {
        FLI_CUDA_TRY(env,
                     cudaFuncSetAttribute(cagra_search, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        c->smem_set = (int64_t)smem;
    }
    /* per chunk of queries: the queries (d4), seeds, self ids, results */
    const int64_t qc = n_q < 65536 ? n_q : 65536, S = job->n_seeds;
    const size_t need = a256(sizeof(float) * (size_t)(qc * d4)) + a256(sizeof(int32_t) * (size_t)(qc * (S > 0 ? S : 1))) +
                        a256(sizeof(int64_t) * (size_t)qc) + a256(sizeof(double) * (size_t)(qc * k)) +
                        a256(sizeof(int64_t) * (size_t)(qc * k));
    if (need > c->ws_bytes) {
        fli_dev_free(env, c->ws);
        c->ws = NULL;
        c->ws_bytes = 0;
        FLI_TRY(fli_dev_alloc(env, need, &c->ws));
        c->ws_bytes = need;
    }
    char *w = (char *)c->ws;
    float *qraw = (float *)w;
    w += a256(sizeof(float) * (size_t)(qc * d4));
    int32_t *seeds = (int32_t *)w;
    w += a256(sizeof(int32_t) * (size_t)(qc * (S > 0 ? S : 1)));
    int64_t *self = (int64_t *)w;
    w += a256(sizeof(int64_t) * (size_t)qc);
    double *out_d = (double *)w;
    w += a256(sizeof(double) * (size_t)(qc * k));
    int64_t *out_i = (int64_t *)w;
    cudaStream_t s = st->stream;
    for (int64_t q0 = 0; q0 < n_q; q0 += qc) {
        const int64_t m = n_q - q0 < qc ? n_q - q0 : qc;
        if (d4 != d) FLI_CUDA_TRY(env, cudaMemsetAsync(qraw, 0, sizeof(float) * (size_t)(m * d4), s));
        FLI_CUDA_TRY(env, cudaMemcpy2DAsync(qraw, sizeof(float) * d4, job->q + q0 * job->q_ld,
                                            sizeof(float) * job->q_ld, sizeof(float) * d, (size_t)m,
                                            cudaMemcpyHostToDevice, s));
        if (S > 0)
            FLI_CUDA_TRY(env, cudaMemcpyAsync(seeds, job->seed_nodes + q0 * S, sizeof(int32_t) * (size_t)(m * S),
                                              cudaMemcpyHostToDevice, s));
        if (job->self_ids)
            FLI_CUDA_TRY(env, cudaMemcpyAsync(self, job->self_ids + q0, sizeof(int64_t) * (size_t)m,
                                              cudaMemcpyHostToDevice, s));
        cagra_args a;
        memset(&a, 0, sizeof a);
        a.data = c->data, a.graph = c->graph, a.entries = c->entries, a.seeds = seeds;
        a.qraw = qraw, a.self = job->self_ids ? self : NULL;
        a.n = n, a.d = d, a.d4 = d4, a.degree = deg, a.n_entries = c->n_entries, a.n_seeds = S;
        a.cap = cap, a.width = width, a.max_iter = job->max_iter, a.k = k, a.chunk = chunk;
        a.metric = (int)ix->metric, a.hbits = hbits;
        a.out_d = out_d, a.out_i = out_i;
        cagra_search<<<(unsigned)m, CAGRA_THREADS, smem, s>>>(a);
        FLI_LAUNCH_TRY(env, "cagra_search");
        FLI_CUDA_TRY(env, cudaMemcpyAsync(job->dist + q0 * k, out_d, sizeof(double) * (size_t)(m * k),
                                          cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaMemcpyAsync(job->idx + q0 * k, out_i, sizeof(int64_t) * (size_t)(m * k),
                                          cudaMemcpyDeviceToHost, s));
        FLI_CUDA_TRY(env, cudaStreamSynchronize(s));
        if (env->progress && env->progress(env->progress_user, "cagra.search", q0 + m, n_q))
            return FLI_FAIL(env, FL_STATUS_CANCELLED, "cagra_search", "cancelled by the progress callback");
    }
    return FL_STATUS_OK;
}
