"""Shared test helpers: a fake clock, a CTI client, and a poll-until with a deadline."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeClock:
    now: float = 0.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class CtiClient:
    """An NDJSON client of the CTI socket, as an integrator would write one."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    events: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[Any, dict[str, Any]] = field(default_factory=dict)
    other: list[dict[str, Any]] = field(default_factory=list)
    _next_id: int = 0
    _task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> CtiClient:
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        client._task = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        while line := await self.reader.readline():
            msg = json.loads(line)
            if "seq" in msg and "event" in msg:
                self.events.append(msg)
            elif "id" in msg and msg.get("id") is not None and "ok" in msg:
                self.replies[msg["id"]] = msg
            else:
                self.other.append(msg)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, cmd: str, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
        self._next_id += 1
        rid = self._next_id
        await self.send_raw((json.dumps({"id": rid, "cmd": cmd, **args}) + "\n").encode())
        return await self.wait_for(lambda: self.replies.get(rid), timeout, f"reply to {cmd}")

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                names = [e["event"] for e in self.events]
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; events so far: {names}")
            await asyncio.sleep(0.02)

    async def wait_event(self, name: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for e in self.events:
                if e["event"] == name and all(
                    e.get(k) == v or e["data"].get(k) == v for k, v in match.items()
                ):
                    return e
            return None

        return await self.wait_for(find, timeout, f"{name} {match}")

    async def close(self) -> None:
        self.writer.close()
        if self._task is not None:
            self._task.cancel()
