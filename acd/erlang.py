"""Erlang B and Erlang C for the M/M/c queue: pure math, no I/O.

Notation (all rates in one time unit, all durations in seconds):

- ``agents`` (c): servers, an integer >= 1.
- ``load`` (a): offered traffic in erlangs = arrival rate x mean handle time.
- ``aht``: mean handle time, seconds (talk + wrap-up: the time a server is held).

Erlang C is computed from the Erlang B recursion
``B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1))`` and
``C = c B / (c - a (1 - B))``. Every step stays in [0, 1], so there are no
factorials or powers to overflow: it is stable for thousands of agents.
"""

from __future__ import annotations

import math

__all__ = [
    "agents_for_service_level",
    "asa",
    "erlang_b",
    "erlang_c",
    "occupancy",
    "service_level",
]


def _check(agents: int, load: float) -> None:
    if agents < 1:
        raise ValueError(f"agents must be >= 1, got {agents}")
    if load < 0 or not math.isfinite(load):
        raise ValueError(f"load must be a finite number of erlangs >= 0, got {load}")


def erlang_b(agents: int, load: float) -> float:
    """Blocking probability of M/M/c/c (a lost-calls system) with ``load`` erlangs."""
    _check(agents, load)
    b = 1.0
    for k in range(1, agents + 1):
        b = load * b / (k + load * b)
    return b


def erlang_c(agents: int, load: float) -> float:
    """Probability that an arriving caller waits (M/M/c, infinite patience).

    Returns 1.0 when ``load >= agents`` (the queue grows without bound).
    """
    _check(agents, load)
    if load >= agents:
        return 1.0
    b = erlang_b(agents, load)
    return agents * b / (agents - load * (1.0 - b))


def service_level(agents: int, load: float, aht: float, threshold: float) -> float:
    """P(wait <= ``threshold`` seconds) for M/M/c: ``1 - C exp(-(c - a) t / aht)``."""
    if aht <= 0:
        raise ValueError(f"aht must be > 0 seconds, got {aht}")
    pw = erlang_c(agents, load)
    if load >= agents:
        return 0.0
    return 1.0 - pw * math.exp(-(agents - load) * threshold / aht)


def asa(agents: int, load: float, aht: float) -> float:
    """Mean wait over all callers (answered or not delayed), seconds: ``C aht / (c - a)``."""
    if aht <= 0:
        raise ValueError(f"aht must be > 0 seconds, got {aht}")
    if load >= agents:
        return math.inf
    return erlang_c(agents, load) * aht / (agents - load)


def occupancy(agents: int, load: float) -> float:
    """Fraction of time a server is busy: ``a / c`` (capped at 1)."""
    _check(agents, load)
    return min(1.0, load / agents)


def agents_for_service_level(
    rate_per_hour: float, aht: float, threshold: float, target: float, *, max_agents: int = 100_000
) -> int:
    """Fewest agents whose Erlang C service level reaches ``target`` (0..1).

    ``rate_per_hour``: calls per hour; ``aht``: seconds; ``threshold``: seconds.
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be between 0 and 1, got {target}")
    load = rate_per_hour * aht / 3600.0
    c = max(1, math.floor(load) + 1)
    while c <= max_agents:
        if service_level(c, load, aht, threshold) >= target:
            return c
        c += 1
    raise ValueError(f"no staffing up to {max_agents} agents reaches {target:.0%}")
