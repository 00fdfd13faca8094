"""Call-level events the call controller publishes (the IVR and ACD cores publish their own)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOffered:
    wire: ClassVar[str] = "call.offered"
    call_id: str
    caller: str  # caller's number (user part of From)
    from_uri: str
    to_uri: str
    sip_call_id: str  # SIP Call-ID header of the caller's leg
    flow: str  # flow that will answer
    flow_version: str  # sha256 prefix of that flow file
    service_code: str = ""  # short speakable code for this call, e.g. K7M-4QX


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered:
    wire: ClassVar[str] = "call.answered"
    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:
    wire: ClassVar[str] = "call.ended"
    call_id: str
    cause: str  # caller_hangup, agent_hangup, abandoned, ivr_hangup, transferred, shutdown, ...
    sip_code: int  # last SIP status on the caller's leg
    queue: str | None
    agent_id: str | None
    total_seconds: float  # offer to end
    ivr_seconds: float  # answer to enqueue (or to end, if never queued)
    wait_seconds: float  # enqueue to agent answer (or to end, if never connected)
    talk_seconds: float  # agent answer to end
    summary: Mapping[
        str, Any
    ]  # for ticketing: caller (masked), IVR path and inputs, keywords, escalation, survey


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingReady:
    wire: ClassVar[str] = "recording.ready"
    call_id: str
    kind: str  # "call" (caller left, agent right), "voicemail" or "whole_call" (mono, answer to hang-up)
    path: str  # absolute path of the WAV
    seconds: float  # duration
    channels: int
    sha256: str  # of the file, hex
    sidecar: str = ""  # absolute path of the JSON sidecar (calls only)
    repaired: bool = False  # rebuilt at start-up from the parts a killed process left


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFailed:
    wire: ClassVar[str] = "recording.failed"
    call_id: str
    kind: str
    error: str  # what went wrong, for an operator


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    """A queue's live figures since the last reset (docs/acd-statistics.md)."""

    wire: ClassVar[str] = "queue.stats"
    queue: str
    figures: Mapping[
        str, Any
    ]  # offered, answered, abandoned, sl_*, asa, aht, longest wait, agents by state ...


@dataclass(frozen=True, slots=True, kw_only=True)
class EmergencyChanged:
    """The emergency-closure switch was flipped (flows read it as `emergency`)."""

    wire: ClassVar[str] = "ivr.emergency_changed"
    on: bool  # true: closed for an emergency


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundStarted:
    """Click-to-dial: the agent is rung first, then `to` is dialled."""

    wire: ClassVar[str] = "call.outbound"
    call_id: str
    agent_id: str
    to: str  # the number or SIP URI dialled
    purpose: str  # "service" or "marketing"
    service_code: str  # short speakable code for this call


@dataclass(frozen=True, slots=True, kw_only=True)
class AssistStarted:
    """The agent handed the caller to a flow (identity check, card entry); the agent waits,
    hearing nothing of it."""

    wire: ClassVar[str] = "call.assist_started"
    call_id: str
    agent_id: str
    flow: str  # the assist flow's name


@dataclass(frozen=True, slots=True, kw_only=True)
class AssistDone:
    """The assist flow ended; the agent and the caller talk again."""

    wire: ClassVar[str] = "call.assist_done"
    call_id: str
    agent_id: str
    flow: str
    result: str  # how the flow ended: "flow_end", or "unsupported_step" (a queue/transfer node)
    variables: Mapping[str, Any]  # what the flow set (secure values are "****")
    inputs: tuple[Mapping[str, str], ...]  # every input in the flow (secure ones masked)


# ------------------------------------------------------------------ the floor
@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorStarted:
    """The supervisor answered and hears the call (listen), coaches the agent (whisper) or
    talks with both (barge)."""

    wire: ClassVar[str] = "supervisor.monitor_started"
    call_id: str
    supervisor: str  # agent id or SIP URI
    mode: str  # listen, whisper or barge
    agent_id: str | None  # the agent on the call


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorChanged:
    wire: ClassVar[str] = "supervisor.monitor_changed"
    call_id: str
    supervisor: str
    mode: str  # the new mode
    previous: str  # the mode before


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorEnded:
    wire: ClassVar[str] = "supervisor.monitor_ended"
    call_id: str
    supervisor: str
    reason: str  # stopped, supervisor_hangup, call_ended, agent_left, or the ring failure (busy, ...)
    seconds: float  # from the supervisor answering to the end (0 if never answered)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsultStarted:
    """The caller is on hold; the agent's colleague is being rung."""

    wire: ClassVar[str] = "call.consult_started"
    call_id: str
    agent_id: str | None  # the agent consulting
    to: str  # what the agent asked for: agent id, queue or SIP URI
    target_agent: str | None  # the colleague's agent id (None for a SIP URI)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsultConnected:
    wire: ClassVar[str] = "call.consult_connected"
    call_id: str
    agent_id: str | None
    target_agent: str | None  # the colleague who answered (None for a SIP URI)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsultEnded:
    """The consultation ended without a transfer; the agent has the caller back."""

    wire: ClassVar[str] = "call.consult_ended"
    call_id: str
    agent_id: str | None
    target_agent: str | None
    reason: str  # cancelled, colleague_hangup, or the ring failure (no_answer, busy, ...)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConferenceStarted:
    wire: ClassVar[str] = "call.conference_started"
    call_id: str
    agent_id: str | None
    target_agent: str | None  # the third party (None for a SIP URI)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTransferred:
    """Attended transfer completed: the first agent left, the colleague has the caller."""

    wire: ClassVar[str] = "call.transferred"
    call_id: str
    from_agent: str | None
    to_agent: str | None  # None when the colleague was a SIP URI
    to: str  # agent id, queue or SIP URI the agent consulted
    kind: str  # "attended"


@dataclass(frozen=True, slots=True, kw_only=True)
class DispositionSet:
    """An agent's wrap-up code for a call (agent.disposition); the last one set counts."""

    wire: ClassVar[str] = "call.disposition"
    call_id: str
    agent_id: str
    queue: str | None
    code: str  # one of the queue's configured dispositions
    note: str  # free text, "" for none
    during: str  # "talk" or "wrap_up"
# ------------------------------------------------------ voice of the customer
@dataclass(frozen=True, slots=True, kw_only=True)
class CallKeyword:
    """A configured phrase was heard on a call (live, docs/analytics.md)."""

    wire: ClassVar[str] = "call.keyword"
    call_id: str
    channel: str  # "caller" or "agent"
    category: str  # complaint, regulator, fraud, ... ([analytics.keywords.<language>])
    word: str  # the phrase heard, as configured
    confidence: float  # 0..1, the spotter's posterior
    offset: float  # seconds from the call's start (offer) to the end of the phrase
    agent_id: str | None = None  # the agent on the call, if any
    queue: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAgitation:
    """A speaker's agitation (arousal from prosody, not emotion) crossed the configured level
    (``agitated`` true), or fell back under the clear level after that (false)."""

    wire: ClassVar[str] = "call.agitation"
    call_id: str
    channel: str  # "caller" or "agent"
    agitated: bool  # true: rose to [analytics] agitation_level; false: fell under agitation_clear
    score: float  # 0..1, the window's score
    level: float  # the level it crossed
    offset: float  # seconds from the call's start to the end of the window
    agent_id: str | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAlert:
    """alert.raised for a supervisor, about one call (a keyword category or agitation)."""

    wire: ClassVar[str] = "alert.raised"
    code: str  # "call.keyword" or "call.agitation"
    message: str  # what a supervisor should know
    value: float  # the confidence (keyword) or score (agitation)
    limit: float  # the level crossed (agitation) or 0
    call_id: str
    category: str  # the keyword's category, or "agitation"
    agent_id: str | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QaReady:
    """A recording's transcript and QA flags are stored (searchable: hotline qa search)."""

    wire: ClassVar[str] = "qa.ready"
    call_id: str
    recording: str  # absolute path of the WAV analysed
    sidecar: str  # absolute path of <call>.qa.json
    sha256: str  # checksum of the sidecar's content (docs/analytics.md)
    language: str
    flags: Mapping[str, Any]  # talk time per channel, silences, overtalk, hold, keywords, missing phrases
    sentiment: Mapping[str, Any]  # score -1..1, label, text score, mean agitation
    words: int  # words transcribed, both channels


@dataclass(frozen=True, slots=True, kw_only=True)
class QaFailed:
    wire: ClassVar[str] = "qa.failed"
    call_id: str
    error: str  # what went wrong, for an operator
