"""On the Linux console (TERM=linux) the station picks the 8-colour theme and draws only marks the
console's fonts have: checked against Debian's own console fonts (console-setup's Lat15, Uni2
and Uni3 in /usr/share/consolefonts), read straight from their PSF unicode tables."""

from __future__ import annotations

import ast
import gzip
import os
import struct
from functools import cache
from pathlib import Path

import pytest

from kiosk import themes
from kiosk.themes.console import CONSOLE_FALLBACKS, HALF_BLOCKS, shown
from kiosk.widgets import data_item_entry, step_detail, step_list
from kiosk.wire import (
    DataItem,
    ItemKind,
    Meaning,
    RecordedValue,
    SignatureManifest,
    Step,
    StepStatus,
)
from tests.conftest import LiveServer
from tests.station import burst, running, settle, work_on
from tests.station_helpers import screen_text, type_in

ROOT = Path(__file__).resolve().parent.parent
FONT_DIR = Path("/usr/share/consolefonts")
# The codesets the brief names, in the faces Debian's installer offers at its default 16 pixels
# (the smaller VGA8/VGA14 cuts lack even `…`).
FONTS = sorted(
    path
    for codeset in ("Lat15", "Uni2", "Uni3")
    for face in ("Fixed16", "Terminus16", "TerminusBold16", "VGA16")
    if (path := FONT_DIR / f"{codeset}-{face}.psf.gz").exists()
)
LINUX = {"TERM": "linux"}


@pytest.fixture(autouse=True, scope="module")
def _fonts() -> None:
    if len(FONTS) < 9:
        why = "Debian console fonts missing: apt-get install console-setup-linux (.ci/run does)"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)


def psf_unicode(path: Path) -> frozenset[str]:
    """Every character a PSF1 or PSF2 font's unicode table maps to one of its glyphs."""
    data = gzip.decompress(path.read_bytes())
    if data[:2] == b"\x36\x04":  # PSF1: mode, height; 256 or 512 glyphs; UCS-2 table
        mode, height = data[2], data[3]
        assert mode & 0x02, f"{path.name} has no unicode table"
        table = data[4 + (512 if mode & 0x01 else 256) * height :]
        codes = struct.unpack(f"<{len(table) // 2}H", table)
        return frozenset(chr(c) for c in codes if c not in (0xFFFE, 0xFFFF))
    magic, _version, header, flags, count, size = struct.unpack_from("<6I", data)
    assert magic == 0x864AB572 and flags & 0x01, f"{path.name} is not a PSF2 font with a table"
    table = data[header + count * size :]
    # Entries end with 0xFF; a 0xFE starts sequences (combinations), which are not single glyphs.
    return frozenset(
        char for entry in table.split(b"\xff") for char in entry.split(b"\xfe")[0].decode()
    )


@cache
def drawable() -> frozenset[str]:
    """What every one of the fonts can draw."""
    return frozenset.intersection(*(psf_unicode(path) for path in FONTS))


def missing(text: str) -> set[str]:
    return {c for c in text if c not in drawable() and c not in "\n\t"}


def literal_marks(path: Path) -> set[str]:
    """Non-ASCII characters in the string literals of a source file (docstrings left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        char
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        for char in node.value
        if ord(char) > 127
    }


# --- the fonts, the marks and their fallbacks ---------------------------------------------------


def test_the_fonts_are_read_and_lack_the_tick() -> None:
    assert {p.name.split("-")[0] for p in FONTS} == {"Lat15", "Uni2", "Uni3"}
    assert set("✘•·▶■●…│→±–") <= drawable()  # what the station already draws there
    assert "✔" not in drawable()  # the reason for all this: a completed step was a blank box


def test_every_fallback_is_drawable_and_as_wide() -> None:
    from rich.cells import cell_len

    for mark, fallback in CONSOLE_FALLBACKS.items():
        assert mark not in drawable(), f"{mark} needs no fallback"
        assert fallback in drawable(), f"{fallback} (for {mark}) is not in every console font"
        assert cell_len(fallback) == cell_len(mark) == 1  # layouts stay the same cell for cell


# Screens that draw a mark the console lacks without passing it through `shown`: theirs to fix
# (`shown(...)` around the text), whereupon the strict xfail fails and the entry goes.
NOT_YET_SHOWN: dict[str, str] = {}


def _sources() -> list[object]:
    paths = sorted([*(ROOT / "kiosk/widgets").glob("*.py"), *(ROOT / "kiosk/screens").glob("*.py")])
    params: list[object] = []
    for path in paths:
        name = f"{path.parent.name}/{path.name}"
        todo = NOT_YET_SHOWN.get(name)
        marks = [pytest.mark.xfail(strict=True, reason=f"draws {todo} as is")] if todo else []
        params.append(pytest.param(path, id=name, marks=marks))
    return params


@pytest.mark.parametrize("path", _sources())
def test_every_mark_the_screens_use_is_drawable_or_falls_back(path: Path) -> None:
    lacking = {c for c in literal_marks(path) if c not in drawable()}
    half_blocks = lacking & HALF_BLOCKS
    lacking -= HALF_BLOCKS
    assert lacking <= CONSOLE_FALLBACKS.keys(), f"{sorted(lacking)}: no console font has them"
    if lacking:  # and the file draws them through the fallback
        assert "from kiosk.themes.console import shown" in path.read_text(), sorted(lacking)
    if half_blocks:  # and the file draws another way on the console (tests/test_handoff.py shows
        # it), or through a fallback of `shown` (a thumbnail's shades, tests/test_evidence_station.py)
        text = path.read_text()
        through_shown = half_blocks <= CONSOLE_FALLBACKS.keys() and "import shown" in text
        assert "on_linux_console" in text or through_shown, sorted(half_blocks)


def test_half_blocks_are_in_no_console_font() -> None:
    assert not HALF_BLOCKS & drawable() and "█" in drawable()


def test_fallbacks_apply_only_on_the_linux_console() -> None:
    assert shown("✔ done ‖ ✍ ℹ", LINUX) == "☑ done ║ » ⓘ"
    assert shown("✔ done", {"TERM": "xterm-256color"}) == "✔ done"
    assert shown("✔ done", {}) == "✔ done"


# --- the theme ----------------------------------------------------------------------------------


def test_term_linux_picks_the_console_theme_unless_the_server_names_an_8_colour_one() -> None:
    for name in ("kiosk-dark", "kiosk-high-contrast", None, "no-such-theme"):
        assert themes.resolve(name, LINUX) == "kiosk-console"
    assert themes.resolve("kiosk-console", LINUX) == "kiosk-console"
    eight = [name for name, theme in themes.THEMES.items() if theme.ansi]
    assert eight == ["kiosk-console"]
    for name in themes.THEMES:
        assert themes.resolve(name, {"TERM": "xterm-256color"}) == name
    assert themes.resolve("no-such-theme", {"TERM": "xterm"}) == themes.DEFAULT_THEME


# --- what the widgets draw ----------------------------------------------------------------------


def _value(passed: bool | None) -> RecordedValue:
    return RecordedValue(
        id=1,
        value="12.5",
        passed=passed,
        recorded_by="Ana Ortiz",
        server_time="2026-01-01T08:00:00Z",
        station_time=None,
        station="ST-1",
    )


def _step(status: StepStatus) -> Step:
    torque = DataItem(
        id=1,
        label="Torque",
        kind=ItemKind.MEASUREMENT,
        unit="Nm",
        lower=11.5,
        upper=13.5,
        nominal=12.5,
        latest=_value(True),
    )
    signed = SignatureManifest(
        id=1,
        signer_id=1,
        printed_name="Ana Ortiz",
        meaning=Meaning.PERFORMED,
        server_time="2026-01-01T08:00:00Z",
        station="ST-1",
        content_hash="0" * 64,
    )
    return Step(
        id=1,
        number="20.1",
        title="Torque",
        instructions="Torque to 12.5 Nm.",
        revision="C",
        inspection=False,
        work_center="ASSEMBLY",
        status=status,
        items=(torque,),
        signatures=(signed,),
    )


def test_the_widgets_marks_on_the_linux_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "linux")
    torque = _step(StepStatus.COMPLETE).items[0]
    drawn = [
        *(step_list.step_label(_step(status)).plain for status in StepStatus),
        data_item_entry.verdict_for(torque, "12.5")[0],
        data_item_entry.verdict_for(torque, "15")[0],
        data_item_entry.recorded_text(torque),
        step_detail.signatures_text(_step(StepStatus.COMPLETE)),
    ]
    assert missing("".join(drawn)) == set(), drawn
    assert "☑ 20.1 Torque" in drawn  # complete: a tick the console can draw
    monkeypatch.setenv("TERM", "xterm-256color")
    assert step_list.step_label(_step(StepStatus.COMPLETE)).plain.startswith("✔ 20.1")


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
async def test_the_traveler_screen_on_the_linux_console(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real station on TRV-1002 (two steps signed, torque typed): console theme, and every
    character on the screen is in every console font."""
    monkeypatch.setenv("TERM", "linux")
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await work_on(pilot, "TRV-1002")
        await burst(pilot, "TL-0001")
        await type_in(pilot, "12.5")
        await settle(pilot)
        assert pilot.app.theme == "kiosk-console"
        text = screen_text(pilot.app)
        assert "☑ in tolerance" in text
        assert missing(text) == set(), text
        # The signed steps are in operation 10: the screen shows one operation at a time.
        await pilot.press("ctrl+g")
        await type_in(pilot, "10.1")
        await pilot.press("enter")
        await settle(pilot)
        text = screen_text(pilot.app)
        assert "☑ 10.1" in text
        assert missing(text) == set(), text
