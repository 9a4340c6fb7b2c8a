/*
 * cmd_fit.c — `flashlib fit ALGO --input X [-p NAME=VALUE ...]`: fits a
 * model and writes its outputs (a clusterer's labels and centres, a
 * decomposition's components and transformed data) and the model file.
 *
 * Order of work, chosen so that mistakes cost nothing: options and
 * parameters are checked first (usage errors), then the GPU requirement,
 * then the input files are read in full, then the temporary output files
 * are created (an unwritable destination fails before a long fit), then the
 * fit runs, and only when everything succeeded are the outputs renamed into
 * place.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

enum {
    O_INPUT,
    O_PARAM,
    O_DEVICE,
    O_THREADS,
    O_DTYPE,
    O_WEIGHT,
    O_INIT,
    O_LABELS,
    O_CENTERS,
    O_COMPONENTS,
    O_TRANSFORM,
    O_MODEL,
    O_JSON,
    O_QUIET,
    O_PROGRESS,
    O_VERBOSE,
    O_COUNT
};

static const cli_opt opts[] = {
    [O_INPUT] = {"input", 'i', "FILE", 0, "training data X: .npy or .csv, n_samples x n_features (required)"},
    [O_PARAM] = {"param", 'p', "NAME=VALUE", 1, "a parameter of the algorithm (repeatable; see below)"},
    [O_DEVICE] = {"device", 'd', "DEVICE", 0,
                  "auto (a GPU when usable, else the CPU; default), cpu, cuda or cuda:N (fails with "
                  "exit code 5 when that GPU is not usable)"},
    [O_THREADS] = {"threads", 'j', "N", 0, "CPU threads (default: FL_NUM_THREADS, else OpenMP's default)"},
    [O_DTYPE] =
        {"dtype", 't', "f32|f64", 0,
         "compute in this dtype (default: the .npy file's float dtype; f64 for CSV and integer data)"},
    [O_WEIGHT] = {"sample-weight", 'w', "FILE", 0,
                  "one non-negative weight per sample (.npy or .csv, n or n x 1)"},
    [O_INIT] = {"init-centers", 0, "FILE", 0,
                "initial centres (n_clusters x n_features, .npy or .csv); implies -p init=array"},
    [O_LABELS] = {"labels", 'l', "FILE", 0,
                  "write the training labels (int32, shape (n,)); .npy, or .csv/.txt"},
    [O_CENTERS] = {"centers", 'c', "FILE", 0,
                   "write the cluster centres (n_clusters x n_features); .npy or .csv"},
    [O_COMPONENTS] = {"components", 0, "FILE", 0,
                      "pca, truncated_svd: write components_ (n_components x n_features); .npy or .csv"},
    [O_TRANSFORM] = {"transform", 'T', "FILE", 0,
                     "pca, truncated_svd: write the transformed training data (n x n_components)"},
    [O_MODEL] = {"model", 'm', "FILE", 0,
                 "write the fitted model (flashlib format, for `flashlib predict` / `flashlib transform`)"},
    [O_JSON] = {"json", 0, NULL, 0, "print the summary as one JSON object on stdout"},
    [O_QUIET] = {"quiet", 'q', NULL, 0, "print no summary and no progress (errors still go to stderr)"},
    [O_PROGRESS] = {"progress", 0, NULL, 0, "show progress on stderr even when it is not a terminal"},
    [O_VERBOSE] = {"verbose", 'v', NULL, 0, "print the library's log messages (routing, device choice)"},
    [O_COUNT] = {NULL, 0, NULL, 0, NULL},
};

/* Whether `algo` is a decomposition (components and a transform) rather
 * than a clusterer (labels and centres). */
static int is_decomposition(const char *algo)
{
    return algo && (!strcmp(algo, "pca") || !strcmp(algo, "truncated_svd"));
}

/* Prints `flashlib fit [ALGO] --help`; the parameter section is generated
 * from the library's table. */
static void help(const char *algo)
{
    if (!algo) {
        printf("usage: flashlib fit ALGO --input FILE [-p NAME=VALUE ...] [options]\n\n"
               "algorithms in this build:");
        for (const char *const *a = fl_algorithms(); a && *a; a++)
            printf(" %s", *a);
        puts("\n\nSee flashlib fit ALGO --help for its options and parameters.");
        return;
    }
    printf("usage: flashlib fit %s --input FILE [-p NAME=VALUE ...] [options]\n\n", algo);
    printf("Fits %s on the rows of FILE with scikit-learn's semantics and prints a\n"
           "summary (samples, features, %s, time, device).\n"
           "Outputs are written only when the fit succeeded: nothing is created or\n"
           "replaced otherwise.\n\n",
           algo,
           is_decomposition(algo) ? "components, explained variance, solver"
                                  : "clusters, inertia, iterations");
    puts("input files:\n"
         "  .npy   float32 or float64 (int32/int64 are converted to float64), C order,\n"
         "         1-D (read as n x 1) or 2-D; format versions 1, 2 and 3\n"
         "  .csv   comma-separated numbers, one sample per line; a first line with no\n"
         "         numbers is taken as a header; blank lines and '#' lines are skipped\n");
    cli_print_options(stdout, opts);
    printf("\nparameters (-p NAME=VALUE), from the library's table (scikit-learn names):\n");
    cli_print_param_table(stdout, algo);
    puts(is_decomposition(algo)
             ? "\nexamples:\n"
               "  flashlib fit pca -i X.npy -p n_components=16 --model p.flm --transform Y.npy\n"
               "  flashlib fit pca -i X.csv -p n_components=0.95 -p whiten=true --components C.csv --json\n"
               "  flashlib fit truncated_svd -i X.npy -p n_components=8 -p algorithm=arpack --model t.flm\n"
             : "\nexamples:\n"
               "  flashlib fit kmeans -i X.npy -p n_clusters=16 -p random_state=0 --labels y.npy --model "
               "km.flm\n"
               "  flashlib fit kmeans -i X.csv -p k=3 --centers C.csv --json");
    puts("\n"
         "exit codes: 0 ok, 2 usage (bad option, unknown or out-of-range parameter),\n"
         "3 file error (missing, malformed or truncated input; unwritable output),\n"
         "4 library error (e.g. n_clusters > n_samples, NaN in the data), 5 no usable GPU\n"
         "for --device cuda, 130 interrupted. See flashlib --help.");
}

/* Prints the library's log messages on stderr (--verbose). */
static void log_cb(void *user, fl_log_level level, const char *msg)
{
    (void)user;
    static const char *names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "flashlib: %s: %s\n", names[level >= 0 && level <= 3 ? level : 3], msg);
}

/* Everything fit needs, released by fit_free. */
typedef struct fit_state {
    fl_ctx *ctx;
    fl_params *params;
    fl_model *model;
    cli_matrix X, w, init;
    void *centers;
    int32_t *labels;
    void *components, *transform;
    cli_outfile out[5]; /* labels, centers, components, transform, model */
    int n_out;
} fit_state;

/* Releases everything in *s and removes temporaries not committed. */
static void fit_free(fit_state *s)
{
    cli_out_discard(s->out, s->n_out);
    free(s->centers);
    free(s->labels);
    free(s->components);
    free(s->transform);
    cli_matrix_free(&s->X);
    cli_matrix_free(&s->w);
    cli_matrix_free(&s->init);
    fl_model_free(s->model);
    fl_params_free(s->params);
    fl_ctx_free(s->ctx);
}

/* Checks option values that need no library call. */
static int check_options(const cli_args *a, const char *algo, int64_t *threads, fl_dtype *dtype)
{
    static const int clusterer_only[] = {O_LABELS, O_CENTERS, O_WEIGHT, O_INIT};
    static const int decomposition_only[] = {O_COMPONENTS, O_TRANSFORM};
    const int dec = is_decomposition(algo);
    const int *bad = dec ? clusterer_only : decomposition_only;
    for (int i = 0; i < (dec ? 4 : 2); i++)
        if (a->val[bad[i]]) {
            cli_error("fit: --%s does not apply to %s (see flashlib fit %s --help)", opts[bad[i]].name, algo,
                      algo);
            return CLI_EXIT_USAGE;
        }
    if (!a->val[O_INPUT]) {
        cli_error("fit: --input FILE is required (see flashlib fit kmeans --help)");
        return CLI_EXIT_USAGE;
    }
    *threads = -1;
    if (a->val[O_THREADS] && cli_parse_int(a->val[O_THREADS], 0, 1 << 20, threads)) {
        cli_error("fit: --threads expects a whole number >= 0 (0 = OpenMP's default), got '%s'",
                  a->val[O_THREADS]);
        return CLI_EXIT_USAGE;
    }
    *dtype = (fl_dtype)0;
    if (a->val[O_DTYPE] && !(*dtype = cli_parse_dtype(a->val[O_DTYPE]))) {
        cli_error("fit: --dtype must be f32 or f64, got '%s'", a->val[O_DTYPE]);
        return CLI_EXIT_USAGE;
    }
    const char *paths[5] = {a->val[O_LABELS], a->val[O_CENTERS], a->val[O_COMPONENTS], a->val[O_TRANSFORM],
                            a->val[O_MODEL]};
    const char *flags[5] = {"labels", "centers", "components", "transform", "model"};
    return cli_out_check_distinct(paths, flags, 5);
}

/* Reads the data files: X, the weights and the initial centres. */
static int read_inputs(const cli_args *a, fl_dtype dtype, fit_state *s)
{
    int rc = cli_read_matrix(a->val[O_INPUT], dtype, &s->X);
    if (!rc && a->val[O_WEIGHT])
        rc = cli_read_matrix(a->val[O_WEIGHT], s->X.dtype, &s->w);
    if (!rc && a->val[O_INIT])
        rc = cli_read_matrix(a->val[O_INIT], FL_DTYPE_F64, &s->init);
    if (rc)
        return rc;
    if (s->w.data && s->w.cols != 1) {
        cli_error("%s: sample weights must be a vector (n or n x 1), got %lld x %lld", a->val[O_WEIGHT],
                  (long long)s->w.rows, (long long)s->w.cols);
        return CLI_EXIT_FILE;
    }
    if (s->init.data) {
        fl_array ia = fl_array_host(s->init.data, s->init.dtype, s->init.rows, s->init.cols);
        fl_status st = fl_params_set_array(s->ctx, s->params, "init", &ia);
        if (st)
            return cli_lib_error(s->ctx, st, a->val[O_INIT]);
    }
    return 0;
}

/* Copies a fitted attribute into a new host buffer. */
static int copy_attr(fit_state *s, const char *name, void **out, fl_dtype *dt, int64_t *rows, int64_t *cols)
{
    fl_status st = fl_model_attr_info(s->model, name, dt, rows, cols);
    if (st)
        return cli_lib_error(s->ctx, st, name);
    size_t bytes = (size_t)*rows * (size_t)*cols * fl_dtype_size(*dt);
    *out = malloc(bytes ? bytes : 1);
    if (!*out) {
        cli_error("out of memory copying %s", name);
        return CLI_EXIT_FAILURE;
    }
    fl_array dst = fl_array_host(*out, *dt, *rows, *cols);
    st = fl_model_attr_copy(s->model, name, &dst);
    return st ? cli_lib_error(s->ctx, st, name) : 0;
}

/* The backend and variant that ran, from the device the context used. */
static void ran_on(fit_state *s, const char *algo, fl_route *r)
{
    memset(r, 0, sizeof *r);
    const char *dev = fl_ctx_device(s->ctx);
    fl_hw_props hw;
    const fl_hw_props *h = NULL;
    if (!strncmp(dev, "cuda:", 5) && !fl_cuda_props(s->ctx, (int32_t)atoi(dev + 5), &hw))
        h = &hw;
    if (fl_route_query(s->ctx, algo, h, s->X.rows, s->X.cols, s->X.dtype, s->params, r))
        snprintf(r->variant, sizeof r->variant, "?");
}

/* Prints the summary as text or JSON. */
static void summary(const cli_args *a, fit_state *s, const char *algo, double inertia, double n_iter,
                    int64_t k, double seconds)
{
    fl_route r;
    ran_on(s, algo, &r);
    const char *dev = fl_ctx_device(s->ctx);
    const char *names[5] = {"labels", "centers", "components", "transform", "model"};
    const char *paths[5] = {a->val[O_LABELS], a->val[O_CENTERS], a->val[O_COMPONENTS], a->val[O_TRANSFORM],
                            a->val[O_MODEL]};
    const int dec = is_decomposition(algo);
    if (a->val[O_JSON]) {
        cli_json j;
        cj_begin(&j, stdout);
        cj_str(&j, "algo", algo);
        cj_str(&j, "input", a->val[O_INPUT]);
        cj_int(&j, "n_samples", s->X.rows);
        cj_int(&j, "n_features", s->X.cols);
        cj_str(&j, "dtype", fl_dtype_name(s->X.dtype));
        if (dec) {
            cj_int(&j, "n_components", k);
            cj_num(&j, "explained_variance_ratio", inertia);
        } else {
            cj_int(&j, "n_clusters", k);
            cj_num(&j, "inertia", inertia);
            cj_int(&j, "n_iter", (int64_t)n_iter);
        }
        cj_num(&j, "time_s", seconds);
        cj_str(&j, "device", dev);
        cj_str(&j, "backend", fl_backend_name(r.backend));
        cj_str(&j, "variant", r.variant);
        cj_obj(&j, "params");
        for (int i = 0; i < fl_param_count(algo); i++) {
            const fl_param_def *d = fl_param_def_at(algo, i);
            char v[128];
            if (d && !fl_params_get(s->ctx, s->params, d->name, v, sizeof v))
                cj_str(&j, d->name, v);
        }
        cj_close(&j, '}');
        cj_obj(&j, "outputs");
        for (int i = 0; i < 5; i++)
            if (dec ? (i >= 2) : (i < 2 || i == 4))
                cj_str(&j, names[i], paths[i]);
        cj_close(&j, '}');
        cj_end(&j);
        return;
    }
    if (a->val[O_QUIET])
        return;
    printf("%s: fitted %lld x %lld (%s) from %s\n", algo, (long long)s->X.rows, (long long)s->X.cols,
           fl_dtype_name(s->X.dtype), a->val[O_INPUT]);
    if (dec)
        printf("  kept        %lld components\n  explained   %.6f of the variance\n", (long long)k, inertia);
    else
        printf("  n_clusters  %lld\n  inertia     %.8g\n  n_iter      %.0f\n", (long long)k, inertia, n_iter);
    printf("  device      %s (backend %s, variant %s)\n", dev, fl_backend_name(r.backend), r.variant);
    printf("  time        %.3f s\n", seconds);
    for (int i = 0; i < 5; i++)
        if (paths[i])
            printf("  %-11s %s\n", names[i], paths[i]);
}

/* Creates the temporaries, fits, writes the outputs and commits them,
 * unless SIGINT arrived: see cli_progress_start. */
static int fit_steps(const cli_args *a, fit_state *s, const char *algo, cli_progress *prog)
{
    const char *paths[5] = {a->val[O_LABELS], a->val[O_CENTERS], a->val[O_COMPONENTS], a->val[O_TRANSFORM],
                            a->val[O_MODEL]};
    int rc;
    for (int i = 0; i < 5; i++) {
        if (!paths[i])
            continue;
        if ((rc = cli_out_create(&s->out[s->n_out], paths[i])) != 0)
            return rc;
        s->n_out++;
    }
    fl_status st = fl_model_create(s->ctx, algo, s->params, &s->model);
    if (st)
        return cli_lib_error(s->ctx, st, "fit");
    fl_array X = fl_array_host(s->X.data, s->X.dtype, s->X.rows, s->X.cols);
    fl_array w = fl_array_host(s->w.data, s->w.dtype, s->w.rows, 1);
    double t0 = cli_now();
    st = fl_model_fit(s->model, &X, NULL, s->w.data ? &w : NULL);
    double seconds = cli_now() - t0;
    cli_progress_stop(prog, s->ctx);
    if (st)
        return cli_lib_error(s->ctx, st, "fit");
    double inertia = 0, n_iter = 0;
    fl_dtype cdt, ldt;
    int64_t k = 0, d = 0, n = 0, one = 0;
    int o = 0;
    if (is_decomposition(algo)) {
        /* "inertia" carries the explained variance ratio kept, summed */
        void *ratio = NULL;
        if ((rc = copy_attr(s, "components_", &s->components, &cdt, &k, &d)) ||
            (rc = copy_attr(s, "explained_variance_ratio_", &ratio, &ldt, &n, &one)))
            return rc;
        for (int64_t i = 0; i < n; i++)
            inertia += ldt == FL_DTYPE_F32 ? ((float *)ratio)[i] : ((double *)ratio)[i];
        free(ratio);
        if (paths[3]) {
            if (!(s->transform = malloc(fl_dtype_size(cdt) * (size_t)(s->X.rows * k)))) {
                cli_error("out of memory for the transformed data");
                return CLI_EXIT_FAILURE;
            }
            fl_array T = fl_array_host(s->transform, cdt, s->X.rows, k);
            if ((st = fl_model_transform(s->model, &X, &T)) != FL_STATUS_OK)
                return cli_lib_error(s->ctx, st, "transform");
        }
        if (paths[2] && (rc = cli_out_write_matrix(&s->out[o++], s->components, cdt, k, d, 2)))
            return rc;
        if (paths[3] && (rc = cli_out_write_matrix(&s->out[o++], s->transform, cdt, s->X.rows, k, 2)))
            return rc;
    } else {
        if ((st = fl_model_attr_scalar(s->model, "inertia_", &inertia)) ||
            (st = fl_model_attr_scalar(s->model, "n_iter_", &n_iter)))
            return cli_lib_error(s->ctx, st, "reading the fitted attributes");
        if ((rc = copy_attr(s, "cluster_centers_", &s->centers, &cdt, &k, &d)) ||
            (rc = copy_attr(s, "labels_", (void **)&s->labels, &ldt, &n, &one)))
            return rc;
        if (paths[0] && (rc = cli_out_write_matrix(&s->out[o++], s->labels, ldt, n, 1, 1)))
            return rc;
        if (paths[1] && (rc = cli_out_write_matrix(&s->out[o++], s->centers, cdt, k, d, 2)))
            return rc;
    }
    if (paths[4] && (st = fl_model_save(s->model, s->out[o].tmp)) != FL_STATUS_OK) {
        rc = cli_lib_error(s->ctx, st, paths[4]);
        return st == FL_STATUS_IO_ERROR ? CLI_EXIT_FILE : rc;
    }
    if (cli_interrupted())
        return cli_lib_error(s->ctx, FL_STATUS_CANCELLED, "fit");
    if ((rc = cli_out_commit(s->out, s->n_out)) != 0)
        return rc;
    s->n_out = 0;
    summary(a, s, algo, inertia, n_iter, k, seconds);
    return 0;
}

/* Runs fit_steps with the progress bar and the Ctrl-C handler in place. */
static int fit_and_write(const cli_args *a, fit_state *s, const char *algo)
{
    cli_progress prog;
    int show = !a->val[O_QUIET] && (a->val[O_PROGRESS] || isatty(STDERR_FILENO));
    cli_progress_start(&prog, s->ctx, show);
    int rc = fit_steps(a, s, algo, &prog);
    cli_progress_stop(&prog, s->ctx);
    cli_out_discard(s->out, s->n_out); /* before SIGINT may kill the process again */
    s->n_out = 0;
    cli_interrupt_end(&prog);
    return rc;
}

/* `flashlib fit ALGO ...`: see help() and the file comment. */
int cmd_fit(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse("fit", opts, 1, argc, argv, &a);
    if (rc)
        return rc;
    const char *algo = a.n_pos ? a.pos[0] : NULL;
    if (a.help && (!algo || cli_check_algo("fit", algo) == 0)) {
        help(algo);
        return 0;
    }
    if ((rc = cli_check_algo("fit", algo)) != 0)
        return rc;
    if (!strcmp(algo, "knn") || !strcmp(algo, "ivf_flat") || !strcmp(algo, "ivf_pq") ||
        !strcmp(algo, "cagra")) {
        cli_error("fit: %s is built and searched by flashlib kneighbors --data FILE%s%s [--save-model FILE] "
                  "(see flashlib kneighbors --help)",
                  algo, strcmp(algo, "knn") ? " --index " : "", strcmp(algo, "knn") ? algo : "");
        return CLI_EXIT_USAGE;
    }
    int64_t threads;
    fl_dtype dtype;
    if ((rc = check_options(&a, algo, &threads, &dtype)) != 0)
        return rc;
    fit_state s;
    memset(&s, 0, sizeof s);
    char err[256];
    const char *device = a.val[O_DEVICE] ? a.val[O_DEVICE] : "auto";
    fl_status st = fl_ctx_create(device, &s.ctx, err, sizeof err);
    if (st) {
        cli_error("fit: --device: %s", err);
        return st == FL_STATUS_INVALID_ARG ? CLI_EXIT_USAGE : CLI_EXIT_LIBRARY;
    }
    if (a.val[O_VERBOSE]) {
        fl_ctx_set_log(s.ctx, log_cb, NULL);
        fl_ctx_set_verbosity(s.ctx, FL_LOG_INFO);
    }
    if (threads >= 0 && (st = fl_ctx_set_threads(s.ctx, (int)threads)) != FL_STATUS_OK)
        rc = cli_lib_error(s.ctx, st, "--threads");
    if (!rc)
        rc = cli_make_params(s.ctx, algo, a.rep, a.n_rep, &s.params);
    if (!rc && !a.val[O_INIT] && !is_decomposition(algo)) {
        char init[32];
        if (fl_params_get(s.ctx, s.params, "init", init, sizeof init) == FL_STATUS_OK &&
            !strcmp(init, "array")) {
            cli_error("fit: -p init=array needs the centres: give them with --init-centers FILE");
            rc = CLI_EXIT_USAGE;
        }
    }
    if (!rc)
        rc = cli_check_device(s.ctx, device);
    if (!rc)
        rc = read_inputs(&a, dtype, &s);
    if (!rc)
        rc = fit_and_write(&a, &s, algo);
    fit_free(&s);
    return rc;
}
