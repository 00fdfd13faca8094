"""Errors of the telephony package (importable without pjsua2)."""


class TelephonyError(Exception):
    """Base of errors of the telephony package."""

    code = "telephony.error"


class LegGone(TelephonyError):
    """The leg no longer exists (hung up)."""

    code = "telephony.leg_gone"
