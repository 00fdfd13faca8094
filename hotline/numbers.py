"""Phone numbers as hotline stores and shows them: one normalization, one mask for logs."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"\+?[0-9]{2,20}")
_STRIP = re.compile(r"[\s\-().]")


def normalize_number(raw: str) -> str | None:
    """``"+49 (30) 123-45.67"`` -> ``"+4930123457"``; None if it is not a phone number.

    Only spaces, dashes, dots and parentheses go; no national/international
    rewriting, so store numbers the way the SIP From user part carries them.
    """
    number = _STRIP.sub("", raw)
    return number if _NUMBER.fullmatch(number) else None


def mask_number(number: str) -> str:
    """For logs: all but the last 4 digits hidden."""
    return "…" + number[-4:] if len(number) > 4 else "…"
