"""Learn a scanner's framing and speed from a few test scans (the scanner test screen's F-key).

The installer scans three *different* codes. Whatever they share at the start or the end that is
not data (control characters or punctuation the site's codes never begin or end with) is the
scanner's programmed prefix or suffix; the key that ends them is the terminator; the gaps between
characters give the timing, with headroom.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.scanning.detector import KeyInput

TERMINATOR_KEYS = ("enter", "tab")
# Headroom over the slowest burst seen, so a scanner on a busy USB hub still counts as a scanner.
GAP_HEADROOM = 2.0
MIN_GAP_MS, MAX_GAP_MS = 20.0, 200.0


@dataclass(frozen=True)
class LearnedScanner:
    prefix: str
    suffix: str
    terminator: str | None
    max_gap_ms: float
    avg_max_ms: float
    shortest: int

    def describe(self) -> str:
        framing = (
            f"prefix {self.prefix!r}, suffix {self.suffix!r}"
            if self.prefix or self.suffix
            else "no prefix or suffix"
        )
        end = self.terminator or "no terminator"
        return (
            f"{framing}; ends with {end}; max gap {self.max_gap_ms:.0f} ms, "
            f"mean gap limit {self.avg_max_ms:.0f} ms; shortest code {self.shortest} characters"
        )


class LearnError(ValueError):
    """The test scans do not tell a consistent story; the message says what to do."""


def _framing_char(ch: str) -> bool:
    # "]" opens an AIM symbology identifier (]C1, ]d2 ...): that is data for the parser, not framing.
    return not ch.isalnum() and ch != "]"


def _common_prefix(texts: list[str]) -> str:
    first = texts[0]
    n = 0
    while (
        n < len(first)
        and all(len(t) > n and t[n] == first[n] for t in texts)
        and _framing_char(first[n])
    ):
        n += 1
    return first[:n]


def _common_suffix(texts: list[str]) -> str:
    return _common_prefix([t[::-1] for t in texts])[::-1]


def learn(bursts: list[list[KeyInput]]) -> LearnedScanner:
    if len(bursts) < 3:
        raise LearnError(f"Scan three different codes ({len(bursts)} so far).")
    terminators = {b[-1].key if b and b[-1].key in TERMINATOR_KEYS else None for b in bursts}
    if len(terminators) != 1:
        raise LearnError(
            "The scans ended differently (Enter, Tab, nothing): check the scanner's suffix setting."
        )
    terminator = terminators.pop()
    texts = [
        "".join(k.character or "" for k in (b[:-1] if terminator else b) if k.character)
        for b in bursts
    ]
    if len(set(texts)) < len(texts):
        raise LearnError(
            "Scan three *different* codes, so their framing can be told from their data."
        )
    prefix, suffix = _common_prefix(texts), _common_suffix(texts)
    gaps = [(b[n].time - b[n - 1].time) * 1000 for b in bursts for n in range(1, len(b))]
    means = [((b[-1].time - b[0].time) * 1000) / max(1, len(b) - 1) for b in bursts]
    slowest = max(gaps, default=0.0)
    return LearnedScanner(
        prefix=prefix,
        suffix=suffix,
        terminator=terminator,
        max_gap_ms=min(MAX_GAP_MS, max(MIN_GAP_MS, slowest * GAP_HEADROOM)),
        avg_max_ms=min(MAX_GAP_MS, max(MIN_GAP_MS / 2, max(means) * GAP_HEADROOM)),
        shortest=min(len(t) - len(prefix) - len(suffix) for t in texts),
    )
