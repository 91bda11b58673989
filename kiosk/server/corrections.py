"""Corrections and voids on the server: what the rules (kiosk.rules, `_check_correct` and
`_check_void`) leave to the store.

A correction is a recorded value that names the value it corrects and why (`corrects_id`,
`reason`); the corrected value stays. A void is quality's signature on a signature
(subject `signature`), and the voided signature keeps its row, marked with the void's id and
reason. Both are tracked rows, so `kiosk audit verify` re-derives them from the chain, and a
void's content hash is recomputed from the signature it voids (records.void_content_hash).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, exists, select

from kiosk.server import schema as t
from kiosk.wire import SignatureManifest

V = t.recorded_values.c
_CORRECTED = t.recorded_values.alias("corrected")


def others_failed(conn: Connection, item_id: int, corrected_id: int) -> bool:
    """Whether a value on the item failed, other than `corrected_id` and any value corrected
    before: a correction takes a mistake off the record's verdict, never a real reading."""
    corrected = exists().where(_CORRECTED.c.corrects_id == V.id)
    found = conn.execute(
        select(V.id)
        .where(V.item_id == item_id, V.passed.is_(False), V.id != corrected_id, ~corrected)
        .limit(1)
    ).first()
    return found is not None


def with_voids(
    conn: Connection,
    signatures: Iterable[SignatureManifest],
    manifest: Callable[[Any], SignatureManifest],
) -> tuple[list[SignatureManifest], list[SignatureManifest]]:
    """(standing, voided) of a step's signatures, each voided one with the void's signature.
    The void signatures are read only when there is a voided one (rare): no cost otherwise."""
    standing: list[SignatureManifest] = []
    voided: list[SignatureManifest] = []
    for sig in signatures:
        (standing if sig.void_reason is None else voided).append(sig)
    if not voided:
        return standing, voided
    rows = conn.execute(
        select(t.signatures).where(
            t.signatures.c.subject == "signature",
            t.signatures.c.subject_id.in_([s.id for s in voided]),
        )
    )
    by_voided = {row.subject_id: manifest(row) for row in rows}
    return standing, [s.model_copy(update={"voided": by_voided.get(s.id)}) for s in voided]
