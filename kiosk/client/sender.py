"""The sender: delivers outbox entries in order, retrying transport failures with backoff.

Exactly once = at least once + the server's idempotency store: an entry is retried until the
server answers for it, and the server applies each key once. Refusals are answers, not failures:
the entry is marked refused, kept, and the queue moves on.

Whoever waits for one entry's answer (the screen that just recorded it) asks `answer(key)` for a
future the sender resolves as it records the server's word, or with None when the batch could
not be delivered: nobody reads the outbox back to find out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kiosk.client.api import ExecutionClient
from kiosk.client.errors import (
    BackendError,
    BackendUnreachable,
    BadResponse,
    Invalid,
    StationNotEnrolled,
)
from kiosk.client.outbox import Entry, Outbox, now_utc
from kiosk.wire import ActionBatch, ActionOutcome, Problem

BATCH_SIZE = 100
log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    applied: int = 0
    refused: int = 0
    failed: str | None = None  # why delivery stopped early, if it did

    @property
    def delivered(self) -> int:
        return self.applied + self.refused


@dataclass(frozen=True)
class Backoff:
    """Full jitter (AWS): sleep a random time up to min(cap, base * 2^attempt)."""

    base: float = 0.5
    cap: float = 60.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        return rng() * min(self.cap, self.base * 2.0 ** min(attempt, 16))


class Connection:
    """Whether the server answered the last time this station asked: the one connection status.

    Reads, delivery and the status bar all go by this value; `follow` is told each change.
    """

    def __init__(self) -> None:
        self.online: bool | None = None
        """Reachable (True), unreachable (False), not known yet (None)."""
        self.last_contact: datetime | None = None
        """When the server last answered: what was recorded after it, undelivered, is offline."""
        self._followers: list[Callable[[bool], None]] = []

    def follow(self, follower: Callable[[bool], None]) -> None:
        self._followers.append(follower)

    def went(self, online: bool) -> None:
        if online:
            self.last_contact = now_utc()
        if online != self.online:
            self.online = online
            for follower in list(self._followers):
                follower(online)


class Sender:
    def __init__(
        self,
        outbox: Outbox,
        client: ExecutionClient,
        *,
        backoff: Backoff = Backoff(),
        batch_size: int = BATCH_SIZE,
        on_change: Callable[[], None] | None = None,
        connection: Connection | None = None,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.backoff = backoff
        self.batch_size = batch_size
        self.on_change = on_change or (lambda: None)
        """Told when entries changed state (the status bar's counts)."""
        self.connection = connection or Connection()
        self._wake = asyncio.Event()
        self._failures = 0
        self._answers: dict[str, asyncio.Future[ActionOutcome | None]] = {}

    @property
    def online(self) -> bool | None:
        return self.connection.online

    @property
    def last_contact(self) -> datetime | None:
        return self.connection.last_contact

    def answer(self, key: str) -> asyncio.Future[ActionOutcome | None]:
        """The server's answer for the entry with `key`, once this sender has recorded it;
        None when its batch could not be delivered (it stays pending and is tried again).
        Call `forget(key)` when no longer waiting."""
        future = self._answers.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._answers[key] = future
        return future

    def forget(self, key: str) -> None:
        future = self._answers.pop(key, None)
        if future is not None and not future.done():
            future.cancel()

    def _resolve(self, key: str, outcome: ActionOutcome | None) -> None:
        future = self._answers.pop(key, None)
        if future is not None and not future.done():
            future.set_result(outcome)

    def nudge(self) -> None:
        """Something was recorded: deliver now rather than at the next retry."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver forever: immediately when nudged, with backoff after failures."""
        while True:
            # Cleared before delivering, so a nudge that comes in meanwhile is not lost.
            self._wake.clear()
            try:
                report = await self.deliver()
            except Exception:  # a bug must not stop delivery for good: log it, back off, retry
                log.exception("outbox delivery failed")
                report = SyncReport(failed="internal error while delivering; see the log")
            if report.failed is None:
                self._failures = 0
                wait = 30.0  # idle: look again now and then, or sooner when nudged
            else:
                self._failures += 1
                wait = self.backoff.delay(self._failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def deliver(self, progress: Callable[[int], None] | None = None) -> SyncReport:
        """Send everything pending, oldest first, until done or the server cannot be reached."""
        report = SyncReport()
        while True:
            batch = await asyncio.to_thread(self.outbox.pending, self.batch_size)
            if not batch:
                await asyncio.to_thread(self.outbox.note_sync)
                return report
            try:
                outcomes = await self._send(batch)
            except (BackendUnreachable, BadResponse, StationNotEnrolled) as exc:
                await asyncio.to_thread(
                    self.outbox.note_failure, [e.key for e in batch], exc.detail
                )
                if isinstance(exc, BackendUnreachable):
                    await asyncio.to_thread(self.outbox.mark_offline, self.last_contact)
                self.set_online(not isinstance(exc, BackendUnreachable))
                for entry in batch:
                    self._resolve(entry.key, None)  # not delivered: nobody waits for a retry
                report.failed = exc.detail
                return report
            self.set_online(True)
            await asyncio.to_thread(self._record_outcomes, outcomes, report)
            for outcome in outcomes:  # on disk first, then the waiting screen is told
                self._resolve(outcome.key, outcome)
            self.on_change()
            if progress is not None:
                progress(report.delivered)

    async def _send(self, batch: list[Entry]) -> list[ActionOutcome]:
        try:
            result = await self.client.deliver(
                ActionBatch(actions=tuple(e.queued() for e in batch))
            )
        except Invalid as exc:
            # The batch as a whole was unreadable to the server (a newer rule, a changed model):
            # answer for the head entry alone so one bad entry cannot wedge the queue.
            if len(batch) > 1:
                return await self._send(batch[:1])
            return [_refusal(batch[0].key, exc)]
        return list(result.outcomes)

    def _record_outcomes(self, outcomes: list[ActionOutcome], report: SyncReport) -> None:
        self.outbox.mark_answered(outcomes)
        refused = sum(1 for outcome in outcomes if outcome.status >= 400)
        report.applied += len(outcomes) - refused
        report.refused += refused

    def set_online(self, online: bool) -> None:
        self.connection.went(online)


def _refusal(key: str, exc: BackendError) -> ActionOutcome:
    problem = Problem(title="Refused", status=exc.status or 422, detail=exc.detail, rule=exc.rule)
    return ActionOutcome(key=key, status=problem.status, problem=problem)
