"""The routing core: events and the current time in, events and actions out.

No I/O, no clock: every method takes ``now`` (seconds, any monotonic origin).
The adapter runs the actions and arms one timer for :meth:`Router.next_deadline`.

Data structures (so a decision never scans every caller times every agent):

* each queue keeps one sorted *line* per relaxation step, ordered by a key that
  does not change while the caller waits (see :func:`_line_key`), so an agent who
  frees up reads the head of a few lines;
* each queue keeps one strategy *pool* per relaxation step with the available
  agents qualified at that step, so a caller who arrives asks a few pools;
* callers inside a preferred-agent window wait on that agent, not in a line.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import events as ev
from .model import (
    TRANSITIONS,
    AcdConfigError,
    AcdUsageError,
    AgentSpec,
    AgentState,
    CallbackRecord,
    IllegalTransition,
    Overflow,
    OverflowKind,
    OverflowReason,
    QueueSpec,
    Trigger,
    qualifies,
    relaxed_requirements,
    skill_levels,
)
from .strategies import BUILTIN_STRATEGIES, Member, Pool, Strategy, StrategyFactory

_NOWHERE, _LINE, _PREFERRED = 0, 1, 2  # where a caller's entry sits (Entry.place)

LineItem = tuple[float, int, "Entry"]  # (key, arrival order, entry)

#: States in which an agent takes calls (for the EWT's "agents able to take the call").
_STAFFED = frozenset({AgentState.AVAILABLE, AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP})


@dataclass(slots=True, eq=False)
class Agent:
    spec: AgentSpec
    contact: str
    state: AgentState = AgentState.LOGGED_OUT
    since: float = 0.0  # when the agent entered ``state``, seconds
    idle_since: float = 0.0  # when the agent last became available, seconds
    consecutive_failures: int = 0  # failed offers in a row
    call_id: str | None = None  # the call offered to or talking with this agent
    reason: str | None = None  # not-ready reason
    token: int = 0  # bumped on every state change; strategy pools use it to drop stale agents
    calls: int = 0  # calls answered since start
    indexed: bool = False  # memberships computed
    memberships: list[tuple[QueueLine, Member]] = field(default_factory=list)
    tiers: list[list[tuple[QueueLine, Member]]] = field(default_factory=list)  # by priority, best first
    member_of: dict[str, Member] = field(default_factory=dict)  # queue name -> membership
    preferred: dict[str, Entry] = field(default_factory=dict)  # callers waiting for this agent alone
    handle_start: float = 0.0  # seconds: when the agent answered the call being handled
    handle_line: QueueLine | None = None  # the queue of that call, until its wrap-up ends


@dataclass(slots=True)
class QueueCounts:
    """Per-queue tallies since start. offered = answered + abandoned + overflowed + waiting."""

    offered: int = 0  # callers who entered the queue (including overflow arrivals)
    answered: int = 0  # connected to an agent
    abandoned: int = 0  # hung up before an agent answered
    overflowed: int = 0  # sent elsewhere (max wait, no agents, queue full)
    waiting: int = 0  # in the queue now, waiting or ringing (callbacks: until connected or given up)
    callbacks: int = 0  # of ``offered``, callers who became callbacks, and callbacks made directly


@dataclass(slots=True, eq=False)
class QueueLine:
    """A queue's run-time structures."""

    spec: QueueSpec
    requirements: list[dict[str, int]]  # per relaxation step 0..K
    step_after: list[float]  # seconds of waiting at which step 1..K applies
    strategy: Strategy
    pools: list[Pool]  # per step: available agents qualified at that step
    lines: list[list[LineItem]]  # per step: waiting callers, sorted
    preferred: list[LineItem] = field(default_factory=list)  # callers in a preferred window, sorted
    held: dict[str, Entry] = field(default_factory=dict)  # waiting or ringing, not connected
    members: int = 0  # agents who can serve the queue at its most relaxed step
    logged_in: int = 0  # of those, logged in
    counts: QueueCounts = field(default_factory=QueueCounts)
    aht: float = 0.0  # seconds: moving average handle time (answer to wrap-up end), for the EWT
    staffed_from: list[int] = field(default_factory=list)  # per step: staffed agents qualified from it


@dataclass(slots=True, eq=False)
class Entry:
    """A caller waiting in (or being served from) a queue."""

    call_id: str
    queue: QueueSpec
    priority: int
    enqueued_at: float  # seconds
    order: int  # tie-breaker: arrival order
    data: Mapping[str, Any]
    line: QueueLine
    key: float = 0.0  # line order; lower first (see _line_key)
    step: int = 0  # relaxation steps applied
    place: int = _NOWHERE
    ringing: list[str] = field(default_factory=list)  # agents being rung now
    agent_id: str | None = None  # the agent talking
    connected: bool = False
    attempts: int = 0  # agents rung so far
    failed_at: dict[str, float] = field(default_factory=dict)  # agent id -> last failure time
    preferred: str | None = None  # agent id, while the preferred-agent window runs
    overdue: bool = False  # max wait passed while ringing: overflow if the ring fails
    number: str | None = None  # a callback: the customer number (the entry is a virtual caller)
    leg_open: bool = False  # a callback whose original caller's leg has not hung up yet
    cb_attempts: int = 0  # customer dial attempts made
    dialing: bool = False  # a callback: its agent answered, the customer is being dialled
    extra: frozenset[str] = frozenset()  # skills this caller needs beyond the queue's (from the IVR)


def _line_key(queue: QueueSpec, priority: int, enqueued_at: float) -> float:
    """Effective priority is ``priority + wait / aging_seconds``. For two callers of
    one queue the difference does not change with time, so the line can be ordered
    once by ``enqueued_at - priority * aging_seconds`` (lower first). Without aging
    it is ``-priority`` (and arrival order breaks ties)."""
    if queue.aging_seconds > 0:
        return enqueued_at - priority * queue.aging_seconds
    return float(-priority)


def _effective(entry: Entry, now: float) -> float:
    aging = entry.queue.aging_seconds
    return entry.priority + ((now - entry.enqueued_at) / aging if aging > 0 else 0.0)


class Router:
    """Skill-based ACD with per-queue strategies, priority aging, relaxation and overflow."""

    def __init__(
        self,
        queues: Iterable[QueueSpec],
        agents: Iterable[AgentSpec],
        strategies: Mapping[str, StrategyFactory] | None = None,
    ) -> None:
        self.queues = {q.name: q for q in queues}
        self._strategies = {**BUILTIN_STRATEGIES, **(strategies or {})}
        self._lines = {name: self._build_line(q) for name, q in self.queues.items()}
        self._check_overflow_graph()
        self.agents = {a.id: Agent(spec=a, contact=a.contact) for a in agents}
        for agent in self.agents.values():
            self._index(agent)
        self._entries: dict[str, Entry] = {}
        self._skills_of: dict[str, frozenset[str]] = {}  # agent id -> skill names (per-call extra skills)
        self._order = itertools.count()
        # timers: key -> deadline; a key is (kind, call or agent id)
        self._timers: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []
        self._dirty_agents: deque[Agent] = deque()  # became available: look for a caller
        self._dirty_entries: deque[Entry] = deque()  # became routable: look for an agent

    # ------------------------------------------------------------------ config
    def _build_line(self, q: QueueSpec) -> QueueLine:
        factory = self._strategies.get(q.strategy)
        if factory is None:
            known = ", ".join(sorted(self._strategies))
            raise AcdConfigError(
                f"queue {q.name!r}: no strategy {q.strategy!r} (known: {known})", code="acd.unknown_strategy"
            )
        for when, target in ((q.max_wait, q.on_max_wait), (q.max_waiting, q.on_full)):
            if when is not None and target is None:
                raise AcdConfigError(
                    f"queue {q.name!r}: max_wait/max_waiting needs an overflow target (on_max_wait/on_full)"
                )
        if q.aging_seconds < 0:
            raise AcdConfigError(f"queue {q.name!r}: aging_seconds must be >= 0")
        if q.callback_max_attempts < 1 or q.callback_retry_delay < 0:
            raise AcdConfigError(f"queue {q.name!r}: callback_max_attempts >= 1, callback_retry_delay >= 0")
        if q.default_aht <= 0 or not 0 < q.aht_smoothing <= 1:
            raise AcdConfigError(f"queue {q.name!r}: default_aht must be > 0 and aht_smoothing in (0, 1]")
        reqs = relaxed_requirements(q)
        strategy = factory(q)
        steps = len(reqs)
        return QueueLine(
            spec=q,
            requirements=reqs,
            step_after=sorted(s.after for s in q.relax),
            strategy=strategy,
            pools=[strategy.pool([]) for _ in range(steps)],
            lines=[[] for _ in range(steps)],
            aht=q.default_aht,
            staffed_from=[0] * steps,
        )

    def _check_overflow_graph(self) -> None:
        edges: dict[str, set[str]] = {}
        for q in self.queues.values():
            for target in (q.on_max_wait, q.on_full, q.on_no_agents):
                if target is None or target.kind is not OverflowKind.QUEUE:
                    continue
                if target.target not in self.queues:
                    raise AcdConfigError(
                        f"queue {q.name!r} overflows to unknown queue {target.target!r}",
                        code="acd.unknown_queue",
                    )
                edges.setdefault(q.name, set()).add(target.target)

        def visit(name: str, path: list[str]) -> None:
            if name in path:
                cycle = " -> ".join([*path[path.index(name) :], name])
                raise AcdConfigError(f"queue overflow loops: {cycle}", code="acd.overflow_cycle")
            for nxt in sorted(edges.get(name, ())):
                visit(nxt, [*path, name])

        for name in edges:
            visit(name, [])

    def _index(self, agent: Agent) -> None:
        """Work out which queues ``agent`` serves, at which priority and from which step."""
        agent.indexed = True
        spec = agent.spec
        levels = skill_levels(spec.skills, default=5)
        wanted = spec.queues
        if wanted is not None:
            for name in wanted:
                if name not in self._lines:
                    raise AcdConfigError(
                        f"agent {spec.id!r} lists unknown queue {name!r}", code="acd.unknown_queue"
                    )
        for name, line in self._lines.items():
            if wanted is not None and name not in wanted:
                continue
            first = next((k for k, req in enumerate(line.requirements) if qualifies(levels, req)), None)
            if first is None:
                if wanted is not None:
                    raise AcdConfigError(
                        f"agent {spec.id!r} lists queue {name!r} but lacks its skills even fully relaxed",
                        code="acd.agent_lacks_skills",
                    )
                continue
            member = Member(
                agent=agent,
                agent_id=spec.id,
                index=line.members,
                priority=wanted[name] if wanted is not None else 0,
                proficiency=sum(levels.get(s, 0) for s in line.requirements[0]),
                first_step=first,
            )
            line.members += 1
            agent.memberships.append((line, member))
            agent.member_of[name] = member
        by_priority: dict[int, list[tuple[QueueLine, Member]]] = {}
        for line, member in agent.memberships:
            by_priority.setdefault(member.priority, []).append((line, member))
        agent.tiers = [by_priority[p] for p in sorted(by_priority, reverse=True)]

    # ----------------------------------------------------------------- queries
    def agent_state(self, agent_id: str) -> AgentState:
        return self._agent(agent_id).state

    def waiting(self, queue: str) -> list[str]:
        """Call ids waiting in ``queue`` (not yet with an agent), first in line first."""
        line = self._lines[queue]
        items = sorted(itertools.chain(line.preferred, *line.lines), key=lambda i: (i[0], i[1]))
        return [item[2].call_id for item in items]

    def position(self, call_id: str) -> int | None:
        """1 = next in line; None if the call is ringing an agent, connected or unknown."""
        entry = self._entries.get(call_id)
        if entry is None or entry.place == _NOWHERE:
            return None
        probe = (entry.key, entry.order)
        line = entry.line
        return 1 + sum(bisect_left(items, probe) for items in (line.preferred, *line.lines))

    def has_call(self, call_id: str) -> bool:
        return call_id in self._entries

    def counts(self, queue: str) -> QueueCounts:
        """A copy of ``queue``'s tallies (see :class:`QueueCounts`)."""
        line = self._lines[queue]
        c = line.counts
        return QueueCounts(c.offered, c.answered, c.abandoned, c.overflowed, len(line.held), c.callbacks)

    def ewt(self, call_id: str, now: float) -> float | None:
        """Estimated seconds from ``now`` until an agent answers ``call_id`` (for a callback:
        until its agent is reserved); None if the call is unknown or connected. 0.0 while an
        agent rings (or a callback's customer is dialled). See docs/acd.md for the estimator."""
        entry = self._entries.get(call_id)
        if entry is None or entry.connected:
            return None
        if entry.ringing or entry.dialing:
            return 0.0
        if entry.place == _NOWHERE:  # a callback waiting for its retry: at least until then
            due = self._timers.get(("cbretry", call_id), now)
            return max(0.0, due - now) + self._estimate(entry, 1)
        return self._estimate(entry, self.position(call_id) or 1)

    def aht(self, queue: str) -> float:
        """The moving average handle time the EWT uses for ``queue``, seconds."""
        return self._lines[queue].aht

    def _estimate(self, entry: Entry, position: int) -> float:
        """``position`` x AHT / able agents, or 0 when an agent is free for the caller now."""
        line = entry.line
        if entry.place != _PREFERRED and line.pools[entry.step].pick(_anyone) is not None:
            return 0.0
        able = sum(line.staffed_from[: entry.step + 1])
        return position * line.aht / max(1, able)

    def pending_callbacks(self, now: float) -> list[CallbackRecord]:
        """Every callback not yet connected, as plain data in line order, for the adapter to
        persist (save after any output whose wire name starts with ``callback.``)."""
        out = []
        for entry in sorted(self._entries.values(), key=lambda e: e.order):
            if entry.number is None or entry.connected:
                continue
            due = self._timers.get(("cbretry", entry.call_id))
            out.append(
                CallbackRecord(
                    call_id=entry.call_id,
                    queue=entry.queue.name,
                    number=entry.number,
                    priority=entry.priority,
                    data=dict(entry.data),
                    waited=now - entry.enqueued_at,
                    attempts=entry.cb_attempts,
                    retry_in=max(0.0, due - now) if due is not None else 0.0,
                )
            )
        return out

    def restore_callbacks(self, records: Iterable[CallbackRecord], now: float) -> list[ev.Output]:
        """Put persisted callbacks back in line (typically into a new router after a restart),
        in the order given (that of :meth:`pending_callbacks`). Each keeps its ``waited``
        seconds, so their order among themselves and against new callers is kept; the time
        the server was down is not counted. Raises :class:`AcdUsageError` (nothing restored)
        for an unknown queue or a call id already present."""
        records = list(records)
        seen: set[str] = set()
        for rec in records:
            if rec.queue not in self.queues:
                raise AcdUsageError(
                    f"callback {rec.call_id}: no queue {rec.queue!r}", code="acd.unknown_queue"
                )
            if rec.call_id in self._entries or rec.call_id in seen:
                raise AcdUsageError(f"call {rec.call_id} is already queued", code="acd.duplicate_call")
            seen.add(rec.call_id)
        out: list[ev.Output] = []
        for rec in records:
            self._admit_callback(
                rec.call_id, self.queues[rec.queue], rec.number, rec.priority, dict(rec.data),
                now - max(0.0, rec.waited), now, out,
                attempts=rec.attempts, retry_in=rec.retry_in, restored=True,
            )  # fmt: skip
        self._route(now, out)
        return out

    def ringing(self, call_id: str) -> list[str]:
        """Agent ids being rung for ``call_id`` now (several with ring_all)."""
        entry = self._entries.get(call_id)
        return list(entry.ringing) if entry is not None else []

    # ------------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        while self._heap:
            deadline, key = self._heap[0]
            if self._timers.get(key) == deadline:
                return deadline
            heapq.heappop(self._heap)  # stale
        return None

    def on_timer(self, now: float) -> list[ev.Output]:
        out: list[ev.Output] = []
        while (deadline := self.next_deadline()) is not None and deadline <= now:
            _, key = heapq.heappop(self._heap)
            del self._timers[key]
            kind, ident = key
            if kind == "wrap":
                self._transition(self.agents[ident], Trigger.WRAP_UP_DONE, now, None, out)
                continue
            entry = self._entries[ident]
            if kind == "ring":
                for aid in list(entry.ringing):
                    out.append(ev.CancelRing(call_id=ident, agent_id=aid))
                    self._ring_failed(entry, aid, "no_answer", now, out)
            elif kind == "relax":
                self._relax(entry)
            elif kind == "pref":
                self._end_preference(entry)
            elif kind == "retry":
                self._dirty_entries.append(entry)
                later = [t + entry.queue.retry_delay for t in entry.failed_at.values()]
                upcoming = [t for t in later if t > now]
                if upcoming:
                    self._arm(("retry", ident), min(upcoming))
            elif kind == "cbretry":
                self._requeue(entry, now)
            elif kind == "maxwait":
                if entry.place != _NOWHERE:
                    assert entry.queue.on_max_wait is not None
                    self._overflow(entry, OverflowReason.MAX_WAIT, entry.queue.on_max_wait, now, out)
                else:
                    entry.overdue = True  # ringing: overflow if nobody answers
        self._route(now, out)
        return out

    def _arm(self, key: tuple[str, str], deadline: float) -> None:
        self._timers[key] = deadline
        heapq.heappush(self._heap, (deadline, key))

    def _disarm(self, key: tuple[str, str]) -> None:
        self._timers.pop(key, None)

    def _disarm_call(self, call_id: str) -> None:
        for kind in ("ring", "relax", "pref", "retry", "maxwait", "cbretry"):
            self._timers.pop((kind, call_id), None)

    # ------------------------------------------------------------------ events
    def handle(self, event: ev.Input, now: float) -> list[ev.Output]:
        """Apply one input. Raises :class:`AcdUsageError` (state unchanged) if illegal."""
        out: list[ev.Output] = []
        match event:
            case ev.AgentLoggedIn(agent_id=aid, contact=contact):
                agent = self._agent(aid)
                self._transition(agent, Trigger.LOGIN, now, "login", out)
                agent.contact = contact or agent.spec.contact
                for line, _ in agent.memberships:
                    line.logged_in += 1
            case ev.AgentBecameReady(agent_id=aid):
                agent = self._agent(aid)
                self._transition(agent, Trigger.READY, now, None, out)
                agent.consecutive_failures = 0
                self._disarm(("wrap", aid))
            case ev.AgentWentNotReady(agent_id=aid, reason=reason):
                agent = self._agent(aid)
                self._transition(agent, Trigger.NOT_READY, now, reason, out)
                self._disarm(("wrap", aid))
            case ev.AgentLoggedOut(agent_id=aid):
                agent = self._agent(aid)
                self._transition(agent, Trigger.LOGOUT, now, "logout", out)
                self._disarm(("wrap", aid))
                self._logged_out(agent, now, out)
            case ev.CallEnqueued():
                self._enqueue(event, now, out)
            case ev.AgentAnswered(call_id=cid, agent_id=aid):
                self._answered(self._offered_entry(cid, aid), self.agents[aid], now, out)
            case ev.AgentRingFailed(call_id=cid, agent_id=aid, cause=cause):
                entry = self._offered_entry(cid, aid)
                self._ring_failed(entry, aid, cause, now, out)
            case ev.CallerHungUp(call_id=cid):
                self._caller_gone(cid, now, out)
            case ev.AgentHungUp(call_id=cid, agent_id=aid):
                talking = self._entries.get(cid)
                if talking is not None and talking.dialing and talking.agent_id == aid:
                    self._dial_ended(talking, "agent_hung_up", now, out)
                    self._route(now, out)
                    return out
                if talking is None or talking.agent_id != aid or not talking.connected:
                    raise AcdUsageError(f"agent {aid} is not talking on call {cid}", code="acd.unknown_call")
                self._end_talk(talking, now, out)
            case ev.CallbackRequested():
                self._callback_requested(event, now, out)
            case ev.CallbackAnswered(call_id=cid):
                self._callback_answered(self._dialing_entry(cid), now, out)
            case ev.CallbackFailed(call_id=cid, cause=cause):
                self._dial_ended(self._dialing_entry(cid), cause, now, out)
            case ev.CallbackCancelled(call_id=cid, reason=reason):
                self._callback_cancelled(cid, reason, now, out)
            case ev.CallPriorityChanged(call_id=cid, priority=priority):
                self._reprioritize(cid, priority, out)
            case _:
                raise AcdUsageError(f"not an ACD input: {event!r}", code="acd.bad_input")
        self._route(now, out)
        return out

    # --------------------------------------------------------------- internals
    def _agent(self, agent_id: str) -> Agent:
        try:
            agent = self.agents[agent_id]
        except KeyError:
            raise AcdUsageError(f"no agent {agent_id!r} is configured", code="acd.unknown_agent") from None
        if not agent.indexed:  # added to ``agents`` after construction
            self._index(agent)
        return agent

    def _offered_entry(self, call_id: str, agent_id: str) -> Entry:
        entry = self._entries.get(call_id)
        if entry is None or agent_id not in entry.ringing:
            raise AcdUsageError(
                f"call {call_id} is not being offered to agent {agent_id}",
                code="acd.not_offered",
            )
        return entry

    def _transition(
        self, agent: Agent, trigger: Trigger, now: float, reason: str | None, out: list[ev.Output]
    ) -> None:
        target = TRANSITIONS[agent.state].get(trigger)
        if target is None:
            raise IllegalTransition(
                f"agent {agent.spec.id} is {agent.state.value}; '{trigger.value}' is not allowed from there"
            )
        previous = agent.state
        if (previous in _STAFFED) != (target in _STAFFED):
            delta = 1 if target in _STAFFED else -1
            for line, member in agent.memberships:
                line.staffed_from[member.first_step] += delta
        if previous is AgentState.WRAP_UP and agent.handle_line is not None:
            line = agent.handle_line  # the call is handled: learn its handle time
            line.aht += line.spec.aht_smoothing * (now - agent.handle_start - line.aht)
            agent.handle_line = None
        agent.state, agent.since = target, now
        agent.token += 1
        agent.reason = reason if target is AgentState.NOT_READY else None
        if target in (AgentState.AVAILABLE, AgentState.NOT_READY, AgentState.LOGGED_OUT):
            agent.call_id = None
        out.append(ev.AgentStateChanged(agent_id=agent.spec.id, from_=previous, to=target, reason=reason))
        if target is AgentState.AVAILABLE:
            agent.idle_since = now
            self._dirty_agents.append(agent)  # _route pools it unless it takes a caller at once

    def _reprioritize(self, call_id: str, priority: int, out: list[ev.Output]) -> None:
        """A supervisor moved a caller up or down: same arrival time, new priority."""
        entry = self._entries.get(call_id)
        if entry is None:
            raise AcdUsageError(f"call {call_id} is not in a queue", code="acd.unknown_call")
        placed = entry.place != _NOWHERE
        if placed:
            self._unplace(entry)
        entry.priority = priority
        entry.key = _line_key(entry.queue, priority, entry.enqueued_at)
        if placed:
            self._place(entry)
        out.append(
            ev.CallReprioritized(
                call_id=call_id, queue=entry.queue.name, priority=priority, position=self.position(call_id)
            )
        )

    # -- where a waiting caller sits
    def _place(self, entry: Entry) -> None:
        item = (entry.key, entry.order, entry)
        if entry.preferred is not None:
            entry.place = _PREFERRED
            insort(entry.line.preferred, item)
            self.agents[entry.preferred].preferred[entry.call_id] = entry
        else:
            entry.place = _LINE
            insort(entry.line.lines[entry.step], item)

    def _unplace(self, entry: Entry) -> None:
        if entry.place == _NOWHERE:
            return
        if entry.place == _PREFERRED:
            items = entry.line.preferred
            assert entry.preferred is not None
            del self.agents[entry.preferred].preferred[entry.call_id]
        else:
            items = entry.line.lines[entry.step]
        i = bisect_left(items, (entry.key, entry.order))
        assert items[i][2] is entry
        del items[i]
        entry.place = _NOWHERE

    def _relax(self, entry: Entry) -> None:
        placed = entry.place == _LINE
        if placed:
            self._unplace(entry)
        entry.step += 1
        if placed:
            self._place(entry)  # same key: the caller keeps their place
        line = entry.line
        if entry.step < len(line.step_after):
            self._arm(("relax", entry.call_id), entry.enqueued_at + line.step_after[entry.step])
        self._dirty_entries.append(entry)

    def _end_preference(self, entry: Entry) -> None:
        self._disarm(("pref", entry.call_id))
        placed = entry.place == _PREFERRED
        if placed:
            self._unplace(entry)
        entry.preferred = None
        if placed:
            self._place(entry)
            self._dirty_entries.append(entry)

    # -- arrivals and departures
    def _enqueue(self, event: ev.CallEnqueued, now: float, out: list[ev.Output]) -> None:
        queue = self.queues.get(event.queue)
        if queue is None:
            raise AcdUsageError(f"no queue {event.queue!r} is configured", code="acd.unknown_queue")
        if event.call_id in self._entries:
            raise AcdUsageError(f"call {event.call_id} is already queued", code="acd.duplicate_call")
        self._admit(
            event.call_id, queue, event.priority, dict(event.data), now, out,
            preferred=event.preferred_agent, preferred_seconds=event.preferred_seconds,
            extra=frozenset(event.skills),
        )  # fmt: skip

    def _entry(
        self,
        call_id: str,
        queue: QueueSpec,
        priority: int,
        enqueued_at: float,
        data: Mapping[str, Any],
        **more: Any,
    ) -> Entry:
        """A new place in ``queue``'s line (not inserted yet), ordered by priority and age."""
        return Entry(
            call_id=call_id,
            queue=queue,
            priority=priority,
            enqueued_at=enqueued_at,
            order=next(self._order),
            data=data,
            line=self._lines[queue.name],
            key=_line_key(queue, priority, enqueued_at),
            **more,
        )

    def _admit(
        self,
        call_id: str,
        queue: QueueSpec,
        priority: int,
        data: Mapping[str, Any],
        now: float,
        out: list[ev.Output],
        *,
        preferred: str | None = None,
        preferred_seconds: float = 0.0,
        extra: frozenset[str] = frozenset(),
    ) -> None:
        entry = self._entry(call_id, queue, priority, now, data, extra=extra)
        line = entry.line
        full = queue.max_waiting is not None and len(line.held) >= queue.max_waiting
        self._entries[call_id] = entry
        line.held[call_id] = entry
        line.counts.offered += 1
        if preferred is not None and preferred_seconds > 0:
            agent = self.agents.get(preferred)
            if agent is not None and not agent.indexed:
                self._index(agent)
            if (
                agent is not None
                and queue.name in agent.member_of
                and agent.state is not AgentState.LOGGED_OUT
            ):
                entry.preferred = preferred
                self._arm(("pref", call_id), now + preferred_seconds)
        self._place(entry)
        position = self.position(call_id) or 1
        out.append(
            ev.CallQueued(
                call_id=call_id,
                queue=queue.name,
                priority=priority,
                position=position,
                ewt=self._estimate(entry, position),
            )
        )
        if full and queue.on_full is not None:
            self._overflow(entry, OverflowReason.QUEUE_FULL, queue.on_full, now, out)
            return
        if line.logged_in == 0 and queue.on_no_agents is not None:
            self._overflow(entry, OverflowReason.NO_AGENTS, queue.on_no_agents, now, out)
            return
        if line.step_after:
            self._arm(("relax", call_id), now + line.step_after[0])
        if queue.max_wait is not None:
            self._arm(("maxwait", call_id), now + queue.max_wait)
        self._dirty_entries.append(entry)

    def _leave(self, entry: Entry) -> None:
        """Take a not-yet-connected caller out of its queue's structures and timers."""
        self._unplace(entry)
        self._disarm_call(entry.call_id)
        del entry.line.held[entry.call_id]
        del self._entries[entry.call_id]

    def _overflow(
        self, entry: Entry, reason: OverflowReason, target: Overflow, now: float, out: list[ev.Output]
    ) -> None:
        self._leave(entry)
        entry.line.counts.overflowed += 1
        out.append(
            ev.CallOverflowed(
                call_id=entry.call_id,
                queue=entry.queue.name,
                reason=reason,
                kind=target.kind,
                target=target.target,
                wait_seconds=now - entry.enqueued_at,
            )
        )
        if target.kind is OverflowKind.QUEUE:
            self._admit(entry.call_id, self.queues[target.target], entry.priority, entry.data, now, out)
        else:
            out.append(ev.OverflowCall(call_id=entry.call_id, kind=target.kind, target=target.target))

    def _logged_out(self, agent: Agent, now: float, out: list[ev.Output]) -> None:
        for entry in list(agent.preferred.values()):
            self._end_preference(entry)  # they cannot come back without logging in: anyone now
        for line, _ in agent.memberships:
            line.logged_in -= 1
            target = line.spec.on_no_agents
            if line.logged_in == 0 and target is not None:
                waiting = sorted(
                    (e for e in line.held.values() if e.number is None), key=lambda e: (e.key, e.order)
                )
                for entry in waiting:
                    self._overflow(entry, OverflowReason.NO_AGENTS, target, now, out)

    def _ring_failed(self, entry: Entry, agent_id: str, cause: str, now: float, out: list[ev.Output]) -> None:
        agent = self.agents[agent_id]
        entry.ringing.remove(agent_id)
        agent.consecutive_failures += 1
        entry.failed_at[agent_id] = now
        out.append(
            ev.AgentOfferFailed(
                call_id=entry.call_id,
                agent_id=agent_id,
                cause=cause,
                consecutive=agent.consecutive_failures,
            )
        )
        if agent.consecutive_failures >= entry.queue.max_no_answer:
            self._transition(agent, Trigger.RING_FAILED_LIMIT, now, "no_answer", out)
        else:
            self._transition(agent, Trigger.RING_FAILED, now, cause, out)
        if entry.preferred == agent_id:
            entry.preferred = None  # the preferred agent was tried: anyone now
            self._disarm(("pref", entry.call_id))
        if entry.ringing:
            return  # ring-all: others still ring
        self._disarm(("ring", entry.call_id))
        if entry.overdue:
            assert entry.queue.on_max_wait is not None
            self._overflow(entry, OverflowReason.MAX_WAIT, entry.queue.on_max_wait, now, out)
            return
        self._place(entry)
        self._dirty_entries.append(entry)
        due = now + entry.queue.retry_delay
        current = self._timers.get(("retry", entry.call_id))
        if current is None or current > due:
            self._arm(("retry", entry.call_id), due)

    def _answered(self, entry: Entry, agent: Agent, now: float, out: list[ev.Output]) -> None:
        self._disarm_call(entry.call_id)
        self._transition(agent, Trigger.ANSWER, now, None, out)
        agent.consecutive_failures = 0
        agent.calls += 1
        agent.handle_start, agent.handle_line = now, entry.line
        for other in entry.ringing:
            if other != agent.spec.id:
                out.append(ev.CancelRing(call_id=entry.call_id, agent_id=other))
                self._transition(
                    self.agents[other], Trigger.ANSWERED_ELSEWHERE, now, "answered_elsewhere", out
                )
        entry.ringing = []
        entry.agent_id = agent.spec.id
        if entry.number is not None:  # agent-first callback: the agent waits, dial the customer
            entry.dialing = True
            entry.preferred = None
            entry.cb_attempts += 1
            aid, attempt = agent.spec.id, entry.cb_attempts
            out.append(
                ev.CallbackDialing(
                    call_id=entry.call_id,
                    agent_id=aid,
                    queue=entry.queue.name,
                    number=entry.number,
                    attempt=attempt,
                )
            )
            out.append(
                ev.DialCallback(call_id=entry.call_id, number=entry.number, agent_id=aid, attempt=attempt)
            )
            return
        entry.connected = True
        del entry.line.held[entry.call_id]
        entry.line.counts.answered += 1
        out.append(ev.BridgeCall(call_id=entry.call_id, agent_id=agent.spec.id))
        out.append(
            ev.CallConnected(
                call_id=entry.call_id,
                agent_id=agent.spec.id,
                queue=entry.queue.name,
                wait_seconds=now - entry.enqueued_at,
            )
        )

    def _caller_gone(self, call_id: str, now: float, out: list[ev.Output]) -> None:
        entry = self._entries.get(call_id)
        if entry is None:
            return  # never queued (hung up in the IVR): nothing to do
        if entry.number is not None:
            if entry.leg_open:  # the caller who asked for the callback hangs up, as expected
                entry.leg_open = False
                return
            if not entry.connected:
                return  # nobody is on a callback's line before the customer answers
        if entry.connected:
            self._end_talk(entry, now, out)
            return
        self._leave(entry)
        for aid in entry.ringing:
            out.append(ev.CancelRing(call_id=call_id, agent_id=aid))
            self._transition(self.agents[aid], Trigger.CALLER_GONE, now, "caller_gone", out)
        entry.ringing = []
        entry.line.counts.abandoned += 1
        out.append(
            ev.CallAbandoned(call_id=call_id, queue=entry.queue.name, wait_seconds=now - entry.enqueued_at)
        )

    def _end_talk(self, entry: Entry, now: float, out: list[ev.Output]) -> None:
        assert entry.agent_id is not None
        del self._entries[entry.call_id]
        agent = self.agents[entry.agent_id]
        self._transition(agent, Trigger.HANGUP, now, None, out)
        wrap_up = agent.spec.wrap_up if agent.spec.wrap_up is not None else entry.queue.wrap_up
        if wrap_up <= 0:
            self._transition(agent, Trigger.WRAP_UP_DONE, now, None, out)
        else:
            self._arm(("wrap", agent.spec.id), now + wrap_up)

    # -- routing
    def _route(self, now: float, out: list[ev.Output]) -> None:
        """Match what changed: agents who became available pick a caller; callers who
        became routable pick an agent. Nothing else can have become matchable."""
        agents, entries = self._dirty_agents, self._dirty_entries
        while agents or entries:
            if agents:
                agent = agents.popleft()
                if agent.state is not AgentState.AVAILABLE:
                    continue
                entry = self._best_caller(agent, now)
                if entry is None:  # idle: now callers who arrive can find it
                    for line, member in agent.memberships:
                        for pool in line.pools[member.first_step :]:
                            pool.add(member)
                    continue
                # the caller's strategy picks among every agent free for it, this one included
                if entry.place == _LINE:
                    entry.line.pools[entry.step].add(agent.member_of[entry.queue.name])
                if self._serve(entry, now, out) and agent.state is AgentState.AVAILABLE:
                    agents.append(agent)  # another agent got that caller: look again
            else:
                entry = entries.popleft()
                if entry.place != _NOWHERE and entry.call_id in self._entries:
                    self._serve(entry, now, out)

    def _skill_names(self, agent_id: str) -> frozenset[str]:
        names = self._skills_of.get(agent_id)
        if names is None:
            names = self._skills_of[agent_id] = frozenset(
                skill_levels(self.agents[agent_id].spec.skills, default=5)
            )
        return names

    def _excluded(self, entry: Entry, agent_id: str, now: float) -> bool:
        """The agent failed this caller less than ``retry_delay`` seconds ago."""
        failed = entry.failed_at.get(agent_id)
        return failed is not None and failed + entry.queue.retry_delay > now

    def _serve(self, entry: Entry, now: float, out: list[ev.Output]) -> bool:
        """Offer ``entry`` to the agent(s) its strategy picks; False if nobody is free."""

        def ok(member: Member) -> bool:
            if entry.extra and not entry.extra <= self._skill_names(member.agent_id):
                return False
            return not (entry.failed_at and self._excluded(entry, member.agent_id, now))

        line = entry.line
        if entry.place == _PREFERRED:
            assert entry.preferred is not None
            agent = self.agents[entry.preferred]
            member = agent.member_of[line.spec.name]
            if agent.state is not AgentState.AVAILABLE or not ok(member):
                return False
            chosen = [member]
        else:
            pool = line.pools[entry.step]
            if line.strategy.ring_all:
                chosen = pool.everyone(ok)
            else:
                one = pool.pick(ok)
                chosen = [one] if one is not None else []
            if not chosen:
                return False
            pool.chosen(chosen[0])
        self._offer(entry, chosen, now, out)
        return True

    def _best_caller(self, agent: Agent, now: float) -> Entry | None:
        """The caller ``agent`` should take: callers waiting for this agent alone first;
        then, by the agent's queue priority (tiers), the caller with the highest effective
        priority, then the longest wait."""
        aid = agent.spec.id
        best: Entry | None = None
        best_rank: tuple[float, float, int] | None = None
        for entry in agent.preferred.values():
            if not self._excluded(entry, aid, now):
                rank = (-_effective(entry, now), entry.enqueued_at, entry.order)
                if best_rank is None or rank < best_rank:
                    best, best_rank = entry, rank
        if best is not None:
            return best
        for tier in agent.tiers:
            for line, member in tier:
                head = self._head(line, member, aid, now)
                if head is not None:
                    rank = (-_effective(head, now), head.enqueued_at, head.order)
                    if best_rank is None or rank < best_rank:
                        best, best_rank = head, rank
            if best is not None:
                return best
        return None

    def _head(self, line: QueueLine, member: Member, agent_id: str, now: float) -> Entry | None:
        """First caller of ``line`` this member may take, across the steps it qualifies at."""
        best: LineItem | None = None
        for items in line.lines[member.first_step :]:
            for item in items:
                if item[2].failed_at and self._excluded(item[2], agent_id, now):
                    continue
                if item[2].extra and not item[2].extra <= self._skill_names(agent_id):
                    continue  # this caller needs a skill the agent lacks
                if best is None or (item[0], item[1]) < (best[0], best[1]):
                    best = item
                break
        return best[2] if best is not None else None

    def _offer(self, entry: Entry, members: list[Member], now: float, out: list[ev.Output]) -> None:
        self._unplace(entry)
        timeout = entry.queue.ring_timeout
        for member in members:
            agent = self.agents[member.agent_id]
            self._transition(agent, Trigger.OFFER, now, None, out)
            agent.call_id = entry.call_id
            entry.ringing.append(member.agent_id)
            entry.attempts += 1
            out.append(
                ev.AgentOffered(
                    call_id=entry.call_id,
                    agent_id=member.agent_id,
                    queue=entry.queue.name,
                    contact=agent.contact,
                    attempt=entry.attempts,
                    data=entry.data,
                    callback=entry.number is not None,
                )
            )
            if entry.number is not None:
                out.append(
                    ev.CallbackOffered(
                        call_id=entry.call_id,
                        agent_id=member.agent_id,
                        queue=entry.queue.name,
                        attempt=entry.cb_attempts + 1,
                    )
                )
            out.append(
                ev.RingAgent(
                    call_id=entry.call_id,
                    agent_id=member.agent_id,
                    contact=agent.contact,
                    timeout=timeout,
                    callback_number=entry.number,
                )
            )
        self._arm(("ring", entry.call_id), now + timeout)

    # -- callbacks
    def _callback_requested(self, event: ev.CallbackRequested, now: float, out: list[ev.Output]) -> None:
        cid = event.call_id
        entry = self._entries.get(cid)
        if entry is None:
            if event.queue is None:
                raise AcdUsageError(
                    f"call {cid} is not queued; a new callback needs a queue", code="acd.unknown_call"
                )
            queue = self.queues.get(event.queue)
            if queue is None:
                raise AcdUsageError(f"no queue {event.queue!r} is configured", code="acd.unknown_queue")
            self._admit_callback(cid, queue, event.number, event.priority, dict(event.data), now, now, out)
            return
        if entry.connected or entry.number is not None:
            what = "is connected" if entry.connected else "is already a callback"
            raise AcdUsageError(f"call {cid} {what}", code="acd.not_waiting")
        if event.queue is not None and event.queue != entry.queue.name:
            raise AcdUsageError(
                f"call {cid} waits in {entry.queue.name!r}, not {event.queue!r}", code="acd.wrong_queue"
            )
        for aid in entry.ringing:  # the caller is leaving: ring again as a callback
            out.append(ev.CancelRing(call_id=cid, agent_id=aid))
            self._transition(self.agents[aid], Trigger.CALLER_GONE, now, "callback_requested", out)
        if entry.ringing:
            entry.ringing = []
            self._disarm(("ring", cid))
            self._place(entry)
        self._disarm(("maxwait", cid))  # a callback never overflows on max_wait
        entry.overdue = False
        entry.number, entry.leg_open = event.number, True
        entry.data = {**entry.data, **event.data}
        entry.line.counts.callbacks += 1
        out.append(self._registered(entry, now, restored=False))
        self._dirty_entries.append(entry)

    def _admit_callback(
        self,
        call_id: str,
        queue: QueueSpec,
        number: str,
        priority: int,
        data: Mapping[str, Any],
        enqueued_at: float,
        now: float,
        out: list[ev.Output],
        *,
        attempts: int = 0,
        retry_in: float = 0.0,
        restored: bool = False,
    ) -> None:
        """A callback made directly (CTI) or restored: it is offered, but never overflows."""
        entry = self._entry(call_id, queue, priority, enqueued_at, data, number=number, cb_attempts=attempts)
        line = entry.line
        self._entries[call_id] = entry
        line.held[call_id] = entry
        line.counts.offered += 1
        line.counts.callbacks += 1
        if retry_in > 0:
            self._arm(("cbretry", call_id), now + retry_in)
        else:
            self._requeue(entry, now)
        out.append(self._registered(entry, now, restored=restored))

    def _registered(self, entry: Entry, now: float, *, restored: bool) -> ev.CallbackRegistered:
        assert entry.number is not None
        return ev.CallbackRegistered(
            call_id=entry.call_id,
            queue=entry.queue.name,
            number=entry.number,
            priority=entry.priority,
            position=self.position(entry.call_id),
            ewt=self.ewt(entry.call_id, now),
            restored=restored,
        )

    def _requeue(self, entry: Entry, now: float) -> None:
        """Put an unplaced callback back in line at its original place (same key), at the
        relaxation step its wait has reached."""
        line = entry.line
        waited = now - entry.enqueued_at
        while entry.step < len(line.step_after) and line.step_after[entry.step] <= waited:
            entry.step += 1
        if entry.step < len(line.step_after):
            self._arm(("relax", entry.call_id), entry.enqueued_at + line.step_after[entry.step])
        self._place(entry)
        self._dirty_entries.append(entry)

    def _dialing_entry(self, call_id: str) -> Entry:
        entry = self._entries.get(call_id)
        if entry is None or not entry.dialing:
            raise AcdUsageError(f"callback {call_id} is not being dialled", code="acd.not_dialing")
        return entry

    def _callback_answered(self, entry: Entry, now: float, out: list[ev.Output]) -> None:
        assert entry.agent_id is not None
        entry.dialing = False
        entry.connected = True
        del entry.line.held[entry.call_id]
        entry.line.counts.answered += 1
        out.append(ev.BridgeCall(call_id=entry.call_id, agent_id=entry.agent_id))
        out.append(
            ev.CallbackConnected(
                call_id=entry.call_id,
                agent_id=entry.agent_id,
                queue=entry.queue.name,
                attempt=entry.cb_attempts,
                wait_seconds=now - entry.enqueued_at,
            )
        )

    def _dial_ended(self, entry: Entry, cause: str, now: float, out: list[ev.Output]) -> None:
        """The customer was not reached (or the agent hung up first): release the agent to
        available (no wrap-up: there was no conversation), then retry or give up."""
        assert entry.agent_id is not None
        agent = self.agents[entry.agent_id]
        entry.dialing = False
        entry.agent_id = None
        agent.handle_line = None  # not a handled call: no handle time to learn
        queue = entry.queue
        if cause == "agent_hung_up":  # not the customer's fault: no attempt used, retry at once
            entry.cb_attempts -= 1
            entry.failed_at[agent.spec.id] = now  # but not with this agent for retry_delay
            self._arm(("retry", entry.call_id), now + queue.retry_delay)
            retry_in: float | None = 0.0
        elif entry.cb_attempts >= queue.callback_max_attempts:
            retry_in = None
        else:
            retry_in = queue.callback_retry_delay
        self._transition(agent, Trigger.CALLBACK_FAILED, now, "callback_failed", out)
        out.append(
            ev.CallbackAttemptFailed(
                call_id=entry.call_id,
                agent_id=agent.spec.id,
                queue=queue.name,
                attempt=entry.cb_attempts + (cause == "agent_hung_up"),
                cause=cause,
                retry_in=retry_in,
            )
        )
        if retry_in is None:
            self._give_up(entry, "max_attempts", now, out)
        elif retry_in > 0:
            self._arm(("cbretry", entry.call_id), now + retry_in)
        else:
            self._requeue(entry, now)

    def _give_up(self, entry: Entry, reason: str, now: float, out: list[ev.Output]) -> None:
        self._leave(entry)
        entry.line.counts.abandoned += 1
        out.append(
            ev.CallbackAbandoned(
                call_id=entry.call_id,
                queue=entry.queue.name,
                reason=reason,
                attempts=entry.cb_attempts,
                wait_seconds=now - entry.enqueued_at,
            )
        )

    def _callback_cancelled(self, call_id: str, reason: str, now: float, out: list[ev.Output]) -> None:
        entry = self._entries.get(call_id)
        if entry is None or entry.number is None or entry.connected:
            raise AcdUsageError(f"no pending callback {call_id}", code="acd.unknown_callback")
        if entry.dialing:
            raise AcdUsageError(
                f"callback {call_id} is being dialled; cancel after CallbackFailed",
                code="acd.callback_dialing",
            )
        for aid in entry.ringing:
            out.append(ev.CancelRing(call_id=call_id, agent_id=aid))
            self._transition(self.agents[aid], Trigger.CALLER_GONE, now, "callback_cancelled", out)
        entry.ringing = []
        self._give_up(entry, reason, now, out)


def _anyone(member: Member) -> bool:
    return True
