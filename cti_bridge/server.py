"""The asyncio side of the CTI bridge: the event bus, and protocol sessions over TCP, TLS and WebSocket."""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import inspect
import json
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from .audit import AuditLog
from .events import PROTOCOL_VERSION, envelope, wire_name
from .outbox import Outbox, safe_line
from .protocol import (
    MAX_LINE_BYTES,
    CtiError,
    Subscription,
    error_reply,
    ok_reply,
    parse_patterns,
    parse_request,
    require_str,
)

log = structlog.get_logger("cti")

#: Runs an authenticated command that the bridge does not own (agent.*, ...).
#: Returns the reply's extra fields or raises CtiError.
Control = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
Sink = Callable[[dict[str, Any]], None]
#: Finds a call's recording file: call_id -> Path, or None when there is none. May be async.
RecordingResolver = Callable[[str], "Path | Awaitable[Path | None] | None"]
#: Serves the HTTP port of a server (cti_bridge.httpd.start_http, given by build_cti):
#: (server, host, port, tls) -> (a runner to ``cleanup()``, the bound port).
HttpStarter = Callable[["CtiServer", str, int, "ssl.SSLContext | None"], Awaitable[tuple[Any, int]]]
#: Adds routes to the HTTP port's aiohttp application (e.g. hotline's /agent and /wallboard pages).
HttpRoutes = Callable[[Any], None]

MAX_QUEUED_LINES = 10_000  # per client; a client that falls further behind is disconnected
PURGE_INTERVAL = 60.0  # seconds between outbox retention runs
REPLAY_CHUNK = 500  # outbox rows read per step of a `since` replay
MAX_UNWRITTEN = 100_000  # events kept in memory while the outbox cannot be written
MAX_AUTH_FAILURES = 3  # per connection, then it is closed
THROTTLE_FAILURES = 5  # failed auths from one address within THROTTLE_WINDOW ...
THROTTLE_WINDOW = 60.0  # seconds ...
THROTTLE_BLOCK = 30.0  # ... refuse every auth from it for this many seconds
LOGGED_BAD_LINES = 5  # bad lines (not JSON, over a limit) logged per connection; the rest are counted


class EventBus:
    """Numbers every event with a server-wide strictly increasing ``seq`` and fans it out.

    With an outbox, events are first written to SQLite (batched once per loop
    iteration, or at :meth:`flush`) and only then delivered to clients and
    sinks, so a client that reconnects with ``since`` misses nothing.

    Fan-out is per batch, not per event: each event is encoded once, and each
    client gets the lines it subscribes to as one ``bytes`` per flush (clients
    that want the same events share it), so a flush costs one queue append and
    at most one write per client however many events it holds.
    """

    def __init__(self, wall_clock: Callable[[], float] = time.time, outbox: Outbox | None = None) -> None:
        self._wall = wall_clock
        self.outbox = outbox
        self.seq = outbox.last_seq() if outbox is not None else 0
        self._clients: set[Session] = set()
        self._sinks: list[Sink] = []
        self._pending: list[tuple[int, str, float, str]] = []  # outbox rows not yet written
        self._pending_envs: list[dict[str, Any]] = []  # their envelopes, for the sinks
        self._unwritten: list[tuple[int, str, float, str]] = []  # rows a failed write left behind
        self._flush_handle: asyncio.Handle | None = None

    def add_sink(self, sink: Sink) -> None:
        """A sink sees every envelope after it is durable (call records, logs, MQTT)."""
        self._sinks.append(sink)

    def publish(self, event: object) -> dict[str, Any]:
        """Number ``event`` and queue it for the outbox and the clients. The seq is taken
        only once the event is sure to go out: an object that is no event (TypeError, a
        bug) takes none, and an event holding what JSON cannot (bytes that are not UTF-8,
        NaN) is repaired and still goes out under its seq, so seq never has a gap."""
        seq = self.seq + 1
        wall = self._wall()
        env = envelope(seq, event, wall)
        line, env, problem = safe_line(env)
        self.seq = seq
        if problem is not None:
            log.error("event_repaired", seq=seq, cti_event=env["event"], error=problem)
        if self.outbox is None:
            self._deliver([env["event"]], [line], [env])
            return env
        self._pending.append((seq, env["event"], wall, line))
        self._pending_envs.append(env)
        if self._flush_handle is None:
            try:
                self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (a tool or a test): write now
                self.flush()
        return env

    def publish_all(self, events: Iterable[object]) -> None:
        for event in events:
            self.publish(event)

    def flush(self) -> None:
        """Make pending events durable, then deliver them in seq order."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._pending:
            return
        batch, envs = self._pending, self._pending_envs
        self._pending, self._pending_envs = [], []
        assert self.outbox is not None
        rows = self._unwritten + batch if self._unwritten else batch
        try:
            self.outbox.write(rows)
            self._unwritten = []
        except Exception as exc:  # OutboxError, or anything else: the batch must not be lost
            # keep serving: deliver live, keep the rows to write on the next flush
            self._unwritten = rows[-MAX_UNWRITTEN:]
            log.error("cti_outbox_write_failed", error=str(exc), unwritten=len(self._unwritten))
        self._deliver([row[1] for row in batch], [row[3] for row in batch], envs)

    def _deliver(self, names: list[str], lines: list[str], envs: list[dict[str, Any]]) -> None:
        """Fan a batch out, in seq order: to every subscribed client, then to the sinks."""
        if self._clients:
            kinds = list(dict.fromkeys(names))  # the batch's distinct event names, in order
            everything: bytes | None = None
            some: dict[tuple[bool, ...], tuple[bytes, int]] = {}  # per distinct partial subscription
            for client in list(self._clients):
                wants = client.subscription.wants
                if all(map(wants, kinds)):
                    if everything is None:
                        everything = ("\n".join(lines) + "\n").encode()
                    client.send_lines(everything, len(lines))
                    continue
                mask = tuple(map(wants, kinds))
                if any(mask):
                    picked = some.get(mask)
                    if picked is None:
                        wanted = {name for name, yes in zip(kinds, mask, strict=True) if yes}
                        chosen = [line for name, line in zip(names, lines, strict=True) if name in wanted]
                        picked = some[mask] = (("\n".join(chosen) + "\n").encode(), len(chosen))
                    client.send_lines(*picked)
        if self._sinks:
            for name, env in zip(names, envs, strict=True):
                for sink in self._sinks:
                    try:
                        sink(env)
                    except Exception:  # a broken sink must not stop the others or the call
                        log.exception("event_sink_failed", event=name)


@dataclass(frozen=True, slots=True)
class Token:
    name: str  # who holds it; logged instead of the secret
    secret: str
    scopes: frozenset[str] = frozenset({"read"})  # read, agent, supervise, control, admin
    agent: str | None = None  # with scope "agent": the only agent these commands may act for

    def allows(self, cmd: str, args: dict[str, Any]) -> bool:
        if "admin" in self.scopes:
            return True
        need = COMMAND_SCOPES.get(cmd, "control")
        if need == "read":
            return bool(self.scopes & {"read", "agent", "supervise", "control"})
        if need == "supervise":  # monitoring calls: only tokens given it (admin includes it)
            return "supervise" in self.scopes
        if need == "agent":
            if "control" in self.scopes:
                return True
            return "agent" in self.scopes and self.agent is not None and args.get("agent") == self.agent
        if need == "control":
            return "control" in self.scopes
        return False


SCOPES = ("read", "agent", "supervise", "control", "admin")
#: the scope each command needs; "agent" commands also pass with control (any agent). An
#: agent token runs the call commands below for its own calls (it passes `agent`; the
#: server checks the call is that agent's).
COMMAND_SCOPES: dict[str, str] = {
    "subscribe": "read",
    "ping": "read",
    "floor.snapshot": "read",
    "agent.login": "agent",
    "agent.ready": "agent",
    "agent.not_ready": "agent",
    "agent.logout": "agent",
    "agent.end_wrap_up": "agent",
    "agent.disposition": "agent",
    "call.hold": "agent",
    "call.retrieve": "agent",
    "call.hangup": "agent",
    "call.transfer": "agent",
    "call.consult": "agent",
    "call.consult_cancel": "agent",
    "call.conference": "agent",
    "call.transfer_complete": "agent",
    "call.assist": "agent",
    "call.monitor": "supervise",
    "call.monitor_mode": "supervise",
    "call.monitor_stop": "supervise",
}

#: The token of the session whose command is running (for audit rows: who asked).
current_token: contextvars.ContextVar[Token | None] = contextvars.ContextVar("current_token", default=None)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Per-connection bounds, the same on every transport."""

    auth_timeout: float = 10.0  # seconds a connection may stay unauthenticated; 0 = no limit
    max_queued: int = MAX_QUEUED_LINES  # lines queued for one client before slow_consumer
    rate: float = 200.0  # requests per second a connection may send, sustained ...
    burst: int = 500  # ... after a burst of this many; more is a flood and ends the session
    close_grace: float = 2.0  # seconds to deliver session.closed before the connection is cut


#: Sends a batch to the peer, in order; waits while the peer is slow. Each item holds one or
#: more whole ``\n``-terminated lines (a flush's events for one client come as one item).
Send = Callable[[list[bytes]], Awaitable[None]]
#: The next request (one line or one WebSocket message), or None when the peer has gone.
Receive = Callable[[], Awaitable[bytes | None]]


class Session:
    """One client, whatever carries it (TCP, TLS, WebSocket): token, subscription,
    request budget, and a bounded queue of outgoing lines (``limits.max_queued`` lines, held
    as the chunks they were queued in)."""

    def __init__(self, peer: str, transport: str, limits: SessionLimits, now: float) -> None:
        self.peer = peer  # "address:port"
        self.transport = transport  # tcp, tls or ws
        self.limits = limits
        self.subscription = Subscription()
        self.token: Token | None = None
        self.auth_failures = 0
        self.bad_lines = 0  # lines refused as cti.bad_json / cti.line_too_long
        self._chunks: deque[bytes] = deque()  # queued, not yet handed to the transport
        self._queued = 0  # lines in _chunks
        self._wake = asyncio.Event()
        self.ended = asyncio.Event()  # set by close()
        self.closing: str | None = None
        self._budget = float(limits.burst)  # requests that may still be sent at once
        self._budget_at = now  # loop time the budget was computed at

    @property
    def address(self) -> str:
        return self.peer.rsplit(":", 1)[0]

    def send(self, obj: dict[str, Any]) -> None:
        self.send_line((json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode())

    def send_line(self, line: bytes) -> None:
        self.send_lines(line, 1)

    def send_lines(self, data: bytes, count: int) -> None:
        """Queue ``count`` whole ``\n``-terminated lines held in ``data``. The session ends as a
        slow consumer when the queue would exceed ``limits.max_queued`` lines."""
        if self.closing:
            return
        if self._queued + count > self.limits.max_queued:
            self.close("slow_consumer")
            return
        self._chunks.append(data)
        self._queued += count
        if len(self._chunks) == 1:  # empty -> non-empty: the pump is (or will be) waiting
            self._wake.set()

    def backlog(self) -> int:
        """Lines queued and not yet handed to the transport."""
        return self._queued

    def spend(self, now: float) -> bool:
        """Take one request from the token bucket; False when the client floods."""
        self._budget = min(
            float(self.limits.burst), self._budget + (now - self._budget_at) * self.limits.rate
        )
        self._budget_at = now
        if self._budget < 1.0:
            return False
        self._budget -= 1.0
        return True

    def close(self, reason: str) -> None:
        """End the session: ``session.closed`` with the reason is the last line sent."""
        if self.closing is None:
            self.closing = reason
            if reason == "slow_consumer":
                # the client is behind anyway; let the reason reach it first
                self._chunks.clear()
                self._queued = 0
            self._chunks.append(
                (json.dumps({"event": "session.closed", "data": {"reason": reason}}) + "\n").encode()
            )
            self._queued += 1
            self._wake.set()
            self.ended.set()

    def close_if_unauthenticated(self) -> None:
        if self.token is None:
            self.close("auth_timeout")

    async def pump(self, send: Send) -> None:
        """Writes queued lines in order, everything queued at once; ends when the session is
        closed and drained."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._chunks:
                batch = list(self._chunks)
                self._chunks.clear()
                self._queued = 0
                await send(batch)
            if self.closing:
                return


#: Kept for code that named the old class.
_Client = Session


class CtiServer:
    """The CTI protocol over TCP, TLS (when ``tls`` is given) and WebSocket at ``/cti`` on the
    HTTP port (when ``http_port`` is given), plus ``GET /recordings/<call_id>`` there."""

    def __init__(
        self,
        bus: EventBus,
        tokens: Iterable[Token],
        control: Control,
        *,
        host: str,
        port: int | None,
        tls: ssl.SSLContext | None = None,
        tls_port: int | None = None,
        http_port: int | None = None,
        http_host: str | None = None,
        http_tls: ssl.SSLContext | None = None,
        recordings: RecordingResolver | None = None,
        audit: AuditLog | None = None,
        limits: SessionLimits | None = None,
        http_starter: HttpStarter | None = None,
        http_routes: Iterable[HttpRoutes] = (),
    ) -> None:
        if tls is not None and tls_port is None:
            raise ValueError("a TLS context needs a tls_port to listen on")
        if http_port is not None and http_starter is None:
            raise ValueError("an http_port needs an http_starter to serve it (build_cti gives one)")
        self.bus = bus
        self.tokens = list(tokens)
        self.control = control
        self.host, self.port = host, port  # port None: no plain TCP listener
        self.tls, self.tls_port = tls, tls_port
        self.http_host, self.http_port, self.http_tls = http_host or host, http_port, http_tls
        self.recordings = recordings  # call_id -> the recording file, or None
        self.audit = audit  # where recording downloads are recorded
        self.limits = limits or SessionLimits()
        self._http_starter = http_starter
        self.http_routes = tuple(http_routes)  # more routes on the HTTP port (pages)
        self._servers: list[asyncio.Server] = []
        self._http: Any = None  # the aiohttp runner, when serving HTTP
        self._tasks: set[asyncio.Task[None]] = set()
        self._sessions: set[Session] = set()
        self._purge_timer: asyncio.TimerHandle | None = None
        self._failures: dict[str, list[float]] = {}  # address -> recent failed auth times
        self._blocked: dict[str, float] = {}  # address -> loop time auth is refused until

    async def start(self) -> None:
        if self.port is not None:
            plain = await asyncio.start_server(self._serve_tcp, self.host, self.port, limit=MAX_LINE_BYTES)
            self._servers.append(plain)
            self.port = plain.sockets[0].getsockname()[1]
        if self.tls is not None:
            secure = await asyncio.start_server(
                self._serve_tls,
                self.host,
                self.tls_port,
                limit=MAX_LINE_BYTES,
                ssl=self.tls,
                ssl_handshake_timeout=max(self.limits.auth_timeout, 1.0)
                if self.limits.auth_timeout
                else None,
            )
            self._servers.append(secure)
            self.tls_port = secure.sockets[0].getsockname()[1]
        if self.http_port is not None and self._http_starter is not None:
            self._http, self.http_port = await self._http_starter(
                self, self.http_host, self.http_port, self.http_tls
            )
        if self.bus.outbox is not None:
            self._purge()
        log.info(
            "cti_listening",
            host=self.host,
            port=self.port,
            tls_port=self.tls_port if self.tls is not None else None,
            http_port=self.http_port,
            protocol=PROTOCOL_VERSION,
        )

    def _purge(self) -> None:
        """Apply the outbox retention now and every PURGE_INTERVAL seconds."""
        assert self.bus.outbox is not None
        try:
            dropped = self.bus.outbox.purge()
            if dropped:
                log.info("cti_outbox_purged", events=dropped, oldest=self.bus.outbox.oldest_seq())
        except Exception as exc:
            log.error("cti_outbox_purge_failed", error=str(exc))
        self._purge_timer = asyncio.get_running_loop().call_later(PURGE_INTERVAL, self._purge)

    async def stop(self) -> None:
        if self._purge_timer is not None:
            self._purge_timer.cancel()
        self.bus.flush()
        for server in self._servers:
            server.close()
        for session in list(self._sessions):
            session.close("server_shutdown")
        if self._tasks:  # let each session deliver its reason, briefly
            await asyncio.wait(list(self._tasks), timeout=1.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.cleanup()
            self._http = None
        for server in self._servers:
            await server.wait_closed()
        self._servers = []

    # ------------------------------------------------------------ transports
    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve_stream(reader, writer, "tcp")

    async def _serve_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve_stream(reader, writer, "tls")

    async def _serve_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str
    ) -> None:
        peer = "{}:{}".format(*writer.get_extra_info("peername")[:2])
        session = self.new_session(peer, transport)

        async def send(chunks: list[bytes]) -> None:
            writer.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            await writer.drain()

        async def receive() -> bytes | None:
            return await self._read_line(reader, session)

        def finish(graceful: bool) -> None:
            if graceful:
                writer.close()
            else:
                writer.transport.abort()

        await self.run_session(session, send, receive, finish)

    def new_session(self, peer: str, transport: str) -> Session:
        return Session(peer, transport, self.limits, asyncio.get_running_loop().time())

    async def run_session(
        self, session: Session, send: Send, receive: Receive, finish: Callable[[bool], Any]
    ) -> None:
        """The one session loop every transport runs: read requests, answer them, keep the
        client's queue flowing, and end with a reason (auth timeout, flood, slow consumer)."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._sessions.add(session)
        loop = asyncio.get_running_loop()
        idle = (
            loop.call_later(self.limits.auth_timeout, session.close_if_unauthenticated)
            if self.limits.auth_timeout > 0
            else None
        )
        pump = asyncio.create_task(session.pump(send))
        reading = asyncio.create_task(self._read_loop(session, receive))
        ended = asyncio.create_task(session.ended.wait())
        log.info("cti_connected", peer=session.peer, transport=session.transport)
        graceful = False
        try:
            await asyncio.wait({pump, reading, ended}, return_when=asyncio.FIRST_COMPLETED)
            if session.closing is not None and not pump.done():
                # a client that stopped reading never drains: cut it after the grace period
                await asyncio.wait({pump}, timeout=self.limits.close_grace)
            graceful = pump.done() and not pump.cancelled() and pump.exception() is None
        except asyncio.CancelledError:
            pass
        finally:
            if idle is not None:
                idle.cancel()
            for t in (pump, reading, ended):
                t.cancel()
            await asyncio.gather(pump, reading, ended, return_exceptions=True)
            self.bus._clients.discard(session)
            self._sessions.discard(session)
            try:
                res = finish(graceful)
                if inspect.isawaitable(res):
                    await res
            except Exception:  # the peer is gone already
                pass
            log.info(
                "cti_disconnected",
                peer=session.peer,
                transport=session.transport,
                reason=session.closing or "client_closed",
            )
            self._tasks.discard(task)

    async def _read_loop(self, session: Session, receive: Receive) -> None:
        loop = asyncio.get_running_loop()
        while session.closing is None:
            try:
                message = await receive()
            except (ConnectionError, OSError):
                return
            if message is None:
                return
            if not session.spend(loop.time()):
                log.warning("cti_flood", peer=session.peer, rate=self.limits.rate, burst=self.limits.burst)
                session.send(
                    error_reply(
                        None,
                        "cti.flood",
                        f"more than {self.limits.burst} requests at once or {self.limits.rate:g}/s sustained",
                    )
                )
                session.close("flood")
                return
            if message.strip():
                await self._dispatch(session, message)
            await asyncio.sleep(0)  # one client's burst must not starve the others

    async def _read_line(self, reader: asyncio.StreamReader, client: Session) -> bytes | None:
        """One line, or None at EOF. An over-long line is answered and skipped."""
        while True:
            try:
                return await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                return exc.partial or None
            except asyncio.LimitOverrunError as exc:
                # drop everything up to and including the next newline, then go on
                await reader.readexactly(exc.consumed)
                while True:
                    try:
                        await reader.readuntil(b"\n")
                        break
                    except asyncio.LimitOverrunError as more:
                        await reader.readexactly(more.consumed)
                too_long = CtiError("cti.line_too_long", f"a line may hold at most {MAX_LINE_BYTES} bytes")
                client.send(error_reply(None, too_long.code, too_long.message))
                self._bad_line(client, too_long)

    # -------------------------------------------------------------- protocol
    async def _dispatch(self, client: Session, line: bytes) -> None:
        rid: Any = None
        try:
            request = parse_request(line)
            rid = request.id
            if request.cmd == "auth":
                self._auth(client, request.args)
                token = client.token
                assert token is not None
                # who you are: pages show the agent's own controls or the supervisor's buttons
                client.send(
                    ok_reply(
                        rid, protocol=PROTOCOL_VERSION, name=token.name, scopes=sorted(token.scopes),
                        agent=token.agent,
                    )
                )  # fmt: skip
                return
            if client.token is None:
                raise CtiError(
                    "cti.auth_required", 'authenticate first: {"id": 1, "cmd": "auth", "token": "..."}'
                )
            if not client.token.allows(request.cmd, request.args):
                need = COMMAND_SCOPES.get(request.cmd, "control")
                log.warning("cti_forbidden", peer=client.peer, token_name=client.token.name, cmd=request.cmd)
                raise CtiError(
                    "cti.forbidden",
                    f"token '{client.token.name}' may not run {request.cmd}: it needs scope {need}"
                    + (" for its own agent" if need == "agent" else ""),
                )
            if request.cmd == "subscribe":
                await self._subscribe(client, rid, request.args)
                return
            if request.cmd == "ping":
                client.send(ok_reply(rid, seq=self.bus.seq))
                return
            current_token.set(client.token)  # this session's task only
            result = await self.control(request.cmd, request.args)
            self.bus.flush()  # the events a command caused go out before its reply
            client.send(ok_reply(rid, **result))
        except CtiError as exc:
            rid = getattr(exc, "request_id", rid)
            client.send(error_reply(rid, exc.code, exc.message))
            if exc.code in ("cti.bad_json", "cti.line_too_long"):
                self._bad_line(client, exc)
            if (
                exc.code in ("cti.auth_failed", "cti.auth_throttled")
                and client.auth_failures >= MAX_AUTH_FAILURES
            ):
                client.close("auth_failed")
        except Exception as exc:  # a bug in one command must not take the socket down
            log.exception("cti_command_crashed", peer=client.peer)
            client.send(
                error_reply(
                    rid, "cti.internal", f"the server failed to run this command: {type(exc).__name__}"
                )
            )

    def _bad_line(self, client: Session, exc: CtiError) -> None:
        """Bad input is the client's problem, not a server fault: one warning line (no
        traceback) for each of the first few per connection, then silence."""
        client.bad_lines += 1
        if client.bad_lines <= LOGGED_BAD_LINES:
            log.warning(
                "cti_bad_line",
                peer=client.peer,
                code=exc.code,
                error=exc.message[:200],
                **({"further_bad_lines": "not logged"} if client.bad_lines == LOGGED_BAD_LINES else {}),
            )

    async def _subscribe(self, client: Session, rid: Any, args: dict[str, Any]) -> None:
        """Set the patterns; with ``since``, replay every retained event after it, then
        go live with no gap and no duplicate at the seam."""
        patterns = parse_patterns(args)
        since = args.get("since")
        if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
            raise CtiError("cti.bad_request", '"since" must be a seq number (an integer >= 0)')
        self.bus._clients.discard(client)
        client.subscription = Subscription(patterns)
        if since is None:
            self.bus._clients.add(client)
            client.send(ok_reply(rid, seq=self.bus.seq))
            return
        outbox = self.bus.outbox
        if outbox is None:
            raise CtiError("cti.no_history", 'this server keeps no event history; subscribe without "since"')
        self.bus.flush()
        if since > self.bus.seq:
            raise CtiError(
                "cti.bad_request", f"since {since} is ahead of the newest event, seq {self.bus.seq}"
            )
        oldest = outbox.oldest_seq()
        if since < self.bus.seq and oldest is not None and since < oldest - 1:
            raise CtiError(
                "cti.since_too_old",
                f"events after seq {since} are no longer retained; the oldest available is seq {oldest}. "
                f"Resubscribe with since >= {oldest - 1} and reconcile what is missing",
            )
        client.send(ok_reply(rid, seq=self.bus.seq, replay_from=since + 1))
        cursor = since
        while client.closing is None:
            self.bus.flush()
            rows = outbox.read_after(cursor, REPLAY_CHUNK)
            wanted = [line for _seq, name, line in rows if client.subscription.wants(name)]
            if wanted:
                client.send_lines(("\n".join(wanted) + "\n").encode(), len(wanted))
            if rows:
                cursor = rows[-1][0]
            if len(rows) < REPLAY_CHUNK:
                # everything published so far is durable and was read in this same
                # step (no await since the flush): going live now leaves no gap
                self.bus._clients.add(client)
                return
            while client.backlog() > client.limits.max_queued // 2 and client.closing is None:
                await asyncio.sleep(0.005)  # let the client drain before the next chunk

    def _auth(self, client: Session, args: dict[str, Any]) -> None:
        offered = require_str(args, "token")
        try:
            client.token = self.authenticate(client.address, offered)
        except CtiError as exc:
            if exc.code == "cti.auth_failed":
                client.auth_failures += 1
                log.warning("cti_auth_failed", peer=client.peer, failures=client.auth_failures)
            raise
        log.info(
            "cti_authenticated",
            peer=client.peer,
            transport=client.transport,
            token_name=client.token.name,
            scopes=sorted(client.token.scopes),
        )

    def authenticate(self, address: str, offered: str) -> Token:
        """The token whose secret is ``offered``; failures are throttled per address
        (shared by every transport and the HTTP API). Raises CtiError."""
        now = asyncio.get_running_loop().time()
        blocked_until = self._blocked.get(address, 0.0)
        if now < blocked_until:
            raise CtiError(
                "cti.auth_throttled",
                f"too many failed logins from {address}; try again in {blocked_until - now:.0f} s",
            )
        for token in self.tokens:
            if hmac.compare_digest(token.secret.encode(), offered.encode()):
                return token
        recent = [t for t in self._failures.get(address, []) if t > now - THROTTLE_WINDOW] + [now]
        self._failures[address] = recent
        if len(recent) >= THROTTLE_FAILURES:
            self._blocked[address] = now + THROTTLE_BLOCK
            self._failures.pop(address, None)
            log.warning("cti_auth_throttled", address=address, seconds=THROTTLE_BLOCK)
        raise CtiError("cti.auth_failed", "the token is not valid; check [cti] tokens in the server's config")


__all__ = [
    "Control",
    "CtiError",
    "CtiServer",
    "EventBus",
    "Outbox",
    "RecordingResolver",
    "Session",
    "SessionLimits",
    "Sink",
    "Token",
    "require_str",
    "wire_name",
]
