# Shared by the server tests (c-tests/nginx, c-tests/haproxy, c-tests/apache):
# sourced, not run. The sourcing script sets REPO and TEST (its name, for
# messages) first.

LIB="${SESSCACHE_LIB:-target/release/libsesscache.so}"
case "$LIB" in /*) ;; *) LIB="$REPO/$LIB" ;; esac
CC="${CC:-cc}"
CLIENT="$REPO/target/server-tests/tls_client"

die() { echo "$TEST: $*" >&2; exit 2; }

# build_client: c-tests/nginx/tls_client.c into $CLIENT.
build_client() {
    mkdir -p "$(dirname "$CLIENT")"
    "$CC" -O2 -Wall -Wextra -Werror "$REPO/c-tests/nginx/tls_client.c" -o "$CLIENT" -lssl -lcrypto \
        || die "cannot build the client"
}

# make_cert DIR: DIR/cert.pem and DIR/key.pem, a self-signed leaf for localhost.
make_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext basicConstraints=critical,CA:FALSE \
        -keyout "$1/key.pem" -out "$1/cert.pem" >/dev/null 2>&1 \
        || die "cannot make a certificate"
}

alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# children_of PID: its child pids, sorted, one line.
children_of() { pgrep -P "$1" 2>/dev/null | sort -n | tr '\n' ' ' | sed 's/ $//'; }

# live_children_of PID: the same without the children that exited and are
# not reaped yet.
live_children_of() {
    local pid out=""
    for pid in $(children_of "$1"); do alive "$pid" && out+="${out:+ }$pid"; done
    echo "$out"
}

# mapping_problems MODE PIDS: the library is mapped into each of PIDS exactly
# when MODE is lib; prints each process where it is not so.
mapping_problems() {
    local mode="$1" pid
    for pid in $2; do
        if grep -q libsesscache "/proc/$pid/maps" 2>/dev/null; then
            [ "$mode" = lib ] || echo "libsesscache mapped in $pid"
        else
            [ "$mode" = plain ] || echo "libsesscache not mapped in $pid"
        fi
    done
}

# field NAME LINE: the value of NAME=... in the client's output line;
# `field of LINE` is N in "resumed=K of N".
field() {
    if [ "$1" = of ]; then
        sed -n 's/.* of \([0-9]*\).*/\1/p' <<<"$2"
    else
        sed -n "s/.*\\b$1=\\([0-9]*\\).*/\\1/p" <<<"$2"
    fi
}

# count EVENT LOG [PIDS]: lines of that event (only from PIDS if given).
count() {
    local event="$1" log="$2" pids="${3:-}"
    [ -f "$log" ] || { echo 0; return; }
    awk -v ev="$event" -v pids=" $pids " '
        $3 == ev {
            pid = $1; sub(/^sesscache\[/, "", pid); sub(/\].*/, "", pid)
            if (pids == "  " || index(pids, " " pid " ")) n++
        }
        END { print n + 0 }' "$log"
}

# pids_with EVENT LOG: the distinct pids that logged EVENT ("*": any event).
pids_with() {
    local pids=""
    [ ! -f "$2" ] || pids="$(awk -v ev="$1" 'ev == "*" || $3 == ev { pid = $1; sub(/^sesscache\[/, "", pid); sub(/\].*/, "", pid); print pid }' "$2" \
        | sort -un | tr '\n' ' ' | sed 's/ $//')"
    echo "${pids:-none}"
}

# leftovers LOG: sessions added and never removed, per pid (8-hex prefixes),
# as "pid:count ..."; empty when every cache was emptied.
leftovers() {
    [ -f "$1" ] || return 0
    awk '{
            pid = $1; sub(/^sesscache\[/, "", pid); sub(/\].*/, "", pid)
            key = pid " " $2 " " $4
            if ($3 == "add") live[key] = 1
            else if ($3 ~ /^(remove|evict|expire|flush|ctx-free)$/) delete live[key]
        }
        END { for (k in live) { split(k, f, " "); n[f[1]]++ }
              for (p in n) printf "%s:%d ", p, n[p] }' "$1"
}

# events LOG: the library's log in one phrase.
events() {
    echo "$(count hit "$1") hit, $(count store-hit "$1") store-hit, $(count callback-hit "$1") callback-hit, $(count miss "$1") miss, $(count add "$1") add, $(count evict "$1") evict"
}

# pct A B: A/B as a percentage with one decimal.
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.1f", 100 * a / b }'; }
# at_least A B P: A >= P% of B (B > 0).
at_least() { awk -v a="$1" -v b="$2" -v p="$3" 'BEGIN { exit !(b > 0 && a * 100 >= p * b) }'; }

# summary LINE: "K/N = P% (same worker RS/S)"
summary() {
    local line="$1"
    printf '%s/%s = %s%% (same worker %s/%s)' "$(field resumed "$line")" "$(field of "$line")" \
        "$(pct "$(field resumed "$line")" "$(field of "$line")")" \
        "$(field resumed_same "$line")" "$(field same_worker "$line")"
}

# SESSCACHE_STATS is checked when the library has it.
HAVE_STATS=0
[ ! -f "$LIB" ] || ! grep -q SESSCACHE_STATS "$LIB" || HAVE_STATS=1

# check_stats DIR [PIDS]: without PIDS (after exit), every pid in the event
# log DIR/sesscache.log has a stats file in DIR/stats whose counters equal
# its log lines and sessions=0; with PIDS (while running), each of those
# pids has a stats file.
check_stats() {
    local dir="$1" pids="${2:-}" pid ev stat want got
    [ "$HAVE_STATS" = 1 ] || return 0
    if [ -n "$pids" ]; then
        for pid in $pids; do
            [ -f "$dir/stats/sesscache.$pid.stats" ] || echo "no stats file for worker $pid while running"
        done
        return 0
    fi
    for pid in $(pids_with '*' "$dir/sesscache.log"); do
        [ "$pid" != none ] || continue
        local file="$dir/stats/sesscache.$pid.stats"
        [ -f "$file" ] || { echo "no stats file for pid $pid at exit"; continue; }
        for ev in add:adds replace:replaces hit:hits miss:misses callback-hit:callback_hits \
            remove:removes evict:evictions expire:expired flush:flushed ctx-free:ctx_freed; do
            stat="${ev#*:}"; ev="${ev%%:*}"
            want="$(count "$ev" "$dir/sesscache.log" "$pid")"
            got="$(sed -n "s/^$stat=//p" "$file")"
            [ "$got" = "$want" ] || echo "pid $pid: $stat=${got:-missing} but $want $ev lines in the log"
        done
        got="$(sed -n 's/^sessions=//p' "$file")"
        [ "$got" = 0 ] || echo "pid $pid: sessions=${got:-missing} at exit"
    done
}

# add_problems PREFIX < lines: appends each line to the caller's $problems.
add_problems() {
    local p
    while IFS= read -r p; do
        [ -n "$p" ] && problems+="; $1: $p"
    done
    return 0
}

# rate_problems RULE PLAIN_LINE LIB_LINE: the client results of a plain and
# a preloaded run against the same configuration. RULE off: neither resumes.
# RULE rate: plain resumes >= 95% of the returning clients (else the set-up
# tests nothing), and sesscache resumes >= 95% and at least what plain does
# less 2% of the connections.
rate_problems() {
    local rule="$1" mode line n p l
    for mode in plain lib; do
        line="$([ $mode = plain ] && echo "$2" || echo "$3")"
        [ -n "$line" ] || { echo "$mode: no client result"; return; }
        [ "$(field failed "$line")" = 0 ] || echo "$mode: client failures"
    done
    n="$(field of "$3")"; p="$(field resumed "$2")"; l="$(field resumed "$3")"
    if [ "$rule" = off ]; then
        [ "$p" = 0 ] || echo "plain: $p resumptions with the cache off"
        [ "$l" = 0 ] || echo "sesscache: $l resumptions with the cache off"
        return
    fi
    awk -v l="$l" -v p="$p" -v n="$n" 'BEGIN { exit !(l * 50 >= p * 50 - n) }' \
        || echo "sesscache resumed $l/$n, below plain's $p"
    at_least "$p" "$((n - 1))" 95 || echo "plain resumed $p/$n < 95%: the set-up does not resume"
    at_least "$l" "$((n - 1))" 95 || echo "sesscache resumed $l/$n < 95%"
}

# resumed LINE: K of the client's "resumed=K", 0 when there is no result.
resumed() { local v; v="$(field resumed "$1")"; echo "${v:-0}"; }
