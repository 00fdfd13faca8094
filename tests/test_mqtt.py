"""MQTT with a real mosquitto on 127.0.0.1: topics, retained agent state, and a
30 s broker outage under load that loses no event."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import aiomqtt
import pytest

import cti_bridge
from acd import AgentState
from acd import events as aev

from .helpers import free_port

OUTAGE_SECONDS = 30  # the scenario: the broker is gone for 30 s under load


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    wire: ClassVar[str] = "call.tick"
    call_id: str
    n: int


class Mosquitto:
    """A real broker on a free loopback port, with persistence so a durable
    subscriber session survives the broker's restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {workdir}/\nautosave_interval 1\nmax_queued_messages 100000\n"
            f"log_dest file {workdir}/mosquitto.log\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdin=subprocess.DEVNULL)
        import socket
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()


class Subscriber:
    """A durable (clean_session=False, QoS 1) consumer that reconnects by itself and
    dedupes by seq, as the docs tell integrators to."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seqs: set[int] = set()
        self.duplicates = 0
        self.retained: dict[str, Any] = {}
        self.topics: set[str] = set()
        self._task = asyncio.create_task(self._run())
        self.connected = asyncio.Event()

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier="test-sub", clean_session=False
                ) as c:
                    await c.subscribe("hotline/#", qos=1)
                    self.connected.set()
                    async for msg in c.messages:
                        payload = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
                        topic = str(msg.topic)
                        self.topics.add(topic)
                        if topic.endswith("/state"):
                            self.retained[topic] = payload
                            continue
                        if payload["seq"] in self.seqs:
                            self.duplicates += 1
                        self.seqs.add(payload["seq"])
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def make_bus(tmp_path: Path, broker_port: int) -> tuple[cti_bridge.EventBus, cti_bridge.MqttPublisher]:
    outbox = cti_bridge.Outbox(tmp_path / "h.db", retain_seconds=3600, retain_events=10**6)
    bus = cti_bridge.EventBus(outbox=outbox)
    publisher = cti_bridge.MqttPublisher(
        cti_bridge.MqttSettings(host="127.0.0.1", port=broker_port, node="n1"), outbox
    )
    bus.add_sink(publisher.notify)
    return bus, publisher


async def wait_until(predicate: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_topics_and_retained_agent_state(broker: Mosquitto, tmp_path: Path) -> None:
    sub = Subscriber(broker.port)
    await asyncio.wait_for(sub.connected.wait(), 10)
    bus, publisher = make_bus(tmp_path, broker.port)
    publisher.start()
    await wait_until(lambda: publisher.connected, 10, "publisher connected")
    bus.publish(Tick(call_id="c1", n=1))
    bus.publish(
        aev.AgentStateChanged(
            agent_id="1001", from_=AgentState.NOT_READY, to=AgentState.AVAILABLE, reason=None
        )
    )
    await wait_until(lambda: len(sub.seqs) == 2 and sub.retained, 10, "2 events and agent state")
    assert "hotline/n1/call/tick" in sub.topics and "hotline/n1/agent/state_changed" in sub.topics
    assert sub.retained["hotline/n1/agents/1001/state"]["state"] == "available"
    await publisher.stop()
    await sub.close()
    # the agent state is retained: a new client gets it at once
    async with aiomqtt.Client("127.0.0.1", broker.port) as late:
        await late.subscribe("hotline/n1/agents/+/state", qos=1)
        msg = await asyncio.wait_for(anext(aiter(late.messages)), 5)
        assert json.loads(bytes(msg.payload))["state"] == "available"  # type: ignore[arg-type]


async def test_broker_outage_under_load_loses_no_event(broker: Mosquitto, tmp_path: Path) -> None:
    sub = Subscriber(broker.port)
    await asyncio.wait_for(sub.connected.wait(), 10)
    bus, publisher = make_bus(tmp_path, broker.port)
    publisher.start()
    await wait_until(lambda: publisher.connected, 10, "publisher connected")
    stop = asyncio.Event()
    sent: list[int] = []

    async def load() -> None:  # about 200 events a second, the whole time
        n = 0
        while not stop.is_set():
            n += 1
            sent.append(bus.publish(Tick(call_id=f"c{n}", n=n))["seq"])
            await asyncio.sleep(0.005)

    producer = asyncio.create_task(load())
    await asyncio.sleep(2)
    broker.stop()
    await asyncio.sleep(OUTAGE_SECONDS)
    assert not publisher.connected
    broker.start()
    await asyncio.sleep(2)
    stop.set()
    await producer
    await wait_until(lambda: set(sent) <= sub.seqs, 60, "every event on MQTT")
    assert len(sent) > 100 * OUTAGE_SECONDS
    missing = set(sent) - sub.seqs
    assert not missing, f"{len(missing)} events never reached MQTT"
    await publisher.stop()
    await sub.close()


async def test_server_publishes_when_configured_and_is_silent_when_not(
    broker: Mosquitto, tmp_path: Path
) -> None:
    from .helpers import CtiClient, HotlineProcess

    agents = [{"id": "1001", "contact": "sip:1001@127.0.0.1:9"}]
    quiet = HotlineProcess(workdir=tmp_path / "quiet", agents=agents).start()
    loud = HotlineProcess(
        workdir=tmp_path / "loud",
        agents=agents,
        extra_toml=f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n',
    ).start()
    sub = Subscriber(broker.port)
    await asyncio.wait_for(sub.connected.wait(), 10)
    for server in (quiet, loud):
        c = await CtiClient.connect(server.cti_port)
        assert (await c.request("auth", token=server.token))["ok"]
        assert (await c.request("agent.login", agent="1001"))["ok"]
        assert (await c.request("agent.ready", agent="1001"))["ok"]
        await c.close()
    await wait_until(
        lambda: sub.retained.get("hotline/hotline-1/agents/1001/state", {}).get("state") == "available",
        10,
        "retained agent state",
    )
    assert quiet.stop() == 0 and loud.stop() == 0
    await sub.close()
    quiet_log = quiet.log_events()
    assert not [e for e in quiet_log if "mqtt" in e["event"] or e.get("level") == "error"]
    assert any(e["event"] == "mqtt_connected" for e in loud.log_events())


def test_a_publisher_that_never_reached_the_broker_still_resumes_where_it_began(tmp_path: Path) -> None:
    """The cursor must be durable from the moment the publisher exists: before, it was only
    saved once a first connection attempt ended, so a kill -9 before that (a broker host that
    is slow to refuse) made the next run start at the newest event, skipping the backlog."""
    outbox = cti_bridge.Outbox(tmp_path / "h.db", retain_seconds=3600, retain_events=10**6)
    bus = cti_bridge.EventBus(outbox=outbox)
    bus.publish(Tick(call_id="c0", n=0))  # before this run's publisher: delivered by an earlier one
    cti_bridge.MqttPublisher(cti_bridge.MqttSettings(host="127.0.0.1", port=9, node="n1"), outbox)
    for n in range(1, 6):
        bus.publish(Tick(call_id=f"c{n}", n=n))
    outbox.close()  # killed: no stop(), no connection attempt ever finished
    again = cti_bridge.Outbox(tmp_path / "h.db", retain_seconds=3600, retain_events=10**6)
    restarted = cti_bridge.MqttPublisher(cti_bridge.MqttSettings(host="127.0.0.1", port=9, node="n1"), again)
    assert restarted.cursor == 1  # the five events of the killed run are still to be sent
    again.close()


@pytest.mark.parametrize("how", ["sigterm", "kill -9"])
async def test_a_restarted_server_sends_the_backlog_it_had_not_published(
    broker: Mosquitto, tmp_path: Path, how: str
) -> None:
    """Issue 11: after a restart, the events a broker outage left unpublished go out. The broker
    is down while agents change state; the server is stopped with that backlog (SIGTERM, or
    kill -9), the broker comes back, the server restarts: every event reaches MQTT once or more."""
    from .helpers import CtiClient, HotlineProcess

    broker.stop()
    agents = [{"id": f"10{n:02d}", "contact": f"sip:10{n:02d}@127.0.0.1:9"} for n in range(10)]
    server = HotlineProcess(
        workdir=tmp_path / "hotline",
        agents=agents,
        log_level="info",
        extra_toml=f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n',
    ).start()
    c = await CtiClient.connect(server.cti_port)
    assert (await c.request("auth", token=server.token))["ok"]
    lines = [
        {"id": f"r{r}-{a['id']}-{cmd}", "cmd": cmd, "agent": a["id"], "reason": "break"}
        for r in range(10)
        for a in agents
        for cmd in ("agent.login", "agent.ready", "agent.not_ready", "agent.logout")
    ]  # 400 agent.state_changed events, sent at once (within the connection's burst)
    await c.send_raw("".join(json.dumps(line) + "\n" for line in lines).encode())
    await c.wait_for(lambda: len(c.replies) == 1 + len(lines), 20, "every reply")
    assert all(r["ok"] for r in c.replies.values())
    seq = (await c.request("ping"))["seq"]
    await c.close()
    assert seq >= 400
    if how == "sigterm":
        assert server.stop() == 0
    else:
        server.kill()
    broker.start()
    sub = Subscriber(broker.port)
    await asyncio.wait_for(sub.connected.wait(), 10)
    server.start()
    try:
        await wait_until(lambda: set(range(1, seq + 1)) <= sub.seqs, 30, f"the {seq} events of the backlog")
    finally:
        await sub.close()
        assert server.stop() == 0
