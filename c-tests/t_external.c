/*
 * External session cache through the get callback: *copy = 1 / 0, NULL,
 * DER round trip (like a real external cache), expired sessions, sessions
 * from another session-id context, non-resumable sessions, sessions of a
 * different protocol version, the cache modes NO_INTERNAL,
 * NO_INTERNAL_LOOKUP, NO_INTERNAL_STORE and OFF, TLS 1.2 session IDs and
 * TLS 1.3 stateful tickets (plus stateless tickets, which never ask).
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>
#include <sys/time.h>
#include <unistd.h>

enum prep {
    PREP_NONE,
    PREP_EXPIRE,    /* stored sessions get a time long in the past */
    PREP_SIDCTX,    /* stored sessions get another session id context */
    PREP_REMOVE,    /* stored sessions are removed (not resumable) */
    PREP_OTHERVER,  /* get_cb returns a session of the other version */
    PREP_OFF        /* cache mode set to SSL_SESS_CACHE_OFF */
};

struct ext_case {
    const char *name;
    int ver;
    long flags;     /* added to SSL_SESS_CACHE_SERVER */
    int get_mode;
    int prep;
    int fixed_copy; /* for PREP_OTHERVER */
    int tickets;    /* 1: leave session tickets on (no SSL_OP_NO_TICKET) */
};

static SSL_SESSION *g_other[2]; /* [0] a TLS 1.2 session, [1] a TLS 1.3 one */

static const char *mode_name(long flags)
{
    switch (flags) {
    case 0: return "SERVER";
    case SSL_SESS_CACHE_NO_INTERNAL: return "SERVER|NO_INTERNAL";
    case SSL_SESS_CACHE_NO_INTERNAL_LOOKUP: return "SERVER|NO_INTERNAL_LOOKUP";
    case SSL_SESS_CACHE_NO_INTERNAL_STORE: return "SERVER|NO_INTERNAL_STORE";
    default: return "?";
    }
}

static const char *get_name(int m)
{
    switch (m) {
    case GET_NULL: return "NULL";
    case GET_COPY1: return "stored, copy=1";
    case GET_COPY0: return "stored+up_ref, copy=0";
    case GET_DER: return "d2i copy, copy=0";
    case GET_FIXED: return "fixed";
    }
    return "?";
}

static void print_store(void)
{
    int i;

    store_print();
    for (i = 0; i < store_count(); i++)
        print_sess("  stored", store_get(i));
}

/* On 3.3 and later a session decoded from DER has a whole-second time and
 * sorts before sessions that handshakes made in the same second, but after
 * those of the second before: a case that caches decoded sessions starts at
 * the beginning of a second, so that its handshakes share one second in
 * every run (they take well under one, under valgrind too). */
static void start_in_a_new_second(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30300000L
    struct timeval tv;

    gettimeofday(&tv, NULL);
    usleep((useconds_t)(1000000 - tv.tv_usec) + 1000);
#endif
}

static void run_case(const struct ext_case *c, SSL_CTX *cctx)
{
    SSL_CTX *sctx = new_server_ctx(c->ver, c->ver);
    struct hs_result r1, r2, r3;
    struct hs_opts o = { 0 };
    int i;

    printf("\n== %s: %s mode=%s get=%s ==\n", c->name, ver_name(c->ver),
           mode_name(c->flags), get_name(c->get_mode));
    if (!c->tickets)
        SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_SERVER | c->flags);
    cbc_reset();
    cbc.new_ret = 1;
    cbc.new_store = 1;
    cbc.get_mode = c->get_mode;
    set_cbs(sctx, 'A', 1, 1, 1);

    if (c->get_mode == GET_DER)
        start_in_a_new_second();
    handshake(sctx, cctx, NULL, &r1);
    print_stats(sctx);
    print_store();

    switch (c->prep) {
    case PREP_EXPIRE:
        for (i = 0; i < store_count(); i++) {
            printf("expire %s\n", slabel(store_get(i)));
            SSL_SESSION_set_time(store_get(i), (long)T0 - 100000);
        }
        print_stats(sctx);
        break;
    case PREP_SIDCTX:
        for (i = 0; i < store_count(); i++) {
            printf("set1_id_context(%s, \"other\") = %d\n", slabel(store_get(i)),
                   SSL_SESSION_set1_id_context(store_get(i),
                                               (const unsigned char *)"other", 5));
        }
        break;
    case PREP_REMOVE:
        for (i = 0; i < store_count(); i++)
            printf("SSL_CTX_remove_session(%s) = %d\n", slabel(store_get(i)),
                   SSL_CTX_remove_session(sctx, store_get(i)));
        print_stats(sctx);
        break;
    case PREP_OTHERVER:
        cbc.get_mode = GET_FIXED;
        cbc.fixed = g_other[c->ver == TLS1_2_VERSION ? 1 : 0];
        cbc.fixed_copy = c->fixed_copy;
        printf("get_cb will return %s (%s) with copy=%d\n", slabel(cbc.fixed),
               ver_name(SSL_SESSION_get_protocol_version(cbc.fixed)),
               c->fixed_copy);
        break;
    case PREP_OFF:
        printf("set_session_cache_mode(OFF) = 0x%lx\n",
               (unsigned long)SSL_CTX_set_session_cache_mode(sctx,
                                                             SSL_SESS_CACHE_OFF));
        break;
    }

    o.offer = r1.client_sess;
    handshake(sctx, cctx, &o, &r2);
    print_stats(sctx);
    o.offer = r2.client_sess;
    handshake(sctx, cctx, &o, &r3);
    print_stats(sctx);
    print_store();
    SSL_SESSION_free(r1.client_sess);
    SSL_SESSION_free(r2.client_sess);
    SSL_SESSION_free(r3.client_sess);
    printf("SSL_CTX_free %s\n", ctx_label(sctx));
    SSL_CTX_free(sctx);
    printf("store_clear\n");
    store_clear();
}

/* One stored session of the given version, made by a real handshake. */
static SSL_SESSION *session_of_version(int ver, SSL_CTX *cctx)
{
    SSL_CTX *sctx = new_server_ctx(ver, ver);
    struct hs_result r;
    SSL_SESSION *s;

    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    /* not in the internal cache: SSL_CTX_free must not mark it non-resumable */
    SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_SERVER
                                   | SSL_SESS_CACHE_NO_INTERNAL);
    cbc_reset();
    cbc.new_ret = 1;
    cbc.new_store = 1;
    set_cbs(sctx, 'B', 1, 0, 0);
    handshake(sctx, cctx, NULL, &r);
    SSL_SESSION_free(r.client_sess);
    s = store_get(0);
    CHECK_SETUP(s != NULL);
    SSL_SESSION_up_ref(s);
    store_clear();
    SSL_CTX_free(sctx);
    return s;
}

int main(void)
{
    static const struct ext_case cases[] = {
        { "1", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY1, PREP_NONE, 0, 0 },
        { "2", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY0, PREP_NONE, 0, 0 },
        { "3", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_DER, PREP_NONE, 0, 0 },
        { "4", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_NULL, PREP_NONE, 0, 0 },
        { "5", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL_LOOKUP, GET_COPY1, PREP_NONE, 0, 0 },
        { "6", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL_LOOKUP, GET_DER, PREP_NONE, 0, 0 },
        { "7", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL_STORE, GET_COPY1, PREP_NONE, 0, 0 },
        { "8", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL_STORE, GET_DER, PREP_NONE, 0, 0 },
        { "9", TLS1_2_VERSION, 0, GET_COPY1, PREP_NONE, 0, 0 },
        { "10 expired", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY1, PREP_EXPIRE, 0, 0 },
        { "11 expired", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL_LOOKUP, GET_COPY0, PREP_EXPIRE, 0, 0 },
        { "12 expired", TLS1_2_VERSION, 0, GET_COPY1, PREP_EXPIRE, 0, 0 },
        { "13 other sid_ctx", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY1, PREP_SIDCTX, 0, 0 },
        { "14 other sid_ctx", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL_LOOKUP, GET_COPY0, PREP_SIDCTX, 0, 0 },
        { "15 removed", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY1, PREP_REMOVE, 0, 0 },
        { "16 removed", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY0, PREP_REMOVE, 0, 0 },
        { "17 removed", TLS1_2_VERSION, 0, GET_COPY1, PREP_REMOVE, 0, 0 },
        { "18 other version", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_FIXED, PREP_OTHERVER, 1, 0 },
        { "19 other version", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL_LOOKUP, GET_FIXED, PREP_OTHERVER, 0, 0 },
        { "20 mode OFF", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY1, PREP_OFF, 0, 0 },
        { "21 mode OFF", TLS1_2_VERSION, 0, GET_DER, PREP_OFF, 0, 0 },
        { "22", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY1, PREP_NONE, 0, 0 },
        { "23", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY0, PREP_NONE, 0, 0 },
        { "24", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_DER, PREP_NONE, 0, 0 },
        { "25", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_NULL, PREP_NONE, 0, 0 },
        { "26", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL_LOOKUP, GET_DER, PREP_NONE, 0, 0 },
        { "27", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL_STORE, GET_COPY1, PREP_NONE, 0, 0 },
        { "28", TLS1_3_VERSION, 0, GET_COPY1, PREP_NONE, 0, 0 },
        { "29 expired", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY1, PREP_EXPIRE, 0, 0 },
        { "30 expired", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL_LOOKUP, GET_DER, PREP_EXPIRE, 0, 0 },
        { "31 other sid_ctx", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY1, PREP_SIDCTX, 0, 0 },
        { "32 removed", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY0, PREP_REMOVE, 0, 0 },
        { "33 other version", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_FIXED, PREP_OTHERVER, 1, 0 },
        { "34 mode OFF", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY1, PREP_OFF, 0, 0 },
        { "35 stateless tickets", TLS1_3_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY1, PREP_NONE, 0, 1 },
        { "36 TLS1.2 tickets", TLS1_2_VERSION, SSL_SESS_CACHE_NO_INTERNAL, GET_COPY1, PREP_NONE, 0, 1 },
    };
    SSL_CTX *cctx;
    size_t i;

    common_init();
    cctx = new_client_ctx(0, 0);
    section("sessions of each version for the 'other version' cases");
    g_other[0] = session_of_version(TLS1_2_VERSION, cctx);
    g_other[1] = session_of_version(TLS1_3_VERSION, cctx);
    /* Fixed times: these sessions end up in caches next to sessions made
     * seconds later (more so under valgrind), and their place in expiry
     * order must not depend on how long the run took. */
    SSL_SESSION_set_time(g_other[0], (long)T0);
    SSL_SESSION_set_timeout(g_other[0], 100000);
    SSL_SESSION_set_time(g_other[1], (long)T0);
    SSL_SESSION_set_timeout(g_other[1], 100000);
    print_sess("TLS1.2 session", g_other[0]);
    print_sess("TLS1.3 session", g_other[1]);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i], cctx);
    section("cleanup");
    print_sess("TLS1.2 session", g_other[0]);
    print_sess("TLS1.3 session", g_other[1]);
    SSL_SESSION_free(g_other[0]);
    SSL_SESSION_free(g_other[1]);
    print_stats(cctx);
    SSL_CTX_free(cctx);
    common_cleanup();
    printf("end\n");
    return 0;
}
