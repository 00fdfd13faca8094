"""CTI commands of the contact-center floor (docs/floor.md): supervisors monitoring calls,
consultations and conferences, dispositions, and the snapshot the pages start from.

Each becomes one call-controller input (calls/floor.py decides); an agent token may run the
call commands for its own calls only (it passes `agent`; the call must be that agent's).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Mapping
from typing import Any

import calls
import cti_bridge
from calls import inputs as inp

from .command_target import Handler, Target

#: existing call commands an agent token may run for its own calls
OWN_CALL_COMMANDS = ("call.hold", "call.retrieve", "call.hangup", "call.transfer", "call.assist")


def _iso(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _who() -> str:
    token = cti_bridge.current_token.get()
    return token.name if token is not None else "server"


def _optional_agent(args: dict[str, Any]) -> str | None:
    agent = args.get("agent")
    if agent is not None and not isinstance(agent, str):
        raise cti_bridge.CtiError("cti.bad_request", '"agent" must be an agent id')
    return agent


class FloorCommands:
    def __init__(self, server: Target, call_handlers: Mapping[str, Handler]) -> None:
        self.server = server
        self.call_handlers = call_handlers  # the plain call commands, wrapped with the own-call check

    def handlers(self) -> dict[str, Handler]:
        own = {name: self._own(self.call_handlers[name]) for name in OWN_CALL_COMMANDS}
        return {
            **own,
            "call.monitor": self.monitor,
            "call.monitor_mode": lambda a: self._call(
                inp.MonitorMode(call_id=self._cid(a), mode=cti_bridge.require_str(a, "mode"), by=_who())
            ),
            "call.monitor_stop": lambda a: self._call(inp.MonitorStop(call_id=self._cid(a), by=_who())),
            "call.consult": self.consult,
            "call.consult_cancel": lambda a: self._call(
                inp.ConsultCancel(call_id=self._cid(a), agent_id=_optional_agent(a))
            ),
            "call.conference": lambda a: self._call(
                inp.Conference(call_id=self._cid(a), agent_id=_optional_agent(a))
            ),
            "call.transfer_complete": lambda a: self._call(
                inp.TransferComplete(call_id=self._cid(a), agent_id=_optional_agent(a))
            ),
            "agent.disposition": self.disposition,
            "floor.snapshot": self.snapshot,
        }

    # ------------------------------------------------------------- helpers
    @staticmethod
    def _cid(args: dict[str, Any]) -> str:
        return cti_bridge.require_str(args, "call_id")

    def _call(self, event: inp.Input) -> dict[str, Any]:
        self.server.command(event)
        return {}

    def _own(self, handler: Handler) -> Handler:
        """With `agent` given (always, for an agent token), the call must be that agent's."""

        def checked(args: dict[str, Any]) -> dict[str, Any] | Awaitable[dict[str, Any]]:
            agent = _optional_agent(args)
            if agent is not None:
                call = self.server.controller.calls.get(self._cid(args))
                if call is not None and call.agent_id != agent:
                    raise cti_bridge.CtiError(
                        "call.not_yours", f"call {args['call_id']} is not agent {agent}'s call"
                    )
            return handler(args)

        return checked

    # ------------------------------------------------------------ commands
    def monitor(self, args: dict[str, Any]) -> dict[str, Any]:
        call_id = self._cid(args)
        supervisor = cti_bridge.require_str(args, "supervisor")
        mode = args.get("mode", "listen")
        if not isinstance(mode, str):
            raise cti_bridge.CtiError("cti.bad_request", '"mode" must be listen, whisper or barge')
        self.server.command(inp.Monitor(call_id=call_id, supervisor=supervisor, mode=mode, by=_who()))
        return {"mode": mode}

    def consult(self, args: dict[str, Any]) -> dict[str, Any]:
        call_id = self._cid(args)
        to, queue = args.get("to"), args.get("queue")
        target = to if isinstance(to, str) and to and queue is None else queue if to is None else None
        if not isinstance(target, str) or not target:
            raise cti_bridge.CtiError(
                "cti.bad_request", 'give "to" (an agent id or a SIP URI) or "queue" (a queue name)'
            )
        self.server.command(inp.Consult(call_id=call_id, to=target, agent_id=_optional_agent(args)))
        consult = self.server.controller.calls[call_id].consult
        return {"target_agent": consult.target_agent if consult is not None else None}

    def disposition(self, args: dict[str, Any]) -> dict[str, Any]:
        agent = cti_bridge.require_str(args, "agent")
        code = cti_bridge.require_str(args, "code")
        call_id, note = args.get("call_id"), args.get("note", "")
        if call_id is not None and not isinstance(call_id, str):
            raise cti_bridge.CtiError("cti.bad_request", '"call_id" must be a string')
        if not isinstance(note, str):
            raise cti_bridge.CtiError("cti.bad_request", '"note" must be a string')
        self.server.command(inp.SetDisposition(agent_id=agent, code=code, call_id=call_id, note=note))
        return {"code": code}

    def snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        """Everything a page shows, as of event `seq`: subscribe with `since` = seq next."""
        server = self.server
        ctl, router, config = server.controller, server.router, server.config
        now, wall = server._now(), time.time()

        def at(mono: float | None) -> str | None:
            return _iso(wall - (now - mono)) if mono is not None else None

        queues = []
        for q in config.acd.queues:
            status = ctl.queue_status(q.name)
            queues.append(
                {
                    "queue": q.name,
                    "figures": status["figures"],
                    "waiting": status["waiting"],
                    "wrap_up": q.wrap_up,
                    "dispositions": list(ctl.dispositions_for(q.name)),
                }
            )
        agents = []
        for a in config.acd.agents:
            state = router.agents[a.id]
            agents.append(
                {
                    "agent_id": a.id,
                    "name": a.name or a.id,
                    "state": state.state.value,
                    "reason": state.reason,
                    "since": at(state.since) if state.state.value != "logged_out" else None,
                    "call_id": state.call_id,
                    "queues": sorted(state.member_of),
                }
            )
        live = []
        for c in ctl.live_calls():
            m, k = c.monitor, c.consult
            live.append(
                {
                    "call_id": c.call_id,
                    "phase": c.phase.value,
                    "caller": calls.mask_number(c.caller, config.cti.caller_mask),
                    "queue": c.queue,
                    "agent_id": c.agent_id if c.phase in calls.TALKING else None,
                    "since": at(c.connected_at if c.phase in calls.TALKING else c.queued_at or c.started),
                    "monitor": {"supervisor": m.supervisor, "mode": m.mode} if m is not None else None,
                    "consult": {"to": k.to, "target_agent": k.target_agent} if k is not None else None,
                    "disposition": c.disposition,
                }
            )
        return {
            "seq": server.bus.seq,
            "time": _iso(wall),
            "queues": queues,
            "agents": agents,
            "calls": live,
            "default_dispositions": list(config.acd.dispositions),
            "not_ready_reasons": list(config.acd.not_ready_reasons),
            "flows": sorted(ctl.flows),
            "service_level_threshold": config.stats.service_level_threshold,
        }
