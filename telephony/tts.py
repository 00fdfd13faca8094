"""The TTS fallback: pyttsx3 (espeak-ng) in one worker process, cached on disk.

Each language is spoken with its own espeak-ng voice: ``voices[language]``, else the
default voice for English (or no language), else the voice named by the language code
itself (espeak-ng names its voices that way: "ko", "de", "cmn").

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
import threading
import time
import wave
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from .media import write_tone

log = structlog.get_logger("tts")

RENDER_TIMEOUT = 10.0  # seconds; a render that takes longer counts as failed
RENDER_ATTEMPTS = 3  # tries per text in the worker before the text counts as failed


def cache_key(text: str, voice: str, rate: int, clock_rate: int) -> str:
    return hashlib.sha256(f"{voice}\0{rate}\0{clock_rate}\0{text}".encode()).hexdigest()[:32]


def _render(text: str, voice: str, rate: int, clock_rate: int, out: str) -> str:
    """Runs in the worker process: speak ``text`` to a WAV at the call clock rate."""
    import numpy as np
    import soxr

    raw = out + ".raw.wav"
    for attempt in range(RENDER_ATTEMPTS):
        try:
            rate_in, data = _espeak_to_wav(text, voice, rate, raw)
            break
        except RuntimeError:
            if attempt == RENDER_ATTEMPTS - 1:
                raise
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


def _warm(voice: str, rate: int, raw: str) -> None:
    """Runs in a fresh worker: start its engine with one tiny render, then stay busy a moment so
    the next warm-up job lands in another worker (the pool spawns workers on demand)."""
    with contextlib.suppress(Exception):
        _espeak_to_wav("a", voice, rate, raw)
    Path(raw).unlink(missing_ok=True)
    time.sleep(0.3)


def _espeak_to_wav(text: str, voice: str, rate: int, raw: str) -> tuple[int, Any]:
    """One pyttsx3 render: (sample rate, int16 samples); RuntimeError if it came out empty."""
    import numpy as np
    import pyttsx3

    state = _render.__dict__
    if "engine" not in state:
        state["engine"] = engine = pyttsx3.init()
        state["finished"] = finished = threading.Event()
        engine.connect("finished-utterance", lambda **_: finished.set())  # fired after the WAV is written
    engine, finished = state["engine"], state["finished"]
    engine.setProperty("voice", voice)
    engine.setProperty("rate", rate)
    finished.clear()
    Path(raw).unlink(missing_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):  # pyttsx3 prints "Audio saved to ..."
        engine.save_to_file(text, raw)
        engine.runAndWait()
        # espeak-ng synthesizes on its own thread (AUDIO_OUTPUT_RETRIEVAL), and pyttsx3 2.99's
        # runAndWait may return before the WAV exists (a fresh worker's first text, ~1 in 10)
        if not finished.wait(RENDER_TIMEOUT - 1.0):
            raise RuntimeError("espeak-ng did not finish the text")
    with wave.open(raw, "rb") as w:
        rate_in, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if width != 2 or channels != 1 or data.size == 0:
        # pyttsx3 sometimes cancels its own utterance (~1 in 100 early texts): try again
        raise RuntimeError(f"espeak-ng produced {channels} ch, {8 * width}-bit, {data.size} samples")
    return rate_in, data


class Synthesizer:
    def __init__(
        self,
        cache_dir: Path,
        *,
        voice: str,
        rate: int,
        clock_rate: int,
        voices: Mapping[str, str] | None = None,
        workers: int = 2,
    ) -> None:
        self.cache_dir = cache_dir
        self.workers = max(1, workers)  # worker processes, one pyttsx3 engine each (not thread safe)
        self.voice = voice  # espeak-ng voice for English and for prompts without a language
        self.rate = rate  # words per minute
        self.clock_rate = clock_rate  # Hz: WAVs are written at the call clock, no resampling at play
        self.voices = dict(voices or {})  # language -> espeak-ng voice, overriding the language code
        self._pool: ProcessPoolExecutor | None = None
        self._pending: dict[str, asyncio.Future[Path]] = {}
        self.failure_tone = cache_dir / f"tone-{clock_rate}.wav"

    def start(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if not self.failure_tone.exists():
            write_tone(self.failure_tone, rate=self.clock_rate)
        # spawn: a fork of a process that holds pjsua2 and an event loop is unsafe
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
        )

    async def warm(self) -> None:
        """Spawn every worker and start its engine now, not in the first calls' prompts (a
        spawn plus pyttsx3.init costs about a second)."""
        if self._pool is None:
            self.start()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        jobs = [
            loop.run_in_executor(
                self._pool, _warm, self.voice, self.rate, str(self.cache_dir / f".warm-{i}.wav")
            )
            for i in range(self.workers)
        ]
        for job in jobs:
            with contextlib.suppress(Exception):
                await job

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def voice_for(self, language: str = "") -> str:
        """The espeak-ng voice for ``language``: configured, else the default for "" and
        "en", else the language code itself."""
        if language in self.voices:
            return self.voices[language]
        if language in ("", "en"):
            return self.voice
        return language

    def cached(self, text: str, language: str = "", rate: int = 0) -> Path:
        """Where the WAV for ``text`` in ``language`` (at ``rate`` words per minute, 0 = the
        configured rate) is (or will be) cached."""
        key = cache_key(text, self.voice_for(language), rate or self.rate, self.clock_rate)
        return self.cache_dir / f"{key}.wav"

    async def speak(self, text: str, language: str = "", rate: int = 0) -> Path:
        """The WAV for ``text`` in ``language`` at ``rate`` words per minute (0: the configured
        rate; slower for assisted callers); on any failure, the failure tone (and the text is
        logged). Never raises, so a call always has something to play."""
        path = self.cached(text, language, rate)
        if path.exists():
            return path
        pending = self._pending.get(str(path))
        if pending is None:
            pending = asyncio.ensure_future(self._render(text, language, path, rate or self.rate))
            self._pending[str(path)] = pending
            pending.add_done_callback(lambda _f: self._pending.pop(str(path), None))
        return await asyncio.shield(pending)

    async def _render(self, text: str, language: str, path: Path, rate: int) -> Path:
        voice = self.voice_for(language)
        if self._pool is None:
            self.start()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        try:
            fut = loop.run_in_executor(
                self._pool, _render, text, voice, rate, self.clock_rate, str(path)
            )
            await asyncio.wait_for(fut, RENDER_TIMEOUT)
            return path
        except Exception as exc:
            log.error(
                "tts_failed", text=text, language=language, voice=voice, error=f"{type(exc).__name__}: {exc}"
            )
            if (
                isinstance(exc, TimeoutError | multiprocessing.ProcessError)
                or "BrokenProcessPool" in type(exc).__name__
            ):
                self.stop()  # a fresh worker next time
            return self.failure_tone
