"""What goes into the ACD core (inputs), and what comes out (events and actions).

Inputs and published events are past tense; actions are imperative. Published
events carry a class-level ``wire`` name used verbatim on the CTI socket and MQTT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .model import AgentState

_frozen = dataclass(frozen=True, slots=True, kw_only=True)


# --------------------------------------------------------------------- inputs
@_frozen
class AgentLoggedIn:
    agent_id: str  # agent id from config
    contact: str | None = None  # SIP URI to ring; None keeps the configured one


@_frozen
class AgentBecameReady:
    agent_id: str  # also ends wrap-up early


@_frozen
class AgentWentNotReady:
    agent_id: str
    reason: str  # reason code, e.g. "break", "training"


@_frozen
class AgentLoggedOut:
    agent_id: str


@_frozen
class CallEnqueued:
    call_id: str
    queue: str  # queue name from config
    priority: int = 0  # higher is served first
    data: Mapping[str, Any] = field(default_factory=dict)  # screen-pop data for the agent


@_frozen
class AgentAnswered:
    call_id: str
    agent_id: str


@_frozen
class AgentRingFailed:
    call_id: str
    agent_id: str
    cause: str  # "busy", "declined", "unreachable", ... (the ring timeout is the core's own)


@_frozen
class CallerHungUp:
    call_id: str


@_frozen
class AgentHungUp:
    call_id: str
    agent_id: str


Input = (
    AgentLoggedIn
    | AgentBecameReady
    | AgentWentNotReady
    | AgentLoggedOut
    | CallEnqueued
    | AgentAnswered
    | AgentRingFailed
    | CallerHungUp
    | AgentHungUp
)


# ----------------------------------------------------------- published events
@_frozen
class CallQueued:
    wire: ClassVar[str] = "call.queued"
    call_id: str
    queue: str
    priority: int  # higher is served first
    position: int  # 1 = next in line


@_frozen
class AgentOffered:
    wire: ClassVar[str] = "agent.offered"
    call_id: str
    agent_id: str
    queue: str
    contact: str  # SIP URI being rung
    attempt: int  # 1 for the first agent rung for this call
    data: Mapping[str, Any]  # screen-pop: what the IVR learned


@_frozen
class AgentOfferFailed:
    wire: ClassVar[str] = "agent.offer_failed"
    call_id: str
    agent_id: str
    cause: str  # "no_answer" (ring timeout), or the peer's cause
    consecutive: int  # consecutive failed offers for this agent


@_frozen
class CallConnected:
    wire: ClassVar[str] = "call.connected"
    call_id: str
    agent_id: str
    queue: str
    wait_seconds: float  # from enqueue to agent answer, seconds


@_frozen
class CallAbandoned:
    wire: ClassVar[str] = "call.abandoned"
    call_id: str
    queue: str
    wait_seconds: float  # from enqueue to caller hang-up, seconds


@_frozen
class AgentStateChanged:
    wire: ClassVar[str] = "agent.state_changed"
    agent_id: str
    from_: AgentState  # on the wire: "from"
    to: AgentState
    reason: str | None  # not-ready reason code, or why the core moved the agent


Event = CallQueued | AgentOffered | AgentOfferFailed | CallConnected | CallAbandoned | AgentStateChanged


# -------------------------------------------------------------------- actions
@_frozen
class RingAgent:
    call_id: str
    agent_id: str
    contact: str  # SIP URI to dial
    timeout: float  # seconds; the core also times it and sends CancelRing


@_frozen
class CancelRing:
    call_id: str
    agent_id: str


@_frozen
class BridgeCall:
    call_id: str
    agent_id: str


Action = RingAgent | CancelRing | BridgeCall
Output = Event | Action
