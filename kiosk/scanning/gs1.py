"""GS1 labels (GS1-128, GS1 DataMatrix, GS1 QR, EAN/UPC) read into AI fields.

All knowledge of Application Identifiers comes from the ``biip`` library: its AI
table is maintained from the GS1 General Specifications, so we never copy it.
This module only turns biip's result into plain ``ai -> value`` strings plus
dates, and turns biip's errors into sentences an operator can act on.

Variable-length fields (10 batch, 21 serial, 30 count, 240, 250...) must be ended
by a group separator when another field follows. Scanners send FNC1 as GS
(``\\x1d``, Ctrl+]) or, when configured so, as ``|``; both are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from kiosk.scanning.symbology import ScanParseError, Symbology, split_symbology

if TYPE_CHECKING:
    from biip.gs1_element_strings import GS1ElementString
    from biip.gs1_messages import GS1Message

__all__ = ["GS1_SEPARATORS", "GS1Label", "parse_gs1", "parse_gtin"]

GS1_SEPARATORS: tuple[str, ...] = ("\x1d", "|")
"""FNC1 as a scanner types it: GS, or ``|`` (not in the GS1 character set, so safe)."""

# Trailing keys a wedge may leave on the text: CR, LF, Tab, EOT.
_TERMINATOR_CHARS = "\r\n\t\x04"

# Which AIs hold a number with a GS1 check digit, and what the floor calls it.
_CHECKED_AIS: dict[str, str] = {"00": "SSCC", "01": "GTIN", "02": "GTIN", "03": "GTIN"}

_AI_IN_MESSAGE = re.compile(r"GS1 AI \((\d+)\)")


@dataclass(frozen=True)
class GS1Label:
    """The fields read from one GS1 label.

    ``fields`` maps the AI (``"01"``, ``"10"``, ``"17"``...) to its value as
    printed; ``dates`` holds the same date AIs (11, 13, 15, 17...) as dates, with
    biip's century rule and "day 00 = last day of month" applied.
    """

    fields: dict[str, str]
    dates: dict[str, date] = field(default_factory=dict)
    symbology: Symbology | None = None

    @property
    def gtin(self) -> str | None:
        """The GTIN-14 of the trade item (AI 01), check digit verified."""
        return self.fields.get("01")

    @property
    def sscc(self) -> str | None:
        """The pallet / logistic unit number (AI 00), check digit verified."""
        return self.fields.get("00")

    @property
    def lot(self) -> str | None:
        """The batch or lot number (AI 10)."""
        return self.fields.get("10")

    @property
    def serial(self) -> str | None:
        """The serial number (AI 21)."""
        return self.fields.get("21")

    @property
    def expiry(self) -> date | None:
        """The expiration date (AI 17)."""
        return self.dates.get("17")

    @property
    def production_date(self) -> date | None:
        """The production date (AI 11)."""
        return self.dates.get("11")

    def hri(self) -> str:
        """The label as printed under the barcode, e.g. ``(01)0950...(10)ABC``."""
        return "".join(f"({ai}){value}" for ai, value in self.fields.items())


def parse_gs1(raw: str, *, separators: tuple[str, ...] = GS1_SEPARATORS) -> GS1Label:
    """Read a GS1 label, with or without a leading AIM identifier.

    Accepts element strings with separators (``01...10ABC<GS>17...``), without
    them when only fixed-length fields precede the last variable one, and the
    printed form ``(01)...(10)...``. A bare EAN/UPC/ITF-14 under an ``]E``/``]I1``
    identifier becomes AI 01.

    Raises:
        ScanParseError: with an operator-readable reason (bad check digit,
            invalid date, not a GS1 label...).
    """
    symbology, data = split_symbology(raw)
    data = _trim(data, separators)
    if not data:
        raise ScanParseError("The GS1 label holds no data.", code="empty")
    if symbology is not None and symbology.carries_gtin_only:
        return GS1Label(fields={"01": parse_gtin(_drop_add_on(data))}, symbology=symbology)
    message = _parse_message(data, separators)
    fields, dates = _collect_fields(message)
    return GS1Label(fields=fields, dates=dates, symbology=symbology)


def parse_gtin(digits: str) -> str:
    """Check a bare GTIN-8/12/13/14 and return it as GTIN-14.

    Raises:
        ScanParseError: when it is not a GTIN or its check digit is wrong.
    """
    if len(digits) not in (8, 12, 13, 14) or not (digits.isascii() and digits.isdigit()):
        raise ScanParseError("This is not a GTIN: expected 8, 12, 13 or 14 digits.")
    from biip import ParseError
    from biip.gtin import Gtin

    try:
        return Gtin.parse(digits).as_gtin_14()
    except ParseError as error:
        reason = _checked_number_reason("GTIN", None, digits)
        raise ScanParseError(reason, code=_code(digits)) from error


def _trim(data: str, separators: tuple[str, ...]) -> str:
    """Drop terminators, outer spaces and outer separators (a leading FNC1 is legal).

    ``str.strip()`` with no argument would also do, but it treats GS as white
    space; being explicit keeps the intent readable.
    """
    return data.rstrip(_TERMINATOR_CHARS).strip(" " + "".join(separators))


def _drop_add_on(data: str) -> str:
    """``]E3`` sends EAN-13 followed by its 2- or 5-digit add-on; keep the EAN-13."""
    return data[:13] if len(data) in (15, 18) and data.isdigit() else data


def _parse_message(data: str, separators: tuple[str, ...]) -> GS1Message:
    """Let biip split the element strings; translate its errors for the operator."""
    # biip is imported on the first GS1 scan: its tables cost ~45 ms of every station start.
    from biip import ParseConfig, ParseError
    from biip.gs1_messages import GS1Message

    config = ParseConfig(separator_chars=separators)
    try:
        if data.startswith("("):
            return GS1Message.parse_hri(data, config=config)
        return GS1Message.parse(data, config=config)
    except ParseError as error:
        text = str(error)
        raise ScanParseError(_message_reason(text), code=_message_code(text)) from error
    except ValueError as error:  # biip's own guard on the separator configuration
        raise ScanParseError("The GS1 separator setting is invalid.", code="config") from error


def _collect_fields(message: GS1Message) -> tuple[dict[str, str], dict[str, date]]:
    """Flatten biip's element strings, refusing bad check digits and contradictions."""
    fields: dict[str, str] = {}
    dates: dict[str, date] = {}
    for element in message.element_strings:
        ai = element.ai.ai
        _refuse_bad_check_digit(element)
        # The GS1 spec allows an AI twice only with the same value; two different
        # lots on one label would make the material record ambiguous.
        if ai in fields and fields[ai] != element.value:
            raise ScanParseError(
                f"The label carries AI ({ai}) twice with different values.", code="conflict"
            )
        fields[ai] = element.value
        if element.date is not None:
            dates[ai] = element.date
    return fields, dates


def _refuse_bad_check_digit(element: GS1ElementString) -> None:
    """biip records (not raises) a bad GTIN/SSCC/GLN inside a message; we refuse it."""
    error = element.gtin_error or element.sscc_error or element.gln_error
    if error is None:
        return
    ai = element.ai.ai
    what = _CHECKED_AIS.get(ai, "GLN" if ai.startswith("41") else "number")
    raise ScanParseError(_checked_number_reason(what, ai, element.value), code=_code(element.value))


def _code(digits: str) -> str:
    """Tag a checked-number failure: a wrong check digit, or not a number at all."""
    return "check_digit" if _expected_check_digit(digits) is not None else "format"


def _expected_check_digit(digits: str) -> int | None:
    """The check digit ``digits`` should end with, when it is wrong; else None."""
    if len(digits) < 2 or not (digits.isascii() and digits.isdigit()):
        return None
    from biip.checksums import gs1_standard_check_digit

    expected = gs1_standard_check_digit(digits[:-1])
    return expected if expected != int(digits[-1]) else None


def _checked_number_reason(what: str, ai: str | None, digits: str) -> str:
    """Explain a refused GTIN/SSCC/GLN without echoing the whole number."""
    where = f" (AI {ai})" if ai else ""
    expected = _expected_check_digit(digits)
    if expected is None:
        return f"The {what}{where} on this label is not a valid {what}."
    return (
        f"The {what}{where} on this label has a wrong check digit "
        f"(expected {expected}, got {digits[-1]}). The label may be damaged or misprinted."
    )


def _message_code(message: str) -> str:
    """Machine tag for a biip parse error."""
    if "date" in message:
        return "date"
    return "format"


def _message_reason(message: str) -> str:
    """Turn a biip error message into an operator sentence (biip's quotes raw data)."""
    match = _AI_IN_MESSAGE.search(message)
    ai = match.group(1) if match else None
    if ai and "date" in message:
        return f"The date in AI ({ai}) on this label is not a real date."
    if ai:
        return f"The value of AI ({ai}) on this label has the wrong length or characters."
    return "This is not a GS1 label: no valid application identifier was found."
