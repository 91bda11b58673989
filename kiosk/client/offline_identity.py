"""Identifying people while the server is unreachable, from the credential cache it gave us.

The cache holds no badge number and no PIN: per person, a verifier derived from the badge by
argon2id, their actor key wrapped under a key from the badge, and their signing key wrapped under
argon2id(badge + PIN). A badge-in unwraps the actor key, which MACs what the person records; a
signature unwraps the signing key (a wrong PIN fails to unwrap it), which MACs that one action and
is forgotten. The server holds the same keys and checks every MAC, so this station's word alone
names nobody. The cache is good for the window the server set (8 hours by default) after it was
issued. Wrong PINs are counted in the station's own database: a restart or a fresh cache does not
give anyone five more tries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kiosk import rules
from kiosk.client.errors import Refused
from kiosk.client.local_db import LocalDb
from kiosk.client.reads import ReadCache
from kiosk.identity import WrongKey, badge_key, cache_context, pin_key, unwrap
from kiosk.wire import CachedPerson, CredentialCache, Credentials, Person

CACHE_KEY = "credential-cache"
MAX_OFFLINE_PIN_FAILURES = 5
NOT_ACCEPTED = "Badge or PIN not accepted. Repeated wrong PINs lock the badge."
LOCKED = "This badge is locked after repeated wrong PINs; a supervisor must unlock it."


@dataclass(frozen=True)
class HeldKey:
    """A person's key for this station, unwrapped from cache `cache_id`: in memory only."""

    cache_id: int
    secret: bytes = field(repr=False)


class OfflineIdentity:
    def __init__(self, reads: ReadCache, db: LocalDb) -> None:
        self.reads = reads
        self.db = db

    def store(self, cache: CredentialCache) -> None:
        self.reads.put(CACHE_KEY, cache)

    def cache(self) -> CredentialCache | None:
        return self.reads.get(CACHE_KEY, CredentialCache)

    def valid_until(self) -> datetime | None:
        cache = self.cache()
        return None if cache is None else cache.issued_at + timedelta(hours=cache.window_hours)

    # --- wrong PINs, kept on disk ---------------------------------------------------------------

    def failures(self, person_id: int) -> int:
        rows = self.db.query("SELECT failures FROM pin_failures WHERE user_id = ?", (person_id,))
        return int(rows[0]["failures"]) if rows else 0

    def _count_failure(self, person_id: int) -> int:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO pin_failures (user_id, failures) VALUES (?, 1) "
                "ON CONFLICT (user_id) DO UPDATE SET failures = failures + 1",
                (person_id,),
            )
        return self.failures(person_id)

    def clear_failures(self, person_id: int) -> None:
        """The PIN was right (here, or at the server): the count starts again."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM pin_failures WHERE user_id = ?", (person_id,))

    # --- identifying ----------------------------------------------------------------------------

    def _usable(self, now: datetime) -> CredentialCache:
        cache = self.cache()
        if cache is None:
            raise Refused(
                "The server cannot be reached and this station has no credential cache yet: "
                "nobody can be identified offline until it has been online once.",
                rule="offline_no_cache",
            )
        until = cache.issued_at + timedelta(hours=cache.window_hours)
        if now > until:
            raise Refused(
                f"The server has been unreachable since before {until:%Y-%m-%d %H:%M} UTC: the "
                f"offline credential window ({cache.window_hours:g} h) has run out, so nobody can "
                "be identified offline. Reconnect the station.",
                rule="offline_window_expired",
            )
        return cache

    def _find(self, cache: CredentialCache, badge: str) -> tuple[CachedPerson, bytes] | None:
        """The cached person holding `badge`, and the key that unwraps their actor key."""
        derived = badge_key(badge, bytes.fromhex(cache.badge_salt), cache.kdf)
        found = next((p for p in cache.people if p.badge_verifier == derived.verifier), None)
        return None if found is None else (found, derived.wrapping)

    def _locked(self, found: CachedPerson) -> bool:
        return found.locked or self.failures(found.person.id) >= MAX_OFFLINE_PIN_FAILURES

    def actor_key(self, cache: CredentialCache, found: CachedPerson, wrapping: bytes) -> HeldKey:
        context = cache_context(cache.station_id, found.person.id, "act")
        return HeldKey(cache.id, unwrap(wrapping, found.actor_key, context))

    def badge_in(self, badge: str, work_center: str, now: datetime) -> tuple[Person, HeldKey]:
        """An offline badge-in: who it is, and their actor key for what they record."""
        cache = self._usable(now)
        match = self._find(cache, badge)
        if match is None:
            raise Refused(
                "Badge not known to this station while offline: it can identify only people who "
                "have signed in here before.",
                rule="badge_unknown",
            )
        found, wrapping = match
        if self._locked(found):
            raise Refused(f"{found.person.name} is locked; a supervisor must unlock.", rule="person_locked")
        rules.ensure_qualified(found.person, work_center)
        return found.person, self.actor_key(cache, found, wrapping)

    def unwrap_for(self, person: Person, badge: str) -> HeldKey | None:
        """Online badge-in: the person's actor key too, so that what they record can still be
        proven if the network drops or their session ends before it is delivered."""
        cache = self.cache()
        match = None if cache is None else self._find(cache, badge)
        if cache is None or match is None or match[0].person.id != person.id:
            return None
        try:
            return self.actor_key(cache, *match)
        except WrongKey:
            return None

    def attest(self, creds: Credentials, now: datetime) -> tuple[Person, HeldKey]:
        """Badge + PIN for an offline signature: who signs, and the key that proves it."""
        cache = self._usable(now)
        match = self._find(cache, creds.badge)
        if match is None:
            raise Refused(NOT_ACCEPTED, rule="credentials_not_accepted")
        found = match[0]
        if self._locked(found):
            raise Refused(LOCKED, rule="person_locked")
        if found.signing_key is None:
            raise Refused(
                "This person cannot sign offline at this station yet: they must sign once while "
                "it is online.",
                rule="offline_signing_unavailable",
            )
        salt = bytes.fromhex(found.pin_salt)
        context = cache_context(cache.station_id, found.person.id, "sign")
        try:
            key = unwrap(pin_key(creds.badge, creds.pin, salt, cache.kdf), found.signing_key, context)
        except WrongKey:
            if self._count_failure(found.person.id) >= MAX_OFFLINE_PIN_FAILURES:
                raise Refused(LOCKED, rule="person_locked") from None
            raise Refused(NOT_ACCEPTED, rule="credentials_not_accepted") from None
        self.clear_failures(found.person.id)
        return found.person, HeldKey(cache.id, key)
