#!/usr/bin/env bash
# Install the station kiosk on a Linux thin client, as root:
#   - a service user (no login shell) whose home holds the station's data and encrypted keyring;
#   - a virtual environment under the prefix with exactly the locked dependencies
#     (kiosk/locks/station.txt, every file checked against its hash) and the app from this
#     repository; with --wheelhouse DIR, from that directory alone, with no package index
#     (scripts/build-wheelhouse.sh fills it);
#   - /etc/station-kiosk/kiosk.toml (server_url, keyring backend) and the keyring password as an
#     encrypted systemd credential (TPM2 and/or host key);
#   - a systemd unit running the kiosk on tty1 instead of the login prompt;
#   - a sample SSH authorized_keys line that lets an admin key run only `kiosk admin`;
#   - with --code, the station's enrollment (else the command to run later is printed);
#   - with --with-server, the reference server too (`kiosk serve` as kiosk-server.service, its
#     own user, /etc/station-kiosk/server.toml): a plant's server, or a one-machine plant.
#
# usage: scripts/install-station.sh [--dry-run] [--user kiosk] [--server URL] [--code CODE]
#                                   [--prefix /opt/station-kiosk] [--with-server]
#                                   [--wheelhouse DIR]
# --dry-run prints every command and every file with its content, and changes nothing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
PYTHON=${PYTHON:-python3}

DRY_RUN=0
KIOSK_USER=kiosk
SERVER=""
CODE=""
PREFIX=/opt/station-kiosk
CONFIG_DIR=/etc/station-kiosk
STATE_DIR=/var/lib/station-kiosk
UNIT=station-kiosk.service
UNIT_FILE=/etc/systemd/system/$UNIT
CREDENTIAL=keyring-password
KEYRING_BACKEND=keyrings.cryptfile.cryptfile.CryptFileKeyring
WITH_SERVER=0
WHEELHOUSE=""
SERVER_USER=kiosk-server
SERVER_CONFIG_DIR=/etc/kiosk-server
SERVER_UNIT=kiosk-server.service

usage() {
    sed -n '2,19s/^# \{0,1\}//p' "$0"
}

die() {
    echo "install-station: $*" >&2
    exit 2
}

# --- doing, or only saying what would be done ---------------------------------------------------

run() {
    if [ "$DRY_RUN" -eq 1 ]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# write_file PATH MODE OWNER:GROUP, content on stdin.
write_file() {
    local path=$1 mode=$2 owner=$3 content tmp
    content=$(cat)
    if [ "$DRY_RUN" -eq 1 ]; then
        printf '+ write %s (mode %s, owner %s):\n%s\n+ end of %s\n' \
            "$path" "$mode" "$owner" "$content" "$path"
        return
    fi
    tmp=$(mktemp)
    printf '%s\n' "$content" >"$tmp"
    install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$path"
    rm -f "$tmp"
}

# render TEMPLATE: the template with this installation's values filled in.
render() {
    sed -e "s|@USER@|$KIOSK_USER|g" \
        -e "s|@PREFIX@|$PREFIX|g" \
        -e "s|@CONFIG_DIR@|$CONFIG_DIR|g" \
        -e "s|@CREDENTIAL@|$CREDENTIAL_LINE|g" \
        -e "s|@SERVER_USER@|$SERVER_USER|g" \
        -e "s|@SERVER_CONFIG_DIR@|$SERVER_CONFIG_DIR|g" \
        "$1"
}

# missing_from_wheelhouse LOCK DIR: the locked packages (name==version) none of whose hashes is
# the SHA-256 of a file in DIR, on one line.
missing_from_wheelhouse() {
    local lock=$1 dir=$2
    find "$dir" -maxdepth 1 -type f -exec sha256sum {} + | cut -d' ' -f1 \
        | awk 'FILENAME == "-" { have["sha256:" $1] = 1; next }
            function unfound() { if (pkg != "" && !found) { printf "%s%s", sep, pkg; sep = " " } }
            /^[A-Za-z0-9]/ { unfound(); pkg = $1; found = 0; next }
            /--hash=/ { sub(/.*--hash=/, ""); sub(/[ \\].*/, ""); if ($0 in have) found = 1 }
            END { unfound() }' - "$lock"
}

# --- arguments ----------------------------------------------------------------------------------

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --user) KIOSK_USER=${2:?--user needs a name}; shift ;;
        --server) SERVER=${2:?--server needs a URL}; shift ;;
        --code) CODE=${2:?--code needs the code from kiosk station add}; shift ;;
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift ;;
        --with-server) WITH_SERVER=1 ;;
        --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a directory}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

[[ $KIOSK_USER =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--user: not a valid user name: $KIOSK_USER"
[[ $PREFIX == /* ]] || die "--prefix must be an absolute path: $PREFIX"
[ -z "$SERVER" ] || [[ $SERVER =~ ^https?:// ]] || die "--server must start with http:// or https://"
[ -z "$CODE" ] || [ -n "$SERVER" ] || die "--code needs --server URL"
if [ -n "$WHEELHOUSE" ]; then
    [ -d "$WHEELHOUSE" ] || die "--wheelhouse: no such directory: $WHEELHOUSE"
    WHEELHOUSE=$(cd "$WHEELHOUSE" && pwd)
fi

# --- what gets installed ------------------------------------------------------------------------

# The server's lock is the station's plus its PostgreSQL driver, at the same versions.
LOCK=$REPO/kiosk/locks/station.txt
[ "$WITH_SERVER" -eq 0 ] || LOCK=$REPO/kiosk/locks/postgres.txt
SOURCE=()
if [ -n "$WHEELHOUSE" ]; then
    SOURCE=(--no-index --find-links "$WHEELHOUSE")
    # Before anything changes (and in a dry run too, since it only reads): a file for every
    # locked package, with one of its hashes. pip checks again as it installs.
    read -r -a missing <<<"$(missing_from_wheelhouse "$LOCK" "$WHEELHOUSE")"
    if [ ${#missing[@]} -gt 0 ]; then
        what="${missing[*]:0:8}"
        [ ${#missing[@]} -le 8 ] || what="$what … (${#missing[@]} packages)"
        build=scripts/build-wheelhouse.sh
        [ "$WITH_SERVER" -eq 0 ] || build="$build --with-server"
        die "the wheelhouse $WHEELHOUSE has no file for: $what (nothing was changed; fill it with $build $WHEELHOUSE)"
    fi
fi

if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or with --dry-run to see the plan)"
fi

# Sealed to the TPM and/or this host when systemd-creds exists; a root-only file otherwise.
if command -v systemd-creds >/dev/null; then
    CREDENTIAL_FILE=$CONFIG_DIR/$CREDENTIAL.cred
    CREDENTIAL_LINE="LoadCredentialEncrypted=$CREDENTIAL:$CREDENTIAL_FILE"
else
    CREDENTIAL_FILE=$CONFIG_DIR/$CREDENTIAL
    CREDENTIAL_LINE="LoadCredential=$CREDENTIAL:$CREDENTIAL_FILE"
fi

[ "$DRY_RUN" -eq 0 ] || echo "# dry run: nothing below is done"

# --- 1. service user ----------------------------------------------------------------------------

if id -u "$KIOSK_USER" >/dev/null 2>&1; then
    echo "# user $KIOSK_USER exists: kept"
else
    run useradd --system --create-home --home-dir "$STATE_DIR" --shell /usr/sbin/nologin \
        --comment "station kiosk" "$KIOSK_USER"
fi

# --- 2. the app in its own virtual environment --------------------------------------------------

run install -d -m 0755 "$PREFIX"
run "$PYTHON" -m venv "$PREFIX/venv"
run "$PREFIX/venv/bin/pip" install "${SOURCE[@]}" --require-hashes -r "$LOCK"
# The app adds nothing of its own: no dependency, and it is built with the locked setuptools.
run "$PREFIX/venv/bin/pip" install "${SOURCE[@]}" --no-deps --no-build-isolation \
    --force-reinstall "$REPO"

# --- 3. station config and keyring password -----------------------------------------------------

# Group-writable for the service user: `kiosk enroll` records the station name in it.
run install -d -m 0770 -o root -g "$KIOSK_USER" "$CONFIG_DIR"
if [ -e "$CONFIG_DIR/kiosk.toml" ]; then
    echo "# $CONFIG_DIR/kiosk.toml exists: kept"
else
    {
        echo "# Station settings (see README: Configuration of a station). kiosk enroll adds"
        echo "# station_name and work_center; the token itself lives in the encrypted keyring."
        [ -z "$SERVER" ] || echo "server_url = \"$SERVER\""
        echo "keyring_backend = \"$KEYRING_BACKEND\""
    } | write_file "$CONFIG_DIR/kiosk.toml" 0660 "root:$KIOSK_USER"
fi

if [ -e "$CREDENTIAL_FILE" ]; then
    echo "# $CREDENTIAL_FILE exists: kept (the keyring stays readable)"
elif [ "$DRY_RUN" -eq 1 ]; then
    if [[ $CREDENTIAL_FILE == *.cred ]]; then
        echo "+ head -c 32 /dev/urandom | base64 | systemd-creds encrypt --name=$CREDENTIAL - $CREDENTIAL_FILE"
    else
        echo "+ head -c 32 /dev/urandom | base64 > $CREDENTIAL_FILE  (mode 0400, root)"
    fi
else
    (
        umask 077 # the password never exists readable by anyone but root, not even briefly
        if [[ $CREDENTIAL_FILE == *.cred ]]; then
            head -c 32 /dev/urandom | base64 \
                | systemd-creds encrypt --name="$CREDENTIAL" - "$CREDENTIAL_FILE"
        else
            head -c 32 /dev/urandom | base64 >"$CREDENTIAL_FILE"
            chmod 0400 "$CREDENTIAL_FILE"
        fi
    )
fi

# --- 4. the unit on tty1 ------------------------------------------------------------------------

render "$HERE/kiosk-station.service" | write_file "$UNIT_FILE" 0644 root:root
run systemctl daemon-reload
# Enabled, not started: tty1 may be the console this script is being run from.
run systemctl enable "$UNIT"

# --- 4b. no way out of the console ---------------------------------------------------------------

# Ctrl+Alt+Del must not reboot a shared station, SysRq must not give a keyboard a kernel console,
# and no getty may wait on another VT for someone to log in.
run systemctl mask ctrl-alt-del.target
printf 'kernel.sysrq = 0\n' | write_file /etc/sysctl.d/90-station-kiosk.conf 0644 root:root
run sysctl --system
run install -d -m 0755 /etc/systemd/logind.conf.d
printf '[Login]\nNAutoVTs=0\nReserveVT=0\n' \
    | write_file /etc/systemd/logind.conf.d/90-station-kiosk.conf 0644 root:root

# --- 5. SSH for admins --------------------------------------------------------------------------

render "$HERE/authorized_keys.sample" | write_file "$CONFIG_DIR/authorized_keys.sample" 0644 root:root

# --- 5b. the reference server (--with-server) ----------------------------------------------------

if [ "$WITH_SERVER" -eq 1 ]; then
    if id -u "$SERVER_USER" >/dev/null 2>&1; then
        echo "# user $SERVER_USER exists: kept"
    else
        run useradd --system --no-create-home --home-dir /var/lib/kiosk-server \
            --shell /usr/sbin/nologin --comment "station kiosk server" "$SERVER_USER"
    fi
    # Its own directory: the station's is open to the station's user alone.
    run install -d -m 0750 -o root -g "$SERVER_USER" "$SERVER_CONFIG_DIR"
    if [ -e "$SERVER_CONFIG_DIR/server.toml" ]; then
        echo "# $SERVER_CONFIG_DIR/server.toml exists: kept"
    else
        # Readable by the server's group only: it may hold a database password or metrics_token.
        {
            echo "# Server settings (see README: Running the server). KIOSK_* variables"
            echo "# and kiosk serve's flags override what is set here."
            echo "host = \"0.0.0.0\""
            echo "port = 8600"
            echo "workers = 2"
            echo "log_format = \"json\""
            echo "# database_url = \"postgresql://kiosk@db.plant/kiosk\""
            echo "# tls_cert = \"$SERVER_CONFIG_DIR/server.pem\""
            echo "# tls_key = \"$SERVER_CONFIG_DIR/server.key\""
            echo "# metrics_token = \"…\""
        } | write_file "$SERVER_CONFIG_DIR/server.toml" 0640 "root:$SERVER_USER"
    fi
    render "$HERE/kiosk-server.service" | write_file "/etc/systemd/system/$SERVER_UNIT" 0644 root:root
    run systemctl daemon-reload
    run systemctl enable --now "$SERVER_UNIT"
fi

# --- 6. enrollment ------------------------------------------------------------------------------

# Run as the service user with the same credential the unit loads, so the token lands in the
# keyring the station will open.
as_station=(systemd-run --quiet --wait --collect "--uid=$KIOSK_USER"
    -p "$CREDENTIAL_LINE" -p "StateDirectory=station-kiosk"
    -E "KIOSK_CONFIG_FILE=$CONFIG_DIR/kiosk.toml")
enroll=("${as_station[@]}" --pipe "$PREFIX/venv/bin/kiosk" enroll
    --server "${SERVER:-URL}" --code "${CODE:-CODE}")
if [ -n "$CODE" ]; then
    run "${enroll[@]}"
else
    echo "# next: get a code on the server (kiosk station add NAME --work-center WC), then run"
    printf '#  '
    printf ' %q' "${enroll[@]}"
    printf '\n'
fi
echo "# then: systemctl start $UNIT (or reboot); to check the station as it sees itself:"
printf '#  '
printf ' %q' "${as_station[@]}" --pty -E TERM=linux "$PREFIX/venv/bin/kiosk" doctor
printf '\n'
