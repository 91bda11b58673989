"""Property tests: the detector never loses, duplicates or reorders a key, and never raises."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.scanning import (
    Decision,
    DetectorSettings,
    KeyInput,
    Release,
    Scan,
    WedgeDetector,
    classify,
)

# Keys a kiosk keyboard and a wedge reader can produce, as Textual names them.
_TEXT_KEYS = [
    ("a", "a"), ("B", "B"), ("1", "1"), ("7", "7"), ("minus", "-"), ("space", " "),
    ("ctrl+right_square_bracket", "\x1d"), ("ctrl+b", "\x02"), ("ctrl+c", "\x03"),
    ("ctrl+d", "\x04"), ("ctrl+j", "\n"), ("escape", "\x1b"),
]  # fmt: skip
_TERMINATOR_KEYS = [("enter", "\r"), ("tab", "\t")]
_NO_TEXT_KEYS = [("left_shift", None), ("up", None), ("f5", None), ("home", None)]

_SETTINGS = [
    DetectorSettings(),
    DetectorSettings.bluetooth(),
    DetectorSettings(prefix="\x02"),
    DetectorSettings(suffix="\x03"),
    DetectorSettings(prefix="\x02", suffix="\x03"),
    DetectorSettings(prefix="\x02\x02"),
    DetectorSettings(allow_no_terminator=True, min_len_no_terminator=4),
    DetectorSettings(terminators=("enter",), min_len=2, latch_len=2),
    DetectorSettings(max_scan_len=5),
]

# Gaps in ms: same read, scanner speed, fast typist, person, pause, and a clock
# that steps backwards.
_gaps = st.one_of(
    st.just(0.0),
    st.floats(0, 15),
    st.floats(15, 65),
    st.floats(65, 400),
    st.floats(400, 3000),
    st.floats(-50, 0),
)


@dataclass(frozen=True)
class Poll:
    """The app's timer firing ``offset_ms`` after the previous event."""

    offset_ms: float


_key_choice = st.sampled_from(_TEXT_KEYS + _TERMINATOR_KEYS + _NO_TEXT_KEYS)
_step = st.one_of(
    st.tuples(_key_choice, _gaps),
    st.tuples(st.none(), st.floats(0, 700)),
)


def _build(steps: Sequence[tuple[tuple[str, str | None] | None, float]]) -> list[KeyInput | Poll]:
    events: list[KeyInput | Poll] = []
    now = 1000.0
    for choice, gap in steps:
        if choice is None:
            events.append(Poll(gap))
            continue
        now += gap / 1000.0
        events.append(KeyInput(choice[0], choice[1], now))
    return events


def _drive(detector: WedgeDetector, events: Sequence[KeyInput | Poll]) -> list[Decision]:
    decisions: list[Decision] = []
    now = 1000.0
    for event in events:
        if isinstance(event, Poll):
            decisions.extend(detector.poll(now + event.offset_ms / 1000.0))
        else:
            now = event.time
            decisions.extend(detector.feed(event))
    decisions.extend(detector.poll(now + 60.0))
    return decisions


def _keys_out(decisions: Sequence[Decision]) -> list[KeyInput]:
    return [k for d in decisions for k in d.keys]


@settings(max_examples=400, deadline=None)
@given(steps=st.lists(_step, max_size=60), detector_settings=st.sampled_from(_SETTINGS))
def test_every_key_comes_back_exactly_once_in_order(
    steps: list[tuple[tuple[str, str | None] | None, float]],
    detector_settings: DetectorSettings,
) -> None:
    events = _build(steps)
    keys_in = [e for e in events if isinstance(e, KeyInput)]
    detector = WedgeDetector(detector_settings)
    decisions = _drive(detector, events)
    assert _keys_out(decisions) == keys_in
    chars_in = "".join(k.character or "" for k in keys_in)
    assert "".join(k.character or "" for k in _keys_out(decisions)) == chars_in
    assert not detector.holding and detector.deadline() is None
    assert all(d.keys for d in decisions)  # no empty decisions


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(_step, max_size=60))
def test_scan_text_is_exactly_its_keys_without_the_terminator(
    steps: list[tuple[tuple[str, str | None] | None, float]],
) -> None:
    decisions = _drive(WedgeDetector(), _build(steps))
    for scan in (d for d in decisions if isinstance(d, Scan)):
        data_keys = scan.keys[:-1] if scan.terminator else scan.keys
        assert scan.text == "".join(k.character or "" for k in data_keys)
        assert scan.terminator is None or scan.keys[-1].key == scan.terminator


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 -\r\t", max_size=30),
    gaps=st.lists(st.floats(80, 250), min_size=30, max_size=30),
)
def test_people_typing_at_80_to_250_ms_never_make_a_scan(text: str, gaps: list[float]) -> None:
    keys, now = [], 0.0
    for char, gap in zip(text, gaps, strict=False):
        now += gap / 1000.0
        name = {"\r": "enter", "\t": "tab", " ": "space", "-": "minus"}.get(char, char)
        keys.append(KeyInput(name, char, now))
    decisions = _drive(WedgeDetector(), keys)
    assert all(isinstance(d, Release) for d in decisions)
    assert _keys_out(decisions) == keys


@settings(max_examples=200, deadline=None)
@given(
    word=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12),
    gaps=st.lists(st.floats(40, 60), min_size=13, max_size=13),
)
def test_fast_typists_at_40_to_60_ms_never_make_a_scan(word: str, gaps: list[float]) -> None:
    keys, now = [], 0.0
    for char, gap in zip(word + "\r", gaps, strict=False):
        now += gap / 1000.0
        keys.append(KeyInput("enter" if char == "\r" else char, char, now))
    decisions = _drive(WedgeDetector(), keys)
    assert not any(isinstance(d, Scan) for d in decisions)
    assert "".join(k.character or "" for k in _keys_out(decisions)) == word + "\r"


@settings(max_examples=200, deadline=None)
@given(
    typing=st.text(alphabet="abcxyz019", max_size=8),
    code=st.text(alphabet="ABCXYZ0123456789-\x1d", min_size=4, max_size=40),
    typing_gaps=st.lists(st.floats(80, 250), min_size=9, max_size=9),
    # A key typed less than first_gap_ms (80) before a burst is taken for the read's own
    # first character (a scanner's slow first gap; see the detector's contract).
    pause_ms=st.floats(81, 2000),
    burst_gaps=st.lists(st.floats(0, 15), min_size=41, max_size=41),
    terminator=st.sampled_from(_TERMINATOR_KEYS),
)
def test_scanner_burst_after_typing_is_one_scan_and_typing_is_untouched(
    typing: str,
    code: str,
    typing_gaps: list[float],
    pause_ms: float,
    burst_gaps: list[float],
    terminator: tuple[str, str],
) -> None:
    keys, now = [], 0.0
    for char, gap in zip(typing, typing_gaps, strict=False):
        now += gap / 1000.0
        keys.append(KeyInput(char, char, now))
    now += pause_ms / 1000.0
    burst = [*((c, c) for c in code), terminator]
    for (name, char), gap in zip(burst, [0.0, *burst_gaps], strict=False):
        now += gap / 1000.0
        keys.append(KeyInput(name, char, now))
    decisions = _drive(WedgeDetector(), keys)
    scans = [d for d in decisions if isinstance(d, Scan)]
    assert [(s.text, s.terminator, s.complete) for s in scans] == [(code, terminator[0], True)]
    released = "".join(
        k.character or "" for d in decisions if isinstance(d, Release) for k in d.keys
    )
    assert released == typing


@settings(max_examples=300, deadline=None)
@given(
    raw=st.one_of(
        st.text(max_size=80),
        st.from_regex(r"\A[%;]?B?[0-9]{4,19}[=^?:]?[0-9A-Z]{0,8}\??\Z"),
    )
)
def test_classify_never_raises_and_never_echoes_a_number(raw: str) -> None:
    result = classify(raw)
    if result.kind == "unknown":
        assert result.value == ""
        assert result.reason
        # Badge and card numbers are digit runs; a reason may show two of them at most.
        assert re.search(r"\d{5,}", result.reason) is None
