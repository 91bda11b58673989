"""The look every station prompt shares: a centred box over the dimmed screen, in theme colours."""

from __future__ import annotations


def dialog_css(screen: str, *, width: int = 70, colour: str = "$accent", extra: str = "") -> str:
    """DEFAULT_CSS for a modal prompt `screen` whose content sits in one Vertical."""
    return f"""
    {screen} {{
        align: center middle;
        & > Vertical {{
            width: {width}; max-width: 100%; height: auto; max-height: 100%;
            border: double {colour}; background: $surface; padding: 0 1;
        }}
        & .heading {{ text-style: bold; color: {colour}; }}
        {extra}
    }}
    """
