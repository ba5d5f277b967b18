#!/usr/bin/env bash
# Prints the path of an nginx that runs on one OpenSSL release line built by
# c-tests/release-openssl.sh (make test-nginx-releases).
#
# Usage: c-tests/nginx/release-nginx.sh LINE   (LINE as release-openssl.sh's)
#
# Debian's nginx (/usr/sbin/nginx, NGINX to choose another) when the ABI
# allows it: the line's lib directory has each libssl/libcrypto soname that
# nginx links, and those define every versioned symbol nginx imports from
# them (it is then run with LD_LIBRARY_PATH=that directory). Otherwise nginx
# built from Debian's source package (trixie's 1.26.3: the upstream tarball
# it carries, with the one change OpenSSL 4.0 needs, below), configured with
# the SSL module and without gzip, linked with an rpath to the line's lib
# directory, once, into a cache outside the clone
# ($SESSCACHE_OPENSSL_CACHE/nginx-LINE, default /var/cache/sesscache-openssl);
# a later run reuses the build, and a run that finds another building the
# same line waits for it. The source lists are read through a private apt
# configuration inside the cache.
# Building needs libpcre2-dev (nginx's `return` is its rewrite module's).
set -euo pipefail

LINE="${1:?usage: $0 LINE}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NGINX_VERSION=1.26.3-3+deb13u10
SUITE=trixie
DEBIAN_NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
CACHE="${SESSCACHE_OPENSSL_CACHE:-/var/cache/sesscache-openssl}"
die() { echo "release-nginx.sh: $*" >&2; exit 1; }

LIBDIR="$("$REPO/c-tests/release-openssl.sh" "$LINE")"
INCDIR="$LIBDIR/../include"

# abi_problems BINARY LIBDIR: why BINARY cannot run on the libssl and
# libcrypto in LIBDIR (a soname absent, a versioned symbol undefined there);
# nothing when it can.
abi_problems() {
    local bin="$1" dir="$2" soname sym
    for soname in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(lib\(ssl\|crypto\)\.so\.[0-9]*\)\]/\1/p'); do
        [ -f "$dir/$soname" ] || { echo "$soname not in $dir"; continue; }
    done
    # Each "symbol version" nginx imports, against what the directory's
    # libraries define (objdump -T: the version column, then the name).
    comm -23 \
        <(objdump -T "$bin" | awk 'NF > 2 && $3 == "*UND*" && $(NF-1) ~ /^\(?OPENSSL_/ { v = $(NF-1); gsub(/[()]/, "", v); print $NF "@" v }' | sort -u) \
        <(for soname in "$dir"/libssl.so.* "$dir"/libcrypto.so.*; do
              [ -f "$soname" ] || continue
              objdump -T "$soname" | awk 'NF > 2 && $3 != "*UND*" && $(NF-1) ~ /^OPENSSL_/ { print $NF "@" $(NF-1) }'
          done | sort -u) \
        | awk -v dir="$dir" 'NR <= 3 { print "not defined in " dir ": " $0 }'
}

problems="nginx not found"
[ ! -x "$DEBIAN_NGINX" ] || problems="$(abi_problems "$DEBIAN_NGINX" "$LIBDIR")"
if [ -z "$problems" ]; then
    echo "$DEBIAN_NGINX"
    exit 0
fi

DEST="$CACHE/nginx-$LINE"
BIN="$DEST/sbin/nginx"
mkdir -p "$CACHE"
exec 9>"$DEST.lock"
flock 9
if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi
echo "release-nginx.sh: $DEBIAN_NGINX cannot run on OpenSSL $LINE (${problems%%$'\n'*}): building nginx" >&2
[ -f /usr/include/pcre2.h ] || die "libpcre2-dev is needed to build nginx (c-tests/setup.sh test)"

mkdir -p "$DEST.build"
. "$REPO/c-tests/debian-source.sh"
cd "$DEST.build"
tarball="$(debian_source_tarball "$CACHE/nginx-apt" "$SUITE" nginx "$NGINX_VERSION")" \
    || die "nginx $NGINX_VERSION not downloaded"
rm -rf src && mkdir src
tar xzf "$tarball" -C src --strip-components=1
cd src
# OpenSSL 4.0 made ASN1_STRING opaque and returns const names: nginx's OCSP
# key (never reached by the tests) reads its serial number through
# ASN1_STRING's accessors instead of its fields, the one change the build
# needs, and the const assignments stay warnings.
stapling=src/event/ngx_event_openssl_stapling.c
sed -i -e 's/serial->length/ASN1_STRING_length(serial)/g' \
    -e 's/serial->data/ASN1_STRING_get0_data(serial)/g' "$stapling"
! grep -q 'serial->' "$stapling" || die "$stapling: serial's fields still read"
./configure --prefix="$DEST" --with-http_ssl_module --without-http_gzip_module \
    --with-cc-opt="-I$INCDIR -Wno-error=discarded-qualifiers" --with-ld-opt="-L$LIBDIR -Wl,-rpath,$LIBDIR" >&2
nice make -j"$(nproc)" >&2
problems="$(abi_problems objs/nginx "$LIBDIR")"
[ -z "$problems" ] || die "the build does not run on $LIBDIR: $problems"
make install >&2
cd .. && rm -rf src
echo "$BIN"
