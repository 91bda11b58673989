"""StationLink: everything the station's screens ask of the plant, online or not.

Reads come from the server and are cached; while the server is unreachable they come from the
cache. Every action goes into the outbox first and is shown at once, with this station's pending
actions projected onto the traveler; the sender delivers in the background. People are identified
by the server when it answers, else from the offline credential cache.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import TypeAdapter

from kiosk import rules
from kiosk.client.api import ExecutionClient
from kiosk.client.errors import BackendUnreachable, RuleRefused
from kiosk.client.local_db import LocalDb
from kiosk.client.offline_identity import OfflineIdentity
from kiosk.client.outbox import Entry, Outbox, now_utc
from kiosk.client.projection import Context, project
from kiosk.client.reads import ReadCache
from kiosk.client.sender import Sender
from kiosk.client.station_db import station_db_path
from kiosk.wire import (
    Action,
    Credentials,
    Person,
    StationAttestation,
    StationInfo,
    Traveler,
    TravelerSummary,
)

_QUEUE = TypeAdapter(list[TravelerSummary])
DELIVERY_WAIT = 3.0  # seconds an operator waits for the server's own answer before moving on


@dataclass(frozen=True)
class Proof:
    """Who signs, and how the server will know: a ticket (checked online) or an attestation."""

    signer: Person
    ticket: str | None = None
    attestation: StationAttestation | None = None

    @property
    def offline(self) -> bool:
        return self.attestation is not None

    def fields(self) -> dict[str, str | StationAttestation | None]:
        """What a signed action carries instead of a PIN."""
        return {"ticket": self.ticket, "attestation": self.attestation}


@dataclass(frozen=True)
class Recorded:
    """An action on disk in the outbox, and what the screen should show now."""

    entry: Entry
    traveler: Traveler
    message: str
    delivered: bool


class StationLink:
    def __init__(
        self,
        client: ExecutionClient,
        data_dir: Path,
        *,
        clock: Callable[[], datetime] = now_utc,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.db = LocalDb(station_db_path(data_dir))
        self.outbox = Outbox(self.db)
        self.reads = ReadCache(self.db)
        self.identity = OfflineIdentity(self.reads)
        self.clock = clock
        self.sender = Sender(self.outbox, client, on_change=on_change)
        self.info: StationInfo | None = None
        self._delivery: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin delivering in the background (inside the running event loop)."""
        if self._delivery is None:
            self._delivery = asyncio.get_running_loop().create_task(self.sender.run())

    async def close(self) -> None:
        if self._delivery is not None:
            self._delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery
        await self.client.aclose()
        self.db.close()

    async def reconnect(self, client: ExecutionClient) -> None:
        """Talk to the server through `client` from now on (the embedded server was restarted)."""
        old, self.client = self.client, client
        self.sender.client = client
        await old.aclose()
        self.sender.nudge()

    @property
    def online(self) -> bool | None:
        return self.sender.online

    def _went(self, online: bool) -> None:
        self.sender.set_online(online)  # one notion of online for reads and delivery

    # --- reads ------------------------------------------------------------------------------------

    async def station(self) -> StationInfo:
        try:
            self.info = await self.client.station()
        except BackendUnreachable:
            self._went(False)
            cached = self.reads.get("station", StationInfo)
            if cached is None:
                raise
            self.info = cached
            return cached
        self._went(True)
        self.reads.put("station", self.info)
        await self.refresh_credentials()
        return self.info

    async def refresh_credentials(self) -> None:
        """Fetch the offline credential cache; a failure leaves the previous one in place."""
        with contextlib.suppress(BackendUnreachable):
            self.identity.store(await self.client.credential_cache())

    async def queue(self) -> list[TravelerSummary]:
        try:
            found = await self.client.queue()
        except BackendUnreachable:
            self._went(False)
            cached = self.reads.get("queue", _QUEUE)
            if cached is None:
                raise
            return cached
        self._went(True)
        self.reads.put("queue", list(found))
        return found

    async def traveler(self, number: str) -> Traveler:
        """The traveler as the server has it, with this station's undelivered actions on top."""
        number = number.strip().upper()
        try:
            trav = await self.client.traveler(number)
            self._went(True)
            self.reads.put(f"traveler:{number}", trav)
        except BackendUnreachable:
            self._went(False)
            cached = self.reads.get(f"traveler:{number}", Traveler)
            if cached is None:
                raise BackendUnreachable(
                    f"The server cannot be reached and {number} was not opened on this station "
                    "before, so it is not available offline."
                ) from None
            trav = cached
        return self._with_pending(trav)

    def _with_pending(self, trav: Traveler) -> Traveler:
        for entry in self.outbox.entries("pending", traveler=trav.number):
            with contextlib.suppress(rules.Refusal):
                trav = project(trav, entry.action, self._context(entry))
        return trav

    def _context(self, entry: Entry) -> Context:
        return Context(
            actor=entry.person,
            signer=entry.signer,
            station=self.info.name if self.info else "this station",
            work_center=self.info.work_center if self.info else "",
            now=entry.recorded_at,
            local_id=-entry.seq,
        )

    # --- people -----------------------------------------------------------------------------------

    async def login(self, badge: str) -> Person:
        try:
            person = await self.client.login(badge)
        except BackendUnreachable:
            self._went(False)
            return self.identity.badge_in(
                badge, self.info.work_center if self.info else "", self.clock()
            )
        self._went(True)
        # The server now holds this person's verifier for this station: take it along, so they can
        # be identified here if the network drops later.
        await self.refresh_credentials()
        return person

    async def identify(self, creds: Credentials) -> Proof:
        """Badge + PIN for a signature: by the server when it answers, else from the cache.

        The PIN goes no further than this call: the outbox gets a ticket or an attestation.
        """
        try:
            verified = await self.client.verify(creds)
        except BackendUnreachable:
            self._went(False)
            person, attestation = self.identity.attest(creds, self.clock())
            return Proof(signer=person, attestation=attestation)
        self._went(True)
        return Proof(signer=verified.person, ticket=verified.ticket)

    # --- actions ----------------------------------------------------------------------------------

    async def record(
        self, action: Action, actor: Person, trav: Traveler, signer: Person | None = None
    ) -> Recorded:
        """Check with the shared rules, commit to the outbox, show it; deliver in the background."""
        offline = self.online is False
        action = action.model_copy(update={"station_time": self.clock(), "offline": offline})
        context = Context(
            actor=actor,
            signer=signer,
            station=self.info.name if self.info else "this station",
            work_center=self.info.work_center if self.info else "",
            now=self.clock(),
            local_id=-1,
        )
        projected = project(trav, action, context)  # raises Refusal: nothing recorded
        entry = await asyncio.to_thread(self.outbox.record, action, actor, signer)
        self.sender.nudge()
        if offline:
            return Recorded(
                entry,
                projected,
                "Recorded on this station; it will be sent when the server is back.",
                False,
            )
        return await self._await_answer(entry, projected)

    async def _await_answer(self, entry: Entry, projected: Traveler) -> Recorded:
        """Online, the server answers within moments: show its word, not our projection."""
        deadline = asyncio.get_running_loop().time() + DELIVERY_WAIT
        while asyncio.get_running_loop().time() < deadline:
            current = self.outbox.get(entry.seq)
            if current.state == "applied":
                trav = await self.traveler(entry.traveler)
                return Recorded(current, trav, current.message or "Recorded.", True)
            if current.state == "refused":
                raise RuleRefused(
                    f"{current.message} The action is kept on this station for a supervisor.",
                    rule=current.rule,
                )
            await asyncio.sleep(0.02)
        return Recorded(entry, projected, "Recorded on this station; waiting to be sent.", False)

    def waiting(self) -> int:
        return self.outbox.waiting()

    def refused(self) -> list[Entry]:
        return self.outbox.entries("refused")
