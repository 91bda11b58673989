"""Starts the station: finds or starts its backend, then runs the Textual app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kiosk.config import StationSettings

if TYPE_CHECKING:
    from kiosk.client.embedded import EmbeddedBackend


@dataclass(frozen=True)
class Backend:
    """Where the station's server is, the token to use, and the embedded server if it is ours."""

    url: str
    token: str | None = field(repr=False)
    embedded: EmbeddedBackend | None = None


@contextmanager
def backend(settings: StationSettings) -> Iterator[Backend]:
    """The configured server, or the embedded one while in use."""
    if settings.server_url is not None:
        from kiosk.client.credentials import load_token

        # Fails here, before any screen is drawn, with "station not enrolled: run kiosk enroll…".
        token = load_token(settings.server_url, backend=settings.keyring_backend)
        yield Backend(settings.server_url, token)
        return
    from kiosk.client.embedded import EmbeddedBackend

    embedded = EmbeddedBackend(
        data_dir=settings.data_dir,
        database_url=settings.embedded_database_url,
        station_name=settings.station_name,
        work_center=settings.work_center,
    ).start()
    try:
        yield Backend(embedded.url, embedded.token, embedded)
    finally:
        embedded.stop()


def run_station(settings: StationSettings) -> int:
    with backend(settings) as found:
        from kiosk.app import KioskApp

        app = KioskApp(settings, found.url, found.token, embedded=found.embedded)
        app.run()
        return app.return_code or 0
