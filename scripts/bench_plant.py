"""Plant benchmark: N enrolled stations, a person badged in at each, recording values on `kiosk serve`.

Seeds a fresh database with the demo plant and one traveler per station (plus one traveler they all
share), starts `kiosk serve` as a child, enrolls the stations over HTTP (POST /api/v1/enroll),
badges a person in at each (POST /api/v1/login), starts each station's step, and then drives the
stations the way they deliver: one RecordValue (actor, person session, traveler, text item) per
POST /api/v1/actions/batch, with the station's idempotency key and sequence number, through the
station's own client (kiosk.client.ExecutionClient.deliver). It measures:

  * capacity: each station sends its next value as soon as the last is answered (closed loop);
    values acknowledged (200, outcome applied) per second over the measured window;
  * latency at an offered load (default 10 values/s per station: 500/s for 50 stations), Poisson
    arrivals per station, open loop; each station has one connection and sends one request at a
    time, as a station's sender does, so a value that arrives while the previous one is in flight
    waits; latency runs from the value's scheduled arrival, so queueing is not hidden.

In the same run, interleaved round by round with the kiosk so a busy moment of this shared machine
hits both alike, the baseline: a minimal FastAPI + SQLAlchemy app (scripts/_bench_baseline_app.py)
on the same database, durability settings, pool sizes and worker count, inserting one row per
request, driven by the same stations at the same concurrency. Also measured, once: capacity with
every station recording on the same traveler (one traveler row lock for all). Beside the stations'
latency, the kiosk's own: the share of its deliveries it answered within 25 and 50 ms by its
/metrics histogram (kiosk_http_request_duration_seconds, from a request's arrival in the app to the
end of its answer), so what the HTTP connection, the kernel and a busy client process add shows.

    .venv/bin/python scripts/bench_plant.py [--stations 50] [--seconds 60] [--workers 1]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres] [--clients 2]

`--seconds` is the measured window of each measurement (kiosk capacity, baseline capacity, kiosk
latency, baseline latency), split into `--rounds` interleaved rounds, each after `--warmup` s;
the shared-traveler capacity gets one round. Without --database-url: a SQLite file in a temporary
directory. A PostgreSQL URL names a server: a fresh database `kiosk_bench_<random>` is created there
and dropped at the end. Exits 0 whether or not the targets are met (it prints which are missed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import multiprocessing
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, update  # noqa: E402

from kiosk.client import BackendError, ExecutionClient  # noqa: E402
from kiosk.server import schema as t  # noqa: E402
from kiosk.server.metrics import REQUEST_DURATION as SERVER_CLOCK  # noqa: E402
from kiosk.server.observe import BATCH  # noqa: E402
from kiosk.wire import ActionBatch, QueuedAction, RecordValue, StartStep, StationConfig  # noqa: E402

# One operator per station, as a plant has: a person is clocked on one step at a time.
BADGE_BASE = 900_000
WORK_CENTER = "ASSEMBLY"
SHARED_TRAVELER = "TRV-PALL"
TARGET_CAPACITY = 1000.0
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0


# --- the plant ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StationPlan:
    """One bench station as its client process drives it (plain data: it crosses processes)."""

    index: int
    name: str
    token: str
    actor_id: int
    session: str
    traveler: str
    item_id: int
    shared_item_id: int
    next_seq: int


@dataclass(frozen=True)
class Seeded:
    secret_file: Path
    codes: list[str]
    travelers: list[tuple[str, int, int]]
    """(traveler, step id, text item id) per station."""
    shared: tuple[str, int, int]


def _text_routing() -> list[Any]:
    from kiosk.server import erp
    from kiosk.wire import ItemKind

    return [
        erp.OperationSpec(number="10", name="Log", work_center=WORK_CENTER, steps=[
            erp.StepSpec(number="10.1", title="Log", instructions="Note what you see.",
                         items=[erp.ItemSpec(label="Note", kind=ItemKind.TEXT)])])
    ]  # fmt: skip


def seed(database_url: str, directory: Path, stations: int) -> Seeded:
    """The demo plant, a traveler with a text step per station and one for all, the stations."""
    from kiosk.server import erp
    from kiosk.server.app import ServerConfig, open_service

    secret_file = directory / "plant-secret"
    svc = open_service(ServerConfig(database_url, secret_file, demo=True))
    try:
        numbers = [f"TRV-P{n:04d}" for n in range(stations)]
        plant = erp.PlantImport(
            work_orders=[
                erp.WorkOrderSpec(
                    number="WO-PLANT", part_number="P-1", part_name="Bench part",
                    quantity=stations + 1,
                    travelers=[erp.TravelerSpec(number=n) for n in [*numbers, SHARED_TRAVELER]],
                    routing=_text_routing(),
                )
            ]
        )  # fmt: skip
        with svc.store.begin() as conn:
            erp.load(conn, plant)
            _bench_people(conn, svc.secret, stations)

        def ids(number: str) -> tuple[str, int, int]:
            step = svc.traveler(number).steps[0]
            return number, step.id, step.items[0].id

        travelers = [ids(n) for n in numbers]
        shared = ids(SHARED_TRAVELER)
        codes = [svc.add_station(f"PLANT-{n:03d}", WORK_CENTER) for n in range(stations)]
        with svc.store.begin() as conn:
            # Station 0's person also starts the shared traveler's step: two steps at once there.
            two = StationConfig(steps_per_person=2).model_dump_json()
            conn.execute(
                update(t.stations).where(t.stations.c.name == "PLANT-000").values(config=two)
            )
    finally:
        svc.store.dispose()
    return Seeded(secret_file, codes, travelers, shared)


def _bench_people(conn: Any, secret: Any, stations: int) -> None:
    """An operator per station, written straight in (a benchmark's shortcut): one PIN hash for
    all, since nobody signs here and argon2 per person would only slow the setup down."""
    from kiosk.server.security import hash_pin

    pin_hash = hash_pin("1234")
    rows = [
        {"name": f"Bench Operator {n:03d}", "roles": "operator", "work_centers": WORK_CENTER,
         "badge_hmac": secret.badge_hash(str(BADGE_BASE + n)), "pin_hash": pin_hash,
         "pin_salt": os.urandom(16).hex(), "pin_key_sealed": None, "failed_pins": 0,
         "locked": False, "active": True}
        for n in range(stations)
    ]  # fmt: skip
    conn.execute(insert(t.users), rows)


@contextmanager
def fresh_databases(url: str | None, directory: Path) -> Iterator[tuple[str, str, str]]:
    """(kiosk database URL, baseline database URL, backend description); dropped afterwards."""
    if url is None or url.startswith("sqlite"):
        if url is not None and url not in ("sqlite", "sqlite://", "sqlite:///"):
            raise SystemExit("--database-url: give a PostgreSQL server, or 'sqlite' (a temp file)")
        yield (
            f"sqlite:///{directory / 'plant.db'}",
            f"sqlite:///{directory / 'baseline.db'}",
            "SQLite (WAL, synchronous=FULL, BEGIN IMMEDIATE)",
        )
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    if base.get_backend_name() != "postgresql":
        raise SystemExit(f"--database-url: {base.get_backend_name()} is not supported here")
    name = f"kiosk_bench_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        setting = conn.execute(text("SHOW synchronous_commit")).scalar_one()
    fresh = base.set(database=name).render_as_string(hide_password=False)
    plain = fresh.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        yield plain, plain, f"PostgreSQL {name} (synchronous_commit={setting})"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- server processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return ""


@contextmanager
def server(name: str, argv: list[str], port: int, log: Path) -> Iterator[Server]:
    with log.open("wb") as err:
        # Their log lines, uvicorn's access lines included, go to stderr: to `log`.
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    srv = Server(name, f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{srv.tail()}")
            try:
                if httpx.get(f"{srv.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not answer /health in 60 s:\n{srv.tail()}")
            time.sleep(0.1)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants, from /proc."""
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


# --- driving stations (in client processes) ---------------------------------------------------------


def client_timeout() -> httpx.Timeout:
    # A value waits for its station's one connection as long as it takes: that wait is latency.
    return httpx.Timeout(60.0, connect=10.0, pool=None)


def one_connection() -> httpx.AsyncHTTPTransport:
    """A station's sender has one request in flight at a time: one connection, kept alive."""
    return httpx.AsyncHTTPTransport(
        retries=0, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)
    )


class KioskStation:
    def __init__(self, plan: StationPlan, url: str, shared: bool) -> None:
        self.plan = plan
        self.seq = plan.next_seq
        self.shared = shared
        self.client = ExecutionClient(
            url, plan.token, timeout=client_timeout(), transport=one_connection()
        )
        self.sent = 0

    async def send(self) -> str | None:
        """Deliver one value as the station's sender does; None when applied, else why not."""
        p = self.plan
        self.sent += 1
        action = RecordValue(
            actor_id=p.actor_id,
            session=p.session,
            traveler=SHARED_TRAVELER if self.shared else p.traveler,
            item_id=p.shared_item_id if self.shared else p.item_id,
            value=f"{p.name} value {self.sent}",
            station_time=datetime.now(UTC),
        )
        queued = QueuedAction(key=str(uuid.uuid4()), station_seq=self.seq, action=action)
        self.seq += 1
        try:
            result = await self.client.deliver(ActionBatch(actions=(queued,)))
        except BackendError as exc:
            return f"{type(exc).__name__} {exc.status or ''} {exc.rule or exc.detail[:60]}"
        outcome = result.outcomes[0]
        if outcome.status >= 400:
            rule = outcome.problem.rule if outcome.problem else None
            return f"refused {outcome.status} {rule}"
        return None

    async def aclose(self) -> None:
        await self.client.aclose()


class BaselineStation:
    def __init__(self, plan: StationPlan, url: str) -> None:
        self.plan = plan
        self.client = httpx.AsyncClient(
            base_url=url, timeout=client_timeout(), transport=one_connection()
        )
        self.sent = 0

    async def send(self) -> str | None:
        self.sent += 1
        body = {"station": self.plan.index, "value": f"{self.plan.name} value {self.sent}"}
        try:
            response = await self.client.post("/insert", json=body)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if response.status_code != 200 or "id" not in response.json():
            return f"HTTP {response.status_code}"
        return None

    async def aclose(self) -> None:
        await self.client.aclose()


@dataclass
class Tally:
    """What one client process saw in one phase (plain data, for the pipe)."""

    acknowledged: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0


async def closed_loop(
    station: KioskStation | BaselineStation, begin: float, end: float, tally: Tally
) -> None:
    """Capacity: the next value goes as soon as the last is answered."""
    while (sent := time.perf_counter()) < end:
        why = await station.send()
        done = time.perf_counter()
        if sent >= begin and done <= end:
            tally.latencies_ms.append((done - sent) * 1000)
        if begin <= done <= end:
            if why is None:
                tally.acknowledged += 1
            else:
                tally.errors[why] += 1


async def open_loop(
    station: KioskStation | BaselineStation,
    rate: float,
    rng: random.Random,
    start: float,
    begin: float,
    end: float,
    drain_until: float,
    tally: Tally,
) -> None:
    """Latency: Poisson arrivals at `rate`, each value timed from its scheduled arrival."""
    lock = asyncio.Lock()  # the station's one request in flight; waiters queue in order
    pending: list[tuple[float, asyncio.Task[None]]] = []

    async def deliver(at: float) -> None:
        async with lock:
            why = await station.send()
        done = time.perf_counter()
        if why is None and begin <= done <= end:
            tally.acknowledged += 1  # the throughput achieved in the window
        if at >= begin:
            tally.latencies_ms.append((done - at) * 1000)
            if why is not None:
                tally.errors[why] += 1

    at = start + rng.expovariate(rate)
    while at < end:
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append((at, asyncio.create_task(deliver(at))))
        at += rng.expovariate(rate)
    tasks = [task for _, task in pending]
    if tasks:
        await asyncio.wait(tasks, timeout=max(0.0, drain_until - time.perf_counter()))
    for scheduled, task in pending:
        if not task.done():
            task.cancel()
            if scheduled >= begin:
                # Still waiting when the phase ended: counted at its wait so far (a lower bound).
                tally.unanswered += 1
                tally.latencies_ms.append((drain_until - scheduled) * 1000)
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_phase(phase: dict[str, Any], plans: list[StationPlan]) -> Tally:
    tally = Tally()
    # The parent sets the phase's start on the wall clock; each process maps it to its own.
    start = time.perf_counter() + (phase["start_at"] - time.time())
    begin = start + phase["warmup"]
    end = begin + phase["seconds"]
    drain_until = end + phase["drain"]
    stations: list[KioskStation | BaselineStation] = [
        KioskStation(p, phase["url"], phase["shared"])
        if phase["target"] == "kiosk"
        else BaselineStation(p, phase["url"])
        for p in plans
    ]

    async def measure_cpu() -> None:
        await asyncio.sleep(max(0.0, begin - time.perf_counter()))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        tally.cpu_seconds = time.process_time() - cpu0
        tally.wall_seconds = time.perf_counter() - wall0

    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    work: list[Awaitable[None]] = [measure_cpu()]
    for station in stations:
        if phase["mode"] == "closed":
            work.append(closed_loop(station, begin, end, tally))
        else:
            rng = random.Random(phase["seed"] * 1_000_003 + station.plan.index)
            work.append(
                open_loop(station, phase["rate"], rng, start, begin, end, drain_until, tally)
            )
    await asyncio.gather(*work)
    for station in stations:
        if isinstance(station, KioskStation):
            # The next phase goes on from the next sequence number: no gaps, no repeats.
            plans[plans.index(station.plan)] = _advanced(station.plan, station.seq)
        await station.aclose()
    return tally


def _advanced(plan: StationPlan, next_seq: int) -> StationPlan:
    return StationPlan(**{**asdict(plan), "next_seq": next_seq})


def as_separate_machines() -> None:
    """A client process stands for 25 stations, each a machine of its own: a full collection of
    its garbage held up all 25 of them at once (100-140 ms, eight times a run), which no plant's
    stations do, and it counted as the server's latency, the kiosk's and the baseline's alike.
    So before each measurement what is alive is collected and frozen, and during it collections
    are rare and small."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 1000)


def client_process(conn: Connection, plans: list[dict[str, Any]]) -> None:
    """A client process: drives its share of the stations, one phase per message."""
    stations = [StationPlan(**p) for p in plans]
    while (phase := conn.recv()) is not None:
        as_separate_machines()
        tally = asyncio.run(run_phase(phase, stations))
        conn.send(
            {
                "acknowledged": tally.acknowledged,
                "latencies_ms": tally.latencies_ms,
                "errors": dict(tally.errors),
                "unanswered": tally.unanswered,
                "cpu_seconds": tally.cpu_seconds,
                "wall_seconds": tally.wall_seconds,
            }
        )


# --- setup over HTTP ------------------------------------------------------------------------------


async def enroll_and_badge_in(url: str, seeded: Seeded) -> list[StationPlan]:
    """Each station trades its code for a token, a person badges in, the station starts its step
    (and station 0 the shared traveler's), and sends one value to prove the whole path works."""
    gate = asyncio.Semaphore(4)  # badge-ins cost argon2 on the server: not all 50 at once
    # A busy machine may take long over a badge-in; a retry would not help (codes are single-use).
    patient = httpx.Timeout(300.0, connect=10.0, pool=None)

    async def one(index: int, code: str) -> StationPlan:
        async with gate:
            async with ExecutionClient(
                url, None, timeout=patient, transport=one_connection()
            ) as anonymous:
                token = (await anonymous.enroll(code)).token
            async with ExecutionClient(
                url, token, timeout=patient, transport=one_connection()
            ) as client:
                signed_in = await client.login(str(BADGE_BASE + index))
                number, step_id, item_id = seeded.travelers[index]
                seq = 1
                starts = [(number, step_id)]
                if index == 0:
                    starts.append((seeded.shared[0], seeded.shared[1]))
                for trav, step in starts:
                    action = StartStep(
                        actor_id=signed_in.person.id,
                        session=signed_in.session,
                        traveler=trav,
                        step_id=step,
                    )
                    await _applied(client, seq, action)
                    seq += 1
                probe = RecordValue(
                    actor_id=signed_in.person.id,
                    session=signed_in.session,
                    traveler=number,
                    item_id=item_id,
                    value="first value",
                )
                await _applied(client, seq, probe)
                return StationPlan(
                    index=index,
                    name=f"PLANT-{index:03d}",
                    token=token,
                    actor_id=signed_in.person.id,
                    session=signed_in.session,
                    traveler=number,
                    item_id=item_id,
                    shared_item_id=seeded.shared[2],
                    next_seq=seq + 1,
                )

    return list(await asyncio.gather(*(one(n, c) for n, c in enumerate(seeded.codes))))


async def _applied(client: ExecutionClient, seq: int, action: StartStep | RecordValue) -> None:
    queued = QueuedAction(key=str(uuid.uuid4()), station_seq=seq, action=action)
    outcome = (await client.deliver(ActionBatch(actions=(queued,)))).outcomes[0]
    if outcome.status >= 400:
        problem = outcome.problem
        raise SystemExit(
            f"setup: {action.kind} refused ({outcome.status}): "
            f"{problem.rule if problem else ''} {problem.detail if problem else ''}"
        )


# --- the run --------------------------------------------------------------------------------------


@dataclass
class Measured:
    label: str
    target: str
    mode: str
    seconds: float
    acknowledged: int
    latencies_ms: list[float]
    errors: Counter[str]
    unanswered: int
    client_cpu: list[float]
    """Per client process: CPU seconds per second of the window (1.0 = one core)."""
    server_cpu: float
    """The server's processes (all workers), CPU seconds per second of the window."""
    machine_busy: float
    """The whole machine, busy share of all its cores over the window."""
    served: dict[str, float] = field(default_factory=dict)
    """The kiosk's deliveries answered in the window by its own clock: how many took at most
    each bucket's seconds (`SERVER_CLOCK`, by `le`), `+Inf` all of them."""

    @property
    def rate(self) -> float:
        return self.acknowledged / self.seconds

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def merge(parts: list[Measured]) -> Measured:
    first = parts[0]
    errors: Counter[str] = Counter()
    for p in parts:
        errors.update(p.errors)
    seconds = sum(p.seconds for p in parts)

    def weighted(values: list[float]) -> float:
        return sum(v * p.seconds for v, p in zip(values, parts, strict=True)) / seconds

    clients = len(first.client_cpu)
    return Measured(
        label=first.label,
        target=first.target,
        mode=first.mode,
        seconds=seconds,
        acknowledged=sum(p.acknowledged for p in parts),
        latencies_ms=[v for p in parts for v in p.latencies_ms],
        errors=errors,
        unanswered=sum(p.unanswered for p in parts),
        client_cpu=[weighted([p.client_cpu[i] for p in parts]) for i in range(clients)],
        server_cpu=weighted([p.server_cpu for p in parts]),
        machine_busy=weighted([p.machine_busy for p in parts]),
        served=dict(sum((Counter(p.served) for p in parts), Counter())),
    )


class Bench:
    def __init__(
        self, args: argparse.Namespace, pipes: list[Connection], servers: dict[str, Server]
    ) -> None:
        self.args = args
        self.pipes = pipes
        self.servers = servers
        self.phases = 0

    def phase(
        self, label: str, target: str, mode: str, seconds: float, shared: bool = False
    ) -> Measured:
        self.phases += 1
        args = self.args
        start_at = time.time() + 0.5  # every client process has the message by then
        phase = {
            "target": target,
            "url": self.servers[target].url,
            "mode": mode,
            "shared": shared,
            "warmup": args.warmup,
            "seconds": seconds,
            "rate": args.rate,
            "drain": args.drain,
            "seed": args.seed + self.phases,
            "start_at": start_at,
        }
        for pipe in self.pipes:
            pipe.send(phase)
        time.sleep(max(0.0, start_at + args.warmup - time.time()))
        pid = self.servers[target].proc.pid
        clocked = target == "kiosk"
        served0 = served_by_the_server(self.servers[target].url) if clocked else {}
        cpu0, (busy0, total0), wall0 = tree_cpu(pid), machine_cpu(), time.perf_counter()
        time.sleep(max(0.0, start_at + args.warmup + seconds - time.time()))
        cpu1, (busy1, total1), wall1 = tree_cpu(pid), machine_cpu(), time.perf_counter()
        served1 = served_by_the_server(self.servers[target].url) if clocked else {}
        tallies = [pipe.recv() for pipe in self.pipes]
        if self.servers[target].proc.poll() is not None:
            raise SystemExit(f"{target} server died:\n{self.servers[target].tail()}")
        errors: Counter[str] = Counter()
        for tally in tallies:
            errors.update(tally["errors"])
        time.sleep(0.5)  # let the server settle before the next phase
        return Measured(
            label=label,
            target=target,
            mode=mode,
            seconds=seconds,
            acknowledged=sum(tl["acknowledged"] for tl in tallies),
            latencies_ms=[v for tl in tallies for v in tl["latencies_ms"]],
            errors=errors,
            unanswered=sum(tl["unanswered"] for tl in tallies),
            client_cpu=[tl["cpu_seconds"] / max(tl["wall_seconds"], 1e-9) for tl in tallies],
            server_cpu=(cpu1 - cpu0) / (wall1 - wall0),
            machine_busy=(busy1 - busy0) / max(total1 - total0, 1.0),
            served={le: n - served0.get(le, 0.0) for le, n in served1.items()},
        )


def served_by_the_server(url: str) -> dict[str, float]:
    """How many deliveries the kiosk has answered within each of its latency buckets, by its own
    clock: from the request's arrival in the app to the end of its answer (its /metrics). What the
    stations see on top of that is the HTTP connection, the kernel and their own waiting."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        sample.labels["le"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == SERVER_CLOCK
        for sample in family.samples
        if sample.name == f"{SERVER_CLOCK}_bucket"
        and sample.labels.get("method") == "POST"
        and sample.labels.get("route") == BATCH
    }


def server_clock(m: Measured) -> str | None:
    """`m`'s deliveries as the server timed them: the share within 25 and 50 ms."""
    answered = m.served.get("+Inf", 0.0)
    if not answered:
        return None
    within = ", ".join(
        f"{m.served.get(le, 0.0) / answered * 100:.1f} % within {float(le) * 1000:.0f} ms"
        for le in ("0.025", "0.05")
    )
    return f"{within} ({answered:.0f} deliveries)"


def run(
    args: argparse.Namespace, pipes: list[Connection], servers: dict[str, Server]
) -> list[Measured]:
    bench = Bench(args, pipes, servers)
    window = args.seconds / args.rounds
    kiosk_cap: list[Measured] = []
    base_cap: list[Measured] = []
    kiosk_lat: list[Measured] = []
    base_lat: list[Measured] = []
    for n in range(args.rounds):
        # Interleaved, and each round in the other order than the one before.
        cap = [("kiosk", kiosk_cap), ("baseline", base_cap)]
        lat = [("kiosk", kiosk_lat), ("baseline", base_lat)]
        if n % 2:
            cap.reverse()
            lat.reverse()
        for target, into in cap:
            into.append(bench.phase(f"{target} capacity", target, "closed", window))
        for target, into in lat:
            into.append(bench.phase(f"{target} latency", target, "open", window))
    shared = bench.phase("kiosk capacity, one shared traveler", "kiosk", "closed", window, True)
    return [*kiosk_cap, *base_cap, *kiosk_lat, *base_lat, shared]


def report(args: argparse.Namespace, backend: str, setup: str, measured: list[Measured]) -> None:
    r = args.rounds
    kiosk_cap, base_cap = measured[0:r], measured[r : 2 * r]
    kiosk_lat, base_lat, shared = measured[2 * r : 3 * r], measured[3 * r : 4 * r], measured[-1]
    capacity = statistics.median(m.rate for m in kiosk_cap)
    baseline = statistics.median(m.rate for m in base_cap)
    ratio = capacity / baseline if baseline else math.nan
    lat, blat = merge(kiosk_lat), merge(base_lat)
    offered = args.rate * args.stations
    window = args.seconds / args.rounds
    clients = len(measured[0].client_cpu)
    print(
        f"plant benchmark: {args.stations} stations, {backend}, {args.workers} server worker(s), "
        f"{clients} client process(es)"
    )
    print(setup)
    print(
        f"{r} interleaved rounds of {window:.1f} s measured (after {args.warmup:.1f} s warm-up) "
        f"per measurement; shared-traveler capacity: one round"
    )
    head = f"{'':44} {'values/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  {'server CPU':>10}  {'client CPU':>14}  {'machine':>7}"
    print(head)

    def row(name: str, m: Measured, rate: float | None = None) -> None:
        errors = sum(m.errors.values()) + m.unanswered
        cpus = "+".join(f"{c * 100:.0f}%" for c in m.client_cpu)
        print(
            f"{name:44} {rate if rate is not None else m.rate:9.0f} {m.pct(50):8.1f} {m.pct(99):8.1f} "
            f"{errors:7d}  {m.server_cpu * 100:9.0f}%  {cpus:>14}  {m.machine_busy * 100:6.0f}%"
        )

    print("capacity (closed loop; values/s = median of rounds, p50/p99 = per request):")
    row("  kiosk, own traveler per station", merge(kiosk_cap), capacity)
    row("  baseline, one row per request", merge(base_cap), baseline)
    row("  kiosk, all stations on one traveler", shared)
    print(
        f"latency at {offered:.0f}/s offered (Poisson, open loop; values/s = answered in the "
        "window, p50/p99 = of values arriving in it, from their scheduled arrival):"
    )
    row("  kiosk, own traveler per station", lat)
    row("  baseline, one row per request", blat)
    clocked = server_clock(lat)
    if clocked is not None:
        print(f"  kiosk, by its own clock ({SERVER_CLOCK}): {clocked}")
    print(
        "rounds, values/s: kiosk "
        + " ".join(f"{m.rate:.0f}" for m in kiosk_cap)
        + "; baseline "
        + " ".join(f"{m.rate:.0f}" for m in base_cap)
    )
    print(
        "CPU: share of one core (server = all its worker processes; database server processes not "
        "included); machine = busy share of all cores"
    )
    busiest = max(c for m in measured for c in m.client_cpu)
    if busiest > 0.85:
        print(
            f"note: a client process used {busiest * 100:.0f}% of a core: the client may be "
            "limiting; try --clients 2"
        )
    every: Counter[tuple[str, str]] = Counter()
    for m in measured:
        every.update({(m.label, why): n for why, n in m.errors.items()})
        if m.unanswered:
            every[(m.label, "unanswered when the phase ended (counted at their wait so far)")] += (
                m.unanswered
            )
    for (label, why), count in every.most_common(8):
        print(f"errors: {label}: {count} x {why}")
    if capacity < TARGET_CAPACITY:
        print(f"target capacity >= {TARGET_CAPACITY:,.0f} values/s missed: {capacity:,.0f}")
    if not ratio >= TARGET_RATIO:
        print(f"target ratio >= {TARGET_RATIO} missed: {ratio:.2f}")
    if not lat.pct(99) <= TARGET_P99_MS:
        print(
            f"target p99 <= {TARGET_P99_MS:.0f} ms at {offered:.0f}/s offered missed: {lat.pct(99):.1f} ms"
        )
    print(
        f"plant: capacity {capacity:.0f} values/s, baseline {baseline:.0f} req/s, ratio {ratio:.2f}; "
        f"at {offered:.0f}/s offered p50 {lat.pct(50):.1f} ms, p99 {lat.pct(99):.1f} ms"
    )


def _stop(signum: int, _frame: object) -> None:
    # Unwind like Ctrl-C: the servers are stopped and a PostgreSQL bench database is dropped.
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=50)
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="measured window per measurement"
    )
    parser.add_argument(
        "--database-url", default=None, help="a PostgreSQL server (default: SQLite)"
    )
    parser.add_argument("--workers", type=int, default=1, help="kiosk serve (and baseline) workers")
    parser.add_argument("--rate", type=float, default=10.0, help="offered values/s per station")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each window")
    parser.add_argument(
        "--drain", type=float, default=5.0, help="open loop: wait for answers after"
    )
    parser.add_argument(
        "--clients", type=int, default=None, help="client processes (default: 2 from 20 stations)"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.stations < 1 or args.rounds < 1 or (args.clients or 1) < 1 or args.seconds <= 0:
        parser.error("--stations, --rounds, --clients must be >= 1 and --seconds > 0")
    if args.clients is None:
        args.clients = 2 if args.stations >= 20 else 1
    args.clients = min(args.clients, args.stations)
    with tempfile.TemporaryDirectory(prefix="bench-plant-") as tmp, ExitStack() as stack:
        directory = Path(tmp)
        kiosk_db, baseline_db, backend = stack.enter_context(
            fresh_databases(args.database_url, directory)
        )
        kiosk_port, baseline_port = free_port(), free_port()
        started = time.perf_counter()
        seeded = seed(kiosk_db, directory, args.stations)
        seeded_in = time.perf_counter() - started
        kiosk = stack.enter_context(server("kiosk serve", [
            sys.executable, "-m", "kiosk", "serve", "--port", str(kiosk_port),
            "--database-url", kiosk_db, "--secret-file", str(seeded.secret_file),
            "--workers", str(args.workers)], kiosk_port, directory / "kiosk-serve.log"))  # fmt: skip
        baseline = stack.enter_context(server("baseline", [
            sys.executable, str(ROOT / "scripts" / "_bench_baseline_app.py"),
            "--port", str(baseline_port), "--database-url", baseline_db,
            "--workers", str(args.workers)], baseline_port, directory / "baseline.log"))  # fmt: skip
        started = time.perf_counter()
        plans = asyncio.run(enroll_and_badge_in(kiosk.url, seeded))
        setup = (
            f"setup: demo plant and {args.stations + 1} travelers seeded in {seeded_in:.1f} s; "
            f"{args.stations} stations enrolled, badged in, step started and a first value "
            f"applied, over HTTP, in {time.perf_counter() - started:.1f} s"
        )
        context = multiprocessing.get_context("spawn")
        pipes: list[Connection] = []
        procs = []
        for n in range(args.clients):
            mine, theirs = context.Pipe()
            share = [asdict(p) for p in plans[n :: args.clients]]
            proc = context.Process(target=client_process, args=(theirs, share), daemon=True)
            proc.start()
            pipes.append(mine)
            procs.append(proc)

        def stop_clients() -> None:
            for pipe in pipes:
                with suppress(OSError):
                    pipe.send(None)
            for proc in procs:
                proc.join(10)
                if proc.is_alive():
                    proc.kill()

        stack.callback(stop_clients)
        load_before = os.getloadavg()[0]
        measured = run(args, pipes, {"kiosk": kiosk, "baseline": baseline})
        setup += (
            f"\nmachine: {os.cpu_count()} cores, load average (1 min) {load_before:.1f} before "
            f"the measurements and {os.getloadavg()[0]:.1f} after"
        )
    report(args, backend, setup, measured)


if __name__ == "__main__":
    main()
