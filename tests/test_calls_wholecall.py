"""[recordings] whole_call on the fake clock: the caller is recorded from answer to hang-up,
IVR and queue included, beside (not instead of) the bridged stereo recording; secure input
pauses it; closing the bridged recording leaves it running; it ends with the call."""

from __future__ import annotations

from pathlib import Path

from calls import effects as fx
from calls import inputs as inp

from .callrig import CallRig

WHOLE = Path("/rec/c1-whole.wav")


def whole_records(rig: CallRig) -> list[fx.Record]:
    return [r for r in rig.of(fx.Record) if r.kind == "whole_call"]


def test_off_by_default() -> None:
    rig = CallRig()
    leg = rig.arrive(settle=0.5)
    rig.hang_up(leg)
    rig.advance(1)
    assert not whole_records(rig)
    assert not [e for e in rig.published("recording.ready") if e.kind == "whole_call"]


def test_recorded_from_answer_to_hang_up_beside_the_bridged_recording() -> None:
    rig = CallRig(config={"whole_call": True})
    rig.ready("a1")
    leg = rig.arrive(settle=0.5)
    assert whole_records(rig) == [
        fx.Record(call_id="c1", sources=((leg, WHOLE),), kind="whole_call", paused=False)
    ]
    first = rig.effects.index(whole_records(rig)[0])
    assert not [e for e in rig.effects[:first] if isinstance(e, fx.PlayFile)]  # before any prompt
    rig.press(leg, "1")
    (aleg,) = rig.agent_legs("a1")
    rig.answer(aleg)
    rig.advance(3)
    bridged = [r for r in rig.of(fx.Record) if r.kind == "call"]
    assert len(bridged) == 1 and len(whole_records(rig)) == 1  # started once, not again at the bridge
    rig.hang_up(aleg)  # the agent leaves: the survey keeps the caller, the bridged parts close
    rig.advance(0.5)
    stops = rig.of(fx.StopRecording)
    assert stops and all(WHOLE not in s.paths and s.paths for s in stops)
    assert rig.call("c1").whole_call == WHOLE  # still recording the survey
    rig.hang_up(leg)
    rig.advance(1)
    assert fx.StopRecording(leg=leg, paths=(WHOLE,)) in rig.effects
    assert fx.MeasureVoicemail(call_id="c1", path=WHOLE, kind="whole_call") in rig.effects
    ready = {e.kind: e for e in rig.published("recording.ready")}
    assert set(ready) == {"call", "whole_call"} and ready["whole_call"].path == str(WHOLE)


def test_secure_input_pauses_it_without_a_bridged_recording() -> None:
    rig = CallRig(config={"whole_call": True})
    leg = rig.arrive(settle=0.5)
    rig.press(leg, "4")  # the card collect: secure
    assert fx.PauseRecording(legs=(leg,), paused=True) in rig.effects
    rig.press(leg, "1234#")
    rig.advance(0.5)
    assert fx.PauseRecording(legs=(leg,), paused=False) in rig.effects


def test_a_recorder_that_cannot_start_is_forgotten() -> None:
    rig = CallRig(config={"whole_call": True})
    leg = rig.arrive(settle=0.5)
    (record,) = whole_records(rig)
    rig.feed(inp.EffectFailed(effect=record, error="OSError: disk full"))
    assert rig.call("c1").whole_call is None
    rig.hang_up(leg)
    rig.advance(1)
    assert not [s for s in rig.of(fx.StopRecording) if WHOLE in s.paths]
    assert not [m for m in rig.of(fx.MeasureVoicemail) if m.kind == "whole_call"]
