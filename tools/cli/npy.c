/*
 * npy.c — the .npy reader and writer (see npy.h for what is accepted).
 *
 * Layout of a file: the magic "\x93NUMPY", two version bytes, the header
 * length (2 bytes little-endian in v1, 4 bytes in v2/v3), then the header:
 * a Python dict literal such as
 *     {'descr': '<f8', 'fortran_order': False, 'shape': (1000, 8), }
 * padded with spaces and ended by '\n', then the raw data. The header is
 * parsed by a small recursive-descent reader that accepts exactly the
 * literals numpy writes (strings, True/False, tuples of integers) and
 * nothing else, so that no input can make it evaluate anything.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "npy.h"

#define NPY_MAX_HEADER (1u << 20) /* numpy itself refuses headers over 10 kB by default */
#define NPY_MAX_DIMS 8

static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

int npy_has_magic(const unsigned char *buf, size_t len)
{
    return len >= sizeof magic && !memcmp(buf, magic, sizeof magic);
}

/* The reader and writer copy raw bytes: they need a little-endian host. */
static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char c;
    memcpy(&c, &one, 1);
    return c == 1;
}

/* Writes "PATH: message" into err. */
static npy_status fail(char *err, size_t len, const char *path, npy_status st, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static npy_status fail(char *err, size_t len, const char *path, npy_status st, const char *fmt, ...)
{
    int n = snprintf(err, len, "%s: ", path);
    if (n >= 0 && (size_t)n < len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, len - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* ---- header parsing ------------------------------------------------------- */

typedef struct npy_header {
    char descr[32];
    int fortran;
    int ndim;
    int64_t dims[NPY_MAX_DIMS];
    int seen_descr, seen_fortran, seen_shape;
} npy_header;

typedef struct cursor {
    const char *p;
    const char *why; /* what was expected where parsing stopped */
} cursor;

/* Skips blanks and newlines. */
static void skip_ws(cursor *c)
{
    while (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')
        c->p++;
}

/* A quoted string ('...' or "...") into out; 0 on success. */
static int parse_string(cursor *c, char *out, size_t cap)
{
    char q = *c->p;
    if (q != '\'' && q != '"') {
        c->why = "expected a quoted string";
        return -1;
    }
    const char *s = ++c->p;
    while (*c->p && *c->p != q)
        c->p++;
    if (*c->p != q) {
        c->why = "unterminated string";
        return -1;
    }
    size_t n = (size_t)(c->p - s);
    if (n >= cap) {
        c->why = "string too long";
        return -1;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    c->p++;
    return 0;
}

/* Python's True or False. */
static int parse_bool(cursor *c, int *out)
{
    if (!strncmp(c->p, "True", 4)) {
        *out = 1;
        c->p += 4;
        return 0;
    }
    if (!strncmp(c->p, "False", 5)) {
        *out = 0;
        c->p += 5;
        return 0;
    }
    c->why = "expected True or False";
    return -1;
}

/* A non-negative integer below 2^62 (an 'L' suffix from Python 2 is allowed). */
static int parse_dim(cursor *c, int64_t *out)
{
    if (*c->p < '0' || *c->p > '9') {
        c->why = "expected a non-negative integer dimension";
        return -1;
    }
    int64_t v = 0;
    while (*c->p >= '0' && *c->p <= '9') {
        v = v * 10 + (*c->p++ - '0');
        if (v > ((int64_t)1 << 62)) {
            c->why = "dimension too large";
            return -1;
        }
    }
    if (*c->p == 'L')
        c->p++;
    *out = v;
    return 0;
}

/* A tuple of dimensions: "()", "(5,)", "(3, 4)". */
static int parse_shape(cursor *c, npy_header *h)
{
    if (*c->p != '(') {
        c->why = "expected a tuple for 'shape'";
        return -1;
    }
    c->p++;
    h->ndim = 0;
    for (;;) {
        skip_ws(c);
        if (*c->p == ')') {
            c->p++;
            return 0;
        }
        if (h->ndim >= NPY_MAX_DIMS) {
            c->why = "too many dimensions";
            return -1;
        }
        if (parse_dim(c, &h->dims[h->ndim++]))
            return -1;
        skip_ws(c);
        if (*c->p == ',')
            c->p++;
        else if (*c->p != ')') {
            c->why = "expected ',' or ')' in 'shape'";
            return -1;
        }
    }
}

/* The header dict; 0 on success, else c->why says what was expected. */
static int parse_header(cursor *c, npy_header *h)
{
    memset(h, 0, sizeof *h);
    skip_ws(c);
    if (*c->p != '{') {
        c->why = "expected '{'";
        return -1;
    }
    c->p++;
    for (;;) {
        skip_ws(c);
        if (*c->p == '}') {
            c->p++;
            break;
        }
        char key[32];
        if (parse_string(c, key, sizeof key))
            return -1;
        skip_ws(c);
        if (*c->p != ':') {
            c->why = "expected ':' after a key";
            return -1;
        }
        c->p++;
        skip_ws(c);
        int rc;
        if (!strcmp(key, "descr") && !h->seen_descr) {
            if (*c->p == '[') {
                c->why = "structured dtypes (a list 'descr') are not supported";
                return -1;
            }
            rc = parse_string(c, h->descr, sizeof h->descr);
            h->seen_descr = 1;
        } else if (!strcmp(key, "fortran_order") && !h->seen_fortran) {
            rc = parse_bool(c, &h->fortran);
            h->seen_fortran = 1;
        } else if (!strcmp(key, "shape") && !h->seen_shape) {
            rc = parse_shape(c, h);
            h->seen_shape = 1;
        } else {
            c->why = "unexpected or repeated key (expected 'descr', 'fortran_order', 'shape')";
            return -1;
        }
        if (rc)
            return -1;
        skip_ws(c);
        if (*c->p == ',')
            c->p++;
        else if (*c->p != '}') {
            c->why = "expected ',' or '}'";
            return -1;
        }
    }
    skip_ws(c);
    if (*c->p) {
        c->why = "unexpected text after the dict";
        return -1;
    }
    if (!h->seen_descr || !h->seen_fortran || !h->seen_shape) {
        c->why = "missing key (the header needs 'descr', 'fortran_order' and 'shape')";
        return -1;
    }
    return 0;
}

/* Maps a descr to a dtype; 0 when unsupported. */
static fl_dtype descr_dtype(const char *d)
{
    if (d[0] != '<' && d[0] != '=')
        return (fl_dtype)0;
    if (!strcmp(d + 1, "f4"))
        return FL_DTYPE_F32;
    if (!strcmp(d + 1, "f8"))
        return FL_DTYPE_F64;
    if (!strcmp(d + 1, "i4"))
        return FL_DTYPE_I32;
    if (!strcmp(d + 1, "i8"))
        return FL_DTYPE_I64;
    return (fl_dtype)0;
}

/* numpy's short name of a dtype ("f4") for messages. */
static const char *short_name(fl_dtype t)
{
    switch (t) {
    case FL_DTYPE_F32: return "f4";
    case FL_DTYPE_F64: return "f8";
    case FL_DTYPE_I32: return "i4";
    case FL_DTYPE_I64: return "i8";
    default: return "?";
    }
}

/* Copies up to 40 characters of the header with non-printables shown as '?'. */
static void snippet(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 1 < cap && n < 40; s++)
        out[n++] = (*s >= 32 && *s < 127) ? *s : '?';
    out[n] = '\0';
}

/* ---- reading ---------------------------------------------------------------- */

/* Reads and checks the preamble and header; leaves f at the data. */
static npy_status read_header(FILE *f, const char *path, int64_t file_size, npy_header *h, int64_t *data_off,
                              char *err, size_t len)
{
    unsigned char pre[12];
    size_t got = fread(pre, 1, sizeof pre, f);
    if (got < 10 || !npy_has_magic(pre, got)) {
        if (got >= 6 && !npy_has_magic(pre, got))
            return fail(err, len, path, NPY_ERR_FORMAT,
                        "not an .npy file (it does not start with \\x93NUMPY)");
        return fail(err, len, path, NPY_ERR_FORMAT, "too short to be an .npy file (%lld bytes)",
                    (long long)file_size);
    }
    int major = pre[6], minor = pre[7];
    uint32_t hlen;
    int64_t pre_len;
    if (major == 1 && minor == 0) {
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
        pre_len = 10;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (got < 12)
            return fail(err, len, path, NPY_ERR_FORMAT, "truncated in the preamble (%lld bytes)",
                        (long long)file_size);
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
        pre_len = 12;
    } else {
        return fail(err, len, path, NPY_ERR_FORMAT,
                    "unsupported .npy format version %d.%d (expected 1.0, 2.0 or 3.0)", major, minor);
    }
    if (hlen > NPY_MAX_HEADER)
        return fail(err, len, path, NPY_ERR_FORMAT, "header length %u is implausible (corrupt file?)", hlen);
    if (pre_len + (int64_t)hlen > file_size)
        return fail(err, len, path, NPY_ERR_FORMAT,
                    "truncated: the header needs %u bytes, the file has %lld after the preamble", hlen,
                    (long long)(file_size - pre_len));
    char *text = malloc((size_t)hlen + 1);
    if (!text)
        return fail(err, len, path, NPY_ERR_NOMEM, "out of memory reading the header");
    if (fseek(f, (long)pre_len, SEEK_SET) || fread(text, 1, hlen, f) != hlen) {
        free(text);
        return fail(err, len, path, NPY_ERR_OPEN, "read error in the header: %s", strerror(errno));
    }
    text[hlen] = '\0';
    npy_status st = NPY_OK;
    cursor c = {text, NULL};
    if (strlen(text) != hlen) {
        st = fail(err, len, path, NPY_ERR_FORMAT, "malformed header: it contains a NUL byte");
    } else if (parse_header(&c, h)) {
        char snip[48];
        snippet(c.p, snip, sizeof snip);
        st = fail(err, len, path, NPY_ERR_FORMAT, "malformed header at byte %d: %s (at \"%s\")",
                  (int)(c.p - text), c.why ? c.why : "syntax error", snip);
    }
    free(text);
    *data_off = pre_len + (int64_t)hlen;
    return st;
}

npy_status npy_read(const char *path, npy_array *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    if (!host_is_little_endian())
        return fail(err, err_len, path, NPY_ERR_FORMAT, "this reader supports little-endian hosts only");
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, err_len, path, NPY_ERR_OPEN, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return fail(err, err_len, path, NPY_ERR_OPEN, "not a regular file");
    }
    const int64_t file_size = (int64_t)sb.st_size;
    npy_header h;
    int64_t off = 0;
    npy_status st = read_header(f, path, file_size, &h, &off, err, err_len);
    if (st) {
        fclose(f);
        return st;
    }
    fl_dtype dt = descr_dtype(h.descr);
    if (!dt) {
        fclose(f);
        char little[sizeof h.descr + 1];
        snprintf(little, sizeof little, "<%.30s", h.descr[0] ? h.descr + 1 : "");
        if (h.descr[0] == '>' && descr_dtype(little))
            return fail(err, err_len, path, NPY_ERR_FORMAT,
                        "dtype '%s' is big-endian: save it little-endian (X.astype('<%s'))", h.descr,
                        h.descr + 1);
        return fail(
            err, err_len, path, NPY_ERR_FORMAT,
            "dtype '%s' is not supported: expected '<f4' or '<f8' (float32/float64; '<i4'/'<i8' for labels)",
            h.descr);
    }
    if (h.fortran) {
        fclose(f);
        return fail(
            err, err_len, path, NPY_ERR_FORMAT,
            "fortran_order is True (column-major data): save it in C order (np.ascontiguousarray(X))");
    }
    if (h.ndim < 1 || h.ndim > 2) {
        fclose(f);
        if (h.ndim == 0)
            return fail(err, err_len, path, NPY_ERR_FORMAT,
                        "holds a 0-d scalar: expected a 1-D or 2-D array");
        return fail(err, err_len, path, NPY_ERR_FORMAT, "has %d dimensions: expected a 1-D or 2-D array",
                    h.ndim);
    }
    const int64_t rows = h.dims[0], cols = h.ndim == 2 ? h.dims[1] : 1;
    const size_t es = fl_dtype_size(dt);
    size_t count, bytes;
    char shape[64];
    if (h.ndim == 2)
        snprintf(shape, sizeof shape, "%lld x %lld", (long long)rows, (long long)cols);
    else
        snprintf(shape, sizeof shape, "%lld", (long long)rows);
    if (__builtin_mul_overflow((size_t)rows, (size_t)cols, &count) ||
        __builtin_mul_overflow(count, es, &bytes) || bytes > (size_t)INT64_MAX) {
        fclose(f);
        return fail(err, err_len, path, NPY_ERR_FORMAT, "shape %s is too large", shape);
    }
    const int64_t have = file_size - off;
    if ((int64_t)bytes != have) {
        fclose(f);
        return fail(err, err_len, path, NPY_ERR_FORMAT,
                    "%s: header says %s %s = %lld bytes of data, file has %lld",
                    (int64_t)bytes > have ? "truncated" : "trailing bytes after the data", shape,
                    short_name(dt), (long long)bytes, (long long)have);
    }
    void *data = malloc(bytes ? bytes : 1);
    if (!data) {
        fclose(f);
        return fail(err, err_len, path, NPY_ERR_NOMEM, "out of memory: %lld bytes of data", (long long)bytes);
    }
    if (fseek(f, (long)off, SEEK_SET) || fread(data, 1, bytes, f) != bytes) {
        int e = errno;
        free(data);
        fclose(f);
        return fail(err, err_len, path, NPY_ERR_OPEN, "read error in the data: %s",
                    e ? strerror(e) : "the file shrank while being read");
    }
    fclose(f);
    out->data = data;
    out->dtype = dt;
    out->rows = rows;
    out->cols = cols;
    out->ndim = h.ndim;
    return NPY_OK;
}

/* ---- writing ------------------------------------------------------------------ */

int npy_write(FILE *f, const void *data, fl_dtype dtype, int64_t rows, int64_t cols, int ndim)
{
    const char *descr = dtype == FL_DTYPE_F32   ? "<f4"
                        : dtype == FL_DTYPE_F64 ? "<f8"
                        : dtype == FL_DTYPE_I32 ? "<i4"
                        : dtype == FL_DTYPE_I64 ? "<i8"
                                                : NULL;
    if (!descr || rows < 0 || cols < 0 || (ndim == 1 && cols != 1) || !host_is_little_endian()) {
        errno = EINVAL;
        return -1;
    }
    char dict[160];
    int n;
    if (ndim == 1)
        n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%lld,), }", descr,
                     (long long)rows);
    else
        n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%lld, %lld), }",
                     descr, (long long)rows, (long long)cols);
    /* Pad with spaces so that preamble + header + '\n' is a multiple of 64. */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)n + pad + 1;
    unsigned char pre[10];
    memcpy(pre, magic, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(hlen & 0xff);
    pre[9] = (unsigned char)(hlen >> 8);
    if (fwrite(pre, 1, sizeof pre, f) != sizeof pre || fwrite(dict, 1, (size_t)n, f) != (size_t)n)
        return -1;
    for (size_t i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    size_t bytes = (size_t)rows * (size_t)cols * fl_dtype_size(dtype);
    if (bytes && fwrite(data, 1, bytes, f) != bytes)
        return -1;
    return ferror(f) ? -1 : 0;
}
