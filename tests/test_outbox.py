"""Offline-first delivery: a killed station, a server outage, a lost response, refused actions.

Real processes, real SQLite files, the real server on loopback. Pass criterion throughout: every
action whose recording was confirmed reaches the server exactly once, in the station's order.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from kiosk.client import ExecutionClient
from kiosk.client.sender import Backoff, Sender
from kiosk.client.station_db import open_outbox, station_db_path
from kiosk.server import erp
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    Credentials,
    ItemKind,
    Person,
    PlaceHold,
    RecordValue,
    ReleaseHold,
    Role,
    StartStep,
)
from tests.conftest import LiveServer, Plant, free_port

ROOT = Path(__file__).resolve().parent.parent
FAST = Backoff(base=0.05, cap=0.4)
ANA = Person(id=1, name="Ana Ortiz", roles=(Role.OPERATOR,))

NOTE_PLANT = erp.PlantImport(
    work_orders=[
        erp.WorkOrderSpec(
            number="WO-9001",
            part_number="9001-1",
            part_name="Test bracket",
            quantity=1,
            travelers=[erp.TravelerSpec(number="TRV-9001", serial="SN-9001")],
            routing=[
                erp.OperationSpec(
                    number="10",
                    name="Log",
                    work_center="ASSEMBLY",
                    steps=[
                        erp.StepSpec(
                            number="10.1",
                            title="Shift log",
                            instructions="Note what you did.",
                            items=[erp.ItemSpec(label="Note", kind=ItemKind.TEXT)],
                        )
                    ],
                )
            ],
        )
    ]
)


class NoteStep:
    """TRV-9001 step 10.1, started by Ana at DEMO-01: every action records a note on it."""

    def __init__(self, service: ExecutionService) -> None:
        with service.store.begin() as conn:
            erp.load(conn, NOTE_PLANT)
        self.service = service
        self.token = service.local_station_token("DEMO-01", "ASSEMBLY")
        self.station = service.authenticate(self.token)
        self.ana = service.login(self.station, "10001")
        step = service.traveler("TRV-9001").steps[0]
        self.item_id = step.items[0].id
        status, _ = service.perform(
            self.station,
            "start-9001",
            StartStep(
                actor_id=self.ana.person.id,
                session=self.ana.session,
                traveler="TRV-9001",
                step_id=step.id,
            ),
        )
        assert status == 200

    def note(self, n: int) -> RecordValue:
        return RecordValue(
            actor_id=self.ana.person.id,
            session=self.ana.session,
            traveler="TRV-9001",
            item_id=self.item_id,
            value=f"note {n}",
        )

    def server_notes(self) -> list[str]:
        with self.service.store.begin() as conn:
            return list(
                conn.execute(
                    select(t.recorded_values.c.value)
                    .where(t.recorded_values.c.item_id == self.item_id)
                    .order_by(t.recorded_values.c.id)
                ).scalars()
            )

    def delivered(self) -> list[tuple[int, str, int]]:
        """(station_seq, key, status) of everything the server answered for this station."""
        with self.service.store.begin() as conn:
            rows = conn.execute(
                select(t.idempotency.c.station_seq, t.idempotency.c.key, t.idempotency.c.status)
                .where(
                    t.idempotency.c.station_id == self.station.id,
                    t.idempotency.c.station_seq.is_not(None),
                )
                .order_by(t.idempotency.c.station_seq)
            ).all()
        return [(r.station_seq, r.key, r.status) for r in rows]


@pytest.fixture
def notes(service: ExecutionService) -> NoteStep:
    return NoteStep(service)


def assert_exactly_once_in_order(
    notes: NoteStep, confirmed: dict[int, str], outbox_rows: int
) -> None:
    delivered = notes.delivered()
    seqs = [seq for seq, _, _ in delivered]
    assert seqs == list(range(1, outbox_rows + 1)), "station sequence has gaps or repeats"
    keys = {key for _, key, _ in delivered}
    assert set(confirmed.values()) <= keys, "a confirmed action never reached the server"
    assert all(status == 200 for _, _, status in delivered)
    values = notes.server_notes()
    assert len(values) == len(set(values)) == outbox_rows, "an action was applied twice"
    # The server applied them in the station's order.
    order = [int(v.split()[1]) for v in values]
    assert order == sorted(order)


def station_rows(data_dir: Path) -> int:
    with sqlite3.connect(station_db_path(data_dir)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])


# --- crash ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
async def test_station_killed_mid_recording_loses_and_duplicates_nothing(
    live_server: LiveServer, notes: NoteStep, tmp_path: Path
) -> None:
    confirmed: dict[int, str] = {}
    rng = random.Random(7)
    target = 1000
    runs = 0
    while len(confirmed) < target:
        runs += 1
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.outbox_worker", str(tmp_path), "TRV-9001",
             str(notes.item_id), str(notes.ana.person.id), str(target - len(confirmed)),
             notes.ana.session],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert worker.stdout is not None
        kill_after = rng.randint(20, 150) if runs <= 6 else None
        for lines, line in enumerate(worker.stdout, 1):
            seq, key = line.split()
            confirmed[int(seq)] = key
            if kill_after is not None and lines >= kill_after:
                worker.send_signal(signal.SIGKILL)
                break
        worker.wait()
        # Whatever the killed process printed before dying was confirmed too.
        for line in worker.stdout:
            seq, key = line.split()
            confirmed[int(seq)] = key
    assert runs >= 7  # six SIGKILLs at random points, then a run to the end
    rows = station_rows(tmp_path)
    assert rows >= target
    async with ExecutionClient(live_server.url, notes.token) as client:
        report = await Sender(open_outbox(tmp_path), client).deliver()
    assert report.failed is None and report.applied == rows
    assert_exactly_once_in_order(notes, confirmed, rows)


# --- outage and a lost response ------------------------------------------------------------------


class ServerProcess:
    """`kiosk serve` in its own process, stopped and started like a real plant server."""

    def __init__(self, plant: Plant, port: int) -> None:
        self.plant, self.port = plant, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kiosk", "serve", "--port", str(self.port),
             "--database-url", self.plant.database_url, "--secret-file", str(self.plant.secret_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@pytest.fixture
def server_process(plant: Plant) -> Iterator[ServerProcess]:
    server = ServerProcess(plant, free_port())
    server.start()
    yield server
    server.stop()


class DroppingProxy:
    """Forwards HTTP to the server but swallows the next `drop` responses after the server sent them:
    the server has applied the batch, the station never hears so, and must retry."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.drop = 0
        self.dropped = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def upstream() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()

        pump = asyncio.create_task(upstream())
        try:
            while data := await up_reader.read(65536):
                if self.drop > 0:
                    self.drop -= 1
                    self.dropped += 1
                    break  # the response is lost on the way back
                writer.write(data)
                await writer.drain()
        finally:
            pump.cancel()
            writer.close()
            up_writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.mark.slow
async def test_outage_and_lost_responses_lose_nothing_and_apply_nothing_twice(
    server_process: ServerProcess, notes: NoteStep, tmp_path: Path
) -> None:
    proxy = DroppingProxy(server_process.port)
    await proxy.start()
    outbox = open_outbox(tmp_path)
    confirmed: dict[int, str] = {}
    async with ExecutionClient(f"http://127.0.0.1:{proxy.port}", notes.token) as client:
        sender = Sender(outbox, client, backoff=FAST, batch_size=50)
        delivery = asyncio.create_task(sender.run())
        for n in range(1000):
            entry = await asyncio.to_thread(outbox.record, notes.note(n), notes.ana.person)
            confirmed[entry.seq] = entry.key
            sender.nudge()
            if n == 250:
                proxy.drop = 3  # the next three answers are lost after the server applied them
            if n == 400:
                await asyncio.to_thread(server_process.stop)
            if n == 700:
                assert sender.online is False  # the station noticed the outage
                await asyncio.to_thread(server_process.start)
            if n % 50 == 0:
                await asyncio.sleep(0.01)
        deadline = time.monotonic() + 60
        while outbox.waiting() and time.monotonic() < deadline:
            sender.nudge()
            await asyncio.sleep(0.1)
        delivery.cancel()
    await proxy.stop()
    assert outbox.waiting() == 0
    assert proxy.dropped == 3
    assert_exactly_once_in_order(notes, confirmed, station_rows(tmp_path))


# --- conflicts -----------------------------------------------------------------------------------


async def test_actions_refused_after_a_hold_are_kept_with_the_reason_and_nothing_applies(
    live_server: LiveServer, notes: NoteStep, tmp_path: Path
) -> None:
    outbox = open_outbox(tmp_path)
    before = notes.server_notes()
    for n in range(5):  # recorded while the station is offline
        outbox.record(notes.note(n), notes.ana.person)
    # Sam, at the quality office's station, holds the traveler meanwhile.
    office = notes.service.authenticate(notes.service.local_station_token("QA-01", "ASSEMBLY"))
    sam = notes.service.login(office, "30001")
    status, _ = notes.service.perform(
        office,
        "hold-9001",
        PlaceHold(
            actor_id=sam.person.id,
            session=sam.session,
            traveler="TRV-9001",
            reason="Suspect gauge R&R",
        ),
    )
    assert status == 200
    async with ExecutionClient(live_server.url, notes.token) as client:
        report = await Sender(outbox, client).deliver()
    assert (report.applied, report.refused) == (0, 5)
    refused = outbox.entries("refused")
    assert len(refused) == 5
    assert all(
        e.rule == "traveler_on_hold" and "Suspect gauge R&R" in (e.message or "") for e in refused
    )
    assert notes.server_notes() == before

    # A supervisor dismisses one and re-does the rest once the hold is lifted: nothing is lost.
    outbox.dismiss(refused[0].seq, "Sam Patel")
    status, body = notes.service.perform(
        office, "release-9001",
        ReleaseHold(actor_id=sam.person.id, session=sam.session, traveler="TRV-9001",
                    credentials=Credentials(badge="30001", pin="3333")),
    )  # fmt: skip
    assert status == 200, body
    for entry in refused[1:]:
        outbox.redo(entry.seq, "Sam Patel")
    async with ExecutionClient(live_server.url, notes.token) as client:
        report = await Sender(outbox, client).deliver()
    assert (report.applied, report.refused) == (4, 0)
    assert notes.server_notes() == before + [f"note {n}" for n in range(1, 5)]
    counts = outbox.counts()
    assert counts == {"dismissed": 1, "redone": 4, "applied": 4}


async def test_a_delivered_batch_is_answered_in_one_commit_at_the_station(
    live_server: LiveServer, notes: NoteStep, tmp_path: Path
) -> None:
    """After an outage the answers are most of what the station writes: 150 entries go as two
    batches, and their answers are two commits (one fsync each), not 150; then the sync's note."""
    outbox = open_outbox(tmp_path)
    before = notes.server_notes()
    for n in range(150):
        outbox.record(notes.note(n), notes.ana.person)
    commits: list[str] = []
    outbox.db._conn.set_trace_callback(
        lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None
    )
    async with ExecutionClient(live_server.url, notes.token) as client:
        report = await Sender(outbox, client).deliver()
    outbox.db._conn.set_trace_callback(None)
    assert (report.applied, report.refused) == (150, 0)
    assert len(commits) == 3
    assert outbox.counts() == {"applied": 150}
    assert notes.server_notes() == before + [f"note {n}" for n in range(150)]


def test_outbox_never_takes_a_pin(tmp_path: Path) -> None:
    from kiosk.wire import Meaning, SignStep

    outbox = open_outbox(tmp_path)
    signing = SignStep(actor_id=1, traveler="TRV-1001", step_id=1, meaning=Meaning.PERFORMED,
                       credentials=Credentials(badge="10001", pin="1111"))  # fmt: skip
    with pytest.raises(ValueError, match="PIN"):
        outbox.record(signing, ANA)
    assert outbox.counts() == {}
    assert b"1111" not in station_db_path(tmp_path).read_bytes()


def test_synchronous_full_on_every_connection(tmp_path: Path) -> None:
    outbox = open_outbox(tmp_path)
    assert outbox.db.query("PRAGMA synchronous")[0][0] == 2
    assert outbox.db.query("PRAGMA journal_mode")[0][0] == "wal"
