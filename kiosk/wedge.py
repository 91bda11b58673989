"""Glue between Textual key events and the pure wedge planner in `kiosk.scanning`.

Every key goes through here before any widget or binding sees it (App.on_event). A printable
key for a focused Input is delivered at once, so typing never waits for the detector; if it
turns out to be the head of a scan, the Input's value and cursor are put back as they were
before it. Other keys are held while a burst is undecided and replayed exactly as the terminal
delivered them. A scan never stays in any field; nothing is dropped; keys keep their order.

Taking a key back must see the Input as it was just before that key, but a forwarded key is
only queued for the Input. So a snapshot callback is queued on the Input right before the key,
and the restore is queued behind every key delivered to it: both run in the Input's own order.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from textual import events
from textual.widget import Widget
from textual.widgets import Input, TextArea
from textual.widgets.input import Selection

from kiosk.scanning import DetectorSettings, KeyInput, Scan
from kiosk.scanning.detector import ScannerFields
from kiosk.scanning.paste import scan_from_paste
from kiosk.scanning.planner import Action, Confirm, Deliver, KeyPlanner, Replay, Route, TakeBack

Forward = Callable[[events.Event], Awaitable[None]]
"""How the app hands an event on as normal input (App.on_event of the base class)."""


def scanner_settings(config: ScannerFields) -> DetectorSettings:
    """The station's server-side scanner config as detector settings; never raises.

    The server refuses bad scanner settings (kiosk.wire.ScannerConfig), but a station must not
    stop taking keys over config it cannot use (an older server, a cached copy): it falls back
    to the defaults and `scanner_problem` says why.
    """
    try:
        return DetectorSettings.from_config(config)
    except (ValueError, TypeError):
        return DetectorSettings()


def scanner_problem(config: ScannerFields) -> str | None:
    """Why the station cannot use `config` (and runs on the defaults), or None."""
    try:
        DetectorSettings.from_config(config)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def now() -> float:
    # Textual stamps key events with time.monotonic() on POSIX (textual._time.get_time).
    return time.monotonic()


def can_take_back(focused: Widget | None, event: events.Key) -> Input | None:
    """The Input a key can be delivered to at once and taken back from, or None.

    An Input consumes every printable key itself (Textual filters even priority bindings
    for keys an Input consumes), so its value and cursor are all the key changes.
    """
    if isinstance(focused, Input) and event.is_printable and not focused.disabled:
        return focused
    return None


@dataclass
class Outcome:
    """What a key, a timer tick or a paste leaves the app to act on: the scans it completed."""

    scans: list[Scan] = field(default_factory=list)


@dataclass
class _Entry:
    """A key the planner has not finished with, and where it went if it was delivered."""

    event: events.Key
    target: Input | None = None
    before: tuple[str, Selection] | None = None

    def snapshot(self) -> None:
        """Runs in the Input's queue just before the key: its state before the key."""
        if self.target is not None:
            self.before = (self.target.value, self.target.selection)


def _restore(entry: _Entry) -> None:
    """Runs in the Input's queue after the keys: put the value back as before `entry`."""
    if entry.target is None or entry.before is None:
        return
    value, selection = entry.before
    if entry.target.value != value:
        entry.target.value = value
    entry.target.selection = selection


class WedgeInput:
    """Keys in, typing out at once, scans out once decided (see the module docstring)."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.planner = KeyPlanner(settings)
        self._entries: dict[int, _Entry] = {}

    @property
    def settings(self) -> DetectorSettings:
        return self.planner.detector.settings

    async def feed(self, event: events.Key, forward: Forward, focused: Widget | None) -> Outcome:
        """One key from the terminal: typing goes out through `forward`, scans come back."""
        target = can_take_back(focused, event)
        key = KeyInput(event.key, event.character, event.time)
        seq, actions = self.planner.feed(key, can_take_back=target is not None)
        self._entries[seq] = _Entry(event, target)
        return await self._run(actions, forward)

    async def poll(self, forward: Forward) -> Outcome:
        """The detector's deadline passed: whatever it decided."""
        return await self._run(self.planner.poll(now()), forward)

    async def paste(self, event: events.Paste, forward: Forward, focused: Widget | None) -> Outcome:
        """A paste: keys before it are decided first; a scan-like paste becomes a scan.

        Textual's Input keeps only the first line of a paste (cut at GS/RS, which Python
        counts as line breaks), a TextArea turns them into lines, and a paste with nothing
        focused reaches no widget. Such pastes are routed as scans instead.
        """
        outcome = await self._run(self.planner.flush(), forward)
        into_field = isinstance(focused, Input | TextArea)
        scan = scan_from_paste(event.text, into_field=into_field, settings=self.settings)
        if scan is None:
            await forward(event)
        else:
            outcome.scans.append(scan)
        return outcome

    def unreadable_message(self, scan: Scan) -> str | None:
        """What to tell the operator about an unusable read (None: say nothing)."""
        return unreadable_message(scan, self.settings)

    def seconds_to_deadline(self) -> float | None:
        deadline = self.planner.deadline()
        return None if deadline is None else max(0.0, deadline - now())

    async def _run(self, actions: list[Action], forward: Forward) -> Outcome:
        scans: list[Scan] = []
        for action in actions:
            if isinstance(action, Deliver):
                entry = self._entries[action.seq]
                assert entry.target is not None
                entry.target.call_later(entry.snapshot)
                await forward(entry.event)
            elif isinstance(action, Replay):
                await forward(self._replayable(self._entries.pop(action.seq)))
            elif isinstance(action, TakeBack):
                self._take_back([self._entries[seq] for seq in action.seqs])
            elif isinstance(action, Confirm):
                for seq in action.seqs:
                    del self._entries[seq]
            elif isinstance(action, Route):
                for seq in action.seqs:
                    del self._entries[seq]
                scans.append(action.scan)
        return Outcome(scans)

    @staticmethod
    def _take_back(entries: list[_Entry]) -> None:
        """Each Input goes back to its state before the first of these keys it received."""
        first: dict[int, _Entry] = {}
        for entry in entries:
            if entry.target is not None:
                first.setdefault(id(entry.target), entry)
        for entry in first.values():
            assert entry.target is not None
            entry.target.call_later(_restore, entry)

    @staticmethod
    def _replayable(entry: _Entry) -> events.Key:
        """The event to hand on: a key already forwarded once is sent as a fresh event."""
        event = entry.event
        if not event.is_forwarded:
            return event
        again = events.Key(event.key, event.character)
        again.time = event.time
        return again


__all__ = [
    "Forward",
    "Outcome",
    "WedgeInput",
    "can_take_back",
    "now",
    "scanner_problem",
    "scanner_settings",
    "unreadable_message",
]


def unreadable_message(scan: Scan, settings: DetectorSettings) -> str | None:
    """What to tell the operator about an unusable read; None to stay silent (a tail)."""
    if scan.problem == "tail":
        return None  # the rest of a read whose first part was already reported
    if scan.problem == "too_long":
        return (
            f"Unreadable scan: longer than the {settings.max_scan_len} characters a code may "
            "have. Scan again."
        )
    if scan.problem == "interrupted":
        return "Unreadable scan: a key was pressed while the code came in. Scan again."
    return "Unreadable scan: the reader stopped mid-code. Scan again."
