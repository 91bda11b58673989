"""Start-up time and memory of the station, in a real pseudo-terminal at 80x24.

Every case runs interleaved with the minimal Textual app (Header, Label, Input, Footer: the
baseline of issue 11), and each figure is the median over runs of case / baseline measured back to
back, so a busy machine slows both sides of a pair alike. The cases:
  * enrolled station, cryptfile keyring, server elsewhere (`kiosk --config …`: as a plant runs it),
  * the station app with its token handed in (no keyring; scripts/_station_with_token.py),
  * the embedded demo (`kiosk` with no server: starts its own server child),
each until the badge screen is painted ("Scan your badge"), then until it says ONLINE (the
keyring unlocked or the server answering: what the first badge waits for). Memory is the
station process's peak RSS (VmHWM) when the badge screen is painted and over the whole run
(the cryptfile key derivation alone takes 64 MiB for a moment); the embedded server's child
process is not counted.

    .venv/bin/python scripts/bench_startup.py [--runs 7]
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
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINIMAL_APP = textwrap.dedent(
    """
    from textual.app import App
    from textual.widgets import Footer, Header, Input, Label

    class Minimal(App):
        def compose(self):
            yield Header()
            yield Label("BASELINE-READY")
            yield Input(placeholder="badge number")
            yield Footer()

    Minimal().run()
    """
)
PAINTED = b"Scan your badge"
ONLINE = b"ONLINE"
TIME_TARGET, RSS_TARGET = 1.3, 1.6
"""Issue 11, for the enrolled cryptfile station: to the painted badge screen, and its RSS then."""


@dataclass
class Run:
    painted: float
    """Seconds from launch to the badge screen (or the baseline's label) on the terminal."""
    rss_painted: int
    """Peak RSS (KiB) at that moment."""
    online: float | None = None
    rss_peak: int = 0
    """Peak RSS (KiB) over the whole run, to ONLINE."""


@dataclass
class Case:
    label: str
    argv: list[str]
    env: dict[str, str]
    data_dir: Path | None = None
    """Waited on between runs: the embedded server of the last run must have let go of it."""
    pairs: list[tuple[Run, Run]] = field(default_factory=list)
    """(minimal app, this case), run back to back."""


def run_in_pty(argv: list[str], env: dict[str, str], markers: list[bytes]) -> Run:
    """Launch argv on a fresh 80x24 pty; the time each marker first shows, and peak RSS."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    seen, found, peak, at_paint = b"", list[float](), 0, 0
    try:
        while len(found) < len(markers):
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                raise RuntimeError(f"{argv[-1]}: {markers[len(found)]!r} not shown within 60 s")
            try:
                chunk = os.read(master, 65536)
            except OSError:
                chunk = b""
            now = time.perf_counter() - start
            peak = max(peak, _peak_rss(proc.pid))
            if not chunk:
                raise RuntimeError(f"{argv[-1]} ended before {markers[len(found)]!r}:\n{seen!r}")
            seen = seen[-8192:] + chunk
            while len(found) < len(markers) and markers[len(found)] in seen:
                found.append(now)
                if len(found) == 1:
                    at_paint = peak
        peak = max(peak, _peak_rss(proc.pid))
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    return Run(found[0], at_paint, found[1] if len(found) > 1 else None, peak)


def _peak_rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def python_pass(python: str, env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, "-c", "pass"], env=env, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        if time.monotonic() > deadline:
            raise SystemExit("the benchmark's server did not start")
        time.sleep(0.05)


def wait_until_released(data_dir: Path) -> None:
    """The killed station's embedded server leaves within its grace period: wait for it, so the
    next run starts its own server instead of borrowing a dying one."""
    from kiosk.client.embedded import LOCK_FILE, lock_held

    deadline = time.monotonic() + 30
    while lock_held(data_dir / LOCK_FILE) and time.monotonic() < deadline:
        time.sleep(0.05)


def enroll_with_cryptfile(python: str, url: str, data: Path, env: dict[str, str]) -> Path:
    """Enroll a station as an admin would (`kiosk enroll`): token in a cryptfile keyring."""
    from kiosk.server.app import ServerConfig, open_service

    svc = open_service(ServerConfig(f"sqlite:///{data / 'plant.db'}", data / "secret"))
    try:
        code = svc.add_station("BENCH-02", "ASSEMBLY")
    finally:
        svc.store.dispose()
    config = data / "cryptfile-station.toml"
    config.write_text(
        f'keyring_backend = "keyrings.cryptfile.cryptfile.CryptFileKeyring"\n'
        f'data_dir = "{data / "cryptfile-station"}"\n'
    )
    subprocess.run(
        [python, "-m", "kiosk", "--config", str(config), "enroll", "--server", url, "--code", code],
        env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return config


def handed_token(data: Path) -> str:
    from kiosk.server.app import ServerConfig, open_service

    svc = open_service(ServerConfig(f"sqlite:///{data / 'plant.db'}", data / "secret"))
    try:
        return svc.local_station_token("BENCH-01", "ASSEMBLY")
    finally:
        svc.store.dispose()


def median_ratio(pairs: list[tuple[float, float]]) -> float:
    return statistics.median(case / base for base, case in pairs)


def report(cases: list[Case]) -> None:
    every_base = [base for case in cases for base, _ in case.pairs]
    print(
        f"{'what':<44} {'painted':>8} {'x min':>6} {'RSS':>9} {'x min':>6}"
        f" {'ONLINE':>8} {'peak RSS':>9}"
    )
    print(
        f"{'minimal Textual app (Header, Label, Input, Footer)':<44}"
        f" {statistics.median(r.painted for r in every_base) * 1000:6.0f}ms {'':>6}"
        f" {statistics.median(r.rss_painted for r in every_base) / 1024:6.1f}MiB"
    )
    for case in cases:
        runs = [run for _, run in case.pairs]
        online = [r.online for r in runs if r.online is not None]
        print(
            f"{case.label:<44} {statistics.median(r.painted for r in runs) * 1000:6.0f}ms"
            f" {median_ratio([(b.painted, c.painted) for b, c in case.pairs]):5.2f}x"
            f" {statistics.median(r.rss_painted for r in runs) / 1024:6.1f}MiB"
            f" {median_ratio([(b.rss_painted, c.rss_painted) for b, c in case.pairs]):5.2f}x"
            f" {statistics.median(online) * 1000 if online else 0:6.0f}ms"
            f" {max(r.rss_peak for r in runs) / 1024:6.1f}MiB"
        )
    enrolled = cases[0].pairs
    t = median_ratio([(b.painted, c.painted) for b, c in enrolled])
    m = median_ratio([(b.rss_painted, c.rss_painted) for b, c in enrolled])
    print(
        f"target, enrolled cryptfile station to its painted badge screen: time {t:.2f}x "
        f"(<= {TIME_TARGET}x: {'met' if t <= TIME_TARGET else 'NOT met'}), "
        f"RSS {m:.2f}x (<= {RSS_TARGET}x: {'met' if m <= RSS_TARGET else 'NOT met'})"
    )


def run_case(case: Case) -> Run:
    run = run_in_pty(case.argv, case.env, [PAINTED, ONLINE])
    if case.data_dir is not None:
        wait_until_released(case.data_dir)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved pairs per case")
    args = parser.parse_args()
    python = sys.executable
    baseline = [python, "-c", MINIMAL_APP]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        home = data / "home"
        env = {
            **os.environ,
            "TERM": "xterm-256color",
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "KIOSK_CONFIG_FILE": str(data / "none.toml"),
            "KEYRING_CRYPTFILE_PASSWORD": "bench keyring password",
        }
        for name in ("PYTHON_KEYRING_BACKEND", "KIOSK_KEYRING_BACKEND", "COLORTERM"):
            env.pop(name, None)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [python, "-m", "kiosk", "serve", "--demo", "--port", str(port),
             "--database-url", f"sqlite:///{data / 'plant.db'}", "--secret-file", str(data / "secret")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env,
        )  # fmt: skip
        try:
            wait_for_port(port)
            config = enroll_with_cryptfile(python, url, data, env)
            token = handed_token(data)
            embedded = data / "embedded"
            cases = [
                Case("enrolled station, cryptfile keyring", [python, "-m", "kiosk", "--config",
                     str(config)], env),
                Case("station, token handed in (no keyring)",
                     [python, str(ROOT / "scripts" / "_station_with_token.py"), url],
                     {**env, "KIOSK_STATION_TOKEN_FOR_BENCH": token,
                      "KIOSK_DATA_DIR": str(data / "token-station")}),
                Case("embedded demo (kiosk, no server)", [python, "-m", "kiosk"],
                     {**env, "KIOSK_DATA_DIR": str(embedded)}, data_dir=embedded),
            ]  # fmt: skip
            for case in cases:  # warm-up, not counted: page cache, .pyc, the demo plant seeded
                run_case(case)
            for _ in range(args.runs):
                for case in cases:
                    base = run_in_pty(baseline, env, [b"BASELINE-READY"])
                    case.pairs.append((base, run_case(case)))
            floor = python_pass(python, env, args.runs)
        finally:
            server.terminate()
            server.wait()
    print(f"python -c pass {floor * 1000:.0f} ms; {args.runs} interleaved pairs a case; 80x24 pty")
    report(cases)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
