"""ACD core with a fake clock: transitions, routing, ring-no-answer, abandon, wrap-up."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import acd
from acd import AgentSpec, AgentState, QueueSpec
from acd import events as ev

from .helpers import FakeClock

S = AgentState


def make_router(
    agents: int = 2, *, ring_timeout: float = 10.0, wrap_up: float = 5.0, max_no_answer: int = 3
) -> acd.Router:
    queues = [
        QueueSpec(
            name="sales",
            skills=("sales",),
            ring_timeout=ring_timeout,
            wrap_up=wrap_up,
            max_no_answer=max_no_answer,
            retry_delay=5.0,
        ),
        QueueSpec(name="any", skills=(), ring_timeout=ring_timeout, wrap_up=0.0),
    ]
    specs = [
        AgentSpec(id=f"a{i}", name=f"A{i}", skills=("sales",), contact=f"sip:a{i}@127.0.0.1")
        for i in range(1, agents + 1)
    ]
    return acd.build_router(queues, specs)


def ready(r: acd.Router, agent_id: str, now: float) -> None:
    r.handle(ev.AgentLoggedIn(agent_id=agent_id), now)
    r.handle(ev.AgentBecameReady(agent_id=agent_id), now)


def of(outputs: list[object], kind: type) -> list:
    return [o for o in outputs if isinstance(o, kind)]


def test_every_legal_transition_is_reachable_and_recorded() -> None:
    r = make_router(1)
    out = r.handle(ev.AgentLoggedIn(agent_id="a1"), 1.0)
    assert out == [ev.AgentStateChanged(agent_id="a1", from_=S.LOGGED_OUT, to=S.NOT_READY, reason="login")]
    r.handle(ev.AgentBecameReady(agent_id="a1"), 2.0)
    assert r.agent_state("a1") is S.AVAILABLE
    r.handle(ev.AgentWentNotReady(agent_id="a1", reason="break"), 3.0)
    assert r.agents["a1"].reason == "break" and r.agents["a1"].since == 3.0
    r.handle(ev.AgentLoggedOut(agent_id="a1"), 4.0)
    assert r.agent_state("a1") is S.LOGGED_OUT


@pytest.mark.parametrize(
    ("setup", "bad"),
    [
        ([], ev.AgentBecameReady(agent_id="a1")),  # logged out -> ready
        ([], ev.AgentWentNotReady(agent_id="a1", reason="x")),
        ([ev.AgentLoggedIn(agent_id="a1")], ev.AgentLoggedIn(agent_id="a1")),
    ],
)
def test_illegal_transition_raises_and_leaves_state(setup: list, bad: object) -> None:
    r = make_router(1)
    for e in setup:
        r.handle(e, 0.0)
    before = r.agent_state("a1")
    with pytest.raises(acd.IllegalTransition) as info:
        r.handle(bad, 1.0)  # type: ignore[arg-type]
    assert info.value.code == "acd.illegal_transition"
    assert r.agent_state("a1") is before


def test_unknown_agent_and_queue_have_stable_codes() -> None:
    r = make_router(1)
    with pytest.raises(acd.AcdUsageError) as info:
        r.handle(ev.AgentLoggedIn(agent_id="nobody"), 0.0)
    assert info.value.code == "acd.unknown_agent"
    with pytest.raises(acd.AcdUsageError) as info:
        r.handle(ev.CallEnqueued(call_id="c1", queue="nope"), 0.0)
    assert info.value.code == "acd.unknown_queue"


def test_longest_idle_agent_is_rung_and_call_connects() -> None:
    clock = FakeClock()
    r = make_router(2)
    ready(r, "a2", clock.now)  # a2 idle first
    clock.advance(10)
    ready(r, "a1", clock.now)
    out = r.handle(ev.CallEnqueued(call_id="c1", queue="sales", data={"caller": "555"}), clock.now)
    queued = of(out, ev.CallQueued)[0]
    assert queued.position == 1
    ring = of(out, ev.RingAgent)[0]
    assert ring.agent_id == "a2" and ring.contact == "sip:a2@127.0.0.1"
    offered = of(out, ev.AgentOffered)[0]
    assert offered.data == {"caller": "555"} and offered.attempt == 1
    assert r.agent_state("a2") is S.RESERVED
    clock.advance(3)
    out = r.handle(ev.AgentAnswered(call_id="c1", agent_id="a2"), clock.now)
    assert of(out, ev.BridgeCall) == [ev.BridgeCall(call_id="c1", agent_id="a2")]
    assert of(out, ev.CallConnected)[0].wait_seconds == pytest.approx(3)
    assert r.agent_state("a2") is S.ON_CALL


def test_ring_no_answer_tries_next_agent_and_keeps_position() -> None:
    clock = FakeClock()
    r = make_router(2, ring_timeout=10)
    ready(r, "a1", clock.now)
    ready(r, "a2", clock.now + 1)
    r.handle(ev.CallEnqueued(call_id="c1", queue="sales"), clock.now)
    assert r.agents["a1"].state is S.RESERVED
    r.handle(ev.CallEnqueued(call_id="c2", queue="sales"), clock.now)  # goes to a2
    assert r.agents["a2"].call_id == "c2"
    assert r.next_deadline() == pytest.approx(10)
    clock.advance(10)
    out = r.on_timer(clock.now)
    assert ev.CancelRing(call_id="c1", agent_id="a1") in out
    failed = of(out, ev.AgentOfferFailed)
    assert {f.call_id for f in failed} == {"c1", "c2"}
    assert all(f.cause == "no_answer" for f in failed)
    # each call is offered to the other agent, not back to the one who failed it
    rings = {x.call_id: x.agent_id for x in of(out, ev.RingAgent)}
    assert rings == {"c1": "a2", "c2": "a1"}


def test_n_consecutive_no_answers_set_agent_not_ready() -> None:
    clock = FakeClock()
    r = make_router(1, ring_timeout=5, max_no_answer=2)
    ready(r, "a1", clock.now)
    r.handle(ev.CallEnqueued(call_id="c1", queue="sales"), clock.now)
    clock.advance(5)
    out = r.on_timer(clock.now)  # first no-answer: back to available, retry after delay
    assert r.agent_state("a1") is S.AVAILABLE
    assert not of(out, ev.RingAgent)
    clock.advance(5)
    out = r.on_timer(clock.now)  # retry delay over: rung again
    assert of(out, ev.RingAgent)[0].agent_id == "a1"
    clock.advance(5)
    out = r.on_timer(clock.now)
    changes = of(out, ev.AgentStateChanged)
    assert changes[-1].to is S.NOT_READY and changes[-1].reason == "no_answer"
    assert r.position("c1") == 1  # the caller still waits, first in line


def test_agent_busy_counts_as_failed_offer() -> None:
    r = make_router(2)
    ready(r, "a1", 0.0)
    ready(r, "a2", 1.0)
    r.handle(ev.CallEnqueued(call_id="c1", queue="sales"), 2.0)
    out = r.handle(ev.AgentRingFailed(call_id="c1", agent_id="a1", cause="busy"), 2.5)
    assert of(out, ev.AgentOfferFailed)[0].cause == "busy"
    assert of(out, ev.RingAgent)[0].agent_id == "a2"


def test_caller_abandons_while_waiting_and_while_ringing() -> None:
    r = make_router(1)
    r.handle(ev.CallEnqueued(call_id="c1", queue="sales"), 0.0)
    out = r.handle(ev.CallerHungUp(call_id="c1"), 7.0)
    assert of(out, ev.CallAbandoned) == [ev.CallAbandoned(call_id="c1", queue="sales", wait_seconds=7.0)]
    ready(r, "a1", 8.0)
    r.handle(ev.CallEnqueued(call_id="c2", queue="sales"), 9.0)
    out = r.handle(ev.CallerHungUp(call_id="c2"), 10.0)
    assert ev.CancelRing(call_id="c2", agent_id="a1") in out
    assert r.agent_state("a1") is S.AVAILABLE
    assert r.next_deadline() is None  # the ring timer went with the call


def test_wrap_up_then_available_or_ended_early() -> None:
    clock = FakeClock()
    r = make_router(1, wrap_up=30)
    ready(r, "a1", clock.now)
    r.handle(ev.CallEnqueued(call_id="c1", queue="sales"), clock.now)
    r.handle(ev.AgentAnswered(call_id="c1", agent_id="a1"), clock.now)
    r.handle(ev.AgentHungUp(call_id="c1", agent_id="a1"), clock.advance(60))
    assert r.agent_state("a1") is S.WRAP_UP
    r.handle(ev.CallEnqueued(call_id="c2", queue="sales"), clock.now)
    assert r.agent_state("a1") is S.WRAP_UP  # not offered during wrap-up
    out = r.on_timer(clock.advance(30))
    assert r.agent_state("a1") is S.RESERVED and of(out, ev.RingAgent)
    # ending wrap-up early by command
    r.handle(ev.AgentAnswered(call_id="c2", agent_id="a1"), clock.now)
    r.handle(ev.CallerHungUp(call_id="c2"), clock.advance(5))
    assert r.agent_state("a1") is S.WRAP_UP
    r.handle(ev.AgentBecameReady(agent_id="a1"), clock.advance(1))
    assert r.agent_state("a1") is S.AVAILABLE
    assert r.next_deadline() is None


def test_priority_goes_first_and_skills_must_match() -> None:
    r = make_router(0)
    r.agents["x"] = acd.router.Agent(
        spec=AgentSpec(id="x", name="X", skills=("other",), contact="sip:x@h"), contact="sip:x@h"
    )
    r.handle(ev.CallEnqueued(call_id="low", queue="sales", priority=0), 0.0)
    r.handle(ev.CallEnqueued(call_id="high", queue="sales", priority=5), 1.0)
    assert r.waiting("sales") == ["high", "low"]
    out = []
    r.handle(ev.AgentLoggedIn(agent_id="x"), 2.0)
    out = r.handle(ev.AgentBecameReady(agent_id="x"), 2.0)
    assert not of(out, ev.RingAgent)  # x lacks the skill
    r.handle(ev.CallEnqueued(call_id="anyone", queue="any"), 3.0)
    assert r.agents["x"].call_id == "anyone"


# ------------------------------------------------------------------ properties
AGENTS = ["a1", "a2", "a3"]
CALLS = ["c1", "c2", "c3", "c4"]
event_strategy = st.one_of(
    st.builds(ev.AgentLoggedIn, agent_id=st.sampled_from(AGENTS)),
    st.builds(ev.AgentBecameReady, agent_id=st.sampled_from(AGENTS)),
    st.builds(ev.AgentWentNotReady, agent_id=st.sampled_from(AGENTS), reason=st.just("break")),
    st.builds(ev.AgentLoggedOut, agent_id=st.sampled_from(AGENTS)),
    st.builds(ev.CallEnqueued, call_id=st.sampled_from(CALLS), queue=st.sampled_from(["sales", "any"])),
    st.builds(ev.CallerHungUp, call_id=st.sampled_from(CALLS)),
    st.builds(ev.AgentAnswered, call_id=st.sampled_from(CALLS), agent_id=st.sampled_from(AGENTS)),
    st.builds(
        ev.AgentRingFailed,
        call_id=st.sampled_from(CALLS),
        agent_id=st.sampled_from(AGENTS),
        cause=st.just("busy"),
    ),
    st.builds(ev.AgentHungUp, call_id=st.sampled_from(CALLS), agent_id=st.sampled_from(AGENTS)),
    st.floats(min_value=0.1, max_value=20.0),  # time passes
)


@settings(max_examples=300, deadline=None)
@given(st.lists(event_strategy, max_size=60))
def test_invariants_hold_after_every_event(steps: list) -> None:
    r = make_router(3, ring_timeout=4, wrap_up=2)
    now = 0.0
    for step in steps:
        if isinstance(step, float):
            now += step
            r.on_timer(now)
        else:
            with contextlib.suppress(acd.AcdUsageError):
                r.handle(step, now)
        offered = [a.call_id for a in r.agents.values() if a.state in (S.RESERVED, S.ON_CALL)]
        # no caller is offered to (or talking with) two agents at once
        assert len(offered) == len(set(offered))
        # an available agent with the skills never idles while a matching caller waits
        # (unless that agent just failed that caller and the retry delay still runs)
        for call_id in r.waiting("sales") + r.waiting("any"):
            entry = r._entries[call_id]
            for agent in r.agents.values():
                if agent.state is S.AVAILABLE and all(s in agent.spec.skills for s in entry.queue.skills):
                    failed = entry.failed_at.get(agent.spec.id)
                    assert failed is not None and failed + entry.queue.retry_delay > now


def test_state_diagram_in_docs_is_generated_from_the_table() -> None:
    from pathlib import Path

    from acd.diagram import agent_state_mermaid

    doc = (Path(__file__).resolve().parent.parent / "docs" / "acd.md").read_text()
    assert agent_state_mermaid() in doc, "run `python -m acd.diagram` and paste it into docs/acd.md"


def test_a_waiting_callers_priority_can_be_changed_in_place() -> None:
    r = make_router(0)
    for n, cid in enumerate(["c1", "c2", "c3"]):
        r.handle(ev.CallEnqueued(call_id=cid, queue="sales"), float(n))
    out = r.handle(ev.CallPriorityChanged(call_id="c3", priority=5), 3.0)
    assert out == [ev.CallReprioritized(call_id="c3", queue="sales", priority=5, position=1)]
    assert r.waiting("sales") == ["c3", "c1", "c2"]
    r.handle(ev.CallPriorityChanged(call_id="c3", priority=0), 4.0)
    assert r.waiting("sales") == ["c1", "c2", "c3"]  # back to arrival order: it keeps its arrival time
    with pytest.raises(acd.AcdUsageError) as info:
        r.handle(ev.CallPriorityChanged(call_id="nope", priority=1), 5.0)
    assert info.value.code == "acd.unknown_call"


def test_a_caller_can_need_skills_beyond_the_queues() -> None:
    queues = [QueueSpec(name="q", skills=("support",), wrap_up=0.0)]
    agents = [
        AgentSpec(id="plain", name="P", skills=("support",), contact="sip:p@h"),
        AgentSpec(id="french", name="F", skills=("support", "french"), contact="sip:f@h"),
    ]
    r = acd.build_router(queues, agents)
    ready(r, "plain", 0.0)  # idles longest, but lacks French
    ready(r, "french", 1.0)
    out = r.handle(ev.CallEnqueued(call_id="c1", queue="q", skills=("french",)), 2.0)
    assert [x.agent_id for x in of(out, ev.RingAgent)] == ["french"]
    # agent-driven: the caller waits; a free agent without the skill leaves it, one with it takes it
    r2 = acd.build_router(queues, agents)
    r2.handle(ev.CallEnqueued(call_id="c2", queue="q", skills=("french",)), 0.0)
    r2.handle(ev.CallEnqueued(call_id="c3", queue="q"), 0.5)
    out = []
    r2.handle(ev.AgentLoggedIn(agent_id="plain"), 1.0)
    out = r2.handle(ev.AgentBecameReady(agent_id="plain"), 1.0)
    assert [(x.call_id, x.agent_id) for x in of(out, ev.RingAgent)] == [("c3", "plain")]  # skips c2
    r2.handle(ev.AgentLoggedIn(agent_id="french"), 2.0)
    out = r2.handle(ev.AgentBecameReady(agent_id="french"), 2.0)
    assert [(x.call_id, x.agent_id) for x in of(out, ev.RingAgent)] == [("c2", "french")]
