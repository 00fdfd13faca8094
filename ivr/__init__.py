"""ivr: the flow language and a pure interpreter that steps calls through it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from .errors import Diagnostic, FlowInvalid, IvrError, IvrUsageError, Location, Severity
from .expr import ExprError
from .flow import (
    MAX_FAILURES,
    NODE_TYPES,
    VALIDATORS,
    Flow,
    Prompt,
    compile_flow,
    compile_flow_set,
    load_flow,
    load_flow_set,
)
from .interpreter import (
    AgentConnected,
    CallInterpreter,
    DigitPressed,
    Enqueue,
    HangUp,
    HttpLookup,
    IvrEscalated,
    IvrInput,
    IvrInterrupted,
    Listen,
    LookupFailed,
    LookupResult,
    Output,
    PauseRecording,
    Phase,
    PlayPrompt,
    PromptFinished,
    RequestCallback,
    ResumeRecording,
    SpeechRecognized,
    SpeechStarted,
    StartRecording,
    StopListening,
    StopPrompt,
    SurveyAnswered,
    Transfer,
    VariablesUpdated,
)
from .tools import json_schema, mermaid, spoken_phrases


def build_interpreter(
    flow: Flow,
    call_id: str,
    caller: str,
    *,
    flows: Mapping[str, Flow] | None = None,
    variables: Mapping[str, Any] | None = None,
    wall: dt.datetime | None = None,
) -> CallInterpreter:
    """The one wiring point: a fresh interpreter for one call on one flow version.

    ``flows`` resolves `subflow` nodes by name; ``variables`` seeds the call's
    variables (e.g. ``{"caller": {"number": ..., "tier": "gold"}, "emergency": False}``);
    ``wall`` is the caller-local wall-clock time now, for `schedule` nodes.
    """
    seeded: dict[str, Any] = {"caller": caller}
    seeded.update(variables or {})
    if isinstance(seeded.get("caller"), Mapping):
        seeded["caller"] = {"number": caller, **seeded["caller"]}
    return CallInterpreter(flow, call_id, seeded, flows=flows, wall=wall)


__all__ = [
    "MAX_FAILURES",
    "NODE_TYPES",
    "VALIDATORS",
    "AgentConnected",
    "CallInterpreter",
    "Diagnostic",
    "DigitPressed",
    "Enqueue",
    "ExprError",
    "Flow",
    "FlowInvalid",
    "HangUp",
    "HttpLookup",
    "IvrError",
    "IvrEscalated",
    "IvrInput",
    "IvrInterrupted",
    "IvrUsageError",
    "Listen",
    "Location",
    "LookupFailed",
    "LookupResult",
    "Output",
    "PauseRecording",
    "Phase",
    "PlayPrompt",
    "Prompt",
    "PromptFinished",
    "RequestCallback",
    "ResumeRecording",
    "Severity",
    "SpeechRecognized",
    "SpeechStarted",
    "StartRecording",
    "StopListening",
    "StopPrompt",
    "SurveyAnswered",
    "Transfer",
    "VariablesUpdated",
    "build_interpreter",
    "compile_flow",
    "compile_flow_set",
    "json_schema",
    "load_flow",
    "load_flow_set",
    "mermaid",
    "spoken_phrases",
]
