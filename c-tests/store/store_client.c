/*
 * store_client: a plain libssl TLS client for the shared-store tests
 * (c-tests/store/run-store-tests.sh). Never preloaded.
 *
 *   store_client N PORTS VERSION [options]
 *
 * Makes N connections to 127.0.0.1, rotating through PORTS (comma-separated:
 * 4433,4434 → A, B, A, B, …). Each connection offers the session of the
 * previous one (taken with SSL_get1_session after the reply has been read,
 * so TLS 1.3 tickets have arrived). VERSION is 1.2 or 1.3.
 *
 * Options:
 *   --unclean-at K      on connection K (1-based) close the TCP connection
 *                       without close_notify and without sending the request
 *                       line (TLS 1.3: after the new tickets have arrived);
 *                       may be given several times
 *   --unclean-pause-ms M  sleep M ms after an unclean close (default 0)
 *   --report-every W    print a window line every W connections
 *   --tail T            also report resumption over the last T connections
 *   --interval-ms M     sleep M ms between connections
 *   --slow-ms L         count connections that took more than L ms (slow=
 *                       in the total line) and print the first five
 *   --fresh-every K     offer nothing on connections 1, K+1, 2K+1, … (a new
 *                       session each K connections; with K=2 and two ports
 *                       every offered session was made by the other server)
 *   --load-session F    offer the PEM session in F on connection 1
 *   --save-session F    write the last session (PEM) to F at the end
 *   --touch-session 1   set the loaded session's time to now, so that the
 *                       client offers it even if its lifetime has passed (a
 *                       TLS 1.3 client does not offer an expired ticket); the
 *                       server still judges expiry by its own copy
 *
 * Output (one line each, name=value):
 *   conn i=… port=… offered=0|1 resumed=0|1 ms=… key=VVVV:HEX   (N <= 50 only,
 *        or for unclean connections and the one after)
 *   notresumed i=… port=… ms=… offered_key=…   (an offered session not
 *        resumed; at most 20, only when N > 50)
 *   window from=… to=… resumed=… offered=… of=… failed=… max_ms=…
 *   unclean i=… key=…  /  after_unclean i=… offered_key=… matches_unclean=0|1
 *        offered_resumable=0|1 resumed=0|1
 *   total resumed=K of N failed=F max_ms=X hs_max_ms=… slow=… offered=…
 *         resumed_of_offered=… elapsed_s=… hs_per_s=…
 *         mean_resumed_ms=… p50_resumed_ms=… p99_resumed_ms=… mean_full_ms=…
 *   tail last=T resumed=… of=… offered=…
 *   last_key=VVVV:HEX
 * The key is the store key's suffix: protocol version as 4 hex digits, then
 * the session ID (TLS 1.2) or the stateful ticket (TLS 1.3), lowercase hex.
 * Exit status: 0 unless setup failed (2). Failed handshakes are counted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#define MAX_PORTS 16
#define MAX_UNCLEAN 16

static int tickets_seen;

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    (void)sess;
    tickets_seen++;
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void setup_failed(const char *what)
{
    fprintf(stderr, "store_client: SETUP FAILED: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

/* "VVVV:hex" of the store key the server uses for this session. */
static const char *session_key(SSL_SESSION *s)
{
    static char buf[8 + 2 * 1024];
    if (s == NULL)
        return "-";
    int version = SSL_SESSION_get_protocol_version(s);
    const unsigned char *id;
    size_t len = 0;
    if (version == TLS1_3_VERSION) {
        SSL_SESSION_get0_ticket(s, &id, &len);
    } else {
        unsigned int ilen;
        id = SSL_SESSION_get_id(s, &ilen);
        len = ilen;
    }
    if (len > 1000)
        len = 1000;
    int n = snprintf(buf, sizeof buf, "%04x:", (unsigned int)version);
    for (size_t i = 0; i < len; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%02x", id[i]);
    return buf;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct result {
    int ok;
    int resumed;
    double ms;    /* connect → reply read (or unclean close) */
    double hs_ms; /* connect → SSL_connect returned */
};

/* Wait (non-blocking reads) until `want` new tickets arrived or 1 s passed. */
static void wait_tickets(SSL *ssl, int fd, int want)
{
    int start = tickets_seen;
    double deadline = now_ms() + 1000;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    while (tickets_seen - start < want && now_ms() < deadline) {
        char c;
        int r = SSL_read(ssl, &c, 1);
        if (r <= 0) {
            int err = SSL_get_error(ssl, r);
            ERR_clear_error();
            if (err != SSL_ERROR_WANT_READ)
                break;
            struct pollfd pfd = { .fd = fd, .events = POLLIN };
            poll(&pfd, 1, 20);
        }
    }
}

static SSL_SESSION *one_connection(SSL_CTX *cctx, int port, SSL_SESSION *offer, int unclean,
                                   struct result *r)
{
    memset(r, 0, sizeof *r);
    double t0 = now_ms();
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        setup_failed("socket");
    struct timeval tv = { .tv_sec = 5, .tv_usec = 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        r->ms = now_ms() - t0;
        return NULL;
    }
    SSL *ssl = SSL_new(cctx);
    if (ssl == NULL)
        setup_failed("SSL_new");
    SSL_set_fd(ssl, fd);
    if (offer != NULL)
        SSL_set_session(ssl, offer);
    SSL_SESSION *sess = NULL;
    if (SSL_connect(ssl) != 1) {
        ERR_clear_error();
        goto out;
    }
    r->hs_ms = now_ms() - t0;
    r->resumed = SSL_session_reused(ssl);
    if (unclean) {
        if (SSL_version(ssl) == TLS1_3_VERSION)
            wait_tickets(ssl, fd, r->resumed ? 1 : 2);
        sess = SSL_get1_session(ssl);
        r->ok = 1;
        /* No close_notify, no request: just close the socket. Mark the
         * client's side as shut down (nothing is sent) so that the client's
         * own SSL_free does not make the session non-resumable: the point is
         * to offer it again and see the other server refuse it. */
        SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(ssl);
        close(fd);
        r->ms = now_ms() - t0;
        return sess;
    }
    static const char request[] = "hello\n";
    if (SSL_write(ssl, request, (int)strlen(request)) <= 0) {
        ERR_clear_error();
        goto out;
    }
    char reply[64] = { 0 };
    int got = SSL_read(ssl, reply, sizeof reply - 1);
    if (got <= 0) {
        ERR_clear_error();
        goto out;
    }
    int srv_resumed = strncmp(reply, "resumed", 7) == 0;
    if (srv_resumed != r->resumed)
        fprintf(stderr, "store_client: client and server disagree on resumption\n");
    sess = SSL_get1_session(ssl);
    r->ok = 1;
    SSL_shutdown(ssl);
    ERR_clear_error();
out:
    r->ms = now_ms() - t0;
    SSL_free(ssl);
    close(fd);
    return sess;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s N PORT[,PORT…] 1.2|1.3 [--unclean-at K] [--unclean-pause-ms M]"
                        " [--report-every W] [--tail T] [--interval-ms M] [--slow-ms L]"
                        " [--load-session F] [--save-session F]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    long n = atol(argv[1]);
    int ports[MAX_PORTS], nports = 0;
    char *list = strdup(argv[2]);
    for (char *tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ",")) {
        if (nports == MAX_PORTS)
            setup_failed("too many ports");
        ports[nports++] = atoi(tok);
    }
    free(list);
    int version;
    if (strcmp(argv[3], "1.2") == 0)
        version = TLS1_2_VERSION;
    else if (strcmp(argv[3], "1.3") == 0)
        version = TLS1_3_VERSION;
    else
        setup_failed("version must be 1.2 or 1.3");
    if (n <= 0 || nports == 0)
        setup_failed("N and PORTS");

    long unclean_at[MAX_UNCLEAN];
    int nunclean = 0;
    long report_every = 0, tail = 0, interval_ms = 0, unclean_pause_ms = 0, fresh_every = 0;
    double slow_ms = 0;
    const char *load = NULL, *save = NULL;
    int touch = 0;
    for (int i = 4; i < argc; i++) {
        const char *opt = argv[i];
        if (i + 1 >= argc)
            setup_failed("option without value");
        const char *val = argv[++i];
        if (strcmp(opt, "--unclean-at") == 0) {
            if (nunclean == MAX_UNCLEAN)
                setup_failed("too many --unclean-at");
            unclean_at[nunclean++] = atol(val);
        } else if (strcmp(opt, "--unclean-pause-ms") == 0)
            unclean_pause_ms = atol(val);
        else if (strcmp(opt, "--report-every") == 0)
            report_every = atol(val);
        else if (strcmp(opt, "--tail") == 0)
            tail = atol(val);
        else if (strcmp(opt, "--fresh-every") == 0)
            fresh_every = atol(val);
        else if (strcmp(opt, "--interval-ms") == 0)
            interval_ms = atol(val);
        else if (strcmp(opt, "--slow-ms") == 0)
            slow_ms = atof(val);
        else if (strcmp(opt, "--load-session") == 0)
            load = val;
        else if (strcmp(opt, "--save-session") == 0)
            save = val;
        else if (strcmp(opt, "--touch-session") == 0)
            touch = atoi(val);
        else
            setup_failed("unknown option");
    }

    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    if (cctx == NULL)
        setup_failed("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(cctx, version);
    SSL_CTX_set_max_proto_version(cctx, version);
    /* Count the tickets (new sessions) as they arrive; keep nothing. */
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(cctx, on_new_session);

    SSL_SESSION *sess = NULL;
    if (load != NULL) {
        FILE *f = fopen(load, "r");
        if (f == NULL)
            setup_failed("--load-session: open");
        sess = PEM_read_SSL_SESSION(f, NULL, NULL, NULL);
        fclose(f);
        if (sess == NULL)
            setup_failed("--load-session: PEM_read_SSL_SESSION");
        if (touch && !SSL_SESSION_set_time(sess, (long)time(NULL)))
            setup_failed("--touch-session");
    }

    char *resumed_flags = calloc((size_t)n + 1, 1);
    char *offered_flags = calloc((size_t)n + 1, 1);
    double *resumed_ms = calloc((size_t)n + 1, sizeof(double));
    if (resumed_flags == NULL || offered_flags == NULL || resumed_ms == NULL)
        setup_failed("calloc");
    long nresumed_ms = 0;
    double full_ms_sum = 0;
    long nfull = 0;
    long resumed = 0, failed = 0, offered = 0, resumed_of_offered = 0;
    double max_ms = 0, hs_max_ms = 0;
    long slow = 0;
    long w_from = 1, w_resumed = 0, w_failed = 0, w_offered = 0;
    double w_max = 0;
    long after_unclean = -1;
    long printed_misses = 0;
    char unclean_key[2100] = "";
    double start = now_ms();

    for (long i = 1; i <= n; i++) {
        int port = ports[(i - 1) % nports];
        int unclean = 0;
        for (int u = 0; u < nunclean; u++)
            if (unclean_at[u] == i)
                unclean = 1;
        struct result r;
        if (fresh_every > 0 && (i - 1) % fresh_every == 0 && i > 1) {
            SSL_SESSION_free(sess);
            sess = NULL;
        }
        int did_offer = sess != NULL;
        int offer_resumable = sess != NULL && SSL_SESSION_is_resumable(sess);
        offered_flags[i] = (char)did_offer;
        char offered_key[2100];
        snprintf(offered_key, sizeof offered_key, "%s", session_key(sess));
        SSL_SESSION *next = one_connection(cctx, port, sess, unclean, &r);
        SSL_SESSION_free(sess);
        sess = next;
        if (!r.ok)
            failed++;
        if (did_offer)
            offered++;
        if (r.ok && r.resumed) {
            resumed++;
            resumed_flags[i] = 1;
            if (did_offer)
                resumed_of_offered++;
            resumed_ms[nresumed_ms++] = r.hs_ms;
        } else if (r.ok) {
            full_ms_sum += r.hs_ms;
            nfull++;
        }
        if (r.ms > max_ms)
            max_ms = r.ms;
        if (slow_ms > 0 && r.ms > slow_ms && ++slow <= 5)
            printf("slow i=%ld port=%d offered=%d ok=%d resumed=%d ms=%.2f hs_ms=%.2f\n", i, port,
                   did_offer, r.ok, r.ok && r.resumed, r.ms, r.hs_ms);
        if (r.hs_ms > hs_max_ms)
            hs_max_ms = r.hs_ms;
        w_resumed += r.ok && r.resumed;
        w_failed += !r.ok;
        w_offered += did_offer;
        if (r.ms > w_max)
            w_max = r.ms;
        if (did_offer && r.ok && !r.resumed && !unclean && i != after_unclean && n > 50
            && ++printed_misses <= 20)
            printf("notresumed i=%ld port=%d ms=%.2f offered_key=%s\n", i, port, r.ms, offered_key);
        if (n <= 50 || unclean || i == after_unclean)
            printf("conn i=%ld port=%d offered=%d ok=%d resumed=%d ms=%.2f key=%s\n", i, port,
                   did_offer, r.ok, r.resumed, r.ms, session_key(sess));
        if (i == after_unclean)
            printf("after_unclean i=%ld port=%d offered_key=%s matches_unclean=%d"
                   " offered_resumable=%d resumed=%d\n", i, port, offered_key,
                   strcmp(offered_key, unclean_key) == 0, offer_resumable, r.ok && r.resumed);
        if (unclean) {
            snprintf(unclean_key, sizeof unclean_key, "%s", session_key(sess));
            printf("unclean i=%ld port=%d key=%s\n", i, port, unclean_key);
            after_unclean = i + 1;
            if (unclean_pause_ms > 0)
                usleep((useconds_t)unclean_pause_ms * 1000);
        }
        if (report_every > 0 && (i % report_every == 0 || i == n)) {
            printf("window from=%ld to=%ld resumed=%ld offered=%ld of=%ld failed=%ld max_ms=%.2f\n",
                   w_from, i, w_resumed, w_offered, i - w_from + 1, w_failed, w_max);
            w_from = i + 1;
            w_resumed = w_failed = w_offered = 0;
            w_max = 0;
        }
        if (interval_ms > 0 && i < n)
            usleep((useconds_t)interval_ms * 1000);
    }
    double elapsed = (now_ms() - start) / 1e3;

    double mean_resumed = 0, p50 = 0, p99 = 0;
    if (nresumed_ms > 0) {
        for (long i = 0; i < nresumed_ms; i++)
            mean_resumed += resumed_ms[i];
        mean_resumed /= (double)nresumed_ms;
        qsort(resumed_ms, (size_t)nresumed_ms, sizeof(double), cmp_double);
        p50 = resumed_ms[nresumed_ms / 2];
        p99 = resumed_ms[(nresumed_ms * 99) / 100];
    }
    printf("total resumed=%ld of=%ld failed=%ld max_ms=%.2f hs_max_ms=%.2f slow=%ld offered=%ld"
           " resumed_of_offered=%ld elapsed_s=%.3f hs_per_s=%.1f mean_resumed_ms=%.3f"
           " p50_resumed_ms=%.3f p99_resumed_ms=%.3f mean_full_ms=%.3f\n",
           resumed, n, failed, max_ms, hs_max_ms, slow, offered, resumed_of_offered, elapsed,
           elapsed > 0 ? (double)n / elapsed : 0.0, mean_resumed, p50, p99,
           nfull ? full_ms_sum / (double)nfull : 0.0);
    if (tail > 0) {
        long from = n - tail + 1 < 1 ? 1 : n - tail + 1, k = 0, o = 0;
        for (long i = from; i <= n; i++) {
            k += resumed_flags[i];
            o += offered_flags[i];
        }
        printf("tail last=%ld resumed=%ld of=%ld offered=%ld\n", n - from + 1, k, n - from + 1, o);
    }
    printf("last_key=%s\n", session_key(sess));
    if (save != NULL && sess != NULL) {
        FILE *f = fopen(save, "w");
        if (f == NULL || !PEM_write_SSL_SESSION(f, sess))
            setup_failed("--save-session");
        fclose(f);
    }
    SSL_SESSION_free(sess);
    SSL_CTX_free(cctx);
    free(resumed_flags);
    free(offered_flags);
    free(resumed_ms);
    return 0;
}
