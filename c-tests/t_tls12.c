/*
 * TLS 1.2: full handshakes and session-ID resumption through the internal
 * server cache, with new_cb returning 1 (app keeps the reference) and 0,
 * ticket-based resumption for comparison, and SSL_CTX_free with sessions in
 * the cache (remove_cb per session, order of frees).
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>

static SSL_CTX *server12(int no_ticket)
{
    SSL_CTX *ctx = new_server_ctx(TLS1_2_VERSION, TLS1_2_VERSION);

    if (no_ticket)
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    return ctx;
}

static void test_new_cb_keeps(SSL_CTX *cctx)
{
    SSL_CTX *sctx = server12(1);
    int i;

    section("new_cb returns 1 and keeps the session; remove_cb set");
    cbc_reset();
    cbc.new_ret = 1;
    cbc.new_store = 1;
    set_cbs(sctx, 'A', 1, 1, 0);
    print_stats(sctx);
    resume_chain(sctx, cctx, 2, 0);
    resume_chain(sctx, cctx, 1, 0);
    store_print();
    for (i = 0; i < store_count(); i++)
        print_sess("stored", store_get(i));
    printf("SSL_CTX_free server\n");
    SSL_CTX_free(sctx);
    for (i = 0; i < store_count(); i++)
        print_sess("stored after ctx free", store_get(i));
    printf("store_clear\n");
    store_clear();
}

static void test_new_cb_returns_0(SSL_CTX *cctx)
{
    SSL_CTX *sctx = server12(1);

    section("new_cb returns 0; remove_cb set");
    cbc_reset();
    cbc.new_ret = 0;
    set_cbs(sctx, 'A', 1, 1, 0);
    resume_chain(sctx, cctx, 1, 0);
    resume_chain(sctx, cctx, 0, 0);
    resume_chain(sctx, cctx, 2, 0);
    print_stats(sctx);
    printf("SSL_CTX_free server\n");
    SSL_CTX_free(sctx);
}

static void test_no_callbacks(SSL_CTX *cctx)
{
    SSL_CTX *sctx = server12(1);

    section("no callbacks, internal cache only");
    resume_chain(sctx, cctx, 2, 0);
    resume_chain(sctx, cctx, 1, 0);
    printf("SSL_CTX_free server\n");
    SSL_CTX_free(sctx);
}

static void test_tickets(SSL_CTX *cctx)
{
    SSL_CTX *sctx = server12(0);

    section("TLS 1.2 with session tickets (default options)");
    cbc_reset();
    set_cbs(sctx, 'A', 1, 1, 1);
    resume_chain(sctx, cctx, 2, 0);
    printf("SSL_CTX_free server\n");
    SSL_CTX_free(sctx);
}

static void test_other_ctx(SSL_CTX *cctx)
{
    SSL_CTX *s1 = server12(1), *s2 = server12(1);
    struct hs_result r, r2;
    struct hs_opts o = { 0 };

    section("session offered to a different server ctx (miss)");
    cbc_reset();
    set_cbs(s1, 'A', 1, 1, 0);
    set_cbs(s2, 'B', 1, 1, 1);
    handshake(s1, cctx, NULL, &r);
    o.offer = r.client_sess;
    handshake(s2, cctx, &o, &r2);
    print_stats(s1);
    print_stats(s2);
    SSL_SESSION_free(r2.client_sess);
    /* and back to the first one: still resumable there */
    handshake(s1, cctx, &o, &r2);
    print_stats(s1);
    SSL_SESSION_free(r2.client_sess);
    SSL_SESSION_free(r.client_sess);
    printf("SSL_CTX_free X-s2\n");
    SSL_CTX_free(s2);
    printf("SSL_CTX_free X-s1\n");
    SSL_CTX_free(s1);
}

static void test_flush_then_resume(SSL_CTX *cctx)
{
    SSL_CTX *sctx = server12(1);
    struct hs_result r, r2;
    struct hs_opts o = { 0 };

    section("removed / flushed session is not resumed");
    cbc_reset();
    set_cbs(sctx, 'A', 1, 1, 0);
    handshake(sctx, cctx, NULL, &r);
    print_stats(sctx);
    printf("flush(T0+3600): nothing expires\n");
    SSL_CTX_flush_sessions(sctx, (long)(T0 + 3600));
    print_stats(sctx);
    printf("flush(T0+100000): everything expires\n");
    SSL_CTX_flush_sessions(sctx, (long)(T0 + 100000));
    print_stats(sctx);
    o.offer = r.client_sess;
    handshake(sctx, cctx, &o, &r2);
    print_stats(sctx);
    SSL_SESSION_free(r.client_sess);
    o.offer = r2.client_sess;
    printf("remove the new session explicitly (from the server's copy)\n");
    /* The server's copy is only reachable through the callbacks: resume
     * first with a get_cb-free ctx and remove via the kept SSL. */
    o.keep = 1;
    handshake(sctx, cctx, &o, &r);
    printf("SSL_CTX_remove_session(server session) = %d\n",
           SSL_CTX_remove_session(sctx, SSL_get_session(r.s)));
    print_sess("server session", SSL_get_session(r.s));
    shutdown_pair(r.c, r.s);
    free_pair(r.c, r.s);
    SSL_SESSION_free(r.client_sess);
    print_stats(sctx);
    o.keep = 0;
    handshake(sctx, cctx, &o, &r);
    print_stats(sctx);
    SSL_SESSION_free(r.client_sess);
    SSL_SESSION_free(r2.client_sess);
    printf("SSL_CTX_free server\n");
    SSL_CTX_free(sctx);
}

int main(void)
{
    SSL_CTX *cctx;

    common_init();
    cctx = new_client_ctx(0, 0);
    test_new_cb_keeps(cctx);
    test_new_cb_returns_0(cctx);
    test_no_callbacks(cctx);
    test_tickets(cctx);
    test_other_ctx(cctx);
    test_flush_then_resume(cctx);
    print_stats(cctx);
    SSL_CTX_free(cctx);
    common_cleanup();
    printf("end\n");
    return 0;
}
