"""Glue between Textual key events and the pure wedge detector in `kiosk.scanning`.

Every key goes through here before any widget or binding sees it (App.on_event). Keys that may
belong to a scanner burst are held; the detector then hands them back either as typing, which is
replayed exactly as the terminal delivered it, or as one scan, which never reaches the focused
Input. Nothing is dropped: every held key comes back once, in order.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from textual import events

from kiosk.scanning import Decision, DetectorSettings, KeyInput, Release, Scan, WedgeDetector
from kiosk.wire import ScannerConfig


def scanner_settings(config: ScannerConfig) -> DetectorSettings:
    """The station's server-side scanner config as detector settings."""
    return DetectorSettings(
        max_gap_ms=config.max_gap_ms,
        avg_max_ms=config.avg_max_ms,
        min_len=config.min_len,
        prefix=config.prefix,
        suffix=config.suffix,
        terminators=config.terminators,
    )


def now() -> float:
    # Textual stamps key events with time.monotonic() on POSIX (textual._time.get_time).
    return time.monotonic()


@dataclass
class Outcome:
    """What to do after a key or a timer tick: replay these keys, act on these scans."""

    replay: list[events.Key] = field(default_factory=list)
    scans: list[Scan] = field(default_factory=list)


class WedgeInput:
    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.detector = WedgeDetector(settings)
        self._held: deque[events.Key] = deque()

    def feed(self, event: events.Key) -> Outcome:
        self._held.append(event)
        return self._resolve(self.detector.feed(KeyInput(event.key, event.character, event.time)))

    def poll(self) -> Outcome:
        return self._resolve(self.detector.poll(now()))

    def seconds_to_deadline(self) -> float | None:
        deadline = self.detector.deadline()
        return None if deadline is None else max(0.0, deadline - now())

    def _resolve(self, decisions: list[Decision]) -> Outcome:
        outcome = Outcome()
        for decision in decisions:
            # The detector returns every key it was fed, once and in order, so the held events
            # line up with the decision's keys one for one.
            taken = [self._held.popleft() for _ in decision.keys]
            if isinstance(decision, Release):
                outcome.replay.extend(taken)
            else:
                outcome.scans.append(decision)
        return outcome
