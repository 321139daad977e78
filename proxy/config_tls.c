/* config_tls: see config_tls.h. */
#include "config_tls.h"
#include "config_json.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* OpenSSL's newest error, for a message: never the whole queue. */
static const char *ssl_why(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    if (!e) return "unknown error";
    ERR_error_string_n(e, buf, n);
    ERR_clear_error();
    return buf;
}

static long long expiry(SSL_CTX *ctx)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    struct tm tm;
    if (!cert || !ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm)) return 0;
    return (long long)timegm(&tm);
}

/* The context every client TLS connection of this config starts from. */
static int build_ctx(struct config *cfg, char *err, size_t errlen)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return config_json_fail(err, errlen, "tls: cannot create a TLS context");
    cfg->tls.ctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, cfg->tls.min_version);
    /* No renegotiation (the data path never reads to write); an EOF without
     * close_notify is an ordinary close, as for plaintext clients. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char sid[] = "respgate";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1); /* resumption with client auth */
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls.cert_file) != 1)
        return config_json_fail(err, errlen, "tls.cert_file: %s: %s", cfg->tls.cert_file,
                                ssl_why(why, sizeof(why)));
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls.key_file, SSL_FILETYPE_PEM) != 1)
        return config_json_fail(err, errlen, "tls.key_file: %s: %s", cfg->tls.key_file,
                                ssl_why(why, sizeof(why)));
    if (SSL_CTX_check_private_key(ctx) != 1)
        return config_json_fail(err, errlen, "tls.key_file: does not match tls.cert_file");
    if (cfg->tls.ciphers && SSL_CTX_set_cipher_list(ctx, cfg->tls.ciphers) != 1)
        return config_json_fail(err, errlen, "tls.ciphers: %s", ssl_why(why, sizeof(why)));
    if (cfg->tls.ciphersuites && SSL_CTX_set_ciphersuites(ctx, cfg->tls.ciphersuites) != 1)
        return config_json_fail(err, errlen, "tls.ciphersuites: %s", ssl_why(why, sizeof(why)));
    if (cfg->tls.ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->tls.ca_file, NULL) != 1)
            return config_json_fail(err, errlen, "tls.ca_file: %s: %s", cfg->tls.ca_file,
                                    ssl_why(why, sizeof(why)));
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls.ca_file);
        if (names) SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (cfg->tls.client_auth != CONFIG_TLS_AUTH_NONE)
        SSL_CTX_set_verify(ctx,
                           SSL_VERIFY_PEER | (cfg->tls.client_auth == CONFIG_TLS_AUTH_REQUIRED
                                                  ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                                  : 0),
                           NULL);
    cfg->tls.not_after = expiry(ctx);
    ERR_clear_error();
    return 0;
}

int config_parse_tls(json_t *root, struct config *cfg, char *err, size_t errlen)
{
    static const char *const keys[] = {"listen",  "cert_file",    "key_file",
                                       "ca_file", "client_auth",  "protocols",
                                       "ciphers", "ciphersuites", NULL};
    static const char *const auth[] = {"none", "optional", "required", NULL};
    json_t *obj;
    if (config_json_object(root, "", "tls", &obj, err, errlen)) return -1;
    if (!obj) return 0;
    if (config_json_keys(obj, "tls", keys, err, errlen) ||
        config_json_string(obj, "tls", "cert_file", &cfg->tls.cert_file, err, errlen) ||
        config_json_string(obj, "tls", "key_file", &cfg->tls.key_file, err, errlen) ||
        config_json_string(obj, "tls", "ca_file", &cfg->tls.ca_file, err, errlen) ||
        config_json_string(obj, "tls", "ciphers", &cfg->tls.ciphers, err, errlen) ||
        config_json_string(obj, "tls", "ciphersuites", &cfg->tls.ciphersuites, err, errlen) ||
        config_json_choice(obj, "tls", "client_auth", auth, &cfg->tls.client_auth, err, errlen))
        return -1;
    json_t *protocols = json_object_get(obj, "protocols");
    cfg->tls.min_version = TLS1_2_VERSION;
    if (protocols && !json_is_null(protocols)) {
        int v12 = 0, v13 = 0, bad = !json_is_array(protocols) || !json_array_size(protocols);
        for (size_t i = 0; !bad && i < json_array_size(protocols); i++) {
            const char *p = json_string_value(json_array_get(protocols, i));
            if (p && strcmp(p, "TLSv1.2") == 0)
                v12 = 1;
            else if (p && strcmp(p, "TLSv1.3") == 0)
                v13 = 1;
            else
                bad = 1;
        }
        if (bad)
            return config_json_fail(err, errlen,
                                    "tls.protocols: expected a non-empty array of "
                                    "\"TLSv1.2\" and \"TLSv1.3\"");
        cfg->tls.min_version = v12 ? TLS1_2_VERSION : TLS1_3_VERSION;
        (void)v13;
    }
    if (cfg->tls.client_auth != CONFIG_TLS_AUTH_NONE && !cfg->tls.ca_file)
        return config_json_fail(err, errlen, "tls.ca_file: required with tls.client_auth");
    json_t *l = json_object_get(obj, "listen");
    if (!l || json_is_null(l)) return 0; /* the keys may wait for a listener */
    char why[128];
    if (!json_is_string(l) ||
        config_parse_addr(json_string_value(l), &cfg->tls.listen, why, sizeof(why)))
        return config_json_fail(err, errlen, "tls.listen: %s",
                                json_is_string(l) ? why : "expected \"host:port\" or null");
    if (!cfg->tls.cert_file || !cfg->tls.key_file)
        return config_json_fail(err, errlen,
                                "tls.cert_file and tls.key_file: required with "
                                "tls.listen");
    cfg->tls.enabled = 1;
    return build_ctx(cfg, err, errlen);
}

/* The context every connection to a Redis or Sentinel of this config starts from. */
static int build_out_ctx(struct config_tls_out *t, const char *path, char *err, size_t errlen)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return config_json_fail(err, errlen, "%s: cannot create a TLS context", path);
    t->ctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* A Redis that dies closes without close_notify: an ordinary lost connection. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (t->ca_file ? SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != 1
                   : SSL_CTX_set_default_verify_paths(ctx) != 1)
        return config_json_fail(err, errlen, "%s.ca_file: %s: %s", path,
                                t->ca_file ? t->ca_file : "(the system's CAs)",
                                ssl_why(why, sizeof(why)));
    if (t->cert_file && SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1)
        return config_json_fail(err, errlen, "%s.cert_file: %s: %s", path, t->cert_file,
                                ssl_why(why, sizeof(why)));
    if (t->key_file && SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) != 1)
        return config_json_fail(err, errlen, "%s.key_file: %s: %s", path, t->key_file,
                                ssl_why(why, sizeof(why)));
    if (t->cert_file && SSL_CTX_check_private_key(ctx) != 1)
        return config_json_fail(err, errlen, "%s.key_file: does not match %s.cert_file", path,
                                path);
    /* The chain and the name are checked per connection (sock_tls_connect), where
     * the name is known; a failure ends the handshake with the reason logged. */
    SSL_CTX_set_verify(ctx, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    ERR_clear_error();
    return 0;
}

int config_parse_tls_out(json_t *parent, const char *ppath, struct config_tls_out *t, char *err,
                         size_t errlen)
{
    static const char *const keys[] = {"enabled",     "ca_file", "cert_file", "key_file",
                                       "server_name", "verify",  NULL};
    char path[96];
    json_t *obj;
    snprintf(path, sizeof(path), "%s.tls", ppath);
    t->verify = 1;
    if (config_json_object(parent, ppath, "tls", &obj, err, errlen)) return -1;
    if (!obj) return 0;
    if (config_json_keys(obj, path, keys, err, errlen) ||
        config_json_string(obj, path, "ca_file", &t->ca_file, err, errlen) ||
        config_json_string(obj, path, "cert_file", &t->cert_file, err, errlen) ||
        config_json_string(obj, path, "key_file", &t->key_file, err, errlen) ||
        config_json_string(obj, path, "server_name", &t->server_name, err, errlen))
        return -1;
    json_t *en = json_object_get(obj, "enabled"), *ver = json_object_get(obj, "verify");
    if (en && !json_is_boolean(en))
        return config_json_fail(err, errlen, "%s.enabled: expected true or false", path);
    if (ver && !json_is_boolean(ver))
        return config_json_fail(err, errlen, "%s.verify: expected true or false", path);
    t->enabled = en ? json_is_true(en) : 1; /* a "tls" object means TLS unless it says not */
    t->verify = ver ? json_is_true(ver) : 1;
    if (!t->cert_file != !t->key_file)
        return config_json_fail(err, errlen, "%s.cert_file and %s.key_file: give both or neither",
                                path, path);
    if (t->server_name && (!*t->server_name || strlen(t->server_name) > 253))
        return config_json_fail(err, errlen, "%s.server_name: expected a host name", path);
    return t->enabled ? build_out_ctx(t, path, err, errlen) : 0;
}

void config_tls_out_free(struct config_tls_out *t)
{
    SSL_CTX_free(t->ctx); /* connections still open hold their own reference */
    free(t->ca_file);
    free(t->cert_file);
    free(t->key_file);
    free(t->server_name);
    memset(t, 0, sizeof(*t));
}

void config_tls_free(struct config *cfg)
{
    SSL_CTX_free(cfg->tls.ctx); /* connections still open hold their own reference */
    cfg->tls.ctx = NULL;
    free(cfg->tls.cert_file);
    free(cfg->tls.key_file);
    free(cfg->tls.ca_file);
    free(cfg->tls.ciphers);
    free(cfg->tls.ciphersuites);
    config_tls_out_free(&cfg->upstream.tls); /* the regions' go with each region */
}
