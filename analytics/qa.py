"""Post-call QA: speech spans, flags and the call's sentiment, from a transcript. Pure.

Inputs are plain data the QA worker (hotline/qa.py) gets from the recording: per-frame levels
of each channel, the words transcribed (text, start, end, confidence; seconds into the
recording), the recording's secure gaps and hold times, the queue's script and the keyword
lists. Nothing here reads a file or a clock.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .keywords import Phrase, find_phrases

FRAME_S = 0.02
_WORD = re.compile(r"[\w']+")

Span = tuple[float, float]  # (start, end) seconds into the recording


@dataclass(frozen=True, slots=True, kw_only=True)
class QaSettings:
    voice_db: float = -40.0  # dBFS per 20 ms frame that counts as speech
    min_speech: float = 0.15  # seconds: shorter bursts (clicks) are not talk
    hangover: float = 0.4  # seconds: pauses shorter than this join two spans
    silence_seconds: float = 8.0  # both channels quiet longer than this is flagged
    overtalk_seconds: float = 1.0  # both talking at once longer than this counts
    agitation_level: float = 0.6  # a window at or over it counts as agitated


def speech_spans(levels_db: np.ndarray[Any, Any], s: QaSettings) -> list[Span]:
    """Talk spans of one channel from its 20 ms frame levels."""
    voiced = levels_db >= s.voice_db
    spans: list[Span] = []
    start: int | None = None
    last = -1
    gap = round(s.hangover / FRAME_S)
    for i, v in enumerate(voiced):
        if not v:
            continue
        if start is None:
            start = i
        elif i - last > gap:
            spans.append((start * FRAME_S, (last + 1) * FRAME_S))
            start = i
        last = i
    if start is not None:
        spans.append((start * FRAME_S, (last + 1) * FRAME_S))
    return [(a, b) for a, b in spans if b - a >= s.min_speech]


def _total(spans: Iterable[Span]) -> float:
    return sum(b - a for a, b in spans)


def _intersect(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _union(*groups: Sequence[Span]) -> list[Span]:
    spans = sorted(s for g in groups for s in g)
    out: list[list[float]] = []
    for a, b in spans:
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def silences(
    talk: Sequence[Span], duration: float, excluded: Sequence[Span], longer_than: float
) -> list[Span]:
    """Stretches where nobody talks for more than ``longer_than`` seconds, outside ``excluded``
    (hold): the start and end of the recording count (dead air after answering)."""
    quiet: list[Span] = []
    t = 0.0
    for a, b in [*_union(talk, excluded), (duration, duration)]:
        if a - t > longer_than:
            quiet.append((round(t, 2), round(a, 2)))
        t = max(t, b)
    return quiet


def gap_offsets(started: str, gaps: Iterable[Mapping[str, Any]]) -> list[float]:
    """Where each secure gap of a recording sits in it (seconds): the recorder stops during a
    gap, so a gap is a point in the file where two stretches of the call join. ``started`` and
    the gaps' ``from``/``to`` are ISO 8601 times (the recording sidecar)."""

    def t(iso: str) -> float:
        return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()

    out: list[float] = []
    skipped = 0.0
    t0 = t(started)
    for g in gaps:
        if not g.get("from"):
            continue
        a = t(str(g["from"]))
        b = t(str(g["to"])) if g.get("to") else a
        out.append(round(max(0.0, a - t0 - skipped), 3))
        skipped += max(0.0, b - a)
    return out


def missing_phrases(agent_text: str, script: Mapping[str, Sequence[str]]) -> list[str]:
    """Items of a queue's script the agent did not say (an item is said when any of its
    phrases appears in the agent's transcript, words in order)."""

    def norm(text: str) -> str:
        return f" {' '.join(_WORD.findall(text.lower()))} "

    said = norm(agent_text)
    return [item for item, phrases in script.items() if not any(norm(p) in said for p in phrases)]


def qa_flags(
    *,
    duration: float,
    caller_spans: Sequence[Span],
    agent_spans: Sequence[Span],
    caller_words: Sequence[tuple[str, float, float, float]],
    agent_words: Sequence[tuple[str, float, float, float]],
    phrases: Sequence[Phrase],
    script: Mapping[str, Sequence[str]],
    holds: Sequence[Span],
    gaps: Sequence[float],
    agitation: Sequence[tuple[float, float]],
    live_cues: Sequence[Mapping[str, Any]],
    settings: QaSettings,
) -> dict[str, Any]:
    """The QA flags of one recording (docs/analytics.md lists each)."""
    over = [s for s in _intersect(caller_spans, agent_spans) if s[1] - s[0] >= settings.overtalk_seconds]
    quiet = silences([*caller_spans, *agent_spans], duration, holds, settings.silence_seconds)
    hits = [
        {"channel": channel, "phrase": h.phrase, "category": h.category, "start": round(h.start, 2),
         "end": round(h.end, 2), "confidence": round(h.confidence, 3)}
        for channel, words in (("caller", caller_words), ("agent", agent_words))
        for h in find_phrases(words, phrases)
    ]  # fmt: skip
    scores = [s for _, s in agitation]
    agent_text = " ".join(w[0] for w in agent_words)
    missing = missing_phrases(agent_text, script)
    return {
        "duration": round(duration, 2),
        "talk_seconds": {"caller": round(_total(caller_spans), 2), "agent": round(_total(agent_spans), 2)},
        "silences": [{"start": a, "end": b, "seconds": round(b - a, 2)} for a, b in quiet],
        "overtalk": {"seconds": round(_total(over), 2), "count": len(over)},
        "hold_seconds": round(_total(holds), 2),
        "keywords": sorted(hits, key=lambda h: (h["start"], h["channel"])),
        "live_cues": [dict(c) for c in live_cues],
        "missing_phrases": missing,
        "secure_gaps": list(gaps),
        "agitation": {
            "curve": [[round(t, 2), round(s, 3)] for t, s in agitation],
            "peak": round(max(scores), 3) if scores else None,
            "mean": round(float(np.mean(scores)), 3) if scores else None,
            "agitated_windows": sum(s >= settings.agitation_level for s in scores),
        },
        "flagged": sorted(
            {
                *(["silence"] if quiet else []),
                *(["overtalk"] if over else []),
                *(["keyword"] if hits or live_cues else []),
                *(["missing_phrases"] if missing else []),
                *(["agitation"] if any(s >= settings.agitation_level for s in scores) else []),
            }
        ),
    }


def combine_sentiment(
    text_score: float | None, agitation_mean: float | None, *, weight: float = 0.3
) -> dict[str, Any]:
    """The call's sentiment: the lexicon score of the caller's words (-1..1) pulled down by
    their mean agitation above a calm 0.2 (arousal alone is not negative, so agitation only
    lowers a score, by at most ``weight``). Labels at +-0.05, as VADER's authors suggest."""
    text = 0.0 if text_score is None else text_score
    arousal = 0.0 if agitation_mean is None else max(0.0, (agitation_mean - 0.2) / 0.8)
    score = max(-1.0, min(1.0, text - weight * arousal))
    label = "positive" if score >= 0.05 else "negative" if score <= -0.05 else "neutral"
    return {
        "score": round(score, 3),
        "label": label,
        "text": None if text_score is None else round(text_score, 3),
        "agitation": None if agitation_mean is None else round(agitation_mean, 3),
    }


def trend(scores_newest_first: Sequence[float]) -> str:
    """ "better", "worse" or "steady": the last call against the mean of the ones before it
    (0.1 apart at least); "" with fewer than two calls."""
    if len(scores_newest_first) < 2:
        return ""
    last, before = scores_newest_first[0], float(np.mean(scores_newest_first[1:]))
    return "better" if last - before >= 0.1 else "worse" if before - last >= 0.1 else "steady"
