"""KeyPlanner: typing is echoed at once, a scan's head is taken back, no key is lost or moved.

The planner's actions are applied to a model of one text field (what an Input does with a
printable key) and of the other widgets, so the properties read as what a person sees: the
field ends with exactly what was typed into it, and no scan character is in it when the scan
is routed, for any interleaving of typing, bursts, control keys and timer ticks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.scanning import DetectorSettings, KeyInput, KeyPlanner, Scan
from kiosk.scanning.planner import Action, Confirm, Deliver, Replay, Route, TakeBack

_NAMES = {"\r": "enter", "\t": "tab", " ": "space", "-": "minus", "\x03": "ctrl+c"}


def key(char: str, time: float) -> KeyInput:
    return KeyInput(_NAMES.get(char, char), char, time)


def keys_at(text: str, start: float, gaps_ms: Sequence[float] | float) -> list[KeyInput]:
    gaps = [gaps_ms] * (len(text) - 1) if isinstance(gaps_ms, int | float) else list(gaps_ms)
    out, now = [], start
    for n, char in enumerate(text):
        now += gaps[n - 1] / 1000 if n else 0.0
        out.append(key(char, now))
    return out


@dataclass
class Screen:
    """One text field (takes printable keys back) and everything else (cannot)."""

    text: str = ""
    typed: list[int] = field(default_factory=list)  # seqs in the order they reached a widget
    scans: list[tuple[Scan, tuple[int, ...]]] = field(default_factory=list)
    keys: dict[int, KeyInput] = field(default_factory=dict)
    to_field: dict[int, bool] = field(default_factory=dict)
    before: dict[int, str] = field(default_factory=dict)
    in_field: set[int] = field(default_factory=set)  # delivered, not taken back
    confirmed: set[int] = field(default_factory=set)
    routed: set[int] = field(default_factory=set)

    def apply(self, actions: Sequence[Action]) -> None:
        for action in actions:
            if isinstance(action, Deliver):
                self._deliver(action.seq)
            elif isinstance(action, Replay):
                self._arrive(action.seq)
            elif isinstance(action, TakeBack):
                self._take_back(action.seqs)
            elif isinstance(action, Confirm):
                assert set(action.seqs) <= self.in_field
                self.confirmed.update(action.seqs)
            else:
                self._route(action)

    def _deliver(self, seq: int) -> None:
        assert self.to_field[seq] and (self.keys[seq].character or "").isprintable()
        self.before[seq] = self.text
        self.in_field.add(seq)
        self._arrive(seq)

    def _arrive(self, seq: int) -> None:
        assert not self.typed or seq > self.typed[-1], "a key overtook an earlier one"
        self.typed.append(seq)
        char = self.keys[seq].character or ""
        if self.to_field[seq] and char.isprintable():
            self.text += char

    def _take_back(self, seqs: tuple[int, ...]) -> None:
        assert seqs and list(seqs) == sorted(seqs) and set(seqs) <= self.in_field
        self.text = self.before[seqs[0]]
        self.in_field -= set(seqs)
        for seq in seqs:
            self.typed.remove(seq)

    def _route(self, action: Route) -> None:
        assert not set(action.seqs) & self.in_field, "a scan character is still in the field"
        assert tuple(self.keys[s] for s in action.seqs) == action.scan.keys
        assert list(action.seqs) == sorted(action.seqs)
        self.routed.update(action.seqs)
        self.scans.append((action.scan, action.seqs))

    def expected_text(self) -> str:
        """What the field must show: the printable keys typed into it, in order."""
        return "".join(
            self.keys[s].character or ""
            for s in self.typed
            if self.to_field[s] and (self.keys[s].character or "").isprintable()
        )


def feed(planner: KeyPlanner, screen: Screen, k: KeyInput, to_field: bool = True) -> list[Action]:
    printable = bool(k.character) and (k.character or "").isprintable()
    seq, actions = planner.feed(k, can_take_back=to_field and printable)
    screen.keys[seq], screen.to_field[seq] = k, to_field
    screen.apply(actions)
    return actions


def finish(planner: KeyPlanner, screen: Screen, last: float) -> None:
    screen.apply(planner.poll(last + 60.0))
    assert planner.pending == 0
    fates = screen.routed | set(screen.typed)
    assert fates == set(screen.keys) and not screen.routed & set(screen.typed)
    assert screen.text == screen.expected_text()


# ------------------------------------------------------------------------- examples


def test_a_persons_key_is_echoed_in_the_same_call() -> None:
    planner, screen = KeyPlanner(), Screen()
    for k in keys_at("12.5", 0.0, 150):
        actions = feed(planner, screen, k)
        assert any(isinstance(a, Deliver) for a in actions)  # no wait for the detector
    assert screen.text == "12.5"
    finish(planner, screen, 1.0)


def test_a_scans_head_is_taken_back_when_the_burst_latches() -> None:
    planner, screen = KeyPlanner(), Screen(text="")
    burst = keys_at("TRV-1001\r", 5.0, 4)
    shown: list[str] = []
    for k in burst:
        feed(planner, screen, k)
        shown.append(screen.text)
    # The first three characters showed for a few ms; from the fourth on, nothing.
    assert shown[:3] == ["T", "TR", "TRV"] and set(shown[3:]) == {""}
    assert [s.text for s, _ in screen.scans] == ["TRV-1001"]
    finish(planner, screen, burst[-1].time)


def test_typing_before_a_scan_stays_and_the_scan_does_not_leak() -> None:
    planner, screen = KeyPlanner(), Screen()
    human = keys_at("ab", 0.0, 45)
    burst = keys_at("TL-0001\r", human[-1].time + 0.04, 3)
    for k in human + burst:
        feed(planner, screen, k)
    assert screen.text == "ab"
    assert [s.text for s, _ in screen.scans] == ["TL-0001"]
    finish(planner, screen, burst[-1].time)


def test_a_slow_first_gap_is_taken_back_with_the_rest() -> None:
    planner, screen = KeyPlanner(), Screen()
    burst = keys_at("TRV-1001\r", 0.0, [70, *[4] * 7])
    for k in burst:
        feed(planner, screen, k)
    assert screen.text == "" and [s.text for s, _ in screen.scans] == ["TRV-1001"]
    finish(planner, screen, burst[-1].time)


def test_keys_for_a_button_wait_and_later_keys_wait_behind_them() -> None:
    planner, screen = KeyPlanner(), Screen()
    space = key(" ", 0.0)
    digit = key("7", 0.01)
    assert feed(planner, screen, space, to_field=False) == []  # held: a binding cannot be undone
    assert feed(planner, screen, digit) == []  # held behind it, to keep the order
    finish(planner, screen, digit.time)
    assert screen.typed == [0, 1]


def test_enter_after_fast_typing_is_decided_at_once() -> None:
    planner, screen = KeyPlanner(), Screen()
    for k in keys_at("ok", 0.0, 40):
        feed(planner, screen, k)
    actions = feed(planner, screen, key("\r", 0.08))
    assert actions[-1] == Replay(2)  # Enter goes out in the same call, after "ok"
    assert screen.text == "ok"


@pytest.mark.parametrize("setting", [DetectorSettings(), DetectorSettings.bluetooth()])
def test_a_stalled_read_is_taken_back_and_reported(setting: DetectorSettings) -> None:
    planner, screen = KeyPlanner(setting), Screen()
    read = keys_at("LOT-A1", 0.0, 5)
    for k in read:
        feed(planner, screen, k)
    finish(planner, screen, read[-1].time)
    assert screen.text == ""
    assert [(s.text, s.problem) for s, _ in screen.scans] == [("LOT-A1", "stalled")]


# ------------------------------------------------------------------------ properties

_PRINTABLE = list("aB17-. ")
_CONTROL = ["\x1d", "\x04", "\x03", "\x11", "\x1b", "\x7f", "\n"]
_TERMINATORS = ["\r", "\t"]
_NO_TEXT = [("up", None), ("f5", None), ("left_shift", None), ("backspace", None)]

_SETTINGS = [
    DetectorSettings(),
    DetectorSettings.bluetooth(),
    DetectorSettings(prefix="\x02", suffix="#"),
    DetectorSettings(prefix="\x02", prefix_required=True),
    DetectorSettings(max_scan_len=6),
    DetectorSettings(min_len=2, latch_len=2, terminators=("enter",)),
]

_gap = st.one_of(
    st.just(0.0), st.floats(0, 15), st.floats(15, 90), st.floats(90, 400), st.floats(-20, 0)
)
_char_key = st.sampled_from(_PRINTABLE + _CONTROL + _TERMINATORS + ["\x02", "#"]).map(
    lambda c: (_NAMES.get(c, c), c)
)
_key = st.one_of(_char_key, st.sampled_from(_NO_TEXT))


@st.composite
def _burst(draw: st.DrawFn) -> list[tuple[tuple[str, str | None], float]]:
    """A reader's burst: fast keys (maybe a slow first gap), usually with a terminator."""
    text = draw(st.text(alphabet="ABC0123456789-\x1d", min_size=1, max_size=20))
    gaps = [draw(st.floats(0, 15)) for _ in text]
    if draw(st.booleans()):
        gaps[0] = draw(st.floats(30, 200))  # gap before the second character
    out: list[tuple[tuple[str, str | None], float]] = [
        ((c if c != "\x1d" else "ctrl+right_square_bracket", c), g)
        for c, g in zip(text, [draw(st.floats(0, 2000)), *gaps[:-1]], strict=True)
    ]
    if draw(st.booleans()):
        out.append((("enter", "\r"), gaps[-1]))
    return out


_chunk = st.one_of(
    st.lists(st.tuples(_key, _gap), min_size=1, max_size=6),
    _burst(),
)


@settings(max_examples=500, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(_chunk, st.booleans(), st.lists(st.floats(0, 700), max_size=2)), max_size=10
    ),
    detector_settings=st.sampled_from(_SETTINGS),
)
def test_no_key_lost_duplicated_or_reordered_and_no_scan_character_left_in_a_field(
    chunks: list[tuple[list[tuple[tuple[str, str | None], float]], bool, list[float]]],
    detector_settings: DetectorSettings,
) -> None:
    planner, screen = KeyPlanner(detector_settings), Screen()
    now = 100.0
    for keys, to_field, polls in chunks:
        for (name, char), gap in keys:
            now += gap / 1000
            feed(planner, screen, KeyInput(name, char, now), to_field)
        for offset in polls:
            screen.apply(planner.poll(now + offset / 1000))
    finish(planner, screen, now)
    # Each scan's keys are never in the field, and every routed key came from one scan only.
    routed = [seq for _, seqs in screen.scans for seq in seqs]
    assert len(routed) == len(set(routed))


@settings(max_examples=300, deadline=None)
@given(
    typing=st.text(alphabet="abc019.-", min_size=1, max_size=8),
    gaps=st.lists(st.floats(80, 250), min_size=8, max_size=8),
    code=st.text(alphabet="ABCXYZ0123456789-", min_size=4, max_size=30),
    first_gap=st.one_of(st.floats(0, 15), st.floats(30, 79)),
    burst_gaps=st.lists(st.floats(0, 15), min_size=30, max_size=30),
    pause_ms=st.floats(81, 2000),
    more=st.text(alphabet="xyz", max_size=4),
)
def test_typing_around_a_scan_is_echoed_at_once_and_the_scan_never_stays(
    typing: str,
    gaps: list[float],
    code: str,
    first_gap: float,
    burst_gaps: list[float],
    pause_ms: float,
    more: str,
) -> None:
    planner, screen = KeyPlanner(), Screen()
    now = 0.0
    for char, gap in zip(typing, gaps, strict=False):
        now += gap / 1000
        assert any(isinstance(a, Deliver) for a in feed(planner, screen, key(char, now)))
    now += pause_ms / 1000
    burst_timing = [first_gap, *burst_gaps]
    for n, char in enumerate(code + "\r"):
        feed(planner, screen, key(char, now))
        now += burst_timing[n] / 1000
    assert screen.text == typing  # the whole code came and went; typing is untouched
    for char in more:
        now += 0.3
        assert any(isinstance(a, Deliver) for a in feed(planner, screen, key(char, now)))
    finish(planner, screen, now)
    assert [s.text for s, _ in screen.scans] == [code]
    assert screen.text == typing + more
