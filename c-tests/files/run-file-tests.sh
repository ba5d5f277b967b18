#!/usr/bin/env bash
# The files the library writes (SESSCACHE_STATS, SESSCACHE_LOG) are never
# written through a planted symlink or into a directory others can write to.
#
# A victim file is planted behind symlinks at the names the library will
# use: the stats file's temporary and final names for the pid the program
# will run as (a shell plants them for its own pid and then execs the
# program, which keeps that pid), and the log path. Each time the victim
# must be untouched and the library must say once on stderr what it
# refused and why. Also: a stats directory writable by others (refused), a
# sticky one of ours (used), a symlink as the directory (refused), a
# leftover temporary file of ours (replaced), a directory owned by the
# user a server's workers run as (the README's recipe: root and that user
# both write their files), and a log file of another user (refused).
#
# Environment: SESSCACHE_LIB (default target/release/libsesscache.so), CC.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CC="${CC:-cc}"
LIB="${SESSCACHE_LIB:-target/release/libsesscache.so}"
case "$LIB" in /*) ;; *) LIB="$REPO/$LIB" ;; esac
[ -f "$LIB" ] || { echo "run-file-tests: $LIB not found (run make first)" >&2; exit 2; }

BUILD="$REPO/target/c-tests-files"
mkdir -p "$BUILD"
PROG="$BUILD/t_tls12"
"$CC" -O1 -g -Wall -Wextra -Werror -I"$REPO/include" "$REPO/c-tests/common.c" \
    "$REPO/c-tests/t_tls12.c" -o "$PROG" -lssl -lcrypto -lpthread

TMP="$(mktemp -d "${TMPDIR:-/tmp}/sesscache-files.XXXXXX")"
chmod 755 "$TMP"
trap 'rm -rf "$TMP"' EXIT

. "$REPO/c-tests/report.sh"

VICTIM="$TMP/victim"
reset_victim() { printf 'precious\n' >"$VICTIM"; chmod 644 "$VICTIM"; }
victim_untouched() { [ "$(cat "$VICTIM")" = precious ]; }

# run_planted CASE PLANT ENV...: runs the program preloaded with ENV, after
# running the shell command PLANT with $PID set to the program's pid.
# Output in $TMP/CASE.{out,err}.
run_planted() {
    local case="$1" plant="$2"
    shift 2
    env "$@" LIB="$LIB" PROG="$PROG" PLANT="$plant" \
        sh -c 'PID=$$; eval "$PLANT"; exec env LD_PRELOAD="$LIB" "$PROG"' \
        >"$TMP/$case.out" 2>"$TMP/$case.err" || true
}

# once FILE PATTERN: PATTERN is on exactly one line of FILE.
once() { [ "$(grep -c -- "$2" "$1" || true)" = 1 ]; }

show() { echo "--- stderr:"; cat "$TMP/$1.err"; ls -la "${2:-$TMP}"; }

# ---- stats: a symlink at the temporary name ----
dir="$TMP/stats-tmp"; mkdir -m 755 "$dir"; reset_victim
run_planted stats-tmp 'ln -s "$VICTIM" "$DIR/.sesscache.$PID.stats.tmp"' DIR="$dir" VICTIM="$VICTIM" \
    SESSCACHE_STATS="$dir"
if victim_untouched && once "$TMP/stats-tmp.err" "sesscache: SESSCACHE_STATS: .*\.stats\.tmp is a symlink" \
    && ! ls "$dir"/sesscache.*.stats >/dev/null 2>&1; then
    pass "stats: symlink at the temporary name not followed, reported once"
else
    fail "stats: symlink at the temporary name"; show stats-tmp "$dir"
fi

# ---- stats: a symlink at the final name ----
dir="$TMP/stats-final"; mkdir -m 755 "$dir"; reset_victim
run_planted stats-final 'ln -s "$VICTIM" "$DIR/sesscache.$PID.stats"' DIR="$dir" VICTIM="$VICTIM" \
    SESSCACHE_STATS="$dir"
if victim_untouched && once "$TMP/stats-final.err" "sesscache: SESSCACHE_STATS: .*/sesscache\.[0-9]*\.stats is a symlink" \
    && [ "$(find "$dir" -name 'sesscache.*.stats' -type l | wc -l)" = 1 ] \
    && [ -z "$(find "$dir" -name 'sesscache.*.stats' -type f)" ]; then
    pass "stats: symlink at the final name left alone, reported once"
else
    fail "stats: symlink at the final name"; show stats-final "$dir"
fi

# ---- stats: symlinks planted for the next pids of the machine ----
dir="$TMP/stats-next"; mkdir -m 755 "$dir"; reset_victim
next="$(cat /proc/sys/kernel/ns_last_pid)"
perl -e 'my ($d, $v, $from) = @ARGV; for my $p ($from + 1 .. $from + 400) {
    symlink($v, "$d/.sesscache.$p.stats.tmp"); symlink($v, "$d/sesscache.$p.stats"); }' \
    "$dir" "$VICTIM" "$next"
LD_PRELOAD="$LIB" SESSCACHE_STATS="$dir" "$PROG" >"$TMP/stats-next.out" 2>"$TMP/stats-next.err" || true
if victim_untouched && once "$TMP/stats-next.err" "sesscache: SESSCACHE_STATS: .* is a symlink"; then
    pass "stats: symlinks planted for the next pids not followed"
elif victim_untouched && [ ! -s "$TMP/stats-next.err" ] && [ -f "$dir"/sesscache.*.stats ]; then
    # The machine ran through more than 400 pids meanwhile.
    pass "stats: symlinks planted for the next pids (the program's pid was not among them)"
else
    fail "stats: symlinks planted for the next pids"; show stats-next
fi

# ---- stats: a directory others can write to ----
dir="$TMP/stats-open"; mkdir "$dir"; chmod 777 "$dir"
LD_PRELOAD="$LIB" SESSCACHE_STATS="$dir" "$PROG" >"$TMP/stats-open.out" 2>"$TMP/stats-open.err" || true
if once "$TMP/stats-open.err" "sesscache: SESSCACHE_STATS=.* is writable by group or others" \
    && [ -z "$(ls -A "$dir")" ]; then
    pass "stats: a directory others can write to is refused"
else
    fail "stats: a directory others can write to"; show stats-open "$dir"
fi

# ---- stats: a sticky directory of ours is used ----
dir="$TMP/stats-sticky"; mkdir "$dir"; chmod 1777 "$dir"
LD_PRELOAD="$LIB" SESSCACHE_STATS="$dir" "$PROG" >"$TMP/stats-sticky.out" 2>"$TMP/stats-sticky.err" || true
if [ ! -s "$TMP/stats-sticky.err" ] && grep -q '^hits=' "$dir"/sesscache.*.stats; then
    pass "stats: a sticky directory of ours is used"
else
    fail "stats: a sticky directory of ours"; show stats-sticky "$dir"
fi

# ---- stats: the directory named through a symlink ----
dir="$TMP/stats-real"; mkdir -m 755 "$dir"; ln -s "$dir" "$TMP/stats-link"
LD_PRELOAD="$LIB" SESSCACHE_STATS="$TMP/stats-link" "$PROG" >"$TMP/stats-link.out" \
    2>"$TMP/stats-link.err" || true
if once "$TMP/stats-link.err" "sesscache: SESSCACHE_STATS=.* is a symlink" && [ -z "$(ls -A "$dir")" ]; then
    pass "stats: a symlink as the directory is refused"
else
    fail "stats: a symlink as the directory"; show stats-link "$dir"
fi

# ---- stats: a leftover temporary file of ours is replaced; the file is
# written with mode 0644 less the umask ----
dir="$TMP/stats-leftover"; mkdir -m 755 "$dir"
run_planted stats-leftover 'echo half >"$DIR/.sesscache.$PID.stats.tmp"' DIR="$dir" SESSCACHE_STATS="$dir"
if [ ! -s "$TMP/stats-leftover.err" ] && grep -q '^hits=' "$dir"/sesscache.*.stats \
    && [ "$(stat -c %a "$dir"/sesscache.*.stats)" = 644 ] && [ -z "$(ls "$dir"/.sesscache.* 2>/dev/null)" ]; then
    pass "stats: a leftover temporary file of ours is replaced"
else
    fail "stats: a leftover temporary file of ours"; show stats-leftover "$dir"
fi

# ---- stats: the README's recipe, a directory owned by the workers' user:
# a process of root and one of that user both write their files ----
if [ "$(id -u)" = 0 ]; then
    dir="$TMP/stats-workers"; mkdir -m 755 "$dir"; chown nobody "$dir"
    LD_PRELOAD="$LIB" SESSCACHE_STATS="$dir" "$PROG" >/dev/null 2>"$TMP/stats-root.err" || true
    setpriv --reuid=nobody --regid=nogroup --clear-groups env LD_PRELOAD="$LIB" \
        SESSCACHE_STATS="$dir" "$PROG" >/dev/null 2>"$TMP/stats-nobody.err" || true
    owners="$(stat -c %U "$dir"/sesscache.*.stats 2>/dev/null | sort | tr '\n' ' ')"
    if [ ! -s "$TMP/stats-root.err" ] && [ ! -s "$TMP/stats-nobody.err" ] && [ "$owners" = "nobody root " ]; then
        pass "stats: a directory owned by the workers' user serves root and that user"
    else
        fail "stats: a directory owned by the workers' user (files of: $owners)"
        cat "$TMP/stats-root.err" "$TMP/stats-nobody.err"; ls -la "$dir"
    fi
fi

# ---- log: a symlink at the log path ----
reset_victim; ln -s "$VICTIM" "$TMP/planted.log"
LD_PRELOAD="$LIB" SESSCACHE_LOG="$TMP/planted.log" "$PROG" >"$TMP/log-link.out" 2>"$TMP/log-link.err" || true
if victim_untouched && once "$TMP/log-link.err" "sesscache: SESSCACHE_LOG=.* is a symlink" \
    && grep -q '^sesscache\[[0-9]*\] ctx=.* add id=' "$TMP/log-link.err"; then
    pass "log: symlink at the log path not followed, reported once, events on stderr"
else
    fail "log: symlink at the log path"; show log-link
fi

# ---- log: created 0600; a file of another user is refused ----
LD_PRELOAD="$LIB" SESSCACHE_LOG="$TMP/new.log" "$PROG" >/dev/null 2>"$TMP/log-new.err" || true
if [ ! -s "$TMP/log-new.err" ] && [ "$(stat -c %a "$TMP/new.log")" = 600 ] \
    && grep -q ' add id=' "$TMP/new.log"; then
    pass "log: a new log file is created with mode 0600"
else
    fail "log: a new log file"; show log-new
fi
if [ "$(id -u)" = 0 ]; then
    printf 'theirs\n' >"$TMP/theirs.log"; chown nobody "$TMP/theirs.log"
    LD_PRELOAD="$LIB" SESSCACHE_LOG="$TMP/theirs.log" "$PROG" >/dev/null 2>"$TMP/log-theirs.err" || true
    if [ "$(cat "$TMP/theirs.log")" = theirs ] \
        && once "$TMP/log-theirs.err" "sesscache: SESSCACHE_LOG=.* belongs to another user"; then
        pass "log: a log file of another user is refused"
    else
        fail "log: a log file of another user"; show log-theirs
    fi
fi

finish
