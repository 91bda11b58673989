"""Electronic signatures: badge + PIN at every signing, and a manifestation on the signed record
(printed name, server time, meaning, station, content hash) that is linked to what was signed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from kiosk.client import ExecutionClient, Refused
from kiosk.server import records
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    ApproveDisposition,
    Credentials,
    Disposition,
    DispositionNcr,
    Meaning,
    RaiseNcr,
    ReleaseHold,
    StepStatus,
)
from tests.helpers import Floor, person_ids, raw_http, snapshot, step_of

if TYPE_CHECKING:
    from tests.conftest import LiveServer

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture
def floor(client: ExecutionClient, service: ExecutionService) -> Floor:
    return Floor(client, person_ids(service))


async def test_signing_shows_name_time_meaning_station_and_content_hash(floor: Floor) -> None:
    await floor.work("ana", "TRV-1001", "10.1", sign=False)
    started = datetime.now(UTC)
    result = await floor.sign_step("ana", "TRV-1001", "10.1")
    finished = datetime.now(UTC)

    step = step_of(result.traveler, "10.1")
    assert step.status is StepStatus.COMPLETE
    (sig,) = step.signatures
    assert sig.printed_name == "Ana Ortiz"
    assert sig.signer_id == floor.ids["ana"]
    assert sig.meaning is Meaning.PERFORMED
    assert sig.station == "DEMO-01"
    assert HEX64.match(sig.content_hash)
    # Server time, as an unambiguous instant (UTC), taken while the request was being served.
    assert sig.server_time.tzinfo is not None
    assert sig.server_time.utcoffset() == timedelta(0)
    assert started - timedelta(seconds=1) <= sig.server_time <= finished + timedelta(seconds=1)
    assert result.message == "Step 10.1 signed as performed by Ana Ortiz."

    # The manifestation is part of the record, not of one response: a fresh read shows the same.
    again = step_of(await floor.traveler("TRV-1001"), "10.1").signatures
    assert again == (sig,)


async def test_the_manifestation_on_the_wire_carries_a_zone(
    floor: Floor, live_server: LiveServer
) -> None:
    await floor.work("ana", "TRV-1001", "10.1")
    async with raw_http(live_server.url, live_server.token("RAW-01")) as http:
        raw = (await http.get("/api/v1/travelers/TRV-1001")).json()
    (sig,) = raw["steps"][0]["signatures"]
    assert {"printed_name", "meaning", "server_time", "station", "content_hash"} <= set(sig)
    assert (sig["printed_name"], sig["meaning"], sig["station"]) == (
        "Ana Ortiz",
        "performed",
        "DEMO-01",
    )
    assert sig["server_time"].endswith(("Z", "+00:00")), sig["server_time"]


async def test_the_content_hash_is_the_hash_of_what_the_signer_saw(
    floor: Floor, service: ExecutionService
) -> None:
    await floor.work("ana", "TRV-1001", "10.1", sign=False)
    seen = await floor.traveler("TRV-1001")
    result = await floor.sign_step("ana", "TRV-1001", "10.1")
    (sig,) = step_of(result.traveler, "10.1").signatures

    ana = floor.ids["ana"]
    step = step_of(seen, "10.1")
    content = records.StepContent.of(seen, step)
    assert content.digest("performed", ana, sig.server_time) == sig.content_hash
    # Any other content (another value, another revision) would have given another hash.
    other = records.StepContent.of(seen, step.model_copy(update={"revision": "D"}))
    assert other.digest("performed", ana, sig.server_time) != sig.content_hash

    # The audit trail records the signature, all of it, with the same hash.
    with service.store.begin() as conn:
        logged = conn.execute(
            select(t.audit_log.c.new, t.audit_log.c.actor, t.audit_log.c.station).where(
                t.audit_log.c.action == "sign", t.audit_log.c.entity == f"signature:{sig.id}"
            )
        ).one()
    assert sig.content_hash in logged.new
    assert (logged.actor, logged.station) == ("Ana Ortiz", "DEMO-01")


async def test_every_signing_needs_badge_and_pin_again(
    floor: Floor, service: ExecutionService, live_server: LiveServer
) -> None:
    await floor.work("ana", "TRV-1001", "10.1", sign=False)
    trav = await floor.traveler("TRV-1001")
    before = snapshot(service, "TRV-1001")

    # A wrong PIN and an unknown badge get the same answer, naming nobody.
    with pytest.raises(Refused) as wrong_pin:
        await floor.sign_step("ana", "TRV-1001", "10.1", pin="1112")
    assert snapshot(service, "TRV-1001").traveler == before.traveler
    action = floor.sign("ana", trav, "10.1").model_copy(
        update={"credentials": Credentials(badge="55555", pin="1111")}
    )
    with pytest.raises(Refused) as unknown:
        await floor.do(action)
    for refused in (wrong_pin, unknown):
        assert refused.value.rule == "credentials_not_accepted"
        assert refused.value.detail == "Badge or PIN not accepted. Repeated wrong PINs lock the badge."

    # Only one identification component: not a signature at all.
    body = floor.sign("ana", trav, "10.1").model_dump(mode="json")
    body["credentials"] = {"badge": "10001"}
    async with raw_http(live_server.url, live_server.token("RAW-01")) as http:
        response = await http.post(
            "/api/v1/actions", json={"action": body}, headers={"Idempotency-Key": "one-component"}
        )
    assert response.status_code == 422
    assert response.json()["rule"] == "request_invalid"
    after = snapshot(service, "TRV-1001")
    assert after.traveler == before.traveler
    assert after.signatures == before.signatures


async def test_the_signature_is_the_badge_holders_not_the_logged_in_operators(floor: Floor) -> None:
    await floor.work("ana", "TRV-1001", "10.1", sign=False)
    result = await floor.sign_step("ana", "TRV-1001", "10.1", signer="ben")
    (sig,) = step_of(result.traveler, "10.1").signatures
    assert (sig.printed_name, sig.signer_id) == ("Ben Okafor", floor.ids["ben"])


async def test_inspection_buy_off_adds_a_verified_manifestation(floor: Floor) -> None:
    await floor.work("ana", "TRV-1002", "20.1")
    await floor.work("ben", "TRV-1002", "20.2")
    result = await floor.sign_step("ben", "TRV-1002", "20.2", Meaning.VERIFIED, signer="ivy")
    performed, verified = step_of(result.traveler, "20.2").signatures
    assert (performed.printed_name, performed.meaning) == ("Ben Okafor", Meaning.PERFORMED)
    assert (verified.printed_name, verified.meaning, verified.station) == (
        "Ivy Chen",
        Meaning.VERIFIED,
        "DEMO-01",
    )
    assert HEX64.match(verified.content_hash) and verified.content_hash != performed.content_hash
    assert verified.server_time >= performed.server_time


async def test_disposition_and_release_are_signed_as_approved(
    floor: Floor, service: ExecutionService
) -> None:
    await floor.work("ana", "TRV-1001", "10.1")
    await floor.work("ana", "TRV-1001", "10.2", {"Bushing bore diameter": "12.680"}, sign=False)
    trav = await floor.traveler("TRV-1001")
    bore = step_of(trav, "10.2").items[1]
    raised = await floor.do(
        RaiseNcr(
            actor_id=floor.ids["ana"],
            traveler="TRV-1001",
            item_id=bore.id,
            description="Bore undersize",
            defect_code="DIM-02",
        )
    )
    number = raised.traveler.ncrs[0].number
    await floor.do(
        DispositionNcr(
            actor_id=floor.ids["ana"],
            traveler="TRV-1001",
            ncr=number,
            disposition=Disposition.REPAIR,
            rationale="Undersize bore restored by an oversize bushing per SRM 51-30",
            instructions="Ream to 12.90 mm and press an oversize bushing.",
            credentials=Credentials(badge="30001", pin="3333"),
        )
    )
    await floor.do(  # a repair needs the plant's second approver too (Raj, supervisor)
        ApproveDisposition(
            actor_id=floor.ids["ana"],
            traveler="TRV-1001",
            ncr=number,
            credentials=Credentials(badge="31001", pin="3131"),
        )
    )
    await floor.do(
        ReleaseHold(
            actor_id=floor.ids["ana"],
            traveler="TRV-1001",
            credentials=Credentials(badge="30001", pin="3333"),
        )
    )

    with service.store.begin() as conn:
        ncr = conn.execute(select(t.ncrs).where(t.ncrs.c.number == number)).one()
        hold = conn.execute(select(t.holds).where(t.holds.c.ncr_id == ncr.id)).one()
        sigs = {
            row.subject: row
            for row in conn.execute(
                select(t.signatures).where(
                    t.signatures.c.id.in_(
                        [ncr.disposition_signature_id, hold.released_signature_id]
                    )
                )
            )
        }
    assert set(sigs) == {"ncr", "hold"}
    for row in sigs.values():
        assert (row.printed_name, row.meaning, row.user_id) == (
            "Sam Patel",
            "approved",
            floor.ids["sam"],
        )
        assert HEX64.match(row.content_hash)
        assert row.server_time.tzinfo is not None

    # The as-built record carries both approvals, as an auditor reads them.
    record = await floor.client.as_built("TRV-1001")
    (dispositioned,) = record.traveler.ncrs
    assert dispositioned.disposition_signature is not None
    assert (
        dispositioned.disposition_signature.printed_name,
        dispositioned.disposition_signature.meaning,
    ) == (
        "Sam Patel",
        Meaning.APPROVED,
    )
    (held,) = record.holds
    assert held.ncr_number == number and held.released is not None
    assert (held.released.printed_name, held.released.meaning) == ("Sam Patel", Meaning.APPROVED)


async def test_a_signer_not_qualified_for_this_work_center_is_refused(floor: Floor) -> None:
    await floor.work("ana", "TRV-1001", "10.1", sign=False)
    before = await floor.traveler("TRV-1001")
    with pytest.raises(Refused) as refused:
        await floor.sign_step("ana", "TRV-1001", "10.1", signer="olu")  # qualified for PAINT only
    assert refused.value.rule == "not_qualified"
    assert "PAINT" not in refused.value.detail and "ASSEMBLY" in refused.value.detail
    assert await floor.traveler("TRV-1001") == before


def test_wrong_pins_at_the_same_instant_are_all_counted(service: ExecutionService) -> None:
    """No lost update: four wrong PINs sent at once leave four failures on record."""
    import threading

    station = service.authenticate(service.local_station_token("DEMO-01", "ASSEMBLY"))
    start = threading.Barrier(4)
    answers: list[str] = []

    def try_wrong_pin() -> None:
        start.wait()
        try:
            service.verify_credentials(station, Credentials(badge="10002", pin="0000"))
        except Exception as refused:  # noqa: BLE001 - the refusal is what we collect
            answers.append(str(refused))

    threads = [threading.Thread(target=try_wrong_pin) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 4 and all("Badge or PIN not accepted" in a for a in answers)
    with service.store.begin() as conn:
        failed = conn.execute(
            select(t.users.c.failed_pins).where(t.users.c.name == "Ben Okafor")
        ).scalar_one()
    assert failed == 4
