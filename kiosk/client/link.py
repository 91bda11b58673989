"""StationLink: everything the station's screens ask of the plant, online or not.

Reads come from the server and are cached; while the server is unreachable they come from the
cache. Every action goes into the outbox first and is shown at once, with this station's pending
actions projected onto the traveler; the sender delivers in the background. People are identified
by the server when it answers, else from the offline credential cache.

Every action goes out with proof of who did it: the person session the server issued at the badge-
in, and a MAC made with the person's own key for this station (unwrapped by their badge), which
stands when the session cannot (offline, or the session ended before delivery). A signature carries
the server's ticket for badge + PIN, or offline a MAC with the key only badge + PIN unwrap.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import TypeAdapter

from kiosk import rules
from kiosk.client.api import ExecutionClient
from kiosk.client.documents import DocumentCache
from kiosk.client.errors import (
    BackendError,
    BackendUnreachable,
    NotFound,
    Refused,
    RuleRefused,
)
from kiosk.client.local_db import LocalDb
from kiosk.client.offline_identity import HeldKey, OfflineIdentity
from kiosk.client.outbox import Entry, Outbox, now_utc
from kiosk.client.projection import CONFIRMED_ID, Context, project
from kiosk.client.reads import CHECKPOINT_KEY, ReadCache, cached_page
from kiosk.client.sender import Connection, Sender
from kiosk.client.station_db import station_db_path
from kiosk.identity import Purpose, action_mac, new_nonce
from kiosk.wire import (
    Action,
    ActionOutcome,
    Checkpoint,
    Credentials,
    Document,
    ItemKind,
    OfflineProof,
    OfflineSignature,
    Person,
    Problem,
    RecordValue,
    SignedAction,
    StationInfo,
    Traveler,
    TravelerSummary,
)

_QUEUE = TypeAdapter(list[TravelerSummary])
DELIVERY_WAIT = 3.0  # seconds an operator waits for the server's own answer before moving on
# What the server's answer to these changes is exactly what the shared rules project on the
# traveler shown, so the answer is applied to it rather than the traveler fetched again. The
# others carry what only the server makes: NCR numbers, rework steps, a signature's record.
APPLIED_HERE = frozenset({"start_step", "pause_step", "record_value", "place_hold", "release_hold"})


@dataclass(frozen=True)
class PersonSession:
    """Who is signed in at this station, and what proves them on the actions they record."""

    person: Person
    token: str | None = field(default=None, repr=False)
    """The server's person session, from an online badge-in (None when identified offline)."""
    actor_key: HeldKey | None = field(default=None, repr=False)
    """Their key for this station, unwrapped by their badge: MACs what they record."""


@dataclass(frozen=True)
class Proof:
    """Who signs, and how the server will know: a ticket (badge + PIN checked online) or the
    signing key that badge + PIN unwrapped offline. Used for one action, then dropped."""

    signer: Person
    ticket: str | None = field(default=None, repr=False)
    signing_key: HeldKey | None = field(default=None, repr=False)

    @property
    def offline(self) -> bool:
        return self.signing_key is not None


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
        self.identity = OfflineIdentity(self.reads, self.db)
        self.clock = clock
        self.connection = Connection()
        """The one connection status: reads, delivery and the status bar go by it."""
        self.sender = Sender(self.outbox, client, on_change=on_change, connection=self.connection)
        if on_change is not None:
            self.connection.follow(lambda _online: on_change())
        self.info: StationInfo | None = None
        self.carried_over = self.outbox.pending_by_traveler()
        """Actions recorded before this start and not delivered then, per traveler: after a
        crash, nobody may have seen them shown as recorded (`restart_notice`)."""
        self._server_copy: Traveler | None = None
        """The traveler last read from the server (with the answers since applied to it),
        without this station's pending actions: what an answer is applied to."""
        self._copy_taken = now_utc()
        self._applied_to_copy: set[int] = set()
        """Outbox entries whose answers were applied to the copy since it was read: any other
        applied since (delivered unseen, say after an outage) makes the copy stale."""
        self._delivery: asyncio.Task[None] | None = None
        self.documents = DocumentCache(data_dir / "documents")
        """Documents' files this station has shown, for showing them again and offline."""

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
        return self.connection.online

    def _went(self, online: bool) -> None:
        self.connection.went(online)  # one notion of online for reads and delivery

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

    async def queue(
        self, *, after: str | None = None, search: str | None = None, limit: int | None = None
    ) -> list[TravelerSummary]:
        """A page of the queue (see ExecutionClient.queue). The first page unsearched is what is
        cached for offline; offline, any page is answered from it, searched here."""
        first = after is None and not search
        try:
            found = await self.client.queue(after=after, search=search, limit=limit)
        except BackendUnreachable:
            self._went(False)
            await self.reads.written()
            cached = self.reads.get("queue", _QUEUE)
            if cached is None:
                raise
            return cached_page(cached, after=after, search=search)
        self._went(True)
        if first:
            self.reads.put_soon("queue", list(found))
        return found

    async def traveler(self, number: str, *, operation: str | None = None) -> Traveler:
        """The traveler as the server has it, with this station's undelivered actions on top;
        only one `operation`'s steps if given (a long routing is read a page at a time). The
        last read of a traveler, whole or one operation, is what is cached for offline."""
        number = number.strip().upper()
        taken = now_utc()  # before the read: what is applied while it is out counts as unseen
        try:
            trav = await self.client.traveler(number, operation=operation)
            self._went(True)
            self.reads.put_soon(f"traveler:{number}", trav)
        except BackendUnreachable:
            self._went(False)
            await self.reads.written()
            cached = self.reads.get(f"traveler:{number}", Traveler)
            if cached is None:
                raise BackendUnreachable(
                    f"The server cannot be reached and {number} was not opened on this station "
                    "before, so it is not available offline."
                ) from None
            trav = cached
            taken = datetime.min.replace(tzinfo=UTC)  # cached when? any answer since is unseen
        self._server_copy, self._copy_taken, self._applied_to_copy = trav, taken, set()
        return self._with_pending(trav)

    async def document_file(self, doc: Document) -> bytes:
        """A document's file: this station's copy, else the server's (its hash checked)."""
        try:
            data = await self.documents.read(self.client, doc)
        except BackendUnreachable:
            self._went(False)
            raise
        return data

    def _with_pending(self, trav: Traveler) -> Traveler:
        for entry in self.outbox.entries("pending", traveler=trav.number):
            with contextlib.suppress(rules.Refusal):
                trav = project(trav, entry.action, self._context(entry))
        return trav

    def _context(self, entry: Entry) -> Context:
        return self._context_now(entry.person, entry.signer, entry.recorded_at, -entry.seq)

    # --- people -----------------------------------------------------------------------------------

    async def login(self, badge: str) -> PersonSession:
        """A badge-in: by the server when it answers (it ends the previous person's session
        here), else from the credential cache."""
        try:
            signed_in = await self.client.login(badge)
        except BackendUnreachable:
            self._went(False)
            work_center = self.info.work_center if self.info else ""
            person, key = await asyncio.to_thread(
                self.identity.badge_in, badge, work_center, self.clock()
            )
            return PersonSession(person, actor_key=key)
        self._went(True)
        # The server now holds this person's entry for this station's cache: take it along, so
        # they can be identified here, and what they record proven, if the network drops.
        await self.refresh_credentials()
        held = await asyncio.to_thread(self.identity.unwrap_for, signed_in.person, badge)
        return PersonSession(signed_in.person, signed_in.session, held)

    async def logout(self, session: PersonSession, reason: str = "sign_out") -> None:
        """End the person's session on the server; offline, it ends there at the next badge-in
        or on expiry, and its key is gone from this station either way."""
        if session.token is not None:
            with contextlib.suppress(BackendError):
                await self.client.logout(session.token, reason)

    async def identify(self, creds: Credentials) -> Proof:
        """Badge + PIN for a signature: by the server when it answers, else from the cache.

        The PIN goes no further than this call: the outbox gets a ticket or an attestation.
        """
        try:
            verified = await self.client.verify(creds)
        except BackendUnreachable:
            self._went(False)
            person, key = await asyncio.to_thread(self.identity.attest, creds, self.clock())
            return Proof(signer=person, signing_key=key)
        self._went(True)
        self.identity.clear_failures(verified.person.id)
        return Proof(signer=verified.person, ticket=verified.ticket)

    # --- actions ----------------------------------------------------------------------------------

    async def record(
        self, action: Action, session: PersonSession, trav: Traveler, proof: Proof | None = None
    ) -> Recorded:
        """Check with the shared rules, prove who did it, commit to the outbox, show it; deliver
        in the background. Online, the caller gets the server's own answer when it comes at once."""
        await self._check_tool(action, trav)  # raises Refusal: nothing recorded
        offline = self.online is False
        now = self.clock().astimezone(UTC)
        action = action.model_copy(
            update={"station_time": now, "offline": offline, "actor_id": session.person.id}
        )
        signer = None if proof is None else proof.signer
        projected = project(trav, action, self._context_now(session.person, signer, now, -1))
        action = self._proven(action, session, proof)
        entry = await asyncio.to_thread(self.outbox.record, action, session.person, signer)
        if offline:
            self.sender.nudge()
            return Recorded(
                entry,
                projected,
                "Recorded on this station; it will be sent when the server is back.",
                False,
            )
        answer = self.sender.answer(entry.key)  # asked before the nudge: no answer is missed
        self.sender.nudge()
        try:
            outcome = await asyncio.wait_for(answer, DELIVERY_WAIT)
        except TimeoutError:
            # A batch read the moment the entry was committed may have been answered before
            # this call asked: the entry itself says so.
            outcome = _outcome_of(await asyncio.to_thread(self.outbox.get, entry.seq))
        finally:
            self.sender.forget(entry.key)
        if outcome is None:
            return Recorded(
                entry, projected, "Recorded on this station; waiting to be sent.", False
            )
        return await self._answered(entry, outcome)

    async def _check_tool(self, action: Action, trav: Traveler) -> None:
        """Online, a scanned tool is checked against the crib register before it is queued: an
        expired or unknown tool is said at once, never parked as a refusal for a supervisor.
        Offline, or from a server that cannot say, the server decides when it gets it."""
        if not isinstance(action, RecordValue) or self.online is False:
            return
        try:
            _step, item = rules.find_item(trav, action.item_id)
        except rules.Refusal:
            return  # an item not on this traveler: the projection says so
        if item.kind is not ItemKind.TOOL:
            return
        code = action.value.strip().upper()
        try:
            tool = await self.client.tool(code)
        except NotFound as exc:
            if exc.rule != "tool_unknown":
                return  # a server without the tool register route
            tool = None
        except BackendUnreachable:
            self._went(False)
            return
        except BackendError:
            return
        rules.ensure_tool_usable(code, tool, self.clock().astimezone(UTC).date())

    async def _answered(self, entry: Entry, outcome: ActionOutcome) -> Recorded:
        """The server's word on an entry just recorded: a refusal is raised, an applied change
        shown as confirmed, on the traveler as it stood plus this change where the shared rules
        say what it did (APPLIED_HERE), else as the server now has it."""
        if outcome.status >= 400:
            problem = outcome.problem
            detail = problem.detail if problem else f"refused ({outcome.status})"
            raise RuleRefused(
                f"{detail} The action is kept on this station for a supervisor.",
                rule=problem.rule if problem else None,
            )
        message = outcome.message or "Recorded."
        done = await asyncio.to_thread(self.outbox.get, entry.seq)
        base = await self._copy_for(entry)
        if base is not None:
            with contextlib.suppress(rules.Refusal):
                ctx = self._context_now(entry.person, entry.signer, entry.recorded_at, CONFIRMED_ID)
                confirmed = project(base, entry.action, ctx)
                self._server_copy = confirmed
                self._applied_to_copy.add(entry.seq)
                await asyncio.to_thread(self.reads.put, f"traveler:{entry.traveler}", confirmed)
                return Recorded(done, self._with_pending(confirmed), message, True)
        return Recorded(done, await self.traveler(entry.traveler), message, True)

    async def _copy_for(self, entry: Entry) -> Traveler | None:
        """The server's copy of the entry's traveler to apply its answer to, if it is current:
        no other entry it does not reflect was applied meanwhile (delivered unseen, say after
        an outage); None when the traveler must be read again."""
        base = self._server_copy
        if entry.kind not in APPLIED_HERE or base is None or base.number != entry.traveler:
            return None
        applied = await asyncio.to_thread(
            self.outbox.applied_since, entry.traveler, self._copy_taken
        )
        return base if applied <= {entry.seq, *self._applied_to_copy} else None

    def _context_now(
        self, actor: Person, signer: Person | None, now: datetime, local_id: int
    ) -> Context:
        return Context(
            actor=actor,
            signer=signer,
            station=self.info.name if self.info else "this station",
            work_center=self.info.work_center if self.info else "",
            now=now,
            local_id=local_id,
            steps_per_person=self.info.config.steps_per_person if self.info else 1,
        )

    def _proven(self, action: Action, session: PersonSession, proof: Proof | None) -> Action:
        """The action with its proofs attached: whatever this station can show the server."""
        if session.token is None and session.actor_key is None:
            raise Refused(
                "This station can no longer prove who you are: scan your badge again.",
                rule="actor_unproven",
            )
        proofs: dict[str, object] = {"session": session.token}
        if session.actor_key is not None:
            proofs["actor_proof"] = self._mac("act", session.actor_key, action)
        if isinstance(action, SignedAction) and proof is not None:
            if proof.ticket is not None:
                proofs["ticket"] = proof.ticket
            elif proof.signing_key is not None:
                made = self._mac("sign", proof.signing_key, action)
                proofs["attestation"] = OfflineSignature(
                    signer_id=proof.signer.id, **made.model_dump()
                )
        return action.model_copy(update=proofs)

    def _mac(self, purpose: Purpose, key: HeldKey, action: Action) -> OfflineProof:
        assert self.info is not None  # a key comes from a cache, which comes with the station
        nonce = new_nonce()
        mac = action_mac(key.secret, purpose, self.info.id, nonce, action)
        return OfflineProof(cache_id=key.cache_id, nonce=nonce, mac=mac)

    def keep_checkpoint(self, checkpoint: Checkpoint | None) -> None:
        """Keep the latest audit checkpoint the server sent: this station's witness of the chain.

        One that goes back (a lower record than the one kept) is not taken: the kept one is the
        evidence that the chain was cut back.
        """
        if checkpoint is None:
            return
        kept = self.reads.get(CHECKPOINT_KEY, Checkpoint)
        if kept is None or checkpoint.seq >= kept.seq:
            self.reads.put(CHECKPOINT_KEY, checkpoint)

    def restart_notice(self) -> str | None:
        """Once, for whoever signs in first: what was kept from before the restart, and where,
        so nobody enters it again; None when nothing was."""
        carried, self.carried_over = self.carried_over, {}
        if not carried:
            return None
        total = sum(carried.values())
        where = ", ".join(list(carried)[:3]) + (" …" if len(carried) > 3 else "")
        them = "it" if total == 1 else "them"
        actions = "action" if total == 1 else "actions"
        return f"Kept from before the restart: {total} {actions} on {where}; do not enter {them} again."

    def waiting(self) -> int:
        return self.outbox.waiting()

    def refused(self) -> list[Entry]:
        return self.outbox.entries("refused")


def _outcome_of(entry: Entry) -> ActionOutcome | None:
    """The answer an entry carries, if it has one (the server's word as the outbox keeps it)."""
    if entry.state == "applied":
        return ActionOutcome(key=entry.key, status=200, message=entry.message)
    if entry.state == "refused":
        problem = Problem(
            title="Refused", status=422, detail=entry.message or "refused", rule=entry.rule
        )
        return ActionOutcome(key=entry.key, status=422, problem=problem)
    return None
