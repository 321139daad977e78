/* pingpong: the latency of one request at a time, to the microsecond.
 *
 * redis-benchmark's latency histogram steps by 8 µs around 20-60 µs, as coarse as
 * the difference a proxy makes at -c 1. This client sends a SET or a GET, waits for
 * the whole reply, and times each round trip with CLOCK_MONOTONIC:
 *
 *   pingpong PORT set|get REQUESTS [VALUE_SIZE]
 *
 * prints "p50_us p99_us mean_us rps" on one line. The first tenth of the requests
 * warms up and is not counted. Keys are key:000000 to key:099999, as with
 * redis-benchmark -r 100000. Built by bench.sh with cc; not part of respgate. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Length of the whole reply at the start of buf[0..len), or 0 while incomplete.
 * Only the shapes SET and GET answer with: a simple string, an error, a bulk. */
static size_t reply_len(const char *buf, size_t len)
{
    const char *crlf = memchr(buf, '\n', len);
    if (!crlf) return 0;
    size_t head = (size_t)(crlf - buf) + 1;
    if (buf[0] != '$') return head;
    long n = strtol(buf + 1, NULL, 10);
    if (n < 0) return head;
    size_t need = head + (size_t)n + 2;
    return len >= need ? need : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: pingpong PORT set|get REQUESTS [VALUE_SIZE]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    int is_set = strcmp(argv[2], "set") == 0;
    long total = atol(argv[3]);
    int vsize = argc > 4 ? atoi(argv[4]) : 32;
    if (total < 10 || vsize < 1 || vsize > 4096) return 2;
    long warm = total / 10;

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    char value[4097];
    memset(value, 'x', (size_t)vsize);
    value[vsize] = '\0';
    uint64_t *lat = malloc(sizeof(*lat) * (size_t)(total - warm));
    if (!lat) die("malloc");
    char req[4200], buf[8192];
    srand(1);
    uint64_t start = 0;
    for (long i = 0; i < total; i++) {
        char key[16];
        snprintf(key, sizeof(key), "key:%06d", rand() % 100000);
        int n = is_set ? snprintf(req, sizeof(req), "*3\r\n$3\r\nSET\r\n$10\r\n%s\r\n$%d\r\n%s\r\n",
                                  key, vsize, value)
                       : snprintf(req, sizeof(req), "*2\r\n$3\r\nGET\r\n$10\r\n%s\r\n", key);
        if (i == warm) start = now_ns();
        uint64_t t0 = now_ns();
        if (write(fd, req, (size_t)n) != n) die("write");
        size_t got = 0, want = 0;
        while (!want) {
            ssize_t r = read(fd, buf + got, sizeof(buf) - got);
            if (r <= 0) die("read");
            got += (size_t)r;
            want = reply_len(buf, got);
        }
        if (buf[0] == '-') {
            fprintf(stderr, "error reply: %.*s", (int)got, buf);
            return 1;
        }
        if (i >= warm) lat[i - warm] = now_ns() - t0;
    }
    double secs = (double)(now_ns() - start) / 1e9;
    long n = total - warm;
    qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += (double)lat[i];
    printf("%.1f %.1f %.1f %.0f\n", (double)lat[n / 2] / 1e3, (double)lat[n * 99 / 100] / 1e3,
           sum / (double)n / 1e3, (double)n / secs);
    free(lat);
    close(fd);
    return 0;
}
