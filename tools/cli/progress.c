/*
 * progress.c — the progress bar on stderr and Ctrl-C.
 *
 * The library reports progress through the context's callback, and a
 * nonzero return from it cancels the call cleanly (outputs untouched). The
 * CLI uses that one hook for both: it draws the bar when asked to, and it
 * returns "stop" once SIGINT has arrived, so an interrupted fit leaves no
 * partial output files behind.
 */
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t interrupted;
static struct timespec first_sigint;

/* The first SIGINT only sets a flag: the next progress callback turns it
 * into a cancel. A second one half a second or more later (the user
 * pressing Ctrl-C again) ends the process at once. A second one sooner is a
 * duplicate of the first: a terminal signals the process group once per
 * Ctrl-C, but a supervisor such as timeout(1) signals the process and then
 * its group. Everything called here is async-signal-safe. */
static void on_sigint(int sig)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!interrupted) {
        first_sigint = now;
        interrupted = 1;
        return;
    }
    double since =
        (double)(now.tv_sec - first_sigint.tv_sec) + 1e-9 * (double)(now.tv_nsec - first_sigint.tv_nsec);
    if (since >= 0.5) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

/* Draws one bar: "kmeans.lloyd [=====     ] 12/300 1.4s". */
static void draw(cli_progress *p, const char *stage, int64_t done, int64_t total, double now)
{
    char bar[32];
    int width = (int)sizeof bar - 2;
    int fill = total > 0 ? (int)((double)width * (double)(done < total ? done : total) / (double)total) : 0;
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '=' : ' ';
    bar[width] = '\0';
    if (total > 0)
        fprintf(stderr, "\r\033[K%-14s [%s] %lld/%lld  %.1fs", stage, bar, (long long)done, (long long)total,
                now - p->start);
    else
        fprintf(stderr, "\r\033[K%-14s %lld  %.1fs", stage, (long long)done, now - p->start);
    fflush(stderr);
    p->drawn = 1;
}

/* The context's progress callback: cancels after Ctrl-C, draws when
 * enabled (throttled to 10 redraws a second on a terminal, one line a
 * second otherwise). */
static int callback(void *user, const char *stage, int64_t done, int64_t total)
{
    cli_progress *p = user;
    if (interrupted)
        return 1;
    if (!p->enabled)
        return 0;
    double now = cli_now();
    int new_stage = strncmp(stage, p->stage, sizeof p->stage - 1) != 0;
    if (p->tty) {
        /* Short fits draw nothing: a bar that flashes for 10 ms is noise. */
        if (now - p->start < 0.25 || (!new_stage && now - p->last < 0.1))
            return 0;
        draw(p, stage, done, total, now);
    } else {
        if (!new_stage && now - p->last < 1.0)
            return 0;
        fprintf(stderr, "flashlib: progress: %s %lld/%lld (%.1fs)\n", stage, (long long)done,
                (long long)total, now - p->start);
    }
    snprintf(p->stage, sizeof p->stage, "%s", stage);
    p->last = now;
    return 0;
}

void cli_progress_start(cli_progress *p, fl_ctx *ctx, int enabled)
{
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    p->tty = isatty(STDERR_FILENO);
    p->start = p->last = cli_now();
    interrupted = 0;
    /* A shell starts background jobs with SIGINT ignored; keep it so. */
    struct sigaction old;
    p->sigint_owned = sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler != SIG_IGN;
    if (p->sigint_owned) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
    }
    fl_ctx_set_progress(ctx, callback, p);
}

void cli_progress_stop(cli_progress *p, fl_ctx *ctx)
{
    fl_ctx_set_progress(ctx, NULL, NULL);
    if (p->drawn && p->tty) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->drawn = 0;
}

int cli_interrupted(void)
{
    return interrupted != 0;
}

void cli_interrupt_end(cli_progress *p)
{
    if (p->sigint_owned)
        signal(SIGINT, SIG_DFL);
    p->sigint_owned = 0;
}
