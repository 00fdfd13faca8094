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
import ctypes
import itertools
import threading
from collections import Counter, deque
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
# pjmedia_tp_proto: RTP/SAVP, RTP/SAVPF and DTLS-SRTP all carry this bit (PJMEDIA_TP_PROFILE_SRTP)
_SRTP_PROTO_BIT = pj.PJMEDIA_TP_PROTO_RTP_SAVP & ~pj.PJMEDIA_TP_PROTO_RTP_AVP


MEDIA_POLICIES = ("none", "optional", "srtp")  # dial(media=...): RTP, SRTP offered, SRTP only


@dataclass(frozen=True, slots=True)
class TrunkSpec:
    """A carrier trunk: outgoing calls through it answer its digest challenges."""

    name: str
    host: str  # the carrier's address, host[:port]
    username: str = ""  # digest user; "" = no authentication
    password: str = ""  # digest password
    realm: str = ""  # "" = any realm the carrier challenges with
    register: bool = False  # keep a registration at the carrier
    registrar: str = ""  # host[:port] to register at; "" = host
    expires: int = 300  # seconds per registration
    transport: str = "udp"  # udp or tcp towards the carrier
    from_user: str = ""  # user part of From; "" = username, else our user
    contact_host: str = ""  # host:port put in the registration's Contact ("" = ours): the proxy's

REFUSALS_LOG_EVERY = 10.0  # seconds: refused INVITEs are logged once per source per period


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    host: str  # RTP bind address (and SIP's, unless sip_host is set)
    public_host: str  # address for SDP (and SIP Contact/Via, unless sip_public_host is set)
    port: int  # SIP port
    transports: tuple[str, ...]  # "udp", "tcp"
    rtp_port: int  # first RTP port
    max_calls: int
    clock_rate: int  # conference bridge clock, Hz
    user: str  # user part of our identity
    log_level: int = 1  # pjsip's own console log level (0-6)
    sip_host: str = ""  # SIP bind address; "" = host (behind the proxy: 127.0.0.1)
    sip_public_host: str = ""  # SIP Contact/Via address; "" = public_host
    outbound_proxy: str = ""  # every request we send goes through this (the proxy); "" = direct
    accept_srtp: bool = False  # incoming calls may offer SRTP (RTP/SAVP or a=crypto); TLS at the proxy
    trunks: tuple[TrunkSpec, ...] = ()
    request_headers: tuple[tuple[str, str], ...] = ()  # added to every call we make and REGISTER we send
    admission: AdmissionLimits | None = None  # per-source limits on incoming calls; None = none
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Hotline-Source header names the caller


class _LogWriter(pj.LogWriter):  # type: ignore[misc]
    """pjlib's log lines into structlog (so they are JSON in JSON mode, like ours). pjlib may
    write from its own threads; this only formats and hands one line to the logger."""

    def write(self, entry: pj.LogEntry) -> None:
        level = int(entry.level)
        sender, _, message = str(entry.msg).strip().partition(" ")  # decor: "   sender  message"
        emit = pjlog.error if level <= 1 else pjlog.warning if level == 2 else pjlog.info
        if level >= 4:
            emit = pjlog.debug
        emit("pjsip", sender=sender.strip(), message=message.strip() or sender, pj_level=level)


pjlog = structlog.get_logger("pjsip")

_PJ_LOG_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)


def _early_log(level: int, data: bytes | None, length: int) -> None:
    """pjlib's lines before libInit installs the LogWriter (libCreate logs "pjlib ... initialized")."""
    text = (data or b"")[: max(0, length)].decode("utf-8", "replace").strip()
    parts = text.split(None, 2)  # default decor: "HH:MM:SS.mmm sender message"
    if len(parts) == 3 and parts[0].count(":") == 2:
        parts = parts[1:]
    sender, message = (parts[0], parts[1] if len(parts) > 1 else "") if parts else ("", "")
    emit = (
        pjlog.error
        if level <= 1
        else pjlog.warning
        if level == 2
        else pjlog.info
        if level == 3
        else pjlog.debug
    )
    emit("pjsip", sender=sender, message=message.lstrip("!").strip() or sender, pj_level=level)


_early_log_c = _PJ_LOG_FUNC(_early_log)  # module-level: pjlib keeps the pointer


def _route_early_log(level: int) -> None:
    """Before libCreate: pjlib's own level, and its lines to structlog instead of stdout."""
    lib = ctypes.CDLL(pj._pjsua2.__file__)  # the wheel links pjlib statically and exports it
    lib.pj_log_set_level(ctypes.c_int(level))
    lib.pj_log_set_log_func(_early_log_c)


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, owner: Endpoint, name: str = "default") -> None:
        super().__init__()
        self._owner = owner
        self.name = name  # "default", "media:<policy>", "trunk:<name>", "register:<name>"

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self._owner._on_incoming(self, prm)

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        code = int(prm.code)
        if 200 <= code < 300:
            log.info("trunk_registered", account=self.name, code=code, expires=int(prm.expiration))
        else:
            log.warning("trunk_registration_failed", account=self.name, code=code, reason=str(prm.reason))


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
                try:
                    proto = int(self.getStreamInfo(media.index).proto)
                except (pj.Error, TypeError, ValueError):
                    proto = 0
                srtp = bool(proto & _SRTP_PROTO_BIT)
                log.debug("leg_media", leg=self.leg_id, srtp=srtp, proto=proto)
                self._owner._emit(ev.LegMediaReady(leg_id=self.leg_id, srtp=srtp))
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

    __slots__ = ("call", "ear", "mixed", "paused", "player", "player_token", "recorders", "taps")

    def __init__(self, call: _Call) -> None:
        self.call = call
        self.player: pj.AudioMediaPlayer | None = None
        self.player_token = 0
        self.recorders: dict[Path, pj.AudioMediaRecorder] = {}  # fed by this leg's audio, by file
        self.ear: pj.AudioMediaRecorder | None = None  # the speech recognizer's tap (tmpfs file)
        self.paused = False
        self.mixed: list[str] = []  # other legs whose audio also feeds this leg's recorders
        self.taps: dict[Path, tuple[pj.AudioMediaRecorder, bool]] = {}  # live-cue taps: path -> (rec, paused)


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
        self._media_accounts: dict[str, _Account] = {}  # media policy -> account dialling with it
        self._trunk_accounts: dict[str, _Account] = {}  # trunk name -> account its calls go out on
        self._registrations: list[_Account] = []  # trunks' registration accounts
        self._pump: asyncio.Handle | None = None  # call_soon first, then call_later
        self._loop: asyncio.AbstractEventLoop | None = None
        self._durations: dict[Path, float] = {}
        self._thread: int | None = None
        self.sip_port = config.port
        self.last_pump: float | None = None  # loop time of the last libHandleEvents (health check)
        self._log_writer: _LogWriter | None = None  # kept alive while pjlib may call it
        # The media work done so far, so a benchmark can prove it happened: calls "answered",
        # "players" and "recorders" created (the speech ear's recorders count as "ears"),
        # "wavs_finished": recorder files closed complete (ears excluded).
        self.media: Counter[str] = Counter()
        self._admission = Admission(config.admission) if config.admission is not None else None
        self._trusted = frozenset(config.trusted_proxies)
        self._refusals_logged_at = 0.0  # loop time of the last refusal report

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        cfg = self.config
        _route_early_log(cfg.log_level)
        ep = pj.Endpoint()
        ep.libCreate()
        ep_cfg = pj.EpConfig()
        ep_cfg.uaConfig.threadCnt = 0
        ep_cfg.uaConfig.mainThreadOnly = True
        ep_cfg.uaConfig.maxCalls = cfg.max_calls
        ep_cfg.uaConfig.userAgent = "hotline/0.1"
        ep_cfg.logConfig.level = cfg.log_level
        ep_cfg.logConfig.consoleLevel = cfg.log_level
        # every pjlib line goes through structlog; no time in its decor (structlog stamps it)
        self._log_writer = _LogWriter()
        ep_cfg.logConfig.writer = self._log_writer
        ep_cfg.logConfig.decor = pj.PJ_LOG_HAS_SENDER | pj.PJ_LOG_HAS_SPACE
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
                tcfg.boundAddress = cfg.sip_host or cfg.host
                tcfg.publicAddress = cfg.sip_public_host or cfg.public_host
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
            srtp = pj.PJMEDIA_SRTP_OPTIONAL if cfg.accept_srtp else pj.PJMEDIA_SRTP_DISABLED
            self._acc = self._account("default", cfg.user, srtp, priority=10, default=True)
            self._media_accounts["none"] = (
                self._account("media:none", cfg.user, pj.PJMEDIA_SRTP_DISABLED)
                if cfg.accept_srtp
                else self._acc
            )
            if cfg.accept_srtp:
                self._media_accounts["optional"] = self._account(
                    "media:optional", cfg.user, pj.PJMEDIA_SRTP_OPTIONAL
                )
                self._media_accounts["srtp"] = self._account(
                    "media:srtp", cfg.user, pj.PJMEDIA_SRTP_MANDATORY
                )
            for trunk in cfg.trunks:
                self._trunk_accounts[trunk.name] = self._trunk_account(trunk)
        except pj.Error as exc:
            self._destroy()
            raise TelephonyError(f"SIP start failed: {exc.info()}") from None
        self._pump = self._loop.call_soon(self._tick)
        log.info(
            "sip_listening",
            host=cfg.sip_host or cfg.host,
            port=cfg.port,
            outbound_proxy=cfg.outbound_proxy or None,
            srtp=cfg.accept_srtp,
            trunks=[t.name for t in cfg.trunks],
            transports=list(cfg.transports),
            clock_rate=cfg.clock_rate,
            max_calls=cfg.max_calls,
        )

    def _account(
        self,
        name: str,
        user: str,
        srtp: int,
        *,
        priority: int = 0,
        default: bool = False,
        trunk: TrunkSpec | None = None,
        register: bool = False,
    ) -> _Account:
        """One pjsua2 account. SRTP is per account in pjsua2 2.12, so each media policy
        has its own; TLS ends at the proxy, hence srtpSecureSignaling = 0 (the keys cross
        only the loopback hop in clear)."""
        cfg = self.config
        sip_public = cfg.sip_public_host or cfg.public_host
        acc_cfg = pj.AccountConfig()
        acc_cfg.priority = priority
        acc_cfg.idUri = f"sip:{user}@{sip_public}:{cfg.port}"
        acc_cfg.mediaConfig.transportConfig.port = cfg.rtp_port
        acc_cfg.mediaConfig.transportConfig.portRange = max(2 * cfg.max_calls + 16, 64)
        acc_cfg.mediaConfig.transportConfig.boundAddress = cfg.host
        acc_cfg.mediaConfig.transportConfig.publicAddress = cfg.public_host
        acc_cfg.mediaConfig.srtpUse = srtp
        acc_cfg.mediaConfig.srtpSecureSignaling = 0
        if cfg.outbound_proxy:
            acc_cfg.sipConfig.proxies.append(cfg.outbound_proxy)
        if trunk is not None:
            acc_cfg.idUri = f"sip:{trunk.from_user or trunk.username or user}@{trunk.host}"
            if trunk.username:
                cred = pj.AuthCredInfo("digest", trunk.realm or "*", trunk.username, 0, trunk.password)
                acc_cfg.sipConfig.authCreds.append(cred)
            if register:
                registrar = trunk.registrar or trunk.host
                acc_cfg.idUri = f"sip:{trunk.username}@{registrar}"
                acc_cfg.regConfig.registrarUri = f"sip:{registrar};transport={trunk.transport}"
                acc_cfg.regConfig.timeoutSec = trunk.expires
                acc_cfg.regConfig.retryIntervalSec = 30
                acc_cfg.regConfig.registerOnAdd = True
                for name, value in cfg.request_headers:
                    hdr = pj.SipHeader()
                    hdr.hName, hdr.hValue = name, value
                    acc_cfg.regConfig.headers.append(hdr)
                acc_cfg.regConfig.unregWaitMsec = 1000  # at shutdown, wait this long for the carrier
                if trunk.contact_host:  # calls from the carrier must reach the proxy, not us
                    acc_cfg.sipConfig.contactForced = f"<sip:{trunk.username}@{trunk.contact_host}>"
        acc = _Account(self, name)
        acc.create(acc_cfg, default)
        return acc

    def _trunk_account(self, trunk: TrunkSpec) -> _Account:
        """Calls go out on one account (credentials, no registration); a trunk that registers
        gets a second account whose Contact is the proxy's public address, so the carrier's
        calls reach the proxy while our calls keep our own Contact (in-dialog requests
        then route back through the proxy's Record-Route)."""
        calls = self._account(f"trunk:{trunk.name}", self.config.user, pj.PJMEDIA_SRTP_DISABLED, trunk=trunk)
        if trunk.register:
            self._registrations.append(
                self._account(
                    f"register:{trunk.name}",
                    self.config.user,
                    pj.PJMEDIA_SRTP_DISABLED,
                    trunk=trunk,
                    register=True,
                )
            )
        return calls

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
        self.last_pump = None
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
        self._shutdown_extra_accounts()  # in a frame of its own: no local outlives it
        if self._acc is not None:
            self._acc.shutdown()
            self._acc = None
        if self._ep is not None:
            self._ep.libDestroy()
            self._ep = None
        log.info("sip_stopped")

    def _shutdown_extra_accounts(self) -> None:
        """The trunk, registration and media-policy accounts, before the main one."""
        for extra in [*self._registrations, *self._trunk_accounts.values(), *self._media_accounts.values()]:
            if extra is not self._acc:
                extra.shutdown()
        self._registrations.clear()
        self._trunk_accounts.clear()
        self._media_accounts.clear()

    def _tick(self) -> None:
        assert self._ep is not None and self._loop is not None
        self._ep.libHandleEvents(0)
        self.last_pump = self._loop.time()
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
            leg.taps.clear()
            self._close_recorders(leg)
        for other in self._legs.values():  # its port left the bridge with it
            if leg_id in other.mixed:
                other.mixed.remove(leg_id)

    def _close_recorders(self, leg: _Leg, paths: tuple[Path, ...] = ()) -> None:
        """Drop a leg's recorders (those writing ``paths``, or all): each destructor closes
        its file complete."""
        for path in paths or tuple(leg.recorders):
            if leg.recorders.pop(path, None) is not None:
                self.media["wavs_finished"] += 1

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
        if code == 200:
            self.media["answered"] += 1
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

    def dial(
        self,
        uri: str,
        headers: dict[str, str] | None = None,
        *,
        media: str = "none",
        trunk: str = "",
        leg_id: str | None = None,
    ) -> str:
        """Start an outbound leg; its fate arrives as LegRinging/LegAnswered/LegEnded.

        ``media``: "none" (RTP), "optional" (SRTP offered, RTP accepted) or "srtp" (SDP offers
        RTP/SAVP only); SRTP needs ``accept_srtp``. ``trunk``: a configured trunk's name; its
        credentials answer the carrier's 401/407. ``leg_id``: the id its events carry (the
        caller's choice), else a new one."""
        assert self._acc is not None
        if trunk:
            acc = self._trunk_accounts.get(trunk)
            if acc is None:
                raise TelephonyError(f"no trunk {trunk!r} is configured")
        else:
            acc = self._media_accounts.get(media)
            if acc is None:
                raise TelephonyError(
                    f"media encryption {media!r} is not available: it needs the proxy with TLS"
                    if media in MEDIA_POLICIES
                    else f"unknown media encryption {media!r}; use one of {', '.join(MEDIA_POLICIES)}"
                )
        leg_id = leg_id or self._new_leg_id()
        if leg_id in self._legs:
            raise TelephonyError(f"leg id {leg_id} is in use")
        call = _Call(self, acc, leg_id)
        prm = pj.CallOpParam(True)
        for name, value in [*self.config.request_headers, *(headers or {}).items()]:
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
        self.media["players"] += 1
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

    def unbridge(self, a: str, b: str) -> None:
        """Stop the audio between two bridged legs, both ways; both stay up."""
        ma, mb = self._leg(a).call.getAudioMedia(-1), self._leg(b).call.getAudioMedia(-1)
        ma.stopTransmit(mb)
        mb.stopTransmit(ma)

    def transmit(self, src: str, dst: str) -> None:
        """One direction only: ``src``'s audio is heard on ``dst`` (a supervisor listening,
        whispering or barging). A port may feed many; the bridge mixes what a port hears."""
        self._leg(src).call.getAudioMedia(-1).startTransmit(self._leg(dst).call.getAudioMedia(-1))

    def stop_transmit(self, src: str, dst: str) -> None:
        """Stop the one direction ``src`` -> ``dst``; harmless if either leg is gone."""
        a, b = self._legs.get(src), self._legs.get(dst)
        if a is None or b is None or a.call.ended or b.call.ended:
            return
        a.call.getAudioMedia(-1).stopTransmit(b.call.getAudioMedia(-1))

    def mix_recording(self, src: str, into: str, on: bool) -> None:
        """Mix ``src``'s audio into ``into``'s recorders (and those it gets later), or stop:
        a barging supervisor or a conferenced colleague on the agent channel."""
        target = self._leg(into)
        if on:
            source = self._leg(src)
            if src in target.mixed:
                return
            target.mixed.append(src)
            if not target.paused:
                media = source.call.getAudioMedia(-1)
                for rec in target.recorders.values():
                    media.startTransmit(rec)
            return
        if src not in target.mixed:
            return
        target.mixed.remove(src)
        gone = self._legs.get(src)
        if gone is not None and not gone.call.ended and not target.paused:
            media = gone.call.getAudioMedia(-1)
            for rec in target.recorders.values():
                media.stopTransmit(rec)

    def _mix_sources(self, leg: _Leg) -> list[pj.AudioMedia]:
        out = []
        for src in leg.mixed:
            other = self._legs.get(src)
            if other is not None and not other.call.ended:
                out.append(other.call.getAudioMedia(-1))
        return out

    def record(self, sources: list[tuple[str, Path]], *, paused: bool = False) -> None:
        """Start one mono recorder per (leg, file). Recorders created in one call start
        on the same bridge tick, so the files line up sample for sample. ``paused``: the
        recorders exist but hear nothing until ``pause_recording(leg, False)`` (secure input
        was going on when the recording began)."""
        made: list[tuple[_Leg, Path, pj.AudioMediaRecorder, pj.AudioMedia]] = []
        for leg_id, path in sources:
            leg = self._leg(leg_id)
            rec = pj.AudioMediaRecorder()
            rec.createRecorder(str(path))
            self.media["recorders"] += 1
            made.append((leg, path, rec, leg.call.getAudioMedia(-1)))
        for leg, path, rec, media in made:
            if not paused:
                media.startTransmit(rec)
                for mixed in self._mix_sources(leg):
                    mixed.startTransmit(rec)
            leg.recorders[path] = rec
            leg.paused = paused

    def listen(self, leg_id: str, path: Path) -> None:
        """Record the caller's audio to ``path`` (on tmpfs) for the recognizer, which tails the
        file: no Python runs on the media clock. Unaffected by pause_recording (secure speech
        input still needs ears). The patched WAV writer flushes every 20 ms frame."""
        leg = self._leg(leg_id)
        self.stop_listen(leg_id)
        ear = pj.AudioMediaRecorder()
        ear.createRecorder(str(path))
        self.media["ears"] += 1
        leg.call.getAudioMedia(-1).startTransmit(ear)
        leg.ear = ear

    def stop_listen(self, leg_id: str) -> None:
        leg = self._legs.get(leg_id)
        if leg is not None:
            leg.ear = None  # the destructor closes the file and frees the port

    def tap(self, leg_id: str, path: Path, *, paused: bool = False) -> None:
        """Record the leg's audio to ``path`` (tmpfs) for the live cues, which a cue worker
        process tails: no Python on the media clock. Independent of the call recording and of
        the IVR's ear; ``paused``: created silent (a secure step is going on)."""
        leg = self._leg(leg_id)
        self.untap(leg_id, path)
        rec = pj.AudioMediaRecorder()
        rec.createRecorder(str(path))
        if not paused:
            leg.call.getAudioMedia(-1).startTransmit(rec)
        leg.taps[path] = (rec, paused)

    def pause_tap(self, leg_id: str, path: Path, paused: bool) -> None:
        """Stop (or resume) feeding a tap: nothing said meanwhile reaches the file."""
        leg = self._legs.get(leg_id)
        entry = leg.taps.get(path) if leg is not None else None
        if leg is None or entry is None or entry[1] == paused or leg.call.ended:
            return
        media = leg.call.getAudioMedia(-1)
        (media.stopTransmit if paused else media.startTransmit)(entry[0])
        leg.taps[path] = (entry[0], paused)

    def untap(self, leg_id: str, path: Path) -> None:
        leg = self._legs.get(leg_id)
        if leg is not None:
            leg.taps.pop(path, None)  # the destructor closes the file and frees the port

    def pause_recording(self, leg_id: str, paused: bool) -> None:
        """Stop (or resume) feeding this leg's audio to its recorders, e.g. while secure
        digits are entered. The recorder keeps its place; nothing of the gap is written."""
        leg = self._legs.get(leg_id)
        if leg is None or leg.paused == paused or not leg.recorders:
            return
        for media in [leg.call.getAudioMedia(-1), *self._mix_sources(leg)]:
            for rec in leg.recorders.values():
                (media.stopTransmit if paused else media.startTransmit)(rec)
        leg.paused = paused

    def stop_recording(self, leg_id: str, paths: tuple[Path, ...] = ()) -> None:
        """Close the recorders writing ``paths`` on a leg, or all of them (files are
        complete once this returns)."""
        leg = self._legs.get(leg_id)
        if leg is not None:
            self._close_recorders(leg, paths)

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

    @property
    def bound(self) -> bool:
        """True once the SIP transports are up and the account exists (until shutdown)."""
        return self._acc is not None


def _user_part(uri: str) -> str:
    """'"Bob" <sip:+4930123@host>;tag=x' -> '+4930123'."""
    s = uri
    if "<" in s:
        s = s.split("<", 1)[1].split(">", 1)[0]
    s = s.split(":", 1)[1] if ":" in s else s
    return s.split("@", 1)[0] if "@" in s else ""
