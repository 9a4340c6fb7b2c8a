/*
 * json.c — a minimal streaming JSON writer for --json output: objects,
 * arrays, strings (escaped), integers, and doubles printed with the fewest
 * digits that read back to the same value.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Writes s as a JSON string literal (UTF-8 passes through). */
static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Starts a member: separator, newline, indentation and the key (if any). */
static void key(cli_json *j, const char *k)
{
    if (j->count[j->depth]++)
        fputc(',', j->f);
    fprintf(j->f, "\n%*s", 2 * j->depth, "");
    if (k) {
        put_string(j->f, k);
        fputs(": ", j->f);
    }
}

void cj_begin(cli_json *j, FILE *f)
{
    memset(j, 0, sizeof *j);
    j->f = f;
    fputc('{', f);
    j->depth = 1;
}

/* Opens an object or array as member k (NULL inside arrays). */
static void open_(cli_json *j, const char *k, char bracket)
{
    key(j, k);
    fputc(bracket, j->f);
    if (j->depth < 31)
        j->depth++;
    j->count[j->depth] = 0;
}

void cj_obj(cli_json *j, const char *k)
{
    open_(j, k, '{');
}
void cj_arr(cli_json *j, const char *k)
{
    open_(j, k, '[');
}

void cj_close(cli_json *j, char bracket)
{
    int had = j->count[j->depth];
    j->depth--;
    if (had)
        fprintf(j->f, "\n%*s", 2 * j->depth, "");
    fputc(bracket, j->f);
}

void cj_end(cli_json *j)
{
    cj_close(j, '}');
    fputc('\n', j->f);
    fflush(j->f);
}

void cj_str(cli_json *j, const char *k, const char *v)
{
    key(j, k);
    if (v)
        put_string(j->f, v);
    else
        fputs("null", j->f);
}

void cj_int(cli_json *j, const char *k, int64_t v)
{
    key(j, k);
    fprintf(j->f, "%lld", (long long)v);
}

void cj_num(cli_json *j, const char *k, double v)
{
    key(j, k);
    if (!isfinite(v)) {
        fputs("null", j->f);
        return;
    }
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, j->f);
}

void cj_bool(cli_json *j, const char *k, int v)
{
    key(j, k);
    fputs(v ? "true" : "false", j->f);
}
