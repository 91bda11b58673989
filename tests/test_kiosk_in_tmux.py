"""The real `kiosk` command in a real terminal (tmux): what an operator sees and types.

It starts the station on the embedded backend with the demo plant, signs in, opens TRV-1001,
tries the keys that end ordinary terminal programs, and leaves only through the admin exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TMUX = shutil.which("tmux")


class Terminal:
    """One tmux server of its own per terminal (`-L`, a name never used before): neither test
    workers side by side nor the next test in the same worker meet a server that is still
    starting or exiting ("server exited unexpectedly")."""

    def __init__(self, session: str, socket: str) -> None:
        self.session = session
        self.socket = socket
        self.pid_file: Path | None = None

    @classmethod
    def open(cls, session: str, command: str) -> Terminal:
        """An 80x24 terminal running `command` through sh, ignoring any ~/.tmux.conf."""
        assert TMUX is not None
        socket = f"{session}-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            [TMUX, "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", session,
             "-x", "80", "-y", "24", command],
            check=True, timeout=30,
        )  # fmt: skip
        return cls(session, socket)

    def close(self) -> None:
        assert TMUX is not None
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=30)

    @property
    def kiosk_pid(self) -> int:
        assert self.pid_file is not None
        return int(self.pid_file.read_text())

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        return subprocess.run(
            [TMUX, "-L", self.socket, *args], check=True, capture_output=True, text=True
        ).stdout

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def scan(self, text: str) -> None:
        """A keyboard-wedge reader: the whole code and Enter in one burst, once the screen is
        still, as a person scans when it has stopped changing. A station still busy drawing
        (right after it went ONLINE, on a loaded CI machine) may stamp a burst's first key apart
        from the rest and read it as typed: a timing detector's known limit (README)."""
        self.still()
        self.tmux("send-keys", "-t", self.session, "-l", text + "\r")

    def still(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until the screen has not changed for `quiet` seconds (at most `timeout`)."""
        deadline = time.monotonic() + timeout
        shown, since = self.screen(), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < quiet:
            time.sleep(0.05)
            now = self.screen()
            if now != shown:
                shown, since = now, time.monotonic()

    def type(self, text: str, gap: float = 0.12) -> None:
        """A person typing, one key every `gap` seconds."""
        for char in text:
            self.tmux("send-keys", "-t", self.session, "-l", char)
            time.sleep(gap)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; the screen shows:\n{self.screen()}")

    def pane_dead(self) -> bool:
        return self.tmux("display-message", "-p", "-t", self.session, "#{pane_dead}").strip() == "1"


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = station_terminal(tmp_path)
    try:
        yield term
    finally:
        term.close()


def embedded_servers(data: Path) -> list[str]:
    """The PIDs of the `kiosk serve --embedded` processes of the station whose data is in `data`."""
    found = subprocess.run(
        ["pgrep", "-f", f"serve --embedded.*{data}"], capture_output=True, text=True
    )
    return found.stdout.split()


def station_terminal(data_dir: Path) -> Terminal:
    """`kiosk` on the embedded demo plant kept in `data_dir`, in a terminal of its own."""
    if TMUX is None:
        pytest.fail("tmux is needed for this test: apt-get install tmux")
    session = f"kiosk-test-{os.getpid()}"
    kiosk = Path(sys.executable).parent / "kiosk"
    env = (
        f"KIOSK_DATA_DIR={data_dir} KIOSK_CONFIG_FILE={data_dir / 'none.toml'} TERM=xterm-256color"
    )
    term = Terminal.open(
        session,
        # The shell records the kiosk's PID (exec keeps it), so a test can signal it.
        f"sh -c 'echo $$ > {data_dir / 'kiosk.pid'}; exec env {env} {kiosk}'; "
        "echo KIOSK-EXITED $?; sleep 60",
    )
    term.pid_file = data_dir / "kiosk.pid"
    return term


def test_operator_session_in_a_real_terminal(terminal: Terminal) -> None:
    terminal.wait_for("Scan your badge to sign in")
    terminal.wait_for("ONLINE")
    terminal.scan("10001")  # Ana's badge
    shown = terminal.wait_for("TRV-1001")
    assert "Ana Ortiz (operator)" in shown
    terminal.send("Enter")
    shown = terminal.wait_for("Step 10.1 Verify kit and material")
    terminal.send("F2")
    terminal.wait_for("Step 10.1 started")
    terminal.scan("LOT-A100")  # fills the material item of the step and records it
    terminal.wait_for("Bracket forging lot: LOT-A100 recorded")
    assert "rev C" in shown

    # The keys that end or suspend ordinary terminal programs do nothing here.
    for key in ("C-c", "C-q", "C-z", "C-backslash", "C-p"):
        terminal.send(key)
    time.sleep(0.5)
    shown = terminal.screen()
    assert "Step 10.1 Verify kit and material" in shown
    assert "KIOSK-EXITED" not in shown

    # An operator's badge does not open the exit; an admin's does, and the terminal comes back.
    terminal.send("F12")
    terminal.wait_for("Exit the station (admin)")
    terminal.scan("10001")
    terminal.type("1111")
    terminal.send("Enter")
    terminal.wait_for("is not an admin")  # said in the prompt, which stays open for an admin
    terminal.scan("90001")
    terminal.type("9999")
    terminal.send("Enter")
    shown = terminal.wait_for("KIOSK-EXITED 0")
    assert "Scan your badge" not in shown  # the alternate screen is gone: terminal restored


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_systemd_stop_or_a_dropped_ssh_session_restores_the_terminal(
    terminal: Terminal, sig: signal.Signals, tmp_path: Path
) -> None:
    terminal.wait_for("Scan your badge to sign in")
    terminal.wait_for("ONLINE")
    os.kill(terminal.kiosk_pid, sig)
    shown = terminal.wait_for("KIOSK-EXITED")
    assert "Scan your badge" not in shown  # the alternate screen is gone: terminal restored
    # The embedded server went with the station: no orphan keeps the database open.
    time.sleep(0.5)
    assert embedded_servers(tmp_path) == []


def test_the_stations_own_server_is_restarted_if_it_dies(
    terminal: Terminal, tmp_path: Path
) -> None:
    terminal.wait_for("Scan your badge to sign in")
    terminal.wait_for("ONLINE")
    terminal.scan("10001")
    terminal.wait_for("TRV-1001")
    server = embedded_servers(tmp_path)
    assert len(server) == 1
    os.kill(int(server[0]), signal.SIGKILL)
    shown = terminal.wait_for("it was restarted", timeout=60)
    assert "ONLINE" in terminal.wait_for("ONLINE")
    assert "KIOSK-EXITED" not in shown
    terminal.scan("TRV-1001")  # the station works on, through the new server
    terminal.wait_for("Step 10.1 Verify kit and material")


def test_a_value_on_disk_when_the_station_is_killed_is_on_the_traveler_after_the_restart(
    terminal: Terminal, tmp_path: Path
) -> None:
    """Killed between the outbox's commit and the screen, its server stalled so the value
    is nowhere but the station's disk: the restarted station shows it (and sends it) instead
    of asking for it again."""
    terminal.wait_for("ONLINE")
    terminal.scan("10001")
    terminal.wait_for("TRV-1001")
    terminal.send("Enter")
    terminal.wait_for("Step 10.1 Verify kit and material")
    terminal.send("F2")
    terminal.wait_for("Step 10.1 started")
    (server,) = embedded_servers(tmp_path)
    os.kill(int(server), signal.SIGSTOP)  # takes nothing in from now on
    terminal.scan("LOT-A100")
    outbox = tmp_path / "station.db"
    deadline = time.monotonic() + 30
    while not recorded_in(outbox, "LOT-A100"):
        assert time.monotonic() < deadline, "the scan never reached the outbox"
        time.sleep(0.005)
    os.kill(terminal.kiosk_pid, signal.SIGKILL)  # at once: maybe before the screen said so
    os.kill(int(server), signal.SIGKILL)
    terminal.wait_for("KIOSK-EXITED")
    terminal.close()

    again = station_terminal(tmp_path)
    try:
        again.wait_for("ONLINE")
        again.scan("10001")
        again.wait_for("TRV-1001")
        again.scan("TRV-1001")
        shown = again.wait_for("LOT-A100 · Ana Ortiz")
        assert "Bracket forging lot" in shown
    finally:
        again.close()


def recorded_in(outbox: Path, value: str) -> bool:
    """Whether the station's outbox holds a committed action carrying `value`."""
    if not outbox.exists():
        return False
    try:
        with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=0.1) as db:
            rows = db.execute("SELECT payload FROM entries").fetchall()
    except sqlite3.OperationalError:  # the station is writing it right now
        return False
    return any(value in payload for (payload,) in rows)
