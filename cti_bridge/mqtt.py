"""MQTT publishing from the durable outbox, at least once.

Events go to ``<prefix>/<node>/<event name, dots as slashes>`` with QoS 1; agent
state is also kept retained at ``<prefix>/<node>/agents/<id>/state``. The
publisher reads the outbox after its cursor and advances the cursor only after
the broker's PUBACK, and the cursor is saved in the same database: a broker
outage, or a hotline restart during one, loses nothing. Consumers dedupe by seq.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog

from .outbox import Outbox

log = structlog.get_logger("mqtt")

BATCH = 200  # events in flight to the broker at once
CURSOR_SAVE_EVERY = 1.0  # seconds between cursor saves while publishing
RETRY_FIRST, RETRY_MAX = 0.5, 10.0  # reconnect back-off, seconds


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    node: str  # this server's name in topics
    topic_prefix: str = "hotline"
    client_id: str = ""  # "" = hotline-<node>
    username: str = ""
    password: str = ""


class MqttPublisher:
    def __init__(self, settings: MqttSettings, outbox: Outbox) -> None:
        self.settings = settings
        self.outbox = outbox
        self.cursor = outbox.cursor("mqtt")
        # durable from now on: a run killed before its first broker connection attempt ended
        # must not make the next one start at the newest event and skip this run's backlog
        outbox.save_cursor("mqtt", self.cursor)
        self.connected = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self, _envelope: dict[str, Any]) -> None:
        """A bus sink: new durable events exist."""
        self._wake.set()

    def topic(self, event: str) -> str:
        return f"{self.settings.topic_prefix}/{self.settings.node}/{event.replace('.', '/')}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.outbox.save_cursor("mqtt", self.cursor)

    async def _run(self) -> None:
        s = self.settings
        delay = RETRY_FIRST
        while True:
            try:
                async with aiomqtt.Client(
                    s.host,
                    s.port,
                    identifier=s.client_id or f"hotline-{s.node}",
                    username=s.username or None,
                    password=s.password or None,
                    timeout=10,
                ) as client:
                    self.connected, delay = True, RETRY_FIRST
                    log.info("mqtt_connected", host=s.host, port=s.port, resume_after_seq=self.cursor)
                    await self._pump(client)
            except aiomqtt.MqttError as exc:
                if self.connected:
                    log.warning("mqtt_disconnected", error=str(exc), unsent_after_seq=self.cursor)
                else:
                    log.debug("mqtt_connect_failed", error=str(exc), retry_in=delay)
            finally:
                self.connected = False
                self.outbox.save_cursor("mqtt", self.cursor)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _pump(self, client: aiomqtt.Client) -> None:
        loop = asyncio.get_running_loop()
        saved_at = loop.time()
        while True:
            rows = self.outbox.read_after(self.cursor, BATCH)
            if not rows:
                self._wake.clear()
                self.outbox.save_cursor("mqtt", self.cursor)
                await self._wake.wait()
                continue
            sends = []
            for _seq, name, line in rows:
                sends.append(client.publish(self.topic(name), line, qos=1))
                if name == "agent.state_changed":
                    sends.append(self._agent_state(client, line))
            await asyncio.gather(*sends)  # every PUBACK in, or MqttError
            self.cursor = rows[-1][0]
            if loop.time() - saved_at > CURSOR_SAVE_EVERY:
                self.outbox.save_cursor("mqtt", self.cursor)
                saved_at = loop.time()

    async def _agent_state(self, client: aiomqtt.Client, line: str) -> None:
        env = json.loads(line)
        data = env["data"]
        state = {"state": data["to"], "reason": data["reason"], "since": env["time"], "seq": env["seq"]}
        topic = f"{self.settings.topic_prefix}/{self.settings.node}/agents/{data['agent_id']}/state"
        await client.publish(topic, json.dumps(state), qos=1, retain=True)
