"""telephony: the pjsua2 endpoint and media. The only package that imports pjsua2.

Import :mod:`telephony.endpoint` lazily (``build_endpoint``) so tools that never
touch SIP (validate, tests of the cores) do not need the compiled pjsua2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import events
from .admission import AdmissionLimits
from .errors import LegGone, TelephonyError
from .media import (
    StereoResult,
    WavRepair,
    merge_stereo,
    repair_wav_header,
    sha256_file,
    wav_seconds,
    write_tone,
)
from .tts import Synthesizer

if TYPE_CHECKING:
    from .endpoint import Endpoint, EndpointConfig, TrunkSpec


def build_endpoint(config: EndpointConfig, on_event: Callable[[events.TelephonyEvent], None]) -> Endpoint:
    """The one wiring point for SIP: an endpoint reporting to ``on_event``."""
    from .endpoint import Endpoint

    return Endpoint(config, on_event)


def endpoint_config(**fields: object) -> EndpointConfig:
    from .endpoint import EndpointConfig

    return EndpointConfig(**fields)  # type: ignore[arg-type]


def trunk_spec(**fields: object) -> TrunkSpec:
    from .endpoint import TrunkSpec

    return TrunkSpec(**fields)  # type: ignore[arg-type]


__all__ = [
    "AdmissionLimits",
    "LegGone",
    "StereoResult",
    "Synthesizer",
    "TelephonyError",
    "WavRepair",
    "build_endpoint",
    "endpoint_config",
    "events",
    "merge_stereo",
    "repair_wav_header",
    "sha256_file",
    "trunk_spec",
    "wav_seconds",
    "write_tone",
]
