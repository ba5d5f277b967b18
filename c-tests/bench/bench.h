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

#endif
