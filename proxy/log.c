/* log: see log.h. The level is an atomic so a later config reload can change it
 * while workers run; the thread name is thread-local. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static atomic_int log_min_level = LOG_INFO;
static atomic_int log_json;
static _Thread_local char log_thread[16] = "main";

static const char *const log_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, log_names[i]) == 0) return i;
    return -1;
}

void log_set_level(enum log_level level)
{
    atomic_store_explicit(&log_min_level, level, memory_order_relaxed);
}

void log_set_json(int json)
{
    atomic_store_explicit(&log_json, json, memory_order_relaxed);
}

/* msg as the inside of a JSON string: quotes, backslashes, control and non-ASCII
 * bytes escaped. */
static void json_escape(const char *msg, char *out, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && n + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*p;
        } else if (*p < 0x20 || *p >= 0x7f) { /* always valid JSON, whatever the bytes */
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", *p);
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n] = '\0';
}

int log_enabled(enum log_level level)
{
    return (int)level >= atomic_load_explicit(&log_min_level, memory_order_relaxed);
}

void log_set_thread_name(const char *name)
{
    snprintf(log_thread, sizeof(log_thread), "%s", name);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level)) return;

    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    if (atomic_load_explicit(&log_json, memory_order_relaxed)) {
        char esc[sizeof(msg) * 6 + 8];
        json_escape(msg, esc, sizeof(esc));
        fprintf(stderr,
                "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"thread\":\"%s\",\"msg\":\"%s\"}\n",
                when, ts.tv_nsec / 1000000, log_names[level], log_thread, esc);
        return;
    }
    fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", when, ts.tv_nsec / 1000000, log_names[level],
            log_thread, msg);
}
