"""The event feed on MQTT, with real brokers: the plant's Mosquitto at 127.0.0.1:1883 for what
`kiosk serve` publishes, and a Mosquitto of the test's own on another port, stopped and started
again while the floor keeps working, to show that every event still arrives, none lost.

A subscriber here is a real paho-mqtt client with a persistent session (QoS 1), as a UNS consumer
would run it; the broker keeps its session across the restart (persistence on, saved at stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from kiosk.server import events
from kiosk.server import schema as t
from kiosk.server.app import create_app
from kiosk.server.mqtt import PUBLISHER, Backoff, Publisher
from kiosk.server.service import ExecutionService
from kiosk.server.settings import ServerSettings
from kiosk.wire import PlaceHold, PlantEvent, ReleaseHold
from tests.helpers import ServiceFloor, creds, free_port, uvicorn_in_thread

mqtt = pytest.importorskip("paho.mqtt.client", reason="the mqtt extra is not installed")

PLANT_BROKER = ("127.0.0.1", 1883)
MOSQUITTO = shutil.which("mosquitto")


def answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


class Subscriber:
    """A QoS 1 subscriber to plant/# with a persistent session: what it was sent, in order."""

    def __init__(self, port: int, *, persistent: bool) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:8]}",
            clean_session=not persistent,
        )
        self.client.on_connect = self._subscribe
        self.client.on_message = self._message
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _subscribe(self, client: Any, _userdata: Any, _flags: Any, _rc: Any, _props: Any) -> None:
        client.subscribe("plant/#", qos=1)

    def _message(self, _client: Any, _userdata: Any, message: Any) -> None:
        with self.lock:
            self.received.append((message.topic, json.loads(message.payload)))

    def ids(self) -> list[str]:
        with self.lock:
            return [body["id"] for _, body in self.received]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@contextlib.contextmanager
def subscribed(port: int, *, persistent: bool = False) -> Iterator[Subscriber]:
    """A persistent session only on a broker of the test's own: one left on the plant's broker
    would queue messages for a client that never comes back."""
    sub = Subscriber(port, persistent=persistent)
    try:
        yield sub
    finally:
        sub.close()


async def until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.05)


def the_feed(service: ExecutionService) -> list[PlantEvent]:
    with service.store.read() as conn:
        return list(events.feed(conn, 0, events.FEED_MAX).events)


def cursor_of(service: ExecutionService) -> tuple[int, int]:
    with service.store.read() as conn:
        row = conn.execute(
            select(t.event_publishers).where(t.event_publishers.c.name == PUBLISHER)
        ).one()
    return int(row.cursor), int(row.published)


# --- kiosk serve publishes to the plant's broker ------------------------------------------------------


@pytest.mark.skipif(
    not answers(*PLANT_BROKER),
    reason="no MQTT broker answers on 127.0.0.1:1883 (.ci/run starts one: apt install mosquitto)",
)
async def test_the_server_publishes_the_feed_on_unified_namespace_topics(
    service: ExecutionService,
) -> None:
    """The app as `kiosk serve` runs it (lifespan on, events_mqtt_url set) publishes every event of
    the feed at QoS 1, on plant/<work center>/<station>/<traveler>/<event>."""
    settings = ServerSettings(events_mqtt_url="mqtt://127.0.0.1:1883")
    app = create_app(service, settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    expected = the_feed(service)
    assert expected, "the demo plant has a history"
    with subscribed(PLANT_BROKER[1]) as sub:
        await asyncio.sleep(0.2)  # subscribed before the first publish
        with uvicorn_in_thread(config):
            # The shared broker may carry other plants' events too: look for ours.
            wanted = {(e.topic, e) for e in expected}

            def ours() -> set[tuple[str, PlantEvent]]:
                with sub.lock:
                    got = {(topic, PlantEvent.model_validate(b)) for topic, b in sub.received}
                return got & wanted

            await until(lambda: ours() == wanted, 20, "every event of the feed on the broker")
            await until(lambda: cursor_of(service)[0] >= expected[-1].cursor, 5, "cursor moved")
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    topics = {topic for topic, _ in wanted}
    assert "plant/ASSEMBLY/DEMO-01/TRV-1003/hold_placed" in topics
    assert 'kiosk_events_publisher_lag{publisher="mqtt"} 0.0' in metrics
    assert f'kiosk_events_published_total{{publisher="mqtt"}} {float(len(expected))}' in metrics


# --- a broker restart loses nothing ---------------------------------------------------------------------


class Broker:
    """A Mosquitto of this test's own on a free port, with its sessions saved across a restart."""

    def __init__(self, folder: Path) -> None:
        assert MOSQUITTO is not None
        self.port = free_port()
        self.folder = folder
        self.conf = folder / "mosquitto.conf"
        user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True)
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nuser {user.stdout.strip()}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert MOSQUITTO is not None
        with (self.folder / "mosquitto.log").open("ab") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        while not answers("127.0.0.1", self.port):
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, as systemd stops it: Mosquitto saves its sessions, then exits."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    if MOSQUITTO is None:
        pytest.skip(
            "no mosquitto binary to start a broker of the test's own (apt install mosquitto)"
        )
    broker = Broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.asynccontextmanager
async def publishing(service: ExecutionService, port: int) -> AsyncIterator[Publisher]:
    fast = Backoff(base=0.05, cap=0.3)
    publisher = Publisher(
        service.store, f"mqtt://127.0.0.1:{port}", poll=0.05, backoff=fast, ack_timeout=2
    )
    task = asyncio.create_task(publisher.run())
    try:
        yield publisher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_broker_restart_loses_no_event(
    service: ExecutionService, own_broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.server.mqtt")
    floor = ServiceFloor(service)
    sam = floor.ids["sam"]
    with subscribed(own_broker.port, persistent=True) as sub:
        await until(lambda: sub.client.is_connected(), 5, "subscriber connected")
        await asyncio.sleep(0.2)
        async with publishing(service, own_broker.port):
            before = the_feed(service)
            await until(lambda: set(sub.ids()) >= {e.id for e in before}, 10, "history sent")

            own_broker.stop()
            # The floor works on while the broker is down: these must not be lost.
            floor.do(PlaceHold(actor_id=sam, traveler="TRV-1001", reason="Broker test hold"))
            floor.do(ReleaseHold(actor_id=sam, traveler="TRV-1001", credentials=creds("sam")))
            await asyncio.sleep(0.5)  # the publisher retries against a closed port meanwhile
            after = the_feed(service)
            fresh = after[len(before) :]
            assert [e.event.value for e in fresh] == ["hold_placed", "hold_released"]
            assert cursor_of(service)[0] < fresh[0].cursor  # not counted as sent
            assert "mqtt: not publishing (broker mqtt://127.0.0.1:" in caplog.text

            own_broker.start()
            await until(lambda: set(sub.ids()) >= {e.id for e in after}, 15, "all events")
            await until(lambda: cursor_of(service)[0] >= after[-1].cursor, 5, "cursor moved")

    got = sub.ids()
    assert set(got) == {e.id for e in after}  # every event, and nothing that is not one
    # At least once; each id lets a consumer drop a repeat (none expected on a clean stop).
    first_seen = list(dict.fromkeys(got))
    assert first_seen == [e.id for e in after]  # in the feed's order
    topics = dict(sub.received)
    assert "plant/ASSEMBLY/DEMO-01/TRV-1001/hold_released" in topics
    assert cursor_of(service)[1] >= len(after)


def test_the_mqtt_client_loads_only_with_a_broker_configured() -> None:
    """aiomqtt and paho are the server's, and only when it publishes: neither the station's start
    path nor `kiosk serve` without events_mqtt_url loads them."""
    from tests.test_import_hygiene import modules_after_import, under

    loaded = modules_after_import(
        "kiosk.cli", "kiosk.app", "kiosk.station", "kiosk.server.app", "kiosk.server.asgi"
    )
    assert "kiosk.server.integration_api" in loaded
    for client in ("aiomqtt", "paho"):
        assert under(loaded, client) == [], client
    assert "kiosk.server.mqtt" not in loaded


def test_the_broker_url_is_checked_and_its_password_never_shown(tmp_path: Path) -> None:
    from kiosk.config import ConfigError
    from kiosk.server.mqtt import Broker
    from kiosk.server.settings import load_server_settings

    toml = tmp_path / "server.toml"
    for wrong in ("http://broker:1883", "mqtt://", "mqtt://host/topic", "mqtt://host:port"):
        with pytest.raises(ConfigError, match="events_mqtt_url"):
            load_server_settings(toml, events_mqtt_url=wrong)
    url = "mqtts://uns%40plant:s3cr%2Ft@broker.plant.local"
    assert load_server_settings(toml, events_mqtt_url=url).events_mqtt_url == url
    broker = Broker.parse(url)
    assert (broker.username, broker.password, broker.port, broker.tls) == (
        "uns@plant", "s3cr/t", 8883, True,
    )  # fmt: skip
    assert str(broker) == "mqtts://broker.plant.local:8883" and "s3cr" not in repr(str(broker))


@pytest.mark.slow
def test_bench_events_prints_its_ratios() -> None:
    from tests.test_bench_scripts import run_script

    lines = run_script("bench_events.py", "--events", "60", "--rounds", "3")
    assert lines[0].startswith("feed page of 100 records: ") and " ratio " in lines[0]
    if answers(*PLANT_BROKER):
        assert (
            lines[1].startswith("publisher, ~60 events from cursor 0: ") and " ratio " in lines[1]
        )
