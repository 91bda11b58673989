"""The station's settings, checked field by field as TOML and the environment give them: each
wrong value named with its field, nothing guessed (kiosk/config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.config import ConfigError, StationSettings, load_settings, station_settings


def test_a_file_and_the_environment_set_every_kind_of_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text(
        'server_url = "https://mes.plant:8600"\nstation_name = "CELL-07"\n'
        'request_timeout = 4\nca_file = "/etc/kiosk/ca.pem"\nallow_insecure_http = false\n'
    )
    monkeypatch.setenv("KIOSK_REQUEST_TIMEOUT", "2.5")  # the environment outranks the file
    monkeypatch.setenv("KIOSK_ALLOW_INSECURE_HTTP", "Yes")
    found = load_settings(config, station_name="CELL-08")  # and a flag outranks both
    assert found == StationSettings(
        server_url="https://mes.plant:8600",
        station_name="CELL-08",
        request_timeout=2.5,
        ca_file=Path("/etc/kiosk/ca.pem"),
        allow_insecure_http=True,
        data_dir=found.data_dir,
    )
    assert isinstance(found.request_timeout, float)


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"station_nme": "X"}, "station_nme: not a station setting (known: server_url, "),
        ({"request_timeout": "soon"}, "request_timeout: should be a number of seconds, not 'soon'"),
        ({"request_timeout": True}, "request_timeout: should be a number of seconds, not True"),
        ({"allow_insecure_http": "2"}, "allow_insecure_http: should be true or false, not '2'"),
        ({"station_name": 7}, "station_name: should be text, not 7"),
        ({"ca_file": ["a.pem"]}, "ca_file: should be text, not ['a.pem']"),
    ],
)
def test_a_wrong_value_is_named_with_its_field(values: dict[str, object], said: str) -> None:
    with pytest.raises(ValueError) as refused:
        station_settings(values)
    assert str(refused.value).startswith(said)


def test_a_wrong_file_names_itself_and_the_field(tmp_path: Path) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text("request_timeout = [1]\n")
    with pytest.raises(ConfigError, match=r"kiosk\.toml: request_timeout: should be a number"):
        load_settings(config)
    config.write_text("request_timeout = \n")
    with pytest.raises(ConfigError, match=r"kiosk\.toml: not valid TOML"):
        load_settings(config)


def test_unset_optional_fields_stay_unset_and_settings_cannot_change() -> None:
    found = station_settings({"server_url": None, "ca_file": None})
    assert (found.server_url, found.ca_file, found.request_timeout) == (None, None, 10.0)
    with pytest.raises(AttributeError):
        found.station_name = "OTHER"  # type: ignore[misc]
