"""Scanner bursts reaching the running station: badge-in, traveler, tools, user switch."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input, RichLog

from kiosk.scanning import LAYOUT_MISMATCH, DetectorSettings, Scan
from kiosk.screens.badge import BadgeScreen
from kiosk.screens.queue import QueueScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.screens.traveler import TravelerScreen
from kiosk.wedge import WedgeInput
from kiosk.wire import ScannerConfig
from tests.conftest import LiveServer
from tests.station import burst, running, settle, typed
from tests.station_helpers import message, open_scanner_test

# UI behaviour does not depend on the database; the server tests cover PostgreSQL.
pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)


async def test_badge_burst_signs_in_and_never_lands_in_the_input(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        assert isinstance(app.screen, BadgeScreen)
        await burst(pilot, "10001")
        assert isinstance(app.screen, QueueScreen)
        assert app.person is not None and app.person.name == "Ana Ortiz"


async def test_traveler_burst_opens_it_and_leaves_the_focused_input_empty(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        queue = pilot.app.screen
        field = queue.query_one("#traveler-number", Input)
        field.focus()
        await typed(pilot, "ab")  # a person starts typing, then scans
        await burst(pilot, "TRV-1001")
        assert isinstance(pilot.app.screen, TravelerScreen)
        assert pilot.app.screen.traveler.number == "TRV-1001"
        assert field.value == "ab"  # the person's keys stayed, the scan did not leak in


async def test_human_typing_is_not_a_scan(live_server: LiveServer, tmp_path: Path) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        field = pilot.app.screen.query_one("#traveler-number", Input)
        field.focus()
        await typed(pilot, "TRV-1002")
        assert field.value == "TRV-1002"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, TravelerScreen)
        assert pilot.app.screen.traveler.number == "TRV-1002"


async def test_badge_burst_switches_the_user(live_server: LiveServer, tmp_path: Path) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        assert isinstance(pilot.app.screen, QueueScreen)
        await burst(pilot, "10002")  # on the queue: Ben takes over, on his queue
        assert pilot.app.person is not None and pilot.app.person.name == "Ben Okafor"
        assert isinstance(pilot.app.screen, QueueScreen)
        await burst(pilot, "TRV-1001")
        traveler = pilot.app.screen
        assert isinstance(traveler, TravelerScreen)
        await burst(pilot, "10001")  # mid-step: Ana takes over, and the traveler stays open
        assert pilot.app.person is not None and pilot.app.person.name == "Ana Ortiz"
        assert pilot.app.screen is traveler
        assert "Signed in: Ana Ortiz." in message(pilot.app)


async def test_tool_scans_fill_the_step_and_an_expired_tool_is_refused(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        await burst(pilot, "TRV-1002")  # steps 10.x done: 20.1 needs a torque wrench
        screen = pilot.app.screen
        assert isinstance(screen, TravelerScreen)
        await pilot.press("f2")
        await settle(pilot)
        await burst(pilot, "TL-0002")
        message = str(screen.query_one("#message").render())
        assert "out of calibration" in message and "TL-0002" in message
        await burst(pilot, "TL-0001")
        step = screen.step
        assert step is not None
        wrench = next(i for i in step.items if i.label == "Torque wrench")
        assert wrench.latest is not None and wrench.latest.value == "TL-0001"


async def test_unknown_scan_says_what_was_read_and_why(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "10001")
        await burst(pilot, "XYZ-99-QQ")
        message = str(pilot.app.screen.query_one("#message").render())
        assert "Scan not accepted" in message
        assert isinstance(pilot.app.screen, QueueScreen)


# --- helpers: keys with explicit gaps ------------------------------------------------------------

_NAMES = {"\r": "enter", "\x03": "ctrl+c", "\x11": "ctrl+q"}


async def post_keys(
    pilot: Pilot[int], text: str, gaps_ms: Sequence[float], *, start: float | None = None
) -> None:
    """Post `text` as key events stamped `gaps_ms` apart from `start` (default: now)."""
    assert len(gaps_ms) == len(text) - 1
    stamp = time.monotonic() if start is None else start
    for n, char in enumerate(text):
        stamp += gaps_ms[n - 1] / 1000 if n else 0.0
        event = events.Key(_NAMES.get(char, char), char)
        event.time = stamp
        pilot.app.post_message(event)
    await pilot.pause(0.1)
    await settle(pilot)


async def on_queue_with_the_traveler_field(pilot: Pilot[int]) -> Input:
    await burst(pilot, "10001")
    field = pilot.app.screen.query_one("#traveler-number", Input)
    field.focus()
    await pilot.pause()
    return field


# --- typing without lag ----------------------------------------------------------------------------


async def test_a_typed_key_is_in_the_field_before_the_detector_has_decided(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        field = await on_queue_with_the_traveler_field(pilot)
        # Stamped 10 s ahead: the detector cannot decide about it for 10 s, yet it shows now.
        await post_keys(pilot, "T", [], start=time.monotonic() + 10)
        assert field.value == "T"
        assert pilot.app.wedge.seconds_to_deadline() is not None  # still undecided


# --- scans without leaks ---------------------------------------------------------------------------


Typing = tuple[str, str, float]
"""("person", keys, 0) typed 150 ms apart, or ("scanner", code, gap) sent `gap` s apart + Enter."""

PERSON = st.tuples(st.just("person"), st.text("abcdefgh", min_size=1, max_size=3), st.just(0.0))
SCANNER = st.tuples(
    st.just("scanner"),
    st.text("XYZ789", min_size=4, max_size=8).map(lambda code: "ZQ" + code),  # no label kind
    st.floats(0.001, 0.012),
)


async def send(pilot: Pilot[int], typing: list[Typing]) -> None:
    """The keys at their times: each stamped when the terminal would have read it, and posted
    no sooner (a scanner's keys all at once, as a busy station finds them queued)."""
    at = time.monotonic()
    for who, keys, gap in typing:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        if who == "person":
            for char in keys:
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                pilot.app.post_message(key_at(char, char, at))
                at += 0.15
            continue
        for n, (name, char) in enumerate([*((c, c) for c in keys), ("enter", "\r")]):
            pilot.app.post_message(key_at(name, char, at + n * gap))
        at += len(keys) * gap + 0.15


def key_at(name: str, char: str, at: float) -> events.Key:
    event = events.Key(name, char)
    event.time = at
    return event


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: 1-2 s an example
)
@given(typing=st.lists(st.one_of(PERSON, SCANNER), min_size=1, max_size=5))
async def test_any_mix_of_typing_and_scans_keeps_every_key_once_in_order_and_no_scan_in_the_field(
    live_server: LiveServer, tmp_path: Path, typing: list[Typing]
) -> None:
    """The wedge as the station runs it (the app's key path, its timer, the Input's snapshot
    and take-back), where tests/test_scanning_planner.py checks the planner alone."""
    async with running(live_server.url, live_server.token(), tmp_path / uuid.uuid4().hex) as pilot:
        field = await on_queue_with_the_traveler_field(pilot)
        routed: list[Scan] = []
        route = pilot.app.route_scan

        def routing(scan: Scan) -> None:
            routed.append(scan)
            route(scan)

        pilot.app.route_scan = routing  # type: ignore[method-assign]
        await send(pilot, typing)
        await pilot.pause(0.3)  # the wedge's last decision
        await settle(pilot)
        assert field.value == "".join(keys for who, keys, _ in typing if who == "person")
        assert [(s.text, s.complete) for s in routed] == [
            (code, True) for who, code, _ in typing if who == "scanner"
        ]


@pytest.mark.parametrize("first_gap_ms", [35, 65])
async def test_a_slow_first_gap_opens_the_whole_code_and_leaves_the_field_empty(
    live_server: LiveServer, tmp_path: Path, first_gap_ms: float
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        field = await on_queue_with_the_traveler_field(pilot)
        await post_keys(pilot, "TRV-1001\r", [first_gap_ms, *[4] * 7])
        assert isinstance(pilot.app.screen, TravelerScreen)
        assert pilot.app.screen.traveler.number == "TRV-1001"  # not RV-1001
        assert field.value == ""


async def test_the_tail_of_an_over_length_read_is_not_routed(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        field = await on_queue_with_the_traveler_field(pilot)
        pilot.app.wedge = WedgeInput(DetectorSettings(max_scan_len=9))
        # Cut after 9 characters; its tail "TRV-1002" is a valid traveler code on its own.
        await burst(pilot, "TL-0001XXTRV-1002")
        assert isinstance(pilot.app.screen, QueueScreen)  # TRV-1002 was not opened
        assert "longer than the 9 characters" in message(pilot.app)
        assert field.value == ""


async def test_ctrl_c_and_ctrl_q_in_a_row_are_not_a_scan(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await on_queue_with_the_traveler_field(pilot)
        queue = pilot.app.screen
        assert isinstance(queue, QueueScreen)
        queue.say("", "info")
        await post_keys(pilot, "\x03\x11\x03\x11\x03\x11", [12] * 5)
        await pilot.pause(0.4)  # past the stall grace a latched "read" would have waited
        await settle(pilot)
        assert "Unreadable" not in message(pilot.app)
        assert isinstance(pilot.app.screen, QueueScreen) and pilot.app.is_running


# --- pastes ------------------------------------------------------------------------------------------


async def test_a_paste_with_a_group_separator_is_a_scan_not_a_truncated_value(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        field = await on_queue_with_the_traveler_field(pilot)
        pilot.app.post_message(events.Paste("]C10109506000134352\x1d10ABC123"))
        await settle(pilot)
        assert field.value == ""  # an Input would have kept "]C10109506000134352"
        assert "Scanned material ABC123" in message(pilot.app)


async def test_a_plain_paste_goes_into_the_field_and_one_with_no_field_is_a_scan(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        field = await on_queue_with_the_traveler_field(pilot)
        pilot.app.post_message(events.Paste("TRV-10"))
        await settle(pilot)
        assert field.value == "TRV-10"  # a person's paste is theirs
        pilot.app.set_focus(None)
        pilot.app.post_message(events.Paste("TRV-1001\r"))
        await settle(pilot)
        assert isinstance(pilot.app.screen, TravelerScreen)  # used to be dropped
        assert pilot.app.screen.traveler.number == "TRV-1001"


# --- what the reads say ------------------------------------------------------------------------------


async def test_a_magstripe_with_a_bad_track_1_and_a_good_track_2_signs_in(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "%E?;10001=991270?")
        assert isinstance(pilot.app.screen, QueueScreen)
        assert pilot.app.person is not None and pilot.app.person.name == "Ana Ortiz"


async def test_a_burst_on_a_mismatched_layout_says_so(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await burst(pilot, "&ààà&")  # badge 10001 from a US scanner on an AZERTY station
        assert "Scan not accepted" in message(pilot.app)
        assert LAYOUT_MISMATCH in message(pilot.app)
        assert pilot.app.person is None




async def test_the_scanner_test_screen_names_a_layout_mismatch(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path, size=(100, 30)) as pilot:
        screen = await open_scanner_test(pilot)
        await burst(pilot, "TRVß1001")  # TRV-1001 from a US scanner on a German station
        log = "\n".join(line.text for line in screen.query_one(RichLog).lines)
        assert LAYOUT_MISMATCH in log and "QWERTZ" in log
        assert LAYOUT_MISMATCH in message(pilot.app)


async def test_learning_a_prefixed_scanner_keeps_the_badge_reader_working(
    live_server: LiveServer, tmp_path: Path
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path, size=(100, 30)) as pilot:
        app = pilot.app
        await open_scanner_test(pilot)
        await pilot.press("f5")
        for code in ("TRV-1001", "TL-0001", "LOT-A100"):
            await burst(pilot, f"\x02{code}#", gap=0.004)
        await pilot.press("f2")
        await settle(pilot)
        assert "Saved to DEMO-01" in message(app)
        app.load_station()  # what the next heartbeat does after a config change
        await settle(pilot)
        assert app.info is not None
        scanner = app.info.config.scanner
        assert (scanner.prefix, scanner.suffix) == ("\x02", "#")
        assert scanner.min_len <= 4  # never above the 5-digit badges
        await pilot.press("f10")  # close the scanner test
        await pilot.press("escape")  # and the admin console
        await settle(pilot)
        await burst(pilot, "10002")  # the badge reader sends no prefix
        assert app.person is not None and app.person.name == "Ben Okafor"
        await burst(pilot, "\x02TRV-1001#")  # and the scanner still works framed
        assert isinstance(app.screen, TravelerScreen)


async def test_a_station_given_unusable_scanner_settings_keeps_its_keyboard(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        app = pilot.app
        assert app.info is not None
        # As an older server or a cached copy could hand it over: never validated here.
        bad = ScannerConfig.model_construct(**{**ScannerConfig().model_dump(), "prefix": "\x1b"})
        config = app.info.config.model_copy(update={"scanner": bad})
        broken = app.info.model_copy(update={"config": config})

        async def station() -> object:
            return broken

        monkeypatch.setattr(app.link, "station", station)
        app.load_station()
        await settle(pilot)
        assert app.is_running and app.wedge.settings == DetectorSettings()
        await burst(pilot, "10001")
        assert app.person is not None and app.person.name == "Ana Ortiz"


async def test_keys_handled_late_by_a_busy_station_are_still_decided(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """Keys a busy station reads late carry their old time, so the detector's deadline for them
    has already passed when they are handled: they must be decided then, not wait for the next
    key (a wait of 0 s: Textual's Timer divides by it and never fired)."""
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        field = await on_queue_with_the_traveler_field(pilot)
        # A read with no Enter, as if the station had been busy for a second.
        await post_keys(pilot, "TRV-1001", [4] * 7, start=time.monotonic() - 1.0)
        await pilot.pause(0.3)
        await settle(pilot)
        assert pilot.app.wedge.seconds_to_deadline() is None  # nothing left undecided
        assert "Unreadable scan: the reader stopped mid-code. Scan again." in message(pilot.app)
        assert field.value == ""


async def test_a_pin_typed_right_behind_a_badge_scan_lands_in_the_pin_field(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """A busy station reads the badge and the PIN's first digit in one go, as tmux delivered
    them in a CI run: that digit was handled before the prompt had moved the focus to the PIN,
    so it went into the badge field and the signature was refused."""
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await pilot.press("f12")  # the admin exit: a badge-and-PIN prompt
        await settle(pilot)
        assert isinstance(pilot.app.screen, SignOffScreen)
        # The badge's read, and 0.1 ms behind it the first digit a person typed; the rest at a
        # person's pace, stamped as read.
        await post_keys(pilot, "10001\r1", [0.05] * 5 + [0.1], start=time.monotonic())
        for _ in range(3):
            await post_keys(pilot, "1", [])
            await pilot.pause(0.12)
        assert pilot.app.screen.query_one("#pin", Input).value == "1111"
        await post_keys(pilot, "\r", [])
        await settle(pilot)
        assert "Ana Ortiz is not an admin; the station stays open." in message(pilot.app)
