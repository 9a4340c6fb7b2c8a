/*
 * cli.h — what the files of the `flashlib` command share: exit codes, error
 * reporting, option parsing, help formatting, a small JSON writer, reading
 * matrices from .npy/.csv, atomic output files and the progress bar.
 *
 * The CLI is built only on the public API (flashlib.h); it never includes
 * the library's internals.
 */
#ifndef FL_CLI_H
#define FL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "flashlib.h"

/* The CLI's own version: the header it was compiled against. */
#define CLI_VERSION FL_VERSION_STRING

/* Exit codes, documented in `flashlib --help` and tools/cli/README.md. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,    /* out of memory or another failure in the CLI itself */
    CLI_EXIT_USAGE = 2,      /* bad flags, unknown command or parameter, bad value  */
    CLI_EXIT_FILE = 3,       /* input file missing/malformed/truncated; output unwritable */
    CLI_EXIT_LIBRARY = 4,    /* the library returned an error status                */
    CLI_EXIT_NO_GPU = 5,     /* a GPU was required and none is usable               */
    CLI_EXIT_CANCELLED = 130 /* interrupted (Ctrl-C) during a fit                  */
};

/* ---- messages (util.c) --------------------------------------------------- */

/* Prints "flashlib: error: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "flashlib: warning: <message>" on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports a failed library call: "<what>: <last error> [FL_STATUS_...]".
 * Returns the exit code for the status: CLI_EXIT_NO_GPU for
 * FL_STATUS_NO_DEVICE, CLI_EXIT_CANCELLED for FL_STATUS_CANCELLED, else
 * CLI_EXIT_LIBRARY. */
int cli_lib_error(fl_ctx *ctx, fl_status st, const char *what);
/* Checks that the loaded library is the one this CLI was compiled against;
 * prints why not and returns CLI_EXIT_LIBRARY when they differ, else 0. */
int cli_check_library_version(void);
/* Path of the shared object that defines fl_version_string ("?" if unknown). */
const char *cli_library_path(void);

/* ---- option parsing (opts.c) ---------------------------------------------- */

/* One option of a command. */
typedef struct cli_opt {
    const char *name;    /* long name without dashes ("input"); NULL ends a table */
    char short_name;     /* one-letter alias ('i'), or 0                          */
    const char *metavar; /* placeholder of the value ("FILE"); NULL for a flag     */
    int repeat;          /* may be given several times (values kept in order)      */
    const char *help;    /* one line for --help                                    */
} cli_opt;

#define CLI_MAX_OPTS 32
#define CLI_MAX_REPEAT 256
#define CLI_MAX_POS 8

/* The parsed command line of one command. */
typedef struct cli_args {
    const char *val[CLI_MAX_OPTS];   /* last value of option i ("1" for a flag); NULL = absent */
    const char *rep[CLI_MAX_REPEAT]; /* values of the repeatable option, in order          */
    int n_rep;
    const char *pos[CLI_MAX_POS]; /* positional arguments                                  */
    int n_pos;
    int help; /* -h or --help was given */
} cli_args;

/* Parses argv[0..argc) against `opts` (argv[0] is the first argument after
 * the command words). `cmd` names the command in messages. At most one
 * option of the table may be repeatable. Returns 0, or CLI_EXIT_USAGE after
 * printing what was wrong (with the closest valid option name). */
int cli_parse(const char *cmd, const cli_opt *opts, int max_pos, int argc, char **argv, cli_args *out);
/* Prints the option table as the "options:" block of --help. */
void cli_print_options(FILE *f, const cli_opt *opts);
/* Prints `text` wrapped to `width` columns, every line indented by `indent`
 * spaces except the first, which starts at column `col` (already written). */
void cli_wrap(FILE *f, const char *text, int indent, int col, int width);
/* Index of the candidate closest to `word` by edit distance when it is close
 * enough to be a plausible typo, else -1. */
int cli_closest(const char *word, const char *const *cands, int n);
/* Parses an integer in [lo, hi] (digits, or an integral "1e6"); 0 or -1. */
int cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* ---- algorithms, parameters, devices (util.c, cmd_route.c) ---------------- */

/* Applies "-p NAME=VALUE" strings to a fresh parameter set of `algo`.
 * Returns 0, or an exit code after printing the library's message
 * (CLI_EXIT_USAGE for an unknown name or a bad value). */
int cli_make_params(fl_ctx *ctx, const char *algo, const char *const *kv, int n, fl_params **out);
/* Checks that `algo` is an algorithm of this build; prints the list (and
 * the closest name) and returns CLI_EXIT_USAGE otherwise (cmd_route.c). */
int cli_check_algo(const char *cmd, const char *algo);
/* Prints the parameter table of `algo` (generated from fl_param_def_at). */
void cli_print_param_table(FILE *f, const char *algo);
/* For a --device of "cuda"/"cuda:N"/"gpu" (already accepted by
 * fl_ctx_create into ctx), checks that the GPU exists. Returns 0 or
 * CLI_EXIT_NO_GPU after saying why. */
int cli_check_device(fl_ctx *ctx, const char *device);
/* Monotonic time in seconds. */
double cli_now(void);

/* ---- JSON output (json.c) ------------------------------------------------- */

/* A minimal streaming JSON writer with 2-space indentation. */
typedef struct cli_json {
    FILE *f;
    int depth;
    int count[32]; /* members written at each depth */
} cli_json;

void cj_begin(cli_json *j, FILE *f); /* opens the top-level object  */
void cj_end(cli_json *j);            /* closes it and ends the line */
void cj_obj(cli_json *j, const char *key);
void cj_arr(cli_json *j, const char *key);
void cj_close(cli_json *j, char bracket);                 /* '}' or ']' */
void cj_str(cli_json *j, const char *key, const char *v); /* NULL -> null */
void cj_int(cli_json *j, const char *key, int64_t v);
void cj_num(cli_json *j, const char *key, double v); /* non-finite -> null */
void cj_bool(cli_json *j, const char *key, int v);

/* ---- matrices in files (io.c) --------------------------------------------- */

/* A dense row-major host matrix read from or written to a file. */
typedef struct cli_matrix {
    void *data; /* malloc'd; free with cli_matrix_free */
    fl_dtype dtype;
    int64_t rows, cols;
    int ndim; /* as stored in the file: 1 (a vector, cols == 1) or 2 */
} cli_matrix;

void cli_matrix_free(cli_matrix *m);
/* Reads an .npy or CSV file (sniffed from its first bytes) into a matrix of
 * `want` (F32/F64; 0 = keep an .npy file's float dtype, f64 for CSV and
 * integer .npy). Prints "PATH: problem" and returns CLI_EXIT_FILE,
 * CLI_EXIT_FAILURE (out of memory) or 0. */
int cli_read_matrix(const char *path, fl_dtype want, cli_matrix *out);
/* Parses a --dtype value ("f32", "f64", "float32", "float64"); 0 if bad. */
fl_dtype cli_parse_dtype(const char *s);

/* An output file written to a temporary name and renamed into place only
 * when every output of the command succeeded. */
typedef struct cli_outfile {
    const char *path; /* final name */
    char *tmp;        /* temporary name in the same directory (malloc'd) */
} cli_outfile;

/* Creates the temporary file for `path`. Returns 0 or CLI_EXIT_FILE. */
int cli_out_create(cli_outfile *o, const char *path);
/* Writes rows x cols of `data` to o->tmp as .npy (default) or CSV (a path
 * ending in .csv or .txt). ndim 1 writes a vector of shape (rows,). */
int cli_out_write_matrix(cli_outfile *o, const void *data, fl_dtype dtype, int64_t rows, int64_t cols,
                         int ndim);
/* Renames every temporary into place, in order. On the first failure the
 * remaining temporaries are removed. Returns 0 or CLI_EXIT_FILE. */
int cli_out_commit(cli_outfile *o, int n);
/* Removes the temporaries of outputs not committed; frees names. */
void cli_out_discard(cli_outfile *o, int n);
/* Fails with CLI_EXIT_USAGE if two of the given paths are the same file name. */
int cli_out_check_distinct(const char *const *paths, const char *const *flags, int n);

/* ---- progress bar and Ctrl-C (progress.c) -------------------------------------- */

typedef struct cli_progress {
    int enabled;      /* draw anything at all (else only Ctrl-C handling)  */
    int tty;          /* redraw one line in place (stderr is a terminal)   */
    double start;     /* when the work began                               */
    double last;      /* when the line was last drawn                      */
    int drawn;        /* a line is on the screen and must be cleared       */
    char stage[48];   /* stage of the last line                            */
    int sigint_owned; /* the SIGINT handler is ours to restore             */
} cli_progress;

/* Installs the progress callback (when `enabled`, it also draws) and a
 * SIGINT handler whose flag makes the callback cancel the running call.
 * Call before creating output files, so that Ctrl-C never kills the process
 * while temporaries exist. */
void cli_progress_start(cli_progress *p, fl_ctx *ctx, int enabled);
/* Detaches the callback and clears the bar; the SIGINT handler stays. */
void cli_progress_stop(cli_progress *p, fl_ctx *ctx);
/* Whether SIGINT arrived since cli_progress_start: outputs must then not
 * be committed. */
int cli_interrupted(void);
/* Restores SIGINT's default action (when the handler was installed). */
void cli_interrupt_end(cli_progress *p);

/* ---- commands --------------------------------------------------------------- */

int cmd_diagnose(int argc, char **argv);
int cmd_route(int argc, char **argv);
int cmd_fit(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_transform(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_kneighbors(int argc, char **argv);

#endif /* FL_CLI_H */
