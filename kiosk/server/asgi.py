"""`kiosk serve`: the execution API for many stations, in one or several server processes.

Workers keep no state of their own; everything that must be serial is serialised by the database,
so any number of them can share one PostgreSQL.

With a certificate and key (`--tls-cert/--tls-key`) uvicorn serves HTTPS itself: stations refuse
plain http to another machine unless told otherwise, so a plant server normally has both.

Logging is configured once (kiosk.server.logs) and handed to uvicorn, which applies the same
configuration in each worker: its access and error lines come out in the server's format.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from kiosk.collector import SERVER_YOUNG, keep_what_is_loaded
from kiosk.server import logs, security
from kiosk.server.app import ServerConfig, create_app, open_service
from kiosk.server.metrics import MULTIPROC_ENV
from kiosk.server.service import ExecutionService
from kiosk.server.settings import ServerSettings
from kiosk.server.store import Store

log = logging.getLogger("kiosk.server")
# The parent hands its resolved settings to the worker processes it spawns.
_HANDOVER = "KIOSK_SERVE_SETTINGS"


class TLSFilesError(ValueError):
    """The certificate or key given to `kiosk serve` cannot be used; one line saying which."""


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path


class _PassphraseAsked(Exception):
    pass


def _refuse_passphrase() -> str:
    # Without this, OpenSSL would prompt on a terminal a server process does not have.
    raise _PassphraseAsked


def check_tls_files(cert: Path | None, key: Path | None) -> TLSFiles | None:
    """Both or neither; readable; the cert parses; the key is unencrypted and matches it."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise TLSFilesError("--tls-cert and --tls-key go together: give both, or neither for http")
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        _readable(flag, path)
    try:
        # Parses every certificate in the file (a chain is fine) without needing the key.
        ssl.create_default_context().load_verify_locations(cafile=str(cert))
    except ssl.SSLError as exc:
        raise TLSFilesError(
            f"--tls-cert {cert}: no PEM certificate in it ({exc.reason or exc})"
        ) from None
    _check_key(cert, key)
    return TLSFiles(cert, key)


def _readable(flag: str, path: Path) -> None:
    if path.is_dir():
        raise TLSFilesError(f"{flag} {path}: is a directory, not a PEM file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise TLSFilesError(f"{flag} {path}: {exc.strerror or exc}") from None


def _check_key(cert: Path, key: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_refuse_passphrase)
    except _PassphraseAsked:
        raise TLSFilesError(
            f"--tls-key {key}: protected by a passphrase; kiosk serve needs an unencrypted key "
            "file, readable only by the server's user (openssl pkey -in KEY -out KEY.plain)"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TLSFilesError(
                f"--tls-key {key} is not the private key of the certificate in --tls-cert {cert}"
            ) from None
        raise TLSFilesError(
            f"--tls-key {key}: no usable PEM private key in it ({exc.reason or exc})"
        ) from None


def build() -> FastAPI:
    """App factory for uvicorn workers: the parent's settings arrive through the environment."""
    settings = ServerSettings.model_validate_json(os.environ[_HANDOVER])
    return _serving(open_service(_server_config(settings)), settings)


def _serving(svc: ExecutionService, settings: ServerSettings) -> FastAPI:
    """The app a server process serves; with it, the process has loaded what it serves with,
    and that is kept out of the garbage collector's way from now on (kiosk/collector.py)."""
    app = create_app(svc, settings)
    keep_what_is_loaded(SERVER_YOUNG)
    return app


def _server_config(settings: ServerSettings, demo: bool = False) -> ServerConfig:
    return ServerConfig.of(settings, demo=demo)


def serve(settings: ServerSettings, *, demo: bool = False, tls: TLSFiles | None = None) -> None:
    log_config = logs.configure(settings.log_format, settings.log_level)
    # Open (and seed) once in this process, so workers never race to create the schema.
    svc = open_service(_server_config(settings, demo))
    _say_how(settings, tls)
    _check_connections(svc.store, settings)
    # uvicorn serves HTTPS when given the files (it re-reads them in each worker).
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": log_config,
        "log_level": settings.log_level,
        "ssl_certfile": str(tls.cert) if tls else None,
        "ssl_keyfile": str(tls.key) if tls else None,
    }
    if settings.workers <= 1:
        uvicorn.run(_serving(svc, settings), **options)
        return
    svc.store.dispose()
    with _multiprocess_metrics(), _handed_over(settings):
        uvicorn.run("kiosk.server.asgi:build", factory=True, workers=settings.workers, **options)


HEADROOM = 5
"""Connections left over for a backup, a `kiosk audit verify` and an admin's psql."""


def _check_connections(store: Store, settings: ServerSettings) -> None:
    """Warn when this server alone could want more connections than PostgreSQL gives: beyond
    them every process of the plant is refused a new one, and requests fail (503) under load."""
    allowed = store.connections_allowed()
    wanted = settings.workers * settings.database_connections
    if allowed is not None and wanted > allowed - HEADROOM:
        log.warning(
            "%d worker(s) x %d database connections could want %d, and PostgreSQL accepts %d "
            "(max_connections less superuser_reserved_connections), %d of them to be left for "
            "backups and psql: lower --database-connections or raise max_connections",
            settings.workers,
            settings.database_connections,
            wanted,
            allowed,
            HEADROOM,
        )


def _say_how(settings: ServerSettings, tls: TLSFiles | None) -> None:
    from kiosk.client.tls import is_loopback

    database = make_url(settings.database).render_as_string(hide_password=True)
    log.info(
        "kiosk serve: %s://%s:%d, %d worker(s), database %s",
        "https" if tls else "http",
        settings.host,
        settings.port,
        settings.workers,
        database,
    )
    if security.ARGON2_FLOOR:
        log.warning(
            "KIOSK_ARGON2_FLOOR is set: PINs and offline caches get argon2 at its floor, which "
            "is for test rigs only; a plant's server must never run with it"
        )
    if tls is None and not is_loopback(settings.host):
        log.warning(
            "serving plain http on %s: stations refuse it unless their config sets "
            "allow_insecure_http; give --tls-cert and --tls-key to serve https",
            settings.host,
        )
    if settings.metrics_token is None and not is_loopback(settings.host):
        log.warning(
            "GET /metrics answers anyone who reaches %s:%d: keep the port on a trusted network, "
            "or set metrics_token",
            settings.host,
            settings.port,
        )


@contextmanager
def _multiprocess_metrics() -> Iterator[None]:
    """A fresh directory for prometheus-client's per-process files, for this run only: files
    left by an earlier run would be added to this one's counts."""
    directory = tempfile.mkdtemp(prefix="kiosk-metrics-")
    before = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        if before is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = before


@contextmanager
def _handed_over(settings: ServerSettings) -> Iterator[None]:
    values = settings.model_dump(mode="json")
    token = settings.metrics_token
    values["metrics_token"] = token.get_secret_value() if token is not None else None
    os.environ[_HANDOVER] = json.dumps(values)
    try:
        yield
    finally:
        os.environ.pop(_HANDOVER, None)
