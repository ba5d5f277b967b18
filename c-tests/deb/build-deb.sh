#!/usr/bin/env bash
# Builds target/deb/sesscache_<version>_<arch>.deb from what `make install
# PREFIX=/usr` installs (run `make` first), plus the example systemd drop-ins
# in /usr/share/doc/sesscache/examples/ and the copyright file. Prints the
# package's path.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MAKE="${MAKE:-make}"
OUT="$REPO/target/deb"
STAGE="$OUT/stage"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n 1)"
ARCH="$(dpkg --print-architecture)"
DEB="$OUT/sesscache_${VERSION}_${ARCH}.deb"

umask 022
rm -rf "$STAGE"
mkdir -p "$STAGE"
"$MAKE" -s --no-print-directory -C "$REPO" install DESTDIR="$STAGE" PREFIX=/usr >/dev/null

# Debian's layout: no debug sections in what is installed, man pages
# compressed, the copyright beside the examples.
strip --strip-unneeded "$STAGE/usr/lib/libsesscache.so" "$STAGE/usr/bin/sesscache-stats"
strip --strip-debug "$STAGE/usr/lib/libsesscache.a"
gzip -9n "$STAGE/usr/share/man/man7/sesscache.7"
DOC="$STAGE/usr/share/doc/sesscache"
install -d "$DOC/examples"
for server in nginx haproxy apache2; do
    install -m 644 "$REPO/c-tests/deb/examples/$server.conf" "$DOC/examples/$server.service.d-sesscache.conf"
done
cat >"$DOC/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sesscache

Files: *
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF

install -d "$STAGE/DEBIAN"
# libsesscache.so needs libc6 and libgcc-s1 (readelf -d) and finds libssl
# in the process at run time; libssl3 is the libssl it serves (and the one
# sesscache.pc's Requires names for linking). It has no SONAME, so ldconfig has nothing to do for it: no trigger.
cat >"$STAGE/DEBIAN/control" <<EOF
Package: sesscache
Version: $VERSION
Architecture: $ARCH
Maintainer: sesscache developers <sesscache@invalid>
Depends: libssl3 (>= 3.0.0), libc6 (>= 2.34), libgcc-s1
Section: libs
Priority: optional
Installed-Size: $(du -sk "$STAGE/usr" | cut -f1)
Description: libssl's server-side session cache, served from Rust
 Preloaded into an OpenSSL 3.0 server (with-sesscache, or LD_PRELOAD), or
 linked before -lssl, sesscache serves every SSL_CTX's session cache and
 external-cache callbacks; optionally it shares sessions between servers
 through Redis. Includes sesscache-stats for the per-process counters.
 See sesscache(7).
EOF
chmod 644 "$STAGE/DEBIAN/control"

fakeroot dpkg-deb --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
