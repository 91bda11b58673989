"""Keyboard-wedge scanners and badge readers, without Textual and without I/O.

* :mod:`.detector` tells scanner bursts from typing (hold, then release);
* :mod:`.symbology` strips and names AIM identifiers (``]C1`` = GS1-128...);
* :mod:`.gs1` reads GS1 labels into AI fields through ``biip``;
* :mod:`.badge` reduces badge reads to one badge id and refuses bank cards;
* :mod:`.classify` routes a scan to badge, traveler, tool, material, serial or GS1.
"""

from __future__ import annotations

from kiosk.scanning.badge import Badge, BadgeFormat, is_payment_card, luhn_valid, mask, parse_badge
from kiosk.scanning.classify import DEFAULT_RULES, ClassifiedScan, ScanKind, ScanRules, classify
from kiosk.scanning.detector import (
    Decision,
    DetectorSettings,
    KeyInput,
    Release,
    Scan,
    WedgeDetector,
)
from kiosk.scanning.gs1 import GS1_SEPARATORS, GS1Label, parse_gs1, parse_gtin
from kiosk.scanning.symbology import ScanParseError, Symbology, split_symbology

__all__ = [
    "DEFAULT_RULES",
    "GS1_SEPARATORS",
    "Badge",
    "BadgeFormat",
    "ClassifiedScan",
    "Decision",
    "DetectorSettings",
    "GS1Label",
    "KeyInput",
    "Release",
    "Scan",
    "ScanKind",
    "ScanParseError",
    "ScanRules",
    "Symbology",
    "WedgeDetector",
    "classify",
    "is_payment_card",
    "luhn_valid",
    "mask",
    "parse_badge",
    "parse_gs1",
    "parse_gtin",
    "split_symbology",
]
