/* rdb: see rdb.h. */
#include "rdb.h"

#include <string.h>

#define POLY 0x95ac9329ac4bc9b5ULL /* 0xad93d23594c935a9, bit-reflected */

static uint64_t table[256];
static int table_ready;

static void make_table(void)
{
    for (int i = 0; i < 256; i++) {
        uint64_t crc = (uint64_t)i;
        for (int k = 0; k < 8; k++)
            crc = crc & 1 ? (crc >> 1) ^ POLY : crc >> 1;
        table[i] = crc;
    }
    table_ready = 1; /* the same values whoever computes them: a race is harmless */
}

uint64_t rdb_crc64(uint64_t crc, const unsigned char *p, size_t n)
{
    if (!table_ready) make_table();
    while (n--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

void rdb_check_init(struct rdb_check *c)
{
    memset(c, 0, sizeof(*c));
}

void rdb_check_feed(struct rdb_check *c, const void *data, size_t n)
{
    const unsigned char *p = data;
    c->total += n;
    if (c->nhead < sizeof(c->head)) { /* kept aside to look at; still checksummed below */
        size_t k = sizeof(c->head) - c->nhead < n ? sizeof(c->head) - c->nhead : n;
        memcpy(c->head + c->nhead, p, k);
        c->nhead += k;
    }
    /* Keep the last 8 bytes back: they may be the trailer. */
    if (n >= sizeof(c->tail)) {
        c->crc = rdb_crc64(c->crc, c->tail, c->ntail);
        c->crc = rdb_crc64(c->crc, p, n - sizeof(c->tail));
        memcpy(c->tail, p + n - sizeof(c->tail), sizeof(c->tail));
        c->ntail = sizeof(c->tail);
        return;
    }
    size_t over = c->ntail + n > sizeof(c->tail) ? c->ntail + n - sizeof(c->tail) : 0;
    c->crc = rdb_crc64(c->crc, c->tail, over);
    memmove(c->tail, c->tail + over, c->ntail - over);
    c->ntail -= over;
    memcpy(c->tail + c->ntail, p, n);
    c->ntail += n;
}

int rdb_check_finish(const struct rdb_check *c, int *version, const char **why)
{
    *version = 0;
    if (c->nhead < sizeof(c->head) || memcmp(c->head, "REDIS", 5) != 0) {
        *why = "not an RDB file (no REDIS magic)";
        return -1;
    }
    for (int i = 5; i < 9; i++) {
        if (c->head[i] < '0' || c->head[i] > '9') {
            *why = "not an RDB file (bad version)";
            return -1;
        }
        *version = *version * 10 + (c->head[i] - '0');
    }
    if (c->ntail < sizeof(c->tail) || c->total < sizeof(c->head) + 1 + sizeof(c->tail)) {
        *why = "truncated";
        return -1;
    }
    uint64_t stored = 0;
    for (int i = 7; i >= 0; i--)
        stored = stored << 8 | c->tail[i];
    if (stored != 0 && stored != c->crc) {
        *why = "checksum mismatch";
        return -1;
    }
    return 0;
}
