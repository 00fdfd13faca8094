"""Call-level events published by the wiring (the cores publish their own)."""

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
    cause: str  # caller_hangup, agent_hangup, abandoned, ivr_hangup, transferred, ... (docs/cti.md)
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
    kind: str  # "call" (caller left, agent right) or "voicemail" (mono)
    path: str  # absolute path of the WAV
    seconds: float  # duration
    channels: int
    sha256: str  # of the file, hex
    sidecar: str = ""  # absolute path of the JSON sidecar (calls only)
    repaired: bool = False  # true: finished at start-up from what a killed run left (docs/reliability.md)


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
