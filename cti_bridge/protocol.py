"""Parsing and checking client lines: pure, no sockets.

A request is one JSON object per line: ``{"id": 1, "cmd": "auth", "token": "..."}``.
Every reply carries the request's ``id`` and either ``"ok": true`` or an error
with a stable ``code`` and a message a person can act on.

A line is untrusted input and is held to explicit limits before anything else
looks at it (docs/cti.md, "Limits"): its length (:data:`MAX_LINE_BYTES`), how deeply
objects and arrays nest (:data:`MAX_DEPTH`), and how many digits a number has
(:data:`MAX_NUMBER_DIGITS`). A line beyond one is ``cti.bad_json`` naming the limit,
never an exception from the JSON decoder (RecursionError, int-size ValueError).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any

MAX_LINE_BYTES = 65536  # a longer line is refused with cti.line_too_long
MAX_DEPTH = 32  # objects and arrays inside one another; deeper is cti.bad_json
MAX_NUMBER_DIGITS = 32  # digits of a number (a float's mantissa and exponent together)

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')  # a JSON string, escapes included
_BRACKET = re.compile(rb"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")  # \ud800-\udfff written in a JSON string
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class CtiError(Exception):
    """An error that goes back to the client as ``{"ok": false, "error": {...}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Request:
    id: Any  # echoed in the reply; the client's choice (number or string)
    cmd: str
    args: dict[str, Any]


class _LimitExceeded(ValueError):
    """Raised from inside the decoder's number hooks; becomes cti.bad_json."""


def _depth(line: bytes) -> int:
    """How deeply arrays and objects nest in ``line`` (brackets inside strings do not count).
    Only called when the line holds more brackets than the limit, so ordinary requests
    never pay for it."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub(b'""', line)):
        if m.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _int(text: str) -> int:
    if len(text) - (text[0] == "-") > MAX_NUMBER_DIGITS:
        raise _LimitExceeded(f"a number has more than {MAX_NUMBER_DIGITS} digits (the limit)")
    return int(text)


def _float(text: str) -> float:
    digits = sum(c.isdigit() for c in text)
    if digits > MAX_NUMBER_DIGITS:
        raise _LimitExceeded(f"a number has more than {MAX_NUMBER_DIGITS} digits (the limit)")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _LimitExceeded(f"the number {text} is too large for a 64-bit float")
    return value


def _constant(name: str) -> Any:
    raise _LimitExceeded(f"{name} is not JSON; send numbers as digits")


def _lone_surrogate(value: Any) -> bool:
    """Whether a decoded value holds half a UTF-16 surrogate pair (``"\\udcf9"`` alone),
    which no UTF-8 encoder accepts: it would fail in the outbox, SQLite or a socket."""
    if isinstance(value, str):
        return _LONE_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


class JsonLimitError(ValueError):
    """Untrusted JSON beyond a limit (line length, nesting depth, number size)."""

    def __init__(self, message: str, code: str = "cti.bad_json") -> None:
        super().__init__(message)
        self.code = code


def load_json(data: bytes, *, max_bytes: int = MAX_LINE_BYTES) -> Any:
    """One JSON value from untrusted bytes, within the limits (at most ``max_bytes``,
    :data:`MAX_DEPTH`, :data:`MAX_NUMBER_DIGITS`). Raises ValueError: JsonLimitError
    naming the limit, json.JSONDecodeError, or UnicodeDecodeError; never RecursionError.
    The CTI socket and the server's HTTP lookups (CRM, flow `lookup`) read JSON with it."""
    if len(data) > max_bytes:
        raise JsonLimitError(f"more than {max_bytes} bytes (the limit)", "cti.line_too_long")
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _depth(data) > MAX_DEPTH:
        raise JsonLimitError(f"objects and arrays nest more than {MAX_DEPTH} levels deep (the limit)")
    try:
        return json.loads(data, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except _LimitExceeded as exc:
        raise JsonLimitError(str(exc)) from None
    except RecursionError:  # the depth check above makes this unreachable; kept as a backstop
        raise JsonLimitError(f"nested more than {MAX_DEPTH} levels deep (the limit)") from None


def decode(line: bytes) -> Any:
    """One JSON value, within the limits; raises CtiError("cti.bad_json") otherwise.
    The bytes must be UTF-8, and an escaped surrogate must be half of a pair."""
    try:
        value = load_json(line)
    except JsonLimitError as exc:
        hint = "flatten the request" if "deep" in str(exc) else "send one JSON object per line"
        raise CtiError(exc.code, f"{exc}; {hint}") from None
    except ValueError as exc:  # not UTF-8, not JSON
        raise CtiError(
            "cti.bad_json", f"the line is not valid JSON ({exc}); send one JSON object per line"
        ) from None
    if _SURROGATE_ESCAPE.search(line) and _lone_surrogate(value):
        raise CtiError(
            "cti.bad_json",
            "a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not text; "
            "send UTF-8, or escape characters beyond U+FFFF as a surrogate pair",
        )
    return value


def parse_request(line: bytes) -> Request:
    """Raises CtiError; the error's ``request_id`` attribute is set when known."""
    obj = decode(line)
    if not isinstance(obj, dict):
        raise CtiError("cti.bad_request", 'send a JSON object like {"id": 1, "cmd": "auth", ...}')
    rid = obj.get("id")
    cmd = obj.get("cmd")
    if not isinstance(cmd, str):
        err = CtiError("cti.bad_request", 'the request has no "cmd" string')
        err.request_id = rid  # type: ignore[attr-defined]
        raise err
    args = {k: v for k, v in obj.items() if k not in ("id", "cmd")}
    return Request(id=rid, cmd=cmd, args=args)


def ok_reply(rid: Any, **result: Any) -> dict[str, Any]:
    return {"id": rid, "ok": True, **result}


def error_reply(rid: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": {"code": code, "message": message}}


def require_str(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value:
        raise CtiError("cti.bad_request", f'"{key}" must be a non-empty string')
    return value


@dataclass(slots=True)
class Subscription:
    patterns: list[str] = field(default_factory=list)  # glob patterns, e.g. "call.*"
    _seen: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)  # event -> wanted

    def wants(self, event: str) -> bool:
        """Matched once per event name (the vocabulary is small); replace the Subscription,
        do not edit ``patterns``, to change what it wants."""
        wanted = self._seen.get(event)
        if wanted is None:
            wanted = self._seen[event] = any(fnmatch.fnmatchcase(event, p) for p in self.patterns)
        return wanted


def parse_patterns(args: dict[str, Any]) -> list[str]:
    events = args.get("events", ["*"])
    if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
        raise CtiError("cti.bad_request", '"events" must be a list of glob patterns like ["call.*"]')
    return list(events)
