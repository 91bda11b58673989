"""A photo's thumbnail drawn with characters: what an operator needs to see that the right photo
arrived, on any terminal the station runs on.

In a colour terminal each cell is two pixels, the upper half block (▀) in the top pixel's colour
on the bottom pixel's. The Linux console's 8 colours would make a photo mud, so there each cell
is one grey pixel drawn with the shade blocks ' ░▒█' (CP437, in every console font). Pillow is
loaded only when a thumbnail is drawn, never on the station's start path.
"""

from __future__ import annotations

import io

from rich.style import Style
from rich.text import Text

from kiosk.themes.console import shown

SHADES = " ░▒█"


def thumbnail(data: bytes, width: int = 32, height: int = 12, *, console: bool = False) -> Text:
    """The image in at most `width` x `height` cells; a sentence if it cannot be read."""
    from PIL import Image, UnidentifiedImageError  # loaded with the first thumbnail

    try:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (width * 4, height * 8))  # a JPEG decodes small: fast on a thin client
        rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return Text("(no preview of this file)")
    rows = height if console else height * 2
    cols = max(
        1, min(width, round(rgb.width * rows / max(1, rgb.height) * (0.5 if console else 1)))
    )
    small = rgb.resize((cols, rows))
    if console:
        grey = list(small.convert("L").tobytes())  # one 0-255 level per pixel, row by row
        lines = [
            "".join(
                SHADES[int(level) * len(SHADES) // 256] for level in grey[y * cols : (y + 1) * cols]
            )
            for y in range(rows)
        ]
        return Text("\n".join(lines), no_wrap=True)
    out, half = Text(no_wrap=True), shown("▀")
    for y in range(0, rows, 2):
        for x in range(cols):
            top, bottom = small.getpixel((x, y)), small.getpixel((x, y + 1))
            out.append(half, Style(color=_hex(top), bgcolor=_hex(bottom)))
        if y + 2 < rows:
            out.append("\n")
    return out


def _hex(pixel: object) -> str:
    assert isinstance(pixel, tuple)
    return "#" + "".join(f"{int(c):02x}" for c in pixel[:3])
