"""The flow compiler reports file:line:col, a stable code and a hint for each mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ivr

ROOT = Path(__file__).resolve().parent.parent
QUEUES = ["sales", "support", "operator", "care"]

GOOD = """\
flow: ok
start: menu
nodes:
  menu:
    type: menu
    prompt: {text: "Press 1"}
    options:
      "1": {next: q, label: sales}
    escalate_to: q
  q:
    type: queue
    queue: sales
"""

BROKEN = [
    # (name, source, code, line)
    ("yaml_syntax", "start: a\nnodes:\n  a: {type: hangup\n", "flow.yaml_syntax", 3),  # where { opened
    ("empty", "", "flow.empty", 1),
    ("no_start", "nodes:\n  a: {type: hangup}\n", "flow.missing_field", 1),
    ("unknown_type", "start: a\nnodes:\n  a:\n    type: hangoff\n", "flow.unknown_node_type", 4),
    ("unknown_target", GOOD.replace("escalate_to: q", "escalate_to: nowhere"), "flow.unknown_node", 9),
    ("unknown_start", GOOD.replace("start: menu", "start: menus"), "flow.unknown_node", 2),
    ("unknown_queue", GOOD.replace("queue: sales", "queue: sails"), "flow.unknown_queue", 12),
    (
        "unknown_field",
        GOOD.replace("    queue: sales", "    queue: sales\n    priorty: 3"),
        "flow.unknown_field",
        13,
    ),
    ("missing_escalation", GOOD.replace("    escalate_to: q\n", ""), "flow.missing_field", 4),
    ("bad_key", GOOD.replace('"1": {next: q', '"x": {next: q'), "flow.bad_key", 8),
    (
        "bad_timeout",
        GOOD.replace("    escalate_to: q", "    escalate_to: q\n    timeout: soon"),
        "flow.bad_value",
        10,
    ),
    ("duplicate_key", GOOD + "  q:\n    type: hangup\n", "flow.duplicate_key", 13),
    ("unreachable", GOOD + "  lost:\n    type: hangup\n", "flow.unreachable_node", 13),
    ("bad_uri", "start: t\nnodes:\n  t: {type: transfer, to: desk}\n", "flow.bad_uri", 3),
    ("empty_prompt", "start: p\nnodes:\n  p: {type: play, prompt: {}, next: p}\n", "flow.empty_prompt", 3),
]


@pytest.mark.parametrize(("name", "source", "code", "line"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_flow_reports_code_and_line(name: str, source: str, code: str, line: int) -> None:
    flow, diags = ivr.compile_flow(source, f"{name}.yaml", known_queues=QUEUES)
    assert flow is None
    match = [d for d in diags if d.code == code]
    assert match, f"expected {code}, got {[str(d) for d in diags]}"
    assert match[0].loc.line == line, str(match[0])
    assert match[0].loc.file == f"{name}.yaml"
    assert match[0].hint


def test_did_you_mean_hints() -> None:
    _, diags = ivr.compile_flow(GOOD.replace("queue: sales", "queue: sails"), "f.yaml", known_queues=QUEUES)
    assert "did you mean 'sales'?" in diags[0].hint
    _, diags = ivr.compile_flow("start: a\nnodes:\n  a: {type: menuu}\n", "f.yaml")
    assert "did you mean 'menu'?" in diags[0].hint


def test_shipped_flows_are_valid() -> None:
    for path in (ROOT / "flows").glob("*.yaml"):
        ivr.load_flow(path, known_queues=QUEUES)


def test_version_is_a_content_hash() -> None:
    a, _ = ivr.compile_flow(GOOD, "a.yaml")
    b, _ = ivr.compile_flow(GOOD + "# comment\n", "a.yaml")
    assert a is not None and b is not None and a.version != b.version


def test_validate_cli_exit_codes_and_format(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("escalate_to: q", "escalate_to: nowhere"))
    run = subprocess.run(
        [sys.executable, "-m", "hotline", "validate", str(bad)], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 1
    assert f"{bad}:9:18: flow.unknown_node:" in run.stdout
    ok = subprocess.run(
        [sys.executable, "-m", "hotline", "validate", "flows", "--config", "config.toml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_a_deeply_nested_expression_is_a_diagnostic_not_a_traceback(tmp_path: Path) -> None:
    """Issue 11, defect 6: 200 nested parentheses in a branch `if:` ended `hotline validate`
    in a RecursionError traceback."""
    deep = tmp_path / "deep.yaml"
    condition = "(" * 200 + "true" + ")" * 200
    deep.write_text(
        "flow: deep\nstart: b\nnodes:\n  b:\n    type: branch\n    cases:\n"
        f'      - if: "{condition}"\n        next: h\n    default: h\n  h:\n    type: hangup\n'
    )
    run = subprocess.run(
        [sys.executable, "-m", "hotline", "validate", str(deep)], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "RecursionError" not in run.stdout + run.stderr
    # line 7; the 33rd parenthesis, one column after the opening quote at column 13
    assert f"{deep}:7:{13 + 1 + 32}: flow.bad_expression:" in run.stdout
    assert "nested more than 32 levels deep" in run.stdout


def test_an_int_yaml_cannot_convert_is_not_a_crash() -> None:
    """Found by the flow fuzzer (tests/fuzzing.py): 5000 digits made yaml.safe_load raise
    ValueError (Python's int-size limit) out of compile_flow_set."""
    source = "flow: f\nvariables:\n  x: " + "9" * 5000 + "\nstart: h\nnodes:\n  h: {type: hangup}\n"
    flows, diags = ivr.compile_flow_set({"f.yaml": source}, known_queues=QUEUES)
    assert "f" in flows, diags


def test_yaml_nesting_is_refused_before_pyyaml_parses_it() -> None:
    """PyYAML's scanner is quadratic in [ ] nesting: 2000 levels took about 2 s of the event
    loop on every hot reload before its RecursionError. Now the nesting limit answers first."""
    source = "flow: f\nstart: " + "[" * 2000 + "]" * 2000 + "\nnodes:\n  h: {type: hangup}\n"
    _flows, diags = ivr.compile_flow_set({"f.yaml": source}, known_queues=QUEUES)
    assert [d.code for d in diags] == ["flow.yaml_syntax"]
    assert "nested more than 64 levels" in diags[0].message


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_crashes_the_compiler(text: str) -> None:
    flow, diags = ivr.compile_flow(text, "r.yaml", known_queues=QUEUES)
    assert (flow is None) == any(d.severity == "error" for d in diags)
    for d in diags:
        assert d.code.startswith("flow.") and d.loc.line >= 1


def test_missing_audio_is_a_warning_that_does_not_stop_the_flow() -> None:
    text = (
        "start: p\nnodes:\n  p: {type: play, prompt: nosuchwav, next: q}\n  q: {type: queue, queue: sales}\n"
    )
    flow, diags = ivr.compile_flow(text, "w.yaml", known_queues=QUEUES, known_prompts={"welcome"})
    assert flow is not None
    assert [(d.code, d.severity, d.loc.line) for d in diags] == [("flow.missing_audio", "warning", 3)]
    assert flow.warnings == tuple(diags)
    assert str(diags[0]).startswith("w.yaml:3:27: flow.missing_audio: warning: ")
    flow, diags = ivr.compile_flow(text, "w.yaml", known_queues=QUEUES, known_prompts={"nosuchwav"})
    assert flow is not None and diags == []
    flow, diags = ivr.compile_flow(text, "w.yaml", known_queues=QUEUES)  # no prompt list: no check
    assert flow is not None and diags == []


EVERY_MISTAKE = """\
start: menu
nodes:
  menu:
    type: menu
    prompt: {text: "Press 1"}
    options:
      "1": {next: ask}
    escalate_to: helpp
    timeout: soon
    interruptible: maybe
  ask:
    type: collect
    prompt: {text: "Your number"}
    var: account
    next: check
    max_digits: many
    colour: blue
  check:
    type: branch
    cases: [{if: "tier == 'gold'", next: help}]
    default: help
  help:
    type: play
    prompt: {text: "Hold on"}
    next: q
  q:
    type: queue
    queue: sails
  lost:
    type: hangup
"""


def test_one_run_reports_every_mistake_of_a_broken_flow() -> None:
    """Every layer at once: field values of a node with an unknown field, an unknown target,
    an unknown queue, an undefined variable and an unreachable node, even though two nodes
    did not compile (which used to hide the graph checks until they were fixed)."""
    _flow, diags = ivr.compile_flow(EVERY_MISTAKE, "f.yaml", known_queues=QUEUES)
    found = sorted((d.loc.line, d.code) for d in diags)
    assert found == [
        (8, "flow.unknown_node"),  # escalate_to: helpp
        (9, "flow.bad_value"),  # timeout: soon
        (10, "flow.bad_value"),  # interruptible: maybe
        (11, "flow.missing_field"),  # ask has no escalate_to
        (16, "flow.bad_value"),  # max_digits: many (in a node that also has an unknown field)
        (17, "flow.unknown_field"),  # colour
        (20, "flow.undefined_variable"),  # tier: read by a valid node while 'ask' is broken
        (28, "flow.unknown_queue"),
        (29, "flow.unreachable_node"),  # lost
    ], [str(d) for d in diags]
    # nothing invented: 'help' is reached through the broken nodes, not reported unreachable


def test_fixing_the_reported_mistakes_leaves_no_new_ones() -> None:
    fixed = (
        EVERY_MISTAKE.replace("helpp", "help")
        .replace("    timeout: soon\n", "")
        .replace("    interruptible: maybe\n", "")
        .replace("    max_digits: many\n    colour: blue\n", "    escalate_to: help\n")
        .replace("tier == 'gold'", "account == '1'")
        .replace("queue: sails", "queue: sales")
        .replace("  lost:\n    type: hangup\n", "")
    )
    flow, diags = ivr.compile_flow(fixed, "f.yaml", known_queues=QUEUES)
    assert flow is not None, [str(d) for d in diags]


def test_an_unclosed_bracket_is_reported_where_it_opened() -> None:
    text = "start: a\nnodes:\n  a: {type: hangup\n  b: {type: hangup}\n"
    _, (d,) = ivr.compile_flow(text, "f.yaml")
    assert (d.code, d.loc.line, d.loc.col) == ("flow.yaml_syntax", 3, 6), str(d)
    assert "never closed" in d.message and "line 4" in d.message  # and where the parser gave up
    _, (d,) = ivr.compile_flow("start: a\nnodes:\n  a:\n    - [1, 2\n    - 3\n  b: c\n", "f.yaml")
    assert (d.loc.line, d.loc.col) == (4, 7) and "[" in d.message, str(d)
    _, (d,) = ivr.compile_flow('start: "a\nnodes: {}\n', "f.yaml")
    assert (d.loc.line, d.loc.col) == (1, 8) and "quote" in d.message, str(d)


def test_validate_cli_prints_every_mistake_in_one_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EVERY_MISTAKE)
    run = subprocess.run(
        [sys.executable, "-m", "hotline", "validate", str(bad), "--config", "config.toml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 1
    assert len([line for line in run.stdout.splitlines() if ": flow." in line]) == 9, run.stdout
