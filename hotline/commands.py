"""The CTI control commands: each checks its arguments, becomes one call-controller input,
and builds its reply from what the controller says afterwards.

The controller decides; a command that does not fit the call (or the agent) comes back as
the controller's error, with its stable code, and nothing has changed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable
from typing import Any

import acd
import calls
import cti_bridge
import telephony
from calls import inputs as inp

from . import outbound, reload
from .command_target import Handler, Target
from .floor_commands import FloorCommands


def _int(args: dict[str, Any], key: str, default: int | None = None, what: str = "") -> int:
    value = args.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise cti_bridge.CtiError("cti.bad_request", f'"{key}" must be an integer{what}')
    return value


class Commands:
    """The `Control` of the CTI bridge: ``await commands(cmd, args)`` -> reply data."""

    def __init__(self, server: Target) -> None:
        self.server = server
        self.handlers: dict[str, Handler] = {
            "agent.login": self.agent_login,
            "agent.ready": lambda a: self.agent(a, acd.events.AgentBecameReady(agent_id=self._agent(a))),
            "agent.not_ready": lambda a: self.agent(
                a,
                acd.events.AgentWentNotReady(
                    agent_id=self._agent(a), reason=cti_bridge.require_str(a, "reason")
                ),
            ),
            "agent.logout": lambda a: self.agent(a, acd.events.AgentLoggedOut(agent_id=self._agent(a))),
            "agent.end_wrap_up": self.end_wrap_up,
            "call.hangup": lambda a: self.call(inp.HangUpCall(call_id=self._call_id(a))),
            "call.answer": lambda a: self.call(inp.AnswerCall(call_id=self._call_id(a))),
            "call.hold": lambda a: self.call(inp.HoldCall(call_id=self._call_id(a), hold=True)),
            "call.retrieve": lambda a: self.call(inp.HoldCall(call_id=self._call_id(a), hold=False)),
            "call.transfer": self.transfer,
            "call.set_variables": self.set_variables,
            "call.recording": lambda a: self.call(
                inp.ControlRecording(call_id=self._call_id(a), action=str(a.get("action")))
            ),
            "call.assist": lambda a: self.call(
                inp.Assist(call_id=self._call_id(a), flow=cti_bridge.require_str(a, "flow"))
            ),
            "queue.status": self.queue_status,
            "queue.set_priority": self.set_priority,
            "call.make": self.make_call,
            "flow.reload": self.reload,
            "flow.emergency": self.emergency,
        }
        self.handlers.update(
            FloorCommands(server, dict(self.handlers)).handlers()
        )  # hotline/floor_commands.py

    async def __call__(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = self.handlers.get(cmd)
        if handler is None:
            known = ", ".join(sorted({"auth", "subscribe", "ping", *self.handlers}))
            raise cti_bridge.CtiError("cti.unknown_command", f"unknown command '{cmd}'; known: {known}")
        try:
            result = handler(args)
            return await result if isinstance(result, Awaitable) else result
        except (acd.AcdError, calls.CallError) as exc:
            raise cti_bridge.CtiError(exc.code, str(exc)) from None
        except telephony.TelephonyError as exc:
            raise cti_bridge.CtiError(exc.code, f"the call's SIP leg is gone: {exc}") from None

    # ------------------------------------------------------------- helpers
    @staticmethod
    def _agent(args: dict[str, Any]) -> str:
        return cti_bridge.require_str(args, "agent")

    @staticmethod
    def _call_id(args: dict[str, Any]) -> str:
        return cti_bridge.require_str(args, "call_id")

    def call(self, event: inp.Input) -> dict[str, Any]:
        self.server.command(event)
        return {}

    def agent(self, args: dict[str, Any], event: acd.events.Input) -> dict[str, Any]:
        self.server.command(inp.AgentCommand(event=event))
        return {"state": self.server.router.agent_state(self._agent(args)).value}

    # ------------------------------------------------------------ commands
    def agent_login(self, args: dict[str, Any]) -> dict[str, Any]:
        contact = args.get("contact")
        if contact is not None and (
            not isinstance(contact, str) or not contact.startswith(("sip:", "sips:"))
        ):
            raise cti_bridge.CtiError(
                "cti.bad_request", '"contact" must be a SIP URI like sip:1001@10.0.0.5:5060'
            )
        return self.agent(args, acd.events.AgentLoggedIn(agent_id=self._agent(args), contact=contact))

    def end_wrap_up(self, args: dict[str, Any]) -> dict[str, Any]:
        agent_id = self._agent(args)
        self.server.command(inp.EndWrapUp(agent_id=agent_id))
        return {"state": self.server.router.agent_state(agent_id).value}

    def transfer(self, args: dict[str, Any]) -> dict[str, Any]:
        call_id = self._call_id(args)
        to, queue = args.get("to"), args.get("queue")
        if isinstance(to, str) and to.startswith(("sip:", "sips:")) and queue is None:
            return self.call(inp.BlindTransfer(call_id=call_id, to=to))
        if isinstance(queue, str) and to is None:
            priority = _int(args, "priority", 0)
            self.server.command(inp.Requeue(call_id=call_id, queue=queue, priority=priority))
            return {"queue": queue, "position": self.server.router.position(call_id)}
        raise cti_bridge.CtiError(
            "cti.bad_request", 'give either "to" (a SIP URI, blind transfer) or "queue" (a queue name)'
        )

    def set_variables(self, args: dict[str, Any]) -> dict[str, Any]:
        values = args.get("variables")
        if not isinstance(values, dict) or not values:
            raise cti_bridge.CtiError(
                "cti.bad_request", '"variables" must be an object like {"tier": "gold"}'
            )
        return self.call(inp.SetVariables(call_id=self._call_id(args), values=values))

    def queue_status(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.server.controller.queue_status(cti_bridge.require_str(args, "queue"))

    def set_priority(self, args: dict[str, Any]) -> dict[str, Any]:
        call_id = self._call_id(args)
        priority = _int(args, "priority", None, " (higher is served first)")
        self.server.command(inp.SetPriority(call_id=call_id, priority=priority))
        return {"position": self.server.router.position(call_id)}

    async def make_call(self, args: dict[str, Any]) -> dict[str, Any]:
        """Click-to-dial: the outbound guard first (DNC, calling hours), then the controller."""
        agent_id = self._agent(args)
        to = cti_bridge.require_str(args, "to")
        purpose = args.get("purpose")
        if purpose not in ("service", "marketing"):
            raise cti_bridge.CtiError(
                "cti.bad_request",
                '"purpose" must be "service" or "marketing" (the do-not-call list and '
                "calling hours depend on it)",
            )
        callee_tz = args.get("callee_tz", "")
        try:
            decision = await self.server.outbound.check(
                to, purpose, time.time(), callee_tz if isinstance(callee_tz, str) else ""
            )
        except outbound.OutboundConfigError as exc:
            raise cti_bridge.CtiError(exc.code, str(exc)) from None
        if not decision.allowed:
            assert decision.code is not None
            raise cti_bridge.CtiError(decision.code, decision.message)
        call_id = secrets.token_hex(8)
        self.server.command(inp.MakeCall(call_id=call_id, agent_id=agent_id, to=to, purpose=purpose))
        return {"call_id": call_id, "service_code": self.server.controller.calls[call_id].service_code}

    def reload(self, args: dict[str, Any]) -> dict[str, Any]:
        """Compile flows/ now rather than at the next poll; the reply says what happened."""
        decision = self.server.watcher.reload_now()
        if decision is None:
            return {
                "reloaded": False,
                "flows": {n: f.version for n, f in self.server.controller.flows.items()},
            }
        if isinstance(decision.event, reload.FlowRejected):
            e = decision.event
            raise cti_bridge.CtiError(
                "flow.rejected",
                f"{e.file}:{e.line}:{e.col}: {e.code}: {e.message} ({e.errors} error(s)); "
                "the previous flows stay live",
            )
        return {"reloaded": True, "flows": dict(decision.event.flows)}

    def emergency(self, args: dict[str, Any]) -> dict[str, Any]:
        on = args.get("on")
        if not isinstance(on, bool):
            raise cti_bridge.CtiError("cti.bad_request", '"on" must be true or false')
        self.server.command(inp.SetEmergency(on=on))
        return {"on": on}
