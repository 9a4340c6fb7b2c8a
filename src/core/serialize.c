/*
 * serialize.c — the model file format, version 1 (little-endian):
 *
 *   "FLMODEL\0"            8-byte magic
 *   u32 format version     (1)
 *   u32 library version    (FL_VERSION_NUMBER of the writer)
 *   str algorithm          (u32 length + bytes)
 *   u32 n_params, then n_params x (str name, str value as text)
 *   u32 n_attrs,  then n_attrs  x (str name, u32 dtype, i64 rows, i64 cols, data)
 *   u32 CRC-32 of every byte before it
 *
 * Loading checks the size, the magic, the checksum, then every field against
 * the bytes that remain, then the algorithm's own consistency rules: a
 * truncated or corrupted input is FL_STATUS_CORRUPT, never a crash. Files
 * from a newer format version are FL_STATUS_VERSION_MISMATCH.
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define FL_FORMAT_VERSION 1u
static const char MAGIC[8] = {'F', 'L', 'M', 'O', 'D', 'E', 'L', '\0'};

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* ---- writer: a growable buffer --------------------------------------------- */
typedef struct wbuf {
    unsigned char *p;
    size_t len, cap;
    int oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put_u32(wbuf *b, uint32_t v)
{
    put(b, &v, 4);
}
static void put_i64(wbuf *b, int64_t v)
{
    put(b, &v, 8);
}
static void put_str(wbuf *b, const char *s)
{
    put_u32(b, (uint32_t)strlen(s));
    put(b, s, strlen(s));
}

fl_status fl_model_save_buffer(fl_model *m, void **buf, size_t *len)
{
    if (!m || !buf || !len)
        return fli_fail(m ? m->ctx : NULL, FL_STATUS_INVALID_ARG, "save: NULL argument");
    fli_clear_error(m->ctx);
    if (!m->fitted)
        return fli_fail(m->ctx, FL_STATUS_NOT_FITTED, "this %s model is not fitted: nothing to save",
                        m->algo->name);
    wbuf b = {0};
    put(&b, MAGIC, 8);
    put_u32(&b, FL_FORMAT_VERSION);
    put_u32(&b, (uint32_t)FL_VERSION_NUMBER);
    put_str(&b, m->algo->name);
    put_u32(&b, (uint32_t)m->algo->n_params);
    for (int i = 0; i < m->algo->n_params; i++) {
        char text[128];
        fl_params_get(m->ctx, m->params, m->algo->params[i].name, text, sizeof text);
        put_str(&b, m->algo->params[i].name);
        put_str(&b, text);
    }
    put_u32(&b, (uint32_t)m->n_attrs);
    for (int i = 0; i < m->n_attrs; i++) {
        const fli_attr *a = &m->attrs[i];
        put_str(&b, a->name);
        put_u32(&b, (uint32_t)a->dtype);
        put_i64(&b, a->rows);
        put_i64(&b, a->cols);
        put(&b, a->data, (size_t)(a->rows * a->cols) * fl_dtype_size(a->dtype));
    }
    uint32_t crc = b.oom ? 0 : crc32_update(0, b.p, b.len);
    put_u32(&b, crc);
    if (b.oom) {
        free(b.p);
        return fli_fail(m->ctx, FL_STATUS_OUT_OF_MEMORY, "out of host memory serializing the model");
    }
    *buf = b.p;
    *len = b.len;
    return FL_STATUS_OK;
}

fl_status fl_model_save(fl_model *m, const char *path)
{
    if (!m || !path)
        return fli_fail(m ? m->ctx : NULL, FL_STATUS_INVALID_ARG, "save: NULL argument");
    void *buf;
    size_t len;
    fl_status st = fl_model_save_buffer(m, &buf, &len);
    if (st)
        return st;
    /* Write to a temporary name and rename, so a failed save never leaves a
     * truncated file where a good one was. */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(buf);
        return fli_fail(m->ctx, FL_STATUS_INVALID_ARG, "save: path too long");
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(buf);
        return fli_fail(m->ctx, FL_STATUS_IO_ERROR, "cannot open '%s' for writing", tmp);
    }
    int ok = fwrite(buf, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    free(buf);
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return fli_fail(m->ctx, FL_STATUS_IO_ERROR, "cannot write model file '%s'", path);
    }
    return FL_STATUS_OK;
}

/* ---- reader ---------------------------------------------------------------- */
typedef struct rbuf {
    const unsigned char *p;
    size_t len, pos;
} rbuf;

static int get(rbuf *r, void *dst, size_t n)
{
    if (n > r->len - r->pos)
        return 0;
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return 1;
}
static int get_u32(rbuf *r, uint32_t *v)
{
    return get(r, v, 4);
}
static int get_i64(rbuf *r, int64_t *v)
{
    return get(r, v, 8);
}
static int get_str(rbuf *r, char *dst, size_t cap)
{
    uint32_t n;
    if (!get_u32(r, &n) || n >= cap || !get(r, dst, n))
        return 0;
    dst[n] = '\0';
    return 1;
}

#define CORRUPT(what) fli_fail(ctx, FL_STATUS_CORRUPT, "model data is corrupt or truncated: %s", what)

fl_status fl_model_load_buffer(fl_ctx *ctx, const void *buf, size_t len, fl_model **out)
{
    if (!ctx || !out || (!buf && len))
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "load: NULL argument");
    fli_clear_error(ctx);
    const unsigned char *p = buf;
    if (len < 8 + 4 + 4 + 4 || memcmp(p, MAGIC, 8) != 0)
        return len >= 8 && memcmp(p, MAGIC, 8) == 0
                   ? CORRUPT("too short")
                   : fli_fail(ctx, FL_STATUS_CORRUPT, "not a flashlib model (bad magic number)");
    uint32_t fmt;
    memcpy(&fmt, p + 8, 4);
    if (fmt > FL_FORMAT_VERSION || fmt == 0)
        return fli_fail(ctx, FL_STATUS_VERSION_MISMATCH,
                        "model format version %u is not supported by flashlib %s (reads up to %u)", fmt,
                        FL_VERSION_STRING, FL_FORMAT_VERSION);
    uint32_t crc_stored;
    memcpy(&crc_stored, p + len - 4, 4);
    if (crc32_update(0, p, len - 4) != crc_stored)
        return CORRUPT("checksum mismatch");
    rbuf r = {p, len - 4, 16};
    char algo[64], name[128], value[128];
    if (!get_str(&r, algo, sizeof algo))
        return CORRUPT("algorithm name");
    fl_model *m = NULL;
    fl_status st = fl_model_create(ctx, algo, NULL, &m);
    if (st)
        return fli_fail(ctx, FL_STATUS_CORRUPT, "model names an unknown algorithm '%s'", algo);
    uint32_t np, na;
    fli_attr_set set = {0};
    if (!get_u32(&r, &np) || np > FLI_MAX_PARAMS) {
        st = CORRUPT("parameter count");
        goto fail;
    }
    for (uint32_t i = 0; i < np; i++) {
        if (!get_str(&r, name, sizeof name) || !get_str(&r, value, sizeof value)) {
            st = CORRUPT("parameter record");
            goto fail;
        }
        if (fl_params_set(ctx, m->params, name, value) != FL_STATUS_OK) {
            char why[FLI_ERR_LEN];
            snprintf(why, sizeof why, "%s", ctx->err);
            st = fli_fail(ctx, FL_STATUS_CORRUPT, "model data is corrupt: parameter %s", why);
            goto fail;
        }
    }
    if (!get_u32(&r, &na) || na > FLI_MAX_ATTRS) {
        st = CORRUPT("attribute count");
        goto fail;
    }
    for (uint32_t i = 0; i < na; i++) {
        uint32_t dt;
        int64_t rows, cols;
        if (!get_str(&r, name, FLI_ATTR_NAME_LEN) || !get_u32(&r, &dt) || !get_i64(&r, &rows) ||
            !get_i64(&r, &cols)) {
            st = CORRUPT("attribute header");
            goto fail;
        }
        size_t es = fl_dtype_size((fl_dtype)dt), bytes;
        if (!es || rows < 0 || cols < 0 || fli_mul_overflow((size_t)rows, (size_t)cols, &bytes) ||
            fli_mul_overflow(bytes, es, &bytes) || bytes > r.len - r.pos) {
            st = CORRUPT("attribute size");
            goto fail;
        }
        int known = 0;
        for (const char *const *an = m->algo->attr_names; *an; an++)
            known |= !strcmp(*an, name);
        if (!known || fli_attr_find(&set, name)) {
            st = fli_fail(ctx, FL_STATUS_CORRUPT, "model data is corrupt: unexpected attribute '%s'", name);
            goto fail;
        }
        void *data;
        st = fli_attr_add(ctx, &set, name, (fl_dtype)dt, rows, cols, &data);
        if (st)
            goto fail;
        get(&r, data, bytes);
    }
    if (r.pos != r.len) {
        st = CORRUPT("trailing bytes");
        goto fail;
    }
    if (m->algo->check_attrs && (st = m->algo->check_attrs(ctx, m->params, &set)) != FL_STATUS_OK)
        goto fail;
    fli_model_adopt(m, &set);
    *out = m;
    return FL_STATUS_OK;
fail:
    fli_attr_set_free(ctx, &set);
    fl_model_free(m);
    return st;
}

fl_status fl_model_load(fl_ctx *ctx, const char *path, fl_model **out)
{
    if (!ctx || !path || !out)
        return fli_fail(ctx, FL_STATUS_INVALID_ARG, "load: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f)
        return fli_fail(ctx, FL_STATUS_IO_ERROR, "cannot open model file '%s'", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (sz < 0) {
        fclose(f);
        return fli_fail(ctx, FL_STATUS_IO_ERROR, "cannot read model file '%s'", path);
    }
    void *buf = malloc((size_t)sz + 1);
    if (!buf) {
        fclose(f);
        return fli_fail(ctx, FL_STATUS_OUT_OF_MEMORY, "out of host memory reading '%s'", path);
    }
    size_t got = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    fl_status st = got == (size_t)sz ? fl_model_load_buffer(ctx, buf, (size_t)sz, out)
                                     : fli_fail(ctx, FL_STATUS_IO_ERROR, "short read on '%s'", path);
    free(buf);
    return st;
}
