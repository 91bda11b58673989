"""Identifying people while the server is unreachable, from the credential cache it gave us.

The cache holds badge verifiers keyed for this station and argon2 PIN hashes: never a badge
number, never a PIN. It is good for the window the server set (8 hours by default) after it was
issued; past that, the station refuses to sign offline and says why.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from kiosk.client.errors import Refused
from kiosk.client.reads import ReadCache
from kiosk.identity import badge_verifier
from kiosk.wire import CachedPerson, CredentialCache, Credentials, Person, StationAttestation

CACHE_KEY = "credential-cache"
MAX_OFFLINE_PIN_FAILURES = 5
_HASHER = PasswordHasher()


class OfflineIdentity:
    def __init__(self, reads: ReadCache) -> None:
        self.reads = reads
        self._failures: dict[int, int] = {}

    def store(self, cache: CredentialCache) -> None:
        self.reads.put(CACHE_KEY, cache)
        self._failures.clear()

    def cache(self) -> CredentialCache | None:
        return self.reads.get(CACHE_KEY, CredentialCache)

    def valid_until(self) -> datetime | None:
        cache = self.cache()
        return None if cache is None else cache.issued_at + timedelta(hours=cache.window_hours)

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
                "sign offline. Reconnect the station, then sign.",
                rule="offline_window_expired",
            )
        return cache

    def _find(self, cache: CredentialCache, badge: str) -> CachedPerson:
        verifier = badge_verifier(bytes.fromhex(cache.station_key), badge)
        found = next((p for p in cache.people if p.badge_verifier == verifier), None)
        if found is None:
            raise Refused(
                "Badge not known to this station while offline: it can identify only people who "
                "have signed in here before.",
                rule="badge_unknown",
            )
        if found.locked or self._failures.get(found.person.id, 0) >= MAX_OFFLINE_PIN_FAILURES:
            raise Refused(
                f"{found.person.name} is locked; a supervisor must unlock.", rule="person_locked"
            )
        return found

    def badge_in(self, badge: str, work_center: str, now: datetime) -> Person:
        found = self._find(self._usable(now), badge)
        if "*" not in found.work_centers and work_center not in found.work_centers:
            raise Refused(
                f"{found.person.name} is not qualified for work center {work_center}.",
                rule="not_qualified",
            )
        return found.person

    def attest(self, creds: Credentials, now: datetime) -> tuple[Person, StationAttestation]:
        """Badge + PIN checked against the cache: who signs, and the station's word for it."""
        found = self._find(self._usable(now), creds.badge)
        try:
            _HASHER.verify(found.pin_hash, creds.pin)
        except (VerificationError, InvalidHashError):
            failures = self._failures.get(found.person.id, 0) + 1
            self._failures[found.person.id] = failures
            left = MAX_OFFLINE_PIN_FAILURES - failures
            raise Refused(
                f"Wrong PIN. {left} {'try' if left == 1 else 'tries'} left before lock-out."
                if left > 0
                else f"Wrong PIN. {found.person.name} is now locked; a supervisor must unlock.",
                rule="pin_wrong" if left > 0 else "person_locked",
            ) from None
        self._failures.pop(found.person.id, None)
        return found.person, StationAttestation(signer_id=found.person.id, verified_at=now)
