"""Errors of the ivr package: flow diagnostics for designers, usage errors for us."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    loc: Location
    code: str  # stable, e.g. "flow.unknown_node"
    message: str  # what is wrong, for a flow designer
    hint: str  # how to fix it
    severity: Severity = "error"  # a warning never stops a flow from loading

    def __str__(self) -> str:
        tag = "warning: " if self.severity == "warning" else ""
        return f"{self.loc}: {self.code}: {tag}{self.message} (hint: {self.hint})"


class IvrError(Exception):
    """Base of every error the ivr package raises."""

    code = "ivr.error"


class FlowInvalid(IvrError):
    """The outside world (a flow file) is wrong. Carries every diagnostic found."""

    code = "flow.invalid"

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


class IvrUsageError(IvrError):
    """The interpreter was driven wrongly (an event it cannot take now)."""

    code = "ivr.usage"
