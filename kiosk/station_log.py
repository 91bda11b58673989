"""The station's own log: app.log in its data directory, rotated, never holding a credential.

While Textual runs it takes over sys.stderr, so a `log.exception(...)` of the station (the outbox
sender's, say) would otherwise go nowhere. Python's logging is routed here instead, from the
first moment of `run_station`, along with warnings and exceptions of background threads.
station.log beside it is the lifecycle's record of stops and forced exits (kiosk/lifecycle.py).

Only the standard library and kiosk.redact: nothing here may slow a station's start.
"""

from __future__ import annotations

import logging
import os
import threading
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Final

from kiosk import __version__
from kiosk.redact import redact

LOG_NAME: Final = "app.log"
MAX_BYTES: Final = 1_000_000
"""Bytes of app.log before it moves to app.log.1; with BACKUPS, at most 4 MB on a thin client."""
BACKUPS: Final = 3
# Libraries that would write a line per request (httpx logs every request at INFO).
_QUIET: Final = ("httpx", "httpcore", "asyncio", "markdown_it")


class StationFormatter(logging.Formatter):
    """`2026-08-03T09:15:02+0200 ERROR kiosk.client.sender: outbox delivery failed` and the
    traceback, scrubbed of credentials."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def start(data_dir: Path, level: int = logging.INFO) -> Path:
    """Send this process's log records to data_dir/app.log; returns its path. Idempotent."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOG_NAME
    root = logging.getLogger()
    if any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
        return path
    _create_private(path)
    handler = RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    handler.setFormatter(StationFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception
    logging.getLogger("kiosk").info("station starting: kiosk %s, pid %d", __version__, os.getpid())
    return path


def _create_private(path: Path) -> None:
    """Readable by the station's user alone, even started outside its unit (UMask=0077)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    logging.getLogger("kiosk").error(
        "uncaught exception in %s",
        name,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )
