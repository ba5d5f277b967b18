/*
 * A libcrypto that reports another release. Preloaded (or linked) after
 * sesscache, this OpenSSL_version_num() is the one the library and the
 * program see, while every other function is the real libssl's: the
 * release tests run a real libssl as a release the library was not tested
 * on, which it must pass straight through. Built by c-tests/run.sh
 * --reported-version with -DREPORTED_VERSION=0x...
 */
#include <openssl/crypto.h>

unsigned long OpenSSL_version_num(void)
{
    return REPORTED_VERSION;
}
