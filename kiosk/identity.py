"""Identification material shared by the server and the station's offline credential cache.

A badge number is an identifier with little entropy, so it is only ever kept as an HMAC under a
key (the plant secret, on the server) or derived through argon2id (in a station's cache), where
every guess costs the argon2 time. From the badge (and the PIN) the station derives the keys that
unwrap a person's own keys for this station, which MAC the actions they record while offline; the
server holds the same keys and checks the MACs. `cryptography` is imported only when a key is
wrapped or unwrapped: the station's start-up path never pays for it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from kiosk.wire import Action, KdfParams

Purpose = Literal["act", "sign"]
"""`act`: the badge-only key that proves an actor; `sign`: the badge + PIN key of a signer."""

# Fields of an action that carry proof: never part of what a proof covers. `offline` is a note
# about delivery that the station may correct after it recorded the action.
PROOF_FIELDS = frozenset(
    {"session", "actor_proof", "credentials", "ticket", "attestation", "offline"}
)


def normalize_badge(badge: str) -> str:
    return badge.strip().upper()


def badge_verifier(key: bytes, badge: str) -> str:
    return hmac.new(key, normalize_badge(badge).encode(), hashlib.sha256).hexdigest()


# --- keys from a badge, or a badge and a PIN ---------------------------------------------------------


@dataclass(frozen=True)
class BadgeKey:
    """argon2id(badge, the cache's salt): finds the person in the cache and unwraps their actor key."""

    secret: bytes

    @property
    def verifier(self) -> str:
        return hmac.new(self.secret, b"kiosk-badge-verifier", hashlib.sha256).hexdigest()

    @property
    def wrapping(self) -> bytes:
        return hmac.new(self.secret, b"kiosk-badge-wrap", hashlib.sha256).digest()


def _argon2(secret: bytes, salt: bytes, kdf: KdfParams) -> bytes:
    from argon2.low_level import Type, hash_secret_raw

    return bytes(
        hash_secret_raw(
            secret,
            salt,
            time_cost=kdf.time_cost,
            memory_cost=kdf.memory_kib,
            parallelism=kdf.parallelism,
            hash_len=32,
            type=Type.ID,
        )
    )


def badge_key(badge: str, salt: bytes, kdf: KdfParams) -> BadgeKey:
    return BadgeKey(_argon2(normalize_badge(badge).encode(), salt, kdf))


def pin_key(badge: str, pin: str, salt: bytes, kdf: KdfParams) -> bytes:
    """argon2id(badge + PIN): the key a person's signing key is wrapped under, at every station."""
    return _argon2(f"{normalize_badge(badge)}\x00{pin.strip()}".encode(), salt, kdf)


# --- wrapping keys (AES-256-GCM: a wrong badge or PIN fails the tag) ----------------------------------


class WrongKey(Exception):
    """The wrapped key did not open: wrong badge or PIN, or a cache entry that was tampered with."""


def wrap(key: bytes, secret: bytes, context: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return (nonce + AESGCM(key).encrypt(nonce, secret, context.encode())).hex()


def unwrap(key: bytes, wrapped: str, context: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = bytes.fromhex(wrapped)
        return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode())
    except (InvalidTag, ValueError):
        raise WrongKey() from None


def cache_context(station_id: int, user_id: int, purpose: Purpose) -> str:
    """Binds a wrapped key to its station, person and purpose: it cannot be moved to another."""
    return f"kiosk-cache:{station_id}:{user_id}:{purpose}"


# --- proofs over actions ------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _plain(value: Any) -> Any:
    """The same JSON on both sides whatever zone a time was written in or read back with."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (moment - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, Enum):
        return value.value
    return value


def proof_message(purpose: Purpose, station_id: int, nonce: str, action: Action) -> bytes:
    """What an offline proof covers: the action as recorded, at this station, once (the nonce)."""
    body = _plain(action.model_dump(exclude=set(PROOF_FIELDS)))
    content = {"purpose": purpose, "station": station_id, "nonce": nonce, "action": body}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def action_mac(key: bytes, purpose: Purpose, station_id: int, nonce: str, action: Action) -> str:
    return hmac.new(
        key, proof_message(purpose, station_id, nonce, action), hashlib.sha256
    ).hexdigest()


def new_nonce() -> str:
    return os.urandom(16).hex()
