"""Routing features of the ACD core on a fake clock: proficiency, multi-queue agents,
strategies, priority aging, relaxation, preferred agent, overflow, wrap-up; and the
invariants as hypothesis properties checked after every event."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import acd
from acd import AgentSpec, AgentState, Overflow, OverflowKind, QueueSpec, RelaxStep
from acd import events as ev
from acd.model import qualifies, relaxed_requirements, skill_levels

from .helpers import FakeClock

S = AgentState


def agent(aid: str, skills: object = ("x",), **kw: object) -> AgentSpec:
    return AgentSpec(id=aid, name=aid.upper(), skills=skills, contact=f"sip:{aid}@h", **kw)  # type: ignore[arg-type]


def ready(r: acd.Router, aid: str, now: float) -> list[ev.Output]:
    r.handle(ev.AgentLoggedIn(agent_id=aid), now)
    return r.handle(ev.AgentBecameReady(agent_id=aid), now)


def rings(out: list[ev.Output]) -> list[tuple[str, str]]:
    return [(o.call_id, o.agent_id) for o in out if isinstance(o, ev.RingAgent)]


def of(out: list[ev.Output], kind: type) -> list:
    return [o for o in out if isinstance(o, kind)]


def talk_and_free(r: acd.Router, cid: str, aid: str, now: float) -> None:
    r.handle(ev.AgentAnswered(call_id=cid, agent_id=aid), now)
    r.handle(ev.AgentHungUp(call_id=cid, agent_id=aid), now)


# ------------------------------------------------------------------ skills
def test_proficiency_levels_and_the_old_tuple_form() -> None:
    q = QueueSpec(name="q", skills={"x": 3}, wrap_up=0)
    r = acd.build_router([q], [agent("low", {"x": 2}), agent("names", ("x",))])
    ready(r, "low", 0.0)
    out = r.handle(ev.CallEnqueued(call_id="c1", queue="q"), 1.0)
    assert rings(out) == []  # level 2 < minimum 3
    assert rings(ready(r, "names", 2.0)) == [("c1", "names")]  # a bare name counts as level 5
    assert relaxed_requirements(QueueSpec(name="t", skills=("a", "b"))) == [{"a": 1, "b": 1}]


def test_bad_proficiency_is_a_config_error() -> None:
    with pytest.raises(acd.AcdConfigError) as info:
        acd.build_router([QueueSpec(name="q", skills={"x": 6})], [])
    assert info.value.code == "acd.bad_skill_level"


# -------------------------------------------------------- multi-queue agents
def test_free_agent_takes_its_highest_priority_queue_first() -> None:
    qs = [QueueSpec(name="main", skills=(), wrap_up=0), QueueSpec(name="side", skills=(), wrap_up=0)]
    r = acd.build_router(qs, [agent("a", queues={"main": 2, "side": 1})])
    r.handle(ev.CallEnqueued(call_id="old_vip", queue="side", priority=9), 0.0)
    r.handle(ev.CallEnqueued(call_id="new", queue="main"), 100.0)
    assert rings(ready(r, "a", 101.0)) == [("new", "a")]


def test_same_priority_queues_compare_effective_priority_then_wait() -> None:
    qs = [QueueSpec(name="q1", skills=(), wrap_up=0), QueueSpec(name="q2", skills=(), wrap_up=0)]
    r = acd.build_router(qs, [agent("a")])
    r.handle(ev.CallEnqueued(call_id="early", queue="q1"), 0.0)
    r.handle(ev.CallEnqueued(call_id="vip", queue="q2", priority=1), 30.0)  # 1 + 0 > 0 + 30/60
    assert rings(ready(r, "a", 30.0)) == [("vip", "a")]


def test_caller_goes_to_agents_with_the_queue_at_higher_priority_first() -> None:
    q = QueueSpec(name="q", skills=(), wrap_up=0)
    r = acd.build_router([q], [agent("backup", queues={"q": 1}), agent("primary", queues={"q": 5})])
    ready(r, "backup", 0.0)  # idle longer
    ready(r, "primary", 10.0)
    assert rings(r.handle(ev.CallEnqueued(call_id="c", queue="q"), 20.0)) == [("c", "primary")]


def test_agent_listing_a_queue_it_cannot_serve_is_a_config_error() -> None:
    with pytest.raises(acd.AcdConfigError) as info:
        acd.build_router([QueueSpec(name="q", skills={"y": 1})], [agent("a", {"x": 5}, queues={"q": 1})])
    assert info.value.code == "acd.agent_lacks_skills"


# --------------------------------------------------------------- strategies
def three(strategy: str, skills: Mapping[str, Mapping[str, int]] | None = None) -> acd.Router:
    q = QueueSpec(name="q", skills={"x": 1}, wrap_up=0, strategy=strategy, retry_delay=5)
    levels = skills or {"a1": {"x": 1}, "a2": {"x": 1}, "a3": {"x": 1}}
    return acd.build_router([q], [agent(a, lv) for a, lv in levels.items()])


def test_longest_idle_is_the_default() -> None:
    r = three("longest_idle")
    for i, a in enumerate(("a2", "a3", "a1")):
        ready(r, a, float(i))
    assert rings(r.handle(ev.CallEnqueued(call_id="c", queue="q"), 9.0)) == [("c", "a2")]


def test_fewest_calls_then_longest_idle() -> None:
    r = three("fewest_calls")
    ready(r, "a1", 0.0)
    r.handle(ev.CallEnqueued(call_id="c1", queue="q"), 1.0)
    talk_and_free(r, "c1", "a1", 2.0)  # a1 has 1 call, idle since 2
    ready(r, "a2", 3.0)
    ready(r, "a3", 4.0)
    assert rings(r.handle(ev.CallEnqueued(call_id="c2", queue="q"), 5.0)) == [("c2", "a2")]


def test_best_proficiency_then_longest_idle() -> None:
    r = three("best_proficiency", {"a1": {"x": 2}, "a2": {"x": 5}, "a3": {"x": 5}})
    ready(r, "a1", 0.0)
    ready(r, "a3", 1.0)
    ready(r, "a2", 2.0)
    assert rings(r.handle(ev.CallEnqueued(call_id="c", queue="q"), 3.0)) == [("c", "a3")]


def test_round_robin_remembers_across_calls() -> None:
    r = three("round_robin")
    for a in ("a3", "a1", "a2"):
        ready(r, a, 0.0)
    picked = []
    for i in range(4):
        out = r.handle(ev.CallEnqueued(call_id=f"c{i}", queue="q"), 1.0 + i)
        (cid, aid), *_ = rings(out)
        picked.append(aid)
        talk_and_free(r, cid, aid, 1.0 + i)
    assert picked == ["a1", "a2", "a3", "a1"]


def test_ring_all_first_answer_wins_and_a_loser_cannot_connect() -> None:
    r = three("ring_all")
    for a in ("a1", "a2", "a3"):
        ready(r, a, 0.0)
    out = r.handle(ev.CallEnqueued(call_id="c", queue="q"), 1.0)
    assert sorted(rings(out)) == [("c", "a1"), ("c", "a2"), ("c", "a3")]
    assert sorted(r.ringing("c")) == ["a1", "a2", "a3"]
    r.handle(ev.AgentRingFailed(call_id="c", agent_id="a3", cause="busy"), 1.5)  # others keep ringing
    assert sorted(r.ringing("c")) == ["a1", "a2"]
    out = r.handle(ev.AgentAnswered(call_id="c", agent_id="a2"), 2.0)
    assert ev.CancelRing(call_id="c", agent_id="a1") in out
    assert of(out, ev.BridgeCall) == [ev.BridgeCall(call_id="c", agent_id="a2")]
    assert r.agent_state("a1") is S.AVAILABLE and r.agent_state("a2") is S.ON_CALL
    with pytest.raises(acd.AcdUsageError) as info:
        r.handle(ev.AgentAnswered(call_id="c", agent_id="a1"), 2.1)
    assert info.value.code == "acd.not_offered"
    assert r.agent_state("a1") is S.AVAILABLE


def test_ring_all_timeout_fails_every_ringing_agent() -> None:
    r = three("ring_all")
    ready(r, "a1", 0.0)
    ready(r, "a2", 0.0)
    r.handle(ev.CallEnqueued(call_id="c", queue="q"), 0.0)
    out = r.on_timer(15.0)
    assert sorted(o.agent_id for o in of(out, ev.CancelRing)) == ["a1", "a2"]
    assert r.position("c") == 1  # back in line, both agents in their retry delay
    assert sorted(rings(r.on_timer(20.0))) == [("c", "a1"), ("c", "a2")]


def test_a_plugged_in_strategy_and_an_unknown_one() -> None:
    def most_recent(queue: QueueSpec) -> acd.Strategy:
        return acd.strategies.KeyedStrategy(lambda m: (-m.agent.idle_since,))

    q = QueueSpec(name="q", skills=(), strategy="most_recent")
    r = acd.build_router([q], [agent("a1"), agent("a2")], strategies={"most_recent": most_recent})
    ready(r, "a1", 0.0)
    ready(r, "a2", 1.0)
    assert rings(r.handle(ev.CallEnqueued(call_id="c", queue="q"), 2.0)) == [("c", "a2")]
    with pytest.raises(acd.AcdConfigError) as info:
        acd.build_router([QueueSpec(name="q", skills=(), strategy="nope")], [])
    assert info.value.code == "acd.unknown_strategy"


# ------------------------------------------------------------ priority aging
def test_priority_ages_with_waiting_time() -> None:
    q = QueueSpec(name="q", skills=(), aging_seconds=60)
    r = acd.build_router([q], [])
    r.handle(ev.CallEnqueued(call_id="p0", queue="q", priority=0), 0.0)
    r.handle(ev.CallEnqueued(call_id="p1_soon", queue="q", priority=1), 59.0)  # 59 s < 60 s: ahead
    r.handle(ev.CallEnqueued(call_id="p1_late", queue="q", priority=1), 61.0)  # 61 s > 60 s: behind
    assert r.waiting("q") == ["p1_soon", "p0", "p1_late"]
    assert r.position("p1_late") == 3


def test_no_aging_is_strict_priority() -> None:
    r = acd.build_router([QueueSpec(name="q", skills=(), aging_seconds=0)], [])
    r.handle(ev.CallEnqueued(call_id="p0", queue="q"), 0.0)
    r.handle(ev.CallEnqueued(call_id="p1", queue="q", priority=1), 10_000.0)
    assert r.waiting("q") == ["p1", "p0"]


AGING = 10.0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.floats(0.0, 15.0), st.sampled_from(["arrive", "free"])),
        min_size=1,
        max_size=60,
    )
)
def test_starvation_bound(steps: list[tuple[int, float, str]]) -> None:
    """docs/acd.md, "Starvation bound": while caller C (priority p, enqueued at t) waits,
    no caller D of the same queue (priority q) enqueued after t + (q - p) * aging_seconds
    is offered an agent who could take C."""
    q = QueueSpec(name="q", skills=(), aging_seconds=AGING, wrap_up=1e9)
    r = acd.build_router([q], [agent("a1"), agent("a2")])
    now, n = 0.0, 0
    arrived: dict[str, tuple[int, float]] = {}
    for a in ("a1", "a2"):
        r.handle(ev.AgentLoggedIn(agent_id=a), 0.0)
    for priority, dt, what in steps:
        now += dt
        waiting_before = set(r.waiting("q"))
        out: list[ev.Output] = []
        if what == "arrive":
            arrived[f"c{n}"] = (priority, now)
            out = r.handle(ev.CallEnqueued(call_id=f"c{n}", queue="q", priority=priority), now)
            n += 1
        else:  # an agent frees up: answer a ring and hang up, or end wrap-up / not-ready
            for a in ("a1", "a2"):
                if r.agent_state(a) is S.RESERVED:
                    cid = r.agents[a].call_id
                    assert cid is not None
                    talk_and_free(r, cid, a, now)
                    break
                if r.agent_state(a) in (S.NOT_READY, S.WRAP_UP):
                    out = r.handle(ev.AgentBecameReady(agent_id=a), now)
                    break
        for d, _ in rings(out):
            qd, td = arrived[d]
            for c in waiting_before - {d}:
                p, t = arrived[c]
                assert td <= t + (qd - p) * AGING + 1e-6, f"{d} overtook {c}"


# --------------------------------------------------------------- relaxation
def test_relaxation_steps_widen_the_agents_and_keep_the_place() -> None:
    clock = FakeClock()
    q = QueueSpec(
        name="q",
        skills={"x": 4, "y": 3},
        relax=(RelaxStep(after=30, min_level=2), RelaxStep(after=90, drop=("y",))),
        wrap_up=0,
        ring_timeout=1000,
    )
    r = acd.build_router([q], [agent("mid", {"x": 2, "y": 2}), agent("no_y", {"x": 5})])
    ready(r, "mid", clock.now)
    ready(r, "no_y", clock.now)
    r.handle(ev.CallEnqueued(call_id="c1", queue="q"), clock.now)
    r.handle(ev.CallEnqueued(call_id="c2", queue="q"), clock.advance(20))
    assert r.next_deadline() == 30.0  # c1's first step
    assert rings(r.on_timer(clock.advance(10))) == [("c1", "mid")]
    r.handle(ev.AgentAnswered(call_id="c1", agent_id="mid"), clock.now)  # c1's timers end
    assert r.position("c2") == 1 and r.next_deadline() == 50.0
    out = r.on_timer(clock.advance(20))  # c2 at 30 s: "mid" is busy, "no_y" lacks y
    assert rings(out) == [] and r.position("c2") == 1
    assert r.next_deadline() == 110.0
    assert rings(r.on_timer(110.0)) == [("c2", "no_y")]  # y dropped after 90 s


# ---------------------------------------------------------- preferred agent
def test_preferred_agent_alone_for_the_window_then_anyone() -> None:
    q = QueueSpec(name="q", skills=(), wrap_up=0)
    r = acd.build_router([q], [agent("last"), agent("other")])
    r.handle(ev.AgentLoggedIn(agent_id="last"), 0.0)  # logged in, not ready
    ready(r, "other", 0.0)
    out = r.handle(ev.CallEnqueued(call_id="c", queue="q", preferred_agent="last", preferred_seconds=20), 1.0)
    assert rings(out) == [] and r.next_deadline() == 21.0
    assert rings(r.handle(ev.AgentBecameReady(agent_id="last"), 5.0)) == [("c", "last")]
    r.handle(ev.CallEnqueued(call_id="d", queue="q", preferred_agent="last", preferred_seconds=20), 6.0)
    assert rings(r.on_timer(26.0)) == [("d", "other")]  # window over


def test_preferred_agent_failing_ends_the_window_and_unknown_is_ignored() -> None:
    q = QueueSpec(name="q", skills=(), wrap_up=0)
    r = acd.build_router([q], [agent("last"), agent("other")])
    ready(r, "last", 0.0)
    r.handle(ev.AgentLoggedIn(agent_id="other"), 0.0)
    out = r.handle(ev.CallEnqueued(call_id="c", queue="q", preferred_agent="last", preferred_seconds=60), 1.0)
    assert rings(out) == [("c", "last")]
    r.handle(ev.AgentRingFailed(call_id="c", agent_id="last", cause="declined"), 2.0)
    assert rings(r.handle(ev.AgentBecameReady(agent_id="other"), 3.0)) == [("c", "other")]
    out = r.handle(
        ev.CallEnqueued(call_id="d", queue="q", preferred_agent="ghost", preferred_seconds=60), 4.0
    )
    assert rings(out) == [("d", "last")]  # an unknown preferred agent is ignored: anyone
    assert r._entries["d"].preferred is None


# ------------------------------------------------------------------ overflow
def test_overflow_on_max_wait_moves_the_caller_to_another_queue() -> None:
    qs = [
        QueueSpec(name="q", skills={"x": 1}, max_wait=60, on_max_wait=Overflow(OverflowKind.QUEUE, "backup")),
        QueueSpec(name="backup", skills={"y": 1}),
    ]
    r = acd.build_router(qs, [agent("ax", {"x": 1}), agent("ay", {"y": 1})])
    r.handle(ev.AgentLoggedIn(agent_id="ax"), 0.0)
    ready(r, "ay", 0.0)
    r.handle(ev.CallEnqueued(call_id="c", queue="q", priority=2), 0.0)
    assert r.next_deadline() == 60.0
    out = r.on_timer(60.0)
    flowed = of(out, ev.CallOverflowed)[0]
    assert (flowed.queue, flowed.reason, flowed.kind, flowed.target) == ("q", "max_wait", "queue", "backup")
    assert of(out, ev.CallQueued)[0].queue == "backup" and not of(out, ev.OverflowCall)
    assert rings(out) == [("c", "ay")]
    assert r.counts("q") == acd.QueueCounts(offered=1, overflowed=1)
    assert r.counts("backup") == acd.QueueCounts(offered=1, waiting=1)


def test_overflow_when_full_or_no_agents_leaves_the_acd() -> None:
    qs = [
        QueueSpec(
            name="q",
            skills=(),
            max_waiting=1,
            on_full=Overflow(OverflowKind.CALLBACK, "q"),
            on_no_agents=Overflow(OverflowKind.VOICEMAIL, "mbox"),
        )
    ]
    r = acd.build_router(qs, [agent("a")])
    out = r.handle(ev.CallEnqueued(call_id="c0", queue="q"), 0.0)  # nobody logged in
    assert of(out, ev.OverflowCall) == [
        ev.OverflowCall(call_id="c0", kind=OverflowKind.VOICEMAIL, target="mbox")
    ]
    assert not r.has_call("c0")
    r.handle(ev.AgentLoggedIn(agent_id="a"), 1.0)
    r.handle(ev.CallEnqueued(call_id="c1", queue="q"), 2.0)
    out = r.handle(ev.CallEnqueued(call_id="c2", queue="q"), 3.0)
    assert of(out, ev.OverflowCall) == [ev.OverflowCall(call_id="c2", kind=OverflowKind.CALLBACK, target="q")]
    out = r.handle(ev.AgentLoggedOut(agent_id="a"), 4.0)  # the last agent leaves: c1 goes to voicemail
    assert [(o.call_id, o.reason) for o in of(out, ev.CallOverflowed)] == [("c1", "no_agents")]
    assert r.counts("q") == acd.QueueCounts(offered=3, overflowed=3)


def test_overflow_loops_and_dangling_targets_are_config_errors() -> None:
    to = Overflow(OverflowKind.QUEUE, "b")
    back = Overflow(OverflowKind.QUEUE, "a")
    with pytest.raises(acd.AcdConfigError) as info:
        acd.build_router(
            [
                QueueSpec(name="a", skills=(), on_no_agents=to),
                QueueSpec(name="b", skills=(), on_no_agents=back),
            ],
            [],
        )
    assert info.value.code == "acd.overflow_cycle"
    with pytest.raises(acd.AcdConfigError) as info:
        acd.build_router([QueueSpec(name="a", skills=(), on_no_agents=to)], [])
    assert info.value.code == "acd.unknown_queue"


def test_max_wait_while_ringing_overflows_only_if_the_ring_fails() -> None:
    q = QueueSpec(
        name="q", skills=(), max_wait=10, ring_timeout=15, on_max_wait=Overflow(OverflowKind.FLOW_NODE, "n")
    )
    r = acd.build_router([q], [agent("a")])
    ready(r, "a", 0.0)
    r.handle(ev.CallEnqueued(call_id="c", queue="q"), 0.0)
    assert r.on_timer(10.0) == []  # ringing: let it ring
    out = r.on_timer(15.0)
    assert of(out, ev.OverflowCall) == [ev.OverflowCall(call_id="c", kind=OverflowKind.FLOW_NODE, target="n")]


# -------------------------------------------------------------------- wrap-up
def test_wrap_up_per_agent_overrides_the_queue() -> None:
    q = QueueSpec(name="q", skills=(), wrap_up=30)
    r = acd.build_router([q], [agent("quick", wrap_up=2.0), agent("std")])
    ready(r, "quick", 0.0)
    r.handle(ev.CallEnqueued(call_id="c", queue="q"), 0.0)
    talk_and_free(r, "c", "quick", 1.0)
    assert r.next_deadline() == 3.0


# ---------------------------------------------------------------- properties
QUEUES = [
    QueueSpec(
        name="sales",
        skills={"x": 3},
        relax=(RelaxStep(after=6, min_level=1),),
        ring_timeout=4,
        wrap_up=2,
        retry_delay=3,
        aging_seconds=5,
    ),
    QueueSpec(name="all", skills=(), strategy="ring_all", ring_timeout=3, wrap_up=0, max_no_answer=2),
    QueueSpec(
        name="vip",
        skills={"y": 2},
        strategy="round_robin",
        ring_timeout=4,
        max_wait=12,
        on_max_wait=Overflow(OverflowKind.QUEUE, "all"),
        max_waiting=2,
        on_full=Overflow(OverflowKind.VOICEMAIL, "box"),
    ),
    QueueSpec(
        name="tech",
        skills={"z": 1},
        strategy="fewest_calls",
        relax=(RelaxStep(after=5, drop=("z",)),),
        on_no_agents=Overflow(OverflowKind.QUEUE, "sales"),
    ),
]
SPECS = [
    agent("a1", {"x": 2, "y": 5}),
    agent("a2", {"x": 4}, queues={"sales": 1, "all": 3}),
    agent("a3", {"y": 2, "z": 1}, queues={"vip": 2, "tech": 2, "all": 1}, wrap_up=1.0),
    agent("a4", ("x", "z"), queues={"tech": 1, "sales": 1}),
]
AIDS = [a.id for a in SPECS]
CIDS = ["c1", "c2", "c3", "c4", "c5"]

events_strategy = st.one_of(
    st.builds(ev.AgentLoggedIn, agent_id=st.sampled_from(AIDS)),
    st.builds(ev.AgentBecameReady, agent_id=st.sampled_from(AIDS)),
    st.builds(ev.AgentWentNotReady, agent_id=st.sampled_from(AIDS), reason=st.just("break")),
    st.builds(ev.AgentLoggedOut, agent_id=st.sampled_from(AIDS)),
    st.builds(
        ev.CallEnqueued,
        call_id=st.sampled_from(CIDS),
        queue=st.sampled_from([q.name for q in QUEUES]),
        priority=st.integers(0, 3),
        preferred_agent=st.one_of(st.none(), st.sampled_from(AIDS)),
        preferred_seconds=st.sampled_from([0.0, 4.0]),
    ),
    st.builds(ev.CallerHungUp, call_id=st.sampled_from(CIDS)),
    st.builds(ev.AgentAnswered, call_id=st.sampled_from(CIDS), agent_id=st.sampled_from(AIDS)),
    st.builds(
        ev.AgentRingFailed,
        call_id=st.sampled_from(CIDS),
        agent_id=st.sampled_from(AIDS),
        cause=st.just("busy"),
    ),
    st.builds(ev.AgentHungUp, call_id=st.sampled_from(CIDS), agent_id=st.sampled_from(AIDS)),
    st.builds(
        ev.CallbackRequested,
        call_id=st.sampled_from(CIDS),
        number=st.just("555"),
        queue=st.one_of(st.none(), st.sampled_from([q.name for q in QUEUES])),
    ),
    st.builds(ev.CallbackAnswered, call_id=st.sampled_from(CIDS)),
    st.builds(ev.CallbackFailed, call_id=st.sampled_from(CIDS), cause=st.just("no_answer")),
    st.builds(ev.CallbackCancelled, call_id=st.sampled_from(CIDS)),
    st.floats(min_value=0.1, max_value=8.0),  # time passes
)


def could_take(r: acd.Router, spec: AgentSpec, call_id: str, now: float) -> bool:
    """Brute force: may this agent take this waiting caller now (skills, queues, relaxation)?"""
    entry = r._entries[call_id]
    queue = entry.queue
    if spec.queues is not None and queue.name not in spec.queues:
        return False
    reqs = relaxed_requirements(queue)
    levels = skill_levels(spec.skills, default=5)
    if entry.preferred == spec.id:
        return any(qualifies(levels, req) for req in reqs)  # named by the IVR: any step
    step = sum(1 for s in queue.relax if entry.enqueued_at + s.after <= now)
    return qualifies(levels, reqs[step])


def check_invariants(r: acd.Router, now: float) -> None:
    ring_of: dict[str, str] = {}
    for cid, entry in r._entries.items():
        if entry.queue.strategy != "ring_all" and entry.preferred is None:
            assert len(entry.ringing) <= 1, f"{cid} offered to {entry.ringing}"
        assert not (entry.connected and entry.ringing)
        for aid in entry.ringing:
            assert aid not in ring_of, f"{aid} rings for {ring_of.get(aid)} and {cid}"
            ring_of[aid] = cid
            assert r.agents[aid].state is S.RESERVED and r.agents[aid].call_id == cid
    for a in r.agents.values():
        if a.state is S.RESERVED:
            assert ring_of.get(a.spec.id) == a.call_id
    talking = [a.call_id for a in r.agents.values() if a.state is S.ON_CALL]
    assert len(talking) == len(set(talking))
    for a in r.agents.values():  # on call: talking, or waiting for a callback's customer
        if a.state is S.ON_CALL:
            entry = r._entries[a.call_id or ""]
            assert entry.agent_id == a.spec.id and (entry.connected or entry.dialing)
    for entry in r._entries.values():  # a callback is in line, ringing, dialling or awaiting a retry
        if entry.number is not None and not entry.connected:
            in_retry = ("cbretry", entry.call_id) in r._timers
            where = [r.position(entry.call_id) is not None, bool(entry.ringing), entry.dialing, in_retry]
            assert sum(where) == 1, f"{entry.call_id}: {where}"
    # an available agent with the skills never idles while a matching caller waits, except:
    # the agent failed that caller < retry_delay ago, or the caller waits for another
    # (preferred) agent. (A ring_all caller who is ringing is not waiting.)
    for q in QUEUES:
        for cid in r.waiting(q.name):
            entry = r._entries[cid]
            for a in r.agents.values():
                if a.state is not S.AVAILABLE or not could_take(r, a.spec, cid, now):
                    continue
                failed = entry.failed_at.get(a.spec.id)
                in_retry = failed is not None and failed + q.retry_delay > now
                for_other = entry.preferred is not None and entry.preferred != a.spec.id
                assert in_retry or for_other, f"{a.spec.id} idles while {cid} waits in {q.name}"
        for cid in r.waiting(q.name):
            assert r.ewt(cid, now) is not None and r.ewt(cid, now) >= 0  # type: ignore[operator]
        c = r.counts(q.name)
        assert c.offered == c.answered + c.abandoned + c.overflowed + c.waiting
        assert c.waiting == sum(1 for e in r._entries.values() if e.queue.name == q.name and not e.connected)
    deadline = r.next_deadline()
    assert deadline is None or deadline > now  # every due timer has run


@settings(max_examples=400, deadline=None)
@given(st.lists(events_strategy, max_size=80))
def test_invariants_hold_after_every_event(steps: list) -> None:
    r = acd.build_router(QUEUES, SPECS)
    now = 0.0
    for step in steps:
        if isinstance(step, float):
            now += step
            r.on_timer(now)
        else:
            with contextlib.suppress(acd.AcdUsageError):
                r.handle(step, now)
        check_invariants(r, now)
