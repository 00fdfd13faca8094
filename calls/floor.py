"""The contact-center floor: supervisors monitoring calls, attended transfers and three-way
conferences, and agents' wrap-up codes. A mixin of :class:`calls.CallController` (pure: no
I/O, no clock reads; everything comes in with the controller's ``now``/``wall``).

Audio is built on the conference bridge. The caller and the agent stay bridged both ways
(``Bridge``); a supervisor is added with one-way ``Transmit`` edges, recomputed from the
call's phase and the monitoring mode by :meth:`FloorMixin._sync_media` and applied as a diff:

- listen: caller -> supervisor, agent side -> supervisor;
- whisper: + supervisor -> agent side;
- barge: + supervisor -> caller, and the supervisor is mixed into the agent's recording channel.

The "agent side" is the agent, plus the consulted colleague while they talk (consult,
conference); the caller is left out while on hold (consult) or in an assist flow.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import acd
import ivr

from . import effects as fx
from . import events as ev
from . import inputs as inp
from .call import Call, Consultation, Monitoring
from .errors import CallUsageError
from .phases import TALKING, CallPhase, CallTrigger

P, T = CallPhase, CallTrigger

MODES = ("listen", "whisper", "barge")
HOLD = ivr.Prompt(id="pls-hold-while-try", text="Please hold.")  # the caller's music during a consult
MAX_NOTE = 500  # characters of a disposition note
#: SIP final codes of a leg we dialled -> the reason reported (a copy of controller.RING_CAUSES)
_RING = {486: "busy", 600: "busy", 603: "declined", 480: "unavailable", 404: "not_found", 408: "no_answer"}


class FloorMixin:
    """Supervisor monitoring, consult/conference/attended transfer, dispositions."""

    if TYPE_CHECKING:  # provided by CallController
        router: acd.Router
        calls: dict[str, Call]
        _by_leg: dict[str, Call]
        _now: float
        _wall: float
        _work: deque[Callable[[], None]]
        config: Any

        def _emit(self, effect: fx.Effect) -> None: ...
        def _publish(self, event: Any) -> None: ...
        def _log(self, call: Call, name: str, level: str = "info", **fields: Any) -> None: ...
        def _move(self, call: Call, trigger: CallTrigger) -> None: ...
        def _new_leg(self, call: Call) -> str: ...
        def call(self, call_id: str) -> Call: ...
        def live_calls(self) -> list[Call]: ...
        def _acd_outputs(self, outputs: list[acd.events.Output]) -> None: ...
        def _acd_safe(self, event: acd.events.Input) -> None: ...
        def _local_prompt(self, call: Call, prompt: ivr.Prompt, *, loop: bool = False) -> int: ...
        def _finish_recordings(self, call: Call) -> None: ...
        def _start_recording(self, call: Call, agent_leg: str) -> None: ...

    _wrapups: dict[str, tuple[str, str | None]]  # agent id -> (call id, queue) of the call it left last

    def _floor_init(self) -> None:
        self._wrapups = {}

    # ============================================================ commands
    def _floor_command(self, event: inp.Input) -> bool:
        """Run a floor command; False when ``event`` is not one."""
        match event:
            case inp.Monitor():
                self._monitor(event)
            case inp.MonitorMode(call_id=cid, mode=mode, by=by):
                self._monitor_mode(cid, mode, by)
            case inp.MonitorStop(call_id=cid, by=by):
                call = self.call(cid)
                if call.monitor is None:
                    raise CallUsageError(f"call {cid} is not being monitored", code="monitor.none")
                self._end_monitor(call, "stopped", by=by)
            case inp.Consult():
                self._consult(event)
            case inp.ConsultCancel(call_id=cid, agent_id=aid):
                call = self._consulting(cid, aid, (P.CONSULTING, P.CONFERENCE))
                assert call.consult is not None
                self._drop_colleague(call)
                self._consult_over(call, "cancelled")
            case inp.Conference(call_id=cid, agent_id=aid):
                self._conference(self._consulting(cid, aid, (P.CONSULTING,), answered=True))
            case inp.TransferComplete(call_id=cid, agent_id=aid):
                self._transfer_complete(
                    self._consulting(cid, aid, (P.CONSULTING, P.CONFERENCE), answered=True)
                )
            case inp.SetDisposition():
                self._set_disposition(event)
            case _:
                return False
        return True

    # ============================================================ monitoring
    def _monitor(self, e: inp.Monitor) -> None:
        if e.mode not in MODES:
            raise CallUsageError('"mode" must be listen, whisper or barge', code="cti.bad_request")
        call = self.call(e.call_id)
        if call.phase not in TALKING or call.agent_leg is None:
            raise CallUsageError(f"call {e.call_id} is not talking to an agent", code="call.not_connected")
        if call.monitor is not None:
            raise CallUsageError(
                f"call {e.call_id} is already monitored by {call.monitor.supervisor}; "
                "change the mode with call.monitor_mode or stop it first",
                code="monitor.active",
            )
        sup = e.supervisor.strip()
        agent_id: str | None = None
        made_not_ready = False
        if sup.startswith(("sip:", "sips:")):
            uri = sup
        else:
            if sup not in self.router.agents:
                raise CallUsageError(
                    f"no agent {sup!r} is configured; give the supervisor's agent id or a SIP URI",
                    code="acd.unknown_agent",
                )
            if sup == call.agent_id:
                raise CallUsageError(f"agent {sup} cannot monitor their own call", code="monitor.self")
            state = self.router.agent_state(sup)
            if state in (acd.AgentState.RESERVED, acd.AgentState.ON_CALL):
                raise CallUsageError(
                    f"supervisor {sup} is {state.value}: their phone is busy", code="monitor.supervisor_busy"
                )
            if state is acd.AgentState.AVAILABLE:  # no ACD offer rings them while they monitor
                self._acd_outputs(
                    self.router.handle(
                        acd.events.AgentWentNotReady(agent_id=sup, reason="monitoring"), self._now
                    )
                )
                made_not_ready = True
            agent_id = sup
            uri = self.router.agents[sup].contact  # the configured contact, or the login one
        leg = self._new_leg(call)
        self._emit(
            fx.Dial(
                leg=leg,
                uri=uri,
                headers={"X-Hotline-Call-Id": call.call_id, "X-Hotline-Monitor": e.mode},
            )
        )
        self._by_leg[leg] = call
        call.monitor = Monitoring(
            supervisor=sup, agent_id=agent_id, leg=leg, mode=e.mode, by=e.by, made_not_ready=made_not_ready
        )
        self._log(call, "monitor_ringing", supervisor=sup, mode=e.mode, by=e.by)

    def _monitor_mode(self, call_id: str, mode: str, by: str) -> None:
        if mode not in MODES:
            raise CallUsageError('"mode" must be listen, whisper or barge', code="cti.bad_request")
        call = self.call(call_id)
        m = call.monitor
        if m is None:
            raise CallUsageError(f"call {call_id} is not being monitored", code="monitor.none")
        if mode == m.mode:
            return
        previous, m.mode = m.mode, mode
        self._sync_media(call)
        if m.answered_at is not None:
            self._publish(
                ev.MonitorChanged(call_id=call_id, supervisor=m.supervisor, mode=mode, previous=previous)
            )
            self._audit(call, m, "changed", by=by, previous=previous)

    def _monitor_leg(self, call: Call, m: Monitoring, event: Any) -> None:
        match event:
            case inp.LegAnswered():
                m.confirmed = True
            case inp.LegMediaReady():
                m.media = True
            case inp.LegEnded(code=code):
                self._by_leg.pop(m.leg, None)
                self._forget_leg(call, m.leg)
                reason = "supervisor_hangup" if m.answered_at is not None else _RING.get(code, f"sip_{code}")
                self._end_monitor(call, reason, hang_up=False)
                return
            case _:
                return
        if m.confirmed and m.media and m.answered_at is None:
            m.answered_at = self._now
            self._publish(
                ev.MonitorStarted(
                    call_id=call.call_id, supervisor=m.supervisor, mode=m.mode, agent_id=call.agent_id
                )
            )
            self._audit(call, m, "started")
            self._sync_media(call)

    def _end_monitor(self, call: Call, reason: str, *, hang_up: bool = True, by: str = "") -> None:
        m = call.monitor
        if m is None:
            return
        call.monitor = None
        if hang_up:
            self._by_leg.pop(m.leg, None)
            self._forget_leg(call, m.leg)  # the BYE tears its audio down
            self._emit(fx.Hangup(leg=m.leg))
        self._sync_media(call)
        seconds = round(self._now - m.answered_at, 3) if m.answered_at is not None else 0.0
        self._publish(
            ev.MonitorEnded(call_id=call.call_id, supervisor=m.supervisor, reason=reason, seconds=seconds)
        )
        self._audit(
            call, m, "ended" if m.answered_at is not None else "failed", by=by, reason=reason, seconds=seconds
        )
        self._log(call, "monitor_ended", supervisor=m.supervisor, reason=reason, seconds=seconds)
        if m.made_not_ready and m.agent_id is not None:
            self._restore_ready(m.agent_id, "monitoring")

    def _audit(self, call: Call, m: Monitoring, result: str, *, by: str = "", **more: Any) -> None:
        self._emit(
            fx.Audit(
                action="supervisor.monitor",
                who=by or m.by,
                what=call.call_id,
                result=result,
                fields={"supervisor": m.supervisor, "mode": m.mode, "agent_id": call.agent_id, **more},
            )
        )

    # ============================================================ media graph
    def _desired(self, call: Call) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """The one-way edges and the recording mixes the call should have now."""
        edges: set[tuple[str, str]] = set()
        mixes: set[tuple[str, str]] = set()
        if call.phase not in TALKING:
            return edges, mixes
        c = call.consult
        agent_side = [call.agent_leg] if call.agent_leg else []
        caller_side = [call.leg] if call.leg and call.phase in (P.CONNECTED, P.CONFERENCE) else []
        if c is not None and c.confirmed and c.media and call.phase in (P.CONSULTING, P.CONFERENCE):
            agent_side.append(c.leg)
            if call.phase is P.CONFERENCE and call.agent_leg:
                mixes.add((c.leg, call.agent_leg))
        m = call.monitor
        if m is not None and m.answered_at is not None:
            for x in caller_side + agent_side:
                edges.add((x, m.leg))
            if m.mode in ("whisper", "barge"):
                edges.update((m.leg, a) for a in agent_side)
            if m.mode == "barge":
                edges.update((m.leg, x) for x in caller_side)
                if call.agent_leg:
                    mixes.add((m.leg, call.agent_leg))
        return edges, mixes

    def _sync_media(self, call: Call) -> None:
        """Apply the difference between the edges the call has and the ones it should have."""
        edges, mixes = self._desired(call)
        for src, dst in sorted(call.edges - edges):
            self._emit(fx.StopTransmit(src=src, dst=dst))
        for src, dst in sorted(edges - call.edges):
            self._emit(fx.Transmit(src=src, dst=dst))
        for src, into in sorted(call.mixes - mixes):
            self._emit(fx.MixRecording(src=src, into=into, on=False))
            self._mix_closed(call, src)
        for src, into in sorted(mixes - call.mixes):
            self._emit(fx.MixRecording(src=src, into=into, on=True))
            self._mix_opened(call, src)
        call.edges, call.mixes = edges, mixes

    def _forget_leg(self, call: Call, leg: str) -> None:
        """A leg is gone (or going): its audio is torn down with it, nothing to undo."""
        call.edges = {e for e in call.edges if leg not in e}
        for src, _into in [m for m in call.mixes if leg in m]:
            self._mix_closed(call, src)
        call.mixes = {m for m in call.mixes if leg not in m}

    def _mix_party(self, call: Call, src: str) -> dict[str, str | None]:
        if call.monitor is not None and call.monitor.leg == src:
            return {"party": "supervisor", "id": call.monitor.supervisor, "reason": "barge"}
        c = call.consult
        return {"party": "colleague", "id": (c.target_agent or c.to) if c else None, "reason": "conference"}

    def _mix_opened(self, call: Call, src: str) -> None:
        if call.recording is not None:
            entry = {**self._mix_party(call, src), "channel": "right", "leg": src}
            call.mixed.append({**entry, "from": _iso(self._wall), "to": None})

    def _mix_closed(self, call: Call, src: str) -> None:
        for entry in call.mixed:
            if entry.get("leg") == src and entry["to"] is None:
                entry["to"] = _iso(self._wall)

    def _floor_recording_started(self, call: Call) -> None:
        """A new recording segment: it starts with whoever is mixed in now."""
        call.mixed = []
        for src, _ in sorted(call.mixes):
            self._mix_opened(call, src)

    def _floor_sidecar(self, call: Call) -> dict[str, Any]:
        """What the floor adds to a recording's sidecar (open periods end now)."""
        for entry in call.mixed:
            if entry["to"] is None:
                entry["to"] = _iso(self._wall)
        mixed = [{k: v for k, v in e.items() if k != "leg"} for e in call.mixed]
        call.mixed = []
        return {"mixed": mixed}

    # ============================================================ consult, conference, transfer
    def _consulting(
        self, call_id: str, agent_id: str | None, phases: tuple[CallPhase, ...], *, answered: bool = False
    ) -> Call:
        call = self.call(call_id)
        self._check_agent(call, agent_id)
        if call.phase not in phases or call.consult is None:
            raise CallUsageError(f"call {call_id} has no consultation going on", code="consult.none")
        if answered and not (call.consult.confirmed and call.consult.media):
            raise CallUsageError(
                f"the colleague has not answered call {call_id}'s consultation yet",
                code="consult.not_answered",
            )
        return call

    def _check_agent(self, call: Call, agent_id: str | None) -> None:
        if agent_id is not None and agent_id != call.agent_id:
            raise CallUsageError(f"call {call.call_id} is not agent {agent_id}'s call", code="call.not_yours")

    def _consult(self, e: inp.Consult) -> None:
        call = self.call(e.call_id)
        self._check_agent(call, e.agent_id)
        if call.phase is not P.CONNECTED or call.agent_leg is None:
            raise CallUsageError(f"call {e.call_id} is not talking to an agent", code="call.not_connected")
        if call.outbound:
            raise CallUsageError("click-to-dial calls cannot be transferred", code="call.not_transferable")
        to = e.to.strip()
        target: str | None = None
        if to.startswith(("sip:", "sips:")):
            uri = to
        elif to in self.router.agents:
            if to == call.agent_id:
                raise CallUsageError("an agent cannot consult themselves", code="consult.self")
            state = self.router.agent_state(to)
            if state is not acd.AgentState.AVAILABLE:
                raise CallUsageError(f"agent {to} is {state.value}, not available", code="acd.agent_busy")
            target = to
        elif to in self.router.queues:
            target = self._available_agent(to, exclude=call.agent_id)
            if target is None:
                raise CallUsageError(
                    f"no agent of queue {to} is available now; try later or transfer to the queue",
                    code="acd.no_agent_available",
                )
        else:
            raise CallUsageError(
                f"'{to}' is neither an agent id, a queue nor a SIP URI", code="consult.unknown_target"
            )
        if target is not None:  # the ACD offers them nothing while they take the consultation
            self._acd_outputs(
                self.router.handle(acd.events.AgentWentNotReady(agent_id=target, reason="consult"), self._now)
            )
            uri = self.router.agents[target].contact
        self._move(call, T.CONSULT)
        self._emit(fx.Unbridge(a=call.leg, b=call.agent_leg))
        self._local_prompt(call, HOLD, loop=True)  # the caller hears hold music, nothing of the consult
        leg = self._new_leg(call)
        self._emit(
            fx.Dial(
                leg=leg,
                uri=uri,
                headers={
                    "X-Hotline-Call-Id": call.call_id,
                    "X-Hotline-Caller": call.caller,
                    "X-Hotline-Consult": call.agent_id or "",
                },
            )
        )
        self._by_leg[leg] = call
        call.consult = Consultation(
            to=to,
            target_agent=target,
            leg=leg,
            agent_leg=call.agent_leg,
            agent_id=call.agent_id,
            made_not_ready=target is not None,
        )
        self._publish(
            ev.ConsultStarted(call_id=call.call_id, agent_id=call.agent_id, to=to, target_agent=target)
        )
        self._log(call, "consult_started", to=to, target_agent=target)
        self._sync_media(call)

    def _available_agent(self, queue: str, exclude: str | None) -> str | None:
        """The longest-idle available agent who serves ``queue``."""
        found = [
            (a.idle_since, aid)
            for aid, a in self.router.agents.items()
            if aid != exclude and queue in a.member_of and a.state is acd.AgentState.AVAILABLE
        ]
        return min(found)[1] if found else None

    def _consult_leg(self, call: Call, c: Consultation, event: Any) -> None:
        match event:
            case inp.LegAnswered():
                c.confirmed = True
            case inp.LegMediaReady():
                c.media = True
            case inp.LegEnded(code=code):
                self._by_leg.pop(c.leg, None)
                self._forget_leg(call, c.leg)
                answered = c.confirmed and c.media
                self._consult_over(call, "colleague_hangup" if answered else _RING.get(code, f"sip_{code}"))
                return
            case _:
                return
        if c.confirmed and c.media and call.phase is P.CONSULTING and call.agent_leg:
            self._emit(fx.Bridge(a=call.agent_leg, b=c.leg))
            self._publish(
                ev.ConsultConnected(call_id=call.call_id, agent_id=call.agent_id, target_agent=c.target_agent)
            )
            self._sync_media(call)

    def _drop_colleague(self, call: Call) -> None:
        c = call.consult
        assert c is not None
        self._by_leg.pop(c.leg, None)
        self._forget_leg(call, c.leg)
        self._emit(fx.Hangup(leg=c.leg))

    def _consult_over(self, call: Call, reason: str) -> None:
        """No transfer: the agent has the caller back (their colleague is gone or going)."""
        c = call.consult
        assert c is not None
        call.consult = None
        if call.phase is P.CONSULTING:
            self._stop_hold(call)
            if call.agent_leg:
                self._emit(fx.Bridge(a=call.leg, b=call.agent_leg))
        self._move(call, T.CONSULT_ENDED)
        if c.made_not_ready and c.target_agent is not None:
            self._restore_ready(c.target_agent, "consult")
        self._publish(
            ev.ConsultEnded(
                call_id=call.call_id, agent_id=call.agent_id, target_agent=c.target_agent, reason=reason
            )
        )
        self._log(call, "consult_ended", reason=reason)
        self._sync_media(call)

    def _stop_hold(self, call: Call) -> None:
        if call.playing is not None:
            call.playing = None
            self._emit(fx.StopPlay(call_id=call.call_id, leg=call.leg))

    def _conference(self, call: Call) -> None:
        c = call.consult
        assert c is not None and call.agent_leg is not None
        self._stop_hold(call)
        self._move(call, T.CONFERENCE)
        self._emit(fx.Bridge(a=call.leg, b=call.agent_leg))
        self._emit(fx.Bridge(a=call.leg, b=c.leg))
        self._publish(
            ev.ConferenceStarted(call_id=call.call_id, agent_id=call.agent_id, target_agent=c.target_agent)
        )
        self._log(call, "conference_started", target_agent=c.target_agent)
        self._sync_media(call)

    def _transfer_complete(self, call: Call) -> None:
        """The agent leaves; the caller and the colleague talk (a new recording segment)."""
        c = call.consult
        assert c is not None
        old_agent, old_leg = call.agent_id, call.agent_leg
        self._stop_hold(call)
        if call.phase is P.CONSULTING:
            if old_leg:
                self._emit(fx.Unbridge(a=old_leg, b=c.leg))
            self._emit(fx.Bridge(a=call.leg, b=c.leg))
        self._finish_recordings(call)  # the segment with the first agent is complete
        if old_leg:
            self._by_leg.pop(old_leg, None)
            self._forget_leg(call, old_leg)
            self._emit(fx.Hangup(leg=old_leg))
        if old_agent is not None:
            if call.handed_over:  # a colleague passes the call on: they were never the ACD's
                self._restore_ready(old_agent, "consult")
            else:
                self._acd_safe(acd.events.AgentHungUp(call_id=call.call_id, agent_id=old_agent))
                self._wrapups[old_agent] = (call.call_id, call.queue)
        call.consult = None
        call.agent_leg, call.agent_id = c.leg, c.target_agent
        call.handed_over = True
        call.handover_agent = c.target_agent if c.made_not_ready else None
        call.transfers.append(
            {
                "from": old_agent,
                "to": c.target_agent,
                "target": c.to,
                "kind": "attended",
                "at": _iso(self._wall),
            }
        )
        self._move(call, T.TRANSFERRED)
        call.segment += 1
        self._start_recording(call, c.leg)
        self._publish(
            ev.CallTransferred(
                call_id=call.call_id, from_agent=old_agent, to_agent=c.target_agent, to=c.to, kind="attended"
            )
        )
        self._log(call, "transfer_completed", from_agent=old_agent, to_agent=c.target_agent, to=c.to)
        self._sync_media(call)

    # ============================================================ hooks from the controller
    def _floor_leg_event(self, call: Call, event: Any) -> bool:
        """A leg of the floor's (a supervisor's, a colleague's): handled here."""
        m = call.monitor
        if m is not None and event.leg == m.leg:
            self._monitor_leg(call, m, event)
            return True
        c = call.consult
        if c is not None and event.leg == c.leg:
            self._consult_leg(call, c, event)
            return True
        return False

    def _floor_agent_left(self, call: Call, leg: str) -> bool:
        """The agent's leg ended. True when the floor took care of the call: hanging up during
        a consultation the colleague answered (or a conference) completes the transfer."""
        self._forget_leg(call, leg)
        c = call.consult
        if c is not None and c.confirmed and c.media and call.phase in (P.CONSULTING, P.CONFERENCE):
            self._transfer_complete(call)
            return True
        if c is not None:
            self._drop_colleague(call)
            self._consult_over(call, "cancelled")
        self._end_monitor(call, "agent_left")
        return False

    def _floor_call_ending(self, call: Call) -> None:
        """The call life ends: the supervisor and any colleague leave; agents get their state
        back; the agent who talked may still give a disposition while in wrap-up."""
        self._end_monitor(call, "call_ended")
        c = call.consult
        if c is not None:
            call.consult = None
            if c.leg != call.agent_leg and self._by_leg.get(c.leg) is call:
                self._drop_colleague_leg(call, c.leg)
            if c.made_not_ready and c.target_agent is not None:
                self._restore_ready(c.target_agent, "consult")
        if call.handover_agent is not None:
            self._restore_ready(call.handover_agent, "consult")
        call.edges.clear()
        if call.agent_id is not None and call.connected_at is not None and not call.handed_over:
            self._wrapups[call.agent_id] = (call.call_id, call.queue)

    def _drop_colleague_leg(self, call: Call, leg: str) -> None:
        self._by_leg.pop(leg, None)
        self._forget_leg(call, leg)
        self._emit(fx.Hangup(leg=leg))

    def _floor_agent_moved(self, call: Call) -> None:
        """The agent leaves a call that goes on elsewhere (requeued): supervisor out, wrap-up code ok."""
        self._end_monitor(call, "agent_left")
        if call.agent_id is not None:
            self._wrapups[call.agent_id] = (call.call_id, call.queue)

    def _floor_summary(self, call: Call) -> dict[str, Any]:
        """What the floor adds to call.ended's summary."""
        out: dict[str, Any] = {"disposition_code": call.disposition}
        if call.transfers:
            out["transfers"] = [dict(t) for t in call.transfers]
        return out

    def _restore_ready(self, agent_id: str, reason: str) -> None:
        """Put an agent we set not-ready (monitoring, consult) back, unless they changed it."""
        agent = self.router.agents.get(agent_id)
        if agent is not None and agent.state is acd.AgentState.NOT_READY and agent.reason == reason:
            self._acd_safe(acd.events.AgentBecameReady(agent_id=agent_id))

    # ============================================================ dispositions
    def _set_disposition(self, e: inp.SetDisposition) -> None:
        aid = e.agent_id
        if aid not in self.router.agents:
            raise CallUsageError(f"no agent {aid!r} is configured", code="acd.unknown_agent")
        if len(e.note) > MAX_NOTE:
            raise CallUsageError(f'"note" may hold at most {MAX_NOTE} characters', code="cti.bad_request")
        talking = [
            c
            for c in self.live_calls()
            if c.phase in TALKING and c.agent_id == aid and (e.call_id is None or c.call_id == e.call_id)
        ]
        call: Call | None = talking[0] if talking else None
        wrap = self._wrapups.get(aid)
        if call is not None:
            call_id, queue, during = call.call_id, call.queue, "talk"
        elif (
            wrap is not None
            and (e.call_id is None or e.call_id == wrap[0])
            and self.router.agent_state(aid) is acd.AgentState.WRAP_UP
        ):
            (call_id, queue), during = wrap, "wrap_up"
        else:
            which = f"call {e.call_id}" if e.call_id else "a call"
            raise CallUsageError(
                f"agent {aid} is neither talking on nor wrapping up {which}", code="disposition.no_call"
            )
        allowed = tuple(self.config.dispositions.get(queue or "", ())) or tuple(
            self.config.default_dispositions
        )
        if not allowed:
            raise CallUsageError(
                f"no dispositions are configured for {'queue ' + queue if queue else 'this call'}; "
                "set `dispositions` in its [[acd.queues]] or in [acd]",
                code="disposition.not_configured",
            )
        if e.code not in allowed:
            raise CallUsageError(
                f"'{e.code}' is not a disposition of {'queue ' + queue if queue else 'this call'}; "
                f"use one of: {', '.join(allowed)}",
                code="disposition.unknown",
            )
        if call is not None:
            call.disposition = e.code
        self._emit(fx.UpdateCall(call_id=call_id, fields={"disposition": e.code, "disposition_note": e.note}))
        self._publish(
            ev.DispositionSet(
                call_id=call_id, agent_id=aid, queue=queue, code=e.code, note=e.note, during=during
            )
        )

    def dispositions_for(self, queue: str | None) -> tuple[str, ...]:
        """The wrap-up codes an agent may give a call of ``queue``."""
        codes: Mapping[str, Any] = self.config.dispositions
        return tuple(codes.get(queue or "", ())) or tuple(self.config.default_dispositions)


def _iso(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
