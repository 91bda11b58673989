"""Photos and files as evidence: one-use upload links, the upload, and the check of kept files.

A person signed in at a station asks for a link for one photo or file item (on their person
session, TRUST-MODEL.md); the station shows it as a QR code; a phone on the plant network opens
it and uploads. The phone holds no credentials: the link alone stands for "this person, this
item, for the next LINK_MINUTES minutes, once". Its secret is random, kept here only as its
SHA-256, and cut from the server's logs (kiosk.redact). The link also ends with the session it
was issued on (sign-out, idle lock, a new badge): it never outlives the person's presence.

The upload becomes a recorded value whose text is the file's SHA-256, size and type
(wire.EvidenceFile), in the uploader's name, audit-chained like any value; the file itself goes
to the plant's file store. `file_findings` is what `kiosk audit verify` adds: every kept photo
or file must still be in the store with the hash its value names.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, select, update

from kiosk import rules
from kiosk.rules import Refusal
from kiosk.server import audit, domain, people, records, views
from kiosk.server import schema as t
from kiosk.server.files import FileStore
from kiosk.server.security import token_digest
from kiosk.wire import EvidenceFile, ItemKind, RequestUpload, UploadLink, UploadStatus

LINK_MINUTES = 5
"""How long an upload link is good for: time to take the photo, short enough that a link seen
over someone's shoulder is soon worth nothing."""
UPLOAD_PATH = "/upload/"


def _refused(rule: str, detail: str, status: int = 410) -> Refusal:
    return Refusal(rule, f"{detail} Ask for a new upload code at the station.", status)


# --- issuing a link ----------------------------------------------------------------------------------


def issue(
    conn: Connection,
    station: domain.StationRef,
    body: RequestUpload,
    base_url: str,
    now: datetime,
) -> UploadLink:
    """A new one-use link for the item, for the person the session proves (online only)."""
    if body.session is None or body.actor_proof is not None:
        raise Refusal(
            "session_needed",
            "An upload link is issued only to a person signed in online at this station.",
            403,
        )
    actor = people._session_person(conn, station, body.session, body.actor_id, now)
    if isinstance(actor, Refusal):
        raise actor
    trav = views.for_action(conn, views.traveler_row(conn, body.traveler), cast(Any, body))
    item = rules.ensure_can_attach(trav, body.item_id, actor, station.work_center)
    secret = secrets.token_urlsafe(16)  # 128 bits: short, so the QR code fits at 80x24
    expires = now + timedelta(minutes=LINK_MINUTES)
    row = {
        "token_sha256": token_digest(secret),
        "session_sha256": token_digest(body.session),
        "item_id": item.id,
        "user_id": actor.id,
        "station_id": station.id,
        "issued_at": now,
        "expires_at": expires,
    }
    link_id = int(
        conn.execute(
            t.upload_links.insert().values(**row).returning(t.upload_links.c.id)
        ).scalar_one()
    )
    audit.append(
        conn,
        action="issue_upload_link",
        entity=f"upload_link:{link_id}",
        actor=actor.name,
        station=station.name,
        new={"traveler": trav.number, "item": item.id, "expires_at": audit.micros(expires)},
        now=now,
    )
    url = f"{base_url.rstrip('/')}{UPLOAD_PATH}{secret}"
    return UploadLink(id=link_id, url=url, item_id=item.id, expires_at=expires)


# --- the upload ----------------------------------------------------------------------------------


def link_of(conn: Connection, secret: str, now: datetime, *, lock: bool = False) -> Any:
    """The link a secret opens, still good; otherwise the refusal that says why."""
    query = select(t.upload_links).where(t.upload_links.c.token_sha256 == token_digest(secret))
    link = conn.execute(query.with_for_update() if lock else query).one_or_none()
    if link is None:
        raise _refused("upload_link_unknown", "This upload link is not valid.", 404)
    if link.used_at is not None:
        raise _refused(
            "upload_link_used",
            f"This upload link was already used at {link.used_at:%H:%M} UTC: each link takes "
            "one file.",
        )
    if audit.micros(link.expires_at) <= audit.micros(now):  # type: ignore[operator]
        raise _refused(
            "upload_link_expired",
            f"This upload link expired at {link.expires_at:%H:%M} UTC (links last "
            f"{LINK_MINUTES} minutes).",
        )
    session = conn.execute(
        select(t.person_sessions).where(t.person_sessions.c.token_sha256 == link.session_sha256)
    ).one_or_none()
    if (
        session is None
        or session.ended_at is not None
        or audit.micros(session.expires_at) <= audit.micros(now)  # type: ignore[operator]
    ):
        raise _refused(
            "upload_link_ended",
            "This upload link ended when the person it was issued to signed out at the station.",
        )
    return link


def describe(conn: Connection, link: Any) -> dict[str, str]:
    """What the upload page says the link is for: traveler, step, item, person, expiry."""
    row = conn.execute(
        select(
            t.data_items.c.label,
            t.data_items.c.kind,
            t.steps.c.number.label("step"),
            t.steps.c.title,
            t.travelers.c.number.label("traveler"),
            t.users.c.name,
        )
        .join(t.steps, t.steps.c.id == t.data_items.c.step_id)
        .join(t.travelers, t.travelers.c.id == t.steps.c.traveler_id)
        .join(t.users, t.users.c.id == link.user_id)
        .where(t.data_items.c.id == link.item_id)
    ).one()
    return {
        "label": row.label,
        "kind": row.kind,
        "step": f"{row.step} {row.title}",
        "traveler": row.traveler,
        "person": row.name,
        "expires": f"{link.expires_at:%H:%M} UTC",
    }


def receive(conn: Connection, files: FileStore, secret: str, data: bytes, now: datetime) -> str:
    """Record the uploaded file on the link's item in the link's person's name, or refuse with
    nothing recorded: a bad link, a file of the wrong type or too large, a step moved on."""
    link = link_of(conn, secret, now, lock=True)
    kind = ItemKind(conn.execute(
        select(t.data_items.c.kind).where(t.data_items.c.id == link.item_id)
    ).scalar_one())  # fmt: skip
    allowed = rules.EVIDENCE_TYPES[kind]
    files.check(data, allowed)  # before anything is written: a refused file leaves nothing
    actor = people.active_person(conn, link.user_id)
    st = conn.execute(select(t.stations).where(t.stations.c.id == link.station_id)).one()
    station = domain.StationRef(st.id, st.name, st.work_center)
    number = conn.execute(
        select(t.travelers.c.number)
        .join(t.steps, t.steps.c.traveler_id == t.travelers.c.id)
        .join(t.data_items, t.data_items.c.step_id == t.steps.c.id)
        .where(t.data_items.c.id == link.item_id)
    ).scalar_one()
    trav_row = views.traveler_row(conn, number, lock=True)
    probe = RequestUpload(actor_id=actor.id, traveler=number, item_id=link.item_id)
    trav = views.for_action(conn, trav_row, cast(Any, probe))
    item = rules.ensure_can_attach(trav, link.item_id, actor, station.work_center)
    stored = files.put(data, allowed)  # kept by hash: a rollback leaves a file nothing names
    evidence = EvidenceFile(sha256=stored.sha256, size=stored.size, media_type=stored.media_type)
    change = domain.Change(conn, station, actor, None, now, None, False)
    value_id = domain.attach_file(change, item, evidence)
    conn.execute(
        update(t.upload_links)
        .where(t.upload_links.c.id == link.id)
        .values(used_at=now, value_id=value_id)
    )
    what = f"{evidence.size_words()} {evidence.kind_word()}"
    return f"{item.label}: {what} recorded for {actor.name} on {number}."


# --- the station asks whether it arrived --------------------------------------------------------------


def status(
    conn: Connection, station: domain.StationRef, link_id: int, now: datetime
) -> UploadStatus:
    link = conn.execute(
        select(t.upload_links).where(
            t.upload_links.c.id == link_id, t.upload_links.c.station_id == station.id
        )
    ).one_or_none()
    if link is None:
        raise Refusal("not_found", f"This station asked for no upload link {link_id}.", 404)
    if link.value_id is not None:
        value = conn.execute(
            select(t.recorded_values, t.users.c.name)
            .join(t.users, t.users.c.id == t.recorded_values.c.user_id)
            .where(t.recorded_values.c.id == link.value_id)
        ).one()
        return UploadStatus(
            id=link.id,
            state="arrived",
            expires_at=link.expires_at,
            file=EvidenceFile.of_value(value.value),
            uploaded_by=value.name,
            uploaded_at=value.server_time,
        )
    expired = audit.micros(link.expires_at) <= audit.micros(now)  # type: ignore[operator]
    return UploadStatus(
        id=link.id, state="expired" if expired else "waiting", expires_at=link.expires_at
    )


# --- kiosk audit verify -------------------------------------------------------------------------------


def file_findings(conn: Connection, files: FileStore) -> list[records.Finding]:
    """Every photo or file on record must be in the file store, unchanged (its bytes still
    hash to the SHA-256 its audit-chained value names): a swapped or deleted file is named."""
    kinds = [k.value for k in rules.EVIDENCE_TYPES]
    rows = conn.execute(
        select(t.recorded_values.c.id, t.recorded_values.c.value, t.data_items.c.label)
        .join(t.data_items, t.data_items.c.id == t.recorded_values.c.item_id)
        .where(t.data_items.c.kind.in_(kinds))
        .order_by(t.recorded_values.c.id)
    )
    found = []
    for value_id, value, label in rows:
        evidence = EvidenceFile.of_value(value)
        if evidence is None:
            found.append(records.Finding(0, f"recorded value {value_id} ({label}) names no file"))
        elif not files.intact(evidence.sha256):
            found.append(
                records.Finding(
                    0,
                    f"recorded value {value_id} ({label}): the file it names "
                    f"(sha256 {evidence.sha256[:12]}…) is missing from the file store or no "
                    "longer has that hash: it was changed or removed",
                )
            )
    return found
