"""When the station, and the server, collect their garbage: while nobody is waiting for it.

CPython's cycle collector runs when enough objects have been made since the last run, and on a
station that is while a scan opens a traveler: the old screen's widgets are cycles, and a full
collection of them took 80-100 ms inside the scan's paint (the tail of `scripts/bench_interaction.py
--only scan`). So:

- what the station loaded at start (its code, Textual's, the wire models) is frozen once loaded,
  and no collection scans it again;
- the collector's own full collection is made ten times rarer, a backstop only;
- and a full collection runs in the first quiet half second after people stop using the station,
  where it costs nobody anything. A key pressed in that moment waits for it: 20-60 ms, once.

A server process is never quiet, but the same first two hold for it (`keep_what_is_loaded`): a
full collection of everything a worker had loaded took 100-130 ms under the plant benchmark's
load, fifteen times in a minute, and held up every request in flight (the p99 of
`scripts/bench_plant.py`). Its young collections are made rarer too (`SERVER_YOUNG`): a
request's objects die young, but collected 700 allocations at a time, those of the requests in
flight are promoted, and pile up until a full collection finds them dead.
"""

from __future__ import annotations

import gc

QUIET_SECONDS = 0.5
"""No key, scan or paste for this long: nobody is waiting on the station."""

RARER = 10
"""How much rarer CPython's automatic full collection becomes (its third threshold, times this)."""


SERVER_YOUNG = 10_000
"""A server process's first threshold: allocations between young collections (CPython's: 700)."""


def keep_what_is_loaded(young: int | None = None) -> None:
    """Everything made so far stays for the process's life: leave it out of collections, and
    make the full collection `RARER` times rarer; `young`: the first threshold as well."""
    gc.freeze()
    first, middle, full = gc.get_threshold()
    gc.set_threshold(young or first, middle, full * RARER)


class IdleCollector:
    """Collects once after each spell of use (`used`), at the first quiet moment (`quiet`)."""

    def __init__(self) -> None:
        self._used = False

    def start(self) -> None:
        """Everything made so far stays for the station's life: leave it out of collections."""
        keep_what_is_loaded()

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
