"""Agitation from prosody: loudness, pitch level and range, and speaking rate, each against
the speaker's own baseline. A pure core: numpy in, scores out; time is an argument.

This measures *arousal* (how worked-up a voice sounds), not emotion: an excited happy caller
scores as high as an angry one. The docs (docs/analytics.md) say so, and the event is called
``call.agitation`` for that reason.

Per 20 ms frame of 8 kHz audio: the level (RMS dBFS), whether it is voiced (level over
``voice_db``), and its pitch (normalized autocorrelation over a 40 ms window, 70-400 Hz,
accepted when the peak is over ``pitch_clarity``). Per ``window`` seconds of audio, if enough
of it was voiced: the loudness (mean level of voiced frames), the pitch level (median, in
semitones re 100 Hz) and range (10th-90th percentile spread, semitones), and the speaking rate
(syllable nuclei: peaks of the smoothed level envelope, per voiced second). The first
``baseline_seconds`` of voiced speech make the baseline; each later window is compared with
it and the four differences, each scaled by what "clearly agitated" means for it, make a 0-1
score through a logistic function.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RATE = 8000  # Hz: the call clock
FRAME = 160  # samples: 20 ms
FRAME_S = FRAME / RATE
WINDOW = 320  # samples: the 40 ms pitch window (ends at the frame's end)
MIN_LAG, MAX_LAG = RATE // 400, RATE // 70  # pitch 70-400 Hz


@dataclass(frozen=True, slots=True, kw_only=True)
class ProsodyConfig:
    window: float = 3.0  # seconds of audio per score
    baseline_seconds: float = 6.0  # seconds of *voiced* speech that make the speaker's baseline
    min_voiced: float = 0.8  # seconds of voiced audio a window needs to be scored
    voice_db: float = -40.0  # dBFS: a frame at or above it is speech
    pitch_clarity: float = 0.45  # normalized autocorrelation peak that counts as a pitch
    # what "clearly agitated" means for each feature (a difference of this much scores 1.0)
    loud_db: float = 6.0  # dB louder than the baseline
    pitch_st: float = 3.0  # semitones higher
    range_st: float = 3.0  # semitones wider pitch range
    rate_ratio: float = 1.25  # times faster
    weights: tuple[float, float, float, float] = (0.35, 0.3, 0.1, 0.25)  # loud, pitch, range, rate
    steepness: float = 5.0  # of the logistic: score = 1 / (1 + exp(-steepness * (sum - 0.5)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Features:
    loudness_db: float  # mean level of voiced frames, dBFS
    pitch_st: float | None  # median pitch, semitones re 100 Hz (None: too few pitched frames)
    range_st: float | None  # 10th-90th percentile pitch spread, semitones
    rate: float  # syllable nuclei per voiced second
    voiced: float  # seconds of voiced audio these come from


@dataclass(frozen=True, slots=True, kw_only=True)
class AgitationScore:
    at: float  # seconds (the caller's audio clock): end of the window
    start: float  # seconds: start of the window
    score: float  # 0..1; about 0.1 for the speaker's usual voice
    features: Features  # of this window
    deltas: tuple[float, float, float, float]  # normalized differences: loud, pitch, range, rate


def frame_levels(frames: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """RMS dBFS of each row of int16 frames (n, FRAME); -120 for digital silence."""
    x = frames.astype(np.float64) / 32768.0
    rms = np.sqrt(np.mean(x * x, axis=1))
    with np.errstate(divide="ignore"):
        db = 20.0 * np.log10(rms)
    out: np.ndarray[Any, Any] = np.maximum(db, -120.0)
    return out


def frame_pitches(windows: np.ndarray[Any, Any], clarity: float) -> np.ndarray[Any, Any]:
    """Pitch in Hz of each row of int16 windows (n, WINDOW); NaN where unvoiced or unclear.
    Normalized autocorrelation by FFT, the best lag in 70-400 Hz with parabolic refinement."""
    if windows.shape[0] == 0:
        return np.zeros(0)
    x = windows.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    x = x * np.hanning(x.shape[1])
    n = 1 << (2 * x.shape[1] - 1).bit_length()
    spec = np.fft.rfft(x, n, axis=1)
    ac = np.fft.irfft(spec * np.conj(spec), n, axis=1)[:, : MAX_LAG + 2]
    energy = ac[:, 0:1]
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = ac / np.where(energy > 0, energy, np.inf)
    band = norm[:, MIN_LAG : MAX_LAG + 1]
    best = np.argmax(band, axis=1)
    peak = band[np.arange(band.shape[0]), best]
    lag = (best + MIN_LAG).astype(np.float64)
    # parabolic interpolation around the peak (inside the band)
    inner = (best > 0) & (best < band.shape[1] - 1)
    idx = np.arange(band.shape[0])[inner]
    b = best[inner]
    y0, y1, y2 = band[idx, b - 1], band[idx, b], band[idx, b + 1]
    denom = y0 - 2 * y1 + y2
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(np.abs(denom) > 1e-12, 0.5 * (y0 - y2) / denom, 0.0)
    lag[inner] += np.clip(shift, -0.5, 0.5)
    hz = RATE / lag
    return np.where(peak >= clarity, hz, np.nan)


def syllable_peaks(levels_db: np.ndarray[Any, Any], voiced: np.ndarray[Any, Any]) -> int:
    """Syllable nuclei: local maxima of the 3-frame smoothed level that rise at least 3 dB over
    the lowest point since the previous peak and are at least 100 ms apart, in voiced frames."""
    if levels_db.size < 3:
        return 0
    smooth = np.convolve(levels_db, np.ones(3) / 3.0, mode="same")
    count, last, low = 0, -10, float("inf")
    for i in range(1, smooth.size - 1):
        v = float(smooth[i])
        low = min(low, v)
        if voiced[i] and v >= smooth[i - 1] and v > smooth[i + 1] and v - low >= 3.0 and i - last >= 5:
            count += 1
            last, low = i, v
    return count


def features_of(levels: np.ndarray[Any, Any], pitches: np.ndarray[Any, Any], voice_db: float) -> Features:
    voiced = levels >= voice_db
    seconds = float(voiced.sum()) * FRAME_S
    loud = float(levels[voiced].mean()) if voiced.any() else -120.0
    hz = pitches[voiced & ~np.isnan(pitches)]
    pitch = rng = None
    if hz.size >= 10:
        st = 12.0 * np.log2(hz / 100.0)
        pitch = float(np.median(st))
        rng = float(np.percentile(st, 90) - np.percentile(st, 10))
    rate = syllable_peaks(levels, voiced) / seconds if seconds > 0 else 0.0
    return Features(loudness_db=loud, pitch_st=pitch, range_st=rng, rate=rate, voiced=seconds)


def score_of(window: Features, base: Features, cfg: ProsodyConfig) -> tuple[float, tuple[float, ...]]:
    """The 0-1 agitation score of ``window`` against ``base``, and the normalized deltas."""
    d_loud = (window.loudness_db - base.loudness_db) / cfg.loud_db
    d_pitch = (
        (window.pitch_st - base.pitch_st) / cfg.pitch_st
        if window.pitch_st is not None and base.pitch_st is not None
        else 0.0
    )
    d_range = (
        (window.range_st - base.range_st) / cfg.range_st
        if window.range_st is not None and base.range_st is not None
        else 0.0
    )
    d_rate = (
        math.log(window.rate / base.rate) / math.log(cfg.rate_ratio)
        if window.rate > 0 and base.rate > 0
        else 0.0
    )
    deltas = tuple(max(-1.5, min(1.5, d)) for d in (d_loud, d_pitch, d_range, d_rate))
    total = sum(w * d for w, d in zip(cfg.weights, deltas, strict=True))
    score = 1.0 / (1.0 + math.exp(-cfg.steepness * (total - 0.5)))
    return score, deltas


@dataclass(slots=True)
class AgitationMeter:
    """One speaker's agitation over time. ``feed(pcm, at)``: 8 kHz int16 audio whose first
    sample is at ``at`` seconds on the speaker's clock (contiguous calls continue the clock;
    ``at`` may jump forward over a gap). Returns the scores of the windows completed."""

    config: ProsodyConfig = field(default_factory=ProsodyConfig)
    baseline: Features | None = None
    _carry: np.ndarray[Any, Any] = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    _prev_tail: np.ndarray[Any, Any] = field(default_factory=lambda: np.zeros(WINDOW - FRAME, dtype=np.int16))
    _clock: float | None = None  # seconds: time of the next sample to arrive
    _levels: list[np.ndarray[Any, Any]] = field(default_factory=list)
    _pitches: list[np.ndarray[Any, Any]] = field(default_factory=list)
    _frames: int = 0  # frames in the current window
    _window_start: float = 0.0
    _base_levels: list[np.ndarray[Any, Any]] = field(default_factory=list)
    _base_pitches: list[np.ndarray[Any, Any]] = field(default_factory=list)
    _base_voiced: float = 0.0

    def reset_clock(self) -> None:
        """A gap (e.g. a secure step): the next feed starts a new window; the baseline stays."""
        self._clock = None
        self._carry = np.zeros(0, dtype=np.int16)
        self._prev_tail = np.zeros(WINDOW - FRAME, dtype=np.int16)
        self._levels, self._pitches, self._frames = [], [], 0

    def feed(self, pcm: np.ndarray[Any, Any], at: float) -> list[AgitationScore]:
        if self._clock is None or at > self._clock + 0.5:
            if self._clock is not None:
                self.reset_clock()
            self._clock = at
            self._window_start = at
        x = np.concatenate([self._carry, np.asarray(pcm, dtype=np.int16)])
        n = x.size // FRAME
        self._carry = x[n * FRAME :]
        self._clock += pcm.size / RATE
        if n == 0:
            return []
        frames = x[: n * FRAME].reshape(n, FRAME)
        ext = np.concatenate([self._prev_tail, x[: n * FRAME]])
        self._prev_tail = ext[-(WINDOW - FRAME) :]
        idx = np.arange(n)[:, None] * FRAME + np.arange(WINDOW)[None, :]
        windows = ext[idx]
        levels = frame_levels(frames)
        pitches = frame_pitches(windows, self.config.pitch_clarity)
        return self._take(levels, pitches)

    def _take(self, levels: np.ndarray[Any, Any], pitches: np.ndarray[Any, Any]) -> list[AgitationScore]:
        cfg = self.config
        out: list[AgitationScore] = []
        per_window = max(1, round(cfg.window / FRAME_S))
        i = 0
        while i < levels.size:
            take = min(per_window - self._frames, levels.size - i)
            lv, pv = levels[i : i + take], pitches[i : i + take]
            if self.baseline is None:
                self._base_levels.append(lv)
                self._base_pitches.append(pv)
                self._base_voiced += float((lv >= cfg.voice_db).sum()) * FRAME_S
                if self._base_voiced >= cfg.baseline_seconds:
                    self.baseline = features_of(
                        np.concatenate(self._base_levels), np.concatenate(self._base_pitches), cfg.voice_db
                    )
                    self._base_levels, self._base_pitches = [], []
            self._levels.append(lv)
            self._pitches.append(pv)
            self._frames += take
            i += take
            if self._frames >= per_window:
                end = self._window_start + self._frames * FRAME_S
                scored = self._score(self._window_start, end)
                if scored is not None:
                    out.append(scored)
                self._levels, self._pitches, self._frames = [], [], 0
                self._window_start = end
        return out

    def _score(self, start: float, end: float) -> AgitationScore | None:
        base = self.baseline
        if base is None:
            return None
        feats = features_of(np.concatenate(self._levels), np.concatenate(self._pitches), self.config.voice_db)
        if feats.voiced < self.config.min_voiced:
            return None
        score, deltas = score_of(feats, base, self.config)
        d = (deltas[0], deltas[1], deltas[2], deltas[3])
        return AgitationScore(at=end, start=start, score=score, features=feats, deltas=d)


def agitation_curve(
    pcm: np.ndarray[Any, Any],
    config: ProsodyConfig | None = None,
    *,
    gaps: Iterable[tuple[float, float]] = (),
) -> list[AgitationScore]:
    """The scores of a whole recorded channel (8 kHz int16), e.g. for QA. ``gaps``:
    (start, end) seconds where the audio is not contiguous (a paused recording joins there)."""
    meter = AgitationMeter(config or ProsodyConfig())
    cuts = sorted({round(s * RATE) for s, _ in gaps if 0 < s * RATE < pcm.size})
    out: list[AgitationScore] = []
    prev = 0
    for cut in [*cuts, pcm.size]:
        if prev > 0:
            meter.reset_clock()
        out += meter.feed(pcm[prev:cut], prev / RATE)
        prev = cut
    return out
