/*
 * format.c — text and JSON renderings of an estimate: the summary line,
 * the sub-operation tree and a JSON object. Every formatter writes into the
 * caller's buffer and returns the length it needed, as snprintf does.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "info/info_internal.h"

void fli_bprintf(fli_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = b->used < b->len ? b->p + b->used : NULL;
    size_t room = b->used < b->len ? b->len - b->used : 0;
    int w = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (w > 0)
        b->used += (size_t)w;
}

void fli_bjson_str(fli_buf *b, const char *s)
{
    if (!s) {
        fli_bprintf(b, "null");
        return;
    }
    fli_bprintf(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fli_bprintf(b, "\\%c", c);
        else if (c < 0x20)
            fli_bprintf(b, "\\u%04x", c);
        else
            fli_bprintf(b, "%c", c);
    }
    fli_bprintf(b, "\"");
}

/* The shortest of %.15g / %.17g that reads back as the same double. */
static void bnum(fli_buf *b, double v)
{
    if (!isfinite(v)) {
        fli_bprintf(b, "null");
        return;
    }
    char t[32];
    snprintf(t, sizeof t, "%.15g", v);
    if (strtod(t, NULL) != v)
        snprintf(t, sizeof t, "%.17g", v);
    fli_bprintf(b, "%s", t);
}

static size_t finish(fli_buf *b)
{
    if (b->len)
        b->p[b->used < b->len ? b->used : b->len - 1] = '\0';
    return b->used;
}

/* "1.23 ms", "456 us", "2.5 s" */
static void fmt_time(char *out, size_t len, double ms)
{
    if (ms >= 1000)
        snprintf(out, len, "%.3g s", ms / 1000);
    else if (ms >= 1)
        snprintf(out, len, "%.3g ms", ms);
    else
        snprintf(out, len, "%.3g us", ms * 1000);
}

static void fmt_bytes(char *out, size_t len, double b)
{
    static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int i = 0;
    while (b >= 1024 && i < 6)
        b /= 1024, i++;
    snprintf(out, len, i ? "%.3g %s" : "%.0f %s", b, u[i]);
}

static void fmt_shape(char *out, size_t len, const fl_info_result *r)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < r->ndim && used < len; i++) {
        int w = snprintf(out + used, len - used, "%s%lld", i ? "x" : "", (long long)r->shape[i]);
        used += w > 0 ? (size_t)w : 0;
    }
}

size_t fl_info_summary(const fl_info_result *r, char *buf, size_t len)
{
    fli_buf b = {buf, len, 0};
    if (!r) {
        fli_bprintf(&b, "(no result)");
        return finish(&b);
    }
    char shape[96], t[32], mem[32];
    fmt_shape(shape, sizeof shape, r);
    fmt_time(t, sizeof t, r->runtime_ms);
    fmt_bytes(mem, sizeof mem, (double)r->peak_memory_bytes);
    fli_bprintf(&b, "%s %s %s on %s: %s, %s-bound", r->op, shape, r->dtype, r->device, t,
                fl_info_bound_name(r->bound));
    if (r->bound == FL_INFO_BOUND_MEMORY)
        fli_bprintf(&b, ", %.0f GB/s (%.0f%% of %.0f GB/s)", r->achieved_gbs, r->peak_share * 100,
                    r->peak_value);
    else if (r->bound == FL_INFO_BOUND_COMPUTE)
        fli_bprintf(&b, ", %.3g TFLOP/s (%.0f%% of %.4g)", r->achieved_tflops, r->peak_share * 100,
                    r->peak_value);
    else if (r->bound == FL_INFO_BOUND_TRANSFER)
        fli_bprintf(&b, " (%.0f%% of the %.0f GB/s link)", r->peak_share * 100, r->peak_value);
    else
        fli_bprintf(&b, ", %.3g TFLOP/s", r->achieved_tflops);
    fli_bprintf(&b, ", peak %s%s%s, %s/%s", mem, r->fits_in_memory ? "" : " (DOES NOT FIT)",
                r->peak_memory_exact ? " (planned)" : "", r->backend, r->variant);
    if (r->expected_residual >= 0)
        fli_bprintf(&b, ", residual ~%.1e", r->expected_residual);
    fli_bprintf(&b, " [%s]", fl_info_tier_name(r->tier));
    return finish(&b);
}

static int is_last_child(const fl_info_result *r, int i)
{
    for (int j = i + 1; j < r->n_nodes; j++) {
        if (r->nodes[j].depth < r->nodes[i].depth)
            return 1;
        if (r->nodes[j].parent == r->nodes[i].parent)
            return 0;
    }
    return 1;
}

size_t fl_info_tree(const fl_info_result *r, char *buf, size_t len)
{
    fli_buf b = {buf, len, 0};
    if (!r || r->n_nodes < 1) {
        fli_bprintf(&b, "(no result)\n");
        return finish(&b);
    }
    char shape[96];
    fmt_shape(shape, sizeof shape, r);
    fli_bprintf(&b, "%s %s %s on %s: %s/%s [%s]\n", r->op, shape, r->dtype, r->device, r->backend, r->variant,
                fl_info_tier_name(r->tier));
    fli_bprintf(&b, "%-44s %10s %6s %9s %10s %-9s %s\n", "", "runtime", "share", "TFLOP/s", "GB/s", "bound",
                "tier");
    /* last[d]: the ancestor at depth d was the last of its siblings */
    int last[FL_INFO_MAX_NODES] = {0};
    const double total = r->nodes[0].runtime_ms;
    for (int i = 0; i < r->n_nodes; i++) {
        const fl_info_node *n = &r->nodes[i];
        char label[160], t[32];
        size_t used = 0;
        label[0] = '\0';
        if (n->depth > 0) {
            last[n->depth] = is_last_child(r, i);
            for (int d = 1; d < n->depth; d++)
                used +=
                    (size_t)snprintf(label + used, sizeof label - used, "%s", last[d] ? "    " : "\u2502   ");
            used += (size_t)snprintf(label + used, sizeof label - used, "%s",
                                     last[n->depth] ? "\u2514\u2500\u2500 " : "\u251c\u2500\u2500 ");
        }
        if (n->repeat > 1)
            snprintf(label + used, sizeof label - used, "%s x%.0f", n->name, n->repeat);
        else
            snprintf(label + used, sizeof label - used, "%s", n->name);
        /* pad by display columns: the box characters are 3 bytes, 1 column */
        int cols = 0;
        for (const char *p = label; *p; p++)
            cols += ((unsigned char)*p & 0xC0) != 0x80;
        fmt_time(t, sizeof t, n->runtime_ms);
        double s = n->runtime_ms * 1e-3;
        fli_bprintf(&b, "%s%*s %10s %5.1f%% %9.3g %10.4g %-9s %s\n", label, cols < 44 ? 44 - cols : 0, "", t,
                    total > 0 ? 100 * n->runtime_ms / total : 0, s > 0 ? n->flops / s * 1e-12 : 0,
                    s > 0 ? n->hbm_bytes / s * 1e-9 : 0, fl_info_bound_name(n->bound),
                    fl_info_tier_name(n->tier));
    }
    char mem[32], host[32];
    fmt_bytes(mem, sizeof mem, (double)r->peak_memory_bytes);
    fmt_bytes(host, sizeof host, (double)r->peak_host_bytes);
    fli_bprintf(&b, "peak memory %s%s, host scratch %s%s\n", mem,
                r->peak_memory_exact ? " (the plan's own)" : "", host,
                r->fits_in_memory ? "" : "  DOES NOT FIT");
    if (r->expected_residual >= 0)
        fli_bprintf(&b, "expected residual ~%.1e\n", r->expected_residual);
    fli_bprintf(&b, "route: %s\n", r->reason);
    if (r->calibration)
        fli_bprintf(&b, "calibration: %s\n", r->calibration);
    for (int i = 0; i < r->n_notes; i++)
        fli_bprintf(&b, "note: %s\n", r->notes[i]);
    return finish(&b);
}

static void json_node(fli_buf *b, const fl_info_result *r, int i)
{
    const fl_info_node *n = &r->nodes[i];
    fli_bprintf(b, "{\"name\":");
    fli_bjson_str(b, n->name);
    fli_bprintf(b, ",\"detail\":");
    fli_bjson_str(b, n->detail);
    fli_bprintf(b, ",\"repeat\":");
    bnum(b, n->repeat);
    fli_bprintf(b, ",\"runtime_ms\":");
    bnum(b, n->runtime_ms);
    fli_bprintf(b, ",\"flops\":");
    bnum(b, n->flops);
    fli_bprintf(b, ",\"hbm_bytes\":");
    bnum(b, n->hbm_bytes);
    fli_bprintf(b, ",\"launches\":");
    bnum(b, n->launches);
    fli_bprintf(b, ",\"bound\":\"%s\",\"confidence\":\"%s\",\"subops\":[", fl_info_bound_name(n->bound),
                fl_info_tier_name(n->tier));
    int first = 1;
    for (int j = i + 1; j < r->n_nodes && r->nodes[j].depth > n->depth; j++)
        if (r->nodes[j].parent == i) {
            fli_bprintf(b, first ? "" : ",");
            first = 0;
            json_node(b, r, j);
        }
    fli_bprintf(b, "]}");
}

size_t fl_info_json(const fl_info_result *r, char *buf, size_t len)
{
    fli_buf b = {buf, len, 0};
    if (!r || r->n_nodes < 1) {
        fli_bprintf(&b, "null");
        return finish(&b);
    }
    fli_bprintf(&b, "{\"op\":");
    fli_bjson_str(&b, r->op);
    fli_bprintf(&b, ",\"shape\":[");
    for (int i = 0; i < r->ndim; i++)
        fli_bprintf(&b, "%s%lld", i ? "," : "", (long long)r->shape[i]);
    fli_bprintf(&b, "],\"dtype\":");
    fli_bjson_str(&b, r->dtype);
    fli_bprintf(&b, ",\"device\":");
    fli_bjson_str(&b, r->device);
    fli_bprintf(&b, ",\"runtime_ms\":");
    bnum(&b, r->runtime_ms);
    fli_bprintf(&b, ",\"flops\":");
    bnum(&b, r->flops);
    fli_bprintf(&b, ",\"hbm_bytes\":");
    bnum(&b, r->hbm_bytes);
    fli_bprintf(&b, ",\"iterations\":");
    bnum(&b, r->iterations);
    fli_bprintf(&b,
                ",\"peak_memory_bytes\":%llu,\"peak_host_bytes\":%llu,\"peak_memory_exact\":%s,"
                "\"fits_in_memory\":%s",
                (unsigned long long)r->peak_memory_bytes, (unsigned long long)r->peak_host_bytes,
                r->peak_memory_exact ? "true" : "false", r->fits_in_memory ? "true" : "false");
    fli_bprintf(&b, ",\"bottleneck\":\"%s\",\"achieved_tflops\":", fl_info_bound_name(r->bound));
    bnum(&b, r->achieved_tflops);
    fli_bprintf(&b, ",\"achieved_gbs\":");
    bnum(&b, r->achieved_gbs);
    fli_bprintf(&b, ",\"peak_share\":");
    bnum(&b, r->peak_share);
    fli_bprintf(&b, ",\"peak_value\":");
    bnum(&b, r->peak_value);
    fli_bprintf(&b, ",\"peak_what\":");
    fli_bjson_str(&b, r->peak_what);
    fli_bprintf(&b, ",\"expected_residual\":");
    if (r->expected_residual >= 0)
        bnum(&b, r->expected_residual);
    else
        fli_bprintf(&b, "null");
    fli_bprintf(&b, ",\"implemented\":%s,\"backend\":", r->implemented ? "true" : "false");
    fli_bjson_str(&b, r->backend);
    fli_bprintf(&b, ",\"variant\":");
    fli_bjson_str(&b, r->variant);
    fli_bprintf(&b, ",\"reason\":");
    fli_bjson_str(&b, r->reason);
    fli_bprintf(&b, ",\"confidence\":\"%s\",\"calibration\":", fl_info_tier_name(r->tier));
    fli_bjson_str(&b, r->calibration);
    fli_bprintf(&b, ",\"model_key\":");
    fli_bjson_str(&b, r->model_key);
    fli_bprintf(&b, ",\"notes\":[");
    for (int i = 0; i < r->n_notes; i++) {
        fli_bprintf(&b, i ? "," : "");
        fli_bjson_str(&b, r->notes[i]);
    }
    fli_bprintf(&b, "],\"tree\":");
    json_node(&b, r, 0);
    fli_bprintf(&b, "}");
    return finish(&b);
}
