"""Corrections and voids on the real store (SQLite, and PostgreSQL when KIOSK_TEST_DATABASE_URL is
set): a value corrected before sign-off keeps both values, attributed; after sign-off, or without
a reason, it is refused and nothing changes. Quality alone voids a signature, which reopens the
step; the voided signature stays. The as-built shows the history; `audit verify` re-derives it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from kiosk.server import audit, erp, printable
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    Action,
    CorrectValue,
    Meaning,
    StepStatus,
    Traveler,
    VoidSignature,
)
from tests.conftest import LiveServer
from tests.helpers import ServiceFloor, creds, item_of, snapshot, step_of
from tests.station import burst, running, settle
from tests.station_helpers import enter_value, screen_text, sign_with
from tests.test_quality_rules import pdf_text


def refused(floor: ServiceFloor, action: Action) -> tuple[str | None, str]:
    """Refuse `action` and check that nothing about the traveler or the records changed."""
    before = snapshot(floor.service, action.traveler)
    problem = floor.refuse(action)
    assert snapshot(floor.service, action.traveler) == before, problem
    return problem.rule, problem.detail


def correct(
    floor: ServiceFloor, who: str, trav: Traveler, step: str, label: str, value: str, reason: str
) -> CorrectValue:
    item = item_of(step_of(trav, step), label)
    assert item.latest is not None
    return CorrectValue(
        actor_id=floor.ids[who], traveler=trav.number, item_id=item.id,
        corrects=item.latest.value, value=value, reason=reason,
    )  # fmt: skip


def void(
    floor: ServiceFloor, trav: Traveler, step: str, meaning: Meaning, *, by: str = "sam",
    reason: str = "Re-inspection ordered by QA-0042",
) -> VoidSignature:  # fmt: skip
    return VoidSignature(
        actor_id=floor.ids[by], traveler=trav.number, step_id=step_of(trav, step).id,
        meaning=meaning, reason=reason, credentials=creds(by),
    )  # fmt: skip


def verified(service: ExecutionService) -> None:
    with service.store.read() as conn:
        verdict = audit.verify(conn)
    assert verdict.ok, verdict.reason


def torque_typo(floor: ServiceFloor) -> Traveler:
    """TRV-1002 20.1 started by Ana, the wrench scanned and 125 typed for 12.5 Nm."""
    svc = floor.service
    trav = floor.do(floor.start("ana", svc.traveler("TRV-1002"), "20.1")).traveler
    trav = floor.do(floor.record("ana", trav, "20.1", "Torque wrench", "TL-0001")).traveler
    return floor.do(floor.record("ana", trav, "20.1", "Fastener torque", "125")).traveler


def test_correction_before_sign_off_keeps_both_values_and_is_what_the_checks_use(
    service: ExecutionService, tmp_path: Path
) -> None:
    floor = ServiceFloor(service)
    trav = torque_typo(floor)
    assert any("raise an NCR" in n for n in _needs(trav, "20.1"))  # 125 Nm failed

    # No reason, or a stale view of the value: refused, nothing changed.
    assert (
        refused(floor, correct(floor, "ana", trav, "20.1", "Fastener torque", "12.5", " "))[0]
        == "reason_missing"
    )
    stale = correct(floor, "ana", trav, "20.1", "Fastener torque", "12.5", "typo")
    rule, detail = refused(floor, stale.model_copy(update={"corrects": "12"}))
    assert rule == "value_changed" and "is now 125, not 12" in detail
    wrench = correct(floor, "ana", trav, "20.1", "Torque wrench", "TL-0002", "wrong one")
    assert refused(floor, wrench)[0] == "not_correctable"

    done = floor.do(stale)
    assert done.message == "Fastener torque: 125 -> 12.5 corrected by Ana Ortiz: typo"
    torque = item_of(step_of(done.traveler, "20.1"), "Fastener torque")
    assert torque.latest is not None
    assert (torque.latest.value, torque.latest.corrects, torque.latest.reason) == (
        "12.5", "125", "typo"
    )  # fmt: skip
    assert torque.latest.recorded_by == "Ana Ortiz" and torque.latest.passed is True
    assert not torque.failed_before  # the mistake no longer blocks sign-off: no NCR needed
    stripe = floor.record("ana", done.traveler, "20.1", "Torque stripe applied", "pass")
    signed = floor.do(floor.sign("ana", floor.do(stripe).traveler, "20.1"))
    assert step_of(signed.traveler, "20.1").status is StepStatus.COMPLETE

    # After sign-off: refused with a clear message, nothing changed.
    again = correct(floor, "ana", signed.traveler, "20.1", "Fastener torque", "12.6", "misread")
    rule, detail = refused(floor, again)
    assert rule == "step_signed" and "Step 20.1 is signed" in detail

    # The as-built keeps both values, the correction with who and why (JSON and PDF).
    with service.store.read() as conn:
        record = erp.as_built(conn, "TRV-1002")
    history = [(v.entry.value, v.entry.corrects, v.entry.reason) for v in record.values
               if v.item == "Fastener torque"]  # fmt: skip
    assert history == [("125", None, None), ("12.5", "125", "typo")]
    text = pdf_text(made(service), tmp_path)
    assert "125 (corrected)" in text and "12.5 (corrects 125: typo)" in text
    verified(service)


def made(service: ExecutionService) -> printable.Printable:
    with service.store.read() as conn:
        return printable.read(conn, "TRV-1002")


def _needs(trav: Traveler, step: str) -> list[str]:
    from kiosk import rules

    return rules.outstanding(step_of(trav, step))


def test_quality_voids_a_signature_the_step_reopens_and_is_signed_again(
    service: ExecutionService, tmp_path: Path
) -> None:
    floor = ServiceFloor(service)
    trav = service.traveler("TRV-1002")  # 10.1 and 10.2 signed by Ana (the demo)

    # Not quality, no reason, a later step signed, nothing of that meaning: refused, unchanged.
    rule, detail = refused(floor, void(floor, trav, "10.2", Meaning.PERFORMED, by="ivy"))
    assert rule == "role_not_allowed" and "Ivy Chen may not void a signature" in detail
    assert refused(floor, void(floor, trav, "10.2", Meaning.PERFORMED, reason=""))[0] == (
        "reason_missing"
    )
    rule, detail = refused(floor, void(floor, trav, "10.1", Meaning.PERFORMED))
    assert rule == "later_step_signed" and "Step 10.2, after step 10.1, is signed" in detail
    assert refused(floor, void(floor, trav, "10.2", Meaning.VERIFIED))[0] == "not_signed"

    done = floor.do(void(floor, trav, "10.2", Meaning.PERFORMED))
    step = step_of(done.traveler, "10.2")
    assert step.status is StepStatus.PAUSED and step.signatures == ()
    (gone,) = step.voided
    assert (gone.printed_name, gone.meaning, gone.void_reason) == (
        "Ana Ortiz", Meaning.PERFORMED, "Re-inspection ordered by QA-0042"
    )  # fmt: skip
    assert gone.voided is not None and gone.voided.printed_name == "Sam Patel"
    assert done.traveler.status.value == "in_work"

    # Reopened: resumed, corrected (now allowed), and signed again.
    trav = floor.do(floor.start("ana", done.traveler, "10.2")).traveler
    fix = correct(floor, "ana", trav, "10.2", "Bushing bore diameter", "12.700", "gauge re-zeroed")
    trav = floor.do(fix).traveler
    signed = floor.do(floor.sign("ana", trav, "10.2")).traveler
    step = step_of(signed, "10.2")
    assert step.status is StepStatus.COMPLETE
    assert [s.printed_name for s in step.signatures] == ["Ana Ortiz"] and len(step.voided) == 1

    with service.store.read() as conn:
        record = erp.as_built(conn, "TRV-1002")
    assert (
        step_of(record.traveler, "10.2").voided[0].void_reason == "Re-inspection ordered by QA-0042"
    )
    text = pdf_text(made(service), tmp_path)
    assert "VOID: Signed PERFORMED by Ana Ortiz" in text
    assert "voided by Sam Patel" in text and "Re-inspection ordered by QA-0042" in text
    verified(service)


def test_voiding_a_sign_off_also_voids_the_buy_off_that_followed(service: ExecutionService) -> None:
    floor = ServiceFloor(service)
    floor.work("ana", "TRV-1002", "20.1")
    floor.work("ana", "TRV-1002", "20.2")
    trav = floor.do(floor.sign("ivy", service.traveler("TRV-1002"), "20.2", Meaning.VERIFIED))
    assert step_of(trav.traveler, "20.2").status is StepStatus.COMPLETE

    done = floor.do(void(floor, trav.traveler, "20.2", Meaning.PERFORMED))
    step = step_of(done.traveler, "20.2")
    assert step.signatures == () and step.status is StepStatus.PAUSED
    assert [(s.printed_name, s.meaning) for s in step.voided] == [
        ("Ana Ortiz", Meaning.PERFORMED), ("Ivy Chen", Meaning.VERIFIED)
    ]  # fmt: skip
    verified(service)


def test_verify_catches_a_tampered_correction_and_void(service: ExecutionService) -> None:
    floor = ServiceFloor(service)
    trav = torque_typo(floor)
    floor.do(correct(floor, "ana", trav, "20.1", "Fastener torque", "12.5", "typo"))
    floor.do(void(floor, service.traveler("TRV-1002"), "10.2", Meaning.PERFORMED))
    verified(service)
    values, sigs = t.recorded_values, t.signatures
    for table, column, tampered, said in (
        (values, values.c.reason, "gauge read wrong", "reason is 'gauge read wrong'"),
        (sigs, sigs.c.void_reason, "no reason", "no longer matches the void of signature"),
    ):
        with service.store.begin() as conn:
            found = table.select().where(column.is_not(None)).order_by(table.c.id.desc())
            was = conn.execute(found).first()
            assert was is not None
            conn.execute(update(table).where(table.c.id == was.id).values({column.name: tampered}))
        with service.store.read() as conn:
            verdict = audit.verify(conn)
        assert not verdict.ok and said in (verdict.reason or ""), verdict.reason
        with service.store.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.id == was.id)
                .values({column.name: getattr(was, column.name)})
            )
    verified(service)


# --- at the station (Pilot, against the real server over loopback) ---------------------------------


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
async def test_a_correction_and_a_void_at_the_station(
    live_server: LiveServer, tmp_path: Path
) -> None:
    service = live_server.service
    floor = ServiceFloor(service)
    trav = floor.do(floor.start("ana", service.traveler("TRV-1002"), "20.1")).traveler
    trav = floor.do(floor.record("ana", trav, "20.1", "Torque wrench", "TL-0001")).traveler
    floor.do(floor.record("ana", trav, "20.1", "Fastener torque", "13.0"))
    # Wider than the station's 80 columns: the footer's last keys are cut off there.
    async with running(live_server.url, live_server.token(), tmp_path, (110, 24)) as pilot:
        app = pilot.app
        await burst(pilot, "10001")  # Ana Ortiz, operator: no void key for her
        await burst(pilot, "TRV-1002")
        assert "^r Correct" in screen_text(app) and "Void" not in screen_text(app)
        await pilot.press("ctrl+r")  # the last item with a value: the torque
        await settle(pilot)
        assert "Recorded: 13.0. The value it should be:" in screen_text(app)
        await enter_value(pilot, "12.5")
        await enter_value(pilot, "typo")
        torque = item_of(step_of(service.traveler("TRV-1002"), "20.1"), "Fastener torque")
        assert torque.latest is not None and (torque.latest.value, torque.latest.corrects) == (
            "12.5", "13.0"
        )  # fmt: skip
        assert "13.0 -> 12.5 Nm corrected by Ana Ortiz: typo" in screen_text(app)

        await burst(pilot, "30001")  # Sam Patel, quality, takes over at the traveler
        await pilot.press("ctrl+g")
        await settle(pilot)
        await enter_value(pilot, "10.2")
        assert "^n Void" in screen_text(app)
        await pilot.press("ctrl+n")
        await settle(pilot)
        await enter_value(pilot, "Bore gauge out of calibration")
        assert "void performed by Ana Ortiz" in screen_text(app)
        await sign_with(pilot, "30001", "3333")
        step = step_of(service.traveler("TRV-1002"), "10.2")
        assert step.status is StepStatus.PAUSED and step.signatures == ()
        assert step.voided[0].void_reason == "Bore gauge out of calibration"
        shown = screen_text(app)
        assert "VOID performed by Ana Ortiz -- voided by Sam Patel: Bore gauge out of" in shown
