/* region: see region.h. */
#include "region.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Whether addr (network order, family's length) is inside the block. */
static int in_block(const struct config_match *m, const unsigned char *addr)
{
    int full = m->bits / 8, rest = m->bits % 8;
    if (memcmp(m->addr, addr, (size_t)full) != 0) return 0;
    if (!rest) return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (m->addr[full] & mask) == (addr[full] & mask);
}

/* host ends with suffix, at a label boundary ("a.east.example.com" matches
 * "east.example.com"; "beast.example.com" does not), or is it. */
static int has_suffix(const char *host, const char *suffix)
{
    size_t h = strlen(host), s = strlen(suffix);
    if (h > 0 && host[h - 1] == '.') h--; /* a fully qualified name */
    if (h < s || strncasecmp(host + h - s, suffix, s) != 0) return 0;
    return h == s || host[h - s - 1] == '.';
}

int region_match(const struct config *cfg, const char *host, const char *numeric)
{
    unsigned char v4[4], v6[16];
    const char *num = numeric && *numeric ? numeric : host;
    int is4 = inet_pton(AF_INET, num, v4) == 1, is6 = !is4 && inet_pton(AF_INET6, num, v6) == 1;
    for (size_t r = 0; r < cfg->nregions; r++)
        for (size_t k = 0; k < cfg->regions[r].nmatch; k++) {
            const struct config_match *m = &cfg->regions[r].match[k];
            if ((m->family == AF_INET && is4 && in_block(m, v4)) ||
                (m->family == AF_INET6 && is6 && in_block(m, v6)) ||
                (!m->family && has_suffix(host, m->suffix)))
                return (int)r;
        }
    return -1;
}

/* How many distinct priorities are better (lower) than region's. */
static int better_priorities(const struct config *cfg, int region)
{
    long long p = cfg->regions[region].priority;
    int n = 0;
    for (size_t i = 0; i < cfg->nregions; i++) {
        long long q = cfg->regions[i].priority;
        int first = 1; /* count each distinct value once */
        for (size_t k = 0; k < i && first; k++)
            first = cfg->regions[k].priority != q;
        n += first && q < p;
    }
    return n;
}

int region_rank(const struct config *cfg, int region)
{
    if (region < 0 || (size_t)region >= cfg->nregions) return CONFIG_REGIONS_MAX + 1;
    if (!cfg->routing.prefer_local) return 0;
    if (region == cfg->local_region) return 0;
    return 1 + better_priorities(cfg, region);
}

int region_replica_priority(const struct config *cfg, int region)
{
    if (region < 0 || (size_t)region >= cfg->nregions) return 0;
    return 10 * (1 + better_priorities(cfg, region));
}
