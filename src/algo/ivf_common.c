/*
 * ivf_common.c — helpers the IVF indexes share (ivf_common.h).
 */
#include <math.h>
#include <string.h>

#include "algo/ivf_common.h"

float *fli_ivf_rows_f32(fl_ctx *ctx, const fl_array *X, int normalise, fl_status *st)
{
    const int64_t n = X->rows, d = X->cols, ld = fli_ld(X);
    const size_t es = fl_dtype_size(X->dtype);
    float *out = fli_malloc(ctx, sizeof(float) * (size_t)(n * d), "IVF float32 rows");
    void *row = fli_malloc(ctx, es * (size_t)d, "IVF staging row");
    *st = FL_STATUS_OK;
    if (!out || !row) {
        *st = FL_STATUS_OUT_OF_MEMORY;
        goto fail;
    }
    const int32_t dev = fli_array_device(X);
    for (int64_t i = 0; i < n; i++) {
        const char *src = (const char *)X->data + es * (size_t)(i * ld);
        if (dev >= 0) {
            if ((*st = fli_copy(ctx, row, -1, src, dev, es * (size_t)d)) != FL_STATUS_OK)
                goto fail;
            src = row;
        }
        double s = 0;
        for (int64_t j = 0; j < d; j++) {
            double v = X->dtype == FL_DTYPE_F32 ? ((const float *)src)[j] : ((const double *)src)[j];
            out[i * d + j] = (float)v;
            s += v * v;
        }
        if (normalise && s > 0 && isfinite(s)) {
            const double inv = 1.0 / sqrt(s);
            for (int64_t j = 0; j < d; j++)
                out[i * d + j] = (float)(out[i * d + j] * inv);
        }
    }
    fli_free(ctx, row);
    if (dev >= 0) { /* device data was not checked on the way in */
        fl_array h = fl_array_host(out, FL_DTYPE_F32, n, d);
        if ((*st = fli_check_finite(ctx, &h, "X")) != FL_STATUS_OK) {
            fli_free(ctx, out);
            return NULL;
        }
    }
    return out;
fail:
    fli_free(ctx, out);
    fli_free(ctx, row);
    return NULL;
}

/* A uniform sample of m of the n rows, in row order (so it does not depend
 * on how it was drawn). */
static float *sample_rows(fl_ctx *ctx, const float *x, int64_t n, int64_t d, int64_t m, uint64_t seed)
{
    float *t = fli_malloc(ctx, sizeof(float) * (size_t)(m * d), "IVF training sample");
    int64_t *perm = fli_malloc(ctx, sizeof(int64_t) * (size_t)n, "IVF sample draw");
    if (!t || !perm) {
        fli_free(ctx, t);
        fli_free(ctx, perm);
        return NULL;
    }
    fli_rng r;
    fli_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = 0; i < m; i++) { /* partial Fisher-Yates */
        int64_t j = i + fli_rng_below(&r, n - i), tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    /* mark the chosen rows in the tail of perm (reused as bytes), then copy
     * them in order */
    unsigned char *mark = (unsigned char *)(perm + m);
    const size_t room = sizeof(int64_t) * (size_t)(n - m);
    if (room >= (size_t)n) {
        memset(mark, 0, (size_t)n);
        for (int64_t i = 0; i < m; i++)
            mark[perm[i]] = 1;
        for (int64_t i = 0, c = 0; i < n; i++)
            if (mark[i])
                memcpy(t + (c++) * d, x + i * d, sizeof(float) * (size_t)d);
    } else { /* m close to n: sort the chosen indices instead */
        for (int64_t i = 1; i < m; i++) {
            int64_t v = perm[i], j = i;
            while (j > 0 && perm[j - 1] > v)
                perm[j] = perm[j - 1], j--;
            perm[j] = v;
        }
        for (int64_t i = 0; i < m; i++)
            memcpy(t + i * d, x + perm[i] * d, sizeof(float) * (size_t)d);
    }
    fli_free(ctx, perm);
    return t;
}

fl_status fli_ivf_kmeans(fl_ctx *ctx, const float *x, int64_t n, int64_t d, int64_t m, int64_t k,
                         int64_t iters, uint64_t seed, float *centers)
{
    if (m > n)
        m = n;
    const float *t = x;
    float *sample = NULL;
    if (m < n) {
        if (!(sample = sample_rows(ctx, x, n, d, m, seed)))
            return FL_STATUS_OUT_OF_MEMORY;
        t = sample;
    }
    fl_params *kp = NULL;
    fl_status st = fl_params_create(ctx, "kmeans", &kp);
    if (!st)
        st = fl_params_set_int(ctx, kp, "n_clusters", k);
    if (!st)
        st = fl_params_set(ctx, kp, "init", "random");
    if (!st)
        st = fl_params_set_int(ctx, kp, "n_init", 1);
    if (!st)
        st = fl_params_set_int(ctx, kp, "max_iter", iters);
    if (!st)
        st = fl_params_set_int(ctx, kp, "random_state", (int64_t)(seed & 0x7fffffffffffffffull));
    if (!st) {
        fl_array T = fl_array_host((void *)t, FL_DTYPE_F32, m, d);
        fl_array C = fl_array_host(centers, FL_DTYPE_F32, k, d);
        st = fl_kmeans_fit(ctx, &T, NULL, kp, &C, NULL, NULL, NULL);
    }
    fl_params_free(kp);
    fli_free(ctx, sample);
    return st;
}

fl_status fli_ivf_put_result(fl_ctx *ctx, const double *dist, const int64_t *idx, int64_t n, int64_t k,
                             fl_array *D, fl_array *I)
{
    const int32_t idev = fli_array_device(I);
    fl_status st = FL_STATUS_OK;
    for (int64_t i = 0; i < n && !st; i++)
        st = fli_copy(ctx, (int64_t *)I->data + i * fli_ld(I), idev, idx + i * k, -1,
                      sizeof(int64_t) * (size_t)k);
    if (st || !D)
        return st;
    const int32_t ddev = fli_array_device(D);
    const size_t es = fl_dtype_size(D->dtype);
    float *row =
        D->dtype == FL_DTYPE_F32 ? fli_malloc(ctx, sizeof(float) * (size_t)k, "IVF distance row") : NULL;
    if (D->dtype == FL_DTYPE_F32 && !row)
        return FL_STATUS_OUT_OF_MEMORY;
    for (int64_t i = 0; i < n && !st; i++) {
        const void *src = dist + i * k;
        if (row) {
            for (int64_t c = 0; c < k; c++)
                row[c] = (float)dist[i * k + c];
            src = row;
        }
        st = fli_copy(ctx, (char *)D->data + es * (size_t)(i * fli_ld(D)), ddev, src, -1, es * (size_t)k);
    }
    fli_free(ctx, row);
    return st;
}
