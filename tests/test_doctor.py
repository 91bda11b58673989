"""`kiosk doctor` as an admin runs it: a real process, against the real server, a closed port,
a server whose clock is off, and the terminals a station meets (Linux console, small, dumb)."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.doctor import check_terminal
from tests.conftest import LiveServer, free_port
from tests.helpers import thin_client_home

GOOD_TERMINAL = {"COLUMNS": "100", "LINES": "30", "TERM": "xterm-256color"}


@pytest.fixture(autouse=True)
def station_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return thin_client_home(tmp_path, monkeypatch)


def doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiosk", "doctor", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **GOOD_TERMINAL, **env},
        timeout=60,
        check=False,
    )


def lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return done.stdout.splitlines()


def enroll(server: LiveServer, name: str) -> None:
    code = server.service.add_station(name, "ASSEMBLY")
    assert main(["enroll", "--server", server.url, "--code", code]) == 0


def test_all_ok_for_an_enrolled_station_on_a_live_server(live_server: LiveServer) -> None:
    enroll(live_server, "ST-20")

    done = doctor()  # server_url comes from the config that enroll wrote

    assert done.returncode == 0, done.stdout + done.stderr
    out = lines(done)
    assert all(line.startswith("ok   ") for line in out), out
    assert out[0] == "ok   terminal 100x30, TERM=xterm-256color, 256 colour system"
    assert "CryptFileKeyring" in out[1] and "holds this station's token" in out[1]
    assert out[2] == f"ok   server {live_server.url} answers /health"
    assert out[3].startswith("ok   clock within 60 s of the server")
    assert out[4] == f"ok   station ST-20 (ASSEMBLY) is enrolled at {live_server.url}"


def test_a_closed_port_is_a_server_problem(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    done = doctor("--server", url)

    assert done.returncode == 1
    out = "\n".join(lines(done))
    assert f"PROBLEM server {url} unreachable (ConnectError" in out
    assert "check the network cable" in out
    assert "PROBLEM clock skew unknown: the server did not answer" in out
    assert f"station not enrolled: run kiosk enroll --server {url} --code CODE" in out


def test_a_revoked_station_is_reported_not_enrolled(live_server: LiveServer) -> None:
    enroll(live_server, "ST-21")
    live_server.service.revoke_station("ST-21")

    done = doctor()

    assert done.returncode == 1
    assert lines(done)[-1].startswith(
        "PROBLEM station not enrolled: the server refuses this station's token"
    )


class _SkewedClock(http.server.BaseHTTPRequestHandler):
    skew = -300.0  # the server's clock is five minutes behind this machine

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(time.time() + self.skew, usegmt=True)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def skewed_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SkewedClock)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_clock_skew_over_a_minute_is_a_problem(skewed_server: str) -> None:
    done = doctor("--server", skewed_server)

    assert done.returncode == 1
    clock = next(line for line in lines(done) if "clock" in line)
    seconds = re.match(r"PROBLEM clock is (\d+) s ahead of the server", clock)
    assert seconds is not None, clock
    assert 299 <= int(seconds.group(1)) <= 301  # the Date header has whole seconds
    assert "timedatectl set-ntp true" in clock


def test_embedded_station_needs_no_keyring_or_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

    done = doctor()

    assert done.returncode == 0, done.stdout
    assert lines(done)[1:] == [
        "ok   keyring: not needed (embedded server, no server_url set)",
        "ok   server: embedded (started by the station, no server_url set)",
        "ok   clock: the embedded server shares this machine's clock",
    ]


def test_linux_console_means_eight_colours_and_the_console_theme() -> None:
    done = doctor(TERM="linux", TEXTUAL_COLOR_SYSTEM="standard")

    assert done.returncode == 0
    assert lines(done)[0] == (
        "ok   terminal 100x30, TERM=linux, standard colour system, "
        "8 colours (Linux console) → theme kiosk-console"
    )


@pytest.mark.parametrize(
    ("env", "size", "problem"),
    [
        (
            {"TERM": "linux", "COLORTERM": "truecolor"},
            (80, 25),
            "set TEXTUAL_COLOR_SYSTEM=standard",
        ),
        ({"TERM": "linux", "TEXTUAL_COLOR_SYSTEM": "256"}, (80, 25), "shows 8 colours"),
        ({"TERM": "dumb"}, (80, 25), "set TERM=linux on the console"),
        ({}, (80, 25), "no colour or cursor control"),
        ({"TERM": "xterm", "TEXTUAL_COLOR_SYSTEM": "16"}, (80, 25), "is not one of"),
        ({"TERM": "linux"}, (64, 20), "64x20 is smaller than 80x24"),
        ({"TERM": "linux"}, (0, 0), "not a terminal"),
    ],
)
def test_terminal_problems_name_their_fix(
    env: dict[str, str], size: tuple[int, int], problem: str
) -> None:
    check = check_terminal(env, size)
    assert not check.ok
    assert check.line().startswith("PROBLEM terminal")
    assert problem in check.line()


def test_a_small_terminal_fails_the_whole_run() -> None:
    done = doctor(COLUMNS="70", LINES="20")
    assert done.returncode == 1
    assert lines(done)[0].startswith("PROBLEM terminal 70x20 is smaller than 80x24")
