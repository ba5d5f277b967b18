/*
 * Shared helpers for the sesscache benchmarks (c-tests/bench/).
 *
 * Only libssl's public API is used, so every program runs unchanged against
 * plain libssl and with libsesscache.so preloaded; run-bench.sh alternates
 * the two.  Each program prints exactly one result line "metric=value".
 */
#ifndef SESSCACHE_BENCH_H
#define SESSCACHE_BENCH_H

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline void bench_die(const char *what)
{
    fprintf(stderr, "bench: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

#define BENCH_CHECK(cond) \
    do { if (!(cond)) bench_die(#cond); } while (0)

static inline double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* splitmix64: spreads a counter over all bits (libssl hashes the first
 * four ID bytes, so IDs must differ there, as random IDs do). */
static inline uint64_t bench_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* The 32-byte session ID number i. */
static inline void bench_id(uint64_t i, unsigned char id[32])
{
    for (int k = 0; k < 4; k++) {
        uint64_t v = bench_mix(i * 4 + (uint64_t)k);
        memcpy(id + 8 * k, &v, 8);
    }
}

/* A session without a handshake: distinct ID, given version, time and
 * timeout (SSL_CTX_add_session needs nothing else). */
static inline SSL_SESSION *bench_session(uint64_t i, int version, long t, long timeout)
{
    unsigned char id[32];
    SSL_SESSION *s = SSL_SESSION_new();

    BENCH_CHECK(s != NULL);
    bench_id(i, id);
    BENCH_CHECK(SSL_SESSION_set1_id(s, id, sizeof(id)));
    BENCH_CHECK(SSL_SESSION_set_protocol_version(s, version));
    BENCH_CHECK(SSL_SESSION_set_time(s, t) != 0);
    BENCH_CHECK(SSL_SESSION_set_timeout(s, timeout));
    return s;
}

/* Resident set size in bytes, from /proc/self/statm. */
static inline long bench_rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    BENCH_CHECK(f != NULL);
    BENCH_CHECK(fscanf(f, "%ld %ld", &pages, &resident) == 2);
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static inline long bench_arg_long(int argc, char **argv, int i, long dflt)
{
    return argc > i ? strtol(argv[i], NULL, 10) : dflt;
}

/* The server context both handshake benchmarks start from: CERT and KEY,
 * stateful resumption only (TLS 1.2 session IDs, TLS 1.3 tickets that are
 * session IDs), a 300 s timeout. */
static inline SSL_CTX *bench_server_ctx(X509 *cert, EVP_PKEY *key)
{
    SSL_CTX *server = SSL_CTX_new(TLS_server_method());

    BENCH_CHECK(server != NULL);
    BENCH_CHECK(SSL_CTX_use_certificate(server, cert) && SSL_CTX_use_PrivateKey(server, key));
    SSL_CTX_set_options(server, SSL_OP_NO_TICKET);
    SSL_CTX_set_timeout(server, 300);
    BENCH_CHECK(SSL_CTX_set_session_id_context(server, (const unsigned char *)"bench", 5));
    return server;
}

/* One handshake step of S: 1 when done, 0 when it waits for the peer. */
static inline int bench_step(SSL *s, int rc)
{
    if (rc == 1)
        return 1;
    int e = SSL_get_error(s, rc);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        bench_die("handshake step");
    return 0;
}

/* One connection between CLIENT and SERVER over an in-memory BIO pair,
 * offering OFFER (if given); returns the server's "reused" flag.  *out (if
 * given) receives the client's session after a one-byte exchange each way. */
static inline int bench_handshake(SSL_CTX *server, SSL_CTX *client, SSL_SESSION *offer, SSL_SESSION **out)
{
    SSL *c = SSL_new(client), *s = SSL_new(server);
    BIO *bc, *bs;
    char buf[8];
    int cd = 0, sd = 0, reused;

    BENCH_CHECK(c != NULL && s != NULL && BIO_new_bio_pair(&bc, 0, &bs, 0));
    SSL_set_bio(c, bc, bc);
    SSL_set_bio(s, bs, bs);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    if (offer != NULL)
        BENCH_CHECK(SSL_set_session(c, offer));
    for (int i = 0; !(cd && sd); i++) {
        BENCH_CHECK(i < 100);
        if (!cd)
            cd = bench_step(c, SSL_do_handshake(c));
        if (!sd)
            sd = bench_step(s, SSL_do_handshake(s));
    }
    /* one byte each way: the client reads the server's tickets too */
    BENCH_CHECK(SSL_write(c, "q", 1) == 1);
    BENCH_CHECK(SSL_read(s, buf, sizeof(buf)) == 1);
    BENCH_CHECK(SSL_write(s, "a", 1) == 1);
    BENCH_CHECK(SSL_read(c, buf, sizeof(buf)) == 1);
    reused = SSL_session_reused(s);
    if (out != NULL)
        *out = SSL_get1_session(c);
    /* a clean close: libssl keeps the session cached */
    SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c);
    SSL_free(s);
    return reused;
}

#endif
