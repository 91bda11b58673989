"""`kiosk enroll`: trade a one-time code for a station token, keep the token in the keyring and
the server's address in the station config (never the token).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from kiosk.client import credentials, tls
from kiosk.client.api import ExecutionClient
from kiosk.client.errors import BackendUnreachable
from kiosk.config import ConfigError, StationSettings, load_settings, station_settings
from kiosk.wire import Enrollment, StationInfo

_KEY_LINE = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


@dataclass(frozen=True)
class Enrolled:
    station: StationInfo
    keyring: str
    config_file: Path


def enroll(
    server_url: str, code: str, *, config_file: Path, keyring_backend: str | None = None
) -> Enrolled:
    url = credentials.account(server_url)
    # The plant CA and allow_insecure_http come from the station config or KIOSK_* like every
    # setting; a refused URL or a bad CA file fails here, before the code is sent anywhere.
    settings = load_settings(config_file)
    tls.check_server_url(url, allow_insecure_http=settings.allow_insecure_http)
    context = tls.client_context(settings.ca_file)
    # Open the keyring before spending the one-time code: an unusable keyring must not cost the
    # admin a new code.
    keyring = credentials.open_backend(keyring_backend)
    enrollment = asyncio.run(_exchange(url, code, context))
    try:
        credentials.write_token(keyring, url, enrollment.token)
    except credentials.KeyringUnusable as exc:
        raise credentials.KeyringUnusable(
            f"the server enrolled the station but its token could not be kept: {exc}; "
            "the code is used up: ask for a new one"
        ) from None
    update_config(
        config_file,
        {
            "server_url": url,
            "station_name": enrollment.station.name,
            "work_center": enrollment.station.work_center,
            # The station must read its token from exactly where it was stored.
            "keyring_backend": credentials.class_path(keyring),
            # The CA that vouched for the server now (perhaps given as KIOSK_CA_FILE) is the one
            # the station must trust later.
            **_ca_setting(settings),
        },
    )
    return Enrolled(enrollment.station, credentials.describe(keyring), config_file)


async def _exchange(server_url: str, code: str, context: ssl.SSLContext) -> Enrollment:
    async with ExecutionClient(server_url, None, verify=context) as client:
        try:
            return await client.enroll(code)
        except BackendUnreachable as exc:
            # A certificate that does not verify fails the handshake, before the code is sent:
            # say why, so the admin fixes ca_file and reuses the same code.
            problem = tls.diagnose(exc, _host(server_url))
            if problem is None:
                raise
            unspent = "; the code is not used up" if problem.in_handshake else ""
            raise tls.ServerNotTrusted(
                f"cannot enroll at {server_url}: {problem.sentence()}{unspent}"
            ) from None


def _host(url: str) -> str:
    return urlsplit(url).hostname or url


def _ca_setting(settings: StationSettings) -> dict[str, str]:
    return {"ca_file": str(settings.ca_file.expanduser().resolve())} if settings.ca_file else {}


def update_config(path: Path, values: Mapping[str, str]) -> None:
    """Set top-level keys of the station's TOML file, keeping its other lines and comments."""
    lines = path.read_text().splitlines() if path.exists() else []
    pending = dict(values)
    out: list[str] = []
    for line in lines:
        match = _KEY_LINE.match(line)
        key = match.group(1) if match else None
        out.append(f"{key} = {_toml_string(pending.pop(key))}" if key in pending else line)
    out += [f"{key} = {_toml_string(value)}" for key, value in pending.items()]
    text = "\n".join(out) + "\n"
    _check(path, text)
    _write_atomically(path, text)


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(value)


def _check(path: Path, text: str) -> None:
    """Never leave behind a config the station cannot start with."""
    try:
        station_settings(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot record the enrollment here ({exc})") from None


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
