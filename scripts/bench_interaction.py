"""Interaction latency of the station, each figure beside a minimal Textual app in the same run.

Every app runs in its own real pseudo-terminal at 80x24, started the way scripts/bench_startup.py
starts them, against the reference server on loopback. Three measurements, each in interleaved
pairs (one action to the minimal app, its paint awaited, then the same to the station):

- key -> echo: the station signed in on traveler TRV-1002 step 20.1 with the torque field
  focused, a digit every 150 ms (a brisk typist), against the minimal app's Input; the latency
  runs from the write to the terminal until the pty shows the field's new text.
- scan -> traveler painted: from the queue, a traveler number arrives as a wired scanner's burst;
  timed until the traveler's header and its current step are on the terminal (then Escape back to
  the queue). TRV-1001 (5 steps, a drawing) and TRV-2000 (200 steps) are the demo's; TRV-0006
  (6 steps) and TRV-5000 (5,000 steps: 250 operations of 20) are added by this script to its own
  plant, never to the shipped demo. The
  minimal app pushes a screen naming what was typed.
- queue: a badge scan until the first rows of the queue are on the terminal (then sign out),
  on a plant of 100 travelers and on one of 10,000, both created by this script; the station's
  peak RSS on each is printed too.

Figures are printed with "met"/"NOT met" per goal, never asserted: timing on a shared machine is
a measurement, not a test.

    .venv/bin/python scripts/bench_interaction.py [--keys 120] [--gap-ms 150] [--scans 20]
        [--queues 10] [--only echo,scan,queue]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = b"EADY-MARK"  # the "R" sits under the cursor, in another style
MINIMAL_APP = textwrap.dedent(
    """
    from textual.app import App
    from textual.widgets import Input

    class Minimal(App):
        def compose(self):
            yield Input(placeholder="READY-MARK")

        def on_mount(self):
            field = self.query_one(Input)
            field.cursor_blink = False  # as the station's data item fields
            field.focus()

    Minimal().run()
    """
)
# The minimal app for scans and the queue: Enter pushes a screen saying what was typed, Escape
# (or the next Enter) goes back: the least a Textual app does to show a new screen.
MINIMAL_SCREENS = textwrap.dedent(
    """
    from textual.app import App
    from textual.screen import Screen
    from textual.widgets import Footer, Input, Static

    class Shown(Screen):
        BINDINGS = [("escape", "app.pop_screen", "Back")]

        def __init__(self, text):
            super().__init__()
            self.text = text

        def compose(self):
            yield Static(f"SHOWN-MARK {self.text}")
            yield Footer()

    class Minimal(App):
        def compose(self):
            yield Input(placeholder="READY-MARK")
            yield Footer()

        def on_mount(self):
            field = self.query_one(Input)
            field.cursor_blink = False
            field.focus()

        def on_input_submitted(self, event):
            event.input.value = ""
            self.push_screen(Shown(event.value))

    Minimal().run()
    """
)
SHOWN = b"SHOWN-MARK"
ESCAPE = b"\x1b"
F10 = b"\x1b[21~"
GOAL_SCAN_P95_MS = 100.0
GOAL_GROWTH = 2.0
GOAL_ECHO = 1.5
BENCH_TRAVELER = "TRV-5000"
BENCH_OPERATIONS, BENCH_STEPS_PER_OPERATION = 250, 20
SHORT_TRAVELER = "TRV-0006"
"""Six steps in one operation, no drawing: the short traveler the goal names (TRV-1001 has 5)."""
F2 = b"\x1bOQ"
CLEAR_FIELD = b"\x15"  # Ctrl+U: Input deletes everything left of the cursor
KEYS_PER_GROUP = 8  # the field is cleared between groups so it never scrolls


@dataclass
class Terminal:
    """One app in its own pty; everything it writes is kept in `seen`."""

    label: str
    proc: subprocess.Popen[bytes]
    master: int
    seen: bytearray = field(default_factory=bytearray)

    @classmethod
    def start(cls, label: str, argv: list[str], env: dict[str, str]) -> Terminal:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True, cwd=ROOT
        )
        os.close(slave)
        return cls(label, proc, master)

    def drain(self, timeout: float = 0.0) -> bool:
        """Read what is there (waiting up to `timeout`); False when nothing came."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            raise RuntimeError(f"{self.label} exited: {self.tail()}")
        self.seen += chunk
        return True

    def wait_for(self, marker: bytes, timeout: float = 30.0) -> None:
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while marker not in self.seen[max(0, start - len(marker)) :]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label}: no {marker!r} after {timeout} s: {self.tail()}")
            self.drain(0.05)

    def quiet(self, seconds: float) -> None:
        """Wait until the app has drawn nothing for `seconds`."""
        while self.drain(seconds):
            pass

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def echo_ms(self, key: bytes, expect: bytes, timeout: float = 5.0) -> float:
        """Write `key`; ms until `expect` (the field's new tail) shows on the terminal."""
        return self.paint_ms(key, (expect,), timeout)

    def paint_ms(self, data: bytes, expect: tuple[bytes, ...], timeout: float = 10.0) -> float:
        """Write `data`; ms until every one of `expect` has been drawn since."""
        start = len(self.seen)
        began = time.perf_counter()
        self.send(data)
        deadline = time.monotonic() + timeout
        while not all(e in self.seen[start:] for e in expect):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label}: {data!r} never drew {expect}: {self.tail()}")
            self.drain(0.5)
        return (time.perf_counter() - began) * 1000

    def peak_rss_mib(self) -> float:
        """The app's peak resident memory so far (VmHWM), in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def tail(self) -> str:
        return bytes(self.seen[-400:]).decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def station_token(data: Path) -> str:
    from kiosk.server.app import ServerConfig, open_service

    svc = open_service(ServerConfig(f"sqlite:///{data / 'plant.db'}", data / "secret"))
    try:
        return svc.local_station_token("BENCH-01", "ASSEMBLY")
    finally:
        svc.store.dispose()


def long_traveler(
    number: str = BENCH_TRAVELER,
    operations: int = BENCH_OPERATIONS,
    steps: int = BENCH_STEPS_PER_OPERATION,
) -> dict[str, object]:
    """TRV-5000: 5,000 steps, for this benchmark only (the shipped demo stops at 200); or
    another traveler of `operations` x `steps` drilling steps."""
    routing = [
        {
            "number": str(op * 10),
            "name": f"Skin panel station {op}",
            "work_center": "ASSEMBLY",
            "steps": [
                {
                    "number": f"{op * 10}.{n}",
                    "title": f"Drill and fasten station {op}-{n}",
                    "instructions": f"Drill hole pattern {op}-{n} to 4.83 mm, install HL10 pin.",
                    "items": [
                        {
                            "label": f"Hole diameter {op}-{n}",
                            "kind": "measurement",
                            "unit": "mm",
                            "nominal": 4.83,
                            "lower": 4.80,
                            "upper": 4.86,
                        }
                    ],
                }  # fmt: skip
                for n in range(1, steps + 1)
            ],
        }
        for op in range(1, operations + 1)
    ]
    return {
        "number": f"WO-{number.removeprefix('TRV-')}", "part_number": "5590-100",
        "part_name": "Fuselage skin panel",
        "quantity": 1, "travelers": [{"number": number, "lot": f"LOT-{number.removeprefix('TRV-')}"}],
        "routing": routing,
    }  # fmt: skip


def many_travelers(count: int) -> dict[str, object]:
    """`count` two-step travelers waiting at the bench station's work center."""
    return {
        "number": "WO-5901", "part_number": "5590-200", "part_name": "Clip", "quantity": count,
        "travelers": [{"number": f"TRV-Q{n:05d}", "serial": f"SN-Q{n:05d}"} for n in range(count)],
        "routing": [{"number": "10", "name": "Fit clip", "work_center": "ASSEMBLY", "steps": [
            {"number": "10.1", "title": "Fit clip", "instructions": "Fit the clip.",
             "items": [{"label": "Fitted", "kind": "pass_fail"}]},
            {"number": "10.2", "title": "Torque clip", "instructions": "Torque the clip.",
             "items": [{"label": "Done", "kind": "acknowledgement"}]}]}],
    }  # fmt: skip


def make_plant(data: Path, work_orders: list[dict[str, object]]) -> None:
    """The demo plant plus the benchmark's own work orders, loaded before the server starts."""
    from kiosk.server import erp
    from kiosk.server.app import ServerConfig, open_service

    svc = open_service(ServerConfig(f"sqlite:///{data / 'plant.db'}", data / "secret", demo=True))
    try:
        with svc.store.begin() as conn:
            erp.load(conn, erp.PlantImport.model_validate({"work_orders": work_orders}))
    finally:
        svc.store.dispose()


def step_counts(data: Path, numbers: list[str]) -> dict[str, int]:
    """How many steps each traveler has, as the plant in `data` holds them."""
    from kiosk.server.app import ServerConfig, open_service

    svc = open_service(ServerConfig(f"sqlite:///{data / 'plant.db'}", data / "secret"))
    try:
        return {number: len(svc.traveler(number).steps) for number in numbers}
    finally:
        svc.store.dispose()


def start_server(python: str, data: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [python, "-m", "kiosk", "serve", "--demo", "--port", str(port),
         "--database-url", f"sqlite:///{data / 'plant.db'}", "--secret-file", str(data / "secret")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        if time.monotonic() > deadline:
            server.kill()
            raise SystemExit("server did not start")
        time.sleep(0.05)
    return server


def to_measurement_field(station: Terminal) -> None:
    """Sign in, open TRV-1002, start step 20.1, scan its wrench: the torque field has focus.

    Each code is written in one go, as a wired scanner's burst arrives in one terminal read.
    """
    station.wait_for(b"Scan your badge")
    station.quiet(0.5)
    station.send(b"10001\r")
    station.wait_for(b"TRV-1002")
    station.quiet(0.5)
    station.send(b"TRV-1002\r")
    station.wait_for(b"Torque actuator")
    station.quiet(0.5)
    station.send(F2)
    station.quiet(0.8)
    station.send(b"TL-0001\r")
    station.quiet(0.8)


def measure(apps: list[Terminal], keys: int, gap_ms: float) -> dict[str, list[float]]:
    """Interleaved pairs: each app gets a key every `gap_ms`, staggered by half of it."""
    results: dict[str, list[float]] = {app.label: [] for app in apps}
    digits = "123456789"
    typed = ""
    for n in range(keys):
        if n % KEYS_PER_GROUP == 0 and n:
            for app in apps:
                app.send(CLEAR_FIELD)
            for app in apps:
                app.quiet(0.3)
            typed = ""
        char = digits[n % len(digits)]
        # The new text as the field draws it: the previous digit and the new one, side by side.
        expect = (typed[-1:] + char).encode()
        typed += char
        for app in apps:
            began = time.perf_counter()
            results[app.label].append(app.echo_ms(char.encode(), expect))
            for other in apps:  # keep both terminals drained while the other one is timed
                other.drain()
            left = gap_ms / len(apps) / 1000 - (time.perf_counter() - began)
            if left > 0:
                time.sleep(left)
    return results


def p95(values: list[float]) -> float:
    if len(values) < 2:  # a run of one round (a quick check) has no spread
        return max(values)
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def report(results: dict[str, list[float]], baseline: str, subject: str, gap_ms: float) -> None:
    base, ours = results[baseline], results[subject]
    print(f"key -> echo, {len(base)} interleaved pairs, keys {gap_ms:g} ms apart per app")
    print(f"{'what':<40} {'p50':>8} {'p95':>8} {'max':>8}")
    for label, values in ((baseline, base), (subject, ours)):
        print(row(label, values))
    ratios = [b and o / b for b, o in zip(base, ours, strict=True)]
    print(
        f"median of pair ratios station/minimal: {statistics.median(ratios):.2f}x; "
        f"median pair difference: {statistics.median(o - b for b, o in zip(base, ours, strict=True)):+.1f} ms"
    )
    goal = p95(ours) / p95(base)
    print(
        f"p95 station / p95 minimal: {goal:.2f}x (goal <= {GOAL_ECHO:g}x): {verdict(goal <= GOAL_ECHO)}"
    )


def row(label: str, values: list[float]) -> str:
    return (
        f"{label:<40} {statistics.median(values):6.1f}ms {p95(values):6.1f}ms {max(values):6.1f}ms"
    )


# --- scan -> traveler painted ----------------------------------------------------------------------


def to_queue(station: Terminal) -> None:
    station.wait_for(b"Scan your badge")
    station.quiet(0.5)
    station.send(b"10001\r")
    station.wait_for(b"Work queue")
    station.quiet(0.8)


def scan_markers(number: str) -> tuple[bytes, ...]:
    """Painted: the traveler's header, and its current step in the detail pane ("· rev")."""
    return (f"{number} ·".encode(), b" rev ")


def back_to(app: Terminal, marker: bytes) -> None:
    app.send(ESCAPE)
    app.wait_for(marker)
    app.quiet(0.3)


def measure_scans(
    minimal: Terminal, station: Terminal, numbers: list[str], rounds: int
) -> dict[str, list[float]]:
    """Per round and traveler: the minimal app shows a screen, then the station a traveler."""
    results: dict[str, list[float]] = {n: [] for n in [*numbers, minimal.label]}
    for _ in range(rounds):
        for number in numbers:
            results[minimal.label].append(minimal.paint_ms(f"{number}\r".encode(), (SHOWN,)))
            back_to(minimal, READY)
            results[number].append(station.paint_ms(f"{number}\r".encode(), scan_markers(number)))
            station.quiet(0.3)
            back_to(station, b"Work queue")
    return results


def report_scans(results: dict[str, list[float]], steps: dict[str, int], baseline: str) -> None:
    base = results[baseline]
    print(f"scan -> traveler painted, {len(base) // len(steps)} rounds of interleaved pairs")
    print(f"{'what':<40} {'p50':>8} {'p95':>8} {'max':>8} {'x minimal':>10}")
    print(row(baseline + " (screen push)", base))
    per_size = len(base) // len(steps)
    for n, (number, count) in enumerate(steps.items()):
        pairs = base[n :: len(steps)][:per_size]
        ratio = statistics.median(o / b for b, o in zip(pairs, results[number], strict=True))
        print(f"{row(f'station, {number} ({count:,} steps)', results[number])} {ratio:9.2f}x")
    *names, large_name = list(steps)  # the goal for each but the largest; the growth to it
    for number in names:
        value = p95(results[number])
        print(
            f"scan -> {number} p95 {value:.1f} ms (goal <= {GOAL_SCAN_P95_MS:g} ms): "
            f"{verdict(value <= GOAL_SCAN_P95_MS)}"
        )
    growth = p95(results[large_name]) / p95(results[names[-1]])
    print(
        f"scan -> traveler p95 {large_name} / {names[-1]}: {growth:.2f}x "
        f"(goal <= {GOAL_GROWTH:g}x): {verdict(growth <= GOAL_GROWTH)}"
    )


# --- the queue ------------------------------------------------------------------------------------


def measure_queues(
    minimal: Terminal, stations: list[Terminal], rounds: int
) -> dict[str, list[float]]:
    """Per round and plant: the minimal app shows a screen, then a station its queue on a badge."""
    results: dict[str, list[float]] = {t.label: [] for t in [minimal, *stations]}
    for _ in range(rounds):
        for station in stations:
            results[minimal.label].append(minimal.paint_ms(b"10001\r", (SHOWN,)))
            back_to(minimal, READY)
            results[station.label].append(station.paint_ms(b"10001\r", (b"Work queue", b"TRV-")))
            station.quiet(0.3)
            station.send(F10)
            station.wait_for(b"Scan your badge")
            station.quiet(0.5)
    return results


def report_queues(
    results: dict[str, list[float]], minimal: Terminal, stations: list[Terminal]
) -> None:
    base = results[minimal.label]
    print(f"badge -> queue painted, {len(base) // len(stations)} rounds of interleaved pairs")
    print(f"{'what':<40} {'p50':>8} {'p95':>8} {'max':>8} {'peak RSS':>10}")
    print(f"{row(minimal.label + ' (screen push)', base)} {minimal.peak_rss_mib():8.1f}Mi")
    for station in stations:
        print(f"{row(station.label, results[station.label])} {station.peak_rss_mib():8.1f}Mi")
    small, large = (p95(results[s.label]) for s in stations)
    growth = large / small
    rss = stations[1].peak_rss_mib() / stations[0].peak_rss_mib()
    sizes = " / ".join(s.label.rsplit(" ", 1)[-1] for s in reversed(stations))
    print(f"queue peak RSS {sizes} travelers: {rss:.2f}x")
    print(
        f"queue p95 {sizes} travelers: {growth:.2f}x (goal <= {GOAL_GROWTH:g}x): "
        f"{verdict(growth <= GOAL_GROWTH)}"
    )


# --- running it ------------------------------------------------------------------------------------


@dataclass
class Bench:
    """The servers and terminals of one run; everything started is stopped by `close`."""

    python: str
    env: dict[str, str]
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    apps: list[Terminal] = field(default_factory=list)

    def plant(self, data: Path, work_orders: list[dict[str, object]]) -> str:
        """A plant of its own in `data`, served on loopback; answers the server's URL."""
        data.mkdir(parents=True, exist_ok=True)
        make_plant(data, work_orders)
        port = free_port()
        self.servers.append(start_server(self.python, data, port))
        return f"http://127.0.0.1:{port}"

    def minimal(self, source: str) -> Terminal:
        app = Terminal.start("minimal Textual app", [self.python, "-c", source], self.env)
        self.apps.append(app)
        app.wait_for(READY)
        return app

    def station(self, label: str, url: str, data: Path) -> Terminal:
        env = {**self.env, "KIOSK_DATA_DIR": str(data / "station"),
               "KIOSK_STATION_TOKEN_FOR_BENCH": station_token(data)}  # fmt: skip
        argv = [self.python, str(ROOT / "scripts" / "_station_with_token.py"), url]
        app = Terminal.start(label, argv, env)
        self.apps.append(app)
        return app

    def close(self) -> None:
        for app in self.apps:
            app.close()
        for server in self.servers:
            server.terminate()
            server.wait()


def bench_echo(bench: Bench, root: Path, keys: int, gap_ms: float) -> None:
    url = bench.plant(root / "echo", [])
    minimal = bench.minimal(MINIMAL_APP)
    minimal.label = "minimal Textual app, Input"
    station = bench.station("station, measurement field", url, root / "echo")
    to_measurement_field(station)
    for app in (minimal, station):
        app.quiet(0.5)
    results = measure([minimal, station], keys, gap_ms)
    report(results, minimal.label, station.label, gap_ms)


def bench_scans(bench: Bench, root: Path, rounds: int) -> None:
    url = bench.plant(root / "scan", [long_traveler(), long_traveler(SHORT_TRAVELER, 1, 6)])
    minimal = bench.minimal(MINIMAL_SCREENS)
    station = bench.station("station", url, root / "scan")
    to_queue(station)
    steps = step_counts(root / "scan", ["TRV-1001", SHORT_TRAVELER, "TRV-2000", BENCH_TRAVELER])
    results = measure_scans(minimal, station, list(steps), rounds)
    report_scans(results, steps, minimal.label)


def bench_queues(bench: Bench, root: Path, rounds: int, sizes: tuple[int, int]) -> None:
    stations = []
    for count in sizes:
        data = root / f"queue-{count}"
        url = bench.plant(data, [many_travelers(count)])
        stations.append(bench.station(f"station, queue of {count:,}", url, data))
    minimal = bench.minimal(MINIMAL_SCREENS)
    for station in stations:
        station.wait_for(b"Scan your badge")
        station.quiet(0.5)
    results = measure_queues(minimal, stations, rounds)
    report_queues(results, minimal, stations)


def queue_sizes(text: str) -> tuple[int, int]:
    small, large = (int(n) for n in text.split(","))
    return small, large


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=120, help="key -> echo pairs")
    parser.add_argument("--gap-ms", type=float, default=150.0)
    parser.add_argument("--scans", type=int, default=20, help="rounds of scans per traveler")
    parser.add_argument("--queues", type=int, default=10, help="rounds of badge -> queue")
    parser.add_argument("--queue-of", default="100,10000", help="the two queue sizes compared")
    parser.add_argument("--only", default="echo,scan,queue", help="which measurements")
    args = parser.parse_args()
    chosen = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "TERM": "xterm-256color",
               "KIOSK_CONFIG_FILE": str(root / "none.toml")}  # fmt: skip
        bench = Bench(sys.executable, env)
        try:
            # One measurement at a time, each with only its own processes running.
            runs: dict[str, Callable[[], None]] = {
                "echo": partial(bench_echo, bench, root, args.keys, args.gap_ms),
                "scan": partial(bench_scans, bench, root, args.scans),
                "queue": partial(
                    bench_queues, bench, root, args.queues, queue_sizes(args.queue_of)
                ),
            }
            for name, run in runs.items():
                if name in chosen:
                    run()
                    bench.close()
                    bench.apps.clear()
                    bench.servers.clear()
        finally:
            bench.close()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
