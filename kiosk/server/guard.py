"""The request guard: hostile input is refused before any route, model or database sees it.

A pure ASGI middleware in front of the whole API. It looks at the URL, then reads the body once,
at most MAX_BODY_BYTES of it, and parses a JSON body (or one without a type) as strict JSON:

- numbers are finite (no `NaN`, `Infinity`, `-Infinity`, no `1e999`) and fit in a signed 64-bit
  integer (`1e20` too: pydantic would take it for an int), and no number is longer than
  MAX_NUMBER_CHARS characters;
- no text, key or value, holds a NUL (U+0000) or a lone UTF-16 surrogate: neither can be stored
  (PostgreSQL refuses NUL in text, UTF-8 has no encoding for a lone surrogate) or shown;
- objects and arrays nest at most MAX_DEPTH deep, the body holds at most MAX_VALUES values, and
  no object names a key twice;
- the body is UTF-8;
- the path and the query string hold no control character (C0, DEL or C1) and are UTF-8.

A body of another declared type (an upload, some day) is only size-capped: the route that takes
it checks it. Every refusal is a problem+json answer (`request_malformed`, 400, or
`body_too_large`, 413) sent before the application runs, so a refused request changes nothing.
What passes is handed on byte for byte. `describe` writes the same limits into the OpenAPI
document, so a client (or schemathesis) knows them in advance.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal, NoReturn
from urllib.parse import unquote_to_bytes

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kiosk.rules import Refusal
from kiosk.server.idempotency import problem_json

# The largest legitimate body is a batch of 500 queued actions (ActionBatch's limit; a station
# sends 100 at a time). 500 typical actions measure about 150 KB; 500 record_value actions that
# each carry the longest value allowed (2,000 characters) in a script of 3-byte UTF-8 characters
# measure just over 3 MB. 4 MiB leaves room above that and still bounds what one request can make
# the server hold in memory.
MAX_BODY_BYTES = 4 * 1024 * 1024
# The phone's evidence upload (kiosk/server/evidence_api.py): capped by the file store's limit.
UPLOAD_PREFIX = "/upload/"
# A batch nests 5 deep (batch, actions, queued action, action, credentials).
MAX_DEPTH = 32
# A batch of 500 actions holds about 7,000 values.
MAX_VALUES = 100_000
MAX_NUMBER_CHARS = 100
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Parsing runs on a worker thread above this size, so one large body never stalls the event loop.
_THREAD_ABOVE = 64 * 1024

# Not allowed in any string of a body.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Not allowed anywhere in a path or a query string (after percent-decoding).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

# The same rules, as JSON Schema for the OpenAPI document (ECMA-262 regex syntax).
STRING_PATTERN_NOT = "\\u0000"
PARAMETER_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"


class Malformed(Exception):
    """The request cannot be read safely; `detail` says why, in words for the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def refusal(self) -> Refusal:
        return Refusal("request_malformed", self.detail, 400)


class TooLarge(Exception):
    def refusal(self) -> Refusal:
        limit = f"{MAX_BODY_BYTES // (1024 * 1024)} MiB"
        return Refusal(
            "body_too_large", f"The request body is larger than the server accepts ({limit}).", 413
        )


# --- the URL -----------------------------------------------------------------------------------------


def check_target(raw_path: bytes, query: bytes) -> None:
    """Refuse a path or query string that does not decode to UTF-8 free of control characters."""
    _check_url_part(unquote_to_bytes(raw_path), "path")
    if query:
        _check_url_part(unquote_to_bytes(query.replace(b"+", b" ")), "query string")


def _check_url_part(decoded: bytes, where: str) -> None:
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed(f"The URL {where} is not valid UTF-8.") from None
    found = _CONTROL.search(text)
    if found:
        raise Malformed(
            f"The URL {where} contains a control character (U+{ord(found.group()):04X})."
        )


# --- the body ------------------------------------------------------------------------------------------


def parse_body(body: bytes) -> object:
    """Parse `body` as strict JSON and check every value; raise Malformed when it is refused."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(f"The request body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        document = json.loads(
            text,
            parse_int=_integer,
            parse_float=_real,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        raise Malformed(
            f"The request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except RecursionError:
        raise _too_deep() from None
    _walk(document)
    return document


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        _refuse_number(text, "is too long")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        _refuse_number(text, "is outside the signed 64-bit range the server stores")
    return value


def _real(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        _refuse_number(text, "is too long")
    value = float(text)
    if not math.isfinite(value) or not INT64_MIN <= value <= INT64_MAX:
        # Written with a fraction or an exponent, a number still goes into an integer field
        # (pydantic takes 1e20 for an int), so the same range holds for every number.
        _refuse_number(text, "is outside the signed 64-bit range the server stores")
    return value


def _constant(name: str) -> NoReturn:
    raise Malformed(
        f"The request body contains {name}, which is not a JSON number: numbers must be finite."
    )


def _refuse_number(text: str, why: str) -> NoReturn:
    shown = text if len(text) <= 24 else f"{text[:20]}… ({len(text)} characters)"
    raise Malformed(f"The number {shown} in the request body {why}.")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    made: dict[str, Any] = {}
    for key, value in pairs:
        if key in made:
            raise Malformed(
                f"The key {_shown(key)} appears twice in one object of the request body."
            )
        made[key] = value
    return made


def _walk(document: object) -> None:
    """Depth, size and text checks over the parsed body, iteratively (no recursion to exhaust)."""
    stack: list[tuple[object, int]] = [(document, 0)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise Malformed(f"The request body holds more than {MAX_VALUES:,} values.")
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict):
            if depth >= MAX_DEPTH:
                raise _too_deep()
            for key, item in value.items():
                _check_text(key)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth >= MAX_DEPTH:
                raise _too_deep()
            stack.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return
    char = found.group()
    what = "a NUL character" if char == "\x00" else "a lone UTF-16 surrogate"
    raise Malformed(f"A text in the request body contains {what} (U+{ord(char):04X}).")


def _too_deep() -> Malformed:
    return Malformed(f"The request body nests deeper than {MAX_DEPTH} levels.")


def _shown(text: str) -> str:
    return json.dumps(text if len(text) <= 20 else text[:20] + "…")


# --- the middleware ------------------------------------------------------------------------------------


class RequestGuard:
    """ASGI middleware: refuse hostile requests with a problem+json 4xx; pass the rest on intact."""

    def __init__(
        self, app: ASGIApp, *, max_body: int = MAX_BODY_BYTES, max_upload: int | None = None
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload
        """The cap of an evidence upload (UPLOAD_PREFIX), whose route checks the file itself."""

    def _limit(self, scope: Scope) -> int:
        if self.max_upload is not None and scope["path"].startswith(UPLOAD_PREFIX):
            return max(self.max_upload, self.max_body)
        return self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_target(scope.get("raw_path") or scope["path"].encode(), scope["query_string"])
            limit = self._limit(scope)
            self._check_declared_length(scope, limit)
            body, more = await self._read(receive, limit)
            if body and _is_json(scope):
                if len(body) > _THREAD_ABOVE:
                    await anyio.to_thread.run_sync(parse_body, body)
                else:
                    parse_body(body)
        except (Malformed, TooLarge) as refused:
            await _answer(send, refused.refusal())
            return
        await self.app(scope, replay(body, more, receive), send)

    def _check_declared_length(self, scope: Scope, limit: int) -> None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise Malformed("The Content-Length header is not a number.") from None
                if declared > limit:
                    raise TooLarge()

    async def _read(self, receive: Receive, limit: int) -> tuple[bytes, bool]:
        """The whole body (at most max_body bytes), and whether the client is still connected."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), False  # the client left: let the app see that
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise TooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), True


def media_type(scope: Scope) -> bytes | None:
    """The request's Content-Type without its parameters, in lower case; None without one."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower()
    return None


def _is_json(scope: Scope) -> bool:
    """A JSON body, or one without a type: what FastAPI would read as JSON, and more."""
    media = media_type(scope)
    return media is None or media == b"application/json" or media.endswith(b"+json")


def replay(body: bytes, connected: bool, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then whatever the client sends."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if connected:
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}
        return await receive()

    return replay


async def _answer(send: Send, refusal: Refusal) -> None:
    content = problem_json(refusal).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(content)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


# --- the same limits in the OpenAPI document -------------------------------------------------------


def describe(schema: Any) -> None:
    """Write the guard's limits into an OpenAPI document (in place), wherever a schema allows a
    value the guard refuses: numbers get signed 64-bit bounds, strings in a body exclude NUL,
    and path and query parameters exclude control characters."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", ()):
                if "schema" in parameter:
                    # A header cannot carry a control character at all (HTTP forbids it).
                    in_url = parameter.get("in") in ("path", "query")
                    _bound(parameter["schema"], "url" if in_url else "header")
            for media in operation.get("requestBody", {}).get("content", {}).values():
                if "schema" in media:
                    _bound(media["schema"], "body")
    for component in schema.get("components", {}).get("schemas", {}).values():
        _bound(component, "body")


_SUBSCHEMA = ("items", "additionalProperties", "contains", "propertyNames")
_SUBSCHEMAS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs")


def _bound(node: Any, where: Literal["url", "header", "body"]) -> None:
    """Bound one JSON Schema and its subschemas, for a value in a URL, a header or a body."""
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in ("integer", "number"):
        if "minimum" not in node and "exclusiveMinimum" not in node:
            node["minimum"] = INT64_MIN
        if "maximum" not in node and "exclusiveMaximum" not in node:
            node["maximum"] = INT64_MAX
    elif kind == "string" and not {"enum", "const", "format", "pattern", "not"} & node.keys():
        if where == "url":
            node["pattern"] = PARAMETER_PATTERN
        elif where == "body":
            node["not"] = {"pattern": STRING_PATTERN_NOT}
    for key in _SUBSCHEMA:
        _bound(node.get(key), where)
    for key in _SUBSCHEMAS:
        for child in node.get(key, ()):
            _bound(child, where)
    for key in _SCHEMA_MAPS:
        for child in node.get(key, {}).values():
            _bound(child, where)
