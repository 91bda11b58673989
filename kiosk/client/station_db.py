"""Where a station keeps its local database, and the summary `kiosk outbox` prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiosk.client.local_db import LocalDb
from kiosk.client.outbox import Entry, Outbox, State
from kiosk.client.reads import CHECKPOINT_KEY, ReadCache
from kiosk.wire import Checkpoint

STATION_DB = "station.db"
LISTED: tuple[State, ...] = ("pending", "refused")
"""What `kiosk outbox` lists: what still needs the server or a person."""


def station_db_path(data_dir: Path) -> Path:
    return data_dir / STATION_DB


def open_outbox(data_dir: Path) -> Outbox:
    return Outbox(LocalDb(station_db_path(data_dir)))


def latest_checkpoint(data_dir: Path) -> Checkpoint | None:
    """The latest signed audit checkpoint this station received: its witness of the chain."""
    return ReadCache(LocalDb(station_db_path(data_dir))).get(CHECKPOINT_KEY, Checkpoint)


def outbox_report(outbox: Outbox) -> list[str]:
    """What waits, what was refused and why, and the last sync: for `kiosk outbox` and admins."""
    counts = outbox.counts()
    last = outbox.last_sync()
    lines = [
        f"waiting: {counts.get('pending', 0)}   refused: {counts.get('refused', 0)}   "
        f"applied: {counts.get('applied', 0)}   resolved: "
        f"{counts.get('dismissed', 0) + counts.get('redone', 0)}",
        f"last sync: {last:%Y-%m-%d %H:%M:%S} UTC" if last else "last sync: never",
    ]
    pending = outbox.entries("pending")
    if pending:
        lines.append("waiting to be sent:")
        for entry in pending[:50]:
            tried = f" (tried {entry.attempts}x: {entry.last_error})" if entry.attempts else ""
            lines.append(f"  {entry.summary} at {entry.recorded_at:%H:%M:%S}{tried}")
        if len(pending) > 50:
            lines.append(f"  … and {len(pending) - 50} more")
    refused = outbox.entries("refused")
    if refused:
        lines.append("refused by the server (kept for a supervisor to re-do or dismiss):")
        for entry in refused:
            lines.append(f"  {entry.summary}: {entry.message} [{entry.rule}]")
    return lines


def outbox_json(outbox: Outbox) -> dict[str, Any]:
    """The same as `outbox_report`, for scripts (`kiosk outbox --json`): every waiting and refused
    entry, none cut off. Never the action itself: it carries the person's session or proofs."""
    counts = outbox.counts()
    last = outbox.last_sync()
    return {
        "waiting": counts.get("pending", 0),
        "refused": counts.get("refused", 0),
        "applied": counts.get("applied", 0),
        "resolved": counts.get("dismissed", 0) + counts.get("redone", 0),
        "last_sync": last.isoformat() if last else None,
        "entries": [_entry_json(entry) for state in LISTED for entry in outbox.entries(state)],
    }


def _entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "state": "waiting" if entry.state == "pending" else entry.state,
        "traveler": entry.traveler,
        "kind": entry.kind,
        "by": entry.by,
        "recorded_at": entry.recorded_at.isoformat(),
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "message": entry.message,
        "rule": entry.rule,
    }
