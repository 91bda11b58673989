"""Cached reads: the last traveler, queue and station info the station saw, for working offline."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, TypeAdapter

from kiosk.client.local_db import LocalDb
from kiosk.client.outbox import now_utc

T = TypeVar("T")


class ReadCache:
    def __init__(self, db: LocalDb) -> None:
        self.db = db

    def put(self, key: str, value: BaseModel | list[BaseModel]) -> None:
        if isinstance(value, BaseModel):
            raw = value.model_dump_json()
        else:
            raw = "[" + ",".join(v.model_dump_json() for v in value) + "]"
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO reads (key, value, stored_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, stored_at = excluded.stored_at",
                (key, raw, now_utc().isoformat()),
            )

    def get(self, key: str, kind: type[T] | TypeAdapter[T]) -> T | None:
        rows = self.db.query("SELECT value FROM reads WHERE key = ?", (key,))
        if not rows:
            return None
        adapter = kind if isinstance(kind, TypeAdapter) else TypeAdapter(kind)
        return adapter.validate_json(rows[0]["value"])
