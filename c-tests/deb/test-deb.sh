#!/usr/bin/env bash
# Tests the Debian package on this machine (make deb first; dpkg runs as
# root, through sudo otherwise):
#
#  1. The package holds what `make install PREFIX=/usr` installs and the
#     example drop-ins, and none of its files exists on the machine yet.
#  2. dpkg -i installs it; every file dpkg -L lists is there.
#  3. with-sesscache runs c-tests/demo.c (built against libssl alone): its
#     SSL_CTX_new comes from /usr/lib/libsesscache.so and the event log
#     shows the cache's hits; sesscache-stats reads the stats it leaves;
#     pkg-config finds sesscache.pc.
#  4. dpkg -r removes it: the package is gone from dpkg's database and no
#     file that dpkg -L listed is left.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEMO="${DEMO:-$REPO/target/demo/demo}"
DEB="$(ls "$REPO"/target/deb/sesscache_*.deb 2>/dev/null | sort -V | tail -n 1)"
[ -n "$DEB" ] || { echo "test-deb: no target/deb/sesscache_*.deb (run make deb)" >&2; exit 2; }
[ -x "$DEMO" ] || { echo "test-deb: $DEMO not found" >&2; exit 2; }
as_root=()
[ "$(id -u)" = 0 ] || as_root=(sudo --)
TMP="$(mktemp -d "${TMPDIR:-/tmp}/sesscache-deb.XXXXXX")"
. "$REPO/c-tests/report.sh"
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' sesscache 2>/dev/null)" = installed ]; }

if installed || [ -n "$(dpkg-query -W -f='${db:Status-Status}' sesscache 2>/dev/null)" ]; then
    echo "test-deb: a sesscache package is already known to dpkg; not touching it" >&2
    exit 2
fi
WE_INSTALLED=0
cleanup() {
    [ "$WE_INSTALLED" = 0 ] || "${as_root[@]}" dpkg -r sesscache >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# --- 1. contents --------------------------------------------------------------
dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' | sort >"$TMP/contents"
WANT=(/usr/lib/libsesscache.so /usr/lib/libsesscache.a /usr/include/sesscache.h
    /usr/lib/pkgconfig/sesscache.pc /usr/bin/with-sesscache /usr/bin/sesscache-stats
    /usr/share/man/man7/sesscache.7.gz /usr/share/doc/sesscache/copyright
    /usr/share/doc/sesscache/examples/nginx.service.d-sesscache.conf
    /usr/share/doc/sesscache/examples/haproxy.service.d-sesscache.conf
    /usr/share/doc/sesscache/examples/apache2.service.d-sesscache.conf)
if diff <(printf '%s\n' "${WANT[@]}" | sort) "$TMP/contents" >"$TMP/diff"; then
    pass "$(basename "$DEB"): the ${#WANT[@]} files expected, nothing else"
else
    fail "package contents (- expected, + found): $(grep '^[<>]' "$TMP/diff" | tr '\n' ' ')"
fi
dpkg-deb -f "$DEB" Depends | grep -q 'libssl3' || fail "Depends does not name libssl3"
present="$(while read -r f; do [ ! -e "$f" ] || echo "$f"; done <"$TMP/contents")"
if [ -n "$present" ]; then
    echo "test-deb: files of the package already on this machine (a make install?): $present" >&2
    exit 2
fi

# --- 2. install -----------------------------------------------------------------
WE_INSTALLED=1
if ! "${as_root[@]}" dpkg -i "$DEB" >"$TMP/dpkg-i.out" 2>&1; then
    fail "dpkg -i: $(tail -3 "$TMP/dpkg-i.out")"
fi
dpkg -L sesscache | sort >"$TMP/listed"
missing="$(while read -r f; do [ -e "$f" ] || echo "$f"; done <"$TMP/listed")"
if installed && [ -z "$missing" ] && [ "$(wc -l <"$TMP/listed")" -gt "${#WANT[@]}" ]; then
    pass "dpkg -i: installed, $(wc -l <"$TMP/listed") paths listed by dpkg -L, all present"
else
    fail "dpkg -i: status '$(dpkg-query -W -f='${db:Status-Status}' sesscache 2>&1)', missing: ${missing:-none}"
fi

# --- 3. use ---------------------------------------------------------------------
mkdir "$TMP/stats"
SESSCACHE_LOG=1 SESSCACHE_STATS="$TMP/stats" with-sesscache "$DEMO" >"$TMP/demo.out" 2>&1 \
    || fail "with-sesscache demo exited with $?"
hits="$(grep -c '^sesscache\[[0-9]*\] ctx=0x[0-9a-f]* hit ' "$TMP/demo.out" || true)"
if grep -q 'SSL_CTX_new comes from: /usr/lib/libsesscache.so' "$TMP/demo.out" && [ "$hits" -ge 6 ] \
    && [ "$(grep -c 'server says a RESUMED handshake' "$TMP/demo.out")" = 6 ]; then
    pass "with-sesscache demo: SSL_CTX_new from /usr/lib/libsesscache.so, $hits hits in the event log, 6 of 6 resumed"
else
    fail "with-sesscache demo: $(grep 'comes from' "$TMP/demo.out" || echo 'no provider line'), $hits hits"
fi
if sesscache-stats "$TMP/stats" >"$TMP/stats.out" 2>&1 && grep -q ': 1 process(es)$' "$TMP/stats.out"; then
    pass "sesscache-stats reads the demo's stats: $(awk '$1 == "all" { print $3 " hits of " $2 " lookups" }' "$TMP/stats.out")"
else
    fail "sesscache-stats: $(tr '\n' ' ' <"$TMP/stats.out")"
fi
flags="$(pkg-config --cflags --libs sesscache 2>&1 || true)"
grep -q -- '-lsesscache.*-lssl' <<<"$flags" && pass "pkg-config --cflags --libs sesscache: $flags" \
    || fail "pkg-config: $flags"

# --- 4. remove --------------------------------------------------------------------
"${as_root[@]}" dpkg -r sesscache >"$TMP/dpkg-r.out" 2>&1 || fail "dpkg -r: $(tail -3 "$TMP/dpkg-r.out")"
WE_INSTALLED=0
status="$(dpkg-query -W -f='${db:Status-Status}' sesscache 2>/dev/null || true)"
# Directories other packages own (/usr/lib, /usr/bin …) stay; ours go.
left="$(while read -r f; do
    if [ -f "$f" ] || [ -L "$f" ] || { [ -d "$f" ] && [[ $f == */sesscache* ]]; }; then echo "$f"; fi
done <"$TMP/listed")"
if [ -z "$left" ] && { [ -z "$status" ] || [ "$status" = not-installed ]; }; then
    pass "dpkg -r: removed (status '${status:-unknown to dpkg}'), none of the $(wc -l <"$TMP/listed") listed paths left"
else
    fail "dpkg -r: status '$status', left: ${left:-none}"
fi

finish
