/* status.c — status names, versions, dtypes, errors, host memory, RNG. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

const char *fl_status_str(fl_status status)
{
    switch (status) {
    case FL_STATUS_OK: return "FL_STATUS_OK";
    case FL_STATUS_INVALID_ARG: return "FL_STATUS_INVALID_ARG";
    case FL_STATUS_OUT_OF_MEMORY: return "FL_STATUS_OUT_OF_MEMORY";
    case FL_STATUS_DEVICE_OOM: return "FL_STATUS_DEVICE_OOM";
    case FL_STATUS_UNSUPPORTED: return "FL_STATUS_UNSUPPORTED";
    case FL_STATUS_NO_DEVICE: return "FL_STATUS_NO_DEVICE";
    case FL_STATUS_CUDA_ERROR: return "FL_STATUS_CUDA_ERROR";
    case FL_STATUS_IO_ERROR: return "FL_STATUS_IO_ERROR";
    case FL_STATUS_CORRUPT: return "FL_STATUS_CORRUPT";
    case FL_STATUS_VERSION_MISMATCH: return "FL_STATUS_VERSION_MISMATCH";
    case FL_STATUS_CANCELLED: return "FL_STATUS_CANCELLED";
    case FL_STATUS_NOT_FITTED: return "FL_STATUS_NOT_FITTED";
    case FL_STATUS_INTERNAL: return "FL_STATUS_INTERNAL";
    case FL_STATUS_NUMERICAL: return "FL_STATUS_NUMERICAL";
    }
    return "FL_STATUS_UNKNOWN";
}

const char *fl_version_string(void)
{
    return FL_VERSION_STRING;
}
int fl_version_number(void)
{
    return FL_VERSION_NUMBER;
}

size_t fl_dtype_size(fl_dtype dtype)
{
    switch (dtype) {
    case FL_DTYPE_F32: return 4;
    case FL_DTYPE_F64: return 8;
    case FL_DTYPE_F16: return 2;
    case FL_DTYPE_BF16: return 2;
    case FL_DTYPE_I32: return 4;
    case FL_DTYPE_I64: return 8;
    case FL_DTYPE_U8: return 1;
    }
    return 0;
}

const char *fl_dtype_name(fl_dtype dtype)
{
    switch (dtype) {
    case FL_DTYPE_F32: return "f32";
    case FL_DTYPE_F64: return "f64";
    case FL_DTYPE_F16: return "f16";
    case FL_DTYPE_BF16: return "bf16";
    case FL_DTYPE_I32: return "i32";
    case FL_DTYPE_I64: return "i64";
    case FL_DTYPE_U8: return "u8";
    }
    return "?";
}

fl_array fl_array_host(void *data, fl_dtype dtype, int64_t rows, int64_t cols)
{
    fl_array a = {data, dtype, FL_MEM_HOST, 0, rows, cols, cols};
    return a;
}

fl_array fl_array_cuda(void *data, fl_dtype dtype, int64_t rows, int64_t cols, int32_t device_id)
{
    fl_array a = {data, dtype, FL_MEM_CUDA, device_id, rows, cols, cols};
    return a;
}

/* ---- errors --------------------------------------------------------------- */
fl_status fli_fail(fl_ctx *ctx, fl_status status, const char *fmt, ...)
{
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
        va_end(ap);
        if (ctx->log && ctx->verbosity >= FL_LOG_ERROR)
            ctx->log(ctx->log_user, FL_LOG_ERROR, ctx->err);
    }
    return status;
}

void fli_clear_error(fl_ctx *ctx)
{
    if (ctx)
        ctx->err[0] = '\0';
}

void fli_log(fl_ctx *ctx, fl_log_level level, const char *fmt, ...)
{
    if (!ctx || !ctx->log || level > ctx->verbosity)
        return;
    char buf[FLI_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx->log(ctx->log_user, level, buf);
}

fl_status fli_progress(fl_ctx *ctx, const char *stage, int64_t done, int64_t total)
{
    if (ctx && ctx->progress && ctx->progress(ctx->progress_user, stage, done, total))
        return fli_fail(ctx, FL_STATUS_CANCELLED, "%s: cancelled by the progress callback at step %lld",
                        stage, (long long)done);
    return FL_STATUS_OK;
}

/* ---- host memory ----------------------------------------------------------- */
int fli_mul_overflow(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

void *fli_malloc(fl_ctx *ctx, size_t bytes, const char *what)
{
    if (bytes == 0)
        bytes = 1;
    void *p = NULL;
    if (ctx && ctx->halloc.alloc) {
        p = ctx->halloc.alloc(ctx->halloc.user, bytes);
    } else {
        size_t rounded = (bytes + 63) & ~(size_t)63;
        if (rounded >= bytes)
            p = aligned_alloc(64, rounded);
    }
    if (!p)
        fli_fail(ctx, FL_STATUS_OUT_OF_MEMORY, "out of host memory allocating %zu bytes for %s", bytes,
                 what ? what : "a buffer");
    return p;
}

void *fli_calloc(fl_ctx *ctx, size_t count, size_t size, const char *what)
{
    size_t bytes;
    if (fli_mul_overflow(count, size, &bytes)) {
        fli_fail(ctx, FL_STATUS_OUT_OF_MEMORY, "%s: %zu x %zu bytes overflows size_t", what ? what : "buffer",
                 count, size);
        return NULL;
    }
    void *p = fli_malloc(ctx, bytes, what);
    if (p)
        memset(p, 0, bytes);
    return p;
}

float *fli_host_f32_copy(fl_ctx *ctx, const fl_array *A)
{
    float *out = fli_calloc(ctx, (size_t)A->rows, sizeof(float) * (size_t)A->cols, "float32 copy");
    if (!out)
        return NULL;
    const int64_t ld = fli_ld(A);
    for (int64_t i = 0; i < A->rows; i++)
        for (int64_t j = 0; j < A->cols; j++)
            out[i * A->cols + j] = (float)((const double *)A->data)[i * ld + j];
    return out;
}

void fli_free(fl_ctx *ctx, void *p)
{
    if (!p)
        return;
    if (ctx && ctx->halloc.alloc)
        ctx->halloc.free(ctx->halloc.user, p);
    else
        free(p);
}

void fl_buffer_free(void *buf)
{
    free(buf);
}

/* ---- RNG ------------------------------------------------------------------ */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fli_rng_seed(fli_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t fli_rng_next(fli_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double fli_rng_uniform(fli_rng *r)
{
    return (double)(fli_rng_next(r) >> 11) * 0x1.0p-53;
}

int64_t fli_rng_below(fli_rng *r, int64_t n)
{
    uint64_t un = (uint64_t)n, x, lim = UINT64_MAX - UINT64_MAX % un;
    do
        x = fli_rng_next(r);
    while (x >= lim);
    return (int64_t)(x % un);
}

/* ---- arrays --------------------------------------------------------------- */
fl_status fli_check_array(fl_ctx *ctx, const fl_array *a, const char *what)
{
    if (!a)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s is NULL: expected an array descriptor", what);
    if (fl_dtype_size(a->dtype) == 0)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s has unknown dtype %d", what, (int)a->dtype);
    if (a->rows < 0 || a->cols < 0)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s has negative shape %lld x %lld", what,
                        (long long)a->rows, (long long)a->cols);
    if (a->ld != 0 && a->ld < a->cols)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s: leading dimension %lld < cols %lld", what,
                        (long long)a->ld, (long long)a->cols);
    if (a->mem != FL_MEM_HOST && a->mem != FL_MEM_CUDA)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s: unknown memory space %d", what, (int)a->mem);
    size_t bytes;
    if (fli_mul_overflow((size_t)a->rows, (size_t)fli_ld(a), &bytes) ||
        fli_mul_overflow(bytes, fl_dtype_size(a->dtype), &bytes))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s: %lld x %lld elements overflow 64-bit sizes", what,
                        (long long)a->rows, (long long)a->cols);
    if (!a->data && a->rows > 0 && a->cols > 0)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s.data is NULL for a %lld x %lld array", what,
                        (long long)a->rows, (long long)a->cols);
    return FL_STATUS_OK;
}

/* A float is NaN or Inf exactly when its exponent bits are all ones: an
 * integer test that vectorizes (a float x * 0 sum would not, as float
 * addition may not be reordered), over threads for large arrays; only a
 * failing array is scanned again for the first bad element. */
#define FINITE_ROWS(U, EXP)                                                                                  \
    do {                                                                                                     \
        const U *p = a->data;                                                                                \
        _Pragma(                                                                                             \
            "omp parallel for schedule(static) reduction(| : bad) num_threads(nt) if (big)") for (int64_t    \
                                                                                                      i = 0; \
                                                                                                  i <        \
                                                                                                  a->rows;   \
                                                                                                  i++)       \
        {                                                                                                    \
            U acc = 0;                                                                                       \
            for (int64_t j = 0; j < a->cols; j++)                                                            \
                acc |= (U)((p[i * ld + j] & (EXP)) == (EXP));                                                \
            bad |= acc != 0;                                                                                 \
        }                                                                                                    \
    } while (0)

fl_status fli_check_finite(fl_ctx *ctx, const fl_array *a, const char *what)
{
    const int64_t ld = fli_ld(a);
    const int big = a->rows * a->cols >= (1 << 20);
    const int nt = ctx && ctx->threads > 0 ? ctx->threads : omp_get_max_threads();
    int bad = 0;
    if (a->dtype == FL_DTYPE_F32)
        FINITE_ROWS(uint32_t, 0x7f800000u);
    else if (a->dtype == FL_DTYPE_F64)
        FINITE_ROWS(uint64_t, 0x7ff0000000000000ull);
    else
        return FL_STATUS_OK;
    if (!bad)
        return FL_STATUS_OK;
    for (int64_t i = 0; i < a->rows; i++) {
        for (int64_t j = 0; j < a->cols; j++) {
            double v = a->dtype == FL_DTYPE_F32 ? ((const float *)a->data)[i * ld + j]
                                                : ((const double *)a->data)[i * ld + j];
            if (!isfinite(v))
                return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                                "%s[%lld, %lld] is %s: input must be finite (no NaN or Inf)", what,
                                (long long)i, (long long)j, isnan(v) ? "NaN" : "Inf");
        }
    }
    return FL_STATUS_OK;
}

fl_status fli_check_data(fl_ctx *ctx, const fl_array *X, const char *what)
{
    fl_status st = fli_check_array(ctx, X, what);
    if (st)
        return st;
    if (X->dtype != FL_DTYPE_F32 && X->dtype != FL_DTYPE_F64)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s has dtype %s: expected f32 or f64", what,
                        fl_dtype_name(X->dtype));
    if (X->rows < 1 || X->cols < 1)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG,
                        "%s is empty (%lld x %lld): expected at least 1 sample and 1 feature", what,
                        (long long)X->rows, (long long)X->cols);
    if (X->mem == FL_MEM_HOST)
        return fli_check_finite(ctx, X, what);
    return FL_STATUS_OK;
}

fl_status fli_check_out(fl_ctx *ctx, const fl_array *out, fl_dtype dt, int64_t rows, int64_t cols,
                        const char *what)
{
    fl_status st = fli_check_array(ctx, out, what);
    if (st)
        return st;
    if (out->dtype != dt || out->rows != rows || out->cols != cols)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s: expected %s %lld x %lld, got %s %lld x %lld", what,
                        fl_dtype_name(dt), (long long)rows, (long long)cols, fl_dtype_name(out->dtype),
                        (long long)out->rows, (long long)out->cols);
    if (dt == FL_DTYPE_I32 && fli_ld(out) != 1)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "%s: labels must be contiguous (ld 1)", what);
    return FL_STATUS_OK;
}
