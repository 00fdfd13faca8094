"""A fake telephony around the pure call controller, on a fake clock.

The rig plays the adapter's part the way the real one does: it answers what the
controller asks (prompts found, playback finished after one second, a hung-up leg
ending, a profile loaded, a recording merged) by feeding inputs back, in time order.
Tests drive the callers and agents (digits, answers, hang-ups) and read the effects
and published events.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import acd
import calls
import ivr
from calls import effects as fx
from calls import inputs as inp

WALL0 = 1_800_000_000.0  # epoch seconds at fake-clock 0 (a Friday, 2027-01-15 08:00 UTC)

MAIN = """
flow: main
start: menu
nodes:
  menu:
    type: menu
    prompt: {text: "For sales press 1, for support press 2, for a message press 3."}
    options:
      "1": {next: sales}
      "2": {next: support}
      "3": {next: message}
      "4": {next: card}
    timeout: 5
    escalate_to: sales
  sales:
    type: queue
    queue: sales
    hold: {text: "Please hold."}
    after_agent: survey
  support: {type: queue, queue: support, hold: {text: "Please hold."}}
  message: {type: voicemail, max_seconds: 30, prompt: {text: "Speak after the tone."}}
  card:
    type: collect
    prompt: {text: "Card number and hash."}
    var: card
    min_digits: 4
    max_digits: 8
    secure: true
    next: sales
    escalate_to: sales
  survey:
    type: survey
    prompt: {text: "Rate us from 1 to 5."}
    question: satisfaction
    next: bye
  bye: {type: hangup, prompt: {text: "Goodbye."}}
"""

VERIFY = """
flow: verify
start: pin
nodes:
  pin:
    type: collect
    prompt: {text: "Enter your PIN and hash."}
    var: pin
    min_digits: 4
    max_digits: 4
    secure: true
    next: done
    escalate_to: done
  done: {type: return}
"""


def compile_flows(*texts: str) -> dict[str, ivr.Flow]:
    sources = {f"{i}.yaml": t for i, t in enumerate(texts)}
    flows, diagnostics = ivr.compile_flow_set(sources, known_queues=["sales", "support", "operator"])
    errors = [str(d) for d in diagnostics if d.severity == "error"]
    assert not errors, errors
    return flows


def queues(**overrides: Any) -> list[acd.QueueSpec]:
    base = dict(ring_timeout=10.0, wrap_up=2.0, retry_delay=1.0)
    return [
        acd.QueueSpec(name="sales", skills=("sales",), **{**base, **overrides.get("sales", {})}),
        acd.QueueSpec(name="support", skills=("support",), **{**base, **overrides.get("support", {})}),
        acd.QueueSpec(name="operator", skills=(), **base),
    ]


def agents(*ids: str) -> list[acd.AgentSpec]:
    return [acd.AgentSpec(id=a, name=a, skills=("sales", "support"), contact=f"sip:{a}@agents") for a in ids]


@dataclass
class CallRig:
    flows: dict[str, ivr.Flow] = field(default_factory=lambda: compile_flows(MAIN, VERIFY))
    queue_specs: list[acd.QueueSpec] = field(default_factory=queues)
    agent_specs: list[acd.AgentSpec] = field(default_factory=lambda: agents("a1", "a2"))
    config: dict[str, Any] = field(default_factory=dict)
    now: float = 0.0
    play_seconds: float = 1.0  # every prompt lasts this long
    auto_answer_agents: bool = False  # agent legs answer at once when dialled
    resolve_seconds: float = 0.02  # a prompt is found (or synthesized) this long after it is asked for

    def __post_init__(self) -> None:
        self.router = acd.build_router(self.queue_specs, self.agent_specs)
        self.stats = acd.build_statistics(self.queue_specs, self.agent_specs, acd.StatsConfig(), now=WALL0)
        cfg = calls.ControllerConfig(recordings=Path("/rec"), **self.config)
        self.ctl = calls.build_controller(
            cfg, self.router, self.stats, self.flows, "main", now=0.0, wall=WALL0
        )
        self.batches: list[list[fx.Effect]] = []  # every effect batch, in order
        self.up: set[str] = set()  # legs that are up (dialled or arrived, not ended)
        self.playing: dict[str, int] = {}  # leg -> token playing (not looping)
        self.recording: dict[str, bool] = {}  # leg -> paused?
        self._pending: list[tuple[float, int, inp.Input]] = []
        self._seq = itertools.count()
        self._legs = itertools.count(1)

    # ------------------------------------------------------------- reading
    @property
    def effects(self) -> list[fx.Effect]:
        return [e for b in self.batches for e in b]

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.effects if isinstance(e, kind)]

    def published(self, wire: str | None = None) -> list[Any]:
        events = [e.event for e in self.of(fx.Publish)]
        return [e for e in events if wire is None or getattr(e, "wire", None) == wire]

    def wires(self) -> list[str]:
        return [e.wire for e in self.published()]

    def dials(self) -> list[fx.Dial]:
        return self.of(fx.Dial)

    def call(self, call_id: str) -> calls.Call:
        return self.ctl.calls[call_id]

    # ------------------------------------------------------------- driving
    def feed(self, event: inp.Input) -> list[fx.Effect]:
        out = self.ctl.handle(event, self.now, WALL0 + self.now)
        self._took(out)
        return out

    def _took(self, out: list[fx.Effect]) -> None:
        self.batches.append(out)
        for e in out:
            self._react(e)

    def later(self, seconds: float, event: inp.Input) -> None:
        heapq.heappush(self._pending, (self.now + seconds, next(self._seq), event))

    def _react(self, e: fx.Effect) -> None:
        match e:
            case fx.Answer(leg=leg, code=200):
                self.later(0, inp.LegAnswered(leg=leg))
                self.later(0, inp.LegMediaReady(leg=leg))
            case fx.Hangup(leg=leg):
                if leg in self.up:
                    self.up.discard(leg)
                    self.later(0, inp.LegEnded(leg=leg, code=200))
            case fx.Dial(leg=leg):
                self.up.add(leg)
                if self.auto_answer_agents and "@agents" in e.uri:
                    self.answer(leg)
            case fx.ResolvePrompt(call_id=cid, token=token):
                resolved = inp.PromptResolved(call_id=cid, token=token, wav=Path(f"/p/{token}.wav"))
                self.later(self.resolve_seconds, resolved)
            case fx.PlayFile(leg=leg, token=token, loop=loop):
                self.playing.pop(leg, None)
                if not loop:
                    self.playing[leg] = token
                    self.later(self.play_seconds, _Done(leg=leg, token=token))
            case fx.StopPlay(leg=leg):
                self.playing.pop(leg, None)
            case fx.Record(sources=sources, paused=paused):
                for leg, _ in sources:
                    self.recording[leg] = paused
            case fx.PauseRecording(legs=legs, paused=paused):
                for leg in legs:
                    if leg in self.recording:
                        self.recording[leg] = paused
            case fx.StopRecording(leg=leg):
                self.recording.pop(leg, None)
            case fx.LoadCaller(call_id=cid, number=number):
                self.later(0, inp.CallerLoaded(call_id=cid, caller={"number": number}))
            case fx.MergeRecording(call_id=cid, final=final):
                self.later(
                    0.5,
                    inp.RecordingMerged(
                        call_id=cid,
                        kind="call",
                        path=str(final),
                        seconds=1.0,
                        channels=2,
                        sha256="0" * 64,
                        sidecar=str(final) + ".json",
                    ),
                )
            case fx.MeasureVoicemail(call_id=cid, path=path, kind=kind):
                self.later(
                    0.5,
                    inp.RecordingMerged(
                        call_id=cid,
                        kind=kind,
                        path=str(path),
                        seconds=1.0,
                        channels=1,
                        sha256="0" * 64,
                    ),
                )
            case fx.Transfer(leg=leg):
                self.later(0.5, inp.TransferDone(leg=leg, code=200))

    def advance(self, seconds: float = 0.0) -> None:
        """Let fake time pass: pending replies and the controller's timers fire in order."""
        end = self.now + seconds
        while True:
            deadline = self.ctl.next_deadline()
            pending = self._pending[0][0] if self._pending else None
            nxt = min(t for t in (deadline, pending) if t is not None) if (deadline or pending) else None
            if nxt is None or nxt > end:
                break
            self.now = max(self.now, nxt)
            if pending is not None and pending <= self.now:
                _, _, event = heapq.heappop(self._pending)
                if isinstance(event, _Done):
                    if self.playing.get(event.leg) != event.token:
                        continue  # stopped or replaced meanwhile
                    del self.playing[event.leg]
                    event = inp.PlaybackDone(leg=event.leg, token=event.token)
                if isinstance(event, inp.LegEnded):
                    self.up.discard(event.leg)
                self.feed(event)
            else:
                self._took(self.ctl.on_timer(self.now, WALL0 + self.now))
        self.now = end

    # -------------------------------------------------------------- people
    def arrive(self, call_id: str = "c1", caller: str = "5551234", settle: float = 0.0) -> str:
        leg = f"in{next(self._legs)}"
        self.up.add(leg)
        self.feed(
            inp.CallArrived(
                leg=leg,
                call_id=call_id,
                caller=caller,
                from_uri=f"sip:{caller}@x",
                to_uri="sip:hotline@x",
                sip_call_id=f"sip-{call_id}",
            )
        )
        self.advance(settle)
        return leg

    def press(self, leg: str, digits: str, gap: float = 0.1) -> None:
        for d in digits:
            self.feed(inp.DigitReceived(leg=leg, digit=d))
            self.advance(gap)

    def answer(self, leg: str) -> None:
        """The far end of a dialled leg answers (agent, customer)."""
        self.later(0, inp.LegAnswered(leg=leg))
        self.later(0, inp.LegMediaReady(leg=leg))

    def hang_up(self, leg: str, code: int = 200) -> None:
        """The far end hangs up (or a dialled leg fails with ``code``)."""
        if leg in self.up:
            self.up.discard(leg)
            self.feed(inp.LegEnded(leg=leg, code=code))

    def ready(self, *agent_ids: str) -> None:
        for a in agent_ids:
            self.feed(inp.AgentCommand(event=acd.events.AgentLoggedIn(agent_id=a)))
            self.feed(inp.AgentCommand(event=acd.events.AgentBecameReady(agent_id=a)))

    def agent_legs(self, agent_id: str) -> list[str]:
        return [d.leg for d in self.dials() if d.uri == f"sip:{agent_id}@agents"]

    def ended(self) -> list[Any]:
        return self.published("call.ended")

    def legs_of(self, call_id: str) -> set[str]:
        """Every leg dialled for the call (agents, customers)."""
        return {d.leg for d in self.dials() if d.headers.get("X-Hotline-Call-Id") == call_id}


@dataclass(frozen=True)
class _Done:
    leg: str
    token: int


def wires_of(events: Iterable[Any]) -> list[str]:
    return [e.wire for e in events]
