/*
 * The automatic flush of expired sessions every 255 accept_good on the
 * server ctx, and its absence with SSL_SESS_CACHE_NO_AUTO_CLEAR.  Expired
 * sessions are planted in the cache, then 300 handshakes run; a line is
 * printed only for handshakes during which a session was removed.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>
#include <string.h>

static char g_removed[4096];
static int g_nremoved;

static void remove_cb(SSL_CTX *ctx, SSL_SESSION *s)
{
    size_t l = strlen(g_removed);

    (void)ctx;
    g_nremoved++;
    /* only planted sessions are labelled: print those, count the rest */
    if (is_labelled(s) && l + 16 < sizeof(g_removed))
        snprintf(g_removed + l, sizeof(g_removed) - l, " %s", slabel(s));
}

static void run(int ver, long mode, int handshakes)
{
    SSL_CTX *sctx = new_server_ctx(ver, ver);
    SSL_CTX *cctx = new_client_ctx(0, 0);
    SSL_SESSION *planted[6];
    int i;

    printf("\n== %s mode 0x%lx, %d handshakes ==\n", ver_name(ver), mode,
           handshakes);
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(sctx, mode);
    SSL_CTX_sess_set_remove_cb(sctx, remove_cb);
    /* expired: S a,b,c; not expired: d,e (far future), f expires in 2 days */
    for (i = 0; i < 6; i++) {
        static const long off[6] = { -100000, -50000, -3000, 0, 100000, 0 };
        static const long to[6] = { 100, 100, 100, 100000, 100, 172800 };

        planted[i] = make_session((unsigned char)(0xc0 + i), 32, ver, off[i], to[i]);
        printf("plant %s add=%d\n", slabel(planted[i]),
               SSL_CTX_add_session(sctx, planted[i]));
        SSL_SESSION_free(planted[i]);
    }
    print_stats(sctx);
    g_quiet_free = 2;
    for (i = 1; i <= handshakes; i++) {
        struct hs_result r;
        struct hs_opts o = { 0 };

        o.quiet = 1;
        g_removed[0] = '\0';
        g_nremoved = 0;
        if (!handshake(sctx, cctx, &o, &r))
            printf("handshake %d FAILED\n", i);
        SSL_SESSION_free(r.client_sess);
        if (g_nremoved > 0)
            printf("handshake %d: %d removed:%s accept_good=%ld number=%ld\n",
                   i, g_nremoved, g_removed, SSL_CTX_sess_accept_good(sctx),
                   SSL_CTX_sess_number(sctx));
    }
    g_quiet_free = 0;
    print_stats(sctx);
    printf("SSL_CTX_free\n");
    g_quiet_free = 2;
    g_removed[0] = '\0';
    g_nremoved = 0;
    SSL_CTX_free(sctx);
    g_quiet_free = 0;
    printf("removed at SSL_CTX_free: %d:%s\n", g_nremoved, g_removed);
    SSL_CTX_free(cctx);
}

int main(void)
{
    common_init();
    run(TLS1_2_VERSION, SSL_SESS_CACHE_SERVER, 300);
    run(TLS1_2_VERSION, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_AUTO_CLEAR, 300);
    run(TLS1_3_VERSION, SSL_SESS_CACHE_SERVER, 300);
    run(TLS1_3_VERSION, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_AUTO_CLEAR, 300);
    run(TLS1_2_VERSION, SSL_SESS_CACHE_BOTH, 260);
    common_cleanup();
    printf("end\n");
    return 0;
}
