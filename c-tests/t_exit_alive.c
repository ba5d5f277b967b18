/*
 * A process that exits with its contexts, connections and sessions still
 * alive, as servers do: libssl's own clean-up runs at exit (OPENSSL_cleanup,
 * from a global destructor in 4.0), and nothing of the library's that
 * outlives it may touch libssl then. Under valgrind: no invalid access;
 * stdout as with libssl alone (no callback runs at exit).
 */
#include <openssl/ssl.h>
#include "sesscache.h"

#include "common.h"

#include <stdio.h>

/* Kept reachable on purpose: the process exits with the server side
 * alive (the client side is freed, as a server's peers are not in it). */
static SSL_CTX *servers[2];
static struct hs_result kept[2];

int main(void)
{
    const int versions[2] = { TLS1_2_VERSION, TLS1_3_VERSION };

    common_init();
    for (int i = 0; i < 2; i++) {
        SSL_CTX *client;
        struct hs_result r;
        struct hs_opts o = { 0 };
        SSL_SESSION *offered;

        section(ver_name(versions[i]));
        servers[i] = new_server_ctx(versions[i], versions[i]);
        client = new_client_ctx(versions[i], versions[i]);
        SSL_CTX_set_session_cache_mode(servers[i], SSL_SESS_CACHE_SERVER);
        set_cbs(servers[i], 'A', 1, 1, 0);
        handshake(servers[i], client, NULL, &r);
        offered = r.client_sess;
        o.offer = offered;
        handshake(servers[i], client, &o, &r);
        SSL_SESSION_free(r.client_sess);
        o.keep = 1;
        handshake(servers[i], client, &o, &kept[i]);
        print_stats(servers[i]);
        SSL_free(kept[i].c);
        SSL_SESSION_free(kept[i].client_sess);
        SSL_SESSION_free(offered);
        SSL_CTX_free(client);
    }
    printf("exiting with 2 server contexts, 2 server connections and their sessions alive\n");
    fflush(stdout);
    return 0;
}
