"""Live cues, the server's side: taps on the legs, the cue worker processes, their reports.

The controller asks (``StartCues``, ``PauseCues``, ``StopCues``); this adapter records each
tapped leg to a WAV on tmpfs (``Endpoint.tap``), tells a cue worker process
(hotline/cueworker.py) to tail it, and turns what the worker reports into controller inputs
(``KeywordHeard``, ``AgitationMeasured``, ``CuesFailed``). It decides nothing.

The workers are separate processes (``spawn``), because pocketsphinx holds the GIL while it
decodes; their messages come back through a pipe the event loop watches (``add_reader``), so
the server process only pays for a recorder per leg and a pickle per report.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import structlog

from analytics.prosody import ProsodyConfig
from calls import effects as fx
from calls import inputs as inp
from calls.cues import CuePolicy
from telephony.asr import AlertCleared, AlertRaised

from .config import AnalyticsConfig, Config
from .cueworker import WorkerSettings, main

log = structlog.get_logger("cues")


@dataclass(slots=True)
class _Worker:
    index: int
    process: BaseProcess
    conn: Connection
    calls: set[str] = field(default_factory=set)
    stats: tuple[Any, ...] | None = None  # the last ("stats", streams, busy, cpu) reply


@dataclass(slots=True)
class _Tapped:
    worker: int
    taps: dict[str, tuple[str, Path]] = field(default_factory=dict)  # channel -> (leg, path)


class CueService:
    """The cue workers and the taps of every call with live cues."""

    def __init__(
        self,
        config: AnalyticsConfig,
        recognizers: dict[str, str],
        submit: Callable[[inp.Input], None],
        tap: Callable[[str, Path, bool], None],
        pause_tap: Callable[[str, Path, bool], None],
        untap: Callable[[str, Path], None],
        publish: Callable[[object], None] = lambda event: None,
    ) -> None:
        self.config = config
        self.settings = WorkerSettings(
            poll_interval=config.poll_interval,
            recognizers=dict(recognizers),
            keywords={lang: {c: tuple(p) for c, p in cats.items()} for lang, cats in config.keywords.items()},
            prosody=ProsodyConfig(window=config.agitation_window, baseline_seconds=config.baseline_seconds),
            min_confidence=config.min_confidence,
        )
        self._submit, self._tap, self._pause_tap, self._untap = submit, tap, pause_tap, untap
        self._publish = publish
        self.overloaded = False
        self.audio_dir = Path(config.audio_dir).expanduser()
        self.workers: list[_Worker] = []
        self.calls: dict[str, _Tapped] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self.audio_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # no tmpfs there: a disk folder works, a little slower
            fallback = Path(tempfile.gettempdir()) / "hotline-cues"
            log.warning(
                "cues_audio_dir_unusable", audio_dir=str(self.audio_dir), error=str(exc), using=str(fallback)
            )
            self.audio_dir = fallback
            self.audio_dir.mkdir(parents=True, exist_ok=True)
        for i in range(max(1, self.config.workers)):
            self.workers.append(self._spawn(i))

    def _spawn(self, index: int) -> _Worker:
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs pjsua2
        ours, theirs = ctx.Pipe(duplex=True)
        process = ctx.Process(
            target=main, args=(theirs, self.settings), name=f"hotline-cues-{index}", daemon=True
        )
        process.start()
        theirs.close()
        worker = _Worker(index, process, ours)
        assert self._loop is not None
        self._loop.add_reader(ours.fileno(), self._readable, worker)
        return worker

    async def stop(self) -> None:
        self._stopping = True
        for call_id in list(self.calls):
            self._stop_call(call_id, ())
        for w in self.workers:
            if self._loop is not None:
                self._loop.remove_reader(w.conn.fileno())
            with contextlib.suppress(OSError, ValueError):
                w.conn.send(("quit",))
        deadline = time.monotonic() + 3.0
        for w in self.workers:
            while w.process.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if w.process.is_alive():
                w.process.kill()
            w.process.join(1.0)
            w.conn.close()
        self.workers.clear()

    # -------------------------------------------------------------- effects
    def run(self, effect: fx.StartCues | fx.PauseCues | fx.StopCues) -> None:
        match effect:
            case fx.StartCues():
                self._start(effect)
            case fx.PauseCues(call_id=cid, paused=paused):
                tapped = self.calls.get(cid)
                if tapped is None:
                    return
                for leg, path in tapped.taps.values():
                    self._pause_tap(leg, path, paused)
                self._send(tapped.worker, ("pause", cid, paused))
            case fx.StopCues(call_id=cid, channels=channels):
                self._stop_call(cid, channels)

    @property
    def streams(self) -> int:
        return sum(len(t.taps) for t in self.calls.values())

    def _capacity(self) -> int:
        return max(1, self.config.max_streams) * len(self.workers)

    def _load_changed(self) -> None:
        """alert.raised analytics.overload when the taps reach capacity; cleared under 80 %."""
        n, cap = self.streams, self._capacity()
        if not self.overloaded and n >= cap:
            self.overloaded = True
            log.warning("cues_overloaded", streams=n, capacity=cap)
            self._publish(
                AlertRaised(
                    code="analytics.overload",
                    message=f"{n} legs have live cues, the most [analytics] workers x max_streams allow; "
                    "new calls get none until load falls (add workers or cores)",
                    value=float(n),
                    limit=float(cap),
                )
            )
        elif self.overloaded and n <= 0.8 * cap:
            self.overloaded = False
            self._publish(
                AlertCleared(
                    code="analytics.overload",
                    message=f"live cues for new calls again ({n} legs)",
                    value=float(n),
                    limit=0.8 * cap,
                )
            )

    def _start(self, e: fx.StartCues) -> None:
        if not self.workers:
            raise RuntimeError("no cue worker is running")
        if self.streams + len(e.taps) > self._capacity():
            self._load_changed()
            self._submit(inp.CuesFailed(call_id=e.call_id, error="overloaded: no live cues for this call"))
            return
        tapped = self.calls.get(e.call_id)
        if tapped is None:
            worker = min(self.workers, key=lambda w: len(w.calls))  # the least loaded
            tapped = self.calls[e.call_id] = _Tapped(worker.index)
            worker.calls.add(e.call_id)
        for channel, leg in e.taps:
            path = self.audio_dir / f"{e.call_id}-{channel}.wav"
            with contextlib.suppress(OSError):
                path.unlink()
            self._tap(leg, path, e.paused)
            tapped.taps[channel] = (leg, path)
            self._send(tapped.worker, ("start", e.call_id, channel, str(path), e.language, e.paused))
        self._load_changed()

    def _stop_call(self, call_id: str, channels: tuple[str, ...]) -> None:
        tapped = self.calls.get(call_id)
        if tapped is None:
            return
        gone = [c for c in tapped.taps if not channels or c in channels]
        for channel in gone:
            leg, path = tapped.taps.pop(channel)
            with contextlib.suppress(Exception):
                self._untap(leg, path)
        self._send(tapped.worker, ("stop", call_id, tuple(gone)))
        for channel in gone:
            with contextlib.suppress(OSError):
                (self.audio_dir / f"{call_id}-{channel}.wav").unlink()
        if not tapped.taps:
            del self.calls[call_id]
            if tapped.worker < len(self.workers):
                self.workers[tapped.worker].calls.discard(call_id)
        self._load_changed()

    def _send(self, index: int, msg: tuple[Any, ...]) -> None:
        try:
            self.workers[index].conn.send(msg)
        except (OSError, ValueError, IndexError) as exc:
            log.error("cue_worker_unreachable", worker=index, error=str(exc))

    # -------------------------------------------------------------- reports
    def _readable(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll(0):
                batch = worker.conn.recv()
                for msg in batch:
                    self._report(worker, msg)
        except (EOFError, OSError) as exc:
            self._died(worker, f"{type(exc).__name__}: {exc}")

    def _report(self, worker: _Worker, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "kw":
            _, cid, channel, phrase, category, confidence, at, start, latency = msg
            self._submit(
                inp.KeywordHeard(
                    call_id=cid, channel=channel, phrase=phrase, category=category,
                    confidence=float(confidence), at=float(at), start=float(start), latency=float(latency),
                )
            )  # fmt: skip
        elif kind == "ag":
            _, cid, channel, score, at, start = msg
            self._submit(
                inp.AgitationMeasured(
                    call_id=cid, channel=channel, score=float(score), at=float(at), start=float(start)
                )
            )
        elif kind == "err":
            _, cid, error = msg
            log.error("cues_failed", call_id=cid, error=error)
            self._stop_call(cid, ())
            self._submit(inp.CuesFailed(call_id=cid, error=error))
        elif kind == "warn":
            log.warning("cues_warning", message=msg[1])
        elif kind == "stats":
            worker.stats = msg
        elif kind == "ready":
            log.info("cue_worker_ready", worker=worker.index, pid=worker.process.pid)
        elif kind == "fatal":
            log.error("cue_worker_crashed", worker=worker.index, traceback=msg[1])

    def _died(self, worker: _Worker, why: str) -> None:
        """A worker died: its calls lose their live cues (the controller is told); a new one starts."""
        assert self._loop is not None
        with contextlib.suppress(Exception):
            self._loop.remove_reader(worker.conn.fileno())
        if self._stopping:
            return
        log.error("cue_worker_died", worker=worker.index, error=why, calls=len(worker.calls))
        for cid in list(worker.calls):
            self._stop_call(cid, ())
            self._submit(inp.CuesFailed(call_id=cid, error=f"cue worker {worker.index} died: {why}"))
        with contextlib.suppress(Exception):
            worker.conn.close()
        self.workers[worker.index] = self._spawn(worker.index)


def cue_policy(config: Config) -> CuePolicy | None:
    """The controller's part of [analytics] and [qa]; None when both are off."""
    a, q = config.analytics, config.qa
    if not a.enabled and not q.enabled:
        return None
    return CuePolicy(
        live=a.enabled,
        channels=tuple(a.channels),
        while_queued=a.while_queued,
        actions={k: tuple(v) for k, v in a.actions.items()},
        default_actions=tuple(a.default_actions),
        agitation_level=a.agitation_level,
        agitation_clear=a.agitation_clear,
        agitation_min_interval=a.agitation_min_interval,
        agitation_actions=tuple(a.agitation_actions),
        priority_boost=a.priority_boost,
        qa=q.enabled,
    )


def build_cues(
    config: Config, submit: Callable[[inp.Input], None], publish: Callable[[object], None], endpoint: Any
) -> CueService | None:
    """The one wiring point of live cues: None unless [analytics] enabled."""
    if not config.analytics.enabled:
        return None
    return CueService(
        config.analytics,
        config.recognizers(),
        submit,
        tap=lambda leg, path, paused: endpoint.tap(leg, path, paused=paused),
        pause_tap=endpoint.pause_tap,
        untap=endpoint.untap,
        publish=publish,
    )
