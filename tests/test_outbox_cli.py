"""`kiosk outbox` and `kiosk outbox sync`, run as a person would, on the embedded demo plant."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.client.station_db import open_outbox
from kiosk.wire import Person, Role, StartStep

pytestmark = pytest.mark.slow

ANA = Person(id=1, name="Ana Ortiz", roles=(Role.OPERATOR,))


def kiosk(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KIOSK_DATA_DIR": str(data_dir),
        "KIOSK_CONFIG_FILE": str(data_dir / "none.toml"),
    }
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_outbox_lists_what_waits_and_sync_delivers_it(tmp_path: Path) -> None:
    first = kiosk("outbox", "sync", data_dir=tmp_path)  # starts (and seeds) the embedded plant
    assert first.returncode == 0, first.stderr
    assert "applied: 0   refused: 0   waiting: 0" in first.stdout

    outbox = open_outbox(tmp_path)
    outbox.record(StartStep(actor_id=ANA.id, traveler="TRV-1001", step_id=1), ANA)
    outbox.record(StartStep(actor_id=ANA.id, traveler="TRV-1003", step_id=11), ANA)  # on hold
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
