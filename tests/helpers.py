"""Helpers for the execution-backbone tests: the demo people, action builders, state snapshots,
the real `kiosk` command as a subprocess, and small servers on loopback."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from kiosk.client import ExecutionClient
from kiosk.server import schema as t
from kiosk.server.domain import StationRef
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    Action,
    ActionResult,
    Credentials,
    DataItem,
    Meaning,
    Problem,
    RecordValue,
    SignStep,
    StartStep,
    Step,
    Traveler,
)

ROOT = Path(__file__).resolve().parent.parent

# short name -> (printed name, badge, PIN)
PEOPLE: dict[str, tuple[str, str, str]] = {
    "ana": ("Ana Ortiz", "10001", "1111"),
    "ben": ("Ben Okafor", "10002", "1212"),
    "olu": ("Olu Field", "10003", "1313"),
    "ivy": ("Ivy Chen", "20001", "2222"),
    "sam": ("Sam Patel", "30001", "3333"),
    "raj": ("Raj Mehta", "31001", "3131"),
    "ada": ("Ada Admin", "90001", "9999"),
}
BADGES = [badge for _, badge, _ in PEOPLE.values()]
PINS = [pin for _, _, pin in PEOPLE.values()]

# A good value for every data item of the demo bracket routing (TRV-1001..1003).
GOOD_VALUES: dict[str, str] = {
    "Bracket forging lot": "LOT-A100",
    "Kit complete per pick list": "acknowledged",
    "Press tool": "TL-0003",
    "Bushing bore diameter": "12.700",
    "Torque wrench": "TL-0001",
    "Fastener torque": "12.5",
    "Torque stripe applied": "pass",
    "Visual inspection": "pass",
    "Mounting face flatness": "0.02",
    "Inspection notes": "No FOD, stripes intact.",
    "Marked serial": "SN-7741-0001",
    "Marking legible": "acknowledged",
    "Rework done as instructed": "acknowledged",
    "Bushing bore diameter (re-measure)": "12.701",
}


def name(who: str) -> str:
    return PEOPLE[who][0]


def creds(who: str, pin: str | None = None) -> Credentials:
    _, badge, good_pin = PEOPLE[who]
    return Credentials(badge=badge, pin=good_pin if pin is None else pin)


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


# --- reading the store directly ------------------------------------------------------------------


def person_ids(service: ExecutionService) -> dict[str, int]:
    with service.store.begin() as conn:
        by_name = {r.name: int(r.id) for r in conn.execute(select(t.users.c.id, t.users.c.name))}
    # A plant made before a demo person was added (release 1's) lacks them: left out.
    return {who: by_name[p] for who, (p, _, _) in PEOPLE.items() if p in by_name}


def station_ref(service: ExecutionService, station: str = "DEMO-01") -> StationRef:
    with service.store.begin() as conn:
        row = conn.execute(select(t.stations).where(t.stations.c.name == station)).one()
    return StationRef(int(row.id), row.name, row.work_center)


def count(service: ExecutionService, table: Any) -> int:
    with service.store.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def audit_count(service: ExecutionService) -> int:
    return count(service, t.audit_log)


def record_count(service: ExecutionService) -> int:
    """Audit records of changes to the plant's records: all but badge-ins (a test badges its
    people in as it goes, and a badge-in opens a session, it changes no record)."""
    with service.store.begin() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(t.audit_log)
                .where(t.audit_log.c.action != "badge_in")
            ).scalar_one()
        )


def rows(service: ExecutionService, table: Any) -> list[dict[str, Any]]:
    with service.store.begin() as conn:
        return [dict(r) for r in conn.execute(select(table)).mappings()]


@dataclass(frozen=True)
class Snapshot:
    """Everything a refused action must leave untouched."""

    traveler: Traveler
    audit: int
    values: int
    signatures: int
    holds: int
    ncrs: int
    steps: int


def snapshot(service: ExecutionService, traveler: str) -> Snapshot:
    return Snapshot(
        traveler=service.traveler(traveler),
        audit=record_count(service),
        values=count(service, t.recorded_values),
        signatures=count(service, t.signatures),
        holds=count(service, t.holds),
        ncrs=count(service, t.ncrs),
        steps=count(service, t.steps),
    )


# --- finding things on a traveler -------------------------------------------------------------------


def step_of(trav: Traveler, number: str) -> Step:
    for step in trav.steps:
        if step.number == number:
            return step
    raise AssertionError(f"{trav.number} has no step {number}: {[s.number for s in trav.steps]}")


def typed_items(step: Step) -> list[DataItem]:
    """The items a value is typed or scanned for: photos and files are uploaded instead."""
    from kiosk.rules import EVIDENCE_TYPES

    return [item for item in step.items if item.kind not in EVIDENCE_TYPES]


def item_of(step: Step, label: str) -> DataItem:
    for item in step.items:
        if item.label == label:
            return item
    raise AssertionError(f"step {step.number} has no item {label!r}")


# --- building actions -------------------------------------------------------------------------------


class Actions:
    """Builds wire actions for the demo people against a traveler as it stands.

    The actions name their actor by id only; `do` badges the actor in at the station first
    (ending whoever was signed in there, as a badge does) and sends the action with the session.
    """

    def __init__(self, ids: dict[str, int]) -> None:
        self.ids = ids
        self.badges = {ids[who]: badge for who, (_, badge, _) in PEOPLE.items() if who in ids}
        self.signed_in: tuple[int, str] | None = None
        """(person id, session token) of who is badged in at this floor's station."""

    def with_session(self, action: Action, session: str) -> Action:
        return action.model_copy(update={"session": session})

    def needs_session(self, action: Action) -> bool:
        return action.session is None and action.actor_proof is None

    def start(self, who: str, trav: Traveler, number: str) -> StartStep:
        return StartStep(
            actor_id=self.ids[who], traveler=trav.number, step_id=step_of(trav, number).id
        )

    def record(
        self, who: str, trav: Traveler, number: str, label: str, value: str, **kw: Any
    ) -> RecordValue:
        item = item_of(step_of(trav, number), label)
        return RecordValue(
            actor_id=self.ids[who], traveler=trav.number, item_id=item.id, value=value, **kw
        )

    def sign(
        self,
        who: str,
        trav: Traveler,
        number: str,
        meaning: Meaning = Meaning.PERFORMED,
        *,
        signer: str | None = None,
        pin: str | None = None,
    ) -> SignStep:
        return SignStep(
            actor_id=self.ids[who],
            traveler=trav.number,
            step_id=step_of(trav, number).id,
            meaning=meaning,
            credentials=creds(signer or who, pin),
        )


class Floor(Actions):
    """A station on the shop floor, over the real HTTP client."""

    def __init__(self, client: ExecutionClient, ids: dict[str, int]) -> None:
        super().__init__(ids)
        self.client = client

    async def traveler(self, number: str) -> Traveler:
        return await self.client.traveler(number)

    async def do(self, action: Action, key: str | None = None) -> ActionResult:
        return await self.client.perform(await self.proven(action), key=key)

    async def proven(self, action: Action) -> Action:
        if not self.needs_session(action):
            return action
        return self.with_session(action, await self.session_of(action.actor_id))

    async def session_of(self, person_id: int) -> str:
        if self.signed_in is None or self.signed_in[0] != person_id:
            signed = await self.client.login(self.badges[person_id])
            self.signed_in = (person_id, signed.session)
        return self.signed_in[1]

    async def start_step(self, who: str, number: str, step: str) -> ActionResult:
        return await self.do(self.start(who, await self.traveler(number), step))

    async def record_value(
        self, who: str, number: str, step: str, label: str, value: str
    ) -> ActionResult:
        return await self.do(self.record(who, await self.traveler(number), step, label, value))

    async def sign_step(
        self,
        who: str,
        number: str,
        step: str,
        meaning: Meaning = Meaning.PERFORMED,
        *,
        signer: str | None = None,
        pin: str | None = None,
    ) -> ActionResult:
        trav = await self.traveler(number)
        return await self.do(self.sign(who, trav, step, meaning, signer=signer, pin=pin))

    async def work(
        self,
        who: str,
        number: str,
        step: str,
        values: dict[str, str] | None = None,
        *,
        sign: bool = True,
    ) -> ActionResult:
        """Start `step`, record a good value for every item, and sign it as performed."""
        result = await self.start_step(who, number, step)
        chosen = {**GOOD_VALUES, **(values or {})}
        for item in typed_items(step_of(result.traveler, step)):
            result = await self.do(
                self.record(who, result.traveler, step, item.label, chosen[item.label])
            )
        if sign:
            result = await self.sign_step(who, number, step)
        return result


class ServiceFloor(Actions):
    """The same moves straight on the ExecutionService, for tests that need no socket."""

    def __init__(self, service: ExecutionService, station: StationRef | None = None) -> None:
        super().__init__(person_ids(service))
        self.service = service
        self.station = station or station_ref(service)

    def do(self, action: Action, key: str | None = None) -> ActionResult:
        status, body = self.service.perform(self.station, key or new_key(), self.proven(action))
        assert status == 200, body
        return ActionResult.model_validate_json(body)

    def refuse(self, action: Action) -> Problem:
        status, body = self.service.perform(self.station, new_key(), self.proven(action))
        assert status >= 400, body
        return Problem.model_validate_json(body)

    def proven(self, action: Action) -> Action:
        if not self.needs_session(action):
            return action
        return self.with_session(action, self.session_of(action.actor_id))

    def session_of(self, person_id: int) -> str:
        if self.signed_in is None or self.signed_in[0] != person_id:
            signed = self.service.login(self.station, self.badges[person_id])
            self.signed_in = (person_id, signed.session)
        return self.signed_in[1]

    def work(
        self, who: str, number: str, step: str, values: dict[str, str] | None = None
    ) -> ActionResult:
        result = self.do(self.start(who, self.service.traveler(number), step))
        chosen = {**GOOD_VALUES, **(values or {})}
        for item in typed_items(step_of(result.traveler, step)):
            result = self.do(
                self.record(who, result.traveler, step, item.label, chosen[item.label])
            )
        return self.do(self.sign(who, result.traveler, step))


# --- secrets must not leak ---------------------------------------------------------------------------


def secret_pattern(secret: str) -> re.Pattern[str]:
    """`secret` as a whole token: not inside a longer run of letters or digits (a hash, a time)."""
    return re.compile(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])")


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
"""A random id (an idempotency key): one in about 9,000 has a group of four that is one of the
PINs, which is chance, not a leak (a test run failed on '58763100-1313-…')."""


def leaked_secrets(text: str) -> list[str]:
    text = UUID.sub("<uuid>", text)
    return [s for s in BADGES + PINS if secret_pattern(s).search(text)]


# --- processes and servers ---------------------------------------------------------------------------


def kiosk(*args: str, data_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `kiosk` command; its data directory is kept inside the test's tmp dir."""
    env = {**os.environ, "KIOSK_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answers(
    url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 20
) -> None:
    """Bounded wait for a server to answer GET `url` with 200."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s (last error: {last!r})")


@contextmanager
def server_process(*args: str, data_dir: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`kiosk serve ...` as a child process; terminated (by its pid) on the way out."""
    env = {**os.environ, "KIOSK_DATA_DIR": str(data_dir)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiosk", "serve", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@asynccontextmanager
async def raw_http(url: str, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """Plain httpx with a station token, for requests the typed client would never send."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
        yield http


@contextmanager
def app_in_thread(app: FastAPI, *, log_level: str = "warning") -> Iterator[str]:
    """The ASGI app under a real uvicorn on a loopback port, in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, lifespan="off")
    with uvicorn_in_thread(config):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def uvicorn_in_thread(config: uvicorn.Config) -> Iterator[None]:
    """A real uvicorn in a thread of the test process, started and stopped within bounds."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


CRYPTFILE = "keyrings.cryptfile.cryptfile.CryptFileKeyring"


def thin_client_home(tmp_path: Path, monkeypatch: Any) -> Path:
    """A thin client of our own: HOME, XDG dirs and data dir in tmp, cryptfile as the keyring,
    and none of this machine's station, keyring or terminal settings."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", CRYPTFILE)
    monkeypatch.setenv("KEYRING_CRYPTFILE_PASSWORD", "correct horse battery staple")
    for name in (
        "KIOSK_CONFIG_FILE",
        "KIOSK_KEYRING_BACKEND",
        "CREDENTIALS_DIRECTORY",
        "COLORTERM",
        "TEXTUAL_COLOR_SYSTEM",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


def needs_tool(*tools: str, package: str) -> None:
    """Skip where a Debian tool a test reads its result with is missing; fail in CI, whose
    .ci/run installs it, so the skip never hides a failure there."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        why = f"{', '.join(missing)} missing: apt-get install {package} (.ci/run does)"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)


def pdf_text(data: bytes, folder: Path) -> str:
    """A PDF's text as poppler's pdftotext reads it."""
    needs_tool("pdftotext", package="poppler-utils")
    path = folder / "document.pdf"
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, check=True
    ).stdout.decode()


def values_of(service: ExecutionService, item_id: int) -> list[str]:
    """The values recorded on an item, oldest first, as the database holds them."""
    with service.store.read() as conn:
        return list(
            conn.execute(
                select(t.recorded_values.c.value)
                .where(t.recorded_values.c.item_id == item_id)
                .order_by(t.recorded_values.c.id)
            ).scalars()
        )
