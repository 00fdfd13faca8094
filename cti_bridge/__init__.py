"""cti_bridge: the CTI event stream and control socket (protocol version 1)."""

from collections.abc import Iterable

from .events import PROTOCOL_VERSION, envelope, event_data, iso_utc, wire_name
from .mqtt import MqttPublisher, MqttSettings
from .outbox import Outbox, OutboxError
from .protocol import CtiError, require_str
from .schema import event_schema, vocabulary_schemas
from .server import COMMAND_SCOPES, SCOPES, Control, CtiServer, EventBus, Sink, Token


def build_cti(bus: EventBus, tokens: Iterable[Token], control: Control, *, host: str, port: int) -> CtiServer:
    """The one wiring point: a CTI socket serving ``bus`` and running ``control``."""
    return CtiServer(bus, tokens, control, host=host, port=port)


__all__ = [
    "COMMAND_SCOPES",
    "PROTOCOL_VERSION",
    "SCOPES",
    "Control",
    "CtiError",
    "CtiServer",
    "EventBus",
    "MqttPublisher",
    "MqttSettings",
    "Outbox",
    "OutboxError",
    "Sink",
    "Token",
    "build_cti",
    "envelope",
    "event_data",
    "event_schema",
    "iso_utc",
    "require_str",
    "vocabulary_schemas",
    "wire_name",
]
