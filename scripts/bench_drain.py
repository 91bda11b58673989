"""Drain rate after an outage: N queued actions delivered to the reference server on SQLite.

Prints actions per second, and beside it, measured in the same run on the same disk, the raw rate
of single-row SQLite inserts with fsync (WAL, synchronous=FULL): the ceiling a design that
commits each action on its own could reach. Target: 10,000 actions delivered in under 30 s.

    .venv/bin/python scripts/bench_drain.py [--actions 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiosk.client import ExecutionClient  # noqa: E402
from kiosk.client.sender import Sender  # noqa: E402
from kiosk.client.station_db import open_outbox  # noqa: E402
from kiosk.server import erp  # noqa: E402
from kiosk.server.app import ServerConfig, open_service  # noqa: E402
from kiosk.wire import ItemKind, Person, RecordValue, Role, StartStep  # noqa: E402


def raw_insert_rate(directory: Path, rows: int = 2000) -> float:
    """Single-row INSERT + COMMIT with fsync: the per-commit ceiling of this disk."""
    conn = sqlite3.connect(directory / "ceiling.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")
    start = time.perf_counter()
    for n in range(rows):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (payload) VALUES (?)", (f"row {n}",))
        conn.execute("COMMIT")
    return rows / (time.perf_counter() - start)


def seeded_plant(directory: Path) -> tuple[ServerConfig, str, int, int, int]:
    """The demo plant plus a traveler with a text step in work; returns config, token, ids."""
    config = ServerConfig(f"sqlite:///{directory / 'plant.db'}", directory / "secret", demo=True)
    svc = open_service(config)
    plant = erp.PlantImport(
        work_orders=[
            erp.WorkOrderSpec(
                number="WO-B", part_number="B-1", part_name="Bench part", quantity=1,
                travelers=[erp.TravelerSpec(number="TRV-B1")],
                routing=[erp.OperationSpec(number="10", name="Log", work_center="ASSEMBLY", steps=[
                    erp.StepSpec(number="10.1", title="Log", instructions="Note it.",
                                 items=[erp.ItemSpec(label="Note", kind=ItemKind.TEXT)])])],
            )
        ]
    )  # fmt: skip
    with svc.store.begin() as conn:
        erp.load(conn, plant)
    token = svc.local_station_token("BENCH-01", "ASSEMBLY")
    station = svc.authenticate(token)
    ana = svc.login(station, "10001")
    step = svc.traveler("TRV-B1").steps[0]
    svc.perform(
        station, "bench-start", StartStep(actor_id=ana.id, traveler="TRV-B1", step_id=step.id)
    )
    svc.store.dispose()
    return config, token, ana.id, step.items[0].id, station.id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def drain(url: str, token: str, data_dir: Path) -> float:
    outbox = open_outbox(data_dir)
    async with ExecutionClient(url, token) as client:
        start = time.perf_counter()
        report = await Sender(outbox, client).deliver()
        elapsed = time.perf_counter() - start
    assert report.failed is None, report.failed
    assert outbox.waiting() == 0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        ceiling = raw_insert_rate(directory)
        config, token, actor, item, _ = seeded_plant(directory)
        station_dir = directory / "station"
        outbox = open_outbox(station_dir)
        operator = Person(id=actor, name="Ana Ortiz", roles=(Role.OPERATOR,))
        start = time.perf_counter()
        for n in range(args.actions):
            outbox.record(
                RecordValue(actor_id=actor, traveler="TRV-B1", item_id=item, value=f"n{n}"),
                operator,
            )
        record_rate = args.actions / (time.perf_counter() - start)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "kiosk", "serve", "--port", str(port),
             "--database-url", config.database_url, "--secret-file", str(config.secret_file)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start")
                time.sleep(0.05)
            elapsed = asyncio.run(drain(f"http://127.0.0.1:{port}", token, station_dir))
        finally:
            server.terminate()
            server.wait()
    rate = args.actions / elapsed
    print(
        f"raw SQLite insert+fsync, one row per commit: {ceiling:8.0f} rows/s   (ceiling, same disk)"
    )
    print(f"station outbox record (commit per action):   {record_rate:8.0f} actions/s")
    print(
        f"drain {args.actions} actions to the server:      {rate:8.0f} actions/s   in {elapsed:.1f} s"
    )
    print(f"drain rate / raw insert ceiling:             {rate / ceiling:8.2f}x")
    print(f"target: {args.actions} in under 30 s: {'met' if elapsed < 30 else 'NOT met'}")


if __name__ == "__main__":
    main()
