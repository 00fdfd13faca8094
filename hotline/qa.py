"""Post-call transcripts and QA: a pool of low-priority worker processes, the SQLite FTS5
store, and ``hotline qa search``.

After each call recording is merged, the controller asks for ``AnalyzeRecording``; a worker
process (``nice`` +10 by default, so the kernel always serves the live calls first; spawned,
never forked from the pjsua2 process) transcribes each channel with word timings (the
recognizer of the call's language), scores the caller's agitation over the call and the
sentiment of their words, computes the QA flags (analytics/qa.py), stores the transcript in
SQLite with full-text search, and writes ``<call>.qa.json`` next to the recording with a
checksum. The result comes back as ``QaDone``: the controller publishes ``qa.ready`` and keeps
the sentiment in the caller's profile.

Secure gaps stay gaps: the recorders are stopped during a secure step (nothing of it is in
the file, so nothing of it can be transcribed); the sidecar marks where each gap joins.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import sqlite3
import sys
import threading
import time
import wave
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from analytics.keywords import parse_phrases
from analytics.prosody import ProsodyConfig, agitation_curve, frame_levels
from analytics.qa import QaSettings, combine_sentiment, gap_offsets, qa_flags, speech_spans
from calls import effects as fx
from calls import inputs as inp

from .config import Config

log = structlog.get_logger("qa")

SCHEMA = """
CREATE TABLE IF NOT EXISTS qa_calls (
    recording       TEXT PRIMARY KEY,      -- file name of the WAV (<call_id>.wav, <call_id>-2.wav)
    call_id         TEXT NOT NULL,
    started_at      TEXT,                  -- ISO 8601 UTC: when the recording started
    queue           TEXT,
    agent_id        TEXT,
    language        TEXT NOT NULL,
    recognizer      TEXT NOT NULL,         -- "pocketsphinx" or "vosk:<model>"
    seconds         REAL NOT NULL,         -- length of the recording
    flags           TEXT NOT NULL,         -- JSON: the QA flags
    sentiment       REAL,                  -- -1..1
    sentiment_label TEXT,
    sidecar         TEXT NOT NULL,         -- path of <call>.qa.json
    sha256          TEXT NOT NULL,         -- its content checksum
    created_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS qa_calls_by_time ON qa_calls (started_at);
CREATE VIRTUAL TABLE IF NOT EXISTS qa_text USING fts5(
    text,                                  -- one talk span of one channel, as transcribed
    recording UNINDEXED, call_id UNINDEXED, channel UNINDEXED,
    start UNINDEXED, end UNINDEXED,        -- seconds into the recording
    words UNINDEXED                        -- JSON [[word, start, end, confidence], ...]
);
"""


class QaError(Exception):
    code = "qa.error"


# ------------------------------------------------------------------ the worker side
@dataclass(frozen=True, slots=True)
class QaJob:
    """One recording to analyse; picklable (it crosses into a worker process)."""

    call_id: str
    wav: str
    sidecar: str  # the recording's JSON sidecar (started, gaps, sha256)
    language: str
    recognizer: str | None  # engine spec for the language; None: no transcript (flags from audio only)
    queue: str | None
    agent_id: str | None
    database: str
    keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)  # category -> phrases
    script: dict[str, tuple[str, ...]] = field(default_factory=dict)  # the queue's required phrases
    lexicon: str | None = None  # VADER-format lexicon file; "vader" = VADER's English one
    holds: tuple[tuple[float, float], ...] = ()
    cues: tuple[dict[str, Any], ...] = ()
    settings: QaSettings = field(default_factory=QaSettings)
    prosody: ProsodyConfig = field(default_factory=ProsodyConfig)


_TRANSCRIBERS: dict[str, Any] = {}
_VOSK_MODELS: dict[str, Any] = {}
_SENTIMENT: dict[str, Any] = {}


def _init_worker(nice: int, idle: bool = True) -> None:
    """A QA process yields to everything else: ``nice`` lowers its share, and SCHED_IDLE (Linux)
    runs it only when a core has nothing else to do. Measured (bench/analytics.py --qa-load 2):
    with nice 10 alone, live streams on the same cores still fell up to 0.4 s behind."""
    with contextlib.suppress(OSError):
        os.nice(nice)
    if idle and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    # a pool worker waits on its job queue forever if the server is killed (measured: it
    # outlived a SIGKILLed parent); leave when the parent is gone
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="qa-parent-watch", daemon=True).start()


def _read_stereo(path: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], int]:
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise QaError(f"{path}: expected 16-bit PCM")
        rate, channels = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if rate != 8000:
        import soxr  # no type stubs: see [[tool.mypy.overrides]]

        x = soxr.resample(x.reshape(-1, channels), rate, 8000).astype("<i2").reshape(-1)
    if channels == 1:
        return x, np.zeros_like(x), 8000
    x = x.reshape(-1, channels)
    return np.ascontiguousarray(x[:, 0]), np.ascontiguousarray(x[:, 1]), 8000


def _levels(pcm: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    n = pcm.size // 160
    return frame_levels(pcm[: n * 160].reshape(n, 160)) if n else np.zeros(0)


def _transcribe(
    spec: str, pcm: np.ndarray[Any, Any], spans: Sequence[tuple[float, float]]
) -> list[tuple[str, float, float, float]]:
    from .recognizers import transcriber_for

    if spec not in _TRANSCRIBERS:
        _TRANSCRIBERS[spec] = transcriber_for(spec, _VOSK_MODELS)
    tr = _TRANSCRIBERS[spec]
    words: list[tuple[str, float, float, float]] = []
    pad = 0.25
    merged: list[list[float]] = []
    for a, b in spans:  # each talk span with a little air around it, overlapping ones joined
        a, b = max(0.0, a - pad), min(pcm.size / 8000, b + pad)
        if merged and a <= merged[-1][1]:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    for a, b in merged:
        chunk = pcm[int(a * 8000) : int(b * 8000)]
        words += [
            (w.text, round(w.start, 2), round(w.end, 2), round(w.confidence, 3))
            for w in tr.transcribe(chunk, a)
        ]
    return words


def _sentiment(lexicon: str | None, text: str) -> float | None:
    if lexicon is None or not text.strip():
        return None
    if lexicon not in _SENTIMENT:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        _SENTIMENT[lexicon] = (
            SentimentIntensityAnalyzer()
            if lexicon == "vader"
            else SentimentIntensityAnalyzer(lexicon_file=lexicon)
        )
    return float(_SENTIMENT[lexicon].polarity_scores(text)["compound"])


def canonical_sha256(body: Mapping[str, Any]) -> str:
    """The checksum of a qa.json: sha256 of its content without the ``sha256`` key, as compact
    sorted JSON (``json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``)."""
    data = {k: v for k, v in body.items() if k != "sha256"}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def open_db(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=15.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    return conn


def analyze(job: QaJob) -> dict[str, Any]:
    """In a worker process: transcribe, score and store one recording; returns QaDone's fields."""
    t0 = time.process_time()
    caller, agent, _rate = _read_stereo(job.wav)
    duration = caller.size / 8000
    side = json.loads(Path(job.sidecar).read_text()) if job.sidecar and Path(job.sidecar).is_file() else {}
    gaps = gap_offsets(side["started"], side.get("gaps", [])) if side.get("started") else []
    s = job.settings
    caller_spans = speech_spans(_levels(caller), s)
    agent_spans = speech_spans(_levels(agent), s)
    caller_words = _transcribe(job.recognizer, caller, caller_spans) if job.recognizer else []
    agent_words = _transcribe(job.recognizer, agent, agent_spans) if job.recognizer else []
    curve = [(a.at, a.score) for a in agitation_curve(caller, job.prosody, gaps=[(g, g) for g in gaps])]
    flags = qa_flags(
        duration=duration,
        caller_spans=caller_spans,
        agent_spans=agent_spans,
        caller_words=caller_words,
        agent_words=agent_words,
        phrases=parse_phrases(job.keywords),
        script=job.script,
        holds=job.holds,
        gaps=gaps,
        agitation=curve,
        live_cues=job.cues,
        settings=s,
    )
    caller_text = " ".join(w[0] for w in caller_words)
    sentiment = combine_sentiment(_sentiment(job.lexicon, caller_text), flags["agitation"]["mean"])
    name = Path(job.wav).name
    qa_path = Path(job.wav).with_suffix(".qa.json")
    now_iso = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    body: dict[str, Any] = {
        "call_id": job.call_id,
        "recording": name,
        "recording_sha256": side.get("sha256", ""),
        "started": side.get("started"),
        "language": job.language,
        "recognizer": job.recognizer or "",
        "queue": job.queue,
        "agent_id": job.agent_id,
        "created_at": now_iso,
        "flags": flags,
        "sentiment": sentiment,
        "transcript": {
            "caller": [list(w) for w in caller_words],
            "agent": [list(w) for w in agent_words],
        },
    }
    body["sha256"] = canonical_sha256(body)
    tmp = qa_path.with_suffix(".partial")
    tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False))
    tmp.replace(qa_path)
    conn = open_db(job.database)
    try:
        with conn:
            conn.execute("DELETE FROM qa_text WHERE recording = ?", (name,))
            conn.execute(
                "INSERT OR REPLACE INTO qa_calls (recording, call_id, started_at, queue, agent_id, language,"
                " recognizer, seconds, flags, sentiment, sentiment_label, sidecar, sha256, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, job.call_id, side.get("started"), job.queue, job.agent_id, job.language,
                 job.recognizer or "", duration, json.dumps(flags), sentiment["score"], sentiment["label"],
                 str(qa_path.resolve()), body["sha256"], now_iso),
            )  # fmt: skip
            for channel, spans, words in (
                ("caller", caller_spans, caller_words),
                ("agent", agent_spans, agent_words),
            ):
                for row in _segments(spans, words):
                    conn.execute(
                        "INSERT INTO qa_text (text, recording, call_id, channel, start, end, words)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (row[2], name, job.call_id, channel, row[0], row[1], json.dumps(row[3])),
                    )
    finally:
        conn.close()
    return {
        "sidecar": str(qa_path.resolve()),
        "sha256": body["sha256"],
        "flags": flags,
        "sentiment": sentiment,
        "words": len(caller_words) + len(agent_words),
        "cpu_seconds": time.process_time() - t0,
        "audio_seconds": duration,
    }


def _segments(
    spans: Sequence[tuple[float, float]], words: Sequence[tuple[str, float, float, float]]
) -> list[tuple[float, float, str, list[list[Any]]]]:
    """Words grouped by the talk span they fall in (one searchable row per span)."""
    out: list[tuple[float, float, str, list[list[Any]]]] = []
    rest = list(words)
    for a, b in spans:
        inside = [w for w in rest if w[1] < b + 0.3 and w[2] > a - 0.3]
        if inside:
            rest = [w for w in rest if w not in inside]
            out.append((round(a, 2), round(b, 2), " ".join(w[0] for w in inside), [list(w) for w in inside]))
    if rest:
        out.append((rest[0][1], rest[-1][2], " ".join(w[0] for w in rest), [list(w) for w in rest]))
    return out


# ------------------------------------------------------------------ the server side
class QaPool:
    """The worker processes and the jobs in flight; results come back as QaDone inputs."""

    def __init__(
        self,
        *,
        workers: int,
        nice: int,
        database: Path,
        recognizers: Mapping[str, str],
        keywords: Mapping[str, Mapping[str, Sequence[str]]],
        scripts: Mapping[str, Mapping[str, Sequence[str]]],
        lexicons: Mapping[str, str],
        settings: QaSettings,
        prosody: ProsodyConfig,
        submit: Callable[[inp.Input], None],
        spawn: Callable[[Any], None],
        idle: bool = True,
    ) -> None:
        self.workers, self.nice, self.database = workers, nice, database
        self.recognizers, self.keywords, self.scripts = dict(recognizers), keywords, scripts
        self.lexicons = {"en": "vader", **dict(lexicons)}
        self.settings, self.prosody = settings, prosody
        self.idle = idle
        self._submit, self._spawn = submit, spawn
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.pending = 0

    def start(self) -> None:
        open_db(self.database).close()
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max(1, self.workers),
            mp_context=multiprocessing.get_context("spawn"),  # never fork a process that runs pjsua2
            initializer=_init_worker,
            initargs=(self.nice, self.idle),
        )

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def job(self, e: fx.AnalyzeRecording) -> QaJob:
        lang = e.language
        return QaJob(
            call_id=e.call_id,
            wav=str(e.wav),
            sidecar=str(e.sidecar),
            language=lang,
            recognizer=self.recognizers.get(lang),
            queue=e.queue,
            agent_id=e.agent_id,
            database=str(self.database),
            keywords={c: tuple(p) for c, p in self.keywords.get(lang, {}).items()},
            script={k: tuple(v) for k, v in self.scripts.get(e.queue or "", {}).items()},
            lexicon=self.lexicons.get(lang),
            holds=tuple(e.holds),
            cues=tuple(dict(c) for c in e.cues),
            settings=self.settings,
            prosody=self.prosody,
        )

    def run(self, e: fx.AnalyzeRecording) -> None:
        self._spawn(self._analyze(e))

    async def _analyze(self, e: fx.AnalyzeRecording) -> None:
        job = self.job(e)
        self.pending += 1
        try:
            if self._pool is None:
                raise QaError("the QA pool is not running")
            result = await asyncio.get_running_loop().run_in_executor(self._pool, analyze, job)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("qa_failed", call_id=e.call_id, recording=str(e.wav), error=error)
            self._submit(inp.QaDone(call_id=e.call_id, number=e.number, wav=str(e.wav), error=error))
            return
        finally:
            self.pending -= 1
        log.info(
            "qa_done",
            call_id=e.call_id,
            words=result["words"],
            rtf=round(result["cpu_seconds"] / max(result["audio_seconds"], 1e-6), 3),
            flagged=result["flags"]["flagged"],
        )
        self._submit(
            inp.QaDone(
                call_id=e.call_id,
                number=e.number,
                wav=str(e.wav),
                sidecar=result["sidecar"],
                sha256=result["sha256"],
                language=job.language,
                flags=result["flags"],
                sentiment=result["sentiment"],
                words=result["words"],
                wall=time.time(),
            )
        )


# --------------------------------------------------------------------------- search
def search(
    database: str | Path,
    query: str,
    *,
    since: str | None = None,
    until: str | None = None,
    queue: str | None = None,
    agent: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Transcript spans matching an FTS5 query, oldest call first, each with the time of the
    first matching word (seconds into the recording)."""
    conn = open_db(database)
    conn.row_factory = sqlite3.Row
    sql = (
        "SELECT t.call_id, t.recording, t.channel, t.start, t.end, t.words,"
        " snippet(qa_text, 0, '[', ']', '...', 12) AS snippet, c.started_at, c.queue, c.agent_id"
        " FROM qa_text t JOIN qa_calls c ON c.recording = t.recording WHERE qa_text MATCH ?"
    )
    args: list[Any] = [query]
    for clause, value in (("c.started_at >= ?", since), ("c.started_at < ?", until), ("c.queue = ?", queue),
                          ("c.agent_id = ?", agent)):  # fmt: skip
        if value:
            sql += f" AND {clause}"
            args.append(value)
    sql += " ORDER BY c.started_at, t.recording, t.start LIMIT ?"
    args.append(limit)
    try:
        rows = conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        raise QaError(
            f'bad search {query!r}: {exc} (FTS5 syntax: words, "a phrase", a OR b, a NOT b)'
        ) from None
    finally:
        conn.close()
    terms = {
        t.strip('"').lower() for t in query.replace('"', " ").split() if t.upper() not in ("AND", "OR", "NOT")
    }
    out = []
    for r in rows:
        words = json.loads(r["words"])
        at = next((w[1] for w in words if str(w[0]).lower() in terms), r["start"])
        out.append(
            {
                "call_id": r["call_id"],
                "recording": r["recording"],
                "started_at": r["started_at"],
                "queue": r["queue"],
                "agent_id": r["agent_id"],
                "channel": r["channel"],
                "offset": at,
                "text": r["snippet"],
            }
        )
    return out


def _iso(value: str) -> str:
    """A --from/--to value (2026-12-01 or 2026-12-01T08:00) as the stored ISO UTC form."""
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise QaError(f"{value!r} is not a date like 2026-12-01 or 2026-12-01T08:00") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cli_main(argv: Sequence[str]) -> int:
    """``hotline qa search QUERY [--from --to --queue --agent --json]`` and ``hotline qa show CALL``."""
    from .config import ConfigError, load_config

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default="config.toml", help="config file (default: ./config.toml)")
    parser = argparse.ArgumentParser(prog="hotline qa", description="call transcripts and QA flags")
    sub = parser.add_subparsers(dest="command", required=True)
    find = sub.add_parser("search", parents=[common], help="calls whose transcript matches (FTS5 syntax)")
    find.add_argument("query", help='words, "a phrase", a OR b')
    find.add_argument("--from", dest="since", help="calls recorded at or after (ISO date/time, UTC)")
    find.add_argument("--to", dest="until", help="calls recorded before")
    find.add_argument("--queue")
    find.add_argument("--agent")
    find.add_argument("--json", action="store_true", help="one JSON object per line")
    show = sub.add_parser("show", parents=[common], help="a call's QA sidecar (flags, sentiment, transcript)")
    show.add_argument("call_id")
    args = parser.parse_args(list(argv))
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    db = config.path(config.storage.database)
    if args.command == "show":
        conn = open_db(db)
        try:
            rows = conn.execute(
                "SELECT sidecar FROM qa_calls WHERE call_id = ? ORDER BY recording", (args.call_id,)
            ).fetchall()
        finally:
            conn.close()
        if not rows:
            print(f"hotline: no QA for call {args.call_id}", file=sys.stderr)
            return 1
        for (path,) in rows:
            print(Path(path).read_text())
        return 0
    try:
        hits = search(
            db,
            args.query,
            since=_iso(args.since) if args.since else None,
            until=_iso(args.until) if args.until else None,
            queue=args.queue,
            agent=args.agent,
        )
    except QaError as exc:
        print(f"hotline: {exc.code}: {exc}", file=sys.stderr)
        return 2
    for h in hits:
        if args.json:
            print(json.dumps(h, ensure_ascii=False))
        else:
            print(f"{h['started_at'] or '-'}  {h['call_id']}  {h['queue'] or '-'}  {h['agent_id'] or '-'}  "
                  f"{h['channel']:6} {h['offset']:7.2f}s  {h['text']}")  # fmt: skip
    if not hits:
        print(f"hotline: no call matches {args.query!r}", file=sys.stderr)
        return 1
    return 0


def build_qa(
    config: Config, submit: Callable[[inp.Input], None], spawn: Callable[[Any], None]
) -> QaPool | None:
    """The one wiring point of post-call QA: None unless [qa] enabled."""
    q, a = config.qa, config.analytics
    if not q.enabled:
        return None
    return QaPool(
        workers=q.workers,
        nice=q.nice,
        database=config.path(config.storage.database),
        recognizers=config.recognizers(),
        keywords=a.keywords,
        scripts=q.scripts,
        lexicons={lang: str(config.path(p)) for lang, p in q.lexicons.items()},
        settings=QaSettings(
            silence_seconds=q.silence_seconds,
            overtalk_seconds=q.overtalk_seconds,
            agitation_level=a.agitation_level,
        ),
        prosody=ProsodyConfig(window=a.agitation_window, baseline_seconds=a.baseline_seconds),
        submit=submit,
        spawn=spawn,
        idle=q.idle,
    )
