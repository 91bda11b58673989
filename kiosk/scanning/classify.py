"""Route one scan to what it is on the shop floor: badge, traveler, tool, material...

Content decides first, as in ERPNext and InvenTree ("first match wins"):

1. a bank card is refused before anything else looks at it;
2. a GS1 symbology identifier (``]C1``, ``]d2``, ``]Q3``, ``]E0``...) means a GS1 label;
3. the site's patterns, in order: badge, traveler, tool, material lot, serial;
4. without an identifier, content that is unmistakably GS1 (a GS separator, the
   printed ``(01)...`` form, a leading AI 00/01/02, or a bare GTIN-12/13/14 with a
   valid check digit).

A GS1 label with a serial (AI 21) is routed as a serial, with a lot (AI 10) as
material; the other AIs stay available in ``fields``. Anything else is "unknown"
with a sentence for the operator that shows at most the last two characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal

from kiosk.scanning.badge import PAYMENT_CARD_REASON, is_payment_card, mask, parse_badge
from kiosk.scanning.gs1 import GS1_SEPARATORS, GS1Label, parse_gs1, parse_gtin
from kiosk.scanning.layout import LAYOUT_MISMATCH, foreign_layout
from kiosk.scanning.symbology import ScanParseError, Symbology, split_symbology

__all__ = ["DEFAULT_RULES", "ClassifiedScan", "ScanKind", "ScanRules", "classify"]

ScanKind = Literal["badge", "traveler", "tool", "material", "serial", "gs1", "unknown"]

Patterns = tuple[re.Pattern[str], ...]

_TERMINATOR_CHARS = "\r\n\t\x04"
_GTIN_LENGTHS = (12, 13, 14)  # GTIN-8 is left to the badge rule: 8 digits are a badge
_CHECKED_AI_STARTS = ("00", "01", "02")

_EMPTY_REASON = "The scan was empty. Scan the code again."
_CRASH_REASON = "The scan could not be read. Scan the code again."


def _compile(*patterns: str) -> Patterns:
    return tuple(re.compile(p) for p in patterns)


@dataclass(frozen=True)
class ScanRules:
    """The site's patterns per kind, tried in field order; the first match wins.

    Patterns are matched with ``search``, so anchor them. If a pattern has a
    named group ``value``, that group is the routed value (e.g. strip a site
    prefix); otherwise the whole match is.
    """

    badge: Patterns = _compile(
        r"^\d{4,10}$",  # card number as the reader sends it
        r"^\d{1,5}:\d{1,10}$",  # facility:card
        # Wiegand-26 frame (7 hex) or chip UID (4, 5, 7, 8, 10 bytes), with a hex letter
        # so that all-digit codes stay card numbers.
        r"^(?=[0-9]*[A-Fa-f])(?:[0-9A-Fa-f]{7,8}|[0-9A-Fa-f]{10}|[0-9A-Fa-f]{14}"
        r"|[0-9A-Fa-f]{16}|[0-9A-Fa-f]{20})$",
        # Magstripe: track 1 and/or 2 (and 3), all of them, so that an unreadable track 1
        # ("%E?") still leaves track 2 to read the number from.
        r"^%[^?]*\?(?:[;+][^?]*\?)*",
        r"^;[^?]*\?(?:[;+][^?]*\?)*",
    )
    traveler: Patterns = _compile(r"^TRV-\d+$")
    tool: Patterns = _compile(r"^TL-\d+$")
    material: Patterns = _compile(r"^LOT-[A-Z0-9]+$")
    serial: Patterns = _compile(r"^SN-[A-Z0-9-]+$")
    gs1_separators: tuple[str, ...] = GS1_SEPARATORS
    """Characters a scanner sends for FNC1 inside GS1 labels."""

    @classmethod
    def from_strings(cls, **patterns: str | Iterable[str]) -> ScanRules:
        """Build rules from plain pattern strings, e.g. from a site settings file.

        Kinds not given keep their defaults; a single string is one pattern (not
        a list of one-character patterns).
        """
        # Any: the keys are checked by replace() at run time (unknown kind -> TypeError).
        compiled: dict[str, Any] = {
            kind: _compile(texts) if isinstance(texts, str) else _compile(*texts)
            for kind, texts in patterns.items()
        }
        return replace(cls(), **compiled)

    def internal_kinds(self) -> tuple[tuple[ScanKind, Patterns], ...]:
        """The plant's own label kinds, in matching order (badge is handled apart)."""
        return (
            ("traveler", self.traveler),
            ("tool", self.tool),
            ("material", self.material),
            ("serial", self.serial),
        )


DEFAULT_RULES = ScanRules()


@dataclass(frozen=True)
class ClassifiedScan:
    """What a scan is and the value to act on.

    ``value`` is the normalized id (badge id, traveler number, lot, serial, GTIN)
    and is empty for "unknown". ``reason`` says why a scan is unknown or refused.
    """

    kind: ScanKind
    value: str
    symbology: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    dates: dict[str, date] = field(default_factory=dict)

    def __repr__(self) -> str:
        # A badge id is personal data: keep it out of logs that print this object.
        value = mask(self.value) if self.kind == "badge" else self.value
        return (
            f"ClassifiedScan(kind={self.kind!r}, value={value!r}, "
            f"symbology={self.symbology!r}, fields={self.fields!r}, reason={self.reason!r})"
        )


def classify(raw: str, rules: ScanRules = DEFAULT_RULES) -> ClassifiedScan:
    """Say what ``raw`` (one scan's text, terminator optional) is. Never raises."""
    try:
        return _classify(raw, rules)
    except Exception:  # a bad site pattern or a library surprise must not kill input
        return _unknown(_CRASH_REASON)


def _classify(raw: str, rules: ScanRules, *, diagnose: bool = True) -> ClassifiedScan:
    """The routing order described in the module docstring."""
    text = raw.rstrip(_TERMINATOR_CHARS).strip(" ")
    symbology, data = split_symbology(text)
    name = symbology.name if symbology else None
    if not data:
        return _unknown(_EMPTY_REASON, name)
    if is_payment_card(data):
        return _unknown(PAYMENT_CARD_REASON, name)
    if symbology is not None and symbology.is_gs1:
        return _classify_gs1_symbol(text, data, symbology, rules)
    badge_value = _first_match(rules.badge, data)
    if badge_value is not None:
        # A magstripe is read whole (every track), whatever part the site's pattern matched.
        return _classify_badge(data if data.startswith(("%", ";")) else badge_value, name)
    internal = _classify_internal(data, name, rules)
    if internal is not None:
        return internal
    if symbology is None:
        gs1 = _classify_gs1_content(data, rules)
        if gs1 is not None:
            return gs1
    if not diagnose:
        return _unknown("", name)
    return _unknown(_unrecognised_reason(data, rules), name)


def _classify_badge(value: str, name: str | None) -> ClassifiedScan:
    """A badge-shaped scan: normalize it, or refuse it with the parser's reason."""
    try:
        badge_id = parse_badge(value).badge_id
    except ScanParseError as error:
        if error.code != "format":
            return _unknown(error.reason, name)
        # The site's own badge pattern matched a shape we do not decode: keep it as sent.
        badge_id = value
    return ClassifiedScan(kind="badge", value=badge_id, symbology=name)


def _classify_internal(data: str, name: str | None, rules: ScanRules) -> ClassifiedScan | None:
    """Traveler, tool, material lot or serial by the site's patterns."""
    for kind, patterns in rules.internal_kinds():
        value = _first_match(patterns, data)
        if value is not None:
            return ClassifiedScan(kind=kind, value=value, symbology=name)
    return None


def _classify_gs1_symbol(
    text: str, data: str, symbology: Symbology, rules: ScanRules
) -> ClassifiedScan:
    """The symbol says GS1: parse it; an internal code printed as GS1-128 still routes."""
    try:
        return _route_gs1(parse_gs1(text, separators=rules.gs1_separators))
    except ScanParseError as error:
        internal = _classify_internal(data, symbology.name, rules)
        return internal if internal is not None else _unknown(error.reason, symbology.name)


def _classify_gs1_content(data: str, rules: ScanRules) -> ClassifiedScan | None:
    """GS1 without an identifier, only when the content leaves no doubt.

    Short strings such as ``10ABC`` or ``21X`` parse as GS1 too, so a lone
    variable field is not enough: we need a separator, the printed form, a
    check-digit AI up front, or a bare GTIN whose check digit holds.
    """
    if len(data) in _GTIN_LENGTHS and data.isascii() and data.isdigit():
        try:
            return _route_gs1(GS1Label(fields={"01": parse_gtin(data)}))
        except ScanParseError:
            return None
    # A separator inside the data (not a stray one at the end) marks GS1 structure.
    inner = data.strip("".join(rules.gs1_separators))
    has_separator = any(sep in inner for sep in rules.gs1_separators)
    if not (has_separator or data.startswith("(") or data.startswith(_CHECKED_AI_STARTS)):
        return None
    try:
        return _route_gs1(parse_gs1(data, separators=rules.gs1_separators))
    except ScanParseError as error:
        # Clearly meant as GS1 (separator or printed form): say what is wrong with it.
        return _unknown(error.reason) if has_separator or data.startswith("(") else None


def _route_gs1(label: GS1Label) -> ClassifiedScan:
    """A serial identifies one unit, so it wins over the lot; else the GTIN or SSCC."""
    symbology = label.symbology.name if label.symbology else None
    kind: ScanKind = "gs1"
    value = label.gtin or label.sscc or label.hri()
    if label.serial is not None:
        kind, value = "serial", label.serial
    elif label.lot is not None:
        kind, value = "material", label.lot
    return ClassifiedScan(
        kind=kind,
        value=value,
        symbology=symbology,
        fields=dict(label.fields),
        dates=dict(label.dates),
    )


def _first_match(patterns: Patterns, data: str) -> str | None:
    """The routed value of the first matching pattern, or None."""
    for pattern in patterns:
        match = pattern.search(data)
        if match is None:
            continue
        if "value" in pattern.groupindex and match.group("value"):
            return str(match.group("value"))
        return match.group(0)
    return None


def _unrecognised_reason(data: str, rules: ScanRules) -> str:
    """Why nothing matched, with at most the last two characters shown."""
    shown = _printable(mask(data))
    # Caps Lock (or a scanner without "Caps Lock override") flips every letter.
    for kind, patterns in rules.internal_kinds():
        if _first_match(patterns, data.swapcase()) is not None:
            return (
                f"This {kind} code ({shown}) arrived with its letters in the wrong case: "
                "Caps Lock is probably on. Turn it off and scan again."
            )
    return _layout_reason(data, shown, rules) or (
        f"Unrecognised code ({shown}): not a badge, traveler, tool, material lot, "
        "serial or GS1 label."
    )


def _layout_reason(data: str, shown: str, rules: ScanRules) -> str | None:
    """A scanner set to US on a station set to AZERTY/QWERTZ garbles digits and punctuation."""

    def known(meant: str) -> bool:
        return _classify(meant, rules, diagnose=False).kind != "unknown"

    layout = foreign_layout(data, known)
    if layout is None:
        return None
    which = "" if layout == "another layout" else f" (the station seems set to {layout})"
    return (
        f"Unrecognised code ({shown}): it {LAYOUT_MISMATCH}{which}. Set the scanner and "
        "the station to the same keyboard layout (check it on the scanner test screen)."
    )


def _printable(text: str) -> str:
    """Control characters (GS, EOT...) would corrupt a toast; show them as ``?``."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _unknown(reason: str, symbology: str | None = None) -> ClassifiedScan:
    return ClassifiedScan(kind="unknown", value="", symbology=symbology, reason=reason)
