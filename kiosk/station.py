"""Starts the station: finds or starts its backend, then runs the Textual app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kiosk.config import StationSettings


@contextmanager
def backend(settings: StationSettings) -> Iterator[tuple[str, str | None]]:
    """(server URL, station token): the configured server, or the embedded one while in use."""
    if settings.server_url is not None:
        from kiosk.client.credentials import load_token

        # Fails here, before any screen is drawn, with "station not enrolled: run kiosk enroll…".
        yield settings.server_url, load_token(settings.server_url, backend=settings.keyring_backend)
        return
    from kiosk.client.embedded import EmbeddedBackend

    embedded = EmbeddedBackend(
        data_dir=settings.data_dir,
        database_url=settings.embedded_database_url,
        station_name=settings.station_name,
        work_center=settings.work_center,
    ).start()
    try:
        yield embedded.url, embedded.token
    finally:
        embedded.stop()


def run_station(settings: StationSettings) -> int:
    with backend(settings) as (url, token):
        from kiosk.app import KioskApp

        app = KioskApp(settings, url, token)
        app.run()
        return app.return_code or 0
