"""`kiosk outbox` and `kiosk outbox sync`, run as a person would, on the embedded demo plant."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.client import ExecutionClient
from kiosk.client.link import StationLink
from kiosk.config import StationSettings
from kiosk.station import backend
from kiosk.wire import StartStep

pytestmark = pytest.mark.slow


def kiosk(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KIOSK_DATA_DIR": str(data_dir),
        "KIOSK_CONFIG_FILE": str(data_dir / "none.toml"),
    }
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def _ana_records_two_starts_offline(data_dir: Path) -> None:
    """Ana badges in at the station, which then loses its server: two starts wait, proven by
    her session and her badge-made key. One is for TRV-1003, which is on hold."""
    with backend(StationSettings(data_dir=data_dir)) as found:
        link = StationLink(ExecutionClient(found.url, found.token), data_dir)
        await link.station()
        ana = await link.login("10001")
        link.sender.set_online(False)
        trav = await link.traveler("TRV-1001")
        start = StartStep(actor_id=ana.person.id, traveler=trav.number, step_id=trav.steps[0].id)
        await link.record(start, ana, trav)
        held = await link.traveler("TRV-1003")  # the station would refuse it: the server must
        start = StartStep(actor_id=ana.person.id, traveler=held.number, step_id=held.steps[0].id)
        link.outbox.record(start.model_copy(update={"session": ana.token}), ana.person)
        await link.close()


def test_outbox_lists_what_waits_and_sync_delivers_it(tmp_path: Path) -> None:
    first = kiosk("outbox", "sync", data_dir=tmp_path)  # starts (and seeds) the embedded plant
    assert first.returncode == 0, first.stderr
    assert "applied: 0   refused: 0   waiting: 0" in first.stdout

    asyncio.run(_ana_records_two_starts_offline(tmp_path))
    listed = kiosk("outbox", data_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "waiting: 2   refused: 0" in listed.stdout
    assert "#1 TRV-1001 start step by Ana Ortiz" in listed.stdout
    assert "last sync: 20" in listed.stdout  # the first sync is remembered

    synced = kiosk("outbox", "sync", data_dir=tmp_path)
    assert synced.returncode == 0, synced.stderr
    assert "delivering" in synced.stdout  # the progress bar
    assert "applied: 1   refused: 1   waiting: 0" in synced.stdout

    after = kiosk("outbox", data_dir=tmp_path)
    assert "waiting: 0   refused: 1   applied: 1" in after.stdout
    assert "#2 TRV-1003 start step by Ana Ortiz: TRV-1003 is on hold" in after.stdout
    assert "[traveler_on_hold]" in after.stdout
