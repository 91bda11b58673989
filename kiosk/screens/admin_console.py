"""The admin console: stations with drift and silence, holds, open NCRs, refused actions,
locked people and enrollment codes. Works the same in `kiosk admin` over SSH and at a station.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from kiosk.client import BackendError, ExecutionClient
from kiosk.screens.base import MessageScreen, tabbed_tables
from kiosk.screens.prompt import PromptScreen
from kiosk.screens.sign_off import SignOffScreen
from kiosk.themes.console import shown
from kiosk.wire import Credentials, Person, PlantOverview, StationInfo, StationStatus

REFRESH_SECONDS = 5.0

COLUMNS: dict[str, tuple[str, ...]] = {
    "stations": (
        "Station",
        "Work center",
        "State",
        "App",
        "Config",
        "Theme",
        "Terminal",
        "Waiting",
        "Refused",
        "Last seen",
    ),
    "holds": ("Traveler", "Reason", "Placed by", "Since", "NCR"),
    "ncrs": ("NCR", "Traveler", "Step", "Defect", "Qty", "Description", "Raised by"),
    "refused": ("Station", "Refused action and the server's reason"),
    "people": ("Person", "Roles"),
    "codes": ("Station", "Expires", "Used"),
    "security": ("When", "Station", "What", "Detail"),
    "andon": ("Request", "Traveler", "Step", "Reason", "Raised by", "Since", "Answered"),
}
TABS = (
    ("stations", "Stations"),
    ("holds", "Holds"),
    ("andon", "Help/stop"),
    ("ncrs", "Open NCRs"),
    ("refused", "Refused actions"),
    ("people", "Locked people"),
    ("security", "Security"),
    ("codes", "Enrollment codes"),
)


SECURITY_KINDS = {
    "person_locked": "! lock-out",
    "unknown_badges": "! unknown badges",
    "offline_signature": "offline signature",
}


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def station_state(station: StationStatus) -> str:
    """In words and symbols: an admin over SSH may see no colour at all."""
    if not station.enrolled:
        return "· not enrolled"
    if station.silent:
        return "✘ SILENT"
    if station.drift:
        return "! DRIFT: " + "; ".join(station.drift)
    return shown("✔ ok")


class AdminConsoleScreen(MessageScreen):
    BINDINGS = [
        Binding("f4", "refresh", "Refresh"),
        Binding("f6", "unlock", "Unlock person"),
        Binding("f7", "add_station", "Add station"),
        Binding("f9", "scanner_test", "Scanner test"),
        Binding("escape", "close", "Close"),
    ]

    DEFAULT_CSS = """
    AdminConsoleScreen {
        & .heading {
            background: $primary; color: $foreground; text-style: bold; padding: 0 1;
            height: 1; text-wrap: nowrap; text-overflow: ellipsis;
        }
        & TabbedContent { height: 1fr; }
        & TabPane { padding: 0; }
        & DataTable { height: 1fr; }
    }
    """

    def __init__(
        self,
        client: ExecutionClient,
        session: str,
        admin_name: str,
        station: StationInfo | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.session = session
        self.admin_name = admin_name
        self.station = station
        self.overview: PlantOverview | None = None

    def compose(self) -> ComposeResult:
        heading = Static(
            f"Admin console · {self.admin_name}", classes="heading", id="admin-heading"
        )
        yield from tabbed_tables([heading], TABS, COLUMNS)

    def on_mount(self) -> None:
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self.action_refresh)

    @work(exclusive=True, group="overview")
    async def action_refresh(self) -> None:
        try:
            overview = await self.client.overview(self.session)
        except BackendError as exc:
            self.say(exc.detail, "error")
            return
        self.overview = overview
        self.show(overview)

    def show(self, overview: PlantOverview) -> None:
        self._fill("stations", [self._station_row(s) for s in overview.stations])
        self._fill(
            "holds",
            [
                (h.traveler, h.reason, h.placed_by, _when(h.placed_at), h.ncr_number or "-")
                for h in overview.holds
            ],
        )
        # Help and stop requests: answered from the board (`kiosk board`), listed here too.
        self._fill(
            "andon",
            [
                (
                    r.kind.upper(),
                    r.traveler,
                    r.step,
                    r.reason,
                    f"{r.raised_by} at {r.station}",
                    _when(r.raised_at),
                    f"seen by {r.acknowledged_by}" if r.acknowledged_by else "-",
                )
                for r in overview.andon
            ],  # fmt: skip
        )
        self._fill(
            "ncrs",
            [
                (
                    o.ncr.number,
                    o.traveler,
                    o.ncr.step_number or "-",
                    o.ncr.defect_code,
                    str(o.ncr.quantity),
                    o.ncr.description,
                    o.ncr.raised_by,
                )
                for o in overview.open_ncrs
            ],
        )
        # One row per refused action the stations reported; they are resolved at the station (F9).
        refused = [
            (s.name, line)
            for s in overview.stations
            if s.heartbeat
            for line in (s.heartbeat.refused_actions or (f"{s.heartbeat.outbox_refused} refused",))
            if s.heartbeat.outbox_refused
        ]
        self._fill("refused", refused)
        self._fill(
            "people",
            [(p.name, ", ".join(r.value for r in p.roles)) for p in overview.locked_people],
            keys=[str(p.id) for p in overview.locked_people],
        )
        # Lock-outs, bursts of unknown badges, and every offline signature accepted on a station's
        # cache: what an admin looks at when a badge or a station may be in the wrong hands.
        self._fill(
            "security",
            [
                (_when(e.at), e.station or "-", SECURITY_KINDS[e.kind], e.detail)
                for e in overview.security
            ],
        )
        self._fill(
            "codes",
            [
                (c.station, _when(c.expires_at), "used" if c.used else "open")
                for c in overview.enrollment_codes
            ],
        )
        problems = sum(1 for s in overview.stations if s.enrolled and (s.silent or s.drift))
        # Installs that are not identical are named in words too (the station's row says which
        # lock): an admin over SSH may see no colour at all.
        other_lock = sum(1 for s in overview.stations if s.enrolled and s.other_lock)
        locks = f" ({other_lock} on another lock)" if other_lock else ""
        # The summary lives in the heading, so the message line keeps the last action's result.
        self.query_one("#admin-heading", Static).update(
            f"Admin console · {self.admin_name} · {len(overview.stations)} stations, "
            f"{problems} need attention{locks} · {len(overview.holds)} holds · "
            f"{len(overview.open_ncrs)} open NCRs · server {overview.server_version}"
        )

    def _station_row(self, s: StationStatus) -> tuple[str, ...]:
        beat = s.heartbeat
        return (
            s.name,
            s.work_center,
            station_state(s),
            beat.app_version if beat else "-",
            f"v{beat.config_version}" if beat else f"v{s.config_version}",
            beat.theme if beat else s.theme,
            f"{beat.terminal} {beat.color_system}" if beat else "-",
            str(beat.outbox_waiting) if beat else "-",
            str(beat.outbox_refused) if beat else "-",
            _when(s.last_seen),
        )

    def _fill(
        self, table_id: str, rows: Sequence[tuple[str, ...]], keys: list[str] | None = None
    ) -> None:
        table = self.query_one(f"#{table_id}", DataTable)
        table.clear()
        for n, row in enumerate(rows):
            table.add_row(*row, key=keys[n] if keys else None)

    # --- actions ----------------------------------------------------------------------------------

    def action_unlock(self) -> None:
        table = self.query_one("#people", DataTable)
        if self.overview is None or not self.overview.locked_people:
            self.say("Nobody is locked out.", "info")
            return
        person = self.overview.locked_people[
            min(table.cursor_row, len(self.overview.locked_people) - 1)
        ]

        def unlocked(done: Person | None) -> None:
            if done is not None:
                self.say(f"{done.name} unlocked.", "ok")
                self.action_refresh()

        async def unlock(creds: Credentials) -> Person:
            return await self.client.unlock(person.id, creds)  # the server checks the signer

        prompt = SignOffScreen(
            f"Unlock {person.name}", "Resets the PIN lock-out.", "approved", unlock
        )
        self.app.push_screen(prompt, unlocked)

    def action_add_station(self) -> None:
        def named(answer: str | None) -> None:
            if answer:
                name, _, center = answer.partition(" ")
                if not center.strip():
                    self.say("Give a name and a work center, e.g. 'ST-07 ASSEMBLY'.", "warning")
                    return
                self._add_station(name.strip().upper(), center.strip().upper())

        self.app.push_screen(
            PromptScreen("Add a station", "Station name and work center, e.g. ST-07 ASSEMBLY:"),
            named,
        )

    @work(exclusive=True, group="admin-action")
    async def _add_station(self, name: str, work_center: str) -> None:
        try:
            code = await self.client.add_station(self.session, name, work_center)
        except BackendError as exc:
            self.say(exc.detail, "error")
            return
        self.say(
            f"{name}: enrollment code {code} (valid 24 h, once). On the station: kiosk enroll --code {code}",
            "ok",
        )
        self.action_refresh()

    def action_scanner_test(self) -> None:
        if self.station is None:
            self.say("The scanner test runs at a station, with the scanner attached.", "warning")
            return
        from kiosk.screens.scanner_test import ScannerTestScreen

        self.app.push_screen(ScannerTestScreen(self.client, self.session, self.station))

    def action_close(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.exit()
