"""Designer tools: the JSON Schema of the language and Mermaid diagrams."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jsonschema
import yaml

import ivr
from ivr.flow import _FIELDS

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "flows").glob("*.yaml"))


def errors(data: Any) -> list[str]:
    """Every way ``data`` breaks the flow schema, by the real jsonschema (draft 2020-12)."""
    schema = ivr.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]


def test_schema_validates_the_shipped_flows() -> None:
    """As PyYAML reads them (YAML 1.1): an unquoted date would be a date, not a string, and fail."""
    assert len(SHIPPED) >= 2
    for path in SHIPPED:
        assert errors(yaml.safe_load(path.read_text())) == [], path
    assert errors({"start": "a", "nodes": {"a": {"type": "schedule", "hours": {}, "open": "a", "closed": "a",
                   "holidays": [dt.date(2025, 12, 25)]}}})  # fmt: skip


def test_schema_rejects_what_the_compiler_rejects() -> None:
    base = yaml.safe_load((ROOT / "flows" / "main.yaml").read_text())
    base["nodes"]["greeting"]["type"] = "hangoff"
    assert errors(base)
    base = yaml.safe_load((ROOT / "flows" / "main.yaml").read_text())
    base["nodes"]["sales"]["priorty"] = 3
    assert errors(base)
    base = yaml.safe_load((ROOT / "flows" / "main.yaml").read_text())
    del base["start"]
    assert errors(base)


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
