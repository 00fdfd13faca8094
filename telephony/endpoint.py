"""The pjsua2 endpoint, driven from the asyncio loop's thread and nowhere else.

pjsua2 runs with ``threadCnt = 0`` and ``mainThreadOnly``: the loop pumps
``libHandleEvents(0)`` every few milliseconds, so every SIP callback, and the
deferred DTMF callbacks, arrive on the loop thread. Callbacks only turn what
happened into an event on a queue; the pump hands the queue to the owner after
``libHandleEvents`` returns, so no handler runs re-entrantly inside pjsua2.
Nothing of ours runs on the conference-bridge clock thread: prompt ends are
timed on the loop from the WAV's length, not with a player EOF callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pjsua2 as pj
import structlog

from . import events as ev
from .admission import Admission, AdmissionLimits, source_of
from .errors import LegGone, TelephonyError
from .media import wav_seconds
from .sanitize import safe_digit, safe_text

log = structlog.get_logger("telephony")

PUMP_INTERVAL = 0.004  # seconds between libHandleEvents(0) calls
REFUSALS_LOG_EVERY = 10.0  # seconds: refused INVITEs are logged once per source per period


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    host: str  # bind address
    public_host: str  # address for SDP/Contact
    port: int  # SIP port
    transports: tuple[str, ...]  # "udp", "tcp"
    rtp_port: int  # first RTP port
    max_calls: int
    clock_rate: int  # conference bridge clock, Hz
    user: str  # user part of our identity
    log_level: int = 1  # pjsip's own console log level (0-6)
    admission: AdmissionLimits | None = None  # per-source limits on incoming calls; None = none
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Hotline-Source header names the caller


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, owner: Endpoint) -> None:
        super().__init__()
        self._owner = owner

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self._owner._on_incoming(self, prm)


class _Call(pj.Call):  # type: ignore[misc]
    def __init__(
        self, owner: Endpoint, acc: _Account, leg_id: str, call_id: int = pj.PJSUA_INVALID_ID
    ) -> None:
        super().__init__(acc, call_id)
        self._owner = owner
        self.leg_id = leg_id
        self.media_ready = False
        self.ended = False
        self.outbound = call_id == pj.PJSUA_INVALID_ID
        self.hung_up_by_us = False
        self.refused = False  # answered 486 by admission control: never reported
        self.ended_as: tuple[int, str] | None = None  # (code, reason) we ended it for, if we know better

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        ci = self.getInfo()
        state = ci.state
        if self.refused:
            if state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
                self.ended = True
                self._owner._refused_ended(self.leg_id)
            return
        if state == pj.PJSIP_INV_STATE_EARLY and self.outbound:
            self._owner._emit(ev.LegRinging(leg_id=self.leg_id))
        elif state == pj.PJSIP_INV_STATE_CONFIRMED:
            self._owner._confirmed(self.leg_id)
            self._owner._emit(ev.LegAnswered(leg_id=self.leg_id))
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED and not self.ended:
            self.ended = True
            self._owner._admitted_ended(self.leg_id)
            code, reason = self.ended_as or (int(ci.lastStatusCode), safe_text(ci.lastReason))
            self._owner._emit(
                ev.LegEnded(leg_id=self.leg_id, code=code, reason=reason, by_peer=not self.hung_up_by_us)
            )

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        if self.media_ready:
            return
        ci = self.getInfo()
        for media in ci.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.media_ready = True
                self._owner._emit(ev.LegMediaReady(leg_id=self.leg_id))
                return

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        method = "sip_info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc4733"
        digit = safe_digit(prm.digit)
        if digit is None:  # e.g. a SIP INFO whose Signal is not a key: not a keypress
            log.info("dtmf_ignored", leg=self.leg_id, method=method, digit=safe_text(prm.digit, 16))
            return
        self._owner._emit(ev.DtmfReceived(leg_id=self.leg_id, digit=digit, method=method))

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        if prm.finalNotify:
            self._owner._emit(ev.TransferEnded(leg_id=self.leg_id, code=int(prm.statusCode)))


class _Leg:
    """Our bookkeeping for one pjsua2 call: the call and the media attached to it."""

    __slots__ = ("call", "ear", "paused", "player", "player_token", "recorders")

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.player: pj.AudioMediaPlayer | None = None
        self.player_token = 0
        self.recorders: list[pj.AudioMediaRecorder] = []  # fed by this leg's audio
        self.ear: pj.AudioMediaRecorder | None = None  # the speech recognizer's tap (tmpfs file)
        self.paused = False


class Endpoint:
    """Owns pjsua2. Every method must be called on the loop thread that started it."""

    def __init__(self, config: EndpointConfig, on_event: Callable[[ev.TelephonyEvent], None]) -> None:
        self.config = config
        self._on_event = on_event
        self._queue: deque[ev.TelephonyEvent] = deque()
        self._legs: dict[str, _Leg] = {}
        self._ids = itertools.count(1)
        self._ep: pj.Endpoint | None = None
        self._acc: _Account | None = None
        self._pump: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._durations: dict[Path, float] = {}
        self._thread: int | None = None
        self.sip_port = config.port
        self._admission = Admission(config.admission) if config.admission is not None else None
        self._trusted = frozenset(config.trusted_proxies)
        self._refusals_logged_at = 0.0  # loop time of the last refusal report

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        cfg = self.config
        ep = pj.Endpoint()
        ep.libCreate()
        ep_cfg = pj.EpConfig()
        ep_cfg.uaConfig.threadCnt = 0
        ep_cfg.uaConfig.mainThreadOnly = True
        ep_cfg.uaConfig.maxCalls = cfg.max_calls
        ep_cfg.uaConfig.userAgent = "hotline/0.1"
        ep_cfg.logConfig.level = cfg.log_level
        ep_cfg.logConfig.consoleLevel = cfg.log_level
        ep_cfg.medConfig.clockRate = cfg.clock_rate
        ep_cfg.medConfig.sndClockRate = cfg.clock_rate
        ep_cfg.medConfig.ecTailLen = 0  # no echo canceller: there is no local speaker
        ep_cfg.medConfig.noVad = True
        ep.libInit(ep_cfg)
        self._ep = ep
        try:
            for kind in cfg.transports:
                tcfg = pj.TransportConfig()
                tcfg.port = cfg.port
                tcfg.boundAddress = cfg.host
                tcfg.publicAddress = cfg.public_host
                ttype = pj.PJSIP_TRANSPORT_UDP if kind == "udp" else pj.PJSIP_TRANSPORT_TCP
                ep.transportCreate(ttype, tcfg)
            ep.libStart()
            ep.audDevManager().setNullDev()
            for codec, prio in (
                ("PCMU/8000", 255),
                ("PCMA/8000", 254),
                ("G722/16000", 100),
                ("opus/48000", 90),
            ):
                with contextlib.suppress(pj.Error):  # a codec not built in is fine
                    ep.codecSetPriority(codec, prio)
            acc_cfg = pj.AccountConfig()
            acc_cfg.idUri = f"sip:{cfg.user}@{cfg.public_host}:{cfg.port}"
            acc_cfg.mediaConfig.transportConfig.port = cfg.rtp_port
            acc_cfg.mediaConfig.transportConfig.portRange = max(2 * cfg.max_calls + 16, 64)
            acc_cfg.mediaConfig.transportConfig.boundAddress = cfg.host
            acc_cfg.mediaConfig.transportConfig.publicAddress = cfg.public_host
            acc = _Account(self)
            acc.create(acc_cfg, True)
            self._acc = acc
        except pj.Error as exc:
            self._destroy()
            raise TelephonyError(f"SIP start failed: {exc.info()}") from None
        self._pump = self._loop.call_soon(self._tick)
        log.info(
            "sip_listening",
            host=cfg.host,
            port=cfg.port,
            transports=list(cfg.transports),
            clock_rate=cfg.clock_rate,
            max_calls=cfg.max_calls,
        )

    async def shutdown(self, grace: float = 3.0) -> None:
        """Hang up every leg, let the BYEs go out, then tear down in the safe order:
        players and recorders, then calls, then the account, then the library."""
        if self._ep is None:
            return
        for leg_id in list(self._legs):
            self.hangup(leg_id)
        deadline = asyncio.get_running_loop().time() + grace
        while self._legs and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        if self._admission is not None:
            self._report_refusals(asyncio.get_running_loop().time())
        self._destroy()

    def _destroy(self) -> None:
        # drops the Call objects, media first. No local of this frame may keep one: a Call
        # freed after libDestroy() aborts the process (pjsua_call_set_user_data's assertion);
        # a `for leg in ...` loop variable did, whenever a leg outlived the shutdown grace
        # (e.g. an answered call whose ACK never came, whose BYE pjsip holds back)
        for leg_id in list(self._legs):
            self._forget(leg_id)
        if self._acc is not None:
            self._acc.shutdown()
            self._acc = None
        if self._ep is not None:
            self._ep.libDestroy()
            self._ep = None
        log.info("sip_stopped")

    def _tick(self) -> None:
        assert self._ep is not None and self._loop is not None
        self._ep.libHandleEvents(0)
        if self._admission is not None:
            self._police(self._loop.time())
        self._drain()
        self._pump = self._loop.call_later(PUMP_INTERVAL, self._tick)

    def _police(self, now: float) -> None:
        """Give up answered calls whose ACK is overdue; report refused sources now and then."""
        assert self._admission is not None
        deadline = self._admission.next_deadline()
        if deadline is not None and deadline <= now:
            for leg_id in self._admission.expired(now):
                leg = self._legs.get(leg_id)
                if leg is not None and not leg.call.ended:
                    log.info("sip_no_ack", leg=leg_id, waited=self._admission.limits.handshake_timeout)
                    leg.call.ended_as = (408, "ACK not received")
                    self.hangup(leg_id)
        if now - self._refusals_logged_at >= REFUSALS_LOG_EVERY:
            self._report_refusals(now)

    def _report_refusals(self, now: float) -> None:
        """One line per source refused since the last report: how many INVITEs, and its load."""
        assert self._admission is not None
        seconds = round(now - self._refusals_logged_at, 1)
        self._refusals_logged_at = now
        for source, count in self._admission.take_refusals().items():
            calls, unconfirmed = self._admission.load(source)
            log.warning(
                "sip_source_refused",
                source=source,
                refused=count,
                seconds=seconds,
                calls=calls,
                unconfirmed=unconfirmed,
            )

    def _emit(self, event: ev.TelephonyEvent) -> None:
        self._queue.append(event)

    def _drain(self) -> None:
        while self._queue:
            event = self._queue.popleft()
            try:
                self._on_event(event)
            except Exception:  # one call's bug must not stop the pump for the others
                log.exception("telephony_event_handler_failed", event=type(event).__name__)
            if isinstance(event, ev.LegEnded):
                self._forget(event.leg_id)

    def _forget(self, leg_id: str) -> None:
        leg = self._legs.pop(leg_id, None)
        if leg is not None:  # media first, then the call
            leg.player = None
            leg.ear = None
            leg.recorders.clear()

    def _new_leg_id(self) -> str:
        return f"leg{next(self._ids)}"

    # ------------------------------------------------------------- callbacks
    def _on_incoming(self, acc: _Account, prm: pj.OnIncomingCallParam) -> None:
        leg_id = self._new_leg_id()
        call = _Call(self, acc, leg_id, prm.callId)
        self._legs[leg_id] = _Leg(call)
        if self._admission is not None and not self._admit(call, prm.rdata):
            return
        ci = call.getInfo()
        # the edge: every string from the network is made safe here, once (telephony/sanitize.py)
        from_uri = safe_text(ci.remoteUri)
        self._emit(
            ev.IncomingCall(
                leg_id=leg_id,
                caller=_user_part(from_uri),
                from_uri=from_uri,
                to_uri=safe_text(ci.localUri),
                sip_call_id=safe_text(ci.callIdString),
            )
        )

    def _admit(self, call: _Call, rdata: pj.SipRxData) -> bool:
        """Admission control: False after answering the INVITE 486 (nothing is reported)."""
        assert self._admission is not None and self._loop is not None
        packet_source = safe_text(rdata.srcAddress, 64)
        message = rdata.wholeMsg if self._trusted else ""  # only read when a proxy may vouch
        source, problem = source_of(packet_source, message, self._trusted)
        if problem is not None:
            log.warning("sip_proxy_source_missing", proxy=packet_source, problem=safe_text(problem, 128))
        refuse = self._admission.offer(call.leg_id, source, self._loop.time())
        if refuse is None:
            return True
        if refuse.first:  # then one sip_source_refused line per source every REFUSALS_LOG_EVERY s
            calls, unconfirmed = self._admission.load(source)
            log.warning(
                "sip_source_limited", source=source, limit=refuse.limit, calls=calls, unconfirmed=unconfirmed
            )
        call.refused = True
        # answered once pjsua2's onIncomingCall has returned, never inside it: a final response
        # that ends the call at once (e.g. its Via cannot be routed) makes pjsua free the call's
        # cloned request, which pjsua2 then frees again, and the process aborts
        # (pjsip_rx_data_free_cloned: Assertion `rdata' failed; found by tests/test_fuzz.py)
        self._loop.call_soon(self._refuse, call.leg_id, refuse.code, refuse.reason)
        return False

    def _refuse(self, leg_id: str, code: int, reason: str) -> None:
        leg = self._legs.get(leg_id)
        if leg is None or leg.call.ended:
            return  # cancelled meanwhile
        prm = pj.CallOpParam()
        prm.statusCode = code
        prm.reason = reason
        try:
            leg.call.hangup(prm)
        except pj.Error as exc:
            log.warning("sip_refuse_failed", leg=leg_id, error=exc.info())

    def _refused_ended(self, leg_id: str) -> None:
        """A refused INVITE's call is over: drop it after this callback returns."""
        assert self._loop is not None
        self._loop.call_soon(self._forget, leg_id)

    def _confirmed(self, leg_id: str) -> None:
        if self._admission is not None:
            self._admission.confirmed(leg_id)

    def _admitted_ended(self, leg_id: str) -> None:
        if self._admission is not None:
            self._admission.ended(leg_id)

    # --------------------------------------------------------------- control
    def _leg(self, leg_id: str) -> _Leg:
        leg = self._legs.get(leg_id)
        if leg is None or leg.call.ended:
            raise LegGone(f"leg {leg_id} is gone")
        return leg

    def answer(self, leg_id: str, code: int = 200) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = code
        self._leg(leg_id).call.answer(prm)
        if self._admission is not None and 200 <= code < 300:
            assert self._loop is not None
            self._admission.answered(leg_id, self._loop.time())  # the ACK is now due

    def hangup(self, leg_id: str, code: int = 0) -> None:
        """End a leg; harmless if it is already gone."""
        leg = self._legs.get(leg_id)
        if leg is None or leg.call.ended:
            return
        leg.call.hung_up_by_us = True
        prm = pj.CallOpParam()
        if code:
            prm.statusCode = code
        try:
            leg.call.hangup(prm)
        except pj.Error as exc:
            log.warning("hangup_failed", leg=leg_id, error=exc.info())

    def dial(self, uri: str, headers: dict[str, str] | None = None) -> str:
        """Start an outbound leg; its fate arrives as LegRinging/LegAnswered/LegEnded."""
        assert self._acc is not None
        leg_id = self._new_leg_id()
        call = _Call(self, self._acc, leg_id)
        prm = pj.CallOpParam(True)
        for name, value in (headers or {}).items():
            hdr = pj.SipHeader()
            hdr.hName, hdr.hValue = name, value
            prm.txOption.headers.append(hdr)
        self._legs[leg_id] = _Leg(call)
        try:
            call.makeCall(uri, prm)
        except pj.Error as exc:
            call.ended = True
            self._emit(
                ev.LegEnded(leg_id=leg_id, code=500, reason=f"dial failed: {exc.reason}", by_peer=True)
            )
        return leg_id

    def play(self, leg_id: str, wav: Path, token: int, loop: bool = False) -> float:
        """Play a WAV to a leg (replacing what it plays). PlaybackFinished(token) follows
        after the file's length, unless ``loop`` (then it plays until stopped or
        replaced). Returns the file's length in seconds."""
        assert self._loop is not None
        leg = self._leg(leg_id)
        self.stop_play(leg_id)
        player = pj.AudioMediaPlayer()
        player.createPlayer(str(wav), 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
        player.startTransmit(leg.call.getAudioMedia(-1))
        leg.player, leg.player_token = player, token
        seconds = self._durations.get(wav)
        if seconds is None:
            seconds = self._durations[wav] = wav_seconds(wav)
        if not loop:
            self._loop.call_later(seconds, self._played, leg_id, token)
        return seconds

    def _played(self, leg_id: str, token: int) -> None:
        leg = self._legs.get(leg_id)
        if leg is None or leg.player_token != token or leg.player is None:
            return  # stopped or replaced meanwhile
        leg.player = None
        self._emit(ev.PlaybackFinished(leg_id=leg_id, token=token))
        self._drain()

    def stop_play(self, leg_id: str) -> None:
        leg = self._legs.get(leg_id)
        if leg is not None:
            leg.player = None  # the destructor stops it and frees the port

    def bridge(self, a: str, b: str) -> None:
        ma, mb = self._leg(a).call.getAudioMedia(-1), self._leg(b).call.getAudioMedia(-1)
        ma.startTransmit(mb)
        mb.startTransmit(ma)

    def record(self, sources: list[tuple[str, Path]]) -> None:
        """Start one mono recorder per (leg, file). Recorders created in one call start
        on the same bridge tick, so the files line up sample for sample."""
        made: list[tuple[_Leg, pj.AudioMediaRecorder, pj.AudioMedia]] = []
        for leg_id, path in sources:
            leg = self._leg(leg_id)
            rec = pj.AudioMediaRecorder()
            rec.createRecorder(str(path))
            made.append((leg, rec, leg.call.getAudioMedia(-1)))
        for leg, rec, media in made:
            media.startTransmit(rec)
            leg.recorders.append(rec)

    def listen(self, leg_id: str, path: Path) -> None:
        """Record the caller's audio to ``path`` (on tmpfs) for the recognizer, which tails the
        file: no Python runs on the media clock. Unaffected by pause_recording (secure speech
        input still needs ears). The patched WAV writer flushes every 20 ms frame."""
        leg = self._leg(leg_id)
        self.stop_listen(leg_id)
        ear = pj.AudioMediaRecorder()
        ear.createRecorder(str(path))
        leg.call.getAudioMedia(-1).startTransmit(ear)
        leg.ear = ear

    def stop_listen(self, leg_id: str) -> None:
        leg = self._legs.get(leg_id)
        if leg is not None:
            leg.ear = None  # the destructor closes the file and frees the port

    def pause_recording(self, leg_id: str, paused: bool) -> None:
        """Stop (or resume) feeding this leg's audio to its recorders, e.g. while secure
        digits are entered. The recorder keeps its place; nothing of the gap is written."""
        leg = self._legs.get(leg_id)
        if leg is None or leg.paused == paused or not leg.recorders:
            return
        media = leg.call.getAudioMedia(-1)
        for rec in leg.recorders:
            (media.stopTransmit if paused else media.startTransmit)(rec)
        leg.paused = paused

    def stop_recording(self, leg_id: str) -> None:
        """Close every recorder on a leg (files are complete once this returns)."""
        leg = self._legs.get(leg_id)
        if leg is not None:
            leg.recorders.clear()

    def hold(self, leg_id: str) -> None:
        """Put the far end on hold (re-INVITE with a=sendonly)."""
        self._leg(leg_id).call.setHold(pj.CallOpParam(True))

    def retrieve(self, leg_id: str) -> None:
        """Take the far end off hold (re-INVITE with a=sendrecv)."""
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        self._leg(leg_id).call.reinvite(prm)

    def transfer(self, leg_id: str, uri: str) -> None:
        self._leg(leg_id).call.xfer(uri, pj.CallOpParam(True))

    @property
    def active_legs(self) -> int:
        return len(self._legs)


def _user_part(uri: str) -> str:
    """'"Bob" <sip:+4930123@host>;tag=x' -> '+4930123'."""
    s = uri
    if "<" in s:
        s = s.split("<", 1)[1].split(">", 1)[0]
    s = s.split(":", 1)[1] if ":" in s else s
    return s.split("@", 1)[0] if "@" in s else ""
