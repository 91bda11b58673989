"""The station's 30-second report: version, lock, config, look, terminal, outbox, uptime."""

from __future__ import annotations

import time

from kiosk import __version__
from kiosk.client.outbox import Outbox
from kiosk.locks import lock_hash
from kiosk.wire import Heartbeat, StationInfo

INTERVAL_SECONDS = 30.0
MAX_REFUSED_LINES = 20


def heartbeat(
    info: StationInfo | None,
    *,
    theme: str,
    terminal: tuple[int, int],
    color_system: str | None,
    outbox: Outbox,
    started: float,
) -> Heartbeat:
    counts = outbox.counts()
    return Heartbeat(
        app_version=__version__,
        config_version=info.config_version if info else 0,
        theme=theme,
        terminal=f"{terminal[0]}x{terminal[1]}",
        color_system=color_system or "unknown",
        outbox_waiting=counts.get("pending", 0),
        outbox_refused=counts.get("refused", 0),
        refused_actions=tuple(
            f"{e.summary}: {e.message}" for e in outbox.entries("refused")[:MAX_REFUSED_LINES]
        ),
        last_sync=outbox.last_sync(),
        uptime_seconds=max(0.0, time.monotonic() - started),
        lock_hash=lock_hash(),  # hashed once per process: the file does not change under it
    )
