#!/usr/bin/env bash
# Tests `make install` / `make uninstall` the way an operator or a packager
# uses them (run `make` first):
#
#  1. make install DESTDIR=$TMP/dest PREFIX=/usr: every file is there; a C
#     server (c-tests/demo.c) builds with `pkg-config --cflags --libs
#     sesscache` (PKG_CONFIG_SYSROOT_DIR=$TMP/dest) and, run with
#     LD_LIBRARY_PATH, gets SSL_CTX_new from the installed library and
#     resumes from its cache (SESSCACHE_LOG shows hits); the man page
#     renders; make uninstall leaves no file behind.
#  2. make install PREFIX=$TMP/prefix (no DESTDIR): with-sesscache runs the
#     same program built against libssl alone with the library preloaded;
#     make uninstall.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CC="${CC:-cc}"
MAKE="${MAKE:-make}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/sesscache-install.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
. "$REPO/c-tests/report.sh"
mk() { "$MAKE" -s --no-print-directory -C "$REPO" "$@"; }

# check_demo NAME OUTPUT-FILE: the demo ran under the installed library.
check_demo() {
    local name="$1" out="$2" hits
    hits="$(grep -c '^sesscache\[[0-9]*\] ctx=0x[0-9a-f]* hit ' "$out" || true)"
    if ! grep -q "SSL_CTX_new comes from: $3" "$out"; then
        fail "$name: SSL_CTX_new not from $3: $(grep 'comes from' "$out" || echo '(no output)')"
    elif grep -q 'sesscache: loaded, but' "$out"; then
        fail "$name: the library says it is bypassed"
    elif [ "$hits" -lt 6 ]; then
        fail "$name: $hits cache hits in the event log (6 expected)"
    elif [ "$(grep -c 'server says a RESUMED handshake' "$out")" != 6 ]; then
        fail "$name: not every offered session resumed"
    else
        pass "$name: SSL_CTX_new from $3, $hits hits in the event log, 6 of 6 offered sessions resumed"
    fi
}

# --- 1. DESTDIR + PREFIX=/usr, pkg-config -----------------------------------
DEST="$TMP/dest"
mk install DESTDIR="$DEST" PREFIX=/usr
FILES=(usr/lib/libsesscache.so usr/lib/libsesscache.a usr/include/sesscache.h
    usr/lib/pkgconfig/sesscache.pc usr/bin/with-sesscache usr/bin/sesscache-stats
    usr/share/man/man7/sesscache.7)
missing=""
for f in "${FILES[@]}"; do [ -f "$DEST/$f" ] || missing+=" $f"; done
extra="$(cd "$DEST" && find . -type f | sed 's|^\./||' | sort | grep -vxF -f <(printf '%s\n' "${FILES[@]}") || true)"
if [ -n "$missing" ] || [ -n "$extra" ]; then
    fail "install DESTDIR: missing:${missing:- none}; unexpected: ${extra:-none}"
else
    pass "install DESTDIR=… PREFIX=/usr: ${#FILES[@]} files"
fi
grep -q '^prefix=/usr$' "$DEST/usr/lib/pkgconfig/sesscache.pc" \
    && grep -q '^libdir=/usr/lib$' "$DEST/usr/lib/pkgconfig/sesscache.pc" \
    || fail "sesscache.pc does not name PREFIX=/usr: $(head -3 "$DEST/usr/lib/pkgconfig/sesscache.pc" | tr '\n' ' ')"
grep -q '^lib="/usr/lib/libsesscache.so"$' "$DEST/usr/bin/with-sesscache" \
    || fail "with-sesscache does not name /usr/lib/libsesscache.so"
[ -x "$DEST/usr/bin/with-sesscache" ] || fail "with-sesscache is not executable"

export PKG_CONFIG_PATH="$DEST/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$DEST"
FLAGS="$(pkg-config --cflags --libs sesscache)"
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
# -lsesscache must come before -lssl, or the library is never reached.
if ! grep -qE -- "-L$DEST/usr/lib .*-lsesscache .*-lssl" <<<"$FLAGS" \
    || ! grep -qF -- "-I$DEST/usr/include" <<<"$FLAGS"; then
    fail "pkg-config --cflags --libs sesscache: $FLAGS"
else
    pass "pkg-config --cflags --libs sesscache: $FLAGS"
fi
# shellcheck disable=SC2086 # FLAGS is a list of words
"$CC" -O1 -Wall -Wextra -Werror "$REPO/c-tests/demo.c" -o "$TMP/demo-linked" $FLAGS -lpthread
LD_LIBRARY_PATH="$DEST/usr/lib" SESSCACHE_LOG=1 "$TMP/demo-linked" >"$TMP/linked.out" 2>&1 \
    || fail "demo linked with pkg-config exited with $?"
check_demo "server linked with pkg-config, run with LD_LIBRARY_PATH" "$TMP/linked.out" \
    "$DEST/usr/lib/libsesscache.so"

if command -v man >/dev/null; then
    warnings="$(MANWIDTH=80 man -l "$DEST/usr/share/man/man7/sesscache.7" 2>&1 >/dev/null || true)"
    if [ -n "$warnings" ] || ! MANWIDTH=80 man -l "$DEST/usr/share/man/man7/sesscache.7" 2>/dev/null \
        | grep -q SESSCACHE_STATS; then
        fail "man -l sesscache.7: ${warnings:-does not render}"
    else
        pass "man -l sesscache.7 renders ($(MANWIDTH=80 man -l "$DEST/usr/share/man/man7/sesscache.7" 2>/dev/null | wc -l) lines)"
    fi
fi

mk uninstall DESTDIR="$DEST" PREFIX=/usr
left="$(find "$DEST" -type f)"
[ -z "$left" ] && pass "uninstall DESTDIR=… PREFIX=/usr: no file left" \
    || fail "uninstall left: $left"

# --- 2. PREFIX only, with-sesscache ------------------------------------------
PREFIX="$TMP/prefix"
mk install PREFIX="$PREFIX"
"$CC" -O1 -Wall -Wextra -Werror -I"$PREFIX/include" "$REPO/c-tests/demo.c" -o "$TMP/demo-plain" \
    -lssl -lcrypto -lpthread
SESSCACHE_LOG=1 "$PREFIX/bin/with-sesscache" "$TMP/demo-plain" >"$TMP/preload.out" 2>&1 \
    || fail "with-sesscache demo exited with $?"
check_demo "with-sesscache (PREFIX=…) running a libssl-only build" "$TMP/preload.out" \
    "$PREFIX/lib/libsesscache.so"
"$PREFIX/bin/with-sesscache" sh -c 'test "$LD_PRELOAD" = "$0"' "$PREFIX/lib/libsesscache.so" \
    || fail "with-sesscache: LD_PRELOAD is not the installed library"
mk uninstall PREFIX="$PREFIX"
left="$(find "$PREFIX" -type f)"
[ -z "$left" ] && pass "uninstall PREFIX=…: no file left" || fail "uninstall left: $left"

finish
