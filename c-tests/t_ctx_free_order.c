/*
 * The order of what an application sees when a server ctx is freed: its
 * remove callbacks and the frees of the sessions it cached, and its own
 * SSL_CTX ex_data free callbacks. libssl flushes the cache before it frees
 * the ctx's ex_data, so a remove callback may still use what an ex_data
 * free callback releases. One index is taken before the first SSL_CTX_new
 * (as nginx does), one after; the ctx is freed by SSL_CTX_free, and by
 * SSL_free dropping its last reference.
 *
 * Each ex_data free callback marks its value released (not freed, so that
 * a wrong order shows in the output rather than as a use after free), and
 * the remove callback prints what it finds in both.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>
#include <string.h>

struct app_data {
    const char *name;
    int released;
};

static int idx_early = -1, idx_late = -1;

static void app_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                        long argl, void *argp)
{
    struct app_data *d = ptr;

    (void)ad; (void)idx; (void)argl;
    if (d == NULL) {
        printf("ex_data free [%s] %s: unset\n", (const char *)argp,
               ctx_label(parent));
        return;
    }
    printf("ex_data free [%s] %s: %s\n", (const char *)argp, ctx_label(parent),
           d->name);
    d->released = 1;
}

static const char *state(SSL_CTX *ctx, int idx)
{
    struct app_data *d = SSL_CTX_get_ex_data(ctx, idx);

    if (d == NULL)
        return "unset";
    return d->released ? "released" : "live";
}

static void remove_cb(SSL_CTX *ctx, SSL_SESSION *s)
{
    printf("remove_cb %s %s (early %s, late %s)\n", ctx_label(ctx), slabel(s),
           state(ctx, idx_early), state(ctx, idx_late));
}

static SSL_CTX *server_ctx(struct app_data *early, struct app_data *late)
{
    SSL_CTX *ctx = new_server_ctx(0, 0);

    SSL_CTX_sess_set_remove_cb(ctx, remove_cb);
    CHECK_SETUP(SSL_CTX_set_ex_data(ctx, idx_early, early));
    if (late != NULL)
        CHECK_SETUP(SSL_CTX_set_ex_data(ctx, idx_late, late));
    return ctx;
}

/* Three sessions cached; the application keeps one reference to `kept`. */
static SSL_SESSION *fill(SSL_CTX *ctx, unsigned char first)
{
    SSL_SESSION *kept = NULL;
    int i;

    for (i = 0; i < 3; i++) {
        SSL_SESSION *s = make_session((unsigned char)(first + i), 32,
                                      TLS1_2_VERSION, 10 * (i + 1), 7200);

        CHECK_SETUP(s != NULL);
        printf("add %s -> %d\n", slabel(s), SSL_CTX_add_session(ctx, s));
        if (i == 1)
            kept = s;
        else
            SSL_SESSION_free(s);
    }
    print_stats(ctx);
    return kept;
}

int main(void)
{
    struct app_data e1 = { "e1", 0 }, l1 = { "l1", 0 };
    struct app_data e2 = { "e2", 0 }, l2 = { "l2", 0 };
    struct app_data e3 = { "e3", 0 }, e4 = { "e4", 0 };
    SSL_CTX *ctx, *cctx;
    SSL_SESSION *kept;
    struct hs_result r;
    SSL *ssl;

    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Before any SSL_CTX_new, as nginx takes its indices. */
    idx_early = SSL_CTX_get_ex_new_index(0, "early", NULL, NULL, app_free_cb);
    CHECK_SETUP(idx_early >= 0);
    common_init();
    cctx = new_client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    idx_late = SSL_CTX_get_ex_new_index(0, "late", NULL, NULL, app_free_cb);
    CHECK_SETUP(idx_late >= 0);

    section("SSL_CTX_free");
    ctx = server_ctx(&e1, &l1);
    kept = fill(ctx, 0x10);
    printf("SSL_CTX_free\n");
    SSL_CTX_free(ctx);
    printf("SSL_SESSION_free %s\n", slabel(kept));
    SSL_SESSION_free(kept);

    section("last reference dropped by SSL_free");
    ctx = server_ctx(&e2, &l2);
    kept = fill(ctx, 0x20);
    ssl = SSL_new(ctx);
    CHECK_SETUP(ssl != NULL);
    printf("SSL_CTX_free (an SSL holds it)\n");
    SSL_CTX_free(ctx);
    printf("SSL_free\n");
    SSL_free(ssl);
    SSL_SESSION_free(kept);

    section("sessions from handshakes, late index unset");
    ctx = server_ctx(&e3, NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET); /* cached by session ID */
    cbc_reset();
    set_cbs(ctx, 'A', 1, 0, 0);
    SSL_CTX_sess_set_remove_cb(ctx, remove_cb);
    own_session_times(ctx); /* expiry order independent of the clock */
    handshake(ctx, cctx, NULL, &r);
    SSL_SESSION_free(r.client_sess);
    handshake(ctx, cctx, NULL, &r);
    SSL_SESSION_free(r.client_sess);
    print_stats(ctx);
    printf("SSL_CTX_free\n");
    SSL_CTX_free(ctx);

    section("empty cache");
    ctx = server_ctx(&e4, NULL);
    printf("SSL_CTX_free\n");
    SSL_CTX_free(ctx);

    SSL_CTX_free(cctx);
    common_cleanup();
    printf("end\n");
    return 0;
}
