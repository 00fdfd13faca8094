"""What the CTI command handlers need of the server, as a type (no import of hotline.app)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import acd
import calls
import cti_bridge
from calls import inputs as inp

from . import outbound, reload
from .config import Config

#: a command handler: the arguments -> the reply data (or an awaitable of it)
Handler = Callable[[dict[str, Any]], dict[str, Any] | Awaitable[dict[str, Any]]]


class Target(Protocol):
    """What the commands need of the server (hotline.app.Server)."""

    @property
    def router(self) -> acd.Router: ...
    @property
    def controller(self) -> calls.CallController: ...
    @property
    def outbound(self) -> outbound.OutboundGuard: ...
    @property
    def watcher(self) -> reload.FlowWatcher: ...
    @property
    def config(self) -> Config: ...
    @property
    def bus(self) -> cti_bridge.EventBus: ...
    def _now(self) -> float: ...  # the loop's monotonic seconds (the controller's `now`)

    def command(self, event: inp.Input) -> None: ...
