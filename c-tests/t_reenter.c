/*
 * LIBRARY ONLY: plain libssl calls remove_cb with the cache lock held
 * during eviction and flushes, so re-entering the cache from remove_cb
 * deadlocks (or fails) there.  run.sh runs this only with the library, under
 * a timeout.  A remove_cb that removes another cached session, and one that
 * flushes the whole cache, are triggered from explicit removal, eviction,
 * SSL_CTX_flush_sessions and SSL_CTX_free.  Prints what happened and "done".
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>

#define NS 6

static SSL_SESSION *g_s[NS];
static SSL_SESSION *g_partner[NS]; /* removing g_s[i] removes g_partner[i] */
static int g_flush_once;           /* remove_cb flushes the cache once */
static int g_depth;

static void remove_cb(SSL_CTX *ctx, SSL_SESSION *s)
{
    int i;

    g_depth++;
    printf("%*sremove_cb %s %s\n", 2 * g_depth, "", ctx_label(ctx), slabel(s));
    for (i = 0; i < NS; i++) {
        if (g_s[i] == s && g_partner[i] != NULL) {
            SSL_SESSION *p = g_partner[i];

            g_partner[i] = NULL;
            printf("%*s-> SSL_CTX_remove_session(%s)\n", 2 * g_depth, "", slabel(p));
            printf("%*s   = %d\n", 2 * g_depth, "", SSL_CTX_remove_session(ctx, p));
        }
    }
    if (g_flush_once) {
        g_flush_once = 0;
        printf("%*s-> SSL_CTX_flush_sessions(0)\n", 2 * g_depth, "");
        SSL_CTX_flush_sessions(ctx, 0);
        printf("%*s   number=%ld\n", 2 * g_depth, "", SSL_CTX_sess_number(ctx));
    }
    g_depth--;
}

static SSL_CTX *setup(const char *what, long size)
{
    SSL_CTX *ctx = new_server_ctx(0, 0);
    int i;

    section(what);
    SSL_CTX_sess_set_remove_cb(ctx, remove_cb);
    for (i = 0; i < NS; i++) {
        g_s[i] = make_session((unsigned char)(0xd0 + i), 32, TLS1_2_VERSION,
                              0, 100 * (i + 1));
        g_partner[i] = NULL;
        printf("add %s = %d\n", slabel(g_s[i]), SSL_CTX_add_session(ctx, g_s[i]));
    }
    if (size)
        SSL_CTX_sess_set_cache_size(ctx, size);
    g_flush_once = 0;
    return ctx;
}

static void finish(SSL_CTX *ctx)
{
    int i;

    printf("number=%ld\n", SSL_CTX_sess_number(ctx));
    printf("SSL_CTX_free\n");
    SSL_CTX_free(ctx);
    for (i = 0; i < NS; i++) {
        printf("%s resumable=%d\n", slabel(g_s[i]), SSL_SESSION_is_resumable(g_s[i]));
        SSL_SESSION_free(g_s[i]);
        g_s[i] = NULL;
    }
}

static void extra_add(SSL_CTX *ctx)
{
    SSL_SESSION *n = make_session(0xdf, 32, TLS1_2_VERSION, 0, 5000);

    printf("add %s = %d\n", slabel(n), SSL_CTX_add_session(ctx, n));
    SSL_SESSION_free(n);
}

int main(void)
{
    SSL_CTX *ctx;

    common_init();

    ctx = setup("explicit removal removes another", 0);
    g_partner[0] = g_s[3];
    printf("remove %s = %d\n", slabel(g_s[0]), SSL_CTX_remove_session(ctx, g_s[0]));
    finish(ctx);

    ctx = setup("eviction removes another", 5);
    g_partner[0] = g_s[4];
    extra_add(ctx);
    finish(ctx);

    ctx = setup("flush removes another (not expired)", 0);
    g_partner[1] = g_s[5];
    printf("flush(T0+250)\n");
    SSL_CTX_flush_sessions(ctx, (long)T0 + 250);
    finish(ctx);

    ctx = setup("SSL_CTX_free removes another", 0);
    g_partner[0] = g_s[5];
    g_partner[2] = g_s[1];
    finish(ctx);

    ctx = setup("explicit removal flushes", 0);
    g_flush_once = 1;
    printf("remove %s = %d\n", slabel(g_s[2]), SSL_CTX_remove_session(ctx, g_s[2]));
    finish(ctx);

    ctx = setup("eviction flushes", 4);
    g_flush_once = 1;
    extra_add(ctx);
    finish(ctx);

    ctx = setup("flush flushes", 0);
    g_flush_once = 1;
    printf("flush(T0+150)\n");
    SSL_CTX_flush_sessions(ctx, (long)T0 + 150);
    finish(ctx);

    ctx = setup("SSL_CTX_free flushes", 0);
    g_flush_once = 1;
    finish(ctx);

    common_cleanup();
    printf("done\n");
    return 0;
}
