/*
 * A QUIC server (OSSL_QUIC_server_method, 3.5 and later) uses the same
 * server session cache as TLS: with SSL_OP_NO_TICKET its TLS 1.3 tickets
 * are stateful, so a session is resumed only while it is in the cache.
 * The new callback gets the user-facing QUIC connection object, not the
 * TLS object inside it. Client and server run in this process over UDP on
 * 127.0.0.1, the server in a thread; each connection's lines are printed
 * once both ends are done with it. A libssl without a QUIC server prints
 * one line saying so.
 *
 * The ends close in a fixed order: the client waits for its ticket and
 * the server's stream FIN, then closes first, and the server waits for
 * that close. SSL_free of a QUIC connection whose close was started by the
 * peer can find the inner TLS object without SSL_SENT_SHUTDOWN and then
 * removes its session (marking it not resumable), so letting the two ends
 * race to close would make resumption depend on timing.
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>

#if OPENSSL_VERSION_NUMBER >= 0x30500000L && !defined(OPENSSL_NO_QUIC)

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONNECTIONS 4

static SSL_CTX *server_ctx;
static int server_fd;
static sem_t connection_done;
/* What the server thread saw, printed by main after each connection. */
static char server_lines[CONNECTIONS][256];
static char callback_lines[4096];
/* The server's sessions, as its new callback got them (one reference each). */
static SSL_SESSION *server_sessions[CONNECTIONS * 2];
static int server_session_count;
static pthread_mutex_t lines_lock = PTHREAD_MUTEX_INITIALIZER;
/* The one application protocol both ends speak (QUIC requires ALPN). */
static const unsigned char ALPN[] = { 4, 't', 'e', 's', 't' };

static void note(const char *line)
{
    pthread_mutex_lock(&lines_lock);
    strncat(callback_lines, line, sizeof callback_lines - strlen(callback_lines) - 1);
    pthread_mutex_unlock(&lines_lock);
}

/* Prints and empties the callback lines gathered so far. */
static void flush_notes(void)
{
    pthread_mutex_lock(&lines_lock);
    fputs(callback_lines, stdout);
    callback_lines[0] = '\0';
    pthread_mutex_unlock(&lines_lock);
}

static int on_new(SSL *ssl, SSL_SESSION *sess)
{
    char line[160];

    pthread_mutex_lock(&lines_lock);
    if (server_session_count < CONNECTIONS * 2 && SSL_SESSION_up_ref(sess))
        server_sessions[server_session_count++] = sess;
    pthread_mutex_unlock(&lines_lock);
    snprintf(line, sizeof line, "  new_cb %s %s connection_object=%d same_ctx=%d\n",
             slabel(sess), sidlabel(sess), SSL_is_connection(ssl),
             SSL_get_SSL_CTX(ssl) == server_ctx);
    note(line);
    return 0;
}

static void on_remove(SSL_CTX *ctx, SSL_SESSION *sess)
{
    char line[160];

    snprintf(line, sizeof line, "  remove_cb %s %s resumable=%d same_ctx=%d\n",
             slabel(sess), sidlabel(sess), SSL_SESSION_is_resumable(sess),
             ctx == server_ctx);
    note(line);
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *chosen;

    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&chosen, outlen, ALPN, sizeof ALPN, in, inlen)
        != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* Reads the default stream until the peer's FIN; returns the bytes read. */
static size_t read_to_fin(SSL *ssl, char *buf, size_t size)
{
    size_t total = 0, n = 0;

    while (total < size && SSL_read_ex(ssl, buf + total, size - total, &n))
        total += n;
    CHECK_SETUP(SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN);
    return total;
}

static void *serve(void *arg)
{
    /* No address validation: libssl 4.0.2's check of its Retry token reads
     * uninitialised memory under valgrind, and the cache does not need it. */
    SSL *listener = SSL_new_listener(server_ctx, SSL_LISTENER_FLAG_NO_VALIDATE);

    (void)arg;
    CHECK_SETUP(listener != NULL);
    CHECK_SETUP(SSL_set_fd(listener, server_fd));
    CHECK_SETUP(SSL_listen(listener));
    for (int i = 0; i < CONNECTIONS; i++) {
        SSL *conn = SSL_accept_connection(listener, 0);
        char buf[64];
        size_t got, n = 0;
        int ret;
        SSL_SESSION *own;
        const unsigned char *id;
        unsigned int id_len = 0;

        CHECK_SETUP(conn != NULL);
        got = read_to_fin(conn, buf, sizeof buf);
        CHECK_SETUP(SSL_write_ex(conn, buf, got, &n) && n == got);
        CHECK_SETUP(SSL_stream_conclude(conn, 0));
        /* The client closes first (see the top of the file). */
        while ((ret = SSL_shutdown_ex(conn, SSL_SHUTDOWN_FLAG_WAIT_PEER, NULL, 0)) == 0)
            ;
        CHECK_SETUP(ret == 1);
        own = SSL_get0_session(conn);
        CHECK_SETUP(own != NULL);
        id = SSL_SESSION_get_id(own, &id_len);
        /* Both on the QUIC object: the lookup reaches the TLS connection
         * inside it; a ctx switch is refused (NULL). */
        snprintf(server_lines[i], sizeof server_lines[i],
                 "  server: read=%zu reused=%d connection_object=%d"
                 " has_matching_session_id=%d set_SSL_CTX=%s\n", got,
                 SSL_session_reused(conn), SSL_is_connection(conn),
                 SSL_has_matching_session_id(conn, id, id_len),
                 SSL_set_SSL_CTX(conn, server_ctx) != NULL ? "ctx" : "NULL");
        SSL_free(conn);
        sem_post(&connection_done);
    }
    SSL_free(listener);
    return NULL;
}

/* The client's session once the server's NewSessionTicket has replaced the
 * session it started with (offer, or a new one without a ticket). */
static SSL_SESSION *ticketed_session(SSL *c, SSL_SESSION *offer)
{
    /* Up to half a minute: a loaded machine under valgrind is slow. */
    for (int tries = 0; tries < 30000; tries++) {
        SSL_SESSION *s = SSL_get0_session(c);

        if (s != NULL && s != offer && SSL_SESSION_has_ticket(s))
            return SSL_get1_session(c);
        CHECK_SETUP(SSL_handle_events(c));
        usleep(1000);
    }
    setup_failed("no NewSessionTicket");
    return NULL;
}

static SSL_SESSION *connect_once(SSL_CTX *cctx, const struct sockaddr_in *to,
                                 SSL_SESSION *offer, int i)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    SSL *c = SSL_new(cctx);
    BIO_ADDR *peer = BIO_ADDR_new();
    char buf[64];
    size_t n = 0, echoed;
    int reused, ret;
    SSL_SESSION *got;

    CHECK_SETUP(fd >= 0 && c != NULL && peer != NULL);
    CHECK_SETUP(BIO_ADDR_rawmake(peer, AF_INET, &to->sin_addr, sizeof to->sin_addr,
                                 to->sin_port));
    CHECK_SETUP(SSL_set_fd(c, fd));
    CHECK_SETUP(SSL_set1_initial_peer_addr(c, peer));
    CHECK_SETUP(SSL_set_alpn_protos(c, ALPN, sizeof ALPN) == 0);
    if (offer != NULL)
        CHECK_SETUP(SSL_set_session(c, offer));
    CHECK_SETUP(SSL_connect(c) == 1);
    CHECK_SETUP(SSL_write_ex(c, "ping", 4, &n) && n == 4);
    CHECK_SETUP(SSL_stream_conclude(c, 0));
    echoed = read_to_fin(c, buf, sizeof buf);
    got = ticketed_session(c, offer);
    while ((ret = SSL_shutdown(c)) == 0)
        ;
    CHECK_SETUP(ret == 1);
    reused = SSL_session_reused(c);
    SSL_free(c);
    BIO_ADDR_free(peer);
    close(fd);
    sem_wait(&connection_done);
    printf("connection %d offer=%s\n", i + 1, slabel(offer));
    printf("  client: echoed=%zu reused=%d session=%s resumable_after_free=%d\n",
           echoed, reused, slabel(got), SSL_SESSION_is_resumable(got));
    fputs(server_lines[i], stdout);
    flush_notes();
    return got;
}

int main(void)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    SSL_CTX *cctx;
    SSL_SESSION *first, *second, *third, *fourth;
    pthread_t tid;

    common_init();
    /* Frees happen in both threads: print only those of labelled sessions,
     * which main does last. */
    g_quiet_free = 2;
    /* A lost datagram or a stuck end must not hang the run (the runner's
     * own limit is longer). */
    alarm(300);
    server_ctx = SSL_CTX_new(OSSL_QUIC_server_method());
    CHECK_SETUP(server_ctx != NULL);
    use_server_identity(server_ctx);
    SSL_CTX_set_session_cache_mode(server_ctx, SSL_SESS_CACHE_SERVER);
    /* Stateful tickets: a ticket names a session in the server's cache. */
    SSL_CTX_set_options(server_ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(server_ctx, 1);
    SSL_CTX_set_alpn_select_cb(server_ctx, select_alpn, NULL);
    SSL_CTX_sess_set_new_cb(server_ctx, on_new);
    SSL_CTX_sess_set_remove_cb(server_ctx, on_remove);
    cctx = SSL_CTX_new(OSSL_QUIC_client_method());
    CHECK_SETUP(cctx != NULL);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);

    server_fd = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_SETUP(server_fd >= 0 && bind(server_fd, (struct sockaddr *)&addr, sizeof addr) == 0);
    CHECK_SETUP(getsockname(server_fd, (struct sockaddr *)&addr, &len) == 0);
    CHECK_SETUP(sem_init(&connection_done, 0, 0) == 0);
    CHECK_SETUP(pthread_create(&tid, NULL, serve, NULL) == 0);

    section("QUIC: a full handshake, then a resumption from the server's cache");
    first = connect_once(cctx, &addr, NULL, 0);
    second = connect_once(cctx, &addr, first, 1);
    print_stats(server_ctx);

    section("QUIC: the session removed from the cache is not resumed");
    CHECK_SETUP(server_session_count > 0);
    printf("remove %s -> %d\n", slabel(server_sessions[0]),
           SSL_CTX_remove_session(server_ctx, server_sessions[0]));
    flush_notes();
    third = connect_once(cctx, &addr, first, 2);
    fourth = connect_once(cctx, &addr, third, 3);
    print_stats(server_ctx);
    CHECK_SETUP(pthread_join(tid, NULL) == 0);

    section("QUIC: SSL_CTX_free");
    SSL_CTX_free(server_ctx);
    flush_notes();
    SSL_SESSION_free(first);
    SSL_SESSION_free(second);
    SSL_SESSION_free(third);
    SSL_SESSION_free(fourth);
    for (int i = 0; i < server_session_count; i++)
        SSL_SESSION_free(server_sessions[i]);
    SSL_CTX_free(cctx);
    close(server_fd);
    sem_destroy(&connection_done);
    common_cleanup();
    printf("end\n");
    return 0;
}

#else

int main(void)
{
    printf("no QUIC server in this libssl\n");
    return 0;
}

#endif
