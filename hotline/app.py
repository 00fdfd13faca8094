"""The wiring: telephony events in, IVR and ACD cores stepped, their actions run.

Everything here runs on the one event-loop thread that also owns pjsua2. Time
for the cores is ``loop.time()`` (monotonic seconds); wall time is only used
for timestamps on the wire and in records.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import inspect
import json
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog

import acd
import cti_bridge
import ivr
import telephony
from telephony import events as tev

from . import events as hev
from . import outbound, profiles, recovery, reload, retention, servicecode, untrusted
from .config import Config
from .speech import CallEar, SpeechService, vocabulary_warnings
from .store import CallStore

log = structlog.get_logger("hotline")

# SIP final codes on an agent leg -> the cause reported in agent.offer_failed
_RING_CAUSES = {
    486: "busy",
    600: "busy",
    603: "declined",
    480: "unavailable",
    404: "not_found",
    408: "no_answer",
}


class StartError(Exception):
    """The server could not start; the message says what to change."""

    code = "server.start_failed"


def _start_failure(exc: Exception, config: Config) -> str:
    if isinstance(exc, OSError) and exc.errno == 98:
        c = config.cti
        return (
            f"a CTI port is in use ({c.host}: port {c.port}, http_port {c.http_port}"
            f"{f', tls_port {c.tls_port}' if c.tls_cert else ''}): stop the other process or "
            "change them in [cti]"
        )
    if isinstance(exc, telephony.TelephonyError):
        return f"{exc}; is SIP port {config.sip.port} in use? Stop the other process or set [sip] port"
    return f"{type(exc).__name__}: {exc}"


def mask_number(number: str, how: str) -> str:
    """Caller numbers for downstream systems: "none" keeps it, "last4" keeps the last
    four digits, "all" hides it."""
    if how == "none" or not number:
        return number
    if how == "last4" and len(number) > 4:
        return "*" * (len(number) - 4) + number[-4:]
    return "*" * len(number)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    tmp.replace(path)


def admission_limits(sip: Any) -> telephony.AdmissionLimits:
    """[sip] per-source limits for the endpoint's admission control (telephony/admission.py)."""
    return telephony.AdmissionLimits(
        calls=sip.per_source_calls or max(1, sip.max_calls * 3 // 4),
        unconfirmed=sip.per_source_unconfirmed,
        rate=sip.per_source_rate,
        burst=sip.per_source_burst,
        handshake_timeout=sip.handshake_timeout,
    )


def queue_specs(config: Config) -> list[acd.QueueSpec]:
    def overflow(o: Any) -> acd.Overflow | None:
        return None if o is None else acd.Overflow(kind=acd.OverflowKind(o.kind), target=o.target)

    return [
        acd.QueueSpec(
            name=q.name,
            skills=q.skills,
            strategy=q.strategy,
            ring_timeout=q.ring_timeout,
            wrap_up=q.wrap_up,
            max_no_answer=q.max_no_answer,
            retry_delay=q.retry_delay,
            aging_seconds=q.aging_seconds,
            relax=tuple(
                acd.RelaxStep(after=r.after, min_level=r.min_level or None, drop=r.drop) for r in q.relax
            ),
            max_wait=q.max_wait or None,
            max_waiting=q.max_waiting or None,
            on_max_wait=overflow(q.on_max_wait),
            on_full=overflow(q.on_full),
            on_no_agents=overflow(q.on_no_agents),
            callback_retry_delay=q.callback_retry_delay,
            callback_max_attempts=q.callback_max_attempts,
            default_aht=q.default_aht,
        )
        for q in config.acd.queues
    ]


def agent_specs(config: Config) -> list[acd.AgentSpec]:
    return [
        acd.AgentSpec(
            id=a.id,
            name=a.name or a.id,
            skills=a.skills,
            contact=a.contact,
            queues=a.queues,
            wrap_up=a.wrap_up if a.wrap_up >= 0 else None,
        )
        for a in config.acd.agents
    ]


def known_skills(config: Config) -> set[str]:
    return {k for q in config.acd.queues for k in q.skills} | {k for a in config.acd.agents for k in a.skills}


def prompt_ids(directories: list[Path]) -> set[str]:
    """WAV ids available in the prompt directories (and their language subdirectories)."""
    return {p.stem for d in directories if d.is_dir() for p in [*d.glob("*.wav"), *d.glob("*/*.wav")]}


def load_flows(config: Config, prompt_dirs: list[Path]) -> tuple[dict[str, ivr.Flow], ivr.Flow]:
    """Every flow in the flows directory; the main one must be valid. Other flows with
    errors are logged and left out, so a broken draft never stops the hotline."""
    directory = config.path(config.flows.directory)
    paths = sorted(directory.glob("*.yaml"))
    sources = {}
    for path in paths:
        try:
            sources[str(path)] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            log.error("flow_unreadable", path=str(path), error=str(exc))
    flows, diagnostics = ivr.compile_flow_set(
        sources,
        known_queues=[q.name for q in config.acd.queues],
        known_skills=known_skills(config),
        known_prompts=prompt_ids(prompt_dirs),
    )
    main_path = str(directory / f"{config.flows.main}.yaml")
    main = flows.get(config.flows.main)
    if main is None:
        mine = [d for d in diagnostics if d.loc.file == main_path and d.severity == "error"]
        if not mine:
            mine = [
                ivr.Diagnostic(
                    ivr.Location(main_path, 1, 1),
                    "flow.missing",
                    f"the main flow {main_path} is missing",
                    "set [flows] main to a flow file name in [flows] directory",
                )
            ]
        raise ivr.FlowInvalid(mine)
    for d in diagnostics:
        (log.warning if d.severity != "error" else log.error)(
            "flow_diagnostic", file=d.loc.file, line=d.loc.line, code=d.code, message=d.message
        )
    return flows, main


@dataclass(eq=False)
class AgentLeg:
    """An agent's phone being rung for a call (ring_all rings several at once)."""

    agent_id: str
    leg: str
    confirmed: bool = False
    media: bool = False


@dataclass(eq=False)
class CallSession:
    """One caller's call: the caller leg, the IVR walk, and at most one agent leg."""

    call_id: str
    leg: str  # caller leg id
    caller: str
    interp: ivr.CallInterpreter
    started: float  # loop time of the offer, seconds
    started_wall: float  # epoch seconds
    log: Any
    phase: str = "ivr"  # ivr -> queued -> connected -> ended
    confirmed: bool = False
    media_ready: bool = False
    ivr_started: bool = False
    answered_at: float | None = None
    queued_at: float | None = None
    connected_at: float | None = None
    queue: str | None = None
    agent_id: str | None = None  # the agent talking (or last rung)
    agent_leg: str | None = None  # the leg of the agent talking
    ringing: dict[str, AgentLeg] = field(default_factory=dict)  # agent id -> leg being rung
    position: int | None = None  # place in line last told to the IVR
    keywords: list[dict[str, str]] = field(default_factory=list)  # keyword interrupts hit
    service_code: str = ""
    profile_tier: str | None = None
    caller_ready: bool = False  # the profile lookup is done (or gave up)
    priority: int | None = None  # the priority the caller was queued with
    callback: str | None = None  # the number to call back, once the caller accepted a callback
    outbound_to: str = ""  # click-to-dial: the number or URI dialled for the agent
    dtmf_at: float | None = None  # perf_counter of the last keypress, until the next prompt starts
    segment: int = 1  # recording segment: a caller moved to another agent gets <call_id>-2.wav ...
    gaps: list[dict[str, str | None]] = field(default_factory=list)  # recording pauses, ISO times
    playing: int | None = None  # token of the prompt the caller hears
    timer: asyncio.TimerHandle | None = None
    recording: tuple[Path, Path, Path] | None = None  # caller part, agent part, final
    voicemail: Path | None = None
    end_cause: str | None = None
    ear: CallEar | None = None  # speech input: created at the first Listen, closed when the IVR ends


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.bus = cti_bridge.EventBus(
            outbox=cti_bridge.Outbox(
                config.path(config.storage.database),
                retain_seconds=config.cti.retain_seconds,
                retain_events=config.cti.retain_events,
            )
        )
        self.router = acd.build_router(queue_specs(config), agent_specs(config))
        st = config.stats
        # statistics run on wall-clock seconds, so roll-up rows start on real quarter hours
        self.stats = acd.build_statistics(
            queue_specs(config),
            agent_specs(config),
            acd.StatsConfig(
                service_level_threshold=st.service_level_threshold,
                service_level_target=st.service_level_target,
                short_abandon_threshold=st.short_abandon_threshold,
                interval=st.interval,
            ),
            now=time.time(),
        )
        self._stats_timer: asyncio.TimerHandle | None = None
        self._stats_publish: asyncio.TimerHandle | None = None
        self.prompt_dirs = [config.path(d) for d in config.prompts.directories]
        self.flows, self.flow = load_flows(config, self.prompt_dirs)
        for q in config.acd.queues:
            for o in (q.on_max_wait, q.on_full, q.on_no_agents):
                if o is not None and o.kind == "flow_node" and o.target not in self.flow.nodes:
                    raise ivr.FlowInvalid(
                        [
                            ivr.Diagnostic(
                                ivr.Location(self.flow.path, 1, 1),
                                "flow.unknown_node",
                                f"queue {q.name} overflows to node '{o.target}', which the main flow lacks",
                                "add the node to the main flow or change the queue's overflow target",
                            )
                        ]
                    )
        self.store = CallStore(config.path(config.storage.database))
        pc = config.profiles
        self.profiles = profiles.ProfileStore(
            config.path(pc.database or config.storage.database),
            http=profiles.HttpLookup(pc.http_url, pc.http_timeout) if pc.http_url else None,
        )
        self.resume_policy = profiles.ResumePolicy(window=pc.resume_window)
        self.codes = servicecode.ServiceCodes(secret=config.server.node.encode())
        self.watcher = reload.FlowWatcher(
            directory=config.path(config.flows.directory),
            compile=reload.compile_with(
                known_queues=[q.name for q in config.acd.queues],
                known_skills=known_skills(config),
                known_prompts=lambda: prompt_ids(self.prompt_dirs),
            ),
            on_accept=self._flows_accepted,
            on_reject=lambda _diagnostics, event: self.bus.publish(event),
            interval=config.flows.reload_interval or 1.0,
            required=(config.flows.main,),
        )
        self.recordings = config.path(config.recordings.directory)
        self.speech: SpeechService | None = None
        self._vocabulary_warned: set[str] = set()
        self._speech_change_pending = False
        if config.speech.models:  # no [speech.models]: no recognizer, every input is DTMF
            speech = dataclasses.replace(config.speech, models=config.speech_models())
            self.speech = SpeechService(speech, self.bus.publish, self._speech_changed)
        self.tts = telephony.Synthesizer(
            config.path(config.prompts.tts_cache),
            voice=config.prompts.tts_voice,
            rate=config.prompts.tts_rate,
            clock_rate=config.sip.clock_rate,
            voices=config.prompts.tts_voices,
            workers=config.prompts.tts_workers,
        )
        sip = config.sip
        public = sip.public_host or ("127.0.0.1" if sip.host == "0.0.0.0" else sip.host)
        self.endpoint = telephony.build_endpoint(
            telephony.endpoint_config(
                host=sip.host,
                public_host=public,
                port=sip.port,
                transports=sip.transports,
                rtp_port=sip.rtp_port,
                max_calls=sip.max_calls,
                clock_rate=sip.clock_rate,
                user=sip.user,
                admission=admission_limits(sip),
                trusted_proxies=tuple(sip.trusted_proxies),
            ),
            self._on_telephony,
        )
        c = config.cti
        tls = (
            cti_bridge.tls_context(str(config.path(c.tls_cert)), str(config.path(c.tls_key)))
            if c.tls_cert
            else None
        )
        self.audit = cti_bridge.AuditLog(config.path(config.storage.database))
        o = config.outbound
        self.outbound = outbound.build_guard(
            config.path(o.database or config.storage.database),
            marketing_hours=o.marketing_hours,
            holidays=o.holidays,
            timezone=o.timezone,
            service_hours=o.service_hours,
        )
        self._retention: asyncio.Task[None] | None = None
        self.cti = cti_bridge.build_cti(
            self.bus,
            [cti_bridge.Token(t.name, t.secret, frozenset(t.scopes), t.agent or None) for t in c.tokens],
            self._control,
            host=c.host,
            port=c.port,
            tls=tls,
            tls_port=c.tls_port if tls else None,
            http_port=c.http_port or None,
            http_host=c.http_host or None,
            http_tls=tls if c.http_tls else None,
            recordings=self._recording_path,
            audit=self.audit,
            limits=cti_bridge.SessionLimits(auth_timeout=c.auth_timeout),
        )
        self.mqtt: cti_bridge.MqttPublisher | None = None
        if config.mqtt is not None and self.bus.outbox is not None:
            m = config.mqtt
            self.mqtt = cti_bridge.MqttPublisher(
                cti_bridge.MqttSettings(
                    host=m.host,
                    port=m.port,
                    node=config.server.node,
                    topic_prefix=m.topic_prefix,
                    client_id=m.client_id,
                    username=m.username,
                    password=m.password,
                ),
                self.bus.outbox,
            )
            self.bus.add_sink(self.mqtt.notify)
        self.calls: dict[str, CallSession] = {}
        self._by_leg: dict[str, CallSession] = {}
        self._router_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._prompt_paths: dict[tuple[str, str], Path | None] = {}
        self._http: aiohttp.ClientSession | None = None
        self.emergency = False  # the emergency-closure switch flows read as `emergency`
        self.waiting_callbacks: dict[str, CallSession] = {}  # callbacks in line, caller gone

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Open everything; on any failure, close what was opened and raise StartError."""
        self._loop = asyncio.get_running_loop()
        try:
            (self.recordings / ".parts").mkdir(parents=True, exist_ok=True)
            await self.store.open()
            await self.profiles.open()
            await self.outbound.store.open()
            # before taking calls: close the calls, finish the recordings a killed run left
            await recovery.recover(
                store=self.store,
                outbox=self.bus.outbox,
                publish=self.bus.publish,
                recordings=self.recordings,
                mask=lambda number: mask_number(number, self.config.cti.caller_mask),
            )
            if self.config.retention.days > 0:
                r = self.config.retention
                self._retention = asyncio.create_task(
                    retention.retention_loop(
                        self.config.path(self.config.storage.database),
                        self.recordings,
                        r.days,
                        self.audit,
                        at=retention.parse_at(r.at),
                        tz=outbound.zone(r.timezone),
                    )
                )
            if self.config.flows.reload_interval > 0:
                self.watcher.prime()
                self.watcher.start()
            self.tts.start()
            self._spawn(self.tts.warm())  # workers up before the first caller needs one
            await self.cti.start()
            if self.mqtt is not None:
                self.mqtt.start()
            self.endpoint.start()
            if self.speech is not None:
                self.speech.start()  # models load in the background; until then, DTMF only
            records = [acd.CallbackRecord.from_dict(r) for r in await self.store.load_callbacks()]
            if records:
                self._run_acd(self.router.restore_callbacks(records, self._now()))
                log.info("callbacks_restored", count=len(records))
            self._stats_tick()
            if self.config.stats.publish_every > 0:
                self._stats_publish = self._loop.call_later(
                    self.config.stats.publish_every, self._publish_stats
                )
        except Exception as exc:
            await self.stop()
            raise StartError(_start_failure(exc, self.config)) from exc
        for agent in self.config.acd.agents:
            if agent.autologin:
                self._acd(acd.events.AgentLoggedIn(agent_id=agent.id))
                self._acd(acd.events.AgentBecameReady(agent_id=agent.id))
        log.info(
            "hotline_started",
            flow=self.flow.name,
            flow_version=self.flow.version,
            sip_port=self.config.sip.port,
            cti_port=self.cti.port,
        )

    async def stop(self) -> None:
        log.info("hotline_stopping", calls=len(self.calls))
        await self.watcher.stop()
        if self._retention is not None:
            self._retention.cancel()
        for session in list(self.calls.values()):
            session.end_cause = session.end_cause or "shutdown"
            await self._close_ear(session)
        await self.endpoint.shutdown()
        if self.speech is not None:
            self.speech.stop()
        for timer in (self._router_timer, self._stats_timer, self._stats_publish):
            if timer is not None:
                timer.cancel()
        if self._background:
            await asyncio.wait(self._background, timeout=10)
        await self.cti.stop()
        self.audit.close()
        if self.mqtt is not None:
            await self.mqtt.stop()
        if self.bus.outbox is not None:
            self.bus.outbox.close()
        await self.profiles.close()
        await self.outbound.store.close()
        if self._http is not None:
            await self._http.close()
        self.tts.stop()
        await self.store.close()
        log.info("hotline_stopped")

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        await self.start()  # raises StartError, having cleaned up
        try:
            await self._stopping.wait()
        finally:
            await self.stop()

    def _flows_accepted(self, flows: Any, event: Any) -> None:
        """A valid edit of flows/: new calls use it; calls in progress keep their versions."""
        self.flows = dict(flows)  # replaced, never changed in place: live calls hold the old dict
        self.flow = self.flows[self.config.flows.main]
        self.bus.publish(event)
        self._check_vocabulary()

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------- telephony
    def _on_telephony(self, event: tev.TelephonyEvent) -> None:
        if isinstance(event, tev.IncomingCall):
            self._incoming(event)
            return
        session = self._by_leg.get(event.leg_id)
        if session is None:
            return
        if session.phase.startswith("outbound"):
            self._outbound_event(session, event)
        elif event.leg_id == session.leg and session.phase == "callback_dialing":
            self._callback_leg_event(session, event)
        elif event.leg_id == session.leg:
            self._caller_event(session, event)
        else:
            self._agent_event(session, event)

    def _incoming(self, event: tev.IncomingCall) -> None:
        call_id = secrets.token_hex(8)
        started_wall = time.time()
        code = self.codes.issue(started_wall)
        session = CallSession(
            call_id=call_id,
            leg=event.leg_id,
            caller=event.caller,
            interp=self._interpreter(call_id, event.caller, code, None),
            started=self._now(),
            started_wall=started_wall,
            log=log.bind(call_id=call_id, flow=self.flow.name, service_code=code),
            service_code=code,
        )
        self.calls[call_id] = session
        self._by_leg[event.leg_id] = session
        self.bus.publish(
            hev.CallOffered(
                call_id=call_id,
                caller=event.caller,
                from_uri=event.from_uri,
                to_uri=event.to_uri,
                sip_call_id=event.sip_call_id,
                flow=self.flow.name,
                flow_version=self.flow.version,
                service_code=code,
            )
        )
        self.store.insert(
            call_id,
            sip_call_id=event.sip_call_id,
            caller=event.caller,
            from_uri=event.from_uri,
            to_uri=event.to_uri,
            flow=self.flow.name,
            flow_version=self.flow.version,
            started_at=cti_bridge.iso_utc(session.started_wall),
            service_code=code,
        )
        try:
            self.endpoint.answer(event.leg_id, 200 if self.config.sip.auto_answer else 180)
        except Exception as exc:
            session.log.error("answer_failed", error=str(exc))
            self.endpoint.hangup(event.leg_id, 500)
        self._spawn(self._load_caller(session))

    def _interpreter(
        self, call_id: str, number: str, code: str, caller: dict[str, Any] | None
    ) -> ivr.CallInterpreter:
        variables: dict[str, Any] = {
            "emergency": self.emergency,
            "call": {"id": call_id, "service_code": code, "service_code_spoken": servicecode.speakable(code)},
        }
        variables["speech"] = self._speech_variables()
        if caller is not None:
            variables["caller"] = caller
            if caller.get("language"):
                variables["language"] = caller["language"]
        return ivr.build_interpreter(
            self.flow,
            call_id,
            number,
            flows=self.flows,
            variables=variables,
            wall=datetime.datetime.now().astimezone(),
        )

    # ---------------------------------------------------------------- speech
    def _speech_variables(self) -> dict[str, Any]:
        if self.speech is None:
            return {"languages": [], "max_utterance": 0}
        return {"languages": self.speech.languages(), "max_utterance": self.config.speech.max_utterance}

    def _speech_changed(self) -> None:
        """A model loaded, or the overload alert changed: tell every call still in its IVR.
        Deferred to the next loop turn: this can be called while a call's actions run."""
        if not self._speech_change_pending and self._loop is not None:
            self._speech_change_pending = True
            self._loop.call_soon(self._apply_speech_change)

    def _apply_speech_change(self) -> None:
        self._speech_change_pending = False
        self._check_vocabulary()
        values = {"speech": self._speech_variables()}
        for s in list(self.calls.values()):
            if s.phase == "ivr":
                self._feed_variables(s, values)

    def _check_vocabulary(self) -> None:
        """Warn (file:line) about flow phrases the loaded models cannot recognize, once each."""
        if self.speech is None:
            return
        for d in vocabulary_warnings(self.flows.values(), self.speech.knows):
            if str(d) not in self._vocabulary_warned:
                self._vocabulary_warned.add(str(d))
                log.warning(
                    "flow_speech_warning", file=d.loc.file, line=d.loc.line, code=d.code, message=str(d)
                )

    def _listen(self, s: CallSession, action: ivr.Listen) -> None:
        if self.speech is None:
            self._ivr(
                s,
                s.interp.handle(
                    ivr.SpeechRecognized(token=action.token, status="unavailable", text=""), self._now()
                ),
            )
            return
        if s.ear is None:
            s.ear = CallEar(
                self.speech,
                s.call_id,
                start_ear=lambda path: self.endpoint.listen(s.leg, path),
                stop_ear=lambda: self.endpoint.stop_listen(s.leg),
                report=lambda event: self._heard(s, event),
                log=s.log,
            )
        s.ear.listen(action)

    def _heard(self, s: CallSession, event: ivr.SpeechStarted | ivr.SpeechRecognized) -> None:
        if s.phase == "ended":
            return
        self._ivr(s, s.interp.handle(event, self._now()))

    async def _close_ear(self, s: CallSession) -> None:
        ear, s.ear = s.ear, None
        if ear is not None:
            await ear.close()

    async def _load_caller(self, s: CallSession) -> None:
        """The caller's profile and recent contacts, before the IVR says a word; a slow
        or broken lookup only costs its deadline and the call goes on without it."""
        pc = self.config.profiles
        caller: dict[str, Any]
        try:
            caller, _offer = await asyncio.wait_for(
                self.profiles.caller_for_call(
                    s.caller,
                    s.started_wall,
                    self.resume_policy,
                    recent_within=pc.recent_window,
                    node_exists=lambda f, n: f in self.flows and n in self.flows[f].nodes,
                ),
                pc.http_timeout + 1.0,
            )
        except Exception as exc:
            s.log.warning("profile_lookup_failed", error=f"{type(exc).__name__}: {exc}")
            caller = profiles.caller_variables(s.caller, None, now_wall=s.started_wall)
        if s.phase == "ended":
            return
        if not s.ivr_started:
            s.interp = self._interpreter(s.call_id, s.caller, s.service_code, caller)
        s.profile_tier = caller.get("tier") or None
        s.caller_ready = True
        self._maybe_start_ivr(s)

    def _caller_event(self, s: CallSession, event: tev.TelephonyEvent) -> None:
        match event:
            case tev.LegAnswered():
                s.confirmed = True
                s.answered_at = self._now()
                self.bus.publish(hev.CallAnswered(call_id=s.call_id))
                self._maybe_start_ivr(s)
            case tev.LegMediaReady():
                s.media_ready = True
                self._maybe_start_ivr(s)
            case tev.DtmfReceived(digit=digit, method=method):
                s.log.debug("dtmf", method=method)  # the digit is in ivr.input (and may be secret)
                s.dtmf_at = time.perf_counter()  # loop.time() has only ms resolution under uvloop
                if s.phase in ("ivr", "queued"):
                    self._ivr(s, s.interp.handle(ivr.DigitPressed(digit=digit), self._now()))
            case tev.PlaybackFinished(token=token):
                if token == s.playing:
                    s.playing = None
                    self._ivr(s, s.interp.handle(ivr.PromptFinished(token=token), self._now()))
            case tev.TransferEnded(code=code):
                s.log.info("transfer_ended", code=code)
                self.endpoint.hangup(s.leg)
            case tev.LegEnded(code=code):
                self._caller_gone(s, code)

    def _agent_event(self, s: CallSession, event: tev.TelephonyEvent) -> None:
        leg = event.leg_id
        if isinstance(event, tev.LegEnded):
            self._by_leg.pop(leg, None)
            if leg == s.agent_leg and s.phase == "connected":
                assert s.agent_id is not None
                after = getattr(s.interp.node, "after_agent", None)
                if after is not None:  # e.g. a post-call survey: the caller stays on the line
                    self._finish_recordings(s, self._recording_summary(s))
                    s.agent_leg = None
                    self._acd_from_sip(acd.events.AgentHungUp(call_id=s.call_id, agent_id=s.agent_id))
                    s.phase = "ivr"
                    self._ivr(s, s.interp.jump(after, self._now()))
                    return
                s.agent_leg = None
                s.end_cause = "agent_hangup"
                self._acd_from_sip(acd.events.AgentHungUp(call_id=s.call_id, agent_id=s.agent_id))
                self.endpoint.hangup(s.leg)
                return
        rung = next((a for a in s.ringing.values() if a.leg == leg), None)
        if rung is None:
            return  # a leg we already gave up on
        match event:
            case tev.LegAnswered():
                rung.confirmed = True
            case tev.LegMediaReady():
                rung.media = True
            case tev.LegEnded(code=code):
                del s.ringing[rung.agent_id]
                if s.phase == "callback_dialing" and rung.confirmed:
                    # the agent gave up while their customer was being dialled: drop that leg too
                    self._acd_from_sip(acd.events.AgentHungUp(call_id=s.call_id, agent_id=rung.agent_id))
                    self.endpoint.hangup(s.leg)  # its end is handled as a failed attempt
                elif s.phase in ("queued", "callback"):
                    cause = _RING_CAUSES.get(code, f"sip_{code}")
                    self._acd_from_sip(
                        acd.events.AgentRingFailed(call_id=s.call_id, agent_id=rung.agent_id, cause=cause)
                    )
                return
        if rung.confirmed and rung.media and s.phase in ("queued", "callback"):
            self._acd_from_sip(acd.events.AgentAnswered(call_id=s.call_id, agent_id=rung.agent_id))

    def _maybe_start_ivr(self, s: CallSession) -> None:
        if s.confirmed and s.media_ready and s.caller_ready and not s.ivr_started:
            s.ivr_started = True
            self._ivr(s, s.interp.start(self._now()))

    def _caller_gone(self, s: CallSession, code: int) -> None:
        now = self._now()
        if s.timer is not None:
            s.timer.cancel()
        cause = s.end_cause
        if s.callback is not None and s.phase == "queued" and self.router.has_call(s.call_id):
            cause = "callback_requested"  # the caller hung up (or the flow did); their place is kept
        if cause is None and code == 408 and not s.confirmed:
            cause = "no_ack"  # answered, but the caller's ACK never came (telephony/admission.py)
        if cause is None:
            cause = {"queued": "abandoned", "connected": "caller_hangup"}.get(s.phase, "caller_hangup")
        phase, s.phase = s.phase, "ended"
        self._spawn(self._close_ear(s))
        if self.router.has_call(s.call_id):
            self._acd_from_sip(acd.events.CallerHungUp(call_id=s.call_id))
        for rung in s.ringing.values():
            self.endpoint.hangup(rung.leg)
        if s.agent_leg is not None:
            self.endpoint.hangup(s.agent_leg)
        answered = s.answered_at or now
        queued = s.queued_at
        connected = s.connected_at
        wait = ((connected or now) - queued) if queued is not None else 0.0
        talk = (now - connected) if connected is not None else 0.0
        summary = {
            "caller": mask_number(s.caller, self.config.cti.caller_mask),
            "service_code": s.service_code,
            "profile_tier": s.profile_tier,
            "ivr_path": list(s.interp.path),
            "inputs": [dict(i) for i in s.interp.inputs],  # secure entries are already masked
            "keywords": list(s.keywords),
            "escalation": s.interp.escalation,
            "queue": s.queue,
            "wait_seconds": round(wait, 3),
            "agent_id": s.agent_id if connected is not None else None,
            "talk_seconds": round(talk, 3),
            "disposition": cause,
            "survey": dict(s.interp.survey) or None,
        }
        self._finish_recordings(s, summary)
        ended = hev.CallEnded(
            call_id=s.call_id,
            cause=cause,
            sip_code=code,
            queue=s.queue,
            agent_id=s.agent_id,
            total_seconds=now - s.started,
            ivr_seconds=(queued or now) - answered if s.answered_at else 0.0,
            wait_seconds=wait,
            talk_seconds=talk,
            summary=summary,
        )
        self.bus.publish(ended)
        self.store.update(
            s.call_id,
            ended_at=cti_bridge.iso_utc(time.time()),
            cause=cause,
            queue=s.queue,
            agent_id=s.agent_id,
            ivr_seconds=ended.ivr_seconds,
            wait_seconds=ended.wait_seconds,
            talk_seconds=ended.talk_seconds,
            total_seconds=ended.total_seconds,
            ivr_path=s.interp.path,
            inputs=s.interp.inputs,
        )
        s.log.info(
            "call_summary",
            caller=s.caller,
            cause=cause,
            last_phase=phase,
            queue=s.queue,
            agent_id=s.agent_id,
            ivr_path=s.interp.path,
            seconds=round(ended.total_seconds, 2),
        )
        self._spawn(
            self.profiles.record_contact(
                s.caller,
                s.call_id,
                time.time(),
                s.interp.path[-1] if s.interp.path else None,
                s.queue,
                s.agent_id,
                cause,
                flow=s.interp.flow.name,
                flow_version=s.interp.flow.version,
                priority=s.priority,
                waited_seconds=wait,
                agent_connected=connected is not None,
            )
        )
        self.calls.pop(s.call_id, None)
        self._by_leg.pop(s.leg, None)
        if cause == "callback_requested":
            self.waiting_callbacks[s.call_id] = s  # the router keeps its place in line

    # ------------------------------------------------------------------- IVR
    def _ivr(self, s: CallSession, outputs: list[ivr.Output]) -> None:
        for out in outputs:
            match out:
                case ivr.PlayPrompt(prompt=prompt, token=token, language=language):
                    s.playing = token
                    self._spawn(self._play(s, prompt, token, language))
                case ivr.StopPrompt(token=token):
                    if s.playing == token:
                        s.playing = None
                        self.endpoint.stop_play(s.leg)
                        ear = s.ear
                        if ear is not None and ear.speech_started_at is not None:
                            # barge-in: from the first voiced sample to the prompt stopped
                            ms = round(1000 * (time.perf_counter() - ear.speech_started_at), 1)
                            log.info("barge_in", call_id=s.call_id, ms=ms)
                            ear.speech_started_at = None
                case ivr.Listen():
                    self._listen(s, out)
                case ivr.StopListening(token=token):
                    if s.ear is not None:
                        s.ear.stop(token)
                case ivr.Enqueue(queue=queue, priority=priority, data=data, skills=skills):
                    s.phase, s.queue, s.queued_at, s.priority = "queued", queue, self._now(), priority
                    preferred, seconds = self._preferred_agent(s, queue)
                    self._acd(
                        acd.events.CallEnqueued(
                            call_id=s.call_id,
                            queue=queue,
                            priority=priority,
                            data=data,
                            preferred_agent=preferred,
                            preferred_seconds=seconds,
                            skills=tuple(skills),
                        )
                    )
                case ivr.Transfer(to=to):
                    s.end_cause = "transferred"
                    self._safely(s, self.endpoint.transfer, s.leg, to)
                case ivr.StartRecording():
                    path = self.recordings / f"{s.call_id}-voicemail.wav"
                    if self._safely(s, self.endpoint.record, [(s.leg, path)]):
                        s.voicemail = path
                case ivr.PauseRecording() | ivr.ResumeRecording():
                    paused = isinstance(out, ivr.PauseRecording)
                    for leg in (s.leg, s.agent_leg):
                        if leg is not None:
                            self.endpoint.pause_recording(leg, paused)
                    self._mark_gap(s, paused, out.reason)
                case ivr.HttpLookup():
                    self._spawn(self._lookup(s, out))
                case ivr.RequestCallback(number=number, data=data):
                    s.callback = number or s.caller
                    self._acd(acd.events.CallbackRequested(call_id=s.call_id, number=s.callback, data=data))
                case ivr.HangUp(reason=reason):
                    s.end_cause = s.end_cause or "ivr_hangup"
                    s.log.info("ivr_hangup", reason=reason)
                    self.endpoint.hangup(s.leg)
                case _ if hasattr(out, "wire"):
                    self.bus.publish(out)  # IvrInput, IvrEscalated, IvrInterrupted, SurveyAnswered
                    if isinstance(out, ivr.IvrInterrupted):
                        s.keywords.append({"node": out.node, "input": out.input, "reason": out.reason})
                    if isinstance(out, ivr.SurveyAnswered):
                        self.store.update(s.call_id, survey=dict(s.interp.survey))
                case _:
                    s.log.error("ivr_action_unsupported", action=type(out).__name__)
        self._arm_call_timer(s)

    async def _lookup(self, s: CallSession, req: ivr.HttpLookup) -> None:
        """Run a flow's HTTP lookup; the interpreter times out on its own as well."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        reply: ivr.LookupResult | ivr.LookupFailed
        try:
            async with self._http.request(
                req.method, req.url, json=req.json, timeout=aiohttp.ClientTimeout(total=req.timeout)
            ) as resp:
                body = await untrusted.read_json(resp)  # bounded, and safe for every sink
                reply = ivr.LookupResult(request_id=req.request_id, status=resp.status, body=body)
        except Exception as exc:  # timeout, refused, not JSON ...: the flow takes its fallback exit
            reason = type(exc).__name__
            s.log.warning(
                "lookup_failed", url=req.url, reason=reason, **({} if req.sensitive else {"error": str(exc)})
            )
            reply = ivr.LookupFailed(request_id=req.request_id, reason=reason)
        if s.phase != "ended":
            self._ivr(s, s.interp.handle(reply, self._now()))

    def _safely(self, s: CallSession, fn: Any, *args: Any) -> bool:
        try:
            fn(*args)
            return True
        except Exception as exc:
            s.log.error("telephony_action_failed", action=getattr(fn, "__name__", "?"), error=str(exc))
            return False

    def _arm_call_timer(self, s: CallSession) -> None:
        if s.timer is not None:
            s.timer.cancel()
            s.timer = None
        deadline = s.interp.next_deadline()
        if deadline is not None and self._loop is not None and s.phase != "ended":
            s.timer = self._loop.call_at(deadline, self._call_timer, s)

    def _call_timer(self, s: CallSession) -> None:
        s.timer = None
        if s.phase != "ended":
            self._ivr(s, s.interp.on_timer(self._now()))

    async def _play(self, s: CallSession, prompt: ivr.Prompt, token: int, language: str) -> None:
        wav = await self._resolve_prompt(prompt, language)
        if s.playing != token or s.phase == "ended":
            return  # stopped, replaced or hung up while it was being found
        try:
            self.endpoint.play(s.leg, wav, token)
            if s.dtmf_at is not None:  # server-side: keypress drained from pjsua2 -> next prompt playing
                log.info(
                    "dtmf_to_prompt", call_id=s.call_id, ms=round(1000 * (time.perf_counter() - s.dtmf_at), 3)
                )
                s.dtmf_at = None
            ear = s.ear
            if ear is not None and ear.speech_end_at is not None:
                # server-side: the caller's last voiced sample -> the next prompt playing
                ms = round(1000 * (time.perf_counter() - ear.speech_end_at), 1)
                log.info("speech_to_prompt", call_id=s.call_id, ms=ms)
                ear.speech_end_at = None
        except Exception as exc:
            s.log.error("play_failed", wav=str(wav), error=str(exc))
            self._on_telephony(tev.PlaybackFinished(leg_id=s.leg, token=token))

    async def _resolve_prompt(self, prompt: ivr.Prompt, language: str = "") -> Path:
        """The WAV: `<dir>/<language>/<id>.wav`, then `<dir>/<id>.wav`, in each prompt
        directory in order; else the text through the TTS fallback; else a tone."""
        if prompt.id is not None:
            key = (prompt.id, language)
            if key not in self._prompt_paths:
                names = ([f"{language}/{prompt.id}.wav"] if language else []) + [f"{prompt.id}.wav"]
                candidates = (d / name for d in self.prompt_dirs for name in names)
                self._prompt_paths[key] = next((c for c in candidates if c.is_file()), None)
            path = self._prompt_paths[key]
            if path is not None:
                return path
        if prompt.text:
            return await self.tts.speak(prompt.text, language)
        log.error("prompt_missing", prompt=prompt.id)
        return self.tts.failure_tone

    # ------------------------------------------------------------------- ACD
    def _acd(self, event: acd.events.Input) -> None:
        self._run_acd(self.router.handle(event, self._now()))

    def _acd_from_sip(self, event: acd.events.Input) -> None:
        """A SIP happening the router may no longer expect (a race with its own
        timers, e.g. an answer crossing a ring timeout): log it, keep serving."""
        try:
            self._acd(event)
        except acd.AcdUsageError as exc:
            log.warning("acd_event_ignored", acd_event=type(event).__name__, code=exc.code, error=str(exc))

    def _router_tick(self) -> None:
        self._router_timer = None
        self._run_acd(self.router.on_timer(self._now()))

    def _stats_tick(self) -> None:
        """Close finished roll-up intervals, save their rows, and wake up at the next boundary."""
        assert self._loop is not None
        self.stats.on_timer(time.time())
        self.store.save_intervals(
            "queue_intervals", "queue", [r.as_dict() for r in self.stats.take_intervals()]
        )
        agent_rows = [r.as_dict() for r in self.stats.take_agent_intervals()]
        self.store.save_intervals("agent_intervals", "agent_id", agent_rows)
        delay = max(0.0, self.stats.next_deadline() - time.time()) + 0.001
        self._stats_timer = self._loop.call_later(delay, self._stats_tick)

    def _publish_stats(self) -> None:
        assert self._loop is not None
        wall = time.time()
        for queue in self.router.queues:
            self.bus.publish(hev.QueueStats(queue=queue, figures=self.stats.queue_figures(queue, wall)))
        self._stats_publish = self._loop.call_later(self.config.stats.publish_every, self._publish_stats)

    def _run_acd(self, outputs: list[acd.events.Output]) -> None:
        moved: set[str] = set()  # queues whose line changed
        callbacks_changed = False
        self.stats.observe_all(outputs, time.time())
        for out in outputs:
            match out:
                case acd.events.RingAgent(call_id=cid, agent_id=aid, contact=contact):
                    s = self.calls.get(cid) or self._callback_session(cid, out.callback_number or "")
                    s.agent_id = aid
                    headers = {"X-Hotline-Call-Id": cid, "X-Hotline-Caller": s.caller}
                    leg = self.endpoint.dial(contact, headers)
                    s.ringing[aid] = AgentLeg(agent_id=aid, leg=leg)
                    self._by_leg[leg] = s
                    moved.add(s.queue or "")
                case acd.events.CancelRing(call_id=cid, agent_id=aid):
                    rung = self.calls[cid].ringing.pop(aid, None)
                    if rung is not None:
                        self.endpoint.hangup(rung.leg)
                case acd.events.BridgeCall(call_id=cid, agent_id=aid):
                    self._bridge(self.calls[cid], aid)
                case acd.events.DialCallback(call_id=cid, number=number, attempt=attempt):
                    self._dial_callback(self.calls[cid], number, attempt)
                case acd.events.OverflowCall(call_id=cid, kind=kind, target=target):
                    self._overflow(self.calls[cid], str(kind), target)
                case acd.events.CallConnected():
                    self.calls[out.call_id].connected_at = self._now()
                    self.bus.publish(out)
                case acd.events.CallQueued(call_id=cid, queue=queue):
                    self.calls[cid].queue = queue  # may be an overflow queue
                    moved.add(queue)
                    self.bus.publish(out)
                case acd.events.CallAbandoned() | acd.events.CallOverflowed():
                    moved.add(out.queue)
                    self.bus.publish(out)
                case _:
                    self.bus.publish(out)
                    if getattr(out, "wire", "").startswith("callback."):
                        callbacks_changed = True
        if callbacks_changed:
            self.store.save_callbacks([r.as_dict() for r in self.router.pending_callbacks(self._now())])
        self._tell_positions(moved)
        deadline = self.router.next_deadline()
        if self._router_timer is not None:
            self._router_timer.cancel()
            self._router_timer = None
        if deadline is not None and self._loop is not None:
            self._router_timer = self._loop.call_at(deadline, self._router_tick)

    def _tell_positions(self, queues: set[str]) -> None:
        """Keep each waiting caller's IVR told of their place in line (for announcements)."""
        for queue in queues:
            if queue not in self.router.queues:
                continue
            for position, cid in enumerate(self.router.waiting(queue), start=1):
                s = self.calls.get(cid)
                if s is not None and s.phase == "queued" and s.position != position:
                    s.position = position
                    ewt = self.router.ewt(cid, self._now())
                    values: dict[str, Any] = {"queue.position": position}
                    if ewt is not None:
                        values.update({"queue.ewt": round(ewt), "queue.ewt_minutes": max(1, round(ewt / 60))})
                    # after the outputs being run now (e.g. the Enqueue that caused this) are done
                    assert self._loop is not None
                    self._loop.call_soon(self._feed_variables, s, values)

    def _preferred_agent(self, s: CallSession, queue: str) -> tuple[str | None, float]:
        """The agent tried alone first: one the flow or CRM named (variable `preferred_agent`),
        else the agent who last served this caller, for the queue's preferred_seconds."""
        seconds = next((q.preferred_seconds for q in self.config.acd.queues if q.name == queue), 0.0)
        if seconds <= 0:
            return None, 0.0
        named = s.interp.variables.get("preferred_agent")
        if isinstance(named, str) and named in self.router.agents:
            return named, seconds
        caller = s.interp.variables.get("caller")
        for contact in caller.get("recent", []) if isinstance(caller, dict) else []:
            if contact.get("agent_id") in self.router.agents:
                return str(contact["agent_id"]), seconds
        return None, 0.0

    async def _say_and_hang_up(self, s: CallSession, text: str) -> None:
        wav = await self._resolve_prompt(ivr.Prompt(id=None, text=text))
        if s.phase == "ended":
            return
        seconds = 0.0
        if self._safely(s, self.endpoint.play, s.leg, wav, 0):
            seconds = telephony.wav_seconds(wav)
        await asyncio.sleep(seconds + 0.3)
        self.endpoint.hangup(s.leg)

    def _feed_variables(self, s: CallSession, values: dict[str, Any]) -> None:
        if s.phase not in ("ended", "connected"):
            self._ivr(s, s.interp.handle(ivr.VariablesUpdated(values=values), self._now()))

    def _legless_session(self, call_id: str, number: str) -> CallSession:
        """A call we originate (a restored callback, click-to-dial): no inbound leg yet."""
        code = self.codes.issue(time.time())
        return CallSession(
            call_id=call_id,
            leg="",
            caller=number,
            interp=self._interpreter(call_id, number, code, None),
            started=self._now(),
            started_wall=time.time(),
            log=log.bind(call_id=call_id, service_code=code),
            service_code=code,
        )

    def _callback_session(self, call_id: str, number: str) -> CallSession:
        """The session that carries a callback from agent ring to customer talk."""
        s = self.waiting_callbacks.pop(call_id, None)
        if s is None:  # restored after a restart: nothing of the original call is in memory
            s = self._legless_session(call_id, number)
            s.callback = number
        s.phase, s.ivr_started, s.caller_ready = "callback", True, True
        s.confirmed = s.media_ready = False
        s.end_cause = None
        s.ringing.clear()
        self.calls[call_id] = s
        return s

    def _dial_callback(self, s: CallSession, number: str, attempt: int) -> None:
        """The agent is on the line: now call the customer."""
        uri = (
            number
            if number.startswith(("sip:", "sips:"))
            else self.config.callbacks.dial_uri.format(number=number)
        )
        s.log.info("callback_dialing", attempt=attempt)
        s.phase = "callback_dialing"
        s.leg = self.endpoint.dial(uri, {"X-Hotline-Call-Id": s.call_id})
        s.started, s.started_wall = self._now(), time.time()
        self._by_leg[s.leg] = s

    def _callback_leg_event(self, s: CallSession, event: tev.TelephonyEvent) -> None:
        match event:
            case tev.LegAnswered():
                s.confirmed = True
                s.answered_at = self._now()
            case tev.LegMediaReady():
                s.media_ready = True
            case tev.LegEnded(code=code):
                self._by_leg.pop(s.leg, None)
                s.phase = "callback"
                cause = _RING_CAUSES.get(code, f"sip_{code}")
                self._acd_from_sip(acd.events.CallbackFailed(call_id=s.call_id, cause=cause))
                for rung in list(s.ringing.values()):  # the agent waiting on the line is released
                    self.endpoint.hangup(rung.leg)
                s.ringing.clear()
                if self.router.has_call(s.call_id):
                    self.waiting_callbacks[s.call_id] = self.calls.pop(s.call_id)
                else:
                    self.calls.pop(s.call_id, None)
                return
        if s.confirmed and s.media_ready:
            s.phase = "queued"
            self.bus.publish(hev.CallAnswered(call_id=s.call_id))
            self._acd_from_sip(acd.events.CallbackAnswered(call_id=s.call_id))

    def _overflow(self, s: CallSession, kind: str, target: str) -> None:
        """The ACD gave the caller up to a voicemail box, a callback, or a node of their flow."""
        s.log.info("overflow", kind=kind, target=target, queue=s.queue)
        if kind == "flow_node":
            s.phase, s.queue, s.queued_at = "ivr", None, None
            self._ivr(s, s.interp.jump(target, self._now()))
            return
        if kind == "callback":
            s.callback = s.caller
            self._acd(acd.events.CallbackRequested(call_id=s.call_id, number=s.caller, queue=target))
            self._ivr(s, s.interp.handle(ivr.AgentConnected(), self._now()))  # the IVR's part is over
            self._spawn(self._say_and_hang_up(s, "All our agents are busy. We will call you back."))
            return
        self._ivr(s, s.interp.handle(ivr.AgentConnected(), self._now()))  # the IVR's part is over
        s.playing = None
        self.endpoint.stop_play(s.leg)
        s.phase = "voicemail"
        s.end_cause = "overflow_voicemail"
        path = self.recordings / f"{s.call_id}-voicemail.wav"
        if self._safely(s, self.endpoint.record, [(s.leg, path)]):
            s.voicemail = path

    def _bridge(self, s: CallSession, agent_id: str) -> None:
        rung = s.ringing.pop(agent_id)
        s.agent_id, s.agent_leg = agent_id, rung.leg
        s.phase = "connected"
        self._spawn(self._close_ear(s))
        self._ivr(s, s.interp.handle(ivr.AgentConnected(), self._now()))
        s.playing = None
        self.endpoint.stop_play(s.leg)
        if not self._safely(s, self.endpoint.bridge, s.leg, rung.leg):
            self.endpoint.hangup(s.leg)
            return
        self._start_recording(s, rung.leg)

    def _start_recording(self, s: CallSession, agent_leg: str) -> None:
        """Caller left, agent right: one mono recorder per leg, merged when it ends."""
        parts = self.recordings / ".parts"
        name = s.call_id if s.segment == 1 else f"{s.call_id}-{s.segment}"
        caller_part, agent_part = parts / f"{name}-caller.wav", parts / f"{name}-agent.wav"
        if self._safely(s, self.endpoint.record, [(s.leg, caller_part), (agent_leg, agent_part)]):
            s.recording = (caller_part, agent_part, self.recordings / f"{name}.wav")
            s.gaps = []

    def _recording_path(self, call_id: str) -> Path | None:
        """The file GET /recordings/<call_id> serves: the call recording, else the voicemail."""
        if not all(ch.isalnum() or ch == "-" for ch in call_id):
            return None  # never a path outside the recordings directory
        for name in (f"{call_id}.wav", f"{call_id}-voicemail.wav"):
            path = self.recordings / name
            if path.is_file():
                return path
        return None

    def _recording_summary(self, s: CallSession) -> dict[str, Any]:
        """What a recording's sidecar needs from a call that goes on (the final summary
        is built when the caller hangs up)."""
        return {
            "service_code": s.service_code,
            "caller": mask_number(s.caller, self.config.cti.caller_mask),
            "inputs": [dict(i) for i in s.interp.inputs],
        }

    def _finish_recordings(self, s: CallSession, summary: dict[str, Any]) -> None:
        """Close the recorders now; merge, verify and checksum off the loop thread."""
        if s.recording is not None:
            self.endpoint.stop_recording(s.leg)
            if s.agent_leg is not None:
                self.endpoint.stop_recording(s.agent_leg)
            sidecar = {
                "call_id": s.call_id,
                "service_code": summary["service_code"],
                "caller": summary["caller"],
                "queue": s.queue,
                "agent_id": s.agent_id,
                "started": cti_bridge.iso_utc(time.time() - (self._now() - (s.connected_at or self._now()))),
                "flow": s.interp.flow.name,
                "flow_version": s.interp.flow.version,
                "ivr_inputs": summary["inputs"],
                "channels": {"left": "caller", "right": "agent"},
                "gaps": [dict(g) for g in s.gaps],  # recording pauses: {"from", "to"} ISO times
            }
            self._spawn(self._publish_recording(s.call_id, *s.recording, sidecar))
            s.recording = None
        if s.voicemail is not None:
            self.endpoint.stop_recording(s.leg)
            self._spawn(self._publish_voicemail(s.call_id, s.voicemail))
            s.voicemail = None

    async def _publish_recording(
        self, call_id: str, left: Path, right: Path, final: Path, sidecar: dict[str, Any]
    ) -> None:
        try:
            result = await asyncio.to_thread(telephony.merge_stereo, left, right, final)
            sidecar.update(seconds=round(result.seconds, 3), sha256=result.sha256, file=final.name)
            side = final.with_suffix(".json")
            await asyncio.to_thread(_write_json, side, sidecar)
        except Exception as exc:
            log.error("recording_failed", call_id=call_id, error=f"{type(exc).__name__}: {exc}")
            self.bus.publish(
                hev.RecordingFailed(call_id=call_id, kind="call", error=f"{type(exc).__name__}: {exc}")
            )
            return
        left.unlink(missing_ok=True)
        right.unlink(missing_ok=True)
        self.store.update(call_id, recording_path=str(final.resolve()), recording_sha256=result.sha256)
        self.bus.publish(
            hev.RecordingReady(
                call_id=call_id,
                kind="call",
                path=str(final.resolve()),
                seconds=result.seconds,
                channels=result.channels,
                sha256=result.sha256,
                sidecar=str(side.resolve()),
            )
        )

    async def _publish_voicemail(self, call_id: str, path: Path) -> None:
        try:
            seconds = await asyncio.to_thread(telephony.wav_seconds, path)
            digest = await asyncio.to_thread(telephony.sha256_file, path)
        except Exception as exc:
            self.bus.publish(hev.RecordingFailed(call_id=call_id, kind="voicemail", error=str(exc)))
            return
        self.bus.publish(
            hev.RecordingReady(
                call_id=call_id,
                kind="voicemail",
                path=str(path.resolve()),
                seconds=seconds,
                channels=1,
                sha256=digest,
            )
        )

    # ------------------------------------------------------------------- CTI
    async def _control(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """Commands from the CTI socket that act on agents, calls, queues and flows."""
        handler = self._commands().get(cmd)
        if handler is None:
            known = ", ".join(sorted({"auth", "subscribe", "ping", *self._commands()}))
            raise cti_bridge.CtiError("cti.unknown_command", f"unknown command '{cmd}'; known: {known}")
        try:
            result = handler(args)
            return await result if inspect.isawaitable(result) else result
        except acd.AcdError as exc:
            raise cti_bridge.CtiError(exc.code, str(exc)) from None
        except telephony.TelephonyError as exc:
            raise cti_bridge.CtiError(exc.code, f"the call's SIP leg is gone: {exc}") from None

    def _commands(self) -> dict[str, Any]:
        return {
            "agent.login": lambda a: self._cmd_agent("agent.login", a),
            "agent.ready": lambda a: self._cmd_agent("agent.ready", a),
            "agent.not_ready": lambda a: self._cmd_agent("agent.not_ready", a),
            "agent.logout": lambda a: self._cmd_agent("agent.logout", a),
            "agent.end_wrap_up": self._cmd_end_wrap_up,
            "call.hangup": self._cmd_hangup,
            "call.answer": self._cmd_answer,
            "call.hold": lambda a: self._cmd_hold(a, hold=True),
            "call.retrieve": lambda a: self._cmd_hold(a, hold=False),
            "call.transfer": self._cmd_transfer,
            "call.set_variables": self._cmd_set_variables,
            "call.recording": self._cmd_recording,
            "queue.status": self._cmd_queue_status,
            "queue.set_priority": self._cmd_set_priority,
            "call.make": self._cmd_make_call,
            "flow.reload": self._cmd_reload,
            "flow.emergency": self._cmd_emergency,
        }

    def _cmd_agent(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        agent_id = cti_bridge.require_str(args, "agent")
        event: acd.events.Input
        if cmd == "agent.login":
            contact = args.get("contact")
            if contact is not None and (
                not isinstance(contact, str) or not contact.startswith(("sip:", "sips:"))
            ):
                raise cti_bridge.CtiError(
                    "cti.bad_request", '"contact" must be a SIP URI like sip:1001@10.0.0.5:5060'
                )
            event = acd.events.AgentLoggedIn(agent_id=agent_id, contact=contact)
        elif cmd == "agent.ready":
            event = acd.events.AgentBecameReady(agent_id=agent_id)
        elif cmd == "agent.not_ready":
            event = acd.events.AgentWentNotReady(
                agent_id=agent_id, reason=cti_bridge.require_str(args, "reason")
            )
        else:
            event = acd.events.AgentLoggedOut(agent_id=agent_id)
        self._acd(event)
        return {"state": self.router.agent_state(agent_id).value}

    def _session(self, args: dict[str, Any]) -> CallSession:
        call_id = cti_bridge.require_str(args, "call_id")
        s = self.calls.get(call_id)
        if s is None:
            raise cti_bridge.CtiError("call.unknown", f"no call {call_id} is in progress")
        return s

    def _cmd_end_wrap_up(self, args: dict[str, Any]) -> dict[str, Any]:
        agent_id = cti_bridge.require_str(args, "agent")
        if agent_id in self.router.agents and self.router.agent_state(agent_id) is not acd.AgentState.WRAP_UP:
            state = self.router.agent_state(agent_id).value
            raise cti_bridge.CtiError("acd.not_in_wrap_up", f"agent {agent_id} is {state}, not in wrap-up")
        self._acd(acd.events.AgentBecameReady(agent_id=agent_id))
        return {"state": self.router.agent_state(agent_id).value}

    def _cmd_answer(self, args: dict[str, Any]) -> dict[str, Any]:
        """Answer a ringing incoming call (with [sip] auto_answer = false)."""
        s = self._session(args)
        if s.confirmed or s.phase != "ivr":
            raise cti_bridge.CtiError("call.already_answered", f"call {s.call_id} is already answered")
        self.endpoint.answer(s.leg)
        return {}

    def _cmd_hangup(self, args: dict[str, Any]) -> dict[str, Any]:
        s = self._session(args)
        s.end_cause = s.end_cause or "hung_up_by_cti"
        self.endpoint.hangup(s.leg)
        return {}

    def _cmd_hold(self, args: dict[str, Any], *, hold: bool) -> dict[str, Any]:
        s = self._session(args)
        if s.phase != "connected":
            raise cti_bridge.CtiError("call.not_connected", f"call {s.call_id} is not talking to an agent")
        (self.endpoint.hold if hold else self.endpoint.retrieve)(s.leg)
        return {}

    def _cmd_transfer(self, args: dict[str, Any]) -> dict[str, Any]:
        s = self._session(args)
        to, queue = args.get("to"), args.get("queue")
        if isinstance(to, str) and to.startswith(("sip:", "sips:")) and queue is None:
            s.end_cause = "transferred"
            self.endpoint.transfer(s.leg, to)
            return {}
        if isinstance(queue, str) and to is None:
            if queue not in self.router.queues:
                raise cti_bridge.CtiError("acd.unknown_queue", f"no queue {queue!r} is configured")
            priority = args.get("priority", 0)
            if not isinstance(priority, int):
                raise cti_bridge.CtiError("cti.bad_request", '"priority" must be an integer')
            self._requeue(s, queue, priority)
            return {"queue": queue, "position": self.router.position(s.call_id)}
        raise cti_bridge.CtiError(
            "cti.bad_request", 'give either "to" (a SIP URI, blind transfer) or "queue" (a queue name)'
        )

    def _requeue(self, s: CallSession, queue: str, priority: int) -> None:
        """Move a caller (talking, or waiting) to another queue, keeping the call up."""
        if s.phase == "connected":
            assert s.agent_id is not None and s.agent_leg is not None
            self._finish_recordings(s, self._recording_summary(s))  # both recorders close first
            leg, s.agent_leg = s.agent_leg, None  # detached: its BYE is not the agent hanging up
            self._acd(acd.events.AgentHungUp(call_id=s.call_id, agent_id=s.agent_id))
            self.endpoint.hangup(leg)
        elif self.router.has_call(s.call_id):
            self._acd(acd.events.CallerHungUp(call_id=s.call_id))  # leaves the old queue
        s.phase, s.queue, s.queued_at, s.connected_at = "queued", queue, self._now(), None
        s.segment += 1
        data = {"caller": s.caller, "transferred": True, "ivr_path": list(s.interp.path)}
        self._acd(acd.events.CallEnqueued(call_id=s.call_id, queue=queue, priority=priority, data=data))
        if s.phase == "queued":
            self._spawn(self._hold_music(s))

    async def _hold_music(self, s: CallSession) -> None:
        wav = await self._resolve_prompt(ivr.Prompt(id="pls-hold-while-try", text="Please hold."))
        if s.phase == "queued":
            s.playing = None
            self._safely(s, self.endpoint.play, s.leg, wav, 0, True)

    def _cmd_set_variables(self, args: dict[str, Any]) -> dict[str, Any]:
        s = self._session(args)
        values = args.get("variables")
        if not isinstance(values, dict) or not values:
            raise cti_bridge.CtiError(
                "cti.bad_request", '"variables" must be an object like {"tier": "gold"}'
            )
        self._ivr(s, s.interp.handle(ivr.VariablesUpdated(values=values), self._now()))
        return {}

    def _cmd_recording(self, args: dict[str, Any]) -> dict[str, Any]:
        s = self._session(args)
        action = args.get("action")
        if action not in ("start", "pause", "resume", "stop"):
            raise cti_bridge.CtiError("cti.bad_request", '"action" must be start, pause, resume or stop')
        if action == "start":
            if s.recording is not None:
                raise cti_bridge.CtiError("recording.active", f"call {s.call_id} is already being recorded")
            if s.phase != "connected" or s.agent_leg is None:
                raise cti_bridge.CtiError(
                    "call.not_connected", f"call {s.call_id} is not talking to an agent"
                )
            s.segment += 1
            self._start_recording(s, s.agent_leg)
            return {}
        if s.recording is None:
            raise cti_bridge.CtiError("recording.none", f"call {s.call_id} is not being recorded")
        legs = [leg for leg in (s.leg, s.agent_leg) if leg is not None]
        if action == "stop":
            self._finish_recordings(s, self._recording_summary(s))
            return {}
        paused = action == "pause"
        for leg in legs:
            self.endpoint.pause_recording(leg, paused)
        self._mark_gap(s, paused, "cti")
        return {}

    def _mark_gap(self, s: CallSession, paused: bool, reason: str) -> None:
        """Note a recording pause (secure entry, or a CTI pause) for the sidecar."""
        if paused and not (s.gaps and s.gaps[-1]["to"] is None):
            s.gaps.append({"from": cti_bridge.iso_utc(time.time()), "to": None, "reason": reason})
        elif not paused and s.gaps and s.gaps[-1]["to"] is None:
            s.gaps[-1]["to"] = cti_bridge.iso_utc(time.time())

    def _cmd_queue_status(self, args: dict[str, Any]) -> dict[str, Any]:
        queue = cti_bridge.require_str(args, "queue")
        if queue not in self.router.queues:
            raise cti_bridge.CtiError("acd.unknown_queue", f"no queue {queue!r} is configured")
        now = self._now()
        waiting = []
        for position, cid in enumerate(self.router.waiting(queue), start=1):
            s = self.calls.get(cid)
            since = s.queued_at if s is not None and s.queued_at is not None else now
            waiting.append(
                {
                    "call_id": cid,
                    "position": position,
                    "wait_seconds": round(now - since, 3),
                    "caller": s.caller if s is not None else None,
                }
            )
        return {"queue": queue, "waiting": waiting, "figures": self.stats.queue_figures(queue, time.time())}

    async def _cmd_make_call(self, args: dict[str, Any]) -> dict[str, Any]:
        """Click-to-dial: ring the agent first, then dial `to` and bridge them."""
        agent_id = cti_bridge.require_str(args, "agent")
        to = cti_bridge.require_str(args, "to")
        purpose = args.get("purpose")
        if purpose not in ("service", "marketing"):
            raise cti_bridge.CtiError(
                "cti.bad_request",
                '"purpose" must be "service" or "marketing" (the do-not-call list and '
                "calling hours depend on it)",
            )
        callee_tz = args.get("callee_tz", "")
        try:
            decision = await self.outbound.check(
                to, purpose, time.time(), callee_tz if isinstance(callee_tz, str) else ""
            )
        except outbound.OutboundConfigError as exc:
            raise cti_bridge.CtiError(exc.code, str(exc)) from None
        if not decision.allowed:
            assert decision.code is not None
            raise cti_bridge.CtiError(decision.code, decision.message)
        if agent_id not in self.router.agents:
            raise cti_bridge.CtiError("acd.unknown_agent", f"no agent {agent_id!r} is configured")
        if self.router.agent_state(agent_id) is not acd.AgentState.AVAILABLE:
            state = self.router.agent_state(agent_id).value
            raise cti_bridge.CtiError(
                "acd.agent_busy", f"agent {agent_id} is {state}; make calls when available"
            )
        self._acd(acd.events.AgentWentNotReady(agent_id=agent_id, reason="outbound"))  # no inbound offers now
        call_id = secrets.token_hex(8)
        s = self._legless_session(call_id, to)
        code = s.service_code
        s.log = s.log.bind(outbound=True)
        s.phase, s.ivr_started, s.caller_ready, s.agent_id, s.outbound_to = (
            "outbound_agent",
            True,
            True,
            agent_id,
            to,
        )
        leg = self.endpoint.dial(
            self.router.agents[agent_id].contact, {"X-Hotline-Call-Id": call_id, "X-Hotline-Dial": to}
        )
        s.ringing[agent_id] = AgentLeg(agent_id=agent_id, leg=leg)
        self.calls[call_id] = s
        self._by_leg[leg] = s
        self.bus.publish(
            hev.OutboundStarted(call_id=call_id, agent_id=agent_id, to=to, purpose=purpose, service_code=code)
        )
        self.store.insert(
            call_id, caller=to, started_at=cti_bridge.iso_utc(s.started_wall), service_code=code
        )
        return {"call_id": call_id, "service_code": code}

    def _outbound_event(self, s: CallSession, event: tev.TelephonyEvent) -> None:
        """Click-to-dial legs: the agent's, then the customer's."""
        rung = next((a for a in s.ringing.values() if a.leg == event.leg_id), None)
        is_agent = rung is not None or event.leg_id == s.agent_leg
        match event:
            case tev.LegEnded(code=code):
                self._by_leg.pop(event.leg_id, None)
                if s.phase == "ended":
                    return
                cause = (
                    "agent_hangup"
                    if is_agent
                    else _RING_CAUSES.get(code, "caller_hangup" if code == 200 else f"sip_{code}")
                )
                if s.phase == "outbound_talk":
                    cause = "agent_hangup" if is_agent else "caller_hangup"
                for other in [*(a.leg for a in s.ringing.values()), s.agent_leg, s.leg]:
                    if other and other != event.leg_id:
                        self.endpoint.hangup(other)
                self._end_outbound(s, cause, code)
                return
            case tev.LegAnswered():
                if rung is not None:
                    rung.confirmed = True
                else:
                    s.confirmed = True
            case tev.LegMediaReady():
                if rung is not None:
                    rung.media = True
                else:
                    s.media_ready = True
            case _:
                return
        if s.phase == "outbound_agent" and rung is not None and rung.confirmed and rung.media:
            uri = (
                s.outbound_to
                if s.outbound_to.startswith(("sip:", "sips:"))
                else self.config.callbacks.dial_uri.format(number=s.outbound_to)
            )
            s.phase = "outbound_customer"
            s.leg = self.endpoint.dial(uri, {"X-Hotline-Call-Id": s.call_id})
            self._by_leg[s.leg] = s
        elif s.phase == "outbound_customer" and s.confirmed and s.media_ready:
            s.answered_at = s.connected_at = self._now()
            self.bus.publish(hev.CallAnswered(call_id=s.call_id))
            self._bridge(s, s.agent_id or "")
            s.phase = "outbound_talk"

    def _end_outbound(self, s: CallSession, cause: str, code: int) -> None:
        now = self._now()
        s.phase = "ended"
        summary = {**self._recording_summary(s), "disposition": cause, "agent_id": s.agent_id}
        self._finish_recordings(s, summary)
        talk = (now - s.connected_at) if s.connected_at is not None else 0.0
        self.bus.publish(
            hev.CallEnded(
                call_id=s.call_id,
                cause=cause,
                sip_code=code,
                queue=None,
                agent_id=s.agent_id,
                total_seconds=now - s.started,
                ivr_seconds=0.0,
                wait_seconds=0.0,
                talk_seconds=talk,
                summary=summary,
            )
        )
        self.store.update(
            s.call_id,
            ended_at=cti_bridge.iso_utc(time.time()),
            cause=cause,
            agent_id=s.agent_id,
            talk_seconds=talk,
            total_seconds=now - s.started,
        )
        self.calls.pop(s.call_id, None)
        aid = s.agent_id
        if (
            aid is not None
            and self.router.agent_state(aid) is acd.AgentState.NOT_READY
            and self.router.agents[aid].reason == "outbound"
        ):
            self._acd(acd.events.AgentBecameReady(agent_id=aid))

    def _cmd_set_priority(self, args: dict[str, Any]) -> dict[str, Any]:
        s = self._session(args)
        priority = args.get("priority")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise cti_bridge.CtiError(
                "cti.bad_request", '"priority" must be an integer (higher is served first)'
            )
        self._acd(acd.events.CallPriorityChanged(call_id=s.call_id, priority=priority))
        s.priority = priority
        return {"position": self.router.position(s.call_id)}

    def _cmd_reload(self, args: dict[str, Any]) -> dict[str, Any]:
        """Compile flows/ now rather than at the next poll; the reply says what happened."""
        decision = self.watcher.reload_now()
        if decision is None:
            return {"reloaded": False, "flows": {n: f.version for n, f in self.flows.items()}}
        if isinstance(decision.event, reload.FlowRejected):
            e = decision.event
            raise cti_bridge.CtiError(
                "flow.rejected",
                f"{e.file}:{e.line}:{e.col}: {e.code}: {e.message} ({e.errors} error(s)); "
                "the previous flows stay live",
            )
        return {"reloaded": True, "flows": dict(decision.event.flows)}

    def _cmd_emergency(self, args: dict[str, Any]) -> dict[str, Any]:
        on = args.get("on")
        if not isinstance(on, bool):
            raise cti_bridge.CtiError("cti.bad_request", '"on" must be true or false')
        self.emergency = on
        self.bus.publish(hev.EmergencyChanged(on=on))
        for s in list(self.calls.values()):
            if s.phase in ("ivr", "queued"):
                self._ivr(s, s.interp.handle(ivr.VariablesUpdated(values={"emergency": on}), self._now()))
        return {"on": on}
