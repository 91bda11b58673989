"""When the station collects its garbage: while nobody is waiting for it.

CPython's cycle collector runs when enough objects have been made since the last run, and on a
station that is while a scan opens a traveler: the old screen's widgets are cycles, and a full
collection of them took 80-100 ms inside the scan's paint (the tail of `scripts/bench_interaction.py
--only scan`). So:

- what the station loaded at start (its code, Textual's, the wire models) is frozen once loaded,
  and no collection scans it again;
- the collector's own full collection is made ten times rarer, a backstop only;
- and a full collection runs in the first quiet half second after people stop using the station,
  where it costs nobody anything. A key pressed in that moment waits for it: 20-60 ms, once.
"""

from __future__ import annotations

import gc

QUIET_SECONDS = 0.5
"""No key, scan or paste for this long: nobody is waiting on the station."""

RARER = 10
"""How much rarer CPython's automatic full collection becomes (its third threshold, times this)."""


class IdleCollector:
    """Collects once after each spell of use (`used`), at the first quiet moment (`quiet`)."""

    def __init__(self) -> None:
        self._used = False

    def start(self) -> None:
        """Everything made so far stays for the station's life: leave it out of collections."""
        gc.freeze()
        young, middle, full = gc.get_threshold()
        gc.set_threshold(young, middle, full * RARER)

    def used(self) -> None:
        self._used = True

    def quiet(self, seconds: float) -> bool:
        """`seconds` since the last key: collect if the station was used since the last time.
        True if it collected."""
        if not self._used or seconds < QUIET_SECONDS:
            return False
        self._used = False
        gc.collect()
        return True
