#!/usr/bin/env bash
# The stats directory as an operator reads it (run `make` first):
#
#  1. c-tests/demo.c runs preloaded with SESSCACHE_STATS=DIR twice, once
#     without a store and once with a store whose Redis does not answer
#     (a loopback port nobody listens on): each run leaves
#     sesscache.<pid>.stats and sesscache.<pid>.prom and no temporary file.
#  2. Each .prom file is well-formed text exposition (every sample's metric
#     has # HELP and # TYPE lines, counters end in _total, a pid label) and
#     carries the same numbers as its .stats file.
#  3. sesscache-stats DIR prints both processes, their sums, the hit ratio,
#     the store's errors for the second and each marking mode.
#  4. Garbage added to DIR (a symlink to a stats file, a FIFO, a directory,
#     a file too large, binary bytes, a wrong pid, an overflowing count) is
#     skipped with a reason, without hanging, and the sums do not change;
#     a directory of garbage alone exits 1.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LIB="${SESSCACHE_LIB:-$REPO/target/release/libsesscache.so}"
STATS_BIN="${SESSCACHE_STATS_BIN:-$REPO/target/release/sesscache-stats}"
DEMO="${DEMO:-$REPO/target/demo/demo}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/sesscache-stats.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
. "$REPO/c-tests/report.sh"
for f in "$LIB" "$STATS_BIN" "$DEMO"; do
    [ -x "$f" ] || [ -f "$f" ] || { echo "test-stats: $f not found (run make first)" >&2; exit 2; }
done

D="$TMP/stats"
mkdir "$D"
LD_PRELOAD="$LIB" SESSCACHE_STATS="$D" "$DEMO" >"$TMP/demo1.out" 2>&1 || fail "demo without a store exited with $?"
openssl rand -hex 32 >"$TMP/keys"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LD_PRELOAD="$LIB" SESSCACHE_STATS="$D" SESSCACHE_STORE="redis://127.0.0.1:$port/0" \
    SESSCACHE_STORE_KEY_FILE="$TMP/keys" "$DEMO" >"$TMP/demo2.out" 2>&1 \
    || fail "demo with an unreachable store exited with $?"
grep -q 'server says a RESUMED handshake' "$TMP/demo2.out" || fail "no resumption with the store down"

mapfile -t stats_files < <(cd "$D" && ls sesscache.*.stats)
if [ ${#stats_files[@]} != 2 ] || [ "$(cd "$D" && ls -A | wc -l)" != 4 ]; then
    fail "expected 2 .stats and 2 .prom files, found: $(cd "$D" && ls -A | tr '\n' ' ')"
else
    pass "two runs left ${stats_files[*]} and their .prom files, nothing else"
fi

# value NAME FILE
value() { sed -n "s/^$1=//p" "$2"; }
for f in "${stats_files[@]}"; do
    pid="${f#sesscache.}"; pid="${pid%.stats}"
    prom="$D/sesscache.$pid.prom"
    problems="$(awk -v pid="$pid" '
        /^# HELP / { help[$3] = 1; next }
        /^# TYPE / { type[$3] = $4; next }
        /^#/ || /^$/ { next }
        {
            name = $1; sub(/\{.*/, "", name)
            if (!(name in help) || !(name in type)) print "no HELP/TYPE for " name
            if (type[name] == "counter" && name !~ /_total$/) print "counter without _total: " name
            if (index($1, "{pid=\"" pid "\"") == 0) print "no pid label: " $1
            if ($2 !~ /^[0-9]+$/) print "bad value: " $0
            n++
        }
        END { if (n < 10) print "only " n + 0 " samples" }' "$prom")"
    sample() { sed -n "s/^$1{pid=\"$pid\"[^}]*} //p" "$prom"; }
    [ "$(sample sesscache_lookup_hits_total)" = "$(value hits "$D/$f")" ] \
        || problems+=" hits differ from the .stats file;"
    [ "$(sample sesscache_sessions_added_total)" = "$(value adds "$D/$f")" ] \
        || problems+=" adds differ;"
    grep -q "^sesscache_not_resumable_marking_info{pid=\"$pid\",mode=\"$(value not_resumable_marking "$D/$f")\"} 1$" "$prom" \
        || problems+=" marking mode missing;"
    [ -z "$problems" ] && pass "$(basename "$prom"): well-formed, $(grep -vc '^#' "$prom") samples, same numbers as $f" \
        || fail "$(basename "$prom"): $problems"
done

store_file="$(grep -l '^store_errors=' "$D"/sesscache.*.stats || true)"
if [ -z "$store_file" ] || [ "$(value store_errors "$store_file")" -lt 1 ]; then
    fail "the run with the store down counted no store error: $(cat "$store_file" 2>/dev/null | tr '\n' ' ')"
fi

# The sums sesscache-stats must print, from the files themselves.
sum() { cat "$D"/sesscache.*.stats | sed -n "s/^$1=//p" | awk '{ s += $1 } END { print s + 0 }'; }
hits="$(sum hits)"; misses="$(sum misses)"; served="$(sum store_lookups_served)"
errors="$(sum store_errors)"; rejected="$(sum store_rejected)"; dropped="$(sum store_dropped)"
ratio="$(awk -v h="$hits" -v s="$served" -v m="$misses" 'BEGIN { printf "%.1f", 100 * (h + s) / (h + m) }')"

# check_report OUTPUT: the totals and each process's row.
check_report() {
    local out="$1" all problems=""
    all="$(awk '$1 == "all"' "$out")"
    read -r -a f <<<"$all"
    [ "${f[1]:-}" = "$((hits + misses))" ] && [ "${f[2]:-}" = "$hits" ] && [ "${f[3]:-}" = "$ratio" ] \
        && [ "${f[8]:-}" = "$errors/$rejected/$dropped" ] \
        || problems+=" totals: '$all' (want lookups $((hits + misses)), hits $hits, $ratio %, store $errors/$rejected/$dropped);"
    grep -q '^/.*: 2 process(es)$' "$out" || problems+=" not 2 processes;"
    for s in "${stats_files[@]}"; do
        local pid="${s#sesscache.}" mode
        pid="${pid%.stats}"; mode="$(value not_resumable_marking "$D/$s")"
        awk -v p="$pid" -v m="$mode" '$1 == p && $NF == m { found = 1 } END { exit !found }' "$out" \
            || problems+=" no row for pid $pid with marking $mode;"
    done
    echo "$problems"
}

"$STATS_BIN" "$D" >"$TMP/report1" || fail "sesscache-stats exited with $?"
problems="$(check_report "$TMP/report1")"
[ -z "$problems" ] && pass "sesscache-stats: 2 processes, $((hits + misses)) lookups, $ratio % hits, store $errors/$rejected/$dropped, marking per process" \
    || { fail "sesscache-stats:$problems"; cat "$TMP/report1"; }

# --- garbage ---------------------------------------------------------------
ln -s "$D/${stats_files[0]}" "$D/sesscache.1.stats"
mkfifo "$D/sesscache.2.stats"
mkdir "$D/sesscache.3.stats"
head -c 100000 /dev/zero | tr '\0' 'x' >"$D/sesscache.4.stats"
head -c 300 /dev/urandom >"$D/sesscache.5.stats"
printf 'pid=7\nhits=1\n' >"$D/sesscache.6.stats"
printf 'pid=8\nhits=99999999999999999999999\n' >"$D/sesscache.8.stats"
ln -s /etc/passwd "$D/sesscache.9.stats"
if ! timeout 10 "$STATS_BIN" "$D" >"$TMP/report2" 2>&1; then
    fail "sesscache-stats with garbage exited with $? (124: it hung)"
fi
problems="$(check_report "$TMP/report2")"
skipped="$(grep -c '^skipped sesscache\.[0-9]*\.stats: ' "$TMP/report2" || true)"
for want in "sesscache.1.stats: a symlink" "sesscache.2.stats: not a regular file" \
    "sesscache.3.stats: not a regular file" "sesscache.4.stats: larger than" \
    "sesscache.6.stats: names pid 7" "sesscache.8.stats: line 2: hits is not a count" \
    "sesscache.9.stats: a symlink"; do
    grep -qF "skipped $want" "$TMP/report2" || problems+=" no '$want';"
done
[ "$skipped" = 8 ] || problems+=" $skipped files skipped, 8 expected;"
[ -z "$problems" ] && pass "sesscache-stats with 8 garbage files (symlinks, FIFO, directory, 100 kB, random bytes, wrong pid, overflow): all skipped with a reason, sums unchanged" \
    || { fail "sesscache-stats with garbage:$problems"; cat "$TMP/report2"; }

rm "$D"/sesscache.*.prom "$D/sesscache.1.stats" "$D/${stats_files[0]}" "$D/${stats_files[1]}"
status=0
timeout 10 "$STATS_BIN" "$D" >"$TMP/report3" 2>&1 || status=$?
[ "$status" = 1 ] && grep -q 'no readable stats file' "$TMP/report3" \
    && pass "a directory of garbage only: exit 1, 'no readable stats file'" \
    || fail "garbage only: exit $status: $(tr '\n' ' ' <"$TMP/report3")"

finish
