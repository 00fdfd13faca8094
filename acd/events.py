"""What goes into the ACD core (inputs), and what comes out (events and actions).

Inputs and published events are past tense; actions are imperative. Published
events carry a class-level ``wire`` name used verbatim on the CTI socket and MQTT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .model import AgentState, OverflowKind, OverflowReason


# --------------------------------------------------------------------- inputs
@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLoggedIn:
    agent_id: str  # agent id from config
    contact: str | None = None  # SIP URI to ring; None keeps the configured one


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentBecameReady:
    agent_id: str  # also ends wrap-up early


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentWentNotReady:
    agent_id: str
    reason: str  # reason code, e.g. "break", "training"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLoggedOut:
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnqueued:
    call_id: str
    queue: str  # queue name from config
    priority: int = 0  # higher is served first; ages by the queue's aging_seconds
    data: Mapping[str, Any] = field(default_factory=dict)  # screen-pop data for the agent
    preferred_agent: str | None = None  # agent id tried alone first (e.g. the last agent)
    preferred_seconds: float = 0.0  # seconds only ``preferred_agent`` is tried; then anyone


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentAnswered:
    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRingFailed:
    call_id: str
    agent_id: str
    cause: str  # "busy", "declined", "unreachable", ... (the ring timeout is the core's own)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerHungUp:
    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
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
@dataclass(frozen=True, slots=True, kw_only=True)
class CallQueued:
    wire: ClassVar[str] = "call.queued"
    call_id: str
    queue: str
    priority: int  # higher is served first
    position: int  # 1 = next in line


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentOffered:
    wire: ClassVar[str] = "agent.offered"
    call_id: str
    agent_id: str
    queue: str
    contact: str  # SIP URI being rung
    attempt: int  # 1 for the first agent rung for this call
    data: Mapping[str, Any]  # screen-pop: what the IVR learned


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentOfferFailed:
    wire: ClassVar[str] = "agent.offer_failed"
    call_id: str
    agent_id: str
    cause: str  # "no_answer" (ring timeout), or the peer's cause
    consecutive: int  # consecutive failed offers for this agent


@dataclass(frozen=True, slots=True, kw_only=True)
class CallConnected:
    wire: ClassVar[str] = "call.connected"
    call_id: str
    agent_id: str
    queue: str
    wait_seconds: float  # from enqueue to agent answer, seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAbandoned:
    wire: ClassVar[str] = "call.abandoned"
    call_id: str
    queue: str
    wait_seconds: float  # from enqueue to caller hang-up, seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged:
    wire: ClassVar[str] = "agent.state_changed"
    agent_id: str
    from_: AgentState  # on the wire: "from"
    to: AgentState
    reason: str | None  # not-ready reason code, or why the core moved the agent


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOverflowed:
    wire: ClassVar[str] = "call.overflowed"
    call_id: str
    queue: str  # the queue the caller left
    reason: OverflowReason  # max_wait, no_agents or queue_full
    kind: OverflowKind  # queue, voicemail, callback or flow_node
    target: str  # queue name, mailbox, callback queue or flow node id
    wait_seconds: float  # from enqueue in ``queue`` to the overflow, seconds


Event = (
    CallQueued
    | AgentOffered
    | AgentOfferFailed
    | CallConnected
    | CallAbandoned
    | AgentStateChanged
    | CallOverflowed
)


# -------------------------------------------------------------------- actions
@dataclass(frozen=True, slots=True, kw_only=True)
class RingAgent:
    call_id: str
    agent_id: str
    contact: str  # SIP URI to dial
    timeout: float  # seconds; the core also times it and sends CancelRing


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRing:
    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeCall:
    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OverflowCall:
    """Take the caller out of the ACD to ``target``. Not emitted for ``kind`` queue:
    the core moves those callers itself (CallOverflowed, then CallQueued)."""

    call_id: str
    kind: OverflowKind  # voicemail, callback or flow_node
    target: str  # mailbox, callback queue or flow node id


Action = RingAgent | CancelRing | BridgeCall | OverflowCall
Output = Event | Action
