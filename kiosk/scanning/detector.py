"""Tell a keyboard-wedge scanner burst from a person typing, one key at a time.

Scanners and badge readers "type" their data like a keyboard, only much faster:
a wired scanner sends a character every 0–15 ms (a whole code often arrives in
one terminal read, all with the same timestamp), a person types at 80–250 ms and
a fast typist manages 40–60 ms on short words.

Design: **hold, then release** (SCANNER-NOTES §2). Keys that may belong to a
burst are held. When the detector decides "person", it hands them back in order
as :class:`Release`, and the app replays them as normal input; when it decides
"scanner", they come back as one :class:`Scan`. Every key fed comes back exactly
once, in order, in one or the other; nothing is dropped or duplicated.

The detector is pure: no Textual, no clock. It is fed :class:`KeyInput` with the
time the key was *parsed* (Textual's ``events.Key.time``), and the app arms a timer
for :meth:`WedgeDetector.deadline` and calls :meth:`WedgeDetector.poll` when it
fires, so held keys are released about ``max_gap_ms`` after the last one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = [
    "Decision",
    "DetectorSettings",
    "KeyInput",
    "Release",
    "Scan",
    "WedgeDetector",
]

# Float timestamps make "exactly 50 ms" come out as 50.00000000000004 ms; a gap
# that equal to the limit is meant to count as inside it.
_EPSILON_MS = 1e-6

# Keys that carry no text and only modify others. Kitty's keyboard protocol reports
# them on their own (Textual >= 8.2.7); a scanner pressing Shift for capitals must
# not break its own burst, so these are held along but never counted or timed.
MODIFIER_KEYS: frozenset[str] = frozenset(
    {
        "shift", "left_shift", "right_shift",
        "ctrl", "control", "left_ctrl", "right_ctrl", "left_control", "right_control",
        "alt", "left_alt", "right_alt", "meta", "left_meta", "right_meta",
        "super", "left_super", "right_super", "hyper", "left_hyper", "right_hyper",
        "caps_lock", "num_lock", "scroll_lock", "iso_level3_shift", "iso_level5_shift",
    }
)  # fmt: skip


@dataclass(frozen=True)
class KeyInput:
    """One key as Textual reports it: ``events.Key.key``, ``.character`` and ``.time``.

    ``key`` is the key name (``"a"``, ``"enter"``, ``"tab"``,
    ``"ctrl+right_square_bracket"`` for GS); ``character`` is the text it types
    (``"\\x1d"`` for GS) or None for keys without text; ``time`` is in seconds.
    """

    key: str
    character: str | None
    time: float

    @property
    def is_text(self) -> bool:
        """A key that types something; control characters such as GS count as text."""
        return bool(self.character)

    @property
    def is_modifier(self) -> bool:
        """A lone modifier key press (no text)."""
        return not self.is_text and self.key in MODIFIER_KEYS


@dataclass(frozen=True)
class Release:
    """Keys decided to be a person's typing: replay them, in order, as normal input."""

    keys: tuple[KeyInput, ...]


@dataclass(frozen=True)
class Scan:
    """Keys decided to be one scanner read.

    ``text`` is the data without prefix, suffix and terminator (control characters
    such as GS kept). ``keys`` are all the keys consumed, prefix to terminator, so
    the app can swallow them. ``terminator`` is the name of the key that ended
    the read (``"enter"``, ``"tab"``) or None. ``complete`` is False for a read that
    stalled or was cut short: show it as an unreadable scan, never type it.
    """

    text: str
    keys: tuple[KeyInput, ...]
    terminator: str | None
    complete: bool = True

    def __repr__(self) -> str:
        # A scan may be a badge number: keep all but its last two characters out of logs.
        shown = "•••" + self.text[-2:] if len(self.text) >= 4 else "•••"
        return (
            f"Scan(text={shown!r}, keys=<{len(self.keys)} keys>, "
            f"terminator={self.terminator!r}, complete={self.complete!r})"
        )


Decision = Release | Scan


@dataclass(frozen=True)
class DetectorSettings:
    """Timing and framing of one kind of reader. Defaults suit wired USB scanners."""

    max_gap_ms: float = 50.0
    """Keys less than this apart form one burst; also how long a lone key is held."""

    avg_max_ms: float = 30.0
    """Largest mean gap over a burst for it to count as a scan."""

    min_len: int = 4
    """Fewest data characters in a scan; set at most the shortest real code."""

    terminators: tuple[str, ...] = ("enter", "tab")
    """Key names that end a scan. They pass straight through when nothing is held."""

    prefix: str = ""
    """Characters the reader sends before the data (e.g. STX ``"\\x02"``). When set,
    only prefixed input is a scan, whatever the timing. Never use ESC."""

    suffix: str = ""
    """Characters the reader sends after the data. A held burst ending in them is a
    scan, whatever its speed; a terminator right after the suffix is swallowed."""

    latch_len: int = 4
    """Fast characters after which a burst is no longer released as typing, so a
    scanner that stalls mid-code cannot leak half a code into a text field.
    The detector uses ``max(latch_len, min_len)``."""

    stall_grace_ms: float = 300.0
    """How long a latched or prefixed read may pause before it is given up."""

    repeat_min_gap_ms: float = 20.0
    """A run of one character with every gap at least this long is key auto-repeat."""

    allow_no_terminator: bool = False
    """Accept a latched burst without terminator as a complete scan after the grace."""

    min_len_no_terminator: int = 8
    """Fewest characters for such an unterminated scan."""

    max_scan_len: int = 8192
    """Cap on held characters (a QR code holds at most 7089)."""

    def __post_init__(self) -> None:
        """Refuse settings that would make the detector hold keys forever or never."""
        if not (self.max_gap_ms > 0 and self.avg_max_ms > 0 and self.stall_grace_ms > 0):
            raise ValueError("max_gap_ms, avg_max_ms and stall_grace_ms must be positive")
        if self.min_len < 1 or self.latch_len < 2 or self.max_scan_len < 1:
            raise ValueError("min_len must be >= 1, latch_len >= 2, max_scan_len >= 1")
        if "\x1b" in self.prefix + self.suffix:
            # Textual waits after ESC and then merges it with the next key.
            raise ValueError("ESC cannot be part of a scanner prefix or suffix")

    @classmethod
    def bluetooth(cls, **overrides: Any) -> DetectorSettings:
        """Profile for Bluetooth scanners, which are slower and send in uneven bursts."""
        profile = cls(max_gap_ms=120.0, avg_max_ms=60.0, stall_grace_ms=600.0)
        return replace(profile, **overrides)


Phase = Literal["idle", "burst", "prefix", "framed", "suffix_seen"]


class WedgeDetector:
    """State machine over key events; see the module docstring for the idea.

    Phases:

    * ``idle`` — nothing held.
    * ``burst`` — timing mode: text keys held while they come within ``max_gap_ms``.
    * ``prefix`` — the first characters of the configured prefix have come.
    * ``framed`` — the whole prefix came; everything up to the suffix or a
      terminator is scan data, whatever the timing.
    * ``suffix_seen`` — the suffix came; waiting ``max_gap_ms`` for a terminator.

    :meth:`feed` and :meth:`poll` never raise: a detector that throws in the
    input path would freeze the kiosk's keyboard.
    """

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self._held: list[KeyInput] = []
        self._phase: Phase = "idle"
        self._latched = False
        # Time a read was cut short by a non-text key. Fast keys right after it are
        # the rest of that read and must not be typed into the focused field.
        self._interrupted_at: float | None = None

    # ----------------------------------------------------------------- public API

    @property
    def holding(self) -> bool:
        """True while keys are held back (the app should keep the timer armed)."""
        return bool(self._held)

    def feed(self, key: KeyInput) -> list[Decision]:
        """Take one key; return what can be decided now (possibly nothing)."""
        try:
            decisions = self.poll(key.time)
            decisions.extend(self._accept(key))
            return decisions
        except Exception:  # pragma: no cover - defensive; see class docstring
            return self._fail_safe(key)

    def poll(self, now: float) -> list[Decision]:
        """Flush held keys whose time is up; call when the :meth:`deadline` timer fires."""
        try:
            deadline = self.deadline()
            if deadline is None:
                return []
            # A non-finite deadline (broken clock) must not hold keys forever.
            if math.isfinite(deadline) and now < deadline:
                return []
            return self._expire()
        except Exception:  # pragma: no cover - defensive
            return self._fail_safe(None)

    def deadline(self) -> float | None:
        """When :meth:`poll` will next have something to flush (seconds), or None."""
        last = self._last_text_time()
        if last is None:
            return None
        return last + self._current_wait_ms() / 1000.0

    def flush(self) -> list[Decision]:
        """Decide everything held now, as if its time were up (e.g. on screen change)."""
        return self._expire() if self._held else []

    # ------------------------------------------------------------ per-key routing

    def _accept(self, key: KeyInput) -> list[Decision]:
        """Route one key according to the phase (stale holds were flushed by poll)."""
        if self._phase == "idle":
            return self._accept_idle(key)
        if key.is_modifier:
            self._held.append(key)  # a Shift inside a burst is part of the burst
            return []
        if self._phase == "suffix_seen":
            return self._accept_after_suffix(key)
        if self._phase in ("prefix", "framed"):
            return self._accept_framed(key)
        return self._accept_burst(key)

    def _accept_idle(self, key: KeyInput) -> list[Decision]:
        """Start holding on a text key; anything else passes straight through."""
        if not key.is_text or self._is_terminator(key):
            return [Release((key,))]
        prefix = self.settings.prefix
        if prefix:
            if key.character != prefix[0]:
                # With a prefix configured, unprefixed keys are typing: no hold needed.
                return [Release((key,))]
            self._start(key, "framed" if len(prefix) == 1 else "prefix")
            return []
        self._start(key, "burst")
        return self._check_suffix_or_cap()

    def _accept_burst(self, key: KeyInput) -> list[Decision]:
        """Timing mode: a key within the gap limit (or a latched read's grace)."""
        if self._is_terminator(key):
            return self._decide_terminated(key)
        if not key.is_text:
            # Arrows, F-keys...: a person is at the keyboard. End the burst here.
            return self._interrupt(key)
        # A key after max_gap_ms only gets here when the burst is latched (poll has
        # flushed anything else): the reader stalled and resumed, which is still a read.
        self._held.append(key)
        self._update_latch()
        return self._check_suffix_or_cap()

    def _accept_framed(self, key: KeyInput) -> list[Decision]:
        """Prefix mode: match the prefix, then collect data until suffix or terminator."""
        if not key.is_text:
            return self._interrupt(key)
        if self._phase == "prefix":
            return self._accept_prefix_char(key)
        if not self.settings.suffix and self._is_terminator(key):
            return [self._scan(self._held, key, complete=True)]
        self._held.append(key)
        return self._check_suffix_or_cap()

    def _accept_prefix_char(self, key: KeyInput) -> list[Decision]:
        """The next expected prefix character, or proof that this was not a prefix."""
        matched = len(self._text_keys())
        prefix = self.settings.prefix
        if key.character == prefix[matched]:
            self._held.append(key)
            if matched + 1 == len(prefix):
                self._phase = "framed"
            return []
        # Not the prefix after all: it was typed; release it with this key.
        released = Release((*self._take(), key))
        return [released]

    def _accept_after_suffix(self, key: KeyInput) -> list[Decision]:
        """Right after a suffix: a terminator belongs to the read, anything else not."""
        if self._is_terminator(key):
            return self._suffix_scan(key)
        return [*self._suffix_scan(None), *self._accept_idle(key)]

    def _suffix_scan(self, terminator: KeyInput | None) -> list[Decision]:
        """The read closed by the suffix. Without a prefix, its start is found by timing."""
        if self.settings.prefix:
            return [self._scan(self._held, terminator, complete=True)]
        head, tail = self._split_head(self._held)
        return self._head_then(head, self._scan(tail, terminator, complete=True))

    # ----------------------------------------------------------------- decisions

    def _decide_terminated(self, terminator: KeyInput) -> list[Decision]:
        """A terminator ends a timing-mode burst: scan, or release it all as typing."""
        head, tail = self._split_head(self._held)
        if self._is_scan(tail, terminator):
            return self._head_then(head, self._scan(tail, terminator, complete=True))
        if self._latched:
            # Never replay a latched read: the app shows it as an unreadable scan.
            return self._head_then(head, self._scan(tail, terminator, complete=False))
        return [Release((*self._take(), terminator))]

    def _decide_unterminated(self) -> list[Decision]:
        """The burst ended without terminator (time up, or a non-text key)."""
        if not self._held:
            return []
        settings = self.settings
        if self._phase == "prefix" or (self._phase == "burst" and not self._latched):
            return [Release(self._take())]
        if self._phase == "suffix_seen":
            return self._suffix_scan(None)
        head, tail = self._split_head(self._held) if self._phase == "burst" else ((), self._held)
        complete = (
            self._phase == "burst"
            and settings.allow_no_terminator
            and len(_text_of(tail)) >= settings.min_len_no_terminator
        )
        return self._head_then(head, self._scan(tail, None, complete=complete))

    def _interrupt(self, key: KeyInput) -> list[Decision]:
        """A key without text cut into the read: decide what is held, pass the key on."""
        decisions = self._decide_unterminated()
        if any(isinstance(d, Scan) and not d.complete for d in decisions):
            self._interrupted_at = key.time
        return [*decisions, Release((key,))]

    def _expire(self) -> list[Decision]:
        """Time is up for what is held."""
        return self._decide_unterminated()

    def _head_then(self, head: Sequence[KeyInput], scan: Scan) -> list[Decision]:
        """Release the person's keys that preceded a read, then the read itself."""
        return [Release(tuple(head)), scan] if head else [scan]

    def _scan(
        self, keys: Sequence[KeyInput], terminator: KeyInput | None, *, complete: bool
    ) -> Scan:
        """Build a Scan from ``keys`` (+ terminator) and reset to idle."""
        settings = self.settings
        text = _text_of(keys)
        framed = self._phase in ("framed", "suffix_seen") and bool(settings.prefix)
        if framed:
            text = text[len(settings.prefix) :]
        if self._phase == "suffix_seen" and settings.suffix:
            text = text[: len(text) - len(settings.suffix)]
        all_keys = (*keys, terminator) if terminator is not None else tuple(keys)
        self._reset()
        return Scan(text, all_keys, terminator.key if terminator else None, complete)

    def _is_scan(self, keys: Sequence[KeyInput], terminator: KeyInput) -> bool:
        """Timing test for a terminated burst: long enough and fast enough on average."""
        settings = self.settings
        text_keys = [k for k in keys if k.is_text]
        if len(text_keys) < settings.min_len:
            return False
        if self._latched:
            return True  # a latched read was already proven fast; a stall is allowed
        if _looks_like_auto_repeat(text_keys, settings.repeat_min_gap_ms):
            return False
        gaps = _gaps_ms([*text_keys, terminator])
        return sum(gaps) / len(gaps) <= settings.avg_max_ms + _EPSILON_MS

    def _split_head(
        self, keys: Sequence[KeyInput]
    ) -> tuple[tuple[KeyInput, ...], tuple[KeyInput, ...]]:
        """Separate a person's keys typed just before a burst from the burst itself.

        The head is the longest leading run of keys that each came slower than
        ``avg_max_ms`` after the previous one *and* before the next: a person
        typing "ab" and a scan starting 40 ms later gives head "ab". A burst that
        is fast from its first key has no head. The head is only split off if
        what remains is still long enough to be a read.
        """
        text_positions = [i for i, k in enumerate(keys) if k.is_text]
        gaps = _gaps_ms([keys[i] for i in text_positions])
        slow = 0
        while slow < len(gaps) and gaps[slow] > self.settings.avg_max_ms + _EPSILON_MS:
            slow += 1
        if slow == 0 or len(text_positions) - slow < max(self.settings.min_len, 1):
            return (), tuple(keys)
        cut = text_positions[slow]
        return tuple(keys[:cut]), tuple(keys[cut:])

    # ------------------------------------------------------------------- helpers

    def _start(self, key: KeyInput, phase: Phase) -> None:
        """Begin holding with ``key``."""
        self._held = [key]
        self._phase = phase
        interrupted_at, self._interrupted_at = self._interrupted_at, None
        # The remainder of an interrupted read is latched from its first key.
        self._latched = (
            phase == "burst"
            and interrupted_at is not None
            and _gap(interrupted_at, key.time) <= self.settings.max_gap_ms + _EPSILON_MS
        )

    def _take(self) -> tuple[KeyInput, ...]:
        """Hand back everything held and go idle."""
        held = tuple(self._held)
        self._reset()
        return held

    def _reset(self) -> None:
        self._held = []
        self._phase = "idle"
        self._latched = False

    def _check_suffix_or_cap(self) -> list[Decision]:
        """After adding a key: did the suffix just complete, or is the read too long?"""
        suffix = self.settings.suffix
        text = _text_of(self._held)
        # Framed reads may be empty (prefix + suffix is unambiguous); an unframed
        # suffix needs at least one data character before it.
        framing = len(self.settings.prefix) + len(suffix) + (0 if self.settings.prefix else 1)
        if suffix and text.endswith(suffix) and len(text) >= framing:
            self._phase = "suffix_seen"
            return []
        if len(text) >= self.settings.max_scan_len:
            # Runaway input (a stuck key, a reader in a loop): stop holding it.
            if self._phase == "burst" and not self._latched:
                return [Release(self._take())]
            return [self._scan(self._held, None, complete=False)]
        return []

    def _update_latch(self) -> None:
        """Latch once enough characters came fast on average (and not as auto-repeat)."""
        if self._latched:
            return
        text_keys = self._text_keys()
        # Below min_len a burst cannot be a read, so it must stay releasable as typing.
        if len(text_keys) < max(self.settings.latch_len, self.settings.min_len):
            return
        if _looks_like_auto_repeat(text_keys, self.settings.repeat_min_gap_ms):
            return
        gaps = _gaps_ms(text_keys)
        self._latched = sum(gaps) / len(gaps) <= self.settings.avg_max_ms + _EPSILON_MS

    def _current_wait_ms(self) -> float:
        """How long the held keys may wait for the next key."""
        if self._phase == "suffix_seen":
            return self.settings.max_gap_ms
        if self._phase in ("framed", "prefix") or self._latched:
            return self.settings.stall_grace_ms
        return self.settings.max_gap_ms

    def _last_text_time(self) -> float | None:
        for key in reversed(self._held):
            if key.is_text:
                return key.time
        return None

    def _text_keys(self) -> list[KeyInput]:
        return [k for k in self._held if k.is_text]

    def _is_terminator(self, key: KeyInput) -> bool:
        return key.key in self.settings.terminators

    def _fail_safe(self, key: KeyInput | None) -> list[Decision]:
        """Last resort after an internal error: give every key back as typing."""
        keys = (*self._held, key) if key is not None else tuple(self._held)
        self._reset()
        return [Release(keys)] if keys else []


def _gap(earlier: float, later: float) -> float:
    """Gap in ms; clocks that step back or are not finite count as no gap at all."""
    gap = (later - earlier) * 1000.0
    return gap if math.isfinite(gap) and gap > 0 else 0.0


def _gaps_ms(keys: Sequence[KeyInput]) -> list[float]:
    """Gaps between consecutive keys, in ms."""
    return [_gap(a.time, b.time) for a, b in zip(keys, keys[1:], strict=False)]


def _text_of(keys: Sequence[KeyInput]) -> str:
    """The characters typed by ``keys`` (modifiers contribute nothing)."""
    return "".join(k.character or "" for k in keys)


def _looks_like_auto_repeat(text_keys: Sequence[KeyInput], min_gap_ms: float) -> bool:
    """A held-down key repeats one character at a steady 25–40 ms; scanners are faster."""
    if len(text_keys) < 2 or len({k.character for k in text_keys}) != 1:
        return False
    return all(gap >= min_gap_ms for gap in _gaps_ms(text_keys))
