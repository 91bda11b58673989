"""The systemd units as scripts/install-station.sh would install them: hardened to a
`systemd-analyze security` exposure of at most 3.0, files private by default (UMask=0077), and
with MemoryDenyWriteExecute that the station and the server really survive.

systemd-analyze rates the unit files offline; no systemd needs to be running. The W^X rule is
checked with the kernel's own PR_SET_MDWE (Linux 6.3+), which refuses what MemoryDenyWriteExecute
refuses: a mapping both writable and executable, or one that becomes executable later.
"""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kiosk.server import demo
from kiosk.server.service import ExecutionService
from kiosk.wire import Credentials
from tests.conftest import Plant
from tests.helpers import CRYPTFILE, PEOPLE, Floor, person_ids, thin_client_home
from tests.ops_helpers import Wire, database_args, kiosk_serve, watched_client
from tests.test_install_script import run_script, stub_bin, written_files

ANALYZE = shutil.which("systemd-analyze")
STATION_UNIT = "/etc/systemd/system/station-kiosk.service"
SERVER_UNIT = "/etc/systemd/system/kiosk-server.service"
MAX_EXPOSURE = 3.0
CSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>]")

# What both units must say, whatever else changes in them.
HARDENING = [
    "UMask=0077",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
]


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Both units as `install-station.sh --dry-run --with-server` would write them."""
    where = tmp_path_factory.mktemp("install")
    for name in ("home", "cwd"):
        (where / name).mkdir()
    stubs = stub_bin(where / "bin", where / "calls.log")
    done = run_script(
        "--dry-run",
        "--with-server",
        "--user",
        "kiosk",
        "--prefix",
        str(where / "opt"),
        path=f"{stubs}:/usr/bin:/bin",
        cwd=where / "cwd",
        home=where / "home",
    )
    assert done.returncode == 0, done.stderr
    assert not (where / "calls.log").exists(), "a dry run ran something"
    files = written_files(done.stdout)
    assert "+ systemctl enable --now kiosk-server.service" in done.stdout
    assert "/etc/kiosk-server/server.toml" in files
    return {"station": files[STATION_UNIT], "server": files[SERVER_UNIT]}


@pytest.mark.parametrize("unit", ["station", "server"])
def test_both_units_carry_the_hardening(units: dict[str, str], unit: str) -> None:
    lines = units[unit].splitlines()
    missing = [line for line in HARDENING if line not in lines]
    assert missing == []
    assert re.findall(r"@[A-Z_]+@", units[unit]) == [], "a placeholder left"


def test_the_station_keeps_its_console_and_the_server_has_no_devices(
    units: dict[str, str],
) -> None:
    station, server = units["station"].splitlines(), units["server"].splitlines()
    # The station's tty is its whole interface: a private /dev would have no tty1.
    assert "TTYPath=/dev/tty1" in station and "PrivateDevices=yes" not in station
    assert {"DevicePolicy=closed", "DeviceAllow=char-tty rw"} <= set(station)
    assert {"PrivateDevices=yes", "PrivateUsers=yes", "User=kiosk-server"} <= set(server)
    assert "Environment=KIOSK_SERVER_CONFIG_FILE=/etc/kiosk-server/server.toml" in server


def _exposure(path: Path) -> tuple[float, str]:
    assert ANALYZE is not None
    done = subprocess.run(
        [
            ANALYZE,
            "security",
            "--offline=yes",
            "--no-pager",
            f"--threshold={MAX_EXPOSURE * 10:.0f}",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert found, done.stdout + done.stderr
    assert done.returncode == 0, done.stdout  # over the threshold: non-zero
    return float(found.group(1)), done.stdout


@pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (it comes with systemd)"
)
@pytest.mark.parametrize(
    ("unit", "name"), [("station", "station-kiosk.service"), ("server", "kiosk-server.service")]
)
def test_systemd_analyze_security_rates_both_units_at_most_3(
    units: dict[str, str], unit: str, name: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_text(units[unit] + "\n")

    exposure, report = _exposure(path)

    assert exposure <= MAX_EXPOSURE, report
    # The file mode line systemd-analyze checks, and the W^X line, are both satisfied.
    assert re.search(r"✓ UMask=", report) and re.search(r"✓ MemoryDenyWriteExecute=", report)


@pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (it comes with systemd)"
)
def test_the_server_unit_passes_systemd_analyze_verify(
    units: dict[str, str], tmp_path: Path
) -> None:
    assert ANALYZE is not None
    prefix = re.search(r"^ExecStart=(\S+)/venv/bin/kiosk serve$", units["server"], re.M)
    assert prefix is not None
    kiosk = Path(prefix.group(1)) / "venv" / "bin" / "kiosk"  # verify wants ExecStart= to exist
    kiosk.parent.mkdir(parents=True, exist_ok=True)
    kiosk.write_text("#!/bin/sh\n")
    kiosk.chmod(0o755)
    unit = tmp_path / "kiosk-server.service"
    unit.write_text(units["server"] + "\n")

    checked = subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )

    complaints = [line for line in checked.stderr.splitlines() if str(unit) in line]
    assert checked.returncode == 0 and complaints == [], checked.stderr


# --- MemoryDenyWriteExecute, for real -------------------------------------------------------------

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1

# Sets the rule on itself, then becomes the command: the rule holds across exec and for children.
MDWE_WRAPPER = f"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    sys.exit(f"PR_SET_MDWE: errno {{ctypes.get_errno()}}")
os.execv(sys.argv[1], sys.argv[1:])
"""


def _mdwe_supported() -> bool:
    done = subprocess.run(
        [sys.executable, "-c", MDWE_WRAPPER, "/bin/true"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0


MDWE = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _mdwe_supported(),
    reason="the kernel has no PR_SET_MDWE (Linux 6.3+)",
)


@pytest.fixture
def mdwe(tmp_path: Path) -> list[str]:
    wrapper = tmp_path / "mdwe.py"
    wrapper.write_text(MDWE_WRAPPER)
    return [sys.executable, str(wrapper)]


@MDWE
def test_the_rule_is_really_on_in_a_wrapped_process(mdwe: list[str]) -> None:
    probe = (
        "import mmap, ctypes\n"
        "print(ctypes.CDLL(None).prctl(66, 0, 0, 0, 0))\n"  # PR_GET_MDWE
        "try:\n"
        "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "except PermissionError:\n"
        "    print('refused')\n"
    )
    done = subprocess.run(
        [*mdwe, sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.split() == ["1", "refused"]


@MDWE
@pytest.mark.slow
@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
async def test_the_server_works_under_memory_deny_write_execute(
    plant: Plant, service: ExecutionService, tmp_path: Path, mdwe: list[str]
) -> None:
    """Badge-in, values, an argon2-checked signature and a scrape, all under the rule."""
    token = service.local_station_token(demo.DEMO_STATION, demo.WORK_CENTER)
    args = database_args(plant.database_url, plant.secret_file)
    with kiosk_serve(*args, "--log-format", "json", tmp_path=tmp_path, wrapper=mdwe) as server:
        async with watched_client(server.url, token, Wire()) as client:
            result = await Floor(client, person_ids(service)).work("ana", "TRV-1001", "10.1")
            await client.verify(Credentials(badge=PEOPLE["ivy"][1], pin=PEOPLE["ivy"][2]))
        log = server.text()

    assert result.applied == "sign_step"
    assert "Exception" not in log and "Traceback" not in log


@MDWE
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_station_and_its_keyring_work_under_memory_deny_write_execute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mdwe: list[str]
) -> None:
    """The real `kiosk` on a terminal (its embedded server inherits the rule) draws its badge
    screen online; the encrypted keyring stores and reads a token."""
    thin_client_home(tmp_path, monkeypatch)
    keyring = (
        "from kiosk.client.credentials import load_token, store_token\n"
        f"store_token('https://plant:8600', 'tok-123', backend={CRYPTFILE!r})\n"
        f"print(load_token('https://plant:8600', backend={CRYPTFILE!r}))\n"
    )
    stored = subprocess.run(
        [*mdwe, sys.executable, "-c", keyring],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stored.returncode == 0 and stored.stdout.strip() == "tok-123", stored.stderr

    env = {**os.environ, "TERM": "xterm-256color", "KIOSK_CONFIG_FILE": str(tmp_path / "none")}
    kiosk = str(Path(sys.executable).parent / "kiosk")
    master, slave = pty.openpty()
    station = subprocess.Popen(
        [*mdwe, kiosk], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    screen = bytearray()
    reader = threading.Thread(target=_read_into, args=(master, screen), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while not all(
            t in CSI.sub("", screen.decode(errors="replace")) for t in ("Scan your badge", "ONLINE")
        ):
            assert station.poll() is None, CSI.sub("", screen.decode(errors="replace"))[-2000:]
            assert time.monotonic() < deadline, "no badge screen"
            time.sleep(0.1)
        station.terminate()
        assert station.wait(30) == 0
    finally:
        if station.poll() is None:
            station.kill()
            station.wait(10)
        os.close(master)


def _read_into(master: int, screen: bytearray) -> None:
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        screen.extend(data)
