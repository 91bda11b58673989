"""Quality rules with effect, each broken on purpose on the real store (SQLite, and PostgreSQL
when KIOSK_TEST_DATABASE_URL is set): the refusal says why, and nothing changes. Dispositions end
travelers or wait for a second approval; expected values refuse the wrong serial and another
part's lot; values are kept as read and compared as decimals; certifications gate start and sign."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError
from sqlalchemy import update

from kiosk import rules
from kiosk.server import audit, erp, events, pdf, printable
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    Action,
    ApproveDisposition,
    Disposition,
    DispositionNcr,
    Meaning,
    PlaceHold,
    RaiseNcr,
    ReleaseHold,
    StepStatus,
    Traveler,
    TravelerStatus,
)
from tests.helpers import ServiceFloor, creds, item_of, kiosk, snapshot, station_ref, step_of
from tests.helpers import pdf_text as read_pdf

if TYPE_CHECKING:
    from tests.conftest import Plant


@pytest.fixture
def floor(service: ExecutionService) -> ServiceFloor:
    return ServiceFloor(service)


def refused(floor: ServiceFloor, action: Action, traveler: str) -> tuple[str | None, str]:
    """Refuse `action` and check that nothing about the traveler or the records changed."""
    before = snapshot(floor.service, traveler)
    problem = floor.refuse(action)
    assert snapshot(floor.service, traveler) == before, problem
    return problem.rule, problem.detail


def torque_ncr(floor: ServiceFloor) -> Traveler:
    """TRV-1002 20.1 started by Ana, torque 15 Nm (out of 11.5–13.5) and an NCR raised on it."""
    svc = floor.service
    trav = floor.do(floor.start("ana", svc.traveler("TRV-1002"), "20.1")).traveler
    trav = floor.do(floor.record("ana", trav, "20.1", "Torque wrench", "TL-0001")).traveler
    trav = floor.do(floor.record("ana", trav, "20.1", "Fastener torque", "15")).traveler
    torque = item_of(step_of(trav, "20.1"), "Fastener torque")
    ncr = RaiseNcr(actor_id=floor.ids["ana"], traveler="TRV-1002", item_id=torque.id,
                   description="Fastener torque 15 Nm", defect_code="TRQ")  # fmt: skip
    return floor.do(ncr).traveler


def dispose(
    floor: ServiceFloor, disposition: Disposition, *, rationale: str = "", instructions: str = ""
) -> DispositionNcr:
    number = floor.service.traveler("TRV-1002").ncrs[0].number
    return DispositionNcr(
        actor_id=floor.ids["sam"], traveler="TRV-1002", ncr=number, disposition=disposition,
        rationale=rationale, instructions=instructions, credentials=creds("sam"),
    )  # fmt: skip


def pdf_text(made: printable.Printable, folder: Path) -> str:
    """The as-built PDF as pdftotext reads it, whitespace folded."""
    return " ".join(read_pdf(pdf.render(made), folder).split())


def verified(service: ExecutionService) -> None:
    with service.store.read() as conn:
        verdict = audit.verify(conn)
    assert verdict.ok, verdict.reason


# --- item 3: dispositions with effect ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("disposition", "status", "words"),
    [
        (Disposition.SCRAP, TravelerStatus.SCRAPPED, "scrapped"),
        (Disposition.RETURN_TO_VENDOR, TravelerStatus.RETURNED, "returned to vendor"),
    ],
)
def test_scrap_and_return_end_the_traveler_and_nothing_more_is_recorded(
    floor: ServiceFloor,
    service: ExecutionService,
    disposition: Disposition,
    status: TravelerStatus,
    words: str,
    tmp_path: Path,
) -> None:
    torque_ncr(floor)
    done = floor.do(dispose(floor, disposition, rationale="Thread stripped in the boss"))
    number = done.traveler.ncrs[0].number
    assert done.traveler.status is status
    assert done.message.endswith(f"TRV-1002 is {words}; nothing more is recorded.")

    trav = done.traveler
    ended = f"TRV-1002 was {words} ({number}): nothing more can be recorded on it."
    for action in (
        floor.record("ana", trav, "20.1", "Torque stripe applied", "pass"),
        floor.start("ana", trav, "20.2"),
        floor.sign("ana", trav, "20.1"),
        PlaceHold(actor_id=floor.ids["sam"], traveler="TRV-1002", reason="Look again"),
        ReleaseHold(actor_id=floor.ids["sam"], traveler="TRV-1002", credentials=creds("sam")),
        RaiseNcr(actor_id=floor.ids["ana"], traveler="TRV-1002", description="More", defect_code="DMG"),
    ):  # fmt: skip
        assert refused(floor, action, "TRV-1002") == ("traveler_ended", ended)

    # The queue says so, and so does the as-built record.
    (row,) = [r for r in service.queue(station_ref(service)) if r.number == "TRV-1002"]
    assert row.status is status
    with service.store.read() as conn:
        made = printable.read(conn, "TRV-1002")
    assert made.record.traveler.status is status
    printed = pdf_text(made, tmp_path)
    assert f"{words.upper()} by {number} ({disposition.value.replace('_', ' ')})" in printed
    assert f"{number} rationale: Thread stripped in the boss" in printed
    # ERP and QMS hear of it: the disposition, then the traveler's end, as its last events.
    with service.store.read() as conn:
        feed = events.feed(conn, 0, events.FEED_MAX)
    last = [(e.event.value, e.traveler, e.ncr) for e in feed.events][-2:]
    assert last == [
        ("ncr_dispositioned", "TRV-1002", number),
        (f"traveler_{status}", "TRV-1002", number),
    ]
    verified(service)


def test_use_as_is_needs_a_rationale_and_a_second_approval_by_the_plant_role(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    torque_ncr(floor)
    rule, detail = refused(floor, dispose(floor, Disposition.USE_AS_IS), "TRV-1002")
    assert (rule, detail) == (
        "rationale_missing",
        "A use as is disposition needs a rationale: why the part is fit to use.",
    )
    why = "Joint re-checked at 15 Nm against SRM 51-20: within the bolt's allowable"
    done = floor.do(dispose(floor, Disposition.USE_AS_IS, rationale=why))
    (ncr,) = done.traveler.ncrs
    assert (ncr.status, ncr.rationale, ncr.approval_role) == (
        "awaiting_approval",
        why,
        "supervisor",
    )
    assert ncr.approval_signature is None

    release = ReleaseHold(actor_id=floor.ids["sam"], traveler="TRV-1002", credentials=creds("sam"))
    assert refused(floor, release, "TRV-1002") == (
        "approval_missing",
        f"{ncr.number} (use as is) needs its second approval (supervisor) before the hold is "
        "released.",
    )

    def approve(who: str) -> ApproveDisposition:
        return ApproveDisposition(
            actor_id=floor.ids["sam"], traveler="TRV-1002", ncr=ncr.number, credentials=creds(who)
        )

    # Not the person who approved the disposition, and not someone without the plant's role.
    assert refused(floor, approve("sam"), "TRV-1002")[0] == "same_person"
    rule, detail = refused(floor, approve("ivy"), "TRV-1002")
    assert rule == "role_not_allowed" and "needs supervisor" in detail

    approved = floor.do(approve("raj")).traveler.ncrs[0]
    assert approved.status == "dispositioned"
    assert approved.approval_signature is not None
    assert approved.approval_signature.printed_name == "Raj Mehta"
    assert refused(floor, approve("raj"), "TRV-1002")[0] == "approval_not_needed"
    assert floor.do(release).traveler.status is TravelerStatus.IN_WORK
    verified(service)


def test_a_second_approval_role_comes_from_the_plant_config(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    with service.store.begin() as conn:
        erp.load(
            conn, erp.PlantImport.model_validate({"quality": {"second_approver": "inspector"}})
        )
    torque_ncr(floor)
    done = floor.do(dispose(floor, Disposition.USE_AS_IS, rationale="Within the allowable"))
    (ncr,) = done.traveler.ncrs
    assert ncr.approval_role == "inspector"
    approve = ApproveDisposition(actor_id=floor.ids["sam"], traveler="TRV-1002", ncr=ncr.number,
                                 credentials=creds("raj"))  # fmt: skip
    assert refused(floor, approve, "TRV-1002")[0] == "role_not_allowed"
    assert (
        floor.do(approve.model_copy(update={"credentials": creds("ivy")})).traveler.ncrs[0].status
        == "dispositioned"
    )


def test_a_torque_rework_carries_the_wrench_and_the_torque_and_its_instructions(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    torque_ncr(floor)
    rule, _ = refused(floor, dispose(floor, Disposition.REWORK), "TRV-1002")
    assert rule == "instructions_missing"
    steps = "Remove the four bolts, replace with new NAS6604, torque again to 12.5 Nm."
    done = floor.do(dispose(floor, Disposition.REWORK, instructions=steps))
    rework = step_of(done.traveler, "20.1-RW")
    assert rework.instructions.endswith(steps)
    assert [(i.label, i.kind.value) for i in rework.items] == [
        ("Rework done as instructed", "acknowledgement"),
        ("Torque wrench", "tool"),
        ("Fastener torque (re-measure)", "measurement"),
    ]
    again = item_of(rework, "Fastener torque (re-measure)")
    assert (again.lower, again.upper, again.unit) == (11.5, 13.5, "Nm")
    assert rework.certification == "torque"  # the re-do needs what the original needed
    (ncr,) = done.traveler.ncrs
    assert (ncr.status, ncr.instructions) == ("dispositioned", steps)  # rework: no second approval
    verified(service)


def test_a_defect_code_off_the_plant_list_is_refused(floor: ServiceFloor) -> None:
    trav = floor.service.traveler("TRV-1001")
    ncr = RaiseNcr(actor_id=floor.ids["ana"], traveler="TRV-1001", step_id=trav.steps[0].id,
                   description="Dent on the lug", defect_code="BURR")  # fmt: skip
    rule, detail = refused(floor, ncr, "TRV-1001")
    assert rule == "defect_code_unknown" and detail.startswith("Defect code BURR is not on")
    assert floor.do(ncr.model_copy(update={"defect_code": "DMG-02"})).traveler.ncrs


def test_a_plant_sets_its_own_defect_codes_and_stations_get_them(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    own = {"WLD": "weld", "DIM": "dimension"}
    with service.store.begin() as conn:
        erp.load(conn, erp.PlantImport.model_validate({"quality": {"defect_codes": own}}))
    assert service.station_info(station_ref(service)).defect_codes == own
    trav = service.traveler("TRV-1001")
    ncr = RaiseNcr(actor_id=floor.ids["ana"], traveler="TRV-1001", step_id=trav.steps[0].id,
                   description="Porosity in the weld", defect_code="DMG")  # fmt: skip
    rule, detail = refused(floor, ncr, "TRV-1001")  # on the product's list, not on this plant's
    assert (rule, detail) == ("defect_code_unknown",
                              "Defect code DMG is not on the plant's list: WLD, DIM.")  # fmt: skip
    assert floor.do(ncr.model_copy(update={"defect_code": "WLD-02"})).traveler.ncrs
    torque = item_of(step_of(trav, "20.1"), "Fastener torque")
    assert rules.default_defect_code(torque) == "TRQ"
    assert rules.default_defect_code(torque, own) == ""  # no TRQ here: the operator picks one


@pytest.mark.parametrize(
    "codes", [{}, {"dim": "lower case"}, {"D": "too short"}, {"TOOLONGCODE": "nine"}]
)
def test_a_plant_list_of_defect_codes_that_cannot_work_is_refused(
    service: ExecutionService, codes: dict[str, str]
) -> None:
    with pytest.raises(ValidationError):
        erp.PlantImport.model_validate({"quality": {"defect_codes": codes}})
    assert service.station_info(station_ref(service)).defect_codes is None


# --- item 4: expected values --------------------------------------------------------------------------


def test_a_marking_must_be_the_travelers_serial(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    for step in ("10.1", "10.2", "20.1", "20.2"):
        floor.work("ana", "TRV-1001", step)
        if step == "20.2":
            floor.do(
                floor.sign(
                    "ana", service.traveler("TRV-1001"), "20.2", Meaning.VERIFIED, signer="ivy"
                )
            )
    trav = floor.do(floor.start("ana", service.traveler("TRV-1001"), "30.1")).traveler
    wrong = floor.record("ana", trav, "30.1", "Marked serial", "SN-WRONG-1")
    assert refused(floor, wrong, "TRV-1001") == (
        "value_unexpected",
        "Marked serial: SN-WRONG-1 is not what this traveler needs (SN-7741-0001).",
    )
    right = floor.do(floor.record("ana", trav, "30.1", "Marked serial", "sn-7741-0001")).traveler
    assert item_of(step_of(right, "30.1"), "Marked serial").latest is not None


def test_a_lot_of_another_part_is_refused(floor: ServiceFloor) -> None:
    trav = floor.do(floor.start("ana", floor.service.traveler("TRV-1001"), "10.1")).traveler
    wrong = floor.record("ana", trav, "10.1", "Bracket forging lot", "LOT-C300")
    assert refused(floor, wrong, "TRV-1001") == (
        "wrong_part",
        "Bracket forging lot: lot LOT-C300 is part 7741-300, not 7741-221. Scan a lot of "
        "7741-221; another part is used only under an approved deviation.",
    )
    trav = floor.do(floor.record("ana", trav, "10.1", "Bracket forging lot", "LOT-A100")).traveler
    latest = item_of(step_of(trav, "10.1"), "Bracket forging lot").latest
    assert latest is not None and latest.value == "LOT-A100"


# --- item 5: values as read ---------------------------------------------------------------------------


def test_a_value_is_kept_as_read_and_judged_as_a_decimal(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    floor.work("ana", "TRV-1001", "10.1")
    trav = floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.2")).traveler
    bore = "Bushing bore diameter"
    # 12.7100000000000001 is 12.71 as a binary float, so a float comparison would pass it.
    for typed, kept, passed in (("12.7100000000000001", "12.7100000000000001", False),
                                ("12.710", "12.710", True), ("+012.6900", "12.6900", True),
                                ("12.6899", "12.6899", False), ("12,70", "12.70", True)):  # fmt: skip
        trav = floor.do(floor.record("ana", trav, "10.2", bore, typed)).traveler
        latest = item_of(step_of(trav, "10.2"), bore).latest
        assert latest is not None and (latest.value, latest.passed) == (kept, passed), typed
    with service.store.read() as conn:
        made = printable.read(conn, "TRV-1001")
    assert [v.entry.value for v in made.record.values if v.item == bore][-1] == "12.70"
    assert b'"value": "12.70"' in made.json
    verified(service)


# --- item 7: certifications ---------------------------------------------------------------------------


def test_an_expired_or_missing_certification_refuses_start_and_sign(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    for step in ("10.1", "10.2"):
        floor.work("ana", "TRV-1001", step)
    trav = service.traveler("TRV-1001")
    expired = (service.clock().date() - timedelta(days=10)).isoformat()
    assert refused(floor, floor.start("ben", trav, "20.1"), "TRV-1001") == (
        "certification_expired",
        f"Ben Okafor's torque certification expired on {expired}; step 20.1 needs it.",
    )
    assert refused(floor, floor.start("ivy", trav, "20.1"), "TRV-1001") == (
        "not_certified",
        "Ivy Chen holds no torque certification, which step 20.1 needs.",
    )
    # Ana may do the work; Ben still may not sign it as performed.
    floor.do(floor.start("ana", trav, "20.1"))
    for label, value in (("Torque wrench", "TL-0001"), ("Fastener torque", "12.5"),
                         ("Torque stripe applied", "pass")):  # fmt: skip
        floor.do(floor.record("ana", service.traveler("TRV-1001"), "20.1", label, value))
    trav = service.traveler("TRV-1001")
    assert refused(floor, floor.sign("ana", trav, "20.1", signer="ben"), "TRV-1001")[0] == (
        "certification_expired"
    )
    signed = floor.do(floor.sign("ana", trav, "20.1")).traveler
    assert step_of(signed, "20.1").status is StepStatus.COMPLETE


def test_the_credential_cache_carries_certifications_for_the_offline_rule(
    floor: ServiceFloor, service: ExecutionService
) -> None:
    floor.session_of(floor.ids["ben"])  # an online badge-in puts Ben in the station's cache
    cache = service.credential_cache(floor.station)
    ben = next(p.person for p in cache.people if p.person.name == "Ben Okafor")
    (cert,) = ben.certifications
    assert cert.operation == "torque" and cert.expires < service.clock().date()
    step = step_of(service.traveler("TRV-1001"), "20.1")
    with pytest.raises(rules.Refusal) as offline:  # what the station decides with the server away
        rules.ensure_certified(ben, step, service.clock().date())
    assert offline.value.rule == "certification_expired"


def test_a_certification_changed_behind_the_server_is_caught_by_verify(
    service: ExecutionService,
) -> None:
    verified(service)
    with service.store.begin() as conn:
        conn.execute(
            update(t.certifications).values(expires=service.clock().date() + timedelta(days=900))
        )
    with service.store.read() as conn:
        verdict = audit.verify(conn)
    assert not verdict.ok and "certification" in (verdict.reason or "")


def test_certifications_are_imported_renewed_and_listed_when_expiring(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    today = service.clock().date()
    unknown = erp.PlantImport.model_validate(
        {
            "certifications": [
                {"person": "Nobody Here", "operation": "torque", "expires": "2030-01-01"}
            ]
        }
    )
    with pytest.raises(erp.UnknownPerson, match="'Nobody Here'"), service.store.begin() as conn:
        erp.load(conn, unknown)
    renew = erp.PlantImport.model_validate(
        {"certifications": [{"person": "Ben Okafor", "operation": "torque",
                             "expires": (today + timedelta(days=400)).isoformat()}]}
    )  # fmt: skip
    with service.store.begin() as conn:
        erp.load(conn, renew)
    verified(service)

    done = kiosk("certifications", "--expiring", "30", "--json", "--database-url",
                 plant.database_url, data_dir=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [(c["person"], c["operation"], c["expired"]) for c in listed] == [
        ("Ivy Chen", "NDT level 2", False)  # Ben renewed; Ana's is good for a year
    ]
    assert listed[0]["expires"] == (today + timedelta(days=20)).isoformat()


async def test_the_ncr_dialog_lists_and_checks_the_plants_own_codes() -> None:
    from textual.app import App
    from textual.widgets import Input

    from kiosk.screens.ncr import NcrScreen

    class Dialog(App[None]):
        def on_mount(self) -> None:
            self.push_screen(NcrScreen("step 10.1", "Porosity in the weld", "", {"WLD": "weld"}))

    async with Dialog().run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = pilot.app.screen
        shown = " ".join(str(s.render()) for s in screen.query("Static"))
        assert "Defect code (WLD weld)" in shown and "DIM" not in shown
        screen.query_one("#defect", Input).value = "DIM"
        screen.query_one("#quantity", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        error = str(screen.query_one("#error").render())
        assert error == "✘ Defect code DIM is not on the plant's list: WLD."
        assert pilot.app.screen is screen  # nothing raised: the dialog stays, the code to fix
