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
