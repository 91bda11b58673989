"""The station's only road to the backend: HTTP client, typed errors, outbox, keyring, identity."""

from typing import TYPE_CHECKING, Any

from kiosk.client.errors import (
    BackendError,
    BackendUnreachable,
    BadResponse,
    Invalid,
    NotFound,
    OnHold,
    RateLimited,
    Refused,
    RuleRefused,
    StationNotEnrolled,
)

if TYPE_CHECKING:
    from kiosk.client.api import ExecutionClient


def __getattr__(name: str) -> Any:
    # The HTTP client (httpx and the wire models, ~0.3 s) loads when first asked for, so that
    # kiosk.client.errors, .embedded or .credentials do not bring it onto the station's first frame.
    if name == "ExecutionClient":
        from kiosk.client.api import ExecutionClient

        return ExecutionClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BackendError",
    "BackendUnreachable",
    "BadResponse",
    "ExecutionClient",
    "Invalid",
    "NotFound",
    "OnHold",
    "RateLimited",
    "Refused",
    "RuleRefused",
    "StationNotEnrolled",
]
