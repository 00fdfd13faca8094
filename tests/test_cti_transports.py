"""The same CTI session over TCP, TLS and WebSocket, and the bad-input bounds every
transport shares (idle auth, floods, clients that stop reading). Real sockets on
port 0, a real SQLite outbox in a temp dir."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from structlog.testing import capture_logs

import cti_bridge

from .helpers import CtiClient


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    wire: ClassVar[str] = "call.tick"
    call_id: str
    n: int
    pad: str = ""  # filler, to fill socket buffers


TOKENS = [
    cti_bridge.Token("desk", "desk-secret", frozenset({"control"})),
    cti_bridge.Token("qa", "qa-secret", frozenset({"read"})),
    cti_bridge.Token("none", "none-secret", frozenset()),
]


async def control(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    if cmd == "agent.ready":
        return {"state": "available"}
    raise cti_bridge.CtiError("cti.unknown_command", f"unknown command '{cmd}'")


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1, made with openssl at test time."""
    assert shutil.which("openssl"), "openssl is missing: scripts/setup installs it"
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class WsCtiClient(CtiClient):
    """CtiClient's interface over the WebSocket transport: one JSON object per text message."""

    ws: Any = None
    http: Any = None
    raw: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, url: str) -> WsCtiClient:
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(url)
        client = cls(None, None, ws=ws, http=http)  # type: ignore[arg-type]
        client._task = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            self.raw.append(msg.data)
            obj = json.loads(msg.data)
            if "seq" in obj and "event" in obj:
                self.events.append(obj)
            elif obj.get("id") is not None and "ok" in obj:
                self.replies[obj["id"]] = obj
            else:
                self.other.append(obj)

    async def send_raw(self, data: bytes) -> None:
        for line in data.splitlines():
            await self.ws.send_str(line.decode())

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()
        if self._task is not None:
            self._task.cancel()


@pytest.fixture
async def server(tmp_path: Path) -> Any:
    cert, key = self_signed(tmp_path)
    outbox = cti_bridge.Outbox(tmp_path / "h.db", retain_seconds=3600, retain_events=10**6)
    srv = cti_bridge.build_cti(
        cti_bridge.EventBus(outbox=outbox),
        TOKENS,
        control,
        host="127.0.0.1",
        port=0,
        tls=cti_bridge.tls_context(str(cert), str(key)),
        tls_port=0,
        http_port=0,
        limits=cti_bridge.SessionLimits(auth_timeout=0.5, close_grace=0.3),
    )
    await srv.start()
    srv.cert = cert  # type: ignore[attr-defined]
    yield srv
    await srv.stop()
    outbox.close()


async def connect(server: Any, transport: str) -> CtiClient:
    if transport == "tcp":
        return await CtiClient.connect(server.port)
    if transport == "tls":
        ctx = ssl.create_default_context(cafile=str(server.cert))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.tls_port, ssl=ctx)
        client = CtiClient(reader, writer)
        client._task = asyncio.create_task(client._read())
        return client
    return await WsCtiClient.open(f"http://127.0.0.1:{server.http_port}/cti")


@pytest.mark.parametrize("transport", ["tcp", "tls", "ws"])
async def test_each_transport_carries_the_same_session(server: Any, transport: str) -> None:
    for n in range(5):
        server.bus.publish(Tick(call_id=f"c{n}", n=n))
    server.bus.flush()
    c = await connect(server, transport)
    reply = await c.request("auth", token="desk-secret")
    assert {k: reply[k] for k in ("id", "ok", "protocol", "name")} == {
        "id": 1, "ok": True, "protocol": 1, "name": "desk",
    }  # fmt: skip
    reply = await c.request("subscribe", events=["call.*"], since=2)
    assert reply == {"id": 2, "ok": True, "seq": 5, "replay_from": 3}
    await c.wait_for(lambda: len(c.events) == 3, 5, "the replay")
    for n in range(5, 8):
        server.bus.publish(Tick(call_id=f"c{n}", n=n))
    await c.wait_for(lambda: len(c.events) == 6, 5, "live events")
    assert [e["seq"] for e in c.events] == [3, 4, 5, 6, 7, 8]  # no gap, no duplicate at the seam
    assert (await c.request("agent.ready", agent="1001")) == {"id": 3, "ok": True, "state": "available"}
    assert (await c.request("call.hangup", call_id="c1"))["error"]["code"] == "cti.unknown_command"
    await c.send_raw(b"not json\n")
    await c.wait_for(lambda: any(m.get("error", {}).get("code") == "cti.bad_json" for m in c.other), 5)
    await c.close()


async def test_tls_refuses_a_client_that_does_not_trust_the_certificate(server: Any) -> None:
    with pytest.raises(ssl.SSLError):
        await asyncio.open_connection("127.0.0.1", server.tls_port, ssl=ssl.create_default_context())


async def test_an_over_long_websocket_message_is_answered_and_the_session_goes_on(server: Any) -> None:
    c = await connect(server, "ws")
    await c.send_raw(b'{"id": 1, "cmd": "ping", "pad": "' + b"x" * 70000 + b'"}')
    await c.wait_for(lambda: any(m["error"]["code"] == "cti.line_too_long" for m in c.other), 5, "too long")
    assert (await c.request("auth", token="qa-secret"))["ok"]
    await c.close()


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_a_client_that_never_authenticates_is_closed_after_the_idle_timeout(
    server: Any, transport: str
) -> None:
    idle = await connect(server, transport)
    busy = await connect(server, transport)
    assert (await busy.request("auth", token="qa-secret"))["ok"]
    closed = await idle.wait_for(
        lambda: [m for m in idle.other if m.get("event") == "session.closed"], 3, "the idle close"
    )
    assert closed[0]["data"]["reason"] == "auth_timeout"
    await asyncio.sleep(0.6)  # well past the timeout: the authenticated client is still served
    assert (await busy.request("ping"))["ok"]
    assert len(server._sessions) == 1
    await idle.close()
    await busy.close()


async def test_a_flood_ends_that_session_and_the_server_and_others_carry_on(tmp_path: Path) -> None:
    bus = cti_bridge.EventBus()
    srv = cti_bridge.build_cti(
        bus, TOKENS, control, host="127.0.0.1", port=0,
        limits=cti_bridge.SessionLimits(rate=100, burst=50),
    )  # fmt: skip
    await srv.start()
    calm = await CtiClient.connect(srv.port)
    assert (await calm.request("auth", token="qa-secret"))["ok"]
    assert (await calm.request("subscribe", events=["*"]))["ok"]
    flood = await CtiClient.connect(srv.port)
    await flood.send_raw(b'{"cmd": "ping"}\n' * 5000 + b"garbage\n" * 5000)
    closed = await flood.wait_for(
        lambda: [m for m in flood.other if m.get("event") == "session.closed"], 5, "the flood close"
    )
    assert closed[0]["data"]["reason"] == "flood"
    assert any(m.get("error", {}).get("code") == "cti.flood" for m in flood.other)
    for n in range(20):
        bus.publish(Tick(call_id="c", n=n))
    await calm.wait_for(lambda: len(calm.events) == 20, 5, "events after the flood")
    assert (await calm.request("ping"))["ok"]
    await flood.wait_for(lambda: flood._task is not None and flood._task.done(), 5, "the flooder's EOF")
    await calm.close()
    await srv.stop()


async def test_a_client_that_stops_reading_is_cut_off_and_the_others_get_everything() -> None:
    with capture_logs() as logs:
        await stuck_client_scenario(logs)


async def stuck_client_scenario(logs: list[dict[str, Any]]) -> None:
    bus = cti_bridge.EventBus()
    srv = cti_bridge.build_cti(
        bus, TOKENS, control, host="127.0.0.1", port=0,
        limits=cti_bridge.SessionLimits(max_queued=200, close_grace=0.3),
    )  # fmt: skip
    await srv.start()
    # the half-open client: authenticates and subscribes, then never reads again
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b'{"id":1,"cmd":"auth","token":"qa-secret"}\n{"id":2,"cmd":"subscribe"}\n')
    await writer.drain()
    good = await CtiClient.connect(srv.port)
    assert (await good.request("auth", token="qa-secret"))["ok"]
    assert (await good.request("subscribe", events=["*"]))["ok"]
    await good.wait_for(lambda: len(srv._sessions) == 2 and len(bus._clients) == 2, 5, "both subscribed")
    pad = "x" * 16384
    total = 0
    while len(srv._sessions) == 2 and total < 20000:  # until the stuck client is dropped
        for _ in range(50):
            total += 1
            bus.publish(Tick(call_id="c", n=total, pad=pad))
        await asyncio.sleep(0.002)
    assert len(srv._sessions) == 1, "the stuck client was never cut off"
    await good.wait_for(lambda: len(good.events) == total, 20, "every event on the healthy client")
    assert [e["data"]["n"] for e in good.events] == list(range(1, total + 1))
    # the stuck client's socket was cut (it could not read the reason; the log has it)
    with contextlib.suppress(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 10)  # what was buffered, then EOF or a reset
    assert any(e.get("reason") == "slow_consumer" for e in logs if e["event"] == "cti_disconnected")
    writer.close()
    await good.close()
    await srv.stop()
