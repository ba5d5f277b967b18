/*
 * store_server: a plain libssl TLS server for the shared-store tests
 * (c-tests/store/run-store-tests.sh). It uses only libssl's public API; the
 * tests run it with LD_PRELOAD=libsesscache.so and SESSCACHE_STORE=… so that
 * two of these processes share sessions through Redis.
 *
 *   store_server PORT VERSION SID_CTX [TIMEOUT_SECONDS]
 *
 * PORT 0 picks a free port. VERSION is 1.2 or 1.3 (min = max). SID_CTX is
 * the session-ID context. TIMEOUT_SECONDS, if given, is the session lifetime
 * (SSL_CTX_set_timeout). The internal cache runs in its default mode (server
 * cache) with SSL_OP_NO_TICKET, so TLS 1.3 uses stateful tickets and every
 * resumption comes from the session cache.
 *
 * Prints "READY port=N" once it listens. Then a single-threaded accept loop:
 * handshake, read one line; if that read fails with SSL_ERROR_SYSCALL or
 * SSL_ERROR_SSL the client went away without close_notify, and the SSL is
 * freed without SSL_shutdown (libssl then removes the session from the
 * cache); otherwise it replies "resumed" or "full" and shuts down cleanly.
 * SIGTERM/SIGINT end the loop; the server prints its SSL_CTX_sess_*
 * statistics and returns from main (exit handlers run, so sesscache writes
 * its final SESSCACHE_STATS file).
 *
 * STORE_SERVER_PROCS (for the shm store tests, c-tests/shm/): "fork" forks a
 * child per connection, which serves it and exits (the inetd pattern); a
 * number N forks N workers after SSL_CTX_new, each running the accept loop
 * (pre-fork); the parent then only waits for SIGTERM and passes it on.
 * STORE_SERVER_EARLY_DATA=1 allows TLS 1.3 early data (SSL_read_early_data)
 * and replies "early" to a connection whose early data was accepted.
 * STORE_SERVER_SESSION_PAD=N attaches N bytes of application data to every
 * new session (SSL_SESSION_set1_ticket_appdata, from the certificate
 * callback, before the session is cached), so that sessions can be made
 * larger than what a store slot holds. At exit the server prints the
 * library's store_oversize counter (sesscache_counter, found with dlsym)
 * when the library is loaded.
 * STORE_SERVER_THREADS=T runs the accept loop on T threads of each process
 * (of each worker with STORE_SERVER_PROCS=N). STORE_SERVER_FLUSH_MS=M adds
 * a thread that empties the cache every M ms with SSL_CTX_flush_sessions,
 * alternately with t a day ahead (every session expired: removals that
 * reach the store) and t = 0 (everything dropped). Both are for the shm
 * soak.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "sesscache.h"
#include "../selfsigned.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "store_server: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static void make_cert(EVP_PKEY **key, X509 **cert)
{
    if (!selfsigned_make(key, cert))
        die("certificate");
}

static _Atomic long served, resumed, unclean, failed_hs, early_accepted, flushes;
static int early_data;
static size_t session_pad;

/* Pads the connection's new session (see STORE_SERVER_SESSION_PAD). */
static int pad_session(SSL *ssl, void *arg)
{
    (void)arg;
    SSL_SESSION *sess = SSL_get_session(ssl);
    void *have = NULL;
    size_t have_len = 0;
    if (sess == NULL || session_pad == 0)
        return 1;
    SSL_SESSION_get0_ticket_appdata(sess, &have, &have_len);
    if (have_len == session_pad)
        return 1;
    unsigned char *pad = malloc(session_pad);
    if (pad == NULL)
        return 0;
    for (size_t i = 0; i < session_pad; i++)
        pad[i] = (unsigned char)(i * 131 + 7);
    int ok = SSL_SESSION_set1_ticket_appdata(sess, pad, session_pad);
    free(pad);
    return ok;
}

/* The library's counter NAME, or -1 without the library. */
static long long library_counter(const char *name)
{
    int (*get)(const char *, uint64_t *) =
        (int (*)(const char *, uint64_t *))dlsym(RTLD_DEFAULT, "sesscache_counter");
    uint64_t v = 0;
    return get != NULL && get(name, &v) == 1 ? (long long)v : -1;
}

/* Reads the client's early data if it sent any: 1 if it was accepted. */
static int read_early(SSL *ssl)
{
    char buf[512];
    size_t got;
    int accepted = 0;
    for (;;) {
        int r = SSL_read_early_data(ssl, buf, sizeof buf, &got);
        if (r == SSL_READ_EARLY_DATA_ERROR)
            return -1;
        if (got > 0)
            accepted = 1;
        if (r == SSL_READ_EARLY_DATA_FINISH)
            break;
    }
    return accepted && SSL_get_early_data_status(ssl) == SSL_EARLY_DATA_ACCEPTED;
}

static void serve_one(SSL_CTX *ctx, int fd)
{
    struct timeval tv = { .tv_sec = 5, .tv_usec = 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        die("SSL_new");
    SSL_set_fd(ssl, fd);
    served++;
    int early = early_data ? read_early(ssl) : 0;
    if (early < 0 || SSL_accept(ssl) != 1) {
        failed_hs++;
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
        return;
    }
    int reused = SSL_session_reused(ssl);
    if (reused)
        resumed++;
    if (early > 0)
        early_accepted++;
    char line[256];
    int got = SSL_read(ssl, line, sizeof line - 1);
    if (got <= 0) {
        int err = SSL_get_error(ssl, got);
        ERR_clear_error();
        if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL) {
            /* The peer went away without close_notify: no SSL_shutdown, so
             * SSL_free makes libssl remove the session from the cache. */
            unclean++;
            SSL_free(ssl);
            close(fd);
            return;
        }
        /* close_notify before any data (SSL_ERROR_ZERO_RETURN): clean. */
    } else {
        const char *reply = early > 0 ? "early\n" : reused ? "resumed\n" : "full\n";
        SSL_write(ssl, reply, (int)strlen(reply));
    }
    SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
}

static SSL_CTX *loop_ctx;
static int loop_listener, loop_fork_per_conn;

/* Serves connections until SIGTERM (one of these per thread). */
static void *accept_loop(void *arg)
{
    (void)arg;
    while (!stop) {
        struct pollfd pfd = { .fd = loop_listener, .events = POLLIN };
        int n = poll(&pfd, 1, 200);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (n == 0)
            continue;
        int fd = accept(loop_listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            die("accept");
        }
        if (loop_fork_per_conn) {
            pid_t pid = fork();
            if (pid == 0) {
                close(loop_listener);
                serve_one(loop_ctx, fd);
                _exit(0);
            }
            close(fd);
            served++;
            while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
            continue;
        }
        serve_one(loop_ctx, fd);
    }
    return NULL;
}

/* Empties the cache every *arg ms until SIGTERM. */
static void *flush_loop(void *arg)
{
    long ms = *(long *)arg;
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    while (!stop) {
        nanosleep(&ts, NULL);
        /* Alternately everything as expired a day from now (removals that
         * reach the store) and everything (t = 0, dropped only here). */
        SSL_CTX_flush_sessions(loop_ctx, flushes % 2 ? 0 : (long)time(NULL) + 86400);
        flushes++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s PORT 1.2|1.3 SID_CTX [TIMEOUT_SECONDS]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int port = atoi(argv[1]);
    int version;
    if (strcmp(argv[2], "1.2") == 0)
        version = TLS1_2_VERSION;
    else if (strcmp(argv[2], "1.3") == 0)
        version = TLS1_3_VERSION;
    else {
        fprintf(stderr, "store_server: version must be 1.2 or 1.3\n");
        return 2;
    }
    const char *sid_ctx = argv[3];
    long timeout = argc == 5 ? atol(argv[4]) : 0;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    EVP_PKEY *key;
    X509 *cert;
    make_cert(&key, &cert);

    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx, version);
    SSL_CTX_set_max_proto_version(ctx, version);
    if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
        die("certificate setup");
    if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)sid_ctx,
                                       (unsigned int)strlen(sid_ctx)) != 1)
        die("SSL_CTX_set_session_id_context");
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (timeout > 0)
        SSL_CTX_set_timeout(ctx, timeout);
    const char *early_env = getenv("STORE_SERVER_EARLY_DATA");
    early_data = early_env != NULL && strcmp(early_env, "1") == 0;
    if (early_data)
        SSL_CTX_set_max_early_data(ctx, 16384);
    const char *pad_env = getenv("STORE_SERVER_SESSION_PAD");
    session_pad = pad_env != NULL ? (size_t)atol(pad_env) : 0;
    if (session_pad > 0)
        SSL_CTX_set_cert_cb(ctx, pad_session, NULL);
    const char *procs_env = getenv("STORE_SERVER_PROCS");
    int fork_per_conn = procs_env != NULL && strcmp(procs_env, "fork") == 0;
    int workers = procs_env != NULL && !fork_per_conn ? atoi(procs_env) : 0;

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    if (listener < 0
        || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0
        || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0
        || listen(listener, 64) != 0
        || getsockname(listener, (struct sockaddr *)&addr, &alen) != 0)
        die("listen on 127.0.0.1");
    printf("READY port=%d pid=%d version=%s sid_ctx=%s timeout=%ld\n", ntohs(addr.sin_port),
           (int)getpid(), argv[2], sid_ctx, SSL_CTX_get_timeout(ctx));

    pid_t worker_pids[64];
    int is_parent = workers > 0;
    if (workers > 64)
        workers = 64;
    for (int w = 0; w < workers; w++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            is_parent = 0;
            break;
        }
        worker_pids[w] = pid;
    }
    if (is_parent) {
        while (!stop)
            pause();
        for (int w = 0; w < workers; w++)
            kill(worker_pids[w], SIGTERM);
        for (int w = 0; w < workers; w++)
            waitpid(worker_pids[w], NULL, 0);
        printf("parent workers=%d\n", workers);
        return 0;
    }

    const char *threads_env = getenv("STORE_SERVER_THREADS");
    int threads = threads_env != NULL ? atoi(threads_env) : 1;
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
    const char *flush_env = getenv("STORE_SERVER_FLUSH_MS");
    long flush_ms = flush_env != NULL ? atol(flush_env) : 0;
    pthread_t tids[65];
    int started = 0;
    loop_ctx = ctx;
    loop_listener = listener;
    loop_fork_per_conn = fork_per_conn;
    /* Several threads poll one listener: the losers of an accept get
     * EAGAIN instead of blocking past SIGTERM. */
    if (threads > 1 && fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK) != 0)
        die("O_NONBLOCK");
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tids[started], NULL, accept_loop, NULL) == 0)
            started++;
    if (flush_ms > 0 && pthread_create(&tids[started], NULL, flush_loop, &flush_ms) == 0)
        started++;
    accept_loop(NULL);
    for (int t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    close(listener);

    printf("server port=%d served=%ld resumed=%ld early=%ld unclean=%ld failed=%ld flushes=%ld"
           " accept=%ld accept_good=%ld hits=%ld misses=%ld cb_hits=%ld timeouts=%ld"
           " cache_full=%ld number=%ld\n",
           ntohs(addr.sin_port), (long)served, (long)resumed, (long)early_accepted, (long)unclean,
           (long)failed_hs, (long)flushes,
           SSL_CTX_sess_accept(ctx),
           SSL_CTX_sess_accept_good(ctx), SSL_CTX_sess_hits(ctx), SSL_CTX_sess_misses(ctx),
           SSL_CTX_sess_cb_hits(ctx), SSL_CTX_sess_timeouts(ctx), SSL_CTX_sess_cache_full(ctx),
           SSL_CTX_sess_number(ctx));
    if (library_counter("store_oversize") >= 0)
        printf("library store_oversize=%lld\n", library_counter("store_oversize"));
    /* The ctx is deliberately not freed: SSL_CTX_free flushes the cache, and
     * whether a flush at shutdown deletes shared sessions is not what these
     * tests are about. Exit handlers still run (sesscache's stats file). */
    X509_free(cert);
    EVP_PKEY_free(key);
    return 0;
}
