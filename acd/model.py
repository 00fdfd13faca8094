"""Agent states, the transition table, the core's configuration and its errors."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class AgentState(enum.StrEnum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RESERVED = "reserved"  # being rung for a call
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    NOT_READY = "not_ready"


class Trigger(enum.StrEnum):
    LOGIN = "login"
    LOGOUT = "logout"
    READY = "ready"
    NOT_READY = "not_ready"
    OFFER = "offer"
    ANSWER = "answer"
    RING_FAILED = "ring_failed"
    RING_FAILED_LIMIT = "ring_failed_limit"  # the Nth consecutive failure
    CALLER_GONE = "caller_gone"
    ANSWERED_ELSEWHERE = "answered_elsewhere"  # ring-all: another agent answered first
    HANGUP = "hangup"
    WRAP_UP_DONE = "wrap_up_done"
    CALLBACK_FAILED = "callback_failed"  # the customer of a callback was not reached


S, T = AgentState, Trigger

#: The agent state machine. A (state, trigger) pair absent here is illegal.
TRANSITIONS: dict[AgentState, dict[Trigger, AgentState]] = {
    S.LOGGED_OUT: {T.LOGIN: S.NOT_READY},
    S.NOT_READY: {T.READY: S.AVAILABLE, T.NOT_READY: S.NOT_READY, T.LOGOUT: S.LOGGED_OUT},
    S.AVAILABLE: {T.OFFER: S.RESERVED, T.NOT_READY: S.NOT_READY, T.LOGOUT: S.LOGGED_OUT},
    S.RESERVED: {
        T.ANSWER: S.ON_CALL,
        T.RING_FAILED: S.AVAILABLE,
        T.RING_FAILED_LIMIT: S.NOT_READY,
        T.CALLER_GONE: S.AVAILABLE,
        T.ANSWERED_ELSEWHERE: S.AVAILABLE,
    },
    S.ON_CALL: {T.HANGUP: S.WRAP_UP, T.CALLBACK_FAILED: S.AVAILABLE},
    S.WRAP_UP: {
        T.WRAP_UP_DONE: S.AVAILABLE,
        T.READY: S.AVAILABLE,
        T.NOT_READY: S.NOT_READY,
        T.LOGOUT: S.LOGGED_OUT,
    },
}


class AcdError(Exception):
    """Base of every error the ACD core raises. ``code`` is stable for clients."""

    code = "acd.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class AcdUsageError(AcdError):
    """The caller of the core asked for something the model forbids."""


class IllegalTransition(AcdUsageError):
    code = "acd.illegal_transition"


class AcdConfigError(AcdUsageError):
    """The queues/agents handed to :func:`acd.build_router` do not make sense."""

    code = "acd.bad_config"


#: Skills as given in config: a tuple of names (agent level 5, queue minimum 1),
#: or a mapping name -> proficiency 1..5 (agent: its level; queue: the minimum).
Skills = tuple[str, ...] | Mapping[str, int]

MIN_LEVEL, MAX_LEVEL = 1, 5


class OverflowKind(enum.StrEnum):
    QUEUE = "queue"  # the core moves the caller to another queue itself
    VOICEMAIL = "voicemail"  # the adapter takes a message for ``target`` (a mailbox)
    CALLBACK = "callback"  # the adapter offers a callback on ``target`` (a queue)
    FLOW_NODE = "flow_node"  # the adapter resumes the caller's flow at node ``target``


class OverflowReason(enum.StrEnum):
    MAX_WAIT = "max_wait"  # waited ``max_wait`` seconds
    NO_AGENTS = "no_agents"  # no logged-in agent could ever serve the queue
    QUEUE_FULL = "queue_full"  # ``max_waiting`` callers were already in the queue


@dataclass(frozen=True, slots=True)
class Overflow:
    kind: OverflowKind
    target: str  # queue name, mailbox, callback queue or flow node id, per ``kind``


@dataclass(frozen=True, slots=True)
class RelaxStep:
    """One skill-relaxation step; steps apply cumulatively, in order of ``after``."""

    after: float  # seconds of waiting after which the step applies
    min_level: int | None = None  # lower every remaining skill minimum to at most this level
    drop: tuple[str, ...] = ()  # skills no longer required at all


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    skills: Skills  # an agent needs every one of these (at the minimum level, if a mapping)
    ring_timeout: float = 15.0  # seconds an agent rings before the next is tried
    wrap_up: float = 5.0  # seconds of wrap-up after each call (AgentSpec.wrap_up overrides)
    max_no_answer: int = 3  # consecutive failed offers before the agent goes not-ready
    retry_delay: float = 5.0  # seconds before an agent who failed a call is offered it again
    strategy: str = "longest_idle"  # agent selection; see acd.strategies.BUILTIN_STRATEGIES
    aging_seconds: float = 60.0  # seconds of waiting worth one priority level; 0 = no aging
    relax: tuple[RelaxStep, ...] = ()  # skill-relaxation steps by waiting time
    max_wait: float | None = None  # seconds in line before ``on_max_wait`` applies
    max_waiting: int | None = None  # callers held (waiting or ringing) before ``on_full`` applies
    on_max_wait: Overflow | None = None  # where a caller goes after ``max_wait``
    on_full: Overflow | None = None  # where an arriving caller goes when the queue is full
    on_no_agents: Overflow | None = None  # where callers go when no logged-in agent can serve
    callback_retry_delay: float = 300.0  # seconds between two dial attempts of one callback
    callback_max_attempts: int = 3  # customer dial attempts before a callback is given up
    default_aht: float = 180.0  # seconds: the EWT handle-time average before any call is handled
    aht_smoothing: float = 0.02  # 0..1: weight of each handled call in that moving average


@dataclass(frozen=True, slots=True)
class AgentSpec:
    id: str
    name: str
    skills: Skills  # names (level 5) or name -> proficiency 1..5
    contact: str  # SIP URI rung for offers, e.g. sip:1001@10.0.0.5:5060
    #: queue name -> this agent's priority for it (higher first). None: every queue whose
    #: skills the agent has, all at priority 0.
    queues: Mapping[str, int] | None = None
    wrap_up: float | None = None  # seconds of wrap-up after each call; None = the queue's


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackRecord:
    """A pending callback as plain JSON-able data, for the adapter to persist and restore
    (:meth:`acd.Router.pending_callbacks`, :meth:`acd.Router.restore_callbacks`)."""

    call_id: str  # the callback's call id (the original caller's, or the one CTI gave)
    queue: str  # queue name
    number: str  # customer number to dial, as the adapter dials it
    priority: int  # caller priority (ages as usual)
    data: Mapping[str, Any]  # screen-pop data; JSON-able when the IVR's data is
    waited: float  # seconds in line when exported (from entering the queue); restore keeps it
    attempts: int  # customer dial attempts already made
    retry_in: float  # seconds until the next dial attempt may start; 0 = at once

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "queue": self.queue,
            "number": self.number,
            "priority": self.priority,
            "data": dict(self.data),
            "waited": self.waited,
            "attempts": self.attempts,
            "retry_in": self.retry_in,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CallbackRecord:
        """The inverse of :meth:`as_dict`. Raises :class:`AcdUsageError` on a bad record."""
        try:
            return cls(
                call_id=str(raw["call_id"]),
                queue=str(raw["queue"]),
                number=str(raw["number"]),
                priority=int(raw.get("priority", 0)),
                data=dict(raw.get("data") or {}),
                waited=float(raw.get("waited", 0.0)),
                attempts=int(raw.get("attempts", 0)),
                retry_in=float(raw.get("retry_in", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AcdUsageError(f"bad callback record: {exc!r}", code="acd.bad_callback_record") from None


def skill_levels(skills: Skills, *, default: int) -> dict[str, int]:
    """Normalise either skills form to name -> level (``default`` for bare names)."""
    if isinstance(skills, Mapping):
        levels = {str(k): int(v) for k, v in skills.items()}
    else:
        levels = dict.fromkeys(skills, default)
    for name, level in levels.items():
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            raise AcdConfigError(
                f"skill {name!r} has proficiency {level}; it must be {MIN_LEVEL}..{MAX_LEVEL}",
                code="acd.bad_skill_level",
            )
    return levels


def relaxed_requirements(queue: QueueSpec) -> list[dict[str, int]]:
    """The queue's requirements at step 0 (none applied) .. len(relax) (all applied)."""
    current = skill_levels(queue.skills, default=MIN_LEVEL)
    out = [dict(current)]
    for step in sorted(queue.relax, key=lambda s: s.after):
        current = {k: v for k, v in current.items() if k not in step.drop}
        if step.min_level is not None:
            current = {k: min(v, step.min_level) for k, v in current.items()}
        out.append(dict(current))
    return out


def qualifies(agent_levels: Mapping[str, int], required: Mapping[str, int]) -> bool:
    """Whether an agent with ``agent_levels`` meets every minimum in ``required``."""
    return all(agent_levels.get(k, 0) >= v for k, v in required.items())
