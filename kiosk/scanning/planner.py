"""Echo a person's keys at once; take back the ones that turn out to be a scan's head.

The detector (:mod:`.detector`) needs a few keys, or a few tens of milliseconds, to
tell a scanner from a person. Holding every key for that long made typing lag
(55–75 ms per key, measured). The planner removes the wait without letting a scan
leak into a field (SCANNER-NOTES §2, "deliver, then retract"):

* A key that the caller says it **can take back** (a printable character going to
  a text field, whose value the caller can restore) is **delivered at once**,
  while the detector is still deciding.
* Any other key (Enter, Tab, F-keys, a key for a button or a binding) is
  **held** until the detector decides, then **replayed**, as before. So is every
  key after a held one, so keys reach widgets in the order they were typed.
* When the detector decides that delivered keys were a scan, or commits to a
  read (so it can no longer be typing), the planner asks the caller to **take
  them back**, then to route the scan. While the detector is committed, new keys
  are held: of a fast read, at most the characters before the latch (3 by
  default) reach a field, for the few milliseconds until the read is proven. A
  read that starts with a prefix control character is held from its first key.
  A slow read recognised only by its suffix shows until the suffix comes, then
  goes.

Contract (property-tested): every key fed ends in exactly one of two fates —
typed (delivered and never taken back, or replayed once) or part of exactly one
routed scan (never delivered, or delivered and taken back before the scan is
routed) — in the order the keys were fed. Pure: no Textual, no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from kiosk.scanning.detector import (
    Decision,
    DetectorSettings,
    KeyInput,
    Release,
    Scan,
    WedgeDetector,
)

__all__ = ["Action", "Confirm", "Deliver", "KeyPlanner", "Replay", "Route", "TakeBack"]


@dataclass(frozen=True)
class Deliver:
    """Send key ``seq`` to its widget now; it may be taken back later."""

    seq: int


@dataclass(frozen=True)
class Replay:
    """Send key ``seq`` to the focused widget now, for good (it was held, or taken back)."""

    seq: int


@dataclass(frozen=True)
class Confirm:
    """Delivered keys ``seqs`` were typing: nothing to do but forget them."""

    seqs: tuple[int, ...]


@dataclass(frozen=True)
class TakeBack:
    """Undo delivered keys ``seqs`` (oldest first) in the widgets they went to."""

    seqs: tuple[int, ...]


@dataclass(frozen=True)
class Route:
    """Keys ``seqs`` were one read: act on ``scan`` (its keys are never typed)."""

    scan: Scan
    seqs: tuple[int, ...]


Action = Deliver | Replay | Confirm | TakeBack | Route

_State = Literal["new", "delivered", "held", "taken_back", "decided"]


@dataclass
class _Slot:
    seq: int
    key: KeyInput
    state: _State = "new"


class KeyPlanner:
    """The detector plus the bookkeeping of which keys already reached a widget."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.detector = WedgeDetector(settings)
        # Undecided keys in order. Delivered ones always come first: once a key is
        # held, every later key is held too, so nothing overtakes a held key.
        self._pending: deque[_Slot] = deque()
        self._next_seq = 0

    def feed(self, key: KeyInput, *, can_take_back: bool) -> tuple[int, list[Action]]:
        """Take one key; return its sequence number and what to do now, in order."""
        slot = _Slot(self._next_seq, key)
        self._next_seq += 1
        self._pending.append(slot)
        actions = self._resolve(self.detector.feed(key))
        actions.extend(self._take_back_if_committed())
        if slot.state == "new":
            if can_take_back and self._may_deliver(slot):
                slot.state = "delivered"
                actions.append(Deliver(slot.seq))
            else:
                slot.state = "held"
        return slot.seq, actions

    def poll(self, now: float) -> list[Action]:
        """What to do when the detector's deadline passes."""
        return self._resolve(self.detector.poll(now))

    def flush(self) -> list[Action]:
        """Decide every undecided key now (before a paste, which must come after them)."""
        return self._resolve(self.detector.flush())

    def deadline(self) -> float | None:
        return self.detector.deadline()

    @property
    def pending(self) -> int:
        """Keys not decided yet (delivered or held)."""
        return len(self._pending)

    # ------------------------------------------------------------------ internals

    def _may_deliver(self, slot: _Slot) -> bool:
        """Deliver only when nothing before it waits and no read is under way."""
        if self.detector.committed:
            return False
        return all(s.state == "delivered" for s in self._pending if s is not slot)

    def _take_back_if_committed(self) -> list[Action]:
        """A committed read is never typing: take its keys out of the field right away."""
        if not self.detector.committed:
            return []
        delivered = [s for s in self._pending if s.state == "delivered"]
        for s in delivered:
            s.state = "taken_back"
        return [TakeBack(tuple(s.seq for s in delivered))] if delivered else []

    def _resolve(self, decisions: list[Decision]) -> list[Action]:
        actions: list[Action] = []
        for decision in decisions:
            # The detector hands back every key once and in order, so the pending
            # slots line up with each decision's keys one for one.
            slots = [self._pending.popleft() for _ in decision.keys]
            if isinstance(decision, Release):
                actions.extend(self._typed(slots))
            else:
                actions.extend(self._scanned(decision, slots))
            for s in slots:
                s.state = "decided"
        return actions

    @staticmethod
    def _typed(slots: list[_Slot]) -> list[Action]:
        actions: list[Action] = []
        delivered = tuple(s.seq for s in slots if s.state == "delivered")
        if delivered:
            actions.append(Confirm(delivered))
        # Held, new or taken-back keys go out now; they follow every delivered one.
        actions.extend(Replay(s.seq) for s in slots if s.state != "delivered")
        return actions

    @staticmethod
    def _scanned(scan: Scan, slots: list[_Slot]) -> list[Action]:
        delivered = tuple(s.seq for s in slots if s.state == "delivered")
        actions: list[Action] = [TakeBack(delivered)] if delivered else []
        actions.append(Route(scan, tuple(s.seq for s in slots)))
        return actions
