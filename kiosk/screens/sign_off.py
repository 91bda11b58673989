"""The sign-off prompt: shows what is being signed and its meaning, then asks for badge + PIN.

Both identification components are asked at every signing (21 CFR 11.200); nothing is remembered
between signatures. The prompt checks them itself (through the caller's `check`): a wrong PIN or an
unknown badge is said inside the prompt, which stays open for another try.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from kiosk import rules
from kiosk.client import BackendError
from kiosk.messages import Scanned
from kiosk.screens.dialog import dialog_css
from kiosk.themes.console import shown
from kiosk.wire import Credentials

T = TypeVar("T")
Check = Callable[[Credentials], Awaitable[T]]


class SignOffScreen(ModalScreen[T | None], Generic[T]):
    """Returns what `check` made of the badge + PIN (a signing proof, an admin session...),
    or None when cancelled with Esc."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = dialog_css(
        "SignOffScreen",
        extra="""
        & .meaning { text-style: bold; margin: 1 0; }
        & Input { margin: 0 0 1 0; }
        & .error { color: $error; text-style: bold; }""",
    )

    def __init__(self, heading: str, summary: str, meaning: str, check: Check[T]) -> None:
        super().__init__()
        self.heading = heading
        self.summary = summary
        self.meaning = meaning
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical():
            # The summary shows recorded values as typed: never read them as markup.
            yield Static(shown(f"✍ {self.heading}"), classes="heading", markup=False)
            yield Static(self.summary, markup=False)
            yield Static(
                f"By signing you declare this {self.meaning.upper()}. Scan or type your badge, "
                "then your PIN.",
                classes="meaning",
            )
            yield Static("Badge")
            yield Input(password=True, id="badge", placeholder="scan badge")
            yield Static("PIN")
            yield Input(
                password=True, id="pin", placeholder="PIN", restrict=r"[0-9]*", max_length=12
            )
            yield Static("", classes="error", id="error")

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False
        self.query_one("#badge", Input).focus()

    def forget(self) -> None:
        """Empty both fields: what was typed here must never complete a later signature."""
        for field in self.query(Input):
            field.value = ""

    def on_scanned(self, message: Scanned) -> None:
        """A badge scanned while the prompt is open is the signer's; other scans go on."""
        if message.kind == "badge":
            message.stop()
            self.fill_badge(message.value)

    def fill_badge(self, badge: str) -> None:
        """A badge scanned while the prompt is open lands here, then the PIN is asked."""
        self.query_one("#badge", Input).value = badge
        self.query_one("#pin", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        badge = self.query_one("#badge", Input).value.strip()
        pin = self.query_one("#pin", Input).value.strip()
        if event.input.id == "badge" and badge:
            self.query_one("#pin", Input).focus()
            return
        if not badge:
            self._error("Scan or type your badge first.")
            self.query_one("#badge", Input).focus()
            return
        if not pin:
            self._error("Enter your PIN.")
            self.query_one("#pin", Input).focus()
            return
        self._submit(Credentials(badge=badge, pin=pin))

    @work(exclusive=True, group="sign-off")
    async def _submit(self, creds: Credentials) -> None:
        self.query_one("#error", Static).update("… checking")
        try:
            result = await self.check(creds)
        except (BackendError, rules.Refusal) as refused:
            # Stay open: the PIN is cleared, the badge kept unless the badge itself was refused
            # (the usual mistake is the PIN; the answer does not say which, by design).
            self._error(refused.detail)
            pin = self.query_one("#pin", Input)
            pin.value = ""
            if refused.rule in ("badge_unknown", "person_locked"):
                self.query_one("#badge", Input).value = ""
                self.query_one("#badge", Input).focus()
            else:
                pin.focus()
            return
        self.dismiss(result)

    def _error(self, text: str) -> None:
        self.query_one("#error", Static).update(f"✘ {text}")

    def action_cancel(self) -> None:
        self.dismiss(None)
