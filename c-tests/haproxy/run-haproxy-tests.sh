#!/usr/bin/env bash
# HAProxy (Debian's package, unmodified) under sesscache.
#
# Usage: c-tests/haproxy/run-haproxy-tests.sh [-n CONNECTIONS] [--keep]
#
# For each case and each of TLS 1.2 / TLS 1.3 (no-tls-tickets, so the
# server cache is what resumes), `haproxy -W` (master-worker, one worker
# with nbthread 2) runs on 127.0.0.1:<free port> twice: once plain (the
# baseline) and once with LD_PRELOAD=libsesscache.so,
# SESSCACHE_LOG=<run dir>/sesscache.log and SESSCACHE_STATS. The frontend
# answers every request with the worker's pid (`http-request return ...
# "%pid"`); c-tests/nginx/tls_client makes CONNECTIONS (default 200)
# connections, each offering the previous connection's session.
#
# Cases:
#   cache  tune.ssl.cachesize 20000: HAProxy's own shared cache behind the
#          new/get/remove callbacks, which run through the library. Rate
#          rule: plain HAProxy resumes >= 95% of the returning clients (the
#          set-up works), and sesscache >= 95% and at least as many as plain
#          less a margin of 2% of the connections. Log: one `callback-hit`
#          per resumption, from the workers, and nothing stored by the
#          library (HAProxy sets NO_INTERNAL).
#   off    tune.ssl.cachesize 0: nothing resumes, plain or preloaded, and
#          the log shows no hit, callback-hit or add.
#
# Every run: the client sees no failure; HAProxy's stderr (its own messages
# and the frontend's log) has no [ALERT], no SSL handshake failure, no
# worker that exited with a nonzero code or a signal, and no sesscache
# warning; the worker has 2 threads; the library is mapped in the master and
# the worker exactly when preloaded. Then the last session is saved
# (tls_client --save), the master is sent SIGUSR2 (reload: it re-executes
# itself and forks a new worker), the old worker must exit, the new one
# must map the library exactly when preloaded, the saved session is offered
# once (sesscache resumes it when plain HAProxy does) and a pass of 100
# connections follows (same rate rule). SIGUSR1 (soft stop) must make the
# master exit 0; the preloaded run's stats files must agree with its log.
#
# Prints one PASS/FAIL line per case and protocol, then "N passed, M failed";
# exits non-zero on any failure. Environment: SESSCACHE_LIB (default
# target/release/libsesscache.so), HAPROXY (default: haproxy on PATH, else
# /usr/sbin/haproxy), CC (default cc).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONNECTIONS=200
. "$REPO/c-tests/lib.sh"
server_test_setup haproxy HAPROXY haproxy "$@"

# HAProxy reads the certificate and its key from one file.
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/crt.pem"

# write_conf DIR PORT PROTOCOL(TLSv1.x) CACHESIZE
write_conf() {
    cat >"$1/haproxy.cfg" <<EOF
global
    nbthread 2
    tune.ssl.cachesize $4
    ssl-default-bind-options ssl-min-ver $3 ssl-max-ver $3 no-tls-tickets
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe
    # Each connection is logged to stderr (handshake failures included).
    log stderr format raw local0 info
    bind 127.0.0.1:$2 ssl crt $TMP/crt.pem
    http-request return status 200 content-type text/plain lf-string "%pid\n"
EOF
}

# start_haproxy DIR PORT PRELOAD(0|1): sets SERVER; waits for the port and
# the worker.
start_haproxy() {
    launch "$1" "$3" "$HAPROXY" -W -f "$1/haproxy.cfg"
    wait_up haproxy "$2" 1 "$1/stderr"
}

# stop_haproxy: soft stop (SIGUSR1 to the master). Returns its exit status.
stop_haproxy() { stop_server haproxy kill -USR1 "$SERVER"; }

# reload_haproxy: SIGUSR2 to the master (it re-executes itself and forks a
# new worker). Prints the new worker.
reload_haproxy() { reload_server 1 kill -USR2 "$SERVER"; }

# log_problems DIR: what HAProxy's stderr shows that it should not.
log_problems() {
    grep -E '\[ALERT\]|SSL handshake failure|exited with code [1-9]|exited on signal|killed|SIG(SEGV|ABRT|BUS|ILL|FPE)' \
        "$1/stderr" 2>/dev/null | head -5
    grep '^sesscache' "$1/stderr" 2>/dev/null | head -5
}

# threads_problems PIDS: each worker runs nbthread 2 threads.
threads_problems() {
    local pid n
    for pid in $1; do
        n="$(sed -n 's/^Threads:\s*//p' "/proc/$pid/status" 2>/dev/null)"
        [ "${n:-0}" -ge 2 ] || echo "worker $pid has ${n:-no} threads, not 2"
    done
}

# check_log CASE LOG RESUMED: the library's own evidence.
check_log() {
    local hits cbhits adds
    hits="$(count hit "$2")"; cbhits="$(count callback-hit "$2")"; adds="$(count add "$2")"
    case "$1" in
    cache)
        [ "$cbhits" = "$3" ] || echo "log: $cbhits callback hits for $3 resumptions"
        [ "$hits" = 0 ] && [ "$adds" = 0 ] \
            || echo "log: our cache used under NO_INTERNAL (hits $hits, adds $adds)" ;;
    off)
        [ "$hits" = 0 ] && [ "$cbhits" = 0 ] && [ "$adds" = 0 ] \
            || echo "log: cache off but hits $hits, callback hits $cbhits, adds $adds" ;;
    esac
}

# run_case CASE CACHESIZE PROTO(1.2|1.3)
run_case() {
    local case="$1" cachesize="$2" ver="$3" mode dir port line worker new_worker problems="" evidence=""
    local -A first saved again
    for mode in plain lib; do
        dir="$TMP/$case-tls$ver-$mode"
        mkdir -p "$dir"
        port="$("$CLIENT" --free-port)"
        write_conf "$dir" "$port" "TLSv$ver" "$cachesize"
        first[$mode]=""; saved[$mode]=""; again[$mode]=""
        if ! start_haproxy "$dir" "$port" "$([ $mode = lib ] && echo 1 || echo 0)"; then
            problems+="; $mode: haproxy did not start"
            stop_hard
            continue
        fi
        worker="$(children_of "$SERVER")"
        add_problems "$mode" < <(mapping_problems "$mode" "$SERVER $worker")
        add_problems "$mode" < <(threads_problems "$worker")
        line="$("$CLIENT" --save "$dir/session.pem" "$port" "$ver" "$CONNECTIONS" 2>"$dir/client.err")" \
            || problems+="; $mode: client failed ($(head -c 200 "$dir/client.err" | tr '\n' ' '))"
        first[$mode]="$line"
        [ "$(children_of "$SERVER")" = "$worker" ] || problems+="; $mode: the worker changed"
        # With the cache off a TLS 1.2 worker may never reach the library,
        # and then writes no stats file.
        [ "$mode" = plain ] || [ "$case" = off ] || add_problems stats < <(check_stats "$dir" "$worker")
        if new_worker="$(reload_haproxy)"; then
            add_problems "$mode after reload" < <(mapping_problems "$mode" "$new_worker")
            reload_pass "$mode" "$dir" "$port" "$ver"
        else
            problems+="; $mode: reload failed"
        fi
        stop_haproxy || problems+="; $mode: haproxy exited with status $?"
        add_problems "$mode stderr" < <(log_problems "$dir")
        after_run "$mode" "$dir" "$case" "$worker $new_worker"
    done
    reload_report "$([ "$case" = off ] && echo off || echo rate)" "$case TLSv$ver (tune.ssl.cachesize $cachesize, nbthread 2)"
}

echo "haproxy: $("$HAPROXY" -v 2>&1 | head -1), $CONNECTIONS connections per run, library $LIB"
for ver in 1.2 1.3; do
    run_case cache 20000 "$ver"
    run_case off 0 "$ver"
done
finish
