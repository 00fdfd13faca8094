"""hotline.client against a real CtiServer on 127.0.0.1: auth, typed replies and errors,
`since` replay, and resume across a server restart with no gap and no duplicate."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

import cti_bridge
from hotline.client import CtiAuthError, CtiClient, CtiCommandError, Event, Gap


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    wire: ClassVar[str] = "test.tick"
    n: int  # a counter


async def control(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    if cmd == "echo":
        return {"echo": args.get("value")}
    raise cti_bridge.CtiError("cti.unknown_command", f"unknown command '{cmd}'")


class Server:
    def __init__(self, tmp: Path, retain_events: int = 10**6) -> None:
        self.tmp, self.port, self.retain_events = tmp, 0, retain_events

    async def start(self) -> Server:
        self.outbox = cti_bridge.Outbox(
            self.tmp / "h.db", retain_seconds=3600, retain_events=self.retain_events
        )
        self.bus = cti_bridge.EventBus(outbox=self.outbox)
        tokens = [
            cti_bridge.Token("reader", "r", frozenset({"read"})),
            cti_bridge.Token("ctl", "c", frozenset({"control"})),
        ]
        self.cti = cti_bridge.build_cti(self.bus, tokens, control, host="127.0.0.1", port=self.port)
        await self.cti.start()
        self.port = self.cti.port or 0
        return self

    def tick(self, *ns: int) -> None:
        for n in ns:
            self.bus.publish(Tick(n=n))
        self.bus.flush()

    async def stop(self) -> None:
        await self.cti.stop()
        self.outbox.close()


async def take(client: CtiClient, count: int) -> list[Event | Gap]:
    return [await client.next_event(timeout=5) for _ in range(count)]


async def test_typed_replies_and_errors(tmp_path: Path) -> None:
    server = await Server(tmp_path).start()
    with pytest.raises(CtiAuthError) as info:
        await CtiClient("127.0.0.1", server.port, "wrong", reconnect=False).connect()
    assert info.value.code == "cti.auth_failed"
    async with CtiClient("127.0.0.1", server.port, "c") as cti:
        assert (await cti.request("ping"))["seq"] == 0
        assert await cti.request("echo", value=7) == {"echo": 7}
        with pytest.raises(CtiCommandError) as err:
            await cti.request("nope")
        assert err.value.code == "cti.unknown_command" and err.value.cmd == "nope"
    async with CtiClient("127.0.0.1", server.port, "r") as reader:
        with pytest.raises(CtiCommandError) as err:
            await reader.request("echo", value=1)
        assert err.value.code == "cti.forbidden"
    await server.stop()


async def test_since_replays_then_goes_live(tmp_path: Path) -> None:
    server = await Server(tmp_path).start()
    server.tick(1, 2, 3)
    async with CtiClient("127.0.0.1", server.port, "r", events=["test.*"], since=1) as cti:
        server.tick(4)
        got = await take(cti, 3)
        assert [(e.seq, e.name, e.data["n"]) for e in got if isinstance(e, Event)] == [
            (2, "test.tick", 2),
            (3, "test.tick", 3),
            (4, "test.tick", 4),
        ]
    await server.stop()


async def test_reconnects_and_resumes_across_a_restart(tmp_path: Path) -> None:
    server = await Server(tmp_path).start()
    cti = await CtiClient("127.0.0.1", server.port, "r", retry_first=0.05).connect()
    assert cti.subscribed_seq == 0 and cti.last_seq == 0  # no since: from now on
    server.tick(1, 2)
    assert [e.seq for e in await take(cti, 2) if isinstance(e, Event)] == [1, 2]
    await server.stop()  # the client is cut off ...
    restarted = Server(tmp_path)
    restarted.port = server.port
    await restarted.start()
    restarted.tick(3, 4)  # ... these happen while it is away ...
    got = await take(cti, 2)  # ... and arrive once it is back, resumed from seq 2
    restarted.tick(5)
    got += await take(cti, 1)
    assert [e.seq for e in got if isinstance(e, Event)] == [3, 4, 5]
    assert cti.connects == 2
    assert (await cti.request("ping"))["seq"] == 5  # requests work on the new connection
    await cti.close()
    await restarted.stop()


async def test_a_gap_is_reported_when_the_server_no_longer_has_the_events(tmp_path: Path) -> None:
    server = await Server(tmp_path, retain_events=2).start()
    server.tick(1, 2, 3, 4, 5)
    assert server.outbox.purge() > 0
    async with CtiClient("127.0.0.1", server.port, "r", since=1) as cti:
        first = await cti.next_event(timeout=5)
        assert isinstance(first, Gap) and first.after_seq == 1 and "no longer retained" in first.message
        server.tick(6)
        (live,) = await take(cti, 1)
        assert isinstance(live, Event) and live.seq == 6
    await asyncio.sleep(0)
    await server.stop()
