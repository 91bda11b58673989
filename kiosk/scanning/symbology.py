"""AIM symbology identifiers (ISO/IEC 15424) at the start of a scan.

A scanner with "AIM ID" switched on puts three characters, ``]Xm``, in front of the
data: ``X`` says which barcode family was read and ``m`` is a modifier. ``]C1`` is a
GS1-128 label, ``]d2`` a GS1 DataMatrix, ``]E0`` an EAN-13. The kiosk uses it to
tell a GS1 label from an internal Code 128 traveler that happens to look similar.

This module also holds :class:`ScanParseError`, because it is the one module every
parser in the package imports; keeping the error here avoids import cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ScanParseError", "Symbology", "split_symbology"]


class ScanParseError(ValueError):
    """A scan was read but its content is unusable (bad check digit, payment card...).

    ``reason`` is a sentence an operator can act on. It never contains a badge
    number or a card number. ``code`` is a short machine tag ("check_digit",
    "payment_card", "parity", "bad_read", "format", "date", ...).
    """

    def __init__(self, reason: str, *, code: str = "format") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Symbology:
    """The symbology identifier found at the start of a scan."""

    code: str
    """The three characters as sent, e.g. ``"]C1"``."""

    name: str
    """What an engineer would call it, e.g. ``"GS1-128"``."""

    is_gs1: bool
    """True when the identifier itself says the data is GS1 (AIs or a GTIN)."""

    @property
    def carries_gtin_only(self) -> bool:
        """EAN/UPC and ITF-14 symbols hold a bare GTIN, not AI element strings."""
        return self.code[1] in "EI" and self.is_gs1


# Names per (family letter, modifier). Only the modifiers that change what the data
# *means* get their own entry; the rest fall back to the family name below.
_EXACT_NAMES: dict[str, tuple[str, bool]] = {
    "C1": ("GS1-128", True),
    "E0": ("EAN-13", True),
    # An add-on read on its own is not a GTIN, so it is not treated as GS1 data.
    "E1": ("EAN 2-digit add-on", False),
    "E2": ("EAN 5-digit add-on", False),
    "E3": ("EAN-13 with add-on", True),
    "E4": ("EAN-8", True),
    "I1": ("ITF-14", True),
    "d2": ("GS1 DataMatrix", True),
    "Q3": ("GS1 QR", True),
    "e0": ("GS1 DataBar", True),
    "e1": ("GS1 Composite", True),
    "e2": ("GS1 Composite", True),
    "J1": ("GS1 DotCode", True),
}

_FAMILY_NAMES: dict[str, str] = {
    "A": "Code 39",
    "B": "Telepen",
    "C": "Code 128",
    "D": "Code One",
    "E": "EAN/UPC",
    "F": "Codabar",
    "G": "Code 93",
    "H": "Code 11",
    "I": "Interleaved 2 of 5",
    "J": "DotCode",
    "K": "Code 16K",
    "L": "PDF417",
    "M": "MSI",
    "N": "Anker",
    "O": "Codablock",
    "P": "Plessey",
    "Q": "QR Code",
    "R": "Straight 2 of 5 (2-bar)",
    "S": "Straight 2 of 5 (3-bar)",
    "T": "Code 49",
    "U": "MaxiCode",
    "X": "Other barcode",
    "Z": "Non-barcode",
    "c": "Channel Code",
    "d": "Data Matrix",
    "e": "GS1 DataBar",
    "o": "OCR",
    "p": "PosiCode",
    "s": "SuperCode",
    "z": "Aztec",
}


def _lookup(family: str, modifier: str) -> Symbology | None:
    """Name a ``]Xm`` identifier, or None when ``X`` is not an AIM family letter."""
    exact = _EXACT_NAMES.get(family + modifier)
    code = f"]{family}{modifier}"
    if exact is not None:
        return Symbology(code=code, name=exact[0], is_gs1=exact[1])
    family_name = _FAMILY_NAMES.get(family)
    if family_name is None:
        return None
    return Symbology(code=code, name=family_name, is_gs1=False)


def split_symbology(raw: str) -> tuple[Symbology | None, str]:
    """Strip a leading AIM identifier and report it.

    Returns ``(symbology, data)``. When ``raw`` does not start with a valid
    identifier, the symbology is None and the data is ``raw`` unchanged: a code
    that merely begins with ``]`` is data, not an error. Never raises.
    """
    if len(raw) < 3 or raw[0] != "]":
        return None, raw
    modifier = raw[2]
    # AIM modifiers are one alphanumeric character; anything else means the "]"
    # was part of the data (or the keyboard layout mangled the identifier).
    if not (modifier.isascii() and modifier.isalnum()):
        return None, raw
    symbology = _lookup(raw[1], modifier)
    if symbology is None:
        return None, raw
    return symbology, raw[3:]
