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

from kiosk.identity import badge_verifier

# OWASP's minimum argon2id profile (m=19 MiB, t=2, p=1): about 25 ms here, affordable on a thin
# client, and a 4-6 digit PIN is protected by the online lockout rather than by hash cost anyway.
_PIN_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


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
