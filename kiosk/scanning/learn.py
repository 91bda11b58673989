"""Learn a scanner's framing and speed from a few test scans (the scanner test screen's F-key).

The installer scans three *different* codes. Whatever they share at the start or the end that is
not data (control characters or punctuation the site's codes never begin or end with) is the
scanner's programmed prefix or suffix; the key that ends them is the terminator; the gaps between
characters give the timing, with headroom.

Learning one device must not break the others on the same station: a badge reader sends no
prefix, often ends with another key, may be slower, and its badges are shorter than the codes
scanned here. So :meth:`LearnedScanner.combined` only ever *adds* to the station's settings: the
prefix stays optional (unprefixed readers are still judged by timing), terminators are added to
those already in force, gap limits only widen, and the minimum length never rises above the
shortest badge.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kiosk.scanning.detector import TERMINATOR_CHARACTERS, DetectorSettings, KeyInput

TERMINATOR_KEYS = tuple(TERMINATOR_CHARACTERS)
# Headroom over the slowest burst seen, so a scanner on a busy USB hub still counts as a scanner.
GAP_HEADROOM = 2.0
MIN_GAP_MS, MAX_GAP_MS = 20.0, 200.0
SHORTEST_BADGE = 4
"""The shortest badge the station expects: the card-number rule accepts 4 to 10 digits."""


@dataclass(frozen=True)
class LearnedScanner:
    prefix: str
    suffix: str
    terminator: str | None
    max_gap_ms: float
    avg_max_ms: float
    shortest: int

    @property
    def min_len(self) -> int:
        """Shortest code to accept: never more than the codes scanned, nor than a badge."""
        return max(1, min(self.shortest, SHORTEST_BADGE))

    def describe(self) -> str:
        framing = (
            f"prefix {self.prefix!r}, suffix {self.suffix!r}"
            if self.prefix or self.suffix
            else "no prefix or suffix"
        )
        optional = " (optional: readers without it still work)" if self.prefix else ""
        end = self.terminator or "no terminator"
        return (
            f"{framing}{optional}; ends with {end}; max gap {self.max_gap_ms:.0f} ms, "
            f"mean gap limit {self.avg_max_ms:.0f} ms; shortest code {self.shortest} characters"
        )

    def combined(self, current: DetectorSettings) -> DetectorSettings:
        """The station's settings with this scanner added (see the module docstring).

        Raises ValueError when the result is not usable (the detector's own checks).
        """
        terminators = current.terminators
        if self.terminator and self.terminator not in terminators:
            terminators = (*terminators, self.terminator)
        max_gap = min(current.stall_grace_ms, max(current.max_gap_ms, self.max_gap_ms))
        return replace(
            current,
            prefix=self.prefix,
            prefix_required=False,
            suffix=self.suffix,
            terminators=terminators,
            max_gap_ms=max_gap,
            avg_max_ms=min(max_gap, max(current.avg_max_ms, self.avg_max_ms)),
            min_len=min(current.min_len, self.min_len),
            first_gap_ms=None,
        )


class LearnError(ValueError):
    """The test scans do not tell a consistent story; the message says what to do."""


def _framing_char(ch: str) -> bool:
    # "]" opens an AIM symbology identifier (]C1, ]d2 ...): that is data for the parser, not
    # framing; so are letters, digits and spaces, and the detector refuses them as framing.
    return not ch.isalnum() and ch not in "] \x1b\x00\x7f\r\n\t"


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


def _terminator_of(bursts: list[list[KeyInput]]) -> str | None:
    terminators = {b[-1].key if b and b[-1].key in TERMINATOR_KEYS else None for b in bursts}
    if len(terminators) != 1:
        raise LearnError(
            "The scans ended differently (Enter, Tab, nothing): check the scanner's suffix setting."
        )
    return terminators.pop()


def learn(bursts: list[list[KeyInput]]) -> LearnedScanner:
    if len(bursts) < 3:
        raise LearnError(f"Scan three different codes ({len(bursts)} so far).")
    terminator = _terminator_of(bursts)
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
    max_gap = min(MAX_GAP_MS, max(MIN_GAP_MS, slowest * GAP_HEADROOM))
    return LearnedScanner(
        prefix=prefix,
        suffix=suffix,
        terminator=terminator,
        max_gap_ms=max_gap,
        avg_max_ms=min(max_gap, max(MIN_GAP_MS / 2, max(means) * GAP_HEADROOM)),
        shortest=min(len(t) - len(prefix) - len(suffix) for t in texts),
    )
