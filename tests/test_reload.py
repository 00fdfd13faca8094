"""Hot reload: a real flows directory, a real loop, a fast poll."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

import cti_bridge
import ivr
from hotline import reload as hr

MAIN = """\
flow: main
start: hello
nodes:
  hello:
    type: play
    prompt: {{text: "{greeting}"}}
    next: bye
  bye:
    type: hangup
"""

HELPER = """\
flow: helper
start: hi
nodes:
  hi:
    type: play
    prompt: {text: "hi"}
    next: done
  done:
    type: return
"""

BROKEN = """\
flow: main
start: hello
nodes:
  hello:
    type: play
    prompt: {text: "oops"}
    next: nowhere
"""


async def until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Poll ``predicate`` on the loop until truthy, or fail after ``timeout`` seconds.

    (The async twin of tests.helpers.until; it belongs there once the lead merges this.)
    """
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)
    return value


class Recorder:
    def __init__(self) -> None:
        self.accepted: list[tuple[Mapping[str, ivr.Flow], hr.FlowReloaded]] = []
        self.rejected: list[tuple[list[ivr.Diagnostic], hr.FlowRejected]] = []

    def accept(self, flows: Mapping[str, ivr.Flow], event: hr.FlowReloaded) -> None:
        self.accepted.append((flows, event))

    def reject(self, diagnostics: list[ivr.Diagnostic], event: hr.FlowRejected) -> None:
        self.rejected.append((diagnostics, event))


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def watcher(directory: Path, rec: Recorder, **kw: Any) -> hr.FlowWatcher:
    return hr.FlowWatcher(
        directory=directory,
        compile=hr.compile_with(),
        on_accept=rec.accept,
        on_reject=rec.reject,
        interval=0.02,
        required=("main",),
        **kw,
    )


async def test_edit_break_fix_cycle(tmp_path: Path) -> None:
    write(tmp_path / "main.yaml", MAIN.format(greeting="v1"))
    write(tmp_path / "helper.yaml", HELPER)
    rec = Recorder()
    w = watcher(tmp_path, rec)
    flows, diagnostics = w.prime()
    assert not [d for d in diagnostics if d.severity == "error"]
    v1 = flows["main"].version
    held_by_a_call = flows["main"]  # what an in-progress call's interpreter holds
    w.start()
    try:
        # a valid edit: accepted, with a new version hash
        write(tmp_path / "main.yaml", MAIN.format(greeting="v2"))
        await until(lambda: rec.accepted, what="the valid edit accepted")
        new_flows, event = rec.accepted[-1]
        assert new_flows["main"].version != v1
        assert event.flows == {"helper": new_flows["helper"].version, "main": new_flows["main"].version}
        assert event.changed == ["main"] and event.removed == []
        v2 = new_flows["main"].version
        assert w.live["main"].version == v2
        assert held_by_a_call.version == v1  # the call in progress keeps its flow

        # a broken edit: rejected with file:line, the previous version stays live
        write(tmp_path / "main.yaml", BROKEN)
        await until(lambda: rec.rejected, what="the broken edit rejected")
        diags, rejected = rec.rejected[-1]
        assert rejected.file == str(tmp_path / "main.yaml")
        assert rejected.code == "flow.unknown_node" and rejected.line == 7 and rejected.col > 1
        assert rejected.errors == len(diags) >= 1
        assert "nowhere" in rejected.message
        assert str(diags[0]).startswith(f"{tmp_path / 'main.yaml'}:7:")
        assert w.live["main"].version == v2
        assert len(rec.accepted) == 1

        # fixed: accepted again
        write(tmp_path / "main.yaml", MAIN.format(greeting="v3"))
        await until(lambda: len(rec.accepted) == 2, what="the fix accepted")
        assert w.live["main"].version not in (v1, v2)
        assert len(rec.rejected) == 1  # each state is judged once, not on every poll
    finally:
        await w.stop()


async def test_an_untouched_broken_draft_does_not_block_reloads(tmp_path: Path) -> None:
    write(tmp_path / "main.yaml", MAIN.format(greeting="v1"))
    write(tmp_path / "draft.yaml", BROKEN.replace("flow: main", "flow: draft"))
    rec = Recorder()
    w = watcher(tmp_path, rec)
    w.prime()
    write(tmp_path / "main.yaml", MAIN.format(greeting="v2"))
    await _polls(w, 2)
    assert rec.accepted and not rec.rejected
    assert set(w.live) == {"main"}


async def test_deleting_the_main_flow_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "main.yaml", MAIN.format(greeting="v1"))
    rec = Recorder()
    w = watcher(tmp_path, rec)
    w.prime()
    (tmp_path / "main.yaml").unlink()
    await _polls(w, 2)
    assert rec.rejected[-1][1].code == "flow.missing"
    assert "main" in w.live


async def test_removing_a_called_subflow_is_rejected(tmp_path: Path) -> None:
    caller = MAIN.format(greeting="v1").replace("next: bye", "next: sub") + (
        "  sub:\n    type: subflow\n    flow: helper\n    next: bye\n"
    )
    write(tmp_path / "main.yaml", caller)
    write(tmp_path / "helper.yaml", HELPER)
    rec = Recorder()
    w = watcher(tmp_path, rec)
    _, diagnostics = w.prime()
    assert not [d for d in diagnostics if d.severity == "error"], diagnostics
    (tmp_path / "helper.yaml").unlink()
    await _polls(w, 2)
    assert rec.rejected and rec.rejected[-1][1].code == "flow.unknown_subflow"
    assert set(w.live) == {"main", "helper"}


async def test_a_half_written_file_is_not_judged_until_it_settles(tmp_path: Path) -> None:
    write(tmp_path / "main.yaml", MAIN.format(greeting="v1"))
    rec = Recorder()
    w = watcher(tmp_path, rec)
    w.prime()
    write(tmp_path / "main.yaml", BROKEN[:40])
    assert w.poll() is None  # changed since the last poll: wait for it to hold still
    write(tmp_path / "main.yaml", MAIN.format(greeting="v2"))
    assert w.poll() is None
    decision = w.poll()
    assert decision is not None and decision.accepted and not rec.rejected


async def test_same_size_same_mtime_rewrite_is_still_seen(tmp_path: Path) -> None:
    path = tmp_path / "main.yaml"
    write(path, MAIN.format(greeting="v1"))
    rec = Recorder()
    w = watcher(tmp_path, rec)
    w.prime()
    stat = path.stat()
    write(path, MAIN.format(greeting="v9"))  # same length
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    await _polls(w, 2)
    assert rec.accepted and rec.accepted[-1][1].changed == ["main"]


async def test_a_too_deep_expression_is_rejected_with_an_event_not_a_traceback(tmp_path: Path) -> None:
    """Issue 11, defect 6: on hot reload, 200 nested parentheses logged a RecursionError
    traceback (flow_watch_failed) and no ivr.flow_rejected was sent."""
    write(tmp_path / "main.yaml", MAIN.format(greeting="v1"))
    rec = Recorder()
    w = watcher(tmp_path, rec)
    w.prime()
    deep = "(" * 200 + "true" + ")" * 200
    write(
        tmp_path / "main.yaml",
        MAIN.format(greeting="v1").replace("next: bye", "next: pick")
        + f'  pick:\n    type: branch\n    cases:\n      - if: "{deep}"\n        next: bye\n'
        "    default: bye\n",
    )
    with structlog.testing.capture_logs() as logs:
        w.start()
        try:
            await until(lambda: rec.rejected, what="the deep expression rejected")
        finally:
            await w.stop()
    rejected = rec.rejected[-1][1]
    assert rejected.file == str(tmp_path / "main.yaml")
    assert (rejected.line, rejected.code) == (13, "flow.bad_expression")
    assert rejected.col == 13 + 1 + 32 and "32 levels" in rejected.message
    assert not [e for e in logs if e["event"] == "flow_watch_failed" or "exc_info" in e]


async def test_a_crashing_compiler_rejects_the_edit_and_keeps_the_live_flows(tmp_path: Path) -> None:
    """A compiler bug must end as ivr.flow_rejected (flow.compiler_failed) with one log
    line, never as a traceback with the previous set silently kept."""
    write(tmp_path / "main.yaml", MAIN.format(greeting="v1"))
    real = hr.compile_with()
    crash = {"on": False}

    def compile_or_crash(sources: Mapping[str, str]) -> Any:
        if crash["on"]:
            raise RecursionError("maximum recursion depth exceeded")
        return real(sources)

    rec = Recorder()
    w = hr.FlowWatcher(
        directory=tmp_path,
        compile=compile_or_crash,
        on_accept=rec.accept,
        on_reject=rec.reject,
        interval=0.02,
        required=("main",),
    )
    w.prime()
    v1 = w.live["main"].version
    crash["on"] = True
    write(tmp_path / "main.yaml", MAIN.format(greeting="v2"))
    with structlog.testing.capture_logs() as logs:
        await _polls(w, 2)
    event = rec.rejected[-1][1]
    assert event.code == "flow.compiler_failed" and event.file == str(tmp_path / "main.yaml")
    assert "RecursionError" in event.message
    assert w.live["main"].version == v1
    names = [e["event"] for e in logs]
    assert names[0] == "flow_compiler_failed" and set(names[1:]) == {"flow_rejected"}
    assert not any("exc_info" in e for e in logs)


async def test_events_have_wire_names_and_schemas() -> None:
    schemas = cti_bridge.vocabulary_schemas((hr.FlowReloaded, hr.FlowRejected))
    assert set(schemas) == {"ivr.flow_reloaded", "ivr.flow_rejected"}
    rejected = hr.FlowRejected(file="f.yaml", line=3, col=5, code="flow.x", message="m", hint="h", errors=2)
    assert cti_bridge.envelope(1, rejected, 0.0)["data"]["line"] == 3


async def _polls(w: hr.FlowWatcher, n: int) -> None:
    for _ in range(n):
        w.poll()


async def test_a_rejection_event_quotes_a_huge_value_only_briefly(tmp_path: Path) -> None:
    """Found by bench/fuzz.py: a diagnostic quoting a 100,000-character value made an
    ivr.flow_rejected line longer than CTI clients read (64 KiB is common)."""
    write(tmp_path / "main.yaml", MAIN.format(greeting="v1"))
    rec = Recorder()
    w = watcher(tmp_path, rec)
    w.prime()
    write(tmp_path / "main.yaml", BROKEN.replace("next: nowhere", "next: " + "x" * 100_000))
    await _polls(w, 2)
    event = rec.rejected[-1][1]
    assert event.code == "flow.unknown_node" and len(event.message) <= 500 and event.message.endswith("…")
    assert len(cti_bridge.envelope(1, event, 0.0)["data"]["message"]) <= 500
