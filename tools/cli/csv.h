/*
 * csv.h — reading and writing numeric CSV files.
 *
 * Read: comma-separated numbers, one sample per line. The first non-blank
 * line is a header when none of its fields is a number (detected, never
 * required); blank lines and lines starting with '#' are skipped; "\r\n"
 * endings, spaces around fields and double quotes around a field are
 * accepted. Every row must have the same number of columns; a field that is
 * not a number, an empty field or a ragged row is an error naming its line
 * and column. "nan" and "inf" parse (the library then refuses them with its
 * own message). Values are stored as f64 or f32 (out-of-range for f32 is an
 * error).
 *
 * Write: one row per line, numbers with the fewest digits that read back
 * exactly.
 */
#ifndef FL_CLI_CSV_H
#define FL_CLI_CSV_H

#include <stdint.h>
#include <stdio.h>

#include "flashlib.h"

typedef enum csv_status {
    CSV_OK = 0,
    CSV_ERR_OPEN = 1,   /* cannot open or read the file        */
    CSV_ERR_FORMAT = 2, /* not a well-formed numeric CSV file  */
    CSV_ERR_NOMEM = 3,  /* out of memory                       */
} csv_status;

/* A table read from a file; `data` is malloc'd (free() it). */
typedef struct csv_table {
    void *data;
    fl_dtype dtype; /* as requested: F32 or F64 */
    int64_t rows, cols;
    int64_t header_line; /* line number of the detected header, 0 if none */
} csv_table;

/* Reads `path` as `dtype` (F32 or F64). On error returns a status, leaves
 * *out zeroed and writes "PATH: line L, column C: problem" into err. */
csv_status csv_read(const char *path, fl_dtype dtype, csv_table *out, char *err, size_t err_len);

/* Writes rows x cols of dense row-major `data` (F32, F64, I32 or I64) to f.
 * Returns 0 or -1 on a stdio error. */
int csv_write(FILE *f, const void *data, fl_dtype dtype, int64_t rows, int64_t cols);

#endif /* FL_CLI_CSV_H */
