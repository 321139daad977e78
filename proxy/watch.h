/* watch: notices that a file's contents changed (inotify on its directory, so an
 * editor's write-and-rename and Kubernetes' ConfigMap symlink swap are seen), and
 * calls back once the changes have settled for a moment (debounced). Changes that
 * leave the contents as they were (touch, a rewrite of the same bytes) are not
 * reported. Runs on the caller's event_base. */
#ifndef RG_WATCH_H
#define RG_WATCH_H

#include <event2/event.h>

struct watch;

typedef void (*watch_fn)(void *arg);

/* NULL (and a logged reason) if the directory cannot be watched. */
struct watch *watch_file(struct event_base *base, const char *path, watch_fn changed, void *arg);
/* The contents as of now count as seen (after a reload by other means). */
void watch_mark_seen(struct watch *w);
void watch_destroy(struct watch **w);

#endif
