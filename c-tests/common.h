/*
 * Shared helpers for the sesscache differential C tests.
 *
 * Every program prints what an application can observe of libssl's server
 * session cache.  Nothing random (session IDs, pointers, absolute times) is
 * ever printed: objects get deterministic labels instead.
 */
#ifndef SESSCACHE_CTEST_COMMON_H
#define SESSCACHE_CTEST_COMMON_H

#include <openssl/ssl.h>
#include "sesscache.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Time captured once by common_init(); all times are relative to it. */
extern time_t T0;

/* Set up keys, certificate, ex_data indices. Exits with status 2 on failure. */
void common_init(void);
/* Frees the certificate and key and the label tables. */
void common_cleanup(void);

/* Print "SETUP FAILED: <what>" plus the OpenSSL error queue, exit 2. */
void setup_failed(const char *what);
/* Exit with status 2 via setup_failed() when cond is false. */
#define CHECK_SETUP(cond) \
    do { if (!(cond)) setup_failed(#cond); } while (0)

/*
 * Labels.  Each function returns a pointer into a small ring of static
 * buffers, valid for a few subsequent label calls (enough for one printf).
 */
/* "S<n>" for a session, assigned on first sight; "NULL" for NULL. */
const char *slabel(SSL_SESSION *s);
/* 1 if the session already has a label. */
int is_labelled(SSL_SESSION *s);
/* "I<n>/<len>" for an ID byte string, assigned on first sight. */
const char *idlabel(const unsigned char *id, unsigned int len);
/* The ID label of a session's session ID. */
const char *sidlabel(SSL_SESSION *s);
/* "C<n>" (client) / "V<n>" (server) / "NULL". */
const char *ssl_label(const SSL *s);
/* "X<n>" / "NULL"; unlabelled contexts get a label on first sight. */
const char *ctx_label(const SSL_CTX *ctx);

/* 0: print every free; 1: print none (multi-threaded tests);
 * 2: print only the frees of labelled sessions. */
extern int g_quiet_free;
/* Counters updated (under a lock) by the labelling and the free callback. */
extern long g_labelled, g_freed_labelled, g_freed_unlabelled;
/* Thread-safe snapshot of the counters. */
void label_counters(long *labelled, long *freed, long *freed_unlabelled);

/* Context construction (min/max: e.g. TLS1_2_VERSION; 0 = no limit). */
SSL_CTX *new_server_ctx(int min_ver, int max_ver);
/* Labels a server ctx (of any method) and gives it the test certificate,
 * key and session ID context. Exits with status 2 on failure. */
void use_server_identity(SSL_CTX *ctx);
SSL_CTX *new_client_ctx(int min_ver, int max_ver);
/* A server ctx for cache-API tests: callbacks reset, remove callback 'A'
 * installed (new and get callbacks off). */
SSL_CTX *new_cache_ctx(void);
/* SSL_new plus label (C<n> or V<n>). */
SSL *new_ssl(SSL_CTX *ctx, int server);

/* Handshakes over an in-memory BIO pair. */
struct hs_opts {
    SSL_SESSION *offer; /* client session to offer (SSL_set_session) */
    int unclean;        /* SSL_free without SSL_shutdown */
    int keep;           /* don't shut down or free: caller gets r->c, r->s */
    int no_data;        /* skip the application data exchange */
    const char *sni;    /* server name sent by the client */
    int quiet;          /* don't print the result line */
};

struct hs_result {
    int ok;
    int srv_reused;
    int cli_reused;
    SSL_SESSION *client_sess; /* SSL_get1_session(client); caller frees */
    SSL *c, *s;               /* only set when opts.keep */
};

/*
 * Runs one handshake plus a little application data both ways, prints one
 * result line (unless quiet), then shuts down cleanly (or not) and frees both
 * SSL objects (unless keep).  Returns r->ok.
 */
int handshake(SSL_CTX *sctx, SSL_CTX *cctx, const struct hs_opts *o,
              struct hs_result *r);
/* Clean shutdown of a kept pair (both directions), no free. */
void shutdown_pair(SSL *c, SSL *s);
/* Frees a kept pair: client first, then server. */
void free_pair(SSL *c, SSL *s);

/* Print every session cache statistic of a context on one line. */
void print_stats(SSL_CTX *ctx);
/* Prints "<what>: S<n> resumable=<0|1> id=<I..> ver=<hex>". */
void print_sess(const char *what, SSL_SESSION *s);
/* Prints a heading line "== <text> ==". */
void section(const char *text);
/* A full handshake, then n resumptions each offering the newest client
 * session, with the server's statistics after each. With each_offered, the
 * session just offered is printed after each resumption; otherwise the last
 * client session is printed at the end. */
void resume_chain(SSL_CTX *sctx, SSL_CTX *cctx, int n, int each_offered);

/*
 * Logging callbacks.  Two sets ("A" and "B") with identical behaviour,
 * differing only in the tag they print, so two contexts can be told apart.
 */
enum get_mode {
    GET_NULL,   /* return NULL */
    GET_COPY1,  /* stored session for the ID, *copy = 1 */
    GET_COPY0,  /* stored session after SSL_SESSION_up_ref, *copy = 0 */
    GET_DER,    /* d2i_SSL_SESSION of the stored DER, *copy = 0 */
    GET_FIXED   /* cbc.fixed (whatever the ID), *copy = cbc.fixed_copy */
};

struct cb_config {
    int new_ret;    /* what new_cb returns (0 or 1) */
    int new_store;  /* new_cb keeps a reference (and the DER) in the store */
    int get_mode;   /* enum get_mode */
    SSL_SESSION *fixed; /* for GET_FIXED (not owned) */
    int fixed_copy;     /* for GET_FIXED: *copy value to set */
};
extern struct cb_config cbc;
/* Resets cbc to: new_ret 0, no store, GET_NULL. */
void cbc_reset(void);

/* Install (1) or clear (0) the three callbacks, tag 'A' or 'B'. */
void set_cbs(SSL_CTX *ctx, char tag, int new_cb, int remove_cb, int get_cb);

/* A fixed pseudo-random sequence for the random walks (xorshift64*): the
 * same seed gives the same walk in every run and mode. */
void rand_seed(uint64_t seed);
/* The next number of the sequence, in 0 .. n-1 (n > 0). */
long rand_below(long n);

/* Wraps ctx's new_cb (set just before, with set_cbs): each new session first
 * gets a time of its own, T0 + 1000 s times the sessions given one so far
 * (starting at 1: later than the clock reaches in a run), and a timeout of
 * 7200 s. Expiry order then does not depend on which second a handshake
 * ran in, so runs agree even when one is slowed down (valgrind). */
void own_session_times(SSL_CTX *ctx);
/* The count own_session_times has reached: the next session's time is
 * T0 + 1000 * own_times_given(). */
long own_times_given(void);

/* App-side store of sessions (as an external cache would keep them). */
void store_put(SSL_SESSION *s); /* takes over one reference */
SSL_SESSION *store_find(const unsigned char *id, unsigned int len);
/* The stored server session a client session resumes: found by the client's
 * stateful ticket (TLS 1.3), else by its session ID; NULL if not stored. */
SSL_SESSION *store_find_server_copy(SSL_SESSION *client);
/* The n-th stored session (0-based) or NULL. */
SSL_SESSION *store_get(int n);
int store_count(void);
/* Print "store: S1 S2 ..." */
void store_print(void);
/* Frees all stored sessions (prints their frees as they happen). */
void store_clear(void);

/* Build a session without a handshake: ID of len bytes (first byte idbyte,
 * rest 0xA5), protocol version, time T0+time_off, timeout. */
SSL_SESSION *make_session(unsigned char idbyte, unsigned int len, int version,
                          long time_off, long timeout);

const char *ver_name(int version);

#endif
