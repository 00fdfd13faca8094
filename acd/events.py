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
    skills: tuple[str, ...] = ()  # extra skills this caller needs (any level), beyond the queue's


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


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackRequested:
    """The caller waiting as ``call_id`` accepted a callback (they keep their place and
    hang up next), or, with ``queue`` set and a new ``call_id``, a callback made from CTI."""

    call_id: str  # a waiting caller's call id, or a new id for a callback made directly
    number: str  # customer number to dial, as the adapter dials it (E.164 or SIP URI)
    queue: str | None = None  # queue name: required for a new callback; else it must match
    priority: int = 0  # new callbacks only; a waiting caller keeps their priority
    data: Mapping[str, Any] = field(default_factory=dict)  # screen-pop data, merged over the caller's


@dataclass(frozen=True, slots=True, kw_only=True)
class CallPriorityChanged:
    call_id: str  # a caller in a queue (waiting keeps its arrival time; the line is re-sorted)
    priority: int  # the new priority, higher first


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackAnswered:
    call_id: str  # the customer answered the DialCallback for this call


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackFailed:
    call_id: str  # the DialCallback for this call did not reach the customer
    cause: str  # "no_answer", "busy", "rejected", "unreachable", ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackCancelled:
    call_id: str  # a pending callback (not while its customer is being dialled)
    reason: str = "cancelled"  # why, e.g. "cancelled" (CTI), "customer_called_in"


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
    | CallbackRequested
    | CallbackAnswered
    | CallbackFailed
    | CallbackCancelled
    | CallPriorityChanged
)


# ----------------------------------------------------------- published events
@dataclass(frozen=True, slots=True, kw_only=True)
class CallQueued:
    wire: ClassVar[str] = "call.queued"
    call_id: str
    queue: str
    priority: int  # higher is served first
    position: int  # 1 = next in line
    ewt: float | None = None  # seconds, estimated wait from now (see docs/acd.md); None: no estimate


@dataclass(frozen=True, slots=True, kw_only=True)
class CallReprioritized:
    wire: ClassVar[str] = "call.priority_changed"
    call_id: str
    queue: str
    priority: int  # the new priority, higher first
    position: int | None  # place in line now (1 = next); None when ringing or talking


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentOffered:
    wire: ClassVar[str] = "agent.offered"
    call_id: str
    agent_id: str
    queue: str
    contact: str  # SIP URI being rung
    attempt: int  # 1 for the first agent rung for this call
    data: Mapping[str, Any]  # screen-pop: what the IVR learned
    callback: bool = False  # true: a callback; the customer is dialled once this agent answers


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


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackRegistered:
    """A callback entered (or, restored after a restart, re-entered) a queue."""

    wire: ClassVar[str] = "callback.requested"
    call_id: str
    queue: str
    number: str  # customer number to dial
    priority: int  # higher is served first
    position: int | None  # 1 = next in line; None while waiting for a retry
    ewt: float | None  # seconds, estimated wait from now; None: no estimate
    restored: bool  # true: reloaded from persistence by restore_callbacks


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackOffered:
    """An agent was reserved and is being rung for a callback (agent-first)."""

    wire: ClassVar[str] = "callback.offered"
    call_id: str
    agent_id: str
    queue: str
    attempt: int  # the customer dial attempt that follows if the agent answers, 1-based


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackDialing:
    wire: ClassVar[str] = "callback.dialing"
    call_id: str
    agent_id: str  # the agent who answered and waits on the line
    queue: str
    number: str  # customer number being dialled
    attempt: int  # customer dial attempt, 1-based


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackConnected:
    wire: ClassVar[str] = "callback.connected"
    call_id: str
    agent_id: str
    queue: str
    attempt: int  # customer dial attempt that reached them, 1-based
    wait_seconds: float  # from entering the queue to the customer answering, seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackAttemptFailed:
    wire: ClassVar[str] = "callback.failed"
    call_id: str
    agent_id: str  # the agent who was released
    queue: str
    attempt: int  # customer dial attempt that failed, 1-based (agent_hung_up: not counted)
    cause: str  # "no_answer", "busy", ... as the adapter reported, or "agent_hung_up"
    retry_in: float | None  # seconds until the next attempt may start; None: given up


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackAbandoned:
    """A callback left the queue unserved: every attempt failed, or it was cancelled."""

    wire: ClassVar[str] = "callback.abandoned"
    call_id: str
    queue: str
    reason: str  # "max_attempts", or the CallbackCancelled reason
    attempts: int  # customer dial attempts made
    wait_seconds: float  # from entering the queue to now, seconds


Event = (
    CallQueued
    | AgentOffered
    | AgentOfferFailed
    | CallConnected
    | CallAbandoned
    | AgentStateChanged
    | CallOverflowed
    | CallbackRegistered
    | CallbackOffered
    | CallbackDialing
    | CallbackConnected
    | CallbackAttemptFailed
    | CallbackAbandoned
    | CallReprioritized
)


# -------------------------------------------------------------------- actions
@dataclass(frozen=True, slots=True, kw_only=True)
class RingAgent:
    call_id: str
    agent_id: str
    contact: str  # SIP URI to dial
    timeout: float  # seconds; the core also times it and sends CancelRing
    callback_number: str | None = None  # set for a callback: the number dialled once the agent answers


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


@dataclass(frozen=True, slots=True, kw_only=True)
class DialCallback:
    """The agent answered a callback ring and waits on the line: dial the customer, then
    report CallbackAnswered (and bridge on BridgeCall) or CallbackFailed."""

    call_id: str
    number: str  # customer number to dial
    agent_id: str  # the agent (already on call) to bridge the customer to
    attempt: int  # customer dial attempt, 1-based


Action = RingAgent | CancelRing | BridgeCall | OverflowCall | DialCallback
Output = Event | Action
