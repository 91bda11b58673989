"""The execution rules, each attacked over the real socket: the refusal is typed and readable, and
the traveler, its values and the audit trail are exactly as they were before."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from kiosk.client import ExecutionClient, Invalid, OnHold, Refused, RuleRefused
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    Action,
    ApproveDisposition,
    Disposition,
    DispositionNcr,
    ItemKind,
    Meaning,
    PlaceHold,
    RaiseNcr,
    ReleaseHold,
    StepStatus,
    TravelerStatus,
)
from tests.helpers import Floor, creds, item_of, person_ids, raw_http, snapshot, step_of

if TYPE_CHECKING:
    from tests.conftest import LiveServer


@pytest.fixture
def floor(client: ExecutionClient, service: ExecutionService) -> Floor:
    return Floor(client, person_ids(service))


# --- predecessors ------------------------------------------------------------------------------------


async def test_step_cannot_start_before_its_predecessors_are_complete(
    floor: Floor, service: ExecutionService
) -> None:
    before = snapshot(service, "TRV-1001")
    with pytest.raises(RuleRefused) as refused:
        await floor.start_step("ana", "TRV-1001", "20.1")
    assert refused.value.status == 409
    assert refused.value.rule == "predecessor_incomplete"
    assert refused.value.detail == "Step 20.1 cannot start: step 10.1 is not complete."
    assert snapshot(service, "TRV-1001") == before

    # Gating happens before work starts: the next step is refused too, until 10.1 is signed.
    with pytest.raises(RuleRefused, match="step 10.1 is not complete"):
        await floor.start_step("ana", "TRV-1001", "10.2")
    await floor.work("ana", "TRV-1001", "10.1")
    result = await floor.start_step("ana", "TRV-1001", "10.2")
    assert step_of(result.traveler, "10.2").status is StepStatus.IN_WORK


async def test_step_cannot_be_signed_before_its_predecessors_are_complete(
    floor: Floor, service: ExecutionService
) -> None:
    await floor.start_step("ana", "TRV-1001", "10.1")
    before = snapshot(service, "TRV-1001")
    with pytest.raises(RuleRefused) as refused:
        await floor.sign_step("ana", "TRV-1001", "20.1")
    assert refused.value.rule == "predecessor_incomplete"
    assert "step 10.1 is not complete" in refused.value.detail
    after = snapshot(service, "TRV-1001")
    assert after == before
    assert step_of(after.traveler, "20.1").signatures == ()


async def test_nothing_is_recorded_on_a_step_that_was_not_started(
    floor: Floor, service: ExecutionService
) -> None:
    before = snapshot(service, "TRV-1001")
    with pytest.raises(RuleRefused) as refused:
        await floor.record_value("ana", "TRV-1001", "10.1", "Bracket forging lot", "LOT-A100")
    assert refused.value.rule == "step_not_started"
    assert refused.value.detail == "Start step 10.1 before recording on it."
    assert snapshot(service, "TRV-1001") == before


async def test_a_step_is_worked_only_at_a_station_of_its_work_center(
    live_server: LiveServer, service: ExecutionService
) -> None:
    async with ExecutionClient(live_server.url, live_server.token("PAINT-01", "PAINT")) as paint:
        floor = Floor(paint, person_ids(service))
        before = snapshot(service, "TRV-1001")
        with pytest.raises(RuleRefused) as refused:  # Ivy may work anywhere: the step may not
            await floor.start_step("ivy", "TRV-1001", "10.1")
        assert refused.value.rule == "wrong_work_center"
        assert refused.value.detail == (
            "Step 10.1 is worked at ASSEMBLY, not at this station (PAINT)."
        )
        assert snapshot(service, "TRV-1001") == before


async def test_a_person_badges_in_only_where_qualified(
    live_server: LiveServer, client: ExecutionClient, service: ExecutionService
) -> None:
    audit = snapshot(service, "TRV-1001").audit
    with pytest.raises(Refused) as refused:
        await client.login("10003")
    assert refused.value.rule == "not_qualified"
    assert refused.value.detail == "Olu Field is not qualified for work center ASSEMBLY."
    assert snapshot(service, "TRV-1001").audit == audit
    async with ExecutionClient(live_server.url, live_server.token("PAINT-01", "PAINT")) as paint:
        assert (await paint.login("10003")).person.name == "Olu Field"


# --- holds -------------------------------------------------------------------------------------------


async def test_nothing_can_be_recorded_on_a_traveler_on_hold(
    floor: Floor, service: ExecutionService
) -> None:
    await floor.start_step("ana", "TRV-1001", "10.1")
    await floor.record_value("ana", "TRV-1001", "10.1", "Bracket forging lot", "LOT-A100")
    trav = await floor.traveler("TRV-1001")
    held = await floor.do(
        PlaceHold(actor_id=floor.ids["sam"], traveler="TRV-1001", reason="Suspect forging heat")
    )
    assert held.traveler.status is TravelerStatus.ON_HOLD

    before = snapshot(service, "TRV-1001")
    attempts: list[Action] = [
        floor.record("ana", trav, "10.1", "Kit complete per pick list", "acknowledged"),
        floor.record("ana", trav, "10.1", "Bracket forging lot", "LOT-A101"),
        floor.sign("ana", trav, "10.1"),
        floor.start("ana", trav, "10.1"),
        floor.start("ana", trav, "10.2"),
    ]
    for action in attempts:
        with pytest.raises(OnHold) as refused:
            await floor.do(action)
        assert refused.value.status == 409
        assert refused.value.rule == "traveler_on_hold"
        assert refused.value.detail.startswith("TRV-1001 is on hold: Suspect forging heat.")
        assert snapshot(service, "TRV-1001") == before


async def test_a_held_traveler_cannot_be_started(floor: Floor, service: ExecutionService) -> None:
    before = snapshot(service, "TRV-1003")
    assert before.traveler.status is TravelerStatus.ON_HOLD
    with pytest.raises(OnHold) as refused:
        await floor.start_step("ana", "TRV-1003", "10.1")
    assert refused.value.rule == "traveler_on_hold"
    assert "ECN-2291" in refused.value.detail
    assert "until a supervisor or quality releases it" in refused.value.detail
    assert snapshot(service, "TRV-1003") == before


@pytest.mark.parametrize("who", ["ana", "ivy", "ada"])
async def test_only_supervisor_or_quality_may_place_a_hold(
    floor: Floor, service: ExecutionService, who: str
) -> None:
    before = snapshot(service, "TRV-1001")
    with pytest.raises(Refused) as refused:
        await floor.do(
            PlaceHold(actor_id=floor.ids[who], traveler="TRV-1001", reason="I do not like it")
        )
    assert refused.value.status == 403
    assert refused.value.rule == "role_not_allowed"
    assert "may not place a hold: needs quality or supervisor" in refused.value.detail
    assert snapshot(service, "TRV-1001") == before

    placed = await floor.do(
        PlaceHold(actor_id=floor.ids["sam"], traveler="TRV-1001", reason="Audit sample")
    )
    assert placed.traveler.status is TravelerStatus.ON_HOLD
    assert placed.traveler.hold is not None
    assert placed.traveler.hold.placed_by == "Sam Patel"
    assert placed.traveler.hold.reason == "Audit sample"


async def test_releasing_a_hold_is_a_signature_by_supervisor_or_quality(
    floor: Floor, service: ExecutionService
) -> None:
    ana = floor.ids["ana"]
    before = snapshot(service, "TRV-1003")

    # An operator's release is refused, even with her own valid badge and PIN.
    with pytest.raises(Refused) as refused:
        await floor.do(ReleaseHold(actor_id=ana, traveler="TRV-1003", credentials=creds("ana")))
    assert refused.value.rule == "role_not_allowed"
    assert refused.value.detail == "Ana Ortiz may not release a hold: needs quality or supervisor."
    assert snapshot(service, "TRV-1003") == before

    # The supervisor's badge without the right PIN is not a signature.
    with pytest.raises(Refused) as refused:
        await floor.do(
            ReleaseHold(actor_id=ana, traveler="TRV-1003", credentials=creds("sam", pin="0000"))
        )
    assert refused.value.rule == "credentials_not_accepted"
    still = snapshot(service, "TRV-1003")
    assert still.traveler == before.traveler
    assert (still.holds, still.signatures) == (before.holds, before.signatures)

    # Badge + PIN of a supervisor: released, and the release is a signature on the hold.
    hold_id = before.traveler.hold.id if before.traveler.hold else None
    released = await floor.do(
        ReleaseHold(actor_id=ana, traveler="TRV-1003", credentials=creds("sam"))
    )
    assert released.traveler.hold is None
    assert released.traveler.status is TravelerStatus.NOT_STARTED
    assert released.message == "Hold on TRV-1003 released by Sam Patel."
    with service.store.begin() as conn:
        hold = conn.execute(select(t.holds).where(t.holds.c.id == hold_id)).one()
        sig = conn.execute(
            select(t.signatures).where(t.signatures.c.id == hold.released_signature_id)
        ).one()
    assert (sig.subject, sig.subject_id, sig.printed_name, sig.meaning) == (
        "hold",
        hold_id,
        "Sam Patel",
        "approved",
    )
    assert len(sig.content_hash) == 64
    await floor.start_step("ana", "TRV-1003", "10.1")


async def test_a_release_without_badge_and_pin_is_not_accepted(
    floor: Floor, service: ExecutionService, live_server: LiveServer
) -> None:
    async with raw_http(live_server.url, live_server.token("RAW-01")) as http:
        login = await http.post(
            "/api/v1/login", json={"badge": "30001"}, headers={"Idempotency-Key": "sam-badges-in"}
        )
        action = {
            "kind": "release_hold",
            "actor_id": floor.ids["sam"],
            "traveler": "TRV-1003",
            "session": login.json()["session"],
        }
        before = snapshot(service, "TRV-1003")
        response = await http.post(
            "/api/v1/actions", json={"action": action}, headers={"Idempotency-Key": "no-pin-1"}
        )
    # Sam is proven as the actor (his session), but a release is a signature: badge and PIN.
    assert response.status_code == 403
    problem = response.json()
    assert problem["rule"] == "signature_unproven"
    assert problem["detail"] == "A signature needs the signer's badge and PIN."
    assert snapshot(service, "TRV-1003") == before


# --- measurements, NCRs, dispositions -------------------------------------------------------------------


async def _out_of_tolerance_bore(floor: Floor) -> None:
    """TRV-1001 up to 10.2 with a bore of 12.750 mm (limits 12.690–12.710)."""
    await floor.work("ana", "TRV-1001", "10.1")
    await floor.work("ana", "TRV-1001", "10.2", {"Bushing bore diameter": "12.750"}, sign=False)


async def test_out_of_tolerance_blocks_sign_off_until_an_ncr_and_its_hold_are_cleared(
    floor: Floor, service: ExecutionService
) -> None:
    await floor.work("ana", "TRV-1001", "10.1")
    await floor.start_step("ana", "TRV-1001", "10.2")
    await floor.record_value("ana", "TRV-1001", "10.2", "Press tool", "TL-0003")
    result = await floor.record_value("ana", "TRV-1001", "10.2", "Bushing bore diameter", "12.750")
    bore = item_of(step_of(result.traveler, "10.2"), "Bushing bore diameter")
    # A value outside its limits is a valid record of a failure, not a refusal.
    assert bore.latest is not None
    assert (bore.latest.value, bore.latest.passed) == ("12.750", False)  # as read
    assert "OUT OF TOLERANCE" in result.message and "12.69–12.71 mm" in result.message

    before = snapshot(service, "TRV-1001")
    with pytest.raises(RuleRefused) as refused:
        await floor.sign_step("ana", "TRV-1001", "10.2")
    assert refused.value.rule == "step_incomplete"
    assert refused.value.detail == (
        "Step 10.2 cannot be signed: Bushing bore diameter: out of tolerance, raise an NCR"
    )
    assert snapshot(service, "TRV-1001") == before

    # The NCR puts the traveler on hold; the hold names the NCR.
    trav = await floor.traveler("TRV-1001")
    raised = await floor.do(
        RaiseNcr(
            actor_id=floor.ids["ana"],
            traveler="TRV-1001",
            item_id=bore.id,
            description="Bore oversize after pressing",
            defect_code="DIM-01",
        )
    )
    (ncr,) = raised.traveler.ncrs
    assert (ncr.status, ncr.step_number, ncr.raised_by, ncr.defect_code) == (
        "open",
        "10.2",
        "Ana Ortiz",
        "DIM-01",
    )
    assert raised.traveler.status is TravelerStatus.ON_HOLD
    assert raised.traveler.hold is not None and raised.traveler.hold.ncr_number == ncr.number
    assert (
        item_of(step_of(raised.traveler, "10.2"), "Bushing bore diameter").ncr_number == ncr.number
    )

    held = snapshot(service, "TRV-1001")
    with pytest.raises(OnHold):
        await floor.do(floor.sign("ana", trav, "10.2"))
    with pytest.raises(
        RuleRefused
    ) as refused:  # the hold cannot go before the NCR is dispositioned
        await floor.do(
            ReleaseHold(actor_id=floor.ids["sam"], traveler="TRV-1001", credentials=creds("sam"))
        )
    assert refused.value.rule == "ncr_open"
    assert refused.value.detail == f"{ncr.number} needs a disposition before the hold is released."
    assert snapshot(service, "TRV-1001") == held

    # Disposition is for quality only: an inspector and an operator are refused.
    for who in ("ivy", "ana"):
        with pytest.raises(Refused) as denied:
            await floor.do(
                DispositionNcr(
                    actor_id=floor.ids[who],
                    traveler="TRV-1001",
                    ncr=ncr.number,
                    disposition=Disposition.USE_AS_IS,
                    credentials=creds(who),
                )
            )
        assert denied.value.rule == "role_not_allowed"
        assert denied.value.detail.endswith("may not disposition an NCR: needs quality.")
        assert snapshot(service, "TRV-1001") == held

    done = await floor.do(
        DispositionNcr(
            actor_id=floor.ids["sam"],
            traveler="TRV-1001",
            ncr=ncr.number,
            disposition=Disposition.USE_AS_IS,
            rationale="Within the bushing's press-fit allowance per SRM 51-10",
            credentials=creds("sam"),
        )
    )
    assert done.traveler.ncrs[0].status == "awaiting_approval"
    done = await floor.do(
        ApproveDisposition(
            actor_id=floor.ids["raj"], traveler="TRV-1001", ncr=ncr.number, credentials=creds("raj")
        )
    )
    assert done.traveler.ncrs[0].status == "dispositioned"
    assert done.traveler.ncrs[0].disposition is Disposition.USE_AS_IS
    assert done.traveler.status is TravelerStatus.ON_HOLD  # disposition alone does not release
    with pytest.raises(OnHold):
        await floor.do(floor.sign("ana", trav, "10.2"))

    await floor.do(
        ReleaseHold(actor_id=floor.ids["sam"], traveler="TRV-1001", credentials=creds("sam"))
    )
    signed = await floor.sign_step("ana", "TRV-1001", "10.2")
    assert step_of(signed.traveler, "10.2").status is StepStatus.COMPLETE
    assert [s.number for s in signed.traveler.steps] == ["10.1", "10.2", "20.1", "20.2", "30.1"]


async def test_a_passing_re_measure_does_not_clear_an_out_of_tolerance_value(
    floor: Floor, service: ExecutionService
) -> None:
    """Measuring again until it passes is not a way around the NCR: the failure stays on record."""
    await _out_of_tolerance_bore(floor)
    result = await floor.record_value("ana", "TRV-1001", "10.2", "Bushing bore diameter", "12.700")
    bore = item_of(step_of(result.traveler, "10.2"), "Bushing bore diameter")
    assert bore.latest is not None and bore.latest.passed is True

    before = snapshot(service, "TRV-1001")
    with pytest.raises(RuleRefused) as refused:
        await floor.sign_step("ana", "TRV-1001", "10.2")
    assert refused.value.rule == "step_incomplete"
    assert "Bushing bore diameter: out of tolerance, raise an NCR" in refused.value.detail
    assert snapshot(service, "TRV-1001") == before

    raised = await floor.do(
        RaiseNcr(
            actor_id=floor.ids["ana"],
            traveler="TRV-1001",
            item_id=bore.id,
            description="Bore measured 12.750 before re-measure",
            defect_code="DIM-01",
        )
    )
    number = raised.traveler.ncrs[0].number
    await floor.do(
        DispositionNcr(
            actor_id=floor.ids["sam"],
            traveler="TRV-1001",
            ncr=number,
            disposition=Disposition.USE_AS_IS,
            rationale="Re-measure in tolerance; first reading taken warm",
            credentials=creds("sam"),
        )
    )
    await floor.do(
        ApproveDisposition(
            actor_id=floor.ids["raj"], traveler="TRV-1001", ncr=number, credentials=creds("raj")
        )
    )
    await floor.do(
        ReleaseHold(actor_id=floor.ids["sam"], traveler="TRV-1001", credentials=creds("sam"))
    )
    signed = await floor.sign_step("ana", "TRV-1001", "10.2")
    assert step_of(signed.traveler, "10.2").status is StepStatus.COMPLETE


async def test_rework_disposition_adds_a_rework_step_right_after(
    floor: Floor, service: ExecutionService
) -> None:
    await _out_of_tolerance_bore(floor)
    trav = await floor.traveler("TRV-1001")
    bore = item_of(step_of(trav, "10.2"), "Bushing bore diameter")
    raised = await floor.do(
        RaiseNcr(
            actor_id=floor.ids["ana"],
            traveler="TRV-1001",
            item_id=bore.id,
            description="Bore oversize",
            defect_code="DIM-01",
        )
    )
    number = raised.traveler.ncrs[0].number
    result = await floor.do(
        DispositionNcr(
            actor_id=floor.ids["sam"],
            traveler="TRV-1001",
            ncr=number,
            disposition=Disposition.REWORK,
            instructions="Remove the bushings, ream to 12.70 mm and press new bushings.",
            credentials=creds("sam"),
        )
    )
    assert [s.number for s in result.traveler.steps] == [
        "10.1",
        "10.2",
        "10.2-RW",
        "20.1",
        "20.2",
        "30.1",
    ]
    rework = step_of(result.traveler, "10.2-RW")
    assert rework.status is StepStatus.NOT_STARTED
    assert rework.inspection is True
    assert rework.title == f"Rework per {number}"
    assert rework.work_center == "ASSEMBLY"
    remeasure = item_of(rework, "Bushing bore diameter (re-measure)")
    assert (remeasure.kind, remeasure.lower, remeasure.upper, remeasure.unit) == (
        ItemKind.MEASUREMENT,
        12.690,
        12.710,
        "mm",
    )
    assert item_of(rework, "Rework done as instructed").kind is ItemKind.ACKNOWLEDGEMENT

    await floor.do(
        ReleaseHold(actor_id=floor.ids["sam"], traveler="TRV-1001", credentials=creds("sam"))
    )
    await floor.sign_step("ana", "TRV-1001", "10.2")
    before = snapshot(service, "TRV-1001")
    with pytest.raises(RuleRefused) as refused:
        await floor.start_step("ana", "TRV-1001", "20.1")
    assert refused.value.detail == "Step 20.1 cannot start: step 10.2-RW is not complete."
    assert snapshot(service, "TRV-1001") == before

    await floor.work("ana", "TRV-1001", "10.2-RW")
    verified = await floor.sign_step("ana", "TRV-1001", "10.2-RW", Meaning.VERIFIED, signer="ivy")
    assert step_of(verified.traveler, "10.2-RW").status is StepStatus.COMPLETE
    started = await floor.start_step("ana", "TRV-1001", "20.1")
    assert step_of(started.traveler, "20.1").status is StepStatus.IN_WORK


# --- tools and material ------------------------------------------------------------------------------


async def test_tool_scan_is_refused_for_an_unknown_tool(
    floor: Floor, service: ExecutionService
) -> None:
    await floor.start_step("ana", "TRV-1002", "20.1")
    before = snapshot(service, "TRV-1002")
    tool_uses = len((await floor.client.as_built("TRV-1002")).tools)
    with pytest.raises(Invalid) as refused:
        await floor.record_value("ana", "TRV-1002", "20.1", "Torque wrench", "TL-9999")
    assert refused.value.status == 422
    assert refused.value.rule == "tool_unknown"
    assert refused.value.detail == "Tool TL-9999 is not in the tool crib register."
    assert snapshot(service, "TRV-1002") == before
    assert len((await floor.client.as_built("TRV-1002")).tools) == tool_uses


async def test_tool_scan_is_refused_past_calibration_and_names_the_due_date(
    floor: Floor, service: ExecutionService
) -> None:
    with service.store.begin() as conn:
        due = conn.execute(
            select(t.tools.c.calibration_due).where(t.tools.c.code == "TL-0002")
        ).scalar_one()
    await floor.start_step("ana", "TRV-1002", "20.1")
    before = snapshot(service, "TRV-1002")
    with pytest.raises(RuleRefused) as refused:
        await floor.record_value("ana", "TRV-1002", "20.1", "Torque wrench", "TL-0002")
    assert refused.value.rule == "tool_out_of_calibration"
    assert f"since {due:%Y-%m-%d}" in refused.value.detail
    assert "TL-0002" in refused.value.detail
    after = snapshot(service, "TRV-1002")
    assert after == before
    assert item_of(step_of(after.traveler, "20.1"), "Torque wrench").latest is None

    # A calibrated tool is accepted and appears among the tools used on the as-built record.
    result = await floor.record_value("ana", "TRV-1002", "20.1", "Torque wrench", "tl-0001")
    scanned = item_of(step_of(result.traveler, "20.1"), "Torque wrench").latest
    assert scanned is not None and scanned.value == "TL-0001"
    used = [
        (u.tool, u.step, u.recorded_by) for u in (await floor.client.as_built("TRV-1002")).tools
    ]
    assert used[-1] == ("TL-0001", "20.1", "Ana Ortiz")


async def test_material_scan_records_the_lot_as_consumed(
    floor: Floor, service: ExecutionService
) -> None:
    await floor.start_step("ben", "TRV-1001", "10.1")
    before = snapshot(service, "TRV-1001")
    with pytest.raises(Invalid) as refused:
        await floor.record_value("ben", "TRV-1001", "10.1", "Bracket forging lot", "LOT-Z999")
    assert refused.value.rule == "material_unknown"
    assert refused.value.detail == "Material lot LOT-Z999 is not known to stores."
    assert snapshot(service, "TRV-1001") == before
    assert (await floor.client.as_built("TRV-1001")).material == ()

    await floor.record_value("ben", "TRV-1001", "10.1", "Bracket forging lot", " lot-a101 ")
    built = await floor.client.as_built("TRV-1001")
    assert [(m.lot, m.part_number, m.step, m.recorded_by) for m in built.material] == [
        ("LOT-A101", "7741-221", "10.1", "Ben Okafor")
    ]
    with service.store.begin() as conn:
        consumed = (
            conn.execute(
                select(t.material_lots.c.code)
                .join(t.consumption, t.consumption.c.lot_id == t.material_lots.c.id)
                .join(t.travelers, t.travelers.c.id == t.consumption.c.traveler_id)
                .where(t.travelers.c.number == "TRV-1001")
            )
            .scalars()
            .all()
        )
    assert consumed == ["LOT-A101"]


# --- inspection buy-off --------------------------------------------------------------------------------


async def _performed_20_2(floor: Floor, performer: str) -> None:
    """TRV-1002 (operation 10 done): 20.1 by Ana, 20.2 worked and signed as performed by `performer`."""
    await floor.work("ana", "TRV-1002", "20.1")
    await floor.work(performer, "TRV-1002", "20.2")


async def test_inspection_step_needs_a_second_signature_by_an_inspector(
    floor: Floor, service: ExecutionService
) -> None:
    await _performed_20_2(floor, "ana")
    trav = await floor.traveler("TRV-1002")
    step = step_of(trav, "20.2")
    assert step.status is StepStatus.IN_WORK  # performed is not enough on an inspection step
    assert [(s.printed_name, s.meaning) for s in step.signatures] == [
        ("Ana Ortiz", Meaning.PERFORMED)
    ]

    before = snapshot(service, "TRV-1002")
    for operator in ("ana", "ben"):
        with pytest.raises(Refused) as refused:
            await floor.sign_step("ana", "TRV-1002", "20.2", Meaning.VERIFIED, signer=operator)
        assert refused.value.rule == "role_not_allowed"
        assert refused.value.detail.endswith(
            "may not buy off step 20.2: needs inspector or quality."
        )
        assert snapshot(service, "TRV-1002") == before

    done = await floor.sign_step("ana", "TRV-1002", "20.2", Meaning.VERIFIED, signer="ivy")
    step = step_of(done.traveler, "20.2")
    assert step.status is StepStatus.COMPLETE
    assert [(s.printed_name, s.meaning) for s in step.signatures] == [
        ("Ana Ortiz", Meaning.PERFORMED),
        ("Ivy Chen", Meaning.VERIFIED),
    ]


async def test_the_performer_cannot_buy_off_their_own_inspection_step(
    floor: Floor, service: ExecutionService
) -> None:
    await _performed_20_2(floor, "ivy")
    before = snapshot(service, "TRV-1002")
    with pytest.raises(Refused) as refused:
        await floor.sign_step("ivy", "TRV-1002", "20.2", Meaning.VERIFIED)
    assert refused.value.status == 403
    assert refused.value.rule == "same_person"
    assert refused.value.detail == "Ivy Chen performed step 20.2 and cannot also buy it off."
    assert snapshot(service, "TRV-1002") == before

    done = await floor.sign_step("ivy", "TRV-1002", "20.2", Meaning.VERIFIED, signer="sam")
    assert step_of(done.traveler, "20.2").status is StepStatus.COMPLETE


async def test_an_inspection_step_is_not_bought_off_before_it_is_performed(
    floor: Floor, service: ExecutionService
) -> None:
    await floor.work("ana", "TRV-1002", "20.1")
    await floor.work("ana", "TRV-1002", "20.2", sign=False)
    before = snapshot(service, "TRV-1002")
    with pytest.raises(RuleRefused) as refused:
        await floor.sign_step("ana", "TRV-1002", "20.2", Meaning.VERIFIED, signer="ivy")
    assert refused.value.rule == "not_performed"
    assert refused.value.detail == "Step 20.2 must be signed as performed first."
    assert snapshot(service, "TRV-1002") == before


def test_the_queue_matches_each_travelers_own_current_step(service: ExecutionService) -> None:
    """The set-based queue agrees with the traveler-by-traveler reading of the same rule."""
    from kiosk import rules
    from kiosk.server import views
    from kiosk.wire import TravelerStatus

    with service.store.begin() as conn:
        queue = views.queue(conn, "ASSEMBLY")
        expected = []
        for number in ("TRV-1001", "TRV-1002", "TRV-1003", "TRV-2000", "TRV-4001"):
            trav = views.load_traveler(conn, number)
            step = rules.current_step(trav)
            assert step is not None
            expected.append((number, trav.status, f"{step.number} {step.title}"))
        assert [(q.number, q.status, q.current_step) for q in queue] == expected
        assert {q.status for q in queue} == {
            TravelerStatus.NOT_STARTED,
            TravelerStatus.IN_WORK,
            TravelerStatus.ON_HOLD,
        }
        assert views.queue(conn, "PAINT") == []
