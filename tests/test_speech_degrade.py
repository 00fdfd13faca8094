"""Speech degradation, core tier: missing model, overload alerts, a hung recognizer. No Vosk needed."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from telephony.asr import (
    AlertCleared,
    AlertRaised,
    AsrGovernor,
    AsrResult,
    AsyncRecognizer,
    EndpointConfig,
    Endpointer,
    GovernorConfig,
    Grammar,
    ModelRegistry,
    SpeechStarted,
    UtteranceEnded,
    decide,
    frame_dbfs,
    input_mode,
)
from tests.helpers import FakeClock


def test_missing_model_degrades_that_language_to_dtmf(tmp_path: Path) -> None:
    loaded: list[str] = []
    good = tmp_path / "ko"
    (good / "am").mkdir(parents=True)
    (good / "am" / "final.mdl").write_bytes(b"x")
    reg = ModelRegistry(loader=lambda p: loaded.append(p) or object())
    status = reg.load(
        {"ko": good, "ko-KR": str(good), "en": tmp_path / "nope", "zh": "package:no_such_model_pkg"}
    )
    assert {k: s.state for k, s in status.items()} == {
        "ko": "loaded", "ko-KR": "loaded", "en": "missing", "zh": "missing"
    }  # fmt: skip
    assert loaded == [str(good.resolve())]  # one load, shared by both languages
    assert "hotline models install en" in status["en"].reason
    assert "not installed" in status["zh"].reason
    alert = status["en"].alert()
    assert (
        isinstance(alert, AlertRaised) and alert.code == "asr.model_missing" and alert.wire == "alert.raised"
    )
    assert status["ko"].alert() is None
    assert input_mode("ko", status, admitted=True) == "speech"
    assert input_mode("en", status, admitted=True) == "dtmf"
    assert input_mode("fr", status, admitted=True) == "dtmf"  # not configured at all
    assert input_mode("ko", status, admitted=False) == "dtmf"  # governor said no


def test_broken_model_is_failed_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "am").mkdir()
    (tmp_path / "am" / "final.mdl").write_bytes(b"garbage")

    def boom(path: str) -> object:
        raise RuntimeError("Failed to create a model")

    status = ModelRegistry(loader=boom).load({"ko": tmp_path})
    assert status["ko"].state == "failed" and "Failed to create" in status["ko"].reason


def test_overload_by_live_count_raises_then_clears_with_hysteresis() -> None:
    clock = FakeClock()
    gov = AsrGovernor(GovernorConfig(max_live=3, clear_live_ratio=0.5, clear_hold=10.0))
    alerts: list[object] = []
    for _ in range(2):
        adm = gov.admit(clock.now)
        assert adm.admitted and adm.alerts == ()
    third = gov.admit(clock.now)  # reaches the limit: admitted, and the alert goes up now
    assert third.admitted
    assert [type(a) for a in third.alerts] == [AlertRaised]
    raised = third.alerts[0]
    assert (raised.code, raised.value, raised.limit, raised.wire) == (
        "asr.overload",
        3.0,
        3.0,
        "alert.raised",
    )
    refused = gov.admit(clock.advance(1))
    assert not refused.admitted and refused.alerts == ()  # raised once, not per refusal
    alerts += gov.released(clock.advance(1))  # 2 live: above the clear level 1.5
    assert not gov.admit(clock.now).admitted
    alerts += gov.released(clock.advance(1))  # 1 live: calm from now (t=3)
    assert gov.next_deadline() == pytest.approx(13.0)
    alerts += gov.on_timer(clock.advance(9.9))
    assert alerts == [] and not gov.admit(clock.now).admitted
    cleared = gov.on_timer(clock.advance(0.1))
    assert [type(a) for a in cleared] == [AlertCleared]
    assert cleared[0].code == "asr.overload" and cleared[0].wire == "alert.cleared"
    assert gov.admit(clock.now).admitted


def test_overload_by_real_time_factor_and_calm_must_be_continuous() -> None:
    clock = FakeClock()
    gov = AsrGovernor(GovernorConfig(max_live=100, max_rtf=0.5, clear_hold=5.0, rtf_alpha=1.0))
    assert gov.admit(clock.now).admitted
    up = gov.measured(clock.advance(1), audio_seconds=1.0, wall_seconds=0.9)
    assert [type(a) for a in up] == [AlertRaised] and up[0].value == pytest.approx(0.9) and up[0].limit == 0.5
    assert not gov.admit(clock.now).admitted
    assert gov.measured(clock.advance(1), audio_seconds=1.0, wall_seconds=0.1) == ()  # calm since t=2
    assert gov.measured(clock.advance(3), audio_seconds=1.0, wall_seconds=0.4) == ()  # 0.4 > 0.25: not calm
    assert gov.measured(clock.advance(1), audio_seconds=1.0, wall_seconds=0.1) == ()  # calm again since t=6
    assert gov.on_timer(clock.advance(4.9)) == ()
    assert [type(a) for a in gov.on_timer(clock.advance(0.1))] == [AlertCleared]


class _Hung:
    """A recognizer whose decoder never returns (until released at teardown)."""

    def __init__(self, hang_in: str) -> None:
        self.hang_in = hang_in
        self.release = threading.Event()
        self.audio_seconds = 0.0
        self.busy_seconds = 0.0

    def accept(self, pcm8k: bytes) -> None:
        if self.hang_in == "accept":
            self.release.wait(30)

    def finish(self) -> AsrResult:
        if self.hang_in == "finish":
            self.release.wait(30)
        return AsrResult(status="match", option="x")


@pytest.mark.parametrize("hang_in", ["accept", "finish"])
async def test_a_hung_recognizer_times_out_instead_of_leaving_silence(hang_in: str) -> None:
    hung = _Hung(hang_in)
    rec = AsyncRecognizer(hung, feed_timeout=0.2, final_timeout=0.2)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        ok = await rec.accept(b"\0\0" * 160)
        assert ok is (hang_in != "accept")
        assert await rec.accept(b"\0\0" * 160) is ok  # a poisoned recognizer drops audio at once
        result = await rec.finish()
        assert result.status == "timeout" and result.option is None and result.reason
        assert loop.time() - t0 < 1.0  # one deadline, never forever
    finally:
        hung.release.set()


async def test_a_failing_recognizer_is_an_error_result() -> None:
    class Boom(_Hung):
        def finish(self) -> AsrResult:
            raise RuntimeError("decoder crashed")

    result = await AsyncRecognizer(Boom("none")).finish()
    assert result.status == "error" and "decoder crashed" in result.reason


# --- endpointer and decision cores (synthetic audio, fake clock) -----------------------------


def _tone(seconds: float, dbfs: float, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    amp = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)  # sine RMS = amp / sqrt(2)
    return (amp * np.sin(2 * np.pi * 440 * t)).astype("<i2")


def _run(ep: Endpointer, audio: np.ndarray, clock: FakeClock) -> list[SpeechStarted | UtteranceEnded]:
    out: list[SpeechStarted | UtteranceEnded] = []
    for i in range(0, audio.size, 160):
        out += ep.feed_pcm(audio[i : i + 160], clock.advance(0.02))
    return out


def test_frame_level() -> None:
    assert frame_dbfs(_tone(0.02, -20.0)) == pytest.approx(-20.0, abs=0.1)
    assert frame_dbfs(np.zeros(160, "<i2")) == -120.0


def test_endpointer_start_needs_min_duration_and_ends_on_trailing_silence() -> None:
    clock = FakeClock()
    ep = Endpointer(EndpointConfig(threshold_db=-40, start_min=0.12, trailing_silence=0.8))
    quiet = np.zeros(8000, "<i2")
    click = _tone(0.1, -20)  # 100 ms: shorter than start_min, no barge-in
    assert _run(ep, np.concatenate([quiet, click, quiet]), clock) == []
    events = _run(ep, np.concatenate([_tone(0.5, -30), _tone(0.3, -50), _tone(0.4, -30), quiet]), clock)
    assert [type(e) for e in events] == [SpeechStarted, UtteranceEnded]
    start, end = events
    assert start.at == pytest.approx(2.1) and start.detected_at == pytest.approx(2.22)
    assert end.reason == "silence" and end.at == pytest.approx(3.3)  # the 0.3 s dip did not end it
    assert _run(ep, _tone(1.0, -20), clock) == []  # done until reset
    ep.reset()
    assert [type(e) for e in _run(ep, _tone(0.2, -20), clock)] == [SpeechStarted]


def test_endpointer_cuts_at_max_utterance() -> None:
    clock = FakeClock()
    ep = Endpointer(EndpointConfig(max_utterance=2.0))
    noise = (np.random.default_rng(1).normal(0, 3000, 8000 * 5)).astype("<i2")
    events = _run(ep, noise, clock)
    assert [type(e) for e in events] == [SpeechStarted, UtteranceEnded]
    assert events[1].reason == "max_length" and events[1].at == pytest.approx(2.0)


def test_decide_uses_nbest_margin_against_garbage() -> None:
    g = Grammar(options={"yes": ["네", "예"], "no": ["아니요"]}, accept_margin=1.0)

    def seg(*alts: tuple[str, float]) -> dict[str, object]:
        return {"alternatives": [{"text": t, "confidence": c} for t, c in alts]}

    near = decide([seg(("래", 100.0), ("네", 99.5))], g)
    assert (near.status, near.option, near.text) == ("match", "yes", "네")
    assert near.confidence == pytest.approx(1 / (1 + np.exp(0.5)))
    far = decide([seg(("래", 100.0), ("네", 98.0))], g)
    assert far.status == "no_match" and "garbage" in far.reason
    assert decide([seg(("래", 100.0), ("러", 99.0))], g).status == "no_match"
    assert decide([seg(("", 0.0)), {"text": ""}], g).status == "no_input"
    two = decide([seg(("아니요", 50.0)), seg(("네", 50.0))], g)  # two phrases in one turn
    assert two.status == "no_match" and two.text == "아니요 네"
    forced = Grammar(options=g.options, reject_out_of_grammar=False)
    assert decide([seg(("래", 100.0), ("네", 90.0))], forced).option == "yes"
    strict = Grammar(options=g.options, min_confidence=0.9)
    assert decide([seg(("네", 100.0), ("아니요", 99.0))], strict).status == "no_match"
    free = decide([seg(("안녕 하세요", 10.0))], None)
    assert (free.status, free.text) == ("transcript", "안녕 하세요")


def test_spoken_digits_are_a_sequence_grammar() -> None:
    from telephony.asr import GrammarError, digit_grammar

    g = digit_grammar("ko")

    def seg(*alts: tuple[str, float]) -> dict[str, object]:
        return {"alternatives": [{"text": t, "confidence": c} for t, c in alts]}

    assert g.parse("일 이 삼 공") == "1230" and g.parse("영") == "0"
    assert g.parse("일 래") is None and g.parse("") is None
    # the best entry that is all digit words wins when garbage is within the margin
    got = decide([seg(("일 래 삼", 100.0), ("일 이 삼", 99.6))], g)
    assert (got.status, got.option, got.text) == ("match", "123", "일 이 삼")
    assert decide([seg(("래 러", 100.0), ("일 이", 95.0))], g).status == "no_match"
    assert digit_grammar("en-US").parse("four two oh") == "420"
    with pytest.raises(GrammarError):
        digit_grammar("xx")
    # a multi-word phrase is read before its first word alone
    multi = Grammar(options={"a": ["카드"], "b": ["카드 분실"]}, sequence=True)
    assert multi.parse("카드 분실 카드") == "ba"
