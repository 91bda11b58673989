"""Cached reads: the last traveler, queue and station info the station saw, for working offline."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from kiosk.client.errors import BackendError
from kiosk.client.local_db import LocalDb
from kiosk.client.outbox import now_utc
from kiosk.wire import TravelerSummary

if TYPE_CHECKING:
    from kiosk.client.api import ExecutionClient  # httpx: not on the station's start path

T = TypeVar("T")
CHECKPOINT_KEY = "audit-checkpoint"
"""The latest signed audit checkpoint the server sent: this station's witness of the chain."""
SEARCH_ROWS = 20
"""Queue rows read to find one traveler: its number's prefix may match a few longer numbers."""


log = logging.getLogger(__name__)


class ReadCache:
    def __init__(self, db: LocalDb) -> None:
        self.db = db
        self._writing: set[asyncio.Future[None] | Future[None]] = set()

    def put_soon(self, key: str, value: BaseModel | list[BaseModel]) -> None:
        """Cache `value` without waiting for the disk. A cached read serves a later offline
        moment, so its commit (an fsync: the station database is synchronous=FULL) stays off the
        path from a scan to the screen."""
        future = asyncio.get_running_loop().run_in_executor(None, self.put, key, value)
        self._writing.add(future)
        future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[None] | Future[None]) -> None:
        self._writing.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("a read could not be cached: %s", future.exception())

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

    async def written(self) -> None:
        """Wait for the reads still being cached: one the station just saw (a traveler opened
        a moment before the cable was pulled) is there when it is first needed offline."""
        if self._writing:
            await asyncio.gather(
                *(asyncio.wrap_future(f) if isinstance(f, Future) else f for f in self._writing),
                return_exceptions=True,
            )

    def get(self, key: str, kind: type[T] | TypeAdapter[T]) -> T | None:
        rows = self.db.query("SELECT value FROM reads WHERE key = ?", (key,))
        if not rows:
            return None
        adapter = kind if isinstance(kind, TypeAdapter) else TypeAdapter(kind)
        try:
            return adapter.validate_json(rows[0]["value"])
        except ValidationError:
            # Written by an older release, or under rules since tightened (a scanner prefix now
            # refused): as if never cached. The next answer from the server replaces it.
            return None


async def operation_at_work(client: ExecutionClient, number: str) -> str | None:
    """The operation where `number`'s work stands, when it waits at this station's work center.

    Read from the station's queue (one searched page, from each traveler's current step), so a
    long traveler opens at its current operation without all its steps being read first. None
    when it is not in this queue (complete, or at another work center) or the server cannot say.
    The operation is the current step's number up to its last dot ("200.10" is in operation
    "200"); the caller checks the step is there and otherwise reads the traveler whole.
    """
    try:
        found = await client.queue(search=number, limit=SEARCH_ROWS)
    except BackendError:
        return None
    here = next((s for s in found if s.number == number), None)
    return None if here is None else operation_in_queue(here)


def operation_in_queue(row: TravelerSummary) -> str | None:
    """The operation of a queue row's current step ("200.10 Drill…" is in operation "200")."""
    if not row.current_step:
        return None
    step = row.current_step.split(" ", 1)[0]
    return step.rpartition(".")[0] or None


def cached_page(
    cached: list[TravelerSummary], *, after: str | None, search: str | None
) -> list[TravelerSummary]:
    """A page of the cached queue as the server would page and search it (number order, after
    `after`, number, part number or serial starting with `search`)."""
    prefix = (search or "").strip().upper()
    return [
        s
        for s in cached
        if (after is None or s.number > after)
        and (
            not prefix
            or any(v.upper().startswith(prefix) for v in (s.number, s.part_number, s.serial or ""))
        )
    ]
