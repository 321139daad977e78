/* backup_io: see backup_io.h. */
#include "backup_io.h"
#include "sock.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static int bconn_wait(int fd, short ev, int ms)
{
    struct pollfd p = {.fd = fd, .events = ev};
    int rc;
    while ((rc = poll(&p, 1, ms)) < 0 && errno == EINTR)
        ;
    return rc;
}

int bconn_fill(struct bconn *c)
{
    ssize_t n;
    if (c->ssl) { /* the socket's SO_RCVTIMEO is the deadline: OpenSSL may hold bytes */
        ERR_clear_error();
        n = SSL_read(c->ssl, c->buf, sizeof(c->buf));
        ERR_clear_error();
    } else {
        if (bconn_wait(c->fd, POLLIN, BCONN_TIMEOUT_MS) <= 0) return -1;
        n = recv(c->fd, c->buf, sizeof(c->buf), 0);
    }
    if (n <= 0) return -1;
    c->len = (size_t)n;
    c->pos = 0;
    return 0;
}

/* One line without its CRLF (cut at cap). -1 on EOF, error or timeout. */
int bconn_line(struct bconn *c, char *line, size_t cap)
{
    size_t n = 0;
    for (;;) {
        if (c->pos == c->len && bconn_fill(c)) return -1;
        char ch = (char)c->buf[c->pos++];
        if (ch == '\n') break;
        if (ch != '\r' && n + 1 < cap) line[n++] = ch;
    }
    line[n] = '\0';
    return 0;
}

int bconn_send(struct bconn *c, const char *s, size_t n)
{
    while (n) {
        ssize_t w = c->ssl ? SSL_write(c->ssl, s, (int)(n > (1u << 30) ? 1u << 30 : n))
                           : send(c->fd, s, n, MSG_NOSIGNAL);
        if (c->ssl) ERR_clear_error();
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A command as RESP, its first reply line in line. */
int bconn_command(struct bconn *c, char *line, size_t cap, int argc, const char **argv)
{
    char head[64];
    snprintf(head, sizeof(head), "*%d\r\n", argc);
    if (bconn_send(c, head, strlen(head))) return -1;
    for (int i = 0; i < argc; i++) {
        snprintf(head, sizeof(head), "$%zu\r\n", strlen(argv[i]));
        if (bconn_send(c, head, strlen(head)) || bconn_send(c, argv[i], strlen(argv[i])) ||
            bconn_send(c, "\r\n", 2))
            return -1;
    }
    return bconn_line(c, line, cap);
}

/* A bulk reply's body (after its "$n" line) into out, NUL-terminated. */
int bconn_bulk(struct bconn *c, const char *line, char *out, size_t cap)
{
    long long n = line[0] == '$' ? atoll(line + 1) : -1;
    if (n < 0) return -1;
    size_t got = 0;
    while ((long long)got < n + 2) {
        if (c->pos == c->len && bconn_fill(c)) return -1;
        char ch = (char)c->buf[c->pos++];
        if ((long long)got < n && got + 1 < cap) out[got] = ch;
        got++;
    }
    out[(size_t)n < cap ? (size_t)n : cap - 1] = '\0';
    return 0;
}

/* "db0:keys=3,..." lines into keys[db]; returns the number of databases seen. */
void bconn_keyspace(const char *text, long long *keys)
{
    for (const char *p = text; (p = strstr(p, "db")); p++) {
        int db;
        long long k;
        if (sscanf(p, "db%d:keys=%lld", &db, &k) == 2 && db >= 0 && db < BCONN_MAX_DBS)
            keys[db] = k;
    }
}

int bconn_connect(const struct sockaddr_storage *sa, socklen_t len, int ms)
{
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (connect(fd, (const struct sockaddr *)sa, len) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    int err = 0;
    socklen_t el = sizeof(err);
    if (bconn_wait(fd, POLLOUT, ms) <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) ||
        err) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

int bconn_tls(struct bconn *c, void *ctx, const char *name, int verify, char *why, size_t whylen)
{
    struct timeval tv = {BCONN_TIMEOUT_MS / 1000, 0}; /* the handshake's deadline too */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    SSL *ssl = SSL_new(ctx);
    ERR_clear_error();
    if (!ssl || SSL_set_fd(ssl, c->fd) != 1 || sock_tls_peer(ssl, name, verify) ||
        SSL_connect(ssl) != 1) {
        long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
        unsigned long e = ERR_peek_last_error();
        char err[160] = "the handshake did not complete";
        if (v != X509_V_OK)
            snprintf(err, sizeof(err), "certificate verify failed: %s",
                     X509_verify_cert_error_string(v));
        else if (e)
            ERR_error_string_n(e, err, sizeof(err));
        snprintf(why, whylen, "TLS: %s", err);
        ERR_clear_error();
        SSL_free(ssl);
        return -1;
    }
    c->ssl = ssl;
    return 0;
}

void bconn_close(struct bconn *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}
