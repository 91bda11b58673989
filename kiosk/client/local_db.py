"""The station's own SQLite file: outbox, cached reads and the offline credential cache.

Durability is the point of this file. Every connection runs WAL with synchronous=FULL, so a write
that COMMIT confirmed survives a crash and a power cut (SQLite: "WAL + FULL: writers sync the WAL
on every transaction commit"). The outbox never lives on a network mount.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- gap-free station sequence: rows are never deleted
    key TEXT NOT NULL UNIQUE,                -- idempotency key sent with the action
    traveler TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,                     -- name of who recorded it
    person TEXT NOT NULL,                    -- who recorded it, with roles (JSON), for the screen
    signer TEXT,                             -- who signed (name and id), for the screen; no PIN
    payload TEXT NOT NULL,                   -- the action as JSON; never a PIN
    recorded_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending, applied, refused, dismissed, redone
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    message TEXT,                            -- the server's answer (applied) or its reason (refused)
    rule TEXT,
    answered_at TEXT,
    resolved_by TEXT
);
CREATE INDEX IF NOT EXISTS entries_state ON entries (state, seq);
CREATE TABLE IF NOT EXISTS reads (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    stored_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pin_failures (  -- wrong offline PINs per person: survive restarts
    user_id INTEGER PRIMARY KEY,
    failures INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class LocalDbError(Exception):
    """The station's local database cannot be trusted with an operator's work."""


class LocalDb:
    """One connection, shared by the UI loop and the sender's worker thread under a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        # Some builds quietly lower WAL syncing; refuse to run an outbox that could lose a commit.
        if self._conn.execute("PRAGMA synchronous").fetchone()[0] != 2:
            raise LocalDbError(
                f"{path}: SQLite refused synchronous=FULL; the outbox would not be durable."
            )
        self._conn.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT: when this block exits normally, the rows are on disk."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
