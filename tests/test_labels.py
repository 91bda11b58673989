"""Labels: what the bars and the ZPL carry must scan back, through the station's own `classify`,
as the kind and value the admin asked for."""

from __future__ import annotations

import re
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from barcode.charsets import code128 as tables

from kiosk import labels
from kiosk.cli import main
from kiosk.scanning import classify

CASES = [
    ("traveler", "TRV-1001", "traveler"),
    ("badge", "10001", "badge"),
    ("tool", "TL-0001", "tool"),
    ("lot", "LOT-A100", "material"),
]


# --- decoding what was drawn, with python-barcode's own Code 128 tables ---------------------------


def decode_code128(modules: str) -> str:
    """Bars as a 1/0 module string (start .. stop) back to the text they encode."""
    stop = tables.STOP + "11"  # python-barcode draws the 13-module stop as STOP + "11"
    assert modules.endswith(stop), "no Code 128 stop pattern"
    body = modules[: -len(stop)]
    assert len(body) % 11 == 0, f"{len(body)} modules is not a whole number of symbols"
    values = [tables.CODES.index(body[i : i + 11]) for i in range(0, len(body), 11)]
    start, *data, check = values
    assert check == (start + sum(i * v for i, v in enumerate(data, 1))) % 103, "bad checksum"
    charset = {code: name for name, code in tables.START_CODES.items()}[start]
    by_value = {
        "A": {v: c for c, v in tables.A.items()},
        "B": {v: c for c, v in tables.B.items()},
    }
    switches = {"TO_A": "A", "TO_B": "B", "TO_C": "C"}
    text = []
    for value in data:
        if charset == "C":
            if value < 100:
                text.append(f"{value:02d}")
            else:
                charset = {100: "B", 101: "A"}[value]
            continue
        symbol = by_value[charset][value]
        if symbol in switches:
            charset = switches[symbol]
        else:
            assert len(symbol) == 1 and symbol.isascii(), f"unexpected symbol {symbol!r}"
            text.append(symbol)
    return "".join(text)


def svg_modules(svg: bytes, module_mm: float) -> str:
    """The bar rectangles of python-barcode's SVG back to a module string."""
    root = ET.fromstring(svg)
    bars = []
    for rect in root.iter("{http://www.w3.org/2000/svg}rect"):
        if "x" in rect.attrib:  # the background rect has no x
            bars.append((float(rect.attrib["x"][:-2]), float(rect.attrib["width"][:-2])))
    bars.sort()
    modules, edge = "", bars[0][0]
    for x, width in bars:
        modules += "0" * round((x - edge) / module_mm) + "1" * round(width / module_mm)
        edge = x + width
    return modules


def svg_texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]


def png_modules(png: bytes) -> str:
    """One pixel row through the bars, as runs of PNG_MODULE_PX pixels."""
    from io import BytesIO

    from PIL import Image

    def _grey(pixel: object) -> int:
        assert isinstance(pixel, int)  # a greyscale ("L") image has one int per pixel
        return pixel

    image = Image.open(BytesIO(png)).convert("L")
    y = int((1 + labels.BAR_HEIGHT_MM / 2) * labels.PNG_DPI / 25.4)  # 1 mm top margin
    row = "".join("1" if _grey(image.getpixel((x, y))) < 128 else "0" for x in range(image.width))
    row = row.strip("0")
    runs = re.findall(r"1+|0+", row)
    return "".join(run[0] * round(len(run) / labels.PNG_MODULE_PX) for run in runs)


def zpl_commands(zpl: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?=\^)", zpl) if c.strip()]


def zpl_fields(zpl: str) -> list[tuple[str, str]]:
    """(the command that drew it, decoded ^FD data) for each field, checking ZPL structure."""
    commands = zpl_commands(zpl)
    assert commands[0] == "^XA" and commands[-1] == "^XZ"
    fields, origin, kind, hex_escape = [], False, "", False
    for i, command in enumerate(commands):
        if command.startswith("^FO"):
            origin = True
        elif command.startswith(("^BC", "^A0")):
            kind = command[:3]
        elif command.startswith("^FH"):
            hex_escape = True
        elif command.startswith("^FD"):
            assert origin, f"field {command} has no ^FO origin before it"
            assert commands[i + 1] == "^FS", f"field {command} is not closed by ^FS"
            data = command[3:]
            if hex_escape:
                data = re.sub(r"_([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), data)
            fields.append((kind, data))
            origin, kind, hex_escape = False, "", False
    return fields


def assert_scans_as(read_back: str, code: str, kind: str) -> None:
    scanned, asked = classify(read_back), classify(code)
    assert scanned.kind == kind
    assert (scanned.kind, scanned.value) == (asked.kind, asked.value)


# --- round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "code", "scan_kind"), CASES)
def test_svg_bars_scan_back_as_the_same_kind_and_value(
    kind: labels.LabelKind, code: str, scan_kind: str
) -> None:
    svg = labels.render_svg(labels.make_label(kind, code, "Bay 3"))
    read_back = decode_code128(svg_modules(svg, labels.MODULE_MM))
    assert read_back == code
    assert_scans_as(read_back, code, scan_kind)
    assert svg_texts(svg) == [code, "Bay 3"]  # human-readable code, then the caption


@pytest.mark.parametrize(("kind", "code", "scan_kind"), CASES)
def test_zpl_is_well_formed_and_its_barcode_field_scans_back(
    kind: labels.LabelKind, code: str, scan_kind: str
) -> None:
    zpl = labels.render_zpl(labels.make_label(kind, code, "Bay 3"))
    fields = zpl_fields(zpl)
    assert fields == [("^BC", code), ("^A0", code), ("^A0", "Bay 3")]
    assert any(c.startswith("^BCN,") for c in zpl_commands(zpl)), "Code 128 (^BC) missing"
    assert_scans_as(fields[0][1], code, scan_kind)


@pytest.mark.parametrize(("kind", "code", "scan_kind"), CASES)
def test_png_bars_scan_back(kind: labels.LabelKind, code: str, scan_kind: str) -> None:
    png = labels.render_png(labels.make_label(kind, code))
    assert png.startswith(b"\x89PNG")
    assert_scans_as(decode_code128(png_modules(png)), code, scan_kind)


def test_zpl_escapes_characters_that_would_start_a_command() -> None:
    caption = "Cell ^2 ~ line_A"
    zpl = labels.render_zpl(labels.make_label("traveler", "TRV-1001", caption))
    assert zpl_fields(zpl)[-1] == ("^A0", caption)
    assert "^2" not in zpl and "~" not in zpl


def test_lower_case_plant_codes_are_labelled_as_the_station_reads_them() -> None:
    label = labels.make_label("traveler", " trv-1001 ")
    assert label.code == "TRV-1001"


@pytest.mark.parametrize(
    ("kind", "code", "read_as"),
    [("tool", "TRV-1001", "traveler"), ("traveler", "10001", "badge"), ("lot", "LOT a", "unknown")],
)
def test_a_code_that_would_scan_as_something_else_is_refused(
    kind: labels.LabelKind, code: str, read_as: str
) -> None:
    with pytest.raises(
        labels.LabelError, match=f"would not scan as a {kind}.*read it as {read_as}"
    ):
        labels.make_label(kind, code)


def test_png_without_pillow_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import barcode.writer

    monkeypatch.setattr(barcode.writer, "ImageWriter", None)  # what python-barcode does sans Pillow
    with pytest.raises(labels.LabelError, match="pip install Pillow"):
        labels.render_png(labels.make_label("tool", "TL-0001"))


# --- the command ------------------------------------------------------------------------------------


def test_label_command_writes_code_dot_svg_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["label", "traveler", "TRV-1001"]) == 0
    svg = (tmp_path / "TRV-1001.svg").read_bytes()
    assert decode_code128(svg_modules(svg, labels.MODULE_MM)) == "TRV-1001"
    assert "TRV-1001.svg" in capsys.readouterr().out


def test_badge_label_carries_the_badge_number_and_the_given_caption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "ana.zpl"
    argv = ["label", "badge", "10001", "--format", "zpl", "--caption", "Ana Ortiz"]
    assert main([*argv, "--output", str(out)]) == 0
    assert zpl_fields(out.read_text()) == [("^BC", "10001"), ("^A0", "10001"), ("^A0", "Ana Ortiz")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ana.zpl"]


def test_refused_code_exits_non_zero_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["label", "tool", "TRV-1001"]) == 2
    assert "would not scan as a tool" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _fake_lp(bin_dir: Path, log: Path) -> None:
    bin_dir.mkdir()
    lp = bin_dir / "lp"
    lp.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}.args\n/bin/cat > {log}.data\n')
    lp.chmod(lp.stat().st_mode | stat.S_IEXEC)


def test_print_sends_raw_zpl_to_lp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    log = tmp_path / "lp"
    _fake_lp(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.chdir(work)
    assert (
        main(["label", "lot", "LOT-A100", "--format", "zpl", "--print", "--printer", "zebra"]) == 0
    )
    args = Path(f"{log}.args").read_text().split()
    assert args == ["-s", "-d", "zebra", "-o", "raw"]
    assert zpl_fields(Path(f"{log}.data").read_text())[0] == ("^BC", "LOT-A100")
    assert list(work.iterdir()) == []  # printing alone leaves no file behind
    assert "sent lot label" in capsys.readouterr().out


def test_print_without_lp_names_the_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    assert main(["label", "tool", "TL-0001", "--format", "zpl", "--print"]) == 2
    assert "apt-get install cups-client" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_print_refuses_svg_and_says_which_format_to_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_lp(tmp_path / "bin", tmp_path / "lp")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.chdir(tmp_path)
    assert main(["label", "tool", "TL-0001", "--print"]) == 2
    assert "--format zpl" in capsys.readouterr().err
    assert not Path(f"{tmp_path / 'lp'}.args").exists()
