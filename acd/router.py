"""The routing core: events and the current time in, events and actions out.

No I/O, no clock: every method takes ``now`` (seconds, any monotonic origin).
The adapter runs the actions and arms one timer for :meth:`Router.next_deadline`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import events as ev
from .model import (
    TRANSITIONS,
    AcdUsageError,
    AgentSpec,
    AgentState,
    IllegalTransition,
    QueueSpec,
    Trigger,
)


@dataclass(slots=True)
class Agent:
    spec: AgentSpec
    contact: str
    state: AgentState = AgentState.LOGGED_OUT
    since: float = 0.0  # when the agent entered ``state``, seconds
    idle_since: float = 0.0  # when the agent last became available, seconds
    consecutive_failures: int = 0  # failed offers in a row
    call_id: str | None = None  # the call offered to or talking with this agent
    reason: str | None = None  # not-ready reason


@dataclass(slots=True)
class Entry:
    """A caller waiting in (or being served from) a queue."""

    call_id: str
    queue: QueueSpec
    priority: int
    enqueued_at: float  # seconds
    order: int  # tie-breaker: arrival order
    data: Mapping[str, Any]
    agent_id: str | None = None  # agent being rung, or talking
    connected: bool = False
    attempts: int = 0  # agents rung so far
    failed_at: dict[str, float] = field(default_factory=dict)  # agent id -> last failure time


class Router:
    """Skill-based ACD: longest-idle available agent with all the queue's skills."""

    def __init__(self, queues: Iterable[QueueSpec], agents: Iterable[AgentSpec]) -> None:
        self.queues = {q.name: q for q in queues}
        self.agents = {a.id: Agent(spec=a, contact=a.contact) for a in agents}
        self._entries: dict[str, Entry] = {}
        self._order = itertools.count()
        # timers: (deadline, key); a key is ("ring", call_id) / ("wrap", agent_id) / ("retry", "")
        self._timers: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []

    # ----------------------------------------------------------------- queries
    def agent_state(self, agent_id: str) -> AgentState:
        return self._agent(agent_id).state

    def waiting(self, queue: str) -> list[str]:
        """Call ids waiting in ``queue`` (not yet with an agent), first in line first."""
        return [e.call_id for e in self._line() if e.queue.name == queue]

    def position(self, call_id: str) -> int | None:
        entry = self._entries.get(call_id)
        if entry is None or entry.agent_id is not None:
            return None
        return self.waiting(entry.queue.name).index(call_id) + 1

    def has_call(self, call_id: str) -> bool:
        return call_id in self._entries

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
            if kind == "ring":
                entry = self._entries[ident]
                assert entry.agent_id is not None
                out.append(ev.CancelRing(call_id=ident, agent_id=entry.agent_id))
                self._ring_failed(entry, "no_answer", now, out)
            elif kind == "wrap":
                self._transition(self.agents[ident], Trigger.WRAP_UP_DONE, now, None, out)
        self._route(now, out)
        return out

    def _arm(self, key: tuple[str, str], deadline: float) -> None:
        self._timers[key] = deadline
        heapq.heappush(self._heap, (deadline, key))

    def _disarm(self, key: tuple[str, str]) -> None:
        self._timers.pop(key, None)

    # ------------------------------------------------------------------ events
    def handle(self, event: ev.Input, now: float) -> list[ev.Output]:
        """Apply one input. Raises :class:`AcdUsageError` (state unchanged) if illegal."""
        out: list[ev.Output] = []
        match event:
            case ev.AgentLoggedIn(agent_id=aid, contact=contact):
                agent = self._agent(aid)
                self._transition(agent, Trigger.LOGIN, now, "login", out)
                agent.contact = contact or agent.spec.contact
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
            case ev.CallEnqueued():
                self._enqueue(event, now, out)
            case ev.AgentAnswered(call_id=cid, agent_id=aid):
                entry = self._offered_entry(cid, aid)
                self._disarm(("ring", cid))
                agent = self.agents[aid]
                self._transition(agent, Trigger.ANSWER, now, None, out)
                agent.consecutive_failures = 0
                entry.connected = True
                out.append(ev.BridgeCall(call_id=cid, agent_id=aid))
                out.append(
                    ev.CallConnected(
                        call_id=cid,
                        agent_id=aid,
                        queue=entry.queue.name,
                        wait_seconds=now - entry.enqueued_at,
                    )
                )
            case ev.AgentRingFailed(call_id=cid, agent_id=aid, cause=cause):
                entry = self._offered_entry(cid, aid)
                self._disarm(("ring", cid))
                self._ring_failed(entry, cause, now, out)
            case ev.CallerHungUp(call_id=cid):
                self._caller_gone(cid, now, out)
            case ev.AgentHungUp(call_id=cid, agent_id=aid):
                talking = self._entries.get(cid)
                if talking is None or talking.agent_id != aid or not talking.connected:
                    raise AcdUsageError(f"agent {aid} is not talking on call {cid}", code="acd.unknown_call")
                self._end_talk(talking, now, out)
            case _:
                raise AcdUsageError(f"not an ACD input: {event!r}", code="acd.bad_input")
        self._route(now, out)
        return out

    # --------------------------------------------------------------- internals
    def _agent(self, agent_id: str) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise AcdUsageError(f"no agent {agent_id!r} is configured", code="acd.unknown_agent") from None

    def _offered_entry(self, call_id: str, agent_id: str) -> Entry:
        entry = self._entries.get(call_id)
        if entry is None or entry.agent_id != agent_id or entry.connected:
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
        agent.state, agent.since = target, now
        agent.reason = reason if target is AgentState.NOT_READY else None
        if target is AgentState.AVAILABLE:
            agent.idle_since = now
        if target in (AgentState.AVAILABLE, AgentState.NOT_READY, AgentState.LOGGED_OUT):
            agent.call_id = None
        out.append(ev.AgentStateChanged(agent_id=agent.spec.id, from_=previous, to=target, reason=reason))

    def _enqueue(self, event: ev.CallEnqueued, now: float, out: list[ev.Output]) -> None:
        queue = self.queues.get(event.queue)
        if queue is None:
            raise AcdUsageError(f"no queue {event.queue!r} is configured", code="acd.unknown_queue")
        if event.call_id in self._entries:
            raise AcdUsageError(f"call {event.call_id} is already queued", code="acd.duplicate_call")
        entry = Entry(
            call_id=event.call_id,
            queue=queue,
            priority=event.priority,
            enqueued_at=now,
            order=next(self._order),
            data=dict(event.data),
        )
        self._entries[event.call_id] = entry
        position = self.waiting(queue.name).index(event.call_id) + 1
        out.append(
            ev.CallQueued(call_id=event.call_id, queue=queue.name, priority=event.priority, position=position)
        )

    def _ring_failed(self, entry: Entry, cause: str, now: float, out: list[ev.Output]) -> None:
        assert entry.agent_id is not None
        agent = self.agents[entry.agent_id]
        agent.consecutive_failures += 1
        entry.failed_at[agent.spec.id] = now
        entry.agent_id = None
        out.append(
            ev.AgentOfferFailed(
                call_id=entry.call_id,
                agent_id=agent.spec.id,
                cause=cause,
                consecutive=agent.consecutive_failures,
            )
        )
        if agent.consecutive_failures >= entry.queue.max_no_answer:
            self._transition(agent, Trigger.RING_FAILED_LIMIT, now, "no_answer", out)
        else:
            self._transition(agent, Trigger.RING_FAILED, now, cause, out)

    def _caller_gone(self, call_id: str, now: float, out: list[ev.Output]) -> None:
        entry = self._entries.get(call_id)
        if entry is None:
            return  # never queued (hung up in the IVR): nothing to do
        if entry.connected:
            self._end_talk(entry, now, out)
            return
        del self._entries[call_id]
        if entry.agent_id is not None:
            self._disarm(("ring", call_id))
            out.append(ev.CancelRing(call_id=call_id, agent_id=entry.agent_id))
            self._transition(self.agents[entry.agent_id], Trigger.CALLER_GONE, now, "caller_gone", out)
        out.append(
            ev.CallAbandoned(call_id=call_id, queue=entry.queue.name, wait_seconds=now - entry.enqueued_at)
        )

    def _end_talk(self, entry: Entry, now: float, out: list[ev.Output]) -> None:
        assert entry.agent_id is not None
        del self._entries[entry.call_id]
        agent = self.agents[entry.agent_id]
        self._transition(agent, Trigger.HANGUP, now, None, out)
        if entry.queue.wrap_up <= 0:
            self._transition(agent, Trigger.WRAP_UP_DONE, now, None, out)
        else:
            self._arm(("wrap", agent.spec.id), now + entry.queue.wrap_up)

    def _line(self) -> list[Entry]:
        waiting = [e for e in self._entries.values() if e.agent_id is None and not e.connected]
        waiting.sort(key=lambda e: (-e.priority, e.order))
        return waiting

    def _route(self, now: float, out: list[ev.Output]) -> None:
        """Offer waiting callers, first in line first, to the longest-idle eligible agent."""
        available = [a for a in self.agents.values() if a.state is AgentState.AVAILABLE]
        if not available:
            return
        retry_at: float | None = None
        for entry in self._line():
            best: Agent | None = None
            for agent in available:
                if agent.state is not AgentState.AVAILABLE:
                    continue
                if not all(s in agent.spec.skills for s in entry.queue.skills):
                    continue
                failed = entry.failed_at.get(agent.spec.id)
                if failed is not None and failed + entry.queue.retry_delay > now:
                    due = failed + entry.queue.retry_delay
                    retry_at = due if retry_at is None else min(retry_at, due)
                    continue
                if best is None or agent.idle_since < best.idle_since:
                    best = agent
            if best is not None:
                self._offer(entry, best, now, out)
        if retry_at is not None:
            self._arm(("retry", ""), retry_at)

    def _offer(self, entry: Entry, agent: Agent, now: float, out: list[ev.Output]) -> None:
        self._transition(agent, Trigger.OFFER, now, None, out)
        agent.call_id = entry.call_id
        entry.agent_id = agent.spec.id
        entry.attempts += 1
        timeout = entry.queue.ring_timeout
        self._arm(("ring", entry.call_id), now + timeout)
        out.append(
            ev.AgentOffered(
                call_id=entry.call_id,
                agent_id=agent.spec.id,
                queue=entry.queue.name,
                contact=agent.contact,
                attempt=entry.attempts,
                data=entry.data,
            )
        )
        out.append(
            ev.RingAgent(
                call_id=entry.call_id, agent_id=agent.spec.id, contact=agent.contact, timeout=timeout
            )
        )
