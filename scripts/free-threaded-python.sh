#!/usr/bin/env bash
# Build a free-threaded CPython 3.13 (--disable-gil) from Debian's own
# python3.13 source package and install it into a cache directory.
#
# Usage: scripts/free-threaded-python.sh
#   RESILIENCE_FT_PREFIX  install prefix
#                         (default: $HOME/.cache/resilience-rs/python3.13t)
#
# The last line on stdout is the absolute path of the interpreter, so callers
# can do:  PY=$(scripts/free-threaded-python.sh | tail -n 1)
# Everything else (progress, errors) goes to stderr.
#
# python3.13 is not in Debian 12 (bookworm), so the source package is fetched
# from trixie through a deb-src-only apt entry; the archive URI is taken from
# the machine's existing apt configuration (only the Debian archive may be
# reachable, so no host is hard-coded here). Build dependencies come from the
# native suite, never from trixie.
set -euo pipefail

readonly PY_VERSION=3.13
readonly SRC_PACKAGE="python${PY_VERSION}"
readonly SRC_SUITE=trixie
readonly TRIXIE_SOURCES=/etc/apt/sources.list.d/resilience-trixie-src.sources

PREFIX=${RESILIENCE_FT_PREFIX:-$HOME/.cache/resilience-rs/python${PY_VERSION}t}
[[ $PREFIX == /* ]] || PREFIX=$PWD/$PREFIX   # the printed path must be absolute
PYTHON="$PREFIX/bin/python${PY_VERSION}t"
# Written only after verification succeeds, so a half-finished install
# (interrupted `make install`) is never mistaken for a usable one.
STAMP="$PREFIX/.resilience-build-ok"
LOG="${PREFIX}.build.log"
WORK_DIR=""
ADDED_SOURCES=0

# Packages a CPython build needs for ssl, ctypes, sqlite3, lzma, bz2, zlib,
# readline, curses, dbm and uuid (plus the tools to fetch/unpack the source).
readonly BUILD_DEPS=(
    build-essential pkg-config dpkg-dev xz-utils ca-certificates
    libssl-dev zlib1g-dev libbz2-dev libffi-dev liblzma-dev libsqlite3-dev
    libreadline-dev libncurses-dev uuid-dev libgdbm-dev libgdbm-compat-dev
)

log() { printf '[free-threaded-python] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Run a noisy command with its output appended to $LOG; on failure show the
# tail of the log so CI output says what went wrong.
run_logged() {
    if ! "$@" >>"$LOG" 2>&1; then
        log "command failed: $*"
        log "last 50 lines of $LOG:"
        tail -n 50 "$LOG" >&2
        exit 1
    fi
}

# Root in CI; elsewhere fall back to sudo when it exists.
SUDO=()
setup_privileges() {
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "not root and sudo is not available"
        SUDO=(sudo)
    fi
}

apt_get() {
    run_logged "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 "$@"
}

cleanup() {
    # Drop the trixie entry again so later `apt-get update`s stay as before.
    if [[ $ADDED_SOURCES -eq 1 ]]; then
        "${SUDO[@]}" rm -f "$TRIXIE_SOURCES" || true
    fi
    if [[ -n $WORK_DIR && -d $WORK_DIR ]]; then
        rm -rf "$WORK_DIR"
    fi
}

# True if $1 is a working free-threaded interpreter.
is_free_threaded() {
    [[ -x $1 ]] && env -u PYTHON_GIL "$1" -c \
        'import sys; assert not sys._is_gil_enabled()' >/dev/null 2>&1
}

native_codename() {
    local codename=""
    # shellcheck disable=SC1091  # os-release is always present on Debian
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
    [[ -n $codename ]] || die "cannot determine the Debian codename"
    printf '%s\n' "$codename"
}

# Print "URI SIGNED_BY" of the main Debian archive: the first enabled deb
# entry whose suite is exactly the native codename (so the security archive,
# whose suite is "<codename>-security", is not picked). SIGNED_BY is "-" when
# absent or not a plain keyring path.
find_archive() {
    local codename=$1 found="" f
    shopt -s nullglob
    for f in /etc/apt/sources.list.d/*.sources; do
        found=$(awk -v cn="$codename" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = suites = uris = ""; signed = "-"; enabled = 1
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[ \t]*#/) continue
                    key = tolower(line); sub(/:.*/, "", key)
                    val = line; sub(/^[^:]*:[ \t]*/, "", val)
                    if (key == "types") types = " " val " "
                    else if (key == "suites") suites = " " val " "
                    else if (key == "uris") uris = val
                    else if (key == "signed-by" && val ~ /^\//) signed = val
                    else if (key == "enabled" && tolower(val) ~ /^no/) enabled = 0
                }
                gsub(/[ \t]+/, " ", suites)
                if (enabled && types ~ / deb / && index(suites, " " cn " ") && uris != "") {
                    split(uris, u, /[ \t]+/)
                    print u[1], signed
                    exit
                }
            }' "$f")
        [[ -n $found ]] && break
    done
    shopt -u nullglob
    # One-line format: deb [options] URI SUITE COMPONENTS...
    if [[ -z $found && -r /etc/apt/sources.list ]]; then
        found=$(awk -v cn="$codename" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == cn) { print $i, "-"; exit }
            }' /etc/apt/sources.list)
    fi
    [[ -n $found ]] || die "no apt entry for suite '$codename' found to derive the archive URI from"
    printf '%s\n' "$found"
}

# Add a deb-src-only entry for trixie (no trixie binaries can be installed
# from it), pointing at the same archive the machine already uses.
add_trixie_sources() {
    local codename archive uri signed_by
    codename=$(native_codename)
    archive=$(find_archive "$codename")
    read -r uri signed_by <<<"$archive"
    log "using archive $uri for $SRC_SUITE sources"
    {
        echo "# Added by resilience-rs scripts/free-threaded-python.sh (source only)."
        echo "Types: deb-src"
        echo "URIs: $uri"
        echo "Suites: $SRC_SUITE"
        echo "Components: main"
        if [[ $signed_by != "-" ]]; then echo "Signed-By: $signed_by"; fi
    } | "${SUDO[@]}" tee "$TRIXIE_SOURCES" >/dev/null
    ADDED_SOURCES=1
}

install_build_deps() {
    log "apt-get update"
    apt_get update
    log "installing build dependencies"
    apt_get install -y --no-install-recommends "${BUILD_DEPS[@]}"
}

# Download and unpack the Debian source package; print the tree's path.
fetch_source() {
    log "downloading $SRC_PACKAGE source from $SRC_SUITE"
    (cd "$WORK_DIR" && run_logged apt-get source --download-only "$SRC_PACKAGE")
    local dsc
    dsc=$(find "$WORK_DIR" -maxdepth 1 -name "${SRC_PACKAGE}_*.dsc" | head -n 1)
    [[ -n $dsc ]] || die "no .dsc downloaded for $SRC_PACKAGE"
    log "unpacking $(basename "$dsc")"
    # Pristine upstream tree: Debian's patches change the install layout for
    # /usr, which is not what a private --prefix install wants.
    run_logged dpkg-source --skip-patches -x "$dsc" "$WORK_DIR/src"
}

build_and_install() {
    local src=$WORK_DIR/src
    # Invalidate any previous install until this one is verified.
    rm -f "$STAMP"
    log "configure --disable-gil --prefix=$PREFIX"
    (cd "$src" && run_logged ./configure --disable-gil --prefix="$PREFIX" \
        --with-ensurepip=install)
    log "make -j$(nproc) (a few minutes)"
    (cd "$src" && run_logged make -j"$(nproc)")
    log "make install"
    (cd "$src" && run_logged make install)
    [[ -x $PYTHON ]] || die "$PYTHON was not installed"
    # Stable name that does not change with the minor version.
    ln -sfn "python${PY_VERSION}t" "$PREFIX/bin/python3t"
}

verify() {
    log "verifying $PYTHON"
    is_free_threaded "$PYTHON" || die "$PYTHON does not run with the GIL disabled"
    env -u PYTHON_GIL "$PYTHON" -c \
        'import ssl, ctypes, sqlite3, lzma, bz2, zlib, readline, venv' \
        || die "$PYTHON is missing standard modules (see $LOG)"
    local venv_dir=$WORK_DIR/venv-check
    run_logged "$PYTHON" -m venv "$venv_dir"
    is_free_threaded "$venv_dir/bin/python" || die "venv from $PYTHON is not free-threaded"
    touch "$STAMP"
}

main() {
    if [[ -e $STAMP ]] && is_free_threaded "$PYTHON"; then
        log "reusing $PYTHON"
        printf '%s\n' "$PYTHON"
        exit 0
    fi

    local start=$SECONDS parent
    parent=$(dirname "$PREFIX")
    mkdir -p "$parent"
    : >"$LOG"
    log "building free-threaded Python $PY_VERSION into $PREFIX (log: $LOG)"

    setup_privileges
    WORK_DIR=$(mktemp -d "$parent/build.XXXXXX")
    trap cleanup EXIT

    add_trixie_sources
    install_build_deps
    fetch_source
    build_and_install
    verify

    log "done in $((SECONDS - start))s: $(env -u PYTHON_GIL "$PYTHON" -VV)"
    printf '%s\n' "$PYTHON"
}

main "$@"
