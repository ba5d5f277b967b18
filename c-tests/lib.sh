# Shared by the server tests (c-tests/nginx, c-tests/haproxy, c-tests/apache):
# sourced, not run. The sourcing script sets REPO and the default
# CONNECTIONS first, then calls `server_test_setup NAME VAR BINARY "$@"`.

. "$REPO/c-tests/report.sh"

TEST="$(basename "$0" .sh)"
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

RELOAD_CONNECTIONS=100
KEEP=0
SERVER=""          # pid of the running server (master or parent), if any

# usage: the script's leading comment.
usage() { sed -n '2,/^[^#]/{/^#/p}' "$0"; }

# server_test_setup NAME VAR BINARY [-n CONNECTIONS] [--keep]: the options,
# the server (VAR, by default BINARY on PATH, else /usr/sbin/BINARY, of the
# Debian package BINARY), the library, the client and the certificate; TMP
# is the run directory (removed at exit unless --keep). A script that has
# more to stop at exit defines cleanup_more.
server_test_setup() {
    local name="$1" var="$2" binary="$3"
    shift 3
    printf -v "$var" '%s' "${!var:-$(command -v "$binary" || echo "/usr/sbin/$binary")}"
    [ -x "${!var}" ] || die "$binary not found (apt-get install $binary)"
    while [ $# -gt 0 ]; do
        case "$1" in
        -n) shift; CONNECTIONS="$1" ;;
        --keep) KEEP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
        esac
        shift
    done
    [ -f "$LIB" ] || die "$LIB not found (run make first)"
    command -v openssl >/dev/null || die "openssl not found"
    build_client
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/sesscache-$name.XXXXXX")"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    make_cert "$TMP"
}

# stop_hard: SIGKILL to the server and its children.
stop_hard() {
    [ -n "$SERVER" ] || return 0
    kill -KILL "$SERVER" $(pgrep -P "$SERVER" 2>/dev/null) 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
}

cleanup() {
    stop_hard
    ! declare -F cleanup_more >/dev/null || cleanup_more
    if [ "$KEEP" = 1 ]; then
        echo "$TEST: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}

# launch DIR PRELOAD(0|1) COMMAND...: COMMAND in the background, preloaded
# with the event log DIR/sesscache.log and stats in DIR/stats, or with
# none of the library's variables; output in DIR/stdout and DIR/stderr.
# Sets SERVER.
launch() {
    local dir="$1" preload="$2"
    shift 2
    if [ "$preload" = 1 ]; then
        mkdir -p "$dir/stats"
        env LD_PRELOAD="$LIB" SESSCACHE_LOG="$dir/sesscache.log" SESSCACHE_STATS="$dir/stats" \
            "$@" >"$dir/stdout" 2>"$dir/stderr" </dev/null &
    else
        env -u LD_PRELOAD -u SESSCACHE_LOG -u SESSCACHE_STATS \
            "$@" >"$dir/stdout" 2>"$dir/stderr" </dev/null &
    fi
    SERVER=$!
}

# wait_up NAME PORT CHILDREN LOGS...: waits up to 10 s for SERVER to answer
# on PORT with at least CHILDREN children; when it exits first, prints LOGS
# and clears SERVER.
wait_up() {
    local name="$1" port="$2" children="$3" i
    shift 3
    for i in $(seq 100); do
        if ! alive "$SERVER"; then
            echo "$name exited at startup:" >&2
            cat "$@" >&2 2>/dev/null
            wait "$SERVER" 2>/dev/null
            SERVER=""
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
            && [ "$(pgrep -c -P "$SERVER")" -ge "$children" ]; then
            return 0
        fi
        sleep 0.1
    done
    echo "$name did not answer on port $port" >&2
    return 1
}

# stop_server NAME COMMAND...: COMMAND asks the server to stop; waits up to
# 10 s, kills on timeout. Returns the server's exit status (1 on timeout).
stop_server() {
    local name="$1" i status
    shift
    [ -n "$SERVER" ] || return 0
    "$@" 2>/dev/null
    for i in $(seq 100); do
        alive "$SERVER" || break
        sleep 0.1
    done
    if alive "$SERVER"; then
        echo "$name did not stop within 10 s; killed" >&2
        stop_hard
        return 1
    fi
    wait "$SERVER"
    status=$?
    SERVER=""
    return "$status"
}

# reload_server CHILDREN COMMAND...: COMMAND reloads the server; waits until
# its old children are gone and at least CHILDREN new ones are up. Prints
# the new ones.
reload_server() {
    local children="$1" old i w gone now
    shift
    old="$(children_of "$SERVER")"
    "$@" || return 1
    for i in $(seq 100); do
        gone=1
        for w in $old; do alive "$w" && gone=0; done
        now="$(live_children_of "$SERVER")"
        if [ "$gone" = 1 ] && [ "$(wc -w <<<"$now")" -ge "$children" ]; then
            echo "$now"
            return 0
        fi
        sleep 0.1
    done
    echo "reload: old children ($old) still running after 10 s, or fewer than $children new ones" >&2
    return 1
}

# exit_problems MODE DIR: after the server stopped, a plain run left no
# event log; a preloaded one left no session in any cache and stats files
# that agree with its log.
exit_problems() {
    local left
    if [ "$1" = plain ]; then
        [ ! -e "$2/sesscache.log" ] || echo "plain run wrote a sesscache log"
        return 0
    fi
    left="$(leftovers "$2/sesscache.log")"
    [ -z "$left" ] || echo "sessions never released at exit (pid:count) $left"
    check_stats "$2" | sed 's/^/stats at exit: /'
}

# served_problems LOG PIDS: every callback hit in LOG comes from one of PIDS.
served_problems() {
    local pid
    for pid in $(pids_with callback-hit "$1"); do
        [ "$pid" = none ] || [[ " $2 " == *" $pid "* ]] || echo "log: callback hits from $pid, not a child"
    done
}

# reload_pass MODE DIR PORT VER: after a reload, the session saved in
# DIR/session.pem offered once, then RELOAD_CONNECTIONS connections, into
# the caller's saved[MODE] and again[MODE].
reload_pass() {
    local mode="$1" dir="$2" port="$3" ver="$4"
    saved[$mode]="$("$CLIENT" --offer "$dir/session.pem" "$port" "$ver" 1 2>>"$dir/client.err")" \
        || problems+="; $mode: client failed after reload"
    again[$mode]="$("$CLIENT" "$port" "$ver" "$RELOAD_CONNECTIONS" 2>>"$dir/client.err")" \
        || problems+="; $mode: client failed after reload"
}

# after_run MODE DIR CASE SERVED: after a server whose cache is behind the
# callbacks stopped: what exit_problems finds and, preloaded, the script's
# `check_log CASE LOG RESUMED` (RESUMED of the caller's first, saved and
# again) and callback hits only from SERVED, into the caller's problems;
# the log in a phrase into its evidence.
after_run() {
    local mode="$1" dir="$2" log="$2/sesscache.log" resumed
    add_problems "$mode" < <(exit_problems "$mode" "$dir")
    [ "$mode" = lib ] || return 0
    resumed=$(($(resumed "${first[lib]}") + $(resumed "${saved[lib]}") + $(resumed "${again[lib]}")))
    add_problems lib < <(check_log "$3" "$log" "$resumed"; served_problems "$log" "$4")
    evidence="sesscache log: $(events "$log"); pids with callback-hits: $(pids_with callback-hit "$log")"
}

# reload_report RULE TITLE: the verdict of a case run plain and preloaded
# with a pass before the reload, the saved session offered once after it,
# and a second pass: the caller's associative arrays first, saved and again
# (by mode: plain, lib), its problems and evidence. RULE as rate_problems.
reload_report() {
    local rule="$1" title="$2" what rates
    for what in first again; do
        local -n r="$what"
        add_problems "$([ "$what" = first ] && echo before || echo after) reload" \
            < <(rate_problems "$rule" "${r[plain]}" "${r[lib]}")
    done
    [ "$(field resumed "${saved[lib]}")" -ge "$(field resumed "${saved[plain]}")" ] 2>/dev/null \
        || problems+="; the saved session: plain ${saved[plain]:-no result}, sesscache ${saved[lib]:-no result}"
    rates="plain $(field resumed "${first[plain]}")/$CONNECTIONS, sesscache $(field resumed "${first[lib]}")/$CONNECTIONS"
    rates+="; after reload: saved session plain $(field resumed "${saved[plain]}")/1, sesscache $(field resumed "${saved[lib]}")/1"
    rates+=", then plain $(field resumed "${again[plain]}")/$RELOAD_CONNECTIONS, sesscache $(field resumed "${again[lib]}")/$RELOAD_CONNECTIONS"
    pass_unless "$problems" "$title: $rates; $evidence"
}
