"""Whole-call recording ([recordings] whole_call): what the caller says from answer to
hang-up, IVR and queue included, as one mono file beside the bridged stereo recordings.

Helpers of the controller: each takes the call and returns the effects to run. The
recording starts once the caller's leg is answered and its audio flows, pauses with every
other recorder of the call (secure input, a CTI pause), and ends with the call's life.
"""

from __future__ import annotations

from pathlib import Path

from . import effects as fx
from .call import Call


def start_whole_call(call: Call, recordings: Path) -> list[fx.Effect]:
    """Start the caller's whole-call recorder, once, when the leg is answered with media."""
    if call.whole_call_started or not (call.confirmed and call.media_ready and call.leg):
        return []
    call.whole_call_started = True
    call.whole_call = recordings / f"{call.call_id}-whole.wav"
    return [
        fx.Record(
            call_id=call.call_id,
            sources=((call.leg, call.whole_call),),
            kind="whole_call",
            paused=call.secure,
        )
    ]


def finish_whole_call(call: Call) -> list[fx.Effect]:
    """Close it (the call's life ended); its length and checksum follow as recording.ready."""
    if call.whole_call is None:
        return []
    path, call.whole_call = call.whole_call, None
    return [
        fx.StopRecording(leg=call.leg, paths=(path,)),
        fx.MeasureVoicemail(call_id=call.call_id, path=path, kind="whole_call"),
    ]
