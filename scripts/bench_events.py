"""What the event feed and its MQTT publisher cost, against baselines measured in the same run.

    .venv/bin/python scripts/bench_events.py [--events 2000] [--rounds 15]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres] [--broker mqtt://127.0.0.1:1883]

On a demo plant (a SQLite file in a temporary directory, or the database given) with --events
holds placed through the real audit path, it prints:

- a feed page (GET /api/v1/events' work: 100 records and what they refer to) against reading the
  same 100 audit records bare: median of interleaved pairs, as a ratio;
- the publisher sending every event to the broker from cursor 0 (reads, QoS 1 acknowledgements,
  cursor updates) against aiomqtt publishing the same payloads with no database at all: the ratio
  of the medians of --rounds interleaved runs (skipped when no broker answers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, insert, select  # noqa: E402

from kiosk.server import audit, events  # noqa: E402
from kiosk.server import schema as t  # noqa: E402
from kiosk.server.app import ServerConfig, open_service  # noqa: E402
from kiosk.server.mqtt import PUBLISHER, Backoff, Broker, Publisher  # noqa: E402
from kiosk.server.service import ExecutionService  # noqa: E402


def place_holds(svc: ExecutionService, count: int) -> None:
    """`count` holds on the demo travelers, each recorded as the domain records one."""
    with svc.store.begin() as conn:
        travelers = [r.id for r in conn.execute(select(t.travelers.c.id))]
        person = conn.execute(select(t.users.c.id).limit(1)).scalar_one()
        now = datetime.now(UTC)
        for n in range(count):
            row = {"traveler_id": travelers[n % len(travelers)], "reason": f"bench hold {n}",
                   "placed_by": person, "placed_at": now}  # fmt: skip
            hold_id = conn.execute(insert(t.holds).values(**row).returning(t.holds.c.id)).scalar()
            audit.append(conn, action="place_hold", entity=f"hold:{hold_id}", actor="Bench",
                         station="DEMO-01", new={"reason": row["reason"]}, now=now)  # fmt: skip


def timed(work: Callable[[], None]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def feed_ratio(svc: ExecutionService, rounds: int) -> tuple[float, float, float]:
    with svc.store.read() as conn:
        top = events.head(conn)
    log = t.audit_log
    pairs = []
    for n in range(rounds):
        after = (n * 97) % max(1, top - 100)

        def page(after: int = after) -> None:
            with svc.store.read() as conn:
                events.feed(conn, after, 100)

        def bare(after: int = after) -> None:
            with svc.store.read() as conn:
                conn.execute(
                    select(log).where(log.c.seq > after).order_by(log.c.seq).limit(100)
                ).all()

        first, second = (page, bare) if n % 2 else (bare, page)
        a, b = timed(first), timed(second)
        pairs.append((a, b) if first is page else (b, a))
    feed = statistics.median(p for p, _ in pairs)
    base = statistics.median(b for _, b in pairs)
    return feed, base, feed / base


async def publish_all(svc: ExecutionService, url: str) -> float:
    with svc.store.begin() as conn:
        conn.execute(delete(t.event_publishers).where(t.event_publishers.c.name == PUBLISHER))
        top = events.head(conn)
    publisher = Publisher(svc.store, url, poll=0.01, backoff=Backoff(base=0.05, cap=0.2))
    start = time.perf_counter()
    task = asyncio.create_task(publisher.run())
    while True:
        with svc.store.read() as conn:
            row = conn.execute(select(t.event_publishers.c.cursor)).scalar()
        if row is not None and row >= top:
            break
        await asyncio.sleep(0.005)
    took = time.perf_counter() - start
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return took


async def publish_bare(payloads: list[tuple[str, str]], url: str) -> float:
    import aiomqtt

    b = Broker.parse(url)
    start = time.perf_counter()
    async with aiomqtt.Client(b.host, b.port, timeout=10) as client:
        client.pending_calls_threshold = events.FEED_PAGE + 10
        for page in range(0, len(payloads), events.FEED_PAGE):
            chunk = payloads[page : page + events.FEED_PAGE]
            await asyncio.gather(*(client.publish(tp, body, qos=1) for tp, body in chunk))
    return time.perf_counter() - start


async def publisher_ratio(
    svc: ExecutionService, url: str, rounds: int
) -> tuple[float, float, float]:
    with svc.store.read() as conn:
        made = events.feed(conn, 0, events.FEED_MAX * 100).events
    payloads = [(e.topic, e.model_dump_json(exclude_none=True)) for e in made]
    pairs = []
    for n in range(rounds):
        if n % 2:
            a = await publish_all(svc, url)
            b = await publish_bare(payloads, url)
        else:
            b = await publish_bare(payloads, url)
            a = await publish_all(svc, url)
        pairs.append((a, b))
    ours = statistics.median(a for a, _ in pairs)
    base = statistics.median(b for _, b in pairs)
    return ours, base, ours / base


def broker_answers(url: str) -> bool:
    import socket

    b = Broker.parse(url)
    try:
        socket.create_connection((b.host, b.port), timeout=1).close()
    except OSError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-events-") as tmp:
        url = args.database_url or f"sqlite:///{tmp}/plant.db"
        svc = open_service(ServerConfig(url, Path(tmp) / "plant-secret", demo=True))
        place_holds(svc, args.events)
        feed, base, ratio = feed_ratio(svc, args.rounds)
        print(f"feed page of 100 records: {feed * 1000:.2f} ms; bare audit read {base * 1000:.2f} ms; "
              f"ratio {ratio:.2f}")  # fmt: skip
        if not broker_answers(args.broker):
            print(f"publisher: skipped, no broker answers at {args.broker}")
            return 0
        rounds = max(3, args.rounds // 3)
        ours, bare, ratio = asyncio.run(publisher_ratio(svc, args.broker, rounds))
        count = args.events
        print(f"publisher, ~{count} events from cursor 0: {ours:.2f} s ({count / ours:.0f}/s); "
              f"bare aiomqtt publish {bare:.2f} s; ratio {ratio:.2f}")  # fmt: skip
        svc.store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
