"""acd: queues, agents and skill-based routing as a pure state machine.

Build it with :func:`build_router`; drive it with ``handle(event, now)``,
``next_deadline()`` and ``on_timer(now)``.
"""

from collections.abc import Iterable, Mapping

from . import erlang, events, simulator, stats
from .model import (
    TRANSITIONS,
    AcdConfigError,
    AcdError,
    AcdUsageError,
    AgentSpec,
    AgentState,
    CallbackRecord,
    IllegalTransition,
    Overflow,
    OverflowKind,
    OverflowReason,
    QueueSpec,
    RelaxStep,
    Trigger,
)
from .router import QueueCounts, Router
from .stats import AgentIntervalRow, IntervalRow, Statistics, StatsConfig, build_statistics
from .strategies import BUILTIN_STRATEGIES, Member, Pool, Strategy, StrategyFactory


def build_router(
    queues: Iterable[QueueSpec],
    agents: Iterable[AgentSpec],
    *,
    strategies: Mapping[str, StrategyFactory] | None = None,
) -> Router:
    """The one wiring point of the package. ``strategies`` adds (or overrides) agent-selection
    strategies by name, next to :data:`BUILTIN_STRATEGIES`. Raises :class:`AcdConfigError`."""
    return Router(queues, agents, strategies)


__all__ = [
    "BUILTIN_STRATEGIES",
    "TRANSITIONS",
    "AcdConfigError",
    "AcdError",
    "AcdUsageError",
    "AgentIntervalRow",
    "AgentSpec",
    "AgentState",
    "CallbackRecord",
    "IllegalTransition",
    "IntervalRow",
    "Member",
    "Overflow",
    "OverflowKind",
    "OverflowReason",
    "Pool",
    "QueueCounts",
    "QueueSpec",
    "RelaxStep",
    "Router",
    "Statistics",
    "StatsConfig",
    "Strategy",
    "StrategyFactory",
    "Trigger",
    "build_router",
    "build_statistics",
    "erlang",
    "events",
    "simulator",
    "stats",
]
