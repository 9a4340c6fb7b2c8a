/*
 * npy.h — reading and writing NumPy .npy files (format versions 1, 2, 3).
 *
 * Read: little-endian '<f4', '<f8', '<i4', '<i8', C order, 1-D (n,) read as
 * n x 1, or 2-D (n, d). Everything else is refused with a message that
 * names the problem: bad magic, unknown version, malformed header,
 * fortran_order True, big-endian or unsupported dtypes, more than 2
 * dimensions, and a file shorter (truncated) or longer than its header says.
 * The file size is checked against the header's shape BEFORE anything is
 * allocated, so a hostile header cannot make the reader allocate more than
 * the file holds.
 *
 * Write: format version 1.0, '<f4', '<f8', '<i4' or '<i8', C order, with
 * the header padded so the data starts on a 64-byte boundary (as numpy does).
 */
#ifndef FL_CLI_NPY_H
#define FL_CLI_NPY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "flashlib.h"

typedef enum npy_status {
    NPY_OK = 0,
    NPY_ERR_OPEN = 1,   /* the file could not be opened or read (errno-based message) */
    NPY_ERR_FORMAT = 2, /* not a valid or supported .npy file                          */
    NPY_ERR_NOMEM = 3,  /* the data does not fit in memory                             */
} npy_status;

/* An array read from a file. `data` is malloc'd (free() it). */
typedef struct npy_array {
    void *data;
    fl_dtype dtype; /* F32, F64, I32 or I64 */
    int64_t rows;
    int64_t cols; /* 1 for a 1-D file */
    int ndim;     /* 1 or 2, as stored */
} npy_array;

/* Whether the first bytes of `buf` (len >= 6) are the .npy magic. */
int npy_has_magic(const unsigned char *buf, size_t len);

/* Reads `path`. On error returns a status, leaves *out zeroed and writes a
 * message that starts with the path into err[0..err_len). */
npy_status npy_read(const char *path, npy_array *out, char *err, size_t err_len);

/* Writes rows x cols of `data` (dense, row-major) to `f`: shape (rows,)
 * when ndim is 1 (cols must be 1), else (rows, cols). Returns 0 or -1 (errno
 * set by stdio). dtype must be F32, F64, I32 or I64. */
int npy_write(FILE *f, const void *data, fl_dtype dtype, int64_t rows, int64_t cols, int ndim);

#endif /* FL_CLI_NPY_H */
