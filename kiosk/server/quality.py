"""Quality records on the server: the plant's quality settings, dispositions' effects and people's
certifications (the rules themselves are in kiosk.rules)."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Connection, insert, select, update

from kiosk import rules
from kiosk.server import audit, records
from kiosk.server import schema as t
from kiosk.wire import Certification, Disposition, Role, Traveler

SETTINGS_KEY = "quality"


DefectCode = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9]{1,7}$")]
"""A defect code as NCRs carry it: two to eight capitals and digits (a sub-code adds -NN)."""


# A key that is no code is refused, and the schema says so (patternProperties alone allows any).
PlantCodes = Annotated[
    dict[DefectCode, Annotated[str, StringConstraints(min_length=1, max_length=60)]],
    Field(min_length=1, max_length=100, json_schema_extra={"additionalProperties": False}),
]


class QualitySettings(BaseModel):
    """Plant quality settings, set by the import file's `quality` section."""

    model_config = ConfigDict(extra="forbid")
    second_approver: Role = rules.SECOND_APPROVER
    """Who gives the second approval a use-as-is or repair disposition needs."""
    deviation_second_approver: Role | None = None
    """Who gives a deviation its second approval after quality's; none: quality's alone."""
    defect_codes: PlantCodes | None = None
    """The plant's own defect codes, code -> words ({"DIM": "dimension", …}); none: the
    product's list (rules.DEFECT_CODES). Stations get it with their station info."""


def settings(conn: Connection) -> QualitySettings:
    raw = conn.execute(select(t.meta.c.value).where(t.meta.c.key == SETTINGS_KEY)).scalar()
    return QualitySettings() if raw is None else QualitySettings.model_validate_json(raw)


def save_settings(conn: Connection, new: QualitySettings) -> None:
    body = new.model_dump_json()
    if conn.execute(select(t.meta.c.key).where(t.meta.c.key == SETTINGS_KEY)).scalar() is None:
        conn.execute(insert(t.meta).values(key=SETTINGS_KEY, value=body))
    else:
        conn.execute(update(t.meta).where(t.meta.c.key == SETTINGS_KEY).values(value=body))
    audit.append(
        conn, action="quality_settings", entity="plant:quality", actor=None, station=None,
        new=json.loads(body),
    )  # fmt: skip


def approval_role(conn: Connection, disposition: Disposition) -> str | None:
    """The role the disposition's second approval needs, fixed on the NCR when it is signed."""
    if disposition not in rules.SECOND_APPROVAL:
        return None
    return settings(conn).second_approver.value


def disposition_message(trav: Traveler, ncr: str, disposition: Disposition) -> str:
    words = disposition.value.replace("_", " ")
    if disposition in rules.ENDING:
        ended = rules.ENDED_WORDS[rules.ENDING[disposition]]
        return f"{ncr} dispositioned {words}: {trav.number} is {ended}; nothing more is recorded."
    if disposition in rules.SECOND_APPROVAL:
        return (
            f"{ncr} dispositioned {words}; it needs a second approval before the hold is released."
        )
    return f"{ncr} dispositioned {words}."


# --- certifications ------------------------------------------------------------------------------


def certify(
    conn: Connection, user_id: int, operation: str, expires: date, actor: str | None
) -> None:
    """Grant or renew a certification; the row and every renewal are in the audit chain."""
    found = conn.execute(
        select(t.certifications.c.id).where(
            t.certifications.c.user_id == user_id, t.certifications.c.operation == operation
        )
    ).scalar()
    values: dict[str, Any] = {"user_id": user_id, "operation": operation, "expires": expires}
    if found is None:
        row_id = conn.execute(
            insert(t.certifications).values(**values).returning(t.certifications.c.id)
        ).scalar_one()
        action = "certify"
    else:
        row_id = int(found)
        conn.execute(
            update(t.certifications).where(t.certifications.c.id == row_id).values(expires=expires)
        )
        action, values = "renew_certification", {"expires": expires}
    audit.append(
        conn, action=action, entity=f"certification:{row_id}", actor=actor, station=None,
        new=records.state(values),
    )  # fmt: skip


EXPIRING_WITHIN_DAYS = 30
"""How far ahead supervisors are shown certifications running out (the board, the CLI's default)."""


class Expiring(BaseModel):
    person: str
    operation: str
    expires: date
    expired: bool


def expiring(conn: Connection, today: date, days: int) -> list[Expiring]:
    """Certifications of active people expired or expiring within `days`, soonest first."""
    rows = conn.execute(
        select(t.users.c.name, t.certifications.c.operation, t.certifications.c.expires)
        .join(t.users, t.users.c.id == t.certifications.c.user_id)
        .where(t.users.c.active.is_(True))
        .order_by(t.certifications.c.expires, t.users.c.name)
    ).all()
    return [
        Expiring(person=r.name, operation=r.operation, expires=r.expires, expired=r.expires < today)
        for r in rows
        if rules.expiring(Certification(operation=r.operation, expires=r.expires), today, days)
    ]
