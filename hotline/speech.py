"""Speech input wiring: models, the overload governor, and one ear per call.

The audio path is record-and-tail (docs/speech.md): pjsua2 records the caller to a WAV on
tmpfs (our WAV writer flushes every 20 ms frame) and :class:`CallEar` polls the file from
the event loop, runs the endpointer on each 20 ms frame, and feeds the recognizer in a
worker thread. No Python runs on the media clock thread, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import structlog

import ivr
from alerts import Alert
from telephony import asr
from telephony.tail import WavTail

from .config import SpeechConfig

log = structlog.get_logger("speech")

FRAME_BYTES = 320  # 20 ms at 8 kHz, 16-bit mono
PRE_ROLL = 0.3  # seconds of audio before the detected start that go to the recognizer too
ROTATE_BYTES = 1_000_000  # ~62 s of 8 kHz audio: the next Listen starts a fresh ear file


def vocabulary_warnings(
    flows: Iterable[ivr.Flow], knows: Callable[[str, str], bool | None]
) -> list[ivr.Diagnostic]:
    """Phrases with words the flow's language model does not know, as file:line warnings.
    ``knows(language, word)`` is None when that language has no loaded model (not checked)."""
    out: list[ivr.Diagnostic] = []
    for flow in flows:
        for loc, phrase in ivr.spoken_phrases(flow):
            unknown = [w for w in phrase.split() if knows(flow.language, w) is False]
            if unknown:
                out.append(
                    ivr.Diagnostic(
                        loc,
                        "speech.unknown_word",
                        f"phrase '{phrase}': the {flow.language!r} model does not know "
                        f"{', '.join(repr(w) for w in unknown)}, so no caller can say it",
                        "use words the model knows (grammar words must be in its vocabulary), "
                        "or configure a model that has them: hotline models list --load",
                        severity="warning",
                    )
                )
    return out


class SpeechService:
    """The shared part: models (loaded once, in the background), the governor, the workers."""

    def __init__(
        self,
        config: SpeechConfig,
        publish: Callable[[object], None],
        on_change: Callable[[], None],
        *,
        registry: asr.ModelRegistry | None = None,
    ) -> None:
        self.config = config
        self.registry = registry or asr.ModelRegistry()
        self.statuses: dict[str, asr.ModelStatus] = {}
        self.governor = asr.AsrGovernor(
            asr.GovernorConfig(
                max_live=config.max_recognizers, max_rtf=config.max_rtf, clear_hold=config.clear_hold
            )
        )
        self.executor = concurrent.futures.ThreadPoolExecutor(config.workers, thread_name_prefix="asr")
        self.audio_dir = Path(config.audio_dir).expanduser()
        self._publish = publish
        self._on_change = on_change
        self._timer: asyncio.TimerHandle | None = None
        self.loading: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        try:
            self.audio_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # no tmpfs there: a disk folder works, a little slower
            fallback = Path(tempfile.gettempdir()) / "hotline-ears"
            log.warning(
                "speech_audio_dir_unusable",
                audio_dir=str(self.audio_dir),
                error=str(exc),
                using=str(fallback),
            )
            self.audio_dir = fallback
            self.audio_dir.mkdir(parents=True, exist_ok=True)
        self.loading = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        """Load every model off the loop (the Korean one takes 1.4-3 s and 500 MB)."""
        loop = asyncio.get_running_loop()
        for language, spec in self.config.models.items():
            status = await loop.run_in_executor(self.executor, self.registry.load, {language: spec})
            st = status[language]
            self.statuses[language] = st
            if st.state == "loaded":
                log.info(
                    "speech_model_loaded", language=language, path=st.path, seconds=round(st.load_seconds, 2)
                )
            else:
                log.warning("speech_model_unavailable", language=language, state=st.state, reason=st.reason)
                alert = st.alert()
                if alert is not None:
                    self._publish(alert)
            self._on_change()

    def stop(self) -> None:
        if self.loading is not None:
            self.loading.cancel()
        if self._timer is not None:
            self._timer.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ decisions
    def knows(self, language: str, word: str) -> bool | None:
        st = self.statuses.get(language)
        if st is None or st.state != "loaded":
            return None
        try:
            return bool(self.registry.model(language).vosk_model_find_word(word) >= 0)
        except asr.AsrError:
            return None

    def languages(self) -> list[str]:
        """Languages whose speech input is on now (model loaded, not overloaded)."""
        if self.governor.overloaded:
            return []
        return sorted(lang for lang, st in self.statuses.items() if st.state == "loaded")

    def admit(self) -> bool:
        adm = self.governor.admit(time.monotonic())
        self._alerts(adm.alerts)
        return adm.admitted

    def release(self, audio_seconds: float = 0.0, busy_seconds: float = 0.0) -> None:
        now = time.monotonic()
        alerts = self.governor.released(now)
        if audio_seconds > 0:
            alerts += self.governor.measured(now, audio_seconds, busy_seconds)
        self._alerts(alerts)

    def _alerts(self, alerts: tuple[Alert, ...]) -> None:
        for alert in alerts:
            log.warning("speech_alert", wire=alert.wire, code=alert.code, message=alert.message)
            self._publish(alert)
        if alerts:
            self._on_change()
        deadline = self.governor.next_deadline()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, deadline - time.monotonic()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._alerts(self.governor.on_timer(time.monotonic()))

    def grammar(self, listen: ivr.Listen) -> asr.Grammar | None:
        c = self.config
        knobs: dict[str, Any] = dict(
            reject_out_of_grammar=c.reject_out_of_grammar,
            accept_margin=c.accept_margin,
            min_confidence=c.min_confidence,
        )
        if listen.digits:
            options: dict[str, list[str]] = {
                k: list(v) for k, v in asr.digit_grammar(listen.language).options.items()
            }
        elif listen.grammar is None:
            return None
        else:
            options = {k: list(v) for k, v in listen.grammar.items()}
        # a phrase the model cannot know would make Vosk refuse the whole grammar: leave it out
        # (the flow check already warned about it with file:line) and keep the rest
        known = {
            k: [p for p in v if all(self.knows(listen.language, w) is not False for w in p.split())]
            for k, v in options.items()
        }
        known = {k: v for k, v in known.items() if v}
        if not known:
            raise asr.GrammarError(f"no phrase of this input is in the {listen.language!r} model")
        return asr.Grammar(options=known, sequence=listen.digits, **knobs)

    def endpoint_config(self, transcription: bool) -> asr.EndpointConfig:
        c = self.config
        return asr.EndpointConfig(
            threshold_db=c.threshold_db,
            start_min=c.start_min,
            trailing_silence=c.transcription_trailing_silence if transcription else c.trailing_silence,
            max_utterance=c.max_utterance,
        )


class CallEar:
    """One call's ears: the tmpfs recording, the tail, the endpointer, one recognizer per Listen.

    ``report`` gets ivr.SpeechStarted and exactly one ivr.SpeechRecognized per Listen that was
    not stopped. Times for latency logs are perf_counter seconds; ``t0`` maps the ear's audio
    clock to it (the tightest of "read time - audio seconds read" over all reads).
    """

    def __init__(
        self,
        service: SpeechService,
        call_id: str,
        *,
        start_ear: Callable[[Path], None],
        stop_ear: Callable[[], None],
        report: Callable[[Any], None],
        log: Any,
    ) -> None:
        self.service = service
        self.call_id = call_id
        self.path = service.audio_dir / f"{call_id}.wav"
        self._start_ear, self._stop_ear, self._report, self.log = start_ear, stop_ear, report, log
        self.tail: WavTail | None = None
        self.task: asyncio.Task[None] | None = None
        self.t0: float | None = None  # perf_counter time of audio sample 0
        self.token = 0  # the Listen being served (0: none)
        self.secure = False
        self.recognizer: asr.AsyncRecognizer | None = None
        self.endpointer = asr.Endpointer()
        self._audio_s = 0.0  # seconds of audio read so far (the ear's clock)
        self._pre: collections.deque[bytes] = collections.deque(maxlen=int(PRE_ROLL / 0.02) + 8)
        self._partial = b""
        self._pending: list[bytes] = []  # frames for the recognizer, fed once per poll
        self._speaking = False
        self.speech_end_at: float | None = None  # perf_counter: end of the last utterance
        self.speech_started_at: float | None = None  # perf_counter: onset of the speech that barged in

    # ------------------------------------------------------------- commands
    def listen(self, action: ivr.Listen) -> None:
        self._drop()
        if self.tail is not None and self.tail.bytes_read > ROTATE_BYTES:
            self._close_ear()  # a long IVR: start a fresh file rather than fill tmpfs
        if self.tail is None:
            try:
                self._start_ear(self.path)
            except Exception as exc:
                self.log.error("speech_ear_failed", error=str(exc))
                self._report(ivr.SpeechRecognized(token=action.token, status="unavailable", text=""))
                return
            self.tail = WavTail(self.path)
            self.t0, self._audio_s, self._partial = None, 0.0, b""
            self._pre.clear()
            if self.task is None:
                self.task = asyncio.get_running_loop().create_task(self._poll())
        if not self.service.admit():
            self.log.info("speech_refused", reason="overload")
            self._report(ivr.SpeechRecognized(token=action.token, status="unavailable", text=""))
            return
        try:
            grammar = self.service.grammar(action)
            rec = self.service.registry.recognizer(action.language, grammar)
        except asr.AsrError as exc:
            self.service.release()
            self.log.error("speech_recognizer_failed", language=action.language, error=str(exc))
            self._report(ivr.SpeechRecognized(token=action.token, status="unavailable", text=""))
            return
        self.recognizer = asr.AsyncRecognizer(
            rec, self.service.executor, final_timeout=self.service.config.result_timeout
        )
        self.token, self.secure = action.token, action.secure
        self.speech_started_at = None
        self.endpointer = asr.Endpointer(self.service.endpoint_config(transcription=grammar is None))
        self._speaking = False
        self._pending = []

    def stop(self, token: int) -> None:
        if token == self.token:
            self._drop()

    async def close(self) -> None:
        self._drop()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None
        self._close_ear()

    def _close_ear(self) -> None:
        if self.tail is not None:
            self._stop_ear()
            self.tail.close()
            self.tail = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _drop(self) -> None:
        if self.recognizer is not None:
            rec, self.recognizer = self.recognizer, None
            self.service.release(rec.audio_seconds, rec.busy_seconds)
        self.token = 0
        self._speaking = False
        self._pending = []

    # ---------------------------------------------------------------- audio
    async def _poll(self) -> None:
        interval = self.service.config.poll_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken ear must not leave the caller waiting
                self.log.error("speech_ear_error", error=f"{type(exc).__name__}: {exc}")
                token = self.token
                self._drop()
                # stop polling a broken file (one error, not one every 10 ms); the next
                # Listen opens a fresh ear
                self._close_ear()
                self.task = None
                if token:
                    self._report(ivr.SpeechRecognized(token=token, status="error", text=""))
                return

    async def _step(self) -> None:
        if self.tail is None:
            return
        data = self.tail.read()
        if not data:
            return
        start = time.perf_counter() - (self.tail.frames_read / 8000.0)
        self.t0 = start if self.t0 is None else min(self.t0, start)  # before the frames use it
        data = self._partial + data
        whole = len(data) - len(data) % FRAME_BYTES
        data, self._partial = data[:whole], data[whole:]
        for i in range(0, len(data), FRAME_BYTES):
            await self._frame(data[i : i + FRAME_BYTES])
        rec, token = self.recognizer, self.token
        if rec is not None and self._pending:
            chunk, self._pending = b"".join(self._pending), []
            if not await rec.accept(chunk) and token == self.token:
                result = await rec.finish()
                self._finish(token, result)

    async def _frame(self, frame: bytes) -> None:
        self._audio_s += 0.02
        at = self._audio_s
        if self.recognizer is None:
            self._pre.append(frame)
            return
        pcm = np.frombuffer(frame, dtype="<i2")
        events = self.endpointer.feed_pcm(pcm, at)
        if not self._speaking:
            self._pre.append(frame)
        else:
            self._pending.append(frame)
        for event in events:
            if isinstance(event, asr.SpeechStarted):
                self._speaking = True
                self._pending = list(self._pre)  # the onset and a little before it
                self._pre.clear()
                self.speech_started_at = self._clock(event.at)
                self.log.info("speech_started", onset_s=round(event.at, 3))
                self._report(ivr.SpeechStarted(token=self.token))
            elif isinstance(event, asr.UtteranceEnded):
                self.speech_end_at = self._clock(event.at)
                await self._end(event.reason)

    async def _end(self, reason: str) -> None:
        rec, token = self.recognizer, self.token
        if rec is None:
            return
        chunk, self._pending = b"".join(self._pending), []
        result = await rec.finish(chunk)
        if token == self.token:
            self._finish(token, result, reason)

    def _finish(self, token: int, result: asr.AsrResult, reason: str = "") -> None:
        heard = "" if self.secure else result.text
        self.log.info(
            "speech_result",
            status=result.status,
            option=None if self.secure else result.option,
            text=heard,
            confidence=round(result.confidence, 3),
            decode_ms=round(1000 * result.decode_seconds, 1),
            end=reason or result.reason,
            nbest=[] if self.secure else [[a.text, round(a.score, 2)] for a in result.nbest[:5]],
        )
        self._drop()
        self._report(
            ivr.SpeechRecognized(
                token=token,
                status=result.status,
                option=result.option,
                text=result.text,
                confidence=result.confidence,
                nbest=tuple((a.text, a.score) for a in result.nbest),
            )
        )

    def _clock(self, audio_s: float) -> float | None:
        return None if self.t0 is None else self.t0 + audio_s
