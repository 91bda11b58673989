"""A scanner and a station on different keyboard layouts get a diagnostic, not a silent miss."""

from __future__ import annotations

import pytest

from kiosk.scanning import LAYOUT_MISMATCH, classify
from kiosk.scanning.layout import foreign_layout


@pytest.mark.parametrize(
    ("arrived", "layout"),
    [
        ("TRV)&àà&", "AZERTY"),  # TRV-1001 typed by a US scanner on a French station
        ("&ààà&", "AZERTY"),  # badge 10001
        ('-&"àè-ààà"è-ç', "AZERTY"),  # onScan.js #15: 6130760003769
        ("TRVß1001", "QWERTZ"),  # German: - is ß
        ("TLß0001", "QWERTZ"),
        ("+C10109506000134352", "QWERTZ"),  # ]C1 arrives as +C1
    ],
)
def test_layout_mismatch_is_named_in_the_not_accepted_reason(arrived: str, layout: str) -> None:
    found = classify(arrived)
    assert found.kind == "unknown"
    assert LAYOUT_MISMATCH in found.reason and layout in found.reason
    assert "1001" not in found.reason  # at most the last two characters are shown


def test_foreign_characters_alone_still_point_at_the_layout() -> None:
    assert foreign_layout("ÉÈ-zzz", lambda _meant: False) == "another layout"
    assert LAYOUT_MISMATCH in classify("ÉÈ-çzz").reason


@pytest.mark.parametrize("arrived", ["XYZ-99-QQ", "hello", "TRV-ABC"])
def test_an_unknown_code_on_matching_layouts_gets_no_layout_hint(arrived: str) -> None:
    assert LAYOUT_MISMATCH not in classify(arrived).reason


def test_a_good_code_is_never_flagged() -> None:
    assert classify("TRV-1001").kind == "traveler"
