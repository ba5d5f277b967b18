#!/usr/bin/env bash
# Builds OpenSSL 3.0 from Debian's source package the way upstream's own
# build does it (`./Configure linux-x86_64 shared`, which links libssl with
# -Wl,-Bsymbolic: libssl's internal calls then never reach an interposed
# export) and prints the directory holding its libssl.so.3.
#
# Usage: c-tests/upstream-openssl.sh [DEST]   (default target/openssl-upstream)
# Needs deb-src entries for the configured suites (added here if missing,
# as root) and about ten minutes on two cores. Reuses an earlier build.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$REPO/target/openssl-upstream}"
LIBDIR="$DEST/lib64"
if [ -f "$LIBDIR/libssl.so.3" ]; then
    echo "$LIBDIR"
    exit 0
fi

WORK="$DEST.build"
mkdir -p "$WORK"
cd "$WORK"
if ! ls openssl_*.orig.tar.gz >/dev/null 2>&1; then
    if ! apt-get source --download-only openssl >/dev/null 2>&1; then
        # Debian's sources are not listed yet: add deb-src next to deb.
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] || continue
            grep -q '^Types:.*deb-src' "$f" || sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"
        done
        apt-get update -qq >&2
        # The .dsc may be missing from the mirror; the upstream tarball is
        # what is needed, so a partial download is fine.
        apt-get source --download-only openssl >&2 || true
    fi
fi
tarball="$(ls openssl_*.orig.tar.gz | sort -V | tail -n 1)"
rm -rf src && mkdir src
tar xzf "$tarball" -C src --strip-components=1
cd src
./Configure linux-x86_64 shared no-tests --prefix="$DEST" --openssldir="$DEST/ssl" >&2
nice make -j"$(nproc)" build_libs >&2
make install_dev >&2
grep -q -- '-Bsymbolic' Makefile || echo "warning: this build does not link with -Bsymbolic" >&2
echo "$LIBDIR"
