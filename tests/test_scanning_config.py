"""Scanner settings from the server: refused when a station could not run on them (422), and
a station that meets such settings anyway keeps its keyboard on the defaults."""

from __future__ import annotations

import re

import httpx
import pytest
from pydantic import ValidationError

from kiosk import rules
from kiosk.client import ExecutionClient
from kiosk.rules import Refusal
from kiosk.scanning import DetectorSettings
from kiosk.wedge import scanner_problem, scanner_settings
from kiosk.wire import Credentials, ScannerConfig
from tests.conftest import LiveServer

# Each field alone: refused by the wire model (and stated in the API's schema).
Case = tuple[dict[str, object], str]
BAD_FIELDS: list[Case] = [
    ({"prefix": "\x1b"}, "ESC"),
    ({"suffix": "\x1b]"}, "ESC"),
    ({"prefix": "A"}, "cannot contain 'A'"),
    ({"suffix": "#\t"}, "cannot contain '\\t'"),
    ({"max_gap_ms": 301.0}, "less than or equal to 300"),
    ({"terminators": ["escape"]}, "'enter', 'tab', 'ctrl+j' or 'ctrl+d'"),
]
# Stricter than the detector: the schema keeps framing to ASCII punctuation and controls.
ASCII_ONLY: list[Case] = [({"prefix": "\u00a7"}, "cannot contain")]
# How fields combine: the detector's rule, which the server applies when an admin sets them.
BAD_TOGETHER: list[Case] = [
    ({"max_gap_ms": 40.0, "avg_max_ms": 45.0}, "avg_max_ms"),
    ({"terminators": []}, "must be able to end"),
]
# What a station meets anyway (an older server, a cached copy), in the detector's words.
BAD: list[Case] = [
    ({"prefix": "\x1b"}, "ESC"),
    ({"suffix": "\x1b]"}, "ESC"),
    ({"prefix": "A"}, "cannot contain"),
    ({"max_gap_ms": 400.0}, "stall grace"),
    ({"terminators": ["escape"]}, "unknown terminator"),
    *BAD_TOGETHER,
]


@pytest.mark.parametrize(("fields", "words"), BAD_FIELDS + ASCII_ONLY)
def test_scanner_config_refuses_a_field_a_station_cannot_use(
    fields: dict[str, object], words: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(words)):
        ScannerConfig.model_validate(fields)


def test_scanner_config_takes_the_longest_gap_the_stall_grace_allows() -> None:
    config = ScannerConfig(max_gap_ms=300.0, prefix="\x02]", suffix="~\x03")
    assert DetectorSettings.from_config(config).max_gap_ms == 300.0


@pytest.mark.parametrize(("fields", "words"), BAD_TOGETHER)
def test_rules_refuse_fields_that_do_not_go_together(
    fields: dict[str, object], words: str
) -> None:
    with pytest.raises(Refusal, match=words) as refused:
        rules.ensure_scanner_usable(ScannerConfig.model_validate(fields))
    assert (refused.value.rule, refused.value.status) == ("scanner_settings_unusable", 422)


def test_scanner_config_accepts_good_settings() -> None:
    config = ScannerConfig(max_gap_ms=120, avg_max_ms=60, prefix="\x02", suffix="#")
    assert DetectorSettings.from_config(config).first_gap_limit_ms == pytest.approx(192.0)


@pytest.mark.parametrize(("fields", "words"), BAD)
def test_station_falls_back_to_the_defaults_on_unusable_settings(
    fields: dict[str, object], words: str
) -> None:
    # As an older server or a cached copy could hand them over: built without validation.
    terminators = fields.get("terminators", ("enter", "tab"))
    assert isinstance(terminators, list | tuple)
    fields = {**fields, "terminators": tuple(terminators)}
    config = ScannerConfig.model_construct(**{**ScannerConfig().model_dump(), **fields})
    assert scanner_settings(config) == DetectorSettings()
    problem = scanner_problem(config)
    assert problem is not None and words in problem
    assert scanner_problem(ScannerConfig()) is None


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("scanner", "rule", "words"),
    [
        ({"prefix": "\x1b"}, "request_invalid", "ESC"),
        ({"max_gap_ms": 40.0, "avg_max_ms": 45.0}, "scanner_settings_unusable", "avg_max_ms"),
    ],
)
async def test_the_server_refuses_unusable_scanner_settings_with_422(
    live_server: LiveServer, scanner: dict[str, object], rule: str, words: str
) -> None:
    token = live_server.token()  # one token: issuing another would un-enroll this one
    async with ExecutionClient(live_server.url, token) as client:
        info = await client.station()
        session = await client.admin_session(Credentials(badge="90001", pin="9999"))
        body = info.config.model_dump(mode="json")
        body["scanner"].update(scanner)
        async with httpx.AsyncClient(base_url=live_server.url) as http:
            answer = await http.put(
                f"/api/v1/admin/stations/{info.name}/config",
                json=body,
                headers={"Authorization": f"Bearer {token}", "X-Admin-Session": session.token},
            )
        assert answer.status_code == 422, answer.text
        assert answer.json()["rule"] == rule and words in answer.json()["detail"]
        assert (await client.station()).config == info.config  # nothing changed
