"""Queue and agent statistics: a pure core fed with the router's events and ``now``.

Feed every output of :meth:`acd.Router.handle` / :meth:`acd.Router.on_timer` to
:meth:`Statistics.observe` with the same ``now``. Inputs may be fed too; they are
ignored. Nothing here reads the router's internals, a clock or a file:

- :meth:`Statistics.snapshot` returns a plain dict for a ``queue.stats`` event;
- :meth:`Statistics.take_intervals` returns the closed 15-minute rows (plain data)
  for the adapter to persist;
- :meth:`Statistics.next_deadline` / :meth:`Statistics.on_timer` close an interval
  on time when no event arrives.

Definitions (service-level variants, short abandons, ASA, AHT, occupancy) are in
``docs/acd-statistics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from . import events as ev
from .model import AgentSpec, AgentState, QueueSpec

__all__ = [
    "AgentIntervalRow",
    "IntervalRow",
    "Statistics",
    "StatsConfig",
    "build_statistics",
]

#: Wire name for the snapshot event the adapter publishes every N seconds.
QUEUE_STATS_WIRE = "queue.stats"

_STATES: tuple[AgentState, ...] = tuple(AgentState)
_IDX: dict[AgentState, int] = {s: i for i, s in enumerate(_STATES)}
_BUSY = tuple(_IDX[s] for s in (AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP))
_IDLE = _IDX[AgentState.AVAILABLE]
_LOGGED_OUT = _IDX[AgentState.LOGGED_OUT]
_ON_CALL = AgentState.ON_CALL
_WRAP_UP = AgentState.WRAP_UP


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsConfig:
    """How the figures are computed. Every duration is in seconds."""

    service_level_threshold: float = 20.0  # seconds; answered within this (<=) is "in service level"
    service_level_target: float = 0.80  # 0..1; reported beside the figures (80/20)
    short_abandon_threshold: float = 5.0  # seconds; abandons with wait < this are "short" (0: none)
    interval: float = 900.0  # seconds per roll-up interval (15 minutes)
    origin: float = 0.0  # a `now` value on an interval boundary (feed epoch seconds for clock times)

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        if self.service_level_threshold < 0 or self.short_abandon_threshold < 0:
            raise ValueError("thresholds must be >= 0 seconds")


# ----------------------------------------------------------------- tallies
class _QueueTally:
    __slots__ = (
        "abandoned",
        "abandoned_in_sl",
        "answered",
        "answered_in_sl",
        "cb_abandoned",
        "cb_answered",
        "cb_dial_failed",
        "cb_from_queue",
        "cb_requested",
        "cb_wait",
        "handled",
        "max_wait",
        "offered",
        "overflowed",
        "short_abandoned",
        "talk",
        "wait_abandoned",
        "wait_answered",
        "wrap",
    )

    def __init__(self) -> None:
        self.offered = 0  # calls that entered the queue
        self.answered = 0  # calls connected to an agent
        self.answered_in_sl = 0  # ... with wait <= the service-level threshold
        self.abandoned = 0  # caller hung up while waiting, not short
        self.abandoned_in_sl = 0  # ... with wait <= the threshold
        self.short_abandoned = 0  # caller hung up with wait < short_abandon_threshold
        self.overflowed = 0  # left for another queue or destination
        self.wait_answered = 0.0  # seconds, summed over answered calls
        self.wait_abandoned = 0.0  # seconds, summed over (non-short) abandoned calls
        self.max_wait = 0.0  # seconds, longest wait of a call answered or abandoned
        self.handled = 0  # calls whose wrap-up ended
        self.talk = 0.0  # seconds of talk, summed over handled calls
        self.wrap = 0.0  # seconds of wrap-up, summed over handled calls
        self.cb_requested = 0  # callbacks that entered the queue (from its line, or made directly)
        self.cb_from_queue = 0  # of those, callers who were waiting in the line (left the inbound figures)
        self.cb_answered = 0  # callbacks whose customer answered
        self.cb_abandoned = 0  # callbacks given up (every attempt failed) or cancelled
        self.cb_dial_failed = 0  # customer dial attempts that did not reach the customer
        self.cb_wait = 0.0  # seconds from entering the queue to the customer answering, summed


class _AgentTally:
    __slots__ = ("answered", "handled", "offered", "ring_failed", "talk", "times", "wrap")

    def __init__(self) -> None:
        self.offered = 0  # times rung
        self.ring_failed = 0  # rings not answered (timeout, busy, declined)
        self.answered = 0  # calls connected
        self.handled = 0  # calls whose wrap-up ended
        self.talk = 0.0  # seconds
        self.wrap = 0.0  # seconds
        self.times = [0.0] * len(_STATES)  # seconds in each AgentState, indexed by _IDX


class _Queue:
    __slots__ = ("cum", "cur", "members", "name", "waiting")

    def __init__(self, name: str, members: Iterable[str]) -> None:
        self.name = name
        self.members: list[str] = list(members)
        self.waiting: dict[str, float] = {}  # call id -> when it entered, seconds; oldest first
        self.cum = _QueueTally()  # since the last reset
        self.cur = _QueueTally()  # the open interval


class _Agent:
    __slots__ = ("cum", "cur", "entered", "id", "queue", "since", "state", "talk", "talk_start", "wrap_start")

    def __init__(self, agent_id: str, now: float) -> None:
        self.id = agent_id
        self.state = AgentState.LOGGED_OUT
        self.entered = now  # seconds; when the agent entered ``state`` (or was first seen)
        self.since = now  # seconds; time before this is already in the tallies
        self.queue: _Queue | None = None  # queue of the call being handled
        self.talk_start = 0.0  # seconds
        self.wrap_start = 0.0  # seconds
        self.talk = 0.0  # seconds of talk of the call in wrap-up
        self.cum = _AgentTally()
        self.cur = _AgentTally()


# -------------------------------------------------------------- rows (plain data)
@dataclass(frozen=True, slots=True, kw_only=True)
class IntervalRow:
    """One queue over one closed interval. Ratios are 0..1, or None when undefined."""

    queue: str
    start: float  # seconds, same time base as `now`
    end: float  # seconds
    offered: int  # calls that entered the queue in the interval
    answered: int  # calls connected in the interval (wherever they entered)
    answered_within_sl: int  # ... with wait <= threshold
    abandoned: int  # abandons in the interval, short ones excluded
    abandoned_within_sl: int  # ... with wait <= threshold
    short_abandoned: int  # abandons with wait < short threshold
    overflowed: int  # calls that left for another queue or destination
    handled: int  # calls whose wrap-up ended in the interval
    sl_offered: float | None  # answered_within_sl / (answered + abandoned)
    sl_no_early_abandons: float | None  # answered_within_sl / (answered + abandoned after threshold)
    sl_answered: float | None  # answered_within_sl / answered (Asterisk ServicelevelPerf)
    sl_perf2: float | None  # (answered + abandoned within threshold) / (answered + abandoned)
    abandon_rate: float | None  # abandoned / (answered + abandoned)
    asa: float | None  # seconds, mean wait of answered calls
    avg_abandon_wait: float | None  # seconds, mean wait of (non-short) abandoned calls
    max_wait: float  # seconds, longest wait answered or abandoned in the interval
    aht: float | None  # seconds, mean talk + wrap-up of handled calls
    avg_talk: float | None  # seconds
    avg_wrap: float | None  # seconds
    staffed_seconds: float  # agent-seconds logged in, summed over the queue's agents
    busy_seconds: float  # agent-seconds reserved, on call or in wrap-up
    available_seconds: float  # agent-seconds available (idle)
    occupancy: float | None  # busy / (busy + available)
    callbacks_requested: int = 0  # callbacks that entered the queue (from the line or made directly)
    callbacks_from_queue: int = 0  # of those, callers who were waiting here
    callbacks_answered: int = 0  # callbacks whose customer answered
    callbacks_abandoned: int = 0  # callbacks given up after every attempt, or cancelled
    callback_dial_failures: int = 0  # customer dial attempts that failed
    avg_callback_wait: float | None = None  # seconds, entering the queue to the customer answering

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentIntervalRow:
    """One agent over one closed interval."""

    agent_id: str
    start: float  # seconds
    end: float  # seconds
    offered: int  # times rung
    ring_failed: int  # rings that were not answered
    answered: int  # calls connected
    handled: int  # calls whose wrap-up ended
    aht: float | None  # seconds
    staffed_seconds: float  # seconds logged in
    busy_seconds: float  # seconds reserved, on call or in wrap-up
    available_seconds: float  # seconds available
    not_ready_seconds: float  # seconds not ready
    occupancy: float | None  # busy / (busy + available)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ figures
def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _queue_figures(t: _QueueTally) -> dict[str, Any]:
    ab = t.abandoned
    denom = t.answered + ab
    return {
        "offered": t.offered,
        "answered": t.answered,
        "answered_within_sl": t.answered_in_sl,
        "abandoned": ab,
        "abandoned_within_sl": t.abandoned_in_sl,
        "short_abandoned": t.short_abandoned,
        "overflowed": t.overflowed,
        "handled": t.handled,
        "sl_offered": _ratio(t.answered_in_sl, denom),
        "sl_no_early_abandons": _ratio(t.answered_in_sl, t.answered + ab - t.abandoned_in_sl),
        "sl_answered": _ratio(t.answered_in_sl, t.answered),
        "sl_perf2": _ratio(t.answered_in_sl + t.abandoned_in_sl, denom),
        "abandon_rate": _ratio(ab, denom),
        "asa": _ratio(t.wait_answered, t.answered),
        "avg_abandon_wait": _ratio(t.wait_abandoned, ab),
        "max_wait": t.max_wait,
        "aht": _ratio(t.talk + t.wrap, t.handled),
        "avg_talk": _ratio(t.talk, t.handled),
        "avg_wrap": _ratio(t.wrap, t.handled),
        "callbacks_requested": t.cb_requested,
        "callbacks_from_queue": t.cb_from_queue,
        "callbacks_answered": t.cb_answered,
        "callbacks_abandoned": t.cb_abandoned,
        "callback_dial_failures": t.cb_dial_failed,
        "avg_callback_wait": _ratio(t.cb_wait, t.cb_answered),
    }


def _time_figures(times: list[float]) -> dict[str, Any]:
    busy = sum(times[i] for i in _BUSY)
    idle = times[_IDLE]
    staffed = sum(times) - times[_LOGGED_OUT]
    return {
        "staffed_seconds": staffed,
        "busy_seconds": busy,
        "available_seconds": idle,
        "occupancy": _ratio(busy, busy + idle),
    }


class Statistics:
    """Real-time and per-interval figures per queue and per agent.

    ``queues`` maps each queue name to the ids of the agents who can serve it (for
    "agents by state" and occupancy per queue); :func:`build_statistics` derives it
    from the router's config. ``now`` is the start of the first interval's tallies.
    """

    wire: ClassVar[str] = QUEUE_STATS_WIRE

    def __init__(self, config: StatsConfig, queues: Mapping[str, Iterable[str]], *, now: float) -> None:
        self.config = config
        self._threshold = config.service_level_threshold
        self._short = config.short_abandon_threshold
        self._queues: dict[str, _Queue] = {name: _Queue(name, m) for name, m in queues.items()}
        self._agents: dict[str, _Agent] = {}
        for q in self._queues.values():
            for aid in q.members:
                if aid not in self._agents:
                    self._agents[aid] = _Agent(aid, now)
        self._waiting_in: dict[str, _Queue] = {}  # call id -> queue it waits in
        self._reset_at = now  # seconds
        step = config.interval
        self._interval_start = config.origin + math.floor((now - config.origin) / step) * step
        self._interval_end = self._interval_start + step
        self._tallied_from = now  # seconds: the open interval's tallies began here (a start-up mid-interval)
        self._closed: list[IntervalRow] = []
        self._closed_agents: list[AgentIntervalRow] = []
        self._dispatch: dict[type, Callable[[Any, float], None]] = {
            ev.CallQueued: self._queued,
            ev.AgentOffered: self._offered,
            ev.AgentOfferFailed: self._offer_failed,
            ev.CallConnected: self._connected,
            ev.CallAbandoned: self._abandoned,
            ev.AgentStateChanged: self._state_changed,
            ev.CallbackRegistered: self._cb_registered,
            ev.CallbackConnected: self._cb_connected,
            ev.CallbackAttemptFailed: self._cb_dial_failed,
            ev.CallbackAbandoned: self._cb_abandoned,
        }

    # ------------------------------------------------------------ feeding
    def observe(self, event: object, now: float) -> None:
        """Account one router output (or input: ignored) that happened at ``now``."""
        if now >= self._interval_end:
            self._roll(now)
        handler = self._dispatch.get(type(event))
        if handler is not None:
            handler(event, now)
        elif getattr(event, "wire", None) == "call.overflowed":
            self._left_queue(getattr(event, "call_id", ""), now)

    def observe_all(self, events: Iterable[object], now: float) -> None:
        for event in events:
            self.observe(event, now)

    def next_deadline(self) -> float:
        """When the open interval closes, seconds; call :meth:`on_timer` then."""
        return self._interval_end

    def on_timer(self, now: float) -> None:
        """Close every interval that ended at or before ``now``."""
        if now >= self._interval_end:
            self._roll(now)

    def reset(self, now: float) -> None:
        """Zero the running totals (e.g. at midnight, or after a simulator warm-up).

        Live state (who waits, agents' states) and the open interval are kept.
        """
        self.on_timer(now)
        for agent in self._agents.values():
            self._account(agent, now)
            agent.cum = _AgentTally()
        for q in self._queues.values():
            q.cum = _QueueTally()
        self._reset_at = now

    # ------------------------------------------------------------ handlers
    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = _Queue(name, ())
        return q

    def _agent(self, agent_id: str, now: float) -> _Agent:
        a = self._agents.get(agent_id)
        if a is None:
            a = self._agents[agent_id] = _Agent(agent_id, now)
        return a

    def _queued(self, e: ev.CallQueued, now: float) -> None:
        if e.call_id in self._waiting_in:  # moved to another queue: the old one overflowed
            self._left_queue(e.call_id, now)
        q = self._queue(e.queue)
        q.cum.offered += 1
        q.cur.offered += 1
        q.waiting[e.call_id] = now
        self._waiting_in[e.call_id] = q

    def _left_queue(self, call_id: str, now: float) -> None:
        q = self._waiting_in.pop(call_id, None)
        if q is None:
            return
        del q.waiting[call_id]
        q.cum.overflowed += 1
        q.cur.overflowed += 1

    def _offered(self, e: ev.AgentOffered, now: float) -> None:
        a = self._agent(e.agent_id, now)
        a.cum.offered += 1
        a.cur.offered += 1

    def _offer_failed(self, e: ev.AgentOfferFailed, now: float) -> None:
        a = self._agent(e.agent_id, now)
        a.cum.ring_failed += 1
        a.cur.ring_failed += 1

    def _left_line(self, call_id: str, queue: str) -> _Queue:
        """The queue tally of a caller leaving its line (answered or abandoned)."""
        q = self._waiting_in.pop(call_id, None)
        if q is None:
            return self._queue(queue)
        q.waiting.pop(call_id, None)
        return q

    def _connected(self, e: ev.CallConnected, now: float) -> None:
        q = self._left_line(e.call_id, e.queue)
        wait = e.wait_seconds
        in_sl = wait <= self._threshold
        for t in (q.cum, q.cur):
            t.answered += 1
            t.wait_answered += wait
            if in_sl:
                t.answered_in_sl += 1
            if wait > t.max_wait:
                t.max_wait = wait
        a = self._agent(e.agent_id, now)
        a.cum.answered += 1
        a.cur.answered += 1
        a.queue = q
        a.talk_start = now

    def _abandoned(self, e: ev.CallAbandoned, now: float) -> None:
        q = self._left_line(e.call_id, e.queue)
        wait = e.wait_seconds
        if wait < self._short:
            q.cum.short_abandoned += 1
            q.cur.short_abandoned += 1
            return
        in_sl = wait <= self._threshold
        for t in (q.cum, q.cur):
            t.abandoned += 1
            t.wait_abandoned += wait
            if in_sl:
                t.abandoned_in_sl += 1
            if wait > t.max_wait:
                t.max_wait = wait

    def _cb_registered(self, e: ev.CallbackRegistered, now: float) -> None:
        if e.restored:
            return  # counted when it was requested, before the restart
        q = self._waiting_in.pop(e.call_id, None)
        if q is not None:  # a waiting caller became a callback: it leaves the inbound figures
            del q.waiting[e.call_id]
        for t in (self._queue(e.queue).cum, self._queue(e.queue).cur):
            t.cb_requested += 1
            if q is not None:
                t.cb_from_queue += 1

    def _cb_connected(self, e: ev.CallbackConnected, now: float) -> None:
        q = self._queue(e.queue)
        for t in (q.cum, q.cur):
            t.cb_answered += 1
            t.cb_wait += e.wait_seconds
        a = self._agent(e.agent_id, now)
        a.cum.answered += 1
        a.cur.answered += 1
        a.queue = q
        a.talk_start = now

    def _cb_dial_failed(self, e: ev.CallbackAttemptFailed, now: float) -> None:
        q = self._queue(e.queue)
        q.cum.cb_dial_failed += 1
        q.cur.cb_dial_failed += 1

    def _cb_abandoned(self, e: ev.CallbackAbandoned, now: float) -> None:
        q = self._queue(e.queue)
        q.cum.cb_abandoned += 1
        q.cur.cb_abandoned += 1

    def _state_changed(self, e: ev.AgentStateChanged, now: float) -> None:
        a = self._agents.get(e.agent_id) or self._agent(e.agent_id, now)
        spent = now - a.since  # _account(), inlined: this runs for every state change
        if spent > 0:
            i = _IDX[a.state]
            a.cum.times[i] += spent
            a.cur.times[i] += spent
        a.since = now
        a.state = e.to
        a.entered = now
        previous = e.from_
        if previous is _ON_CALL and e.reason == "callback_failed":
            a.queue = None  # dialled a callback that failed: no call was handled
        elif previous is _ON_CALL:
            a.talk = now - a.talk_start
            a.wrap_start = now
            if e.to is not _WRAP_UP:  # no wrap-up state at all: the call is handled now
                self._handled(a, now)
        elif previous is _WRAP_UP:
            self._handled(a, now)

    def _handled(self, a: _Agent, now: float) -> None:
        talk, wrap = a.talk, now - a.wrap_start
        for t in (a.cum, a.cur):
            t.handled += 1
            t.talk += talk
            t.wrap += wrap
        if a.queue is not None:
            for qt in (a.queue.cum, a.queue.cur):
                qt.handled += 1
                qt.talk += talk
                qt.wrap += wrap
        a.queue = None
        a.talk = 0.0

    def _account(self, a: _Agent, now: float) -> None:
        """Move the time since ``a.since`` into the tallies of the state it was in."""
        spent = now - a.since
        if spent > 0:
            i = _IDX[a.state]
            a.cum.times[i] += spent
            a.cur.times[i] += spent
        a.since = now

    # ----------------------------------------------------------- intervals
    def close_open_interval(self, now: float) -> None:
        """Close the open interval early, at ``now`` (the server stops): its rows run from where
        its tallies began to ``now``, so a restart within the same interval adds rows of its
        own rather than overwriting these. Take them with :meth:`take_intervals`."""
        self.on_timer(now)
        if now > self._tallied_from:
            self._close(now)

    def _close(self, end: float) -> None:
        for agent in self._agents.values():
            self._account(agent, end)
        start = max(self._interval_start, self._tallied_from)
        for q in self._queues.values():
            self._closed.append(self._queue_row(q, start, end))
        for agent in self._agents.values():
            self._closed_agents.append(self._agent_row(agent, start, end))
        for q in self._queues.values():
            q.cur = _QueueTally()
        for agent in self._agents.values():
            agent.cur = _AgentTally()
        self._tallied_from = end

    def _roll(self, now: float) -> None:
        while now >= self._interval_end:
            end = self._interval_end
            self._close(end)
            self._interval_start = end
            self._interval_end = end + self.config.interval

    def _queue_row(self, q: _Queue, start: float, end: float) -> IntervalRow:
        times = self._member_times(q, current=True)
        return IntervalRow(
            queue=q.name, start=start, end=end, **_queue_figures(q.cur), **_time_figures(times)
        )

    def _agent_row(self, a: _Agent, start: float, end: float) -> AgentIntervalRow:
        t = a.cur
        figures = _time_figures(t.times)
        return AgentIntervalRow(
            agent_id=a.id,
            start=start,
            end=end,
            offered=t.offered,
            ring_failed=t.ring_failed,
            answered=t.answered,
            handled=t.handled,
            aht=_ratio(t.talk + t.wrap, t.handled),
            not_ready_seconds=t.times[_IDX[AgentState.NOT_READY]],
            **figures,
        )

    def _member_times(self, q: _Queue, *, current: bool) -> list[float]:
        total = [0.0] * len(_STATES)
        for aid in q.members:
            a = self._agents[aid]
            times = a.cur.times if current else a.cum.times
            for i, v in enumerate(times):
                total[i] += v
        return total

    def take_intervals(self) -> list[IntervalRow]:
        """The queue rows of intervals closed since the last call (oldest first)."""
        rows, self._closed = self._closed, []
        return rows

    def take_agent_intervals(self) -> list[AgentIntervalRow]:
        """The agent rows of intervals closed since the last call (oldest first)."""
        rows, self._closed_agents = self._closed_agents, []
        return rows

    # ----------------------------------------------------------- real time
    def longest_wait(self, queue: str, now: float) -> float:
        """Seconds the oldest caller still waiting in ``queue`` has waited (0 if none)."""
        q = self._queues.get(queue)
        if q is None or not q.waiting:
            return 0.0
        return now - next(iter(q.waiting.values()))

    def queue_figures(self, queue: str, now: float) -> dict[str, Any]:
        """Figures for one queue since the last reset, plus its live state."""
        self.on_timer(now)  # time after the open interval's end belongs to the next one
        q = self._queues[queue]
        for aid in q.members:
            self._account(self._agents[aid], now)
        by_state = dict.fromkeys((s.value for s in _STATES), 0)
        for aid in q.members:
            by_state[self._agents[aid].state.value] += 1
        return {
            "queue": q.name,
            **_queue_figures(q.cum),
            **_time_figures(self._member_times(q, current=False)),
            "waiting": len(q.waiting),
            "longest_wait": self.longest_wait(queue, now),
            "agents": by_state,
            "interval": {"start": self._interval_start, **_queue_figures(q.cur)},
        }

    def agent_figures(self, agent_id: str, now: float) -> dict[str, Any]:
        """Figures for one agent since the last reset, plus the current state."""
        self.on_timer(now)
        a = self._agents[agent_id]
        self._account(a, now)
        t = a.cum
        return {
            "agent_id": a.id,
            "state": a.state.value,
            "in_state_since": a.entered,
            "offered": t.offered,
            "ring_failed": t.ring_failed,
            "answered": t.answered,
            "handled": t.handled,
            "aht": _ratio(t.talk + t.wrap, t.handled),
            "avg_talk": _ratio(t.talk, t.handled),
            "avg_wrap": _ratio(t.wrap, t.handled),
            "not_ready_seconds": t.times[_IDX[AgentState.NOT_READY]],
            **_time_figures(t.times),
        }

    def snapshot(self, now: float) -> dict[str, Any]:
        """Everything, as plain JSON-ready data for a ``queue.stats`` event."""
        return {
            "at": now,
            "since": self._reset_at,
            "service_level_threshold": self._threshold,
            "service_level_target": self.config.service_level_target,
            "short_abandon_threshold": self._short,
            "queues": {name: self.queue_figures(name, now) for name in self._queues},
            "agents": {aid: self.agent_figures(aid, now) for aid in self._agents},
        }


def _skill_names(skills: object) -> frozenset[str]:
    """Skill names from a tuple of names, a name -> proficiency mapping, or objects with ``.name``."""
    if isinstance(skills, Mapping):
        return frozenset(str(k) for k in skills)
    if isinstance(skills, Iterable) and not isinstance(skills, str):
        return frozenset(s if isinstance(s, str) else str(getattr(s, "name", s)) for s in skills)
    return frozenset()


def build_statistics(
    queues: Iterable[QueueSpec], agents: Iterable[AgentSpec], config: StatsConfig, *, now: float
) -> Statistics:
    """The wiring point: an agent belongs to a queue when it has every skill the queue names.

    (Minimum proficiencies, if the router's config has them, are not applied here: the
    membership only decides which agents a queue's "agents by state" and occupancy count.)
    """
    agent_list = list(agents)
    skills = {a.id: _skill_names(a.skills) for a in agent_list}
    members = {q.name: [a.id for a in agent_list if _skill_names(q.skills) <= skills[a.id]] for q in queues}
    return Statistics(config, members, now=now)
