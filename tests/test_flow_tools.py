"""Designer tools: the JSON Schema of the language and Mermaid diagrams."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml

import ivr
from ivr.flow import _FIELDS

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "flows").glob("*.yaml"))


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].split("/")[-1]]
    return schema


def check(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> list[str]:
    """A small structural JSON-Schema check (jsonschema is not installed): the keywords we use."""
    schema = _resolve(schema, root)
    errors: list[str] = []
    if "oneOf" in schema:
        ok = [s for s in schema["oneOf"] if not check(value, s, root, where)]
        return [] if len(ok) == 1 else [f"{where}: matches {len(ok)} of oneOf"]
    if "anyOf" in schema and not any(not check(value, s, root, where) for s in schema["anyOf"]):
        errors.append(f"{where}: matches none of anyOf")
    if "const" in schema and value != schema["const"]:
        return [f"{where}: {value!r} != {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in enum"]
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        py = {
            "object": dict,
            "array": list,
            "string": str,
            "boolean": bool,
            "null": type(None),
            "integer": int,
            "number": (int, float),
        }
        if not any(
            isinstance(value, py[n]) and not (n in ("number", "integer") and isinstance(value, bool))
            for n in names
        ):
            return [f"{where}: {value!r} is not {names}"]
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        for req in schema.get("required", []):
            if req not in value:
                errors.append(f"{where}: missing {req}")
        props = schema.get("properties", {})
        for k, v in value.items():
            if "propertyNames" in schema:
                errors += check(k, schema["propertyNames"], root, f"{where}.{k}(name)")
            if k in props:
                errors += check(v, props[k], root, f"{where}.{k}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: unexpected {k}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += check(v, schema["additionalProperties"], root, f"{where}.{k}")
        if len(value) < schema.get("minProperties", 0):
            errors.append(f"{where}: too few properties")
    if isinstance(value, list):
        for i, item in enumerate(value):
            if "items" in schema:
                errors += check(item, schema["items"], root, f"{where}[{i}]")
    return errors


def _as_json(value: Any) -> Any:
    """YAML 1.2 (yaml-language-server) has no timestamps: dates are strings there."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value.isoformat() if isinstance(value, dt.date) else value


def test_schema_validates_the_shipped_flows() -> None:
    schema = ivr.json_schema()
    assert SHIPPED
    for path in SHIPPED:
        data = _as_json(yaml.safe_load(path.read_text()))
        assert check(data, schema, schema) == [], path


def test_schema_rejects_what_the_compiler_rejects() -> None:
    schema = ivr.json_schema()
    base = yaml.safe_load((ROOT / "flows" / "main.yaml").read_text())
    base["nodes"]["greeting"]["type"] = "hangoff"
    assert check(base, schema, schema)
    base = yaml.safe_load((ROOT / "flows" / "main.yaml").read_text())
    base["nodes"]["sales"]["priorty"] = 3
    assert check(base, schema, schema)
    base = yaml.safe_load((ROOT / "flows" / "main.yaml").read_text())
    del base["start"]
    assert check(base, schema, schema)


def test_schema_covers_every_node_type_and_field() -> None:
    defs = ivr.json_schema()["$defs"]
    for kind, (required, optional) in _FIELDS.items():
        node = defs[f"node_{kind}"]
        assert set(node["properties"]) == required | optional | {"type"}
        assert set(node["required"]) == required | {"type"}


def test_mermaid_diagram_of_the_main_flow() -> None:
    flow = ivr.load_flow(ROOT / "flows" / "main.yaml")
    chart = ivr.mermaid(flow)
    assert chart.startswith("flowchart TD\n")
    assert "  start --> n_who" in chart
    assert '  n_who -->|"default"| n_greeting' in chart
    assert '  n_who -->|"caller.assisted"| n_slow' in chart
    assert '  n_main_menu -->|"1"| n_sales' in chart
    assert '  n_main_menu -->|"escalate"| n_operator' in chart
    assert '  n_sales[["sales<br/>queue"]]' in chart


def test_mermaid_shows_branches_and_interrupts() -> None:
    text = """
start: b
interrupts:
  - {keys: ["0"], phrases: [agent], target: bye, reason: operator}
nodes:
  b:
    type: branch
    cases: [{if: "caller.number == \\"1\\"", next: bye}]
    default: bye
  bye: {type: hangup}
"""
    flow, diags = ivr.compile_flow(text, "t.yaml")
    assert flow is not None, diags
    chart = ivr.mermaid(flow)
    assert '  n_b{"b<br/>branch"}' in chart
    assert '  n_b -->|"caller.number == #quot;1#quot;"| n_bye' in chart
    assert '  any_input -.->|"0, agent: operator"| n_bye' in chart
