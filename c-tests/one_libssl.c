/*
 * Which libssl and libcrypto objects the process has mapped, after using
 * libssl's session cache once: a process must never end up with two
 * libssls because of sesscache (a library linked against libssl.so.3,
 * preloaded into a process on libssl.so.4, would bring the second).
 *
 * Prints the running OpenSSL's version number and, for each of libssl and
 * libcrypto, how many distinct files of that name are mapped. Run by
 * c-tests/run.sh plain and preloaded.
 */
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

/* Distinct mapped files whose base name starts with `prefix`. */
static int mapped(const char *prefix)
{
    char seen[8][512];
    int n = 0;
    char line[1024];
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL)
        return -1;
    while (fgets(line, sizeof line, maps) != NULL) {
        char *path = strchr(line, '/');
        if (path == NULL)
            continue;
        path[strcspn(path, "\n")] = '\0';
        const char *base = strrchr(path, '/') + 1;
        if (strncmp(base, prefix, strlen(prefix)) != 0)
            continue;
        int known = 0;
        for (int i = 0; i < n; i++)
            known |= strcmp(seen[i], path) == 0;
        if (!known && n < 8)
            snprintf(seen[n++], sizeof seen[0], "%s", path);
    }
    fclose(maps);
    return n;
}

int main(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return 1;
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_SESSION *s = SSL_SESSION_new();
    static const unsigned char id[] = "one libssl";
    SSL_SESSION_set1_id(s, id, sizeof id - 1);
    printf("add %d\n", SSL_CTX_add_session(ctx, s));
    printf("cached %ld\n", SSL_CTX_sess_number(ctx));
    printf("remove %d\n", SSL_CTX_remove_session(ctx, s));
    SSL_SESSION_free(s);
    SSL_CTX_free(ctx);
    printf("OpenSSL_version_num %#lx\n", (unsigned long)OpenSSL_version_num());
    printf("libssl objects mapped: %d\n", mapped("libssl.so"));
    printf("libcrypto objects mapped: %d\n", mapped("libcrypto.so"));
    return 0;
}
