"""Agent states, the transition table, the core's configuration and its errors."""

from __future__ import annotations

import enum
from dataclasses import dataclass


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
    HANGUP = "hangup"
    WRAP_UP_DONE = "wrap_up_done"


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
    },
    S.ON_CALL: {T.HANGUP: S.WRAP_UP},
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


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    skills: tuple[str, ...]  # an agent needs every one of these
    ring_timeout: float = 15.0  # seconds an agent rings before the next is tried
    wrap_up: float = 5.0  # seconds of wrap-up after each call
    max_no_answer: int = 3  # consecutive failed offers before the agent goes not-ready
    retry_delay: float = 5.0  # seconds before an agent who failed a call is offered it again


@dataclass(frozen=True, slots=True)
class AgentSpec:
    id: str
    name: str
    skills: tuple[str, ...]
    contact: str  # SIP URI rung for offers, e.g. sip:1001@10.0.0.5:5060
