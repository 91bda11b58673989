"""The server's settings: server.toml plus KIOSK_* environment variables, read once at start-up;
command-line flags override both (the same precedence as the station's, kiosk/config.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kiosk.config import APP_NAME, ConfigError, read_values


def default_server_config_file() -> Path:
    """The server's own file: a station's kiosk.toml forbids unknown fields, so they stay apart."""
    return Path(
        os.environ.get("KIOSK_SERVER_CONFIG_FILE")
        or platformdirs.user_config_path(APP_NAME) / "server.toml"
    )


DATABASE_CONNECTIONS = 10
"""PostgreSQL connections one server process holds at most, unless set otherwise."""


class ServerSettings(BaseModel):
    """What every server-side command (`kiosk serve`, `audit`, `import`, `station`, …) runs with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Path()
    """Where the default SQLite database and the plant secret live."""
    database_url: str | None = None
    """SQLAlchemy URL, or postgresql://…; unset: the SQLite file plant.db in data_dir."""
    secret_file: Path | None = None
    """The plant secret that keys badge hashes and seals the audit trail; unset: data_dir/plant-secret."""
    host: str = "127.0.0.1"
    """Address `kiosk serve` listens on: loopback unless the plant's stations must reach it."""
    port: int = Field(default=8600, ge=1, le=65535)
    """TCP port of `kiosk serve`."""
    workers: int = Field(default=1, ge=1, le=64)
    """Server processes sharing the database (uvicorn workers)."""
    database_connections: int = Field(default=DATABASE_CONNECTIONS, ge=1, le=1000)
    """PostgreSQL connections each server process holds at most; a request waits up to 5 s for
    one, then is answered 503 and the station retries. workers × this, summed over the plant's
    server hosts, must stay below PostgreSQL's max_connections (100 unless raised), with room
    left for backups and psql: `kiosk serve` warns when it does not."""
    tls_cert: Path | None = None
    """PEM certificate (chain) issued by the plant CA: with tls_key, `kiosk serve` speaks https."""
    tls_key: Path | None = None
    """The certificate's unencrypted PEM key, readable only by the server's user."""
    log_format: Literal["text", "json"] = "text"
    """text: one readable line per event; json: one JSON object per line, for a log shipper."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """The least severe level written, for the server's own lines and uvicorn's."""
    metrics_token: SecretStr | None = None
    """When set, GET /metrics needs `Authorization: Bearer <token>`; unset, /metrics is open to
    whoever reaches the port (a scrape endpoint on the plant's trusted network)."""
    files_dir: Path | None = None
    """Where photos, drawings and other kept files are stored by their SHA-256; unset: `files`
    beside the plant secret (data_dir/files). Back it up with the database: the records name files by hash."""
    max_file_mb: int = Field(default=25, ge=1, le=1024)
    """The largest file (photo, drawing) the server accepts, in MiB."""
    ready_timeout: float = Field(default=5.0, gt=0, le=60)
    """Seconds GET /ready waits for the database before it answers 503."""
    events_mqtt_url: str | None = Field(
        default=None,
        # [user[:password]@]host-or-[ipv6][:port]; no path, query or fragment
        pattern=r"^mqtts?://([^/?#\s@]+@)?(\[[0-9A-Fa-f:.]+\]|[^/?#\s:@\[\]]+)(:\d{1,5})?/?$",
        max_length=500,
    )
    """MQTT broker that `kiosk serve` publishes the event feed to (QoS 1, topics
    plant/<work center>/<station>/<traveler>/<event>): mqtt://[user:password@]host[:1883], or
    mqtts:// for TLS (port 8883). Unset: no publishing; GET /api/v1/events still serves the feed.
    Needs the mqtt extra (pip install 'station-kiosk[mqtt]')."""

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'plant.db'}"

    @property
    def plant_secret(self) -> Path:
        return self.secret_file or self.data_dir / "plant-secret"

    @property
    def files(self) -> Path:
        """Beside the plant secret unless set: the two are kept (and backed up) together."""
        return self.files_dir or self.plant_secret.with_name("files")


SERVER_FIELDS = tuple(ServerSettings.model_fields)


def load_server_settings(config_file: Path | None = None, **overrides: Any) -> ServerSettings:
    """Defaults < server.toml < KIOSK_* < flags."""
    path = config_file or default_server_config_file()
    values = read_values(path, SERVER_FIELDS, overrides)
    try:
        return ServerSettings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {field}: {first['msg']}") from None
