/*
 * Where release lines differ in a session's time and in the cache's order.
 * 3.0 keeps time in seconds; 3.3 and later keep OSSL_TIME nanoseconds (a
 * time_t times 10^9, unsigned 64-bit), so negative and huge times and
 * timeouts wrap, SSL_CTX_set_timeout(-5) gives sessions that never expire
 * and a flush at a negative time removes every session that can expire.
 * The _ex forms (3.3: SSL_SESSION_get/set_time_ex; 3.4:
 * SSL_CTX_flush_sessions_ex) are used where the headers have them. Then:
 * adding the session already cached (3.0 re-links it, 3.5.7 and later
 * leave it in place), a get callback that returns a session with
 * another ID than the one offered, and the clock of
 * SSL_SESS_CACHE_UPDATE_TIME.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define V12 TLS1_2_VERSION

static long get_time(SSL_SESSION *s)
{
#if OPENSSL_VERSION_NUMBER >= 0x30300000L
    return (long)SSL_SESSION_get_time_ex(s);
#else
    return SSL_SESSION_get_time(s);
#endif
}

static long set_time(SSL_SESSION *s, long t)
{
#if OPENSSL_VERSION_NUMBER >= 0x30300000L
    return (long)SSL_SESSION_set_time_ex(s, (time_t)t);
#else
    return SSL_SESSION_set_time(s, t);
#endif
}

static void flush_at(SSL_CTX *ctx, long t, const char *what)
{
    printf("flush(%s)\n", what);
#if OPENSSL_VERSION_NUMBER >= 0x30400000L
    SSL_CTX_flush_sessions_ex(ctx, (time_t)t);
#else
    SSL_CTX_flush_sessions(ctx, t);
#endif
    printf("  number=%ld\n", SSL_CTX_sess_number(ctx));
}

static void add(SSL_CTX *ctx, SSL_SESSION *s)
{
    printf("add %s -> %d number=%ld\n", slabel(s), SSL_CTX_add_session(ctx, s),
           SSL_CTX_sess_number(ctx));
}

static void free_ctx(SSL_CTX *ctx)
{
    printf("SSL_CTX_free %s\n", ctx_label(ctx));
    SSL_CTX_free(ctx);
}

/* Times and timeouts set and read back, on a session outside any cache. */
static void test_values(void)
{
    static const long times[] = { 0, 1, -1, -5, LONG_MAX, 20000000000L, 1L << 55 };
    SSL_SESSION *s = make_session(0x10, 32, V12, 0, 300);
    size_t i;

    section("times and timeouts read back");
    CHECK_SETUP(s != NULL);
    for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        long ret = set_time(s, times[i]);

        printf("set_time(%ld) = %ld, get_time = %ld\n", times[i], ret,
               get_time(s));
    }
    for (i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        long ret = SSL_SESSION_set_timeout(s, times[i]);

        printf("set_timeout(%ld) = %ld, get_timeout = %ld\n", times[i], ret,
               SSL_SESSION_get_timeout(s));
    }
    SSL_SESSION_free(s);
}

/* Sessions of ordinary, wrapped and huge expiries flushed at a negative
 * time, then at times around their expiry, oldest first. */
static void test_flush_times(void)
{
    SSL_CTX *ctx = new_cache_ctx();
    SSL_SESSION *s[5];
    int i;

    section("flush at negative and wrapped times");
    s[0] = make_session(0x20, 32, V12, 0, 100);
    s[1] = make_session(0x21, 32, V12, 50, 100);
    s[2] = make_session(0x22, 32, V12, 0, 300);
    s[3] = make_session(0x23, 32, V12, 0, 300);
    s[4] = make_session(0x24, 32, V12, 0, 300);
    for (i = 0; i < 5; i++)
        CHECK_SETUP(s[i] != NULL);
    /* seconds: expires at once; nanoseconds: never */
    SSL_SESSION_set_timeout(s[2], LONG_MAX);
    /* wraps with nanoseconds to a small time, stays huge with seconds */
    set_time(s[3], 20000000000L);
    /* a negative time: nothing before it with seconds, wraps otherwise */
    set_time(s[4], -1);
    for (i = 0; i < 5; i++)
        add(ctx, s[i]);
    flush_at(ctx, -1, "-1");
    flush_at(ctx, LONG_MIN, "LONG_MIN");
    flush_at(ctx, (long)T0 + 120, "T0+120");
    flush_at(ctx, (long)T0 + 200, "T0+200");
    flush_at(ctx, 20000000000L, "2e10");
    flush_at(ctx, LONG_MAX, "LONG_MAX");
    flush_at(ctx, 0, "0");
    for (i = 0; i < 5; i++)
        SSL_SESSION_free(s[i]);
    free_ctx(ctx);
}

/* SSL_CTX_set_timeout(-5): what a new session of a handshake gets, and
 * whether a flush far in the future removes it. */
static void test_ctx_timeout(void)
{
    SSL_CTX *sctx = new_server_ctx(V12, V12);
    SSL_CTX *cctx = new_client_ctx(V12, V12);
    struct hs_result r;
    long old;

    section("SSL_CTX_set_timeout(-5)");
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    cbc_reset();
    set_cbs(sctx, 'A', 1, 1, 0);
    old = SSL_CTX_set_timeout(sctx, -5);
    printf("set_timeout(-5) = %ld, get_timeout = %ld\n", old,
           SSL_CTX_get_timeout(sctx));
    handshake(sctx, cctx, NULL, &r);
    printf("client session timeout %ld\n", SSL_SESSION_get_timeout(r.client_sess));
    printf("cached: %ld\n", SSL_CTX_sess_number(sctx));
    flush_at(sctx, (long)T0 + 1000000, "T0+1000000");
    flush_at(sctx, 0, "0");
    SSL_SESSION_free(r.client_sess);
    free_ctx(sctx);
    SSL_CTX_free(cctx);
}

/* Two sessions of the same expiry, the older added again: re-linked in
 * front of its tie (3.0) or left where it was (3.5.7 and later). Then a
 * time moved on a cached session, which re-links it on every line. */
static void test_readd_order(void)
{
    SSL_CTX *ctx = new_cache_ctx();
    SSL_SESSION *a = make_session(0x30, 32, V12, 0, 500);
    SSL_SESSION *b = make_session(0x31, 32, V12, 0, 500);
    SSL_SESSION *c = make_session(0x32, 32, V12, 0, 400);

    section("adding the session already cached");
    CHECK_SETUP(a != NULL && b != NULL && c != NULL);
    add(ctx, a);
    add(ctx, b);
    add(ctx, c);
    printf("re-add %s\n", slabel(a));
    add(ctx, a);
    printf("re-add %s\n", slabel(c));
    add(ctx, c);
    printf("time of %s moved later\n", slabel(c));
    set_time(c, (long)T0 + 100);
    flush_at(ctx, 0, "0");
    SSL_SESSION_free(a);
    SSL_SESSION_free(b);
    SSL_SESSION_free(c);
    free_ctx(ctx);
}

/* The get callback answers the offered ID with another session of the
 * same version: resumed (3.0, 3.5) or a miss (3.6, 4.0). */
static void test_other_id(void)
{
    SSL_CTX *sctx = new_server_ctx(V12, V12);
    SSL_CTX *cctx = new_client_ctx(V12, V12);
    struct hs_result r1, r2, r3;
    struct hs_opts o = { 0 };
    SSL_SESSION *other;

    section("get callback returns a session with another ID");
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_SERVER
                                   | SSL_SESS_CACHE_NO_INTERNAL);
    cbc_reset();
    cbc.new_store = 1;
    set_cbs(sctx, 'A', 1, 1, 1);
    handshake(sctx, cctx, NULL, &r1);
    handshake(sctx, cctx, NULL, &r2);
    other = store_find_server_copy(r2.client_sess);
    CHECK_SETUP(other != NULL);
    cbc.get_mode = GET_FIXED;
    cbc.fixed = other;
    cbc.fixed_copy = 1;
    printf("get_cb will return %s for the ID of %s\n", slabel(other),
           slabel(r1.client_sess));
    o.offer = r1.client_sess;
    handshake(sctx, cctx, &o, &r3);
    print_stats(sctx);
    SSL_SESSION_free(r1.client_sess);
    SSL_SESSION_free(r2.client_sess);
    SSL_SESSION_free(r3.client_sess);
    free_ctx(sctx);
    store_clear();
    SSL_CTX_free(cctx);
}

/* A session made now, keeping the fraction of a second of its creation
 * time where libssl keeps one (3.3 and later). */
static SSL_SESSION *fresh_session(unsigned char idbyte, long timeout)
{
    unsigned char id[32];
    SSL_SESSION *s = SSL_SESSION_new();

    memset(id, 0xA5, sizeof(id));
    id[0] = idbyte;
    if (s == NULL || !SSL_SESSION_set1_id(s, id, sizeof(id))
        || !SSL_SESSION_set_protocol_version(s, V12)
        || !SSL_SESSION_set_timeout(s, timeout))
        setup_failed("fresh_session");
    return s;
}

/* SSL_SESS_CACHE_UPDATE_TIME gives a session the cache's clock when it is
 * added: seconds on 3.0, microseconds on 3.3 and later. A session made
 * earlier in the same second and added without it (its own time) expires
 * no later than the one added with it, so a full cache evicts it first on
 * every line. Tried until both fall in the same second. */
static void test_update_time_clock(void)
{
    SSL_CTX *ctx = NULL;
    SSL_SESSION *a = NULL, *b = NULL, *c;
    int tries;

    section("UPDATE_TIME's clock against a session made in the same second");
    for (tries = 0; tries < 50; tries++) {
        ctx = new_server_ctx(0, 0);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, 3);
        a = fresh_session(0x40, 300);
        b = make_session(0x41, 32, V12, 0, 300);
        CHECK_SETUP(SSL_CTX_add_session(ctx, a) == 1);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER
                                       | SSL_SESS_CACHE_UPDATE_TIME);
        CHECK_SETUP(SSL_CTX_add_session(ctx, b) == 1);
        if (get_time(a) == get_time(b))
            break;
        SSL_SESSION_free(a);
        SSL_SESSION_free(b);
        SSL_CTX_free(ctx);
        ctx = NULL;
    }
    CHECK_SETUP(ctx != NULL);
    cbc_reset();
    set_cbs(ctx, 'A', 0, 1, 0);
    printf("made first, added without UPDATE_TIME: %s\n", slabel(a));
    printf("added with UPDATE_TIME in the same second: %s\n", slabel(b));
    printf("number=%ld\n", SSL_CTX_sess_number(ctx));
    c = make_session(0x42, 32, V12, 100, 300);
    add(ctx, c);
    flush_at(ctx, 0, "0");
    SSL_SESSION_free(a);
    SSL_SESSION_free(b);
    SSL_SESSION_free(c);
    free_ctx(ctx);
}

int main(void)
{
    common_init();
    test_values();
    test_flush_times();
    test_ctx_timeout();
    test_readd_order();
    test_other_id();
    test_update_time_clock();
    common_cleanup();
    printf("end\n");
    return 0;
}
