"""Steps one call through a compiled flow: events and ``now`` in, actions out.

No I/O and no clock. The adapter plays prompts, reports when they finish, feeds
keypresses, and calls :meth:`CallInterpreter.on_timer` at :meth:`next_deadline`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import IvrUsageError
from .flow import (
    MAX_FAILURES,
    Flow,
    GotoNode,
    HangupNode,
    MenuNode,
    Node,
    PlayNode,
    Prompt,
    QueueNode,
    TransferNode,
    VoicemailNode,
)

MAX_STEPS_WITHOUT_INPUT = 64  # a flow that jumps this often without waiting is looping


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


Input = PromptFinished | DigitPressed | AgentConnected


# -------------------------------------------------------------------- actions
@dataclass(frozen=True, slots=True, kw_only=True)
class PlayPrompt:
    prompt: Prompt
    token: int  # echoed back in PromptFinished
    interruptible: bool  # the adapter may stop it on a keypress (the core tells it to)


@dataclass(frozen=True, slots=True, kw_only=True)
class StopPrompt:
    token: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Enqueue:
    queue: str
    priority: int  # higher is served first
    data: Mapping[str, Any]  # screen-pop for the agent


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    to: str  # SIP URI


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRecording:
    kind: str  # "voicemail"


@dataclass(frozen=True, slots=True, kw_only=True)
class HangUp:
    reason: str  # why the flow ended the call


Action = PlayPrompt | StopPrompt | Enqueue | Transfer | StartRecording | HangUp


# ----------------------------------------------------------- published events
@dataclass(frozen=True, slots=True, kw_only=True)
class IvrInput:
    wire: ClassVar[str] = "ivr.input"
    call_id: str
    node: str
    mode: str  # "dtmf"
    input: str  # the key(s) pressed, "" for no input
    result: str  # "match", "no_match" or "no_input"
    attempt: int  # failures at this node so far, this one included when it failed


@dataclass(frozen=True, slots=True, kw_only=True)
class IvrEscalated:
    wire: ClassVar[str] = "ivr.escalated"
    call_id: str
    node: str  # the node that gave up
    to: str  # the node the caller was sent to
    history: tuple[Mapping[str, str], ...]  # what was tried at that node


Event = IvrInput | IvrEscalated
Output = Action | Event


class Phase(enum.StrEnum):
    IDLE = "idle"
    PLAYING = "playing"  # a prompt of the current node is playing
    AWAITING_INPUT = "awaiting_input"
    QUEUED = "queued"  # waiting for an agent; hold prompts loop
    RECORDING = "recording"
    DONE = "done"


@dataclass(slots=True)
class _Visit:
    failures: int = 0
    history: list[dict[str, str]] = field(default_factory=list)


class CallInterpreter:
    """One call's walk through one flow version (a reload never changes it)."""

    def __init__(self, flow: Flow, call_id: str, variables: Mapping[str, Any] | None = None) -> None:
        self.flow = flow
        self.call_id = call_id
        self.variables: dict[str, Any] = dict(variables or {})
        self.path: list[str] = []  # node names in visiting order
        self.inputs: list[dict[str, str]] = []  # every input, for the screen-pop and the record
        self.escalation: dict[str, Any] | None = None
        self.phase = Phase.IDLE
        self.node: Node | None = None
        self._token = 0
        self._playing: int | None = None  # token of the prompt playing now
        self._deadline: float | None = None
        self._visit = _Visit()

    # ---------------------------------------------------------------- driving
    def start(self, now: float) -> list[Output]:
        if self.phase is not Phase.IDLE:
            raise IvrUsageError(f"call {self.call_id} has already started")
        out: list[Output] = []
        self._enter(self.flow.start, now, out)
        return out

    def next_deadline(self) -> float | None:
        return self._deadline

    def on_timer(self, now: float) -> list[Output]:
        out: list[Output] = []
        if self._deadline is None or now < self._deadline:
            return out
        self._deadline = None
        node = self.node
        if self.phase is Phase.AWAITING_INPUT and isinstance(node, MenuNode):
            self._failed(node, "", "no_input", now, out)
        elif self.phase is Phase.RECORDING:
            self._finish(HangUp(reason="voicemail_complete"), out)
        return out

    def handle(self, event: Input, now: float) -> list[Output]:
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
            case AgentConnected():
                if self._playing is not None:
                    out.append(StopPrompt(token=self._playing))
                    self._playing = None
                self._deadline = None
                self.phase = Phase.DONE
            case _:
                raise IvrUsageError(f"not an IVR input: {event!r}")
        return out

    # --------------------------------------------------------------- internals
    def _play(self, prompt: Prompt, interruptible: bool, out: list[Output]) -> None:
        self._token += 1
        self._playing = self._token
        out.append(PlayPrompt(prompt=prompt, token=self._token, interruptible=interruptible))

    def _finish(self, action: Action, out: list[Output]) -> None:
        self.phase = Phase.DONE
        self._deadline = None
        out.append(action)

    def _enter(self, name: str, now: float, out: list[Output]) -> None:
        for _ in range(MAX_STEPS_WITHOUT_INPUT):
            node = self.flow.nodes[name]
            if node is not self.node:
                self._visit = _Visit()  # counts are per visit (VoiceXML)
            self.node = node
            self.path.append(name)
            self._deadline = None
            match node:
                case GotoNode(next=nxt):
                    name = nxt
                    continue
                case PlayNode(prompt=prompt, interruptible=interruptible):
                    self.phase = Phase.PLAYING
                    self._play(prompt, interruptible, out)
                case MenuNode(prompt=prompt, interruptible=interruptible):
                    self.phase = Phase.PLAYING
                    self._play(prompt, interruptible, out)
                case QueueNode():
                    self._enqueue(node, out)
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

    def _enqueue(self, node: QueueNode, out: list[Output]) -> None:
        self.phase = Phase.QUEUED
        data: dict[str, Any] = {
            "caller": self.variables.get("caller", ""),
            "flow": self.flow.name,
            "flow_version": self.flow.version,
            "ivr_path": list(self.path),
            "inputs": [dict(i) for i in self.inputs],
            **node.data,
        }
        if self.escalation is not None:
            data["escalation"] = self.escalation
        out.append(Enqueue(queue=node.queue, priority=node.priority, data=data))
        first = node.announce or node.hold
        if first is not None:
            self._play(first, False, out)

    def _record(self, node: VoicemailNode, now: float, out: list[Output]) -> None:
        self.phase = Phase.RECORDING
        self._deadline = now + node.max_seconds
        out.append(StartRecording(kind="voicemail"))

    def _prompt_done(self, now: float, out: list[Output]) -> None:
        node = self.node
        match node:
            case PlayNode(next=nxt):
                self._enter(nxt, now, out)
            case MenuNode(timeout=timeout):
                self.phase = Phase.AWAITING_INPUT
                self._deadline = now + timeout
            case QueueNode(hold=hold) if self.phase is Phase.QUEUED and hold is not None:
                self._play(hold, False, out)
            case VoicemailNode():
                self._record(node, now, out)
            case HangupNode():
                self._finish(HangUp(reason="flow_end"), out)

    def _digit(self, digit: str, now: float, out: list[Output]) -> None:
        node = self.node
        if not isinstance(node, MenuNode):
            if isinstance(node, PlayNode) and node.interruptible and self._playing is not None:
                out.append(StopPrompt(token=self._playing))
                self._playing = None
                self._enter(node.next, now, out)
                if isinstance(self.node, MenuNode):  # type-ahead: the key answers the menu
                    self._digit(digit, now, out)
            return  # keys outside input nodes are ignored, as callers expect
        if self.phase is Phase.PLAYING:
            if not node.interruptible or self._playing is None:
                return
            out.append(StopPrompt(token=self._playing))
            self._playing = None
        elif self.phase is not Phase.AWAITING_INPUT:
            return
        self._deadline = None
        option = node.options.get(digit)
        if option is None:
            self._failed(node, digit, "no_match", now, out)
            return
        self._record_input(node, digit, "match", out)
        self._enter(option.next, now, out)

    def _record_input(self, node: MenuNode, digit: str, result: str, out: list[Output]) -> None:
        entry = {"node": node.name, "mode": "dtmf", "input": digit, "result": result}
        self.inputs.append(entry)
        if result != "match":
            self._visit.history.append(entry)
        out.append(
            IvrInput(
                call_id=self.call_id,
                node=node.name,
                mode="dtmf",
                input=digit,
                result=result,
                attempt=self._visit.failures,
            )
        )

    def _failed(self, node: MenuNode, digit: str, result: str, now: float, out: list[Output]) -> None:
        """The no-dead-end ladder: clarify, then offer the choices, then a human."""
        self._visit.failures += 1
        self._record_input(node, digit, result, out)
        failures = self._visit.failures
        if failures >= MAX_FAILURES:
            history = tuple(dict(h) for h in self._visit.history)
            self.escalation = {"node": node.name, "reason": result, "history": [dict(h) for h in history]}
            out.append(
                IvrEscalated(call_id=self.call_id, node=node.name, to=node.escalate_to, history=history)
            )
            self._enter(node.escalate_to, now, out)
            return
        self.phase = Phase.PLAYING
        if failures == 1:
            self._play(node.reprompt or node.prompt, node.interruptible, out)
        else:
            self._play(self._choices_prompt(node), node.interruptible, out)

    @staticmethod
    def _choices_prompt(node: MenuNode) -> Prompt:
        """Second failure: say the choices explicitly (at most four)."""
        labelled = [(key, o.label) for key, o in sorted(node.options.items()) if o.label]
        if not labelled:
            return node.reprompt or node.prompt
        said = ". ".join(f"For {label}, press {key}" for key, label in labelled[:4])
        return Prompt(id=None, text=f"{said}.")
