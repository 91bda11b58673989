"""Station settings: a TOML file plus KIOSK_* environment variables, read once at start-up.

Plain pydantic + tomllib rather than pydantic-settings: the latter costs ~0.27 s of import time on
every start of a station, and this file needs only a few fields.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, ValidationError

APP_NAME = "station-kiosk"


def default_data_dir() -> Path:
    return Path(os.environ.get("KIOSK_DATA_DIR") or platformdirs.user_data_path(APP_NAME))


def default_config_file() -> Path:
    return Path(
        os.environ.get("KIOSK_CONFIG_FILE")
        or platformdirs.user_config_path(APP_NAME) / "kiosk.toml"
    )


class ConfigError(Exception):
    """The station's local configuration cannot be used; the message says which field and why."""


class StationSettings(BaseModel):
    """What a station needs to know before it can reach its server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server_url: str | None = None
    """Execution API to use. Unset: start the embedded reference server with the demo plant."""
    station_name: str = "STATION-01"
    """Name the embedded server enrolls this station under."""
    work_center: str = "ASSEMBLY"
    """Work center of the embedded station."""
    data_dir: Path = Path()
    """Where the embedded database, its secret and the station's cache live."""
    database_url: str | None = None
    """Embedded server's database; defaults to a SQLite file in data_dir."""
    keyring_backend: str | None = None
    """keyring backend class for the station token (e.g. keyrings.cryptfile.cryptfile.CryptFileKeyring)."""
    request_timeout: float = 10.0
    """Seconds a request to the server may take before the station reports it as unreachable."""

    @property
    def embedded_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'plant.db'}"


FIELDS = tuple(StationSettings.model_fields)


def load_settings(config_file: Path | None = None, **overrides: Any) -> StationSettings:
    """Defaults < TOML file < KIOSK_* environment < explicit overrides (command-line flags)."""
    path = config_file or default_config_file()
    values: dict[str, Any] = {"data_dir": default_data_dir()}
    if path.exists():
        try:
            values.update(tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for name in FIELDS:
        env = os.environ.get(f"KIOSK_{name.upper()}")
        if env:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return StationSettings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {field}: {first['msg']}") from None
