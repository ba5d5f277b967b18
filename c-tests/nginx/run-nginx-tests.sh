#!/usr/bin/env bash
# nginx (Debian's package, unmodified) under sesscache.
#
# Usage: c-tests/nginx/run-nginx-tests.sh [-n CONNECTIONS] [--keep]
#
# For each case and each of TLS 1.2 / TLS 1.3 (ssl_session_tickets off, so
# the server cache is what resumes), nginx runs as a foreground master on
# 127.0.0.1:<free port> twice: once plain (the baseline) and once with
# LD_PRELOAD=libsesscache.so and SESSCACHE_LOG=<run dir>/sesscache.log.
# c-tests/nginx/tls_client makes CONNECTIONS (default 1000) connections,
# each offering the previous connection's session; nginx answers with its
# worker's pid, so the client also knows which worker served each one.
#
# Cases:
#   builtin-2w  ssl_session_cache builtin:1000, 2 workers. The cache is per
#               worker: a connection can resume only on the worker that
#               issued its session. Required: no resumption on the other
#               worker, and among same-worker connections at least 99% and
#               at least what plain nginx achieves in the same run.
#   builtin-1w  ssl_session_cache builtin:100, 1 worker (small, so TLS 1.3's
#               one-session-per-connection goes through evictions): >= 99%.
#   shared      ssl_session_cache shared:SSL:1m (nginx's own new/get/remove
#               callbacks, sessions returned with *copy = 0): >= 99%.
#   both        builtin:1000 shared:SSL:1m: >= 99%.
#   off         ssl_session_cache off: nothing resumes (as plain nginx).
#
# Evidence from the library itself (the event log of the preloaded run):
# builtin: one `hit` per resumption, logged by the worker pids; shared: one
# `callback-hit` per resumption and nothing stored by us (nginx sets
# NO_INTERNAL); both: hits + callback-hits = resumptions; off: nothing
# stored, nothing found. Plain runs must not produce a log at all.
#
# Every run: the client sees no failure; nginx's error log has no [alert],
# [emerg], [crit] and no worker "exited on signal"; the workers that served
# the run are the ones that started it (none died and was respawned); no
# sesscache warning on nginx's stderr. Preloaded runs then `nginx -s reload`
# with sessions cached, wait for the old workers to exit, and make a short
# second client pass against the new workers (same rate rules). After
# `nginx -s quit` the master must exit 0, and every session the log shows
# added must have left its worker's cache (flush / ctx-free / remove /
# evict / expire): nothing left behind.
#
# NGINX_STORE=shm (make test-shm) runs instead the cases shm-2w and shm-4w:
# builtin:1000 with 2 and 4 workers, the preloaded run with
# SESSCACHE_STORE=shm (one store made by the master, inherited by every
# worker): >= 99% of returning clients resume on any worker, also after the
# reload; hits + store-hits in the log = resumptions; plain nginx's rate is
# printed beside, not asserted.
#
# NGINX_STORE=redis (make test-store) runs the cases redis-2w and redis-4w:
# the same, against a redis-server this script starts on 127.0.0.1 (free
# port), with nginx started as root and its workers running as nobody (the
# script must run as root), and the store's key file the README's way: root's,
# mode 0600, in a directory only root may enter. Also required: the workers
# are nobody's, Redis holds sessions afterwards. Then redis-unusable-*: the
# key file missing, a directory, or a key of the wrong length (nobody, not
# even the master, can use it): nginx's error log says "the store is not
# used" with the reason (once), each stats file says store_status=unusable,
# every handshake succeeds (the local cache only; its rate is printed); the
# store timeout is NGINX_STORE_TIMEOUT_MS (default 1000: what is tested is
# the workers' use of the store, not its latency on a loaded machine).
#
# NGINX_LIBSSL_DIR=DIR (make test-nginx-releases, with NGINX from
# c-tests/nginx/release-nginx.sh) runs nginx, plain and preloaded, with
# LD_LIBRARY_PATH=DIR (the client keeps the machine's libssl). Every run,
# with or without it: each nginx process maps one libssl and one libcrypto,
# from DIR when given. When the preloaded nginx says on stderr that the
# library passes every call through on its libssl (a release line the
# library is not exact on), the library's own evidence cannot exist, so the
# preloaded run must instead leave no trace: the rate rules above as for
# plain nginx, that line said exactly once (on stderr, and once in the event
# log) and nothing else of the library's on stderr or in nginx's error log,
# no event in the log, no stats file; where the library serves, everything
# above holds unchanged.
#
# Prints one PASS/FAIL line per case and protocol, then "N passed, M failed";
# exits non-zero on any failure. Environment: SESSCACHE_LIB (default
# target/release/libsesscache.so), NGINX (default: nginx on PATH, else
# /usr/sbin/nginx), NGINX_LIBSSL_DIR (default none), CC (default cc).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONNECTIONS=1000
. "$REPO/c-tests/lib.sh"
server_test_setup nginx NGINX nginx "$@"
# nginx reads a variable of that name (sockets inherited on a binary upgrade).
export -n NGINX
MASTER_DIR=""      # the running master's run directory

# nginx's command, with the libssl it is to run on.
NGINX_CMD=("$NGINX")
LIBSSL_DIR=""
if [ -n "${NGINX_LIBSSL_DIR:-}" ]; then
    LIBSSL_DIR="$(realpath -e "$NGINX_LIBSSL_DIR")" || die "NGINX_LIBSSL_DIR=$NGINX_LIBSSL_DIR not found"
    NGINX_CMD=(env LD_LIBRARY_PATH="$LIBSSL_DIR" "$NGINX")
fi

# The line the library says once when it passes every call through.
PASS_LINE='^sesscache: the running libssl is OpenSSL [0-9.]* (0x[0-9a-f]*), not a release sesscache is exact on'

cleanup_more() {
    if [ -n "${REDIS_PID:-}" ]; then
        kill -KILL "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
}

# NGINX_STORE=redis: a redis-server of our own, a key file only root reads,
# stats directories the workers (nobody) may add files to.
REDIS_PID=""
REDIS_PORT=""
STORE_ENV=()
if [ "${NGINX_STORE:-}" = redis ]; then
    [ "$(id -u)" = 0 ] || die "NGINX_STORE=redis needs root (nginx's workers drop to nobody)"
    command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
    REDIS_PORT="$("$CLIENT" --free-port)"
    redis-server --save '' --appendonly no --bind 127.0.0.1 --port "$REDIS_PORT" \
        --daemonize no --protected-mode yes >"$TMP/redis.log" 2>&1 </dev/null &
    REDIS_PID=$!
    for i in $(seq 100); do
        [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ] && break
        sleep 0.05
    done
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ] \
        || die "redis-server did not start (see $TMP/redis.log)"
    mkdir -m 0700 "$TMP/keys"
    (umask 077 && openssl rand -hex 32 >"$TMP/keys/sesscache.keys")
    chmod 600 "$TMP/keys/sesscache.keys"
    # A generous timeout: what is tested is the workers' use of the store,
    # not its latency on a loaded machine.
    STORE_ENV=(SESSCACHE_STORE="redis://127.0.0.1:$REDIS_PORT/0" SESSCACHE_STORE_KEY_FILE="$TMP/keys/sesscache.keys"
        SESSCACHE_STORE_TIMEOUT_MS="${NGINX_STORE_TIMEOUT_MS:-1000}")
elif [ -n "${NGINX_STORE:-}" ]; then
    STORE_ENV=(SESSCACHE_STORE="$NGINX_STORE")
fi
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# write_conf DIR PORT WORKERS PROTOCOL CACHE
write_conf() {
    local dir="$1" port="$2" workers="$3" proto="$4" cache="$5" user=""
    [ "$(id -u)" = 0 ] && user="user root;"
    # The README's setting: a root master whose workers are unprivileged.
    [ "${NGINX_STORE:-}" = redis ] && user="user nobody nogroup;"
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $workers;
$user
# nginx gives its workers an empty environment except what "env" names: the
# library reads SESSCACHE_LOG in the workers, so it must be passed on.
env SESSCACHE_LOG;
env SESSCACHE_STATS;
error_log $dir/error.log info;
pid $dir/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        ssl_protocols $proto;
        ssl_session_tickets off;
        ssl_session_cache $cache;
        location / { return 200 "\$pid\n"; }
    }
}
EOF
}

nginx_ctl() { "${NGINX_CMD[@]}" -p "$MASTER_DIR/" -e "$MASTER_DIR/error.log" -c "$MASTER_DIR/nginx.conf" "$@"; }

# start_nginx DIR PORT WORKERS PRELOAD(0|1): sets SERVER; waits for the port
# and for all workers.
start_nginx() {
    local dir="$1" store=()
    MASTER_DIR="$dir"
    if [ "$4" = 1 ]; then
        store=(env "${STORE_ENV[@]}" ${KEY_FILE:+SESSCACHE_STORE_KEY_FILE="$KEY_FILE"})
        mkdir -p "$dir/stats"
        # Workers that are nobody's write their stats files into a sticky
        # directory of root's.
        [ "${NGINX_STORE:-}" != redis ] || chmod 1777 "$dir/stats"
    fi
    launch "$dir" "$4" "${store[@]}" "${NGINX_CMD[@]}" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf"
    wait_up nginx "$2" "$3" "$dir/stderr" "$dir/error.log"
}

# stop_nginx: graceful quit. Returns the master's exit status.
stop_nginx() { stop_server nginx nginx_quit; }
nginx_quit() { nginx_ctl -s quit 2>/dev/null || kill -QUIT "$SERVER"; }

# reload_nginx WORKERS: `nginx -s reload`. Prints the new workers.
reload_nginx() { reload_server "$1" nginx_ctl -s reload; }

# log_problems DIR [PASSING(0|1)]: nginx's error log and stderr must show no
# crash, alert or sesscache warning; passing through, stderr says the
# pass-through line, once, and the error log nothing of the library's.
# Prints what it found.
log_problems() {
    local dir="$1" passing="${2:-0}" said
    grep -E '\[(alert|emerg|crit)\]|exited on signal|signal [0-9]+ \(SIG(SEGV|ABRT|BUS|ILL|FPE)' \
        "$dir/error.log" 2>/dev/null | head -5
    if [ "$passing" = 1 ]; then
        said="$(grep -c "$PASS_LINE" "$dir/stderr" 2>/dev/null)"
        [ "$said" = 1 ] || echo "the pass-through line said $said times on stderr"
        grep -v "$PASS_LINE" "$dir/stderr" 2>/dev/null | grep -i 'sesscache' | head -5
        grep -i 'sesscache' "$dir/error.log" 2>/dev/null | head -5
    else
        grep -i 'sesscache' "$dir/stderr" 2>/dev/null | head -5
    fi
}

# libssl_problems PIDS: each of PIDS maps one libssl and one libcrypto, from
# LIBSSL_DIR when set; prints each process where it is not so.
libssl_problems() {
    local pid lib files dir
    for pid in $1; do
        for lib in libssl libcrypto; do
            files="$(awk -v lib="/$lib.so" 'index($6, lib) { print $6 }' "/proc/$pid/maps" 2>/dev/null | sort -u)"
            if [ "$(grep -c . <<<"$files")" != 1 ]; then
                echo "$pid maps $(grep -c . <<<"$files") ${lib}s ($(tr '\n' ' ' <<<"$files"))"
                continue
            fi
            dir="$(dirname "$(realpath "$files")")"
            [ -z "$LIBSSL_DIR" ] || [ "$dir" = "$LIBSSL_DIR" ] || echo "$pid maps $files, not $LIBSSL_DIR's"
        done
    done
}

# invisible_problems DIR: a preloaded run whose library passed every call
# through left no trace but the pass-through line: one line in the event
# log, no event, no stats file. Prints what it found.
invisible_problems() {
    local dir="$1" log="$1/sesscache.log" said
    said="$(sed 's/^sesscache\[[0-9]*\] //' "$log" 2>/dev/null | grep -c "$PASS_LINE")"
    [ "$said" = 1 ] || echo "the pass-through line $said times in the event log"
    [ ! -f "$log" ] || sed 's/^sesscache\[[0-9]*\] //' "$log" | grep -v "$PASS_LINE" | head -3 | sed 's/^/event log: /'
    ls "$dir/stats" 2>/dev/null | head -3 | sed 's/^/stats file written passing through: /'
}

# check_rates CASE CLIENT_LINE: the rate rule of the case; prints why not.
check_rates() {
    local case="$1" line="$2" mode="${3:-}" n resumed same rsame rother
    [ -n "$line" ] || { echo "no client result"; return; }
    n="$(field of "$line")"
    resumed="$(field resumed "$line")"; same="$(field same_worker "$line")"
    rsame="$(field resumed_same "$line")"; rother="$(field resumed_other "$line")"
    [ "$(field failed "$line")" = 0 ] || { echo "client failures"; return; }
    case "$case" in
    builtin-2w)
        [ "$rother" = 0 ] || echo "$rother resumptions on a worker that did not issue the session"
        at_least "$rsame" "$same" 99 || echo "same-worker resumption $rsame/$same < 99%" ;;
    off)
        [ "$resumed" = 0 ] || echo "$resumed resumptions with the cache off" ;;
    shm-*|redis-*)
        [ "$mode" = plain ] || at_least "$resumed" "$((n - 1))" 99 || echo "resumption $resumed/$n < 99%" ;;
    *)
        at_least "$resumed" "$((n - 1))" 99 || echo "resumption $resumed/$n < 99%" ;;
    esac
}

# check_log CASE LOG WORKERS RESUMED: the library's own evidence.
check_log() {
    local case="$1" log="$2" workers="$3" resumed="$4" hits cbhits adds misses hp
    hits="$(count hit "$log")"; cbhits="$(count callback-hit "$log")"
    adds="$(count add "$log")"; misses="$(count miss "$log")"
    hp="$(pids_with hit "$log")"
    case "$case" in
    builtin-*)
        [ "$hits" = "$resumed" ] || echo "log: $hits hits for $resumed resumptions"
        [ "$cbhits" = 0 ] || echo "log: $cbhits callback hits without a get callback"
        [ "$(count hit "$log" "$workers")" = "$hits" ] || echo "log: hits from pids ($hp) not all workers ($workers)"
        [ "$adds" -gt 0 ] || echo "log: nothing added" ;;
    shared)
        [ "$cbhits" = "$resumed" ] || echo "log: $cbhits callback hits for $resumed resumptions"
        [ "$hits" = 0 ] && [ "$adds" = 0 ] && [ "$misses" = 0 ] \
            || echo "log: our cache used under NO_INTERNAL (hits $hits, adds $adds, misses $misses)" ;;
    both)
        [ "$((hits + cbhits))" = "$resumed" ] || echo "log: $hits hits + $cbhits callback hits for $resumed resumptions"
        [ "$(count hit "$log" "$workers")" = "$hits" ] || echo "log: hits from pids ($hp) not all workers ($workers)"
        [ "$hits" -gt 0 ] || echo "log: no hit in our cache" ;;
    shm-*|redis-*)
        local shits
        shits="$(count store-hit "$log")"
        [ "$((hits + shits))" = "$resumed" ] || echo "log: $hits hits + $shits store hits for $resumed resumptions"
        [ "$shits" -gt 0 ] || echo "log: no session served by the store" ;;
    off)
        [ "$hits" = 0 ] && [ "$cbhits" = 0 ] && [ "$adds" = 0 ] \
            || echo "log: cache off but hits $hits, callback hits $cbhits, adds $adds" ;;
    esac
}

# not_nobody PIDS: prints each of PIDS whose real or effective uid is not
# nobody's.
not_nobody() {
    local pid nobody uids
    nobody="$(id -u nobody)"
    for pid in $1; do
        uids="$(awk '$1 == "Uid:" { print $2 " " $3 }' "/proc/$pid/status" 2>/dev/null)"
        [ "$uids" = "$nobody $nobody" ] || echo "worker $pid runs as uid ($uids), not nobody"
    done
}

# run_case CASE WORKERS CACHE PROTO(1.2|1.3)
run_case() {
    local case="$1" workers="$2" cache="$3" ver="$4" mode dir port line workers_before workers_after
    local problems="" plain_line="" lib_line="" reload_line="" new_workers="" status=0 log="" evidence=""
    local passing=0
    for mode in plain lib; do
        dir="$TMP/$case-tls$ver-$mode"
        mkdir -p "$dir"
        port="$("$CLIENT" --free-port)"
        write_conf "$dir" "$port" "$workers" "TLSv$ver" "$cache"
        if ! start_nginx "$dir" "$port" "$workers" "$([ $mode = lib ] && echo 1 || echo 0)"; then
            problems+="; $mode: nginx did not start"
            stop_hard
            continue
        fi
        workers_before="$(children_of "$SERVER")"
        # The library is mapped into every worker exactly when preloaded.
        add_problems "$mode" < <(mapping_problems "$mode" "$workers_before"; libssl_problems "$SERVER $workers_before")
        # Said by the master at load, before its workers start.
        [ "$mode" = lib ] && grep -q "$PASS_LINE" "$dir/stderr" && passing=1
        [ -z "$REDIS_PID" ] || { rcli FLUSHALL >/dev/null; add_problems "$mode" < <(not_nobody "$workers_before"); }
        line="$("$CLIENT" "$port" "$ver" "$CONNECTIONS" 2>"$dir/client.err")" \
            || problems+="; $mode: client failed ($(head -c 200 "$dir/client.err" | tr '\n' ' '))"
        if [ -n "$REDIS_PID" ] && [ "$mode" = lib ]; then
            local stored
            stored="$(rcli DBSIZE)"
            evidence="$stored sessions in Redis; "
            [ "$stored" -gt 0 ] || problems+="; lib: nothing written to Redis"
        fi
        workers_after="$(children_of "$SERVER")"
        [ "$workers_before" = "$workers_after" ] \
            || problems+="; $mode: workers changed ($workers_before -> $workers_after)"
        add_problems "$mode" < <(check_rates "$case" "$line" "$mode")
        if [ "$mode" = plain ]; then
            plain_line="$line"
        else
            lib_line="$line"
            log="$dir/sesscache.log"
            if [ "$passing" = 1 ]; then
                evidence+="passed through ($(grep -m1 -o 'OpenSSL [0-9.]* (0x[0-9a-f]*)' "$dir/stderr")): "
            else
                add_problems lib < <(check_log "$case" "$log" "$workers_before" "$(field resumed "$line")")
            fi
            evidence+="sesscache log (workers $workers_before): $(events "$log"); pids with hits: $(pids_with hit "$log"), with callback-hits: $(pids_with callback-hit "$log")"
            # Reload with sessions cached, then a short pass on the new workers.
            [ ! -f "$log" ] || cp "$log" "$dir/sesscache.before-reload.log"
            [ "$case" = off ] || [ "$passing" = 1 ] || add_problems stats < <(check_stats "$dir" "$workers_before")
            if new_workers="$(reload_nginx "$workers")"; then
                reload_line="$("$CLIENT" "$port" "$ver" "$RELOAD_CONNECTIONS" 2>>"$dir/client.err")" \
                    || problems+="; reload: client failed"
                add_problems "after reload" < <(check_rates "$case" "$reload_line")
                [ "$(children_of "$SERVER")" = "$new_workers" ] || problems+="; after reload: workers changed"
            else
                problems+="; reload failed"
            fi
        fi
        stop_nginx || problems+="; $mode: nginx quit with status $?"
        add_problems "$mode error log" < <(log_problems "$dir" "$([ "$mode" = lib ] && echo "$passing" || echo 0)")
        if [ "$passing" = 1 ] && [ "$mode" = lib ]; then
            add_problems "passing through" < <(invisible_problems "$dir")
            continue
        fi
        add_problems "$mode" < <(exit_problems "$mode" "$dir")
        if [ "$mode" = lib ]; then
            [ "$(count ctx-free "$dir/sesscache.log")$(count flush "$dir/sesscache.log")" != 00 ] \
                || [ "$case" = off ] || [ "$case" = shared ] \
                || problems+="; no flush/ctx-free at worker exit"
        fi
    done
    local title="$case TLSv$ver ($cache, $workers worker$([ "$workers" = 1 ] || echo s))"
    local rates="plain $(summary "$plain_line"); sesscache $(summary "$lib_line"); after reload $(field resumed "$reload_line")/$RELOAD_CONNECTIONS"
    # builtin with 2 workers: at least what plain nginx achieves, per landing.
    if [ "$case" = builtin-2w ] && [ -n "$plain_line" ] && [ -n "$lib_line" ]; then
        local ps pn ls ln
        ps="$(field resumed_same "$plain_line")"; pn="$(field same_worker "$plain_line")"
        ls="$(field resumed_same "$lib_line")"; ln="$(field same_worker "$lib_line")"
        awk -v a="$ls" -v b="$ln" -v c="$ps" -v d="$pn" 'BEGIN { exit !(b > 0 && d > 0 && a / b >= c / d) }' \
            || problems+="; same-worker resumption below plain nginx's"
    fi
    pass_unless "$problems" "$title: $rates; $evidence"
}

# run_unusable KIND PROTO(1.2|1.3): nginx preloaded with a key file no
# process can use (KIND: missing, directory, short); builtin:1000, 2 workers.
run_unusable() {
    local kind="$1" ver="$2" dir port line problems="" status n resumed said stats bad=""
    dir="$TMP/redis-unusable-$kind-tls$ver"
    mkdir -p "$dir"
    case "$kind" in
    missing) KEY_FILE="$TMP/keys/absent.keys" ;;
    directory) KEY_FILE="$TMP/keys/dir.keys"; mkdir -p "$KEY_FILE" ;;
    short) KEY_FILE="$TMP/keys/short.keys"; (umask 077 && openssl rand -hex 16 >"$KEY_FILE") ;;
    esac
    port="$("$CLIENT" --free-port)"
    write_conf "$dir" "$port" 2 "TLSv$ver" "builtin:1000"
    rcli FLUSHALL >/dev/null
    if start_nginx "$dir" "$port" 2 1; then
        line="$("$CLIENT" "$port" "$ver" 100 2>"$dir/client.err")" \
            || problems+="; client failed ($(head -c 200 "$dir/client.err" | tr '\n' ' '))"
        [ "$(field failed "$line")" = 0 ] || problems+="; client failures"
        [ "$(rcli DBSIZE)" = 0 ] || problems+="; sessions in Redis with an unusable key file"
        stop_nginx
        status=$?
        [ "$status" = 0 ] || problems+="; nginx quit with status $status"
    else
        problems+="; nginx did not start"
        stop_hard
    fi
    KEY_FILE=""
    said="$(grep -m1 'the store is not used' "$dir/error.log" 2>/dev/null)"
    [ -n "$said" ] || problems+="; nothing in nginx's error log (stderr: $(grep -m1 sesscache "$dir/stderr" 2>/dev/null))"
    [ "$(grep -c 'the store is not used' "$dir/error.log" 2>/dev/null)" -le 1 ] || problems+="; said more than once in the error log"
    stats="$(ls "$dir"/stats/sesscache.*.stats 2>/dev/null | wc -l)"
    [ "$stats" -gt 0 ] || problems+="; no stats file"
    for f in "$dir"/stats/sesscache.*.stats; do
        [ -f "$f" ] || continue
        grep -q '^store_status=unusable: ' "$f" || bad+=" ${f##*/}"
    done
    [ -z "$bad" ] || problems+="; store_status not unusable in$bad"
    add_problems "error log" < <(grep -E '\[(alert|emerg|crit)\]|exited on signal' "$dir/error.log" 2>/dev/null | head -5)
    n="$(field of "$line")"; resumed="$(field resumed "$line")"
    local title="redis-unusable-$kind TLSv$ver (key file $kind, builtin:1000, 2 workers)"
    local found="error log: ${said:-none}; $stats stats files; local cache only: $resumed/$n resumed"
    pass_unless "$problems" "$title: $found"
}

echo "nginx: $("${NGINX_CMD[@]}" -v 2>&1 | sed 's/.*: //') ($NGINX), $("${NGINX_CMD[@]}" -V 2>&1 | sed -n 's/^built with //p'), libssl ${LIBSSL_DIR:-of the machine}, $CONNECTIONS connections per run, library $LIB"
[ -z "$REDIS_PID" ] || echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$REDIS_PORT; key file $(stat -c '%U %a' "$TMP/keys/sesscache.keys") in a directory of mode $(stat -c %a "$TMP/keys"); workers run as nobody"
KEY_FILE=""
for ver in 1.2 1.3; do
    if [ "${NGINX_STORE:-}" = redis ]; then
        run_case redis-2w 2 "builtin:1000" "$ver"
        run_case redis-4w 4 "builtin:1000" "$ver"
        for kind in missing directory short; do run_unusable "$kind" "$ver"; done
        continue
    fi
    if [ -n "${NGINX_STORE:-}" ]; then
        run_case shm-2w 2 "builtin:1000" "$ver"
        run_case shm-4w 4 "builtin:1000" "$ver"
        continue
    fi
    run_case builtin-2w 2 "builtin:1000" "$ver"
    run_case builtin-1w 1 "builtin:100" "$ver"
    run_case shared 2 "shared:SSL:1m" "$ver"
    run_case both 2 "builtin:1000 shared:SSL:1m" "$ver"
    run_case off 2 "off" "$ver"
done
finish
