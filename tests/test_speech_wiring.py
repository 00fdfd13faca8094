"""hotline.speech without SIP: a WAV written as a recorder would, a fake recognizer.

Covers the ear's pipeline (tail -> endpointer -> recognizer -> report), the missing model at
start-up, overload falling back to DTMF with alert.raised, and a recognizer that never answers.
The real model and real SIP are in test_asr.py and test_e2e_speech.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

import ivr
from hotline.config import SpeechConfig
from hotline.speech import CallEar, SpeechService
from telephony import asr


class FakeRecognizer:
    def __init__(self, result: asr.AsrResult, finish_delay: float = 0.0) -> None:
        self.result, self.finish_delay = result, finish_delay
        self.audio_seconds = self.busy_seconds = 0.0
        self.fed = 0

    def accept(self, pcm8k: bytes) -> None:
        self.fed += len(pcm8k)
        self.audio_seconds += len(pcm8k) / 16000

    def finish(self) -> asr.AsrResult:
        time.sleep(self.finish_delay)
        return self.result


class FakeRegistry(asr.ModelRegistry):
    def __init__(self, result: asr.AsrResult, finish_delay: float = 0.0) -> None:
        super().__init__(loader=lambda path: object())
        self.made: list[tuple[str, asr.Grammar | None, FakeRecognizer]] = []
        self.result, self.finish_delay = result, finish_delay

    def model(self, language: str) -> Any:
        class Vocabulary:
            def vosk_model_find_word(self, word: str) -> int:
                return -1 if word == "xyzzy" else 1

        return Vocabulary()

    def recognizer(self, language: str, grammar: asr.Grammar | None, *, max_alternatives: int = 10) -> Any:
        rec = FakeRecognizer(self.result, self.finish_delay)
        self.made.append((language, grammar, rec))
        return rec


def recorder(path: Path, audio: np.ndarray, speed: float = 4.0) -> threading.Thread:
    """Write ``audio`` to ``path`` as pjmedia's recorder does: header first, then 20 ms
    frames, here ``speed`` times faster than real time."""

    w = wave.open(str(path), "wb")  # noqa: SIM115  (closed by the writer thread; created now, as createRecorder does)
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(8000)

    def run() -> None:
        with w:
            w.writeframesraw(b"")
            w._file.flush()  # type: ignore[attr-defined]
            for i in range(0, len(audio), 160):
                w.writeframesraw(audio[i : i + 160].tobytes())
                w._file.flush()  # type: ignore[attr-defined]
                time.sleep(0.02 / speed)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def utterance() -> np.ndarray:
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 300 * np.arange(4000) / 8000)).astype("<i2")
    silence = np.zeros(4000, dtype="<i2")
    return np.concatenate([silence, tone, silence, silence])


def service(tmp_path: Path, registry: asr.ModelRegistry, **cfg: Any) -> tuple[SpeechService, list, list]:
    published: list[object] = []
    changes: list[int] = []
    config = SpeechConfig(audio_dir=str(tmp_path / "ears"), poll_interval=0.01, **cfg)
    svc = SpeechService(config, published.append, lambda: changes.append(1), registry=registry)
    svc.audio_dir.mkdir(parents=True)
    svc.statuses["ko"] = asr.ModelStatus(language="ko", path="x", state="loaded")
    return svc, published, changes


def ear_for(svc: SpeechService, call_id: str, audio: np.ndarray, reports: list) -> CallEar:
    import structlog

    return CallEar(
        svc,
        call_id,
        start_ear=lambda path: recorder(path, audio) and None,
        stop_ear=lambda: None,
        report=reports.append,
        log=structlog.get_logger("test"),
    )


async def hear(ear: CallEar, reports: list, want: int = 2, timeout: float = 5.0) -> None:
    """Listen with LISTEN until ``want`` reports came (or ``timeout``), then close the ear."""
    ear.listen(LISTEN)
    deadline = time.monotonic() + timeout
    while len(reports) < want and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await ear.close()


LISTEN = ivr.Listen(token=7, language="ko", grammar={"1": ("이",), "2": ("아니요",)}, barge_in=True)


async def test_the_ear_reports_speech_start_then_one_result(tmp_path: Path) -> None:
    registry = FakeRegistry(asr.AsrResult(status="match", option="1", text="이", confidence=0.9))
    svc, _, _ = service(tmp_path, registry)
    reports: list = []
    ear = ear_for(svc, "c1", utterance(), reports)
    await hear(ear, reports)
    assert reports[0] == ivr.SpeechStarted(token=7)
    assert reports[1] == ivr.SpeechRecognized(token=7, status="match", option="1", text="이", confidence=0.9)
    assert len(reports) == 2
    (language, grammar, rec) = registry.made[0]
    assert language == "ko" and grammar is not None and grammar.parse("아니요") == "2"
    # the recognizer got the utterance with its pre-roll, about 0.5 s of tone + silence
    assert 0.5 * 16000 <= rec.fed <= 1.4 * 16000, rec.fed
    assert svc.governor.live == 0  # released after the result
    assert not ear.path.exists()  # the tmpfs file is removed with the ear


async def test_spoken_digits_use_the_digit_grammar(tmp_path: Path) -> None:
    registry = FakeRegistry(asr.AsrResult(status="no_input"))
    svc, _, _ = service(tmp_path, registry)
    ear = ear_for(svc, "c2", np.zeros(800, dtype="<i2"), [])
    ear.listen(ivr.Listen(token=1, language="ko", grammar=None, digits=True))
    await ear.close()
    grammar = registry.made[0][1]
    assert grammar is not None and grammar.sequence and grammar.parse("일 이 공") == "120"


async def test_overload_refuses_new_listens_and_raises_then_clears_the_alert(tmp_path: Path) -> None:
    registry = FakeRegistry(asr.AsrResult(status="no_input"))
    svc, published, changes = service(tmp_path, registry, max_recognizers=1, clear_hold=0.0)
    first: list = []
    second: list = []
    a = ear_for(svc, "a", np.zeros(800, dtype="<i2"), first)
    b = ear_for(svc, "b", np.zeros(800, dtype="<i2"), second)
    a.listen(LISTEN)  # admitted; now at the limit
    assert [type(x).__name__ for x in published] == ["AlertRaised"] and changes
    assert svc.languages() == []  # new calls get DTMF-only prompts
    b.listen(ivr.Listen(token=9, language="ko", grammar={"1": ("이",)}))
    assert second == [ivr.SpeechRecognized(token=9, status="unavailable", text="")]
    await a.close()  # released: load falls under the clear level
    await asyncio.sleep(0.05)
    assert [x.wire for x in published] == ["alert.raised", "alert.cleared"]  # type: ignore[attr-defined]
    assert svc.languages() == ["ko"]
    await b.close()


async def test_a_recognizer_that_never_answers_still_ends_the_turn(tmp_path: Path) -> None:
    registry = FakeRegistry(asr.AsrResult(status="match", option="1", text="이"), finish_delay=3.0)
    svc, _, _ = service(tmp_path, registry, result_timeout=0.3)
    reports: list = []
    ear = ear_for(svc, "c3", utterance(), reports)
    await hear(ear, reports)
    assert isinstance(reports[1], ivr.SpeechRecognized) and reports[1].status == "timeout"
    svc.stop()


async def test_a_missing_model_is_a_warning_and_an_alert_not_a_failure(tmp_path: Path) -> None:
    published: list[object] = []
    config = SpeechConfig(models={"ko": str(tmp_path / "nothing-here")}, audio_dir=str(tmp_path / "ears"))
    svc = SpeechService(config, published.append, lambda: None)
    svc.start()
    assert svc.loading is not None
    await svc.loading
    assert svc.statuses["ko"].state == "missing" and svc.languages() == []
    (alert,) = published
    assert isinstance(alert, asr.AlertRaised) and alert.code == "asr.model_missing"
    assert "hotline models install ko" in alert.message
    svc.stop()


async def test_phrases_the_model_does_not_know_are_left_out_and_reported(tmp_path: Path) -> None:
    from hotline.speech import vocabulary_warnings

    registry = FakeRegistry(asr.AsrResult(status="no_input"))
    svc, _, _ = service(tmp_path, registry)
    ear = ear_for(svc, "c4", np.zeros(800, dtype="<i2"), [])
    ear.listen(ivr.Listen(token=1, language="ko", grammar={"1": ("이", "이 xyzzy"), "2": ("xyzzy",)}))
    await ear.close()
    grammar = registry.made[0][1]
    assert grammar is not None and dict(grammar.options) == {"1": ["이"]}
    # all phrases unknown: no recognizer, the turn is DTMF only
    reports: list = []
    ear = ear_for(svc, "c5", np.zeros(800, dtype="<i2"), reports)
    ear.listen(ivr.Listen(token=2, language="ko", grammar={"2": ("xyzzy",)}))
    await ear.close()
    assert reports == [ivr.SpeechRecognized(token=2, status="unavailable", text="")]
    flow, _ = ivr.compile_flow(
        """
flow: f
language: ko
start: m
nodes:
  m:
    type: menu
    prompt: {text: hi}
    options:
      "1": {next: m, phrases: [이, xyzzy]}
    escalate_to: m
""",
        "flows/f.yaml",
    )
    assert flow is not None
    (warning,) = vocabulary_warnings([flow], svc.knows)
    assert (warning.loc.file, warning.loc.line, warning.severity) == ("flows/f.yaml", 10, "warning")
    assert "xyzzy" in warning.message and "hotline models list" in warning.hint
    assert vocabulary_warnings([flow], lambda lang, word: None) == []  # no model: not checked


async def test_a_long_ivr_starts_a_fresh_ear_file(tmp_path: Path, monkeypatch: Any) -> None:
    import structlog

    from hotline import speech

    monkeypatch.setattr(speech, "ROTATE_BYTES", 4000)  # a quarter second instead of a minute
    registry = FakeRegistry(asr.AsrResult(status="no_input"))
    svc, _, _ = service(tmp_path, registry)
    starts: list[Path] = []
    stops: list[int] = []

    def start(path: Path) -> None:
        starts.append(path)
        recorder(path, np.zeros(8000, dtype="<i2"), speed=8.0)

    ear = CallEar(
        svc,
        "long",
        start_ear=start,
        stop_ear=lambda: stops.append(1),
        report=lambda event: None,
        log=structlog.get_logger("test"),
    )
    ear.listen(LISTEN)
    deadline = time.monotonic() + 5
    while (ear.tail is None or ear.tail.bytes_read <= 4000) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    ear.listen(ivr.Listen(token=8, language="ko", grammar={"1": ("이",)}))  # over the limit: rotate
    assert len(starts) == 2 and stops == [1] and ear.tail is not None and ear.tail.bytes_read == 0
    ear.listen(ivr.Listen(token=9, language="ko", grammar={"1": ("이",)}))  # under it: same file
    assert len(starts) == 2
    await ear.close()
    assert stops == [1, 1] and not ear.path.exists()


async def test_an_unusable_audio_dir_falls_back_to_a_temp_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    config = SpeechConfig(audio_dir=str(blocker / "ears"))
    svc = SpeechService(config, lambda event: None, lambda: None)
    svc.start()  # warns, does not raise: the server still starts
    assert svc.audio_dir.is_dir() and blocker not in svc.audio_dir.parents
    svc.stop()


async def test_a_broken_ear_file_ends_the_turn_once_and_the_next_listen_reopens_it(tmp_path: Path) -> None:
    import structlog

    registry = FakeRegistry(asr.AsrResult(status="no_input"))
    svc, _, _ = service(tmp_path, registry)
    reports: list = []
    opened: list[Path] = []

    def start(path: Path) -> None:
        opened.append(path)
        path.write_bytes(b"RIFF\x00\x00\x00\x00JUNKnot a wave file at all" if len(opened) == 1 else b"")

    ear = CallEar(
        svc,
        "broken",
        start_ear=start,
        stop_ear=lambda: None,
        report=reports.append,
        log=structlog.get_logger("test"),
    )
    ear.listen(LISTEN)
    deadline = time.monotonic() + 3
    while not reports and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert reports == [ivr.SpeechRecognized(token=7, status="error", text="")]  # once, not per poll
    assert ear.task is None and ear.tail is None and svc.governor.live == 0
    ear.listen(ivr.Listen(token=8, language="ko", grammar={"1": ("이",)}))
    assert len(opened) == 2 and ear.task is not None
    await ear.close()
