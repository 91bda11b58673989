"""The demo plant's drawings, made in code when it is seeded: a PNG of the bracket (revisions B
and C) and a two-page PDF of the bushing installation. Written by hand (zlib, a few PDF objects)
so seeding loads no imaging library: each file is a few kilobytes and made in milliseconds."""

from __future__ import annotations

import math
import struct
import zlib
from functools import cache

# 5x7 letters for the title block: each row a 5-bit pattern, top row first.
_GLYPHS = {
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14),
    "8": (14, 17, 17, 14, 17, 17, 14), "-": (0, 0, 0, 31, 0, 0, 0),
    "B": (30, 17, 17, 30, 17, 17, 30), "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (30, 17, 17, 17, 17, 17, 30), "E": (31, 16, 16, 30, 16, 16, 31),
    "G": (14, 17, 16, 23, 17, 17, 15), "R": (30, 17, 17, 30, 20, 18, 17),
    "V": (17, 17, 17, 17, 17, 10, 4), "W": (17, 17, 17, 21, 21, 21, 10),
    " ": (0, 0, 0, 0, 0, 0, 0),
}  # fmt: skip


class _Canvas:
    """A greyscale picture: 255 paper, 0 ink."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray([255]) * (width * height)

    def dot(self, x: int, y: int, thick: int = 1) -> None:
        for dy in range(thick):
            for dx in range(thick):
                px, py = x + dx, y + dy
                if 0 <= px < self.width and 0 <= py < self.height:
                    self.pixels[py * self.width + px] = 0

    def line(self, x0: int, y0: int, x1: int, y1: int, thick: int = 2) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for n in range(steps + 1):
            self.dot(x0 + (x1 - x0) * n // steps, y0 + (y1 - y0) * n // steps, thick)

    def box(self, x0: int, y0: int, x1: int, y1: int, thick: int = 2) -> None:
        for a, b, c, d in ((x0, y0, x1, y0), (x1, y0, x1, y1), (x1, y1, x0, y1), (x0, y1, x0, y0)):
            self.line(a, b, c, d, thick)

    def circle(self, cx: int, cy: int, r: int, thick: int = 2) -> None:
        for n in range(8 * r):
            a = 2 * math.pi * n / (8 * r)
            self.dot(round(cx + r * math.cos(a)), round(cy + r * math.sin(a)), thick)

    def text(self, x: int, y: int, words: str, scale: int = 2) -> None:
        for i, char in enumerate(words):
            for row, bits in enumerate(_GLYPHS.get(char, _GLYPHS[" "])):
                for col in range(5):
                    if bits & (16 >> col):
                        self.dot(x + (i * 6 + col) * scale, y + row * scale, scale)

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * self.width : (y + 1) * self.width])
            for y in range(self.height)
        )

        def chunk(kind: bytes, body: bytes) -> bytes:
            return (
                struct.pack(">I", len(body))
                + kind
                + body
                + struct.pack(">I", zlib.crc32(kind + body))
            )

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 0, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
        )  # fmt: skip


@cache  # the same bytes every time: a test process seeding many plants draws them once
def bracket_png(revision: str) -> bytes:
    """DWG-8810-011, the actuator bracket: rev C moved the lug holes outboard (the redline)."""
    c = _Canvas(480, 320)
    c.box(4, 4, 475, 315, 3)  # the sheet's border
    c.box(60, 60, 380, 200, 3)  # the bracket's plate
    c.line(60, 60, 30, 90, 2)  # its chamfer
    c.line(30, 90, 30, 170, 2)
    c.line(30, 170, 60, 200, 2)
    spread = 110 if revision == "C" else 80
    for cx in (220 - spread, 220 + spread):
        c.circle(cx, 130, 26, 3)  # a lug's bushing bore
        c.circle(cx, 130, 14, 2)
        c.line(cx - 36, 130, cx + 36, 130, 1)  # centre lines
        c.line(cx, 94, cx, 166, 1)
    c.line(220 - spread, 225, 220 + spread, 225, 1)  # the dimension between the bores
    for x in (220 - spread, 220 + spread):
        c.line(x, 215, x, 235, 1)
    c.box(250, 250, 470, 310, 2)  # the title block
    c.text(260, 262, "DWG-8810-011")
    c.text(260, 286, f"REV {revision}")
    return c.png()


def _pdf(pages: list[str]) -> bytes:
    """A PDF of `pages` (each a content stream of drawing operators), Helvetica built in."""
    count = len(pages)
    kids = " ".join(f"{4 + 2 * n} 0 R" for n in range(count))
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for n, content in enumerate(pages):
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 420 297] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * n} 0 R >>"
        )
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out


def _circle(cx: float, cy: float, r: float) -> str:
    k = 0.5523 * r  # four Bezier quarters
    return (
        f"{cx + r} {cy} m {cx + r} {cy + k} {cx + k} {cy + r} {cx} {cy + r} c "
        f"{cx - k} {cy + r} {cx - r} {cy + k} {cx - r} {cy} c "
        f"{cx - r} {cy - k} {cx - k} {cy - r} {cx} {cy - r} c "
        f"{cx + k} {cy - r} {cx + r} {cy - k} {cx + r} {cy} c S"
    )


@cache
def bushing_pdf() -> bytes:
    """SPEC-NAS75-05 rev A: the bushing installation, a section view and the press steps."""
    view = "\n".join(
        [
            "2 w 10 10 400 277 re S",
            "3 w 60 120 200 100 re S",
            _circle(160, 170, 34),
            _circle(160, 170, 20),
            "1 w 110 170 m 210 170 l S 160 120 m 160 220 l S",
            "BT /F1 14 Tf 250 40 Td (SPEC-NAS75-05 REV A  Bushing installation) Tj ET",
            "BT /F1 10 Tf 280 200 Td (Bore 12.700 +/- 0.010 mm) Tj ET",
        ]
    )
    notes = "\n".join(
        [
            "2 w 10 10 400 277 re S",
            "BT /F1 14 Tf 30 250 Td (Press-fit procedure) Tj ET",
            "BT /F1 11 Tf 30 220 Td (1. Clean the lug bore; no burrs.) Tj ET",
            "BT /F1 11 Tf 30 200 Td (2. Press NAS75-5 flush with press tool TL-0003.) Tj ET",
            "BT /F1 11 Tf 30 180 Td (3. Measure the bore after pressing.) Tj ET",
            "BT /F1 10 Tf 250 40 Td (SPEC-NAS75-05 REV A  page 2) Tj ET",
        ]
    )
    return _pdf([view, notes])
