"""Network strings made safe at the SIP edge (telephony/sanitize.py): pure, no pjsua2."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from telephony.sanitize import MAX_FIELD, safe_digit, safe_text


def from_pjsua2(raw: bytes) -> str:
    """What pjsua2 (SWIG) hands Python for header bytes: UTF-8 with surrogateescape."""
    return raw.decode("utf-8", "surrogateescape")


def test_bytes_that_are_not_utf8_are_written_as_hex_escapes() -> None:
    assert safe_text(from_pjsua2(b"fz69\xf9a7@fuzz")) == "fz69\\xf9a7@fuzz"
    assert safe_text(from_pjsua2(b"\xc3")) == "\\xc3"  # half a UTF-8 sequence
    assert safe_text(from_pjsua2("Björn 日本".encode())) == "Björn 日本"  # real UTF-8 is kept


def test_control_characters_cannot_forge_lines_or_hide_text() -> None:
    assert safe_text("a\x00b\r\nc\x1b[31m\x7f\x85") == "a\\x00b\\x0d\\x0ac\\x1b[31m\\x7f\\x85"
    assert safe_text("tab\tkept") == "tab\tkept"


def test_long_values_are_cut() -> None:
    out = safe_text("x" * 100_000)
    assert len(out) == MAX_FIELD and out.endswith("…")


@given(st.binary(max_size=300))
def test_any_bytes_become_text_every_sink_takes(raw: bytes) -> None:
    out = safe_text(from_pjsua2(raw))
    out.encode("utf-8")  # SQLite, sockets, MQTT
    json.loads(json.dumps(out, ensure_ascii=False))
    assert not any(ord(c) < 0x20 and c != "\t" for c in out)


def test_only_keys_are_digits() -> None:
    assert [safe_digit(d) for d in ("5", "#", "*", "a", " 7 ")] == ["5", "#", "*", "A", "7"]
    assert [safe_digit(d) for d in ("", "12", "x", from_pjsua2(b"\xf9"), "\x00")] == [None] * 5
