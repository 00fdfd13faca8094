"""cti_bridge: the CTI event stream and control socket (protocol version 1)."""

import functools
import ssl
from collections.abc import Iterable

from .audit import AuditError, AuditLog, verify_audit
from .events import PROTOCOL_VERSION, envelope, event_data, iso_utc, wire_name
from .httpd import OpsEndpoints, start_http
from .mqtt import MqttPublisher, MqttSettings
from .outbox import Outbox, OutboxError, json_safe
from .protocol import CtiError, JsonLimitError, load_json, require_str
from .schema import event_schema, vocabulary_schemas
from .server import (
    COMMAND_SCOPES,
    SCOPES,
    Control,
    CtiServer,
    EventBus,
    HttpRoutes,
    RecordingResolver,
    SessionLimits,
    Sink,
    Token,
    current_token,
)


def build_cti(
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
    ops: OpsEndpoints | None = None,
    http_routes: Iterable[HttpRoutes] = (),
) -> CtiServer:
    """The one wiring point: the CTI protocol serving ``bus`` and running ``control``.

    - ``port``: plain NDJSON over TCP (None: no plain listener).
    - ``tls`` + ``tls_port``: the same protocol over TLS.
    - ``http_port`` (on ``http_host``, default ``host``; HTTPS with ``http_tls``): WebSocket at
      ``/cti`` and ``GET /recordings/<call_id>``, files found by ``recordings``, downloads
      written to ``audit``.
    - ``limits``: idle-auth timeout, flood and slow-consumer bounds.
    - ``ops``: serve ``/metrics``, ``/health`` and ``/ready`` on the HTTP port too.
    - ``http_routes``: functions that add routes to the HTTP port's aiohttp app (pages).
    """
    return CtiServer(
        bus,
        tokens,
        control,
        host=host,
        port=port,
        tls=tls,
        tls_port=tls_port,
        http_port=http_port,
        http_host=http_host,
        http_tls=http_tls,
        recordings=recordings,
        audit=audit,
        limits=limits,
        http_starter=functools.partial(start_http, ops=ops),
        http_routes=http_routes,
    )


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context from PEM files (TLS 1.2 or newer)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


__all__ = [
    "COMMAND_SCOPES",
    "PROTOCOL_VERSION",
    "SCOPES",
    "AuditError",
    "AuditLog",
    "Control",
    "CtiError",
    "CtiServer",
    "EventBus",
    "HttpRoutes",
    "JsonLimitError",
    "MqttPublisher",
    "MqttSettings",
    "OpsEndpoints",
    "Outbox",
    "OutboxError",
    "RecordingResolver",
    "SessionLimits",
    "Sink",
    "Token",
    "build_cti",
    "current_token",
    "envelope",
    "event_data",
    "event_schema",
    "iso_utc",
    "json_safe",
    "load_json",
    "require_str",
    "tls_context",
    "verify_audit",
    "vocabulary_schemas",
    "wire_name",
]
