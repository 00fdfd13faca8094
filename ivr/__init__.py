"""ivr: the flow language and a pure interpreter that steps calls through it."""

from .errors import Diagnostic, FlowInvalid, IvrError, IvrUsageError, Location
from .flow import MAX_FAILURES, Flow, Prompt, compile_flow, load_flow
from .interpreter import (
    AgentConnected,
    CallInterpreter,
    DigitPressed,
    Enqueue,
    HangUp,
    IvrEscalated,
    IvrInput,
    Output,
    Phase,
    PlayPrompt,
    PromptFinished,
    StartRecording,
    StopPrompt,
    Transfer,
)


def build_interpreter(flow: Flow, call_id: str, caller: str) -> CallInterpreter:
    """The one wiring point: a fresh interpreter for one call on one flow version."""
    return CallInterpreter(flow, call_id, {"caller": caller})


__all__ = [
    "MAX_FAILURES",
    "AgentConnected",
    "CallInterpreter",
    "Diagnostic",
    "DigitPressed",
    "Enqueue",
    "Flow",
    "FlowInvalid",
    "HangUp",
    "IvrError",
    "IvrEscalated",
    "IvrInput",
    "IvrUsageError",
    "Location",
    "Output",
    "Phase",
    "PlayPrompt",
    "Prompt",
    "PromptFinished",
    "StartRecording",
    "StopPrompt",
    "Transfer",
    "build_interpreter",
    "compile_flow",
    "load_flow",
]
