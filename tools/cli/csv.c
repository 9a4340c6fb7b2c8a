/*
 * csv.c — the numeric CSV reader and writer (see csv.h for the rules).
 *
 * The reader goes line by line (getline), splits each line on commas in
 * place and parses every field with strtod in the C locale, so memory grows
 * only with the values actually present in the file.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "csv.h"

/* Writes "PATH: message" into err and returns st. */
static csv_status fail(char *err, size_t len, const char *path, csv_status st, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static csv_status fail(char *err, size_t len, const char *path, csv_status st, const char *fmt, ...)
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

enum { FIELD_OK = 0, FIELD_EMPTY = 1, FIELD_NAN_TEXT = 2, FIELD_RANGE = 3 };

/* Trims [*s, *e) of blanks and one pair of double quotes. */
static void trim(char **s, char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
    if (*e - *s >= 2 && **s == '"' && (*e)[-1] == '"') {
        (*s)++;
        (*e)--;
    }
}

/* Parses the field [s, e) without modifying it. Numbers longer than 127
 * characters are not numbers anyone writes: they count as text. */
static int parse_field(char *s, char *e, double *v)
{
    trim(&s, &e);
    if (s == e)
        return FIELD_EMPTY;
    char buf[128];
    size_t n = (size_t)(e - s);
    if (n >= sizeof buf)
        return FIELD_NAN_TEXT;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end = NULL;
    errno = 0;
    double d = strtod(buf, &end);
    if (end == buf || end != buf + n)
        return FIELD_NAN_TEXT;
    if (errno == ERANGE && fabs(d) == HUGE_VAL)
        return FIELD_RANGE;
    *v = d;
    return FIELD_OK;
}

/* A growable buffer of values of one dtype. */
typedef struct values {
    void *data;
    size_t count, cap;
    size_t es;
} values;

/* Appends v (converted to dt), doubling the capacity when full; -1 when
 * out of memory. */
static int values_push(values *b, double v, fl_dtype dt)
{
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        size_t bytes;
        if (cap < b->cap || __builtin_mul_overflow(cap, b->es, &bytes))
            return -1;
        void *p = realloc(b->data, bytes);
        if (!p)
            return -1;
        b->data = p;
        b->cap = cap;
    }
    if (dt == FL_DTYPE_F32)
        ((float *)b->data)[b->count++] = (float)v;
    else
        ((double *)b->data)[b->count++] = v;
    return 0;
}

/* Splits `line` on commas in place; fields[i] = start, ends[i] = end. */
static int64_t split(char *line, char ***starts, char ***ends, size_t *cap)
{
    int64_t n = 0;
    char *p = line;
    for (;;) {
        if ((size_t)n == *cap) {
            size_t c = *cap ? *cap * 2 : 64;
            char **a = realloc(*starts, c * sizeof *a);
            if (!a)
                return -1;
            *starts = a;
            char **b = realloc(*ends, c * sizeof *b);
            if (!b)
                return -1;
            *ends = b;
            *cap = c;
        }
        char *comma = strchr(p, ',');
        (*starts)[n] = p;
        (*ends)[n] = comma ? comma : p + strlen(p);
        n++;
        if (!comma)
            return n;
        p = comma + 1;
    }
}

/* Describes a field for a message: at most 32 characters, quoted. */
static void show(const char *s, const char *e, char *out, size_t cap)
{
    size_t n = (size_t)(e - s);
    if (n > 32)
        n = 32;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

csv_status csv_read(const char *path, fl_dtype dtype, csv_table *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    if (dtype != FL_DTYPE_F32 && dtype != FL_DTYPE_F64)
        return fail(err, err_len, path, CSV_ERR_FORMAT, "internal: CSV dtype must be f32 or f64");
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, err_len, path, CSV_ERR_OPEN, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return fail(err, err_len, path, CSV_ERR_OPEN, "is a directory");
    }
    values vals = {NULL, 0, 0, fl_dtype_size(dtype)};
    char *line = NULL, **starts = NULL, **ends = NULL;
    size_t line_cap = 0, field_cap = 0;
    ssize_t len;
    int64_t lineno = 0, cols = -1, cols_line = 0, header = 0, rows = 0;
    csv_status st = CSV_OK;
    while (st == CSV_OK && (len = getline(&line, &line_cap, f)) != -1) {
        lineno++;
        if (memchr(line, '\0', (size_t)len)) {
            st = fail(err, err_len, path, CSV_ERR_FORMAT, "line %lld contains a NUL byte (not a text file?)",
                      (long long)lineno);
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        const char *q = line;
        while (*q == ' ' || *q == '\t')
            q++;
        if (!*q || *q == '#')
            continue;
        int64_t nf = split(line, &starts, &ends, &field_cap);
        if (nf < 0) {
            st = fail(err, err_len, path, CSV_ERR_NOMEM, "out of memory at line %lld", (long long)lineno);
            break;
        }
        /* Header detection: the first content line, when no field is a number. */
        if (cols < 0 && !header) {
            int any_number = 0;
            for (int64_t i = 0; i < nf && !any_number; i++) {
                double v;
                any_number = parse_field(starts[i], ends[i], &v) == FIELD_OK;
            }
            if (!any_number) {
                header = lineno;
                cols = nf;
                cols_line = lineno;
                continue;
            }
        }
        if (cols >= 0 && nf != cols) {
            st = fail(err, err_len, path, CSV_ERR_FORMAT,
                      "line %lld has %lld column%s, expected %lld (as %s line %lld)", (long long)lineno,
                      (long long)nf, nf == 1 ? "" : "s", (long long)cols,
                      header == cols_line ? "in the header on" : "on", (long long)cols_line);
            break;
        }
        for (int64_t i = 0; i < nf; i++) {
            double v = 0;
            char txt[40];
            show(starts[i], ends[i], txt, sizeof txt);
            int rc = parse_field(starts[i], ends[i], &v);
            if (rc == FIELD_OK && dtype == FL_DTYPE_F32 && isfinite(v) && fabs(v) > FLT_MAX)
                rc = FIELD_RANGE;
            if (rc == FIELD_EMPTY) {
                st = fail(err, err_len, path, CSV_ERR_FORMAT, "line %lld, column %lld: empty field",
                          (long long)lineno, (long long)i + 1);
            } else if (rc == FIELD_NAN_TEXT) {
                int other_sep = nf == 1 && (strchr(txt, ';') || strchr(txt, '\t'));
                st = fail(err, err_len, path, CSV_ERR_FORMAT,
                          "line %lld, column %lld: '%s' is not a number%s", (long long)lineno,
                          (long long)i + 1, txt, other_sep ? " (fields must be separated by commas)" : "");
            } else if (rc == FIELD_RANGE) {
                st = fail(err, err_len, path, CSV_ERR_FORMAT,
                          "line %lld, column %lld: '%s' is out of range for %s", (long long)lineno,
                          (long long)i + 1, txt, dtype == FL_DTYPE_F32 ? "float32" : "float64");
            } else if (values_push(&vals, v, dtype)) {
                st = fail(err, err_len, path, CSV_ERR_NOMEM, "out of memory at line %lld", (long long)lineno);
            }
            if (st)
                break;
        }
        if (st)
            break;
        if (cols < 0) {
            cols = nf;
            cols_line = lineno;
        }
        rows++;
    }
    if (st == CSV_OK && ferror(f))
        st = fail(err, err_len, path, CSV_ERR_OPEN, "read error: %s", strerror(errno));
    if (st == CSV_OK && rows == 0)
        st = fail(err, err_len, path, CSV_ERR_FORMAT, "%s",
                  header ? "has a header line but no data rows" : "no data rows");
    free(line);
    free(starts);
    free(ends);
    fclose(f);
    if (st) {
        free(vals.data);
        return st;
    }
    out->data = vals.data;
    out->dtype = dtype;
    out->rows = rows;
    out->cols = cols;
    out->header_line = header;
    return CSV_OK;
}

/* Prints v with the fewest significant digits that read back exactly. */
static void put_real(FILE *f, double v, int is_f32)
{
    char buf[40];
    for (int prec = is_f32 ? 6 : 15; prec <= (is_f32 ? 9 : 17); prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        double back = strtod(buf, NULL);
        if (is_f32 ? (float)back == (float)v : back == v)
            break;
    }
    fputs(buf, f);
}

int csv_write(FILE *f, const void *data, fl_dtype dtype, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            const int64_t i = r * cols + c;
            if (c)
                fputc(',', f);
            switch (dtype) {
            case FL_DTYPE_F32: put_real(f, ((const float *)data)[i], 1); break;
            case FL_DTYPE_F64: put_real(f, ((const double *)data)[i], 0); break;
            case FL_DTYPE_I32: fprintf(f, "%d", ((const int32_t *)data)[i]); break;
            case FL_DTYPE_I64: fprintf(f, "%lld", (long long)((const int64_t *)data)[i]); break;
            default: errno = EINVAL; return -1;
            }
        }
        if (fputc('\n', f) == EOF)
            return -1;
    }
    return ferror(f) ? -1 : 0;
}
