#!/usr/bin/env bash
# Builds one OpenSSL release line from Debian's source package (the
# upstream tarball it carries), once, into a cache outside the clone, and
# prints the directory holding its libssl.so.*.
#
# Usage: c-tests/release-openssl.sh LINE
#   3.0, 3.5, 3.6, 4.0   linked the way upstream links it (`./Configure
#                        linux-x86_64 shared`, -Bsymbolic: libssl's internal
#                        calls never reach an interposed export)
#   3.5-interposable     3.5 linked the way Debian 13 links it (without
#                        -Bsymbolic: libssl calls its own exports through
#                        the PLT, so an interposed export sees them)
#   4.0.3                4.0's newest release, -Bsymbolic, from the
#                        openssl-src crate (fetched by cargo, which checks
#                        it against crates.io's index) while Debian's mirror
#                        does not give it. The crate leaves out the
#                        generator of the shared libraries' symbol versions
#                        (util/mkdef.pl), taken from 4.0.2's Debian source,
#                        and what loadable providers are built from
#                        (no-module).
# 3.0 is bookworm's, 3.5 trixie's, 3.6 sid's, 4.0 experimental's (the first
# of a line's versions that the mirror gives).
# The link style is checked on the built libssl (readelf -d: DT_FLAGS
# SYMBOLIC present exactly for -Bsymbolic).
# The cache is $SESSCACHE_OPENSSL_CACHE (default /var/cache/sesscache-openssl);
# a later run reuses the build. Debian's source lists are read through a
# private apt configuration inside each line's build directory: the system's
# apt sources are left alone, and two lines can build at once. About five
# minutes on two cores (no docs, tests or apps).
set -euo pipefail

LINE="${1:?usage: $0 3.0|3.5|3.5-interposable|3.6|4.0|4.0.3}"
SYMBOLIC=1
CRATE=
case "$LINE" in
    3.0) VERSIONS=3.0.20-1~deb12u2 SUITE=bookworm SONAME=libssl.so.3 ;;
    3.5) VERSIONS=3.5.7-1~deb13u2 SUITE=trixie SONAME=libssl.so.3 ;;
    3.5-interposable) VERSIONS=3.5.7-1~deb13u2 SUITE=trixie SONAME=libssl.so.3 SYMBOLIC=0 ;;
    # sid lists 3.6.5-1, which the mirror may not hold yet; 3.6.3-1 stays
    # in sid as an extra source (Built-Using).
    3.6) VERSIONS="3.6.5-1 3.6.3-1" SUITE=sid SONAME=libssl.so.3 ;;
    4.0) VERSIONS=4.0.2-1 SUITE=experimental SONAME=libssl.so.4 ;;
    4.0.3) CRATE=400.0.2+4.0.3 VERSIONS=4.0.2-1 SUITE=experimental SONAME=libssl.so.4 ;;
    *) echo "release-openssl.sh: unknown line $LINE (3.0, 3.5, 3.5-interposable, 3.6, 4.0 or 4.0.3)" >&2; exit 2 ;;
esac
CACHE="${SESSCACHE_OPENSSL_CACHE:-/var/cache/sesscache-openssl}"
DEST="$CACHE/openssl-$LINE"
LIBDIR="$DEST/lib"
if [ -f "$LIBDIR/$SONAME" ] && [ -f "$DEST/include/openssl/ssl.h" ]; then
    echo "$LIBDIR"
    exit 0
fi

mkdir -p "$DEST.build"
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/debian-source.sh"
cd "$DEST.build"
rm -rf src
# shellcheck disable=SC2086 # VERSIONS is a list
tarball="$(debian_source_tarball "$DEST.build/apt" "$SUITE" openssl $VERSIONS)" \
    || { echo "release-openssl.sh: no openssl source of $VERSIONS downloaded" >&2; exit 1; }
if [ -n "$CRATE" ]; then
    # A manifest that needs only the crate: cargo fetch downloads it (and
    # checks its checksum) into cargo's registry.
    mkdir -p fetch/src
    printf '[package]\nname = "openssl-source"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nopenssl-src = "=%s"\n' \
        "${CRATE%%+*}" >fetch/Cargo.toml
    : >fetch/src/lib.rs
    cargo fetch --quiet --manifest-path fetch/Cargo.toml >&2
    crate_dir="$(cargo metadata --quiet --format-version 1 --manifest-path fetch/Cargo.toml \
        | grep -o "\"manifest_path\":\"[^\"]*/openssl-src-$CRATE/Cargo.toml\"" | head -1 \
        | sed 's/^"manifest_path":"//; s|/Cargo.toml"$||')"
    [ -f "$crate_dir/openssl/Configure" ] \
        || { echo "release-openssl.sh: openssl-src $CRATE not fetched" >&2; exit 1; }
    cp -r "$crate_dir/openssl" src
    chmod -R u+w src
    tar xzf "$tarball" -C src --strip-components=1 --wildcards '*/util/mkdef.pl'
else
    mkdir src
    tar xzf "$tarball" -C src --strip-components=1
fi
cd src
# 3.0's Configure knows no no-docs/no-apps; build_libs and install_dev
# build and install neither there.
extra=(no-docs no-apps)
[ "$LINE" = 3.0 ] && extra=()
[ -n "$CRATE" ] && extra+=(no-module)
./Configure linux-x86_64 shared no-tests "${extra[@]}" --prefix="$DEST" \
    --openssldir="$DEST/ssl" --libdir=lib >&2
if [ "$SYMBOLIC" = 0 ]; then
    # Debian 13's libssl is linked without -Bsymbolic; the flag comes only
    # from the generated Makefile's link flags.
    sed -i 's/ -Wl,-Bsymbolic\b//g' Makefile
fi
nice make -j"$(nproc)" build_libs >&2
make install_dev >&2
if readelf -d "$LIBDIR/$SONAME" | grep -q SYMBOLIC; then has=1; else has=0; fi
if [ "$has" != "$SYMBOLIC" ]; then
    echo "release-openssl.sh: $LIBDIR/$SONAME: DT_FLAGS SYMBOLIC is $has, wanted $SYMBOLIC" >&2
    rm -f "$LIBDIR/$SONAME"
    exit 1
fi
cd .. && rm -rf src
echo "$LIBDIR"
