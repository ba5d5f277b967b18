/*
 * Session-ID conflicts: a generate_session_id callback handing out fixed
 * IDs makes a handshake fail when the cache already holds that ID (libssl
 * asks SSL_has_matching_session_id from inside ssl_generate_session_id).
 *
 * Its own program because with a libssl linked -Bsymbolic (upstream's
 * default) that internal call never reaches sesscache, so the conflict goes
 * unseen there: a documented difference, skipped by
 * `run.sh --libssl-dir` runs against such a build.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>
#include <string.h>

static void add(SSL_CTX *ctx, SSL_SESSION *s)
{
    printf("add %s (id=%s) -> %d number=%ld\n", slabel(s), sidlabel(s),
           SSL_CTX_add_session(ctx, s), SSL_CTX_sess_number(ctx));
}

static void rem(SSL_CTX *ctx, SSL_SESSION *s)
{
    printf("remove %s -> %d number=%ld\n", slabel(s),
           SSL_CTX_remove_session(ctx, s), SSL_CTX_sess_number(ctx));
}

static void free_ctx(SSL_CTX *ctx)
{
    printf("SSL_CTX_free %s\n", ctx_label(ctx));
    SSL_CTX_free(ctx);
}

/* A generate_session_id callback handing out fixed IDs: a conflict with a
 * cached session makes the handshake fail. */
static unsigned char g_next_gen_id;

static int gen_id(SSL *ssl, unsigned char *id, unsigned int *len)
{
    unsigned int maxlen = *len;

    memset(id, 0x5A, maxlen);
    id[0] = g_next_gen_id;
    *len = 20;
    printf("gen_id %s maxlen=%u -> %s has_matching=%d\n", ssl_label(ssl),
           maxlen, idlabel(id, 20), SSL_has_matching_session_id(ssl, id, 20));
    return 1;
}

static void test_generate_id(void)
{
    SSL_CTX *ctx = new_cache_ctx();
    SSL_CTX *cctx = new_client_ctx(0, 0);
    struct hs_result r;
    struct hs_opts o = { 0 };
    SSL_SESSION *pre;

    section("generate_session_id callback and ID conflicts (TLS 1.2)");
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_generate_session_id(ctx, gen_id);
    set_cbs(ctx, 'A', 1, 1, 0);
    g_next_gen_id = 1;
    handshake(ctx, cctx, NULL, &r);
    SSL_SESSION_free(r.client_sess);
    printf("same id again -> conflict\n");
    handshake(ctx, cctx, NULL, &r);
    SSL_SESSION_free(r.client_sess);
    print_stats(ctx);
    printf("a hand-added session with the next id -> conflict\n");
    g_next_gen_id = 2;
    pre = make_session(2, 20, TLS1_2_VERSION, 0, 1000);
    {
        unsigned char pid[20];

        memset(pid, 0x5A, sizeof(pid));
        pid[0] = 2;
        CHECK_SETUP(SSL_SESSION_set1_id(pre, pid, sizeof(pid)));
    }
    add(ctx, pre);
    handshake(ctx, cctx, NULL, &r);
    SSL_SESSION_free(r.client_sess);
    rem(ctx, pre);
    printf("after removal -> fine\n");
    o.offer = NULL;
    handshake(ctx, cctx, &o, &r);
    SSL_SESSION_free(r.client_sess);
    print_stats(ctx);
    SSL_SESSION_free(pre);
    free_ctx(ctx);
    SSL_CTX_free(cctx);
}

int main(void)
{
    common_init();
    test_generate_id();
    common_cleanup();
    printf("end\n");
    return 0;
}
