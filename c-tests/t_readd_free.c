/*
 * SSL_CTX_free while a session marked not resumable and added back is
 * cached with others: the remove callbacks come in expiry order, then the
 * frees (see t_readd.c for the rest of such a session's life).
 *
 * Skipped against a libssl linked -Bsymbolic (make test-bsymbolic): there
 * libssl's own flush in SSL_CTX_free removes the session parked in its
 * table before our ex_data callback removes the others, so its remove
 * callback comes first (README, "libssl linked with -Bsymbolic").
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>

static void test_free(int version, SSL_CTX *cctx)
{
    SSL_CTX *sctx = new_server_ctx(version, version);
    struct hs_result r1, r2, r3;
    SSL_SESSION *s;

    section(version == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3");
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    cbc_reset();
    cbc.new_store = 1;
    set_cbs(sctx, 'A', 1, 1, 0);
    own_session_times(sctx); /* expiry order independent of the clock */
    handshake(sctx, cctx, NULL, &r1);
    handshake(sctx, cctx, NULL, &r2);
    handshake(sctx, cctx, NULL, &r3);
    /* the server's copy of the second client session */
    s = store_find_server_copy(r2.client_sess);
    CHECK_SETUP(s != NULL);
    printf("remove %s -> %d\n", slabel(s), SSL_CTX_remove_session(sctx, s));
    printf("add %s -> %d (resumable=%d)\n", slabel(s), SSL_CTX_add_session(sctx, s),
           SSL_SESSION_is_resumable(s));
    print_stats(sctx);
    SSL_SESSION_free(r1.client_sess);
    SSL_SESSION_free(r2.client_sess);
    SSL_SESSION_free(r3.client_sess);
    printf("SSL_CTX_free\n");
    SSL_CTX_free(sctx);
    store_clear();
}

int main(void)
{
    SSL_CTX *c12, *c13;

    common_init();
    c12 = new_client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    c13 = new_client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    CHECK_SETUP(c12 != NULL && c13 != NULL);
    test_free(TLS1_2_VERSION, c12);
    test_free(TLS1_3_VERSION, c13);
    SSL_CTX_free(c12);
    SSL_CTX_free(c13);
    common_cleanup();
    printf("end\n");
    return 0;
}
