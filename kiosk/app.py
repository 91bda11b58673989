"""KioskApp: the station. Screen stack, who is signed in, idle lock, scan routing, lockdown."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.timer import Timer

from kiosk import rules, themes
from kiosk.client import BackendError, ExecutionClient
from kiosk.client.embedded import EmbeddedBackend
from kiosk.client.heartbeat import heartbeat
from kiosk.client.link import StationLink
from kiosk.config import StationSettings
from kiosk.drafts import Drafts, Revisions
from kiosk.scanning import DEFAULT_RULES, Scan, ScanRules, classify
from kiosk.screens.badge import BadgeScreen
from kiosk.screens.queue import QueueScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.screens.traveler import TravelerScreen
from kiosk.wedge import Outcome, WedgeInput, scanner_settings
from kiosk.widgets.status_bar import StatusBar
from kiosk.wire import (
    AdminSession,
    Credentials,
    ItemKind,
    Person,
    StationInfo,
    Step,
    Traveler,
)

HEALTH_INTERVAL = 5.0
HEARTBEAT_INTERVAL = 30.0


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

    person: reactive[Person | None] = reactive(None, init=False)
    """Who is signed in at this station; None on the badge screen."""
    online: reactive[bool | None] = reactive(None, init=False)
    """Whether the backend answered its last health check."""

    def __init__(
        self,
        settings: StationSettings,
        server_url: str,
        token: str | None,
        *,
        clock: Callable[[], datetime] | None = None,
        embedded: EmbeddedBackend | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.embedded = embedded
        client = ExecutionClient(server_url, token, timeout=settings.request_timeout)
        self.link = StationLink(client, settings.data_dir, on_change=self.refresh_status)
        self.info: StationInfo | None = None
        self._started = time.monotonic()
        self.clock = clock or (lambda: datetime.now().astimezone())
        self._idle: Timer | None = None
        self._last_input = time.monotonic()
        self.wedge = WedgeInput()
        self.scan_rules: ScanRules = DEFAULT_RULES
        self._wedge_timer: Timer | None = None
        self.drafts = Drafts()
        self.revisions = Revisions()
        for theme in themes.THEMES.values():
            self.register_theme(theme)
        self.theme = themes.DEFAULT_THEME

    @property
    def client(self) -> ExecutionClient:
        return self.link.client

    @property
    def work_center(self) -> str:
        return self.info.work_center if self.info else self.settings.work_center

    # --- start and stop ---------------------------------------------------------------------------

    async def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            # Textual handles neither: without this a `systemctl stop` or a dropped SSH session
            # would kill the station without restoring the terminal.
            loop.add_signal_handler(sig, self.exit)
        await self.push_screen(BadgeScreen(allow_typed=True))
        self.set_interval(1.0, self._tick)
        self.set_interval(HEALTH_INTERVAL, self.check_health)
        self.set_interval(HEARTBEAT_INTERVAL, self.send_heartbeat)
        self.link.start()
        self.load_station()

    async def on_unmount(self) -> None:
        await self.link.close()

    @work(exclusive=True, group="station")
    async def load_station(self) -> None:
        """The station's config from the server (or, offline, as last seen): theme, idle, scanner."""
        try:
            self.info = await self.link.station()
        except BackendError as exc:
            self._say(exc.detail, "error")
            self.refresh_status()
            return
        self.theme = themes.resolve(self.info.config.theme)
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
        if healthy and self.info is None:
            self.load_station()

    async def _restart_embedded(self) -> bool:
        """The station's own server died: start it again and carry on where the outbox stands."""
        assert self.embedded is not None
        try:
            url, token = await asyncio.to_thread(self.embedded.restart)
        except BackendError as exc:
            self._say(exc.detail, "error")
            return False
        timeout = self.settings.request_timeout
        await self.link.reconnect(ExecutionClient(url, token, timeout=timeout))
        self._say("The station's own server had stopped; it was restarted.", "warning")
        return await self.client.healthy()

    @work(exclusive=True, group="heartbeat")
    async def send_heartbeat(self) -> None:
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
        except BackendError:
            return  # the health check reports the outage; a heartbeat is never worth a message
        if self.info is not None and answer.config_version != self.info.config_version:
            self.load_station()  # the plant changed this station's config: take it now

    # --- status bar -------------------------------------------------------------------------------

    def watch_person(self) -> None:
        self.refresh_status()

    def refresh_status(self) -> None:
        self.online = self.link.online
        station = self.info.name if self.info else self.settings.station_name
        who = "nobody signed in"
        if self.person is not None:
            who = f"{self.person.name} ({', '.join(r.value for r in self.person.roles)})"
        counts = self.link.outbox.counts()  # one read for every bar on the stack
        for screen in self.screen_stack:
            for bar in screen.query(StatusBar):
                bar.station = f"{station} · {self.work_center}"
                bar.person = who
                bar.online = self.online
                bar.waiting = counts.get("pending", 0)
                bar.refused = counts.get("refused", 0)
                bar.config_version = self.info.config_version if self.info else None
                bar.clock = f"{self.clock():%H:%M}"

    def _tick(self) -> None:
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
        try:
            person = await self.link.login(badge)
        except BackendError as exc:
            self._say(exc.detail, "error")
            return
        same = self.person is not None and self.person.id == person.id
        if same and isinstance(self.screen, BadgeScreen) and len(self.screen_stack) > 2:
            self.pop_screen()  # unlock: back to exactly where this person left off
        else:
            await self._reset_to_badge_screen()
            self.person = person
            await self.push_screen(QueueScreen())
        self.start_idle_timer()
        self._say(f"Signed in: {person.name}.", "ok")

    async def _reset_to_badge_screen(self) -> None:
        for screen in self.screen_stack[2:]:
            if isinstance(screen, TravelerScreen):
                screen.save_drafts()
        while len(self.screen_stack) > 2:
            await self.pop_screen()

    async def action_sign_out(self) -> None:
        await self._reset_to_badge_screen()
        self.person = None
        if self._idle is not None:
            self._idle.stop()
        self._say("Signed out.", "ok")

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

    def lock_station(self) -> None:
        """Idle too long: cover everything with the badge screen; unsaved entries stay put."""
        if self.person is None or isinstance(self.screen, BadgeScreen):
            return
        for screen in self.screen_stack:
            if isinstance(screen, TravelerScreen):
                screen.save_drafts()
        allow = self.info.config.allow_typed_badge if self.info else True
        self.push_screen(BadgeScreen(locked_for=self.person.name, allow_typed=allow))

    async def on_event(self, event: events.Event) -> None:
        """The one place that sees every key first: idle timer, then scanner detection."""
        if isinstance(event, events.InputEvent):
            self._last_input = time.monotonic()
        if isinstance(event, events.Key) and not event.is_forwarded:
            if getattr(self.screen, "RAW_KEYS", False):
                await super().on_event(event)  # the scanner test screen times every key itself
                return
            await self._settle(self.wedge.feed(event))
            return
        await super().on_event(event)

    async def _settle(self, outcome: Outcome) -> None:
        for key in outcome.replay:
            await super().on_event(key)
        for scan in outcome.scans:
            self.route_scan(scan)
        if self._wedge_timer is not None:
            self._wedge_timer.stop()
            self._wedge_timer = None
        wait = self.wedge.seconds_to_deadline()
        if wait is not None:
            self._wedge_timer = self.set_timer(wait, self._wedge_tick)

    async def _wedge_tick(self) -> None:
        self._wedge_timer = None
        await self._settle(self.wedge.poll())

    # --- scans ------------------------------------------------------------------------------------

    def route_scan(self, scan: Scan) -> None:
        """A scan goes where it means something: badge, traveler, tool or lot, else says why not."""
        if not scan.complete:
            self._say("Unreadable scan: the reader stopped mid-code. Scan again.", "warning")
            return
        found = classify(scan.text, self.scan_rules)
        if found.kind == "badge":
            if isinstance(self.screen, SignOffScreen):
                self.screen.fill_badge(found.value)
            else:
                self.badge_in(found.value)
        elif found.kind == "traveler":
            self.open_traveler(found.value)
        elif found.kind in ("tool", "material"):
            kind = ItemKind.TOOL if found.kind == "tool" else ItemKind.MATERIAL
            if isinstance(self.screen, TravelerScreen):
                self.screen.fill_scan(kind, found.value)
            else:
                self._say(
                    f"Scanned {found.kind} {found.value}: open a traveler step first.", "warning"
                )
        else:
            reason = found.reason or f"a {found.kind} label ({found.value}) has no use here"
            self._say(f"Scan not accepted: {reason}", "warning")

    # --- travelers --------------------------------------------------------------------------------

    @work(exclusive=True, group="open")
    async def open_traveler(self, number: str) -> None:
        if self.person is None:
            self._say("Scan your badge first.", "warning")
            return
        try:
            traveler = await self.link.traveler(number)
        except BackendError as exc:
            self._say(exc.detail, "error")
            return
        while isinstance(self.screen, TravelerScreen):
            await self.pop_screen()
        await self.push_screen(TravelerScreen(traveler))

    def drafts_for(self, step: Step) -> dict[int, str]:
        return {} if self.person is None else self.drafts.for_step(self.person.id, step)

    def keep_drafts(self, step: Step, values: dict[int, str]) -> None:
        if self.person is not None:
            self.drafts.keep(self.person.id, step, values)

    def forget_draft(self, item_id: int) -> None:
        if self.person is not None:
            self.drafts.forget(self.person.id, item_id)

    def note_revisions(self, traveler: Traveler, *, acknowledge: bool) -> None:
        """Tell the operator when a step's instructions changed revision since they saw it."""
        changed = self.revisions.changes(traveler)
        if changed and not acknowledge:
            from kiosk.screens.prompt import ChoiceScreen

            self.push_screen(
                ChoiceScreen(
                    "Instructions changed",
                    "Read the new instructions before you continue:\n" + "\n".join(changed),
                    [("ack", "I have read the new revision")],
                    cancellable=False,
                ),
                lambda _choice: self._say("New revision acknowledged.", "ok"),
            )

    # --- refusals and admin -----------------------------------------------------------------------

    def action_refused(self) -> None:
        from kiosk.screens.refused import RefusedScreen  # rarely needed: not on the start path

        if not isinstance(self.screen, RefusedScreen):
            self.push_screen(RefusedScreen(self.link), lambda _: self.refresh_status())

    def action_admin_console(self) -> None:
        def opened(session: AdminSession | None) -> None:
            if session is not None:
                from kiosk.screens.admin_console import AdminConsoleScreen  # TabbedContent: ~15 ms

                console = AdminConsoleScreen(
                    self.client, session.token, session.admin.name, self.info
                )
                self.push_screen(console)

        summary = "Stations, holds, NCRs, locked people, enrollment codes, scanner test."
        prompt = SignOffScreen("Admin console", summary, "approved", self.client.admin_session)
        self.push_screen(prompt, opened)

    # --- lockdown ---------------------------------------------------------------------------------

    def action_admin_exit(self) -> None:
        def confirmed(admin: Person | None) -> None:
            if admin is not None:
                self.exit(0)

        prompt = SignOffScreen(
            "Exit the station (admin)", "Closes the station app.", "approved", self._admin
        )
        self.push_screen(prompt, confirmed)

    async def _admin(self, creds: Credentials) -> Person:
        """Badge + PIN of an admin: checked by the server, or offline from the credential cache."""
        person = (await self.link.identify(creds)).signer
        if not rules.has_role(person, rules.ADMIN_ROLES):
            raise rules.Refusal(
                "role_not_allowed", f"{person.name} is not an admin; the station stays open.", 403
            )
        return person
