#!/usr/bin/env bash
# Build a wheelhouse: every file a station's install needs, each checked against its hash in the
# lock, so that `scripts/install-station.sh --wheelhouse DIR` installs with no package index.
#
# usage: scripts/build-wheelhouse.sh [--dry-run] [--with-server] [--platform TAG]... DIR
#   --with-server   the server's set too (kiosk/locks/postgres.txt, for install-station.sh
#                   --with-server); without it, a station's (kiosk/locks/station.txt)
#   --platform TAG  wheels for another machine than this one (e.g. manylinux_2_28_x86_64);
#                   by default, for this machine's CPython 3.11
#   --dry-run       print the command and download nothing
# Run it where the package index answers, then carry DIR and the repository to the station.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
PYTHON=${PYTHON:-python3}

DRY_RUN=0
LOCK=$REPO/kiosk/locks/station.txt
PLATFORM=()
DIR=""

usage() {
    sed -n '2,11s/^# \{0,1\}//p' "$0"
}

die() {
    echo "build-wheelhouse: $*" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --with-server) LOCK=$REPO/kiosk/locks/postgres.txt ;;
        --platform) PLATFORM+=(--platform "${2:?--platform needs a tag}"); shift ;;
        -h | --help) usage; exit 0 ;;
        -*) usage >&2; die "unknown argument: $1" ;;
        *) [ -z "$DIR" ] || die "one directory only (have $DIR, got $1)"; DIR=$1 ;;
    esac
    shift
done

[ -n "$DIR" ] || { usage >&2; die "name the directory to fill"; }
[ -f "$LOCK" ] || die "no lock at $LOCK (scripts/lock.sh writes it)"
if [ ${#PLATFORM[@]} -gt 0 ]; then
    # Another machine's wheels: say which Python they are for, since this one's is not asked
    # (--no-deps is what pip wants then; the lock names every package anyway).
    PLATFORM+=(--python-version 3.11 --implementation cp --no-deps)
elif ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    die "$PYTHON is not CPython 3.11, the Python the locks are for (set PYTHON=, or give --platform)"
fi

# The locked files as they are: a wheel where the release has one, else its source (pure Python
# ones, e.g. keyrings.cryptfile, which the station builds offline with the locked setuptools). A
# wheel built here instead would not match the lock's hash.
cmd=("$PYTHON" -m pip download --quiet --require-hashes "${PLATFORM[@]}" --dest "$DIR" -r "$LOCK")
if [ "$DRY_RUN" -eq 1 ]; then
    printf '+'
    printf ' %q' "${cmd[@]}"
    printf '\n'
    exit 0
fi
mkdir -p "$DIR"
"${cmd[@]}"
echo "build-wheelhouse: $(find "$DIR" -maxdepth 1 -type f | wc -l) files in $DIR for $(basename "$LOCK")"
echo "next, on the station: scripts/install-station.sh --wheelhouse $DIR ..."
