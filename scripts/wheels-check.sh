#!/usr/bin/env bash
# Install each built wheel the way a user does, into a fresh venv with no build tools in reach,
# and smoke-test it from outside the source tree. Optionally also: the sdist (built from source
# in its own fresh venv), `auditwheel show`, and `twine check`.
#
# Usage: scripts/wheels-check.sh [options]
#   --dist DIR          where the wheels (and the sdist) are (default: dist)
#   --python PY         an interpreter to test with (repeatable; GIL or free-threaded);
#                       default: every GIL CPython 3.10-3.14 found on PATH or under pyenv, and
#                       the one scripts/free-threaded-python.sh prints when DIST has a cp3XXt wheel
#   --no-discover       test only the interpreters given with --python
#   --require-all       fail unless every wheel in DIST was installed by some interpreter
#   --sdist             also pip-install the sdist into a fresh venv (needs the Rust toolchain)
#                       and smoke-test that
#   --audit             run `auditwheel show` on the Linux wheels and require a manylinux tag
#                       of glibc 2.28 or older that matches the file name
#   --twine             run `twine check --strict` on everything in DIST
#   --extras LIST       comma-separated extras the metadata must provide (default: the keys of
#                       [project.optional-dependencies] in pyproject.toml)
#
# Tools come from PATH (auditwheel, twine). Exits non-zero on the first broken wheel.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST=dist
GIVEN_PYTHONS=()
GIL_PYTHONS=()
FT_PYTHONS=()
DISCOVER=1
REQUIRE_ALL=0
CHECK_SDIST=0
AUDIT=0
TWINE=0
EXTRAS=""

while (($#)); do
    case $1 in
    --dist) DIST=$2; shift 2 ;;
    --python) GIVEN_PYTHONS+=("$2"); shift 2 ;;
    --no-discover) DISCOVER=0; shift ;;
    --require-all) REQUIRE_ALL=1; shift ;;
    --sdist) CHECK_SDIST=1; shift ;;
    --audit) AUDIT=1; shift ;;
    --twine) TWINE=1; shift ;;
    --extras) EXTRAS=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "wheels-check: unknown option $1" >&2; exit 2 ;;
    esac
done

log() { printf '[wheels-check] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -d $DIST ]] || die "no $DIST/ directory: run 'make wheels' first"
DIST=$(cd "$DIST" && pwd)
shopt -s nullglob
WHEELS=("$DIST"/*.whl)
SDISTS=("$DIST"/*.tar.gz)
shopt -u nullglob
((${#WHEELS[@]} + CHECK_SDIST)) || die "no wheels in $DIST: run 'make wheels' first"

case $(uname -s) in
MINGW* | MSYS* | CYGWIN*) WINDOWS=1 ;;
*) WINDOWS=0 ;;
esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/wheels-check.XXXXXX")
SDIST_PID=""
# The background sdist build (pip -> maturin -> cargo) is stopped as a whole tree on early exit.
kill_tree() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
    kill "$1" 2>/dev/null || true
}
cleanup() {
    if [[ -n $SDIST_PID ]]; then kill_tree "$SDIST_PID"; wait "$SDIST_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
# Stand-ins for the toolchain's homes: empty, so no cargo, rustc or rustup can work from them.
mkdir -p "$WORK/empty-cargo" "$WORK/empty-rustup" "$WORK/home" "$WORK/run"
# The smoke script runs from a directory outside the source tree.
cp "$REPO/scripts/smoke_wheel.py" "$WORK/run/"

# The version every file in DIST must carry: the second field of the file name.
version_of() { local base; base=$(basename "$1"); base=${base%.tar.gz}; cut -d- -f2 <<<"$base"; }
VERSION=$(version_of "${WHEELS[0]:-${SDISTS[0]:-}}")
[[ -n $VERSION ]] || die "nothing to check in $DIST"
for f in "${WHEELS[@]}" "${SDISTS[@]}"; do
    [[ $(version_of "$f") == "$VERSION" ]] || die "$(basename "$f") is not version $VERSION"
done

if [[ -z $EXTRAS && -f $REPO/pyproject.toml ]]; then
    EXTRAS=$(python3 - "$REPO/pyproject.toml" <<'EOF' 2>/dev/null || true
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(",".join(tomllib.load(f)["project"].get("optional-dependencies", {})))
EOF
    )
fi

venv_bin() { if ((WINDOWS)); then echo "$1/Scripts"; else echo "$1/bin"; fi; }

# Run a command as a user without a Rust toolchain would: nothing on PATH but the venv and the
# system's basics, empty toolchain homes, no user site-packages. pip's network settings (index,
# certificates, proxies) are passed through so dependencies can still come from the registry.
PASS_ENV=()
while IFS='=' read -r name _; do
    case $name in
    PIP_* | *_PROXY | *_proxy | SSL_CERT_FILE | SSL_CERT_DIR | REQUESTS_CA_BUNDLE | SYSTEMROOT | TEMP | TMP)
        PASS_ENV+=("$name=${!name}") ;;
    esac
done < <(env)
clean_env() {
    local bin=$1; shift
    local path="$bin:/usr/bin:/bin"
    if ((WINDOWS)); then path="$path:/c/Windows/System32:/c/Windows"; fi
    env -i "${PASS_ENV[@]}" HOME="$WORK/home" PATH="$path" LANG=C.UTF-8 \
        CARGO_HOME="$WORK/empty-cargo" RUSTUP_HOME="$WORK/empty-rustup" \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ONLY_BINARY=:all: PYTHONNOUSERSITE=1 \
        "$@"
}

is_ft() { "$1" -c 'import sysconfig, sys; sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") else 1)' 2>/dev/null; }

# ----- which interpreters -----
for p in "${GIVEN_PYTHONS[@]}"; do
    "$p" -c 'import sys; assert sys.version_info >= (3, 10)' || die "$p: not a Python 3.10+"
    if is_ft "$p"; then FT_PYTHONS+=("$p"); else GIL_PYTHONS+=("$p"); fi
done
if ((DISCOVER)); then
    declare -A seen=()
    for p in "${GIL_PYTHONS[@]}"; do seen[$("$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])')]=1; done
    candidates=()
    for minor in 10 11 12 13 14; do
        candidates+=("python3.$minor")
        if command -v pyenv >/dev/null 2>&1; then
            for d in "$(pyenv root)"/versions/3."$minor".*/bin/python3; do candidates+=("$d"); done
        fi
    done
    for c in "${candidates[@]}"; do
        [[ -e $c ]] || command -v "$c" >/dev/null 2>&1 || continue
        real=$("$c" -c 'import sys; print(sys.executable)' 2>/dev/null) || continue
        is_ft "$real" && continue
        ver=$("$real" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        "$real" -c 'import venv, ensurepip' 2>/dev/null || continue
        [[ -n ${seen[$ver]:-} ]] && continue
        seen[$ver]=1
        GIL_PYTHONS+=("$real")
    done
    if ((${#FT_PYTHONS[@]} == 0)) && compgen -G "$DIST/*t-*.whl" >/dev/null; then
        FT_PYTHONS+=("$(bash "$REPO/scripts/free-threaded-python.sh" | tail -n 1)")
    fi
fi
((${#GIL_PYTHONS[@]} + ${#FT_PYTHONS[@]})) || die "no interpreter to test with"

# ----- auditwheel / twine -----
declare -A AUDIT_TAG=()
if ((AUDIT)); then
    command -v auditwheel >/dev/null || die "--audit needs auditwheel on PATH"
    for whl in "${WHEELS[@]}"; do
        name=$(basename "$whl")
        [[ $name == *linux* ]] || continue
        out=$(auditwheel show "$whl" 2>&1) || die "auditwheel show $name failed: $out"
        tag=$(tr '\n' ' ' <<<"$out" | sed -n 's/.*consistent with the following platform tag: *"\([^"]*\)".*/\1/p')
        [[ -n $tag ]] || die "auditwheel show $name gave no platform tag: $out"
        glibc=$(sed -n 's/^manylinux_2_\([0-9]*\)_.*/\1/p' <<<"$tag")
        if [[ $tag == musllinux_* ]]; then
            :
        elif [[ -z $glibc ]] || ((glibc > 28)); then
            die "$name: auditwheel says $tag, which needs a glibc newer than 2.28"
        fi
        [[ $name == *"$tag"* ]] || die "$name: auditwheel says $tag, the file name does not carry it"
        AUDIT_TAG[$name]=$tag
        log "auditwheel show $name: consistent with $tag"
    done
fi
if ((TWINE)); then
    command -v twine >/dev/null || die "--twine needs twine on PATH"
    twine check --strict "${WHEELS[@]}" "${SDISTS[@]}" >&2 || die "twine check failed"
fi

run_smoke() { # VENV_DIR [--free-threaded]
    local bin; bin=$(venv_bin "$1"); shift
    (cd "$WORK/run" && clean_env "$bin" python -I smoke_wheel.py --expect-version "$VERSION" \
        --source-tree "$REPO" ${EXTRAS:+--extras "$EXTRAS"} "$@")
}

# ----- the sdist builds in the background while the wheels are checked -----
SDIST_LOG="$WORK/sdist-install.log"
if ((CHECK_SDIST)); then
    ((${#SDISTS[@]} == 1)) || die "expected one sdist in $DIST, found ${#SDISTS[@]}"
    command -v cargo >/dev/null || die "the sdist check needs cargo on PATH"
    sdist_python=${GIL_PYTHONS[0]:-python3}
    log "sdist: pip install $(basename "${SDISTS[0]}") with $sdist_python (builds with cargo; log in $SDIST_LOG)"
    (
        start=$SECONDS
        "$sdist_python" -m venv "$WORK/venv-sdist"
        # Full environment: building from source needs cargo and the registry for maturin.
        "$(venv_bin "$WORK/venv-sdist")/python" -m pip install --disable-pip-version-check \
            --no-binary resilience-rs "${SDISTS[0]}"
        echo "sdist build+install took $((SECONDS - start))s"
    ) >"$SDIST_LOG" 2>&1 &
    SDIST_PID=$!
fi

# ----- one fresh venv per interpreter; pip picks the wheel -----
declare -A TESTED=()
SUMMARY=()
check_with() { # PYTHON FT(0/1)
    local py=$1 ft=$2 venv bin ver tag start whl
    start=$SECONDS
    ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    tag=$ver
    if ((ft)); then tag+=t; fi
    venv="$WORK/venv-$tag"
    log "CPython $tag ($py): fresh venv"
    "$py" -m venv "$venv"
    bin=$(venv_bin "$venv")
    clean_env "$bin" sh -c 'command -v cargo || command -v rustc || command -v maturin' >/dev/null \
        && die "a build tool is reachable from the clean PATH"
    # Which wheel would pip pick for this interpreter? Ask it, offline, among DIST's files only.
    clean_env "$bin" python -m pip download -q --no-index --no-deps --only-binary :all: \
        --find-links "$DIST" --dest "$WORK/pick-$tag" "resilience-rs==$VERSION" \
        || die "CPython $tag: pip finds no wheel in $DIST for this interpreter"
    whl=$(cd "$WORK/pick-$tag" && ls)
    [[ $whl == *.whl && -f $DIST/$whl ]] || die "CPython $tag: pip picked '$whl', not a wheel from $DIST"
    # Install that file; dependencies (if any) come from the registry, as wheels only.
    clean_env "$bin" python -m pip install -q --only-binary :all: "$DIST/$whl" \
        || die "CPython $tag: pip install $whl failed"
    log "CPython $tag: installed $whl"
    if ((ft)); then run_smoke "$venv" --free-threaded; else run_smoke "$venv"; fi \
        || die "smoke test failed: $whl on CPython $tag"
    TESTED[$whl]+="$tag "
    SUMMARY+=("$(printf '%-6s %-72s %3ss' "$tag" "$whl" $((SECONDS - start)))")
    rm -rf "$venv"
}

if ((${#WHEELS[@]})); then
    for py in "${GIL_PYTHONS[@]}"; do check_with "$py" 0; done
    for py in "${FT_PYTHONS[@]}"; do check_with "$py" 1; done
fi

if ((REQUIRE_ALL)); then
    for w in "${WHEELS[@]}"; do
        [[ -n ${TESTED[$(basename "$w")]:-} ]] || die "$(basename "$w") was not installed by any interpreter"
    done
fi

if [[ -n $SDIST_PID ]]; then
    log "sdist: waiting for the source build"
    if ! wait "$SDIST_PID"; then
        SDIST_PID=""
        tail -n 40 "$SDIST_LOG" >&2
        die "pip install of the sdist failed"
    fi
    SDIST_PID=""
    tail -n 1 "$SDIST_LOG" >&2
    run_smoke "$WORK/venv-sdist" || die "smoke test failed: the sdist"
    SUMMARY+=("$(printf '%-6s %-72s %s' "sdist" "$(basename "${SDISTS[0]}")" "$(tail -n 1 "$SDIST_LOG")")")
fi

echo
echo "wheels-check: resilience-rs $VERSION"
for w in "${WHEELS[@]}" "${SDISTS[@]}"; do
    name=$(basename "$w")
    size=$(wc -c <"$w")
    printf '  %-72s %7d KiB  %s  tested on: %s\n' "$name" $((size / 1024)) \
        "${AUDIT_TAG[$name]:-}" "${TESTED[$name]:-$([[ $name == *.tar.gz ]] && ((CHECK_SDIST)) && echo "source build" || echo "-")}"
done
echo "  runs:"
printf '    %s\n' "${SUMMARY[@]}"
