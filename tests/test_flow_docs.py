"""Every `yaml` example in docs/flows.md is a complete flow that validates."""

from __future__ import annotations

import re
from pathlib import Path

import ivr

DOC = Path(__file__).resolve().parent.parent / "docs" / "flows.md"
QUEUES = ["sales", "support", "operator"]


def examples() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_every_documented_example_is_a_valid_flow() -> None:
    blocks = examples()
    assert len(blocks) >= 14
    sources = {f"docs/flows.md#example{i}": text for i, text in enumerate(blocks, 1)}
    flows, diags = ivr.compile_flow_set(sources, known_queues=QUEUES, known_skills=["sales", "support"])
    assert diags == [], "\n".join(map(str, diags))
    assert len(flows) == len(blocks)  # every example has its own flow name


def test_every_node_type_has_an_example() -> None:
    used = set(re.findall(r"type: ([a-z]+)", "".join(examples())))
    assert set(ivr.NODE_TYPES) <= used, set(ivr.NODE_TYPES) - used
