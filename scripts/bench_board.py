"""Board benchmark: what one read of the live board costs on a busy plant of N stations.

Seeds the demo plant (SQLite in a temporary directory, or a fresh PostgreSQL database), adds N
stations and N operators, badges one in at each station and clocks them on step 10.1 of a
traveler of their own; a tenth of the travelers are held, a tenth carry an open NCR and a help
request. Then, interleaved pair by pair so that a busy moment of this shared machine hits both
alike, it times:

  * the board: kiosk.server.board.read, everything `GET /api/v1/board` answers;
  * the baseline: one traveler read (views.load_traveler), what a station does at every scan.

It prints the medians and their ratio, and what a waiting board costs the server: a long poll
reads the board every POLL_EVERY seconds, so the share of one core per open board is
read time / POLL_EVERY.

    .venv/bin/python scripts/bench_board.py [--stations 50] [--pairs 200]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.server import board, demo, erp, views  # noqa: E402
from kiosk.server import schema as t  # noqa: E402
from kiosk.server.app import ServerConfig, open_service  # noqa: E402
from kiosk.server.people import new_person  # noqa: E402
from kiosk.server.service import ExecutionService  # noqa: E402


def seed(svc: ExecutionService, stations: int) -> None:
    """The floor's rows, written straight into the tables (the board reads them, whatever wrote
    them): a session and a labour interval per station, holds, NCRs and help requests."""
    numbers = [f"TRV-{5000 + n}" for n in range(stations)]
    work = erp.WorkOrderSpec(
        number="WO-BENCH", part_number="7741-220", part_name="Actuator bracket assembly",
        quantity=stations, travelers=[erp.TravelerSpec(number=n) for n in numbers],
        routing=demo._bracket_routing(),
    )  # fmt: skip
    now = datetime.now(UTC)
    person = new_person(svc.secret, "Operator", "70000", "1111", "operator", "*")  # argon2 once
    refs = [
        svc.authenticate(svc.local_station_token(f"BENCH-{n:02d}", demo.WORK_CENTER))
        for n in range(stations)
    ]
    with svc.store.begin() as conn:
        erp.load(conn, erp.PlantImport(work_orders=[work]))
        for n, (number, station) in enumerate(zip(numbers, refs, strict=True)):
            row = {
                **person,
                "name": f"Operator {n:02d}",
                "badge_hmac": svc.secret.badge_hash(f"7{n:04d}"),
            }
            user = conn.execute(insert(t.users).values(**row).returning(t.users.c.id)).scalar_one()
            trav = views.traveler_row(conn, number)
            step = (
                conn.execute(
                    select(t.steps.c.id)
                    .where(t.steps.c.traveler_id == trav["id"])
                    .order_by(t.steps.c.seq)
                )
                .scalars()
                .first()
            )
            ids = {"traveler_id": trav["id"], "step_id": step}
            conn.execute(insert(t.person_sessions).values(
                token_sha256=uuid.uuid4().hex * 2, user_id=user, station_id=station.id,
                issued_at=now, expires_at=now + timedelta(hours=8),
            ))  # fmt: skip
            conn.execute(insert(t.labour_intervals).values(
                **ids, user_id=user, station_id=station.id, started_at=now,
            ))  # fmt: skip
            if n % 10 == 1:
                conn.execute(insert(t.andon_requests).values(
                    **ids, kind="help", reason="Need a hand", raised_by=user,
                    station_id=station.id, raised_at=now,
                ))  # fmt: skip
                conn.execute(insert(t.ncrs).values(
                    number=f"NCR-B{n:03d}", traveler_id=trav["id"], step_id=step,
                    description="Burr on the bore", defect_code="DIM", quantity=1,
                    raised_by=user, raised_at=now,
                ))  # fmt: skip
            if n % 10 == 2:
                conn.execute(insert(t.holds).values(
                    traveler_id=trav["id"], reason="Waiting for material", placed_by=user,
                    placed_at=now,
                ))  # fmt: skip


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def measure(svc: ExecutionService, pairs: int) -> tuple[list[float], list[float], int]:
    boards, baselines, size = [], [], 0
    with svc.store.read() as conn:
        size = len(board.read(conn, datetime.now(UTC)).work)
        for _ in range(pairs):
            boards.append(timed(lambda: board.read(conn, datetime.now(UTC))))
            baselines.append(timed(lambda: views.load_traveler(conn, "TRV-1001")))
    return boards, baselines, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url, drop = f"sqlite:///{Path(folder) / 'plant.db'}", None
        if args.database_url:
            name = f"kiosk_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url, drop = args.database_url.rsplit("/", 1)[0] + f"/{name}", (admin, name)
        try:
            svc = open_service(ServerConfig(url, Path(folder) / "secret", demo=True))
            seed(svc, args.stations)
            boards, baselines, on_steps = measure(svc, args.pairs)
            svc.store.dispose()
        finally:
            if drop is not None:
                with drop[0].connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{drop[1]}" WITH (FORCE)'))
    read, base = statistics.median(boards), statistics.median(baselines)
    print(
        f"board benchmark: {args.stations} stations, {on_steps} people on steps, {args.pairs} pairs"
    )
    print(
        f"board: read p50 {read * 1000:.1f} ms, baseline (one traveler read) p50 "
        f"{base * 1000:.1f} ms, ratio {read / base:.2f}; a waiting board costs "
        f"{read / board.POLL_EVERY * 100:.1f}% of one core"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
