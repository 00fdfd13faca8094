"""The broken-flow corpus: each file in tests/flows/broken/ names its expected code and line.

A file starts with ``# expect: <code> <line>``; the compiler must report that code,
and the first diagnostic with that code must be on that line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ivr

BROKEN = sorted((Path(__file__).parent / "flows" / "broken").glob("*.yaml"))
QUEUES = ["sales", "support", "operator", "care"]
SKILLS = ["sales", "support"]
FLOWS = ["main", "verify"]


def expectation(path: Path) -> tuple[str, int]:
    m = re.match(r"# expect: (flow\.[a-z_]+) (\d+)\n", path.read_text(encoding="utf-8"))
    assert m, f"{path.name} must start with '# expect: <code> <line>'"
    return m.group(1), int(m.group(2))


def test_the_corpus_is_large_enough() -> None:
    assert len(BROKEN) >= 40
    assert len({expectation(p)[0] for p in BROKEN}) >= 20  # and varied


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_flow(path: Path) -> None:
    code, line = expectation(path)
    flow, diags = ivr.compile_flow(
        path.read_text(encoding="utf-8"),
        str(path),
        known_queues=QUEUES,
        known_skills=SKILLS,
        known_flows=FLOWS,
    )
    assert flow is None
    found = [d for d in diags if d.code == code]
    assert found, f"expected {code}, got {[str(d) for d in diags]}"
    assert found[0].loc.line == line, str(found[0])
    for d in diags:
        assert d.loc.file == str(path) and d.hint and d.code.startswith("flow.")
        assert d.severity in ("error", "warning")
