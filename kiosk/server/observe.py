"""What an operator of the server watches: request ids, /ready, /metrics.

`Observe` is the outermost ASGI layer, outside even Starlette's error middleware, so that every
answer, a refusal of the request guard and a 500 included, carries `X-Request-Id`, every log line
written while it is answered carries the same id (kiosk.server.logs), and every answer is counted
by its route template. An incoming `X-Request-Id` (a proxy's, a load balancer's) is kept when it
is sane: 8 to 128 letters, digits and `._:-`; otherwise the server makes one.

Actions applied and refused are counted here, from the answers of the two action routes
(an action answered 2xx was applied; a problem names its rule; a batch answers one outcome per
action), so the domain knows nothing of metrics. A delivery retried with the same key is answered
from the idempotency store and counted again: the counter counts answers.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kiosk.rules import Refusal
from kiosk.server import schema as t
from kiosk.server.idempotency import problem_json
from kiosk.server.logs import REQUEST_ID
from kiosk.server.metrics import HttpMetrics, PlantCollector, exposition
from kiosk.server.store import Store
from kiosk.wire import Problem

log = logging.getLogger(__name__)

HEADER = "x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ONE_ACTION = "/api/v1/actions"
BATCH = "/api/v1/actions/batch"
# A batch answer of 500 outcomes is well under this; past it, outcomes go uncounted.
_MAX_CAPTURE = 4 * 1024 * 1024
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Observed:
    """Per app: its counters, the database gauges, and how /ready and /metrics behave."""

    metrics: HttpMetrics
    plant: PlantCollector
    metrics_token: str | None = field(default=None, repr=False)
    ready_timeout: float = 5.0


def request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == HEADER.encode():
            offered = bytes(value).decode("latin-1")
            if _SANE_ID.fullmatch(offered):
                return offered
            break
    return uuid.uuid4().hex


@dataclass
class _Answer:
    """What was sent back: the status, and the body when the action counters need it."""

    status: int = 500  # nothing sent at all (the client left, or a bug): not a success
    capture: bool = False
    body: bytearray = field(default_factory=bytearray)

    def seen(self, message: Message, rid: str) -> Message:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            headers = [*message.get("headers", ()), (HEADER.encode(), rid.encode())]
            return {**message, "headers": headers}
        body = message["type"] == "http.response.body"
        if body and self.capture and len(self.body) < _MAX_CAPTURE:
            self.body += message.get("body", b"")
        return message


class Observe:
    """Request id, counters and latency around the whole application."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute], observed: Observed) -> None:
        self.app = app
        self.routes = routes
        self.observed = observed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        # Not reset afterwards: uvicorn logs an unhandled exception after the app has returned,
        # in this same task, and that line needs the id too. Each request has its own task.
        REQUEST_ID.set(rid)
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        answer = _Answer(capture=method == "POST" and scope["path"] in (ONE_ACTION, BATCH))
        started = time.perf_counter()

        async def tap(message: Message) -> None:
            await send(answer.seen(message, rid))

        try:
            await self.app(scope, receive, tap)
        finally:
            route = self.route_of(scope)
            metrics = self.observed.metrics
            metrics.request(method, route, answer.status, time.perf_counter() - started)
            if answer.capture and route in (ONE_ACTION, BATCH):
                count_actions(metrics, route, answer.status, bytes(answer.body))

    def route_of(self, scope: Scope) -> str:
        """The route template (`/api/v1/travelers/{number}`), never the raw path: one series per
        route however many travelers there are. The router records the route it chose; a
        request refused before routing (the guard) is matched here."""
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        for route in self.routes:
            matched, _ = route.matches(scope)
            if matched is not Match.NONE:
                return str(getattr(route, "path", "unmatched"))
        return "unmatched"


def count_actions(metrics: HttpMetrics, route: str, status: int, body: bytes) -> None:
    if route == ONE_ACTION:
        if status < 400:
            metrics.applied()
        else:
            metrics.refused(_rule(_parsed(body)) or f"http_{status}")
        return
    if status >= 400:
        return  # the batch as a whole was refused (not enrolled, unreadable): no action answered
    outcomes = _parsed(body).get("outcomes")
    for outcome in outcomes if isinstance(outcomes, list) else ():
        if not isinstance(outcome, dict):
            continue
        code = outcome.get("status")
        if isinstance(code, int) and code < 400:
            metrics.applied()
        else:
            metrics.refused(_rule(outcome.get("problem")) or f"http_{code}")


def _parsed(body: bytes) -> dict[str, Any]:
    try:
        found = json.loads(body)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _rule(problem: object) -> str | None:
    rule = problem.get("rule") if isinstance(problem, dict) else None
    return rule if isinstance(rule, str) and rule else None


# --- /ready and /metrics -------------------------------------------------------------------------

ops = APIRouter()


def _observed(request: Request) -> Observed:
    found: Observed = request.app.state.observed
    return found


def _problem(refusal: Refusal, headers: dict[str, str] | None = None) -> Response:
    return Response(
        problem_json(refusal), status_code=refusal.status, media_type=PROBLEM, headers=headers
    )


def check_database(store: Store) -> None:
    """A real query on the schema, not only a connection: the schema version row."""
    with store.read() as conn:
        version = conn.execute(
            select(t.meta.c.value).where(t.meta.c.key == "schema_version")
        ).scalar_one_or_none()
    if version is None:
        raise LookupError("the database holds no kiosk schema")


@ops.get(
    "/ready",
    summary="Readiness: the database answers",
    responses={
        200: {"description": "Ready: the database answered a query"},
        503: {"model": Problem, "description": "Not ready (rule `database_unavailable`)"},
    },
)
async def ready(request: Request) -> Response:
    """200 when a query on the database answers within the server's ready_timeout; 503 with a
    problem otherwise. `/health` says only that the process answers."""
    observed = _observed(request)
    store: Store = request.app.state.service.store
    try:
        # On a thread: a database that hangs must not hold the event loop.
        await asyncio.wait_for(asyncio.to_thread(check_database, store), observed.ready_timeout)
    except Exception as exc:
        log.warning("not ready: database: %s", _why(exc, observed.ready_timeout))
        refusal = Refusal(
            "database_unavailable", "The server cannot reach its database; not ready.", 503
        )
        return _problem(refusal, {"Retry-After": "5"})
    return JSONResponse({"status": "ready"})


def _why(exc: Exception, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return (str(exc).splitlines() or [type(exc).__name__])[0]


@ops.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format (or OpenMetrics when the scraper asks for it). A sync route:
    the database gauges are read on a worker thread, never on the event loop."""
    observed = _observed(request)
    if observed.metrics_token is not None and not _token_ok(request, observed.metrics_token):
        refusal = Refusal(
            "metrics_token_required", "GET /metrics needs the metrics token of this server.", 401
        )
        return _problem(refusal, {"WWW-Authenticate": 'Bearer realm="metrics"'})
    body, content_type = exposition(observed.metrics, observed.plant, request.headers.get("accept"))
    return Response(body, media_type=content_type)


def _token_ok(request: Request, expected: str) -> bool:
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.encode()
    )
