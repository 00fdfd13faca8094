"""acd: queues, agents and skill-based routing as a pure state machine.

Build it with :func:`build_router`; drive it with ``handle(event, now)``,
``next_deadline()`` and ``on_timer(now)``.
"""

from collections.abc import Iterable

from . import events
from .model import (
    TRANSITIONS,
    AcdError,
    AcdUsageError,
    AgentSpec,
    AgentState,
    IllegalTransition,
    QueueSpec,
    Trigger,
)
from .router import Router


def build_router(queues: Iterable[QueueSpec], agents: Iterable[AgentSpec]) -> Router:
    """The one wiring point of the package."""
    return Router(queues, agents)


__all__ = [
    "TRANSITIONS",
    "AcdError",
    "AcdUsageError",
    "AgentSpec",
    "AgentState",
    "IllegalTransition",
    "QueueSpec",
    "Router",
    "Trigger",
    "build_router",
    "events",
]
