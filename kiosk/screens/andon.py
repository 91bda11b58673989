"""Help and stop requests (andon) from the traveler screen: choose help or stop, say why; the
request goes through the outbox like every action, and the station checks the same rule first
(kiosk.rules: a stop on a traveler already on hold, a second open request of the same kind).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from kiosk.screens.prompt import ChoiceScreen, PromptScreen
from kiosk.wire import RaiseAndon

if TYPE_CHECKING:
    from kiosk.screens.traveler import TravelerScreen

CHOICES = [
    ("help", "Help: call a supervisor to this step"),
    ("stop", "Stop: stop work here (the traveler goes on hold until a supervisor releases it)"),
]


def call_supervisor(screen: TravelerScreen) -> None:
    step, person = screen.step, screen.station.person
    if step is None or person is None:
        screen.say("Choose a step first.", "warning")
        return

    def asked(kind: Literal["help", "stop"], reason: str | None) -> None:
        if reason:
            action = RaiseAndon(
                actor_id=person.id,
                traveler=screen.traveler.number,
                step_id=step.id,
                andon=kind,
                reason=reason,
            )
            screen.send(action)  # the outbox's projection runs the shared rule first

    def chosen(choice: str | None) -> None:
        if choice in ("help", "stop"):
            kind: Literal["help", "stop"] = "help" if choice == "help" else "stop"
            screen.app.push_screen(
                PromptScreen(
                    f"{kind.title()} on step {step.number}",
                    "What is wrong? (at least 3 characters)",
                    min_length=3,
                ),
                lambda reason: asked(kind, reason),
            )

    screen.app.push_screen(
        ChoiceScreen(
            f"Call a supervisor: {screen.traveler.number} step {step.number}", "", CHOICES
        ),
        chosen,
    )
