"""Strings from the network, made safe once, where they enter: pure, no pjsua2.

pjsua2 hands header values (Call-ID, From, To, reason phrases) to Python as
``str`` decoded with ``surrogateescape``: a byte that is not UTF-8 (``0xF9``)
becomes the lone surrogate ``\\udcf9``, which no UTF-8 encoder accepts. Left as
is, one such byte in a Call-ID made the event outbox and the call record fail
(issue 11). :func:`safe_text` returns text that every sink downstream (JSON,
SQLite, logs, MQTT) takes as is:

- bytes that are not UTF-8 are written as ``\\xNN`` (so ``fz69\\xf9a7@fuzz``
  stays recognizable in a SIP trace);
- control characters (C0 except tab, DEL, C1) are written the same way, so a
  header cannot forge log lines or hide text;
- anything longer than ``limit`` characters is cut, ending in ``…``.
"""

from __future__ import annotations

import re

MAX_FIELD = 1024  # characters kept of one header value; SIP allows more, no call needs it
DIGITS = frozenset("0123456789*#ABCD")  # what a DTMF digit may be (RFC 4733 events 0-15)

_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"  # a lone surrogate of any other origin


def safe_text(value: object, limit: int = MAX_FIELD) -> str:
    """``value`` as text that encodes to UTF-8 and holds no control characters."""
    text = value if isinstance(value, str) else str(value)
    if not (text.isascii() and text.isprintable()):
        text = _UNSAFE.sub(_escape, text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def safe_digit(value: object) -> str | None:
    """A DTMF digit (0-9 * # A-D, upper case), or None for anything else (a SIP INFO body
    may carry any byte as its Signal)."""
    text = value if isinstance(value, str) else str(value)
    text = text.strip().upper()
    return text if len(text) == 1 and text in DIGITS else None
