"""Learning a scanner's prefix, suffix, terminator and speed from three test scans."""

from __future__ import annotations

import pytest

from kiosk.scanning import DetectorSettings, KeyInput, Scan, WedgeDetector
from kiosk.scanning.learn import LearnError, learn


def burst(
    text: str, gap_ms: float, start: float = 0.0, end: str | None = "enter"
) -> list[KeyInput]:
    keys = [KeyInput(ch, ch, start + n * gap_ms / 1000) for n, ch in enumerate(text)]
    if end:
        keys.append(
            KeyInput(end, "\r" if end == "enter" else "\t", start + len(text) * gap_ms / 1000)
        )
    return keys


def test_learns_prefix_suffix_terminator_and_speed() -> None:
    scans = [
        burst("\x02TRV-1001#", 4),
        burst("\x02TL-0001#", 6, 2.0),
        burst("\x02LOT-A100#", 5, 4.0),
    ]
    learned = learn(scans)
    assert (learned.prefix, learned.suffix, learned.terminator) == ("\x02", "#", "enter")
    assert learned.max_gap_ms == pytest.approx(20.0)  # 6 ms slowest, doubled, floored at 20
    assert learned.shortest == 7


def test_learned_settings_detect_the_same_scanner() -> None:
    scans = [burst("]C1TRV-1001", 12), burst("]C1TL-0002", 15, 3), burst("]C1LOT-A100", 9, 6)]
    learned = learn(scans)
    assert (learned.prefix, learned.suffix) == ("", "")  # an AIM identifier is data, not framing
    assert learned.max_gap_ms == pytest.approx(30.0)  # 15 ms slowest, doubled
    settings = DetectorSettings(max_gap_ms=learned.max_gap_ms, avg_max_ms=learned.avg_max_ms)
    detector = WedgeDetector(settings)
    decisions = [d for key in burst("]C1TRV-2000", 14, 10) for d in detector.feed(key)]
    assert [d.text for d in decisions if isinstance(d, Scan)] == ["]C1TRV-2000"]


def test_the_same_code_three_times_is_refused_with_advice() -> None:
    with pytest.raises(LearnError, match="different"):
        learn([burst("TRV-1001", 4, n) for n in range(3)])


def test_mixed_terminators_are_reported() -> None:
    with pytest.raises(LearnError, match="ended differently"):
        learn([burst("TRV-1001", 4), burst("TRV-1002", 4, 1, end="tab"), burst("TRV-1003", 4, 2)])


def test_fewer_than_three_scans_says_how_many_more() -> None:
    with pytest.raises(LearnError, match="2 so far"):
        learn([burst("TRV-1001", 4), burst("TRV-1002", 4, 1)])


def test_learning_a_prefixed_scanner_keeps_the_badge_reader_working() -> None:
    learned = learn(
        [burst("\x02TRV-1001#", 4), burst("\x02TL-0001#", 5, 2.0), burst("\x02LOT-A100#", 4, 4.0)]
    )
    settings = learned.combined(DetectorSettings())
    assert settings.prefix == "\x02" and not settings.prefix_required
    assert settings.min_len <= 4 < 5  # never above the 5-digit badges, nor any 4-digit one
    detector = WedgeDetector(settings)
    badge = burst("10001", 6, 10.0)  # a badge reader: no prefix, no suffix
    code = burst("\x02TRV-2000#", 4, 12.0)
    decisions = [d for k in badge + code for d in detector.feed(k)]
    assert [d.text for d in decisions if isinstance(d, Scan)] == ["10001", "TRV-2000"]


def test_learned_minimum_length_never_rises_above_the_shortest_badge() -> None:
    learned = learn([burst("TRV-100001", 4), burst("TRV-100002", 4, 1), burst("TRV-100003", 4, 2)])
    assert learned.shortest == 10 and learned.min_len == 4
    assert learned.combined(DetectorSettings(min_len=6)).min_len == 4
    assert learned.combined(DetectorSettings(min_len=3)).min_len == 3  # never raised either


def test_learning_adds_a_terminator_and_only_widens_the_timing() -> None:
    learned = learn(
        [
            burst("TRV-1001", 2, end="tab"),
            burst("TRV-1002", 2, 1, "tab"),
            burst("TRV-1003", 2, 2, "tab"),
        ]
    )
    current = DetectorSettings(terminators=("enter",))
    settings = learned.combined(current)
    assert settings.terminators == ("enter", "tab")  # the badge reader's Enter still ends reads
    assert settings.max_gap_ms == current.max_gap_ms  # a fast scanner does not narrow it
    slow = learn([burst("TRV-1001", 70), burst("TRV-1002", 70, 3), burst("TRV-1003", 70, 6)])
    widened = slow.combined(current)
    assert widened.max_gap_ms == pytest.approx(140.0) and widened.avg_max_ms == pytest.approx(140.0)


def test_learned_framing_is_never_a_character_the_detector_refuses() -> None:
    learned = learn([burst(" A1", 4), burst(" B2", 4, 1), burst(" C3", 4, 2)])
    assert learned.prefix == ""  # a space is data, not a prefix
