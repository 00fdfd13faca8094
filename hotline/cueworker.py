"""A cue worker process: tails the tapped legs of many calls and reports what it hears.

Runs in a process of its own (spawned by hotline/cues.py), because pocketsphinx holds the
GIL while it decodes and the server's event loop must never wait for it. Each stream is one
tapped leg: pjsua2 records it to a WAV on tmpfs (flushed every 20 ms by our patched writer)
and this process reads the new samples every ``poll_interval`` (telephony.tail.WavTail), feeds
the keyword spotter of the call's language and the agitation meter, and sends back

* ``("kw", call_id, channel, phrase, category, confidence, at, start, latency)``
* ``("ag", call_id, channel, score, at, start)``
* ``("err", call_id, message)`` and ``("warn", message)``

where ``at``/``start`` are CLOCK_MONOTONIC seconds (the same clock as the server's loop), so
the controller can place a cue in the call. A pause (secure step) closes the segment: the
spotter and the meter forget the half-heard audio and the next samples start a new segment.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from analytics.keywords import parse_phrases
from analytics.prosody import AgitationMeter, ProsodyConfig
from telephony.tail import WavTail

from .recognizers import PocketsphinxModel, Spotter, VoskSpotter, load_vosk_model, parse_engine

RATE = 8000


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What a worker needs, picklable (it crosses into the spawned process)."""

    poll_interval: float  # seconds between reads of the taps
    recognizers: dict[str, str]  # language -> "pocketsphinx" | "vosk:<model>"
    keywords: dict[str, dict[str, tuple[str, ...]]]  # language -> category -> phrases
    prosody: ProsodyConfig = field(default_factory=ProsodyConfig)
    min_confidence: float = 0.5  # vosk spotter: least word confidence of a phrase


class Stream:
    """One tapped leg: the tail, the spotter, the meter, and the audio -> monotonic clock map."""

    def __init__(
        self, call_id: str, channel: str, path: str, spotter: Spotter | None, prosody: ProsodyConfig
    ) -> None:
        self.call_id, self.channel = call_id, channel
        self.tail = WavTail(path)
        self.spotter = spotter
        self.meter = AgitationMeter(prosody)
        self.clock = 0.0  # seconds of audio taken (all segments): the spotter's and meter's clock
        self.paused = False
        self._seg_clock = 0.0  # the clock at the segment's start
        self._seg_frames = 0  # frames read before the segment's start
        self._seg_t0: float | None = None  # monotonic time of the segment's first sample
        self._carry = b""

    def to_monotonic(self, t: float) -> float:
        t0 = self._seg_t0 if self._seg_t0 is not None else time.monotonic()
        return t0 + (t - self._seg_clock)

    def step(self, out: list[tuple[Any, ...]]) -> None:
        data = self.tail.read()
        if not data:
            return
        now = time.monotonic()
        start = now - (self.tail.frames_read - self._seg_frames) / RATE
        self._seg_t0 = start if self._seg_t0 is None else min(self._seg_t0, start)
        if self.paused:
            return  # written before the pause took effect: never heard
        pcm = np.frombuffer(data, dtype="<i2")
        at = self.clock
        self.clock += pcm.size / RATE
        if self.spotter is not None:
            for hit in self.spotter.feed(pcm):
                end = self.to_monotonic(hit.end)
                out.append(("kw", self.call_id, self.channel, hit.phrase, hit.category, hit.confidence,
                            end, self.to_monotonic(hit.start), time.monotonic() - end))  # fmt: skip
        for score in self.meter.feed(pcm, at):
            out.append(
                (
                    "ag",
                    self.call_id,
                    self.channel,
                    score.score,
                    self.to_monotonic(score.at),
                    self.to_monotonic(score.start),
                )
            )

    def pause(self, paused: bool, out: list[tuple[Any, ...]]) -> None:
        if paused == self.paused:
            return
        if paused:
            self.step(out)  # what came before the pause is heard
            self.paused = True
            if self.spotter is not None:
                self.spotter.reset()
            self.meter.reset_clock()
        else:
            self.tail.read()  # anything that slipped in while paused is dropped unheard
            self.paused = False
            self._seg_clock, self._seg_frames, self._seg_t0 = self.clock, self.tail.frames_read, None

    def close(self) -> None:
        self.tail.close()


class Worker:
    def __init__(self, conn: Connection, settings: WorkerSettings) -> None:
        self.conn, self.settings = conn, settings
        self.streams: dict[tuple[str, str], Stream] = {}
        self._models: dict[str, Any] = {}  # language -> PocketsphinxModel | (vosk model, phrases)
        self._warned: set[str] = set()
        self.busy = 0.0  # CPU seconds spent in steps

    def _warn(self, message: str, out: list[tuple[Any, ...]]) -> None:
        if message not in self._warned:
            self._warned.add(message)
            out.append(("warn", message))

    def spotter(self, language: str, out: list[tuple[Any, ...]]) -> Spotter | None:
        spec = self.settings.recognizers.get(language)
        keywords = self.settings.keywords.get(language)
        if not keywords:
            return None
        if spec is None:
            self._warn(
                f"no recognizer for language {language!r} ([analytics.recognizers]): agitation only", out
            )
            return None
        if language not in self._models:
            phrases = parse_phrases(keywords)
            engine, model = parse_engine(spec)
            if engine == "pocketsphinx":
                ps = PocketsphinxModel(phrases)
                self._models[language] = ps
                unknown = ps.unknown
            else:
                vosk_model = load_vosk_model(model)
                probe = VoskSpotter(vosk_model, phrases, min_confidence=self.settings.min_confidence)
                self._models[language] = (vosk_model, phrases)
                unknown = probe.unknown
            if unknown:
                self._warn(f"{language}: phrases with words the {engine} model does not know: {unknown}", out)
        m = self._models[language]
        if isinstance(m, PocketsphinxModel):
            return m.spotter()
        return VoskSpotter(m[0], m[1], min_confidence=self.settings.min_confidence)

    def command(self, msg: tuple[Any, ...], out: list[tuple[Any, ...]]) -> bool:
        kind = msg[0]
        if kind == "quit":
            return False
        if kind == "start":
            _, call_id, channel, path, language, paused = msg
            try:
                spotter = self.spotter(language, out)
            except Exception as exc:
                out.append(("err", call_id, f"{type(exc).__name__}: {exc}"))
                spotter = None
            old = self.streams.pop((call_id, channel), None)
            if old is not None:
                old.close()
            stream = Stream(call_id, channel, path, spotter, self.settings.prosody)
            stream.paused = paused
            self.streams[(call_id, channel)] = stream
        elif kind == "pause":
            _, call_id, paused = msg
            for (cid, _ch), stream in self.streams.items():
                if cid == call_id:
                    stream.pause(paused, out)
        elif kind == "stop":
            _, call_id, channels = msg
            for key in [k for k in self.streams if k[0] == call_id and (not channels or k[1] in channels)]:
                stream = self.streams.pop(key)
                with contextlib.suppress(Exception):
                    stream.step(out)  # the last words before the hang-up
                stream.close()
        elif kind == "stats":
            out.append(("stats", len(self.streams), self.busy, time.process_time()))
        return True

    def run(self) -> None:
        interval = self.settings.poll_interval
        self.conn.send([("ready",)])
        while True:
            out: list[tuple[Any, ...]] = []
            t0 = time.process_time()
            for key, stream in list(self.streams.items()):
                try:
                    stream.step(out)
                except Exception as exc:
                    out.append(("err", key[0], f"{type(exc).__name__}: {exc}"))
                    self.streams.pop(key).close()
            self.busy += time.process_time() - t0
            if out:
                self.conn.send(out)
            wait = max(0.0, interval - (time.process_time() - t0))
            while self.conn.poll(wait):
                msg = self.conn.recv()
                replies: list[tuple[Any, ...]] = []
                if not self.command(msg, replies):
                    return
                if replies:
                    self.conn.send(replies)
                wait = 0.0


def main(conn: Connection, settings: WorkerSettings) -> None:
    """The process's entry point; exits when the server says quit or the pipe breaks."""
    try:
        Worker(conn, settings).run()
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass
    except Exception:
        with contextlib.suppress(Exception):
            conn.send([("fatal", traceback.format_exc())])
        raise
