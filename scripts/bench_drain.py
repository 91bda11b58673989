"""Drain after an outage: N queued actions delivered to the reference server, as a station does.

The values go to a 200-step traveler whose item already holds --prefill values (a plant that has
run for a while), each action carrying the person's session and badge-made MAC as a station's
outbox holds them. Prints actions per second and, measured in the same run on the same database,
the raw single-row insert+commit ceiling; and the per-action cost on that item against the cost on
a fresh item of an identical traveler (medians of interleaved batches). Targets: N = 10,000 in at
most 10 s; per-action cost with 10,000 values on the item within 1.2x of the cost at zero.

    .venv/bin/python scripts/bench_drain.py [--actions 10000] [--prefill 10000]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, event, insert, text, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiosk.client import ExecutionClient  # noqa: E402
from kiosk.client.local_db import LocalDb  # noqa: E402
from kiosk.client.offline_identity import HeldKey, OfflineIdentity  # noqa: E402
from kiosk.client.reads import ReadCache  # noqa: E402
from kiosk.client.sender import Sender  # noqa: E402
from kiosk.client.station_db import open_outbox  # noqa: E402
from kiosk.identity import action_mac, new_nonce  # noqa: E402
from kiosk.server import demo, erp  # noqa: E402
from kiosk.server import schema as t  # noqa: E402
from kiosk.server.app import ServerConfig, open_service  # noqa: E402
from kiosk.server.service import Presented  # noqa: E402
from kiosk.server.store import create_store_engine, normalize_url  # noqa: E402
from kiosk.wire import (  # noqa: E402
    ActionBatch,
    OfflineProof,
    QueuedAction,
    RecordValue,
    SignedIn,
    StartStep,
    StationConfig,
)


@dataclass(frozen=True)
class Bench:
    config: ServerConfig
    token: str
    ana: SignedIn
    station: int
    actor_key: HeldKey
    """Ana's actor key for the station, as her badge unwraps it from the station's cache."""
    full: int
    """The measured item: on TRV-B1, holding --prefill values already."""
    fresh: int
    """The same item of an identical traveler, TRV-B2, with none."""


@contextmanager
def database(url: str | None, directory: Path) -> Iterator[str]:
    """A throw-away database: a SQLite file here, or a new database on the PostgreSQL server."""
    if url is None:
        yield f"sqlite:///{directory / 'plant.db'}"
        return
    name = f"kiosk_drain_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def raw_insert_rate(url: str, rows: int = 2000) -> float:
    """Single-row INSERT + COMMIT on the same database, durably: the per-commit ceiling."""
    engine = create_store_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE ceiling (id INTEGER PRIMARY KEY, payload TEXT)"))
    start = time.perf_counter()
    for n in range(rows):
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO ceiling (id, payload) VALUES (:i, :p)"), {"i": n, "p": f"row {n}"}
            )
    elapsed = time.perf_counter() - start
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE ceiling"))
    engine.dispose()
    return rows / elapsed


def seeded_plant(url: str, directory: Path, prefill: int) -> Bench:
    config = ServerConfig(url, directory / "secret", demo=True)
    svc = open_service(config)
    plant = erp.PlantImport(
        work_orders=[
            erp.WorkOrderSpec(
                number="WO-B", part_number="B-1", part_name="Bench rib", quantity=2,
                travelers=[erp.TravelerSpec(number="TRV-B1"), erp.TravelerSpec(number="TRV-B2")],
                routing=demo.long_routing(),
            )
        ]
    )  # fmt: skip
    with svc.store.begin() as conn:
        erp.load(conn, plant)
    token = svc.local_station_token("BENCH-01", "ASSEMBLY")
    station = svc.authenticate(token)
    with svc.store.begin() as conn:  # Ana starts both travelers' steps: two steps at once here
        two = StationConfig(steps_per_person=2).model_dump_json()
        conn.execute(update(t.stations).where(t.stations.c.id == station.id).values(config=two))
    ana = svc.login(station, "10001")
    items = []
    for number in ("TRV-B1", "TRV-B2"):
        step = svc.traveler(number).steps[0]
        start = StartStep(
            actor_id=ana.person.id, session=ana.session, traveler=number, step_id=step.id
        )
        svc.perform(station, f"bench-start-{number}", start)
        items.append(step.items[0].id)
    _prefill(svc.store.engine, items[0], ana.person.id, station.id, prefill)
    db = LocalDb(directory / "identity.db")
    identity = OfflineIdentity(ReadCache(db), db)
    identity.store(svc.credential_cache(station))
    _, key = identity.badge_in("10001", "ASSEMBLY", datetime.now(UTC))
    svc.store.dispose()
    return Bench(config, token, ana, station.id, key, items[0], items[1])


def _prefill(engine: object, item: int, user: int, station: int, count: int) -> None:
    """History on the item, written straight in (a benchmark's shortcut, not a record)."""
    now = datetime.now(UTC)
    rows = [
        {"item_id": item, "value": f"4.8{n % 6}", "passed": True, "user_id": user,
         "station_id": station, "server_time": now, "station_time": now, "offline": False}
        for n in range(count)
    ]  # fmt: skip
    with engine.begin() as conn:  # type: ignore[attr-defined]
        for start in range(0, count, 5000):
            conn.execute(insert(t.recorded_values), rows[start : start + 5000])
        latest = conn.execute(
            text("SELECT max(id) FROM recorded_values WHERE item_id = :i"), {"i": item}
        ).scalar()
        conn.execute(
            update(t.data_items).where(t.data_items.c.id == item).values(latest_value_id=latest)
        )


def proven(bench: Bench, item: int, value: str) -> RecordValue:
    """As the station sends what it recorded: Ana's session and her badge-made MAC."""
    action = RecordValue(
        actor_id=bench.ana.person.id, traveler="TRV-B1" if item == bench.full else "TRV-B2",
        item_id=item, value=value, station_time=datetime.now(UTC),
    )  # fmt: skip
    nonce = new_nonce()
    mac = action_mac(bench.actor_key.secret, "act", bench.station, nonce, action)
    proof = OfflineProof(cache_id=bench.actor_key.cache_id, nonce=nonce, mac=mac)
    return action.model_copy(update={"session": bench.ana.session, "actor_proof": proof})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(config: ServerConfig) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "serve", "--port", str(port),
         "--database-url", config.database_url, "--secret-file", str(config.secret_file)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


def cost_ratio(url: str, bench: Bench, pairs: int = 8, size: int = 50) -> tuple[float, float]:
    """Median seconds per action on the full item and on the fresh one, batches interleaved."""
    seq = iter(range(10_000_000, 20_000_000))
    times: dict[int, list[float]] = {bench.full: [], bench.fresh: []}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {bench.token}"}) as http:
        for n in range(pairs):
            for item in (bench.full, bench.fresh) if n % 2 else (bench.fresh, bench.full):
                batch = ActionBatch(actions=tuple(
                    QueuedAction(key=uuid.uuid4().hex, station_seq=next(seq), action=proven(bench, item, "4.82"))
                    for _ in range(size)))  # fmt: skip
                start = time.perf_counter()
                answer = http.post("/api/v1/actions/batch", content=batch.model_dump_json(),
                                   headers={"Content-Type": "application/json"}, timeout=60)  # fmt: skip
                times[item].append((time.perf_counter() - start) / size)
                assert answer.status_code == 200, answer.text
    return statistics.median(times[bench.full]), statistics.median(times[bench.fresh])


def batch_cost(bench: Bench, size: int = 100) -> tuple[int, int]:
    """(commits, SQL statements) of applying one batch of `size` actions, counted in-process on
    the same store: a delivered batch should cost one commit, not one per action."""
    svc = open_service(bench.config)
    seen = {"commits": 0, "statements": 0}

    def statement(*_args: object) -> None:
        seen["statements"] += 1

    def commit(*_args: object) -> None:
        seen["commits"] += 1

    seq = iter(range(30_000_000, 40_000_000))
    batch = ActionBatch(actions=tuple(
        QueuedAction(key=uuid.uuid4().hex, station_seq=next(seq), action=proven(bench, bench.fresh, "4.82"))
        for _ in range(size)))  # fmt: skip
    event.listen(svc.store.engine, "before_cursor_execute", statement)
    event.listen(svc.store.engine, "commit", commit)
    try:
        result = svc.perform_batch(Presented(bench.token), batch)
    finally:
        event.remove(svc.store.engine, "before_cursor_execute", statement)
        event.remove(svc.store.engine, "commit", commit)
        svc.store.dispose()
    assert all(o.status == 200 for o in result.outcomes), result.outcomes[0]
    return seen["commits"], seen["statements"]


async def drain(url: str, token: str, data_dir: Path) -> float:
    outbox = open_outbox(data_dir)
    async with ExecutionClient(url, token) as client:
        start = time.perf_counter()
        report = await Sender(outbox, client).deliver()
        elapsed = time.perf_counter() - start
    assert report.failed is None, report.failed
    assert outbox.waiting() == 0
    assert report.refused == 0, outbox.entries("refused")[0].message
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=10_000)
    parser.add_argument("--prefill", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server; default SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database(args.database_url, Path(tmp)) as url:
        directory = Path(tmp)
        ceiling = raw_insert_rate(url)
        bench = seeded_plant(url, directory, args.prefill)
        station_dir = directory / "station"
        outbox = open_outbox(station_dir)
        start = time.perf_counter()
        for n in range(args.actions):
            outbox.record(proven(bench, bench.full, f"4.8{n % 6}"), bench.ana.person)
        record_rate = args.actions / (time.perf_counter() - start)
        commits, statements = batch_cost(bench)
        with server(bench.config) as base:
            full, fresh = cost_ratio(base, bench)
            elapsed = asyncio.run(drain(base, bench.token, station_dir))
    rate = args.actions / elapsed
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"database: {backend}; item history before the drain: {args.prefill} values")
    print(
        f"raw insert+commit, one row per commit:    {ceiling:8.0f} rows/s   (ceiling, same database)"
    )
    print(f"station outbox record (commit per action): {record_rate:8.0f} actions/s")
    print(
        f"drain {args.actions} actions to the server:    {rate:8.0f} actions/s   in {elapsed:.1f} s"
    )
    print(f"drain rate / raw insert ceiling:           {rate / ceiling:8.2f}x")
    print(f"one batch of 100 actions, in-process:      {commits:8d} commit(s), {statements} SQL "
          f"statements ({statements / 100:.1f} per action)")  # fmt: skip
    print(f"per action, item with {args.prefill} values: {full * 1000:8.2f} ms; fresh item "
          f"{fresh * 1000:.2f} ms: {full / fresh:.2f}x")  # fmt: skip
    drained = "met" if elapsed <= 10 else "NOT met"
    flat = "met" if full / fresh <= 1.2 else "NOT met"
    print(
        f"target: {args.actions} in at most 10 s: {drained}; cost within 1.2x of a fresh item: {flat}"
    )


if __name__ == "__main__":
    main()
