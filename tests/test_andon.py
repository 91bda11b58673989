"""Help and stop requests (andon), as the floor notices them: an operator calls a supervisor to a
step with a reason; the request is on the traveler, the board and the admin console at once; a
supervisor acknowledges and resolves it; "stop" holds the traveler (and clocks the step's crew
off) until a supervisor, and only a supervisor, releases it. Every step is an audited action, and
what is refused changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from kiosk.server import board, erp, fleet
from kiosk.server import schema as t
from kiosk.server.people import new_person
from kiosk.server.service import ExecutionService
from kiosk.wire import AcknowledgeAndon, Credentials, RaiseAndon, ReleaseHold, ResolveAndon
from tests.helpers import ServiceFloor, creds, snapshot, step_of


def raise_andon(floor: ServiceFloor, who: str, kind: str, step: str, reason: str) -> RaiseAndon:
    trav = floor.service.traveler("TRV-1001")
    return RaiseAndon.model_validate(
        {"actor_id": floor.ids[who], "traveler": "TRV-1001",
         "step_id": step_of(trav, step).id, "andon": kind, "reason": reason}
    )  # fmt: skip


def audit_actions(service: ExecutionService) -> list[str]:
    with service.store.read() as conn:
        return list(
            conn.execute(select(t.audit_log.c.action).order_by(t.audit_log.c.seq)).scalars()
        )


def test_help_is_raised_seen_everywhere_acknowledged_and_resolved(
    service: ExecutionService,
) -> None:
    floor = ServiceFloor(service)
    floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.1"))
    raised = floor.do(raise_andon(floor, "ana", "help", "10.1", "Press will not close"))
    assert raised.message == "Help requested on TRV-1001 step 10.1: a supervisor is called."
    (request,) = raised.traveler.andon
    assert (request.kind, request.step, request.raised_by, request.acknowledged_by) == (
        "help", "10.1", "Ana Ortiz", None
    )  # fmt: skip
    assert raised.traveler.hold is None  # help stops nothing
    with service.store.read() as conn:
        assert [r.reason for r in board.read(conn, datetime.now(UTC)).andon] == [
            "Press will not close"
        ]
        assert [r.id for r in fleet.overview(conn, datetime.now(UTC)).andon] == [request.id]

    seen = floor.do(AcknowledgeAndon(actor_id=floor.ids["sam"], traveler="TRV-1001",
                                     request_id=request.id))  # fmt: skip
    assert seen.message == "Sam Patel acknowledged the help request on step 10.1."
    again = floor.refuse(AcknowledgeAndon(actor_id=floor.ids["sam"], traveler="TRV-1001",
                                          request_id=request.id))  # fmt: skip
    assert (again.rule, again.detail) == (
        "andon_acknowledged", "The help request on step 10.1 was acknowledged by Sam Patel."
    )  # fmt: skip
    done = floor.do(ResolveAndon(actor_id=floor.ids["sam"], traveler="TRV-1001",
                                 request_id=request.id, resolution="Reset the press guard"))  # fmt: skip
    assert done.traveler.andon == ()
    with service.store.read() as conn:
        (kept,) = erp.as_built(conn, "TRV-1001").andon
    assert (kept.acknowledged_by, kept.resolved_by, kept.resolution) == (
        "Sam Patel", "Sam Patel", "Reset the press guard"
    )  # fmt: skip
    recorded = [a for a in audit_actions(service) if a != "badge_in"]
    assert recorded[-3:] == ["raise_andon", "acknowledge_andon", "resolve_andon"]


def test_an_operator_cannot_answer_a_request_and_bad_requests_change_nothing(
    service: ExecutionService,
) -> None:
    floor = ServiceFloor(service)
    request = floor.do(raise_andon(floor, "ana", "help", "10.1", "Need a hand")).traveler.andon[0]
    before = snapshot(service, "TRV-1001")
    answered = floor.refuse(AcknowledgeAndon(actor_id=floor.ids["ben"], traveler="TRV-1001",
                                             request_id=request.id))  # fmt: skip
    assert answered.detail == "Ben Okafor may not answer help and stop requests: needs supervisor."
    twice = floor.refuse(raise_andon(floor, "ben", "help", "10.1", "Me too"))
    assert (twice.rule, twice.detail) == (
        "andon_open", "A help request on step 10.1 is already open (raised by Ana Ortiz)."
    )  # fmt: skip
    unknown = floor.refuse(ResolveAndon(actor_id=floor.ids["sam"], traveler="TRV-1001",
                                        request_id=9999, resolution="Nothing"))  # fmt: skip
    assert unknown.detail == "TRV-1001 has no open help or stop request 9999."
    with pytest.raises(ValueError, match="at least 3 characters"):
        raise_andon(floor, "ana", "stop", "10.1", "no")  # the shortest reason: 3 characters
    raise_andon(floor, "ana", "stop", "10.1", "abc")
    with pytest.raises(ValueError, match="'help' or 'stop'"):
        raise_andon(floor, "ana", "pause", "10.1", "Not a kind")
    assert snapshot(service, "TRV-1001") == before


def add_quality_only_person(service: ExecutionService) -> Credentials:
    with service.store.begin() as conn:
        conn.execute(
            insert(t.users).values(
                **new_person(service.secret, "Quinn Reyes", "40001", "4444", "quality", "*")
            )
        )
    return Credentials(badge="40001", pin="4444")


def test_a_stop_holds_the_traveler_until_a_supervisor_releases_it(
    service: ExecutionService,
) -> None:
    floor = ServiceFloor(service)
    quinn = add_quality_only_person(service)
    floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.1"))
    stopped = floor.do(raise_andon(floor, "ana", "stop", "10.1", "Coolant leak at the press"))
    assert stopped.message == (
        "Stop on TRV-1001 step 10.1: on hold until a supervisor releases it."
    )
    hold = stopped.traveler.hold
    assert (
        hold is not None
        and hold.stop
        and hold.reason == "Stop requested: Coolant leak at the press"
    )
    assert stopped.traveler.labour == ()  # the line stopped: Ana is clocked off
    with service.store.read() as conn:
        assert erp.as_built(conn, "TRV-1001").labour[-1].end_reason == "stopped"
        held = board.read(conn, datetime.now(UTC)).holds
        assert sorted((h.traveler, h.stop) for h in held) == [
            ("TRV-1001", True),
            ("TRV-1003", False),
        ]
    assert floor.refuse(floor.start("ana", stopped.traveler, "10.1")).rule == "traveler_on_hold"
    assert floor.refuse(raise_andon(floor, "ben", "stop", "10.1", "Again")).rule == "andon_open"

    before = snapshot(service, "TRV-1001")
    by_quality = floor.refuse(
        ReleaseHold(actor_id=floor.ids["sam"], traveler="TRV-1001", credentials=quinn)
    )
    assert by_quality.detail == "Quinn Reyes may not release a stop: needs supervisor."
    assert snapshot(service, "TRV-1001") == before
    released = floor.do(
        ReleaseHold(actor_id=floor.ids["sam"], traveler="TRV-1001", credentials=creds("sam"))
    )
    assert released.traveler.hold is None
    assert released.traveler.andon[0].kind == "stop"  # still open: resolved separately
