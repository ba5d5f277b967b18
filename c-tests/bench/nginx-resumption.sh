#!/usr/bin/env bash
# How many returning clients nginx resumes, by number of workers: Debian's
# nginx with `ssl_session_cache builtin:20000` (one cache per worker) and
# `ssl_session_tickets off`, on 127.0.0.1, plain, preloaded with sesscache,
# and preloaded with sesscache sharing sessions through each store kind in
# BENCH_STORES (started here on a free loopback port). The client
# (c-tests/nginx/tls_client) makes BENCH_NGINX_CONNECTIONS connections
# (default 300), each offering the previous connection's session; the
# kernel spreads them over the workers. Not a timing: the rates do not
# depend on the machine's speed.
#
#   c-tests/bench/nginx-resumption.sh [OUT]   (default target/bench/nginx-resumption.tsv)
#
# Writes: protocol, workers, setup, resumed, connections (tab-separated).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TEST=nginx-resumption
. "$REPO/c-tests/lib.sh"
OUT="${1:-$REPO/target/bench/nginx-resumption.tsv}"
CONNECTIONS="${BENCH_NGINX_CONNECTIONS:-300}"
STORES="${BENCH_STORES:-redis}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
[ -x "$NGINX" ] || die "nginx not found"
[ -f "$LIB" ] || die "$LIB not found (run make)"
mkdir -p "$(dirname "$OUT")"
build_client

TMP="$(mktemp -d "${TMPDIR:-/tmp}/sesscache-nginx-bench.XXXXXX")"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" $(pgrep -P "$pid" 2>/dev/null) 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
make_cert "$TMP"
openssl rand -hex 32 >"$TMP/store.keys"

# store_start KIND: starts the store and prints the SESSCACHE_STORE value.
# A new kind is one more case here.
store_start() {
    local port
    case "$1" in
    redis)
        port="$("$CLIENT" --free-port)"
        redis-server --save '' --appendonly no --bind 127.0.0.1 --port "$port" --daemonize no \
            >"$TMP/redis.log" 2>&1 &
        PIDS+=($!)
        for _ in $(seq 100); do
            [ "$(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null)" = PONG ] && break
            sleep 0.05
        done
        echo "redis://127.0.0.1:$port/0" ;;
    *) die "unknown store kind $1" ;;
    esac
}

# run PROTOCOL WORKERS SETUP [STORE-URL]: one nginx, one client pass.
run() {
    local proto="$1" workers="$2" setup="$3" store="${4:-}" dir port master line env=()
    dir="$TMP/$proto-$workers-$setup"
    port="$("$CLIENT" --free-port)"
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes $workers;
$([ "$(id -u)" = 0 ] && echo "user root;")
error_log $dir/error.log;
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
        ssl_protocols TLSv$proto;
        ssl_session_tickets off;
        ssl_session_cache builtin:20000;
        location / { return 200 "\$pid\n"; }
    }
}
EOF
    [ "$setup" = plain ] || env+=(LD_PRELOAD="$LIB")
    [ -z "$store" ] || env+=(SESSCACHE_STORE="$store" SESSCACHE_STORE_KEY_FILE="$TMP/store.keys"
        SESSCACHE_STORE_PREFIX="bench-$proto-$workers:")
    env -u LD_PRELOAD "${env[@]}" "$NGINX" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" \
        >"$dir/stdout" 2>&1 </dev/null &
    master=$!
    PIDS+=("$master")
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && [ "$(pgrep -c -P "$master")" -ge "$workers" ] && break
        sleep 0.1
    done
    line="$("$CLIENT" "$port" "$proto" "$CONNECTIONS")" || { echo "$TEST: client failed: $line" >&2; exit 1; }
    kill -QUIT "$master"
    wait "$master" || true
    printf '%s\t%s\t%s\t%s\t%s\n' "$proto" "$workers" "$setup" "$(field resumed "$line")" "$(field of "$line")"
}

{
    echo "# nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'); $CONNECTIONS connections per row; $(date -u +%FT%TZ); git HEAD $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)"
    printf 'protocol\tworkers\tsetup\tresumed\tconnections\n'
    declare -A url
    for kind in $STORES; do url[$kind]="$(store_start "$kind")"; done
    for proto in 1.2 1.3; do
        for workers in 1 2 4; do
            run "$proto" "$workers" plain
            run "$proto" "$workers" sesscache
            for kind in $STORES; do run "$proto" "$workers" "sesscache+$kind" "${url[$kind]}"; done
        done
    done
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
