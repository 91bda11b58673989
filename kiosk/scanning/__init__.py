"""Keyboard-wedge scanners and badge readers, without Textual and without I/O.

* :mod:`.detector` tells scanner bursts from typing (its contract is at its top);
* :mod:`.planner` echoes typing at once and takes back the keys that were a scan's head;
* :mod:`.paste` says which pastes are scans; :mod:`.layout` spots keyboard layout mismatches;
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
    ScanProblem,
    WedgeDetector,
)
from kiosk.scanning.gs1 import GS1_SEPARATORS, GS1Label, parse_gs1, parse_gtin
from kiosk.scanning.layout import LAYOUT_MISMATCH
from kiosk.scanning.paste import scan_from_paste
from kiosk.scanning.planner import KeyPlanner
from kiosk.scanning.symbology import ScanParseError, Symbology, split_symbology

__all__ = [
    "DEFAULT_RULES",
    "GS1_SEPARATORS",
    "LAYOUT_MISMATCH",
    "Badge",
    "BadgeFormat",
    "ClassifiedScan",
    "Decision",
    "DetectorSettings",
    "GS1Label",
    "KeyInput",
    "KeyPlanner",
    "Release",
    "Scan",
    "ScanKind",
    "ScanParseError",
    "ScanProblem",
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
    "scan_from_paste",
    "split_symbology",
]
