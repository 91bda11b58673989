"""Publishing the event feed to an MQTT broker (events_mqtt_url), for the plant's Unified Namespace.

A transactional-outbox relay whose outbox is the audit chain: the publisher keeps its own cursor
(an audit `seq`, in the table event_publishers), reads the feed after it (kiosk.server.events),
publishes each event at QoS 1 on plant/<work center>/<station>/<traveler>/<event>, and moves
the cursor only once the broker has acknowledged every event of the page. Broker down, restarted
or unreachable: it retries with capped, jittered backoff from the same cursor, so nothing is lost.
A crash between the broker's acknowledgement and the cursor's update sends those events again:
delivery is at least once, and each event's `id` lets a consumer drop what it has seen.

Several server processes (uvicorn workers, hosts) may all run a publisher: a lease in the same
row lets one publish at a time, the others take over when it stops renewing.

aiomqtt (the mqtt extra) is imported only here, and only by `kiosk serve` with a broker set.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import random
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from kiosk.server import events
from kiosk.server import schema as t
from kiosk.wire import EventFeed

if TYPE_CHECKING:
    from kiosk.server.store import Store

log = logging.getLogger("kiosk.server.mqtt")

PUBLISHER = "mqtt"
QOS = 1
LEASE = timedelta(seconds=30)
MISSING = "the mqtt extra is not installed: pip install 'station-kiosk[mqtt]'"


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Broker:
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def __str__(self) -> str:  # for log lines: never the password
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass
class Backoff:
    """Full jitter, base 0.5 s, capped (RELIABILITY-NOTES.md §1)."""

    base: float = 0.5
    cap: float = 30.0
    failures: int = 0

    def next(self) -> float:
        self.failures += 1
        return random.uniform(0, min(self.cap, self.base * 2 ** min(self.failures, 16)))

    def reset(self) -> None:
        self.failures = 0


class Publisher:
    """Publishes the feed to one broker, from its durable cursor, until cancelled."""

    def __init__(
        self,
        store: Store,
        url: str,
        *,
        page: int = events.FEED_PAGE,
        poll: float = 1.0,
        backoff: Backoff | None = None,
        ack_timeout: float = 10.0,
    ) -> None:
        self.store = store
        self.broker = Broker.parse(url)
        self.page = page
        self.poll = poll
        self.backoff = backoff or Backoff()
        self.ack_timeout = ack_timeout
        """Seconds to wait for the broker's PUBACK before the connection counts as lost."""
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:80]
        self.held_until: datetime | None = None
        self.connected = asyncio.Event()
        """Set while connected to the broker (for tests and logs)."""

    async def run(self) -> None:
        import aiomqtt

        while True:
            try:
                async with self._client(aiomqtt) as client:
                    self.connected.set()
                    if self.backoff.failures:
                        log.info("mqtt: connected to %s again", self.broker)
                    self.backoff.reset()
                    await self._relay(client)
            except aiomqtt.MqttError as exc:
                self._lost(f"broker {self.broker}: {exc}")
            except Exception as exc:  # the database, most likely: try again, do not die
                self._lost(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            self.connected.clear()
            await asyncio.sleep(self.backoff.next())

    def _lost(self, why: str) -> None:
        # One warning per outage, not one per retry.
        level = logging.WARNING if self.backoff.failures == 0 else logging.DEBUG
        log.log(level, "mqtt: not publishing (%s); retrying from the cursor", why)

    def _client(self, aiomqtt: Any) -> Any:
        b = self.broker
        client = aiomqtt.Client(
            b.host,
            b.port,
            username=b.username,
            password=b.password,
            identifier=f"kiosk-events-{self.owner}"[:64],
            tls_context=ssl.create_default_context() if b.tls else None,
            timeout=10,
        )
        # A page is published at once: that many waiting acknowledgements is the plan, not a
        # backlog worth aiomqtt's warning.
        client.pending_calls_threshold = self.page + 10
        return client

    async def _relay(self, client: Any) -> None:
        while True:
            if not await asyncio.to_thread(self._hold_lease):
                await asyncio.sleep(LEASE.total_seconds() / 3)
                continue
            cursor = await asyncio.to_thread(self._cursor)
            page = await asyncio.to_thread(self._read, cursor)
            # All in flight at once (paho keeps them in order); the cursor moves only when
            # every one of them is acknowledged.
            await asyncio.gather(
                *(
                    client.publish(
                        e.topic,
                        e.model_dump_json(exclude_none=True),
                        qos=QOS,
                        timeout=self.ack_timeout,
                    )
                    for e in page.events
                )
            )
            if page.next_cursor != cursor:
                await asyncio.to_thread(self._advance, page.next_cursor, len(page.events))
            if not page.more:
                await asyncio.sleep(self.poll)

    # --- the cursor and the lease, in the database ------------------------------------------------

    def _read(self, cursor: int) -> EventFeed:
        with self.store.read() as conn:
            return events.feed(conn, cursor, self.page)

    def _cursor(self) -> int:
        with self.store.read() as conn:
            found = conn.execute(
                select(t.event_publishers.c.cursor).where(t.event_publishers.c.name == PUBLISHER)
            ).scalar_one()
        return int(found)

    def _hold_lease(self) -> bool:
        """Take or renew the lease; False while another process holds it. Renewed once a third
        of it has gone, not at every poll: a lease cannot be taken before it lapses."""
        now = datetime.now(UTC)
        if self.held_until is not None and self.held_until - now > LEASE * 2 / 3:
            return True
        self.held_until = None
        table = t.event_publishers
        with self.store.begin() as conn:
            taken = conn.execute(
                update(table)
                .where(
                    table.c.name == PUBLISHER,
                    or_(
                        table.c.owner == self.owner,
                        table.c.owner.is_(None),
                        table.c.lease_until < now,
                    ),
                )
                .values(owner=self.owner, lease_until=now + LEASE)
            ).rowcount
        if taken or self._first_lease(now):
            self.held_until = now + LEASE
            return True
        return False

    def _first_lease(self, now: datetime) -> bool:
        try:
            with self.store.begin() as conn:
                conn.execute(
                    insert(t.event_publishers).values(
                        name=PUBLISHER,
                        cursor=0,
                        published=0,
                        owner=self.owner,
                        lease_until=now + LEASE,
                    )
                )
        except IntegrityError:  # the row is there: someone else holds the lease
            return False
        return True

    def _advance(self, cursor: int, published: int) -> None:
        table = t.event_publishers
        with self.store.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.name == PUBLISHER, table.c.owner == self.owner)
                .values(cursor=cursor, published=table.c.published + published)
            )

    def release(self) -> None:
        """Give the lease up at shutdown, so another process need not wait for it to lapse."""
        table = t.event_publishers
        with self.store.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.name == PUBLISHER, table.c.owner == self.owner)
                .values(owner=None, lease_until=None)
            )


@asynccontextmanager
async def publishing(store: Store, url: str | None) -> AsyncIterator[Publisher | None]:
    """While serving: the publisher as a task, when a broker is configured."""
    if url is None:
        yield None
        return
    if importlib.util.find_spec("aiomqtt") is None:
        log.error("mqtt: events_mqtt_url is set, but %s", MISSING)
        yield None
        return
    publisher = Publisher(store, url)
    log.info("mqtt: publishing the event feed to %s", publisher.broker)
    task = asyncio.create_task(publisher.run())
    try:
        yield publisher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await asyncio.to_thread(publisher.release)
