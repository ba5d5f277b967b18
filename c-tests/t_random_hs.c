/*
 * Random walks through handshakes and the calls around them, the same
 * every run (fixed seeds): TLS 1.2 session-ID and TLS 1.3 stateful-ticket
 * handshakes offering earlier sessions (or none), while the server's
 * callbacks (new_cb returning 0 or 1, keeping sessions or not; get_cb
 * returning NULL, the kept session with *copy = 1 or 0, or a DER copy), its
 * cache mode and size change, and the application removes, re-adds,
 * expires and re-times the server sessions it keeps, and flushes.
 *
 * Every callback with its arguments and return value, every session's free,
 * each handshake's outcome (resumed or not, on both sides) and the server's
 * statistics are printed: plain libssl's output is the oracle for the
 * library's.
 *
 * Time: a session's place in expiry order comes from its time, which libssl
 * takes from the clock; two runs would then order a re-added old session
 * and a new one differently when one crosses a second boundary where the
 * other does not. So the server's new_cb first gives every new session a
 * time of its own (own_session_times() in common.c: T0 + 1000 s per session
 * so far, timeout 7200 s); flushes and expired sessions are placed on that
 * scale, far from the real clock, which advances a second or two in a run.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define STEPS 400
#define OFFERS 6

static const struct {
    long mode;
    const char *name;
} modes[] = {
    { SSL_SESS_CACHE_SERVER, "SERVER" },
    { SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_LOOKUP, "SERVER|NO_INTERNAL_LOOKUP" },
    { SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE, "SERVER|NO_INTERNAL_STORE" },
    { SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL, "SERVER|NO_INTERNAL" },
    { SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_AUTO_CLEAR, "SERVER|NO_AUTO_CLEAR" },
    { SSL_SESS_CACHE_OFF, "OFF" },
};

static const char *get_mode_name(int m)
{
    switch (m) {
    case GET_NULL: return "NULL";
    case GET_COPY1: return "COPY1";
    case GET_COPY0: return "COPY0";
    case GET_DER: return "DER";
    default: return "?";
    }
}

static SSL_SESSION *offers[2][OFFERS];

/* A server session the application keeps (new_cb with storing on); mostly
 * the one a client could offer next, so that what is done to it shows in a
 * handshake. */
static SSL_SESSION *kept(void)
{
    int n = store_count();
    SSL_SESSION *offer = offers[rand_below(2)][rand_below(OFFERS)];

    if (rand_below(4) != 0 && offer != NULL) {
        SSL_SESSION *s = store_find_server_copy(offer);

        if (s != NULL)
            return s;
    }
    return n == 0 ? NULL : store_get(rand_below(n));
}

static void run(SSL_CTX *srv, SSL_CTX *cli[2], SSL *by_version[2], uint64_t seed)
{
    int step, v, i;

    rand_seed(seed);
    printf("\n== seed %llu ==\n", (unsigned long long)seed);
    for (step = 0; step < STEPS; step++) {
        int op = rand_below(100);
        SSL_SESSION *s;

        printf("%d: ", step);
        if (op < 45) {
            struct hs_opts o = { 0 };
            struct hs_result r;
            int k = rand_below(OFFERS);

            v = rand_below(2);
            o.offer = rand_below(4) == 0 ? NULL : offers[v][k];
            /* new_cb keeps sessions: leave it room */
            if (store_count() > 56) {
                printf("store full: cleared\n");
                store_clear();
            }
            printf("handshake TLS1.%d\n", v == 0 ? 2 : 3);
            handshake(srv, cli[v], &o, &r);
            if (r.client_sess != NULL) {
                if (offers[v][k] != NULL)
                    SSL_SESSION_free(offers[v][k]);
                offers[v][k] = r.client_sess;
            }
            printf("  hits=%ld misses=%ld timeouts=%ld cb_hits=%ld number=%ld\n",
                   SSL_CTX_sess_hits(srv), SSL_CTX_sess_misses(srv),
                   SSL_CTX_sess_timeouts(srv), SSL_CTX_sess_cb_hits(srv),
                   SSL_CTX_sess_number(srv));
            continue;
        }
        if (op < 52) {
            int new_cb = rand_below(2), remove_cb = rand_below(2), get_cb = rand_below(2);

            cbc_reset();
            cbc.new_ret = rand_below(2);
            cbc.new_store = rand_below(3) != 0;
            cbc.get_mode = rand_below(4); /* NULL, COPY1, COPY0, DER */
            printf("callbacks new=%d (returns %d%s) remove=%d get=%d (%s)\n", new_cb,
                   cbc.new_ret, cbc.new_store ? ", keeps" : "", remove_cb, get_cb,
                   get_mode_name(cbc.get_mode));
            set_cbs(srv, 'A', new_cb, remove_cb, get_cb);
            if (new_cb) {
                own_session_times(srv);
            }
        } else if (op < 58) {
            /* plain SERVER half the time: most handshakes should resume */
            i = rand_below(2) ? 0 : rand_below((int)(sizeof(modes) / sizeof(modes[0])));
            printf("mode %s -> was 0x%lx\n", modes[i].name,
                   SSL_CTX_set_session_cache_mode(srv, modes[i].mode));
        } else if (op < 62) {
            static const long sizes[] = { 0, 0, 1, 2, 3, 5, 20, 20 };
            long size = sizes[rand_below(8)];

            printf("cache size %ld -> was %ld\n", size, SSL_CTX_sess_set_cache_size(srv, size));
        } else if (op < 68) {
            if ((s = kept()) == NULL) {
                printf("(nothing kept)\n");
                continue;
            }
            printf("remove %s\n", slabel(s));
            printf("  -> %d resumable=%d\n", SSL_CTX_remove_session(srv, s),
                   SSL_SESSION_is_resumable(s));
        } else if (op < 72) {
            if ((s = kept()) == NULL) {
                printf("(nothing kept)\n");
                continue;
            }
            long t = -100000 - rand_below(1000);

            printf("set_time %s T0%+ld (expired)\n", slabel(s), t);
            printf("  -> %ld\n", SSL_SESSION_set_time(s, (long)T0 + t) - (long)T0);
        } else if (op < 75) {
            if ((s = kept()) == NULL) {
                printf("(nothing kept)\n");
                continue;
            }
            printf("set_timeout %s 100000\n", slabel(s));
            printf("  -> %ld\n", SSL_SESSION_set_timeout(s, 100000));
        } else if (op < 79) {
            /* the sessions made up to `before` sessions ago expire */
            long before = rand_below(12);
            long made = own_times_given();
            long t = 1000 * (made - before) + 7200 - 500;

            printf("flush T0%+ld (made=%ld)\n", t, made);
            SSL_CTX_flush_sessions(srv, (long)T0 + t);
        } else if (op < 82) {
            printf("store cleared\n");
            store_clear();
        } else if (op < 87) {
            if ((s = kept()) == NULL) {
                printf("(nothing kept)\n");
                continue;
            }
            if (rand_below(2)) {
                /* removed first: marked not resumable, then cached again
                 * (plain libssl's internal lookup still resumes it) */
                printf("remove %s\n", slabel(s));
                printf("  -> %d\n", SSL_CTX_remove_session(srv, s));
            }
            printf("add %s\n", slabel(s));
            printf("  -> %d resumable=%d\n", SSL_CTX_add_session(srv, s),
                   SSL_SESSION_is_resumable(s));
        } else if (op < 92) {
            unsigned int len;
            const unsigned char *id;

            if ((s = kept()) == NULL) {
                printf("(nothing kept)\n");
                continue;
            }
            id = SSL_SESSION_get_id(s, &len);
            printf("set_protocol_version %s %s\n", slabel(s),
                   SSL_SESSION_get_protocol_version(s) == TLS1_3_VERSION ? "TLSv1.2" : "TLSv1.3");
            /* only where it makes no clash with another cached session
             * (see t_random.c): none has the new version and this ID */
            {
                int want = SSL_SESSION_get_protocol_version(s) == TLS1_3_VERSION
                               ? TLS1_2_VERSION : TLS1_3_VERSION;

                if (SSL_has_matching_session_id(by_version[want == TLS1_3_VERSION], id, len))
                    printf("  (clash: not changed)\n");
                else
                    printf("  -> %d\n", SSL_SESSION_set_protocol_version(s, want));
            }
        } else if (op < 96) {
            print_stats(srv);
        } else if (op < 98) {
            printf("flush all\n");
            SSL_CTX_flush_sessions(srv, 0);
        } else {
            v = rand_below(2);
            i = rand_below(OFFERS);
            printf("client drops offer %d/%d %s\n", v, i, slabel(offers[v][i]));
            if (offers[v][i] != NULL)
                SSL_SESSION_free(offers[v][i]);
            offers[v][i] = NULL;
        }
        printf("  number=%ld\n", SSL_CTX_sess_number(srv));
    }
    printf("-- end of seed\n");
    print_stats(srv);
    for (v = 0; v < 2; v++)
        for (i = 0; i < OFFERS; i++)
            if (offers[v][i] != NULL) {
                SSL_SESSION_free(offers[v][i]);
                offers[v][i] = NULL;
            }
    store_clear();
    SSL_CTX_flush_sessions(srv, 0);
}

int main(void)
{
    SSL_CTX *srv, *cli[2];
    SSL *by_version[2];
    struct hs_opts o = { 0 };
    struct hs_result r12, r13;

    common_init();
    srv = new_cache_ctx();
    cli[0] = new_client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    cli[1] = new_client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    CHECK_SETUP(srv != NULL && cli[0] != NULL && cli[1] != NULL);
    /* stateful: TLS 1.2 resumes by session ID, TLS 1.3 by a ticket that
     * names a cached session */
    SSL_CTX_set_options(srv, SSL_OP_NO_TICKET);
    /* server SSLs of each version, kept for SSL_has_matching_session_id;
     * what their handshakes cached goes before the walks */
    o.keep = 1;
    handshake(srv, cli[0], &o, &r12);
    handshake(srv, cli[1], &o, &r13);
    by_version[0] = r12.s;
    by_version[1] = r13.s;
    CHECK_SETUP(SSL_version(r12.s) == TLS1_2_VERSION && SSL_version(r13.s) == TLS1_3_VERSION);
    SSL_CTX_flush_sessions(srv, 0);

    run(srv, cli, by_version, 7);
    run(srv, cli, by_version, 0x5e55cac4e);
    run(srv, cli, by_version, 20261126);

    free_pair(r12.c, r12.s);
    free_pair(r13.c, r13.s);
    SSL_SESSION_free(r12.client_sess);
    SSL_SESSION_free(r13.client_sess);

    printf("SSL_CTX_free\n");
    SSL_CTX_free(srv);
    SSL_CTX_free(cli[0]);
    SSL_CTX_free(cli[1]);
    common_cleanup();
    printf("end\n");
    return 0;
}
