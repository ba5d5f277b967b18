/*
 * SNI context switching: a servername callback moves the connection to a
 * second SSL_CTX (SSL_set_SSL_CTX) that has its own callbacks. The session
 * cache, the new/get/remove callbacks and the hit counters stay with the
 * original (session) ctx; accept/accept_good move to the new ctx.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>
#include <string.h>

static SSL_CTX *g_b;

static int servername_cb(SSL *s, int *al, void *arg)
{
    const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);

    (void)al; (void)arg;
    if (name != NULL && strcmp(name, "b.test") == 0) {
        SSL_CTX *n = SSL_set_SSL_CTX(s, g_b);

        printf("servername %s %s -> %s\n", ssl_label(s), name, ctx_label(n));
    } else {
        printf("servername %s %s (stay)\n", ssl_label(s), name ? name : "none");
    }
    return SSL_TLSEXT_ERR_OK;
}

static void stats2(SSL_CTX *a)
{
    print_stats(a);
    print_stats(g_b);
}

static void run(int ver, int other_sid_ctx, long bmode)
{
    SSL_CTX *a = new_server_ctx(ver, ver);
    SSL_CTX *cctx = new_client_ctx(0, 0);
    struct hs_result r1, r2;
    struct hs_opts o = { 0 };
    char buf[128];

    g_b = new_server_ctx(ver, ver);
    snprintf(buf, sizeof(buf), "%s, %s session id context on B, B mode 0x%lx",
             ver_name(ver), other_sid_ctx ? "other" : "same", bmode);
    section(buf);
    SSL_CTX_set_options(a, SSL_OP_NO_TICKET);
    SSL_CTX_set_options(g_b, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(g_b, bmode);
    if (other_sid_ctx)
        CHECK_SETUP(SSL_CTX_set_session_id_context(g_b, (const unsigned char *)"B", 1));
    SSL_CTX_set_tlsext_servername_callback(a, servername_cb);
    SSL_CTX_set_tlsext_servername_callback(g_b, servername_cb);
    cbc_reset();
    set_cbs(a, 'A', 1, 1, 1);
    set_cbs(g_b, 'B', 1, 1, 1);

    o.sni = "b.test";
    handshake(a, cctx, &o, &r1);
    stats2(a);
    printf("resume with SNI b.test\n");
    o.offer = r1.client_sess;
    handshake(a, cctx, &o, &r2);
    stats2(a);
    SSL_SESSION_free(r2.client_sess);
    printf("resume, client sets SNI a.test\n");
    o.sni = "a.test";
    handshake(a, cctx, &o, &r2);
    stats2(a);
    SSL_SESSION_free(r2.client_sess);
    printf("resume directly on B (its own cache)\n");
    o.sni = "b.test";
    handshake(g_b, cctx, &o, &r2);
    stats2(a);
    SSL_SESSION_free(r2.client_sess);
    SSL_SESSION_free(r1.client_sess);
    printf("flush B (0)\n");
    SSL_CTX_flush_sessions(g_b, 0);
    printf("flush A (0)\n");
    SSL_CTX_flush_sessions(a, 0);
    stats2(a);
    printf("SSL_CTX_free %s\n", ctx_label(g_b));
    SSL_CTX_free(g_b);
    g_b = NULL;
    printf("SSL_CTX_free %s\n", ctx_label(a));
    SSL_CTX_free(a);
    SSL_CTX_free(cctx);
}

int main(void)
{
    common_init();
    run(TLS1_2_VERSION, 0, SSL_SESS_CACHE_SERVER);
    run(TLS1_2_VERSION, 1, SSL_SESS_CACHE_SERVER);
    run(TLS1_2_VERSION, 0, SSL_SESS_CACHE_OFF);
    run(TLS1_3_VERSION, 0, SSL_SESS_CACHE_SERVER);
    run(TLS1_3_VERSION, 1, SSL_SESS_CACHE_SERVER);
    common_cleanup();
    printf("end\n");
    return 0;
}
