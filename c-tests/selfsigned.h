/*
 * A throw-away self-signed EC P-256 certificate, made in memory, for the
 * test servers, the benchmarks and the demo (nothing verifies it).
 */
#ifndef SESSCACHE_SELFSIGNED_H
#define SESSCACHE_SELFSIGNED_H

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Returns 1 with *key and *cert set (the caller frees both), or 0 with both
 * NULL. */
static inline int selfsigned_make(EVP_PKEY **key, X509 **cert)
{
    /* A name of our own (not the certificate's, which OpenSSL 4 hands out
     * const only), copied into subject and issuer. */
    X509_NAME *name = X509_NAME_new();
    int ok;

    *key = EVP_EC_gen("P-256");
    *cert = X509_new();
    ok = *key != NULL && *cert != NULL && name != NULL
        && X509_set_version(*cert, 2)
        && ASN1_INTEGER_set(X509_get_serialNumber(*cert), 1)
        && X509_gmtime_adj(X509_getm_notBefore(*cert), -86400L) != NULL
        && X509_gmtime_adj(X509_getm_notAfter(*cert), 86400L * 365) != NULL
        && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                      (const unsigned char *)"localhost", -1, -1, 0)
        && X509_set_subject_name(*cert, name)
        && X509_set_issuer_name(*cert, name)
        && X509_set_pubkey(*cert, *key)
        && X509_sign(*cert, *key, EVP_sha256()) > 0;
    X509_NAME_free(name);
    if (ok)
        return 1;
    X509_free(*cert);
    EVP_PKEY_free(*key);
    *cert = NULL;
    *key = NULL;
    return 0;
}

#endif
