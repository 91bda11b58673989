"""Spot a scanner and a station that use different keyboard layouts.

A wedge scanner sends *key positions* for the layout it is set to (usually US); the station
reads them with its own layout. On a French AZERTY station the digit row types ``&é"'(-è_çà``,
so ``TRV-1001`` arrives as ``TRV)&àà&``; on a German QWERTZ station ``-`` arrives as ``ß``, ``]``
as ``+`` and y/z swap (onScan.js #15, barcode-to-pc-server #166). The tables below read such
text back as the US scanner meant it. They only feed a diagnostic: a scan is never routed on
a guess.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["LAYOUTS", "LAYOUT_MISMATCH", "foreign_layout"]

LAYOUT_MISMATCH = "looks like the scanner and the station use different keyboard layouts"
"""The words the operator and the installer see (the scanner test and "Scan not accepted")."""

# Station character -> the US character the scanner sent, per station layout.
_AZERTY = str.maketrans(
    {
        "&": "1", "é": "2", '"': "3", "'": "4", "(": "5", "-": "6", "è": "7", "_": "8",
        "ç": "9", "à": "0", ")": "-", "°": "_",
        "a": "q", "q": "a", "z": "w", "w": "z", "A": "Q", "Q": "A", "Z": "W", "W": "Z",
        "m": ";", ",": "m", ";": ",", ":": ".", "!": "/", "M": ":", "?": "M",
        "1": "!", "2": "@", "3": "#", "4": "$", "5": "%", "6": "^", "7": "&", "8": "*",
        "9": "(", "0": ")", "$": "]", "ù": "'", "%": '"', "*": "\\", "²": "`",
        ".": "<", "/": ">", "§": "?",
    }
)  # fmt: skip
_QWERTZ = str.maketrans(
    {
        "z": "y", "y": "z", "Z": "Y", "Y": "Z", "ß": "-", "ü": "[", "+": "]", "ö": ";",
        "ä": "'", "#": "\\", "-": "/", "?": "_", "Ü": "{", "*": "}", "Ö": ":", "Ä": '"',
        "'": "|", "_": "?", ";": "<", ":": ">", '"': "@", "§": "#", "&": "^", "/": "&",
        "(": "*", ")": "(", "=": ")",
    }
)  # fmt: skip

LAYOUTS: dict[str, dict[int, str]] = {"AZERTY": _AZERTY, "QWERTZ": _QWERTZ}

# Characters a US-layout scanner never sends but a foreign station layout types.
_FOREIGN_ONLY = set("éèçàùü²§°ßöäÉÈÇÀÙÜÖÄ")


def foreign_layout(data: str, recognised: Callable[[str], bool]) -> str | None:
    """The station layout under which `data` reads as a code `recognised` accepts.

    Returns the layout name ("AZERTY", "QWERTZ"), "another layout" when the text only shows
    characters no US scanner sends, or None when the layouts look alike.
    """
    for name, table in LAYOUTS.items():
        meant = data.translate(table)
        if meant != data and recognised(meant):
            return name
    if any(c in _FOREIGN_ONLY for c in data):
        return "another layout"
    return None
