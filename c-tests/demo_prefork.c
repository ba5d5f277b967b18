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
#include <dlfcn.h>
#include <signal.h>
#include <sys/wait.h>

#define DEMO_NAME "demo_prefork"
#include "demo_common.h"
#include "selfsigned.h"

#define WORKERS 4
#define CLIENTS 100

/* A worker: serves connections until the parent kills it. */
static void worker(int listener, SSL_CTX *ctx, int id)
{
    for (;;)
        demo_serve_one(listener, ctx, id);
}

/* One connection offering `offer` (or nothing); returns the new session and
 * sets *resumed and *by (the worker that served it). */
static SSL_SESSION *visit(SSL_CTX *cctx, int port, SSL_SESSION *offer, int *resumed, int *by)
{
    const char *version;
    return demo_visit(cctx, port, offer, resumed, by, &version);
}

static int run(int version, EVP_PKEY *key, X509 *cert)
{
    SSL_CTX *sctx = demo_server_ctx(version, key, cert);
    int port;
    int listener = demo_listen(64, &port);

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

    SSL_CTX *cctx = demo_client_ctx(version);
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
