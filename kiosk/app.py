"""KioskApp: the station. Screen stack, who is signed in, idle lock, scan routing, lockdown."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.timer import Timer

from kiosk import lifecycle, partial_paint, themes, watchdog
from kiosk.client.errors import BackendError, StationNotEnrolled
from kiosk.config import StationSettings
from kiosk.scan_gate import ScanGate
from kiosk.screens.badge import BadgeScreen
from kiosk.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from kiosk.client import ExecutionClient
    from kiosk.client.embedded import EmbeddedBackend
    from kiosk.client.link import PersonSession, StationLink
    from kiosk.collector import IdleCollector
    from kiosk.drafts import StationSession
    from kiosk.messages import Scanned
    from kiosk.scanning import Scan, ScanRules
    from kiosk.wedge import Outcome, WedgeInput
    from kiosk.widgets.data_item_entry import DataItemEntry
    from kiosk.wire import (
        AdminSession,
        Credentials,
        Person,
        StationInfo,
        Step,
        Traveler,
    )

HEALTH_INTERVAL = 5.0
QUIET_CHECK = 0.25
"""Seconds between looks at whether the station is quiet enough to collect its garbage."""
HEARTBEAT_INTERVAL = 30.0

BEHIND_THE_BADGE_SCREEN = (
    "kiosk.wedge",  # first: the first key needs it (KioskApp.wedge)
    "kiosk.client.api",
    "kiosk.client.link",
    "kiosk.client.heartbeat",
    "kiosk.rules",
    "kiosk.drafts",
    "kiosk.screens.queue",
    "kiosk.screens.traveler",
    "kiosk.screens.sign_off",
)
"""What the station needs only once a key is pressed or someone badges in: the scanner wedge,
httpx, the wire models (pydantic model building) and the screens after the badge screen, ~0.5 s. Loaded in a thread after the
first frame (KioskApp.connect), never before it: tests/test_startup.py keeps them off that path."""

T = TypeVar("T")
Connect = Callable[[], tuple[str, "str | None"]]
"""Blocking: the server's URL and station token once they can be had (the keyring unlocked, the
embedded server answering). Run in a thread after the first frame."""


class KioskApp(App[int], inherit_bindings=False):
    """Operators cannot quit, suspend or open a palette: only an admin badge unlocks the exit."""

    CSS_PATH = themes.STYLESHEET
    ENABLE_COMMAND_PALETTE = False
    TITLE = "Station kiosk"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f9", "refused", "Refused", show=False),
        Binding("f11", "admin_console", "Admin", show=False),
        Binding("f12", "admin_exit", "Exit (admin)", show=False),
    ]

    online: reactive[bool | None] = reactive(None, init=False)
    """The link's one connection status as the screens show it (False too while the server
    refuses this station's token); every status bar watches it (StatusBar.on_mount)."""

    def __init__(
        self,
        settings: StationSettings,
        server_url: str,
        token: str | None,
        *,
        clock: Callable[[], datetime] | None = None,
        embedded: EmbeddedBackend | None = None,
        connect: Connect | None = None,
        collector: IdleCollector | None = None,
    ) -> None:
        super().__init__()
        partial_paint.install()
        self.settings = settings
        self.embedded = embedded
        self._connect: Connect = connect or (lambda: (server_url, token))
        self._link: StationLink | None = None
        self.connected = asyncio.Event()
        """Set once the link to the server exists: a badge scanned before waits for it."""
        self.start_error: Exception | None = None
        """Why the station could not connect at all (no token, a wrong keyring password)."""
        self.enrolled: bool | None = None
        """False once the server refused this station's token (401): never shown as ONLINE."""
        self.info: StationInfo | None = None
        self._started = time.monotonic()
        self.clock = clock or (lambda: datetime.now().astimezone())
        self._idle: Timer | None = None
        self._last_input = time.monotonic()
        self._wedge: WedgeInput | None = None
        self.collector = collector
        """Runs the garbage collector while nobody waits (kiosk/collector.py); the station's
        process has one, tests that run many apps in one process do not."""
        self._scan_rules: ScanRules | None = None
        self._wedge_timer: asyncio.TimerHandle | None = None
        self._scan_gate = ScanGate(self, self._wedge_event)
        self._state: StationSession | None = None
        for theme in themes.THEMES.values():
            self.register_theme(theme)
        self.theme = themes.resolve(None)  # the console theme on TERM=linux, from the first frame

    @property
    def wedge(self) -> WedgeInput:
        """The keyboard-wedge detector every key goes through; made at the first key (its import
        is not the first frame's: BEHIND_THE_BADGE_SCREEN loads it right after)."""
        if self._wedge is None:
            from kiosk.wedge import WedgeInput

            self._wedge = WedgeInput()
        return self._wedge

    @wedge.setter
    def wedge(self, wedge: WedgeInput) -> None:
        self._wedge = wedge

    @property
    def scan_rules(self) -> ScanRules:
        if self._scan_rules is None:
            from kiosk.scanning import DEFAULT_RULES

            self._scan_rules = DEFAULT_RULES
        return self._scan_rules

    @scan_rules.setter
    def scan_rules(self, rules: ScanRules) -> None:
        self._scan_rules = rules

    @property
    def link(self) -> StationLink:
        if self._link is None:
            raise RuntimeError("the station is still connecting: await app.connected first")
        return self._link

    @property
    def client(self) -> ExecutionClient:
        return self.link.client

    @property
    def state(self) -> StationSession:
        """The station's session, in one place: who is signed in, their drafts, the revisions
        shown (kiosk/drafts.py). Made when first needed: not on the badge screen's first frame."""
        if self._state is None:
            from kiosk.drafts import StationSession

            self._state = StationSession(on_change=self.refresh_status)
        return self._state

    @property
    def session(self) -> PersonSession | None:
        """Who is signed in at this station, with what proves them; None on the badge screen."""
        return None if self._state is None else self._state.signed_in

    @session.setter
    def session(self, session: PersonSession | None) -> None:
        self.state.signed_in = session

    @property
    def person(self) -> Person | None:
        return None if self.session is None else self.session.person

    @property
    def work_center(self) -> str:
        return self.info.work_center if self.info else self.settings.work_center

    # --- start and stop ---------------------------------------------------------------------------

    async def on_mount(self) -> None:
        # SIGTERM, SIGHUP and a lost terminal are kiosk/lifecycle.py's (armed by kiosk/station.py,
        # with a shutdown deadline); this pings systemd's watchdog when the unit has one.
        watchdog.start(self)
        await self.push_screen(BadgeScreen(allow_typed=True))
        self.set_interval(1.0, self._tick)
        # Paint first: the keyring unlock, the embedded server's answer and the client's imports
        # all come after the badge screen is on the terminal.
        self.call_after_refresh(self.connect)

    @work(exclusive=True, group="connect")
    async def connect(self) -> None:
        """Reach the server: unlock and import side by side in threads, then start the link."""
        from kiosk.config import ConfigError

        imports = in_daemon_thread(_load_behind_the_badge_screen)
        try:
            (url, token), _ = await asyncio.gather(in_daemon_thread(self._connect), imports)
        except (ConfigError, BackendError) as exc:  # no token, wrong password, no server
            self.start_error = exc
            self.exit(3)
            return
        from kiosk.client import ExecutionClient
        from kiosk.client.link import StationLink

        client = ExecutionClient(url, token, timeout=self.settings.request_timeout)
        self._link = StationLink(client, self.settings.data_dir, on_change=self.refresh_status)
        self.set_interval(HEALTH_INTERVAL, self.check_health)
        self.set_interval(HEARTBEAT_INTERVAL, self.send_heartbeat)
        self.link.start()
        self.connected.set()
        self.load_station()
        if self.collector is not None:  # everything the station loads at start is loaded now
            self.collector.start()
            self.set_interval(QUIET_CHECK, self._collect_if_quiet)

    async def until_connected(self) -> None:
        """Wait for the link, saying why on screen: a badge scanned at once is not lost."""
        if not self.connected.is_set():
            doing = "starting its server" if self.embedded is not None else "unlocking"
            self._say(f"One moment: the station is {doing}…", "info")
            await self.connected.wait()

    async def on_unmount(self) -> None:
        if self._wedge_timer is not None:
            self._wedge_timer.cancel()
        self._scan_gate.cancel()
        if self._link is not None:
            await self._link.close()

    @work(exclusive=True, group="station")
    async def load_station(self) -> None:
        """The station's config from the server (or, offline, as last seen): theme, idle, scanner."""
        try:
            self.info = await self.link.station()
        except BackendError as exc:
            self._note_refused_token(exc)
            self._say(exc.detail, "error")
            self.refresh_status()
            return
        self._note_refused_token(None)
        self.theme = themes.resolve(self.info.config.theme)
        from kiosk.wedge import WedgeInput, scanner_settings

        self.wedge = WedgeInput(scanner_settings(self.info.config.scanner))
        self.refresh_status()

    @work(exclusive=True, group="health")
    async def check_health(self) -> None:
        healthy = await self.client.healthy()
        if not healthy and self.embedded is not None and not self.embedded.alive:
            healthy = await self._restart_embedded()
        if healthy and self.link.online is not True:
            self.link.sender.nudge()  # back: deliver what waited, now rather than at the next retry
        self.link.sender.set_online(healthy)
        if healthy and (self.info is None or self.enrolled is False):
            self.load_station()  # ask again: an admin may have enrolled this station meanwhile

    def _note_refused_token(self, exc: BackendError | None) -> None:
        """A 401 means the server answers but no longer knows this station's token (revoked, or
        the station re-enrolled elsewhere): the status bar must say so, never ONLINE."""
        if exc is None or isinstance(exc, StationNotEnrolled):
            enrolled = exc is None
            if enrolled != self.enrolled:
                self.enrolled = enrolled
                self.refresh_status()

    async def _restart_embedded(self) -> bool:
        """The station's own server died: start it again and carry on where the outbox stands."""
        assert self.embedded is not None
        try:
            url, token = await asyncio.to_thread(self.embedded.restart)
        except BackendError as exc:
            self._say(exc.detail, "error")
            return False
        from kiosk.client import ExecutionClient

        timeout = self.settings.request_timeout
        await self.link.reconnect(ExecutionClient(url, token, timeout=timeout))
        self._say("The station's own server had stopped; it was restarted.", "warning")
        return await self.client.healthy()

    @work(exclusive=True, group="heartbeat")
    async def send_heartbeat(self) -> None:
        from kiosk.client.heartbeat import heartbeat

        beat = heartbeat(
            self.info,
            theme=self.theme,
            terminal=(self.size.width, self.size.height),
            color_system=self.console.color_system,
            outbox=self.link.outbox,
            started=self._started,
        )
        try:
            answer = await self.client.heartbeat(beat)
        except BackendError as exc:
            self._note_refused_token(exc)
            return  # the health check reports the outage; a heartbeat is never worth a message
        self.link.keep_checkpoint(answer.checkpoint)
        if self.info is not None and answer.config_version != self.info.config_version:
            self.load_station()  # the plant changed this station's config: take it now

    # --- status bar -------------------------------------------------------------------------------

    def refresh_status(self) -> None:
        linked = self._link is not None
        # A server that refuses the token is reachable but useless: shown as not enrolled.
        self.online = False if self.enrolled is False else self.link.online if linked else None
        station = self.info.name if self.info else self.settings.station_name
        who = "nobody signed in"
        if self.person is not None:
            who = f"{self.person.name} ({', '.join(r.value for r in self.person.roles)})"
        counts = self.link.outbox.counts() if linked else {}  # one read for every bar
        for screen in self.screen_stack:
            for bar in screen.query(StatusBar):
                bar.station = f"{station} · {self.work_center}"
                bar.person = who
                bar.enrolled = self.enrolled is not False
                bar.waiting = counts.get("pending", 0)
                bar.refused = counts.get("refused", 0)
                bar.config_version = self.info.config_version if self.info else None
                bar.clock = f"{self.clock():%H:%M}"

    def _collect_if_quiet(self) -> None:
        assert self.collector is not None
        self.collector.quiet(time.monotonic() - self._last_input)

    def _tick(self) -> None:
        if not self.screen_stack:  # closing: the clock fired as the screens were taken down
            return
        for bar in self.screen.query(StatusBar):
            bar.clock = f"{self.clock():%H:%M}"

    def _say(self, text: str, severity: str = "info") -> None:
        say = getattr(self.screen, "say", None)
        if callable(say):
            say(text, severity)

    # --- people -----------------------------------------------------------------------------------

    @work(exclusive=True, group="badge")
    async def badge_in(self, badge: str) -> None:
        """A badge anywhere: the same person continues; a new person replaces the previous one."""
        session = await self._login(badge)
        if session is None:
            return
        person = session.person
        same = self.person is not None and self.person.id == person.id
        if same and isinstance(self.screen, BadgeScreen) and len(self.screen_stack) > 2:
            self.session = session
            self.pop_screen()  # unlock: back to exactly where this person left off
        else:
            from kiosk.screens.queue import QueueScreen  # imported by now (connect)

            await self._reset_to_badge_screen()
            self.session = session
            await self.push_screen(QueueScreen())
        self.start_idle_timer()
        # After a crash, what the outbox kept may never have been shown as recorded: say so once.
        notice = self.link.restart_notice()
        if notice is None:
            self._say(f"Signed in: {person.name}.", "ok")
        else:
            self._say(f"Signed in: {person.name}. {notice}", "warning")

    async def _login(self, badge: str) -> PersonSession | None:
        """The server's session for this badge, or None with the refusal said."""
        await self.until_connected()
        # Imported by now (connect); asking before the link exists would block on the import.
        from kiosk import rules

        await self.close_sign_off()  # a badge never completes a signature typed before it
        try:
            return await self.link.login(badge)
        except (BackendError, rules.Refusal) as exc:
            if isinstance(exc, BackendError):
                self._note_refused_token(exc)
            self._say(exc.detail, "error")
            return None

    async def switch_person(self, badge: str) -> bool:
        """A badge on a screen that stays put (a traveler mid-step: Sam arriving to disposition
        what Ana found): this person takes over here. The server ends the previous person's
        session at this badge-in; their drafts wait in the session for their return. Returns
        whether the badge was accepted (a refusal is said)."""
        session = await self._login(badge)
        if session is None:
            return False
        self.session = session
        self.start_idle_timer()
        self._say(f"Signed in: {session.person.name}.", "ok")
        return True

    async def _reset_to_badge_screen(self) -> None:
        # Drafts need no saving first: the session keeps each one as it is typed.
        while len(self.screen_stack) > 2:
            await self.pop_screen()

    async def action_sign_out(self) -> None:
        await self.close_sign_off()
        await self._reset_to_badge_screen()
        self.end_session("sign_out")
        if self._idle is not None:
            self._idle.stop()
        self._say("Signed out.", "ok")

    def end_session(self, reason: str) -> None:
        """The continuous period of access ends: forget the person's key and tell the server."""
        ended, self.session = self.session, None
        if ended is not None:
            self.run_worker(self.link.logout(ended, reason), group="sign-out")

    async def close_sign_off(self) -> None:
        """Close any open sign-off prompt, badge and typed PIN with it (21 CFR 11.200: after an
        idle lock, a sign-out or a new badge, the next signature needs both components again)."""
        from kiosk.screens.sign_off import SignOffScreen

        for screen in self.screen_stack:
            if isinstance(screen, SignOffScreen):
                screen.forget()  # one under another screen cannot be dismissed, only emptied
        while isinstance(self.screen, SignOffScreen):
            await self.screen.dismiss(None)

    # --- idle lock --------------------------------------------------------------------------------

    @property
    def idle_seconds(self) -> float:
        return float(self.info.config.idle_lock_seconds if self.info else 180)

    def start_idle_timer(self) -> None:
        self._last_input = time.monotonic()
        self._arm_idle(self.idle_seconds)

    def _arm_idle(self, delay: float) -> None:
        if self._idle is not None:
            self._idle.stop()
        self._idle = self.set_timer(delay, self._idle_check)

    def _idle_check(self) -> None:
        # Keys only note the time; the timer re-arms for whatever idle time is left. Textual's
        # Timer.reset() restarts only once the current wait has run out, which let a station
        # stay open for up to twice its idle time after the last key.
        left = self.idle_seconds - (time.monotonic() - self._last_input)
        if left > 0:
            self._arm_idle(left)
        else:
            self._idle = None
            self.lock_station()

    @work(exclusive=True, group="lock")
    async def lock_station(self) -> None:
        """Idle too long: cover everything with the badge screen; unsaved entries stay put, but
        an open signature is closed and the person's session ends (their badge starts a new one)."""
        from kiosk.client.link import PersonSession

        person = self.person
        if person is None or isinstance(self.screen, BadgeScreen):
            return
        await self.close_sign_off()
        assert self.session is not None
        self.end_session("idle_lock")
        self.session = PersonSession(person)  # who the lock is for: no proof left in it
        allow = self.info.config.allow_typed_badge if self.info else True
        await self.push_screen(BadgeScreen(locked_for=person.name, allow_typed=allow))

    async def on_event(self, event: events.Event) -> None:
        """The one place that sees every key first: idle timer, then scanner detection.

        Typing reaches the focused Input at once; the wedge takes a scan's head back out of it.
        """
        if isinstance(event, events.InputEvent | events.Paste):
            self._last_input = time.monotonic()
            if self.collector is not None:
                self.collector.used()
        wedged = isinstance(event, events.Key | events.Paste) and not event.is_forwarded
        # The scanner test screen times every key itself (RAW_KEYS).
        if wedged and not getattr(self.screen, "RAW_KEYS", False):
            assert isinstance(event, events.Key | events.Paste)
            if self._scan_gate.closed:
                self._scan_gate.hold(event)  # behind a scan the screen has not acted on yet
            else:
                await self._wedge_event(event)
            return
        await super().on_event(event)

    async def _wedge_event(self, event: events.Key | events.Paste) -> None:
        if isinstance(event, events.Key):
            outcome = await self.wedge.feed(event, super().on_event, self.focused)
        else:
            outcome = await self.wedge.paste(event, super().on_event, self.focused)
        await self._settle(outcome)

    async def _settle(self, outcome: Outcome) -> None:
        """Act on the scans the wedge completed and re-arm its timer for what it still holds."""
        for scan in outcome.scans:
            self.route_scan(scan)
        if self._wedge_timer is not None:
            self._wedge_timer.cancel()
            self._wedge_timer = None
        wait = self.wedge.seconds_to_deadline()
        if wait is not None:
            # Re-armed on every key: the event loop's own timer, not a Textual Timer (a task
            # each). The tick is queued behind the keys already queued, so it sees them first.
            self._wedge_timer = asyncio.get_running_loop().call_later(
                wait, self.call_later, self._wedge_tick
            )

    async def _wedge_tick(self) -> None:
        # The handle in _wedge_timer may be a newer one (a key came between the timer and this
        # tick): _settle replaces it, so it is left for _settle to cancel.
        await self._settle(await self.wedge.poll(super().on_event))

    # --- scans ------------------------------------------------------------------------------------

    def route_scan(self, scan: Scan) -> None:
        """A complete scan goes to the screen on top as a message (`Scanned`); what no screen
        takes bubbles back here (`on_scanned`). An unreadable read is said, not routed."""
        if not scan.complete:
            unreadable = self.wedge.unreadable_message(scan)
            if unreadable is not None:
                self._say(unreadable, "warning")
            return
        from kiosk.messages import Scanned
        from kiosk.scanning import classify

        self.screen.post_message(Scanned(classify(scan.text, self.scan_rules)))
        self._scan_gate.close_behind(self.screen)

    def on_scanned(self, message: Scanned) -> None:
        """A scan no screen took: a badge signs in, a traveler opens, anything else says why
        it has no use here."""
        found = message.found
        if found.kind == "badge":
            self.badge_in(found.value)
        elif found.kind == "traveler":
            self.open_traveler(found.value)
        elif found.kind in ("tool", "material"):
            self._say(f"Scanned {found.kind} {found.value}: open a traveler step first.", "warning")
        else:
            reason = found.reason or f"a {found.kind} label ({found.value}) has no use here"
            self._say(f"Scan not accepted: {reason}", "warning")

    # --- travelers --------------------------------------------------------------------------------

    @work(exclusive=True, group="open")
    async def open_traveler(self, number: str) -> None:
        from kiosk.screens.traveler import TravelerScreen, read_for_work

        shown = self.get_screen("traveler") if self.is_screen_installed("traveler") else None
        if self.person is None or isinstance(self.screen, BadgeScreen):  # locked: badge first
            self._say("Scan your badge first.", "warning")
            return
        if shown is not None and shown in self.screen_stack and shown is not self.screen:
            self._say("Finish or close the prompt first, then scan the traveler.", "warning")
            return
        from kiosk.screens.queue import QueueScreen

        row = self.screen.row_of(number) if isinstance(self.screen, QueueScreen) else None
        try:
            traveler, operation = await read_for_work(self.link, number, row)
        except BackendError as exc:
            self._say(exc.detail, "error")
            return
        # One traveler screen, kept installed: a scan fills it in place instead of composing a
        # new one (most of scan -> painted was building the screen; scripts/bench_interaction.py).
        if shown is None:
            shown = TravelerScreen(traveler, operation)
            self.install_screen(shown, "traveler")
        else:
            await cast(TravelerScreen, shown).open(traveler, operation)
        if shown is not self.screen:
            await self.push_screen(shown)

    def drafts_for(self, step: Step) -> dict[int, str]:
        return self.state.drafts_for(step)

    def forget_draft(self, item_id: int) -> None:
        self.state.recorded(item_id)

    def on_data_item_entry_changed(self, event: DataItemEntry.Changed) -> None:
        """Every change to a value field, from whichever screen: the draft follows at once."""
        self.state.typed(event.item.id, event.value)

    def note_revisions(
        self,
        traveler: Traveler,
        *,
        acknowledge: bool,
        on_acknowledge: Callable[[], None] | None = None,
    ) -> None:
        """Tell the operator when a step's instructions changed revision since they saw it.
        A redline (a change issued while the step was in work) is acknowledged as an action
        (`on_acknowledge`), recorded with who, when and where."""
        changed = self.state.revision_changes(traveler)
        if changed and not acknowledge:
            from kiosk.screens.prompt import ChoiceScreen

            redlined = on_acknowledge is not None and any(s.redlines for s in traveler.steps)

            def read(_choice: str | None) -> None:
                if redlined and on_acknowledge is not None:
                    on_acknowledge()
                else:
                    self._say("New revision acknowledged.", "ok")

            self.push_screen(
                ChoiceScreen(
                    "Instructions changed",
                    "Read the new instructions before you continue:\n" + "\n".join(changed),
                    [("ack", "I have read the new revision")],
                    cancellable=False,
                ),
                read,
            )

    # --- refusals and admin -----------------------------------------------------------------------

    def action_refused(self) -> None:
        from kiosk.screens.refused import RefusedScreen  # rarely needed: not on the start path

        if self._link is None:  # the refused actions are the link's outbox: not open yet
            self._say("One moment: the station is still connecting.", "info")
            return
        if not isinstance(self.screen, RefusedScreen):
            self.push_screen(RefusedScreen(self.link), lambda _: self.refresh_status())

    def action_admin_console(self) -> None:
        from kiosk.screens.sign_off import SignOffScreen

        if self._link is None:  # the console needs the server's session: nothing to open yet
            self._say("One moment: the station is still connecting.", "info")
            return

        # An admin's badge + PIN opens the admin console; a supervisor's or quality's, the live
        # board: one session route serves both, and every admin route also checks the role.
        def opened(session: AdminSession | None) -> None:
            from kiosk import rules

            if session is not None and not rules.has_role(session.admin, rules.ADMIN_ROLES):
                from kiosk.screens.board import BoardScreen

                self.push_screen(BoardScreen(self.client, session.token, session.admin))
            elif session is not None:
                from kiosk.screens.admin_console import AdminConsoleScreen  # TabbedContent: ~15 ms

                console = AdminConsoleScreen(
                    self.client, session.token, session.admin.name, self.info
                )
                self.push_screen(console)

        summary = "Stations, holds, NCRs, locked people, enrollment codes, scanner test."
        prompt = SignOffScreen("Admin console", summary, "approved", self.client.board_session)
        self.push_screen(prompt, opened)

    # --- lockdown ---------------------------------------------------------------------------------

    def action_admin_exit(self) -> None:
        from kiosk.screens.sign_off import SignOffScreen

        def confirmed(admin: Person | None) -> None:
            if admin is not None:
                lifecycle.begin("admin exit")
                self.exit(0)

        prompt = SignOffScreen(
            "Exit the station (admin)", "Closes the station app.", "approved", self._admin
        )
        self.push_screen(prompt, confirmed)

    async def _admin(self, creds: Credentials) -> Person:
        """Badge + PIN of an admin: checked by the server, or offline from the credential cache."""
        await self.until_connected()  # F12 pressed while the station still connects
        from kiosk import rules

        person = (await self.link.identify(creds)).signer
        if not rules.has_role(person, rules.ADMIN_ROLES):
            raise rules.Refusal(
                "role_not_allowed", f"{person.name} is not an admin; the station stays open.", 403
            )
        return person


def _load_behind_the_badge_screen() -> None:
    for name in BEHIND_THE_BADGE_SCREEN:
        importlib.import_module(name)


async def in_daemon_thread(call: Callable[[], T]) -> T:
    """asyncio.to_thread, but in a daemon thread of its own: a station stopped while it still
    waits for its server or keyring must not wait for them on the way out (asyncio.run joins the
    default executor's threads when it ends, for as long as they take)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(cast(T, result))

    def run() -> None:
        try:
            result, error = call(), None
        except BaseException as exc:  # handed to the awaiting task, raised there
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=getattr(call, "__name__", "start-up"), daemon=True).start()
    return await done
