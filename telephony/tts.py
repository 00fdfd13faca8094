"""The TTS fallback: pyttsx3 (espeak-ng) in one worker process, cached on disk.

pyttsx3 is not thread safe and loses files when several are queued before one
``runAndWait`` (platform notes), so a single worker process renders one text at
a time. The event loop only awaits the result; a cached prompt costs a stat().
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import multiprocessing
import wave
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import structlog

from .media import write_tone

log = structlog.get_logger("tts")

RENDER_TIMEOUT = 10.0  # seconds; a render that takes longer counts as failed


def cache_key(text: str, voice: str, rate: int, clock_rate: int) -> str:
    return hashlib.sha256(f"{voice}\0{rate}\0{clock_rate}\0{text}".encode()).hexdigest()[:32]


def _render(text: str, voice: str, rate: int, clock_rate: int, out: str) -> str:
    """Runs in the worker process: speak ``text`` to a WAV at the call clock rate."""
    import numpy as np
    import pyttsx3
    import soxr

    engine = _render.__dict__.get("engine")
    if engine is None:
        engine = _render.__dict__["engine"] = pyttsx3.init()
    engine.setProperty("voice", voice)
    engine.setProperty("rate", rate)
    raw = out + ".raw.wav"
    with contextlib.redirect_stdout(io.StringIO()):  # pyttsx3 prints "Audio saved to ..."
        engine.save_to_file(text, raw)
        engine.runAndWait()
    with wave.open(raw, "rb") as w:
        rate_in, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if width != 2 or channels != 1 or data.size == 0:
        raise RuntimeError(f"espeak-ng produced {channels} ch, {8 * width}-bit, {data.size} samples")
    resampled = soxr.resample(data.astype(np.float32) / 32768.0, rate_in, clock_rate)
    pcm = np.clip(resampled * 32768.0, -32768, 32767).astype("<i2")
    tmp = out + ".partial"
    with wave.open(tmp, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(clock_rate)
        w.writeframes(pcm.tobytes())
    Path(raw).unlink(missing_ok=True)
    Path(tmp).replace(out)
    return out


class Synthesizer:
    def __init__(self, cache_dir: Path, *, voice: str, rate: int, clock_rate: int) -> None:
        self.cache_dir = cache_dir
        self.voice, self.rate, self.clock_rate = voice, rate, clock_rate
        self._pool: ProcessPoolExecutor | None = None
        self._pending: dict[str, asyncio.Future[Path]] = {}
        self.failure_tone = cache_dir / f"tone-{clock_rate}.wav"

    def start(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if not self.failure_tone.exists():
            write_tone(self.failure_tone, rate=self.clock_rate)
        # spawn: a fork of a process that holds pjsua2 and an event loop is unsafe
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def cached(self, text: str) -> Path:
        return self.cache_dir / f"{cache_key(text, self.voice, self.rate, self.clock_rate)}.wav"

    async def speak(self, text: str) -> Path:
        """The WAV for ``text``; on any failure, the failure tone (and the text is logged)."""
        path = self.cached(text)
        if path.exists():
            return path
        pending = self._pending.get(str(path))
        if pending is None:
            pending = asyncio.ensure_future(self._render(text, path))
            self._pending[str(path)] = pending
            pending.add_done_callback(lambda _f: self._pending.pop(str(path), None))
        return await asyncio.shield(pending)

    async def _render(self, text: str, path: Path) -> Path:
        if self._pool is None:
            self.start()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        try:
            fut = loop.run_in_executor(
                self._pool, _render, text, self.voice, self.rate, self.clock_rate, str(path)
            )
            await asyncio.wait_for(fut, RENDER_TIMEOUT)
            return path
        except Exception as exc:
            log.error("tts_failed", text=text, error=f"{type(exc).__name__}: {exc}")
            if (
                isinstance(exc, TimeoutError | multiprocessing.ProcessError)
                or "BrokenProcessPool" in type(exc).__name__
            ):
                self.stop()  # a fresh worker next time
            return self.failure_tone
