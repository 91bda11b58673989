"""`kiosk enroll` against the real reference server: the token goes to an encrypted keyring
(keyrings.cryptfile, password from the environment, file under a temporary HOME), the server URL
to the station config, and a keyring that would lose or expose the token is refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.client import ExecutionClient, StationNotEnrolled, credentials
from kiosk.config import default_config_file, load_settings
from kiosk.station import backend
from kiosk.wire import StationInfo
from tests.conftest import LiveServer
from tests.helpers import CRYPTFILE, thin_client_home


@pytest.fixture(autouse=True)
def station_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return thin_client_home(tmp_path, monkeypatch)


def station_info(url: str, token: str | None) -> StationInfo:
    async def ask() -> StationInfo:
        async with ExecutionClient(url, token) as client:
            return await client.station()

    return asyncio.run(ask())


def files_containing(root: Path, secret: str) -> list[Path]:
    return [
        path for path in root.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()
    ]


def test_enroll_keeps_the_token_in_the_keyring_and_the_server_in_the_config(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = live_server.service.add_station("ST-07", "ASSEMBLY")

    assert main(["enroll", "--server", live_server.url, "--code", code]) == 0

    out = capsys.readouterr().out
    assert "enrolled as station ST-07 (ASSEMBLY)" in out
    token = credentials.load_token(live_server.url)
    assert token not in out
    assert station_info(live_server.url, token).name == "ST-07"
    config = default_config_file()
    assert config.is_relative_to(tmp_path / "home" / ".config")
    settings = load_settings()
    assert (settings.server_url, settings.station_name) == (live_server.url, "ST-07")
    assert settings.keyring_backend == CRYPTFILE
    # The station started from that config presents the stored token.
    with backend(settings) as found:
        assert (found.url, found.token, found.embedded) == (live_server.url, token, None)
    # Not in the config, the keyring file, the data dir, anywhere under tmp (the plant db too).
    assert files_containing(tmp_path, token) == []
    keyring_files = list((tmp_path / "home" / ".local" / "share").rglob("*.cfg"))
    assert keyring_files, "the cryptfile keyring was not written where XDG_DATA_HOME says"


def test_enroll_keeps_other_settings_and_comments_of_the_config(live_server: LiveServer) -> None:
    config = default_config_file()
    config.parent.mkdir(parents=True)
    config.write_text('# set by IT\nrequest_timeout = 4.0\nserver_url = "http://old:1"\n')
    code = live_server.service.add_station("ST-08", "PAINT")

    assert main(["enroll", "--server", live_server.url + "/", "--code", code]) == 0

    text = config.read_text()
    assert text.startswith("# set by IT\nrequest_timeout = 4.0\n")
    settings = load_settings()
    assert settings.server_url == live_server.url  # one spelling, so the token is found again
    assert (settings.request_timeout, settings.work_center) == (4.0, "PAINT")


def test_a_code_used_twice_is_refused_and_the_first_token_stays(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = live_server.service.add_station("ST-09", "ASSEMBLY")
    assert main(["enroll", "--server", live_server.url, "--code", code]) == 0
    first = credentials.load_token(live_server.url)

    assert main(["enroll", "--server", live_server.url, "--code", code]) != 0

    assert "already used" in capsys.readouterr().err
    assert credentials.load_token(live_server.url) == first
    assert station_info(live_server.url, first).name == "ST-09"


def test_an_expired_code_is_refused_and_nothing_is_stored(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    svc = live_server.service
    code = svc.add_station("ST-10", "ASSEMBLY")
    issued = svc.clock()
    svc.clock = lambda: issued + timedelta(hours=24, minutes=1)

    assert main(["enroll", "--server", live_server.url, "--code", code]) != 0

    assert "expired" in capsys.readouterr().err
    with pytest.raises(credentials.NotEnrolled):
        credentials.load_token(live_server.url)
    assert not default_config_file().exists()


def test_a_revoked_station_is_told_it_is_not_enrolled(live_server: LiveServer) -> None:
    code = live_server.service.add_station("ST-11", "ASSEMBLY")
    assert main(["enroll", "--server", live_server.url, "--code", code]) == 0
    token = credentials.load_token(live_server.url)

    live_server.service.revoke_station("ST-11")

    with pytest.raises(StationNotEnrolled) as refused:
        station_info(live_server.url, token)
    assert refused.value.status == 401
    assert "station not enrolled" in refused.value.detail.lower()  # what the station shows


def test_the_station_refuses_to_start_without_a_token(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--server", live_server.url]) != 0
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: station not enrolled: run kiosk enroll --server {live_server.url} --code CODE"
    )


def test_enroll_with_the_null_keyring_fails_clearly_and_keeps_the_code(
    live_server: LiveServer, tmp_path: Path
) -> None:
    code = live_server.service.add_station("ST-12", "ASSEMBLY")
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}

    done = subprocess.run(
        [sys.executable, "-m", "kiosk", "enroll", "--server", live_server.url, "--code", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "keyring.backends.null.Keyring drops every secret" in done.stderr
    assert "pip install keyrings.cryptfile" in done.stderr
    assert "KEYRING_CRYPTFILE_PASSWORD" in done.stderr
    assert not default_config_file().exists()
    # The code was not spent: the admin can retry with a working keyring.
    assert main(["enroll", "--server", live_server.url, "--code", code]) == 0
    assert files_containing(tmp_path, credentials.load_token(live_server.url)) == []


# --- backends that would lose or expose the token ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("keyring.backends.fail.Keyring", "finds no keyring"),
        ("keyring.backends.null.Keyring", "drops every secret"),
        ("keyrings.cryptfile.file.PlaintextKeyring", "plain text"),
        ("keyrings.not_installed.Keyring", "cannot be loaded"),
    ],
)
def test_unusable_backends_are_refused_with_the_fix(name: str, why: str) -> None:
    with pytest.raises(credentials.KeyringUnusable, match=why) as refused:
        credentials.store_token("http://plant:8600", "t0ken", backend=name)
    assert "pip install keyrings.cryptfile" in str(refused.value)
    assert "LoadCredentialEncrypted" in str(refused.value)


def test_an_empty_chainer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring.backend

    monkeypatch.setattr(keyring.backend, "get_all_keyring", lambda: [])
    with pytest.raises(credentials.KeyringUnusable, match="no backend to chain"):
        credentials.open_backend("keyring.backends.chainer.ChainerBackend")


def test_cryptfile_without_its_password_is_refused_instead_of_prompting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KEYRING_CRYPTFILE_PASSWORD")
    with pytest.raises(credentials.KeyringUnusable, match="needs its password"):
        credentials.open_backend()


def test_cryptfile_password_from_a_systemd_credential(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    credentials.store_token("http://plant:8600", "t0ken-1")
    monkeypatch.delenv("KEYRING_CRYPTFILE_PASSWORD")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "keyring-password").write_text("correct horse battery staple\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))

    assert credentials.load_token("http://plant:8600/") == "t0ken-1"


def test_a_wrong_cryptfile_password_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    credentials.store_token("http://plant:8600", "t0ken-2")
    monkeypatch.setenv("KEYRING_CRYPTFILE_PASSWORD", "wrong")
    with pytest.raises(credentials.KeyringUnusable, match="does not open"):
        credentials.load_token("http://plant:8600")
