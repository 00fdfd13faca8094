"""calls: the life of one call, joining the IVR interpreter and the ACD router (a pure core).

Build it with :func:`build_controller`; drive it with ``handle(input, now, wall)``,
``next_deadline()`` and ``on_timer(now, wall)``; run the effects it returns, in order.
"""

from __future__ import annotations

from collections.abc import Mapping

import acd
import ivr

from . import effects, events, inputs
from .call import AgentLeg, Call
from .controller import RING_CAUSES, CallController, ControllerConfig, iso_utc, mask_number
from .errors import CallError, CallUsageError, IllegalCallTransition
from .phases import IN_FLOW, LIVE, TALKING, TRANSITIONS, CallPhase, CallTrigger
from .servicecode import ServiceCodes, speakable


def build_controller(
    config: ControllerConfig,
    router: acd.Router,
    stats: acd.Statistics,
    flows: Mapping[str, ivr.Flow],
    main: str,
    *,
    codes: ServiceCodes | None = None,
    emergency: bool = False,
    now: float = 0.0,
    wall: float = 0.0,
) -> CallController:
    """The one wiring point: a controller over ``router`` and ``stats`` answering new calls
    with ``flows[main]``. ``now``/``wall``: the monotonic and epoch seconds at start."""
    return CallController(
        config, router, stats, flows, main, codes=codes, emergency=emergency, now=now, wall=wall
    )


__all__ = [
    "IN_FLOW",
    "LIVE",
    "RING_CAUSES",
    "TALKING",
    "TRANSITIONS",
    "AgentLeg",
    "Call",
    "CallController",
    "CallError",
    "CallPhase",
    "CallTrigger",
    "CallUsageError",
    "ControllerConfig",
    "IllegalCallTransition",
    "ServiceCodes",
    "build_controller",
    "effects",
    "events",
    "inputs",
    "iso_utc",
    "mask_number",
    "speakable",
]
