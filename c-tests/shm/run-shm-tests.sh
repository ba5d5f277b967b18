#!/usr/bin/env bash
# The shared-memory session store (SESSCACHE_STORE=shm, shm:/path): the
# servers of c-tests/store/ (store_server in its pre-fork and
# fork-per-connection modes, store_client) with libsesscache.so preloaded,
# against plain libssl in the same run. Store files live in /dev/shm under
# names of this run and are removed at the end.
#
#   c-tests/shm/run-shm-tests.sh          (or: make test-shm)
#
# Environment: SESSCACHE_LIB (default target/release/libsesscache.so),
# SHM_TEST_DIR (default target/shm-tests), SHM_TEST_CASES (subset of:
# prefork fork join removal early faults oversize hostile tmpfs soak; default all),
# SHM_SOAK_SECONDS (default 30).
#
# Prints "PASS|FAIL|INFO|SKIP <case>: <numbers>", then "N passed, M failed";
# exits non-zero if anything failed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIB=${SESSCACHE_LIB:-$ROOT/target/release/libsesscache.so}
OUT=${SHM_TEST_DIR:-$ROOT/target/shm-tests}
CASES=${SHM_TEST_CASES:-prefork fork join removal early faults oversize hostile tmpfs soak}
SOAK_SECONDS=${SHM_SOAK_SECONDS:-30}
CC=${CC:-cc}
SMALL=$((256 * 1024)) # SESSCACHE_STORE_SIZE of one shard: every key shares one lock

declare -A SPID=() SPORT=() SDIR=()
SHM_FILES=()
MOUNTED=

cleanup() {
    local pid
    for pid in "${SPID[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in $(jobs -p); do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -f "${SHM_FILES[@]}" 2>/dev/null || true
    if [ -n "$MOUNTED" ]; then umount "$MOUNTED" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*"; }
. "$ROOT/c-tests/report.sh"
ok() { awk "BEGIN { exit !($1) }"; }
want() { [[ " $CASES " == *" $1 "* ]]; }

[ -f "$LIB" ] || { say "run-shm-tests: $LIB not found (make build)"; exit 2; }
mkdir -p "$OUT"
for prog in store_server store_client; do
    "$CC" -O1 -g -Wall -Wextra -Werror -I"$ROOT/include" "$ROOT/c-tests/store/$prog.c" \
        -o "$OUT/$prog" -lssl -lcrypto
done
(cd "$ROOT" && cargo build --release --quiet --example shm_check)
SERVER=$OUT/store_server
CLIENT=$OUT/store_client
CHECKER=$ROOT/target/release/examples/shm_check
W=$OUT/run
rm -rf "$W"
mkdir -p "$W"
cp "$LIB" "$W/libsesscache.so"
LIB=$W/libsesscache.so
openssl rand -hex 32 >"$W/key"
chmod 600 "$W/key"

shm_file() { # a fresh store path of this run
    local f=/dev/shm/sesscache-test-$$-$1
    rm -f "$f"
    SHM_FILES+=("$f")
    echo "$f"
}

# start NAME VERSION STORE [VAR=VALUE…]: STORE "plain" runs without the
# library; otherwise SESSCACHE_STORE=STORE (with the key file for shm:/path).
start() {
    local name=$1 ver=$2 store=$3 dir=$W/$CASE/$1
    shift 3
    mkdir -p "$dir"
    local envs=()
    if [ "$store" != plain ]; then
        envs+=(LD_PRELOAD="$LIB" SESSCACHE_STATS="$dir" SESSCACHE_LOG="$dir/events.log"
            SESSCACHE_STORE="$store")
        [[ $store == shm:* ]] && envs+=(SESSCACHE_STORE_KEY_FILE="$W/key")
    fi
    : >"$dir/stdout"
    env "${envs[@]}" "$@" "$SERVER" "${PORT:-0}" "$ver" ctx >"$dir/stdout" 2>"$dir/stderr" &
    SPID[$name]=$!
    SDIR[$name]=$dir
    local i port=
    for i in $(seq 1 200); do
        port=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$dir/stdout" 2>/dev/null || true)
        [ -n "$port" ] && break
        kill -0 "${SPID[$name]}" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$port" ] || { say "run-shm-tests: server $name did not start:"; cat "$dir/stderr"; exit 2; }
    SPORT[$name]=$port
    sleep 0.1 # pre-fork workers
}

stop() {
    local name=$1 pid=${SPID[$1]} i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "SPID[$name]"
}
stop_all() { local n; for n in "${!SPID[@]}"; do stop "$n"; done; }

# sum of a counter over every stats file of a server (its workers included)
counter() {
    cat "${SDIR[$1]}"/sesscache.*.stats 2>/dev/null | awk -F= -v k="$2" '$1 == k { s += $2 } END { print s + 0 }'
}
store_stats() {
    local out="" c
    for c in store_hits store_misses store_writes store_deletes store_errors store_rejected \
        store_lock_timeouts store_repairs store_evictions store_oversize; do
        out+="${c#store_}=$(counter "$1" "$c") "
    done
    echo "$1[${out% }]"
}
field() {
    awk -v k="$2" -v f="$3" '$1 == k { for (i = 2; i <= NF; i++) { n = index($i, "="); if (substr($i, 1, n - 1) == f) v = substr($i, n + 1) } } END { print v }' "$1"
}
conn_field() {
    awk -v i="$2" -v f="$3" '$1 == "conn" && $2 == "i=" i { for (j = 2; j <= NF; j++) { n = index($j, "="); if (substr($j, 1, n - 1) == f) v = substr($j, n + 1) } } END { print v }' "$1"
}
client() { local out=$1; shift; "$CLIENT" "$@" >"$out" 2>"$out.err" || true; }
rate() { awk -v r="$1" -v o="$2" 'BEGIN { if (o == 0) print "-"; else printf "%.1f%%", 100 * r / o }'; }
# the process state letter (T when stopped)
state() { awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || echo gone; }
wait_stopped() {
    local i
    for i in $(seq 1 100); do [ "$(state "$1")" = T ] && return 0; sleep 0.05; done
    return 1
}
checker() { "$CHECKER" "$1" "${2:-$SMALL}" 2>&1 || true; }

say "library ${SESSCACHE_LIB:-$ROOT/target/release/libsesscache.so}; work dir $W"

# ------------------------------------------------------------ prefork, fork
# Returning clients of a server with several processes: each connection
# offers the previous one's session; plain libssl resumes only when the
# kernel hands the connection to the process that made the session. (A
# fork-per-connection child leaves with _exit, so writes no stats file.)
many_procs() { # CASE-NAME PROCS N
    local name=$1 procs=$2 n=$3 v r o f pr po
    for v in 1.2 1.3; do
        CASE=$name-$v
        start P "$v" plain STORE_SERVER_PROCS="$procs"
        client "$W/$CASE/plain" "$n" "${SPORT[P]}" "$v"
        stop P
        start S "$v" shm STORE_SERVER_PROCS="$procs"
        client "$W/$CASE/shm" "$n" "${SPORT[S]}" "$v"
        stop S
        r=$(field "$W/$CASE/shm" total resumed); o=$(field "$W/$CASE/shm" total offered)
        f=$(field "$W/$CASE/shm" total failed)
        pr=$(field "$W/$CASE/plain" total resumed); po=$(field "$W/$CASE/plain" total offered)
        verdict "$name-tls$v" "$([ -n "$r" ] && ok "$r >= 0.99 * $o" && [ "$f" = 0 ] && { [ "$procs" = fork ] || [ "$(counter S store_hits)" -gt 0 ]; } && echo 0 || echo 1)" \
            "shm: resumed=$r of offered=$o ($(rate "$r" "$o"), need >= 99%) failed=$f; plain libssl: resumed=$pr of $po ($(rate "$pr" "$po")); $(store_stats S); stderr: $(head -c 200 "${SDIR[S]}/stderr")"
    done
}
want prefork && many_procs prefork-4 4 1000
want fork && many_procs fork-per-connection fork 400

# ------------------------------------------------------------ join by path
if want join; then
    for v in 1.2 1.3; do
        CASE=join-$v
        f=$(shm_file "join-$v")
        start A "$v" "shm:$f"
        start B "$v" "shm:$f"
        client "$W/$CASE/client" 1000 "${SPORT[A]},${SPORT[B]}" "$v"
        mode=$(stat -c %a "$f")
        stop_all
        r=$(field "$W/$CASE/client" total resumed); o=$(field "$W/$CASE/client" total offered)
        fl=$(field "$W/$CASE/client" total failed)
        verdict "join-by-path-tls$v" "$([ -n "$r" ] && ok "$r >= 0.99 * $o" && [ "$fl" = 0 ] && [ "$mode" = 600 ] && echo 0 || echo 1)" \
            "two servers on $f (mode $mode), connections alternating: resumed=$r of offered=$o ($(rate "$r" "$o"), need >= 99%) failed=$fl; $(store_stats A) $(store_stats B); check: $(checker "$f" $((16 << 20)))"
    done
    # Joining by path needs the key file: without it the store is refused,
    # said on stderr, and each server keeps its own cache.
    CASE=join-nokey
    f=$(shm_file join-nokey)
    mkdir -p "$W/$CASE"
    LD_PRELOAD="$LIB" SESSCACHE_STORE="shm:$f" "$SERVER" 0 1.2 ctx >"$W/$CASE/stdout" 2>"$W/$CASE/stderr" &
    pid=$!
    sleep 0.5
    port=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$W/$CASE/stdout")
    client "$W/$CASE/client" 50 "$port" 1.2
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    msg=$(grep -m1 -E '^sesscache(\[[0-9]+\])?:' "$W/$CASE/stderr" || true)
    r=$(field "$W/$CASE/client" total resumed)
    verdict join-without-key "$([ -n "$msg" ] && [ ! -e "$f" ] && [ "$r" -ge 48 ] && echo 0 || echo 1)" \
        "stderr='${msg:-<none>}' file made=$([ -e "$f" ] && echo yes || echo no) local resumed=$r of 50"
fi

# ------------------------------------------------------------ removal
# Connection 10 resumes on B and ends without close_notify: B removes the
# session; connection 11 offers it to A, which must not resume it (A holds
# it in its own cache since it made or fetched it).
if want removal; then
    for v in 1.2 1.3; do
        for how in path prefork; do
            CASE=removal-$how-$v
            if [ "$how" = path ]; then
                f=$(shm_file "removal-$v")
                start A "$v" "shm:$f"
                start B "$v" "shm:$f"
                ports="${SPORT[A]},${SPORT[B]}"
            else
                # one pre-fork server: which worker takes a connection is the
                # kernel's choice, so the rule is checked over 20 rounds
                start A "$v" shm STORE_SERVER_PROCS=2
                ports=${SPORT[A]}
            fi
            bad=0 rounds=0 vacuous=0 failed=0
            for round in $(seq 1 $([ "$how" = path ] && echo 1 || echo 20)); do
                client "$W/$CASE/client$round" 20 "$ports" "$v" --unclean-at 10 --unclean-pause-ms 200
                rounds=$((rounds + 1))
                [ "$(conn_field "$W/$CASE/client$round" 10 resumed)" = 1 ] || vacuous=$((vacuous + 1))
                [ "$(field "$W/$CASE/client$round" after_unclean resumed)" = 0 ] || bad=$((bad + 1))
                failed=$((failed + $(field "$W/$CASE/client$round" total failed)))
            done
            stop_all
            verdict "removal-$how-tls$v" "$([ "$bad" = 0 ] && [ "$vacuous" -lt "$rounds" ] && [ "$failed" = 0 ] && echo 0 || echo 1)" \
                "rounds=$rounds: removed session resumed afterwards in $bad (need 0); rounds where conn 10 did not resume (nothing to remove) $vacuous; failed=$failed; $(store_stats A)$([ "$how" = path ] && echo " $(store_stats B)")"
        done
    done
fi

# ------------------------------------------------------------ early data
# The same early-data session offered to two processes at once, 100 times:
# early data accepted at most once each time. openssl s_client makes the
# session (-sess_out) and offers it with early data (-sess_in -early_data).
if want early; then
    CASE=early
    f=$(shm_file early)
    start A 1.3 "shm:$f" STORE_SERVER_EARLY_DATA=1
    start B 1.3 "shm:$f" STORE_SERVER_EARLY_DATA=1
    d=$W/$CASE
    printf 'GET\n' >"$d/early.txt"
    twice=0 once=0 never=0
    for i in $(seq 1 100); do
        printf 'hello\n' | timeout 10 openssl s_client -connect "127.0.0.1:${SPORT[A]}" -tls1_3 \
            -sess_out "$d/sess.pem" -quiet >/dev/null 2>&1 || true
        for s in A B; do
            (printf 'x\n'; sleep 0.3) | timeout 10 openssl s_client -connect "127.0.0.1:${SPORT[$s]}" \
                -tls1_3 -sess_in "$d/sess.pem" -early_data "$d/early.txt" >"$d/$s.out" 2>&1 &
        done
        wait $(jobs -p | tail -2) 2>/dev/null || true
        n=$({ grep -l 'Early data was accepted' "$d/A.out" "$d/B.out" 2>/dev/null || true; } | wc -l)
        case $n in 0) never=$((never + 1)) ;; 1) once=$((once + 1)) ;; *) twice=$((twice + 1)) ;; esac
    done
    stop_all
    verdict early-data-single-use "$([ "$twice" = 0 ] && [ "$once" -gt 0 ] && echo 0 || echo 1)" \
        "100 rounds of one session offered with early data to A and B at once: accepted by both in $twice (need 0), by one in $once (need > 0), by neither in $never; $(store_stats A) $(store_stats B)"
fi

# ------------------------------------------------------------ faults
# One shard (SMALL), so every operation needs the lock the victim holds.
# killed-locked / killed-writing: the victim (SESSCACHE_TEST_SHM_STOP_AT)
# stops itself holding the lock (or half way through writing a slot), is
# SIGKILLed there; the survivor repairs the shard and goes on resuming.
# stopped-holder: the victim stays stopped; the survivor's store operations
# give up after the lock wait and its handshakes complete.
if want faults; then
    for step in locked writing; do
        for end in kill stop; do
            [ "$step" = writing ] && [ "$end" = stop ] && continue
            CASE=fault-$step-$end
            f=$(shm_file "fault-$step")
            start B 1.2 "shm:$f" SESSCACHE_STORE_SIZE=$SMALL
            client "$W/$CASE/warm" 20 "${SPORT[B]}" 1.2 --fresh-every 2
            start V 1.2 "shm:$f" SESSCACHE_STORE_SIZE=$SMALL SESSCACHE_TEST_SHM_STOP_AT=$step
            "$CLIENT" 1 "${SPORT[V]}" 1.2 >"$W/$CASE/victim" 2>&1 &
            vc=$!
            stopped=no
            wait_stopped "${SPID[V]}" && stopped=yes
            if [ "$end" = kill ]; then
                kill -KILL "${SPID[V]}"
                wait "${SPID[V]}" 2>/dev/null || true
                unset "SPID[V]"
            fi
            client "$W/$CASE/client" 200 "${SPORT[B]}" 1.2 --fresh-every 2 --slow-ms 100
            r=$(field "$W/$CASE/client" total resumed); o=$(field "$W/$CASE/client" total offered)
            fl=$(field "$W/$CASE/client" total failed); mx=$(field "$W/$CASE/client" total max_ms)
            if [ "$end" = stop ]; then
                kill -CONT "${SPID[V]}" 2>/dev/null || true
            fi
            kill -KILL "$vc" 2>/dev/null || true
            wait "$vc" 2>/dev/null || true
            stop_all
            rep=$(counter B store_repairs); lto=$(counter B store_lock_timeouts); hits=$(counter B store_hits)
            chk=$(checker "$f")
            if [ "$end" = kill ]; then
                cond=$([ "$stopped" = yes ] && [ "$fl" = 0 ] && ok "$r >= 0.99 * $o" && [ "$rep" -ge 1 ] && [[ $chk == consistent* ]] && echo 0 || echo 1)
                need="need: stopped there, failed=0, >= 99% resumed, repairs >= 1, consistent"
            else
                # Every handshake completes within a bound far above the lock
                # wait (a stall here would be an unbounded wait).
                cond=$([ "$stopped" = yes ] && [ "$fl" = 0 ] && [ "$lto" -ge 1 ] && ok "$mx < 1000" && echo 0 || echo 1)
                need="need: stopped there, failed=0, lock_timeouts >= 1, max_ms < 1000"
            fi
            verdict "fault-$step-$end" "$cond" \
                "victim stopped at '$step': $stopped; survivor afterwards: resumed=$r of offered=$o failed=$fl max_ms=$mx; $(store_stats B); check: $chk ($need)"
        done
    done
    # Filled far past its size: 64 slots, 3000 sessions (every connection a
    # new one, then alternating new and resumed on two servers).
    CASE=fault-fill
    f=$(shm_file fill)
    start A 1.3 "shm:$f" SESSCACHE_STORE_SIZE=$SMALL
    start B 1.3 "shm:$f" SESSCACHE_STORE_SIZE=$SMALL
    client "$W/$CASE/fill" 2000 "${SPORT[A]},${SPORT[B]}" 1.3 --fresh-every 1
    client "$W/$CASE/client" 1000 "${SPORT[A]},${SPORT[B]}" 1.3 --fresh-every 2
    stop_all
    r=$(field "$W/$CASE/client" total resumed); o=$(field "$W/$CASE/client" total offered)
    fl=$(( $(field "$W/$CASE/client" total failed) + $(field "$W/$CASE/fill" total failed) ))
    ev=$(( $(counter A store_evictions) + $(counter B store_evictions) ))
    chk=$(checker "$f")
    verdict fault-fill "$([ "$fl" = 0 ] && [ "$ev" -ge 1000 ] && ok "$r >= 0.99 * $o" && [[ $chk == consistent* ]] && echo 0 || echo 1)" \
        "3000 handshakes into 64 slots: failed=$fl evictions=$ev (need >= 1000); then resumed=$r of offered=$o cross-server; $(store_stats A) $(store_stats B); check: $chk"
fi

# ------------------------------------------------------------ oversize
# Sessions larger than a slot (STORE_SERVER_SESSION_PAD attaches 4000 bytes
# of ticket application data to each) stay local: two servers on one file,
# a client returning to the same server resumes, one returning to the other
# server does not (the session never reached the store), store_oversize
# counts them (stats file and sesscache_counter) and not as writes, nothing fails, the store
# stays consistent. The same run with 600 bytes (fits a slot) resumes
# across servers, so the test sees the difference the size makes.
if want oversize; then
    for v in 1.2 1.3; do
        for pad in 4000 600; do
            CASE=oversize-$pad-$v
            f=$(shm_file "oversize-$pad-$v")
            start A "$v" "shm:$f" STORE_SERVER_SESSION_PAD=$pad
            start B "$v" "shm:$f" STORE_SERVER_SESSION_PAD=$pad
            client "$W/$CASE/own" 100 "${SPORT[A]}" "$v"
            client "$W/$CASE/cross" 200 "${SPORT[A]},${SPORT[B]}" "$v" --fresh-every 2
            stop_all
            ro=$(field "$W/$CASE/own" total resumed); oo=$(field "$W/$CASE/own" total offered)
            rc=$(field "$W/$CASE/cross" total resumed); oc=$(field "$W/$CASE/cross" total offered)
            fl=$(( $(field "$W/$CASE/own" total failed) + $(field "$W/$CASE/cross" total failed) ))
            over=$(( $(counter A store_oversize) + $(counter B store_oversize) ))
            wr=$(( $(counter A store_writes) + $(counter B store_writes) ))
            api=$(sed -n 's/^library store_oversize=//p' "${SDIR[A]}/stdout" "${SDIR[B]}/stdout" | awk '{ s += $1 } END { print s + 0 }')
            exited=$(cat "${SDIR[A]}/stdout" "${SDIR[B]}/stdout" | grep -c '^server ' || true)
            chk=$(checker "$f" $((16 << 20)))
            if [ "$pad" = 4000 ]; then
                cond=$([ -n "$ro" ] && ok "$ro >= 0.99 * $oo" && [ "$rc" = 0 ] && [ "$over" -ge 100 ] && [ "$wr" = 0 ] && [ "$api" = "$over" ] && [ "$fl" = 0 ] && [ "$exited" = 2 ] && [[ $chk == consistent* ]] && echo 0 || echo 1)
                need="need: own >= 99%, cross 0, oversize >= 100 in both stats and sesscache_counter and none counted as a write, failed 0, both exited normally, consistent"
            else
                cond=$([ -n "$ro" ] && ok "$ro >= 0.99 * $oo" && ok "$rc >= 0.99 * $oc" && [ "$over" = 0 ] && [ "$fl" = 0 ] && [ "$exited" = 2 ] && [[ $chk == consistent* ]] && echo 0 || echo 1)
                need="need: own and cross >= 99%, oversize 0, failed 0, both exited normally, consistent"
            fi
            verdict "oversize-${pad}B-tls$v" "$cond" \
                "sessions padded by $pad bytes: same server resumed=$ro of $oo, other server resumed=$rc of $oc, failed=$fl; store_oversize stats=$over sesscache_counter=$api; exited_normally=$exited; $(store_stats A) $(store_stats B); check: $chk ($need)"
        done
    done
fi

# ------------------------------------------------------------ hostile files
# Each file is refused without being written (same bytes after), said once
# on stderr, and the server resumes from its own cache; or (random slots
# under a valid header) joined and read as misses.
hostile_case() { # NAME FILE EXPECT(refused|joined)
    local name=$1 f=$2 expect=$3 before after msg r
    CASE=hostile-$name
    before=$(sha256sum <"$f" 2>/dev/null | cut -c1-16 || echo none)
    start H 1.2 "shm:$f" SESSCACHE_STORE_SIZE=$SMALL
    client "$W/$CASE/client" 100 "${SPORT[H]}" 1.2
    stop H
    after=$(sha256sum <"$f" 2>/dev/null | cut -c1-16 || echo none)
    msg=$(grep -m1 -E '^sesscache(\[[0-9]+\])?:' "${SDIR[H]}/stderr" || true)
    r=$(field "$W/$CASE/client" total resumed)
    local crashed=no
    grep -q 'READY' "${SDIR[H]}/stdout" && grep -q '^server ' "${SDIR[H]}/stdout" || crashed=yes
    if [ "$expect" = refused ]; then
        verdict "hostile-$name" "$([ -n "$msg" ] && [ "$before" = "$after" ] && [ "$r" -ge 98 ] && [ "$crashed" = no ] && echo 0 || echo 1)" \
            "stderr='${msg:-<none>}' unchanged=$([ "$before" = "$after" ] && echo yes || echo no) local resumed=$r of 100 exited_normally=$([ $crashed = no ] && echo yes || echo no)"
    else
        verdict "hostile-$name" "$([ "$r" -ge 98 ] && [ "$crashed" = no ] && [ "$(counter H store_hits)" = 0 ] && echo 0 || echo 1)" \
            "joined; resumed=$r of 100 (own cache), store hits from the random slots=$(counter H store_hits) exited_normally=$([ $crashed = no ] && echo yes || echo no); $(store_stats H)"
    fi
}
if want hostile; then
    real=$(shm_file hostile-target)
    head -c $SMALL /dev/zero >"$real"
    chmod 600 "$real"
    link=$(shm_file hostile-symlink)
    ln -s "$real" "$link"
    hostile_case symlink "$link" refused
    f=$(shm_file hostile-foreign)
    head -c $SMALL /dev/urandom >"$f"; chmod 600 "$f"
    if [ "$(id -u)" = 0 ]; then
        chown nobody "$f"
        hostile_case foreign-owner "$f" refused
    else
        say "SKIP hostile-foreign-owner: needs root to chown"
    fi
    # a real store (made by a server), then made world-writable
    f=$(shm_file hostile-mode)
    CASE=hostile-make; start M 1.2 "shm:$f" SESSCACHE_STORE_SIZE=$SMALL; stop M
    chmod 666 "$f"
    hostile_case world-writable "$f" refused
    chmod 600 "$f"
    f2=$(shm_file hostile-magic)
    cp "$f" "$f2"; printf 'XXXXXXXX' | dd of="$f2" conv=notrunc status=none
    hostile_case wrong-magic "$f2" refused
    f3=$(shm_file hostile-size)
    head -c $((SMALL / 2)) "$f" >"$f3"; chmod 600 "$f3"
    hostile_case wrong-size "$f3" refused
    f4=$(shm_file hostile-random)
    head -c $SMALL /dev/urandom >"$f4"; chmod 600 "$f4"
    hostile_case random-bytes "$f4" refused
    # valid header and locks; every slot and index byte random
    f5=$(shm_file hostile-slots)
    cp "$f" "$f5"
    head -c $((SMALL - 4096 - 64)) /dev/urandom | dd of="$f5" bs=1 seek=$((4096 + 64)) conv=notrunc status=none
    hostile_case random-slots "$f5" joined
fi

# ------------------------------------------------------------ tmpfs
if want tmpfs; then
    CASE=tmpfs
    mnt=$W/small-tmpfs
    mkdir -p "$mnt"
    if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=1m sesscache-test "$mnt" 2>/dev/null; then
        MOUNTED=$mnt
        start T 1.2 "shm:$mnt/store" SESSCACHE_STORE_SIZE=4m
        client "$W/$CASE/client" 100 "${SPORT[T]}" 1.2
        stop T
        msg=$(grep -m1 -E '^sesscache(\[[0-9]+\])?:' "${SDIR[T]}/stderr" || true)
        r=$(field "$W/$CASE/client" total resumed)
        exited=$(grep -c '^server ' "${SDIR[T]}/stdout" || true)
        verdict tmpfs-too-small "$([ -n "$msg" ] && [ ! -e "$mnt/store" ] && [ "$r" -ge 98 ] && [ "$exited" = 1 ] && echo 0 || echo 1)" \
            "4 MiB store on a 1 MiB tmpfs: stderr='${msg:-<none>}' file left=$([ -e "$mnt/store" ] && echo yes || echo no) local resumed=$r of 100 exited_normally=$exited"
        umount "$mnt"; MOUNTED=
    else
        say "SKIP tmpfs-too-small: mounting a tmpfs needs root (mount -t tmpfs not permitted here)"
    fi
fi

# ------------------------------------------------------------ soak
# Three servers on one store file of one shard (every operation takes the
# same lock): A with 3 threads, B pre-fork with 2 workers of 2 threads, C
# with 2 threads and a third emptying its cache every 500 ms (as expired, so
# removals that reach the store, and as a flush of everything). Two
# clients per pair of servers (fresh sessions, unclean ends, so removals,
# alternation across servers). A fourth server on the same file, with 2
# threads and hammered by its own client, is SIGKILLed every 300 ms and
# restarted. Then: the survivors' clients saw no failure, every client
# finished, the store is consistent.
if want soak; then
    CASE=soak
    f=$(shm_file soak)
    start A 1.3 "shm:$f" SESSCACHE_STORE_SIZE=$SMALL STORE_SERVER_THREADS=3
    start B 1.3 "shm:$f" SESSCACHE_STORE_SIZE=$SMALL STORE_SERVER_PROCS=2 STORE_SERVER_THREADS=2
    start C 1.3 "shm:$f" SESSCACHE_STORE_SIZE=$SMALL STORE_SERVER_THREADS=2 STORE_SERVER_FLUSH_MS=500
    PORT=0 start K 1.3 "shm:$f" SESSCACHE_STORE_SIZE=$SMALL STORE_SERVER_THREADS=2
    kport=${SPORT[K]}
    d=$W/$CASE
    end=$((SECONDS + SOAK_SECONDS))
    cpids=()
    i=0
    for ports in "${SPORT[A]},${SPORT[B]}" "${SPORT[B]},${SPORT[C]}" "${SPORT[C]},${SPORT[A]}" \
        "${SPORT[B]},${SPORT[A]}" "${SPORT[C]},${SPORT[B]}" "${SPORT[A]},${SPORT[C]}"; do
        i=$((i + 1))
        ( n=0; while [ $SECONDS -lt $end ]; do
            n=$((n + 1))
            "$CLIENT" 200 "$ports" 1.3 --fresh-every $((n % 3 + 1)) --unclean-at $((n % 50 + 5)) >"$d/c$i.$n" 2>&1 || echo "client exit $?" >>"$d/c$i.errors"
        done ) &
        cpids+=($!)
    done
    ( while [ $SECONDS -lt $end ]; do "$CLIENT" 50 "$kport" 1.3 --fresh-every 2 >/dev/null 2>&1 || true; done ) &
    hammer=$!
    kills=0
    while [ $SECONDS -lt $end ]; do
        sleep 0.3
        kill -KILL "${SPID[K]}" 2>/dev/null || true
        wait "${SPID[K]}" 2>/dev/null || true
        kills=$((kills + 1))
        PORT=$kport start K 1.3 "shm:$f" SESSCACHE_STORE_SIZE=$SMALL STORE_SERVER_THREADS=2
    done
    finished=1
    for p in "${cpids[@]}"; do
        timeout_at=$((SECONDS + 60))
        while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $timeout_at ]; do sleep 0.2; done
        kill -0 "$p" 2>/dev/null && finished=0
    done
    kill -KILL "$hammer" 2>/dev/null || true
    stop_all
    total=0 failed=0 resumed=0 offered=0
    for c in "$d"/c*.*; do
        [[ $c == *.errors ]] && continue
        total=$((total + $(field "$c" total resumed) * 0 + 200))
        failed=$((failed + $(field "$c" total failed)))
        resumed=$((resumed + $(field "$c" total resumed)))
        offered=$((offered + $(field "$c" total offered)))
    done
    chk=$(checker "$f")
    flushes=$(sed -n 's/^server .* flushes=\([0-9]*\).*/\1/p' "${SDIR[C]}/stdout")
    unclean=$(cat "${SDIR[A]}/stdout" "${SDIR[B]}/stdout" "${SDIR[C]}/stdout" | sed -n 's/^server .* unclean=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
    exited=$(cat "${SDIR[A]}/stdout" "${SDIR[B]}/stdout" "${SDIR[C]}/stdout" | grep -c '^server ' || true)
    verdict soak "$([ "$finished" = 1 ] && [ "$failed" = 0 ] && [ "$kills" -ge 10 ] && [ "${flushes:-0}" -ge 10 ] && [ "$exited" = 4 ] && [[ $chk == consistent* ]] && echo 0 || echo 1)" \
        "${SOAK_SECONDS}s: $kills SIGKILLs of a store user (2 threads); survivors (A 3 threads, B 2 workers x 2 threads, C 2 threads + flusher): $total handshakes by 6 clients, failed=$failed, resumed=$resumed of offered=$offered ($(rate "$resumed" "$offered")), unclean ends (removals)=$unclean, flushes=${flushes:-0}, all finished=$finished, processes exited normally=$exited of 4; $(store_stats A) $(store_stats B) $(store_stats C); check: $chk (need: failed 0, all finished, kills >= 10, flushes >= 10, 4 exited normally, consistent)"
fi

finish
