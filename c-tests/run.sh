#!/usr/bin/env bash
# Differential runner for the sesscache C tests.
#
# Usage: c-tests/run.sh [--valgrind] [--libssl-dir DIR] [--plain-only]
#                       [--pass-through] [--reported-version HEX]
#                       [--build-dir DIR] [--skip PROG]...
#                       [--plain-reference PROG]...
#
# Every deterministic t_*.c program is built twice (plain: -lssl -lcrypto;
# linked: -lsesscache -lssl -lcrypto) and run three ways: plain, plain with
# LD_PRELOAD=$SESSCACHE_LIB ("preload") and linked.  The stdout of preload
# and linked must be byte-identical to plain (and the exit status equal).
# Each is preloaded three times more, also compared with plain: with
# SESSCACHE_NOT_RESUMABLE_MARKING=libssl (removed sessions marked not
# resumable through libssl on the library's marker ctx, never with the
# library's own store), with SESSCACHE_TEST_NO_MARKER_CTX=1 (through libssl
# on the application's ctx) and with SESSCACHE_TEST_WRONG_FLAG_OFFSET=1
# (the learnt place of the flag one word off: the library's check must
# catch it and fall back to libssl). t_random must report in its stats file
# that marking had become one store (src/libssl/not_resumable.rs), stayed
# with libssl under the setting, and fell back (said once on stderr) with
# the wrong place.
# t_reenter and t_bad_input run with the library only (libssl 3.0 calls
# the remove callback under its lock, so t_reenter's calls from there
# deadlock or fail; t_bad_input crashes it) under `timeout 120` and must print "done" and the reviewed
# output in c-tests/expected/; --plain-reference PROG makes the reference
# that libssl's own output instead (a release that runs the callbacks with
# no lock held, as the library does). t_stress runs in all three modes and
# must print "stress ok".
#
# c-tests/one_libssl.c must see one libssl and one libcrypto mapped, plain
# and preloaded.
#
# --libssl-dir DIR builds and runs against the libssl in DIR (headers in
# DIR/../include; deprecation warnings allowed, as newer release lines
# deprecate functions the programs use). --pass-through is for a libssl
# whose release line the library is not exact on: there it must be
# invisible. The programs preloaded and linked must print what they print
# with that libssl alone, say the pass-through line exactly once on stderr
# (and nothing else), and the program's references bind to the library's
# exports (LD_DEBUG=bindings); the runs that need the library's cache (the
# marking variants, t_reenter, t_bad_input, the bypass warning) are left out.
# --reported-version HEX makes OpenSSL_version_num() return HEX in every
# run, plain included (c-tests/reported_version.c, preloaded after the
# library and linked after it): a real libssl seen as another release.
#
# Environment: SESSCACHE_LIB  path to libsesscache.so (default
#   target/release/libsesscache.so, relative paths are taken from the repo
#   root); CC (default cc).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTDIR="$REPO/c-tests"
CC="${CC:-cc}"
VALGRIND=0
PLAIN_ONLY=0
PASS_THROUGH=0
LIBSSL_DIR=""
REPORTED_VERSION=""
BUILD="$REPO/target/c-tests"
SKIP=()
PLAIN_REFERENCE=()

while [ $# -gt 0 ]; do
    case "$1" in
    --valgrind) VALGRIND=1 ;;
    --plain-only) PLAIN_ONLY=1 ;;
    --pass-through) PASS_THROUGH=1 ;;
    --libssl-dir) shift; LIBSSL_DIR="$(cd "$1" && pwd)" ;;
    --build-dir) shift; BUILD="$1" ;;
    --skip) shift; SKIP+=("$1") ;;
    --reported-version) shift; REPORTED_VERSION="$1" ;;
    --plain-reference) shift; PLAIN_REFERENCE+=("$1") ;;
    -h|--help) sed -n '2,48p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

LIB="${SESSCACHE_LIB:-target/release/libsesscache.so}"
case "$LIB" in
/*) ;;
*) LIB="$REPO/$LIB" ;;
esac

HAVE_LIB=1
if [ ! -f "$LIB" ]; then
    HAVE_LIB=0
fi
if [ "$PLAIN_ONLY" = 1 ]; then
    HAVE_LIB=0
fi

mkdir -p "$BUILD/plain" "$BUILD/linked" "$BUILD/out"
BUILD="$(cd "$BUILD" && pwd)"

CFLAGS=(-O1 -g -Wall -Wextra -Werror)
if [ -f "$REPO/include/sesscache.h" ]; then
    CFLAGS+=(-I"$REPO/include")
else
    echo "note: $REPO/include/sesscache.h missing, compiling with an empty stub"
    mkdir -p "$BUILD/stubinc"
    : > "$BUILD/stubinc/sesscache.h"
    CFLAGS+=(-I"$BUILD/stubinc")
fi
SSL_LDFLAGS=()
if [ -n "$LIBSSL_DIR" ]; then
    if [ -d "$LIBSSL_DIR/../include/openssl" ]; then
        CFLAGS=(-I"$LIBSSL_DIR/../include" "${CFLAGS[@]}")
    fi
    CFLAGS+=(-Wno-deprecated-declarations)
    SSL_LDFLAGS=(-L"$LIBSSL_DIR")
    export LD_LIBRARY_PATH="$LIBSSL_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

. "$REPO/c-tests/report.sh"

# With --reported-version: the object that reports it, loaded after the
# library in every run (PRELOAD: what preloaded runs put in LD_PRELOAD;
# PLAIN_ENV: what plain runs get; REPORTED_LINK: linked after -lsesscache).
PRELOAD="$LIB"
PLAIN_ENV=()
REPORTED_LINK=()
if [ -n "$REPORTED_VERSION" ]; then
    reported="$BUILD/reported_version.so"
    "$CC" "${CFLAGS[@]}" -shared -fPIC -DREPORTED_VERSION="${REPORTED_VERSION}UL" \
        "$TESTDIR/reported_version.c" -o "$reported" \
        || { echo "run.sh: c-tests/reported_version.c does not build" >&2; exit 2; }
    PRELOAD="$LIB $reported"
    PLAIN_ENV=(LD_PRELOAD="$reported")
    REPORTED_LINK=(-Wl,--no-as-needed "$reported" -Wl,--as-needed)
fi

# The line the library says once on a release line it passes through.
PASS_LINE='^sesscache: the running libssl is OpenSSL [0-9.]* (0x[0-9a-f]*), not a release sesscache is exact on'

# stderr_as_plain MODE PLAIN_STDERR STDERR: in pass-through mode, the
# library's stderr is plain libssl's plus the pass-through line, once.
stderr_as_plain() {
    [ "$PASS_THROUGH" = 1 ] || return 0
    local said
    said="$(grep -c "$PASS_LINE" "$3" || true)"
    if [ "$said" != 1 ] || ! diff -u "$2" <(grep -v "$PASS_LINE" "$3"); then
        echo "--- $1: the pass-through line said $said times; stderr:"
        head -n 20 "$3"
        return 1
    fi
}

PROGS=()
for src in "$TESTDIR"/t_*.c; do
    p="$(basename "$src" .c)"
    for s in "${SKIP[@]}"; do
        [ "$s" = "$p" ] && { echo "SKIP $p"; continue 2; }
    done
    PROGS+=("$p")
done

# ---- build ----
for p in "${PROGS[@]}"; do
    if ! "$CC" "${CFLAGS[@]}" "$TESTDIR/common.c" "$TESTDIR/$p.c" \
        -o "$BUILD/plain/$p" "${SSL_LDFLAGS[@]}" -lssl -lcrypto -lpthread; then
        fail "$p build-plain"
        continue
    fi
    if [ "$HAVE_LIB" = 1 ]; then
        LIBDIR="$(dirname "$LIB")"
        if ! "$CC" "${CFLAGS[@]}" "$TESTDIR/common.c" "$TESTDIR/$p.c" \
            -o "$BUILD/linked/$p" -L"$LIBDIR" -Wl,-rpath,"$LIBDIR" -lsesscache \
            "${REPORTED_LINK[@]}" "${SSL_LDFLAGS[@]}" -lssl -lcrypto -lpthread; then
            fail "$p build-linked"
        fi
    fi
done

# run MODE PROG OUTFILE [timeout]: sets RC. MODE: plain, preload, nomarker
# (preloaded with SESSCACHE_TEST_NO_MARKER_CTX=1), publicmark (preloaded
# with SESSCACHE_NOT_RESUMABLE_MARKING=libssl), wrongoffset (preloaded with
# SESSCACHE_TEST_WRONG_FLAG_OFFSET=1), linked. Valgrind wraps preload
# runs.
run() {
    local mode="$1" p="$2" out="$3" tmo="${4:-600}"
    local -a cmd=(timeout "$tmo")
    local -a envs=("${PLAIN_ENV[@]}")
    local bin="$BUILD/plain/$p"
    case "$mode" in
    preload) envs=(LD_PRELOAD="$PRELOAD") ;;
    nomarker) envs=(SESSCACHE_TEST_NO_MARKER_CTX=1 LD_PRELOAD="$PRELOAD") ;;
    publicmark) envs=(SESSCACHE_NOT_RESUMABLE_MARKING=libssl LD_PRELOAD="$PRELOAD") ;;
    wrongoffset) envs=(SESSCACHE_TEST_WRONG_FLAG_OFFSET=1 LD_PRELOAD="$PRELOAD") ;;
    linked) bin="$BUILD/linked/$p"; envs=() ;;
    esac
    if [ "$mode" = preload ] && [ "$VALGRIND" = 1 ]; then
        # A process that exits with sessions cached (t_exit_alive) holds
        # them through the cache's hash tables, which point into their
        # blocks: "possibly lost" to valgrind, so not shown; every error and
        # every definite leak is.
        cmd+=(valgrind --error-exitcode=99 --errors-for-leak-kinds=definite
              --leak-check=full --show-possibly-lost=no -q --log-file="$out.valgrind")
    fi
    RC=0
    env "${envs[@]}" "${cmd[@]}" "$bin" >"$out" 2>"$out.stderr" || RC=$?
}

check_valgrind() {
    local p="$1" out="$2"
    if [ "$VALGRIND" = 1 ] && [ -s "$out.valgrind" ]; then
        echo "--- valgrind report for $p ($out.valgrind):"
        head -n 60 "$out.valgrind"
        return 1
    fi
    return 0
}

# Library-only programs: plain libssl deadlocks (t_reenter) or crashes
# (t_bad_input) on them.
LIBRARY_ONLY=(t_reenter t_bad_input)
is_library_only() {
    local x
    for x in "${LIBRARY_ONLY[@]}"; do [ "$x" = "$1" ] && return 0; done
    return 1
}
is_special() { is_library_only "$1" || [ "$1" = t_stress ]; }
is_plain_reference() {
    local x
    for x in "${PLAIN_REFERENCE[@]}"; do [ "$x" = "$1" ] && return 0; done
    return 1
}

# check MODE PROG LABEL WANT_RC REFERENCE MUST_PRINT [TIMEOUT]: runs PROG in
# MODE and passes LABEL when it exits with WANT_RC, prints the line
# MUST_PRINT (unless empty), prints exactly REFERENCE's contents (unless
# empty) and, preloaded under valgrind, draws no report.
check() {
    local mode="$1" p="$2" label="$3" want_rc="$4" ref="$5" must="$6" tmo="${7:-600}"
    local out="$BUILD/out/$p.$mode" ok=1
    run "$mode" "$p" "$out" "$tmo"
    if [ "$RC" != "$want_rc" ]; then
        echo "--- $label: exit status $RC, wanted $want_rc (124 = timeout, deadlock?)"
        tail -n 20 "$out" "$out.stderr"
        ok=0
    elif [ -n "$must" ] && ! grep -qx "$must" "$out"; then
        echo "--- $label: no line \"$must\" in the output"
        tail -n 30 "$out" "$out.stderr"
        ok=0
    fi
    if [ -n "$ref" ] && ! diff -u "$ref" "$out" >"$out.diff"; then
        echo "--- $label: output differs from $ref:"
        head -n 200 "$out.diff"
        ok=0
    fi
    if [ "$mode" = preload ] && ! check_valgrind "$p" "$out"; then
        ok=0
    fi
    if [ -n "$ref" ] && [ -f "$ref.stderr" ] && ! stderr_as_plain "$label" "$ref.stderr" "$out.stderr"; then
        ok=0
    fi
    if [ "$ok" = 1 ]; then pass "$label"; else fail "$label"; fi
}

built() { [ "$1" = linked ] && [ -x "$BUILD/linked/$2" ] || { [ "$1" != linked ] && [ -x "$BUILD/plain/$2" ]; }; }

# ---- deterministic programs: preloaded and linked print exactly what plain
# libssl prints and exit as it does ----
for p in "${PROGS[@]}"; do
    is_special "$p" && continue
    built plain "$p" || continue
    base="$BUILD/out/$p"
    run plain "$p" "$base.plain"
    plain_rc=$RC
    if [ "$plain_rc" != 0 ]; then
        fail "$p plain (exit $plain_rc)"
        tail -n 20 "$base.plain" "$base.plain.stderr"
        continue
    fi
    [ "$HAVE_LIB" = 1 ] || { pass "$p plain"; continue; }
    for mode in preload linked; do
        built "$mode" "$p" || continue
        check "$mode" "$p" "$p $mode" "$plain_rc" "$base.plain" ""
    done
done

# ---- the same programs preloaded three times more, marking removed
# sessions through libssl only: on the marker ctx (the path taken until
# libssl has shown where it keeps the flag, and the operator's setting), on
# the application's ctx (the path taken when the library could not make its
# marker ctx), and after a learnt place that failed its check. stdout must
# again equal plain libssl's ----
if [ "$HAVE_LIB" = 1 ] && [ "$PASS_THROUGH" = 0 ]; then
    for mode in publicmark nomarker wrongoffset; do
        case "$mode" in
        publicmark) what="marking through libssl" ;;
        nomarker) what="no marker ctx" ;;
        wrongoffset) what="wrong flag offset caught" ;;
        esac
        for p in "${PROGS[@]}"; do
            is_special "$p" && continue
            [ -f "$BUILD/out/$p.plain" ] || continue
            check "$mode" "$p" "$p preload, $what" 0 "$BUILD/out/$p.plain" ""
        done
    done
fi

# ---- removed sessions are marked with one store once libssl has shown
# where its flag is (t_random removes, expires and flushes thousands), only
# through libssl under the operator's setting, and through libssl again
# once a wrong place failed its check (said once on stderr) ----
if [ "$HAVE_LIB" = 1 ] && [ "$PASS_THROUGH" = 0 ] && [ -x "$BUILD/plain/t_random" ]; then
    fallback_said='^sesscache: the learnt place of libssl.s not_resumable flag failed its check'
    for want in 'store_at_[0-9]*' libssl 'libssl_check_failed_at_[0-9]*'; do
        case "$want" in
        store*) name=store; envs=() ;;
        libssl) name=libssl; envs=(SESSCACHE_NOT_RESUMABLE_MARKING=libssl) ;;
        *) name=check_failed; envs=(SESSCACHE_TEST_WRONG_FLAG_OFFSET=1) ;;
        esac
        stats="$BUILD/out/t_random.stats.$name"
        rm -rf "$stats" && mkdir -m 755 -p "$stats"
        env "${envs[@]}" SESSCACHE_STATS="$stats" LD_PRELOAD="$PRELOAD" "$BUILD/plain/t_random" \
            >"$stats/out" 2>"$stats/err" || true
        got="$(sed -n 's/^not_resumable_marking=//p' "$stats"/sesscache.*.stats 2>/dev/null | head -n 1 || true)"
        said="$(grep -c "$fallback_said" "$stats/err" || true)"
        [ "$name" = check_failed ] && want_said=1 || want_said=0
        # shellcheck disable=SC2053 # $want is a pattern
        if [[ "$got" == $want ]] && [ "$said" = "$want_said" ]; then
            pass "t_random marking: $got"
        else
            echo "--- t_random: not_resumable_marking='$got' (wanted $want), fallback said $said times:"
            cat "$stats/err"
            fail "t_random marking ($name)"
        fi
    done
fi

# ---- library-only programs: must finish, print "done", and print exactly
# the reviewed output in c-tests/expected/ (no plain libssl to compare
# with: the reviewed output is the oracle), or, for those named with
# --plain-reference (a libssl that runs them as the library does), what
# that libssl prints ----
for p in "${LIBRARY_ONLY[@]}"; do
    [ "$HAVE_LIB" = 1 ] && [ "$PASS_THROUGH" = 0 ] || continue
    ref="$TESTDIR/expected/$p.out"
    if is_plain_reference "$p"; then
        ref="$BUILD/out/$p.plain"
        check plain "$p" "$p plain (the reference)" 0 "" done 120
    fi
    for mode in preload linked; do
        built "$mode" "$p" || continue
        check "$mode" "$p" "$p $mode" 0 "$ref" done 120
    done
done

# ---- t_stress: all modes ----
modes=(plain)
[ "$HAVE_LIB" = 1 ] && modes+=(preload linked)
for mode in "${modes[@]}"; do
    built "$mode" t_stress || continue
    check "$mode" t_stress "t_stress $mode" 0 "" "stress ok" 300
done

# ---- the library in whole processes ----
if [ "$HAVE_LIB" = 1 ]; then
    # A process that never uses TLS: same output, nothing on stderr.
    out="$BUILD/out/no_tls"
    if LD_PRELOAD="$LIB" sh -c 'echo untouched; exit 3' >"$out" 2>"$out.stderr"; then
        RC=0
    else
        RC=$?
    fi
    if [ "$RC" = 3 ] && [ "$(cat "$out")" = untouched ] && [ ! -s "$out.stderr" ]; then
        pass "non-TLS process unaffected"
    else
        fail "non-TLS process unaffected (exit $RC)"; cat "$out.stderr"
    fi

    # One libssl and one libcrypto mapped, with the library as without it;
    # in pass-through mode the program's own references (of the libssl's
    # symbol version) bind to the library's exports.
    one="$BUILD/plain/one_libssl"
    if "$CC" "${CFLAGS[@]}" "$TESTDIR/one_libssl.c" -o "$one" "${SSL_LDFLAGS[@]}" -lssl -lcrypto; then
        env "${PLAIN_ENV[@]}" "$one" >"$BUILD/out/one_libssl.plain" 2>&1 || true
        LD_PRELOAD="$PRELOAD" LD_BIND_NOW=1 LD_DEBUG=bindings LD_DEBUG_OUTPUT="$BUILD/out/one_libssl.bindings" \
            "$one" >"$BUILD/out/one_libssl.preload" 2>"$BUILD/out/one_libssl.preload.stderr" || true
        bound="$(cat "$BUILD/out/one_libssl.bindings".* 2>/dev/null \
            | grep -c "binding file $one .* to $LIB .*normal symbol .SSL_CTX_new'" || true)"
        rm -f "$BUILD/out/one_libssl.bindings".*
        if grep -qx 'libssl objects mapped: 1' "$BUILD/out/one_libssl.preload" \
            && grep -qx 'libcrypto objects mapped: 1' "$BUILD/out/one_libssl.preload" \
            && diff -u "$BUILD/out/one_libssl.plain" "$BUILD/out/one_libssl.preload" \
            && [ "$bound" -ge 1 ] \
            && stderr_as_plain one_libssl /dev/null "$BUILD/out/one_libssl.preload.stderr"; then
            pass "one libssl mapped, SSL_CTX_new bound to the library"
        else
            fail "one libssl mapped, SSL_CTX_new bound to the library (bindings: $bound)"
            cat "$BUILD/out/one_libssl.preload" "$BUILD/out/one_libssl.preload.stderr"
        fi
    else
        fail "one_libssl build"
    fi
fi

if [ "$HAVE_LIB" = 1 ] && [ "$PASS_THROUGH" = 0 ]; then
    # Linked after libssl: libssl's SSL_CTX_new wins, and the library says
    # so once on stderr; linked before: silence.
    LIBDIR="$(dirname "$LIB")"
    bypassed="$BUILD/linked/t_callbacks_bypassed"
    if "$CC" "${CFLAGS[@]}" "$TESTDIR/common.c" "$TESTDIR/t_callbacks.c" -o "$bypassed" \
        "${SSL_LDFLAGS[@]}" -lssl -lcrypto -Wl,--no-as-needed -L"$LIBDIR" -Wl,-rpath,"$LIBDIR" \
        -lsesscache -lpthread; then
        "$bypassed" >"$BUILD/out/bypassed" 2>"$BUILD/out/bypassed.stderr" || true
        "$BUILD/linked/t_callbacks" >/dev/null 2>"$BUILD/out/not_bypassed.stderr" || true
        if [ "$(grep -c 'sesscache: loaded, but' "$BUILD/out/bypassed.stderr")" = 1 ] \
            && [ ! -s "$BUILD/out/not_bypassed.stderr" ]; then
            pass "bypassed library is reported once"
        else
            fail "bypassed library is reported once"
            cat "$BUILD/out/bypassed.stderr" "$BUILD/out/not_bypassed.stderr"
        fi
    else
        fail "bypassed build"
    fi
fi

if [ "$HAVE_LIB" = 0 ] && [ "$PLAIN_ONLY" = 0 ]; then
    echo "library not found at $LIB: only plain libssl was run, nothing was compared"
    finish
    exit 1
fi
finish
