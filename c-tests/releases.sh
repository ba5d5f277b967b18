#!/usr/bin/env bash
# Runs the C differential tests against each libssl release line and link
# style of c-tests/releases.txt, and writes README's compatibility table
# from the same file.
#
# Usage: c-tests/releases.sh [--no-valgrind] [SELECTOR]...
#        c-tests/releases.sh --list [SELECTOR]...
#        c-tests/releases.sh --table
#        c-tests/releases.sh --check-readme | --update-readme
#
# A SELECTOR is a line (3.5), a link style (-Bsymbolic) or both
# (3.5/-Bsymbolic); none selects every entry. For each entry: the libssl
# (the machine's, or built once by c-tests/release-openssl.sh), its link
# style checked with readelf -d, its release line checked with
# OpenSSL_version_num(), the library's own decision (serve or pass
# through, said on stderr) checked against the entry, then c-tests/run.sh
# --valgrind with the entry's skips (exact) or --pass-through. Every entry
# runs; the exit status is 1 when any failed.
#
# Environment: SESSCACHE_LIB  path to libsesscache.so (default
#   target/release/libsesscache.so); CC (default cc).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MATRIX="$REPO/c-tests/releases.txt"
README="$REPO/README.md"
CC="${CC:-cc}"
TABLE_BEGIN='<!-- compatibility table: generated from c-tests/releases.txt by c-tests/releases.sh --update-readme -->'
TABLE_END='<!-- end of compatibility table -->'
# The line the library says once on a release line it passes through.
PASS_LINE='^sesscache: the running libssl is OpenSSL [0-9.]* (0x[0-9a-f]*), not a release sesscache is exact on'

die() { echo "releases.sh: $*" >&2; exit 2; }

# ---- the matrix ----
E_LINE=() E_LINK=() E_LIBSSL=() E_EXPECT=()
S_SCOPE=() S_PROG=() S_CAUSE=()
D_SCOPE=() D_CAUSE=()
P_SCOPE=() P_PROG=() P_CAUSE=()
n=0
while read -r kind rest; do
    n=$((n + 1))
    case "$kind" in
    '' | '#'*) continue ;;
    release)
        read -r line link libssl expect extra <<<"$rest"
        [ -n "$expect" ] && [ -z "${extra:-}" ] || die "$MATRIX:$n: release LINE LINK LIBSSL EXPECT"
        case "$link" in interposable | -Bsymbolic) ;; *) die "$MATRIX:$n: link style $link" ;; esac
        case "$expect" in exact | pass-through) ;; *) die "$MATRIX:$n: expectation $expect" ;; esac
        E_LINE+=("$line") E_LINK+=("$link") E_LIBSSL+=("$libssl") E_EXPECT+=("$expect")
        ;;
    skip)
        read -r scope prog cause <<<"$rest"
        [ -n "$cause" ] || die "$MATRIX:$n: skip SCOPE PROGRAM CAUSE"
        [ -f "$REPO/c-tests/$prog.c" ] || die "$MATRIX:$n: no program c-tests/$prog.c"
        S_SCOPE+=("$scope") S_PROG+=("$prog") S_CAUSE+=("$cause")
        ;;
    plain-reference)
        read -r scope prog cause <<<"$rest"
        [ -n "$cause" ] || die "$MATRIX:$n: plain-reference SCOPE PROGRAM CAUSE"
        [ -f "$REPO/c-tests/$prog.c" ] || die "$MATRIX:$n: no program c-tests/$prog.c"
        P_SCOPE+=("$scope") P_PROG+=("$prog") P_CAUSE+=("$cause")
        ;;
    differs)
        read -r scope cause <<<"$rest"
        [ -n "$cause" ] || die "$MATRIX:$n: differs SCOPE CAUSE"
        D_SCOPE+=("$scope") D_CAUSE+=("$cause")
        ;;
    *) die "$MATRIX:$n: unknown kind $kind" ;;
    esac
done <"$MATRIX"

# in_scope SCOPE I: whether SCOPE (a line, a link style or LINE/LINK, or
# several of those joined by commas) names entry I.
in_scope() {
    local one
    local -a scopes
    IFS=, read -ra scopes <<<"$1"
    for one in "${scopes[@]}"; do
        case "$one" in
        "${E_LINE[$2]}" | "${E_LINK[$2]}" | "${E_LINE[$2]}/${E_LINK[$2]}") return 0 ;;
        esac
    done
    return 1
}

# notes_of SCOPES I: the indexes into SCOPES (the name of S_SCOPE, P_SCOPE
# or D_SCOPE: the skips, the plain references or the documented
# differences) whose scope takes in entry I; none for a pass-through entry.
notes_of() {
    [ "${E_EXPECT[$2]}" = exact ] || return 0
    local -n scopes="$1"
    local n
    for n in "${!scopes[@]}"; do
        in_scope "${scopes[$n]}" "$2" && echo "$n"
    done
    return 0
}
skips_of() { notes_of S_SCOPE "$1"; }
plain_references_of() { notes_of P_SCOPE "$1"; }
differs_of() { notes_of D_SCOPE "$1"; }

# built_of I / reported_of I: entry I's LIBSSL is BUILT or BUILT:VERSION
# (the libssl, and the OpenSSL_version_num() it is made to report).
built_of() { echo "${E_LIBSSL[$1]%%:*}"; }
reported_of() { case "${E_LIBSSL[$1]}" in *:*) echo "${E_LIBSSL[$1]#*:}" ;; esac; }

# ---- README's table ----
table() {
    echo '| OpenSSL | libssl linked | libssl under test | sesscache | differences from libssl (cause) |'
    echo '|---|---|---|---|---|'
    local i s d where serves diffs
    for i in "${!E_LINE[@]}"; do
        if [ "$(built_of "$i")" = system ]; then
            where="the machine's (Debian 12)"
        else
            where="\`c-tests/release-openssl.sh $(built_of "$i")\`"
        fi
        if [ -n "$(reported_of "$i")" ]; then
            local v=$(($(reported_of "$i")))
            where+=", reporting OpenSSL $((v >> 28)).$(((v >> 20) & 0xff)).$(((v >> 4) & 0xff)) (\`c-tests/reported_version.c\`)"
        fi
        diffs=""
        if [ "${E_EXPECT[$i]}" = exact ]; then
            serves="exact"
            for s in $(skips_of "$i"); do
                diffs="${diffs:+$diffs; }${S_CAUSE[$s]} (\`${S_PROG[$s]}\` skipped)"
            done
            for d in $(differs_of "$i"); do
                diffs="${diffs:+$diffs; }${D_CAUSE[$d]}"
            done
            [ -n "$diffs" ] || diffs="none"
        else
            serves="passes through"
            diffs="none: every call goes to libssl's own cache, said once on stderr"
        fi
        echo "| ${E_LINE[$i]} | ${E_LINK[$i]} | $where | $serves | $diffs |"
    done
}

# README with the table between its markers replaced by FILE's contents.
readme_with_table() {
    local begin end
    begin="$(grep -cxF -- "$TABLE_BEGIN" "$README" || true)"
    end="$(grep -cxF -- "$TABLE_END" "$README" || true)"
    [ "$begin" = 1 ] && [ "$end" = 1 ] || die "README.md: wants one line each of $TABLE_BEGIN and $TABLE_END"
    awk -v begin="$TABLE_BEGIN" -v end="$TABLE_END" -v table="$1" '
        $0 == begin { print; while ((getline l < table) > 0) print l; skip = 1; next }
        $0 == end { skip = 0 }
        !skip { print }' "$README"
}

case "${1:-}" in
--table) table; exit 0 ;;
--check-readme | --update-readme)
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    table >"$tmp/table"
    readme_with_table "$tmp/table" >"$tmp/README.md"
    if [ "$1" = --update-readme ]; then
        cat "$tmp/README.md" >"$README"
    elif ! diff -u "$README" "$tmp/README.md"; then
        echo "README.md's compatibility table is not the one c-tests/releases.txt gives: run c-tests/releases.sh --update-readme" >&2
        exit 1
    fi
    exit 0
    ;;
esac

VALGRIND=(--valgrind)
LIST=0
SELECT=()
while [ $# -gt 0 ]; do
    case "$1" in
    --no-valgrind) VALGRIND=() ;;
    --list) LIST=1 ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    --*) die "unknown option $1" ;;
    *) SELECT+=("$1") ;;
    esac
    shift
done

selected=()
for i in "${!E_LINE[@]}"; do
    if [ ${#SELECT[@]} = 0 ]; then selected+=("$i"); continue; fi
    for sel in "${SELECT[@]}"; do
        in_scope "$sel" "$i" && { selected+=("$i"); break; }
    done
done
[ ${#selected[@]} -gt 0 ] || die "no entry of $MATRIX matches ${SELECT[*]}"

if [ "$LIST" = 1 ]; then
    for i in "${selected[@]}"; do
        echo "${E_LINE[$i]} ${E_LINK[$i]} ${E_LIBSSL[$i]} ${E_EXPECT[$i]}$(for s in $(skips_of "$i"); do printf ' skip=%s' "${S_PROG[$s]}"; done)$(for r in $(plain_references_of "$i"); do printf ' plain-reference=%s' "${P_PROG[$r]}"; done)"
    done
    exit 0
fi

LIB="${SESSCACHE_LIB:-target/release/libsesscache.so}"
case "$LIB" in /*) ;; *) LIB="$REPO/$LIB" ;; esac
[ -f "$LIB" ] || die "no library at $LIB (make build)"
export SESSCACHE_LIB="$LIB"

# check_entry I BUILD DIR: the libssl of entry I (in DIR, or the machine's;
# reporting the entry's version, if it names one) is of the entry's line
# and link style, and the library decides as the entry says. Prints what
# it found.
check_entry() {
    local i="$1" build="$2" dir="$3" one="$2/decision/one_libssl"
    local -a cflags=() ldflags=() preload=()
    mkdir -p "$build/decision"
    if [ -n "$dir" ]; then
        cflags=(-I"$dir/../include" -Wno-deprecated-declarations)
        ldflags=(-L"$dir")
    fi
    "$CC" -O1 -Wall "${cflags[@]}" "$REPO/c-tests/one_libssl.c" -o "$one" "${ldflags[@]}" -lssl -lcrypto \
        || { echo "--- one_libssl does not build"; return 1; }
    if [ -n "$(reported_of "$i")" ]; then
        "$CC" -O1 -Wall "${cflags[@]}" -shared -fPIC -DREPORTED_VERSION="$(reported_of "$i")UL" \
            "$REPO/c-tests/reported_version.c" -o "$build/decision/reported_version.so" \
            || { echo "--- reported_version.c does not build"; return 1; }
        preload=("$build/decision/reported_version.so")
    fi
    local so
    so="$(LD_LIBRARY_PATH="$dir" ldd "$one" | awk '$1 ~ /^libssl\.so/ { print $3 }')"
    [ -f "$so" ] || { echo "--- no libssl found for $one"; return 1; }
    local symbolic=interposable
    readelf -d "$so" | grep -q SYMBOLIC && symbolic=-Bsymbolic
    local version
    version="$(LD_LIBRARY_PATH="$dir" LD_PRELOAD="${preload[*]}" "$one" | sed -n 's/^OpenSSL_version_num //p')"
    local line
    line="$(( (version >> 28) & 0xf )).$(( (version >> 20) & 0xff ))"
    LD_LIBRARY_PATH="$dir" LD_PRELOAD="$LIB ${preload[*]}" "$one" >"$build/decision/out" 2>"$build/decision/err" \
        || { echo "--- one_libssl preloaded failed:"; cat "$build/decision/err"; return 1; }
    local decided=exact
    grep -q "$PASS_LINE" "$build/decision/err" && decided=pass-through
    echo "libssl $so: OpenSSL $line ($version), $symbolic; the library: $decided"
    local ok=0
    [ "$line" = "${E_LINE[$i]}" ] || { echo "--- the entry says OpenSSL ${E_LINE[$i]}"; ok=1; }
    [ "$symbolic" = "${E_LINK[$i]}" ] || { echo "--- the entry says ${E_LINK[$i]}"; ok=1; }
    if [ "$decided" != "${E_EXPECT[$i]}" ]; then
        echo "--- the entry says ${E_EXPECT[$i]}, the library decided $decided (stderr:)"
        cat "$build/decision/err"
        ok=1
    fi
    return "$ok"
}

results=()
failed=0
for i in "${selected[@]}"; do
    name="${E_LINE[$i]} ${E_LINK[$i]} ($(built_of "$i"))"
    start=$SECONDS
    echo "== OpenSSL $name (${E_EXPECT[$i]})"
    build="$REPO/target/c-tests-release-$(built_of "$i")$(reported_of "$i" | sed 's/^./-as-&/')"
    dir=""
    if [ "$(built_of "$i")" != system ]; then
        if ! dir="$("$REPO/c-tests/release-openssl.sh" "$(built_of "$i")")"; then
            results+=("FAIL $name: c-tests/release-openssl.sh $(built_of "$i") failed")
            failed=1
            continue
        fi
    fi
    built=$((SECONDS - start))
    args=(--build-dir "$build")
    [ -n "$dir" ] && args+=(--libssl-dir "$dir")
    [ -n "$(reported_of "$i")" ] && args+=(--reported-version "$(reported_of "$i")")
    if [ "${E_EXPECT[$i]}" = exact ]; then
        args+=("${VALGRIND[@]}")
        for s in $(skips_of "$i"); do args+=(--skip "${S_PROG[$s]}"); done
        for r in $(plain_references_of "$i"); do args+=(--plain-reference "${P_PROG[$r]}"); done
    else
        args+=(--pass-through)
    fi
    status=PASS
    check_entry "$i" "$build" "$dir" || status=FAIL
    echo "c-tests/run.sh ${args[*]}"
    "$REPO/c-tests/run.sh" "${args[@]}" || status=FAIL
    [ "$status" = PASS ] || failed=1
    results+=("$status $name (${E_EXPECT[$i]}): $((SECONDS - start - built)) s tests${dir:+, $built s to get the libssl}")
done

echo "== release lines"
printf '%s\n' "${results[@]}"
exit "$failed"
