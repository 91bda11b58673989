"""The message line: the last thing the station has to say, in words and a symbol, never colour alone."""

from __future__ import annotations

from typing import Literal

from textual.widgets import Static

from kiosk.themes.console import shown

Severity = Literal["ok", "info", "warning", "error"]
SYMBOLS: dict[Severity, str] = {"ok": "✔", "info": "ℹ", "warning": "!", "error": "✘"}


class MessageLine(Static):
    DEFAULT_CSS = """
    MessageLine {
        height: auto;
        max-height: 3;
        padding: 0 1;
        &.-ok { color: $success; }
        &.-warning { color: $warning; text-style: bold; }
        &.-error { color: $error; text-style: bold; }
    }
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's keyword for every widget
        classes: str | None = None,
    ) -> None:
        # Messages quote what was scanned or typed ("Material lot [X] ..."): read as markup,
        # brackets vanished and "[/]" raised an error that closed the station.
        super().__init__(markup=False, name=name, id=id, classes=classes)

    def say(self, text: str, severity: Severity = "info") -> None:
        for name in SYMBOLS:
            self.set_class(name == severity, f"-{name}")
        self.update(f"{shown(SYMBOLS[severity])} {text}" if text else "")

    def clear(self) -> None:
        self.say("")
