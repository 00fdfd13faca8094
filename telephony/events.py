"""What the endpoint reports to the loop. Internal: not published on the CTI socket."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingCall:
    leg_id: str
    caller: str  # user part of the From URI (the caller's number), "" if none
    from_uri: str
    to_uri: str
    sip_call_id: str  # the SIP Call-ID header


@dataclass(frozen=True, slots=True, kw_only=True)
class LegRinging:
    leg_id: str  # an outbound leg got 180/183


@dataclass(frozen=True, slots=True, kw_only=True)
class LegAnswered:
    leg_id: str  # the dialog is confirmed (200 OK + ACK)


@dataclass(frozen=True, slots=True, kw_only=True)
class LegMediaReady:
    leg_id: str  # audio is flowing; the leg can play, record and bridge
    srtp: bool = False  # the audio is SRTP (RTP/SAVP) on this leg


@dataclass(frozen=True, slots=True, kw_only=True)
class LegEnded:
    leg_id: str
    code: int  # last SIP status code (e.g. 200 after BYE, 486 busy, 408 timeout)
    reason: str  # its reason phrase
    by_peer: bool  # the far end ended it (BYE, or a final error on our INVITE)


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfReceived:
    leg_id: str
    digit: str  # one of 0-9 * # A-D
    method: str  # "rfc4733" or "sip_info"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackFinished:
    leg_id: str
    token: int  # the token given to Endpoint.play


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferEnded:
    leg_id: str
    code: int  # final status of the REFER'd call, as NOTIFY reported it


TelephonyEvent = (
    IncomingCall
    | LegRinging
    | LegAnswered
    | LegMediaReady
    | LegEnded
    | DtmfReceived
    | PlaybackFinished
    | TransferEnded
)
