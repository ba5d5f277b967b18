#!/usr/bin/env bash
# Shared session store tests (issue 4): two store_server processes, each
# with libsesscache.so preloaded, share sessions through a real Redis that
# this script starts on 127.0.0.1 (free port) and stops again.
#
#   c-tests/store/run-store-tests.sh          (or: make test-store)
#
# Environment:
#   SESSCACHE_LIB           the library (default target/release/libsesscache.so);
#                           "none" runs the servers with plain libssl (to check
#                           the plumbing: every store check then fails)
#   STORE_TEST_DIR          build/work directory (default target/store-tests)
#   STORE_TEST_TIMEOUT_MS   SESSCACHE_STORE_TIMEOUT_MS for the servers (default 20)
#   STORE_TEST_MARGIN_MS    allowed handshake time above the timeout (default 200)
#   STORE_TEST_CASES        space-separated subset of: 0 1 2 3 4 5 6 7 8 (default all)
#   STORE_TEST_GAP_MS       pause between connections in case 1 (default 0: the
#                           next connection follows within a millisecond, so
#                           the store's write-behind races the client)
#
# Prints "PASS|FAIL|INFO <case>: <numbers>" lines, then "N passed, M failed";
# exits non-zero if anything failed. Needs redis-server and redis-cli.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SRC=$ROOT/c-tests/store
LIB=${SESSCACHE_LIB:-$ROOT/target/release/libsesscache.so}
LIB_ORIG=
OUT=${STORE_TEST_DIR:-$ROOT/target/store-tests}
TIMEOUT_MS=${STORE_TEST_TIMEOUT_MS:-20}
MARGIN_MS=${STORE_TEST_MARGIN_MS:-200}
CASES=${STORE_TEST_CASES:-0 1 2 3 4 5 6 7 8}
GAP_MS=${STORE_TEST_GAP_MS:-0}
PREFIX=sesscache:
CC=${CC:-cc}

REDIS_PID=
REDIS_PORT=
CLIENT_PID=
declare -A SPID=() SPORT=() SDIR=()

cleanup() {
    local pid
    for pid in "${SPID[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "$CLIENT_PID" ]; then
        kill -KILL "$CLIENT_PID" 2>/dev/null || true
    fi
    if [ -n "$REDIS_PID" ]; then
        kill -KILL "$REDIS_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$ROOT/c-tests/report.sh"
say() { printf '%s\n' "$*"; }
info() { say "INFO $1: $2"; }
# float/int comparison through awk: ok "a >= b"
ok() { awk "BEGIN { exit !($1) }"; }

for tool in redis-server redis-cli openssl "$CC"; do
    command -v "$tool" >/dev/null || { say "run-store-tests: $tool is missing (apt-get install redis-server)"; exit 2; }
done
if [ "$LIB" != none ] && [ ! -f "$LIB" ]; then
    say "run-store-tests: $LIB not found (make build)"; exit 2
fi

# ---------------------------------------------------------------- build
mkdir -p "$OUT"
for prog in store_server store_client; do
    "$CC" -O1 -g -Wall -Wextra -Werror -I"$ROOT/include" "$SRC/$prog.c" \
        -o "$OUT/$prog" -lssl -lcrypto
done
SERVER=$OUT/store_server
CLIENT=$OUT/store_client
W=$OUT/run
rm -rf "$W"
mkdir -p "$W"

# A private copy, so a rebuild during the run does not change the library.
if [ "$LIB" != none ]; then
    cp "$LIB" "$W/libsesscache.so"
    LIB_ORIG=$LIB
    LIB=$W/libsesscache.so
fi

openssl rand -hex 32 >"$W/key1"
openssl rand -hex 32 >"$W/key2"
cat "$W/key2" "$W/key1" >"$W/key21" # rotation: new key first, old still readable

# ---------------------------------------------------------------- redis
free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    else
        local p i
        for i in $(seq 1 50); do
            p=$((20000 + RANDOM % 30000))
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
        done
        echo 0
    fi
}

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# REDIS_EXTRA: more redis-server arguments (an array)
REDIS_EXTRA=()
redis_start() {
    redis-server --save '' --appendonly no --bind 127.0.0.1 --port "$REDIS_PORT" \
        --daemonize no --protected-mode yes "${REDIS_EXTRA[@]}" >>"$W/redis.log" 2>&1 &
    REDIS_PID=$!
    local i
    for i in $(seq 1 100); do
        if [ "$(rcli PING 2>/dev/null)" = PONG ]; then return 0; fi
        sleep 0.05
    done
    say "run-store-tests: redis-server did not start on port $REDIS_PORT (see $W/redis.log)"
    exit 2
}

redis_kill9() {
    kill -KILL "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
}

# key of a session in Redis from the client's "VVVV:hex"
rkey() { printf '%s%s' "$PREFIX" "$1"; }

wait_key() { # wait up to 2 s for a key to appear; prints 1/0
    local i
    for i in $(seq 1 40); do
        if [ "$(rcli EXISTS "$1")" = 1 ]; then echo 1; return; fi
        sleep 0.05
    done
    echo 0
}

flip_byte() { # flip every bit of the byte in the middle of the value
    local key=$1 len off byte
    len=$(rcli STRLEN "$key")
    off=$((len / 2))
    byte=$(rcli --raw GETRANGE "$key" "$off" "$off" | head -c1 | od -An -tu1 | tr -d ' ')
    printf "\\x$(printf %02x $((byte ^ 0xff)))" | rcli -x SETRANGE "$key" "$off" >/dev/null
    echo "len=$len off=$off byte=$byte->$((byte ^ 0xff))"
}

# ---------------------------------------------------------------- servers
# start_server NAME VERSION SID_CTX [KEY_FILE [PUSH [TIMEOUT_S]]]
# KEY_FILE "-" means no key file; PUSH "-" leaves SESSCACHE_STORE_PUSH unset.
# SERVER_ENV (VAR=VALUE words) is passed on; SERVER_PLAIN=1 leaves the
# library out.
start_server() {
    local name=$1 ver=$2 ctx=$3 key=${4:-$W/key1} push=${5:-} timeout=${6:-}
    local dir=$W/$CASE_DIR/$name
    rm -rf "$dir"
    mkdir -p "$dir"
    local envs=(SESSCACHE_STATS="$dir" SESSCACHE_LOG="$dir/events.log"
        SESSCACHE_STORE="redis://127.0.0.1:$REDIS_PORT/0"
        SESSCACHE_STORE_TIMEOUT_MS="$TIMEOUT_MS")
    [ "$LIB" != none ] && [ "${SERVER_PLAIN:-0}" != 1 ] && envs+=(LD_PRELOAD="$LIB")
    [ -n "${SERVER_ENV:-}" ] && envs+=($SERVER_ENV)
    [ "$key" != - ] && envs+=(SESSCACHE_STORE_KEY_FILE="$key")
    [ -n "$push" ] && [ "$push" != - ] && envs+=(SESSCACHE_STORE_PUSH="$push")
    : >"$dir/stdout"
    env "${envs[@]}" "$SERVER" 0 "$ver" "$ctx" $timeout >"$dir/stdout" 2>"$dir/stderr" &
    SPID[$name]=$!
    SDIR[$name]=$dir
    local i port=
    for i in $(seq 1 100); do
        port=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$dir/stdout" 2>/dev/null || true)
        [ -n "$port" ] && break
        if ! kill -0 "${SPID[$name]}" 2>/dev/null; then break; fi
        sleep 0.05
    done
    if [ -z "$port" ]; then
        say "run-store-tests: server $name did not start:"; cat "$dir/stderr"; exit 2
    fi
    SPORT[$name]=$port
}

stop_server() {
    local name=$1 pid=${SPID[$1]} i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "run-store-tests: server $name did not exit on SIGTERM; killed"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    unset "SPID[$name]"
}

stop_all() {
    local name
    for name in "${!SPID[@]}"; do stop_server "$name"; done
}

# counter NAME COUNTER: from the library's stats file (NA if absent)
counter() {
    local f
    f=$(ls "${SDIR[$1]}"/sesscache.*.stats 2>/dev/null | head -1 || true)
    local v=
    [ -n "$f" ] && v=$(sed -n "s/^$2=//p" "$f")
    echo "${v:-NA}"
}
# store counters of a server, for the report
store_stats() {
    local n=$1 out="" c
    for c in store_hits store_pool_hits store_misses store_errors store_rejected store_dropped \
        store_writes store_deletes store_pushes; do
        out+="$c=$(counter "$n" "$c") "
    done
    echo "$n[hits=$(counter "$n" hits) misses=$(counter "$n" misses) removes=$(counter "$n" removes) ${out% }]"
}
# field FILE LINE-TAG NAME: value of NAME=… on the last line starting with TAG
field() {
    awk -v k="$2" -v f="$3" '$1 == k { for (i = 2; i <= NF; i++) { n = index($i, "="); if (substr($i, 1, n - 1) == f) v = substr($i, n + 1) } } END { print v }' "$1"
}
# field of a "conn i=K" line
conn_field() {
    awk -v i="$2" -v f="$3" '$1 == "conn" && $2 == "i=" i { for (j = 2; j <= NF; j++) { n = index($j, "="); if (substr($j, 1, n - 1) == f) v = substr($j, n + 1) } } END { print v }' "$1"
}
last_key() { sed -n 's/^last_key=//p' "$1"; }
ge_num() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ]; } # NA counts as false

client() { # client OUTFILE ARGS…
    local out=$1
    shift
    "$CLIENT" "$@" >"$out" 2>"$out.err"
}

# offered-but-not-resumed connections (client prints at most 20): how many,
# at which connection numbers, and how many of those sessions are in Redis
# now (then the write reached Redis only after the other server looked).
misses_in_redis() {
    local f=$1 t=0 n=0 key idx
    idx=$(sed -n 's/^notresumed i=\([0-9]*\).*/\1/p' "$f" | head -8 | tr '\n' ',')
    for key in $(sed -n 's/^notresumed .*offered_key=//p' "$f"); do
        t=$((t + 1))
        if [ "$(rcli EXISTS "$(rkey "$key")")" = 1 ]; then n=$((n + 1)); fi
    done
    echo "not_resumed_listed=$t (at ${idx%,}; in redis afterwards: $n)"
}

new_case() {
    CASE_DIR=$1
    mkdir -p "$W/$CASE_DIR"
    rcli FLUSHALL >/dev/null
}

REDIS_PORT=$(free_port)
redis_start
say "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID); library: ${LIB_ORIG:-$LIB}; timeout ${TIMEOUT_MS} ms; work dir $W"
if [ "$LIB" != none ] && ! grep -qa SESSCACHE_STORE "$LIB"; then
    say "note: $LIB does not mention SESSCACHE_STORE: the store is not implemented in this build"
fi

want() { [[ " $CASES " == *" $1 "* ]]; }

# ---------------------------------------------------------------- case 0
# No key file: a "sesscache:" line on stderr, local cache only, nothing stored.
if want 0; then
    new_case c0
    start_server A 1.2 ctxA -
    client "$W/c0/client" 200 "${SPORT[A]}" 1.2
    stop_all
    r=$(field "$W/c0/client" total resumed)
    f=$(field "$W/c0/client" total failed)
    msg=$(grep -m1 -E '^sesscache(\[[0-9]+\])?:' "${SDIR[A]}/stderr" || true)
    keys=$(rcli DBSIZE)
    verdict "0-no-key" "$([ -n "$msg" ] && [ "$r" -ge 198 ] && [ "$f" = 0 ] && [ "$keys" = 0 ] && echo 0 || echo 1)" \
        "stderr='${msg:-<none>}' local resumed=$r of 200 failed=$f redis_keys=$keys"
fi

# ---------------------------------------------------------------- case 1
# Cross-process resumption: A, B, A, B, … each offering the previous session.
if want 1; then
    for v in 1.2 1.3; do
        new_case "c1-$v"
        start_server A "$v" ctxA
        start_server B "$v" ctxA
        client "$W/c1-$v/client" 1000 "${SPORT[A]},${SPORT[B]}" "$v" --report-every 250 --interval-ms "$GAP_MS"
        keys=$(rcli DBSIZE)
        late=$(misses_in_redis "$W/c1-$v/client")
        stop_all
        r=$(field "$W/c1-$v/client" total resumed)
        f=$(field "$W/c1-$v/client" total failed)
        rate=$(awk -v r="$r" 'BEGIN { printf "%.1f", 100 * r / 1000 }')
        verdict "1-cross-resume-tls$v" "$([ "$r" -ge 990 ] && [ "$f" = 0 ] && echo 0 || echo 1)" \
            "resumed=$r of 1000 (${rate}%, need >= 990) failed=$f $late hs/s=$(field "$W/c1-$v/client" total hs_per_s) redis_keys=$keys $(store_stats A) $(store_stats B)"
    done
    # A new session every second connection: every offered session was made
    # by the other server, so each resumption is served by the store or a push
    # (with TLS 1.2 and no fresh sessions, one store read serves the whole run).
    for v in 1.2 1.3; do
        d=$W/c1f-$v
        new_case "c1f-$v"
        start_server A "$v" ctxA
        start_server B "$v" ctxA
        client "$d/client" 1000 "${SPORT[A]},${SPORT[B]}" "$v" --fresh-every 2 --interval-ms "$GAP_MS"
        late=$(misses_in_redis "$d/client")
        stop_all
        r=$(field "$d/client" total resumed)
        o=$(field "$d/client" total offered)
        f=$(field "$d/client" total failed)
        verdict "1-cross-fresh-tls$v" "$([ -n "$r" ] && ok "$r >= 0.99 * $o" && [ "$f" = 0 ] && echo 0 || echo 1)" \
            "resumed=$r of offered=$o (need >= 99%) failed=$f $late $(store_stats A) $(store_stats B)"
    done
    # Without pushes every cross-process resumption is a Redis read (not asserted).
    new_case c1-nopush
    start_server A 1.2 ctxA "$W/key1" 0
    start_server B 1.2 ctxA "$W/key1" 0
    client "$W/c1-nopush/client" 1000 "${SPORT[A]},${SPORT[B]}" 1.2 --fresh-every 2 --interval-ms "$GAP_MS"
    late=$(misses_in_redis "$W/c1-nopush/client")
    stop_all
    info "1-cross-fresh-tls1.2-push0" "resumed=$(field "$W/c1-nopush/client" total resumed) of offered=$(field "$W/c1-nopush/client" total offered) failed=$(field "$W/c1-nopush/client" total failed) $late $(store_stats A) $(store_stats B)"
fi

# ---------------------------------------------------------------- case 2
# Unclean shutdown on one server: the session must not resume on the other.
# Connection 10 goes to B and resumes the session; the client closes without
# close_notify; B removes the session; connection 11 offers it to A.
if want 2; then
    for v in 1.2 1.3; do
        d=$W/c2-$v
        new_case "c2-$v"
        start_server A "$v" ctxA
        start_server B "$v" ctxA
        client "$d/client" 20 "${SPORT[A]},${SPORT[B]}" "$v" --unclean-at 10 --unclean-pause-ms 300
        ukey=$(field "$d/client" unclean key)
        exists=$(rcli EXISTS "$(rkey "$ukey")")
        stop_all
        r10=$(conn_field "$d/client" 10 resumed)
        r11=$(field "$d/client" after_unclean resumed)
        same=$(field "$d/client" after_unclean matches_unclean)
        offr=$(field "$d/client" after_unclean offered_resumable)
        f=$(field "$d/client" total failed)
        bunclean=$(sed -n 's/^server .* unclean=\([0-9]*\).*/\1/p' "${SDIR[B]}/stdout")
        # conn 10 must be a cross-process resumption (else the check is vacuous)
        verdict "2-unclean-tls$v" "$([ "$r10" = 1 ] && [ "$r11" = 0 ] && [ "$same" = 1 ] && [ "$offr" = 1 ] && [ "$f" = 0 ] && [ "$exists" = 0 ] && [ "$bunclean" = 1 ] && echo 0 || echo 1)" \
            "conn10(B, unclean) resumed=$r10; conn11(A) offered it (resumable on the client: $offr): resumed=$r11 (need 0); key in redis after=$exists (need 0); B unclean=$bunclean failed=$f total_resumed=$(field "$d/client" total resumed)/20 $(store_stats A) $(store_stats B)"
    done
    # Without pushes, A is not told (its local copy may still resume): not asserted.
    d=$W/c2-nopush
    new_case c2-nopush
    start_server A 1.2 ctxA "$W/key1" 0
    start_server B 1.2 ctxA "$W/key1" 0
    client "$d/client" 20 "${SPORT[A]},${SPORT[B]}" 1.2 --unclean-at 10 --unclean-pause-ms 300
    stop_all
    info "2-unclean-tls1.2-push0" "conn10 resumed=$(conn_field "$d/client" 10 resumed) conn11 offered_resumable=$(field "$d/client" after_unclean offered_resumable) resumed=$(field "$d/client" after_unclean resumed) (A keeps its local copy: peers are not told without pushes) $(store_stats A)"
fi

# ---------------------------------------------------------------- case 3
# Redis killed (-9) in the middle of a run, then restarted on the same port;
# and (3b) Redis stopped (SIGSTOP: connections hang) then continued.
# The latency bound is a bound on our code (a store call never waits longer
# than the timeout), but it is measured on a shared machine: one stall of the
# VM can hold one handshake for hundreds of ms (seen once: 581 ms, with every
# other handshake of the run under 5 ms). So a run whose only fault is that
# bound is run once more, and the case passes only if that second run meets
# every condition. A store call that really blocks does so in every outage and
# fails both runs.
run_outage() { # run_outage NAME VERSION MODE(kill|stop) [CLIENT-OPTIONS…]
    local name=$1 v=$2 mode=$3
    shift 3
    OUTAGE_ONLY_SLOW=0
    run_outage_once "$name" "$v" "$mode" 1 "$@"
    if [ "$OUTAGE_ONLY_SLOW" = 1 ]; then
        say "  note: 3-redis-$mode-tls$v: only the latency bound failed ($OUTAGE_SLOW handshakes over the limit); running the case once more"
        run_outage_once "$name" "$v" "$mode" 2 "$@"
    fi
}
run_outage_once() { # run_outage_once NAME VERSION MODE ATTEMPT [CLIENT-OPTIONS…]
    local name=$1 v=$2 mode=$3 attempt=$4 d=$W/$1-$2
    shift 4
    [ "$attempt" = 1 ] || d=$d-attempt$attempt
    local n=4000 every=100 kill_at=10 back_at=20
    local limit=$((TIMEOUT_MS + MARGIN_MS))
    new_case "${d#"$W"/}"
    start_server A "$v" ctxA
    start_server B "$v" ctxA
    "$CLIENT" "$n" "${SPORT[A]},${SPORT[B]}" "$v" --report-every "$every" --tail 300 \
        --interval-ms 1 --slow-ms "$limit" "$@" >"$d/client" 2>"$d/client.err" &
    local cpid=$! i windows t_down t_up
    CLIENT_PID=$cpid
    for i in $(seq 1 600); do # up to 60 s
        windows=$(grep -c '^window' "$d/client" || true)
        [ "$windows" -ge "$kill_at" ] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$mode" = kill ]; then redis_kill9; else kill -STOP "$REDIS_PID"; fi
    t_down=$(grep -c '^window' "$d/client" || true)
    local start=$SECONDS
    for i in $(seq 1 600); do
        windows=$(grep -c '^window' "$d/client" || true)
        [ "$windows" -ge "$back_at" ] && [ $((SECONDS - start)) -ge 2 ] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$mode" = kill ]; then redis_start; else kill -CONT "$REDIS_PID"; fi
    t_up=$(grep -c '^window' "$d/client" || true)
    local waited=0
    while kill -0 "$cpid" 2>/dev/null && [ "$waited" -lt 900 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL "$cpid" 2>/dev/null || true
    wait "$cpid" 2>/dev/null || true
    CLIENT_PID=
    stop_all
    local r f mx slow tail_r tail_o
    r=$(field "$d/client" total resumed)
    tail_o=$(field "$d/client" tail offered)
    f=$(field "$d/client" total failed)
    mx=$(field "$d/client" total max_ms)
    slow=$(field "$d/client" total slow)
    tail_r=$(field "$d/client" tail resumed)
    local windows_txt others_ok=1 fast=1
    windows_txt=$(awk '$1 == "window" { split($4, a, "="); split($5, b, "="); printf "%s/%s ", a[2], b[2] }' "$d/client")
    [ -n "$r" ] && [ "$f" = 0 ] && ok "${tail_r:-0} >= 0.9 * ${tail_o:-1}" || others_ok=0
    [ -n "$mx" ] && ok "$mx <= $limit" || fast=0
    if [ "$attempt" = 1 ] && [ "$others_ok" = 1 ] && [ "$fast" = 0 ] && [ -n "$mx" ]; then
        OUTAGE_ONLY_SLOW=1
        OUTAGE_SLOW=${slow:-?}
        say "  first run of 3-redis-$mode-tls$v: max_ms=$mx (limit $limit), over the limit: ${slow:-?}; $(grep '^slow ' "$d/client" | head -5 | tr '\n' ' ')"
        return
    fi
    verdict "3-redis-$mode-tls$v${*:+ $*}" \
        "$([ "$others_ok" = 1 ] && [ "$fast" = 1 ] && echo 0 || echo 1)" \
        "failed=${f:-?} max_ms=${mx:-?} (limit $limit) over_limit=${slow:-?} last300: resumed=${tail_r:-?} of offered=${tail_o:-?} (need >= 90%) total resumed=${r:-?} of $n; redis down after window $t_down, back after window $t_up; per-100 resumed/offered: $windows_txt; $(store_stats A) $(store_stats B)$([ "$attempt" = 2 ] && echo "; second run (the first failed only the latency bound)")"
}
if want 3; then
    run_outage c3-kill 1.2 kill --fresh-every 2
    run_outage c3-kill 1.3 kill
    run_outage c3-stop 1.3 stop
fi

# ---------------------------------------------------------------- case 4
# Bad blobs: each rejected and counted by B, handshake full, nothing fails.
# Pushes off, so B reads the (modified) value from Redis.
bad_blob() { # bad_blob VERSION KIND
    local v=$1 kind=$2 d=$W/c4-$1-$2
    new_case "c4-$v-$kind"
    local bkey=$W/key1 bctx=ctxA
    case $kind in
    unknown-key) bkey=$W/key2 ;;
    other-ctx) bctx=ctxB ;;
    rotation) bkey=$W/key21 ;;
    esac
    start_server A "$v" ctxA "$W/key1" 0
    start_server B "$v" "$bctx" "$bkey" 0
    client "$d/a" 1 "${SPORT[A]}" "$v" --save-session "$d/sess.pem"
    local key what=""
    key=$(rkey "$(last_key "$d/a")")
    local stored
    stored=$(wait_key "$key")
    case $kind in
    tampered) [ "$stored" = 1 ] && what=$(flip_byte "$key") ;;
    random)
        head -c 120 /dev/urandom >"$d/random.bin"
        rcli -x SET "$key" <"$d/random.bin" >/dev/null
        what="120 random bytes" ;;
    esac
    client "$d/b" 1 "${SPORT[B]}" "$v" --load-session "$d/sess.pem"
    local after
    after=$(rcli EXISTS "$key")
    stop_all
    local r f rej
    r=$(field "$d/b" total resumed)
    f=$(field "$d/b" total failed)
    rej=$(counter B store_rejected)
    local nums="stored=$stored $what B: resumed=$r failed=$f store_rejected=$rej; key still in redis=$after; $(store_stats B)"
    if [ "$kind" = control ] || [ "$kind" = rotation ]; then
        verdict "4-$kind-tls$v" "$([ "$stored" = 1 ] && [ "$r" = 1 ] && [ "$f" = 0 ] && [ "$rej" = 0 ] && echo 0 || echo 1)" "$nums (must resume)"
    else
        verdict "4-$kind-tls$v" "$([ "$stored" = 1 ] && [ "$r" = 0 ] && [ "$f" = 0 ] && ge_num "$rej" 1 && echo 0 || echo 1)" "$nums"
    fi
}
if want 4; then
    for v in 1.2 1.3; do
        for kind in control tampered unknown-key other-ctx random rotation; do
            bad_blob "$v" "$kind"
        done
    done
fi

# ---------------------------------------------------------------- case 5
# TTL: session lifetime 2 s; after 4 s the other server must not resume it
# and the Redis key must be gone.
if want 5; then
    for v in 1.2 1.3; do
        d=$W/c5-$v
        new_case "c5-$v"
        start_server A "$v" ctxA "$W/key1" - 2
        start_server B "$v" ctxA "$W/key1" - 2
        # B's store (and its subscription) starts with its first cache
        # event: one handshake on B first, so that B also holds A's session
        # as a pushed copy and the pool's expiry check is exercised too.
        client "$d/warm" 1 "${SPORT[B]}" "$v"
        sleep 0.3
        client "$d/a" 1 "${SPORT[A]}" "$v" --save-session "$d/sess.pem"
        key=$(rkey "$(last_key "$d/a")")
        stored=$(wait_key "$key")
        pttl=$(rcli PTTL "$key")
        sleep 4
        gone=$(rcli EXISTS "$key")
        # --touch-session: the client offers it although it has expired (a
        # TLS 1.3 client would not send an expired ticket at all)
        client "$d/b" 1 "${SPORT[B]}" "$v" --load-session "$d/sess.pem" --touch-session 1
        stop_all
        r=$(field "$d/b" total resumed)
        f=$(field "$d/b" total failed)
        bm=$(counter B misses)
        # B must have been asked (a miss) for the check to mean anything
        verdict "5-ttl-tls$v" "$([ "$stored" = 1 ] && [ "$pttl" -gt 0 ] && [ "$pttl" -le 2000 ] && [ "$gone" = 0 ] && [ "$r" = 0 ] && [ "$f" = 0 ] && ge_num "$bm" 1 && echo 0 || echo 1)" \
            "stored=$stored pttl_ms=$pttl (need 1..2000) exists_after_4s=$gone (need 0) B resumed=$r failed=$f B_lookups(misses)=$bm (need >= 1) B_pushes_received=$(counter B store_pushes) $(store_stats B)"
    done
fi

# ---------------------------------------------------------------- case 6
# Benchmark (printed, not asserted): cross-process resumption against
# local-only resumption in the same run, A/B alternated. Every second
# connection starts a new session, so each resumption in "cross" is of a
# session made on the other server (served by the store or its pushes),
# and "local" does the same number of full handshakes on one server.
# Reported: medians of 5 pairs and the median of the per-pair ratios.
if want 6; then
    for v in 1.2 1.3; do
        d=$W/c6-$v
        new_case "c6-$v"
        start_server A "$v" ctxA
        start_server B "$v" ctxA
        client "$d/warm" 200 "${SPORT[A]},${SPORT[B]}" "$v" --fresh-every 2
        : >"$d/pairs"
        for p in 1 2 3 4 5; do
            client "$d/local$p" 1000 "${SPORT[A]}" "$v" --fresh-every 2
            client "$d/cross$p" 1000 "${SPORT[A]},${SPORT[B]}" "$v" --fresh-every 2
            echo "$(field "$d/local$p" total hs_per_s) $(field "$d/cross$p" total hs_per_s)" \
                "$(field "$d/local$p" total p50_resumed_ms) $(field "$d/cross$p" total p50_resumed_ms)" \
                "$(field "$d/local$p" total p99_resumed_ms) $(field "$d/cross$p" total p99_resumed_ms)" \
                "$(field "$d/cross$p" total resumed_of_offered)" >>"$d/pairs"
        done
        stop_all
        summary=$(python3 - "$d/pairs" <<'PY'
import statistics as st, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = lambda i: st.median(r[i] for r in rows)
ratio = st.median(r[1] / r[0] for r in rows)
print(f"local hs/s={med(0):.0f} cross hs/s={med(1):.0f} cross/local (median of {len(rows)} pair ratios)={ratio:.3f} "
      f"resumed p50 local/cross ms={med(2):.3f}/{med(3):.3f} (added {med(3) - med(2):.3f}) "
      f"p99 local/cross ms={med(4):.3f}/{med(5):.3f} (added {med(5) - med(4):.3f}) cross resumed of offered={min(r[6] for r in rows):.0f} (min of pairs)")
PY
)
        info "6-bench-tls$v" "$summary"
    done
fi

# ---------------------------------------------------------------- case 7
# TLS 1.3 early data is single use across servers sharing the store. A and
# B accept early data (anti-replay on, as libssl's default); each try makes
# a session (openssl s_client -sess_out) on A (then A holds it in its own
# cache) or on C (then neither A nor B does), and offers it with early data
# to A and B at the same moment: early data accepted by at most one of
# them. Plain libssl, one server: the second offer of a session does not
# resume (libssl's own single-use rule). Resumption without early data: a
# session made on A offered to B without early data resumes; and servers
# that do not accept early data share sessions as before, the pool included.
early_offer() { # early_offer PORT SESS OUT [early]: one s_client offering SESS
    local extra=()
    [ "${4:-}" = early ] && extra=(-early_data "$W/c7/early.txt")
    (printf 'x\n'; sleep 0.3) | timeout 10 openssl s_client -connect "127.0.0.1:$1" -tls1_3 \
        -sess_in "$2" "${extra[@]}" >"$3" 2>&1 || true
}
early_make() { # early_make PORT SESS: a full handshake saving its session
    printf 'hello\n' | timeout 10 openssl s_client -connect "127.0.0.1:$1" -tls1_3 \
        -sess_out "$2" -quiet >/dev/null 2>&1 || true
}
if want 7; then
    d=$W/c7
    new_case c7
    printf 'GET\n' >"$d/early.txt"

    SERVER_PLAIN=1 SERVER_ENV=STORE_SERVER_EARLY_DATA=1 start_server P 1.3 ctxA
    early_make "${SPORT[P]}" "$d/p.pem"
    early_offer "${SPORT[P]}" "$d/p.pem" "$d/p1.out" early
    early_offer "${SPORT[P]}" "$d/p.pem" "$d/p2.out" early
    stop_server P
    first=$(grep -c -e 'Early data was accepted' "$d/p1.out" || true)
    second=$(grep -c -e '^Reused' "$d/p2.out" || true)
    verdict "7-libssl-single-use" "$([ "$first" = 1 ] && [ "$second" = 0 ] && echo 0 || echo 1)" \
        "plain libssl, one server: first offer early data accepted=$first (need 1), second offer resumed=$second (need 0)"

    # early_race TRIES: early-data servers A, B and C; each try makes one
    # session (on A or on C in turn) and offers it with early data to A and
    # B at once; counts in twice, once, never and twice_local (made on A)
    early_race() {
        new_case c7
        SERVER_ENV=STORE_SERVER_EARLY_DATA=1 start_server A 1.3 ctxA
        SERVER_ENV=STORE_SERVER_EARLY_DATA=1 start_server B 1.3 ctxA
        SERVER_ENV=STORE_SERVER_EARLY_DATA=1 start_server C 1.3 ctxA
        twice=0 once=0 never=0 twice_local=0
        local i maker s n
        for i in $(seq 1 "$1"); do
            maker=A
            [ $((i % 2)) = 0 ] && maker=C
            early_make "${SPORT[$maker]}" "$d/sess.pem"
            for s in A B; do early_offer "${SPORT[$s]}" "$d/sess.pem" "$d/$s.out" early & done
            wait $(jobs -p | tail -2) 2>/dev/null || true
            n=$({ grep -l 'Early data was accepted' "$d/A.out" "$d/B.out" 2>/dev/null || true; } | wc -l)
            case $n in
                0) never=$((never + 1)) ;;
                1) once=$((once + 1)) ;;
                *) twice=$((twice + 1)); [ "$maker" = A ] && twice_local=$((twice_local + 1)) ;;
            esac
        done
    }
    early_race 100
    resumed_plain=0
    for i in $(seq 1 20); do
        early_make "${SPORT[A]}" "$d/sess.pem"
        early_offer "${SPORT[B]}" "$d/sess.pem" "$d/plain.out"
        grep -q '^Reused' "$d/plain.out" && resumed_plain=$((resumed_plain + 1))
    done
    keys=$(rcli DBSIZE)
    stop_all
    verdict "7-early-data-single-use" "$([ "$twice" = 0 ] && [ "$once" -gt 0 ] && echo 0 || echo 1)" \
        "100 tries of one session offered with early data to A and B at once (made on A in 50, on C in 50): accepted by both in $twice (need 0; $twice_local of them made on A), by one in $once (need > 0), by neither in $never; $(store_stats A) $(store_stats B)"
    verdict "7-resume-without-early-data" "$([ "$resumed_plain" -ge 19 ] && echo 0 || echo 1)" \
        "early-data servers, a session made on A offered to B without early data: resumed $resumed_plain of 20 (need >= 19) redis_keys=$keys"

    # A Redis without GETDEL (as before 6.2; here the command is renamed
    # away): the take is a script, as atomic.
    redis_kill9
    REDIS_EXTRA=(--rename-command GETDEL '""')
    redis_start
    getdel=$(rcli GETDEL nothing 2>&1 || true)
    early_race 50
    said=$(cat "${SDIR[A]}/stderr" "${SDIR[B]}/stderr" | grep -c 'the store does not answer' || true)
    stop_all
    verdict "7-early-data-single-use-without-getdel" "$([[ "$getdel" == *"unknown command"* ]] && [ "$twice" = 0 ] && [ "$once" -gt 0 ] && [ "$said" = 0 ] && echo 0 || echo 1)" \
        "GETDEL answered '$getdel' (need unknown command); 50 tries at once on A and B: accepted by both in $twice (need 0), by one in $once (need > 0), by neither in $never; said the store does not answer: $said (need 0); $(store_stats A) $(store_stats B)"
    redis_kill9
    REDIS_EXTRA=()
    redis_start

    new_case c7-plain
    start_server A 1.3 ctxA
    start_server B 1.3 ctxA
    client "$W/c7-plain/warm" 1 "${SPORT[B]}" 1.3
    sleep 0.3
    client "$W/c7-plain/client" 400 "${SPORT[A]},${SPORT[B]}" 1.3
    stop_all
    r=$(field "$W/c7-plain/client" total resumed)
    f=$(field "$W/c7-plain/client" total failed)
    pool=$(counter B store_pool_hits)
    verdict "7-no-early-data-unaffected" "$([ "$r" -ge 396 ] && [ "$f" = 0 ] && ge_num "$pool" 1 && echo 0 || echo 1)" \
        "servers without early data, A,B alternating: resumed=$r of 400 (need >= 396) failed=$f B store_pool_hits=$pool (need >= 1) $(store_stats A) $(store_stats B)"
fi

# ---------------------------------------------------------------- case 8
# The store's own credentials, against redis-servers of this case's own on
# 127.0.0.1: one with requirepass, one with an ACL user that may use only the
# keys and the channel under the prefix (the default user off), one speaking
# only TLS (certificates made here, SESSCACHE_STORE_CA_FILE the test CA) with
# the same ACL user. Through each, A and B (every second connection a new
# session, so each offered session was made by the other server) resume
# >= 99% of the offered sessions, Redis holds them, B resumed some from A's
# pushes (so the channel works too), store_status=ok and nothing said. A
# wrong password, a wrong ACL password, no password, a wrong CA: each server
# says once on stderr that the store does not answer and why, its stats file
# says store_status=unreachable, every handshake succeeds (100 to A alone
# resume from its local cache; 20 to A and B in turn resume nothing) and
# nothing reaches Redis. An ACL user without the channel: the refused
# subscription said once by each server, sessions still shared through
# Redis. A key file readable by group or others (0640,
# 0604): one warning on the stderr of a pre-forked server with two workers
# (one per stderr, not per process), sessions still shared; 0600: none.
if want 8; then
    C8=$W/c8
    mkdir -p "$C8"
    declare -A C8_REDIS=()
    c8_cleanup() {
        local pid
        for pid in "${C8_REDIS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    }
    trap 'c8_cleanup; cleanup' EXIT
    # c8_redis NAME PORT PING-CMD… -- SERVER-ARGS…: start one and wait for PONG
    c8_redis() {
        local name=$1 port=$2 i
        shift 2
        local ping=()
        while [ "$1" != -- ]; do ping+=("$1"); shift; done
        shift
        redis-server --save '' --appendonly no --bind 127.0.0.1 --daemonize no \
            --protected-mode yes "$@" >>"$C8/redis-$name.log" 2>&1 </dev/null &
        C8_REDIS[$name]=$!
        for i in $(seq 1 100); do
            [ "$("${ping[@]}" PING 2>/dev/null)" = PONG ] && return 0
            sleep 0.05
        done
        say "run-store-tests: redis-server $name did not start (see $C8/redis-$name.log)"
        exit 2
    }
    # certificates: a test CA and a server certificate for IP 127.0.0.1;
    # another CA that signed nothing here
    (
        cd "$C8"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj /CN=sesscache-test-ca -keyout ca.key -out ca.pem
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj /CN=sesscache-other-ca -keyout other-ca.key -out other-ca.pem
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj /CN=127.0.0.1 -keyout redis.key -out redis.csr
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' >redis.ext
        openssl x509 -req -in redis.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile redis.ext -out redis.pem
    ) >"$C8/openssl.log" 2>&1 || { say "run-store-tests: cannot make the certificates (see $C8/openssl.log)"; exit 2; }
    (umask 077 && cp "$W/key1" "$C8/key")
    # What is tested is whether the store lets us in, not how fast a TLS
    # connection to it answers on a loaded machine: a timeout no refusal
    # waits for (each is answered at once) and no healthy store exceeds.
    C8_TIMEOUT_MS=500
    PW_PORT=$(free_port)
    ACL_PORT=$(free_port)
    TLS_PORT=$(free_port)
    pw_cli() { redis-cli -h 127.0.0.1 -p "$PW_PORT" --no-auth-warning -a 's3cret pw' "$@"; }
    acl_cli() { redis-cli -h 127.0.0.1 -p "$ACL_PORT" --no-auth-warning --user alice --pass alicepw "$@"; }
    tls_cli() { redis-cli -h 127.0.0.1 -p "$TLS_PORT" --tls --cacert "$C8/ca.pem" --no-auth-warning --user alice --pass alicepw "$@"; }
    c8_redis pw "$PW_PORT" pw_cli -- --port "$PW_PORT" --requirepass 's3cret pw'
    # alice may use the keys and the channel under the prefix, nothing else
    # (bob, the keys without the channel, for the case below)
    printf 'user default off\nuser alice on >alicepw ~sesscache:* &sesscache:* +@all\nuser bob on >bobpw ~sesscache:* +@all\n' >"$C8/users.acl"
    c8_redis acl "$ACL_PORT" acl_cli -- --port "$ACL_PORT" --aclfile "$C8/users.acl"
    c8_redis tls "$TLS_PORT" tls_cli -- --port 0 --tls-port "$TLS_PORT" \
        --tls-cert-file "$C8/redis.pem" --tls-key-file "$C8/redis.key" \
        --tls-ca-cert-file "$C8/ca.pem" --tls-auth-clients no --aclfile "$C8/users.acl"
    # the password travels in the URL, percent-encoded ("s3cret pw")
    PW_URL="redis://:s3cret%20pw@127.0.0.1:$PW_PORT/0"
    ACL_URL="redis://alice:alicepw@127.0.0.1:$ACL_PORT/0"
    TLS_URL="rediss://alice:alicepw@127.0.0.1:$TLS_PORT/0"

    # c8_server NAME VERSION DIR URL [ENV…]: like start_server, with this
    # store URL and extra environment
    c8_server() {
        local name=$1 ver=$2 dir=$3 url=$4 i port=
        shift 4
        mkdir -p "$dir"
        local envs=(SESSCACHE_STATS="$dir" SESSCACHE_LOG="$dir/events.log"
            SESSCACHE_STORE="$url" SESSCACHE_STORE_KEY_FILE="$C8/key"
            SESSCACHE_STORE_TIMEOUT_MS="$C8_TIMEOUT_MS")
        [ "$LIB" != none ] && envs+=(LD_PRELOAD="$LIB")
        env "${envs[@]}" "$@" "$SERVER" 0 "$ver" ctxA >"$dir/stdout" 2>"$dir/stderr" &
        SPID[$name]=$!
        SDIR[$name]=$dir
        for i in $(seq 1 100); do
            port=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$dir/stdout" 2>/dev/null || true)
            [ -n "$port" ] && break
            kill -0 "${SPID[$name]}" 2>/dev/null || break
            sleep 0.05
        done
        if [ -z "$port" ]; then
            say "run-store-tests: server $name did not start:"; cat "$dir/stderr"; exit 2
        fi
        SPORT[$name]=$port
    }
    # the library's lines on a server's stderr, in one phrase
    c8_said() { grep -E '^sesscache(\[[0-9]+\])?:' "${SDIR[$1]}/stderr" | head -3 | tr '\n' ' ' || true; }
    c8_said_n() { grep -cE '^sesscache(\[[0-9]+\])?:' "${SDIR[$1]}/stderr" || true; }
    status_of() { local s; s=$(counter "$1" store_status); echo "${s%%:*}"; }

    # c8_good LABEL VERSION URL CLI [ENV…]: sessions shared through that store
    c8_good() {
        local label=$1 v=$2 url=$3 cli=$4 d=$C8/$1-$2
        shift 4
        "$cli" FLUSHALL >/dev/null
        c8_server A "$v" "$d/A" "$url" "$@"
        c8_server B "$v" "$d/B" "$url" "$@"
        # A pause between connections: the race of the store's write-behind
        # with a client that comes straight back is case 1's subject (and
        # Redis may serve a read on one TLS connection before a write that
        # arrived first on another); here it is whether the credentials work.
        client "$d/client" 200 "${SPORT[A]},${SPORT[B]}" "$v" --fresh-every 2 --interval-ms 5
        local keys
        keys=$("$cli" DBSIZE)
        stop_all
        local r o f sa sb na nb pa pb
        pa=$(counter A store_pool_hits); pb=$(counter B store_pool_hits)
        r=$(field "$d/client" total resumed)
        o=$(field "$d/client" total offered)
        f=$(field "$d/client" total failed)
        sa=$(status_of A); sb=$(status_of B)
        na=$(c8_said_n A); nb=$(c8_said_n B)
        verdict "8-$label-tls$v" "$([ -n "$r" ] && ok "$r >= 0.99 * $o" && [ "$f" = 0 ] && ge_num "$keys" 1 \
            && [ "$sa" = ok ] && [ "$sb" = ok ] && [ "$na" = 0 ] && [ "$nb" = 0 ] && ge_num "$pb" 1 && echo 0 || echo 1)" \
            "resumed=$r of offered=$o (need >= 99%) failed=$f redis_keys=$keys store_status A=$sa B=$sb; served by pushes (need some on B): A $pa, B $pb; said on stderr: A $na, B $nb lines $(c8_said A)$(c8_said B)$(store_stats A) $(store_stats B)"
    }
    # c8_bad LABEL VERSION URL CLI [ENV…]: the store refuses us
    c8_bad() {
        local label=$1 v=$2 url=$3 cli=$4 d=$C8/$1-$2
        shift 4
        "$cli" FLUSHALL >/dev/null
        c8_server A "$v" "$d/A" "$url" "$@"
        c8_server B "$v" "$d/B" "$url" "$@"
        client "$d/local" 100 "${SPORT[A]}" "$v"
        client "$d/cross" 20 "${SPORT[A]},${SPORT[B]}" "$v"
        local keys
        keys=$("$cli" DBSIZE)
        stop_all
        local rl fl rc fc mx sa said n
        rl=$(field "$d/local" total resumed); fl=$(field "$d/local" total failed)
        rc=$(field "$d/cross" total resumed); fc=$(field "$d/cross" total failed)
        mx=$(field "$d/local" total max_ms)
        sa=$(counter A store_status)
        said=$(grep -m1 'the store does not answer' "${SDIR[A]}/stderr" || true)
        n=$(grep -c 'the store does not answer' "${SDIR[A]}/stderr" || true)
        verdict "8-$label-tls$v" "$([ "$n" = 1 ] && [[ $sa == unreachable:* ]] && [ "$keys" = 0 ] \
            && [ "$fl" = 0 ] && [ "$fc" = 0 ] && ge_num "$rl" 99 && [ "$rc" = 0 ] && echo 0 || echo 1)" \
            "A said ${n}x: '${said:-<nothing>}'; A store_status='$sa'; local: resumed=$rl of 100 (need >= 99) failed=$fl max_ms=$mx; A/B in turn: resumed=$rc of 20 (need 0) failed=$fc; redis_keys=$keys"
    }
    for v in 1.2 1.3; do
        c8_good requirepass "$v" "$PW_URL" pw_cli
        c8_good acl-user "$v" "$ACL_URL" acl_cli
        c8_good tls "$v" "$TLS_URL" tls_cli SESSCACHE_STORE_CA_FILE="$C8/ca.pem"
    done
    # An ACL user without the channel: the refused subscription is said
    # once by each server and stays in its store_status while lookups and
    # changes answer; sessions are still found in Redis.
    d=$C8/no-channel-1.3
    acl_cli FLUSHALL >/dev/null
    c8_server A 1.3 "$d/A" "redis://bob:bobpw@127.0.0.1:$ACL_PORT/0"
    c8_server B 1.3 "$d/B" "redis://bob:bobpw@127.0.0.1:$ACL_PORT/0"
    client "$d/client" 200 "${SPORT[A]},${SPORT[B]}" 1.3 --fresh-every 2 --interval-ms 5
    stop_all
    r=$(field "$d/client" total resumed)
    o=$(field "$d/client" total offered)
    f=$(field "$d/client" total failed)
    na=$(grep -c 'does not answer (NoPerm' "${SDIR[A]}/stderr" || true)
    nb=$(grep -c 'does not answer (NoPerm' "${SDIR[B]}/stderr" || true)
    sa=$(counter A store_status)
    verdict "8-acl-user-without-channel-tls1.3" "$([ "$na" = 1 ] && [ "$nb" = 1 ] && [[ "$sa" == "unreachable: announcements: NoPerm"* ]] && [ -n "$r" ] && ok "$r >= 0.99 * $o" && [ "$f" = 0 ] && echo 0 || echo 1)" \
        "said (need once each): A $na, B $nb '$(grep -m1 'NoPerm' "${SDIR[A]}/stderr" || true)'; A store_status='$sa' (need unreachable: announcements: NoPerm…); resumed=$r of offered=$o (need >= 99%, from Redis) failed=$f $(store_stats B)"
    c8_bad wrong-password 1.2 "redis://:wrong@127.0.0.1:$PW_PORT/0" pw_cli
    c8_bad no-password 1.3 "redis://127.0.0.1:$PW_PORT/0" pw_cli
    c8_bad wrong-acl-password 1.3 "redis://alice:wrong@127.0.0.1:$ACL_PORT/0" acl_cli
    c8_bad wrong-ca 1.2 "$TLS_URL" tls_cli SESSCACHE_STORE_CA_FILE="$C8/other-ca.pem"
    c8_bad wrong-ca 1.3 "$TLS_URL" tls_cli SESSCACHE_STORE_CA_FILE="$C8/other-ca.pem"

    # key file permissions, on a server pre-forked into two workers
    for mode in 600 640 604; do
        d=$C8/key-$mode
        mkdir -p "$d"
        cp "$W/key1" "$d/keys"
        chmod "$mode" "$d/keys"
        rcli FLUSHALL >/dev/null
        mkdir -p "$d/A"
        envs=(SESSCACHE_STATS="$d/A" SESSCACHE_STORE="redis://127.0.0.1:$REDIS_PORT/0"
            SESSCACHE_STORE_KEY_FILE="$d/keys" SESSCACHE_STORE_TIMEOUT_MS="$TIMEOUT_MS" STORE_SERVER_PROCS=2)
        [ "$LIB" != none ] && envs+=(LD_PRELOAD="$LIB")
        env "${envs[@]}" "$SERVER" 0 1.2 ctxA >"$d/A/stdout" 2>"$d/A/stderr" &
        SPID[A]=$!
        SDIR[A]=$d/A
        port=
        for i in $(seq 1 100); do
            port=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$d/A/stdout" 2>/dev/null || true)
            [ -n "$port" ] && break
            sleep 0.05
        done
        [ -n "$port" ] || { say "run-store-tests: pre-forked server did not start:"; cat "$d/A/stderr"; exit 2; }
        client "$d/client" 100 "$port" 1.2 --fresh-every 2
        keys=$(rcli DBSIZE)
        stop_all
        n=$(grep -c 'key file .* is accessible by group or others' "$d/A/stderr" || true)
        line=$(grep -m1 'key file .* is accessible by group or others' "$d/A/stderr" || true)
        r=$(field "$d/client" total resumed)
        o=$(field "$d/client" total offered)
        f=$(field "$d/client" total failed)
        want_n=1
        [ "$mode" = 600 ] && want_n=0
        verdict "8-key-file-$mode" "$([ "$n" = "$want_n" ] && [ "$f" = 0 ] && ge_num "$keys" 1 && [ -n "$r" ] && ok "$r >= 0.99 * $o" && echo 0 || echo 1)" \
            "warnings on the stderr of the master and its 2 workers: $n (need $want_n) '${line:-}'; resumed=$r of offered=$o failed=$f redis_keys=$keys"
    done
fi

finish
