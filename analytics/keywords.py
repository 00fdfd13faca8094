"""Keyword lists: configured phrases per language and category, as the spotters want them.

Pure: parsing, the pocketsphinx keyword-spotting file, and the choice among overlapping
hits. ``[analytics.keywords.en] complaint = ["complaint", "file a complaint /1e-30/"]``: a
phrase may end with its own detection threshold between slashes (pocketsphinx's kws syntax);
without one it gets :func:`default_threshold` by its length (short phrases need a stricter
threshold: they cause most false alarms, platform notes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

_THRESHOLD = re.compile(r"^(?P<phrase>.*?)\s*/(?P<t>[0-9.eE+-]+)/\s*$")


class KeywordError(ValueError):
    """A keyword list is wrong; the message says which phrase and why."""

    code = "analytics.keywords"


@dataclass(frozen=True, slots=True, kw_only=True)
class Phrase:
    text: str  # lower case, single spaces
    category: str
    threshold: float  # pocketsphinx kws threshold (smaller = stricter); vosk ignores it

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.text.split())


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """A phrase heard. Times are seconds on the stream's audio clock."""

    phrase: str
    category: str
    confidence: float  # 0..1
    start: float
    end: float


def default_threshold(words: int) -> float:
    """Measured on synthetic telephone speech (docs/analytics.md): one word 1e-20, two 1e-25,
    three or more 1e-30."""
    return {1: 1e-20, 2: 1e-25}.get(words, 1e-30)


def parse_phrases(spec: Mapping[str, Sequence[str]]) -> list[Phrase]:
    """``{category: [phrase, ...]}`` -> phrases; the same phrase in two categories is an error."""
    seen: dict[str, str] = {}
    out: list[Phrase] = []
    for category, phrases in spec.items():
        for raw in phrases:
            m = _THRESHOLD.match(raw)
            if m is None and "/" in raw:
                raise KeywordError(f"phrase {raw!r}: write a threshold as 'phrase /1e-25/'")
            text = " ".join((m.group("phrase") if m else raw).lower().split())
            if not text:
                raise KeywordError(f"category {category!r} has an empty phrase")
            if text in seen and seen[text] != category:
                raise KeywordError(f"phrase {text!r} is in both {seen[text]!r} and {category!r}")
            seen[text] = category
            try:
                threshold = float(m.group("t")) if m else default_threshold(len(text.split()))
            except ValueError:
                raise KeywordError(f"phrase {raw!r}: the threshold is not a number") from None
            out.append(Phrase(text=text, category=category, threshold=threshold))
    return out


def kws_lines(phrases: Iterable[Phrase]) -> str:
    """The pocketsphinx keyword file: one ``phrase /threshold/`` per line."""
    return "".join(f"{p.text} /{p.threshold:.0e}/\n" for p in phrases)


def best_hits(hits: Sequence[Hit]) -> list[Hit]:
    """Overlapping hits of one category are one cue: keep the longest phrase ("file a
    complaint" over "complaint"), then the most confident."""
    out: list[Hit] = []
    for h in sorted(hits, key=lambda h: (-len(h.phrase.split()), -h.confidence)):
        if any(o.category == h.category and h.start < o.end and o.start < h.end for o in out):
            continue
        out.append(h)
    return sorted(out, key=lambda h: h.end)


def find_phrases(words: Sequence[tuple[str, float, float, float]], phrases: Iterable[Phrase]) -> list[Hit]:
    """Phrases in a decoded word sequence ``(word, start, end, confidence)`` (a grammar
    recognizer's result, or a transcript): consecutive words equal to the phrase's. The
    confidence of a hit is its least confident word's."""
    seq = [w[0].lower() for w in words]
    hits: list[Hit] = []
    for p in phrases:
        n = len(p.words)
        for i in range(len(seq) - n + 1):
            if tuple(seq[i : i + n]) == p.words:
                part = words[i : i + n]
                hits.append(
                    Hit(
                        phrase=p.text,
                        category=p.category,
                        confidence=min(w[3] for w in part),
                        start=part[0][1],
                        end=part[-1][2],
                    )
                )
    return best_hits(hits)
