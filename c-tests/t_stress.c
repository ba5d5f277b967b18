/*
 * Multi-threaded stress on ONE server ctx: 4 threads doing handshakes with
 * resumption (TLS 1.2 session IDs and TLS 1.3 stateful tickets) while also
 * calling SSL_CTX_add_session / SSL_CTX_remove_session /
 * SSL_CTX_flush_sessions / SSL_has_matching_session_id, with a small cache
 * so evictions happen, and with sessions marked not resumable and added
 * back (one of them by all threads at once).  The output is not compared: the program checks its
 * own invariants (no failed handshake, some resumptions, every labelled
 * session freed exactly once) and prints "stress ok", else exits 1.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define THREADS 4
#define ROUNDS 300

static SSL_CTX *g_sctx;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static long g_new, g_removed, g_failed, g_resumed, g_matches;
static SSL_SESSION *g_shared;

static int new_cb(SSL *ssl, SSL_SESSION *s)
{
    (void)ssl;
    slabel(s);
    pthread_mutex_lock(&g_mu);
    g_new++;
    pthread_mutex_unlock(&g_mu);
    return 0;
}

static void remove_cb(SSL_CTX *ctx, SSL_SESSION *s)
{
    (void)ctx;
    (void)s;
    pthread_mutex_lock(&g_mu);
    g_removed++;
    pthread_mutex_unlock(&g_mu);
}

static SSL_SESSION *get_cb(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    (void)ssl; (void)id; (void)len; (void)copy;
    return NULL;
}

static void *worker(void *arg)
{
    long t = (long)arg;
    SSL_CTX *cctx = new_client_ctx(0, t % 2 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL *probe = new_ssl(g_sctx, 1);
    SSL_SESSION *prev = NULL;
    long failed = 0, resumed = 0, matches = 0;
    int i;

    for (i = 0; i < ROUNDS; i++) {
        struct hs_result r;
        struct hs_opts o = { 0 };

        o.quiet = 1;
        o.offer = (i % 3 != 0) ? prev : NULL;
        o.unclean = (i % 17 == 5);
        if (!handshake(g_sctx, cctx, &o, &r))
            failed++;
        if (r.srv_reused)
            resumed++;
        if (r.client_sess != NULL)
            slabel(r.client_sess);
        SSL_SESSION_free(prev);
        prev = r.client_sess;

        if (i % 10 == 0) {
            SSL_SESSION *s = make_session((unsigned char)(0x10 * t + i % 16), 32,
                                          SSL_version(probe), 0, 1000 + i);
            unsigned int len;
            const unsigned char *id = SSL_SESSION_get_id(s, &len);

            slabel(s);
            SSL_CTX_add_session(g_sctx, s);
            if (SSL_has_matching_session_id(probe, id, len))
                matches++;
            if (i % 20 == 0) {
                SSL_CTX_remove_session(g_sctx, s);
                /* marked not resumable now, and added back (sesscache
                 * parks it in libssl's own table too) */
                SSL_CTX_add_session(g_sctx, s);
                if (i % 40 == 0)
                    SSL_CTX_remove_session(g_sctx, s);
            }
            SSL_SESSION_free(s);
        }
        /* one marked session that every thread adds and removes at once */
        if (i % 7 == 0)
            SSL_CTX_add_session(g_sctx, g_shared);
        if (i % 7 == 3)
            SSL_CTX_remove_session(g_sctx, g_shared);
        if (i % 50 == 49)
            SSL_CTX_flush_sessions(g_sctx, (long)T0 + 100000);
        if (i % 25 == 7)
            SSL_CTX_flush_sessions(g_sctx, (long)T0);
    }
    SSL_SESSION_free(prev);
    SSL_free(probe);
    SSL_CTX_free(cctx);
    pthread_mutex_lock(&g_mu);
    g_failed += failed;
    g_resumed += resumed;
    g_matches += matches;
    pthread_mutex_unlock(&g_mu);
    return NULL;
}

int main(void)
{
    pthread_t th[THREADS];
    long labelled, freed, freed_unlabelled;
    int i, bad = 0;

    common_init();
    g_quiet_free = 1;
    g_sctx = new_server_ctx(0, 0);
    SSL_CTX_set_options(g_sctx, SSL_OP_NO_TICKET);
    SSL_CTX_sess_set_cache_size(g_sctx, 40);
    SSL_CTX_sess_set_new_cb(g_sctx, new_cb);
    SSL_CTX_sess_set_remove_cb(g_sctx, remove_cb);
    SSL_CTX_sess_set_get_cb(g_sctx, get_cb);
    g_shared = make_session(0xEE, 32, TLS1_2_VERSION, 0, 100000);
    slabel(g_shared);
    SSL_CTX_remove_session(g_sctx, g_shared); /* marks it */
    for (i = 0; i < THREADS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(long)i) != 0)
            setup_failed("pthread_create");
    for (i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    printf("before SSL_CTX_free: number=%ld hits=%ld cache_full=%ld\n",
           SSL_CTX_sess_number(g_sctx), SSL_CTX_sess_hits(g_sctx),
           SSL_CTX_sess_cache_full(g_sctx));
    SSL_CTX_free(g_sctx);
    SSL_SESSION_free(g_shared);
    common_cleanup();
    label_counters(&labelled, &freed, &freed_unlabelled);
    printf("new_cb=%ld remove_cb=%ld failed=%ld resumed=%ld matches=%ld"
           " labelled=%ld freed=%ld\n", g_new, g_removed, g_failed, g_resumed,
           g_matches, labelled, freed);
    if (g_failed != 0) {
        printf("PROBLEM: %ld handshakes failed\n", g_failed);
        bad = 1;
    }
    if (g_resumed == 0) {
        printf("PROBLEM: no handshake was resumed\n");
        bad = 1;
    }
    if (g_matches == 0) {
        printf("PROBLEM: SSL_has_matching_session_id never matched\n");
        bad = 1;
    }
    if (labelled != freed) {
        printf("PROBLEM: %ld sessions labelled, %ld freed\n", labelled, freed);
        bad = 1;
    }
    if (g_new == 0 || g_removed == 0) {
        printf("PROBLEM: callbacks not called\n");
        bad = 1;
    }
    if (bad)
        return 1;
    printf("stress ok\n");
    return 0;
}
