"""The station collects its garbage while nobody waits for it (kiosk/collector.py)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.collector import QUIET_SECONDS, RARER, SERVER_YOUNG, IdleCollector
from kiosk.server import asgi
from kiosk.server.settings import ServerSettings
from tests.conftest import LiveServer
from tests.station import make_app, settle, typed


@pytest.fixture
def full_collections() -> Iterator[list[float]]:
    """The moments (time.monotonic) at which a full collection started, while the test runs."""
    seen: list[float] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            seen.append(time.monotonic())

    gc.callbacks.append(note)
    yield seen
    gc.callbacks.remove(note)


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """What `start` changes is the process's: put it back for the tests after this one."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_it_collects_once_after_use_and_only_when_quiet(full_collections: list[float]) -> None:
    collector = IdleCollector()
    assert not collector.quiet(10.0)  # never used: nothing to collect
    collector.used()
    assert not collector.quiet(QUIET_SECONDS - 0.01)  # someone may still be at it
    assert full_collections == []
    assert collector.quiet(QUIET_SECONDS)  # at the limit: quiet
    assert len(full_collections) == 1
    assert not collector.quiet(5.0)  # nothing used since: once is enough
    assert len(full_collections) == 1


@pytest.mark.usefixtures("restored_gc")
def test_start_freezes_what_is_loaded_and_makes_full_collections_rarer() -> None:
    young, middle, full = gc.get_threshold()
    IdleCollector().start()
    assert gc.get_freeze_count() > 1000  # the loaded code, out of every collection's way
    assert gc.get_threshold() == (young, middle, full * RARER)


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("restored_gc")
async def test_the_station_collects_when_people_stop_and_not_while_they_type(
    live_server: LiveServer, tmp_path: Path, full_collections: list[float]
) -> None:
    app = make_app(live_server.url, live_server.token(), tmp_path, collector=IdleCollector())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await app.connected.wait()
        await pilot.pause(QUIET_SECONDS + 0.5)
        full_collections.clear()
        began = time.monotonic()
        await typed(pilot, "123456", gap=0.12)  # a person typing: never quiet for long
        last_key = time.monotonic() - 0.12  # `typed` waits its gap after each key
        assert [t for t in full_collections if began <= t < last_key] == []
        # It collects once they have stopped for QUIET_SECONDS, not before; a loaded machine
        # may run the station's timer late, so wait for it up to a few seconds.
        deadline = last_key + QUIET_SECONDS + 5.0
        while not [t for t in full_collections if t >= last_key] and time.monotonic() < deadline:
            await pilot.pause(0.05)
        after = [t for t in full_collections if t >= last_key]
        assert after, "no full collection in the 5.5 s after the last key"
        assert after[0] >= last_key + QUIET_SECONDS - 0.05


def test_a_server_worker_keeps_what_it_loaded_out_of_collections(tmp_path: Path) -> None:
    """`kiosk serve`'s worker, once its app is built, leaves what it loaded to serve with out
    of every collection and collects young objects rarer (kiosk/collector.py): a full
    collection of all of it held up every request in flight for 100-130 ms."""
    settings = ServerSettings(data_dir=tmp_path)
    code = (
        "import gc, json, os\n"
        "from kiosk.server import asgi\n"
        "before = gc.get_threshold()\n"
        "asgi.build()\n"
        "print(json.dumps([gc.get_freeze_count(), before, gc.get_threshold()]))\n"
    )
    with asgi._handed_over(settings):  # as `kiosk serve` hands its settings to a worker
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    frozen, (_, middle, full), after = json.loads(done.stdout.splitlines()[-1])
    assert frozen > 10_000  # the server's code, FastAPI's, SQLAlchemy's, the wire models
    assert after == [SERVER_YOUNG, middle, full * RARER]
