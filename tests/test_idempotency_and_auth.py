"""Exactly-once actions (Idempotency-Key), station enrollment and tokens, PIN lock-out, and the
promise that badges and PINs are never kept or shown in the clear."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from kiosk.client import ExecutionClient, Invalid, Refused, StationNotEnrolled
from kiosk.rules import Refusal
from kiosk.server import schema as t
from kiosk.server.app import create_app
from kiosk.server.service import ExecutionService
from kiosk.wire import Action, ActionResult, ReleaseHold, StepStatus
from tests.helpers import (
    BADGES,
    PEOPLE,
    Floor,
    app_in_thread,
    count,
    creds,
    item_of,
    leaked_secrets,
    new_key,
    person_ids,
    raw_http,
    rows,
    secret_pattern,
    snapshot,
    station_ref,
    step_of,
    values_of,
)

if TYPE_CHECKING:
    from tests.conftest import LiveServer


@pytest.fixture
def floor(client: ExecutionClient, service: ExecutionService) -> Floor:
    return Floor(client, person_ids(service))


@pytest.fixture
async def raw(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with raw_http(live_server.url, live_server.token("RAW-01")) as http:
        yield http


# --- idempotency ------------------------------------------------------------------------------------


async def test_the_same_action_sent_twice_with_one_key_is_applied_once(
    floor: Floor, service: ExecutionService
) -> None:
    trav = (await floor.start_step("ana", "TRV-1001", "10.1")).traveler
    action = floor.record("ana", trav, "10.1", "Bracket forging lot", "LOT-A100")
    key = new_key()
    first = await floor.do(action, key=key)
    after_first = snapshot(service, "TRV-1001")
    second = await floor.do(action, key=key)

    assert second == first
    assert values_of(service, action.item_id) == ["LOT-A100"]
    assert snapshot(service, "TRV-1001") == after_first
    assert len((await floor.client.as_built("TRV-1001")).material) == 1
    with service.store.begin() as conn:
        stored = conn.execute(select(t.idempotency).where(t.idempotency.c.key == key)).one()
    assert stored.status == 200


async def test_a_key_reused_for_a_different_request_is_refused(
    floor: Floor, service: ExecutionService
) -> None:
    trav = (await floor.start_step("ana", "TRV-1001", "10.1")).traveler
    key = new_key()
    await floor.do(floor.record("ana", trav, "10.1", "Bracket forging lot", "LOT-A100"), key=key)
    before = snapshot(service, "TRV-1001")
    with pytest.raises(Invalid) as refused:
        await floor.do(
            floor.record("ana", trav, "10.1", "Bracket forging lot", "LOT-A101"), key=key
        )
    assert refused.value.status == 422
    assert refused.value.rule == "idempotency_key_reused"
    assert refused.value.detail == "This Idempotency-Key was already used for a different request."
    assert snapshot(service, "TRV-1001") == before
    assert values_of(service, item_of(step_of(trav, "10.1"), "Bracket forging lot").id) == [
        "LOT-A100"
    ]


async def test_concurrent_duplicates_over_http_are_applied_once(
    floor: Floor, service: ExecutionService
) -> None:
    trav = (await floor.start_step("ana", "TRV-1001", "10.1")).traveler
    action = floor.record("ana", trav, "10.1", "Bracket forging lot", "LOT-A101")
    audit_before = snapshot(service, "TRV-1001").audit
    key = new_key()
    results = await asyncio.gather(*(floor.do(action, key=key) for _ in range(6)))
    assert all(r == results[0] for r in results)
    assert values_of(service, action.item_id) == ["LOT-A101"]
    assert snapshot(service, "TRV-1001").audit == audit_before + 2  # the value, the lot consumed
    assert [m.lot for m in (await floor.client.as_built("TRV-1001")).material] == ["LOT-A101"]


def _race(
    service: ExecutionService, key: str, action: Action, threads: int = 8
) -> list[tuple[int, str]]:
    """`threads` deliveries of one action under one key, released at the same instant."""
    station = station_ref(service)
    barrier = threading.Barrier(threads)
    answers: list[tuple[int, str]] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait(10)
            answers.append(service.perform(station, key, action))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    workers = [threading.Thread(target=deliver) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors, errors
    return answers


async def test_a_racing_duplicate_record_is_applied_once(
    floor: Floor, service: ExecutionService
) -> None:
    trav = (await floor.start_step("ana", "TRV-1001", "10.1")).traveler
    record = floor.record("ana", trav, "10.1", "Bracket forging lot", "LOT-A100")
    action = await floor.proven(record)
    answers = await asyncio.to_thread(_race, service, new_key(), action)
    assert len(answers) == 8
    assert {status for status, _ in answers} == {200}
    assert len({body for _, body in answers}) == 1
    assert values_of(service, record.item_id) == ["LOT-A100"]


async def test_a_racing_duplicate_signature_is_applied_once(
    floor: Floor, service: ExecutionService
) -> None:
    result = await floor.work("ana", "TRV-1001", "10.1", sign=False)
    action = await floor.proven(floor.sign("ana", result.traveler, "10.1"))
    signatures = count(service, t.signatures)
    answers = await asyncio.to_thread(_race, service, new_key(), action, 6)
    assert {status for status, _ in answers} == {200}
    assert len({body for _, body in answers}) == 1
    assert count(service, t.signatures) == signatures + 1
    step = step_of(ActionResult.model_validate_json(answers[0][1]).traveler, "10.1")
    assert step.status is StepStatus.COMPLETE and len(step.signatures) == 1


async def test_an_action_without_idempotency_key_is_refused(
    raw: httpx.AsyncClient, floor: Floor, service: ExecutionService
) -> None:
    trav = await floor.traveler("TRV-1001")
    login = await raw.post("/api/v1/login", json={"badge": "10001"}, headers={"Idempotency-Key": new_key()})
    action = floor.with_session(floor.start("ana", trav, "10.1"), login.json()["session"])
    body = {"action": action.model_dump(mode="json")}
    before = snapshot(service, "TRV-1001")
    response = await raw.post("/api/v1/actions", json=body)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["rule"] == "idempotency_key_missing"
    assert "Idempotency-Key" in problem["detail"]
    assert snapshot(service, "TRV-1001") == before

    accepted = await raw.post("/api/v1/actions", json=body, headers={"Idempotency-Key": new_key()})
    assert accepted.status_code == 200


# --- station authentication and enrollment -------------------------------------------------------------


async def test_no_token_or_a_wrong_token_is_not_enrolled(
    live_server: LiveServer, service: ExecutionService
) -> None:
    before = snapshot(service, "TRV-1001")
    for token in (None, "not-a-station-token"):
        async with ExecutionClient(live_server.url, token) as api:
            for call in (api.station(), api.traveler("TRV-1001"), api.login("10001")):
                with pytest.raises(StationNotEnrolled) as refused:
                    await call
                assert refused.value.status == 401
                assert refused.value.rule == "station_not_enrolled"
                assert (
                    refused.value.detail == "Station not enrolled: present a valid station token."
                )
    assert snapshot(service, "TRV-1001") == before


async def test_a_revoked_station_is_not_enrolled(
    live_server: LiveServer, service: ExecutionService
) -> None:
    async with ExecutionClient(live_server.url, live_server.token("LINE-07")) as api:
        floor = Floor(api, person_ids(service))
        assert (await api.station()).name == "LINE-07"
        trav = await floor.traveler("TRV-1001")
        service.revoke_station("LINE-07")
        before = snapshot(service, "TRV-1001")
        with pytest.raises(StationNotEnrolled) as refused:
            await floor.do(floor.start("ana", trav, "10.1"))
        assert refused.value.rule == "station_not_enrolled"
        with pytest.raises(StationNotEnrolled):
            await api.station()
        assert snapshot(service, "TRV-1001") == before


async def test_an_enrollment_code_works_once(
    live_server: LiveServer, service: ExecutionService
) -> None:
    code = service.add_station("LINE-08", "PAINT")
    async with ExecutionClient(live_server.url, None) as anonymous:
        enrollment = await anonymous.enroll(code.lower())
        assert (enrollment.station.name, enrollment.station.work_center) == ("LINE-08", "PAINT")
        async with ExecutionClient(live_server.url, enrollment.token) as station:
            assert (await station.station()).name == "LINE-08"

        with pytest.raises(StationNotEnrolled) as refused:
            await anonymous.enroll(code)
        assert refused.value.rule == "enrollment_code_used"
        assert refused.value.detail == "That enrollment code was already used."
        with pytest.raises(StationNotEnrolled) as refused:
            await anonymous.enroll("AAAA-BBBB-CCCC")
        assert refused.value.rule == "enrollment_code_unknown"

    # The first enrollment's token still works: the refused second use changed nothing.
    async with ExecutionClient(live_server.url, enrollment.token) as station:
        assert (await station.station()).name == "LINE-08"


async def test_an_expired_enrollment_code_is_refused(
    live_server: LiveServer, service: ExecutionService
) -> None:
    yesterday = ExecutionService(
        service.store, service.secret, clock=lambda: datetime.now(UTC) - timedelta(hours=25)
    )
    stale = yesterday.add_station("LINE-09", "ASSEMBLY")
    async with ExecutionClient(live_server.url, None) as anonymous:
        with pytest.raises(StationNotEnrolled) as refused:
            await anonymous.enroll(stale)
    assert refused.value.rule == "enrollment_code_expired"
    assert refused.value.detail == "That enrollment code has expired; ask for a new one."
    with service.store.begin() as conn:
        row = conn.execute(select(t.stations).where(t.stations.c.name == "LINE-09")).one()
    assert row.token_sha256 is None

    # A fresh code, presented 25 hours later, has expired too.
    fresh = service.add_station("LINE-10", "ASSEMBLY")
    tomorrow = ExecutionService(
        service.store, service.secret, clock=lambda: datetime.now(UTC) + timedelta(hours=25)
    )
    with pytest.raises(Refusal) as late:
        tomorrow.enroll(fresh)
    assert late.value.rule == "enrollment_code_expired"
    assert service.enroll(fresh).station.name == "LINE-10"  # still valid today, once


# --- PIN lock-out -------------------------------------------------------------------------------------


async def test_five_wrong_pins_in_a_row_lock_the_person_until_a_supervisor_unlocks(
    floor: Floor, service: ExecutionService
) -> None:
    result = await floor.work("ana", "TRV-1001", "10.1", sign=False)
    trav = result.traveler
    ana = floor.ids["ana"]
    for _attempt in range(1, 5):
        with pytest.raises(Refused) as refused:
            await floor.do(floor.sign("ana", trav, "10.1", pin="0000"))
        assert refused.value.rule == "credentials_not_accepted"
    with pytest.raises(Refused) as refused:
        await floor.do(floor.sign("ana", trav, "10.1", pin="0000"))
    assert refused.value.rule == "person_locked"
    # Whoever typed the wrong PINs learns that the badge is locked, never whose badge it is.
    assert refused.value.detail == (
        "This badge is locked after repeated wrong PINs; a supervisor must unlock it."
    )

    before = snapshot(service, "TRV-1001")
    with pytest.raises(Refused) as refused:  # the right PIN no longer helps
        await floor.do(floor.sign("ana", trav, "10.1"))
    assert refused.value.rule == "person_locked"
    assert "a supervisor must unlock" in refused.value.detail
    with pytest.raises(Refused) as refused:
        await floor.client.login("10001")
    assert refused.value.rule == "person_locked"
    after = snapshot(service, "TRV-1001")
    assert after.traveler == before.traveler and after.signatures == before.signatures
    assert step_of(after.traveler, "10.1").signatures == ()

    with pytest.raises(Refused) as refused:  # an operator cannot unlock
        await floor.client.unlock(ana, creds("ben"))
    assert refused.value.rule == "role_not_allowed"
    assert refused.value.detail == "Ben Okafor may not unlock a person: needs admin or supervisor."

    person = await floor.client.unlock(ana, creds("sam"))
    assert person.name == "Ana Ortiz"
    with service.store.begin() as conn:
        row = conn.execute(
            select(t.users.c.locked, t.users.c.failed_pins).where(t.users.c.id == ana)
        ).one()
    assert (row.locked, row.failed_pins) == (False, 0)
    signed_in = await floor.client.login("10001")
    assert signed_in.person.id == ana
    floor.signed_in = (ana, signed_in.session)
    signed = await floor.do(floor.sign("ana", trav, "10.1"))
    assert step_of(signed.traveler, "10.1").status is StepStatus.COMPLETE


async def test_only_wrong_pins_in_a_row_count(floor: Floor, service: ExecutionService) -> None:
    trav = (await floor.work("ana", "TRV-1001", "10.1", sign=False)).traveler
    for _ in range(4):
        with pytest.raises(Refused, match="Badge or PIN not accepted"):
            await floor.do(floor.sign("ana", trav, "10.1", pin="9876"))
    await floor.do(floor.sign("ana", trav, "10.1"))  # the right PIN starts the count again
    held = await floor.traveler("TRV-1003")
    for _ in range(4):
        with pytest.raises(Refused) as refused:
            await floor.do(
                ReleaseHold(
                    actor_id=floor.ids["ana"],
                    traveler=held.number,
                    credentials=creds("ana", pin="9876"),
                )
            )
        assert refused.value.rule == "credentials_not_accepted"
    with service.store.begin() as conn:
        row = conn.execute(select(t.users).where(t.users.c.id == floor.ids["ana"])).one()
    assert (row.locked, row.failed_pins) == (False, 4)


# --- badges and PINs are never kept or shown in the clear --------------------------------------------------


def test_badges_are_stored_only_as_hmac_and_pins_only_as_argon2(service: ExecutionService) -> None:
    users = {row["name"]: row for row in rows(service, t.users)}
    hasher = PasswordHasher()
    for printed, badge, pin in PEOPLE.values():
        row = users[printed]
        assert row["badge_hmac"] == service.secret.badge_hash(badge)
        assert row["badge_hmac"] != hashlib.sha256(badge.encode()).hexdigest()  # keyed, not plain
        assert row["pin_hash"].startswith("$argon2id$")
        assert hasher.verify(row["pin_hash"], pin)
        for column, value in row.items():
            assert leaked_secrets(str(value)) == [], (printed, column)
    # The key is the plant secret, which lives outside the database.
    key = service.secret._key
    assert users["Ana Ortiz"]["badge_hmac"] == hmac.new(key, b"10001", hashlib.sha256).hexdigest()
    assert leaked_secrets(key.hex()) == []
    assert all(
        key.hex() not in str(value) for row in rows(service, t.meta) for value in row.values()
    )


class Recorder(httpx.AsyncHTTPTransport):
    """A transport that keeps every response body the server sent."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.bodies.append((await response.aread()).decode())
        return response


async def test_no_badge_or_pin_in_audit_idempotency_or_any_response(
    live_server: LiveServer, service: ExecutionService
) -> None:
    recorder = Recorder()
    async with ExecutionClient(
        live_server.url, live_server.token("SPY-01"), transport=recorder
    ) as api:
        floor = Floor(api, person_ids(service))
        for badge in BADGES[:2] + ["20001", "30001"]:
            await api.login(badge)
        for unknown in ("77777", "10003"):  # unknown badge; badge of someone not qualified here
            with pytest.raises(Refused):
                await api.login(unknown)
        trav = (await floor.work("ana", "TRV-1001", "10.1", sign=False)).traveler
        for _ in range(5):
            with pytest.raises(Refused):
                await floor.do(floor.sign("ana", trav, "10.1", pin="1212"))
        await api.unlock(floor.ids["ana"], creds("sam"))
        await floor.do(floor.sign("ana", trav, "10.1"))
        await floor.do(
            ReleaseHold(actor_id=floor.ids["ben"], traveler="TRV-1003", credentials=creds("sam"))
        )
        with pytest.raises(Refused):
            await floor.do(
                ReleaseHold(
                    actor_id=floor.ids["ben"], traveler="TRV-1001", credentials=creds("ivy")
                )
            )
        await api.queue()
        await api.as_built("TRV-1001")
        await api.station()

    assert len(recorder.bodies) > 20
    for body in recorder.bodies:
        assert leaked_secrets(body) == [], body
    for table in (t.audit_log, t.idempotency, t.signatures, t.holds, t.stations, t.recorded_values):
        for row in rows(service, table):
            for column, value in row.items():
                text = value.hex() if isinstance(value, bytes) else str(value)
                assert leaked_secrets(text) == [], (table.name, column, text)
    assert count(service, t.idempotency) > 10


class LogCapture(logging.Handler):
    """Every record of the server's loggers (uvicorn, FastAPI, SQLAlchemy with parameters, kiosk)."""

    NAMES = (
        "",
        "uvicorn",
        "uvicorn.error",
        "uvicorn.access",
        "fastapi",
        "kiosk",
        "sqlalchemy.engine",
    )

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.saved = {
            n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in self.NAMES
        }

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def attach(self) -> None:
        """(Re)attach: uvicorn reconfigures its loggers when a server is created."""
        for n in self.NAMES:
            logging.getLogger(n).addHandler(self)
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)

    def detach(self) -> None:
        for n, (level, propagate) in self.saved.items():
            logger = logging.getLogger(n)
            logger.removeHandler(self)
            logger.setLevel(level)
            logger.propagate = propagate


@pytest.fixture
def captured_logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    try:
        yield capture
    finally:
        capture.detach()


async def test_server_logs_of_a_failing_login_hold_no_badge(
    service: ExecutionService, captured_logs: LogCapture
) -> None:
    token = service.local_station_token("LOG-01", "ASSEMBLY")
    with app_in_thread(create_app(service), log_level="trace") as url:
        captured_logs.attach()
        async with ExecutionClient(url, token) as api:
            floor = Floor(api, person_ids(service))
            with pytest.raises(Refused) as refused:
                await api.login("77777")
            assert refused.value.rule == "badge_unknown"
            with pytest.raises(Refused):
                await api.login("10003")  # known badge, not qualified at ASSEMBLY
            trav = await floor.traveler("TRV-1003")
            with pytest.raises(Refused) as refused:
                await floor.do(
                    ReleaseHold(
                        actor_id=floor.ids["sam"],
                        traveler=trav.number,
                        credentials=creds("sam", pin="8642"),
                    )
                )
            assert refused.value.rule == "credentials_not_accepted"
    text = "\n".join(captured_logs.lines)
    assert "/api/v1/login" in text  # the capture did see the server's request log
    assert "INSERT INTO audit_log" in text  # ... and its SQL with parameters
    assert leaked_secrets(text) == []
    for secret in ("77777", "8642"):
        assert not secret_pattern(secret).search(text), secret


async def test_idempotency_keys_belong_to_the_station_that_sent_them(
    live_server: LiveServer, service: ExecutionService
) -> None:
    """Another station sending the same key gets its own answer, never the first station's."""
    key = "shared-key-0001"
    answers = []
    for name in ("LINE-21", "LINE-22"):
        async with ExecutionClient(live_server.url, live_server.token(name, "ASSEMBLY")) as api:
            floor = Floor(api, person_ids(service))
            trav = await floor.traveler("TRV-1001")
            who = "ana" if name == "LINE-21" else "ben"
            result = await floor.do(floor.start(who, trav, "10.1"), key=key)
            answers.append(result.message)
            again = await floor.do(floor.start(who, trav, "10.1"), key=key)  # its own replay
            assert again.message == result.message
    # Ben joins Ana on the step in work: clocked on beside her, not a second start.
    assert answers == ["Step 10.1 started.", "Ben Okafor clocked on step 10.1."]
    with service.store.begin() as conn:
        stored = conn.execute(
            select(t.idempotency.c.station_id).where(t.idempotency.c.key == key)
        ).all()
    assert len(stored) == 2
