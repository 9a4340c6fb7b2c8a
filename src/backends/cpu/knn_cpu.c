/*
 * knn_cpu.c — the CPU backend of exact nearest neighbours (algo/knn_job.h):
 * float32 and float64, host buffers. The kernels are in knn_cpu_impl.inc,
 * instantiated once per element type; this file holds what does not depend
 * on the element type: the work plan, the candidate ordering, the entries.
 *
 * Shape of the search. Queries go in blocks of QB rows, the database in
 * tiles of TB rows. For one (query block, tile) pair the backend computes a
 * QB x TB tile of approximate keys (smaller = nearer) — one BLAS GEMM for
 * the euclidean family, cosine and inner product, direct loops over a
 * transposed tile for manhattan/minkowski — and each query row keeps the
 * best `cap` candidates in a bounded max-heap; a chunk of 16 keys whose
 * minimum does not beat the heap's worst is rejected with one vector
 * compare, so after the heap fills most keys cost a load and a compare.
 * The heap keeps a few more candidates than asked (oversampling); at the
 * end the pool is re-ranked by distances recomputed directly (differences,
 * float64 accumulation) and the first k are written: the GEMM form
 * ||q||^2 + ||x||^2 - 2<q,x> only picks candidates, it never decides the
 * order or the values returned. Euclidean keys are computed on data
 * centred on the database mean, which keeps the GEMM form accurate for data
 * far from the origin (distances do not change under a shift).
 *
 * Parallelism. Work items are (query block, database segment) pairs; with
 * few query blocks the database is cut into segments so that a handful of
 * queries still keeps every core busy, and each segment's pool is merged in
 * the exact re-rank. Block and segment boundaries depend on the shape only,
 * never on the thread count, and every candidate set is the smallest under
 * the total order (key, index), so results are identical for any number of
 * threads. BLAS is called from inside the OpenMP region (OpenMP OpenBLAS
 * then runs it on the calling thread), as the KMeans backend does.
 *
 * Memory. Per-thread tiles, the pools of one wave of query blocks and (with
 * a progress callback, which may cancel) a staging copy of the outputs, all
 * through the context's allocator and allocated before any work. Waves keep
 * the pools bounded and let the calling thread report progress between
 * them.
 */
#include <cblas.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "core/internal.h"

/* Keys per rejection test: compared with the worst kept in AVX2 vectors. */
#define KNN_CHUNK 16
/* Target bytes of one database tile (TB x d): a quarter of a 1 MiB L2. */
#define KNN_TILE_BYTES (1 << 18)
/* Queries per block: enough rows for the GEMM to amortise packing a tile
 * (256 against 64: 1.6 -> 1.1 s for 2000 x 100k x 128 on one core). */
#define KNN_QB 256
#define KNN_QB_MIN 64
/* Pool entries of one query block (QB x cap), about 768 KiB: large k
 * shrinks the block. */
#define KNN_POOL_ENTRIES (1 << 16)
/* Work items (query block x segment) worth spreading one search over. */
#define KNN_MIN_ITEMS 16
/* Pool bytes of one wave. */
#define KNN_WAVE_BYTES ((size_t)256 << 20)

/* The work plan: tiles, blocks, segments, pool sizes, waves. */
typedef struct knn_plan {
    int64_t TB, n_tiles;  /* database tile rows, tiles        */
    int64_t QB, NB;       /* query block rows, blocks          */
    int64_t S, seg_tiles; /* database segments, tiles in each  */
    int64_t kk;           /* candidates kept per query overall */
    int64_t cap;          /* pool capacity per query, segment  */
    int64_t G;            /* query blocks per wave             */
    int64_t fin_cap;      /* candidates of one query's re-rank */
} knn_plan;

/* One candidate of the exact re-rank: `key` orders (ascending, then by
 * index), `val` is the value returned. */
typedef struct knn_cand {
    double key;
    double val;
    int64_t id;
} knn_cand;

/* One radius hit: database index, its distance, its row in the block. */
typedef struct knn_hit {
    int64_t id;
    int64_t row;
    double val;
} knn_hit;

static int cand_cmp(const void *a, const void *b)
{
    const knn_cand *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Sorts by (key, id): insertion sort for the usual few dozen, qsort above. */
static void cand_sort(knn_cand *c, int64_t n)
{
    if (n > 32) {
        qsort(c, (size_t)n, sizeof *c, cand_cmp);
        return;
    }
    for (int64_t i = 1; i < n; i++) {
        knn_cand v = c[i];
        int64_t j = i;
        while (j > 0 && cand_cmp(&c[j - 1], &v) > 0) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = v;
    }
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Candidates kept beyond k so that the exact re-rank can repair the order
 * the GEMM form gets wrong among near-equal distances. */
static int64_t oversample(int64_t k)
{
    return k < 64 ? 8 : k / 8;
}

static void plan_tiles(knn_plan *pl, int64_t n_db, int64_t d, size_t es)
{
    int64_t tb = (int64_t)(KNN_TILE_BYTES / ((size_t)d * es));
    tb = tb / 64 * 64;
    tb = max64(64, min64(tb, 2048));
    pl->TB = min64(tb, n_db);
    pl->n_tiles = (n_db + pl->TB - 1) / pl->TB;
}

/* The plan of a k-nearest search: a function of the shape alone (plus the
 * wave width, which changes nothing in the results). */
static void plan_knn(knn_plan *pl, int64_t n_db, int64_t n_q, int64_t d, int64_t k, int self_exclude,
                     size_t es, int nt)
{
    memset(pl, 0, sizeof *pl);
    plan_tiles(pl, n_db, d, es);
    const int64_t avail = n_db - (self_exclude ? 1 : 0);
    pl->kk = min64(avail, k + oversample(k));
    /* Blocks of 64 to 256 queries, smaller ones while that still leaves
     * KNN_MIN_ITEMS blocks, and fewer queries when large k makes the pools
     * of one block (walked once per tile) outgrow the cache. */
    int64_t qb = min64(KNN_QB, max64(KNN_QB_MIN, (n_q + KNN_MIN_ITEMS - 1) / KNN_MIN_ITEMS));
    qb = max64(1, min64(min64(qb, n_q), KNN_POOL_ENTRIES / pl->kk));
    pl->QB = qb;
    pl->NB = (n_q + qb - 1) / qb;
    /* Too few blocks to go round: cut the database into segments too. */
    int64_t S = pl->NB >= KNN_MIN_ITEMS ? 1 : (KNN_MIN_ITEMS + pl->NB - 1) / pl->NB;
    S = min64(S, pl->n_tiles);
    pl->seg_tiles = (pl->n_tiles + S - 1) / S;
    pl->S = (pl->n_tiles + pl->seg_tiles - 1) / pl->seg_tiles;
    pl->cap = min64(pl->kk, pl->seg_tiles * pl->TB);
    pl->fin_cap = min64(pl->S * pl->cap, n_db);
    const size_t slot = (size_t)pl->S * (size_t)qb * (size_t)pl->cap * (es + sizeof(int64_t));
    int64_t G = min64(pl->NB, 4 * (int64_t)nt);
    while (G > 1 && (size_t)G * slot > KNN_WAVE_BYTES)
        G /= 2;
    pl->G = max64(G, 1);
}

#define T float
#define ITYPE int32_t
#define SFX f32
#define GEMM cblas_sgemm
#define T_EPS FLT_EPSILON
#include "backends/cpu/knn_cpu_impl.inc"
#undef T
#undef ITYPE
#undef SFX
#undef GEMM
#undef T_EPS

#define T double
#define ITYPE int64_t
#define SFX f64
#define GEMM cblas_dgemm
#define T_EPS DBL_EPSILON
#include "backends/cpu/knn_cpu_impl.inc"
#undef T
#undef ITYPE
#undef SFX
#undef GEMM
#undef T_EPS

/* Threads for a search: one below a million multiply-adds, where waking a
 * team (and leaving it spinning at the barrier) costs more than the work. */
static int search_threads(const fl_ctx *ctx, int64_t n_q, int64_t n_db, int64_t d)
{
    return (double)n_q * (double)n_db * (double)d < 1e6 ? 1 : fli_cpu_threads(ctx);
}

/* What both entries check: host buffers, a known dtype and metric, BLAS-sized
 * dimensions. */
static fl_status check_common(fl_ctx *ctx, fl_dtype dt, fli_knn_metric metric, double p, int64_t n_db,
                              int64_t n_q, int64_t d, int64_t db_ld, int64_t q_ld)
{
    if (dt != FL_DTYPE_F32 && dt != FL_DTYPE_F64)
        return fli_fail(ctx, FL_STATUS_INTERNAL, "knn CPU backend: dtype %s, expected f32 or f64",
                        fl_dtype_name(dt));
    if (metric < FLI_KNN_SQEUCLIDEAN || metric > FLI_KNN_MINKOWSKI ||
        (metric == FLI_KNN_MINKOWSKI && !(p >= 1)))
        return fli_fail(ctx, FL_STATUS_INTERNAL, "knn CPU backend: metric %d with p=%g", (int)metric, p);
    if (n_db < 1 || n_q < 0 || d < 1 || db_ld < d || q_ld < d)
        return fli_fail(ctx, FL_STATUS_INTERNAL, "knn CPU backend: shape n_db=%lld n_q=%lld d=%lld",
                        (long long)n_db, (long long)n_q, (long long)d);
    if (d > INT_MAX / 2)
        return fli_fail(ctx, FL_STATUS_UNSUPPORTED, "knn: %lld features exceed the BLAS's 32-bit sizes",
                        (long long)d);
    return FL_STATUS_OK;
}

fl_status fli_cpu_knn(fl_ctx *ctx, fli_knn_job *job)
{
    fl_status st = check_common(ctx, job->dtype, job->metric, job->p, job->n_db, job->n_q, job->d, job->db_ld,
                                job->q_ld);
    if (st)
        return st;
    if (job->db_dev >= 0 || job->q_dev >= 0 || job->out_dev >= 0)
        return fli_fail(ctx, FL_STATUS_INTERNAL, "knn CPU backend: device buffers");
    const int64_t avail = job->n_db - (job->self_exclude ? 1 : 0);
    if (job->k < 1 || job->k > avail || !job->idx || job->idx_ld < job->k ||
        (job->dist && job->dist_ld < job->k))
        return fli_fail(ctx, FL_STATUS_INTERNAL, "knn CPU backend: k=%lld with %lld candidates",
                        (long long)job->k, (long long)avail);
    if (job->self_exclude && (job->q_offset < 0 || job->q_offset + job->n_q > job->n_db))
        return fli_fail(ctx, FL_STATUS_INTERNAL, "knn CPU backend: q_offset out of range");
    job->stat_reranked = 0;
    job->stat_streamed_rows = 0;
    if (job->n_q == 0)
        return FL_STATUS_OK;
    const int nt = search_threads(ctx, job->n_q, job->n_db, job->d);
    knn_plan pl;
    plan_knn(&pl, job->n_db, job->n_q, job->d, job->k, job->self_exclude, fl_dtype_size(job->dtype), nt);
    return job->dtype == FL_DTYPE_F64 ? knn_search_f64(ctx, job, &pl, nt) : knn_search_f32(ctx, job, &pl, nt);
}

fl_status fli_cpu_knn_radius(fl_ctx *ctx, fli_knn_radius_job *job)
{
    fl_status st = check_common(ctx, job->dtype, job->metric, job->p, job->n_db, job->n_q, job->d, job->db_ld,
                                job->q_ld);
    if (st)
        return st;
    if (job->self_exclude && (job->q_offset < 0 || job->q_offset + job->n_q > job->n_db))
        return fli_fail(ctx, FL_STATUS_INTERNAL, "knn CPU backend: q_offset out of range");
    if (job->radius != job->radius)
        return fli_fail(ctx, FL_STATUS_INTERNAL, "knn CPU backend: radius is NaN");
    const int nt = search_threads(ctx, job->n_q, job->n_db, job->d);
    knn_plan pl;
    memset(&pl, 0, sizeof pl);
    plan_tiles(&pl, job->n_db, job->d, fl_dtype_size(job->dtype));
    pl.QB = max64(1, min64(KNN_QB, job->n_q));
    pl.NB = (job->n_q + pl.QB - 1) / pl.QB;
    pl.G = max64(1, min64(pl.NB, 4 * (int64_t)nt));
    return job->dtype == FL_DTYPE_F64 ? knn_radius_f64(ctx, job, &pl, nt) : knn_radius_f32(ctx, job, &pl, nt);
}
