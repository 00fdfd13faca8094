"""Tools for flow designers, as pure functions: a JSON Schema of the language and Mermaid diagrams.

The CLI prints them (``hotline schema``, ``hotline diagram FLOW``); nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

from .errors import Location
from .flow import _FIELDS, TOP_LEVEL, VALIDATORS, Flow, MenuNode, Node, SpeechNode

_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"
_KEY_PATTERN = "^[0-9*#]$"

_TARGET = {"$ref": "#/$defs/target"}
_PROMPT = {"$ref": "#/$defs/prompt"}
_NUMBER = {"type": "number", "minimum": 0}
_BOOL = {"type": "boolean"}
_EXPR = {"$ref": "#/$defs/expression"}
_WORDS = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}

# The schema of every node field, by name (a field means the same in every node type that has it).
_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    **{
        k: _PROMPT
        for k in ("prompt", "reprompt", "help", "announce", "hold", "position_prompt", "dtmf_prompt")
    },
    "callback_prompt": _PROMPT,
    **{
        k: _TARGET
        for k in ("next", "escalate_to", "default", "open", "closed", "holiday", "emergency", "fallback")
    },
    "callback_next": _TARGET,
    "after_agent": _TARGET,
    **{
        k: _NUMBER
        for k in (
            "timeout",
            "first_timeout",
            "inter_timeout",
            "max_seconds",
            "announce_every",
            "callback_after",
        )
    },
    "priority": {"type": "number"},
    "min_digits": {"type": "integer", "minimum": 1},
    "max_digits": {"type": "integer", "minimum": 1},
    **{k: _BOOL for k in ("interruptible", "secure", "interrupts", "speech")},
    "dtmf_fallback": _TARGET,
    "grammar": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "description": "value -> phrases a caller says for it",
    },
    "var": {"type": "string", "pattern": _NAME_PATTERN, "description": "variable to store the result in"},
    "question": {"type": "string"},
    "regex": {"type": "string", "description": "the digits must match it entirely"},
    "validator": {"enum": sorted(VALIDATORS)},
    "terminator": {"enum": ["#", "*", ""]},
    "callback_key": {"type": "string", "pattern": _KEY_PATTERN},
    "key": {"type": "string", "pattern": _KEY_PATTERN, "description": "the key that accepts (resume)"},
    "assign": {"type": "object", "additionalProperties": _EXPR, "description": "variable: expression"},
    "cases": {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "properties": {"if": _EXPR, "next": _TARGET},
            "required": ["if", "next"],
            "additionalProperties": False,
        },
    },
    "hours": {
        "type": "object",
        "description": 'weekday or range (mon-fri) -> "HH:MM-HH:MM", a list of them, or closed',
        "propertyNames": {"pattern": "^(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?$"},
        "additionalProperties": _WORDS,
    },
    "holidays": {"type": "array", "items": {"type": "string", "description": "YYYY-MM-DD"}},
    "switch": _EXPR,
    "url": {"type": "string", "pattern": "^(https?://|\\{)"},
    "method": {"enum": ["GET", "POST", "get", "post"]},
    "json": {"type": "object", "additionalProperties": _EXPR},
    "result": {"type": "object", "additionalProperties": {"type": "string"}},
    "flow": {"type": "string", "description": "the called flow's name"},
    "queue": {"type": "string"},
    "skills": _WORDS,
    "data": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
    "to": {"type": "string", "pattern": "^sips?:"},
}

_MENU_OPTIONS = {
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"pattern": _KEY_PATTERN},
    "additionalProperties": {
        "oneOf": [
            _TARGET,
            {
                "type": "object",
                "properties": {
                    "next": _TARGET,
                    "label": {"type": "string"},
                    "phrases": _WORDS,
                },
                "required": ["next"],
                "additionalProperties": False,
            },
        ]
    },
}
_LANGUAGE_OPTIONS = {
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"pattern": _KEY_PATTERN},
    "additionalProperties": {"type": "string", "description": "language code, e.g. en"},
}


def _node_schema(kind: str) -> dict[str, Any]:
    required, optional = _FIELDS[kind]
    props: dict[str, Any] = {"type": {"const": kind}}
    for name in sorted(required | optional):
        if name == "options":
            props[name] = _LANGUAGE_OPTIONS if kind == "language" else _MENU_OPTIONS
        else:
            props[name] = _FIELD_SCHEMAS[name]
    return {
        "type": "object",
        "properties": props,
        "required": ["type", *sorted(required)],
        "additionalProperties": False,
    }


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the flow language, for yaml-language-server."""
    defs: dict[str, Any] = {
        "target": {"type": "string", "pattern": _NAME_PATTERN, "description": "a node name"},
        "expression": {
            "type": ["string", "number", "boolean", "null"],
            "description": "e.g. caller.tier == 'gold' and queue.position > 3",
        },
        "prompt": {
            "oneOf": [
                {"type": "string", "description": "a WAV id"},
                {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "text": {
                            "oneOf": [
                                {"type": "string"},
                                {"type": "object", "additionalProperties": {"type": "string"}},
                            ]
                        },
                        "rate": {
                            "type": "integer",
                            "minimum": 60,
                            "maximum": 400,
                            "description": "TTS words per minute (slower for assisted callers)",
                        },
                    },
                    "anyOf": [{"required": ["id"]}, {"required": ["text"]}],
                    "additionalProperties": False,
                },
            ]
        },
        "interrupt": {
            "type": "object",
            "properties": {
                "keys": _WORDS,
                "phrases": _WORDS,
                "target": _TARGET,
                "reason": {"type": "string"},
            },
            "required": ["target"],
            "additionalProperties": False,
        },
    }
    for kind in _FIELDS:
        defs[f"node_{kind}"] = _node_schema(kind)
    top: dict[str, Any] = {
        "flow": {"type": "string"},
        "description": {"type": "string"},
        "language": {"type": "string"},
        "start": _TARGET,
        "variables": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        },
        "interrupts": {"type": "array", "items": {"$ref": "#/$defs/interrupt"}},
        "entry_points": {"type": "array", "items": {"type": "string"}},
        "nodes": {
            "type": "object",
            "propertyNames": {"pattern": _NAME_PATTERN},
            "additionalProperties": {"oneOf": [{"$ref": f"#/$defs/node_{k}"} for k in _FIELDS]},
        },
    }
    assert set(top) == set(TOP_LEVEL)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://hotline.invalid/flow.schema.json",
        "title": "hotline IVR flow",
        "type": "object",
        "properties": top,
        "required": ["start", "nodes"],
        "additionalProperties": False,
        "$defs": defs,
    }


def _label(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", " ")


def _kind(node: Node) -> str:
    return type(node).__name__.removesuffix("Node").lower()


def mermaid(flow: Flow) -> str:
    """A Mermaid flowchart of ``flow``: one box per node, one arrow per exit."""
    lines = ["flowchart TD", "  start((start))"]
    shapes = {"hangup": '(["{}"])', "transfer": '(["{}"])', "return": '(["{}"])', "queue": '[["{}"]]'}
    for name, node in flow.nodes.items():
        kind = _kind(node)
        text = _label(f"{name}<br/>{kind}")
        if kind in ("branch", "schedule"):
            lines.append(f'  n_{name}{{"{text}"}}')
        else:
            lines.append(f"  n_{name}" + shapes.get(kind, '["{}"]').format(text))
    lines.append(f"  start --> n_{flow.start}")
    for name, node in flow.nodes.items():
        for label, target, _ in node.edges():
            if label:
                lines.append(f'  n_{name} -->|"{_label(label)}"| n_{target}')
            else:
                lines.append(f"  n_{name} --> n_{target}")
    if flow.interrupts:
        lines.append('  any_input{{"any input node"}}')
        for i in flow.interrupts:
            said = ", ".join([*i.keys, *i.phrases])
            lines.append(f'  any_input -.->|"{_label(f"{said}: {i.reason}")}"| n_{i.target}')
    return "\n".join(lines) + "\n"


def spoken_phrases(flow: Flow) -> list[tuple[Location, str]]:
    """Every phrase a recognizer must know for ``flow`` (in the flow's language): menu option
    phrases, speech-node grammars and keyword-interrupt phrases, each with where it is written."""
    out: list[tuple[Location, str]] = []
    for node in flow.nodes.values():
        if isinstance(node, MenuNode):
            out += [(o.loc, p) for o in node.options.values() for p in o.phrases]
        elif isinstance(node, SpeechNode) and node.grammar is not None:
            out += [(node.loc, p) for phrases in node.grammar.values() for p in phrases]
    out += [(i.target_loc, p) for i in flow.interrupts for p in i.phrases]
    return out
