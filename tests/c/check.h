/* check.h — a minimal test harness for the C tests: CHECK records a failure
 * with file:line and goes on; main returns the failure count. */
#ifndef FL_TEST_CHECK_H
#define FL_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        g_checks++;                                                                                          \
        if (!(cond)) {                                                                                       \
            g_failures++;                                                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
        }                                                                                                    \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                                 \
    do {                                                                                                     \
        g_checks++;                                                                                          \
        if (!(cond)) {                                                                                       \
            g_failures++;                                                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);                         \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

#define CHECK_OK(ctx, expr)                                                                                  \
    do {                                                                                                     \
        fl_status st_ = (expr);                                                                              \
        CHECK_MSG(st_ == FL_STATUS_OK, "%s -> %s: %s", #expr, fl_status_str(st_), fl_ctx_last_error(ctx));   \
    } while (0)

#define CHECK_ERR(ctx, expr, code, substr)                                                                   \
    do {                                                                                                     \
        fl_status st_ = (expr);                                                                              \
        CHECK_MSG(st_ == (code), "%s -> %s, expected %s (%s)", #expr, fl_status_str(st_),                    \
                  fl_status_str(code), fl_ctx_last_error(ctx));                                              \
        CHECK_MSG(strstr(fl_ctx_last_error(ctx), (substr)) != NULL, "message '%s' lacks '%s'",               \
                  fl_ctx_last_error(ctx), (substr));                                                         \
    } while (0)

#define TEST_MAIN_END()                                                                                      \
    do {                                                                                                     \
        printf("%d checks, %d failures\n", g_checks, g_failures);                                            \
        return g_failures ? 1 : 0;                                                                           \
    } while (0)

/* Gaussian blobs: k centres spread on a grid with spacing `sep`, unit noise.
 * Deterministic (own LCG) so tests do not depend on the library's RNG. */
static unsigned long long g_lcg = 88172645463325252ull;
static double test_uniform(void)
{
    g_lcg = g_lcg * 6364136223846793005ull + 1442695040888963407ull;
    return ((g_lcg >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static double test_normal(void)
{
    double u = test_uniform(), v = test_uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}
/* Centres drawn as sep x N(0, 1) per coordinate, points centre + noise x
 * N(0, 1); truth[i] = i % k. */
static void make_blobs(float *X, int *truth, long n, long d, long k, double sep, double noise)
{
    double *C = malloc(sizeof(double) * (size_t)(k * d));
    for (long i = 0; i < k * d; i++)
        C[i] = sep * test_normal();
    for (long i = 0; i < n; i++) {
        long c = i % k;
        truth[i] = (int)c;
        for (long j = 0; j < d; j++)
            X[i * d + j] = (float)(C[c * d + j] + noise * test_normal());
    }
    free(C);
}

/* A host allocator that fails its fail_at-th call and counts live blocks,
 * for failure injection (fail the Nth allocation for N = 1, 2, ... until
 * the call succeeds: each time a clean error and nothing leaked). */
typedef struct failing_alloc {
    long calls, fail_at, live;
} failing_alloc;

static inline void *fa_alloc(void *user, size_t bytes)
{
    failing_alloc *fa = user;
    if (++fa->calls == fa->fail_at)
        return NULL;
    void *p = malloc(bytes);
    if (p)
        fa->live++;
    return p;
}

static inline void fa_free(void *user, void *p)
{
    failing_alloc *fa = user;
    if (p) {
        fa->live--;
        free(p);
    }
}

#endif
