/*
 * Resumption served from another process's session against one served
 * from the process's own cache, with the shm store, over in-memory BIO
 * pairs through libssl's public API only. Run preloaded with
 * SESSCACHE_STORE=shm (c-tests/bench/run-shm-bench.sh).
 *
 *   bench_shm own|other resume12|resume13 THREADS SESSIONS
 *     own    this process makes SESSIONS sessions (full handshakes), then
 *            resumes each once: every resumption is a local cache hit
 *     other  a child forked after SSL_CTX_new makes them (so they reach the
 *            process only through the store), hands the client's sessions
 *            over a pipe and exits; this process then resumes each once:
 *            every resumption is a local miss answered by the store
 *     THREADS  threads sharing the resumptions (one server ctx)
 *
 * Only the resumptions are timed. Prints the library's store_hits, then
 * cpu_ops_per_s=<resumptions per second of the process's CPU time> and last
 * ops_per_s=<resumptions per second of wall time, all threads>.
 * Exits 1 if a resumption did not resume (or, for "other", if the store did
 * not answer every one).
 */
#define _GNU_SOURCE
#include "bench.h"
#include "../selfsigned.h"

#include <dlfcn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <sys/wait.h>

static EVP_PKEY *key;
static X509 *cert;
static SSL_CTX *server;
static int tls12;

/* CPU time of the whole process (every thread): on a shared machine it
 * leaves out the time other programs had the CPU. */
static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *client = SSL_CTX_new(TLS_client_method());
    BENCH_CHECK(client != NULL);
    BENCH_CHECK(SSL_CTX_set_max_proto_version(client, tls12 ? TLS1_2_VERSION : TLS1_3_VERSION));
    return client;
}

/* The library's counter NAME (0 without the library). */
static uint64_t counter(const char *name)
{
    int (*get)(const char *, uint64_t *) =
        (int (*)(const char *, uint64_t *))dlsym(RTLD_DEFAULT, "sesscache_counter");
    uint64_t v = 0;
    if (get == NULL || get(name, &v) != 1)
        return 0;
    return v;
}

static void write_all(int fd, const void *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        BENCH_CHECK(w > 0);
        p = (const char *)p + w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, void *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        BENCH_CHECK(r > 0);
        p = (char *)p + r;
        n -= (size_t)r;
    }
}

/* Makes n sessions with full handshakes; the client's copies in out. */
static void make_sessions(SSL_SESSION **out, long n)
{
    SSL_CTX *client = client_ctx();
    for (long i = 0; i < n; i++)
        BENCH_CHECK(bench_handshake(server, client, NULL, &out[i]) == 0 && out[i] != NULL);
    SSL_CTX_free(client);
}

/* The child of "other": makes the sessions, waits until the store has
 * them all, sends the client's copies (DER) and exits. */
static void maker(int fd, long n)
{
    SSL_SESSION **made = calloc((size_t)n, sizeof(*made));
    BENCH_CHECK(made != NULL);
    make_sessions(made, n);
    for (int i = 0; i < 2000 && counter("store_writes") < (uint64_t)n; i++)
        usleep(1000);
    for (long i = 0; i < n; i++) {
        int len = i2d_SSL_SESSION(made[i], NULL);
        unsigned char *der = malloc((size_t)len), *p = der;
        BENCH_CHECK(len > 0 && der != NULL && i2d_SSL_SESSION(made[i], &p) == len);
        write_all(fd, &len, sizeof len);
        write_all(fd, der, (size_t)len);
        free(der);
    }
    _exit(0);
}

struct worker {
    SSL_SESSION **sessions;
    long n;
    pthread_barrier_t *start;
    long failed;
};

static void *resume(void *p)
{
    struct worker *w = p;
    SSL_CTX *client = client_ctx();
    pthread_barrier_wait(w->start);
    for (long i = 0; i < w->n; i++)
        if (!bench_handshake(server, client, w->sessions[i], NULL))
            w->failed++;
    SSL_CTX_free(client);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    const char *kind = argc > 2 ? argv[2] : "";
    long threads = bench_arg_long(argc, argv, 3, 1);
    long n = bench_arg_long(argc, argv, 4, 1000);
    int other = strcmp(mode, "other") == 0;
    if ((!other && strcmp(mode, "own")) || (strcmp(kind, "resume12") && strcmp(kind, "resume13"))
        || threads < 1 || threads > 16 || n < threads || n > 1000000) {
        fprintf(stderr, "usage: %s own|other resume12|resume13 THREADS SESSIONS\n", argv[0]);
        return 2;
    }
    tls12 = strcmp(kind, "resume12") == 0;
    BENCH_CHECK(selfsigned_make(&key, &cert));
    server = bench_server_ctx(cert, key);

    SSL_SESSION **sessions = calloc((size_t)n, sizeof(*sessions));
    BENCH_CHECK(sessions != NULL);
    if (other) {
        int fds[2];
        BENCH_CHECK(pipe(fds) == 0);
        pid_t pid = fork();
        BENCH_CHECK(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            maker(fds[1], n);
        }
        close(fds[1]);
        for (long i = 0; i < n; i++) {
            int len;
            read_all(fds[0], &len, sizeof len);
            BENCH_CHECK(len > 0 && len < (1 << 20));
            unsigned char *der = malloc((size_t)len);
            const unsigned char *p = der;
            BENCH_CHECK(der != NULL);
            read_all(fds[0], der, (size_t)len);
            sessions[i] = d2i_SSL_SESSION(NULL, &p, len);
            BENCH_CHECK(sessions[i] != NULL);
            free(der);
        }
        close(fds[0]);
        int status;
        BENCH_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    } else {
        make_sessions(sessions, n);
    }

    uint64_t hits_before = counter("store_hits");
    pthread_t tid[16];
    struct worker w[16];
    pthread_barrier_t start;
    BENCH_CHECK(pthread_barrier_init(&start, NULL, (unsigned)threads + 1) == 0);
    long per = n / threads;
    for (long k = 0; k < threads; k++) {
        w[k] = (struct worker){ sessions + k * per, per, &start, 0 };
        BENCH_CHECK(pthread_create(&tid[k], NULL, resume, &w[k]) == 0);
    }
    pthread_barrier_wait(&start);
    double t0 = bench_now_ns(), c0 = cpu_ns();
    for (long k = 0; k < threads; k++)
        BENCH_CHECK(pthread_join(tid[k], NULL) == 0);
    double total = bench_now_ns() - t0, cpu = cpu_ns() - c0;
    long failed = 0;
    for (long k = 0; k < threads; k++)
        failed += w[k].failed;
    uint64_t hits = counter("store_hits") - hits_before;
    printf("store_hits=%llu of %ld resumptions\n", (unsigned long long)hits, per * threads);
    if (failed) {
        fprintf(stderr, "bench_shm: %ld resumptions did not resume\n", failed);
        return 1;
    }
    if (other && hits != (uint64_t)(per * threads)) {
        fprintf(stderr, "bench_shm: the store answered %llu of %ld resumptions\n",
                (unsigned long long)hits, per * threads);
        return 1;
    }
    printf("cpu_ops_per_s=%.1f\n", (double)(per * threads) / (cpu / 1e9));
    printf("ops_per_s=%.1f\n", (double)(per * threads) / (total / 1e9));
    for (long i = 0; i < n; i++)
        SSL_SESSION_free(sessions[i]);
    free(sessions);
    SSL_CTX_free(server);
    X509_free(cert);
    EVP_PKEY_free(key);
    return 0;
}
