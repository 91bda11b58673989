"""Employee badges from keyboard-wedge readers, reduced to one badge id string.

Readers are configured per site, so the same card can arrive in several shapes:

* a plain card number, ``45678`` (kept exactly as sent, leading zeros included,
  because readers are set to a fixed width and the zeros are part of the id);
* HID H10301 26-bit as ``facility:card`` decimal, ``123:45678``, or as the raw
  Wiegand frame in hex, ``2F764DD`` (parity bits checked), both giving
  ``123:45678``;
* a chip UID in hex (4, 5, 7, 8 or 10 bytes), given upper case;
* magstripe track 1 ``%B<number>^<NAME>^...?`` or track 2 ``;<number>=...?``,
  reduced to the card number. The holder's name on track 1 is dropped at once.

A bank card swiped by mistake is refused and its number never leaves this
module. Badge ids are identifiers, not secrets, but they are still personal data:
:func:`mask` shows at most the last two characters, and ``repr`` of a
:class:`Badge` is masked so an accidental log line does not leak it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from kiosk.scanning.symbology import ScanParseError

__all__ = ["Badge", "BadgeFormat", "is_payment_card", "luhn_valid", "mask", "parse_badge"]

BadgeFormat = Literal["card_number", "facility_card", "wiegand26", "chip_uid", "track1", "track2"]

_MASK_DOTS = "•••"
_TERMINATOR_CHARS = "\r\n\t\x04"

_DIGITS = re.compile(r"^\d{1,20}$")
_FACILITY_CARD = re.compile(r"^(\d{1,5}):(\d{1,10})$")
# A 26-bit frame fits in 7 hex digits. All-digit strings are read as decimal card
# numbers instead, so a frame is only recognised when it shows a hex letter.
_WIEGAND26_HEX = re.compile(r"^(?=[0-9]*[A-Fa-f])[0-9A-Fa-f]{1,7}$")
_CHIP_UID_LENGTHS = (8, 10, 14, 16, 20)
_HEX = re.compile(r"^[0-9A-Fa-f]+$")

# Magstripe tracks as a MagTek-style reader types them. Start sentinels: % for
# track 1, ; for track 2 (and often track 3), + for some track 3. ``E`` in place
# of the data means the reader could not decode that track.
_TRACK1 = re.compile(r"%([^?]*)\?")
_TRACK2 = re.compile(r";([^?]*)\?")
_TRACK2_BODY = re.compile(r"^(\d{1,19})(?:=(\d*))?$")

# ISO/IEC 7813 service code first digit for cards usable at payment terminals
# (1, 2 = international, 5, 6 = national). 7 means "private": employee badges.
_PAYMENT_SERVICE_CODES = "1256"

PAYMENT_CARD_REASON = (
    "This is a payment card, not a badge. It was not read or kept; please use your employee badge."
)
_BAD_READ_REASON = "The badge could not be read. Swipe or present it again."
_PARITY_REASON = "The badge read failed its parity check. Present the badge again."


@dataclass(frozen=True)
class Badge:
    """A badge read reduced to the id the plant's people records use."""

    badge_id: str = field(repr=False)
    """Normalized id: ``"45678"``, ``"123:45678"``, ``"0A1B2C3D"``..."""

    format: BadgeFormat
    """How the reader sent it; useful when a site mixes reader settings."""

    def __repr__(self) -> str:
        # Masked on purpose: dataclass reprs end up in logs and tracebacks.
        return f"Badge(badge_id={mask(self.badge_id)!r}, format={self.format!r})"


def mask(badge: str) -> str:
    """Show a badge id as ``•••01``: at most the last two characters.

    Short ids show less, so that at least half of any id stays hidden. The dots
    are a fixed width, so the length of the id is not revealed either.
    """
    visible = 2 if len(badge) >= 4 else len(badge) // 2
    return _MASK_DOTS + (badge[-visible:] if visible else "")


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` passes the Luhn (mod 10) check used on card numbers."""
    if not digits or not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def is_payment_card(raw: str) -> bool:
    """True when a magstripe read is a bank card (which must never be stored).

    Track 1 format code ``B`` is the ISO 7813 financial format, so a ``%B`` track
    with a Luhn-valid 13–19 digit number is a payment card. Track 2 has no format
    code; there we also require a payment service code, because employee cards
    often carry Luhn-valid numbers too (with the "private" service code 7xx).
    """
    for body in _TRACK1.findall(raw):
        if body.startswith("B") and _looks_like_pan(_track1_number(body)):
            return True
    for body in _TRACK2.findall(raw):
        match = _TRACK2_BODY.match(body)
        if match and _looks_like_pan(match.group(1)) and _payment_service(match.group(2)):
            return True
    return False


def parse_badge(raw: str) -> Badge:
    """Reduce one badge read to a :class:`Badge`.

    Raises:
        ScanParseError: ``code="payment_card"`` for a bank card, ``"parity"`` for a
            corrupt Wiegand frame, ``"bad_read"`` for an unreadable stripe and
            ``"format"`` when the text is none of the known badge shapes.
    """
    text = raw.rstrip(_TERMINATOR_CHARS).strip(" ")
    if text.startswith(("%", ";", "+")):
        return _parse_magstripe(text)
    if _DIGITS.match(text):
        return Badge(badge_id=text, format="card_number")
    facility_card = _FACILITY_CARD.match(text)
    if facility_card:
        facility, card = (int(part) for part in facility_card.groups())
        return Badge(badge_id=f"{facility}:{card}", format="facility_card")
    if _WIEGAND26_HEX.match(text):
        return _parse_wiegand26(int(text, 16))
    if len(text) in _CHIP_UID_LENGTHS and _HEX.match(text):
        return Badge(badge_id=text.upper(), format="chip_uid")
    raise ScanParseError("This is not a badge format the station knows.", code="format")


def _parse_wiegand26(frame: int) -> Badge:
    """Decode an HID H10301 frame: even parity, 8-bit facility, 16-bit card, odd parity.

    Bit 0 (the most significant) makes bits 0–12 even; bit 25 makes bits 13–25 odd.
    A reader that mis-clocks a bit fails one of the two checks.
    """
    bits = format(frame, "026b")
    if len(bits) != 26:
        raise ScanParseError("This is not a badge format the station knows.", code="format")
    even_ok = bits[:13].count("1") % 2 == 0
    odd_ok = bits[13:].count("1") % 2 == 1
    if not (even_ok and odd_ok):
        raise ScanParseError(_PARITY_REASON, code="parity")
    facility = int(bits[1:9], 2)
    card = int(bits[9:25], 2)
    return Badge(badge_id=f"{facility}:{card}", format="wiegand26")


def _parse_magstripe(text: str) -> Badge:
    """Pick the card number from the first usable track; refuse bank cards first."""
    if is_payment_card(text):
        raise ScanParseError(PAYMENT_CARD_REASON, code="payment_card")
    for body in _TRACK1.findall(text):
        number = _track1_number(body)
        if number:
            return Badge(badge_id=number, format="track1")
    for body in _TRACK2.findall(text):
        match = _TRACK2_BODY.match(body)
        if match:
            return Badge(badge_id=match.group(1), format="track2")
    # Only "E" (error) tracks, or sentinels around something that is not a number.
    raise ScanParseError(_BAD_READ_REASON, code="bad_read")


def _track1_number(body: str) -> str:
    """The card number of a track 1 body (after ``%``), or "" when there is none.

    ``B<number>^<NAME>^...`` is the ISO 7813 layout; some badge encoders write just
    digits. Spaces are allowed inside the number on track 1 and are dropped.
    """
    number = body[1:].split("^", 1)[0].replace(" ", "") if body.startswith("B") else body
    return number if _DIGITS.match(number) else ""


def _looks_like_pan(number: str) -> bool:
    """A payment card number: 13 to 19 digits with a valid Luhn check digit."""
    return 13 <= len(number) <= 19 and luhn_valid(number)


def _payment_service(after_separator: str | None) -> bool:
    """Track 2 ``=YYMM<service code>...``: is the service code a payment one?"""
    if after_separator is None or len(after_separator) < 7:
        return False
    return after_separator[4] in _PAYMENT_SERVICE_CODES
