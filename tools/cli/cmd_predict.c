/*
 * cmd_predict.c — `flashlib predict --model M --input X`: labels (and
 * distances with --transform) from a saved model; and `flashlib convert`,
 * which moves a matrix between .npy and CSV.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { O_MODEL, O_INPUT, O_LABELS, O_TRANSFORM, O_DEVICE, O_THREADS, O_DTYPE, O_JSON, O_QUIET, O_COUNT };

static const cli_opt opts[] = {
    [O_MODEL] = {"model", 'm', "FILE", 0, "a model written by `flashlib fit ... --model FILE` (required)"},
    [O_INPUT] = {"input", 'i', "FILE", 0, "samples to assign: .npy or .csv, n x n_features (required)"},
    [O_LABELS] = {"labels", 'l', "FILE", 0,
                  "write the labels (int32, shape (n,)); .npy, or .csv/.txt. Without --labels and "
                  "--transform the labels are printed, one per line"},
    [O_TRANSFORM] = {"transform", 'T', "FILE", 0, "write the distances to every centre (n x n_clusters)"},
    [O_DEVICE] = {"device", 'd', "DEVICE", 0, "auto (default), cpu, cuda or cuda:N"},
    [O_THREADS] = {"threads", 'j', "N", 0, "CPU threads (default: FL_NUM_THREADS, else OpenMP's default)"},
    [O_DTYPE] = {"dtype", 't', "f32|f64", 0, "compute in this dtype (default: the file's; f64 for CSV)"},
    [O_JSON] = {"json", 0, NULL, 0, "print a JSON summary (with the labels when no file is written)"},
    [O_QUIET] = {"quiet", 'q', NULL, 0, "print nothing on success"},
    [O_COUNT] = {NULL, 0, NULL, 0, NULL},
};

/* Prints `flashlib predict --help`. */
static void help(void)
{
    puts("usage: flashlib predict --model FILE --input FILE [--labels FILE] [--transform FILE]\n"
         "                        [--device DEVICE] [--json]\n\n"
         "Assigns each sample of the input to the nearest centre of a fitted model (the\n"
         "model's metric). The input must have the model's number of features. Output\n"
         "files are written only when the whole command succeeded.\n");
    cli_print_options(stdout, opts);
    puts("\nexit codes: 0 ok, 2 usage, 3 file error (missing/malformed input, corrupt or\n"
         "truncated model file), 4 library error (e.g. wrong number of features),\n"
         "5 no usable GPU for --device cuda.");
}

/* Everything predict needs, released by predict_free. */
typedef struct predict_state {
    fl_ctx *ctx;
    fl_model *model;
    cli_matrix X;
    int32_t *labels;
    void *dist;
    cli_outfile out[2];
    int n_out;
} predict_state;

/* Releases everything in *s and removes temporaries not committed. */
static void predict_free(predict_state *s)
{
    cli_out_discard(s->out, s->n_out);
    free(s->labels);
    free(s->dist);
    cli_matrix_free(&s->X);
    fl_model_free(s->model);
    fl_ctx_free(s->ctx);
}

/* Loads the model; a missing, truncated or corrupt file is a file error. */
static int load_model(predict_state *s, const char *path)
{
    fl_status st = fl_model_load(s->ctx, path, &s->model);
    if (!st)
        return 0;
    int rc = cli_lib_error(s->ctx, st, path);
    if (st == FL_STATUS_IO_ERROR || st == FL_STATUS_CORRUPT || st == FL_STATUS_VERSION_MISMATCH)
        rc = CLI_EXIT_FILE;
    return rc;
}

/* Prints the labels (no output file given), a summary, or JSON. */
static void print_result(const cli_args *a, predict_state *s, int64_t k, double seconds)
{
    const int to_stdout = !a->val[O_LABELS] && !a->val[O_TRANSFORM];
    if (a->val[O_JSON]) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "algo", fl_model_algo(s->model));
        cj_str(&j, "model", a->val[O_MODEL]);
        cj_str(&j, "input", a->val[O_INPUT]);
        cj_int(&j, "n_samples", s->X.rows);
        cj_int(&j, "n_features", s->X.cols);
        cj_str(&j, "dtype", fl_dtype_name(s->X.dtype));
        cj_int(&j, "n_clusters", k);
        cj_str(&j, "device", fl_ctx_device(s->ctx));
        cj_num(&j, "time_s", seconds);
        cj_obj(&j, "outputs");
        cj_str(&j, "labels", a->val[O_LABELS]);
        cj_str(&j, "transform", a->val[O_TRANSFORM]);
        cj_close(&j, '}');
        if (to_stdout) {
            cj_arr(&j, "labels");
            for (int64_t i = 0; i < s->X.rows; i++)
                cj_int(&j, NULL, s->labels[i]);
            cj_close(&j, ']');
        }
        cj_end(&j);
        return;
    }
    if (a->val[O_QUIET])
        return;
    if (to_stdout) {
        for (int64_t i = 0; i < s->X.rows; i++)
            printf("%d\n", s->labels[i]);
        return;
    }
    printf("%s: predicted %lld x %lld (%s) from %s with %s (%lld clusters)\n", fl_model_algo(s->model),
           (long long)s->X.rows, (long long)s->X.cols, fl_dtype_name(s->X.dtype), a->val[O_INPUT],
           a->val[O_MODEL], (long long)k);
    printf("  device      %s\n  time        %.3f s\n", fl_ctx_device(s->ctx), seconds);
    if (a->val[O_LABELS])
        printf("  labels      %s\n", a->val[O_LABELS]);
    if (a->val[O_TRANSFORM])
        printf("  transform   %s\n", a->val[O_TRANSFORM]);
}

/* Predicts (and transforms), writes the outputs and commits them. */
static int run(const cli_args *a, predict_state *s)
{
    int rc;
    fl_dtype cdt;
    int64_t k = 0, d = 0;
    fl_status st = fl_model_attr_info(s->model, "cluster_centers_", &cdt, &k, &d);
    if (st)
        return cli_lib_error(s->ctx, st, "predict: the model has no cluster centres (is it a clusterer?)");
    const char *paths[2] = {a->val[O_LABELS], a->val[O_TRANSFORM]};
    for (int i = 0; i < 2; i++) {
        if (!paths[i])
            continue;
        if ((rc = cli_out_create(&s->out[s->n_out], paths[i])) != 0)
            return rc;
        s->n_out++;
    }
    const int64_t n = s->X.rows;
    s->labels = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    if (a->val[O_TRANSFORM])
        s->dist = malloc(fl_dtype_size(s->X.dtype) * (size_t)(n > 0 && k > 0 ? n * k : 1));
    if (!s->labels || (a->val[O_TRANSFORM] && !s->dist)) {
        cli_error("out of memory for %lld labels or distances", (long long)n);
        return CLI_EXIT_FAILURE;
    }
    fl_array X = fl_array_host(s->X.data, s->X.dtype, s->X.rows, s->X.cols);
    fl_array L = fl_array_host(s->labels, FL_DTYPE_I32, n, 1);
    double t0 = cli_now();
    st = fl_model_predict(s->model, &X, &L);
    if (st)
        return cli_lib_error(s->ctx, st, "predict");
    if (s->dist) {
        fl_array T = fl_array_host(s->dist, s->X.dtype, n, k);
        if ((st = fl_model_transform(s->model, &X, &T)) != FL_STATUS_OK)
            return cli_lib_error(s->ctx, st, "transform");
    }
    double seconds = cli_now() - t0;
    int o = 0;
    if (paths[0] && (rc = cli_out_write_matrix(&s->out[o++], s->labels, FL_DTYPE_I32, n, 1, 1)))
        return rc;
    if (paths[1] && (rc = cli_out_write_matrix(&s->out[o++], s->dist, s->X.dtype, n, k, 2)))
        return rc;
    if ((rc = cli_out_commit(s->out, s->n_out)) != 0)
        return rc;
    s->n_out = 0;
    print_result(a, s, k, seconds);
    return 0;
}

/* `flashlib predict`: see help(). */
int cmd_predict(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse("predict", opts, 0, argc, argv, &a);
    if (rc)
        return rc;
    if (a.help) {
        help();
        return 0;
    }
    if (!a.val[O_MODEL] || !a.val[O_INPUT]) {
        cli_error("predict: --model FILE and --input FILE are required (see flashlib predict --help)");
        return CLI_EXIT_USAGE;
    }
    int64_t threads = -1;
    if (a.val[O_THREADS] && cli_parse_int(a.val[O_THREADS], 0, 1 << 20, &threads)) {
        cli_error("predict: --threads expects a whole number >= 0, got '%s'", a.val[O_THREADS]);
        return CLI_EXIT_USAGE;
    }
    fl_dtype dtype = (fl_dtype)0;
    if (a.val[O_DTYPE] && !(dtype = cli_parse_dtype(a.val[O_DTYPE]))) {
        cli_error("predict: --dtype must be f32 or f64, got '%s'", a.val[O_DTYPE]);
        return CLI_EXIT_USAGE;
    }
    const char *paths[2] = {a.val[O_LABELS], a.val[O_TRANSFORM]};
    const char *flags[2] = {"labels", "transform"};
    if ((rc = cli_out_check_distinct(paths, flags, 2)) != 0)
        return rc;
    predict_state s;
    memset(&s, 0, sizeof s);
    char err[256];
    const char *device = a.val[O_DEVICE] ? a.val[O_DEVICE] : "auto";
    fl_status st = fl_ctx_create(device, &s.ctx, err, sizeof err);
    if (st) {
        cli_error("predict: --device: %s", err);
        return st == FL_STATUS_INVALID_ARG ? CLI_EXIT_USAGE : CLI_EXIT_LIBRARY;
    }
    if (threads >= 0 && (st = fl_ctx_set_threads(s.ctx, (int)threads)) != FL_STATUS_OK)
        rc = cli_lib_error(s.ctx, st, "--threads");
    if (!rc)
        rc = cli_check_device(s.ctx, device);
    if (!rc)
        rc = load_model(&s, a.val[O_MODEL]);
    if (!rc)
        rc = cli_read_matrix(a.val[O_INPUT], dtype, &s.X);
    if (!rc)
        rc = run(&a, &s);
    predict_free(&s);
    return rc;
}

/* ---- convert ------------------------------------------------------------------ */

enum { C_INPUT, C_OUTPUT, C_DTYPE, C_COUNT };

static const cli_opt convert_opts[] = {
    [C_INPUT] = {"input", 'i', "FILE", 0, "a matrix: .npy or .csv (required)"},
    [C_OUTPUT] = {"output", 'o', "FILE", 0,
                  "where to write it: .csv/.txt as CSV, anything else as .npy (required)"},
    [C_DTYPE] = {"dtype", 't', "f32|f64", 0, "store as this dtype (default: the input's; f64 for CSV)"},
    [C_COUNT] = {NULL, 0, NULL, 0, NULL},
};

/* `flashlib convert --input A --output B [--dtype]`. */
int cmd_convert(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse("convert", convert_opts, 0, argc, argv, &a);
    if (rc)
        return rc;
    if (a.help) {
        puts("usage: flashlib convert --input FILE --output FILE [--dtype f32|f64]\n\n"
             "Reads a matrix with the same reader as fit (so it also checks a file) and\n"
             "writes it as .npy (format 1.0, C order) or CSV. A 1-D .npy stays 1-D.\n");
        cli_print_options(stdout, convert_opts);
        puts("\nexit codes: 0 ok, 2 usage, 3 file error.");
        return 0;
    }
    if (!a.val[C_INPUT] || !a.val[C_OUTPUT]) {
        cli_error("convert: --input FILE and --output FILE are required");
        return CLI_EXIT_USAGE;
    }
    fl_dtype dtype = (fl_dtype)0;
    if (a.val[C_DTYPE] && !(dtype = cli_parse_dtype(a.val[C_DTYPE]))) {
        cli_error("convert: --dtype must be f32 or f64, got '%s'", a.val[C_DTYPE]);
        return CLI_EXIT_USAGE;
    }
    cli_matrix m;
    if ((rc = cli_read_matrix(a.val[C_INPUT], dtype, &m)) != 0)
        return rc;
    cli_outfile o;
    rc = cli_out_create(&o, a.val[C_OUTPUT]);
    if (!rc) {
        rc = cli_out_write_matrix(&o, m.data, m.dtype, m.rows, m.cols, m.ndim);
        if (!rc)
            rc = cli_out_commit(&o, 1);
        cli_out_discard(&o, 1);
    }
    cli_matrix_free(&m);
    return rc;
}
