"""Voice of the customer, the controller's part: what a live cue does to a call.

The cue workers (hotline/cues.py) only report what they heard: a phrase of a configured
category (:class:`calls.inputs.KeywordHeard`) or a few seconds' agitation score
(:class:`calls.inputs.AgitationMeasured`). Here the controller decides, per
:class:`CuePolicy`: publish ``call.keyword`` / ``call.agitation`` (with hysteresis and a rate
limit), raise ``alert.raised`` for a supervisor, raise the priority of a caller still queued,
and keep the cue for the call's summary and the screen-pop of the next agent offered.

It also decides when the taps run: from the queue (``while_queued``) or the bridge to the
end, paused whenever the call is in a secure step or its recording is paused (a secure gap
stays unheard by the live cues too), and after the call the recording goes to the QA pool.

A mixin of :class:`calls.CallController` (kept apart so the controller's own methods change
only by one call at each hook). Pure: no clock, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import acd

from . import effects as fx
from . import events as ev
from . import inputs as inp
from .call import Call
from .phases import LIVE, CallPhase

if TYPE_CHECKING:
    from .controller import ControllerConfig

P = CallPhase

#: what a category (or agitation) can do; "publish" (the event) always happens
ACTIONS = frozenset({"alert", "priority", "screen_pop", "summary"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CuePolicy:
    """What live cues do ([analytics] in config.toml). Durations are seconds."""

    live: bool = True  # tap legs for live cues (false: post-call QA only)
    channels: tuple[str, ...] = ("caller",)  # legs tapped: "caller", "agent"
    while_queued: bool = True  # tap the caller while waiting in a queue too (not only when bridged)
    actions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # category -> ACTIONS
    default_actions: tuple[str, ...] = ("alert", "screen_pop", "summary")  # a category not listed
    agitation_level: float = 0.6  # call.agitation (agitated) when a score reaches this ...
    agitation_clear: float = 0.4  # ... and (not agitated) once one falls under this
    agitation_min_interval: float = 30.0  # seconds between two raises on one channel
    agitation_actions: tuple[str, ...] = ("alert", "priority", "screen_pop", "summary")
    priority_boost: int = 3  # added once to a queued caller's priority ("priority" action)
    qa: bool = False  # post-call transcripts and QA of every recording (AnalyzeRecording)

    def actions_for(self, category: str) -> tuple[str, ...]:
        return tuple(self.actions.get(category, self.default_actions))


class CueMixin:
    """The cue decisions of the call controller (mixed into :class:`CallController`)."""

    if TYPE_CHECKING:  # provided by CallController
        config: ControllerConfig
        calls: dict[str, Call]
        router: acd.Router
        _now: float
        _wall: float
        _qa_pending: dict[str, fx.AnalyzeRecording]

        def _emit(self, effect: fx.Effect) -> None: ...
        def _publish(self, event: Any) -> None: ...
        def _log(self, call: Call, name: str, level: str = "info", **fields: Any) -> None: ...
        def _acd_outputs(self, outputs: list[acd.events.Output]) -> None: ...

    # ------------------------------------------------------------- the taps
    def _cue_policy(self) -> CuePolicy | None:
        return self.config.cues

    def _call_language(self, call: Call) -> str:
        interp = call.assist or call.interp
        language = interp.variables.get("language") if interp is not None else None
        return str(language) if isinstance(language, str) and language else call.flow.language

    def _cues_on(self, call: Call) -> None:
        """Tap what the policy asks for in the call's present phase (queued: the caller;
        connected: the caller and/or the agent). Already-tapped channels are left alone."""
        policy = self._cue_policy()
        if policy is None or not policy.live or call.phase not in LIVE or not call.leg:
            return
        taps: list[tuple[str, str]] = []
        hear_caller = call.phase is P.CONNECTED or (call.phase is P.QUEUED and policy.while_queued)
        if "caller" in policy.channels and "caller" not in call.cue_channels and hear_caller:
            taps.append(("caller", call.leg))
        hear_agent = call.phase is P.CONNECTED and bool(call.agent_leg)
        if "agent" in policy.channels and "agent" not in call.cue_channels and hear_agent:
            assert call.agent_leg is not None
            taps.append(("agent", call.agent_leg))
        if not taps:
            return
        call.cue_channels.update(channel for channel, _ in taps)
        call.cue_paused = call.secure
        self._emit(
            fx.StartCues(
                call_id=call.call_id, taps=tuple(taps), language=self._call_language(call), paused=call.secure
            )
        )

    def _cues_off(self, call: Call, channels: tuple[str, ...] = ()) -> None:
        gone = tuple(c for c in (channels or tuple(call.cue_channels)) if c in call.cue_channels)
        if not gone:
            return
        call.cue_channels.difference_update(gone)
        self._emit(fx.StopCues(call_id=call.call_id, channels=() if not call.cue_channels else gone))

    def _cues_pause(self, call: Call, paused: bool) -> None:
        """A secure step or a recording pause starts (or ends): the taps stop (or resume)."""
        if call.cue_channels and call.cue_paused != paused:
            call.cue_paused = paused
            self._emit(fx.PauseCues(call_id=call.call_id, paused=paused))

    # ---------------------------------------------------------------- cues
    def _cue_input(self, event: inp.KeywordHeard | inp.AgitationMeasured | inp.CuesFailed) -> None:
        call = self.calls.get(event.call_id)
        policy = self._cue_policy()
        if call is None or call.phase not in LIVE or policy is None:
            return  # a late report for a call that ended: nothing to decide
        match event:
            case inp.KeywordHeard():
                if event.channel in call.cue_channels and not call.cue_paused:
                    self._keyword(call, event, policy)
            case inp.AgitationMeasured():
                if event.channel in call.cue_channels and not call.cue_paused:
                    self._agitation(call, event, policy)
            case inp.CuesFailed(error=error):
                self._log(call, "cues_failed", "error", error=error)
                call.cue_channels.clear()

    def _keyword(self, call: Call, e: inp.KeywordHeard, policy: CuePolicy) -> None:
        offset = round(e.at - call.started, 3)
        self._publish(
            ev.CallKeyword(
                call_id=call.call_id,
                channel=e.channel,
                category=e.category,
                word=e.phrase,
                confidence=round(e.confidence, 3),
                offset=offset,
                agent_id=call.agent_id if call.phase is P.CONNECTED else None,
                queue=call.queue,
            )
        )
        self._log(
            call,
            "cue_keyword",
            channel=e.channel,
            category=e.category,
            word=e.phrase,
            confidence=round(e.confidence, 3),
            offset=offset,
            latency_ms=round(1000 * e.latency, 1),
        )
        cue = {"kind": "keyword", "channel": e.channel, "category": e.category, "word": e.phrase,
               "confidence": round(e.confidence, 3), "offset": offset}  # fmt: skip
        actions = policy.actions_for(e.category)
        message = f'"{e.phrase}" ({e.category}) heard from the {e.channel}'
        self._cue_actions(call, cue, actions, policy, "call.keyword", e.category, message, e.confidence, 0.0)

    def _agitation(self, call: Call, e: inp.AgitationMeasured, policy: CuePolicy) -> None:
        channel = e.channel
        if channel == "caller":
            call.agitation_peak = max(call.agitation_peak, e.score)
        offset = round(e.at - call.started, 3)
        was = call.agitated.get(channel, False)
        if not was and e.score >= policy.agitation_level:
            last = call.agitation_raised_at.get(channel)
            if last is not None and self._now - last < policy.agitation_min_interval:
                return  # rate-limited: the next window above the level asks again
            call.agitated[channel] = True
            call.agitation_raised_at[channel] = self._now
            level = policy.agitation_level
        elif was and e.score < policy.agitation_clear:
            call.agitated[channel] = False
            level = policy.agitation_clear
        else:
            return
        agitated = call.agitated[channel]
        self._publish(
            ev.CallAgitation(
                call_id=call.call_id,
                channel=channel,
                agitated=agitated,
                score=round(e.score, 3),
                level=level,
                offset=offset,
                agent_id=call.agent_id if call.phase is P.CONNECTED else None,
                queue=call.queue,
            )
        )
        self._log(call, "cue_agitation", channel=channel, agitated=agitated, score=round(e.score, 3))
        if not agitated:
            return
        cue = {"kind": "agitation", "channel": channel, "score": round(e.score, 3), "offset": offset}
        message = f"the {channel} sounds agitated (score {e.score:.2f})"
        self._cue_actions(
            call,
            cue,
            policy.agitation_actions,
            policy,
            "call.agitation",
            "agitation",
            message,
            e.score,
            level,
        )

    def _cue_actions(
        self,
        call: Call,
        cue: dict[str, Any],
        actions: tuple[str, ...],
        policy: CuePolicy,
        code: str,
        category: str,
        message: str,
        value: float,
        limit: float,
    ) -> None:
        agent = call.agent_id if call.phase is P.CONNECTED else None
        if "alert" in actions:
            self._publish(
                ev.CallAlert(
                    code=code,
                    message=f"call {call.call_id}: {message}",
                    value=round(value, 3),
                    limit=limit,
                    call_id=call.call_id,
                    category=category,
                    agent_id=agent,
                    queue=call.queue,
                )
            )
        if "summary" in actions:
            call.cues.append(cue)
        if "screen_pop" in actions:
            call.pop_cues.append(cue)
        queued = call.phase is P.QUEUED and self.router.has_call(call.call_id)
        if "priority" in actions and policy.priority_boost and not call.boosted and queued:
            priority = (call.priority or 0) + policy.priority_boost
            call.boosted = True
            call.priority = priority
            self._acd_outputs(
                self.router.handle(
                    acd.events.CallPriorityChanged(call_id=call.call_id, priority=priority), self._now
                )
            )
            self._log(call, "cue_priority_raised", priority=priority, reason=category)

    # ----------------------------------------------------- screen-pop, summary
    def _with_cues(self, out: Any) -> Any:
        """An agent.offered gets the cues heard so far and the caller's sentiment."""
        if not isinstance(out, acd.events.AgentOffered):
            return out
        call = self.calls.get(out.call_id)
        if call is None:
            return out
        extra: dict[str, Any] = {}
        if call.pop_cues:
            extra["cues"] = [dict(c) for c in call.pop_cues]
        caller = call.interp.variables.get("caller") if call.interp is not None else None
        sentiment = caller.get("sentiment") if isinstance(caller, Mapping) else None
        if sentiment:
            extra["caller_sentiment"] = dict(sentiment)
        return dataclasses.replace(out, data={**out.data, **extra}) if extra else out

    def _cue_summary(self, call: Call) -> dict[str, Any]:
        if self._cue_policy() is None:
            return {}
        return {"cues": [dict(c) for c in call.cues], "agitation_peak": round(call.agitation_peak, 3)}

    # ------------------------------------------------------------------ QA
    def _note_hold(self, call: Call, hold: bool) -> None:
        """The agent put the caller on hold (or took them off): QA reports hold time."""
        if hold and (not call.holds or call.holds[-1][1] >= 0):
            call.holds.append([self._now, -1.0])
        elif not hold and call.holds and call.holds[-1][1] < 0:
            call.holds[-1][1] = self._now

    def _qa_recording(self, call: Call, final: Path) -> None:
        """The recording is closed: remember what its analysis needs (the call is gone by the
        time RecordingMerged comes back)."""
        policy = self._cue_policy()
        if policy is None or not policy.qa:
            return
        base = call.connected_at if call.connected_at is not None else call.started
        holds = tuple(
            (round(max(0.0, a - base), 3), round((b if b >= 0 else self._now) - base, 3))
            for a, b in call.holds
        )
        call.holds = []
        self._qa_pending[final.name] = fx.AnalyzeRecording(
            call_id=call.call_id,
            wav=final,
            sidecar=final.with_suffix(".json"),
            number=call.caller,
            language=self._call_language(call),
            queue=call.queue,
            agent_id=call.agent_id,
            cues=tuple(dict(c) for c in call.cues),
            holds=holds,
        )

    def _qa_merged(self, e: inp.RecordingMerged) -> None:
        job = self._qa_pending.pop(Path(e.path).name, None) if e.kind == "call" else None
        if job is None or e.error:
            return
        self._emit(dataclasses.replace(job, wav=Path(e.path), sidecar=Path(e.sidecar)))

    def _qa_done(self, e: inp.QaDone) -> None:
        if e.error:
            self._publish(ev.QaFailed(call_id=e.call_id, error=e.error))
            return
        sentiment = dict(e.sentiment or {})
        self._publish(
            ev.QaReady(
                call_id=e.call_id,
                recording=e.wav,
                sidecar=e.sidecar,
                sha256=e.sha256,
                language=e.language,
                flags=dict(e.flags or {}),
                sentiment=sentiment,
                words=e.words,
            )
        )
        if e.number and "score" in sentiment:
            self._emit(
                fx.RecordSentiment(
                    number=e.number,
                    call_id=e.call_id,
                    wall=e.wall or self._wall,
                    score=float(sentiment["score"]),
                    label=str(sentiment.get("label", "")),
                )
            )
