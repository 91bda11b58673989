"""Where a station keeps its local database, and the summary `kiosk outbox` prints."""

from __future__ import annotations

from pathlib import Path

from kiosk.client.local_db import LocalDb
from kiosk.client.outbox import Outbox

STATION_DB = "station.db"


def station_db_path(data_dir: Path) -> Path:
    return data_dir / STATION_DB


def open_outbox(data_dir: Path) -> Outbox:
    return Outbox(LocalDb(station_db_path(data_dir)))


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
