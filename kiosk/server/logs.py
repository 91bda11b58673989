"""The server's log lines: text or JSON, one formatter for the kiosk's own lines and uvicorn's.

Every line written while a request is answered carries its request id (kiosk.server.observe
sets it). Each line is scrubbed of credentials (kiosk.redact) after it is formatted, tracebacks
included, and SQLAlchemy's statement log stays off whatever the level: it would write bound
parameters.

Under systemd, when stderr is the journal (`$JOURNAL_STREAM` names stderr's device and inode, as
systemd.exec(5) documents), every line starts with the sd-daemon(3) priority prefix `<N>`, which
journald turns into the entry's PRIORITY, and text lines leave the time to the journal. A
traceback keeps its record's priority on every one of its lines.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextvars import ContextVar
from typing import IO, Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS, LogData
from pythonjsonlogger.json import JsonFormatter

from kiosk.redact import redact

REQUEST_ID: ContextVar[str | None] = ContextVar("kiosk_request_id", default=None)
"""The id of the request being answered in this context (task or thread), if any."""

LogFormat = Literal["text", "json"]

# sd-daemon(3) priorities.
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
# uvicorn's access record: ("127.0.0.1:50000", "GET", "/health", "1.1", 200).
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")
_SKIPPED = {*RESERVED_ATTRS, "color_message", "request_id"}


def journal_stream(stream: IO[str] | None = None) -> bool:
    """Whether `stream` (stderr) is connected to the journal, by systemd's own test."""
    stream = stream or sys.stderr
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in expected.split(":"))
        found = os.fstat(stream.fileno())
    except (ValueError, OSError):
        return False
    return (found.st_dev, found.st_ino) == (device, inode)


def priority(level: int) -> int:
    for threshold, value in sorted(_PRIORITY.items(), reverse=True):
        if level >= threshold:
            return value
    return 7


def request_id_of(record: logging.LogRecord) -> str | None:
    return getattr(record, "request_id", None) or REQUEST_ID.get()


def _utc(created: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created % 1 * 1000):03d}Z"


def _journal(line: str, level: int) -> str:
    prefix = f"<{priority(level)}>"
    return "\n".join(prefix + part for part in line.splitlines() or [""])


class TextFormatter(logging.Formatter):
    """`2026-08-03T09:15:02.120Z INFO uvicorn.access [3f2a…] 10.0.0.5:5123 - "GET …" 200`."""

    def __init__(self, journal: bool | None = None) -> None:
        super().__init__()
        self.journal = journal_stream() if journal is None else journal

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        head = f"{record.levelname} {record.name} [{request_id_of(record) or '-'}]"
        line = f"{head} {record.message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        line = redact(line)
        if self.journal:
            return _journal(line, record.levelno)
        return f"{_utc(record.created)} {line}"


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time, level, logger, message, request_id, pid, and for uvicorn's
    access lines client, method, path, http_version and status as fields of their own."""

    def __init__(self, journal: bool | None = None) -> None:
        super().__init__(json_ensure_ascii=False)
        self.journal = journal_stream() if journal is None else journal

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = _utc(record.created)
        log_data["level"] = record.levelname.lower()
        log_data["logger"] = record.name
        log_data["message"] = record.message
        log_data["request_id"] = request_id_of(record)
        log_data["pid"] = record.process
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            log_data.update(zip(_ACCESS_FIELDS, record.args, strict=False))
        for key, value in record.__dict__.items():
            if key not in _SKIPPED and not key.startswith("_"):
                log_data[key] = value
        log_data.update(message_dict)

    def process_log_record(self, log_data: LogData) -> LogData:
        return {key: _redacted(value) for key, value in log_data.items()}

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return _journal(line, record.levelno) if self.journal else line


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


FORMATTERS: dict[str, type[logging.Formatter]] = {
    "text": TextFormatter,
    "json": JsonLineFormatter,
}


def logging_config(log_format: LogFormat = "text", level: str = "info") -> dict[str, Any]:
    """A dictConfig for uvicorn's `log_config` (it applies it in every worker process too):
    one stderr handler and formatter for the kiosk's loggers and uvicorn's."""
    chosen = level.upper()
    formatter = FORMATTERS[log_format]
    # Only our loggers and uvicorn's follow the chosen level; everything else says only
    # warnings, and SQLAlchemy's statement log (which echoes bound parameters) never runs.

    def ours() -> dict[str, Any]:
        return {"handlers": [], "propagate": True, "level": chosen}

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"kiosk": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "kiosk",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {
            "kiosk": ours(),
            "uvicorn": ours(),
            "uvicorn.error": ours(),
            "uvicorn.access": ours(),
            "sqlalchemy": {"handlers": [], "propagate": True, "level": "WARNING"},
        },
    }


def configure(log_format: LogFormat = "text", level: str = "info") -> dict[str, Any]:
    """Apply the configuration in this process now (uvicorn applies it again, the same)."""
    import logging.config

    config = logging_config(log_format, level)
    logging.config.dictConfig(config)
    return config
