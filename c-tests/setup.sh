#!/usr/bin/env bash
# Installs what building (`make demo`, `make check`) or testing (`make test`,
# `make bench`) needs on Debian 12, and nothing that is already there:
# Debian packages checked with dpkg-query, installed with apt-get (as root,
# through sudo otherwise), and cargo's rustfmt and clippy (rustup).
#
#   c-tests/setup.sh build|test            install what is missing
#   c-tests/setup.sh --missing build|test  only print what is missing
#
# Instead of (or beside) build/test, package names may be given.
set -euo pipefail

# cc, make, the headers and pkg-config that openssl-sys and the C tests use.
BUILD_PACKAGES=(build-essential pkg-config libssl-dev)
# What the tests and benchmarks call: openssl (certificates), valgrind
# (memcheck, callgrind), git (header freshness), python3 (bench summary),
# nginx, haproxy, apache2 (its apache2-bin has mod_ssl and mod_lua),
# redis-server (with redis-cli), procps (pgrep, ps), gnuplot-nox (bench
# figures), dpkg-dev and fakeroot (make deb), perl (OpenSSL's Configure,
# make test-releases), libpcre2-dev (nginx built against OpenSSL 4.0, make
# test-nginx-releases).
TEST_PACKAGES=("${BUILD_PACKAGES[@]}" openssl valgrind git python3 nginx haproxy apache2
    redis-server procps gnuplot-nox dpkg-dev fakeroot perl libpcre2-dev)

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
die() { echo "setup: $*" >&2; exit 2; }

# The named packages that dpkg does not know as installed.
missing_packages() {
    local pkg
    for pkg in "$@"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] \
            || echo "$pkg"
    done
}

# As root: install the named packages without starting their services.
# nginx, apache2, haproxy and redis-server would start system daemons
# (nginx and apache2 on port 80); the tests start their own on 127.0.0.1 and
# free ports, so service starts are refused while the packages install.
install_as_root() {
    [ "$(id -u)" = 0 ] || die "--install needs root"
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@"
}

only_print=0
packages=()
while [ $# -gt 0 ]; do
    case "$1" in
    --missing) only_print=1 ;;
    --install) shift; install_as_root "$@"; exit 0 ;;
    build) packages+=("${BUILD_PACKAGES[@]}") ;;
    test) packages+=("${TEST_PACKAGES[@]}") ;;
    -h|--help) sed -n '2,10p' "$SELF"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) packages+=("$1") ;;
    esac
    shift
done
[ ${#packages[@]} -gt 0 ] || die "usage: $SELF [--missing] build|test|PACKAGE..."
command -v dpkg-query >/dev/null || die "dpkg-query not found: this set-up is for Debian"

mapfile -t missing < <(missing_packages "${packages[@]}" | sort -u)
if [ "$only_print" = 1 ]; then
    [ ${#missing[@]} -eq 0 ] || printf '%s\n' "${missing[@]}"
    exit 0
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    if [ "$(id -u)" = 0 ]; then
        install_as_root "${missing[@]}"
    elif command -v sudo >/dev/null; then
        sudo -- "$SELF" --install "${missing[@]}"
    else
        die "missing ${missing[*]}: run as root, or install sudo"
    fi
fi

command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"
# make lint runs cargo fmt and cargo clippy; rustup installs them as
# components of the toolchain in use (as this user, never through sudo).
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || die "cargo fmt or cargo clippy missing, and no rustup to add them"
    rustup component add rustfmt clippy
fi
