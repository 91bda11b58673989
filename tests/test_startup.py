"""A start that paints first, and one station per data directory.

The badge screen is on the terminal before anything slow: the keyring's key derivation (once per
start), the embedded server and the HTTP client's imports come after it, and a badge scanned in
the meantime waits with a note instead of being lost. `kiosk admin` beside a running `kiosk` uses
its embedded server (never re-enrolling the station), a second `kiosk` is refused in one line,
and a station whose token the server refuses never says ONLINE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import pytest
from argon2 import low_level

from kiosk.app import BEHIND_THE_BADGE_SCREEN, KioskApp
from kiosk.client import credentials
from kiosk.config import StationSettings
from tests.conftest import LiveServer
from tests.helpers import thin_client_home
from tests.station import FROZEN, burst, settle
from tests.test_kiosk_in_tmux import TMUX, Terminal, embedded_servers

FIRST_FRAME_MUST_NOT_LOAD = (
    "httpx",
    "kiosk.wire",
    "kiosk.rules",
    "keyring",
    "kiosk.client.api",
    "kiosk.scanning",
    "kiosk.wedge",
    "kiosk.labels",
)


def first_frame_modules() -> set[str]:
    """sys.modules when an enrolled station is about to paint: its start path (cli → station →
    app) imported and its backend checked, as kiosk/station.py does before app.run()."""
    code = (
        "import json, sys\n"
        "import kiosk.cli, kiosk.station, kiosk.app, kiosk.driver, kiosk.client.embedded\n"
        "args = kiosk.cli._station_args(['--server', 'https://plant.example:8600'])\n"
        "assert args is not None and args.func is kiosk.cli.cmd_station\n"
        "from kiosk.config import StationSettings\n"
        "settings = StationSettings(server_url='https://plant.example:8600',\n"
        f"    keyring_backend={credentials.CRYPTFILE!r})\n"
        "with kiosk.station.starting_backend(settings):\n"
        "    print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


def test_the_first_frame_loads_no_client_wire_or_keyring() -> None:
    loaded = first_frame_modules()
    assert "kiosk.screens.badge" in loaded
    heavy = [name for name in loaded if name.split(".")[0] in FIRST_FRAME_MUST_NOT_LOAD]
    heavy += [name for name in FIRST_FRAME_MUST_NOT_LOAD if name in loaded]
    assert sorted(set(heavy)) == []
    # What it puts off is loaded later, by name: a renamed module fails here, not at a badge.
    assert [name for name in BEHIND_THE_BADGE_SCREEN if find_spec(name) is None] == []


def test_reading_the_token_costs_one_key_derivation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    thin_client_home(tmp_path, monkeypatch)
    from keyrings.cryptfile.cryptfile import CryptFileKeyring  # type: ignore[import-untyped]

    # The count is what is tested, not the cost: a cheap Argon2 keeps the test fast.
    monkeypatch.setattr(CryptFileKeyring, "time_cost", 1)
    monkeypatch.setattr(CryptFileKeyring, "memory_cost", 8)
    monkeypatch.setattr(CryptFileKeyring, "parallelism", 1)
    credentials.store_token("http://plant:8600", "t0ken-9")
    calls: list[int] = []
    real = low_level.hash_secret_raw

    def counted(*args: object, **kwargs: object) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(low_level, "hash_secret_raw", counted)
    assert credentials.load_token("http://plant:8600") == "t0ken-9"
    assert len(calls) == 1
    monkeypatch.setenv("KEYRING_CRYPTFILE_PASSWORD", "wrong")
    with pytest.raises(credentials.KeyringUnusable, match="does not open"):
        credentials.load_token("http://plant:8600")


async def test_the_badge_screen_paints_before_the_station_connects_and_a_badge_waits(
    live_server: LiveServer, tmp_path: Path
) -> None:
    unlocked = threading.Event()
    token = live_server.token()

    def slow_unlock() -> tuple[str, str | None]:
        unlocked.wait(30)  # as the keyring's Argon2 derivation would
        return live_server.url, token

    app = KioskApp(
        StationSettings(data_dir=tmp_path), "", None, clock=lambda: FROZEN, connect=slow_unlock
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert "Scan your badge to sign in" in str(app.screen.query_one(".prompt").render())
        assert "connecting" in str(app.screen.query_one("StatusBar").render())
        assert not app.connected.is_set()
        for key in "10001":
            await pilot.press(key)
        await pilot.press("enter")  # typed into the badge field, as the station allows
        await pilot.pause(0.2)
        assert "One moment: the station is unlocking" in str(
            app.screen.query_one("#message").render()
        )
        assert app.person is None
        unlocked.set()
        await settle(pilot)
        assert app.person is not None and app.person.name == "Ana Ortiz"
        assert "ONLINE" in str(app.screen.query_one("StatusBar").render())


async def test_a_refused_token_is_shown_as_not_enrolled_never_online(
    live_server: LiveServer, tmp_path: Path
) -> None:
    token = live_server.token()
    app = KioskApp(StationSettings(data_dir=tmp_path), live_server.url, token, clock=lambda: FROZEN)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "ONLINE" in str(app.screen.query_one("StatusBar").render())
        live_server.token()  # the station re-enrolled elsewhere: this token is no longer known
        await burst(pilot, "10001")
        bar = str(app.screen.query_one("StatusBar").render())
        assert "NOT ENROLLED" in bar and "ONLINE" not in bar
        app.check_health()  # the server answers /health, but not this station: still refused
        await settle(pilot)
        bar = str(app.screen.query_one("StatusBar").render())
        assert "NOT ENROLLED" in bar and "ONLINE" not in bar


# --- the real `kiosk` and `kiosk admin` in tmux ------------------------------------------------


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[tuple[Path, list[Terminal]]]:
    """One data directory, and the terminals opened on it (each its own tmux server; closed
    at the end)."""
    if TMUX is None:
        pytest.fail("tmux is needed for this test: apt-get install tmux")
    terminals: list[Terminal] = []
    yield tmp_path, terminals
    for terminal in terminals:
        terminal.close()


def open_terminal(data: Path, terminals: list[Terminal], *args: str) -> Terminal:
    assert TMUX is not None
    session = f"kiosk-start-{os.getpid()}-{len(terminals)}"
    kiosk = Path(sys.executable).parent / "kiosk"
    env = f"KIOSK_DATA_DIR={data} KIOSK_CONFIG_FILE={data / 'none.toml'} TERM=xterm-256color"
    command = f"env {env} {kiosk} {' '.join(args)}; echo KIOSK-EXITED $?; sleep 60"
    terminals.append(Terminal.open(session, command))
    return terminals[-1]


@pytest.mark.slow
def test_kiosk_admin_beside_a_running_station_uses_its_server(
    machine: tuple[Path, list[Terminal]],
) -> None:
    data, terminals = machine
    station = open_terminal(data, terminals)
    station.wait_for("Scan your badge to sign in")
    station.wait_for("ONLINE")

    admin = open_terminal(data, terminals, "admin")
    admin.wait_for("Admin sign-in")
    assert len(embedded_servers(data)) == 1  # the station's: no second server, no new token
    admin.type("90001")  # the admin console has no wedge: badge, Tab, PIN, Enter
    admin.send("Tab")
    # A person's pause after Tab: a key sent the same instant can reach the badge field before
    # Tab (which the field passes up to the screen first) has moved the focus.
    time.sleep(0.12)
    admin.type("9999")
    admin.send("Enter")
    admin.wait_for("Admin console · Ada Admin")

    station.scan("10001")  # the station's token still works: it was never re-enrolled
    shown = station.wait_for("Signed in: Ana Ortiz.")
    assert "ONLINE" in shown and "not enrolled" not in shown.lower()

    # A second station on the same data directory is refused in one line, and starts nothing.
    second = subprocess.run(
        ["script", "-qec", f"{Path(sys.executable).parent / 'kiosk'}", "/dev/null"],
        env={**os.environ, "KIOSK_DATA_DIR": str(data), "KIOSK_CONFIG_FILE": str(data / "x")},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = second.stdout.strip().splitlines()
    assert second.returncode == 3
    assert lines[-1].startswith(f"error: a station is already running on {data} (pid ")
    assert "kiosk admin" in lines[-1]
    assert len(embedded_servers(data)) == 1


def test_an_embedded_server_finding_another_running_answers_busy_and_issues_nothing(
    tmp_path: Path,
) -> None:
    from kiosk.client.embedded import LOCK_FILE
    from kiosk.server.embedded import _held, _hold_lock

    assert _hold_lock(tmp_path / LOCK_FILE)  # as a running embedded server holds it
    try:
        done = subprocess.run(
            [
                sys.executable, "-m", "kiosk", "serve", "--embedded", "--demo",
                "--database-url", f"sqlite:///{tmp_path / 'plant.db'}",
                "--secret-file", str(tmp_path / "plant-secret"),
                "--run-file", str(tmp_path / "embedded-server.json"),
            ],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        os.close(_held.pop())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"busy": True}
    assert not (tmp_path / "plant.db").exists()  # never opened the plant, never made a token
