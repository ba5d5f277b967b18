/*
 * The internal cache API without (mostly) handshakes: SSL_CTX_add_session,
 * SSL_CTX_remove_session, SSL_has_matching_session_id, cache size and
 * eviction order, SSL_SESSION_set_time/set_timeout on cached sessions,
 * SSL_CTX_flush_sessions, SSL_SESS_CACHE_UPDATE_TIME, mode/size setters.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>
#include <string.h>

#define V12 TLS1_2_VERSION
#define V13 TLS1_3_VERSION

static void add(SSL_CTX *ctx, SSL_SESSION *s)
{
    int ret;

    printf("add %s (id=%s ver=%s)\n", slabel(s), sidlabel(s),
           ver_name(SSL_SESSION_get_protocol_version(s)));
    ret = SSL_CTX_add_session(ctx, s);
    printf("  -> %d number=%ld cache_full=%ld\n", ret, SSL_CTX_sess_number(ctx),
           SSL_CTX_sess_cache_full(ctx));
}

/* add and drop our reference: the cache holds the only one */
static void add_free(SSL_CTX *ctx, SSL_SESSION *s)
{
    add(ctx, s);
    SSL_SESSION_free(s);
}

static void rem(SSL_CTX *ctx, SSL_SESSION *s)
{
    int ret;

    printf("remove %s\n", slabel(s));
    ret = SSL_CTX_remove_session(ctx, s);
    printf("  -> %d number=%ld resumable=%d\n", ret, SSL_CTX_sess_number(ctx),
           s ? SSL_SESSION_is_resumable(s) : -1);
}

static void flush(SSL_CTX *ctx, long rel, const char *what)
{
    long t = rel == 0 ? 0 : (long)T0 + rel;

    printf("flush(%s)\n", what);
    SSL_CTX_flush_sessions(ctx, t);
    printf("  number=%ld\n", SSL_CTX_sess_number(ctx));
}

static void free_ctx(SSL_CTX *ctx)
{
    printf("SSL_CTX_free %s\n", ctx_label(ctx));
    SSL_CTX_free(ctx);
}

static void test_resumable(void)
{
    SSL_SESSION *s = SSL_SESSION_new();
    static const unsigned char mk[48] = { 1, 2, 3 };

    section("SSL_SESSION_is_resumable of hand-made sessions");
    CHECK_SETUP(s != NULL);
    printf("new: resumable=%d id=%s\n", SSL_SESSION_is_resumable(s),
           sidlabel(s));
    printf("set1_master_key=%d\n", SSL_SESSION_set1_master_key(s, mk, sizeof(mk)));
    printf("with master key: resumable=%d\n", SSL_SESSION_is_resumable(s));
    printf("set1_id(len 1)=%d\n", SSL_SESSION_set1_id(s, mk, 1));
    printf("with 1-byte id: resumable=%d id=%s\n", SSL_SESSION_is_resumable(s),
           sidlabel(s));
    printf("set1_id(len 33)=%d\n", SSL_SESSION_set1_id(s, mk, 33));
    printf("set1_id(len 0)=%d\n", SSL_SESSION_set1_id(s, mk, 0));
    printf("with 0-byte id: resumable=%d\n", SSL_SESSION_is_resumable(s));
    printf("label %s\n", slabel(s));
    SSL_SESSION_free(s);
}

static void test_add_remove(void)
{
    SSL_CTX *ctx = new_cache_ctx();
    SSL_SESSION *a, *a2, *a13, *b, *z, *n;

    section("add / remove return values");
    a = make_session(1, 32, V12, 0, 1000);
    add(ctx, a);
    add(ctx, a);
    printf("drop our reference to %s\n", slabel(a));
    SSL_SESSION_free(a);
    a2 = make_session(1, 32, V12, 0, 1000);
    printf("different object, same id+version (old one is freed, no remove_cb):\n");
    add(ctx, a2);
    a13 = make_session(1, 32, V13, 0, 1000);
    printf("same id, other version: a different key\n");
    add(ctx, a13);
    b = make_session(2, 16, V12, 0, 1000);
    add(ctx, b);
    rem(ctx, a2);
    printf("removed session again (not cached any more):\n");
    rem(ctx, a2);
    printf("re-adding a removed (non-resumable) session:\n");
    add(ctx, a2);
    print_sess("re-added", a2);
    rem(ctx, a2);
    n = make_session(3, 32, V12, 0, 1000);
    printf("a session that was never cached:\n");
    rem(ctx, n);
    printf("NULL:\n");
    rem(ctx, NULL);
    z = make_session(4, 0, V12, 0, 1000);
    printf("zero-length id:\n");
    print_sess("zero", z);
    rem(ctx, z);
    add(ctx, z);
    rem(ctx, z);
    print_sess("zero after remove", z);
    printf("cache now holds %ld; flush(0):\n", SSL_CTX_sess_number(ctx));
    flush(ctx, 0, "0");
    print_sess("a13", a13);
    print_sess("b", b);
    SSL_SESSION_free(a2);
    SSL_SESSION_free(a13);
    SSL_SESSION_free(b);
    SSL_SESSION_free(n);
    SSL_SESSION_free(z);
    free_ctx(ctx);
}

/* SSL_has_matching_session_id on SSLs with a known negotiated version. */
static void matching(SSL *ssl, const char *what, const unsigned char *id,
                     unsigned int len)
{
    printf("  %s has_matching(len %u) = %d\n", what, len,
           SSL_has_matching_session_id(ssl, id, len));
}

static void test_matching(void)
{
    SSL_CTX *ctx = new_cache_ctx();
    SSL_CTX *cctx12 = new_client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    SSL_CTX *cctx13 = new_client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    struct hs_opts o = { 0 };
    struct hs_result r12, r13;
    SSL *fresh;
    unsigned char id[40];
    SSL_SESSION *s0, *s1, *s32, *s32b, *any;
    unsigned int len;

    section("SSL_has_matching_session_id");
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    o.keep = 1;
    handshake(ctx, cctx12, &o, &r12);
    handshake(ctx, cctx13, &o, &r13);
    fresh = new_ssl(ctx, 1);
    print_stats(ctx);

    memset(id, 0xA5, sizeof(id));
    s0 = make_session(9, 0, V12, 0, 1000);
    s1 = make_session(9, 1, V12, 0, 1000);
    s32 = make_session(9, 32, V12, 0, 1000);
    s32b = make_session(9, 32, V13, 0, 1000);
    any = make_session(10, 32, TLS_ANY_VERSION, 0, 1000);
    add(ctx, s0);
    add(ctx, s1);
    add(ctx, s32);
    add(ctx, s32b);
    add(ctx, any);
    id[0] = 9;
    for (len = 0; len <= 33; len++) {
        if (len > 1 && len < 31)
            continue;
        matching(r12.s, "TLS1.2 SSL", id, len);
        matching(r13.s, "TLS1.3 SSL", id, len);
        matching(fresh, "fresh SSL", id, len);
    }
    id[0] = 10;
    matching(r12.s, "TLS1.2 SSL", id, 32);
    matching(fresh, "fresh SSL", id, 32);
    id[0] = 9;
    /* the sessions created by the handshakes themselves */
    {
        const unsigned char *sid;
        unsigned int slen;

        sid = SSL_SESSION_get_id(SSL_get_session(r12.s), &slen);
        printf("  TLS1.2 handshake session %s:\n", sidlabel(SSL_get_session(r12.s)));
        matching(r12.s, "TLS1.2 SSL", sid, slen);
        matching(r13.s, "TLS1.3 SSL", sid, slen);
        sid = SSL_SESSION_get_id(SSL_get_session(r13.s), &slen);
        printf("  TLS1.3 handshake session %s:\n", sidlabel(SSL_get_session(r13.s)));
        matching(r12.s, "TLS1.2 SSL", sid, slen);
        matching(r13.s, "TLS1.3 SSL", sid, slen);
    }
    rem(ctx, s32);
    matching(r12.s, "TLS1.2 SSL after removal", id, 32);
    matching(r13.s, "TLS1.3 SSL after removal", id, 32);
    rem(ctx, s0);
    matching(r12.s, "TLS1.2 SSL after removal", id, 0);

    shutdown_pair(r12.c, r12.s);
    free_pair(r12.c, r12.s);
    shutdown_pair(r13.c, r13.s);
    free_pair(r13.c, r13.s);
    SSL_free(fresh);
    SSL_SESSION_free(r12.client_sess);
    SSL_SESSION_free(r13.client_sess);
    SSL_SESSION_free(s0);
    SSL_SESSION_free(s1);
    SSL_SESSION_free(s32);
    SSL_SESSION_free(s32b);
    SSL_SESSION_free(any);
    free_ctx(ctx);
    SSL_CTX_free(cctx12);
    SSL_CTX_free(cctx13);
}

/*
 * The application changes the protocol version of a cached session.
 * libssl hashes only the ID and compares the version it reads from the
 * cached session, so the session is found, replaced and removed under its
 * new version, and adding it again is "already cached".
 */
static void test_version_changed_while_cached(void)
{
    SSL_CTX *ctx = new_cache_ctx();
    SSL *fresh = new_ssl(ctx, 1); /* SSL_version: TLS 1.3 */
    SSL_SESSION *s = make_session(11, 32, V12, 0, 1000);
    SSL_SESSION *other13 = make_session(11, 32, V13, 0, 1000);
    unsigned int len;
    const unsigned char *id = SSL_SESSION_get_id(s, &len);

    section("protocol version changed while cached");
    add(ctx, s);
    matching(fresh, "TLS1.3 SSL, cached as TLS1.2", id, len);
    SSL_SESSION_set_protocol_version(s, V13);
    matching(fresh, "TLS1.3 SSL, now TLS1.3", id, len);
    add(ctx, s);                 /* the same session: 0 */
    add(ctx, other13);           /* same ID and version: replaces it */
    SSL_SESSION_set_protocol_version(s, V12);
    add(ctx, s);                 /* TLS1.2 again: differs from other13 */
    rem(ctx, s);
    matching(fresh, "TLS1.3 SSL after removing the TLS1.2 one", id, len);
    rem(ctx, other13);
    matching(fresh, "TLS1.3 SSL after removing both", id, len);
    add(ctx, s);
    SSL_SESSION_set_protocol_version(s, V13);
    flush(ctx, 5000, "everything");
    SSL_free(fresh);
    SSL_SESSION_free(s);
    SSL_SESSION_free(other13);
    free_ctx(ctx);
}

static void test_cache_size(long size)
{
    SSL_CTX *ctx = new_cache_ctx();
    char buf[64];
    int i;

    snprintf(buf, sizeof(buf), "cache size %ld, adding 7 sessions", size);
    section(buf);
    printf("set_cache_size(%ld) = %ld\n", size,
           SSL_CTX_sess_set_cache_size(ctx, size));
    for (i = 0; i < 7; i++)
        add_free(ctx, make_session((unsigned char)(0x20 + i), 32, V12,
                                   i * 10, 1000));
    print_stats(ctx);
    if (size > 2) {
        printf("shrink to 2\n");
        printf("set_cache_size(2) = %ld\n", SSL_CTX_sess_set_cache_size(ctx, 2));
        printf("number=%ld\n", SSL_CTX_sess_number(ctx));
        add_free(ctx, make_session(0x30, 32, V12, 100, 1000));
        print_stats(ctx);
    }
    free_ctx(ctx);
}

/* libssl's eviction refuses a session with an empty ID (remove_session_lock
 * does nothing for it) and stops there: the cache then holds more than its
 * size. Here the empty-ID session expires first. */
static void test_eviction_stops_at_empty_id(void)
{
    SSL_CTX *ctx = new_cache_ctx();
    int i;

    section("eviction stops at an empty session ID (size 3 holds 2)");
    SSL_CTX_sess_set_cache_size(ctx, 3);
    add_free(ctx, make_session(0x50, 0, V12, 0, 100));
    for (i = 1; i <= 3; i++)
        add_free(ctx, make_session((unsigned char)(0x50 + i), 32, V12,
                                   i * 10, 1000));
    print_stats(ctx);
    free_ctx(ctx);
}

static void test_eviction_order(void)
{
    SSL_CTX *ctx = new_cache_ctx();
    /* expiry = T0 + time_off + timeout */
    static const struct { long off, to; } e[] = {
        { 0, 500 },   /* 500 */
        { 0, 100 },   /* 100 */
        { 100, 200 }, /* 300 */
        { 0, 300 },   /* 300, tie with the previous */
        { 50, 50 },   /* 100, tie with the second */
        { 0, 700 },   /* 700 */
        { 200, 100 }, /* 300, third of a tie */
        { 0, 50 },    /* 50 */
    };
    int i;

    section("eviction order by expiry (size 6 holds 5)");
    SSL_CTX_sess_set_cache_size(ctx, 6);
    for (i = 0; i < (int)(sizeof(e) / sizeof(e[0])); i++)
        add_free(ctx, make_session((unsigned char)(0x40 + i), 32, V12,
                                   e[i].off, e[i].to));
    printf("flush(0) lists the rest oldest-first:\n");
    flush(ctx, 0, "0");
    free_ctx(ctx);

    ctx = new_cache_ctx();
    section("ties only: flush order of equal expiry");
    for (i = 0; i < 5; i++)
        add_free(ctx, make_session((unsigned char)(0x50 + i), 32, V12, 0, 400));
    flush(ctx, 0, "0");
    free_ctx(ctx);
}

static void test_set_time(void)
{
    SSL_CTX *ctx = new_cache_ctx();
    SSL_SESSION *s[5];
    int i;

    section("set_time / set_timeout on cached sessions");
    for (i = 0; i < 5; i++) {
        s[i] = make_session((unsigned char)(0x60 + i), 32, V12, i * 100, 1000);
        add(ctx, s[i]);
    }
    /* expiries: 1000 1100 1200 1300 1400 */
    printf("set_timeout(%s, 5000) = %ld\n", slabel(s[0]),
           SSL_SESSION_set_timeout(s[0], 5000));       /* 5000 */
    printf("set_time(%s, T0-1000) returns T0-1000: %s\n", slabel(s[4]),
           SSL_SESSION_set_time(s[4], (long)T0 - 1000) == (long)T0 - 1000
               ? "yes" : "no");                         /* 0 */
    printf("set_timeout(%s, -1) = %ld\n", slabel(s[2]),
           SSL_SESSION_set_timeout(s[2], -1));          /* unchanged 1200 */
    printf("set_timeout(%s, 0) = %ld\n", slabel(s[3]),
           SSL_SESSION_set_timeout(s[3], 0));           /* 300 */
    printf("get_timeout: %ld %ld %ld %ld %ld\n", SSL_SESSION_get_timeout(s[0]),
           SSL_SESSION_get_timeout(s[1]), SSL_SESSION_get_timeout(s[2]),
           SSL_SESSION_get_timeout(s[3]), SSL_SESSION_get_timeout(s[4]));
    flush(ctx, 1, "T0+1");
    flush(ctx, 300, "T0+300");
    flush(ctx, 301, "T0+301");
    flush(ctx, 1100, "T0+1100");
    flush(ctx, 1101, "T0+1101");
    printf("SSL_CTX_sess_set_cache_size 2 and add one more: evicts the tail\n");
    SSL_CTX_sess_set_cache_size(ctx, 2);
    add_free(ctx, make_session(0x6f, 32, V12, 0, 2000));
    print_stats(ctx);
    for (i = 0; i < 5; i++) {
        print_sess("session", s[i]);
        SSL_SESSION_free(s[i]);
    }
    free_ctx(ctx);

    /* a removed session's set_time must not put it back in any list */
    ctx = new_cache_ctx();
    section("set_time on a removed session");
    s[0] = make_session(0x70, 32, V12, 0, 1000);
    s[1] = make_session(0x71, 32, V12, 0, 2000);
    add(ctx, s[0]);
    add(ctx, s[1]);
    rem(ctx, s[0]);
    SSL_SESSION_set_time(s[0], (long)T0 + 5000);
    SSL_SESSION_set_timeout(s[0], 5000);
    printf("number=%ld\n", SSL_CTX_sess_number(ctx));
    flush(ctx, 0, "0");
    SSL_SESSION_free(s[0]);
    SSL_SESSION_free(s[1]);
    free_ctx(ctx);
}

static void test_flush(void)
{
    SSL_CTX *ctx = new_cache_ctx();
    int i;

    section("SSL_CTX_flush_sessions at several times");
    for (i = 0; i < 4; i++)
        add_free(ctx, make_session((unsigned char)(0x80 + i), 32, V12,
                                   0, 100 * (i + 1)));
    /* expiries T0+100, +200, +300, +400 */
    flush(ctx, -100000, "T0-100000");
    flush(ctx, 100, "T0+100");
    flush(ctx, 101, "T0+101");
    flush(ctx, 250, "T0+250");
    flush(ctx, 300, "T0+300");
    printf("flush(1) (long ago)\n");
    SSL_CTX_flush_sessions(ctx, 1);
    printf("  number=%ld\n", SSL_CTX_sess_number(ctx));
    flush(ctx, 0, "0 = everything");
    flush(ctx, 0, "0 on an empty cache");
    print_stats(ctx);
    free_ctx(ctx);
}

static void test_update_time(void)
{
    SSL_CTX *ctx;
    SSL_SESSION *s, *t;
    int upd;

    for (upd = 0; upd < 2; upd++) {
        ctx = new_cache_ctx();
        section(upd ? "SSL_SESS_CACHE_UPDATE_TIME set" : "SSL_SESS_CACHE_UPDATE_TIME not set");
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER
                                       | (upd ? SSL_SESS_CACHE_UPDATE_TIME : 0));
        s = make_session(0x90, 32, V12, -5000, 1000);   /* expired */
        t = make_session(0x91, 32, V12, 0, 3000);
        add(ctx, s);
        add(ctx, t);
        printf("time of %s updated: %s\n", slabel(s),
               SSL_SESSION_get_time(s) >= (long)T0 ? "yes" : "no");
        SSL_SESSION_set_time(t, (long)T0 - 10000);
        printf("re-add %s\n", slabel(t));
        add(ctx, t);
        printf("time of %s updated: %s\n", slabel(t),
               SSL_SESSION_get_time(t) >= (long)T0 ? "yes" : "no");
        flush(ctx, 500, "T0+500");
        flush(ctx, 0, "0");
        SSL_SESSION_free(s);
        SSL_SESSION_free(t);
        free_ctx(ctx);
    }
}

static void test_mode_size_setters(void)
{
    SSL_CTX *ctx = new_server_ctx(0, 0);
    SSL_SESSION *s;

    section("mode and size setters");
    printf("default mode=0x%lx size=%ld\n",
           (unsigned long)SSL_CTX_get_session_cache_mode(ctx),
           SSL_CTX_sess_get_cache_size(ctx));
    printf("set_mode(OFF) = 0x%lx\n",
           (unsigned long)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF));
    printf("set_mode(BOTH|NO_INTERNAL) = 0x%lx\n",
           (unsigned long)SSL_CTX_set_session_cache_mode(
               ctx, SSL_SESS_CACHE_BOTH | SSL_SESS_CACHE_NO_INTERNAL));
    printf("set_mode(0xffff) = 0x%lx\n",
           (unsigned long)SSL_CTX_set_session_cache_mode(ctx, 0xffff));
    printf("get_mode = 0x%lx\n",
           (unsigned long)SSL_CTX_get_session_cache_mode(ctx));
    printf("set_size(10) = %ld\n", SSL_CTX_sess_set_cache_size(ctx, 10));
    printf("set_size(-1) = %ld\n", SSL_CTX_sess_set_cache_size(ctx, -1));
    printf("get_size = %ld\n", SSL_CTX_sess_get_cache_size(ctx));
    printf("set_size(0) = %ld\n", SSL_CTX_sess_set_cache_size(ctx, 0));
    printf("set_size(1<<40) = %ld\n", SSL_CTX_sess_set_cache_size(ctx, 1L << 40));
    printf("get_size = %ld\n", SSL_CTX_sess_get_cache_size(ctx));
    printf("set_size(20480) = %ld\n", SSL_CTX_sess_set_cache_size(ctx, 20480));

    /* explicit add works whatever the mode */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    s = make_session(0xa0, 32, V12, 0, 1000);
    printf("mode OFF:\n");
    add(ctx, s);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER
                                   | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    printf("mode NO_INTERNAL_STORE:\n");
    add_free(ctx, make_session(0xa1, 32, V12, 0, 1000));
    print_stats(ctx);
    printf("SSL_SESSION_free(%s) while cached\n", slabel(s));
    SSL_SESSION_free(s);
    printf("set_timeout(1): ctx timeout prev=%ld\n", SSL_CTX_set_timeout(ctx, 1));
    printf("get_timeout=%ld\n", SSL_CTX_get_timeout(ctx));
    free_ctx(ctx);
}

int main(void)
{
    common_init();
    test_resumable();
    test_add_remove();
    test_matching();
    test_version_changed_while_cached();
    test_cache_size(0);
    test_cache_size(1);
    test_cache_size(2);
    test_cache_size(3);
    test_cache_size(5);
    test_eviction_order();
    test_eviction_stops_at_empty_id();
    test_set_time();
    test_flush();
    test_update_time();
    test_mode_size_setters();
    common_cleanup();
    printf("end\n");
    return 0;
}
