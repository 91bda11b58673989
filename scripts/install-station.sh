#!/usr/bin/env bash
# Install the station kiosk on a Linux thin client, as root:
#   - a service user (no login shell) whose home holds the station's data and encrypted keyring;
#   - a virtual environment under the prefix with the app installed from this repository;
#   - /etc/station-kiosk/kiosk.toml (server_url, keyring backend) and the keyring password as an
#     encrypted systemd credential (TPM2 and/or host key);
#   - a systemd unit running the kiosk on tty1 instead of the login prompt;
#   - a sample SSH authorized_keys line that lets an admin key run only `kiosk admin`;
#   - with --code, the station's enrollment (else the command to run later is printed).
#
# usage: scripts/install-station.sh [--dry-run] [--user kiosk] [--server URL] [--code CODE]
#                                   [--prefix /opt/station-kiosk]
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

usage() {
    sed -n '2,13s/^# \{0,1\}//p' "$0"
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
        "$1"
}

# --- arguments ----------------------------------------------------------------------------------

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --user) KIOSK_USER=${2:?--user needs a name}; shift ;;
        --server) SERVER=${2:?--server needs a URL}; shift ;;
        --code) CODE=${2:?--code needs the code from kiosk station add}; shift ;;
        --prefix) PREFIX=${2:?--prefix needs a directory}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

[[ $KIOSK_USER =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--user: not a valid user name: $KIOSK_USER"
[[ $PREFIX == /* ]] || die "--prefix must be an absolute path: $PREFIX"
[ -z "$SERVER" ] || [[ $SERVER =~ ^https?:// ]] || die "--server must start with http:// or https://"
[ -z "$CODE" ] || [ -n "$SERVER" ] || die "--code needs --server URL"
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
run "$PREFIX/venv/bin/pip" install --upgrade "$REPO"

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
