"""Badge verifiers shared by the server and the station's offline credential cache.

A badge number is an identifier with little entropy, so it is only ever kept as an HMAC under a
key: the plant secret on the server, a per-station key in a station's cache.
"""

from __future__ import annotations

import hashlib
import hmac


def normalize_badge(badge: str) -> str:
    return badge.strip().upper()


def badge_verifier(key: bytes, badge: str) -> str:
    return hmac.new(key, normalize_badge(badge).encode(), hashlib.sha256).hexdigest()
