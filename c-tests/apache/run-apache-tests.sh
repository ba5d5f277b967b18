#!/usr/bin/env bash
# Apache httpd 2.4 (Debian's package, unmodified) under sesscache.
#
# Usage: c-tests/apache/run-apache-tests.sh [-n CONNECTIONS] [--keep]
#
# For each case and each of TLS 1.2 / TLS 1.3 (SSLSessionTickets off, so the
# server cache is what resumes), `apache2 -f <own conf> -DFOREGROUND` runs on
# 127.0.0.1:<free port> twice: once plain (the baseline) and once with
# LD_PRELOAD=libsesscache.so, SESSCACHE_LOG=<run dir>/sesscache.log and
# SESSCACHE_STATS. mod_lua answers each request with the pid of the child
# that served it (read from /proc/self/stat); c-tests/nginx/tls_client makes
# CONNECTIONS (default 200) connections, each offering the previous
# connection's session. As root the children run as nobody:nogroup.
#
# Cases (mpm event: 2 children of 10 threads; mpm prefork: 3 children):
#   shmcb-event, shmcb-prefork  SSLSessionCache shmcb:DIR/scache(512000):
#          mod_ssl's cache shared by the children, behind the new/get/remove
#          callbacks, which run through the library. Rate rule: plain
#          httpd resumes >= 95% of the returning clients (the set-up
#          works), and sesscache >= 95% and at least as many as plain less
#          a margin of 2% of the connections. Log: one `callback-hit` per resumption, all from the
#          children, and nothing stored by the library (mod_ssl sets
#          NO_INTERNAL).
#   none-event, none-prefork    SSLSessionCache none: nothing resumes, plain
#          or preloaded; the log shows no hit, callback-hit or add.
#
# Every run: the client sees no failure; the error log has no
# [error]/[crit]/[alert]/[emerg], no handshake failure and no child that
# exited on a signal; stderr has no sesscache warning; the library is mapped
# in the parent and the children exactly when preloaded. Then the last
# session is saved (tls_client --save), the parent is sent SIGUSR1 (`apache2
# -k graceful`: it re-reads its configuration and replaces its children),
# the old children must exit, the new ones must map the library exactly
# when preloaded, the saved session is offered once (sesscache resumes it
# when plain httpd does) and a pass of 100 connections follows (same rate
# rule). SIGTERM must make the parent exit 0; the preloaded run's stats
# files must agree with its log.
#
# Prints one PASS/FAIL line per case and protocol, then "N passed, M failed";
# exits non-zero on any failure. Environment: SESSCACHE_LIB (default
# target/release/libsesscache.so), APACHE2 (default: apache2 on PATH, else
# /usr/sbin/apache2), APACHE_MODULES (default /usr/lib/apache2/modules),
# CC (default cc).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONNECTIONS=200
. "$REPO/c-tests/lib.sh"
server_test_setup apache APACHE2 apache2 "$@"
MODULES="${APACHE_MODULES:-/usr/lib/apache2/modules}"
for m in mpm_event mpm_prefork ssl socache_shmcb lua authz_core; do
    [ -f "$MODULES/mod_$m.so" ] || die "$MODULES/mod_$m.so not found (apt-get install apache2)"
done
# The children (nobody when run as root) read pid.lua under it.
chmod 0755 "$TMP"

cat >"$TMP/pid.lua" <<'EOF'
-- The pid of the child serving the request: the first field of its stat.
function handle(r)
    r.content_type = "text/plain"
    local f = io.open("/proc/self/stat")
    local pid = f:read("*n")
    f:close()
    r:puts(pid, "\n")
    return apache2.OK
end
EOF
chmod 0644 "$TMP/pid.lua"

# children MPM: how many children the configuration keeps.
children() { [ "$1" = event ] && echo 2 || echo 3; }

# write_conf DIR PORT PROTOCOL(TLSv1.x) MPM CACHE
write_conf() {
    local dir="$1" port="$2" proto="$3" mpm="$4" cache="$5" user="" mpmconf
    if [ "$(id -u)" = 0 ]; then
        user=$'User nobody\nGroup nogroup'
        chown nobody:nogroup "$dir/run" "$dir/stats"
    fi
    # Spare limits around what StartServers gives, so that the (sequential)
    # client meets the same children, and a child is seldom added.
    if [ "$mpm" = event ]; then
        mpmconf=$'StartServers 2\nServerLimit 8\nThreadsPerChild 10\nMaxRequestWorkers 40\nMinSpareThreads 10\nMaxSpareThreads 30'
    else
        mpmconf=$'StartServers 3\nMinSpareServers 2\nMaxSpareServers 4\nMaxRequestWorkers 10'
    fi
    cat >"$dir/httpd.conf" <<EOF
ServerRoot $dir
ServerName localhost
DefaultRuntimeDir $dir/run
PidFile $dir/run/httpd.pid
Mutex file:$dir/run default
LoadModule mpm_${mpm}_module $MODULES/mod_mpm_$mpm.so
LoadModule authz_core_module $MODULES/mod_authz_core.so
LoadModule socache_shmcb_module $MODULES/mod_socache_shmcb.so
LoadModule ssl_module $MODULES/mod_ssl.so
LoadModule lua_module $MODULES/mod_lua.so
$user
$mpmconf
ErrorLog $dir/logs/error.log
LogLevel info
Listen 127.0.0.1:$port
SSLSessionCache $cache
<VirtualHost 127.0.0.1:$port>
    SSLEngine on
    SSLCertificateFile $TMP/cert.pem
    SSLCertificateKeyFile $TMP/key.pem
    SSLProtocol -all +$proto
    SSLSessionTickets off
    LuaMapHandler ^/\$ $TMP/pid.lua handle
</VirtualHost>
EOF
}

# start_apache DIR PORT PRELOAD(0|1) CHILDREN: sets SERVER; waits for the
# port and the children.
start_apache() {
    # setsid: httpd signals its whole process group when it stops, which
    # must not reach this script.
    launch "$1" "$3" setsid "$APACHE2" -f "$1/httpd.conf" -DFOREGROUND
    wait_up apache2 "$2" "$4" "$1/stderr" "$1/logs/error.log"
}

# stop_apache: SIGTERM to the parent. Returns its exit status.
stop_apache() { stop_server apache2 kill -TERM "$SERVER"; }

# reload_apache CHILDREN: SIGUSR1 to the parent (graceful restart: it
# re-reads its configuration and replaces its children). Prints them.
reload_apache() { reload_server "$1" kill -USR1 "$SERVER"; }

# log_problems DIR: what the error log and stderr show that they should not.
log_problems() {
    grep -E '\[[a-z_]+:(error|crit|alert|emerg)\]|exit signal|AH02008|SSL library error|handshake (failed|interrupted)' \
        "$1/logs/error.log" 2>/dev/null | head -5
    grep -E '^sesscache|egmentation' "$1/stderr" 2>/dev/null | head -5
}

# check_log CACHE LOG RESUMED: the library's own evidence.
check_log() {
    local hits cbhits adds
    hits="$(count hit "$2")"; cbhits="$(count callback-hit "$2")"; adds="$(count add "$2")"
    case "$1" in
    shmcb*)
        [ "$cbhits" = "$3" ] || echo "log: $cbhits callback hits for $3 resumptions"
        [ "$hits" = 0 ] && [ "$adds" = 0 ] \
            || echo "log: our cache used under NO_INTERNAL (hits $hits, adds $adds)" ;;
    none)
        [ "$hits" = 0 ] && [ "$cbhits" = 0 ] && [ "$adds" = 0 ] \
            || echo "log: cache off but hits $hits, callback hits $cbhits, adds $adds" ;;
    esac
}

# run_case CASE MPM CACHE PROTO(1.2|1.3)
run_case() {
    local case="$1" mpm="$2" cache="$3" ver="$4" mode dir port line kids new_kids seen problems="" evidence=""
    local nkids later
    nkids="$(children "$mpm")"
    local -A first saved again
    for mode in plain lib; do
        dir="$TMP/$case-tls$ver-$mode"
        mkdir -p "$dir/logs" "$dir/run" "$dir/stats"
        port="$("$CLIENT" --free-port)"
        write_conf "$dir" "$port" "TLSv$ver" "$mpm" "${cache//DIR/$dir\/run}"
        first[$mode]=""; saved[$mode]=""; again[$mode]=""; new_kids=""
        if ! start_apache "$dir" "$port" "$([ $mode = lib ] && echo 1 || echo 0)" "$nkids"; then
            problems+="; $mode: apache2 did not start"
            stop_hard
            continue
        fi
        kids="$(children_of "$SERVER")"
        add_problems "$mode" < <(mapping_problems "$mode" "$SERVER $kids")
        line="$("$CLIENT" --save "$dir/session.pem" "$port" "$ver" "$CONNECTIONS" 2>"$dir/client.err")" \
            || problems+="; $mode: client failed ($(head -c 200 "$dir/client.err" | tr '\n' ' '))"
        first[$mode]="$line"
        # prefork may add a child when a busy one is still closing: the
        # new one must map the library like the others.
        later="$(live_children_of "$SERVER")"
        add_problems "$mode" < <(mapping_problems "$mode" "$later")
        seen="$kids $later"
        if new_kids="$(reload_apache "$nkids")"; then
            add_problems "$mode after reload" < <(mapping_problems "$mode" "$SERVER $new_kids")
            reload_pass "$mode" "$dir" "$port" "$ver"
            later="$(live_children_of "$SERVER")"
            add_problems "$mode after reload" < <(mapping_problems "$mode" "$later")
            seen+=" $new_kids $later"
        else
            problems+="; $mode: reload failed"
        fi
        stop_apache || problems+="; $mode: apache2 exited with status $?"
        add_problems "$mode error log" < <(log_problems "$dir")
        after_run "$mode" "$dir" "$cache" "$seen"
    done
    reload_report "$([ "$cache" = none ] && echo off || echo rate)" "$case TLSv$ver (SSLSessionCache $cache, mpm $mpm, $nkids children)"
}

echo "apache2: $("$APACHE2" -v 2>&1 | sed -n 's/^Server version: //p'), $CONNECTIONS connections per run, library $LIB"
for ver in 1.2 1.3; do
    run_case shmcb-event event "shmcb:DIR/scache(512000)" "$ver"
    run_case shmcb-prefork prefork "shmcb:DIR/scache(512000)" "$ver"
    run_case none-event event none "$ver"
    run_case none-prefork prefork none "$ver"
done
finish
