/* log: levelled, timestamped lines on stderr, as text or as one JSON object a line
 * ({"time","level","thread","msg"}) for log collectors.
 * One fprintf per line, so lines from different threads never interleave.
 * Nothing on the per-request path logs above debug. */
#ifndef RG_LOG_H
#define RG_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Parses "debug", "info", "warn", "error". Returns -1 on anything else. */
int log_level_parse(const char *name);
void log_set_level(enum log_level level);
/* 0: text, 1: JSON lines. Safe to change while other threads log. */
void log_set_json(int json);
int log_enabled(enum log_level level);
/* Names the calling thread in its log lines ("main", "worker-0"...); copied. */
void log_set_thread_name(const char *name);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, __VA_ARGS__);                             \
    } while (0)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
