"""Engineering changes mid-job: `kiosk revise` and POST /api/v1/revise issue a new revision of a
work order's routing steps. A traveler not yet at a changed step takes it silently (recorded); one
in work on it gets a redline its operator acknowledges (a proven, audited action) before starting,
recording or signing; a signed step keeps the revision it was done at. The same change again
changes nothing; a bad document is refused with a clear message and changes nothing. The
as-built shows every step's revision and every acknowledgement; `kiosk audit verify` re-derives
the change, the step revisions and each revised step's content."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, update

from kiosk import cli, rules
from kiosk.client.projection import Context, project
from kiosk.rules import Refusal
from kiosk.server import audit, erp, integration, pdf, printable, revise, views
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import AcknowledgeRedline, Person, Scope, StepStatus
from tests.helpers import (
    ROOT,
    ServiceFloor,
    count,
    new_key,
    record_count,
    snapshot,
    step_of,
)

if TYPE_CHECKING:
    from tests.conftest import LiveServer, Plant

EXAMPLE = ROOT / "examples" / "revise-ecn-0042.json"


def example(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(EXAMPLE.read_text())
    return {**doc, **changes}


def issue(service: ExecutionService, doc: dict[str, Any]) -> Any:
    return revise.issue(
        service.store, revise.RevisionDocument.model_validate(doc), datetime.now(UTC)
    )


def verdict(service: ExecutionService) -> audit.Verdict:
    with service.store.read() as conn:
        return audit.verify(conn)


def ack(floor: ServiceFloor, who: str, number: str, step: str) -> AcknowledgeRedline:
    found = step_of(floor.service.traveler(number), step)
    return AcknowledgeRedline(
        actor_id=floor.ids[who], traveler=number, step_id=found.id, redline_id=found.redlines[0].id
    )


def test_a_change_reaches_each_traveler_by_where_its_work_stands(
    service: ExecutionService,
) -> None:
    floor = ServiceFloor(service)
    floor.do(floor.start("ana", service.traveler("TRV-1002"), "20.1"))  # in work on it
    signed_10_2 = step_of(service.traveler("TRV-1002"), "10.2")

    done = issue(service, example())
    assert done.issued and done.counts == {"steps_changed": 4, "redlines": 1, "kept": 1}
    assert done.message == (
        "ECN-0042 issued: 4 steps at the new revision, 1 redline to acknowledge, "
        "1 signed step keeping the revision done at."
    )
    # Not yet reached: the new revision, silently (no redline), with the new limits.
    fresh = step_of(service.traveler("TRV-1001"), "10.2")
    bore = fresh.items[1]
    assert (fresh.revision, fresh.redlines, bore.lower, bore.upper) == ("D", (), 12.692, 12.712)
    assert "chilled" in fresh.instructions
    # Signed: the revision it was done at, and its signature still matches what was signed.
    assert step_of(service.traveler("TRV-1002"), "10.2") == signed_10_2
    # In work: the new revision as a redline, saying what changed and why.
    work = step_of(service.traveler("TRV-1002"), "20.1")
    (red,) = work.redlines
    assert (work.revision, red.change, red.old_revision, red.new_revision) == (
        "D",
        "ECN-0042",
        "C",
        "D",
    )
    assert red.changes == (
        "instructions now: Install four NAS6604 bolts, wet with sealant. Torque in a cross "
        "pattern to 13.0 Nm.",
        "item Fastener torque: nominal 12.5 -> 13.0; lower 11.5 -> 12.0; upper 13.5 -> 14.0",
    )
    assert red.reason.startswith("Supplier changed the bushing press fit")
    assert done.steps == (
        "TRV-1001 step 10.2: rev C -> D, not started",
        "TRV-1001 step 20.1: rev C -> D, not started",
        "TRV-1002 step 10.2: signed, keeps rev C",
        "TRV-1002 step 20.1: rev C -> D, a redline to acknowledge (in work)",
        "TRV-1003 step 10.2: rev C -> D, not started",
        "TRV-1003 step 20.1: rev C -> D, not started",
    )

    # The same change again changes nothing and says so.
    records = record_count(service)
    again = issue(service, example())
    assert not again.issued and again.message.endswith("nothing changed.")
    assert again.steps == done.steps
    assert record_count(service) == records
    assert verdict(service).ok


def person(service: ExecutionService, user_id: int) -> Person:
    with service.store.read() as conn:
        return views.person_of(
            conn, conn.execute(select(t.users).where(t.users.c.id == user_id)).one()
        )


def test_work_waits_for_the_redline_to_be_acknowledged_and_the_as_built_shows_it(
    service: ExecutionService, tmp_path: Path
) -> None:
    floor = ServiceFloor(service)
    floor.do(floor.start("ana", service.traveler("TRV-1002"), "20.1"))
    floor.do(floor.record("ana", service.traveler("TRV-1002"), "20.1", "Torque wrench", "TL-0001"))
    issue(service, example())
    trav = service.traveler("TRV-1002")
    before = snapshot(service, "TRV-1002")
    refused = [
        floor.refuse(floor.start("ana", trav, "20.1")),
        floor.refuse(floor.record("ana", trav, "20.1", "Fastener torque", "13.0")),
        floor.refuse(floor.sign("ana", trav, "20.1")),
    ]
    for problem in refused:
        assert problem.rule == "redline_unacknowledged"
        assert problem.detail.startswith(
            "Step 20.1 has a redline to acknowledge first: ECN-0042 (rev C -> D): Supplier"
        )
    assert snapshot(service, "TRV-1002") == before  # nothing changed

    # The station asks the same rule of its cached traveler, and projects the acknowledgement.
    ana = person(service, floor.ids["ana"])
    ctx = Context(ana, None, "DEMO-01", "ASSEMBLY", datetime.now(UTC), -1)
    with pytest.raises(Refusal) as early:
        rules.check(
            trav,
            floor.record("ana", trav, "20.1", "Fastener torque", "13.0"),
            ana,
            None,
            "ASSEMBLY",
        )
    assert early.value.rule == "redline_unacknowledged"
    projected = project(trav, ack(floor, "ana", "TRV-1002", "20.1"), ctx)

    # Acknowledging is an action like any other: by someone who works steps here, proven.
    assert floor.refuse(ack(floor, "ada", "TRV-1002", "20.1")).rule == "role_not_allowed"
    status, body = service.perform(floor.station, new_key(), ack(floor, "ana", "TRV-1002", "20.1"))
    assert (status, "actor_unproven" in body) == (403, True)  # a bare id is a claim, not proof
    assert snapshot(service, "TRV-1002") == before

    acknowledged = floor.do(ack(floor, "ana", "TRV-1002", "20.1"))
    assert acknowledged.message == "Ana Ortiz acknowledged ECN-0042 on step 20.1: now at rev D."
    assert step_of(acknowledged.traveler, "20.1").redlines == ()
    assert step_of(projected, "20.1") == step_of(acknowledged.traveler, "20.1")
    stale = AcknowledgeRedline(actor_id=floor.ids["ana"], traveler="TRV-1002",
                               step_id=step_of(trav, "20.1").id, redline_id=step_of(trav, "20.1").redlines[0].id)  # fmt: skip
    assert floor.refuse(stale).rule == "redline_not_open"  # once is enough

    # Work goes on at the new revision: the value recorded before stays, the new limits apply.
    trav = acknowledged.traveler
    trav = floor.do(floor.record("ana", trav, "20.1", "Fastener torque", "13.8")).traveler
    trav = floor.do(floor.record("ana", trav, "20.1", "Torque stripe applied", "pass")).traveler
    signed = floor.do(floor.sign("ana", trav, "20.1")).traveler
    assert step_of(signed, "20.1").status is StepStatus.COMPLETE

    with service.store.read() as conn:
        made = printable.read(conn, "TRV-1002")
    record = made.record
    assert [(s.number, s.revision) for s in record.traveler.steps] == [
        ("10.1", "C"), ("10.2", "C"), ("20.1", "D"), ("20.2", "C"), ("30.1", "C")
    ]  # fmt: skip
    (red,) = record.revisions
    assert (red.step, red.redline, red.acknowledged_by, red.station) == (
        "20.1", True, "Ana Ortiz", "DEMO-01"
    )  # fmt: skip
    with service.store.read() as conn:
        silent = erp.as_built(conn, "TRV-1001").revisions
    assert [(r.step, r.redline, r.new_revision) for r in silent] == [
        ("10.2", False, "D"), ("20.1", False, "D")
    ]  # fmt: skip
    path = tmp_path / "as-built.pdf"
    path.write_bytes(pdf.render(made))
    text = " ".join(
        subprocess.run(["pdftotext", str(path), "-"], capture_output=True, check=True)
        .stdout.decode()
        .split()
    )
    assert "· rev D ·" in text and "ECN-0042 on step 20.1: rev C -> D" in text
    assert "Redline acknowledged by Ana Ortiz at DEMO-01" in text
    with service.store.read() as conn:
        actions = set(conn.execute(select(t.audit_log.c.action)).scalars())
    assert {"issue_change", "revise_step", "acknowledge_redline"} <= actions
    assert verdict(service).ok


def _step(which: str, **changes: Any) -> dict[str, Any]:
    return {**next(s for s in example()["steps"] if s["number"] == which), **changes}


BAD: dict[str, tuple[dict[str, Any], int, str]] = {
    "unknown routing": (
        example(work_order="WO-9999"), 404,
        "ECN-0042: there is no work order WO-9999, so no routing to revise; nothing changed.",
    ),
    "unknown step": (
        example(steps=[_step("10.2"), _step("20.1", number="20.9")]), 422,
        "ECN-0042: the routing of WO-5001 has no step 20.9; nothing changed.",
    ),
    "a change keeping its revision": (
        example(steps=[_step("10.2", revision="C")]), 422,
        "ECN-0042: step 10.2 of TRV-1001 changes but keeps revision C: a changed step needs a "
        "new revision; nothing changed.",
    ),
    "a text too long for its column": (
        example(steps=[_step("10.2", title="T" * 201)]), 422,
        "ECN-0042: steps[0].title is 201 characters long, at most 200 fit; nothing changed.",
    ),
    "a step twice": (
        example(steps=[_step("10.2"), _step("10.2")]), 422,
        "ECN-0042: step 10.2 is given twice; nothing changed.",
    ),
    "an item with a value dropped": (
        example(steps=[_step("20.1", items=[])]), 422,
        "ECN-0042: step 20.1 of TRV-1002: item 'Torque wrench' has values or an NCR on record "
        "and cannot be removed; nothing changed.",
    ),
}  # fmt: skip


def test_bad_revision_documents_are_refused_whole_and_change_nothing(
    service: ExecutionService,
) -> None:
    floor = ServiceFloor(service)
    floor.do(floor.start("ana", service.traveler("TRV-1002"), "20.1"))
    floor.do(floor.record("ana", service.traveler("TRV-1002"), "20.1", "Torque wrench", "TL-0001"))
    before = [snapshot(service, n) for n in ("TRV-1001", "TRV-1002")]
    for case, (doc, status, detail) in BAD.items():
        with pytest.raises(Refusal) as refused:
            issue(service, doc)
        assert (refused.value.status, refused.value.detail) == (status, detail), case
    # Not even a change number is used up: the good document is issued afterwards.
    assert [snapshot(service, n) for n in ("TRV-1001", "TRV-1002")] == before
    assert count(service, t.engineering_changes) == count(service, t.step_revisions) == 0
    issue(service, example())
    with pytest.raises(Refusal) as clash:  # the same number, other content
        issue(service, example(reason="Another reason entirely"))
    assert clash.value.rule == "change_conflict"
    assert "ECN-0042 was already issued at" in clash.value.detail
    assert "with other content: nothing changed." in clash.value.detail
    for doc, said in (
        ({k: v for k, v in example().items() if k != "change"}, "change"),
        (example(change="ECN 42"), "change"),
        (example(reason="  "), "reason"),
        (example(steps=[]), "steps"),
        (example(colour="red"), "colour"),
    ):
        with pytest.raises(ValidationError) as invalid:
            revise.RevisionDocument.model_validate(doc)
        assert invalid.value.errors()[0]["loc"][0] == said


def test_a_revised_step_edited_in_place_is_named_by_verify(service: ExecutionService) -> None:
    issue(service, example())
    with service.store.begin() as conn:
        conn.execute(
            update(t.steps)
            .where(t.steps.c.instructions.like("%chilled%"))
            .values(instructions="Press bushings in, any way.")
        )
    broken = verdict(service)
    assert not broken.ok and broken.about_rows
    assert "its instructions is not what step revision" in broken.reason
    assert "changed in place since" in broken.reason


def test_the_command_issues_a_change_once_and_refuses_a_bad_file_in_one_line(
    plant: Plant, service: ExecutionService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--database-url", plant.database_url, "--secret-file", str(plant.secret_file)]
    bad = tmp_path / "bad.json"
    for text, said in (
        ("{not json", "bad.json: Invalid JSON"),
        (
            json.dumps({k: v for k, v in example().items() if k != "change"}),
            "change: Field required",
        ),
        (json.dumps(example(work_order="WO-9999")), "there is no work order WO-9999"),
    ):
        bad.write_text(text)
        assert cli.main(["revise", str(bad), *where]) in (1, 2)
        err = capsys.readouterr().err
        assert err.startswith("error: ") and said in err and "nothing changed" in err, err
        assert err.count("\n") == 1
    assert count(service, t.engineering_changes) == 0
    assert cli.main(["revise", str(EXAMPLE), *where]) == 0
    assert capsys.readouterr().out.startswith("ECN-0042 issued: 5 steps at the new revision")
    assert cli.main(["revise", str(EXAMPLE), *where]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert cli.main(["audit", "verify", *where]) == 0


def test_the_route_needs_the_import_scope_and_is_idempotent(
    live_server: LiveServer, service: ExecutionService
) -> None:
    erp_key = integration.add_account(
        service.store, service.secret, "ERP", (Scope.IMPORT,), datetime.now(UTC)
    )
    reader = integration.add_account(
        service.store, service.secret, "BI", (Scope.READ,), datetime.now(UTC)
    )
    with httpx.Client(base_url=live_server.url, timeout=30) as http:

        def post(key: str, body: dict[str, Any]) -> httpx.Response:
            return http.post(
                "/api/v1/revise", json=body, headers={"Authorization": f"Bearer {key}"}
            )

        assert post(reader, example()).json()["rule"] == "scope_missing"
        bad = post(erp_key, example(steps=[_step("10.2", number="10.9")]))
        assert bad.status_code == 422 and bad.json()["rule"] == "revision_invalid"
        assert post(erp_key, {"reason": "no number"}).status_code == 422
        first = post(erp_key, example())
        assert first.status_code == 200 and first.json()["issued"] is True
        again = post(erp_key, example()).json()
        assert again["issued"] is False and again["issued_at"] == first.json()["issued_at"]
    with service.store.read() as conn:
        issued_by = conn.execute(select(t.engineering_changes.c.issued_by)).scalar_one()
        assert conn.execute(select(func.count()).select_from(t.step_revisions)).scalar() == 5
    assert issued_by == "ERP"


def test_a_drawing_superseded_by_a_change_is_a_redline_on_a_step_in_work(
    service: ExecutionService,
) -> None:
    """A step's documents are part of it: moving 10.1 to drawing rev D (a new revision of the
    step) redlines it where it is in work and shows the drawing in what changed."""
    from kiosk.server import demo_drawings, documents

    floor = ServiceFloor(service)
    floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.1"))
    step = step_of(service.traveler("TRV-1001"), "10.1")
    assert [(d.number, d.revision) for d in step.documents] == [("DWG-8810-011", "C")]
    spec = erp.StepSpec.model_validate(
        {"number": "10.1", "title": step.title, "instructions": step.instructions,
         "revision": "D", "documents": [{"number": "DWG-8810-011", "revision": "D"}],
         "items": [{"label": i.label, "kind": i.kind.value} for i in step.items]}
    )  # fmt: skip
    change = {"change": "ECN-0050", "reason": "Lug holes moved", "work_order": "WO-5001",
              "steps": [spec.model_dump(mode="json", exclude_none=True)]}  # fmt: skip
    before = record_count(service)
    with pytest.raises(Refusal, match="no revision D of document DWG-8810-011"):
        issue(service, change)  # the drawing is not in the plant yet: nothing changed
    assert record_count(service) == before
    with service.store.begin() as conn:
        new = documents.DocumentSpec(number="DWG-8810-011", revision="D", title="Bracket")
        documents.add(conn, service.files, new, demo_drawings.bracket_png("D"), actor=None,
                      now=datetime.now(UTC))  # fmt: skip
    assert issue(service, change).counts["redlines"] == 1
    (red,) = step_of(service.traveler("TRV-1001"), "10.1").redlines
    assert any("DWG-8810-011" in line and "D" in line for line in red.changes), red.changes
    assert verdict(service).ok
