"""The station and the server answer every action with the same rule (kiosk.rules.check).

Hypothesis plays random sequences of actions by random people on a fresh demo plant. Before each,
the station's verdict is taken on the traveler as the station would hold it (rules.check, then the
projection it shows); then the server is asked for real. Both must refuse with the same rule, or
both accept, and an accepted action must look the same on the station as on the server. Only what
the station cannot know (the tool crib's calibration dates, stores' lots) may be refused by the
server alone.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk import rules
from kiosk.client.projection import Context, project
from kiosk.server.app import ServerConfig, open_service
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    AcknowledgeAndon,
    Action,
    ApproveDisposition,
    CorrectValue,
    Disposition,
    DispositionNcr,
    Meaning,
    PauseStep,
    Person,
    PlaceHold,
    Problem,
    RaiseAndon,
    RaiseNcr,
    RecordValue,
    ReleaseHold,
    ResolveAndon,
    SignStep,
    StartStep,
    Traveler,
    VoidSignature,
)
from tests.helpers import PEOPLE, ServiceFloor, creds

# The stores' lots are the server's to know: a lot of another part (wrong_part) too.
SERVER_ONLY = {"tool_unknown", "tool_out_of_calibration", "material_unknown", "wrong_part"}
VALUES = ["LOT-A100", "ack", "TL-0003", "TL-0002", "12.700", "12.9", "TL-0001", "12.5", "pass",
          "fail", "0.02", "notes", "SN-7741-0001", "x", "", "LOT-C300", "SN-WRONG-1", "12.710",
          "12.7100000000000001"]  # fmt: skip
WHO = ["ana", "ben", "ivy", "sam", "ada", "raj"]
# Why and what to do, for dispositions: none, a rationale, instructions, both.
SAID = [{}, {"rationale": "Fit per SRM"}, {"instructions": "Redo per WI-7"},
        {"rationale": "Fit per SRM", "instructions": "Redo per WI-7"}]  # fmt: skip

# One step of the scenario: (kind, who, a step or item index, a value index, a signer).
Move = tuple[str, str, int, int, str]
moves = st.tuples(
    st.sampled_from(["start", "pause", "record", "sign", "verify", "ncr", "dispo", "hold", "release",
                     "help", "stop", "ack", "resolve", "approve", "correct", "void"]),
    st.sampled_from(WHO),
    st.integers(0, 5),
    st.integers(0, len(VALUES) - 1),
    st.sampled_from(WHO),
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("agree")
    config = ServerConfig(f"sqlite:///{folder / 'plant.db'}", folder / "secret", demo=True)
    open_service(config).store.dispose()
    yield folder / "plant.db", folder / "secret"


def fresh(template: tuple[Path, Path], folder: Path) -> ExecutionService:
    target = folder / f"plant-{datetime.now(UTC).timestamp()}.db"
    with sqlite3.connect(template[0]) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return open_service(ServerConfig(f"sqlite:///{target}", template[1]))


def person(service: ExecutionService, who: str) -> Person:
    station = service.authenticate(service.local_station_token("AGREE-ID", "ASSEMBLY"))
    return service.verify_credentials(station, creds(who))


def action_for(move: Move, trav: Traveler, ids: dict[str, int]) -> tuple[Action, str | None]:
    """The wire action a station would send for `move`, and who signs it (if anyone)."""
    kind, who, at, value, signer = move
    steps = trav.steps
    step = steps[at % len(steps)]
    items = [i for s in steps for i in s.items]
    item = items[(at * 3 + value) % len(items)]
    base = {"actor_id": ids[who], "traveler": trav.number}
    ncr = next((n.number for n in trav.ncrs if n.status == "open"), "NCR-9999")
    waiting = next((n.number for n in trav.ncrs if n.status == "awaiting_approval"), ncr)
    request = trav.andon[value % len(trav.andon)].id if trav.andon else 9999
    built: dict[str, tuple[Action, str | None]] = {
        "start": (StartStep(**base, step_id=step.id), None),
        "pause": (PauseStep(**base, step_id=step.id), None),
        "record": (RecordValue(**base, item_id=item.id, value=VALUES[value] or " "), None),
        "sign": (SignStep(**base, step_id=step.id, meaning=Meaning.PERFORMED), signer),
        "verify": (SignStep(**base, step_id=step.id, meaning=Meaning.VERIFIED), signer),
        "ncr": (RaiseNcr(**base, item_id=item.id, description="Found at random", defect_code="DIM"), None),
        "dispo": (DispositionNcr(**base, ncr=ncr, disposition=list(Disposition)[value % 5],
                                 **SAID[at % 4]), signer),
        "approve": (ApproveDisposition(**base, ncr=waiting), signer),
        "hold": (PlaceHold(**base, reason="Random hold"), None),
        "release": (ReleaseHold(**base), signer),
        "help": (RaiseAndon(**base, step_id=step.id, andon="help", reason="Need a hand"), None),
        "stop": (RaiseAndon(**base, step_id=step.id, andon="stop", reason="Coolant leak"), None),
        "ack": (AcknowledgeAndon(**base, request_id=request), None),
        "resolve": (ResolveAndon(**base, request_id=request, resolution="Fixed"), None),
        "correct": (CorrectValue(**base, item_id=item.id, corrects=item.latest.value if item.latest else "-",
                                 value=VALUES[value] or " ", reason="Typo" if at % 3 else ""), None),
        "void": (VoidSignature(**base, step_id=step.id, meaning=list(Meaning)[value % 2],
                               reason="Re-inspect" if at % 3 else ""), signer),
    }  # fmt: skip
    return built[kind]


def station_verdict(
    trav: Traveler, action: Action, actor: Person, signer: Person | None
) -> tuple[str | None, Traveler | None]:
    try:
        ctx = Context(actor, signer, "DEMO-01", "ASSEMBLY", datetime.now(UTC), -1)
        return None, project(trav, action, ctx)
    except rules.Refusal as refusal:
        return refusal.rule, None


def observed(trav: Traveler) -> tuple[object, ...]:
    """What an operator sees of a traveler: every step's status and values, the hold, NCRs."""
    return (
        trav.status,
        tuple(
            (s.status, tuple((i.latest.value, i.latest.passed) if i.latest else None for i in s.items),
             len(s.signatures))
            for s in trav.steps
        ),
        trav.hold is not None,
        tuple(n.status for n in trav.ncrs),
        sorted((e.user_id, e.step_id) for e in trav.labour),
        tuple((r.kind, r.step, r.acknowledged_by) for r in trav.andon),
        trav.hold is not None and trav.hold.stop,
    )  # fmt: skip


@pytest.mark.slow  # 25 plants, each driven through a random plan: about a minute
@settings(
    max_examples=int(os.environ.get("KIOSK_AGREE_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=st.lists(moves, min_size=5, max_size=25), number=st.sampled_from(["TRV-1001", "TRV-1002", "TRV-1003"]))
def test_the_station_and_the_server_give_every_action_the_same_verdict(
    template: tuple[Path, Path], tmp_path: Path, plan: list[Move], number: str
) -> None:
    service = fresh(template, tmp_path)
    floor = ServiceFloor(service)
    people = {who: person(service, who) for who in PEOPLE if who != "olu"}
    for move in plan:
        trav = service.traveler(number)
        action, signer = action_for(move, trav, floor.ids)
        if signer is not None:
            action = action.model_copy(update={"credentials": creds(signer)})
        station_rule, projected = station_verdict(
            trav, action, people[move[1]], None if signer is None else people[signer]
        )
        status, body = service.perform(floor.station, f"agree-{len(plan)}-{id(move)}-{datetime.now(UTC).timestamp()}", floor.proven(action))
        server_rule = None if status == 200 else Problem.model_validate_json(body).rule
        if server_rule in SERVER_ONLY:
            assert station_rule is None, (move, station_rule, server_rule)
            continue
        assert station_rule == server_rule, (move, station_rule, server_rule, body)
        if projected is not None:
            assert observed(projected) == observed(service.traveler(number)), move
    service.store.dispose()
