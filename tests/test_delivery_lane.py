"""The delivery lane (kiosk.server.delivery_lane) answers a station's delivered batch as the
FastAPI route does: the same outcomes, the same problems in the same words, the same counts in
/metrics. Each case goes over the real socket twice: as `application/json`, which the lane takes,
and as `application/vnd.kiosk+json`, which it leaves to the route; the two answers must match.
A recorder between the lane and the app says which of the two answered."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from kiosk.server import demo
from kiosk.server.app import create_app
from kiosk.server.delivery_lane import DeliveryLane
from kiosk.server.observe import BATCH
from kiosk.server.service import ExecutionService
from kiosk.wire import ActionBatch, StartStep
from tests.conftest import PG_URL
from tests.helpers import app_in_thread, new_key, step_of, values_of
from tests.ops_helpers import scrape
from tests.test_constant_cost import ana_on_a_long_traveler, values_batch
from tests.test_database_outage import database_away, on_postgresql
from tests.test_hostile_input import database, problem

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from tests.conftest import Plant

LANE = {"Content-Type": "application/json"}
ROUTE = {"Content-Type": "application/vnd.kiosk+json"}  # JSON to the route, not to the lane


@dataclass
class Served:
    url: str
    http: httpx.AsyncClient
    fell_through: list[str] = field(default_factory=list)
    """The content types of the batches the lane left to the route, in order."""

    async def deliver(self, body: bytes | str, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post(BATCH, content=body, headers=headers)

    async def both(
        self, body: bytes | str, headers: dict[str, str] | None = None
    ) -> tuple[httpx.Response, httpx.Response]:
        """The lane's answer and the route's, each asserted to have come from where it should."""
        before = len(self.fell_through)
        lane = await self.deliver(body, {**LANE, **(headers or {})})
        assert len(self.fell_through) == before, "the lane left a JSON batch to the route"
        route = await self.deliver(body, {**ROUTE, **(headers or {})})
        assert self.fell_through[before:] == [ROUTE["Content-Type"]], "the route did not answer"
        return lane, route


def recording(lane: DeliveryLane, seen: list[str]) -> None:
    """Between the lane and what it hands on: note each batch that reaches the route."""
    inner = lane.app

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == BATCH:
            seen.append(dict(scope["headers"]).get(b"content-type", b"").decode())
        await inner(scope, receive, send)

    lane.app = app


def layers(stack: ASGIApp) -> Iterator[Any]:
    """The app's middleware, outermost first: each holds the next as `.app`."""
    layer: Any = stack
    while hasattr(layer, "app"):
        yield layer
        layer = layer.app


def the_lane(stack: ASGIApp) -> DeliveryLane:
    return next(layer for layer in layers(stack) if isinstance(layer, DeliveryLane))


@pytest.fixture
async def served(service: ExecutionService) -> AsyncIterator[Served]:
    app = create_app(service)
    app.middleware_stack = app.build_middleware_stack()
    fell_through: list[str] = []
    recording(the_lane(app.middleware_stack), fell_through)
    token = service.local_station_token(demo.DEMO_STATION, demo.WORK_CENTER)
    with app_in_thread(app) as url:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=15) as http:
            yield Served(url, http, fell_through)


def without_keys(answer: httpx.Response) -> list[dict[str, Any]]:
    return [{k: v for k, v in o.items() if k != "key"} for o in answer.json()["outcomes"]]


def body_of(batch: ActionBatch) -> str:
    return batch.model_dump_json()


# --- what a station delivers ---------------------------------------------------------------------


async def test_values_delivered_through_the_lane_are_recorded_as_through_the_route(
    served: Served, service: ExecutionService
) -> None:
    floor, trav = ana_on_a_long_traveler(service)
    item = step_of(trav, "10.1").items[0]
    notes = ["note 1", "note 2", "note 3"]
    first, second = values_batch(floor, item.id, 1, 3), values_batch(floor, item.id, 4, 3, notes)

    by_lane = await served.deliver(body_of(first), LANE)
    by_route = await served.deliver(body_of(second), ROUTE)

    assert served.fell_through == [ROUTE["Content-Type"]]
    assert by_lane.status_code == by_route.status_code == 200
    assert by_lane.headers["content-type"] == by_route.headers["content-type"]
    assert [o["status"] for o in by_lane.json()["outcomes"]] == [200] * 3
    assert without_keys(by_lane) == without_keys(by_route)
    assert values_of(service, item.id) == notes * 2
    # A retry through the other way gets the stored answers, byte for byte, and records nothing.
    again_by_route = await served.deliver(body_of(first), ROUTE)
    again_by_lane = await served.deliver(body_of(second), LANE)
    assert again_by_route.content == by_lane.content
    assert again_by_lane.content == by_route.content
    assert values_of(service, item.id) == notes * 2


async def test_an_action_a_rule_refuses_is_kept_with_the_same_problem(
    served: Served, service: ExecutionService
) -> None:
    """Ben is not badged in at this station: his start is refused, in the outcome, both ways."""
    floor, trav = ana_on_a_long_traveler(service)
    start = StartStep(actor_id=floor.ids["ben"], traveler=trav.number, step_id=trav.steps[1].id)

    def batch(seq: int) -> str:
        return json.dumps(
            {
                "actions": [
                    {"key": new_key(), "station_seq": seq, "action": start.model_dump(mode="json")}
                ]
            }
        )

    lane = await served.deliver(batch(1), LANE)
    route = await served.deliver(batch(2), ROUTE)

    assert lane.status_code == route.status_code == 200
    (outcome,) = without_keys(lane)
    assert outcome["status"] >= 400 and outcome["problem"]["rule"], outcome
    assert without_keys(route) == [outcome]


# --- what is refused whole -----------------------------------------------------------------------

QUEUED = {"key": "lane-key-0001", "station_seq": 1, "action": {"kind": "start_step"}}
INVALID = {
    "no actions": {"actions": []},
    "no field": {},
    "not a list": {"actions": "start_step"},
    "a list, not an object": [QUEUED],
    "a key too short": {"actions": [{**QUEUED, "key": "k"}]},
    "a sequence beyond its column": {"actions": [{**QUEUED, "station_seq": 2**31}]},
    "an unknown kind": {"actions": [{**QUEUED, "action": {"kind": "bake_a_cake"}}]},
    "a start without its traveler": {"actions": [QUEUED]},
    "a field no action has": {"actions": [{**QUEUED, "shoe_size": 44}]},
    "501 actions": {"actions": [QUEUED] * 501},
}


async def test_an_invalid_batch_is_refused_in_the_words_of_the_route(
    served: Served, service: ExecutionService
) -> None:
    before = database(service)
    for what, body in INVALID.items():
        lane, route = await served.both(json.dumps(body))
        detail = problem(lane, 422, "request_invalid")
        assert lane.json() == route.json(), (what, detail, route.json()["detail"])
    assert database(service) == before


async def test_a_missing_or_wrong_token_is_refused_as_the_route_refuses_it(
    served: Served, service: ExecutionService
) -> None:
    floor, trav = ana_on_a_long_traveler(service)
    body = body_of(values_batch(floor, trav.steps[0].items[0].id, 1, 1))
    before = database(service)
    served.http.headers.pop("Authorization")
    for authorization in (None, "Bearer not-a-token", "Basic ZGVtbzpkZW1v"):
        headers = {} if authorization is None else {"Authorization": authorization}
        lane = await served.deliver(body, {**LANE, **headers})
        route = await served.deliver(body, {**ROUTE, **headers})
        problem(lane, 401, lane.json()["rule"])
        assert (lane.json(), lane.headers.get("www-authenticate")) == (
            route.json(),
            route.headers.get("www-authenticate"),
        ), authorization
    assert database(service) == before


async def test_what_the_lane_does_not_take_is_answered_by_the_route(served: Served) -> None:
    """No body, another method: left to the route, answered as ever."""
    empty = await served.deliver(b"", LANE)
    assert served.fell_through == [LANE["Content-Type"]]
    problem(empty, 422, "request_invalid")
    assert empty.json() == (await served.deliver(b"", ROUTE)).json()

    wrong_method = await served.http.get(BATCH)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"


async def test_json_with_a_charset_is_the_lane_s(served: Served) -> None:
    for media in ("application/json; charset=utf-8", "Application/JSON"):
        answer = await served.deliver(json.dumps(INVALID["no actions"]), {"Content-Type": media})
        problem(answer, 422, "request_invalid")
    assert served.fell_through == []


async def test_the_guard_still_refuses_hostile_json_before_the_lane(served: Served) -> None:
    for body in ('{"actions": [NaN]}', '{"actions": [1, 2,]}', '{"a": 1, "a": 2}'):
        answer = await served.deliver(body, LANE)
        problem(answer, 400, "request_malformed")
    assert served.fell_through == []


# --- what IT sees ---------------------------------------------------------------------------------


async def test_metrics_name_the_batch_route_and_count_the_lane_s_actions(
    served: Served, service: ExecutionService
) -> None:
    floor, trav = ana_on_a_long_traveler(service)
    item = trav.steps[0].items[0]
    start = scrape(served.url)
    await served.deliver(body_of(values_batch(floor, item.id, 1, 3)), LANE)
    await served.deliver(body_of(values_batch(floor, item.id, 4, 2)), ROUTE)
    await served.deliver(json.dumps(INVALID["no actions"]), LANE)
    found = scrape(served.url)

    def grown(name: str, **labels: str) -> float:
        return (found.value(name, **labels) or 0) - (start.value(name, **labels) or 0)

    requests = "kiosk_http_requests_total"
    assert grown(requests, method="POST", route=BATCH, status="200") == 2
    assert grown(requests, method="POST", route=BATCH, status="422") == 1
    assert grown("kiosk_actions_total", outcome="applied", rule="") == 5
    count = "kiosk_http_request_duration_seconds_count"
    assert found.value(count, method="POST", route=BATCH) == found.total(
        requests, method="POST", route=BATCH
    )
    assert not found.value(requests, method="POST", route="unmatched")


async def test_a_failure_in_the_lane_is_a_500_that_names_its_request(
    served: Served, service: ExecutionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: object) -> None:
        raise RuntimeError("a bug in the delivery")

    monkeypatch.setattr(service, "perform_batch_async", broken)
    floor, trav = ana_on_a_long_traveler(service)
    body = body_of(values_batch(floor, trav.steps[0].items[0].id, 1, 1))

    # After an unhandled error uvicorn closes the connection: each request has its own.
    lane, route = await served.both(body, {"Connection": "close"})

    assert problem(lane, 500, "server_error") == problem(route, 500, "server_error")
    assert "bug" not in lane.text
    assert lane.headers["x-request-id"] != route.headers["x-request-id"]


@on_postgresql
async def test_a_delivery_while_the_database_is_away_is_503_then_applied_once(
    served: Served, service: ExecutionService, plant: Plant
) -> None:
    assert PG_URL is not None
    floor, trav = ana_on_a_long_traveler(service)
    item = trav.steps[0].items[0]
    body = body_of(values_batch(floor, item.id, 1, 2))

    with database_away(plant.database_url):
        lane, route = await served.both(body)
    applied = await served.deliver(body, LANE)

    assert problem(lane, 503, "database_unavailable") == problem(route, 503, "database_unavailable")
    assert lane.headers["retry-after"] == route.headers["retry-after"]
    assert [o["status"] for o in applied.json()["outcomes"]] == [200, 200]
    assert values_of(service, item.id) == ["note 1", "note 2"]


def test_the_lane_sits_inside_the_guard(service: ExecutionService) -> None:
    """Inside: what it reads is strict JSON of at most the guard's size already."""
    names = [type(layer).__name__ for layer in layers(create_app(service).build_middleware_stack())]
    assert names.index("RequestGuard") < names.index("DeliveryLane"), names
