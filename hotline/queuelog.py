"""Asterisk's queue_log, made from hotline's events: a pure translator.

Each line is ``epoch|callid|queuename|agent|EVENT|data1|data2|...`` with the parameters
Asterisk documents for that event (docs/operations.md lists them). The translator keeps the
little state the format needs and the events lack: where a caller entered the line (the
"original position"), when an agent started ringing, when an agent logged in. It reads
envelopes as they come from the outbox (in seq order) and never reads a clock.

Conventions (an Asterisk reporting tool reads them as it would Asterisk's own):
- callid is hotline's call_id; the agent column is ``Agent/<agent id>``; queue-less agent
  events (login, logoff, pause) use the queue name ``NONE``, as chan_agent did.
- times in the parameters are whole seconds, except RINGNOANSWER's ring time (milliseconds).
- CONNECT's second parameter (Asterisk: the agent channel's unique id) is the call_id.
- ABANDON/EXIT* ``position`` is the caller's place among callers of that queue still waiting,
  counted from the events (hotline has no per-event position update).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

NONE = "NONE"

#: The parameters Asterisk documents for each event this module writes (in order).
LAYOUTS: dict[str, tuple[str, ...]] = {
    "ENTERQUEUE": ("url", "callerid"),
    "CONNECT": ("holdtime", "bridgedchanneluniqueid", "ringtime"),
    "COMPLETECALLER": ("holdtime", "calltime", "origposition"),
    "COMPLETEAGENT": ("holdtime", "calltime", "origposition"),
    "ABANDON": ("position", "origposition", "waittime"),
    "EXITWITHTIMEOUT": ("position", "origposition", "waittime"),
    "EXITEMPTY": ("position", "origposition", "waittime"),
    "FULL": (),
    "RINGNOANSWER": ("ringtime",),
    "AGENTLOGIN": ("channel",),
    "AGENTLOGOFF": ("channel", "logintime"),
    "PAUSE": ("reason",),
    "UNPAUSE": ("reason",),
}


@dataclass(slots=True)
class _Caller:
    number: str = ""  # caller number, from call.offered
    queue: str | None = None  # the queue the caller is in (or was connected from)
    entered: float = 0.0  # epoch seconds the caller entered that queue
    origposition: int = 1  # place in line on entering
    ringing: dict[str, float] = field(default_factory=dict)  # agent id -> epoch seconds rung
    connected: bool = False
    hold: float = 0.0  # seconds waited before connect


def _agent(agent_id: str) -> str:
    return f"Agent/{agent_id}"


def _seconds(value: Any) -> str:
    return str(max(0, round(float(value or 0.0))))


def epoch(iso: str) -> float:
    """An envelope's ISO 8601 time ("2026-12-04T10:00:00.123Z") as epoch seconds."""
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class QueueLog:
    """Envelopes in (``feed``), queue_log lines out."""

    def __init__(self) -> None:
        self._calls: dict[str, _Caller] = {}
        self._waiting: dict[str, list[str]] = {}  # queue -> call ids waiting, in order of entry
        self._login: dict[str, float] = {}  # agent id -> epoch seconds logged in

    def feed(self, envelope: dict[str, Any]) -> list[str]:
        """The lines for one envelope ({"event", "time", "call_id", "data"}), maybe none."""
        name = envelope["event"]
        data = envelope.get("data") or {}
        wall = epoch(envelope["time"])
        cid = envelope.get("call_id") or NONE
        call = self._calls.get(cid)
        if name == "call.offered":
            self._calls[cid] = _Caller(number=str(data.get("caller", "")))
            return []
        if name == "agent.state_changed":
            return self._agent_state(wall, data)
        if call is None:
            if name not in ("call.queued", "callback.requested"):
                return []
            call = self._calls[cid] = _Caller()
        out: list[str] = []
        if name == "call.queued":
            queue = str(data["queue"])
            call.queue, call.entered = queue, wall
            line = self._waiting.setdefault(queue, [])
            call.origposition = len(line) + 1
            line.append(cid)
            out.append(self._line(wall, cid, queue, NONE, "ENTERQUEUE", "", call.number))
        elif name == "agent.offered":
            call.ringing[str(data["agent_id"])] = wall
        elif name == "agent.offer_failed":
            agent = str(data["agent_id"])
            rung = call.ringing.pop(agent, None)
            ms = round(1000 * (wall - rung)) if rung is not None else 0
            out.append(self._line(wall, cid, call.queue or NONE, _agent(agent), "RINGNOANSWER", str(ms)))
        elif name == "call.connected":
            agent = str(data["agent_id"])
            queue = str(data.get("queue") or call.queue or NONE)
            rung = call.ringing.pop(agent, None)
            call.ringing.clear()
            call.connected, call.hold = True, float(data.get("wait_seconds", 0.0))
            self._leave(queue, cid)
            ring = _seconds(wall - rung) if rung is not None else "0"
            out.append(self._line(wall, cid, queue, _agent(agent), "CONNECT", _seconds(call.hold), cid, ring))
        elif name == "call.abandoned":
            queue = str(data["queue"])
            position = self._leave(queue, cid)
            out.append(
                self._line(
                    wall, cid, queue, NONE, "ABANDON", str(position), str(call.origposition),
                    _seconds(data.get("wait_seconds")),
                )
            )  # fmt: skip
        elif name == "call.overflowed":
            queue = str(data["queue"])
            position = self._leave(queue, cid)
            reason = str(data.get("reason", ""))
            wait = _seconds(data.get("wait_seconds"))
            exit_kind = {"max_wait": "EXITWITHTIMEOUT", "no_agents": "EXITEMPTY"}.get(reason)
            if exit_kind is not None:
                place = (str(position), str(call.origposition), wait)
                out.append(self._line(wall, cid, queue, NONE, exit_kind, *place))
            elif reason == "queue_full":
                out.append(self._line(wall, cid, queue, NONE, "FULL"))
        elif name == "call.ended":
            ended_by = data.get("agent_id")
            if call.connected and ended_by:
                kind = "COMPLETEAGENT" if data.get("cause") == "agent_hangup" else "COMPLETECALLER"
                out.append(
                    self._line(
                        wall, cid, call.queue or NONE, _agent(str(ended_by)), kind, _seconds(call.hold),
                        _seconds(data.get("talk_seconds")), str(call.origposition),
                    )
                )  # fmt: skip
            if call.queue is not None:
                self._leave(call.queue, cid)
            self._calls.pop(cid, None)
        return out

    def _leave(self, queue: str, cid: str) -> int:
        """Take a caller out of the line; returns their place in it (1 = next)."""
        line = self._waiting.get(queue, [])
        if cid not in line:
            return 1
        position = line.index(cid) + 1
        line.remove(cid)
        return position

    def _agent_state(self, wall: float, data: dict[str, Any]) -> list[str]:
        agent, before, after = str(data["agent_id"]), data.get("from"), data.get("to")
        reason = str(data.get("reason") or "")
        a = _agent(agent)
        if before == "logged_out" and after != "logged_out":
            self._login[agent] = wall
            return [self._line(wall, NONE, NONE, a, "AGENTLOGIN", a)]
        if after == "logged_out":
            since = self._login.pop(agent, None)
            return [self._line(wall, NONE, NONE, a, "AGENTLOGOFF", a, _seconds(wall - since if since else 0))]
        if after == "not_ready" and before != "not_ready":
            return [self._line(wall, NONE, NONE, a, "PAUSE", reason)]
        if before == "not_ready" and after != "not_ready":
            return [self._line(wall, NONE, NONE, a, "UNPAUSE", reason)]
        return []

    @staticmethod
    def _line(wall: float, cid: str, queue: str, agent: str, event: str, *params: str) -> str:
        assert len(params) == len(LAYOUTS[event]), event
        clean = [p.replace("|", "/").replace("\n", " ") for p in params]
        return "|".join([str(int(wall)), cid, queue, agent, event, *clean])
