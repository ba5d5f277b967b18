/* Shared helpers for the sesscache differential C tests (see common.h). */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"
#include "selfsigned.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

time_t T0;
int g_quiet_free;
long g_labelled, g_freed_labelled, g_freed_unlabelled;
struct cb_config cbc;

static EVP_PKEY *g_key;
static X509 *g_cert;
static int g_sess_idx = -1, g_ssl_idx = -1, g_ctx_idx = -1;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static long g_next_sess, g_next_client, g_next_server, g_next_ctx;

/* ---------- errors ---------- */

void setup_failed(const char *what)
{
    unsigned long e;

    printf("SETUP FAILED: %s\n", what);
    while ((e = ERR_get_error()) != 0) {
        char buf[256];

        ERR_error_string_n(e, buf, sizeof(buf));
        printf("  %s\n", buf);
    }
    fflush(stdout);
    exit(2);
}

/* ---------- label ring buffers ---------- */

static char *ringbuf(void)
{
    static __thread char bufs[16][48];
    static __thread int next;

    next = (next + 1) % 16;
    return bufs[next];
}

/* ---------- session labels via ex_data ---------- */

static void sess_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                         long argl, void *argp)
{
    long n = (long)(intptr_t)ptr;

    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    pthread_mutex_lock(&g_lock);
    if (n != 0)
        g_freed_labelled++;
    else
        g_freed_unlabelled++;
    pthread_mutex_unlock(&g_lock);
    if (g_quiet_free == 1 || (g_quiet_free == 2 && n == 0))
        return;
    if (n != 0)
        printf("free S%ld\n", n);
    else
        printf("free ?\n");
}

/* A duplicated session (SSL_SESSION_dup, libssl-internal dups) is a new
 * object: it must not inherit the label. */
static int sess_dup_cb(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from,
                       void **from_d, int idx, long argl, void *argp)
{
    (void)to; (void)from; (void)idx; (void)argl; (void)argp;
    *from_d = NULL;
    return 1;
}

const char *slabel(SSL_SESSION *s)
{
    char *b;
    long n;

    if (s == NULL)
        return "NULL";
    pthread_mutex_lock(&g_lock);
    n = (long)(intptr_t)SSL_SESSION_get_ex_data(s, g_sess_idx);
    if (n == 0) {
        n = ++g_next_sess;
        if (!SSL_SESSION_set_ex_data(s, g_sess_idx, (void *)(intptr_t)n)) {
            pthread_mutex_unlock(&g_lock);
            setup_failed("SSL_SESSION_set_ex_data");
        }
        g_labelled++;
    }
    pthread_mutex_unlock(&g_lock);
    b = ringbuf();
    snprintf(b, 48, "S%ld", n);
    return b;
}

int is_labelled(SSL_SESSION *s)
{
    int n;

    pthread_mutex_lock(&g_lock);
    n = SSL_SESSION_get_ex_data(s, g_sess_idx) != NULL;
    pthread_mutex_unlock(&g_lock);
    return n;
}

void label_counters(long *labelled, long *freed, long *freed_unlabelled)
{
    pthread_mutex_lock(&g_lock);
    *labelled = g_labelled;
    *freed = g_freed_labelled;
    *freed_unlabelled = g_freed_unlabelled;
    pthread_mutex_unlock(&g_lock);
}

/* ---------- ID labels ---------- */

struct idrec {
    unsigned int len;
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
};
static struct idrec *g_ids;
static size_t g_nids, g_capids;

const char *idlabel(const unsigned char *id, unsigned int len)
{
    size_t i;
    char *b = ringbuf();

    if (len > SSL_MAX_SSL_SESSION_ID_LENGTH) {
        snprintf(b, 48, "I?/%u", len);
        return b;
    }
    pthread_mutex_lock(&g_lock);
    for (i = 0; i < g_nids; i++)
        if (g_ids[i].len == len && memcmp(g_ids[i].id, id, len) == 0)
            break;
    if (i == g_nids) {
        if (g_nids == g_capids) {
            size_t ncap = g_capids ? g_capids * 2 : 64;
            struct idrec *n = realloc(g_ids, ncap * sizeof(*n));

            if (n == NULL) {
                pthread_mutex_unlock(&g_lock);
                setup_failed("realloc");
            }
            g_ids = n;
            g_capids = ncap;
        }
        g_ids[i].len = len;
        if (len > 0)
            memcpy(g_ids[i].id, id, len);
        g_nids++;
    }
    pthread_mutex_unlock(&g_lock);
    snprintf(b, 48, "I%zu/%u", i + 1, len);
    return b;
}

const char *sidlabel(SSL_SESSION *s)
{
    const unsigned char *id;
    unsigned int len;

    if (s == NULL)
        return "NULL";
    id = SSL_SESSION_get_id(s, &len);
    return idlabel(id, len);
}

/* ---------- SSL / SSL_CTX labels ---------- */

const char *ssl_label(const SSL *s)
{
    long n;
    char *b;

    if (s == NULL)
        return "NULL";
    n = (long)(intptr_t)SSL_get_ex_data(s, g_ssl_idx);
    b = ringbuf();
    if (n > 0)
        snprintf(b, 48, "C%ld", n);
    else if (n < 0)
        snprintf(b, 48, "V%ld", -n);
    else
        snprintf(b, 48, "?");
    return b;
}

SSL *new_ssl(SSL_CTX *ctx, int server)
{
    SSL *s = SSL_new(ctx);
    long n;

    if (s == NULL)
        setup_failed("SSL_new");
    pthread_mutex_lock(&g_lock);
    n = server ? -(++g_next_server) : ++g_next_client;
    pthread_mutex_unlock(&g_lock);
    if (!SSL_set_ex_data(s, g_ssl_idx, (void *)(intptr_t)n))
        setup_failed("SSL_set_ex_data");
    return s;
}

const char *ctx_label(const SSL_CTX *ctx)
{
    long n;
    char *b;

    if (ctx == NULL)
        return "NULL";
    pthread_mutex_lock(&g_lock);
    n = (long)(intptr_t)SSL_CTX_get_ex_data(ctx, g_ctx_idx);
    if (n == 0) {
        n = ++g_next_ctx;
        if (!SSL_CTX_set_ex_data((SSL_CTX *)ctx, g_ctx_idx, (void *)(intptr_t)n)) {
            pthread_mutex_unlock(&g_lock);
            setup_failed("SSL_CTX_set_ex_data");
        }
    }
    pthread_mutex_unlock(&g_lock);
    b = ringbuf();
    snprintf(b, 48, "X%ld", n);
    return b;
}

/* ---------- key and certificate ---------- */

static void make_cert(void)
{
    if (!selfsigned_make(&g_key, &g_cert))
        setup_failed("building the certificate");
}

void common_init(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    T0 = time(NULL);
    if (!OPENSSL_init_ssl(0, NULL))
        setup_failed("OPENSSL_init_ssl");
    g_sess_idx = SSL_SESSION_get_ex_new_index(0, NULL, NULL, sess_dup_cb,
                                              sess_free_cb);
    g_ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    g_ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (g_sess_idx < 0 || g_ssl_idx < 0 || g_ctx_idx < 0)
        setup_failed("ex_data indices");
    make_cert();
    cbc_reset();
}

void common_cleanup(void)
{
    store_clear();
    X509_free(g_cert);
    EVP_PKEY_free(g_key);
    g_cert = NULL;
    g_key = NULL;
    free(g_ids);
    g_ids = NULL;
    g_nids = g_capids = 0;
}

/* ---------- contexts ---------- */

static const unsigned char SID_CTX[] = "sesscache-test";

void use_server_identity(SSL_CTX *ctx)
{
    ctx_label(ctx);
    if (!SSL_CTX_use_certificate(ctx, g_cert)
        || !SSL_CTX_use_PrivateKey(ctx, g_key)
        || !SSL_CTX_set_session_id_context(ctx, SID_CTX, sizeof(SID_CTX) - 1))
        setup_failed("configuring the server identity");
}

SSL_CTX *new_server_ctx(int min_ver, int max_ver)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        setup_failed("SSL_CTX_new(server)");
    use_server_identity(ctx);
    if ((min_ver && !SSL_CTX_set_min_proto_version(ctx, min_ver))
        || (max_ver && !SSL_CTX_set_max_proto_version(ctx, max_ver)))
        setup_failed("configuring the server ctx");
    return ctx;
}

SSL_CTX *new_client_ctx(int min_ver, int max_ver)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        setup_failed("SSL_CTX_new(client)");
    ctx_label(ctx);
    if ((min_ver && !SSL_CTX_set_min_proto_version(ctx, min_ver))
        || (max_ver && !SSL_CTX_set_max_proto_version(ctx, max_ver)))
        setup_failed("configuring the client ctx");
    return ctx;
}

const char *ver_name(int v)
{
    switch (v) {
    case TLS1_VERSION: return "TLSv1";
    case TLS1_1_VERSION: return "TLSv1.1";
    case TLS1_2_VERSION: return "TLSv1.2";
    case TLS1_3_VERSION: return "TLSv1.3";
    case 0: return "0";
    default: {
        char *b = ringbuf();

        snprintf(b, 48, "0x%x", (unsigned)v);
        return b;
    }
    }
}

/* ---------- handshakes ---------- */

static int step(SSL *s, int *done, int *failed)
{
    int ret, e;

    if (*done || *failed)
        return 0;
    ret = SSL_do_handshake(s);
    if (ret == 1) {
        *done = 1;
        return 1;
    }
    e = SSL_get_error(s, ret);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        *failed = e;
    return 0;
}

static const char *first_error(void)
{
    unsigned long e = ERR_peek_error();
    const char *r;

    if (e == 0)
        return "none";
    r = ERR_reason_error_string(e);
    return r != NULL ? r : "unknown";
}

static int exchange_data(SSL *c, SSL *s)
{
    char buf[16];

    if (SSL_write(c, "ping", 4) != 4)
        return 0;
    if (SSL_read(s, buf, sizeof(buf)) != 4 || memcmp(buf, "ping", 4) != 0)
        return 0;
    if (SSL_write(s, "pong", 4) != 4)
        return 0;
    if (SSL_read(c, buf, sizeof(buf)) != 4 || memcmp(buf, "pong", 4) != 0)
        return 0;
    return 1;
}

void shutdown_pair(SSL *c, SSL *s)
{
    /* client sends close_notify, server answers, both read the other's */
    SSL_shutdown(c);
    SSL_shutdown(s);
    SSL_shutdown(c);
    SSL_shutdown(s);
    ERR_clear_error();
}

void free_pair(SSL *c, SSL *s)
{
    SSL_free(c);
    SSL_free(s);
}

int handshake(SSL_CTX *sctx, SSL_CTX *cctx, const struct hs_opts *o,
              struct hs_result *r)
{
    static const struct hs_opts defaults;
    SSL *c, *s;
    BIO *bc = NULL, *bs = NULL;
    int cdone = 0, sdone = 0, cfail = 0, sfail = 0, i, data_ok = 1;

    if (o == NULL)
        o = &defaults;
    memset(r, 0, sizeof(*r));
    c = new_ssl(cctx, 0);
    s = new_ssl(sctx, 1);
    if (!BIO_new_bio_pair(&bc, 0, &bs, 0))
        setup_failed("BIO_new_bio_pair");
    SSL_set_bio(c, bc, bc);
    SSL_set_bio(s, bs, bs);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    if (o->sni != NULL && !SSL_set_tlsext_host_name(c, o->sni))
        setup_failed("SSL_set_tlsext_host_name");
    if (o->offer != NULL && !SSL_set_session(c, o->offer))
        setup_failed("SSL_set_session");

    if (!o->quiet)
        printf("-- handshake %s-%s offer=%s%s\n", ssl_label(c), ssl_label(s),
               slabel(o->offer), o->unclean ? " (unclean)" : "");
    for (i = 0; i < 50 && !(cdone && sdone) && !cfail && !sfail; i++) {
        step(c, &cdone, &cfail);
        step(s, &sdone, &sfail);
    }
    /* let the peer of a failed side see the alert */
    for (i = 0; i < 3 && (cfail || sfail); i++) {
        step(c, &cdone, &cfail);
        step(s, &sdone, &sfail);
    }
    r->ok = cdone && sdone && !cfail && !sfail;
    if (r->ok && !o->no_data)
        data_ok = exchange_data(c, s);
    if (r->ok) {
        r->srv_reused = SSL_session_reused(s);
        r->cli_reused = SSL_session_reused(c);
    }
    r->client_sess = SSL_get1_session(c);
    if (!o->quiet) {
        if (r->ok)
            printf("   ok %s srv_reused=%d cli_reused=%d data=%s"
                   " client_sess=%s resumable=%d\n",
                   SSL_get_version(s), r->srv_reused, r->cli_reused,
                   data_ok ? "ok" : "FAILED", slabel(r->client_sess),
                   r->client_sess ? SSL_SESSION_is_resumable(r->client_sess) : 0);
        else
            printf("   FAILED client=%s server=%s (err %d/%d) error=%s\n",
                   cdone ? "done" : cfail ? "failed" : "pending",
                   sdone ? "done" : sfail ? "failed" : "pending",
                   cfail, sfail, first_error());
    }
    if (!data_ok)
        r->ok = 0;
    ERR_clear_error();
    if (o->keep) {
        r->c = c;
        r->s = s;
        return r->ok;
    }
    if (r->ok && !o->unclean)
        shutdown_pair(c, s);
    free_pair(c, s);
    return r->ok;
}

/* ---------- printing ---------- */

void section(const char *text)
{
    printf("\n== %s ==\n", text);
}

void print_stats(SSL_CTX *ctx)
{
    printf("stats %s: number=%ld connect=%ld connect_good=%ld connect_reneg=%ld"
           " accept=%ld accept_good=%ld accept_reneg=%ld hits=%ld cb_hits=%ld"
           " misses=%ld timeouts=%ld cache_full=%ld cache_size=%ld mode=0x%lx\n",
           ctx_label(ctx),
           SSL_CTX_sess_number(ctx), SSL_CTX_sess_connect(ctx),
           SSL_CTX_sess_connect_good(ctx), SSL_CTX_sess_connect_renegotiate(ctx),
           SSL_CTX_sess_accept(ctx), SSL_CTX_sess_accept_good(ctx),
           SSL_CTX_sess_accept_renegotiate(ctx), SSL_CTX_sess_hits(ctx),
           SSL_CTX_sess_cb_hits(ctx), SSL_CTX_sess_misses(ctx),
           SSL_CTX_sess_timeouts(ctx), SSL_CTX_sess_cache_full(ctx),
           SSL_CTX_sess_get_cache_size(ctx),
           (unsigned long)SSL_CTX_get_session_cache_mode(ctx));
}

void print_sess(const char *what, SSL_SESSION *s)
{
    if (s == NULL) {
        printf("%s: NULL\n", what);
        return;
    }
    printf("%s: %s resumable=%d id=%s ver=%s\n", what, slabel(s),
           SSL_SESSION_is_resumable(s), sidlabel(s),
           ver_name(SSL_SESSION_get_protocol_version(s)));
}

void resume_chain(SSL_CTX *sctx, SSL_CTX *cctx, int n, int each_offered)
{
    struct hs_result r;
    SSL_SESSION *sess;
    int i;

    handshake(sctx, cctx, NULL, &r);
    print_stats(sctx);
    sess = r.client_sess;
    for (i = 0; i < n; i++) {
        struct hs_opts o = { 0 };

        o.offer = sess;
        handshake(sctx, cctx, &o, &r);
        print_stats(sctx);
        if (each_offered)
            print_sess("  offered session afterwards", sess);
        SSL_SESSION_free(sess);
        sess = r.client_sess;
    }
    if (!each_offered)
        print_sess("client session", sess);
    SSL_SESSION_free(sess);
}

/* ---------- store ---------- */

struct store_ent {
    SSL_SESSION *sess;
    unsigned char *der;
    int derlen;
};
static struct store_ent g_store[64];
static int g_nstore;

void store_put(SSL_SESSION *s)
{
    unsigned char *p;
    int len;

    if (g_nstore == (int)(sizeof(g_store) / sizeof(g_store[0])))
        setup_failed("store full");
    len = i2d_SSL_SESSION(s, NULL);
    if (len <= 0)
        setup_failed("i2d_SSL_SESSION");
    g_store[g_nstore].der = OPENSSL_malloc(len);
    if (g_store[g_nstore].der == NULL)
        setup_failed("malloc");
    p = g_store[g_nstore].der;
    if (i2d_SSL_SESSION(s, &p) != len)
        setup_failed("i2d_SSL_SESSION");
    g_store[g_nstore].derlen = len;
    g_store[g_nstore].sess = s;
    g_nstore++;
}

static struct store_ent *store_find_ent(const unsigned char *id,
                                        unsigned int len)
{
    int i;

    /* newest first */
    for (i = g_nstore - 1; i >= 0; i--) {
        unsigned int l;
        const unsigned char *sid = SSL_SESSION_get_id(g_store[i].sess, &l);

        if (l == len && memcmp(sid, id, len) == 0)
            return &g_store[i];
    }
    return NULL;
}

SSL_SESSION *store_find(const unsigned char *id, unsigned int len)
{
    struct store_ent *e = store_find_ent(id, len);

    return e ? e->sess : NULL;
}

SSL_SESSION *store_find_server_copy(SSL_SESSION *client)
{
    const unsigned char *id;
    unsigned int len;
    size_t ticklen;

    if (SSL_SESSION_has_ticket(client)) {
        /* TLS 1.3: a stateful ticket is the server session's ID */
        SSL_SESSION_get0_ticket(client, &id, &ticklen);
        len = (unsigned int)ticklen;
    } else {
        id = SSL_SESSION_get_id(client, &len);
    }
    return store_find(id, len);
}

SSL_SESSION *store_get(int n)
{
    return n >= 0 && n < g_nstore ? g_store[n].sess : NULL;
}

int store_count(void)
{
    return g_nstore;
}

void store_print(void)
{
    int i;

    printf("store:");
    for (i = 0; i < g_nstore; i++)
        printf(" %s", slabel(g_store[i].sess));
    printf("\n");
}

void store_clear(void)
{
    int i;

    for (i = 0; i < g_nstore; i++) {
        SSL_SESSION_free(g_store[i].sess);
        OPENSSL_free(g_store[i].der);
    }
    g_nstore = 0;
}

/* ---------- logging callbacks ---------- */

void cbc_reset(void)
{
    memset(&cbc, 0, sizeof(cbc));
    cbc.get_mode = GET_NULL;
}

static int do_new_cb(char tag, SSL *ssl, SSL_SESSION *sess)
{
    int ret = cbc.new_ret;

    printf("new_cb[%c] %s %s id=%s resumable=%d ver=%s ctx=%s -> %d%s\n", tag,
           ssl_label(ssl), slabel(sess), sidlabel(sess),
           SSL_SESSION_is_resumable(sess),
           ver_name(SSL_SESSION_get_protocol_version(sess)),
           ctx_label(SSL_get_SSL_CTX(ssl)), ret,
           cbc.new_store ? " (stored)" : "");
    if (cbc.new_store) {
        if (!ret)
            SSL_SESSION_up_ref(sess);
        store_put(sess);
    } else if (ret) {
        /* we own the reference and don't want it */
        SSL_SESSION_free(sess);
    }
    return ret;
}

static void do_remove_cb(char tag, SSL_CTX *ctx, SSL_SESSION *sess)
{
    printf("remove_cb[%c] %s %s id=%s resumable=%d\n", tag, ctx_label(ctx),
           slabel(sess), sidlabel(sess), SSL_SESSION_is_resumable(sess));
}

static SSL_SESSION *do_get_cb(char tag, SSL *ssl, const unsigned char *id,
                              int len, int *copy)
{
    SSL_SESSION *ret = NULL;
    struct store_ent *e;
    const unsigned char *p;
    int copy_in = *copy;

    switch (cbc.get_mode) {
    case GET_NULL:
        break;
    case GET_COPY1:
        ret = store_find(id, (unsigned int)len);
        if (ret != NULL)
            *copy = 1;
        break;
    case GET_COPY0:
        ret = store_find(id, (unsigned int)len);
        if (ret != NULL) {
            SSL_SESSION_up_ref(ret);
            *copy = 0;
        }
        break;
    case GET_DER:
        e = store_find_ent(id, (unsigned int)len);
        if (e != NULL) {
            p = e->der;
            ret = d2i_SSL_SESSION(NULL, &p, e->derlen);
            if (ret == NULL)
                setup_failed("d2i_SSL_SESSION");
            *copy = 0;
        }
        break;
    case GET_FIXED:
        ret = cbc.fixed;
        if (ret != NULL) {
            if (!cbc.fixed_copy)
                SSL_SESSION_up_ref(ret);
            *copy = cbc.fixed_copy;
        }
        break;
    }
    printf("get_cb[%c] %s id=%s copy_in=%d -> %s copy=%d", tag,
           ssl_label(ssl), idlabel(id, (unsigned int)len), copy_in,
           slabel(ret), *copy);
    if (ret != NULL)
        printf(" (resumable=%d ver=%s)", SSL_SESSION_is_resumable(ret),
               ver_name(SSL_SESSION_get_protocol_version(ret)));
    printf("\n");
    return ret;
}

static int new_cb_A(SSL *s, SSL_SESSION *x) { return do_new_cb('A', s, x); }
static int new_cb_B(SSL *s, SSL_SESSION *x) { return do_new_cb('B', s, x); }
static void remove_cb_A(SSL_CTX *c, SSL_SESSION *x) { do_remove_cb('A', c, x); }
static void remove_cb_B(SSL_CTX *c, SSL_SESSION *x) { do_remove_cb('B', c, x); }
static SSL_SESSION *get_cb_A(SSL *s, const unsigned char *id, int len, int *copy)
{
    return do_get_cb('A', s, id, len, copy);
}
static SSL_SESSION *get_cb_B(SSL *s, const unsigned char *id, int len, int *copy)
{
    return do_get_cb('B', s, id, len, copy);
}

void set_cbs(SSL_CTX *ctx, char tag, int new_cb, int remove_cb, int get_cb)
{
    int b = (tag == 'B');

    SSL_CTX_sess_set_new_cb(ctx, new_cb ? (b ? new_cb_B : new_cb_A) : NULL);
    SSL_CTX_sess_set_remove_cb(ctx,
                               remove_cb ? (b ? remove_cb_B : remove_cb_A) : NULL);
    SSL_CTX_sess_set_get_cb(ctx, get_cb ? (b ? get_cb_B : get_cb_A) : NULL);
}

/* ---------- a fixed pseudo-random sequence ---------- */

static uint64_t g_rng;

void rand_seed(uint64_t seed)
{
    g_rng = seed;
}

long rand_below(long n)
{
    /* xorshift64*: any fixed sequence will do */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (long)((g_rng * 0x2545F4914F6CDD1DULL) % (uint64_t)n);
}

/* ---------- session times of our own ---------- */

static long g_times_given = 1;
static int (*g_wrapped_new_cb)(SSL *, SSL_SESSION *);

static int new_cb_with_own_time(SSL *ssl, SSL_SESSION *sess)
{
    SSL_SESSION_set_timeout(sess, 7200);
    SSL_SESSION_set_time(sess, (long)T0 + 1000 * g_times_given++);
    return g_wrapped_new_cb(ssl, sess);
}

void own_session_times(SSL_CTX *ctx)
{
    g_wrapped_new_cb = SSL_CTX_sess_get_new_cb(ctx);
    if (g_wrapped_new_cb == NULL)
        setup_failed("own_session_times: no new_cb to wrap");
    SSL_CTX_sess_set_new_cb(ctx, new_cb_with_own_time);
}

long own_times_given(void)
{
    return g_times_given;
}

/* ---------- sessions without handshakes ---------- */

SSL_SESSION *make_session(unsigned char idbyte, unsigned int len, int version,
                          long time_off, long timeout)
{
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH + 8];
    SSL_SESSION *s = SSL_SESSION_new();

    if (s == NULL)
        setup_failed("SSL_SESSION_new");
    memset(id, 0xA5, sizeof(id));
    id[0] = idbyte;
    if (!SSL_SESSION_set1_id(s, id, len)
        || !SSL_SESSION_set_protocol_version(s, version)
        || !SSL_SESSION_set_timeout(s, timeout))
        setup_failed("make_session");
    SSL_SESSION_set_time(s, (long)(T0 + time_off));
    return s;
}

SSL_CTX *new_cache_ctx(void)
{
    SSL_CTX *ctx = new_server_ctx(0, 0);

    cbc_reset();
    set_cbs(ctx, 'A', 0, 1, 0);
    return ctx;
}
