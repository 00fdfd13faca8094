"""The call controller's errors: one base, with stable codes for CTI clients."""

from __future__ import annotations


class CallError(Exception):
    """Base of every error the call controller raises. ``code`` is stable for clients."""

    code = "call.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class CallUsageError(CallError):
    """A command (or input) that does not fit the call now; nothing was changed."""


class IllegalCallTransition(CallUsageError):
    """A (phase, trigger) pair the transition table does not allow."""

    code = "call.illegal_transition"
