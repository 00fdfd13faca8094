"""JSON Schemas of the event envelope, generated from the event dataclasses.

The published file (docs/cti-events.schema.json) is generated, never edited by
hand; a test checks it is current and that every event a server emits validates.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from .events import wire_name


def _type_schema(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [_type_schema(a) for a in typing.get_args(hint)]
        return {"anyOf": options}
    if hint is type(None):
        return {"type": "null"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"type": "string", "enum": [m.value for m in hint]}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str:
        return {"type": "string"}
    if origin in (tuple, list) or hint in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return {"type": "array", "items": _type_schema(args[0])} if args else {"type": "array"}
    if origin in (dict, Mapping) or origin is typing.get_origin(Mapping[str, Any]) or hint is dict:
        return {"type": "object"}
    return {}  # Any


_FIELD_COMMENT = re.compile(r"^\s+(\w+):[^#]*#\s*(.+)$")


def _field_comments(cls: type) -> dict[str, str]:
    """``name: type  # comment`` lines of the class body: the fields' documentation."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    return {m[1]: m[2].strip() for line in source.splitlines() if (m := _FIELD_COMMENT.match(line))}


def event_schema(cls: type) -> dict[str, Any]:
    """The schema of one event's envelope, from its dataclass fields and their types."""
    hints = typing.get_type_hints(cls)
    comments = _field_comments(cls)
    data_props: dict[str, Any] = {}
    has_call = False
    for f in dataclasses.fields(cls):
        if f.name == "call_id":
            has_call = True
            continue
        prop = _type_schema(hints[f.name])
        if f.name in comments:
            prop["description"] = comments[f.name]
        data_props[f.name.rstrip("_")] = prop
    name = wire_name(cls)
    doc = (cls.__doc__ or "").strip()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": name,
        "description": name if doc.startswith(f"{cls.__name__}(") or not doc else doc.split("\n")[0],
        "type": "object",
        "required": ["seq", "event", "time", "call_id", "data"],
        "additionalProperties": False,
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "event": {"const": name},
            "time": {"type": "string", "format": "date-time"},
            "call_id": {"type": "string"} if has_call else {"type": "null"},
            "data": {
                "type": "object",
                "required": sorted(data_props),
                "additionalProperties": False,
                "properties": data_props,
            },
        },
    }


def vocabulary_schemas(classes: Iterable[type]) -> dict[str, dict[str, Any]]:
    """{wire name: schema} for every event class, sorted by name. Two classes with one wire
    name (``alert.raised`` about the server, and about one call) make one schema of either."""
    schemas: dict[str, dict[str, Any]] = {}
    for c in classes:
        name, schema = wire_name(c), event_schema(c)
        if name not in schemas:
            schemas[name] = schema
            continue
        first = schemas[name]
        bare = {k: v for k, v in first.items() if k != "$schema"}
        variants = first.get("anyOf", [bare])
        schemas[name] = {
            "$schema": first["$schema"],
            "title": name,
            "description": first["description"],
            "anyOf": [*variants, {k: v for k, v in schema.items() if k != "$schema"}],
        }
    return dict(sorted(schemas.items()))
