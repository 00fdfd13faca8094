"""The TTS fallback with the real espeak-ng: cache, resampling, and failure -> tone."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from telephony import Synthesizer

from .helpers import broken_render


def read(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


async def test_speaks_at_the_call_clock_and_caches(tmp_path: Path) -> None:
    tts = Synthesizer(tmp_path, voice="en", rate=160, clock_rate=8000)
    tts.start()
    try:
        first = await tts.speak("For sales, press 1.")
        assert first != tts.failure_tone
        rate, samples = read(first)
        assert rate == 8000
        assert 0.8 < len(samples) / rate < 5  # a short sentence
        assert np.abs(samples).max() > 3000  # speech, not silence
        mtime = first.stat().st_mtime_ns
        # concurrent requests for one text share one render; the cache is reused
        again = await asyncio.gather(*(tts.speak("For sales, press 1.") for _ in range(5)))
        assert set(again) == {first} and first.stat().st_mtime_ns == mtime
        other = await tts.speak("For support, press 2.")
        assert other != first
    finally:
        tts.stop()


async def test_a_failed_render_plays_the_tone_and_logs_the_text(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    tts = Synthesizer(tmp_path, voice="no-such-voice-xx", rate=160, clock_rate=8000)
    tts.start()
    try:
        with capture_logs() as logs:
            path = await tts.speak("Hello there")
    finally:
        tts.stop()
    # espeak-ng either refuses the voice (tone) or falls back to its default voice
    if path == tts.failure_tone:
        assert any(e["event"] == "tts_failed" and e["text"] == "Hello there" for e in logs)
    rate, samples = read(path)
    assert rate == 8000 and len(samples) > 0


KOREAN = "상담원을 연결해 드리겠습니다."
ENGLISH = "Please hold while we connect you."


def test_the_voice_follows_the_language() -> None:
    tts = Synthesizer(Path("/nonexistent"), voice="en-us", rate=160, clock_rate=8000, voices={"zh": "cmn"})
    assert tts.voice_for() == tts.voice_for("") == tts.voice_for("en") == "en-us"
    assert tts.voice_for("zh") == "cmn"  # configured
    assert tts.voice_for("ko") == "ko"  # espeak-ng names voices by language code
    # the voice is part of the cache key; the old one-argument calls still work
    assert tts.cached("Hello") == tts.cached("Hello", "en") != tts.cached("Hello", "ko")
    assert Synthesizer(Path("/x"), voice="en", rate=160, clock_rate=8000).voice_for("en") == "en"


async def test_each_language_is_spoken_with_its_own_voice(tmp_path: Path) -> None:
    tts = Synthesizer(tmp_path, voice="en", rate=160, clock_rate=8000)
    tts.start()
    try:
        korean = await tts.speak(KOREAN, "ko")
        english = await tts.speak(ENGLISH)
        korean_in_english = await tts.speak(KOREAN, "en")
    finally:
        tts.stop()
    assert tts.failure_tone not in (korean, english, korean_in_english)
    assert len({korean, english, korean_in_english}) == 3  # one cache entry per text and voice
    assert korean == tts.cached(KOREAN, "ko") and english == tts.cached(ENGLISH, "")
    for path in (korean, english):
        rate, samples = read(path)
        assert rate == 8000
        assert 0.8 < len(samples) / rate < 8
        assert np.abs(samples).max() > 3000
    # the Korean voice really spoke: the same text in the English voice sounds different
    _, ko = read(korean)
    _, en = read(korean_in_english)
    assert len(ko) != len(en) or not np.array_equal(ko, en)


async def test_a_cache_hit_needs_no_worker(tmp_path: Path) -> None:
    tts = Synthesizer(tmp_path, voice="en", rate=160, clock_rate=8000)
    tts.start()
    try:
        first = await tts.speak(KOREAN, "ko")
    finally:
        tts.stop()
    assert tts._pool is None
    assert await tts.speak(KOREAN, "ko") == first  # no worker: the answer came from the cache
    assert tts._pool is None  # ... and none was started for it
    # a fresh synthesizer (a restarted server) finds it too, without starting a worker
    again = Synthesizer(tmp_path, voice="en", rate=160, clock_rate=8000)
    assert await again.speak(KOREAN, "ko") == first and again._pool is None


async def test_a_worker_that_raises_gives_the_tone_and_the_call_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from structlog.testing import capture_logs

    import telephony.tts

    tts = Synthesizer(tmp_path, voice="en", rate=160, clock_rate=8000, voices={"ko": "ko"})
    tts.start()
    try:
        monkeypatch.setattr(telephony.tts, "_render", broken_render)
        with capture_logs() as logs:
            path = await tts.speak(KOREAN, "ko")  # never raises
        assert path == tts.failure_tone
        failed = [e for e in logs if e["event"] == "tts_failed"]
        assert len(failed) == 1 and failed[0]["log_level"] == "error"
        assert failed[0]["text"] == KOREAN and failed[0]["language"] == "ko" and failed[0]["voice"] == "ko"
        assert "espeak-ng exploded on ko" in failed[0]["error"]
        rate, samples = read(path)  # the tone is a playable WAV at the call clock
        assert rate == 8000 and np.abs(samples).max() > 1000
        assert not tts.cached(KOREAN, "ko").exists()  # a failure is not cached: the next call retries
        monkeypatch.undo()
        # the same worker serves the next prompt
        assert await tts.speak(KOREAN, "ko") == tts.cached(KOREAN, "ko")
    finally:
        tts.stop()
