/*
 * io.c — matrices from .npy/CSV files, and output files that appear only
 * when the whole command succeeded.
 *
 * Outputs are written to a temporary file in the destination's directory
 * (so the final rename(2) is atomic and never crosses file systems) and
 * renamed into place after every output of the command was written. A
 * failure at any point removes the temporaries: a failed or interrupted
 * command never leaves a partial or stale-looking output behind.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "csv.h"
#include "npy.h"

void cli_matrix_free(cli_matrix *m)
{
    if (!m)
        return;
    free(m->data);
    memset(m, 0, sizeof *m);
}

fl_dtype cli_parse_dtype(const char *s)
{
    if (!s)
        return (fl_dtype)0;
    if (!strcmp(s, "f32") || !strcmp(s, "float32") || !strcmp(s, "f4"))
        return FL_DTYPE_F32;
    if (!strcmp(s, "f64") || !strcmp(s, "float64") || !strcmp(s, "f8"))
        return FL_DTYPE_F64;
    return (fl_dtype)0;
}

/* Whether `path` ends with `ext` (".npy"), ignoring case. */
static int has_ext(const char *path, const char *ext)
{
    size_t lp = strlen(path), le = strlen(ext);
    return lp >= le && !strcasecmp(path + lp - le, ext);
}

/* Reads element i of a buffer of dtype t as a double. */
static double get(const void *p, fl_dtype t, size_t i)
{
    switch (t) {
    case FL_DTYPE_F32: return ((const float *)p)[i];
    case FL_DTYPE_F64: return ((const double *)p)[i];
    case FL_DTYPE_I32: return ((const int32_t *)p)[i];
    case FL_DTYPE_I64: return (double)((const int64_t *)p)[i];
    default: return 0;
    }
}

/* Converts m to dtype `to` (F32/F64) in a new buffer; 0 or -1 (no memory). */
static int convert(cli_matrix *m, fl_dtype to)
{
    if (m->dtype == to)
        return 0;
    const size_t n = (size_t)m->rows * (size_t)m->cols;
    void *d = malloc(n ? n * fl_dtype_size(to) : 1);
    if (!d)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (to == FL_DTYPE_F32)
            ((float *)d)[i] = (float)get(m->data, m->dtype, i);
        else
            ((double *)d)[i] = get(m->data, m->dtype, i);
    }
    free(m->data);
    m->data = d;
    m->dtype = to;
    return 0;
}

int cli_read_matrix(const char *path, fl_dtype want, cli_matrix *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error("%s: cannot open: %s", path, strerror(errno));
        return CLI_EXIT_FILE;
    }
    unsigned char head[6] = {0};
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    char err[512];
    if (npy_has_magic(head, got) || has_ext(path, ".npy")) {
        npy_array a;
        npy_status st = npy_read(path, &a, err, sizeof err);
        if (st) {
            cli_error("%s", err);
            return st == NPY_ERR_NOMEM ? CLI_EXIT_FAILURE : CLI_EXIT_FILE;
        }
        out->data = a.data;
        out->dtype = a.dtype;
        out->rows = a.rows;
        out->cols = a.cols;
        out->ndim = a.ndim;
    } else {
        csv_table t;
        csv_status st = csv_read(path, want ? want : FL_DTYPE_F64, &t, err, sizeof err);
        if (st) {
            cli_error("%s", err);
            return st == CSV_ERR_NOMEM ? CLI_EXIT_FAILURE : CLI_EXIT_FILE;
        }
        out->data = t.data;
        out->dtype = t.dtype;
        out->rows = t.rows;
        out->cols = t.cols;
        out->ndim = 2;
    }
    fl_dtype to = want ? want : (out->dtype == FL_DTYPE_F32 ? FL_DTYPE_F32 : FL_DTYPE_F64);
    if (convert(out, to)) {
        cli_error("%s: out of memory converting %lld x %lld values to %s", path, (long long)out->rows,
                  (long long)out->cols, fl_dtype_name(to));
        cli_matrix_free(out);
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

/* ---- output files ------------------------------------------------------- */

int cli_out_create(cli_outfile *o, const char *path)
{
    o->path = path;
    o->tmp = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        cli_error("%s: is a directory", path);
        return CLI_EXIT_FILE;
    }
    const char *slash = strrchr(path, '/');
    const size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = slash ? slash + 1 : path;
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    snprintf(tmp, len, "%.*s.%s.tmp.XXXXXX", (int)dir_len, path, base);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cli_error("%s: cannot create a file there: %s", path, strerror(errno));
        free(tmp);
        return CLI_EXIT_FILE;
    }
    /* mkstemp makes the file private (0600); give it the mode a plain
     * fopen would have given the final file. */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0) {
        /* Not fatal: the output is merely more private than usual. */
    }
    close(fd);
    o->tmp = tmp;
    return 0;
}

int cli_out_write_matrix(cli_outfile *o, const void *data, fl_dtype dtype, int64_t rows, int64_t cols,
                         int ndim)
{
    FILE *f = fopen(o->tmp, "wb");
    if (!f) {
        cli_error("%s: cannot write: %s", o->path, strerror(errno));
        return CLI_EXIT_FILE;
    }
    int rc;
    if (has_ext(o->path, ".csv") || has_ext(o->path, ".txt"))
        rc = csv_write(f, data, dtype, rows, ndim == 1 ? 1 : cols);
    else
        rc = npy_write(f, data, dtype, rows, cols, ndim);
    int e = errno;
    if (fclose(f) != 0 && !rc) {
        rc = -1;
        e = errno;
    }
    if (rc) {
        cli_error("%s: write failed: %s", o->path, strerror(e));
        return CLI_EXIT_FILE;
    }
    return 0;
}

int cli_out_commit(cli_outfile *o, int n)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (!o[i].tmp)
            continue;
        if (!rc && rename(o[i].tmp, o[i].path) != 0) {
            cli_error("%s: cannot move the finished file into place: %s", o[i].path, strerror(errno));
            rc = CLI_EXIT_FILE;
        }
        if (rc)
            unlink(o[i].tmp);
        free(o[i].tmp);
        o[i].tmp = NULL;
    }
    return rc;
}

void cli_out_discard(cli_outfile *o, int n)
{
    for (int i = 0; i < n; i++) {
        if (o[i].tmp)
            unlink(o[i].tmp);
        free(o[i].tmp);
        o[i].tmp = NULL;
    }
}

int cli_out_check_distinct(const char *const *paths, const char *const *flags, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (paths[i] && paths[j] && !strcmp(paths[i], paths[j])) {
                cli_error("--%s and --%s name the same file '%s'", flags[i], flags[j], paths[i]);
                return CLI_EXIT_USAGE;
            }
    return 0;
}
