"""No enumeration oracle: a station cannot walk the badge space, an unknown badge and a wrong PIN
get the same answer, and lock-outs, bursts and offline signatures show on the admin console."""

from __future__ import annotations

import httpx
import pytest

from kiosk.client import ExecutionClient, RateLimited, Refused
from kiosk.rules import Refusal
from kiosk.server import people
from kiosk.wire import Credentials
from tests.conftest import LiveServer
from tests.helpers import new_key, raw_http

LIMIT = people.UNKNOWN_BADGE_LIMIT


async def test_unknown_badges_pause_badge_in_at_that_station_at_the_limit(
    live_server: LiveServer,
) -> None:
    token = live_server.token("LINE-07", "ASSEMBLY")
    async with ExecutionClient(live_server.url, token) as station:
        for n in range(LIMIT):  # up to the limit, each is just not recognised
            with pytest.raises(Refused) as refused:
                await station.login(f"{55500 + n}")
            assert refused.value.rule == "badge_unknown"
        with pytest.raises(RateLimited) as limited:
            await station.login("55599")
        assert limited.value.status == 429
        assert limited.value.rule == "badge_rate_limited"
        assert limited.value.detail.startswith(
            "Too many unknown badges at this station: badge-in is paused for 10 min."
        )
        # While paused, a known badge is not looked up either: it would tell the space apart.
        with pytest.raises(RateLimited):
            await station.login("10001")
        with pytest.raises(RateLimited):
            await station.verify(Credentials(badge="10001", pin="1111"))
    async with raw_http(live_server.url, token) as http:
        answer = await http.post(
            "/api/v1/login", json={"badge": "10001"}, headers={"Idempotency-Key": new_key()}
        )
    assert answer.status_code == 429
    assert 1 <= int(answer.headers["Retry-After"]) <= 600
    # Another station is not held up by this one.
    async with ExecutionClient(live_server.url, live_server.token("LINE-08")) as other:
        assert (await other.login("10001")).person.name == "Ana Ortiz"


async def test_an_unknown_badge_and_a_wrong_pin_get_the_same_answer(
    live_server: LiveServer,
) -> None:
    async with raw_http(live_server.url, live_server.token("LINE-09")) as http:

        async def verify(badge: str, pin: str) -> httpx.Response:
            body = {"badge": badge, "pin": pin}
            return await http.post(
                "/api/v1/verify", json=body, headers={"Idempotency-Key": new_key()}
            )

        unknown, wrong = await verify("55555", "1111"), await verify("10001", "1112")
    assert (unknown.status_code, unknown.content) == (wrong.status_code, wrong.content)
    assert unknown.json()["detail"] == (
        "Badge or PIN not accepted. Repeated wrong PINs lock the badge."
    )


async def test_lockouts_bursts_and_offline_signatures_reach_the_admin_console(
    live_server: LiveServer,
) -> None:
    svc = live_server.service
    station = svc.authenticate(live_server.token("LINE-10", "ASSEMBLY"))
    for n in range(LIMIT):
        with pytest.raises(Refusal):
            svc.login(station, f"{66600 + n}")
    elsewhere = svc.authenticate(live_server.token("LINE-11", "ASSEMBLY"))  # LINE-10 is paused
    for _ in range(people.MAX_PIN_FAILURES):
        with pytest.raises(Refusal):
            svc.verify_credentials(elsewhere, Credentials(badge="10002", pin="0000"))
    admin = svc.authenticate(live_server.token("ADMIN-01", "ASSEMBLY"))
    session = svc.admin_session(admin, Credentials(badge="90001", pin="9999"))
    events = svc.overview(admin, session.token).security
    assert [(e.kind, e.station) for e in events] == [
        ("person_locked", "LINE-11"),
        ("unknown_badges", "LINE-10"),
    ]
    assert events[0].detail == "Ben Okafor: 5 wrong PINs"
    assert events[1].detail == "10 unknown badges within 10 min: badge-in paused there"
