"""Group commit: the batches that stations deliver at the same moment share one transaction.

A plant's stations deliver at once, and every write transaction ends in a durable commit (an
fsync on SQLite, a WAL flush on PostgreSQL) and extends the audit chain, which is serial: its
head row is held from the moment a transaction appends until it commits. One transaction per
delivery makes every delivery wait for all the commits queued before it.

Here a delivery is queued as a job; one thread, the committer, takes every job queued by then (at
most MOST_JOBS), runs them inside one transaction, commits once, and only then answers each job. So
nothing is answered before it is durable, and the chain is extended once per group. A job runs in
the context (request id) of the request it came from. A request on the event loop waits for its
job without a thread of its own (`run_async`): a thread a request, handed the request and woken for
its answer, was a tenth of the server's time under 50 stations.

The group runs first without savepoints, as nearly every group succeeds whole. If anything fails
in it (a refused action, a refused token, a bug), all of it is rolled back and run again with a
savepoint for each job and each action, so that what failed rolls back alone.

A job may say what it will read first (its `needs`): the first run reads that for the whole
group before any job runs (`read_ahead`, kiosk.server.read_ahead), in a few statements instead of
a few for each job.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from kiosk.server import audit
from kiosk.server.store import PENDING_AUDIT, Store

T = TypeVar("T")

IDLE_S = 1.0
"""How long the committer waits for the next job before it ends."""
MOST_JOBS = 50
"""Deliveries in one transaction at most: a station's batch holds up to 500 actions, and a group
that grew without bound would hold its answers back for as long."""


@dataclass(eq=False)
class _Job(Generic[T]):
    work: Callable[[Connection], T]
    answered: Callable[[], object]
    """Tells whoever waits for the job that it is answered (done, value or error set)."""
    needs: Any = None
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    value: T | None = None
    error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


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
        self._turn = threading.Condition()
        """Guards the queue and the committer; the committer waits on it while none is queued."""
        self._queued: list[_Job[object]] = []
        self._committer: threading.Thread | None = None

    def run(self, work: Callable[[Connection], T], needs: Any = None) -> T:
        """`work(conn)` inside a shared write transaction; its answer once that has committed.
        Whatever `work` raises is raised here, after what it changed was rolled back. `needs`:
        what `work` reads first, for `read_ahead` to read with the group's others."""
        answered = threading.Event()
        job: _Job[T] = _Job(work, answered.set, needs)
        self._queue(job)
        answered.wait()
        return job.outcome()

    async def run_async(self, work: Callable[[Connection], T], needs: Any = None) -> T:
        """`run` for a request on the event loop: it waits without a thread of its own, and no
        thread is woken for it but the loop, once its group has committed. A request given up
        meanwhile (the station hung up) leaves its job to commit: the station asks again, and the
        stored answer is given."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        job: _Job[T] = _Job(work, partial(loop.call_soon_threadsafe, _settle, future), needs)
        self._queue(job)
        await future
        return job.outcome()

    def _queue(self, job: _Job[Any]) -> None:
        with self._turn:
            self._queued.append(job)
            if self._committer is None:
                self._committer = threading.Thread(
                    target=self._commit_while_queued, name="group-commit", daemon=True
                )
                self._committer.start()
            else:
                self._turn.notify()

    def _commit_while_queued(self) -> None:
        """The committer: takes every job queued (at most `most`), commits them, answers them;
        again, until nothing has been queued for IDLE_S (then it ends, and the next job starts
        another: a service that is done with leaves no thread behind)."""
        while True:
            with self._turn:
                if not self._queued:
                    self._turn.wait(IDLE_S)
                if not self._queued:
                    self._committer = None
                    return
                jobs, self._queued = self._queued[: self.most], self._queued[self.most :]
            self._commit(jobs)
            for job in jobs:
                with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits any more
                    job.answered()

    def _commit(self, jobs: list[_Job[object]]) -> None:
        try:
            try:
                self._transaction(jobs, careful=False)
            except (audit.RunAgainCarefully, IntegrityError):
                # Something failed where no savepoint was taken; or another server process
                # stored an answer for one of these keys as this group stored its own (written
                # as it commits). All of it was rolled back; run again, each job and action on
                # its savepoint, a failure stays its own, and a stored answer is found and given.
                self._transaction(jobs, careful=True)
        except BaseException as failure:  # every job is told, none is left waiting
            for job in jobs:
                # Nothing of the group stands: every job fails as the commit did.
                job.value, job.error = None, failure

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


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():  # a request given up has cancelled it
        future.set_result(None)
