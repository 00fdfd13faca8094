"""The call controller: the life of every call, joining the IVR interpreter and the ACD router.

A pure core. :meth:`CallController.handle` takes one input (a SIP happening, a finished job,
a command) with ``now`` (monotonic seconds) and ``wall`` (epoch seconds) and returns the
effects to run, in order. :meth:`CallController.next_deadline` says when to call
:meth:`CallController.on_timer`. Nothing here reads a clock, opens a file or a socket.

The interpreters and the router feed each other through one work queue inside the core:
an IVR output that needs the router (enqueue, callback) and a router output that needs an
interpreter (bridge, overflow, a new place in line) become work items, run in order until
the queue is empty. Nothing recurses and nothing is deferred to the adapter.
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import acd
import ivr

from . import effects as fx
from . import events as ev
from . import inputs as inp
from .call import AgentLeg, Call
from .cues import CueMixin, CuePolicy
from .errors import CallUsageError, IllegalCallTransition
from .floor import FloorMixin
from .phases import IN_FLOW, LIVE, TRANSITIONS, CallPhase, CallTrigger
from .servicecode import ServiceCodes, speakable
from .wholecall import finish_whole_call, start_whole_call

P, T = CallPhase, CallTrigger

#: SIP final codes on a leg we dialled -> the cause reported (agent.offer_failed, callback.failed)
RING_CAUSES = {
    486: "busy",
    600: "busy",
    603: "declined",
    480: "unavailable",
    404: "not_found",
    408: "no_answer",
}

#: variables every call has; an assist flow's result leaves them out
BUILTIN_VARIABLES = frozenset({"caller", "call", "speech", "queue", "emergency", "language", "lookup"})
CALLBACK_GOODBYE = "All our agents are busy. We will call you back."
HOLD_PROMPT = ivr.Prompt(id="pls-hold-while-try", text="Please hold.")


def mask_number(number: str, how: str) -> str:
    """Caller numbers for downstream systems: "none" keeps it, "last4" keeps the last
    four digits, "all" hides it."""
    if how == "none" or not number:
        return number
    if how == "last4" and len(number) > 4:
        return "*" * (len(number) - 4) + number[-4:]
    return "*" * len(number)


def iso_utc(wall: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds, as on the wire."""
    return dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerConfig:
    """What the controller needs to know of the configuration. Durations are seconds."""

    recordings: Path  # call recordings (parts under .parts/) and voicemail
    whole_call: bool = False  # record each caller from answer to hang-up as well (calls/wholecall.py)
    auto_answer: bool = True  # answer at once; false = ring (180) until CTI call.answer
    caller_mask: str = "none"  # caller numbers in summaries and sidecars: none, last4, all
    # how a customer number is dialled (callbacks, click-to-dial); a SIP URI is dialled as it is
    dial_uri: str = "sip:{number}@127.0.0.1:5080"
    dial_trunk: str = ""  # the configured trunk customers are dialled through ("" = none)
    agent_media: Mapping[str, str] = field(default_factory=dict)  # agent id -> none, optional, srtp
    speech: bool = False  # a recognizer service exists; without one every Listen is "unavailable"
    max_utterance: float = 10.0  # seconds: the ear cuts an answer off here (flows read it)
    preferred_seconds: Mapping[str, float] = field(default_factory=dict)  # per queue: the last agent alone
    publish_stats_every: float = 0.0  # seconds between queue.stats events; 0 = never
    dispositions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # per queue: wrap-up codes
    default_dispositions: tuple[str, ...] = ()  # codes for calls whose queue has none (and click-to-dial)
    cues: CuePolicy | None = None  # live cues and post-call QA ([analytics]); None = off


Work = Callable[[], None]


class CallController(FloorMixin, CueMixin):
    """Every call of one server: phases, legs, recordings, the IVR and the ACD joined.
    Supervisors, consultations and dispositions are in :class:`calls.floor.FloorMixin`; live
    cues and post-call QA in :class:`calls.cues.CueMixin`."""

    def __init__(
        self,
        config: ControllerConfig,
        router: acd.Router,
        stats: acd.Statistics,
        flows: Mapping[str, ivr.Flow],
        main: str,
        *,
        codes: ServiceCodes | None = None,
        emergency: bool = False,
        now: float = 0.0,
        wall: float = 0.0,
    ) -> None:
        self.config = config
        self.router = router
        self.stats = stats
        self.flows: dict[str, ivr.Flow] = dict(flows)
        self.main = main
        if main not in self.flows:
            raise CallUsageError(f"the main flow {main!r} is not among the flows", code="flow.missing")
        self.codes = codes or ServiceCodes()
        self.emergency = emergency  # the emergency-closure switch flows read as `emergency`
        self.speech_languages: tuple[str, ...] = ()
        self.calls: dict[str, Call] = {}  # live calls and pending callbacks, by call id
        self._by_leg: dict[str, Call] = {}
        self._now, self._wall = now, wall
        self._out: list[fx.Effect] = []
        self._work: deque[Work] = deque()
        self._heap: list[tuple[float, int, str]] = []  # (deadline, tie-break, call id), lazily pruned
        self._tie = 0
        self._legs = 0  # legs this controller dialled (their ids)
        self._local_token = 0  # prompts the controller plays itself get negative tokens
        self._qa_pending: dict[str, fx.AnalyzeRecording] = {}  # recording file name -> its QA job
        self._stats_publish_at: float | None = (
            now + config.publish_stats_every if config.publish_stats_every > 0 else None
        )
        self._floor_init()

    # ================================================================ driving
    @property
    def flow(self) -> ivr.Flow:
        """The flow that answers new calls."""
        return self.flows[self.main]

    def handle(self, event: inp.Input, now: float, wall: float) -> list[fx.Effect]:
        """Take one input; return the effects to run, in order.

        A command that does not fit the call raises :class:`CallUsageError` (or the router's
        :class:`acd.AcdError`) before anything changed."""
        self._now, self._wall = now, wall
        self._out = []
        self._dispatch(event)
        self._drain()
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` is due next (monotonic seconds), or None."""
        while self._heap:
            deadline, _, call_id = self._heap[0]
            call = self.calls.get(call_id)
            if call is not None and call.deadline == deadline:
                break
            heapq.heappop(self._heap)  # stale: the call moved on
        candidates = [self._heap[0][0]] if self._heap else []
        router = self.router.next_deadline()
        if router is not None:
            candidates.append(router)
        candidates.append(self._stats_deadline())
        if self._stats_publish_at is not None:
            candidates.append(self._stats_publish_at)
        return min(candidates)

    def on_timer(self, now: float, wall: float) -> list[fx.Effect]:
        """Fire everything due at ``now``: call timers, router timers, statistics."""
        self._now, self._wall = now, wall
        self._out = []
        while self._heap and self._heap[0][0] <= now:
            deadline, _, call_id = heapq.heappop(self._heap)
            call = self.calls.get(call_id)
            if call is None or call.deadline != deadline:
                continue
            call.deadline = None
            self._work.append(functools.partial(self._interp_timer, call))
        self._work.append(lambda: self._acd_outputs(self.router.on_timer(self._now)))
        self._drain()
        if wall >= self.stats.next_deadline():
            self.stats.on_timer(wall)
            self._save_intervals()
        if self._stats_publish_at is not None and now >= self._stats_publish_at:
            self._publish_stats()
            self._stats_publish_at = now + self.config.publish_stats_every
        out, self._out = self._out, []
        return out

    # ---------------------------------------------------------------- queries
    def call(self, call_id: str) -> Call:
        """A call in progress, or :class:`CallUsageError` ``call.unknown``."""
        call = self.calls.get(call_id)
        if call is None or call.phase not in LIVE:
            raise CallUsageError(f"no call {call_id} is in progress", code="call.unknown")
        return call

    def live_calls(self) -> list[Call]:
        return [c for c in self.calls.values() if c.phase in LIVE]

    def phase_counts(self) -> dict[str, int]:
        """Calls by phase, for metrics (every phase present, zeros included)."""
        counts = {p.value: 0 for p in CallPhase}
        for c in self.calls.values():
            counts[c.phase.value] += 1
        return counts

    def queue_status(self, queue: str) -> dict[str, Any]:
        if queue not in self.router.queues:
            raise CallUsageError(f"no queue {queue!r} is configured", code="acd.unknown_queue")
        waiting = []
        for position, cid in enumerate(self.router.waiting(queue), start=1):
            c = self.calls.get(cid)
            since = c.queued_at if c is not None and c.queued_at is not None else self._now
            waiting.append(
                {
                    "call_id": cid,
                    "position": position,
                    "wait_seconds": round(self._now - since, 3),
                    "caller": c.caller if c is not None else None,
                }
            )
        return {"queue": queue, "waiting": waiting, "figures": self.stats.queue_figures(queue, self._wall)}

    # ============================================================== dispatch
    def _dispatch(self, event: inp.Input) -> None:
        match event:
            case inp.CallArrived():
                self._arrived(event)
            case inp.LegAnswered() | inp.LegMediaReady() | inp.LegEnded() | inp.DigitReceived():
                self._leg_event(event)
            case inp.PlaybackDone() | inp.TransferDone():
                self._leg_event(event)
            case inp.CallerLoaded(call_id=cid, caller=caller):
                call = self.calls.get(cid)
                if call is not None and call.phase is P.OFFERED and not call.caller_ready:
                    self._caller_loaded(call, caller)
            case inp.PromptResolved(call_id=cid, token=token, wav=wav, source=source):
                call = self.calls.get(cid)
                if call is not None and call.phase in LIVE and call.playing == token and call.leg:
                    self._emit(
                        fx.PlayFile(
                            call_id=cid,
                            leg=call.leg,
                            wav=wav,
                            token=token,
                            loop=token in call.looping,
                            source=source,
                        )
                    )
            case inp.Heard(call_id=cid, event=heard):
                call = self.calls.get(cid)
                if call is not None and call.phase in (*IN_FLOW, P.ASSISTED):
                    self._step(call, lambda i: i.handle(heard, self._now))
            case inp.LookupDone(call_id=cid, reply=reply):
                call = self.calls.get(cid)
                if call is not None and call.phase in (*IN_FLOW, P.ASSISTED):
                    self._step(call, lambda i: i.handle(reply, self._now))
            case inp.RecordingMerged():
                self._recording_merged(event)
                self._qa_merged(event)
            case inp.KeywordHeard() | inp.AgitationMeasured() | inp.CuesFailed():
                self._cue_input(event)
            case inp.QaDone():
                self._qa_done(event)
            case inp.EffectFailed(effect=effect, error=error):
                self._effect_failed(effect, error)
            case inp.FlowsChanged(flows=flows, main=main):
                if main not in flows:
                    raise CallUsageError(
                        f"the main flow {main!r} is not among the flows", code="flow.missing"
                    )
                self.flows, self.main = dict(flows), main
            case inp.SpeechChanged(languages=languages):
                self.speech_languages = languages
                values = {"speech": self._speech_variables()}
                for c in self.live_calls():
                    if c.phase is P.IVR:
                        self._feed_variables(c, values)
            case inp.RestoreCallbacks(records=records):
                self._acd_outputs(self.router.restore_callbacks(records, self._now))
            case inp.Shutdown():
                self._shutdown()
            case inp.PublishStats():
                self._publish_stats()
            case _:
                self._command(event)

    def _drain(self) -> None:
        while self._work:
            self._work.popleft()()

    def _emit(self, effect: fx.Effect) -> None:
        self._out.append(effect)

    def _publish(self, event: Any) -> None:
        self._out.append(fx.Publish(event=event))

    def _log(self, call: Call, name: str, level: str = "info", **fields: Any) -> None:
        self._out.append(fx.Log(call_id=call.call_id, event=name, level=level, fields=fields))

    def _move(self, call: Call, trigger: CallTrigger) -> None:
        target = TRANSITIONS[call.phase].get(trigger)
        if target is None:
            raise IllegalCallTransition(
                f"call {call.call_id} cannot take {trigger.value!r} in phase {call.phase.value!r}"
            )
        call.phase = target

    def _new_leg(self, call: Call) -> str:
        self._legs += 1
        return f"{call.call_id}-{self._legs}"

    def _local_prompt(self, call: Call, prompt: ivr.Prompt, *, loop: bool = False) -> int:
        """Play a prompt of the controller's own (hold music, a goodbye) to the caller."""
        self._local_token -= 1
        token = self._local_token
        if call.playing is not None:
            self._emit(fx.StopPlay(call_id=call.call_id, leg=call.leg))
        call.playing = token
        if loop:
            call.looping.add(token)
        self._emit(fx.ResolvePrompt(call_id=call.call_id, token=token, prompt=prompt))
        return token

    # ================================================================ arrival
    def _arrived(self, e: inp.CallArrived) -> None:
        if e.call_id in self.calls:
            raise CallUsageError(f"call id {e.call_id} is already in use", code="call.duplicate_id")
        code = self.codes.issue(self._wall)
        flow = self.flow
        call = Call(
            call_id=e.call_id,
            caller=e.caller,
            service_code=code,
            flow=flow,
            flows=self.flows,
            phase=P.OFFERED,
            started=self._now,
            started_wall=self._wall,
            leg=e.leg,
        )
        self.calls[call.call_id] = call
        self._by_leg[e.leg] = call
        self._publish(
            ev.CallOffered(
                call_id=call.call_id,
                caller=e.caller,
                from_uri=e.from_uri,
                to_uri=e.to_uri,
                sip_call_id=e.sip_call_id,
                flow=flow.name,
                flow_version=flow.version,
                service_code=code,
            )
        )
        self._emit(
            fx.InsertCall(
                call_id=call.call_id,
                fields={
                    "sip_call_id": e.sip_call_id,
                    "caller": e.caller,
                    "from_uri": e.from_uri,
                    "to_uri": e.to_uri,
                    "flow": flow.name,
                    "flow_version": flow.version,
                    "started_at": iso_utc(self._wall),
                    "service_code": code,
                },
            )
        )
        self._emit(fx.Answer(leg=e.leg, code=200 if self.config.auto_answer else 180))
        self._emit(fx.LoadCaller(call_id=call.call_id, number=e.caller, wall=self._wall, flows=call.flows))

    def _caller_loaded(self, call: Call, caller: Mapping[str, Any]) -> None:
        """Build the call's interpreter, once, on the flow version fixed at the offer."""
        call.interp = self._interpreter(call, call.flow, dict(caller))
        if call.pending_variables:
            call.interp.handle(ivr.VariablesUpdated(values=call.pending_variables), self._now)
            call.pending_variables = {}
        tier = caller.get("tier")
        call.profile_tier = str(tier) if tier else None
        call.caller_ready = True
        self._maybe_start(call)

    def _interpreter(self, call: Call, flow: ivr.Flow, caller: dict[str, Any] | None) -> ivr.CallInterpreter:
        variables: dict[str, Any] = {
            "emergency": self.emergency,
            "call": {
                "id": call.call_id,
                "service_code": call.service_code,
                "service_code_spoken": speakable(call.service_code),
            },
            "speech": self._speech_variables(),
        }
        if caller is not None:
            variables["caller"] = caller
            if caller.get("language"):
                variables["language"] = caller["language"]
        return ivr.build_interpreter(
            flow,
            call.call_id,
            call.caller,
            flows=call.flows,
            variables=variables,
            wall=dt.datetime.fromtimestamp(self._wall).astimezone(),
        )

    def _speech_variables(self) -> dict[str, Any]:
        if not self.config.speech:
            return {"languages": [], "max_utterance": 0}
        return {"languages": list(self.speech_languages), "max_utterance": self.config.max_utterance}

    def _maybe_start(self, call: Call) -> None:
        if self.config.whole_call:
            self._out.extend(start_whole_call(call, self.config.recordings))
        if call.phase is P.OFFERED and call.confirmed and call.media_ready and call.caller_ready:
            self._move(call, T.READY)
            self._step(call, lambda i: i.start(self._now))

    # ============================================================ SIP legs
    def _leg_event(
        self,
        event: inp.LegAnswered
        | inp.LegMediaReady
        | inp.LegEnded
        | inp.DigitReceived
        | inp.PlaybackDone
        | inp.TransferDone,
    ) -> None:
        call = self._by_leg.get(event.leg)
        if call is None:
            return  # a leg we gave up on, or one that already ended
        if event.leg == call.leg:
            if call.phase in (P.CALLBACK_DIALING, P.OUTBOUND_DIALING):
                self._customer_event(call, event)
            else:
                self._caller_event(call, event)
        else:
            self._agent_event(call, event)

    def _caller_event(self, call: Call, event: Any) -> None:
        match event:
            case inp.LegAnswered():
                if not call.confirmed:
                    call.confirmed = True
                    call.answered_at = self._now
                    self._publish(ev.CallAnswered(call_id=call.call_id))
                    self._maybe_start(call)
            case inp.LegMediaReady():
                call.media_ready = True
                self._maybe_start(call)
            case inp.DigitReceived(digit=digit):
                self._log(call, "dtmf", "debug")  # the digit is in ivr.input (and may be secret)
                if call.phase in IN_FLOW or call.phase is P.ASSISTED:
                    self._step(call, lambda i: i.handle(ivr.DigitPressed(digit=digit), self._now))
            case inp.PlaybackDone(token=token):
                if token != call.playing:
                    return
                call.playing = None
                if token == call.goodbye:
                    self._emit(fx.Hangup(leg=call.leg))
                elif token > 0 and (call.phase in IN_FLOW or call.phase is P.ASSISTED):
                    self._step(call, lambda i: i.handle(ivr.PromptFinished(token=token), self._now))
            case inp.TransferDone(code=code):
                self._log(call, "transfer_ended", code=code)
                self._emit(fx.Hangup(leg=call.leg))
            case inp.LegEnded(code=code):
                self._by_leg.pop(call.leg, None)
                self._caller_gone(call, code)

    def _customer_event(self, call: Call, event: Any) -> None:
        """The customer's leg of a callback or a click-to-dial call, before they talk."""
        match event:
            case inp.LegAnswered():
                call.confirmed = True
                call.answered_at = self._now
            case inp.LegMediaReady():
                call.media_ready = True
            case inp.LegEnded(code=code):
                self._by_leg.pop(call.leg, None)
                cause = RING_CAUSES.get(code, f"sip_{code}")
                if call.phase is P.CALLBACK_DIALING:
                    self._callback_failed(call, cause)
                else:
                    self._end_call(call, "caller_hangup" if code == 200 else cause, code)
                return
            case _:
                return
        if not (call.confirmed and call.media_ready):
            return
        self._publish(ev.CallAnswered(call_id=call.call_id))
        if call.phase is P.CALLBACK_DIALING:
            self._acd_safe(acd.events.CallbackAnswered(call_id=call.call_id))
        else:
            call.connected_at = self._now
            assert call.agent_id is not None
            self._bridge(call, call.agent_id)

    def _agent_event(self, call: Call, event: Any) -> None:
        leg = event.leg
        if leg == call.agent_leg:
            if isinstance(event, inp.LegEnded):
                self._by_leg.pop(leg, None)
                call.agent_leg = None
                if not self._floor_agent_left(call, leg):
                    self._agent_left(call, event.code)
            return
        if self._floor_leg_event(call, event):
            return
        rung = next((a for a in call.ringing.values() if a.leg == leg), None)
        if rung is None:
            return
        match event:
            case inp.LegAnswered():
                rung.confirmed = True
            case inp.LegMediaReady():
                rung.media = True
            case inp.LegEnded(code=code):
                del call.ringing[rung.agent_id]
                self._by_leg.pop(leg, None)
                self._ring_ended(call, rung, code)
                return
            case _:
                return
        if not (rung.confirmed and rung.media) or rung.reported:
            return
        rung.reported = True
        if call.phase in (P.QUEUED, P.CALLBACK_RINGING):
            self._acd_safe(acd.events.AgentAnswered(call_id=call.call_id, agent_id=rung.agent_id))
        elif call.phase is P.OUTBOUND_AGENT:
            self._dial_customer(call, call.outbound_to)

    def _ring_ended(self, call: Call, rung: AgentLeg, code: int) -> None:
        """An agent leg that was being rung (or waits for its customer) ended."""
        if call.phase is P.CALLBACK_DIALING and rung.confirmed:
            # the agent gave up while their customer was being dialled: drop that leg too
            self._acd_safe(acd.events.AgentHungUp(call_id=call.call_id, agent_id=rung.agent_id))
            self._emit(fx.Hangup(leg=call.leg))  # its end is handled as a failed attempt
        elif call.phase in (P.QUEUED, P.CALLBACK_RINGING):
            cause = RING_CAUSES.get(code, f"sip_{code}")
            self._acd_safe(
                acd.events.AgentRingFailed(call_id=call.call_id, agent_id=rung.agent_id, cause=cause)
            )
            self._work.append(lambda: self._settle_callback(call))
        elif call.phase in (P.OUTBOUND_AGENT, P.OUTBOUND_DIALING):
            self._end_call(call, "agent_hangup", code)

    def _agent_left(self, call: Call, code: int) -> None:
        """The agent talking to the caller hung up."""
        if call.phase not in (P.CONNECTED, P.ASSISTED):
            return
        if call.outbound:
            self._end_call(call, "agent_hangup", code)
            return
        if not call.handed_over:  # after an attended transfer the ACD no longer has the call
            assert call.agent_id is not None
            self._acd_safe(acd.events.AgentHungUp(call_id=call.call_id, agent_id=call.agent_id))
        after = getattr(call.interp.node, "after_agent", None) if call.interp is not None else None
        if after is not None and call.phase is P.CONNECTED:
            # e.g. a post-call survey: the caller stays on the line
            self._finish_recordings(call)
            self._cues_off(call)
            self._move(call, T.BACK_TO_FLOW)
            self._step(call, lambda i: i.jump(after, self._now))
            return
        call.end_cause = call.end_cause or "agent_hangup"
        self._emit(fx.Hangup(leg=call.leg))

    # ================================================================== IVR
    def _step(self, call: Call, step: Callable[[ivr.CallInterpreter], list[ivr.Output]]) -> None:
        """Queue one step of the call's interpreter (its assist flow's, while it is assisted)."""
        self._work.append(lambda: self._run_step(call, step))

    def _run_step(self, call: Call, step: Callable[[ivr.CallInterpreter], list[ivr.Output]]) -> None:
        if call.phase not in LIVE:
            return  # the call ended meanwhile: nothing more for it
        interp = call.assist if call.phase is P.ASSISTED else call.interp
        if interp is None:
            return
        self._run_ivr(call, interp, step(interp))
        self._rearm(call)

    def _interp_timer(self, call: Call) -> None:
        self._run_step(call, lambda i: i.on_timer(self._now))

    def _rearm(self, call: Call) -> None:
        interp = call.assist if call.phase is P.ASSISTED else call.interp
        deadline = interp.next_deadline() if interp is not None and call.phase in LIVE else None
        if deadline != call.deadline:
            call.deadline = deadline
            if deadline is not None:
                self._tie += 1
                heapq.heappush(self._heap, (deadline, self._tie, call.call_id))

    def _feed_variables(self, call: Call, values: Mapping[str, Any]) -> None:
        if call.interp is None:
            call.pending_variables.update(values)
        elif call.phase in IN_FLOW:
            self._step(call, lambda i: i.handle(ivr.VariablesUpdated(values=values), self._now))

    def _run_ivr(self, call: Call, interp: ivr.CallInterpreter, outputs: list[ivr.Output]) -> None:
        assisting = interp is call.assist
        for out in outputs:
            match out:
                case ivr.PlayPrompt(prompt=prompt, token=token, language=language):
                    call.playing = token
                    self._emit(
                        fx.ResolvePrompt(call_id=call.call_id, token=token, prompt=prompt, language=language)
                    )
                case ivr.StopPrompt(token=token):
                    if call.playing == token:
                        call.playing = None
                        self._emit(fx.StopPlay(call_id=call.call_id, leg=call.leg))
                case ivr.Listen():
                    self._listen(call, out)
                case ivr.StopListening(token=token):
                    if call.ear:
                        self._emit(fx.StopListening(call_id=call.call_id, token=token))
                case ivr.PauseRecording(reason=reason):
                    self._secure(call, True, reason)
                case ivr.ResumeRecording(reason=reason):
                    self._secure(call, False, reason)
                case ivr.HttpLookup():
                    self._emit(fx.HttpRequest(call_id=call.call_id, request=out))
                case ivr.HangUp(reason=reason) if assisting:
                    self._assist_done(call, reason)
                case ivr.Enqueue() | ivr.Transfer() | ivr.RequestCallback() | ivr.StartRecording() if (
                    assisting
                ):
                    self._log(call, "assist_step_unsupported", "warning", action=type(out).__name__)
                    self._assist_done(call, "unsupported_step")
                case ivr.Enqueue():
                    self._enqueue(call, out)
                case ivr.Transfer(to=to):
                    call.end_cause = "transferred"
                    self._emit(fx.Transfer(leg=call.leg, uri=to))
                case ivr.StartRecording():
                    path = self.config.recordings / f"{call.call_id}-voicemail.wav"
                    call.voicemail = path
                    self._emit(fx.Record(call_id=call.call_id, sources=((call.leg, path),), kind="voicemail"))
                case ivr.RequestCallback(number=number, data=data):
                    call.callback = number or call.caller
                    self._acd_safe(
                        acd.events.CallbackRequested(call_id=call.call_id, number=call.callback, data=data)
                    )
                case ivr.HangUp(reason=reason):
                    call.end_cause = call.end_cause or "ivr_hangup"
                    self._log(call, "ivr_hangup", reason=reason)
                    self._emit(fx.Hangup(leg=call.leg))
                case ivr.IvrInterrupted():
                    call.keywords.append({"node": out.node, "input": out.input, "reason": out.reason})
                    self._publish(out)
                case ivr.IvrInput() | ivr.IvrEscalated() | ivr.SurveyAnswered():
                    self._publish(out)
            if call.phase not in LIVE:
                return

    def _listen(self, call: Call, action: ivr.Listen) -> None:
        if not self.config.speech:
            unavailable = ivr.SpeechRecognized(token=action.token, status="unavailable", text="")
            self._step(call, lambda i: i.handle(unavailable, self._now))
            return
        call.ear = True
        self._emit(fx.Listen(call_id=call.call_id, leg=call.leg, request=action))

    def _close_ear(self, call: Call) -> None:
        if call.ear:
            call.ear = False
            self._emit(fx.CloseEar(call_id=call.call_id))

    def _enqueue(self, call: Call, e: ivr.Enqueue) -> None:
        self._move(call, T.ENQUEUED)
        call.queue, call.queued_at, call.priority = e.queue, self._now, e.priority
        preferred, seconds = self._preferred_agent(call, e.queue)
        self._acd_safe(
            acd.events.CallEnqueued(
                call_id=call.call_id,
                queue=e.queue,
                priority=e.priority,
                data=e.data,
                preferred_agent=preferred,
                preferred_seconds=seconds,
                skills=tuple(e.skills),
            )
        )
        self._cues_on(call)

    def _preferred_agent(self, call: Call, queue: str) -> tuple[str | None, float]:
        """The agent tried alone first: one the flow or CRM named (variable `preferred_agent`),
        else the agent who last served this caller, for the queue's preferred_seconds."""
        seconds = self.config.preferred_seconds.get(queue, 0.0)
        if seconds <= 0 or call.interp is None:
            return None, 0.0
        named = call.interp.variables.get("preferred_agent")
        if isinstance(named, str) and named in self.router.agents:
            return named, seconds
        caller = call.interp.variables.get("caller")
        for contact in caller.get("recent", []) if isinstance(caller, dict) else []:
            if contact.get("agent_id") in self.router.agents:
                return str(contact["agent_id"]), seconds
        return None, 0.0

    # ============================================================ recording
    def _secure(self, call: Call, paused: bool, reason: str) -> None:
        """Secure input starts (or ends): every recorder of the call pauses (or resumes). A
        recording started meanwhile starts paused."""
        call.secure = paused
        self._cues_pause(call, paused)
        if call.recording is not None or call.whole_call is not None:
            legs = tuple(leg for leg in (call.leg, call.agent_leg) if leg)
            self._emit(fx.PauseRecording(legs=legs, paused=paused))
        if call.recording is not None:
            self._mark_gap(call, paused, reason)

    def _mark_gap(self, call: Call, paused: bool, reason: str) -> None:
        """Note a recording pause (secure entry, or a CTI pause) for the sidecar."""
        open_gap = bool(call.gaps) and call.gaps[-1]["to"] is None
        if paused and not open_gap:
            call.gaps.append({"from": iso_utc(self._wall), "to": None, "reason": reason})
        elif not paused and open_gap:
            call.gaps[-1]["to"] = iso_utc(self._wall)

    def _start_recording(self, call: Call, agent_leg: str) -> None:
        """Caller left, agent right: one mono recorder per leg, merged when it ends."""
        parts = self.config.recordings / ".parts"
        name = call.call_id if call.segment == 1 else f"{call.call_id}-{call.segment}"
        caller_part, agent_part = parts / f"{name}-caller.wav", parts / f"{name}-agent.wav"
        call.recording = (caller_part, agent_part, self.config.recordings / f"{name}.wav")
        call.gaps = []
        self._floor_recording_started(call)
        self._emit(
            fx.Record(
                call_id=call.call_id,
                sources=((call.leg, caller_part), (agent_leg, agent_part)),
                paused=call.secure,
            )
        )
        if call.secure:
            self._mark_gap(call, True, "secure_input")

    def _finish_recordings(self, call: Call) -> None:
        """Close the recorders now; the merge and checksum run off the core."""
        if call.recording is not None:
            self._mark_gap(call, False, "")
            caller_part, agent_part, final = call.recording
            self._emit(fx.StopRecording(leg=call.leg, paths=(caller_part,)))
            if call.agent_leg is not None:
                self._emit(fx.StopRecording(leg=call.agent_leg, paths=(agent_part,)))
            interp = call.interp
            sidecar = {
                "call_id": call.call_id,
                "service_code": call.service_code,
                "caller": mask_number(call.caller, self.config.caller_mask),
                "queue": call.queue,
                "agent_id": call.agent_id,
                "started": iso_utc(self._wall - (self._now - (call.connected_at or self._now))),
                "flow": call.flow.name if interp is None else interp.root.name,
                "flow_version": call.flow.version if interp is None else interp.root.version,
                "ivr_inputs": [dict(i) for i in interp.inputs] if interp is not None else [],
                "channels": {"left": "caller", "right": "agent"},
                "gaps": [dict(g) for g in call.gaps],  # recording pauses: {"from", "to"} ISO times
                **self._floor_sidecar(call),  # "mixed": who else was on the agent channel, when
            }
            self._emit(
                fx.MergeRecording(
                    call_id=call.call_id,
                    caller_part=caller_part,
                    agent_part=agent_part,
                    final=final,
                    sidecar=sidecar,
                )
            )
            self._qa_recording(call, final)
            call.recording = None
        if call.voicemail is not None:
            self._emit(fx.StopRecording(leg=call.leg, paths=(call.voicemail,)))
            self._emit(fx.MeasureVoicemail(call_id=call.call_id, path=call.voicemail))
            call.voicemail = None

    def _recording_merged(self, e: inp.RecordingMerged) -> None:
        if e.error:
            self._publish(ev.RecordingFailed(call_id=e.call_id, kind=e.kind, error=e.error))
            return
        if e.kind == "call":
            self._emit(
                fx.UpdateCall(
                    call_id=e.call_id, fields={"recording_path": e.path, "recording_sha256": e.sha256}
                )
            )
        self._publish(
            ev.RecordingReady(
                call_id=e.call_id,
                kind=e.kind,
                path=e.path,
                seconds=e.seconds,
                channels=e.channels,
                sha256=e.sha256,
                sidecar=e.sidecar,
                repaired=e.repaired,
            )
        )

    # =================================================================== ACD
    def _acd_safe(self, event: acd.events.Input) -> None:
        """Queue a router input born of SIP or the flow. The router may no longer expect it
        (a race with its own timers, e.g. an answer crossing a ring timeout): then it is
        logged and the calls go on."""

        def run() -> None:
            try:
                outputs = self.router.handle(event, self._now)
            except acd.AcdUsageError as exc:
                self._out.append(
                    fx.Log(
                        call_id=getattr(event, "call_id", ""),
                        event="acd_event_ignored",
                        level="warning",
                        fields={"acd_event": type(event).__name__, "code": exc.code, "error": str(exc)},
                    )
                )
                return
            self._acd_outputs(outputs)

        self._work.append(run)

    def _acd_outputs(self, outputs: list[acd.events.Output]) -> None:
        moved: set[str] = set()  # queues whose line changed
        callbacks_changed = False
        self.stats.observe_all(outputs, self._wall)
        for out in outputs:
            match out:
                case acd.events.RingAgent(call_id=cid, agent_id=aid, contact=contact):
                    ringing = self._ring(cid, aid, contact, out.callback_number)
                    if ringing is not None:
                        moved.add(ringing.queue or "")
                case acd.events.CancelRing(call_id=cid, agent_id=aid):
                    if (call := self._known(cid, out)) is not None:
                        rung = call.ringing.pop(aid, None)
                        if rung is not None:
                            self._by_leg.pop(rung.leg, None)
                            self._emit(fx.Hangup(leg=rung.leg))
                case acd.events.BridgeCall(call_id=cid, agent_id=aid):
                    if (call := self._known(cid, out)) is not None:
                        self._bridge(call, aid)
                case acd.events.DialCallback(call_id=cid, number=number, attempt=attempt):
                    if (call := self._known(cid, out)) is not None:
                        self._log(call, "callback_dialing", attempt=attempt)
                        self._dial_customer(call, number)
                case acd.events.OverflowCall(call_id=cid, kind=kind, target=target):
                    if (call := self._known(cid, out)) is not None:
                        self._overflow(call, str(kind), target)
                case acd.events.CallConnected():
                    if (call := self._known(out.call_id, None)) is not None:
                        call.connected_at = self._now
                    self._publish(out)
                case acd.events.CallQueued(call_id=cid, queue=queue):
                    if (call := self._known(cid, None)) is not None:
                        call.queue = queue  # may be an overflow queue
                    moved.add(queue)
                    self._publish(out)
                case acd.events.CallAbandoned() | acd.events.CallOverflowed():
                    moved.add(out.queue)
                    self._publish(out)
                case acd.events.CallbackAbandoned(call_id=cid):
                    callbacks_changed = True
                    self._publish(out)
                    call = self.calls.get(cid)
                    if call is not None:
                        self._work.append(functools.partial(self._settle_callback, call))
                case _:
                    self._publish(self._with_cues(out))
                    if getattr(out, "wire", "").startswith("callback."):
                        callbacks_changed = True
        if callbacks_changed:
            records = tuple(r.as_dict() for r in self.router.pending_callbacks(self._now))
            self._emit(fx.SaveCallbacks(records=records))
        if moved:
            self._work.append(lambda: self._tell_positions(moved))

    def _tell_positions(self, queues: Iterable[str]) -> None:
        """Keep each waiting caller's flow told of their place in line (for announcements)."""
        for queue in queues:
            if queue not in self.router.queues:
                continue
            for position, cid in enumerate(self.router.waiting(queue), start=1):
                call = self.calls.get(cid)
                if call is None or call.phase is not P.QUEUED or call.position == position:
                    continue
                call.position = position
                ewt = self.router.ewt(cid, self._now)
                values: dict[str, Any] = {"queue.position": position}
                if ewt is not None:
                    values.update({"queue.ewt": round(ewt), "queue.ewt_minutes": max(1, round(ewt / 60))})
                self._feed_variables(call, values)

    def _known(self, call_id: str, action: Any) -> Call | None:
        """The live (or pending) call a router output names; an action for a call that is
        gone is logged (it can only be a race the router will hear about next)."""
        call = self.calls.get(call_id)
        if call is None and action is not None:
            self._log_for(call_id, "acd_action_for_unknown_call", "warning", action=type(action).__name__)
        return call

    def _ring(self, call_id: str, agent_id: str, contact: str, number: str | None) -> Call | None:
        call = self.calls.get(call_id)
        if call is None and number is None:
            self._log_for(call_id, "acd_action_for_unknown_call", "warning", action="RingAgent")
            return None
        if call is None:  # a callback restored after a restart: nothing of the call is in memory
            call = self._legless(call_id, number or "", P.CALLBACK_PENDING)
            call.callback = number
        if call.phase not in (P.QUEUED, P.CALLBACK_PENDING, P.CALLBACK_RINGING):
            self._log(call, "ring_in_wrong_phase", "error", phase=call.phase.value, agent_id=agent_id)
            return None
        if call.phase in (P.CALLBACK_PENDING, P.CALLBACK_RINGING):
            if call.phase is P.CALLBACK_PENDING:
                self._new_life(call)
            self._move(call, T.AGENT_RUNG)
        call.agent_id = agent_id
        leg = self._new_leg(call)
        self._emit(
            fx.Dial(
                leg=leg,
                uri=contact,
                headers={"X-Hotline-Call-Id": call_id, "X-Hotline-Caller": call.caller},
                media=self.config.agent_media.get(agent_id, "none"),
            )
        )
        call.ringing[agent_id] = AgentLeg(agent_id=agent_id, leg=leg)
        self._by_leg[leg] = call
        return call

    def _legless(self, call_id: str, number: str, phase: CallPhase) -> Call:
        """A call we originate (a restored callback, click-to-dial): no caller leg yet."""
        call = Call(
            call_id=call_id,
            caller=number,
            service_code=self.codes.issue(self._wall),
            flow=self.flow,
            flows=self.flows,
            phase=phase,
            started=self._now,
            started_wall=self._wall,
            caller_ready=True,
        )
        self.calls[call_id] = call
        return call

    def _new_life(self, call: Call) -> None:
        """A pending callback comes alive again: a new conversation under the same call id."""
        call.life += 1
        call.leg = ""
        call.confirmed = call.media_ready = False
        call.answered_at = call.connected_at = None
        call.end_cause = None
        call.ringing.clear()
        call.agent_leg = None
        call.playing = call.goodbye = None
        call.segment = 1 if call.life == 1 else call.segment

    def _settle_callback(self, call: Call) -> None:
        """After the router had its say: a callback nobody is ringing waits again; one the
        router gave up is forgotten."""
        if call.phase is P.CALLBACK_RINGING and not call.ringing:
            self._move(call, T.RING_FAILED)
        if call.phase is P.CALLBACK_PENDING and not self.router.has_call(call.call_id):
            self._move(call, T.ENDED)
            self.calls.pop(call.call_id, None)

    def _dial_customer(self, call: Call, number: str) -> None:
        """The agent is on the line: now call the customer (a callback, or click-to-dial)."""
        sip_uri = number.startswith(("sip:", "sips:"))
        uri = number if sip_uri else self.config.dial_uri.format(number=number)
        trunk = "" if sip_uri else self.config.dial_trunk
        self._move(call, T.CUSTOMER_DIALED)
        call.leg = self._new_leg(call)
        call.confirmed = call.media_ready = False
        call.started, call.started_wall = self._now, self._wall
        self._by_leg[call.leg] = call
        self._emit(fx.Dial(leg=call.leg, uri=uri, headers={"X-Hotline-Call-Id": call.call_id}, trunk=trunk))

    def _callback_failed(self, call: Call, cause: str) -> None:
        self._move(call, T.DIAL_FAILED)
        call.leg = ""
        for rung in list(call.ringing.values()):  # the agent waiting on the line is released
            self._by_leg.pop(rung.leg, None)
            self._emit(fx.Hangup(leg=rung.leg))
        call.ringing.clear()
        self._acd_safe(acd.events.CallbackFailed(call_id=call.call_id, cause=cause))
        self._work.append(lambda: self._settle_callback(call))

    def _overflow(self, call: Call, kind: str, target: str) -> None:
        """The ACD gave the caller up to a voicemail box, a callback, or a node of their flow."""
        self._log(call, "overflow", kind=kind, target=target, queue=call.queue)
        self._cues_off(call)  # the caller is no longer waiting for an agent
        if kind == "flow_node":
            self._move(call, T.BACK_TO_FLOW)
            call.queue, call.queued_at = None, None
            self._step(call, lambda i: i.jump(target, self._now))
            return
        self._step(call, lambda i: i.handle(ivr.AgentConnected(), self._now))  # the flow's part is over
        if kind == "callback":
            call.callback = call.caller
            self._acd_safe(
                acd.events.CallbackRequested(call_id=call.call_id, number=call.caller, queue=target)
            )
            call.goodbye = self._local_prompt(call, ivr.Prompt(id=None, text=CALLBACK_GOODBYE))
            return
        self._move(call, T.VOICEMAIL)
        if call.playing is not None:
            call.playing = None
            self._emit(fx.StopPlay(call_id=call.call_id, leg=call.leg))
        call.end_cause = "overflow_voicemail"
        path = self.config.recordings / f"{call.call_id}-voicemail.wav"
        call.voicemail = path
        self._emit(fx.Record(call_id=call.call_id, sources=((call.leg, path),), kind="voicemail"))

    def _bridge(self, call: Call, agent_id: str) -> None:
        rung = call.ringing.pop(agent_id, None)
        if rung is None:
            self._log(call, "bridge_without_agent_leg", "error", agent_id=agent_id)
            return
        self._move(call, T.BRIDGED)
        call.agent_id, call.agent_leg = agent_id, rung.leg
        call.connected_at = self._now
        self._close_ear(call)
        if call.playing is not None:
            call.playing = None
        self._emit(fx.StopPlay(call_id=call.call_id, leg=call.leg))
        self._emit(fx.Bridge(a=call.leg, b=rung.leg))
        self._start_recording(call, rung.leg)
        self._cues_on(call)
        if call.interp is not None:
            self._step(call, lambda i: i.handle(ivr.AgentConnected(), self._now))

    # ============================================================ call end
    def _caller_gone(self, call: Call, code: int) -> None:
        if call.phase not in LIVE:
            return
        cause = call.end_cause
        if call.callback is not None and call.phase is P.QUEUED and self.router.has_call(call.call_id):
            cause = "callback_requested"  # the caller hung up (or the flow did); their place is kept
        if cause is None and code == 408 and not call.confirmed:
            cause = "no_ack"  # answered, but the caller's ACK never came (telephony/admission.py)
        if cause is None:
            cause = {P.QUEUED: "abandoned", P.CONNECTED: "caller_hangup"}.get(call.phase, "caller_hangup")
        self._end_call(call, cause, code)

    def _end_call(self, call: Call, cause: str, code: int) -> None:
        """The one place a call life ends: call.ended, its summary, the record, the contact."""
        if call.phase not in LIVE:
            return
        cause = call.end_cause if call.end_cause and cause not in ("callback_requested",) else cause
        self._floor_call_ending(call)
        now = self._now
        phase = call.phase
        keep = cause == "callback_requested"
        self._move(call, T.CALLBACK_KEPT if keep else T.ENDED)
        call.deadline = None
        self._close_ear(call)
        self._cues_off(call)
        if self.router.has_call(call.call_id) and not call.outbound:
            self._acd_safe(acd.events.CallerHungUp(call_id=call.call_id))
        for rung in call.ringing.values():
            self._by_leg.pop(rung.leg, None)
            self._emit(fx.Hangup(leg=rung.leg))
        call.ringing.clear()
        for leg in (call.agent_leg, call.leg):
            if leg and self._by_leg.get(leg) is call:  # still up: e.g. the other side of a click-to-dial
                self._by_leg.pop(leg, None)
                self._emit(fx.Hangup(leg=leg))
        summary = self._summary(call, cause, now)
        self._finish_recordings(call)
        self._out.extend(finish_whole_call(call))
        answered, queued, connected = call.answered_at, call.queued_at, call.connected_at
        ended = ev.CallEnded(
            call_id=call.call_id,
            cause=cause,
            sip_code=code,
            queue=call.queue,
            agent_id=call.agent_id,
            total_seconds=now - call.started,
            ivr_seconds=((queued or connected or now) - answered) if answered is not None else 0.0,
            wait_seconds=summary["wait_seconds"],
            talk_seconds=summary["talk_seconds"],
            summary=summary,
        )
        self._publish(ended)
        interp = call.interp
        self._emit(
            fx.UpdateCall(
                call_id=call.call_id,
                fields={
                    "ended_at": iso_utc(self._wall),
                    "cause": cause,
                    "queue": call.queue,
                    "agent_id": call.agent_id,
                    "ivr_seconds": ended.ivr_seconds,
                    "wait_seconds": ended.wait_seconds,
                    "talk_seconds": ended.talk_seconds,
                    "total_seconds": ended.total_seconds,
                    "ivr_path": list(interp.path) if interp is not None else [],
                    "inputs": [dict(i) for i in interp.inputs] if interp is not None else [],
                    **({"survey": dict(interp.survey)} if interp is not None and interp.survey else {}),
                },
            )
        )
        self._log(
            call,
            "call_summary",
            caller=call.caller,
            cause=cause,
            last_phase=phase.value,
            queue=call.queue,
            agent_id=call.agent_id,
            ivr_path=list(interp.path) if interp is not None else [],
            seconds=round(ended.total_seconds, 2),
        )
        self._emit(
            fx.RecordContact(
                number=call.caller,
                call_id=call.call_id,
                ended_wall=self._wall,
                last_node=interp.path[-1] if interp is not None and interp.path else None,
                queue=call.queue,
                agent_id=call.agent_id,
                cause=cause,
                flow=interp.flow.name if interp is not None else call.flow.name,
                flow_version=interp.flow.version if interp is not None else call.flow.version,
                priority=call.priority,
                waited_seconds=summary["wait_seconds"],
                agent_connected=connected is not None,
            )
        )
        self._by_leg.pop(call.leg, None)
        if not keep:
            self.calls.pop(call.call_id, None)
        aid = call.agent_id
        if call.outbound and aid is not None and aid in self.router.agents:
            agent = self.router.agents[aid]
            if self.router.agent_state(aid) is acd.AgentState.NOT_READY and agent.reason == "outbound":
                self._acd_safe(acd.events.AgentBecameReady(agent_id=aid))

    def _summary(self, call: Call, cause: str, now: float) -> dict[str, Any]:
        """What ticketing gets in call.ended (and the contact history): one place."""
        interp = call.interp
        queued, connected = call.queued_at, call.connected_at
        wait = ((connected or now) - queued) if queued is not None else 0.0
        talk = (now - connected) if connected is not None else 0.0
        return {
            "caller": mask_number(call.caller, self.config.caller_mask),
            "service_code": call.service_code,
            "profile_tier": call.profile_tier,
            "ivr_path": list(interp.path) if interp is not None else [],
            "inputs": [dict(i) for i in interp.inputs] if interp is not None else [],  # secure: masked
            "keywords": list(call.keywords),
            **self._cue_summary(call),
            "escalation": interp.escalation if interp is not None else None,
            "queue": call.queue,
            "wait_seconds": round(wait, 3),
            "agent_id": call.agent_id if connected is not None else None,
            "talk_seconds": round(talk, 3),
            "disposition": cause,
            "survey": (dict(interp.survey) or None) if interp is not None else None,
            **({"outbound": True, "to": call.outbound_to} if call.outbound else {}),
            **({"callback": True} if call.life > 1 else {}),
            **self._floor_summary(call),  # disposition_code (the agent's wrap-up code), transfers
        }

    def _shutdown(self) -> None:
        for call in self.live_calls():
            call.end_cause = call.end_cause or "shutdown"
            self._close_ear(call)
        self.stats.on_timer(self._wall)
        self.stats.close_open_interval(self._wall)
        self._save_intervals()

    # ============================================================ statistics
    def _stats_deadline(self) -> float:
        """The statistics' wall-clock deadline, as a monotonic time."""
        return self._now + max(0.0, self.stats.next_deadline() - self._wall) + 0.001

    def _save_intervals(self) -> None:
        queue_rows = tuple(r.as_dict() for r in self.stats.take_intervals())
        agent_rows = tuple(r.as_dict() for r in self.stats.take_agent_intervals())
        if queue_rows or agent_rows:
            self._emit(fx.SaveIntervals(queue_rows=queue_rows, agent_rows=agent_rows))

    def _publish_stats(self) -> None:
        for queue in self.router.queues:
            self._publish(ev.QueueStats(queue=queue, figures=self.stats.queue_figures(queue, self._wall)))

    # ============================================================ failures
    def _effect_failed(self, effect: Any, error: str) -> None:
        match effect:
            case fx.Answer(leg=leg):
                self._emit(fx.Hangup(leg=leg, code=500))
            case fx.PlayFile(call_id=cid, leg=leg, token=token):
                self._log_for(cid, "play_failed", "error", wav=str(effect.wav), error=error)
                self._leg_event(inp.PlaybackDone(leg=leg, token=token))
            case fx.Bridge(a=leg):
                self._emit(fx.Hangup(leg=leg))
            case fx.Dial(leg=leg):  # the leg never started: as if it failed at once
                self._log_for("", "dial_failed", "error", leg=leg, uri=effect.uri, error=error)
                self._leg_event(inp.LegEnded(leg=leg, code=500))
            case fx.Record(call_id=cid, kind=kind):
                call = self.calls.get(cid)
                if call is not None:
                    if kind == "voicemail":
                        call.voicemail = None
                    elif kind == "whole_call":
                        call.whole_call = None
                    else:
                        call.recording = None
                self._log_for(cid, "recording_start_failed", "error", kind=kind, error=error)
            case _:
                self._log_for(
                    getattr(effect, "call_id", ""),
                    "effect_failed",
                    "error",
                    effect=type(effect).__name__,
                    error=error,
                )

    def _log_for(self, call_id: str, name: str, level: str, **fields: Any) -> None:
        self._out.append(fx.Log(call_id=call_id, event=name, level=level, fields=fields))

    # ============================================================ commands
    def _command(self, event: inp.Input) -> None:
        match event:
            case inp.AgentCommand(event=acd_event):
                self._acd_outputs(self.router.handle(acd_event, self._now))  # raises before any change
            case inp.EndWrapUp(agent_id=aid):
                if aid in self.router.agents and self.router.agent_state(aid) is not acd.AgentState.WRAP_UP:
                    state = self.router.agent_state(aid).value
                    raise CallUsageError(f"agent {aid} is {state}, not in wrap-up", code="acd.not_in_wrap_up")
                self._acd_outputs(self.router.handle(acd.events.AgentBecameReady(agent_id=aid), self._now))
            case inp.AnswerCall(call_id=cid):
                call = self.call(cid)
                if call.confirmed or call.phase is not P.OFFERED:
                    raise CallUsageError(f"call {cid} is already answered", code="call.already_answered")
                self._emit(fx.Answer(leg=call.leg))
            case inp.HangUpCall(call_id=cid):
                call = self.call(cid)
                call.end_cause = call.end_cause or "hung_up_by_cti"
                legs = [call.leg] if call.leg else [r.leg for r in call.ringing.values()]
                for leg in legs:
                    self._emit(fx.Hangup(leg=leg))
            case inp.HoldCall(call_id=cid, hold=hold):
                call = self._connected(cid)
                self._emit(fx.Hold(leg=call.leg) if hold else fx.Retrieve(leg=call.leg))
                self._note_hold(call, hold)
            case inp.BlindTransfer(call_id=cid, to=to):
                call = self.call(cid)
                if not call.leg:
                    raise CallUsageError(
                        f"call {cid} has no caller on the line yet", code="call.not_connected"
                    )
                call.end_cause = "transferred"
                self._emit(fx.Transfer(leg=call.leg, uri=to))
            case inp.Requeue(call_id=cid, queue=queue, priority=priority):
                call = self.call(cid)
                if queue not in self.router.queues:
                    raise CallUsageError(f"no queue {queue!r} is configured", code="acd.unknown_queue")
                if call.phase not in (P.QUEUED, P.CONNECTED, P.IVR) or call.outbound:
                    raise CallUsageError(
                        f"call {cid} cannot be queued now ({call.phase.value})", code="call.not_queueable"
                    )
                self._requeue(call, queue, priority)
            case inp.SetVariables(call_id=cid, values=values):
                self._feed_variables_now(self.call(cid), values)
            case inp.ControlRecording(call_id=cid, action=action):
                self._control_recording(self.call(cid), action)
            case inp.SetPriority(call_id=cid, priority=priority):
                call = self.call(cid)
                self._acd_outputs(
                    self.router.handle(
                        acd.events.CallPriorityChanged(call_id=cid, priority=priority), self._now
                    )
                )
                call.priority = priority
            case inp.Assist(call_id=cid, flow=name):
                self._assist(self._connected(cid), name)
            case inp.MakeCall():
                self._make_call(event)
            case inp.SetEmergency(on=on):
                self.emergency = on
                self._publish(ev.EmergencyChanged(on=on))
                for c in self.live_calls():
                    if c.phase in IN_FLOW:
                        self._feed_variables(c, {"emergency": on})
            case _:
                if not self._floor_command(event):
                    raise CallUsageError(f"not a call controller input: {event!r}", code="call.bad_input")

    def _connected(self, call_id: str) -> Call:
        call = self.call(call_id)
        if call.phase is not P.CONNECTED or call.agent_leg is None:
            raise CallUsageError(f"call {call_id} is not talking to an agent", code="call.not_connected")
        return call

    def _feed_variables_now(self, call: Call, values: Mapping[str, Any]) -> None:
        """A CTI client's values: to the flow even while it is connected (it may go on after)."""
        if call.interp is None:
            call.pending_variables.update(values)
        else:
            self._step(call, lambda i: i.handle(ivr.VariablesUpdated(values=values), self._now))

    def _requeue(self, call: Call, queue: str, priority: int) -> None:
        """Move a caller (talking, or waiting) to another queue, keeping the call up."""
        if call.phase is P.CONNECTED:
            assert call.agent_id is not None and call.agent_leg is not None
            self._floor_agent_moved(call)
            self._finish_recordings(call)  # both recorders close first
            self._cues_off(call, ("agent",))
            leg, call.agent_leg = call.agent_leg, None  # detached: its BYE is not the agent hanging up
            self._by_leg.pop(leg, None)
            self._acd_safe(acd.events.AgentHungUp(call_id=call.call_id, agent_id=call.agent_id))
            self._emit(fx.Hangup(leg=leg))
        elif self.router.has_call(call.call_id):
            self._acd_safe(acd.events.CallerHungUp(call_id=call.call_id))  # leaves the old queue
        self._move(call, T.ENQUEUED)
        call.queue, call.queued_at, call.connected_at, call.position = queue, self._now, None, None
        call.segment += 1
        path = list(call.interp.path) if call.interp is not None else []
        data = {"caller": call.caller, "transferred": True, "ivr_path": path}
        self._acd_safe(
            acd.events.CallEnqueued(call_id=call.call_id, queue=queue, priority=priority, data=data)
        )
        self._work.append(lambda: self._hold_music(call))
        self._cues_on(call)

    def _hold_music(self, call: Call) -> None:
        if call.phase is P.QUEUED and (call.interp is None or call.interp.phase is ivr.Phase.DONE):
            self._local_prompt(call, HOLD_PROMPT, loop=True)

    def _control_recording(self, call: Call, action: str) -> None:
        if action not in ("start", "pause", "resume", "stop"):
            raise CallUsageError('"action" must be start, pause, resume or stop', code="cti.bad_request")
        if action == "start":
            if call.recording is not None:
                raise CallUsageError(
                    f"call {call.call_id} is already being recorded", code="recording.active"
                )
            if call.phase not in (P.CONNECTED, P.ASSISTED) or call.agent_leg is None:
                raise CallUsageError(
                    f"call {call.call_id} is not talking to an agent", code="call.not_connected"
                )
            call.segment += 1
            self._start_recording(call, call.agent_leg)
            return
        if call.recording is None:
            raise CallUsageError(f"call {call.call_id} is not being recorded", code="recording.none")
        if action == "stop":
            self._finish_recordings(call)
            return
        paused = action == "pause"
        legs = tuple(leg for leg in (call.leg, call.agent_leg) if leg)
        if not paused and call.secure:
            raise CallUsageError(
                f"call {call.call_id} is in a secure step; the recording resumes when it ends",
                code="recording.secure",
            )
        self._emit(fx.PauseRecording(legs=legs, paused=paused))
        self._mark_gap(call, paused, "cti")
        self._cues_pause(call, paused or call.secure)

    # ---------------------------------------------------------------- assist
    def _assist(self, call: Call, name: str) -> None:
        flow = self.flows.get(name) or call.flows.get(name)
        if flow is None:
            known = ", ".join(sorted(self.flows))
            raise CallUsageError(f"no flow {name!r}; known: {known}", code="flow.unknown")
        if call.outbound:
            raise CallUsageError("click-to-dial calls cannot be assisted", code="call.not_assistable")
        assert call.agent_leg is not None
        caller = call.interp.variables.get("caller") if call.interp is not None else None
        call.assist = self._interpreter(call, flow, dict(caller) if isinstance(caller, Mapping) else None)
        self._move(call, T.ASSIST)
        self._emit(fx.Unbridge(a=call.leg, b=call.agent_leg))  # the agent hears nothing of it
        self._sync_media(call)  # a supervisor hears nothing of it either
        self._publish(ev.AssistStarted(call_id=call.call_id, agent_id=call.agent_id or "", flow=flow.name))
        self._log(call, "assist_started", flow=flow.name)
        self._step(call, lambda i: i.start(self._now))

    def _assist_done(self, call: Call, reason: str) -> None:
        interp = call.assist
        assert interp is not None
        before = call.interp.variables if call.interp is not None else {}
        declared = interp.root.variables
        collected = {  # what the flow declares or set; secure values are "****" already
            k: v
            for k, v in interp.variables.items()
            if k not in BUILTIN_VARIABLES and (k in declared or k not in before or before[k] != v)
        }
        self._close_ear(call)
        if call.playing is not None:
            call.playing = None
            self._emit(fx.StopPlay(call_id=call.call_id, leg=call.leg))
        call.assist = None
        call.deadline = None
        self._move(call, T.ASSIST_DONE)
        assert call.agent_leg is not None
        self._emit(fx.Bridge(a=call.leg, b=call.agent_leg))
        self._sync_media(call)
        self._publish(
            ev.AssistDone(
                call_id=call.call_id,
                agent_id=call.agent_id or "",
                flow=interp.root.name,
                result=reason,
                variables=collected,
                inputs=tuple(dict(i) for i in interp.inputs),
            )
        )
        self._log(call, "assist_done", flow=interp.root.name, result=reason, path=list(interp.path))

    # ------------------------------------------------------------ click-to-dial
    def _make_call(self, e: inp.MakeCall) -> None:
        if e.agent_id not in self.router.agents:
            raise CallUsageError(f"no agent {e.agent_id!r} is configured", code="acd.unknown_agent")
        if self.router.agent_state(e.agent_id) is not acd.AgentState.AVAILABLE:
            state = self.router.agent_state(e.agent_id).value
            raise CallUsageError(
                f"agent {e.agent_id} is {state}; make calls when available", code="acd.agent_busy"
            )
        if e.call_id in self.calls:
            raise CallUsageError(f"call id {e.call_id} is already in use", code="call.duplicate_id")
        # no inbound offers while the agent makes the call
        self._acd_outputs(
            self.router.handle(
                acd.events.AgentWentNotReady(agent_id=e.agent_id, reason="outbound"), self._now
            )
        )
        call = self._legless(e.call_id, e.to, P.OUTBOUND_AGENT)
        call.outbound, call.outbound_to, call.agent_id = True, e.to, e.agent_id
        leg = self._new_leg(call)
        contact = self.router.agents[e.agent_id].contact
        self._emit(
            fx.Dial(
                leg=leg,
                uri=contact,
                headers={"X-Hotline-Call-Id": e.call_id, "X-Hotline-Dial": e.to},
                media=self.config.agent_media.get(e.agent_id, "none"),
            )
        )
        call.ringing[e.agent_id] = AgentLeg(agent_id=e.agent_id, leg=leg)
        self._by_leg[leg] = call
        self._publish(
            ev.OutboundStarted(
                call_id=e.call_id,
                agent_id=e.agent_id,
                to=e.to,
                purpose=e.purpose,
                service_code=call.service_code,
            )
        )
        self._emit(
            fx.InsertCall(
                call_id=e.call_id,
                fields={"caller": e.to, "started_at": iso_utc(self._wall), "service_code": call.service_code},
            )
        )
