"""Callbacks that keep the caller's place, and position / EWT, on a fake clock."""

from __future__ import annotations

import json

import pytest

import acd
from acd import AgentSpec, AgentState, CallbackRecord, QueueSpec
from acd import events as ev

from .helpers import FakeClock

S = AgentState


def make_router(agents: int = 1, **queue: object) -> acd.Router:
    config: dict[str, object] = {"ring_timeout": 10, "wrap_up": 5, "retry_delay": 5}
    config.update(callback_retry_delay=60, callback_max_attempts=2)
    spec = QueueSpec(name="q", skills=(), **{**config, **queue})  # type: ignore[arg-type]
    specs = [
        AgentSpec(id=f"a{i}", name=f"A{i}", skills=(), contact=f"sip:a{i}@h") for i in range(1, agents + 1)
    ]
    return acd.build_router([spec], specs)


def ready(r: acd.Router, aid: str, now: float) -> list[ev.Output]:
    r.handle(ev.AgentLoggedIn(agent_id=aid), now)
    return r.handle(ev.AgentBecameReady(agent_id=aid), now)


def of(out: list[ev.Output], kind: type) -> list:
    return [o for o in out if isinstance(o, kind)]


def counts_add_up(r: acd.Router, queue: str = "q") -> acd.QueueCounts:
    c = r.counts(queue)
    assert c.offered == c.answered + c.abandoned + c.overflowed + c.waiting
    return c


def busy_agent(r: acd.Router, aid: str, call_id: str, now: float) -> None:
    """Log ``aid`` in and put them on ``call_id`` (so callers queue behind)."""
    ready(r, aid, now)
    r.handle(ev.CallEnqueued(call_id=call_id, queue="q"), now)
    r.handle(ev.AgentAnswered(call_id=call_id, agent_id=aid), now)


# ---------------------------------------------------------------- lifecycle
def test_callback_keeps_the_place_and_is_served_agent_first() -> None:
    clock = FakeClock()
    r = make_router(1)
    busy_agent(r, "a1", "busy", clock.now)
    r.handle(ev.CallEnqueued(call_id="c1", queue="q", data={"account": "42"}), clock.advance(1))
    r.handle(ev.CallEnqueued(call_id="c2", queue="q"), clock.advance(1))
    out = r.handle(ev.CallbackRequested(call_id="c1", number="+4930123"), clock.advance(1))
    (reg,) = of(out, ev.CallbackRegistered)
    assert (reg.position, reg.number, reg.restored) == (1, "+4930123", False)
    assert r.position("c1") == 1
    # the caller hangs up now: a callback is not abandoned
    assert r.handle(ev.CallerHungUp(call_id="c1"), clock.advance(1)) == []
    assert r.has_call("c1") and r.position("c1") == 1
    # the agent frees up: reserved and rung for the callback (not for c2, who came later)
    r.handle(ev.AgentHungUp(call_id="busy", agent_id="a1"), clock.advance(60))
    out = r.on_timer(clock.advance(5))
    (ring,) = of(out, ev.RingAgent)
    assert (ring.call_id, ring.callback_number) == ("c1", "+4930123")
    assert of(out, ev.AgentOffered)[0].callback is True
    assert of(out, ev.CallbackOffered) == [
        ev.CallbackOffered(call_id="c1", agent_id="a1", queue="q", attempt=1)
    ]
    # the agent answers: only now is the customer dialled
    out = r.handle(ev.AgentAnswered(call_id="c1", agent_id="a1"), clock.advance(2))
    assert of(out, ev.DialCallback) == [
        ev.DialCallback(call_id="c1", number="+4930123", agent_id="a1", attempt=1)
    ]
    assert of(out, ev.CallbackDialing)[0].attempt == 1
    assert not of(out, ev.BridgeCall) and r.agent_state("a1") is S.ON_CALL
    assert counts_add_up(r).waiting == 2  # c1 (dialling) and c2
    out = r.handle(ev.CallbackAnswered(call_id="c1"), clock.advance(8))
    assert of(out, ev.BridgeCall) == [ev.BridgeCall(call_id="c1", agent_id="a1")]
    (connected,) = of(out, ev.CallbackConnected)
    assert connected.wait_seconds == pytest.approx(clock.now - 1) and connected.attempt == 1
    # the customer hangs up: talk ends, wrap-up as usual
    r.handle(ev.CallerHungUp(call_id="c1"), clock.advance(30))
    assert r.agent_state("a1") is S.WRAP_UP
    c = counts_add_up(r)
    assert (c.offered, c.answered, c.abandoned, c.waiting, c.callbacks) == (3, 2, 0, 1, 1)


def test_caller_leg_hanging_up_late_does_not_end_the_callback_talk() -> None:
    r = make_router(1)
    r.handle(ev.CallEnqueued(call_id="c1", queue="q"), 0.0)
    r.handle(ev.CallbackRequested(call_id="c1", number="100"), 1.0)
    ready(r, "a1", 2.0)
    r.handle(ev.AgentAnswered(call_id="c1", agent_id="a1"), 3.0)
    r.handle(ev.CallbackAnswered(call_id="c1"), 4.0)
    r.handle(ev.CallerHungUp(call_id="c1"), 5.0)  # the original leg, only now
    assert r.agent_state("a1") is S.ON_CALL
    r.handle(ev.AgentHungUp(call_id="c1", agent_id="a1"), 9.0)
    assert r.agent_state("a1") is S.WRAP_UP and not r.has_call("c1")


def test_no_answer_releases_the_agent_retries_at_the_same_place_then_gives_up() -> None:
    clock = FakeClock()
    r = make_router(1)
    r.handle(ev.CallbackRequested(call_id="cb", number="555", queue="q"), clock.now)
    ready(r, "a1", clock.advance(1))
    r.handle(ev.AgentAnswered(call_id="cb", agent_id="a1"), clock.advance(1))
    r.handle(ev.CallEnqueued(call_id="later", queue="q"), clock.advance(1))
    out = r.handle(ev.CallbackFailed(call_id="cb", cause="no_answer"), clock.advance(20))
    (failed,) = of(out, ev.CallbackAttemptFailed)
    assert (failed.attempt, failed.cause, failed.retry_in) == (1, "no_answer", 60)
    # the agent is released to available (no wrap-up) and takes the next caller
    assert of(out, ev.AgentStateChanged)[0].to is S.AVAILABLE
    assert of(out, ev.RingAgent)[0].call_id == "later"
    assert r.position("cb") is None and r.ewt("cb", clock.now) == pytest.approx(60 + 180)
    r.handle(ev.AgentAnswered(call_id="later", agent_id="a1"), clock.now)
    r.handle(ev.CallEnqueued(call_id="latest", queue="q"), clock.advance(10))
    assert r.next_deadline() == pytest.approx(clock.now - 10 + 60)
    r.on_timer(clock.advance(50))
    assert r.waiting("q") == ["cb", "latest"]  # back at its original place
    r.handle(ev.AgentHungUp(call_id="later", agent_id="a1"), clock.now)
    out = r.on_timer(clock.advance(5))
    assert of(out, ev.CallbackOffered)[0].attempt == 2
    r.handle(ev.AgentAnswered(call_id="cb", agent_id="a1"), clock.now)
    out = r.handle(ev.CallbackFailed(call_id="cb", cause="busy"), clock.advance(15))
    assert of(out, ev.CallbackAttemptFailed)[0].retry_in is None
    (gone,) = of(out, ev.CallbackAbandoned)
    assert (gone.reason, gone.attempts) == ("max_attempts", 2)
    assert not r.has_call("cb")
    assert counts_add_up(r).abandoned == 1


def test_agent_hanging_up_while_dialling_costs_no_attempt() -> None:
    r = make_router(2)
    r.handle(ev.CallbackRequested(call_id="cb", number="555", queue="q"), 0.0)
    ready(r, "a1", 1.0)
    r.handle(ev.AgentAnswered(call_id="cb", agent_id="a1"), 2.0)
    out = r.handle(ev.AgentHungUp(call_id="cb", agent_id="a1"), 3.0)
    assert of(out, ev.CallbackAttemptFailed)[0].cause == "agent_hung_up"
    out = ready(r, "a2", 4.0)  # a1 is excluded for retry_delay; a2 takes it
    assert of(out, ev.CallbackOffered)[0].attempt == 1
    counts_add_up(r)


def test_callback_requested_while_ringing_rings_again_as_a_callback() -> None:
    r = make_router(1)
    ready(r, "a1", 0.0)
    r.handle(ev.CallEnqueued(call_id="c1", queue="q"), 0.0)
    out = r.handle(ev.CallbackRequested(call_id="c1", number="7"), 1.0)
    assert of(out, ev.CancelRing) == [ev.CancelRing(call_id="c1", agent_id="a1")]
    assert of(out, ev.RingAgent)[0].callback_number == "7"


def test_cancel_and_the_usage_errors() -> None:
    r = make_router(1)
    with pytest.raises(acd.AcdUsageError) as info:
        r.handle(ev.CallbackRequested(call_id="x", number="1"), 0.0)  # not queued, no queue
    assert info.value.code == "acd.unknown_call"
    r.handle(ev.CallbackRequested(call_id="cb", number="1", queue="q"), 0.0)
    with pytest.raises(acd.AcdUsageError):
        r.handle(ev.CallbackRequested(call_id="cb", number="1"), 0.0)
    with pytest.raises(acd.AcdUsageError) as info:
        r.handle(ev.CallbackAnswered(call_id="cb"), 0.0)
    assert info.value.code == "acd.not_dialing"
    out = r.handle(ev.CallbackCancelled(call_id="cb", reason="customer_called_in"), 5.0)
    assert of(out, ev.CallbackAbandoned)[0].reason == "customer_called_in"
    assert counts_add_up(r).abandoned == 1 and not r.has_call("cb")


def test_callbacks_do_not_overflow_on_max_wait_or_no_agents() -> None:
    target = acd.Overflow(acd.OverflowKind.VOICEMAIL, "box")
    r = make_router(1, max_wait=30, on_max_wait=target, on_no_agents=target)
    r.handle(ev.CallbackRequested(call_id="cb", number="1", queue="q"), 0.0)
    r.on_timer(100.0)
    ready(r, "a1", 101.0)
    r.handle(ev.AgentRingFailed(call_id="cb", agent_id="a1", cause="busy"), 102.0)
    r.handle(ev.AgentLoggedOut(agent_id="a1"), 103.0)
    assert r.has_call("cb") and r.position("cb") == 1


# -------------------------------------------------------------- persistence
def test_export_restore_into_a_new_router_serves_in_order() -> None:
    r = make_router(1)
    busy_agent(r, "a1", "busy", 0.0)
    r.handle(ev.CallEnqueued(call_id="c1", queue="q", priority=1), 1.0)
    r.handle(ev.CallbackRequested(call_id="cb1", number="111", queue="q"), 2.0)
    r.handle(ev.CallbackRequested(call_id="c1", number="222", data={"vip": True}), 3.0)
    r.handle(ev.CallbackRequested(call_id="cb3", number="333", queue="q"), 4.0)
    expected = r.waiting("q")
    assert expected == ["c1", "cb1", "cb3"]  # c1 has priority 1
    saved = json.dumps([rec.as_dict() for rec in r.pending_callbacks(10.0)])  # what SQLite keeps

    fresh = make_router(1)  # restart: a new clock origin too
    records = [CallbackRecord.from_dict(raw) for raw in json.loads(saved)]
    out = fresh.restore_callbacks(records, 5000.0)
    assert [(o.call_id, o.restored) for o in of(out, ev.CallbackRegistered)] == [
        ("c1", True), ("cb1", True), ("cb3", True),
    ]  # fmt: skip
    assert fresh.waiting("q") == expected
    fresh.handle(ev.CallEnqueued(call_id="new", queue="q"), 5000.0)
    served = []
    ready(fresh, "a1", 5001.0)
    now = 5001.0
    for _ in range(4):
        cid = fresh.agents["a1"].call_id
        assert cid is not None and fresh.ringing(cid) == ["a1"]
        served.append(cid)
        fresh.handle(ev.AgentAnswered(call_id=cid, agent_id="a1"), now)
        if cid != "new":
            assert fresh._entries[cid].data.get("vip") is (True if cid == "c1" else None)
            fresh.handle(ev.CallbackAnswered(call_id=cid), now)
        fresh.handle(ev.AgentHungUp(call_id=cid, agent_id="a1"), now + 10)
        now += 20
        fresh.on_timer(now)
    assert served == ["c1", "cb1", "cb3", "new"]
    assert fresh.pending_callbacks(now) == []


def test_restore_keeps_a_pending_retry_and_refuses_duplicates() -> None:
    r = make_router(1)
    r.handle(ev.CallbackRequested(call_id="cb", number="1", queue="q"), 0.0)
    ready(r, "a1", 0.0)
    r.handle(ev.AgentAnswered(call_id="cb", agent_id="a1"), 0.0)
    r.handle(ev.CallbackFailed(call_id="cb", cause="no_answer"), 10.0)
    (rec,) = r.pending_callbacks(30.0)
    assert (rec.attempts, rec.retry_in, rec.waited) == (1, 40.0, 30.0)
    fresh = make_router(1)
    ready(fresh, "a1", 0.0)
    assert not of(fresh.restore_callbacks([rec], 100.0), ev.RingAgent)
    assert fresh.next_deadline() == 140.0
    assert of(fresh.on_timer(140.0), ev.CallbackOffered)[0].attempt == 2
    with pytest.raises(acd.AcdUsageError):
        fresh.restore_callbacks([rec], 150.0)
    with pytest.raises(acd.AcdUsageError) as info:
        CallbackRecord.from_dict({"queue": "q"})
    assert info.value.code == "acd.bad_callback_record"


# ---------------------------------------------------------------------- EWT
def test_ewt_is_position_times_aht_over_able_agents() -> None:
    r = make_router(3, default_aht=120.0, wrap_up=0)
    for i in (1, 2):
        busy_agent(r, f"a{i}", f"busy{i}", 0.0)
    r.handle(ev.AgentLoggedIn(agent_id="a3"), 0.0)  # logged in, not ready: not able
    out = r.handle(ev.CallEnqueued(call_id="c1", queue="q"), 1.0)
    assert of(out, ev.CallQueued)[0].ewt == pytest.approx(1 * 120 / 2)
    out = r.handle(ev.CallEnqueued(call_id="c2", queue="q"), 2.0)
    assert of(out, ev.CallQueued)[0].ewt == pytest.approx(2 * 120 / 2)
    r.handle(ev.AgentBecameReady(agent_id="a3"), 3.0)  # takes c1; c2 is next, 3 able
    assert r.ewt("c2", 3.0) == pytest.approx(1 * 120 / 3)
    assert r.ewt("c1", 3.0) == 0.0  # ringing
    assert r.ewt("nobody", 3.0) is None
    # a free agent: no wait
    r.handle(ev.AgentHungUp(call_id="busy1", agent_id="a1"), 4.0)  # takes c2
    r.handle(ev.AgentAnswered(call_id="c1", agent_id="a3"), 4.0)
    r.handle(ev.AgentHungUp(call_id="busy2", agent_id="a2"), 5.0)
    assert of(r.handle(ev.CallEnqueued(call_id="c3", queue="q"), 5.0), ev.CallQueued)[0].ewt == 0.0


def test_aht_is_learned_from_answer_to_wrap_up_end() -> None:
    r = make_router(1, default_aht=100.0, aht_smoothing=0.5, wrap_up=10)
    ready(r, "a1", 0.0)
    r.handle(ev.CallEnqueued(call_id="c1", queue="q"), 0.0)
    r.handle(ev.AgentAnswered(call_id="c1", agent_id="a1"), 5.0)
    r.handle(ev.AgentHungUp(call_id="c1", agent_id="a1"), 195.0)
    assert r.aht("q") == 100.0  # not handled until wrap-up ends
    r.on_timer(205.0)
    assert r.aht("q") == pytest.approx(100 + 0.5 * (200 - 100))


def test_bad_callback_and_ewt_config_is_refused() -> None:
    for bad in ({"callback_max_attempts": 0}, {"aht_smoothing": 0.0}, {"default_aht": 0.0}):
        with pytest.raises(acd.AcdConfigError):
            make_router(1, **bad)


# --------------------------------------------------------------- statistics
def test_statistics_count_callbacks_apart_from_inbound_figures() -> None:
    specs = [QueueSpec(name="q", skills=(), wrap_up=0)]
    agents = [AgentSpec(id="a1", name="A1", skills=(), contact="sip:a1@h")]
    r = acd.build_router(specs, agents)
    stats = acd.build_statistics(specs, agents, acd.StatsConfig(), now=0.0)

    def feed(event: ev.Input, now: float) -> None:
        stats.observe_all(r.handle(event, now), now)

    feed(ev.CallEnqueued(call_id="c1", queue="q"), 0.0)
    feed(ev.CallbackRequested(call_id="c1", number="1"), 10.0)
    feed(ev.CallbackRequested(call_id="cb2", number="2", queue="q"), 11.0)
    feed(ev.CallerHungUp(call_id="c1"), 12.0)
    feed(ev.AgentLoggedIn(agent_id="a1"), 20.0)
    feed(ev.AgentBecameReady(agent_id="a1"), 20.0)
    feed(ev.AgentAnswered(call_id="c1", agent_id="a1"), 21.0)
    feed(ev.CallbackFailed(call_id="c1", cause="no_answer"), 40.0)  # a1 takes cb2
    feed(ev.AgentAnswered(call_id="cb2", agent_id="a1"), 41.0)
    feed(ev.CallbackAnswered(call_id="cb2"), 45.0)
    feed(ev.AgentHungUp(call_id="cb2", agent_id="a1"), 105.0)
    q = stats.queue_figures("q", 110.0)
    assert (q["offered"], q["answered"], q["abandoned"], q["waiting"]) == (1, 0, 0, 0)
    assert q["callbacks_requested"] == 2 and q["callbacks_from_queue"] == 1
    assert q["callbacks_answered"] == 1 and q["callback_dial_failures"] == 1
    assert q["avg_callback_wait"] == pytest.approx(45 - 11)
    assert q["handled"] == 1 and q["avg_talk"] == pytest.approx(60)  # the failed dial is no call
    assert stats.agent_figures("a1", 110.0)["answered"] == 1
