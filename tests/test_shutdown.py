"""A station always comes back: every way of stopping it, or of losing its terminal, ends the real
`kiosk` process within the shutdown deadline and takes the embedded server along, and a stalled
UI loop stops pinging systemd's watchdog.

The stations here are the real command in a real pseudo-terminal (or tmux) on a demo plant seeded
once. systemd is replaced only by what it hands a station: a datagram socket in $NOTIFY_SOCKET,
opened and read by the test.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from textual.app import App

from kiosk import lifecycle, watchdog
from kiosk.driver import HANG_ON_SHUTDOWN_ENV
from kiosk.orphans import PARENT_ENV
from kiosk.server import embedded
from tests.conftest import LiveServer
from tests.station import running

ROOT = Path(__file__).resolve().parents[1]
KIOSK = str(Path(sys.executable).parent / "kiosk")
SETSID = shutil.which("setsid")
SLACK = 2.0
"""Past the deadline: what a loaded machine may take to run the forced exit."""
GONE_WITHIN = lifecycle.DEADLINE + SLACK
START_TIMEOUT = 90.0
CSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>]")


# --- processes ------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat from its state field on (the command name before it may hold spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


@dataclass(frozen=True)
class Proc:
    """A process by pid and start time, so that a recycled pid is never taken for it."""

    pid: int
    started: str

    @classmethod
    def of(cls, pid: int) -> Proc:
        return cls(pid, _stat(pid)[19])

    def running(self) -> bool:
        """An exited process is gone even before its parent reaps it (a zombie has ended)."""
        try:
            fields = _stat(self.pid)
        except (FileNotFoundError, ProcessLookupError):
            return False
        return fields[19] == self.started and fields[0] not in ("Z", "X")

    def wait_gone(self, timeout: float) -> float | None:
        """Seconds until it is gone, or None if it still runs after timeout."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if not self.running():
                return time.monotonic() - start
            time.sleep(0.02)
        return None

    def kill(self) -> None:
        if self.running():
            os.kill(self.pid, signal.SIGKILL)


def embedded_servers(parent: int) -> list[Proc]:
    """The `kiosk serve --embedded` children of a station."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat(int(entry.name))[1])
            if ppid == parent and b"--embedded" in (entry / "cmdline").read_bytes():
                found.append(Proc.of(int(entry.name)))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


# --- systemd's side of $NOTIFY_SOCKET -------------------------------------------------------------


class Notifications:
    """A real AF_UNIX datagram socket in the abstract namespace, as systemd may hand out; a thread
    records every message with the time it arrived."""

    def __init__(self) -> None:
        self.address = f"@kiosk-test-{uuid.uuid4().hex}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + self.address[1:])
        self._sock.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received.append((time.monotonic(), data.decode()))

    def messages(self) -> list[str]:
        return [text for _, text in self.received]

    def between(self, message: str, start: float, end: float) -> int:
        return sum(1 for at, text in self.received if text == message and start <= at <= end)

    def wait_for(self, message: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while message not in self.messages():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {message} within {timeout} s; got {self.messages()}")
            time.sleep(0.02)

    def close(self) -> None:
        self._closed.set()
        self._reader.join(5)
        self._sock.close()


@pytest.fixture
def notifications() -> Iterator[Notifications]:
    found = Notifications()
    yield found
    found.close()


# --- stations in a pseudo-terminal ----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_plant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A station data directory with the demo plant seeded once (a fresh seed costs a second)."""
    seeded = tmp_path_factory.mktemp("seeded")
    subprocess.run(
        [sys.executable, "-m", "kiosk", "serve", "--embedded", "--demo", "--database-url",
         f"sqlite:///{seeded / 'plant.db'}", "--secret-file", str(seeded / "plant-secret")],
        stdin=subprocess.DEVNULL,  # closed stdin: seed, say ready, stop
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
        timeout=120,
        check=True,
    )  # fmt: skip
    return seeded


def data_dir(demo_plant: Path, where: Path) -> Path:
    shutil.copytree(demo_plant, where)
    return where


def station_env(data: Path, notify: Notifications, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in watchdog.ENV_VARS}
    env.update(
        KIOSK_DATA_DIR=str(data),
        KIOSK_CONFIG_FILE=str(data / "none.toml"),
        TERM="xterm-256color",
        NOTIFY_SOCKET=notify.address,
    )
    env.update(extra)
    return env


class PtyStation:
    """`kiosk` on a pseudo-terminal the test holds the other end of, read as a terminal would.

    controlling: the station is its terminal's session leader (as under tmux, ssh or a getty) and
    gets the kernel's SIGHUP when the terminal goes; otherwise (started by some wrapper) it has
    only the terminal itself to notice that."""

    def __init__(self, env: dict[str, str], *, controlling: bool = True) -> None:
        assert SETSID is not None, "setsid (util-linux) is needed"
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        argv = [SETSID, "--ctty", KIOSK] if controlling else [KIOSK]
        # setsid execs in place (the child is no group leader), so the pid is the station's.
        # In its data directory: whatever it leaves (a core file after SIGABRT) stays in tmp.
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=env["KIOSK_DATA_DIR"],
            start_new_session=not controlling,
        )  # fmt: skip
        os.close(slave)
        self.master: int | None = master
        self.output = bytearray()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        # Short selects, never a blocked read: closing the master must really close it, and a
        # read in progress would keep the terminal open until it returned.
        assert self.master is not None
        while not self._stop.is_set():
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.output.extend(data)

    def screen_text(self) -> str:
        """What was drawn, without the escape sequences between the runs of text."""
        return CSI.sub("", bytes(self.output).decode(errors="replace"))

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen_text():
            assert time.monotonic() < deadline, f"{text!r} never drawn"
            time.sleep(0.05)

    def type(self, keys: bytes, gap: float = 0.0) -> None:
        """All at once, as a keyboard-wedge reader sends; or a key every gap seconds, as people do."""
        assert self.master is not None
        for chunk in [bytes([key]) for key in keys] if gap else [keys]:
            os.write(self.master, chunk)
            time.sleep(gap)

    def admin_exit(self) -> None:
        """F12, an admin's badge and PIN: the station's one way out, up to the last Enter."""
        self.type(b"\x1b[24~")
        self.wait_for("Exit the station (admin)")
        self.type(b"90001\r")
        time.sleep(0.5)  # a person's PIN comes well after the reader's burst
        self.type(b"9999", gap=0.12)
        self.type(b"\r")

    def hang_up(self) -> None:
        """Close the terminal, as tmux does when its pane or server is killed."""
        self._stop.set()
        self._reader.join(5)
        if self.master is not None:
            os.close(self.master)
            self.master = None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.hang_up()


@pytest.fixture
def stations() -> Iterator[list[PtyStation]]:
    started: list[PtyStation] = []
    yield started
    for station in started:
        children = embedded_servers(station.process.pid)
        station.close()
        for child in children:
            child.kill()


def start_station(
    stations: list[PtyStation], env: dict[str, str], notify: Notifications, **kw: bool
) -> tuple[PtyStation, Proc]:
    """A station up (READY=1 said) and connected to its embedded server."""
    station = PtyStation(env, **kw)
    stations.append(station)
    notify.wait_for("READY=1", START_TIMEOUT)
    station.wait_for("ONLINE", START_TIMEOUT)  # READY=1 is the first frame; the server comes after
    servers = embedded_servers(station.process.pid)
    assert len(servers) == 1, servers
    return station, servers[0]


# --- a shutdown that hangs ------------------------------------------------------------------------

STOPS = {
    "SIGTERM": (True, {"SIGTERM"}),
    "admin exit": (True, {"admin exit"}),
    # Whichever notices first: the kernel's SIGHUP, the watch on the tty, a write that failed, or
    # Textual reading the end of its input and closing the app (seen on a loaded machine).
    "terminal closed": (
        True,
        {"SIGHUP", "terminal hung up", "terminal write failed", "the app closed"},
    ),
    "terminal closed, no session leader": (
        False,
        {"terminal hung up", "terminal write failed", "the app closed"},
    ),
}


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", list(STOPS))
def test_a_shutdown_stuck_in_the_terminal_writer_still_ends_within_the_deadline(
    how: str,
    demo_plant: Path,
    tmp_path: Path,
    notifications: Notifications,
    stations: list[PtyStation],
) -> None:
    controlling, reasons = STOPS[how]
    data = data_dir(demo_plant, tmp_path / "data")
    env = station_env(data, notifications, **{HANG_ON_SHUTDOWN_ENV: "1"})
    station, server = start_station(stations, env, notifications, controlling=controlling)

    if how == "admin exit":
        station.admin_exit()
    stopped_at = time.monotonic()
    if how == "SIGTERM":
        station.process.send_signal(signal.SIGTERM)
    elif how.startswith("terminal closed"):
        station.hang_up()
    code = station.process.wait(GONE_WITHIN + 5)
    took = time.monotonic() - stopped_at

    # It waited for the orderly shutdown as long as the deadline, not longer, and said why.
    assert code == lifecycle.FORCED_EXIT
    assert lifecycle.DEADLINE - 0.5 < took < GONE_WITHIN, took
    assert server.wait_gone(SLACK) is not None, "the embedded server outlived its station"
    log = (data / lifecycle.LOG_NAME).read_text()
    forced = [line for line in log.splitlines() if "forced exit 124" in line]
    assert len(forced) == 1, log
    assert any(f"the shutdown after {reason} did not finish" in forced[0] for reason in reasons), log
    assert "in _maybe_hang" in log  # every thread's stack: the stuck writer among them
    assert "STOPPING=1" in notifications.messages()
    if not how.startswith("terminal closed"):
        # The terminal is still there: given back, out of the alternate screen, and told why.
        time.sleep(0.3)
        after = bytes(station.output).rpartition(b"\x1b[?1049h")[2]
        assert b"\x1b[?1049l" in after and b"\x1b[?25h" in after
        assert b"kiosk: forced exit 124" in after


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("controlling", [True, False], ids=["session leader", "no session leader"])
def test_a_closed_terminal_ends_the_station_in_order(
    controlling: bool,
    demo_plant: Path,
    tmp_path: Path,
    notifications: Notifications,
    stations: list[PtyStation],
) -> None:
    data = data_dir(demo_plant, tmp_path / "data")
    env = station_env(data, notifications, WATCHDOG_USEC="600000")
    station, server = start_station(stations, env, notifications, controlling=controlling)
    time.sleep(1.0)
    assert notifications.messages().count("WATCHDOG=1") >= 3  # every 0.2 s while it runs
    stopped_at = time.monotonic()
    station.hang_up()
    code = station.process.wait(GONE_WITHIN + 5)
    took = time.monotonic() - stopped_at
    assert code == 0, (data / lifecycle.LOG_NAME).read_text()
    assert took < lifecycle.DEADLINE, took  # done in order, long before the deadline
    assert not server.running()
    assert "stopped after" in (data / lifecycle.LOG_NAME).read_text()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_station_stopped_while_it_starts_leaves_nothing_behind(
    demo_plant: Path, tmp_path: Path, notifications: Notifications, stations: list[PtyStation]
) -> None:
    data = data_dir(demo_plant, tmp_path / "data")
    station = PtyStation(station_env(data, notifications))
    stations.append(station)
    deadline = time.monotonic() + START_TIMEOUT
    while not (servers := embedded_servers(station.process.pid)):
        assert time.monotonic() < deadline, "the embedded server never started"
        time.sleep(0.01)
    station.process.send_signal(signal.SIGTERM)  # its server is starting, no screen drawn yet
    assert station.process.wait(GONE_WITHIN + 5) == 0
    assert servers[0].wait_gone(embedded.GRACE + SLACK) is not None
    assert "READY=1" not in notifications.messages()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_watchdog_kill_leaves_every_stack_in_the_journal_and_no_server(
    demo_plant: Path, tmp_path: Path, notifications: Notifications, stations: list[PtyStation]
) -> None:
    data = data_dir(demo_plant, tmp_path / "data")
    env = station_env(data, notifications, WATCHDOG_USEC="20000000")
    station, server = start_station(stations, env, notifications)
    station.process.send_signal(signal.SIGABRT)  # what systemd sends when the pings stop
    assert station.process.wait(GONE_WITHIN) == -signal.SIGABRT
    time.sleep(0.3)
    # fd 2 goes to the journal under the unit; here it is the terminal.
    shown = bytes(station.output).decode(errors="replace")
    assert "Fatal Python error: Aborted" in shown
    assert "Current thread 0x" in shown  # the main thread: the UI loop, where a freeze would be
    assert "in run_input_thread" in shown and "_writer_thread.py" in shown  # and all the others
    assert server.wait_gone(embedded.GRACE + SLACK) is not None


# --- the embedded server never outlives its station -----------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_sigkilled_station_takes_its_embedded_server_along(
    demo_plant: Path, tmp_path: Path, notifications: Notifications, stations: list[PtyStation]
) -> None:
    data = data_dir(demo_plant, tmp_path / "data")
    station, server = start_station(stations, station_env(data, notifications), notifications)
    station.process.kill()
    station.process.wait(5)
    assert server.wait_gone(3.0) is not None, "the embedded server outlived a SIGKILLed station"


ORPHAN_PARENT = """
import os, subprocess, sys, time
read_end, write_end = os.pipe()
# A holder keeps the server's stdin open: its end-of-file never comes.
holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], pass_fds=(write_end,))
server = subprocess.Popen(
    [sys.executable, "-m", "kiosk", "serve", "--embedded", "--demo", "--database-url", sys.argv[1],
     "--secret-file", sys.argv[2]],
    stdin=read_end, stdout=subprocess.PIPE, env={**os.environ, sys.argv[3]: str(os.getpid())},
)
print(server.pid, holder.pid, flush=True)
server.stdout.readline()
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_server_leaves_when_its_station_dies_even_with_its_stdin_held_open(
    demo_plant: Path, tmp_path: Path
) -> None:
    data = data_dir(demo_plant, tmp_path / "data")
    args = [f"sqlite:///{data / 'plant.db'}", str(data / "plant-secret"), PARENT_ENV]
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_PARENT, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert parent.stdout is not None
    server_pid, holder_pid = (int(pid) for pid in parent.stdout.readline().split())
    server, holder = Proc.of(server_pid), Proc.of(holder_pid)
    try:
        assert parent.stdout.readline().strip() == "ready"
        parent.kill()
        parent.wait(5)
        took = server.wait_gone(embedded.GRACE + SLACK)
        assert took is not None, "an orphaned server kept running"
        assert holder.running()  # its stdin was open all along: the parent's death alone did it
    finally:
        for proc in (server, holder):
            proc.kill()
        if parent.poll() is None:
            parent.kill()
        parent.wait(5)


# --- systemd's watchdog ---------------------------------------------------------------------------


async def _block_event_loop(_app: App[int], seconds: float) -> None:
    time.sleep(seconds)  # the whole loop: nothing of the app runs


async def _stall_message_queue(app: App[int], seconds: float) -> None:
    # The loop runs on (timers fire), but the app's messages wait behind this callback.
    app.call_later(asyncio.sleep, seconds)
    await asyncio.sleep(seconds)


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "stall", [_block_event_loop, _stall_message_queue], ids=["loop blocked", "queue stalled"]
)
async def test_the_watchdog_is_pinged_while_the_ui_runs_and_not_while_it_stalls(
    stall: Callable[[App[int], float], Awaitable[None]],
    live_server: LiveServer,
    tmp_path: Path,
    notifications: Notifications,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", notifications.address)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")  # pings every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await pilot.pause(1.0)
        # READY once painted; on a loaded machine the first pings may come before it (systemd
        # takes them either way).
        assert "READY=1" in notifications.messages()
        running_from = time.monotonic()
        await pilot.pause(1.0)
        stalled_from = time.monotonic()
        await stall(pilot.app, 1.0)
        stalled_to = time.monotonic()
        await pilot.pause(0.6)

    assert notifications.between("WATCHDOG=1", running_from, stalled_from) >= 5
    # A ping sent just before the stall may arrive a moment into it.
    assert notifications.between("WATCHDOG=1", stalled_from + 0.05, stalled_to) == 0
    assert notifications.between("WATCHDOG=1", stalled_to, time.monotonic()) >= 2


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
async def test_without_systemd_the_station_sends_nothing(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in watchdog.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await pilot.pause(0.3)
        assert pilot.app.is_running
    assert watchdog.notify("READY=1") is False


def test_notify_speaks_to_a_socket_path_and_reads_the_watchdog_as_systemd_sets_it() -> None:
    # A short directory: a socket path must fit in 108 bytes, pytest's tmp_path may not.
    with (
        tempfile.TemporaryDirectory(prefix="kiosk-", dir="/tmp") as short,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener,
    ):
        path = Path(short) / "notify"
        listener.bind(str(path))
        listener.settimeout(5)
        assert watchdog.notify("WATCHDOG=1", {"NOTIFY_SOCKET": str(path)})
        assert listener.recv(100) == b"WATCHDOG=1"
        assert watchdog.notify("READY=1", {"NOTIFY_SOCKET": f"{short}/nobody"}) is False
    pid = str(os.getpid())
    assert watchdog.watchdog_seconds({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": pid}) == 20.0
    assert watchdog.watchdog_seconds({"WATCHDOG_USEC": "20000000"}) == 20.0
    # Meant for another process (the variables leaked into a child), or switched off.
    assert watchdog.watchdog_seconds({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog.watchdog_seconds({"WATCHDOG_USEC": "0"}) is None


def test_the_station_unit_uses_the_watchdog() -> None:
    unit = (ROOT / "scripts" / "kiosk-station.service").read_text().splitlines()
    for line in ["Type=notify", "NotifyAccess=main", "WatchdogSec=20s", "Restart=always"]:
        assert line in unit
    stop = next(line for line in unit if line.startswith("TimeoutStopSec="))
    assert float(stop.removeprefix("TimeoutStopSec=").removesuffix("s")) > GONE_WITHIN


# --- 50 killed terminals under load ---------------------------------------------------------------

TMUX = shutil.which("tmux")
KILLS = 50
AT_ONCE = 5
"""Stations per round, their terminals all killed at once."""


class CpuBurners:
    """Every core kept busy, as on the loaded machine where stations used to stay behind.

    Paused while the stations start (their start-up is not under test, and the loop must fit in
    CI), running while their terminals are killed and they shut down."""

    def __init__(self) -> None:
        self.burners = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 2)
        ]
        self.pause()

    def _signal(self, signum: int) -> None:
        for burner in self.burners:
            burner.send_signal(signum)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        for burner in self.burners:
            burner.kill()
            burner.wait(10)


@dataclass
class TmuxStation:
    """A station in a tmux server of its own, so that killing the server kills only its pane."""

    socket_name: str
    data: Path
    notify: Notifications
    tmux_dir: Path
    """TMUX_TMPDIR: the server sockets stay in the test's tmp directory."""
    station: Proc | None = None
    server: Proc | None = None

    def start(self, env: dict[str, str]) -> None:
        assert TMUX is not None
        pane = subprocess.run(
            [TMUX, "-L", self.socket_name, "-f", "/dev/null", "new-session", "-d", "-x", "80",
             "-y", "24", "-P", "-F", "#{pane_pid}", f"exec {KIOSK}"],
            env={**env, "TMUX_TMPDIR": str(self.tmux_dir)},
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        self.station = Proc.of(int(pane.stdout))  # exec: the pane's shell becomes the station

    def ready(self) -> None:
        assert self.station is not None
        self.notify.wait_for("READY=1", START_TIMEOUT)
        [self.server] = embedded_servers(self.station.pid)

    def kill_terminal(self) -> None:
        assert TMUX is not None
        subprocess.run(
            [TMUX, "-L", self.socket_name, "kill-server"],
            env={**os.environ, "TMUX_TMPDIR": str(self.tmux_dir)},
            capture_output=True,
            timeout=30,
        )

    def forced(self) -> bool:
        log = self.data / lifecycle.LOG_NAME
        return log.exists() and "forced exit" in log.read_text()

    def cleanup(self) -> None:
        for proc in (self.station, self.server):
            if proc is not None:
                proc.kill()
        self.kill_terminal()
        self.notify.close()


def kill_round(batch: list[TmuxStation], burners: CpuBurners) -> list[float]:
    """Start every station of the batch, kill all their terminals under load; seconds until each
    station was gone, checking that its embedded server went with it."""
    for station in batch:
        env = station_env(station.data, station.notify)
        env.pop("TMUX", None)  # a test run from inside tmux must not nest into it
        station.start(env)
    for station in batch:
        station.ready()
    burners.resume()
    try:
        killed_at = time.monotonic()
        for station in batch:
            station.kill_terminal()
        exits = []
        for station in batch:
            assert station.station is not None and station.server is not None
            assert station.station.wait_gone(GONE_WITHIN + 5) is not None, "station outlived it"
            exits.append(time.monotonic() - killed_at)
            assert station.server.wait_gone(SLACK) is not None, "orphaned embedded server"
        return exits
    finally:
        burners.pause()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killing_the_tmux_server_of_a_running_station_50_times_under_load(
    demo_plant: Path, tmp_path: Path
) -> None:
    if TMUX is None:
        pytest.fail("tmux is needed for this test: apt-get install tmux")
    exits: list[float] = []
    forced = 0
    burners = CpuBurners()
    try:
        for round_ in range(KILLS // AT_ONCE):
            batch = [
                TmuxStation(
                    f"k{round_}-{n}",
                    data_dir(demo_plant, tmp_path / f"{round_}-{n}"),
                    Notifications(),
                    tmp_path,
                )
                for n in range(AT_ONCE)
            ]
            try:
                exits.extend(kill_round(batch, burners))
                forced += sum(station.forced() for station in batch)
            finally:
                for station in batch:
                    station.cleanup()
    finally:
        burners.stop()

    slowest, median = max(exits), sorted(exits)[len(exits) // 2]
    print(f"\n{len(exits)} stations gone after their tmux server was killed under load: "
          f"slowest {slowest:.1f} s, median {median:.1f} s, forced exits {forced}")  # fmt: skip
    assert len(exits) == KILLS
    assert slowest < GONE_WITHIN, exits
