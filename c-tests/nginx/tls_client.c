/*
 * tls_client: drives a TLS server on 127.0.0.1 for the server tests (nginx,
 * HAProxy, Apache httpd).
 *
 *   tls_client [--offer FILE] [--save FILE] PORT 1.2|1.3 N
 *                                connect N times; each connection offers the
 *                                session of the previous one, the first the
 *                                PEM session in FILE (--offer); the last
 *                                connection's session is written to FILE
 *                                (--save), so that it can be offered to the
 *                                server after a reload
 *   tls_client --free-port       print a free TCP port on 127.0.0.1
 *
 * Each connection sends one HTTP/1.1 request ("Connection: close"), reads the
 * whole response (which also collects any TLS 1.3 tickets), shuts down
 * cleanly and keeps the connection's session for the next one. The test
 * server answers with its worker's pid (`return 200 "$pid\n"`), so the
 * client also knows which worker served each connection.
 *
 * Output, one line:
 *   resumed=K of N same_worker=S resumed_same=RS resumed_other=RO failed=F
 * where S counts the connections served by the worker that served the
 * previous connection (the one that issued the offered session), RS/RO the
 * resumptions among those / among the others, F the connections that failed
 * (any failure makes the exit status 1).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

static int free_port(void)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
    socklen_t len = sizeof addr;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0
        || getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        perror("tls_client: bind 127.0.0.1:0");
        return 1;
    }
    printf("%d\n", ntohs(addr.sin_port));
    close(fd);
    return 0;
}

/* One connection. Returns the new session (or NULL on failure); sets
 * *resumed and *pid (the worker pid from the response body). */
static SSL_SESSION *one(SSL_CTX *ctx, int port, SSL_SESSION *offer, int *resumed, long *pid)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = { .tv_sec = 10 };
    SSL_SESSION *sess = NULL;
    SSL *ssl = NULL;
    char buf[4096];
    size_t got = 0;

    *resumed = 0;
    *pid = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* No Nagle: a resumed TLS 1.2 client sends its Finished and then the
     * request in two small writes, which would wait for a delayed ACK. */
    int one_ = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "tls_client: connect: %s\n", strerror(errno));
        goto out;
    }
    ssl = SSL_new(ctx);
    if (ssl == NULL || !SSL_set_fd(ssl, fd))
        goto out;
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (offer != NULL)
        SSL_set_session(ssl, offer);
    if (SSL_connect(ssl) != 1) {
        fprintf(stderr, "tls_client: handshake failed\n");
        ERR_print_errors_fp(stderr);
        goto out;
    }
    static const char request[] = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if (SSL_write(ssl, request, (int)strlen(request)) != (int)strlen(request)) {
        fprintf(stderr, "tls_client: write failed\n");
        goto out;
    }
    for (;;) {
        int n = SSL_read(ssl, buf + got, (int)(sizeof buf - 1 - got));
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == sizeof buf - 1)
            break;
    }
    buf[got] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || body == NULL) {
        fprintf(stderr, "tls_client: unexpected response (%zu bytes)\n", got);
        goto out;
    }
    *pid = strtol(body + 4, NULL, 10);
    *resumed = SSL_session_reused(ssl);
    sess = SSL_get1_session(ssl);
    SSL_shutdown(ssl);
out:
    SSL_free(ssl);
    close(fd);
    ERR_clear_error();
    return sess;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--free-port") == 0)
        return free_port();
    const char *offer_file = NULL, *save_file = NULL;
    while (argc > 2 && (strcmp(argv[1], "--offer") == 0 || strcmp(argv[1], "--save") == 0)) {
        if (strcmp(argv[1], "--offer") == 0)
            offer_file = argv[2];
        else
            save_file = argv[2];
        argc -= 2;
        argv += 2;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: tls_client [--offer FILE] [--save FILE] PORT 1.2|1.3 N"
                        " | tls_client --free-port\n");
        return 2;
    }
    int port = atoi(argv[1]);
    int version = strcmp(argv[2], "1.3") == 0 ? TLS1_3_VERSION
                  : strcmp(argv[2], "1.2") == 0 ? TLS1_2_VERSION
                                                : 0;
    int n = atoi(argv[3]);
    if (port <= 0 || version == 0 || n <= 0) {
        fprintf(stderr, "tls_client: bad arguments\n");
        return 2;
    }

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return 1;
    SSL_CTX_set_min_proto_version(ctx, version);
    SSL_CTX_set_max_proto_version(ctx, version);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* The session is offered explicitly; the client cache plays no part. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

    SSL_SESSION *offer = NULL;
    if (offer_file != NULL) {
        FILE *f = fopen(offer_file, "r");
        offer = f != NULL ? PEM_read_SSL_SESSION(f, NULL, NULL, NULL) : NULL;
        if (f != NULL)
            fclose(f);
        if (offer == NULL) {
            fprintf(stderr, "tls_client: cannot read a session from %s\n", offer_file);
            return 2;
        }
    }
    long prev_pid = -1;
    int resumed = 0, same = 0, resumed_same = 0, resumed_other = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        int r;
        long pid;
        SSL_SESSION *next = one(ctx, port, offer, &r, &pid);
        if (next == NULL) {
            failed++;
            prev_pid = -1;
        } else {
            int same_worker = offer != NULL && pid == prev_pid;
            resumed += r;
            same += same_worker;
            if (r && same_worker)
                resumed_same++;
            else if (r)
                resumed_other++;
            prev_pid = pid;
        }
        SSL_SESSION_free(offer);
        offer = next;
    }
    int saved = 1;
    if (save_file != NULL) {
        FILE *f = fopen(save_file, "w");
        saved = f != NULL && offer != NULL && PEM_write_SSL_SESSION(f, offer);
        if (f != NULL && fclose(f) != 0)
            saved = 0;
        if (!saved)
            fprintf(stderr, "tls_client: cannot save the last session to %s\n", save_file);
    }
    SSL_SESSION_free(offer);
    SSL_CTX_free(ctx);
    printf("resumed=%d of %d same_worker=%d resumed_same=%d resumed_other=%d failed=%d\n",
           resumed, n, same, resumed_same, resumed_other, failed);
    return failed || !saved ? 1 : 0;
}
