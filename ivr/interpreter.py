"""Steps one call through a compiled flow: events and ``now`` in, actions out.

No I/O and no clock. The adapter plays prompts, reports when they finish, feeds
keypresses, and calls :meth:`CallInterpreter.on_timer` at :meth:`next_deadline`.
``now`` is monotonic seconds; wall-clock time (for `schedule` nodes) is passed
separately as ``wall`` whenever the adapter has it.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import expr as ex
from .errors import IvrUsageError
from .flow import (
    DEFAULT_CALLBACK_PROMPT,
    DEFAULT_POSITION_PROMPT,
    MAX_FAILURES,
    MAX_RATE,
    MIN_RATE,
    VALIDATORS,
    BranchNode,
    CollectNode,
    Flow,
    GotoNode,
    HangupNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    Node,
    PlayNode,
    Prompt,
    QueueNode,
    ResumeNode,
    ReturnNode,
    ScheduleNode,
    SetNode,
    SpeechNode,
    SubflowNode,
    SurveyNode,
    TransferNode,
    VoicemailNode,
)

MAX_STEPS_WITHOUT_INPUT = 64  # a flow that jumps this often without waiting is looping
MAX_SUBFLOW_DEPTH = 8  # subflows calling subflows deeper than this hang up (flow_loop)
MASK = "****"  # what secure digits look like in every event and record
SURVEY_KEYS = "12345"
INTERRUPT_OPTION = "!interrupt"  # grammar value of the flow's spoken interrupt phrases in a Listen
SPEECH_RESULT_GRACE = 3.0  # seconds after the longest utterance within which a result must come
MAX_UTTERANCE = 10.0  # seconds: the adapter's endpointer cuts an utterance off here (config default)


# --------------------------------------------------------------------- inputs
@dataclass(frozen=True, slots=True, kw_only=True)
class PromptFinished:
    token: int  # the token of the PlayPrompt that finished


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitPressed:
    digit: str  # one of 0-9 * #


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConnected:
    """The ACD bridged the caller to an agent: the IVR's part is over."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechStarted:
    """The endpointer heard the caller start speaking (barge-in: an interruptible prompt stops)."""

    token: int  # the Listen this belongs to


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechRecognized:
    """The end of one utterance. ``token`` 0 (a test or a simulator) skips the token check and
    lets the core match menu phrases itself."""

    text: str  # the best text heard ("" for nothing)
    token: int = 0  # the Listen this answers
    status: str = "match"  # match, no_match, no_input, transcript, timeout, error, unavailable
    option: str | None = None  # the grammar value the recognizer chose (status match)
    confidence: float | None = None  # 0..1
    nbest: tuple[tuple[str, float], ...] = ()  # (text, score) best first, for logs and tuning


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupResult:
    request_id: int  # the HttpLookup this answers
    status: int  # HTTP status; 2xx takes `next`, anything else `fallback`
    body: Any  # the decoded JSON response


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupFailed:
    request_id: int  # the HttpLookup this answers
    reason: str  # e.g. "timeout", "connect", "bad_json"


@dataclass(frozen=True, slots=True, kw_only=True)
class VariablesUpdated:
    """The adapter changed variables: ``{"queue.position": 3}`` or ``{"queue": {...}}`` (merged)."""

    values: Mapping[str, Any]


Input = (
    PromptFinished
    | DigitPressed
    | AgentConnected
    | SpeechStarted
    | SpeechRecognized
    | LookupResult
    | LookupFailed
    | VariablesUpdated
)


# -------------------------------------------------------------------- actions
@dataclass(frozen=True, slots=True, kw_only=True)
class PlayPrompt:
    prompt: Prompt  # text already interpolated and chosen for `language`
    token: int  # echoed back in PromptFinished
    interruptible: bool  # the adapter may stop it on a keypress (the core tells it to)
    language: str = ""  # the caller's language: look for the WAV under this language first


@dataclass(frozen=True, slots=True, kw_only=True)
class StopPrompt:
    token: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Listen:
    """Start listening for one utterance: report SpeechStarted (if any) and then exactly one
    SpeechRecognized with this token, unless a StopListening comes first."""

    token: int
    language: str
    grammar: Mapping[str, tuple[str, ...]] | None  # value -> phrases; None = free transcription
    digits: bool = False  # grammar values are digits and the caller may say several in a row
    secure: bool = False  # never log or store what is heard
    barge_in: bool = False  # a prompt is playing that speech may interrupt


@dataclass(frozen=True, slots=True, kw_only=True)
class StopListening:
    token: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Enqueue:
    queue: str
    priority: int  # higher is served first
    data: Mapping[str, Any]  # screen-pop for the agent
    skills: tuple[str, ...] = ()  # extra skills the agent needs, beyond the queue's


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    to: str  # SIP URI


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRecording:
    kind: str  # "voicemail"


@dataclass(frozen=True, slots=True, kw_only=True)
class HangUp:
    reason: str  # why the flow ended the call


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseRecording:
    """Stop writing the call recording: secure digits are about to be entered."""

    reason: str  # "secure_input"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeRecording:
    """Secure entry is over: the call recording may go on."""

    reason: str  # "secure_input"


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLookup:
    """Make an HTTP request; answer with LookupResult or LookupFailed carrying `request_id`."""

    request_id: int
    method: str  # "GET" or "POST"
    url: str
    json: Mapping[str, Any] | None  # request body for POST
    timeout: float  # seconds; the core gives up (fallback) after this anyway
    sensitive: bool = False  # the body holds secure digits: never log it


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestCallback:
    """The caller accepted a callback: take them out of `queue` and call `number` back later."""

    queue: str
    number: str  # the caller's number
    data: Mapping[str, Any]  # the screen-pop the call had


Action = (
    PlayPrompt
    | StopPrompt
    | Listen
    | StopListening
    | Enqueue
    | Transfer
    | StartRecording
    | HangUp
    | PauseRecording
    | ResumeRecording
    | HttpLookup
    | RequestCallback
)


# ----------------------------------------------------------- published events
@dataclass(frozen=True, slots=True, kw_only=True)
class IvrInput:
    wire: ClassVar[str] = "ivr.input"
    call_id: str
    node: str
    mode: str  # "dtmf" or "speech"
    input: str  # the key(s) pressed, "" for no input, "****" when masked
    result: str  # "match", "no_match", "no_input" or "interrupt"
    attempt: int  # failures at this node so far, this one included when it failed
    masked: bool = False  # `input` is masked: secure digits never leave the core
    confidence: float | None = None  # speech only: the recognizer's confidence, 0..1


@dataclass(frozen=True, slots=True, kw_only=True)
class IvrEscalated:
    wire: ClassVar[str] = "ivr.escalated"
    call_id: str
    node: str  # the node that gave up
    to: str  # the node the caller was sent to
    history: tuple[Mapping[str, str], ...]  # what was tried at that node


@dataclass(frozen=True, slots=True, kw_only=True)
class IvrInterrupted:
    wire: ClassVar[str] = "ivr.interrupted"
    call_id: str
    node: str  # the input node where the keyword was heard
    input: str  # the key or the phrase
    reason: str  # the interrupt's configured reason, e.g. "complaint"
    to: str  # the node the caller was sent to


@dataclass(frozen=True, slots=True, kw_only=True)
class SurveyAnswered:
    wire: ClassVar[str] = "ivr.survey_answered"
    call_id: str
    node: str
    question: str
    score: int  # 1-5


Event = IvrInput | IvrEscalated | IvrInterrupted | SurveyAnswered
Output = Action | Event


class Phase(enum.StrEnum):
    IDLE = "idle"
    PLAYING = "playing"  # a prompt of the current node is playing
    AWAITING_INPUT = "awaiting_input"
    QUEUED = "queued"  # waiting for an agent; hold prompts loop
    RECORDING = "recording"
    LOOKUP = "lookup"  # waiting for an HTTP answer
    DONE = "done"


@dataclass(slots=True)
class _Visit:
    failures: int = 0
    history: list[dict[str, str]] = field(default_factory=list)


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = {} if not isinstance(nxt, Mapping) else dict(nxt)
            target[part] = nxt
        target = nxt
    target[path[-1]] = value


def _merge(target: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, Mapping) and isinstance(target.get(key), Mapping):
        merged = dict(target[key])
        for k, v in value.items():
            _merge(merged, str(k), v)
        target[key] = merged
    else:
        target[key] = value


#: how many of the caller's recent contacts the screen-pop carries
POP_RECENT = 5


def _profile_pop(caller: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's profile as the agent sees it in every screen-pop (docs/flows.md)."""
    recent = caller.get("recent")
    pop: dict[str, Any] = {
        "known": bool(caller.get("known")),
        "tier": caller.get("tier"),
        "name": caller.get("name") or "",
        "assisted": bool(caller.get("assisted")),
        "priority_human": bool(caller.get("priority_human")),
        "language": caller.get("language") or "",
        "recent": [dict(r) for r in recent[:POP_RECENT]] if isinstance(recent, list) else [],
    }
    sentiment = caller.get("sentiment")
    if sentiment:  # only when a profile source knows one (a CRM's `sentiment`)
        pop["last_sentiment"] = sentiment
    return pop


class CallInterpreter:
    """One call's walk through one flow version (a reload never changes it)."""

    def __init__(
        self,
        flow: Flow,
        call_id: str,
        variables: Mapping[str, Any] | None = None,
        *,
        flows: Mapping[str, Flow] | None = None,
        wall: dt.datetime | None = None,
    ) -> None:
        self.flow = flow  # the flow running now (a subflow while one is called)
        self.root = flow
        self.flows: Mapping[str, Flow] = flows or {}  # subflows by name
        self.call_id = call_id
        self.variables: dict[str, Any] = {k: v for k, v in flow.variables.items()}
        self.variables.setdefault("language", flow.language)
        self.variables.setdefault("emergency", False)
        self.variables.setdefault("queue", {})
        self.variables.setdefault("call", {"id": call_id})
        self.variables.update(variables or {})
        caller = self.variables.get("caller", "")
        if not isinstance(caller, Mapping):  # `caller` is the number, readable as caller.number
            self.variables["caller"] = {"number": str(caller)}
        self.secrets: dict[str, str] = {}  # secure digits by variable; never in an event
        self.path: list[str] = []  # node names in visiting order ("flow/node" inside subflows)
        self.inputs: list[dict[str, str]] = []  # every input, for the screen-pop and the record
        self.escalation: dict[str, Any] | None = None
        self.interrupt: dict[str, str] | None = None
        self.survey: dict[str, int] = {}  # question -> score, to store with the call
        self.phase = Phase.IDLE
        self.node: Node | None = None
        self._stack: list[tuple[Flow, str]] = []  # (calling flow, node to continue at)
        self._token = 0
        self._playing: int | None = None  # token of the prompt playing now
        self._listening: int | None = None  # token of the Listen in progress
        self._refused = False  # the adapter had no recognizer for this turn: keys only until the next prompt
        self._deadline: float | None = None
        self._visit = _Visit()
        self._digits = ""  # collect: what was typed so far
        self._request = 0  # lookup: id of the request in flight
        self._queue_playlist: list[str] = []  # queue: "announce", "position", "offer" still to say
        self._offered = False  # queue: a callback was offered
        self._priority_boost = 0  # added to the next queue's priority (a resumed caller)
        self._paused = False  # the call recording is paused for secure input
        self._wall: tuple[float, dt.datetime] | None = None
        self._wall_pending = wall

    # ---------------------------------------------------------------- driving
    def start(self, now: float, *, wall: dt.datetime | None = None) -> list[Output]:
        if self.phase is not Phase.IDLE:
            raise IvrUsageError(f"call {self.call_id} has already started")
        self._clock(now, wall or self._wall_pending)
        out: list[Output] = []
        self._enter(self.flow.start, now, out)
        return out

    def jump(self, node: str, now: float) -> list[Output]:
        """Continue the call at ``node`` of the flow it is in (the ACD gave it back, e.g.
        an overflow to a flow node). Whatever plays is stopped; the node is entered fresh."""
        out: list[Output] = []
        if node not in self.flow.nodes:
            self._finish(HangUp(reason="unknown_node"), out)
            return out
        if self._playing is not None:
            out.append(StopPrompt(token=self._playing))
            self._playing = None
        self._deadline = None
        self.node = None
        self._enter(node, now, out)
        return out

    def next_deadline(self) -> float | None:
        return self._deadline

    def on_timer(self, now: float, *, wall: dt.datetime | None = None) -> list[Output]:
        self._clock(now, wall)
        out: list[Output] = []
        if self._deadline is None or now < self._deadline:
            return out
        self._deadline = None
        node = self.node
        if self.phase is Phase.AWAITING_INPUT and isinstance(node, ResumeNode):
            self._enter(node.next, now, out)  # no answer: the normal way in
        elif self.phase is Phase.AWAITING_INPUT:
            if isinstance(node, CollectNode) and self._digits:
                self._collected(node, now, out)  # the inter-digit timeout ends entry
            elif isinstance(node, MenuNode | CollectNode | LanguageNode | SurveyNode | SpeechNode):
                self._failed(node, "", "no_input", now, out, mode="speech" if self._listening else "dtmf")
        elif self.phase is Phase.RECORDING:
            self._finish(HangUp(reason="voicemail_complete"), out)
        elif self.phase is Phase.LOOKUP and isinstance(node, LookupNode):
            self._lookup_done(node, False, "timeout", now, out)
        elif self.phase is Phase.QUEUED and isinstance(node, QueueNode):
            if self._playing is not None:
                out.append(StopPrompt(token=self._playing))
                self._playing = None
            self._queue_playlist = ["position", "offer"]
            self._queue_next(node, out)
            if node.announce_every > 0:
                self._deadline = now + node.announce_every
        return out

    def handle(self, event: Input, now: float, *, wall: dt.datetime | None = None) -> list[Output]:
        self._clock(now, wall)
        out: list[Output] = []
        if self.phase is Phase.DONE:
            return out  # late events after the flow ended are harmless
        match event:
            case PromptFinished(token=token):
                if token == self._playing:
                    self._playing = None
                    self._prompt_done(now, out)
            case DigitPressed(digit=digit):
                self._digit(digit, now, out)
            case SpeechRecognized():
                self._speech(event, now, out)
            case SpeechStarted(token=token):
                self._speech_started(token, now, out)
            case AgentConnected():
                self._stop_listening(out)
                if self._playing is not None:
                    out.append(StopPrompt(token=self._playing))
                    self._playing = None
                self._resume(out)
                self._deadline = None
                self.phase = Phase.DONE
            case LookupResult(request_id=rid, status=status, body=body):
                node = self.node
                if self.phase is Phase.LOOKUP and rid == self._request and isinstance(node, LookupNode):
                    ok = 200 <= status < 300
                    if ok:
                        for var, path in node.result:
                            self.variables[var] = ex.lookup_path(body, path)
                    self._lookup_done(node, ok, "ok" if ok else f"http_{status}", now, out)
            case LookupFailed(request_id=rid, reason=reason):
                node = self.node
                if self.phase is Phase.LOOKUP and rid == self._request and isinstance(node, LookupNode):
                    self._lookup_done(node, False, reason, now, out)
            case VariablesUpdated(values=values):
                for key, value in values.items():
                    parts = str(key).split(".")
                    if len(parts) == 1:
                        _merge(self.variables, parts[0], value)
                    else:
                        _set_path(self.variables, parts, value)
                self._maybe_offer_callback(out)
            case _:
                raise IvrUsageError(f"not an IVR input: {event!r}")
        return out

    # ------------------------------------------------------------------ clock
    def _clock(self, now: float, wall: dt.datetime | None) -> None:
        if wall is not None:
            self._wall = (now, wall)

    def wall_time(self, now: float) -> dt.datetime | None:
        """The caller's local wall-clock time at monotonic ``now``, if the adapter ever gave one."""
        if self._wall is None:
            return None
        ref, wall = self._wall
        return wall + dt.timedelta(seconds=now - ref)

    # --------------------------------------------------------------- internals
    def _language(self) -> str:
        lang = self.variables.get("language")
        return lang if isinstance(lang, str) and lang else self.flow.language

    def _play(self, prompt: Prompt, interruptible: bool, out: list[Output]) -> None:
        self._refused = False
        lang = self._language()
        text = prompt.text_for(lang)
        if text is not None:
            text = ex.render(text, self.variables)
        self._token += 1
        self._playing = self._token
        out.append(
            PlayPrompt(
                prompt=Prompt(id=prompt.id, text=text, rate=prompt.rate or self._call_rate()),
                token=self._token,
                interruptible=interruptible,
                language=lang,
            )
        )

    def _call_rate(self) -> int:
        """The call's TTS rate: the variable `tts_rate` (words per minute), if a flow set one."""
        rate = ex._number(self.variables.get("tts_rate"))
        return int(rate) if rate is not None and MIN_RATE <= rate <= MAX_RATE else 0

    def _resume(self, out: list[Output]) -> None:
        if self._paused:
            self._paused = False
            out.append(ResumeRecording(reason="secure_input"))

    def _finish(self, action: Action, out: list[Output]) -> None:
        self._stop_listening(out)
        self._resume(out)
        self.phase = Phase.DONE
        self._deadline = None
        out.append(action)

    def _node_label(self, name: str) -> str:
        return name if self.flow is self.root else f"{self.flow.name}/{name}"

    def _enter(self, name: str, now: float, out: list[Output]) -> None:
        for _ in range(MAX_STEPS_WITHOUT_INPUT):
            node = self.flow.nodes[name]
            self._stop_listening(out)
            if node is not self.node:
                self._visit = _Visit()  # counts are per visit (VoiceXML)
                self._resume(out)
            self.node = node
            self.path.append(self._node_label(name))
            self._deadline = None
            self._digits = ""
            match node:
                case GotoNode(next=nxt):
                    name = nxt
                    continue
                case SetNode(assign=assign, next=nxt):
                    for var, value in assign:
                        self.variables[var] = ex.evaluate(value, self.variables)
                    name = nxt
                    continue
                case BranchNode(cases=cases, default=default):
                    name = next(
                        (c.next for c in cases if ex.truthy(ex.evaluate(c.condition, self.variables))),
                        default,
                    )
                    continue
                case ScheduleNode():
                    name = node.targets[self._schedule(node, now)][0]
                    continue
                case SubflowNode(flow=sub, next=nxt):
                    called = self.flows.get(sub)
                    if called is None or len(self._stack) >= MAX_SUBFLOW_DEPTH:
                        self._finish(HangUp(reason="unknown_subflow" if called is None else "flow_loop"), out)
                        return
                    self._stack.append((self.flow, nxt))
                    self.flow = called
                    for k, v in called.variables.items():
                        self.variables.setdefault(k, v)
                    name = called.start
                    continue
                case ReturnNode():
                    if not self._stack:
                        self._finish(HangUp(reason="flow_end"), out)
                        return
                    self.flow, name = self._stack.pop()
                    continue
                case PlayNode(prompt=prompt, interruptible=interruptible):
                    self.phase = Phase.PLAYING
                    self._play(prompt, interruptible, out)
                case MenuNode(prompt=prompt, interruptible=interruptible):
                    self.phase = Phase.PLAYING
                    self._play(self._prompt_for(node, prompt), interruptible, out)
                    self._listen_during_prompt(node, out)
                case CollectNode(prompt=prompt, interruptible=interruptible, secure=secure):
                    if secure and not self._paused:
                        self._paused = True
                        out.append(PauseRecording(reason="secure_input"))
                    self.phase = Phase.PLAYING
                    self._play(self._prompt_for(node, prompt), interruptible, out)
                    self._listen_during_prompt(node, out)
                case SpeechNode(prompt=prompt, interruptible=interruptible, secure=secure):
                    if not self._speech_on(node):
                        # no recognizer for this language now (missing model, overload): DTMF path
                        self.inputs.append(
                            {"node": node.name, "mode": "speech", "input": "", "result": "unavailable"}
                        )
                        if node.dtmf_fallback is None:
                            self.escalation = {
                                "node": node.name,
                                "reason": "speech_unavailable",
                                "history": [],
                            }
                        name = node.dtmf_fallback or node.escalate_to
                        continue
                    if secure and not self._paused:
                        self._paused = True
                        out.append(PauseRecording(reason="secure_input"))
                    self.phase = Phase.PLAYING
                    self._play(prompt, interruptible, out)
                    self._listen_during_prompt(node, out)
                case LanguageNode(prompt=prompt, interruptible=interruptible):
                    self.phase = Phase.PLAYING
                    self._play(prompt, interruptible, out)
                case SurveyNode(prompt=prompt, interruptible=interruptible):
                    self.phase = Phase.PLAYING
                    self._play(prompt, interruptible, out)
                case ResumeNode(prompt=prompt, next=nxt):
                    if self._resume_offer() is None:
                        name = nxt  # nothing to resume: straight on, as a goto
                        continue
                    self.phase = Phase.PLAYING
                    self._play(prompt, True, out)
                case LookupNode():
                    self._lookup(node, now, out)
                case QueueNode():
                    self._enqueue(node, now, out)
                case TransferNode(to=to):
                    self._finish(Transfer(to=to), out)
                case VoicemailNode(prompt=prompt):
                    if prompt is None:
                        self._record(node, now, out)
                    else:
                        self.phase = Phase.PLAYING
                        self._play(prompt, False, out)
                case HangupNode(prompt=prompt):
                    if prompt is None:
                        self._finish(HangUp(reason="flow_end"), out)
                    else:
                        self.phase = Phase.PLAYING
                        self._play(prompt, False, out)
            return
        self._finish(HangUp(reason="flow_loop"), out)

    def _schedule(self, node: ScheduleNode, now: float) -> str:
        if ex.truthy(ex.evaluate(node.switch, self.variables)):
            return "emergency"
        wall = self.wall_time(now)
        if wall is None:
            return "closed"  # no clock from the adapter: fail closed rather than queue into the night
        if wall.date() in node.holidays:
            return "holiday"
        minute = wall.hour * 60 + wall.minute
        if any(a <= minute < b for a, b in node.hours[wall.weekday()]):
            return "open"
        return "closed"

    def _lookup(self, node: LookupNode, now: float, out: list[Output]) -> None:
        self.phase = Phase.LOOKUP
        self._request += 1
        env = {**self.variables, "secret": dict(self.secrets)}
        body = {k: ex.evaluate(v, env) for k, v in node.json} if node.json else None
        sensitive = any(v.path[0] == "secret" for _, e in node.json for v in ex.variables(e))
        out.append(
            HttpLookup(
                request_id=self._request,
                method=node.method,
                url=ex.render(node.url, self.variables),
                json=body,
                timeout=node.timeout,
                sensitive=sensitive,
            )
        )
        self._deadline = now + node.timeout

    def _lookup_done(self, node: LookupNode, ok: bool, reason: str, now: float, out: list[Output]) -> None:
        self._deadline = None
        self._request += 1  # a late answer to this request is ignored
        self.variables["lookup"] = {"ok": ok, "reason": reason, "node": node.name}
        self._enter(node.next if ok else node.fallback, now, out)

    def _screen_pop(self, node: QueueNode) -> dict[str, Any]:
        caller = self.variables.get("caller")
        number = caller.get("number", "") if isinstance(caller, Mapping) else str(caller or "")
        data: dict[str, Any] = {
            "caller": number,
            "flow": self.root.name,
            "flow_version": self.root.version,
            "ivr_path": list(self.path),
            "inputs": [dict(i) for i in self.inputs],
            **{k: ex.render(v, self.variables) for k, v in node.data.items()},
        }
        if self.escalation is not None:
            data["escalation"] = self.escalation
        if self.interrupt is not None:
            data["interrupt"] = dict(self.interrupt)
        if isinstance(caller, Mapping) and "tier" in caller:  # a looked-up profile: always shown
            data.setdefault("profile", _profile_pop(caller))
        return data

    def _enqueue(self, node: QueueNode, now: float, out: list[Output]) -> None:
        self.phase = Phase.QUEUED
        self._offered = False
        out.append(
            Enqueue(
                queue=node.queue,
                priority=node.priority + self._priority_boost,
                data=self._screen_pop(node),
                skills=node.skills,
            )
        )
        self._queue_playlist = ["announce", "position", "offer"]
        self._queue_next(node, out)
        if node.announce_every > 0:
            self._deadline = now + node.announce_every

    def _maybe_offer_callback(self, out: list[Output]) -> None:
        """The wait just became long enough: offer the callback now (the hold prompt is
        cut short), not only at the next announcement."""
        node = self.node
        if self.phase is not Phase.QUEUED or not isinstance(node, QueueNode) or self._offered:
            return
        queue = self.variables.get("queue")
        ewt = ex._number(queue.get("ewt")) if isinstance(queue, Mapping) else None
        if node.callback_after is None or ewt is None or ewt < node.callback_after:
            return
        if self._playing is not None:
            out.append(StopPrompt(token=self._playing))
            self._playing = None
        self._queue_playlist = ["offer"]
        self._queue_next(node, out)

    def _queue_next(self, node: QueueNode, out: list[Output]) -> None:
        """Say what is due (announce, position, callback offer), then loop the hold prompt."""
        queue = self.variables.get("queue")
        info: Mapping[str, Any] = queue if isinstance(queue, Mapping) else {}
        while self._queue_playlist:
            item = self._queue_playlist.pop(0)
            if item == "announce" and node.announce is not None:
                self._play(node.announce, False, out)
                return
            if item == "position" and node.announce_every > 0 and info.get("position") is not None:
                self._play(node.position_prompt or DEFAULT_POSITION_PROMPT, False, out)
                return
            if item == "offer" and node.callback_after is not None:
                ewt = ex._number(info.get("ewt"))
                if ewt is not None and ewt >= node.callback_after:
                    self._offered = True
                    prompt = node.callback_prompt or DEFAULT_CALLBACK_PROMPT
                    if prompt is DEFAULT_CALLBACK_PROMPT:
                        prompt = Prompt(
                            id=None, text=f"To be called back instead of waiting, press {node.callback_key}."
                        )
                    self._play(prompt, True, out)
                    return
        if node.hold is not None:
            self._play(node.hold, False, out)

    def _record(self, node: VoicemailNode, now: float, out: list[Output]) -> None:
        self.phase = Phase.RECORDING
        self._deadline = now + node.max_seconds
        out.append(StartRecording(kind="voicemail"))

    def _prompt_done(self, now: float, out: list[Output]) -> None:
        node = self.node
        match node:
            case PlayNode(next=nxt):
                self._enter(nxt, now, out)
            case (
                MenuNode(timeout=timeout)
                | LanguageNode(timeout=timeout)
                | SurveyNode(timeout=timeout)
                | SpeechNode(timeout=timeout)
            ):
                self.phase = Phase.AWAITING_INPUT
                self._deadline = now + timeout
                self._listen_after_prompt(node, out)
            case CollectNode(first_timeout=first, inter_timeout=inter):
                self.phase = Phase.AWAITING_INPUT
                self._deadline = now + (inter if self._digits else first)
                if not self._digits:
                    self._listen_after_prompt(node, out)
            case ResumeNode(timeout=timeout):
                self.phase = Phase.AWAITING_INPUT
                self._deadline = now + timeout
            case QueueNode() if self.phase is Phase.QUEUED:
                deadline = self._deadline
                self._queue_next(node, out)
                self._deadline = deadline
            case VoicemailNode():
                self._record(node, now, out)
            case HangupNode():
                self._finish(HangUp(reason="flow_end"), out)

    # ------------------------------------------------------------------ input
    def _interrupt_for(self, key: str | None, text: str | None) -> tuple[Flow, str, str] | None:
        """(flow, target, reason) of the first interrupt matching the key or the utterance."""
        flows = [self.flow] if self.flow is self.root else [self.flow, self.root]
        for flow in flows:
            for i in flow.interrupts:
                if key is not None and key in i.keys:
                    return flow, i.target, i.reason
                if text is not None and any(p in text.casefold() for p in i.phrases):
                    return flow, i.target, i.reason
        return None

    def _jump(
        self, node: Node, heard: str, mode: str, hit: tuple[Flow, str, str], now: float, out: list[Output]
    ) -> None:
        flow, target, reason = hit
        if self._playing is not None:
            out.append(StopPrompt(token=self._playing))
            self._playing = None
        self._deadline = None
        entry = {"node": node.name, "mode": mode, "input": heard, "result": "interrupt"}
        self.inputs.append(entry)
        out.append(
            IvrInput(
                call_id=self.call_id,
                node=node.name,
                mode=mode,
                input=heard,
                result="interrupt",
                attempt=self._visit.failures,
            )
        )
        self.interrupt = {"node": node.name, "input": heard, "reason": reason}
        out.append(
            IvrInterrupted(call_id=self.call_id, node=node.name, input=heard, reason=reason, to=target)
        )
        while self.flow is not flow and self._stack:
            self.flow, _ = self._stack.pop()
        self._enter(target, now, out)

    def _accepting(self, node: Node) -> bool:
        """Can the node take a key now (stopping its prompt if it is interruptible)?"""
        if self.phase is Phase.AWAITING_INPUT:
            return True
        return (
            self.phase is Phase.PLAYING
            and self._playing is not None
            and bool(getattr(node, "interruptible", False))
        )

    def _stop_for_input(self, out: list[Output]) -> None:
        self._stop_listening(out)
        if self._playing is not None:
            out.append(StopPrompt(token=self._playing))
            self._playing = None
        self._deadline = None

    def _resume_offer(self) -> Mapping[str, Any] | None:
        """caller.resume, when the caller is returning and it points somewhere this call can go."""
        caller = self.variables.get("caller")
        if not isinstance(caller, Mapping) or not caller.get("returning"):
            return None
        offer = caller.get("resume")
        if not isinstance(offer, Mapping):
            return None
        if offer.get("kind") == "node" and offer.get("node") in self.flow.nodes:
            return offer
        if offer.get("kind") == "queue" and any(
            isinstance(n, QueueNode) and n.queue == offer.get("queue") for n in self.flow.nodes.values()
        ):
            return offer
        return None

    def _resume_call(self, node: ResumeNode, digit: str, now: float, out: list[Output]) -> None:
        self._stop_for_input(out)
        offer = self._resume_offer()
        if digit != node.key or offer is None:
            self._enter(node.next, now, out)
            return
        self._record_input(node, digit, "match", out)
        if offer.get("kind") == "node":
            self._enter(str(offer["node"]), now, out)
            return
        target = next(
            n for n in self.flow.nodes.values() if isinstance(n, QueueNode) and n.queue == offer.get("queue")
        )
        # back in line ahead of new callers of the same priority (the ACD ages it from here)
        self._priority_boost = max(0, int(offer.get("priority") or 0) - target.priority) + 1
        self._enter(target.name, now, out)

    def _digit(self, digit: str, now: float, out: list[Output]) -> None:
        node = self.node
        if isinstance(node, ResumeNode):
            if self.phase in (Phase.PLAYING, Phase.AWAITING_INPUT):
                self._resume_call(node, digit, now, out)
            return
        if isinstance(node, QueueNode):
            if self.phase is Phase.QUEUED and self._offered and digit == node.callback_key:
                self._callback(node, digit, now, out)
            return
        if isinstance(node, SpeechNode):
            hit = self._interrupt_for(digit, None) if self._accepting(node) else None
            if hit is not None:
                self._stop_listening(out)
                self._jump(node, digit, "dtmf", hit, now, out)
            return  # a speech node takes no keys; its no-input ladder still ends with a human
        if not isinstance(node, MenuNode | CollectNode | LanguageNode | SurveyNode):
            if isinstance(node, PlayNode) and node.interruptible and self._playing is not None:
                out.append(StopPrompt(token=self._playing))
                self._playing = None
                self._enter(node.next, now, out)
                if isinstance(self.node, MenuNode | CollectNode | LanguageNode | SurveyNode):
                    self._digit(digit, now, out)  # type-ahead: the key answers the input node
            return  # keys outside input nodes are ignored, as callers expect
        if not self._accepting(node):
            return
        own = self._own_keys(node)
        interrupt_ok = not isinstance(node, CollectNode) or (node.interrupts and not self._digits)
        if digit not in own and interrupt_ok:
            hit = self._interrupt_for(digit, None)
            if hit is not None:
                self._jump(node, digit, "dtmf", hit, now, out)
                return
        self._stop_for_input(out)
        match node:
            case MenuNode(options=options):
                option = options.get(digit)
                if option is None:
                    self._failed(node, digit, "no_match", now, out)
                    return
                self._record_input(node, digit, "match", out)
                self._enter(option.next, now, out)
            case LanguageNode(options=options, next=nxt):
                lang = options.get(digit)
                if lang is None:
                    self._failed(node, digit, "no_match", now, out)
                    return
                self._record_input(node, digit, "match", out)
                self.variables["language"] = lang
                self._enter(nxt, now, out)
            case SurveyNode(next=nxt):
                if digit not in SURVEY_KEYS:
                    self._failed(node, digit, "no_match", now, out)
                    return
                self._record_input(node, digit, "match", out)
                score = int(digit)
                self.survey[node.question] = score
                if node.var:
                    self.variables[node.var] = score
                out.append(
                    SurveyAnswered(call_id=self.call_id, node=node.name, question=node.question, score=score)
                )
                self._enter(nxt, now, out)
            case CollectNode():
                if node.terminator and digit == node.terminator:
                    self._collected(node, now, out)
                    return
                self._digits += digit
                if len(self._digits) >= node.max_digits:
                    self._collected(node, now, out)
                    return
                self.phase = Phase.AWAITING_INPUT
                self._deadline = now + node.inter_timeout

    @staticmethod
    def _own_keys(node: Node) -> set[str]:
        match node:
            case MenuNode(options=options):
                return set(options)
            case LanguageNode(options=options):
                return set(options)
            case SurveyNode():
                return set(SURVEY_KEYS)
        return set()

    def _valid(self, node: CollectNode, digits: str) -> bool:
        if not node.min_digits <= len(digits) <= node.max_digits:
            return False
        if node.regex is not None:
            try:
                if re.fullmatch(node.regex, digits) is None:
                    return False
            except re.error:
                return False
        return node.validator is None or VALIDATORS[node.validator](digits)

    def _collected(
        self,
        node: CollectNode,
        now: float,
        out: list[Output],
        *,
        mode: str = "dtmf",
        confidence: float | None = None,
    ) -> None:
        digits, self._digits = self._digits, ""
        self._deadline = None
        if not digits:
            self._failed(node, "", "no_input", now, out, mode=mode)
            return
        if not self._valid(node, digits):
            self._failed(node, digits, "no_match", now, out, mode=mode)
            return
        self._record_input(node, digits, "match", out, mode=mode, confidence=confidence)
        if node.secure:
            self.secrets[node.var] = digits
            self.variables[node.var] = MASK
        else:
            self.variables[node.var] = digits
        self._enter(node.next, now, out)

    def _callback(self, node: QueueNode, digit: str, now: float, out: list[Output]) -> None:
        if self._playing is not None:
            out.append(StopPrompt(token=self._playing))
            self._playing = None
        self._deadline = None
        self._record_input(node, digit, "match", out)
        caller = self.variables.get("caller")
        number = caller.get("number", "") if isinstance(caller, Mapping) else str(caller or "")
        out.append(RequestCallback(queue=node.queue, number=str(number), data=self._screen_pop(node)))
        assert node.callback_next is not None  # the compiler pairs callback_after with callback_next
        self._enter(node.callback_next, now, out)

    # ----------------------------------------------------------------- speech
    def _speech_on(self, node: Node) -> bool:
        """Does this node listen now? It must take speech, and the adapter must have put the
        caller's language in ``speech.languages`` (a loaded model and recognizers to spare)."""
        if not getattr(node, "speech", False):
            return False
        info = self.variables.get("speech")
        langs = info.get("languages") if isinstance(info, Mapping) else None
        return isinstance(langs, list | tuple) and self._language() in langs

    def _prompt_for(self, node: MenuNode | CollectNode, prompt: Prompt) -> Prompt:
        """A node that takes speech may say it ("say or press one"): when speech is off, its
        `dtmf_prompt` (if any) asks for keys only."""
        if node.speech and node.dtmf_prompt is not None and not self._speech_on(node):
            return node.dtmf_prompt
        return prompt

    def _listen_during_prompt(self, node: Node, out: list[Output]) -> None:
        if getattr(node, "interruptible", False) and self._speech_on(node):
            self._listen(node, out, barge_in=True)

    def _listen_after_prompt(self, node: Node, out: list[Output]) -> None:
        if self._listening is None and not self._refused and self._speech_on(node):
            self._listen(node, out, barge_in=False)

    def _listen(self, node: Node, out: list[Output], *, barge_in: bool) -> None:
        self._stop_listening(out)
        grammar: Mapping[str, tuple[str, ...]] | None = None
        digits = secure = False
        match node:
            case MenuNode(options=options):
                grammar = {key: o.phrases for key, o in options.items() if o.phrases}
            case SpeechNode(grammar=g, secure=sec):
                grammar, secure = g, sec
            case CollectNode(secure=sec):
                digits, secure = True, sec
        if grammar is not None and not secure:
            # spoken keyword interrupts must be in the grammar to be heard at all
            said = {p for ps in grammar.values() for p in ps}
            extra = tuple(dict.fromkeys(p for p in self._interrupt_phrases() if p not in said))
            if extra:
                grammar = {**grammar, INTERRUPT_OPTION: extra}
        self._token += 1
        self._listening = self._token
        out.append(
            Listen(
                token=self._token,
                language=self._language(),
                grammar=grammar,
                digits=digits,
                secure=secure,
                barge_in=barge_in,
            )
        )

    def _interrupt_phrases(self) -> list[str]:
        flows = [self.flow] if self.flow is self.root else [self.flow, self.root]
        return [p for flow in flows for i in flow.interrupts for p in i.phrases]

    def _stop_listening(self, out: list[Output]) -> None:
        if self._listening is not None:
            out.append(StopListening(token=self._listening))
            self._listening = None

    def _speech_started(self, token: int, now: float, out: list[Output]) -> None:
        """Barge-in: the caller started talking. An interruptible prompt stops at once, and the
        no-input timer gives way to the utterance (with its own deadline: no dead air)."""
        if token != self._listening or self.node is None:
            return
        if self._playing is not None and getattr(self.node, "interruptible", False):
            out.append(StopPrompt(token=self._playing))
            self._playing = None
        if self._playing is None:
            info = self.variables.get("speech")
            longest = info.get("max_utterance") if isinstance(info, Mapping) else None
            if not isinstance(longest, int | float) or longest <= 0:
                longest = MAX_UTTERANCE
            self.phase = Phase.AWAITING_INPUT
            self._deadline = now + longest + SPEECH_RESULT_GRACE

    def _speech(self, event: SpeechRecognized, now: float, out: list[Output]) -> None:
        node = self.node
        if not isinstance(node, MenuNode | CollectNode | LanguageNode | SurveyNode | SpeechNode):
            return
        if event.token:
            if event.token != self._listening:
                return  # a late answer to a Listen that was stopped
            self._listening = None
        elif not self._accepting(node):
            return
        text, status = event.text, event.status
        if status == "unavailable":
            # no recognizer after all: keys still work, and the no-input timer still runs
            self._refused = True
            if self.phase is Phase.AWAITING_INPUT and self._deadline is not None:
                self._deadline = min(self._deadline, now + getattr(node, "timeout", 5.0))
            return
        secure = isinstance(node, CollectNode | SpeechNode) and node.secure
        if text and not secure:
            hit = self._interrupt_for(None, text)
            if hit is not None:
                self._jump(node, text, "speech", hit, now, out)
                return
        failure = "no_match" if status in ("no_match", "match", "transcript") else "no_input"
        conf = event.confidence
        if isinstance(node, MenuNode):
            option = node.options.get(event.option or "") if status == "match" else None
            if option is None and status == "match" and not event.token and text:
                said = text.casefold()
                option = next(
                    (o for o in node.options.values() if any(p.casefold() in said for p in o.phrases)), None
                )
            self._stop_for_input(out)
            if option is None:
                self._failed(node, text, failure, now, out, mode="speech", confidence=conf)
                return
            self._record_input(node, text, "match", out, mode="speech", confidence=conf)
            self._enter(option.next, now, out)
        elif isinstance(node, CollectNode):
            self._stop_for_input(out)
            self._digits = (event.option or "") if status == "match" else ""
            if not self._digits:
                self._failed(node, text, failure, now, out, mode="speech", confidence=conf)
                return
            self._collected(node, now, out, mode="speech", confidence=conf)
        elif isinstance(node, SpeechNode):
            self._stop_for_input(out)
            if status == "match" and node.grammar is not None and event.option in node.grammar:
                value: str = event.option or ""
            elif status == "transcript" and node.grammar is None and text:
                value = text
            else:
                self._failed(node, text, failure, now, out, mode="speech", confidence=conf)
                return
            self._record_input(node, text, "match", out, mode="speech", confidence=conf)
            if node.secure:
                self.secrets[node.var] = value
                self.variables[node.var] = MASK
            else:
                self.variables[node.var] = value
            self._enter(node.next, now, out)

    def _record_input(
        self,
        node: Node,
        heard: str,
        result: str,
        out: list[Output],
        *,
        mode: str = "dtmf",
        confidence: float | None = None,
    ) -> None:
        masked = isinstance(node, CollectNode | SpeechNode) and node.secure and heard != ""
        shown = MASK if masked else heard
        entry = {"node": node.name, "mode": mode, "input": shown, "result": result}
        if masked:
            entry["masked"] = "true"
        if confidence is not None:
            entry["confidence"] = f"{confidence:.2f}"
        self.inputs.append(entry)
        if result != "match":
            self._visit.history.append(entry)
        out.append(
            IvrInput(
                call_id=self.call_id,
                node=node.name,
                mode=mode,
                input=shown,
                result=result,
                attempt=self._visit.failures,
                masked=masked,
                confidence=None if confidence is None else round(confidence, 3),
            )
        )

    def _failed(
        self,
        node: MenuNode | CollectNode | LanguageNode | SurveyNode | SpeechNode,
        heard: str,
        result: str,
        now: float,
        out: list[Output],
        *,
        mode: str = "dtmf",
        confidence: float | None = None,
    ) -> None:
        """The no-dead-end ladder: clarify, then offer the choices, then a human."""
        self._visit.failures += 1
        self._record_input(node, heard, result, out, mode=mode, confidence=confidence)
        failures = self._visit.failures
        if failures >= MAX_FAILURES:
            if isinstance(node, SurveyNode):  # a survey never sends anyone to a human: move on
                self._enter(node.next, now, out)
                return
            history = tuple(dict(h) for h in self._visit.history)
            self.escalation = {"node": node.name, "reason": result, "history": [dict(h) for h in history]}
            out.append(
                IvrEscalated(call_id=self.call_id, node=node.name, to=node.escalate_to, history=history)
            )
            self._enter(node.escalate_to, now, out)
            return
        self.phase = Phase.PLAYING
        if failures == 1:
            prompt = node.reprompt or node.prompt
            if isinstance(node, MenuNode | CollectNode) and node.reprompt is None:
                prompt = self._prompt_for(node, prompt)
            self._play(prompt, node.interruptible, out)
        else:
            self._play(self._choices_prompt(node), node.interruptible, out)
        self._listen_during_prompt(node, out)

    @staticmethod
    def _choices_prompt(node: MenuNode | CollectNode | LanguageNode | SurveyNode | SpeechNode) -> Prompt:
        """Second failure: say the choices (at most four) or what to enter, explicitly."""
        if isinstance(node, SpeechNode):
            if node.grammar is None:
                return node.reprompt or node.prompt
            words = [phrases[0] for phrases in list(node.grammar.values())[:4]]
            return Prompt(id=None, text="Please say one of: " + ", ".join(words) + ".")
        if isinstance(node, CollectNode):
            if node.help is not None:
                return node.help
            length = (
                f"{node.min_digits}"
                if node.min_digits == node.max_digits
                else f"{node.min_digits} to {node.max_digits}"
            )
            end = ", then press the hash key" if node.terminator == "#" else ""
            return Prompt(id=None, text=f"Please enter {length} digits on your keypad{end}.")
        if isinstance(node, SurveyNode):
            return Prompt(id=None, text="Please press a key from 1, the worst, to 5, the best.")
        if isinstance(node, LanguageNode):
            return node.reprompt or node.prompt
        labelled = [(key, o.label) for key, o in sorted(node.options.items()) if o.label]
        if not labelled:
            return node.reprompt or node.prompt
        said = ". ".join(f"For {label}, press {key}" for key, label in labelled[:4])
        return Prompt(id=None, text=f"{said}.")
