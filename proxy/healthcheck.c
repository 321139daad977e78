/* healthcheck: see healthcheck.h. */
#include "healthcheck.h"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_for(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, (int)left);
        if (rc >= 0 || errno != EINTR) return rc > 0 ? 1 : rc;
    }
}

/* "http://host[:port][/path]" into addr and path. */
static int parse_url(const char *url, struct config_addr *addr, char *path, size_t pathlen)
{
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) return -1;
    const char *host = url + sizeof(scheme) - 1, *slash = strchr(host, '/');
    size_t hostlen = slash ? (size_t)(slash - host) : strlen(host);
    char hostport[CONFIG_HOST_MAX + 8], why[128];
    if (hostlen == 0 || hostlen >= sizeof(hostport) - 4) return -1;
    memcpy(hostport, host, hostlen);
    hostport[hostlen] = '\0';
    const char *close = strrchr(hostport, ']'), *colon = strrchr(hostport, ':');
    if (!colon || (close && colon < close)) strcat(hostport, ":80");
    if (config_parse_addr(hostport, addr, why, sizeof(why))) return -1;
    snprintf(path, pathlen, "%s", slash ? slash : "/");
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= ' ') return -1;
    return 0;
}

static int connect_by(const struct config_addr *a, long long deadline, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai, *it;
    char port[8];
    snprintf(port, sizeof(port), "%d", a->port);
    int rc = getaddrinfo(a->host, port, &hints, &ai);
    if (rc) {
        snprintf(err, errlen, "%s: %s", a->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (it = ai; it && fd < 0; it = it->ai_next) {
        fd = socket(it->ai_family, it->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        if (connect(fd, it->ai_addr, it->ai_addrlen) == 0) break;
        int soerr = errno;
        socklen_t len = sizeof(soerr);
        if (soerr == EINPROGRESS && wait_for(fd, POLLOUT, deadline) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0)
            break;
        snprintf(err, errlen, "connect %s:%d: %s", a->host, a->port,
                 soerr == EINPROGRESS ? "timed out" : strerror(soerr));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

int healthcheck_get(const char *url, int timeout_ms, char *err, size_t errlen)
{
    struct config_addr addr;
    char path[1024], req[1400], buf[512];
    if (parse_url(url, &addr, path, sizeof(path))) {
        snprintf(err, errlen, "expected a URL like http://127.0.0.1:7380/readyz");
        return -1;
    }
    long long deadline = now_ms() + timeout_ms;
    int fd = connect_by(&addr, deadline, err, errlen);
    if (fd < 0) return -1;
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, addr.host);
    size_t sent = 0, got = 0;
    while (sent < (size_t)n) {
        ssize_t w = send(fd, req + sent, (size_t)n - sent, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
        } else if (w < 0 && errno == EAGAIN && wait_for(fd, POLLOUT, deadline) == 1) {
            continue;
        } else {
            snprintf(err, errlen, "send: %s", w < 0 ? strerror(errno) : "closed");
            close(fd);
            return -1;
        }
    }
    /* The status line is all that counts: "HTTP/1.x NNN ...". */
    while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
        ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (r > 0) {
            got += (size_t)r;
        } else if (r < 0 && errno == EAGAIN && wait_for(fd, POLLIN, deadline) == 1) {
            continue;
        } else {
            break;
        }
    }
    close(fd);
    buf[got] = '\0';
    int code = 0;
    if (sscanf(buf, "HTTP/%*d.%*d %d", &code) != 1 || code < 100 || code > 599) {
        snprintf(err, errlen, "%s: %s", url, got ? "not an HTTP answer" : "no answer in time");
        return -1;
    }
    return code;
}
