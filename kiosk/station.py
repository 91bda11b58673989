"""Starts the station: finds or starts its backend, then runs the Textual app."""

from __future__ import annotations

from kiosk.config import StationSettings


def run_station(settings: StationSettings) -> int:
    from kiosk.client.embedded import EmbeddedBackend

    backend = None
    url, token = settings.server_url, None
    if url is None:
        backend = EmbeddedBackend(
            data_dir=settings.data_dir,
            database_url=settings.embedded_database_url,
            station_name=settings.station_name,
            work_center=settings.work_center,
        ).start()
        url, token = backend.url, backend.token
    try:
        from kiosk.app import KioskApp

        app = KioskApp(settings, url, token)
        app.run()
        return app.return_code or 0
    finally:
        if backend is not None:
            backend.stop()
