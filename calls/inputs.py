"""What the adapter tells the call controller: SIP happenings, finished jobs, commands.

Each is a frozen dataclass. The adapter turns a pjsua2 callback, a finished async job
(a prompt found, a profile loaded, a recording merged), a CTI command or a timer into
one of these and hands it to :meth:`calls.CallController.handle` with ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import acd
import ivr


# ------------------------------------------------------------------ SIP legs
@dataclass(frozen=True, slots=True, kw_only=True)
class CallArrived:
    """A caller's INVITE: a new call."""

    leg: str  # the endpoint's id of the caller's leg
    call_id: str  # a fresh, unique id for the call (the adapter draws it)
    caller: str  # the caller's number (user part of From), already made safe at the SIP edge
    from_uri: str
    to_uri: str
    sip_call_id: str  # the SIP Call-ID header
    source: str = ""  # "ip:port" the INVITE came from (for logs)


@dataclass(frozen=True, slots=True, kw_only=True)
class LegAnswered:
    leg: str  # the dialog is confirmed (200 OK + ACK)


@dataclass(frozen=True, slots=True, kw_only=True)
class LegMediaReady:
    leg: str  # audio flows; the leg can play, record and bridge


@dataclass(frozen=True, slots=True, kw_only=True)
class LegEnded:
    leg: str
    code: int  # last SIP status code (200 after a BYE, 486 busy, 408 timeout, ...)


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitReceived:
    leg: str
    digit: str  # one of 0-9 * # A-D


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackDone:
    leg: str
    token: int  # the token of the PlayFile that finished


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferDone:
    leg: str
    code: int  # final status of the REFER'd call


# --------------------------------------------------------- finished jobs
@dataclass(frozen=True, slots=True, kw_only=True)
class CallerLoaded:
    """The caller's profile lookup finished (or gave up: ``caller`` then has the number only)."""

    call_id: str
    caller: Mapping[str, Any]  # the flow's `caller` variable


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptResolved:
    """A prompt of a ResolvePrompt was found (a recorded WAV, a synthesized one, or a tone)."""

    call_id: str
    token: int
    wav: Path
    source: str = "recorded"  # "recorded", "tts" or "tone"


@dataclass(frozen=True, slots=True, kw_only=True)
class Heard:
    """The call's ear reports speech for a Listen."""

    call_id: str
    event: ivr.SpeechStarted | ivr.SpeechRecognized


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupDone:
    call_id: str
    reply: ivr.LookupResult | ivr.LookupFailed


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingMerged:
    """A MergeRecording or MeasureVoicemail job finished (``error`` set when it failed)."""

    call_id: str
    kind: str  # "call" or "voicemail"
    path: str = ""  # absolute path of the WAV
    seconds: float = 0.0  # its length
    channels: int = 0
    sha256: str = ""  # of the file, hex
    sidecar: str = ""  # absolute path of the JSON sidecar ("" for voicemail)
    error: str = ""  # why it failed, for an operator
    repaired: bool = False  # rebuilt from the parts a killed process left


@dataclass(frozen=True, slots=True, kw_only=True)
class EffectFailed:
    """Running an effect raised (the leg was gone, a file could not be opened, ...)."""

    effect: Any  # the effect that failed
    error: str  # what went wrong


# --------------------------------------------------------------- server
@dataclass(frozen=True, slots=True, kw_only=True)
class FlowsChanged:
    """A valid edit of flows/: new calls use it; calls in progress keep their version."""

    flows: Mapping[str, ivr.Flow]
    main: str  # the name of the flow that answers new calls


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechChanged:
    """The languages with a working recognizer changed (a model loaded, overload)."""

    languages: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreCallbacks:
    """Callbacks saved by an earlier run, to put back in line at start-up."""

    records: tuple[acd.CallbackRecord, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown:
    """The server stops: every call ends with cause ``shutdown``; statistics are saved."""


# --------------------------------------------------------------- commands
@dataclass(frozen=True, slots=True, kw_only=True)
class AgentCommand:
    """An agent login, ready, not-ready, logout (CTI, autologin, the registrar)."""

    event: acd.events.Input


@dataclass(frozen=True, slots=True, kw_only=True)
class EndWrapUp:
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerCall:
    call_id: str  # a ringing incoming call (with [sip] auto_answer = false)


@dataclass(frozen=True, slots=True, kw_only=True)
class HangUpCall:
    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldCall:
    call_id: str
    hold: bool  # true: hold; false: retrieve


@dataclass(frozen=True, slots=True, kw_only=True)
class BlindTransfer:
    call_id: str
    to: str  # SIP URI


@dataclass(frozen=True, slots=True, kw_only=True)
class Requeue:
    call_id: str
    queue: str
    priority: int = 0  # higher is served first


@dataclass(frozen=True, slots=True, kw_only=True)
class SetVariables:
    call_id: str
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlRecording:
    call_id: str
    action: str  # start, pause, resume or stop


@dataclass(frozen=True, slots=True, kw_only=True)
class SetPriority:
    call_id: str
    priority: int  # higher is served first


@dataclass(frozen=True, slots=True, kw_only=True)
class Assist:
    """The agent hands the caller to a flow (identity check, card entry) and waits on hold."""

    call_id: str
    flow: str  # the name of a flow in flows/


@dataclass(frozen=True, slots=True, kw_only=True)
class MakeCall:
    """Click-to-dial, already allowed by the outbound guard: ring the agent, then dial `to`."""

    call_id: str  # a fresh, unique id (the adapter draws it)
    agent_id: str
    to: str  # the number or SIP URI to dial
    purpose: str  # "service" or "marketing"


@dataclass(frozen=True, slots=True, kw_only=True)
class SetEmergency:
    on: bool  # true: closed for an emergency (flows read it as `emergency`)


# ---------------------------------------------------------- the floor (calls/floor.py)
@dataclass(frozen=True, slots=True, kw_only=True)
class Monitor:
    """A supervisor listens to (whispers to, barges into) an agent's call: their phone is rung."""

    call_id: str
    supervisor: str  # an agent id (rung at its configured or login contact) or a SIP URI
    mode: str  # listen, whisper or barge
    by: str = ""  # who asked (the CTI token's name), for the audit log


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorMode:
    call_id: str
    mode: str  # listen, whisper or barge
    by: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorStop:
    call_id: str
    by: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Consult:
    """Attended transfer, first step: the caller is held, the agent calls ``to``."""

    call_id: str
    to: str  # an agent id, a queue name (an agent of it available now) or a SIP URI
    agent_id: str | None = None  # the agent asking (checked against the call), None = any (control)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferComplete:
    call_id: str  # the agent leaves; the caller talks to the consulted colleague
    agent_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsultCancel:
    call_id: str  # the colleague is dropped; the agent takes the caller back
    agent_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Conference:
    call_id: str  # caller, agent and the consulted colleague all hear each other
    agent_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetDisposition:
    """A wrap-up code for the agent's call, while talking or in wrap-up."""

    agent_id: str
    code: str  # one of the queue's `dispositions` (else [acd] dispositions)
    call_id: str | None = None  # None: the agent's current call, else the one it wraps up
    note: str = ""  # free text for the record (at most 500 characters)


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishStats:
    """Time to publish queue.stats (every [stats] publish_every seconds)."""


# ------------------------------------------------------ voice of the customer
@dataclass(frozen=True, slots=True, kw_only=True)
class KeywordHeard:
    """A cue worker spotted a configured phrase on a tapped leg."""

    call_id: str
    channel: str  # "caller" or "agent"
    phrase: str  # the configured phrase heard
    category: str  # its category (complaint, regulator, fraud, ...)
    confidence: float  # 0..1, the spotter's posterior
    at: float  # monotonic seconds: the end of the phrase
    start: float  # monotonic seconds: its start
    latency: float = 0.0  # seconds from the end of the phrase to the report


@dataclass(frozen=True, slots=True, kw_only=True)
class AgitationMeasured:
    """A cue worker scored a few seconds of a tapped leg (against the speaker's baseline)."""

    call_id: str
    channel: str
    score: float  # 0..1
    at: float  # monotonic seconds: end of the window
    start: float  # monotonic seconds: start of the window


@dataclass(frozen=True, slots=True, kw_only=True)
class CuesFailed:
    call_id: str
    error: str  # why the live cues of this call stopped (for an operator)


@dataclass(frozen=True, slots=True, kw_only=True)
class QaDone:
    """An AnalyzeRecording job finished (``error`` set when it failed)."""

    call_id: str
    number: str  # the caller's number
    wav: str = ""  # the recording analysed
    sidecar: str = ""  # the <call>.qa.json written
    sha256: str = ""  # checksum of that sidecar's content
    language: str = ""
    flags: Mapping[str, Any] | None = None  # the QA flags (docs/analytics.md)
    sentiment: Mapping[str, Any] | None = None  # score, label, text, agitation
    words: int = 0  # words transcribed (both channels)
    error: str = ""
    wall: float = 0.0  # epoch seconds the job finished


Input = (
    CallArrived
    | LegAnswered
    | LegMediaReady
    | LegEnded
    | DigitReceived
    | PlaybackDone
    | TransferDone
    | CallerLoaded
    | PromptResolved
    | Heard
    | LookupDone
    | RecordingMerged
    | EffectFailed
    | FlowsChanged
    | SpeechChanged
    | RestoreCallbacks
    | Shutdown
    | AgentCommand
    | EndWrapUp
    | AnswerCall
    | HangUpCall
    | HoldCall
    | BlindTransfer
    | Requeue
    | SetVariables
    | ControlRecording
    | SetPriority
    | Assist
    | MakeCall
    | SetEmergency
    | PublishStats
    | Monitor
    | MonitorMode
    | MonitorStop
    | Consult
    | TransferComplete
    | ConsultCancel
    | Conference
    | SetDisposition
    | KeywordHeard
    | AgitationMeasured
    | CuesFailed
    | QaDone
)
