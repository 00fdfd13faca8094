"""Agent-selection strategies: which available agent a waiting caller is offered to.

A strategy is built once per queue (``factory(queue_spec)``) and makes one *pool*
per relaxation step: the available agents qualified at that step. The router adds
an agent to its pools each time it becomes available and asks a pool for the best
agent; pools drop agents that left ``available`` lazily, so no operation scans
every agent. Plug a new strategy in with ``build_router(..., strategies={name: factory})``.

Every built-in strategy serves the agents with the highest priority for the queue
(``AgentSpec.queues``) first, and only then applies its own order.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_right, insort
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .model import AgentState, QueueSpec


class AgentView(Protocol):
    """What a strategy may read of an agent."""

    @property
    def state(self) -> AgentState: ...
    @property
    def token(self) -> int: ...  # changes on every state change of the agent
    @property
    def idle_since(self) -> float: ...  # when the agent last became available, seconds
    @property
    def calls(self) -> int: ...  # calls answered since start


@dataclass(slots=True, eq=False)
class Member:
    """An agent's static standing in one queue."""

    agent: AgentView
    agent_id: str
    index: int  # place in the queue's ring (config order), for round-robin
    priority: int  # the agent's priority for this queue; higher first
    proficiency: int  # sum of the agent's levels in the queue's required skills
    first_step: int  # first relaxation step at which the agent qualifies


class Pool(Protocol):
    def add(self, member: Member) -> None:
        """``member``'s agent just became available."""

    def pick(self, ok: Callable[[Member], bool]) -> Member | None:
        """The best available member for which ``ok`` holds, or None."""

    def everyone(self, ok: Callable[[Member], bool]) -> list[Member]:
        """Every available member for which ``ok`` holds (for ring-all)."""

    def chosen(self, member: Member) -> None:
        """``member`` was just offered a call from this queue."""


class Strategy(Protocol):
    @property
    def ring_all(self) -> bool:
        """True: ring every eligible agent at once; the first to answer wins."""

    def pool(self, members: Sequence[Member]) -> Pool:
        """A pool over ``members`` (the queue's agents qualified at one step)."""


StrategyFactory = Callable[[QueueSpec], Strategy]


def _valid(member: Member, token: int) -> bool:
    agent = member.agent
    return agent.state is AgentState.AVAILABLE and agent.token == token


# ----------------------------------------------------------------- keyed pools
SortKey = Callable[[Member], tuple[float, ...]]


class KeyedPool:
    """A heap of available members by a key fixed when the agent became available."""

    __slots__ = ("_heap", "_key", "_limit", "_seq")

    def __init__(self, key: SortKey, size: int) -> None:
        self._key = key
        self._heap: list[tuple[tuple[float, ...], int, int, Member]] = []
        self._seq = itertools.count()
        self._limit = 2 * size + 64  # compact when stale items pile up beyond this

    def add(self, member: Member) -> None:
        heapq.heappush(self._heap, (self._key(member), next(self._seq), member.agent.token, member))
        if len(self._heap) > self._limit:  # amortised: at least half the items are stale
            self._heap = [item for item in self._heap if _valid(item[3], item[2])]
            heapq.heapify(self._heap)
            self._limit = 2 * len(self._heap) + 64

    def pick(self, ok: Callable[[Member], bool]) -> Member | None:
        heap, skipped, found = self._heap, [], None
        while heap:
            item = heap[0]
            if not _valid(item[3], item[2]):
                heapq.heappop(heap)
            elif ok(item[3]):
                found = item[3]
                break
            else:  # excluded for this caller only (e.g. retry delay): keep it
                skipped.append(heapq.heappop(heap))
        for item in skipped:
            heapq.heappush(heap, item)
        return found

    def everyone(self, ok: Callable[[Member], bool]) -> list[Member]:
        found: dict[int, Member] = {}  # an agent may sit in the heap twice with one token
        for _, _, token, member in sorted(self._heap):
            if _valid(member, token) and ok(member):
                found.setdefault(id(member), member)
        return list(found.values())

    def chosen(self, member: Member) -> None:
        pass


@dataclass(frozen=True, slots=True)
class KeyedStrategy:
    key: SortKey
    ring_all: bool = False

    def pool(self, members: Sequence[Member]) -> Pool:
        return KeyedPool(self.key, len(members))


def longest_idle(queue: QueueSpec) -> Strategy:
    """The agent who has been available longest."""
    return KeyedStrategy(lambda m: (-m.priority, m.agent.idle_since))


def fewest_calls(queue: QueueSpec) -> Strategy:
    """The agent who answered fewest calls, then longest idle."""
    return KeyedStrategy(lambda m: (-m.priority, m.agent.calls, m.agent.idle_since))


def best_proficiency(queue: QueueSpec) -> Strategy:
    """The agent with the highest summed proficiency in the queue's skills, then longest idle."""
    return KeyedStrategy(lambda m: (-m.priority, -m.proficiency, m.agent.idle_since))


def ring_all(queue: QueueSpec) -> Strategy:
    """Every eligible available agent rings at once; the first to answer wins."""
    return KeyedStrategy(lambda m: (-m.priority, m.agent.idle_since), ring_all=True)


# ----------------------------------------------------------------- round-robin
@dataclass(slots=True)
class _RingMemory:
    last: int = -1  # ring index of the member last offered a call from the queue


@dataclass(slots=True)
class RoundRobinPool:
    """Available members as sorted ring indices per priority tier."""

    memory: _RingMemory
    members: dict[int, Member] = field(default_factory=dict)
    tiers: dict[int, list[int]] = field(default_factory=dict)  # priority -> sorted ring indices
    tokens: dict[int, int] = field(default_factory=dict)  # ring index -> token when added

    def add(self, member: Member) -> None:
        idx = member.index
        if idx not in self.tokens:
            insort(self.tiers.setdefault(member.priority, []), idx)
        self.members[idx] = member
        self.tokens[idx] = member.agent.token

    def _drop(self, idx: int) -> None:
        member = self.members[idx]
        tier = self.tiers[member.priority]
        del tier[bisect_right(tier, idx) - 1]
        del self.tokens[idx]

    def _scan(self, ok: Callable[[Member], bool], first_only: bool) -> list[Member]:
        found: list[Member] = []
        stale: list[int] = []
        for priority in sorted(self.tiers, reverse=True):
            tier = self.tiers[priority]
            start = bisect_right(tier, self.memory.last)
            for j in range(len(tier)):
                idx = tier[(start + j) % len(tier)]
                member = self.members[idx]
                if not _valid(member, self.tokens[idx]):
                    stale.append(idx)
                elif ok(member):
                    found.append(member)
                    if first_only:
                        break
            if found and first_only:
                break
        for idx in stale:
            self._drop(idx)
        return found

    def pick(self, ok: Callable[[Member], bool]) -> Member | None:
        found = self._scan(ok, first_only=True)
        return found[0] if found else None

    def everyone(self, ok: Callable[[Member], bool]) -> list[Member]:
        return self._scan(ok, first_only=False)

    def chosen(self, member: Member) -> None:
        self.memory.last = member.index


@dataclass(slots=True)
class RoundRobinStrategy:
    memory: _RingMemory = field(default_factory=_RingMemory)
    ring_all: bool = False

    def pool(self, members: Sequence[Member]) -> Pool:
        return RoundRobinPool(self.memory)


def round_robin(queue: QueueSpec) -> Strategy:
    """The next available agent after the one last offered a call from this queue
    (in config order, wrapping round); the memory survives across calls."""
    return RoundRobinStrategy()


BUILTIN_STRATEGIES: Mapping[str, StrategyFactory] = {
    "longest_idle": longest_idle,
    "fewest_calls": fewest_calls,
    "round_robin": round_robin,
    "ring_all": ring_all,
    "best_proficiency": best_proficiency,
}
