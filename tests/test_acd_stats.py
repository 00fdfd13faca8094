"""Statistics core with a fake clock, fed by a real router: each figure by hand."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest

import acd
from acd import AgentSpec, AgentState, QueueSpec
from acd import events as ev
from acd.stats import Statistics, StatsConfig, build_statistics

from .helpers import FakeClock

S = AgentState

QUEUES = [
    QueueSpec(name="sales", skills=("sales",), ring_timeout=10.0, wrap_up=5.0, retry_delay=5.0),
    QueueSpec(name="any", skills=(), ring_timeout=10.0, wrap_up=0.0),
]
AGENTS = [
    AgentSpec(id="a1", name="A1", skills=("sales",), contact="sip:a1@h"),
    AgentSpec(id="a2", name="A2", skills=("sales",), contact="sip:a2@h"),
    AgentSpec(id="x", name="X", skills=("other",), contact="sip:x@h"),
]


class Rig:
    """A real router and the statistics core, both fed at the fake clock's time."""

    def __init__(self, config: StatsConfig | None = None) -> None:
        self.clock = FakeClock()
        self.router = acd.build_router(QUEUES, AGENTS)
        self.stats = build_statistics(QUEUES, AGENTS, config or StatsConfig(), now=0.0)

    def at(self, t: float) -> float:
        assert t >= self.clock.now
        self.clock.now = t
        return t

    def feed(self, t: float, event: ev.Input) -> list[ev.Output]:
        now = self.at(t)
        self.stats.observe(event, now)  # inputs are accepted and ignored
        out = self.router.handle(event, now)
        self.stats.observe_all(out, now)
        return out

    def timers(self, t: float) -> list[ev.Output]:
        """Run the router's timers up to ``t`` one deadline at a time, as an adapter does."""
        out: list[ev.Output] = []
        while (d := self.router.next_deadline()) is not None and d <= t:
            now = self.at(d)
            step = self.router.on_timer(now)
            self.stats.observe_all(step, now)
            out += step
        self.at(t)
        self.stats.on_timer(t)
        return out

    def ready(self, t: float, agent_id: str) -> None:
        self.feed(t, ev.AgentLoggedIn(agent_id=agent_id))
        self.feed(t, ev.AgentBecameReady(agent_id=agent_id))


def basic_day(config: StatsConfig | None = None) -> Rig:
    """One agent; five callers. T = 20 s, short abandon < 5 s (the defaults)."""
    r = Rig(config)
    r.ready(0, "a1")
    r.feed(0, ev.CallEnqueued(call_id="c1", queue="sales"))  # rung to a1 at once
    r.feed(3, ev.AgentAnswered(call_id="c1", agent_id="a1"))  # wait 3: in SL
    r.feed(4, ev.CallEnqueued(call_id="c2", queue="sales"))  # waits
    r.feed(6, ev.CallEnqueued(call_id="c3", queue="sales"))
    r.feed(7, ev.CallEnqueued(call_id="c4", queue="sales"))
    r.feed(8, ev.CallerHungUp(call_id="c3"))  # wait 2: short abandon
    r.feed(10, ev.CallEnqueued(call_id="c5", queue="sales"))
    r.timers(12)
    assert r.stats.longest_wait("sales", 12) == 8  # c2, since 4
    r.feed(22, ev.CallerHungUp(call_id="c4"))  # wait 15: abandoned within SL
    r.feed(45, ev.CallerHungUp(call_id="c5"))  # wait 35: abandoned after SL
    r.timers(50)
    q = r.stats.queue_figures("sales", 50)
    assert q["waiting"] == 1 and q["longest_wait"] == 46
    assert q["agents"]["on_call"] == 1 and q["agents"]["logged_out"] == 1
    r.feed(63, ev.AgentHungUp(call_id="c1", agent_id="a1"))  # talk 60, wrap 63..68
    out = r.timers(68)  # wrap-up over: c2 rung to a1
    assert any(isinstance(o, ev.RingAgent) and o.call_id == "c2" for o in out)
    r.feed(70, ev.AgentAnswered(call_id="c2", agent_id="a1"))  # wait 66: after SL
    r.feed(100, ev.CallerHungUp(call_id="c2"))  # talk 30, wrap 100..105
    r.timers(200)
    return r


def test_queue_figures_by_hand() -> None:
    r = basic_day()
    q = r.stats.queue_figures("sales", 200)
    assert q["offered"] == 5
    assert q["answered"] == 2 and q["answered_within_sl"] == 1
    assert q["abandoned"] == 2 and q["abandoned_within_sl"] == 1
    assert q["short_abandoned"] == 1
    assert q["sl_offered"] == pytest.approx(1 / 4)  # 1 / (2 answered + 2 abandoned)
    assert q["sl_no_early_abandons"] == pytest.approx(1 / 3)  # 1 / (2 + 1 abandoned after 20 s)
    assert q["sl_answered"] == pytest.approx(1 / 2)  # Asterisk ServicelevelPerf
    assert q["sl_perf2"] == pytest.approx(2 / 4)  # Asterisk ServicelevelPerf2
    assert q["abandon_rate"] == pytest.approx(2 / 4)
    assert q["asa"] == pytest.approx((3 + 66) / 2)
    assert q["avg_abandon_wait"] == pytest.approx((15 + 35) / 2)
    assert q["max_wait"] == pytest.approx(66)
    assert q["handled"] == 2
    assert q["aht"] == pytest.approx(((60 + 5) + (30 + 5)) / 2)
    assert q["avg_talk"] == pytest.approx(45) and q["avg_wrap"] == pytest.approx(5)
    assert q["waiting"] == 0 and q["longest_wait"] == 0
    # a1 busy (reserved, talking, wrap-up) 0..105, available 105..200; a2 never logged in
    assert q["busy_seconds"] == pytest.approx(105) and q["available_seconds"] == pytest.approx(95)
    assert q["occupancy"] == pytest.approx(105 / 200)
    assert q["agents"] == {
        "logged_out": 1,
        "available": 1,
        "reserved": 0,
        "on_call": 0,
        "wrap_up": 0,
        "not_ready": 0,
    }


def test_agent_figures_by_hand() -> None:
    r = basic_day()
    a = r.stats.agent_figures("a1", 200)
    assert a["state"] == "available" and a["in_state_since"] == 105
    assert a["offered"] == 2 and a["answered"] == 2 and a["handled"] == 2 and a["ring_failed"] == 0
    assert a["aht"] == pytest.approx(50)
    assert a["staffed_seconds"] == pytest.approx(200)
    assert a["occupancy"] == pytest.approx(105 / 200)


def test_service_level_threshold_and_short_abandon_are_configurable() -> None:
    r = basic_day(StatsConfig(service_level_threshold=70, short_abandon_threshold=0))
    q = r.stats.queue_figures("sales", 200)
    assert q["short_abandoned"] == 0 and q["abandoned"] == 3
    assert q["answered_within_sl"] == 2 and q["abandoned_within_sl"] == 3
    assert q["sl_offered"] == pytest.approx(2 / 5)
    assert q["sl_answered"] == pytest.approx(1.0)
    assert q["sl_no_early_abandons"] == pytest.approx(1.0)  # every abandon was within 70 s


def test_ring_no_answer_counts_against_the_agent() -> None:
    r = Rig()
    r.ready(0, "a1")
    r.ready(1, "a2")
    r.feed(2, ev.CallEnqueued(call_id="c1", queue="sales"))  # a1 rung (idle longest)
    r.timers(12)  # no answer: a2 rung
    r.feed(13, ev.AgentAnswered(call_id="c1", agent_id="a2"))
    a1 = r.stats.agent_figures("a1", 13)
    a2 = r.stats.agent_figures("a2", 13)
    assert (a1["offered"], a1["ring_failed"], a1["answered"]) == (1, 1, 0)
    assert (a2["offered"], a2["ring_failed"], a2["answered"]) == (1, 0, 1)
    q = r.stats.queue_figures("sales", 13)
    assert q["answered"] == 1 and q["asa"] == pytest.approx(11)  # the wait includes the rings


def test_not_ready_time_is_not_occupancy() -> None:
    r = Rig()
    r.ready(0, "a1")
    r.feed(40, ev.AgentWentNotReady(agent_id="a1", reason="break"))
    r.feed(100, ev.AgentBecameReady(agent_id="a1"))
    r.timers(120)
    a = r.stats.agent_figures("a1", 120)
    assert a["not_ready_seconds"] == pytest.approx(60)
    assert a["available_seconds"] == pytest.approx(60)
    assert a["staffed_seconds"] == pytest.approx(120)
    assert a["occupancy"] == pytest.approx(0.0)


def test_fifteen_minute_rows() -> None:
    r = Rig()
    assert r.stats.next_deadline() == 900
    r.ready(0, "a1")
    r.feed(100, ev.CallEnqueued(call_id="c1", queue="sales"))
    r.feed(110, ev.AgentAnswered(call_id="c1", agent_id="a1"))  # wait 10
    r.feed(850, ev.CallEnqueued(call_id="c2", queue="sales"))  # waits: a1 talks
    r.timers(899)
    assert r.stats.take_intervals() == []
    r.feed(950, ev.CallerHungUp(call_id="c2"))  # wait 100: abandoned in the 2nd interval
    r.feed(1000, ev.AgentHungUp(call_id="c1", agent_id="a1"))  # talk 890, wrap to 1005
    r.timers(1805)
    assert r.stats.next_deadline() == 2700
    rows = {(row.queue, row.start): row for row in r.stats.take_intervals()}
    assert set(rows) == {("sales", 0), ("any", 0), ("sales", 900), ("any", 900)}
    assert r.stats.take_intervals() == []  # taken once

    first = rows["sales", 0]
    assert (first.end, first.offered, first.answered, first.answered_within_sl) == (900, 2, 1, 1)
    assert (first.abandoned, first.handled, first.aht) == (0, 0, None)
    assert first.sl_offered == 1.0 and first.asa == pytest.approx(10)
    # a1: available 0..100, reserved 100..110, on call 110..900
    assert first.busy_seconds == pytest.approx(800) and first.available_seconds == pytest.approx(100)
    assert first.occupancy == pytest.approx(800 / 900)

    second = rows["sales", 900]
    assert (second.offered, second.answered, second.abandoned, second.handled) == (0, 0, 1, 1)
    assert second.sl_offered == 0.0 and second.avg_abandon_wait == pytest.approx(100)
    assert second.aht == pytest.approx(895)  # a call counts where its wrap-up ends
    assert second.busy_seconds == pytest.approx(105)  # talk 900..1000, wrap 1000..1005
    assert second.occupancy == pytest.approx(105 / 900)

    assert rows["any", 0].staffed_seconds == pytest.approx(900)  # every agent serves "any"
    assert rows["any", 0].offered == 0 and rows["any", 0].sl_offered is None

    agents = {(row.agent_id, row.start): row for row in r.stats.take_agent_intervals()}
    a1 = agents["a1", 0]
    assert (a1.offered, a1.answered, a1.handled) == (1, 1, 0)
    assert a1.busy_seconds == pytest.approx(800)
    assert agents["a1", 900].aht == pytest.approx(895)
    assert json.dumps(first.as_dict())  # plain data for the adapter to persist


def test_intervals_align_on_the_origin() -> None:
    s = Statistics(StatsConfig(interval=900, origin=50.0), {"q": []}, now=1000.0)
    assert s.next_deadline() == 1850.0


def test_snapshot_is_plain_json_and_reset_keeps_live_state() -> None:
    r = basic_day()
    r.feed(210, ev.CallEnqueued(call_id="c9", queue="sales"))
    r.feed(211, ev.AgentAnswered(call_id="c9", agent_id="a1"))
    r.feed(212, ev.CallEnqueued(call_id="c10", queue="sales"))
    snap = r.stats.snapshot(220)
    assert Statistics.wire == "queue.stats"
    assert snap["queues"]["sales"]["offered"] == 7
    assert snap["queues"]["sales"]["waiting"] == 1 and snap["queues"]["sales"]["longest_wait"] == 8
    assert snap["agents"]["a1"]["state"] == "on_call"
    assert snap["service_level_threshold"] == 20.0
    json.dumps(snap)
    r.stats.reset(220)
    q = r.stats.queue_figures("sales", 230)
    assert q["offered"] == 0 and q["answered"] == 0 and q["sl_offered"] is None
    assert q["waiting"] == 1 and q["longest_wait"] == 18
    assert r.stats.agent_figures("a1", 230)["busy_seconds"] == pytest.approx(10)
    r.feed(240, ev.AgentHungUp(call_id="c9", agent_id="a1"))  # handled after the reset
    r.timers(245)
    assert r.stats.queue_figures("sales", 245)["aht"] == pytest.approx(29 + 5)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Overflowed:
    """Stands in for the router's overflow event: only ``wire`` and ``call_id`` are read."""

    wire: ClassVar[str] = "call.overflowed"
    call_id: str
    queue: str


def test_overflow_leaves_the_queue() -> None:
    s = Statistics(StatsConfig(), {"a": [], "b": []}, now=0.0)
    s.observe(ev.CallQueued(call_id="c1", queue="a", priority=0, position=1), 0.0)
    s.observe(_Overflowed(call_id="c1", queue="a"), 30.0)
    s.observe(ev.CallQueued(call_id="c2", queue="a", priority=0, position=1), 31.0)
    s.observe(ev.CallQueued(call_id="c2", queue="b", priority=0, position=1), 40.0)  # moved a -> b
    a, b = s.queue_figures("a", 50), s.queue_figures("b", 50)
    assert (a["offered"], a["overflowed"], a["waiting"]) == (2, 2, 0)
    assert (b["offered"], b["waiting"], b["longest_wait"]) == (1, 1, 10)


def test_membership_from_skills() -> None:
    s = build_statistics(QUEUES, AGENTS, StatsConfig(), now=0.0)
    assert sum(s.queue_figures("sales", 0)["agents"].values()) == 2
    assert sum(s.queue_figures("any", 0)["agents"].values()) == 3


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError):
        StatsConfig(interval=0)
    with pytest.raises(ValueError):
        StatsConfig(service_level_threshold=-1)


def test_a_late_query_closes_the_interval_first() -> None:
    r = Rig()
    r.ready(0, "a1")
    r.at(1000)
    assert r.stats.agent_figures("a1", 1000)["available_seconds"] == pytest.approx(1000)
    rows = r.stats.take_agent_intervals()
    assert [(row.agent_id, row.available_seconds) for row in rows if row.agent_id == "a1"] == [("a1", 900)]
