"""The CTI socket over real TCP on 127.0.0.1 (port 0), with a stand-in control."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import structlog

import cti_bridge
from acd import AgentState
from acd import events as aev
from cti_bridge import protocol

from .helpers import CtiClient


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    wire: ClassVar[str] = "call.ping"
    call_id: str
    n: int


@pytest.fixture
async def server() -> Any:
    bus = cti_bridge.EventBus()
    calls: list[tuple[str, dict[str, Any]]] = []

    async def control(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        calls.append((cmd, args))
        if cmd == "agent.ready":
            return {"state": "available"}
        raise cti_bridge.CtiError("cti.unknown_command", f"unknown command '{cmd}'")

    srv = cti_bridge.build_cti(
        bus, [cti_bridge.Token("t", "s3cret", frozenset({"admin"}))], control, host="127.0.0.1", port=0
    )
    await srv.start()
    srv.calls = calls  # type: ignore[attr-defined]
    yield srv
    await srv.stop()


async def authed(server: Any, events: list[str] | None = None) -> CtiClient:
    c = await CtiClient.connect(server.port)
    assert (await c.request("auth", token="s3cret"))["ok"]
    if events is not None:
        assert (await c.request("subscribe", events=events))["ok"]
    return c


async def test_wrong_token_is_refused_and_commands_need_auth(server: Any) -> None:
    c = await CtiClient.connect(server.port)
    reply = await c.request("subscribe", events=["*"])
    assert reply["error"]["code"] == "cti.auth_required"
    reply = await c.request("auth", token="wrong")
    assert reply == {
        "id": 2,
        "ok": False,
        "error": {"code": "cti.auth_failed", "message": reply["error"]["message"]},
    }
    assert "wrong" not in reply["error"]["message"]
    assert (await c.request("auth", token="s3cret"))["ok"]
    await c.close()


async def test_repeated_auth_failures_close_the_connection(server: Any) -> None:
    c = await CtiClient.connect(server.port)
    for _ in range(3):
        await c.request("auth", token="nope")
    closed = await c.wait_for(lambda: [m for m in c.other if m.get("event") == "session.closed"], 5, "close")
    assert closed[0]["data"]["reason"] == "auth_failed"


async def test_garbage_gets_an_error_and_the_connection_stays_usable(server: Any) -> None:
    c = await authed(server)
    await c.send_raw(b"this is not json\n")
    await c.send_raw(b"[1, 2]\n")
    await c.send_raw(b'{"id": 9}\n')
    await c.send_raw(b"\xff\xfe\n")
    await c.send_raw(b"x" * 70000 + b"\n")
    errors = await c.wait_for(lambda: len(c.other) >= 4 and c.other, 5, "error replies")
    codes = [m["error"]["code"] for m in errors]
    assert codes.count("cti.bad_json") == 2 and "cti.bad_request" in codes
    assert (await c.wait_for(lambda: c.replies.get(9), 5))["error"]["code"] == "cti.bad_request"
    await c.wait_for(lambda: any(m["error"]["code"] == "cti.line_too_long" for m in c.other), 5, "too long")
    reply = await c.request("agent.ready", agent="1001")
    assert reply == {"id": 1 + 1, "ok": True, "state": "available"}
    reply = await c.request("frobnicate")
    assert reply["error"]["code"] == "cti.unknown_command"
    await c.close()


@pytest.mark.parametrize(
    ("line", "limit"),
    [
        # issue 11, defect 5: RecursionError / int-size ValueError answered cti.internal with a traceback
        (b'{"id": 5, "cmd": "ping", "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "32 levels deep"),
        (b'{"id": 5, "cmd": "ping", "x": ' + b"9" * 5000 + b"}", "more than 32 digits"),
        (b'{"id": 5, "cmd": "ping", "x": ' + b"1" * 40 + b".5e3}", "more than 32 digits"),
        (b'{"id": 5, "cmd": "ping", "x": 1e999}', "too large"),
        (b'{"id": 5, "cmd": "ping", "x": NaN}', "NaN is not JSON"),
        (b'{"id": 5, "cmd": "ping", "x": -Infinity}', "-Infinity is not JSON"),
        # half a surrogate pair is valid JSON but not text: it would fail in the outbox later
        (b'{"id": 5, "cmd": "ping", "x": "fz69\\udcf9a7"}', "unpaired UTF-16 surrogate"),
    ],
)
async def test_json_beyond_the_limits_is_bad_json_with_the_limit_and_one_log_line(
    server: Any, line: bytes, limit: str
) -> None:
    c = await authed(server)
    with structlog.testing.capture_logs() as logs:
        await c.send_raw(line + b"\n")
        err = await c.wait_for(lambda: c.other and c.other[-1], 5, "the error reply")
        reply = await c.request("ping")  # the connection stays usable
    assert err["error"]["code"] == "cti.bad_json" and limit in err["error"]["message"], err
    assert reply["ok"]
    assert [(e["event"], e["code"]) for e in logs] == [("cti_bad_line", "cti.bad_json")]
    assert not any("exc_info" in e for e in logs)
    await c.close()


async def test_json_within_the_limits_is_accepted(server: Any) -> None:
    c = await authed(server)
    nested = "[" * (protocol.MAX_DEPTH - 1) + "]" * (protocol.MAX_DEPTH - 1)  # plus the request object
    brackets_in_text = "[" * 100  # brackets inside a string do not nest
    big = "9" * protocol.MAX_NUMBER_DIGITS
    line = f'{{"id": 7, "cmd": "ping", "x": {nested}, "t": "{brackets_in_text}", "n": -{big}, "f": 1.5e300}}'
    await c.send_raw(line.encode() + b"\n")
    assert (await c.wait_for(lambda: c.replies.get(7), 5, "ping reply"))["ok"]
    await c.close()


async def test_garbage_is_logged_a_few_times_per_connection_not_once_per_line(server: Any) -> None:
    c = await authed(server)
    with structlog.testing.capture_logs() as logs:
        for _ in range(20):
            await c.send_raw(b"not json\n")
        await c.wait_for(lambda: len(c.other) >= 20, 5, "20 error replies")
    bad = [e for e in logs if e["event"] == "cti_bad_line"]
    assert len(bad) == 5 and bad[-1]["further_bad_lines"] == "not logged"
    await c.close()


async def test_events_have_strict_seq_and_follow_globs(server: Any) -> None:
    calls = await authed(server, ["call.*"])
    agents = await authed(server, ["agent.*"])
    bus = server.bus
    for n in range(50):
        bus.publish(Ping(call_id=f"c{n}", n=n))
        bus.publish(
            aev.AgentStateChanged(
                agent_id="a", from_=AgentState.AVAILABLE, to=AgentState.RESERVED, reason=None
            )
        )
    await calls.wait_for(lambda: len(calls.events) == 50, 5, "50 call events")
    await agents.wait_for(lambda: len(agents.events) == 50, 5, "50 agent events")
    seqs = [e["seq"] for e in calls.events]
    assert seqs == list(range(1, 100, 2))  # strictly increasing across the server
    assert {e["event"] for e in agents.events} == {"agent.state_changed"}
    first = agents.events[0]
    assert first["data"] == {"agent_id": "a", "from": "available", "to": "reserved", "reason": None}
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert calls.events[3]["call_id"] == "c3" and calls.events[3]["data"] == {"n": 3}
    await calls.close()
    await agents.close()


async def test_a_client_that_vanishes_does_not_disturb_others(server: Any) -> None:
    gone = await authed(server, ["*"])
    stay = await authed(server, ["*"])
    gone.writer.transport.abort()
    await asyncio.sleep(0.05)
    for n in range(10):
        server.bus.publish(Ping(call_id="c", n=n))
    await stay.wait_for(lambda: len(stay.events) == 10, 5, "events")
    await stay.close()


@pytest.mark.parametrize("scope", ["read", "agent", "control", "admin"])
@pytest.mark.parametrize(
    ("cmd", "args"),
    [
        ("subscribe", {"events": ["*"]}),
        ("ping", {}),
        ("agent.login", {"agent": "1001"}),
        ("agent.login", {"agent": "2002"}),
        ("agent.ready", {"agent": "1001"}),
        ("agent.not_ready", {"agent": "2002", "reason": "x"}),
        ("agent.logout", {"agent": "1001"}),
        ("agent.end_wrap_up", {"agent": "1001"}),
        ("agent.end_wrap_up", {"agent": "2002"}),
        *[
            (cmd, {"call_id": "c"})
            for cmd in (
                "agent.end_wrap_up",
                "call.answer",
                "call.hangup",
                "call.hold",
                "call.retrieve",
                "call.transfer",
                "call.set_variables",
                "call.recording",
                "call.make",
                "queue.status",
                "queue.set_priority",
                "flow.reload",
                "flow.emergency",
            )
        ],
    ],
)
async def test_every_command_is_checked_against_the_token_scope(scope: str, cmd: str, args: dict) -> None:
    bus = cti_bridge.EventBus()

    async def control(c: str, a: dict[str, Any]) -> dict[str, Any]:
        return {}  # the stand-in runs everything it is given

    token = cti_bridge.Token("t", "k", frozenset({scope}), "1001" if scope == "agent" else None)
    srv = cti_bridge.build_cti(bus, [token], control, host="127.0.0.1", port=0)
    await srv.start()
    c = await CtiClient.connect(srv.port)
    assert (await c.request("auth", token="k"))["ok"]
    reply = await c.request(cmd, **args)
    own = args.get("agent") == "1001"
    allowed = {
        "read": cmd in ("subscribe", "ping"),
        "agent": cmd in ("subscribe", "ping") or (cmd.startswith("agent.") and own),
        "control": True,
        "admin": True,
    }[scope]
    if allowed:
        assert reply.get("ok"), reply
    else:
        assert reply["error"]["code"] == "cti.forbidden", reply
        assert "needs scope" in reply["error"]["message"]
    await c.close()
    await srv.stop()


async def test_failed_logins_are_throttled_per_address() -> None:
    from structlog.testing import capture_logs

    bus = cti_bridge.EventBus()
    srv = cti_bridge.build_cti(
        bus, [cti_bridge.Token("t", "right")], lambda c, a: None, host="127.0.0.1", port=0
    )  # type: ignore[arg-type,return-value]
    await srv.start()
    codes = []
    with capture_logs() as logs:
        for _ in range(3):  # each connection is closed after 3 failures; the address is remembered
            c = await CtiClient.connect(srv.port)
            for _ in range(2):
                codes.append((await c.request("auth", token="wrong"))["error"]["code"])
            await c.close()
        c = await CtiClient.connect(srv.port)
        reply = await c.request("auth", token="right")  # even the right token waits out the block
        await c.close()
    assert codes[:5] == ["cti.auth_failed"] * 5
    assert codes[5] == "cti.auth_throttled" and reply["error"]["code"] == "cti.auth_throttled"
    assert "try again in" in reply["error"]["message"]
    assert not any("wrong" in str(e) or "right" in str(e) for e in logs)  # no secret in the logs
    await srv.stop()
