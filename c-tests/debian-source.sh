# Sourced by c-tests/release-openssl.sh and c-tests/nginx/release-nginx.sh.
#
# debian_source_tarball APT_DIR SUITE PACKAGE VERSION...: prints the name of
# the upstream tarball (PACKAGE_UPSTREAM.orig.tar.gz, in the current
# directory) of the first VERSION found there or downloadable from
# Debian's SUITE, read through a private apt configuration in APT_DIR so
# that the system's apt sources stay as they are. Fails when none arrives.
debian_source_tarball() {
    local apt_dir="$1" suite="$2" package="$3" version candidate
    shift 3
    for version in "$@"; do
        candidate="${package}_${version%-*}.orig.tar.gz"
        [ -f "$candidate" ] && { echo "$candidate"; return 0; }
    done
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
    cat >"$apt_dir/sources.list" <<SOURCES
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main
SOURCES
    local apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir" -o Dir::Cache::pkgcache=
        -o Dir::Cache::srcpkgcache=)
    apt-get "${apt_opts[@]}" update -qq >&2
    for version in "$@"; do
        # The .dsc may be missing from the mirror; the upstream tarball is
        # what is needed, so a partial download is fine.
        apt-get "${apt_opts[@]}" source --download-only "$package=$version" >&2 || true
        candidate="${package}_${version%-*}.orig.tar.gz"
        [ -f "$candidate" ] && { echo "$candidate"; return 0; }
    done
    echo "no $package source of $* downloaded from $suite" >&2
    return 1
}
