"""The dependency locks (written by scripts/lock.sh) and the hash that says which one a station
runs. station.txt is what a station installs; postgres.txt and test.txt pin the same versions of
every package they share with it, so its hash names the station's whole set of packages.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATION_LOCK = HERE / "station.txt"


@cache
def lock_hash(path: Path = STATION_LOCK) -> str | None:
    """SHA-256 of the installed lock file, read once per process; None when it is missing (a
    copy of the code run without its package data), which the fleet view shows as unknown."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
