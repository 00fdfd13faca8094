"""The TTS fallback with the real espeak-ng: cache, resampling, and failure -> tone."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np

from telephony import Synthesizer


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
