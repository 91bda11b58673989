"""Pastes that are scans: some readers (and remote tools) deliver a code as one bracketed paste.

A paste has no timing to judge, so its content and destination decide (SCANNER-NOTES §2, rule
8). It is a scan when it carries scanner control characters (GS, RS, FS, US, EOT: a GS1 or
ISO 15434 code, which a text field would cut at the first one, since Python counts them as line
breaks) or when no text field is focused to take it (it would otherwise be dropped). Any other
paste into a field is a person's and goes to the field unchanged.
"""

from __future__ import annotations

from kiosk.scanning.detector import DetectorSettings, Scan

__all__ = ["SCAN_CONTROLS", "scan_from_paste"]

SCAN_CONTROLS = "\x1c\x1d\x1e\x1f\x04"
"""FS, GS, RS, US, EOT: no person pastes these, every GS1/ISO 15434 code has them."""

# Line ends a reader or a copied line adds. Explicit characters on purpose: str.strip()
# would also remove GS/RS/FS/US, which are data here (SCANNER-NOTES §1.5).
_TRAILING = "\r\n\t"


def scan_from_paste(
    text: str, *, into_field: bool, settings: DetectorSettings | None = None
) -> Scan | None:
    """The scan a paste stands for, or None when it is a person's paste for the field."""
    settings = settings or DetectorSettings()
    body = text.rstrip(_TRAILING)
    if settings.prefix and body.startswith(settings.prefix):
        body = body[len(settings.prefix) :]
    if settings.suffix and body.endswith(settings.suffix):
        body = body[: len(body) - len(settings.suffix)]
    if not body.strip(" "):
        return None  # nothing to read: let the widget have it (or nobody)
    if into_field and not any(c in SCAN_CONTROLS for c in body):
        return None
    if len(body) > settings.max_scan_len:
        return Scan(body[: settings.max_scan_len], (), None, complete=False, problem="too_long")
    return Scan(body, (), None)
