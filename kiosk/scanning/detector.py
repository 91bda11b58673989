"""Tell a keyboard-wedge scanner burst from a person typing, one key at a time.

Scanners and badge readers "type" their data like a keyboard, only much faster:
a wired scanner sends a character every 0–15 ms (a whole code often arrives in
one terminal read, all with the same timestamp), a person types at 80–250 ms and
a fast typist manages 40–60 ms on short words.

Contract
========

* **Pure.** No Textual, no clock, no I/O. Keys come in as :class:`KeyInput` with
  the time they were *parsed* (Textual's ``events.Key.time``); the app arms a
  timer for :meth:`WedgeDetector.deadline` and calls :meth:`WedgeDetector.poll`
  when it fires. :meth:`feed`, :meth:`poll` and :meth:`flush` never raise.
* **Every key fed comes back exactly once, in order**, either in a
  :class:`Release` (a person's typing) or in a :class:`Scan` (one reader's read).
  Nothing is dropped, duplicated or reordered.
* **A read is never released as typing once it is** :attr:`committed`: once
  ``latch_len`` characters came fast (or the configured prefix came), what is
  held is scan data until it ends, even if the reader stalls; the keys a person
  typed just before it are released at that moment, and the rest of a read that
  was cut short (interrupted, or longer than ``max_scan_len``) is never a valid
  scan of its own.
* **Only data keys form reads**: printable characters, the scanner control
  characters GS/RS/FS/US/EOT, CR/LF/TAB, and the configured prefix and suffix.
  Other control keys (Ctrl+C, Ctrl+Q, Escape, Backspace...) and keys without text
  pass straight through, or cut a read short; lone modifiers (Shift) are held
  along and never break a burst.
* **Timing.** Inside a read, keys are at most ``max_gap_ms`` apart and on average
  at most ``avg_max_ms``. The *first* gap alone may be up to ``first_gap_ms``
  (scanners often pause after their first character), and it is left out of the
  mean; so a key followed within ``first_gap_ms`` by a read is that read's first
  character. A slow leading run of two or more keys is a person's typing.

The detector only *decides*. How long a person's key waits is up to the caller:
:class:`kiosk.scanning.planner.KeyPlanner` echoes keys that can be taken back at
once and takes them back if they turn out to be a scan's head (SCANNER-NOTES §2,
"deliver, then retract"), so holding here costs a person no time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

__all__ = [
    "DATA_CONTROLS",
    "TERMINATOR_CHARACTERS",
    "Decision",
    "DetectorSettings",
    "KeyInput",
    "Release",
    "Scan",
    "ScanProblem",
    "ScannerFields",
    "WedgeDetector",
]

# Float timestamps make "exactly 50 ms" come out as 50.00000000000004 ms; a gap
# that equal to the limit is meant to count as inside it.
_EPSILON_MS = 1e-6

# Without its own setting, the first gap may be this much longer than the others.
_FIRST_GAP_FACTOR = 1.6

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

DATA_CONTROLS = "\x1c\x1d\x1e\x1f\x04\t\n\r"
"""Control characters that are scan data: FS, GS, RS, US (GS1 and ISO 15434
separators), EOT (ends ISO 15434 codes), TAB, LF, CR. Any other control character
is a person pressing Ctrl+something."""

Terminator = Literal["enter", "tab", "ctrl+j", "ctrl+d"]
"""Key names a read may end with."""

TERMINATOR_CHARACTERS: dict[Terminator, str] = {
    "enter": "\r",
    "tab": "\t",
    "ctrl+j": "\n",
    "ctrl+d": "\x04",
}
"""The character each terminator key types."""

STALL_GRACE_MS = 300.0
"""How long a latched or prefixed read may pause before it is given up (the default)."""

# Characters Textual cannot pass through as one plain key (ESC waits for a sequence and
# then merges; NUL is stripped) or that a person's keyboard edits with (DEL = Backspace).
_UNUSABLE_FRAMING = "\x1b\x00\x7f\r\n\t"

ScanProblem = Literal["stalled", "interrupted", "too_long", "tail"]
"""Why a read is unusable: the reader stopped mid-code; a person's key cut into it; it
was longer than ``max_scan_len``; or it is the rest of a read already reported."""


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
        """A key that types something (any character, control characters included)."""
        return bool(self.character)

    @property
    def is_modifier(self) -> bool:
        """A lone modifier key press (no text)."""
        return not self.is_text and self.key in MODIFIER_KEYS


@dataclass(frozen=True)
class Release:
    """Keys decided to be a person's typing: they go to the focused widget, in order."""

    keys: tuple[KeyInput, ...]


@dataclass(frozen=True)
class Scan:
    """Keys decided to be one scanner read.

    ``text`` is the data without prefix, suffix and terminator (control characters
    such as GS kept). ``keys`` are all the keys consumed, prefix to terminator, so
    the app can swallow them (empty for a pasted scan). ``terminator`` is the name
    of the key that ended the read (``"enter"``, ``"tab"``) or None. ``complete``
    is False for a read that must not be used; ``problem`` then says why. Show it
    as an unreadable scan (a ``"tail"`` silently: its read was already reported).
    """

    text: str
    keys: tuple[KeyInput, ...]
    terminator: str | None
    complete: bool = True
    problem: ScanProblem | None = None

    def __repr__(self) -> str:
        # A scan may be a badge number: keep all but its last two characters out of logs.
        shown = "•••" + self.text[-2:] if len(self.text) >= 4 else "•••"
        return (
            f"Scan(text={shown!r}, keys=<{len(self.keys)} keys>, "
            f"terminator={self.terminator!r}, complete={self.complete!r}, "
            f"problem={self.problem!r})"
        )


Decision = Release | Scan


class ScannerFields(Protocol):
    """The station's scanner settings as the server keeps them (``kiosk.wire.ScannerConfig``)."""

    @property
    def max_gap_ms(self) -> float: ...
    @property
    def avg_max_ms(self) -> float: ...
    @property
    def min_len(self) -> int: ...
    @property
    def prefix(self) -> str: ...
    @property
    def suffix(self) -> str: ...
    @property
    def terminators(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class DetectorSettings:
    """Timing and framing of one kind of reader. Defaults suit wired USB scanners."""

    max_gap_ms: float = 50.0
    """Keys less than this apart form one burst."""

    avg_max_ms: float = 30.0
    """Largest mean gap over a burst for it to count as a scan (at most ``max_gap_ms``)."""

    min_len: int = 4
    """Fewest data characters in a scan; set at most the shortest real code or badge."""

    terminators: tuple[str, ...] = ("enter", "tab")
    """Key names that end a scan (see ``TERMINATOR_CHARACTERS``). They pass straight
    through when nothing is held."""

    prefix: str = ""
    """Characters the reader sends before the data (e.g. STX ``"\\x02"``). A read that
    starts with them is a scan whatever its timing. Never ESC, letters or digits."""

    prefix_required: bool = False
    """Only prefixed input is a scan. Off by default so that readers without the
    prefix (a badge reader next to a programmed scanner) keep working by timing."""

    suffix: str = ""
    """Characters the reader sends after the data. A held burst ending in them is a
    scan, whatever its speed; a terminator right after the suffix is swallowed."""

    latch_len: int = 4
    """Fast characters after which a burst is no longer released as typing, so a
    scanner that stalls mid-code cannot leak half a code into a text field.
    The detector uses ``max(latch_len, min_len)``."""

    stall_grace_ms: float = STALL_GRACE_MS
    """How long a latched or prefixed read may pause before it is given up."""

    first_gap_ms: float | None = None
    """Longest first gap of a read (scanners often pause after the first character).
    None: 1.6 x ``max_gap_ms``, at most ``stall_grace_ms``."""

    repeat_min_gap_ms: float = 20.0
    """A run of one character with every gap at least this long is key auto-repeat."""

    allow_no_terminator: bool = False
    """Accept a latched burst without terminator as a complete scan after the grace."""

    min_len_no_terminator: int = 8
    """Fewest characters for such an unterminated scan."""

    max_scan_len: int = 8192
    """Cap on held characters (a QR code holds at most 7089)."""

    def __post_init__(self) -> None:
        """Refuse settings that would hold keys forever, never, or mangle them."""
        self._check_timing()
        if self.min_len < 1 or self.latch_len < 2 or self.max_scan_len < 1:
            raise ValueError("min_len must be >= 1, latch_len >= 2, max_scan_len >= 1")
        self._check_framing()

    def _check_timing(self) -> None:
        if not (self.max_gap_ms > 0 and self.avg_max_ms > 0 and self.stall_grace_ms > 0):
            raise ValueError("max_gap_ms, avg_max_ms and stall_grace_ms must be positive")
        if self.max_gap_ms > self.stall_grace_ms:
            # The grace is how long a latched read may pause; a gap inside a read
            # longer than that would end every slow read as "stalled".
            raise ValueError(
                f"max_gap_ms ({self.max_gap_ms:g}) must not exceed the stall grace "
                f"({self.stall_grace_ms:g} ms)"
            )
        if self.avg_max_ms > self.max_gap_ms:
            raise ValueError("avg_max_ms (a mean gap) must not exceed max_gap_ms (the largest)")
        first = self.first_gap_ms
        if first is not None and not (self.max_gap_ms <= first <= self.stall_grace_ms):
            raise ValueError("first_gap_ms must lie between max_gap_ms and stall_grace_ms")

    def _check_framing(self) -> None:
        unknown = [t for t in self.terminators if t not in TERMINATOR_CHARACTERS]
        if unknown:
            raise ValueError(
                f"unknown terminator key {unknown[0]!r}: use {', '.join(TERMINATOR_CHARACTERS)}"
            )
        if not (self.terminators or self.suffix or self.allow_no_terminator):
            raise ValueError("a scan must be able to end: give a terminator or a suffix")
        for name, framing in (("prefix", self.prefix), ("suffix", self.suffix)):
            if "\x1b" in framing:
                # Textual waits after ESC and then merges it with the next key.
                raise ValueError(f"ESC cannot be part of a scanner {name}")
            bad = [c for c in framing if c in _UNUSABLE_FRAMING or c.isalnum() or c == " "]
            if bad:
                raise ValueError(
                    f"the scanner {name} cannot contain {bad[0]!r}: letters, digits, space, "
                    "NUL, DEL, CR, LF and TAB are data or editing keys"
                )

    @property
    def first_gap_limit_ms(self) -> float:
        """The longest first gap of a read actually in force."""
        if self.first_gap_ms is not None:
            return self.first_gap_ms
        return min(self.stall_grace_ms, self.max_gap_ms * _FIRST_GAP_FACTOR)

    @classmethod
    def bluetooth(cls, **overrides: Any) -> DetectorSettings:
        """Profile for Bluetooth scanners, which are slower and send in uneven bursts."""
        profile = cls(max_gap_ms=120.0, avg_max_ms=60.0, stall_grace_ms=600.0)
        return replace(profile, **overrides)

    @classmethod
    def from_config(cls, config: ScannerFields) -> DetectorSettings:
        """Settings for the station's server-side scanner config. Raises ValueError."""
        return cls(
            max_gap_ms=float(config.max_gap_ms),
            avg_max_ms=float(config.avg_max_ms),
            min_len=int(config.min_len),
            prefix=config.prefix,
            suffix=config.suffix,
            terminators=tuple(config.terminators),
        )


Phase = Literal["idle", "burst", "prefix", "framed", "suffix_seen"]


class WedgeDetector:
    """State machine over key events; see the module docstring for the contract.

    Phases:

    * ``idle`` — nothing held.
    * ``burst`` — timing mode: data keys held while they come within the gap limits.
    * ``prefix`` — the first characters of the configured prefix have come.
    * ``framed`` — the whole prefix came; everything up to the suffix or a
      terminator is scan data, whatever the timing.
    * ``suffix_seen`` — the suffix came; waiting ``max_gap_ms`` for a terminator.
    """

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self._held: list[KeyInput] = []
        self._phase: Phase = "idle"
        self._latched = False
        # The whole prefix came: what is held is framed by it, whatever its timing.
        self._prefixed = False
        # The burst held is the rest of a read that was cut short: never a scan of its own.
        self._tail = False
        # When a read was cut short (a person's key, or too long). Data keys right
        # after it are the rest of that read and must not reach the focused field.
        self._cut_at: float | None = None
        data = set(DATA_CONTROLS) | set(self.settings.prefix) | set(self.settings.suffix)
        self._data_controls = frozenset(data)

    # ----------------------------------------------------------------- public API

    @property
    def holding(self) -> bool:
        """True while keys are held back (the app should keep the timer armed)."""
        return bool(self._held)

    @property
    def committed(self) -> bool:
        """What is held is a read and will come back as a Scan, never as typing."""
        return bool(self._held) and (self._latched or self._prefixed)

    def feed(self, key: KeyInput) -> list[Decision]:
        """Take one key; return what can be decided now (possibly nothing)."""
        try:
            decisions = self.poll(key.time)
            decisions.extend(self._accept(key))
            return decisions
        except Exception:  # pragma: no cover - defensive: a raise here freezes the keyboard
            return self._fail_safe(key)

    def poll(self, now: float) -> list[Decision]:
        """Decide held keys whose time is up; call when the :meth:`deadline` timer fires."""
        try:
            deadline = self.deadline()
            if deadline is None:
                return []
            # A non-finite deadline (broken clock) must not hold keys forever.
            if math.isfinite(deadline) and now < deadline:
                return []
            return self._decide_unterminated("stalled")
        except Exception:  # pragma: no cover - defensive
            return self._fail_safe(None)

    def deadline(self) -> float | None:
        """When :meth:`poll` will next have something to decide (seconds), or None."""
        last = self._last_text_time()
        if last is None:
            return None
        return last + self._current_wait_ms() / 1000.0

    def flush(self) -> list[Decision]:
        """Decide everything held now, as if cut short (e.g. a paste arrives)."""
        try:
            return self._decide_unterminated("interrupted") if self._held else []
        except Exception:  # pragma: no cover - defensive
            return self._fail_safe(None)

    def is_data(self, key: KeyInput) -> bool:
        """A key that can be part of a read (see the module docstring)."""
        char = key.character
        if not char:
            return False
        return all(c.isprintable() or c in self._data_controls for c in char)

    # ------------------------------------------------------------ per-key routing

    def _accept(self, key: KeyInput) -> list[Decision]:
        """Route one key according to the phase (stale holds were decided by poll)."""
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
        """Start holding on a data key; anything else passes straight through."""
        if self._continues_cut_read(key):
            return self._accept_tail_start(key)
        if not self.is_data(key) or self._is_terminator(key):
            return [Release((key,))]  # a Shift or an arrow: the cut read may still go on
        self._cut_at = None
        prefix = self.settings.prefix
        if prefix and key.character == prefix[0]:
            self._start(key, "framed" if len(prefix) == 1 else "prefix")
            return self._check_suffix_or_cap()
        if prefix and self.settings.prefix_required:
            return [Release((key,))]  # only prefixed input is a scan: no hold needed
        self._start(key, "burst")
        return self._check_suffix_or_cap()

    def _accept_tail_start(self, key: KeyInput) -> list[Decision]:
        """The first key after a read was cut short: the rest of that read."""
        self._cut_at = None
        if self._is_terminator(key):
            return [Scan("", (key,), key.key, complete=False, problem="tail")]
        self._start(key, "burst")
        self._latched = self._tail = True
        return self._check_suffix_or_cap()

    def _accept_burst(self, key: KeyInput) -> list[Decision]:
        """Timing mode: a key within the gap limit (or a latched read's grace)."""
        if self._is_terminator(key):
            return self._decide_terminated(key)
        if not self.is_data(key):
            # Arrows, F-keys, Ctrl+C...: a person is at the keyboard. End the burst here.
            return self._interrupt(key)
        # A key after max_gap_ms only gets here when the burst is latched (poll has
        # decided anything else): the reader stalled and resumed, which is still a read.
        self._held.append(key)
        decisions = self._update_latch()
        return [*decisions, *self._check_suffix_or_cap()]

    def _accept_framed(self, key: KeyInput) -> list[Decision]:
        """Prefix mode: match the prefix, then collect data until suffix or terminator."""
        if not self.is_data(key):
            return self._interrupt(key)
        if self._phase == "prefix":
            return self._accept_prefix_char(key)
        if not self.settings.suffix and self._is_terminator(key):
            return [self._scan(self._held, key, None)]
        self._held.append(key)
        return self._check_suffix_or_cap()

    def _accept_prefix_char(self, key: KeyInput) -> list[Decision]:
        """The next expected prefix character, or proof that this was not a prefix."""
        matched = len(self._text_keys())
        prefix = self.settings.prefix
        if key.character == prefix[matched]:
            self._held.append(key)
            if matched + 1 == len(prefix):
                self._phase, self._prefixed = "framed", True
            return self._check_suffix_or_cap()
        if self.settings.prefix_required:
            return [Release((*self._take(), key))]  # it was typed
        # Not the prefix after all: judge what came by timing, like any other burst.
        self._phase = "burst"
        return self._accept_burst(key)

    def _accept_after_suffix(self, key: KeyInput) -> list[Decision]:
        """Right after a suffix: a terminator belongs to the read, anything else not."""
        if self._is_terminator(key):
            return self._suffix_scan(key)
        return [*self._suffix_scan(None), *self._accept_idle(key)]

    def _suffix_scan(self, terminator: KeyInput | None) -> list[Decision]:
        """The read closed by the suffix. Without a prefix, its start is found by timing."""
        if self._prefixed or self._latched:
            return [self._scan(self._held, terminator, None)]
        head, tail = self._split_head(self._held)
        return self._head_then(head, self._scan(tail, terminator, None))

    # ----------------------------------------------------------------- decisions

    def _decide_terminated(self, terminator: KeyInput) -> list[Decision]:
        """A terminator ends a timing-mode burst: scan, or release it all as typing."""
        if self._latched:
            # The head was released when the burst latched; the rest is the read.
            return [self._scan(self._held, terminator, None)]
        head, tail = self._split_head(self._held)
        if self._is_scan(tail, terminator):
            return self._head_then(head, self._scan(tail, terminator, None))
        return [Release((*self._take(), terminator))]

    def _decide_unterminated(self, problem: ScanProblem) -> list[Decision]:
        """The burst ended without terminator (time up, or cut short by ``problem``)."""
        if not self._held:
            return []
        if self._phase == "prefix" or (self._phase == "burst" and not self._latched):
            return [Release(self._take())]
        if self._phase == "suffix_seen":
            return self._suffix_scan(None)
        settings = self.settings
        accept = (
            problem == "stalled"
            and self._phase == "burst"
            and settings.allow_no_terminator
            and len(_text_of(self._held)) >= settings.min_len_no_terminator
        )
        return [self._scan(self._held, None, None if accept else problem)]

    def _interrupt(self, key: KeyInput) -> list[Decision]:
        """A key that is not data cut into the read: decide what is held, pass the key on."""
        decisions = self._decide_unterminated("interrupted")
        if any(isinstance(d, Scan) and not d.complete for d in decisions):
            self._cut_at = key.time
        return [*decisions, Release((key,))]

    def _head_then(self, head: Sequence[KeyInput], scan: Scan) -> list[Decision]:
        """Release the person's keys that preceded a read, then the read itself."""
        return [Release(tuple(head)), scan] if head else [scan]

    def _scan(
        self, keys: Sequence[KeyInput], terminator: KeyInput | None, problem: ScanProblem | None
    ) -> Scan:
        """Build a Scan from ``keys`` (+ terminator) and reset to idle."""
        settings = self.settings
        text = _text_of(keys)
        if self._prefixed:
            text = text[len(settings.prefix) :]
        if self._phase == "suffix_seen" and settings.suffix:
            text = text[: len(text) - len(settings.suffix)]
        if self._tail:
            problem = "tail"  # the rest of a read already reported as unusable
        all_keys = (*keys, terminator) if terminator is not None else tuple(keys)
        self._reset()
        name = terminator.key if terminator else None
        return Scan(text, all_keys, name, complete=problem is None, problem=problem)

    def _is_scan(self, keys: Sequence[KeyInput], terminator: KeyInput) -> bool:
        """Timing test for a terminated burst: long enough and fast enough on average."""
        text_keys = [k for k in keys if k.is_text]
        if len(text_keys) < self.settings.min_len:
            return False
        if _looks_like_auto_repeat(text_keys, self.settings.repeat_min_gap_ms):
            return False
        return self._fast_enough(self._timed_gaps([*text_keys, terminator]))

    # ------------------------------------------------------------- head and latch

    def _head_count(self, text_keys: Sequence[KeyInput]) -> int:
        """How many leading keys are a person's, typed just before a read.

        The head is the leading run of keys that came slower than ``avg_max_ms``
        before the next one: a person typing "ab" and a scan starting 40 ms later
        gives head "ab". One slow key alone, within ``first_gap_ms``, is the read's
        own first character (a scanner's slow first gap), not a head.
        """
        gaps = _gaps_ms(text_keys)
        slow = 0
        while slow < len(gaps) and gaps[slow] > self.settings.avg_max_ms + _EPSILON_MS:
            slow += 1
        if slow == 1 and gaps[0] <= self.settings.first_gap_limit_ms + _EPSILON_MS:
            return 0
        return slow

    def _timed_gaps(self, keys: Sequence[KeyInput]) -> list[float]:
        """The gaps a speed test averages: all but an allowed slow first gap."""
        gaps = _gaps_ms(keys)
        exempt = (
            len(gaps) >= 3
            and gaps[0] > self.settings.avg_max_ms + _EPSILON_MS
            and gaps[0] <= self.settings.first_gap_limit_ms + _EPSILON_MS
        )
        return gaps[1:] if exempt else gaps

    def _fast_enough(self, gaps: Sequence[float]) -> bool:
        return not gaps or sum(gaps) / len(gaps) <= self.settings.avg_max_ms + _EPSILON_MS

    def _split_head(
        self, keys: Sequence[KeyInput]
    ) -> tuple[tuple[KeyInput, ...], tuple[KeyInput, ...]]:
        """Separate a person's keys typed just before a burst from the burst itself.

        The head is only split off if what remains is still long enough to be a read.
        """
        text_positions = [i for i, k in enumerate(keys) if k.is_text]
        slow = self._head_count([keys[i] for i in text_positions])
        if slow == 0 or len(text_positions) - slow < self.settings.min_len:
            return (), tuple(keys)
        cut = text_positions[slow]
        return tuple(keys[:cut]), tuple(keys[cut:])

    def _update_latch(self) -> list[Decision]:
        """Latch once enough characters came fast (not as auto-repeat); release the head."""
        if self._latched:
            return []
        settings = self.settings
        positions = [i for i, k in enumerate(self._held) if k.is_text]
        text_keys = [self._held[i] for i in positions]
        slow = self._head_count(text_keys)
        tail = text_keys[slow:]
        # Below min_len a burst cannot be a read, so it must stay releasable as typing.
        if len(tail) < max(settings.latch_len, settings.min_len):
            return []
        if _looks_like_auto_repeat(tail, settings.repeat_min_gap_ms):
            return []
        if not self._fast_enough(self._timed_gaps(tail)):
            return []
        self._latched = True
        if not slow:
            return []
        cut = positions[slow]
        head, self._held = tuple(self._held[:cut]), self._held[cut:]
        return [Release(head)]

    # ------------------------------------------------------------------- helpers

    def _continues_cut_read(self, key: KeyInput) -> bool:
        cut = self._cut_at
        if cut is None or not (self.is_data(key) or self._is_terminator(key)):
            return False
        return _gap(cut, key.time) <= self.settings.max_gap_ms + _EPSILON_MS

    def _start(self, key: KeyInput, phase: Phase) -> None:
        """Begin holding with ``key``."""
        self._held = [key]
        self._phase = phase
        self._latched = self._tail = False
        self._prefixed = phase == "framed"

    def _take(self) -> tuple[KeyInput, ...]:
        """Hand back everything held and go idle."""
        held = tuple(self._held)
        self._reset()
        return held

    def _reset(self) -> None:
        self._held = []
        self._phase = "idle"
        self._latched = self._tail = self._prefixed = False

    def _check_suffix_or_cap(self) -> list[Decision]:
        """After adding a key: did the suffix just complete, or is the read too long?"""
        suffix = self.settings.suffix
        text = _text_of(self._held)
        prefixed = self._prefixed
        # Framed reads may be empty (prefix + suffix is unambiguous); an unframed
        # suffix needs at least one data character before it.
        framing = len(self.settings.prefix) + len(suffix) if prefixed else len(suffix) + 1
        if suffix and self._phase != "prefix" and text.endswith(suffix) and len(text) >= framing:
            self._phase = "suffix_seen"
            return []
        if len(text) >= self.settings.max_scan_len:
            return self._cap()
        return []

    def _cap(self) -> list[Decision]:
        """Runaway input (a stuck key, a reader in a loop): stop holding it."""
        if self._phase == "burst" and not self._latched:
            return [Release(self._take())]
        last = self._held[-1].time
        scan = self._scan(self._held, None, "too_long")
        self._cut_at = last  # what follows at once is the rest of this read
        return [scan]

    def _current_wait_ms(self) -> float:
        """How long the held keys may wait for the next key."""
        settings = self.settings
        if self._phase == "suffix_seen":
            return settings.max_gap_ms
        if self._phase in ("framed", "prefix") or self._latched:
            return settings.stall_grace_ms
        if len(self._text_keys()) == 1:
            return settings.first_gap_limit_ms
        return settings.max_gap_ms

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
        self._cut_at = None
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
