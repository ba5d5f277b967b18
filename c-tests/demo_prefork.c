/*
 * demo_prefork: a pre-fork TLS server on 127.0.0.1 (one listening socket,
 * WORKERS processes forked after SSL_CTX_new, each accepting on it, as
 * nginx's workers do) and returning clients, written against plain libssl's
 * API only.
 *
 * `make demo` runs it with the machine's libssl alone, then with
 * libsesscache preloaded and SESSCACHE_STORE=shm. Each client connects
 * once (a full handshake), then comes back offering its session; the kernel
 * hands each connection to whichever worker accepts first. With one cache
 * per process a returning client resumes only if it reaches the worker that
 * made its session; with the shared-memory store every worker finds it.
 *
 * The server keeps sessions in its internal cache (SSL_OP_NO_TICKET, so TLS
 * 1.3 uses stateful tickets and resumption comes from the cache). Each reply
 * names the worker, so the client also counts returns served by another
 * worker than the first visit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "selfsigned.h"

#define WORKERS 4
#define CLIENTS 100

static void die(const char *what)
{
    fprintf(stderr, "demo_prefork: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* A worker: serves connections until the parent kills it. */
static void worker(int listener, SSL_CTX *ctx, int id)
{
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            continue;
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            char reply[32];
            snprintf(reply, sizeof reply, "%c%d\n", SSL_session_reused(ssl) ? 'R' : 'F', id);
            SSL_write(ssl, reply, (int)strlen(reply));
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(fd);
    }
}

/* One connection offering `offer` (or nothing); returns the new session and
 * sets *resumed and *by (the worker that served it). */
static SSL_SESSION *visit(SSL_CTX *cctx, int port, SSL_SESSION *offer, int *resumed, int *by)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        die("connect");
    SSL *ssl = SSL_new(cctx);
    SSL_set_fd(ssl, fd);
    if (offer != NULL)
        SSL_set_session(ssl, offer);
    if (SSL_connect(ssl) != 1)
        die("SSL_connect");
    char reply[32] = { 0 };
    if (SSL_read(ssl, reply, sizeof reply - 1) <= 0) /* also reads any tickets */
        die("SSL_read");
    *resumed = reply[0] == 'R';
    *by = atoi(reply + 1);
    SSL_SESSION *sess = SSL_get1_session(ssl);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    return sess;
}

static int run(int version, EVP_PKEY *key, X509 *cert)
{
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
    if (sctx == NULL)
        die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(sctx, version);
    SSL_CTX_set_max_proto_version(sctx, version);
    SSL_CTX_use_certificate(sctx, cert);
    SSL_CTX_use_PrivateKey(sctx, key);
    SSL_CTX_set_session_id_context(sctx, (const unsigned char *)"demo", 4);
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0
        || listen(listener, 64) != 0
        || getsockname(listener, (struct sockaddr *)&addr, &len) != 0)
        die("listen on 127.0.0.1");

    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        pids[w] = fork();
        if (pids[w] < 0)
            die("fork");
        if (pids[w] == 0) {
            worker(listener, sctx, w + 1);
            _exit(0);
        }
    }

    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    if (cctx == NULL)
        die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(cctx, version);
    SSL_CTX_set_max_proto_version(cctx, version);
    int port = ntohs(addr.sin_port);
    int resumed = 0, elsewhere = 0, resumed_elsewhere = 0;
    for (int c = 0; c < CLIENTS; c++) {
        int r, first, second;
        SSL_SESSION *sess = visit(cctx, port, NULL, &r, &first);
        SSL_SESSION *again = visit(cctx, port, sess, &r, &second);
        resumed += r;
        if (second != first) {
            elsewhere++;
            resumed_elsewhere += r;
        }
        SSL_SESSION_free(sess);
        SSL_SESSION_free(again);
    }
    for (int w = 0; w < WORKERS; w++)
        kill(pids[w], SIGKILL);
    for (int w = 0; w < WORKERS; w++)
        waitpid(pids[w], NULL, 0);
    close(listener);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);

    printf("%s: %d of %d returning clients resumed (%d%%); %d came back to another worker, "
           "%d of those resumed\n",
           version == TLS1_2_VERSION ? "TLS 1.2" : "TLS 1.3", resumed, CLIENTS,
           100 * resumed / CLIENTS, elsewhere, resumed_elsewhere);
    return resumed;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *store = getenv("SESSCACHE_STORE");
    int with_library = dlsym(RTLD_DEFAULT, "sesscache_configure") != NULL;
    printf("pre-fork server, %d workers, %s%s\n", WORKERS,
           with_library ? "sesscache" : "plain libssl (one cache per worker)",
           with_library && store != NULL ? (strcmp(store, "shm") == 0 ? " with SESSCACHE_STORE=shm" : " with a store") : "");

    EVP_PKEY *key;
    X509 *cert;
    if (!selfsigned_make(&key, &cert))
        die("certificate");
    run(TLS1_2_VERSION, key, cert);
    run(TLS1_3_VERSION, key, cert);
    X509_free(cert);
    EVP_PKEY_free(key);
    return 0;
}
