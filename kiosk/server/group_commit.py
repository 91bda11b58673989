"""Group commit: the batches that stations deliver at the same moment share one transaction.

A plant's stations deliver at once, and every write transaction ends in a durable commit (an
fsync on SQLite, a WAL flush on PostgreSQL) and extends the audit chain, which is serial: its
head row is held from the moment a transaction appends until it commits. One transaction per
delivery makes every delivery wait for all the commits queued before it.

Here a delivery is queued as a job; whichever thread gets the turn takes every job queued by then
(at most MOST_JOBS), runs them inside one transaction, commits once, and only then hands each job
its answer. So nothing is answered before it is durable, and the chain is extended once per group.
A job runs in the context (request id) of the request it came from, on the thread that has the
turn. The turn goes to the thread of the oldest job still queued, and each thread is woken only for
its own job (answered, or its turn), not every waiting thread at every commit.

The group runs first without savepoints, as nearly every group succeeds whole. If anything fails
in it (a refused action, a refused token, a bug), all of it is rolled back and run again with a
savepoint for each job and each action, so that what failed rolls back alone.

A job may say what it will read first (its `needs`): the first run reads that for the whole
group before any job runs (`read_ahead`, kiosk.server.read_ahead), in a few statements instead of
a few for each job.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from kiosk.server import audit
from kiosk.server.store import PENDING_AUDIT, Store

T = TypeVar("T")

MOST_JOBS = 50
"""Deliveries in one transaction at most: a station's batch holds up to 500 actions, and a group
that grew without bound would hold its answers back for as long."""


@dataclass(eq=False)
class _Job(Generic[T]):
    work: Callable[[Connection], T]
    needs: Any = None
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    done: bool = False
    value: T | None = None
    error: BaseException | None = None
    woken: threading.Event = field(default_factory=threading.Event)
    """Set once: the job is answered, or its thread has the turn."""


class GroupCommit:
    """One write transaction for the jobs that arrive while the last one commits."""

    def __init__(
        self,
        store: Store,
        most: int = MOST_JOBS,
        read_ahead: Callable[[Connection, list[Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.most = most
        self.read_ahead = read_ahead
        self._lock = threading.Lock()
        self._queued: list[_Job[object]] = []
        self._leading = False
        """A group is committing, or the turn was handed on: whoever queues now waits."""

    def run(self, work: Callable[[Connection], T], needs: Any = None) -> T:
        """`work(conn)` inside a shared write transaction; its answer once that has committed.
        Whatever `work` raises is raised here, after what it changed was rolled back. `needs`:
        what `work` reads first, for `read_ahead` to read with the group's others."""
        job: _Job[T] = _Job(work, needs)
        with self._lock:
            self._queued.append(job)  # type: ignore[arg-type]
            waits, self._leading = self._leading, True
        if waits:
            job.woken.wait()
        if not job.done:  # the turn: this job is the oldest queued, so it is in the group
            self._lead()
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[return-value]

    def _lead(self) -> None:
        with self._lock:
            jobs, self._queued = self._queued[: self.most], self._queued[self.most :]
        try:
            self._commit(jobs)
        finally:
            with self._lock:
                following = self._queued[0] if self._queued else None
                self._leading = following is not None
            for job in jobs:
                job.woken.set()
            if following is not None:
                following.woken.set()

    def _commit(self, jobs: list[_Job[object]]) -> None:
        committed = False
        failure: BaseException | None = None
        try:
            try:
                self._transaction(jobs, careful=False)
            except (audit.RunAgainCarefully, IntegrityError):
                # Something failed where no savepoint was taken; or another server process
                # stored an answer for one of these keys as this group stored its own (written
                # as it commits). All of it was rolled back; run again, each job and action on
                # its savepoint, a failure stays its own, and a stored answer is found and given.
                self._transaction(jobs, careful=True)
            committed = True
        except BaseException as exc:
            failure = exc
            raise
        finally:
            for job in jobs:
                if not committed:
                    # Nothing of the group stands: every job fails as the commit did.
                    job.value, job.error = None, failure
                job.done = True

    def _transaction(self, jobs: list[_Job[object]], *, careful: bool) -> None:
        with self.store.begin() as conn:
            pending = conn.info[PENDING_AUDIT]
            pending.holds_answers = True  # a conflict is met by the run again
            pending.without_savepoints = not careful
            if not careful and self.read_ahead is not None:
                self.read_ahead(conn, [job.needs for job in jobs if job.needs is not None])
            if len(jobs) == 1:  # alone: its own transaction is its savepoint
                jobs[0].value = jobs[0].context.run(jobs[0].work, conn)
            else:
                for job in jobs:
                    job.value, job.error = None, None  # a run again starts afresh
                    _run_on_savepoint(conn, job)


def _run_on_savepoint(conn: Connection, job: _Job[object]) -> None:
    try:
        with audit.savepoint(conn):
            job.value = job.context.run(job.work, conn)
    except Exception as exc:
        job.error = exc
