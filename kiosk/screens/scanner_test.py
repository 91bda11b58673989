"""The scanner test screen: what an installer needs to set up a new scanner or badge reader.

It shows every key as it arrives with its gap in milliseconds, what the station's detector makes
of it, the symbology and the parsed fields; F5 learns the reader's framing and speed from three
test scans, and F2 saves them to the station's central config.
"""

from __future__ import annotations

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, RichLog, Static

from kiosk.client import BackendError, ExecutionClient
from kiosk.scanning import LAYOUT_MISMATCH, KeyInput, Release, Scan, WedgeDetector, classify, mask
from kiosk.scanning.learn import LearnedScanner, LearnError, learn
from kiosk.scanning.symbology import split_symbology
from kiosk.screens.base import MessageScreen
from kiosk.wedge import scanner_problem, scanner_settings, unreadable_message
from kiosk.widgets.message_line import MessageLine
from kiosk.wire import ScannerConfig, StationInfo

BURST_END_SECONDS = 0.5


def shown(character: str | None, key: str) -> str:
    """A key as an installer needs to see it: control characters by name, never invisible."""
    if not character:
        return f"<{key}>"
    if character == "\r":
        return "<CR>"
    if character == "\t":
        return "<TAB>"
    if not character.isprintable():
        return f"<0x{ord(character):02X}>"
    return character


class ScannerTestScreen(MessageScreen):
    """Keys reach this screen raw: the station's detector steps aside while it is open."""

    RAW_KEYS = True

    BINDINGS = [
        Binding("f5", "learn", "Learn from 3 scans"),
        Binding("f2", "save", "Save to station"),
        Binding("f4", "clear", "Clear"),
        Binding("f10", "close", "Close"),
    ]

    DEFAULT_CSS = """
    ScannerTestScreen {
        & .heading { background: $primary; color: $foreground; text-style: bold; padding: 0 1; }
        & RichLog { height: 1fr; border: none; }
        & #settings { padding: 0 1; color: $accent; }
    }
    """

    def __init__(self, client: ExecutionClient, session: str, info: StationInfo) -> None:
        super().__init__()
        self.client = client
        self.session = session
        self.info = info
        self.scanner = info.config.scanner
        self.detector = WedgeDetector(scanner_settings(self.scanner))
        self._last: float | None = None
        self._burst: list[KeyInput] = []
        self._lines: list[tuple[str, KeyInput]] = []
        self.bursts: list[list[KeyInput]] = []
        self.learning = False
        self.learned: LearnedScanner | None = None

    def compose(self) -> ComposeResult:
        yield Static(
            f"Scanner test · {self.info.name} · scan anything; every key is shown",
            classes="heading",
        )
        yield Static(self._settings_text(), id="settings")
        yield RichLog(id="keys", max_lines=500, wrap=False, markup=False)
        yield MessageLine(id="message")
        yield Footer()

    def _settings_text(self) -> str:
        s = self.scanner
        text = (
            f"detector: max gap {s.max_gap_ms:g} ms · mean gap {s.avg_max_ms:g} ms · min {s.min_len} chars · "
            f"prefix {s.prefix!r} (optional) · suffix {s.suffix!r} · ends {', '.join(s.terminators)}"
        )
        problem = scanner_problem(s)
        if problem is not None:
            # The station runs on the defaults rather than on settings it cannot use.
            text += (
                f"\nTHE STATION'S SETTINGS ARE NOT USABLE ({problem}): the defaults are in force."
            )
        return text

    # --- keys -------------------------------------------------------------------------------------

    def on_key(self, event: events.Key) -> None:
        if event.key in ("f2", "f4", "f5", "f10"):
            return  # the screen's own bindings
        event.stop()
        event.prevent_default()
        key = KeyInput(event.key, event.character, event.time)
        gap = "" if self._last is None else f"+{(event.time - self._last) * 1000:6.1f} ms"
        self._last = event.time
        self._lines.append((gap, key))  # written once the detector has decided what they were
        self._collect(key)
        for decision in self.detector.feed(key):
            self._show(decision)
        self.set_timer(BURST_END_SECONDS, self._idle)

    def _collect(self, key: KeyInput) -> None:
        self._burst.append(key)
        if key.key in self.scanner.terminators:
            self._end_burst()

    def _idle(self) -> None:
        for decision in self.detector.poll(key_time_now()):
            self._show(decision)
        if (
            self._burst
            and self._last is not None
            and key_time_now() - self._last >= BURST_END_SECONDS
        ):
            self._end_burst()

    def _end_burst(self) -> None:
        burst, self._burst = self._burst, []
        if self.learning and burst:
            self.bursts.append(burst)
            self.say(f"Learning: {len(self.bursts)} of 3 scans.", "info")
            if len(self.bursts) >= 3:
                self._learn()

    def _write_keys(self, count: int, *, private: bool) -> None:
        """The keys of one decision with their gaps; a badge's characters masked but the last 2."""
        lines, self._lines = self._lines[:count], self._lines[count:]
        texts = [
            i
            for i, (_gap, key) in enumerate(lines)
            if key.character and key.key not in self.scanner.terminators
        ]
        hidden = set(texts[:-2]) if private else set()
        log = self.query_one(RichLog)
        for n, (gap, key) in enumerate(lines):
            char = "•" if n in hidden else shown(key.character, key.key)
            log.write(f"{gap:>11}  {char:8} {'•' if n in hidden else key.key}")

    def _show(self, decision: Release | Scan) -> None:
        log = self.query_one(RichLog)
        if isinstance(decision, Release):
            self._write_keys(len(decision.keys), private=False)
            log.write(f"{'':>11}  → typing: {len(decision.keys)} keys passed on as typed")
            return
        found = classify(decision.text)
        # Badge data is never shown in full, not even to an installer (nor a bank card's number).
        private = found.kind == "badge" or "payment card" in found.reason or not decision.complete
        self._write_keys(len(decision.keys), private=private)
        if not decision.complete:
            why = unreadable_message(decision, self.detector.settings) or "rest of the read above"
            log.write(f"{'':>11}  → UNREADABLE SCAN ({len(decision.keys)} keys): {why}")
            return
        symbology, _data = split_symbology(decision.text)
        value = mask(found.value) if found.kind == "badge" else found.value
        fields = " ".join(f"({ai}) {v}" for ai, v in found.fields.items())
        log.write(
            f"{'':>11}  → SCAN ended by {decision.terminator or 'timeout'}: "
            f"symbology {symbology.name if symbology else 'none'} · {found.kind} {value} {fields}".rstrip()
        )
        if found.kind == "unknown":
            log.write(f"{'':>11}    {found.reason}")
            if LAYOUT_MISMATCH in found.reason:
                self.say(f"This {LAYOUT_MISMATCH}: set both to the same layout.", "warning")

    # --- learning ---------------------------------------------------------------------------------

    def action_learn(self) -> None:
        self.learning, self.bursts, self.learned = True, [], None
        self.say("Scan three DIFFERENT codes with the new scanner.", "info")

    def _learn(self) -> None:
        self.learning = False
        try:
            self.learned = learn(self.bursts)
        except LearnError as exc:
            self.say(str(exc), "error")
            return
        self.say(f"Learned: {self.learned.describe()}. F2 saves it to {self.info.name}.", "ok")

    @work(exclusive=True, group="save")
    async def action_save(self) -> None:
        if self.learned is None:
            self.say("Nothing learned yet: F5, then scan three different codes.", "warning")
            return
        try:
            scanner = self._learned_config(self.learned)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            self.say(f"The learned settings cannot be used: {exc}", "error")
            return
        config = self.info.config.model_copy(update={"scanner": scanner})
        try:
            version = await self.client.set_station_config(self.session, self.info.name, config)
        except BackendError as exc:
            self.say(exc.detail, "error")
            return
        self.scanner = scanner
        self.detector = WedgeDetector(scanner_settings(scanner))
        self.query_one("#settings", Static).update(self._settings_text())
        self.say(
            f"Saved to {self.info.name} as config v{version}; the station uses it from now on.",
            "ok",
        )

    def _learned_config(self, learned: LearnedScanner) -> ScannerConfig:
        """The station's settings with this scanner added; the badge reader keeps working
        (prefix optional, terminators added, gaps only widened, min length <= a badge)."""
        merged = learned.combined(scanner_settings(self.scanner))
        return ScannerConfig(
            max_gap_ms=merged.max_gap_ms,
            avg_max_ms=merged.avg_max_ms,
            min_len=merged.min_len,
            prefix=merged.prefix,
            suffix=merged.suffix,
            terminators=merged.terminators,
        )

    def action_clear(self) -> None:
        self.query_one(RichLog).clear()

    def action_close(self) -> None:
        self.app.pop_screen()


def key_time_now() -> float:
    from kiosk.wedge import now

    return now()
