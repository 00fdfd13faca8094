"""The HTTP port (aiohttp): the CTI protocol over WebSocket at ``/cti``, recording downloads
at ``GET /recordings/<call_id>`` (each written to the audit log), and, when the server gives
operations endpoints, ``GET /metrics`` (Prometheus), ``GET /health`` and ``GET /ready``."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from aiohttp import WSMsgType, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_request import BaseRequest

from .protocol import MAX_LINE_BYTES, CtiError, error_reply

if TYPE_CHECKING:
    from .server import CtiServer, Token

log = structlog.get_logger("cti")

WS_MAX_MESSAGE = 4 * MAX_LINE_BYTES  # bigger frames end the WebSocket (close code 1009)
CALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # anything else cannot name a recording
READ_SCOPES = frozenset({"read", "agent", "supervise", "control", "admin"})  # every scope includes read


class OpsEndpoints(Protocol):
    """What /metrics, /health and /ready serve (hotline.ops.Operations)."""

    metrics_public: bool  # /metrics without a token
    content_type: str  # of the metrics exposition

    def render_metrics(self) -> bytes: ...

    async def health(self) -> tuple[bool, dict[str, Any]]: ...

    async def ready(self) -> tuple[bool, dict[str, Any]]: ...


async def start_http(
    server: CtiServer,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    *,
    ops: OpsEndpoints | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve the app; returns the runner (to clean up) and the bound port."""
    front = HttpFront(server, ops)
    app = web.Application()
    app.router.add_get("/cti", front.websocket)
    app.router.add_get("/recordings/{call_id}", front.recording)
    if ops is not None:
        app.router.add_get("/metrics", front.metrics)
        app.router.add_get("/health", front.health)
        app.router.add_get("/ready", front.ready)
    for add_routes in server.http_routes:  # e.g. hotline's pages (hotline/web/)
        add_routes(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    bound = int(runner.addresses[0][1])
    return runner, bound


def json_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    body = json.dumps({"error": {"code": code, "message": message}})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


class AuditedFile(web.FileResponse):
    """A FileResponse (ranges, 416, sendfile) that reports what it sent once it is sent."""

    def __init__(
        self, path: Path, sent: Callable[[int, int | None, str | None], None], **kwargs: Any
    ) -> None:
        super().__init__(path, **kwargs)
        self._sent = sent

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        try:
            writer = await super().prepare(request)
        except (ConnectionError, asyncio.CancelledError) as exc:
            self._sent(self.status, self.content_length, type(exc).__name__)
            raise
        self._sent(self.status, self.content_length, None)
        return writer


class HttpFront:
    def __init__(self, server: CtiServer, ops: OpsEndpoints | None = None) -> None:
        self.server = server
        self.ops = ops

    # ------------------------------------------------------------ operations
    async def metrics(self, request: web.Request) -> web.StreamResponse:
        assert self.ops is not None
        if not self.ops.metrics_public:
            refused = self._bearer(request, "metrics")
            if refused is not None:
                return refused
        body = self.ops.render_metrics()
        return web.Response(body=body, headers={"Content-Type": self.ops.content_type})

    async def health(self, request: web.Request) -> web.StreamResponse:
        assert self.ops is not None
        return self._checks(*await self.ops.health())

    async def ready(self, request: web.Request) -> web.StreamResponse:
        assert self.ops is not None
        return self._checks(*await self.ops.ready())

    @staticmethod
    def _checks(ok: bool, checks: dict[str, Any]) -> web.Response:
        failing = sorted(name for name, c in checks.items() if not c["ok"])
        body = {"status": "ok" if ok else "failing", "failing": failing, "checks": checks}
        return web.json_response(body, status=200 if ok else 503, headers={"Cache-Control": "no-store"})

    def _bearer(self, request: web.Request, what: str) -> web.Response | None:
        """None when the request carries a valid token with read scope; else the refusal."""
        address = request.remote or "unknown"
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not offered.strip():
            return json_error(
                401,
                "cti.auth_required",
                f"{what} needs a CTI token: Authorization: Bearer <token> (or [http] metrics_public)",
                **{"WWW-Authenticate": 'Bearer realm="hotline"'},
            )
        try:
            token = self.server.authenticate(address, offered.strip())
        except CtiError as exc:
            throttled = exc.code == "cti.auth_throttled"
            log.warning("http_auth_failed", address=address, code=exc.code, path=request.path)
            return json_error(
                429 if throttled else 401,
                exc.code,
                exc.message,
                **{"WWW-Authenticate": 'Bearer realm="hotline", error="invalid_token"'},
            )
        if not token.scopes & READ_SCOPES:
            return json_error(403, "cti.forbidden", f"token '{token.name}' needs scope read for {what}")
        return None

    # ------------------------------------------------------------- WebSocket
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=WS_MAX_MESSAGE, heartbeat=30.0)
        await ws.prepare(request)
        transport = request.transport
        peername = transport.get_extra_info("peername") if transport is not None else None
        peer = "{}:{}".format(*peername[:2]) if peername else f"{request.remote}:0"
        session = self.server.new_session(peer, "ws")

        async def send(chunks: list[bytes]) -> None:
            for chunk in chunks:  # one text message per line
                for line in chunk.split(b"\n")[:-1]:
                    await ws.send_frame(line, WSMsgType.TEXT)

        async def receive() -> bytes | None:
            while True:
                msg = await ws.receive()
                if msg.type == WSMsgType.TEXT:
                    data: bytes = msg.data.encode()
                elif msg.type == WSMsgType.BINARY:
                    data = msg.data
                else:  # close, closing, closed, error
                    return None
                if len(data) <= MAX_LINE_BYTES:
                    return data
                session.send(
                    error_reply(
                        None, "cti.line_too_long", f"a message may hold at most {MAX_LINE_BYTES} bytes"
                    )
                )

        async def finish(graceful: bool) -> None:
            if graceful:
                try:
                    await asyncio.wait_for(ws.close(), self.server.limits.close_grace)
                    return
                except (TimeoutError, ConnectionError):
                    pass
            if transport is not None:
                transport.abort()

        await self.server.run_session(session, send, receive, finish)
        return ws

    # ------------------------------------------------------------ recordings
    async def recording(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        address = request.remote or "unknown"
        wanted = request.headers.get("Range")
        token: Token | None = None

        def audit(result: str, status: int, **more: Any) -> None:
            if self.server.audit is None:
                return
            try:
                self.server.audit.audit(
                    "recording.read",
                    who=token.name if token is not None else None,
                    what=call_id,
                    result=result,
                    status=status,
                    address=address,
                    range=wanted,
                    **more,
                )
            except Exception as exc:  # the download is still refused or served; the failure is loud
                log.error("audit_write_failed", error=str(exc), call_id=call_id)

        header = request.headers.get("Authorization", "")
        scheme, _, offered = header.partition(" ")
        if scheme.lower() != "bearer" or not offered.strip():
            audit("unauthorized", 401)
            return json_error(
                401,
                "cti.auth_required",
                "send the CTI token as Authorization: Bearer <token>",
                **{"WWW-Authenticate": 'Bearer realm="hotline"'},
            )
        try:
            token = self.server.authenticate(address, offered.strip())
        except CtiError as exc:
            throttled = exc.code == "cti.auth_throttled"
            audit("throttled" if throttled else "unauthorized", 429 if throttled else 401)
            log.warning("http_auth_failed", address=address, code=exc.code)
            return json_error(
                429 if throttled else 401,
                exc.code,
                exc.message,
                **{"WWW-Authenticate": 'Bearer realm="hotline", error="invalid_token"'},
            )
        if not token.scopes & READ_SCOPES:
            audit("forbidden", 403)
            log.warning("http_forbidden", address=address, token_name=token.name, call_id=call_id)
            return json_error(
                403, "cti.forbidden", f"token '{token.name}' needs scope read to get recordings"
            )
        path = await self._resolve(call_id)
        if path is None:
            audit("not_found", 404)
            return json_error(404, "cti.not_found", f"no recording for call '{call_id}'")

        def sent(status: int, length: int | None, error: str | None) -> None:
            if error is not None:
                audit("aborted", status, bytes=length, error=error)
                return
            audit("ok" if status < 400 else "refused", status, bytes=length)
            log.info(
                "recording_served", call_id=call_id, token_name=token.name if token else None,
                status=status, bytes=length,
            )  # fmt: skip

        return AuditedFile(path, sent, headers={"Cache-Control": "no-store"})

    async def _resolve(self, call_id: str) -> Path | None:
        resolver = self.server.recordings
        if resolver is None or not CALL_ID.match(call_id):
            return None
        found: Any = resolver(call_id)
        if inspect.isawaitable(found):
            found = await found
        if found is None:
            return None
        path = Path(found)
        return path if path.is_file() else None
