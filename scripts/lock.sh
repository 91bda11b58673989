#!/usr/bin/env bash
# Rewrite the lock files under kiosk/locks/ from pyproject.toml: every package with its exact
# version and the SHA-256 of each of its files, for CPython 3.11 on linux x86_64.
#   station.txt   what a station runs (the [project] dependencies)
#   postgres.txt  station.txt plus the postgres extra (a server on PostgreSQL, ./dev run)
#   test.txt      station.txt plus the test extra (./dev test, CI)
# Each also pins pip, setuptools and wheel, so the project itself is built from locked tools
# (pip install --no-build-isolation) and an install from a wheelhouse needs nothing else.
# test.txt is resolved first and constrains the other two, so a package shared by two locks has
# the same version in both; the station's lock hash (kiosk/lock.py) is the hash of station.txt.
#
# usage: scripts/lock.sh [uv pip compile options...]
#   scripts/lock.sh                             keep every pin that still satisfies pyproject.toml
#   scripts/lock.sh --upgrade-package fastapi   move one package to its newest allowed release
#   scripts/lock.sh --upgrade                   move everything
# Needs uv: the test extra brings it (./dev test installs it in .venv). Then commit kiosk/locks/
# with the pyproject.toml change.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-$( [ -x .venv/bin/uv ] && echo .venv/bin/uv || echo uv)}
command -v "$UV" >/dev/null || {
    echo "lock: uv not found; ./dev test installs it in .venv (or: python3 -m pip install uv)" >&2
    exit 2
}
LOCKS=kiosk/locks
build_in=$(mktemp --suffix=.in)
trap 'rm -f "$build_in"' EXIT
# The build tools come from pyproject's own [build-system] requires, plus the installer itself.
python3 - >"$build_in" <<'PY'
import tomllib

with open("pyproject.toml", "rb") as f:
    print("\n".join([*tomllib.load(f)["build-system"]["requires"], "pip"]))
PY

compile() {
    local out=$1
    shift
    "$UV" pip compile --quiet --generate-hashes --python-version 3.11 \
        --python-platform x86_64-unknown-linux-gnu --custom-compile-command scripts/lock.sh \
        --output-file "$LOCKS/$out" pyproject.toml "$build_in" "$@"
    # The temporary file's name would change on every run: name what it stands for.
    sed -i "s|# via -r $build_in|# via [build-system] requires (pyproject.toml)|; s|$build_in|[build-system] requires|" \
        "$LOCKS/$out"
}

compile test.txt --extra test "$@"
compile station.txt -c "$LOCKS/test.txt" "$@"
compile postgres.txt --extra postgres -c "$LOCKS/test.txt" "$@"
echo "lock: wrote $LOCKS/station.txt, postgres.txt, test.txt"
