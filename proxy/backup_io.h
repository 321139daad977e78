/* backup_io: the backup thread's blocking RESP client: a connection with a deadline
 * on every read, a command and its first reply line, a bulk body, INFO keyspace's
 * counts. Part of the backup module; nothing else uses it. */
#ifndef RG_BACKUP_IO_H
#define RG_BACKUP_IO_H

#include <stddef.h>
#include <sys/socket.h>

#define BCONN_TIMEOUT_MS 30000 /* no byte from the peer for this long: it is dead */
#define BCONN_MAX_DBS 64

/* A blocking reader with a deadline per read. */
struct bconn {
    int fd;
    void *ssl; /* an SSL once bconn_tls() succeeded; NULL: plaintext */
    unsigned char buf[1 << 16];
    size_t len, pos;
};

/* A connected socket (blocking) to sa within ms, or -1. */
int bconn_connect(const struct sockaddr_storage *sa, socklen_t len, int ms);
/* The connection speaks TLS from now on (upstream.tls): ctx, the name to verify
 * (and send as SNI), whether to verify. 0, or -1 with the reason in why. */
int bconn_tls(struct bconn *c, void *ctx, const char *name, int verify, char *why, size_t whylen);
/* Closes the connection (not c itself). */
void bconn_close(struct bconn *c);
/* Refills the buffer: -1 on EOF, error or BCONN_TIMEOUT_MS of silence. */
int bconn_fill(struct bconn *c);
/* One line without its CRLF (cut at cap). -1 on EOF, error or timeout. */
int bconn_line(struct bconn *c, char *line, size_t cap);
int bconn_send(struct bconn *c, const char *s, size_t n);
/* A command as RESP, its first reply line in line. */
int bconn_command(struct bconn *c, char *line, size_t cap, int argc, const char **argv);
/* A bulk reply's body (after its "$n" line) into out, NUL-terminated. */
int bconn_bulk(struct bconn *c, const char *line, char *out, size_t cap);
/* "db0:keys=3,..." lines of INFO keyspace into keys[db] (left as they were for the
 * databases not named). */
void bconn_keyspace(const char *text, long long *keys);

#endif
