"""Pastes: which are scans (GS/RS inside, or no field to take them) and which are a person's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from textual import events
from textual.app import App, ComposeResult
from textual.widgets import TextArea

from kiosk.scanning import DetectorSettings, Scan, scan_from_paste
from kiosk.wedge import WedgeInput

GS, RS, EOT = "\x1d", "\x1e", "\x04"


@pytest.mark.parametrize(
    "text",
    [f"]C10109506000134352{GS}10ABC123", f"[)>{RS}06{GS}P123{RS}{EOT}", f"0112{GS}10A\r\n"],
)
@pytest.mark.parametrize("into_field", [True, False])
def test_a_paste_with_scanner_separators_is_a_scan_whole(text: str, into_field: bool) -> None:
    scan = scan_from_paste(text, into_field=into_field)
    assert scan is not None and scan.complete
    assert scan.text == text.rstrip("\r\n")  # GS and RS kept: str.strip() would eat them


def test_a_plain_paste_into_a_field_is_the_persons() -> None:
    assert scan_from_paste("12.702", into_field=True) is None
    assert scan_from_paste("two\nlines", into_field=True) is None


def test_a_paste_with_no_field_focused_is_a_scan_not_dropped() -> None:
    assert scan_from_paste("TRV-1001\r", into_field=False) == Scan("TRV-1001", (), None)


def test_framing_is_stripped_from_a_pasted_read() -> None:
    settings = DetectorSettings(prefix="\x02", suffix="#")
    scan = scan_from_paste("\x02TL-0001#\r", into_field=False, settings=settings)
    assert scan is not None and scan.text == "TL-0001"


@pytest.mark.parametrize("text", ["", "\r\n", "   "])
def test_an_empty_paste_is_left_alone(text: str) -> None:
    assert scan_from_paste(text, into_field=False) is None


def test_an_over_long_paste_is_unreadable() -> None:
    scan = scan_from_paste("X" * 20, into_field=False, settings=DetectorSettings(max_scan_len=8))
    assert scan is not None and (scan.complete, scan.problem) == (False, "too_long")


@given(text=st.text(max_size=60), into_field=st.booleans())
def test_a_scan_from_a_paste_keeps_every_data_character(text: str, into_field: bool) -> None:
    scan = scan_from_paste(text, into_field=into_field)
    if scan is not None:
        assert text.startswith(scan.text) and scan.text.strip(" ")
        assert text[len(scan.text) :].strip("\r\n\t") == ""


class Notes(App[None]):
    """A screen with a TextArea: the station has none yet, the wedge's paste rule covers one."""

    def compose(self) -> ComposeResult:
        yield TextArea()


async def test_a_paste_into_a_text_area_is_the_persons_unless_it_carries_scanner_codes() -> None:
    app = Notes()
    async with app.run_test() as pilot:
        area = app.query_one(TextArea)
        area.focus()
        await pilot.pause()
        wedge = WedgeInput()
        person = await wedge.paste(events.Paste("burr on the edge"), app.on_event, area)
        await pilot.pause()
        assert person.scans == [] and area.text == "burr on the edge"
        code = await wedge.paste(events.Paste(f"]C10109506000134352{GS}10ABC123"), app.on_event, area)
        await pilot.pause()
        assert [s.text for s in code.scans] == [f"]C10109506000134352{GS}10ABC123"]
        assert area.text == "burr on the edge"  # a TextArea would have made the GS a line break
