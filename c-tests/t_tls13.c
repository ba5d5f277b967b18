/*
 * TLS 1.3: when the server caches ticket sessions (stateless tickets: only
 * with a remove_cb, SSL_OP_NO_TICKET, or early data with anti-replay),
 * stateful-ticket resumption, the number of tickets, and the client-side
 * cache (SSL_SESS_CACHE_CLIENT / BOTH on the client ctx).
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>

static SSL_CTX *server13(void)
{
    return new_server_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
}

static void free_ctx(SSL_CTX *ctx)
{
    printf("SSL_CTX_free %s\n", ctx_label(ctx));
    SSL_CTX_free(ctx);
}

static void test_server_caching(SSL_CTX *cctx)
{
    SSL_CTX *sctx;

    section("stateless tickets, new_cb only: not cached");
    sctx = server13();
    cbc_reset();
    set_cbs(sctx, 'A', 1, 0, 1);
    resume_chain(sctx, cctx, 2, 1);
    free_ctx(sctx);

    section("stateless tickets, remove_cb set: cached");
    sctx = server13();
    cbc_reset();
    set_cbs(sctx, 'A', 1, 1, 1);
    resume_chain(sctx, cctx, 2, 1);
    printf("flush(T0+100000)\n");
    SSL_CTX_flush_sessions(sctx, (long)T0 + 100000);
    print_stats(sctx);
    free_ctx(sctx);

    section("stateless tickets, remove_cb only (no new_cb): cached");
    sctx = server13();
    cbc_reset();
    set_cbs(sctx, 'A', 0, 1, 0);
    resume_chain(sctx, cctx, 1, 1);
    free_ctx(sctx);

    section("SSL_OP_NO_TICKET (stateful), no remove_cb: cached");
    sctx = server13();
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    cbc_reset();
    set_cbs(sctx, 'A', 1, 0, 1);
    resume_chain(sctx, cctx, 2, 1);
    free_ctx(sctx);

    section("early data with anti-replay: cached, used ticket removed");
    sctx = server13();
    printf("set_max_early_data = %d\n", SSL_CTX_set_max_early_data(sctx, 1024));
    cbc_reset();
    set_cbs(sctx, 'A', 1, 1, 1);
    resume_chain(sctx, cctx, 2, 1);
    free_ctx(sctx);

    section("early data with SSL_OP_NO_ANTI_REPLAY and new_cb only: not cached");
    sctx = server13();
    SSL_CTX_set_max_early_data(sctx, 1024);
    SSL_CTX_set_options(sctx, SSL_OP_NO_ANTI_REPLAY);
    cbc_reset();
    set_cbs(sctx, 'A', 1, 0, 1);
    resume_chain(sctx, cctx, 1, 1);
    free_ctx(sctx);

    section("no callbacks at all, stateless: not cached");
    sctx = server13();
    resume_chain(sctx, cctx, 1, 1);
    free_ctx(sctx);

    section("no callbacks at all, stateful: cached");
    sctx = server13();
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    resume_chain(sctx, cctx, 2, 1);
    free_ctx(sctx);
}

static void test_stateful_store(SSL_CTX *cctx)
{
    SSL_CTX *sctx = server13();
    struct hs_result r1, r2;
    struct hs_opts o = { 0 };
    int i;

    section("stateful tickets: new_cb keeps, remove_cb, resume the first ticket");
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    cbc_reset();
    cbc.new_ret = 1;
    cbc.new_store = 1;
    set_cbs(sctx, 'A', 1, 1, 1);
    o.keep = 1;
    handshake(sctx, cctx, &o, &r1);
    print_sess("server SSL's session", SSL_get_session(r1.s));
    shutdown_pair(r1.c, r1.s);
    free_pair(r1.c, r1.s);
    print_stats(sctx);
    store_print();
    o.keep = 0;
    o.offer = r1.client_sess;
    handshake(sctx, cctx, &o, &r2);
    print_stats(sctx);
    SSL_SESSION_free(r2.client_sess);
    printf("offer the same session again\n");
    handshake(sctx, cctx, &o, &r2);
    print_stats(sctx);
    SSL_SESSION_free(r2.client_sess);
    for (i = 0; i < store_count(); i++) {
        printf("SSL_CTX_remove_session(%s) = %d\n", slabel(store_get(i)),
               SSL_CTX_remove_session(sctx, store_get(i)));
    }
    printf("offer after removal\n");
    handshake(sctx, cctx, &o, &r2);
    print_stats(sctx);
    SSL_SESSION_free(r2.client_sess);
    SSL_SESSION_free(r1.client_sess);
    store_print();
    free_ctx(sctx);
    store_clear();
}

static void test_num_tickets(SSL_CTX *cctx)
{
    static const size_t nums[] = { 2, 0, 1, 3 };
    size_t i;

    for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        SSL_CTX *sctx = server13();
        char buf[64];

        snprintf(buf, sizeof(buf), "num_tickets %zu (stateful)", nums[i]);
        section(buf);
        SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
        printf("default num_tickets=%zu\n", SSL_CTX_get_num_tickets(sctx));
        printf("set_num_tickets=%d\n", SSL_CTX_set_num_tickets(sctx, nums[i]));
        cbc_reset();
        set_cbs(sctx, 'A', 1, 1, 1);
        resume_chain(sctx, cctx, 1, 1);
        free_ctx(sctx);
    }
}

static void test_client_cache(long cmode, int stateful)
{
    SSL_CTX *sctx = server13();
    SSL_CTX *cctx = new_client_ctx(0, 0);
    char buf[96];

    snprintf(buf, sizeof(buf), "client cache mode 0x%lx, %s server", cmode,
             stateful ? "stateful" : "stateless");
    section(buf);
    if (stateful)
        SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    printf("client set_session_cache_mode = 0x%lx\n",
           (unsigned long)SSL_CTX_set_session_cache_mode(cctx, cmode));
    cbc_reset();
    set_cbs(sctx, 'A', 1, 1, 0);
    set_cbs(cctx, 'B', 1, 1, 1);
    resume_chain(sctx, cctx, 2, 1);
    print_stats(cctx);
    printf("flush client cache (0)\n");
    SSL_CTX_flush_sessions(cctx, 0);
    print_stats(cctx);
    free_ctx(sctx);
    free_ctx(cctx);
}

int main(void)
{
    SSL_CTX *cctx;

    common_init();
    cctx = new_client_ctx(0, 0);
    test_server_caching(cctx);
    test_stateful_store(cctx);
    test_num_tickets(cctx);
    print_stats(cctx);
    SSL_CTX_free(cctx);
    test_client_cache(SSL_SESS_CACHE_CLIENT, 0);
    test_client_cache(SSL_SESS_CACHE_BOTH, 0);
    test_client_cache(SSL_SESS_CACHE_CLIENT, 1);
    test_client_cache(SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE, 0);
    common_cleanup();
    printf("end\n");
    return 0;
}
