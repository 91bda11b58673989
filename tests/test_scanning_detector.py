"""WedgeDetector on synthetic timing traces: scanners, people, and the cases in between."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from kiosk.scanning import Decision, DetectorSettings, KeyInput, Release, Scan, WedgeDetector

# Key names as Textual reports them for the characters used in these traces.
_KEY_NAMES = {
    "\r": "enter",
    "\t": "tab",
    "\x1d": "ctrl+right_square_bracket",
    "\x02": "ctrl+b",
    "\x03": "ctrl+c",
    " ": "space",
    "-": "minus",
    "#": "number_sign",
}


def key(char: str, time: float) -> KeyInput:
    """The KeyInput Textual would produce for ``char`` typed at ``time``."""
    return KeyInput(_KEY_NAMES.get(char, char), char, time)


def typed(text: str, start: float, gap_ms: float | Sequence[float]) -> list[KeyInput]:
    """Keys for ``text`` from ``start`` (s), ``gap_ms`` apart (one value or one per gap)."""
    gaps = [gap_ms] * max(len(text) - 1, 0) if isinstance(gap_ms, int | float) else list(gap_ms)
    assert len(gaps) == max(len(text) - 1, 0)
    keys, now = [], start
    for index, char in enumerate(text):
        if index:
            now += gaps[index - 1] / 1000.0
        keys.append(key(char, now))
    return keys


def run(detector: WedgeDetector, keys: Sequence[KeyInput], settle: bool = True) -> list[Decision]:
    """Feed every key; then let the timers expire, as the app's timer would."""
    decisions: list[Decision] = []
    for k in keys:
        decisions.extend(detector.feed(k))
    if settle and keys:
        decisions.extend(detector.poll(keys[-1].time + 10.0))
    return decisions


def scans(decisions: Sequence[Decision]) -> list[Scan]:
    return [d for d in decisions if isinstance(d, Scan)]


def released_text(decisions: Sequence[Decision]) -> str:
    return "".join(k.character or "" for d in decisions if isinstance(d, Release) for k in d.keys)


def all_keys(decisions: Sequence[Decision]) -> list[KeyInput]:
    return [k for d in decisions for k in d.keys]


def after(keys: Sequence[KeyInput], gap_ms: float) -> float:
    """Start time ``gap_ms`` after the last of ``keys``."""
    return keys[-1].time + gap_ms / 1000.0


# --------------------------------------------------------------------- scanners


@pytest.mark.parametrize("gap_ms", [0, 1, 4, 8, 15])
def test_wired_scanner_burst_with_enter_is_one_scan(gap_ms: float) -> None:
    keys = typed("TRV-10442\r", 100.0, gap_ms)
    decisions = run(WedgeDetector(), keys)
    assert decisions == [Scan("TRV-10442", tuple(keys), "enter", True)]


def test_whole_code_in_one_read_with_identical_timestamps_is_a_scan() -> None:
    keys = [key(c, 5.0) for c in "]C10109506000134352\x1d10ABC\r"]
    [scan] = scans(run(WedgeDetector(), keys))
    assert scan.text == "]C10109506000134352\x1d10ABC"
    assert scan.complete and scan.terminator == "enter"


def test_group_separator_inside_a_burst_is_kept_as_data() -> None:
    [scan] = scans(run(WedgeDetector(), typed("0112\x1d10A\r", 0.0, 3)))
    assert scan.text == "0112\x1d10A"


def test_tab_terminator_ends_a_scan_and_is_reported() -> None:
    keys = typed("LOT-A77\t", 0.0, 5)
    [scan] = scans(run(WedgeDetector(), keys))
    assert (scan.text, scan.terminator) == ("LOT-A77", "tab")
    assert scan.keys[-1].key == "tab"


def test_tab_is_data_when_only_enter_terminates() -> None:
    detector = WedgeDetector(DetectorSettings(terminators=("enter",)))
    [scan] = scans(run(detector, typed("A1\tB2\r", 0.0, 5)))
    assert scan.text == "A1\tB2"
    assert scan.terminator == "enter"


def test_too_short_burst_is_released_with_its_enter() -> None:
    keys = typed("12\r", 0.0, 5)
    decisions = run(WedgeDetector(), keys)
    assert scans(decisions) == []
    assert all_keys(decisions) == keys


def test_burst_exactly_min_len_is_a_scan_and_one_shorter_is_not() -> None:
    settings = DetectorSettings(min_len=5)
    assert scans(run(WedgeDetector(settings), typed("12345\r", 0.0, 5)))
    assert not scans(run(WedgeDetector(settings), typed("1234\r", 0.0, 5)))


def test_two_scans_back_to_back_are_two_scans() -> None:
    first = typed("TL-001\r", 0.0, 5)
    second = typed("TL-002\r", after(first, 120), 5)
    decisions = run(WedgeDetector(), first + second)
    assert [s.text for s in scans(decisions)] == ["TL-001", "TL-002"]
    assert released_text(decisions) == ""


def test_modifier_keys_inside_a_burst_do_not_break_it() -> None:
    keys = typed("SN-", 0.0, 4)
    shift = KeyInput("left_shift", None, after(keys, 2))
    rest = typed("AB12\r", after(keys, 4), 4)
    [scan] = scans(run(WedgeDetector(), [*keys, shift, *rest]))
    assert scan.text == "SN-AB12"
    assert shift in scan.keys


# ------------------------------------------------------------------------ people


def test_human_typing_80_to_250_ms_is_released_in_order_and_never_a_scan() -> None:
    rng = random.Random(7)
    text = "quantity 1250\r"
    keys = typed(text, 0.0, [rng.uniform(80, 250) for _ in text[1:]])
    decisions = run(WedgeDetector(), keys)
    assert scans(decisions) == []
    assert all_keys(decisions) == keys


@pytest.mark.parametrize("word", ["ok\r", "yes\r", "test\r", "pass\r", "1250\r", "stop"])
@pytest.mark.parametrize("seed", range(5))
def test_fast_typist_40_to_60_ms_on_short_words_is_not_a_scan(word: str, seed: int) -> None:
    rng = random.Random(seed)
    keys = typed(word, 0.0, [rng.uniform(40, 60) for _ in word[1:]])
    decisions = run(WedgeDetector(), keys)
    assert scans(decisions) == []
    assert released_text(decisions) == word


def test_lone_key_is_held_until_the_gap_expires_then_released() -> None:
    detector = WedgeDetector()
    a = key("a", 1.0)
    assert detector.feed(a) == []
    assert detector.holding
    assert detector.deadline() == pytest.approx(1.05)
    assert detector.poll(1.049) == []
    assert detector.poll(1.05) == [Release((a,))]
    assert not detector.holding and detector.deadline() is None


def test_late_next_key_flushes_the_held_one_first() -> None:
    detector = WedgeDetector()
    a, b = key("a", 1.0), key("b", 1.2)
    detector.feed(a)
    assert detector.feed(b) == [Release((a,))]


def test_enter_while_idle_passes_straight_through() -> None:
    enter = key("\r", 3.0)
    assert WedgeDetector().feed(enter) == [Release((enter,))]


def test_arrow_key_while_idle_passes_straight_through() -> None:
    up = KeyInput("up", None, 3.0)
    assert WedgeDetector().feed(up) == [Release((up,))]


def test_held_down_key_auto_repeat_is_typing() -> None:
    keys = typed("0000000\r", 0.0, 25)
    decisions = run(WedgeDetector(), keys)
    assert scans(decisions) == []
    assert all_keys(decisions) == keys


# -------------------------------------------------------------- people + scanners


def test_burst_starting_right_after_human_typing_leaves_the_typing_alone() -> None:
    human = typed("ab", 0.0, 45)
    burst = typed("TRV-1234\r", after(human, 40), 5)
    decisions = run(WedgeDetector(), human + burst)
    assert released_text(decisions) == "ab"
    assert [s.text for s in scans(decisions)] == ["TRV-1234"]
    assert all_keys(decisions) == human + burst


def test_burst_after_slow_typing_with_a_clear_pause() -> None:
    human = typed("12", 0.0, 150)
    burst = typed("TL-77\r", after(human, 100), 2)
    decisions = run(WedgeDetector(), human + burst)
    assert released_text(decisions) == "12"
    assert [s.text for s in scans(decisions)] == ["TL-77"]


def test_human_key_interrupting_a_latched_burst_never_leaks_scan_data() -> None:
    head = typed("TRV-12", 0.0, 5)
    up = KeyInput("up", None, after(head, 2))
    tail = typed("34\r", after(head, 5), 5)
    decisions = run(WedgeDetector(), head + [up] + tail)
    assert [(s.text, s.complete) for s in scans(decisions)] == [("TRV-12", False), ("34", False)]
    # Only the arrow key reaches the screen; none of the scanner's characters do.
    released = [k for d in decisions if isinstance(d, Release) for k in d.keys]
    assert released == [up]
    assert all_keys(decisions) == head + [up] + tail


def test_human_key_interrupting_before_the_latch_releases_everything() -> None:
    keys = typed("ab", 0.0, 5)
    f5 = KeyInput("f5", None, after(keys, 3))
    decisions = run(WedgeDetector(), [*keys, f5])
    assert decisions == [Release(tuple(keys)), Release((f5,))]


# -------------------------------------------------------------- stalls and limits


def test_latched_burst_that_stalls_then_finishes_is_still_one_scan() -> None:
    head = typed("LOT-AB", 0.0, 5)
    tail = typed("C9\r", after(head, 200), 5)  # a Bluetooth-like hiccup
    decisions = run(WedgeDetector(), head + tail)
    assert decisions == [Scan("LOT-ABC9", tuple(head + tail), "enter", True)]


def test_latched_burst_without_terminator_becomes_an_incomplete_scan() -> None:
    keys = typed("TRV-55", 0.0, 5)
    detector = WedgeDetector()
    run(detector, keys, settle=False)
    assert detector.deadline() == pytest.approx(keys[-1].time + 0.3)
    assert detector.poll(keys[-1].time + 0.1) == []  # within the stall grace
    assert detector.poll(keys[-1].time + 0.3) == [Scan("TRV-55", tuple(keys), None, False)]


def test_unterminated_scan_accepted_when_configured() -> None:
    settings = DetectorSettings(allow_no_terminator=True, min_len_no_terminator=6)
    keys = typed("TRV-5501", 0.0, 5)
    [scan] = scans(run(WedgeDetector(settings), keys))
    assert (scan.text, scan.complete, scan.terminator) == ("TRV-5501", True, None)


def test_runaway_input_is_capped() -> None:
    settings = DetectorSettings(max_scan_len=16)
    keys = typed("X" * 10 + "0123456789", 0.0, 1)
    decisions = run(WedgeDetector(settings), keys)
    assert scans(decisions)[0] == Scan("X" * 10 + "012345", tuple(keys[:16]), None, False)
    assert all_keys(decisions) == keys


def test_bluetooth_profile_accepts_slow_uneven_bursts_default_does_not() -> None:
    gaps = [20, 70, 10, 90, 40, 60, 30, 80]  # mean 50 ms, largest 90 ms
    keys = typed("SN-44-901", 0.0, gaps[:8]) + []
    keys.append(key("\r", after(keys, 30)))
    assert [s.text for s in scans(run(WedgeDetector(DetectorSettings.bluetooth()), keys))] == [
        "SN-44-901"
    ]
    assert scans(run(WedgeDetector(), keys)) == []


def test_bluetooth_profile_values_and_overrides() -> None:
    profile = DetectorSettings.bluetooth(min_len=6)
    assert (profile.max_gap_ms, profile.avg_max_ms, profile.min_len) == (120.0, 60.0, 6)


@pytest.mark.parametrize(
    "bad",
    [
        {"prefix": "\x1b"},
        {"suffix": "\x1b"},
        {"max_gap_ms": 0},
        {"min_len": 0},
    ],
)
def test_settings_refuse_values_that_would_break_input(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DetectorSettings(**bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- prefix / suffix


def test_prefix_makes_a_slow_read_a_scan_and_is_stripped() -> None:
    detector = WedgeDetector(DetectorSettings(prefix="\x02"))
    keys = typed("\x02TL-9\r", 0.0, 100)  # far too slow for the timing test
    assert run(detector, keys) == [Scan("TL-9", tuple(keys), "enter", True)]


def test_prefix_mode_releases_unprefixed_fast_bursts_at_once() -> None:
    detector = WedgeDetector(DetectorSettings(prefix="\x02"))
    keys = typed("TRV-1234\r", 0.0, 5)
    decisions = [d for k in keys for d in detector.feed(k)]
    assert scans(decisions) == []
    assert all_keys(decisions) == keys  # no hold at all: every key came straight back


def test_prefix_and_suffix_frame_the_data_and_swallow_a_following_enter() -> None:
    detector = WedgeDetector(DetectorSettings(prefix="\x02", suffix="\x03"))
    keys = typed("\x02A\rB\x03\r", 0.0, 8)
    assert run(detector, keys) == [Scan("A\rB", tuple(keys), "enter", True)]


def test_prefix_and_suffix_without_terminator() -> None:
    detector = WedgeDetector(DetectorSettings(prefix="\x02", suffix="\x03"))
    keys = typed("\x02LOT-7\x03", 0.0, 8)
    assert run(detector, keys) == [Scan("LOT-7", tuple(keys), None, True)]


def test_multi_character_prefix_that_does_not_complete_is_typing() -> None:
    detector = WedgeDetector(DetectorSettings(prefix="##"))
    keys = typed("#a", 0.0, 100)
    decisions = run(detector, keys)
    assert scans(decisions) == []
    assert all_keys(decisions) == keys


def test_prefixed_read_that_stalls_is_an_incomplete_scan() -> None:
    detector = WedgeDetector(DetectorSettings(prefix="\x02"))
    keys = typed("\x02TRV", 0.0, 5)
    assert run(detector, keys) == [Scan("TRV", tuple(keys), None, False)]


def test_suffix_alone_makes_a_slow_burst_a_scan() -> None:
    detector = WedgeDetector(DetectorSettings(suffix="\x03"))
    keys = typed("45678\x03", 0.0, 45)  # fast-typist speed, but the suffix decides
    assert run(detector, keys) == [Scan("45678", tuple(keys), None, True)]


def test_suffix_mode_keeps_typing_before_the_burst_apart() -> None:
    detector = WedgeDetector(DetectorSettings(suffix="\x03"))
    human = typed("xy", 0.0, 45)
    burst = typed("45678\x03\r", after(human, 40), 3)
    decisions = run(detector, human + burst)
    assert released_text(decisions) == "xy"
    assert scans(decisions) == [Scan("45678", tuple(burst), "enter", True)]


def test_scan_repr_does_not_spell_out_the_data() -> None:
    [scan] = scans(run(WedgeDetector(), typed("4567801\r", 0.0, 3)))
    assert "45678" not in repr(scan)
    assert "•••01" in repr(scan)
