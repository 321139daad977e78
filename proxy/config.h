/* config: loads and validates the JSON configuration into plain, immutable data.
 * Every error names the offending key ("regions[0].nodes[1]: port out of range").
 * The same code serves startup, --check-config and every reload. A loaded config
 * is never changed; a reload makes a new one, and threads let go of the old one
 * (refcounted) when they have moved on. */
#ifndef RG_CONFIG_H
#define RG_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>

#define CONFIG_HOST_MAX 256

struct config_addr {
    char host[CONFIG_HOST_MAX]; /* without IPv6 brackets */
    int port;
};

#define CONFIG_REGIONS_MAX 16

/* regions[].match: a CIDR block or a host-name suffix a discovered node is known by. */
struct config_match {
    int family;                   /* AF_INET, AF_INET6; 0: a host-name suffix */
    unsigned char addr[16];       /* the block's address, network order */
    int bits;                     /* its prefix length */
    char suffix[CONFIG_HOST_MAX]; /* lowercased, without a leading dot */
};

/* TLS towards Redis (upstream.tls) or Sentinel (regions[].sentinel.tls). */
struct config_tls_out {
    int enabled;
    char *ca_file;   /* NULL: the system's CAs */
    char *cert_file; /* with key_file: a client certificate (mutual TLS); NULL: none */
    char *key_file;
    char *server_name; /* SNI and the name verified; NULL: each node's own host */
    int verify;        /* the server's chain and name are checked (the default) */
    void *ctx;         /* the SSL_CTX built from these at load; owned here */
};

struct config_region {
    char *name;
    long long priority; /* lower is preferred */
    size_t nmatch;
    struct config_match *match;
    size_t nnodes;
    struct config_addr *nodes; /* probed from the start; may be empty with Sentinel */
    size_t nsentinels;         /* 0: no Sentinel for this region */
    struct config_addr *sentinels;
    char *master_name; /* the name Sentinel monitors; the same in every region */
    char *sentinel_username, *sentinel_password;
    struct config_tls_out sentinel_tls;
};

struct config_user {
    char *name;
    char *password;
};

enum config_log_format { CONFIG_LOG_TEXT = 0, CONFIG_LOG_JSON };

/* tls.client_auth: whether clients must show a certificate the CA signed. */
enum config_tls_auth {
    CONFIG_TLS_AUTH_NONE = 0,
    CONFIG_TLS_AUTH_OPTIONAL,
    CONFIG_TLS_AUTH_REQUIRED
};

/* durability.on_timeout: a write its replicas did not acknowledge in time. */
enum config_durable_timeout { CONFIG_DURABLE_ERROR = 0, CONFIG_DURABLE_REPLY };

/* failover.region_priority: whether respgate sets the replicas' replica-priority. */
enum config_region_priority { CONFIG_RP_OFF = 0, CONFIG_RP_APPLY, CONFIG_RP_CHECK };

/* routing.reads: where reads go (route.h decides with it). */
enum route_reads { ROUTE_READS_REPLICA = 0, ROUTE_READS_MASTER, ROUTE_READS_ANY };

struct config {
    atomic_int refs;
    struct config_addr listen;
    int threads;
    int log_level;           /* enum log_level */
    int log_format;          /* enum config_log_format */
    int shutdown_timeout_ms; /* drain time on SIGTERM/SIGINT */
    int probe_interval_ms;   /* how often every node is asked INFO */
    int busy_poll_us;        /* workers poll without sleeping this long after a write */
    size_t nregions;
    struct config_region *regions;
    int local_region; /* index of this respgate's region (local_region, RESPGATE_REGION); -1 */
    struct {
        int connections_per_node;
        int connect_timeout_ms;
        char *username; /* AUTH towards Redis; NULL: none (or the default user) */
        char *password; /* NULL: no AUTH */
        struct config_tls_out tls;
    } upstream;
    size_t ndeny;
    char **deny; /* lowercased command names ("client|kill" for subcommands) refused here */
    struct {
        char *password; /* clients must AUTH; NULL: respgate asks for nothing */
        size_t nusers;
        struct config_user *users; /* AUTH <name> <password> */
    } auth;
    struct {
        int reads;            /* enum route_reads */
        long long max_lag_ms; /* 0: no time bound */
        long long max_lag_bytes;
        int read_your_writes;
        int no_replica_error; /* no eligible replica: error instead of the master */
        int prefer_local;     /* reads: the local region's replicas first, then by priority */
    } routing;
    struct {
        int max_clients;
        long long max_query_buffer_bytes;
        int max_pending_per_client;
        long long client_output_limit_bytes;      /* hard; 0: none */
        long long client_idle_timeout_ms;         /* 0: none, as Redis' timeout 0 */
        long long client_output_soft_limit_bytes; /* for client_output_soft_seconds; 0: none */
        int client_output_soft_seconds;
        int max_wait_ms; /* WAIT/WAITAOF block a shared connection at most this long */
    } limits;
    struct {
        int enabled;               /* admin.listen is not null */
        struct config_addr listen; /* the admin HTTP endpoint */
        char *token;               /* Authorization: Bearer <token>; NULL: none asked */
    } admin;
    struct {
        int hold_ms;                        /* requests wait this long for a writable master */
        int max_held_requests;              /* beyond this many waiting, fail at once */
        int region_priority;                /* enum config_region_priority */
        long long failback_after_ms;        /* 0: no automatic failback */
        long long failback_min_interval_ms; /* between two failbacks */
    } failover;
    struct {
        size_t ncommand;
        char **command; /* argv run on every master switch; NULL: none */
        char *webhook;  /* "http://host[:port]/path" a JSON event is POSTed to */
        struct config_addr webhook_addr;
        char *webhook_path; /* with its query, if any */
        int timeout_ms;     /* a hook running longer is killed / abandoned */
    } notify;
    struct {
        double availability; /* the write-availability objective, e.g. 0.9999 */
    } slo;
    struct {
        int enabled;               /* tls.listen is set: a TLS listener for clients */
        struct config_addr listen; /* restart-only, like listen */
        char *cert_file, *key_file, *ca_file;
        int client_auth;     /* enum config_tls_auth */
        int min_version;     /* OpenSSL's TLS1_2_VERSION or TLS1_3_VERSION */
        char *ciphers;       /* TLS 1.2 cipher list; NULL: OpenSSL's default */
        char *ciphersuites;  /* TLS 1.3 suites; NULL: OpenSSL's default */
        void *ctx;           /* the SSL_CTX built from these files at load; owned here */
        long long not_after; /* the certificate's expiry, Unix time */
    } tls;
    struct {
        char *dir;                      /* where snapshots go; NULL: backups off */
        long long interval_ms;          /* 0: only on demand (POST /backup) */
        int retention_count;            /* snapshots kept, newest first */
        long long retention_max_age_ms; /* 0: no age limit (the newest is always kept) */
        int from_master;                /* backup.source "master"; else the best replica */
        int verify;                     /* a restore drill after each scheduled backup */
        char *redis_server;             /* the binary the drill runs */
    } backup;
    struct {
        int min_replicas; /* a write's reply waits for this many replicas' acks; 0: off */
        int min_replicas_in_other_regions; /* ...of which this many outside the master's */
        int timeout_ms;                    /* at most this long (WAIT's timeout) */
        int on_timeout;                    /* enum config_durable_timeout */
    } durability;
};

/* Returns a new config, or NULL with a message in err. */
struct config *config_load_file(const char *path, char *err, size_t errlen);
struct config *config_load_string(const char *json, char *err, size_t errlen);
void config_destroy(struct config **cfg);
/* A loaded config starts with one reference; the last release destroys it. */
struct config *config_acquire(struct config *cfg);
void config_release(struct config **cfg);

/* The effective config (defaults included) as JSON. With redact, secrets are
 * replaced by "(redacted)"; without, it is only for comparing. A new reference. */
struct json_t *config_to_json(const struct config *cfg, int redact);
/* url ("http://user:pass@host:port/path?query#fragment") as GET /config shows it:
 * scheme, host, port and path kept, the userinfo and everything from the first '?'
 * or '#' replaced by "(redacted)". For logs too: out is cut, never overrun. */
void config_redact_url(const char *url, char *out, size_t outlen);
/* A reload: writes into out the keys that differ between old and next but take
 * effect only on restart ("listen, threads"; "" if none), and gives next the old
 * values of those, so that next describes what really runs. */
void config_carry_restart_keys(const struct config *old, struct config *next, char *out,
                               size_t outlen);

/* The region with the lowest priority value (the first such in the file). */
const struct config_region *config_primary_region(const struct config *cfg);

/* Parses "host:port" or "[v6addr]:port". Returns 0, or -1 with a message in err. */
int config_parse_addr(const char *s, struct config_addr *out, char *err, size_t errlen);

#endif
