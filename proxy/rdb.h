/* rdb: checks an RDB snapshot as it streams: the magic and version at the start, and
 * Redis' CRC64 (Jones) of everything before the last 8 bytes against those bytes
 * (little-endian; 0 means the server had rdbchecksum off). Pure, incremental: feed
 * the bytes in any pieces. */
#ifndef RG_RDB_H
#define RG_RDB_H

#include <stddef.h>
#include <stdint.h>

struct rdb_check {
    uint64_t crc;          /* over the bytes that are certainly not the trailer */
    unsigned char tail[8]; /* the last 8 bytes seen: the trailer, once all is in */
    size_t ntail;
    unsigned char head[9]; /* "REDIS" and 4 version digits */
    size_t nhead;
    unsigned long long total;
};

/* Redis' crc64 (Jones polynomial, reflected), continuing from crc. */
uint64_t rdb_crc64(uint64_t crc, const unsigned char *p, size_t n);
void rdb_check_init(struct rdb_check *c);
void rdb_check_feed(struct rdb_check *c, const void *data, size_t n);
/* After the last byte: 0 if it is a whole RDB file (version in *version), or -1 with
 * why. */
int rdb_check_finish(const struct rdb_check *c, int *version, const char **why);

#endif
