/*
 * demo: a TLS server and client on 127.0.0.1 that use libssl's server-side
 * session cache, written against plain libssl's API only.
 *
 * `make demo` runs it twice: once with the machine's libssl alone, once with
 * libsesscache preloaded (and SESSCACHE_LOG=1, so the library prints each
 * cache event). The application sees the same thing both times; the second
 * time the cache is sesscache's.
 *
 * The server keeps sessions in its internal cache (SSL_OP_NO_TICKET, so TLS
 * 1.3 uses stateful tickets and resumption really comes from the cache) and
 * installs new/remove callbacks that print. The client connects four times
 * per protocol version, each time offering the previous session.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>

#define DEMO_NAME "demo"
#include "demo_common.h"
#include "sesscache.h"
#include "selfsigned.h"

#define CONNECTIONS 4

static const char *hex4(const unsigned char *id, unsigned int len)
{
    static char buf[16];
    buf[0] = '\0';
    for (unsigned int i = 0; i < len && i < 4; i++)
        sprintf(buf + 2 * i, "%02x", id[i]);
    return buf;
}

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    unsigned int len;
    const unsigned char *id = SSL_SESSION_get_id(sess, &len);
    (void)ssl;
    printf("  server new_session_cb: session %s… cached\n", hex4(id, len));
    return 0; /* we keep no reference of our own */
}

static void on_remove_session(SSL_CTX *ctx, SSL_SESSION *sess)
{
    unsigned int len;
    const unsigned char *id = SSL_SESSION_get_id(sess, &len);
    (void)ctx;
    printf("  server remove_session_cb: session %s… removed\n", hex4(id, len));
}

/* The throw-away certificate (c-tests/selfsigned.h). */
static void make_cert(EVP_PKEY **key, X509 **cert)
{
    if (!selfsigned_make(key, cert))
        die("certificate");
}

struct server {
    int listener;
    SSL_CTX *ctx;
    int connections;
};

static void *serve(void *arg)
{
    struct server *srv = arg;
    for (int i = 0; i < srv->connections; i++)
        if (demo_serve_one(srv->listener, srv->ctx, 0) != 0)
            die("accept");
    return NULL;
}

static SSL_SESSION *client_connect(SSL_CTX *cctx, int port, SSL_SESSION *offer, int n)
{
    int resumed, by;
    const char *version;
    SSL_SESSION *sess = demo_visit(cctx, port, offer, &resumed, &by, &version);
    printf("client connection %d (%s): offered %s, server says %s handshake\n", n, version,
           offer ? "a session" : "nothing", resumed ? "a RESUMED" : "a full");
    return sess;
}

static void run(int version, EVP_PKEY *key, X509 *cert)
{
    SSL_CTX *sctx = demo_server_ctx(version, key, cert);
    SSL_CTX *cctx = demo_client_ctx(version);
    SSL_CTX_sess_set_new_cb(sctx, on_new_session);
    SSL_CTX_sess_set_remove_cb(sctx, on_remove_session);

    int port;
    int listener = demo_listen(8, &port);

    printf("\n== %s, server on 127.0.0.1:%d ==\n",
           version == TLS1_2_VERSION ? "TLS 1.2 session IDs" : "TLS 1.3 stateful tickets", port);
    struct server srv = { listener, sctx, CONNECTIONS };
    pthread_t thread;
    if (pthread_create(&thread, NULL, serve, &srv) != 0)
        die("pthread_create");

    SSL_SESSION *sess = NULL;
    for (int i = 1; i <= CONNECTIONS; i++) {
        SSL_SESSION *next = client_connect(cctx, port, sess, i);
        SSL_SESSION_free(sess);
        sess = next;
    }
    pthread_join(thread, NULL);
    close(listener);

    printf("server cache: %ld session(s) cached, %ld hit(s), %ld miss(es), %ld accept(s)\n",
           SSL_CTX_sess_number(sctx), SSL_CTX_sess_hits(sctx), SSL_CTX_sess_misses(sctx),
           SSL_CTX_sess_accept(sctx));
    if (version == TLS1_2_VERSION) {
        /* In TLS 1.2 the client's session carries the server's session ID,
         * so it names the server's cached copy (in TLS 1.3 it carries the
         * ticket instead). */
        printf("removing the client's last session from the server cache: SSL_CTX_remove_session -> %d\n",
               SSL_CTX_remove_session(sctx, sess));
    }
    printf("freeing the server SSL_CTX (remaining sessions leave the cache):\n");
    SSL_CTX_free(sctx);
    SSL_SESSION_free(sess);
    SSL_CTX_free(cctx);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    Dl_info info;
    void *provider = dlsym(RTLD_DEFAULT, "SSL_CTX_new");
    printf("SSL_CTX_new comes from: %s\n",
           provider && dladdr(provider, &info) && info.dli_fname ? info.dli_fname : "?");

    EVP_PKEY *key;
    X509 *cert;
    make_cert(&key, &cert);
    run(TLS1_2_VERSION, key, cert);
    run(TLS1_3_VERSION, key, cert);
    X509_free(cert);
    EVP_PKEY_free(key);
    return 0;
}
