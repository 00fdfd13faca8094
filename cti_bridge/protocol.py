"""Parsing and checking client lines: pure, no sockets.

A request is one JSON object per line: ``{"id": 1, "cmd": "auth", "token": "..."}``.
Every reply carries the request's ``id`` and either ``"ok": true`` or an error
with a stable ``code`` and a message a person can act on.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

MAX_LINE_BYTES = 65536  # a longer line is refused with cti.line_too_long


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


def parse_request(line: bytes) -> Request:
    """Raises CtiError; the error's ``request_id`` attribute is set when known."""
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CtiError(
            "cti.bad_json", f"the line is not valid JSON ({exc}); send one JSON object per line"
        ) from None
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
