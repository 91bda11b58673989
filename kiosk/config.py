"""Settings: the station's and the server's, each a TOML file plus KIOSK_* environment variables,
read once at start-up; command-line flags override both.

The station's are a plain dataclass checked by `_checked` below, not a pydantic model: importing
pydantic costs about 50 ms of CPU, a quarter of a minimal Textual app's whole start, and the badge
screen paints before the station needs pydantic for anything (the wire models load after it).
The server's (kiosk.server.settings) are a pydantic model: they have more fields and limits, and
the server imports pydantic anyway.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

import platformdirs

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


@dataclass(frozen=True, kw_only=True)
class StationSettings:
    """What a station needs to know before it can reach its server."""

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
    ca_file: Path | None = None
    """PEM bundle of the plant CA that signs the server's certificate; the station trusts only it.
    Unset: httpx's default trust (the public CAs of certifi, or $SSL_CERT_FILE)."""
    allow_insecure_http: bool = False
    """Accept a plain http:// server_url to another machine (token and PINs in clear on the wire).
    Loopback (127.0.0.0/8, ::1, localhost) is always accepted: the embedded server is plain http."""

    @property
    def embedded_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'plant.db'}"


FIELDS = tuple(f.name for f in fields(StationSettings))


def load_settings(config_file: Path | None = None, **overrides: Any) -> StationSettings:
    """Defaults < TOML file < KIOSK_* environment < explicit overrides (command-line flags)."""
    path = config_file or default_config_file()
    values = read_values(path, FIELDS, overrides)
    try:
        return station_settings(values)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def read_values(path: Path, names: Iterable[str], overrides: dict[str, Any]) -> dict[str, Any]:
    """The values to check, in order of precedence: defaults < TOML file < KIOSK_* < flags."""
    values: dict[str, Any] = {"data_dir": default_data_dir()}
    if path.exists():
        try:
            values.update(tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for name in names:
        env = os.environ.get(f"KIOSK_{name.upper()}")
        if env:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


def station_settings(values: dict[str, Any]) -> StationSettings:
    """`values` checked field by field; ValueError names the first field that is wrong and why."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a station setting (known: {', '.join(FIELDS)})")
    hints = get_type_hints(StationSettings)
    checked = {}
    for name, value in values.items():
        try:
            checked[name] = _checked(hints[name], value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return StationSettings(**checked)


def _checked(kind: Any, value: Any) -> Any:
    """`value` as a field of type `kind` (T or T | None) takes it, as TOML or the environment
    gives it: a number or a flag may come as text."""
    args = getattr(kind, "__args__", None)
    if args is not None:  # T | None
        if value is None:
            return None
        kind = next(a for a in args if a is not type(None))
    return _CHECKS[kind](value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"should be text, not {value!r}")
    return value


def _path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    return Path(_text(value))


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"should be a number of seconds, not {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"should be a number of seconds, not {value!r}") from None


_YES, _NO = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _YES | _NO:
        return word in _YES
    raise ValueError(f"should be true or false, not {value!r}")


_CHECKS: dict[Any, Callable[[Any], Any]] = {str: _text, Path: _path, float: _number, bool: _flag}
