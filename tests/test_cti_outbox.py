"""The durable outbox and `subscribe` with `since`: no gap, no duplicate, across
reconnects and restarts, on real TCP and a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import structlog

import cti_bridge

from .helpers import CtiClient


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    wire: ClassVar[str] = "call.tick"
    call_id: str
    n: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Other:
    wire: ClassVar[str] = "agent.other"
    n: int


async def no_control(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    raise cti_bridge.CtiError("cti.unknown_command", cmd)


async def start(db: Path, **retain: Any) -> cti_bridge.CtiServer:
    outbox = cti_bridge.Outbox(
        db, retain_seconds=retain.get("seconds", 3600), retain_events=retain.get("events", 10**6)
    )
    bus = cti_bridge.EventBus(outbox=outbox)
    server = cti_bridge.build_cti(bus, [cti_bridge.Token("t", "k")], no_control, host="127.0.0.1", port=0)
    await server.start()
    return server


async def subscribed(server: cti_bridge.CtiServer, events: list[str], **args: Any) -> tuple[CtiClient, dict]:
    c = await CtiClient.connect(server.port)
    assert (await c.request("auth", token="k"))["ok"]
    reply = await c.request("subscribe", events=events, **args)
    return c, reply


async def test_reconnect_with_since_under_load_loses_and_repeats_nothing(tmp_path: Path) -> None:
    server = await start(tmp_path / "h.db")
    stop = asyncio.Event()

    async def generate() -> None:
        n = 0
        while not stop.is_set():
            for _ in range(20):
                n += 1
                server.bus.publish(Tick(call_id=f"c{n}", n=n) if n % 3 else Other(n=n))
            await asyncio.sleep(0.001)

    producer = asyncio.create_task(generate())
    seen: list[int] = []
    last = 0
    for round_ in range(6):
        client, reply = await subscribed(server, ["call.*"], **({"since": last} if round_ else {}))
        assert reply["ok"], reply
        await asyncio.sleep(0.05)
        await client.wait_for(lambda c=client: len(c.events) > 20, 5, "events")
        await client.close()
        got = [e["seq"] for e in client.events]
        seen.extend(got)
        last = got[-1]
    stop.set()
    await producer
    # the first round starts live; from then on every call.* event after `last` arrives once
    ticks = [seq for seq, name, _ in server.bus.outbox.read_after(0, 10**6) if name == "call.tick"]  # type: ignore[union-attr]
    first = seen[0]
    expected = [s for s in ticks if first <= s <= seen[-1]]
    assert seen == expected, "a gap or a duplicate across a reconnect"
    assert len(seen) > 100
    await server.stop()


async def test_seq_and_history_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    server = await start(db)
    for n in range(10):
        server.bus.publish(Tick(call_id="c", n=n))
    server.bus.flush()
    await server.stop()
    server.bus.outbox.close()  # type: ignore[union-attr]
    again = await start(db)
    assert again.bus.seq == 10
    again.bus.publish(Tick(call_id="c", n=10))
    client, reply = await subscribed(again, ["*"], since=7)
    assert reply["seq"] == 11 and reply["replay_from"] == 8
    await client.wait_for(lambda: len(client.events) == 4, 5, "replay")
    assert [e["seq"] for e in client.events] == [8, 9, 10, 11]
    assert [e["data"]["n"] for e in client.events] == [7, 8, 9, 10]
    await client.close()
    await again.stop()


async def test_since_older_than_retention_names_the_oldest_seq(tmp_path: Path) -> None:
    server = await start(tmp_path / "h.db", events=5)
    for n in range(20):
        server.bus.publish(Tick(call_id="c", n=n))
    server.bus.flush()
    assert server.bus.outbox.purge() == 15  # type: ignore[union-attr]
    client, reply = await subscribed(server, ["*"], since=3)
    assert reply["error"]["code"] == "cti.since_too_old"
    assert "oldest available is seq 16" in reply["error"]["message"]
    reply = await client.request("subscribe", events=["*"], since=15)
    assert reply["ok"]
    await client.wait_for(lambda: len(client.events) == 5, 5, "replay")
    reply = await client.request("subscribe", events=["*"], since=99)
    assert reply["error"]["code"] == "cti.bad_request"
    reply = await client.request("subscribe", events=["*"], since="x")
    assert reply["error"]["code"] == "cti.bad_request"
    await client.close()
    await server.stop()


async def test_a_long_backlog_replays_without_tripping_the_slow_consumer_limit(tmp_path: Path) -> None:
    server = await start(tmp_path / "h.db")
    for n in range(25_000):
        server.bus.publish(Tick(call_id="c", n=n))
    server.bus.flush()
    client, reply = await subscribed(server, ["*"], since=0)
    assert reply["ok"]
    await client.wait_for(lambda: len(client.events) == 25_000, 30, "25000 replayed")
    assert not client.other  # no session.closed
    await client.close()
    await server.stop()


async def test_events_are_durable_before_any_client_sees_them(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    server = await start(db)
    client, _ = await subscribed(server, ["*"])
    server.bus.publish(Tick(call_id="c", n=1))
    await client.wait_event("call.tick")
    # a separate connection (as after a crash) finds the event already committed
    rows = sqlite3.connect(db).execute("SELECT seq, event FROM cti_outbox").fetchall()
    assert rows == [(1, "call.tick")]
    await client.close()
    await server.stop()


async def test_a_failing_outbox_keeps_events_flowing_and_writes_them_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await start(tmp_path / "h.db")
    client, _ = await subscribed(server, ["*"])
    outbox = server.bus.outbox
    assert outbox is not None
    real_write = outbox.write

    def full_disk(rows: list) -> None:
        raise cti_bridge.OutboxError("database or disk is full")

    monkeypatch.setattr(outbox, "write", full_disk)
    server.bus.publish(Tick(call_id="c", n=1))
    await client.wait_event("call.tick")  # still delivered live
    monkeypatch.setattr(outbox, "write", real_write)
    server.bus.publish(Tick(call_id="c", n=2))
    server.bus.flush()
    assert [r[0] for r in outbox.read_after(0, 10)] == [1, 2]  # the held event was written
    await client.close()
    await server.stop()


async def test_client_resumes_after_the_server_is_killed_and_restarted(tmp_path: Path) -> None:
    from .helpers import HotlineProcess

    agents = [{"id": "1001", "contact": "sip:1001@127.0.0.1:9"}]
    server = HotlineProcess(workdir=tmp_path / "hotline", agents=agents).start()

    async def login_logout(times: int) -> None:
        c = await CtiClient.connect(server.cti_port)
        assert (await c.request("auth", token=server.token))["ok"]
        for _ in range(times):
            assert (await c.request("agent.login", agent="1001"))["ok"]
            assert (await c.request("agent.logout", agent="1001"))["ok"]
        await c.close()

    watcher, _ = await subscribed_to(server)
    await login_logout(10)
    await watcher.wait_for(lambda: len(watcher.events) == 20, 10, "20 events")
    last = watcher.events[-1]["seq"]
    await watcher.close()
    await login_logout(5)  # 10 events the watcher never saw
    server.kill()
    server.start()  # same database, same ports
    watcher, reply = await subscribed_to(server, since=last)
    assert reply["ok"], reply
    await watcher.wait_for(lambda: len(watcher.events) == 10, 10, "the 10 missed events")
    assert [e["seq"] for e in watcher.events] == list(range(last + 1, last + 11))
    await login_logout(1)  # new events continue the sequence
    await watcher.wait_for(lambda: len(watcher.events) == 12, 10, "2 live events")
    assert [e["seq"] for e in watcher.events][-2:] == [last + 11, last + 12]
    await watcher.close()
    assert server.stop() == 0


async def subscribed_to(server: Any, **args: Any) -> tuple[CtiClient, dict]:
    c = await CtiClient.connect(server.cti_port)
    assert (await c.request("auth", token=server.token))["ok"]
    return c, await c.request("subscribe", events=["agent.*"], **args)


@dataclass(frozen=True, slots=True, kw_only=True)
class Odd:
    wire: ClassVar[str] = "call.odd"
    call_id: str
    value: Any  # whatever a buggy or hostile source put there


async def test_an_unencodable_event_goes_out_repaired_and_seq_has_no_gap(tmp_path: Path) -> None:
    """Issue 11, defect 1, injected directly: a lone surrogate (a non-UTF-8 byte from pjsua2),
    NaN and an object JSON does not know. Before the fix the outbox transaction was left
    open, the event vanished from both the outbox and the live stream and seq jumped."""
    server = await start(tmp_path / "h.db")
    client, _ = await subscribed(server, ["*"])
    bad_call_id = b"fz69\xf9a7@fuzz".decode("utf-8", "surrogateescape")
    with structlog.testing.capture_logs() as logs:
        server.bus.publish(Tick(call_id="c1", n=1))
        server.bus.publish(Odd(call_id=bad_call_id, value={"nan": float("nan"), "obj": object()}))
        server.bus.publish(Odd(call_id="c3", value=float("inf")))
        server.bus.publish(Tick(call_id="c4", n=4))
        await client.wait_for(lambda: len(client.events) == 4, 5, "4 live events")
    assert [e["seq"] for e in client.events] == [1, 2, 3, 4]
    odd = client.events[1]
    assert odd["call_id"] == "fz69\\udcf9a7@fuzz" and odd["data"]["value"]["nan"] is None
    assert odd["data"]["value"]["obj"].startswith("<object object at")
    assert client.events[2]["data"]["value"] is None
    repaired = [e for e in logs if e["event"] == "event_repaired"]
    assert [e["seq"] for e in repaired] == [2, 3]
    rows = server.bus.outbox.read_after(0, 100)  # type: ignore[union-attr]
    assert [seq for seq, _, _ in rows] == [1, 2, 3, 4]
    assert [json.loads(line)["seq"] for _, _, line in rows] == [1, 2, 3, 4]  # valid JSON, no NaN
    replay, reply = await subscribed(server, ["*"], since=0)
    await replay.wait_for(lambda: len(replay.events) == 4, 5, "the replay")
    assert reply["ok"] and replay.events == client.events
    await client.close()
    await replay.close()
    await server.stop()


def test_a_failed_outbox_write_never_leaves_a_transaction_open(tmp_path: Path) -> None:
    outbox = cti_bridge.Outbox(tmp_path / "h.db", retain_seconds=3600, retain_events=100)
    good = (1, "call.tick", 0.0, '{"seq":1}')
    unbindable = (2, "call.tick", 0.0, "fz69\udcf9a7")  # SQLite cannot encode it: UnicodeEncodeError
    with pytest.raises(cti_bridge.OutboxError):
        outbox.write([good, unbindable])
    assert not outbox._db.in_transaction  # before the fix: "cannot start a transaction within a transaction"
    assert outbox.read_after(0, 10) == []  # all or nothing
    outbox.write([good, (2, "call.tick", 0.0, '{"seq":2}')])
    assert [seq for seq, _, _ in outbox.read_after(0, 10)] == [1, 2]
    outbox.close()


async def test_a_crashing_outbox_write_loses_no_event(tmp_path: Path) -> None:
    """Whatever the outbox raises, the batch is delivered live and written at the next flush."""
    server = await start(tmp_path / "h.db")
    outbox = server.bus.outbox
    assert outbox is not None
    client, _ = await subscribed(server, ["*"])
    real_write = outbox.write
    calls = {"n": 0}

    def flaky(rows: list[tuple[int, str, float, str]]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the disk caught fire")
        real_write(rows)

    outbox.write = flaky  # type: ignore[method-assign]
    server.bus.publish(Tick(call_id="c1", n=1))
    server.bus.flush()
    server.bus.publish(Tick(call_id="c2", n=2))
    server.bus.flush()
    await client.wait_for(lambda: len(client.events) == 2, 5, "both events live")
    assert [seq for seq, _, _ in outbox.read_after(0, 10)] == [1, 2]
    await client.close()
    await server.stop()
