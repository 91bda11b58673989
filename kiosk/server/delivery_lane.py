"""The stations' delivery, answered without the general-purpose layers of the framework.

Every value, scan and sign-off a station records reaches the server as a delivered batch
(POST /api/v1/actions/batch): at plant scale it is nearly every request. Through FastAPI, most of
such a request's time on the event loop went to routing through the included routers, solving
its dependencies, reading the body a second time, and the per-request exit stacks; the delivery
itself was a sixth of it (a profile under the plant benchmark, scripts/bench_plant.py).

This lane sits inside the request guard (kiosk.server.guard), so what reaches it is strict JSON
of at most its size. For the common case, a JSON body on POST to that one path, it does what the
route does (kiosk.server.api.perform_batch): validate the body as an ActionBatch, take the bearer
token as presented, deliver, answer. A refusal or an error is answered by the app's own
exception handlers, as the route's would be, and an invalid body in the same words. Anything
else (another path or method, no body, another content type) goes on to the app: the route stays
the one the OpenAPI document describes, and answers whatever the lane does not take.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from kiosk.server.api import bearer, deliver
from kiosk.server.guard import media_type, replay
from kiosk.server.observe import BATCH
from kiosk.server.service import ExecutionService, Presented
from kiosk.wire import ActionBatch


@dataclass(frozen=True)
class RouteTemplate:
    """What the router would record in the scope: the metrics name a request by its route."""

    path: str


_ROUTE = RouteTemplate(BATCH)


class DeliveryLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _taken(scope):
            await self.app(scope, receive, send)
            return
        message = await receive()  # the guard hands on the body whole, in one message
        connected = message["type"] == "http.request"
        body = message.get("body", b"") if connected else b""
        if not body:
            await self.app(scope, replay(body, connected, receive), send)
            return
        scope["route"] = _ROUTE
        request = Request(scope, receive, send)
        try:
            response = await _deliver(request, body)
        except Exception as exc:  # noqa: BLE001 - answered by the app's handlers, as a route's
            response = await _handled(request, exc)
        await response(scope, receive, send)


def _taken(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != BATCH:
        return False
    return media_type(scope) == b"application/json"


async def _deliver(request: Request, body: bytes) -> Response:
    batch = _batch(body)
    svc: ExecutionService = request.app.state.service
    return await deliver(svc, Presented(bearer(request.headers.get("authorization"))), batch)


def _batch(body: bytes) -> ActionBatch:
    """The batch as the route reads it. Validating the JSON itself is the quick way; a body it
    refuses is read again as the route reads it, as a parsed document, so that it is refused in
    the route's words (pydantic names some errors differently in JSON: "a valid array", not "a
    valid tuple"), or taken, should the two ever disagree."""
    try:
        return ActionBatch.model_validate_json(body)
    except ValidationError:
        pass
    try:
        return ActionBatch.model_validate(json.loads(body), from_attributes=True)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors, body=body) from None


async def _handled(request: Request, exc: Exception) -> Response:
    """The app's handler for `exc`, as Starlette would choose it; with none (or one that gives
    it back, a bug), it goes on up to the error middleware: a logged 500."""
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        handler = handlers.get(kind)
        if handler is not None and kind is not Exception:
            answered = handler(request, exc)
            response: Response = await answered if inspect.isawaitable(answered) else answered
            return response
    raise exc
