/*
 * What c-tests/demo.c and c-tests/demo_prefork.c share: a server context
 * and a listening socket on 127.0.0.1, the server's side of one connection
 * and a client's visit. Plain libssl API only. The including file defines
 * DEMO_NAME (its name, for error messages) first.
 */
#ifndef SESSCACHE_DEMO_COMMON_H
#define SESSCACHE_DEMO_COMMON_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static void die(const char *what)
{
    fprintf(stderr, DEMO_NAME ": %s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* A client context for VERSION only. */
static SSL_CTX *demo_client_ctx(int version)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    if (cctx == NULL)
        die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(cctx, version);
    SSL_CTX_set_max_proto_version(cctx, version);
    return cctx;
}

/* A server context for VERSION only, with CERT and KEY, its sessions in the
 * internal cache (SSL_OP_NO_TICKET: TLS 1.3 uses stateful tickets, so
 * resumption comes from the cache). */
static SSL_CTX *demo_server_ctx(int version, EVP_PKEY *key, X509 *cert)
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
    return sctx;
}

/* A socket listening on 127.0.0.1 on a free port, which goes to *port. */
static int demo_listen(int backlog, int *port)
{
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0
        || listen(listener, backlog) != 0
        || getsockname(listener, (struct sockaddr *)&addr, &len) != 0)
        die("listen on 127.0.0.1");
    *port = ntohs(addr.sin_port);
    return listener;
}

/* Accepts one connection and answers "R<id>" after a resumed handshake,
 * "F<id>" after a full one. Returns 0, or -1 when accept failed. */
static int demo_serve_one(int listener, SSL_CTX *ctx, int id)
{
    int fd = accept(listener, NULL, NULL);
    if (fd < 0)
        return -1;
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
    return 0;
}

/* One connection offering OFFER (or nothing); returns the new session and
 * sets *resumed, *by (the server's id) and *version (the protocol's name). */
static SSL_SESSION *demo_visit(SSL_CTX *cctx, int port, SSL_SESSION *offer, int *resumed, int *by,
                               const char **version)
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
    *version = SSL_get_version(ssl);
    SSL_SESSION *sess = SSL_get1_session(ssl);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    return sess;
}

#endif
