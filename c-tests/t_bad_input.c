/*
 * LIBRARY-ONLY: bad input to every function sesscache exports. Plain libssl
 * crashes on most of these (it dereferences NULL), so this program is not
 * compared with plain libssl; under the library each call must return a
 * safe answer (libssl's failure value) and the program must reach "done".
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>

static int g_new_calls;
static SSL_SESSION *g_kept[8];

static int new_cb_returns_garbage(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    if (g_new_calls < 8)
        g_kept[g_new_calls] = sess;
    g_new_calls++;
    return -7; /* non-zero: libssl treats it as "kept", and so must we */
}

static SSL_SESSION *get_cb_garbage_copy(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    (void)ssl;
    (void)id;
    (void)len;
    *copy = 42; /* non-zero: a reference is taken for us */
    return NULL;
}

int main(void)
{
    unsigned char id[64] = { 0 };
    SSL_CTX *ctx;
    SSL *ssl;
    SSL_SESSION *sess;
    long big;

    common_init();
    section("NULL SSL_CTX");
    SSL_CTX_sess_set_new_cb(NULL, NULL);
    SSL_CTX_sess_set_remove_cb(NULL, NULL);
    SSL_CTX_sess_set_get_cb(NULL, NULL);
    printf("get_new_cb(NULL) is NULL: %s\n", SSL_CTX_sess_get_new_cb(NULL) == NULL ? "yes" : "no");
    printf("get_remove_cb(NULL) is NULL: %s\n", SSL_CTX_sess_get_remove_cb(NULL) == NULL ? "yes" : "no");
    printf("get_get_cb(NULL) is NULL: %s\n", SSL_CTX_sess_get_get_cb(NULL) == NULL ? "yes" : "no");
    printf("add_session(NULL, NULL) = %d\n", SSL_CTX_add_session(NULL, NULL));
    printf("remove_session(NULL, NULL) = %d\n", SSL_CTX_remove_session(NULL, NULL));
    SSL_CTX_flush_sessions(NULL, 0);
    printf("sess_number(NULL) = %ld\n", SSL_CTX_sess_number(NULL));
    printf("set_cache_mode(NULL) = %ld\n", SSL_CTX_set_session_cache_mode(NULL, 2));

    section("NULL SSL and SSL_SESSION");
    printf("has_matching(NULL ssl) = %d\n", SSL_has_matching_session_id(NULL, id, 8));
    printf("set_time(NULL) = %ld\n", SSL_SESSION_set_time(NULL, 5));
    printf("set_timeout(NULL) = %ld\n", SSL_SESSION_set_timeout(NULL, 5));
    printf("set_protocol_version(NULL) = %d\n", SSL_SESSION_set_protocol_version(NULL, TLS1_2_VERSION));
    printf("set_SSL_CTX(NULL, NULL) is NULL: %s\n", SSL_set_SSL_CTX(NULL, NULL) == NULL ? "yes" : "no");

    section("a real ctx, bad sessions and lengths");
    ctx = new_server_ctx(0, 0);
    CHECK_SETUP(ctx != NULL);
    ssl = SSL_new(ctx);
    CHECK_SETUP(ssl != NULL);
    printf("add_session(ctx, NULL) = %d\n", SSL_CTX_add_session(ctx, NULL));
    printf("remove_session(ctx, NULL) = %d\n", SSL_CTX_remove_session(ctx, NULL));
    printf("has_matching(ssl, NULL, 8) = %d\n", SSL_has_matching_session_id(ssl, NULL, 8));
    printf("has_matching(ssl, id, 33) = %d\n", SSL_has_matching_session_id(ssl, id, 33));
    printf("has_matching(ssl, id, 4294967295) = %d\n", SSL_has_matching_session_id(ssl, id, 0xffffffffu));
    printf("set_cache_size(-5) = %ld, size now %ld\n", SSL_CTX_sess_set_cache_size(ctx, -5),
           SSL_CTX_sess_get_cache_size(ctx));
    big = SSL_CTX_sess_set_cache_size(ctx, 0x7fffffffffffffffL);
    printf("set_cache_size(LONG_MAX) = %ld, size now %ld\n", big, SSL_CTX_sess_get_cache_size(ctx));
    sess = make_session(1, 32, TLS1_2_VERSION, 0, 0x7fffffffffffffffL);
    printf("add a session whose expiry overflows = %d\n", SSL_CTX_add_session(ctx, sess));
    SSL_CTX_flush_sessions(ctx, 0x7fffffffffffffffL);
    printf("after flush(LONG_MAX) number = %ld (never expires)\n", SSL_CTX_sess_number(ctx));
    printf("set_time(-1) = %ld\n", SSL_SESSION_set_time(sess, -1));
    printf("set_timeout(-1) = %ld\n", SSL_SESSION_set_timeout(sess, -1));
    SSL_SESSION_free(sess);

    section("callbacks returning unusual values");
    SSL_CTX_sess_set_new_cb(ctx, new_cb_returns_garbage);
    SSL_CTX_sess_set_get_cb(ctx, get_cb_garbage_copy);
    {
        SSL_CTX *cctx = new_client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
        struct hs_result r;
        struct hs_opts o = { 0 };

        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        handshake(ctx, cctx, NULL, &r);
        o.offer = r.client_sess;
        handshake(ctx, cctx, &o, &r);
        printf("new_cb calls: %d\n", g_new_calls);
        /* The references the new callback kept are ours to release. */
        for (int i = 0; i < g_new_calls && i < 8; i++)
            SSL_SESSION_free(g_kept[i]);
        SSL_SESSION_free(o.offer);
        SSL_SESSION_free(r.client_sess);
        SSL_CTX_free(cctx);
    }
    SSL_free(ssl);
    printf("SSL_CTX_free\n");
    SSL_CTX_free(ctx);

    /* libssl corrupts its lists (and aborts) when one session sits in two
     * caches; under the library both caches keep it, a version change is
     * seen by both (libssl compares the version it reads from the session
     * itself) and so is a new timeout. */
    section("one session in two contexts, its version and timeout changed");
    {
        SSL_CTX *a = new_cache_ctx(), *b = new_cache_ctx();
        SSL *sa = new_ssl(a, 1), *sb = new_ssl(b, 1);
        SSL_SESSION *s = make_session(0x77, 32, TLS1_2_VERSION, 0, 1000);
        unsigned int len;
        const unsigned char *sid = SSL_SESSION_get_id(s, &len);

        int ra, rb;

        ra = SSL_CTX_add_session(a, s);
        rb = SSL_CTX_add_session(b, s);
        printf("add to both: %d %d\n", ra, rb);
        ra = SSL_has_matching_session_id(sa, sid, len);
        rb = SSL_has_matching_session_id(sb, sid, len);
        printf("TLS 1.3 lookups: %d %d\n", ra, rb);
        printf("set_protocol_version(TLS 1.3) = %d\n",
               SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION));
        ra = SSL_has_matching_session_id(sa, sid, len);
        rb = SSL_has_matching_session_id(sb, sid, len);
        printf("TLS 1.3 lookups: %d %d\n", ra, rb);
        /* expiry T0 + 1000 -> T0 + 10: a flush at T0 + 100 finds it in both */
        printf("set_timeout(10) = %ld\n", SSL_SESSION_set_timeout(s, 10));
        SSL_CTX_flush_sessions(a, (long)T0 + 100);
        SSL_CTX_flush_sessions(b, (long)T0 + 100);
        printf("after flushes at T0+100: %ld %ld\n", SSL_CTX_sess_number(a),
               SSL_CTX_sess_number(b));
        ra = SSL_CTX_remove_session(a, s);
        rb = SSL_CTX_remove_session(b, s);
        printf("remove from both: %d %d\n", ra, rb);
        SSL_free(sa);
        SSL_free(sb);
        SSL_CTX_free(a);
        SSL_CTX_free(b);
        SSL_SESSION_free(s);
    }
    common_cleanup();
    printf("done\n");
    return 0;
}
