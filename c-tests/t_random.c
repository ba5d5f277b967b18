/*
 * Random sequences of session-cache calls, the same every run (fixed
 * seeds): SSL_CTX_add_session, SSL_CTX_remove_session, SSL_CTX_flush_sessions,
 * SSL_has_matching_session_id, SSL_SESSION_set_time / set_timeout /
 * set_protocol_version on cached and uncached sessions, cache size changes,
 * and the application dropping its references. Sessions share a few IDs and
 * versions, so replacements, key clashes, ties in expiry, empty IDs, versions
 * that do not fit 16 bits and expiries that overflow time_t all occur.
 *
 * Every call's return value, the cache's size, each remove_cb (with the
 * session's resumable flag) and each session's free are printed, so the
 * output of plain libssl is the oracle for the library's: what the
 * hand-written tests do not think of, a long random walk may.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define POOL 40
#define STEPS 6000

static int pick_version(void)
{
    long r = rand_below(20);

    if (r < 9)
        return TLS1_2_VERSION;
    if (r < 18)
        return TLS1_3_VERSION;
    /* a version outside 16 bits: the library keeps no copy of it */
    return r == 18 ? TLS_ANY_VERSION : TLS1_1_VERSION;
}

static unsigned int pick_id_len(void)
{
    long r = rand_below(20);

    return r < 14 ? 32 : r < 17 ? 16 : r < 19 ? 1 : 0;
}

static long pick_timeout(void)
{
    /* now and then one whose expiry overflows time_t: it never expires */
    return rand_below(40) == 0 ? LONG_MAX - rand_below(3) : rand_below(50);
}

static SSL_SESSION *new_session(void)
{
    SSL_SESSION *s = make_session((unsigned char)(1 + rand_below(8)), pick_id_len(),
                                  pick_version(), rand_below(45) - 5, pick_timeout());

    printf("new %s id=%s ver=%s time=%+ld timeout=%ld\n", slabel(s),
           sidlabel(s), ver_name(SSL_SESSION_get_protocol_version(s)),
           SSL_SESSION_get_time(s) - (long)T0, SSL_SESSION_get_timeout(s));
    return s;
}

static void run(SSL_CTX *ctx, SSL *by_version[3], uint64_t seed)
{
    SSL_SESSION *pool[POOL] = { 0 };
    int i, step;

    rand_seed(seed);
    printf("== seed %llu ==\n", (unsigned long long)seed);
    for (i = 0; i < POOL; i++)
        pool[i] = new_session();

    for (step = 0; step < STEPS; step++) {
        long op = rand_below(100);
        int k = (int)rand_below(POOL);
        SSL_SESSION *s = pool[k];
        long ret;

        /* Each step prints what it does, then (after any callback or
         * free it caused) what came back and the cache's size. */
        if (s == NULL && (op < 30 || (op >= 37 && op < 61) || op >= 82)
            && !(op >= 90 && op < 93)) {
            /* an operation on a session, and the slot is empty: fill it */
            printf("%d: slot %d empty: ", step, k);
            pool[k] = s = new_session();
        }
        if (op < 20) {
            printf("%d: add %s\n", step, slabel(s));
            ret = SSL_CTX_add_session(ctx, s);
        } else if (op < 30) {
            printf("%d: remove %s\n", step, slabel(s));
            ret = SSL_CTX_remove_session(ctx, s);
            printf("  resumable=%d", SSL_SESSION_is_resumable(s));
        } else if (op < 37) {
            printf("%d: replace slot %d\n", step, k);
            if (s != NULL)
                SSL_SESSION_free(s);
            pool[k] = new_session();
            ret = 0;
        } else if (op < 43) {
            printf("%d: drop %s\n", step, slabel(s));
            SSL_SESSION_free(s);
            pool[k] = NULL;
            ret = 0;
        } else if (op < 51) {
            long t = rand_below(45) - 5;

            printf("%d: set_time %s %+ld\n", step, slabel(s), t);
            /* it returns the time given: printed relative to T0, as every
             * time here, so that runs in different seconds compare */
            ret = SSL_SESSION_set_time(s, (long)T0 + t) - (long)T0;
        } else if (op < 57) {
            long t = pick_timeout();

            printf("%d: set_timeout %s %ld\n", step, slabel(s), t);
            ret = SSL_SESSION_set_timeout(s, t);
        } else if (op < 61) {
            int who = (int)rand_below(2);
            int v = who == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
            unsigned int len;
            const unsigned char *id = SSL_SESSION_get_id(s, &len);

            /* Not when another cached session has that version and ID:
             * plain libssl's hash table would then hold two sessions
             * under one key, and its next removal of either can take
             * the other's hash node and leave a freed session on its
             * list (found by this test: heap corruption, abort). Only
             * versions an SSL here has can be checked, so only those are
             * set (sessions made with others still come and go). */
            if (SSL_SESSION_get_protocol_version(s) != v
                && SSL_has_matching_session_id(by_version[who], id, len)) {
                printf("%d: (not changing %s to %s: clash)\n", step, slabel(s), ver_name(v));
                continue;
            }
            printf("%d: set_protocol_version %s %s\n", step, slabel(s), ver_name(v));
            ret = SSL_SESSION_set_protocol_version(s, v);
        } else if (op < 65) {
            /* mostly a time that expires some; now and then everything */
            long t = rand_below(60) == 0 ? 0 : (long)T0 + rand_below(100) - 5;

            printf("%d: flush %+ld\n", step, t == 0 ? 0 : t - (long)T0);
            SSL_CTX_flush_sessions(ctx, t);
            ret = 0;
        } else if (op < 68) {
            long size = rand_below(25);

            printf("%d: set_cache_size %ld\n", step, size);
            ret = SSL_CTX_sess_set_cache_size(ctx, size);
        } else if (op < 82) {
            unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH + 2];
            unsigned int len = rand_below(30) == 0 ? (unsigned int)rand_below(34) : pick_id_len();
            int who = (int)rand_below(3);

            /* the IDs make_session gives: first byte, then 0xA5 */
            memset(id, 0xA5, sizeof(id));
            id[0] = (unsigned char)(1 + rand_below(8));
            printf("%d: has_matching %s %s\n", step,
                   who == 0 ? "tls1.2" : who == 1 ? "tls1.3" : "unused SSL", idlabel(id, len));
            ret = SSL_has_matching_session_id(by_version[who], id, len);
        } else if (op < 90) {
            printf("%d: is_resumable %s\n", step, slabel(s));
            ret = SSL_SESSION_is_resumable(s);
        } else if (op < 93) {
            printf("%d: stats\n", step);
            print_stats(ctx);
            ret = 0;
        } else {
            /* the same session added twice in a row: the second is a re-add */
            printf("%d: add twice %s\n", step, slabel(s));
            ret = SSL_CTX_add_session(ctx, s);
            printf("  first=%ld", ret);
            ret = SSL_CTX_add_session(ctx, s);
        }
        printf("  -> %ld number=%ld full=%ld\n", ret, SSL_CTX_sess_number(ctx),
               SSL_CTX_sess_cache_full(ctx));
    }

    printf("-- end of seed: the application drops its references\n");
    for (i = 0; i < POOL; i++) {
        if (pool[i] != NULL)
            SSL_SESSION_free(pool[i]);
    }
    print_stats(ctx);
    printf("-- flush everything\n");
    SSL_CTX_flush_sessions(ctx, 0);
    printf("number=%ld\n", SSL_CTX_sess_number(ctx));
}

int main(void)
{
    SSL_CTX *ctx, *cctx12, *cctx13;
    struct hs_opts o = { 0 };
    struct hs_result r12, r13;
    SSL *by_version[3];

    common_init();
    ctx = new_cache_ctx();
    cctx12 = new_client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
    cctx13 = new_client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
    CHECK_SETUP(ctx != NULL && cctx12 != NULL && cctx13 != NULL);

    /* Server SSLs with a negotiated version, for has_matching; the
     * sessions their handshakes cached go before the random walk. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    o.keep = 1;
    handshake(ctx, cctx12, &o, &r12);
    handshake(ctx, cctx13, &o, &r13);
    by_version[0] = r12.s;
    by_version[1] = r13.s;
    by_version[2] = new_ssl(ctx, 1);
    CHECK_SETUP(SSL_version(r12.s) == TLS1_2_VERSION && SSL_version(r13.s) == TLS1_3_VERSION);
    SSL_CTX_flush_sessions(ctx, 0);

    run(ctx, by_version, 1);
    /* a small cache: evictions on most adds */
    SSL_CTX_sess_set_cache_size(ctx, 6);
    run(ctx, by_version, 0x5e55cac4e);
    SSL_CTX_sess_set_cache_size(ctx, 2);
    run(ctx, by_version, 20261126);

    /* what is cached at the end goes with the ctx */
    SSL_CTX_sess_set_cache_size(ctx, 0);
    {
        SSL_SESSION *s = new_session();

        printf("add %s -> %d\n", slabel(s), SSL_CTX_add_session(ctx, s));
        SSL_SESSION_free(s);
    }
    free_pair(r12.c, r12.s);
    free_pair(r13.c, r13.s);
    SSL_free(by_version[2]);
    if (r12.client_sess != NULL)
        SSL_SESSION_free(r12.client_sess);
    if (r13.client_sess != NULL)
        SSL_SESSION_free(r13.client_sess);
    printf("SSL_CTX_free\n");
    SSL_CTX_free(ctx);
    SSL_CTX_free(cctx12);
    SSL_CTX_free(cctx13);
    common_cleanup();
    printf("end\n");
    return 0;
}
