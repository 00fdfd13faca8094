"""What the call controller asks the adapter to do: imperative, plain data.

The adapter runs each effect in order and decides nothing. What an effect produces
later (a prompt found, a profile loaded, a recording merged, a failure) comes back
as a new input through the same door (:mod:`calls.inputs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ivr


# ------------------------------------------------------------------- legs
@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    leg: str
    code: int = 200  # 200 answers; 180 rings (the call waits for CTI call.answer)


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup:
    leg: str
    code: int = 0  # 0: BYE (or CANCEL); else the final status for an unanswered INVITE


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial:
    leg: str  # the id the new leg gets (its events carry it)
    uri: str  # SIP URI to call
    headers: Mapping[str, str] = field(default_factory=dict)  # extra SIP headers (X-Hotline-...)
    media: str = "none"  # an agent's media encryption: none, optional or srtp
    trunk: str = ""  # a customer dialled out through this configured trunk ("" = none)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bridge:
    a: str  # leg ids: audio flows both ways
    b: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbridge:
    a: str  # leg ids: stop the audio both ways (the legs stay up)
    b: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Transmit:
    """One direction only: ``src``'s audio is heard on ``dst`` (supervisor listen/whisper/barge)."""

    src: str  # leg ids
    dst: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StopTransmit:
    src: str  # leg ids: stop the one direction src -> dst (both legs stay up)
    dst: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MixRecording:
    """Mix ``src``'s audio into the recorders of ``into`` (a barging supervisor, a conferenced
    colleague on the agent channel); also into recorders ``into`` gets later (a new segment)."""

    src: str  # leg ids
    into: str
    on: bool  # false: stop mixing


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    leg: str  # re-INVITE the far end with a=sendonly


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrieve:
    leg: str  # take the far end off hold


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    leg: str  # blind transfer (REFER); TransferDone follows
    uri: str


# ------------------------------------------------------------------ media
@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvePrompt:
    """Find the prompt's WAV (recorded, else synthesized, else a tone): PromptResolved follows."""

    call_id: str
    token: int
    prompt: ivr.Prompt
    language: str = ""  # look under <dir>/<language>/ first


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayFile:
    call_id: str
    leg: str
    wav: Path
    token: int  # PlaybackDone(token) follows after the file's length (not with loop)
    loop: bool = False  # play until stopped or replaced
    source: str = "recorded"  # where the WAV came from: "recorded", "tts" or "tone" (for metrics)


@dataclass(frozen=True, slots=True, kw_only=True)
class StopPlay:
    call_id: str
    leg: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """Start one mono recorder per (leg, file), all on the same bridge tick."""

    call_id: str
    sources: tuple[tuple[str, Path], ...]
    kind: str = "call"  # "call" or "voicemail"
    paused: bool = False  # start paused (secure input is going on)


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseRecording:
    legs: tuple[str, ...]  # stop (or resume) feeding these legs' recorders
    paused: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StopRecording:
    leg: str  # close recorders on the leg (the files are complete) ...
    paths: tuple[Path, ...] = ()  # ... those writing these files; () = every one


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeRecording:
    """Merge the two mono parts into the stereo file, write the sidecar: RecordingMerged follows."""

    call_id: str
    caller_part: Path  # left
    agent_part: Path  # right
    final: Path
    sidecar: Mapping[str, Any]  # the JSON written next to the WAV (seconds, sha256 are added)


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasureVoicemail:
    call_id: str
    path: Path  # the finished mono recording: RecordingMerged(kind=kind) follows
    kind: str = "voicemail"  # "voicemail" or "whole_call"


@dataclass(frozen=True, slots=True, kw_only=True)
class Listen:
    """Open (or reuse) the call's ear and serve one Listen: Heard inputs follow."""

    call_id: str
    leg: str
    request: ivr.Listen


@dataclass(frozen=True, slots=True, kw_only=True)
class StopListening:
    call_id: str
    token: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseEar:
    call_id: str  # the call's ear is no longer needed (the IVR is over)


# ------------------------------------------------------------------- jobs
@dataclass(frozen=True, slots=True, kw_only=True)
class LoadCaller:
    """Look up the caller's profile and recent contacts: CallerLoaded follows."""

    call_id: str
    number: str
    wall: float  # epoch seconds of the call's start
    flows: Mapping[str, ivr.Flow]  # the flows a resume offer may point into


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    call_id: str
    request: ivr.HttpLookup  # LookupDone follows


# ---------------------------------------------------------------- records
@dataclass(frozen=True, slots=True, kw_only=True)
class Publish:
    event: Any  # an event dataclass with a `wire` name: to the outbox, CTI clients and MQTT


@dataclass(frozen=True, slots=True, kw_only=True)
class InsertCall:
    call_id: str
    fields: Mapping[str, Any]  # columns of the call record


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateCall:
    call_id: str
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveCallbacks:
    records: tuple[Mapping[str, Any], ...]  # every pending callback (replaces what was saved)


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveIntervals:
    queue_rows: tuple[Mapping[str, Any], ...]  # closed statistics intervals, per queue
    agent_rows: tuple[Mapping[str, Any], ...]  # ... and per agent


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordContact:
    """Add the finished call to the caller's recent contacts (profiles, resume offers)."""

    number: str
    call_id: str
    ended_wall: float  # epoch seconds
    last_node: str | None
    queue: str | None
    agent_id: str | None
    cause: str
    flow: str
    flow_version: str
    priority: int | None
    waited_seconds: float
    agent_connected: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Audit:
    """Append a row to the hash-chained audit log (supervisor monitoring sessions)."""

    action: str  # e.g. supervisor.monitor
    who: str  # the CTI token's name that asked (never a secret)
    what: str  # the subject: a call id
    result: str  # started, changed, ended, failed
    fields: Mapping[str, Any] = field(default_factory=dict)  # JSON values


@dataclass(frozen=True, slots=True, kw_only=True)
class Log:
    call_id: str
    event: str  # the log event name
    level: str = "info"  # debug, info, warning, error
    fields: Mapping[str, Any] = field(default_factory=dict)


# ------------------------------------------------------ voice of the customer
@dataclass(frozen=True, slots=True, kw_only=True)
class StartCues:
    """Tap these legs for live cues (keywords, agitation): a tmpfs recorder per leg, tailed by a
    cue worker process. Idempotent per channel. KeywordHeard / AgitationMeasured follow."""

    call_id: str
    taps: tuple[tuple[str, str], ...]  # (channel, leg): channel "caller" or "agent"
    language: str  # picks the recognizer and the keyword lists ([analytics.recognizers])
    paused: bool = False  # start paused (a secure step is going on)


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseCues:
    call_id: str
    paused: bool  # true: the taps hear nothing (secure step, recording paused); false: again


@dataclass(frozen=True, slots=True, kw_only=True)
class StopCues:
    call_id: str
    channels: tuple[str, ...] = ()  # () = every tap of the call


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyzeRecording:
    """Transcribe and score a finished recording in the QA pool: QaDone follows."""

    call_id: str
    wav: Path  # the stereo recording (caller left, agent right)
    sidecar: Path  # its JSON sidecar (gaps, start time)
    number: str  # the caller's number (unmasked: the profile keeps the sentiment)
    language: str  # the call's language: picks the recognizer
    queue: str | None
    agent_id: str | None
    cues: tuple[Mapping[str, Any], ...] = ()  # live cues heard on the call
    holds: tuple[tuple[float, float], ...] = ()  # (start, end) seconds into the recording on hold


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordSentiment:
    """Keep the call's sentiment in the caller's profile (the last N per number)."""

    number: str
    call_id: str
    wall: float  # epoch seconds
    score: float  # -1 (negative) .. 1 (positive)
    label: str  # negative, neutral, positive


Effect = (
    Answer
    | Hangup
    | Dial
    | Bridge
    | Unbridge
    | Transmit
    | StopTransmit
    | MixRecording
    | Hold
    | Retrieve
    | Transfer
    | ResolvePrompt
    | PlayFile
    | StopPlay
    | Record
    | PauseRecording
    | StopRecording
    | MergeRecording
    | MeasureVoicemail
    | Listen
    | StopListening
    | CloseEar
    | LoadCaller
    | HttpRequest
    | Publish
    | InsertCall
    | UpdateCall
    | SaveCallbacks
    | SaveIntervals
    | RecordContact
    | Audit
    | Log
    | StartCues
    | PauseCues
    | StopCues
    | AnalyzeRecording
    | RecordSentiment
)
