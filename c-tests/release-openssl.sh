#!/usr/bin/env bash
# Builds one newer OpenSSL release line from Debian's source package (the
# upstream tarball it carries), the way upstream builds it (`./Configure
# linux-x86_64 shared`, linked -Bsymbolic), once, into a cache outside the
# clone, and prints the directory holding its libssl.so.*.
#
# Usage: c-tests/release-openssl.sh LINE   (LINE: 4.0 or 3.5)
# The cache is $SESSCACHE_OPENSSL_CACHE (default /var/cache/sesscache-openssl);
# a later run reuses the build. Debian's source lists are read through a
# private apt configuration inside the cache: the system's apt sources are
# left alone. About ten minutes on two cores (no docs, tests or apps).
set -euo pipefail

LINE="${1:?usage: $0 4.0|3.5}"
case "$LINE" in
    4.0) VERSION=4.0.2-1 SUITE=experimental SONAME=libssl.so.4 ;;
    3.5) VERSION=3.5.7-1~deb13u2 SUITE=trixie SONAME=libssl.so.3 ;;
    *) echo "release-openssl.sh: unknown line $LINE (4.0 or 3.5)" >&2; exit 2 ;;
esac
CACHE="${SESSCACHE_OPENSSL_CACHE:-/var/cache/sesscache-openssl}"
DEST="$CACHE/openssl-$LINE"
LIBDIR="$DEST/lib"
if [ -f "$LIBDIR/$SONAME" ] && [ -f "$DEST/include/openssl/ssl.h" ]; then
    echo "$LIBDIR"
    exit 0
fi

APT="$CACHE/apt"
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$DEST.build"
cat >"$APT/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $SUITE main
EOF
apt_opts=(-o "Dir::Etc::SourceList=$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT" -o Dir::Cache::pkgcache=
    -o Dir::Cache::srcpkgcache=)
cd "$DEST.build"
upstream="${VERSION%-*}"
tarball="openssl_${upstream}.orig.tar.gz"
if [ ! -f "$tarball" ]; then
    apt-get "${apt_opts[@]}" update -qq >&2
    # The .dsc may be missing from the mirror; the upstream tarball is
    # what is needed, so a partial download is fine.
    apt-get "${apt_opts[@]}" source --download-only "openssl=$VERSION" >&2 || true
    [ -f "$tarball" ] || { echo "release-openssl.sh: $tarball not downloaded" >&2; exit 1; }
fi
rm -rf src && mkdir src
tar xzf "$tarball" -C src --strip-components=1
cd src
./Configure linux-x86_64 shared no-tests no-docs no-apps --prefix="$DEST" \
    --openssldir="$DEST/ssl" --libdir=lib >&2
nice make -j"$(nproc)" build_libs >&2
make install_dev >&2
grep -q -- '-Bsymbolic' Makefile || echo "warning: this build does not link with -Bsymbolic" >&2
cd .. && rm -rf src
echo "$LIBDIR"
