"""Errors of the execution API as the station sees them: one type per thing a person can act on."""

from __future__ import annotations


class BackendError(Exception):
    """Base of every error the client raises; `detail` is a sentence fit for the screen."""

    def __init__(self, detail: str, *, rule: str | None = None, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.rule = rule
        self.status = status


class BackendUnreachable(BackendError):
    """No answer: the server is down, the network is out, or it took too long."""


class StationNotEnrolled(BackendError):
    """401: the station token is missing, wrong or revoked."""


class Refused(BackendError):
    """403: this person may not do this (role, lock-out, wrong PIN, unknown badge)."""


class RateLimited(Refused):
    """429: too many tries of something (unknown badges at this station); wait and try again."""


class NotFound(BackendError):
    """404: no such traveler, step or item."""


class RuleRefused(BackendError):
    """409: a domain rule said no (predecessor incomplete, step already signed, ...)."""


class OnHold(RuleRefused):
    """409 with rule traveler_on_hold: nothing proceeds on a traveler that is on hold."""


class Invalid(BackendError):
    """422: the request or a value in it is not valid."""


class BadResponse(BackendError):
    """The server answered something that is not the API (garbage, wrong shape, 5xx)."""
