"""Symbology identifiers, GS1 labels, badge formats and routing of scans."""

from __future__ import annotations

from datetime import date

import pytest

from kiosk.scanning import (
    Badge,
    ScanParseError,
    ScanRules,
    classify,
    is_payment_card,
    luhn_valid,
    mask,
    parse_badge,
    parse_gs1,
    parse_gtin,
    split_symbology,
)

GS = "\x1d"
GTIN = "09506000134352"  # valid check digit 2
GTIN_BAD = "09506000134353"
SSCC = "106141411234567897"
VISA_TEST = "4111111111111111"  # Luhn-valid test PAN
TRACK1_PAYMENT = f"%B{VISA_TEST}^DOE/JOHN^25121010000000000000?"
TRACK2_PAYMENT = f";{VISA_TEST}=25121010000000000?"


# ------------------------------------------------------------------- symbology


@pytest.mark.parametrize(
    ("raw", "name", "is_gs1"),
    [
        ("]C0TRV-1", "Code 128", False),
        ("]C1" + "01" + GTIN, "GS1-128", True),
        ("]d2" + "01" + GTIN, "GS1 DataMatrix", True),
        ("]d1ABC", "Data Matrix", False),
        ("]Q3" + "01" + GTIN, "GS1 QR", True),
        ("]Q1ABC", "QR Code", False),
        ("]E05901234123457", "EAN-13", True),
        ("]E496385074", "EAN-8", True),
        ("]A0TL-1", "Code 39", False),
        ("]I1" + GTIN, "ITF-14", True),
        ("]e0" + "01" + GTIN, "GS1 DataBar", True),
        ("]L0ABC", "PDF417", False),
    ],
)
def test_aim_identifier_is_stripped_and_named(raw: str, name: str, is_gs1: bool) -> None:
    symbology, data = split_symbology(raw)
    assert symbology is not None
    assert (symbology.name, symbology.is_gs1, symbology.code) == (name, is_gs1, raw[:3])
    assert data == raw[3:]


@pytest.mark.parametrize("raw", ["TRV-1", "]", "]C", "]!abc", "]C\x1dX", "]]C1", "", "]Ö1x"])
def test_text_without_a_valid_identifier_is_left_alone(raw: str) -> None:
    assert split_symbology(raw) == (None, raw)


# ------------------------------------------------------------------------ GS1


def test_gs1_with_group_separator() -> None:
    label = parse_gs1(f"]C101{GTIN}10ABC123{GS}17250131")
    assert label.fields == {"01": GTIN, "10": "ABC123", "17": "250131"}
    assert label.dates == {"17": date(2025, 1, 31)}
    assert (label.gtin, label.lot, label.expiry) == (GTIN, "ABC123", date(2025, 1, 31))
    assert label.symbology is not None and label.symbology.name == "GS1-128"


def test_gs1_without_separator_when_only_the_last_field_is_variable() -> None:
    label = parse_gs1(f"01{GTIN}1125010317250131" + "21SN0042")
    assert label.fields == {"01": GTIN, "11": "250103", "17": "250131", "21": "SN0042"}
    assert label.production_date == date(2025, 1, 3)
    assert label.serial == "SN0042"


def test_gs1_with_pipe_as_fnc1_substitute() -> None:
    label = parse_gs1(f"]d201{GTIN}10L-7|21X9")
    assert (label.lot, label.serial) == ("L-7", "X9")


def test_gs1_sscc_count_and_customer_fields() -> None:
    label = parse_gs1(f"00{SSCC}3012{GS}240PART-7{GS}250SER-1{GS}")
    assert label.sscc == SSCC
    assert label.fields == {"00": SSCC, "30": "12", "240": "PART-7", "250": "SER-1"}


def test_gs1_printed_form_in_parentheses() -> None:
    label = parse_gs1(f"(01){GTIN}(10)LOT9(17)250200")
    assert label.fields["10"] == "LOT9"
    assert label.dates["17"] == date(2025, 2, 28)  # day 00 = last day of the month
    assert label.hri() == f"(01){GTIN}(10)LOT9(17)250200"


def test_gs1_bad_gtin_check_digit_is_refused_with_a_reason() -> None:
    with pytest.raises(ScanParseError) as caught:
        parse_gs1(f"]C101{GTIN_BAD}10ABC")
    assert caught.value.code == "check_digit"
    assert "check digit" in caught.value.reason
    assert "expected 2, got 3" in caught.value.reason
    assert "GTIN" in caught.value.reason


def test_gs1_bad_sscc_check_digit_is_refused() -> None:
    with pytest.raises(ScanParseError) as caught:
        parse_gs1("00" + SSCC[:-1] + "0")
    assert caught.value.code == "check_digit"
    assert "SSCC" in caught.value.reason


def test_gs1_impossible_date_is_refused() -> None:
    with pytest.raises(ScanParseError) as caught:
        parse_gs1(f"01{GTIN}17250230")  # 30 February
    assert caught.value.code == "date"
    assert "date in AI (17)" in caught.value.reason


def test_gs1_field_with_wrong_shape_names_the_ai() -> None:
    with pytest.raises(ScanParseError) as caught:
        parse_gs1(f"01{GTIN}17251340")  # month 13 fails the AI's own pattern
    assert caught.value.code == "format"
    assert "AI (17)" in caught.value.reason


def test_gs1_conflicting_repeated_ai_is_refused() -> None:
    with pytest.raises(ScanParseError, match="twice"):
        parse_gs1(f"10A{GS}10B")


def test_text_that_is_not_gs1_is_refused() -> None:
    with pytest.raises(ScanParseError) as caught:
        parse_gs1("TRV-1234")
    assert "not a GS1 label" in caught.value.reason


def test_ean13_under_its_identifier_becomes_ai_01() -> None:
    assert parse_gs1("]E05901234123457").fields == {"01": "05901234123457"}
    with pytest.raises(ScanParseError, match="check digit"):
        parse_gs1("]E05901234123458")


def test_parse_gtin_checks_length_and_check_digit() -> None:
    assert parse_gtin("96385074") == "00000096385074"
    with pytest.raises(ScanParseError) as caught:
        parse_gtin("12345")
    assert caught.value.code == "format"


# ---------------------------------------------------------------------- badges


@pytest.mark.parametrize(
    ("raw", "badge_id", "fmt"),
    [
        ("45678", "45678", "card_number"),
        ("0045678\r", "0045678", "card_number"),  # fixed-width reader: zeros kept
        ("123:45678", "123:45678", "facility_card"),
        ("123:045678", "123:45678", "facility_card"),
        ("2F764DD", "123:45678", "wiegand26"),
        ("2f764dd", "123:45678", "wiegand26"),
        ("0a1b2c3d", "0A1B2C3D", "chip_uid"),
        ("04A2B3C4D5E680", "04A2B3C4D5E680", "chip_uid"),
        ("%B123456^DOE/JANE^?", "123456", "track1"),
        ("%B1234 5678^DOE/JANE^?", "12345678", "track1"),
        (";0045678?", "0045678", "track2"),
        (";123456=991270?", "123456", "track2"),
        ("%E?;123456?", "123456", "track2"),  # track 1 unreadable, track 2 fine
        (f"%B{VISA_TEST[:-1]}2^DOE/JANE^?", VISA_TEST[:-1] + "2", "track1"),  # Luhn fails
        (f";{VISA_TEST}=2512701?", VISA_TEST, "track2"),  # private service code 7xx
    ],
)
def test_badge_formats_reduce_to_one_id(raw: str, badge_id: str, fmt: str) -> None:
    badge = parse_badge(raw)
    assert (badge.badge_id, badge.format) == (badge_id, fmt)


def test_track1_holder_name_is_not_kept() -> None:
    badge = parse_badge("%B123456^DOE/JANE^?")
    assert "DOE" not in repr(badge) and "JANE" not in str(badge.__dict__)


@pytest.mark.parametrize("frame", ["2F764DC", "0F764DD", "2F764CD"])
def test_wiegand_frame_with_bad_parity_is_refused(frame: str) -> None:
    with pytest.raises(ScanParseError) as caught:
        parse_badge(frame)
    assert caught.value.code == "parity"


@pytest.mark.parametrize(
    "raw",
    [TRACK1_PAYMENT, TRACK1_PAYMENT + TRACK2_PAYMENT, TRACK2_PAYMENT, "%E?" + TRACK2_PAYMENT],
)
def test_payment_card_is_refused_and_its_number_is_not_kept(raw: str) -> None:
    assert is_payment_card(raw)
    with pytest.raises(ScanParseError) as caught:
        parse_badge(raw)
    assert caught.value.code == "payment_card"
    assert "payment card" in caught.value.reason
    assert VISA_TEST not in caught.value.reason
    assert VISA_TEST[-4:] not in str(caught.value)
    assert caught.value.__cause__ is None  # no chained exception carrying the number


@pytest.mark.parametrize("raw", ["%E?", "%E?;E?", ";E?", "+E?"])
def test_unreadable_stripe_asks_for_another_swipe(raw: str) -> None:
    with pytest.raises(ScanParseError) as caught:
        parse_badge(raw)
    assert caught.value.code == "bad_read"


@pytest.mark.parametrize("raw", ["hello", "12:ab", "", "0A1B2C3D4"])
def test_unknown_badge_shape_is_a_format_error(raw: str) -> None:
    with pytest.raises(ScanParseError) as caught:
        parse_badge(raw)
    assert caught.value.code == "format"


@pytest.mark.parametrize(
    ("badge", "shown"),
    [("4567801", "•••01"), ("123:45678", "•••78"), ("0A1B", "•••1B"), ("abc", "•••c"),
     ("12", "•••2"), ("7", "•••"), ("", "•••")],
)  # fmt: skip
def test_mask_shows_at_most_the_last_two_characters(badge: str, shown: str) -> None:
    assert mask(badge) == shown


def test_badge_repr_is_masked() -> None:
    assert "45678" not in repr(Badge("45678", "card_number"))
    assert "•••78" in repr(Badge("45678", "card_number"))


@pytest.mark.parametrize(
    ("digits", "valid"),
    [(VISA_TEST, True), ("79927398713", True), ("79927398710", False), ("", False),
     ("12a4", False)],
)  # fmt: skip
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


# -------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("raw", "kind", "value"),
    [
        ("45678\r", "badge", "45678"),
        ("2F764DD", "badge", "123:45678"),
        ("123:45678", "badge", "123:45678"),
        ("%B123456^DOE/JANE^?", "badge", "123456"),
        ("TRV-10442\r", "traveler", "TRV-10442"),
        ("]C0TRV-7", "traveler", "TRV-7"),
        ("TL-0031", "tool", "TL-0031"),
        ("]A0TL-0031", "tool", "TL-0031"),
        ("LOT-A7X9", "material", "LOT-A7X9"),
        ("SN-22-0042", "serial", "SN-22-0042"),
        (f"]C101{GTIN}10ABC123{GS}17250131", "material", "ABC123"),
        (f"]d201{GTIN}21SER77{GS}17250131", "serial", "SER77"),
        (f"]d201{GTIN}21SER77{GS}10L1", "serial", "SER77"),  # a serial names one unit
        (f"]Q301{GTIN}17250131", "gs1", GTIN),
        (f"01{GTIN}17250131" + "10LOT9", "material", "LOT9"),  # no identifier, no GS
        (f"(01){GTIN}(21)S1", "serial", "S1"),
        ("5901234123457", "gs1", "05901234123457"),
        ("]E05901234123457", "gs1", "05901234123457"),
        (f"00{SSCC}", "gs1", SSCC),
    ],
)
def test_classify_routes_each_kind(raw: str, kind: str, value: str) -> None:
    result = classify(raw)
    assert (result.kind, result.value, result.reason) == (kind, value, "")


def test_classify_reports_gs1_fields_dates_and_symbology() -> None:
    result = classify(f"]C101{GTIN}10ABC123{GS}17250131")
    assert result.fields == {"01": GTIN, "10": "ABC123", "17": "250131"}
    assert result.dates == {"17": date(2025, 1, 31)}
    assert result.symbology == "GS1-128"


def test_classify_refuses_gs1_label_with_bad_check_digit() -> None:
    result = classify(f"]C101{GTIN_BAD}10ABC")
    assert (result.kind, result.value) == ("unknown", "")
    assert "check digit" in result.reason


def test_classify_refuses_payment_card_without_keeping_the_number() -> None:
    result = classify(TRACK1_PAYMENT)
    assert (result.kind, result.value) == ("unknown", "")
    assert "payment card" in result.reason
    assert VISA_TEST[-4:] not in repr(result)


def test_classify_refuses_badge_with_bad_parity_without_echoing_it() -> None:
    result = classify("2F764DC")
    assert result.kind == "unknown"
    assert "parity" in result.reason and "764" not in result.reason


def test_unknown_code_reason_shows_only_the_last_two_characters() -> None:
    result = classify("XQ-99887766")
    assert result.kind == "unknown" and result.value == ""
    assert "•••66" in result.reason
    assert "9988" not in result.reason and "XQ" not in result.reason


def test_unknown_code_reason_never_shows_control_characters() -> None:
    result = classify("XQ-77\x04\x1dZ\x1d")
    assert result.kind == "unknown"
    assert all(c.isprintable() for c in result.reason)


def test_caps_lock_is_suggested_for_a_case_flipped_traveler() -> None:
    result = classify("trv-10442")
    assert result.kind == "unknown"
    assert "Caps Lock" in result.reason


def test_lone_variable_gs1_field_without_identifier_is_not_guessed() -> None:
    # "10ABC" parses as GS1 (lot ABC) but could be any internal code: not routed.
    assert classify("10ABC").kind == "unknown"
    assert classify("]C110ABC").kind == "material"


def test_badge_repr_in_classified_scan_is_masked() -> None:
    result = classify("4567801")
    assert result.kind == "badge" and result.value == "4567801"
    assert "4567801" not in repr(result)


def test_custom_rules_with_value_group() -> None:
    rules = ScanRules.from_strings(traveler=r"^WO(?P<value>\d{6})$", badge=[r"^EMP\d+$"])
    assert (classify("WO123456", rules).kind, classify("WO123456", rules).value) == (
        "traveler",
        "123456",
    )
    assert classify("TRV-1", rules).kind == "unknown"
    assert (classify("EMP77", rules).kind, classify("EMP77", rules).value) == ("badge", "EMP77")
    assert classify("LOT-A1", rules).kind == "material"  # other kinds keep their defaults


@pytest.mark.parametrize("raw", ["", "\r", "   ", "]C1", "]C1\x1d", "%", ";?", "\x00\x1b[A"])
def test_classify_never_raises_on_junk(raw: str) -> None:
    assert classify(raw).kind == "unknown"
    assert classify(raw).reason


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("%E?;123456=991270?", "123456"),  # track 1 unreadable, track 2 good
        ("%E?;0045678?", "0045678"),
        ("%E?;123456=991270?;E?", "123456"),  # and track 3 unreadable too
        ("%B123456^DOE/JANE^?;123456=991270?", "123456"),
    ],
)
def test_magstripe_with_a_bad_track_1_but_a_good_track_2_signs_in(raw: str, value: str) -> None:
    found = classify(raw)
    assert (found.kind, found.value) == ("badge", value)


@pytest.mark.parametrize("raw", ["%E?;E?", "%E?"])
def test_magstripe_with_no_good_track_is_refused_as_unreadable(raw: str) -> None:
    found = classify(raw)
    assert found.kind == "unknown" and "could not be read" in found.reason


def test_site_magstripe_pattern_matching_track_1_only_still_reads_track_2() -> None:
    rules = ScanRules.from_strings(badge=[r"^%[^?]*\?"])
    assert classify("%E?;123456=991270?", rules).value == "123456"
