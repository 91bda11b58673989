"""Who may do what: every mutating action × every role and state, each cell asserted over the real
socket on a fresh plant, so an unexpected allow anywhere fails.

Each cell prepares the action's precondition as Ana, then the subject acts at DEMO-01 with their
own session (and, for a signature, their own badge and PIN).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, update

from kiosk.rules import Refusal
from kiosk.server import demo
from kiosk.server import schema as t
from kiosk.server.people import new_person
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    Credentials,
    Disposition,
    DispositionNcr,
    Meaning,
    PauseStep,
    PlaceHold,
    RaiseNcr,
    RecordValue,
    ReleaseHold,
    SignStep,
    StartStep,
    UnlockUser,
    WireModel,
)
from tests.conftest import LiveServer
from tests.helpers import ServiceFloor, new_key, person_ids, step_of

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)

# Demo people, plus one person for each role the demo combines (Sam is supervisor and quality).
EXTRA = [
    ("Sue Visor", "30002", "3434", "supervisor", "ASSEMBLY"),
    ("Quinn Ality", "40001", "4444", "quality", "*"),
    ("Ula Nqual", "10009", "1919", "operator", "ASSEMBLY"),
]
BADGES = {
    "operator": ("10001", "1111"),
    "inspector": ("20001", "2222"),
    "supervisor": ("30002", "3434"),
    "quality": ("40001", "4444"),
    "admin": ("90001", "9999"),
    "locked": ("10002", "1212"),  # Ben, locked after badging in
    "unqualified": ("10009", "1919"),  # Ula, ASSEMBLY taken off her after badging in
    "revoked station": ("10001", "1111"),
    "no token": ("10001", "1111"),
}
OK = (200, None)
ROLE = (403, "role_not_allowed")
ACTIONS = [
    "start_step", "pause_step", "record_value", "sign_performed", "sign_verified",
    "raise_ncr", "disposition_ncr", "place_hold", "release_hold", "unlock_user",
]  # fmt: skip
ALLOWED: dict[str, set[str]] = {
    "operator": {"start_step", "pause_step", "record_value", "sign_performed", "raise_ncr"},
    "inspector": {"start_step", "pause_step", "record_value", "sign_performed", "sign_verified",
                  "raise_ncr"},
    "supervisor": {"start_step", "pause_step", "record_value", "sign_performed", "raise_ncr",
                   "place_hold", "release_hold", "unlock_user"},
    "quality": {"sign_verified", "raise_ncr", "disposition_ncr", "place_hold", "release_hold"},
    "admin": {"unlock_user"},
}  # fmt: skip


def expected(subject: str, action: str) -> tuple[int, str | None]:
    if subject in ("revoked station", "no token"):
        return 401, "station_not_enrolled"
    if subject == "locked":
        return 403, "person_locked"
    if subject == "unqualified":
        return ROLE if action == "unlock_user" else (403, "not_qualified")
    return OK if action in ALLOWED[subject] else ROLE


CELLS = [(s, a) for s in BADGES for a in ACTIONS]


def add_people(service: ExecutionService) -> None:
    with service.store.begin() as conn:
        for person in EXTRA:
            conn.execute(insert(t.users).values(**new_person(service.secret, *person)))


def lock(service: ExecutionService, badge: str) -> None:
    station = service.authenticate(service.local_station_token("PIN-PAD", "ASSEMBLY"))
    for _ in range(5):
        with pytest.raises(Refusal):
            service.verify_credentials(station, Credentials(badge=badge, pin="0000"))


def prepare(floor: ServiceFloor, action: str) -> dict[str, Any]:
    """The state in which only the subject's rights decide; what the action will refer to."""
    svc = floor.service
    trav = svc.traveler("TRV-1001")
    step = step_of(trav, "10.1")
    if action in ("pause_step", "record_value", "sign_performed"):
        trav = floor.do(floor.start("ana", trav, "10.1")).traveler
    if action == "sign_performed":
        for item, value in zip(step.items, ["LOT-A100", "ack"], strict=True):
            floor.do(floor.record("ana", trav, "10.1", item.label, value))
    if action == "sign_verified":
        floor.work("ana", "TRV-1002", "20.1")
        floor.work("ana", "TRV-1002", "20.2")
        return {"traveler": "TRV-1002", "step": step_of(svc.traveler("TRV-1002"), "20.2")}
    if action == "disposition_ncr":
        raised = floor.do(
            RaiseNcr(actor_id=floor.ids["ana"], traveler="TRV-1001", step_id=step.id,
                     description="Burr on lug", defect_code="VIS-01")  # fmt: skip
        )
        return {"ncr": raised.traveler.ncrs[0].number}
    if action == "unlock_user":
        lock(svc, "10003")
        return {"user": floor.ids["olu"]}
    return {"traveler": "TRV-1001", "step": step}


def body(action: str, actor: int, session: str, creds: Credentials, ref: dict[str, Any]) -> WireModel:
    mine = {"actor_id": actor, "session": session}
    step: Any = ref.get("step")
    build: dict[str, Callable[[], WireModel]] = {
        "start_step": lambda: StartStep(**mine, traveler="TRV-1001", step_id=step.id),
        "pause_step": lambda: PauseStep(**mine, traveler="TRV-1001", step_id=step.id),
        "record_value": lambda: RecordValue(
            **mine, traveler="TRV-1001", item_id=step.items[0].id, value="LOT-A100"
        ),
        "sign_performed": lambda: SignStep(
            **mine, traveler="TRV-1001", step_id=step.id, meaning=Meaning.PERFORMED,
            credentials=creds,
        ),
        "sign_verified": lambda: SignStep(
            **mine, traveler="TRV-1002", step_id=step.id, meaning=Meaning.VERIFIED,
            credentials=creds,
        ),
        "raise_ncr": lambda: RaiseNcr(
            **mine, traveler="TRV-1001", step_id=step.id, description="Dent", defect_code="DMG-1"
        ),
        "disposition_ncr": lambda: DispositionNcr(
            **mine, traveler="TRV-1001", ncr=ref.get("ncr", ""), disposition=Disposition.USE_AS_IS,
            rationale="Within the drawing's allowable", credentials=creds,
        ),
        "place_hold": lambda: PlaceHold(**mine, traveler="TRV-1001", reason="Audit sample"),
        "release_hold": lambda: ReleaseHold(**mine, traveler="TRV-1003", credentials=creds),
        "unlock_user": lambda: UnlockUser(user_id=ref.get("user", 1), credentials=creds),
    }  # fmt: skip
    return build[action]()


def session_for(service: ExecutionService, subject: str, badge: str) -> str:
    station = service.authenticate(service.local_station_token(demo.DEMO_STATION, "ASSEMBLY"))
    session = service.login(station, badge).session
    if subject == "locked":
        lock(service, badge)
    if subject == "unqualified":
        with service.store.begin() as conn:
            conn.execute(
                update(t.users).where(t.users.c.name == "Ula Nqual").values(work_centers="PAINT")
            )
    return session


@pytest.mark.parametrize(("subject", "action"), CELLS, ids=[f"{s}-{a}" for s, a in CELLS])
def test_each_role_may_do_exactly_what_the_rules_say(
    live_server: LiveServer, subject: str, action: str
) -> None:
    svc = live_server.service
    add_people(svc)
    floor = ServiceFloor(svc)
    ref = prepare(floor, action)
    badge, pin = BADGES[subject]
    with svc.store.begin() as conn:
        actor = conn.execute(
            select(t.users.c.id).where(t.users.c.badge_hmac == svc.secret.badge_hash(badge))
        ).scalar_one()
    session = session_for(svc, subject, badge)
    token = svc.local_station_token(demo.DEMO_STATION, "ASSEMBLY")  # re-keyed: sessions stay
    if subject == "revoked station":
        svc.revoke_station(demo.DEMO_STATION)
    headers = {"Idempotency-Key": new_key()}
    if subject != "no token":
        headers["Authorization"] = f"Bearer {token}"
    sent = body(action, actor, session, Credentials(badge=badge, pin=pin), ref)
    path = "/api/v1/users/unlock" if action == "unlock_user" else "/api/v1/actions"
    payload = sent.model_dump(mode="json") if action == "unlock_user" else {"action": sent.model_dump(mode="json")}
    answer = httpx.post(live_server.url + path, json=payload, headers=headers, timeout=10)
    got = (answer.status_code, None if answer.status_code == 200 else answer.json()["rule"])
    assert got == expected(subject, action), answer.text
    assert person_ids(svc)  # the plant is still readable after the cell
