"""The wire form of events: any frozen dataclass with a ``wire`` name becomes

``{"seq": 17, "event": "call.answered", "time": "<ISO 8601 UTC>", "call_id": "...", "data": {...}}``.

A field named ``from_`` goes on the wire as ``from``; enums go as their value.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

PROTOCOL_VERSION = 1


def wire_name(event: object) -> str:
    name = getattr(event, "wire", None)
    if not isinstance(name, str):
        raise TypeError(f"{type(event).__name__} has no wire name")
    return name


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)
    return value


def event_data(event: object) -> dict[str, Any]:
    """The event's fields, minus call_id (which sits in the envelope)."""
    if not dataclasses.is_dataclass(event):
        raise TypeError(f"{type(event).__name__} is not a dataclass event")
    return {
        f.name.rstrip("_"): _plain(getattr(event, f.name))
        for f in dataclasses.fields(event)
        if f.name != "call_id"
    }


def iso_utc(wall: float) -> str:
    """Seconds since the epoch -> ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(seq: int, event: object, wall: float) -> dict[str, Any]:
    return {
        "seq": seq,
        "event": wire_name(event),
        "time": iso_utc(wall),
        "call_id": getattr(event, "call_id", None),
        "data": event_data(event),
    }
