/*
 * End-to-end handshakes over in-memory BIO pairs, through libssl's public
 * API only.
 *
 *   bench_hs KIND CACHE THREADS [PREFILL] [HANDSHAKES]
 *     KIND   full      full TLS 1.3 handshakes (stateful tickets: the
 *                      server caches every new session)
 *            resume12  TLS 1.2 session-ID resumption
 *            resume13  TLS 1.3 stateful-ticket resumption (SSL_OP_NO_TICKET)
 *     CACHE  internal  libssl's (or sesscache's) internal cache only
 *            external  an application cache only (NO_INTERNAL): DER via
 *                      i2d_SSL_SESSION, handed back by d2i_SSL_SESSION
 *                      with *copy = 0
 *            both      internal cache and the application's callbacks
 *     THREADS          client/server pairs run in parallel on one server ctx
 *     PREFILL          sessions put into the server cache first (20000)
 *     HANDSHAKES       per thread (default 400 full, 1500 resumed)
 *
 * Prints one line: ops_per_s=<handshakes per second, all threads>.  Exits 1
 * if a handshake that should resume did not.
 */
#include "bench.h"
#include "../selfsigned.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>

static EVP_PKEY *key;
static X509 *cert;
static SSL_CTX *server;
static int kind_resume, tls12;

/* ---- the application's external cache ---------------------------------- */

#define EXT_BUCKETS 65536
struct ext_entry {
    struct ext_entry *next;
    unsigned int id_len;
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    long der_len;
    unsigned char *der;
};
static struct ext_entry *ext_table[EXT_BUCKETS];
static pthread_mutex_t ext_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned int ext_hash(const unsigned char *id, unsigned int len)
{
    unsigned int h = 2166136261u;
    for (unsigned int i = 0; i < len; i++)
        h = (h ^ id[i]) * 16777619u;
    return h & (EXT_BUCKETS - 1);
}

static struct ext_entry **ext_find(const unsigned char *id, unsigned int len)
{
    struct ext_entry **p = &ext_table[ext_hash(id, len)];
    while (*p != NULL && ((*p)->id_len != len || memcmp((*p)->id, id, len) != 0))
        p = &(*p)->next;
    return p;
}

static int ext_new(SSL *ssl, SSL_SESSION *s)
{
    unsigned int len;
    const unsigned char *id = SSL_SESSION_get_id(s, &len);
    int der_len = i2d_SSL_SESSION(s, NULL);
    struct ext_entry *e = calloc(1, sizeof(*e));
    unsigned char *p;

    (void)ssl;
    BENCH_CHECK(e != NULL && der_len > 0 && len <= sizeof(e->id));
    e->der = p = malloc((size_t)der_len);
    BENCH_CHECK(p != NULL);
    e->der_len = i2d_SSL_SESSION(s, &p);
    e->id_len = len;
    memcpy(e->id, id, len);
    pthread_mutex_lock(&ext_lock);
    struct ext_entry **slot = ext_find(id, len);
    if (*slot != NULL) { /* replace */
        struct ext_entry *old = *slot;
        e->next = old->next;
        free(old->der);
        free(old);
    }
    *slot = e;
    pthread_mutex_unlock(&ext_lock);
    return 0; /* we keep DER, not the session */
}

static SSL_SESSION *ext_get(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    unsigned char der[4096];
    long der_len = 0;
    const unsigned char *p = der;

    (void)ssl;
    pthread_mutex_lock(&ext_lock);
    struct ext_entry *e = *ext_find(id, (unsigned int)len);
    if (e != NULL && e->der_len <= (long)sizeof(der)) {
        der_len = e->der_len;
        memcpy(der, e->der, (size_t)der_len);
    }
    pthread_mutex_unlock(&ext_lock);
    *copy = 0;
    return der_len > 0 ? d2i_SSL_SESSION(NULL, &p, der_len) : NULL;
}

static void ext_remove(SSL_CTX *ctx, SSL_SESSION *s)
{
    unsigned int len;
    const unsigned char *id = SSL_SESSION_get_id(s, &len);

    (void)ctx;
    pthread_mutex_lock(&ext_lock);
    struct ext_entry **slot = ext_find(id, len);
    struct ext_entry *e = *slot;
    if (e != NULL)
        *slot = e->next;
    pthread_mutex_unlock(&ext_lock);
    if (e != NULL) {
        free(e->der);
        free(e);
    }
}

/* ---- handshakes --------------------------------------------------------- */

struct worker {
    long handshakes;
    pthread_barrier_t *start;
    int failed;
};

static void *run(void *p)
{
    struct worker *w = p;
    SSL_CTX *client = SSL_CTX_new(TLS_client_method());
    SSL_SESSION *saved = NULL;

    BENCH_CHECK(client != NULL);
    if (tls12)
        BENCH_CHECK(SSL_CTX_set_max_proto_version(client, TLS1_2_VERSION));
    if (kind_resume)
        bench_handshake(server, client, NULL, &saved); /* the session to resume */
    pthread_barrier_wait(w->start);
    for (long i = 0; i < w->handshakes; i++) {
        int reused = bench_handshake(server, client, saved, NULL);
        if (kind_resume && !reused)
            w->failed++;
    }
    SSL_SESSION_free(saved);
    SSL_CTX_free(client);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "";
    const char *cache = argc > 2 ? argv[2] : "";
    long threads = bench_arg_long(argc, argv, 3, 1);
    long prefill = bench_arg_long(argc, argv, 4, 20000);
    long n;
    pthread_t tid[16];
    struct worker w[16];
    pthread_barrier_t start;
    int failed = 0;

    kind_resume = strcmp(kind, "full") != 0;
    tls12 = strcmp(kind, "resume12") == 0;
    n = bench_arg_long(argc, argv, 5, kind_resume ? 1500 : 400);
    if ((strcmp(kind, "full") && strcmp(kind, "resume12") && strcmp(kind, "resume13"))
        || (strcmp(cache, "internal") && strcmp(cache, "external") && strcmp(cache, "both"))
        || threads < 1 || threads > 16) {
        fprintf(stderr, "usage: %s full|resume12|resume13 internal|external|both THREADS [PREFILL] [HANDSHAKES]\n", argv[0]);
        return 2;
    }
    BENCH_CHECK(selfsigned_make(&key, &cert));
    server = bench_server_ctx(cert, key);
    SSL_CTX_set_session_cache_mode(server, strcmp(cache, "external") == 0
                                   ? SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL
                                   : SSL_SESS_CACHE_SERVER);
    /* libssl's default size; a prefill beyond it raises it */
    SSL_CTX_sess_set_cache_size(server, prefill + 480 > SSL_SESSION_CACHE_MAX_SIZE_DEFAULT
                                ? prefill + 480 : SSL_SESSION_CACHE_MAX_SIZE_DEFAULT);
    if (strcmp(cache, "internal") != 0) {
        SSL_CTX_sess_set_new_cb(server, ext_new);
        SSL_CTX_sess_set_get_cb(server, ext_get);
        SSL_CTX_sess_set_remove_cb(server, ext_remove);
    }
    /* sessions that expire before any handshake's (time now, 200 s < 300 s),
     * so new sessions go in at the head of libssl's list: the usual case */
    long now = (long)time(NULL);
    for (long i = 0; i < prefill; i++) {
        SSL_SESSION *s = bench_session((uint64_t)i + 7777777, TLS1_2_VERSION, now, 200);
        BENCH_CHECK(SSL_CTX_add_session(server, s) == 1);
        SSL_SESSION_free(s);
    }

    BENCH_CHECK(pthread_barrier_init(&start, NULL, (unsigned)threads + 1) == 0);
    for (long k = 0; k < threads; k++) {
        w[k] = (struct worker){ n, &start, 0 };
        BENCH_CHECK(pthread_create(&tid[k], NULL, run, &w[k]) == 0);
    }
    pthread_barrier_wait(&start);
    double t0 = bench_now_ns();
    for (long k = 0; k < threads; k++)
        BENCH_CHECK(pthread_join(tid[k], NULL) == 0);
    double total = bench_now_ns() - t0;
    for (long k = 0; k < threads; k++)
        failed += w[k].failed;
    if (failed) {
        fprintf(stderr, "bench_hs: %d handshakes did not resume\n", failed);
        return 1;
    }
    printf("ops_per_s=%.1f\n", (double)(n * threads) / (total / 1e9));
    SSL_CTX_free(server);
    X509_free(cert);
    EVP_PKEY_free(key);
    return 0;
}
