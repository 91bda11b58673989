"""The station's only road to the backend: HTTP client, typed errors, (later) outbox and keyring."""

from kiosk.client.api import ExecutionClient
from kiosk.client.errors import (
    BackendError,
    BackendUnreachable,
    BadResponse,
    Invalid,
    NotFound,
    OnHold,
    Refused,
    RuleRefused,
    StationNotEnrolled,
)

__all__ = [
    "BackendError",
    "BackendUnreachable",
    "BadResponse",
    "ExecutionClient",
    "Invalid",
    "NotFound",
    "OnHold",
    "Refused",
    "RuleRefused",
    "StationNotEnrolled",
]
