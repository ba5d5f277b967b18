/*
 * Cache workloads on one server SSL_CTX, through libssl's public API only.
 *
 *   bench_cache insert     N   time-ordered inserts into a cache of N
 *   bench_cache insert_full N  time-ordered inserts into a cache at its size
 *                              limit of N: each evicts the oldest session
 *   bench_cache insert_ooo N   inserts as old as the oldest cached session
 *   bench_cache lookup     N T SSL_has_matching_session_id hits, T threads
 *   bench_cache remove     N   SSL_CTX_remove_session of cached sessions
 *   bench_cache flush      N   SSL_CTX_flush_sessions of expired sessions
 *   bench_cache memory     N   resident bytes per cached session
 *   bench_cache memory_churn N the same after N removals of random cached
 *                              sessions, each followed by an insert of a new
 *                              one (TLS 1.3 resumption with single-use
 *                              tickets does this): still N cached
 *   bench_cache churn_worst  N the slowest single removal + insert of that
 *                              churn (a shard table's rebuild runs inside one)
 *   bench_cache api_floor  N   not a cache workload, and run without the
 *                              library: the public-API calls that any cache
 *                              living outside libssl must make per insert
 *                              (SSL_SESSION_up_ref; the ID, time, timeout and
 *                              protocol version getters) and per removal (ID
 *                              and version getters, SSL_CTX_remove_session on
 *                              an empty ctx to mark the session not
 *                              resumable, SSL_SESSION_free), on the sessions
 *                              and in the order of the insert and remove
 *                              workloads. Prints insert_floor_ns=…,
 *                              remove_floor_ns=… and remove_floor_store_ns=…
 *                              (the removal without the marking call: what
 *                              sesscache calls once it marks with a store)
 *
 * Prints one line: ns_per_op=<x> (per operation; for lookup with T threads,
 * wall time divided by all operations of all threads) or
 * rss_bytes_per_session=<x>.  Sessions are made without handshakes and
 * before the timed region; the program keeps its own reference to every
 * session, so no SSL_SESSION is freed inside a timed region (that cost is
 * the same with and without sesscache).  The cache size is 0 (unlimited):
 * nothing is evicted, except in insert_full, which sets a size.
 *
 * A session a workload adds again after removing it (or after it was
 * evicted) is a fresh object with the same ID, made outside the timed
 * region: a removal marks a session not resumable, and sesscache handles an
 * add of a marked session on a slower path (it parks it in libssl's own
 * table too, README), which a server adding its new sessions never takes.
 * Run before 2026-11-26 (third session) with the same objects added again;
 * for libssl, and for sesscache until then, that made no difference.
 */
#include "bench.h"

#include <limits.h>
#include <pthread.h>

#define BASE_TIME 1000000000L /* far from "now": nothing expires by itself */
#define TIMEOUT 100000000L

static SSL_CTX *ctx;
static SSL_SESSION **sess; /* all sessions, cached or not */
static int version;        /* what SSL_version() reports for our SSL */

/* Session i expires at BASE_TIME + i + TIMEOUT (time order = index order). */
static void make_sessions(long from, long to)
{
    for (long i = from; i < to; i++)
        sess[i] = bench_session((uint64_t)i, version, BASE_TIME + i, TIMEOUT);
}

/* Fresh objects for sessions from..to-1, with the IDs and times
 * make_sessions gave them (the old ones are no longer cached). */
static void renew_range(long from, long to)
{
    for (long i = from; i < to; i++)
        SSL_SESSION_free(sess[i]);
    make_sessions(from, to);
}

static void add_range(long from, long to)
{
    for (long i = from; i < to; i++)
        BENCH_CHECK(SSL_CTX_add_session(ctx, sess[i]) == 1);
}

static void remove_range(long from, long to)
{
    for (long i = from; i < to; i++)
        BENCH_CHECK(SSL_CTX_remove_session(ctx, sess[i]) == 1);
}

/* A permutation of 0..n-1. */
static long *shuffled(long n, uint64_t seed)
{
    long *p = malloc(sizeof(long) * (size_t)n);

    BENCH_CHECK(p != NULL);
    for (long i = 0; i < n; i++)
        p[i] = i;
    for (long i = n - 1; i > 0; i--) {
        long j = (long)(bench_mix(seed + (uint64_t)i) % (uint64_t)(i + 1));
        long t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

/* Rounds of m operations, about `target` operations in all. */
/* Sessions per round of a workload on a cache of n: a tenth (at least
 * 100), at most `most`. */
static long round_size(long n, long most)
{
    long m = n / 10 < 100 ? 100 : n / 10;
    return m > most ? most : m;
}

static long rounds_for(long m, long target)
{
    long r = target / m;
    return r < 1 ? 1 : r;
}

/* ---- lookup threads ---------------------------------------------------- */

struct lookup_arg {
    SSL *ssl;
    long n, ops;
    uint64_t seed;
    pthread_barrier_t *start;
    long found;
};

static void *lookup_thread(void *p)
{
    struct lookup_arg *a = p;
    unsigned char (*ids)[32] = malloc(32 * 4096);
    long found = 0;

    BENCH_CHECK(ids != NULL);
    for (int k = 0; k < 4096; k++)
        bench_id(bench_mix(a->seed + (uint64_t)k) % (uint64_t)a->n, ids[k]);
    pthread_barrier_wait(a->start);
    for (long i = 0; i < a->ops; i++)
        found += SSL_has_matching_session_id(a->ssl, ids[i & 4095], 32);
    a->found = found;
    free(ids);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *w = argc > 1 ? argv[1] : "";
    long n = bench_arg_long(argc, argv, 2, 20000);
    long threads = bench_arg_long(argc, argv, 3, 1);
    double t0, total = 0;
    long ops = 0;
    SSL *ssl;

    if (n < 100 || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: %s insert|insert_full|insert_ooo|lookup|remove|flush|memory|memory_churn|churn_worst|api_floor N [threads]\n", argv[0]);
        return 2;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    BENCH_CHECK(ctx != NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 0);
    ssl = SSL_new(ctx);
    BENCH_CHECK(ssl != NULL);
    version = SSL_version(ssl);

    /* room for n cached sessions plus the ones a workload adds */
    long extra = n < 20000 ? n : 20000;
    sess = calloc((size_t)(n + extra), sizeof(*sess));
    BENCH_CHECK(sess != NULL);

    if (strcmp(w, "memory") == 0) {
        long rss0 = bench_rss_bytes();
        make_sessions(0, n);
        long rss1 = bench_rss_bytes();
        add_range(0, n);
        long rss2 = bench_rss_bytes();
        BENCH_CHECK(SSL_CTX_sess_number(ctx) == n);
        printf("session_bytes=%.1f\n", (double)(rss1 - rss0) / (double)n);
        printf("rss_bytes_per_session=%.1f\n", (double)(rss2 - rss1) / (double)n);
        return 0;
    }

    if (strcmp(w, "memory_churn") == 0 || strcmp(w, "churn_worst") == 0) {
        /* all 2N sessions exist before the first measurement; what is
         * compared is the cache's own memory after the churn, and the
         * slowest remove + add pair of it */
        free(sess);
        sess = calloc((size_t)(2 * n), sizeof(*sess));
        BENCH_CHECK(sess != NULL);
        long *order = shuffled(n, 17);
        double worst = 0;
        long rss0 = bench_rss_bytes();
        make_sessions(0, 2 * n);
        long rss1 = bench_rss_bytes();
        add_range(0, n);
        for (long i = 0; i < n; i++) {
            t0 = bench_now_ns();
            BENCH_CHECK(SSL_CTX_remove_session(ctx, sess[order[i]]) == 1);
            BENCH_CHECK(SSL_CTX_add_session(ctx, sess[n + i]) == 1);
            double took = bench_now_ns() - t0;
            if (took > worst)
                worst = took;
        }
        long rss2 = bench_rss_bytes();
        BENCH_CHECK(SSL_CTX_sess_number(ctx) == n);
        if (strcmp(w, "churn_worst") == 0) {
            printf("worst_us=%.1f\n", worst / 1000.0);
        } else {
            printf("session_bytes=%.1f\n", (double)(rss1 - rss0) / (double)(2 * n));
            printf("rss_bytes_per_session=%.1f\n", (double)(rss2 - rss1) / (double)n);
        }
        free(order);
        return 0;
    }

    make_sessions(0, n);
    add_range(0, n);

    if (strcmp(w, "insert") == 0) {
        /* rounds: m sessions newer than all cached are added (timed), then
         * removed (untimed), so the cache holds n to n + m sessions. */
        long m = round_size(n, extra);
        make_sessions(n, n + m);
        for (long r = rounds_for(m, 200000); r > 0; r--) {
            t0 = bench_now_ns();
            add_range(n, n + m);
            total += bench_now_ns() - t0;
            ops += m;
            remove_range(n, n + m);
            renew_range(n, n + m);
        }
    } else if (strcmp(w, "insert_full") == 0) {
        /* the steady state of a server at its cache size (libssl's
         * default: 20k): every new session evicts the one that expires
         * first. n + m sessions in a ring; n consecutive ones are cached,
         * in time order. Each round gives the m uncached ones (initially
         * never added, later the ones evicted the round before) times
         * newer than every cached one (untimed), then adds them (timed),
         * each evicting the oldest cached. */
        long m = round_size(n, extra);
        long ring = n + m;
        long newest = ring - 1; /* sess[i] was made with time BASE_TIME + i */
        long first = 0;         /* sess[first] is the oldest cached */
        make_sessions(n, ring);
        SSL_CTX_sess_set_cache_size(ctx, n + 1); /* holds n (libssl: size - 1) */
        for (long r = rounds_for(m, 200000); r > 0; r--) {
            for (long i = first + n; i < first + n + m; i++) {
                /* evicted the round before: a fresh object, newer */
                SSL_SESSION_free(sess[i % ring]);
                sess[i % ring] = bench_session((uint64_t)(i % ring), version,
                                               BASE_TIME + ++newest, TIMEOUT);
            }
            t0 = bench_now_ns();
            for (long i = first + n; i < first + n + m; i++)
                BENCH_CHECK(SSL_CTX_add_session(ctx, sess[i % ring]) == 1);
            total += bench_now_ns() - t0;
            ops += m;
            BENCH_CHECK(SSL_CTX_sess_number(ctx) == n);
            first = (first + m) % ring;
        }
        BENCH_CHECK(SSL_CTX_sess_cache_full(ctx) == ops);
    } else if (strcmp(w, "insert_ooo") == 0) {
        /* sessions exactly as old as the oldest cached one: libssl 3.0
         * walks its whole list for each (an external-cache hit or a
         * restored session shares the oldest second of a 1-second clock) */
        long m = 200;
        long rounds = n <= 1000 ? 50 : n <= 20000 ? 10 : n <= 100000 ? 3 : 1;
        for (long i = n; i < n + m; i++)
            sess[i] = bench_session((uint64_t)i, version, BASE_TIME, TIMEOUT);
        for (long r = rounds; r > 0; r--) {
            t0 = bench_now_ns();
            add_range(n, n + m);
            total += bench_now_ns() - t0;
            ops += m;
            remove_range(n, n + m);
            for (long i = n; i < n + m; i++) {
                SSL_SESSION_free(sess[i]);
                sess[i] = bench_session((uint64_t)i, version, BASE_TIME, TIMEOUT);
            }
        }
    } else if (strcmp(w, "api_floor") == 0) {
        long m = round_size(n, extra);
        long *order = shuffled(m, 42);
        SSL_CTX *empty = SSL_CTX_new(TLS_server_method());
        BENCH_CHECK(empty != NULL);
        double removal = 0, removal_store = 0;
        long marked_ops = 0, store_ops = 0;
        unsigned long sink = 0;
        make_sessions(n, n + m);
        for (long r = rounds_for(m, 200000); r > 0; r--) {
            /* every other round without the marking call: the floor of a
             * cache that marks with a store of its own (sesscache, once
             * libssl has shown where its flag is) */
            int mark = r % 2 == 0;
            t0 = bench_now_ns();
            for (long i = n; i < n + m; i++) {
                unsigned int len;
                BENCH_CHECK(SSL_SESSION_up_ref(sess[i]) == 1);
                sink += SSL_SESSION_get_id(sess[i], &len)[0] + len;
                sink += (unsigned long)(SSL_SESSION_get_time(sess[i]) + SSL_SESSION_get_timeout(sess[i]));
                sink += (unsigned long)SSL_SESSION_get_protocol_version(sess[i]);
            }
            total += bench_now_ns() - t0;
            t0 = bench_now_ns();
            for (long i = 0; i < m; i++) {
                SSL_SESSION *s = sess[n + order[i]];
                unsigned int len;
                sink += SSL_SESSION_get_id(s, &len)[0] + len;
                sink += (unsigned long)SSL_SESSION_get_protocol_version(s);
                if (mark)
                    sink += (unsigned long)SSL_CTX_remove_session(empty, s);
                SSL_SESSION_free(s);
            }
            if (mark) {
                removal += bench_now_ns() - t0;
                marked_ops += m;
            } else {
                removal_store += bench_now_ns() - t0;
                store_ops += m;
            }
            ops += m;
        }
        printf("sink=%lu\n", sink & 1);
        printf("insert_floor_ns=%.2f\n", total / (double)ops);
        printf("remove_floor_ns=%.2f\n", removal / (double)marked_ops);
        printf("remove_floor_store_ns=%.2f\n", removal_store / (double)store_ops);
        SSL_CTX_free(empty);
        free(order);
        return 0;
    } else if (strcmp(w, "remove") == 0) {
        /* rounds: m new sessions added (untimed), removed in random order */
        long m = round_size(n, extra);
        long *order = shuffled(m, 42);
        make_sessions(n, n + m);
        for (long r = rounds_for(m, 200000); r > 0; r--) {
            add_range(n, n + m);
            t0 = bench_now_ns();
            for (long i = 0; i < m; i++)
                BENCH_CHECK(SSL_CTX_remove_session(ctx, sess[n + order[i]]) == 1);
            total += bench_now_ns() - t0;
            ops += m;
            renew_range(n, n + m);
        }
        free(order);
    } else if (strcmp(w, "flush") == 0) {
        /* rounds: the m oldest sessions expire and are flushed (timed),
         * then put back as the newest (untimed): the size stays n. */
        long m = round_size(n, LONG_MAX);
        long oldest = 0; /* index of the oldest cached session */
        for (long r = rounds_for(m, 200000); r > 0; r--) {
            /* expired: BASE_TIME + i + TIMEOUT < t for i < oldest + m */
            long t = BASE_TIME + TIMEOUT + oldest + m;
            t0 = bench_now_ns();
            SSL_CTX_flush_sessions(ctx, t);
            total += bench_now_ns() - t0;
            ops += m;
            BENCH_CHECK(SSL_CTX_sess_number(ctx) == n - m);
            for (long i = oldest; i < oldest + m; i++) {
                long id = i + n; /* a fresh ID, newer than everything */
                SSL_SESSION_free(sess[i % n]);
                sess[i % n] = bench_session((uint64_t)id, version, BASE_TIME + id, TIMEOUT);
                BENCH_CHECK(SSL_CTX_add_session(ctx, sess[i % n]) == 1);
            }
            oldest += m;
        }
    } else if (strcmp(w, "lookup") == 0) {
        /* long enough (~0.3 s and more) that thread start-up and wake-up
         * skew do not decide the 2-thread figure */
        long per_thread = n >= 1000000 ? 3000000 : 10000000;
        pthread_t tid[64];
        struct lookup_arg arg[64];
        SSL *conns[64];
        pthread_barrier_t start;
        BENCH_CHECK(pthread_barrier_init(&start, NULL, (unsigned)threads + 1) == 0);
        for (long k = 0; k < threads; k++) {
            conns[k] = SSL_new(ctx);
            BENCH_CHECK(conns[k] != NULL);
            arg[k] = (struct lookup_arg){ conns[k], n, per_thread,
                                          (uint64_t)k * 1000003u, &start, 0 };
            BENCH_CHECK(pthread_create(&tid[k], NULL, lookup_thread, &arg[k]) == 0);
        }
        /* the threads prepare their IDs, then all start together */
        pthread_barrier_wait(&start);
        t0 = bench_now_ns();
        for (long k = 0; k < threads; k++)
            BENCH_CHECK(pthread_join(tid[k], NULL) == 0);
        total = bench_now_ns() - t0;
        for (long k = 0; k < threads; k++) {
            BENCH_CHECK(arg[k].found == per_thread);
            ops += per_thread;
            SSL_free(conns[k]);
        }
        pthread_barrier_destroy(&start);
    } else {
        fprintf(stderr, "unknown workload '%s'\n", w);
        return 2;
    }

    printf("ns_per_op=%.2f\n", total / (double)ops);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return 0;
}
