"""The capacity benchmark's proof of work (bench/workload.py, bench/sip_capacity.py): a server
that did less than the calls it answered asked for fails the run, a gap in a recording is a
media fault, and on a short real run hotline and bare pjsua2 both do exactly the script's work
(players, recorders, finished WAVs, one file per call with a unique name)."""

from __future__ import annotations

import argparse
import wave
from pathlib import Path

import numpy as np
import pytest

from bench import sip_capacity as cap
from bench import workload as wl

IVR = wl.Script("ivr", 12.0)
FULL = wl.Script("full", 12.0)


def test_a_server_that_did_less_work_fails_the_run() -> None:
    assert IVR.players == 6  # greeting, menu, beep, the hold music three times in 12 s
    enough = wl.Work(answered=10, players=60, recorders=10, wavs_finished=10)
    assert wl.work_problems("bare", enough, succeeded=10, files=10, script=IVR) == []
    short = {
        "players": wl.Work(10, 59, 10, 10),
        "recorders": wl.Work(10, 60, 9, 10),
        "finished WAVs": wl.Work(10, 60, 10, 0),  # the broken baseline: recorders never finished
    }
    for what, work in short.items():
        (problem,) = wl.work_problems("bare", work, succeeded=10, files=10, script=IVR)
        assert what in problem, problem
    (problem,) = wl.work_problems("bare", enough, succeeded=10, files=9, script=IVR)  # a file overwritten
    assert "9 recording files" in problem
    problems = wl.work_problems("hotline", wl.Work(8, 60, 10, 10), succeeded=10, files=10, script=IVR)
    assert any("answered 8 calls but SIPp completed 10" in p for p in problems)
    # full path: two recorders per call; bare keeps two mono files, hotline one stereo file
    assert wl.work_problems("hotline", wl.Work(5, 15, 10, 10), 5, files=5, script=FULL) == []
    assert wl.work_problems("bare", wl.Work(5, 15, 10, 10), 5, files=5, script=FULL) != []


def write(path: Path, seconds: float, holes: list[tuple[float, float]], channels: int = 1) -> Path:
    t = np.arange(int(seconds * 8000)) / 8000
    x = (0.25 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    x[:800] = 0  # 0.1 s before the caller's audio arrives
    for start, length in holes:
        x[int(start * 8000) : int((start + length) * 8000)] = 0
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.repeat(x, channels).tobytes())
    return path


def test_a_gap_in_a_recording_is_a_media_fault(tmp_path: Path) -> None:
    key = wl.DIGIT_AT + 0.1  # seconds into the file: the key press, 0.1 s after the first sound
    clean = write(tmp_path / "clean.wav", 12.0, [(key, 0.16), (11.7, 0.3)])  # key press, hang-up
    report = wl.check_wavs([clean], IVR)
    assert report.faults == [] and report.too_short == [] and report.files == 1
    broken = write(tmp_path / "broken.wav", 12.0, [(6.0, 0.1)])
    report = wl.check_wavs([broken], IVR)
    assert len(report.faults) == 1 and "gap of 100 ms at 6.00 s" in report.faults[0]
    short_gap = write(tmp_path / "ok.wav", 12.0, [(6.0, 0.05)])
    assert wl.check_wavs([short_gap], IVR).faults == []  # 50 ms: within the 60 ms allowed
    stereo = write(tmp_path / "stereo.wav", 12.0, [(8.0, 0.2)], channels=2)
    assert len(wl.check_wavs([stereo], FULL).faults) == 2  # each channel is checked
    assert wl.check_wavs([write(tmp_path / "cut.wav", 5.0, [])], IVR).too_short  # cut short


@pytest.mark.sip
@pytest.mark.parametrize("mode", ["ivr", "full"])
def test_both_servers_do_the_scripts_work_on_a_short_run(tmp_path: Path, mode: str) -> None:
    args = argparse.Namespace(
        hold=6.0, spread=1.0, cps_hold=5.0, cps_seconds=10.0, keep=tmp_path, shared_machine=True
    )
    script = wl.Script(mode, args.hold)
    for side in (cap.Hotline, cap.Bare):
        step = cap.run_step(side, mode, 3, args, tmp_path)
        assert step.good, step.line()
        calls = step.calls
        assert step.ok == calls == 6
        assert step.work == wl.Work(
            answered=calls,
            players=step.work.players,
            recorders=script.recorders * calls,
            wavs_finished=script.recorders * calls,
        ), step.line()
        assert script.players * calls <= step.work.players <= (script.players + 1) * calls, step.line()
        files = sorted((tmp_path / f"{side.name}-{mode}-3" / "server" / "recordings").glob("*.wav"))
        assert (
            len({f.name for f in files})
            == step.files
            == (calls if side is cap.Hotline else script.recorders * calls)
        )
        assert step.wav.seconds >= calls * script.min_recorded
