"""The wiring: build everything from config, start and stop it, and run the call controller.

Every input takes one trip: an adapter (a pjsua2 callback, a finished job, a CTI command,
the timer) turns what happened into a :mod:`calls.inputs` event; :meth:`Server._drive`
hands it to the controller with ``now`` and runs the effects it returns, in order. An
effect never calls back into the controller: what it produces (a prompt found, a profile
loaded, a recording merged, a failure) comes back later as a new input through the same
door. One timer serves the controller (its calls, the router, the statistics).

Everything here runs on the one event-loop thread that also owns pjsua2.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any

import structlog

import acd
import calls
import cti_bridge
import telephony
from calls import effects as fx
from calls import inputs as inp
from telephony import events as tev

from . import edge, ops, outbound, profiles, proxy, recovery, reload, retention, trunks, web
from .commands import Commands
from .config import Config
from .cues import build_cues, cue_policy
from .flowset import admission_limits, agent_specs, known_skills, load_flows, prompt_ids, queue_specs
from .jobs import Jobs
from .promptcheck import startup_findings
from .prompts import PromptResolver
from .qa import build_qa
from .speech import CallEar, SpeechService, vocabulary_warnings
from .store import CallStore

log = structlog.get_logger("hotline")


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
    if isinstance(exc, proxy.ProxyStartError):
        return str(exc)
    if isinstance(exc, telephony.TelephonyError):
        if config.proxy is not None:
            port = config.proxy.internal_port
            return (
                f"{exc}; is hotline's internal SIP port {port} in use? Stop the other process "
                "or set [proxy] internal_port"
            )
        return f"{exc}; is SIP port {config.sip.port} in use? Stop the other process or set [sip] port"
    return f"{type(exc).__name__}: {exc}"


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        db = config.path(config.storage.database)
        self.bus = cti_bridge.EventBus(
            outbox=cti_bridge.Outbox(
                db, retain_seconds=config.cti.retain_seconds, retain_events=config.cti.retain_events
            )
        )
        self.router = ops.TimedRouter(queue_specs(config), agent_specs(config))
        st = config.stats
        # statistics run on wall-clock seconds, so roll-up rows start on real quarter hours
        stats = acd.build_statistics(
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
        self.prompt_dirs = [config.path(d) for d in config.prompts.directories]
        flows, _main = load_flows(config, self.prompt_dirs)
        self._prompts_reported: set[str] = set()  # missing prompt ids and directories, logged once
        self._check_prompts(flows.values())
        self.recordings = config.path(config.recordings.directory)
        self.controller = calls.build_controller(
            calls.ControllerConfig(
                recordings=self.recordings,
                whole_call=config.recordings.whole_call,
                auto_answer=config.sip.auto_answer,
                caller_mask=config.cti.caller_mask,
                dial_uri=trunks.customer_dial_uri(config),
                dial_trunk=config.callbacks.trunk,
                agent_media={a.id: a.media_encryption for a in config.acd.agents},
                speech=bool(config.speech.models),
                max_utterance=config.speech.max_utterance,
                preferred_seconds={q.name: q.preferred_seconds for q in config.acd.queues},
                publish_stats_every=st.publish_every,
                dispositions={q.name: q.dispositions for q in config.acd.queues},
                default_dispositions=config.acd.dispositions,
                cues=cue_policy(config),
            ),
            self.router,
            stats,
            flows,
            config.flows.main,
            codes=calls.ServiceCodes(secret=config.server.node.encode()),
            now=time.monotonic(),
            wall=time.time(),
        )
        self.store = CallStore(db)
        pc = config.profiles
        self.profiles = profiles.ProfileStore(
            config.path(pc.database or config.storage.database),
            http=profiles.HttpLookup(pc.http_url, pc.http_timeout) if pc.http_url else None,
            keep_sentiment=config.qa.keep_sentiment,
        )
        self.watcher = reload.FlowWatcher(
            directory=config.path(config.flows.directory),
            compile=reload.compile_with(
                known_queues=[q.name for q in config.acd.queues],
                known_skills=known_skills(config),
                known_prompts=lambda: prompt_ids(self.prompt_dirs),
            ),
            on_accept=self._flows_accepted,
            on_reject=lambda _diagnostics, event: self._publish(event),
            interval=config.flows.reload_interval or 1.0,
            required=(config.flows.main,),
        )
        self.speech: SpeechService | None = None
        self._vocabulary_warned: set[str] = set()
        if config.speech.models:  # no [speech.models]: no recognizer, every input is DTMF
            speech = dataclasses.replace(config.speech, models=config.speech_models())
            self.speech = SpeechService(speech, self._publish, self._speech_changed)
        self.tts = telephony.Synthesizer(
            config.path(config.prompts.tts_cache),
            voice=config.prompts.tts_voice,
            rate=config.prompts.tts_rate,
            clock_rate=config.sip.clock_rate,
            voices=config.prompts.tts_voices,
            workers=config.prompts.tts_workers,
        )
        self.prompts = PromptResolver(self.prompt_dirs, self.tts)
        sip = config.sip
        public = sip.public_host or ("127.0.0.1" if sip.host == "0.0.0.0" else sip.host)
        front = config.proxy  # behind the proxy: SIP on loopback, every request through it
        self.endpoint = telephony.build_endpoint(
            telephony.endpoint_config(
                host=sip.host,
                public_host=public,
                port=front.internal_port if front else sip.port,
                transports=sip.transports,
                rtp_port=sip.rtp_port,
                max_calls=sip.max_calls,
                clock_rate=sip.clock_rate,
                user=sip.user,
                log_level=sip.pjsip_log_level,
                sip_host="127.0.0.1" if front else "",
                sip_public_host="127.0.0.1" if front else "",
                outbound_proxy=proxy.outbound_proxy(config) if front else "",
                accept_srtp=bool(front and front.tls_port),
                trunks=trunks.trunk_specs(config),
                request_headers=proxy.worker_headers(config),
                admission=admission_limits(sip),
                # behind the proxy every INVITE comes from it: its X-Hotline-Source names the caller
                trusted_proxies=tuple({*sip.trusted_proxies, *(("127.0.0.1",) if front else ())}),
            ),
            self._on_telephony,
        )
        self.edge = edge.build_edge(
            config,
            self._publish,
            lambda: {aid: (a.state.value, a.contact) for aid, a in self.router.agents.items()},
            self._agent_unregistered,
        )
        c = config.cti
        tls = (
            cti_bridge.tls_context(str(config.path(c.tls_cert)), str(config.path(c.tls_key)))
            if c.tls_cert
            else None
        )
        self.audit = cti_bridge.AuditLog(db)
        o = config.outbound
        self.outbound = outbound.build_guard(
            config.path(o.database or config.storage.database),
            marketing_hours=o.marketing_hours,
            holidays=o.holidays,
            timezone=o.timezone,
            service_hours=o.service_hours,
        )
        self._retention: asyncio.Task[None] | None = None
        self.commands = Commands(self)
        self.ops = ops.Operations(self)  # /metrics, /health, /ready and the alert rules
        self.router.metrics = self.ops.metrics  # routing decisions and their latency
        self.bus.add_sink(self.ops.observe_event)
        self.cti = cti_bridge.build_cti(
            self.bus,
            [cti_bridge.Token(t.name, t.secret, frozenset(t.scopes), t.agent or None) for t in c.tokens],
            self.commands,
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
            ops=self.ops,
            http_routes=(web.add_routes,),  # /agent, /wallboard (hotline/web/)
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self.jobs = Jobs(
            submit=self._submit,
            spawn=self._spawn,
            prompts=self.prompts,
            failure_tone=self.tts.failure_tone,
            profiles_store=self.profiles,
            profiles_config=config.profiles,
            resume_policy=profiles.ResumePolicy(window=pc.resume_window),
        )
        self.cues = build_cues(config, self._submit, self._publish, self.endpoint)  # live cues; None when off
        self.qa = build_qa(config, self._submit, self._spawn)  # post-call transcripts; None when off
        self._inputs: deque[inp.Input] = deque()
        self._driving = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._ears: dict[str, CallEar] = {}
        self._dtmf_at: dict[str, float] = {}  # leg -> perf_counter of its last keypress (latency log)

    @property
    def flows(self) -> dict[str, Any]:
        return self.controller.flows

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
                mask=lambda number: calls.mask_number(number, self.config.cti.caller_mask),
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
            if self.edge is not None:
                await self.edge.start()  # Kamailio first: the endpoint's requests go through it
            self.endpoint.start()
            self.ops.start()
            if self.cues is not None:
                self.cues.start()
            if self.qa is not None:
                self.qa.start()
            if self.speech is not None:
                self.speech.start()  # models load in the background; until then, DTMF only
            records = [acd.CallbackRecord.from_dict(r) for r in await self.store.load_callbacks()]
            if records:
                self._submit(inp.RestoreCallbacks(records=tuple(records)))
                log.info("callbacks_restored", count=len(records))
            self._arm_timer()
        except Exception as exc:
            await self.stop()
            raise StartError(_start_failure(exc, self.config)) from exc
        for agent in self.config.acd.agents:
            if agent.autologin:
                self.command(inp.AgentCommand(event=acd.events.AgentLoggedIn(agent_id=agent.id)))
                self.command(inp.AgentCommand(event=acd.events.AgentBecameReady(agent_id=agent.id)))
        flow = self.controller.flow
        log.info(
            "hotline_started",
            flow=flow.name,
            flow_version=flow.version,
            sip_port=self.config.sip.port,
            cti_port=self.cti.port,
        )

    async def stop(self) -> None:
        log.info("hotline_stopping", calls=len(self.controller.live_calls()))
        self.ops.stop()
        await self.watcher.stop()
        if self._retention is not None:
            self._retention.cancel()
        if self._loop is not None:
            self._submit(inp.Shutdown())  # every call ends "shutdown"; statistics are saved
        for call_id in list(self._ears):
            self._close_ear(call_id)
        if self.cues is not None:
            await self.cues.stop()  # the taps go before the legs
        await self.endpoint.shutdown()  # the legs' ends come through the controller while it pumps
        if self.edge is not None:
            await self.edge.stop()  # after the endpoint: its BYEs went out through Kamailio
        if self.speech is not None:
            self.speech.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._background:
            await asyncio.wait(self._background, timeout=10)
        if self.qa is not None:
            self.qa.stop()
        await self.cti.stop()
        self.audit.close()
        if self.mqtt is not None:
            await self.mqtt.stop()
        if self.bus.outbox is not None:
            self.bus.outbox.close()
        await self.profiles.close()
        await self.outbound.store.close()
        await self.jobs.close()
        self.tts.stop()
        await self.store.close()
        # where the prompts came from, and the media work done (bench/sip_capacity.py checks it)
        log.info("hotline_stopped", prompts=dict(self.prompts.sources), media=dict(self.endpoint.media))

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        await self.start()  # raises StartError, having cleaned up
        try:
            await self._stopping.wait()
        finally:
            await self.stop()

    def _agent_unregistered(self, agent_id: str) -> None:
        """The registrar lost a logged-in agent's phone: not ready, reason "unregistered"."""
        try:
            self.command(
                inp.AgentCommand(event=acd.events.AgentWentNotReady(agent_id=agent_id, reason="unregistered"))
            )
        except acd.AcdError as exc:  # a race with the router (the agent moved meanwhile)
            log.warning("agent_park_refused", agent_id=agent_id, code=exc.code, error=str(exc))

    def _publish(self, event: object) -> None:
        self.bus.publish(event)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------- the one door
    def _submit(self, event: inp.Input) -> None:
        """Every input comes in here; it is handled after the one being handled now."""
        self._inputs.append(event)
        if not self._driving:
            self._drive()

    def _drive(self) -> None:
        self._driving = True
        try:
            while self._inputs:
                event = self._inputs.popleft()
                try:
                    effects = self.controller.handle(event, self._now(), time.time())
                except Exception:  # one call's bug must not stop the others
                    log.exception("call_input_failed", input=type(event).__name__)
                    continue
                self._run(effects)
            self._arm_timer()
        finally:
            self._driving = False

    def command(self, event: inp.Input) -> None:
        """A command (CTI, autologin): handled now; its error (calls.CallError, acd.AcdError)
        reaches the caller and nothing has changed."""
        assert not self._driving, "commands come from outside the controller's own turn"
        effects = self.controller.handle(event, self._now(), time.time())
        self._run(effects)
        self._drive()

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    def _arm_timer(self) -> None:
        if self._loop is None:
            return
        deadline = self.controller.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer) if deadline is not None else None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            effects = self.controller.on_timer(self._now(), time.time())
        except Exception:
            log.exception("call_timer_failed")
            effects = []
        self._run(effects)
        self._drive()

    # ------------------------------------------------------------- telephony
    def _on_telephony(self, event: tev.TelephonyEvent) -> None:
        match event:
            case tev.IncomingCall():
                self._submit(
                    inp.CallArrived(
                        leg=event.leg_id,
                        call_id=secrets.token_hex(8),
                        caller=event.caller,
                        from_uri=event.from_uri,
                        to_uri=event.to_uri,
                        sip_call_id=event.sip_call_id,
                    )
                )
            case tev.LegAnswered(leg_id=leg):
                self._submit(inp.LegAnswered(leg=leg))
            case tev.LegMediaReady(leg_id=leg):
                self._submit(inp.LegMediaReady(leg=leg))
            case tev.LegEnded(leg_id=leg, code=code):
                self._dtmf_at.pop(leg, None)
                self._submit(inp.LegEnded(leg=leg, code=code))
            case tev.DtmfReceived(leg_id=leg, digit=digit):
                self._dtmf_at[leg] = time.perf_counter()  # loop.time() has only ms resolution under uvloop
                self._submit(inp.DigitReceived(leg=leg, digit=digit))
            case tev.PlaybackFinished(leg_id=leg, token=token):
                self._submit(inp.PlaybackDone(leg=leg, token=token))
            case tev.TransferEnded(leg_id=leg, code=code):
                self._submit(inp.TransferDone(leg=leg, code=code))

    # ------------------------------------------------------------- effects
    def _run(self, effects: list[fx.Effect]) -> None:
        for effect in effects:
            try:
                self._run_one(effect)
            except Exception as exc:  # the leg was gone, a file could not be opened ...
                log.error(
                    "telephony_action_failed",
                    call_id=getattr(effect, "call_id", None),
                    action=type(effect).__name__,
                    error=str(exc),
                )
                self._inputs.append(inp.EffectFailed(effect=effect, error=f"{type(exc).__name__}: {exc}"))

    def _run_one(self, effect: fx.Effect) -> None:
        ep = self.endpoint
        match effect:
            case fx.Publish(event=event):
                self.bus.publish(event)
            case fx.Answer(leg=leg, code=code):
                ep.answer(leg, code)
            case fx.Hangup(leg=leg, code=code):
                ep.hangup(leg, code)
            case fx.Dial(leg=leg, uri=uri, headers=headers, media=media, trunk=trunk):
                ep.dial(uri, dict(headers), media=media, trunk=trunk, leg_id=leg)
            case fx.Bridge(a=a, b=b):
                ep.bridge(a, b)
            case fx.Unbridge(a=a, b=b):
                ep.unbridge(a, b)
            case fx.Transmit(src=src, dst=dst):
                ep.transmit(src, dst)
            case fx.StopTransmit(src=src, dst=dst):
                ep.stop_transmit(src, dst)
            case fx.MixRecording(src=src, into=into, on=on):
                ep.mix_recording(src, into, on)
            case fx.Audit(action=action, who=who, what=what, result=result, fields=fields):
                self.audit.audit(action, who=who, what=what, result=result, **fields)
            case fx.Hold(leg=leg):
                ep.hold(leg)
            case fx.Retrieve(leg=leg):
                ep.retrieve(leg)
            case fx.Transfer(leg=leg, uri=uri):
                ep.transfer(leg, uri)
            case fx.ResolvePrompt() | fx.MergeRecording() | fx.MeasureVoicemail() | fx.LoadCaller():
                self.jobs.run(effect)
            case fx.HttpRequest() | fx.RecordContact():
                self.jobs.run(effect)
            case fx.PlayFile(call_id=cid, leg=leg, wav=wav, token=token, loop=loop, source=source):
                ep.play(leg, wav, token, loop)
                self.ops.metrics.prompt({"tts": "synthesized"}.get(source, source))
                self._log_latency(cid, leg)
            case fx.StopPlay(call_id=cid, leg=leg):
                ep.stop_play(leg)
                ear = self._ears.get(cid)
                if ear is not None and ear.speech_started_at is not None:
                    # barge-in: from the first voiced sample to the prompt stopped
                    ms = round(1000 * (time.perf_counter() - ear.speech_started_at), 1)
                    log.info("barge_in", call_id=cid, ms=ms)
                    ear.speech_started_at = None
            case fx.Record(sources=sources, paused=paused):
                ep.record(list(sources), paused=paused)
            case fx.PauseRecording(legs=legs, paused=paused):
                for leg in legs:
                    ep.pause_recording(leg, paused)
            case fx.StopRecording(leg=leg, paths=paths):
                ep.stop_recording(leg, paths)
            case fx.Listen(call_id=cid, leg=leg, request=request):
                self._ear(cid, leg).listen(request)
            case fx.StopListening(call_id=cid, token=token):
                ear = self._ears.get(cid)
                if ear is not None:
                    ear.stop(token)
            case fx.CloseEar(call_id=cid):
                self._close_ear(cid)
            case fx.InsertCall(call_id=cid, fields=fields):
                self.store.insert(cid, **fields)
            case fx.UpdateCall(call_id=cid, fields=fields):
                self.store.update(cid, **fields)
            case fx.SaveCallbacks(records=records):
                self.store.save_callbacks([dict(r) for r in records])
            case fx.SaveIntervals(queue_rows=q, agent_rows=a):
                self.store.save_intervals("queue_intervals", "queue", [dict(r) for r in q])
                self.store.save_intervals("agent_intervals", "agent_id", [dict(r) for r in a])
            case fx.StartCues() | fx.PauseCues() | fx.StopCues():
                if self.cues is not None:
                    self.cues.run(effect)
            case fx.AnalyzeRecording():
                if self.qa is not None:
                    self.qa.run(effect)
            case fx.RecordSentiment():
                self.jobs.run(effect)
            case fx.Log(call_id=cid, event=name, level=level, fields=fields):
                getattr(log, level)(name, call_id=cid, **fields)

    # ------------------------------------------------------------------- ears
    def _ear(self, call_id: str, leg: str) -> CallEar:
        ear = self._ears.get(call_id)
        if ear is None:
            assert self.speech is not None
            ear = self._ears[call_id] = CallEar(
                self.speech,
                call_id,
                start_ear=lambda path: self.endpoint.listen(leg, path),
                stop_ear=lambda: self.endpoint.stop_listen(leg),
                report=lambda event: self._submit(inp.Heard(call_id=call_id, event=event)),
                log=log.bind(call_id=call_id),
            )
        return ear

    def _close_ear(self, call_id: str) -> None:
        ear = self._ears.pop(call_id, None)
        if ear is not None:
            self._spawn(ear.close())

    def _log_latency(self, call_id: str, leg: str) -> None:
        """Server-side latencies, from the keypress (or the end of speech) to the next prompt."""
        at = self._dtmf_at.pop(leg, None)
        if at is not None:
            seconds = time.perf_counter() - at
            log.info("dtmf_to_prompt", call_id=call_id, ms=round(1000 * seconds, 3))
            self.ops.metrics.ivr_turn("dtmf", seconds)
        ear = self._ears.get(call_id)
        if ear is not None and ear.speech_end_at is not None:
            seconds = time.perf_counter() - ear.speech_end_at
            log.info("speech_to_prompt", call_id=call_id, ms=round(1000 * seconds, 1))
            self.ops.metrics.ivr_turn("speech", seconds)
            ear.speech_end_at = None

    # ----------------------------------------------------------- speech, flows
    def _speech_changed(self) -> None:
        """A model loaded, or the overload alert changed: the controller tells the calls."""
        assert self.speech is not None
        self._check_vocabulary()
        self._submit(inp.SpeechChanged(languages=tuple(self.speech.languages())))

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

    def _flows_accepted(self, flows: Any, event: Any) -> None:
        """A valid edit of flows/: new calls use it; calls in progress keep their versions."""
        self._submit(inp.FlowsChanged(flows=dict(flows), main=self.config.flows.main))
        self.bus.publish(event)
        self._check_prompts(flows.values())
        self._check_vocabulary()

    def _check_prompts(self, flows: Any) -> None:
        """Warn about prompt directories that do not exist and prompt ids no directory holds,
        each once (the TTS or a tone stands in for them at call time)."""
        for name, fields in startup_findings(flows, self.prompt_dirs, self._prompts_reported):
            log.warning(name, **fields)

    def _recording_path(self, call_id: str) -> Path | None:
        """The file GET /recordings/<call_id> serves: the call recording, else the voicemail."""
        if not all(ch.isalnum() or ch == "-" for ch in call_id):
            return None  # never a path outside the recordings directory
        for name in (f"{call_id}.wav", f"{call_id}-voicemail.wav"):
            path = self.recordings / name
            if path.is_file():
                return path
        return None
