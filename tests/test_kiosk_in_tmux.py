"""The real `kiosk` command in a real terminal (tmux): what an operator sees and types.

It starts the station on the embedded backend with the demo plant, signs in, opens TRV-1001,
tries the keys that end ordinary terminal programs, and leaves only through the admin exit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TMUX = shutil.which("tmux")


class Terminal:
    def __init__(self, session: str) -> None:
        self.session = session

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        return subprocess.run([TMUX, *args], check=True, capture_output=True, text=True).stdout

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def scan(self, text: str) -> None:
        """A keyboard-wedge reader: the whole code and Enter in one burst."""
        self.tmux("send-keys", "-t", self.session, "-l", text + "\r")

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
    if TMUX is None:
        pytest.fail("tmux is needed for this test: apt-get install tmux")
    session = f"kiosk-test-{os.getpid()}"
    kiosk = Path(sys.executable).parent / "kiosk"
    env = (
        f"KIOSK_DATA_DIR={tmp_path} KIOSK_CONFIG_FILE={tmp_path / 'none.toml'} TERM=xterm-256color"
    )
    subprocess.run(
        [
            TMUX,
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "80",
            "-y",
            "24",
            f"env {env} {kiosk}; echo KIOSK-EXITED $?; sleep 60",
        ],
        check=True,
    )
    term = Terminal(session)
    try:
        yield term
    finally:
        subprocess.run([TMUX, "kill-session", "-t", session], capture_output=True)


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
    terminal.wait_for("is not an admin")
    terminal.send("F12")
    terminal.wait_for("Exit the station (admin)")
    terminal.scan("90001")
    terminal.type("9999")
    terminal.send("Enter")
    shown = terminal.wait_for("KIOSK-EXITED 0")
    assert "Scan your badge" not in shown  # the alternate screen is gone: terminal restored
