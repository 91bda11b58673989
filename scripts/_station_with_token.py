"""Benchmark helper: the station app against a given server, with a token handed over by the
benchmark (a real station reads it from its keyring)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.app import KioskApp  # noqa: E402
from kiosk.collector import IdleCollector  # noqa: E402
from kiosk.config import load_settings  # noqa: E402

if __name__ == "__main__":
    token = os.environ["KIOSK_STATION_TOKEN_FOR_BENCH"]
    KioskApp(load_settings(), sys.argv[1], token, collector=IdleCollector()).run()
