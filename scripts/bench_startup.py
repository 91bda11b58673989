"""Start-up time and memory of the station, in a real pseudo-terminal at 80x24.

Measures, in the same run and on the same machine:
  * `python -c pass` (the floor of any Python program),
  * a minimal Textual app that paints one label (the floor of any Textual station),
  * the station app (`kiosk --server URL`) until the badge screen is painted,
and prints each with its peak memory (VmHWM) and the station's ratio to the minimal Textual app.

    .venv/bin/python scripts/bench_startup.py [--runs 5]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINIMAL_APP = textwrap.dedent(
    """
    from textual.app import App
    from textual.widgets import Label

    class Minimal(App):
        def compose(self):
            yield Label("BASELINE-READY")

    Minimal().run()
    """
)


def run_in_pty(argv: list[str], marker: bytes | None, env: dict[str, str]) -> tuple[float, int]:
    """Seconds until `marker` is on the terminal (or the process ends), and peak RSS in KiB."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    seen, elapsed, peak = b"", None, 0
    try:
        while elapsed is None:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                raise RuntimeError(f"{argv[0]} showed nothing for 30 s")
            try:
                chunk = os.read(master, 65536)
            except OSError:
                chunk = b""
            peak = max(peak, _peak_rss(proc.pid))
            if not chunk or (marker is not None and marker in (seen := seen[-4096:] + chunk)):
                elapsed = time.perf_counter() - start
        if marker is None:
            proc.wait(10)
        peak = max(peak, _peak_rss(proc.pid))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return elapsed, peak


def _peak_rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(
    label: str, argv: list[str], marker: bytes | None, env: dict[str, str], runs: int
) -> tuple[float, int]:
    times, peaks = [], []
    for _ in range(runs):
        seconds, peak = run_in_pty(argv, marker, env)
        times.append(seconds)
        peaks.append(peak)
    median = statistics.median(times)
    print(
        f"{label:<44} {median * 1000:7.0f} ms  (best {min(times) * 1000:.0f})  {max(peaks) / 1024:6.1f} MiB"
    )
    return median, max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        env = {
            **os.environ,
            "TERM": "xterm-256color",
            "KIOSK_DATA_DIR": str(data),
            "KIOSK_CONFIG_FILE": str(data / "none.toml"),
        }
        port = free_port()
        server = subprocess.Popen(
            [python, "-m", "kiosk", "serve", "--demo", "--port", str(port),
             "--database-url", f"sqlite:///{data / 'plant.db'}", "--secret-file", str(data / "secret")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start")
                time.sleep(0.05)
            token = _token(data, port)
            env["KIOSK_STATION_TOKEN_FOR_BENCH"] = token
            print(f"{'what':<44} {'median':>10}  {'':>10}  {'peak RSS':>10}")
            measure("python -c pass", [python, "-c", "pass"], None, env, args.runs)
            base, base_rss = measure(
                "minimal Textual app, first paint",
                [python, "-c", MINIMAL_APP],
                b"BASELINE-READY",
                env,
                args.runs,
            )
            station_argv = [
                python,
                str(ROOT / "scripts" / "_station_with_token.py"),
                f"http://127.0.0.1:{port}",
            ]
            kiosk, kiosk_rss = measure(
                "station app, badge screen painted",
                station_argv,
                b"Scan your badge",
                env,
                args.runs,
            )
            embedded, _ = measure(
                "station app + embedded server (kiosk), badge screen",
                [python, "-m", "kiosk"],
                b"Scan your badge",
                env,
                max(1, args.runs // 2),
            )
        finally:
            server.terminate()
            server.wait()
    print(
        f"station / minimal Textual app: {kiosk / base:.2f}x time, {kiosk_rss / base_rss:.2f}x memory"
    )
    print(
        f"embedded start (server child process + demo plant) / station alone: {embedded / kiosk:.2f}x"
    )


def _token(data: Path, port: int) -> str:
    from kiosk.server.app import ServerConfig, open_service

    svc = open_service(ServerConfig(f"sqlite:///{data / 'plant.db'}", data / "secret"))
    try:
        return svc.local_station_token("BENCH-01", "ASSEMBLY")
    finally:
        svc.store.dispose()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
