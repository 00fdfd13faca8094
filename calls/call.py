"""One call's state, as the controller keeps it (plain data, no I/O handles)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ivr

from .phases import CallPhase


@dataclass(eq=False, slots=True)
class AgentLeg:
    """An agent's phone being rung for a call (ring_all rings several at once)."""

    agent_id: str
    leg: str
    confirmed: bool = False  # 200 OK + ACK
    media: bool = False  # audio flows
    reported: bool = False  # AgentAnswered went to the router (once)


@dataclass(eq=False, slots=True)
class Monitoring:
    """A supervisor on a call (calls/floor.py)."""

    supervisor: str  # agent id or SIP URI
    agent_id: str | None  # the supervisor's agent id, when given one (None for a SIP URI)
    leg: str  # the supervisor's leg
    mode: str  # listen, whisper, barge
    by: str  # who asked (CTI token name)
    confirmed: bool = False  # 200 OK + ACK
    media: bool = False  # audio flows
    answered_at: float | None = None  # monotonic seconds, once it hears the call
    made_not_ready: bool = False  # we set the supervisor not-ready (monitoring); restore after


@dataclass(eq=False, slots=True)
class Consultation:
    """The colleague an agent consults (attended transfer, conference)."""

    to: str  # what the agent asked for: agent id, queue, or SIP URI
    target_agent: str | None  # the colleague's agent id (None for a SIP URI)
    leg: str  # the colleague's leg
    agent_leg: str  # the consulting agent's leg
    agent_id: str | None  # the consulting agent
    confirmed: bool = False
    media: bool = False
    made_not_ready: bool = False  # we set the colleague not-ready (consult); restore after


@dataclass(eq=False, slots=True)
class Call:
    """A call from offer to end: the caller's (or customer's) leg, the flow, the agent legs."""

    call_id: str
    caller: str  # the caller's (or the dialled customer's) number
    service_code: str  # short speakable code for this call
    flow: ivr.Flow  # the flow version the call runs (fixed at offer: a reload never changes it)
    flows: dict[str, ivr.Flow]  # the flow set of that version (subflows, assist flows)
    phase: CallPhase
    started: float  # monotonic seconds of the offer (or of the dial, for calls we make)
    started_wall: float  # epoch seconds of the same moment
    leg: str = ""  # the caller's leg ("" until a callback or click-to-dial customer is dialled)
    life: int = 1  # 2, 3, ...: a callback conversation after the caller's own call ended
    interp: ivr.CallInterpreter | None = None  # built once the profile is loaded
    assist: ivr.CallInterpreter | None = None  # an assist flow the agent handed the caller to
    pending_variables: dict[str, Any] = field(default_factory=dict)  # set before the flow started
    confirmed: bool = False  # the caller's leg: 200 OK + ACK
    media_ready: bool = False  # the caller's leg: audio flows
    caller_ready: bool = False  # the profile lookup is done (or gave up)
    answered_at: float | None = None  # monotonic seconds
    queued_at: float | None = None
    connected_at: float | None = None
    queue: str | None = None
    priority: int | None = None  # the priority the caller was queued with
    agent_id: str | None = None  # the agent talking (or last rung)
    agent_leg: str | None = None  # the leg of the agent talking
    ringing: dict[str, AgentLeg] = field(default_factory=dict)  # agent id -> leg being rung
    position: int | None = None  # place in line last told to the flow
    keywords: list[dict[str, str]] = field(default_factory=list)  # keyword interrupts hit
    profile_tier: str | None = None
    callback: str | None = None  # the number to call back, once a callback was requested
    outbound: bool = False  # click-to-dial: the agent is rung first, then `outbound_to`
    outbound_to: str = ""
    segment: int = 1  # recording segment: a caller moved to another agent gets <call_id>-2.wav ...
    gaps: list[dict[str, str | None]] = field(default_factory=list)  # recording pauses, ISO times
    secure: bool = False  # secure input is going on: recordings stay paused
    playing: int | None = None  # token of the prompt the caller hears
    looping: set[int] = field(default_factory=set)  # tokens of prompts that loop (hold music)
    goodbye: int | None = None  # token of a prompt after which the controller hangs up
    recording: tuple[Path, Path, Path] | None = None  # caller part, agent part, final file
    voicemail: Path | None = None
    whole_call: Path | None = None  # the whole-call recording being written (answer to hang-up)
    whole_call_started: bool = False  # it was started once (a call is recorded whole only once)
    ear: bool = False  # an ear (speech input) is open for the caller's leg
    end_cause: str | None = None  # decided before the leg ends (e.g. agent_hangup, transferred)
    deadline: float | None = None  # the call's own next deadline (its interpreter's), monotonic
    # ---- the floor (calls/floor.py)
    monitor: Monitoring | None = None  # a supervisor on the call
    consult: Consultation | None = None  # a colleague being consulted (or in conference)
    edges: set[tuple[str, str]] = field(default_factory=set)  # one-way audio (src, dst) the floor set up
    mixes: set[tuple[str, str]] = field(default_factory=set)  # (src, into): mixed into into's recorders
    mixed: list[dict[str, str | None]] = field(default_factory=list)  # sidecar: who was mixed in, when
    disposition: str | None = None  # the agent's wrap-up code (agent.disposition)
    handed_over: bool = False  # an attended transfer gave the call to a colleague the ACD did not route
    handover_agent: str | None = None  # that colleague's agent id (not-ready "consult" until the end)
    transfers: list[dict[str, str | None]] = field(default_factory=list)  # attended transfers made
    # live cues (calls/cues.py): what was heard, for the summary and later screen-pops
    cues: list[dict[str, Any]] = field(default_factory=list)  # keyword/agitation cues (summary)
    pop_cues: list[dict[str, Any]] = field(default_factory=list)  # cues for the next agent offered
    cue_channels: set[str] = field(default_factory=set)  # channels tapped now ("caller", "agent")
    cue_paused: bool = False  # the taps hear nothing (secure step, recording paused)
    agitated: dict[str, bool] = field(default_factory=dict)  # channel -> above the level now
    agitation_raised_at: dict[str, float] = field(default_factory=dict)  # channel -> last raise, monotonic
    agitation_peak: float = 0.0  # highest agitation score heard (caller)
    boosted: bool = False  # the queue priority was raised once for a cue
    holds: list[list[float]] = field(default_factory=list)  # [start, end] monotonic seconds on hold (QA)
