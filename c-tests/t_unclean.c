/*
 * Connections that end without SSL_shutdown, fatal alerts after the
 * handshake, and handshakes abandoned half-way, for TLS 1.2 (session IDs)
 * and TLS 1.3 (stateful tickets): which sessions leave the cache, what
 * remove_cb sees, what stays resumable.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

static SSL_CTX *g_cctx;

static SSL_CTX *server(int ver)
{
    SSL_CTX *ctx = new_server_ctx(ver, ver);

    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    set_cbs(ctx, 'A', 1, 1, 0);
    return ctx;
}

static void free_ctx(SSL_CTX *ctx)
{
    printf("SSL_CTX_free %s\n", ctx_label(ctx));
    SSL_CTX_free(ctx);
}

static void resume(SSL_CTX *sctx, SSL_SESSION *offer)
{
    struct hs_result r;
    struct hs_opts o = { 0 };

    o.offer = offer;
    handshake(sctx, g_cctx, &o, &r);
    print_stats(sctx);
    SSL_SESSION_free(r.client_sess);
}

static void test_both_unclean(int ver)
{
    SSL_CTX *sctx = server(ver);
    struct hs_result r1, r2;
    struct hs_opts o = { 0 };

    section("both sides freed without shutdown");
    handshake(sctx, g_cctx, NULL, &r1);
    print_stats(sctx);
    o.offer = r1.client_sess;
    o.unclean = 1;
    handshake(sctx, g_cctx, &o, &r2);
    print_stats(sctx);
    print_sess("offered client session", r1.client_sess);
    print_sess("new client session", r2.client_sess);
    printf("offer it again\n");
    resume(sctx, r1.client_sess);
    SSL_SESSION_free(r1.client_sess);
    SSL_SESSION_free(r2.client_sess);

    printf("first handshake already unclean\n");
    o.offer = NULL;
    o.unclean = 1;
    handshake(sctx, g_cctx, &o, &r1);
    print_stats(sctx);
    print_sess("client session", r1.client_sess);
    resume(sctx, r1.client_sess);
    SSL_SESSION_free(r1.client_sess);
    free_ctx(sctx);
}

static void test_server_unclean(int ver)
{
    SSL_CTX *sctx = server(ver);
    struct hs_result r1, r2;
    struct hs_opts o = { 0 };

    section("only the server SSL freed without shutdown");
    handshake(sctx, g_cctx, NULL, &r1);
    o.offer = r1.client_sess;
    o.keep = 1;
    handshake(sctx, g_cctx, &o, &r2);
    print_sess("server SSL's session", SSL_get_session(r2.s));
    printf("SSL_free(server)\n");
    SSL_free(r2.s);
    SSL_shutdown(r2.c);
    printf("SSL_free(client) after its SSL_shutdown\n");
    SSL_free(r2.c);
    ERR_clear_error();
    print_stats(sctx);
    print_sess("client session", r1.client_sess);
    resume(sctx, r1.client_sess);
    SSL_SESSION_free(r1.client_sess);
    SSL_SESSION_free(r2.client_sess);
    free_ctx(sctx);
}

static void test_client_unclean(int ver)
{
    SSL_CTX *sctx = server(ver);
    struct hs_result r1, r2;
    struct hs_opts o = { 0 };

    section("only the client SSL freed without shutdown");
    handshake(sctx, g_cctx, NULL, &r1);
    o.keep = 1;
    o.offer = r1.client_sess;
    handshake(sctx, g_cctx, &o, &r2);
    printf("SSL_free(client)\n");
    SSL_free(r2.c);
    printf("SSL_shutdown(server) = %d\n", SSL_shutdown(r2.s));
    printf("SSL_free(server)\n");
    SSL_free(r2.s);
    ERR_clear_error();
    print_stats(sctx);
    print_sess("client session", r1.client_sess);
    SSL_SESSION_free(r1.client_sess);
    SSL_SESSION_free(r2.client_sess);
    free_ctx(sctx);
}

static void test_clean(int ver)
{
    SSL_CTX *sctx = server(ver);
    struct hs_result r1;

    section("clean shutdown: the session stays");
    handshake(sctx, g_cctx, NULL, &r1);
    print_stats(sctx);
    resume(sctx, r1.client_sess);
    resume(sctx, r1.client_sess);
    print_sess("client session", r1.client_sess);
    SSL_SESSION_free(r1.client_sess);
    free_ctx(sctx);
}

static void test_bad_record(int ver)
{
    static const unsigned char junk_hdr[] = { 0x17, 0x03, 0x03, 0x00, 0x20 };
    unsigned char junk[sizeof(junk_hdr) + 32];
    SSL_CTX *sctx = server(ver);
    struct hs_result r1, r2;
    struct hs_opts o = { 0 };
    char buf[16];
    int ret;

    section("garbage record after the handshake: fatal alert");
    handshake(sctx, g_cctx, NULL, &r1);
    o.offer = r1.client_sess;
    o.keep = 1;
    handshake(sctx, g_cctx, &o, &r2);
    memcpy(junk, junk_hdr, sizeof(junk_hdr));
    memset(junk + sizeof(junk_hdr), 0x41, 32);
    printf("BIO_write = %d\n", BIO_write(SSL_get_wbio(r2.c), junk, sizeof(junk)));
    ret = SSL_read(r2.s, buf, sizeof(buf));
    printf("server SSL_read = %d error=%d\n", ret, SSL_get_error(r2.s, ret));
    ERR_clear_error();
    print_stats(sctx);
    ret = SSL_read(r2.c, buf, sizeof(buf));
    printf("client SSL_read = %d error=%d\n", ret, SSL_get_error(r2.c, ret));
    ERR_clear_error();
    print_sess("client session", r1.client_sess);
    printf("free both\n");
    free_pair(r2.c, r2.s);
    print_stats(sctx);
    resume(sctx, r1.client_sess);
    SSL_SESSION_free(r1.client_sess);
    SSL_SESSION_free(r2.client_sess);
    free_ctx(sctx);
}

/* Step the handshake a fixed number of rounds, then free both sides. */
static void test_abandoned(int ver, int rounds)
{
    SSL_CTX *sctx = server(ver);
    struct hs_result r1;
    SSL *c, *s;
    BIO *bc, *bs;
    int i;

    printf("\n== resumption abandoned after %d round(s) ==\n", rounds);
    handshake(sctx, g_cctx, NULL, &r1);
    c = new_ssl(g_cctx, 0);
    s = new_ssl(sctx, 1);
    CHECK_SETUP(BIO_new_bio_pair(&bc, 0, &bs, 0));
    SSL_set_bio(c, bc, bc);
    SSL_set_bio(s, bs, bs);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    CHECK_SETUP(SSL_set_session(c, r1.client_sess));
    for (i = 0; i < rounds; i++) {
        SSL_do_handshake(c);
        SSL_do_handshake(s);
    }
    printf("client in_init=%d server in_init=%d\n", SSL_in_init(c), SSL_in_init(s));
    printf("free both\n");
    free_pair(c, s);
    ERR_clear_error();
    print_stats(sctx);
    print_sess("client session", r1.client_sess);
    resume(sctx, r1.client_sess);
    SSL_SESSION_free(r1.client_sess);
    free_ctx(sctx);
}

int main(void)
{
    static const int vers[] = { TLS1_2_VERSION, TLS1_3_VERSION };
    size_t i;

    common_init();
    g_cctx = new_client_ctx(0, 0);
    /* the client ctx gets a remove_cb too: libssl calls it on unclean frees */
    set_cbs(g_cctx, 'B', 0, 1, 0);
    cbc_reset();
    for (i = 0; i < 2; i++) {
        printf("\n######## %s ########\n", ver_name(vers[i]));
        test_both_unclean(vers[i]);
        test_server_unclean(vers[i]);
        test_client_unclean(vers[i]);
        test_clean(vers[i]);
        test_bad_record(vers[i]);
        test_abandoned(vers[i], 1);
        test_abandoned(vers[i], 2);
    }
    print_stats(g_cctx);
    SSL_CTX_free(g_cctx);
    common_cleanup();
    printf("end\n");
    return 0;
}
