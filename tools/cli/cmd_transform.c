/*
 * cmd_transform.c — `flashlib transform --model M --input X --output Y`:
 * applies a saved model's transform (PCA / TruncatedSVD: the projection on
 * the components; KMeans: the distances to every centre), or with
 * --inverse a decomposition's inverse_transform. The output file is
 * written only when the whole command succeeded.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { O_MODEL, O_INPUT, O_OUTPUT, O_INVERSE, O_DEVICE, O_THREADS, O_DTYPE, O_JSON, O_QUIET, O_COUNT };

static const cli_opt opts[] = {
    [O_MODEL] = {"model", 'm', "FILE", 0, "a model written by `flashlib fit ... --model FILE` (required)"},
    [O_INPUT] = {"input", 'i', "FILE", 0,
                 "data: .npy or .csv, n x n_features (with --inverse: n x n_components) (required)"},
    [O_OUTPUT] = {"output", 'o', "FILE", 0, "where to write the result: .npy, or .csv/.txt (required)"},
    [O_INVERSE] = {"inverse", 0, NULL, 0,
                   "map transformed data back to the input space (pca, truncated_svd)"},
    [O_DEVICE] = {"device", 'd', "DEVICE", 0, "auto (default), cpu, cuda or cuda:N"},
    [O_THREADS] = {"threads", 'j', "N", 0, "CPU threads (default: FL_NUM_THREADS, else OpenMP's default)"},
    [O_DTYPE] = {"dtype", 't', "f32|f64", 0, "compute in this dtype (default: the file's; f64 for CSV)"},
    [O_JSON] = {"json", 0, NULL, 0, "print a JSON summary"},
    [O_QUIET] = {"quiet", 'q', NULL, 0, "print nothing on success"},
    [O_COUNT] = {NULL, 0, NULL, 0, NULL},
};

static void help(void)
{
    puts("usage: flashlib transform --model FILE --input FILE --output FILE [--inverse]\n"
         "                          [--device DEVICE] [--json]\n\n"
         "Applies a fitted model to the rows of the input: pca and truncated_svd project\n"
         "them on the components (n x n_components), kmeans gives the distance to every\n"
         "centre (n x n_clusters). --inverse maps a decomposition's output back to the\n"
         "input space. The output is written only when the whole command succeeded.\n");
    cli_print_options(stdout, opts);
    puts("\nexamples:\n"
         "  flashlib fit pca -i X.npy -p n_components=16 --model p.flm\n"
         "  flashlib transform --model p.flm --input X.npy --output Y.npy\n"
         "  flashlib transform --model p.flm --input Y.npy --output X_back.npy --inverse\n\n"
         "exit codes: 0 ok, 2 usage, 3 file error (missing/malformed input, corrupt or\n"
         "truncated model file), 4 library error (e.g. wrong number of features),\n"
         "5 no usable GPU for --device cuda.");
}

/* The output width of the model's (inverse) transform: its components or
 * centres. Returns 0 or an exit code. */
static int out_width(fl_ctx *ctx, fl_model *m, int inverse, int64_t *width)
{
    int64_t rows = 0, cols = 0;
    fl_status st = fl_model_attr_info(m, "components_", NULL, &rows, &cols);
    if (st == FL_STATUS_OK) {
        *width = inverse ? cols : rows;
        return 0;
    }
    if (inverse) {
        cli_error("transform --inverse: a %s model has no inverse_transform (pca and truncated_svd do)",
                  fl_model_algo(m));
        return CLI_EXIT_USAGE;
    }
    st = fl_model_attr_info(m, "cluster_centers_", NULL, &rows, &cols);
    if (st)
        return cli_lib_error(ctx, st, "transform: the model has no transform");
    *width = rows;
    return 0;
}

int cmd_transform(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse("transform", opts, 0, argc, argv, &a);
    if (rc)
        return rc;
    if (a.help) {
        help();
        return 0;
    }
    if (!a.val[O_MODEL] || !a.val[O_INPUT] || !a.val[O_OUTPUT]) {
        cli_error("transform: --model FILE, --input FILE and --output FILE are required (see flashlib "
                  "transform --help)");
        return CLI_EXIT_USAGE;
    }
    int64_t threads = -1;
    if (a.val[O_THREADS] && cli_parse_int(a.val[O_THREADS], 0, 1 << 20, &threads)) {
        cli_error("transform: --threads expects a whole number >= 0, got '%s'", a.val[O_THREADS]);
        return CLI_EXIT_USAGE;
    }
    fl_dtype dtype = (fl_dtype)0;
    if (a.val[O_DTYPE] && !(dtype = cli_parse_dtype(a.val[O_DTYPE]))) {
        cli_error("transform: --dtype must be f32 or f64, got '%s'", a.val[O_DTYPE]);
        return CLI_EXIT_USAGE;
    }
    const char *device = a.val[O_DEVICE] ? a.val[O_DEVICE] : "auto";
    fl_ctx *ctx = NULL;
    fl_model *m = NULL;
    cli_matrix X = {0};
    void *Y = NULL;
    cli_outfile out;
    int have_out = 0;
    char err[256];
    fl_status st = fl_ctx_create(device, &ctx, err, sizeof err);
    if (st) {
        cli_error("transform: --device: %s", err);
        return st == FL_STATUS_INVALID_ARG ? CLI_EXIT_USAGE : CLI_EXIT_LIBRARY;
    }
    if (threads >= 0 && (st = fl_ctx_set_threads(ctx, (int)threads)) != FL_STATUS_OK)
        rc = cli_lib_error(ctx, st, "--threads");
    if (!rc)
        rc = cli_check_device(ctx, device);
    if (!rc && (st = fl_model_load(ctx, a.val[O_MODEL], &m)) != FL_STATUS_OK) {
        rc = cli_lib_error(ctx, st, a.val[O_MODEL]);
        if (st == FL_STATUS_IO_ERROR || st == FL_STATUS_CORRUPT || st == FL_STATUS_VERSION_MISMATCH)
            rc = CLI_EXIT_FILE;
    }
    int64_t w = 0;
    const int inverse = a.val[O_INVERSE] != NULL;
    if (!rc)
        rc = out_width(ctx, m, inverse, &w);
    if (!rc)
        rc = cli_read_matrix(a.val[O_INPUT], dtype, &X);
    if (!rc && !(rc = cli_out_create(&out, a.val[O_OUTPUT])))
        have_out = 1;
    if (!rc && !(Y = malloc(fl_dtype_size(X.dtype) * (size_t)(X.rows > 0 && w > 0 ? X.rows * w : 1)))) {
        cli_error("out of memory for %lld x %lld outputs", (long long)X.rows, (long long)w);
        rc = CLI_EXIT_FAILURE;
    }
    double seconds = 0;
    if (!rc) {
        fl_array xa = fl_array_host(X.data, X.dtype, X.rows, X.cols);
        fl_array ya = fl_array_host(Y, X.dtype, X.rows, w);
        double t0 = cli_now();
        st = inverse ? fl_model_inverse_transform(m, &xa, &ya) : fl_model_transform(m, &xa, &ya);
        seconds = cli_now() - t0;
        if (st)
            rc = cli_lib_error(ctx, st, inverse ? "inverse_transform" : "transform");
    }
    if (!rc)
        rc = cli_out_write_matrix(&out, Y, X.dtype, X.rows, w, 2);
    if (!rc && !(rc = cli_out_commit(&out, 1)))
        have_out = 0;
    if (!rc && a.val[O_JSON]) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "algo", fl_model_algo(m));
        cj_str(&j, "model", a.val[O_MODEL]);
        cj_str(&j, "input", a.val[O_INPUT]);
        cj_str(&j, "output", a.val[O_OUTPUT]);
        cj_bool(&j, "inverse", inverse);
        cj_int(&j, "n_samples", X.rows);
        cj_int(&j, "n_in", X.cols);
        cj_int(&j, "n_out", w);
        cj_str(&j, "dtype", fl_dtype_name(X.dtype));
        cj_str(&j, "device", fl_ctx_device(ctx));
        cj_num(&j, "time_s", seconds);
        cj_end(&j);
    } else if (!rc && !a.val[O_QUIET]) {
        printf("%s: %s %lld x %lld (%s) from %s -> %lld x %lld in %s\n", fl_model_algo(m),
               inverse ? "inverse-transformed" : "transformed", (long long)X.rows, (long long)X.cols,
               fl_dtype_name(X.dtype), a.val[O_INPUT], (long long)X.rows, (long long)w, a.val[O_OUTPUT]);
        printf("  device      %s\n  time        %.3f s\n", fl_ctx_device(ctx), seconds);
    }
    if (have_out)
        cli_out_discard(&out, 1);
    free(Y);
    cli_matrix_free(&X);
    fl_model_free(m);
    fl_ctx_free(ctx);
    return rc;
}
