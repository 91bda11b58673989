"""Secrets of the reference server: keyed badge hashes, argon2 PINs, station tokens.

Badge numbers are identifiers with little entropy, so a plain hash falls to brute force; they are
stored only as HMAC-SHA256 under the plant secret, which lives outside the database. PINs are
argon2id hashes. Station tokens are long random strings, stored as SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from kiosk.identity import badge_verifier, unwrap, wrap
from kiosk.wire import KdfParams

# OWASP's minimum argon2id profile (m=19 MiB, t=2, p=1): about 25 ms here, affordable on a thin
# client, and a 4-6 digit PIN is protected by the online lockout rather than by hash cost anyway.
_PIN_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# The same cost for every guess at a badge, or a badge's PIN, against a stolen station cache.
CACHE_KDF = KdfParams(time_cost=2, memory_kib=65536, parallelism=1)

# Test rigs only: the test suite sets KIOSK_ARGON2_FLOOR=1 for itself and every process it starts,
# so its thousands of badge-ins and enrolments cost argon2 at the floor the wire allows rather than
# minutes of CPU. A plant never sets it: keys derived under one cost open only under that cost, and
# `kiosk serve` warns when it is set.
ARGON2_FLOOR = os.environ.get("KIOSK_ARGON2_FLOOR") == "1"
if ARGON2_FLOOR:
    _PIN_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    CACHE_KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)


class PlantSecret:
    """The plant secret: keys badge hashes. Never stored in the database it protects."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the plant secret must be at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "PlantSecret(<hidden>)"

    @classmethod
    def load_or_create(cls, path: Path) -> PlantSecret:
        """Read the secret file, creating it (mode 0600) on first use."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return cls.load(path)

    @classmethod
    def load(cls, path: Path) -> PlantSecret:
        return cls(bytes.fromhex(path.read_text().strip()))

    def badge_hash(self, badge: str) -> str:
        return badge_verifier(self._key, badge)

    def checkpoint_key(self) -> bytes:
        """MACs audit checkpoints: without it, a rewritten chain cannot be made to look sealed."""
        return hmac.new(self._key, b"audit-checkpoint", hashlib.sha256).digest()

    def audit_key(self) -> bytes:
        """MACs every audit record's hash, so the first record of a rewrite is named."""
        return hmac.new(self._key, b"audit-record", hashlib.sha256).digest()

    def _sealing_key(self) -> bytes:
        return hmac.new(self._key, b"key-seal", hashlib.sha256).digest()

    def seal(self, secret: bytes, context: str) -> str:
        """Keep a key in the database that only this plant secret opens."""
        return wrap(self._sealing_key(), secret, context)

    def unseal(self, sealed: str, context: str) -> bytes:
        return unwrap(self._sealing_key(), sealed, context)

    def station_key(self, station_id: int) -> bytes:
        """A key for one station's offline cache: useless at any other station."""
        return hmac.new(self._key, f"station-cache:{station_id}".encode(), hashlib.sha256).digest()


def hash_pin(pin: str) -> str:
    return _PIN_HASHER.hash(pin)


def pin_matches(pin_hash: str, pin: str) -> bool:
    try:
        return _PIN_HASHER.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
