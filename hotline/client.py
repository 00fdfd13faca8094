"""An asyncio client of hotline's CTI protocol (docs/cti.md), for integrators and tests.

    async with CtiClient("127.0.0.1", 7011, token, events=["call.*"]) as cti:
        await cti.request("agent.login", agent="1001")
        async for event in cti:
            print(event.seq, event.name, event.data)

- ``auth`` and ``subscribe`` on connect; ``since`` (an int, or a callable asked at every
  connect, e.g. your own saved seq) replays what was missed.
- When the connection drops (server restart, network), it reconnects with back-off, and
  resubscribes from the last event it delivered, so the stream has no gap and no duplicate.
  If the server no longer retains those events, a :class:`Gap` item says so, and the stream
  goes on from now.
- Replies are dicts of the reply's fields; a refused command raises :class:`CtiCommandError`
  with the protocol's stable ``code`` (``cti.forbidden``, ``acd.unknown_agent``, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_LINE = 1 << 20  # bytes per line we accept from the server


class CtiClientError(Exception):
    """Base of the client's errors."""

    code = "client.error"


class CtiCommandError(CtiClientError):
    """The server refused a command; ``code`` is the protocol's stable error code."""

    def __init__(self, code: str, message: str, cmd: str = "") -> None:
        super().__init__(f"{cmd + ': ' if cmd else ''}{code}: {message}")
        self.code = code
        self.message = message
        self.cmd = cmd


class CtiAuthError(CtiCommandError):
    """The token was refused (cti.auth_failed, cti.auth_throttled): reconnecting will not help."""


class CtiDisconnected(CtiClientError):
    """The connection is gone (and the client is closed, or the request was in flight)."""

    code = "client.disconnected"


@dataclass(frozen=True, slots=True)
class Event:
    seq: int  # server-wide, strictly increasing
    name: str  # wire name, e.g. "call.ended"
    time: str  # ISO 8601 UTC
    call_id: str | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Gap:
    """Events after ``after_seq`` were lost to the server's retention; the stream resumed from now."""

    after_seq: int
    message: str  # the server's explanation (oldest retained seq)


Since = int | Callable[[], int | None] | None


class CtiClient:
    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        *,
        events: Iterable[str] = ("*",),
        since: Since = None,
        tls: ssl.SSLContext | None = None,
        reconnect: bool = True,
        retry_first: float = 0.2,
        retry_max: float = 5.0,
        request_timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self._token = token
        self.patterns = list(events)
        self._since = since
        self.reconnect = reconnect
        self.retry_first, self.retry_max = retry_first, retry_max
        self.request_timeout = request_timeout
        self.last_seq: int | None = None  # the newest event handed to the stream
        self.subscribed_seq: int | None = None  # the server's newest seq when we last subscribed
        self.connects = 0  # successful (re)connections
        self._queue: asyncio.Queue[Event | Gap | None] = asyncio.Queue()
        self._pending: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._ids = 0
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reading: asyncio.Task[None] | None = None
        self._closed = False
        self.closed_reason: str | None = None  # the last session.closed reason the server gave

    # ------------------------------------------------------------ lifecycle
    async def connect(self) -> CtiClient:
        """Connect, authenticate and subscribe; raises if the first attempt fails (later drops
        are reconnected in the background)."""
        await self._open()
        self._task = asyncio.create_task(self._run())
        return self

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._drop(CtiDisconnected("the client was closed"))
        self._queue.put_nowait(None)

    async def __aenter__(self) -> CtiClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------------- commands
    async def request(self, cmd: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """Run a command; its reply's fields (without ``id`` and ``ok``). Waits for a reconnect
        in progress. Raises :class:`CtiCommandError`, or :class:`CtiDisconnected`."""
        limit = self.request_timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(self._connected.wait(), limit)
        except TimeoutError:
            raise CtiDisconnected(f"{cmd}: not connected to {self.host}:{self.port}") from None
        return await asyncio.wait_for(self._call(cmd, args), limit)

    # ---------------------------------------------------------------- events
    def __aiter__(self) -> AsyncIterator[Event | Gap]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event | Gap]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    async def next_event(self, timeout: float | None = None) -> Event | Gap:
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is None:
            raise CtiDisconnected("the client was closed")
        return item

    # -------------------------------------------------------------- internals
    async def _open(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.tls, limit=MAX_LINE)
        self._writer = writer
        reading = asyncio.create_task(self._read(reader))
        try:
            await self._call("auth", {"token": self._token})
            since = self.last_seq
            if since is None:
                since = self._since() if callable(self._since) else self._since
            args: dict[str, Any] = {"events": self.patterns}
            try:
                reply = await self._call(
                    "subscribe", {**args, **({"since": since} if since is not None else {})}
                )
            except CtiCommandError as exc:
                if exc.code != "cti.since_too_old" or since is None:
                    raise
                reply = await self._call("subscribe", args)
                self._queue.put_nowait(Gap(after_seq=since, message=exc.message))
            self.subscribed_seq = int(reply.get("seq", 0))
            if self.last_seq is None and since is None:
                self.last_seq = self.subscribed_seq
            self._reading = reading
            self.connects += 1
            self._connected.set()
        except BaseException:
            reading.cancel()
            await self._drop(CtiDisconnected("the connection failed while opening"))
            raise

    async def _run(self) -> None:
        delay = self.retry_first
        while not self._closed:
            if self._reading is not None:
                await self._reading  # ends when the connection does
            self._connected.clear()
            await self._drop(CtiDisconnected(f"the connection to {self.host}:{self.port} was lost"))
            if not self.reconnect or self._closed:
                self._queue.put_nowait(None)
                return
            while not self._closed:
                await asyncio.sleep(delay)
                try:
                    await self._open()
                    delay = self.retry_first
                    break
                except CtiAuthError:
                    self._queue.put_nowait(None)
                    raise
                except (OSError, CtiClientError, asyncio.IncompleteReadError):
                    delay = min(delay * 2, self.retry_max)

    async def _call(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        if self._writer is None:
            raise CtiDisconnected(f"{cmd}: not connected")
        self._ids += 1
        rid = self._ids
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = (cmd, future)
        self._writer.write((json.dumps({"id": rid, "cmd": cmd, **args}) + "\n").encode())
        await self._writer.drain()
        try:
            return await future
        finally:
            self._pending.pop(rid, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            await self._read_lines(reader)
        finally:  # a reply that will never come: its request fails now
            for _cmd, future in list(self._pending.values()):
                if not future.done():
                    future.set_exception(CtiDisconnected("the connection was lost before the reply"))

    async def _read_lines(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except (OSError, ValueError):
                return
            if not line:
                return
            msg = json.loads(line)
            if "seq" in msg and "event" in msg:
                seq = int(msg["seq"])
                if self.last_seq is not None and seq <= self.last_seq:
                    continue  # a redelivery at a reconnect's seam
                self.last_seq = seq
                self._queue.put_nowait(
                    Event(seq, msg["event"], msg["time"], msg.get("call_id"), msg.get("data") or {})
                )
            elif msg.get("event") == "session.closed":
                self.closed_reason = str((msg.get("data") or {}).get("reason"))
            elif msg.get("id") in self._pending:
                cmd, future = self._pending[msg["id"]]
                if future.done():
                    continue
                if msg.get("ok"):
                    future.set_result({k: v for k, v in msg.items() if k not in ("id", "ok")})
                else:
                    err = msg.get("error") or {}
                    code, message = str(err.get("code", "cti.error")), str(err.get("message", ""))
                    kind = (
                        CtiAuthError if code in ("cti.auth_failed", "cti.auth_throttled") else CtiCommandError
                    )
                    future.set_exception(kind(code, message, cmd))

    async def _drop(self, error: CtiClientError) -> None:
        for _cmd, future in list(self._pending.values()):
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


__all__ = [
    "CtiAuthError",
    "CtiClient",
    "CtiClientError",
    "CtiCommandError",
    "CtiDisconnected",
    "Event",
    "Gap",
]
