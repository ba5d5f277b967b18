/*
 * Every session cache mode flag, on the server ctx (TLS 1.2 session IDs and
 * TLS 1.3 stateful tickets) and on the client ctx (TLS 1.2 and 1.3): one
 * full handshake and one resumption attempt each, with all callbacks
 * logging, the stats, and what was reused.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>

static const struct { long mode; const char *name; } modes[] = {
    { SSL_SESS_CACHE_OFF, "OFF" },
    { SSL_SESS_CACHE_CLIENT, "CLIENT" },
    { SSL_SESS_CACHE_SERVER, "SERVER" },
    { SSL_SESS_CACHE_BOTH, "BOTH" },
    { SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_AUTO_CLEAR, "SERVER|NO_AUTO_CLEAR" },
    { SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_LOOKUP, "SERVER|NO_INTERNAL_LOOKUP" },
    { SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE, "SERVER|NO_INTERNAL_STORE" },
    { SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL, "SERVER|NO_INTERNAL" },
    { SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_UPDATE_TIME, "SERVER|UPDATE_TIME" },
    { SSL_SESS_CACHE_NO_INTERNAL, "NO_INTERNAL without SERVER" },
    { SSL_SESS_CACHE_BOTH | SSL_SESS_CACHE_NO_INTERNAL | SSL_SESS_CACHE_NO_AUTO_CLEAR
      | SSL_SESS_CACHE_UPDATE_TIME, "all flags" },
};

static void one(long mode, const char *name, int ver, int on_client)
{
    SSL_CTX *sctx = new_server_ctx(ver, ver);
    SSL_CTX *cctx = new_client_ctx(0, 0);
    SSL_CTX *mctx = on_client ? cctx : sctx;
    struct hs_result r1, r2;
    struct hs_opts o = { 0 };
    int i;

    printf("\n== %s mode %s on the %s ctx ==\n", ver_name(ver), name,
           on_client ? "client" : "server");
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    printf("set_session_cache_mode = 0x%lx\n",
           (unsigned long)SSL_CTX_set_session_cache_mode(mctx, mode));
    cbc_reset();
    cbc.new_ret = 1;
    cbc.new_store = 1;
    cbc.get_mode = GET_COPY1;
    set_cbs(sctx, 'A', 1, 1, 1);
    set_cbs(cctx, 'B', 1, 1, 1);
    handshake(sctx, cctx, NULL, &r1);
    print_stats(sctx);
    print_stats(cctx);
    o.offer = r1.client_sess;
    handshake(sctx, cctx, &o, &r2);
    print_stats(sctx);
    print_stats(cctx);
    store_print();
    for (i = 0; i < store_count(); i++)
        print_sess("  stored", store_get(i));
    SSL_SESSION_free(r1.client_sess);
    SSL_SESSION_free(r2.client_sess);
    printf("SSL_CTX_free server %s\n", ctx_label(sctx));
    SSL_CTX_free(sctx);
    printf("SSL_CTX_free client %s\n", ctx_label(cctx));
    SSL_CTX_free(cctx);
    printf("store_clear\n");
    store_clear();
}

int main(void)
{
    size_t i;

    common_init();
    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        one(modes[i].mode, modes[i].name, TLS1_2_VERSION, 0);
        one(modes[i].mode, modes[i].name, TLS1_3_VERSION, 0);
        one(modes[i].mode, modes[i].name, TLS1_2_VERSION, 1);
        one(modes[i].mode, modes[i].name, TLS1_3_VERSION, 1);
    }
    common_cleanup();
    printf("end\n");
    return 0;
}
