/*
 * Contexts freed and created again, often at the same address: every ctx
 * must see its own cache, defaults and callbacks only, also from a thread
 * that used the freed ctx before (sesscache remembers each thread's last
 * ctx; a freed ctx must never be mistaken for the new one at its address).
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <pthread.h>
#include <stdio.h>

/* what SSL_version() reports for a new server SSL, so lookups can match */
#define VER TLS1_3_VERSION

static void show(const char *who, SSL_CTX *ctx, SSL_SESSION *probe)
{
    SSL *ssl = SSL_new(ctx);
    unsigned int len = 0;
    const unsigned char *id = SSL_SESSION_get_id(probe, &len);

    CHECK_SETUP(ssl != NULL);
    printf("%s: number=%ld size=%ld mode=%ld has(%s)=%d remove_cb=%s\n", who,
           SSL_CTX_sess_number(ctx), SSL_CTX_sess_get_cache_size(ctx),
           SSL_CTX_get_session_cache_mode(ctx), sidlabel(probe),
           SSL_has_matching_session_id(ssl, id, len),
           SSL_CTX_sess_get_remove_cb(ctx) != NULL ? "set" : "none");
    SSL_free(ssl);
}

/* ---- a second thread that looks at whatever ctx main hands it ---------- */

static pthread_barrier_t step;
static SSL_CTX *shared_ctx;
static SSL_SESSION *shared_probe;

static void *looker(void *arg)
{
    (void)arg;
    for (int round = 0; round < 4; round++) {
        pthread_barrier_wait(&step); /* main has set shared_ctx */
        show("  thread", shared_ctx, shared_probe);
        fflush(stdout);
        pthread_barrier_wait(&step); /* main may free it now */
    }
    return NULL;
}

int main(void)
{
    SSL_SESSION *sess[8];
    pthread_t tid;
    int same_address = 0;

    common_init();
    for (int i = 0; i < 8; i++)
        sess[i] = make_session((unsigned char)(0x40 + i), 32, VER, i, 1000);

    section("created and freed in turn");
    for (int round = 0; round < 4; round++) {
        SSL_CTX *ctx = new_cache_ctx();

        printf("round %d\n", round);
        show("  new", ctx, sess[0]);
        SSL_CTX_sess_set_cache_size(ctx, 3 + round);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER |
                                                (round % 2 ? SSL_SESS_CACHE_NO_AUTO_CLEAR : 0));
        for (int i = 0; i <= round; i++)
            printf("  add %s -> %d\n", slabel(sess[i]), SSL_CTX_add_session(ctx, sess[i]));
        show("  filled", ctx, sess[0]);
        SSL_CTX_free(ctx);
    }

    section("a thread keeps asking while main frees and creates");
    CHECK_SETUP(pthread_barrier_init(&step, NULL, 2) == 0);
    CHECK_SETUP(pthread_create(&tid, NULL, looker, NULL) == 0);
    for (int round = 0; round < 4; round++) {
        SSL_CTX *ctx = new_cache_ctx();
        const void *before = shared_ctx;

        if (round % 2 == 0)
            SSL_CTX_sess_set_remove_cb(ctx, NULL);
        for (int i = 0; i < round; i++)
            SSL_CTX_add_session(ctx, sess[4 + i]);
        shared_ctx = ctx;
        shared_probe = sess[4];
        same_address += before == (const void *)ctx;
        printf("round %d\n", round);
        fflush(stdout);
        pthread_barrier_wait(&step);
        pthread_barrier_wait(&step);
        show("  main", ctx, sess[4]);
        SSL_CTX_free(ctx);
    }
    CHECK_SETUP(pthread_join(tid, NULL) == 0);
    pthread_barrier_destroy(&step);
    /* Not part of the compared output: malloc decides. */
    fprintf(stderr, "t_ctx_reuse: %d of 3 new contexts reused the freed one's address\n",
            same_address);

    section("end");
    for (int i = 0; i < 8; i++)
        SSL_SESSION_free(sess[i]);
    common_cleanup();
    return 0;
}
