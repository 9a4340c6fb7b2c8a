/*
 * opts.c — command-line parsing and help formatting.
 *
 * Each command declares a table of cli_opt rows; the parser accepts
 * "--name value", "--name=value", "-x value" and "-xvalue", stops at "--",
 * and answers a typo with the closest valid option. getopt_long is not
 * used because its messages cannot carry those suggestions and it permutes
 * argv behind the caller's back.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Case-insensitive Levenshtein distance, capped for long words. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    int prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            int m = sub < del ? sub : del;
            cur[j] = m < ins ? m : ins;
        }
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb];
}

int cli_closest(const char *word, const char *const *cands, int n)
{
    int best = -1, best_d = 1 << 30;
    size_t wl = strlen(word);
    for (int i = 0; i < n; i++) {
        if (!cands[i])
            continue;
        int d = edit_distance(word, cands[i]);
        /* A prefix of a longer name ("--lab") is as good as one typo. */
        if (wl >= 3 && !strncmp(cands[i], word, wl) && d > 1)
            d = 1;
        if (d < best_d) {
            best_d = d;
            best = i;
        }
    }
    int limit = wl <= 4 ? 1 : (wl <= 8 ? 2 : 3);
    return best_d <= limit ? best : -1;
}

int cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || errno) {
        /* Accept integral scientific notation ("1e6") for shapes. */
        errno = 0;
        double x = strtod(s, &end);
        if (end == s || *end != '\0' || errno || !isfinite(x) || x != floor(x) || fabs(x) > 9e18)
            return -1;
        v = (long long)x;
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* Index of the option named `name` (length len), or -1. */
static int find_long(const cli_opt *opts, const char *name, size_t len)
{
    for (int i = 0; opts[i].name; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
            return i;
    return -1;
}

/* Index of the option with the one-letter alias c, or -1. */
static int find_short(const cli_opt *opts, char c)
{
    for (int i = 0; opts[i].name; i++)
        if (opts[i].short_name && opts[i].short_name == c)
            return i;
    return -1;
}

/* Reports an unknown long option with the closest known one. */
static int unknown_option(const char *cmd, const cli_opt *opts, const char *arg, size_t len)
{
    const char *names[CLI_MAX_OPTS + 1];
    int n = 0;
    for (int i = 0; opts[i].name && n < CLI_MAX_OPTS; i++)
        names[n++] = opts[i].name;
    names[n++] = "help";
    char word[128];
    snprintf(word, sizeof word, "%.*s", (int)(len < 100 ? len : 100), arg);
    int best = cli_closest(word, names, n);
    if (best >= 0)
        cli_error("%s: unknown option '--%s'; did you mean '--%s'? (see flashlib %s --help)", cmd, word,
                  names[best], cmd);
    else
        cli_error("%s: unknown option '--%s' (see flashlib %s --help)", cmd, word, cmd);
    return CLI_EXIT_USAGE;
}

/* Stores the value of option `i`. */
static int store(const char *cmd, const cli_opt *o, int i, const char *value, cli_args *out)
{
    if (o->repeat) {
        if (out->n_rep >= CLI_MAX_REPEAT) {
            cli_error("%s: too many --%s options (at most %d)", cmd, o->name, CLI_MAX_REPEAT);
            return CLI_EXIT_USAGE;
        }
        out->rep[out->n_rep++] = value;
    } else {
        out->val[i] = value;
    }
    return 0;
}

/* Takes the value of option `o`: the text after '=' or the next argument. */
static int take_value(const char *cmd, const cli_opt *o, const char *inline_val, int *k, int argc,
                      char **argv, const char **value)
{
    if (inline_val) {
        *value = inline_val;
        return 0;
    }
    if (*k + 1 >= argc) {
        cli_error("%s: option --%s needs a value (%s)", cmd, o->name, o->metavar);
        return CLI_EXIT_USAGE;
    }
    const char *v = argv[*k + 1];
    if (!strncmp(v, "--", 2) && v[2]) {
        cli_error("%s: option --%s needs a value (%s), got the option '%s'", cmd, o->name, o->metavar, v);
        return CLI_EXIT_USAGE;
    }
    (*k)++;
    *value = v;
    return 0;
}

int cli_parse(const char *cmd, const cli_opt *opts, int max_pos, int argc, char **argv, cli_args *out)
{
    memset(out, 0, sizeof *out);
    int only_pos = 0;
    for (int k = 0; k < argc; k++) {
        const char *a = argv[k];
        int idx;
        const char *inline_val = NULL;
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && !strncmp(a, "--", 2)) {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            if (len == 4 && !strncmp(name, "help", 4)) {
                out->help = 1;
                continue;
            }
            if ((idx = find_long(opts, name, len)) < 0)
                return unknown_option(cmd, opts, name, len);
            inline_val = eq ? eq + 1 : NULL;
        } else if (!only_pos && a[0] == '-' && a[1] && !isdigit((unsigned char)a[1])) {
            if (a[1] == 'h' && !a[2]) {
                out->help = 1;
                continue;
            }
            if ((idx = find_short(opts, a[1])) < 0) {
                cli_error("%s: unknown option '-%c' (see flashlib %s --help)", cmd, a[1], cmd);
                return CLI_EXIT_USAGE;
            }
            inline_val = a[2] ? a + 2 : NULL;
        } else {
            if (out->n_pos >= max_pos || out->n_pos >= CLI_MAX_POS) {
                cli_error("%s: unexpected argument '%s' (see flashlib %s --help)", cmd, a, cmd);
                return CLI_EXIT_USAGE;
            }
            out->pos[out->n_pos++] = a;
            continue;
        }
        const cli_opt *o = &opts[idx];
        const char *value = "1";
        if (!o->metavar && inline_val && a[1] != '-') {
            /* Bundled one-letter flags: "-qv" is "-q -v". */
            for (const char *c = a + 1; *c; c++) {
                int j = find_short(opts, *c);
                if (j < 0 || opts[j].metavar) {
                    cli_error("%s: '-%c' in '%s' is not a flag that can be combined (see flashlib %s --help)",
                              cmd, *c, a, cmd);
                    return CLI_EXIT_USAGE;
                }
                out->val[j] = "1";
            }
            continue;
        }
        if (!o->metavar) {
            if (inline_val) {
                cli_error("%s: option --%s takes no value (got '%s')", cmd, o->name, a);
                return CLI_EXIT_USAGE;
            }
        } else {
            int rc = take_value(cmd, o, inline_val, &k, argc, argv, &value);
            if (rc)
                return rc;
        }
        int rc = store(cmd, o, idx, value, out);
        if (rc)
            return rc;
    }
    return 0;
}

void cli_wrap(FILE *f, const char *text, int indent, int col, int width)
{
    const char *p = text;
    int first = 1;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t wl = strcspn(p, " ");
        if (!first && col + 1 + (int)wl > width) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
            first = 1;
        }
        if (!first) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, wl, f);
        col += (int)wl;
        p += wl;
        first = 0;
    }
    fputc('\n', f);
}

void cli_print_options(FILE *f, const cli_opt *opts)
{
    enum { HELP_COL = 28 };
    fputs("options:\n", f);
    for (int i = 0; opts[i].name; i++) {
        const cli_opt *o = &opts[i];
        char head[96];
        if (o->short_name)
            snprintf(head, sizeof head, "  -%c, --%s%s%s", o->short_name, o->name, o->metavar ? " " : "",
                     o->metavar ? o->metavar : "");
        else
            snprintf(head, sizeof head, "      --%s%s%s", o->name, o->metavar ? " " : "",
                     o->metavar ? o->metavar : "");
        int col = fprintf(f, "%s", head);
        if (col >= HELP_COL - 1) {
            fputc('\n', f);
            col = 0;
        }
        col += fprintf(f, "%*s", HELP_COL - col, "");
        cli_wrap(f, o->help, HELP_COL, col, 79);
    }
    fprintf(f, "  -h, --help%*sthis help\n", HELP_COL - 12, "");
}
