/*
 * cmd_kneighbors.c — `flashlib kneighbors`: exact k-nearest-neighbour search
 * of a query matrix against a data matrix (fl_knn_search) or against the
 * data of a saved NearestNeighbors model (fl_model_kneighbors), writing the
 * neighbour indices and distances; `--save-model` keeps the fitted model.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

enum {
    O_DATA,
    O_MODEL,
    O_SAVE,
    O_INDEX,
    O_INPUT,
    O_K,
    O_PARAM,
    O_INDICES,
    O_DISTANCES,
    O_DEVICE,
    O_THREADS,
    O_DTYPE,
    O_JSON,
    O_QUIET,
    O_PROGRESS,
    O_COUNT
};

static const cli_opt opts[] = {
    [O_DATA] = {"data", 'x', "FILE", 0, "the points searched (n x d): .npy or .csv"},
    [O_MODEL] = {"model", 'm', "FILE", 0, "instead of --data: a model written by --save-model"},
    [O_SAVE] = {"save-model", 0, "FILE", 0, "with --data: also write the fitted model (exact, or the index)"},
    [O_INDEX] = {"index", 0, "KIND", 0,
                 "with --data: knn (exact search, the default), or an approximate index: ivf_flat, ivf_pq "
                 "(-p n_lists=..., -p n_probes=..., -p pq_dim=...) or cagra (-p graph_degree=..., "
                 "-p itopk_size=...)"},
    [O_INPUT] = {"input", 'i', "FILE", 0,
                 "the queries (n_q x d); without it every point of the data is queried and left out of "
                 "its own neighbours (scikit-learn's kneighbors(X=None))"},
    [O_K] = {"k", 'k', "N", 0, "neighbours per query (default: the n_neighbors parameter, 5)"},
    [O_PARAM] = {"param", 'p', "NAME=VALUE", 1,
                 "a parameter of knn: metric, p, precision... (repeatable; see below)"},
    [O_INDICES] = {"indices", 'I', "FILE", 0, "write the neighbour indices (int64, n_q x k)"},
    [O_DISTANCES] = {"distances", 'D', "FILE", 0, "write the distances (n_q x k, the data's dtype)"},
    [O_DEVICE] = {"device", 'd', "DEVICE", 0, "auto (default), cpu, cuda or cuda:N"},
    [O_THREADS] = {"threads", 'j', "N", 0, "CPU threads (default: FL_NUM_THREADS, else OpenMP's default)"},
    [O_DTYPE] = {"dtype", 't', "f32|f64", 0, "compute in this dtype (default: the file's; f64 for CSV)"},
    [O_JSON] = {"json", 0, NULL, 0, "print a JSON summary (with the neighbours when no file is written)"},
    [O_QUIET] = {"quiet", 'q', NULL, 0, "print nothing on success"},
    [O_PROGRESS] = {"progress", 0, NULL, 0, "show progress on stderr even when it is not a terminal"},
    [O_COUNT] = {NULL, 0, NULL, 0, NULL},
};

static void help(void)
{
    puts("usage: flashlib kneighbors (--data FILE | --model FILE) [--input FILE] [-k N]\n"
         "                           [-p NAME=VALUE ...] [--indices FILE] [--distances FILE]\n"
         "                           [--save-model FILE] [--device DEVICE] [--json]\n\n"
         "Exact k-nearest-neighbour search: for each query the k nearest points of the data,\n"
         "nearest first, equal distances by ascending index (for metric inner_product the\n"
         "largest inner products). Without --indices and --distances the neighbours are\n"
         "printed, one query per line (index:distance pairs). Output files are written\n"
         "only when the whole command succeeded.\n");
    cli_print_options(stdout, opts);
    puts("\nparameters of knn (-p NAME=VALUE):");
    cli_print_param_table(stdout, "knn");
    puts("\nparameters of ivf_flat (--index ivf_flat):");
    cli_print_param_table(stdout, "ivf_flat");
    puts("\nparameters of ivf_pq (--index ivf_pq):");
    cli_print_param_table(stdout, "ivf_pq");
    puts("\nparameters of cagra (--index cagra):");
    cli_print_param_table(stdout, "cagra");
    puts("\nexamples:\n"
         "  flashlib kneighbors --data X.npy --input Q.npy -k 10 --indices I.npy --distances D.npy\n"
         "  flashlib kneighbors --data X.npy -k 16 -p metric=cosine --indices graph.npy --save-model nn.flm\n"
         "  flashlib kneighbors --model nn.flm --input Q.csv -k 3\n"
         "  flashlib kneighbors --data X.npy --index ivf_flat -p n_lists=1024 --save-model ivf.flm -k 1\n"
         "  flashlib kneighbors --model ivf.flm --input Q.npy -k 10 --indices I.npy\n\n"
         "exit codes: 0 ok, 2 usage, 3 file error, 4 library error (e.g. k larger than the\n"
         "data, wrong number of features), 5 no usable GPU for --device cuda, 130 Ctrl-C.");
}

/* The neighbour models: exact search and the approximate indexes. */
static int is_index(const char *algo)
{
    return !strcmp(algo, "knn") || !strcmp(algo, "ivf_flat") || !strcmp(algo, "ivf_pq") ||
           !strcmp(algo, "cagra");
}

typedef struct knn_state {
    fl_ctx *ctx;
    fl_params *params;
    fl_model *model;
    cli_matrix X, Q;
    int64_t *idx;
    void *dist;
    cli_outfile out[3];
    int n_out;
} knn_state;

static void knn_free(knn_state *s)
{
    cli_out_discard(s->out, s->n_out);
    free(s->idx);
    free(s->dist);
    cli_matrix_free(&s->X);
    cli_matrix_free(&s->Q);
    fl_model_free(s->model);
    fl_params_free(s->params);
    fl_ctx_free(s->ctx);
}

static int load_model(knn_state *s, const char *path)
{
    fl_status st = fl_model_load(s->ctx, path, &s->model);
    if (st) {
        int rc = cli_lib_error(s->ctx, st, path);
        return st == FL_STATUS_IO_ERROR || st == FL_STATUS_CORRUPT || st == FL_STATUS_VERSION_MISMATCH
                   ? CLI_EXIT_FILE
                   : rc;
    }
    const char *algo = fl_model_algo(s->model);
    if (!is_index(algo)) {
        cli_error("kneighbors: %s is a %s model, not a neighbour model (knn, ivf_flat, ivf_pq, cagra)", path,
                  fl_model_algo(s->model));
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* The dtype, rows and width of a loaded model's data: an exact model's
 * training data, or an index's shape (its vectors are float32; results
 * come in the queries' dtype, float32 without queries). */
static int model_shape(knn_state *s, fl_dtype *dt, int64_t *n, int64_t *d)
{
    fl_status st = fl_model_attr_info(s->model, "fit_X_", dt, n, d);
    if (st == FL_STATUS_OK)
        return 0;
    double vn, vd;
    if ((st = fl_model_attr_scalar(s->model, "n_samples_fit_", &vn)) != FL_STATUS_OK ||
        (st = fl_model_attr_scalar(s->model, "n_features_in_", &vd)) != FL_STATUS_OK)
        return cli_lib_error(s->ctx, st, "kneighbors: the model");
    *n = (int64_t)vn, *d = (int64_t)vd;
    *dt = s->Q.data ? s->Q.dtype : FL_DTYPE_F32;
    return 0;
}

static double value_at(const void *p, fl_dtype dt, int64_t i)
{
    return dt == FL_DTYPE_F32 ? ((const float *)p)[i] : ((const double *)p)[i];
}

static void print_result(const cli_args *a, const knn_state *s, int64_t n_q, int64_t d, int64_t k,
                         fl_dtype dt, double seconds)
{
    const int to_stdout = !a->val[O_INDICES] && !a->val[O_DISTANCES];
    if (a->val[O_JSON]) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "algo", fl_model_algo(s->model));
        cj_str(&j, "data", a->val[O_DATA] ? a->val[O_DATA] : a->val[O_MODEL]);
        cj_str(&j, "input", a->val[O_INPUT]);
        cj_int(&j, "n_queries", n_q);
        cj_int(&j, "n_features", d);
        cj_int(&j, "k", k);
        cj_str(&j, "dtype", fl_dtype_name(dt));
        cj_str(&j, "device", fl_ctx_device(s->ctx));
        cj_num(&j, "time_s", seconds);
        cj_obj(&j, "outputs");
        cj_str(&j, "indices", a->val[O_INDICES]);
        cj_str(&j, "distances", a->val[O_DISTANCES]);
        cj_str(&j, "model", a->val[O_SAVE]);
        cj_close(&j, '}');
        if (to_stdout) {
            cj_arr(&j, "indices");
            for (int64_t i = 0; i < n_q * k; i++)
                cj_int(&j, NULL, s->idx[i]);
            cj_close(&j, ']');
            cj_arr(&j, "distances");
            for (int64_t i = 0; i < n_q * k; i++)
                cj_num(&j, NULL, value_at(s->dist, dt, i));
            cj_close(&j, ']');
        }
        cj_end(&j);
        return;
    }
    if (a->val[O_QUIET])
        return;
    if (to_stdout) {
        for (int64_t i = 0; i < n_q; i++)
            for (int64_t c = 0; c < k; c++)
                printf("%lld:%.9g%c", (long long)s->idx[i * k + c], value_at(s->dist, dt, i * k + c),
                       c + 1 < k ? ' ' : '\n');
        return;
    }
    printf("%s: %lld queries x %lld neighbours (%lld features, %s)\n", fl_model_algo(s->model),
           (long long)n_q, (long long)k, (long long)d, fl_dtype_name(dt));
    printf("  device      %s\n  time        %.3f s\n", fl_ctx_device(s->ctx), seconds);
    if (a->val[O_INDICES])
        printf("  indices     %s\n", a->val[O_INDICES]);
    if (a->val[O_DISTANCES])
        printf("  distances   %s\n", a->val[O_DISTANCES]);
    if (a->val[O_SAVE])
        printf("  model       %s\n", a->val[O_SAVE]);
}

/* Fits (or takes the loaded model), searches, writes and commits. */
static int run(const cli_args *a, knn_state *s, int64_t k, cli_progress *prog, int show)
{
    int rc;
    /* before the temporaries exist, so Ctrl-C never leaves one behind */
    cli_progress_start(prog, s->ctx, show);
    const char *paths[3] = {a->val[O_INDICES], a->val[O_DISTANCES], a->val[O_SAVE]};
    for (int i = 0; i < 3; i++) {
        if (!paths[i])
            continue;
        if ((rc = cli_out_create(&s->out[s->n_out], paths[i])) != 0)
            return rc;
        s->n_out++;
    }
    fl_dtype dt = s->X.data ? s->X.dtype : (fl_dtype)0;
    int64_t n_fit = s->X.rows, d = s->X.cols;
    if (s->model && (rc = model_shape(s, &dt, &n_fit, &d)) != 0)
        return rc;
    if (k <= 0) {
        char v[32];
        k = fl_params_get(s->ctx, s->params ? s->params : fl_model_params(s->model), "n_neighbors", v,
                          sizeof v)
                ? 5
                : atoll(v);
    }
    const int64_t n_q = s->Q.data ? s->Q.rows : n_fit;
    size_t cells;
    if (__builtin_mul_overflow((size_t)n_q, (size_t)k, &cells) || cells > ((size_t)1 << 40)) {
        cli_error("kneighbors: %lld queries x k=%lld neighbours is too large an output", (long long)n_q,
                  (long long)k);
        return CLI_EXIT_USAGE;
    }
    s->idx = malloc(sizeof(int64_t) * (cells ? cells : 1));
    s->dist = malloc(fl_dtype_size(dt) * (cells ? cells : 1));
    if (!s->idx || !s->dist) {
        cli_error("out of memory for %lld x %lld neighbours", (long long)n_q, (long long)k);
        return CLI_EXIT_FAILURE;
    }
    fl_array Q = fl_array_host(s->Q.data, dt, s->Q.rows, s->Q.cols);
    fl_array I = fl_array_host(s->idx, FL_DTYPE_I64, n_q, k);
    fl_array D = fl_array_host(s->dist, dt, n_q, k);
    fl_status st = FL_STATUS_OK;
    double t0 = cli_now();
    if (!s->model) {
        fl_array X = fl_array_host(s->X.data, s->X.dtype, s->X.rows, s->X.cols);
        if ((st = fl_model_create(s->ctx, a->val[O_INDEX] ? a->val[O_INDEX] : "knn", s->params, &s->model)) ==
            FL_STATUS_OK)
            st = fl_model_fit(s->model, &X, NULL, NULL);
    }
    if (!st)
        st = fl_model_kneighbors(s->model, s->Q.data ? &Q : NULL, k, &D, &I);
    double seconds = cli_now() - t0;
    cli_progress_stop(prog, s->ctx);
    if (st)
        return cli_lib_error(s->ctx, st, "kneighbors");
    if (cli_interrupted())
        return CLI_EXIT_CANCELLED;
    int o = 0;
    if (paths[0] && (rc = cli_out_write_matrix(&s->out[o++], s->idx, FL_DTYPE_I64, n_q, k, 2)))
        return rc;
    if (paths[1] && (rc = cli_out_write_matrix(&s->out[o++], s->dist, dt, n_q, k, 2)))
        return rc;
    if (paths[2]) {
        void *buf = NULL;
        size_t len = 0;
        if ((st = fl_model_save_buffer(s->model, &buf, &len)) != FL_STATUS_OK)
            return cli_lib_error(s->ctx, st, "--save-model");
        FILE *f = fopen(s->out[o].tmp, "wb");
        int ok = f && fwrite(buf, 1, len, f) == len;
        ok = (f && !fclose(f)) && ok;
        fl_buffer_free(buf);
        if (!ok) {
            cli_error("%s: cannot write the model", paths[2]);
            return CLI_EXIT_FILE;
        }
        o++;
    }
    if ((rc = cli_out_commit(s->out, s->n_out)) != 0)
        return rc;
    s->n_out = 0;
    print_result(a, s, n_q, d, k, dt, seconds);
    return 0;
}

int cmd_kneighbors(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse("kneighbors", opts, 0, argc, argv, &a);
    if (rc)
        return rc;
    if (a.help) {
        help();
        return 0;
    }
    if (!a.val[O_DATA] == !a.val[O_MODEL]) {
        cli_error(
            "kneighbors: give exactly one of --data FILE and --model FILE (see flashlib kneighbors --help)");
        return CLI_EXIT_USAGE;
    }
    if (a.val[O_INDEX] && !is_index(a.val[O_INDEX])) {
        cli_error("kneighbors: --index must be knn, ivf_flat, ivf_pq or cagra, got '%s'", a.val[O_INDEX]);
        return CLI_EXIT_USAGE;
    }
    if (a.val[O_MODEL] && (a.n_rep || a.val[O_SAVE] || a.val[O_INDEX])) {
        cli_error("kneighbors: -p, --index and --save-model apply to --data (a saved model keeps its "
                  "parameters)");
        return CLI_EXIT_USAGE;
    }
    int64_t k = 0, threads = -1;
    if (a.val[O_K] && cli_parse_int(a.val[O_K], 1, INT64_MAX, &k)) {
        cli_error("kneighbors: -k expects a whole number >= 1, got '%s'", a.val[O_K]);
        return CLI_EXIT_USAGE;
    }
    if (a.val[O_THREADS] && cli_parse_int(a.val[O_THREADS], 0, 1 << 20, &threads)) {
        cli_error("kneighbors: --threads expects a whole number >= 0, got '%s'", a.val[O_THREADS]);
        return CLI_EXIT_USAGE;
    }
    fl_dtype dtype = (fl_dtype)0;
    if (a.val[O_DTYPE] && !(dtype = cli_parse_dtype(a.val[O_DTYPE]))) {
        cli_error("kneighbors: --dtype must be f32 or f64, got '%s'", a.val[O_DTYPE]);
        return CLI_EXIT_USAGE;
    }
    const char *paths[3] = {a.val[O_INDICES], a.val[O_DISTANCES], a.val[O_SAVE]};
    const char *flags[3] = {"indices", "distances", "save-model"};
    if ((rc = cli_out_check_distinct(paths, flags, 3)) != 0)
        return rc;
    knn_state s;
    memset(&s, 0, sizeof s);
    char err[256];
    const char *device = a.val[O_DEVICE] ? a.val[O_DEVICE] : "auto";
    fl_status st = fl_ctx_create(device, &s.ctx, err, sizeof err);
    if (st) {
        cli_error("kneighbors: --device: %s", err);
        return st == FL_STATUS_INVALID_ARG ? CLI_EXIT_USAGE : CLI_EXIT_LIBRARY;
    }
    if (threads >= 0 && (st = fl_ctx_set_threads(s.ctx, (int)threads)) != FL_STATUS_OK)
        rc = cli_lib_error(s.ctx, st, "--threads");
    if (!rc && a.val[O_DATA])
        rc = cli_make_params(s.ctx, a.val[O_INDEX] ? a.val[O_INDEX] : "knn", a.rep, a.n_rep, &s.params);
    if (!rc)
        rc = cli_check_device(s.ctx, device);
    if (!rc && a.val[O_MODEL])
        rc = load_model(&s, a.val[O_MODEL]);
    if (!rc && a.val[O_DATA])
        rc = cli_read_matrix(a.val[O_DATA], dtype, &s.X);
    if (!rc && a.val[O_INPUT]) { /* the queries in the data's dtype */
        fl_dtype want = s.X.data ? s.X.dtype : (fl_dtype)0;
        int64_t n, d;
        if (s.model && (rc = model_shape(&s, &want, &n, &d)) != 0)
            want = (fl_dtype)0;
        if (!rc)
            rc = cli_read_matrix(a.val[O_INPUT], want, &s.Q);
    }
    if (!rc) {
        cli_progress prog;
        const int show = !a.val[O_QUIET] && (a.val[O_PROGRESS] || isatty(STDERR_FILENO));
        rc = run(&a, &s, k, &prog, show);
        cli_progress_stop(&prog, s.ctx);
        cli_interrupt_end(&prog);
    }
    knn_free(&s);
    return rc;
}
