"""A call's phases and the table of the moves between them (h11 style).

A (phase, trigger) pair absent from :data:`TRANSITIONS` is illegal: the controller raises
:class:`IllegalCallTransition` and the call keeps its phase. The diagram in
docs/architecture.md is generated from the table (``python -m calls.diagram``).
"""

from __future__ import annotations

import enum


class CallPhase(enum.StrEnum):
    OFFERED = "offered"  # the caller's INVITE arrived; answering, loading the profile
    IVR = "ivr"  # the flow talks to the caller
    QUEUED = "queued"  # waiting in an ACD queue (the flow plays hold prompts)
    CONNECTED = "connected"  # bridged to an agent (inbound, callback or click-to-dial)
    ASSISTED = "assisted"  # the agent handed the caller to a flow and waits on hold
    CONSULTING = "consulting"  # the caller is on hold; the agent rings or talks to a colleague
    CONFERENCE = "conference"  # caller, agent and the consulted colleague all hear each other
    VOICEMAIL = "voicemail"  # the ACD overflowed the caller to a voicemail box
    CALLBACK_PENDING = "callback_pending"  # the caller hung up; their callback keeps the place in line
    CALLBACK_RINGING = "callback_ringing"  # an agent is rung for a callback
    CALLBACK_DIALING = "callback_dialing"  # the agent waits on the line; the customer is dialled
    OUTBOUND_AGENT = "outbound_agent"  # click-to-dial: the agent is rung first
    OUTBOUND_DIALING = "outbound_dialing"  # click-to-dial: the agent waits; the customer is dialled
    ENDED = "ended"


class CallTrigger(enum.StrEnum):
    READY = "ready"  # answered, media up, profile loaded: the flow starts
    ENQUEUED = "enqueued"  # the flow (or a CTI transfer) put the caller in a queue
    BRIDGED = "bridged"  # an agent (or the dialled customer) was bridged
    BACK_TO_FLOW = "back_to_flow"  # overflow to a flow node, or the agent left and the flow goes on
    VOICEMAIL = "voicemail"  # the ACD overflowed the caller to voicemail
    ASSIST = "assist"  # the agent handed the caller to a flow
    ASSIST_DONE = "assist_done"  # the assist flow ended: the agent is back
    CONSULT = "consult"  # the agent put the caller on hold and calls a colleague (attended transfer)
    CONSULT_ENDED = "consult_ended"  # the consultation ended (cancelled, or the colleague left)
    CONFERENCE = "conference"  # the agent joined caller and colleague: three-way
    TRANSFERRED = "transferred"  # the agent left; the colleague talks to the caller now
    CALLBACK_KEPT = "callback_kept"  # the caller left with a callback in line
    AGENT_RUNG = "agent_rung"  # the ACD rings an agent for a pending callback
    RING_FAILED = "ring_failed"  # the callback's agent did not take it; the callback waits again
    CUSTOMER_DIALED = "customer_dialed"  # the agent answered: the customer is dialled
    DIAL_FAILED = "dial_failed"  # the callback's customer was not reached
    ENDED = "ended"  # the call is over (hang-up, failure, shutdown)


P, T = CallPhase, CallTrigger

#: The call phase machine. A (phase, trigger) pair absent here is illegal.
TRANSITIONS: dict[CallPhase, dict[CallTrigger, CallPhase]] = {
    P.OFFERED: {T.READY: P.IVR, T.ENDED: P.ENDED},
    P.IVR: {T.ENQUEUED: P.QUEUED, T.ENDED: P.ENDED},
    P.QUEUED: {
        T.BRIDGED: P.CONNECTED,
        T.ENQUEUED: P.QUEUED,
        T.BACK_TO_FLOW: P.IVR,
        T.VOICEMAIL: P.VOICEMAIL,
        T.CALLBACK_KEPT: P.CALLBACK_PENDING,
        T.ENDED: P.ENDED,
    },
    P.CONNECTED: {
        T.ENQUEUED: P.QUEUED,
        T.BACK_TO_FLOW: P.IVR,
        T.ASSIST: P.ASSISTED,
        T.CONSULT: P.CONSULTING,
        T.ENDED: P.ENDED,
    },
    P.ASSISTED: {T.ASSIST_DONE: P.CONNECTED, T.ENDED: P.ENDED},
    P.CONSULTING: {
        T.CONSULT_ENDED: P.CONNECTED,
        T.CONFERENCE: P.CONFERENCE,
        T.TRANSFERRED: P.CONNECTED,
        T.ENDED: P.ENDED,
    },
    P.CONFERENCE: {T.CONSULT_ENDED: P.CONNECTED, T.TRANSFERRED: P.CONNECTED, T.ENDED: P.ENDED},
    P.VOICEMAIL: {T.ENDED: P.ENDED},
    P.CALLBACK_PENDING: {T.AGENT_RUNG: P.CALLBACK_RINGING, T.ENDED: P.ENDED},
    P.CALLBACK_RINGING: {
        T.AGENT_RUNG: P.CALLBACK_RINGING,
        T.CUSTOMER_DIALED: P.CALLBACK_DIALING,
        T.RING_FAILED: P.CALLBACK_PENDING,
        T.ENDED: P.ENDED,
    },
    P.CALLBACK_DIALING: {T.BRIDGED: P.CONNECTED, T.DIAL_FAILED: P.CALLBACK_PENDING, T.ENDED: P.ENDED},
    P.OUTBOUND_AGENT: {T.CUSTOMER_DIALED: P.OUTBOUND_DIALING, T.ENDED: P.ENDED},
    P.OUTBOUND_DIALING: {T.BRIDGED: P.CONNECTED, T.ENDED: P.ENDED},
    P.ENDED: {},
}

#: Phases in which the caller hears the flow (keys and speech go to the interpreter).
IN_FLOW = frozenset({P.IVR, P.QUEUED})

#: Phases of a call that still has a caller (or a customer being reached) on a leg.
LIVE = frozenset(set(P) - {P.ENDED, P.CALLBACK_PENDING})

#: Phases in which an agent is on the call with the caller (talk time, monitoring, dispositions).
TALKING = frozenset({P.CONNECTED, P.ASSISTED, P.CONSULTING, P.CONFERENCE})
