/*
 * Sessions marked not resumable and cached again. A removal (or eviction,
 * or flush) marks a session not resumable; SSL_CTX_add_session puts it
 * back all the same. libssl's internal lookup does not look at the mark, so
 * a client offering it resumes (TLS 1.2 by session ID, TLS 1.3 by stateful
 * ticket); expired, it counts a timeout and, in TLS 1.2, is removed. Then:
 * such a session evicted, flushed, removed, replaced by a fresh session of
 * the same key, re-added twice; and a session marked through another ctx
 * while this one holds it. (Left in the cache at SSL_CTX_free:
 * t_readd_free.c; each server here is flushed before it is freed.)
 * (sesscache parks such sessions in libssl's own table: this program is
 * what keeps that honest.)
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>

/* The server's copy of a client session: by session ID (TLS 1.2) or by
 * the stateful ticket, which is the server session's ID (TLS 1.3). */
static void rem(SSL_CTX *ctx, SSL_SESSION *s)
{
    int ret;

    printf("remove %s\n", slabel(s));
    ret = SSL_CTX_remove_session(ctx, s);
    printf("  -> %d resumable=%d number=%ld\n", ret, SSL_SESSION_is_resumable(s),
           SSL_CTX_sess_number(ctx));
}

static void add(SSL_CTX *ctx, SSL_SESSION *s)
{
    int ret;

    printf("add %s\n", slabel(s));
    ret = SSL_CTX_add_session(ctx, s);
    printf("  -> %d resumable=%d number=%ld\n", ret, SSL_SESSION_is_resumable(s),
           SSL_CTX_sess_number(ctx));
}

static void offer(SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION *client)
{
    struct hs_opts o = { 0 };
    struct hs_result r;

    o.offer = client;
    handshake(sctx, cctx, &o, &r);
    print_stats(sctx);
    SSL_SESSION_free(r.client_sess);
}

/* A server and a full handshake whose session the server keeps (new_cb
 * returning 0 and storing a reference); returns the client's session. */
static SSL_SESSION *first_handshake(SSL_CTX *sctx, SSL_CTX *cctx)
{
    struct hs_result r;

    handshake(sctx, cctx, NULL, &r);
    return r.client_sess;
}

/* The cache emptied through SSL_CTX_flush_sessions, then the ctx freed. */
static void free_server(SSL_CTX *sctx)
{
    printf("flush all, SSL_CTX_free\n");
    SSL_CTX_flush_sessions(sctx, 0);
    SSL_CTX_free(sctx);
}

static SSL_CTX *server(int version)
{
    SSL_CTX *sctx = new_server_ctx(version, version);

    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    cbc_reset();
    cbc.new_store = 1;
    set_cbs(sctx, 'A', 1, 1, 0);
    /* a re-added old session and a new one keep their order in any run */
    own_session_times(sctx);
    return sctx;
}

static void test_resumes(int version, SSL_CTX *cctx, int expire)
{
    SSL_CTX *sctx = server(version);
    SSL_SESSION *client, *s;

    section(expire ? "removed, added back, expired, offered"
                   : "removed, added back, offered");
    client = first_handshake(sctx, cctx);
    s = store_find_server_copy(client);
    rem(sctx, s);
    if (expire)
        printf("set_time -100000 s -> %d\n",
               SSL_SESSION_set_time(s, SSL_SESSION_get_time(s) - 100000) != 0);
    add(sctx, s);
    offer(sctx, cctx, client);
    printf("after: number=%ld resumable=%d\n", SSL_CTX_sess_number(sctx),
           SSL_SESSION_is_resumable(s));
    /* once more: still there (TLS 1.2, not expired) or gone */
    offer(sctx, cctx, client);
    SSL_SESSION_free(client);
    free_server(sctx);
    store_clear();
}

static void test_leaves(int version, SSL_CTX *cctx)
{
    SSL_CTX *sctx = server(version);
    SSL_SESSION *c1, *c2, *s1, *s2;

    section("a session added back leaves again: eviction, flush, removal");
    c1 = first_handshake(sctx, cctx);
    c2 = first_handshake(sctx, cctx);
    s1 = store_find_server_copy(c1);
    s2 = store_find_server_copy(c2);
    rem(sctx, s1);
    add(sctx, s1);
    add(sctx, s1); /* again: already cached */
    printf("cache size 1 -> was %ld\n", SSL_CTX_sess_set_cache_size(sctx, 1));
    rem(sctx, s2);
    add(sctx, s2); /* evicts what is there, s1 among them */
    offer(sctx, cctx, c1); /* s1 was evicted: no resumption */
    offer(sctx, cctx, c2); /* s2 is cached */
    printf("cache size 0 -> was %ld\n", SSL_CTX_sess_set_cache_size(sctx, 0));
    add(sctx, s1);
    printf("flush (everything expires)\n");
    SSL_CTX_flush_sessions(sctx, (long)SSL_SESSION_get_time(s1) + 1000000);
    printf("  number=%ld\n", SSL_CTX_sess_number(sctx));
    offer(sctx, cctx, c1);
    add(sctx, s1);
    add(sctx, s2);
    rem(sctx, s1);
    offer(sctx, cctx, c1);
    SSL_SESSION_free(c1);
    SSL_SESSION_free(c2);
    free_server(sctx);
    store_clear();
}

static void test_replaced(SSL_CTX *cctx)
{
    SSL_CTX *sctx = server(TLS1_2_VERSION);
    SSL_SESSION *client, *s, *copy;
    unsigned char *der = NULL;
    const unsigned char *p;
    int len;

    section("a session added back, replaced by a fresh copy (same ID)");
    client = first_handshake(sctx, cctx);
    s = store_find_server_copy(client);
    len = i2d_SSL_SESSION(s, &der);
    CHECK_SETUP(len > 0);
    p = der;
    copy = d2i_SSL_SESSION(NULL, &p, len);
    CHECK_SETUP(copy != NULL);
    OPENSSL_free(der);
    printf("copy %s resumable=%d\n", slabel(copy), SSL_SESSION_is_resumable(copy));
    rem(sctx, s);
    add(sctx, s);
    add(sctx, copy); /* replaces s: the copy is not marked */
    offer(sctx, cctx, client);
    rem(sctx, copy);
    add(sctx, copy); /* marked now, and back */
    add(sctx, s);    /* replaces the copy, both marked */
    offer(sctx, cctx, client);
    SSL_SESSION_free(copy);
    SSL_SESSION_free(client);
    free_server(sctx);
    store_clear();
}

static void test_other_ctx(SSL_CTX *cctx)
{
    SSL_CTX *sctx = server(TLS1_2_VERSION), *other = server(TLS1_2_VERSION);
    SSL_SESSION *client, *s;

    section("marked through another ctx, where it is not cached");
    client = first_handshake(sctx, cctx);
    s = store_find_server_copy(client);
    rem(other, s); /* marks it; the first ctx still holds it */
    offer(sctx, cctx, client);
    offer(sctx, cctx, client);
    rem(sctx, s);
    offer(sctx, cctx, client);
    SSL_SESSION_free(client);
    free_server(other);
    free_server(sctx);
    store_clear();
}

int main(void)
{
    SSL_CTX *c12, *c13;

    common_init();
    c12 = new_client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    c13 = new_client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    CHECK_SETUP(c12 != NULL && c13 != NULL);

    printf("\n######## TLS 1.2\n");
    test_resumes(TLS1_2_VERSION, c12, 0);
    test_resumes(TLS1_2_VERSION, c12, 1);
    test_leaves(TLS1_2_VERSION, c12);
    printf("\n######## TLS 1.3\n");
    test_resumes(TLS1_3_VERSION, c13, 0);
    test_resumes(TLS1_3_VERSION, c13, 1);
    test_leaves(TLS1_3_VERSION, c13);
    printf("\n######## replacement\n");
    test_replaced(c12);
    printf("\n######## another ctx\n");
    test_other_ctx(c12);

    SSL_CTX_free(c12);
    SSL_CTX_free(c13);
    common_cleanup();
    printf("end\n");
    return 0;
}
