/*
 * The six callback setters/getters: NULL before set, exactly the pointer
 * set, NULL clears, contexts independent; default cache mode and size of
 * server and client contexts.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>

static int new1(SSL *s, SSL_SESSION *x) { (void)s; (void)x; return 0; }
static int new2(SSL *s, SSL_SESSION *x) { (void)s; (void)x; return 1; }
static void rem1(SSL_CTX *c, SSL_SESSION *x) { (void)c; (void)x; }
static void rem2(SSL_CTX *c, SSL_SESSION *x) { (void)c; (void)x; }
static SSL_SESSION *get1(SSL *s, const unsigned char *d, int l, int *c)
{
    (void)s; (void)d; (void)l; (void)c;
    return NULL;
}
static SSL_SESSION *get2(SSL *s, const unsigned char *d, int l, int *c)
{
    (void)s; (void)d; (void)l; (void)c;
    return NULL;
}

static const char *yesno(int b) { return b ? "yes" : "no"; }

static void show(SSL_CTX *ctx)
{
    int (*n)(SSL *, SSL_SESSION *) = SSL_CTX_sess_get_new_cb(ctx);
    void (*r)(SSL_CTX *, SSL_SESSION *) = SSL_CTX_sess_get_remove_cb(ctx);
    SSL_SESSION *(*g)(SSL *, const unsigned char *, int, int *) =
        SSL_CTX_sess_get_get_cb(ctx);

    printf("%s: new=%s remove=%s get=%s\n", ctx_label(ctx),
           n == NULL ? "NULL" : n == new1 ? "new1" : n == new2 ? "new2" : "other",
           r == NULL ? "NULL" : r == rem1 ? "rem1" : r == rem2 ? "rem2" : "other",
           g == NULL ? "NULL" : g == get1 ? "get1" : g == get2 ? "get2" : "other");
}

int main(void)
{
    SSL_CTX *a, *b, *c;

    common_init();
    a = new_server_ctx(0, 0);
    b = new_server_ctx(0, 0);
    c = new_client_ctx(0, 0);
    section("defaults");
    show(a);
    show(b);
    show(c);
    printf("server mode=0x%lx size=%ld timeout=%ld\n",
           (unsigned long)SSL_CTX_get_session_cache_mode(a),
           SSL_CTX_sess_get_cache_size(a), SSL_CTX_get_timeout(a));
    printf("client mode=0x%lx size=%ld timeout=%ld\n",
           (unsigned long)SSL_CTX_get_session_cache_mode(c),
           SSL_CTX_sess_get_cache_size(c), SSL_CTX_get_timeout(c));
    print_stats(a);
    print_stats(c);

    section("set on one context");
    SSL_CTX_sess_set_new_cb(a, new1);
    show(a);
    show(b);
    SSL_CTX_sess_set_remove_cb(a, rem1);
    SSL_CTX_sess_set_get_cb(a, get1);
    show(a);
    show(b);
    printf("getters equal to the set pointers: %s %s %s\n",
           yesno(SSL_CTX_sess_get_new_cb(a) == new1),
           yesno(SSL_CTX_sess_get_remove_cb(a) == rem1),
           yesno(SSL_CTX_sess_get_get_cb(a) == get1));

    section("other context, other callbacks");
    SSL_CTX_sess_set_new_cb(b, new2);
    SSL_CTX_sess_set_remove_cb(b, rem2);
    SSL_CTX_sess_set_get_cb(b, get2);
    show(a);
    show(b);

    section("replace and clear");
    SSL_CTX_sess_set_new_cb(a, new2);
    SSL_CTX_sess_set_remove_cb(a, NULL);
    show(a);
    show(b);
    SSL_CTX_sess_set_new_cb(a, NULL);
    SSL_CTX_sess_set_get_cb(a, NULL);
    show(a);
    SSL_CTX_sess_set_get_cb(b, get1);
    SSL_CTX_sess_set_get_cb(b, get1);
    show(b);

    section("client context");
    SSL_CTX_sess_set_new_cb(c, new1);
    SSL_CTX_sess_set_remove_cb(c, rem2);
    SSL_CTX_sess_set_get_cb(c, get2);
    show(c);
    show(a);

    section("SSL_get_SSL_CTX of a new SSL has the callbacks");
    {
        SSL *s = new_ssl(b, 1);

        show(SSL_get_SSL_CTX(s));
        printf("SSL_set_SSL_CTX to %s: %s\n", ctx_label(a),
               SSL_set_SSL_CTX(s, a) == a ? "ok" : "failed");
        show(SSL_get_SSL_CTX(s));
        SSL_free(s);
    }

    SSL_CTX_free(a);
    SSL_CTX_free(b);
    SSL_CTX_free(c);
    common_cleanup();
    printf("end\n");
    return 0;
}
