/*
 * main.c — the `flashlib` command: dispatch, --version, --help and the
 * check that the library loaded is the one the command was built against.
 */
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *args;    /* shown after the name in the command list */
    const char *summary; /* one line */
} command;

static const command commands[] = {
    {"fit", cmd_fit, "ALGO", "fit kmeans, pca or truncated_svd on a .npy/.csv matrix; write its outputs"},
    {"predict", cmd_predict, "", "assign samples to the clusters of a saved model (labels, distances)"},
    {"kneighbors", cmd_kneighbors, "",
     "exact k nearest neighbours of queries in a data matrix (or a saved model)"},
    {"transform", cmd_transform, "", "apply a saved model's transform (or --inverse) to a matrix"},
    {"route", cmd_route, "ALGO", "show which backend and variant would run for a shape, and why"},
    {"diagnose", cmd_diagnose, "", "library version and build, CPU threads, GPUs (or why there are none)"},
    {"convert", cmd_convert, "", "convert a matrix between .npy and CSV, or between f32 and f64"},
    {"info", cmd_info, "SUBCOMMAND", "estimate an op's runtime, memory and bound on a GPU, without a GPU"},
    {NULL, NULL, NULL, NULL},
};

/* The exit-code table shared by --help and the README. */
static void print_exit_codes(FILE *f)
{
    fputs("exit codes:\n"
          "  0    success\n"
          "  1    out of memory or another failure inside the command itself\n"
          "  2    usage error: unknown command or option, bad option value, unknown\n"
          "       parameter (with the closest valid name), out-of-range parameter\n"
          "  3    file error: an input file is missing, unreadable, malformed or\n"
          "       truncated (or a model file is corrupt); an output cannot be written\n"
          "  4    library error: the flashlib library refused or failed the work\n"
          "       (message and status name, e.g. FL_STATUS_INVALID_ARG, are printed)\n"
          "  5    a GPU was required (--device cuda) and none is usable\n"
          "  130  interrupted with Ctrl-C (no output file is written)\n"
          "Errors are printed on stderr as \"flashlib: error: ...\".\n",
          f);
}

/* Prints `flashlib --help`. */
static void usage(FILE *f)
{
    fputs("usage: flashlib <command> [options]\n"
          "       flashlib <command> --help\n"
          "       flashlib --version\n\n"
          "GPU-accelerated classical machine learning with scikit-learn semantics.\n\n"
          "commands:\n",
          f);
    for (const command *c = commands; c->name; c++) {
        char head[32];
        snprintf(head, sizeof head, "%s%s%s", c->name, *c->args ? " " : "", c->args);
        fprintf(f, "  %-16s%s\n", head, c->summary);
    }
    fputs("  help COMMAND    the same as COMMAND --help\n\n"
          "examples:\n"
          "  flashlib fit kmeans --input X.npy -p n_clusters=16 --labels labels.npy --model km.flm\n"
          "  flashlib predict --model km.flm --input Y.csv --labels y_labels.npy\n"
          "  flashlib fit pca --input X.npy -p n_components=16 --model p.flm\n"
          "  flashlib transform --model p.flm --input X.npy --output Y.npy\n"
          "  flashlib kneighbors --data X.npy --input Q.npy -k 10 --indices I.npy --distances D.npy\n"
          "  flashlib route kmeans --shape 1000000x128 -p n_clusters=8192 --device H100\n"
          "  flashlib diagnose --json\n\n"
          "environment:\n"
          "  FL_NUM_THREADS   CPU threads of the CPU backend (default: OpenMP's)\n"
          "  FL_DISABLE_SM90  set to 1 to turn off the Hopper (sm_90a) fast paths\n"
          "  FL_CUDA_MODULE   path of libflashlib_cuda.so (default: beside libflashlib)\n\n",
          f);
    print_exit_codes(f);
}

/* `flashlib --version`: both versions; exit 4 when they differ. */
static int print_version(void)
{
    const char *lib = fl_version_string();
    printf("flashlib %s (command-line tool)\n", CLI_VERSION);
    printf("libflashlib %s (%s)\n", lib ? lib : "?", cli_library_path());
    return cli_check_library_version();
}

/* The command called `name`, or NULL. */
static const command *find_command(const char *name)
{
    for (const command *c = commands; c->name; c++)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

/* Reports an unknown command with the closest one; CLI_EXIT_USAGE. */
static int unknown_command(const char *name)
{
    const char *names[16];
    int n = 0;
    for (const command *c = commands; c->name && n < 15; c++)
        names[n++] = c->name;
    names[n++] = "help";
    int best = cli_closest(name, names, n);
    if (best >= 0)
        cli_error("unknown command '%s'; did you mean '%s'? (see flashlib --help)", name, names[best]);
    else
        cli_error("unknown command '%s' (see flashlib --help)", name);
    return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V") || !strcmp(cmd, "version"))
        return print_version();
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || (!strcmp(cmd, "help") && argc == 2)) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    int rc = cli_check_library_version();
    if (rc)
        return rc;
    if (!strcmp(cmd, "help")) {
        /* "flashlib help fit kmeans" runs "flashlib fit kmeans --help". */
        const command *c = find_command(argv[2]);
        if (!c)
            return unknown_command(argv[2]);
        char *args[4] = {NULL, NULL, "--help", NULL};
        int n = 0;
        if (argc > 3)
            args[n++] = argv[3];
        args[n++] = "--help";
        return c->run(n, args);
    }
    if (cmd[0] == '-') {
        cli_error("unknown option '%s' before the command (see flashlib --help)", cmd);
        return CLI_EXIT_USAGE;
    }
    const command *c = find_command(cmd);
    if (!c)
        return unknown_command(cmd);
    return c->run(argc - 2, argv + 2);
}
