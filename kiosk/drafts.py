"""The station's state between screens, in one place: who is signed in, the values each person
typed but has not recorded (per person, so the same badge finds them again after an idle lock or
after someone else took over mid-step), and the revision of every step's instructions as last
shown (so a change must be acknowledged). It keeps itself current: every keystroke into a value
field lands here as it happens (`StationSession.typed`), so no screen has to remember to save it
before it is closed, locked or redrawn. Pure: no Textual."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: the session is made before the wire models are loaded
    from kiosk.client.link import PersonSession
    from kiosk.wire import Person, Step, Traveler


class Drafts:
    """Typed, unrecorded values per (person, data item)."""

    def __init__(self) -> None:
        self._values: dict[tuple[int, int], str] = {}

    def for_step(self, person_id: int, step: Step) -> dict[int, str]:
        return {
            i.id: self._values[(person_id, i.id)]
            for i in step.items
            if (person_id, i.id) in self._values
        }

    def put(self, person_id: int, item_id: int, value: str) -> None:
        """The field's value now; an empty field has no draft."""
        if value.strip():
            self._values[(person_id, item_id)] = value
        else:
            self._values.pop((person_id, item_id), None)

    def forget(self, person_id: int, item_id: int) -> None:
        self._values.pop((person_id, item_id), None)


class Revisions:
    """The revision of each step's instructions as last shown on this station."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int], str] = {}

    def changes(self, traveler: Traveler) -> list[str]:
        """Steps whose revision differs from the one last shown, in words; then remember these."""
        changed = []
        for step in traveler.steps:
            key = (traveler.number, step.id)
            seen = self._seen.get(key)
            if seen is not None and seen != step.revision:
                changed.append(f"step {step.number}: rev {seen} → rev {step.revision}")
                # An engineering change issued while the step was in work: say which and why.
                changed.extend(f"  {r.change}: {r.reason}" for r in step.redlines)
            self._seen[key] = step.revision
        return changed


class StationSession:
    """Who is signed in (with what proves them), their drafts, the revisions shown."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._signed_in: PersonSession | None = None
        self.drafts = Drafts()
        self.revisions = Revisions()
        self.on_change = on_change or (lambda: None)
        """Told when the person changes (the status bar says who is signed in)."""

    @property
    def signed_in(self) -> PersonSession | None:
        """The person's session with its proofs; None on the badge screen."""
        return self._signed_in

    @signed_in.setter
    def signed_in(self, session: PersonSession | None) -> None:
        self._signed_in = session
        self.on_change()

    @property
    def person(self) -> Person | None:
        return None if self._signed_in is None else self._signed_in.person

    def typed(self, item_id: int, value: str) -> None:
        """A value field changed: the draft follows it at once, under the person typing."""
        if self.person is not None:
            self.drafts.put(self.person.id, item_id, value)

    def drafts_for(self, step: Step) -> dict[int, str]:
        return {} if self.person is None else self.drafts.for_step(self.person.id, step)

    def recorded(self, item_id: int) -> None:
        """A value was recorded: its field starts empty again."""
        if self.person is not None:
            self.drafts.forget(self.person.id, item_id)

    def revision_changes(self, traveler: Traveler) -> list[str]:
        return self.revisions.changes(traveler)
