"""What a station remembers between screens without telling the server: values typed but not yet
recorded (per person, so the same badge finds them again after an idle lock), and the revision of
every step's instructions as last shown (so a change must be acknowledged). Pure: no Textual."""

from __future__ import annotations

from kiosk.wire import Step, Traveler


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

    def keep(self, person_id: int, step: Step, values: dict[int, str]) -> None:
        for item in step.items:
            if item.id in values:
                self._values[(person_id, item.id)] = values[item.id]
            else:
                self._values.pop((person_id, item.id), None)

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
            self._seen[key] = step.revision
        return changed
