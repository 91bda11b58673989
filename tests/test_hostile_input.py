"""Hostile input over the real socket: integers beyond 64 bits, NaN and Infinity, NUL bytes and lone
surrogates in any string, control characters in the URL, numbers like `1_2.7`, deep and huge
bodies, a mutating POST without Idempotency-Key. Each gets a clear 4xx problem+json answer, and
the plant's database is exactly as it was, row for row. The OpenAPI document says so too."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import select

from kiosk.client import ExecutionClient, Invalid
from kiosk.rules import Refusal, evaluate
from kiosk.server import guard
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import MAX_ID, DataItem, ItemKind
from tests.helpers import Floor, person_ids, raw_http, snapshot

if TYPE_CHECKING:
    from tests.conftest import LiveServer

PROBLEM_KEYS = {"type", "title", "status", "detail", "rule"}


@pytest.fixture
async def raw(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with raw_http(live_server.url, live_server.token("HOSTILE-01")) as http:
        yield http


@pytest.fixture
def floor(client: ExecutionClient, service: ExecutionService) -> Floor:
    return Floor(client, person_ids(service))


def database(service: ExecutionService) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: what "nothing changed" is compared on."""
    with service.store.begin() as conn:
        return {
            table.name: sorted((tuple(row) for row in conn.execute(select(table))), key=repr)
            for table in t.metadata.sorted_tables
        }


def problem(response: httpx.Response, status: int, rule: str) -> str:
    """Assert `response` is the one problem shape with this status and rule; its detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) == PROBLEM_KEYS, body
    assert body["status"] == status
    assert body["rule"] == rule
    assert body["type"] == f"urn:kiosk:rule:{rule}"
    detail = body["detail"]
    assert isinstance(detail, str) and detail.endswith("."), detail
    return detail


def action(**fields: Any) -> dict[str, Any]:
    return {
        "action": {
            "kind": "start_step",
            "actor_id": 1,
            "traveler": "TRV-1001",
            "step_id": 1,
            **fields,
        }
    }


KEY = {"Idempotency-Key": "hostile-key-0001", "Content-Type": "application/json"}
JSON = {"Content-Type": "application/json"}


# --- bodies ------------------------------------------------------------------------------------------

# (what, body, the detail of the 400 answer)
HOSTILE_BODIES: list[tuple[str, str | bytes, str]] = [
    (
        "int-2^63",
        json.dumps(action(actor_id=2**63)),
        "The number 9223372036854775808 in the request body is outside the signed 64-bit "
        "range the server stores.",
    ),
    (
        "int-below-int64",
        json.dumps(action(step_id=-(2**63) - 1)),
        "The number -9223372036854775809 in the request body is outside the signed 64-bit "
        "range the server stores.",
    ),
    (
        "int-400-digits",
        json.dumps(action(actor_id=10**400)),
        "The number 10000000000000000000… (401 characters) in the request body is too long.",
    ),
    (
        "1e20-for-an-int",
        json.dumps(action()).replace('"actor_id": 1', '"actor_id": 1e20'),
        "The number 1e20 in the request body is outside the signed 64-bit range the server stores.",
    ),
    (
        "1e999",
        json.dumps(action()).replace('"actor_id": 1', '"actor_id": 1e999'),
        "The number 1e999 in the request body is outside the signed 64-bit range the server "
        "stores.",
    ),
    (
        "Infinity",
        json.dumps(action()).replace('"actor_id": 1', '"actor_id": Infinity'),
        "The request body contains Infinity, which is not a JSON number: numbers must be finite.",
    ),
    (
        "-Infinity",
        json.dumps(action()).replace('"actor_id": 1', '"actor_id": -Infinity'),
        "The request body contains -Infinity, which is not a JSON number: numbers must be finite.",
    ),
    (
        "NaN",
        json.dumps(action()).replace('"actor_id": 1', '"actor_id": NaN'),
        "The request body contains NaN, which is not a JSON number: numbers must be finite.",
    ),
    (
        "NUL-in-a-value",
        json.dumps(action(traveler="TRV-1001\x00")),
        "A text in the request body contains a NUL character (U+0000).",
    ),
    (
        "NUL-in-a-key",
        json.dumps({"action": {"kind": "start_step", "\x00": 1}}),
        "A text in the request body contains a NUL character (U+0000).",
    ),
    (
        "lone-high-surrogate",
        json.dumps(action(traveler="TRV-\ud800")),
        "A text in the request body contains a lone UTF-16 surrogate (U+D800).",
    ),
    (
        "lone-low-surrogate",
        json.dumps(action(traveler="\udfff-TRV")),
        "A text in the request body contains a lone UTF-16 surrogate (U+DFFF).",
    ),
    (
        "lone-surrogate-in-a-key",
        json.dumps({"action": {"kind": "start_step", "x\udc80": 1}}),
        "A text in the request body contains a lone UTF-16 surrogate (U+DC80).",
    ),
    (
        "NUL-in-a-list",
        json.dumps({"action": {"kind": "place_hold", "reason": ["ok", "no\x00"]}}),
        "A text in the request body contains a NUL character (U+0000).",
    ),
    (
        "not-utf8",
        b'{"action": {"kind": "start_step", "traveler": "TRV-\xff"}}',
        "The request body is not valid UTF-8 (byte 51).",
    ),
    (
        "duplicate-key",
        '{"action": {"kind": "start_step", "kind": "place_hold"}}',
        'The key "kind" appears twice in one object of the request body.',
    ),
    (
        "trailing-comma",
        '{"action": {"kind": "start_step",}}',
        "The request body is not valid JSON: Expecting property name enclosed in double quotes "
        "(line 1, column 34).",
    ),
    (
        "40-deep",
        '{"action": ' * 40 + "1" + "}" * 40,
        "The request body nests deeper than 32 levels.",
    ),
    (
        "200000-deep",
        "[" * 200_000 + "]" * 200_000,
        "The request body nests deeper than 32 levels.",
    ),
    (
        "100001-values",
        json.dumps({"actions": [0] * 100_001}),
        "The request body holds more than 100,000 values.",
    ),
]


async def test_a_hostile_body_is_refused_and_changes_nothing(
    raw: httpx.AsyncClient, service: ExecutionService
) -> None:
    before = database(service)
    wrong = []
    for what, body, detail in HOSTILE_BODIES:
        response = await raw.post("/api/v1/actions", content=body, headers=KEY)
        if (response.status_code, response.json().get("rule")) != (400, "request_malformed"):
            wrong.append(f"{what}: {response.status_code} {response.text[:200]}")
        else:
            problem(response, 400, "request_malformed")
            if response.json()["detail"] != detail:
                wrong.append(f"{what}: said {response.json()['detail']!r}, not {detail!r}")
        if database(service) != before:
            wrong.append(f"{what}: the database changed")
            before = database(service)
    assert not wrong, "\n".join(wrong)


async def test_every_route_is_behind_the_guard(
    raw: httpx.AsyncClient, service: ExecutionService
) -> None:
    """Even where a refused request would count (a wrong PIN, an unknown badge), nothing does."""
    before = database(service)
    body = '{"badge": "10001", "pin": "0000", "code": "ABCD-EF01", "x": NaN}'
    for method, path in [
        ("POST", "/api/v1/actions/batch"),
        ("POST", "/api/v1/heartbeat"),
        ("POST", "/api/v1/verify"),
        ("POST", "/api/v1/login"),
        ("POST", "/api/v1/enroll"),
        ("POST", "/api/v1/users/unlock"),
        ("POST", "/api/v1/admin/session"),
        ("GET", "/api/v1/station"),  # a GET, sent a body all the same
    ]:
        response = await raw.request(method, path, content=body, headers=KEY)
        assert problem(response, 400, "request_malformed"), path
        assert database(service) == before, path


async def test_a_number_beyond_64_bits_in_a_string_is_refused_too(
    raw: httpx.AsyncClient, service: ExecutionService
) -> None:
    """A number in a string is not a number to the models; one that is a number but beyond what
    its column holds is refused by its bounds, before the database is asked."""
    before = database(service)
    for seq in ("9" * 20, 2**31):
        queued = {"key": "k" * 8, "station_seq": seq, **action()}
        response = await raw.post("/api/v1/actions/batch", json={"actions": [queued]})
        assert "station_seq" in problem(response, 422, "request_invalid")
    assert database(service) == before


async def test_infinity_in_a_string_for_a_number_is_refused(
    raw: httpx.AsyncClient, service: ExecutionService
) -> None:
    """pydantic reads the string "Infinity" (or "inf", "NaN") for a float unless the model says
    allow_inf_nan=False; stored, it comes back as null and the admin overview cannot be read."""
    before = database(service)
    beat = {
        "app_version": "0.1.0",
        "config_version": 1,
        "theme": "kiosk-dark",
        "terminal": "80x24",
        "color_system": "truecolor",
        "outbox_waiting": 0,
        "outbox_refused": 0,
        "uptime_seconds": "Infinity",
    }
    response = await raw.post("/api/v1/heartbeat", json=beat, headers=KEY)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert database(service) == before


def test_text_that_is_merely_unusual_passes_the_guard() -> None:
    """Astral characters (a proper surrogate pair), GS1 group separators from a barcode, tabs and
    newlines in notes, numbers at the edges of the range: all are legitimate."""
    body = json.dumps(
        {
            "value": "LOT\x1d10A100 👍\tnote\nline",
            "ints": [2**63 - 1, -(2**63)],
            "reals": [9.2e18, -9.2e18, 1e-300, 0.5],
            "deep": json.loads('{"a": ' * 31 + "1" + "}" * 31),
        }
    )
    assert "\\ud83d\\udc4d" in body  # the pair as JSON escapes, the way many clients send it
    document = guard.parse_body(body.encode())
    assert isinstance(document, dict) and document["value"].endswith("line")


def test_the_largest_legitimate_batch_fits_under_the_body_cap() -> None:
    """500 queued record_value actions (ActionBatch's limit), each with the longest value allowed
    (2,000 characters) in a script of 3-byte UTF-8 characters, as the station's client sends it."""
    record: dict[str, Any] = {
        "kind": "record_value",
        "actor_id": 123,
        "session": "s" * 100,
        "traveler": "TRV-100001",
        "item_id": 123456,
        "value": "測" * 2000,
        "station_time": "2026-12-01T12:00:00.000000Z",
        "offline": True,
    }
    entry = {"key": "0b6a0d7e-6f1e-4d8a-9a57-3c1b2f7e9d10", "station_seq": 123456, "action": record}
    body = json.dumps({"actions": [entry] * 500}, ensure_ascii=False).encode()
    assert 3_000_000 < len(body) < guard.MAX_BODY_BYTES
    guard.parse_body(body)
    typical = json.dumps({"actions": [{**entry, "action": {**record, "value": "12.702"}}] * 500})
    assert len(typical) < guard.MAX_BODY_BYTES // 10


async def test_a_body_over_the_cap_is_413_and_changes_nothing(
    raw: httpx.AsyncClient, service: ExecutionService
) -> None:
    before = database(service)
    big = b'{"actions": ["' + b"x" * guard.MAX_BODY_BYTES + b'"]}'
    declared = await raw.post("/api/v1/actions/batch", content=big, headers=JSON)
    assert problem(declared, 413, "body_too_large") == (
        "The request body is larger than the server accepts (4 MiB)."
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the guard counts as it reads
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await raw.post("/api/v1/actions/batch", content=chunks(), headers=JSON)
    problem(streamed, 413, "body_too_large")
    assert database(service) == before


# --- the URL -------------------------------------------------------------------------------------------


URLS = [
    ("/api/v1/travelers/TRV%00", "The URL path contains a control character (U+0000)."),
    ("/api/v1/travelers/TRV%0A1001", "The URL path contains a control character (U+000A)."),
    (
        "/api/v1/travelers/TRV%7F/as-built",
        "The URL path contains a control character (U+007F).",
    ),
    ("/api/v1/travelers/TRV%C2%85", "The URL path contains a control character (U+0085)."),
    ("/api/v1/travelers/TRV%FF", "The URL path is not valid UTF-8."),
    ("/api/v1/travelers/TRV%ED%A0%80", "The URL path is not valid UTF-8."),  # a surrogate
    ("/api/v1/queue?x=%00", "The URL query string contains a control character (U+0000)."),
    ("/api/v1/queue?%1B=1", "The URL query string contains a control character (U+001B)."),
    ("/health?x=%FE", "The URL query string is not valid UTF-8."),
]


async def test_a_control_character_in_the_url_is_refused(
    raw: httpx.AsyncClient, service: ExecutionService
) -> None:
    before = database(service)
    for target, detail in URLS:
        response = await raw.get(target)
        assert problem(response, 400, "request_malformed") == detail, target
    assert database(service) == before


async def test_a_control_character_in_a_query_parameter_changes_nothing(
    raw: httpx.AsyncClient, service: ExecutionService
) -> None:
    before = database(service)
    response = await raw.post(
        "/api/v1/admin/stations/NEW-01?work_center=ASSEMBLY%00", headers={"X-Admin-Session": "x"}
    )
    problem(response, 400, "request_malformed")
    assert database(service) == before


async def test_errors_from_the_router_have_the_problem_shape(raw: httpx.AsyncClient) -> None:
    problem(await raw.get("/api/v1/nothing-here"), 404, "not_found")
    refused = await raw.delete("/api/v1/station")
    assert problem(refused, 405, "method_not_allowed") == "DELETE is not allowed at this address."
    assert refused.headers["allow"] == "GET"


# --- Idempotency-Key -------------------------------------------------------------------------------------


async def test_a_mutating_post_without_idempotency_key_is_400(
    raw: httpx.AsyncClient, service: ExecutionService
) -> None:
    before = database(service)
    for path in ["/api/v1/actions", "/api/v1/users/unlock"]:
        response = await raw.post(path, json={"anything": "at all"})
        detail = problem(response, 400, "idempotency_key_missing")
        assert detail.startswith("This request needs an Idempotency-Key header"), path
        assert database(service) == before, path

        keyed = {"Idempotency-Key": "k" * 8}
        response = await raw.post(path, json={"anything": "at all"}, headers=keyed)
        assert problem(response, 422, "request_invalid"), path


# --- numbers typed on a measurement -------------------------------------------------------------------------

BORE = DataItem(
    id=1, label="Bore", kind=ItemKind.MEASUREMENT, unit="mm", nominal=12.7, lower=12.69, upper=12.71
)


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("12.7", "12.7"),
        ("12,7", "12.7"),
        ("12.700", "12.700"),  # as read: the significant digits stay
        ("+012.700", "12.700"),  # wedge gauges send the sign
        ("-0.02", "-0.02"),
        (".5", "0.5"),
        ("7.", "7"),
        (" 12.70 ", "12.70"),
    ],
)
def test_a_plain_decimal_number_is_read(typed: str, value: str) -> None:
    assert evaluate(BORE, typed)[0] == value


@pytest.mark.parametrize(
    "typed",
    [
        "1_2.7",
        "12_7",
        "1e3",
        "1E-3",
        "inf",
        "-inf",
        "Infinity",
        "nan",
        "NaN",
        "0x1f",
        "1.2.3",
        "1,234.5",
        "12 .7",
        "１２.７",  # full-width digits
        "١٢",  # Arabic-Indic digits
        "²",
        "+",
        "-",
        ".",
        "+-1",
        "9" * 400,
    ],
)
def test_anything_else_is_not_a_number(typed: str) -> None:
    with pytest.raises(Refusal) as refused:
        evaluate(BORE, typed)
    assert refused.value.status == 422 and refused.value.rule == "value_invalid"
    assert refused.value.detail == f"Bore: '{typed.strip()[:20]}' is not a number."


async def test_a_measurement_typed_with_an_underscore_is_refused_by_the_server(
    floor: Floor, service: ExecutionService
) -> None:
    """Python's float() reads "1_2.7" as 12.7; the server must not record a value nobody typed."""
    await floor.start_step("ana", "TRV-1002", "20.1")
    before = snapshot(service, "TRV-1002")
    with pytest.raises(Invalid) as refused:
        await floor.record_value("ana", "TRV-1002", "20.1", "Fastener torque", "1_2.7")
    assert refused.value.rule == "value_invalid"
    assert refused.value.detail == "Fastener torque: '1_2.7' is not a number."
    assert snapshot(service, "TRV-1002") == before


# --- the OpenAPI document --------------------------------------------------------------------------------


async def test_openapi_documents_every_error_as_a_problem(raw: httpx.AsyncClient) -> None:
    document = (await raw.get("/openapi.json")).json()
    problem_schema = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "rule"} <= set(problem_schema["properties"])
    assert set(problem_schema["required"]) == {"title", "status", "detail"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) >= 17
    for path, method, operation in operations:
        responses = operation["responses"]
        expected = {"400", "413"}
        if path.startswith("/api/v1/"):
            expected |= {"401", "403", "404", "409", "422", "429"}
        assert expected <= set(responses), (method, path, sorted(responses))
        for status, response in responses.items():
            if status[0] in "45":
                assert response["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
            else:
                # JSON everywhere, but a printable record is a PDF (and says so), and a
                # document's file is the file (PDF, PNG, JPEG or SVG, as kept).
                kind = "application/pdf" if path.endswith(".pdf") else "application/json"
                kinds = {kind}
                if path.startswith("/api/v1/documents/") and path.endswith(("/file", "/shared")):
                    kinds = {"application/pdf", "image/png", "image/jpeg", "image/svg+xml"}
                if path.startswith("/api/v1/evidence/"):  # a kept photo or file, as it was kept
                    kinds = {"image/png", "image/jpeg", "application/pdf"}
                assert set(response.get("content", {kind: 0})) == kinds, (method, path, status)


async def test_openapi_states_the_guards_limits(raw: httpx.AsyncClient) -> None:
    document = (await raw.get("/openapi.json")).json()
    perform = document["paths"]["/api/v1/actions"]["post"]
    key = next(p for p in perform["parameters"] if p["name"] == "Idempotency-Key")
    assert key["in"] == "header" and key["required"] is True
    assert perform["security"] == [{"stationToken": []}]
    assert document["components"]["securitySchemes"]["stationToken"]["scheme"] == "bearer"
    assert not any(
        p["name"].lower() == "authorization"
        for item in document["paths"].values()
        for operation in item.values()
        for p in operation.get("parameters", ())
    )
    number = document["paths"]["/api/v1/travelers/{number}"]["get"]["parameters"][0]
    assert number["schema"]["pattern"] == guard.PARAMETER_PATTERN
    start = document["components"]["schemas"]["StartStep"]
    assert "kind" in start["required"]  # the server requires the tag of the union
    # Ids are bounded by the columns that hold them (32-bit on PostgreSQL); other integers by
    # the guard's signed 64 bits.
    assert start["properties"]["actor_id"]["maximum"] == MAX_ID
    assert start["properties"]["actor_id"]["minimum"] == 1
    assert start["properties"]["traveler"]["not"] == {"pattern": "\\u0000"}
