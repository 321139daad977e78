/* RDB checks: Redis' CRC64 on its own test vector, and a snapshot fed in pieces of
 * every size, whole, truncated and corrupted. */
#include <criterion/criterion.h>
#include <string.h>

#include "rdb.h"

Test(rdb, crc64_matches_redis)
{
    cr_assert_eq(rdb_crc64(0, (const unsigned char *)"123456789", 9), 0xe9c6d914c4b8d9caULL);
}

/* "REDIS0010", an opcode or two, the EOF opcode, then the checksum. */
static size_t make(unsigned char *out, int with_crc)
{
    static const unsigned char body[] = "REDIS0010\xfa\x09redis-ver\x06"
                                        "7.0.15\xff";
    size_t n = sizeof(body) - 1;
    memcpy(out, body, n);
    uint64_t crc = with_crc ? rdb_crc64(0, out, n) : 0;
    for (int i = 0; i < 8; i++)
        out[n + i] = (unsigned char)(crc >> (8 * i));
    return n + 8;
}

Test(rdb, a_whole_snapshot_passes_in_any_pieces)
{
    unsigned char buf[64];
    size_t n = make(buf, 1);
    for (size_t piece = 1; piece <= n; piece++) {
        struct rdb_check c;
        rdb_check_init(&c);
        for (size_t at = 0; at < n; at += piece)
            rdb_check_feed(&c, buf + at, at + piece > n ? n - at : piece);
        int version;
        const char *why = "";
        cr_assert_eq(rdb_check_finish(&c, &version, &why), 0, "piece %zu: %s", piece, why);
        cr_assert_eq(version, 10);
    }
}

Test(rdb, truncated_corrupted_and_unchecked)
{
    unsigned char buf[64];
    size_t n = make(buf, 1);
    struct rdb_check c;
    int version;
    const char *why;
    rdb_check_init(&c);
    rdb_check_feed(&c, buf, n - 3);
    cr_assert_eq(rdb_check_finish(&c, &version, &why), -1);
    buf[12] ^= 1;
    rdb_check_init(&c);
    rdb_check_feed(&c, buf, n);
    cr_assert_eq(rdb_check_finish(&c, &version, &why), -1);
    cr_assert_str_eq(why, "checksum mismatch");
    n = make(buf, 0); /* rdbchecksum no: 0 */
    rdb_check_init(&c);
    rdb_check_feed(&c, buf, n);
    cr_assert_eq(rdb_check_finish(&c, &version, &why), 0);
    rdb_check_init(&c);
    rdb_check_feed(&c, "HELLO0010", 9);
    cr_assert_eq(rdb_check_finish(&c, &version, &why), -1);
}
